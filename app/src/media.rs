//! How a message's files are shown, the pure parts: their addresses, the icon of a kind, the
//! wording of an image's labels and the search a label opens. Unit-tested natively; the
//! components in `components/attachments.rs` render with these.

use shared::media::Kind;
use shared::protocol::{Attachment, Label};

/// `/api/rooms/{slug}/files/{id}`: the file itself (images, audio and video inline, everything
/// else a download, as the Worker's `Content-Disposition` says).
pub fn file_url(slug: &str, id: &str) -> String {
    format!("/api/rooms/{slug}/files/{id}")
}

/// The thumbnail (an image's, or a video's poster frame) of an attachment that has one.
pub fn thumb_url(slug: &str, id: &str) -> String {
    format!("{}/thumb", file_url(slug, id))
}

/// What an image row shows: its thumbnail when the sender's browser made one, else the file.
pub fn inline_image_url(slug: &str, a: &Attachment) -> String {
    if a.thumb {
        thumb_url(slug, &a.id)
    } else {
        file_url(slug, &a.id)
    }
}

/// The icon of a file card (text, so it costs no bytes of images and needs no `img-src`).
pub fn kind_icon(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "🖼",
        Kind::Video => "🎞",
        Kind::Audio => "🎵",
        Kind::Pdf => "📕",
        Kind::Text => "📄",
        Kind::Archive => "🗜",
        Kind::File => "📎",
    }
}

/// What a kind is called in a card's title and the Files panel.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "Image",
        Kind::Video => "Video",
        Kind::Audio => "Audio",
        Kind::Pdf => "PDF",
        Kind::Text => "Text",
        Kind::Archive => "Archive",
        Kind::File => "File",
    }
}

/// A label as a tag shows it: "Egyptian Mau · 80%" (the score is in thousandths; rounded to a
/// whole percent, which is all a reader can use).
pub fn label_text(label: &Label) -> String {
    let percent = (u32::from(label.score.min(1000)) + 5) / 10;
    format!("{} · {percent}%", label.name)
}

/// The search a tag opens: `tag:cat`, or `tag:"egyptian mau"` for a label of several words (the
/// query language quotes a value with spaces, as in `from:"Ann Lee"`). Its words are the ones
/// `shared::search::tag_words` indexes, so what the tag says is what the search finds.
pub fn tag_query(label: &str) -> String {
    let words = shared::search::tag_words(label);
    if words.contains(' ') {
        format!("tag:\"{words}\"")
    } else {
        format!("tag:{words}")
    }
}

/// The size attributes an inline image or video gets, so the timeline keeps its place while it
/// loads: the measured size scaled to fit `max` pixels a side (the stylesheet may shrink it
/// further, keeping the ratio). `None` when the sender's browser measured nothing.
pub fn display_size(a: &Attachment, max: u32) -> Option<(u32, u32)> {
    match (a.width, a.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Some(crate::avatar::fit(w, h, max)),
        _ => None,
    }
}

/// The largest side an image shows at in the timeline (CSS pixels).
pub const INLINE_MAX_SIDE: u32 = 320;

/// The images among these attachments, in order: what the lightbox moves through.
pub fn images(attachments: &[Attachment]) -> impl Iterator<Item = &Attachment> {
    attachments.iter().filter(|a| a.kind == Kind::Image)
}

/// "1:05", "12:00", "1:02:03": a playing time for a card's caption.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(kind: Kind, thumb: bool) -> Attachment {
        Attachment {
            id: "AbCdEfGhIjKlMnOpQrStUv".into(),
            name: "chelsea.png".into(),
            size: 1234,
            mime: "image/png".into(),
            kind,
            width: Some(451),
            height: Some(300),
            duration_ms: None,
            thumb,
            labels: Vec::new(),
            transcript: None,
        }
    }

    #[test]
    fn an_image_shows_its_thumbnail_when_it_has_one_and_the_file_when_not() {
        let a = attachment(Kind::Image, true);
        assert_eq!(
            inline_image_url("cats", &a),
            "/api/rooms/cats/files/AbCdEfGhIjKlMnOpQrStUv/thumb"
        );
        let b = attachment(Kind::Image, false);
        assert_eq!(
            inline_image_url("cats", &b),
            "/api/rooms/cats/files/AbCdEfGhIjKlMnOpQrStUv"
        );
    }

    #[test]
    fn a_label_reads_as_its_name_and_a_whole_percent() {
        let label = |score| Label {
            name: "Egyptian Mau".into(),
            score,
        };
        assert_eq!(label_text(&label(800)), "Egyptian Mau · 80%");
        assert_eq!(label_text(&label(806)), "Egyptian Mau · 81%", "rounded");
        assert_eq!(label_text(&label(4)), "Egyptian Mau · 0%");
        assert_eq!(label_text(&label(1000)), "Egyptian Mau · 100%");
        assert_eq!(label_text(&label(5000)), "Egyptian Mau · 100%", "capped");
    }

    #[test]
    fn a_tag_searches_its_words_quoted_only_when_there_are_several() {
        assert_eq!(tag_query("Egyptian Mau"), "tag:\"egyptian mau\"");
        assert_eq!(tag_query("espresso"), "tag:espresso");
        assert_eq!(tag_query("tabby, tabby cat"), "tag:\"tabby tabby cat\"");
        // What the tag opens is what the room's search understands.
        let parsed = shared::search::parse_query(&tag_query("Egyptian Mau")).expect("parses");
        assert_eq!(parsed.tag.as_deref(), Some("egyptian mau"));
    }

    #[test]
    fn an_image_keeps_its_proportions_within_the_inline_size_and_unmeasured_ones_get_none() {
        let a = attachment(Kind::Image, true);
        assert_eq!(display_size(&a, 320), Some((320, 213)));
        let small = Attachment {
            width: Some(100),
            height: Some(50),
            ..a.clone()
        };
        assert_eq!(display_size(&small, 320), Some((100, 50)));
        let unmeasured = Attachment {
            width: None,
            ..a.clone()
        };
        assert_eq!(display_size(&unmeasured, 320), None);
        let zero = Attachment {
            height: Some(0),
            ..a
        };
        assert_eq!(display_size(&zero, 320), None);
    }

    #[test]
    fn playing_times_read_as_minutes_and_seconds_or_hours() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(65_400), "1:05");
        assert_eq!(duration(3_723_000), "1:02:03");
    }

    #[test]
    fn every_kind_has_an_icon_and_a_name() {
        for kind in [
            Kind::Image,
            Kind::Video,
            Kind::Audio,
            Kind::Pdf,
            Kind::Text,
            Kind::Archive,
            Kind::File,
        ] {
            assert!(!kind_icon(kind).is_empty());
            assert!(!kind_name(kind).is_empty());
        }
    }
}
