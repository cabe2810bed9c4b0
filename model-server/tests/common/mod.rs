//! The built `model-server` binary as a test fixture, with the real SmolLM2 model.
//!
//! Each test starts its own server (a clean queue and counters) with one llama.cpp thread, so
//! the two tests cargo runs at once use the two cores without oversubscribing them. The server
//! is started with `--exit-on-stdin-eof` and a pipe as its stdin: if the test process dies
//! without dropping the fixture, the pipe closes and the server exits.

#![allow(dead_code)] // each test file uses a different part of the fixture

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How long loading the model may take.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Generous bound on one request: these are failure detectors, not performance checks.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The model the tests need: `LOCAL_MODEL_PATH`, or the default beside the repository.
pub fn model_path() -> PathBuf {
    match std::env::var("LOCAL_MODEL_PATH") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(model_server::config::DEFAULT_MODEL),
    }
}

/// A running server.
pub struct TestServer {
    child: Child,
    _lifeline: ChildStdin,
    base: String,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts the server on a free port and waits until it is ready.
    pub fn start(extra_args: &[&str]) -> TestServer {
        let model = model_path();
        assert!(
            model.is_file(),
            "the model-server tests need the SmolLM2 GGUF at {} (set LOCAL_MODEL_PATH, or run \
             ./scripts/fetch-model on a machine with internet)",
            model.display()
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_model-server"))
            .arg("--model")
            .arg(&model)
            .args(["--port", "0", "--threads", "1", "--exit-on-stdin-eof"])
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning model-server");
        let lifeline = child.stdin.take().expect("piped stdin");
        let stderr = child.stderr.take().expect("piped stderr");
        // The server prints its address once the model is loaded; the rest of its output is
        // echoed so a failing test shows it.
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Some(rest) = line.split("ready on http://").nth(1) {
                    let address = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = ready_tx.send(address);
                }
            }
        });
        let address = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("model-server did not become ready (exit status {status:?})");
            }
        };
        TestServer {
            child,
            _lifeline: lifeline,
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("http client"),
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POSTs a raw body to the chat endpoint; returns status and parsed JSON.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sending the request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("reading the response");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
        (status, json)
    }

    /// POSTs raw bytes declared as `content_type` to `path`; returns status and parsed JSON.
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// POSTs a JSON request; returns status and parsed JSON.
    pub async fn chat(&self, request: &Value) -> (u16, Value) {
        self.post_raw(request.to_string()).await
    }

    /// Starts a streaming request and returns its event reader (after checking the status).
    pub async fn stream(&self, request: &Value) -> SseReader {
        let response = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .json(request)
            .send()
            .await
            .expect("sending the request");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        SseReader {
            response,
            buffer: Vec::new(),
        }
    }

    /// GETs a path; returns status and parsed JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sending the request");
        let status = response.status().as_u16();
        let json = response.json().await.expect("a JSON body");
        (status, json)
    }

    /// The `/health` counters.
    pub async fn health(&self) -> Value {
        let (status, body) = self.get("/health").await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request; returns status and parsed JSON.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("sending the request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the response");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
    (status, json)
}

/// Reads `data:` events from a server-sent event stream.
pub struct SseReader {
    response: reqwest::Response,
    /// Bytes, not text: a network chunk may end inside a multi-byte character.
    buffer: Vec<u8>,
}

impl SseReader {
    /// The next event's data (`[DONE]` included), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let event = String::from_utf8(event).expect("events are UTF-8");
                let data = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Some(data);
            }
            match self.response.chunk().await.expect("reading the stream") {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => {
                    assert!(
                        self.buffer.iter().all(u8::is_ascii_whitespace),
                        "stream ended mid-event: {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    );
                    return None;
                }
            }
        }
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// A prompt the model answers at length (greedy decoding loops rather than ending).
pub fn long_story(max_tokens: u32, stream: bool) -> Value {
    serde_json::json!({
        "model": "anything",
        "messages": [{"role": "user", "content": "Write a very long story about a dragon and a knight."}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
    })
}
