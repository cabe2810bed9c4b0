//! Keyboard only (issue 13 item 3), in headless Chromium against the built app under `wrangler
//! dev`: sign in, create a room, send, reply in a thread, react, search and open a result, and
//! attach a file, moving only with Tab and acting only with Enter, Space and Escape. Every step
//! first proves its control is reachable by Tab (within a bounded number of presses), then
//! acts on whatever has focus; focus must come back where it was when a panel closes.
//!
//! Needs `./scripts/build` (the app in `dist/`) and `./scripts/setup --browser`.

use e2e::browser::{Browser, ChromeDriver};
use e2e::{unique, DevOptions, DevServer, Result};

const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";
const ESCAPE: &str = "\u{e00c}";
const SPACE: &str = " ";
/// No control of a flow is further than this many Tab presses from the one before it.
const MAX_TABS: usize = 60;

/// Presses keys on whatever has focus.
async fn press(browser: &Browser, keys: &str) -> Result {
    browser
        .client
        .active_element()
        .await?
        .send_keys(keys)
        .await?;
    Ok(())
}

/// Presses Tab until the focused element satisfies `is_it` (a JavaScript expression over `el`,
/// the focused element); fails after [`MAX_TABS`] presses, naming `what`.
async fn tab_to(browser: &Browser, what: &str, is_it: &str) -> Result {
    let check = format!("const el = document.activeElement; return !!el && ({is_it});");
    for _ in 0..MAX_TABS {
        if browser.eval(&check).await? == true {
            return Ok(());
        }
        press(browser, TAB).await?;
    }
    let at = browser
        .eval("const el = document.activeElement; return el ? el.outerHTML.slice(0, 120) : null;")
        .await?;
    anyhow::bail!("{what} is not reachable with {MAX_TABS} Tab presses (focus is on {at})")
}

/// A JavaScript test of `el`: a button whose text or accessible label is `name`.
fn button(name: &str) -> String {
    let name = serde_json::to_string(name).unwrap_or_default();
    format!(
        "el.tagName === 'BUTTON' && (el.textContent.trim() === {name} || el.getAttribute('aria-label') === {name})"
    )
}

/// A JavaScript test of `el`: a field labelled `label`.
fn field(label: &str) -> String {
    let label = serde_json::to_string(label).unwrap_or_default();
    format!(
        "(el.getAttribute('aria-label') === {label} || (el.labels && Array.from(el.labels).some(l => l.textContent.trim().startsWith({label}))))"
    )
}

/// A JavaScript test of `el`: inside the timeline row that shows `text`.
fn in_row(text: &str) -> String {
    let text = serde_json::to_string(text).unwrap_or_default();
    format!("(() => {{ const li = el.closest('li.message'); return !!li && li.textContent.includes({text}); }})()")
}

async fn wait(browser: &Browser, what: &str, script: &str) -> Result {
    browser.wait_for(what, script).await?;
    Ok(())
}

#[tokio::test]
async fn everything_a_reader_does_in_a_room_works_from_the_keyboard_alone() -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.field("Display name").await?;

    // Sign in and create a room.
    tab_to(&browser, "the display name field", &field("Display name")).await?;
    press(&browser, &format!("Kim{ENTER}")).await?;
    browser.find(r#"nav[aria-label="Rooms"]"#).await?;
    tab_to(&browser, "the room name field", &field("Room name")).await?;
    let name = unique("Keyboard Room");
    press(&browser, &format!("{name}{ENTER}")).await?;

    // Send a message.
    browser.find(r#"textarea[aria-label="Message"]"#).await?;
    tab_to(&browser, "the message box", &field("Message")).await?;
    press(&browser, &format!("typed without a mouse{ENTER}")).await?;
    wait(
        &browser,
        "the message sent",
        r#"return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
               .some(li => li.textContent.includes('typed without a mouse') && li.dataset.status === 'sent');"#,
    )
    .await?;

    // Reply in its thread: the reply box takes focus, Escape closes the panel and focus goes
    // back to the Reply button.
    let reply_button = format!("{} && {}", button("Reply"), in_row("typed without a mouse"));
    tab_to(&browser, "the message's Reply button", &reply_button).await?;
    press(&browser, ENTER).await?;
    wait(
        &browser,
        "the reply box to have focus",
        "return document.activeElement && document.activeElement.getAttribute('aria-label') === 'Reply';",
    )
    .await?;
    press(&browser, &format!("and a reply{ENTER}")).await?;
    wait(
        &browser,
        "the reply in the thread",
        r#"return Array.from(document.querySelectorAll('.thread-panel li.message'))
               .some(li => li.textContent.includes('and a reply') && li.dataset.status === 'sent');"#,
    )
    .await?;
    press(&browser, ESCAPE).await?;
    wait(
        &browser,
        "the thread closed and focus back on Reply",
        &format!(
            "const el = document.activeElement; return !document.querySelector('.thread-panel') && !!el && {reply_button};"
        ),
    )
    .await?;

    // React with Space.
    let react = format!(
        "{} && {}",
        button("Add a reaction"),
        in_row("typed without a mouse")
    );
    tab_to(&browser, "the message's Add a reaction button", &react).await?;
    press(&browser, SPACE).await?;
    let party = format!("{} && {}", button("🎉"), in_row("typed without a mouse"));
    tab_to(&browser, "the 🎉 reaction", &party).await?;
    press(&browser, SPACE).await?;
    wait(
        &browser,
        "the reaction counted",
        r#"return Array.from(document.querySelectorAll('li.message button.reaction'))
               .some(b => b.textContent.trim() === '🎉 1');"#,
    )
    .await?;

    // Search, and open the result.
    tab_to(&browser, "the Search button", &button("🔍 Search")).await?;
    press(&browser, ENTER).await?;
    wait(
        &browser,
        "the search field to have focus",
        "return document.activeElement && document.activeElement.getAttribute('aria-label') === 'Search messages';",
    )
    .await?;
    press(&browser, &format!("mouse{ENTER}")).await?;
    browser.find(".search-results button.search-hit").await?;
    tab_to(
        &browser,
        "the search result",
        "el.classList.contains('search-hit') && el.textContent.includes('mouse')",
    )
    .await?;
    press(&browser, ENTER).await?;
    wait(
        &browser,
        "the result opened in context",
        r#"const c = document.querySelector('.search-context');
           return !!c && c.textContent.includes('typed without a mouse');"#,
    )
    .await?;
    press(&browser, ESCAPE).await?;

    // Attach a file: the Attachment button is reachable and named; the system's file dialog it
    // opens is the operating system's, so the file is then given to the input as a picked
    // file would be.
    tab_to(&browser, "the Attachment button", &button("Attachment")).await?;
    browser
        .pick_file(
            r#"form.composer input[type="file"]"#,
            &e2e::fixture_image("chelsea-224.png")?,
        )
        .await?;
    browser.wait_uploaded(1).await?;
    tab_to(&browser, "the message box", &field("Message")).await?;
    press(&browser, &format!("with a picture{ENTER}")).await?;
    wait(
        &browser,
        "the message with its image",
        r#"return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
               .some(li => li.dataset.status === 'sent' && li.textContent.includes('with a picture')
                   && !!li.querySelector('img'));"#,
    )
    .await?;

    browser.quit().await?;
    Ok(())
}
