//! The `/logs` page (issue 12) in headless Chromium, against the built app and both Workers
//! under `wrangler dev`: a global admin sees a failure the Worker logged, opens its details, and
//! with "Live" on sees the next one arrive without reloading; a guest at `/logs` sees "Not
//! found", as the server answers them.
//!
//! Needs `./scripts/build` (the app in `dist/`) and `./scripts/setup --browser` (Debian
//! chromium and chromedriver); without them the test fails and says so.

use e2e::browser::{Browser, ChromeDriver};
use e2e::{random_hex, DevOptions, DevServer, Result, Session};
use reqwest::Method;
use shared::ErrorCode;

/// Types into the input a label (or aria-label) names.
async fn fill(browser: &Browser, label: &str, text: &str) -> Result {
    browser.field(label).await?.send_keys(text).await?;
    Ok(())
}

/// Waits until a row of the log table shows `route`; returns the row's cells' text.
async fn row_with(browser: &Browser, route: &str) -> Result<serde_json::Value> {
    let script = format!(
        r#"
        const row = Array.from(document.querySelectorAll('table.logs-table tr.log-row'))
            .find(r => r.textContent.includes({route}));
        return row ? Array.from(row.cells).map(c => c.textContent.trim()) : null;
        "#,
        route = serde_json::to_string(route)?
    );
    browser
        .wait_for(&format!("a log row for {route}"), &script)
        .await
}

async fn fail(who: &Session, path: &str) -> Result {
    let response = who.request(Method::POST, path).send().await?;
    e2e::client::expect_error(response, ErrorCode::Internal).await?;
    Ok(())
}

#[tokio::test]
async fn an_admin_reads_the_log_and_sees_new_entries_live_and_a_guest_sees_not_found() -> Result {
    let server = DevServer::start(
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("LOGS_TEST_FAILURES", "1")
            .with_app(),
    )
    .await?;
    let driver = ChromeDriver::start().await?;
    let tag = format!("tag{}", random_hex(5));
    let guest = Session::create(&server, "Someone").await?;
    let first = format!("/api/test/failure/{tag}/first");
    fail(&guest, &first).await?;

    // The install's first account is the global admin.
    let admin = driver.browser().await?;
    admin.goto(&server.url()).await?;
    fill(&admin, "Local account name", "Root").await?;
    admin.click_button("Sign in").await?;
    admin.find(r#"nav[aria-label="Rooms"]"#).await?;
    admin.goto(&format!("{}/logs", server.url())).await?;
    let cells = row_with(&admin, &first).await?;
    let cells: Vec<String> = serde_json::from_value(cells)?;
    assert_eq!(cells[1], "error", "{cells:?}");
    assert_eq!(cells[2], "worker", "{cells:?}");
    assert_eq!(cells[3], "request failed", "{cells:?}");
    assert_eq!(cells[5], "internal", "{cells:?}");

    // Its details open under it, with the scrubbed detail.
    let open = format!(
        r#"
        const row = Array.from(document.querySelectorAll('tr.log-row'))
            .find(r => r.textContent.includes({first}));
        const button = row && row.querySelector('button[aria-expanded]');
        if (!button) return null;
        if (button.getAttribute('aria-expanded') === 'false') button.click();
        const details = document.getElementById(button.getAttribute('aria-controls'));
        return details ? details.textContent : null;
        "#,
        first = serde_json::to_string(&first)?
    );
    let details = admin.wait_for("the entry's details", &open).await?;
    let details = details.as_str().unwrap_or_default();
    assert!(details.contains("test failure for [email]"), "{details}");
    assert!(!details.contains("erin@example.com"), "{details}");

    // Live: a new failure appears on top without a reload.
    admin
        .eval(
            r#"const live = Array.from(document.querySelectorAll('label'))
                 .find(l => l.textContent.trim() === 'Live').querySelector('input');
               live.click(); return live.checked;"#,
        )
        .await?;
    let second = format!("/api/test/failure/{tag}/second");
    fail(&guest, &second).await?;
    row_with(&admin, &second).await?;
    let top = admin
        .eval("return document.querySelector('table.logs-table tr.log-row').textContent;")
        .await?;
    assert!(
        top.as_str().unwrap_or_default().contains(&second),
        "the newest on top: {top}"
    );

    // A guest: the page says what the server says, "Not found".
    let visitor = driver.browser().await?;
    visitor.goto(&server.url()).await?;
    fill(&visitor, "Display name", "Visitor").await?;
    visitor.click_button("Continue").await?;
    visitor.find(r#"nav[aria-label="Rooms"]"#).await?;
    visitor.goto(&format!("{}/logs", server.url())).await?;
    visitor
        .wait_for(
            "Not found",
            r#"return Array.from(document.querySelectorAll('h1'))
                   .some(h => h.textContent === 'Not found');"#,
        )
        .await?;
    let links = visitor
        .eval("return Array.from(document.querySelectorAll('a[href=\"/logs\"]')).length;")
        .await?;
    assert_eq!(links, 0, "no Logs link for a guest");
    admin.quit().await?;
    visitor.quit().await?;
    Ok(())
}
