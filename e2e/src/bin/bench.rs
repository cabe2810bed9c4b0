//! Durable Chat benchmark: `cargo run --release -p e2e --bin bench [-- flags]`.
//!
//! Starts its own `wrangler dev` (temp persist directory, per-connection rate limits lifted) and
//! prints one JSON object on stdout (progress goes to stderr):
//!
//! - fan-out: clients in one room, a few of them sending as fast as their acks allow;
//!   deliveries per second and delivery latency (receive time minus the send time embedded in
//!   the text; one process, one clock);
//! - steady: delivery latency at a fixed send rate;
//! - join: socket open → first `History` frame, at several history sizes (seeded by several
//!   connections sending concurrently);
//! - RSS of the wrangler + workerd process tree, idle and after the runs;
//! - the app's initial download: gzip sizes of `dist`'s .wasm, .js and .css files.
//!
//! Everything (clients and server) shares this machine's cores, so the numbers are a floor for
//! the server, not a capacity claim.
//!
//! Flags (defaults in brackets): `--clients 50,200` `--senders 5` `--messages 100` (per sender,
//! burst) `--steady-clients 50` `--steady-rate 20` `--steady-secs 10` `--join-sizes
//! 0,10000,100000` `--joins 20` `--seeders 4` `--sessions 20`.

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use e2e::{require_build, DevOptions, DevServer, Result, RoomSocket, Session};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use shared::protocol::{ClientMessage, EventKind, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

/// Longest a single run may take before it reports what it got.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
struct Args {
    clients: Vec<usize>,
    senders: usize,
    messages: usize,
    steady_clients: usize,
    steady_rate: f64,
    steady_secs: f64,
    join_sizes: Vec<u64>,
    joins: usize,
    seeders: usize,
    sessions: usize,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut args = Args {
            clients: vec![50, 200],
            senders: 5,
            messages: 100,
            steady_clients: 50,
            steady_rate: 20.0,
            steady_secs: 10.0,
            join_sizes: vec![0, 10_000, 100_000],
            joins: 20,
            seeders: 4,
            sessions: 20,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let list = |v: &str| -> Result<Vec<u64>> {
                v.split(',')
                    .map(|n| n.trim().parse::<u64>().context("a number list"))
                    .collect()
            };
            match flag.as_str() {
                "--clients" => {
                    args.clients = list(&value)?.into_iter().map(|n| n as usize).collect()
                }
                "--senders" => args.senders = value.parse()?,
                "--messages" => args.messages = value.parse()?,
                "--steady-clients" => args.steady_clients = value.parse()?,
                "--steady-rate" => args.steady_rate = value.parse()?,
                "--steady-secs" => args.steady_secs = value.parse()?,
                "--join-sizes" => args.join_sizes = list(&value)?,
                "--joins" => args.joins = value.parse()?,
                "--seeders" => args.seeders = value.parse()?,
                "--sessions" => args.sessions = value.parse()?,
                other => {
                    bail!("unknown flag {other} (see the doc comment of e2e/src/bin/bench.rs)")
                }
            }
        }
        if args.senders == 0 || args.sessions == 0 || args.seeders == 0 {
            bail!("--senders, --sessions and --seeders must be at least 1");
        }
        Ok(args)
    }
}

/// The one clock: microseconds since the bench started.
fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn say(what: impl AsRef<str>) {
    eprintln!("[bench] {}", what.as_ref());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let args = Args::parse()?;
    now_us();
    require_build(false)?;
    let lifted = "1000000";
    let options = DevOptions::default()
        .var("SEND_BURST", lifted)
        .var("SEND_PER_SECOND", lifted)
        .var("FRAME_BURST", lifted)
        .var("FRAME_PER_SECOND", lifted);
    say("starting wrangler dev");
    let server = DevServer::start(options).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = server.rss_kib();

    let report = match run_all(&args, &server, rss_idle, lifted).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "[bench] failed; wrangler dev's last output:\n{}",
                server.log_tail()
            );
            return Err(e);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn run_all(
    args: &Args,
    server: &DevServer,
    rss_idle: u64,
    lifted: &str,
) -> Result<serde_json::Value> {
    let mut sessions = Vec::new();
    for i in 0..args.sessions {
        sessions.push(Session::create(server, &format!("Bench {i}")).await?);
    }

    let mut fanout = Vec::new();
    for &clients in &args.clients {
        say(format!(
            "fan-out: {clients} clients, {} senders x {} messages",
            args.senders, args.messages
        ));
        fanout
            .push(run_fanout(&sessions, clients, args.senders.min(clients), args.messages).await?);
    }

    say(format!(
        "steady: {} clients, {} messages/s for {} s",
        args.steady_clients, args.steady_rate, args.steady_secs
    ));
    let steady = run_steady(
        &sessions,
        args.steady_clients,
        args.steady_rate,
        args.steady_secs,
    )
    .await?;

    let mut joins = Vec::new();
    for &size in &args.join_sizes {
        say(format!("join: seeding {size} messages"));
        joins.push(run_joins(&sessions, size, args.joins, args.seeders).await?);
    }

    let rss_after = server.rss_kib();
    let download = app_download()?;

    let report = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "note": "clients and server share this machine",
        },
        "server_vars": {
            "SEND_BURST": lifted, "SEND_PER_SECOND": lifted,
            "FRAME_BURST": lifted, "FRAME_PER_SECOND": lifted,
        },
        "fanout": fanout,
        "steady": steady,
        "join": joins,
        "rss_kib": { "idle": rss_idle, "after_runs": rss_after },
        "app_download": download,
    });
    Ok(report)
}

/// One joined client split for load: its writer, and a reader task's results.
struct Client {
    /// Lent to a sender task while it runs.
    sink: Option<Sink>,
    acks: Option<mpsc::UnboundedReceiver<()>>,
    reader: tokio::task::JoinHandle<Received>,
}

#[derive(Default)]
struct Received {
    /// Latencies of bench messages, in microseconds.
    latencies_us: Vec<u64>,
    /// When the last bench message arrived.
    last_us: u64,
    errors: Vec<String>,
}

/// Joins `count` clients to a room (round-robin over the sessions), 16 at a time. Each reader
/// expects `expected` bench messages (read from `expected_total` when it is set later).
async fn join_clients(
    sessions: &[Session],
    slug: &str,
    count: usize,
    with_acks: usize,
    expected: Arc<AtomicU64>,
) -> Result<Vec<Client>> {
    let joined: Vec<Result<(usize, Ws)>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let session = sessions[i % sessions.len()].clone();
            let slug = slug.to_string();
            async move {
                let (socket, _) = session.join(&slug, None).await?;
                Ok((i, socket.into_stream()?))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut streams = Vec::new();
    for r in joined {
        streams.push(r?);
    }
    streams.sort_by_key(|(i, _)| *i);
    let mut clients = Vec::new();
    for (i, ws) in streams {
        let (sink, stream) = ws.split();
        let (tx, rx) = if i < with_acks {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let reader = tokio::spawn(read_bench(stream, tx, Arc::clone(&expected)));
        clients.push(Client {
            sink: Some(sink),
            acks: rx,
            reader,
        });
    }
    Ok(clients)
}

async fn read_bench(
    mut stream: Stream,
    acks: Option<mpsc::UnboundedSender<()>>,
    expected: Arc<AtomicU64>,
) -> Received {
    let mut got = Received::default();
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    loop {
        let want = expected.load(Ordering::Acquire);
        if want > 0 && got.latencies_us.len() as u64 >= want {
            return got;
        }
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                got.errors.push("run deadline reached".into());
                return got;
            }
            Ok(None) | Ok(Some(Err(_))) => {
                got.errors.push("socket ended".into());
                return got;
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&next) else {
            got.errors.push(format!("unparsable frame: {next}"));
            continue;
        };
        match message {
            ServerMessage::Event { event } => {
                if let EventKind::Message { text } = &event.kind {
                    if let Some(sent) = text
                        .strip_prefix("b ")
                        .and_then(|rest| rest.split(' ').nth(2))
                        .and_then(|t| t.parse::<u64>().ok())
                    {
                        let now = now_us();
                        got.latencies_us.push(now.saturating_sub(sent));
                        got.last_us = now;
                    }
                }
            }
            ServerMessage::Ack { .. } => {
                if let Some(tx) = &acks {
                    let _ = tx.send(());
                }
            }
            ServerMessage::Error { code, message, .. } => {
                got.errors.push(format!("{code}: {message}"));
            }
            _ => {}
        }
    }
}

fn bench_frame(sender: usize, n: usize) -> Result<Message> {
    let frame = ClientMessage::Send {
        client_id: format!("b-{sender}-{n}-{}", now_us()),
        text: format!("b {sender}-{n} x {}", now_us()),
    };
    Ok(Message::text(serde_json::to_string(&frame)?))
}

fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted_us.len() - 1) as f64).round() as usize;
    sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0
}

fn latency_json(mut us: Vec<u64>) -> serde_json::Value {
    us.sort_unstable();
    json!({
        "p50": round2(percentile(&us, 50.0)),
        "p99": round2(percentile(&us, 99.0)),
        "max": round2(us.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn collect(clients: Vec<Client>) -> Result<(Vec<u64>, u64, Vec<String>)> {
    let mut latencies = Vec::new();
    let mut last = 0;
    let mut errors = Vec::new();
    let mut sinks = Vec::new();
    for client in clients {
        sinks.extend(client.sink);
        let got = client.reader.await.context("reader task")?;
        latencies.extend(got.latencies_us);
        last = last.max(got.last_us);
        errors.extend(got.errors);
    }
    for mut sink in sinks {
        let _ = sink.close().await;
    }
    errors.sort();
    errors.dedup();
    Ok((latencies, last, errors))
}

async fn run_fanout(
    sessions: &[Session],
    clients: usize,
    senders: usize,
    messages: usize,
) -> Result<serde_json::Value> {
    let room = sessions[0].new_room().await?;
    let expected_each = (senders * messages) as u64;
    let expected = Arc::new(AtomicU64::new(expected_each));
    let mut all = join_clients(sessions, &room.slug, clients, senders, expected).await?;

    let start = now_us();
    let mut tasks = Vec::new();
    for (s, client) in all.iter_mut().take(senders).enumerate() {
        let mut sink = client.sink.take().context("sender without a sink")?;
        let mut acks = client.acks.take().context("sender without acks")?;
        tasks.push(tokio::spawn(async move {
            for n in 0..messages {
                sink.send(bench_frame(s, n)?).await?;
                tokio::time::timeout(Duration::from_secs(30), acks.recv())
                    .await
                    .context("no ack within 30 s")?
                    .context("reader ended")?;
            }
            Ok::<Sink, e2e::Error>(sink)
        }));
    }
    for (client, task) in all.iter_mut().zip(tasks) {
        client.sink = Some(task.await.context("sender task")??);
    }
    let (latencies, last, errors) = collect(all).await?;
    let deliveries = latencies.len() as u64;
    let seconds = (last.saturating_sub(start)) as f64 / 1e6;
    Ok(json!({
        "clients": clients,
        "senders": senders,
        "messages_per_sender": messages,
        "deliveries": deliveries,
        "expected_deliveries": expected_each * clients as u64,
        "seconds": round2(seconds),
        "deliveries_per_s": (deliveries as f64 / seconds.max(1e-9)).round(),
        "latency_ms": latency_json(latencies),
        "errors": errors,
    }))
}

async fn run_steady(
    sessions: &[Session],
    clients: usize,
    rate: f64,
    secs: f64,
) -> Result<serde_json::Value> {
    let room = sessions[0].new_room().await?;
    let total = (rate * secs).round().max(1.0) as usize;
    let expected = Arc::new(AtomicU64::new(total as u64));
    let mut all = join_clients(sessions, &room.slug, clients, 0, expected).await?;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sender = all
        .first_mut()
        .and_then(|c| c.sink.as_mut())
        .context("no clients")?;
    for n in 0..total {
        interval.tick().await;
        sender.send(bench_frame(0, n)?).await?;
    }
    let (latencies, _, errors) = collect(all).await?;
    Ok(json!({
        "clients": clients,
        "rate_per_s": rate,
        "seconds": secs,
        "messages": total,
        "deliveries": latencies.len(),
        "expected_deliveries": total * clients,
        "latency_ms": latency_json(latencies),
        "errors": errors,
    }))
}

/// Seeds `size` messages over `seeders` connections (each keeps up to 64 sends in flight),
/// then times `joins` joins.
async fn run_joins(
    sessions: &[Session],
    size: u64,
    joins: usize,
    seeders: usize,
) -> Result<serde_json::Value> {
    let room = sessions[0].new_room().await?;
    let seed_start = Instant::now();
    if size > 0 {
        // All seeders join before any sends, so no hello waits behind a flood.
        let mut sockets = Vec::new();
        for s in 0..seeders {
            let session = &sessions[s % sessions.len()];
            sockets.push(session.join(&room.slug, None).await?.0);
        }
        let mut tasks = Vec::new();
        for (s, socket) in sockets.into_iter().enumerate() {
            let share = size / seeders as u64 + u64::from((s as u64) < size % seeders as u64);
            tasks.push(tokio::spawn(seed(socket, s, share)));
        }
        for task in tasks {
            task.await.context("seeder task")??;
        }
    }
    let seed_seconds = seed_start.elapsed().as_secs_f64();

    let mut times_us = Vec::new();
    for j in 0..joins {
        let session = &sessions[j % sessions.len()];
        let start = Instant::now();
        let (socket, joined) = session.join(&room.slug, None).await?;
        times_us.push(start.elapsed().as_micros() as u64);
        if joined.head != size {
            bail!("joined a room of {size} messages at head {}", joined.head);
        }
        socket.close().await;
    }
    times_us.sort_unstable();
    Ok(json!({
        "history_messages": size,
        "joins": joins,
        "join_ms": {
            "p50": round2(percentile(&times_us, 50.0)),
            "p90": round2(percentile(&times_us, 90.0)),
            "max": round2(times_us.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)),
        },
        "measured": "connect start (TCP + upgrade + hello) to the first History frame",
        "seed_seconds": round2(seed_seconds),
        "seed_messages_per_s": if size > 0 { (size as f64 / seed_seconds).round() } else { 0.0 },
    }))
}

async fn seed(socket: RoomSocket, seeder: usize, count: u64) -> Result {
    let (mut sink, mut stream) = socket.into_stream()?.split();
    let window = Arc::new(Semaphore::new(64));
    let reader_window = Arc::clone(&window);
    let reader = tokio::spawn(async move {
        let mut acked = 0u64;
        while acked < count {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .context("no frame within 30 s while seeding")?;
            let Some(Ok(Message::Text(text))) = next else {
                match next {
                    Some(Ok(_)) => continue,
                    _ => bail!("seeding socket ended after {acked} acks"),
                }
            };
            // Events for every seeder's sends arrive too; only acks and errors matter here.
            if text.starts_with(r#"{"type":"ack""#) {
                acked += 1;
                reader_window.add_permits(1);
            } else if text.starts_with(r#"{"type":"error""#) {
                bail!("seeding refused: {text}");
            }
        }
        Ok::<(), e2e::Error>(())
    });
    for n in 0..count {
        window.acquire().await?.forget();
        let frame = ClientMessage::Send {
            client_id: format!("seed-{seeder}-{n}"),
            text: format!("Seed message {n} from seeder {seeder}: lorem ipsum dolor sit amet."),
        };
        sink.send(Message::text(serde_json::to_string(&frame)?))
            .await?;
    }
    reader.await.context("seed reader")??;
    let _ = sink.close().await;
    Ok(())
}

/// gzip sizes (level 9) of the app's .wasm, .js and .css files.
fn app_download() -> Result<serde_json::Value> {
    use flate2::{read::GzEncoder, Compression};
    let dist = e2e::repo_root().join("dist");
    let mut files = Vec::new();
    let mut total_raw = 0u64;
    let mut total_gzip = 0u64;
    let mut entries: Vec<_> = std::fs::read_dir(&dist)
        .with_context(|| format!("reading {}", dist.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("wasm" | "js" | "css")
            )
        })
        .collect();
    entries.sort();
    for path in entries {
        let raw = std::fs::read(&path)?;
        let mut gz = Vec::new();
        GzEncoder::new(raw.as_slice(), Compression::best()).read_to_end(&mut gz)?;
        total_raw += raw.len() as u64;
        total_gzip += gz.len() as u64;
        files.push(json!({
            "file": path.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            "bytes": raw.len(),
            "gzip_bytes": gz.len(),
        }));
    }
    Ok(json!({
        "gzip_level": 9,
        "files": files,
        "total_bytes": total_raw,
        "gzip_total_bytes": total_gzip,
    }))
}
