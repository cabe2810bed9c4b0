//! A scripted browser for sign-in flows: it follows the redirects between the Worker and the
//! provider fake by hand, so a test can stop at any step (tamper with `state`, replay a code),
//! and keeps the Worker's cookies itself.
//!
//! Cookies are kept by hand because the session cookie is `__Host-…; Secure`, and an HTTP
//! client's cookie store does not send Secure cookies over http://127.0.0.1 (browsers treat
//! localhost as a secure context; reqwest does not).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use shared::auth::{DeviceList, LoginOptions};
use shared::protocol::http::SessionInfo;

use crate::client::{Session, DEFAULT_TIMEOUT};
use crate::oauth_fake::{FakeUser, DENY_HEADER, USER_HEADER};
use crate::server::DevServer;
use crate::Result;

/// The signed-in session cookie.
pub const SESSION_COOKIE: &str = "__Host-dc_sid";
/// The OAuth state cookie.
pub const STATE_COOKIE: &str = "__Host-dc_oauth";

/// One browser: a cookie jar for the Worker's origin.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    origin: String,
    port: u16,
    /// The cookies the Worker set, by name.
    pub cookies: BTreeMap<String, String>,
    /// The `Set-Cookie` headers of the Worker's last response, as sent.
    pub last_set_cookies: Vec<String>,
}

/// Where a provider sent the browser back to: the Worker's callback with its parameters.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The callback path (`/api/auth/<provider>/callback`).
    pub path: String,
    /// Its query parameters (`code`, `state`, or `error`).
    pub params: Vec<(String, String)>,
}

impl Callback {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The same callback with one parameter replaced.
    pub fn with(mut self, name: &str, value: &str) -> Callback {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new(server: &DevServer) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(DEFAULT_TIMEOUT)
                // As `client::http`: no connection outlives the test runtime that opened it.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap_or_default(),
            base: server.url(),
            origin: server.origin(),
            port: server.port(),
            cookies: BTreeMap::new(),
            last_set_cookies: Vec::new(),
        }
    }

    /// A browser holding a guest's cookie.
    pub fn with_guest(server: &DevServer, guest: &Session) -> Browser {
        let mut browser = Browser::new(server);
        browser.take_cookie_header(guest.cookie());
        browser
    }

    /// A browser holding the cookies of a `Cookie` header (a copy another browser kept).
    pub fn with_cookies(server: &DevServer, header: &str) -> Browser {
        let mut browser = Browser::new(server);
        browser.take_cookie_header(header);
        browser
    }

    fn take_cookie_header(&mut self, header: &str) {
        for pair in header.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    /// The `Cookie` header this browser sends to the Worker.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the browser holds a cookie.
    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    fn store(&mut self, headers: &HeaderMap) {
        self.last_set_cookies.clear();
        for value in headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            self.last_set_cookies.push(value.to_owned());
            let mut attrs = value.split(';');
            let Some((name, val)) = attrs.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let expired = attrs.any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"));
            if expired || val.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), val.to_owned());
            }
        }
    }

    /// A request to the Worker with this browser's cookies and the site's Origin.
    pub async fn request(
        &mut self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header("Origin", &self.origin)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        self.store(response.headers());
        Ok(response)
    }

    /// A JSON `POST` to the Worker with this browser's cookies and the site's Origin.
    pub async fn http_post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header("Origin", &self.origin)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        self.store(response.headers());
        Ok(response)
    }

    /// `GET /api/auth/providers`.
    pub async fn login_options(&mut self) -> Result<LoginOptions> {
        let response = self
            .request(reqwest::Method::GET, "/api/auth/providers")
            .await?;
        Ok(response.json().await?)
    }

    /// Starts a login: `GET /api/auth/<provider>/start`, which must redirect to the provider.
    /// Returns the provider's authorization URL.
    pub async fn start(&mut self, provider: &str) -> Result<String> {
        let response = self
            .request(reqwest::Method::GET, &format!("/api/auth/{provider}/start"))
            .await?;
        location(&response, 302)
    }

    /// At the provider: `user` consents (or, with `None`, declines). Returns where the provider
    /// sends the browser back to.
    pub async fn consent(&self, authorize_url: &str, user: Option<&FakeUser>) -> Result<Callback> {
        let mut request = self.http.get(authorize_url);
        request = match user {
            Some(user) => request.header(USER_HEADER, serde_json::to_string(user)?),
            None => request.header(DENY_HEADER, "1"),
        };
        let response = request.send().await.context("GET the fake's authorize")?;
        let back = url::Url::parse(&location(&response, 302)?)?;
        if back.port() != Some(self.port) {
            bail!("the provider redirected to {back}, not to this Worker");
        }
        Ok(Callback {
            path: back.path().to_owned(),
            params: back.query_pairs().into_owned().collect(),
        })
    }

    /// Returns to the Worker's callback (a GET, or for Apple a form POST as Apple's
    /// `form_post` does). Returns where the Worker then redirects (`/` or `/?login_error=…`).
    pub async fn finish(&mut self, callback: &Callback) -> Result<String> {
        let url = format!("{}{}", self.base, callback.path);
        let request = if callback.path.contains("/apple/") {
            // A cross-site POST from appleid.apple.com: its Origin is not ours.
            self.http
                .post(&url)
                .header("Origin", "https://appleid.apple.com")
                .form(&callback.params)
        } else {
            self.http.get(&url).query(&callback.params)
        };
        let response = request
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .context("the Worker's callback")?;
        self.store(response.headers());
        location(&response, 302)
    }

    /// A whole successful login with `provider` as `user`; fails unless it lands on `/`.
    pub async fn login(&mut self, provider: &str, user: &FakeUser) -> Result<SessionInfo> {
        let authorize = self.start(provider).await?;
        let callback = self.consent(&authorize, Some(user)).await?;
        let landed = self.finish(&callback).await?;
        if landed != "/" {
            bail!("the {provider} login ended at {landed}");
        }
        self.session_info().await
    }

    /// `GET /api/session`, expecting 200.
    pub async fn session_info(&mut self) -> Result<SessionInfo> {
        let response = self.request(reqwest::Method::GET, "/api/session").await?;
        let status = response.status().as_u16();
        if status != 200 {
            bail!(
                "GET /api/session answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }

    /// `GET /api/sessions`, expecting 200.
    pub async fn devices(&mut self) -> Result<DeviceList> {
        let response = self.request(reqwest::Method::GET, "/api/sessions").await?;
        let status = response.status().as_u16();
        if status != 200 {
            bail!(
                "GET /api/sessions answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }

    /// This browser as a [`Session`] of the API client (for rooms and sockets).
    pub async fn session(&mut self, server: &DevServer) -> Result<Session> {
        Session::from_cookie(server, &self.cookie_header()).await
    }
}

/// Signs in the dev server's local account `name` (a server started with `DEV_LOGIN=true`) and
/// returns it as an API session.
pub async fn local_account(server: &DevServer, name: &str) -> Result<Session> {
    let mut browser = Browser::new(server);
    let response = browser
        .http_post_json("/api/auth/local", &serde_json::json!({ "name": name }))
        .await?;
    if response.status().as_u16() != 200 {
        bail!("local login answered {}", response.status());
    }
    browser.session(server).await
}

/// The `Location` of a redirect with the expected status.
pub fn location(response: &reqwest::Response, status: u16) -> Result<String> {
    let got = response.status().as_u16();
    if got != status {
        bail!("expected a {status} redirect, got {got}");
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("a {got} without a Location"))
}
