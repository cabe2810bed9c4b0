//! Which rooms admitted which credentials through this Worker isolate lately: whether a
//! reconnect is worth presenting to the room (`contract::Upgrade::Reconnect`) before verifying
//! in full. Only a hint: the room decides, and a wrong hint costs one round trip either way (a
//! reconnect the room no longer knows, or a full verification it would not have needed).
//! Without it every first join would pay for asking the room about a browser it never saw.

use std::cell::RefCell;
use std::collections::HashMap;

/// Hints kept at most; past it the expired go, and if none had, all of them.
const CAPACITY: usize = 10_000;

thread_local! {
    /// `slug \n credential` → until when the room said it would reuse the verification.
    static ADMITTED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

fn key(slug: &str, credential: &str) -> String {
    format!("{slug}\n{credential}")
}

/// Whether room `slug` admitted `credential` through this isolate, reusable at `now`.
pub fn likely_known(slug: &str, credential: &str, now: i64) -> bool {
    ADMITTED.with(|a| {
        a.borrow()
            .get(&key(slug, credential))
            .is_some_and(|until| *until > now)
    })
}

/// Room `slug` admitted a connect of `credential` it may reuse until `until`.
pub fn admitted(slug: &str, credential: &str, until: i64, now: i64) {
    ADMITTED.with(|a| {
        let mut a = a.borrow_mut();
        if a.len() >= CAPACITY {
            a.retain(|_, u| *u > now);
            if a.len() >= CAPACITY {
                a.clear();
            }
        }
        a.insert(key(slug, credential), until);
    });
}

/// Room `slug` did not know `credential` after all.
pub fn forget(slug: &str, credential: &str) {
    ADMITTED.with(|a| a.borrow_mut().remove(&key(slug, credential)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_likely_known_to_the_room_that_admitted_it_until_its_time_ends() {
        admitted("general", "c1", 1_000, 0);
        assert!(likely_known("general", "c1", 999));
        assert!(!likely_known("general", "c1", 1_000));
        assert!(!likely_known("random", "c1", 10));
        assert!(!likely_known("general", "c2", 10));
        forget("general", "c1");
        assert!(!likely_known("general", "c1", 10));
    }
}
