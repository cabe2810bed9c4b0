//! Both halves of the protocol together: the real [`Room`] and several [`ClientRoom`]s over a
//! simulated network that loses whatever is in flight when a connection drops. Property tests
//! drive random interleavings of typing, sending, delivering, disconnecting and reconnecting,
//! then let everything settle and check that every send was stored exactly once and every
//! client holds exactly the room's state.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use shared::client::{ClientRoom, Pending, PendingOp, PendingStatus};
use shared::error::ErrorCode;
use shared::protocol::{Author, ClientMessage, EventKind, Role, RoomInfo, Seq, ServerMessage};
use shared::rate_limit::RateLimits;
use shared::room::store::sqlite::Sqlite;
use shared::room::store::Sql;
use shared::room::{presence, Conn, ConnLimiter, Effect, Frame, Room, SqlStore};

struct Client {
    state: ClientRoom,
    conn: Conn,
    limiter: ConnLimiter,
    connected: bool,
    up: VecDeque<String>,
    down: VecDeque<String>,
    queued: Vec<String>,
    resyncs: usize,
}

struct Sim {
    room: Room<Sqlite>,
    /// The room's database file, reopened by a restart.
    db: TempDb,
    clients: Vec<Client>,
    now: i64,
    next_id: u64,
}

/// A database file of the test's own, removed when the simulation ends.
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempDb(std::env::temp_dir().join(format!("convergence-{}-{n}.sqlite", std::process::id())))
    }

    /// The room over this file, as a Durable Object opens it when it wakes: schema checked,
    /// head read back from storage.
    fn open(&self, info: RoomInfo) -> Room<Sqlite> {
        let db = Sqlite::open(&self.0).unwrap();
        // A restart here is a reopen, not a power cut: durability to disk is not under test.
        db.execute("PRAGMA synchronous = OFF", &[]).unwrap();
        Room::open(SqlStore::open(db).unwrap(), info).unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn generous() -> RateLimits {
    RateLimits {
        send_burst: 1e9,
        send_per_second: 1e9,
        frame_burst: 1e9,
        frame_per_second: 1e9,
    }
}

impl Sim {
    /// Clients 0 and 1 are two tabs of the same user; client 2 is someone else.
    fn new() -> Self {
        let info = RoomInfo {
            slug: "sim".into(),
            name: "Sim".into(),
            topic: String::new(),
            created_at: 0,
            last_activity: None,
            message_count: 0,
            assistant: Default::default(),
            private: false,
        };
        let users = ["ann", "ann", "bob"];
        let db = TempDb::new();
        Sim {
            room: db.open(info),
            db,
            clients: users
                .iter()
                .map(|user| Client {
                    state: ClientRoom::new(),
                    conn: Conn::new(Author {
                        id: (*user).into(),
                        name: user.to_uppercase(),
                        role: Role::Member,
                    }),
                    limiter: ConnLimiter::new(generous(), 0),
                    connected: false,
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                    queued: Vec::new(),
                    resyncs: 0,
                })
                .collect(),
            now: 1_000,
            next_id: 0,
        }
    }

    fn tick(&mut self) -> i64 {
        self.now += 7;
        self.now
    }

    fn connect(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if client.connected {
            return;
        }
        client.connected = true;
        let hello = client.state.connect();
        client.up.push_back(serde_json::to_string(&hello).unwrap());
    }

    fn disconnect(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if !client.connected {
            return;
        }
        // Whatever was on the wire in either direction is lost.
        client.connected = false;
        client.conn.joined = false;
        client.up.clear();
        client.down.clear();
        client.state.disconnected();
    }

    /// The room's object restarts: every connection drops with whatever was in flight, and the
    /// room is opened again from its database.
    fn restart(&mut self) {
        for c in 0..self.clients.len() {
            self.disconnect(c);
        }
        let info = self.room.info().clone();
        // The old instance closes its connection before the new one opens the file.
        self.room = self.db.open(info);
    }

    fn type_message(&mut self, c: usize) {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        let now = self.tick();
        let client = &mut self.clients[c];
        client.state.queue(
            id.clone(),
            PendingOp::Send {
                text: format!("text of {id}"),
                attachments: Vec::new(),
            },
            now,
        );
        client.queued.push(id);
    }

    /// Edits the client's newest own, undeleted message, if it has one.
    fn edit_own(&mut self, c: usize, delete: bool) {
        self.next_id += 1;
        let id = format!("x{}", self.next_id);
        let now = self.tick();
        let client = &mut self.clients[c];
        let Some(target) = client
            .state
            .messages()
            .rev()
            .find(|m| m.author.id == client.conn.author.id && !m.deleted)
            .map(|m| m.seq)
        else {
            return;
        };
        let op = if delete {
            PendingOp::Delete { target }
        } else {
            PendingOp::Edit {
                target,
                text: format!("edit {id}"),
            }
        };
        client.state.queue(id, op, now);
    }

    /// Replies in the thread of the client's newest held message (also to the room every
    /// other time).
    fn reply(&mut self, c: usize) {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        let now = self.tick();
        let client = &mut self.clients[c];
        let Some(newest) = client.state.messages().next_back() else {
            return;
        };
        let thread = newest.thread.unwrap_or(newest.seq);
        client.state.queue(
            id.clone(),
            PendingOp::Reply {
                thread,
                text: format!("reply {id}"),
                also_in_room: self.next_id.is_multiple_of(2),
                attachments: Vec::new(),
            },
            now,
        );
        client.queued.push(id);
    }

    /// Toggles the client's 👍 on its newest held message.
    fn react(&mut self, c: usize) {
        self.next_id += 1;
        let id = format!("e{}", self.next_id);
        let now = self.tick();
        let client = &mut self.clients[c];
        let Some(target) = client.state.messages().next_back() else {
            return;
        };
        let add = !target.reacted(&client.conn.author.id, "👍");
        let target = target.seq;
        client.state.queue(
            id,
            PendingOp::React {
                target,
                emoji: "👍".into(),
                add,
            },
            now,
        );
    }

    /// Opens the thread of the client's oldest held message in its side panel.
    fn open_thread(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some(seq) = client.state.messages().next().map(|m| m.seq) else {
            return;
        };
        if let Some(frame) = client.state.open_thread(seq) {
            if client.connected {
                client.up.push_back(serde_json::to_string(&frame).unwrap());
            }
        }
    }

    /// Tab 1 reloads. The message cache is one record per room (last writer wins: tab 0's),
    /// but outbox entries are stored one per client id, so tab 1 gets its own pending
    /// mutations back and tab 0's as well.
    fn adopt(&mut self) {
        self.disconnect(1);
        let mut cache = self.clients[0].state.to_cache();
        for p in self.clients[1].state.outbox() {
            if !cache.outbox.iter().any(|q| q.client_id == p.client_id) {
                cache.outbox.push(p.clone());
            }
        }
        cache.outbox.sort_by_key(|p| p.created_at);
        self.clients[1].state = ClientRoom::from_cache(cache);
    }

    fn flush(&mut self, c: usize) {
        let now = self.tick();
        let client = &mut self.clients[c];
        if !client.connected {
            return;
        }
        for frame in client.state.take_frames(now) {
            client.up.push_back(serde_json::to_string(&frame).unwrap());
        }
    }

    fn deliver_up(&mut self, c: usize, n: usize) {
        for _ in 0..n {
            let Some(raw) = self.clients[c].up.pop_front() else {
                return;
            };
            let now = self.tick();
            let conns: Vec<Conn> = self
                .clients
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != c)
                .map(|(_, cl)| cl.conn.clone())
                .collect();
            let client = &mut self.clients[c];
            let conn = client.conn.clone();
            let effects =
                self.room
                    .on_frame(&conn, &mut client.limiter, Frame::Text(&raw), now, || {
                        presence(conns.iter())
                    });
            for effect in effects {
                match effect {
                    Effect::Reply(m) => self.clients[c].down.push_back(encode(&m)),
                    Effect::Broadcast(m) => self.broadcast(&m, None),
                    Effect::BroadcastOthers(m) => self.broadcast(&m, Some(c)),
                    Effect::Joined => self.clients[c].conn.joined = true,
                    Effect::ToUser(user, m) => {
                        let text = encode(&m);
                        for client in &mut self.clients {
                            if client.connected
                                && client.conn.joined
                                && client.conn.author.id == user
                            {
                                client.down.push_back(text.clone());
                            }
                        }
                    }
                    // No connection here watches counts.
                    Effect::NewMember(_) | Effect::Notify(_) | Effect::NotifyUser(..) => {}
                    Effect::Close(code, _) | Effect::CloseUser(_, code, _) => {
                        panic!("unexpected close {code}")
                    }
                    Effect::SetRole(..) | Effect::InfoChanged(_) => {
                        panic!("no moderation in this simulation")
                    }
                    Effect::Log(detail) => panic!("storage failure {detail}"),
                    other => panic!("no message here asks the assistant: {other:?}"),
                }
            }
        }
    }

    fn broadcast(&mut self, message: &ServerMessage, except: Option<usize>) {
        let text = encode(message);
        for (i, client) in self.clients.iter_mut().enumerate() {
            if client.connected && client.conn.joined && Some(i) != except {
                client.down.push_back(text.clone());
            }
        }
    }

    fn deliver_down(&mut self, c: usize, n: usize) {
        for _ in 0..n {
            let Some(raw) = self.clients[c].down.pop_front() else {
                return;
            };
            let now = self.tick();
            let message: ServerMessage = serde_json::from_str(&raw).unwrap();
            let applied = self.clients[c].state.apply(message, now);
            if applied.resync {
                self.clients[c].resyncs += 1;
                self.disconnect(c);
                return;
            }
            for request in applied.requests {
                let text = serde_json::to_string(&request).unwrap();
                self.clients[c].up.push_back(text);
            }
            if applied.went_live || applied.outbox_changed {
                self.flush(c);
            }
        }
    }

    /// Reconnects everyone and delivers until nothing moves.
    fn settle(&mut self) {
        for c in 0..self.clients.len() {
            self.connect(c);
        }
        for _ in 0..10_000 {
            let mut moved = false;
            for c in 0..self.clients.len() {
                self.flush(c);
                moved |= !self.clients[c].up.is_empty() || !self.clients[c].down.is_empty();
                self.deliver_up(c, usize::MAX);
                self.deliver_down(c, usize::MAX);
                if !self.clients[c].connected {
                    self.connect(c);
                    moved = true;
                }
            }
            let pending = self
                .clients
                .iter()
                .any(|c| c.state.outbox().any(|p| !is_failed(p)));
            if !moved && !pending {
                return;
            }
        }
        panic!("the simulation did not settle");
    }
}

/// A mutation the room refused for good; it waits for the user to retry or discard it.
fn is_failed(p: &Pending) -> bool {
    matches!(p.status, PendingStatus::Failed { .. })
}

fn encode(message: &ServerMessage) -> String {
    serde_json::to_string(message).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Type(usize),
    Edit(usize),
    Delete(usize),
    Reply(usize),
    React(usize),
    OpenThread(usize),
    Flush(usize),
    Up(usize, usize),
    Down(usize, usize),
    Disconnect(usize),
    Connect(usize),
    /// Tab 1 reloads and restores the room's cache, which tab 0 wrote too (same user, same
    /// room), so both tabs hold, and may send, the same pending mutations.
    Adopt,
    /// The room's Durable Object restarts (evicted, redeployed, crashed between events):
    /// every socket drops and the room reopens from storage.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0usize..3;
    prop_oneof![
        4 => c.clone().prop_map(Op::Type),
        1 => c.clone().prop_map(Op::Edit),
        1 => c.clone().prop_map(Op::Delete),
        2 => c.clone().prop_map(Op::Reply),
        2 => c.clone().prop_map(Op::React),
        1 => c.clone().prop_map(Op::OpenThread),
        3 => c.clone().prop_map(Op::Flush),
        4 => (c.clone(), 1usize..4).prop_map(|(c, n)| Op::Up(c, n)),
        4 => (c.clone(), 1usize..6).prop_map(|(c, n)| Op::Down(c, n)),
        1 => c.clone().prop_map(Op::Disconnect),
        2 => c.prop_map(Op::Connect),
        1 => Just(Op::Adopt),
        1 => Just(Op::Restart),
    ]
}

fn run(ops: &[Op]) -> Sim {
    let mut sim = Sim::new();
    for op in ops {
        match *op {
            Op::Type(c) => sim.type_message(c),
            Op::Edit(c) => sim.edit_own(c, false),
            Op::Delete(c) => sim.edit_own(c, true),
            Op::Reply(c) => sim.reply(c),
            Op::React(c) => sim.react(c),
            Op::OpenThread(c) => sim.open_thread(c),
            Op::Flush(c) => sim.flush(c),
            Op::Up(c, n) => sim.deliver_up(c, n),
            Op::Down(c, n) => sim.deliver_down(c, n),
            Op::Disconnect(c) => sim.disconnect(c),
            Op::Connect(c) => sim.connect(c),
            Op::Adopt => sim.adopt(),
            Op::Restart => sim.restart(),
        }
    }
    sim.settle();
    sim
}

fn check_converged(sim: &Sim) {
    let store = sim.room.store();
    let events = store.events_after(0, usize::MAX).unwrap();

    // Gap-free sequencing.
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as Seq + 1);
    }

    // Every send a user typed was stored exactly once.
    let mut stored: HashMap<(String, String), usize> = HashMap::new();
    for event in &events {
        if let EventKind::Message { .. } | EventKind::Reply { .. } = event.kind {
            *stored
                .entry((event.author.id.clone(), event.client_id.clone()))
                .or_default() += 1;
        }
    }
    // A reply is refused for good when its thread's root was deleted first; it stays in the
    // outbox as failed (checked below) and is never stored.
    let refused = |client: &Client, id: &str| {
        client.state.outbox().any(|p| {
            p.client_id == id
                && matches!(p.op, PendingOp::Reply { .. })
                && matches!(
                    p.status,
                    PendingStatus::Failed {
                        code: ErrorCode::NotFound,
                        ..
                    }
                )
        })
    };
    let mut typed = 0;
    for client in &sim.clients {
        for id in &client.queued {
            let key = (client.conn.author.id.clone(), id.clone());
            if refused(client, id) {
                assert_eq!(stored.get(&key), None, "refused reply {id} not stored");
            } else {
                typed += 1;
                assert_eq!(stored.get(&key), Some(&1), "send {id} stored once");
            }
        }
    }
    assert_eq!(stored.len(), typed, "nothing stored that nobody typed");

    // Each tab's sends are stored in the order it typed them, whatever was lost and resent
    // (and whichever tab of the user sent a restored copy).
    let seq_of: HashMap<(&str, &str), Seq> = events
        .iter()
        .map(|e| ((e.author.id.as_str(), e.client_id.as_str()), e.seq))
        .collect();
    for (i, client) in sim.clients.iter().enumerate() {
        let order: Vec<Seq> = client
            .queued
            .iter()
            .filter_map(|id| seq_of.get(&(client.conn.author.id.as_str(), id.as_str())))
            .copied()
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "client {i} typed {:?}, stored at {order:?}",
            client.queued
        );
    }

    // Every client holds exactly the room's state, with nothing left pending.
    let (latest, _) = store.messages_before(None, usize::MAX).unwrap();
    for (i, client) in sim.clients.iter().enumerate() {
        assert_eq!(client.resyncs, 0, "client {i} never saw a gap");
        assert_eq!(
            client.state.head(),
            Some(sim.room.head()),
            "client {i} head"
        );
        // Only mutations the room refused for good may remain, and only edits or deletes of
        // a message that a delete reached first.
        for p in client.state.outbox() {
            let target = match (&p.op, &p.status) {
                (
                    PendingOp::Edit { target, .. } | PendingOp::Delete { target },
                    PendingStatus::Failed {
                        code: ErrorCode::NotFound,
                        ..
                    },
                ) => *target,
                // A reply whose thread's root a delete reached first.
                (
                    PendingOp::Reply { thread, .. },
                    PendingStatus::Failed {
                        code: ErrorCode::NotFound,
                        ..
                    },
                ) => *thread,
                _ => panic!("client {i} outbox still holds {p:?}"),
            };
            assert!(store.message(target).unwrap().unwrap().deleted);
        }
        let held: Vec<_> = client.state.messages().cloned().collect();
        let from = held.first().map_or(Seq::MAX, |m| m.seq);
        let expected: Vec<_> = latest.iter().filter(|m| m.seq >= from).cloned().collect();
        assert_eq!(held, expected, "client {i} messages");
        // An open thread holds exactly the room's thread: root, replies, reactions.
        if let Some(thread) = client.state.thread() {
            let root = store.message(thread.root).unwrap();
            assert_eq!(thread.message, root, "client {i} thread root");
            let (replies, _) = store
                .thread_replies(thread.root, shared::limits::THREAD_PAGE)
                .unwrap();
            let held: Vec<_> = thread.replies.values().cloned().collect();
            assert_eq!(held, replies, "client {i} thread replies");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_deliver_every_acknowledged_send_exactly_once_and_in_order(
        ops in proptest::collection::vec(op(), 0..120)
    ) {
        let sim = run(&ops);
        check_converged(&sim);
    }
}

#[test]
fn two_tabs_sending_the_same_restored_outbox_store_it_once() {
    let mut sim = Sim::new();
    sim.settle();
    sim.type_message(0);
    sim.flush(0);
    sim.adopt();
    sim.connect(1);
    sim.deliver_up(1, 1);
    sim.deliver_down(1, usize::MAX); // Tab 1 goes live and sends tab 0's pending message too.
    assert_eq!(sim.clients[1].up.len(), 1);
    sim.deliver_up(0, 1);
    sim.deliver_up(1, 1);
    assert_eq!(sim.room.head(), 1, "the second copy was de-duplicated");
    sim.settle();
    check_converged(&sim);
}

#[test]
fn a_send_whose_ack_was_lost_is_resent_after_reconnect_and_stored_once() {
    let mut sim = Sim::new();
    sim.connect(2);
    sim.deliver_up(2, 1);
    sim.deliver_down(2, usize::MAX);
    sim.type_message(2);
    sim.flush(2);
    sim.deliver_up(2, 1); // The room stores it...
    sim.disconnect(2); // ...and the ack is lost with the connection.
    assert_eq!(sim.room.head(), 1);
    sim.settle();
    assert_eq!(sim.room.head(), 1, "the resend was de-duplicated");
    check_converged(&sim);
}

#[test]
fn a_client_that_missed_edits_and_deletes_while_offline_catches_up_by_replay() {
    let mut sim = Sim::new();
    sim.settle();
    sim.type_message(0);
    sim.type_message(0);
    sim.settle();
    sim.disconnect(2);
    sim.edit_own(0, false);
    sim.settle_only(0);
    sim.edit_own(0, true);
    sim.settle_only(0);
    let replayed = {
        sim.connect(2);
        sim.deliver_up(2, 1);
        sim.clients[2]
            .down
            .iter()
            .filter(|raw| raw.contains(r#""type":"replay""#))
            .count()
    };
    assert_eq!(replayed, 1, "a short gap is a replay, not a fresh page");
    sim.settle();
    check_converged(&sim);
    assert!(sim.clients[2].state.messages().last().unwrap().deleted);
}

#[test]
fn typing_while_offline_queues_and_everything_goes_out_in_order_on_reconnect() {
    let mut sim = Sim::new();
    for _ in 0..20 {
        sim.type_message(1);
    }
    sim.settle();
    check_converged(&sim);
    let texts: Vec<String> = sim.clients[2]
        .state
        .messages()
        .map(|m| m.text.clone())
        .collect();
    let expected: Vec<String> = (1..=20).map(|i| format!("text of m{i}")).collect();
    assert_eq!(texts, expected, "sends keep the order they were typed in");
}

impl Sim {
    /// Delivers everything for one client only (others stay as they are).
    fn settle_only(&mut self, c: usize) {
        self.connect(c);
        for _ in 0..1_000 {
            self.flush(c);
            let idle = self.clients[c].up.is_empty() && self.clients[c].down.is_empty();
            if idle && self.clients[c].state.outbox().next().is_none() {
                return;
            }
            self.deliver_up(c, usize::MAX);
            self.deliver_down(c, usize::MAX);
        }
        panic!("client {c} did not settle");
    }
}

#[test]
fn the_protocol_never_takes_a_client_message_it_cannot_parse_back() {
    // Every frame the client emits must pass the room's own validation.
    let mut state = ClientRoom::new();
    let hello = state.connect();
    let raw = serde_json::to_string(&hello).unwrap();
    assert!(shared::limits::parse_client_frame(&raw).is_ok());
    let _: ClientMessage = serde_json::from_str(&raw).unwrap();
}
