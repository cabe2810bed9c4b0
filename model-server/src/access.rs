//! Who may use the server, decided from the request line and headers before a body is read.
//!
//! Listening on loopback keeps other machines out, but not web pages in this machine's browser:
//! - **DNS rebinding.** A page at `evil.example` whose name is made to resolve to 127.0.0.1 talks
//!   to this server as its own origin (so it can read answers). Its requests still say
//!   `Host: evil.example:8788`, so a request is served only when `Host` names the configured host
//!   (its loopback names when it is loopback or unspecified) or an `--allowed-host`.
//! - **Simple cross-origin POSTs.** Any page may `fetch(..., {mode: "no-cors"})` a `text/plain`
//!   body without a preflight; it cannot read the answer, but it could queue work. A POST must
//!   declare `Content-Type: application/json` (an `image/…` type for the image upload,
//!   `POST /v1/classify`), which a page can only send after a CORS preflight that this server
//!   never approves: neither is one of the types the Fetch standard lets through without one.
//! - **`--api-key`.** When set, every route needs `Authorization: Bearer <key>`.

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Uri};

use crate::http::CLASSIFY_PATH;
use crate::openai::{ApiError, ErrorCode};

/// The names a loopback server answers to.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The access rules of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Host names (without port, lower case, IPv6 without brackets) a request may address.
    hosts: Vec<String>,
    /// The bearer token every request must carry, if any.
    api_key: Option<String>,
}

impl Access {
    /// The rules for a server listening on `listen_host`, also answering to `allowed_hosts`.
    pub fn new(listen_host: &str, allowed_hosts: &[String], api_key: Option<String>) -> Access {
        let listen = normalize(listen_host);
        let mut hosts = Vec::new();
        // An unspecified address listens on loopback too; its other names (a LAN address, a
        // proxy's name) are unknowable here and must be given with --allowed-host.
        let unspecified = matches!(listen.as_str(), "0.0.0.0" | "::");
        if unspecified || LOOPBACK_NAMES.contains(&listen.as_str()) || listen.starts_with("127.") {
            hosts.extend(LOOPBACK_NAMES.iter().map(|h| h.to_string()));
        }
        if !unspecified {
            hosts.push(listen);
        }
        hosts.extend(allowed_hosts.iter().map(|h| normalize(h)));
        hosts.sort();
        hosts.dedup();
        Access {
            hosts,
            api_key: api_key.filter(|k| !k.is_empty()),
        }
    }

    /// Whether this request may be served (the body is not looked at).
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string()));
        let allowed = host
            .as_deref()
            .map(host_name)
            .is_some_and(|name| self.hosts.contains(&name));
        if !allowed {
            return Err(ApiError::new(
                ErrorCode::HostNotAllowed,
                "This server does not answer to that host name (start it with --allowed-host NAME).",
            ));
        }
        if let Some(key) = &self.api_key {
            let given = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !given.is_some_and(|given| same_secret(given.as_bytes(), key.as_bytes())) {
                return Err(ApiError::new(
                    ErrorCode::InvalidApiKey,
                    "Missing or wrong API key (send Authorization: Bearer <key>).",
                ));
            }
        }
        if method == Method::POST {
            let media_type = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::trim);
            if uri.path() == CLASSIFY_PATH {
                if !media_type.is_some_and(is_image_type) {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        "Send the image bytes with their type, e.g. Content-Type: image/png.",
                    ));
                }
            } else if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "Send the request as Content-Type: application/json.",
                ));
            }
        }
        Ok(())
    }
}

/// `image/<subtype>`, any subtype: the body's real format is sniffed from its bytes.
fn is_image_type(media_type: &str) -> bool {
    media_type
        .split_once('/')
        .is_some_and(|(kind, subtype)| kind.eq_ignore_ascii_case("image") && !subtype.is_empty())
}

/// Lower case, IPv6 brackets removed.
fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The host name of a `Host` value: `name`, `name:port`, `[v6]` or `[v6]:port`.
fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        value.split(':').next().unwrap_or_default()
    };
    // A fully qualified name may end with a dot; it is the same host.
    normalize(name.trim_end_matches('.'))
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn same_secret(given: &[u8], key: &[u8]) -> bool {
    given.len() == key.len() && given.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn code(access: &Access, method: Method, pairs: &[(&str, &str)]) -> Option<&'static str> {
        access
            .check(&method, &Uri::from_static("/v1/models"), &headers(pairs))
            .err()
            .map(|e| e.code.as_str())
    }

    #[test]
    fn a_loopback_server_answers_to_its_loopback_names_only() {
        let access = Access::new("127.0.0.1", &[], None);
        for host in [
            "127.0.0.1:8788",
            "localhost:8788",
            "LOCALHOST",
            "[::1]:8788",
            "localhost.",
        ] {
            assert_eq!(
                code(&access, Method::GET, &[("host", host)]),
                None,
                "{host}"
            );
        }
        for host in [
            "evil.example:8788",
            "127.0.0.1.evil.example",
            "",
            "localhost.evil",
        ] {
            assert_eq!(
                code(&access, Method::GET, &[("host", host)]),
                Some("host_not_allowed"),
                "{host}"
            );
        }
        assert_eq!(code(&access, Method::GET, &[]), Some("host_not_allowed"));
    }

    #[test]
    fn an_unspecified_listen_address_needs_its_other_names_allowed_explicitly() {
        let access = Access::new("0.0.0.0", &["Models.LAN".into()], None);
        assert_eq!(
            code(&access, Method::GET, &[("host", "models.lan:1")]),
            None
        );
        assert_eq!(code(&access, Method::GET, &[("host", "localhost:1")]), None);
        assert_eq!(
            code(&access, Method::GET, &[("host", "0.0.0.0:1")]),
            Some("host_not_allowed")
        );
        assert_eq!(
            code(&access, Method::GET, &[("host", "192.168.1.5:1")]),
            Some("host_not_allowed")
        );
    }

    #[test]
    fn a_post_must_be_declared_json() {
        let access = Access::new("127.0.0.1", &[], None);
        let host = ("host", "127.0.0.1:1");
        assert_eq!(
            code(
                &access,
                Method::POST,
                &[host, ("content-type", "text/plain")]
            ),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(&access, Method::POST, &[host]),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(
                &access,
                Method::POST,
                &[host, ("content-type", "Application/JSON; charset=utf-8")]
            ),
            None
        );
        // A GET has no body to declare.
        assert_eq!(code(&access, Method::GET, &[host]), None);
    }

    #[test]
    fn the_image_upload_must_be_declared_an_image_and_nothing_else_may_be() {
        let access = Access::new("127.0.0.1", &[], None);
        let check = |path: &'static str, content_type: &str| {
            let headers = headers(&[("host", "127.0.0.1:1"), ("content-type", content_type)]);
            access
                .check(&Method::POST, &Uri::from_static(path), &headers)
                .err()
                .map(|e| e.code.as_str())
        };
        for image in ["image/png", "IMAGE/JPEG", "image/webp; q=1", "image/gif"] {
            assert_eq!(check("/v1/classify", image), None, "{image}");
        }
        for other in [
            "application/json",
            "text/plain",
            "image/",
            "multipart/form-data",
        ] {
            assert_eq!(
                check("/v1/classify", other),
                Some("unsupported_media_type"),
                "{other}"
            );
        }
        assert_eq!(
            check("/v1/chat/completions", "image/png"),
            Some("unsupported_media_type")
        );
    }

    #[test]
    fn an_api_key_is_checked_as_a_bearer_token_before_anything_else_but_the_host() {
        let access = Access::new("127.0.0.1", &[], Some("k3y".into()));
        let host = ("host", "localhost:1");
        assert_eq!(code(&access, Method::GET, &[host]), Some("invalid_api_key"));
        for wrong in ["Bearer k3", "Bearer k3yy", "k3y", "Basic k3y", "bearer"] {
            assert_eq!(
                code(&access, Method::GET, &[host, ("authorization", wrong)]),
                Some("invalid_api_key"),
                "{wrong}"
            );
        }
        assert_eq!(
            code(
                &access,
                Method::GET,
                &[host, ("authorization", "Bearer k3y")]
            ),
            None
        );
        assert_eq!(
            code(
                &access,
                Method::POST,
                &[host, ("authorization", "Bearer k3y")]
            ),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(
                &access,
                Method::GET,
                &[("host", "evil:1"), ("authorization", "Bearer k3y")]
            ),
            Some("host_not_allowed")
        );
        // An empty key is no key.
        assert_eq!(
            code(
                &Access::new("127.0.0.1", &[], Some(String::new())),
                Method::GET,
                &[host]
            ),
            None
        );
    }
}
