//! Serving a stored file to the room's members: what is shown inline and what only
//! downloads, the headers every file carries, revalidation and byte ranges.

use super::*;

/// Served with every file: a file is never a page. `sandbox` takes scripts, forms and the
/// origin away from anything a browser might still render; images and media may load from this
/// origin only (an SVG or HTML file never gets this far: they are downloads).
const FILE_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'";

/// Members' browsers keep a file an hour; `private` keeps shared caches out of it.
const FILE_CACHE: &str = "private, max-age=3600";

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAsk {
    /// No range, or one this server ignores (several ranges, a malformed header): the whole
    /// file, 200, as RFC 9110 allows.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Starts past the end: 416.
    Unsatisfiable,
}

/// Reads a `Range` header: `bytes=a-b`, `bytes=a-` or `bytes=-n`.
fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') || size == 0 {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(first), number(last), last.trim().is_empty()) {
        // The last n bytes.
        (None, Some(n), _) if first.trim().is_empty() => {
            if n == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (Some(start), _, true) if start < size => RangeAsk::Part {
            start,
            end: size - 1,
        },
        (Some(start), Some(end), false) if start <= end && start < size => RangeAsk::Part {
            start,
            end: end.min(size - 1),
        },
        (Some(start), _, _) if start >= size => RangeAsk::Unsatisfiable,
        _ => RangeAsk::Whole,
    }
}

/// The one entity tag of an `If-None-Match` header, as R2 compares it (no quotes, no weak
/// prefix); `None` for none, several, or `*`.
fn if_none_match(header: Option<&str>) -> Option<String> {
    let mut tags = crate::cache::none_match_tags(header?);
    match (tags.next(), tags.next()) {
        (Some(Some(tag)), None) => Some(tag.to_owned()),
        _ => None,
    }
}

/// Whether a file of this kind is shown in the page: raster images, audio and video. Anything
/// else (PDF, text, archives, unknown bytes — an HTML or SVG file is unknown bytes) is only
/// ever a download.
fn is_inline(kind: Kind) -> bool {
    matches!(kind, Kind::Image | Kind::Audio | Kind::Video)
}

/// `GET …/files/{id}` and `…/files/{id}/thumb`, for members who may read the room.
pub(super) async fn read(req: Request, env: &Env, slug: &str, id: &str, thumb: bool) -> ApiResult {
    let user = file_user(&req, env, slug).await?;
    let attachment = ask(
        env,
        slug,
        ReadFile {
            user,
            id: id.to_owned(),
        },
    )
    .await?;
    let missing = || {
        fail(
            ErrorCode::NotFound,
            "No such file in this room (or it was deleted).",
        )
    };
    if thumb && !attachment.thumb {
        return Err(missing());
    }
    let range = if thumb {
        RangeAsk::Whole
    } else {
        parse_range(req.headers().get("Range")?.as_deref(), attachment.size)
    };
    if range == RangeAsk::Unsatisfiable {
        let mut response = json(
            &ErrorBody {
                code: ErrorCode::InvalidInput,
                message: format!(
                    "The range starts past the end of the file ({} bytes).",
                    attachment.size
                ),
            },
            416,
        )?;
        response
            .headers_mut()
            .set("Content-Range", &format!("bytes */{}", attachment.size))?;
        return Ok(response);
    }
    let key = if thumb {
        thumb_key(slug, id)
    } else {
        object_key(slug, id)
    };
    let bucket = env.bucket(ATTACHMENTS)?;
    let mut get = bucket.get(key);
    if let Some(tag) = if_none_match(req.headers().get("If-None-Match")?.as_deref()) {
        get = get.only_if(Conditional {
            etag_does_not_match: Some(tag),
            ..Conditional::default()
        });
    }
    if let RangeAsk::Part { start, end } = range {
        get = get.range(worker::Range::OffsetWithLength {
            offset: start,
            length: end - start + 1,
        });
    }
    let object = get.execute().await?.ok_or_else(missing)?;
    let headers = Headers::new();
    headers.set("ETag", &object.http_etag())?;
    headers.set("Cache-Control", FILE_CACHE)?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    headers.set("Content-Security-Policy", FILE_CSP)?;
    let Some(body) = object.body() else {
        // The condition failed: the browser's copy is this object.
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    };
    let inline = thumb || is_inline(attachment.kind);
    let content_type = match (thumb, inline) {
        (true, _) => object
            .http_metadata()
            .content_type
            .unwrap_or_else(|| "application/octet-stream".into()),
        (false, true) => attachment.mime.clone(),
        (false, false) => "application/octet-stream".into(),
    };
    headers.set("Content-Type", &content_type)?;
    let name = if thumb {
        "thumbnail"
    } else {
        attachment.name.as_str()
    };
    headers.set(
        "Content-Disposition",
        &shared::media::name::content_disposition(name, inline),
    )?;
    headers.set("Accept-Ranges", "bytes")?;
    let status = match range {
        RangeAsk::Part { start, end } => {
            headers.set(
                "Content-Range",
                &format!("bytes {start}-{end}/{}", attachment.size),
            )?;
            206
        }
        _ => 200,
    };
    // Handed to the runtime as R2's own stream: the Worker never holds the file.
    Ok(Response::from_body(body.response_body()?)?
        .with_status(status)
        .with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_reads_as_the_bytes_it_names_clamped_to_the_file() {
        let size = 1000;
        let part = |start, end| RangeAsk::Part { start, end };
        assert_eq!(parse_range(Some("bytes=0-99"), size), part(0, 99));
        assert_eq!(parse_range(Some("bytes=900-"), size), part(900, 999));
        assert_eq!(parse_range(Some("bytes=-100"), size), part(900, 999));
        assert_eq!(parse_range(Some("bytes=-5000"), size), part(0, 999));
        assert_eq!(parse_range(Some("bytes=500-5000"), size), part(500, 999));
        assert_eq!(parse_range(Some("bytes=999-999"), size), part(999, 999));
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable_and_anything_odd_is_the_whole_file() {
        let size = 1000;
        assert_eq!(
            parse_range(Some("bytes=1000-"), size),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=2000-3000"), size),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=-0"), size), RangeAsk::Unsatisfiable);
        for ignored in [
            None,
            Some("bytes=0-1,5-9"),
            Some("items=0-5"),
            Some("bytes=5-1"),
            Some("bytes=a-b"),
            Some("bytes=-"),
            Some("bytes=+1-2"),
        ] {
            assert_eq!(parse_range(ignored, size), RangeAsk::Whole, "{ignored:?}");
        }
    }

    #[test]
    fn if_none_match_is_compared_as_r2_stores_the_tag() {
        assert_eq!(if_none_match(Some("\"abc\"")), Some("abc".into()));
        assert_eq!(if_none_match(Some("W/\"abc\"")), Some("abc".into()));
        assert_eq!(if_none_match(Some("*")), None);
        assert_eq!(if_none_match(Some("\"a\", \"b\"")), None);
        assert_eq!(if_none_match(None), None);
    }

    #[test]
    fn only_raster_images_audio_and_video_are_ever_shown_inline() {
        for kind in [Kind::Image, Kind::Audio, Kind::Video] {
            assert!(is_inline(kind), "{kind:?}");
        }
        for kind in [Kind::Pdf, Kind::Text, Kind::Archive, Kind::File] {
            assert!(!is_inline(kind), "{kind:?}");
        }
        // An HTML page named .png sniffs as unknown bytes: a download.
        let html = sniff(b"<!doctype html><script>alert(1)</script>");
        assert!(!is_inline(html.kind));
    }
}
