//! Cloudflare's durable-chat-template under its own `wrangler dev`: the peer the bench's burst
//! and join-cost sections measure against. Set up outside this repository by `scripts/peer`
//! (never committed here); this only starts and stops it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::server::{free_port, group_cpu_ms, live_group_members, signal_group, spawn_watchdog};
use crate::Result;

/// A running peer: its port and process group.
pub struct PeerServer {
    port: u16,
    pgid: u32,
    child: Child,
    watchdog: Option<Child>,
    _persist: tempfile::TempDir,
}

impl PeerServer {
    /// Starts `wrangler dev` in `dir` (the template, `npm ci` done) with `node` (22 or newer)
    /// and waits until it accepts connections.
    pub async fn start(dir: &Path, node: &Path) -> Result<PeerServer> {
        use std::os::unix::process::CommandExt as _;
        let port = free_port()?;
        let inspector = free_port()?;
        let persist = tempfile::tempdir().context("a persist directory for the peer")?;
        let bin: PathBuf = node.parent().context("node has a directory")?.into();
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            dir.join("node_modules/.bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(persist.path().join("wrangler.log"))?;
        let child = Command::new(node)
            .current_dir(dir)
            .arg("node_modules/wrangler/bin/wrangler.js")
            .args(["dev", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(inspector.to_string())
            .arg("--persist-to")
            .arg(persist.path())
            .arg("--show-interactive-dev-session=false")
            .env("PATH", path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("spawning the peer's wrangler dev")?;
        let pgid = child.id();
        let watchdog = spawn_watchdog(pgid, None);
        let mut peer = PeerServer {
            port,
            pgid,
            child,
            watchdog,
            _persist: persist,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                bail!(
                    "the peer's wrangler dev exited ({status}): {}",
                    peer.log_tail()
                );
            }
            if let Ok(Ok((_, _))) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_tungstenite::connect_async(peer.ws_url("ready")),
            )
            .await
            {
                return Ok(peer);
            }
            if Instant::now() > deadline {
                bail!(
                    "the peer did not accept a socket in 90 s: {}",
                    peer.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A room's socket URL (partyserver routes `/parties/<class>/<room>`).
    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://127.0.0.1:{}/parties/chat/{room}", self.port)
    }

    /// Its process group (node, wrangler and workerd), for per-process measurements
    /// ([`crate::crowd::Usage`]).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// CPU time its whole process tree has used so far, in ms.
    pub fn cpu_ms(&self) -> f64 {
        group_cpu_ms(self.pgid)
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self._persist.path().join("wrangler.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        signal_group(self.pgid, "KILL");
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_group_members(self.pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
