//! End-to-end flows in headless Chromium (WebDriver), against the built app and Worker under
//! `wrangler dev`. Each test has its own server, since one of them stops and restarts it.
//!
//! Needs `./scripts/build` (the app in `dist/`) and `./scripts/setup --browser` (Debian
//! chromium and chromedriver); without them the tests fail and say so, never pass silently.

use anyhow::Context;
use std::time::Duration;

use e2e::browser::{Browser, ChromeDriver};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use serde::Deserialize;

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{e007}";
/// At most this long for a message typed offline to be delivered once the server is back (the
/// app's reconnect backoff grows while the server is down).
const REDELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One `li.message` as the page shows it.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    seq: Option<String>,
    client_id: Option<String>,
    status: Option<String>,
    text: String,
}

const ROWS_JS: &str = r#"
    return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
        .map(li => ({
            seq: li.dataset.seq ?? null,
            client_id: li.dataset.clientId ?? null,
            status: li.dataset.status ?? null,
            text: li.textContent,
        }));
"#;

async fn rows(browser: &Browser) -> Result<Vec<Row>> {
    Ok(serde_json::from_value(browser.eval(ROWS_JS).await?)?)
}

async fn wait_phase(browser: &Browser, phases: &[&str]) -> Result {
    let script = format!(
        r#"
        const b = document.querySelector('[role="status"].banner');
        return !!b && {phases}.includes(b.dataset.phase);
        "#,
        phases = serde_json::to_string(phases)?
    );
    if let Err(e) = browser
        .wait_for(&format!("the banner to say {phases:?}"), &script)
        .await
    {
        let shown = browser
            .eval(r#"const b = document.querySelector('[role="status"].banner');
                     const dbs = (await indexedDB.databases()).map(d => d.name + '@' + d.version);
                     return (b ? b.dataset.phase + ': ' + b.textContent : 'no banner') + ' dbs ' + dbs.join(',');"#)
            .await?;
        return Err(e.context(format!("the banner shows {shown}")));
    }
    Ok(())
}

async fn send_message(browser: &Browser, text: &str, with_enter: bool) -> Result {
    let composer = browser.find(r#"textarea[aria-label="Message"]"#).await?;
    composer.send_keys(text).await?;
    if with_enter {
        composer.send_keys(ENTER).await?;
    } else {
        // The composer's own submit button (the new-room form has one too).
        let clicked = browser
            .eval(
                r#"
                const area = document.querySelector('textarea[aria-label="Message"]');
                const button = area && area.form && area.form.querySelector('button[type="submit"]');
                if (!button || button.textContent.trim() !== 'Send') return false;
                button.click();
                return true;
                "#,
            )
            .await?;
        anyhow::ensure!(clicked == true, "no Send button in the composer's form");
    }
    Ok(())
}

/// Waits until exactly one row shows `text` with the given status; returns it.
async fn wait_row(browser: &Browser, text: &str, status: &str, timeout: Duration) -> Result<Row> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let all = rows(browser).await?;
        let matching: Vec<&Row> = all.iter().filter(|r| r.text.contains(text)).collect();
        if let [row] = matching.as_slice() {
            if row.status.as_deref() == Some(status) {
                return Ok((*row).clone());
            }
        }
        if matching.len() > 1 {
            anyhow::bail!("{text:?} is shown {} times: {matching:?}", matching.len());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no single {status} row with {text:?} within {timeout:?}; rows: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Fixture {
    server: DevServer,
    _driver: ChromeDriver,
    alice: Browser,
    bob: Browser,
    slug: String,
}

/// A server, two browsers signed in as Alice and Bob, and a room Alice created in the app and
/// both have open.
async fn two_people_in_a_room() -> Result<Fixture> {
    two_people_in_a_room_with(false).await
}

/// As [`two_people_in_a_room`]; with `local_alice`, the server offers the local account
/// (`DEV_LOGIN`) and Alice signs in with it instead of as a guest.
async fn two_people_in_a_room_with(local_alice: bool) -> Result<Fixture> {
    let mut options = DevOptions::default().with_app();
    if local_alice {
        options = options.var("DEV_LOGIN", "true");
    }
    let server = DevServer::start(options).await?;
    let driver = ChromeDriver::start().await?;
    let alice = driver.browser().await?;
    let bob = driver.browser().await?;

    alice.goto(&server.url()).await?;
    if local_alice {
        alice.sign_in_locally("Alice").await?;
    } else {
        alice.sign_in_as_guest("Alice").await?;
    }
    let name = unique("Browser Room");
    alice.field("Room name").await?.send_keys(&name).await?;
    alice.field("Topic").await?.send_keys("end to end").await?;
    alice.click_button("Create room").await?;
    let slug = shared::limits::slugify(&name);
    alice
        .find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?;
    alice.goto(&format!("{}/r/{slug}", server.url())).await?;
    wait_phase(&alice, &["live"]).await?;

    bob.goto(&format!("{}/r/{slug}", server.url())).await?;
    bob.sign_in_as_guest("Bob").await?;
    // The prompt may return to the home page; the room is in the list either way.
    bob.find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?;
    bob.goto(&format!("{}/r/{slug}", server.url())).await?;
    wait_phase(&bob, &["live"]).await?;
    Ok(Fixture {
        server,
        _driver: driver,
        alice,
        bob,
        slug,
    })
}

#[tokio::test]
async fn two_people_in_two_browsers_see_each_others_messages_and_a_reload_keeps_them() -> Result {
    let f = two_people_in_a_room().await?;

    send_message(&f.alice, "hello from alice", true).await?;
    let mine = wait_row(
        &f.alice,
        "hello from alice",
        "sent",
        Duration::from_secs(20),
    )
    .await?;
    let theirs = wait_row(&f.bob, "hello from alice", "sent", Duration::from_secs(20)).await?;
    assert_eq!(mine.seq, theirs.seq);
    assert_eq!(mine.client_id, theirs.client_id);

    send_message(&f.bob, "hi alice, bob here", false).await?;
    wait_row(
        &f.alice,
        "hi alice, bob here",
        "sent",
        Duration::from_secs(20),
    )
    .await?;
    // A screen reader hears Bob's message at Alice's (a polite live region), and Bob does
    // not hear his own.
    let announcer = r#"const a = document.querySelector('.new-message-announcer');
                       return a ? a.textContent : null;"#;
    let heard = f
        .alice
        .wait_for("Alice's live region to announce Bob's message", announcer)
        .await?;
    assert_eq!(heard, "Bob: hi alice, bob here");
    assert_eq!(f.bob.eval(announcer).await?, "Alice: hello from alice");

    f.bob.reload().await?;
    wait_phase(&f.bob, &["live"]).await?;
    wait_row(&f.bob, "hello from alice", "sent", Duration::from_secs(20)).await?;
    wait_row(
        &f.bob,
        "hi alice, bob here",
        "sent",
        Duration::from_secs(20),
    )
    .await?;
    let after_reload = rows(&f.bob).await?;
    let seqs: Vec<Option<&str>> = after_reload.iter().map(|r| r.seq.as_deref()).collect();
    assert_eq!(seqs, [Some("1"), Some("2")], "{after_reload:?}");

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_message_typed_while_the_server_is_down_is_pending_then_delivered_exactly_once() -> Result
{
    let mut f = two_people_in_a_room().await?;
    send_message(&f.alice, "before the outage", true).await?;
    wait_row(&f.bob, "before the outage", "sent", Duration::from_secs(20)).await?;

    f.server.stop().await?;
    wait_phase(&f.alice, &["reconnecting", "offline"]).await?;
    send_message(&f.alice, "typed during the outage", true).await?;
    let pending = wait_row(
        &f.alice,
        "typed during the outage",
        "pending",
        Duration::from_secs(20),
    )
    .await?;

    f.server.start_again().await?;
    let delivered = wait_row(
        &f.alice,
        "typed during the outage",
        "sent",
        REDELIVERY_TIMEOUT,
    )
    .await?;
    assert_eq!(delivered.client_id, pending.client_id);
    let at_bob = wait_row(
        &f.bob,
        "typed during the outage",
        "sent",
        REDELIVERY_TIMEOUT,
    )
    .await?;
    assert_eq!(at_bob.seq, delivered.seq);

    // The room stored it once: a fresh client's history has it exactly once, and nothing else
    // was added by retries.
    let carol = Session::create(&f.server, "Carol").await?;
    let (_, joined) = carol.join(&f.slug, None).await?;
    let history = joined.history.expect("a join without cursor gets a page");
    let texts: Vec<&str> = history.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before the outage", "typed during the outage"]);
    assert_eq!(
        Some(history.messages[1].client_id.as_str()),
        delivered.client_id.as_deref()
    );
    assert_eq!(
        Some(history.messages[1].seq.to_string()),
        delivered.seq,
        "the page shows the seq the room assigned"
    );

    // Both pages still show it once after everything settled (wait_row fails on doubles).
    wait_row(
        &f.alice,
        "typed during the outage",
        "sent",
        Duration::from_secs(5),
    )
    .await?;
    wait_row(
        &f.bob,
        "typed during the outage",
        "sent",
        Duration::from_secs(5),
    )
    .await?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

/// The answer's row: its `answer-bar` state and its text.
async fn answer_state(browser: &Browser) -> Result<(Option<String>, String)> {
    let value = browser
        .eval(
            r#"
            const li = document.querySelector('ol[aria-label="Messages"] > li.message.answer');
            if (!li) return null;
            const bar = li.querySelector('.answer-bar');
            const body = li.querySelector('.body');
            return [bar ? bar.dataset.state : null, body ? body.textContent : ''];
            "#,
        )
        .await?;
    Ok(
        serde_json::from_value::<Option<(Option<String>, String)>>(value)?
            .unwrap_or((None, String::new())),
    )
}

async fn wait_answer(browser: &Browser, state: &str, timeout: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (now, text) = answer_state(browser).await?;
        if now.as_deref() == Some(state) {
            return Ok(text);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the answer is {now:?} ({text:?}), not {state} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the answer shows `state` with `text` (the typing cursor aside), which proves
/// what was on the page at that moment; fails after 20 s with what it showed.
async fn wait_answer_text(browser: &Browser, state: &str, text: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (now, shown) = answer_state(browser).await?;
        let bare = shown.trim_end_matches('▍').trim();
        if now.as_deref() == Some(state) && bare == text.trim() {
            return Ok(bare.to_owned());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the answer is {now:?} ({shown:?}), not {state} with {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_answer_streams_into_the_page_survives_a_reload_mid_stream_and_can_be_rated() -> Result {
    use e2e::fake_ai::{FakeAi, Gate, Script};
    let fake = FakeAi::start().await?;
    let server = DevServer::start(
        DevOptions::default()
            .with_app()
            .var("AI_PROVIDER", "openai")
            .var("AI_BASE_URL", fake.base_url())
            .var("AI_MODEL", "fake-model"),
    )
    .await?;
    let words: Vec<String> = (1..=40).map(|i| format!("word{i} ")).collect();
    let (before, after) = (words[..10].concat(), words[10..].concat());
    let reply = words.concat();
    let marker = unique("story");
    // The provider holds the rest until the page is back: the reload is mid-answer by
    // construction.
    let gate = Gate::new();
    fake.push(
        &marker,
        Script::gated(&before, &after, Duration::from_millis(50), &gate),
    );

    let driver = ChromeDriver::start().await?;
    let alice = driver.browser().await?;
    alice.goto(&server.url()).await?;
    alice.sign_in_as_guest("Alice").await?;
    let owner = Session::create(&server, "Owner").await?;
    let room = owner.create_room(&unique("AI Room"), "").await?;
    alice
        .goto(&format!("{}/r/{}", server.url(), room.slug))
        .await?;
    wait_phase(&alice, &["live"]).await?;

    send_message(
        &alice,
        &format!("@assistant tell me a story {marker}"),
        true,
    )
    .await?;
    let partial = wait_answer_text(&alice, "streaming", &before).await?;
    assert_eq!(
        partial.trim(),
        before.trim(),
        "a partial answer before the reload"
    );
    // Reload while it is being written: the page comes back with the text so far, still
    // streaming, then the rest.
    alice.reload().await?;
    wait_phase(&alice, &["live"]).await?;
    let back = wait_answer_text(&alice, "streaming", &before).await?;
    assert_eq!(
        back.trim(),
        before.trim(),
        "the text so far, once, after the reload"
    );
    gate.open();
    let done = wait_answer(&alice, "done", Duration::from_secs(30)).await?;
    assert_eq!(
        done.trim(),
        reply.trim(),
        "the whole answer, each word once"
    );

    alice.click_button("👍 0").await?;
    alice
        .wait_for(
            "the thumbs-up to count the vote",
            r#"
            const b = document.querySelector('button[aria-label="Helpful"]');
            return !!b && b.getAttribute('aria-pressed') === 'true' && b.textContent.includes('1');
            "#,
        )
        .await?;
    alice.quit().await?;
    Ok(())
}

#[tokio::test]
async fn catch_me_up_shows_a_cited_summary_only_to_the_reader_who_asked() -> Result {
    use e2e::fake_ai::{FakeAi, Script};
    let fake = FakeAi::start().await?;
    let server = DevServer::start(
        DevOptions::default()
            .with_app()
            .var("AI_PROVIDER", "openai")
            .var("AI_BASE_URL", fake.base_url())
            .var("AI_MODEL", "fake-model"),
    )
    .await?;
    let marker = unique("launch");
    let summary = "The launch moved to Friday [1].";
    fake.push(&marker, Script::words(summary, Duration::from_millis(20)));

    let ann = Session::create(&server, "Ann").await?;
    let room = ann.create_room(&unique("Catch Up Room"), "").await?;
    let (mut socket, _) = ann.join(&room.slug, None).await?;
    socket.post("c0", "Morning all").await?;
    let room_url = format!("{}/r/{}", server.url(), room.slug);
    let driver = ChromeDriver::start().await?;
    let (alice, bob) = (driver.browser().await?, driver.browser().await?);
    for (browser, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        browser.goto(&server.url()).await?;
        browser.sign_in_as_guest(name).await?;
        browser.goto(&room_url).await?;
        wait_phase(browser, &["live"]).await?;
    }
    // Bob leaves (he has read the room so far); Ann writes while he is away.
    wait_row(&bob, "Morning all", "sent", Duration::from_secs(20)).await?;
    bob.goto(&server.url()).await?;
    bob.find(r#"nav[aria-label="Rooms"]"#).await?;
    socket
        .post("c1", &format!("The launch moves to Friday {marker}"))
        .await?;
    socket.post("c2", "Who brings the snacks?").await?;
    wait_row(
        &alice,
        "Who brings the snacks?",
        "sent",
        Duration::from_secs(20),
    )
    .await?;

    bob.goto(&room_url).await?;
    wait_phase(&bob, &["live"]).await?;
    bob.click_button("Catch me up").await?;
    let card = bob
        .wait_for(
            "a finished private card citing its source",
            r#"
                const card = document.querySelector('.private-answer[data-state="done"]');
                if (!card) return false;
                const cite = card.querySelector('.body button.cite-ref');
                return {
                    text: card.querySelector('.body').textContent.trim(),
                    label: card.textContent.includes('Only visible to you'),
                    cite: cite && cite.getAttribute('aria-label'),
                    sources: (card.querySelector('.sources') || {}).textContent || '',
                    live: !!card.closest('[aria-live="polite"]'),
                };
                "#,
        )
        .await?;
    assert_eq!(card["text"], summary, "{card}");
    assert_eq!(card["label"], true, "{card}");
    assert_eq!(card["live"], true, "announced politely: {card}");
    let cite = card["cite"].as_str().unwrap_or_default();
    assert!(cite.starts_with("Source 1: Ann, "), "{card}");
    assert!(
        card["sources"]
            .as_str()
            .unwrap_or_default()
            .contains("[1] Ann"),
        "{card}"
    );
    assert_eq!(
        fake.requests(&marker).len(),
        1,
        "one request to the provider"
    );

    // The citation opens the cited message in context.
    bob.eval("document.querySelector('.private-answer .cite-ref').click(); return true;")
        .await?;
    bob.wait_for(
        "the cited message in the source panel",
        &format!(
            r#"const t = document.querySelector('aside[aria-label="Source"] li.target');
               return !!t && t.textContent.includes({});"#,
            serde_json::to_string(&marker)?
        ),
    )
    .await?;

    // Nobody else sees it: no card in Alice's page, nothing new in the room.
    assert_eq!(
        alice
            .eval("return document.querySelectorAll('.private-answer').length;")
            .await?,
        0
    );
    assert!(rows(&alice)
        .await?
        .iter()
        .all(|r| !r.text.contains("Friday [1]")));
    let texts: Vec<String> = history(&server, &room.slug)
        .await?
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(texts.len(), 3, "the catch-up is no message: {texts:?}");

    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn the_footer_shows_the_build_version_that_the_worker_reports_before_and_after_sign_in(
) -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let health: serde_json::Value = e2e::client::http()
        .get(format!("{}/api/health", server.url()))
        .send()
        .await?
        .json()
        .await?;
    let version = health["version"].as_str().unwrap_or_default().to_owned();
    assert!(!version.is_empty(), "{health}");
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    let shown = browser
        .find(".name-prompt footer.about .build-version")
        .await?;
    assert_eq!(shown.text().await?, version);
    browser.sign_in_as_guest(&unique("Reader")).await?;
    let shown = browser.find(".sidebar footer.about .build-version").await?;
    assert_eq!(shown.text().await?, version);
    browser.quit().await?;
    Ok(())
}

#[tokio::test]
async fn signing_in_with_the_local_account_shows_this_session_on_the_devices_page() -> Result {
    let server =
        DevServer::start(DevOptions::default().with_app().var("DEV_LOGIN", "true")).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    let name = unique("Local");
    browser
        .field("Local account name")
        .await?
        .send_keys(&name)
        .await?;
    browser.click_button("Sign in").await?;
    browser.find(r#"nav[aria-label="Rooms"]"#).await?;

    // The __Host- session cookie was accepted over http://127.0.0.1 and is sent back: a reload
    // is still signed in, and the devices page lists exactly this session.
    browser.goto(&format!("{}/devices", server.url())).await?;
    let devices = browser
        .wait_for(
            "the devices page to list one session",
            r#"
            const items = Array.from(document.querySelectorAll('ul.devices > li.device'));
            if (items.length === 0) return null;
            return items.map(li => ({ current: li.dataset.current, text: li.textContent }));
            "#,
        )
        .await?;
    let devices = devices.as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["current"], "true");
    let text = devices[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("Chrome on Linux"), "{text}");
    assert!(text.contains("This device"), "{text}");
    let whoami = browser.find(".whoami").await?.text().await?;
    assert_eq!(whoami, name);
    browser.quit().await?;
    Ok(())
}

/// The same-origin files the page has fetched so far, by path.
async fn fetched(browser: &Browser) -> Result<Vec<String>> {
    let paths = browser
        .eval(
            "return performance.getEntriesByType('resource')
                .map(e => new URL(e.name).pathname);",
        )
        .await?;
    Ok(serde_json::from_value(paths)?)
}

/// Whether `files` holds the wasm of `bundle` (`welcome`, `app` for the chat, or `full`).
fn has_bundle(files: &[String], bundle: &str) -> bool {
    files
        .iter()
        .any(|f| f.starts_with(&format!("/{bundle}-")) && f.ends_with("_bg.wasm"))
}

/// Waits for the splash to say, as an alert, that `bundle` could not be loaded.
async fn wait_could_not_load(browser: &Browser, bundle: &str) -> Result {
    browser
        .wait_for(
            &format!("the page to say {bundle} could not be loaded"),
            r#"const alert = document.querySelector('#splash [role="alert"]');
               return !!alert && alert.textContent.includes('could not be loaded');"#,
        )
        .await?;
    Ok(())
}

/// The splash's heading and status, if `#splash` is on the page and shows.
const SPLASH: &str = r#"const splash = document.getElementById('splash');
    if (!splash || splash.getBoundingClientRect().height === 0) return null;
    return [splash.querySelector('h1')?.textContent,
            splash.querySelector('[role=status]')?.textContent];"#;

#[tokio::test]
async fn the_sign_in_card_shows_before_any_bundle_has_downloaded_and_each_bundle_takes_its_place(
) -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    // No script and no wasm arrives: the page is its html and styles only.
    browser.cdp("Network.enable", serde_json::json!({})).await?;
    let block = |urls: &[&str]| serde_json::json!({ "urls": urls });
    browser
        .cdp("Network.setBlockedURLs", block(&["*.js", "*.wasm"]))
        .await?;
    browser.goto(&server.url()).await?;
    assert_eq!(
        browser.eval(SPLASH).await?,
        serde_json::json!(["Durable Chat", "Loading…"]),
        "the card shows with the page, before any bundle"
    );

    // With the bundles, the prompt's forms take the splash's place: one card, not two.
    browser.cdp("Network.setBlockedURLs", block(&[])).await?;
    browser.goto(&server.url()).await?;
    browser.field("Display name").await?;
    let cards = "return [document.querySelectorAll('#splash').length,
                         document.querySelectorAll('.name-prompt h1').length];";
    assert_eq!(browser.eval(cards).await?, serde_json::json!([0, 1]));

    // Signed in, a reload starts the chat bundle at once; it replaces the splash too.
    browser.sign_in_as_guest(&unique("Splash")).await?;
    browser.create_room("splash").await?;
    browser.wait_live().await?;
    browser.reload().await?;
    browser.wait_live().await?;
    assert_eq!(browser.eval(SPLASH).await?, serde_json::Value::Null);
    assert_eq!(browser.eval(cards).await?, serde_json::json!([0, 0]));

    // When the chat bundle cannot be downloaded, the splash says so. (Past the service
    // worker and the HTTP cache, which hold it since the first page.)
    browser
        .cdp("Network.setBlockedURLs", block(&["*/app-*"]))
        .await?;
    let on = serde_json::json!({ "bypass": true });
    browser.cdp("Network.setBypassServiceWorker", on).await?;
    let on = serde_json::json!({ "cacheDisabled": true });
    browser.cdp("Network.setCacheDisabled", on).await?;
    browser.reload().await?;
    wait_could_not_load(&browser, "the chat bundle").await?;
    browser.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_new_visitor_downloads_only_the_prompt_then_the_chat_and_a_page_outside_the_chat_the_full_bundle(
) -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.field("Display name").await?;
    let files = fetched(&browser).await?;
    assert!(
        has_bundle(&files, "welcome"),
        "the prompt's bundle: {files:?}"
    );
    assert!(
        !has_bundle(&files, "app") && !has_bundle(&files, "full"),
        "the prompt needs neither the chat nor the full bundle: {files:?}"
    );

    // Continuing as a guest hands the page to the chat, without a page load.
    browser.eval("window.sameDocument = true;").await?;
    browser.sign_in_as_guest(&unique("Reader")).await?;
    let slug = browser.create_room("bundles").await?;
    browser.wait_live().await?;
    let files = fetched(&browser).await?;
    assert!(has_bundle(&files, "app"), "the chat bundle: {files:?}");
    assert!(
        !has_bundle(&files, "full"),
        "the chat needs no full bundle: {files:?}"
    );
    assert_eq!(
        browser.eval("return window.sameDocument === true;").await?,
        true,
        "signing in reloaded the page"
    );
    // A reload starts the chat at once: this browser has a session.
    browser.reload().await?;
    browser.wait_live().await?;

    // The profile page is not in the chat bundle: following its link loads the page anew,
    // and the full bundle renders it.
    browser.find(".whoami").await?.click().await?;
    browser.field("Display name").await?;
    let files = fetched(&browser).await?;
    assert!(has_bundle(&files, "full"), "the full bundle: {files:?}");
    assert!(browser.eval("return location.pathname;").await? == "/profile");

    // The full bundle renders the chat too: back to the room without another page load.
    browser.eval("window.sameDocument = true;").await?;
    browser
        .find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?
        .click()
        .await?;
    browser.wait_live().await?;
    assert_eq!(
        browser.eval("return window.sameDocument === true;").await?,
        true,
        "opening the room from the full bundle reloaded the page"
    );

    // Without the full bundle (offline, a failed download) the page says so instead of
    // staying blank.
    browser.cdp("Network.enable", serde_json::json!({})).await?;
    browser
        .cdp(
            "Network.setBlockedURLs",
            serde_json::json!({ "urls": ["*/full-*"] }),
        )
        .await?;
    browser.goto(&format!("{}/devices", server.url())).await?;
    wait_could_not_load(&browser, "the full bundle").await?;
    browser.quit().await?;
    Ok(())
}

/// Clicks the button labelled `label` inside the timeline row that shows `text`.
async fn click_in_row(browser: &Browser, text: &str, label: &str) -> Result {
    let script = format!(
        r#"
        const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
            .find(li => li.textContent.includes({text}));
        const b = li && Array.from(li.querySelectorAll('button'))
            .find(b => b.textContent.trim() === {label} || b.getAttribute('aria-label') === {label});
        if (!b) return false;
        b.click();
        return true;
        "#,
        text = serde_json::to_string(text)?,
        label = serde_json::to_string(label)?
    );
    browser
        .wait_for(&format!("a {label:?} button in the row {text:?}"), &script)
        .await?;
    Ok(())
}

/// Waits until `script` (an expression over `li`, the timeline row showing `text`) is true.
async fn wait_row_shows(browser: &Browser, text: &str, what: &str, expr: &str) -> Result {
    let script = format!(
        r#"
        const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
            .find(li => li.textContent.includes({text}));
        return !!li && ({expr});
        "#,
        text = serde_json::to_string(text)?,
    );
    browser.wait_for(what, &script).await?;
    Ok(())
}

#[tokio::test]
async fn a_reply_in_a_thread_a_reaction_and_a_search_work_across_two_browsers() -> Result {
    let f = two_people_in_a_room().await?;
    send_message(&f.alice, "the thread root message", true).await?;
    wait_row(
        &f.bob,
        "the thread root message",
        "sent",
        Duration::from_secs(20),
    )
    .await?;

    // Bob replies in the thread from its side panel.
    click_in_row(&f.bob, "the thread root message", "Reply").await?;
    let reply = f.bob.find(r#"textarea[aria-label="Reply"]"#).await?;
    reply.send_keys("an answer inside the thread").await?;
    reply.send_keys(ENTER).await?;
    f.bob
        .wait_for(
            "the reply in the thread panel",
            r#"return Array.from(document.querySelectorAll('.thread-panel li.message'))
                .some(li => li.textContent.includes('an answer inside the thread')
                    && li.dataset.status === 'sent');"#,
        )
        .await?;
    // Alice's timeline shows the count, not the thread-only reply.
    wait_row_shows(
        &f.alice,
        "the thread root message",
        "a reply count on the root",
        "Array.from(li.querySelectorAll('.thread-link')).some(b => b.textContent.startsWith('1 reply'))",
    )
    .await?;
    assert!(rows(&f.alice)
        .await?
        .iter()
        .all(|r| !r.text.contains("an answer inside the thread")));

    // Alice reacts; Bob sees the count and who reacted.
    click_in_row(&f.alice, "the thread root message", "Add a reaction").await?;
    click_in_row(&f.alice, "the thread root message", "🎉").await?;
    wait_row_shows(
        &f.bob,
        "the thread root message",
        "Alice's reaction",
        "Array.from(li.querySelectorAll('button.reaction')).some(b => b.textContent.trim() === '🎉 1' && b.title === 'Alice')",
    )
    .await?;

    // Bob searches the room and finds the reply, highlighted.
    f.bob.click_button("🔍 Search").await?;
    let search = f.bob.field("Search messages").await?;
    search.send_keys("inside").await?;
    search.send_keys(ENTER).await?;
    f.bob
        .wait_for(
            "a highlighted search result",
            r#"return Array.from(document.querySelectorAll('.search-results mark'))
                .some(m => m.textContent.toLowerCase() === 'inside');"#,
        )
        .await?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

/// A JavaScript expression: the unread and mention badges the room list shows for `slug`
/// ("" when none, null when the room is not listed).
fn badges_js(slug: &str) -> String {
    format!(
        r#"(() => {{
            const a = document.querySelector('nav[aria-label="Rooms"] a[href="/r/{slug}"]');
            if (!a) return null;
            return Array.from(a.querySelectorAll('.badge')).map(b => b.textContent.trim()).join(' ');
        }})()"#
    )
}

#[tokio::test]
async fn a_room_that_is_not_open_gets_its_unread_and_mention_badges_live() -> Result {
    let f = two_people_in_a_room().await?;
    // Alice opens a second room; the first one is now only in her room list.
    let other = unique("Other Room");
    f.alice.field("Room name").await?.send_keys(&other).await?;
    f.alice.click_button("Create room").await?;
    let other_slug = shared::limits::slugify(&other);
    f.alice
        .wait_for(
            "the new room to open",
            &format!("return location.pathname === '/r/{other_slug}';"),
        )
        .await?;
    wait_phase(&f.alice, &["live"]).await?;
    assert_eq!(
        f.alice
            .eval(&format!("return {};", badges_js(&f.slug)))
            .await?,
        ""
    );

    // Bob writes in the first room. The room list only refreshes every minute: badges that
    // show within the UI timeout came over the room's watch.
    send_message(&f.bob, "are you there @Alice", true).await?;
    send_message(&f.bob, "second one", true).await?;
    f.alice
        .wait_for(
            "an unread badge of 2 and a mention badge of 1",
            &format!("return {} === '2 @1';", badges_js(&f.slug)),
        )
        .await?;

    // Reading the room clears its badges once she has moved on again.
    f.alice
        .find(&format!(
            r#"nav[aria-label="Rooms"] a[href="/r/{}"]"#,
            f.slug
        ))
        .await?
        .click()
        .await?;
    wait_row(&f.alice, "second one", "sent", Duration::from_secs(20)).await?;
    f.alice
        .find(&format!(
            r#"nav[aria-label="Rooms"] a[href="/r/{other_slug}"]"#
        ))
        .await?
        .click()
        .await?;
    f.alice
        .wait_for(
            "no badges on the room she read",
            &format!("return {} === '';", badges_js(&f.slug)),
        )
        .await?;
    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

/// Waits until the row showing `text` also shows `author` (the row's text includes its author).
async fn wait_author(browser: &Browser, text: &str, author: &str) -> Result {
    let script = format!(
        r#"
        return Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
            .some(li => li.textContent.includes({text})
                && li.querySelector('.author')?.textContent.trim() === {author});
        "#,
        text = serde_json::to_string(text)?,
        author = serde_json::to_string(author)?,
    );
    let waited = browser
        .wait_for(&format!("{text:?} shown under {author:?}"), &script)
        .await;
    if let Err(e) = waited {
        // Say what the row shows instead, so a failure tells a stale name from a missing row.
        let shown = browser
            .eval(&format!(
                r#"
                const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                    .find(li => li.textContent.includes({text}));
                return li ? li.querySelector('.meta')?.outerHTML ?? '(no author)' : '(no row)';
                "#,
                text = serde_json::to_string(text)?,
            ))
            .await
            .unwrap_or_default();
        return Err(e.context(format!("the row shows {shown}")));
    }
    Ok(())
}

/// Saves the profile page's form and waits for the page to say it was saved.
async fn save_profile(browser: &Browser) -> Result {
    browser.click_button("Save profile").await?;
    browser
        .wait_for(
            "the profile to be saved",
            r#"return Array.from(document.querySelectorAll('[role="status"]'))
                .some(s => s.textContent.trim() === 'Saved.');"#,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_display_name_edited_on_the_profile_page_shows_on_old_messages_in_another_session(
) -> Result {
    // Alice signs in with the local account (the issue's flow); Bob is a guest.
    let f = two_people_in_a_room_with(true).await?;
    send_message(&f.alice, "written before the rename", true).await?;
    wait_row(
        &f.bob,
        "written before the rename",
        "sent",
        Duration::from_secs(20),
    )
    .await?;
    wait_author(&f.bob, "written before the rename", "Alice").await?;

    f.alice.goto(&format!("{}/profile", f.server.url())).await?;
    let name = f.alice.field("Display name").await?;
    name.clear().await?;
    name.send_keys("Alicia Keys").await?;
    f.alice
        .field("Pronouns")
        .await?
        .send_keys("she/her")
        .await?;
    save_profile(&f.alice).await?;

    // Live: Bob's open room renames the old message.
    wait_author(&f.bob, "written before the rename", "Alicia Keys")
        .await
        .context("in the open room")?;
    // And after a reload (the room's page carries current names).
    f.bob.reload().await?;
    wait_phase(&f.bob, &["live"]).await?;
    wait_author(&f.bob, "written before the rename", "Alicia Keys")
        .await
        .context("after a reload")?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn what_someone_types_on_the_profile_page_survives_live_activity_in_their_rooms() -> Result {
    let f = two_people_in_a_room_with(true).await?;
    f.alice.goto(&format!("{}/profile", f.server.url())).await?;
    let name = f.alice.field("Display name").await?;
    f.alice
        .wait_for(
            "the form to show her stored name",
            r#"return document.getElementById('profile-name')?.value === 'Alice';"#,
        )
        .await?;
    name.clear().await?;
    name.send_keys("Alice, half typed").await?;

    // While she types, Bob writes in her room: the room list's badges update live, and the
    // page around the form renders again.
    send_message(&f.bob, "anyone there?", true).await?;
    f.alice
        .wait_for(
            "an unread badge for the room",
            &format!("return {} === '1';", badges_js(&f.slug)),
        )
        .await?;
    let typed = f
        .alice
        .eval("return document.getElementById('profile-name').value;")
        .await?;
    assert_eq!(
        typed, "Alice, half typed",
        "what she typed was replaced by the stored profile"
    );

    // Saving stores what she typed, and the form then shows what was stored.
    save_profile(&f.alice).await?;
    assert_eq!(
        f.alice
            .eval("return document.getElementById('profile-name').value;")
            .await?,
        "Alice, half typed"
    );
    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn an_edit_being_typed_survives_a_reaction_to_that_message_and_new_messages_in_the_room(
) -> Result {
    let f = two_people_in_a_room().await?;
    send_message(&f.alice, "first draft", true).await?;
    wait_row(&f.alice, "first draft", "sent", Duration::from_secs(20)).await?;
    f.alice
        .wait_for(
            "the Edit button on her message",
            r#"
            const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
                .find(li => li.textContent.includes('first draft'));
            const edit = li && Array.from(li.querySelectorAll('button'))
                .find(b => b.textContent.trim() === 'Edit');
            if (!edit) return false;
            edit.click();
            return true;
            "#,
        )
        .await?;
    let editor = f
        .alice
        .find(r#"textarea[aria-label="Edit message"]"#)
        .await?;
    editor.send_keys(" and more").await?;

    // Bob writes while she edits, and reacts to the very message she is editing.
    send_message(&f.bob, "interrupting", true).await?;
    wait_row(&f.alice, "interrupting", "sent", Duration::from_secs(20)).await?;
    click_in_row(&f.bob, "first draft", "Add a reaction").await?;
    click_in_row(&f.bob, "first draft", "🎉").await?;
    f.alice
        .wait_for(
            "Bob's reaction on the message she is editing",
            r#"
            const area = document.querySelector('textarea[aria-label="Edit message"]');
            const li = area && area.closest('li.message');
            return !!li && Array.from(li.querySelectorAll('button.reaction'))
                .some(b => b.textContent.trim() === '🎉 1');
            "#,
        )
        .await?;
    let typed = f
        .alice
        .eval(r#"return document.querySelector('textarea[aria-label="Edit message"]')?.value;"#)
        .await?;
    assert_eq!(
        typed, "first draft and more",
        "her edit in progress was replaced by the stored text"
    );
    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

/// An uncompressed 24-bit BMP of `width` × `height` (a format browsers decode but the server
/// refuses), so only the app's resizing can make it an acceptable avatar.
fn bmp(width: u32, height: u32) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let pixels = row * height;
    let mut b = Vec::with_capacity(54 + pixels as usize);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&(54 + pixels).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&width.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    for y in 0..height {
        for x in 0..row {
            b.push(((x ^ y) & 0xFF) as u8);
        }
    }
    b
}

#[tokio::test]
async fn a_large_image_is_resized_in_the_browser_and_becomes_the_avatar() -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.sign_in_as_guest("Painter").await?;
    browser.goto(&format!("{}/profile", server.url())).await?;
    browser
        .wait_for(
            "the form to show the stored name",
            r#"return document.getElementById('profile-name')?.value === 'Painter';"#,
        )
        .await?;
    // A field being edited, not saved yet, when the new avatar arrives.
    browser
        .field("Pronouns")
        .await?
        .send_keys("they/them")
        .await?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("photo.bmp");
    let big = bmp(2000, 1500);
    assert!(big.len() > shared::profile::AVATAR_MAX_BYTES);
    std::fs::write(&path, &big)?;
    let input = browser.find("input#avatar").await?;
    input.send_keys(&path.to_string_lossy()).await?;
    browser
        .wait_for(
            "the avatar to be updated",
            r#"return Array.from(document.querySelectorAll('[role="status"]'))
                .some(s => s.textContent.trim() === 'Avatar updated.');"#,
        )
        .await?;
    let src = browser
        .eval(r#"return document.querySelector('img.avatar.large')?.getAttribute('src');"#)
        .await?;
    let src = src.as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(src.starts_with("/api/avatars/"), "avatar src {src:?}");
    let bytes = e2e::client::http()
        .get(format!("{}{src}", server.url()))
        .send()
        .await?
        .bytes()
        .await?;
    let avatar = shared::profile::check_avatar(&bytes)?;
    assert_eq!(avatar.kind, shared::profile::ImageType::Jpeg);
    assert_eq!((avatar.width, avatar.height), (512, 384));
    assert_eq!(
        browser
            .eval("return document.getElementById('profile-pronouns').value;")
            .await?,
        "they/them",
        "the new avatar reset a field being edited"
    );
    browser.quit().await?;
    Ok(())
}

/// Whether any IndexedDB database of the page's origin holds `needle` anywhere in its values
/// (every store of every database, read in full).
async fn indexed_db_holds(browser: &Browser, needle: &str) -> Result<bool> {
    let script = format!(
        r#"
        const needle = {needle};
        const read = (name) => new Promise((resolve, reject) => {{
            const open = indexedDB.open(name);
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {{
                const db = open.result;
                const stores = Array.from(db.objectStoreNames);
                if (stores.length === 0) {{ db.close(); return resolve(''); }}
                const tx = db.transaction(stores, 'readonly');
                const parts = [];
                for (const s of stores) {{
                    const all = tx.objectStore(s).getAll();
                    all.onsuccess = () => parts.push(JSON.stringify(all.result));
                }}
                tx.oncomplete = () => {{ db.close(); resolve(parts.join('')); }};
                tx.onerror = () => {{ db.close(); reject(tx.error); }};
            }};
        }});
        const names = (await indexedDB.databases()).map(d => d.name);
        for (const name of names) if ((await read(name)).includes(needle)) return true;
        return false;
        "#,
        needle = serde_json::to_string(needle)?
    );
    Ok(browser.eval(&script).await? == true)
}

async fn sign_out(browser: &Browser) -> Result {
    browser.click_button("Sign out").await?;
    browser.field("Display name").await?;
    Ok(())
}

/// The texts and author names of a room's history, as a fresh guest reads it.
async fn history(server: &DevServer, slug: &str) -> Result<Vec<(String, String)>> {
    let reader = Session::create(server, &unique("Reader")).await?;
    let (_, joined) = reader.join(slug, None).await?;
    let page = joined.history.expect("a join without cursor gets a page");
    Ok(page
        .messages
        .into_iter()
        .map(|m| (m.text, m.author.name))
        .collect())
}

#[tokio::test]
async fn signing_out_deletes_the_offline_copy_so_the_next_person_on_the_browser_cannot_read_a_private_room(
) -> Result {
    let server =
        DevServer::start(DevOptions::default().with_app().var("DEV_LOGIN", "true")).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.sign_in_locally("Alice").await?;
    let name = unique("Private Room");
    browser.field("Room name").await?.send_keys(&name).await?;
    browser
        .find(r#"input[type="checkbox"][name="private"]"#)
        .await?
        .click()
        .await?;
    browser.click_button("Create room").await?;
    let slug = shared::limits::slugify(&name);
    // The app opens the new room itself (and creates Alice's offline cache); reloading in the
    // middle of that first database creation would leave the next page's open waiting on the
    // unloaded one (the room then connects without its cache after a few seconds).
    wait_phase(&browser, &["live"]).await?;
    let secret = "the launch moves to March, keep it quiet";
    send_message(&browser, secret, true).await?;
    wait_row(&browser, secret, "sent", Duration::from_secs(20)).await?;
    // The offline copy holds it (so the check below can see it when it is there).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !indexed_db_holds(&browser, secret).await? {
        if tokio::time::Instant::now() >= deadline {
            let probe = browser
                .eval(
                    r#"return await new Promise((resolve) => {
                        const t = setTimeout(() => resolve('probe open pending after 2 s'), 2000);
                        const r = indexedDB.open('probe-' + Math.random());
                        r.onsuccess = () => { clearTimeout(t); resolve('probe open ok'); };
                        r.onerror = () => { clearTimeout(t); resolve('probe open error ' + r.error); };
                        r.onblocked = () => { clearTimeout(t); resolve('probe open blocked'); };
                    }).then(async (p) => p + '; dbs ' + JSON.stringify(await indexedDB.databases()));"#,
                )
                .await?;
            anyhow::bail!("the sent message never reached IndexedDB ({probe})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    sign_out(&browser).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while indexed_db_holds(&browser, secret).await? {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "ten seconds after signing out, IndexedDB still holds Alice's private message"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Bob, next on this browser, opens the private room's address: refused, and nothing of
    // Alice's shows from a cache.
    browser.sign_in_as_guest("Bob").await?;
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    // The room page connects only after reading its cache: a failed connection proves the
    // cache was read (the upgrade is refused with 403, which a browser reports only as a close).
    wait_phase(&browser, &["reconnecting", "offline"]).await?;
    let shown = rows(&browser).await?;
    assert!(
        shown.iter().all(|r| !r.text.contains(secret)),
        "Bob's page shows Alice's private message: {shown:?}"
    );
    assert!(!indexed_db_holds(&browser, secret).await?);

    browser.quit().await?;
    Ok(())
}

#[tokio::test]
async fn an_unsent_message_is_sent_only_by_its_author_even_when_another_person_signs_in_on_the_same_browser(
) -> Result {
    let mut server =
        DevServer::start(DevOptions::default().with_app().var("DEV_LOGIN", "true")).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.sign_in_locally("Alice").await?;
    let slug = browser.create_room("Shared Room").await?;
    // The app opens the new room itself (see the test above for why not reload here).
    wait_phase(&browser, &["live"]).await?;
    send_message(&browser, "alice was here", true).await?;
    wait_row(&browser, "alice was here", "sent", Duration::from_secs(20)).await?;

    // Alice writes while the server is down; her session then ends without a sign-out (its
    // cookie is gone, as when it expires or is revoked from another device).
    server.stop().await?;
    wait_phase(&browser, &["reconnecting", "offline"]).await?;
    let draft = "alice's message written offline";
    send_message(&browser, draft, true).await?;
    wait_row(&browser, draft, "pending", Duration::from_secs(20)).await?;
    browser.client.delete_all_cookies().await?;
    server.start_again().await?;

    // The reconnect finds no session: the page asks for a name, and Bob takes the browser.
    let deadline = tokio::time::Instant::now() + REDELIVERY_TIMEOUT;
    while browser
        .eval(
            r#"const retry = Array.from(document.querySelectorAll('button'))
                   .find(b => b.textContent.trim() === 'Retry now');
               if (retry) retry.click();
               return !document.querySelector('form.name-prompt, [aria-label="Display name"], #display-name');"#,
        )
        .await?
        == true
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the page never noticed that the session ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.sign_in_as_guest("Bob").await?;
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    wait_phase(&browser, &["live"]).await?;
    send_message(&browser, "bob here", true).await?;
    wait_row(&browser, "bob here", "sent", Duration::from_secs(20)).await?;
    // A leaked outbox would have been sent on connect, before Bob's own message.
    assert_eq!(
        history(&server, &slug).await?,
        [
            ("alice was here".to_string(), "Alice".to_string()),
            ("bob here".into(), "Bob".into()),
        ],
        "only what each person sent, under their own name"
    );

    // Alice signs in again on the same browser (Bob, a guest, just leaves: his session ends):
    // her message goes out, as hers, once.
    browser.client.delete_all_cookies().await?;
    browser.goto(&server.url()).await?;
    browser.sign_in_locally("Alice").await?;
    browser.goto(&format!("{}/r/{slug}", server.url())).await?;
    wait_row(&browser, draft, "sent", REDELIVERY_TIMEOUT).await?;
    assert_eq!(
        history(&server, &slug).await?,
        [
            ("alice was here".to_string(), "Alice".to_string()),
            ("bob here".into(), "Bob".into()),
            (draft.into(), "Alice".into()),
        ]
    );

    browser.quit().await?;
    Ok(())
}

/// The banner as the page shows it: its phase, its text and whether it offers "Retry now".
async fn banner(browser: &Browser) -> Result<(String, String, bool)> {
    let value = browser
        .eval(
            r#"
            const b = document.querySelector('[role="status"].banner');
            if (!b) return null;
            const text = b.querySelector('.banner-text');
            const retry = Array.from(b.querySelectorAll('button'))
                .some(x => x.textContent.trim() === 'Retry now');
            return [b.dataset.phase, text ? text.textContent : '', retry];
            "#,
        )
        .await?;
    serde_json::from_value::<Option<(String, String, bool)>>(value)?
        .ok_or_else(|| anyhow::anyhow!("the page shows no banner"))
}

/// From now on, counts the page's attempts to reach room `slug`: sockets opened to it and
/// questions about its admission (the app's `new WebSocket` and `fetch` resolve these globals
/// at each call).
async fn count_attempts(browser: &Browser, slug: &str) -> Result {
    let script = format!(
        r#"
        const slug = {slug};
        window.__attempts = 0;
        const Real = window.WebSocket;
        window.WebSocket = function (url, protocols) {{
            if (String(url).includes(`/api/rooms/${{slug}}/ws`)) window.__attempts++;
            return protocols === undefined ? new Real(url) : new Real(url, protocols);
        }};
        window.WebSocket.prototype = Real.prototype;
        Object.assign(window.WebSocket, {{ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 }});
        const realFetch = window.fetch.bind(window);
        window.fetch = (input, init) => {{
            const url = typeof input === 'string' ? input : input.url;
            if (String(url).includes(`/api/rooms/${{slug}}/`)) window.__attempts++;
            return realFetch(input, init);
        }};
        return true;
        "#,
        slug = serde_json::to_string(slug)?
    );
    browser.eval(&script).await?;
    Ok(())
}

/// A page that was refused for good: the banner says `expected` (in phase `offline`, with no
/// "Retry now"), and over the next seconds — with the browser saying it came back online,
/// which reconnects a page that is only waiting — it neither opens a socket to the room nor
/// asks about it again, and the banner stays as it was.
async fn stays_refused(browser: &Browser, slug: &str, expected: &str) -> Result {
    wait_phase(browser, &["offline"]).await?;
    let (phase, text, retry) = banner(browser).await?;
    assert_eq!(phase, "offline");
    assert!(
        text.contains(expected),
        "the banner says {text:?}, not {expected:?}"
    );
    assert!(!retry, "a refused page offers Retry now: {text:?}");
    count_attempts(browser, slug).await?;
    browser
        .eval("window.dispatchEvent(new Event('online')); return true;")
        .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = browser.eval("return window.__attempts;").await?;
    assert_eq!(attempts, 0, "the page kept trying to reach the room");
    assert_eq!(banner(browser).await?, (phase, text, retry));
    Ok(())
}

#[tokio::test]
async fn a_guest_who_opens_a_private_room_he_is_not_in_is_told_he_may_not_join_and_the_page_stops_trying(
) -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let owner = Session::create(&server, "Owner").await?;
    let response = owner
        .post(
            "/api/rooms",
            &shared::protocol::http::CreateRoom {
                name: unique("Private Room"),
                topic: String::new(),
                assistant: Default::default(),
                private: true,
            },
        )
        .await?;
    anyhow::ensure!(response.status().as_u16() == 201, "{}", response.status());
    let room: shared::protocol::RoomInfo = response.json().await?;

    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let url = format!("{}/r/{}", server.url(), room.slug);
    browser.goto(&url).await?;
    browser.sign_in_as_guest("Guest").await?;
    browser.goto(&url).await?;
    // The room's own refusal (the upgrade answers 403 `forbidden`, which the page cannot read).
    stays_refused(
        &browser,
        &room.slug,
        "This room is private; you need an invite to join it.",
    )
    .await?;
    browser.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_member_the_owner_banned_reloads_the_room_and_is_told_he_is_banned() -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let owner = Session::create(&server, "Owner").await?;
    let room = owner.create_room(&unique("Banning Room"), "").await?;

    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let url = format!("{}/r/{}", server.url(), room.slug);
    browser.goto(&url).await?;
    browser.sign_in_as_guest("Troll").await?;
    browser.goto(&url).await?;
    wait_phase(&browser, &["live"]).await?;
    let me = browser
        .eval("return (await (await fetch('/api/session')).json()).user_id;")
        .await?;
    let me = me.as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(!me.is_empty(), "the page has no session");

    let response = owner
        .post(
            &format!("/api/rooms/{}/moderation", room.slug),
            &shared::moderation::Command::Ban { user_id: me },
        )
        .await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    // The open socket is closed with `banned`; the page stops there.
    wait_phase(&browser, &["offline"]).await?;

    // A reload connects afresh: the upgrade is refused (403 `banned`), and the page says why.
    browser.reload().await?;
    stays_refused(&browser, &room.slug, "You are banned from this room.").await?;
    browser.quit().await?;
    Ok(())
}

/// What the "Who's here" panel shows, or null when it is closed.
const WHO_JS: &str = r#"
    const panel = document.querySelector('aside.presence-panel');
    if (!panel) return null;
    return {
        summary: panel.querySelector('#presence-summary').textContent.trim(),
        names: Array.from(panel.querySelectorAll('.presence-name')).map(n => n.textContent),
        more: Array.from(panel.querySelectorAll('button')).some(b => b.textContent.trim() === 'Show more'),
        search_focused: document.activeElement === panel.querySelector('input[type="search"]'),
    };
"#;

#[derive(Debug, Deserialize)]
struct Who {
    summary: String,
    names: Vec<String>,
    more: bool,
    search_focused: bool,
}

/// Waits until the open panel shows what `ok` accepts.
async fn wait_who(browser: &Browser, what: &str, ok: impl Fn(&Who) -> bool) -> Result<Who> {
    let deadline = std::time::Instant::now() + e2e::browser::UI_TIMEOUT;
    loop {
        let shown: Option<Who> = serde_json::from_value(browser.eval(WHO_JS).await?)?;
        match shown {
            Some(who) if ok(&who) => return Ok(who),
            shown if std::time::Instant::now() > deadline => {
                anyhow::bail!("timed out waiting for the panel to show {what}; it shows {shown:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn wait_header_count(browser: &Browser, count: usize) -> Result {
    let script = format!(
        r#"const c = document.querySelector('.present-count');
           return !!c && c.textContent.trim() === '{count} here';"#
    );
    let shown = browser
        .wait_for(&format!("the header to say \"{count} here\""), &script)
        .await;
    if let Err(e) = shown {
        let header = browser
            .eval("return document.querySelector('.present')?.textContent ?? 'no .present';")
            .await?;
        return Err(e.context(format!("the header shows {header}")));
    }
    Ok(())
}

#[tokio::test]
async fn a_room_too_large_to_list_shows_its_count_and_who_is_here_finds_a_person_by_name_until_they_leave(
) -> Result {
    use shared::protocol::ServerMessage;
    // More present than the room lists (shared::room::presence::LARGE_ROOM is 50), over plain
    // sockets: a browser each would make this the slowest test by far.
    const CROWD: usize = 52;
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let owner = Session::create(&server, "Owner").await?;
    let room = owner.create_room(&unique("Crowded Room"), "").await?;
    let mut sockets = Vec::new();
    for i in 0..CROWD {
        let name = if i == 7 {
            "Zelda Needle".to_owned()
        } else {
            format!("Crowd {i:02}")
        };
        let guest = Session::create(&server, &name).await?;
        let mut socket = guest
            .connect_with_first_frame(&room.slug, &Session::hello_frame(None))
            .await?;
        // Joined once its page came. Not `joined()`: a count may come before the welcome (the
        // count a join causes goes to every joined socket, this one included).
        socket
            .expect_until(Duration::from_secs(10), |m| {
                matches!(m, ServerMessage::History { .. }).then_some(())
            })
            .await?;
        sockets.push(socket);
    }

    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    let url = format!("{}/r/{}", server.url(), room.slug);
    browser.goto(&url).await?;
    browser.sign_in_as_guest("Watcher").await?;
    browser.goto(&url).await?;
    wait_phase(&browser, &["live"]).await?;
    // Counted, not listed. (Exactly CROWD + 1 once a joiner's welcome counts the joiner: today
    // it is welcomed with the count from before it joined, so the exact count is checked after
    // the next change below.)
    let counted = browser
        .wait_for(
            "the header to count who is here",
            "return Number(document.querySelector('.present-count')?.dataset.count ?? 0);",
        )
        .await?;
    let counted = counted.as_u64().unwrap_or_default() as usize;
    assert!((CROWD..=CROWD + 1).contains(&counted), "{counted} here");

    // The panel opens with focus in its search box and the first page of the list.
    browser.click_button("Who's here").await?;
    let first = wait_who(&browser, "the first 50 of 53", |w| {
        w.summary == "Showing 50 of 53"
    })
    .await?;
    assert!(first.search_focused, "focus did not move into the panel");
    assert!(first.more, "no Show more under a partial list");
    assert_eq!(first.names.first().map(String::as_str), Some("Crowd 00"));
    browser.click_button("Show more").await?;
    let all = wait_who(&browser, "all 53", |w| w.summary == "Showing 53 of 53").await?;
    assert!(!all.more);
    assert_eq!(all.names.len(), 53, "{:?}", all.names);

    // A search asks the room; the one match shows.
    let search = browser.field("Search people here").await?;
    search.send_keys("needle").await?;
    let found = wait_who(&browser, "Zelda Needle alone", |w| {
        w.names == ["Zelda Needle"]
    })
    .await?;
    assert_eq!(found.summary, "Showing 1 of 1 matching “needle”");

    // She leaves: the room tells the sockets showing her, and the count follows.
    sockets.remove(7).close().await;
    wait_who(&browser, "nobody matching", |w| w.names.is_empty()).await?;
    wait_header_count(&browser, CROWD).await?;

    // Escape closes the panel and puts focus back on the button that opened it.
    search.send_keys("\u{e00c}").await?;
    browser
        .wait_for(
            "the panel to close with focus back on Who's here",
            r#"return !document.querySelector('aside.presence-panel')
                && document.activeElement?.textContent.trim() === "Who's here";"#,
        )
        .await?;

    for socket in sockets {
        socket.close().await;
    }
    browser.quit().await?;
    Ok(())
}

/// The service worker in control of the page with every file of its build's precache manifest
/// in its cache: returns how many files that is.
const SHELL_PRECACHED_JS: &str = r#"
    const registration = await navigator.serviceWorker.getRegistration();
    if (!navigator.serviceWorker.controller || !registration || !registration.active) return 0;
    const source = await (await fetch('/sw.js', { cache: 'no-store' })).text();
    const match = source.match(/const PRECACHE = (\{.*\});/);
    if (!match) return -1;
    const manifest = JSON.parse(match[1]);
    const cache = await caches.open('durable-chat-shell-' + manifest.version);
    for (const file of manifest.files) if (!(await cache.match(file.url))) return 0;
    return manifest.files.length;
"#;

#[tokio::test]
async fn with_the_server_down_a_reload_shows_the_installed_app_with_its_rooms_and_the_outbox_delivers_when_it_is_back(
) -> Result {
    let mut server =
        DevServer::start(DevOptions::default().with_app().var("DEV_LOGIN", "true")).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;
    browser.sign_in_locally("Alice").await?;
    let slug = browser.create_room("Offline Room").await?;
    wait_phase(&browser, &["live"]).await?;
    let before = "written before the outage";
    send_message(&browser, before, true).await?;
    wait_row(&browser, before, "sent", Duration::from_secs(20)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !indexed_db_holds(&browser, before).await? {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the sent message never reached IndexedDB"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The page is installable as an app (manifest, icons, a worker that answers offline) ...
    let precached = browser
        .wait_for(
            "the service worker in control with its whole build precached",
            SHELL_PRECACHED_JS,
        )
        .await?;
    assert!(
        precached.as_u64().unwrap_or(0) >= 5,
        "the manifest lists the page, the loader, the glue, the wasm and the styles: {precached}"
    );
    let installability = browser
        .cdp("Page.getInstallabilityErrors", serde_json::json!({}))
        .await?;
    assert_eq!(
        installability["installabilityErrors"],
        serde_json::json!([]),
        "Chromium's installability check"
    );

    // ... and a reload with the server gone shows it, with the room and its messages from
    // the offline copy.
    server.stop().await?;
    browser.reload().await?;
    browser.find(r#"nav[aria-label="Rooms"]"#).await?;
    browser
        .wait_for(
            "the room in the room list",
            &format!(
                r#"return Array.from(document.querySelectorAll('nav[aria-label="Rooms"] a'))
                       .some(a => a.getAttribute('href') === {href});"#,
                href = serde_json::to_string(&format!("/r/{slug}"))?
            ),
        )
        .await?;
    wait_row(&browser, before, "sent", Duration::from_secs(20)).await?;
    wait_phase(&browser, &["reconnecting", "offline"]).await?;

    // What is written now waits in the outbox and goes, once, when the server is back.
    let during = "written while the server was down";
    send_message(&browser, during, true).await?;
    let pending = wait_row(&browser, during, "pending", Duration::from_secs(20)).await?;
    server.start_again().await?;
    let sent = wait_row(&browser, during, "sent", REDELIVERY_TIMEOUT).await?;
    assert_eq!(sent.client_id, pending.client_id);
    let texts: Vec<String> = history(&server, &slug)
        .await?
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    assert_eq!(texts, [before, during]);

    browser.quit().await?;
    Ok(())
}

/// Whether the "New version" prompt shows.
const UPDATE_SHOWN_JS: &str = r#"
    const p = document.querySelector('.update-prompt');
    return !!p && !p.hidden && p.textContent.includes('New version');
"#;

/// Deploys build number `deploy` (a worker with other bytes) under the open page, which still
/// shows `page` (a CSS selector) and the New version prompt; its Reload brings the new build
/// under its worker, without the prompt.
async fn deploy_and_reload(browser: &Browser, deploy: u32, page: &str) -> Result {
    browser
        .eval(&format!(
            r#"window.beforeTheUpdate = true;
               await navigator.serviceWorker.register('/sw.js?deploy={deploy}');
               return true;"#
        ))
        .await?;
    browser
        .wait_for(
            &format!("the New version prompt (deploy {deploy})"),
            UPDATE_SHOWN_JS,
        )
        .await?;
    browser.find(page).await?;
    browser.click_button("Reload").await?;
    browser
        .wait_for(
            "the reloaded page",
            &format!(
                "return !window.beforeTheUpdate && !!document.querySelector({});",
                serde_json::to_string(page)?
            ),
        )
        .await?;
    browser
        .wait_for("the reloaded page under its worker", SHELL_PRECACHED_JS)
        .await?;
    assert_eq!(browser.eval(UPDATE_SHOWN_JS).await?, false);
    Ok(())
}

#[tokio::test]
async fn a_new_build_taking_over_an_open_tab_offers_a_reload_instead_of_breaking_it() -> Result {
    let server = DevServer::start(DevOptions::default().with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let browser = driver.browser().await?;
    browser.goto(&server.url()).await?;

    // A first visit gains its worker without that being a new version.
    browser
        .wait_for(
            "the service worker in control with its whole build precached",
            SHELL_PRECACHED_JS,
        )
        .await?;
    assert_eq!(browser.eval(UPDATE_SHOWN_JS).await?, false);

    // A deploy: a worker with other bytes takes over the open tab. (Another script address
    // updates the same registration, as a rebuilt sw.js does.) The tab keeps working and says
    // so; reloading brings the new build and the prompt goes. First on the sign-in prompt,
    // whose chat bundle the new build would not have.
    deploy_and_reload(&browser, 1, ".name-prompt form").await?;
    // Then in the chat, which the prompt handed the page to (its own prompt gone with it).
    browser.sign_in_as_guest("Alice").await?;
    let prompts = "return document.querySelectorAll('.update-prompt').length;";
    assert_eq!(browser.eval(prompts).await?, 1, "the chat's prompt only");
    deploy_and_reload(&browser, 2, r#"nav[aria-label="Rooms"]"#).await?;

    // The browser looks for a new worker only on a navigation: a tab coming back into view
    // asks it to.
    browser
        .eval(
            r#"window.updateChecks = 0;
               const update = ServiceWorkerRegistration.prototype.update;
               ServiceWorkerRegistration.prototype.update = function () {
                   window.updateChecks++;
                   return update.call(this);
               };
               document.dispatchEvent(new Event('visibilitychange'));
               return true;"#,
        )
        .await?;
    browser
        .wait_for(
            "a check for a new worker when the tab shows",
            "return window.updateChecks > 0;",
        )
        .await?;

    // A deploy whose rooms speak another protocol version than this tab: the room refuses
    // the tab's hello (close code UNSUPPORTED_PROTOCOL), and the same prompt offers the build
    // that speaks it. (The hello, in the socket's URL, is rewritten to another version.)
    browser
        .eval(
            r#"const Real = window.WebSocket;
               window.WebSocket = function (url, protocols) {
                   url = String(url).replace(/%22protocol%22%3A\d+/, '%22protocol%22%3A999999');
                   return protocols === undefined ? new Real(url) : new Real(url, protocols);
               };
               window.WebSocket.prototype = Real.prototype;
               Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
               return true;"#,
        )
        .await?;
    browser.create_room("protocol").await?;
    browser
        .wait_for("the New version prompt (another protocol)", UPDATE_SHOWN_JS)
        .await?;

    browser.quit().await?;
    Ok(())
}
