//! Accounts and login: the providers, the API bodies of the login and devices pages, the stable
//! codes a failed login returns to the app with, and the small pure rules both halves need
//! (which browser a session is, which emails may link).

use serde::{Deserialize, Serialize};

/// A login provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// GitHub (OAuth 2.0; profile and verified emails from its REST API).
    Github,
    /// Google (OpenID Connect: the ID token carries the profile).
    Google,
    /// Sign in with Apple (OpenID Connect, `form_post` callback, JWT client secret).
    Apple,
    /// Discord (OAuth 2.0; profile from `/users/@me`).
    Discord,
    /// The local account of a development server (`DEV_LOGIN=true`, localhost only).
    Local,
}

impl Provider {
    /// The OAuth providers, in the order their buttons appear.
    pub const OAUTH: [Provider; 4] = [
        Provider::Github,
        Provider::Google,
        Provider::Apple,
        Provider::Discord,
    ];

    /// The name in URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Google => "google",
            Provider::Apple => "apple",
            Provider::Discord => "discord",
            Provider::Local => "local",
        }
    }

    /// The provider named in a URL segment (`local` is not an OAuth provider and is refused).
    pub fn oauth_from_str(name: &str) -> Option<Provider> {
        Provider::OAUTH.into_iter().find(|p| p.as_str() == name)
    }

    /// The name on its button.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Github => "GitHub",
            Provider::Google => "Google",
            Provider::Apple => "Apple",
            Provider::Discord => "Discord",
            Provider::Local => "Local account",
        }
    }

    /// Whether it issues an OpenID Connect ID token (then a `nonce` binds it to the login).
    pub fn is_oidc(self) -> bool {
        matches!(self, Provider::Google | Provider::Apple)
    }
}

/// Why a login failed. The Worker redirects to `/?login_error=<code>`; the app shows the message.
/// A closed set of stable codes: add variants, never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginError {
    /// The callback's `state` is missing, forged, expired or not this browser's login.
    OauthStateMismatch,
    /// The person declined at the provider, or the provider reported an error.
    OauthDenied,
    /// The provider refused the authorization code (used twice, expired, or wrong PKCE verifier).
    OauthExchangeFailed,
    /// The provider's profile could not be read.
    OauthProfileFailed,
    /// The ID token is not for this app or this login (issuer, audience, expiry or nonce).
    OauthIdTokenInvalid,
    /// That provider is not configured on this server.
    ProviderNotConfigured,
    /// The account is disabled.
    AccountDisabled,
    /// Local accounts are off (not a development server on localhost).
    DevLoginDisabled,
    /// Something failed on the server; the detail is in its log.
    Internal,
    /// A code this build does not know.
    #[serde(other)]
    Unknown,
}

impl LoginError {
    /// The code in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginError::OauthStateMismatch => "oauth_state_mismatch",
            LoginError::OauthDenied => "oauth_denied",
            LoginError::OauthExchangeFailed => "oauth_exchange_failed",
            LoginError::OauthProfileFailed => "oauth_profile_failed",
            LoginError::OauthIdTokenInvalid => "oauth_id_token_invalid",
            LoginError::ProviderNotConfigured => "provider_not_configured",
            LoginError::AccountDisabled => "account_disabled",
            LoginError::DevLoginDisabled => "dev_login_disabled",
            LoginError::Internal => "internal",
            LoginError::Unknown => "unknown",
        }
    }

    /// The code read back from a URL.
    pub fn parse(code: &str) -> LoginError {
        serde_json::from_value(serde_json::Value::String(code.to_owned()))
            .unwrap_or(LoginError::Unknown)
    }

    /// What to tell the person.
    pub fn message(self) -> &'static str {
        match self {
            LoginError::OauthStateMismatch => {
                "That sign-in link was not started here or has expired. Please try again."
            }
            LoginError::OauthDenied => "The sign-in was cancelled at the provider.",
            LoginError::OauthExchangeFailed => {
                "The provider did not accept this sign-in (it may have been used already). \
                 Please try again."
            }
            LoginError::OauthProfileFailed => "Your profile could not be read from the provider.",
            LoginError::OauthIdTokenInvalid => "The provider's answer could not be verified.",
            LoginError::ProviderNotConfigured => "That sign-in method is not set up here.",
            LoginError::AccountDisabled => "This account is disabled.",
            LoginError::DevLoginDisabled => "Local accounts are only available on a dev server.",
            LoginError::Internal | LoginError::Unknown => {
                "Sign-in failed on the server. Please try again."
            }
        }
    }
}

/// `GET /api/auth/providers`: the login buttons to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    /// Configured OAuth providers (start at `/api/auth/<provider>/start`).
    pub providers: Vec<Provider>,
    /// Whether the local-account form is offered (`POST /api/auth/local`).
    pub dev_login: bool,
}

/// `POST /api/auth/local`: sign in to the local account with this display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevLogin {
    /// Display name (also the local account's key).
    pub name: String,
}

/// One signed-in session, as the devices page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Opaque id (revoke with `DELETE /api/sessions/<id>`).
    pub id: String,
    /// Whether this is the session making the request.
    pub current: bool,
    /// "Firefox on Linux", from the User-Agent at sign-in.
    pub browser: String,
    /// Signed in at (ms since the epoch).
    pub created_at: i64,
    /// Last used (ms since the epoch; updated at most once a minute).
    pub last_seen_at: i64,
    /// "City, CC" from the edge's location of the sign-in, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// `GET /api/sessions`: the account's active sessions, most recently used first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Active sessions.
    pub sessions: Vec<Device>,
}

/// `POST /api/sessions/revoke-others` and `DELETE /api/sessions/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// How many sessions were ended.
    pub revoked: u32,
}

/// A short, human name for a browser from its User-Agent ("Chrome on Android"). Order matters:
/// Edge and Opera also say "Chrome", Chrome also says "Safari", Android also says "Linux".
pub fn browser_label(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Edg/") || ua.contains("EdgA/") || ua.contains("EdgiOS/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "Unknown browser"
    };
    let system = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {system}")
}

/// The emails that make an account an admin at creation (`ADMIN_EMAILS`, comma-separated),
/// compared case-insensitively. Only a verified email may ever match.
pub fn is_admin_email(admin_emails: &str, email: &str, verified: bool) -> bool {
    verified
        && !email.trim().is_empty()
        && admin_emails
            .split(',')
            .map(str::trim)
            .any(|e| !e.is_empty() && e.eq_ignore_ascii_case(email.trim()))
}

/// The form in which emails are compared and stored for linking.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Whether `which` may be unlinked from an account signed in with `linked`: it must be linked,
/// and it must not be the last one (the account could never be signed into again).
pub fn check_unlink(linked: &[Provider], which: Provider) -> Result<(), crate::ChatError> {
    use crate::error::{ChatError, ErrorCode};
    if !linked.contains(&which) {
        return Err(ChatError::new(
            ErrorCode::NotFound,
            format!("{} is not linked to your account.", which.label()),
        ));
    }
    if linked.len() == 1 {
        return Err(ChatError::new(
            ErrorCode::Conflict,
            format!(
                "{} is your only way to sign in; link another provider before unlinking it.",
                which.label()
            ),
        ));
    }
    Ok(())
}

/// The provider a URL segment names (`local` included), if any.
pub fn provider_named(name: &str) -> Option<Provider> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_error_codes_round_trip_through_the_url_form() {
        for code in [
            LoginError::OauthStateMismatch,
            LoginError::OauthDenied,
            LoginError::OauthExchangeFailed,
            LoginError::OauthProfileFailed,
            LoginError::OauthIdTokenInvalid,
            LoginError::ProviderNotConfigured,
            LoginError::AccountDisabled,
            LoginError::DevLoginDisabled,
            LoginError::Internal,
        ] {
            assert_eq!(LoginError::parse(code.as_str()), code);
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
        assert_eq!(LoginError::parse("nonsense"), LoginError::Unknown);
    }

    #[test]
    fn only_the_four_oauth_providers_are_named_in_oauth_urls() {
        for p in Provider::OAUTH {
            assert_eq!(Provider::oauth_from_str(p.as_str()), Some(p));
        }
        assert_eq!(Provider::oauth_from_str("local"), None);
        assert_eq!(Provider::oauth_from_str("GitHub"), None);
        assert!(Provider::Google.is_oidc() && Provider::Apple.is_oidc());
        assert!(!Provider::Github.is_oidc() && !Provider::Discord.is_oidc());
    }

    #[test]
    fn browsers_are_named_despite_user_agents_that_claim_to_be_each_other() {
        let chrome_linux =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                            Chrome/120.0.0.0 Safari/537.36";
        let edge_windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                            (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0";
        let safari_iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
                             AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 \
                             Safari/604.1";
        let firefox_android =
            "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0";
        assert_eq!(browser_label(chrome_linux), "Chrome on Linux");
        assert_eq!(browser_label(edge_windows), "Edge on Windows");
        assert_eq!(browser_label(safari_iphone), "Safari on iOS");
        assert_eq!(browser_label(firefox_android), "Firefox on Android");
        assert_eq!(browser_label("curl/8.0"), "Unknown browser");
        assert_eq!(browser_label(""), "Unknown browser");
    }

    #[test]
    fn only_a_verified_email_on_the_admin_list_makes_an_admin() {
        let list = " boss@example.com, Ops@Example.com ,";
        assert!(is_admin_email(list, "ops@example.com", true));
        assert!(is_admin_email(list, "BOSS@example.com", true));
        assert!(!is_admin_email(list, "ops@example.com", false));
        assert!(!is_admin_email(list, "other@example.com", true));
        assert!(!is_admin_email(list, "", true));
        assert!(!is_admin_email("", "ops@example.com", true));
    }

    #[test]
    fn a_linked_provider_may_be_unlinked_unless_it_is_the_last_way_to_sign_in() {
        use crate::error::ErrorCode;
        let both = [Provider::Github, Provider::Discord];
        assert!(check_unlink(&both, Provider::Github).is_ok());
        let err = check_unlink(&[Provider::Discord], Provider::Discord).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        let err = check_unlink(&both, Provider::Google).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        assert!(err.message.contains("Google"));
    }

    #[test]
    fn a_provider_is_named_by_its_url_segment_and_nothing_else() {
        assert_eq!(provider_named("github"), Some(Provider::Github));
        assert_eq!(provider_named("local"), Some(Provider::Local));
        assert_eq!(provider_named("GitHub"), None);
        assert_eq!(provider_named("myspace"), None);
    }
}
