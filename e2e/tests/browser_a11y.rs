//! Accessibility (issue 13 item 3): axe-core (the pinned npm package) on every page and dialog
//! of the built app under `wrangler dev`, in light and dark, with no violation allowed.
//!
//! Needs `./scripts/build` (the app in `dist/`), `./scripts/setup` (axe-core in node_modules)
//! and `./scripts/setup --browser`.

use e2e::browser::{Browser, ChromeDriver, Violation};
use e2e::{DevOptions, DevServer, Result};

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{e007}";

/// Every violation on the screen as it is now, in light and in dark, named by `screen`.
async fn audit(browser: &Browser, screen: &str, found: &mut Vec<String>) -> Result {
    for scheme in ["light", "dark"] {
        browser.use_color_scheme(scheme).await?;
        let violations: Vec<Violation> = browser.axe().await?;
        found.extend(violations.into_iter().map(|v| {
            format!(
                "{screen} ({scheme}): {} [{}] {} at {:?}",
                v.id,
                v.impact.unwrap_or_default(),
                v.help,
                v.targets
            )
        }));
    }
    browser.use_color_scheme("light").await?;
    Ok(())
}

async fn open_page(browser: &Browser, server: &DevServer, path: &str, ready_css: &str) -> Result {
    browser.goto(&format!("{}{path}", server.url())).await?;
    browser.find(ready_css).await?;
    // Whatever loads after the first paint (lists, charts) is part of the page audited.
    browser
        .wait_for(
            &format!("{path} to finish loading"),
            r#"return !Array.from(document.querySelectorAll('[role="status"]'))
                   .some(s => s.textContent.trim() === 'Loading…');"#,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn axe_finds_no_violation_on_any_page_or_dialog_in_light_or_dark() -> Result {
    let server =
        DevServer::start(DevOptions::default().with_app().var("DEV_LOGIN", "true")).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let mut found = Vec::new();

    browser.goto(&server.url()).await?;
    browser.field("Local account name").await?;
    audit(&browser, "welcome", &mut found).await?;

    // The install's first account: a global admin, so every page is open to it.
    browser.sign_in_locally("Root").await?;
    audit(&browser, "home", &mut found).await?;

    browser.create_room("Audited Room").await?;
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    browser.find(r#"button[aria-label="Attachment"]"#).await?;
    browser
        .pick_file(
            r#"form.composer input[type="file"]"#,
            &e2e::fixture_image("chelsea.png")?,
        )
        .await?;
    browser.wait_uploaded(1).await?;
    composer.send_keys("a cat on a rug").await?;
    composer.send_keys(ENTER).await?;
    browser
        .wait_for(
            "the message with its image",
            r#"return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                   .some(li => li.dataset.status === 'sent' && !!li.querySelector('img[alt="chelsea.png"]'));"#,
        )
        .await?;
    audit(&browser, "room", &mut found).await?;

    // The lightbox.
    browser
        .find("li.message .image-open")
        .await?
        .click()
        .await?;
    browser
        .wait_for(
            "the lightbox",
            r#"const d = document.querySelector('dialog.lightbox'); return !!d && d.open;"#,
        )
        .await?;
    audit(&browser, "lightbox", &mut found).await?;
    browser
        .eval(r#"document.querySelector('dialog.lightbox').close(); return true;"#)
        .await?;

    // The side panels, one at a time.
    for (button, ready, screen) in [
        ("Reply", ".thread-panel", "thread"),
        (
            "🔍 Search",
            r#"input[aria-label="Search messages"]"#,
            "search",
        ),
        ("📌 Pinned", ".pins-panel", "pins"),
        ("Files", ".files-panel", "files"),
        ("Who's here", ".presence-panel", "who's here"),
        ("Members", ".room-panel", "members"),
    ] {
        let clicked = browser
            .eval(&format!(
                r#"const want = {button};
                   const b = Array.from(document.querySelectorAll('button'))
                       .find(b => b.textContent.trim() === want || b.getAttribute('aria-label') === want);
                   if (!b) return false;
                   b.click();
                   return true;"#,
                button = serde_json::to_string(button)?
            ))
            .await?;
        anyhow::ensure!(clicked == true, "no {button:?} button in the room");
        browser.find(ready).await?;
        audit(&browser, screen, &mut found).await?;
    }

    for (path, ready, screen) in [
        ("/profile", "input", "profile"),
        ("/devices", "main", "devices"),
        ("/admin", "main", "admin"),
        ("/analytics", "svg", "analytics"),
        ("/performance", "main h1", "performance"),
        ("/logs", "main h1", "logs"),
        ("/settings", "form", "settings"),
        ("/nowhere", "main", "not found"),
    ] {
        open_page(&browser, &server, path, ready).await?;
        audit(&browser, screen, &mut found).await?;
    }

    browser.quit().await?;
    assert!(
        found.is_empty(),
        "axe-core found {} violations:\n{}",
        found.len(),
        found.join("\n")
    );
    Ok(())
}
