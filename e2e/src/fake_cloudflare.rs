//! A fake of Cloudflare's API on loopback, for the settings page's "Save to Cloudflare": it
//! answers `PUT <base>/accounts/<account>/workers/scripts/<script>/secrets` as the real API
//! does (`{success, errors, messages, result}`), and records every request it gets. The Worker
//! reaches it through the dev-only `CLOUDFLARE_API_BASE=<base>`.
//!
//! Like the real API it checks what the Worker must get right: the bearer token, the account
//! in the path, and the body's `{name, text, type: "secret_text"}`. A test can make the secret
//! of one name fail ([`FakeCloudflare::fail_secret`]), so tests sharing the fake stay apart.
//!
//! Plain HTTP/1.1, one request per connection: enough for the Worker's fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// The API token the fake accepts.
pub const TOKEN: &str = "fake-cloudflare-token";
/// The account id the fake knows.
pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// One request the fake got.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `PUT`, `GET`, …
    pub method: String,
    /// The path, from the base's `/client/v4` on.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Secret name → (status, error code, message) to answer with instead of success.
    failures: HashMap<String, (u16, i64, String)>,
}

/// The running fake (on its own thread and runtime, so it outlives the test that started it).
pub struct FakeCloudflare {
    base: String,
    state: Arc<Mutex<State>>,
}

impl FakeCloudflare {
    /// Starts on a free loopback port.
    pub fn start() -> Result<FakeCloudflare> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let base = format!(
            "http://127.0.0.1:{}/client/v4",
            listener.local_addr()?.port()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let state = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let _ = serve(stream, &state).await;
                    });
                }
            });
        });
        Ok(FakeCloudflare { base, state })
    }

    /// The base URL (the Worker's `CLOUDFLARE_API_BASE`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests that set the secret `name`.
    pub fn secret_puts(&self, name: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.body["name"] == name)
            .collect()
    }

    /// Makes every later request for the secret `name` fail with this status and API error.
    pub fn fail_secret(&self, name: &str, status: u16, code: i64, message: &str) {
        self.lock()
            .failures
            .insert(name.to_owned(), (status, code, message.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Cloudflare's error envelope.
fn refusal(code: i64, message: &str) -> Value {
    json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    })
}

async fn serve(mut stream: TcpStream, state: &Mutex<State>) -> Result {
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
    let header = |wanted: &str| {
        head.lines().skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default();
    let path = target
        .find("/client/v4")
        .map_or(target, |i| &target[i + "/client/v4".len()..])
        .to_owned();
    let body: Value = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);
    let authorization = header("authorization");
    let (status, answer) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            body: body.clone(),
        });
        decide(&state, &method, &path, authorization.as_deref(), &body)
    };
    let text = answer.to_string();
    let response = format!(
        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

/// The real API's answer to one request, as far as the fake models it.
fn decide(
    state: &State,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    if authorization != Some(format!("Bearer {TOKEN}").as_str()) {
        return (403, refusal(10000, "Authentication error"));
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["accounts", account, "workers", "scripts", _script, "secrets"] = parts.as_slice() else {
        return (404, refusal(7003, "Could not route to this path."));
    };
    if *account != ACCOUNT {
        return (404, refusal(7003, "Could not route to the account."));
    }
    if method != "PUT" {
        return (405, refusal(10405, "Method not allowed."));
    }
    let (Some(name), Some(_text), Some("secret_text")) = (
        body["name"].as_str(),
        body["text"].as_str(),
        body["type"].as_str(),
    ) else {
        return (
            400,
            refusal(10021, "Expected {name, text, type: secret_text}."),
        );
    };
    if let Some((status, code, message)) = state.failures.get(name) {
        return (*status, refusal(*code, message));
    }
    (
        200,
        json!({
            "success": true,
            "errors": [],
            "messages": [],
            "result": {"name": name, "type": "secret_text"},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str) -> Value {
        json!({"name": name, "text": "v", "type": "secret_text"})
    }

    const PATH: &str =
        "/accounts/0123456789abcdef0123456789abcdef/workers/scripts/durable-chat/secrets";

    #[test]
    fn the_fake_wants_the_token_the_account_and_a_secret_text_body() {
        let state = State::default();
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(decide(&state, "PUT", PATH, Some(&bearer), &put("A")).0, 200);
        assert_eq!(
            decide(&state, "PUT", PATH, Some("Bearer nope"), &put("A")).0,
            403
        );
        assert_eq!(decide(&state, "PUT", PATH, None, &put("A")).0, 403);
        let other = PATH.replace(ACCOUNT, "ffffffffffffffffffffffffffffffff");
        assert_eq!(
            decide(&state, "PUT", &other, Some(&bearer), &put("A")).0,
            404
        );
        let plain = json!({"name": "A", "text": "v", "type": "plain_text"});
        assert_eq!(decide(&state, "PUT", PATH, Some(&bearer), &plain).0, 400);
        let mut failing = State::default();
        failing.failures.insert(
            "A".into(),
            (500, 10013, "An unknown error has occurred".into()),
        );
        let (status, body) = decide(&failing, "PUT", PATH, Some(&bearer), &put("A"));
        assert_eq!(status, 500);
        assert_eq!(body["errors"][0]["code"], 10013);
        assert_eq!(
            decide(&failing, "PUT", PATH, Some(&bearer), &put("B")).0,
            200
        );
    }
}
