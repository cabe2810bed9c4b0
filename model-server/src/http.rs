//! HTTP/1.1 on hyper: three routes, JSON bodies, and server-sent events for streams.
//!
//! A streamed answer is a body that pulls the job's events as hyper writes it out. When the
//! client hangs up, hyper drops the body, the job's receiver goes with it, and the model worker
//! stops that generation at its next token: a vanished client never holds the queue.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::access::Access;
use crate::engine::{collect, Engine, Event};
use crate::openai::{
    models_list, parse_chat_request, ApiError, Completion, ErrorCode, MAX_BODY_BYTES,
};

/// A response body: whole JSON or an event stream.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// Accepts connections until the listener fails, serving each on its own task.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    access: Arc<Access>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // A connection that failed before it was accepted (reset, out of descriptors for a
            // moment) must not stop the server.
            Err(e) => {
                eprintln!("[model-server] accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let engine = Arc::clone(&engine);
        let access = Arc::clone(&access);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let engine = Arc::clone(&engine);
                let access = Arc::clone(&access);
                async move {
                    // Refused before the body is read or any route runs.
                    let response =
                        match access.check(request.method(), request.uri(), request.headers()) {
                            Ok(()) => route(request, engine).await,
                            Err(e) => error_response(&e),
                        };
                    Ok::<_, Infallible>(response)
                }
            });
            // A client that disconnects mid-response ends its connection; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Dispatches one request.
pub async fn route(request: Request<Incoming>, engine: Arc<Engine>) -> Response<ResponseBody> {
    let method = request.method().clone();
    match (request.uri().path(), method) {
        ("/v1/chat/completions", Method::POST) => match chat(request, engine).await {
            Ok(response) => response,
            Err(e) => error_response(&e),
        },
        ("/v1/models", Method::GET) => json_response(StatusCode::OK, &models_list(engine.id())),
        ("/health", Method::GET) => health(&engine),
        ("/v1/chat/completions" | "/v1/models" | "/health", method) => {
            error_response(&ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed here."),
            ))
        }
        (path, _) => error_response(&ApiError::new(
            ErrorCode::NotFound,
            format!("No route {path}. Try POST /v1/chat/completions."),
        )),
    }
}

fn health(engine: &Engine) -> Response<ResponseBody> {
    let stats = engine.stats();
    let alive = stats.worker_alive.load(Ordering::SeqCst);
    let body = json!({
        "status": if alive { "ok" } else { "unavailable" },
        "model": engine.id(),
        "context": engine.n_ctx(),
        "threads": engine.threads(),
        "template": engine.template_source(),
        "queued": stats.queued.load(Ordering::SeqCst),
        "busy": stats.busy.load(Ordering::SeqCst),
        "completed": stats.completed.load(Ordering::SeqCst),
        "cancelled": stats.cancelled.load(Ordering::SeqCst),
        "failed": stats.failed.load(Ordering::SeqCst),
        "reused_prompt_tokens": stats.reused_prompt_tokens.load(Ordering::Relaxed),
    });
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

async fn chat(
    request: Request<Incoming>,
    engine: Arc<Engine>,
) -> Result<Response<ResponseBody>, ApiError> {
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                ErrorCode::RequestTooLarge,
                format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
            ))
        }
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "The request body could not be read.",
            ))
        }
    };
    let generation = parse_chat_request(&body)?;
    let prompt = {
        let engine = Arc::clone(&engine);
        let messages = generation.messages.clone();
        // Tokenizing a long conversation takes milliseconds of CPU: off the async thread.
        tokio::task::spawn_blocking(move || engine.prompt(&messages))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "Preparing the prompt failed."))??
    };
    let stream = generation.stream;
    let events = engine.submit(prompt, generation)?;
    let completion = Completion {
        id: format!("chatcmpl-{}", random_hex(12)),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: engine.id().to_string(),
    };
    if stream {
        let body = SseBody {
            events,
            completion,
            started: false,
            finished: false,
        };
        let mut response = Response::new(body.boxed());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(response);
    }
    let (text, finish, usage) = collect(events).await?;
    Ok(json_response(
        StatusCode::OK,
        &completion.response(&text, finish, usage),
    ))
}

/// The event stream of one answer: a role chunk, content chunks, a finish chunk, a usage chunk
/// and `[DONE]`; or an `{"error":…}` event if the model fails midway (the status is already 200).
struct SseBody {
    events: UnboundedReceiver<Event>,
    completion: Completion,
    started: bool,
    finished: bool,
}

fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn data(text: String) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    Poll::Ready(Some(Ok(Frame::data(Bytes::from(text)))))
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.started {
            // Sent at once, before the job leaves the queue: the client sees the answer begin.
            self.started = true;
            return data(sse(&self.completion.role_chunk()));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        match self.events.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Event::Text(text))) => {
                data(sse(&self.completion.content_chunk(&text)))
            }
            Poll::Ready(Some(Event::Done { finish, usage })) => {
                self.finished = true;
                data(format!(
                    "{}{}data: [DONE]\n\n",
                    sse(&self.completion.finish_chunk(finish)),
                    sse(&self.completion.usage_chunk(usage))
                ))
            }
            Poll::Ready(Some(Event::Failed(error))) => {
                self.finished = true;
                data(sse(&error.to_json()))
            }
            Poll::Ready(None) => {
                self.finished = true;
                data(sse(&ApiError::new(
                    ErrorCode::Internal,
                    "The model worker stopped.",
                )
                .to_json()))
            }
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(error: &ApiError) -> Response<ResponseBody> {
    let status =
        StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error.to_json())
}

/// `len` random bytes as hex (completion ids need to be unique, not secret).
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes();
        for (b, n) in bytes.iter_mut().zip(nanos) {
            *b = n;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
