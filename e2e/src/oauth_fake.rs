//! A real OAuth 2.0 / OpenID Connect authorization server on loopback that stands in for GitHub,
//! Google, Apple and Discord, with each one's token and profile shapes. The Worker reaches it
//! through `OAUTH_TEST_ENDPOINTS=<base>`: `<base>/<provider>/authorize`, `/token`, GitHub's
//! `/user` and `/user/emails`, Discord's `/users/@me`, and ID tokens issued by `<base>/<provider>`.
//!
//! Like a real provider it checks what matters to the flow's security, and records every refusal
//! so tests can assert *why* a login failed: the client id and secret, the exact redirect URI,
//! single-use codes, and the PKCE verifier against the S256 challenge. The person "consenting" is
//! chosen by the test per authorization request (the `X-Fake-User` header the test's browser
//! adds), so tests can share one fake.
//!
//! Plain HTTP/1.1, one request per connection: enough for the Worker's fetch and reqwest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// The header on the authorization request that says who consents.
pub const USER_HEADER: &str = "X-Fake-User";
/// The header that makes the person decline instead.
pub const DENY_HEADER: &str = "X-Fake-Deny";

/// The client secret the fake expects for a provider (`<provider>-secret`).
pub fn client_secret(provider: &str) -> String {
    format!("{provider}-secret")
}

/// The client id the fake expects for a provider (`<provider>-client`).
pub fn client_id(provider: &str) -> String {
    format!("{provider}-client")
}

/// The Apple developer team id the fake expects in Apple client secrets.
pub const APPLE_TEAM: &str = "TEAMFAKE01";

/// Someone with an account at the fake provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeUser {
    /// The provider's stable id for them.
    pub subject: String,
    /// Display name.
    pub name: String,
    /// Email, if they share one.
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub email_verified: bool,
    /// Their ID tokens carry a signature the published key does not verify (a forgery).
    #[serde(default)]
    pub forged: bool,
}

impl FakeUser {
    /// A user with a fresh subject and a verified email.
    pub fn verified(name: &str, email: &str) -> FakeUser {
        FakeUser {
            // Decimal, so it also fits GitHub's numeric ids.
            subject: u64::from_str_radix(&crate::random_hex(6), 16)
                .unwrap_or_default()
                .to_string(),
            name: name.to_owned(),
            email: Some(email.to_owned()),
            email_verified: true,
            forged: false,
        }
    }

    /// The same person, whose ID tokens are signed by someone else's key.
    pub fn forged(mut self) -> FakeUser {
        self.forged = true;
        self
    }

    /// The same person, with an unverified email.
    pub fn unverified(mut self) -> FakeUser {
        self.email_verified = false;
        self
    }
}

struct Grant {
    provider: String,
    user: FakeUser,
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    used: bool,
}

#[derive(Default)]
struct State {
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, FakeUser>,
    refusals: Vec<String>,
}

/// The running fake. It serves from its own thread and runtime, so one fake can outlive the
/// test (and its runtime) that started it, like the shared dev server; it stops with the process.
pub struct OAuthFake {
    base: String,
    state: Arc<Mutex<State>>,
}

impl OAuthFake {
    /// Starts on a free loopback port.
    pub fn start() -> Result<OAuthFake> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        {
            let (state, base) = (Arc::clone(&state), base.clone());
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        let (state, base) = (Arc::clone(&state), base.clone());
                        tokio::spawn(async move {
                            let _ = serve(stream, &state, &base).await;
                        });
                    }
                });
            });
        }
        Ok(OAuthFake { base, state })
    }

    /// The base URL (the Worker's `OAUTH_TEST_ENDPOINTS`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Why token requests were refused so far ("code already used", "PKCE verifier …").
    pub fn refusals(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.refusals.clone())
            .unwrap_or_default()
    }
}

struct HttpRequest {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<HttpRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the request head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        anyhow::ensure!(buf.len() < 64 * 1024, "request head too large");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the body");
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    Ok(HttpRequest {
        method,
        path,
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        headers,
        body,
    })
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn json_response(status: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

fn redirect(location: String) -> HttpResponse {
    HttpResponse {
        status: 302,
        headers: vec![("Location".into(), location)],
        body: String::new(),
    }
}

async fn serve(mut stream: TcpStream, state: &Mutex<State>, base: &str) -> Result {
    let request = read_request(&mut stream).await?;
    let response = handle(&request, state, base);
    let reason = match response.status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.body.len(),
        response.body
    ));
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await.context("closing")?;
    Ok(())
}

fn handle(request: &HttpRequest, state: &Mutex<State>, base: &str) -> HttpResponse {
    let segments: Vec<&str> = request
        .path
        .trim_start_matches('/')
        .splitn(2, '/')
        .collect();
    let (provider, rest) = match segments.as_slice() {
        [p, rest] => (*p, *rest),
        _ => return json_response(404, serde_json::json!({"error": "not_found"})),
    };
    let Ok(mut state) = state.lock() else {
        return json_response(500, serde_json::json!({"error": "poisoned"}));
    };
    match (request.method.as_str(), rest) {
        ("GET", "authorize") => authorize(request, &mut state, provider),
        ("GET", "jwks") => json_response(200, jwks()),
        ("POST", "token") => token(request, &mut state, provider, base),
        ("GET", "user") if provider == "github" => with_user(request, &state, |u| {
            serde_json::json!({
                "id": u.subject.parse::<u64>().ok(),
                "login": u.name.to_lowercase().replace(' ', "-"),
                "name": u.name,
            })
        }),
        ("GET", "user/emails") if provider == "github" => {
            with_user(request, &state, |u| {
                serde_json::json!(u.email.iter().map(|e| serde_json::json!({
                "email": e, "primary": true, "verified": u.email_verified, "visibility": null,
            })).collect::<Vec<_>>())
            })
        }
        ("GET", "users/@me") if provider == "discord" => with_user(request, &state, |u| {
            serde_json::json!({
                "id": u.subject,
                "username": u.name.to_lowercase().replace(' ', "_"),
                "global_name": u.name,
                "email": u.email,
                "verified": u.email_verified,
            })
        }),
        _ => json_response(404, serde_json::json!({"error": "not_found"})),
    }
}

fn authorize(request: &HttpRequest, state: &mut State, provider: &str) -> HttpResponse {
    let q = &request.query;
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let with = |params: &[(&str, &str)]| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        redirect(format!("{redirect_uri}?{query}"))
    };
    if get("client_id") != client_id(provider)
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || redirect_uri.is_empty()
    {
        state
            .refusals
            .push(format!("bad authorization request: {:?}", request.query));
        return json_response(400, serde_json::json!({"error": "invalid_request"}));
    }
    if request.header(DENY_HEADER).is_some() {
        return with(&[("error", "access_denied"), ("state", &get("state"))]);
    }
    let Some(user) = request
        .header(USER_HEADER)
        .and_then(|h| serde_json::from_str::<FakeUser>(h).ok())
    else {
        return json_response(400, serde_json::json!({"error": "no X-Fake-User"}));
    };
    let code = crate::random_hex(16);
    state.grants.insert(
        code.clone(),
        Grant {
            provider: provider.to_owned(),
            user,
            challenge: get("code_challenge"),
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            used: false,
        },
    );
    with(&[("code", &code), ("state", &get("state"))])
}

fn token(request: &HttpRequest, state: &mut State, provider: &str, base: &str) -> HttpResponse {
    let form = request.form();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let refuse = |state: &mut State, why: String| {
        state.refusals.push(why);
        json_response(400, serde_json::json!({"error": "invalid_grant"}))
    };
    if get("grant_type") != "authorization_code" || get("client_id") != client_id(provider) {
        return refuse(state, format!("bad token request: {form:?}"));
    }
    let secret_ok = if provider == "apple" {
        apple_secret_ok(&get("client_secret"))
    } else {
        get("client_secret") == client_secret(provider)
    };
    if !secret_ok {
        return refuse(state, "wrong client secret".into());
    }
    let code = get("code");
    let Some(grant) = state.grants.get_mut(&code) else {
        return refuse(state, "unknown code".into());
    };
    if grant.used {
        return refuse(state, "code already used".into());
    }
    // Like real providers, a code is spent by any attempt to redeem it.
    grant.used = true;
    if grant.provider != provider {
        return refuse(state, "code issued to another provider".into());
    }
    if grant.redirect_uri != get("redirect_uri") {
        return refuse(
            state,
            "redirect_uri differs from the authorization request".into(),
        );
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return refuse(state, "PKCE verifier does not match the challenge".into());
    }
    let (user, nonce) = (grant.user.clone(), grant.nonce.clone());
    let access = crate::random_hex(16);
    state.tokens.insert(access.clone(), user.clone());
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": 3600,
    });
    if provider == "google" || provider == "apple" {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "iss": format!("{base}/{provider}"),
            "aud": client_id(provider),
            "sub": user.subject,
            "iat": now,
            "exp": now + 600,
            "nonce": nonce,
            "email": user.email,
            // Apple writes its booleans as strings.
            "email_verified": if provider == "apple" {
                serde_json::json!(user.email_verified.to_string())
            } else {
                serde_json::json!(user.email_verified)
            },
            "name": if provider == "google" { Some(user.name.clone()) } else { None },
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"fake"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let mut signature = signing_key().sign(signed.as_bytes()).to_vec();
        if user.forged {
            signature[0] ^= 0x01;
        }
        body["id_token"] = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)).into();
    }
    json_response(200, body)
}

/// The fake's ID token signing key (a test key, committed on purpose).
fn signing_key() -> rsa::pkcs1v15::SigningKey<Sha256> {
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("keys/fake_idp_rsa.pem"))
            .expect("the committed test key parses")
    });
    rsa::pkcs1v15::SigningKey::new(key.clone())
}

/// The published key set (JWKS) with the signing key's public half.
fn jwks() -> serde_json::Value {
    let key = signing_key();
    let public = key.as_ref().to_public_key();
    serde_json::json!({
        "keys": [{
            "kty": "RSA",
            "kid": "fake",
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]
    })
}

/// Apple's client secret: an ES256 JWT from the team for our client id, with Apple's audience.
/// (The signature itself is checked by the edge crate's unit test against the public key.)
fn apple_secret_ok(secret: &str) -> bool {
    let parts: Vec<&str> = secret.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return false;
    };
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(header), decode(claims)) else {
        return false;
    };
    header["alg"] == "ES256"
        && claims["iss"] == APPLE_TEAM
        && claims["sub"] == client_id("apple").as_str()
        && claims["aud"] == "https://appleid.apple.com"
        && URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|s| s.len() == 64)
}

fn with_user(
    request: &HttpRequest,
    state: &State,
    body: impl Fn(&FakeUser) -> serde_json::Value,
) -> HttpResponse {
    let user = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.get(t));
    match user {
        Some(user) => json_response(200, body(user)),
        None => json_response(401, serde_json::json!({"message": "Bad credentials"})),
    }
}
