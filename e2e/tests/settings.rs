//! The admin's settings page (issue 12) against the real Worker under `wrangler dev`: who may
//! see it, per-field validation and live checks (the fake AI's `/v1/models`), values sealed in
//! D1 (read back with `wrangler d1 execute --local`) and shown masked, the audit log, a saved
//! value reaching the assistant within the cache time, session key rotation, and "Save to
//! Cloudflare" against a fake of Cloudflare's API.
//!
//! One server for the file, with `SETTINGS_KEY` and a 300 ms settings cache
//! (`SETTINGS_TEST_CACHE_MS`); tests touch different settings so they can run at once. Only
//! one test rotates the session key (the admin's own session lives on the previous key).

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use e2e::client::expect_error;
use e2e::fake_ai::{FakeAi, Script};
use e2e::fake_cloudflare::{self, FakeCloudflare};
use e2e::watcher::Watcher;
use e2e::{random_hex, repo_root, unique, DevOptions, DevServer, Result, Session};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::moderation::http::AuditPage;
use shared::protocol::AnswerState;
use shared::settings::{FieldCode, FieldResult, SaveOutcome, SettingsView, Source};
use shared::ErrorCode;
use tokio::sync::OnceCell;

struct World {
    server: DevServer,
    ai: FakeAi,
    cloudflare: FakeCloudflare,
}

static WORLD: OnceCell<World> = OnceCell::const_new();
static ADMIN: OnceCell<Session> = OnceCell::const_new();

/// How long an instance keeps the settings it read (the tests' `SETTINGS_TEST_CACHE_MS`).
const CACHE: Duration = Duration::from_millis(300);

async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let ai = FakeAi::start().await.expect("fake AI");
            let cloudflare = FakeCloudflare::start().expect("fake Cloudflare API");
            let options = DevOptions::default()
                .var("DEV_LOGIN", "true")
                .var("SETTINGS_KEY", STANDARD.encode(random_bytes(32)))
                .var("SETTINGS_TEST_CACHE_MS", CACHE.as_millis())
                .var("CLOUDFLARE_API_TOKEN", fake_cloudflare::TOKEN)
                .var("CLOUDFLARE_ACCOUNT_ID", fake_cloudflare::ACCOUNT)
                .var("CLOUDFLARE_API_BASE", cloudflare.base())
                .var("AI_PROVIDER", "openai")
                .var("AI_BASE_URL", ai.base_url())
                .var("AI_MODEL", "fake-model")
                .var("AI_FIRST_TOKEN_TIMEOUT_MS", 3000)
                .var("AI_IDLE_TIMEOUT_MS", 3000);
            let server = match DevServer::start(options).await {
                Ok(server) => server,
                Err(e) => panic!("could not start wrangler dev: {e:#}"),
            };
            World {
                server,
                ai,
                cloudflare,
            }
        })
        .await
}

fn random_bytes(n: usize) -> Vec<u8> {
    let hex = random_hex(n);
    (0..n)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

/// The global admin: the install's first account (created before any other of this file).
async fn admin() -> Result<Session> {
    let server = &world().await.server;
    Ok(ADMIN
        .get_or_try_init(|| async { e2e::login::local_account(server, "Root").await })
        .await?
        .clone())
}

async fn view(session: &Session) -> Result<SettingsView> {
    let response = session.get("/api/admin/settings").await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "GET /api/admin/settings: {}",
        response.status()
    );
    Ok(response.json().await?)
}

async fn put(session: &Session, body: &Value) -> Result<reqwest::Response> {
    Ok(session
        .request(reqwest::Method::PUT, "/api/admin/settings")
        .json(body)
        .send()
        .await?)
}

/// Saves `values` (`{NAME: value or null}`), expecting 200, and returns the result per field.
async fn save(session: &Session, values: Value, cloudflare: bool) -> Result<Vec<FieldResult>> {
    let response = put(
        session,
        &json!({ "values": values, "cloudflare": cloudflare }),
    )
    .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "PUT /api/admin/settings: {status} {text}");
    Ok(serde_json::from_str::<SaveOutcome>(&text)?.results)
}

fn field<'a>(results: &'a [FieldResult], name: &str) -> &'a FieldResult {
    results
        .iter()
        .find(|r| r.field == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
}

fn state<'a>(view: &'a SettingsView, name: &str) -> &'a shared::settings::SettingState {
    view.settings
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} is not on the page"))
}

/// Runs SQL on the server's local D1 (its persist directory), as an operator with
/// `wrangler d1 execute --local` would, and returns the rows.
async fn d1(server: &DevServer, sql: &str) -> Result<Vec<Value>> {
    let root = repo_root();
    let mut command = std::process::Command::new(root.join("node_modules/.bin/wrangler"));
    command
        .current_dir(&root)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .args(["d1", "execute", "DB", "--local", "--json", "--persist-to"])
        .arg(server.persist_dir())
        .arg("--command")
        .arg(sql)
        .stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "wrangler d1 execute: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_str(&stdout)?;
    Ok(parsed[0]["results"].as_array().cloned().unwrap_or_default())
}

async fn stored_row(server: &DevServer, name: &str) -> Result<String> {
    let rows = d1(
        server,
        &format!("SELECT value FROM settings WHERE name = '{name}'"),
    )
    .await?;
    rows.first()
        .and_then(|r| r["value"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no stored row for {name}"))
}

#[tokio::test]
async fn guests_plain_accounts_and_strangers_are_told_there_are_no_settings() -> Result {
    let w = world().await;
    let admin = admin().await?;
    let account = e2e::login::local_account(&w.server, "Plain").await?;
    let guest = Session::create(&w.server, "Guest").await?;
    for who in [&guest, &account] {
        expect_error(who.get("/api/admin/settings").await?, ErrorCode::NotFound).await?;
        let body = json!({"values": {"AI_MODEL": "sneaky"}});
        expect_error(put(who, &body).await?, ErrorCode::NotFound).await?;
    }
    let nobody = e2e::client::http()
        .get(format!("{}/api/admin/settings", w.server.url()))
        .send()
        .await?;
    expect_error(nobody, ErrorCode::NotFound).await?;
    // Nothing was saved by them, and the admin sees the page.
    let page = view(&admin).await?;
    assert!(page.storage.available, "{:?}", page.storage);
    assert!(page.cloudflare);
    assert_ne!(state(&page, "AI_MODEL").shown.as_deref(), Some("sneaky"));
    Ok(())
}

#[tokio::test]
async fn a_bad_google_client_id_fails_its_field_and_the_fake_ais_base_url_passes_its_live_check(
) -> Result {
    let w = world().await;
    let admin = admin().await?;
    let before = w.ai.model_lists().len();
    let results = save(
        &admin,
        json!({
            "GOOGLE_CLIENT_ID": "my-google-app",
            "AI_BASE_URL": w.ai.base_url(),
            "NOT_A_SETTING": "x",
        }),
        false,
    )
    .await?;
    let google = field(&results, "GOOGLE_CLIENT_ID");
    assert!(!google.ok);
    assert_eq!(google.code, FieldCode::InvalidFormat);
    assert!(
        google.message.contains(".apps.googleusercontent.com"),
        "{}",
        google.message
    );
    let base = field(&results, "AI_BASE_URL");
    assert!(base.ok, "{base:?}");
    assert_eq!(base.code, FieldCode::Saved);
    assert!(base.message.contains("answered 200"), "{}", base.message);
    assert!(w.ai.model_lists().len() > before, "the fake was asked");
    assert_eq!(
        field(&results, "NOT_A_SETTING").code,
        FieldCode::UnknownSetting
    );

    // A base URL where nothing answers fails its check and is not stored.
    let results = save(
        &admin,
        json!({"CLASSIFIER_URL": "http://127.0.0.1:9/nowhere"}),
        false,
    )
    .await?;
    let classifier = field(&results, "CLASSIFIER_URL");
    assert!(!classifier.ok);
    assert_eq!(classifier.code, FieldCode::CheckFailed);
    let page = view(&admin).await?;
    assert_eq!(state(&page, "GOOGLE_CLIENT_ID").source, Source::Unset);
    assert_eq!(state(&page, "CLASSIFIER_URL").source, Source::Unset);
    assert_eq!(state(&page, "AI_BASE_URL").source, Source::Stored);
    assert!(state(&page, "AI_BASE_URL").in_environment);
    // A var is shown as it is.
    assert_eq!(
        state(&page, "AI_BASE_URL").shown.as_deref(),
        Some(w.ai.base_url().as_str())
    );
    Ok(())
}

#[tokio::test]
async fn a_stored_secret_is_sealed_in_d1_with_a_fresh_nonce_and_shown_only_by_its_last_four(
) -> Result {
    let w = world().await;
    let admin = admin().await?;
    let key = format!("sk-test-{}", random_hex(12));
    let results = save(&admin, json!({ "AI_API_KEY": key }), false).await?;
    assert!(field(&results, "AI_API_KEY").ok, "{results:?}");
    // The live check sent the new key.
    assert!(
        w.ai.model_lists().contains(&Some(format!("Bearer {key}"))),
        "{:?}",
        w.ai.model_lists()
    );
    let first = stored_row(&w.server, "AI_API_KEY").await?;
    assert!(first.starts_with("v1."), "{first}");
    assert!(!first.contains(&key), "the row is not the plain text");
    assert!(!first.contains(&key[key.len() - 8..]));

    // The same value saved again is sealed under another nonce.
    save(&admin, json!({ "AI_API_KEY": key }), false).await?;
    let second = stored_row(&w.server, "AI_API_KEY").await?;
    assert_ne!(first, second, "a random nonce per save");
    assert_ne!(first.split('.').nth(1), second.split('.').nth(1));

    // The page shows the last four characters, and no answer carries more.
    let response = admin.get("/api/admin/settings").await?;
    let text = response.text().await?;
    assert!(!text.contains(&key), "the whole key is never sent back");
    let page: SettingsView = serde_json::from_str(&text)?;
    let shown = state(&page, "AI_API_KEY");
    assert_eq!(shown.source, Source::Stored);
    assert_eq!(
        shown.shown.as_deref(),
        Some(format!("••••{}", &key[key.len() - 4..]).as_str())
    );
    assert_eq!(shown.updated_by.as_deref(), Some("Root"));

    // The name is bound into the seal: the same ciphertext moved to another setting's row
    // does not open there, and the page says so.
    d1(
        &w.server,
        &format!(
            "INSERT INTO settings (name, value, updated_at, updated_by) \
             VALUES ('DISCORD_CLIENT_SECRET', '{second}', 0, 'mallory')"
        ),
    )
    .await?;
    tokio::time::sleep(CACHE * 2).await;
    let page = view(&admin).await?;
    let moved = state(&page, "DISCORD_CLIENT_SECRET");
    assert_eq!(moved.source, Source::Unreadable, "{moved:?}");
    assert_eq!(moved.shown, None);
    Ok(())
}

#[tokio::test]
async fn every_change_is_audited_with_who_and_which_setting_but_never_the_value() -> Result {
    let w = world().await;
    let admin = admin().await?;
    let emails = format!("{}@example.com", unique("boss"));
    let results = save(&admin, json!({ "ADMIN_EMAILS": emails }), false).await?;
    assert!(field(&results, "ADMIN_EMAILS").ok, "{results:?}");
    let results = save(&admin, json!({ "ADMIN_EMAILS": null }), false).await?;
    let cleared = field(&results, "ADMIN_EMAILS");
    assert_eq!((cleared.ok, cleared.code), (true, FieldCode::Cleared));

    let response = admin.get("/api/admin/audit").await?;
    let text = response.text().await?;
    assert!(!text.contains(&emails), "the value is not in the audit log");
    let page: AuditPage = serde_json::from_str(&text)?;
    let actions: Vec<&str> = page
        .entries
        .iter()
        .filter(|e| e.target_id.as_deref() == Some("ADMIN_EMAILS"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["clear_setting", "set_setting"], "newest first");
    let entry = page
        .entries
        .iter()
        .find(|e| e.action == "set_setting" && e.target_id.as_deref() == Some("ADMIN_EMAILS"))
        .expect("audited");
    assert_eq!(entry.actor_name, "Root");
    assert_eq!(entry.actor_id, admin.user_id());
    assert!(entry.at > 0);
    let page = view(&admin).await?;
    assert_eq!(state(&page, "ADMIN_EMAILS").source, Source::Unset);
    let _ = w;
    Ok(())
}

#[tokio::test]
async fn a_saved_ai_model_is_the_one_the_assistant_asks_for_within_the_cache_time() -> Result {
    let w = world().await;
    let admin = admin().await?;
    let model = unique("settings-model");
    let results = save(&admin, json!({ "AI_MODEL": model }), false).await?;
    assert!(field(&results, "AI_MODEL").ok, "{results:?}");
    // No redeploy, no restart: only the cache time.
    tokio::time::sleep(CACHE * 2).await;

    let asker = Session::create(&w.server, "Asker").await?;
    let room = asker.create_room(&unique("ai"), "settings").await?;
    let marker = unique("m");
    w.ai.push(
        &marker,
        Script::words("answered", Duration::from_millis(10)),
    );
    let mut watcher = Watcher::join(&asker, &room.slug).await?;
    let question = format!("@assistant which model? {marker}");
    watcher.say(&question).await?;
    let answer = watcher.answer_in(&question, AnswerState::Done).await?;
    let requests = w.ai.requests(&marker);
    assert_eq!(
        requests.first().map(|r| r["model"].clone()),
        Some(json!(model)),
        "the provider was asked for the saved model"
    );
    let meta = answer.answer.and_then(|a| a.meta).expect("meta");
    assert_eq!(meta.model, model);
    Ok(())
}

/// HMAC-SHA256 (RFC 2104), to check which key signed a cookie.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Whether a guest cookie (`dc_session=v1.<payload>.<signature>`) is signed by `key`.
fn signed_by(cookie: &str, key: &str) -> bool {
    let value = cookie.split_once('=').map_or(cookie, |(_, v)| v);
    let parts: Vec<&str> = value.split('.').collect();
    let [version, payload, signature] = parts.as_slice() else {
        return false;
    };
    let expected = hmac_sha256(key.as_bytes(), format!("{version}.{payload}").as_bytes());
    URL_SAFE_NO_PAD.decode(signature).ok() == Some(expected)
}

#[tokio::test]
async fn a_new_session_key_keeps_existing_sessions_and_signs_the_new_ones() -> Result {
    let w = world().await;
    let admin = admin().await?;
    let before = Session::create(&w.server, "Before").await?;
    let key = random_hex(24);
    let results = save(&admin, json!({ "SESSION_SECRET": key }), false).await?;
    let saved = field(&results, "SESSION_SECRET");
    assert!(saved.ok, "{saved:?}");
    // Once every instance has read it, the new key signs.
    tokio::time::sleep(CACHE * 3).await;

    let after = Session::create(&w.server, "After").await?;
    assert!(
        signed_by(after.cookie(), &key),
        "a new session is signed with the new key"
    );
    assert!(!signed_by(before.cookie(), &key), "made before the change");
    for (who, session) in [("before", &before), ("after", &after)] {
        let response = session.get("/api/session").await?;
        assert_eq!(response.status().as_u16(), 200, "the session made {who}");
    }
    // The admin's own account session, sealed with the old key, is still valid too.
    let page = view(&admin).await?;
    let shown = state(&page, "SESSION_SECRET");
    assert_eq!(shown.source, Source::Stored);
    assert_eq!(
        shown.shown.as_deref(),
        Some(format!("••••{}", &key[key.len() - 4..]).as_str())
    );
    let until = page
        .previous_session_key_until
        .expect("the replaced key verifies for a while");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let days = (until - now_ms) as f64 / 86_400_000.0;
    assert!((6.9..=7.0).contains(&days), "{days} days of grace");
    // A key that is too short is refused for its field, and the new key stays.
    let results = save(&admin, json!({ "SESSION_SECRET": "short" }), false).await?;
    assert_eq!(
        field(&results, "SESSION_SECRET").code,
        FieldCode::InvalidFormat
    );
    assert_eq!(before.get("/api/session").await?.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn save_to_cloudflare_sets_the_worker_secret_and_reports_the_apis_refusal() -> Result {
    let w = world().await;
    let admin = admin().await?;
    let secret = random_hex(20);
    let results = save(&admin, json!({ "GITHUB_CLIENT_SECRET": secret }), true).await?;
    let github = field(&results, "GITHUB_CLIENT_SECRET");
    assert!(github.ok, "{github:?}");
    let cloudflare = github.cloudflare.clone().expect("sent to Cloudflare");
    assert!(cloudflare.ok, "{cloudflare:?}");
    assert_eq!(cloudflare.code, FieldCode::CloudflareSaved);
    let puts = w.cloudflare.secret_puts("GITHUB_CLIENT_SECRET");
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].method, "PUT");
    assert_eq!(
        puts[0].path,
        format!(
            "/accounts/{}/workers/scripts/durable-chat/secrets",
            fake_cloudflare::ACCOUNT
        )
    );
    assert_eq!(
        puts[0].authorization.as_deref(),
        Some(format!("Bearer {}", fake_cloudflare::TOKEN).as_str())
    );
    assert_eq!(
        puts[0].body,
        json!({"name": "GITHUB_CLIENT_SECRET", "text": secret, "type": "secret_text"})
    );

    // Cloudflare refuses: the value is still saved here, and the page says what the API said.
    w.cloudflare.fail_secret(
        "DISCORD_CLIENT_ID",
        500,
        10013,
        "An unknown error has occurred",
    );
    let results = save(
        &admin,
        json!({ "DISCORD_CLIENT_ID": "123456789012345678" }),
        true,
    )
    .await?;
    let discord = field(&results, "DISCORD_CLIENT_ID");
    assert!(discord.ok, "{discord:?}");
    let refused = discord.cloudflare.clone().expect("sent to Cloudflare");
    assert!(!refused.ok);
    assert_eq!(refused.code, FieldCode::CloudflareFailed);
    assert!(
        refused
            .message
            .contains("An unknown error has occurred (10013)"),
        "{}",
        refused.message
    );
    assert_eq!(w.cloudflare.secret_puts("DISCORD_CLIENT_ID").len(), 1);

    // Without the box ticked nothing is sent.
    save(
        &admin,
        json!({ "DISCORD_CLIENT_ID": "123456789012345679" }),
        false,
    )
    .await?;
    assert_eq!(w.cloudflare.secret_puts("DISCORD_CLIENT_ID").len(), 1);
    let audit: AuditPage = admin.get("/api/admin/audit").await?.json().await?;
    let sent: Vec<&str> = audit
        .entries
        .iter()
        .filter(|e| e.action == "set_worker_secret")
        .filter_map(|e| e.target_id.as_deref())
        .collect();
    assert_eq!(
        sent,
        ["GITHUB_CLIENT_SECRET"],
        "only what Cloudflare accepted"
    );
    Ok(())
}

#[tokio::test]
async fn without_a_settings_key_the_page_shows_the_environment_and_saving_is_a_config_error(
) -> Result {
    let server = DevServer::start(
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("AI_MODEL", "env-model")
            .var("GOOGLE_CLIENT_SECRET", "GOCSPX-environment-secret-1234"),
    )
    .await?;
    let admin = e2e::login::local_account(&server, "Root").await?;
    let response = admin.get("/api/admin/settings").await?;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await?;
    assert!(!text.contains("environment-secret"), "{text}");
    let page: SettingsView = serde_json::from_str(&text)?;
    assert!(!page.storage.available);
    assert_eq!(page.storage.code, Some(ErrorCode::ConfigError));
    assert!(!page.cloudflare);
    let secret = state(&page, "GOOGLE_CLIENT_SECRET");
    assert_eq!(
        (secret.source, secret.shown.as_ref()),
        (Source::Environment, None)
    );
    assert_eq!(state(&page, "AI_MODEL").shown.as_deref(), Some("env-model"));
    assert_eq!(state(&page, "GITHUB_CLIENT_ID").source, Source::Unset);
    let refused = put(&admin, &json!({"values": {"AI_MODEL": "other"}})).await?;
    let body = expect_error(refused, ErrorCode::ConfigError).await?;
    assert!(body.message.contains("SETTINGS_KEY"), "{}", body.message);
    Ok(())
}
