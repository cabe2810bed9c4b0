//! Sending, editing, deleting, threads, reactions and pins: what the log stores and acknowledges.

use super::*;

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
    assert_eq!(
        f.room.store().versions(1).unwrap(),
        vec!["first".to_string()]
    );
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
    let mut view = MessageView::from_event(&f.room.store().events_after(0, 1).unwrap()[0]).unwrap();
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
fn a_failing_store_gives_the_client_a_generic_internal_error_and_logs_the_detail() {
    /// SQLite that fails every write to the log, as a full disk would.
    struct Broken(Sqlite);
    impl Sql for Broken {
        fn execute(&self, sql: &str, params: &[store::SqlValue]) -> Result<(), StoreError> {
            if sql.contains("INSERT INTO events") {
                return Err(StoreError::new("disk full at /var/secret/path"));
            }
            self.0.execute(sql, params)
        }
        fn query(
            &self,
            sql: &str,
            params: &[store::SqlValue],
        ) -> Result<Vec<store::Row>, StoreError> {
            self.0.query(sql, params)
        }
    }
    let store = SqlStore::open(Broken(Sqlite::memory().unwrap())).unwrap();
    let mut room = Room::open(store, info()).unwrap();
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

#[test]
fn resolving_a_mention_reads_only_the_members_it_could_name_not_the_whole_room() {
    /// SQLite that counts the member rows its queries return.
    struct Counting {
        db: Sqlite,
        member_rows: std::cell::Cell<usize>,
    }
    impl Sql for Counting {
        fn execute(&self, sql: &str, params: &[store::SqlValue]) -> Result<(), StoreError> {
            self.db.execute(sql, params)
        }
        fn query(
            &self,
            sql: &str,
            params: &[store::SqlValue],
        ) -> Result<Vec<store::Row>, StoreError> {
            let rows = self.db.query(sql, params)?;
            if sql.contains("FROM members") {
                self.member_rows.set(self.member_rows.get() + rows.len());
            }
            Ok(rows)
        }
    }
    let db = Counting {
        db: Sqlite::memory().unwrap(),
        member_rows: std::cell::Cell::new(0),
    };
    let mut room = Room::open(SqlStore::open(db).unwrap(), info()).unwrap();
    for i in 0..300 {
        let member = Member {
            user_id: format!("u{i}"),
            name: format!("Member {i}"),
            avatar: None,
        };
        room.store().record_member(&member, i).unwrap();
    }
    let ann = conn("ann", Role::Member);
    let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
    room.store().db().member_rows.set(0);
    let raw = r#"{"type":"send","client_id":"c","text":"thanks @member 7 and @Member 42!"}"#;
    let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 1, Vec::new);
    let mentioned = effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify(ServerMessage::Activity { mentions, .. }) => Some(mentions.clone()),
            _ => None,
        })
        .expect("an activity notice");
    assert_eq!(mentioned, vec!["u42".to_string(), "u7".to_string()]);
    let read = room.store().db().member_rows.get();
    assert!(
        read <= 4,
        "a mention read {read} member rows; only the named candidates should be read"
    );
}

#[test]
fn a_message_takes_at_most_twenty_distinct_reactions_but_more_people_on_each() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    let bob = conn("bob", Role::Member);
    let seq = ack_of(&f.send(&ann, "p", "react")).0;
    let react = |id: String, emoji: String| serde_json::json!({"type":"react","client_id":id,"target":seq,"emoji":emoji,"add":true});
    // Twenty distinct emoji from one block of real emoji.
    let emoji: Vec<String> = ('😀'..='😔').map(String::from).collect();
    for (i, e) in emoji.iter().take(20).enumerate() {
        assert!(!ack_of(&f.frame(&ann, react(format!("r{i}"), e.clone()))).1);
    }
    let over = f.frame(&ann, react("r20".into(), emoji[20].clone()));
    assert_eq!(error_of(&over), ErrorCode::TooLarge);
    let joined = f.frame(&bob, react("b".into(), emoji[0].clone()));
    assert!(
        !ack_of(&joined).1,
        "another person on an existing one is fine"
    );
}
