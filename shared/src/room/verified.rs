//! Connects the Worker verified a moment ago, kept by the room so that the same browser
//! reconnecting soon after is admitted without the Worker reading D1 again.
//!
//! Verifying a socket costs the Worker a session lookup, the directory entry and the profile
//! (three D1 reads, a write for the session's room list) before the room sees the upgrade.
//! Most connects are reconnects of someone who was verified seconds ago: a network blip, a
//! reload, a phone waking up, a whole room reconnecting after a deploy. For those the Worker
//! sends only a credential — a digest of the identity cookies, computed without I/O — and the
//! room answers from here, or says it does not know it and the Worker verifies in full.
//!
//! What keeps a remembered connect honest:
//! - it is valid until the Worker says (at most a minute after it was verified, and never past
//!   the session's own expiry), so what a full verification refreshes (the session's idle
//!   expiry, the user's last-seen time) is refreshed as often as before;
//! - ending a session, disabling or banning a user and changing a profile reach the room as
//!   pushes that close sockets or update them; each also forgets what is remembered here, so the
//!   next connect is verified in full and sees the change, and for a minute after it nothing of
//!   that user or session is remembered (a connect verified just before the change may arrive
//!   just after its push);
//! - it lives in memory only: a room that wakes from hibernation remembers nothing, and a
//!   forgotten connect only costs a full verification.

use std::collections::HashMap;

use crate::protocol::Millis;

/// How long a verified connect may be reused at most. A minute: the session's idle expiry is
/// refreshed at most once a minute too, so reconnects within it change nothing a full
/// verification would have written.
pub const REUSE_MS: Millis = 60_000;

/// How many connects a room remembers. Enough for a room of thousands reconnecting at once
/// (each entry is a few hundred bytes); past it, the entry closest to its end is dropped.
pub const CAPACITY: usize = 10_000;

/// A verified connect and whose it is.
#[derive(Debug, Clone)]
struct Entry<T> {
    user_id: String,
    session_id: Option<String>,
    until: Millis,
    value: T,
}

/// The connects a room may reuse, keyed by the Worker's credential digest.
#[derive(Debug, Clone)]
pub struct VerifiedConnects<T> {
    entries: HashMap<String, Entry<T>>,
    /// When each user (`u:<id>`) or session (`s:<id>`) was last forgotten. A connect the Worker
    /// verified just before a revocation may reach the room just after its push: for a minute
    /// after a forget, that user's or session's connects are admitted but not remembered.
    forgotten: HashMap<String, Millis>,
    capacity: usize,
}

impl<T> Default for VerifiedConnects<T> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl<T> VerifiedConnects<T> {
    /// An empty set that holds at most `capacity` connects.
    pub fn with_capacity(capacity: usize) -> Self {
        VerifiedConnects {
            entries: HashMap::new(),
            forgotten: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `value`, verified for `user_id` (signed in through `session_id`, `None` for a
    /// guest), for connects presenting `credential` until `until`.
    pub fn remember(
        &mut self,
        credential: String,
        user_id: &str,
        session_id: Option<&str>,
        until: Millis,
        value: T,
        now: Millis,
    ) {
        let forgotten_lately = |key: String| {
            self.forgotten
                .get(&key)
                .is_some_and(|at| now - at < REUSE_MS)
        };
        if until <= now
            || forgotten_lately(format!("u:{user_id}"))
            || session_id.is_some_and(|s| forgotten_lately(format!("s:{s}")))
        {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&credential) {
            self.entries.retain(|_, e| e.until > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone());
                if let Some(key) = soonest {
                    self.entries.remove(&key);
                }
            }
        }
        self.entries.insert(
            credential,
            Entry {
                user_id: user_id.to_owned(),
                session_id: session_id.map(str::to_owned),
                until,
                value,
            },
        );
    }

    /// The connect verified for `credential`, if it may still be reused at `now`.
    pub fn get(&self, credential: &str, now: Millis) -> Option<&T> {
        self.entries
            .get(credential)
            .filter(|e| e.until > now)
            .map(|e| &e.value)
    }

    /// Forgets every connect of `user_id`, and remembers none of theirs for a minute.
    pub fn forget_user(&mut self, user_id: &str, now: Millis) {
        self.entries.retain(|_, e| e.user_id != user_id);
        self.forgot(format!("u:{user_id}"), now);
    }

    /// Forgets every connect through signed-in session `session_id`, and remembers none through
    /// it for a minute.
    pub fn forget_session(&mut self, session_id: &str, now: Millis) {
        self.entries
            .retain(|_, e| e.session_id.as_deref() != Some(session_id));
        self.forgot(format!("s:{session_id}"), now);
    }

    fn forgot(&mut self, key: String, now: Millis) {
        if self.forgotten.len() >= self.capacity {
            self.forgotten.retain(|_, at| now - *at < REUSE_MS);
        }
        self.forgotten.insert(key, now);
    }

    /// How many connects are remembered (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000;

    fn remembered() -> VerifiedConnects<&'static str> {
        let mut v = VerifiedConnects::default();
        v.remember(
            "alice-cookies".into(),
            "alice",
            Some("s-alice"),
            NOW + REUSE_MS,
            "alice",
            NOW,
        );
        v.remember(
            "guest-cookies".into(),
            "guest",
            None,
            NOW + REUSE_MS,
            "guest",
            NOW,
        );
        v
    }

    #[test]
    fn a_connect_presenting_the_same_credential_within_its_time_is_reused() {
        let v = remembered();
        assert_eq!(v.get("alice-cookies", NOW + 1), Some(&"alice"));
        assert_eq!(v.get("guest-cookies", NOW + REUSE_MS - 1), Some(&"guest"));
    }

    #[test]
    fn another_credential_or_an_expired_one_is_not_known() {
        let v = remembered();
        assert_eq!(v.get("mallory-cookies", NOW), None);
        assert_eq!(v.get("alice-cookies", NOW + REUSE_MS), None);
    }

    #[test]
    fn a_connect_already_expired_when_verified_is_not_remembered() {
        let mut v = VerifiedConnects::default();
        v.remember("c".into(), "u", None, NOW, "u", NOW);
        assert!(v.is_empty());
    }

    #[test]
    fn ending_a_session_forgets_only_the_connects_made_through_it() {
        let mut v = remembered();
        v.remember(
            "alice-phone".into(),
            "alice",
            Some("s-phone"),
            NOW + REUSE_MS,
            "phone",
            NOW,
        );
        v.forget_session("s-alice", NOW);
        assert_eq!(v.get("alice-cookies", NOW), None);
        assert_eq!(v.get("alice-phone", NOW), Some(&"phone"));
        assert_eq!(v.get("guest-cookies", NOW), Some(&"guest"));
    }

    #[test]
    fn a_change_to_a_user_forgets_every_connect_of_theirs_and_no_one_elses() {
        let mut v = remembered();
        v.remember(
            "alice-phone".into(),
            "alice",
            Some("s-phone"),
            NOW + REUSE_MS,
            "phone",
            NOW,
        );
        v.forget_user("alice", NOW);
        assert_eq!(v.get("alice-cookies", NOW), None);
        assert_eq!(v.get("alice-phone", NOW), None);
        assert_eq!(v.get("guest-cookies", NOW), Some(&"guest"));
    }

    #[test]
    fn a_connect_verified_before_a_forget_but_arriving_after_it_is_admitted_not_remembered() {
        let mut v = remembered();
        v.forget_user("alice", NOW);
        v.forget_session("s-bob", NOW);
        // In flight when the pushes arrived: not remembered within the minute...
        v.remember(
            "alice-again".into(),
            "alice",
            None,
            NOW + REUSE_MS,
            "a",
            NOW + 10,
        );
        v.remember(
            "bob".into(),
            "bob",
            Some("s-bob"),
            NOW + REUSE_MS,
            "b",
            NOW + 10,
        );
        assert_eq!(v.get("alice-again", NOW + 20), None);
        assert_eq!(v.get("bob", NOW + 20), None);
        // ...nor does it touch anyone else's...
        v.remember(
            "carol".into(),
            "carol",
            Some("s-carol"),
            NOW + REUSE_MS,
            "c",
            NOW + 10,
        );
        assert_eq!(v.get("carol", NOW + 20), Some(&"c"));
        // ...and a minute on, a fresh verification is remembered again.
        let later = NOW + REUSE_MS;
        v.remember(
            "alice-later".into(),
            "alice",
            None,
            later + REUSE_MS,
            "a",
            later,
        );
        assert_eq!(v.get("alice-later", later + 1), Some(&"a"));
    }

    #[test]
    fn a_full_set_drops_expired_connects_first_then_the_one_closest_to_its_end() {
        let mut v = VerifiedConnects::with_capacity(2);
        v.remember("old".into(), "a", None, NOW + 10, "old", NOW);
        v.remember("late".into(), "b", None, NOW + 5_000, "late", NOW);
        // At NOW + 20 "old" has expired: it makes room, "late" stays.
        v.remember("new".into(), "c", None, NOW + 6_000, "new", NOW + 20);
        assert_eq!(v.len(), 2);
        assert_eq!(v.get("late", NOW + 20), Some(&"late"));
        // Nothing expired: the one ending soonest ("late") goes.
        v.remember("newer".into(), "d", None, NOW + 7_000, "newer", NOW + 30);
        assert_eq!(v.len(), 2);
        assert_eq!(v.get("late", NOW + 30), None);
        assert_eq!(v.get("new", NOW + 30), Some(&"new"));
        assert_eq!(v.get("newer", NOW + 30), Some(&"newer"));
    }

    #[test]
    fn verifying_a_remembered_credential_again_replaces_it_without_evicting_others() {
        let mut v = VerifiedConnects::with_capacity(2);
        v.remember("a".into(), "a", None, NOW + 100, "first", NOW);
        v.remember("b".into(), "b", None, NOW + 100, "b", NOW);
        v.remember("a".into(), "a", None, NOW + 200, "second", NOW + 50);
        assert_eq!(v.get("a", NOW + 150), Some(&"second"));
        assert_eq!(v.get("b", NOW + 60), Some(&"b"));
    }
}
