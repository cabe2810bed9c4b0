//! The main Worker's logging (issue 12) under `wrangler dev`, with the logging Worker beside it
//! (two configurations in one runtime, as `./scripts/dev` runs them): a failing request is
//! logged with its route, code, request id and a pseudonymous user, and none of the secrets its
//! detail carried; the app's reports are checked, capped, rate-limited and stored scrubbed; the
//! admin-only viewer (`/api/admin/logs`, `/tail`) is a 404 to anyone else; and a Worker whose
//! logger is missing still answers.
//!
//! One server for the file. Its first account is the global admin (created before any other).
//! Each test tags what it causes with a unique word (in the failing route's path, or a
//! report's route) and filters the log on it (`q=`), so tests running at once never see each
//! other's entries. Entries arrive after the answer (`wait_until`), so reads poll briefly.

use std::time::{Duration, Instant};

use e2e::client::{expect_error, CLIENT_IP_HEADER};
use e2e::{random_hex, DevOptions, DevServer, Result, Session};
use reqwest::Method;
use serde_json::{json, Value};
use shared::logs::{Filter, Level, LogPage, LogRecord, Source, TailPage, TailQuery};
use shared::profile::Profile;
use shared::ErrorCode;
use tokio::sync::OnceCell;

static SHARED: OnceCell<DevServer> = OnceCell::const_new();
static ADMIN: OnceCell<Session> = OnceCell::const_new();

async fn server() -> &'static DevServer {
    DevServer::shared(&SHARED, || {
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("LOGS_TEST_FAILURES", "1")
    })
    .await
}

/// The global admin: the install's first account.
async fn admin() -> Result<Session> {
    let session = ADMIN
        .get_or_try_init(|| async { e2e::login::local_account(server().await, "Root").await })
        .await?;
    let profile: Profile = session.get("/api/profile").await?.json().await?;
    anyhow::ensure!(profile.admin, "the first account is a global admin");
    Ok(session.clone())
}

async fn guest(name: &str) -> Result<Session> {
    Session::create(server().await, name).await
}

/// A unique word to tag and find one test's entries. Short, and a path segment of its own:
/// a longer run of letters and digits may look like a token to the scrubber.
fn tag() -> String {
    format!("tag{}", random_hex(6))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes the Worker answer 500 `internal` on a route tagged with `tag`.
async fn fail(who: &Session, tag: &str) -> Result {
    let response = who
        .request(Method::POST, &format!("/api/test/failure/{tag}"))
        .send()
        .await?;
    expect_error(response, ErrorCode::Internal).await?;
    Ok(())
}

async fn page(admin: &Session, filter: &Filter) -> Result<LogPage> {
    let response = admin
        .get(&format!("/api/admin/logs?{}", filter.to_query()))
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "GET /api/admin/logs: {}",
        response.status()
    );
    Ok(response.json().await?)
}

fn tagged(tag: &str) -> Filter {
    Filter {
        text: Some(tag.to_owned()),
        ..Filter::default()
    }
}

/// The entries matching `tag` once there are at least `count` (entries are sent after the
/// answer, so they may take a moment).
async fn wait_for(admin: &Session, tag: &str, count: usize) -> Result<Vec<LogRecord>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let entries = page(admin, &tagged(tag)).await?.entries;
        if entries.len() >= count {
            return Ok(entries);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} of {count} entries tagged {tag}: {entries:#?}",
                entries.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_request_the_worker_answers_500_is_logged_with_route_code_and_user_and_no_secrets(
) -> Result {
    let admin = admin().await?;
    let ann = guest("Ann").await?;
    let bob = guest("Bob").await?;
    let tag = tag();
    fail(&ann, &tag).await?;
    fail(&ann, &tag).await?;
    fail(&bob, &tag).await?;

    let entries = wait_for(&admin, &tag, 3).await?;
    assert_eq!(entries.len(), 3, "{entries:#?}");
    for record in &entries {
        let entry = &record.entry;
        assert_eq!(entry.source, Source::Worker);
        assert_eq!(entry.level, Level::Error);
        assert_eq!(entry.message, "request failed");
        assert_eq!(
            entry.context.route.as_deref(),
            Some(format!("/api/test/failure/{tag}").as_str())
        );
        let error = entry.error.as_ref().expect("the error");
        assert_eq!(error.code, "internal");
        assert!(
            error
                .detail
                .starts_with("status 500: test failure for [email]"),
            "{error:?}"
        );
        let id = entry.context.request_id.as_deref().unwrap_or_default();
        assert!(!id.is_empty(), "a request id: {entry:?}");
        let text = serde_json::to_string(record)?;
        for secret in [
            "erin@example.com",
            "Zm9vYmFyYmF6cXV4LXRlc3Q",
            "s3cret-cookie-value",
            ann.user_id(),
            bob.user_id(),
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let ids: std::collections::BTreeSet<_> = entries
        .iter()
        .map(|r| r.entry.context.request_id.clone())
        .collect();
    assert_eq!(ids.len(), 3, "one id per request");
    // One user's entries share a pseudonym, which is not the user id and differs between
    // users. (Entries are stored after their answers, so their order may not be the requests'.)
    let mut users: Vec<String> = entries
        .iter()
        .map(|r| {
            r.entry
                .context
                .user
                .as_ref()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(users.iter().all(|u| u.len() == 32), "{users:?}");
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 2, "Ann twice, Bob once: {users:?}");

    // The filters and the paging pass through; a bad value is refused as the logger does.
    let errors_only = Filter {
        levels: vec![Level::Error],
        limit: Some(2),
        ..tagged(&tag)
    };
    let first = page(&admin, &errors_only).await?;
    assert_eq!(first.entries.len(), 2);
    let mut next = errors_only.clone();
    next.cursor = first
        .cursor
        .as_deref()
        .and_then(shared::logs::PageCursor::parse);
    assert!(next.cursor.is_some(), "a cursor to the older entry");
    let second = page(&admin, &next).await?;
    assert_eq!(second.entries.len(), 1);
    assert_eq!(second.entries[0].key, entries[2].key);
    let warn_only = Filter {
        levels: vec![Level::Warn],
        ..tagged(&tag)
    };
    assert!(page(&admin, &warn_only).await?.entries.is_empty());
    expect_error(
        admin.get("/api/admin/logs?level=fatal").await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_log_routes_do_not_exist_for_anyone_but_a_global_admin() -> Result {
    admin().await?;
    let server = server().await;
    let guest = guest("Guest").await?;
    let account = e2e::login::local_account(server, &e2e::unique("Plain")).await?;
    for who in [&guest, &account] {
        for path in [
            "/api/admin/logs",
            "/api/admin/logs/tail",
            "/api/admin/logs?level=error",
        ] {
            // Said as for any path without an API.
            let body = expect_error(who.get(path).await?, ErrorCode::NotFound).await?;
            let bare = path.split('?').next().unwrap_or(path);
            assert_eq!(body.message, format!("No API at {bare}."));
        }
    }
    let nobody = e2e::client::http()
        .get(format!("{}/api/admin/logs", server.url()))
        .send()
        .await?;
    expect_error(nobody, ErrorCode::NotFound).await?;
    // The tests' failing route is not there for another host, as on a deployed Worker.
    let public = guest
        .request(Method::POST, "/api/test/failure/x")
        .header("Host", "chat.example.com")
        .send()
        .await?;
    expect_error(public, ErrorCode::NotFound).await?;
    // Other methods and paths under the viewer are not there either, even for an admin.
    let admin = admin().await?;
    let post = admin.post("/api/admin/logs", &json!({})).await?;
    expect_error(post, ErrorCode::NotFound).await?;
    expect_error(
        admin.get("/api/admin/logs/elsewhere").await?,
        ErrorCode::NotFound,
    )
    .await?;
    Ok(())
}

/// A report as the app would send it, from its own page (same Origin) and address.
async fn report(
    who: &Session,
    ip: &str,
    body: impl Into<reqwest::Body>,
) -> Result<reqwest::Response> {
    Ok(who
        .request(Method::POST, "/api/logs/client")
        .header("Origin", who.origin())
        .header(CLIENT_IP_HEADER, ip)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?)
}

fn fresh_ip() -> String {
    let b = random_hex(3);
    format!(
        "10.{}.{}.{}",
        u8::from_str_radix(&b[0..2], 16).unwrap_or(1),
        u8::from_str_radix(&b[2..4], 16).unwrap_or(2),
        u8::from_str_radix(&b[4..6], 16).unwrap_or(3)
    )
}

fn failed_request(route: &str) -> Value {
    json!({
        "at": now_ms(), "level": "error", "message": "request failed", "source": "browser",
        "context": { "route": route },
        "error": { "code": "internal", "detail": "GET status 502" },
    })
}

#[tokio::test]
async fn a_browser_report_carrying_an_email_a_bearer_token_and_a_cookie_is_stored_scrubbed(
) -> Result {
    let admin = admin().await?;
    let ann = guest("Ann").await?;
    let tag = tag();
    let token = "Zm9vYmFyYmF6cXV4cXV1eA";
    let careless = json!({
        "at": now_ms(), "level": "error", "message": "request failed", "source": "browser",
        "context": {
            "route": format!("/api/rooms/{tag}/search?q=my private words&token=tok-123"),
            "room": "forged-room", "request_id": "forged-id", "user": "ab".repeat(16),
        },
        "error": {
            "code": "internal",
            "detail": format!(
                "GET status 502 for erin@example.com\nAuthorization: Bearer {token}\n\
                 Cookie: dc_session=s3cret-cookie-value"
            ),
        },
    });
    let panic = json!({
        "at": now_ms(), "level": "error", "message": "panic", "source": "browser",
        "context": { "route": format!("/r/{tag}") },
        "error": { "code": "panic", "detail": "the app runs in a window (at app/src/web.rs:8:5)" },
    });
    let body = json!({ "entries": [careless, panic] }).to_string();
    let response = report(&ann, &fresh_ip(), body).await?;
    assert_eq!(response.status().as_u16(), 204);

    let entries = wait_for(&admin, &tag, 2).await?;
    let report = entries
        .iter()
        .find(|r| r.entry.message == "request failed")
        .expect("the failed request");
    let text = serde_json::to_string(report)?;
    for secret in [
        "erin@example.com",
        token,
        "s3cret-cookie-value",
        "private words",
        "tok-123",
        "forged",
        &"ab".repeat(16),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let entry = &report.entry;
    assert_eq!(entry.source, Source::Browser);
    assert_eq!(
        entry.context.route.as_deref(),
        Some(format!("/api/rooms/{tag}/search").as_str()),
        "the route's path only"
    );
    assert_eq!(entry.context.room, None, "a browser does not name the room");
    let detail = &entry.error.as_ref().expect("the error").detail;
    assert!(detail.contains("[email]") && detail.contains("Authorization: [redacted]"));
    assert!(detail.contains("Cookie: [redacted]"), "{detail}");
    // The server sets who and which request, as for its own entries.
    assert!(entry.context.request_id.is_some());
    assert_eq!(
        entry.context.user.as_ref().map(|u| u.as_str().len()),
        Some(32)
    );
    let panic = entries
        .iter()
        .find(|r| r.entry.message == "panic")
        .expect("the panic");
    assert_eq!(
        panic.entry.error.as_ref().map(|e| e.code.as_str()),
        Some("panic")
    );

    // Without a session too: a page whose session ended still reports.
    let anonymous = e2e::client::http()
        .post(format!("{}/api/logs/client", server().await.url()))
        .header("Origin", ann.origin())
        .header(CLIENT_IP_HEADER, fresh_ip())
        .json(&json!({ "entries": [failed_request(&format!("/{tag}/anonymous"))] }))
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 204);
    let entries = wait_for(&admin, &format!("{tag}/anonymous"), 1).await?;
    assert_eq!(entries[0].entry.context.user, None);
    Ok(())
}

#[tokio::test]
async fn the_report_endpoint_answers_too_large_rate_limited_and_refuses_other_shapes() -> Result {
    let ann = guest("Ann").await?;
    let tag = tag();
    let ip = fresh_ip();
    // Over 8 KB, and more than 10 entries.
    let padded = json!({ "entries": [failed_request(&"x".repeat(9 * 1024))] }).to_string();
    expect_error(report(&ann, &ip, padded).await?, ErrorCode::TooLarge).await?;
    let eleven: Vec<Value> = (0..11).map(|_| failed_request(&tag)).collect();
    let body = json!({ "entries": eleven }).to_string();
    expect_error(report(&ann, &ip, body).await?, ErrorCode::TooLarge).await?;
    // Not the browser builders' shape: another source, a free message, garbage.
    let mut worker = failed_request(&tag);
    worker["source"] = json!("worker");
    let mut chatty = failed_request(&tag);
    chatty["message"] = json!("Ann said: meet me at 5");
    for bad in [worker, chatty] {
        let body = json!({ "entries": [bad] }).to_string();
        expect_error(report(&ann, &ip, body).await?, ErrorCode::InvalidInput).await?;
    }
    expect_error(
        report(&ann, &ip, "not json").await?,
        ErrorCode::InvalidFrame,
    )
    .await?;
    // Another site's page may not report.
    let cross = ann
        .request(Method::POST, "/api/logs/client")
        .header("Origin", "https://elsewhere.example")
        .json(&json!({ "entries": [failed_request(&tag)] }))
        .send()
        .await?;
    expect_error(cross, ErrorCode::BadOrigin).await?;

    // A flood from one address: 30 a minute, then `rate_limited` (with when to retry). The
    // limiter counts in fixed windows: a flood that straddles two passes at most 60.
    let flood = fresh_ip();
    let mut limited = None;
    for i in 0..70 {
        let body = json!({ "entries": [failed_request(&format!("/{tag}/{i}"))] }).to_string();
        let response = report(&ann, &flood, body).await?;
        match response.status().as_u16() {
            204 => {}
            _ => {
                limited = Some((i, response));
                break;
            }
        }
    }
    let (i, response) = limited.expect("the flood is stopped");
    assert!(i >= 30, "stopped after {i} reports");
    assert!(response.headers().contains_key("Retry-After"));
    expect_error(response, ErrorCode::RateLimited).await?;
    // Another address is not held back.
    let body = json!({ "entries": [failed_request(&tag)] }).to_string();
    assert_eq!(
        report(&ann, &fresh_ip(), body).await?.status().as_u16(),
        204
    );
    Ok(())
}

#[tokio::test]
async fn the_tail_returns_only_entries_newer_than_its_key() -> Result {
    let admin = admin().await?;
    let ann = guest("Ann").await?;
    let tag = tag();
    fail(&ann, &format!("{tag}/before")).await?;
    wait_for(&admin, &tag, 1).await?;
    let tail = |after: Option<String>| {
        let query = TailQuery {
            after,
            filter: tagged(&tag),
        };
        let admin = admin.clone();
        async move {
            let response = admin
                .get(&format!("/api/admin/logs/tail?{}", query.to_query()))
                .await?;
            anyhow::ensure!(
                response.status().as_u16() == 200,
                "tail: {}",
                response.status()
            );
            Ok::<TailPage, anyhow::Error>(response.json().await?)
        }
    };
    let start = tail(None).await?;
    assert!(start
        .entries
        .iter()
        .any(|r| r.entry.context.route.as_deref()
            == Some(&format!("/api/test/failure/{tag}/before"))));
    let after = start.after.clone().expect("a key to poll from");

    fail(&ann, &format!("{tag}/one")).await?;
    fail(&ann, &format!("{tag}/two")).await?;
    wait_for(&admin, &tag, 3).await?;
    let new = tail(Some(after.clone())).await?;
    let routes: Vec<String> = new
        .entries
        .iter()
        .filter_map(|r| r.entry.context.route.clone())
        .collect();
    assert_eq!(
        routes,
        [
            format!("/api/test/failure/{tag}/two"),
            format!("/api/test/failure/{tag}/one")
        ],
        "only what came after, newest first"
    );
    assert!(!new.gap);
    let next = new.after.clone().expect("a newer key");
    assert!(next < after, "the next poll starts at a newer key");
    let quiet = tail(Some(next)).await?;
    assert!(quiet.entries.is_empty(), "{:?}", quiet.entries);
    expect_error(
        admin.get("/api/admin/logs/tail?after=garbage").await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    Ok(())
}

/// The main Worker alone, its `LOGGER` binding connected to nothing: failures are still
/// answered at once (their entries go to the console), reports still get their 204, and the
/// viewer says the log service is unavailable.
#[tokio::test]
async fn without_the_logger_requests_are_answered_as_before() -> Result {
    let server = DevServer::start(
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("LOGS_TEST_FAILURES", "1")
            .without_logger(),
    )
    .await?;
    let root = e2e::login::local_account(&server, "Root").await?;
    let started = Instant::now();
    let response = root
        .request(Method::POST, "/api/test/failure/alone")
        .send()
        .await?;
    expect_error(response, ErrorCode::Internal).await?;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the answer does not wait on the logger: {:?}",
        started.elapsed()
    );
    let body = json!({ "entries": [failed_request("/alone")] }).to_string();
    let response = report(&root, &fresh_ip(), body).await?;
    assert_eq!(response.status().as_u16(), 204);
    let health = root.get("/api/health").await?;
    assert_eq!(health.status().as_u16(), 200);
    let rooms = root.get("/api/rooms").await?;
    assert_eq!(rooms.status().as_u16(), 200);
    let viewer = expect_error(root.get("/api/admin/logs").await?, ErrorCode::Internal).await?;
    assert!(viewer.message.contains("log service"), "{}", viewer.message);
    Ok(())
}
