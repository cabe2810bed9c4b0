//! A guest's network as a room sees it: a keyed hash, never the address (security issue,
//! item 3). A moderator's ban of a guest also keeps new guests from that network out of the
//! room for a while (`shared::room`, `Room::admit`); the room only needs to tell networks apart,
//! so it is given an HMAC-SHA256 of the network (`shared::network::network_of`: an IPv4
//! address, an IPv6 /64) under the session-signing secret and bound to the room. Rooms store
//! nothing that names an address, and one room's keys cannot be matched with another's.
//!
//! Keyed with the current secret only: rotating `SESSION_SECRET` changes every key, which ends
//! the network bans then in force early (a guest's own ban is by user id and stays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::SessionKeys;

/// What the MAC covers before the room and network, so the key is never a value signed for
/// another use (cookies sign `v1.` payloads and `purpose:` seals).
const PURPOSE: &str = "network-ban";

/// Bytes of the MAC kept (128 bits, as 32 hex characters): far more than telling a room's
/// networks apart needs.
const KEY_BYTES: usize = 16;

/// The key of the network behind `ip` (the `CF-Connecting-IP` of a guest's request) in room
/// `slug`.
pub fn key(keys: &SessionKeys, slug: &str, ip: &str) -> String {
    let network = shared::network::network_of(ip);
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&keys.current).expect("HMAC takes any key length");
    for part in [PURPOSE, slug, network.as_str()] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.finalize().into_bytes()[..KEY_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys {
            current: secret.as_bytes().to_vec(),
            previous: None,
        }
    }

    #[test]
    fn one_network_in_one_room_has_one_key_which_names_no_address() {
        let k = keys("a secret of at least thirty-two bytes");
        let key = key(&k, "general", "2001:db8:1:2::1");
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert_eq!(super::key(&k, "general", "2001:db8:1:2:aaaa::9"), key);
        assert!(!key.contains("2001"), "{key}");
    }

    #[test]
    fn another_network_another_room_or_another_secret_give_another_key() {
        let k = keys("a secret of at least thirty-two bytes");
        let base = key(&k, "general", "203.0.113.7");
        assert_ne!(key(&k, "general", "203.0.113.8"), base);
        assert_ne!(key(&k, "random", "203.0.113.7"), base);
        assert_ne!(
            key(
                &keys("another secret of thirty-two bytes!!"),
                "general",
                "203.0.113.7"
            ),
            base
        );
    }
}
