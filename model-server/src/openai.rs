//! The OpenAI chat completions wire format: parsing and validating a request, and the JSON of
//! responses, stream chunks and errors. No I/O and no model: the HTTP layer and the engine meet
//! here through [`Generation`] and [`ApiError`].
//!
//! Unknown request fields are ignored (clients send `user`, `logprobs: false`, `tools: []`, …);
//! a field we cannot honour with a different meaning than its default (`n > 1`) is refused.

use serde::Deserialize;
use serde_json::{json, Value};

/// `max_tokens` when the request names none.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// The most tokens one answer may have, whatever the request asks: a bound on how long one
/// request can hold the (single) generation slot. Larger requests are clamped, not refused.
pub const MAX_TOKENS_CAP: u32 = 1024;
/// The most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The closed set of error codes this server returns, each with its HTTP status and OpenAI
/// error `type`. Codes are stable strings; add, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// JSON, but not a valid request (missing, empty or ill-typed fields, out-of-range values).
    InvalidRequest,
    /// The prompt leaves no room in the context window for an answer.
    ContextLengthExceeded,
    /// The body is larger than [`MAX_BODY_BYTES`].
    RequestTooLarge,
    /// No such route.
    NotFound,
    /// A known route with the wrong method.
    MethodNotAllowed,
    /// The queue of waiting requests is full.
    ServerBusy,
    /// The `Host` header names a host this server is not (DNS rebinding: a web page whose own
    /// domain now resolves to this machine).
    HostNotAllowed,
    /// `--api-key` is set and the request does not carry it as a bearer token.
    InvalidApiKey,
    /// A POST whose `Content-Type` is not `application/json` (what a web page can send
    /// cross-origin without a preflight).
    UnsupportedMediaType,
    /// Something failed inside the server (logged there).
    Internal,
    /// `POST /v1/classify` with a body that is not a complete PNG, JPEG, WebP or GIF image.
    InvalidImage,
    /// `POST /v1/classify` on a server started without a vision model.
    VisionUnavailable,
}

impl ErrorCode {
    /// The stable snake_case string sent as `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ContextLengthExceeded => "context_length_exceeded",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::HostNotAllowed => "host_not_allowed",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Internal => "internal_error",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::VisionUnavailable => "vision_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidRequest => 400,
            ErrorCode::ContextLengthExceeded => 400,
            ErrorCode::RequestTooLarge => 413,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ServerBusy => 503,
            ErrorCode::HostNotAllowed => 403,
            ErrorCode::InvalidApiKey => 401,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Internal => 500,
            ErrorCode::InvalidImage => 400,
            // The server cannot do this as configured; 503 says so without blaming the request.
            ErrorCode::VisionUnavailable => 503,
        }
    }

    /// OpenAI's `error.type`: clients branch on it to decide whether a retry can help.
    pub fn kind(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidRequest
            | ErrorCode::ContextLengthExceeded
            | ErrorCode::RequestTooLarge
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::HostNotAllowed
            | ErrorCode::InvalidApiKey
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::InvalidImage => "invalid_request_error",
            ErrorCode::ServerBusy | ErrorCode::Internal | ErrorCode::VisionUnavailable => {
                "server_error"
            }
        }
    }
}

/// An error as the client sees it: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// A safe, human explanation.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// `{"error":{"message","type","param","code"}}`, OpenAI's error body.
    pub fn to_json(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.code.kind(),
                "param": null,
                "code": self.code.as_str(),
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Who said a message, after mapping OpenAI's roles onto the three a chat template knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions (`system`, or `developer` in newer clients).
    System,
    /// The human.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl Role {
    /// The role's name in a chat template.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of the conversation, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said (text parts joined).
    pub content: String,
}

/// A validated request: everything the engine needs, nothing it must check again.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The conversation, at least one message.
    pub messages: Vec<Message>,
    /// At most this many tokens are generated (1..=[`MAX_TOKENS_CAP`]).
    pub max_tokens: u32,
    /// 0 means greedy (deterministic); otherwise sampled at this temperature (≤ 2).
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f32,
    /// OpenAI's presence and frequency penalties, in [-2, 2].
    pub presence_penalty: f32,
    /// See `presence_penalty`.
    pub frequency_penalty: f32,
    /// The answer ends before the first of these (not included).
    pub stop: Vec<String>,
    /// A seed makes sampling repeatable.
    pub seed: Option<u32>,
    /// Answer as server-sent events.
    pub stream: bool,
}

/// The request body as sent. Every field is optional here so that a missing one gets our own
/// message instead of serde's, and `Value` where clients disagree on the type.
#[derive(Debug, Deserialize)]
struct RawRequest {
    messages: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    presence_penalty: Option<Value>,
    frequency_penalty: Option<Value>,
    stop: Option<Value>,
    seed: Option<Value>,
    stream: Option<Value>,
    n: Option<Value>,
}

/// Parses and validates a chat completions request body.
pub fn parse_chat_request(body: &[u8]) -> Result<Generation, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("The request body is not valid JSON ({e})."),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object."));
    }
    // Every field is Option<Value>, so an object always deserializes.
    let raw: RawRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("The request could not be read ({e}).")))?;

    let messages = parse_messages(raw.messages)?;
    let max_tokens = match non_null(raw.max_completion_tokens).or(non_null(raw.max_tokens)) {
        None => DEFAULT_MAX_TOKENS,
        Some(v) => {
            let n = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::invalid("'max_tokens' must be an integer of at least 1.")
            })?;
            n.min(u64::from(MAX_TOKENS_CAP)) as u32
        }
    };
    let temperature = number_in(raw.temperature, "temperature", 0.0, 2.0, 1.0)?;
    let top_p = number_in(raw.top_p, "top_p", 0.0, 1.0, 1.0)?;
    if top_p <= 0.0 {
        return Err(ApiError::invalid("'top_p' must be greater than 0."));
    }
    let presence_penalty = number_in(raw.presence_penalty, "presence_penalty", -2.0, 2.0, 0.0)?;
    let frequency_penalty = number_in(raw.frequency_penalty, "frequency_penalty", -2.0, 2.0, 0.0)?;
    let stop = parse_stop(raw.stop)?;
    let seed = match non_null(raw.seed) {
        None => None,
        // OpenAI's seed is any 64-bit integer; llama.cpp's is 32 bits. Folding keeps every seed
        // meaningful instead of refusing large ones.
        Some(v) => {
            let seed = v
                .as_i64()
                .ok_or_else(|| ApiError::invalid("'seed' must be an integer."))?;
            let bits = seed as u64;
            Some((bits ^ (bits >> 32)) as u32)
        }
    };
    let stream = match non_null(raw.stream) {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::invalid("'stream' must be true or false."))?,
    };
    if let Some(n) = non_null(raw.n) {
        if n.as_u64() != Some(1) {
            return Err(ApiError::invalid("Only 'n': 1 is supported."));
        }
    }
    Ok(Generation {
        messages,
        max_tokens,
        temperature,
        top_p,
        presence_penalty,
        frequency_penalty,
        stop,
        seed,
        stream,
    })
}

fn non_null(value: Option<Value>) -> Option<Value> {
    value.filter(|v| !v.is_null())
}

fn number_in(
    value: Option<Value>,
    name: &str,
    min: f64,
    max: f64,
    default: f64,
) -> Result<f32, ApiError> {
    match non_null(value) {
        None => Ok(default as f32),
        Some(v) => match v.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(x as f32),
            _ => Err(ApiError::invalid(format!(
                "'{name}' must be a number from {min} to {max}."
            ))),
        },
    }
}

fn parse_messages(value: Option<Value>) -> Result<Vec<Message>, ApiError> {
    let list = match non_null(value) {
        None => return Err(ApiError::invalid("'messages' is required.")),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::invalid("'messages' must be an array.")),
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "'messages' must contain at least one message.",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m))
        .collect()
}

fn parse_message(index: usize, value: &Value) -> Result<Message, ApiError> {
    let at = |what: &str| ApiError::invalid(format!("messages[{index}]: {what}"));
    let object = value.as_object().ok_or_else(|| at("must be an object."))?;
    let role = match object.get("role").and_then(Value::as_str) {
        Some("system") | Some("developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(at(&format!(
                "role '{other}' is not supported (system, developer, user, assistant)."
            )))
        }
        None => return Err(at("'role' is required.")),
    };
    let content = match object.get("content") {
        Some(Value::String(text)) => text.clone(),
        // An assistant turn that only called tools has no content; as history it is empty.
        None | Some(Value::Null) if role == Role::Assistant => String::new(),
        None | Some(Value::Null) => return Err(at("'content' is required.")),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => return Err(at("only text content parts are supported.")),
                }
            }
            text
        }
        Some(_) => return Err(at("'content' must be a string or an array of text parts.")),
    };
    if content.contains('\0') {
        return Err(at("'content' must not contain NUL characters."));
    }
    Ok(Message { role, content })
}

fn parse_stop(value: Option<Value>) -> Result<Vec<String>, ApiError> {
    let stops = match non_null(value) {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid(
                    "'stop' must be a string or an array of strings.",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "'stop' must be a string or an array of strings.",
            ))
        }
    };
    if stops.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid(format!(
            "'stop' may hold at most {MAX_STOP_SEQUENCES} sequences."
        )));
    }
    Ok(stops)
}

/// Why an answer ended, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn or a stop sequence appeared.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
}

impl FinishReason {
    /// `"stop"` or `"length"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the rendered prompt.
    pub prompt_tokens: u32,
    /// Tokens generated (the end-of-turn token excluded).
    pub completion_tokens: u32,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// What every response of one completion shares: its id, creation time and model name.
#[derive(Debug, Clone)]
pub struct Completion {
    /// `chatcmpl-…`
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's id.
    pub model: String,
}

impl Completion {
    /// The whole answer (`stream: false`).
    pub fn response(&self, content: &str, finish: FinishReason, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": null,
                "finish_reason": finish.as_str(),
            }],
            "usage": usage.to_json(),
        })
    }

    /// The first chunk of a stream: the role, no text yet.
    pub fn role_chunk(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    /// A chunk carrying text.
    pub fn content_chunk(&self, text: &str) -> Value {
        self.chunk(json!({"content": text}), None)
    }

    /// The last chunk with a choice: an empty delta and why the answer ended.
    pub fn finish_chunk(&self, finish: FinishReason) -> Value {
        self.chunk(json!({}), Some(finish))
    }

    /// The usage chunk after the finish chunk: no choices, only counts (OpenAI sends it when
    /// `stream_options.include_usage` is set; here it is always sent, which such clients expect
    /// and others skip, since it has no choices).
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
        })
    }

    fn chunk(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish.map(FinishReason::as_str),
            }],
        })
    }
}

/// `GET /v1/models`.
pub fn models_list(model: &str) -> Value {
    json!({
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 0, "owned_by": "local"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Generation, ApiError> {
        parse_chat_request(body.as_bytes())
    }

    fn code_of(body: &str) -> ErrorCode {
        match parse(body) {
            Ok(g) => panic!("expected an error for {body}, got {g:?}"),
            Err(e) => e.code,
        }
    }

    #[test]
    fn a_minimal_request_gets_the_documented_defaults() {
        let g = parse(r#"{"messages":[{"role":"user","content":"hi"}]}"#).expect("valid");
        assert_eq!(
            g.messages,
            vec![Message {
                role: Role::User,
                content: "hi".into()
            }]
        );
        assert_eq!(g.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(g.temperature, 1.0);
        assert_eq!(g.top_p, 1.0);
        assert!(g.stop.is_empty());
        assert_eq!(g.seed, None);
        assert!(!g.stream);
    }

    #[test]
    fn every_supported_parameter_is_read() {
        let g = parse(
            r#"{"model":"anything","messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],
                "max_tokens":12,"temperature":0,"top_p":0.5,"stop":["a","b"],"seed":7,
                "stream":true,"presence_penalty":0.5,"frequency_penalty":-1}"#,
        )
        .expect("valid");
        assert_eq!(g.messages.len(), 3);
        assert_eq!(g.messages[2].role, Role::Assistant);
        assert_eq!(g.max_tokens, 12);
        assert_eq!(g.temperature, 0.0);
        assert_eq!(g.top_p, 0.5);
        assert_eq!(g.stop, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(g.seed, Some(7));
        assert!(g.stream);
        assert_eq!(g.presence_penalty, 0.5);
        assert_eq!(g.frequency_penalty, -1.0);
    }

    #[test]
    fn unknown_fields_and_nulls_are_tolerated() {
        let g = parse(
            r#"{"messages":[{"role":"user","content":"hi","name":"ann"}],"user":"u1",
                "logprobs":false,"tools":[],"stream_options":{"include_usage":true},
                "temperature":null,"stop":null,"n":1}"#,
        )
        .expect("valid");
        assert_eq!(g.temperature, 1.0);
    }

    #[test]
    fn max_completion_tokens_is_read_and_large_values_are_clamped_to_the_cap() {
        let g = parse(r#"{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9}"#)
            .expect("valid");
        assert_eq!(g.max_tokens, 9);
        let g = parse(r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1000000}"#)
            .expect("valid");
        assert_eq!(g.max_tokens, MAX_TOKENS_CAP);
    }

    #[test]
    fn developer_messages_are_system_instructions_and_text_parts_are_joined() {
        let g = parse(
            r#"{"messages":[{"role":"developer","content":"rules"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null}]}"#,
        )
        .expect("valid");
        assert_eq!(g.messages[0].role, Role::System);
        assert_eq!(g.messages[1].content, "ab");
        assert_eq!(g.messages[2].content, "");
    }

    #[test]
    fn a_single_stop_string_is_one_stop_sequence() {
        let g =
            parse(r#"{"messages":[{"role":"user","content":"hi"}],"stop":"END"}"#).expect("valid");
        assert_eq!(g.stop, vec!["END".to_string()]);
    }

    #[test]
    fn large_seeds_are_folded_into_32_bits_and_stay_distinct() {
        let a = parse(r#"{"messages":[{"role":"user","content":"hi"}],"seed":4294967296}"#)
            .expect("valid")
            .seed;
        let b = parse(r#"{"messages":[{"role":"user","content":"hi"}],"seed":0}"#)
            .expect("valid")
            .seed;
        assert_ne!(a, b);
        assert!(parse(r#"{"messages":[{"role":"user","content":"hi"}],"seed":-5}"#).is_ok());
    }

    #[test]
    fn a_body_that_is_not_json_is_invalid_json() {
        assert_eq!(code_of("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of(""), ErrorCode::InvalidJson);
    }

    #[test]
    fn json_that_is_not_an_object_is_refused() {
        assert_eq!(code_of("[1,2]"), ErrorCode::InvalidRequest);
        assert_eq!(code_of("\"hi\""), ErrorCode::InvalidRequest);
    }

    #[test]
    fn missing_or_empty_messages_are_refused() {
        assert_eq!(code_of("{}"), ErrorCode::InvalidRequest);
        assert_eq!(code_of(r#"{"messages":null}"#), ErrorCode::InvalidRequest);
        assert_eq!(code_of(r#"{"messages":[]}"#), ErrorCode::InvalidRequest);
        assert_eq!(code_of(r#"{"messages":"hi"}"#), ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_messages_are_refused_with_their_index() {
        for body in [
            r#"{"messages":[{"role":"user","content":"ok"},{"content":"no role"}]}"#,
            r#"{"messages":[{"role":"user","content":"ok"},{"role":"tool","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":"ok"},{"role":"user"}]}"#,
            r#"{"messages":[{"role":"user","content":"ok"},{"role":"user","content":5}]}"#,
            r#"{"messages":[{"role":"user","content":"ok"},{"role":"user","content":[{"type":"image_url"}]}]}"#,
            r#"{"messages":[{"role":"user","content":"ok"},"text"]}"#,
        ] {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
            assert!(
                err.message.starts_with("messages[1]"),
                "{body}: {}",
                err.message
            );
        }
    }

    #[test]
    fn a_nul_character_in_content_is_refused() {
        assert_eq!(
            code_of(r#"{"messages":[{"role":"user","content":"a\u0000b"}]}"#),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn out_of_range_or_ill_typed_parameters_are_refused() {
        for extra in [
            r#""max_tokens":0"#,
            r#""max_tokens":-3"#,
            r#""max_tokens":"ten""#,
            r#""temperature":2.5"#,
            r#""temperature":"hot""#,
            r#""top_p":0"#,
            r#""top_p":1.5"#,
            r#""presence_penalty":3"#,
            r#""stop":5"#,
            r#""stop":["a",1]"#,
            r#""stop":["a","b","c","d","e"]"#,
            r#""seed":1.5"#,
            r#""stream":"yes""#,
            r#""n":2"#,
        ] {
            let body = format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],{extra}}}"#);
            assert_eq!(code_of(&body), ErrorCode::InvalidRequest, "{extra}");
        }
    }

    #[test]
    fn errors_have_openai_shape_with_a_stable_code() {
        let err = ApiError::new(ErrorCode::ContextLengthExceeded, "too long");
        assert_eq!(
            err.to_json(),
            json!({"error": {"message": "too long", "type": "invalid_request_error",
                "param": null, "code": "context_length_exceeded"}})
        );
        assert_eq!(ErrorCode::ServerBusy.status(), 503);
        assert_eq!(ErrorCode::ServerBusy.kind(), "server_error");
        assert_eq!(ErrorCode::RequestTooLarge.status(), 413);
    }

    #[test]
    fn the_image_errors_are_a_client_error_and_a_server_condition() {
        assert_eq!(ErrorCode::InvalidImage.as_str(), "invalid_image");
        assert_eq!(ErrorCode::InvalidImage.status(), 400);
        assert_eq!(ErrorCode::InvalidImage.kind(), "invalid_request_error");
        assert_eq!(ErrorCode::VisionUnavailable.as_str(), "vision_unavailable");
        assert_eq!(ErrorCode::VisionUnavailable.status(), 503);
        assert_eq!(ErrorCode::VisionUnavailable.kind(), "server_error");
    }

    #[test]
    fn chunks_and_responses_have_openai_shape() {
        let c = Completion {
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m".into(),
        };
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let whole = c.response("hey", FinishReason::Length, usage);
        assert_eq!(whole["object"], "chat.completion");
        assert_eq!(whole["choices"][0]["message"]["content"], "hey");
        assert_eq!(whole["choices"][0]["finish_reason"], "length");
        assert_eq!(whole["usage"]["total_tokens"], 5);
        assert_eq!(c.role_chunk()["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(c.content_chunk("x")["choices"][0]["delta"]["content"], "x");
        assert_eq!(
            c.content_chunk("x")["choices"][0]["finish_reason"],
            Value::Null
        );
        assert_eq!(
            c.finish_chunk(FinishReason::Stop)["choices"][0]["finish_reason"],
            "stop"
        );
        let u = c.usage_chunk(usage);
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["completion_tokens"], 2);
        assert_eq!(u["object"], "chat.completion.chunk");
    }
}
