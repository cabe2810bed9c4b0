//! The room's SQL store on real SQLite: the same schema and statements the Durable Object runs.
//! Each test drives `SqlStore` directly with events as the room would log them.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

use shared::moderation::MemberRecord;
use shared::protocol::{Author, Event, EventKind, Member, Role, Seq};
use shared::room::store::schema::{statements, MIGRATIONS};
use shared::room::store::sqlite::Sqlite;
use shared::room::store::{Sql, SqlValue, RANK_WINDOW, SEARCH_INDEX_BATCH};
use shared::room::SqlStore;
use shared::search::parse_query;

fn store() -> SqlStore<Sqlite> {
    SqlStore::open(Sqlite::memory().unwrap()).unwrap()
}

fn author(id: &str) -> Author {
    Author {
        id: id.into(),
        name: id.to_uppercase(),
        role: Role::Member,
    }
}

fn event(seq: Seq, by: &str, client_id: &str, kind: EventKind) -> Event {
    Event {
        seq,
        at: 1_000 + seq as i64,
        author: author(by),
        client_id: client_id.into(),
        kind,
    }
}

fn say(seq: Seq, by: &str, text: &str) -> Event {
    event(
        seq,
        by,
        &format!("c{seq}"),
        EventKind::Message {
            text: text.into(),
            attachments: Vec::new(),
        },
    )
}

fn search(store: &SqlStore<Sqlite>, q: &str) -> Vec<Seq> {
    let query = parse_query(q).unwrap();
    store
        .search("room", &query, 20, RANK_WINDOW)
        .unwrap()
        .into_iter()
        .map(|h| h.seq)
        .collect()
}

/// Every text stored anywhere for message `seq`: its row, its versions, and the log.
fn texts_anywhere(store: &SqlStore<Sqlite>) -> String {
    let db = store.db();
    let mut all = String::new();
    for sql in [
        "SELECT text FROM messages",
        "SELECT text FROM message_versions",
        "SELECT body FROM events",
        "SELECT COALESCE(answer, '') FROM messages",
    ] {
        for row in db.query(sql, &[]).unwrap() {
            all.push_str(&row.text(0).unwrap());
            all.push('\n');
        }
    }
    all
}

#[test]
fn an_appended_event_is_read_back_in_order_and_the_head_follows() {
    let s = store();
    assert_eq!(s.head().unwrap(), 0);
    for seq in 1..=3 {
        s.append(&say(seq, "ann", &format!("hello {seq}"))).unwrap();
    }
    assert_eq!(s.head().unwrap(), 3);
    let events = s.events_after(1, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(events[0], say(2, "ann", "hello 2"));
    assert_eq!(s.message(3).unwrap().unwrap().text, "hello 3");
    assert_eq!(s.message_count().unwrap(), 3);
    assert_eq!(s.last_message_at().unwrap(), Some(1_003));
}

#[test]
fn the_message_count_includes_every_message_stored_before_each_read_and_reading_again_writes_nothing(
) {
    let s = store();
    assert_eq!(s.message_count().unwrap(), 0);
    s.append(&say(1, "ann", "one")).unwrap();
    s.append(&say(2, "ann", "two")).unwrap();
    assert_eq!(s.message_count().unwrap(), 2);
    // Non-message events are not messages.
    let react = EventKind::React {
        target: 1,
        emoji: "👍".into(),
        add: true,
    };
    s.append(&event(3, "bob", "c3", react)).unwrap();
    s.append(&say(4, "bob", "three")).unwrap();
    assert_eq!(s.message_count().unwrap(), 3);
    let counter = || s.meta("message_count").unwrap();
    let before = counter();
    assert_eq!(s.message_count().unwrap(), 3);
    assert_eq!(counter(), before);
    // A deleted message was still posted.
    let delete = EventKind::Delete { target: 4 };
    s.append(&event(5, "bob", "c5", delete)).unwrap();
    assert_eq!(s.message_count().unwrap(), 3);
}

#[test]
fn the_same_author_and_client_id_cannot_be_stored_twice_but_another_author_can() {
    let s = store();
    s.append(&event(
        1,
        "ann",
        "same",
        EventKind::Message {
            text: "a".into(),
            attachments: Vec::new(),
        },
    ))
    .unwrap();
    assert_eq!(s.find_mutation("ann", "same").unwrap(), Some(1));
    assert_eq!(s.find_mutation("bob", "same").unwrap(), None);
    let again = s.append(&event(
        2,
        "ann",
        "same",
        EventKind::Message {
            text: "b".into(),
            attachments: Vec::new(),
        },
    ));
    assert!(
        again.is_err(),
        "the unique (author, client id) refuses a second copy"
    );
    assert_eq!(s.head().unwrap(), 1, "and nothing of it was stored");
    assert!(
        s.message(2).unwrap().is_none(),
        "the failed append left no message behind (one transaction)"
    );
    s.append(&event(
        2,
        "bob",
        "same",
        EventKind::Message {
            text: "b".into(),
            attachments: Vec::new(),
        },
    ))
    .unwrap();
    assert_eq!(s.find_mutation("bob", "same").unwrap(), Some(2));
}

#[test]
fn an_event_of_unknown_kind_is_refused() {
    let s = store();
    assert!(s.append(&event(1, "ann", "x", EventKind::Unknown)).is_err());
    assert_eq!(s.head().unwrap(), 0);
}

#[test]
fn pages_go_by_sequence_with_the_authors_current_name_and_say_whether_more_exist() {
    let s = store();
    for seq in 1..=5 {
        s.append(&say(seq, "ann", &format!("m{seq}"))).unwrap();
    }
    s.put_member(&shared::moderation::MemberRecord {
        user_id: "ann".into(),
        name: "Ann Renamed".into(),
        role: Role::Member,
        banned: false,
        muted_until: None,
        joined_at: 0,
        renamed_at: Some(2_000),
        name_as_of: None,
    })
    .unwrap();
    let (latest, more) = s.messages_before(None, 2).unwrap();
    assert_eq!(latest.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert!(more);
    assert_eq!(latest[0].author.name, "Ann Renamed");
    let (older, more) = s.messages_before(Some(4), 10).unwrap();
    assert_eq!(
        older.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(!more);
    let (everything, _) = s.messages_before(None, usize::MAX).unwrap();
    assert_eq!(
        everything.len(),
        5,
        "no limit means no limit, not an overflow"
    );
}

#[test]
fn an_edit_keeps_the_previous_text_as_a_version_and_search_finds_only_the_new_words() {
    let s = store();
    s.append(&say(1, "ann", "the launch is friday")).unwrap();
    s.append(&event(
        2,
        "ann",
        "c2",
        EventKind::Edit {
            target: 1,
            text: "the launch is monday".into(),
        },
    ))
    .unwrap();
    let m = s.message(1).unwrap().unwrap();
    assert_eq!(m.text, "the launch is monday");
    assert_eq!(m.edited_at, Some(1_002));
    assert_eq!(
        s.versions(1).unwrap(),
        vec!["the launch is friday".to_string()]
    );
    assert_eq!(search(&s, "monday"), vec![1]);
    assert!(search(&s, "friday").is_empty());
}

#[test]
fn a_delete_scrubs_the_words_from_the_message_its_versions_and_every_logged_event() {
    let s = store();
    s.append(&say(1, "ann", "secret plan alpha")).unwrap();
    s.append(&event(
        2,
        "ann",
        "c2",
        EventKind::Edit {
            target: 1,
            text: "secret plan bravo".into(),
        },
    ))
    .unwrap();
    s.append(&event(
        3,
        "bob",
        "c3",
        EventKind::React {
            target: 1,
            emoji: "👍".into(),
            add: true,
        },
    ))
    .unwrap();
    s.append(&say(4, "bob", "unrelated words")).unwrap();
    s.append(&event(5, "ann", "c5", EventKind::Delete { target: 1 }))
        .unwrap();

    let all = texts_anywhere(&s);
    assert!(!all.contains("alpha"), "original text gone: {all}");
    assert!(!all.contains("bravo"), "edited text gone: {all}");
    assert!(
        all.contains("unrelated words"),
        "other messages keep theirs"
    );
    let m = s.message(1).unwrap().unwrap();
    assert!(m.deleted);
    assert!(m.reactions.is_empty() && !m.pinned);
    assert!(s.versions(1).unwrap().is_empty());
    assert!(
        search(&s, "secret").is_empty(),
        "the search index forgot it too"
    );
    // The replay still has every event, in order, with the words gone.
    let replay = s.events_after(0, 10).unwrap();
    assert_eq!(replay.len(), 5);
    assert_eq!(
        replay[0].kind,
        EventKind::Message {
            text: String::new(),
            attachments: Vec::new()
        }
    );
}

#[test]
fn deleting_a_thread_root_leaves_its_replies_standing() {
    let s = store();
    s.append(&say(1, "ann", "root words")).unwrap();
    s.append(&event(
        2,
        "bob",
        "c2",
        EventKind::Reply {
            thread: 1,
            text: "reply words".into(),
            also_in_room: false,
            attachments: Vec::new(),
        },
    ))
    .unwrap();
    let root = s.message(1).unwrap().unwrap();
    assert_eq!(root.replies.map(|r| r.count), Some(1));
    s.append(&event(3, "ann", "c3", EventKind::Delete { target: 1 }))
        .unwrap();
    assert_eq!(s.message(2).unwrap().unwrap().text, "reply words");
    assert_eq!(search(&s, "reply"), vec![2]);
    let (replies, more) = s.thread_replies(1, 10).unwrap();
    assert_eq!(replies.len(), 1);
    assert!(!more);
}

#[test]
fn search_filters_by_author_thread_and_time_and_never_returns_deleted_messages() {
    let s = store();
    s.append(&say(1, "ann", "budget review")).unwrap();
    s.append(&say(2, "bob", "budget draft")).unwrap();
    s.append(&event(
        3,
        "bob",
        "c3",
        EventKind::Reply {
            thread: 1,
            text: "budget numbers".into(),
            also_in_room: false,
            attachments: Vec::new(),
        },
    ))
    .unwrap();
    let mut found = search(&s, "budget");
    found.sort_unstable();
    assert_eq!(found, vec![1, 2, 3]);
    assert_eq!(search(&s, "budget from:ann"), vec![1]);
    assert_eq!(search(&s, "budget in:thread"), vec![3]);
    s.append(&event(4, "bob", "c4", EventKind::Delete { target: 2 }))
        .unwrap();
    let mut found = search(&s, "budget");
    found.sort_unstable();
    assert_eq!(found, vec![1, 3]);
}

#[test]
fn with_more_matches_than_the_rank_window_only_the_newest_are_ranked() {
    let s = store();
    for seq in 1..=10 {
        s.append(&say(seq, "ann", "common word")).unwrap();
    }
    let query = parse_query("common").unwrap();
    let hits = s.search("room", &query, 20, 3).unwrap();
    let mut seqs: Vec<Seq> = hits.iter().map(|h| h.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![8, 9, 10]);
    assert!(hits.iter().all(|h| h.snippet.contains("common")));
}

#[test]
fn context_gives_the_neighbours_of_a_timeline_message_and_the_thread_of_a_reply() {
    let s = store();
    for seq in 1..=7 {
        s.append(&say(seq, "ann", &format!("m{seq}"))).unwrap();
    }
    s.append(&event(
        8,
        "bob",
        "c8",
        EventKind::Reply {
            thread: 4,
            text: "in thread".into(),
            also_in_room: false,
            attachments: Vec::new(),
        },
    ))
    .unwrap();
    let (thread, around) = s.context(4, 2).unwrap().unwrap();
    assert_eq!(thread, None);
    assert_eq!(
        around.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    let (thread, messages) = s.context(8, 2).unwrap().unwrap();
    assert_eq!(thread, Some(4));
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 8]
    );
    assert!(s.context(99, 2).unwrap().is_none());
}

#[test]
fn members_mentions_and_read_positions_give_unread_counts_that_ignore_deleted_messages() {
    let s = store();
    let bob = Member {
        user_id: "bob".into(),
        name: "Bob".into(),
        avatar: None,
    };
    assert!(s.record_member(&bob, 1).unwrap(), "first join");
    assert!(
        !s.record_member(&bob, 2).unwrap(),
        "a rejoin is not a first join"
    );
    s.append(&say(1, "ann", "hi @Bob")).unwrap();
    s.add_mentions(1, &["bob"]).unwrap();
    s.append(&say(2, "ann", "more")).unwrap();
    s.append(&say(3, "bob", "mine")).unwrap();
    let counts = s.unread_counts("bob", 0).unwrap();
    assert_eq!((counts.unread, counts.mentions), (2, 1));
    s.set_read_position("bob", 1).unwrap();
    assert_eq!(s.read_position("bob").unwrap(), Some(1));
    let counts = s.unread_counts("bob", 1).unwrap();
    assert_eq!((counts.unread, counts.mentions), (1, 0));
    s.append(&event(4, "ann", "c4", EventKind::Delete { target: 1 }))
        .unwrap();
    let counts = s.unread_counts("bob", 0).unwrap();
    assert_eq!(
        (counts.unread, counts.mentions),
        (1, 0),
        "a deleted message counts neither as unread nor as a mention"
    );
    assert_eq!(s.mentioned(1).unwrap(), vec!["bob".to_string()]);
}

#[test]
fn network_bans_end_on_time_lift_per_banned_user_and_ended_ones_are_dropped_by_the_next_ban() {
    let s = store();
    let rows = |s: &SqlStore<Sqlite>| {
        s.db()
            .query(
                "SELECT network, user_id FROM network_bans ORDER BY 1, 2",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| format!("{}/{}", r.text(0).unwrap(), r.text(1).unwrap()))
            .collect::<Vec<_>>()
    };
    s.ban_network("net-a", "gus", 0, 100).unwrap();
    s.ban_network("net-a", "gil", 0, 200).unwrap();
    s.ban_network("net-b", "ned", 0, 50).unwrap();
    assert!(s.network_banned("net-b", 49).unwrap());
    assert!(!s.network_banned("net-b", 50).unwrap(), "ended");
    assert!(!s.network_banned("net-c", 0).unwrap(), "never banned");
    // Lifting gus's ban leaves gil's ban of the same network in force.
    s.lift_network_bans("gus").unwrap();
    assert!(s.network_banned("net-a", 150).unwrap());
    // Banning gus again (a second ban moves the end) drops the rows that ended by then.
    s.ban_network("net-a", "gus", 60, 300).unwrap();
    s.ban_network("net-a", "gus", 60, 400).unwrap();
    assert_eq!(rows(&s), ["net-a/gil", "net-a/gus"]);
    assert!(s.network_banned("net-a", 399).unwrap());
}

/// Builds a database at schema version `version` (0: nothing), with one message as that
/// version stored it, the way an older deploy left it.
/// The schema version from which the message counter is brought up to date when read (the
/// versions before wrote it with every message).
const LAZY_MESSAGE_COUNT: usize = 8;

fn database_at(version: usize) -> Sqlite {
    let db = Sqlite::memory().unwrap();
    if version == 0 {
        return db;
    }
    db.execute(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        &[],
    )
    .unwrap();
    for migration in &MIGRATIONS[..version] {
        for statement in statements(migration) {
            db.execute(&statement, &[]).unwrap();
        }
    }
    // The columns every version has (v1's).
    let event = say(1, "ann", "written before the upgrade");
    db.execute(
        "INSERT INTO events (seq, at, author_id, client_id, target, body) VALUES (1, ?, 'ann', 'c1', NULL, ?)",
        &[
            SqlValue::Integer(event.at),
            SqlValue::Text(serde_json::to_string(&event).unwrap()),
        ],
    )
    .unwrap();
    db.execute(
        "INSERT INTO messages (seq, at, author, client_id, text) VALUES (1, ?, ?, 'c1', ?)",
        &[
            SqlValue::Integer(event.at),
            SqlValue::Text(serde_json::to_string(&event.author).unwrap()),
            SqlValue::Text("written before the upgrade".into()),
        ],
    )
    .unwrap();
    if version < LAZY_MESSAGE_COUNT {
        // Versions before counted each message as it was stored.
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('message_count', '1')",
            &[],
        )
        .unwrap();
    }
    if version >= 4 {
        // v4 made `member_roles`: a guest banned before network bans existed.
        db.execute(
            "INSERT INTO member_roles (user_id, name, role, banned, joined_at)
             VALUES ('gus', 'Gus', 'member', 1, 1)",
            &[],
        )
        .unwrap();
    }
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
        &[SqlValue::Text(version.to_string())],
    )
    .unwrap();
    db
}

#[test]
fn a_room_stored_by_any_earlier_schema_version_opens_migrated_with_its_history_intact() {
    for version in 0..=MIGRATIONS.len() {
        let s = SqlStore::open(database_at(version)).unwrap();
        assert_eq!(
            s.schema_version().unwrap(),
            MIGRATIONS.len(),
            "from v{version}"
        );
        let expected_head = u64::from(version > 0);
        assert_eq!(s.head().unwrap(), expected_head, "from v{version}");
        if version > 0 {
            let (page, _) = s.messages_before(None, 10).unwrap();
            assert_eq!(
                page[0].text, "written before the upgrade",
                "from v{version}"
            );
            assert_eq!(search(&s, "upgrade"), vec![1], "indexed after v{version}");
            assert_eq!(s.find_mutation("ann", "c1").unwrap(), Some(1));
        }
        // And the migrated store takes new events.
        let next = expected_head + 1;
        s.append(&say(next, "bob", "after the upgrade")).unwrap();
        assert_eq!(s.head().unwrap(), next, "from v{version}");
        let mut found = search(&s, "upgrade");
        found.sort_unstable();
        assert_eq!(found, (1..=next).collect::<Vec<_>>(), "from v{version}");
        assert_eq!(s.message_count().unwrap(), next, "from v{version}");
        // A member from before keeps their standing and has no network; the migrated store
        // remembers members' networks and bans networks for a time.
        if version >= 4 {
            let gus = s.member("gus").unwrap().expect("kept");
            assert!(gus.banned, "from v{version}");
            assert_eq!(s.member_network("gus").unwrap(), None, "from v{version}");
        }
        s.put_member(&MemberRecord {
            user_id: "gil".into(),
            name: "Gil".into(),
            role: Role::Member,
            banned: false,
            muted_until: None,
            joined_at: 2,
            renamed_at: None,
            name_as_of: Some(7),
        })
        .unwrap();
        // Every earlier version also learns how recent a member's name is.
        assert_eq!(
            s.member("gil").unwrap().and_then(|g| g.name_as_of),
            Some(7),
            "from v{version}"
        );
        s.set_member_network("gil", Some("net-a")).unwrap();
        assert_eq!(
            s.member_network("gil").unwrap().as_deref(),
            Some("net-a"),
            "from v{version}"
        );
        s.ban_network("net-a", "gil", 10, 20).unwrap();
        assert!(s.network_banned("net-a", 19).unwrap(), "from v{version}");
        assert!(!s.network_banned("net-a", 20).unwrap(), "from v{version}");
    }
}

#[test]
fn a_store_newer_than_the_code_is_refused_rather_than_misread() {
    let db = database_at(MIGRATIONS.len());
    db.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'",
        &[SqlValue::Text((MIGRATIONS.len() + 1).to_string())],
    )
    .unwrap();
    let refused = SqlStore::open(db).err().expect("refused");
    assert!(refused.to_string().contains("newer"), "{refused}");
}

#[test]
fn reopening_a_database_file_keeps_everything_a_restart_needs() {
    let path = std::env::temp_dir().join(format!("store-reopen-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    {
        let s = SqlStore::open(Sqlite::open(&path).unwrap()).unwrap();
        s.append(&say(1, "ann", "kept")).unwrap();
        s.set_read_position("ann", 1).unwrap();
    }
    let s = SqlStore::open(Sqlite::open(&path).unwrap()).unwrap();
    assert_eq!(s.head().unwrap(), 1);
    assert_eq!(s.find_mutation("ann", "c1").unwrap(), Some(1));
    assert_eq!(s.read_position("ann").unwrap(), Some(1));
    drop(s);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn reactions_pins_and_replies_leave_the_messages_text_and_its_search_index_alone() {
    let s = store();
    // Counts every write of `messages.text`: each one also rewrites the FTS5 index entry.
    s.db()
        .execute("CREATE TABLE text_writes (seq INTEGER)", &[])
        .unwrap();
    s.db()
        .execute(
            "CREATE TRIGGER count_text_writes AFTER UPDATE OF text ON messages BEGIN
                INSERT INTO text_writes (seq) VALUES (new.seq);
             END",
            &[],
        )
        .unwrap();
    s.append(&say(1, "ann", "root words")).unwrap();
    let react = EventKind::React {
        target: 1,
        emoji: "👍".into(),
        add: true,
    };
    s.append(&event(2, "bob", "c2", react)).unwrap();
    s.append(&event(
        3,
        "ann",
        "c3",
        EventKind::Pin {
            target: 1,
            pinned: true,
        },
    ))
    .unwrap();
    let reply = EventKind::Reply {
        thread: 1,
        text: "a reply".into(),
        also_in_room: false,
        attachments: Vec::new(),
    };
    s.append(&event(4, "bob", "c4", reply)).unwrap();
    let writes = s
        .db()
        .query("SELECT COUNT(*) FROM text_writes", &[])
        .unwrap();
    assert_eq!(writes[0].int(0).unwrap(), 0, "no text was rewritten");
    let m = s.message(1).unwrap().unwrap();
    assert!(m.pinned && m.reactions.len() == 1 && m.replies.map(|r| r.count) == Some(1));
    // An edit does write it, once.
    let edit = EventKind::Edit {
        target: 1,
        text: "new words".into(),
    };
    s.append(&event(5, "ann", "c5", edit)).unwrap();
    let writes = s
        .db()
        .query("SELECT COUNT(*) FROM text_writes", &[])
        .unwrap();
    assert_eq!(writes[0].int(0).unwrap(), 1);
    assert_eq!(search(&s, "new"), vec![1]);
}

/// FTS5's own check that its index matches the `messages` text it indexes.
fn index_is_consistent(s: &SqlStore<Sqlite>) -> bool {
    s.db()
        .execute(
            "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
            &[],
        )
        .is_ok()
}

#[test]
fn search_sees_every_stored_message_while_the_index_is_written_in_batches_and_stays_consistent() {
    let s = store();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    // Across several batches: each message is found by its current text at once, whether or
    // not its batch was indexed yet; edits and deletes land on indexed and pending messages.
    for round in 0..(3 * SEARCH_INDEX_BATCH) {
        let n = next();
        s.append(&say(n, "ann", &format!("alpha{round} common")))
            .unwrap();
        assert_eq!(
            search(&s, &format!("alpha{round}")),
            vec![n],
            "round {round}"
        );
        match round % 5 {
            1 => {
                let edit = EventKind::Edit {
                    target: n,
                    text: format!("beta{round} common"),
                };
                s.append(&event(next(), "ann", &format!("e{n}"), edit))
                    .unwrap();
                assert!(
                    search(&s, &format!("alpha{round}")).is_empty(),
                    "round {round}"
                );
                assert_eq!(
                    search(&s, &format!("beta{round}")),
                    vec![n],
                    "round {round}"
                );
            }
            3 => {
                let delete = EventKind::Delete { target: n };
                s.append(&event(next(), "ann", &format!("d{n}"), delete))
                    .unwrap();
                assert!(
                    search(&s, &format!("alpha{round}")).is_empty(),
                    "round {round}"
                );
            }
            _ => {}
        }
        assert!(index_is_consistent(&s), "round {round}");
    }
    // Edits and deletes of messages that were pending when they happened, indexed afterwards
    // by a batch rather than by a search.
    let s = store();
    s.append(&say(1, "ann", "gamma first")).unwrap();
    let edit = EventKind::Edit {
        target: 1,
        text: "delta second".into(),
    };
    s.append(&event(2, "ann", "e1", edit)).unwrap();
    s.append(&say(3, "bob", "epsilon")).unwrap();
    s.append(&event(4, "bob", "d3", EventKind::Delete { target: 3 }))
        .unwrap();
    for n in 5..=SEARCH_INDEX_BATCH {
        s.append(&say(n, "cy", "filler")).unwrap();
    }
    assert!(index_is_consistent(&s));
    assert!(search(&s, "gamma").is_empty());
    assert_eq!(search(&s, "delta"), vec![1]);
    assert!(search(&s, "epsilon").is_empty());
    assert!(index_is_consistent(&s));
}

#[test]
fn an_unread_range_larger_than_the_scan_gives_its_newest_messages_oldest_first_and_its_size() {
    let s = store();
    for seq in 1..=10 {
        s.append(&say(seq, "ann", &format!("m{seq}"))).unwrap();
    }
    // A catch-up after a long absence reads the end of what was missed, not its start.
    let (messages, total) = s.timeline_range(2, 9, 3).unwrap();
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    assert_eq!(total, 7);
}
