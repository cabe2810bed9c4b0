//! The logger's HTTP API. It has no public address (see `logger/wrangler.toml`): only the main
//! Worker reaches it, through its service binding, and the main Worker decides who may write
//! (its own hooks, the app's reports after its rate limit) and who may read (admins).
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /entries` with a [`shared::logs::LogBatch`] | 200 [`shared::logs::BatchReceipt`] |
//! | `GET /entries?level=&from=&to=&q=&cursor=&limit=` | 200 [`shared::logs::LogPage`] |
//! | `GET /entries/tail?after=&level=&q=&limit=` | 200 [`shared::logs::TailPage`] |
//!
//! Every error is `{code, message}` with the code's status: `invalid_frame` (400, a body that
//! is not a batch), `too_large` (413, a body over [`MAX_BATCH_BYTES`], more than
//! [`MAX_BATCH_ENTRIES`] entries, a search text over its limit), `invalid_input` (400, a bad
//! query value), `not_found` (404, any other route or method), `internal` (500, KV failed).
//!
//! The live tail is polling (`/entries/tail?after=<the last answer's after>` every few seconds),
//! not a stream: nothing notifies a Worker of a KV write, so an SSE response or a WebSocket
//! would only poll KV inside a request held open (through the main Worker's binding too), and
//! a Durable Object to fan entries out would be a second store for the same entries. KV is also
//! eventually consistent between locations (a write may take up to a minute to be listed
//! elsewhere), which a stream could not hide either. Each poll costs one listing plus reads of
//! the new entries only.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::error::{ChatError, ErrorCode};
use shared::logs::{Filter, TailQuery, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use shared::protocol::http::ErrorBody;
use worker::{Env, Method, Request, Response};

use crate::kv::WorkersKv;
use crate::store::{self, Limits, StoreError};

/// Answers one request; every refusal and failure becomes its error response.
pub(crate) async fn handle(mut req: Request, env: &Env) -> worker::Result<Response> {
    match route(&mut req, env).await {
        Ok(response) => Ok(response),
        Err(error) => error_response(&error),
    }
}

async fn route(req: &mut Request, env: &Env) -> Result<Response, ChatError> {
    let url = req.url().map_err(|e| internal("reading the URL", e))?;
    let query = url.query().unwrap_or("");
    match (req.method(), url.path()) {
        (Method::Post, "/entries") => {
            let body = read_capped(req, MAX_BATCH_BYTES).await?;
            let values = parse_batch(&body)?;
            let receipt = store::write(&logs(env)?, values, now(), random_hex).await;
            for rejected in receipt
                .rejected
                .iter()
                .filter(|r| r.code == ErrorCode::Internal)
            {
                worker::console_error!(
                    "logger: entry {} not stored: {}",
                    rejected.index,
                    rejected.message
                );
            }
            json(&receipt)
        }
        (Method::Get, "/entries") => {
            let filter = Filter::from_query(query)?;
            let page = store::list(&logs(env)?, &filter, Limits::WORKER)
                .await
                .map_err(store_failed)?;
            json(&page)
        }
        (Method::Get, "/entries/tail") => {
            let tail = TailQuery::from_query(query)?;
            let page = store::tail(&logs(env)?, &tail, Limits::WORKER)
                .await
                .map_err(store_failed)?;
            json(&page)
        }
        _ => Err(ChatError::new(ErrorCode::NotFound, "no such route")),
    }
}

/// The body of `POST /entries`: the entries stay JSON values so each is judged on its own.
#[derive(Deserialize)]
struct RawBatch {
    entries: Vec<Value>,
}

/// A batch's entries, or why the whole batch is refused: not a batch (`invalid_frame`), or
/// more than [`MAX_BATCH_ENTRIES`] (`too_large`).
pub(crate) fn parse_batch(body: &[u8]) -> Result<Vec<Value>, ChatError> {
    let batch: RawBatch = serde_json::from_slice(body).map_err(|e| {
        ChatError::new(
            ErrorCode::InvalidFrame,
            format!("the body is not a batch ({{\"entries\": [...]}}): {e}"),
        )
    })?;
    if batch.entries.len() > MAX_BATCH_ENTRIES {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("a batch holds at most {MAX_BATCH_ENTRIES} entries"),
        ));
    }
    Ok(batch.entries)
}

/// The request's body, at most `max` bytes: a larger declared `Content-Length` is refused
/// before reading, a body without one at the first chunk past `max`.
async fn read_capped(req: &mut Request, max: usize) -> Result<Vec<u8>, ChatError> {
    let too_large = || {
        ChatError::new(
            ErrorCode::TooLarge,
            format!("a batch is at most {} KB", max.div_ceil(1024)),
        )
    };
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(body);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| internal("reading the body", e))?;
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn logs(env: &Env) -> Result<WorkersKv, ChatError> {
    env.kv("LOGS")
        .map(WorkersKv)
        .map_err(|e| internal("binding LOGS", e))
}

fn internal(what: &str, e: impl std::fmt::Display) -> ChatError {
    worker::console_error!("logger: {what}: {e}");
    ChatError::new(ErrorCode::Internal, "the logger failed")
}

fn store_failed(StoreError(detail): StoreError) -> ChatError {
    internal("the log store", detail)
}

fn json(body: &impl Serialize) -> Result<Response, ChatError> {
    let mut response = Response::from_json(body).map_err(|e| internal("serializing", e))?;
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

fn error_response(error: &ChatError) -> worker::Result<Response> {
    let body = ErrorBody {
        code: error.code,
        message: error.message.clone(),
    };
    let mut response = Response::from_json(&body)?.with_status(error.code.http_status());
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

/// The logger's clock (ms). In a Worker it advances only across I/O.
fn now() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// 64 random bits as 16 hex characters, from the runtime's Web Crypto.
fn random_hex() -> String {
    use worker::js_sys;
    use worker::wasm_bindgen::{JsCast, JsValue};

    let array = js_sys::Uint8Array::new_with_length(8);
    let filled =
        js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).and_then(|crypto| {
            let get_random_values: js_sys::Function =
                js_sys::Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))?
                    .unchecked_into();
            get_random_values.call1(&crypto, &array)
        });
    let mut bytes = [0u8; 8];
    if filled.is_ok() {
        array.copy_to(&mut bytes);
    } else {
        // No Web Crypto (never in Workers): uniqueness, not secrecy, is what the key needs.
        let seed = (js_sys::Math::random() * u32::MAX as f64) as u64;
        bytes = (seed ^ now() as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_is_an_object_with_an_entries_array() {
        let body = json!({"entries": [{"any": "thing"}, 1]}).to_string();
        assert_eq!(parse_batch(body.as_bytes()).map(|v| v.len()), Ok(2));
        assert_eq!(parse_batch(br#"{"entries": []}"#).map(|v| v.len()), Ok(0));
    }

    #[test]
    fn a_garbled_body_is_invalid_frame() {
        for body in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"entries": {}}"#,
            br#"{"entries": [1,"#,
            b"",
        ] {
            assert_eq!(
                parse_batch(body).map_err(|e| e.code),
                Err(ErrorCode::InvalidFrame),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_batch_of_more_than_50_entries_is_too_large() {
        let entries: Vec<Value> = (0..=MAX_BATCH_ENTRIES).map(|i| json!(i)).collect();
        let body = json!({ "entries": entries }).to_string();
        assert_eq!(
            parse_batch(body.as_bytes()).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
    }
}
