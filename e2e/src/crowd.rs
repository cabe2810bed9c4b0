//! A crowd in one room, for the bench's crowd section (`bench --only crowd`) and its tests
//! (`e2e/tests/crowd.rs`): thousands of distinct people join one room over WebSockets and stay,
//! then one message and a burst reach all of them.
//!
//! One person per socket, each a guest minted by the test-only `POST /api/test/guests`
//! (`BENCH_GUESTS=1`, localhost only): `POST /api/session` creates at most a few hundred
//! guests a minute per address, and the crowd comes from one. Each socket joins as the app
//! joins (batched frames, the hello in the socket URL) and then has a task of its own that
//! only counts frames (per [`Phase`]) and timestamps the bench's messages, so 5,000 sockets
//! cost one process on two cores little. Every time is from one clock ([`now_us`]): a bench
//! message carries its send time, a reader subtracts it from its arrival time.
//!
//! The same runs against the peer (Cloudflare's durable-chat-template, [`crate::peer`]), which
//! has no sessions (anyone connects) and no presence; its join answer is its `all` frame.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use shared::protocol::{ClientMessage, EventKind, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{DevServer, Result, Session};

/// The most guests `POST /api/test/guests` mints in one request (the Worker's
/// `test_guests::MAX_GUESTS`).
pub const MAX_GUESTS_PER_REQUEST: usize = 10_000;

/// How long one socket may take from the start of its upgrade to its join answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

/// The crowd's clock: microseconds since its first use in this process.
pub fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// One minted guest.
#[derive(Debug, Clone, Deserialize)]
pub struct Guest {
    /// Their random user id.
    pub user_id: String,
    /// `<prefix>-00042`.
    pub name: String,
    /// The `Cookie` header value that is this guest (`dc_session=…`).
    pub cookie: String,
}

#[derive(Deserialize)]
struct Minted {
    guests: Vec<Guest>,
}

/// `POST /api/test/guests {count, prefix}` as it is answered (for tests of its refusals);
/// `host` overrides the `Host` header (a request not addressed to localhost).
pub async fn mint_request(
    server: &DevServer,
    count: usize,
    prefix: &str,
    host: Option<&str>,
) -> Result<reqwest::Response> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(0)
        .build()?;
    let mut request = http
        .post(format!("{}/api/test/guests", server.url()))
        .json(&serde_json::json!({ "count": count, "prefix": prefix }));
    if let Some(host) = host {
        request = request.header("Host", host);
    }
    request.send().await.context("POST /api/test/guests")
}

/// `count` distinct guests named `<prefix>-00000`, … (more than [`MAX_GUESTS_PER_REQUEST`]
/// in several requests, `<prefix>1-…` for the second). The server needs `BENCH_GUESTS=1`.
pub async fn mint_guests(server: &DevServer, count: usize, prefix: &str) -> Result<Vec<Guest>> {
    let mut guests = Vec::with_capacity(count);
    let mut chunk = 0;
    while guests.len() < count {
        let n = (count - guests.len()).min(MAX_GUESTS_PER_REQUEST);
        let prefix = if chunk == 0 {
            prefix.to_owned()
        } else {
            format!("{prefix}{chunk}")
        };
        let response = mint_request(server, n, &prefix, None).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            bail!("POST /api/test/guests answered {status} (is BENCH_GUESTS=1 set?): {text}");
        }
        let minted: Minted = response.json().await.context("the minted guests")?;
        if minted.guests.len() != n {
            bail!("asked for {n} guests, got {}", minted.guests.len());
        }
        guests.extend(minted.guests);
        chunk += 1;
    }
    Ok(guests)
}

/// A session of a minted guest (`GET /api/session` must accept its cookie).
pub async fn session_of(server: &DevServer, guest: &Guest) -> Result<Session> {
    Session::from_cookie(server, &guest.cookie).await
}

/// Where the crowd connects.
#[derive(Clone)]
pub enum Target {
    /// A room of this server: socket `i` is guest `i`, joining as the app joins.
    Ours {
        /// The room's socket URL with its query (batched frames, the hello).
        url: String,
        /// The server's origin (upgrades must carry it).
        origin: String,
        /// One per socket.
        guests: Arc<Vec<Guest>>,
    },
    /// A room of the peer; its sockets carry nothing.
    Peer {
        /// The room's socket URL.
        url: String,
    },
}

impl Target {
    /// Room `slug` of `server`, joined by `guests` through the server's port.
    pub fn ours(server: &DevServer, slug: &str, guests: Vec<Guest>) -> Target {
        Target::ours_at(&server.url(), slug, guests)
    }

    /// Room `slug` of the Worker at `base` (`http://127.0.0.1:<port>`; see [`runtime_entry`]),
    /// joined by `guests`.
    pub fn ours_at(base: &str, slug: &str, guests: Vec<Guest>) -> Target {
        let hello = Session::hello_frame(None);
        let ws_base = base.replacen("http://", "ws://", 1);
        Target::Ours {
            url: format!(
                "{ws_base}/api/rooms/{slug}/ws?{}&{}",
                shared::protocol::BATCH_QUERY,
                shared::protocol::first_frame_query(&hello)
            ),
            origin: base.to_owned(),
            guests: Arc::new(guests),
        }
    }

    fn is_peer(&self) -> bool {
        matches!(self, Target::Peer { .. })
    }

    /// The most sockets this target can open.
    pub fn capacity(&self) -> usize {
        match self {
            Target::Ours { guests, .. } => guests.len(),
            Target::Peer { .. } => usize::MAX,
        }
    }

    fn request(
        &self,
        i: usize,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        match self {
            Target::Ours {
                url,
                origin,
                guests,
            } => {
                let guest = guests
                    .get(i)
                    .ok_or_else(|| anyhow!("no guest for socket {i}"))?;
                let mut request = url.as_str().into_client_request()?;
                let headers = request.headers_mut();
                headers.insert("Origin", HeaderValue::from_str(origin)?);
                headers.insert("Cookie", HeaderValue::from_str(&guest.cookie)?);
                Ok(request)
            }
            Target::Peer { url } => Ok(url.as_str().into_client_request()?),
        }
    }
}

/// What the crowd is doing, for attributing each frame a socket receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Sockets are joining (from each socket's own join answer until the last socket's).
    Joining = 0,
    /// Everyone joined; nobody speaks.
    Idle = 1,
    /// One message from one member.
    One = 2,
    /// A burst from several members.
    Burst = 3,
}

const PHASES: usize = 4;

/// What one socket saw.
#[derive(Debug, Clone, Default)]
pub struct SocketStats {
    /// Upgrade start → its join answer (ours: the frame with the welcome; the peer: `all`).
    pub join_us: u64,
    /// When its join answer arrived ([`now_us`]).
    pub joined_at_us: u64,
    /// WebSocket frames received after the one that carried its join answer, per [`Phase`].
    pub frames: [u32; PHASES],
    /// Messages received after its welcome while others joined, by `type` (those in the
    /// welcome's own frame, its page and count, too).
    pub during_joins: Vec<(String, u32)>,
    /// Delivery latency of each bench message, per [`Phase`], in microseconds.
    pub latencies_us: [Vec<u32>; PHASES],
    /// Why the socket ended, if it did.
    pub ended: Option<String>,
    /// Errors the server sent it.
    pub errors: Vec<String>,
}

impl SocketStats {
    fn saw(&mut self, kind: &str) {
        match self.during_joins.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => self.during_joins.push((kind.to_owned(), 1)),
        }
    }
}

struct Member {
    /// Lent to a sender task while it sends.
    sink: Option<Sink>,
    stats: Arc<Mutex<SocketStats>>,
    reader: tokio::task::JoinHandle<()>,
}

/// Sockets joined to one room, each read by its own task.
pub struct Crowd {
    peer: bool,
    members: Vec<Member>,
    phase: Arc<AtomicU8>,
    delivered: Arc<AtomicU64>,
    /// Why the sockets that did not join failed (one line each).
    pub failures: Vec<String>,
    /// From the first upgrade to the last join answer.
    pub join_seconds: f64,
    /// When the last socket had joined ([`now_us`]).
    pub joins_ended_us: u64,
}

/// A small per-socket buffer: the frames here are small, and tungstenite's default read
/// buffer (128 KiB, eagerly allocated) would be 640 MB for 5,000 sockets.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

fn type_of(message: &ServerMessage) -> String {
    serde_json::to_value(message.server_type())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The send time a bench message text carries (`b <id> x <now_us>`).
fn sent_at(text: &str) -> Option<u64> {
    text.strip_prefix("b ")?.split(' ').nth(2)?.parse().ok()
}

impl Crowd {
    /// Opens `count` sockets to `target`, `concurrency` upgrades in flight at a time, and keeps
    /// them; a socket that does not join is counted in [`Crowd::failures`], not fatal.
    pub async fn join(target: &Target, count: usize, concurrency: usize) -> Result<Crowd> {
        Crowd::join_from(target, 0, count, concurrency).await
    }

    /// [`Crowd::join`] with the guests from `first` on (others than a crowd already joined).
    pub async fn join_from(
        target: &Target,
        first: usize,
        count: usize,
        concurrency: usize,
    ) -> Result<Crowd> {
        if first + count > target.capacity() {
            bail!(
                "{count} sockets from guest {first} but {} guests",
                target.capacity()
            );
        }
        let phase = Arc::new(AtomicU8::new(Phase::Joining as u8));
        let delivered = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let joined: Vec<(usize, Result<Member>)> = futures_util::stream::iter(first..first + count)
            .map(|i| {
                let (phase, delivered) = (Arc::clone(&phase), Arc::clone(&delivered));
                async move { (i, join_one(target, i, phase, delivered).await) }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let join_seconds = start.elapsed().as_secs_f64();
        let joins_ended_us = now_us();
        let mut joined_in_order: Vec<(usize, Member)> = Vec::with_capacity(count);
        let mut failures = Vec::new();
        for (i, result) in joined {
            match result {
                Ok(member) => joined_in_order.push((i, member)),
                Err(e) => failures.push(format!("socket {i}: {e:#}")),
            }
        }
        joined_in_order.sort_by_key(|(i, _)| *i);
        Ok(Crowd {
            peer: target.is_peer(),
            members: joined_in_order.into_iter().map(|(_, m)| m).collect(),
            phase,
            delivered,
            failures,
            join_seconds,
            joins_ended_us,
        })
    }

    /// Sockets joined.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no socket joined.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// From now on frames count toward `phase`.
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// A copy of what every socket saw so far, in join order.
    pub fn stats(&self) -> Vec<SocketStats> {
        self.members
            .iter()
            .map(|m| m.stats.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// `per_sender` messages from each of the sockets `senders` (sent back to back, never
    /// waiting for an ack), in [`Phase::One`] or [`Phase::Burst`]; waits until every socket
    /// still open got every one of them, or `deadline` passed.
    pub async fn fan_out(
        &mut self,
        phase: Phase,
        senders: &[usize],
        per_sender: usize,
        deadline: Duration,
    ) -> Result<FanOut> {
        self.enter(phase);
        self.delivered.store(0, Ordering::Release);
        let open = self.stats().iter().filter(|s| s.ended.is_none()).count();
        let each = (senders.len() * per_sender) as u64;
        let expected = each * open as u64;
        let start = now_us();
        let mut tasks = Vec::new();
        for (k, &s) in senders.iter().enumerate() {
            let mut sink = self
                .members
                .get_mut(s)
                .and_then(|m| m.sink.take())
                .ok_or_else(|| anyhow!("no socket {s} to send from"))?;
            let peer = self.peer;
            tasks.push(tokio::spawn(async move {
                for n in 0..per_sender {
                    sink.feed(bench_frame(peer, phase, k, n)?).await?;
                }
                sink.flush().await?;
                Ok::<Sink, crate::Error>(sink)
            }));
        }
        for (task, &s) in tasks.into_iter().zip(senders) {
            self.members[s].sink = Some(task.await.context("sender task")??);
        }
        let sent = now_us();
        let until = Instant::now() + deadline;
        while self.delivered.load(Ordering::Acquire) < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done = now_us();
        let p = phase as usize;
        let mut latencies_us = Vec::with_capacity(expected as usize);
        let (mut complete, mut errors) = (0, Vec::new());
        for stats in self.stats() {
            let got = &stats.latencies_us[p];
            complete += usize::from(got.len() as u64 >= each);
            latencies_us.extend(got.iter().map(|&us| u64::from(us)));
            errors.extend(stats.errors.iter().cloned());
            if let Some(ended) = &stats.ended {
                errors.push(format!("a socket ended: {ended}"));
            }
        }
        errors.sort();
        errors.dedup();
        Ok(FanOut {
            deliveries: latencies_us.len() as u64,
            latencies_us,
            expected,
            sockets: open,
            complete_sockets: complete,
            send_seconds: (sent - start) as f64 / 1e6,
            seconds: (done - start) as f64 / 1e6,
            timed_out: self.delivered.load(Ordering::Acquire) < expected,
            errors,
        })
    }

    /// Closes every socket (the server sees them all go at once).
    pub async fn close(self) {
        for member in self.members {
            member.reader.abort();
            if let Some(mut sink) = member.sink {
                let _ = tokio::time::timeout(Duration::from_millis(50), sink.close()).await;
            }
        }
    }
}

/// What one fan-out measured.
#[derive(Debug, Clone)]
pub struct FanOut {
    /// Per message per socket: arrival minus send time, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Messages received in all (the senders' own echoes too).
    pub deliveries: u64,
    /// Messages × open sockets.
    pub expected: u64,
    /// Sockets open when it began.
    pub sockets: usize,
    /// Sockets that got every message.
    pub complete_sockets: usize,
    /// From the first send to the last one written.
    pub send_seconds: f64,
    /// From the first send until every socket had every message (or the deadline).
    pub seconds: f64,
    /// Whether the deadline passed first.
    pub timed_out: bool,
    /// Errors the server sent, and sockets that ended.
    pub errors: Vec<String>,
}

fn bench_frame(peer: bool, phase: Phase, sender: usize, n: usize) -> Result<Message> {
    let id = format!("{}-{sender}-{n}", phase as u8);
    let text = format!("b {id} x {}", now_us());
    let frame = if peer {
        serde_json::json!({
            "type": "add", "id": format!("crowd-{id}-{}", now_us()), "user": format!("Crowd {sender}"),
            "role": "user", "content": text,
        })
        .to_string()
    } else {
        serde_json::to_string(&ClientMessage::Send {
            client_id: format!("crowd-{id}-{}", now_us()),
            text,
            attachments: Vec::new(),
        })?
    };
    Ok(Message::text(frame))
}

/// Upgrade, then read up to the join answer; then a reader task of its own.
async fn join_one(
    target: &Target,
    i: usize,
    phase: Arc<AtomicU8>,
    delivered: Arc<AtomicU64>,
) -> Result<Member> {
    let request = target.request(i)?;
    let peer = target.is_peer();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let connect =
        tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true);
    let (ws, _) = match tokio::time::timeout_at(deadline, connect).await {
        Err(_) => bail!("no upgrade within {JOIN_TIMEOUT:?}"),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            bail!("upgrade refused: {} {body}", response.status())
        }
        Ok(Err(e)) => return Err(anyhow!(e).context("upgrade")),
        Ok(Ok(done)) => done,
    };
    let (sink, mut stream) = ws.split();
    let mut stats = SocketStats::default();
    loop {
        let text = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => bail!("no join answer within {JOIN_TIMEOUT:?}"),
            Ok(None) => bail!("the socket ended before its join answer"),
            Ok(Some(Err(e))) => return Err(anyhow!(e).context("before the join answer")),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(frame)))) => {
                bail!("closed before its join answer: {frame:?}")
            }
            Ok(Some(Ok(_))) => continue,
        };
        if peer {
            // Its first frame is `all`: the room's messages.
            break;
        }
        let messages = shared::protocol::decode_frames(&text)
            .with_context(|| format!("not a server frame: {text}"))?;
        if let Some(at) = messages
            .iter()
            .position(|m| matches!(m, ServerMessage::Welcome { .. }))
        {
            for message in &messages[at + 1..] {
                stats.saw(&type_of(message));
            }
            break;
        }
        if let Some(ServerMessage::Error { code, message, .. }) = messages
            .iter()
            .find(|m| matches!(m, ServerMessage::Error { .. }))
        {
            bail!("refused: {code}: {message}");
        }
    }
    stats.join_us = started.elapsed().as_micros() as u64;
    stats.joined_at_us = now_us();
    let stats = Arc::new(Mutex::new(stats));
    let reader = tokio::spawn(read(stream, peer, Arc::clone(&stats), phase, delivered));
    Ok(Member {
        sink: Some(sink),
        stats,
        reader,
    })
}

/// Counts frames and timestamps bench messages until the socket ends.
async fn read(
    mut stream: Stream,
    peer: bool,
    stats: Arc<Mutex<SocketStats>>,
    phase: Arc<AtomicU8>,
    delivered: Arc<AtomicU64>,
) {
    let ended = loop {
        let text = match stream.next().await {
            None => break "the connection ended".to_owned(),
            Some(Err(e)) => break e.to_string(),
            Some(Ok(Message::Close(frame))) => break format!("closed: {frame:?}"),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let now = now_us();
        let p = usize::from(phase.load(Ordering::Acquire)).min(PHASES - 1);
        let mut sent = Vec::new();
        let mut kinds = Vec::new();
        let mut errors = Vec::new();
        if peer {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => {
                    if v["type"] == "add" {
                        sent.extend(v["content"].as_str().and_then(sent_at));
                    }
                    if p == Phase::Joining as usize {
                        kinds.push(v["type"].as_str().unwrap_or("unknown").to_owned());
                    }
                }
                Err(_) => errors.push(format!("unparsable frame: {text}")),
            }
        } else {
            match shared::protocol::decode_frames(&text) {
                Ok(messages) => {
                    for message in messages {
                        if p == Phase::Joining as usize {
                            kinds.push(type_of(&message));
                        }
                        match message {
                            ServerMessage::Event { event } => {
                                if let EventKind::Message { text, .. } = &event.kind {
                                    sent.extend(sent_at(text));
                                }
                            }
                            ServerMessage::Error { code, message, .. } => {
                                errors.push(format!("{code}: {message}"));
                            }
                            _ => {}
                        }
                    }
                }
                Err(_) => errors.push(format!("unparsable frame: {text}")),
            }
        }
        let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.frames[p] += 1;
        for kind in &kinds {
            stats.saw(kind);
        }
        for at in &sent {
            stats.latencies_us[p].push(now.saturating_sub(*at).min(u64::from(u32::MAX)) as u32);
        }
        stats.errors.extend(errors);
        drop(stats);
        if !sent.is_empty() {
            delivered.fetch_add(sent.len() as u64, Ordering::AcqRel);
        }
    };
    stats.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(ended);
}

/// The runtime of a `wrangler dev`: the workerd process that runs the Worker and its Durable
/// Objects, and its own entry socket.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `http://127.0.0.1:<port>`: the runtime's entry socket.
    pub base: String,
    /// The workerd process that listens there.
    pub pid: u32,
}

/// The runtime of the `wrangler dev` in process group `pgid`: of its workerd processes'
/// listening ports (other than `public_port`, wrangler's proxy), the one that answers
/// `GET <probe>` with 200.
///
/// `wrangler dev` puts a proxy in front of the runtime (a second workerd) that holds about
/// eight files per proxied WebSocket (two sockets and a few pipes each way), so under a hard
/// limit of 20,000 open files it stops accepting at ~3,000 sockets ("Too many open files");
/// a crowd larger than that connects to the runtime directly. The runtime answers there as on
/// the public port (same Worker, same localhost host name).
pub async fn runtime(pgid: u32, public_port: u16, probe: &str) -> Result<Runtime> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()?;
    let mut tried = Vec::new();
    for (port, pid) in listening_ports(pgid, "workerd") {
        if port == public_port {
            continue;
        }
        let base = format!("http://127.0.0.1:{port}");
        if let Ok(response) = http.get(format!("{base}{probe}")).send().await {
            if response.status().as_u16() == 200 {
                return Ok(Runtime { base, pid });
            }
        }
        tried.push(port);
    }
    bail!("no workerd port of group {pgid} answered GET {probe} with 200 (tried {tried:?})")
}

/// The loopback TCP ports the processes called `name` in group `pgid` listen on, each with
/// the process.
fn listening_ports(pgid: u32, name: &str) -> Vec<(u16, u32)> {
    let mut inodes = std::collections::HashMap::new();
    for pid in crate::server::live_group_members(pgid) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned(), pid);
                }
            }
        }
    }
    // /proc/net/tcp: `sl local_address rem_address st ... inode`, addresses as hex
    // `0100007F:1F90`; state 0A is LISTEN.
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut ports: Vec<(u16, u32)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" {
                return None;
            }
            let pid = *inodes.get(*inode)?;
            let (_, port) = local.split_once(':')?;
            Some((u16::from_str_radix(port, 16).ok()?, pid))
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Turns off the network inspection `wrangler dev` keeps on in its runtime, through its
/// inspector (`inspector_port`), as a DevTools client would (`Network.disable`).
///
/// wrangler's inspector proxy enables it so DevTools can show the Worker's subrequests, and
/// then, with no DevTools attached, sends each event to wrangler's node process as an HTTP
/// request of its own and keeps every event in memory. A first join here makes a handful of
/// subrequests (its D1 queries, the room), about twenty events: thousands of joins a minute
/// pile up more requests than node answers, until its open files run out (`Too many open
/// files` at ~3,000 joins). The setting holds until the runtime's inspector reconnects.
pub async fn quiet_dev_inspector(inspector_port: u16) -> Result {
    let mut inspector = crate::profiler::Profiler::attach(inspector_port).await?;
    // What the proxy buffered while nobody listened arrives first.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        inspector.call("Network.disable", serde_json::json!({})),
    )
    .await
    .map_err(|_| anyhow!("the inspector did not answer Network.disable"))?;
    inspector.close().await;
    answer.map(|_| ())
}

/// One process of a server at one moment.
#[derive(Debug, Clone)]
pub struct ProcessUsage {
    /// Its pid.
    pub pid: u32,
    /// Its name (`/proc/<pid>/comm`: `workerd`, `node`, `esbuild`).
    pub name: String,
    /// CPU time (user + system) used so far, in ms.
    pub cpu_ms: f64,
    /// Resident memory, in KiB.
    pub rss_kib: u64,
}

/// CPU and memory of a server's processes (its process group) at one moment.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// One per live process.
    pub processes: Vec<ProcessUsage>,
}

impl Usage {
    /// The live processes of group `pgid` now.
    pub fn of_group(pgid: u32) -> Usage {
        let ticks = crate::server::clock_ticks_per_second();
        let processes = crate::server::live_group_members(pgid)
            .into_iter()
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let rest = stat.rsplit_once(')')?.1;
                // After the name: state ppid pgrp session tty tpgid flags minflt cminflt
                // majflt cmajflt utime stime.
                let mut fields = rest.split_whitespace().skip(11);
                let utime: u64 = fields.next()?.parse().ok()?;
                let stime: u64 = fields.next()?.parse().ok()?;
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|n| n.trim().to_owned())
                    .unwrap_or_default();
                let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    })
                    .unwrap_or(0);
                Some(ProcessUsage {
                    pid,
                    name,
                    cpu_ms: (utime + stime) as f64 * 1000.0 / ticks,
                    rss_kib,
                })
            })
            .collect();
        Usage { processes }
    }

    fn of(&self, pid: Option<u32>) -> impl Iterator<Item = &ProcessUsage> {
        self.processes
            .iter()
            .filter(move |p| pid.is_none_or(|pid| p.pid == pid))
    }

    /// Resident memory of process `pid` (all with `None`), in KiB.
    pub fn rss_kib(&self, pid: Option<u32>) -> u64 {
        self.of(pid).map(|p| p.rss_kib).sum()
    }

    /// CPU time process `pid` (all with `None`) used since `before`, in ms (a process that
    /// exited in between takes its time with it).
    pub fn cpu_ms_since(&self, before: &Usage, pid: Option<u32>) -> f64 {
        self.of(pid)
            .map(|p| {
                let earlier = before
                    .processes
                    .iter()
                    .find(|b| b.pid == p.pid)
                    .map_or(0.0, |b| b.cpu_ms);
                p.cpu_ms - earlier
            })
            .sum()
    }
}

/// CPU time this process (the clients) has used so far, in ms.
pub fn own_cpu_ms() -> f64 {
    let ticks = crate::server::clock_ticks_per_second();
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some((utime + stime) as f64 * 1000.0 / ticks)
        })
        .unwrap_or(0.0)
}

/// Open files this process may hold: `(soft, hard)` from `/proc/self/limits`.
pub fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..]
        .split_whitespace()
        .map(|n| n.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// Raises this process's soft limit of open files to at least `need` (up to the hard limit)
/// with prlimit(1) (the workspace forbids `unsafe`, so no setrlimit): each socket is a file
/// here, and the servers this process starts inherit the limit. Returns the limit now.
pub fn raise_open_files(need: u64) -> Result<u64> {
    let (soft, hard) = open_files_limit().context("reading /proc/self/limits")?;
    if soft >= need {
        return Ok(soft);
    }
    let want = need.min(hard);
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={want}:{hard}"))
        .status()
        .context("running prlimit")?;
    if !status.success() {
        bail!("prlimit --nofile={want}:{hard} failed ({status})");
    }
    let (now, _) = open_files_limit().context("reading /proc/self/limits")?;
    Ok(now)
}
