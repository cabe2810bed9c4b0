//! AI providers, all reached from the edge (the browser never holds a key): the Workers AI
//! binding in production, any OpenAI-compatible server (OpenAI, Ollama, llama.cpp, vLLM, and
//! this repo's `model-server` locally). Both answer a streaming request with server-sent
//! events, read by `shared::ai::StreamReader`.
//!
//! Configuration (vars / secrets):
//! - `AI_PROVIDER`: `workers-ai`, `openai` or `off`. Unset: Workers AI if the `AI` binding
//!   exists, else `openai` if `AI_BASE_URL` is set, else no assistant (a clear error).
//! - `AI_MODEL`: the chat model (default for Workers AI: [`WORKERS_AI_DEFAULT_MODEL`]).
//! - `AI_BASE_URL` (e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8788/v1`) and the
//!   secret `AI_API_KEY` (optional for local servers).
//! - `AI_VISION`: `true` or `false`, whether the model is sent the question's images (see
//!   [`Provider::sees`]). A model that is not sees them only as words (`attachment_facts`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use shared::ai::{ChatMessage, ChatRole, CompletionRequest, PromptImage, StreamFormat};
use shared::error::{ChatError, ErrorCode};
use shared::media::Kind;
use worker::{
    console_log, AbortSignal, ByteStream, Env, Fetch, Headers, Method, Request, RequestInit,
};

use crate::config;

/// The Workers AI chat model used when `AI_MODEL` is not set.
pub const WORKERS_AI_DEFAULT_MODEL: &str = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";

/// The Workers AI models that see images: what `AI_VISION` defaults to for them.
pub const WORKERS_AI_VISION_MODELS: [&str; 2] =
    ["@cf/meta/llama-4-scout-17b-16e-instruct", LLAMA_32_VISION];

/// Llama 3.2 Vision on Workers AI takes one image, as the input's `image` (its bytes, an array
/// of integers 0–255, as the model's schema documents it), beside text-only messages; the
/// other vision models take OpenAI's `image_url` content parts.
const LLAMA_32_VISION: &str = "@cf/meta/llama-3.2-11b-vision-instruct";

/// The largest image sent to a model; a larger one is sent as its thumbnail, if it has one.
pub const VISION_IMAGE_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// The R2 binding that holds attachments (`rooms/{slug}/{id}`, and `…/thumb`).
const ATTACHMENTS: &str = "ATTACHMENTS";

/// A configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The `AI` binding.
    WorkersAi {
        /// Model name.
        model: String,
    },
    /// An OpenAI-compatible `/chat/completions` endpoint.
    OpenAi {
        /// Base URL, without the trailing `/chat/completions`.
        base_url: String,
        /// Model name.
        model: String,
        /// Bearer key, if the server needs one.
        key: Option<String>,
    },
}

fn unavailable(message: impl Into<String>) -> ChatError {
    ChatError::new(ErrorCode::AiUnavailable, message)
}

/// Chooses the provider from plain settings (separate from [`Env`] so it is unit-tested).
pub fn choose(
    provider: Option<&str>,
    model: Option<String>,
    base_url: Option<String>,
    key: Option<String>,
    has_binding: bool,
) -> Result<Provider, ChatError> {
    let openai = |base_url: Option<String>| {
        let base_url = base_url
            .ok_or_else(|| unavailable("AI_PROVIDER is openai but AI_BASE_URL is not set."))?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ChatError::new(
                ErrorCode::ConfigError,
                format!("AI_BASE_URL must be an http(s) URL, not {base_url:?}."),
            ));
        }
        Ok(Provider::OpenAi {
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.clone().unwrap_or_else(|| "default".into()),
            key: key.clone(),
        })
    };
    match provider.map(str::to_ascii_lowercase).as_deref() {
        Some("workers-ai") if has_binding => Ok(Provider::WorkersAi {
            model: model.unwrap_or_else(|| WORKERS_AI_DEFAULT_MODEL.into()),
        }),
        Some("workers-ai") => Err(unavailable(
            "AI_PROVIDER is workers-ai but the Worker has no AI binding ([ai] binding = \"AI\").",
        )),
        Some("openai") => openai(base_url),
        Some("off") | Some("none") => Err(unavailable(
            "The assistant is turned off on this server (AI_PROVIDER=off).",
        )),
        Some(other) => Err(ChatError::new(
            ErrorCode::ConfigError,
            format!("AI_PROVIDER {other:?} is not one of workers-ai, openai, off."),
        )),
        None if has_binding => Ok(Provider::WorkersAi {
            model: model.unwrap_or_else(|| WORKERS_AI_DEFAULT_MODEL.into()),
        }),
        None if base_url.is_some() => openai(base_url),
        None => Err(unavailable(
            "No AI provider is configured: bind Workers AI as AI, or set AI_PROVIDER=openai \
             and AI_BASE_URL (./scripts/dev starts the local model server and sets them).",
        )),
    }
}

impl Provider {
    /// The provider configured in `env`.
    pub fn from_env(env: &Env) -> Result<Provider, ChatError> {
        choose(
            config::string(env, "AI_PROVIDER").as_deref(),
            config::string(env, "AI_MODEL"),
            config::string(env, "AI_BASE_URL"),
            config::string(env, "AI_API_KEY"),
            env.ai("AI").is_ok(),
        )
    }

    /// Short provider name, recorded with every answer.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::WorkersAi { .. } => "workers-ai",
            Provider::OpenAi { .. } => "openai",
        }
    }

    /// The model name.
    pub fn model(&self) -> &str {
        match self {
            Provider::WorkersAi { model } | Provider::OpenAi { model, .. } => model,
        }
    }

    /// The event format of this provider's streams.
    pub fn format(&self) -> StreamFormat {
        match self {
            Provider::WorkersAi { .. } => StreamFormat::WorkersAi,
            Provider::OpenAi { .. } => StreamFormat::OpenAi,
        }
    }

    /// Whether this provider is sent the question's images: `AI_VISION` when it is set
    /// (`setting`), else only a Workers AI vision model ([`WORKERS_AI_VISION_MODELS`]); an
    /// OpenAI-compatible server (the local model server) is assumed blind unless told.
    pub fn sees(&self, setting: Option<bool>) -> bool {
        setting.unwrap_or_else(|| {
            matches!(self, Provider::WorkersAi { model }
                if WORKERS_AI_VISION_MODELS.contains(&model.as_str()))
        })
    }

    /// Starts a streaming completion with the question's `images` (empty for a model that
    /// does not see, or a question without any); `signal` aborts it (Stop).
    pub async fn stream(
        &self,
        env: &Env,
        request: &CompletionRequest,
        images: &[SeenImage],
        signal: &AbortSignal,
    ) -> Result<ByteStream, ChatError> {
        match self {
            Provider::WorkersAi { model } => {
                let ai = env
                    .ai("AI")
                    .map_err(|e| unavailable(format!("Workers AI binding: {e}")))?;
                ai.run_bytes(model, workers_ai_input(model, request, images)?)
                    .await
                    .map_err(|e| {
                        ChatError::new(ErrorCode::AiFailed, format!("Workers AI refused: {e}"))
                    })
            }
            Provider::OpenAi {
                base_url,
                model,
                key,
            } => {
                let body = openai_body(model, request, images)?;
                let headers = Headers::new();
                let _ = headers.set("content-type", "application/json");
                let _ = headers.set("accept", "text/event-stream");
                if let Some(key) = key {
                    let _ = headers.set("authorization", &format!("Bearer {key}"));
                }
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_headers(headers)
                    .with_body(Some(body.into()));
                let url = format!("{base_url}/chat/completions");
                let req = Request::new_with_init(&url, &init)
                    .map_err(|e| ChatError::new(ErrorCode::ConfigError, e.to_string()))?;
                let mut resp = Fetch::Request(req)
                    .send_with_signal(signal)
                    .await
                    .map_err(|e| {
                        unavailable(format!("Could not reach the AI server at {base_url}: {e}"))
                    })?;
                let status = resp.status_code();
                if status != 200 {
                    let detail = resp.text().await.unwrap_or_default();
                    return Err(http_error(status, &detail));
                }
                resp.stream()
                    .map_err(|e| ChatError::new(ErrorCode::AiFailed, e.to_string()))
            }
        }
    }
}

/// An image of the question, read from storage, for a model that sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenImage {
    /// The prompt message it belongs to ([`PromptImage::turn`]).
    pub turn: usize,
    /// Its content type, as its bytes say.
    pub mime: &'static str,
    /// The image (or its thumbnail).
    pub bytes: Vec<u8>,
}

impl SeenImage {
    /// `data:{mime};base64,…`: how OpenAI-compatible servers and Workers AI take an image.
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.mime, STANDARD.encode(&self.bytes))
    }
}

/// One prompt message as a vision model takes it: plain text, or content parts.
///
/// Typed (not `serde_json::Value`) because Workers AI's input crosses into JavaScript through
/// `serde_wasm_bindgen`, which turns a JSON map into a JS `Map` where the model wants an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    role: ChatRole,
    content: WireContent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImageUrl {
    url: String,
}

/// The prompt with each image added to its message as an `image_url` part
/// ([`shared::ai::messages_with_images`]), typed for both providers.
pub fn vision_messages(
    messages: &[ChatMessage],
    images: &[SeenImage],
) -> Result<Vec<WireMessage>, ChatError> {
    let urls: Vec<(usize, String)> = images.iter().map(|i| (i.turn, i.data_url())).collect();
    let values = shared::ai::messages_with_images(messages, &urls);
    serde_json::from_value(serde_json::Value::Array(values)).map_err(|e| {
        ChatError::new(
            ErrorCode::Internal,
            format!("the prompt's image parts have an unexpected shape: {e}"),
        )
    })
}

/// The prompt messages of a request body: as they are, or with image parts.
#[derive(Serialize)]
#[serde(untagged)]
enum Messages<'a> {
    Plain(&'a [ChatMessage]),
    Parts(Vec<WireMessage>),
}

/// What the Workers AI binding is run with.
#[derive(Serialize)]
pub struct WorkersAiInput<'a> {
    messages: Messages<'a>,
    /// Llama 3.2 Vision's one image (see [`LLAMA_32_VISION`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a [u8]>,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

/// The Workers AI input for `model`: plain messages without images; with them, the one
/// image as `image` for Llama 3.2 Vision, `image_url` parts for every other model.
pub fn workers_ai_input<'a>(
    model: &str,
    request: &'a CompletionRequest,
    images: &'a [SeenImage],
) -> Result<WorkersAiInput<'a>, ChatError> {
    let (messages, image) = match images.first() {
        None => (Messages::Plain(&request.messages), None),
        Some(first) if model == LLAMA_32_VISION => (
            Messages::Plain(&request.messages),
            Some(first.bytes.as_slice()),
        ),
        Some(_) => (
            Messages::Parts(vision_messages(&request.messages, images)?),
            None,
        ),
    };
    Ok(WorkersAiInput {
        messages,
        image,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        stream: true,
    })
}

/// The body of an OpenAI-compatible `/chat/completions` request: the messages as they are,
/// or with `image_url` parts when there are images.
pub fn openai_body(
    model: &str,
    request: &CompletionRequest,
    images: &[SeenImage],
) -> Result<String, ChatError> {
    #[derive(Serialize)]
    struct StreamOptions {
        include_usage: bool,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        model: &'a str,
        messages: Messages<'a>,
        max_tokens: u32,
        temperature: f32,
        stream: bool,
        stream_options: StreamOptions,
    }
    let messages = if images.is_empty() {
        Messages::Plain(&request.messages)
    } else {
        Messages::Parts(vision_messages(&request.messages, images)?)
    };
    serde_json::to_string(&Body {
        model,
        messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
    })
    .map_err(|e| ChatError::new(ErrorCode::Internal, e.to_string()))
}

/// The storage key to read for an image: the image, or its thumbnail when the image is over
/// [`VISION_IMAGE_MAX_BYTES`] or stands for a video (its poster frame).
pub fn image_key(slug: &str, image: &PromptImage) -> String {
    if image.poster || image.size > VISION_IMAGE_MAX_BYTES {
        format!("rooms/{slug}/{}/thumb", image.id)
    } else {
        format!("rooms/{slug}/{}", image.id)
    }
}

/// Reads the question's images from storage for a model that sees. An image that cannot be
/// read (no binding, missing, too large even as a thumbnail, not an image by its bytes) is
/// logged and left out: the model still has its description in words.
pub async fn read_images(env: &Env, slug: &str, images: &[PromptImage]) -> Vec<SeenImage> {
    let skipped = |id: &str, why: String| {
        console_log!(
            "{}",
            serde_json::json!({"event": "vision_image_skipped", "room": slug, "id": id, "why": why})
        );
    };
    if images.is_empty() {
        return Vec::new();
    }
    let bucket = match env.bucket(ATTACHMENTS) {
        Ok(bucket) => bucket,
        Err(e) => {
            skipped("*", format!("no {ATTACHMENTS} binding: {e}"));
            return Vec::new();
        }
    };
    let mut seen = Vec::new();
    for image in images {
        let key = image_key(slug, image);
        let object = match bucket.get(key.as_str()).execute().await {
            Ok(Some(object)) => object,
            Ok(None) => {
                skipped(&image.id, format!("{key} is not stored"));
                continue;
            }
            Err(e) => {
                skipped(&image.id, format!("reading {key}: {e}"));
                continue;
            }
        };
        if object.size() > VISION_IMAGE_MAX_BYTES {
            skipped(&image.id, format!("{key} is {} bytes", object.size()));
            continue;
        }
        let bytes = match object.body() {
            Some(body) => match body.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => {
                    skipped(&image.id, format!("reading {key}: {e}"));
                    continue;
                }
            },
            None => Vec::new(),
        };
        // The type its bytes say (a thumbnail's may differ from the image's).
        let sniffed = shared::media::sniff::sniff(&bytes);
        if sniffed.kind != Kind::Image {
            skipped(&image.id, format!("{key} is not an image"));
            continue;
        }
        seen.push(SeenImage {
            turn: image.turn,
            mime: sniffed.mime,
            bytes,
        });
    }
    seen
}

/// Maps a provider's HTTP failure to a code the room shows.
pub fn http_error(status: u16, body: &str) -> ChatError {
    let detail: String = body.chars().take(300).collect();
    match status {
        401 | 403 => ChatError::new(
            ErrorCode::AiFailed,
            format!("The AI provider refused the credentials ({status}); check AI_API_KEY."),
        ),
        404 => ChatError::new(
            ErrorCode::AiFailed,
            format!("The AI provider does not know this model or path (404): {detail}"),
        ),
        408 | 504 => ChatError::new(
            ErrorCode::AiTimeout,
            format!("The AI provider timed out ({status})."),
        ),
        429 => ChatError::new(
            ErrorCode::AiFailed,
            "The AI provider's quota or rate limit is exhausted (429); try again later.",
        ),
        400..=499 => ChatError::new(
            ErrorCode::AiFailed,
            format!("The AI provider rejected the request ({status}): {detail}"),
        ),
        _ => unavailable(format!("The AI provider failed ({status}): {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_wins_when_nothing_is_chosen_and_a_base_url_is_the_fallback() {
        assert!(matches!(
            choose(None, None, None, None, true),
            Ok(Provider::WorkersAi { model }) if model == WORKERS_AI_DEFAULT_MODEL
        ));
        let p = choose(
            None,
            Some("smol".into()),
            Some("http://127.0.0.1:8788/v1/".into()),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            p,
            Provider::OpenAi {
                base_url: "http://127.0.0.1:8788/v1".into(),
                model: "smol".into(),
                key: None
            }
        );
    }

    #[test]
    fn no_provider_or_a_wrong_one_is_a_clear_error() {
        assert_eq!(
            choose(None, None, None, None, false).unwrap_err().code,
            ErrorCode::AiUnavailable
        );
        assert_eq!(
            choose(Some("openai"), None, None, None, true)
                .unwrap_err()
                .code,
            ErrorCode::AiUnavailable
        );
        assert_eq!(
            choose(Some("workers-ai"), None, None, None, false)
                .unwrap_err()
                .code,
            ErrorCode::AiUnavailable
        );
        assert_eq!(
            choose(Some("gpt"), None, None, None, true)
                .unwrap_err()
                .code,
            ErrorCode::ConfigError
        );
        assert_eq!(
            choose(Some("openai"), None, Some("ftp://x".into()), None, false)
                .unwrap_err()
                .code,
            ErrorCode::ConfigError
        );
        assert_eq!(
            choose(Some("off"), None, None, None, true)
                .unwrap_err()
                .code,
            ErrorCode::AiUnavailable
        );
    }

    fn request() -> CompletionRequest {
        CompletionRequest {
            messages: vec![
                ChatMessage {
                    role: ChatRole::System,
                    content: "Be brief.".into(),
                },
                ChatMessage {
                    role: ChatRole::User,
                    content: "what is in this picture?\n[Attached image \"cup.png\": image/png]"
                        .into(),
                },
            ],
            max_tokens: 100,
            temperature: 0.5,
            images: vec![PromptImage {
                turn: 1,
                id: "abc".into(),
                mime: "image/png".into(),
                size: 4,
                poster: false,
            }],
        }
    }

    fn png() -> SeenImage {
        SeenImage {
            turn: 1,
            mime: "image/png",
            bytes: b"\x89PNG".to_vec(),
        }
    }

    #[test]
    fn a_vision_model_sees_by_default_and_the_setting_wins_either_way() {
        let scout = Provider::WorkersAi {
            model: "@cf/meta/llama-4-scout-17b-16e-instruct".into(),
        };
        let text = Provider::WorkersAi {
            model: WORKERS_AI_DEFAULT_MODEL.into(),
        };
        let local = Provider::OpenAi {
            base_url: "http://127.0.0.1:8788/v1".into(),
            model: "smol".into(),
            key: None,
        };
        assert!(scout.sees(None));
        assert!(!text.sees(None));
        assert!(!local.sees(None));
        assert!(local.sees(Some(true)));
        assert!(!scout.sees(Some(false)));
    }

    #[test]
    fn the_openai_body_carries_the_image_as_a_data_url_part_after_the_question() {
        let body: serde_json::Value =
            serde_json::from_str(&openai_body("m", &request(), &[png()]).unwrap()).unwrap();
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        // The system message stays plain text.
        assert_eq!(body["messages"][0]["content"], "Be brief.");
        let parts = &body["messages"][1]["content"];
        assert_eq!(parts[0]["type"], "text");
        assert!(parts[0]["text"]
            .as_str()
            .unwrap()
            .contains("[Attached image \"cup.png\""));
        assert_eq!(parts[1]["type"], "image_url");
        assert_eq!(
            parts[1]["image_url"]["url"],
            "data:image/png;base64,iVBORw=="
        );
        // Exactly the shape shared's helper gives.
        assert_eq!(
            body["messages"],
            serde_json::Value::Array(shared::ai::messages_with_images(
                &request().messages,
                &[(1, png().data_url())]
            ))
        );
    }

    #[test]
    fn without_images_the_bodies_are_the_plain_messages_as_before() {
        let body: serde_json::Value =
            serde_json::from_str(&openai_body("m", &request(), &[]).unwrap()).unwrap();
        assert_eq!(
            body["messages"],
            serde_json::to_value(&request().messages).unwrap()
        );
        let input =
            serde_json::to_value(workers_ai_input("@cf/x", &request(), &[]).unwrap()).unwrap();
        assert_eq!(
            input["messages"],
            serde_json::to_value(&request().messages).unwrap()
        );
        assert!(input.get("image").is_none());
    }

    #[test]
    fn workers_ai_gets_parts_for_scout_and_the_bytes_as_image_for_llama_3_2_vision() {
        let request = request();
        let images = [png()];
        let scout = serde_json::to_value(
            workers_ai_input("@cf/meta/llama-4-scout-17b-16e-instruct", &request, &images).unwrap(),
        )
        .unwrap();
        assert_eq!(scout["messages"][1]["content"][1]["type"], "image_url");
        assert!(scout.get("image").is_none());
        let llama =
            serde_json::to_value(workers_ai_input(LLAMA_32_VISION, &request, &images).unwrap())
                .unwrap();
        assert_eq!(llama["image"], serde_json::json!([0x89, b'P', b'N', b'G']));
        assert_eq!(
            llama["messages"],
            serde_json::to_value(&request.messages).unwrap()
        );
    }

    #[test]
    fn an_image_too_large_to_send_is_read_as_its_thumbnail() {
        let mut image = request().images.remove(0);
        assert_eq!(image_key("room", &image), "rooms/room/abc");
        image.size = VISION_IMAGE_MAX_BYTES + 1;
        assert_eq!(image_key("room", &image), "rooms/room/abc/thumb");
    }

    #[test]
    fn a_video_is_read_as_its_poster_frame() {
        let mut image = request().images.remove(0);
        image.poster = true;
        assert_eq!(image_key("room", &image), "rooms/room/abc/thumb");
    }

    #[test]
    fn provider_http_failures_map_to_stable_codes() {
        assert_eq!(http_error(401, "").code, ErrorCode::AiFailed);
        assert_eq!(http_error(429, "").code, ErrorCode::AiFailed);
        assert_eq!(http_error(504, "").code, ErrorCode::AiTimeout);
        assert_eq!(http_error(503, "down").code, ErrorCode::AiUnavailable);
        assert!(http_error(400, "bad model").message.contains("bad model"));
    }
}
