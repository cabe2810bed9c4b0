//! The admin's settings page (issue 12, "Secrets settings menu"): the catalogue of settings it
//! offers, each value's format rule, how a value is shown (masked), and the wire types of
//! `GET`/`PUT /api/admin/settings`. Pure: the edge stores the values (encrypted, in D1) and
//! runs the live checks; the app renders the catalogue. Both use the same rules, so a value the
//! page would refuse is refused the same way by the server.
//!
//! Only settings the Worker actually reads are offered (each is classified in
//! `xtask/src/settings.rs`; a test below keeps the two lists in step). R2 and Vectorize are
//! bindings without credentials: what the code reads about them is the attachment limits and
//! the embedding model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// How long a replaced session key still verifies cookies signed with it (like
/// `SESSION_SECRET_PREVIOUS` for keys set in the environment): 7 days.
pub const SESSION_KEY_GRACE_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The longest value any setting takes (an Apple private key is about 250 characters).
pub const VALUE_MAX_CHARS: usize = 4096;

/// The shortest session key, as the Worker requires of `SESSION_SECRET` (`edge::config`).
pub const SESSION_KEY_MIN_CHARS: usize = 32;

/// A value shorter than this shows none of its characters when masked: the last four of a
/// short secret are too much of it.
pub const MASK_MIN_CHARS: usize = 16;

/// Where a group of settings belongs on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// The key that signs session cookies.
    Session,
    /// Sign in with GitHub.
    Github,
    /// Sign in with Google.
    Google,
    /// Sign in with Apple.
    Apple,
    /// Sign in with Discord.
    Discord,
    /// Who becomes an admin.
    Admins,
    /// The assistant's provider.
    Assistant,
    /// Image labels.
    Classifier,
    /// Attachments in R2.
    Files,
    /// Semantic search over Vectorize.
    Search,
    /// Analytics history and performance (issue 12).
    Analytics,
}

impl Group {
    /// The group's heading on the page.
    pub fn title(self) -> &'static str {
        match self {
            Group::Session => "Sessions",
            Group::Github => "GitHub sign-in",
            Group::Google => "Google sign-in",
            Group::Apple => "Sign in with Apple",
            Group::Discord => "Discord sign-in",
            Group::Admins => "Administrators",
            Group::Assistant => "The assistant (AI provider)",
            Group::Classifier => "Image classification",
            Group::Files => "Files (R2)",
            Group::Search => "Search (Vectorize)",
            Group::Analytics => "Analytics and performance",
        }
    }
}

/// The format a setting's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// At least [`SESSION_KEY_MIN_CHARS`] characters, no spaces.
    SessionKey,
    /// `<digits>-<letters and digits>.apps.googleusercontent.com`.
    GoogleClientId,
    /// 20 hex digits (an OAuth app's), `Iv1.` and 16 hex digits (a GitHub App's), or `Ov23` /
    /// `Iv23` and 16 letters or digits (the newer ids of both).
    GithubClientId,
    /// 17 to 20 digits (a Discord snowflake).
    DiscordClientId,
    /// Exactly this many hex digits.
    Hex(usize),
    /// A token of URL-safe characters (`A-Z a-z 0-9 - _ . ~ + / =`), `min` to `max` long.
    Token {
        /// Shortest.
        min: usize,
        /// Longest.
        max: usize,
    },
    /// A reverse-DNS identifier (`com.example.chat`): Apple's Services ID.
    ReverseDns,
    /// A JSON Web Token: three base64url parts.
    Jwt,
    /// 10 upper-case letters or digits: an Apple team id or key id.
    AppleId,
    /// A PKCS#8 PEM private key on the P-256 curve (Apple's `.p8` file).
    P256Pkcs8Pem,
    /// An http(s) URL without credentials, query or fragment.
    HttpUrl,
    /// One of these words (case-insensitive, stored lower-case).
    OneOf(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// A whole number from 1 to this.
    PositiveInteger(u64),
    /// Comma-separated email addresses.
    EmailList,
    /// A model name: printable, no spaces.
    ModelName,
    /// A Workers AI model name (`@cf/…` or `@hf/…`).
    WorkersAiModel,
}

/// A check the server makes against a live service before saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveCheck {
    /// `GET {AI_BASE_URL}/models` with the key answers 2xx within a few seconds.
    AiModels,
    /// `GET {CLASSIFIER_URL}/health` answers 2xx within a few seconds.
    ClassifierHealth,
    /// The key loads as an ES256 signing key (what the Worker signs Apple client secrets with).
    AppleKey,
}

/// One setting the page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its name: the Worker var or secret it overrides.
    pub name: &'static str,
    /// The input's label.
    pub label: &'static str,
    /// Where it is shown.
    pub group: Group,
    /// A secret (as `xtask/src/settings.rs` classifies it) is only ever shown masked; a var
    /// (a model name, a URL, a limit) is shown as it is.
    pub secret: bool,
    /// Its format.
    pub rule: Rule,
    /// A live check, if one is possible.
    pub check: Option<LiveCheck>,
    /// A line of help under the input.
    pub help: &'static str,
}

const fn secret(
    name: &'static str,
    label: &'static str,
    group: Group,
    rule: Rule,
    help: &'static str,
) -> Setting {
    Setting {
        name,
        label,
        group,
        secret: true,
        rule,
        check: None,
        help,
    }
}

const fn var(
    name: &'static str,
    label: &'static str,
    group: Group,
    rule: Rule,
    help: &'static str,
) -> Setting {
    Setting {
        name,
        label,
        group,
        secret: false,
        rule,
        check: None,
        help,
    }
}

const fn checked(setting: Setting, check: LiveCheck) -> Setting {
    Setting {
        check: Some(check),
        ..setting
    }
}

/// Every setting the page offers, in the page's order.
pub const CATALOGUE: &[Setting] = &[
    secret(
        "SESSION_SECRET",
        "Session signing key (HMAC)",
        Group::Session,
        Rule::SessionKey,
        "Signs session cookies. A new key starts signing 30 s after it is saved; the key it \
         replaces keeps verifying existing sessions for 7 days.",
    ),
    secret(
        "GITHUB_CLIENT_ID",
        "GitHub client ID",
        Group::Github,
        Rule::GithubClientId,
        "From the GitHub OAuth app or GitHub App.",
    ),
    secret(
        "GITHUB_CLIENT_SECRET",
        "GitHub client secret",
        Group::Github,
        Rule::Hex(40),
        "40 hex digits.",
    ),
    secret(
        "GOOGLE_CLIENT_ID",
        "Google client ID",
        Group::Google,
        Rule::GoogleClientId,
        "Ends with .apps.googleusercontent.com.",
    ),
    secret(
        "GOOGLE_CLIENT_SECRET",
        "Google client secret",
        Group::Google,
        Rule::Token { min: 20, max: 100 },
        "Usually starts with GOCSPX-.",
    ),
    secret(
        "APPLE_CLIENT_ID",
        "Apple Services ID",
        Group::Apple,
        Rule::ReverseDns,
        "The Services ID, such as com.example.chat.",
    ),
    secret(
        "APPLE_CLIENT_SECRET",
        "Apple client secret (a signed JWT)",
        Group::Apple,
        Rule::Jwt,
        "Leave empty to let the Worker sign one with the team id, key id and private key.",
    ),
    secret(
        "APPLE_TEAM_ID",
        "Apple team ID",
        Group::Apple,
        Rule::AppleId,
        "10 letters or digits.",
    ),
    secret(
        "APPLE_KEY_ID",
        "Apple key ID",
        Group::Apple,
        Rule::AppleId,
        "10 letters or digits.",
    ),
    checked(
        secret(
            "APPLE_PRIVATE_KEY",
            "Apple private key (.p8, PKCS#8 PEM)",
            Group::Apple,
            Rule::P256Pkcs8Pem,
            "The whole file, from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----.",
        ),
        LiveCheck::AppleKey,
    ),
    secret(
        "DISCORD_CLIENT_ID",
        "Discord client ID",
        Group::Discord,
        Rule::DiscordClientId,
        "The application id: 17 to 20 digits.",
    ),
    secret(
        "DISCORD_CLIENT_SECRET",
        "Discord client secret",
        Group::Discord,
        Rule::Token { min: 24, max: 64 },
        "From the application's OAuth2 page.",
    ),
    secret(
        "ADMIN_EMAILS",
        "Admin emails",
        Group::Admins,
        Rule::EmailList,
        "Comma-separated. A new account with one of these verified emails becomes an admin.",
    ),
    var(
        "AI_PROVIDER",
        "AI provider",
        Group::Assistant,
        Rule::OneOf(&["workers-ai", "openai", "off"]),
        "workers-ai, openai or off.",
    ),
    checked(
        var(
            "AI_BASE_URL",
            "AI base URL (OpenAI-compatible)",
            Group::Assistant,
            Rule::HttpUrl,
            "Such as https://api.openai.com/v1; checked with GET <url>/models.",
        ),
        LiveCheck::AiModels,
    ),
    checked(
        secret(
            "AI_API_KEY",
            "AI API key",
            Group::Assistant,
            Rule::Token { min: 1, max: 512 },
            "Sent as a bearer token to the base URL.",
        ),
        LiveCheck::AiModels,
    ),
    var(
        "AI_MODEL",
        "AI model",
        Group::Assistant,
        Rule::ModelName,
        "The chat model's name.",
    ),
    var(
        "AI_VISION",
        "The model sees images",
        Group::Assistant,
        Rule::Bool,
        "true or false.",
    ),
    var(
        "CLASSIFIER",
        "Image classifier",
        Group::Classifier,
        Rule::OneOf(&["workers-ai", "server", "off"]),
        "workers-ai, server or off.",
    ),
    checked(
        var(
            "CLASSIFIER_URL",
            "Classifier server URL",
            Group::Classifier,
            Rule::HttpUrl,
            "The model server; checked with GET <url>/health.",
        ),
        LiveCheck::ClassifierHealth,
    ),
    var(
        "ATTACHMENT_MAX_BYTES",
        "Largest attachment (bytes)",
        Group::Files,
        Rule::PositiveInteger(crate::limits::FILE_MAX_BYTES_CEILING),
        "At most 95 MB.",
    ),
    var(
        "ROOM_QUOTA_BYTES",
        "Files per room (bytes)",
        Group::Files,
        Rule::PositiveInteger(u64::MAX),
        "All of a room's files together.",
    ),
    var(
        "UPLOADS_PER_MINUTE",
        "Uploads per person per room per minute",
        Group::Files,
        Rule::PositiveInteger(u32::MAX as u64),
        "",
    ),
    var(
        "EMBEDDING_MODEL",
        "Embedding model",
        Group::Search,
        Rule::WorkersAiModel,
        "The Vectorize index must have this model's dimensions.",
    ),
    var(
        "ANALYTICS_ACCOUNT_ID",
        "Cloudflare account id (Analytics Engine)",
        Group::Analytics,
        Rule::Hex(32),
        "With the token below, the analytics pages read history from Analytics Engine.",
    ),
    secret(
        "ANALYTICS_API_TOKEN",
        "Analytics Engine API token",
        Group::Analytics,
        Rule::Token { min: 20, max: 200 },
        "A token with Account Analytics Read, for the SQL API.",
    ),
    var(
        "SLOW_REQUEST_MS",
        "Slow request threshold (ms)",
        Group::Analytics,
        Rule::PositiveInteger(600_000),
        "API requests slower than this are listed on the performance page (default 500).",
    ),
];

/// The setting of that name, if the page offers it.
pub fn find(name: &str) -> Option<&'static Setting> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// Why a value was not saved, or what happened to it: a closed set (add variants, never rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldCode {
    /// Stored; takes effect within the cache time.
    Saved,
    /// The stored value was removed; the environment's applies again.
    Cleared,
    /// The value does not have the setting's format.
    InvalidFormat,
    /// The live check failed (the service did not answer, or refused the key).
    CheckFailed,
    /// The page offers no setting of that name.
    UnknownSetting,
    /// The change is refused as it stands (clearing the only session key).
    Refused,
    /// Storing failed; nothing changed.
    StorageFailed,
    /// Cloudflare's API set the Worker secret.
    CloudflareSaved,
    /// Cloudflare's API refused or did not answer.
    CloudflareFailed,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

/// A value that breaks its setting's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Always [`FieldCode::InvalidFormat`].
    pub code: FieldCode,
    /// What is wrong, naming the rule (never echoing the value).
    pub message: String,
}

/// Whether `value` is `lengths` bytes long, every one of them `allowed`: the shape of most ids
/// and keys the providers issue.
fn made_of(value: &str, lengths: std::ops::RangeInclusive<usize>, allowed: fn(u8) -> bool) -> bool {
    lengths.contains(&value.len()) && value.bytes().all(allowed)
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        code: FieldCode::InvalidFormat,
        message: message.into(),
    }
}

/// The value to store for `setting`: trimmed (and lower-cased for a choice), or why it does not
/// have the setting's format. Messages never repeat the value: they reach the page and logs.
pub fn validate(setting: &Setting, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(
            "Enter a value (or clear the stored one to use the environment's).",
        ));
    }
    if value.chars().count() > VALUE_MAX_CHARS {
        return Err(invalid(format!("At most {VALUE_MAX_CHARS} characters.")));
    }
    let multiline = setting.rule == Rule::P256Pkcs8Pem;
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r')))
    {
        return Err(invalid("Control characters are not allowed."));
    }
    let single_word = |what: &str| -> Result<(), Invalid> {
        if value.chars().any(char::is_whitespace) {
            return Err(invalid(format!("{what} has no spaces.")));
        }
        Ok(())
    };
    match setting.rule {
        Rule::SessionKey => {
            single_word("A session key")?;
            if value.chars().count() < SESSION_KEY_MIN_CHARS {
                return Err(invalid(format!(
                    "A session key needs at least {SESSION_KEY_MIN_CHARS} characters \
                     (for example 48 random ones)."
                )));
            }
        }
        Rule::GoogleClientId => {
            let prefix = value
                .strip_suffix(".apps.googleusercontent.com")
                .ok_or_else(|| {
                    invalid("A Google client ID ends with .apps.googleusercontent.com.")
                })?;
            let well_formed = prefix.split_once('-').is_some_and(|(project, id)| {
                !project.is_empty()
                    && project.bytes().all(|b| b.is_ascii_digit())
                    && !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
            if !well_formed {
                return Err(invalid(
                    "A Google client ID is <project number>-<id>.apps.googleusercontent.com.",
                ));
            }
        }
        Rule::GithubClientId => {
            let hex = |s: &str, n: usize| made_of(s, n..=n, |b| b.is_ascii_hexdigit());
            let alnum = |s: &str| made_of(s, 16..=16, |b| b.is_ascii_alphanumeric());
            let ok = hex(value, 20)
                || value.strip_prefix("Iv1.").is_some_and(|rest| hex(rest, 16))
                || ["Ov23", "Iv23"]
                    .iter()
                    .any(|p| value.strip_prefix(p).is_some_and(alnum));
            if !ok {
                return Err(invalid(
                    "A GitHub client ID is 20 hex digits, Iv1. and 16 hex digits, or Ov23/Iv23 \
                     and 16 letters or digits.",
                ));
            }
        }
        Rule::DiscordClientId => {
            if !made_of(value, 17..=20, |b| b.is_ascii_digit()) {
                return Err(invalid("A Discord client ID is 17 to 20 digits."));
            }
        }
        Rule::Hex(n) => {
            if !made_of(value, n..=n, |b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!("Expected {n} hex digits.")));
            }
        }
        Rule::Token { min, max } => {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b);
            if !made_of(value, min..=max, allowed) {
                return Err(invalid(format!(
                    "Expected {min} to {max} letters, digits or - _ . ~ + / =."
                )));
            }
        }
        Rule::ReverseDns => {
            let labels: Vec<&str> = value.split('.').collect();
            let ok = labels.len() >= 2
                && labels.iter().all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !ok {
                return Err(invalid(
                    "A Services ID is a reverse-DNS name such as com.example.chat.",
                ));
            }
        }
        Rule::Jwt => {
            let parts: Vec<&str> = value.split('.').collect();
            let b64url = |s: &&str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if parts.len() != 3 || !parts.iter().all(b64url) {
                return Err(invalid(
                    "An Apple client secret is a signed JWT (three base64url parts).",
                ));
            }
        }
        Rule::AppleId => {
            if !made_of(value, 10..=10, |b| {
                b.is_ascii_uppercase() || b.is_ascii_digit()
            }) {
                return Err(invalid("Expected 10 upper-case letters or digits."));
            }
        }
        Rule::P256Pkcs8Pem => check_p256_pkcs8_pem(value)?,
        Rule::HttpUrl => check_http_url(value)?,
        Rule::OneOf(choices) => {
            let lower = value.to_ascii_lowercase();
            if !choices.contains(&lower.as_str()) {
                return Err(invalid(format!("One of: {}.", choices.join(", "))));
            }
            return Ok(lower);
        }
        Rule::Bool => {
            let lower = value.to_ascii_lowercase();
            if lower != "true" && lower != "false" {
                return Err(invalid("true or false."));
            }
            return Ok(lower);
        }
        Rule::PositiveInteger(max) => {
            let n: u64 = value
                .parse()
                .map_err(|_| invalid("Expected a whole number."))?;
            if n == 0 || n > max {
                return Err(invalid(format!("Expected a whole number from 1 to {max}.")));
            }
        }
        Rule::EmailList => {
            for email in value.split(',').map(str::trim) {
                let ok = email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !email.chars().any(char::is_whitespace)
                        && !domain.contains('@')
                });
                if !ok {
                    return Err(invalid(
                        "Expected email addresses separated by commas (name@example.com).",
                    ));
                }
            }
        }
        Rule::ModelName => {
            single_word("A model name")?;
            if value.len() > 200 {
                return Err(invalid("A model name has at most 200 characters."));
            }
        }
        Rule::WorkersAiModel => {
            single_word("A model name")?;
            if !(value.starts_with("@cf/") || value.starts_with("@hf/")) || value.len() > 200 {
                return Err(invalid("A Workers AI model name starts with @cf/ or @hf/."));
            }
        }
    }
    Ok(value.to_owned())
}

fn check_http_url(value: &str) -> Result<(), Invalid> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| invalid("Expected an http:// or https:// URL."))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(invalid("Expected an http:// or https:// URL with a host."));
    }
    if authority.contains('@') {
        // A credential in the URL would be shown on the page and logged with every failure.
        return Err(invalid(
            "Put credentials in the API key, not in the URL (no user@ part).",
        ));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(invalid("A base URL has no query or fragment."));
    }
    Ok(())
}

/// The DER bytes of `id-ecPublicKey` (1.2.840.10045.2.1) as an OID.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// The DER bytes of `prime256v1` (1.2.840.10045.3.1.7), the P-256 curve, as an OID.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn check_p256_pkcs8_pem(value: &str) -> Result<(), Invalid> {
    // A one-line `.dev.vars` entry writes its newlines as `\n` (the Worker reads both).
    let text = value.replace("\\n", "\n");
    if text.contains("BEGIN EC PRIVATE KEY") {
        return Err(invalid(
            "This is a SEC1 key; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt).",
        ));
    }
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or_else(|| {
            invalid("Expected a PEM private key (-----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY-----).")
        })?;
    let der = decode_base64(body).ok_or_else(|| invalid("The key's PEM body is not base64."))?;
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    if der.first() != Some(&0x30) || !contains(EC_PUBLIC_KEY_OID) {
        return Err(invalid("Expected an elliptic-curve (EC) private key."));
    }
    if !contains(P256_OID) {
        return Err(invalid("Expected a key on the P-256 curve (ES256)."));
    }
    Ok(())
}

/// Standard base64 (with padding, whitespace ignored), for PEM bodies.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    let mut padding = 0;
    for b in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return None,
        };
        if padding > 0 {
            return None; // data after padding
        }
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (padding <= 2 && !out.is_empty()).then_some(out)
}

/// How a stored secret is shown: its last four characters, and those only when the value is
/// at least [`MASK_MIN_CHARS`] long. Nothing more of a secret ever leaves the server.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count < MASK_MIN_CHARS {
        return "••••".to_owned();
    }
    let tail: String = value.chars().skip(count - 4).collect();
    format!("••••{tail}")
}

/// How a setting's value is shown: masked when it is a secret, else as it is.
pub fn shown(setting: &Setting, value: &str) -> String {
    if setting.secret {
        mask(value)
    } else {
        value.to_owned()
    }
}

/// Where the value in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Saved on this page (it wins over the environment).
    Stored,
    /// Set as a Worker var or secret ("set in environment").
    Environment,
    /// Set nowhere.
    Unset,
    /// Stored, but it does not decrypt with this `SETTINGS_KEY` (the key changed, or the row
    /// was moved to another setting); the environment's value applies.
    Unreadable,
    /// A source this build does not know.
    #[serde(other)]
    Unknown,
}

/// One setting on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingState {
    /// The setting's name ([`Setting::name`]).
    pub name: String,
    /// Where the value in effect comes from.
    pub source: Source,
    /// The stored value as [`shown`] shows it (never a whole secret); a var set in the
    /// environment as it is; nothing for a secret set in the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// Whether the environment also sets it (clearing the stored value falls back to it).
    pub in_environment: bool,
    /// When the stored value was saved (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// Who saved it (their display name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// Whether the page can save, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// `SETTINGS_KEY` is set and valid.
    pub available: bool,
    /// `config_error` when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /api/admin/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    /// Whether saving is possible.
    pub storage: Storage,
    /// Whether "Save to Cloudflare" is possible (`CLOUDFLARE_API_TOKEN` and
    /// `CLOUDFLARE_ACCOUNT_ID` are set).
    pub cloudflare: bool,
    /// How long a saved value may take to reach every instance of the Worker (seconds).
    pub cache_seconds: u32,
    /// Until when the replaced session key still verifies (ms since the epoch), during a
    /// rotation made on this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_key_until: Option<i64>,
    /// Every setting of [`CATALOGUE`], in its order.
    pub settings: Vec<SettingState>,
}

/// `PUT /api/admin/settings`: the settings to change. A value is stored (after its checks); a
/// `null` removes the stored value, so the environment's applies again. Settings not named
/// are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveSettings {
    /// Setting name → new value, or `null` to clear.
    pub values: BTreeMap<String, Option<String>>,
    /// Also set each saved value as a Worker secret through Cloudflare's API.
    #[serde(default)]
    pub cloudflare: bool,
}

/// What Cloudflare's API said about one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudflareOutcome {
    /// Whether the Worker secret was set.
    pub ok: bool,
    /// [`FieldCode::CloudflareSaved`] or [`FieldCode::CloudflareFailed`].
    pub code: FieldCode,
    /// What happened (Cloudflare's own error message on a refusal).
    pub message: String,
}

/// What happened to one setting of a save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldResult {
    /// The setting's name.
    pub field: String,
    /// Whether it was saved (or cleared).
    pub ok: bool,
    /// What happened.
    pub code: FieldCode,
    /// For the page, next to the input.
    pub message: String,
    /// With "Save to Cloudflare": what Cloudflare's API answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<CloudflareOutcome>,
}

/// The answer to `PUT /api/admin/settings`: one result per setting named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveOutcome {
    /// In the order of the catalogue (unknown names last).
    pub results: Vec<FieldResult>,
}

/// The global audit log's action for a change made on the page (the target is the setting's
/// name; the value is never logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A value was stored.
    Set,
    /// The stored value was removed.
    Cleared,
    /// The value was set as a Worker secret through Cloudflare's API.
    SentToCloudflare,
}

impl Change {
    /// The audit log's `action`.
    pub fn audit_action(self) -> &'static str {
        match self {
            Change::Set => "set_setting",
            Change::Cleared => "clear_setting",
            Change::SentToCloudflare => "set_worker_secret",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<String, Invalid> {
        validate(find(name).expect("in the catalogue"), value)
    }

    fn ok(name: &str, value: &str) {
        assert!(
            check(name, value).is_ok(),
            "{name} = {value:?}: {:?}",
            check(name, value)
        );
    }

    fn refused(name: &str, value: &str) {
        let err = check(name, value).expect_err(&format!("{name} = {value:?} is refused"));
        assert_eq!(err.code, FieldCode::InvalidFormat);
    }

    /// A P-256 PKCS#8 key made for these tests by `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256` (used nowhere else).
    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxNwUprmNpISxbPZ9
nDTL1Nu8Ve1Apv89AbPEPynYucqhRANCAATwaMwWmwb5CPf50IPGq1oSjYZxAh82
BViapqUeI5j7xfScZDiXSNGHsGimpQvVkWtx02ScsidjJAjXpPbmDQ3X
-----END PRIVATE KEY-----";
    const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDA13QlcGy3LNGI3IaR0
F5HTnT3U7PiImX0SzJ74urfD5pTsSJ29nnWl7/QQG2Reb5+hZANiAARdWIQF3F/8
qMJ5bntxcLyk7swuC4iX27bI32GtT9CHc811wqzjU7ZKZjsaMADXJmsgKfo8P6Sp
n6sGbFLRxMgUr1EzHDNrCU9BoG+XUw+qrtmrXrrdnGOfjX7gU8BGj6A=
-----END PRIVATE KEY-----";
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOmKuLAOLrdtXvo9SaHmelWvK6xmJ2uw1QbJGhZ7dZJs
-----END PRIVATE KEY-----";

    #[test]
    fn a_google_client_id_ends_with_the_google_domain_after_a_project_number() {
        ok(
            "GOOGLE_CLIENT_ID",
            "123456789012-abc123def456.apps.googleusercontent.com",
        );
        ok(
            "GOOGLE_CLIENT_ID",
            "  123456789012-abc123def456.apps.googleusercontent.com\n",
        );
        refused("GOOGLE_CLIENT_ID", "123456789012-abc123def456");
        refused("GOOGLE_CLIENT_ID", "not-a-client-id");
        refused("GOOGLE_CLIENT_ID", ".apps.googleusercontent.com");
        refused("GOOGLE_CLIENT_ID", "abc-def.apps.googleusercontent.com");
        refused(
            "GOOGLE_CLIENT_ID",
            "123-ABC.apps.googleusercontent.com.evil.example",
        );
    }

    #[test]
    fn github_client_ids_are_twenty_hex_or_an_iv1_or_ov23_id() {
        ok("GITHUB_CLIENT_ID", "0123456789abcdef0123");
        ok("GITHUB_CLIENT_ID", "Iv1.0123456789abcdef");
        ok("GITHUB_CLIENT_ID", "Ov23liAbCdEfGh123456");
        ok("GITHUB_CLIENT_ID", "Iv23liAbCdEfGh123456");
        refused("GITHUB_CLIENT_ID", "0123456789abcdef012");
        refused("GITHUB_CLIENT_ID", "Iv1.0123456789abcdeg");
        refused("GITHUB_CLIENT_ID", "Ov23li-bad-chars-123");
        refused("GITHUB_CLIENT_ID", "github-client");
        ok("GITHUB_CLIENT_SECRET", &"a1".repeat(20));
        refused("GITHUB_CLIENT_SECRET", &"a1".repeat(19));
        refused("GITHUB_CLIENT_SECRET", &"zz".repeat(20));
    }

    #[test]
    fn discord_ids_are_17_to_20_digits() {
        ok("DISCORD_CLIENT_ID", "12345678901234567");
        ok("DISCORD_CLIENT_ID", "12345678901234567890");
        refused("DISCORD_CLIENT_ID", "1234567890123456");
        refused("DISCORD_CLIENT_ID", "123456789012345678901");
        refused("DISCORD_CLIENT_ID", "1234567890123456a");
        ok("DISCORD_CLIENT_SECRET", "AbCdEfGhIjKlMnOpQrStUvWxYz012345");
        refused("DISCORD_CLIENT_SECRET", "short");
    }

    #[test]
    fn a_session_key_needs_32_characters_and_no_spaces() {
        ok("SESSION_SECRET", &"k".repeat(32));
        refused("SESSION_SECRET", &"k".repeat(31));
        refused(
            "SESSION_SECRET",
            &format!("{} {}", "k".repeat(20), "k".repeat(20)),
        );
        // Surrounding whitespace is not part of the key.
        assert_eq!(
            check("SESSION_SECRET", &format!(" {} ", "k".repeat(32))),
            Ok("k".repeat(32))
        );
    }

    #[test]
    fn urls_are_http_or_https_without_credentials_query_or_fragment() {
        ok("AI_BASE_URL", "https://api.openai.com/v1");
        ok("AI_BASE_URL", "http://127.0.0.1:8788/v1");
        ok("CLASSIFIER_URL", "http://127.0.0.1:8788");
        refused("AI_BASE_URL", "ftp://example.com/v1");
        refused("AI_BASE_URL", "api.openai.com/v1");
        refused("AI_BASE_URL", "https://");
        refused("AI_BASE_URL", "https://user:pw@example.com/v1");
        refused("AI_BASE_URL", "https://example.com/v1?key=1");
        refused("CLASSIFIER_URL", "javascript:alert(1)");
    }

    #[test]
    fn an_apple_private_key_is_a_pkcs8_pem_key_on_p256() {
        ok("APPLE_PRIVATE_KEY", P256_PEM);
        // As a one-line .dev.vars entry writes it.
        ok("APPLE_PRIVATE_KEY", &P256_PEM.replace('\n', "\\n"));
        refused("APPLE_PRIVATE_KEY", P384_PEM);
        refused("APPLE_PRIVATE_KEY", ED25519_PEM);
        refused("APPLE_PRIVATE_KEY", "not a key");
        refused(
            "APPLE_PRIVATE_KEY",
            &P256_PEM.replace("MIGHAgEA", "MIGHAg!A"),
        );
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        let err = check("APPLE_PRIVATE_KEY", sec1).expect_err("SEC1 is refused");
        assert!(err.message.contains("PKCS#8"), "{}", err.message);
    }

    #[test]
    fn apple_ids_services_id_and_client_secret_have_their_shapes() {
        ok("APPLE_TEAM_ID", "ABCDE12345");
        ok("APPLE_KEY_ID", "KEY4567890");
        refused("APPLE_TEAM_ID", "abcde12345");
        refused("APPLE_KEY_ID", "KEY45");
        ok("APPLE_CLIENT_ID", "com.example.chat");
        refused("APPLE_CLIENT_ID", "chat");
        refused("APPLE_CLIENT_ID", "com..chat");
        ok(
            "APPLE_CLIENT_SECRET",
            "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJUIn0.c2ln",
        );
        refused(
            "APPLE_CLIENT_SECRET",
            "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJUIn0",
        );
    }

    #[test]
    fn choices_and_switches_are_stored_lower_case_and_numbers_are_positive() {
        assert_eq!(check("AI_PROVIDER", "OpenAI"), Ok("openai".into()));
        refused("AI_PROVIDER", "anthropic");
        assert_eq!(check("AI_VISION", "TRUE"), Ok("true".into()));
        refused("AI_VISION", "yes");
        assert_eq!(check("CLASSIFIER", "Server"), Ok("server".into()));
        ok("ATTACHMENT_MAX_BYTES", "1000000");
        refused("ATTACHMENT_MAX_BYTES", "0");
        refused("ATTACHMENT_MAX_BYTES", "-5");
        refused("ATTACHMENT_MAX_BYTES", "1000000000000");
        refused("UPLOADS_PER_MINUTE", "lots");
        ok("AI_MODEL", "@cf/meta/llama-3.3-70b-instruct-fp8-fast");
        refused("AI_MODEL", "two words");
        ok("EMBEDDING_MODEL", "@cf/baai/bge-small-en-v1.5");
        refused("EMBEDDING_MODEL", "bge-small");
        ok("ADMIN_EMAILS", "ann@example.com, bob@example.org");
        refused("ADMIN_EMAILS", "ann@example.com; bob");
        ok("AI_API_KEY", "sk-proj-abc_DEF.123");
        refused("AI_API_KEY", "has space");
    }

    #[test]
    fn empty_overlong_and_control_character_values_are_refused_for_every_setting() {
        for setting in CATALOGUE {
            assert!(validate(setting, "   ").is_err(), "{}", setting.name);
            assert!(
                validate(setting, &"a".repeat(VALUE_MAX_CHARS + 1)).is_err(),
                "{}",
                setting.name
            );
            assert!(
                validate(setting, "abc\u{0}def").is_err(),
                "{}",
                setting.name
            );
            // A refusal reaches the page and the logs: it never repeats the value.
            let err = validate(setting, "Zq7Marker Zq7Marker").expect_err("spaces");
            assert!(
                !err.message.contains("Zq7Marker"),
                "{}: {}",
                setting.name,
                err.message
            );
        }
    }

    #[test]
    fn a_mask_shows_the_last_four_characters_of_a_long_value_and_nothing_of_a_short_one() {
        assert_eq!(mask("0123456789abcdefWXYZ"), "••••WXYZ");
        assert_eq!(mask("0123456789abcdé€"), "••••cdé€");
        assert_eq!(mask("short-secret"), "••••");
        assert_eq!(mask(""), "••••");
        let secret = find("AI_API_KEY").expect("listed");
        assert_eq!(shown(secret, "sk-0123456789abcdef"), "••••cdef");
        let model = find("AI_MODEL").expect("listed");
        assert_eq!(shown(model, "fake-model"), "fake-model");
    }

    #[test]
    fn every_name_is_offered_once_and_every_live_check_belongs_to_a_setting_that_has_one() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            assert!(
                CATALOGUE[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            assert!(!a.label.is_empty(), "{} has a label", a.name);
        }
        let checked: Vec<&str> = CATALOGUE
            .iter()
            .filter(|s| s.check.is_some())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            checked,
            [
                "APPLE_PRIVATE_KEY",
                "AI_BASE_URL",
                "AI_API_KEY",
                "CLASSIFIER_URL"
            ]
        );
    }

    /// `(name, need)` of each setting `xtask/src/settings.rs` classifies, read from its source
    /// (xtask is a native tool this crate cannot depend on): `s("NAME", NEED, …)`.
    fn xtask_settings() -> Vec<(String, String)> {
        let source = include_str!("../../xtask/src/settings.rs");
        let mut found = Vec::new();
        for entry in source.split("s(").skip(1) {
            let entry = entry.trim_start();
            let Some(rest) = entry.strip_prefix('"') else {
                continue;
            };
            let Some((name, rest)) = rest.split_once('"') else {
                continue;
            };
            let need = rest
                .trim_start()
                .trim_start_matches(',')
                .trim_start()
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            if name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                found.push((name.to_owned(), need));
            }
        }
        found
    }

    #[test]
    fn the_catalogue_offers_only_classified_settings_and_masks_exactly_the_secrets() {
        let xtask = xtask_settings();
        assert!(xtask.len() > 30, "the reader found the list: {xtask:?}");
        for setting in CATALOGUE {
            let need = xtask
                .iter()
                .find(|(name, _)| name == setting.name)
                .map(|(_, need)| need.as_str())
                .unwrap_or_else(|| panic!("{} is not classified in xtask", setting.name));
            assert_ne!(need, "Need::DevOnly", "{} is dev-only", setting.name);
            let secret = need == "Need::Secret" || need == "SESSION_KEY";
            assert_eq!(
                setting.secret, secret,
                "{} is {need} in xtask: masked exactly when a secret",
                setting.name
            );
        }
    }

    #[test]
    fn the_catalogue_covers_every_secret_xtask_lists_but_aliases_and_the_pages_own_keys() {
        // Not offered, on purpose: the aliases and `_PREVIOUS` twins of the session key (the
        // page's session key replaces whichever is in effect, and keeps the old one itself),
        // and the keys the page itself runs on, which must never be stored beside its data.
        let not_offered = [
            "HMAC_SECRET_KEY",
            "SESSION_SECRET_PREVIOUS",
            "HMAC_SECRET_KEY_PREVIOUS",
            "SETTINGS_KEY",
            "CLOUDFLARE_API_TOKEN",
            "CLOUDFLARE_ACCOUNT_ID",
        ];
        for (name, need) in xtask_settings() {
            if need == "Need::Secret" || need == "SESSION_KEY" {
                assert!(
                    find(&name).is_some() || not_offered.contains(&name.as_str()),
                    "the secret {name} is neither offered nor excluded with a reason"
                );
            }
        }
        for name in [
            "CLASSIFIER",
            "CLASSIFIER_URL",
            "AI_PROVIDER",
            "AI_BASE_URL",
            "AI_MODEL",
            "AI_VISION",
            "EMBEDDING_MODEL",
            "ATTACHMENT_MAX_BYTES",
        ] {
            assert!(find(name).is_some(), "{name} is offered");
        }
    }

    #[test]
    fn wire_types_round_trip_and_unknown_codes_read_as_unknown() {
        let result = FieldResult {
            field: "AI_MODEL".into(),
            ok: false,
            code: FieldCode::CheckFailed,
            message: "no".into(),
            cloudflare: Some(CloudflareOutcome {
                ok: false,
                code: FieldCode::CloudflareFailed,
                message: "403".into(),
            }),
        };
        let json = serde_json::to_value(&result).expect("json");
        assert_eq!(json["code"], "check_failed");
        assert_eq!(json["cloudflare"]["code"], "cloudflare_failed");
        let back: FieldResult = serde_json::from_value(json).expect("back");
        assert_eq!(back, result);
        let future: FieldCode = serde_json::from_str("\"from_the_future\"").expect("read");
        assert_eq!(future, FieldCode::Unknown);
        let save: SaveSettings =
            serde_json::from_str(r#"{"values": {"AI_MODEL": "m", "AI_API_KEY": null}}"#)
                .expect("save");
        assert_eq!(save.values["AI_API_KEY"], None);
        assert!(!save.cloudflare);
    }
}
