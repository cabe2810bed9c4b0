//! The app at a phone's size and a desktop's, in light and dark (issue 13 item 7), in headless
//! Chromium against the built app under `wrangler dev`: the main flows work at 390×844, the
//! room list becomes a drawer in a room, and no page scrolls sideways. Every screen is saved
//! as a PNG under `target/screenshots/` for review (CI keeps `target/`), light and dark.
//!
//! Needs `./scripts/build` (the app in `dist/`) and `./scripts/setup --browser`.

use std::path::PathBuf;

use e2e::browser::{Browser, ChromeDriver};
use e2e::{repo_root, DevOptions, DevServer, Result};
use serde_json::json;

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{e007}";

/// A viewport the page is laid out for.
#[derive(Clone, Copy)]
struct Size {
    name: &'static str,
    width: u32,
    height: u32,
    mobile: bool,
}

const PHONE: Size = Size {
    name: "phone",
    width: 390,
    height: 844,
    mobile: true,
};
const DESKTOP: Size = Size {
    name: "desktop",
    width: 1280,
    height: 800,
    mobile: false,
};

async fn use_size(browser: &Browser, size: Size) -> Result {
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": size.width,
                "height": size.height,
                "deviceScaleFactor": 1,
                "mobile": size.mobile,
            }),
        )
        .await?;
    Ok(())
}

fn screenshots() -> Result<PathBuf> {
    let dir = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Checks that the screen does not scroll sideways, then saves it in light and dark as
/// `<size>-<screen>-<scheme>.png`.
async fn screen(browser: &Browser, size: Size, name: &str) -> Result {
    let overflow = browser
        .eval(
            r#"const wide = Array.from(document.querySelectorAll('body *'))
                   .filter(el => {
                       const r = el.getBoundingClientRect();
                       return r.width > 0 && r.right > window.innerWidth + 1
                           && getComputedStyle(el).visibility !== 'hidden';
                   })
                   .slice(0, 3)
                   .map(el => el.tagName.toLowerCase() + '.' + Array.from(el.classList).join('.'));
               return {
                   scroll: document.documentElement.scrollWidth,
                   width: window.innerWidth,
                   wide,
               };"#,
        )
        .await?;
    let scroll = overflow["scroll"].as_u64().unwrap_or(u64::MAX);
    let width = overflow["width"].as_u64().unwrap_or(0);
    assert!(
        scroll <= width,
        "{} {name}: the page is {scroll} px wide in a {width} px viewport; too wide: {}",
        size.name,
        overflow["wide"]
    );
    assert_eq!(
        overflow["wide"],
        json!([]),
        "{} {name}: elements reach past the right edge",
        size.name
    );
    let dir = screenshots()?;
    for scheme in ["light", "dark"] {
        browser.use_color_scheme(scheme).await?;
        let png = browser.client.screenshot().await?;
        std::fs::write(dir.join(format!("{}-{name}-{scheme}.png", size.name)), png)?;
    }
    browser.use_color_scheme("light").await?;
    Ok(())
}

/// Whether the element matching `css` is laid out (displayed and not hidden).
fn shown_js(css: &str) -> String {
    format!(
        r#"const el = document.querySelector({css});
           return !!el && el.getClientRects().length > 0
               && getComputedStyle(el).visibility !== 'hidden';"#,
        css = serde_json::to_string(css).unwrap_or_default()
    )
}

async fn shown(browser: &Browser, css: &str) -> Result<bool> {
    Ok(browser.eval(&shown_js(css)).await? == true)
}

#[tokio::test]
async fn on_a_phone_the_main_flows_work_the_room_list_is_a_drawer_and_nothing_scrolls_sideways(
) -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    use_size(&browser, PHONE).await?;
    browser.goto(&server.url()).await?;
    browser.field("Display name").await?;
    screen(&browser, PHONE, "welcome").await?;
    browser
        .field("Display name")
        .await?
        .send_keys("Alice")
        .await?;
    browser.click_button("Continue").await?;

    // At home the room list is the page.
    browser.find(r#"nav[aria-label="Rooms"]"#).await?;
    assert!(shown(&browser, r#"nav[aria-label="Rooms"]"#).await?);
    screen(&browser, PHONE, "home").await?;

    // In a room it steps aside for the timeline, behind a "Rooms" button.
    let slug = browser.create_room("Phone Room").await?;
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    composer.send_keys("hello from a small screen").await?;
    composer.send_keys(ENTER).await?;
    browser
        .wait_for(
            "the message sent",
            r#"return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                   .some(li => li.textContent.includes('hello from a small screen')
                       && li.dataset.status === 'sent');"#,
        )
        .await?;
    assert!(!shown(&browser, r#"nav[aria-label="Rooms"]"#).await?);
    assert!(shown(&browser, "button.sidebar-toggle").await?);
    screen(&browser, PHONE, "room").await?;

    browser.click_button("Rooms").await?;
    browser
        .wait_for("the drawer open", &shown_js(r#"nav[aria-label="Rooms"]"#))
        .await?;
    let expanded = browser
        .eval(r#"return document.querySelector('button.sidebar-toggle').getAttribute('aria-expanded');"#)
        .await?;
    assert_eq!(expanded, "true");
    screen(&browser, PHONE, "drawer").await?;
    browser.click_button("Rooms").await?;
    browser
        .wait_for(
            "the drawer closed",
            &format!(
                "return !(() => {{ {} }})();",
                shown_js(r#"nav[aria-label="Rooms"]"#)
            ),
        )
        .await?;

    // A thread opens over the timeline and is answered there.
    browser
        .wait_for(
            "the Reply button of the message",
            r#"const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                   .find(li => li.textContent.includes('hello from a small screen'));
               const b = li && Array.from(li.querySelectorAll('button'))
                   .find(b => b.textContent.trim() === 'Reply' || b.getAttribute('aria-label') === 'Reply');
               if (!b) return false;
               b.click();
               return true;"#,
        )
        .await?;
    let reply = browser.find(r#"textarea[aria-label="Reply"]"#).await?;
    reply.send_keys("a reply on the phone").await?;
    reply.send_keys(ENTER).await?;
    browser
        .wait_for(
            "the reply in the thread panel",
            r#"return Array.from(document.querySelectorAll('.thread-panel li.message'))
                   .some(li => li.textContent.includes('a reply on the phone')
                       && li.dataset.status === 'sent');"#,
        )
        .await?;
    screen(&browser, PHONE, "thread").await?;
    browser.click_named("Close the thread").await?;

    // Search finds it.
    browser.click_button("🔍 Search").await?;
    let search = browser.field("Search messages").await?;
    search.send_keys("phone").await?;
    search.send_keys(ENTER).await?;
    browser
        .wait_for(
            "a highlighted search result",
            r#"return Array.from(document.querySelectorAll('.search-results mark'))
                   .some(m => m.textContent.toLowerCase() === 'phone');"#,
        )
        .await?;
    screen(&browser, PHONE, "search").await?;
    browser.click_named("Close search").await?;

    // The profile page fits too.
    browser.goto(&format!("{}/profile", server.url())).await?;
    browser.field("Display name").await?;
    screen(&browser, PHONE, "profile").await?;

    // At a desktop's size the list and the room sit side by side.
    use_size(&browser, DESKTOP).await?;
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    browser.find(r#"textarea[aria-label="Message"]"#).await?;
    browser
        .wait_for(
            "the room list beside the room",
            &shown_js(r#"nav[aria-label="Rooms"]"#),
        )
        .await?;
    assert!(!shown(&browser, "button.sidebar-toggle").await?);
    screen(&browser, DESKTOP, "room").await?;

    browser.quit().await?;
    Ok(())
}
