//! Checks of the deployed configuration: that `wrangler.toml` never turns on a test-only
//! switch, that this list knows every switch the Worker reads, and, against a real server
//! with all of them on, that none is honoured for a request not addressed to localhost.

use e2e::{repo_root, DevOptions, DevServer, Result, Session};
use shared::protocol::http::SearchResults;
use shared::ErrorCode;

/// Vars that only a local dev server, the tests or the bench may set: the local account,
/// provider endpoints pointed at a fake, the bench's bulk seed route, its guest minting, its
/// search index and analytics switches, the artificial delay of a room's answers, and the
/// logging tests' failing route. The Worker honours each only for requests addressed to
/// localhost.
const DEV_ONLY: &[&str] = &[
    "DEV_LOGIN",
    "OAUTH_TEST_ENDPOINTS",
    "BENCH_SEED",
    "BENCH_GUESTS",
    "BENCH_NO_FTS",
    "BENCH_NO_METRICS",
    "ROOM_QUERY_TEST_DELAY_MS",
    "PREVIEW_LOOPBACK",
    "FILES_TEST_SWEEP",
    "LOGS_TEST_FAILURES",
    "SETTINGS_TEST_CACHE_MS",
    "CLOUDFLARE_API_BASE",
];

fn wrangler_toml() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("wrangler.toml");
    text.parse().expect("wrangler.toml is valid TOML")
}

/// Every `[vars]` table: the top level's and each `[env.<name>.vars]`.
fn var_tables(config: &toml::Table) -> Vec<(String, toml::Table)> {
    let mut tables = Vec::new();
    if let Some(vars) = config.get("vars").and_then(|v| v.as_table()) {
        tables.push(("top level".to_owned(), vars.clone()));
    }
    if let Some(envs) = config.get("env").and_then(|v| v.as_table()) {
        for (name, env) in envs {
            if let Some(vars) = env.get("vars").and_then(|v| v.as_table()) {
                tables.push((format!("env.{name}"), vars.clone()));
            }
        }
    }
    tables
}

fn enabled(value: &toml::Value) -> bool {
    match value {
        toml::Value::Boolean(b) => *b,
        toml::Value::String(s) => !s.is_empty() && s != "false",
        _ => true,
    }
}

#[test]
fn wrangler_toml_never_enables_the_local_account_or_test_endpoints_in_any_environment() {
    let config = wrangler_toml();
    for (place, vars) in var_tables(&config) {
        for name in DEV_ONLY {
            if let Some(value) = vars.get(*name) {
                assert!(
                    !enabled(value),
                    "{place} sets {name} = {value}: dev/test only"
                );
            }
        }
    }
}

#[test]
fn the_check_would_catch_dev_login_in_a_named_environment() {
    let config: toml::Table = "[env.production.vars]\nDEV_LOGIN = \"true\"\n"
        .parse()
        .expect("toml");
    let tables = var_tables(&config);
    assert_eq!(tables.len(), 1);
    assert!(enabled(&tables[0].1["DEV_LOGIN"]));
    assert!(!enabled(&toml::Value::String("false".into())));
    assert!(!enabled(&toml::Value::Boolean(false)));
}

/// The string literals in the Worker's sources that name a test-only switch: `BENCH_*`,
/// `*_TEST_*`, `DEV_*`.
fn switches_the_worker_reads() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![repo_root().join("edge/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("edge/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for literal in text.split('"').skip(1).step_by(2) {
                let is_name = !literal.is_empty()
                    && literal
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                let test_only = literal.starts_with("BENCH_")
                    || literal.contains("_TEST_")
                    || literal.ends_with("_TEST")
                    || literal.starts_with("DEV_");
                if is_name && test_only && !found.contains(&literal.to_owned()) {
                    found.push(literal.to_owned());
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_test_only_switch_the_worker_reads_is_one_this_file_checks() {
    let read = switches_the_worker_reads();
    for name in [
        "DEV_LOGIN",
        "BENCH_SEED",
        "BENCH_NO_FTS",
        "ROOM_QUERY_TEST_DELAY_MS",
    ] {
        assert!(
            read.contains(&name.to_owned()),
            "the scan misses {name}: {read:?}"
        );
    }
    for name in &read {
        assert!(
            DEV_ONLY.contains(&name.as_str()),
            "the Worker reads test-only switch {name}, which DEV_ONLY does not check"
        );
    }
}

/// A request as a deployed site would get it: the same server, another host name.
const PUBLIC_HOST: &str = "chat.example.com";

async fn search(session: &Session, host: Option<&str>, path: &str) -> Result<SearchResults> {
    let mut request = session.request(reqwest::Method::GET, path);
    if let Some(host) = host {
        request = request.header("Host", host);
    }
    let response = request.send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn test_only_switches_are_honoured_for_localhost_and_ignored_for_any_other_host() -> Result {
    let server = DevServer::start(
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("BENCH_SEED", "1")
            .var("ROOM_QUERY_TEST_DELAY_MS", 30_000)
            .var("SEARCH_DEADLINE_MS", 200),
    )
    .await?;
    let ann = Session::create(&server, "Ann").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    a.post("c", "wombat").await?;

    // ROOM_QUERY_TEST_DELAY_MS: rooms answer late to localhost only.
    let public = search(&ann, Some(PUBLIC_HOST), "/api/search?q=wombat").await?;
    assert!(!public.partial, "{public:?}");
    assert_eq!(public.hits.len(), 1, "{public:?}");
    let local = search(&ann, None, "/api/search?q=wombat").await?;
    assert_eq!(
        local.missing,
        vec![room.slug.clone()],
        "the delay works on localhost"
    );

    // BENCH_SEED: the bulk seed route does not exist for another host. (On localhost it is
    // the bench's; here its room query would wait out the delay above.)
    let seed = format!("/api/rooms/{}/seed?count=3", room.slug);
    let response = ann
        .request(reqwest::Method::POST, &seed)
        .header("Host", PUBLIC_HOST)
        .send()
        .await?;
    // Refused as on a server without BENCH_SEED (no such route for POST).
    e2e::client::expect_error(response, ErrorCode::InvalidInput).await?;

    // DEV_LOGIN: the local account is offered to localhost only.
    let response = e2e::client::http()
        .post(format!("{}/api/auth/local", server.url()))
        .header("Host", PUBLIC_HOST)
        .json(&serde_json::json!({ "name": "Eve" }))
        .send()
        .await?;
    e2e::client::expect_error(response, ErrorCode::Forbidden).await?;
    Ok(())
}
