//! A guest's network, for a room's timed network bans (security issue, item 3: "a room
//! moderator's ban must also be able to cover the guest's IP for a time"). Guests are free to
//! mint, so banning one guest id alone stops no one; the room also bans, for a while, new guests
//! from the network the banned guest last connected from.
//!
//! This is the pure half: which addresses count as one network. The Worker turns the network
//! into a keyed hash before any room sees it (`edge/src/network.rs`), so no room stores an
//! address.

use std::net::IpAddr;

/// The network a client address belongs to, as canonical text:
/// - an IPv4 address is its own network (`v4:203.0.113.7`);
/// - an IPv6 address counts by its /64 prefix (`v6:2001:db8:1:2::/64`): a household or a
///   provider's customer is usually given a whole /64 and may take any address in it, so a
///   single address would be no ban at all;
/// - an IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is the IPv4 address it maps;
/// - anything that does not parse as an address is a network of its own (`other:` and the
///   trimmed, lowercased text), so requests that carry no address (a dev server's `local`)
///   share one.
///
/// Any spelling of the same address (zero padding, case, compression) gives the same text.
pub fn network_of(ip: &str) -> String {
    let ip = ip.trim();
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => format!("v4:{v4}"),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("v4:{v4}"),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                let prefix = std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0);
                format!("v6:{prefix}/64")
            }
        },
        Err(_) => format!("other:{}", ip.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_address_is_its_own_network() {
        assert_eq!(network_of("203.0.113.7"), "v4:203.0.113.7");
        assert_ne!(network_of("203.0.113.7"), network_of("203.0.113.8"));
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_are_one_network_however_they_are_written() {
        let home = network_of("2001:db8:1:2::1");
        assert_eq!(home, "v6:2001:db8:1:2::/64");
        assert_eq!(network_of("2001:0DB8:0001:0002:abcd:ef01:2345:6789"), home);
        assert_eq!(network_of(" 2001:db8:1:2:ffff:ffff:ffff:ffff "), home);
        assert_ne!(
            network_of("2001:db8:1:3::1"),
            home,
            "the next /64 is another"
        );
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_the_ipv4_network() {
        assert_eq!(network_of("::ffff:203.0.113.7"), network_of("203.0.113.7"));
    }

    #[test]
    fn text_that_is_no_address_is_a_network_of_its_own() {
        assert_eq!(network_of("local"), "other:local");
        assert_eq!(network_of(" LOCAL"), network_of("local"));
        assert_ne!(network_of("local"), network_of("127.0.0.1"));
    }
}
