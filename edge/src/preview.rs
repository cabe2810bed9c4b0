//! Link previews (issue 11): the Worker fetches a linked page for the app, so the browser never
//! contacts a third party (the app's CSP stays `img-src 'self'`).
//!
//! - `GET /api/preview?url=<link>`: what the page says about itself ([`LinkPreview`]), or 204
//!   when it says nothing (no title, no description, not HTML).
//! - `GET /api/preview/image?url=<image>`: the image of a cached preview, fetched and served
//!   from this origin; any other URL is `not_found` (never an open proxy).
//!
//! Every fetch is one the SSRF rules allow ([`ssrf::check`]): redirects are followed by hand
//! (at most [`ssrf::MAX_REDIRECTS`]) and each `Location` is checked again; the whole fetch,
//! redirects and body, is aborted after [`ssrf::TIMEOUT_MS`]; a page's body is read up to
//! [`ssrf::MAX_BODY_BYTES`] and the rest is never downloaded; an image over [`IMAGE_MAX_BYTES`]
//! is refused, and it must be a raster image by its bytes ([`sniff`]), whatever it claims.
//!
//! Answers are cached in D1 (`link_previews`, migrations/0007): a page for 24 h, a failure for
//! 10 min, so a link in a busy room costs the linked site one request, and a dead link is not
//! fetched again by every reader who scrolls past it.
//!
//! Tests reach a fake site on 127.0.0.1 through `PREVIEW_LOOPBACK=true`, which is honoured only
//! for requests addressed to localhost (like `DEV_LOGIN`) and is never set by `./scripts/dev`
//! or wrangler.toml.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use shared::error::{ChatError, ErrorCode};
use shared::media::preview::{self, PagePreview};
use shared::media::sniff::{self, Sniffed};
use shared::media::ssrf::{self, Policy, Refusal};
use shared::media::Kind;
use shared::protocol::http::{ErrorBody, LinkPreview};
use url::Url;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_log, AbortController, AbortSignal, Delay, Env, Fetch, Headers, Method, Request,
    RequestInit, RequestRedirect, Response,
};

use crate::config;
use crate::http::{fail, json, query_param, rate_limit, ApiError, ApiResult};
use crate::session::{self, SessionUser};
use crate::time::now;

/// The rate-limiting binding that bounds each user's preview requests (wrangler.toml).
const LIMITER: &str = "PREVIEW_LIMITER";
/// The largest preview image fetched and served.
pub const IMAGE_MAX_BYTES: usize = 2 * 1024 * 1024;
/// How long a page's preview (or its absence) is served from the cache.
const FRESH_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a failure is served from the cache.
const FAILURE_FRESH_MS: i64 = 10 * 60 * 1000;
/// How long the browser may keep a preview or an image (private: only this user's browser).
const BROWSER_CACHE: &str = "private, max-age=86400";
/// Who is fetching, for the linked site's logs.
const USER_AGENT: &str = "DurableChatBot/1.0 (link previews; fetches a page once for a chat)";

/// What both routes check first: a session, its rate, and a `url` this Worker may fetch.
/// Returns the URL as asked, as checked, and the policy its redirects are checked under.
async fn checked(
    req: &Request,
    env: &Env,
) -> Result<(String, ssrf::Target, ssrf::Policy), ApiError> {
    let user = require_user(req, env).await?;
    rate_limit(env, LIMITER, user.user_id).await?;
    let raw = url_param(req)?;
    let policy = policy(env, req);
    let target = ssrf::check(&raw, policy).map_err(|r| refused(&r, false))?;
    Ok((raw, target, policy))
}

/// `GET /api/preview?url=`.
pub(crate) async fn page(req: &Request, env: &Env) -> ApiResult {
    let (raw, target, policy) = checked(req, env).await?;
    let key = target.url.as_str().to_owned();
    let db = env.d1("DB")?;
    let cached = db
        .prepare("SELECT status, body, fetched_at FROM link_previews WHERE url = ?1")
        .bind(&[key.as_str().into()])?
        .first::<CachedRow>(None)
        .await?;
    let outcome = match cached.and_then(|row| row.fresh(now())) {
        Some(outcome) => outcome,
        None => {
            let outcome = match fetch_page(target.url, policy).await {
                Ok(Some(found)) if found.title.is_some() || found.description.is_some() => {
                    Outcome::Preview(found)
                }
                Ok(_) => Outcome::Nothing,
                Err(failed) => {
                    log_failure("page", &key, &failed);
                    Outcome::Failed(failed.into_error())
                }
            };
            if let Err(e) = store(&db, &key, &outcome, now()).await {
                // The answer stands; the next reader fetches again.
                console_log!("link preview of {key} not cached: {e}");
            }
            outcome
        }
    };
    match outcome {
        Outcome::Preview(found) => {
            let mut response = json(&link_preview(raw, found), 200)?;
            response.headers_mut().set("Cache-Control", BROWSER_CACHE)?;
            Ok(response)
        }
        Outcome::Nothing => {
            let mut response = Response::empty()?.with_status(204);
            response.headers_mut().set("Cache-Control", BROWSER_CACHE)?;
            Ok(response)
        }
        Outcome::Failed(error) => Err(error.into()),
    }
}

/// `GET /api/preview/image?url=`.
pub(crate) async fn image(req: &Request, env: &Env) -> ApiResult {
    let (_, target, policy) = checked(req, env).await?;
    let key = target.url.as_str().to_owned();
    // Only the image of a page someone previewed: otherwise this route would fetch anything
    // for anyone, with this server's address.
    let known = env
        .d1("DB")?
        .prepare("SELECT 1 AS known FROM link_previews WHERE image = ?1 AND status = 200 LIMIT 1")
        .bind(&[key.as_str().into()])?
        .first::<f64>(Some("known"))
        .await?
        .is_some();
    if !known {
        return Err(fail(
            ErrorCode::NotFound,
            "That image belongs to no link preview.",
        ));
    }
    let (sniffed, bytes) = fetch_image(target.url, policy).await.map_err(|failed| {
        log_failure("image", &key, &failed);
        ApiError::from(failed.into_error())
    })?;
    let mut response = Response::from_bytes(bytes)?;
    let headers = response.headers_mut();
    headers.set("Content-Type", sniffed.mime)?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    // Should the bytes ever be opened as a document, they run nothing and load nothing.
    headers.set("Content-Security-Policy", "sandbox; default-src 'none'")?;
    headers.set("Cache-Control", BROWSER_CACHE)?;
    Ok(response)
}

async fn require_user(req: &Request, env: &Env) -> Result<SessionUser, ApiError> {
    session::current(req, env).await?.ok_or_else(|| {
        fail(
            ErrorCode::Unauthorized,
            "Sign in or choose a display name first (no valid session).",
        )
    })
}

fn url_param(req: &Request) -> Result<String, ApiError> {
    query_param(req, "url")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| fail(ErrorCode::InvalidInput, "Give ?url=<the link>."))
}

/// What may be fetched: the public internet, plus loopback for the tests' fake site when
/// `PREVIEW_LOOPBACK` is on and the request itself came to localhost.
fn policy(env: &Env, req: &Request) -> Policy {
    policy_for(
        config::preview_loopback(env),
        crate::auth::oauth::is_loopback(req),
    )
}

fn policy_for(switch_on: bool, request_to_localhost: bool) -> Policy {
    Policy {
        allow_loopback: switch_on && request_to_localhost,
    }
}

/// A refused URL as the API's error, with the refusal's own words.
fn refused(refusal: &Refusal, redirected: bool) -> ChatError {
    let reason = refusal.to_string();
    let message = if redirected {
        format!("The link redirects somewhere it may not: {reason}.")
    } else {
        let mut chars = reason.chars();
        match chars.next() {
            Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
            None => "The link gets no preview.".to_owned(),
        }
    };
    ChatError::new(ErrorCode::UrlRefused, message)
}

/// The page's preview as the app gets it: its image as a path on this origin.
fn link_preview(url: String, found: PagePreview) -> LinkPreview {
    LinkPreview {
        url,
        title: found.title,
        description: found.description,
        site_name: found.site_name,
        image: found.image.as_deref().map(image_path),
    }
}

/// `/api/preview/image?url=<the image's URL, encoded>`.
fn image_path(image: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(image.as_bytes()).collect();
    format!("/api/preview/image?url={encoded}")
}

/// What a preview request answers, fresh or from the cache.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 200 with the preview.
    Preview(PagePreview),
    /// 204: the page says nothing a preview could show.
    Nothing,
    /// The fetch failed (or was refused on a redirect).
    Failed(ChatError),
}

/// A row of `link_previews`.
#[derive(serde::Deserialize)]
struct CachedRow {
    status: f64,
    body: Option<String>,
    fetched_at: f64,
}

impl CachedRow {
    /// The cached answer, if it is still fresh and readable.
    fn fresh(self, now: i64) -> Option<Outcome> {
        let status = self.status as u16;
        let age = now - self.fetched_at as i64;
        let ttl = if matches!(status, 200 | 204) {
            FRESH_MS
        } else {
            FAILURE_FRESH_MS
        };
        if age >= ttl {
            return None;
        }
        match status {
            200 => Some(Outcome::Preview(parse_json(self.body.as_deref())?)),
            204 => Some(Outcome::Nothing),
            _ => {
                let body: ErrorBody = parse_json(self.body.as_deref())?;
                Some(Outcome::Failed(ChatError::new(body.code, body.message)))
            }
        }
    }
}

fn parse_json<T: DeserializeOwned>(body: Option<&str>) -> Option<T> {
    serde_json::from_str(body?).ok()
}

/// The row that caches an outcome: (status, body, image).
fn row_of(outcome: &Outcome) -> (u16, Option<String>, Option<String>) {
    match outcome {
        Outcome::Preview(found) => (200, serde_json::to_string(found).ok(), found.image.clone()),
        Outcome::Nothing => (204, None, None),
        Outcome::Failed(error) => (
            error.code.http_status(),
            serde_json::to_string(&ErrorBody {
                code: error.code,
                message: error.message.clone(),
            })
            .ok(),
            None,
        ),
    }
}

/// Caches an outcome, and drops the rows no one may be served any more (bounded by the
/// index on `fetched_at`; done on a miss only, which is when the table grows).
async fn store(
    db: &worker::D1Database,
    key: &str,
    outcome: &Outcome,
    at: i64,
) -> worker::Result<()> {
    let (status, body, image) = row_of(outcome);
    let text = |v: Option<String>| v.map_or(JsValue::NULL, |v| JsValue::from(v.as_str()));
    let upsert = db
        .prepare(
            "INSERT INTO link_previews (url, fetched_at, status, body, image)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (url) DO UPDATE SET fetched_at = excluded.fetched_at,
               status = excluded.status, body = excluded.body, image = excluded.image",
        )
        .bind(&[
            key.into(),
            (at as f64).into(),
            f64::from(status).into(),
            text(body),
            text(image),
        ])?;
    let prune = db
        .prepare("DELETE FROM link_previews WHERE fetched_at < ?1")
        .bind(&[((at - FRESH_MS) as f64).into()])?;
    db.batch(vec![upsert, prune]).await?;
    Ok(())
}

/// Why a fetch gave nothing.
#[derive(Debug)]
enum Failed {
    /// A redirect to a URL the rules refuse.
    Redirected(Refusal),
    /// More than [`ssrf::MAX_REDIRECTS`] redirects.
    TooManyRedirects,
    /// Nothing (or not all of it) within [`ssrf::TIMEOUT_MS`].
    Timeout,
    /// The site answered with an error status (or a redirect without a `Location`).
    Status(u16),
    /// The fetch itself failed (DNS, connection, a broken body); the detail is for the log.
    Unreachable(String),
    /// An image larger than [`IMAGE_MAX_BYTES`].
    TooLarge,
    /// An image whose bytes are no raster image.
    NotAnImage,
}

impl Failed {
    /// What the log gets.
    fn detail(&self) -> String {
        match self {
            Failed::Unreachable(detail) => detail.clone(),
            other => format!("{other:?}"),
        }
    }

    /// As the API's error. The linked site's failures are `preview_unavailable` (the detail
    /// goes to the log, not to the reader).
    fn into_error(self) -> ChatError {
        match self {
            Failed::Redirected(refusal) => refused(&refusal, true),
            Failed::TooManyRedirects => ChatError::new(
                ErrorCode::PreviewUnavailable,
                format!(
                    "The linked page redirects more than {} times.",
                    ssrf::MAX_REDIRECTS
                ),
            ),
            Failed::Timeout => ChatError::new(
                ErrorCode::PreviewUnavailable,
                format!(
                    "The linked page did not answer within {} seconds.",
                    ssrf::TIMEOUT_MS / 1000
                ),
            ),
            Failed::Status(status) => ChatError::new(
                ErrorCode::PreviewUnavailable,
                format!("The linked page answered with an error ({status})."),
            ),
            Failed::Unreachable(_) => ChatError::new(
                ErrorCode::PreviewUnavailable,
                "The linked page could not be reached.",
            ),
            Failed::TooLarge => ChatError::new(
                ErrorCode::TooLarge,
                format!(
                    "The preview's image is larger than {} MB.",
                    IMAGE_MAX_BYTES / (1024 * 1024)
                ),
            ),
            Failed::NotAnImage => ChatError::new(
                ErrorCode::UnsupportedMedia,
                "The preview's image is not a PNG, JPEG, WebP, GIF or AVIF image.",
            ),
        }
    }
}

/// One structured log line per failed fetch (the reader sees only the code and a sentence).
fn log_failure(what: &str, url: &str, failed: &Failed) {
    console_log!(
        "{}",
        serde_json::json!({
            "event": "preview_failed",
            "what": what,
            "url": url,
            "detail": failed.detail(),
        })
    );
}

/// The page's preview: `None` when it is not HTML (nothing to read).
async fn fetch_page(url: Url, policy: Policy) -> Result<Option<PagePreview>, Failed> {
    within_timeout(|signal| async move {
        let (url, mut response) = follow(url, policy, "text/html", &signal).await?;
        if !is_html(&header(&response, "Content-Type")) {
            return Ok(None);
        }
        let body = read_body(&mut response, ssrf::MAX_BODY_BYTES, Over::Truncate).await?;
        Ok(Some(preview::parse(&String::from_utf8_lossy(&body), &url)))
    })
    .await
}

/// The image's bytes and what they are: a raster image, at most [`IMAGE_MAX_BYTES`].
async fn fetch_image(url: Url, policy: Policy) -> Result<(Sniffed, Vec<u8>), Failed> {
    within_timeout(|signal| async move {
        let (_, mut response) = follow(url, policy, "image/*", &signal).await?;
        let bytes = read_body(&mut response, IMAGE_MAX_BYTES, Over::Refuse).await?;
        // By its bytes, never by the Content-Type the site claims (an SVG can run script).
        let sniffed = sniff::sniff(&bytes);
        if sniffed.kind != Kind::Image {
            return Err(Failed::NotAnImage);
        }
        Ok((sniffed, bytes))
    })
    .await
}

/// Runs a fetch with [`ssrf::TIMEOUT_MS`] for all of it (redirects and body): past it, or
/// once it is done, the fetch is aborted, which also stops a body read only in part.
async fn within_timeout<T, F, Fut>(work: F) -> Result<T, Failed>
where
    F: FnOnce(AbortSignal) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    let controller = AbortController::default();
    let timer = Delay::from(Duration::from_millis(ssrf::TIMEOUT_MS));
    let outcome = match select(Box::pin(work(controller.signal())), timer).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err(Failed::Timeout),
    };
    controller.abort();
    outcome
}

/// GETs `url`, following redirects by hand: each `Location` is checked like the link itself,
/// and the fourth redirect ends the fetch. The final URL and its (2xx) response.
async fn follow(
    mut url: Url,
    policy: Policy,
    accept: &str,
    signal: &AbortSignal,
) -> Result<(Url, Response), Failed> {
    let mut redirects = 0;
    loop {
        let response = get(&url, accept, signal).await?;
        let status = response.status_code();
        if is_redirect(status) {
            let location = header(&response, "Location");
            if location.is_empty() {
                return Err(Failed::Status(status));
            }
            if redirects == ssrf::MAX_REDIRECTS {
                return Err(Failed::TooManyRedirects);
            }
            redirects += 1;
            url = ssrf::check_redirect(&url, &location, policy)
                .map_err(Failed::Redirected)?
                .url;
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(Failed::Status(status));
        }
        return Ok((url, response));
    }
}

async fn get(url: &Url, accept: &str, signal: &AbortSignal) -> Result<Response, Failed> {
    let unreachable = |e: worker::Error| Failed::Unreachable(e.to_string());
    let headers = Headers::new();
    headers.set("User-Agent", USER_AGENT).map_err(unreachable)?;
    headers.set("Accept", accept).map_err(unreachable)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get)
        .with_headers(headers)
        // Never followed by the runtime: every hop is checked here first.
        .with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(url.as_str(), &init).map_err(unreachable)?;
    Fetch::Request(request)
        .send_with_signal(signal)
        .await
        .map_err(unreachable)
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Only HTML is read for a preview.
fn is_html(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/html"))
}

/// What to do with a body longer than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// Keep the first bytes (a page: its preview is in its head).
    Truncate,
    /// Refuse it (an image cut short is no image).
    Refuse,
}

/// A body taken chunk by chunk up to `max` bytes.
struct Taken {
    max: usize,
    over: Over,
    bytes: Vec<u8>,
}

/// Whether to read on.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    More,
    /// The cap is reached: stop reading (the rest is never downloaded).
    Full,
}

impl Taken {
    fn new(max: usize, over: Over) -> Taken {
        Taken {
            max,
            over,
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Next, Failed> {
        let room = self.max - self.bytes.len();
        if chunk.len() > room && self.over == Over::Refuse {
            return Err(Failed::TooLarge);
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        Ok(if self.bytes.len() == self.max {
            Next::Full
        } else {
            Next::More
        })
    }
}

/// Reads at most `max` bytes of the body: a declared length past it is refused before
/// reading when `over` refuses, and reading stops at the cap either way.
async fn read_body(response: &mut Response, max: usize, over: Over) -> Result<Vec<u8>, Failed> {
    let declared = header(response, "Content-Length").parse::<u64>().ok();
    if over == Over::Refuse && declared.is_some_and(|d| d > max as u64) {
        return Err(Failed::TooLarge);
    }
    let mut taken = Taken::new(max, over);
    // A response without a body has no stream: that is an empty body.
    let Ok(mut stream) = response.stream() else {
        return Ok(Vec::new());
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failed::Unreachable(e.to_string()))?;
        if taken.push(&chunk)? == Next::Full {
            break;
        }
    }
    Ok(taken.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_allowed_only_with_the_switch_on_and_a_request_to_localhost() {
        assert!(policy_for(true, true).allow_loopback);
        assert!(!policy_for(true, false).allow_loopback);
        assert!(!policy_for(false, true).allow_loopback);
        assert!(!policy_for(false, false).allow_loopback);
    }

    #[test]
    fn a_refusal_is_answered_in_its_own_words_as_url_refused() {
        let e = refused(&Refusal::Host, false);
        assert_eq!(e.code, ErrorCode::UrlRefused);
        assert_eq!(
            e.message,
            "Links to local or private addresses get no preview."
        );
        let e = Failed::Redirected(Refusal::Host).into_error();
        assert_eq!(e.code, ErrorCode::UrlRefused);
        assert!(e.message.contains("redirects"), "{}", e.message);
    }

    #[test]
    fn the_image_becomes_a_same_origin_path_with_its_url_encoded() {
        let preview = link_preview(
            "https://example.com/a".into(),
            PagePreview {
                title: Some("A".into()),
                description: None,
                site_name: None,
                image: Some("https://cdn.example.com/i.png?x=1&y=2".into()),
            },
        );
        assert_eq!(
            preview.image.as_deref(),
            Some("/api/preview/image?url=https%3A%2F%2Fcdn.example.com%2Fi.png%3Fx%3D1%26y%3D2")
        );
        assert_eq!(preview.url, "https://example.com/a");
    }

    fn row(outcome: &Outcome, fetched_at: i64) -> CachedRow {
        let (status, body, _) = row_of(outcome);
        CachedRow {
            status: f64::from(status),
            body,
            fetched_at: fetched_at as f64,
        }
    }

    #[test]
    fn a_preview_is_fresh_for_a_day_and_a_failure_for_ten_minutes() {
        let found = Outcome::Preview(PagePreview {
            title: Some("T".into()),
            image: Some("https://example.com/i.png".into()),
            ..PagePreview::default()
        });
        assert_eq!(row(&found, 0).fresh(FRESH_MS - 1), Some(found.clone()));
        assert_eq!(row(&found, 0).fresh(FRESH_MS), None);
        assert_eq!(
            row(&Outcome::Nothing, 0).fresh(1000),
            Some(Outcome::Nothing)
        );
        let failed = Outcome::Failed(Failed::Timeout.into_error());
        assert_eq!(
            row(&failed, 0).fresh(FAILURE_FRESH_MS - 1),
            Some(failed.clone())
        );
        assert_eq!(row(&failed, 0).fresh(FAILURE_FRESH_MS), None);
        // Only a preview's row names an image (the image route's allow-list).
        assert_eq!(
            row_of(&found).2.as_deref(),
            Some("https://example.com/i.png")
        );
        assert_eq!(row_of(&failed).2, None);
    }

    #[test]
    fn a_page_body_is_cut_at_its_cap_and_an_image_past_it_is_refused() {
        let mut page = Taken::new(10, Over::Truncate);
        assert_eq!(page.push(b"12345").ok(), Some(Next::More));
        assert_eq!(page.push(b"6789abc").ok(), Some(Next::Full));
        assert_eq!(page.bytes, b"123456789a");
        let mut image = Taken::new(10, Over::Refuse);
        assert_eq!(image.push(b"1234567890").ok(), Some(Next::Full));
        let mut image = Taken::new(10, Over::Refuse);
        assert_eq!(image.push(b"12345").ok(), Some(Next::More));
        assert!(matches!(image.push(b"678901"), Err(Failed::TooLarge)));
    }

    #[test]
    fn only_html_is_read_and_only_real_redirects_are_followed() {
        assert!(is_html("text/html"));
        assert!(is_html("Text/HTML; charset=utf-8"));
        assert!(!is_html("image/svg+xml"));
        assert!(!is_html("application/xhtml+xml"));
        assert!(!is_html(""));
        for status in [301, 302, 303, 307, 308] {
            assert!(is_redirect(status));
        }
        assert!(!is_redirect(304));
        assert!(!is_redirect(300));
    }
}
