//! Headless Chromium through the Debian chromedriver, for end-to-end flows in a real browser.
//!
//! Nothing here downloads a browser: the binaries are `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (`./scripts/setup --browser` installs them), overridable with the
//! `CHROMIUM` and `CHROMEDRIVER` environment variables.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::server::{free_port, signal_group, spawn_watchdog};
use crate::Result;

/// How long a browser helper waits for the page to reach an expected state.
pub const UI_TIMEOUT: Duration = Duration::from_secs(20);

fn binary(var: &str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    if !path.exists() {
        bail!(
            "{} not found (set {var} or run ./scripts/setup --browser)",
            path.display()
        );
    }
    Ok(path)
}

/// A chromedriver process on a free port, in its own process group with the browsers it
/// starts; the whole group is killed on drop (or by a watchdog if the test process dies), then
/// the browsers' profiles are removed.
pub struct ChromeDriver {
    child: Child,
    url: String,
    watchdog: Option<Child>,
    profiles: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until it answers `/status`.
    pub async fn start() -> Result<ChromeDriver> {
        let driver = binary("CHROMEDRIVER", "/usr/bin/chromedriver")?;
        use std::os::unix::process::CommandExt as _;

        let port = free_port()?;
        let profiles = tempfile::Builder::new()
            .prefix("durable-chat-chromium-")
            .tempdir()?;
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", driver.display()))?;
        let watchdog = spawn_watchdog(child.id(), Some(profiles.path()));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            watchdog,
            profiles,
        };
        let http = crate::client::http();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                bail!("chromedriver exited at start ({status})");
            }
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
                if r.status().is_success() {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer /status within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser (its own profile, so its own cookies and storage).
    pub async fn browser(&self) -> Result<Browser> {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium")?;
        let profile = tempfile::Builder::new()
            .prefix("profile-")
            .tempdir_in(self.profiles.path())?
            .keep();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--no-first-run".into(),
            "--window-size=1200,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .map_err(|e| anyhow!("starting a Chromium session: {e}"))?;
        Ok(Browser { client })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // `profiles` is removed after this, once no browser writes to it any more.
    }
}

/// One browser window with its own profile (under the driver's directory).
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
}

impl Browser {
    /// Clicks the enabled button whose text is `text`, waiting for it.
    pub async fn click_button(&self, text: &str) -> Result {
        let script = format!(
            r#"
            const b = Array.from(document.querySelectorAll('button'))
                .find(b => b.textContent.trim() === {text} && !b.disabled);
            if (!b) return false;
            b.click();
            return true;
            "#,
            text = serde_json::to_string(text)?
        );
        self.wait_for(&format!("an enabled button {text:?}"), &script)
            .await?;
        Ok(())
    }

    /// The input a visible label (or `aria-label`) names, once it is on the page.
    pub async fn field(&self, label: &str) -> Result<Element> {
        let script = format!(
            r#"
            const want = {label};
            let el = document.querySelector(`[aria-label="${{want}}"]`);
            if (!el) {{
                const lab = Array.from(document.querySelectorAll('label'))
                    .find(l => l.textContent.trim().startsWith(want));
                el = lab && (lab.control || document.getElementById(lab.htmlFor));
            }}
            if (!el) return null;
            if (!el.id) el.id = 'e2e-' + Math.random().toString(36).slice(2);
            return el.id;
            "#,
            label = serde_json::to_string(label)?
        );
        let id = self
            .wait_for(&format!("a field labelled {label:?}"), &script)
            .await?;
        let id = id.as_str().unwrap_or_default().to_owned();
        Ok(self.client.find(Locator::Id(&id)).await?)
    }

    /// Navigates to a URL.
    pub async fn goto(&self, url: &str) -> Result {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("navigating to {url}"))
    }

    /// Reloads the page.
    pub async fn reload(&self) -> Result {
        self.client.refresh().await.context("reloading")
    }

    /// Waits for an element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element matches {css} within {UI_TIMEOUT:?}"))
    }

    /// Elements matching a CSS selector right now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// Runs a script and returns its JSON result.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        self.client
            .execute(script, Vec::new())
            .await
            .with_context(|| format!("running script: {script}"))
    }

    /// Polls a script until it returns something truthy, within [`UI_TIMEOUT`]; fails with
    /// `what` and the script's last answer.
    pub async fn wait_for(&self, what: &str, script: &str) -> Result<serde_json::Value> {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let value = self.eval(script).await?;
            let truthy = match &value {
                serde_json::Value::Null => false,
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
                serde_json::Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                bail!(
                    "timed out waiting for {what} (last answer {value}, page {})",
                    url.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the WebDriver session (closes the browser).
    pub async fn quit(self) -> Result {
        self.client.close().await.context("closing the browser")
    }
}

/// Helpers for flows with files (issue 11).
impl Browser {
    /// Polls `script` like [`Browser::wait_for`], for at most `timeout` (uploads, and an image
    /// classifier on a shared machine, may take longer than a click's answer).
    pub async fn wait_longer(
        &self,
        what: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.wait_for(what, script).await {
                Ok(value) => return Ok(value),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Clicks the enabled button whose text or `aria-label` is `name`, once there is one.
    pub async fn click_named(&self, name: &str) -> Result {
        let script = format!(
            r#"
            const want = {name};
            const b = Array.from(document.querySelectorAll('button'))
                .find(b => !b.disabled
                    && (b.textContent.trim() === want || b.getAttribute('aria-label') === want));
            if (!b) return false;
            b.click();
            return true;
            "#,
            name = serde_json::to_string(name)?
        );
        self.wait_for(&format!("an enabled button named {name:?}"), &script)
            .await?;
        Ok(())
    }

    /// Gives the file input matching `css` a file from disk, as picking it in the browser's
    /// dialog would (WebDriver sends the path; the input may be hidden behind a button).
    pub async fn pick_file(&self, css: &str, path: &std::path::Path) -> Result {
        let input = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no file input matches {css}"))?;
        input
            .send_keys(&path.to_string_lossy())
            .await
            .with_context(|| format!("picking {}", path.display()))?;
        Ok(())
    }
}

/// A Chrome DevTools Protocol command sent through chromedriver's `goog/cdp/execute`, for what
/// WebDriver has no command for (installability, issue 12/13).
#[derive(Debug)]
struct Cdp {
    command: String,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Runs a DevTools Protocol command on the current page; returns its result.
    pub async fn cdp(&self, command: &str, params: serde_json::Value) -> Result<serde_json::Value> {
        self.client
            .issue_cmd(Cdp {
                command: command.to_owned(),
                params,
            })
            .await
            .with_context(|| format!("DevTools command {command}"))
    }
}

/// One rule axe-core found broken on a page: the rule, how bad, what it asks, and where.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    pub targets: Vec<String>,
}

impl Browser {
    /// Runs axe-core (the pinned npm package, `node_modules/axe-core`) on the page as it is
    /// now; returns what it finds broken. The script is sent as WebDriver's script itself: the
    /// page's CSP forbids `eval`, and a script WebDriver runs is not subject to it.
    pub async fn axe(&self) -> Result<Vec<Violation>> {
        let path = crate::repo_root().join("node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run ./scripts/setup)", path.display()))?;
        if self.eval("return typeof window.axe;").await? != "object" {
            self.eval(&source).await.context("loading axe-core")?;
        }
        let found = self
            .eval(
                r#"const result = await axe.run(document, { resultTypes: ['violations'] });
                   return result.violations.map(v => ({
                       id: v.id,
                       impact: v.impact,
                       help: v.help,
                       targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                   }));"#,
            )
            .await?;
        Ok(serde_json::from_value(found)?)
    }
}

/// Flows every browser test goes through.
impl Browser {
    /// Answers the app's display-name prompt as a guest, once the page shows it.
    pub async fn sign_in_as_guest(&self, name: &str) -> Result {
        self.field("Display name").await?.send_keys(name).await?;
        self.click_button("Continue").await?;
        self.find(r#"nav[aria-label="Rooms"]"#).await?;
        Ok(())
    }

    /// Signs in with the local account (the server runs with `DEV_LOGIN`).
    pub async fn sign_in_locally(&self, name: &str) -> Result {
        self.field("Local account name")
            .await?
            .send_keys(name)
            .await?;
        self.click_button("Sign in").await?;
        self.find(r#"nav[aria-label="Rooms"]"#).await?;
        Ok(())
    }

    /// Creates a room named `prefix` and a unique suffix in the app's form, as its creator does,
    /// and waits until the room list shows it (the app then opens it); returns its slug.
    pub async fn create_room(&self, prefix: &str) -> Result<String> {
        let name = crate::unique(prefix);
        self.field("Room name").await?.send_keys(&name).await?;
        self.click_button("Create room").await?;
        let slug = shared::limits::slugify(&name);
        self.find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
            .await?;
        Ok(slug)
    }

    /// Waits until the composer holds `count` attached files, every one stored (an upload may
    /// take long on a shared machine, with an image classifier: up to 90 s); fails at once on a failed one.
    pub async fn wait_uploaded(&self, count: usize) -> Result {
        let script = format!(
            r#"const chips = Array.from(document.querySelectorAll('form.composer li.chip'));
               const failed = chips.find(c => c.dataset.state === 'failed');
               if (failed) return 'failed: ' + failed.textContent;
               return chips.length === {count} && chips.every(c => c.dataset.state === 'done');"#
        );
        let answer = self
            .wait_longer(
                &format!("{count} attached files to be uploaded"),
                &script,
                Duration::from_secs(90),
            )
            .await?;
        if answer != true {
            bail!("an upload failed: {answer}");
        }
        Ok(())
    }

    /// Waits until the open room's banner says it is live.
    pub async fn wait_live(&self) -> Result {
        self.wait_for(
            "the room to be live",
            r#"const b = document.querySelector('[role="status"].banner');
               return !!b && b.dataset.phase === 'live';"#,
        )
        .await?;
        Ok(())
    }

    /// Shows the page as in a `light` or `dark` system theme, with reduced motion: the app then
    /// has no transitions, so what is measured or captured right after the switch has the new
    /// colours, not a button halfway between the two.
    pub async fn use_color_scheme(&self, scheme: &str) -> Result {
        self.cdp(
            "Emulation.setEmulatedMedia",
            serde_json::json!({ "features": [
                { "name": "prefers-color-scheme", "value": scheme },
                { "name": "prefers-reduced-motion", "value": "reduce" },
            ] }),
        )
        .await?;
        Ok(())
    }
}
