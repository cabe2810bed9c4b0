//! The local model server (`model-server`, OpenAI-compatible) as a test fixture, so integration
//! tests can point the Worker's assistant at a real model:
//!
//! ```ignore
//! let model = e2e::model::ModelServer::start().await?;
//! let dev = DevServer::start(DevOptions::default()
//!     .var("AI_PROVIDER", "openai")
//!     .var("AI_BASE_URL", model.base_url())
//!     .var("AI_MODEL", model.model())).await?;
//! ```
//!
//! It runs the release binary `./scripts/build` makes (`target/release/model-server`) on a free
//! loopback port with one llama.cpp thread (wrangler and the tests need the other core), and
//! returns once `/health` answers. The server's stdin is a pipe this fixture holds: when the
//! test process ends, however it ends, the pipe closes and the server exits
//! (`--exit-on-stdin-eof`), so no run leaves one behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{repo_root, Result};

/// How long loading the model and answering `/health` may take.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of server output kept for failure messages.
const LOG_LINES: usize = 100;

/// The model file: `LOCAL_MODEL_PATH`, else the SmolLM2 GGUF in `../shared/models/`.
pub fn model_path() -> PathBuf {
    match std::env::var("LOCAL_MODEL_PATH") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => repo_root().join("../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

/// The release binary (`CARGO_TARGET_DIR` respected).
pub fn binary_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("release/model-server")
}

/// A running model server.
pub struct ModelServer {
    child: Child,
    _lifeline: ChildStdin,
    address: String,
    model: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ModelServer {
    /// Starts the server with one thread and the default context.
    pub async fn start() -> Result<ModelServer> {
        Self::start_with(&[]).await
    }

    /// Starts the server with extra flags (`--ctx 512`, `--queue 0`, …; see `model-server
    /// --help`).
    pub async fn start_with(extra_args: &[&str]) -> Result<ModelServer> {
        let binary = binary_path();
        if !binary.is_file() {
            bail!(
                "run ./scripts/build first (it builds the model server): missing {}",
                binary.display()
            );
        }
        let model = model_path();
        if !model.is_file() {
            bail!(
                "the local model is missing at {} (set LOCAL_MODEL_PATH, or run \
                 ./scripts/fetch-model on a machine with internet)",
                model.display()
            );
        }
        let mut child = Command::new(&binary)
            .arg("--model")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", "0", "--threads", "1"])
            .arg("--exit-on-stdin-eof")
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let lifeline = child.stdin.take().context("the server's stdin")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    // The one line that says where it listens: "… ready on http://ADDR/v1 …".
                    if let Some(rest) = line.split("ready on http://").nth(1) {
                        let address = rest.split('/').next().unwrap_or_default().to_string();
                        let _ = ready_tx.send(address);
                    }
                    if let Ok(mut log) = log.lock() {
                        if log.len() == LOG_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                }
            });
        }
        let waited = tokio::task::spawn_blocking(move || ready_rx.recv_timeout(READY_TIMEOUT))
            .await
            .context("waiting for the model server")?;
        let mut server = ModelServer {
            child,
            _lifeline: lifeline,
            address: String::new(),
            model: String::new(),
            log,
        };
        match waited {
            Ok(address) => server.address = address,
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                bail!(
                    "model-server did not start (exit status {status:?}):\n{}",
                    server.log_tail()
                );
            }
        }
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let url = format!("http://{}/health", self.address);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(response) = http.get(&url).send().await {
                if response.status().as_u16() == 200 {
                    let health: serde_json::Value = response.json().await?;
                    self.model = health["model"].as_str().unwrap_or_default().to_string();
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "GET {url} did not answer 200 within {} s:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The OpenAI base URL, `http://127.0.0.1:<port>/v1` (what `AI_BASE_URL` takes).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The model's id as `/v1/models` lists it (what `AI_MODEL` takes).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The last lines the server printed (one per answer, with token counts and speed).
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
