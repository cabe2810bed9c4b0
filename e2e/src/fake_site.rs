//! A small third-party web site on loopback, for the link preview tests: pages with and
//! without Open Graph tags, an image, redirect chains, redirects to addresses the preview must
//! refuse, a page too slow to wait for, a page too large to read whole, an SVG, and a count of
//! the requests each path received so a test can prove the Worker's cache answered instead.
//!
//! The Worker fetches it only with `PREVIEW_LOOPBACK=true` and a request to localhost (the
//! SSRF rules refuse loopback otherwise). Every path takes any suffix (`/og/<anything>`), so
//! each test previews URLs of its own and the cache of one never answers another.
//!
//! Plain HTTP/1.1, one request per connection, like [`crate::oauth_fake`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// The title of the Open Graph page.
pub const OG_TITLE: &str = "A cup of coffee";
/// Its description.
pub const OG_DESCRIPTION: &str = "Espresso, pulled on a fake site for the preview tests.";
/// Its site name.
pub const OG_SITE_NAME: &str = "Fake Site";
/// The `<title>` of the page that has nothing else.
pub const PLAIN_TITLE: &str = "Only a title here";
/// How long the slow page waits before answering: past the preview's 3 s.
pub const SLOW: Duration = Duration::from_secs(6);
/// Bytes of filler the huge page has in its head before its `<title>`: past the 512 KB the
/// preview reads.
pub const HUGE_FILLER_BYTES: usize = 700 * 1024;
/// Bytes of the image too large to proxy (over 2 MB).
pub const BIG_IMAGE_BYTES: usize = 3 * 1024 * 1024;

/// A 1×1 PNG, served when the fixture image is missing.
const TINY_PNG: [u8; 67] = [
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// The PNG the site serves: the shared fixture `coffee-224.png` (beside the repository, as
/// `../shared/fixtures/images/`), or a 1×1 PNG when it is not there.
pub fn png() -> Vec<u8> {
    std::fs::read(crate::repo_root().join("../shared/fixtures/images/coffee-224.png"))
        .unwrap_or_else(|_| TINY_PNG.to_vec())
}

#[derive(Default)]
struct State {
    /// Requests received, by path (without the query).
    hits: HashMap<String, usize>,
}

/// The running site. It serves from its own thread and runtime, so it outlives the test that
/// started it and serves the others (like the shared dev server); it stops with the process.
pub struct FakeSite {
    base: String,
    png: Arc<Vec<u8>>,
    state: Arc<Mutex<State>>,
}

impl FakeSite {
    /// Starts on a free loopback port.
    pub fn start() -> Result<FakeSite> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let state = Arc::new(Mutex::new(State::default()));
        let png = Arc::new(png());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        {
            let (state, png) = (Arc::clone(&state), Arc::clone(&png));
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        let (state, png) = (Arc::clone(&state), Arc::clone(&png));
                        tokio::spawn(async move {
                            let _ = serve(stream, &state, &png).await;
                        });
                    }
                });
            });
        }
        Ok(FakeSite { base, png, state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of a path on the site.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The PNG it serves at `/image.png` (and every `/img/…`).
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    /// How many requests `path` (without the query) has received.
    pub fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One answer.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn html(body: String) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    fn bytes(content_type: &str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type", content_type.into())],
            body,
        }
    }

    fn redirect(location: String) -> Answer {
        Answer {
            status: 302,
            headers: vec![("Location", location)],
            body: Vec::new(),
        }
    }

    fn not_found() -> Answer {
        Answer {
            status: 404,
            headers: vec![("Content-Type", "text/plain".into())],
            body: b"no such page".to_vec(),
        }
    }
}

/// A page with Open Graph tags; its image is `image` (relative to the page).
fn og_page(image: &str) -> String {
    format!(
        r#"<!doctype html><html><head>
<meta charset="utf-8">
<title>The plain title, which og:title wins over</title>
<meta property="og:title" content="{OG_TITLE}">
<meta property="og:description" content="{OG_DESCRIPTION}">
<meta property="og:site_name" content="{OG_SITE_NAME}">
<meta property="og:image" content="{image}">
</head><body><p>Coffee.</p></body></html>"#
    )
}

/// Reads the request line and headers; the path without its query.
async fn read_path(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the request head");
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        anyhow::ensure!(buf.len() < 64 * 1024, "request head too large");
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .split("\r\n")
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/");
    Ok(target.split('?').next().unwrap_or("/").to_owned())
}

async fn serve(mut stream: TcpStream, state: &Mutex<State>, png: &[u8]) -> Result {
    let path = read_path(&mut stream).await?;
    *state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .hits
        .entry(path.clone())
        .or_insert(0) += 1;
    let answer = answer(&path, png).await;
    let reason = match answer.status {
        200 => "OK",
        302 => "Found",
        _ => "Not Found",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", answer.status);
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    // The Worker may stop reading (a body past its cap) and close: that is not an error here.
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
    Ok(())
}

/// What each path answers. The first segment picks the page; the rest is free.
async fn answer(path: &str, png: &[u8]) -> Answer {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["og", ..] => Answer::html(og_page("/image.png")),
        ["og-svg", ..] => Answer::html(og_page("/drawing.svg")),
        ["og-big-image", ..] => Answer::html(og_page("/big.png")),
        ["title-only", ..] => Answer::html(format!(
            "<!doctype html><html><head><title>{PLAIN_TITLE}</title></head><body></body></html>"
        )),
        ["bare", ..] => {
            Answer::html("<!doctype html><html><head></head><body>Nothing.</body></html>".into())
        }
        ["image.png"] | ["img", ..] => Answer::bytes("image/png", png.to_vec()),
        ["big.png"] => {
            // PNG magic bytes, then zeros: a PNG by its bytes, too large to proxy.
            let mut body = png.get(..8).unwrap_or_default().to_vec();
            body.resize(BIG_IMAGE_BYTES, 0);
            Answer::bytes("image/png", body)
        }
        ["drawing.svg"] | ["svg", ..] => Answer::bytes(
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><title>A drawing</title><script>alert(1)</script></svg>"#
                .to_vec(),
        ),
        // `/redirect/<n>/<rest>`: n hops (relative Locations), then the Open Graph page.
        ["redirect", n, rest @ ..] => match n.parse::<u32>() {
            Ok(0) => Answer::html(og_page("/image.png")),
            Ok(n) => Answer::redirect(format!("/redirect/{}/{}", n - 1, rest.join("/"))),
            Err(_) => Answer::not_found(),
        },
        ["to-metadata", ..] => {
            Answer::redirect("http://169.254.169.254/latest/meta-data".into())
        }
        ["to-private", ..] => Answer::redirect("http://10.0.0.1/".into()),
        ["slow", ..] => {
            tokio::time::sleep(SLOW).await;
            Answer::html(og_page("/image.png"))
        }
        ["huge", ..] => {
            let filler = r#"<meta name="filler" content="0123456789abcdef0123456789abcdef">"#;
            let mut page = String::from("<!doctype html><html><head><meta charset=\"utf-8\">");
            while page.len() < HUGE_FILLER_BYTES {
                page.push_str(filler);
                page.push('\n');
            }
            page.push_str(
                "<title>A title past the cap</title>\
                 <meta property=\"og:description\" content=\"Also past the cap\">\
                 </head><body></body></html>",
            );
            Answer::html(page)
        }
        _ => Answer::not_found(),
    }
}
