//! Crashes and faults against the real Worker under `wrangler dev`, with the app's own client
//! state machine ([`ClientRoom`]) in every client:
//!
//! - workerd killed with SIGKILL while ten clients send without pacing (each keeps the
//!   protocol's window of unanswered sends full) and an assistant answer is provably
//!   mid-stream (the scripted provider holds it at a gate), then restarted on the same state;
//! - a thousand sockets dropped at seeded random points (right after the upgrade, after the
//!   hello, in the middle of a replay, in the middle of a frame, with acks outstanding) while
//!   the same clients keep sending.
//!
//! What must hold: every acknowledged message is stored exactly once, under the sequence number
//! its ack named; the log has no gap; every client receives every event exactly once and in
//! order, and all converge; an answer is never left "streaming". Each client checks every
//! event it is given against its own cursor, so a gap or a doubled delivery on any of the
//! thousands of connections is reported, not just the final state.
//!
//! Set `FAULTS_SEED` to replay a run of the disconnect test (the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use e2e::client::{Incoming, RoomSocket};
use e2e::fake_ai::{FakeAi, Gate, Script};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use shared::client::{ClientRoom, PendingOp, PendingStatus, Phase, MAX_IN_FLIGHT};
use shared::protocol::{
    AnswerState, ClientMessage, Event, EventKind, HistoryReason, MessageView, Seq, ServerMessage,
};
use shared::ErrorCode;

/// Clients sending at once.
const CLIENTS: usize = 10;
/// Sockets dropped in the disconnect test.
const DISCONNECTS: usize = 1_000;
/// Messages each client of the disconnect test sends at most.
const BUDGET: usize = 150;
/// Once per client in the disconnect test: away until the others' messages make a replay of
/// more than one batch (100 events), but no longer than this.
const LONG_AWAY_LIMIT: Duration = Duration::from_secs(15);
/// The longest any phase of a test may take before it fails instead of hanging (a guard
/// against hangs, far above what a phase takes on a busy 2-core machine).
const PHASE_LIMIT: Duration = Duration::from_secs(90);
/// The same guard for the thousand cuts (about a minute on a busy 2-core machine).
const CHURN_LIMIT: Duration = Duration::from_secs(300);

/// The per-connection rate limits lifted: these tests are about delivery, and a
/// `rate_limited` refusal would only make clients wait.
fn unthrottled() -> DevOptions {
    DevOptions::default()
        .var("SEND_BURST", 1_000_000)
        .var("SEND_PER_SECOND", 1_000_000)
        .var("FRAME_BURST", 1_000_000)
        .var("FRAME_PER_SECOND", 1_000_000)
}

fn now_ms() -> shared::protocol::Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as shared::protocol::Millis)
}

/// splitmix64: small, seedable, good enough to pick drop points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An event as a client received it: enough to compare logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    seq: Seq,
    author: String,
    client_id: String,
    /// A new message (not an answer's status, a regenerate, ...).
    message: bool,
}

impl From<&Event> for Seen {
    fn from(event: &Event) -> Seen {
        Seen {
            seq: event.seq,
            author: event.author.id.clone(),
            client_id: event.client_id.clone(),
            message: matches!(event.kind, EventKind::Message { .. }),
        }
    }
}

/// A message as a client shows it: seq, client id, text, deleted, answer state and version.
type Shown = (Seq, String, String, bool, Option<(AnswerState, u32)>);

/// One client: a session, the app's state machine, and what it saw across all its
/// connections.
struct Peer {
    name: String,
    session: Session,
    room: ClientRoom,
    /// The highest sequence number received in order (our own check, beside `room`'s).
    cursor: Option<Seq>,
    /// Sends queued, in order: (client id, text).
    queued: Vec<(String, String)>,
    /// Acks received: client id → the seq they named.
    acked: BTreeMap<String, Seq>,
    /// Every event received in order, across all connections.
    delivered: Vec<Seen>,
    /// Broken promises seen: gaps, doubled deliveries, reset pages, conflicting acks, errors.
    faults: Vec<String>,
}

impl Peer {
    async fn new(server: &DevServer, name: String) -> Result<Peer> {
        Ok(Peer {
            session: Session::create(server, &name).await?,
            name,
            room: ClientRoom::new(),
            cursor: None,
            queued: Vec::new(),
            acked: BTreeMap::new(),
            delivered: Vec::new(),
            faults: Vec::new(),
        })
    }

    fn user_id(&self) -> &str {
        self.session.user_id()
    }

    fn queue_message(&mut self) {
        let n = self.queued.len();
        self.queue_text(
            format!("{}-{n}", self.name),
            format!("{} says {n}", self.name),
        );
    }

    fn queue_text(&mut self, id: String, text: String) {
        self.room.queue(
            id.clone(),
            PendingOp::Send {
                text: text.clone(),
                attachments: Vec::new(),
            },
            now_ms(),
        );
        self.queued.push((id, text));
    }

    fn in_flight(&self) -> usize {
        self.room
            .outbox()
            .filter(|p| p.status == PendingStatus::InFlight)
            .count()
    }

    fn fault(&mut self, what: String) {
        self.faults.push(format!("{}: {what}", self.name));
    }

    fn check_event(&mut self, event: &Event) {
        match self.cursor {
            Some(c) if event.seq == c + 1 => {
                self.cursor = Some(event.seq);
                self.delivered.push(Seen::from(event));
            }
            Some(c) if event.seq <= c => {
                self.fault(format!("event {} delivered again (cursor {c})", event.seq))
            }
            c => self.fault(format!("gap: event {} after cursor {c:?}", event.seq)),
        }
    }

    /// Checks a frame against what the protocol promises, then applies it.
    fn receive(&mut self, message: ServerMessage) {
        match &message {
            ServerMessage::Event { event } => self.check_event(event),
            ServerMessage::Replay { events, .. } => {
                for event in events {
                    self.check_event(event);
                }
            }
            ServerMessage::History {
                reason: reason @ (HistoryReason::Latest | HistoryReason::Reset),
                ..
            } if self.cursor.is_some() => {
                // Every test client holds a cursor after its first join and is never more
                // than a few hundred events behind: it must get a replay.
                self.fault(format!("a {reason:?} page instead of a replay"));
            }
            ServerMessage::Ack { client_id, seq, .. } => {
                if let Some(old) = self.acked.insert(client_id.clone(), *seq) {
                    if old != *seq {
                        self.fault(format!("{client_id} acknowledged as {old} and as {seq}"));
                    }
                }
            }
            ServerMessage::Error { .. } => self.fault(format!("error frame {message:?}")),
            _ => {}
        }
        self.room.apply(message, now_ms());
        if self.cursor.is_none() && self.room.phase() == Phase::Live {
            // The first join: the latest page of an empty room.
            self.cursor = self.room.head();
        }
        if self.cursor.is_some() && self.room.head() != self.cursor {
            let (ours, theirs) = (self.cursor, self.room.head());
            self.fault(format!("cursor {ours:?} but the client holds {theirs:?}"));
        }
    }

    /// Sends what the client's window allows.
    async fn flush(&mut self, socket: &mut RoomSocket) -> Result<usize> {
        let frames = self.room.take_frames(now_ms());
        for frame in &frames {
            socket.send_message(frame).await?;
        }
        Ok(frames.len())
    }

    /// Reads one frame: `Some(true)` applied, `Some(false)` the socket closed, `None` nothing
    /// within `timeout`. A broken promise fails at once, with what was seen (a client that
    /// saw a gap would otherwise only wait for a replay that never completes).
    async fn read_one(
        &mut self,
        socket: &mut RoomSocket,
        timeout: Duration,
    ) -> Result<Option<bool>> {
        let read = match socket.try_next_frame(timeout).await? {
            None => None,
            Some(Incoming::Closed { .. }) => Some(false),
            Some(Incoming::Message(message)) => {
                self.receive(message);
                Some(true)
            }
        };
        ensure!(
            self.faults.is_empty(),
            "broken promises: {:#?}",
            self.faults
        );
        Ok(read)
    }

    /// Sends the hello and reads until the client is live.
    async fn go_live(&mut self, socket: &mut RoomSocket) -> Result {
        socket.send_message(&self.room.connect()).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.room.phase() != Phase::Live {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_one(socket, left).await? {
                Some(true) => {}
                Some(false) => bail!(
                    "{}: the socket closed before the client was live",
                    self.name
                ),
                None => bail!("{}: not live within 20 s", self.name),
            }
        }
        Ok(())
    }

    async fn connect(&mut self, slug: &str) -> Result<RoomSocket> {
        self.session
            .connect(slug)
            .await
            .with_context(|| format!("{} connecting", self.name))
    }

    /// Sends and reads until every queued mutation is confirmed; false if `deadline` came
    /// first (the caller then says what is missing).
    async fn drain(&mut self, socket: &mut RoomSocket, deadline: Instant) -> Result<bool> {
        loop {
            self.flush(socket).await?;
            if self.room.outbox().next().is_none() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_one(socket, left).await? {
                Some(true) => {}
                Some(false) => bail!("{}: the socket closed while draining", self.name),
                None => return Ok(false),
            }
        }
    }

    /// Reads until the client holds every event up to `head`.
    async fn catch_up(&mut self, socket: &mut RoomSocket, head: Seq) -> Result {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cursor < Some(head) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_one(socket, left).await? {
                Some(true) => {}
                Some(false) => bail!("{}: the socket closed while catching up", self.name),
                None => bail!(
                    "{}: at {:?}, not {head}, after 20 s",
                    self.name,
                    self.cursor
                ),
            }
        }
        Ok(())
    }

    /// What the client shows, for comparing clients.
    fn view(&self) -> Vec<Shown> {
        self.room
            .messages()
            .map(|m| {
                (
                    m.seq,
                    m.client_id.clone(),
                    m.text.clone(),
                    m.deleted,
                    m.answer.as_ref().map(|a| (a.state, a.version)),
                )
            })
            .collect()
    }
}

/// `CLIENTS` clients in a new room, each joined once (so each holds a cursor from then on).
async fn peers_in_a_room(server: &DevServer, prefix: &str) -> Result<(String, Vec<Peer>)> {
    let mut peers = Vec::new();
    for i in 0..CLIENTS {
        peers.push(Peer::new(server, format!("{prefix}{i}")).await?);
    }
    let slug = peers[0].session.new_room().await?.slug;
    for peer in &mut peers {
        let mut socket = peer.connect(&slug).await?;
        peer.go_live(&mut socket).await?;
        socket.close().await;
        peer.room.disconnected();
    }
    Ok((slug, peers))
}

/// Every message the room stores, oldest first, read page by page (a replay only reaches 500
/// events back).
async fn stored_messages(session: &Session, slug: &str) -> Result<Vec<MessageView>> {
    let (mut socket, joined) = session.join(slug, None).await?;
    let mut before = joined.head + 1;
    let mut pages = Vec::new();
    loop {
        socket
            .send_message(&ClientMessage::History {
                before,
                limit: Some(shared::limits::PAGE_MAX),
            })
            .await?;
        let (page, _) = socket
            .expect_until(Duration::from_secs(10), |m| match m {
                ServerMessage::History {
                    messages,
                    has_more,
                    reason: HistoryReason::Older,
                } => Some((messages.clone(), *has_more)),
                _ => None,
            })
            .await?;
        let (messages, has_more) = page;
        if let Some(first) = messages.first() {
            before = first.seq;
        }
        pages.push(messages);
        if !has_more {
            break;
        }
    }
    socket.close().await;
    Ok(pages.into_iter().rev().flatten().collect())
}

/// What every test here asserts once the clients are quiet: the stored messages, the acks and
/// every client's deliveries agree.
fn check_delivery(peers: &[Peer], stored: &[MessageView], head: Seq) -> Result<Stats> {
    let faults: Vec<&String> = peers.iter().flat_map(|p| &p.faults).collect();
    ensure!(
        faults.is_empty(),
        "{} broken promises: {faults:#?}",
        faults.len()
    );

    // Stored exactly once: no (author, client id) twice, no text twice.
    let mut by_id: BTreeMap<(String, String), Seq> = BTreeMap::new();
    let mut texts = BTreeSet::new();
    for m in stored {
        if by_id
            .insert((m.author.id.clone(), m.client_id.clone()), m.seq)
            .is_some()
        {
            bail!("{} by {} is stored twice", m.client_id, m.author.name);
        }
        if m.answer.is_none() && !texts.insert(m.text.clone()) {
            bail!("the text {:?} is stored twice", m.text);
        }
    }

    let (mut acked, mut confirmed) = (0, 0);
    for peer in peers {
        // Every acknowledged message is stored, under the seq its ack named.
        let mut lost = Vec::new();
        let sends = peer.queued.iter().map(|(id, _)| id);
        for (id, seq) in sends.filter_map(|id| Some((id, peer.acked.get(id)?))) {
            match by_id.get(&(peer.user_id().to_owned(), id.clone())) {
                Some(stored) if stored == seq => {}
                Some(stored) => bail!("{id} acknowledged as {seq} but stored as {stored}"),
                None => lost.push((id.clone(), *seq)),
            }
        }
        ensure!(
            lost.is_empty(),
            "{}: acknowledged but not stored: {lost:?}",
            peer.name
        );
        // Every queued message was confirmed to its sender (the outbox drained: by its ack,
        // or by its own event when the ack was lost with a connection) and is stored, and
        // nothing else of this client's is.
        ensure!(
            peer.room.outbox().next().is_none(),
            "{}: unconfirmed sends",
            peer.name
        );
        let queued: BTreeSet<&String> = peer.queued.iter().map(|(id, _)| id).collect();
        let stored_ids: BTreeSet<&String> = stored
            .iter()
            .filter(|m| m.author.id == peer.user_id())
            .map(|m| &m.client_id)
            .collect();
        ensure!(
            stored_ids == queued,
            "{}: queued {} messages, {} stored; missing {:?}, unexpected {:?}",
            peer.name,
            queued.len(),
            stored_ids.len(),
            queued.difference(&stored_ids).collect::<Vec<_>>(),
            stored_ids.difference(&queued).collect::<Vec<_>>()
        );
        // Each client's messages are stored in the order it sent them.
        let seqs: Vec<Seq> = peer
            .queued
            .iter()
            .filter_map(|(id, _)| by_id.get(&(peer.user_id().to_owned(), id.clone())).copied())
            .collect();
        ensure!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{}: stored out of order: {seqs:?}",
            peer.name
        );
        acked += peer
            .queued
            .iter()
            .filter(|(id, _)| peer.acked.contains_key(id))
            .count();
        confirmed += queued.len();
    }

    // Every client received every event from its first join to the head, once, in order, and
    // the same ones.
    let first = &peers[0].delivered;
    ensure!(
        first.iter().map(|s| s.seq).eq(1..=head),
        "{} received {} events, not 1..={head}",
        peers[0].name,
        first.len()
    );
    for peer in &peers[1..] {
        ensure!(
            &peer.delivered == first,
            "{} received other events than {}",
            peer.name,
            peers[0].name
        );
    }
    // The set of sends confirmed to their senders is the set of their messages delivered.
    let confirmed_set: BTreeSet<(String, String)> = peers
        .iter()
        .flat_map(|p| {
            p.queued
                .iter()
                .map(|(id, _)| (p.user_id().to_owned(), id.clone()))
        })
        .collect();
    let ours: BTreeSet<&str> = peers.iter().map(|p| p.user_id()).collect();
    let delivered_set: BTreeSet<(String, String)> = first
        .iter()
        .filter(|s| s.message && ours.contains(s.author.as_str()))
        .map(|s| (s.author.clone(), s.client_id.clone()))
        .collect();
    ensure!(confirmed_set == delivered_set, "confirmed ≠ delivered");
    // All clients show the same room.
    let view = peers[0].view();
    for peer in &peers[1..] {
        ensure!(
            peer.view() == view,
            "{} shows another room than {}",
            peer.name,
            peers[0].name
        );
    }
    Ok(Stats {
        acked,
        confirmed,
        events: head,
    })
}

struct Stats {
    /// Sends whose ack reached the sender.
    acked: usize,
    /// Sends confirmed to the sender (by ack or by its own event): all of them.
    confirmed: usize,
    events: Seq,
}

// ---------------------------------------------------------------------------------------------
// SIGKILL mid-burst, mid-answer.

/// What a client had seen when its socket died.
struct AtKill {
    peer: Peer,
    in_flight: usize,
    answer: Option<MessageView>,
    second: Option<MessageView>,
}

/// What the senders watch for, shared with the test.
#[derive(Clone)]
struct Watch {
    /// The question whose answer is held mid-stream.
    question: String,
    /// A second question, asked once the first answer streams, so its answer waits in the
    /// room's queue at the kill.
    second: String,
    acks: Arc<AtomicUsize>,
    /// Someone saw the first answer partly written, still streaming.
    partial: Arc<AtomicBool>,
    /// Someone saw the second answer queued.
    queued: Arc<AtomicBool>,
}

/// Keeps the client's window full until its socket dies (the kill). The second client asks
/// the second question once it sees the first answer streaming.
async fn send_until_cut(mut peer: Peer, mut socket: RoomSocket, watch: Watch) -> Result<AtKill> {
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut asks = peer.name.ends_with('1');
    loop {
        ensure!(
            Instant::now() < deadline,
            "{}: the server was never killed",
            peer.name
        );
        // No pacing: whenever the window has room, there is something to send.
        while peer.room.outbox().count() < 2 * MAX_IN_FLIGHT {
            peer.queue_message();
        }
        let before = peer.acked.len();
        if peer.flush(&mut socket).await.is_err() {
            break;
        }
        match peer.read_one(&mut socket, Duration::from_millis(100)).await {
            Ok(Some(true)) | Ok(None) => {}
            // Closed, or reset mid-frame: the runtime is gone. (A broken promise is kept in
            // `faults` and reported after the restart.)
            Ok(Some(false)) | Err(_) => break,
        }
        watch
            .acks
            .fetch_add(peer.acked.len() - before, Ordering::SeqCst);
        if answer_to(&peer.room, &watch.question).is_some_and(|a| {
            a.answer
                .as_ref()
                .is_some_and(|x| x.state == AnswerState::Streaming)
                && !a.text.is_empty()
        }) {
            watch.partial.store(true, Ordering::SeqCst);
            if std::mem::take(&mut asks) {
                peer.queue_text("second-question".into(), watch.second.clone());
            }
        }
        if answer_to(&peer.room, &watch.second).is_some_and(|a| {
            a.answer
                .as_ref()
                .is_some_and(|x| x.state == AnswerState::Queued)
        }) {
            watch.queued.store(true, Ordering::SeqCst);
        }
    }
    Ok(AtKill {
        in_flight: peer.in_flight(),
        answer: answer_to(&peer.room, &watch.question),
        second: answer_to(&peer.room, &watch.second),
        peer,
    })
}

fn answer_to(room: &ClientRoom, question: &str) -> Option<MessageView> {
    let prompt = room.messages().find(|m| m.text == question)?.seq;
    room.messages()
        .find(|m| m.answer.as_ref().is_some_and(|a| a.prompt == prompt))
        .cloned()
}

/// After the restart: reconnect, resend, and read until every queued send is confirmed.
async fn reconnect_and_drain(mut peer: Peer, slug: String) -> Result<(Peer, RoomSocket, bool)> {
    peer.room.disconnected();
    let mut socket = peer.connect(&slug).await.context("after the restart")?;
    peer.go_live(&mut socket)
        .await
        .context("after the restart")?;
    let drained = peer
        .drain(&mut socket, Instant::now() + Duration::from_secs(30))
        .await?;
    Ok((peer, socket, drained))
}

/// Reads until `done` holds for the client's view, within `limit`.
async fn until(
    peer: &mut Peer,
    socket: &mut RoomSocket,
    limit: Duration,
    what: &str,
    done: impl Fn(&ClientRoom) -> bool,
) -> Result {
    let deadline = Instant::now() + limit;
    while !done(&peer.room) {
        peer.flush(socket).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.read_one(socket, left).await? {
            Some(true) => {}
            Some(false) => bail!("{}: the socket closed waiting for {what}", peer.name),
            None => bail!("{}: no {what} within {limit:?}", peer.name),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_killed_mid_burst_and_mid_answer_loses_no_acknowledged_message_and_leaves_no_answer_streaming(
) -> Result {
    let started = Instant::now();
    let fake = FakeAi::start().await?;
    let mut server = DevServer::start(
        unthrottled()
            .var("AI_PROVIDER", "openai")
            .var("AI_BASE_URL", fake.base_url())
            .var("AI_MODEL", "fake-model"),
    )
    .await?;
    let (slug, mut peers) = peers_in_a_room(&server, "K").await?;

    // The answer streams its first words, then waits at a gate nobody opens: whenever the
    // kill comes, it is mid-answer.
    let marker = unique("crash");
    let gate = Gate::new();
    let written = "the answer had begun when ";
    fake.push(
        &marker,
        Script::gated(written, "it was finished", Duration::from_millis(20), &gate),
    );
    let retried = "written again after the crash";
    fake.push(&marker, Script::words(retried, Duration::from_millis(20)));
    let question = format!("@assistant tell me something {marker}");
    peers[0].queue_text("question".into(), question.clone());
    // The room writes one answer at a time: this one waits in its queue at the kill, and the
    // restarted room must take it up again by itself.
    let waiting = unique("waiting");
    let queued_answer = "the one that waited";
    fake.push(
        &waiting,
        Script::words(queued_answer, Duration::from_millis(20)),
    );
    let watch = Watch {
        question: question.clone(),
        second: format!("@assistant and then? {waiting}"),
        acks: Arc::default(),
        partial: Arc::default(),
        queued: Arc::default(),
    };
    let second = watch.second.clone();
    // Everyone live first: a client joining while the others flood the room would only
    // measure how long its hello queues behind them.
    let mut live = Vec::new();
    for mut peer in peers.drain(..) {
        let mut socket = peer.connect(&slug).await?;
        peer.go_live(&mut socket).await?;
        live.push((peer, socket));
    }
    let mut tasks = Vec::new();
    for (peer, socket) in live {
        tasks.push(tokio::spawn(send_until_cut(peer, socket, watch.clone())));
    }
    // Kill once the answer is visibly partial, the second one queued, and the burst well
    // under way.
    let deadline = Instant::now() + PHASE_LIMIT;
    let ready = || {
        watch.partial.load(Ordering::SeqCst)
            && watch.queued.load(Ordering::SeqCst)
            && watch.acks.load(Ordering::SeqCst) >= 300
    };
    while !ready() {
        ensure!(
            Instant::now() < deadline,
            "not ready to kill: partial answer {}, second queued {}, acks {}",
            watch.partial.load(Ordering::SeqCst),
            watch.queued.load(Ordering::SeqCst),
            watch.acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "killing workerd {:.1} s in, after {} acks",
        started.elapsed().as_secs_f64(),
        watch.acks.load(Ordering::SeqCst)
    );
    let killed = server.kill_runtime().await?;
    let killed_at = Instant::now();
    let mut at_kill = Vec::new();
    for task in tasks {
        at_kill.push(task.await.context("joining a sender")??);
    }
    let in_flight: usize = at_kill.iter().map(|k| k.in_flight).sum();
    let acked_before: usize = at_kill.iter().map(|k| k.peer.acked.len()).sum();
    // Provably mid-burst and mid-answer: sends were unanswered, and the asker saw part of
    // the answer, still streaming.
    ensure!(in_flight > 0, "no send was in flight at the kill");
    let seen = at_kill[0]
        .answer
        .clone()
        .context("the asker never saw the answer")?;
    ensure!(
        seen.answer.as_ref().map(|a| a.state) == Some(AnswerState::Streaming)
            && !seen.text.is_empty()
            && written.starts_with(&seen.text),
        "not mid-answer at the kill: {seen:?}"
    );
    // Someone saw the second answer waiting (the watch), and nobody saw it start.
    for k in &at_kill {
        if let Some(waited) = &k.second {
            ensure!(
                waited.answer.as_ref().map(|a| a.state) == Some(AnswerState::Queued),
                "the second answer was not waiting at the kill: {waited:?}"
            );
        }
    }

    server.restart().await?;
    let restarted_in = killed_at.elapsed();
    eprintln!("restarted in {:.1} s", restarted_in.as_secs_f64());
    let mut tasks = Vec::new();
    for k in at_kill {
        tasks.push(tokio::spawn(reconnect_and_drain(k.peer, slug.clone())));
    }
    let mut peers = Vec::new();
    let mut sockets = Vec::new();
    let mut undrained = Vec::new();
    for task in tasks {
        let (peer, socket, drained) = task.await.context("joining a reconnect")??;
        if !drained {
            undrained.push(peer.name.clone());
        }
        peers.push(peer);
        sockets.push(socket);
    }
    let stored = stored_messages(&peers[0].session, &slug).await?;
    if !undrained.is_empty() {
        // Say what is missing: an acked message the room no longer has never settles.
        let result = check_delivery(&peers, &stored, 0);
        bail!(
            "{undrained:?} never had every send confirmed: {result:?}",
            result = result.err()
        );
    }

    // The answer ends (the room fails it on its restart) within a bounded time, never stuck
    // streaming, on every client.
    for (peer, socket) in peers.iter_mut().zip(&mut sockets) {
        let q = question.clone();
        until(
            peer,
            socket,
            Duration::from_secs(30),
            "end of the answer",
            move |r| {
                answer_to(r, &q)
                    .and_then(|a| a.answer)
                    .is_some_and(|a| matches!(a.state, AnswerState::Done | AnswerState::Failed))
            },
        )
        .await?;
    }
    // The answer that waited is taken up again by the restarted room, by itself, and written.
    for (peer, socket) in peers.iter_mut().zip(&mut sockets) {
        let q = second.clone();
        until(
            peer,
            socket,
            Duration::from_secs(30),
            "the answer that waited",
            move |r| {
                answer_to(r, &q).is_some_and(|m| {
                    m.text == queued_answer
                        && m.answer
                            .as_ref()
                            .is_some_and(|a| a.state == AnswerState::Done)
                })
            },
        )
        .await?;
    }
    let ended = answer_to(&peers[0].room, &question).context("answer")?;
    let state = ended.answer.as_ref().map(|a| a.state);
    if state == Some(AnswerState::Failed) {
        // Failed with what it had written, and Retry (regenerate) writes it anew.
        let error = ended
            .answer
            .as_ref()
            .and_then(|a| a.error.clone())
            .context("error")?;
        ensure!(error.code == ErrorCode::Internal, "{error:?}");
        ensure!(written.starts_with(&ended.text), "{:?}", ended.text);
        peers[0].room.queue(
            "retry".into(),
            PendingOp::Regenerate { target: ended.seq },
            now_ms(),
        );
        for (peer, socket) in peers.iter_mut().zip(&mut sockets) {
            let q = question.clone();
            until(
                peer,
                socket,
                Duration::from_secs(30),
                "the retried answer",
                move |r| {
                    answer_to(r, &q).is_some_and(|m| {
                        m.text == retried
                            && m.answer
                                .as_ref()
                                .is_some_and(|a| a.state == AnswerState::Done)
                    })
                },
            )
            .await?;
        }
    } else {
        ensure!(
            ended.text == format!("{written}it was finished"),
            "{ended:?}"
        );
    }

    // Quiet now: everyone holds the same head, and the checks.
    let head = peers
        .iter()
        .filter_map(|p| p.room.head())
        .max()
        .unwrap_or(0);
    for (peer, socket) in peers.iter_mut().zip(&mut sockets) {
        peer.catch_up(socket, head).await?;
    }
    let stored = stored_messages(&peers[0].session, &slug).await?;
    let stats = check_delivery(&peers, &stored, head)?;
    for socket in sockets {
        socket.close().await;
    }
    println!(
        "sigkill: {killed} workerd processes killed after {acked_before} acks with {in_flight} \
         sends in flight; restarted in {:.1} s; {} messages sent ({} acks reached their \
         sender), each stored once; {} events delivered to each of {CLIENTS} clients; answer \
         {:?}; {:.1} s in all",
        restarted_in.as_secs_f64(),
        stats.confirmed,
        stats.acked,
        stats.events,
        state,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A thousand dropped sockets.

/// Where a connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    /// Right after the upgrade, before the hello.
    AfterUpgrade,
    /// After the hello, before reading anything: the room is writing the welcome and replay.
    AfterHello,
    /// After reading the welcome, with the replay unread.
    MidReplay,
    /// After applying some of a replay's batches but not its last.
    BetweenReplayBatches,
    /// Live, with the last frame written only in part.
    MidFrame,
    /// Live, after sending and reading a few frames, with acks outstanding.
    Live,
}

fn pick_cut(rng: &mut Rng) -> Cut {
    match rng.below(100) {
        0..10 => Cut::AfterUpgrade,
        10..22 => Cut::AfterHello,
        22..42 => Cut::MidReplay,
        42..57 => Cut::MidFrame,
        _ => Cut::Live,
    }
}

type Tally = Arc<Mutex<BTreeMap<Cut, usize>>>;

/// One connection, cut at `cut`.
async fn visit(peer: &mut Peer, socket: &mut RoomSocket, cut: Cut, rng: &mut Rng) -> Result<Cut> {
    match cut {
        Cut::AfterUpgrade => Ok(cut),
        Cut::AfterHello => {
            socket.send_message(&peer.room.connect()).await?;
            Ok(cut)
        }
        Cut::MidReplay | Cut::BetweenReplayBatches => {
            let held = peer.room.head();
            socket.send_message(&peer.room.connect()).await?;
            // The welcome, then the first batch (or at most a few of the replay's frames).
            let reads = match cut {
                Cut::BetweenReplayBatches => 2,
                _ => 1 + rng.below(4),
            };
            for _ in 0..reads {
                if peer.room.phase() == Phase::Live {
                    break;
                }
                if peer.read_one(socket, Duration::from_secs(10)).await? != Some(true) {
                    bail!("{}: nothing after the hello", peer.name);
                }
            }
            // Cut while the replay was still coming (after some of its batches, or before
            // any), or (a short replay) just after it.
            Ok(if peer.room.phase() == Phase::Live {
                Cut::Live
            } else if peer.room.head() != held {
                Cut::BetweenReplayBatches
            } else {
                Cut::MidReplay
            })
        }
        Cut::MidFrame => {
            peer.go_live(socket).await?;
            if peer.in_flight() >= MAX_IN_FLIGHT || peer.room.outbox().count() == 0 {
                peer.queue_message();
            }
            let mut frames = peer.room.take_frames(now_ms());
            let Some(last) = frames.pop() else {
                return Ok(Cut::Live);
            };
            for frame in &frames {
                socket.send_message(frame).await?;
            }
            let text = serde_json::to_string(&last)?;
            let cut_at = 1 + rng.below(text.len() as u64) as usize;
            socket.send_partial_frame(&text, cut_at).await?;
            Ok(cut)
        }
        Cut::Live => {
            peer.go_live(socket).await?;
            // Read until a random number of acks (up to a full window) has come, sending as
            // the window frees; cut with the rest outstanding.
            let want = peer.acked.len() + rng.below(MAX_IN_FLIGHT as u64 + 1) as usize;
            let until = Instant::now() + Duration::from_secs(1);
            while peer.acked.len() < want && Instant::now() < until {
                peer.flush(socket).await?;
                if peer.read_one(socket, Duration::from_millis(50)).await? == Some(false) {
                    bail!("{}: the room closed the socket", peer.name);
                }
            }
            peer.flush(socket).await?;
            Ok(cut)
        }
    }
}

/// Connects, gets cut, reconnects, until the test has made `DISCONNECTS` cuts; then connects
/// once more and sends everything left.
async fn churn(
    mut peer: Peer,
    slug: String,
    mut rng: Rng,
    cuts: Arc<AtomicUsize>,
    room_head: Arc<AtomicU64>,
    tally: Tally,
) -> Result<(Peer, RoomSocket)> {
    let deadline = Instant::now() + CHURN_LIMIT;
    let long_away_at = 10 + rng.below(40);
    let mut visits = 0;
    while cuts.fetch_add(1, Ordering::SeqCst) < DISCONNECTS {
        ensure!(
            Instant::now() < deadline,
            "{}: the cuts took too long",
            peer.name
        );
        for _ in 0..rng.below(6) {
            if peer.queued.len() < BUDGET {
                peer.queue_message();
            }
        }
        visits += 1;
        let mut cut = pick_cut(&mut rng);
        if visits == long_away_at {
            // Away until the others' messages have piled up into a replay of more than one
            // batch (and far fewer than the 500 a replay reaches), and cut after its first.
            let mine = peer.room.head().unwrap_or(0);
            let until = Instant::now() + LONG_AWAY_LIMIT;
            while room_head.load(Ordering::SeqCst) < mine + 150 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            cut = Cut::BetweenReplayBatches;
        } else if rng.below(25) == 0 {
            // Away for a while: a longer replay.
            tokio::time::sleep(Duration::from_millis(300 + rng.below(1_500))).await;
        }
        let mut socket = peer.connect(&slug).await?;
        let cut = visit(&mut peer, &mut socket, cut, &mut rng)
            .await
            .with_context(|| format!("{} at {cut:?}", peer.name))?;
        socket.abort();
        peer.room.disconnected();
        room_head.fetch_max(peer.room.head().unwrap_or(0), Ordering::SeqCst);
        *tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cut)
            .or_default() += 1;
    }
    while peer.queued.len() < BUDGET {
        peer.queue_message();
    }
    let mut socket = peer.connect(&slug).await?;
    peer.go_live(&mut socket).await?;
    if !peer
        .drain(&mut socket, Instant::now() + Duration::from_secs(30))
        .await?
    {
        bail!("{}: sends left unconfirmed after the cuts", peer.name);
    }
    Ok((peer, socket))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sockets_cut_at_random_points_lose_double_or_reorder_no_message() -> Result {
    let started = Instant::now();
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    println!("FAULTS_SEED={seed}");
    let server = DevServer::start(unthrottled()).await?;
    let (slug, peers) = peers_in_a_room(&server, "C").await?;
    let cuts = Arc::new(AtomicUsize::new(0));
    let room_head = Arc::new(AtomicU64::new(0));
    let tally: Tally = Arc::default();
    let mut tasks = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        tasks.push(tokio::spawn(churn(
            peer,
            slug.clone(),
            Rng(seed ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            Arc::clone(&cuts),
            Arc::clone(&room_head),
            Arc::clone(&tally),
        )));
    }
    let mut peers = Vec::new();
    let mut sockets = Vec::new();
    for task in tasks {
        let (peer, socket) = task.await.context("joining a client")??;
        peers.push(peer);
        sockets.push(socket);
    }
    let head = peers
        .iter()
        .filter_map(|p| p.room.head())
        .max()
        .unwrap_or(0);
    for (peer, socket) in peers.iter_mut().zip(&mut sockets) {
        peer.catch_up(socket, head).await?;
    }
    let stored = stored_messages(&peers[0].session, &slug).await?;
    let stats = check_delivery(&peers, &stored, head)?;
    for socket in sockets {
        socket.close().await;
    }
    let tally = tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let made: usize = tally.values().sum();
    ensure!(made == DISCONNECTS, "{made} cuts made");
    // Every kind of cut happened, or the test did not test it.
    for cut in [
        Cut::AfterUpgrade,
        Cut::AfterHello,
        Cut::MidReplay,
        Cut::MidFrame,
        Cut::Live,
    ] {
        ensure!(
            tally.get(&cut).copied().unwrap_or(0) > 0,
            "no {cut:?} cut: {tally:?}"
        );
    }
    println!(
        "disconnects: {made} cuts {tally:?}; {} messages sent, each stored once and delivered in \
         order to each of {CLIENTS} clients ({} events each); {} acks reached their sender (the \
         others were confirmed by the replay); {:.1} s",
        stats.confirmed,
        stats.events,
        stats.acked,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
