//! Stable error codes shared by the HTTP API, socket error frames and close reasons.
//!
//! Codes are a closed set: add variants, never rename or reuse one (a client may branch on them).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON of a known shape.
    InvalidFrame,
    /// A field is present but its value breaks a rule (empty, bad characters, ...).
    InvalidInput,
    /// The frame, body or a field is larger than its documented limit.
    TooLarge,
    /// Too many requests; `retry_after_ms` says when to try again.
    RateLimited,
    /// No valid session.
    Unauthorized,
    /// The session may not do this.
    Forbidden,
    /// The thing does not exist.
    NotFound,
    /// The client speaks another protocol version.
    UnsupportedProtocol,
    /// The request came from another site's page (cross-site WebSocket hijacking guard).
    BadOrigin,
    /// The server is misconfigured (for example a missing secret).
    ConfigError,
    /// Something failed on the server; details are in the server's log.
    Internal,
    /// The request conflicts with the current state (for example stopping an answer that has
    /// already finished).
    Conflict,
    /// No AI provider is configured or the configured one cannot be reached.
    AiUnavailable,
    /// The AI provider did not answer in time.
    AiTimeout,
    /// The assistant's queue in this room is full; ask again when it has caught up.
    AiBusy,
    /// The AI provider refused the request (quota, content policy, bad model name, ...).
    AiFailed,
    /// A moderator muted you in this room; `retry_after_ms` says when the mute ends.
    Muted,
    /// You are banned from this room.
    Banned,
    /// A moderator removed you from the room (you may rejoin unless also banned).
    Kicked,
    /// The invite link expired, was revoked, or was used up.
    InviteInvalid,
    /// An upload's content is not one of the accepted types (checked by its bytes, not its name).
    UnsupportedMedia,
    /// You already have as many connections to this room as one person may
    /// ([`crate::limits::SOCKETS_PER_USER`]); close a tab or device first.
    TooManyConnections,
    /// The room holds as many connections as it can ([`crate::limits::SOCKETS_PER_ROOM`]).
    RoomFull,
    /// New guests from your network are banned from this room for a while (a moderator banned
    /// a guest who connected from it); a signed-in account is not.
    NetworkBanned,
    /// The room's storage for files is full ([`crate::limits::UploadLimits::room_quota_bytes`]);
    /// deleting files frees it.
    QuotaExceeded,
    /// A link preview was refused for this URL (not http(s) on the standard ports, or a private,
    /// loopback or otherwise internal address).
    UrlRefused,
    /// The linked page could not be previewed (it failed, was too slow, or redirected too
    /// often); a later try may work.
    PreviewUnavailable,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::BadOrigin => "bad_origin",
            ErrorCode::ConfigError => "config_error",
            ErrorCode::Internal => "internal",
            ErrorCode::Conflict => "conflict",
            ErrorCode::AiUnavailable => "ai_unavailable",
            ErrorCode::AiTimeout => "ai_timeout",
            ErrorCode::AiBusy => "ai_busy",
            ErrorCode::AiFailed => "ai_failed",
            ErrorCode::Muted => "muted",
            ErrorCode::Banned => "banned",
            ErrorCode::Kicked => "kicked",
            ErrorCode::InviteInvalid => "invite_invalid",
            ErrorCode::UnsupportedMedia => "unsupported_media",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::NetworkBanned => "network_banned",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::UrlRefused => "url_refused",
            ErrorCode::PreviewUnavailable => "preview_unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidFrame | ErrorCode::InvalidInput | ErrorCode::UrlRefused => 400,
            ErrorCode::QuotaExceeded => 507,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden
            | ErrorCode::BadOrigin
            | ErrorCode::Muted
            | ErrorCode::Banned
            | ErrorCode::NetworkBanned
            | ErrorCode::Kicked => 403,
            ErrorCode::InviteInvalid => 410,
            ErrorCode::UnsupportedMedia => 415,
            ErrorCode::NotFound => 404,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedProtocol => 426,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited | ErrorCode::AiBusy | ErrorCode::TooManyConnections => 429,
            ErrorCode::RoomFull => 503,
            ErrorCode::ConfigError | ErrorCode::Internal | ErrorCode::Unknown => 500,
            ErrorCode::AiFailed | ErrorCode::PreviewUnavailable => 502,
            ErrorCode::AiUnavailable => 503,
            ErrorCode::AiTimeout => 504,
        }
    }

    /// Whether resending the same request unchanged can ever succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::ConfigError
                | ErrorCode::AiUnavailable
                | ErrorCode::AiTimeout
                | ErrorCode::AiBusy
                | ErrorCode::AiFailed
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its code and a human message safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
    /// For `rate_limited`: when to try again.
    pub retry_after_ms: Option<u64>,
}

impl ChatError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ChatError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// A `muted` error that says when the mute ends.
    pub fn muted(retry_after_ms: u64) -> Self {
        let minutes = retry_after_ms.div_ceil(60_000);
        ChatError {
            code: ErrorCode::Muted,
            message: format!(
                "A moderator muted you in this room; you can post again in {minutes} min."
            ),
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// A `rate_limited` error that says when to retry.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        ChatError {
            code: ErrorCode::RateLimited,
            message: format!(
                "You are sending too fast; try again in {:.1} s.",
                retry_after_ms as f64 / 1000.0
            ),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ChatError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_to_its_as_str_name() {
        for code in [
            ErrorCode::InvalidFrame,
            ErrorCode::InvalidInput,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::UnsupportedProtocol,
            ErrorCode::BadOrigin,
            ErrorCode::ConfigError,
            ErrorCode::Internal,
            ErrorCode::Conflict,
            ErrorCode::AiUnavailable,
            ErrorCode::AiTimeout,
            ErrorCode::AiBusy,
            ErrorCode::AiFailed,
            ErrorCode::Muted,
            ErrorCode::Banned,
            ErrorCode::Kicked,
            ErrorCode::InviteInvalid,
            ErrorCode::UnsupportedMedia,
            ErrorCode::TooManyConnections,
            ErrorCode::RoomFull,
            ErrorCode::NetworkBanned,
            ErrorCode::QuotaExceeded,
            ErrorCode::UrlRefused,
            ErrorCode::PreviewUnavailable,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn an_unknown_code_from_a_newer_server_still_parses() {
        let code: ErrorCode = serde_json::from_str(r#""time_travel_refused""#).unwrap();
        assert_eq!(code, ErrorCode::Unknown);
    }

    #[test]
    fn rate_limited_says_when_to_retry() {
        let err = ChatError::rate_limited(1500);
        assert_eq!(err.retry_after_ms, Some(1500));
        assert!(err.message.contains("1.5 s"), "{}", err.message);
        assert!(err.code.is_retryable());
        assert!(!ErrorCode::TooLarge.is_retryable());
    }
}
