//! A room list's unread counts for a room that is not open, kept live from a watching
//! connection ([`ClientMessage::Watch`](crate::protocol::ClientMessage::Watch)).
//!
//! The room sends the counts once ([`ServerMessage::Unread`]), then only what changes them
//! ([`ServerMessage::Activity`]): counting here keeps the room from recounting for every
//! watcher on every message.

use std::collections::BTreeMap;

use crate::limits::UNREAD_COUNT_CAP;
use crate::protocol::http::RoomUnread;
use crate::protocol::{Seq, ServerMessage, UnreadCounts};

/// One room's unread counts for one user, as the room reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadTracker {
    me: String,
    read: Seq,
    counts: Option<UnreadCounts>,
}

impl UnreadTracker {
    /// Counts for user `me`, unknown until the room's first [`ServerMessage::Unread`].
    pub fn new(me: impl Into<String>) -> Self {
        UnreadTracker {
            me: me.into(),
            read: 0,
            counts: None,
        }
    }

    /// Whose counts these are.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The counts, once the room has sent them.
    pub fn counts(&self) -> Option<UnreadCounts> {
        self.counts
    }

    /// Applies one frame from the watching connection; returns whether the counts changed.
    pub fn apply(&mut self, message: &ServerMessage) -> bool {
        let before = self.counts;
        match message {
            ServerMessage::Unread { read, counts } => {
                self.read = *read;
                self.counts = Some(*counts);
            }
            ServerMessage::Activity {
                seq,
                by,
                main,
                mentions,
                removed,
            } => {
                // Activity before the first counts is already in them.
                let Some(counts) = self.counts.as_mut() else {
                    return false;
                };
                if *seq <= self.read || *by == self.me {
                    return false;
                }
                let step = |n: &mut u32| {
                    *n = if *removed {
                        n.saturating_sub(1)
                    } else {
                        // The room's counts may start above the cap.
                        n.saturating_add(1).min(UNREAD_COUNT_CAP)
                    }
                };
                if *main {
                    step(&mut counts.unread);
                }
                if mentions.contains(&self.me) {
                    step(&mut counts.mentions);
                }
            }
            _ => {}
        }
        self.counts != before
    }
}

/// The room list's unread counts: the list's own (fetched now and then) overridden by live
/// counts for the rooms being watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomCounts {
    listed: Vec<RoomUnread>,
    live: BTreeMap<String, UnreadCounts>,
}

impl RoomCounts {
    /// The counts that came with the room list.
    pub fn set_listed(&mut self, listed: Vec<RoomUnread>) {
        self.listed = listed;
    }

    /// A watched room's live counts, or `None` when its watch is down.
    pub fn set_live(&mut self, slug: &str, counts: Option<UnreadCounts>) {
        match counts {
            Some(counts) => self.live.insert(slug.to_owned(), counts),
            None => self.live.remove(slug),
        };
    }

    /// The joined rooms, from the room list.
    pub fn joined(&self) -> impl Iterator<Item = &str> {
        self.listed.iter().map(|u| u.slug.as_str())
    }

    /// Each joined room's counts, live where known.
    pub fn shown(&self) -> Vec<RoomUnread> {
        self.listed
            .iter()
            .map(|u| RoomUnread {
                counts: self.live.get(&u.slug).copied().unwrap_or(u.counts),
                ..u.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_override_the_listed_ones_until_their_watch_goes_down() {
        let mut rooms = RoomCounts::default();
        let listed = |slug: &str, unread| RoomUnread {
            slug: slug.into(),
            read: 0,
            counts: counts(unread, 0),
        };
        rooms.set_listed(vec![listed("a", 1), listed("b", 2)]);
        rooms.set_live("a", Some(counts(5, 1)));
        rooms.set_live("gone", Some(counts(9, 9)));
        assert_eq!(
            rooms.shown(),
            vec![
                RoomUnread {
                    slug: "a".into(),
                    read: 0,
                    counts: counts(5, 1)
                },
                listed("b", 2)
            ]
        );
        // A newer list does not undo live counts, which are newer still.
        rooms.set_listed(vec![listed("a", 0), listed("b", 3)]);
        assert_eq!(rooms.shown()[0].counts, counts(5, 1));
        rooms.set_live("a", None);
        assert_eq!(rooms.shown(), vec![listed("a", 0), listed("b", 3)]);
        assert_eq!(rooms.joined().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    fn counts(unread: u32, mentions: u32) -> UnreadCounts {
        UnreadCounts { unread, mentions }
    }

    fn activity(seq: Seq, by: &str, main: bool, mentions: &[&str], removed: bool) -> ServerMessage {
        ServerMessage::Activity {
            seq,
            by: by.into(),
            main,
            mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
            removed,
        }
    }

    fn posted(seq: Seq, by: &str, main: bool, mentions: &[&str]) -> ServerMessage {
        activity(seq, by, main, mentions, false)
    }

    fn removed(seq: Seq, by: &str, main: bool, mentions: &[&str]) -> ServerMessage {
        activity(seq, by, main, mentions, true)
    }

    fn tracker(read: Seq, unread: u32, mentions: u32) -> UnreadTracker {
        let mut t = UnreadTracker::new("me");
        assert!(t.apply(&ServerMessage::Unread {
            read,
            counts: counts(unread, mentions),
        }));
        t
    }

    #[test]
    fn counts_are_unknown_until_the_room_sends_them_and_earlier_activity_is_ignored() {
        let mut t = UnreadTracker::new("me");
        assert!(!t.apply(&posted(5, "ann", true, &[])));
        assert_eq!(t.counts(), None);
        let mut t = tracker(4, 1, 0);
        assert_eq!(t.counts(), Some(counts(1, 0)));
        assert!(!t.apply(&ServerMessage::Pong {}));
    }

    #[test]
    fn a_message_by_someone_else_counts_and_a_mention_of_me_counts_twice() {
        let mut t = tracker(4, 0, 0);
        assert!(t.apply(&posted(5, "ann", true, &[])));
        assert!(t.apply(&posted(6, "ann", true, &["me", "bob"])));
        assert_eq!(t.counts(), Some(counts(2, 1)));
    }

    #[test]
    fn my_own_messages_and_mentions_of_others_do_not_count() {
        let mut t = tracker(4, 0, 0);
        assert!(!t.apply(&posted(5, "me", true, &[])));
        assert!(t.apply(&posted(6, "ann", true, &["bob"])));
        assert_eq!(t.counts(), Some(counts(1, 0)));
    }

    #[test]
    fn a_thread_only_reply_counts_only_if_it_mentions_me() {
        let mut t = tracker(4, 0, 0);
        assert!(!t.apply(&posted(5, "ann", false, &[])));
        assert!(t.apply(&posted(6, "ann", false, &["me"])));
        assert_eq!(t.counts(), Some(counts(0, 1)));
    }

    #[test]
    fn deleting_a_counted_message_takes_it_back_and_deleting_a_read_one_changes_nothing() {
        let mut t = tracker(4, 1, 1);
        assert!(t.apply(&posted(6, "ann", true, &["me"])));
        assert_eq!(t.counts(), Some(counts(2, 2)));
        assert!(t.apply(&removed(6, "ann", true, &["me"])));
        assert_eq!(t.counts(), Some(counts(1, 1)));
        assert!(!t.apply(&removed(3, "ann", true, &["me"])), "already read");
        assert!(!t.apply(&removed(7, "me", true, &[])), "my own");
        assert_eq!(t.counts(), Some(counts(1, 1)));
    }

    #[test]
    fn counts_never_go_below_zero_or_above_the_cap() {
        let mut t = tracker(4, 0, 0);
        assert!(!t.apply(&removed(5, "ann", true, &["me"])));
        let mut t = tracker(4, UNREAD_COUNT_CAP, 0);
        assert!(!t.apply(&posted(5, "ann", true, &[])));
        assert_eq!(t.counts(), Some(counts(UNREAD_COUNT_CAP, 0)));
    }

    #[test]
    fn reading_elsewhere_replaces_the_counts_and_moves_the_read_position() {
        let mut t = tracker(4, 3, 1);
        assert!(t.apply(&ServerMessage::Unread {
            read: 9,
            counts: counts(0, 0),
        }));
        assert!(
            !t.apply(&posted(8, "ann", true, &["me"])),
            "before the new read position"
        );
        assert!(t.apply(&posted(10, "ann", true, &[])));
        assert_eq!(t.counts(), Some(counts(1, 0)));
    }
}
