//! Attachments in headless Chromium (issue 11), two people in one room: a picked image with its
//! upload progress, its thumbnail and (when the server runs an image classifier) its labels; a
//! video and a sound made in the page and attached by a drop and a paste; a PDF as a download
//! card; the lightbox; and the room's Files panel with its filters.
//!
//! Needs `./scripts/build` (the Worker and the app in `dist/`) and Debian's chromium and
//! chromedriver (`./scripts/setup --browser`).

use std::path::PathBuf;
use std::time::Duration;

use e2e::browser::{Browser, ChromeDriver};
use e2e::fake_site::{self, FakeSite};
use e2e::{unique, DevOptions, DevServer, Result, Session};

/// Uploads, thumbnails and classification on a machine shared with other builds.
const FILES_TIMEOUT: Duration = Duration::from_secs(90);

/// The picture every image test uses (`shared/fixtures` beside this checkout).
fn chelsea() -> Result<PathBuf> {
    e2e::fixture_image("chelsea.png")
}

/// A valid one-page PDF, its cross-reference table computed from where each object starts.
fn minimal_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Types into the room's composer and sends with its Send button.
async fn send(browser: &Browser, text: &str) -> Result {
    browser
        .find(r#"textarea[aria-label="Message"]"#)
        .await?
        .send_keys(text)
        .await?;
    let clicked = browser
        .eval(
            r#"
            const area = document.querySelector('textarea[aria-label="Message"]');
            const button = area && area.form && area.form.querySelector('button[type="submit"]');
            if (!button || button.disabled) return false;
            button.click();
            return true;
            "#,
        )
        .await?;
    anyhow::ensure!(clicked == true, "no Send button in the composer");
    Ok(())
}

/// Waits until the timeline row showing `text` is stored and `expr` (over `li`) holds.
async fn wait_row(browser: &Browser, text: &str, what: &str, expr: &str) -> Result {
    let script = format!(
        r#"
        const li = Array.from(document.querySelectorAll('ol[aria-label="Messages"] > li.message'))
            .find(li => li.textContent.includes({text}) && li.dataset.status === 'sent');
        return !!li && ({expr});
        "#,
        text = serde_json::to_string(text)?,
    );
    browser.wait_longer(what, &script, FILES_TIMEOUT).await?;
    Ok(())
}

struct Fixture {
    server: DevServer,
    _driver: ChromeDriver,
    alice: Browser,
    bob: Browser,
    slug: String,
}

/// A server (with `options`), two browsers signed in as Alice and Bob, and a room Alice created
/// that both have open.
async fn two_people_in_a_room(options: DevOptions) -> Result<Fixture> {
    let server = DevServer::start(options.with_app()).await?;
    let driver = ChromeDriver::start().await?;
    let alice = driver.browser().await?;
    let bob = driver.browser().await?;
    alice.goto(&server.url()).await?;
    alice.sign_in_as_guest("Alice").await?;
    let slug = alice.create_room("Files Room").await?;
    alice.goto(&format!("{}/r/{slug}", server.url())).await?;
    alice.wait_live().await?;
    bob.goto(&format!("{}/r/{slug}", server.url())).await?;
    bob.sign_in_as_guest("Bob").await?;
    bob.find(&format!(r#"nav[aria-label="Rooms"] a[href="/r/{slug}"]"#))
        .await?;
    bob.goto(&format!("{}/r/{slug}", server.url())).await?;
    bob.wait_live().await?;
    Ok(Fixture {
        server,
        _driver: driver,
        alice,
        bob,
        slug,
    })
}

/// Makes a one-second WAV (its bytes written here) and a short WebM (a canvas recorded by
/// `MediaRecorder`) in the page, and attaches the video by dropping it on the room and the
/// sound by pasting it into the composer.
const DROP_AND_PASTE_MEDIA: &str = r#"
    const rate = 8000, samples = rate;
    const wav = new DataView(new ArrayBuffer(44 + samples * 2));
    const text = (at, s) => [...s].forEach((c, i) => wav.setUint8(at + i, c.charCodeAt(0)));
    text(0, 'RIFF'); wav.setUint32(4, 36 + samples * 2, true); text(8, 'WAVE');
    text(12, 'fmt '); wav.setUint32(16, 16, true); wav.setUint16(20, 1, true);
    wav.setUint16(22, 1, true); wav.setUint32(24, rate, true); wav.setUint32(28, rate * 2, true);
    wav.setUint16(32, 2, true); wav.setUint16(34, 16, true);
    text(36, 'data'); wav.setUint32(40, samples * 2, true);
    for (let i = 0; i < samples; i++) {
        wav.setInt16(44 + i * 2, Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate)), true);
    }
    const tone = new File([wav.buffer], 'tone.wav', { type: 'audio/wav' });

    const canvas = document.createElement('canvas');
    canvas.width = 160; canvas.height = 120;
    const ctx = canvas.getContext('2d');
    let frame = 0;
    const paint = () => { ctx.fillStyle = `hsl(${(frame++ * 37) % 360} 80% 50%)`; ctx.fillRect(0, 0, 160, 120); };
    paint();
    const recorder = new MediaRecorder(canvas.captureStream(15), { mimeType: 'video/webm' });
    const chunks = [];
    recorder.ondataavailable = e => { if (e.data.size) chunks.push(e.data); };
    const stopped = new Promise(resolve => recorder.onstop = resolve);
    const painter = setInterval(paint, 50);
    recorder.start(200);
    await new Promise(resolve => setTimeout(resolve, 1500));
    recorder.stop();
    await stopped;
    clearInterval(painter);
    const clip = new File(chunks, 'clip.webm', { type: 'video/webm' });

    const dropped = new DataTransfer();
    dropped.items.add(clip);
    document.querySelector('.room-main').dispatchEvent(
        new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
    const pasted = new DataTransfer();
    pasted.items.add(tone);
    const area = document.querySelector('textarea[aria-label="Message"]');
    const paste = new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true, cancelable: true });
    area.dispatchEvent(paste);
    return { clip: clip.size, tone: tone.size, pasteTaken: paste.defaultPrevented };
"#;

#[tokio::test]
async fn files_attached_by_button_drop_and_paste_reach_the_other_person_as_images_players_and_cards(
) -> Result {
    // The image classifier is the local model server's, when it is built.
    let classifier = if e2e::model::binary_path().is_file() {
        match e2e::model::ModelServer::start().await {
            Ok(model) => Some(model),
            Err(e) => {
                println!("no image classifier: the model server did not start ({e:#})");
                None
            }
        }
    } else {
        println!("no image classifier: the model server is not built (./scripts/build builds it)");
        None
    };
    let mut options = DevOptions::default();
    if let Some(model) = &classifier {
        options = options.var("CLASSIFIER_URL", model.base_url());
    }
    let f = two_people_in_a_room(options).await?;

    // An image, picked with the Attachment button's file input; its chip shows the upload.
    f.alice.find(r#"button[aria-label="Attachment"]"#).await?;
    f.alice
        .pick_file(r#"form.composer input[type="file"]"#, &chelsea()?)
        .await?;
    f.alice
        .find(r#"form.composer li.chip progress[aria-label="Uploading chelsea.png"]"#)
        .await?;
    f.alice.wait_uploaded(1).await?;
    send(&f.alice, "a cat on a rug").await?;
    wait_row(
        &f.alice,
        "a cat on a rug",
        "Alice's message with the image to be stored",
        "!!li.querySelector('img[alt=\"chelsea.png\"]')",
    )
    .await?;

    // Bob sees it from its thumbnail, sized before it loaded.
    wait_row(
        &f.bob,
        "a cat on a rug",
        "Bob to see the image's thumbnail",
        r#"(() => {
            const img = li.querySelector('img[alt="chelsea.png"]');
            return !!img && img.complete && img.naturalWidth > 0
                && img.getAttribute('src').endsWith('/thumb')
                && !!img.getAttribute('width') && !!img.getAttribute('height');
        })()"#,
    )
    .await?;
    let labels = f
        .bob
        .eval(&format!(
            r#"const r = await fetch('/api/rooms/{}/files?kind=image');
               const list = await r.json();
               return list.files.flatMap(f => f.attachment.labels || []).map(l => l.name);"#,
            f.slug
        ))
        .await?;
    match labels.as_array().filter(|l| !l.is_empty()) {
        Some(labels) => {
            let first = labels[0].as_str().unwrap_or_default().to_owned();
            wait_row(
                &f.bob,
                "a cat on a rug",
                "the image's labels as tags",
                &format!(
                    "Array.from(li.querySelectorAll('.labels .tag')).some(t => t.textContent.startsWith({}) && t.textContent.endsWith('%'))",
                    serde_json::to_string(&first)?
                ),
            )
            .await?;
            // A tag searches the room for what it names.
            f.bob
                .eval(r#"document.querySelector('.labels .tag').click(); return true;"#)
                .await?;
            f.bob
                .wait_for(
                    "the tag's search to find the message",
                    r#"const q = document.querySelector('input[aria-label="Search messages"]');
                       return !!q && q.value.startsWith('tag:')
                           && Array.from(document.querySelectorAll('ol.search-results li'))
                               .some(li => li.textContent.includes('a cat on a rug'));"#,
                )
                .await?;
            println!("labels of chelsea.png: {labels:?}");
        }
        None => println!(
            "skipped the labels: the stored image has none (no image classifier in this test server)"
        ),
    }

    // The lightbox: the full image, Escape closes it and focus returns to the image.
    f.bob.find("li.message .image-open").await?.click().await?;
    f.bob
        .wait_for(
            "the lightbox to show the full image",
            r#"const d = document.querySelector('dialog.lightbox');
               const img = d && d.querySelector('img');
               return !!d && d.open && d.contains(document.activeElement)
                   && !!img && img.complete && img.naturalWidth > 0
                   && !!d.querySelector('a[download="chelsea.png"]');"#,
        )
        .await?;
    f.bob
        .client
        .active_element()
        .await?
        .send_keys("\u{e00c}")
        .await?;
    let closed = f
        .bob
        .wait_for(
            "Escape to close the lightbox and give focus back",
            r#"return !document.querySelector('dialog.lightbox')
                && !!document.activeElement && document.activeElement.classList.contains('image-open');"#,
        )
        .await;
    if let Err(e) = closed {
        let seen = f
            .bob
            .eval(
                r#"const d = document.querySelector('dialog.lightbox');
                   const a = document.activeElement;
                   return `dialog ${d ? (d.open ? 'open' : 'closed') : 'gone'}, focus on `
                       + (a ? a.tagName + '.' + a.className : 'nothing');"#,
            )
            .await?;
        return Err(e.context(format!("after Escape: {seen}")));
    }

    // A video dropped on the room and a sound pasted into the composer, sent together.
    let made = f.alice.eval(DROP_AND_PASTE_MEDIA).await?;
    anyhow::ensure!(
        made["pasteTaken"] == true,
        "the composer did not take the pasted file: {made}"
    );
    f.alice.wait_uploaded(2).await?;
    send(&f.alice, "sound and vision").await?;
    wait_row(
        &f.bob,
        "sound and vision",
        "Bob's video and audio to have loaded their metadata",
        r#"(() => {
            const v = li.querySelector('video'), a = li.querySelector('audio');
            return !!v && !!a && v.readyState >= 1 && a.readyState >= 1
                && v.duration > 0 && a.duration > 0;
        })()"#,
    )
    .await?;

    // A PDF: a card whose link downloads it under its name.
    let dir = tempfile::tempdir()?;
    let pdf = dir.path().join("report.pdf");
    std::fs::write(&pdf, minimal_pdf())?;
    f.alice
        .pick_file(r#"form.composer input[type="file"]"#, &pdf)
        .await?;
    f.alice.wait_uploaded(1).await?;
    send(&f.alice, "the quarterly report").await?;
    wait_row(
        &f.bob,
        "the quarterly report",
        "Bob to see the PDF as a download card",
        r#"(() => {
            const a = li.querySelector('.file-card a[download]');
            return !!a && a.getAttribute('download') === 'report.pdf'
                && a.textContent.trim() === 'report.pdf';
        })()"#,
    )
    .await?;
    let disposition = f
        .bob
        .eval(
            r#"const a = Array.from(document.querySelectorAll('.file-card a[download]'))
                   .find(a => a.getAttribute('download') === 'report.pdf');
               const r = await fetch(a.href);
               return r.headers.get('content-disposition');"#,
        )
        .await?;
    let disposition = disposition.as_str().unwrap_or_default();
    assert!(
        disposition.starts_with("attachment") && disposition.contains(r#"filename="report.pdf""#),
        "the PDF is served as {disposition:?}"
    );

    // The Files panel lists the room's files; Images leaves the PDF out.
    f.bob.click_named("Files").await?;
    let listed = |names: &[&str], absent: &[&str]| {
        format!(
            r#"const panel = document.querySelector('aside[aria-label="Files"]');
               if (!panel) return false;
               const shown = Array.from(panel.querySelectorAll('li.file-entry .file-name'))
                   .map(n => n.textContent.trim());
               return {names}.every(n => shown.includes(n)) && !{absent}.some(n => shown.includes(n));"#,
            names = serde_json::to_string(names).unwrap_or_default(),
            absent = serde_json::to_string(absent).unwrap_or_default(),
        )
    };
    f.bob
        .wait_for(
            "the Files panel to list every file",
            &listed(&["chelsea.png", "clip.webm", "tone.wav", "report.pdf"], &[]),
        )
        .await?;
    f.bob.click_named("Images").await?;
    f.bob
        .wait_for(
            "the Images filter to list the image and not the PDF",
            &listed(&["chelsea.png"], &["report.pdf", "clip.webm"]),
        )
        .await?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

/// Whether the page's IndexedDB keeps a sent message with files, by its words.
async fn draft_kept(browser: &Browser, text: &str) -> Result<bool> {
    let script = format!(
        r#"
        const want = {text};
        const names = (await indexedDB.databases()).map(d => d.name)
            .filter(n => n.startsWith('durable-chat-user-'));
        for (const name of names) {{
            const db = await new Promise((ok, no) => {{
                const open = indexedDB.open(name);
                open.onsuccess = () => ok(open.result);
                open.onerror = () => no(open.error);
            }});
            if (!db.objectStoreNames.contains('drafts')) {{ db.close(); continue; }}
            const all = await new Promise((ok, no) => {{
                const get = db.transaction('drafts').objectStore('drafts').getAll();
                get.onsuccess = () => ok(get.result);
                get.onerror = () => no(get.error);
            }});
            db.close();
            if (all.some(json => {{ const d = JSON.parse(json); return !!d.sent && d.sent.text === want; }}))
                return true;
        }}
        return false;
        "#,
        text = serde_json::to_string(text)?
    );
    Ok(browser.eval(&script).await? == true)
}

#[tokio::test]
async fn a_message_with_a_file_sent_while_the_server_is_down_is_delivered_once_after_a_reload(
) -> Result {
    let mut f = two_people_in_a_room(DevOptions::default()).await?;

    // Cancel takes a file back before anything is sent.
    let dir = tempfile::tempdir()?;
    let pdf = dir.path().join("draft.pdf");
    std::fs::write(&pdf, minimal_pdf())?;
    f.alice
        .pick_file(r#"form.composer input[type="file"]"#, &pdf)
        .await?;
    f.alice.find("form.composer li.chip").await?;
    f.alice
        .eval(
            r#"document.querySelector('form.composer li.chip .chip-cancel').click(); return true;"#,
        )
        .await?;
    f.alice
        .wait_for(
            "the cancelled file's chip to go",
            r#"return document.querySelectorAll('form.composer li.chip').length === 0;"#,
        )
        .await?;

    // The server goes away; the file waits, retrying, and the message waits for it.
    f.server.stop().await?;
    f.alice
        .pick_file(r#"form.composer input[type="file"]"#, &chelsea()?)
        .await?;
    f.alice
        .wait_longer(
            "the upload to wait for the server",
            r#"const c = document.querySelector('form.composer li.chip');
               return !!c && c.dataset.state === 'sending'
                   && c.querySelector('.chip-status').textContent.includes('Trying again');"#,
            FILES_TIMEOUT,
        )
        .await?;
    send(&f.alice, "sent in the dark").await?;
    f.alice
        .wait_for(
            "the message to wait for its file",
            r#"return Array.from(document.querySelectorAll('ol.outgoing li.outgoing-message'))
                .some(li => li.textContent.includes('sent in the dark')
                    && !!li.querySelector('progress[aria-label="Uploading chelsea.png"]'));"#,
        )
        .await?;
    let kept = async {
        for _ in 0..50 {
            if draft_kept(&f.alice, "sent in the dark").await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the message with its file is not kept in IndexedDB")
    };
    kept.await?;

    // The page goes away with the file unsent; the server comes back; the room is opened
    // again, and the file and then the message go.
    f.alice.goto("about:blank").await?;
    f.server.start_again().await?;
    f.alice
        .goto(&format!("{}/r/{}", f.server.url(), f.slug))
        .await?;
    wait_row(
        &f.alice,
        "sent in the dark",
        "Alice's message and its image to be stored after the reload",
        "!!li.querySelector('img[alt=\"chelsea.png\"]')",
    )
    .await?;
    wait_row(
        &f.bob,
        "sent in the dark",
        "Bob to see it with its thumbnail",
        r#"(() => {
            const img = li.querySelector('img[alt="chelsea.png"]');
            return !!img && img.complete && img.naturalWidth > 0;
        })()"#,
    )
    .await?;
    anyhow::ensure!(
        !draft_kept(&f.alice, "sent in the dark").await?,
        "the draft outlived its message"
    );

    // The room stored it once, with its one file (the cancelled one never went).
    let carol = Session::create(&f.server, "Carol").await?;
    let (_, joined) = carol.join(&f.slug, None).await?;
    let history = joined.history.expect("a join without a cursor gets a page");
    let sent: Vec<_> = history
        .messages
        .iter()
        .filter(|m| m.text == "sent in the dark")
        .collect();
    assert_eq!(sent.len(), 1, "{:?}", history.messages);
    let names: Vec<&str> = sent[0]
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["chelsea.png"]);

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_link_in_a_message_gets_a_preview_card_whose_image_comes_from_this_origin() -> Result {
    let site = FakeSite::start()?;
    let f = two_people_in_a_room(DevOptions::default().var("PREVIEW_LOOPBACK", "true")).await?;
    let url = site.url(&format!("/og/{}", unique("card")));
    send(&f.alice, &format!("have a look: {url}")).await?;
    wait_row(
        &f.bob,
        "have a look",
        "the link's preview card",
        &format!(
            r#"(() => {{
                const card = li.querySelector('aside.link-preview');
                const a = card && card.querySelector('a');
                const img = card && card.querySelector('img');
                return !!a && a.textContent.trim() === {title} && a.href === {url}
                    && a.rel.split(' ').includes('noopener') && a.rel.split(' ').includes('nofollow')
                    && a.rel.split(' ').includes('ugc')
                    && card.textContent.includes({site}) && card.textContent.includes({description})
                    && !!img && img.getAttribute('src').startsWith('/api/') && img.complete && img.naturalWidth > 0;
            }})()"#,
            title = serde_json::to_string(fake_site::OG_TITLE)?,
            url = serde_json::to_string(&url)?,
            site = serde_json::to_string(fake_site::OG_SITE_NAME)?,
            description = serde_json::to_string(fake_site::OG_DESCRIPTION)?,
        ),
    )
    .await?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}

#[tokio::test]
async fn a_file_over_the_rooms_limit_stops_on_its_chip_with_the_rooms_words_and_never_goes_out(
) -> Result {
    let f =
        two_people_in_a_room(DevOptions::default().var("ATTACHMENT_MAX_BYTES", 100_000)).await?;
    f.alice
        .pick_file(r#"form.composer input[type="file"]"#, &chelsea()?)
        .await?;
    let said = f
        .alice
        .wait_longer(
            "the chip to say the file is too large",
            r#"const c = document.querySelector('form.composer li.chip[data-state="failed"]');
               return c ? c.querySelector('.chip-status[role="alert"]').textContent : null;"#,
            FILES_TIMEOUT,
        )
        .await?;
    let said = said.as_str().unwrap_or_default();
    assert!(said.contains("at most"), "the chip says {said:?}");

    // Sent anyway, the message waits for a file that cannot go; cancelling the file lets the
    // words go alone.
    send(&f.alice, "words without the cat").await?;
    f.alice
        .wait_for(
            "the message to wait with its refused file",
            r#"return Array.from(document.querySelectorAll('ol.outgoing li.outgoing-message'))
                .some(li => li.textContent.includes('words without the cat')
                    && !!li.querySelector('li.chip[data-state="failed"]'));"#,
        )
        .await?;
    f.alice
        .eval(r#"document.querySelector('ol.outgoing li.chip .chip-cancel').click(); return true;"#)
        .await?;
    wait_row(
        &f.bob,
        "words without the cat",
        "the words to arrive without the file",
        "!li.querySelector('.attachments')",
    )
    .await?;
    f.alice
        .wait_for(
            "nothing to wait for any more",
            r#"return !document.querySelector('ol.outgoing');"#,
        )
        .await?;

    f.alice.quit().await?;
    f.bob.quit().await?;
    Ok(())
}
