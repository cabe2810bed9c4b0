//! `wrangler dev` as a test fixture.
//!
//! The server runs in its own process group (wrangler's node process starts esbuild and two
//! workerd processes); stopping it signals the whole group and waits until every member is
//! gone, so a restart can bind the same port. A small watchdog shell kills the group if the test
//! process dies first (a panicking test, or a shared server held in a `static`, which Rust never
//! drops), so no run leaves servers behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{repo_root, require_build, Result};

/// How long the server may take to answer `/api/health` after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the process group may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of server output kept for failure messages.
const LOG_LINES: usize = 200;

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct DevOptions {
    /// Extra `--var NAME:VALUE` bindings (for example `SEND_BURST`).
    pub vars: Vec<(String, String)>,
    /// Also require the app (`dist/index.html`), for browser tests.
    pub need_app: bool,
    /// Run the main Worker alone, without the logging Worker (its `LOGGER` binding then reaches
    /// nothing), to test that logging never breaks a request.
    pub without_logger: bool,
    /// Register the Workers in a dev registry of this server's own ([`DevServer::registry_dir`])
    /// instead of the machine's shared one, so another `wrangler` process given the same
    /// registry (`WRANGLER_REGISTRY_PATH`), such as `wrangler pages dev` in front of it, binds
    /// to this server's Worker and not to one that a concurrent test started under the same
    /// name.
    pub own_registry: bool,
}

impl DevOptions {
    /// Adds a var.
    pub fn var(mut self, name: &str, value: impl ToString) -> Self {
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// Requires the built app.
    pub fn with_app(mut self) -> Self {
        self.need_app = true;
        self
    }

    /// Leaves the logging Worker out.
    pub fn without_logger(mut self) -> Self {
        self.without_logger = true;
        self
    }

    /// Uses a dev registry of the server's own (see [`DevOptions::own_registry`]).
    pub fn own_registry(mut self) -> Self {
        self.own_registry = true;
        self
    }
}

/// The logging Worker's configuration, when the checkout has one (the bench may run an older
/// checkout's Worker, through `E2E_REPO_ROOT`, that has none).
pub fn logger_config() -> Option<PathBuf> {
    let config = repo_root().join("logger/wrangler.toml");
    config.exists().then_some(config)
}

/// A running (or stopped, between [`DevServer::stop`] and a start) `wrangler dev`.
pub struct DevServer {
    port: u16,
    inspector_port: u16,
    persist: PathBuf,
    /// Owns the persist directory when the server made it; removed on drop.
    _persist_dir: Option<tempfile::TempDir>,
    secret: String,
    /// `SESSION_SECRET_PREVIOUS`, after [`DevServer::rotate_secret`].
    previous_secret: Option<String>,
    options: DevOptions,
    running: Option<Running>,
}

struct Running {
    child: Child,
    pgid: u32,
    watchdog: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl DevServer {
    /// The server a test file shares: started with `options` by the first test that asks for
    /// it and kept for the others. If it cannot start, the asking test fails with the reason.
    pub async fn shared(
        cell: &'static tokio::sync::OnceCell<DevServer>,
        options: impl FnOnce() -> DevOptions,
    ) -> &'static DevServer {
        cell.get_or_init(|| async {
            match DevServer::start(options()).await {
                Ok(server) => server,
                Err(e) => panic!("could not start wrangler dev: {e:#}"),
            }
        })
        .await
    }

    /// Applies the D1 migrations to a fresh persist directory and starts the server on free
    /// ports; returns once `/api/health` answers 200.
    pub async fn start(options: DevOptions) -> Result<DevServer> {
        require_build(options.need_app)?;
        let dir = tempfile::Builder::new()
            .prefix("durable-chat-e2e-")
            .tempdir()
            .context("creating the persist directory")?;
        let mut server = DevServer {
            port: free_port()?,
            inspector_port: free_port()?,
            persist: dir.path().to_path_buf(),
            _persist_dir: Some(dir),
            secret: crate::random_hex(32),
            previous_secret: None,
            options,
            running: None,
        };
        server.migrate().await?;
        let mut attempt = 1;
        loop {
            match server.launch().await {
                Ok(()) => return Ok(server),
                // Ports are chosen free, then bound by workerd a moment later: on a machine
                // starting several servers at once, another may take one in between. New ports.
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                    server.port = free_port()?;
                    server.inspector_port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's origin, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `Origin` header a page of this site sends.
    pub fn origin(&self) -> String {
        self.url()
    }

    /// The WebSocket URL of a room.
    pub fn ws_url(&self, slug: &str) -> String {
        format!("ws://127.0.0.1:{}/api/rooms/{slug}/ws", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the Worker's V8 inspector (Chrome DevTools protocol), for CPU profiles.
    pub fn inspector_port(&self) -> u16 {
        self.inspector_port
    }

    /// The persist directory (D1, Durable Object storage).
    pub fn persist_dir(&self) -> &Path {
        &self.persist
    }

    /// The dev registry the server's Workers are registered in, when it has one of its own
    /// ([`DevOptions::own_registry`], or [`DevOptions::without_logger`]); pass it to another
    /// `wrangler` process as `WRANGLER_REGISTRY_PATH` to reach them through service bindings.
    pub fn registry_dir(&self) -> Option<PathBuf> {
        (self.options.own_registry || self.options.without_logger)
            .then(|| self.persist.join("registry"))
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops the whole process tree and waits until it is gone (the port is free again).
    pub async fn stop(&mut self) -> Result {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        signal_group(running.pgid, "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            let _ = running.child.try_wait();
            if live_group_members(running.pgid).is_empty() {
                break;
            }
            if Instant::now() > deadline {
                signal_group(running.pgid, "KILL");
                if Instant::now() > deadline + STOP_GRACE {
                    bail!("wrangler dev (group {}) did not exit", running.pgid);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = running.child.wait();
        if let Some(mut watchdog) = running.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // workerd may release the listening socket a moment after it exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("port {} still in use after the server stopped", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Kills the runtime as a crash would: SIGKILL to every `workerd` process of the server
    /// (no graceful shutdown, nothing flushed), and waits until they are gone. The rest of the
    /// tree (wrangler's node process) is left to [`DevServer::restart`], which also clears it.
    /// Returns how many processes were killed; none is an error.
    pub async fn kill_runtime(&mut self) -> Result<usize> {
        let Some(running) = self.running.as_ref() else {
            bail!("the server is not running");
        };
        let runtime: Vec<u32> = live_group_members(running.pgid)
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "workerd")
            })
            .collect();
        if runtime.is_empty() {
            bail!("no workerd process in group {}", running.pgid);
        }
        for pid in &runtime {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + STOP_GRACE;
        while live_group_members(running.pgid)
            .iter()
            .any(|pid| runtime.contains(pid))
        {
            if Instant::now() > deadline {
                bail!("workerd {runtime:?} still alive after SIGKILL");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(runtime.len())
    }

    /// Starts the server again on the same port, persist directory and vars.
    pub async fn start_again(&mut self) -> Result {
        if self.running.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Stops and starts the server: same port, same persist directory, same secret (sessions
    /// stay valid).
    pub async fn restart(&mut self) -> Result {
        self.stop().await?;
        self.launch().await
    }

    /// Rotates the session secret as an operator would: a new `SESSION_SECRET`, the old one in
    /// `SESSION_SECRET_PREVIOUS` (or, with `keep_previous` false, dropped). Takes effect at the
    /// next start.
    pub fn rotate_secret(&mut self, keep_previous: bool) {
        let old = std::mem::replace(&mut self.secret, crate::random_hex(32));
        self.previous_secret = keep_previous.then_some(old);
    }

    /// The CPU time (user + system) the server's process tree has used so far, in ms.
    pub fn cpu_ms(&self) -> f64 {
        self.running.as_ref().map_or(0.0, |r| group_cpu_ms(r.pgid))
    }

    /// The process group of the running server (wrangler, esbuild and workerd), for
    /// per-process measurements ([`crate::crowd::Usage`]).
    pub fn pgid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.pgid)
    }

    /// The summed resident memory of the server's process tree, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.running
            .as_ref()
            .map(|r| {
                live_group_members(r.pgid)
                    .into_iter()
                    .filter_map(vm_rss_kib)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The last lines the server printed.
    pub fn log_tail(&self) -> String {
        self.running
            .as_ref()
            .map(|r| tail(&r.log))
            .unwrap_or_default()
    }

    async fn migrate(&self) -> Result {
        let mut command = self.wrangler();
        command
            .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
            .arg(&self.persist);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .context("joining the migrations task")?
            .context("running wrangler d1 migrations apply")?;
        if !output.status.success() {
            bail!(
                "wrangler d1 migrations apply failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn wrangler(&self) -> Command {
        let root = repo_root();
        let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
        command
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::null());
        command
    }

    async fn launch(&mut self) -> Result {
        use std::os::unix::process::CommandExt as _;

        let mut command = self.wrangler();
        command.arg("dev");
        // Both Workers in one runtime, as `./scripts/dev` runs them: the first configuration is
        // served, the logging Worker is reached through its service binding. They share the
        // persist directory (the logger's KV beside the app's D1 and rooms).
        if let Some(logger) = logger_config().filter(|_| !self.options.without_logger) {
            command
                .arg("-c")
                .arg(repo_root().join("wrangler.toml"))
                .arg("-c")
                .arg(logger);
        }
        // A registry of its own: through the machine's shared one, wrangler would connect the
        // logger binding (without the logger) to a logger another `wrangler dev` runs, or
        // (with `own_registry`) another process to another test's Worker.
        if let Some(registry) = self.registry_dir() {
            command.env("WRANGLER_REGISTRY_PATH", registry);
        }
        command
            .args(["--ip", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--inspector-port")
            .arg(self.inspector_port.to_string())
            .arg("--persist-to")
            .arg(&self.persist)
            .arg("--show-interactive-dev-session=false")
            .arg("--var")
            .arg(format!("SESSION_SECRET:{}", self.secret));
        if let Some(previous) = &self.previous_secret {
            command
                .arg("--var")
                .arg(format!("SESSION_SECRET_PREVIOUS:{previous}"));
        }
        for (name, value) in &self.options.vars {
            command.arg("--var").arg(format!("{name}:{value}"));
        }
        command
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning wrangler dev")?;
        let pgid = child.id();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, Arc::clone(&log));
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, Arc::clone(&log));
        }
        let cleanup = self._persist_dir.as_ref().map(|d| d.path().to_path_buf());
        let watchdog = spawn_watchdog(pgid, cleanup.as_deref());
        self.running = Some(Running {
            child,
            pgid,
            watchdog,
            log,
        });

        match self.wait_ready().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let log = self.log_tail();
                let _ = self.stop().await;
                Err(e.context(format!("wrangler dev output:\n{log}")))
            }
        }
    }

    async fn wait_ready(&mut self) -> Result {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let health = format!("{}/api/health", self.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(running) = self.running.as_mut() {
                if let Ok(Some(status)) = running.child.try_wait() {
                    bail!("wrangler dev exited before it was ready ({status})");
                }
            }
            if let Ok(response) = http.get(&health).send().await {
                if response.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "GET {health} did not answer 200 within {} s",
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            signal_group(running.pgid, "KILL");
            let _ = running.child.wait();
            if let Some(mut watchdog) = running.watchdog.take() {
                let _ = watchdog.kill();
                let _ = watchdog.wait();
            }
        }
    }
}

/// A port the OS considers free right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn collect_lines(stream: impl Read + Send + 'static, log: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut log) = log.lock() {
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    });
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    log.lock()
        .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Sends a signal to a whole process group through kill(1) (the workspace forbids `unsafe`).
pub(crate) fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills the server's group once this test process is gone, and removes the persist directory
/// the server made (a server in a `static` is never dropped).
pub(crate) fn spawn_watchdog(pgid: u32, cleanup: Option<&Path>) -> Option<Child> {
    let me = std::process::id();
    let remove = cleanup
        .map(|dir| format!("; sleep 1; rm -rf '{}'", dir.display()))
        .unwrap_or_default();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 -{pgid} 2>/dev/null{remove}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// The processes of a group that are still alive (zombies excluded: they hold no memory or
/// sockets, and nothing may reap them in a container without an init).
pub fn live_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command name (which may contain spaces and parentheses).
            let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let _ppid = fields.next();
            let group = fields.next().and_then(|g| g.parse::<u32>().ok());
            group == Some(pgid) && state != Some("Z") && state != Some("X")
        })
        .collect()
}

/// The CPU time (user + system, from `/proc/<pid>/stat`) the live processes of a group have
/// used so far, in milliseconds. A process that exits between two readings takes its time with
/// it, so measure around work that keeps the tree alive.
pub fn group_cpu_ms(pgid: u32) -> f64 {
    let ticks: u64 = live_group_members(pgid)
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            // After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
            // cmajflt utime stime.
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some(utime + stime)
        })
        .sum();
    ticks as f64 * 1000.0 / clock_ticks_per_second()
}

/// `getconf CLK_TCK` (100 on Linux almost everywhere), read once.
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
