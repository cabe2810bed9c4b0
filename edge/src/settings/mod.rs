//! The admin's settings page (issue 12, "Secrets settings menu"): `GET`/`PUT
//! /api/admin/settings`, for global admins only (anyone else is told there is nothing there).
//!
//! A save validates each value (`shared::settings`), checks it against the live service where
//! it can (an AI endpoint's `/models`, a classifier's `/health`, an Apple key that must load),
//! stores it sealed in D1 (`crypto`, `store`), audits who changed which setting (never the
//! value), and with "Save to Cloudflare" also sets it as a Worker secret (`remote`). The Worker
//! reads every setting as the stored value, else the environment's (`crate::config::string`),
//! from a copy at most 30 s old, so a save takes effect without a redeploy.
//!
//! A new session key keeps the one it replaces verifying for 7 days
//! ([`shared::settings::SESSION_KEY_GRACE_MS`]), and only starts signing once every instance has
//! read it (`crate::config::with_stored_key`), so no session ends because of a rotation.

mod crypto;
mod remote;
// A leaf (it reads nothing that reads settings): `crate::config` consults its copy.
pub mod store;

pub use store::refresh;

use std::collections::BTreeMap;
use std::fmt::Display;

use shared::error::{ChatError, ErrorCode};
use shared::moderation::AuditEntry;
use shared::settings::{
    self as catalogue, Change, CloudflareOutcome, FieldCode, FieldResult, LiveCheck, SaveOutcome,
    SaveSettings, Setting, SettingState, SettingsView, Source, Storage, CATALOGUE,
    SESSION_KEY_GRACE_MS,
};
use worker::{console_error, Env, Method, Request};

use crate::config;
use crate::http::{check_origin, fail, json, ApiError, ApiResult};
use crate::rooms::contract::Identity;
use crate::time::now;
use store::{KeyState, Loaded, RETIRED_SESSION_KEY, SESSION_KEY};

/// The largest save: every setting at once, an Apple key included, fits in far less.
const BODY_MAX_BYTES: usize = 32 * 1024;

const MISSING_KEY: &str = "Saving is unavailable: the Worker secret SETTINGS_KEY is not set \
     (32 random bytes in base64: `openssl rand -base64 32 | npx wrangler secret put \
     SETTINGS_KEY`). Values set in the environment still apply.";

/// `GET` and `PUT /api/admin/settings`.
pub async fn route(req: Request, env: &Env) -> ApiResult {
    let me = global_admin(&req, env).await?;
    match req.method() {
        Method::Get => Ok(json(&view(env).await?, 200)?),
        Method::Put => {
            check_origin(&req, false)?;
            let loopback = crate::auth::oauth::is_loopback(&req);
            let body = read_save(req).await?;
            Ok(json(&save(env, &me, body, loopback).await?, 200)?)
        }
        other => Err(fail(
            ErrorCode::InvalidInput,
            format!("{other} is not supported on /api/admin/settings."),
        )),
    }
}

/// The global admin asking, or `not_found` for anyone else (a guest, a plain account, nobody):
/// the page is not advertised to those who may not use it.
async fn global_admin(req: &Request, env: &Env) -> Result<Identity, ApiError> {
    let hidden = || fail(ErrorCode::NotFound, "No API at /api/admin/settings.");
    let Some(session) = crate::session::current(req, env).await? else {
        return Err(hidden());
    };
    let me = crate::profiles::identity(env, &session).await?;
    if !(me.admin && session.signed_in()) {
        return Err(hidden());
    }
    Ok(me)
}

fn internal(detail: impl Display) -> ApiError {
    ApiError {
        error: ChatError::new(
            ErrorCode::Internal,
            "Something went wrong on the server; please try again.",
        ),
        detail: Some(format!("settings: {detail}")),
    }
}

async fn read_save(mut req: Request) -> Result<SaveSettings, ApiError> {
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

/// The environment's value of a setting. The session key may be there under either name.
fn env_value(env: &Env, setting: &Setting) -> Option<String> {
    if setting.name == SESSION_KEY {
        return config::pick_keys(|name| config::env_string(env, name))
            .ok()
            .map(|keys| String::from_utf8_lossy(&keys.current).into_owned());
    }
    config::env_string(env, setting.name)
}

/// `CLOUDFLARE_API_TOKEN` and `CLOUDFLARE_ACCOUNT_ID`, from the environment only.
fn cloudflare_credentials(env: &Env) -> Option<(String, String)> {
    Some((
        config::env_string(env, "CLOUDFLARE_API_TOKEN")?,
        config::env_string(env, "CLOUDFLARE_ACCOUNT_ID")?,
    ))
}

fn cache_seconds(env: &Env) -> u32 {
    (store::cache_ms(env).max(0) as u64).div_ceil(1000) as u32
}

async fn view(env: &Env) -> Result<SettingsView, ApiError> {
    let unavailable = |message: String| Storage {
        available: false,
        code: Some(ErrorCode::ConfigError),
        message: Some(message),
    };
    let (storage, loaded) = match store::settings_key(env) {
        KeyState::Ready(raw) => {
            let key = crypto::import(&raw).await.map_err(internal)?;
            let storage = Storage {
                available: true,
                code: None,
                message: None,
            };
            (storage, store::load(env, &key).await?)
        }
        KeyState::Missing => (unavailable(MISSING_KEY.to_owned()), Loaded::default()),
        KeyState::Invalid(reason) => (
            unavailable(format!("Saving is unavailable: {reason}")),
            Loaded::default(),
        ),
    };
    let now = now();
    let settings = CATALOGUE
        .iter()
        .map(|setting| state(env, setting, &loaded))
        .collect();
    Ok(SettingsView {
        storage,
        cloudflare: cloudflare_credentials(env).is_some(),
        cache_seconds: cache_seconds(env),
        previous_session_key_until: loaded
            .values
            .get(RETIRED_SESSION_KEY)
            .and_then(|s| s.expires_at)
            .filter(|until| *until > now),
        settings,
    })
}

/// One setting as the page shows it: a stored secret masked, a secret from the environment
/// only as "set in environment", a var as it is.
fn state(env: &Env, setting: &Setting, loaded: &Loaded) -> SettingState {
    let in_environment = env_value(env, setting);
    let from_env = || {
        in_environment
            .as_deref()
            .filter(|_| !setting.secret)
            .map(str::to_owned)
    };
    let stored = loaded.values.get(setting.name);
    let (source, shown) = match stored {
        Some(s) => (Source::Stored, Some(catalogue::shown(setting, &s.value))),
        None if loaded.unreadable.iter().any(|n| n == setting.name) => {
            (Source::Unreadable, from_env())
        }
        None if in_environment.is_some() => (Source::Environment, from_env()),
        None => (Source::Unset, None),
    };
    SettingState {
        name: setting.name.to_owned(),
        source,
        shown,
        in_environment: in_environment.is_some(),
        updated_at: stored.map(|s| s.updated_at),
        updated_by: stored.map(|s| s.updated_by.clone()),
    }
}

/// One valid change of a save.
struct Edit {
    setting: &'static Setting,
    /// The new value, or `None` to clear.
    value: Option<String>,
}

fn result(field: &str, ok: bool, code: FieldCode, message: impl Into<String>) -> FieldResult {
    FieldResult {
        field: field.to_owned(),
        ok,
        code,
        message: message.into(),
        cloudflare: None,
    }
}

async fn save(
    env: &Env,
    me: &Identity,
    body: SaveSettings,
    loopback: bool,
) -> Result<SaveOutcome, ApiError> {
    let raw = match store::settings_key(env) {
        KeyState::Ready(raw) => raw,
        KeyState::Missing => return Err(fail(ErrorCode::ConfigError, MISSING_KEY)),
        KeyState::Invalid(reason) => {
            return Err(fail(
                ErrorCode::ConfigError,
                format!("Saving is unavailable: {reason}"),
            ))
        }
    };
    let key = crypto::import(&raw).await.map_err(internal)?;
    let loaded = store::load(env, &key).await?;
    let mut results: BTreeMap<String, FieldResult> = BTreeMap::new();

    // Each value against its rule.
    let mut changes = Vec::new();
    for (name, value) in &body.values {
        let Some(setting) = catalogue::find(name) else {
            let name: String = name.chars().take(64).collect();
            results.insert(
                name.clone(),
                result(
                    &name,
                    false,
                    FieldCode::UnknownSetting,
                    "The settings page offers no setting of that name.",
                ),
            );
            continue;
        };
        match value.as_deref().map(|v| catalogue::validate(setting, v)) {
            None => changes.push(Edit {
                setting,
                value: None,
            }),
            Some(Ok(value)) => changes.push(Edit {
                setting,
                value: Some(value),
            }),
            Some(Err(invalid)) => {
                results.insert(
                    name.clone(),
                    result(name, false, invalid.code, invalid.message),
                );
            }
        }
    }

    // The live checks, against what would be in effect after the save.
    let effective = |name: &str| -> Option<String> {
        match changes.iter().find(|c| c.setting.name == name) {
            Some(Edit { value: Some(v), .. }) => Some(v.clone()),
            Some(Edit { value: None, .. }) => config::env_string(env, name),
            None => loaded
                .values
                .get(name)
                .map(|s| s.value.clone())
                .or_else(|| config::env_string(env, name)),
        }
    };
    let wants = |check: LiveCheck| {
        changes
            .iter()
            .any(|c| c.value.is_some() && c.setting.check == Some(check))
    };
    let ai = if wants(LiveCheck::AiModels) {
        match effective("AI_BASE_URL") {
            Some(base) => Some(remote::check_ai(&base, effective("AI_API_KEY").as_deref()).await),
            None => Some(Ok(
                "Not checked: no AI base URL is set to check it against.".to_owned(),
            )),
        }
    } else {
        None
    };
    let mut passed = Vec::new();
    for change in changes {
        let checked = match (&change.value, change.setting.check) {
            (Some(_), Some(LiveCheck::AiModels)) => ai.clone(),
            (Some(url), Some(LiveCheck::ClassifierHealth)) => {
                Some(remote::check_classifier(url).await)
            }
            (Some(pem), Some(LiveCheck::AppleKey)) => Some(
                crate::auth::apple::AppleKey::new("check", "check", pem)
                    .map(|_| "The key loads as an ES256 signing key.".to_owned())
                    .map_err(|_| "The key does not load as a P-256 signing key.".to_owned()),
            ),
            _ => None,
        };
        match checked {
            Some(Err(why)) => {
                let name = change.setting.name;
                results.insert(
                    name.to_owned(),
                    result(name, false, FieldCode::CheckFailed, why),
                );
            }
            Some(Ok(line)) => passed.push((change, Some(line))),
            None => passed.push((change, None)),
        }
    }

    // Store, audit, and send to Cloudflare, one setting at a time (each answers for itself).
    let now = now();
    let delay = store::cache_ms(env);
    let signing_before = config::with_stored_key(
        config::pick_keys(|name| config::env_string(env, name)),
        loaded.session_key(now, delay),
        now,
    )
    .ok()
    .map(|keys| String::from_utf8_lossy(&keys.current).into_owned());
    let cloudflare = body.cloudflare.then(|| {
        cloudflare_credentials(env).map(|(token, account)| {
            let configured = config::env_string(env, "CLOUDFLARE_API_BASE");
            let base = remote::cloudflare_base(configured.as_deref(), loopback);
            if configured.is_some() && base == remote::CLOUDFLARE_API {
                console_error!(
                    "CLOUDFLARE_API_BASE is set but ignored: only a loopback URL, for a request \
                     to localhost"
                );
            }
            (base, account, token)
        })
    });
    for (change, checked) in passed {
        let name = change.setting.name;
        let outcome = apply(
            env,
            me,
            &key,
            &loaded,
            &change,
            signing_before.as_deref(),
            now,
        )
        .await;
        let mut field = match outcome {
            Ok(message) => {
                let message = match &checked {
                    Some(line) => format!("{message} {line}"),
                    None => message,
                };
                let code = if change.value.is_some() {
                    FieldCode::Saved
                } else {
                    FieldCode::Cleared
                };
                result(name, true, code, message)
            }
            Err(field) => field,
        };
        if let (Some(target), true, Some(value)) = (&cloudflare, field.ok, &change.value) {
            field.cloudflare = Some(match target {
                Some((base, account, token)) => {
                    match remote::put_worker_secret(base, account, token, name, value).await {
                        Ok(message) => {
                            audit(env, me, name, Change::SentToCloudflare, String::new()).await;
                            CloudflareOutcome {
                                ok: true,
                                code: FieldCode::CloudflareSaved,
                                message,
                            }
                        }
                        Err(message) => CloudflareOutcome {
                            ok: false,
                            code: FieldCode::CloudflareFailed,
                            message,
                        },
                    }
                }
                None => CloudflareOutcome {
                    ok: false,
                    code: FieldCode::CloudflareFailed,
                    message: "Cloudflare is not configured: set CLOUDFLARE_API_TOKEN and \
                              CLOUDFLARE_ACCOUNT_ID."
                        .to_owned(),
                },
            });
        }
        results.insert(name.to_owned(), field);
    }
    // The next read in this isolate sees the save; others within the cache time.
    store::invalidate();
    let order = |field: &str| {
        CATALOGUE
            .iter()
            .position(|s| s.name == field)
            .unwrap_or(CATALOGUE.len())
    };
    let mut results: Vec<FieldResult> = results.into_values().collect();
    results.sort_by_key(|r| order(&r.field));
    Ok(SaveOutcome { results })
}

/// Stores (or clears) one setting and audits it: a line for the page, or the failed result.
async fn apply(
    env: &Env,
    me: &Identity,
    key: &web_sys::CryptoKey,
    loaded: &Loaded,
    change: &Edit,
    signing_before: Option<&str>,
    now: i64,
) -> Result<String, FieldResult> {
    let name = change.setting.name;
    let seconds = cache_seconds(env);
    let failed = |code: FieldCode, message: &str| result(name, false, code, message);
    let storage_failed = |e: &dyn Display| {
        console_error!("settings: storing {name} failed: {e}");
        failed(
            FieldCode::StorageFailed,
            "Storing failed; nothing changed. Try again.",
        )
    };
    let seal =
        |name: &'static str, value: String| async move { crypto::seal(key, name, &value).await };
    let grace_until = now + SESSION_KEY_GRACE_MS;
    // A session key taken out of use (replaced or cleared), kept verifying for the grace period.
    let retire = |old: String| async move {
        let sealed = seal(RETIRED_SESSION_KEY, old)
            .await
            .map_err(|e| storage_failed(&e))?;
        store::put(
            env,
            RETIRED_SESSION_KEY,
            &sealed,
            now,
            &me.name,
            Some(grace_until),
        )
        .map_err(|e| storage_failed(&e))
    };
    let mut statements = Vec::new();
    let mut detail = String::new();
    let message = match &change.value {
        Some(value) => {
            if name == SESSION_KEY {
                if signing_before == Some(value.as_str()) {
                    return Ok("Unchanged: this is the key in effect.".to_owned());
                }
                if let Some(old) = signing_before {
                    // The key that signs today keeps verifying for the grace period.
                    statements.push(retire(old.to_owned()).await?);
                    detail = "the previous key verifies for 7 days".to_owned();
                }
            }
            let sealed = seal(name, value.clone())
                .await
                .map_err(|e| storage_failed(&e))?;
            statements.push(
                store::put(env, name, &sealed, now, &me.name, None)
                    .map_err(|e| storage_failed(&e))?,
            );
            format!("Saved. It takes effect within {seconds} s.")
        }
        None => {
            let Some(stored) = loaded.values.get(name) else {
                return Ok("Nothing was stored; the environment's value applies.".to_owned());
            };
            if name == SESSION_KEY {
                if config::pick_keys(|n| config::env_string(env, n)).is_err() {
                    return Err(failed(
                        FieldCode::Refused,
                        "The environment has no session key to fall back to: replace this key \
                         instead of clearing it.",
                    ));
                }
                // Sessions it signed stay valid for the grace period.
                statements.push(retire(stored.value.clone()).await?);
                detail = "the cleared key verifies for 7 days".to_owned();
            }
            statements.push(store::delete(env, name).map_err(|e| storage_failed(&e))?);
            format!("Cleared: the environment's value applies within {seconds} s.")
        }
    };
    store::write(env, statements)
        .await
        .map_err(|e| storage_failed(&e))?;
    let change_kind = if change.value.is_some() {
        Change::Set
    } else {
        Change::Cleared
    };
    audit(env, me, name, change_kind, detail).await;
    Ok(message)
}

/// Records a change in the global audit log: who, when and which setting, never the value. A
/// failure to record is logged; the change itself has been made.
async fn audit(env: &Env, me: &Identity, name: &str, change: Change, detail: String) {
    let entry = AuditEntry {
        id: 0,
        at: now(),
        actor_id: me.id.clone(),
        actor_name: me.name.clone(),
        action: change.audit_action().to_owned(),
        target_id: Some(name.to_owned()),
        detail,
    };
    if let Err(e) = crate::profiles::audit(env, &entry).await {
        console_error!("settings: auditing {} of {name} failed: {e}", entry.action);
    }
}
