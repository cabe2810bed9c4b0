#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;
    use crate::protocol::Role;

    fn info() -> RoomInfo {
        RoomInfo {
            slug: "general".into(),
            name: "General".into(),
            topic: String::new(),
            created_at: 0,
            last_activity: None,
            message_count: 0,
            assistant: Default::default(),
            private: false,
        }
    }

    fn conn(id: &str, role: Role) -> Conn {
        let mut conn = Conn::new(Author {
            id: id.into(),
            name: id.to_uppercase(),
            role,
        });
        conn.joined = true;
        conn
    }

    struct Fixture {
        room: Room<MemoryStore>,
        limiter: ConnLimiter,
        now: Millis,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                room: Room::open(MemoryStore::default(), info()).unwrap(),
                limiter: ConnLimiter::new(
                    RateLimits {
                        send_burst: 1000.0,
                        send_per_second: 1000.0,
                        frame_burst: 1000.0,
                        frame_per_second: 1000.0,
                    },
                    0,
                ),
                now: 1_000,
            }
        }

        fn frame(&mut self, conn: &Conn, msg: serde_json::Value) -> Vec<Effect> {
            self.now += 1;
            let raw = msg.to_string();
            self.room.on_frame(
                conn,
                &mut self.limiter,
                Frame::Text(&raw),
                self.now,
                Vec::new,
            )
        }

        /// A member whose connection said hello (so the room knows them, for mentions).
        fn member_who_joined(&mut self, id: &str) -> Conn {
            let mut member = conn(id, Role::Member);
            member.joined = false;
            self.frame(&member, serde_json::json!({"type":"hello","protocol":1}));
            member.joined = true;
            member
        }

        fn send(&mut self, conn: &Conn, client_id: &str, text: &str) -> Vec<Effect> {
            self.frame(
                conn,
                serde_json::json!({"type":"send","client_id":client_id,"text":text}),
            )
        }
    }

    fn ack_of(effects: &[Effect]) -> (Seq, bool) {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Reply(ServerMessage::Ack { seq, duplicate, .. }) => {
                    Some((*seq, *duplicate))
                }
                _ => None,
            })
            .expect("an ack")
    }

    fn error_of(effects: &[Effect]) -> ErrorCode {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Reply(ServerMessage::Error { code, .. }) => Some(*code),
                _ => None,
            })
            .expect("an error reply")
    }

    fn broadcasts(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Broadcast(_) | Effect::BroadcastOthers(_)))
            .count()
    }

    #[test]
    fn sends_get_gap_free_increasing_sequence_numbers() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let seqs: Vec<Seq> = (0..5)
            .map(|i| ack_of(&f.send(&ann, &format!("c{i}"), "hi")).0)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(f.room.head(), 5);
    }

    #[test]
    fn a_resend_with_the_same_client_id_is_acknowledged_again_but_not_stored_twice() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let first = f.send(&ann, "same", "hello");
        let again = f.send(&ann, "same", "hello");
        assert_eq!(ack_of(&first), (1, false));
        assert_eq!(ack_of(&again), (1, true));
        assert_eq!(broadcasts(&again), 0, "a duplicate is not re-broadcast");
        assert_eq!(f.room.head(), 1);
    }

    #[test]
    fn the_same_client_id_from_two_users_is_two_messages() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        assert_eq!(ack_of(&f.send(&ann, "x", "a")).0, 1);
        assert_eq!(ack_of(&f.send(&bob, "x", "b")).0, 2);
    }

    #[test]
    fn the_server_stamps_the_author_from_the_session() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.send(&ann, "c", "hi");
        let event = effects
            .iter()
            .find_map(|e| match e {
                Effect::Broadcast(ServerMessage::Event { event }) => Some(event.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(event.author, ann.author);
        assert_eq!(event.at, f.now);
    }

    #[test]
    fn an_invalid_frame_gets_an_error_and_nothing_is_broadcast() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(&ann, serde_json::json!({"type":"send","text":"no id"}));
        assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
        assert_eq!(broadcasts(&effects), 0);
        let effects = f.send(&ann, "c", &"x".repeat(limits::TEXT_MAX_CHARS + 1));
        assert_eq!(error_of(&effects), ErrorCode::TooLarge);
        assert_eq!(f.room.head(), 0);
        // The room keeps working.
        assert_eq!(ack_of(&f.send(&ann, "ok", "fine")).0, 1);
    }

    #[test]
    fn a_binary_frame_is_refused_with_invalid_frame() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f
            .room
            .on_frame(&ann, &mut f.limiter, Frame::Binary(10), 5, Vec::new);
        assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
    }

    #[test]
    fn anything_before_hello_closes_the_connection() {
        let mut f = Fixture::new();
        let mut ann = conn("ann", Role::Member);
        ann.joined = false;
        let effects = f.send(&ann, "c", "hi");
        assert!(effects.contains(&Effect::Close(
            close::INVALID_HANDSHAKE,
            ErrorCode::InvalidFrame
        )));
        assert_eq!(f.room.head(), 0);
    }

    #[test]
    fn a_hello_with_another_protocol_version_is_refused_and_closed() {
        let mut f = Fixture::new();
        let mut ann = conn("ann", Role::Member);
        ann.joined = false;
        let effects = f.frame(&ann, serde_json::json!({"type":"hello","protocol":99}));
        assert_eq!(error_of(&effects), ErrorCode::UnsupportedProtocol);
        assert!(effects.contains(&Effect::Close(
            close::UNSUPPORTED_PROTOCOL,
            ErrorCode::UnsupportedProtocol
        )));
        assert!(!effects.contains(&Effect::Joined));
    }

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
    fn editing_keeps_previous_versions_and_only_the_author_may_edit() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "first");
        let effects = f.frame(
            &bob,
            serde_json::json!({"type":"edit","client_id":"e1","target":1,"text":"hacked"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::Forbidden);
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e2","target":1,"text":"second"}),
        );
        assert_eq!(ack_of(&effects).0, 2);
        let message = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(message.text, "second");
        assert!(message.edited_at.is_some());
        assert_eq!(f.room.store().versions[&1], vec!["first".to_string()]);
    }

    #[test]
    fn deleting_leaves_a_tombstone_and_a_deleted_message_cannot_be_edited() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "secret");
        assert_eq!(
            ack_of(&f.frame(
                &ann,
                serde_json::json!({"type":"delete","client_id":"d","target":1})
            ))
            .0,
            2
        );
        let message = f.room.store().message(1).unwrap().unwrap();
        assert!(message.deleted);
        assert_eq!(message.text, "");
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e","target":1,"text":"back"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::NotFound);
    }

    #[test]
    fn a_member_cannot_delete_anothers_message_but_a_moderator_can() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        let mod_ = conn("mo", Role::Moderator);
        f.send(&ann, "a", "hi");
        let effects = f.frame(
            &bob,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(error_of(&effects), ErrorCode::Forbidden);
        let effects = f.frame(
            &mod_,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(ack_of(&effects).0, 2);
    }

    #[test]
    fn a_read_only_member_cannot_post() {
        let mut f = Fixture::new();
        let reader = conn("r", Role::ReadOnly);
        assert_eq!(error_of(&f.send(&reader, "a", "hi")), ErrorCode::Forbidden);
        assert_eq!(f.room.head(), 0);
    }

    #[test]
    fn editing_a_message_that_does_not_exist_is_not_found() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e","target":42,"text":"x"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::NotFound);
    }

    #[test]
    fn sends_beyond_the_burst_are_rate_limited_with_the_client_id_and_a_retry_time() {
        let mut room = Room::open(MemoryStore::default(), info()).unwrap();
        let ann = conn("ann", Role::Member);
        let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
        let burst = RateLimits::default().send_burst as usize;
        for i in 0..burst {
            let raw = serde_json::json!({"type":"send","client_id":format!("c{i}"),"text":"x"})
                .to_string();
            let effects = room.on_frame(&ann, &mut limiter, Frame::Text(&raw), 0, Vec::new);
            ack_of(&effects);
        }
        let raw = r#"{"type":"send","client_id":"late","text":"x"}"#;
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 0, Vec::new);
        let Effect::Reply(ServerMessage::Error {
            code,
            client_id,
            retry_after_ms,
            ..
        }) = &effects[0]
        else {
            panic!()
        };
        assert_eq!(*code, ErrorCode::RateLimited);
        assert_eq!(client_id.as_deref(), Some("late"));
        assert_eq!(*retry_after_ms, Some(200));
        // After the retry time the same send goes through.
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 200, Vec::new);
        ack_of(&effects);
    }

    #[test]
    fn a_connection_that_keeps_flooding_is_closed() {
        let mut room = Room::open(MemoryStore::default(), info()).unwrap();
        let ann = conn("ann", Role::Member);
        let limits = RateLimits::default();
        let mut limiter = ConnLimiter::new(limits, 0);
        let mut closed_after = None;
        for i in 0..(limits.frame_burst as usize + FLOOD_STRIKES as usize + 1) {
            let effects = room.on_frame(
                &ann,
                &mut limiter,
                Frame::Text(r#"{"type":"typing"}"#),
                0,
                Vec::new,
            );
            if effects.contains(&Effect::Close(close::RATE_LIMITED, ErrorCode::RateLimited)) {
                closed_after = Some(i);
                break;
            }
        }
        assert_eq!(
            closed_after,
            Some(limits.frame_burst as usize + FLOOD_STRIKES as usize - 1)
        );
    }

    #[test]
    fn typing_goes_to_the_others_and_ping_gets_a_pong() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(&ann, serde_json::json!({"type":"typing"}));
        assert!(matches!(
            effects.as_slice(),
            [Effect::BroadcastOthers(ServerMessage::Typing { .. })]
        ));
        let effects = f.frame(&ann, serde_json::json!({"type":"ping"}));
        assert_eq!(effects, vec![Effect::Reply(ServerMessage::Pong {})]);
    }

    #[test]
    fn a_user_is_present_only_through_a_joined_connection() {
        let ann = conn("ann", Role::Member);
        let mut bob = conn("bob", Role::Member);
        bob.joined = false;
        assert!(is_present([&ann, &bob], "ann"));
        assert!(!is_present([&ann, &bob], "bob"), "not before the hello");
        assert!(!is_present([], "ann"));
    }

    #[test]
    fn presence_lists_each_joined_user_once() {
        let ann1 = conn("ann", Role::Member);
        let ann2 = conn("ann", Role::Member);
        let mut bob = conn("bob", Role::Member);
        bob.joined = false;
        let members = presence([&ann1, &ann2, &bob]);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].user_id, "ann");
    }

    fn reply(f: &mut Fixture, who: &Conn, id: &str, target: Seq, also: bool) -> Vec<Effect> {
        f.frame(
            who,
            serde_json::json!({"type":"reply","client_id":id,"target":target,"text":format!("re {id}"),"also_in_room":also}),
        )
    }

    fn react(f: &mut Fixture, who: &Conn, id: &str, target: Seq, add: bool) -> Vec<Effect> {
        f.frame(
            who,
            serde_json::json!({"type":"react","client_id":id,"target":target,"emoji":"🎉","add":add}),
        )
    }

    fn replayed(f: &mut Fixture, who: &Conn, after: Seq) -> Vec<Event> {
        f.frame(
            who,
            serde_json::json!({"type":"hello","protocol":1,"after":after}),
        )
        .into_iter()
        .filter_map(|e| match e {
            Effect::Reply(ServerMessage::Replay { events, .. }) => Some(events),
            _ => None,
        })
        .flatten()
        .collect()
    }

    #[test]
    fn a_thread_only_reply_counts_on_its_root_but_stays_out_of_the_timeline() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "root");
        reply(&mut f, &bob, "r1", 1, false);
        reply(&mut f, &ann, "r2", 1, true);
        let root = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(root.replies.map(|r| (r.count, r.last_at)), Some((2, f.now)));
        let (page, _) = f.room.store().messages_before(None, 50).unwrap();
        let seqs: Vec<Seq> = page.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 3], "the also-to-room reply only");
        let (root, replies, has_more) = f.room.thread(1).unwrap();
        assert_eq!(root.seq, 1);
        assert_eq!(
            replies.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(!has_more);
    }

    #[test]
    fn a_reply_to_a_reply_joins_the_same_thread() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "root");
        reply(&mut f, &ann, "r1", 1, false);
        reply(&mut f, &ann, "r2", 2, false);
        let reply = f.room.store().message(3).unwrap().unwrap();
        assert_eq!(reply.thread, Some(1));
        assert_eq!(
            f.room.thread(3).unwrap().0.seq,
            1,
            "any message opens its thread"
        );
    }

    #[test]
    fn replying_to_a_deleted_or_missing_message_is_not_found() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "root");
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(
            error_of(&reply(&mut f, &ann, "r", 1, false)),
            ErrorCode::NotFound
        );
        assert_eq!(
            error_of(&reply(&mut f, &ann, "s", 99, false)),
            ErrorCode::NotFound
        );
        assert_eq!(f.room.head(), 2);
    }

    #[test]
    fn reactions_toggle_per_user_and_are_replayed_after_a_reconnect() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "party");
        react(&mut f, &ann, "e1", 1, true);
        react(&mut f, &bob, "e2", 1, true);
        react(&mut f, &ann, "e3", 1, false);
        let m = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(m.reactions.len(), 1);
        assert_eq!(m.reactions[0].by, vec![bob.member()]);
        assert!(m.reacted("bob", "🎉") && !m.reacted("ann", "🎉"));
        // A client that held only the message gets the reactions by replay and ends up with
        // the same view.
        let events = replayed(&mut f, &ann, 1);
        assert_eq!(events.len(), 3);
        let mut view =
            MessageView::from_event(&f.room.store().events_after(0, 1).unwrap()[0]).unwrap();
        for e in &events {
            view.apply(e);
        }
        assert_eq!(view, m);
    }

    #[test]
    fn a_reaction_must_be_an_emoji_and_a_read_only_member_cannot_react() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let reader = conn("r", Role::ReadOnly);
        f.send(&ann, "a", "hi");
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"react","client_id":"e","target":1,"emoji":"lol","add":true}),
        );
        assert_eq!(error_of(&effects), ErrorCode::InvalidInput);
        assert_eq!(
            error_of(&react(&mut f, &reader, "e", 1, true)),
            ErrorCode::Forbidden
        );
        assert_eq!(f.room.head(), 1);
    }

    #[test]
    fn only_owners_and_moderators_pin_and_the_pinned_list_follows_pins_and_deletes() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let mo = conn("mo", Role::Moderator);
        f.send(&ann, "a", "one");
        f.send(&ann, "b", "two");
        let pin = |target: Seq, id: &str, pinned: bool| serde_json::json!({"type":"pin","client_id":id,"target":target,"pinned":pinned});
        assert_eq!(
            error_of(&f.frame(&ann, pin(1, "p0", true))),
            ErrorCode::Forbidden
        );
        ack_of(&f.frame(&mo, pin(1, "p1", true)));
        ack_of(&f.frame(&mo, pin(2, "p2", true)));
        let effects = f.frame(&ann, serde_json::json!({"type":"pins"}));
        let Effect::Reply(ServerMessage::Pinned { messages }) = &effects[0] else {
            panic!("{effects:?}")
        };
        assert_eq!(
            messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 1]
        );
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":2}),
        );
        ack_of(&f.frame(&mo, pin(1, "p3", false)));
        assert!(f.room.store().pinned(10).unwrap().is_empty());
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

    fn notices(effects: &[Effect]) -> Vec<&ServerMessage> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify(m) => Some(m),
                _ => None,
            })
            .collect()
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
    fn a_failing_store_gives_the_client_a_generic_internal_error_and_logs_the_detail() {
        struct Broken;
        impl RoomStore for Broken {
            type Error = &'static str;
            fn head(&self) -> Result<Seq, &'static str> {
                Ok(0)
            }
            fn find_mutation(&self, _: &str, _: &str) -> Result<Option<Seq>, &'static str> {
                Ok(None)
            }
            fn message(&self, _: Seq) -> Result<Option<MessageView>, &'static str> {
                Ok(None)
            }
            fn append(&mut self, _: &Event) -> Result<(), &'static str> {
                Err("disk full at /var/secret/path")
            }
            fn events_after(&self, _: Seq, _: usize) -> Result<Vec<Event>, &'static str> {
                Ok(vec![])
            }
            fn messages_before(
                &self,
                _: Option<Seq>,
                _: usize,
            ) -> Result<(Vec<MessageView>, bool), &'static str> {
                Ok((vec![], false))
            }
            fn set_answer_text(&mut self, _: Seq, _: &str) -> Result<(), &'static str> {
                Err("disk full")
            }
            fn unfinished_answers(&self) -> Result<Vec<MessageView>, &'static str> {
                Ok(vec![])
            }
            fn summary(&self) -> Result<Option<Summary>, &'static str> {
                Ok(None)
            }
            fn set_summary(&mut self, _: &Summary) -> Result<(), &'static str> {
                Err("disk full")
            }
            fn thread_replies(
                &self,
                _: Seq,
                _: usize,
            ) -> Result<(Vec<MessageView>, bool), &'static str> {
                Ok((vec![], false))
            }
            fn pinned(&self, _: usize) -> Result<Vec<MessageView>, &'static str> {
                Ok(vec![])
            }
            fn record_member(&mut self, _: &Member, _: Millis) -> Result<bool, &'static str> {
                Ok(false)
            }
            fn members(&self, _: usize) -> Result<Vec<Member>, &'static str> {
                Ok(vec![])
            }
            fn mentioned(&self, _: Seq) -> Result<Vec<String>, &'static str> {
                Err("disk full")
            }
            fn add_mentions(&mut self, _: Seq, _: &[&str]) -> Result<(), &'static str> {
                Ok(())
            }
            fn read_position(&self, _: &str) -> Result<Option<Seq>, &'static str> {
                Ok(None)
            }
            fn set_read_position(&mut self, _: &str, _: Seq) -> Result<(), &'static str> {
                Ok(())
            }
            fn unread_counts(&self, _: &str, _: Seq) -> Result<UnreadCounts, &'static str> {
                Ok(UnreadCounts::default())
            }
            fn member(&self, _: &str) -> Result<Option<MemberRecord>, &'static str> {
                Ok(None)
            }
            fn put_member(&mut self, _: &MemberRecord) -> Result<(), &'static str> {
                Ok(())
            }
            fn member_records(&self) -> Result<Vec<MemberRecord>, &'static str> {
                Ok(vec![])
            }
            fn renamed_since(&self, _: Millis) -> Result<Vec<MemberRecord>, &'static str> {
                Ok(vec![])
            }
            fn append_audit(&mut self, _: &AuditEntry) -> Result<(), &'static str> {
                Ok(())
            }
            fn audit_before(
                &self,
                _: Option<u64>,
                _: usize,
            ) -> Result<Vec<AuditEntry>, &'static str> {
                Ok(vec![])
            }
            fn invite(&self, _: &str) -> Result<Option<Invite>, &'static str> {
                Ok(None)
            }
            fn put_invite(&mut self, _: &Invite) -> Result<(), &'static str> {
                Ok(())
            }
            fn invites(&self) -> Result<Vec<Invite>, &'static str> {
                Ok(vec![])
            }
        }
        let mut room = Room::open(Broken, info()).unwrap();
        let ann = conn("ann", Role::Member);
        let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
        let raw = r#"{"type":"send","client_id":"c","text":"x"}"#;
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 0, Vec::new);
        assert!(matches!(&effects[0], Effect::Log(detail) if detail.contains("disk full")));
        let Effect::Reply(ServerMessage::Error { code, message, .. }) = &effects[1] else {
            panic!()
        };
        assert_eq!(*code, ErrorCode::Internal);
        assert!(!message.contains("secret"));
        assert_eq!(
            room.head(),
            0,
            "a failed append does not advance the sequence"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Membership and moderation

    /// A fixture room where `owner` created it and `ann` (member) and `mod` (moderator) joined.
    fn moderated() -> (Fixture, Conn, Conn, Conn) {
        let mut f = Fixture::new();
        let mut owner = conn("owner", Role::Member);
        let mut ann = conn("ann", Role::Member);
        let mut moderator = conn("mod", Role::Member);
        for c in [&mut owner, &mut ann, &mut moderator] {
            f.room.admit(c, "owner", 0).unwrap();
        }
        assert_eq!(owner.author.role, Role::Owner);
        assert_eq!(ann.author.role, Role::Member);
        f.command(
            &owner,
            Command::SetRole {
                user_id: "mod".into(),
                role: Role::Moderator,
            },
        )
        .unwrap();
        moderator.author.role = Role::Moderator;
        (f, owner, ann, moderator)
    }

    impl Fixture {
        fn command(&mut self, conn: &Conn, command: Command) -> Result<Vec<Effect>, ErrorCode> {
            self.now += 1;
            self.room
                .command(conn, command, self.now)
                .map_err(|f| f.into_error().0.code)
        }
    }

    #[test]
    fn the_creator_is_owner_and_others_join_a_public_room_as_members() {
        let (f, ..) = moderated();
        let roles: Vec<(String, Role)> = f
            .room
            .store()
            .member_records()
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("owner".into(), Role::Owner),
                ("ann".into(), Role::Member),
                ("mod".into(), Role::Moderator)
            ]
        );
    }

    #[test]
    fn a_kick_closes_every_connection_of_the_target_and_is_audited() {
        let (mut f, _, _, moderator) = moderated();
        let effects = f
            .command(
                &moderator,
                Command::Kick {
                    user_id: "ann".into(),
                },
            )
            .unwrap();
        assert!(effects.contains(&Effect::CloseUser(
            "ann".into(),
            close::KICKED,
            ErrorCode::Kicked
        )));
        let log = f.room.store().audit_before(None, 10).unwrap();
        assert_eq!(log[0].action, "kick");
        assert_eq!(log[0].actor_id, "mod");
        assert_eq!(log[0].target_id.as_deref(), Some("ann"));
    }

    #[test]
    fn a_moderator_cannot_kick_the_owner_or_another_moderator() {
        let (mut f, owner, ann, moderator) = moderated();
        let kick_owner = Command::Kick {
            user_id: "owner".into(),
        };
        assert_eq!(
            f.command(&moderator, kick_owner.clone()),
            Err(ErrorCode::Forbidden)
        );
        // A member may not kick at all.
        assert_eq!(f.command(&ann, kick_owner), Err(ErrorCode::Forbidden));
        // The owner may kick the moderator.
        assert!(f
            .command(
                &owner,
                Command::Kick {
                    user_id: "mod".into()
                }
            )
            .is_ok());
    }

    #[test]
    fn a_global_admin_may_moderate_anyone_whatever_their_room_role() {
        let (mut f, ..) = moderated();
        let mut admin = conn("root", Role::Member);
        admin.admin = true;
        f.room.admit(&mut admin, "owner", 0).unwrap();
        assert!(f
            .command(
                &admin,
                Command::Ban {
                    user_id: "owner".into()
                }
            )
            .is_ok());
    }

    #[test]
    fn a_muted_member_gets_muted_with_the_time_left_until_the_mute_ends() {
        let (mut f, _, ann, moderator) = moderated();
        f.command(
            &moderator,
            Command::Mute {
                user_id: "ann".into(),
                seconds: 60,
            },
        )
        .unwrap();
        let effects = f.send(&ann, "m1", "can I talk?");
        let Some(Effect::Reply(ServerMessage::Error {
            code,
            retry_after_ms,
            ..
        })) = effects.first()
        else {
            panic!("{effects:?}")
        };
        assert_eq!(*code, ErrorCode::Muted);
        let left = retry_after_ms.unwrap();
        assert!(left > 59_000 && left <= 60_000, "{left}");
        f.now += 60_000;
        assert!(!ack_of(&f.send(&ann, "m2", "now?")).1);
    }

    #[test]
    fn a_banned_user_is_refused_at_connect_and_at_join() {
        let (mut f, owner, ann, _) = moderated();
        f.command(
            &owner,
            Command::Ban {
                user_id: "ann".into(),
            },
        )
        .unwrap();
        let mut again = ann.clone();
        let err = f.room.admit(&mut again, "owner", 5).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
        let err = f.room.join(&ann, "owner", None, 5).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    }

    #[test]
    fn a_banned_user_may_not_read_the_room_outside_a_connection_and_others_may() {
        let (mut f, owner, _, _) = moderated();
        assert!(f.room.may_read("ann").is_ok());
        assert!(f.room.may_read("never-joined").is_ok());
        f.command(
            &owner,
            Command::Ban {
                user_id: "ann".into(),
            },
        )
        .unwrap();
        let err = f.room.may_read("ann").unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    }

    #[test]
    fn read_only_members_cannot_post_and_role_changes_are_broadcast() {
        let (mut f, owner, mut ann, _) = moderated();
        let effects = f
            .command(
                &owner,
                Command::SetRole {
                    user_id: "ann".into(),
                    role: Role::ReadOnly,
                },
            )
            .unwrap();
        assert!(effects.contains(&Effect::SetRole("ann".into(), Role::ReadOnly)));
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Broadcast(ServerMessage::MemberUpdated {
                role: Role::ReadOnly,
                ..
            })
        )));
        ann.author.role = Role::ReadOnly;
        assert_eq!(error_of(&f.send(&ann, "x", "hi")), ErrorCode::Forbidden);
    }

    #[test]
    fn the_owner_can_switch_when_the_assistant_answers() {
        let (mut f, owner, ..) = moderated();
        assert_eq!(
            f.room.info().assistant,
            crate::protocol::AssistantMode::Mention
        );
        f.command(
            &owner,
            Command::UpdateRoom {
                name: None,
                topic: None,
                private: None,
                assistant: Some(crate::protocol::AssistantMode::All),
            },
        )
        .unwrap();
        assert_eq!(f.room.info().assistant, crate::protocol::AssistantMode::All);
    }

    #[test]
    fn a_private_room_admits_only_members_and_invitees() {
        let (mut f, owner, ..) = moderated();
        f.command(
            &owner,
            Command::UpdateRoom {
                name: None,
                topic: None,
                private: Some(true),
                assistant: None,
            },
        )
        .unwrap();
        let mut eve = conn("eve", Role::Member);
        let err = f.room.admit(&mut eve, "owner", 10).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Forbidden);
        let invite = f
            .room
            .create_invite(
                &owner,
                &CreateInvite {
                    expires_in_seconds: Some(60),
                    max_uses: Some(1),
                },
                "tok".into(),
                10,
            )
            .unwrap();
        assert_eq!(invite.expires_at, Some(60_010));
        assert_eq!(
            f.room.join(&eve, "owner", Some("tok"), 20).unwrap(),
            Role::Member
        );
        assert!(f.room.admit(&mut eve, "owner", 30).is_ok());
        // Used up now.
        let mallory = conn("mallory", Role::Member);
        let err = f.room.join(&mallory, "owner", Some("tok"), 20).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
    }

    #[test]
    fn a_revoked_invite_admits_no_one() {
        let (mut f, owner, ..) = moderated();
        f.room
            .create_invite(&owner, &CreateInvite::default(), "tok".into(), 10)
            .unwrap();
        f.command(
            &owner,
            Command::RevokeInvite {
                token: "tok".into(),
            },
        )
        .unwrap();
        let eve = conn("eve", Role::Member);
        let err = f.room.join(&eve, "owner", Some("tok"), 20).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
    }

    #[test]
    fn a_rename_reaches_the_room_and_pages_show_the_current_name_on_old_messages() {
        let (mut f, _, ann, _) = moderated();
        f.send(&ann, "a", "hello");
        let effects = f
            .room
            .profile_changed(
                Member {
                    user_id: "ann".into(),
                    name: "Annie".into(),
                    avatar: None,
                },
                f.now + 1,
            )
            .unwrap();
        assert!(matches!(
            &effects[0],
            Effect::Broadcast(ServerMessage::ProfileUpdated { member }) if member.name == "Annie"
        ));
        let (page, _) = f.room.store().messages_before(None, 10).unwrap();
        assert_eq!(page[0].author.name, "Annie");
    }

    #[test]
    fn a_client_catching_up_by_replay_learns_names_changed_since_what_it_holds_and_no_others() {
        let (mut f, _, ann, moderator) = moderated();
        f.send(&ann, "a", "hello");
        // A rename before the cursor's event is already in what the client holds.
        f.now += 10;
        f.room
            .profile_changed(
                Member {
                    user_id: "mod".into(),
                    name: "Moderator".into(),
                    avatar: None,
                },
                f.now,
            )
            .unwrap();
        f.send(&moderator, "b", "second");
        f.now += 10;
        f.room
            .profile_changed(
                Member {
                    user_id: "ann".into(),
                    name: "Annie".into(),
                    avatar: None,
                },
                f.now,
            )
            .unwrap();
        let mut returning = ann.clone();
        returning.joined = false;
        let effects = f.frame(
            &returning,
            serde_json::json!({"type":"hello","protocol":1,"after":2}),
        );
        let renamed: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(ServerMessage::ProfileUpdated { member }) => {
                    Some(member.name.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(renamed, ["Annie"]);
        // Without a cursor the page itself carries current names: no extra frames.
        let effects = f.frame(&returning, serde_json::json!({"type":"hello","protocol":1}));
        assert!(!effects
            .iter()
            .any(|e| matches!(e, Effect::Reply(ServerMessage::ProfileUpdated { .. }))));
    }

    #[test]
    fn only_those_allowed_read_the_audit_log() {
        let (f, owner, ann, moderator) = moderated();
        assert!(f.room.audit_log(&owner, None).is_ok());
        assert!(f.room.audit_log(&moderator, None).is_ok());
        assert_eq!(
            f.room
                .audit_log(&ann, None)
                .unwrap_err()
                .into_error()
                .0
                .code,
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn a_moderator_deleting_someone_elses_message_is_audited() {
        let (mut f, _, ann, moderator) = moderated();
        let seq = ack_of(&f.send(&ann, "a", "spam")).0;
        f.frame(
            &moderator,
            serde_json::json!({"type":"delete","client_id":"d","target":seq}),
        );
        let log = f.room.store().audit_before(None, 10).unwrap();
        assert_eq!(log[0].action, "delete_message");
        assert_eq!(log[0].target_id.as_deref(), Some("ann"));
    }

    #[test]
    fn a_moderate_frame_is_answered_with_applied() {
        let (mut f, _, _, moderator) = moderated();
        let effects = f.frame(
            &moderator,
            serde_json::json!({"type":"moderate","client_id":"m1","command":{"action":"mute","user_id":"ann","seconds":5}}),
        );
        assert_eq!(
            effects[0],
            Effect::Reply(ServerMessage::Applied {
                client_id: "m1".into()
            })
        );
        let effects = f.frame(
            &moderator,
            serde_json::json!({"type":"moderate","client_id":"m2","command":{"action":"mute","user_id":"ann","seconds":0}}),
        );
        assert_eq!(error_of(&effects), ErrorCode::InvalidInput);
    }
}
