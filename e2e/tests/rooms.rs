//! Integration tests of threads, reactions, pins, read positions, mentions and search against
//! the real Worker and its Durable Objects (SQLite with FTS5) under `wrangler dev`.
//!
//! One shared server; tests keep apart by their own sessions and rooms. Nothing asserts on
//! elapsed time.

use e2e::client::{expect_error, RoomSocket, DEFAULT_TIMEOUT};
use e2e::{DevOptions, DevServer, Result, Session};
use shared::protocol::http::{Context, RoomList, SearchResults};
use shared::protocol::{ClientMessage, EventKind, Seq, ServerMessage, UnreadCounts};
use shared::search::{MARK_END, MARK_START};
use shared::unread::UnreadTracker;
use shared::ErrorCode;
use tokio::sync::OnceCell;

static SHARED: OnceCell<DevServer> = OnceCell::const_new();

async fn server() -> &'static DevServer {
    DevServer::shared(&SHARED, DevOptions::default).await
}

async fn user(name: &str) -> Result<Session> {
    Session::create(server().await, name).await
}

async fn reply(
    socket: &mut RoomSocket,
    id: &str,
    target: Seq,
    text: &str,
    also: bool,
) -> Result<Seq> {
    socket
        .send_message(&ClientMessage::Reply {
            client_id: id.into(),
            target,
            text: text.into(),
            also_in_room: also,
            attachments: Vec::new(),
        })
        .await?;
    Ok(socket.await_ack(id).await?.0)
}

async fn react(socket: &mut RoomSocket, id: &str, target: Seq, add: bool) -> Result<Seq> {
    socket
        .send_message(&ClientMessage::React {
            client_id: id.into(),
            target,
            emoji: "🎉".into(),
            add,
        })
        .await?;
    Ok(socket.await_ack(id).await?.0)
}

async fn search(session: &Session, path: &str) -> Result<SearchResults> {
    let response = session.get(path).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

fn q(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_replies_and_reactions_made_while_away_are_replayed_on_reconnect() -> Result {
    let ann = user("Ann").await?;
    let bob = user("Bob").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    let (root, _) = a.post("root", "a root message").await?;
    let (b, joined) = bob.join(&room.slug, None).await?;
    let cursor = joined.head;
    b.close().await;

    reply(&mut a, "r1", root, "first reply, thread only", false).await?;
    reply(&mut a, "r2", root, "second reply, also in the room", true).await?;
    react(&mut a, "e1", root, true).await?;

    let (mut b, joined) = bob.join(&room.slug, Some(cursor)).await?;
    let kinds: Vec<&EventKind> = joined.replay.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [
                EventKind::Reply {
                    thread: t1,
                    also_in_room: false,
                    ..
                },
                EventKind::Reply {
                    thread: t2,
                    also_in_room: true,
                    ..
                },
                EventKind::React { add: true, .. },
            ] if *t1 == root && *t2 == root
        ),
        "{kinds:?}"
    );

    // The thread as the room holds it: root with its count and reaction, both replies.
    b.send_message(&ClientMessage::Thread { root }).await?;
    let ((root_view, replies), _) = b
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Thread { root, replies, .. } => Some((root.clone(), replies.clone())),
            _ => None,
        })
        .await?;
    assert_eq!(root_view.replies.map(|r| r.count), Some(2));
    assert_eq!(root_view.reactions.len(), 1);
    assert_eq!(root_view.reactions[0].by[0].name, "Ann");
    assert_eq!(replies.len(), 2);

    // A fresh join's page shows the root and the also-in-room reply, not the thread-only one.
    let (_, fresh) = bob.join(&room.slug, None).await?;
    let page: Vec<String> = fresh
        .history
        .unwrap()
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(
        page,
        vec!["a root message", "second reply, also in the room"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_cannot_pin_but_the_owner_can_and_the_pinned_list_shows_it() -> Result {
    let owner = user("Olga").await?;
    let member = user("Mel").await?;
    let room = owner.new_room().await?;
    let (mut o, _) = owner.join(&room.slug, None).await?;
    let (seq, _) = o.post("p", "pin me").await?;
    let (mut m, _) = member.join(&room.slug, None).await?;
    m.send_message(&ClientMessage::Pin {
        client_id: "x".into(),
        target: seq,
        pinned: true,
    })
    .await?;
    let refused = m.await_ack("x").await.unwrap_err();
    assert!(format!("{refused:#}").contains("forbidden"), "{refused:#}");
    o.send_message(&ClientMessage::Pin {
        client_id: "y".into(),
        target: seq,
        pinned: true,
    })
    .await?;
    o.await_ack("y").await?;
    m.send_message(&ClientMessage::Pins {}).await?;
    let (pinned, _) = m
        .expect_until(DEFAULT_TIMEOUT, |f| match f {
            ServerMessage::Pinned { messages } => Some(messages.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(pinned.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![seq]);
    Ok(())
}

fn unread_of(list: &RoomList, slug: &str) -> Option<(Seq, UnreadCounts)> {
    list.unread
        .iter()
        .find(|u| u.slug == slug)
        .map(|u| (u.read, u.counts))
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_counts_follow_one_users_reads_across_two_sessions() -> Result {
    let ann = user("Ann").await?;
    let bea = user("Bea").await?;
    let room = ann.new_room().await?;
    // Bea joins once (becoming a member), then leaves.
    let (b, _) = bea.join(&room.slug, None).await?;
    b.close().await;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    a.post("m1", "hello").await?;
    a.post("m2", "hey @Bea, look").await?;
    let (last, _) = a.post("m3", "third").await?;
    assert_eq!(
        unread_of(&bea.rooms().await?, &room.slug),
        Some((
            0,
            UnreadCounts {
                unread: 3,
                mentions: 1
            }
        ))
    );

    // Two sessions of Bea (same cookie: two tabs); one reads, the other is told.
    let (mut tab1, _) = bea.join(&room.slug, None).await?;
    let (mut tab2, joined) = bea.join(&room.slug, None).await?;
    assert_eq!(joined.head, last);
    tab1.send_message(&ClientMessage::Read { seq: last - 1 })
        .await?;
    let (told, _) = tab2
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Unread { read, counts } => Some((*read, *counts)),
            _ => None,
        })
        .await?;
    assert_eq!(
        told,
        (
            last - 1,
            UnreadCounts {
                unread: 1,
                mentions: 0
            }
        )
    );
    assert_eq!(
        unread_of(&bea.rooms().await?, &room.slug).map(|u| u.1.unread),
        Some(1)
    );
    // Ann's own messages are never unread to her.
    assert_eq!(
        unread_of(&ann.rooms().await?, &room.slug).map(|u| u.1.unread),
        Some(0)
    );
    // A reconnecting tab learns its read position in the welcome.
    let mut tab3 = bea.connect(&room.slug).await?;
    tab3.send_message(&ClientMessage::Hello {
        protocol: shared::PROTOCOL_VERSION,
        after: None,
    })
    .await?;
    let (read, _) = tab3
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Welcome { read, .. } => Some(*read),
            _ => None,
        })
        .await?;
    assert_eq!(read, Some(last - 1));
    Ok(())
}

/// Reads a watch's frames into `tracker` until the counts change; returns the frames read,
/// none of which may be a message.
async fn watch_changes(watch: &mut RoomSocket, tracker: &mut UnreadTracker) -> Result {
    let (_, before) = watch
        .expect_until(DEFAULT_TIMEOUT, |m| tracker.apply(m).then_some(()))
        .await?;
    assert!(
        before
            .iter()
            .all(|m| matches!(m, ServerMessage::Activity { .. })),
        "a watch gets notices only, got {before:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_keeps_a_closed_rooms_unread_counts_live_and_equal_to_the_room_list() -> Result {
    let ann = user("Ann").await?;
    let bea = user("Bea").await?;
    let room = ann.new_room().await?;
    let (b, _) = bea.join(&room.slug, None).await?;
    b.close().await;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    let server_counts = || async {
        Ok::<_, anyhow::Error>(unread_of(&bea.rooms().await?, &room.slug).map(|u| u.1))
    };

    let watch_frame = ClientMessage::Watch {
        protocol: shared::PROTOCOL_VERSION,
    };
    // Sent as a frame, the watch is answered with the counts...
    let mut by_frame = bea.connect(&room.slug).await?;
    by_frame.send_message(&watch_frame).await?;
    let mut tracker = UnreadTracker::new(bea.user_id());
    watch_changes(&mut by_frame, &mut tracker).await?;
    assert_eq!(tracker.counts(), Some(UnreadCounts::default()));
    by_frame.close().await;
    // ...and in the socket URL, as the app sends it, as the socket opens.
    let mut watch = bea
        .connect_with_first_frame(&room.slug, &watch_frame)
        .await?;
    let mut tracker = UnreadTracker::new(bea.user_id());
    watch_changes(&mut watch, &mut tracker).await?;
    assert_eq!(tracker.counts(), Some(UnreadCounts::default()));

    let (first, _) = a.post("m1", "hey @Bea, look").await?;
    watch_changes(&mut watch, &mut tracker).await?;
    let expected = UnreadCounts {
        unread: 1,
        mentions: 1,
    };
    assert_eq!(tracker.counts(), Some(expected));
    assert_eq!(server_counts().await?, Some(expected));

    // A thread-only reply is not in the timeline: nothing changes; the next message does.
    reply(&mut a, "r1", first, "in a thread", false).await?;
    let (plain, _) = a.post("m2", "plain").await?;
    watch_changes(&mut watch, &mut tracker).await?;
    let expected = UnreadCounts {
        unread: 2,
        mentions: 1,
    };
    assert_eq!(tracker.counts(), Some(expected));
    assert_eq!(server_counts().await?, Some(expected));

    // Deleting the mention takes back both counts.
    a.delete("d1", first).await?;
    watch_changes(&mut watch, &mut tracker).await?;
    let expected = UnreadCounts {
        unread: 1,
        mentions: 0,
    };
    assert_eq!(tracker.counts(), Some(expected));
    assert_eq!(server_counts().await?, Some(expected));

    // An edit that newly mentions her counts as a mention, not as another unread message.
    a.edit("e1", plain, "plain, now for @Bea").await?;
    watch_changes(&mut watch, &mut tracker).await?;
    let expected = UnreadCounts {
        unread: 1,
        mentions: 1,
    };
    assert_eq!(tracker.counts(), Some(expected));
    assert_eq!(server_counts().await?, Some(expected));

    // Reading in an open tab of the room clears the watch's counts.
    let (mut tab, joined) = bea.join(&room.slug, None).await?;
    tab.send_message(&ClientMessage::Read { seq: joined.head })
        .await?;
    watch_changes(&mut watch, &mut tracker).await?;
    assert_eq!(tracker.counts(), Some(UnreadCounts::default()));
    assert_eq!(server_counts().await?, Some(UnreadCounts::default()));

    // A watch only listens: a send over it is refused and stores nothing.
    watch.send("w1", "through the watch").await?;
    let (code, _) = watch
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await?;
    assert_eq!(code, ErrorCode::InvalidFrame);
    let (after, _) = a.post("m3", "still here").await?;
    assert_eq!(after, joined.head + 1, "the watch's send was not stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn search_ranks_highlights_filters_and_opens_a_result_in_context() -> Result {
    let ann = user("Ann Search").await?;
    let bob = user("Bob Search").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    let (mut b, _) = bob.join(&room.slug, None).await?;
    let (root, _) = a.post("s1", "the zebrafish deploy went fine").await?;
    b.post(
        "s2",
        "zebrafish zebrafish: docs at https://example.com/zebrafish",
    )
    .await?;
    a.post("s3", "unrelated words").await?;
    let in_thread = reply(&mut b, "s4", root, "a zebrafish in a thread", false).await?;

    let base = format!("/api/rooms/{}/search?q=", room.slug);
    let results = search(&ann, &format!("{base}{}", q("zebrafish"))).await?;
    assert_eq!(results.hits.len(), 3, "{results:?}");
    assert!(!results.partial);
    // bm25: the message with the word three times ranks first.
    assert!(results.hits[0].snippet.contains("docs at"));
    assert!(results.hits[0]
        .snippet
        .contains(&format!("{MARK_START}zebrafish{MARK_END}")));
    assert!(results.hits.windows(2).all(|w| w[0].score >= w[1].score));

    let only = |r: &SearchResults| r.hits.iter().map(|h| h.seq).collect::<Vec<_>>();
    let from = search(&ann, &format!("{base}{}", q("zebra from:\"bob search\""))).await?;
    assert_eq!(from.hits.len(), 2, "prefix match, Bob's two");
    let threads = search(&ann, &format!("{base}{}", q("zebrafish in:thread"))).await?;
    assert_eq!(only(&threads), vec![in_thread]);
    let links = search(&ann, &format!("{base}{}", q("has:link"))).await?;
    assert_eq!(links.hits.len(), 1);
    let none = search(&ann, &format!("{base}{}", q("zebrafish before:2000-01-01"))).await?;
    assert!(none.hits.is_empty());

    // The thread-only reply opens in its thread; a timeline message in the page around it.
    let context: Context = ann
        .get(&format!("/api/rooms/{}/context?seq={in_thread}", room.slug))
        .await?
        .json()
        .await?;
    assert_eq!(context.thread, Some(root));
    assert_eq!(context.messages[0].seq, root);
    let context: Context = ann
        .get(&format!("/api/rooms/{}/context?seq={root}", room.slug))
        .await?
        .json()
        .await?;
    assert_eq!(context.thread, None);
    assert!(context.messages.iter().any(|m| m.seq == root));
    assert!(context
        .messages
        .iter()
        .all(|m| m.thread.is_none() || m.also_in_room));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_or_deleted_messages_old_text_is_never_found() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    let (edited, _) = a.post("e1", "quokkaword before the edit").await?;
    let (deleted, _) = a.post("e2", "wombatword soon deleted").await?;
    a.edit("e3", edited, "now it says platypusword").await?;
    a.delete("e4", deleted).await?;
    let base = format!("/api/rooms/{}/search?q=", room.slug);
    assert!(search(&ann, &format!("{base}quokkaword"))
        .await?
        .hits
        .is_empty());
    assert!(search(&ann, &format!("{base}wombatword"))
        .await?
        .hits
        .is_empty());
    let new = search(&ann, &format!("{base}platypusword")).await?;
    assert_eq!(
        new.hits.iter().map(|h| h.seq).collect::<Vec<_>>(),
        vec![edited]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn search_across_rooms_covers_only_the_users_rooms_merged_by_rank() -> Result {
    let ann = user("Ann").await?;
    let eve = user("Eve").await?;
    let word = format!("capybara{}", e2e::unique("w").replace('-', ""));
    let mut rooms = Vec::new();
    for i in 0..3 {
        let room = ann.new_room().await?;
        let (mut a, _) = ann.join(&room.slug, None).await?;
        let text = format!("{} here", vec![word.as_str(); i + 1].join(" "));
        a.post("c", &text).await?;
        rooms.push(room.slug);
    }
    // A room Ann never joined: Eve's.
    let other = eve.new_room().await?;
    let (mut e, _) = eve.join(&other.slug, None).await?;
    e.post("c", &format!("{word} secret")).await?;

    let results = search(&ann, &format!("/api/search?q={word}")).await?;
    assert!(!results.partial, "{results:?}");
    let slugs: Vec<&str> = results.hits.iter().map(|h| h.slug.as_str()).collect();
    assert_eq!(slugs.len(), 3);
    assert!(!slugs.contains(&other.slug.as_str()));
    assert_eq!(slugs[0], rooms[2], "three mentions of the word rank first");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_search_is_refused_with_invalid_input() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    for query in ["", "has:gif", "after:someday"] {
        let response = ann
            .get(&format!("/api/rooms/{}/search?q={}", room.slug, q(query)))
            .await?;
        expect_error(response, ErrorCode::InvalidInput).await?;
    }
    let response = ann.get("/api/rooms/no-such-room-x/search?q=hi").await?;
    expect_error(response, ErrorCode::NotFound).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_past_its_deadline_returns_partial_results_naming_the_missing_rooms() -> Result {
    // Its own server whose rooms answer 30 s late, with a 200 ms deadline.
    let server = DevServer::start(
        DevOptions::default()
            .var("SEARCH_DEADLINE_MS", 200)
            .var("ROOM_QUERY_TEST_DELAY_MS", 30_000),
    )
    .await?;
    let ann = Session::create(&server, "Ann").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    a.post("c", "armadillo").await?;
    let results = search(&ann, "/api/search?q=armadillo").await?;
    assert!(results.partial);
    assert_eq!(results.missing, vec![room.slug.clone()]);
    assert!(results.hits.is_empty());
    // The room list still answers, without that room's counts.
    let list = ann.rooms().await?;
    assert!(list.rooms.iter().any(|r| r.slug == room.slug));
    assert!(unread_of(&list, &room.slug).is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_word_in_more_messages_than_the_rank_window_is_ranked_among_the_newest_only() -> Result {
    // Its own server ranking the newest 3 matches (20,000 by default).
    let server = DevServer::start(DevOptions::default().var("SEARCH_RANK_WINDOW", 3)).await?;
    let ann = Session::create(&server, "Ann").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    // The oldest match would rank first by bm25 (the word four times in four words).
    let (oldest, _) = a.post("m0", "quokka quokka quokka quokka").await?;
    let mut newest = Vec::new();
    for n in 1..=4 {
        let text = format!("a quokka among many other words in message number {n}");
        newest.push(a.post(&format!("m{n}"), &text).await?.0);
    }
    a.post("x", "an unrelated message").await?;
    let path = format!("/api/rooms/{}/search?q=quokka", room.slug);
    let mut found: Vec<Seq> = search(&ann, &path)
        .await?
        .hits
        .iter()
        .map(|h| h.seq)
        .collect();
    found.sort_unstable();
    assert_eq!(found, newest[1..].to_vec(), "the 3 newest matches only");
    assert!(!found.contains(&oldest));
    // Filters apply before the window: Ann's matches in a thread are the newest of their kind.
    let reply_seq = reply(&mut a, "r", oldest, "quokka in a thread", false).await?;
    let path = format!("/api/rooms/{}/search?q=quokka%20in%3Athread", room.slug);
    let in_thread: Vec<Seq> = search(&ann, &path)
        .await?
        .hits
        .iter()
        .map(|h| h.seq)
        .collect();
    assert_eq!(in_thread, vec![reply_seq]);
    Ok(())
}
