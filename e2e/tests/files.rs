//! Files attached to messages (issue 11), against the real Worker, its room objects and the
//! local R2 that `wrangler dev` simulates: who may read a file, what it is served as, what the
//! upload path strips, the limits, and that every way a file ends deletes its objects.
//!
//! One shared server with small limits (1 MB a file, 3 MB a room, 6 announcements a minute) and
//! the test-only sweep switch; tests keep apart by their own sessions and rooms. The local
//! classifier test starts its own model server and Worker. Nothing asserts on elapsed time.

use std::path::{Path, PathBuf};

use e2e::client::{expect_error, header, RoomSocket, DEFAULT_TIMEOUT};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use reqwest::Method;
use shared::media::Kind;
use shared::moderation::Command;
use shared::protocol::http::{BeginUpload, FileList, UploadTicket};
use shared::protocol::{Attachment, ClientMessage, EventKind, Seq, ServerMessage};
use shared::ErrorCode;
use tokio::sync::OnceCell;

static SHARED: OnceCell<DevServer> = OnceCell::const_new();

const FILE_MAX: u64 = 1024 * 1024;
const QUOTA: u64 = 3 * 1024 * 1024;
const PER_MINUTE: u32 = 6;
/// A day and a second: past the room's orphan time.
const A_DAY_LATER_MS: i64 = 24 * 60 * 60 * 1000 + 1000;

async fn server() -> &'static DevServer {
    DevServer::shared(&SHARED, || {
        DevOptions::default()
            .var("ATTACHMENT_MAX_BYTES", FILE_MAX)
            .var("ROOM_QUOTA_BYTES", QUOTA)
            .var("UPLOADS_PER_MINUTE", PER_MINUTE)
            .var("FILES_TEST_SWEEP", 1)
    })
    .await
}

async fn user(name: &str) -> Result<Session> {
    Session::create(server().await, name).await
}

/// `POST /api/rooms/<slug>/uploads`.
async fn begin(
    s: &Session,
    slug: &str,
    upload_id: &str,
    name: &str,
    size: u64,
) -> Result<reqwest::Response> {
    s.post(
        &format!("/api/rooms/{slug}/uploads"),
        &BeginUpload {
            upload_id: upload_id.into(),
            name: name.into(),
            size,
            width: None,
            height: None,
            duration_ms: None,
        },
    )
    .await
}

async fn ticket(response: reqwest::Response) -> Result<UploadTicket> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "begin answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// `PUT` of raw bytes (reqwest sends their Content-Length).
async fn put(s: &Session, path: &str, bytes: Vec<u8>) -> Result<reqwest::Response> {
    Ok(s.request(Method::PUT, path).body(bytes).send().await?)
}

/// Announces and stores a file; returns what the room recorded.
async fn upload(s: &Session, slug: &str, name: &str, bytes: Vec<u8>) -> Result<Attachment> {
    let t = ticket(begin(s, slug, &unique("up"), name, bytes.len() as u64).await?).await?;
    let response = put(s, &format!("/api/rooms/{slug}/uploads/{}", t.id), bytes).await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "PUT answered {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// Sends a message carrying `ids` and waits for its ack; returns its seq.
async fn send_with(socket: &mut RoomSocket, text: &str, ids: &[&str]) -> Result<Seq> {
    let client_id = unique("m");
    socket
        .send_message(&ClientMessage::Send {
            client_id: client_id.clone(),
            text: text.into(),
            attachments: ids.iter().map(|id| id.to_string()).collect(),
        })
        .await?;
    Ok(socket.await_ack(&client_id).await?.0)
}

fn file_path(slug: &str, id: &str) -> String {
    format!("/api/rooms/{slug}/files/{id}")
}

/// Every file of the local R2 simulation's blob store for the attachments bucket: wrangler
/// keeps each stored object's bytes as one file under the persist directory.
fn stored_blobs(persist: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &persist.join("v3/r2/durable-chat-attachments/blobs"),
        &mut out,
    );
    out
}

/// The blobs whose bytes are exactly `bytes`.
fn blobs_holding(persist: &Path, bytes: &[u8]) -> usize {
    stored_blobs(persist)
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == bytes))
        .count()
}

/// A unique tiny "image": the 224-pixel cat with a unique comment tucked before its end, so
/// its stored bytes can be told from every other test's in the shared blob store. (A `tEXt`
/// chunk would be scrubbed; bytes after `IEND` pass through untouched.)
fn unique_png() -> Result<Vec<u8>> {
    let mut png = e2e::fixture_image_bytes("chelsea-224.png")?;
    png.extend_from_slice(unique("tail").as_bytes());
    Ok(png)
}

/// The smallest JPEG the scrubber walks: SOI, a JFIF APP0, an Exif APP1 that names GPS
/// coordinates, a scan header, a few bytes of scan, EOI.
fn jpeg_with_gps() -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8];
    let app0: &[u8] = b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0";
    jpeg.extend_from_slice(&[0xFF, 0xE0]);
    jpeg.extend_from_slice(&((app0.len() + 2) as u16).to_be_bytes());
    jpeg.extend_from_slice(app0);
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
    exif.extend_from_slice(b"GPSLatitude=51.5007N;GPSLongitude=0.1246W;Camera=Secret 9000");
    jpeg.extend_from_slice(&[0xFF, 0xE1]);
    jpeg.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    jpeg.extend_from_slice(&exif);
    // SOS: one component, then entropy-coded bytes until EOI.
    jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    jpeg.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9A]);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_png_sent_with_a_message_reaches_the_other_member_and_is_served_inline() -> Result {
    let ann = user("Ann").await?;
    let bob = user("Bob").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    let (mut b, _) = bob.join(slug, None).await?;

    let png = unique_png()?;
    let stored = upload(&ann, slug, "chelsea.png", png.clone()).await?;
    assert_eq!(stored.id.len(), 22, "{stored:?}");
    assert_eq!(
        (stored.kind, stored.mime.as_str()),
        (Kind::Image, "image/png")
    );
    assert_eq!(stored.size, png.len() as u64);
    let thumb = put(
        &ann,
        &format!("/api/rooms/{slug}/uploads/{}/thumb", stored.id),
        e2e::fixture_image_bytes("chelsea-224.png")?,
    )
    .await?;
    assert_eq!(thumb.status().as_u16(), 204, "{}", thumb.text().await?);

    let seq = send_with(&mut a, "", &[&stored.id]).await?;
    let (attachments, _) = b
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Event { event } if event.seq == seq => match &event.kind {
                EventKind::Message { attachments, .. } => Some(attachments.clone()),
                _ => None,
            },
            _ => None,
        })
        .await?;
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].id, stored.id);
    assert!(
        attachments[0].thumb,
        "the thumbnail stored before sending is announced"
    );

    let path = file_path(slug, &stored.id);
    let full = bob.get(&path).await?;
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(header(&full, "content-type"), "image/png");
    assert!(header(&full, "content-disposition").starts_with("inline"));
    assert_eq!(header(&full, "x-content-type-options"), "nosniff");
    assert!(header(&full, "content-security-policy").starts_with("sandbox"));
    assert_eq!(header(&full, "cache-control"), "private, max-age=3600");
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    let etag = header(&full, "etag");
    assert!(!etag.is_empty());
    let body = full.bytes().await?;
    assert_eq!(body.len(), png.len(), "scrubbing never changes the length");
    assert_eq!(
        &body[..],
        &png[..],
        "a PNG without metadata is stored as it was sent"
    );

    // Revalidation: the browser's copy is still the file.
    let again = bob
        .request(Method::GET, &path)
        .header("If-None-Match", &etag)
        .send()
        .await?;
    assert_eq!(again.status().as_u16(), 304);

    // Seeking: a byte range.
    let part = bob
        .request(Method::GET, &path)
        .header("Range", "bytes=8-107")
        .send()
        .await?;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 8-107/{}", png.len())
    );
    assert_eq!(&part.bytes().await?[..], &png[8..108]);
    let past = bob
        .request(Method::GET, &path)
        .header("Range", format!("bytes={}-", png.len()))
        .send()
        .await?;
    assert_eq!(past.status().as_u16(), 416);

    let thumb = bob.get(&format!("{path}/thumb")).await?;
    assert_eq!(thumb.status().as_u16(), 200);
    assert_eq!(header(&thumb, "content-type"), "image/png");

    let list: FileList = bob
        .get(&format!("/api/rooms/{slug}/files?kind=image"))
        .await?
        .json()
        .await?;
    assert_eq!(list.files.len(), 1);
    assert_eq!(list.files[0].message, seq);
    assert_eq!(list.files[0].attachment.id, stored.id);
    let none: FileList = bob
        .get(&format!("/api/rooms/{slug}/files?kind=pdf"))
        .await?
        .json()
        .await?;
    assert!(none.files.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_non_member_a_banned_member_a_guessed_id_and_another_rooms_id_all_get_not_found() -> Result
{
    let ann = user("Ann").await?;
    let bob = user("Bob").await?;
    let carl = user("Carl").await?;
    let room = ann.new_room().await?;
    let other = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    bob.visit(slug).await?;
    ann.visit(&other.slug).await?;
    let stored = upload(&ann, slug, "cat.png", unique_png()?).await?;
    let thumb = put(
        &ann,
        &format!("/api/rooms/{slug}/uploads/{}/thumb", stored.id),
        e2e::fixture_image_bytes("chelsea-224.png")?,
    )
    .await?;
    assert_eq!(thumb.status().as_u16(), 204);
    send_with(&mut a, "a cat", &[&stored.id]).await?;
    let path = file_path(slug, &stored.id);

    // A member reads it: the refusals below are about who asks, not a broken file.
    assert_eq!(bob.get(&path).await?.status().as_u16(), 200);

    // Carl never joined.
    expect_error(carl.get(&path).await?, ErrorCode::NotFound).await?;
    expect_error(
        carl.get(&format!("{path}/thumb")).await?,
        ErrorCode::NotFound,
    )
    .await?;
    expect_error(
        carl.get(&format!("/api/rooms/{slug}/files")).await?,
        ErrorCode::NotFound,
    )
    .await?;

    // Bob is banned.
    let banned = ann
        .moderate(
            slug,
            &Command::Ban {
                user_id: bob.user_id().into(),
            },
        )
        .await?;
    assert_eq!(banned.status().as_u16(), 200);
    expect_error(bob.get(&path).await?, ErrorCode::NotFound).await?;
    expect_error(
        bob.get(&format!("{path}/thumb")).await?,
        ErrorCode::NotFound,
    )
    .await?;

    // A guessed id, and this room's id asked of another room Ann is a member of.
    let guessed = file_path(slug, "AAAAAAAAAAAAAAAAAAAAAA");
    expect_error(ann.get(&guessed).await?, ErrorCode::NotFound).await?;
    expect_error(
        ann.get(&file_path(&other.slug, &stored.id)).await?,
        ErrorCode::NotFound,
    )
    .await?;
    // An upload id is not a way into someone else's upload either.
    expect_error(
        put(
            &carl,
            &format!("/api/rooms/{slug}/uploads/{}", stored.id),
            vec![0; 4],
        )
        .await?,
        ErrorCode::NotFound,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_html_file_named_png_is_served_as_a_download_of_octet_stream() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    let page = b"<!doctype html><html><script>alert(document.cookie)</script></html>".to_vec();
    let stored = upload(&ann, slug, "cute-cat.png", page.clone()).await?;
    assert_eq!(stored.kind, Kind::File);
    assert_eq!(stored.mime, "application/octet-stream");
    send_with(&mut a, "look", &[&stored.id]).await?;
    let response = ann.get(&file_path(slug, &stored.id)).await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    let disposition = header(&response, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains("cute-cat.png"), "{disposition}");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(&response.bytes().await?[..], &page[..]);
    Ok(())
}

#[tokio::test]
async fn a_jpegs_exif_and_gps_are_gone_and_its_length_is_kept() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    let jpeg = jpeg_with_gps();
    assert!(contains(&jpeg, b"Exif") && contains(&jpeg, b"GPS"));
    let stored = upload(&ann, slug, "holiday.jpg", jpeg.clone()).await?;
    assert_eq!(stored.mime, "image/jpeg");
    // The sender's own unsent upload: readable by them.
    let response = ann.get(&file_path(slug, &stored.id)).await?;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await?;
    assert_eq!(body.len(), jpeg.len());
    assert!(!contains(&body, b"Exif"), "Exif left in {body:?}");
    assert!(!contains(&body, b"GPS"), "GPS left in {body:?}");
    assert!(!contains(&body, b"Secret 9000"));
    assert_eq!(&body[..2], &[0xFF, 0xD8]);
    assert!(contains(&body, b"JFIF"), "the JFIF header stays");
    // Nowhere in the local R2 store either.
    let persist = server().await.persist_dir();
    assert_eq!(blobs_holding(persist, &body), 1);
    assert!(stored_blobs(persist)
        .iter()
        .all(|p| std::fs::read(p).map_or(true, |b| !contains(&b, b"Secret 9000"))));
    Ok(())
}

#[tokio::test]
async fn a_damaged_image_is_refused_and_nothing_of_it_is_stored() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    // An APP1 segment whose length runs past a marker the scrubber must find: a JPEG it
    // cannot walk, so its metadata could not be removed.
    let mut broken = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01];
    broken.extend_from_slice(unique("Exif GPS").as_bytes());
    let t =
        ticket(begin(&ann, slug, &unique("up"), "broken.jpg", broken.len() as u64).await?).await?;
    let response = put(
        &ann,
        &format!("/api/rooms/{slug}/uploads/{}", t.id),
        broken.clone(),
    )
    .await?;
    let (status, body) = e2e::client::error_body(response).await?;
    assert!(
        matches!(
            body.code,
            ErrorCode::UnsupportedMedia | ErrorCode::InvalidInput
        ),
        "{status}: {body:?}"
    );
    expect_error(ann.get(&file_path(slug, &t.id)).await?, ErrorCode::NotFound).await?;
    assert_eq!(blobs_holding(server().await.persist_dir(), &broken), 0);
    Ok(())
}

#[tokio::test]
async fn a_file_over_the_configured_limit_is_refused_as_too_large_naming_the_limit() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    let big = expect_error(
        begin(&ann, slug, &unique("up"), "film.mp4", FILE_MAX + 1).await?,
        ErrorCode::TooLarge,
    )
    .await?;
    assert!(big.message.contains("1 MB"), "{}", big.message);
    // At the limit is fine; an empty file is not.
    ticket(begin(&ann, slug, &unique("up"), "film.mp4", FILE_MAX).await?).await?;
    expect_error(
        begin(&ann, slug, &unique("up"), "empty.txt", 0).await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_room_whose_files_fill_its_quota_refuses_the_next_with_quota_exceeded() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    // Announced bytes count toward the quota at once: three 1 MB files fill 3 MB.
    for _ in 0..3 {
        ticket(begin(&ann, slug, &unique("up"), "part.bin", FILE_MAX).await?).await?;
    }
    let full = expect_error(
        begin(&ann, slug, &unique("up"), "one-more.bin", 10).await?,
        ErrorCode::QuotaExceeded,
    )
    .await?;
    assert!(full.message.contains("3 MB"), "{}", full.message);
    Ok(())
}

#[tokio::test]
async fn announcing_too_many_files_in_a_minute_is_rate_limited() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    for _ in 0..PER_MINUTE {
        ticket(begin(&ann, slug, &unique("up"), "a.txt", 4).await?).await?;
    }
    let limited = begin(&ann, slug, &unique("up"), "a.txt", 4).await?;
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(limited, ErrorCode::RateLimited).await?;
    // Someone else in the same room is not held back.
    let bob = user("Bob").await?;
    bob.visit(slug).await?;
    ticket(begin(&bob, slug, &unique("up"), "b.txt", 4).await?).await?;
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_the_announced_size_is_refused_before_it_is_read() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    let t = ticket(begin(&ann, slug, &unique("up"), "notes.txt", 5).await?).await?;
    let path = format!("/api/rooms/{slug}/uploads/{}", t.id);
    expect_error(
        put(&ann, &path, b"hello world".to_vec()).await?,
        ErrorCode::TooLarge,
    )
    .await?;
    expect_error(
        put(&ann, &path, b"hi".to_vec()).await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    let ok = put(&ann, &path, b"hello".to_vec()).await?;
    assert_eq!(ok.status().as_u16(), 200);
    let stored: Attachment = ok.json().await?;
    assert_eq!((stored.kind, stored.size), (Kind::Text, 5));
    Ok(())
}

#[tokio::test]
async fn deleting_the_message_deletes_its_file_and_thumbnail_from_storage() -> Result {
    let ann = user("Ann").await?;
    let bob = user("Bob").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    bob.visit(slug).await?;
    let png = unique_png()?;
    let stored = upload(&ann, slug, "cat.png", png.clone()).await?;
    let mut thumb_bytes = e2e::fixture_image_bytes("chelsea-224.png")?;
    thumb_bytes.extend_from_slice(unique("thumb").as_bytes());
    let thumb = put(
        &ann,
        &format!("/api/rooms/{slug}/uploads/{}/thumb", stored.id),
        thumb_bytes.clone(),
    )
    .await?;
    assert_eq!(thumb.status().as_u16(), 204);
    let seq = send_with(&mut a, "soon gone", &[&stored.id]).await?;
    let path = file_path(slug, &stored.id);
    assert_eq!(bob.get(&path).await?.status().as_u16(), 200);
    let persist = server().await.persist_dir();
    assert_eq!(blobs_holding(persist, &png), 1);
    assert_eq!(blobs_holding(persist, &thumb_bytes), 1);

    a.delete(&unique("d"), seq).await?;
    // The socket's handler deleted the objects before it took the next frame; a round trip
    // on the same socket orders this read after it.
    send_with(&mut a, "after", &[]).await?;
    expect_error(bob.get(&path).await?, ErrorCode::NotFound).await?;
    expect_error(ann.get(&path).await?, ErrorCode::NotFound).await?;
    expect_error(
        bob.get(&format!("{path}/thumb")).await?,
        ErrorCode::NotFound,
    )
    .await?;
    assert_eq!(blobs_holding(persist, &png), 0, "the file's object is gone");
    assert_eq!(
        blobs_holding(persist, &thumb_bytes),
        0,
        "the thumbnail's too"
    );
    Ok(())
}

#[tokio::test]
async fn a_cancelled_upload_is_deleted_at_once_and_cannot_be_stored_again() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    let png = unique_png()?;
    let stored = upload(&ann, slug, "cat.png", png.clone()).await?;
    let path = file_path(slug, &stored.id);
    assert_eq!(ann.get(&path).await?.status().as_u16(), 200);
    let persist = server().await.persist_dir();
    assert_eq!(blobs_holding(persist, &png), 1);

    let upload_path = format!("/api/rooms/{slug}/uploads/{}", stored.id);
    let cancelled = ann.request(Method::DELETE, &upload_path).send().await?;
    assert_eq!(cancelled.status().as_u16(), 204);
    expect_error(ann.get(&path).await?, ErrorCode::NotFound).await?;
    assert_eq!(blobs_holding(persist, &png), 0);
    expect_error(put(&ann, &upload_path, png).await?, ErrorCode::NotFound).await?;
    // And it cannot be sent.
    let (mut a, _) = ann.join(slug, None).await?;
    let client_id = unique("m");
    let refused = a
        .answer(
            &ClientMessage::Send {
                client_id: client_id.clone(),
                text: "x".into(),
                attachments: vec![stored.id.clone()],
            },
            &client_id,
        )
        .await?;
    assert_eq!(refused, Err(ErrorCode::NotFound));
    Ok(())
}

#[tokio::test]
async fn a_retried_announcement_gets_the_same_id_and_a_retried_put_overwrites_the_one_object(
) -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    ann.visit(slug).await?;
    let png = unique_png()?;
    let upload_id = unique("up");
    let size = png.len() as u64;
    let first = ticket(begin(&ann, slug, &upload_id, "cat.png", size).await?).await?;
    let second = ticket(begin(&ann, slug, &upload_id, "cat.png", size).await?).await?;
    assert_eq!(first.id, second.id);
    assert!(second.stored.is_none());

    let path = format!("/api/rooms/{slug}/uploads/{}", first.id);
    for _ in 0..2 {
        let response = put(&ann, &path, png.clone()).await?;
        assert_eq!(response.status().as_u16(), 200);
    }
    let third = ticket(begin(&ann, slug, &upload_id, "cat.png", size).await?).await?;
    assert_eq!(third.id, first.id);
    assert_eq!(
        third.stored.map(|a| a.size),
        Some(size),
        "a retry after storing says so"
    );
    assert_eq!(
        blobs_holding(server().await.persist_dir(), &png),
        1,
        "two PUTs of one upload leave one object"
    );
    Ok(())
}

#[tokio::test]
async fn an_upload_never_sent_is_swept_after_a_day_and_a_sent_one_is_not() -> Result {
    let ann = user("Ann").await?;
    let room = ann.new_room().await?;
    let slug = room.slug.as_str();
    let (mut a, _) = ann.join(slug, None).await?;
    let orphan_bytes = unique_png()?;
    let kept_bytes = unique_png()?;
    let orphan = upload(&ann, slug, "forgotten.png", orphan_bytes.clone()).await?;
    let kept = upload(&ann, slug, "sent.png", kept_bytes.clone()).await?;
    send_with(&mut a, "kept", &[&kept.id]).await?;

    // Today nothing is due.
    let now: serde_json::Value = ann
        .post(&format!("/api/rooms/{slug}/files/sweep?ahead_ms=0"), &())
        .await?
        .json()
        .await?;
    assert_eq!(now["deleted"], 0);
    assert_eq!(
        ann.get(&file_path(slug, &orphan.id))
            .await?
            .status()
            .as_u16(),
        200
    );

    let later: serde_json::Value = ann
        .post(
            &format!("/api/rooms/{slug}/files/sweep?ahead_ms={A_DAY_LATER_MS}"),
            &(),
        )
        .await?
        .json()
        .await?;
    assert_eq!(later["deleted"], 1, "{later}");
    expect_error(
        ann.get(&file_path(slug, &orphan.id)).await?,
        ErrorCode::NotFound,
    )
    .await?;
    assert_eq!(
        ann.get(&file_path(slug, &kept.id)).await?.status().as_u16(),
        200
    );
    let persist = server().await.persist_dir();
    assert_eq!(blobs_holding(persist, &orphan_bytes), 0);
    assert_eq!(blobs_holding(persist, &kept_bytes), 1);
    Ok(())
}

#[tokio::test]
async fn the_local_classifier_labels_the_cat_photo_a_cat() -> Result {
    use e2e::model::{binary_path, ModelServer};
    if !binary_path().is_file() {
        eprintln!(
            "skipped: the model server is not built ({}); ./scripts/build builds it",
            binary_path().display()
        );
        return Ok(());
    }
    let model = ModelServer::start().await?;
    let dev =
        DevServer::start(DevOptions::default().var("CLASSIFIER_URL", model.base_url())).await?;
    let ann = Session::create(&dev, "Ann").await?;
    let room = ann.new_room().await?;
    ann.visit(&room.slug).await?;
    let stored = upload(
        &ann,
        &room.slug,
        "chelsea.png",
        e2e::fixture_image_bytes("chelsea.png")?,
    )
    .await?;
    assert!(
        stored.labels.iter().any(|l| {
            let name = l.name.to_lowercase();
            name.contains("mau") || name.contains("cat")
        }),
        "labels {:?}; model server log:\n{}\nworker log:\n{}",
        stored.labels,
        model.log_tail(),
        dev.log_tail()
    );
    eprintln!("labels of chelsea.png: {:?}", stored.labels);
    assert!(stored.labels.len() <= 5);
    assert!(stored.labels.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(stored.labels.iter().all(|l| l.score >= 10));
    Ok(())
}
