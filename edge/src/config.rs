//! Configuration read from the Worker's environment (vars, secrets, `.dev.vars` locally).

use shared::error::{ChatError, ErrorCode};
use shared::limits::{UploadLimits, FILE_MAX_BYTES_CEILING};
use shared::rate_limit::RateLimits;
use shared::room::assistant::AiConfig;
use worker::Env;

pub use crate::settings::store::StoredSessionKey;

/// Shortest acceptable session secret, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// A setting: the value saved on the admin's settings page (`crate::settings`, a copy at most
/// 30 s old), else the environment's non-empty secret or var.
pub(crate) fn string(env: &Env, name: &str) -> Option<String> {
    crate::settings::store::stored(name).or_else(|| env_string(env, name))
}

/// The environment's non-empty secret or var alone (for the keys the settings page itself
/// runs on, and the session keys, which combine both in [`with_stored_key`]).
pub(crate) fn env_string(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.is_empty())
}

/// The keys that sign session cookies: the current one, and the previous one still accepted
/// during a rotation.
pub struct SessionKeys {
    /// Signs new cookies and verifies.
    pub current: Vec<u8>,
    /// Only verifies (set `SESSION_SECRET_PREVIOUS` while rotating).
    pub previous: Option<Vec<u8>>,
}

/// The signing key's names, in order of preference: `HMAC_SECRET_KEY` (the name operators
/// know from other deployments) or `SESSION_SECRET`; each with a `_PREVIOUS` twin that still
/// verifies during a rotation.
const KEY_NAMES: [(&str, &str); 2] = [
    ("HMAC_SECRET_KEY", "HMAC_SECRET_KEY_PREVIOUS"),
    ("SESSION_SECRET", "SESSION_SECRET_PREVIOUS"),
];

/// Picks the signing keys from whatever of [`KEY_NAMES`] is set. A missing or short secret is
/// a configuration error, never a silent default.
pub fn pick_keys(read: impl Fn(&str) -> Option<String>) -> Result<SessionKeys, ChatError> {
    let Some((name, current, previous)) = KEY_NAMES
        .iter()
        .find_map(|(name, previous)| Some((*name, read(name)?, read(previous))))
    else {
        return Err(ChatError::new(
            ErrorCode::ConfigError,
            "SESSION_SECRET (or HMAC_SECRET_KEY) is not configured: put it in .dev.vars \
             locally (./scripts/dev creates one) or run `wrangler secret put SESSION_SECRET`.",
        ));
    };
    if current.len() < MIN_SECRET_LEN {
        return Err(ChatError::new(
            ErrorCode::ConfigError,
            format!("{name} must be at least {MIN_SECRET_LEN} characters."),
        ));
    }
    Ok(SessionKeys {
        current: current.into_bytes(),
        previous: previous.map(String::into_bytes),
    })
}

/// The signing keys: the environment's (see [`pick_keys`]) combined with a key saved on the
/// settings page (see [`with_stored_key`]).
pub fn session_keys(env: &Env) -> Result<SessionKeys, ChatError> {
    let now = crate::time::now();
    with_stored_key(
        pick_keys(|name| env_string(env, name)),
        crate::settings::store::session_key(now),
        now,
    )
}

/// The keys in effect: a saved key wins over the environment's (whichever name holds it) and
/// the key it replaced keeps verifying for its grace period, like `SESSION_SECRET_PREVIOUS`.
/// Before a saved key starts signing, the replaced one signs and the new one only verifies.
/// With no saved key, the environment's keys apply, the retired key (after a clear) standing in
/// for the environment's previous one while it lasts.
pub fn with_stored_key(
    env_keys: Result<SessionKeys, ChatError>,
    stored: StoredSessionKey,
    now: i64,
) -> Result<SessionKeys, ChatError> {
    let retired = stored
        .retired
        .filter(|(_, until)| now < *until)
        .map(|(key, _)| key.into_bytes());
    match stored.current {
        Some((key, since)) if now < since => {
            let signing = retired.or_else(|| env_keys.ok().map(|k| k.current));
            Ok(match signing {
                Some(old) => SessionKeys {
                    current: old,
                    previous: Some(key.into_bytes()),
                },
                None => SessionKeys {
                    current: key.into_bytes(),
                    previous: None,
                },
            })
        }
        Some((key, _)) => Ok(SessionKeys {
            current: key.into_bytes(),
            previous: retired,
        }),
        None => {
            let mut keys = env_keys?;
            if retired.is_some() {
                keys.previous = retired;
            }
            Ok(keys)
        }
    }
}

/// Whether the bench's bulk seed route is on (`BENCH_SEED=1`). Never set in wrangler.toml:
/// only the bench's own dev server sets it, and its callers honour it only for requests
/// addressed to localhost, like every test-only switch.
pub fn bench_seed_enabled(env: &Env) -> bool {
    string(env, "BENCH_SEED").as_deref() == Some("1")
}

/// How many of a search's newest matches are ranked (`SEARCH_RANK_WINDOW`, default
/// [`shared::room::store::RANK_WINDOW`]; tests set a small one).
pub fn search_rank_window(env: &Env) -> u32 {
    string(env, "SEARCH_RANK_WINDOW")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|w| *w >= 1)
        .unwrap_or(shared::room::store::RANK_WINDOW)
}

/// Per-connection rate limits; each may be overridden by a var (`SEND_BURST`,
/// `SEND_PER_SECOND`, `FRAME_BURST`, `FRAME_PER_SECOND`), for load tests and tuning.
pub fn rate_limits(env: &Env) -> RateLimits {
    let defaults = RateLimits::default();
    let read = |name: &str, default: f64| {
        string(env, name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(default)
    };
    RateLimits {
        send_burst: read("SEND_BURST", defaults.send_burst),
        send_per_second: read("SEND_PER_SECOND", defaults.send_per_second),
        frame_burst: read("FRAME_BURST", defaults.frame_burst),
        frame_per_second: read("FRAME_PER_SECOND", defaults.frame_per_second),
    }
}

fn positive(env: &Env, name: &str) -> Option<f64> {
    string(env, name)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// The assistant's limits; each may be overridden by a var: `AI_BURST` and `AI_PER_MINUTE`
/// (questions per user), `AI_MAX_QUEUE`, `AI_CONTEXT_TOKENS`, `AI_MAX_TOKENS`.
pub fn ai_config(env: &Env) -> AiConfig {
    let d = AiConfig::default();
    AiConfig {
        burst: positive(env, "AI_BURST").unwrap_or(d.burst),
        per_second: positive(env, "AI_PER_MINUTE").map_or(d.per_second, |m| m / 60.0),
        max_queue: positive(env, "AI_MAX_QUEUE").map_or(d.max_queue, |v| v as usize),
        context_tokens: positive(env, "AI_CONTEXT_TOKENS").map_or(d.context_tokens, |v| v as usize),
        max_tokens: positive(env, "AI_MAX_TOKENS").map_or(d.max_tokens, |v| v as u32),
        ..d
    }
}

/// How long a room waits on the AI provider: `AI_FIRST_TOKEN_TIMEOUT_MS` (default 30 s),
/// `AI_IDLE_TIMEOUT_MS` between chunks (30 s), `AI_TOTAL_TIMEOUT_MS` per answer (180 s).
pub fn ai_timeouts(env: &Env) -> crate::rooms::Timeouts {
    let ms = |name: &str, default: i64| positive(env, name).map_or(default, |v| v as i64);
    crate::rooms::Timeouts {
        first_token_ms: ms("AI_FIRST_TOKEN_TIMEOUT_MS", 30_000),
        idle_ms: ms("AI_IDLE_TIMEOUT_MS", 30_000),
        total_ms: ms("AI_TOTAL_TIMEOUT_MS", 180_000),
    }
}

/// The upload limits the Worker hands a room with every announcement (see
/// [`pick_upload_limits`]).
pub fn upload_limits(env: &Env) -> UploadLimits {
    pick_upload_limits(|name| string(env, name))
}

/// The upload limits from the settings `read` finds: `ATTACHMENT_MAX_BYTES` (per file, never
/// past [`FILE_MAX_BYTES_CEILING`], one request body of the Worker), `ROOM_QUOTA_BYTES` (all
/// of a room's files) and `UPLOADS_PER_MINUTE` (per person per room); each defaults to
/// [`UploadLimits::default`], and a value that is not a positive integer is ignored.
pub fn pick_upload_limits(read: impl Fn(&str) -> Option<String>) -> UploadLimits {
    let d = UploadLimits::default();
    let read = |name: &str| {
        read(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
    };
    UploadLimits {
        file_max_bytes: read("ATTACHMENT_MAX_BYTES")
            .unwrap_or(d.file_max_bytes)
            .min(FILE_MAX_BYTES_CEILING),
        room_quota_bytes: read("ROOM_QUOTA_BYTES").unwrap_or(d.room_quota_bytes),
        uploads_per_minute: read("UPLOADS_PER_MINUTE")
            .map_or(d.uploads_per_minute, |v| v.min(u64::from(u32::MAX)) as u32),
    }
}

/// Whether link previews may fetch loopback hosts (`PREVIEW_LOOPBACK=true`), for the tests'
/// fake site. Test-only: never in wrangler.toml nor set by `./scripts/dev`, and honoured only
/// for a request addressed to localhost (`crate::preview`).
pub fn preview_loopback(env: &Env) -> bool {
    matches!(
        string(env, "PREVIEW_LOOPBACK").as_deref(),
        Some("true" | "1")
    )
}

/// `AI_VISION`: `true` or `false` says whether the assistant's model is sent the question's
/// images; unset (or anything else) is `None`, and the provider decides
/// (`crate::ai::Provider::sees`).
pub fn ai_vision(env: &Env) -> Option<bool> {
    match string(env, "AI_VISION")?.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn hmac_secret_key_wins_over_session_secret_with_its_own_previous_key() {
        let keys = pick_keys(vars(&[
            ("HMAC_SECRET_KEY", &"h".repeat(32)),
            ("HMAC_SECRET_KEY_PREVIOUS", &"p".repeat(32)),
            ("SESSION_SECRET", &"s".repeat(32)),
            ("SESSION_SECRET_PREVIOUS", &"q".repeat(32)),
        ]))
        .unwrap();
        assert_eq!(keys.current, "h".repeat(32).into_bytes());
        assert_eq!(keys.previous, Some("p".repeat(32).into_bytes()));
    }

    #[test]
    fn session_secret_alone_still_works_and_nothing_or_a_short_key_is_a_config_error() {
        let keys = pick_keys(vars(&[("SESSION_SECRET", &"s".repeat(40))])).unwrap();
        assert_eq!(keys.current.len(), 40);
        assert!(keys.previous.is_none());
        assert_eq!(
            pick_keys(vars(&[])).err().map(|e| e.code),
            Some(ErrorCode::ConfigError)
        );
        let short = pick_keys(vars(&[("HMAC_SECRET_KEY", "short")]))
            .err()
            .expect("a short key is refused");
        assert!(
            short.message.contains("HMAC_SECRET_KEY"),
            "{}",
            short.message
        );
    }

    fn env_keys() -> Result<SessionKeys, ChatError> {
        pick_keys(vars(&[
            ("SESSION_SECRET", &"e".repeat(32)),
            ("SESSION_SECRET_PREVIOUS", &"p".repeat(32)),
        ]))
    }

    fn saved(key: &str, since: i64, retired: Option<(&str, i64)>) -> StoredSessionKey {
        StoredSessionKey {
            current: Some((key.repeat(32), since)),
            retired: retired.map(|(k, until)| (k.repeat(32), until)),
        }
    }

    #[test]
    fn a_saved_session_key_signs_once_its_time_comes_and_the_key_it_replaced_still_verifies() {
        let stored = saved("n", 1_000, Some(("e", 100_000)));
        // Before: the old key signs, the new one is already accepted.
        let before = with_stored_key(env_keys(), stored.clone(), 999).unwrap();
        assert_eq!(before.current, "e".repeat(32).into_bytes());
        assert_eq!(before.previous, Some("n".repeat(32).into_bytes()));
        // After: the new key signs, the old one verifies until its grace ends.
        let after = with_stored_key(env_keys(), stored.clone(), 1_000).unwrap();
        assert_eq!(after.current, "n".repeat(32).into_bytes());
        assert_eq!(after.previous, Some("e".repeat(32).into_bytes()));
        let later = with_stored_key(env_keys(), stored, 100_000).unwrap();
        assert_eq!(later.current, "n".repeat(32).into_bytes());
        assert_eq!(later.previous, None, "the grace period is over");
    }

    #[test]
    fn a_saved_session_key_wins_over_hmac_secret_key_and_works_without_any_environment_key() {
        let env = pick_keys(vars(&[("HMAC_SECRET_KEY", &"h".repeat(32))]));
        let keys = with_stored_key(env, saved("n", 0, None), 5).unwrap();
        assert_eq!(keys.current, "n".repeat(32).into_bytes());
        let none = pick_keys(vars(&[]));
        assert!(none.is_err());
        let keys = with_stored_key(none, saved("n", 10, None), 5).unwrap();
        assert_eq!(
            keys.current,
            "n".repeat(32).into_bytes(),
            "nothing else could sign"
        );
    }

    #[test]
    fn without_a_saved_key_the_environment_applies_with_a_cleared_key_verifying_for_a_while() {
        let plain = with_stored_key(env_keys(), StoredSessionKey::default(), 5).unwrap();
        assert_eq!(plain.current, "e".repeat(32).into_bytes());
        assert_eq!(plain.previous, Some("p".repeat(32).into_bytes()));
        let cleared = StoredSessionKey {
            current: None,
            retired: Some(("c".repeat(32), 50)),
        };
        let keys = with_stored_key(env_keys(), cleared.clone(), 5).unwrap();
        assert_eq!(keys.current, "e".repeat(32).into_bytes());
        assert_eq!(keys.previous, Some("c".repeat(32).into_bytes()));
        let keys = with_stored_key(env_keys(), cleared, 50).unwrap();
        assert_eq!(keys.previous, Some("p".repeat(32).into_bytes()));
        assert_eq!(
            with_stored_key(pick_keys(vars(&[])), StoredSessionKey::default(), 5)
                .err()
                .map(|e| e.code),
            Some(ErrorCode::ConfigError)
        );
    }

    #[test]
    fn upload_limits_default_and_a_file_limit_never_passes_the_ceiling() {
        assert_eq!(pick_upload_limits(vars(&[])), UploadLimits::default());
        let limits = pick_upload_limits(vars(&[
            ("ATTACHMENT_MAX_BYTES", "1000000000000"),
            ("ROOM_QUOTA_BYTES", "5000"),
            ("UPLOADS_PER_MINUTE", "3"),
        ]));
        assert_eq!(limits.file_max_bytes, FILE_MAX_BYTES_CEILING);
        assert_eq!(limits.room_quota_bytes, 5000);
        assert_eq!(limits.uploads_per_minute, 3);
        // Nonsense is ignored rather than turning uploads off.
        let limits = pick_upload_limits(vars(&[
            ("ATTACHMENT_MAX_BYTES", "0"),
            ("ROOM_QUOTA_BYTES", "-1"),
            ("UPLOADS_PER_MINUTE", "lots"),
        ]));
        assert_eq!(limits, UploadLimits::default());
    }
}
