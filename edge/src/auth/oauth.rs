//! The OAuth 2.0 authorization-code flow with PKCE and `state` (plus the OpenID Connect `nonce`
//! for Google and Apple), done by the `oauth2` crate with the Worker's `fetch` as its HTTP
//! client. This module knows each provider's endpoints and profile shape; `auth::routes` drives
//! the flow.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use shared::auth::{LoginError, Provider};
use shared::limits::{validate_display_name, DISPLAY_NAME_MAX_CHARS};
use worker::{console_error, Env, Fetch, Headers, Method, Request, RequestInit};

use super::accounts::ExternalIdentity;
use super::apple::AppleKey;
use super::id_token;
use crate::config::{self, SessionKeys};
use crate::cookies;

/// The state cookie: what the callback needs to finish this browser's login.
pub const STATE_COOKIE: &str = "__Host-dc_oauth";
const STATE_PURPOSE: &str = "oauth";
/// How long a login may take at the provider.
pub const STATE_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// The ID token in a token response (Google, Apple).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenFields {}

type TokenResponseWithId = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type OauthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponseWithId,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

enum Secret {
    Static(String),
    Apple(AppleKey),
}

/// A configured provider: credentials and endpoints.
pub struct ProviderConfig {
    /// Which provider.
    pub provider: Provider,
    client_id: String,
    secret: Secret,
    auth_url: String,
    token_url: String,
    /// GitHub: the REST API base; Discord: the `/users/@me` URL. Unused for OIDC.
    api_url: String,
    /// Accepted ID token issuers (OIDC providers).
    issuers: Vec<String>,
    /// Where the provider publishes its ID token signing keys (OIDC providers).
    jwks_url: String,
}

fn env_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "GITHUB",
        Provider::Google => "GOOGLE",
        Provider::Apple => "APPLE",
        Provider::Discord => "DISCORD",
        Provider::Local => "LOCAL",
    }
}

/// Whether the request is to this machine (`wrangler dev`): the only place test endpoints and
/// the local account are honoured.
pub fn is_loopback(req: &Request) -> bool {
    req.url().is_ok_and(|url| {
        matches!(
            url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        )
    })
}

/// `OAUTH_TEST_ENDPOINTS`: the base URL of a provider fake that stands in for every provider
/// (`<base>/<provider>/authorize`, `/token`, …). Tests only: ignored unless the request itself
/// is to localhost, so a deployed Worker can never send codes or secrets elsewhere.
pub fn test_endpoints(env: &Env, req: &Request) -> Option<String> {
    let base = config::string(env, "OAUTH_TEST_ENDPOINTS")?;
    if is_loopback(req) {
        Some(base.trim_end_matches('/').to_owned())
    } else {
        console_error!("OAUTH_TEST_ENDPOINTS is set but ignored: this is not a localhost request");
        None
    }
}

impl ProviderConfig {
    /// The provider's configuration, when its client id and secret (for Apple: a secret, or the
    /// team id, key id and private key) are set.
    pub fn from_env(env: &Env, provider: Provider, test_base: Option<&str>) -> Option<Self> {
        let name = env_name(provider);
        let client_id = config::string(env, &format!("{name}_CLIENT_ID"))?;
        let secret = match config::string(env, &format!("{name}_CLIENT_SECRET")) {
            Some(secret) => Secret::Static(secret),
            None if provider == Provider::Apple => {
                let team = config::string(env, "APPLE_TEAM_ID")?;
                let key_id = config::string(env, "APPLE_KEY_ID")?;
                let pem = config::string(env, "APPLE_PRIVATE_KEY")?;
                match AppleKey::new(&team, &key_id, &pem) {
                    Ok(key) => Secret::Apple(key),
                    Err(e) => {
                        console_error!("Apple sign-in is off: {e}");
                        return None;
                    }
                }
            }
            None => return None,
        };
        let jwks_url = match (test_base, provider) {
            (Some(base), _) => format!("{base}/{}/jwks", provider.as_str()),
            (None, Provider::Google) => "https://www.googleapis.com/oauth2/v3/certs".into(),
            (None, Provider::Apple) => "https://appleid.apple.com/auth/keys".into(),
            (None, _) => String::new(),
        };
        let (auth_url, token_url, api_url, issuers) = match (test_base, provider) {
            (Some(base), _) => {
                let base = format!("{base}/{}", provider.as_str());
                let api = match provider {
                    Provider::Discord => format!("{base}/users/@me"),
                    _ => base.clone(),
                };
                (
                    format!("{base}/authorize"),
                    format!("{base}/token"),
                    api,
                    vec![base],
                )
            }
            (None, Provider::Github) => (
                "https://github.com/login/oauth/authorize".into(),
                "https://github.com/login/oauth/access_token".into(),
                "https://api.github.com".into(),
                vec![],
            ),
            (None, Provider::Google) => (
                "https://accounts.google.com/o/oauth2/v2/auth".into(),
                "https://oauth2.googleapis.com/token".into(),
                String::new(),
                vec![
                    "https://accounts.google.com".into(),
                    "accounts.google.com".into(),
                ],
            ),
            (None, Provider::Apple) => (
                "https://appleid.apple.com/auth/authorize".into(),
                "https://appleid.apple.com/auth/token".into(),
                String::new(),
                vec!["https://appleid.apple.com".into()],
            ),
            (None, Provider::Discord) => (
                "https://discord.com/oauth2/authorize".into(),
                "https://discord.com/api/oauth2/token".into(),
                "https://discord.com/api/users/@me".into(),
                vec![],
            ),
            (None, Provider::Local) => return None,
        };
        Some(ProviderConfig {
            provider,
            client_id,
            secret,
            auth_url,
            token_url,
            api_url,
            issuers,
            jwks_url,
        })
    }

    fn scopes(&self) -> &'static [&'static str] {
        match self.provider {
            Provider::Github => &["read:user", "user:email"],
            Provider::Google => &["openid", "email", "profile"],
            Provider::Apple => &["name", "email"],
            Provider::Discord => &["identify", "email"],
            Provider::Local => &[],
        }
    }

    fn client(&self, redirect_uri: &str, now_seconds: i64) -> Result<OauthClient, String> {
        let secret = match &self.secret {
            Secret::Static(s) => s.clone(),
            Secret::Apple(key) => key.client_secret(&self.client_id, now_seconds),
        };
        Ok(oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret))
            .set_auth_uri(AuthUrl::new(self.auth_url.clone()).map_err(|e| e.to_string())?)
            .set_token_uri(TokenUrl::new(self.token_url.clone()).map_err(|e| e.to_string())?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?)
            // Apple takes the secret only in the body; the others accept both.
            .set_auth_type(AuthType::RequestBody))
    }
}

/// What the state cookie holds between the redirect to the provider and the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The provider this login is with.
    pub provider: Provider,
    /// The `state` sent to the provider (CSRF: the callback must bring it back).
    pub state: String,
    /// The PKCE code verifier (the provider saw only its SHA-256 challenge).
    pub verifier: String,
    /// The OIDC nonce (must be in the ID token).
    pub nonce: String,
    /// When this login expires, ms since the epoch.
    pub expires_at: i64,
    /// The browser's guest id at the start (Apple's callback is a cross-site POST that carries
    /// no SameSite=Lax cookie, so it is captured here).
    pub guest_id: Option<String>,
    /// The account signed in at the start, which the new identity is linked to.
    pub account_id: Option<String>,
    /// The signed-in session that started the link (`sessions.id`): the link completes only
    /// while it is still signed in (issue 10 item 9).
    #[serde(default)]
    pub session_id: Option<String>,
}

impl LoginState {
    /// The signed cookie value.
    pub fn seal(&self, keys: &SessionKeys) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        cookies::seal(STATE_PURPOSE, &URL_SAFE_NO_PAD.encode(json), keys)
    }

    /// The state in a cookie, if signed by us, for this provider, not expired, and holding the
    /// `state` the provider sent back (compared in constant time).
    pub fn open(
        cookie: &str,
        keys: &SessionKeys,
        provider: Provider,
        returned_state: &str,
        now: i64,
    ) -> Option<LoginState> {
        let payload = cookies::open(STATE_PURPOSE, cookie, keys)?;
        let state: LoginState =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let same = state.state.len() == returned_state.len()
            && state
                .state
                .bytes()
                .zip(returned_state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        (state.provider == provider && state.expires_at > now && same).then_some(state)
    }

    /// The `Set-Cookie` header for it. Apple answers with a cross-site form POST, which only
    /// carries `SameSite=None` cookies; the others redirect with a GET, where `Lax` suffices.
    pub fn set_cookie(&self, keys: &SessionKeys) -> String {
        let same_site = if self.provider == Provider::Apple {
            "None"
        } else {
            "Lax"
        };
        format!(
            "{STATE_COOKIE}={}; Path=/; HttpOnly; Secure; SameSite={same_site}; Max-Age={}",
            self.seal(keys),
            STATE_LIFETIME_MS / 1000
        )
    }
}

/// Removes the state cookie (it is single-use).
pub fn clear_state_cookie() -> String {
    format!("{STATE_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

/// Starts a login: the provider's authorization URL and the state to keep in the cookie.
pub fn authorize(
    config: &ProviderConfig,
    redirect_uri: &str,
    now: i64,
    guest_id: Option<String>,
    account_id: Option<String>,
    session_id: Option<String>,
) -> Result<(String, LoginState), String> {
    let client = config.client(redirect_uri, now / 1000)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = CsrfToken::new_random().secret().clone();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .add_scopes(config.scopes().iter().map(|s| Scope::new((*s).to_owned())));
    if config.provider.is_oidc() {
        request = request.add_extra_param("nonce", nonce.clone());
    }
    if config.provider == Provider::Apple {
        // Apple requires form_post whenever name or email is requested.
        request = request.add_extra_param("response_mode", "form_post");
    }
    let (url, state) = request.url();
    Ok((
        url.to_string(),
        LoginState {
            provider: config.provider,
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce,
            expires_at: now + STATE_LIFETIME_MS,
            guest_id,
            account_id,
            session_id,
        },
    ))
}

/// Why finishing a login failed: the code for the person, the detail for the log.
pub struct Failure {
    /// Shown to the person.
    pub code: LoginError,
    /// Logged.
    pub detail: String,
}

fn failure(code: LoginError, detail: impl Into<String>) -> Failure {
    Failure {
        code,
        detail: detail.into(),
    }
}

/// Finishes a login: exchanges the code (with the PKCE verifier) and reads who signed in.
/// `apple_user` is the `user` form field Apple sends on the first sign-in only (it holds the
/// name, which Apple's ID token never carries).
pub async fn finish(
    config: &ProviderConfig,
    redirect_uri: &str,
    state: &LoginState,
    code: &str,
    apple_user: Option<&str>,
    now: i64,
) -> Result<ExternalIdentity, Failure> {
    let client = config
        .client(redirect_uri, now / 1000)
        .map_err(|e| failure(LoginError::Internal, e))?;
    let http = |request: HttpRequest| fetch(request);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(state.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| failure(LoginError::OauthExchangeFailed, format!("{e:?}")))?;
    let access = token.access_token().secret().clone();
    match config.provider {
        Provider::Github => github_profile(config, &access).await,
        Provider::Discord => discord_profile(config, &access).await,
        Provider::Google | Provider::Apple => {
            let id_token = token.extra_fields().id_token.as_deref().ok_or_else(|| {
                failure(
                    LoginError::OauthIdTokenInvalid,
                    "no id_token in the token response",
                )
            })?;
            super::jwks::verify_signature(id_token, &config.jwks_url, now)
                .await
                .map_err(|e| failure(LoginError::OauthIdTokenInvalid, e.0))?;
            let issuers: Vec<&str> = config.issuers.iter().map(String::as_str).collect();
            let claims = id_token::verify(
                id_token,
                &issuers,
                &config.client_id,
                &state.nonce,
                now / 1000,
            )
            .map_err(|e| failure(LoginError::OauthIdTokenInvalid, e.0))?;
            let name = claims
                .name
                .clone()
                .or_else(|| apple_user.and_then(apple_name))
                .or_else(|| claims.email.as_deref().map(email_name));
            Ok(ExternalIdentity {
                provider: config.provider,
                subject: claims.subject,
                email: claims.email,
                email_verified: claims.email_verified,
                name: display_name(name.as_deref(), config.provider),
            })
        }
        Provider::Local => Err(failure(LoginError::Internal, "local is not OAuth")),
    }
}

/// The name in Apple's first-sign-in `user` field: `{"name":{"firstName":..,"lastName":..}}`.
fn apple_name(user: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(user).ok()?;
    let name = value.get("name")?;
    let part = |key: &str| name.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    let full = format!("{} {}", part("firstName"), part("lastName"));
    let full = full.trim();
    (!full.is_empty()).then(|| full.to_owned())
}

fn email_name(email: &str) -> String {
    email.split('@').next().unwrap_or_default().to_owned()
}

/// A valid display name from what the provider offers, or "<Provider> user".
pub fn display_name(name: Option<&str>, provider: Provider) -> String {
    name.map(|n| {
        n.trim()
            .chars()
            .take(DISPLAY_NAME_MAX_CHARS)
            .collect::<String>()
    })
    .and_then(|n| validate_display_name(&n).ok())
    .unwrap_or_else(|| format!("{} user", provider.label()))
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str, access: &str) -> Result<T, Failure> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v);
    set("Authorization", &format!("Bearer {access}"))
        .and_then(|_| set("Accept", "application/json"))
        // GitHub's API refuses requests without a User-Agent.
        .and_then(|_| set("User-Agent", "durable-chat"))
        .map_err(|e| failure(LoginError::Internal, e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let request = Request::new_with_init(url, &init)
        .map_err(|e| failure(LoginError::Internal, e.to_string()))?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| failure(LoginError::OauthProfileFailed, format!("GET {url}: {e}")))?;
    let status = response.status_code();
    let text = response
        .text()
        .await
        .map_err(|e| failure(LoginError::OauthProfileFailed, e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(failure(
            LoginError::OauthProfileFailed,
            format!("GET {url} answered {status}"),
        ));
    }
    serde_json::from_str(&text).map_err(|e| {
        failure(
            LoginError::OauthProfileFailed,
            format!("GET {url}: unexpected body: {e}"),
        )
    })
}

async fn github_profile(
    config: &ProviderConfig,
    access: &str,
) -> Result<ExternalIdentity, Failure> {
    #[derive(Deserialize)]
    struct User {
        id: u64,
        login: String,
        name: Option<String>,
    }
    #[derive(Deserialize)]
    struct Email {
        email: String,
        primary: bool,
        verified: bool,
    }
    let user: User = get_json(&format!("{}/user", config.api_url), access).await?;
    let emails: Vec<Email> = get_json(&format!("{}/user/emails", config.api_url), access).await?;
    // The primary email if verified, else any verified one, else the (unverified) primary.
    let email = emails
        .iter()
        .find(|e| e.primary && e.verified)
        .or_else(|| emails.iter().find(|e| e.verified))
        .or_else(|| emails.iter().find(|e| e.primary));
    Ok(ExternalIdentity {
        provider: Provider::Github,
        subject: user.id.to_string(),
        email: email.map(|e| e.email.clone()),
        email_verified: email.is_some_and(|e| e.verified),
        name: display_name(
            Some(user.name.as_deref().unwrap_or(&user.login)),
            Provider::Github,
        ),
    })
}

async fn discord_profile(
    config: &ProviderConfig,
    access: &str,
) -> Result<ExternalIdentity, Failure> {
    #[derive(Deserialize)]
    struct User {
        id: String,
        username: String,
        global_name: Option<String>,
        email: Option<String>,
        verified: Option<bool>,
    }
    let user: User = get_json(&config.api_url, access).await?;
    Ok(ExternalIdentity {
        provider: Provider::Discord,
        subject: user.id,
        email_verified: user.email.is_some() && user.verified == Some(true),
        email: user.email,
        name: display_name(
            Some(user.global_name.as_deref().unwrap_or(&user.username)),
            Provider::Discord,
        ),
    })
}

/// A failed HTTP exchange with a provider.
#[derive(Debug)]
pub struct FetchError(String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchError {}

/// The Worker's `fetch` as the `oauth2` crate's HTTP client.
async fn fetch(request: HttpRequest) -> Result<HttpResponse, FetchError> {
    let err = |e: &dyn std::fmt::Display| FetchError(e.to_string());
    let headers = Headers::new();
    for (name, value) in request.headers() {
        let value = value.to_str().map_err(|e| err(&e))?;
        headers.append(name.as_str(), value).map_err(|e| err(&e))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method().as_str().to_owned()))
        .with_headers(headers);
    if !request.body().is_empty() {
        let body = worker::js_sys::Uint8Array::from(request.body().as_slice());
        init.with_body(Some(body.into()));
    }
    let uri = request.uri().to_string();
    let worker_request = Request::new_with_init(&uri, &init).map_err(|e| err(&e))?;
    let mut response = Fetch::Request(worker_request)
        .send()
        .await
        .map_err(|e| err(&e))?;
    let mut builder = http::Response::builder().status(response.status_code());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| err(&e))?;
    builder.body(body).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys {
            current: vec![1; 32],
            previous: None,
        }
    }

    fn state() -> LoginState {
        LoginState {
            provider: Provider::Github,
            state: "st4te".into(),
            verifier: "v".into(),
            nonce: "n".into(),
            expires_at: 10_000,
            guest_id: Some("g".into()),
            account_id: None,
            session_id: None,
        }
    }

    #[test]
    fn the_state_cookie_opens_only_with_the_state_the_provider_returned() {
        let sealed = state().seal(&keys());
        assert_eq!(
            LoginState::open(&sealed, &keys(), Provider::Github, "st4te", 5_000),
            Some(state())
        );
        assert_eq!(
            LoginState::open(&sealed, &keys(), Provider::Github, "other", 5_000),
            None
        );
        assert_eq!(
            LoginState::open(&sealed, &keys(), Provider::Github, "st4t", 5_000),
            None
        );
    }

    #[test]
    fn the_state_cookie_is_refused_for_another_provider_after_expiry_or_when_forged() {
        let sealed = state().seal(&keys());
        assert_eq!(
            LoginState::open(&sealed, &keys(), Provider::Discord, "st4te", 5_000),
            None
        );
        assert_eq!(
            LoginState::open(&sealed, &keys(), Provider::Github, "st4te", 10_000),
            None
        );
        let other = SessionKeys {
            current: vec![2; 32],
            previous: None,
        };
        assert_eq!(
            LoginState::open(&sealed, &other, Provider::Github, "st4te", 5_000),
            None
        );
    }

    #[test]
    fn only_apple_state_cookies_ride_a_cross_site_post() {
        let github = state().set_cookie(&keys());
        assert!(github.starts_with("__Host-dc_oauth="));
        assert!(github.contains("SameSite=Lax") && github.contains("Secure"));
        let apple = LoginState {
            provider: Provider::Apple,
            ..state()
        }
        .set_cookie(&keys());
        assert!(apple.contains("SameSite=None") && apple.contains("Secure"));
    }

    #[test]
    fn display_names_fall_back_to_the_provider_when_unusable() {
        assert_eq!(display_name(Some("  Ann  "), Provider::Github), "Ann");
        assert_eq!(display_name(Some(""), Provider::Discord), "Discord user");
        assert_eq!(display_name(None, Provider::Apple), "Apple user");
        assert_eq!(
            display_name(Some(&"x".repeat(100)), Provider::Google)
                .chars()
                .count(),
            DISPLAY_NAME_MAX_CHARS
        );
    }

    #[test]
    fn apples_first_sign_in_user_field_gives_the_name() {
        assert_eq!(
            apple_name(r#"{"name":{"firstName":"Ann","lastName":"Lee"},"email":"a@b.c"}"#),
            Some("Ann Lee".into())
        );
        assert_eq!(apple_name(r#"{"email":"a@b.c"}"#), None);
        assert_eq!(apple_name("not json"), None);
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_scopes_and_for_oidc_a_nonce() {
        let config = ProviderConfig {
            provider: Provider::Google,
            client_id: "cid".into(),
            secret: Secret::Static("s3cr3t-value".into()),
            auth_url: "https://idp.example/authorize".into(),
            token_url: "https://idp.example/token".into(),
            api_url: String::new(),
            issuers: vec!["https://idp.example".into()],
            jwks_url: "https://idp.example/jwks".into(),
        };
        let (url, state) = authorize(
            &config,
            "https://chat.example/api/auth/google/callback",
            1_000,
            None,
            None,
            None,
        )
        .unwrap();
        let url = url::Url::parse(&url).unwrap();
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "cid");
        assert_eq!(
            query["redirect_uri"],
            "https://chat.example/api/auth/google/callback"
        );
        assert_eq!(query["state"], state.state);
        assert_eq!(query["nonce"], state.nonce);
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["scope"], "openid email profile");
        // The challenge is the verifier's SHA-256, not the verifier.
        use sha2::Digest;
        let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(state.verifier.as_bytes()));
        assert_eq!(query["code_challenge"], expected);
        assert!(!url.as_str().contains(&state.verifier));
        assert!(
            !url.as_str().contains("s3cr3t-value"),
            "the secret never goes to the browser"
        );
        assert_eq!(state.expires_at, 1_000 + STATE_LIFETIME_MS);
    }
}
