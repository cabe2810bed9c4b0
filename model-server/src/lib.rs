//! A local, OpenAI-compatible chat completions server over llama.cpp (through `llama-cpp-2`),
//! so the chat's assistant can be developed and tested offline with a small GGUF model; and an
//! image classifier beside it, so the assistant can say what an uploaded picture shows.
//!
//! - [`openai`]: the wire format (request validation, responses, stream chunks, errors);
//! - [`text`]: streaming text rules (whole UTF-8 characters, stop sequences, inert special
//!   tokens), pure and unit-tested;
//! - [`engine`]: the model, loaded once, generating one answer at a time from a queue;
//! - [`http`]: the HTTP routes and the server-sent event stream;
//! - [`access`]: who may use the server (host, content type, API key);
//! - [`vision`]: image classification (EfficientNet-Lite0 on candle), for `POST /v1/classify`;
//! - [`config`]: the command line.

pub mod access;
pub mod config;
pub mod engine;
pub mod http;
pub mod openai;
pub mod text;
pub mod vision;
