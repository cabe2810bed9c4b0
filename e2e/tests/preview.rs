//! Link previews through the real Worker under `wrangler dev` (issue 11): `GET /api/preview`
//! and `GET /api/preview/image` against a fake third-party site on loopback ([`FakeSite`]),
//! which the Worker may fetch only because the server has `PREVIEW_LOOPBACK=true` and the
//! requests come to localhost; and the SSRF rules over HTTP on a server without that switch.
//! Each test previews URLs of its own (`/og/<unique>`), so the cache of one never answers
//! another.

use std::time::Duration;

use e2e::client::{expect_error, header, http};
use e2e::fake_site::{self, FakeSite};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use shared::protocol::http::LinkPreview;
use shared::ErrorCode;
use tokio::sync::OnceCell;

struct World {
    server: DevServer,
    site: FakeSite,
}

static WORLD: OnceCell<World> = OnceCell::const_new();
/// A server as deployed: no test switch, so loopback is refused like any private address.
static PLAIN: OnceCell<DevServer> = OnceCell::const_new();

/// The server whose previews may reach the fake site, and the site.
async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let site = FakeSite::start().expect("fake site");
            let options = DevOptions::default().var("PREVIEW_LOOPBACK", "true");
            let server = match DevServer::start(options).await {
                Ok(server) => server,
                Err(e) => panic!("could not start wrangler dev: {e:#}"),
            };
            World { server, site }
        })
        .await
}

async fn plain() -> &'static DevServer {
    DevServer::shared(&PLAIN, DevOptions::default).await
}

fn encode(url: &str) -> String {
    url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

fn preview_path(url: &str) -> String {
    format!("/api/preview?url={}", encode(url))
}

fn image_path(url: &str) -> String {
    format!("/api/preview/image?url={}", encode(url))
}

async fn preview(session: &Session, url: &str) -> Result<LinkPreview> {
    let response = session.get(&preview_path(url)).await?;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("Cache-Control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "preview of {url}: {status} {text}");
    anyhow::ensure!(cache.starts_with("private"), "Cache-Control {cache:?}");
    Ok(serde_json::from_str(&text)?)
}

async fn guest(server: &DevServer) -> Result<Session> {
    Session::create(server, &unique("Reader")).await
}

#[tokio::test]
async fn a_page_with_open_graph_tags_previews_and_its_image_is_served_from_this_origin() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let url = w.site.url(&format!("/og/{}", unique("p")));
    let found = preview(&ann, &url).await?;
    assert_eq!(found.url, url);
    assert_eq!(found.title.as_deref(), Some(fake_site::OG_TITLE));
    assert_eq!(
        found.description.as_deref(),
        Some(fake_site::OG_DESCRIPTION)
    );
    assert_eq!(found.site_name.as_deref(), Some(fake_site::OG_SITE_NAME));
    // The page's relative image, resolved, behind a path on this origin.
    let image = found.image.expect("an image");
    assert_eq!(image, image_path(&w.site.url("/image.png")));

    let response = ann.get(&image).await?;
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| header(&response, name);
    assert_eq!(header("Content-Type"), "image/png");
    assert_eq!(header("X-Content-Type-Options"), "nosniff");
    assert_eq!(
        header("Content-Security-Policy"),
        "sandbox; default-src 'none'"
    );
    assert_eq!(header("Cache-Control"), "private, max-age=86400");
    let bytes = response.bytes().await?;
    assert_eq!(
        bytes.as_ref(),
        w.site.png(),
        "the site's PNG, byte for byte"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_request_for_a_page_is_answered_from_the_cache_without_asking_the_site() -> Result
{
    let w = world().await;
    let (ann, bob) = (guest(&w.server).await?, guest(&w.server).await?);
    let path = format!("/og/{}", unique("cached"));
    let url = w.site.url(&path);
    let first = preview(&ann, &url).await?;
    assert_eq!(w.site.hits(&path), 1);
    // Another reader, the same link: the Worker's cache answers.
    let second = preview(&bob, &url).await?;
    assert_eq!(second, first);
    assert_eq!(w.site.hits(&path), 1, "the site was asked again");
    Ok(())
}

#[tokio::test]
async fn a_page_with_only_a_title_previews_with_that_title_and_nothing_else() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let found = preview(&ann, &w.site.url(&format!("/title-only/{}", unique("t")))).await?;
    assert_eq!(found.title.as_deref(), Some(fake_site::PLAIN_TITLE));
    assert_eq!(
        (found.description, found.site_name, found.image),
        (None, None, None)
    );
    Ok(())
}

#[tokio::test]
async fn pages_with_nothing_to_show_answer_204_including_an_svg_and_a_title_past_the_cap() -> Result
{
    let w = world().await;
    let ann = guest(&w.server).await?;
    for path in [
        format!("/bare/{}", unique("b")),
        // Not HTML: never parsed, whatever it contains.
        format!("/svg/{}", unique("s")),
        // Its title and description come after the 512 KB the preview reads.
        format!("/huge/{}", unique("h")),
    ] {
        let response = ann.get(&preview_path(&w.site.url(&path))).await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        assert_eq!(status, 204, "{path}: {text}");
        assert_eq!(w.site.hits(&path), 1, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn three_redirects_are_followed_and_a_fourth_is_not() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let three = unique("r3");
    let found = preview(&ann, &w.site.url(&format!("/redirect/3/{three}"))).await?;
    assert_eq!(found.title.as_deref(), Some(fake_site::OG_TITLE));
    assert_eq!(w.site.hits(&format!("/redirect/0/{three}")), 1);

    let four = unique("r4");
    let response = ann
        .get(&preview_path(&w.site.url(&format!("/redirect/4/{four}"))))
        .await?;
    let body = expect_error(response, ErrorCode::PreviewUnavailable).await?;
    assert!(body.message.contains("redirects"), "{}", body.message);
    // The fourth Location was never fetched.
    assert_eq!(w.site.hits(&format!("/redirect/1/{four}")), 1);
    assert_eq!(w.site.hits(&format!("/redirect/0/{four}")), 0);
    Ok(())
}

#[tokio::test]
async fn a_redirect_to_the_metadata_address_or_a_private_network_is_url_refused() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    for path in [
        format!("/to-metadata/{}", unique("m")),
        format!("/to-private/{}", unique("p")),
    ] {
        let response = ann.get(&preview_path(&w.site.url(&path))).await?;
        let body = expect_error(response, ErrorCode::UrlRefused).await?;
        assert!(
            body.message.contains("redirects"),
            "{path}: {}",
            body.message
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_page_slower_than_the_timeout_fails_and_the_failure_is_cached() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let path = format!("/slow/{}", unique("slow"));
    let response = ann.get(&preview_path(&w.site.url(&path))).await?;
    let body = expect_error(response, ErrorCode::PreviewUnavailable).await?;
    assert!(body.message.contains("did not answer"), "{}", body.message);
    // A dead link is not fetched again by the next reader.
    let response = ann.get(&preview_path(&w.site.url(&path))).await?;
    expect_error(response, ErrorCode::PreviewUnavailable).await?;
    assert_eq!(w.site.hits(&path), 1);
    Ok(())
}

#[tokio::test]
async fn an_image_that_belongs_to_no_cached_preview_is_not_found_and_not_fetched() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let path = format!("/img/{}", unique("i"));
    let response = ann.get(&image_path(&w.site.url(&path))).await?;
    expect_error(response, ErrorCode::NotFound).await?;
    assert_eq!(w.site.hits(&path), 0, "the route is no open proxy");
    // A page's own URL is no image either.
    let page = w.site.url(&format!("/og/{}", unique("p")));
    preview(&ann, &page).await?;
    let response = ann.get(&image_path(&page)).await?;
    expect_error(response, ErrorCode::NotFound).await?;
    Ok(())
}

#[tokio::test]
async fn a_preview_image_that_is_not_a_raster_image_or_is_over_two_megabytes_is_refused() -> Result
{
    let w = world().await;
    let ann = guest(&w.server).await?;
    let svg = preview(&ann, &w.site.url(&format!("/og-svg/{}", unique("s")))).await?;
    let response = ann.get(&svg.image.expect("an image")).await?;
    expect_error(response, ErrorCode::UnsupportedMedia).await?;

    let big = preview(&ann, &w.site.url(&format!("/og-big-image/{}", unique("b")))).await?;
    let response = ann.get(&big.image.expect("an image")).await?;
    expect_error(response, ErrorCode::TooLarge).await?;
    Ok(())
}

#[tokio::test]
async fn previews_need_a_session_and_a_url() -> Result {
    let w = world().await;
    let url = w.site.url(&format!("/og/{}", unique("anon")));
    for path in [preview_path(&url), image_path(&w.site.url("/image.png"))] {
        let response = http()
            .get(format!("{}{path}", w.server.url()))
            .send()
            .await?;
        expect_error(response, ErrorCode::Unauthorized).await?;
    }
    let ann = guest(&w.server).await?;
    let response = ann.get("/api/preview").await?;
    expect_error(response, ErrorCode::InvalidInput).await?;
    Ok(())
}

#[tokio::test]
async fn the_test_switch_is_ignored_for_a_request_to_another_host() -> Result {
    let w = world().await;
    let ann = guest(&w.server).await?;
    let path = format!("/og/{}", unique("host"));
    let response = ann
        .request(reqwest::Method::GET, &preview_path(&w.site.url(&path)))
        .header("Host", "chat.example.com")
        .send()
        .await?;
    expect_error(response, ErrorCode::UrlRefused).await?;
    assert_eq!(w.site.hits(&path), 0);
    Ok(())
}

#[tokio::test]
async fn a_server_without_the_test_switch_refuses_every_internal_address_in_any_spelling() -> Result
{
    let server = plain().await;
    let ann = guest(server).await?;
    // Loopback on a real port: what the other tests reach, refused here.
    let site = FakeSite::start()?;
    let own = site.url(&format!("/og/{}", unique("own")));
    let corpus = [
        own.as_str(),
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "ftp://example.com/",
        "http://example.com:8080/",
        "http://user:pw@example.com/",
        "not a url",
    ];
    for url in corpus {
        let response = ann.get(&preview_path(url)).await?;
        let (status, body) = e2e::client::error_body(response).await?;
        assert_eq!(
            (status, body.code),
            (400, ErrorCode::UrlRefused),
            "{url}: {}",
            body.message
        );
        // The image route refuses the same way, before looking anything up.
        let response = ann.get(&image_path(url)).await?;
        expect_error(response, ErrorCode::UrlRefused).await?;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(site.hits(&own.replace(site.base(), "")), 0);
    Ok(())
}
