//! Sign-in: OAuth providers, the local account of a dev server, accounts and sessions in D1, and
//! the devices page's API.
//!
//! Routes (all under `/api/`):
//! - `GET auth/providers`: which buttons to show;
//! - `GET auth/<provider>/start`: redirect to the provider (state cookie set);
//! - `GET|POST auth/<provider>/callback`: back from it (Apple POSTs); redirects to `/`, or to
//!   `/?login_error=<code>` on any failure — never a raw error page;
//! - `POST auth/local {name}`: the dev server's local account (`DEV_LOGIN=true`, localhost only,
//!   no provider configured);
//! - `GET sessions`, `DELETE sessions/<id>`, `POST sessions/revoke-others`: the devices page.

pub mod accounts;
pub mod apple;
pub mod guests;
pub mod id_token;
pub mod jwks;
pub mod oauth;
pub mod sessions;
pub mod test_guests;

use shared::auth::{DevLogin, DeviceList, LoginError, LoginOptions, Provider, Revoked};
use shared::error::ErrorCode;
use shared::limits;
use shared::protocol::http::SessionInfo;
use worker::{console_error, Env, Method, Request, Response};

use crate::config::{self, SessionKeys};
use crate::cookies;
use crate::http::{
    check_origin, client_ip, fail, is_https, json, rate_limit, read_json, ApiError, ApiResult,
};
use crate::session::{self, SessionUser};
use crate::time::now;
use accounts::{ExternalIdentity, SignIn, SignInContext};
use oauth::{LoginState, ProviderConfig};

/// Routes `/api/auth/*` and `/api/sessions/*` (`segments` without the `api`).
pub(crate) async fn route(req: Request, env: &Env, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (Method::Get, ["auth", "providers"]) => Ok(json(&login_options(&req, env), 200)?),
        (Method::Post, ["auth", "local"]) => dev_login(req, env).await,
        (Method::Get, ["auth", provider, "start"]) => start(req, env, provider).await,
        (Method::Get | Method::Post, ["auth", provider, "callback"]) => {
            Ok(callback(req, env, provider).await)
        }
        (Method::Get, ["sessions"]) => list_sessions(&req, env).await,
        (Method::Post, ["sessions", "revoke-others"]) => revoke_others(&req, env).await,
        (Method::Delete, ["sessions", id]) => revoke_one(&req, env, id).await,
        (Method::Delete, ["auth", "identities", provider]) => unlink(&req, env, provider).await,
        _ => Err(fail(
            ErrorCode::NotFound,
            format!("No API at /api/{}.", segments.join("/")),
        )),
    }
}

/// The configured OAuth providers.
fn configured(env: &Env, req: &Request) -> Vec<ProviderConfig> {
    let test_base = oauth::test_endpoints(env, req);
    Provider::OAUTH
        .into_iter()
        .filter_map(|p| ProviderConfig::from_env(env, p, test_base.as_deref()))
        .collect()
}

/// Whether the local account is offered: `DEV_LOGIN=true`, no provider configured, and the
/// request is to localhost. The last check means a deployed Worker refuses it even if the var
/// were set by mistake (and a test checks wrangler.toml never sets it).
fn dev_login_enabled(env: &Env, req: &Request) -> bool {
    config::string(env, "DEV_LOGIN").is_some_and(|v| v == "true")
        && oauth::is_loopback(req)
        && configured(env, req).is_empty()
}

fn login_options(req: &Request, env: &Env) -> LoginOptions {
    LoginOptions {
        providers: configured(env, req).iter().map(|c| c.provider).collect(),
        dev_login: dev_login_enabled(env, req),
    }
}

fn redirect(location: &str, cookies: &[String]) -> worker::Result<Response> {
    let mut response = Response::empty()?.with_status(302);
    let headers = response.headers_mut();
    headers.set("Location", location)?;
    headers.set("Cache-Control", "no-store")?;
    for cookie in cookies {
        headers.append("Set-Cookie", cookie)?;
    }
    Ok(response)
}

fn redirect_uri(req: &Request, provider: Provider) -> worker::Result<String> {
    let url = req.url()?;
    Ok(format!(
        "{}/api/auth/{}/callback",
        url.origin().ascii_serialization(),
        provider.as_str()
    ))
}

fn login_failed(code: LoginError) -> String {
    format!("/?login_error={}", code.as_str())
}

/// `GET /api/auth/<provider>/start`: sets the state cookie and redirects to the provider.
async fn start(req: Request, env: &Env, provider: &str) -> ApiResult {
    let keys = config::session_keys(env)?;
    let Some(config) = Provider::oauth_from_str(provider)
        .and_then(|p| configured(env, &req).into_iter().find(|c| c.provider == p))
    else {
        return Ok(redirect(
            &login_failed(LoginError::ProviderNotConfigured),
            &[],
        )?);
    };
    rate_limit(env, "SESSION_LIMITER", client_ip(&req)).await?;
    let me = session::current_with_keys(&req, env, &keys).await?;
    let (guest_id, account_id, session_id) = match me {
        Some(user) if user.signed_in() => (None, Some(user.user_id), user.session_id),
        Some(user) => (Some(user.user_id), None, None),
        None => (None, None, None),
    };
    let redirect_to = redirect_uri(&req, config.provider)?;
    let (url, state) = oauth::authorize(
        &config,
        &redirect_to,
        now(),
        guest_id,
        account_id,
        session_id,
    )
    .map_err(|e| ApiError::from(worker::Error::RustError(e)))?;
    Ok(redirect(&url, &[state.set_cookie(&keys)])?)
}

/// The largest callback form body read.
const CALLBACK_FORM_MAX_BYTES: usize = 16 * 1024;

/// The callback's parameters: the query (GET) or the form body (Apple's `form_post`).
async fn callback_params(req: &mut Request) -> worker::Result<Vec<(String, String)>> {
    let mut params: Vec<(String, String)> = req.url()?.query_pairs().into_owned().collect();
    if req.method() == Method::Post {
        // Apple's form is a few KB; a larger one is ignored (the callback then fails on its
        // missing state), read with a cap so it is never buffered whole.
        match crate::body::read_capped(req, CALLBACK_FORM_MAX_BYTES).await {
            Ok(body) => params.extend(url::form_urlencoded::parse(&body).into_owned()),
            Err(crate::body::BodyError::TooLarge { .. }) => {}
            Err(crate::body::BodyError::Read(e)) => return Err(e),
        }
    }
    Ok(params)
}

/// `GET|POST /api/auth/<provider>/callback`. Always a redirect: to `/` signed in, or to
/// `/?login_error=<code>`. The state cookie is cleared either way (single use).
async fn callback(mut req: Request, env: &Env, provider: &str) -> Response {
    let result = finish_login(&mut req, env, provider).await;
    let mut cookies = vec![oauth::clear_state_cookie()];
    let location = match result {
        Ok(mut set) => {
            cookies.append(&mut set);
            "/".to_owned()
        }
        Err((code, detail)) => {
            console_error!(
                "{}",
                serde_json::json!({
                    "level": "warn",
                    "event": "login_failed",
                    "provider": provider,
                    "code": code.as_str(),
                    "detail": detail,
                })
            );
            login_failed(code)
        }
    };
    redirect(&location, &cookies)
        .unwrap_or_else(|_| Response::error("internal error", 500).expect("static response"))
}

type LoginResult<T> = Result<T, (LoginError, String)>;

fn internal(e: impl std::fmt::Display) -> (LoginError, String) {
    (LoginError::Internal, e.to_string())
}

async fn finish_login(req: &mut Request, env: &Env, provider: &str) -> LoginResult<Vec<String>> {
    let keys = config::session_keys(env).map_err(internal)?;
    let provider = Provider::oauth_from_str(provider).ok_or((
        LoginError::ProviderNotConfigured,
        format!("unknown provider {provider}"),
    ))?;
    let config = configured(env, req)
        .into_iter()
        .find(|c| c.provider == provider)
        .ok_or((LoginError::ProviderNotConfigured, String::new()))?;
    let params = callback_params(req).await.map_err(internal)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let cookies = req
        .headers()
        .get("Cookie")
        .ok()
        .flatten()
        .unwrap_or_default();
    let state = cookies::cookie_value(&cookies, oauth::STATE_COOKIE)
        .and_then(|cookie| {
            LoginState::open(cookie, &keys, provider, param("state").unwrap_or(""), now())
        })
        .ok_or((
            LoginError::OauthStateMismatch,
            "missing, forged, expired or mismatched state".to_owned(),
        ))?;
    if let Some(error) = param("error") {
        return Err((LoginError::OauthDenied, error.to_owned()));
    }
    let code = param("code").ok_or((LoginError::OauthDenied, "no code".to_owned()))?;
    let redirect_to = redirect_uri(req, provider).map_err(internal)?;
    let identity = oauth::finish(&config, &redirect_to, &state, code, param("user"), now())
        .await
        .map_err(|f| (f.code, f.detail))?;
    // A link completes only for the account that started it, while that session is still
    // signed in: after a sign-out (or a revoke from the devices page) the pending link is
    // dead, so nobody signing in next on this browser links their provider to that account.
    if let Some(account) = &state.account_id {
        let active = match &state.session_id {
            Some(id) => sessions::is_active(env, id, account, now())
                .await
                .map_err(internal)?,
            None => false,
        };
        if !active {
            return Err((
                LoginError::OauthStateMismatch,
                "the account that started this link is no longer signed in".to_owned(),
            ));
        }
    }
    let context = SignInContext {
        guest_id: state.guest_id,
        account_id: state.account_id,
    };
    let user_id = sign_in(env, &identity, &context).await?;
    start_session(req, env, &keys, &user_id)
        .await
        .map_err(internal)
}

async fn sign_in(
    env: &Env,
    identity: &ExternalIdentity,
    context: &SignInContext,
) -> LoginResult<String> {
    match accounts::sign_in(env, identity, context, now())
        .await
        .map_err(internal)?
    {
        SignIn::User(user_id) => {
            if context.guest_id.as_deref() == Some(user_id.as_str()) {
                // The guest's id became this account's: its rooms show the account's profile,
                // and forget the connects they remember of the guest, whose cookie no longer
                // acts (a copy of it must not reconnect on what a room remembers).
                if let Some(profile) = crate::profiles::get(env, &user_id)
                    .await
                    .map_err(internal)?
                {
                    crate::profiles::announce(env, &profile).await;
                }
            }
            Ok(user_id)
        }
        SignIn::Disabled => Err((LoginError::AccountDisabled, String::new())),
    }
}

/// A new session for the user: its cookie, and the guest cookie removed (that id is an account
/// now and no longer acts as a guest).
async fn start_session(
    req: &Request,
    env: &Env,
    keys: &SessionKeys,
    user_id: &str,
) -> worker::Result<Vec<String>> {
    let (token, max_age_ms) = sessions::create(req, env, user_id, now()).await?;
    let mut cookies = vec![sessions::set_cookie(&token, keys, max_age_ms)];
    cookies.extend(cookies::clear_cookies(is_https(req)));
    Ok(cookies)
}

/// `POST /api/auth/local {name}`: signs in to (or creates) the local account with that name.
async fn dev_login(req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    if !dev_login_enabled(env, &req) {
        return Err(fail(
            ErrorCode::Forbidden,
            LoginError::DevLoginDisabled.message(),
        ));
    }
    let keys = config::session_keys(env)?;
    let me = session::current_with_keys(&req, env, &keys).await?;
    let body: DevLogin = read_json_clone(&req).await?;
    let name = limits::validate_display_name(&body.name)?;
    let identity = ExternalIdentity {
        provider: Provider::Local,
        subject: name.to_lowercase(),
        email: None,
        email_verified: false,
        name: name.clone(),
    };
    let context = match me {
        Some(user) if user.signed_in() => SignInContext::default(),
        Some(user) => SignInContext {
            guest_id: Some(user.user_id),
            account_id: None,
        },
        None => SignInContext::default(),
    };
    let user_id = sign_in(env, &identity, &context)
        .await
        .map_err(|(code, detail)| {
            if code == LoginError::AccountDisabled {
                fail(ErrorCode::Forbidden, code.message())
            } else {
                ApiError::from(worker::Error::RustError(detail))
            }
        })?;
    let cookies = start_session(&req, env, &keys, &user_id).await?;
    let providers = accounts::providers(env, &user_id).await?;
    let mut response = json(
        &SessionInfo {
            user_id: user_id.clone(),
            // An existing local account keeps the name it has.
            name: accounts::name(env, &user_id).await?.unwrap_or(name),
            signed_in: true,
            providers,
        },
        200,
    )?;
    for cookie in cookies {
        response.headers_mut().append("Set-Cookie", &cookie)?;
    }
    Ok(response)
}

async fn read_json_clone<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    read_json(req.clone()?).await
}

async fn require_account(req: &Request, env: &Env) -> Result<(SessionUser, String), ApiError> {
    match session::current(req, env).await? {
        Some(user) => match user.session_id.clone() {
            Some(id) => Ok((user, id)),
            None => Err(fail(
                ErrorCode::Unauthorized,
                "Sign in to see and manage your devices.",
            )),
        },
        None => Err(fail(ErrorCode::Unauthorized, "Sign in first.")),
    }
}

async fn list_sessions(req: &Request, env: &Env) -> ApiResult {
    let (user, current) = require_account(req, env).await?;
    let sessions = sessions::list(env, &user.user_id, &current, now()).await?;
    Ok(json(&DeviceList { sessions }, 200)?)
}

async fn revoke_one(req: &Request, env: &Env, id: &str) -> ApiResult {
    check_origin(req, false)?;
    let (user, _) = require_account(req, env).await?;
    if sessions::revoke(env, &user.user_id, id, now()).await? {
        Ok(json(&Revoked { revoked: 1 }, 200)?)
    } else {
        Err(fail(
            ErrorCode::NotFound,
            "No such active session on this account.",
        ))
    }
}

/// `DELETE /api/auth/identities/<provider>`: unlinks a provider from the signed-in account
/// (never its last one). Answers with the session as it now is.
async fn unlink(req: &Request, env: &Env, provider: &str) -> ApiResult {
    check_origin(req, false)?;
    let (user, _) = require_account(req, env).await?;
    let provider = shared::auth::provider_named(provider)
        .ok_or_else(|| fail(ErrorCode::NotFound, format!("No provider {provider:?}.")))?;
    let linked = accounts::providers(env, &user.user_id).await?;
    shared::auth::check_unlink(&linked, provider).map_err(|e| fail(e.code, e.message))?;
    accounts::unlink(env, &user.user_id, provider).await?;
    crate::profiles::audit(
        env,
        &shared::moderation::AuditEntry {
            id: 0,
            at: now(),
            actor_id: user.user_id.clone(),
            actor_name: user.name.clone(),
            action: "unlink_provider".into(),
            target_id: Some(user.user_id.clone()),
            detail: provider.as_str().into(),
        },
    )
    .await?;
    let providers = accounts::providers(env, &user.user_id).await?;
    Ok(json(
        &SessionInfo {
            user_id: user.user_id.clone(),
            name: user.name.clone(),
            signed_in: true,
            providers,
        },
        200,
    )?)
}

async fn revoke_others(req: &Request, env: &Env) -> ApiResult {
    check_origin(req, false)?;
    let (user, current) = require_account(req, env).await?;
    let revoked = sessions::revoke_others(env, &user.user_id, &current, now()).await?;
    Ok(json(&Revoked { revoked }, 200)?)
}

/// Signs out: ends the current session (closing its sockets) and clears both cookies.
pub(crate) async fn sign_out(req: &Request, env: &Env) -> ApiResult {
    check_origin(req, false)?;
    let keys = config::session_keys(env)?;
    if let Some(user) = session::current_with_keys(req, env, &keys).await? {
        if let Some(id) = &user.session_id {
            sessions::revoke(env, &user.user_id, id, now()).await?;
        }
    }
    // The guest session too (also when an account was signed in beside it): a copy of the
    // cookie must not outlive signing out.
    if let Some(guest) = guests::from_request(req, env, &keys, now()) {
        if !guest.sid.is_empty() {
            let expires_at = guest.expires_at(guests::lifetime_seconds(env));
            guests::revoke(env, &guest.uid, &guest.sid, expires_at, now()).await?;
            guests::close_sockets(env, &guest.uid, &guest.sid).await?;
        }
    }
    let mut response = Response::empty()?.with_status(204);
    let headers = response.headers_mut();
    headers.append("Set-Cookie", &sessions::clear_cookie())?;
    // A login or link started before signing out must not finish after it.
    headers.append("Set-Cookie", &oauth::clear_state_cookie())?;
    for cleared in cookies::clear_cookies(is_https(req)) {
        headers.append("Set-Cookie", &cleared)?;
    }
    Ok(response)
}
