//! Durable Chat's shared crate: the wire protocol and the pure room logic, used by the edge
//! Worker (server half) and the Yew app (client half). No I/O; everything here runs natively in
//! `cargo test` and compiles for `wasm32-unknown-unknown`.

#![warn(missing_docs)]

pub mod ai;
pub mod auth;
pub mod client;
pub mod emoji;
pub mod error;
#[cfg(feature = "server")]
pub mod grounding;
pub mod limits;
pub mod logs;
#[cfg(feature = "markdown")]
pub mod markdown;
pub mod media;
pub mod mentions;
pub mod metrics;
pub mod moderation;
pub mod network;
pub mod permissions;
pub mod profile;
pub mod protocol;
pub mod rate_limit;
#[cfg(feature = "server")]
pub mod room;
pub mod search;
pub mod settings;
pub mod unread;

pub use error::{ChatError, ErrorCode};
pub use protocol::{ClientMessage, ServerMessage, PROTOCOL_VERSION};
