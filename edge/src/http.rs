//! HTTP helpers every route shares: the API's error type and its one error body, JSON
//! responses, request bodies, query parameters, origin checks and rate limits.

use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::error::{ChatError, ErrorCode};
use shared::limits::BODY_MAX_BYTES;
use shared::protocol::http::ErrorBody;
use worker::{Env, Request, Response, Url};

/// A refusal or failure as the API's error response: `{code, message}` with the code's HTTP
/// status (and `Retry-After` for a rate limit). The Worker's routes and the room's object both
/// answer errors with this, so a room's refusal passes through the Worker unchanged.
pub(crate) fn error_response(error: &ChatError) -> worker::Result<Response> {
    let mut response = json(
        &ErrorBody {
            code: error.code,
            message: error.message.clone(),
        },
        error.code.http_status(),
    )?;
    if let Some(ms) = error.retry_after_ms {
        response
            .headers_mut()
            .set("Retry-After", &ms.div_ceil(1000).to_string())?;
    }
    Ok(response)
}

/// An API failure: the code and message go to the client; `detail` only to the log.
pub(crate) struct ApiError {
    pub(crate) error: ChatError,
    pub(crate) detail: Option<String>,
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        ApiError {
            error,
            detail: None,
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError {
            error: ChatError::new(
                ErrorCode::Internal,
                "Something went wrong on the server; please try again.",
            ),
            detail: Some(e.to_string()),
        }
    }
}

pub(crate) fn fail(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ChatError::new(code, message).into()
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn query_param(req: &Request, name: &str) -> Option<String> {
    req.url()
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(crate) fn json<T: Serialize>(body: &T, status: u16) -> worker::Result<Response> {
    let mut response = Response::from_json(body)?.with_status(status);
    let headers = response.headers_mut();
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(response)
}

// Both read the URL as the runtime serialized it (WHATWG: scheme and host lowercased, default
// port left out) instead of parsing it again: every request asks, a socket upgrade twice.

pub(crate) fn is_https(req: &Request) -> bool {
    req.inner().url().starts_with("https:")
}

/// The request's own origin, as a browser on this site would send it.
fn own_origin(req: &Request) -> Option<String> {
    let url = req.inner().url();
    match origin_of_serialized_url(&url) {
        Some(origin) => Some(origin.to_owned()),
        // Not the usual shape (credentials in it): the full parse decides.
        None => Some(Url::parse(&url).ok()?.origin().ascii_serialization()),
    }
}

/// The origin of a URL serialized by the WHATWG rules: everything before the path. `None` for
/// one whose authority carries credentials, which the origin leaves out.
fn origin_of_serialized_url(url: &str) -> Option<&str> {
    let authority_start = url.find("://")? + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    if url[authority_start..authority_end].contains('@') {
        return None;
    }
    Some(&url[..authority_end])
}

/// Refuses requests made by another site's page. `required` for WebSocket upgrades (browsers
/// always send Origin there; cookies ride along cross-site, hence CSWSH); for other requests a
/// missing Origin is a non-browser client and is allowed.
pub(crate) fn check_origin(req: &Request, required: bool) -> Result<(), ApiError> {
    let origin = req.headers().get("Origin").ok().flatten();
    match origin {
        None if !required => Ok(()),
        Some(origin) if Some(&origin) == own_origin(req).as_ref() => Ok(()),
        _ => Err(fail(
            ErrorCode::BadOrigin,
            "Requests must come from this site's own pages.",
        )),
    }
}

pub(crate) async fn read_json<T: DeserializeOwned>(mut req: Request) -> Result<T, ApiError> {
    // Capped while streaming: a chunked body without Content-Length is not buffered whole.
    let body = crate::body::read_capped(&mut req, BODY_MAX_BYTES)
        .await
        .or_else(|e| Err(ApiError::from(e.into_chat_error("The request body")?)))?;
    serde_json::from_slice(&body).map_err(|e| {
        fail(
            ErrorCode::InvalidFrame,
            format!("Body is not valid JSON of the expected shape: {e}"),
        )
    })
}

/// Applies the Workers rate-limiting binding, when configured, to a key.
pub(crate) async fn rate_limit(env: &Env, binding: &str, key: String) -> Result<(), ApiError> {
    let Ok(limiter) = env.rate_limiter(binding) else {
        return Ok(()); // Not configured: nothing to enforce.
    };
    if limiter.limit(key).await?.success {
        Ok(())
    } else {
        Err(ChatError::rate_limited(10_000).into())
    }
}

pub(crate) fn client_ip(req: &Request) -> String {
    req.headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_read_from_a_serialized_url_is_the_one_a_full_parse_gives() {
        for raw in [
            "http://localhost:8787/api/rooms/general/ws?batch=1",
            "https://chat.example.com/api/session",
            "https://chat.example.com",
            "http://127.0.0.1:8787/?x=/y",
            "http://[::1]:8787/api",
            "https://Chat.Example.COM:443/Path",
            "http://localhost:8787?first=%7B%7D",
        ] {
            // As the runtime hands it over: serialized by the same rules.
            let serialized = Url::parse(raw).expect("valid").to_string();
            let expected = Url::parse(raw)
                .expect("valid")
                .origin()
                .ascii_serialization();
            assert_eq!(
                origin_of_serialized_url(&serialized),
                Some(expected.as_str()),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_url_with_credentials_is_left_to_the_full_parse() {
        assert_eq!(
            origin_of_serialized_url("https://user:pw@example.com/"),
            None
        );
    }
}
