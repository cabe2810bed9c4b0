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

use serde::Serialize;
use shared::ai::{CompletionRequest, StreamFormat};
use shared::error::{ChatError, ErrorCode};
use worker::{AbortSignal, ByteStream, Env, Fetch, Headers, Method, Request, RequestInit};

use crate::config;

/// The Workers AI chat model used when `AI_MODEL` is not set.
pub const WORKERS_AI_DEFAULT_MODEL: &str = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";

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

    /// Starts a streaming completion; `signal` aborts it (Stop).
    pub async fn stream(
        &self,
        env: &Env,
        request: &CompletionRequest,
        signal: &AbortSignal,
    ) -> Result<ByteStream, ChatError> {
        match self {
            Provider::WorkersAi { model } => {
                #[derive(Serialize)]
                struct Input<'a> {
                    messages: &'a [shared::ai::ChatMessage],
                    max_tokens: u32,
                    temperature: f32,
                    stream: bool,
                }
                let ai = env
                    .ai("AI")
                    .map_err(|e| unavailable(format!("Workers AI binding: {e}")))?;
                ai.run_bytes(
                    model,
                    Input {
                        messages: &request.messages,
                        max_tokens: request.max_tokens,
                        temperature: request.temperature,
                        stream: true,
                    },
                )
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
                #[derive(Serialize)]
                struct StreamOptions {
                    include_usage: bool,
                }
                #[derive(Serialize)]
                struct Body<'a> {
                    model: &'a str,
                    messages: &'a [shared::ai::ChatMessage],
                    max_tokens: u32,
                    temperature: f32,
                    stream: bool,
                    stream_options: StreamOptions,
                }
                let body = serde_json::to_string(&Body {
                    model,
                    messages: &request.messages,
                    max_tokens: request.max_tokens,
                    temperature: request.temperature,
                    stream: true,
                    stream_options: StreamOptions {
                        include_usage: true,
                    },
                })
                .map_err(|e| ChatError::new(ErrorCode::Internal, e.to_string()))?;
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

    #[test]
    fn provider_http_failures_map_to_stable_codes() {
        assert_eq!(http_error(401, "").code, ErrorCode::AiFailed);
        assert_eq!(http_error(429, "").code, ErrorCode::AiFailed);
        assert_eq!(http_error(504, "").code, ErrorCode::AiTimeout);
        assert_eq!(http_error(503, "down").code, ErrorCode::AiUnavailable);
        assert!(http_error(400, "bad model").message.contains("bad model"));
    }
}
