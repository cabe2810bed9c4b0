//! A scripted OpenAI-compatible server on loopback, for the assistant's integration tests: each
//! request to `/v1/chat/completions` takes the next script (tokens and their pacing, an HTTP
//! error, a hang, a broken stream) and answers with server-sent events like OpenAI does. It
//! records every request body and whether the client went away before the end (Stop aborts
//! the provider call).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// What the fake answers one request with.
#[derive(Debug, Clone)]
pub enum Script {
    /// Stream these tokens, `gap` apart, then usage and `[DONE]`.
    Tokens {
        /// The tokens.
        tokens: Vec<String>,
        /// Pause before each token.
        gap: Duration,
    },
    /// Answer with this HTTP status and body.
    Status(u16, String),
    /// Accept the request and never answer.
    Hang,
    /// Send these tokens, then drop the connection mid-stream.
    Break(Vec<String>),
    /// Stream `before`, then hold the stream open (an SSE comment every 250 ms, so the room's
    /// idle timeout does not fire) until the test opens `gate`, then stream `after` and end.
    /// A test that reconnects, reloads or crashes while the gate is shut is mid-stream by
    /// construction, however slow the machine.
    Gated {
        /// Tokens sent before the gate.
        before: Vec<String>,
        /// Tokens sent once the gate opens.
        after: Vec<String>,
        /// Pause before each token.
        gap: Duration,
        /// Opened by the test.
        gate: Gate,
    },
    /// Stream `count` tokens `gap` apart, each the time it was sent (`t<unix µs> `), so a
    /// client measures how long each token took to reach it (the bench).
    Clock {
        /// Tokens.
        count: usize,
        /// Pause before each token.
        gap: Duration,
    },
}

/// Microseconds since the Unix epoch (the clock of [`Script::Clock`] tokens).
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Where a [`Script::Gated`] stream waits. Opening it before the stream reaches it is
/// remembered, so the order of the two does not matter.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<tokio::sync::Notify>);

impl Gate {
    /// A shut gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets the waiting (or next) stream go on.
    pub fn open(&self) {
        self.0.notify_one();
    }
}

/// How long a gated stream waits at most, so a test that never opens its gate (one that
/// crashes the server mid-answer) leaves no connection behind for long.
const GATE_LIMIT: Duration = Duration::from_secs(120);

/// `text` split at spaces (keeping them): one token per word.
pub fn split_words(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        word.push(c);
        if c == ' ' {
            tokens.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

impl Script {
    /// Tokens split from `text` at spaces (keeping them), `gap` apart.
    pub fn words(text: &str, gap: Duration) -> Script {
        Script::Tokens {
            tokens: split_words(text),
            gap,
        }
    }

    /// `before` word by word, then a pause until `gate` opens, then `after`.
    pub fn gated(before: &str, after: &str, gap: Duration, gate: &Gate) -> Script {
        Script::Gated {
            before: split_words(before),
            after: split_words(after),
            gap,
            gate: gate.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    /// (marker, script): a request takes the first script whose marker appears in it.
    scripts: VecDeque<(String, Script)>,
    requests: Vec<Value>,
    /// Requests whose client went away before the stream ended.
    abandoned: usize,
    /// The `Authorization` header of each `GET /v1/models` (the settings page's live check).
    model_lists: Vec<Option<String>>,
}

/// The running fake.
pub struct FakeAi {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeAi {
    /// Listens on a free loopback port. The fake runs on a thread and runtime of its own, so
    /// it outlives the test (and its runtime) that started it and serves the others too.
    pub async fn start() -> Result<FakeAi> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let state = shared.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, state).await;
                    });
                }
            });
        });
        Ok(FakeAi { port, state })
    }

    /// The base URL to give the Worker as `AI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Queues the answer to the next request whose body contains `marker` (tests running at
    /// once use their own markers; requests without a script get "ok").
    pub fn push(&self, marker: &str, script: Script) {
        self.lock().scripts.push_back((marker.to_owned(), script));
    }

    /// The request bodies received so far that contain `marker`.
    pub fn requests(&self, marker: &str) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.to_string().contains(marker))
            .cloned()
            .collect()
    }

    /// How many streams the client abandoned before their end.
    pub fn abandoned(&self) -> usize {
        self.lock().abandoned
    }

    /// The `Authorization` header of each `GET /v1/models` so far (`None` when it had none).
    pub fn model_lists(&self) -> Vec<Option<String>> {
        self.lock().model_lists.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> Result {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    if head.starts_with("GET /v1/models ") || head.starts_with("GET /health ") {
        return answer_get(&mut stream, &head, &state).await;
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);
    let script = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let text = body.to_string();
        state.requests.push(body);
        let found = state
            .scripts
            .iter()
            .position(|(m, _)| text.contains(m.as_str()));
        found.and_then(|i| state.scripts.remove(i)).map(|(_, s)| s)
    }
    .unwrap_or_else(|| Script::words("ok", Duration::ZERO));

    match script {
        Script::Status(status, text) => {
            let body =
                json!({"error": {"message": text, "type": "test", "code": status}}).to_string();
            let response = format!(
                "HTTP/1.1 {status} Test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await?;
        }
        Script::Hang => {
            // Hold the connection open, silent, far longer than any timeout under test.
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Script::Tokens { tokens, gap } => {
            let finished = stream_tokens(&mut stream, &tokens, gap, true).await;
            if finished.is_err() {
                state.lock().unwrap_or_else(|e| e.into_inner()).abandoned += 1;
            }
        }
        Script::Gated {
            before,
            after,
            gap,
            gate,
        } => {
            if stream_gated(&mut stream, &before, &after, gap, &gate)
                .await
                .is_err()
            {
                state.lock().unwrap_or_else(|e| e.into_inner()).abandoned += 1;
            }
        }
        Script::Break(tokens) => {
            let _ = stream_tokens(&mut stream, &tokens, Duration::ZERO, false).await;
        }
        Script::Clock { count, gap } => {
            let _ = stream_clock(&mut stream, count, gap).await;
        }
    }
    Ok(())
}

/// `GET /v1/models` (OpenAI's model list, which the settings page's live check asks for, and
/// whose `Authorization` is recorded) and `GET /health` (the classifier server's).
async fn answer_get(stream: &mut TcpStream, head: &str, state: &Mutex<State>) -> Result {
    let body = if head.starts_with("GET /v1/models ") {
        let authorization = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_owned())
        });
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .model_lists
            .push(authorization);
        json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
    } else {
        json!({"status": "ok"})
    }
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

async fn chunk(stream: &mut TcpStream, data: &str) -> Result {
    stream
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
        .context("client went away")?;
    stream.flush().await?;
    Ok(())
}

async fn stream_gated(
    stream: &mut TcpStream,
    before: &[String],
    after: &[String],
    gap: Duration,
    gate: &Gate,
) -> Result {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await?;
    for token in before {
        tokio::time::sleep(gap).await;
        token_chunk(stream, token).await?;
    }
    let deadline = tokio::time::Instant::now() + GATE_LIMIT;
    loop {
        tokio::select! {
            _ = gate.0.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "the gate stayed shut");
                chunk(stream, ": waiting at the gate\n\n").await?;
            }
        }
    }
    for token in after {
        tokio::time::sleep(gap).await;
        token_chunk(stream, token).await?;
    }
    let tokens = before.len() + after.len();
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": tokens}});
    chunk(stream, &format!("data: {usage}\n\n")).await?;
    chunk(stream, "data: [DONE]\n\n").await?;
    stream.write_all(b"0\r\n\r\n").await?;
    Ok(())
}

async fn token_chunk(stream: &mut TcpStream, token: &str) -> Result {
    let event =
        json!({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]});
    chunk(stream, &format!("data: {event}\n\n")).await
}

async fn stream_tokens(
    stream: &mut TcpStream,
    tokens: &[String],
    gap: Duration,
    end: bool,
) -> Result {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await?;
    for token in tokens {
        tokio::time::sleep(gap).await;
        let event =
            json!({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]});
        chunk(stream, &format!("data: {event}\n\n")).await?;
    }
    if !end {
        return Ok(());
    }
    let usage =
        json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": tokens.len()}});
    chunk(stream, &format!("data: {usage}\n\n")).await?;
    chunk(stream, "data: [DONE]\n\n").await?;
    stream.write_all(b"0\r\n\r\n").await?;
    Ok(())
}

async fn stream_clock(stream: &mut TcpStream, count: usize, gap: Duration) -> Result {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await?;
    for _ in 0..count {
        tokio::time::sleep(gap).await;
        let token = format!("t{} ", unix_us());
        let event =
            json!({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]});
        chunk(stream, &format!("data: {event}\n\n")).await?;
    }
    chunk(stream, "data: [DONE]\n\n").await?;
    stream.write_all(b"0\r\n\r\n").await?;
    Ok(())
}
