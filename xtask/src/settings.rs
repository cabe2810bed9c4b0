//! Every var and secret the Worker reads, and what production needs of it.
//!
//! The check (`crate::check`) fails when the code reads a name that is not listed here, so a
//! new setting is classified once, where the deploy reads it: a required secret stops a deploy
//! when it is not set; an optional one only turns a feature on; a var has a default; a dev-only
//! one must never be set in production.

/// What production needs of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A secret that must be set: one of the names of its group will do.
    Required { group: &'static str },
    /// A secret that turns something on (a sign-in provider, a key rotation).
    Secret,
    /// A var with a default in the code; may be set in `[env.production.vars]`.
    Var,
    /// Local development and tests only; never in any `[vars]` of wrangler.toml.
    DevOnly,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub need: Need,
    pub about: &'static str,
}

const fn s(name: &'static str, need: Need, about: &'static str) -> Setting {
    Setting { name, need, about }
}

const SESSION_KEY: Need = Need::Required {
    group: "session signing key",
};

/// The catalog, in the README's order.
pub const SETTINGS: &[Setting] = &[
    s(
        "SESSION_SECRET",
        SESSION_KEY,
        "signs session cookies (32+ characters)",
    ),
    s(
        "HMAC_SECRET_KEY",
        SESSION_KEY,
        "the same, under the name other deployments use; wins when both are set",
    ),
    s(
        "SESSION_SECRET_PREVIOUS",
        Need::Secret,
        "still verifies during a key rotation",
    ),
    s(
        "HMAC_SECRET_KEY_PREVIOUS",
        Need::Secret,
        "still verifies during a key rotation",
    ),
    s("GITHUB_CLIENT_ID", Need::Secret, "GitHub sign-in"),
    s("GITHUB_CLIENT_SECRET", Need::Secret, "GitHub sign-in"),
    s("GOOGLE_CLIENT_ID", Need::Secret, "Google sign-in"),
    s("GOOGLE_CLIENT_SECRET", Need::Secret, "Google sign-in"),
    s("DISCORD_CLIENT_ID", Need::Secret, "Discord sign-in"),
    s("DISCORD_CLIENT_SECRET", Need::Secret, "Discord sign-in"),
    s(
        "APPLE_CLIENT_ID",
        Need::Secret,
        "Sign in with Apple (Services ID)",
    ),
    s(
        "APPLE_CLIENT_SECRET",
        Need::Secret,
        "Sign in with Apple (or the three below)",
    ),
    s(
        "APPLE_TEAM_ID",
        Need::Secret,
        "Sign in with Apple, signed by the Worker",
    ),
    s(
        "APPLE_KEY_ID",
        Need::Secret,
        "Sign in with Apple, signed by the Worker",
    ),
    s(
        "APPLE_PRIVATE_KEY",
        Need::Secret,
        "Sign in with Apple, signed by the Worker (PKCS#8 PEM)",
    ),
    s(
        "ADMIN_EMAILS",
        Need::Secret,
        "verified emails that become admins",
    ),
    s(
        "SETTINGS_KEY",
        Need::Secret,
        "seals the values saved on the admin's settings page (base64 of 32 random bytes; \
         without it the page cannot save)",
    ),
    s(
        "CLOUDFLARE_API_TOKEN",
        Need::Secret,
        "lets the settings page also set Worker secrets (\"Save to Cloudflare\"; a token with \
         Workers Scripts Write)",
    ),
    s(
        "CLOUDFLARE_ACCOUNT_ID",
        Need::Secret,
        "the account of CLOUDFLARE_API_TOKEN, for \"Save to Cloudflare\"",
    ),
    s(
        "AI_API_KEY",
        Need::Secret,
        "the OpenAI-compatible provider's key",
    ),
    s("AI_PROVIDER", Need::Var, "workers-ai, openai or off"),
    s("AI_MODEL", Need::Var, "the assistant's model"),
    s("AI_BASE_URL", Need::Var, "an OpenAI-compatible provider"),
    s("AI_BURST", Need::Var, "questions per user at once"),
    s("AI_PER_MINUTE", Need::Var, "questions per user per minute"),
    s("AI_MAX_QUEUE", Need::Var, "answers waiting per room"),
    s("AI_CONTEXT_TOKENS", Need::Var, "prompt budget"),
    s("AI_MAX_TOKENS", Need::Var, "answer length"),
    s("AI_FIRST_TOKEN_TIMEOUT_MS", Need::Var, "provider timeout"),
    s("AI_IDLE_TIMEOUT_MS", Need::Var, "provider timeout"),
    s("AI_TOTAL_TIMEOUT_MS", Need::Var, "provider timeout"),
    s(
        "AI_VISION",
        Need::Var,
        "send the question's images to the model (default: only a Workers AI vision model)",
    ),
    s(
        "EMBEDDING_MODEL",
        Need::Var,
        "search embeddings (the Vectorize index must match its dimensions)",
    ),
    s(
        "SEND_BURST",
        Need::Var,
        "rate limit per user in a room, across their sockets",
    ),
    s(
        "SEND_PER_SECOND",
        Need::Var,
        "rate limit per user in a room, across their sockets",
    ),
    s(
        "FRAME_BURST",
        Need::Var,
        "rate limit per user in a room, across their sockets",
    ),
    s(
        "FRAME_PER_SECOND",
        Need::Var,
        "rate limit per user in a room, across their sockets",
    ),
    s("SESSION_IDLE_SECONDS", Need::Var, "session idle expiry"),
    s(
        "GUEST_SESSION_SECONDS",
        Need::Var,
        "guest session lifetime (default 30 days)",
    ),
    s("SESSION_MAX_SECONDS", Need::Var, "session absolute expiry"),
    s(
        "SEARCH_DEADLINE_MS",
        Need::Var,
        "cross-room search deadline",
    ),
    s(
        "SEARCH_RANK_WINDOW",
        Need::Var,
        "newest matches ranked per search",
    ),
    s(
        "ATTACHMENT_MAX_BYTES",
        Need::Var,
        "largest file a message may carry (default 25 MB, at most 95 MB)",
    ),
    s(
        "ROOM_QUOTA_BYTES",
        Need::Var,
        "bytes of files one room may hold (default 2 GB)",
    ),
    s(
        "UPLOADS_PER_MINUTE",
        Need::Var,
        "files one person may announce in one room per minute (default 30)",
    ),
    s(
        "CLASSIFIER",
        Need::Var,
        "image labels and audio transcripts: workers-ai, server or off (default: server if \
         CLASSIFIER_URL is set, else workers-ai if the AI binding is)",
    ),
    s(
        "CLASSIFIER_URL",
        Need::Var,
        "the local model server that labels images (POST <url>/v1/classify)",
    ),
    s(
        "ANALYTICS_ACCOUNT_ID",
        Need::Var,
        "the account whose Analytics Engine SQL API the analytics pages read history from \
         (with ANALYTICS_API_TOKEN; without both, the Metrics object's own rollups)",
    ),
    s(
        "ANALYTICS_API_TOKEN",
        Need::Secret,
        "reads analytics history through the Analytics Engine SQL API (Account Analytics Read)",
    ),
    s(
        "SLOW_REQUEST_MS",
        Need::Var,
        "API requests slower than this are listed on the performance page (default 500)",
    ),
    s(
        "DEV_LOGIN",
        Need::DevOnly,
        "the password-less local account",
    ),
    s(
        "OAUTH_TEST_ENDPOINTS",
        Need::DevOnly,
        "points every provider at the tests' fake",
    ),
    s("BENCH_SEED", Need::DevOnly, "the bench's bulk seed route"),
    s(
        "BENCH_GUESTS",
        Need::DevOnly,
        "the crowd bench's guest minting route",
    ),
    s(
        "BENCH_NO_FTS",
        Need::DevOnly,
        "the bench's run without the search index",
    ),
    s(
        "BENCH_NO_METRICS",
        Need::DevOnly,
        "the bench's run without rooms' analytics",
    ),
    s(
        "SETTINGS_TEST_CACHE_MS",
        Need::DevOnly,
        "shortens how long an instance keeps the settings page's values (tests)",
    ),
    s(
        "CLOUDFLARE_API_BASE",
        Need::DevOnly,
        "points \"Save to Cloudflare\" at the tests' fake API on loopback",
    ),
    s(
        "FILES_TEST_SWEEP",
        Need::DevOnly,
        "runs a room's file sweep with the clock ahead (POST /api/rooms/<slug>/files/sweep)",
    ),
    s(
        "ROOM_QUERY_TEST_DELAY_MS",
        Need::DevOnly,
        "slows a room's queries in a test",
    ),
    s(
        "PREVIEW_LOOPBACK",
        Need::DevOnly,
        "lets link previews fetch the tests' fake site on loopback",
    ),
    s(
        "LOGS_TEST_FAILURES",
        Need::DevOnly,
        "makes POST /api/test/failure answer `internal`, for the logging tests",
    ),
];

/// The setting of that name.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The required groups, each with its names in order of preference.
pub fn required_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for setting in SETTINGS {
        if let Need::Required { group } = setting.need {
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, names)) => names.push(setting.name),
                None => groups.push((group, vec![setting.name])),
            }
        }
    }
    groups
}

/// The optional secrets.
pub fn optional_secrets() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.need == Need::Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_listed_once_and_the_session_key_is_the_one_required_group() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[i + 1..].iter().all(|b| b.name != a.name),
                "{} is listed twice",
                a.name
            );
        }
        assert_eq!(
            required_groups(),
            [(
                "session signing key",
                vec!["SESSION_SECRET", "HMAC_SECRET_KEY"]
            )]
        );
    }
}
