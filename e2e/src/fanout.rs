//! A room past one Durable Object, simulated (`docs/scaling.md`; the large-rooms issue, item 5).
//!
//! The real room core — [`Room`] over SQLite, fed frames with [`Room::on_frame`] as the Durable
//! Object feeds them, its [`Effect`]s carried out as `edge/src/rooms/object.rs` carries them,
//! presence ([`Presence`]) included — with tens of thousands of virtual clients. Every frame the
//! room emits is serialized for real and logged with who receives it ([`Sent`]), and every frame
//! a client sends is logged with the room core's native time for it ([`Inbound`]). A cost model
//! ([`Model`]) then charges that log to two topologies ([`Topology`]):
//!
//! - one object holds every socket: a frame is serialized once and sent once per recipient;
//! - a fan-out tree: the room sends each frame once to every fan-out node holding a recipient
//!   (a client's node is a hash of its user id, [`node_of`]), and each node sends it on to its
//!   own sockets, the nodes working in parallel.
//!
//! The failure modes run for real too: a fan-out node restarts mid-stream and its clients
//! resume from their cursors, either each through the room's replay or from a buffer the
//! restarted node fetched from the room once ([`Resume`]); and the room restarts (reopened from
//! its store) while one object holds every socket, so that every client resumes at once.
//!
//! Checked as it runs, and failing the run otherwise: every client applies every event exactly
//! once and in order (a cursor per client for all of them, and the real [`ClientRoom`] for a
//! sample, whose messages must equal the room's own at the end); nothing the room answers is an
//! error.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use shared::client::{ClientRoom, PendingOp};
use shared::limits::REPLAY_BATCH;
use shared::protocol::{
    Author, ClientMessage, Event, HistoryReason, Millis, Role, RoomInfo, Seq, ServerMessage,
    ServerType, PROTOCOL_VERSION,
};
use shared::rate_limit::RateLimits;
use shared::room::outbox::Outbox;
use shared::room::presence::{Notice, Presence};
use shared::room::store::sqlite::Sqlite;
use shared::room::{Conn, ConnLimiter, Effect, Frame, Room, SqlStore};

use crate::Result;

mod cost;
pub use cost::{measure_native, Busy, Delivery, Model, Native, Topology};

/// What one simulation runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Virtual clients, each a distinct user with one socket.
    pub clients: usize,
    /// Fan-out tree sizes to model (nodes per room).
    pub fanouts: Vec<usize>,
    /// Messages sent in the steady phase (each after a typing notice; with reactions and reads).
    pub messages: usize,
    /// Messages per second of simulated time in the steady phase.
    pub rate: f64,
    /// Messages sent while a fan-out node is down.
    pub gap: usize,
    /// Messages in the room before anyone joins (so a join's page is a full one).
    pub history: usize,
    /// Clients that run the real [`ClientRoom`] (the others keep a cursor only).
    pub sample: usize,
    /// Seed of the choice of senders.
    pub seed: u64,
}

impl Config {
    /// The defaults of the `fanout_sim` binary for `clients` clients.
    pub fn new(clients: usize) -> Self {
        Config {
            clients,
            fanouts: vec![16, 64, 256],
            messages: 400,
            rate: 10.0,
            gap: 40,
            history: 60,
            sample: 400,
            seed: 7,
        }
    }
}

/// The fan-out node of `user_id` among `k`: FNV-1a of the id, so the Worker, the room and every
/// node compute the same one, and all of a user's sockets share a node (a private frame is one
/// hop to one node).
pub fn node_of(user_id: &str, k: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % k.max(1) as u64) as usize
}

/// A stretch of the simulation, for accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Filling the room's history before anyone joins (no recipients).
    Seed,
    /// Everyone joins, one a millisecond.
    Join,
    /// Messages at [`Config::rate`], with typing, reactions, reads and presence counts.
    Steady,
    /// The clients of a restarted fan-out node come back (episode index).
    Resume(usize),
    /// The room restarted while one object held every socket: everyone comes back.
    RoomRestart,
    /// A few messages after the restart, to check delivery still holds.
    AfterRestart,
}

/// How the clients of a restarted fan-out node catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Each sends its hello with its cursor through the node; the room replays to each.
    Room,
    /// The node first fetches, once, what the furthest-behind of them missed; each hello then
    /// reaches the room with the node's head as cursor (a welcome and an empty replay), and the
    /// node replays each client's share from its buffer after the welcome.
    NodeBuffer,
}

/// One frame the room's side sent (once per recipient).
#[derive(Debug, Clone)]
pub struct Sent {
    /// When.
    pub phase: Phase,
    /// Its `type`.
    pub kind: ServerType,
    /// Its length, serialized.
    pub bytes: u32,
    /// Sockets it went to.
    pub recipients: u32,
    /// Per fan-out size of [`Config::fanouts`]: (node, recipients on it) for each node with
    /// any; a frame to a node itself (its buffer fetch) lists that node with 0.
    pub nodes: Vec<Vec<(u16, u32)>>,
    /// Sent by a fan-out node from its own buffer: the room sent nothing.
    pub from_node: bool,
}

/// One frame the room handled.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// When.
    pub phase: Phase,
    /// What (`hello`, `send`, `typing`, `react`, `read`, `fetch`).
    pub kind: &'static str,
    /// Its length.
    pub bytes: u32,
    /// The client that sent it, through its node.
    pub client: Option<u32>,
    /// A fan-out node that sent it itself: (index into [`Config::fanouts`], node).
    pub node: Option<(usize, u16)>,
    /// The room core's native time for it (on this machine, SQLite in memory).
    pub native: Duration,
}

/// What went wrong in delivery, counted over every client.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Events applied (one per client per event).
    pub applied: u64,
    /// Events a client received at or below its cursor.
    pub duplicates: u64,
    /// Events a client received past `cursor + 1`.
    pub gaps: u64,
    /// Events a client received before it held a page.
    pub before_page: u64,
    /// Sampled clients whose [`ClientRoom`] asked to resynchronize.
    pub resyncs: u64,
    /// Errors the room answered (the first few).
    pub errors: Vec<String>,
    /// Errors the room answered.
    pub error_count: u64,
}

/// One node restart.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Which fan-out size ([`Config::fanouts`] index).
    pub fanout: usize,
    /// The node.
    pub node: u16,
    /// How its clients caught up.
    pub resume: Resume,
    /// Its clients.
    pub clients: Vec<usize>,
    /// Events the furthest-behind of them missed.
    pub missed: u64,
    /// The steady-phase message at which it went down and came back.
    pub down_at: usize,
    /// See `down_at`.
    pub up_at: usize,
}

/// The room restarting with every socket on it, and what the tree would do instead.
#[derive(Debug, Clone, Default)]
pub struct Restart {
    /// Bytes of one node's re-link replay (`sync` at the head).
    pub relink_bytes: u64,
    /// Bytes of every client's connection record (the rosters the nodes send the room).
    pub roster_bytes: u64,
    /// The room core's native time to rebuild presence from those rosters.
    pub presence_rebuild: Duration,
}

struct Client {
    conn: Conn,
    limiter: ConnLimiter,
    socket: u64,
    nodes: Vec<u16>,
    connected: bool,
    welcome_head: Seq,
    cursor: Option<Seq>,
    state: Option<ClientRoom>,
}

enum Target {
    All(Option<usize>),
    One(usize),
    User(String),
    Some(Vec<usize>),
}

/// The simulation: a room, its clients, and the log of what went where.
pub struct Crowd {
    /// What it ran.
    pub config: Config,
    room: Option<Room<Sqlite>>,
    presence: Presence,
    clients: Vec<Client>,
    users: HashMap<String, usize>,
    now: Millis,
    phase: Phase,
    up: VecDeque<(usize, ClientMessage)>,
    rng: u64,
    next_id: u64,
    /// Every frame sent.
    pub log: Vec<Sent>,
    /// Every frame the room handled.
    pub inbound: Vec<Inbound>,
    /// Delivery checks.
    pub checks: Checks,
    /// Node restarts.
    pub episodes: Vec<Episode>,
    /// The room's restart.
    pub restart: Restart,
    /// The room's head at the end.
    pub head: Seq,
    /// Wall time of the whole simulation.
    pub elapsed: Duration,
}

const START: Millis = 1_800_000_000_000;

fn sentence(rng: &mut u64, n: u64) -> String {
    const WORDS: &[&str] = &[
        "the", "deploy", "looks", "good", "on", "staging", "but", "latency", "went", "up", "after",
        "we", "merged", "fan-out", "room", "queue", "anyone", "seen", "this", "before", "ship",
        "it", "tomorrow", "morning", "rollback", "plan", "is", "ready", "thanks", "for", "review",
    ];
    let words = 12 + (next(rng) % 20) as usize;
    let mut text = format!("#{n}");
    for _ in 0..words {
        text.push(' ');
        text.push_str(WORDS[(next(rng) % WORDS.len() as u64) as usize]);
    }
    text
}

/// xorshift64*: deterministic choices with no dependency.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Crowd {
    /// Runs a whole simulation: seed the history, everyone joins, the steady phase with its
    /// node restarts, the room restart, a few messages after it; then the checks.
    pub fn run(config: Config) -> Result<Crowd> {
        let started = Instant::now();
        let mut crowd = Crowd::new(config)?;
        crowd.seed_history()?;
        crowd.join_all()?;
        crowd.steady()?;
        crowd.restart_room()?;
        crowd.after_restart()?;
        crowd.head = crowd.room()?.head();
        crowd.elapsed = started.elapsed();
        crowd.verify()?;
        Ok(crowd)
    }

    fn new(config: Config) -> Result<Crowd> {
        ensure!(config.clients > 0, "no clients");
        ensure!(
            config
                .fanouts
                .iter()
                .all(|&k| (2..=u16::MAX as usize).contains(&k)),
            "fan-out sizes run from 2 to {}",
            u16::MAX
        );
        // Built from JSON so that fields the directory entry gains later take their defaults.
        let info: RoomInfo = serde_json::from_value(serde_json::json!({
            "slug": "crowd", "name": "Crowd", "created_at": START
        }))?;
        let store = SqlStore::open(Sqlite::memory()?)?;
        let room = Room::open(store, info)?;
        let every = (config.clients / config.sample.max(1)).max(1);
        let limits = RateLimits::default();
        let mut clients = Vec::with_capacity(config.clients);
        let mut users = HashMap::with_capacity(config.clients);
        for i in 0..config.clients {
            let id = format!("u{i:06}");
            let conn = Conn::new(Author {
                id: id.clone(),
                name: format!("Person {i}"),
                role: Role::Member,
            });
            let nodes = config
                .fanouts
                .iter()
                .map(|&k| node_of(&id, k) as u16)
                .collect();
            users.insert(id, i);
            clients.push(Client {
                conn,
                limiter: ConnLimiter::new(limits, START),
                socket: i as u64 + 1,
                nodes,
                connected: false,
                welcome_head: 0,
                cursor: None,
                state: (i % every == 0).then(ClientRoom::new),
            });
        }
        Ok(Crowd {
            rng: config.seed.max(1),
            config,
            room: Some(room),
            presence: Presence::new(),
            clients,
            users,
            now: START,
            phase: Phase::Seed,
            up: VecDeque::new(),
            next_id: 0,
            log: Vec::new(),
            inbound: Vec::new(),
            checks: Checks::default(),
            episodes: Vec::new(),
            restart: Restart::default(),
            head: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn room(&self) -> Result<&Room<Sqlite>> {
        self.room.as_ref().context("the room is restarting")
    }

    /// Messages from someone who is not among the clients, before anyone joins.
    fn seed_history(&mut self) -> Result {
        self.phase = Phase::Seed;
        let mut conn = Conn::new(Author {
            id: "seed".into(),
            name: "Seed".into(),
            role: Role::Member,
        });
        let mut limiter = ConnLimiter::new(
            RateLimits {
                send_burst: 1e9,
                send_per_second: 1e9,
                frame_burst: 1e9,
                frame_per_second: 1e9,
            },
            self.now,
        );
        let mut frames = vec![ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            after: None,
        }];
        for n in 0..self.config.history {
            self.next_id += 1;
            frames.push(ClientMessage::Send {
                client_id: format!("seed{n}"),
                text: sentence(&mut self.rng, self.next_id),
                attachments: Vec::new(),
            });
        }
        let room = self.room.as_mut().context("no room")?;
        for frame in frames {
            self.now += 1;
            let raw = serde_json::to_string(&frame)?;
            let effects = room.on_frame(&conn, &mut limiter, Frame::Text(&raw), self.now, || {
                Vec::<shared::protocol::Member>::new()
            });
            for effect in effects {
                match effect {
                    Effect::Joined => conn.joined = true,
                    Effect::Log(detail) => bail!("room storage failure: {detail}"),
                    Effect::Reply(ServerMessage::Error { message, .. }) => {
                        bail!("the seed was refused: {message}")
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Everyone joins, one a millisecond (a crowd arriving, or coming back after a deploy).
    fn join_all(&mut self) -> Result {
        self.phase = Phase::Join;
        for c in 0..self.clients.len() {
            self.now += 1;
            self.connect(c, None)?;
            self.tick_presence()?;
        }
        // The last count leaves once its second has passed.
        self.now += 1_000;
        self.tick_presence()
    }

    fn steady(&mut self) -> Result {
        self.phase = Phase::Steady;
        let interval = (1_000.0 / self.config.rate).max(1.0) as Millis;
        // Two restarts per fan-out size (node 0 resumed by the room, node 1 from its buffer),
        // each in a slot of its own so that no client is on two failed nodes at once.
        let plan: Vec<(usize, u16, Resume)> = (0..self.config.fanouts.len())
            .flat_map(|f| [(f, 0, Resume::Room), (f, 1, Resume::NodeBuffer)])
            .collect();
        let slot = self.config.messages / plan.len().max(1);
        ensure!(
            slot > self.config.gap + 2,
            "{} messages leave no room for {} node restarts of {} messages each",
            self.config.messages,
            plan.len(),
            self.config.gap
        );
        let mut down: Option<usize> = None;
        for j in 0..self.config.messages {
            self.now += interval;
            let e = j / slot;
            if let Some(&(fanout, node, resume)) = plan.get(e) {
                let start = e * slot + (slot - self.config.gap) / 2;
                if j == start {
                    self.node_down(fanout, node, resume, j)?;
                    down = Some(self.episodes.len() - 1);
                } else if j == start + self.config.gap {
                    if let Some(episode) = down.take() {
                        self.node_up(episode, j)?;
                    }
                }
            }
            let sender = self.pick()?;
            self.frame(sender, ClientMessage::Typing {}, "typing")?;
            self.send_message(sender)?;
            if j % 10 == 5 {
                let target = self.room()?.head();
                let reactor = self.pick()?;
                self.next_id += 1;
                let react = ClientMessage::React {
                    client_id: format!("r{}", self.next_id),
                    target,
                    emoji: "👍".into(),
                    add: true,
                };
                self.frame(reactor, react, "react")?;
            }
            if j % 25 == 12 {
                let seq = self.room()?.head();
                let reader = self.pick()?;
                self.frame(reader, ClientMessage::Read { seq }, "read")?;
            }
            self.tick_presence()?;
        }
        if let Some(episode) = down {
            self.node_up(episode, self.config.messages)?;
        }
        Ok(())
    }

    /// A connected client, chosen at random.
    fn pick(&mut self) -> Result<usize> {
        for _ in 0..1_000 {
            let c = (next(&mut self.rng) % self.clients.len() as u64) as usize;
            let client = &self.clients[c];
            let live = client
                .state
                .as_ref()
                .is_none_or(|s| s.phase() == shared::client::Phase::Live);
            if client.connected && client.conn.joined && live {
                return Ok(c);
            }
        }
        bail!("no connected client found")
    }

    fn send_message(&mut self, c: usize) -> Result {
        self.next_id += 1;
        let text = sentence(&mut self.rng, self.next_id);
        let client_id = format!("m{}", self.next_id);
        let now = self.now;
        match self.clients[c].state.as_mut() {
            Some(state) => {
                state.queue(
                    client_id,
                    PendingOp::Send {
                        text,
                        attachments: Vec::new(),
                    },
                    now,
                );
                for frame in state.take_frames(now) {
                    self.up.push_back((c, frame));
                }
                self.drain_up()
            }
            None => self.frame(
                c,
                ClientMessage::Send {
                    client_id,
                    text,
                    attachments: Vec::new(),
                },
                "send",
            ),
        }
    }

    fn node_down(&mut self, fanout: usize, node: u16, resume: Resume, at: usize) -> Result {
        let clients: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].nodes[fanout] == node && self.clients[c].connected)
            .collect();
        for &c in &clients {
            self.disconnect(c);
            let notices = self.presence.leave(self.clients[c].socket, self.now);
            self.tell(notices)?;
        }
        self.episodes.push(Episode {
            fanout,
            node,
            resume,
            clients,
            missed: 0,
            down_at: at,
            up_at: at,
        });
        Ok(())
    }

    fn node_up(&mut self, episode: usize, at: usize) -> Result {
        self.phase = Phase::Resume(episode);
        let (fanout, node, resume, clients) = {
            let e = &self.episodes[episode];
            (e.fanout, e.node, e.resume, e.clients.clone())
        };
        let head = self.room()?.head();
        let oldest = clients
            .iter()
            .filter_map(|&c| self.clients[c].cursor)
            .min()
            .unwrap_or(head);
        self.episodes[episode].missed = head - oldest;
        self.episodes[episode].up_at = at;
        let buffer = match resume {
            Resume::Room => None,
            Resume::NodeBuffer => self.fetch(fanout, node, oldest)?,
        };
        for c in clients {
            let inject = match (&buffer, self.clients[c].cursor) {
                (Some(events), Some(cursor)) => {
                    let missed: Vec<Event> =
                        events.iter().filter(|e| e.seq > cursor).cloned().collect();
                    let batches = missed
                        .chunks(REPLAY_BATCH)
                        .map(|chunk| ServerMessage::Replay {
                            events: chunk.to_vec(),
                            done: false,
                        })
                        .collect();
                    Some((head, batches))
                }
                _ => None,
            };
            self.connect(c, inject)?;
        }
        self.phase = Phase::Steady;
        Ok(())
    }

    /// A restarted node asks the room, once, for the events after `after`: what the room's
    /// replay gives a client (at most `REPLAY_MAX_EVENTS`, else a page, and then the node
    /// lets each client resume through the room instead).
    fn fetch(&mut self, fanout: usize, node: u16, after: Seq) -> Result<Option<Vec<Event>>> {
        let started = Instant::now();
        let frames = self
            .room()?
            .sync(Some(after))
            .map_err(|f| anyhow!("the room could not replay: {f:?}"))?;
        self.inbound.push(Inbound {
            phase: self.phase,
            kind: "fetch",
            bytes: 40,
            client: None,
            node: Some((fanout, node)),
            native: started.elapsed(),
        });
        let mut events = Vec::new();
        for frame in &frames {
            let text = serde_json::to_string(frame)?;
            let mut nodes = vec![Vec::new(); self.config.fanouts.len()];
            nodes[fanout] = vec![(node, 0)];
            self.log.push(Sent {
                phase: self.phase,
                kind: frame.server_type(),
                bytes: text.len() as u32,
                recipients: 0,
                nodes,
                from_node: false,
            });
            match frame {
                ServerMessage::Replay { events: batch, .. } => events.extend(batch.iter().cloned()),
                _ => return Ok(None),
            }
        }
        Ok(Some(events))
    }

    /// The room restarts (reopened from its store, as after an eviction or a crash) while one
    /// object holds every socket: every socket drops and every client comes back with its
    /// cursor at once. (In the tree the nodes keep their sockets and only re-link.)
    fn restart_room(&mut self) -> Result {
        self.phase = Phase::RoomRestart;
        let room = self.room.take().context("no room")?;
        let info = room.info().clone();
        let room = Room::open(room.into_store(), info)?;
        let head = room.head();
        let relink = room
            .sync(Some(head))
            .map_err(|f| anyhow!("the room could not replay: {f:?}"))?;
        self.restart.relink_bytes = relink
            .iter()
            .map(|f| serde_json::to_string(f).map(|t| t.len() as u64))
            .sum::<Result<u64, _>>()?;
        self.room = Some(room);
        self.presence = Presence::new();
        let mut roster = 0u64;
        for c in 0..self.clients.len() {
            roster += serde_json::to_string(&self.clients[c].conn)?.len() as u64;
            self.disconnect(c);
        }
        self.restart.roster_bytes = roster;
        // What the tree's room does instead of taking every hello: rebuild presence from the
        // nodes' rosters (quietly, as the object rebuilds it from attachments when it wakes).
        let started = Instant::now();
        let mut rebuilt = Presence::new();
        for client in &self.clients {
            std::hint::black_box(rebuilt.join(client.socket, client.conn.member(), self.now));
        }
        self.restart.presence_rebuild = started.elapsed();
        for c in 0..self.clients.len() {
            self.connect(c, None)?;
        }
        self.now += 1_000;
        self.tick_presence()
    }

    fn after_restart(&mut self) -> Result {
        self.phase = Phase::AfterRestart;
        for _ in 0..10 {
            self.now += 100;
            let sender = self.pick()?;
            self.frame(sender, ClientMessage::Typing {}, "typing")?;
            self.send_message(sender)?;
            self.tick_presence()?;
        }
        self.now += 1_000;
        self.tick_presence()
    }

    fn disconnect(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.connected = false;
        client.conn.joined = false;
        if let Some(state) = client.state.as_mut() {
            state.disconnected();
        }
    }

    /// Opens client `c`'s socket and sends its hello. `node` (a node resuming it from its
    /// buffer): the hello reaches the room with the node's head as cursor, and these replay
    /// frames follow the welcome.
    fn connect(&mut self, c: usize, node: Option<(Seq, Vec<ServerMessage>)>) -> Result {
        let client = &mut self.clients[c];
        client.connected = true;
        let mut hello = match client.state.as_mut() {
            Some(state) => state.connect(),
            None => ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                after: client.cursor,
            },
        };
        let inject = node.map(|(head, frames)| {
            hello = ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                after: Some(head),
            };
            frames
        });
        let effects = self.feed(c, &hello, "hello")?;
        self.carry(c, effects, inject)?;
        self.drain_up()
    }

    fn frame(&mut self, c: usize, message: ClientMessage, kind: &'static str) -> Result {
        let effects = self.feed(c, &message, kind)?;
        self.carry(c, effects, None)?;
        self.drain_up()
    }

    /// What sampled clients sent in answer to what they received (their outbox).
    fn drain_up(&mut self) -> Result {
        while let Some((c, message)) = self.up.pop_front() {
            if !self.clients[c].connected {
                continue;
            }
            let kind = match message {
                ClientMessage::Send { .. } => "send",
                ClientMessage::Hello { .. } => "hello",
                _ => "other",
            };
            let effects = self.feed(c, &message, kind)?;
            self.carry(c, effects, None)?;
        }
        Ok(())
    }

    fn feed(
        &mut self,
        c: usize,
        message: &ClientMessage,
        kind: &'static str,
    ) -> Result<Vec<Effect>> {
        let raw = serde_json::to_string(message)?;
        let room = self.room.as_mut().context("the room is restarting")?;
        let presence = &self.presence;
        let client = &mut self.clients[c];
        let started = Instant::now();
        let effects = room.on_frame(
            &client.conn,
            &mut client.limiter,
            Frame::Text(&raw),
            self.now,
            || presence.welcome(),
        );
        self.inbound.push(Inbound {
            phase: self.phase,
            kind,
            bytes: raw.len() as u32,
            client: Some(c as u32),
            node: None,
            native: started.elapsed(),
        });
        Ok(effects)
    }

    /// Carries out effects as the Durable Object does (`ChatRoom::carry_out`).
    fn carry(
        &mut self,
        from: usize,
        effects: Vec<Effect>,
        mut inject: Option<Vec<ServerMessage>>,
    ) -> Result {
        for effect in effects {
            match effect {
                Effect::Reply(message) => {
                    let welcome = matches!(message, ServerMessage::Welcome { .. });
                    self.send(Target::One(from), &message, false)?;
                    if welcome {
                        for frame in inject.take().unwrap_or_default() {
                            self.send(Target::One(from), &frame, true)?;
                        }
                    }
                }
                Effect::Broadcast(message) => self.send(Target::All(None), &message, false)?,
                Effect::BroadcastOthers(message) => {
                    // Typing is bounded by who is present, as the object bounds it.
                    let told = match &message {
                        ServerMessage::Typing { user_id, .. } => {
                            self.presence.typing(user_id, self.now)
                        }
                        _ => true,
                    };
                    if told {
                        self.send(Target::All(Some(from)), &message, false)?;
                    }
                }
                Effect::Joined => {
                    let client = &mut self.clients[from];
                    client.conn.joined = true;
                    let member = client.conn.member();
                    let notices = self.presence.join(client.socket, member, self.now);
                    self.tell(notices)?;
                }
                Effect::ToUser(user, message) => self.send(Target::User(user), &message, false)?,
                Effect::Log(detail) => bail!("room storage failure: {detail}"),
                Effect::Close(code, reason) => {
                    bail!("the room closed client {from}: {code} {reason:?}")
                }
                // No socket here watches unread counts and no message asks the assistant; the
                // membership record outside the room is the Worker's.
                _ => {}
            }
        }
        Ok(())
    }

    fn tell(&mut self, notices: Vec<Notice>) -> Result {
        for notice in notices {
            match notice {
                Notice::Everyone { frame, except } => {
                    let except = except.map(|socket| socket as usize - 1);
                    self.send(Target::All(except), &frame, false)?;
                }
                Notice::Sockets(sockets, frame) => {
                    let to = sockets.into_iter().map(|s| s as usize - 1).collect();
                    self.send(Target::Some(to), &frame, false)?;
                }
            }
        }
        Ok(())
    }

    fn tick_presence(&mut self) -> Result {
        let notices = self.presence.tick(self.now);
        self.tell(notices)
    }

    fn send(&mut self, target: Target, message: &ServerMessage, from_node: bool) -> Result {
        let text = serde_json::to_string(message)?;
        let joined = |c: &Client| c.connected && c.conn.joined;
        let recipients: Vec<usize> = match target {
            Target::All(except) => (0..self.clients.len())
                .filter(|&c| Some(c) != except && joined(&self.clients[c]))
                .collect(),
            Target::One(c) if self.clients[c].connected => vec![c],
            Target::One(_) => Vec::new(),
            Target::User(user) => self
                .users
                .get(&user)
                .copied()
                .filter(|&c| joined(&self.clients[c]))
                .into_iter()
                .collect(),
            Target::Some(to) => to
                .into_iter()
                .filter(|&c| joined(&self.clients[c]))
                .collect(),
        };
        let mut nodes = Vec::with_capacity(self.config.fanouts.len());
        for (f, &k) in self.config.fanouts.iter().enumerate() {
            let mut counts = vec![0u32; k];
            for &c in &recipients {
                counts[self.clients[c].nodes[f] as usize] += 1;
            }
            nodes.push(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(node, &n)| (node as u16, n))
                    .collect(),
            );
        }
        self.log.push(Sent {
            phase: self.phase,
            kind: message.server_type(),
            bytes: text.len() as u32,
            recipients: recipients.len() as u32,
            nodes,
            from_node,
        });
        if let ServerMessage::Error { message: why, .. } = message {
            self.checks.error_count += 1;
            if self.checks.errors.len() < 5 {
                self.checks.errors.push(why.clone());
            }
        }
        for c in recipients {
            self.deliver(c, message, &text)?;
        }
        Ok(())
    }

    fn deliver(&mut self, c: usize, message: &ServerMessage, text: &str) -> Result {
        let now = self.now;
        let checks = &mut self.checks;
        let client = &mut self.clients[c];
        let mut step = |client: &mut Client, seq: Seq| match client.cursor {
            Some(cursor) if seq == cursor + 1 => {
                client.cursor = Some(seq);
                checks.applied += 1;
            }
            Some(cursor) if seq <= cursor => checks.duplicates += 1,
            Some(_) => checks.gaps += 1,
            None => checks.before_page += 1,
        };
        match message {
            ServerMessage::Welcome { head, .. } => client.welcome_head = *head,
            ServerMessage::History { reason, .. } if *reason != HistoryReason::Older => {
                client.cursor = Some(client.welcome_head);
            }
            ServerMessage::Replay { events, .. } => {
                for event in events {
                    step(client, event.seq);
                }
            }
            ServerMessage::Event { event } => step(client, event.seq),
            _ => {}
        }
        if let Some(state) = client.state.as_mut() {
            // The real decoder on the real bytes.
            let decoded: ServerMessage = serde_json::from_str(text)?;
            let applied = state.apply(decoded, now);
            if applied.resync {
                checks.resyncs += 1;
            }
            let mut frames = applied.requests;
            if applied.went_live || applied.outbox_changed {
                frames.extend(state.take_frames(now));
            }
            for frame in frames {
                self.up.push_back((c, frame));
            }
        }
        Ok(())
    }

    fn verify(&self) -> Result {
        let checks = &self.checks;
        ensure!(
            checks.duplicates == 0 && checks.gaps == 0 && checks.before_page == 0,
            "delivery broke: {} duplicates, {} gaps, {} events before a page",
            checks.duplicates,
            checks.gaps,
            checks.before_page
        );
        ensure!(
            checks.resyncs == 0,
            "{} sampled clients resynchronized",
            checks.resyncs
        );
        ensure!(
            checks.error_count == 0,
            "the room answered {} errors, first: {:?}",
            checks.error_count,
            checks.errors
        );
        let room = self.room()?;
        let head = room.head();
        let (latest, _) = room.store().messages_before(None, usize::MAX)?;
        for (c, client) in self.clients.iter().enumerate() {
            ensure!(
                client.connected && client.conn.joined,
                "client {c} is not back"
            );
            ensure!(
                client.cursor == Some(head),
                "client {c} stopped at {:?}, the room is at {head}",
                client.cursor
            );
            if let Some(state) = &client.state {
                ensure!(state.head() == Some(head), "sampled client {c} head");
                ensure!(
                    state.outbox().next().is_none(),
                    "sampled client {c} has pending sends"
                );
                let held: Vec<_> = state.messages().cloned().collect();
                let from = held.first().map_or(Seq::MAX, |m| m.seq);
                let expected: Vec<_> = latest.iter().filter(|m| m.seq >= from).cloned().collect();
                ensure!(
                    held == expected,
                    "sampled client {c} holds other messages than the room"
                );
            }
        }
        Ok(())
    }

    /// Clients running the real [`ClientRoom`].
    pub fn sampled(&self) -> usize {
        self.clients.iter().filter(|c| c.state.is_some()).count()
    }

    /// The steady phase's messages (the frames that became a broadcast message).
    pub fn steady_messages(&self) -> usize {
        self.inbound
            .iter()
            .filter(|i| i.phase == Phase::Steady && i.kind == "send")
            .count()
    }

    /// Simulated seconds of the steady phase.
    pub fn steady_seconds(&self) -> f64 {
        self.config.messages as f64 / self.config.rate
    }
}

impl Crowd {
    /// A real event frame of the steady phase, for [`measure_native`].
    pub fn sample_event(&self) -> Result<ServerMessage> {
        let room = self.room()?;
        let events = room
            .store()
            .events_after(room.head().saturating_sub(1), 1)?;
        let event = events.into_iter().next().context("no event")?;
        Ok(ServerMessage::Event { event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_spread_over_the_nodes_within_a_fifth_of_even() {
        let k = 16;
        let mut counts = vec![0usize; k];
        for i in 0..16_000 {
            counts[node_of(&format!("u{i:06}"), k)] += 1;
        }
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(min >= Some(&800) && max <= Some(&1_200), "{counts:?}");
    }

    #[test]
    fn a_small_crowd_gets_every_event_once_through_node_restarts_and_a_room_restart() {
        let mut config = Config::new(300);
        config.fanouts = vec![4];
        config.messages = 60;
        config.gap = 10;
        config.sample = 30;
        let crowd = Crowd::run(config).expect("the simulation runs and its checks hold");
        assert_eq!(crowd.episodes.len(), 2);
        assert!(crowd
            .episodes
            .iter()
            .all(|e| e.missed >= 10 && !e.clients.is_empty()));
        assert!(crowd.checks.applied > 300 * 60);
        assert_eq!(crowd.sampled(), 30);
    }
}
