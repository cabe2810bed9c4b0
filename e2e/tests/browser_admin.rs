//! The operations pages (issue 12) in headless Chromium, against the built app and both Workers
//! under `wrangler dev`: the global admin watching `/analytics` sees the counters and the
//! messages chart move when someone posts in another browser, without reloading; a guest and
//! a signed-in account that is not an admin see "Not found" at `/logs`, `/analytics`,
//! `/performance` and `/settings`, as the server answers them; and an AI base URL saved on
//! `/settings` answers the next question in a room, without restarting anything.
//!
//! Each test has its own server: the analytics count messages everywhere, so another test's
//! messages would move them too. Needs `./scripts/build` (the app in `dist/`) and
//! `./scripts/setup --browser` (Debian chromium and chromedriver); without them the tests fail
//! and say so.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use e2e::browser::{Browser, ChromeDriver};
use e2e::fake_ai::{FakeAi, Script};
use e2e::{random_hex, unique, DevOptions, DevServer, Result};
use serde::Deserialize;
use shared::profile::Profile;
use shared::protocol::http::ErrorBody;
use shared::ErrorCode;

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{e007}";
/// How long a room's batch may take to reach the admin's page: the room reports at most every
/// `REPORT_INTERVAL_MS` (5 s); a few intervals on a slow, shared machine.
const BATCH_DEADLINE: Duration = Duration::from_secs(45);
/// How long an answer may take to finish on a shared machine.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// Types into the input a label (or aria-label) names.
async fn fill(browser: &Browser, label: &str, text: &str) -> Result {
    browser.field(label).await?.send_keys(text).await?;
    Ok(())
}

/// Opens the app and signs in with the local account (the server runs with `DEV_LOGIN`).
async fn sign_in_locally(browser: &Browser, server: &DevServer, name: &str) -> Result {
    browser.goto(&server.url()).await?;
    browser.sign_in_locally(name).await
}

/// Opens the app and answers the display-name prompt as a guest.
async fn sign_in_as_guest(browser: &Browser, server: &DevServer, name: &str) -> Result {
    browser.goto(&server.url()).await?;
    browser.sign_in_as_guest(name).await
}

/// Creates a room in the app's form and opens it; returns its slug once the room is live.
async fn create_and_open_room(
    browser: &Browser,
    server: &DevServer,
    prefix: &str,
) -> Result<String> {
    let slug = browser.create_room(prefix).await?;
    open_room(browser, server, &slug).await?;
    Ok(slug)
}

/// Opens a room's page and waits until its banner says it is live.
async fn open_room(browser: &Browser, server: &DevServer, slug: &str) -> Result {
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    browser.wait_live().await
}

/// Sends a message with Enter and waits until the room has acknowledged it.
async fn post(browser: &Browser, text: &str) -> Result {
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    composer.send_keys(text).await?;
    composer.send_keys(ENTER).await?;
    let script = format!(
        r#"
        return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
            .some(li => li.dataset.status === 'sent' && li.textContent.includes({text}));
        "#,
        text = serde_json::to_string(text)?
    );
    browser
        .wait_for(&format!("{text:?} to be sent"), &script)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Analytics

/// What the admin's analytics page shows: the "messages" tile and the messages chart.
#[derive(Clone, PartialEq, Deserialize)]
struct Reading {
    /// The "messages" tile (the period's total).
    messages: u64,
    /// The chart's accessible name, with the latest value.
    label: String,
    /// The messages line's SVG path (one vertex a minute: long, so not in failure messages).
    path: String,
    /// How many vertices the path has.
    vertices: usize,
    /// The smallest y of the path (SVG y grows downwards): the line's highest point.
    highest: f64,
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages; chart {:?}, a line of {} vertices whose highest is at y = {}",
            self.messages, self.label, self.vertices, self.highest
        )
    }
}

const READING_JS: &str = r#"
    const page = document.querySelector('.analytics-page');
    if (!page) return null;
    const tile = Array.from(page.querySelectorAll('.tile'))
        .find(t => (t.querySelector('.tile-label') || {}).textContent === 'messages');
    const figure = Array.from(page.querySelectorAll('figure.chart'))
        .find(f => ((f.querySelector('.chart-title') || {}).textContent || '').startsWith('Messages per'));
    const svg = figure && figure.querySelector('svg[role="img"]');
    const path = figure && figure.querySelector('path.series');
    if (!tile || !svg || !path) return null;
    const d = path.getAttribute('d') || '';
    const ys = Array.from(d.matchAll(/[ML]\s*[-\d.]+[ ,]([-\d.]+)/g), m => Number(m[1]));
    return {
        messages: Number(tile.querySelector('.tile-value').textContent),
        label: svg.getAttribute('aria-label'),
        path: d,
        vertices: ys.length,
        highest: ys.length ? Math.min(...ys) : -1,
    };
"#;

async fn reading(browser: &Browser) -> Result<Reading> {
    let value = browser
        .wait_for("the analytics tiles and the messages chart", READING_JS)
        .await?;
    Ok(serde_json::from_value(value)?)
}

/// From here on the page's history fetches (`/api/admin/analytics`, made again every minute)
/// never answer, so whatever moves afterwards was moved by the live socket alone.
const HOLD_HISTORY_JS: &str = r#"
    if (!window.__e2eHeld) {
        window.__e2eHeld = { count: 0 };
        const original = window.fetch.bind(window);
        window.fetch = (input, init) => {
            const url = typeof input === 'string' ? input : (input && input.url) || '';
            if (url.includes('/api/admin/analytics')) {
                window.__e2eHeld.count += 1;
                return new Promise(() => {});
            }
            return original(input, init);
        };
    }
    return true;
"#;

#[tokio::test]
async fn an_admin_watching_analytics_sees_the_counters_and_the_chart_move_when_someone_posts_in_another_browser(
) -> Result {
    let server =
        DevServer::start(DevOptions::default().var("DEV_LOGIN", "true").with_app()).await?;
    let driver = ChromeDriver::start().await?;

    // The install's first account is the global admin.
    let admin = driver.browser().await?;
    sign_in_locally(&admin, &server, "Root").await?;
    admin.goto(&format!("{}/analytics", server.url())).await?;
    admin
        .wait_for(
            "the page's socket to the aggregator to be open",
            r#"const dot = document.querySelector('.live-dot');
               return !!dot && dot.classList.contains('on') && dot.textContent.trim() === 'Live';"#,
        )
        .await?;
    let before = reading(&admin).await?;
    admin.eval(HOLD_HISTORY_JS).await?;

    // Someone else, in another browser, creates a room and posts in it.
    let poster = driver.browser().await?;
    sign_in_as_guest(&poster, &server, "Poster").await?;
    create_and_open_room(&poster, &server, "Busy Room").await?;
    const POSTED: u64 = 3;
    for i in 1..=POSTED {
        post(&poster, &format!("busy message {i}")).await?;
    }

    // The admin's page, never reloaded, takes the room's batch in.
    let script = format!(
        r#"
        const read = (() => {{ {READING_JS} }})();
        if (!read) return null;
        return read.messages >= {want} && read.path !== {path} ? read : null;
        "#,
        want = before.messages + POSTED,
        path = serde_json::to_string(&before.path)?,
    );
    let moved = admin
        .wait_longer(
            &format!(
                "the messages tile to reach {} (from {before:?}) and the chart to change",
                before.messages + POSTED
            ),
            &script,
            BATCH_DEADLINE,
        )
        .await;
    let after = reading(&admin).await?;
    moved.map_err(|e| e.context(format!("the page now shows {after:?}")))?;
    assert!(
        after.messages >= before.messages + POSTED,
        "the tile counts the {POSTED} messages: {before:?} then {after:?}"
    );
    assert!(
        after.path != before.path,
        "the messages line changed: {before:?} then {after:?}"
    );
    // The same page: not reloaded, still live.
    let same_page = admin
        .eval(
            r#"const dot = document.querySelector('.live-dot');
               return !!window.__e2eHeld && !!dot && dot.textContent.trim() === 'Live';"#,
        )
        .await?;
    assert_eq!(
        same_page, true,
        "the admin's page was not reloaded and is live"
    );

    admin.quit().await?;
    poster.quit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Not found

/// The operations pages, each only for global admins.
const ADMIN_PAGES: [&str; 4] = ["/logs", "/analytics", "/performance", "/settings"];

/// The APIs behind them (`/performance` reads `/api/admin/analytics` too).
const ADMIN_APIS: [&str; 5] = [
    "/api/admin/logs",
    "/api/admin/logs/tail",
    "/api/admin/analytics?range=1h",
    "/api/admin/analytics/live",
    "/api/admin/settings",
];

/// Waits until the page at `path` says "Not found", then checks that nothing of the admin's
/// page is on it and that the navigation offers no operations page.
async fn sees_not_found(browser: &Browser, server: &DevServer, who: &str, path: &str) -> Result {
    browser.goto(&format!("{}{path}", server.url())).await?;
    browser
        .wait_for(
            &format!("{who} at {path} to see \"Not found\""),
            r#"return Array.from(document.querySelectorAll('h1'))
                   .some(h => h.textContent.trim() === 'Not found');"#,
        )
        .await?;
    let shown = browser
        .eval(
            r#"
            const admin = ['.analytics-page', '.settings-page', '.admin-page', 'table.logs-table',
                           '.tiles', 'figure.chart', '.metrics-table', '[data-setting]', '.live-dot']
                .filter(css => document.querySelector(css));
            const titles = Array.from(document.querySelectorAll('h1'))
                .map(h => h.textContent.trim())
                .filter(t => ['Logs', 'Analytics', 'Performance', 'Settings'].includes(t));
            const links = ['/admin', '/logs', '/settings', '/analytics', '/performance']
                .filter(href => document.querySelector(`nav a[href="${href}"]`));
            return { admin, titles, links };
            "#,
        )
        .await?;
    assert_eq!(
        shown,
        serde_json::json!({ "admin": [], "titles": [], "links": [] }),
        "{who} at {path} sees none of the admin's page"
    );
    Ok(())
}

/// Asks each admin API from the page, with the browser's own session; expects `not_found`.
async fn apis_say_not_found(browser: &Browser, who: &str) -> Result {
    for api in ADMIN_APIS {
        let script = format!(
            r#"
            const response = await fetch({api}, {{ credentials: 'same-origin' }});
            return [response.status, await response.text()];
            "#,
            api = serde_json::to_string(api)?
        );
        let (status, text): (u16, String) = serde_json::from_value(browser.eval(&script).await?)?;
        let body: ErrorBody = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{who}: GET {api} answered {status} {text:?}: {e}"))?;
        assert_eq!(
            (status, body.code),
            (404, ErrorCode::NotFound),
            "{who}: GET {api} answered {text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_non_admin_sees_not_found_on_logs_analytics_performance_and_settings() -> Result {
    let server =
        DevServer::start(DevOptions::default().var("DEV_LOGIN", "true").with_app()).await?;
    // The install's first account is the global admin, and the server answers it: the others
    // are refused for who they are, not because the pages are missing.
    let root = e2e::login::local_account(&server, "Root").await?;
    let profile: Profile = root.get("/api/profile").await?.json().await?;
    assert!(profile.admin, "the first account is the global admin");
    for api in [
        "/api/admin/logs",
        "/api/admin/analytics",
        "/api/admin/settings",
    ] {
        let status = root.get(api).await?.status().as_u16();
        assert_eq!(status, 200, "the admin is answered at {api}");
    }

    let driver = ChromeDriver::start().await?;
    let guest = driver.browser().await?;
    sign_in_as_guest(&guest, &server, "Visitor").await?;
    let account = driver.browser().await?;
    sign_in_locally(&account, &server, "Plain").await?;

    for (who, browser) in [("a guest", &guest), ("a plain account", &account)] {
        for path in ADMIN_PAGES {
            sees_not_found(browser, &server, who, path).await?;
        }
        apis_say_not_found(browser, who).await?;
    }
    guest.quit().await?;
    account.quit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Settings

/// The assistant's answers in the open room, oldest first: (`answer-bar` state, text without
/// the typing cursor).
async fn answers(browser: &Browser) -> Result<Vec<(Option<String>, String)>> {
    let value = browser
        .eval(
            r#"
            return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message.answer'))
                .map(li => {
                    const bar = li.querySelector('.answer-bar');
                    const body = li.querySelector('.body');
                    return [bar ? bar.dataset.state : null,
                            (body ? body.textContent : '').replace(/▍/g, '').trim()];
                });
            "#,
        )
        .await?;
    Ok(serde_json::from_value(value)?)
}

/// Asks the assistant in the open room and waits for the answer (the `n`th in the room) to
/// finish; returns its text.
async fn ask(browser: &Browser, question: &str, n: usize) -> Result<String> {
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    composer.send_keys(question).await?;
    composer.send_keys(ENTER).await?;
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    loop {
        let all = answers(browser).await?;
        if let Some((Some(state), text)) = all.get(n - 1) {
            if state == "done" {
                return Ok(text.clone());
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("answer {n} to {question:?} did not finish; the answers: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_ai_endpoint_saved_in_settings_answers_the_next_question_without_a_restart() -> Result
{
    let first = FakeAi::start().await?;
    let second = FakeAi::start().await?;
    let server = DevServer::start(
        DevOptions::default()
            .with_app()
            .var("DEV_LOGIN", "true")
            .var("SETTINGS_KEY", STANDARD.encode(random_key()))
            .var("SETTINGS_TEST_CACHE_MS", 300)
            .var("AI_PROVIDER", "openai")
            .var("AI_BASE_URL", first.base_url())
            .var("AI_MODEL", "fake-model")
            .var("AI_FIRST_TOKEN_TIMEOUT_MS", 3000)
            .var("AI_IDLE_TIMEOUT_MS", 3000),
    )
    .await?;
    // Each provider answers in its own words. The first has an answer for both questions, so
    // that it would be heard if it were still asked; the second only for the one after the
    // save (a fake takes the first script whose marker is in the request, and the second
    // question's request carries the first in the room's history).
    let said_by = |who: &str, tag: &str| format!("{who} provider answering {tag}");
    let (before, after) = (unique("q1"), unique("q2"));
    for tag in [&before, &after] {
        first.push(
            tag,
            Script::words(&said_by("first", tag), Duration::from_millis(10)),
        );
    }
    second.push(
        &after,
        Script::words(&said_by("second", &after), Duration::from_millis(10)),
    );

    let driver = ChromeDriver::start().await?;
    let admin = driver.browser().await?;
    sign_in_locally(&admin, &server, "Root").await?;
    let slug = create_and_open_room(&admin, &server, "Ask Room").await?;

    // The environment's endpoint answers first.
    let answer = ask(&admin, &format!("@assistant who answers? {before}"), 1).await?;
    assert_eq!(
        answer,
        said_by("first", &before),
        "the environment's provider answers"
    );
    assert!(
        second.requests(&before).is_empty(),
        "the second provider was not asked yet"
    );

    // The admin saves the second provider's URL on the settings page.
    let checks = second.model_lists().len();
    admin.goto(&format!("{}/settings", server.url())).await?;
    fill(&admin, "AI base URL", &second.base_url()).await?;
    admin.click_button("Save").await?;
    let result = admin
        .wait_for(
            "AI base URL's own result beside it",
            r#"const p = document.getElementById('setting-ai-base-url-result');
               return p ? p.textContent : null;"#,
        )
        .await?;
    let result = result.as_str().unwrap_or_default();
    assert!(
        result.starts_with('✓') && result.contains("answered 200"),
        "the field's live check passed: {result:?}"
    );
    assert!(
        second.model_lists().len() > checks,
        "the live check asked the second provider's /models"
    );
    let help = admin
        .wait_for(
            "the page to show the saved URL",
            &format!(
                r#"const p = document.getElementById('setting-ai-base-url-help');
                   return !!p && p.textContent.startsWith('Saved: ' + {url});"#,
                url = serde_json::to_string(&second.base_url())?
            ),
        )
        .await?;
    assert_eq!(help, true);
    let notice = admin
        .eval(
            r#"return Array.from(document.querySelectorAll('.settings-page [role="status"]'))
                 .map(p => p.textContent.trim());"#,
        )
        .await?;
    assert!(
        notice
            .as_array()
            .is_some_and(|n| n.iter().any(|t| t == "Saved.")),
        "the form says it saved: {notice}"
    );

    // The next question, same server, no restart: the second provider answers it.
    open_room(&admin, &server, &slug).await?;
    let answer = ask(&admin, &format!("@assistant and now? {after}"), 2).await?;
    assert_eq!(
        answer,
        said_by("second", &after),
        "the saved provider answers"
    );
    assert_eq!(
        second.requests(&after).len(),
        1,
        "the second provider was asked once"
    );
    assert!(
        first.requests(&after).is_empty(),
        "the environment's provider was not asked again"
    );

    admin.quit().await?;
    Ok(())
}

/// 32 random bytes, a fresh `SETTINGS_KEY`.
fn random_key() -> Vec<u8> {
    let hex = random_hex(32);
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}
