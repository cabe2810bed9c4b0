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
//! - the app's initial download: gzip sizes of `dist`'s .wasm, .js and .css files;
//! - browser: the built app in headless Chromium (Debian's chromium and chromedriver, as in
//!   `e2e/tests/browser.rs`) with a large room: the time to load its whole history by scrolling
//!   up, then delivery latency into the DOM and long tasks while that history is loaded, against
//!   a small room as the baseline. Needs `dist/` (`./scripts/build`) and the Debian browser
//!   (`./scripts/setup --browser`); nothing is downloaded. About a minute and a half.
//!
//! Everything (clients and server) shares this machine's cores, so the numbers are a floor for
//! the server, not a capacity claim.
//!
//! Flags (defaults in brackets): `--clients 50,200` `--senders 5` `--messages 100` (per sender,
//! burst) `--steady-clients 50` `--steady-rate 20` `--steady-secs 10` `--join-sizes
//! 0,10000,100000` `--joins 20` `--seeders 4` `--sessions 20` `--browser-messages 10000`
//! `--browser-baseline 50` `--browser-probes 30`.
//!
//! - search: in-room full-text search (FTS5, bm25, snippets) over HTTP at 100,000 and
//!   1,000,000 messages (bulk-seeded through the `BENCH_SEED` route, which only this bench's
//!   server enables), for a rare word (~0.3% of messages), two rare words, a rare word with a
//!   filter, and a word in every message (the worst case); and the send path's cost of keeping
//!   the index: ack latency and throughput with the index against a server whose rooms drop
//!   its triggers (`BENCH_NO_FTS`). `--search-sizes 100000,1000000` `--search-queries 200`
//!   `--send-path-messages 2000`.
//!
//! - watch: the steady load without and with 200 watching sockets (live unread counts): the
//!   joined clients' delivery latency both ways, and send → watcher notice latency.
//!
//! - burst: senders that never wait for acks, against this server without and with coalescing
//!   (the clients ask for batched frames, `?batch=1`, or not) and against the peer,
//!   Cloudflare's durable-chat-template (set up by `scripts/peer`; pass `--peer-dir` and
//!   `--peer-node`, or `PEER_DIR` and `PEER_NODE`, as that script prints them), side by side in
//!   one run: deliveries counted at the receivers, delivery latency, and each server's CPU time
//!   (its whole process tree, `/proc/<pid>/stat`) per 1,000 deliveries. `--bursts 50x200,200x100`
//!   (clients x messages in the burst) `--burst-senders 5`. `--cpu-profile DIR` also writes a
//!   V8 CPU profile of the server's isolate during each coalesced burst of ours
//!   (`DIR/burst-CxM.cpuprofile`, for Chrome DevTools) and of the join-cost samples
//!   (`DIR/joins-N.cpuprofile`), and prints their top functions.
//! - joincost: open → first room frame for the peer's empty room and ours at `--joincost-sizes
//!   0,10000,100000` messages (bulk-seeded), `--join-samples 50` each, split into first joins
//!   (verified in full) and reconnects (the room reused a verification of the same cookies);
//!   the hello in the socket URL as the app sends it, or with `--hello-frame` as a frame after
//!   the upgrade (for a server that predates the URL hello). `E2E_REPO_ROOT` runs the same
//!   generator against another checkout's build (side by side with a previous commit).
//!
//! - crowd (only with `--only crowd`: it starts servers of its own and takes minutes): for each
//!   size in `--crowd 250,1000,5000`, a fresh server with that many distinct people in one room
//!   (guests minted through the test-only `POST /api/test/guests`, `BENCH_GUESTS=1`, since
//!   `POST /api/session` creates a few hundred a minute per address), one socket each, joined
//!   as the app joins, `--crowd-concurrency 32` upgrades in flight: join time per socket, the
//!   frames each socket received while the others joined, then after 2 s idle one message from
//!   one member and a burst (`--crowd-burst 50` messages from `--crowd-senders 10` members)
//!   to everyone: delivery latency over every socket and whether each got every message;
//!   then 20 more people join the full room one at a time, and finally every socket closes and
//!   all rejoin within the minute (a deploy, a blip). Server CPU and RSS per phase (the whole
//!   process group, and the runtime's workerd alone), bytes per idle socket. The same against
//!   the peer when given. The sockets connect to the runtime's own entry socket, past wrangler's
//!   dev proxy, which runs out of open files at ~3,000 sockets (`--crowd-via-proxy` goes
//!   through it), and ours runs with the dev inspector's network events off (see
//!   `e2e::crowd::quiet_dev_inspector`). The bench raises its own open-files limit (prlimit(1),
//!   up to the hard limit) before the servers start, so they inherit it too. `--cpu-profile DIR`
//!   profiles ours during the joins, the one message and the burst
//!   (`DIR/crowd-joins-N.cpuprofile`, `crowd-one-N`, `crowd-burst-N`). Code: `e2e/src/crowd.rs`.
//!
//! - upload (only with `--only upload`: a server of its own, and the local model server when it
//!   is built): files through the Worker into the local R2 — a 20 MB upload's throughput
//!   (unknown bytes, and a JPEG that the metadata scrubber walks), the download back, the
//!   runtime's memory during the upload (workerd's RSS sampled every 20 ms, and the isolate's
//!   JS heap through the inspector), upload done → another member has the thumbnail, and the
//!   classification latency per image (`--upload-mb 20` `--upload-runs 3`). Code at the end of
//!   this file.
//!
//! - cache: the edge cache's hit rate as readers use it — 20 readers each read 10 profile cards
//!   20 times, and the room list 20 times, on the shared server; a hit is `X-Cache: hit`. One
//!   card is changed (purged) halfway, so the rate includes the misses a change costs.
//!
//! - ops (issue 12; only with `--only ops`: two servers of its own and headless Chromium, about
//!   two minutes): what analytics cost the send path — the fan-out workload (`--ops-clients 50`
//!   in one room, `--ops-senders 5` of them sending `--ops-messages 500` each, acked) on a
//!   server whose rooms meter and report, and on one whose rooms do neither
//!   (`BENCH_NO_METRICS=1`, localhost only), `--ops-runs 6` each, alternated: deliveries/s,
//!   p99 and the server's CPU time per 1,000 deliveries both ways, and their change in % (of
//!   the means, and the median over back-to-back pairs); the bench fails if the second
//!   server's rooms reported anything. Then the logging path at `--ops-log-rate 100` failing
//!   requests a second for `--ops-log-secs 20` (`POST /api/test/failure/<tag>`,
//!   `LOGS_TEST_FAILURES=1`: one entry each, through the `LOGGER` binding to the logging
//!   Worker and its KV): answered/s, and the entries that landed, counted back through
//!   `/api/admin/logs`. Last, as the install's first account (`DEV_LOGIN`), `/analytics`,
//!   `/performance`, `/logs` and `/settings` loaded `--ops-page-runs 5` times each: median ms
//!   from the navigation's start to the page's content in the DOM. Needs `dist/` and the
//!   Debian browser, like browser. Code at the end of this file.
//!
//! - lighthouse (issue 13; only with `--only lighthouse`: a server of its own, Lighthouse from
//!   npm and headless Chromium, about two minutes): Lighthouse (`node_modules/.bin/lighthouse`,
//!   pinned in package.json; Debian's `/usr/bin/chromium` through `CHROME_PATH`, nothing
//!   downloaded) in its default mobile emulation and simulated throttling, `--lighthouse-runs 3`
//!   runs each of the home page as a new visitor and a room page (`--lighthouse-messages 10000`
//!   messages, bulk-seeded through `BENCH_SEED`) as a guest (its cookie through
//!   `--extra-headers`), with the service worker blocked (Lighthouse's simulated network does
//!   not see what it downloads in the background): the medians of the performance,
//!   accessibility and best-practices
//!   scores, FCP, LCP, TBT, CLS and the bytes transferred, and the ids of the failed
//!   accessibility and best-practices audits. Then the time to the first message row in that
//!   room with the CPU throttled `--lighthouse-cpu 4` times (`Emulation.setCPUThrottlingRate`),
//!   through chromedriver: a fresh profile per run signs in on the home page unthrottled, then
//!   opens the room (first open) and reloads it (reopen). `LIGHTHOUSE_KEEP=1` keeps each run's
//!   JSON report as `target/lighthouse/<home|room>-<run>.json`. Code at the end of this file.
//!
//! Sections: `--only fanout,steady,join,download,browser,assistant,search,watch,burst,joincost,crowd,upload,cache,ops,lighthouse`
//! runs just those (all but crowd, upload, ops and lighthouse by default);
//! `--no-browser` leaves the browser section out. A section that is not run has no key in the
//! report. A failed browser section is reported as `"browser": {"error": ...}` next to the
//! other results, and the bench then exits with an error.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use e2e::browser::{Browser, ChromeDriver};
use e2e::fake_ai::{unix_us, FakeAi, Script};
use e2e::peer::PeerServer;
use e2e::{require_build, DevOptions, DevServer, Result, RoomSocket, Session};
use fantoccini::Locator;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
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
    sections: Vec<Section>,
    browser_messages: u64,
    browser_baseline: u64,
    browser_probes: usize,
    search_sizes: Vec<u64>,
    search_queries: usize,
    send_path_messages: u64,
    bursts: Vec<(usize, usize)>,
    burst_senders: usize,
    join_samples: usize,
    /// The join-cost samples send their hello as a frame after the upgrade (as before the
    /// hello could ride in the socket URL): for a server that predates it.
    hello_frame: bool,
    joincost_sizes: Vec<u64>,
    peer_dir: Option<std::path::PathBuf>,
    peer_node: Option<std::path::PathBuf>,
    /// Where to write a CPU profile of the server during each coalesced burst of ours.
    cpu_profile: Option<std::path::PathBuf>,
    /// The crowd section's room sizes (people, one socket each).
    crowd: Vec<usize>,
    /// Crowd upgrades in flight at a time.
    crowd_concurrency: usize,
    /// The crowd's burst: this many messages from `crowd_senders` members.
    crowd_burst: usize,
    crowd_senders: usize,
    /// The crowd connects through wrangler's dev proxy (the public port) rather than to the
    /// runtime's own entry socket.
    crowd_via_proxy: bool,
    /// Size of the upload section's large file, in MB.
    upload_mb: u64,
    /// Times each upload measurement is repeated.
    upload_runs: usize,
    /// The ops section's fan-out, on the servers with and without metrics: clients in the
    /// room, senders among them, messages per sender, and runs on each server.
    ops_clients: usize,
    ops_senders: usize,
    ops_messages: usize,
    ops_runs: usize,
    /// The ops section's log writes offered a second, and for how long.
    ops_log_rate: f64,
    ops_log_secs: f64,
    /// Measured loads of each admin page.
    ops_page_runs: usize,
    /// Lighthouse runs per page, and timed opens of the large room.
    lighthouse_runs: usize,
    /// Messages in the room the lighthouse section audits and opens.
    lighthouse_messages: u64,
    /// The CPU slowdown for the time to the first message (DevTools' throttling rate).
    lighthouse_cpu: f64,
}

/// A part of the report that can be run alone (`--only`) or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Fanout,
    Steady,
    Join,
    Download,
    Browser,
    Assistant,
    Search,
    Watch,
    Burst,
    Joincost,
    Crowd,
    Upload,
    Cache,
    Ops,
    Lighthouse,
}

impl Section {
    const ALL: [Section; 15] = [
        Section::Fanout,
        Section::Steady,
        Section::Join,
        Section::Download,
        Section::Browser,
        Section::Assistant,
        Section::Search,
        Section::Watch,
        Section::Burst,
        Section::Joincost,
        Section::Crowd,
        Section::Upload,
        Section::Cache,
        Section::Ops,
        Section::Lighthouse,
    ];

    /// What runs without `--only`: all but the crowd, the upload, ops and lighthouse, which
    /// start servers of their own and take minutes.
    fn default_set() -> Vec<Section> {
        Section::ALL
            .into_iter()
            .filter(|s| {
                !matches!(
                    s,
                    Section::Crowd | Section::Upload | Section::Ops | Section::Lighthouse
                )
            })
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            Section::Fanout => "fanout",
            Section::Steady => "steady",
            Section::Join => "join",
            Section::Download => "download",
            Section::Browser => "browser",
            Section::Assistant => "assistant",
            Section::Search => "search",
            Section::Watch => "watch",
            Section::Burst => "burst",
            Section::Joincost => "joincost",
            Section::Crowd => "crowd",
            Section::Upload => "upload",
            Section::Cache => "cache",
            Section::Ops => "ops",
            Section::Lighthouse => "lighthouse",
        }
    }

    fn parse(name: &str) -> Result<Section> {
        Section::ALL
            .into_iter()
            .find(|s| s.name() == name.trim())
            .with_context(|| {
                let names: Vec<&str> = Section::ALL.iter().map(|s| s.name()).collect();
                format!("unknown section {name:?} (one of {})", names.join(", "))
            })
    }
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
            sections: Section::default_set(),
            browser_messages: 10_000,
            browser_baseline: 50,
            browser_probes: 30,
            search_sizes: vec![100_000, 1_000_000],
            search_queries: 200,
            send_path_messages: 2_000,
            bursts: vec![(50, 200), (200, 100)],
            burst_senders: 5,
            join_samples: 50,
            hello_frame: false,
            joincost_sizes: vec![0, 10_000, 100_000],
            peer_dir: std::env::var_os("PEER_DIR").map(Into::into),
            peer_node: std::env::var_os("PEER_NODE").map(Into::into),
            cpu_profile: None,
            crowd: vec![250, 1_000, 5_000],
            crowd_concurrency: 32,
            crowd_burst: 50,
            crowd_senders: 10,
            crowd_via_proxy: false,
            upload_mb: 20,
            upload_runs: 3,
            ops_clients: 50,
            ops_senders: 5,
            ops_messages: 500,
            ops_runs: 6,
            ops_log_rate: 100.0,
            ops_log_secs: 20.0,
            ops_page_runs: 5,
            lighthouse_runs: 3,
            lighthouse_messages: 10_000,
            lighthouse_cpu: 4.0,
        };
        let mut no_browser = false;
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--hello-frame" {
                args.hello_frame = true;
                continue;
            }
            if flag == "--no-browser" {
                no_browser = true;
                continue;
            }
            if flag == "--crowd-via-proxy" {
                args.crowd_via_proxy = true;
                continue;
            }
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
                "--only" => {
                    args.sections = value
                        .split(',')
                        .map(Section::parse)
                        .collect::<Result<_>>()?
                }
                "--browser-messages" => args.browser_messages = value.parse()?,
                "--browser-baseline" => args.browser_baseline = value.parse()?,
                "--browser-probes" => args.browser_probes = value.parse()?,
                "--search-sizes" => args.search_sizes = list(&value)?,
                "--search-queries" => args.search_queries = value.parse()?,
                "--send-path-messages" => args.send_path_messages = value.parse()?,
                "--bursts" => {
                    args.bursts = value
                        .split(',')
                        .map(|b| {
                            let (c, m) = b
                                .split_once('x')
                                .context("a burst is CLIENTSxMESSAGES, e.g. 50x200")?;
                            Ok((c.trim().parse()?, m.trim().parse()?))
                        })
                        .collect::<Result<_>>()?
                }
                "--burst-senders" => args.burst_senders = value.parse()?,
                "--join-samples" => args.join_samples = value.parse()?,
                "--joincost-sizes" => args.joincost_sizes = list(&value)?,
                "--peer-dir" => args.peer_dir = Some(value.into()),
                "--peer-node" => args.peer_node = Some(value.into()),
                "--cpu-profile" => args.cpu_profile = Some(value.into()),
                "--crowd" => args.crowd = list(&value)?.into_iter().map(|n| n as usize).collect(),
                "--crowd-concurrency" => args.crowd_concurrency = value.parse()?,
                "--crowd-burst" => args.crowd_burst = value.parse()?,
                "--crowd-senders" => args.crowd_senders = value.parse()?,
                "--upload-mb" => args.upload_mb = value.parse()?,
                "--upload-runs" => args.upload_runs = value.parse()?,
                "--ops-clients" => args.ops_clients = value.parse()?,
                "--ops-senders" => args.ops_senders = value.parse()?,
                "--ops-messages" => args.ops_messages = value.parse()?,
                "--ops-runs" => args.ops_runs = value.parse()?,
                "--ops-log-rate" => args.ops_log_rate = value.parse()?,
                "--ops-log-secs" => args.ops_log_secs = value.parse()?,
                "--ops-page-runs" => args.ops_page_runs = value.parse()?,
                "--lighthouse-runs" => args.lighthouse_runs = value.parse()?,
                "--lighthouse-messages" => args.lighthouse_messages = value.parse()?,
                "--lighthouse-cpu" => args.lighthouse_cpu = value.parse()?,
                other => {
                    bail!("unknown flag {other} (see the doc comment of e2e/src/bin/bench.rs)")
                }
            }
        }
        if no_browser {
            args.sections.retain(|s| *s != Section::Browser);
        }
        if args.crowd.contains(&0)
            || args.crowd_concurrency == 0
            || args.crowd_burst == 0
            || args.crowd_senders == 0
        {
            bail!("--crowd sizes, --crowd-concurrency, --crowd-burst and --crowd-senders must be at least 1");
        }
        if args.burst_senders == 0 || args.join_samples == 0 {
            bail!("--burst-senders and --join-samples must be at least 1");
        }
        if args.senders == 0 || args.sessions == 0 || args.seeders == 0 {
            bail!("--senders, --sessions and --seeders must be at least 1");
        }
        if args.browser_messages == 0 || args.browser_baseline == 0 || args.browser_probes == 0 {
            bail!("--browser-messages, --browser-baseline and --browser-probes must be at least 1");
        }
        if args.ops_clients == 0
            || args.ops_senders == 0
            || args.ops_messages == 0
            || args.ops_runs == 0
            || args.ops_page_runs == 0
            || args.ops_log_rate.is_nan()
            || args.ops_log_rate <= 0.0
            || args.ops_log_secs.is_nan()
            || args.ops_log_secs <= 0.0
        {
            bail!("the --ops-* values must be positive");
        }
        if args.lighthouse_runs == 0
            || args.lighthouse_messages == 0
            || args.lighthouse_cpu.is_nan()
            || args.lighthouse_cpu < 1.0
        {
            bail!("--lighthouse-runs and --lighthouse-messages must be at least 1, --lighthouse-cpu at least 1");
        }
        Ok(args)
    }

    fn runs(&self, section: Section) -> bool {
        self.sections.contains(&section)
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
    let browser = args.runs(Section::Browser);
    require_build(browser || args.runs(Section::Ops) || args.runs(Section::Lighthouse))?;
    if args.sections == [Section::Crowd] {
        // The crowd starts a server per room size: the shared one would only sit idle.
        let report = json!({
            "machine": machine(),
            "sections": ["crowd"],
            "crowd": run_crowd(&args).await?,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if args.sections == [Section::Ops] {
        let report = json!({
            "machine": machine(),
            "sections": ["ops"],
            "ops": run_ops(&args).await?,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if args.sections == [Section::Lighthouse] {
        let report = json!({
            "machine": machine(),
            "sections": ["lighthouse"],
            "lighthouse": run_lighthouse(&args).await?,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if args.sections == [Section::Upload] {
        let report = json!({
            "machine": machine(),
            "sections": ["upload"],
            "upload": run_upload(&args).await?,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let lifted = "1000000";
    let mut options = DevOptions::default()
        // The search section's bulk seed route (never set in wrangler.toml).
        .var("BENCH_SEED", "1")
        .var("SEND_BURST", lifted)
        .var("SEND_PER_SECOND", lifted)
        .var("FRAME_BURST", lifted)
        .var("FRAME_PER_SECOND", lifted);
    if browser {
        options = options.with_app();
    }

    // The assistant section's provider: a scripted OpenAI-compatible server in this process.
    let fake = FakeAi::start().await?;
    options = options
        .var("AI_PROVIDER", "openai")
        .var("AI_BASE_URL", fake.base_url())
        .var("AI_MODEL", "clock")
        .var("AI_BURST", lifted)
        .var("AI_PER_MINUTE", lifted);
    say("starting wrangler dev");
    let server = DevServer::start(options).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = server.rss_kib();

    let (report, failed) = match run_all(&args, &server, &fake, rss_idle, lifted).await {
        Ok(done) => done,
        Err(e) => {
            eprintln!(
                "[bench] failed; wrangler dev's last output:\n{}",
                server.log_tail()
            );
            return Err(e);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs the selected sections. A failed browser section is reported in the JSON (the other
/// results stay useful) and returned as the second value, so the bench still exits with an error.
async fn run_all(
    args: &Args,
    server: &DevServer,
    fake: &FakeAi,
    rss_idle: u64,
    lifted: &str,
) -> Result<(serde_json::Value, Option<e2e::Error>)> {
    let mut sessions = Vec::new();
    for i in 0..args.sessions.max(2) {
        sessions.push(Session::create(server, &format!("Bench {i}")).await?);
    }
    let mut report = json!({
        "machine": machine(),
        "server_vars": {
            "SEND_BURST": lifted, "SEND_PER_SECOND": lifted,
            "FRAME_BURST": lifted, "FRAME_PER_SECOND": lifted,
        },
        "sections": args.sections.iter().map(|s| s.name()).collect::<Vec<_>>(),
    });

    if args.runs(Section::Fanout) {
        let mut fanout = Vec::new();
        for &clients in &args.clients {
            say(format!(
                "fan-out: {clients} clients, {} senders x {} messages",
                args.senders, args.messages
            ));
            fanout.push(
                run_fanout(&sessions, clients, args.senders.min(clients), args.messages).await?,
            );
        }
        report["fanout"] = json!(fanout);
    }

    if args.runs(Section::Steady) {
        say(format!(
            "steady: {} clients, {} messages/s for {} s",
            args.steady_clients, args.steady_rate, args.steady_secs
        ));
        report["steady"] = run_steady(
            &sessions,
            args.steady_clients,
            args.steady_rate,
            args.steady_secs,
        )
        .await?;
    }

    if args.runs(Section::Join) {
        let mut joins = Vec::new();
        for &size in &args.join_sizes {
            say(format!("join: seeding {size} messages"));
            joins.push(run_joins(&sessions, size, args.joins, args.seeders).await?);
        }
        report["join"] = json!(joins);
    }

    if args.runs(Section::Watch) {
        say(format!(
            "watch: {} clients at {} messages/s for {} s, with 0 and {WATCHERS} watchers",
            args.steady_clients, args.steady_rate, args.steady_secs
        ));
        report["watch"] = run_watch(
            &sessions,
            args.steady_clients,
            WATCHERS,
            args.steady_rate,
            args.steady_secs,
        )
        .await?;
    }

    if args.runs(Section::Assistant) {
        say("assistant: 50 clients watch answers stream from a clock provider");
        report["assistant"] = run_assistant(&sessions, fake, 50, 5, 200).await?;
    }

    if args.runs(Section::Search) {
        report["search"] = run_search(args, &sessions, lifted).await?;
    }

    if args.runs(Section::Burst) || args.runs(Section::Joincost) {
        run_burst_sections(args, server, &sessions, &mut report).await?;
    }

    if args.runs(Section::Crowd) {
        report["crowd"] = run_crowd(args).await?;
    }

    if args.runs(Section::Upload) {
        report["upload"] = run_upload(args).await?;
    }

    if args.runs(Section::Cache) {
        say("cache: readers of profile cards and the room list");
        report["cache"] = run_cache(server).await?;
    }

    if args.runs(Section::Ops) {
        report["ops"] = run_ops(args).await?;
    }

    if args.runs(Section::Lighthouse) {
        report["lighthouse"] = run_lighthouse(args).await?;
    }

    let rss_after = server.rss_kib();
    report["rss_kib"] = json!({ "idle": rss_idle, "after_runs": rss_after });

    if args.runs(Section::Download) {
        report["app_download"] = app_download()?;
    }

    let mut failed = None;
    if args.runs(Section::Browser) {
        say("browser: the app in headless Chromium");
        let run = tokio::time::timeout(BROWSER_DEADLINE, run_browser(args, server, &sessions));
        let outcome = match run.await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!(
                "the browser section did not finish within {} s",
                BROWSER_DEADLINE.as_secs()
            )),
        };
        report["browser"] = match outcome {
            Ok(browser) => browser,
            Err(e) => {
                let message = format!("{e:#}");
                say(format!("browser section failed: {message}"));
                failed = Some(e);
                json!({ "error": message })
            }
        };
    }
    Ok((report, failed))
}

fn machine() -> Value {
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "note": "clients and server share this machine",
        // Other work on the machine moves every number here.
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
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
                if let EventKind::Message { text, .. } = &event.kind {
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
        attachments: Vec::new(),
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

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
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
    let (latencies, errors) =
        steady_load(sessions, &room.slug, clients, rate, total, |_| {}).await?;
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

/// Watching sockets in the watch section (a room list's live unread counts: members who are
/// elsewhere).
const WATCHERS: usize = 200;

/// The steady load twice, without and with `watchers` watching sockets on the room: what the
/// watchers cost the joined clients' delivery, and how soon a watcher hears of a message.
async fn run_watch(
    sessions: &[Session],
    clients: usize,
    watchers: usize,
    rate: f64,
    secs: f64,
) -> Result<serde_json::Value> {
    let without = run_steady(sessions, clients, rate, secs).await?;

    let room = sessions[0].new_room().await?;
    let total = (rate * secs).round().max(1.0) as usize;
    // The room is new and only the sender posts, so message n gets seq n + 1.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let mut watching = Vec::new();
    for w in 0..watchers {
        let mut socket = sessions[w % sessions.len()].connect(&room.slug).await?;
        socket
            .send_message(&ClientMessage::Watch {
                protocol: shared::PROTOCOL_VERSION,
            })
            .await?;
        socket
            .expect_until(Duration::from_secs(30), |m| {
                matches!(m, ServerMessage::Unread { .. }).then_some(())
            })
            .await?;
        watching.push(socket);
    }
    let readers: Vec<_> = watching
        .into_iter()
        .map(|mut socket| {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(total);
                while latencies.len() < total {
                    match socket.next_message(Duration::from_secs(30)).await {
                        Ok(ServerMessage::Activity { seq, .. }) => {
                            let sent = sent_at
                                .get(seq.saturating_sub(1) as usize)
                                .map_or(0, |t| t.load(Ordering::Relaxed));
                            latencies.push(now_us().saturating_sub(sent));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                socket.close().await;
                latencies
            })
        })
        .collect();

    let (latencies, errors) = steady_load(sessions, &room.slug, clients, rate, total, |n| {
        sent_at[n].store(now_us(), Ordering::Relaxed)
    })
    .await?;
    let mut notices = Vec::new();
    for reader in readers {
        notices.extend(reader.await.context("watcher task")?);
    }
    Ok(json!({
        "without_watchers": without,
        "with_watchers": {
            "clients": clients,
            "watchers": watchers,
            "messages": total,
            "deliveries": latencies.len(),
            "latency_ms": latency_json(latencies),
            "notices": notices.len(),
            "expected_notices": total * watchers,
            "notice_latency_ms": latency_json(notices),
            "errors": errors,
        },
    }))
}

/// Joins `clients` to the room, then sends `total` messages from the first of them at `rate` a
/// second; `sending(n)` runs just before message `n` goes out. Returns every client's delivery
/// latencies and the errors they saw.
async fn steady_load(
    sessions: &[Session],
    slug: &str,
    clients: usize,
    rate: f64,
    total: usize,
    mut sending: impl FnMut(usize),
) -> Result<(Vec<u64>, Vec<String>)> {
    let expected = Arc::new(AtomicU64::new(total as u64));
    let mut all = join_clients(sessions, slug, clients, 0, expected).await?;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sender = all
        .first_mut()
        .and_then(|c| c.sink.as_mut())
        .context("no clients")?;
    for n in 0..total {
        interval.tick().await;
        sending(n);
        sender.send(bench_frame(0, n)?).await?;
    }
    let (latencies, _, errors) = collect(all).await?;
    Ok((latencies, errors))
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
            tasks.push(tokio::spawn(seed(socket, s, share, join_text)));
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

fn join_text(seeder: usize, n: u64) -> String {
    format!("Seed message {n} from seeder {seeder}: lorem ipsum dolor sit amet.")
}

/// Sends `count` messages `text(seeder, n)` over one socket, up to 64 in flight.
async fn seed(
    socket: RoomSocket,
    seeder: usize,
    count: u64,
    text: fn(usize, u64) -> String,
) -> Result {
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
            text: text(seeder, n),
            attachments: Vec::new(),
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

/// Longest the browser section may take (both seeds, Chromium, both rooms); past it the section
/// is abandoned, which drops (kills) chromedriver and its browsers.
const BROWSER_DEADLINE: Duration = Duration::from_secs(240);
/// Longest the large room's history may take to load by scrolling up.
const LOAD_ALL_DEADLINE: Duration = Duration::from_secs(75);
/// Loading has stalled when the loaded count has not grown for this long.
const LOAD_STALL: Duration = Duration::from_secs(10);
/// Between two probe sends.
const PROBE_INTERVAL: Duration = Duration::from_millis(300);
/// After the last probe, before the page's records are read.
const PROBE_SETTLE: Duration = Duration::from_secs(1);
/// Extra time a missing probe gets before it is reported missing.
const PROBE_GRACE: Duration = Duration::from_secs(5);
/// Where the page's rows are.
const FIRST_ROW: &str = r#"ol[aria-label="Messages"] li.message"#;

/// A realistic line: markdown, a link and inline code, as the app renders them.
fn browser_text(_seeder: usize, n: u64) -> String {
    format!(
        "Message {n} with some **markdown** and a [link](https://example.com/{n}) `code` and \
         more words to make it a realistic length line."
    )
}

/// Wall-clock milliseconds, the clock `Date.now()` reads in the page on this same machine.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The baseline room and the large room, each opened in the same Chromium: time to the first
/// row, time to load the whole history by scrolling up, then delivery of probes into the DOM.
async fn run_browser(args: &Args, server: &DevServer, sessions: &[Session]) -> Result<Value> {
    let seeder = &sessions[0];
    let prober = &sessions[1 % sessions.len()];
    let small = seeder.new_room().await?;
    seed_room(seeder, &small.slug, args.browser_baseline).await?;
    say(format!(
        "browser: seeding {} messages over one socket",
        args.browser_messages
    ));
    let large = seeder.new_room().await?;
    let seed_start = Instant::now();
    seed_room(seeder, &large.slug, args.browser_messages).await?;
    let seed_seconds = seed_start.elapsed().as_secs_f64();

    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let measured = async {
        sign_in(&browser, server).await?;
        let user_agent = browser.eval("return navigator.userAgent;").await?;
        // The baseline first: a broken flow fails in seconds, not after the long load.
        say(format!(
            "browser: baseline room of {} messages",
            args.browser_baseline
        ));
        let baseline = measure_room(
            &browser,
            server,
            prober,
            &small.slug,
            args.browser_baseline,
            args.browser_probes,
        )
        .await
        .context("the baseline room")?;
        say(format!(
            "browser: large room of {} messages",
            args.browser_messages
        ));
        let large = measure_room(
            &browser,
            server,
            prober,
            &large.slug,
            args.browser_messages,
            args.browser_probes,
        )
        .await
        .context("the large room")?;
        Ok::<Value, e2e::Error>(json!({
            "user_agent": user_agent,
            "seed": {
                "messages": args.browser_messages,
                "seconds": round2(seed_seconds),
                "messages_per_s": (args.browser_messages as f64 / seed_seconds.max(1e-9)).round(),
                "how": "one WebSocket, up to 64 sends in flight",
            },
            "large": large,
            "baseline": baseline,
        }))
    }
    .await;
    // Bounded: a hung browser must not hold the report; dropping the driver kills it anyway.
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.quit()).await;
    drop(driver);
    measured
}

/// Seeds `count` browser-style messages over one socket.
async fn seed_room(session: &Session, slug: &str, count: u64) -> Result {
    let (socket, _) = session.join(slug, None).await?;
    seed(socket, 0, count, browser_text).await
}

/// Answers the app's display-name prompt, as a person would.
async fn sign_in(browser: &Browser, server: &DevServer) -> Result {
    browser.goto(&server.url()).await?;
    let id = browser
        .wait_for(
            "the display-name field",
            r#"
            const label = Array.from(document.querySelectorAll('label'))
                .find(l => l.textContent.trim().startsWith('Display name'));
            const input = (label && (label.control || document.getElementById(label.htmlFor)))
                || document.getElementById('display-name');
            if (!input) return null;
            if (!input.id) input.id = 'bench-display-name';
            return input.id;
            "#,
        )
        .await?;
    let id = id.as_str().unwrap_or("display-name").to_string();
    let input = browser.client.find(Locator::Id(&id)).await?;
    input.send_keys("Bench Reader").await?;
    browser
        .wait_for(
            "an enabled Continue button",
            r#"
            const b = Array.from(document.querySelectorAll('button'))
                .find(b => b.textContent.trim() === 'Continue' && !b.disabled);
            if (!b) return false;
            b.click();
            return true;
            "#,
        )
        .await?;
    browser.find(r#"nav[aria-label="Rooms"]"#).await?;
    Ok(())
}

/// The message list as the page has it; `arguments[0] === "bottom"` scrolls its scroller to the
/// newest rows first.
const LIST_JS: &str = r#"
    const ol = document.querySelector('ol[aria-label="Messages"]');
    if (!ol) return null;
    // The nearest ancestor that scrolls; the list's parent if nothing does yet.
    let scroller = ol.parentElement;
    while (scroller && !(scroller.scrollHeight > scroller.clientHeight)) {
        scroller = scroller.parentElement;
    }
    scroller = scroller || ol.parentElement;
    if (arguments[0] === 'bottom') {
        scroller.scrollTop = scroller.scrollHeight;
        // Setting scrollTop to where it already is fires nothing; the app must still look.
        scroller.dispatchEvent(new Event('scroll'));
    }
    return {
        rendered: ol.querySelectorAll('li.message').length,
        loaded_attr: Number.isFinite(parseInt(ol.getAttribute('data-loaded'), 10)),
        at_bottom: scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= 48,
        heap: (performance.memory && performance.memory.usedJSHeapSize) || null,
    };
"#;

#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct ListState {
    rendered: u64,
    /// Whether the list carries `data-loaded` (the app may render only a window of what it
    /// loaded, and says how much it loaded there).
    loaded_attr: bool,
    at_bottom: bool,
    heap: Option<f64>,
}

impl ListState {
    fn heap_mb(&self) -> Option<f64> {
        self.heap.map(|b| round2(b / 1_048_576.0))
    }
}

async fn list_state(browser: &Browser, scroll: Option<&str>) -> Result<ListState> {
    let arg = scroll.map_or(Value::Null, |s| json!(s));
    let value = browser
        .client
        .execute(LIST_JS, vec![arg])
        .await
        .context("reading the message list")?;
    if value.is_null() {
        bail!("the page has no message list");
    }
    serde_json::from_value(value).context("the message list's state")
}

async fn measure_room(
    browser: &Browser,
    server: &DevServer,
    prober: &Session,
    slug: &str,
    messages: u64,
    probes: usize,
) -> Result<Value> {
    let opened = Instant::now();
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    browser.find(FIRST_ROW).await?;
    let first_row_ms = opened.elapsed().as_secs_f64() * 1000.0;
    let history = load_history(browser, messages).await?;
    let updates = probe_updates(browser, prober, slug, probes).await?;
    Ok(json!({
        "history_messages": messages,
        "open_to_first_row_ms": first_row_ms.round(),
        "load_history": history,
        "updates": updates,
    }))
}

/// Drives the loading from inside the page: on every animation frame, scroll the list's scroller
/// to the top (and dispatch `scroll`), and note when the loaded count last grew. The page paces
/// it itself (no frame runs while it renders), so the time is the app's, not WebDriver's.
const LOAD_JS: &str = r#"
    const target = arguments[0];
    const ol = document.querySelector('ol[aria-label="Messages"]');
    if (!ol) return false;
    const count = () => {
        const list = document.querySelector('ol[aria-label="Messages"]') || ol;
        const attr = parseInt(list.getAttribute('data-loaded'), 10);
        return Number.isFinite(attr) ? attr : list.querySelectorAll('li.message').length;
    };
    const l = { start: Date.now(), grown_at: Date.now(), loaded: count(), frames: 0, running: true };
    window.__load = l;
    const step = () => {
        if (!l.running) return;
        const list = document.querySelector('ol[aria-label="Messages"]') || ol;
        let scroller = list.parentElement;
        while (scroller && !(scroller.scrollHeight > scroller.clientHeight)) {
            scroller = scroller.parentElement;
        }
        scroller = scroller || list.parentElement;
        scroller.scrollTop = 0;
        scroller.dispatchEvent(new Event('scroll'));
        l.frames += 1;
        const now = count();
        if (now > l.loaded) {
            l.loaded = now;
            l.grown_at = Date.now();
        }
        if (l.loaded >= target) l.running = false;
        else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
    return true;
"#;

#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct LoadProgress {
    start: u64,
    grown_at: u64,
    loaded: u64,
    frames: u64,
}

/// The chat bundle's linear memory, where the app keeps its rows (`usedJSHeapSize` does not
/// count it). The loader's module is cached, and wasm-bindgen's init returns the instance it
/// already has.
const WASM_MEMORY_JS: &str = r#"
    const done = arguments[arguments.length - 1];
    const el = document.querySelector('script[data-chat-js]');
    if (!el) return done(null);
    import(el.dataset.chatJs)
        .then(m => m.default({ module_or_path: el.dataset.chatWasm }))
        .then(w => done(w && w.memory ? w.memory.buffer.byteLength : null))
        .catch(() => done(null));
"#;

async fn wasm_memory_mb(browser: &Browser) -> Option<f64> {
    let value = browser
        .client
        .execute_async(WASM_MEMORY_JS, Vec::new())
        .await
        .ok()?;
    value.as_f64().map(|b| round2(b / 1_048_576.0))
}

/// Loads the whole history by scrolling to the top (see [`LOAD_JS`]) until everything is
/// loaded, the count stops growing for [`LOAD_STALL`], or [`LOAD_ALL_DEADLINE`] passes.
async fn load_history(browser: &Browser, target: u64) -> Result<Value> {
    let started = browser
        .client
        .execute(LOAD_JS, vec![json!(target)])
        .await
        .context("starting the history load")?;
    if started != Value::Bool(true) {
        bail!("the page has no message list");
    }
    let start = Instant::now();
    let mut best = 0;
    let mut grown_at = start;
    let (progress, stopped) = loop {
        let value = browser.eval("return window.__load || null;").await?;
        let progress: LoadProgress =
            serde_json::from_value(value).context("the page's load progress")?;
        if progress.loaded > best {
            best = progress.loaded;
            grown_at = Instant::now();
        }
        if progress.loaded >= target {
            break (progress, "complete");
        }
        if grown_at.elapsed() >= LOAD_STALL {
            break (progress, "stalled");
        }
        if start.elapsed() >= LOAD_ALL_DEADLINE {
            break (progress, "deadline");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    browser
        .eval("if (window.__load) window.__load.running = false; return true;")
        .await?;
    let end = list_state(browser, None).await?;
    let seconds = progress.grown_at.saturating_sub(progress.start) as f64 / 1000.0;
    say(format!(
        "browser: {} of {target} loaded in {seconds:.1} s ({stopped}), {} rendered",
        progress.loaded, end.rendered
    ));
    Ok(json!({
        "target": target,
        "loaded": progress.loaded,
        "stopped": stopped,
        "seconds": round2(seconds),
        "measured": "page clock, from the first row shown to the last growth of the loaded count; \
                     the page scrolls its list to the top on every animation frame",
        "loaded_counted_by": if end.loaded_attr { "data-loaded" } else { "li.message" },
        "rendered_li": end.rendered,
        "frames": progress.frames,
        "js_heap_mb": end.heap_mb(),
        "wasm_memory_mb": wasm_memory_mb(browser).await,
    }))
}

/// Records, in the page, when each probe's text first appears in the list (and the first frame
/// after), and every long task from now on.
const OBSERVE_JS: &str = r#"
    const ol = document.querySelector('ol[aria-label="Messages"]');
    if (!ol) return false;
    const b = { dom: {}, frame: {}, longtasks: [], longtask_supported: false };
    window.__bench = b;
    const note = text => {
        if (!text || text.indexOf('probe-') < 0) return;
        for (const m of text.matchAll(/probe-(\d+)/g)) {
            const id = m[1];
            if (id in b.dom) continue;
            b.dom[id] = Date.now();
            requestAnimationFrame(() => setTimeout(() => { b.frame[id] = Date.now(); }, 0));
        }
    };
    new MutationObserver(records => {
        for (const r of records) {
            if (r.type === 'characterData') note(r.target.textContent);
            else for (const n of r.addedNodes) note(n.textContent);
        }
    }).observe(ol, { childList: true, subtree: true, characterData: true });
    try {
        new PerformanceObserver(list => {
            for (const e of list.getEntries()) b.longtasks.push(e.duration);
        }).observe({ type: 'longtask' });
        b.longtask_supported = true;
    } catch (e) {}
    return true;
"#;

#[derive(Debug, Default, serde::Deserialize)]
struct PageRecords {
    dom: HashMap<String, u64>,
    frame: HashMap<String, u64>,
    longtasks: Vec<f64>,
    longtask_supported: bool,
}

async fn page_records(browser: &Browser) -> Result<PageRecords> {
    let value = browser
        .eval("return window.__bench ? window.__bench : null;")
        .await?;
    if value.is_null() {
        bail!("the page lost the bench's observers (did it navigate?)");
    }
    serde_json::from_value(value).context("the page's records")
}

/// Scrolls to the newest rows, then sends `count` probes `probe-<epoch ms>` from another
/// session, [`PROBE_INTERVAL`] apart, and reads when each reached the DOM.
async fn probe_updates(
    browser: &Browser,
    prober: &Session,
    slug: &str,
    count: usize,
) -> Result<Value> {
    let installed = browser.eval(OBSERVE_JS).await?;
    if installed != Value::Bool(true) {
        bail!("could not install the observers: {installed}");
    }
    let mut state = list_state(browser, Some("bottom")).await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let again = list_state(browser, Some("bottom")).await?;
        let settled = again.at_bottom && again.rendered == state.rendered;
        state = again;
        if settled {
            break;
        }
    }
    if !state.at_bottom {
        bail!("the list did not stay at the bottom: {state:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Only the long tasks of the updates count; scrolling back down had its own.
    let before = browser
        .eval("const n = window.__bench.longtasks.length; window.__bench.longtasks = []; return n;")
        .await?;
    let rendered_before = list_state(browser, None).await?.rendered;

    let (socket, _) = prober.join(slug, None).await?;
    let (mut sink, mut stream) = socket.into_stream()?.split();
    let reader = tokio::spawn(async move {
        let mut acks: HashMap<String, u64> = HashMap::new();
        let mut errors = Vec::new();
        while acks.len() < count {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
            let text = match next {
                Err(_) => {
                    errors.push("no frame within 30 s".to_string());
                    break;
                }
                Ok(None) | Ok(Some(Err(_))) => {
                    errors.push("probe socket ended".to_string());
                    break;
                }
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
            };
            match serde_json::from_str::<ServerMessage>(&text) {
                Ok(ServerMessage::Ack { client_id, .. }) => {
                    acks.insert(client_id, epoch_ms());
                }
                Ok(ServerMessage::Error { code, message, .. }) => {
                    errors.push(format!("{code}: {message}"))
                }
                Ok(_) => {}
                Err(_) => errors.push(format!("unparsable frame: {text}")),
            }
        }
        (acks, errors)
    });

    let mut sent: Vec<(String, u64)> = Vec::new();
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..count {
        interval.tick().await;
        // Distinct ids even if two sends share a millisecond.
        let at = sent
            .last()
            .map_or(epoch_ms(), |(_, last)| epoch_ms().max(last + 1));
        let client_id = format!("probe-{i}-{at}");
        let frame = ClientMessage::Send {
            client_id: client_id.clone(),
            text: format!("probe-{at}"),
            attachments: Vec::new(),
        };
        sink.send(Message::text(serde_json::to_string(&frame)?))
            .await?;
        sent.push((client_id, at));
    }
    tokio::time::sleep(PROBE_SETTLE).await;
    let mut records = page_records(browser).await?;
    let grace = Instant::now() + PROBE_GRACE;
    while records.dom.len() < count && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(250)).await;
        records = page_records(browser).await?;
    }
    let rendered_after = list_state(browser, None).await?.rendered;
    let (acks, errors) = match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(joined) => joined.context("probe reader")?,
        Err(_) => (HashMap::new(), vec!["acks not all read within 5 s".into()]),
    };
    let _ = sink.close().await;

    let mut dom_us = Vec::new();
    let mut frame_us = Vec::new();
    let mut ack_us = Vec::new();
    for (client_id, at) in &sent {
        let id = at.to_string();
        if let Some(t) = records.dom.get(&id) {
            dom_us.push(t.saturating_sub(*at) * 1000);
        }
        if let Some(t) = records.frame.get(&id) {
            frame_us.push(t.saturating_sub(*at) * 1000);
        }
        if let Some(t) = acks.get(client_id) {
            ack_us.push(t.saturating_sub(*at) * 1000);
        }
    }
    let seen = dom_us.len();
    let long = &records.longtasks;
    Ok(json!({
        "probes": count,
        "interval_ms": PROBE_INTERVAL.as_millis() as u64,
        "seen_in_dom": seen,
        "dom_latency_ms": latency_json(dom_us),
        "next_frame_latency_ms": latency_json(frame_us),
        "sender_ack_ms": latency_json(ack_us),
        "measured": "page Date.now() when the probe's text was added to the list (MutationObserver) \
                     minus the epoch ms embedded at send; next frame = first task after the next \
                     requestAnimationFrame; sender ack = the sending socket's ack; 1 ms resolution",
        "longtasks": {
            "supported": records.longtask_supported,
            "count": long.len(),
            "max_ms": round2(long.iter().copied().fold(0.0, f64::max)),
            "sum_ms": round2(long.iter().fold(0.0, |a, b| a + b)),
            "while_scrolling_to_bottom": before,
        },
        "rendered_li": { "before_probes": rendered_before, "after_probes": rendered_after },
        "errors": errors,
    }))
}

/// The assistant's room path: `clients` watch `questions` answers of `tokens` tokens each,
/// 10 ms apart (about the local model's speed). Each token carries the time the provider sent
/// it, so every client measures provider token → its socket (including the room's ≤ 50 ms
/// batching); the asker also measures question → first token.
async fn run_assistant(
    sessions: &[Session],
    fake: &FakeAi,
    clients: usize,
    questions: usize,
    tokens: usize,
) -> Result<Value> {
    use shared::protocol::AnswerState;
    let slug = sessions[0]
        .create_room(&format!("assistant bench {}", now_us()), "bench")
        .await?
        .slug;
    let mut readers = Vec::new();
    let mut asker = None;
    for i in 0..clients {
        let (socket, _) = sessions[i % sessions.len()].join(&slug, None).await?;
        if i == 0 {
            asker = Some(socket);
            continue;
        }
        readers.push(tokio::spawn(watch_answers(socket, questions)));
    }
    let mut asker = asker.context("no clients")?;
    let mut first_token_ms = Vec::new();
    let mut frames = 0usize;
    let mut asker_latencies = Vec::new();
    for q in 0..questions {
        let marker = format!("bench-q{q}-{}", now_us());
        fake.push(
            &marker,
            Script::Clock {
                count: tokens,
                gap: Duration::from_millis(10),
            },
        );
        let asked = unix_us();
        asker
            .send(
                &format!("ask-{q}-{}", now_us()),
                &format!("@assistant {marker}"),
            )
            .await?;
        let mut first = None;
        loop {
            match asker.next_message(Duration::from_secs(60)).await? {
                ServerMessage::Stream { text, .. } => {
                    let now = unix_us();
                    first.get_or_insert(now);
                    frames += 1;
                    asker_latencies.extend(token_latencies(&text, now));
                }
                ServerMessage::Event { event } => {
                    if let EventKind::AnswerStatus { status, .. } = event.kind {
                        if !status.is_active() && status != AnswerState::Unknown {
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(first) = first {
            first_token_ms.push(first.saturating_sub(asked));
        }
    }
    let mut latencies = asker_latencies;
    for reader in readers {
        latencies.extend(reader.await.context("reader")??);
    }
    let count = latencies.len();
    Ok(json!({
        "clients": clients,
        "answers": questions,
        "tokens_per_answer": tokens,
        "provider_token_gap_ms": 10,
        "question_to_first_token_ms": latency_json(first_token_ms),
        "provider_token_to_client_ms": latency_json(latencies),
        "token_deliveries": count,
        "stream_frames_per_answer": frames as f64 / questions as f64,
    }))
}

/// A watcher's token latencies (µs) until `answers` answers have finished.
async fn watch_answers(mut socket: RoomSocket, answers: usize) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut finished = 0;
    while finished < answers {
        match socket.next_message(Duration::from_secs(120)).await? {
            ServerMessage::Stream { text, .. } => {
                latencies.extend(token_latencies(&text, unix_us()));
            }
            ServerMessage::Event { event } => {
                if let EventKind::AnswerStatus { status, .. } = event.kind {
                    if !status.is_active() {
                        finished += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(latencies)
}

fn token_latencies(text: &str, now: u64) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|t| t.strip_prefix('t')?.parse::<u64>().ok())
        .map(|sent| now.saturating_sub(sent))
        .collect()
}

/// Messages per bulk-seed request (the room caps one request at 50,000).
const SEED_CHUNK: u64 = 50_000;

/// Adds `count` generated messages to a room through the bench-only seed route.
async fn bulk_seed(session: &Session, slug: &str, count: u64) -> Result<u64> {
    let mut head = 0;
    let mut left = count;
    while left > 0 {
        let n = left.min(SEED_CHUNK);
        let mut response = session
            .request(
                reqwest::Method::POST,
                &format!("/api/rooms/{slug}/seed?count={n}"),
            )
            .send()
            .await?;
        if response.status().as_u16() == 503 {
            // wrangler dev answers 503 when its runtime restarted under the request (seen once
            // after a long seed): the chunk was not stored; send it again, once.
            say("seed answered 503 (runtime restarted); retrying the chunk once");
            tokio::time::sleep(Duration::from_secs(3)).await;
            response = session
                .request(
                    reqwest::Method::POST,
                    &format!("/api/rooms/{slug}/seed?count={n}"),
                )
                .send()
                .await?;
        }
        if !response.status().is_success() {
            bail!(
                "seed answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let body: Value = response.json().await?;
        head = body["head"].as_u64().context("seed head")?;
        left -= n;
    }
    Ok(head)
}

/// Times `n` searches of `query(i)` in one room, over HTTP (Worker + room).
async fn time_searches(
    session: &Session,
    slug: &str,
    n: usize,
    query: impl Fn(usize) -> String,
) -> Result<Value> {
    let mut us = Vec::with_capacity(n);
    let mut hits = 0usize;
    for i in 0..n {
        let q: String = url::form_urlencoded::byte_serialize(query(i).as_bytes()).collect();
        let start = Instant::now();
        let response = session
            .get(&format!("/api/rooms/{slug}/search?q={q}"))
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        us.push(start.elapsed().as_micros() as u64);
        if !status.is_success() {
            bail!("search answered {status}: {body}");
        }
        hits += body["hits"].as_array().map_or(0, Vec::len);
    }
    let mut report = latency_json(us);
    report["queries"] = json!(n);
    report["mean_hits"] = json!(round2(hits as f64 / n.max(1) as f64));
    Ok(report)
}

/// A deterministic spread of rare words from the seed vocabulary (w0..w4095).
fn rare_word(i: usize) -> String {
    format!("w{}", (i * 2_654_435_761) % 4096)
}

async fn run_search(args: &Args, sessions: &[Session], lifted: &str) -> Result<Value> {
    let session = &sessions[0];
    let mut sizes = Vec::new();
    for &size in &args.search_sizes {
        let room = session.new_room().await?;
        say(format!("search: bulk-seeding {size} messages"));
        let start = Instant::now();
        let head = bulk_seed(session, &room.slug, size).await?;
        let seed_seconds = start.elapsed().as_secs_f64();
        if head != size {
            bail!("seeded to head {head}, wanted {size}");
        }
        say(format!(
            "search: {} queries of each kind at {size}",
            args.search_queries
        ));
        let n = args.search_queries;
        // Warm the room (first query opens storage) before timing.
        time_searches(session, &room.slug, 3, rare_word).await?;
        sizes.push(json!({
            "messages": size,
            "seed_seconds": round2(seed_seconds),
            "seed_messages_per_s": (size as f64 / seed_seconds.max(1e-9)).round(),
            "rare_word_ms": time_searches(session, &room.slug, n, rare_word).await?,
            "two_rare_words_ms": time_searches(session, &room.slug, n, |i| {
                format!("{} {}", rare_word(i), rare_word(i + 7))
            }).await?,
            "rare_word_with_date_filter_ms": time_searches(session, &room.slug, n, |i| {
                format!("{} after:2020-01-01", rare_word(i))
            }).await?,
            "word_in_every_message_ms": time_searches(
                session, &room.slug, n.min(20), |_| "seed".to_owned()
            ).await?,
        }));
    }

    say("search: send path with and without the index");
    let with_index = send_path(session, args.send_path_messages).await?;
    let plain = DevServer::start(
        DevOptions::default()
            .var("SEND_BURST", lifted)
            .var("SEND_PER_SECOND", lifted)
            .var("FRAME_BURST", lifted)
            .var("FRAME_PER_SECOND", lifted)
            .var("BENCH_NO_FTS", "1"),
    )
    .await?;
    let plain_session = Session::create(&plain, "Bench plain").await?;
    let without_index = send_path(&plain_session, args.send_path_messages).await?;
    Ok(json!({
        "measured": "HTTP GET /api/rooms/{slug}/search round trip (Worker + room), 20 results",
        "sizes": sizes,
        "send_path": {
            "with_index": with_index,
            "without_index": without_index,
        },
    }))
}

/// Sequential sends (each waits for its ack) for latency, then a windowed burst (64 in flight)
/// for throughput, in a fresh room.
async fn send_path(session: &Session, count: u64) -> Result<Value> {
    let room = session.new_room().await?;
    let (mut socket, _) = session.join(&room.slug, None).await?;
    let mut us = Vec::new();
    for n in 0..count.min(500) {
        let start = Instant::now();
        socket
            .post(
                &format!("lat-{n}"),
                &format!("latency probe {n} with some words"),
            )
            .await?;
        us.push(start.elapsed().as_micros() as u64);
    }
    socket.close().await;
    let (socket, _) = session.join(&room.slug, None).await?;
    let start = Instant::now();
    seed(socket, 0, count, join_text).await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "ack_ms": latency_json(us),
        "burst_messages": count,
        "burst_messages_per_s": (count as f64 / seconds.max(1e-9)).round(),
    }))
}

/// Where the peer (Cloudflare's durable-chat-template, set up by `scripts/peer`) is, if it is
/// to be measured: `--peer-dir` and `--peer-node`, or `PEER_DIR` and `PEER_NODE`.
fn peer_paths(args: &Args) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = args.peer_dir.clone()?;
    let node = args.peer_node.clone()?;
    Some((dir, node))
}

/// Who a burst runs against.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// This server; `batch`: the clients ask for batched frames (coalescing on).
    Ours {
        sessions: &'a [Session],
        batch: bool,
    },
    /// The peer.
    Peer(&'a PeerServer),
}

impl Target<'_> {
    fn name(&self) -> &'static str {
        match self {
            Target::Ours { batch: true, .. } => "ours_coalesced",
            Target::Ours { batch: false, .. } => "ours_uncoalesced",
            Target::Peer(_) => "peer",
        }
    }
}

/// One burst: `clients` sockets in a fresh room; `senders` of them send `messages` in all,
/// back to back, never waiting for an ack; every client (senders too: both servers echo to the
/// sender) counts the bench messages it receives. Server CPU is the whole process tree's
/// user + system time from just before the first send to the last delivery.
async fn run_burst(
    target: Target<'_>,
    server: &DevServer,
    clients: usize,
    senders: usize,
    messages: usize,
    cpu_profile: Option<&std::path::Path>,
) -> Result<Value> {
    let room_name = e2e::unique("burst");
    let (slug, cpu): (String, Box<dyn Fn() -> f64 + '_>) = match target {
        Target::Ours { sessions, .. } => (
            sessions[0].new_room().await?.slug,
            Box::new(|| server.cpu_ms()),
        ),
        Target::Peer(peer) => (room_name, Box::new(|| peer.cpu_ms())),
    };
    let expected = messages as u64;
    let opened: Vec<Result<(usize, Ws)>> = futures_util::stream::iter(0..clients)
        .map(|i| {
            let slug = slug.clone();
            async move {
                let ws = match target {
                    Target::Ours { sessions, batch } => {
                        let session = &sessions[i % sessions.len()];
                        let (socket, _) = if batch {
                            session.join_batched(&slug, None).await?
                        } else {
                            session.join(&slug, None).await?
                        };
                        socket.into_stream()?
                    }
                    Target::Peer(peer) => {
                        let (mut ws, _) = tokio_tungstenite::connect_async(peer.ws_url(&slug))
                            .await
                            .context("connecting to the peer")?;
                        // Its first frame is the room's messages ("all").
                        tokio::time::timeout(Duration::from_secs(30), ws.next())
                            .await
                            .context("no first frame from the peer")?;
                        ws
                    }
                };
                Ok((i, ws))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut streams = Vec::new();
    for r in opened {
        streams.push(r?);
    }
    streams.sort_by_key(|(i, _)| *i);
    let peer = matches!(target, Target::Peer(_));
    let mut sinks = Vec::new();
    let mut readers = Vec::new();
    for (_, ws) in streams {
        let (sink, stream) = ws.split();
        sinks.push(sink);
        readers.push(tokio::spawn(read_burst(stream, expected, peer)));
    }

    let profiler = match (cpu_profile, &target) {
        (Some(_), Target::Ours { batch: true, .. }) => {
            Some(e2e::profiler::Profiler::start(server.inspector_port(), 100).await?)
        }
        _ => None,
    };
    let cpu_before = cpu();
    let start = now_us();
    let mut tasks = Vec::new();
    for (s, mut sink) in sinks.drain(..senders.min(clients)).enumerate() {
        let share = messages / senders + usize::from(s < messages % senders);
        tasks.push(tokio::spawn(async move {
            for n in 0..share {
                let frame = if peer {
                    let id = format!("b-{s}-{n}");
                    Message::text(
                        json!({
                            "type": "add", "id": id, "user": format!("Bench {s}"),
                            "role": "user", "content": format!("b {s}-{n} x {}", now_us()),
                        })
                        .to_string(),
                    )
                } else {
                    bench_frame(s, n)?
                };
                sink.feed(frame).await?;
            }
            sink.flush().await?;
            Ok::<Sink, e2e::Error>(sink)
        }));
    }
    let mut sender_sinks = Vec::new();
    for task in tasks {
        sender_sinks.push(task.await.context("sender task")??);
    }
    let send_done = now_us();
    let mut latencies = Vec::new();
    let mut frames = 0u64;
    let mut last = 0;
    let mut errors = Vec::new();
    for reader in readers {
        let got = reader.await.context("reader task")?;
        latencies.extend(got.received.latencies_us);
        last = last.max(got.received.last_us);
        errors.extend(got.received.errors);
        frames += got.frames;
    }
    let cpu_ms = cpu() - cpu_before;
    if let (Some(profiler), Some(dir)) = (profiler, cpu_profile) {
        write_profile(profiler, dir, &format!("burst-{clients}x{messages}")).await?;
    }
    for mut sink in sender_sinks.into_iter().chain(sinks) {
        let _ = sink.close().await;
    }
    errors.sort();
    errors.dedup();
    let deliveries = latencies.len() as u64;
    let seconds = (last.saturating_sub(start)) as f64 / 1e6;
    Ok(json!({
        "server": target.name(),
        "clients": clients,
        "senders": senders,
        "messages": messages,
        "deliveries": deliveries,
        "expected_deliveries": expected * clients as u64,
        "frames_received": frames,
        "send_seconds": round2((send_done - start) as f64 / 1e6),
        "seconds": round2(seconds),
        "deliveries_per_s": (deliveries as f64 / seconds.max(1e-9)).round(),
        "latency_ms": latency_json(latencies),
        "server_cpu_ms": round2(cpu_ms),
        "server_cpu_ms_per_1000_deliveries": round2(cpu_ms * 1000.0 / (deliveries.max(1) as f64)),
        "errors": errors,
    }))
}

/// Stops a CPU profile, writes it as `DIR/NAME.cpuprofile` and prints its top functions.
async fn write_profile(
    profiler: e2e::profiler::Profiler,
    dir: &std::path::Path,
    name: &str,
) -> Result {
    let profile = profiler.stop().await?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.cpuprofile"));
    std::fs::write(&path, profile.to_string())?;
    let top = e2e::profiler::self_time_by_function(&profile);
    let total: f64 = top.iter().map(|(_, ms)| ms).sum();
    say(format!(
        "CPU profile of the isolate ({total:.0} ms sampled) in {}; self time:",
        path.display()
    ));
    for (name, ms) in top.iter().take(30) {
        say(format!("  {ms:8.1} ms  {name}"));
    }
    Ok(())
}

struct BurstReceived {
    received: Received,
    /// WebSocket frames read (fewer than messages when batched).
    frames: u64,
}

/// Reads bench messages (ours, batched or not, or the peer's `add` frames) until `expected`.
async fn read_burst(mut stream: Stream, expected: u64, peer: bool) -> BurstReceived {
    let mut got = Received::default();
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    let record = |text: &str, got: &mut Received| {
        if let Some(sent) = text
            .strip_prefix("b ")
            .and_then(|rest| rest.split(' ').nth(2))
            .and_then(|t| t.parse::<u64>().ok())
        {
            let now = now_us();
            got.latencies_us.push(now.saturating_sub(sent));
            got.last_us = now;
        }
    };
    while (got.latencies_us.len() as u64) < expected {
        let text = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                got.errors.push("run deadline reached".into());
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => {
                got.errors.push("socket ended".into());
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
        };
        frames += 1;
        if peer {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if v["type"] == "add" => {
                    record(v["content"].as_str().unwrap_or_default(), &mut got)
                }
                Ok(_) => {}
                Err(_) => got.errors.push(format!("unparsable frame: {text}")),
            }
            continue;
        }
        let Ok(messages) = shared::protocol::decode_frames(&text) else {
            got.errors.push(format!("unparsable frame: {text}"));
            continue;
        };
        for message in messages {
            match message {
                ServerMessage::Event { event } => {
                    if let EventKind::Message { text, .. } = &event.kind {
                        record(text, &mut got);
                    }
                }
                ServerMessage::Error { code, message, .. } => {
                    got.errors.push(format!("{code}: {message}"));
                }
                _ => {}
            }
        }
    }
    BurstReceived {
        received: got,
        frames,
    }
}

/// Open → first room frame, `samples` times, in a room of `size` messages (ours: bulk-seeded;
/// the welcome, then the page; the peer: its `all` frame, which carries the whole room).
async fn time_joins_ours(
    sessions: &[Session],
    size: u64,
    samples: usize,
    hello_frame: bool,
    profile: Option<(u16, &std::path::Path)>,
) -> Result<Value> {
    let room = sessions[0].new_room().await?;
    if size > 0 {
        bulk_seed(&sessions[0], &room.slug, size).await?;
    }
    say(format!("join cost: seeded {size}"));
    // The first join wakes the room and loads its storage: not a join a user usually pays.
    let (warm, _) = sessions[0].join(&room.slug, None).await?;
    warm.close().await;
    let profiler = match profile {
        Some((port, _)) => Some(e2e::profiler::Profiler::start(port, 100).await?),
        None => None,
    };
    let mut us = Vec::new();
    let mut upgrade_us = Vec::new();
    // Split into rejoins (a session that joined this room before: its verification may be
    // reused) and first joins (verified in full), by the sample's place, so a server that
    // predates the reuse is split the same way; `reused` counts what the room says it reused.
    let (mut rejoin_us, mut first_us, mut reused) = (Vec::new(), Vec::new(), 0);
    for j in 0..samples {
        let session = &sessions[j % sessions.len()];
        let start = Instant::now();
        let hello = e2e::Session::hello_frame(None);
        let mut socket = if hello_frame {
            session.connect_batched(&room.slug).await?
        } else {
            session.connect_with_first_frame(&room.slug, &hello).await?
        };
        upgrade_us.push(start.elapsed().as_micros() as u64);
        let joined = if hello_frame {
            socket.hello(None).await?
        } else {
            socket.joined().await?
        };
        let took = start.elapsed().as_micros() as u64;
        us.push(took);
        // Session 0 joined for the warm-up.
        if j == 0 || j >= sessions.len() {
            rejoin_us.push(took);
        } else {
            first_us.push(took);
        }
        reused += usize::from(socket.reused_verification());
        if joined.head != size {
            bail!("joined a room of {size} messages at head {}", joined.head);
        }
        socket.close().await;
    }
    if let (Some(profiler), Some((_, dir))) = (profiler, profile) {
        write_profile(profiler, dir, &format!("joins-{size}")).await?;
    }
    Ok(json!({
        "server": "ours",
        "history_messages": size,
        "joins": samples,
        "join_ms": latency_json(us),
        "upgrade_ms": latency_json(upgrade_us),
        "reconnects": rejoin_us.len(),
        "reconnect_join_ms": latency_json(rejoin_us),
        "reused_verifications": reused,
        "first_joins": first_us.len(),
        "first_join_ms": latency_json(first_us),
        "hello": if hello_frame { "a frame after the upgrade" } else { "in the socket URL, as the app sends it" },
        "measured": "connect start (TCP + upgrade with session and room checks, then the hello) to the first History frame; reconnects: a session that joined this room before (the room may reuse its verification), first joins: a session's first in this room, verified in full",
    }))
}

async fn time_joins_peer(peer: &PeerServer, samples: usize) -> Result<Value> {
    let room = e2e::unique("join");
    let (mut warm, _) = tokio_tungstenite::connect_async(peer.ws_url(&room)).await?;
    warm.next().await;
    let _ = warm.close(None).await;
    let mut us = Vec::new();
    for _ in 0..samples {
        let start = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(peer.ws_url(&room)).await?;
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {}
            other => bail!("the peer's first frame: {other:?}"),
        }
        us.push(start.elapsed().as_micros() as u64);
        let _ = ws.close(None).await;
    }
    Ok(json!({
        "server": "peer",
        "history_messages": 0,
        "joins": samples,
        "join_ms": latency_json(us),
        "measured": "connect start (TCP + upgrade) to the first frame (`all`)",
    }))
}

/// The burst and join-cost sections: this server with and without coalescing, and the peer,
/// in one run.
async fn run_burst_sections(
    args: &Args,
    server: &DevServer,
    sessions: &[Session],
    report: &mut Value,
) -> Result {
    let peer = match peer_paths(args) {
        Some((dir, node)) => {
            say("starting the peer (durable-chat-template) under its wrangler dev");
            Some(PeerServer::start(&dir, &node).await?)
        }
        None => {
            say("no peer (--peer-dir/--peer-node or PEER_DIR/PEER_NODE): ours only");
            None
        }
    };
    if args.runs(Section::Burst) {
        let mut runs = Vec::new();
        for &(clients, messages) in &args.bursts {
            let mut targets = vec![
                Target::Ours {
                    sessions,
                    batch: false,
                },
                Target::Ours {
                    sessions,
                    batch: true,
                },
            ];
            if let Some(peer) = &peer {
                targets.push(Target::Peer(peer));
            }
            for target in targets {
                say(format!(
                    "burst: {} with {clients} clients, {messages} messages from {} senders",
                    target.name(),
                    args.burst_senders
                ));
                runs.push(
                    run_burst(
                        target,
                        server,
                        clients,
                        args.burst_senders,
                        messages,
                        args.cpu_profile.as_deref(),
                    )
                    .await?,
                );
                // Let the previous room's closes settle before the next measurement.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        // On stderr too: a later section's failure must not lose these.
        say(format!("burst results: {}", json!(runs)));
        report["burst"] = json!(runs);
    }
    if args.runs(Section::Joincost) {
        let mut joins = Vec::new();
        if let Some(peer) = &peer {
            say("join cost: the peer's empty room");
            joins.push(time_joins_peer(peer, args.join_samples).await?);
        }
        for &size in &args.joincost_sizes {
            say(format!("join cost: ours at {size} messages"));
            let profile = args
                .cpu_profile
                .as_deref()
                .map(|dir| (server.inspector_port(), dir));
            joins.push(
                time_joins_ours(sessions, size, args.join_samples, args.hello_frame, profile)
                    .await?,
            );
        }
        report["joincost"] = json!(joins);
    }
    Ok(())
}

/// How long a crowd's fan-out may take before it reports what arrived.
const CROWD_DEADLINE: Duration = Duration::from_secs(120);
/// The crowd sits idle this long after the joins (trailing presence counts arrive here).
const CROWD_IDLE: Duration = Duration::from_secs(2);

/// The crowd section: for each size, a fresh server of ours (and of the peer's) with that
/// many people in one room. Each socket is a file here, and the servers (which inherit this
/// process's limit) hold one or two more per socket, so the limit is raised first.
async fn run_crowd(args: &Args) -> Result<Value> {
    let largest = args.crowd.iter().copied().max().unwrap_or(0) as u64;
    let limit = e2e::crowd::raise_open_files(largest * 3 + 1024)?;
    if limit < largest + 256 {
        bail!(
            "{largest} sockets need more open files than this process may hold ({limit}, the \
             hard limit): raise it (ulimit -Hn) and run again"
        );
    }
    say(format!("crowd: open files limit {limit}"));
    let peer = peer_paths(args);
    if peer.is_none() {
        say("crowd: no peer (--peer-dir/--peer-node or PEER_DIR/PEER_NODE): ours only");
    }
    let mut runs = Vec::new();
    let mut table = Vec::new();
    for &people in &args.crowd {
        say(format!("crowd: {people} people, ours"));
        let ours = crowd_ours(args, people).await?;
        table.push(crowd_rows("ours", people, &ours));
        let theirs = match &peer {
            Some((dir, node)) => {
                // Ours is stopped: the peer has the machine to itself.
                say(format!("crowd: {people} people, the peer"));
                let theirs = crowd_peer(args, people, dir, node).await?;
                table.push(crowd_rows("peer", people, &theirs));
                Some(theirs)
            }
            None => None,
        };
        // On stderr too: a later size's failure must not lose these.
        say(format!("crowd {people}: ours {ours}"));
        if let Some(theirs) = &theirs {
            say(format!("crowd {people}: peer {theirs}"));
        }
        runs.push(json!({ "people": people, "ours": ours, "peer": theirs }));
    }
    // Markdown, unprefixed, for the README.
    say("crowd summary, joins:");
    eprintln!("{CROWD_JOINS_HEAD}");
    for (row, _) in &table {
        eprintln!("{row}");
    }
    say("crowd summary, fan-out and memory:");
    eprintln!("{CROWD_FANOUT_HEAD}");
    for (_, row) in &table {
        eprintln!("{row}");
    }
    Ok(json!({
        "open_files_limit": limit,
        "concurrency": args.crowd_concurrency,
        "burst": { "messages": args.crowd_burst, "senders": args.crowd_senders },
        "connected": if args.crowd_via_proxy {
            "through wrangler's dev proxy (the public port)"
        } else {
            "to the runtime's own entry socket, past wrangler's dev proxy (which holds ~8 files \
             per WebSocket and runs out at ~3,000 under this machine's 20,000)"
        },
        "measured": "one socket per person, each a distinct guest (minted through the test-only \
            POST /api/test/guests); ours join as the app does (batched frames, the hello in the \
            socket URL), the peer's connect to a fresh room. join: upgrade start to the join \
            answer (ours: the welcome; the peer: its `all` frame), with `concurrency` upgrades \
            in flight; rejoin: every socket closed, then all again within the minute. \
            frames_during_joins: WebSocket frames a socket received after the one that carried \
            its join answer, until the last socket joined. Fan-out: send time to arrival at \
            each socket (the senders' own copies too). CPU and RSS: `server` is the whole \
            wrangler dev process group (node, esbuild, the proxy's and the runtime's workerd), \
            `runtime` the workerd that runs the Worker and its Durable Objects. Ours runs with \
            the dev inspector's network events off (Network.disable): wrangler forwards each \
            to node as an HTTP request and keeps it in memory, which breaks a dev server at \
            ~3,000 first joins; the peer's joins make no subrequests",
        "runs": runs,
    }))
}

const CROWD_JOINS_HEAD: &str = "| people | server | first join p50 / p99 | all joined (s) | runtime CPU per join | frames per socket during joins, mean / max | rejoin p50 / p99 | all rejoined (s) | one join into the full room, p50 / p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |";
const CROWD_FANOUT_HEAD: &str = "| people | server | one message p50 / p99 / max | burst p50 / p99 / max | every socket got the burst | runtime CPU: one / burst (s) | runtime RSS before → after joins (MB) | bytes per idle socket, runtime |\n| --- | --- | --- | --- | --- | --- | --- | --- |";

fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|x| {
            if x < 10.0 {
                format!("{x:.1}")
            } else {
                format!("{x:.0}")
            }
        })
        .unwrap_or_else(|| "–".into())
}

/// The crowd summary's rows for one run: joins, and fan-out and memory.
fn crowd_rows(server: &str, people: usize, run: &Value) -> (String, String) {
    let triple = |v: &Value| format!("{} / {} / {}", ms(&v["p50"]), ms(&v["p99"]), ms(&v["max"]));
    let frames = &run["frames_during_joins"];
    let rejoin = &run["rejoin"];
    let joins = format!(
        "| {people} | {server} | {} / {} ms | {} | {} ms | {} / {} | {} / {} ms | {} | {} / {} ms |",
        ms(&run["join_ms"]["p50"]),
        ms(&run["join_ms"]["p99"]),
        run["join_seconds"],
        ms(&run["runtime_cpu_ms_per_join"]),
        frames["mean"],
        frames["max"],
        ms(&rejoin["join_ms"]["p50"]),
        ms(&rejoin["join_ms"]["p99"]),
        rejoin["join_seconds"],
        ms(&run["join_into_full_room_one_at_a_time"]["join_ms"]["p50"]),
        ms(&run["join_into_full_room_one_at_a_time"]["join_ms"]["p99"]),
    );
    let cpu = &run["runtime_cpu_s"];
    let rss = &run["rss_mb"];
    let fan_out = format!(
        "| {people} | {server} | {} ms | {} ms | {} | {} / {} | {} → {} | {} |",
        triple(&run["one_message"]["latency_ms"]),
        triple(&run["burst"]["latency_ms"]),
        run["burst"]["every_socket_got_every_message"],
        cpu["one_message"],
        cpu["burst"],
        ms(&rss["runtime_before_joins"]),
        ms(&rss["runtime_after_joins"]),
        run["bytes_per_idle_socket"]["runtime"],
    );
    (joins, fan_out)
}

/// Ours at `people`: a server with guest minting on and the per-user limits lifted (the
/// burst's senders send faster than a person may), `people` guests, one room.
async fn crowd_ours(args: &Args, people: usize) -> Result<Value> {
    let lifted = "1000000";
    let server = DevServer::start(
        DevOptions::default()
            .var("BENCH_GUESTS", "1")
            .var("SEND_BURST", lifted)
            .var("SEND_PER_SECOND", lifted)
            .var("FRAME_BURST", lifted)
            .var("FRAME_PER_SECOND", lifted),
    )
    .await?;
    let run = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let minting = Instant::now();
        // The crowd, and a few more who join the full room one at a time.
        let guests = e2e::crowd::mint_guests(&server, people + LATECOMERS, "crowd").await?;
        let mint_seconds = minting.elapsed().as_secs_f64();
        let owner = e2e::crowd::session_of(&server, &guests[0]).await?;
        let room = owner.new_room().await?;
        let pgid = server.pgid().context("the server is not running")?;
        let runtime = e2e::crowd::runtime(pgid, server.port(), "/api/health").await?;
        let base = if args.crowd_via_proxy {
            server.url()
        } else {
            runtime.base.clone()
        };
        let target = e2e::crowd::Target::ours_at(&base, &room.slug, guests);
        e2e::crowd::quiet_dev_inspector(server.inspector_port()).await?;
        let profile = args
            .cpu_profile
            .as_deref()
            .map(|dir| (server.inspector_port(), dir));
        let mut run = measure_crowd(args, &target, people, pgid, runtime.pid, profile).await?;
        run["mint_seconds"] = json!(round2(mint_seconds));
        Ok::<Value, e2e::Error>(run)
    };
    run.await.map_err(|e| {
        e.context(format!(
            "wrangler dev's last output:\n{}",
            server.log_tail()
        ))
    })
}

/// The peer at `people`: a fresh `wrangler dev` of the template, one fresh room.
async fn crowd_peer(
    args: &Args,
    people: usize,
    dir: &std::path::Path,
    node: &std::path::Path,
) -> Result<Value> {
    let peer = PeerServer::start(dir, node).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let room = e2e::unique("crowd");
    let url = if args.crowd_via_proxy {
        peer.ws_url(&room)
    } else {
        let public = public_port(&peer)?;
        let runtime = e2e::crowd::runtime(peer.pgid(), public, "/").await?;
        format!(
            "{}/parties/chat/{room}",
            runtime.base.replacen("http://", "ws://", 1)
        )
    };
    let target = e2e::crowd::Target::Peer { url };
    let runtime = e2e::crowd::runtime(peer.pgid(), public_port(&peer)?, "/").await?;
    measure_crowd(args, &target, people, peer.pgid(), runtime.pid, None).await
}

/// Guests beyond the crowd who join the full room one at a time.
const LATECOMERS: usize = 20;

/// How long the crowd's sockets are closed before they all rejoin.
const REJOIN_AFTER: Duration = Duration::from_secs(3);

/// Frames per second a socket received while the others joined, over the sockets present
/// for at least a second of it: whether what a socket hears grows with the room, or only with
/// how long the joins take (a count is sent at most once a second).
fn frame_rate_json(stats: &[e2e::crowd::SocketStats], joins_ended_us: u64) -> Value {
    let mut rates: Vec<f64> = stats
        .iter()
        .filter_map(|s| {
            let present = joins_ended_us.saturating_sub(s.joined_at_us) as f64 / 1e6;
            (present >= 1.0).then(|| f64::from(s.frames[0]) / present)
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    json!({
        "sockets": rates.len(),
        "mean": round2(rates.iter().sum::<f64>() / rates.len().max(1) as f64),
        "max": round2(rates.last().copied().unwrap_or(0.0)),
    })
}

/// Seconds from the first upgrade until a tenth, two tenths, … of the crowd had joined: whether
/// a join costs more as the room fills.
fn joined_by_tenth(stats: &[e2e::crowd::SocketStats], started_us: u64) -> Vec<f64> {
    let mut at: Vec<u64> = stats.iter().map(|s| s.joined_at_us).collect();
    at.sort_unstable();
    (1..=10)
        .filter_map(|k| {
            let i = (at.len() * k / 10).checked_sub(1)?;
            Some(round2(at.get(i)?.saturating_sub(started_us) as f64 / 1e6))
        })
        .collect()
}

/// Frames per socket in `phase`: mean, median and most.
fn frames_json(stats: &[e2e::crowd::SocketStats], phase: e2e::crowd::Phase) -> Value {
    let mut counts: Vec<u64> = stats
        .iter()
        .map(|s| u64::from(s.frames[phase as usize]))
        .collect();
    counts.sort_unstable();
    json!({
        "mean": round2(counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64),
        "p50": counts.get(counts.len() / 2).copied().unwrap_or(0),
        "max": counts.last().copied().unwrap_or(0),
    })
}

/// The peer's public port (wrangler's proxy), read from its socket URL.
fn public_port(peer: &PeerServer) -> Result<u16> {
    peer.ws_url("")
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .context("the peer's port")
}

/// Joins, idles, one message, a burst, then everyone rejoins; server CPU and memory around
/// each (the whole `wrangler dev` process group, and `runtime`, the workerd process that runs
/// the Worker and its Durable Objects).
async fn measure_crowd(
    args: &Args,
    target: &e2e::crowd::Target,
    people: usize,
    pgid: u32,
    runtime: u32,
    profile: Option<(u16, &std::path::Path)>,
) -> Result<Value> {
    use e2e::crowd::{own_cpu_ms, Crowd, Phase, Usage};
    let start_profile = || async {
        match profile {
            // A sample per ms: the joins of 5,000 take many seconds.
            Some((port, _)) => e2e::profiler::Profiler::start(port, 1_000).await.map(Some),
            None => Ok(None),
        }
    };
    let finish_profile = |profiler: Option<e2e::profiler::Profiler>, name: String| async move {
        match (profiler, profile) {
            (Some(profiler), Some((_, dir))) => write_profile(profiler, dir, &name).await,
            _ => Ok(()),
        }
    };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let before = Usage::of_group(pgid);
    let client_before = own_cpu_ms();
    let profiler = start_profile().await?;
    let joins_started_us = e2e::crowd::now_us();
    let mut crowd = Crowd::join(target, people, args.crowd_concurrency).await?;
    let joined = Usage::of_group(pgid);
    let client_joins = own_cpu_ms() - client_before;
    crowd.enter(Phase::Idle);
    finish_profile(profiler, format!("crowd-joins-{people}")).await?;
    say(format!(
        "crowd: {} of {people} joined in {:.1} s{}",
        crowd.len(),
        crowd.join_seconds,
        crowd
            .failures
            .first()
            .map(|f| format!("; first failure: {f}"))
            .unwrap_or_default()
    ));
    if crowd.is_empty() {
        bail!("no socket joined: {:?}", crowd.failures.first());
    }
    tokio::time::sleep(CROWD_IDLE).await;
    let idle = Usage::of_group(pgid);

    let profiler = start_profile().await?;
    let one = crowd.fan_out(Phase::One, &[0], 1, CROWD_DEADLINE).await?;
    let after_one = Usage::of_group(pgid);
    finish_profile(profiler, format!("crowd-one-{people}")).await?;

    let senders = args.crowd_senders.min(crowd.len());
    // Spread over the crowd (early and late joiners alike).
    let senders: Vec<usize> = (0..senders).map(|k| k * crowd.len() / senders).collect();
    let per_sender = args.crowd_burst.div_ceil(senders.len());
    let profiler = start_profile().await?;
    let client_before_burst = own_cpu_ms();
    let burst = crowd
        .fan_out(Phase::Burst, &senders, per_sender, CROWD_DEADLINE)
        .await?;
    let client_burst = own_cpu_ms() - client_before_burst;
    let after_burst = Usage::of_group(pgid);
    finish_profile(profiler, format!("crowd-burst-{people}")).await?;

    // A join into the full room with nothing else joining: the cost of one join, not the
    // queue of thousands.
    let late = Crowd::join_from(target, people, LATECOMERS, 1).await?;
    let late_stats = late.stats();
    let latecomers = json!({
        "joined": late.len(),
        "join_failures": late.failures.iter().take(3).collect::<Vec<_>>(),
        "join_ms": latency_json(late_stats.iter().map(|s| s.join_us).collect()),
    });
    late.close().await;

    let stats = crowd.stats();
    let joins_ended_us = crowd.joins_ended_us;
    let failures = crowd.failures.clone();
    let joined_sockets = crowd.len();
    let join_seconds = crowd.join_seconds;
    crowd.close().await;

    // Everyone again within the minute, as after a deploy or a network blip: ours admits
    // these on the verification the room remembers (no D1); the peer's are plain connects.
    say("crowd: every socket closed; all rejoin");
    tokio::time::sleep(REJOIN_AFTER).await;
    let before_rejoin = Usage::of_group(pgid);
    let again = Crowd::join(target, people, args.crowd_concurrency).await?;
    let after_rejoin = Usage::of_group(pgid);
    let again_stats = again.stats();
    let rejoin = json!({
        "joined": again.len(),
        "join_failures": again.failures.len(),
        "first_join_failures": again.failures.iter().take(3).collect::<Vec<_>>(),
        "join_ms": latency_json(again_stats.iter().map(|s| s.join_us).collect()),
        "join_seconds": round2(again.join_seconds),
        "joins_per_s": (again.len() as f64 / again.join_seconds.max(1e-9)).round(),
        "frames_during_joins": frames_json(&again_stats, Phase::Joining),
        "server_cpu_s": round2(after_rejoin.cpu_ms_since(&before_rejoin, None) / 1000.0),
        "runtime_cpu_ms_per_join": round2(
            after_rejoin.cpu_ms_since(&before_rejoin, Some(runtime)) / again.len().max(1) as f64
        ),
    });
    again.close().await;

    let n = stats.len().max(1) as f64;
    let join_us: Vec<u64> = stats.iter().map(|s| s.join_us).collect();
    let frames = |phase: Phase| frames_json(&stats, phase);
    let mut kinds: Vec<(String, u64)> = Vec::new();
    for s in &stats {
        for (kind, count) in &s.during_joins {
            match kinds.iter_mut().find(|(k, _)| k == kind) {
                Some((_, total)) => *total += u64::from(*count),
                None => kinds.push((kind.clone(), u64::from(*count))),
            }
        }
    }
    kinds.sort();
    let kinds: serde_json::Map<String, Value> = kinds
        .into_iter()
        .map(|(k, total)| (k, json!(round2(total as f64 / n))))
        .collect();
    let mb = |kib: u64| round2(kib as f64 / 1024.0);
    let per_socket = |pid: Option<u32>| {
        let grown = idle.rss_kib(pid) as f64 - before.rss_kib(pid) as f64;
        (grown * 1024.0 / joined_sockets.max(1) as f64).round()
    };
    let cpu_s = |after: &Usage, since: &Usage| round2(after.cpu_ms_since(since, None) / 1000.0);
    let runtime_cpu_s =
        |after: &Usage, since: &Usage| round2(after.cpu_ms_since(since, Some(runtime)) / 1000.0);
    let fan_out_json = |f: e2e::crowd::FanOut| {
        json!({
            "deliveries": f.deliveries,
            "expected": f.expected,
            "sockets": f.sockets,
            "complete_sockets": f.complete_sockets,
            "every_socket_got_every_message": f.complete_sockets == f.sockets && !f.timed_out,
            "latency_ms": latency_json(f.latencies_us),
            "send_seconds": round2(f.send_seconds),
            "seconds": round2(f.seconds),
            "errors": f.errors.iter().take(5).collect::<Vec<_>>(),
        })
    };
    Ok(json!({
        "people": people,
        "loadavg_before": loadavg.trim(),
        "joined": joined_sockets,
        "join_failures": failures.len(),
        "first_join_failures": failures.iter().take(3).collect::<Vec<_>>(),
        "join_ms": latency_json(join_us),
        "join_seconds": round2(join_seconds),
        "joins_per_s": (joined_sockets as f64 / join_seconds.max(1e-9)).round(),
        "frames_during_joins": frames(Phase::Joining),
        "frames_per_second_present_during_joins": frame_rate_json(&stats, joins_ended_us),
        "joined_by_tenth_s": joined_by_tenth(&stats, joins_started_us),
        "messages_during_joins_per_socket_by_type": kinds,
        "frames_while_idle": frames(Phase::Idle),
        "rejoin": rejoin,
        "join_into_full_room_one_at_a_time": latecomers,
        "one_message": fan_out_json(one),
        "burst": fan_out_json(burst),
        "server_cpu_s": {
            "joins": cpu_s(&joined, &before),
            "idle": cpu_s(&idle, &joined),
            "one_message": cpu_s(&after_one, &idle),
            "burst": cpu_s(&after_burst, &after_one),
        },
        "runtime_cpu_s": {
            "joins": runtime_cpu_s(&joined, &before),
            "idle": runtime_cpu_s(&idle, &joined),
            "one_message": runtime_cpu_s(&after_one, &idle),
            "burst": runtime_cpu_s(&after_burst, &after_one),
        },
        "server_cpu_ms_per_join": round2(joined.cpu_ms_since(&before, None) / joined_sockets.max(1) as f64),
        "runtime_cpu_ms_per_join": round2(joined.cpu_ms_since(&before, Some(runtime)) / joined_sockets.max(1) as f64),
        "client_cpu_s": { "joins": round2(client_joins / 1000.0), "burst": round2(client_burst / 1000.0) },
        "rss_mb": {
            "before_joins": mb(before.rss_kib(None)),
            "after_joins": mb(idle.rss_kib(None)),
            "after_burst": mb(after_burst.rss_kib(None)),
            "runtime_before_joins": mb(before.rss_kib(Some(runtime))),
            "runtime_after_joins": mb(idle.rss_kib(Some(runtime))),
            "runtime_after_burst": mb(after_burst.rss_kib(Some(runtime))),
        },
        "bytes_per_idle_socket": {
            "all": per_socket(None),
            "runtime": per_socket(Some(runtime)),
        },
        "processes_after_joins": idle.processes.iter().map(|p| json!({
            "name": p.name, "runtime": p.pid == runtime, "rss_mb": mb(p.rss_kib),
        })).collect::<Vec<_>>(),
    }))
}

// ---------------------------------------------------------------------------------------------
// upload: files through the Worker (edge/src/files.rs) into the local R2.

/// The runtime's resident memory (the `workerd` processes of the server's group), in KiB.
fn workerd_rss_kib(server: &DevServer) -> u64 {
    let Some(pgid) = server.pgid() else {
        return 0;
    };
    e2e::server::live_group_members(pgid)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "workerd")
        })
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// The isolate's JS heap in use, in KiB (`Runtime.getHeapUsage`; wasm memory is not in it).
async fn js_heap_kib(server: &DevServer) -> Option<f64> {
    let mut inspector = e2e::profiler::Profiler::attach(server.inspector_port())
        .await
        .ok()?;
    let usage = inspector
        .call("Runtime.getHeapUsage", json!({}))
        .await
        .ok()?;
    inspector.close().await;
    usage["usedSize"].as_f64().map(|b| round2(b / 1024.0))
}

/// Announces and stores a file; returns the attachment and the PUT's own time.
async fn bench_upload(
    session: &Session,
    slug: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(shared::protocol::Attachment, Duration)> {
    let begin = session
        .post(
            &format!("/api/rooms/{slug}/uploads"),
            &shared::protocol::http::BeginUpload {
                upload_id: e2e::unique("bench"),
                name: name.into(),
                size: bytes.len() as u64,
                width: None,
                height: None,
                duration_ms: None,
            },
        )
        .await?;
    if begin.status().as_u16() != 200 {
        bail!("begin upload: {} {}", begin.status(), begin.text().await?);
    }
    let ticket: shared::protocol::http::UploadTicket = begin.json().await?;
    let started = Instant::now();
    let put = session
        .request(
            reqwest::Method::PUT,
            &format!("/api/rooms/{slug}/uploads/{}", ticket.id),
        )
        .timeout(Duration::from_secs(300))
        .body(bytes)
        .send()
        .await?;
    let status = put.status().as_u16();
    let text = put.text().await?;
    let took = started.elapsed();
    if status != 200 {
        bail!("PUT upload: {status} {text}");
    }
    Ok((serde_json::from_str(&text)?, took))
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    round2(bytes as f64 / 1_048_576.0 / took.as_secs_f64())
}

/// A JPEG of `size` bytes: headers with an Exif segment (which the scrubber blanks), then scan
/// bytes it streams through.
fn big_jpeg(size: usize) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x12];
    jpeg.extend_from_slice(b"Exif\0\0GPS 51.5 N");
    jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    let mut x: u32 = 0x1234_5678;
    while jpeg.len() < size - 2 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Entropy-coded data never holds a bare 0xFF.
        jpeg.push((x as u8).min(0xFE));
    }
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

fn noise(size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    // A leading NUL keeps the sniffer from calling it text or anything else.
    bytes.push(0);
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    bytes
}

/// Uploads `bytes` while sampling workerd's RSS every 20 ms; returns the time and the peak.
async fn upload_sampling_memory(
    server: &DevServer,
    session: &Session,
    slug: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(Duration, u64)> {
    let mut peak = workerd_rss_kib(server);
    let upload = bench_upload(session, slug, name, bytes);
    tokio::pin!(upload);
    loop {
        tokio::select! {
            done = &mut upload => {
                let (_, took) = done?;
                return Ok((took, peak.max(workerd_rss_kib(server))));
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                peak = peak.max(workerd_rss_kib(server));
            }
        }
    }
}

async fn run_upload(args: &Args) -> Result<Value> {
    let model_binary = e2e::model::binary_path();
    let model = if model_binary.is_file() {
        say("upload: starting the local model server (classifier)");
        Some(e2e::model::ModelServer::start().await?)
    } else {
        say("upload: no model server built: no classification numbers");
        None
    };
    let mut options = DevOptions::default().var("UPLOADS_PER_MINUTE", 1000);
    if let Some(model) = &model {
        options = options.var("CLASSIFIER_URL", model.base_url());
    }
    say("upload: starting wrangler dev");
    let server = DevServer::start(options).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ann = Session::create(&server, "Ann").await?;
    let bob = Session::create(&server, "Bob").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    let (mut b, _) = bob.join(slug, None).await?;
    let size = (args.upload_mb * 1_048_576) as usize;

    // Throughput, and the runtime's memory while a large file streams through it.
    let idle_rss = workerd_rss_kib(&server);
    let heap_before = js_heap_kib(&server).await;
    let mut runs = Vec::new();
    for (kind, bytes) in [("octet", noise(size)), ("jpeg", big_jpeg(size))] {
        for run in 0..args.upload_runs {
            say(format!(
                "upload: {kind} {} MB, run {}",
                args.upload_mb,
                run + 1
            ));
            let before = workerd_rss_kib(&server);
            let (took, peak) =
                upload_sampling_memory(&server, &ann, slug, &format!("big.{kind}"), bytes.clone())
                    .await?;
            runs.push(json!({
                "kind": kind,
                "mb_per_s": mb_per_s(size, took),
                "ms": took.as_millis() as u64,
                "workerd_rss_before_kib": before,
                "workerd_rss_peak_kib": peak,
                "workerd_rss_growth_kib": peak.saturating_sub(before),
            }));
        }
    }
    let heap_after = js_heap_kib(&server).await;

    // Downloading it back (the Worker hands R2's stream to the runtime).
    let (big, _) = bench_upload(&ann, slug, "big.bin", noise(size)).await?;
    let started = Instant::now();
    let body = ann
        .request(
            reqwest::Method::GET,
            &format!("/api/rooms/{slug}/files/{}", big.id),
        )
        .timeout(Duration::from_secs(300))
        .send()
        .await?
        .bytes()
        .await?;
    let download = mb_per_s(body.len(), started.elapsed());

    // Upload done → the other member has the thumbnail: thumb PUT, send, event, thumb GET.
    let png = e2e::fixture_image_bytes("coffee-224.png")?;
    let mut thumb_ms = Vec::new();
    for _ in 0..5 {
        let (stored, _) = bench_upload(&ann, slug, "small.bin", noise(64 * 1024)).await?;
        let done = Instant::now();
        let thumb = ann
            .request(
                reqwest::Method::PUT,
                &format!("/api/rooms/{slug}/uploads/{}/thumb", stored.id),
            )
            .body(png.clone())
            .send()
            .await?;
        if thumb.status().as_u16() != 204 {
            bail!("thumb: {} {}", thumb.status(), thumb.text().await?);
        }
        let client_id = e2e::unique("m");
        a.send_message(&ClientMessage::Send {
            client_id: client_id.clone(),
            text: String::new(),
            attachments: vec![stored.id.clone()],
        })
        .await?;
        a.await_ack(&client_id).await?;
        let id = stored.id.clone();
        b.expect_until(Duration::from_secs(10), |m| match m {
            ServerMessage::Event { event } => match &event.kind {
                EventKind::Message { attachments, .. }
                    if attachments.iter().any(|x| x.id == id && x.thumb) =>
                {
                    Some(())
                }
                _ => None,
            },
            _ => None,
        })
        .await?;
        let got = bob
            .get(&format!("/api/rooms/{slug}/files/{}/thumb", stored.id))
            .await?;
        if got.status().as_u16() != 200 {
            bail!("thumb GET: {}", got.status());
        }
        got.bytes().await?;
        thumb_ms.push(done.elapsed().as_secs_f64() * 1000.0);
    }

    // Classification: the PUT of a photo with and without the classifier's time in it.
    let mut classify = Value::Null;
    if model.is_some() {
        let mut per_image = Vec::new();
        for name in [
            "chelsea.png",
            "coffee.png",
            "chelsea-224.png",
            "coffee-224.png",
        ] {
            let bytes = std::fs::read(
                e2e::repo_root()
                    .join("../shared/fixtures/images")
                    .join(name),
            )?;
            let mut times = Vec::new();
            let mut top = None;
            for _ in 0..args.upload_runs {
                let (stored, took) = bench_upload(&ann, slug, name, bytes.clone()).await?;
                top = stored
                    .labels
                    .first()
                    .map(|l| format!("{} {}", l.name, l.score));
                times.push(took.as_secs_f64() * 1000.0);
            }
            per_image.push(json!({
                "image": name,
                "bytes": bytes.len(),
                "put_ms": times.iter().map(|t| round2(*t)).collect::<Vec<_>>(),
                "top_label": top,
            }));
        }
        // The Worker logs how long each description took (`file_described`).
        let described: Vec<u64> = server
            .log_tail()
            .lines()
            .filter(|l| l.contains("file_described"))
            .filter_map(|l| {
                let json = &l[l.find('{')?..];
                serde_json::from_str::<Value>(json).ok()?["ms"].as_u64()
            })
            .collect();
        classify = json!({ "per_image": per_image, "worker_classify_ms": described });
    }
    a.close().await;
    b.close().await;
    Ok(json!({
        "file_mb": args.upload_mb,
        "workerd_rss_idle_kib": idle_rss,
        "js_heap_kib": { "before": heap_before, "after": heap_after },
        "uploads": runs,
        "download_mb_per_s": download,
        "thumb_visible_ms": thumb_ms.iter().map(|t| round2(*t)).collect::<Vec<_>>(),
        "classify": classify,
        "measured": "one wrangler dev on this machine, client in the same process; the \
                     upload's time is the PUT alone (announcement excluded)",
    }))
}

/// The edge cache's hit rate (see the module docs): counts `X-Cache` per kind of read.
async fn run_cache(server: &DevServer) -> Result<Value> {
    const READERS: usize = 20;
    const CARDS: usize = 10;
    const ROUNDS: usize = 20;
    let mut owners = Vec::new();
    for i in 0..CARDS {
        let owner = Session::create(server, &format!("Card {i}")).await?;
        // A card is a profile: a guest who never saved one has none (404, never cached).
        let mut profile: shared::profile::Profile = owner.get("/api/profile").await?.json().await?;
        profile.bio = format!("card {i}");
        owner
            .request(reqwest::Method::PUT, "/api/profile")
            .json(&profile)
            .send()
            .await?;
        owners.push(owner);
    }
    owners[0].new_room().await?;
    let mut readers = Vec::new();
    for i in 0..READERS {
        readers.push(Session::create(server, &format!("Reader {i}")).await?);
    }
    let mut counts: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut count = |kind: &'static str, response: &reqwest::Response| {
        let hit = response
            .headers()
            .get("X-Cache")
            .is_some_and(|v| v.as_bytes() == b"hit");
        let entry = counts.entry(kind).or_default();
        entry.0 += u64::from(hit);
        entry.1 += 1;
    };
    for round in 0..ROUNDS {
        if round == ROUNDS / 2 {
            // A change purges its card: the next reads miss once.
            let mut profile: shared::profile::Profile =
                owners[0].get("/api/profile").await?.json().await?;
            profile.bio = format!("changed in round {round}");
            owners[0]
                .request(reqwest::Method::PUT, "/api/profile")
                .json(&profile)
                .send()
                .await?;
        }
        for reader in &readers {
            for owner in &owners {
                let response = reader
                    .get(&format!("/api/users/{}", owner.user_id()))
                    .await?;
                count("profile_card", &response);
            }
            let response = reader.get("/api/rooms").await?;
            count("public_rooms", &response);
        }
    }
    let mut report = json!({
        "readers": READERS,
        "cards": CARDS,
        "rounds": ROUNDS,
        "measured": "hits / reads by X-Cache, on one wrangler dev (one cache, as one location)",
    });
    for (kind, (hits, reads)) in counts {
        report[kind] = json!({
            "reads": reads,
            "hits": hits,
            "hit_rate": (hits as f64 / reads.max(1) as f64 * 1000.0).round() / 1000.0,
        });
        say(format!("cache: {kind} {hits}/{reads} hits"));
    }
    Ok(report)
}

/// The admin pages the ops section loads, and what on each says its content is rendered: the
/// analytics tiles, the performance charts, a log row, a setting. A `.field-error` alert with
/// no content after 3 s ends the wait with its text.
const ADMIN_PAGES: [(&str, &str); 4] = [
    ("/analytics", ".analytics-page .tiles"),
    (
        "/performance",
        "section[aria-labelledby=\"performance-title\"] .charts",
    ),
    ("/logs", ".logs-page tr.log-row"),
    ("/settings", ".settings-page .setting"),
];

/// Installed in every new document before the app's scripts: notes `performance.now()` (ms
/// since the navigation started) when the page's content marker first enters the DOM, and the
/// next animation frame after it (painted).
fn rendered_marker_script() -> String {
    let marks: serde_json::Map<String, Value> = ADMIN_PAGES
        .iter()
        .map(|(path, css)| ((*path).to_owned(), json!(css)))
        .collect();
    format!(
        r#"
        (() => {{
            const css = {marks}[location.pathname];
            if (!css) return;
            const look = () => {{
                if (window.__benchRendered != null) return;
                const error = document.querySelector('[role="alert"].field-error');
                if (error && window.__benchError == null) {{
                    window.__benchError = error.textContent || 'an error';
                    window.__benchErrorAt = performance.now();
                }}
                if (document.querySelector(css)) {{
                    window.__benchRendered = performance.now();
                    requestAnimationFrame(() => {{ window.__benchPainted = performance.now(); }});
                    observer.disconnect();
                }}
            }};
            const observer = new MutationObserver(look);
            observer.observe(document, {{ childList: true, subtree: true }});
        }})();
        "#,
        marks = Value::Object(marks)
    )
}

/// A fresh `SETTINGS_KEY`: 32 random bytes in base64.
fn settings_key() -> String {
    use base64::Engine as _;
    let hex = e2e::random_hex(32);
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The ops section (issue 12; see the module docs): analytics' cost on the send path, the
/// logging path's sustained KV writes, and the admin pages' load times.
async fn run_ops(args: &Args) -> Result<Value> {
    let started = Instant::now();
    let lifted = "1000000";
    let options = DevOptions::default()
        .var("SEND_BURST", lifted)
        .var("SEND_PER_SECOND", lifted)
        .var("FRAME_BURST", lifted)
        .var("FRAME_PER_SECOND", lifted)
        .var("DEV_LOGIN", "true")
        .var("LOGS_TEST_FAILURES", "1")
        // The settings page as a configured install has it (saving available).
        .var("SETTINGS_KEY", settings_key())
        .with_app();
    say("ops: starting wrangler dev (rooms with metrics)");
    let with = DevServer::start(options.clone()).await?;
    // The install's first account is the global admin: made before anyone else.
    let admin = e2e::login::local_account(&with, "Root").await?;
    let profile: shared::profile::Profile = admin.get("/api/profile").await?.json().await?;
    if !profile.admin {
        bail!("the first local account is not a global admin");
    }
    say("ops: starting wrangler dev (rooms without metrics, BENCH_NO_METRICS=1)");
    let without = DevServer::start(options.var("BENCH_NO_METRICS", "1")).await?;
    let without_admin = e2e::login::local_account(&without, "Root").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut send_path = ops_send_path(args, &with, &without).await?;
    // The switch works: the aggregator heard of messages from one server's rooms only (the
    // last batch may still be on its way, so "some").
    let counted = [
        analytics_messages(&admin).await?,
        analytics_messages(&without_admin).await?,
    ];
    if counted[1] > 0 {
        bail!(
            "the rooms with BENCH_NO_METRICS=1 reported {} messages to analytics",
            counted[1]
        );
    }
    send_path["analytics_messages_counted"] =
        json!({ "with_metrics": counted[0], "without_metrics": counted[1] });
    drop(without);

    let tag = format!("ops{}", e2e::random_hex(6));
    say(format!(
        "ops: log writes at {} a second for {} s",
        args.ops_log_rate, args.ops_log_secs
    ));
    let log_writes = ops_log_writes(&with, &admin, &tag, args.ops_log_rate, args.ops_log_secs)
        .await
        .context("the log writes")?;

    say("ops: admin pages in headless Chromium");
    let pages = tokio::time::timeout(BROWSER_DEADLINE, ops_admin_pages(&with, args.ops_page_runs))
        .await
        .map_err(|_| anyhow::anyhow!("the admin pages did not load within the deadline"))?
        .context("the admin pages")?;
    Ok(json!({
        "send_path": send_path,
        "log_writes": log_writes,
        "admin_pages": pages,
        "seconds": round2(started.elapsed().as_secs_f64()),
    }))
}

/// The fan-out workload on the server with metrics and the one without, alternated (`with`,
/// `without`, then `without`, `with`, …) after a warm-up on each, so drift on this shared
/// machine falls on both.
async fn ops_send_path(args: &Args, with: &DevServer, without: &DevServer) -> Result<Value> {
    let mut sessions = Vec::new();
    for server in [with, without] {
        let mut these = Vec::new();
        for i in 0..args.sessions {
            these.push(Session::create(server, &format!("Ops {i}")).await?);
        }
        sessions.push(these);
    }
    let (clients, senders, messages) = (
        args.ops_clients,
        args.ops_senders.min(args.ops_clients),
        args.ops_messages,
    );
    for these in &sessions {
        run_fanout(these, clients.min(10), 1, 20).await?;
    }
    let mut runs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for run in 0..args.ops_runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let label = ["with metrics", "without metrics"][which];
            say(format!(
                "ops: fan-out {label}, run {}: {clients} clients, {senders} senders x {messages}",
                run + 1
            ));
            let server = [with, without][which];
            let cpu_before = server.cpu_ms();
            let mut result = run_fanout(&sessions[which], clients, senders, messages).await?;
            // CPU time moves less than wall time with the machine's other load.
            let cpu = server.cpu_ms() - cpu_before;
            let deliveries = result["deliveries"].as_f64().unwrap_or(0.0);
            result["server_cpu_ms"] = json!(round2(cpu));
            result["server_cpu_ms_per_1000_deliveries"] =
                json!(round2(cpu / deliveries.max(1.0) * 1000.0));
            runs[which].push(result);
        }
    }
    let mean = |runs: &[Value], f: &dyn Fn(&Value) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(f).collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let rate = |v: &Value| v["deliveries_per_s"].as_f64();
    let p99 = |v: &Value| v["latency_ms"]["p99"].as_f64();
    let p50 = |v: &Value| v["latency_ms"]["p50"].as_f64();
    let cpu = |v: &Value| v["server_cpu_ms_per_1000_deliveries"].as_f64();
    let summary = |runs: &[Value]| {
        json!({
            "deliveries_per_s": mean(runs, &rate).round(),
            "p50_ms": round2(mean(runs, &p50)),
            "p99_ms": round2(mean(runs, &p99)),
            "server_cpu_ms_per_1000_deliveries": round2(mean(runs, &cpu)),
            "runs": runs,
        })
    };
    let (rate_with, rate_without) = (mean(&runs[0], &rate), mean(&runs[1], &rate));
    let (p99_with, p99_without) = (mean(&runs[0], &p99), mean(&runs[1], &p99));
    // With against without, in % of without: negative throughput and positive p99 are costs.
    let change = |with: f64, without: f64| round1((with - without) / without.max(1e-9) * 100.0);
    // Each run's pair ran back to back, so slow drift of this shared machine's load falls on
    // both halves of a pair: the median of the pairs' changes is the steadier estimate.
    let paired = |f: &dyn Fn(&Value) -> Option<f64>| {
        let mut changes: Vec<f64> = runs[0]
            .iter()
            .zip(&runs[1])
            .filter_map(|(w, o)| Some(change(f(w)?, f(o)?)))
            .collect();
        changes.sort_by(|a, b| a.total_cmp(b));
        let n = changes.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => changes[n / 2],
            _ => round1((changes[n / 2 - 1] + changes[n / 2]) / 2.0),
        }
    };
    let (rate_change, p99_change, cpu_change) = (paired(&rate), paired(&p99), paired(&cpu));
    say(format!(
        "ops: with metrics {rate_with:.0} deliveries/s p99 {p99_with:.1} ms; without \
         {rate_without:.0}/s p99 {p99_without:.1} ms; paired median change {rate_change}% \
         deliveries/s, {p99_change}% p99, {cpu_change}% server CPU per delivery"
    ));
    Ok(json!({
        "workload": format!(
            "fan-out: {clients} clients in one room, {senders} of them sending {messages} \
             messages each, each send waiting for its ack; {} runs per server, alternated, \
             after a warm-up; means over the runs", args.ops_runs
        ),
        "with_metrics": summary(&runs[0]),
        "without_metrics": summary(&runs[1]),
        "change_with_metrics_percent": {
            "how": "(with - without) / without; negative deliveries/s and positive p99 and \
                    CPU are what metrics cost",
            "deliveries_per_s_of_means": change(rate_with, rate_without),
            "p99_of_means": change(p99_with, p99_without),
            "deliveries_per_s_paired_median": rate_change,
            "p99_paired_median": p99_change,
            "server_cpu_per_delivery_of_means": change(mean(&runs[0], &cpu), mean(&runs[1], &cpu)),
            "server_cpu_per_delivery_paired_median": cpu_change,
        },
        "note": "BENCH_NO_METRICS=1 on the second server: its rooms neither count (meter, \
                 fan-out timing) nor set report alarms nor send batches to the Metrics object",
    }))
}

/// The messages the analytics page counts in the last hour, everywhere.
async fn analytics_messages(admin: &Session) -> Result<u64> {
    let response = admin.get("/api/admin/analytics?range=1h").await?;
    if response.status().as_u16() != 200 {
        bail!("GET /api/admin/analytics: {}", response.status());
    }
    let page: shared::metrics::Analytics = response.json().await?;
    Ok(page.points.iter().map(|p| p.messages).sum())
}

/// What one offered log write came to.
enum LogSend {
    /// The Worker answered its 500 (`internal`): the entry goes to the logger after it.
    Answered(u64),
    /// Any other answer or a transport error.
    Failed(String),
}

/// Drives the logging path at `rate` failing requests a second for `secs` (`POST
/// /api/test/failure/<tag>`, `LOGS_TEST_FAILURES=1`: each answer logs one entry, which the
/// Worker sends through its `LOGGER` binding to the logging Worker, which writes it to KV),
/// then counts the entries that landed through the admin API until the count stops growing.
async fn ops_log_writes(
    server: &DevServer,
    admin: &Session,
    tag: &str,
    rate: f64,
    secs: f64,
) -> Result<Value> {
    /// Requests in flight at most; a tick that finds none free is not offered (counted).
    const IN_FLIGHT: usize = 256;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/api/test/failure/{tag}", server.url());
    let from_ms = epoch_ms() as i64 - 1_000;
    let total = (rate * secs).round().max(1.0) as usize;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut skipped = 0u64;
    let start = Instant::now();
    for _ in 0..total {
        interval.tick().await;
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let (http, url, tx) = (http.clone(), url.clone(), tx.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = match http.post(&url).send().await {
                Ok(response) if response.status().as_u16() == 500 => {
                    let _ = response.bytes().await;
                    LogSend::Answered(sent.elapsed().as_micros() as u64)
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let text: String = text.chars().take(80).collect();
                    LogSend::Failed(format!("status {status}: {text}"))
                }
                Err(e) => LogSend::Failed(format!("{e}")),
            };
            drop(permit);
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    let mut answer_us = Vec::new();
    let mut failures: HashMap<String, u64> = HashMap::new();
    while let Some(outcome) = rx.recv().await {
        match outcome {
            LogSend::Answered(us) => answer_us.push(us),
            LogSend::Failed(why) => *failures.entry(why).or_default() += 1,
        }
    }
    let drive_secs = start.elapsed().as_secs_f64();
    let answered = answer_us.len() as u64;

    // Entries go out after the answers (`wait_until`): count until the count holds still.
    let mut landed = count_logged(admin, tag, from_ms).await?;
    let mut landed_secs = start.elapsed().as_secs_f64();
    let mut still = 0;
    let settle = Instant::now();
    while still < 3 && settle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count_logged(admin, tag, from_ms).await?;
        if now == landed {
            still += 1;
        } else {
            (landed, landed_secs, still) = (now, start.elapsed().as_secs_f64(), 0);
        }
    }
    let lost = answered.saturating_sub(landed);
    say(format!(
        "ops: offered {total} at {rate}/s: {answered} answered in {drive_secs:.1} s, {landed} \
         landed in KV ({lost} lost)"
    ));
    let failures: serde_json::Map<String, Value> =
        failures.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(json!({
        "path": "POST /api/test/failure/<tag> to the main Worker (LOGS_TEST_FAILURES=1, no \
                 session): its 500 is logged after the answer, one entry per request, through \
                 the LOGGER service binding to the logging Worker, which writes it to the local \
                 KV (wrangler dev's, not Cloudflare's); counted back through GET \
                 /api/admin/logs as the first account. No rate limiter is on this route \
                 (LOG_LIMITER guards only POST /api/logs/client) nor in the logger",
        "offered_per_s": rate,
        "offered": total,
        "not_sent_client_busy": skipped,
        "seconds": round2(drive_secs),
        "answered": answered,
        "answered_per_s": (answered as f64 / drive_secs.max(1e-9)).round(),
        "answer_ms": latency_json(answer_us),
        "other_answers": failures,
        "landed": landed,
        "landed_by_s": round2(landed_secs),
        "written_per_s": (landed as f64 / landed_secs.max(1e-9) * 10.0).round() / 10.0,
        "lost": lost,
    }))
}

/// The entries of `tag` stored since `from_ms`, counted page by page (100 a page, errors only;
/// listing filters on the keys' metadata, so no text search bounds the reads).
async fn count_logged(admin: &Session, tag: &str, from_ms: i64) -> Result<u64> {
    let mut filter = shared::logs::Filter {
        levels: vec![shared::logs::Level::Error],
        from: Some(from_ms),
        limit: Some(shared::logs::MAX_PAGE),
        ..shared::logs::Filter::default()
    };
    let mut count = 0;
    for _ in 0..10_000 {
        let response = admin
            .get(&format!("/api/admin/logs?{}", filter.to_query()))
            .await?;
        if response.status().as_u16() != 200 {
            bail!("GET /api/admin/logs: {}", response.status());
        }
        let page: shared::logs::LogPage = response.json().await?;
        count += page
            .entries
            .iter()
            .filter(|r| {
                r.entry
                    .context
                    .route
                    .as_deref()
                    .is_some_and(|r| r.contains(tag))
            })
            .count() as u64;
        match page
            .cursor
            .as_deref()
            .and_then(shared::logs::PageCursor::parse)
        {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return Ok(count),
        }
    }
    bail!("the log did not end within 10,000 pages")
}

/// Each admin page loaded `runs` times (after one warm-up load of each) as the first account,
/// round-robin: ms from the navigation's start to the content marker in the DOM (and to the
/// next frame), and to DOMContentLoaded.
async fn ops_admin_pages(server: &DevServer, runs: usize) -> Result<Value> {
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let measured = async {
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": rendered_marker_script() }),
            )
            .await?;
        browser.goto(&server.url()).await?;
        browser.sign_in_locally("Root").await?;
        let mut times: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
            vec![Default::default(); ADMIN_PAGES.len()];
        for round in 0..=runs {
            for (i, (path, _)) in ADMIN_PAGES.iter().enumerate() {
                browser.goto(&format!("{}{path}", server.url())).await?;
                let got = browser
                    .wait_for(
                        &format!("{path} rendered"),
                        r#"
                        if (window.__benchPainted == null) {
                            // An alert beside the content is fine; an alert instead of it is
                            // the page failing.
                            const failed = window.__benchError != null
                                && performance.now() - window.__benchErrorAt > 3000;
                            return failed ? { error: window.__benchError } : null;
                        }
                        const nav = performance.getEntriesByType('navigation')[0];
                        return {
                            rendered: window.__benchRendered,
                            painted: window.__benchPainted,
                            dcl: nav ? nav.domContentLoadedEventEnd : null,
                        };
                        "#,
                    )
                    .await?;
                if let Some(error) = got["error"].as_str() {
                    bail!("{path} showed an error: {error}");
                }
                if round == 0 {
                    continue;
                }
                let slot = &mut times[i];
                slot.0.extend(got["rendered"].as_f64());
                slot.1.extend(got["painted"].as_f64());
                slot.2.extend(got["dcl"].as_f64());
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v.get(v.len() / 2).map_or(f64::NAN, |m| round2(*m))
        };
        let mut pages = serde_json::Map::new();
        for ((path, css), (mut rendered, mut painted, mut dcl)) in ADMIN_PAGES.iter().zip(times) {
            say(format!(
                "ops: {path} rendered in {} ms (median of {runs})",
                median(&mut rendered)
            ));
            pages.insert(
                (*path).to_owned(),
                json!({
                    "marker": css,
                    "rendered_ms_median": median(&mut rendered),
                    "painted_ms_median": median(&mut painted),
                    "dom_content_loaded_ms_median": median(&mut dcl),
                    "rendered_ms": rendered.iter().map(|t| round2(*t)).collect::<Vec<_>>(),
                }),
            );
        }
        Ok::<Value, e2e::Error>(json!({
            "runs": runs,
            "measured": "ms from the navigation's start (performance.now() in the new page) to \
                         the page's content marker in the DOM, and to the animation frame \
                         after it; a full load of the app each time (WebDriver navigation), \
                         after one warm-up load of each page; signed in as the install's \
                         first account (DEV_LOGIN)",
            "pages": pages,
        }))
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.quit()).await;
    drop(driver);
    measured
}

/// Longest one Lighthouse run may take (it usually takes 20–40 s here); past it its process
/// group (node and the Chromium it started) is killed.
const LIGHTHOUSE_DEADLINE: Duration = Duration::from_secs(240);
/// Longest the throttled app may take to show the large room's first message.
const FIRST_MESSAGE_DEADLINE: Duration = Duration::from_secs(90);
/// The flags Lighthouse starts Debian's Chromium with (it adds its own on top).
const LIGHTHOUSE_CHROME_FLAGS: &str = "--headless=new --no-sandbox --disable-gpu";

/// The lighthouse section (issue 13; see the module docs): Lighthouse's scores and metrics for
/// the home page and a room page, and the time to the first message in a large room on a
/// throttled CPU.
async fn run_lighthouse(args: &Args) -> Result<Value> {
    let started = Instant::now();
    let root = e2e::repo_root();
    let lighthouse = root.join("node_modules/.bin/lighthouse");
    if !lighthouse.exists() {
        bail!(
            "{} not found (run ./scripts/setup: npm ci installs the pinned Lighthouse)",
            lighthouse.display()
        );
    }
    let chromium = std::env::var_os("CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    if !chromium.exists() {
        bail!(
            "{} not found (set CHROMIUM or run ./scripts/setup --browser)",
            chromium.display()
        );
    }
    let lifted = "1000000";
    let options = DevOptions::default()
        // The large room is bulk-seeded (never set in wrangler.toml).
        .var("BENCH_SEED", "1")
        .var("SEND_BURST", lifted)
        .var("SEND_PER_SECOND", lifted)
        .with_app();
    say("lighthouse: starting wrangler dev");
    let server = DevServer::start(options).await?;
    let guest = Session::create(&server, "Lighthouse Guest").await?;
    let room = guest.new_room().await?;
    say(format!(
        "lighthouse: seeding {} messages",
        args.lighthouse_messages
    ));
    bulk_seed(&guest, &room.slug, args.lighthouse_messages).await?;
    let room_url = format!("{}/r/{}", server.url(), room.slug);
    // Lighthouse's own (version and settings) from its package, for the report.
    let version = std::fs::read_to_string(root.join("node_modules/lighthouse/package.json"))
        .ok()
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
        .and_then(|p| p["version"].as_str().map(str::to_owned));

    let out = tempfile::Builder::new()
        .prefix("durable-chat-lighthouse-")
        .tempdir()?;
    // The reports go with the temporary directory unless asked for: the medians hide which
    // element shifted or painted late, and only the full report says.
    let keep = std::env::var_os("LIGHTHOUSE_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
    let kept = root.join("target/lighthouse");
    if keep {
        std::fs::create_dir_all(&kept).with_context(|| format!("creating {}", kept.display()))?;
    }
    let out_dir = if keep { kept.as_path() } else { out.path() };
    let run_page = |name: &'static str, url: String, cookie: Option<String>| {
        let (lighthouse, chromium, out) = (&lighthouse, &chromium, out_dir);
        async move {
            let mut runs = Vec::new();
            for i in 0..args.lighthouse_runs {
                say(format!(
                    "lighthouse: {name} run {}/{}",
                    i + 1,
                    args.lighthouse_runs
                ));
                let path = out.join(format!("{name}-{i}.json"));
                let report =
                    lighthouse_run(lighthouse, chromium, &url, cookie.as_deref(), &path).await?;
                runs.push(report);
            }
            Ok::<Value, e2e::Error>(lighthouse_summary(&url, &runs))
        }
    };
    let home = run_page("home", server.url(), None)
        .await
        .context("Lighthouse on the home page")?;
    let room_page = run_page("room", room_url.clone(), Some(guest.cookie().to_owned()))
        .await
        .context("Lighthouse on the room page")?;

    say(format!(
        "lighthouse: time to the first message, {} messages, CPU {}x slower",
        args.lighthouse_messages, args.lighthouse_cpu
    ));
    let first_message = first_message_throttled(args, &server, &room_url)
        .await
        .context("the time to the first message")?;
    Ok(json!({
        "lighthouse_version": version,
        "chrome": chromium.display().to_string(),
        "chrome_flags": LIGHTHOUSE_CHROME_FLAGS,
        "how": "node_modules/.bin/lighthouse <url> --output=json --quiet \
                --blocked-url-patterns=*/sw.js, its defaults: mobile emulation (Moto G Power), \
                simulated throttling (150 ms RTT, 1.6 Mbit/s down, CPU 4x); a fresh profile and \
                cold cache every run, without the service worker (its background downloads are \
                invisible to the simulation); medians over the runs",
        "runs": args.lighthouse_runs,
        "home_new_visitor": home,
        "room_as_guest": room_page,
        "room_messages": args.lighthouse_messages,
        "first_message_throttled": first_message,
        "reports_kept": keep.then(|| kept.display().to_string()),
        "seconds": round2(started.elapsed().as_secs_f64()),
    }))
}

/// One Lighthouse run against `url` (with a `Cookie` header when given); its JSON report.
async fn lighthouse_run(
    lighthouse: &std::path::Path,
    chromium: &std::path::Path,
    url: &str,
    cookie: Option<&str>,
    out: &std::path::Path,
) -> Result<Value> {
    let mut command = tokio::process::Command::new(lighthouse);
    command
        .arg(url)
        .arg("--output=json")
        .arg(format!("--output-path={}", out.display()))
        .arg("--quiet")
        // Without the service worker: it downloads the chat bundle in the background, where
        // Lighthouse's simulated network does not see it, and a page that then takes the bundle
        // from the worker's cache is timed as if those bytes had cost nothing.
        .arg("--blocked-url-patterns=*/sw.js")
        .arg(format!("--chrome-flags={LIGHTHOUSE_CHROME_FLAGS}"))
        .env("CHROME_PATH", chromium)
        .current_dir(e2e::repo_root())
        // Its own group, with the Chromium it starts: a run past the deadline is killed whole.
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(cookie) = cookie {
        command.arg(format!("--extra-headers={}", json!({ "Cookie": cookie })));
    }
    let child = command
        .spawn()
        .with_context(|| format!("spawning {}", lighthouse.display()))?;
    let pgid = child.id().context("the Lighthouse process id")?;
    let outcome = tokio::time::timeout(LIGHTHOUSE_DEADLINE, child.wait_with_output()).await;
    let output = match outcome {
        Ok(output) => output?,
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            bail!(
                "Lighthouse did not finish within {} s",
                LIGHTHOUSE_DEADLINE.as_secs()
            );
        }
    };
    if !output.status.success() {
        bail!(
            "Lighthouse exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let report: Value = serde_json::from_slice(
        &std::fs::read(out).with_context(|| format!("reading {}", out.display()))?,
    )
    .context("Lighthouse's JSON report")?;
    if let Some(error) = report.get("runtimeError").filter(|e| !e.is_null()) {
        bail!("Lighthouse's run failed: {error}");
    }
    Ok(report)
}

/// Whether a Lighthouse audit counts and did not pass.
fn audit_failed(audit: &Value) -> bool {
    let mode = audit["scoreDisplayMode"].as_str().unwrap_or_default();
    let counted = !matches!(mode, "informative" | "notApplicable" | "manual" | "error");
    counted && audit["score"].as_f64().is_some_and(|s| s < 1.0)
}

/// The first string field `key` in an audit's details, at any depth (the LCP element's
/// `snippet` or `nodeLabel`, for one).
fn first_snippet(details: &Value, key: &str) -> Option<String> {
    match details {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(|v| first_snippet(v, key))),
        Value::Array(items) => items.iter().find_map(|v| first_snippet(v, key)),
        _ => None,
    }
}

/// The medians over a page's runs, each run's numbers, and the audits that failed in any run.
fn lighthouse_summary(url: &str, runs: &[Value]) -> Value {
    let median = |pick: &dyn Fn(&Value) -> Option<f64>, digits: f64| {
        let mut values: Vec<f64> = runs.iter().filter_map(pick).collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values
            .get(values.len() / 2)
            .map(|m| (m * digits).round() / digits)
    };
    let score = |category: &'static str| {
        move |r: &Value| {
            r["categories"][category]["score"]
                .as_f64()
                .map(|s| (s * 100.0).round())
        }
    };
    let metric = |audit: &'static str| move |r: &Value| r["audits"][audit]["numericValue"].as_f64();
    // Failed audits that cost the category points (weight > 0; for performance these are the
    // metrics), and failed ones the score leaves out (diagnostics, insights), in any run.
    let mut failed = serde_json::Map::new();
    let mut unscored = serde_json::Map::new();
    for category in ["performance", "accessibility", "best-practices"] {
        let (mut weighted, mut flagged): (Vec<String>, Vec<String>) = Default::default();
        for run in runs {
            let refs = run["categories"][category]["auditRefs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for audit_ref in refs {
                let Some(id) = audit_ref["id"].as_str() else {
                    continue;
                };
                if !audit_failed(&run["audits"][id]) {
                    continue;
                }
                let list = if audit_ref["weight"].as_f64().unwrap_or(0.0) > 0.0 {
                    &mut weighted
                } else {
                    &mut flagged
                };
                if !list.iter().any(|i| i == id) {
                    list.push(id.to_owned());
                }
            }
        }
        failed.insert(category.to_owned(), json!(weighted));
        unscored.insert(category.to_owned(), json!(flagged));
    }
    // The elements that moved most (the first run's layout-shifts audit), by their text.
    let shifted: Vec<Value> = runs
        .first()
        .and_then(|r| r["audits"]["layout-shifts"]["details"]["items"].as_array())
        .map(|items| {
            items
                .iter()
                .take(3)
                .map(|item| {
                    json!({
                        "score": item["score"].as_f64().map(|s| (s * 1000.0).round() / 1000.0),
                        "element": item["node"]["nodeLabel"],
                        "snippet": item["node"]["snippet"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // What the console showed, if that audit failed: the reason best practices are not 100.
    let mut console: Vec<String> = Vec::new();
    for run in runs {
        let items = run["audits"]["errors-in-console"]["details"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for item in items {
            let line = format!(
                "{}: {}",
                item["url"].as_str().unwrap_or_default(),
                item["description"].as_str().unwrap_or_default()
            );
            if !console.contains(&line) {
                console.push(line);
            }
        }
    }
    let per_run: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "performance": score("performance")(r),
                "accessibility": score("accessibility")(r),
                "best_practices": score("best-practices")(r),
                "fcp_ms": metric("first-contentful-paint")(r).map(f64::round),
                "lcp_ms": metric("largest-contentful-paint")(r).map(f64::round),
                "tbt_ms": metric("total-blocking-time")(r).map(f64::round),
                "cls": metric("cumulative-layout-shift")(r).map(|c| (c * 1000.0).round() / 1000.0),
                "total_bytes": metric("total-byte-weight")(r),
            })
        })
        .collect();
    let first = runs.first().cloned().unwrap_or(Value::Null);
    json!({
        "url": url,
        "median": {
            "performance": median(&score("performance"), 1.0),
            "accessibility": median(&score("accessibility"), 1.0),
            "best_practices": median(&score("best-practices"), 1.0),
            "fcp_ms": median(&metric("first-contentful-paint"), 1.0),
            "lcp_ms": median(&metric("largest-contentful-paint"), 1.0),
            "tbt_ms": median(&metric("total-blocking-time"), 1.0),
            "cls": median(&metric("cumulative-layout-shift"), 1000.0),
            "speed_index_ms": median(&metric("speed-index"), 1.0),
            "total_bytes": median(&metric("total-byte-weight"), 1.0),
        },
        "failed_audits": failed,
        "failed_unscored_audits": unscored,
        "console_errors": console,
        "lcp_element": first_snippet(&first["audits"]["largest-contentful-paint-element"]["details"], "snippet"),
        "lcp_element_text": first_snippet(&first["audits"]["largest-contentful-paint-element"]["details"], "nodeLabel"),
        "layout_shifts": shifted,
        "form_factor": first["configSettings"]["formFactor"],
        "throttling_method": first["configSettings"]["throttlingMethod"],
        "cpu_slowdown": first["configSettings"]["throttling"]["cpuSlowdownMultiplier"],
        "user_agent": first["environment"]["hostUserAgent"],
        "runs": per_run,
    })
}

/// Marks, in a room page, when the first message row is in the DOM, when one first intersects
/// the viewport (checked on every animation frame) and the frame after that, in
/// `performance.now()` (ms since the navigation started).
const FIRST_MESSAGE_MARKER: &str = r#"
    (() => {
        if (!location.pathname.startsWith('/r/')) return;
        const css = 'ol[aria-label="Messages"] li.message';
        const mark = { dom: null, visible: null, painted: null };
        window.__benchFirst = mark;
        const observer = new MutationObserver(() => {
            if (mark.dom == null && document.querySelector(css)) {
                mark.dom = performance.now();
                observer.disconnect();
            }
        });
        observer.observe(document, { childList: true, subtree: true });
        const seen = (el) => {
            const r = el.getBoundingClientRect();
            return r.height > 0 && r.bottom > 0 && r.top < innerHeight
                && r.right > 0 && r.left < innerWidth;
        };
        const frame = () => {
            const rows = document.querySelectorAll(css);
            for (let i = rows.length - 1; i >= 0; i--) {
                if (seen(rows[i])) {
                    mark.visible = performance.now();
                    requestAnimationFrame(() => { mark.painted = performance.now(); });
                    return;
                }
            }
            requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
    })();
"#;

/// A fixed piece of JavaScript work, timed in the page (ms; the median of three): the CPU
/// throttling's own check.
const CPU_PROBE: &str = r#"
    const times = [];
    for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        let x = 0;
        for (let i = 0; i < 5000000; i++) x = (x + i * 7) % 1000003;
        times.push(performance.now() - t0 + (x < 0 ? 1 : 0));
    }
    times.sort((a, b) => a - b);
    return times[1];
"#;

/// The large room opened in headless Chromium with the CPU throttled: per run a fresh profile
/// signs in on the home page (unthrottled), then opens the room (first open: the app's files
/// are cached, the room's history is not) and reloads it (reopen).
async fn first_message_throttled(args: &Args, server: &DevServer, room_url: &str) -> Result<Value> {
    let driver = ChromeDriver::start().await?;
    let mut first_open = Vec::new();
    let mut reopen = Vec::new();
    let mut runs = Vec::new();
    let mut user_agent = Value::Null;
    for i in 0..args.lighthouse_runs {
        let browser = driver.browser().await?;
        let measured = async {
            sign_in(&browser, server).await?;
            user_agent = browser.eval("return navigator.userAgent;").await?;
            let unthrottled = browser.eval(CPU_PROBE).await?.as_f64();
            browser
                .cdp(
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({ "source": FIRST_MESSAGE_MARKER }),
                )
                .await?;
            browser
                .cdp(
                    "Emulation.setCPUThrottlingRate",
                    json!({ "rate": args.lighthouse_cpu }),
                )
                .await?;
            let mut marks = Vec::new();
            for (what, load) in [("first open", false), ("reopen", true)] {
                if load {
                    browser.reload().await?;
                } else {
                    browser.goto(room_url).await?;
                }
                let got = browser
                    .wait_longer(
                        &format!("the room's first message ({what})"),
                        "const m = window.__benchFirst; \
                         return m && m.painted != null ? m : null;",
                        FIRST_MESSAGE_DEADLINE,
                    )
                    .await?;
                marks.push(got);
            }
            let throttled = browser.eval(CPU_PROBE).await?.as_f64();
            Ok::<(Vec<Value>, Option<f64>, Option<f64>), e2e::Error>((
                marks,
                unthrottled,
                throttled,
            ))
        }
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), browser.quit()).await;
        let (marks, unthrottled, throttled) = measured?;
        let ms = |m: &Value, key: &str| m[key].as_f64().map(|v| v.round());
        say(format!(
            "lighthouse: run {}: first message visible after {:?} ms (first open), {:?} ms (reopen)",
            i + 1,
            ms(&marks[0], "visible"),
            ms(&marks[1], "visible")
        ));
        first_open.extend(marks[0]["visible"].as_f64());
        reopen.extend(marks[1]["visible"].as_f64());
        runs.push(json!({
            "first_open": { "in_dom_ms": ms(&marks[0], "dom"), "visible_ms": ms(&marks[0], "visible"),
                            "painted_ms": ms(&marks[0], "painted") },
            "reopen": { "in_dom_ms": ms(&marks[1], "dom"), "visible_ms": ms(&marks[1], "visible"),
                        "painted_ms": ms(&marks[1], "painted") },
            "cpu_probe_ms": { "unthrottled": unthrottled.map(round2), "throttled": throttled.map(round2),
                              "ratio": unthrottled.zip(throttled).map(|(u, t)| round2(t / u.max(1e-9))) },
        }));
    }
    drop(driver);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).map(|m| m.round())
    };
    Ok(json!({
        "cpu_throttling_rate": args.lighthouse_cpu,
        "messages": args.lighthouse_messages,
        "first_open_visible_ms_median": median(&mut first_open),
        "reopen_visible_ms_median": median(&mut reopen),
        "measured": "ms from the navigation's start (performance.now() in the page) to the \
                     first message row intersecting the viewport, with the CPU throttled by \
                     DevTools (Emulation.setCPUThrottlingRate; cpu_probe_ms checks it held \
                     across the navigations); network not throttled; window 1200x900; a fresh \
                     profile per run that signed in on the home page first (the app's files \
                     cached, the room not), then a reload of the room (reopen)",
        "user_agent": user_agent,
        "runs": runs,
    }))
}
