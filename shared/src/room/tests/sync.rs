//! Hello, replay, pages, read positions, unread counts and watchers.

use super::*;

#[test]
fn a_hello_without_a_cursor_gets_the_latest_page_only() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    for i in 0..120 {
        f.send(&ann, &format!("c{i}"), "hi");
    }
    let effects = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
    assert_eq!(effects[0], Effect::Joined);
    let Effect::Reply(ServerMessage::Welcome { head, present, .. }) = &effects[1] else {
        panic!("welcome expected: {effects:?}")
    };
    assert_eq!(*head, 120);
    assert_eq!(present.len(), 1, "the joining user is present");
    let Effect::Reply(ServerMessage::History {
        messages,
        has_more,
        reason,
    }) = &effects[2]
    else {
        panic!("history expected")
    };
    assert_eq!(messages.len(), PAGE_DEFAULT as usize);
    assert_eq!(messages.first().unwrap().seq, 71);
    assert_eq!(messages.last().unwrap().seq, 120);
    assert!(*has_more);
    assert_eq!(*reason, HistoryReason::Latest);
}

#[test]
fn a_hello_with_a_cursor_replays_exactly_the_missed_events_edits_and_deletes_included() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    f.send(&ann, "a", "one");
    f.send(&ann, "b", "two");
    f.frame(
        &ann,
        serde_json::json!({"type":"edit","client_id":"e","target":1,"text":"uno"}),
    );
    f.frame(
        &ann,
        serde_json::json!({"type":"delete","client_id":"d","target":2}),
    );
    let effects = f.frame(
        &ann,
        serde_json::json!({"type":"hello","protocol":1,"after":1}),
    );
    let replayed: Vec<Seq> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(ServerMessage::Replay { events, .. }) => Some(events),
            _ => None,
        })
        .flatten()
        .map(|e| e.seq)
        .collect();
    assert_eq!(replayed, vec![2, 3, 4]);
}

#[test]
fn a_replay_larger_than_one_batch_comes_in_ordered_batches_with_done_on_the_last() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    for i in 0..250 {
        f.send(&ann, &format!("c{i}"), "hi");
    }
    let frames = f.room.sync(Some(0)).unwrap();
    assert_eq!(frames.len(), 3);
    let mut expected = 1;
    for (i, frame) in frames.iter().enumerate() {
        let ServerMessage::Replay { events, done } = frame else {
            panic!()
        };
        assert_eq!(*done, i == 2);
        for e in events {
            assert_eq!(e.seq, expected);
            expected += 1;
        }
    }
    assert_eq!(expected, 251);
}

#[test]
fn a_cursor_too_far_behind_or_ahead_gets_a_reset_page_instead_of_a_replay() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    for i in 0..(REPLAY_MAX_EVENTS + 10) {
        f.send(&ann, &format!("c{i}"), "hi");
    }
    for cursor in [0, 9, f.room.head() + 5] {
        let frames = f.room.sync(Some(cursor)).unwrap();
        assert!(
            matches!(
                frames.as_slice(),
                [ServerMessage::History {
                    reason: HistoryReason::Reset,
                    ..
                }]
            ),
            "cursor {cursor}"
        );
    }
    assert!(matches!(
        f.room.sync(Some(10)).unwrap()[0],
        ServerMessage::Replay { .. }
    ));
}

#[test]
fn older_pages_are_fetched_by_sequence_cursor() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    for i in 0..30 {
        f.send(&ann, &format!("c{i}"), "hi");
    }
    let effects = f.frame(
        &ann,
        serde_json::json!({"type":"history","before":11,"limit":5}),
    );
    let Effect::Reply(ServerMessage::History {
        messages,
        has_more,
        reason,
    }) = &effects[0]
    else {
        panic!()
    };
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    assert!(*has_more);
    assert_eq!(*reason, HistoryReason::Older);
    let effects = f.frame(&ann, serde_json::json!({"type":"history","before":3}));
    let Effect::Reply(ServerMessage::History {
        messages, has_more, ..
    }) = &effects[0]
    else {
        panic!()
    };
    assert_eq!(messages.len(), 2);
    assert!(!*has_more);
}

#[test]
fn read_positions_only_move_forward_and_unread_counts_others_messages_and_mentions() {
    let mut f = Fixture::new();
    let ann = f.member_who_joined("ann");
    let bob = f.member_who_joined("bob");
    f.send(&ann, "a", "hello @BOB");
    f.send(&ann, "b", "plain");
    f.send(&bob, "c", "mine do not count");
    reply(&mut f, &ann, "r", 1, false);
    assert_eq!(
        f.room.unread("bob").unwrap(),
        (
            0,
            UnreadCounts {
                unread: 2,
                mentions: 1
            }
        )
    );
    let effects = f.frame(&bob, serde_json::json!({"type":"read","seq":2}));
    let counts = ServerMessage::Unread {
        read: 2,
        counts: UnreadCounts::default(),
    };
    assert_eq!(
        effects,
        vec![
            Effect::NotifyUser("bob".into(), counts.clone()),
            Effect::ToUser("bob".into(), counts)
        ]
    );
    // Going back is a no-op answered to the asking connection only.
    let effects = f.frame(&bob, serde_json::json!({"type":"read","seq":1}));
    assert!(matches!(
        effects.as_slice(),
        [Effect::Reply(ServerMessage::Unread { read: 2, .. })]
    ));
    // A read past the head stops at the head.
    f.frame(&bob, serde_json::json!({"type":"read","seq":999}));
    assert_eq!(f.room.unread("bob").unwrap().0, f.room.head());
}

#[test]
fn a_deleted_message_no_longer_counts_as_unread_or_as_a_mention() {
    let mut f = Fixture::new();
    f.member_who_joined("bob");
    let ann = conn("ann", Role::Member);
    f.send(&ann, "a", "@bob look");
    assert_eq!(f.room.unread("bob").unwrap().1.mentions, 1);
    f.frame(
        &ann,
        serde_json::json!({"type":"delete","client_id":"d","target":1}),
    );
    assert_eq!(f.room.unread("bob").unwrap().1, UnreadCounts::default());
}

#[test]
fn a_watch_gets_the_counts_and_then_only_notices_of_what_changes_them() {
    let mut f = Fixture::new();
    f.member_who_joined("bob");
    let ann = conn("ann", Role::Member);
    f.send(&ann, "a", "before");
    let mut watcher = conn("bob", Role::Member);
    watcher.joined = false;
    let effects = f.frame(&watcher, serde_json::json!({"type":"watch","protocol":1}));
    assert_eq!(
        effects,
        vec![
            Effect::Watching,
            Effect::Reply(ServerMessage::Unread {
                read: 0,
                counts: UnreadCounts {
                    unread: 1,
                    mentions: 0
                }
            })
        ]
    );
    // Not a join: no welcome, no history, no presence, no membership.
    assert!(!effects.iter().any(|e| matches!(
        e,
        Effect::Joined | Effect::NewMember(_) | Effect::Broadcast(_)
    )));

    let posted = f.send(&ann, "b", "hi @bob");
    assert_eq!(
        notices(&posted),
        vec![&ServerMessage::Activity {
            seq: 2,
            by: "ann".into(),
            main: true,
            mentions: vec!["bob".into()],
            removed: false,
        }]
    );
    let thread_only = reply(&mut f, &ann, "r", 1, false);
    assert!(matches!(
        notices(&thread_only).as_slice(),
        [ServerMessage::Activity {
            seq: 3,
            main: false,
            ..
        }]
    ));
    // Reactions and plain edits change no counts: watchers hear nothing of them.
    assert!(notices(&react(&mut f, &ann, "e", 1, true)).is_empty());
    let edit = f.frame(
        &ann,
        serde_json::json!({"type":"edit","client_id":"ed","target":1,"text":"after"}),
    );
    assert!(notices(&edit).is_empty());
    // An edit that mentions someone new counts as a mention of them only, once.
    let edit = f.frame(
        &ann,
        serde_json::json!({"type":"edit","client_id":"ed2","target":1,"text":"after @bob"}),
    );
    assert_eq!(
        notices(&edit),
        vec![&ServerMessage::Activity {
            seq: 1,
            by: "ann".into(),
            main: false,
            mentions: vec!["bob".into()],
            removed: false,
        }]
    );
    let again = f.frame(
        &ann,
        serde_json::json!({"type":"edit","client_id":"ed3","target":1,"text":"after @bob!"}),
    );
    assert!(notices(&again).is_empty());
}

#[test]
fn deleting_a_message_tells_watchers_whose_it_was_and_whom_it_mentioned() {
    let mut f = Fixture::new();
    f.member_who_joined("bob");
    let ann = conn("ann", Role::Member);
    f.send(&ann, "a", "@bob look");
    let deleted = f.frame(
        &conn("mod", Role::Moderator),
        serde_json::json!({"type":"delete","client_id":"d","target":1}),
    );
    assert_eq!(
        notices(&deleted),
        vec![&ServerMessage::Activity {
            seq: 1,
            by: "ann".into(),
            main: true,
            mentions: vec!["bob".into()],
            removed: true,
        }]
    );
}

#[test]
fn a_watcher_only_listens_and_a_joined_connection_cannot_turn_into_one() {
    let mut f = Fixture::new();
    let mut watcher = conn("bob", Role::Member);
    watcher.joined = false;
    f.frame(&watcher, serde_json::json!({"type":"watch","protocol":1}));
    watcher.watching = true;
    assert_eq!(
        error_of(&f.send(&watcher, "a", "sneaky")),
        ErrorCode::InvalidFrame
    );
    assert_eq!(f.room.head(), 0);
    assert_eq!(
        f.frame(&watcher, serde_json::json!({"type":"ping"})),
        vec![Effect::Reply(ServerMessage::Pong {})]
    );
    let joined = conn("ann", Role::Member);
    assert_eq!(
        error_of(&f.frame(&joined, serde_json::json!({"type":"watch","protocol":1}))),
        ErrorCode::InvalidFrame
    );
    // A watch in another protocol version is refused and closed, like a hello.
    let mut old = conn("cy", Role::Member);
    old.joined = false;
    let effects = f.frame(&old, serde_json::json!({"type":"watch","protocol":0}));
    assert!(effects.contains(&Effect::Close(
        close::UNSUPPORTED_PROTOCOL,
        ErrorCode::UnsupportedProtocol
    )));
}

#[test]
fn the_welcome_carries_your_read_position_and_a_first_join_is_announced_once() {
    let mut f = Fixture::new();
    let mut ann = conn("ann", Role::Member);
    ann.joined = false;
    let first = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
    assert!(first.contains(&Effect::NewMember(ann.member())));
    ann.joined = true;
    f.send(&ann, "a", "hi");
    f.frame(&ann, serde_json::json!({"type":"read","seq":1}));
    ann.joined = false;
    let again = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
    assert!(!again.iter().any(|e| matches!(e, Effect::NewMember(_))));
    assert!(again.iter().any(|e| matches!(
        e,
        Effect::Reply(ServerMessage::Welcome { read: Some(1), .. })
    )));
    ann.joined = true;
    let members = f.frame(&ann, serde_json::json!({"type":"members"}));
    assert_eq!(
        members,
        vec![Effect::Reply(ServerMessage::Members {
            members: vec![ann.member()]
        })]
    );
}

#[test]
fn a_hello_to_a_large_room_lists_nobody_and_gives_the_count_after_the_page() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    f.send(&ann, "a", "hi");
    let raw = serde_json::json!({"type":"hello","protocol":1}).to_string();
    let effects = f
        .room
        .on_frame(&ann, &mut f.limiter, Frame::Text(&raw), 9, || {
            crate::room::Present::Count(5_000)
        });
    let Effect::Reply(ServerMessage::Welcome { present, .. }) = &effects[1] else {
        panic!("welcome expected: {effects:?}")
    };
    assert!(present.is_empty(), "no list of 5,000 in every welcome");
    assert!(matches!(
        effects[2],
        Effect::Reply(ServerMessage::History { .. })
    ));
    let count = effects
        .iter()
        .position(|e| *e == Effect::Reply(ServerMessage::PresenceCount { count: 5_000 }))
        .expect("the count is sent");
    assert!(count > 2, "after the page");
}

#[test]
fn a_member_list_request_asks_the_object_for_a_slice_and_a_long_search_is_refused() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    let effects = f.frame(
        &ann,
        serde_json::json!({"type":"presence","offset":100,"query":"bo"}),
    );
    assert_eq!(
        effects,
        vec![Effect::PresencePage {
            offset: 100,
            limit: 50,
            query: Some("bo".into())
        }]
    );
    let effects = f.frame(
        &ann,
        serde_json::json!({"type":"presence","query":"x".repeat(65)}),
    );
    assert!(
        matches!(&effects[0], Effect::Reply(ServerMessage::Error { code, .. }) if *code == ErrorCode::TooLarge),
        "{effects:?}"
    );
}
