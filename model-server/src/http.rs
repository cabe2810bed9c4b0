//! HTTP/1.1 on hyper: four routes, JSON bodies, and server-sent events for streams.
//!
//! `POST /v1/classify` takes an image as the raw body and answers what it shows (see
//! [`crate::vision`]); the classification runs on a blocking thread (inside the classifier's own
//! pool), never on the async thread that streams chat answers.
//!
//! A streamed answer is a body that pulls the job's events as hyper writes it out. When the
//! client hangs up, hyper drops the body, the job's receiver goes with it, and the model worker
//! stops that generation at its next token: a vanished client never holds the queue.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::vision::{Classification, Classifier, VisionError, MAX_PIXELS};

/// The image classification route.
pub const CLASSIFY_PATH: &str = "/v1/classify";
/// The largest image body accepted: a phone photo is a few MB; 25 MB leaves room for a large
/// PNG while bounding what one request can make the server hold.
pub const MAX_IMAGE_BYTES: usize = 25 << 20;

/// A response body: whole JSON or an event stream.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// What the routes serve.
#[derive(Debug)]
pub struct Services {
    /// The chat model.
    pub chat: Arc<Engine>,
    /// The image classifier, when a vision model was loaded; without it `POST /v1/classify`
    /// answers `vision_unavailable` and everything else works as before.
    pub vision: Option<Vision>,
}

/// The classifier behind `POST /v1/classify` and the count of requests it holds.
#[derive(Debug)]
pub struct Vision {
    classifier: Arc<Classifier>,
    gate: Gate,
}

impl Vision {
    /// Serves `classifier`, letting up to `queue` requests wait behind those it is running.
    pub fn new(classifier: Classifier, queue: usize) -> Vision {
        let capacity = classifier.threads() + queue;
        Vision {
            classifier: Arc::new(classifier),
            gate: Gate::new(capacity),
        }
    }
}

/// Admits at most `capacity` requests at once. Classifications take turns in the classifier's
/// thread pool; the ones beyond it get `server_busy` at once instead of each parking a blocking
/// thread and an image body of up to [`MAX_IMAGE_BYTES`] (the same policy as the chat queue).
#[derive(Debug)]
struct Gate {
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
}

/// One admitted request; leaving frees its place.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    fn new(capacity: usize) -> Gate {
        Gate {
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }

    fn admit(&self) -> Result<Admission, ApiError> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        // Made before the check, so a refusal gives its place back when it is dropped.
        let admission = Admission(Arc::clone(&self.in_flight));
        if before >= self.capacity {
            return Err(ApiError::new(
                ErrorCode::ServerBusy,
                "Too many images are waiting to be classified; try again shortly.",
            ));
        }
        Ok(admission)
    }
}

/// Accepts connections until the listener fails, serving each on its own task.
pub async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
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
        let services = Arc::clone(&services);
        let access = Arc::clone(&access);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let services = Arc::clone(&services);
                let access = Arc::clone(&access);
                async move {
                    // Refused before any route runs; the body is only drained (see `refuse`).
                    let response =
                        match access.check(request.method(), request.uri(), request.headers()) {
                            Ok(()) => route(request, services).await,
                            Err(e) => error_response(&refuse(request, e).await),
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
pub async fn route(request: Request<Incoming>, services: Arc<Services>) -> Response<ResponseBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let engine = &services.chat;
    let result = match (path.as_str(), &method) {
        ("/v1/chat/completions", &Method::POST) => chat(request, Arc::clone(engine)).await,
        (CLASSIFY_PATH, &Method::POST) => classify(request, services.vision.as_ref()).await,
        ("/v1/models", &Method::GET) => {
            Ok(json_response(StatusCode::OK, &models_list(engine.id())))
        }
        ("/health", &Method::GET) => Ok(health(&services)),
        ("/v1/chat/completions" | CLASSIFY_PATH | "/v1/models" | "/health", _) => {
            let error = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed here."),
            );
            Err(refuse(request, error).await)
        }
        _ => {
            let error = ApiError::new(
                ErrorCode::NotFound,
                format!("No route {path}. Try POST /v1/chat/completions."),
            );
            Err(refuse(request, error).await)
        }
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// Passes `error` on once the request's unread body is drained (read and dropped, at most
/// [`MAX_IMAGE_BYTES`]). Answering a client that is still sending makes hyper close the
/// connection with bytes unread, which resets it, and the reset can destroy the answer before
/// the client reads it: an 80 KB image sent with a wrong API key got a broken connection
/// instead of 401.
async fn refuse(request: Request<Incoming>, error: ApiError) -> ApiError {
    let mut body = Limited::new(request.into_body(), MAX_IMAGE_BYTES);
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    error
}

fn health(services: &Services) -> Response<ResponseBody> {
    let engine = &services.chat;
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
        // Added with /v1/classify: the vision model's id, or null when there is none.
        "vision": services.vision.as_ref().map(|v| v.classifier.id()),
    });
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// The whole body, refused as `request_too_large` past `limit` bytes.
async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("The request body is larger than {limit} bytes."),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The request body could not be read.",
        )),
    }
}

async fn classify(
    request: Request<Incoming>,
    vision: Option<&Vision>,
) -> Result<Response<ResponseBody>, ApiError> {
    let Some(vision) = vision else {
        let error = ApiError::new(
            ErrorCode::VisionUnavailable,
            "This server has no vision model; start it with --vision-model DIR.",
        );
        return Err(refuse(request, error).await);
    };
    // Before the body is read: a busy server keeps no more image bodies (it drops this one).
    let admission = match vision.gate.admit() {
        Ok(admission) => admission,
        Err(error) => return Err(refuse(request, error).await),
    };
    let body = read_body(request, MAX_IMAGE_BYTES).await?;
    let classifier = Arc::clone(&vision.classifier);
    let result = tokio::task::spawn_blocking(move || {
        // Held until the work is done, even if the client has gone: the pool is busy till then.
        let _admission = admission;
        classifier.classify(&body)
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "Classifying the image failed."))?;
    match result {
        Ok(classification) => Ok(json_response(
            StatusCode::OK,
            &classification_json(&classification, vision.classifier.id()),
        )),
        Err(VisionError::InvalidImage(reason)) => Err(ApiError::new(
            ErrorCode::InvalidImage,
            format!("The body is not a usable PNG, JPEG, WebP or GIF image: {reason}."),
        )),
        Err(VisionError::ImageTooLarge { width, height }) => Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("The image is {width}×{height} pixels; at most {MAX_PIXELS} are accepted."),
        )),
        Err(e @ (VisionError::Model(_) | VisionError::Inference(_))) => {
            // Ours, not the client's: the detail goes to the log only.
            eprintln!("[model-server] classify: {e}");
            Err(ApiError::new(
                ErrorCode::Internal,
                "Classifying the image failed.",
            ))
        }
    }
}

/// `{"labels":[{"index","name","probability"}…],"width","height","format","model"}`.
fn classification_json(classification: &Classification, model: &str) -> Value {
    let labels: Vec<Value> = classification
        .labels
        .iter()
        .map(|label| {
            json!({
                "index": label.index,
                "name": label.name,
                "probability": shortest(label.probability),
            })
        })
        .collect();
    json!({
        "labels": labels,
        "width": classification.width,
        "height": classification.height,
        "format": classification.format.as_str(),
        "model": model,
    })
}

/// A float32 as the shortest decimal that reads back as it (`0.7992`): JSON numbers are f64,
/// and widening first would print digits the f32 never had (`0.799199998378754`).
fn shortest(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

async fn chat(
    request: Request<Incoming>,
    engine: Arc<Engine>,
) -> Result<Response<ResponseBody>, ApiError> {
    let body = read_body(request, MAX_BODY_BYTES).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_up_to_its_capacity_then_answers_server_busy_until_one_leaves() {
        let gate = Gate::new(2);
        let first = gate.admit().expect("first");
        let _second = gate.admit().expect("second");
        let refused = gate.admit().err().map(|e| e.code);
        assert_eq!(refused, Some(ErrorCode::ServerBusy));
        assert_eq!(
            gate.in_flight.load(Ordering::SeqCst),
            2,
            "a refusal keeps no place"
        );
        drop(first);
        assert!(gate.admit().is_ok());
    }

    #[test]
    fn probabilities_are_written_with_the_digits_a_float32_has() {
        assert_eq!(shortest(0.7992).to_string(), "0.7992");
        assert_eq!(shortest(0.000_812_3).to_string(), "0.0008123");
        assert_eq!(shortest(1.0).to_string(), "1.0");
    }
}
