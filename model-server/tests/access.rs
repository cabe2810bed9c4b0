//! Who may use the server: only requests addressed to the configured host (a web page whose
//! domain was rebound to 127.0.0.1 sends its own name as `Host`), only JSON POSTs (a page's
//! no-cors `text/plain` POST needs no preflight), and, with `--api-key`, only bearers of the key.

mod common;

use common::{send, TestServer};
use serde_json::json;

fn hello() -> String {
    json!({
        "messages": [{"role": "user", "content": "Say hi."}],
        "temperature": 0,
        "max_tokens": 4,
    })
    .to_string()
}

/// The port of `http://127.0.0.1:<port>`.
fn port(server: &TestServer) -> &str {
    server.base().rsplit(':').next().unwrap_or_default()
}

#[tokio::test]
async fn a_request_addressed_to_another_host_name_is_refused_as_dns_rebinding() {
    let server = TestServer::start(&[]);
    let url = |path: &str| format!("{}{path}", server.base());
    let rebound = format!("evil.example:{}", port(&server));

    let (status, error) = send(
        server
            .http()
            .post(url("/v1/chat/completions"))
            .header("host", &rebound)
            .header("content-type", "application/json")
            .body(hello()),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("host_not_allowed")),
        "{error}"
    );
    for path in ["/v1/models", "/health"] {
        let (status, error) = send(server.http().get(url(path)).header("host", &rebound)).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (403, Some("host_not_allowed")),
            "{path}: {error}"
        );
    }

    // The loopback names of the configured host are the server's own.
    for host in [
        format!("127.0.0.1:{}", port(&server)),
        format!("localhost:{}", port(&server)),
    ] {
        let (status, body) = send(server.http().get(url("/v1/models")).header("host", &host)).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    // Nothing refused reached the model.
    assert_eq!(server.health().await["completed"], 0);
}

#[tokio::test]
async fn a_host_named_with_allowed_host_is_accepted_and_others_still_are_not() {
    let server = TestServer::start(&["--allowed-host", "models.internal"]);
    let url = format!("{}/v1/models", server.base());
    let named = format!("models.internal:{}", port(&server));
    let (status, body) = send(server.http().get(&url).header("host", &named)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .http()
            .get(&url)
            .header("host", format!("other.internal:{}", port(&server))),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_post_that_is_not_declared_json_is_refused_before_it_queues() {
    let server = TestServer::start(&[]);
    let url = format!("{}/v1/chat/completions", server.base());
    // What a web page can send cross-origin without a preflight: text/plain, form encodings.
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut request = server.http().post(&url).body(hello());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, error) = send(request).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{content_type:?}: {error}"
        );
    }
    assert_eq!(server.health().await["completed"], 0);

    // JSON, with or without a charset, is served.
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let (status, body) = send(
            server
                .http()
                .post(&url)
                .header("content-type", content_type)
                .body(hello()),
        )
        .await;
        assert_eq!(status, 200, "{content_type}: {body}");
    }
}

#[tokio::test]
async fn with_an_api_key_only_requests_bearing_it_are_served() {
    let server = TestServer::start(&["--api-key", "s3cret-key"]);
    let models = format!("{}/v1/models", server.base());
    let chat = format!("{}/v1/chat/completions", server.base());

    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-key"),
        Some("Basic s3cret-key"),
    ] {
        let mut request = server.http().get(&models);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let (status, error) = send(request).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{authorization:?}: {error}"
        );
    }
    let (status, error) = send(
        server
            .http()
            .post(&chat)
            .header("content-type", "application/json")
            .body(hello()),
    )
    .await;
    assert_eq!(status, 401, "{error}");

    let (status, body) = send(server.http().get(&models).bearer_auth("s3cret-key")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        server
            .http()
            .post(&chat)
            .bearer_auth("s3cret-key")
            .header("content-type", "application/json")
            .body(hello()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["object"], "chat.completion",
        "the key opened the real route: {body}"
    );
}

#[tokio::test]
async fn without_an_api_key_no_authorization_is_needed() {
    let server = TestServer::start(&[]);
    let (status, body) = send(server.http().get(format!("{}/v1/models", server.base()))).await;
    assert_eq!(status, 200, "{body}");
}
