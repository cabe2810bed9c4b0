//! Files attached to messages (issue 11): the Worker's half. Every decision about a file —
//! who may upload or read it, the limits, when it goes — is the room's
//! (`shared::room::attachments`); this module moves the bytes between the client and the
//! `ATTACHMENTS` R2 bucket and asks the room at each step.
//!
//! - `POST /api/rooms/{slug}/uploads` announces a file (`BeginUpload`) and gets its id.
//! - `PUT /api/rooms/{slug}/uploads/{id}` streams the body to R2 at `rooms/{slug}/{id}`: the
//!   first [`SNIFF_BYTES`] decide what it is ([`sniff`], never the name or the client's type),
//!   every chunk passes through the metadata [`Scrubber`] (length-preserving, so the object's
//!   length is the `Content-Length` announced before the first byte, as R2 needs), and nothing
//!   is held but the chunk in flight. Images are then classified; the room records the result.
//! - `PUT …/uploads/{id}/thumb` stores the sender's thumbnail (a small raster image).
//! - `DELETE …/uploads/{id}` cancels an unsent upload; its objects go at once.
//! - `GET /api/rooms/{slug}/files/{id}` (and `…/thumb`) serves a file to the room's members
//!   only, as a download unless it is a raster image, audio or video, with `nosniff` and a
//!   sandboxing CSP; ETags and byte ranges let the browser revalidate and seek.
//! - `GET /api/rooms/{slug}/files?kind=&before=` lists the room's files.
//!
//! The room's object deletes objects through [`sweep`] (a deleted message's files, cancelled
//! uploads, uploads never sent within a day). Serving a file is in [`serve`], its labels and
//! transcript in [`describe`].

mod describe;
mod serve;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use shared::error::{ChatError, ErrorCode};
use shared::limits::THUMB_MAX_BYTES;
use shared::media::scrub::{ScrubError, Scrubber};
use shared::media::sniff::{sniff, Format, Sniffed, SNIFF_BYTES};
use shared::media::Kind;
use shared::protocol::http::ErrorBody;
use shared::protocol::{Label, Millis, Seq};
use shared::room::attachments::StoredFile;
use shared::room::Room;
use worker::{
    console_error, console_warn, ByteStream, Conditional, Delay, Env, Fetch, FixedLengthStream,
    Headers, HttpMetadata, Method, Request, RequestInit, Response,
};

use crate::config;
use crate::http::{check_origin, fail, json, query_param, read_json, ApiError, ApiResult};
use crate::rooms::contract::{
    self, BeginUpload, CancelUpload, FileUser, ListFiles, ReadFile, RoomCall, SweepFiles,
    ThumbStored, UploadSlot, UploadStored, UploadTarget,
};
use crate::rooms::store::DurableSql;

/// The R2 bucket of message attachments.
pub const ATTACHMENTS: &str = "ATTACHMENTS";

/// A fresh attachment id: 128 random bits, unpadded base64url (22 characters).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The object of upload `id` in room `slug`.
fn object_key(slug: &str, id: &str) -> String {
    format!("rooms/{slug}/{id}")
}

/// Its thumbnail.
fn thumb_key(slug: &str, id: &str) -> String {
    format!("rooms/{slug}/{id}/thumb")
}

/// Routes `…/rooms/{slug}/uploads…` and `…/rooms/{slug}/files…`.
pub async fn route(req: Request, env: &Env, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (Method::Post, ["rooms", slug, "uploads"]) => begin(req, env, slug).await,
        (Method::Put, ["rooms", slug, "uploads", id]) => store(req, env, slug, id).await,
        (Method::Put, ["rooms", slug, "uploads", id, "thumb"]) => {
            store_thumb(req, env, slug, id).await
        }
        (Method::Delete, ["rooms", slug, "uploads", id]) => cancel(req, env, slug, id).await,
        (Method::Get, ["rooms", slug, "files"]) => list(req, env, slug).await,
        (Method::Post, ["rooms", slug, "files", "sweep"]) if test_sweep_enabled(env, &req) => {
            test_sweep(req, env, slug).await
        }
        (Method::Get, ["rooms", slug, "files", id]) => serve::read(req, env, slug, id, false).await,
        (Method::Get, ["rooms", slug, "files", id, "thumb"]) => {
            serve::read(req, env, slug, id, true).await
        }
        _ => Err(fail(
            ErrorCode::NotFound,
            format!("No API at {}.", req.path()),
        )),
    }
}

/// The verified user of a request, in room `slug` (which must exist). No profile is read:
/// the room decides everything from the user id and the admin flag.
async fn file_user(req: &Request, env: &Env, slug: &str) -> Result<FileUser, ApiError> {
    let session = crate::session::current(req, env).await?.ok_or_else(|| {
        fail(
            ErrorCode::Unauthorized,
            "Sign in or choose a display name first (no valid session).",
        )
    })?;
    let no_room = || {
        fail(
            ErrorCode::NotFound,
            format!("There is no room named {slug}."),
        )
    };
    if !shared::limits::is_valid_slug(slug) {
        return Err(no_room());
    }
    let entry = crate::directory::get(env, slug)
        .await?
        .ok_or_else(no_room)?;
    Ok(FileUser {
        room: entry.info,
        admin: session.role.as_deref() == Some("admin"),
        user_id: session.user_id,
        loopback: crate::auth::oauth::is_loopback(req),
    })
}

/// Asks the room; its refusal passes through as the API's error.
async fn ask<R: RoomCall>(env: &Env, slug: &str, request: R) -> Result<R::Response, ApiError> {
    contract::call(env, slug, request)
        .await
        .map_err(crate::rooms::queries::unanswered_error)
}

fn no_content() -> ApiResult {
    Ok(Response::empty()?.with_status(204))
}

/// `POST …/uploads`: the room checks the limits this Worker is configured with and issues the
/// ticket (the same one again for a retry with the same `upload_id`).
async fn begin(req: Request, env: &Env, slug: &str) -> ApiResult {
    check_origin(&req, false)?;
    let user = file_user(&req, env, slug).await?;
    let request: shared::protocol::http::BeginUpload = read_json(req).await?;
    // Read here rather than in the room: the limits travel with the call, so the room's rule
    // is a pure function of what it is handed, and a changed setting applies at once.
    let limits = config::upload_limits(env);
    let ticket = ask(
        env,
        slug,
        BeginUpload {
            user,
            request,
            limits,
        },
    )
    .await?;
    Ok(json(&ticket, 200)?)
}

/// The request's `Content-Length`, which an upload must send: R2 needs an object's length
/// before its first byte, and a body is compared with what was announced before it is read.
fn content_length(req: &Request) -> Result<u64, ApiError> {
    req.headers()
        .get("Content-Length")?
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            fail(
                ErrorCode::InvalidInput,
                "Send the file with a Content-Length header (its size in bytes); a chunked body \
                 cannot be stored.",
            )
        })
}

/// The body must be exactly the announced size: larger is `too_large`, smaller `invalid_input`.
fn check_declared(declared: u64, announced: u64) -> Result<(), ApiError> {
    if declared == announced {
        return Ok(());
    }
    let code = if declared > announced {
        ErrorCode::TooLarge
    } else {
        ErrorCode::InvalidInput
    };
    Err(fail(
        code,
        format!("The body is {declared} bytes; this upload was announced as {announced} bytes."),
    ))
}

/// `PUT …/uploads/{id}`: streams the body through the sniffer and the scrubber into R2, then
/// records it with the room.
async fn store(mut req: Request, env: &Env, slug: &str, id: &str) -> ApiResult {
    check_origin(&req, false)?;
    let user = file_user(&req, env, slug).await?;
    let declared = content_length(&req)?;
    // Before any byte is read: a foreign, guessed, sent or cancelled id stores nothing.
    let slot: UploadSlot = ask(
        env,
        slug,
        UploadTarget {
            user: user.clone(),
            id: id.to_owned(),
        },
    )
    .await?;
    check_declared(declared, slot.size)?;
    let mut body = req.stream().map_err(|_| {
        fail(
            ErrorCode::InvalidInput,
            "The request has no body; send the file's bytes.",
        )
    })?;
    let head = read_head(&mut body).await?;
    let sniffed = sniff(&head);
    let key = object_key(slug, id);
    let bucket = env.bucket(ATTACHMENTS)?;
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let stream = Scrubbing::new(head, body, sniffed.format, slot.size, Rc::clone(&outcome));
    let put = bucket
        .put(
            key.as_str(),
            FixedLengthStream::wrap(stream.into_stream(), slot.size),
        )
        .http_metadata(HttpMetadata {
            content_type: Some(sniffed.mime.to_owned()),
            ..HttpMetadata::default()
        })
        .execute()
        .await;
    let problem = outcome.borrow_mut().problem.take();
    if let Some(refusal) = put_refusal(problem, put.as_ref().err()) {
        // R2 stores an object whole or not at all, so a failed first put left nothing; a
        // failed retry leaves the earlier, complete object, which the room still names. The
        // delete is for a runtime that would keep a part anyway (or a put that succeeded
        // although its stream failed): an object no stored upload names, or one that is not
        // what was checked, goes.
        if !slot.stored || put.is_ok() {
            if let Err(e) = bucket.delete(key.as_str()).await {
                console_error!("could not delete the refused upload {key}: {e}");
            }
        }
        return Err(refusal);
    }
    let neutralised = outcome.borrow().neutralised;
    if neutralised > 0 {
        worker::console_log!("upload {key}: {neutralised} metadata blocks neutralised");
    }
    let (labels, transcript) = describe::describe(env, &bucket, &key, sniffed, slot.size).await;
    let file = StoredFile {
        mime: sniffed.mime.to_owned(),
        kind: sniffed.kind,
        size: slot.size,
        labels,
        transcript,
    };
    let stored = ask(
        env,
        slug,
        UploadStored {
            user,
            id: id.to_owned(),
            file,
        },
    )
    .await;
    match stored {
        Ok(attachment) => Ok(json(&attachment, 200)?),
        Err(e) => {
            // Cancelled (and swept) while the bytes were on their way: nothing names the
            // object any more.
            if e.error.code == ErrorCode::NotFound {
                let _ = bucket.delete(key.as_str()).await;
            }
            Err(e)
        }
    }
}

/// The first [`SNIFF_BYTES`] of a body (more if a chunk carries more; less only if the body
/// is shorter): what [`sniff`] decides on.
async fn read_head(body: &mut ByteStream) -> Result<Vec<u8>, ApiError> {
    let mut head = Vec::new();
    while head.len() < SNIFF_BYTES {
        match body.next().await {
            Some(chunk) => head.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok(head)
}

/// What went wrong with an upload's bytes on their way to R2.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// The image's structure broke where the scrubber walks it: its metadata may still be in.
    Scrub(ScrubError),
    /// More bytes than `Content-Length` said.
    TooLong { expected: u64 },
    /// Fewer.
    TooShort { expected: u64, received: u64 },
    /// The client's body failed (a dropped connection).
    Read(String),
}

/// What the stream saw, for the handler once the put has finished.
#[derive(Debug, Default)]
struct Outcome {
    problem: Option<Problem>,
    /// Metadata blocks the scrubber blanked.
    neutralised: u32,
}

/// The API's answer to a failed upload: the stream's problem if it had one (the put then
/// failed because the stream did), else the put's own failure.
fn put_refusal(problem: Option<Problem>, put: Option<&worker::Error>) -> Option<ApiError> {
    let refusal = match problem {
        Some(Problem::Scrub(ScrubError::Invalid(why))) => ApiError {
            error: ChatError::new(
                ErrorCode::UnsupportedMedia,
                "The image is damaged where its metadata would be, so its metadata cannot be \
                 removed; it was not stored. Save it again or send another file.",
            ),
            detail: Some(format!("scrub: {why}")),
        },
        Some(Problem::Scrub(ScrubError::Truncated)) => fail(
            ErrorCode::InvalidInput,
            "The image ends before its headers do; it was not stored.",
        ),
        Some(Problem::TooLong { expected }) => fail(
            ErrorCode::TooLarge,
            format!("The body is longer than its Content-Length ({expected} bytes)."),
        ),
        Some(Problem::TooShort { expected, received }) => fail(
            ErrorCode::InvalidInput,
            format!("The body ended after {received} of {expected} bytes; send the whole file."),
        ),
        Some(Problem::Read(detail)) => ApiError {
            error: ChatError::new(
                ErrorCode::InvalidInput,
                "The upload was interrupted; send the file again.",
            ),
            detail: Some(detail),
        },
        None => return put.map(|e| ApiError::from(worker::Error::RustError(e.to_string()))),
    };
    Some(refusal)
}

/// An upload's body on its way to R2: the head already read, then the rest, each chunk
/// through the scrubber, counted against `Content-Length`. An error ends the stream, which
/// fails the put, so nothing half-scrubbed or of the wrong length is ever stored.
struct Scrubbing {
    head: Option<Vec<u8>>,
    body: ByteStream,
    /// `None` once the stream has ended (finished or failed).
    scrubber: Option<Scrubber>,
    expected: u64,
    received: u64,
    outcome: Rc<RefCell<Outcome>>,
}

impl Scrubbing {
    fn new(
        head: Vec<u8>,
        body: ByteStream,
        format: Format,
        expected: u64,
        outcome: Rc<RefCell<Outcome>>,
    ) -> Scrubbing {
        Scrubbing {
            head: Some(head),
            body,
            scrubber: Some(Scrubber::new(format)),
            expected,
            received: 0,
            outcome,
        }
    }

    fn into_stream(self) -> impl Stream<Item = worker::Result<Vec<u8>>> + 'static {
        futures_util::stream::unfold(self, |mut s| async move {
            let item = s.next_chunk().await?;
            Some((item, s))
        })
    }

    /// Ends the stream with `problem`.
    fn fail(&mut self, problem: Problem) -> worker::Error {
        self.scrubber = None;
        let message = format!("upload stream: {problem:?}");
        self.outcome.borrow_mut().problem = Some(problem);
        worker::Error::RustError(message)
    }

    /// The next scrubbed bytes; `None` at the end.
    async fn next_chunk(&mut self) -> Option<worker::Result<Vec<u8>>> {
        loop {
            self.scrubber.as_ref()?;
            let chunk = match self.head.take() {
                Some(head) => Some(Ok(head)),
                None => self.body.next().await,
            };
            let bytes = match chunk {
                Some(Ok(bytes)) => bytes,
                Some(Err(e)) => return Some(Err(self.fail(Problem::Read(e.to_string())))),
                None => return self.finish(),
            };
            self.received += bytes.len() as u64;
            if self.received > self.expected {
                let expected = self.expected;
                return Some(Err(self.fail(Problem::TooLong { expected })));
            }
            let scrubbed = self.scrubber.as_mut().map(|s| s.push(&bytes))?;
            match scrubbed {
                // The scrubber holds back a header split across chunks until it is whole.
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Some(Ok(out)),
                Err(e) => return Some(Err(self.fail(Problem::Scrub(e)))),
            }
        }
    }

    /// The body ended: what the scrubber still holds, if the length was right.
    fn finish(&mut self) -> Option<worker::Result<Vec<u8>>> {
        if self.received < self.expected {
            let (expected, received) = (self.expected, self.received);
            return Some(Err(self.fail(Problem::TooShort { expected, received })));
        }
        match self.scrubber.take()?.finish() {
            Ok((tail, report)) => {
                self.outcome.borrow_mut().neutralised = report.neutralised;
                (!tail.is_empty()).then_some(Ok(tail))
            }
            Err(e) => Some(Err(self.fail(Problem::Scrub(e)))),
        }
    }
}

/// The raster formats a thumbnail may be (what an `<img>` shows everywhere).
fn is_raster(format: Format) -> bool {
    matches!(
        format,
        Format::Png | Format::Jpeg | Format::Webp | Format::Gif
    )
}

/// `PUT …/uploads/{id}/thumb`: a small raster image beside an upload, scrubbed like it.
async fn store_thumb(mut req: Request, env: &Env, slug: &str, id: &str) -> ApiResult {
    check_origin(&req, false)?;
    let user = file_user(&req, env, slug).await?;
    let declared = content_length(&req)?;
    if declared > THUMB_MAX_BYTES {
        return Err(fail(
            ErrorCode::TooLarge,
            format!(
                "A thumbnail may be at most {}.",
                shared::limits::human_bytes(THUMB_MAX_BYTES)
            ),
        ));
    }
    ask(
        env,
        slug,
        UploadTarget {
            user: user.clone(),
            id: id.to_owned(),
        },
    )
    .await?;
    let bytes = crate::body::read_capped(&mut req, THUMB_MAX_BYTES as usize)
        .await
        .or_else(|e| Err(ApiError::from(e.into_chat_error("The thumbnail")?)))?;
    check_declared(bytes.len() as u64, declared)?;
    let sniffed = sniff(&bytes);
    if !is_raster(sniffed.format) {
        return Err(fail(
            ErrorCode::UnsupportedMedia,
            "A thumbnail must be a PNG, JPEG, WebP or GIF image.",
        ));
    }
    let bytes = scrub_whole(sniffed.format, &bytes).map_err(|e| {
        fail(
            ErrorCode::UnsupportedMedia,
            format!("The thumbnail could not be read ({e})."),
        )
    })?;
    env.bucket(ATTACHMENTS)?
        .put(thumb_key(slug, id), bytes)
        .http_metadata(HttpMetadata {
            content_type: Some(sniffed.mime.to_owned()),
            ..HttpMetadata::default()
        })
        .execute()
        .await?;
    ask(
        env,
        slug,
        ThumbStored {
            user,
            id: id.to_owned(),
        },
    )
    .await?;
    no_content()
}

/// A whole small file through the scrubber.
fn scrub_whole(format: Format, bytes: &[u8]) -> Result<Vec<u8>, ScrubError> {
    let mut scrubber = Scrubber::new(format);
    let mut out = scrubber.push(bytes)?;
    let (tail, _) = scrubber.finish()?;
    out.extend_from_slice(&tail);
    Ok(out)
}

/// `DELETE …/uploads/{id}`: the room releases the upload and deletes its objects before it
/// answers.
async fn cancel(req: Request, env: &Env, slug: &str, id: &str) -> ApiResult {
    check_origin(&req, false)?;
    let user = file_user(&req, env, slug).await?;
    ask(
        env,
        slug,
        CancelUpload {
            user,
            id: id.to_owned(),
        },
    )
    .await?;
    no_content()
}

/// `GET …/files?kind=&before=`.
async fn list(req: Request, env: &Env, slug: &str) -> ApiResult {
    let user = file_user(&req, env, slug).await?;
    let kind = match query_param(&req, "kind").filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(
            serde_json::from_value::<Kind>(serde_json::Value::String(k)).map_err(|_| {
                fail(
                    ErrorCode::InvalidInput,
                    "kind is one of image, video, audio, pdf, text, archive, file.",
                )
            })?,
        ),
    };
    let before = match query_param(&req, "before").filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(b.parse::<Seq>().map_err(|_| {
            fail(
                ErrorCode::InvalidInput,
                "before is a message number (the list's `next`).",
            )
        })?),
    };
    let files = ask(env, slug, ListFiles { user, kind, before }).await?;
    Ok(json(&files, 200)?)
}

/// The test-only sweep is on: `FILES_TEST_SWEEP=1` (never in wrangler.toml), for requests to
/// localhost only, like every test switch.
fn test_sweep_enabled(env: &Env, req: &Request) -> bool {
    config::string(env, "FILES_TEST_SWEEP").as_deref() == Some("1")
        && crate::auth::oauth::is_loopback(req)
}

/// `POST …/files/sweep?ahead_ms=` (test only): the room's sweep as if the clock read
/// `ahead_ms` later — the one thing a test cannot wait for is a day.
async fn test_sweep(req: Request, env: &Env, slug: &str) -> ApiResult {
    let user = file_user(&req, env, slug).await?;
    let ahead_ms = query_param(&req, "ahead_ms")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let swept = ask(
        env,
        slug,
        SweepFiles {
            room: user.room,
            ahead_ms,
            loopback: user.loopback,
        },
    )
    .await?;
    Ok(json(&swept, 200)?)
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sweep {
    /// Uploads whose objects were deleted.
    pub deleted: u32,
    /// When the next sweep is due (ms since the epoch), if anything waits.
    pub next: Option<Millis>,
}

/// Deletes the objects of the uploads room `slug` releases at `at` (a deleted message's files,
/// cancelled uploads, uploads unattached for a day), then lets the room forget them. On a
/// failure the uploads stay released, and the next sweep tries again.
pub async fn sweep(
    env: &Env,
    slug: &str,
    room: &RefCell<Option<Room<DurableSql>>>,
    at: Millis,
) -> Result<Sweep, String> {
    let failed = |e: shared::room::Failure| format!("room storage: {e:?}");
    // No borrow of the room is held across an await.
    let ids = match room.borrow_mut().as_mut() {
        Some(room) => room.droppable_files(at).map_err(failed)?,
        None => return Ok(Sweep::default()),
    };
    if !ids.is_empty() {
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| [object_key(slug, id), thumb_key(slug, id)])
            .collect();
        env.bucket(ATTACHMENTS)
            .map_err(|e| e.to_string())?
            .delete_multiple(keys)
            .await
            .map_err(|e| format!("R2 delete: {e}"))?;
        if let Some(room) = room.borrow_mut().as_mut() {
            room.forget_files(&ids).map_err(failed)?;
        }
    }
    let next = match room.borrow().as_ref() {
        Some(room) => room.next_file_sweep().map_err(failed)?,
        None => None,
    };
    Ok(Sweep {
        deleted: ids.len() as u32,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_that_broke_on_its_way_is_refused_with_a_stable_code() {
        let code = |problem| put_refusal(Some(problem), None).map(|e| e.error.code);
        assert_eq!(
            code(Problem::Scrub(ScrubError::Invalid("segment length"))),
            Some(ErrorCode::UnsupportedMedia)
        );
        assert_eq!(
            code(Problem::Scrub(ScrubError::Truncated)),
            Some(ErrorCode::InvalidInput)
        );
        assert_eq!(
            code(Problem::TooLong { expected: 3 }),
            Some(ErrorCode::TooLarge)
        );
        assert_eq!(
            code(Problem::TooShort {
                expected: 3,
                received: 1
            }),
            Some(ErrorCode::InvalidInput)
        );
        assert!(put_refusal(None, None).is_none());
        let failed = worker::Error::RustError("r2 down".into());
        assert_eq!(
            put_refusal(None, Some(&failed)).map(|e| e.error.code),
            Some(ErrorCode::Internal)
        );
    }

    #[test]
    fn a_body_must_be_exactly_the_announced_size() {
        assert!(check_declared(10, 10).is_ok());
        assert_eq!(
            check_declared(11, 10).err().map(|e| e.error.code),
            Some(ErrorCode::TooLarge)
        );
        assert_eq!(
            check_declared(9, 10).err().map(|e| e.error.code),
            Some(ErrorCode::InvalidInput)
        );
    }

    #[test]
    fn thumbnails_are_raster_images_only() {
        assert!(is_raster(Format::Png) && is_raster(Format::Gif));
        assert!(!is_raster(Format::Avif) && !is_raster(Format::Pdf));
        assert!(!is_raster(Format::Unknown));
    }
}
