//! The Cloudflare Pages deploy path (README "Deploy", "Cloudflare Pages"): `wrangler pages dev`
//! serves the built app (`dist/`, with its `_headers` and `_routes.json`) from the Pages project
//! in `pages/`, whose one Function hands `/api/*` to the Worker that `wrangler dev` runs, through
//! the service binding `API` (the two processes share a dev registry of the test's own). Two
//! browsers then chat through the Pages origin only: the page, the session cookie, the API
//! calls and the room's WebSocket all go through the Function, as on a deployed Pages site.
//!
//! Needs `./scripts/build` (the app in `dist/`) and `./scripts/setup --browser` (Debian
//! chromium and chromedriver); without them the test fails and says so, never passes silently.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde::Deserialize;

use e2e::browser::{Browser, ChromeDriver};
use e2e::server::{free_port, live_group_members};
use e2e::{repo_root, unique, DevOptions, DevServer, Result};

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{e007}";
/// How long `wrangler pages dev` may take until `/api/health` answers through it (it bundles
/// the Function, starts workerd and finds the Worker in the registry).
const PAGES_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a message may take to show as sent on both sides.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of `wrangler pages dev` output kept (its request log, and the reason of a failure).
const LOG_LINES: usize = 500;

/// A running `wrangler pages dev` in its own process group. Dropping it kills the group (the
/// node process, esbuild, workerd); a watchdog shell does so if the test process dies first.
struct PagesDev {
    child: Child,
    port: u16,
    watchdog: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Its local state (`--persist-to`): nothing the test reads, kept out of the checkout.
    _state: tempfile::TempDir,
}

impl PagesDev {
    /// Starts `wrangler pages dev` in `pages/` (where it reads `wrangler.toml`, the output
    /// directory `../dist` and `./functions`), registered in `server`'s own dev registry so
    /// the `API` binding reaches that server's Worker; returns once `/api/health` answers 200
    /// through it.
    async fn start(server: &DevServer) -> Result<PagesDev> {
        use std::os::unix::process::CommandExt as _;

        let registry = server
            .registry_dir()
            .context("the server needs a registry of its own (DevOptions::own_registry)")?;
        let state = tempfile::Builder::new()
            .prefix("durable-chat-pages-")
            .tempdir()?;
        let root = repo_root();
        let port = free_port()?;
        let mut child = Command::new(root.join("node_modules/.bin/wrangler"))
            .current_dir(root.join("pages"))
            .env("WRANGLER_REGISTRY_PATH", &registry)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .args(["pages", "dev", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .arg("--persist-to")
            .arg(state.path())
            .arg("--show-interactive-dev-session=false")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning wrangler pages dev")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, Arc::clone(&log));
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, Arc::clone(&log));
        }
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 -{pgid} 2>/dev/null",
                me = std::process::id(),
                pgid = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut pages = PagesDev {
            child,
            port,
            watchdog,
            log,
            _state: state,
        };
        if let Err(e) = pages.wait_ready().await {
            return Err(e.context(format!("wrangler pages dev output:\n{}", pages.log_tail())));
        }
        Ok(pages)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result {
        let http = e2e::client::http();
        let health = format!("{}/api/health", self.url());
        let deadline = Instant::now() + PAGES_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("wrangler pages dev exited before it was ready ({status})");
            }
            if let Ok(response) = http.get(&health).send().await {
                if response.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "GET {health} did not answer 200 within {} s",
                    PAGES_READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PagesDev {
    fn drop(&mut self) {
        // TERM first, so wrangler removes its build under pages/.wrangler/tmp; then KILL
        // whatever of the group is left.
        let pgid = self.child.id();
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_group_members(pgid).is_empty() && Instant::now() < deadline {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pgid, "KILL");
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn collect_lines(stream: impl Read + Send + 'static, log: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut log) = log.lock() {
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    });
}

/// One `li.message` as the page shows it.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    status: Option<String>,
    text: String,
}

async fn rows(browser: &Browser) -> Result<Vec<Row>> {
    let found = browser
        .eval(
            r#"return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                   .map(li => ({ status: li.dataset.status ?? null, text: li.textContent }));"#,
        )
        .await?;
    Ok(serde_json::from_value(found)?)
}

/// Waits until exactly one row shows `text` as sent.
async fn wait_sent(browser: &Browser, text: &str) -> Result {
    let deadline = Instant::now() + MESSAGE_TIMEOUT;
    loop {
        let all = rows(browser).await?;
        let matching: Vec<&Row> = all.iter().filter(|r| r.text.contains(text)).collect();
        if let [row] = matching.as_slice() {
            if row.status.as_deref() == Some("sent") {
                return Ok(());
            }
        }
        ensure!(
            matching.len() <= 1,
            "{text:?} is shown {} times",
            matching.len()
        );
        if Instant::now() > deadline {
            bail!("no single sent row with {text:?} within {MESSAGE_TIMEOUT:?}; rows: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send_message(browser: &Browser, text: &str) -> Result {
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    composer.send_keys(text).await?;
    composer.send_keys(ENTER).await?;
    Ok(())
}

#[tokio::test]
async fn two_people_chat_through_the_pages_project_in_front_of_the_worker() -> Result {
    let dist = repo_root().join("dist");
    ensure!(
        dist.join("_routes.json").exists(),
        "dist/_routes.json is missing: run ./scripts/build (app/index.html copies it)"
    );
    let server = DevServer::start(DevOptions::default().with_app().own_registry()).await?;
    let pages = PagesDev::start(&server).await?;
    let result = chat_through_pages(&server, &pages).await;
    let log = pages.log_tail();
    // Pages first: the registry it reads lives in the server's persist directory.
    drop(pages);
    drop(server);
    result.with_context(|| format!("wrangler pages dev output:\n{log}"))
}

async fn chat_through_pages(server: &DevServer, pages: &PagesDev) -> Result {
    let site = pages.url();
    let http = e2e::client::http();

    // The API comes through the Function: the same Worker (its build version) as direct.
    let health: serde_json::Value = http
        .get(format!("{site}/api/health"))
        .send()
        .await?
        .json()
        .await?;
    let direct: serde_json::Value = http
        .get(format!("{}/api/health", server.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["version"], direct["version"]);

    // The page is a static file with the security headers of `_headers`, and a room's path
    // (no such file) falls back to the same page: Pages' single-page-application mode.
    let page = http.get(format!("{site}/")).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "CSP: {csp:?}");
    let index = page.text().await?;
    assert!(index.contains("<title>Durable Chat</title>"), "{index}");
    let fallback = http.get(format!("{site}/r/some-room")).send().await?;
    assert_eq!(fallback.status().as_u16(), 200);
    assert_eq!(
        fallback.text().await?,
        index,
        "/r/some-room is not index.html"
    );

    // Another site's page is still refused through the proxy, and so is the Worker's own
    // origin: the Worker sees the Pages URL the browser used.
    for origin in ["http://evil.example".to_string(), server.origin()] {
        let refused = http
            .post(format!("{site}/api/session"))
            .header("Origin", &origin)
            .json(&serde_json::json!({ "name": "Eve" }))
            .send()
            .await?;
        assert_eq!(refused.status().as_u16(), 403, "Origin {origin}");
    }

    let driver = ChromeDriver::start().await?;
    let alice = driver.browser().await?;
    let bob = driver.browser().await?;

    alice.goto(&site).await?;
    alice.sign_in_as_guest("Alice").await?;
    let name = unique("Pages Room");
    alice.field("Room name").await?.send_keys(&name).await?;
    alice
        .field("Topic")
        .await?
        .send_keys("through Pages")
        .await?;
    alice.click_button("Create room").await?;
    let slug = shared::limits::slugify(&name);
    alice
        .find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?;
    alice.goto(&format!("{site}/r/{slug}")).await?;
    alice.wait_live().await?;

    // Bob's first request is the room's path itself: the fallback page, then the prompt.
    bob.goto(&format!("{site}/r/{slug}")).await?;
    bob.sign_in_as_guest("Bob").await?;
    bob.find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?;
    bob.goto(&format!("{site}/r/{slug}")).await?;
    bob.wait_live().await?;

    send_message(&alice, "hello from alice, through pages").await?;
    wait_sent(&alice, "hello from alice, through pages").await?;
    wait_sent(&bob, "hello from alice, through pages").await?;
    send_message(&bob, "hi alice, bob via pages").await?;
    wait_sent(&bob, "hi alice, bob via pages").await?;
    wait_sent(&alice, "hi alice, bob via pages").await?;

    // Both pages really are on the Pages origin, and their sockets went through the Function.
    for browser in [&alice, &bob] {
        let origin = browser.eval("return location.origin;").await?;
        assert_eq!(origin, serde_json::Value::String(site.clone()));
    }
    let ws_path = format!("/api/rooms/{slug}/ws");
    let log = pages.log_tail();
    let upgrades = log.lines().filter(|l| l.contains(&ws_path)).count();
    assert!(
        upgrades >= 2,
        "wrangler pages dev logged {upgrades} requests to {ws_path}, not one per browser"
    );

    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}
