//! The logging Worker (`logger/`, issue 12) under `wrangler dev`, over its HTTP API: batches
//! stored scrubbed, listed newest first, filtered, paged and tailed; refusals with stable
//! codes; and the main Worker reaching it through a service binding when both configurations
//! run in one `wrangler dev` (`-c wrangler.toml -c logger/wrangler.toml`).
//!
//! One logger serves the whole file; each test tags its entries with a unique word and filters
//! on it (`q=`), so tests running at once never see each other's entries.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use e2e::server::{free_port, live_group_members};
use e2e::{random_hex, repo_root, Result};
use serde_json::{json, Value};
use shared::logs::{
    BatchReceipt, Filter, Level, LogPage, PageCursor, TailPage, TailQuery, MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
};
use shared::protocol::http::ErrorBody;
use shared::ErrorCode;
use tokio::sync::OnceCell;

/// `wrangler dev` with the given configs (the first is the one served), on a free port with its
/// own persist directory; its process group is killed on drop, or by a watchdog if the test
/// process dies first (a server held in a `static` is never dropped).
struct Wrangler {
    url: String,
    child: Child,
    pgid: u32,
    watchdog: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
    _persist: tempfile::TempDir,
}

impl Wrangler {
    /// Starts it and waits until `ready_path` answers `ready_status`.
    async fn start(configs: &[&Path], ready_path: &str, ready_status: u16) -> Result<Wrangler> {
        use std::os::unix::process::CommandExt as _;

        let shim = repo_root().join("logger/build/worker/shim.mjs");
        if !shim.exists() {
            bail!(
                "run ./scripts/build logger first: missing {}",
                shim.display()
            );
        }
        let persist = tempfile::Builder::new()
            .prefix("durable-chat-logger-e2e-")
            .tempdir()?;
        let port = free_port()?;
        let mut command = Command::new(repo_root().join("node_modules/.bin/wrangler"));
        command.current_dir(repo_root()).arg("dev");
        for config in configs {
            command.arg("-c").arg(config);
        }
        command
            .args(["--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .arg("--persist-to")
            .arg(persist.path())
            .arg("--show-interactive-dev-session=false")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().context("spawning wrangler dev")?;
        let pgid = child.id();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                    if let Ok(mut log) = log.lock() {
                        if log.len() == 100 {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                }
            });
        }
        // Also removes the persist directory: a server in a `static` is never dropped.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 -{pgid} 2>/dev/null; \
                 sleep 1; rm -rf '{}'",
                std::process::id(),
                persist.path().display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut server = Wrangler {
            url: format!("http://127.0.0.1:{port}"),
            child,
            pgid,
            watchdog,
            log,
            _persist: persist,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("wrangler dev exited ({status}):\n{}", server.log_tail());
            }
            let answer = http
                .get(format!("{}{ready_path}", server.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().as_u16() == ready_status) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("wrangler dev not ready in 90 s:\n{}", server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .status();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_group_members(self.pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

static LOGGER: OnceCell<Wrangler> = OnceCell::const_new();

/// The file's logger, alone (`wrangler dev -c logger/wrangler.toml`): served on its own port.
async fn logger() -> &'static Wrangler {
    LOGGER
        .get_or_init(|| async {
            let config = repo_root().join("logger/wrangler.toml");
            match Wrangler::start(&[&config], "/entries?limit=1", 200).await {
                Ok(server) => server,
                Err(e) => panic!("could not start the logger: {e:#}"),
            }
        })
        .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A unique word to tag and find one test's entries.
fn tag() -> String {
    format!("tag{}", random_hex(6))
}

fn entry(level: &str, message: &str) -> Value {
    json!({"at": now_ms(), "level": level, "message": message, "source": "worker"})
}

async fn post(base: &str, body: impl Into<reqwest::Body>) -> Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(format!("{base}/entries"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

async fn write(base: &str, entries: Vec<Value>) -> Result<BatchReceipt> {
    let (status, body) = post(base, json!({ "entries": entries }).to_string()).await?;
    anyhow::ensure!(status == 200, "POST /entries answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

async fn get(base: &str, path: &str) -> Result<(u16, Value)> {
    let response = reqwest::get(format!("{base}{path}")).await?;
    Ok((response.status().as_u16(), response.json().await?))
}

async fn list(base: &str, filter: &Filter) -> Result<LogPage> {
    let (status, body) = get(base, &format!("/entries?{}", filter.to_query())).await?;
    anyhow::ensure!(status == 200, "GET /entries answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

fn tagged(tag: &str) -> Filter {
    Filter {
        text: Some(tag.to_string()),
        ..Filter::default()
    }
}

fn messages(page: &LogPage) -> Vec<String> {
    page.entries
        .iter()
        .map(|r| r.entry.message.clone())
        .collect()
}

#[tokio::test]
async fn a_batch_of_mixed_levels_is_stored_and_listed_newest_first() -> Result {
    let base = &logger().await.url;
    let tag = tag();
    let levels = ["debug", "info", "warn", "error"];
    let batch = levels
        .iter()
        .map(|l| entry(l, &format!("{tag} {l}")))
        .collect();
    let receipt = write(base, batch).await?;
    assert_eq!(receipt.written, 4);
    assert!(receipt.rejected.is_empty());

    let page = list(base, &tagged(&tag)).await?;
    let expected: Vec<String> = levels.iter().rev().map(|l| format!("{tag} {l}")).collect();
    assert_eq!(
        messages(&page),
        expected,
        "the batch's last entry is the newest"
    );
    let keys: Vec<&String> = page.entries.iter().map(|r| &r.key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "newest first is KV's ascending key order");
    let levels_back: Vec<Level> = page.entries.iter().map(|r| r.entry.level).collect();
    assert_eq!(
        levels_back,
        [Level::Error, Level::Warn, Level::Info, Level::Debug]
    );
    assert_eq!(page.cursor, None);
    Ok(())
}

#[tokio::test]
async fn listing_filters_by_level_time_and_text() -> Result {
    let base = &logger().await.url;
    let tag = tag();
    write(
        base,
        vec![
            entry("info", &format!("{tag} first info")),
            json!({"at": now_ms(), "level": "error", "message": format!("{tag} first error"),
                   "source": "room", "error": {"code": "internal", "detail": "D1 Busy Again"}}),
        ],
    )
    .await?;
    let first = list(base, &tagged(&tag)).await?;
    let first_at = first.entries[0].logged_at;
    tokio::time::sleep(Duration::from_millis(30)).await;
    write(
        base,
        vec![
            entry("warn", &format!("{tag} second warn")),
            entry("error", &format!("{tag} second error")),
        ],
    )
    .await?;
    let all = list(base, &tagged(&tag)).await?;
    let second_at = all.entries[0].logged_at;
    assert!(second_at > first_at, "{second_at} after {first_at}");

    let errors = Filter {
        levels: vec![Level::Error],
        ..tagged(&tag)
    };
    assert_eq!(
        messages(&list(base, &errors).await?),
        [format!("{tag} second error"), format!("{tag} first error")]
    );
    let warn_and_above = Filter {
        levels: Level::Warn.and_above(),
        ..tagged(&tag)
    };
    assert_eq!(list(base, &warn_and_above).await?.entries.len(), 3);

    let since_second = Filter {
        from: Some(second_at),
        ..tagged(&tag)
    };
    assert_eq!(
        messages(&list(base, &since_second).await?),
        [format!("{tag} second error"), format!("{tag} second warn")]
    );
    let until_first = Filter {
        to: Some(first_at),
        ..tagged(&tag)
    };
    assert_eq!(
        messages(&list(base, &until_first).await?),
        [format!("{tag} first error"), format!("{tag} first info")]
    );

    // Text matches the error's detail too, ignoring case; the tag alone would match all four.
    let text = Filter {
        text: Some(format!("{tag} FIRST")),
        ..Filter::default()
    };
    assert_eq!(list(base, &text).await?.entries.len(), 2);
    let detail = list(base, &tagged("d1 busy again")).await?;
    assert!(messages(&detail).contains(&format!("{tag} first error")));
    Ok(())
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end_without_repeats() -> Result {
    let base = &logger().await.url;
    let tag = tag();
    let batch = (0..7)
        .map(|i| entry("info", &format!("{tag} number {i}")))
        .collect();
    write(base, batch).await?;
    let mut filter = Filter {
        limit: Some(3),
        ..tagged(&tag)
    };
    let mut pages = Vec::new();
    loop {
        let page = list(base, &filter).await?;
        pages.push(messages(&page));
        let Some(cursor) = page.cursor else { break };
        filter.cursor = Some(PageCursor::parse(&cursor).context("a cursor that parses")?);
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    let flat: Vec<String> = pages.iter().flatten().cloned().collect();
    let expected: Vec<String> = (0..7).rev().map(|i| format!("{tag} number {i}")).collect();
    assert_eq!(flat, expected);
    assert_eq!(pages[0].len(), 3);
    assert_eq!(pages[1].len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_tail_returns_only_entries_newer_than_its_key() -> Result {
    let base = &logger().await.url;
    let tag = tag();
    write(base, vec![entry("info", &format!("{tag} before"))]).await?;
    let tail = |after: Option<String>| {
        let query = TailQuery {
            after,
            filter: tagged(&tag),
        };
        async move {
            let (status, body) = get(base, &format!("/entries/tail?{}", query.to_query())).await?;
            anyhow::ensure!(status == 200, "tail answered {status}: {body}");
            Ok::<TailPage, anyhow::Error>(serde_json::from_value(body)?)
        }
    };
    let start = tail(None).await?;
    assert!(start
        .entries
        .iter()
        .any(|r| r.entry.message == format!("{tag} before")));
    let after = start.after.clone().context("a key to poll from")?;

    write(
        base,
        vec![
            entry("warn", &format!("{tag} new one")),
            entry("error", &format!("{tag} new two")),
        ],
    )
    .await?;
    let new = tail(Some(after.clone())).await?;
    let got: Vec<String> = new
        .entries
        .iter()
        .map(|r| r.entry.message.clone())
        .collect();
    assert_eq!(got, [format!("{tag} new two"), format!("{tag} new one")]);
    assert!(!new.gap);
    let next = new.after.clone().context("a newer key")?;
    assert!(next < after, "the next poll starts at a newer key");

    let quiet = tail(Some(next.clone())).await?;
    let ours: Vec<_> = quiet
        .entries
        .iter()
        .filter(|r| r.entry.message.contains(&tag))
        .collect();
    assert!(ours.is_empty(), "nothing of ours is newer: {ours:?}");
    Ok(())
}

#[tokio::test]
async fn an_entry_full_of_secrets_is_stored_scrubbed() -> Result {
    let base = &logger().await.url;
    let tag = tag();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let hex = "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92";
    // What a careless caller might send: the logger scrubs again, whatever the caller did.
    let secrets = [
        "erin@example.com",
        jwt,
        "Zm9vYmFyYmF6cXV4",
        "dc_session=s3cret",
        "4/0AbCdEf",
        "st4te-xyz",
        hex,
        "hunter2",
        "tok-123",
    ];
    let entry = json!({
        "at": now_ms(),
        "level": "error",
        "message": format!("{tag} sign-in failed for erin@example.com with {jwt}"),
        "source": "worker",
        "context": {
            "route": "/auth/callback/google?code=4/0AbCdEf&state=st4te-xyz",
            "room": "general",
            "request_id": "8a1b2c3d4e5f6789-SJC",
            "user": "not a hash: erin@example.com",
        },
        "error": {
            "code": "internal",
            "detail": format!(
                "upstream said 401\nAuthorization: Bearer Zm9vYmFyYmF6cXV4\n\
                 Cookie: dc_session=s3cret; theme=dark\nsigning key {hex}\n\
                 form password=hunter2&token=tok-123 posted"
            ),
        },
    });
    let receipt = write(base, vec![entry]).await?;
    assert_eq!(receipt.written, 1, "{receipt:?}");
    let page = list(base, &tagged(&tag)).await?;
    let stored = serde_json::to_string(&page.entries[0].entry)?;
    for secret in secrets {
        assert!(!stored.contains(secret), "{secret} survived: {stored}");
    }
    for useful in [
        "sign-in failed for [email] with [jwt]",
        "/auth/callback/google?code=[redacted]&state=[redacted]",
        "upstream said 401",
        "Authorization: [redacted]",
        "Cookie: [redacted]",
        "signing key [secret]",
        "password=[redacted]&token=[redacted] posted",
        "\"room\":\"general\"",
        "8a1b2c3d4e5f6789-SJC",
    ] {
        assert!(stored.contains(useful), "{useful} lost: {stored}");
    }
    assert_eq!(page.entries[0].entry.context.user, None, "not a user hash");
    Ok(())
}

#[tokio::test]
async fn garbled_and_oversize_batches_are_refused_with_stable_codes() -> Result {
    let base = &logger().await.url;
    let code_of = |body: &Value| serde_json::from_value::<ErrorBody>(body.clone()).map(|e| e.code);

    for garbled in [
        "not json",
        "[1, 2]",
        r#"{"entries": {}}"#,
        r#"{"entries": ["#,
    ] {
        let (status, body) = post(base, garbled).await?;
        assert_eq!(status, 400, "{garbled}: {body}");
        assert_eq!(code_of(&body)?, ErrorCode::InvalidFrame);
    }

    let too_many: Vec<Value> = (0..=MAX_BATCH_ENTRIES)
        .map(|i| entry("info", &format!("n {i}")))
        .collect();
    let (status, body) = post(base, json!({ "entries": too_many }).to_string()).await?;
    assert_eq!((status, code_of(&body)?), (413, ErrorCode::TooLarge));

    let huge = format!(
        r#"{{"entries": [{{"message": "{}"}}]}}"#,
        "x".repeat(MAX_BATCH_BYTES)
    );
    let (status, body) = post(base, huge).await?;
    assert_eq!((status, code_of(&body)?), (413, ErrorCode::TooLarge));

    // One bad entry does not sink the batch: it is named by index and code.
    let tag = tag();
    let receipt = write(
        base,
        vec![
            entry("info", &format!("{tag} fine")),
            json!({"level": "info"}),
            entry("loud", "bad level"),
            entry("info", ""),
            entry("info", &"y".repeat(9_000)),
        ],
    )
    .await?;
    assert_eq!(receipt.written, 1);
    let rejected: Vec<(usize, ErrorCode)> =
        receipt.rejected.iter().map(|r| (r.index, r.code)).collect();
    assert_eq!(
        rejected,
        [
            (1, ErrorCode::InvalidFrame),
            (2, ErrorCode::InvalidFrame),
            (3, ErrorCode::InvalidInput),
            (4, ErrorCode::TooLarge)
        ]
    );

    for (path, status, code) in [
        ("/entries?level=fatal", 400, ErrorCode::InvalidInput),
        ("/entries?limit=1000", 400, ErrorCode::InvalidInput),
        ("/entries?cursor=garbage", 400, ErrorCode::InvalidInput),
        ("/entries/tail?after=garbage", 400, ErrorCode::InvalidInput),
        ("/nothing-here", 404, ErrorCode::NotFound),
    ] {
        let (got, body) = get(base, path).await?;
        assert_eq!((got, code_of(&body)?), (status, code), "{path}");
    }
    let (status, body) = {
        let response = reqwest::Client::new()
            .delete(format!("{base}/entries"))
            .send()
            .await?;
        (response.status().as_u16(), response.json::<Value>().await?)
    };
    assert_eq!((status, code_of(&body)?), (404, ErrorCode::NotFound));
    Ok(())
}

/// Both Workers in one `wrangler dev`: the first config is served, the second (the logger) is
/// reachable only through the first's service binding. The first here is a stand-in for the
/// main Worker (it forwards everything to its `LOGGER` binding), so the test does not depend
/// on the main Worker's hooks.
#[tokio::test]
async fn a_worker_reaches_the_logger_through_a_service_binding_with_two_configs() -> Result {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("main.js"),
        r#"export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return env.LOGGER.fetch(new Request("https://logger" + url.pathname + url.search, request));
  },
};
"#,
    )?;
    let config = dir.path().join("wrangler.toml");
    std::fs::write(
        &config,
        r#"name = "logger-binding-probe"
main = "main.js"
compatibility_date = "2026-04-01"

[[services]]
binding = "LOGGER"
service = "durable-chat-logger"
"#,
    )?;
    let logger_config = repo_root().join("logger/wrangler.toml");
    let server = Wrangler::start(&[&config, &logger_config], "/entries?limit=1", 200).await?;
    let tag = tag();
    let receipt = write(
        &server.url,
        vec![entry("warn", &format!("{tag} via binding"))],
    )
    .await?;
    assert_eq!(receipt.written, 1);
    let page = list(&server.url, &tagged(&tag)).await?;
    assert_eq!(messages(&page), [format!("{tag} via binding")]);
    Ok(())
}

/// Deployed, the logger has no address of its own: no `workers.dev` URL, no preview URLs, no
/// routes; the main Worker's service binding is the only way in.
#[test]
fn the_production_logger_has_no_public_address_and_owns_the_logs_namespace() {
    let text = std::fs::read_to_string(repo_root().join("logger/wrangler.toml"))
        .expect("logger/wrangler.toml");
    let config: toml::Table = text.parse().expect("valid TOML");
    let production = config["env"]["production"]
        .as_table()
        .expect("[env.production]");
    assert_eq!(production["name"].as_str(), Some("durable-chat-logger"));
    assert_eq!(production["workers_dev"].as_bool(), Some(false));
    assert_eq!(production["preview_urls"].as_bool(), Some(false));
    for key in ["route", "routes"] {
        assert!(!production.contains_key(key) && !config.contains_key(key));
    }
    let kv = production["kv_namespaces"].as_array().expect("KV");
    assert_eq!(kv.len(), 1);
    assert_eq!(kv[0]["binding"].as_str(), Some("LOGS"));
    let root: toml::Table = std::fs::read_to_string(repo_root().join("wrangler.toml"))
        .expect("wrangler.toml")
        .parse()
        .expect("valid TOML");
    assert_eq!(
        config["compatibility_date"].as_str(),
        root["compatibility_date"].as_str(),
        "both Workers run on the same runtime date"
    );
}
