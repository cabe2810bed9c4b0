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

impl Script {
    /// Tokens split from `text` at spaces (keeping them), `gap` apart.
    pub fn words(text: &str, gap: Duration) -> Script {
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
        Script::Tokens { tokens, gap }
    }
}

#[derive(Default)]
struct State {
    /// (marker, script): a request takes the first script whose marker appears in it.
    scripts: VecDeque<(String, Script)>,
    requests: Vec<Value>,
    /// Requests whose client went away before the stream ended.
    abandoned: usize,
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
        Script::Break(tokens) => {
            let _ = stream_tokens(&mut stream, &tokens, Duration::ZERO, false).await;
        }
        Script::Clock { count, gap } => {
            let _ = stream_clock(&mut stream, count, gap).await;
        }
    }
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
