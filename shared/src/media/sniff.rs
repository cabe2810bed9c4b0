//! What a file is, decided by its first bytes and never by its name or by the type the uploader
//! claims: a name is whatever the uploader typed, so it is not even an input here.
//!
//! The edge buffers [`SNIFF_BYTES`] leading bytes of an upload (or the whole file if it is
//! shorter), calls [`sniff`], and serves the file with the `mime` found here plus
//! `X-Content-Type-Options: nosniff`; anything not [`Sniffed::inline`] is served as a download.
//!
//! Polyglots: a file can be two formats at once (a GIF header followed by HTML, a "GIFAR").
//! The leading magic bytes win, so such a file is a GIF. That is safe because the type is only
//! ever used to serve the bytes as that type: with `image/gif` and `nosniff` the browser hands
//! the bytes to its image decoder and nothing else; the HTML inside is never parsed as a page,
//! and no type that a browser would execute (`text/html`, `image/svg+xml`, XML) is ever chosen.

use super::Kind;

/// How many leading bytes the edge buffers before deciding (or the whole file if shorter).
pub const SNIFF_BYTES: usize = 512;

/// A file format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// WebP (`RIFF` … `WEBP`).
    Webp,
    /// GIF87a or GIF89a.
    Gif,
    /// AVIF (ISO-BMFF `ftyp` with brand `avif` or `avis`).
    Avif,
    /// MP4 video (ISO-BMFF `ftyp` with an MP4 brand).
    Mp4,
    /// WebM (EBML with DocType `webm`).
    Webm,
    /// MP3 (an ID3v2 tag or an MPEG-1/2/2.5 Layer III frame header).
    Mp3,
    /// Ogg (`OggS`).
    Ogg,
    /// WAV (`RIFF` … `WAVE`).
    Wav,
    /// MPEG-4 audio (ISO-BMFF `ftyp` with major brand `M4A ` or `M4B `).
    M4a,
    /// PDF (`%PDF-`).
    Pdf,
    /// Plain UTF-8 text that is not markup a browser could run.
    Text,
    /// ZIP (`PK\x03\x04`, or `PK\x05\x06` for an empty archive).
    Zip,
    /// Anything else, including HTML, SVG and XML.
    Unknown,
}

/// The verdict on a file's leading bytes: its format, its kind, and the `Content-Type` to serve
/// it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The format the magic bytes name.
    pub format: Format,
    /// How the app shows it.
    pub kind: Kind,
    /// The `Content-Type` to serve it with (always together with `nosniff`).
    pub mime: &'static str,
}

impl Sniffed {
    /// Safe to render inline in the app (raster images, audio, video); everything else is only
    /// ever served as a download.
    pub fn inline(&self) -> bool {
        matches!(self.kind, Kind::Image | Kind::Audio | Kind::Video)
    }

    fn of(format: Format) -> Sniffed {
        let (kind, mime) = match format {
            Format::Png => (Kind::Image, "image/png"),
            Format::Jpeg => (Kind::Image, "image/jpeg"),
            Format::Webp => (Kind::Image, "image/webp"),
            Format::Gif => (Kind::Image, "image/gif"),
            Format::Avif => (Kind::Image, "image/avif"),
            Format::Mp4 => (Kind::Video, "video/mp4"),
            Format::Webm => (Kind::Video, "video/webm"),
            Format::Mp3 => (Kind::Audio, "audio/mpeg"),
            Format::Ogg => (Kind::Audio, "audio/ogg"),
            Format::Wav => (Kind::Audio, "audio/wav"),
            Format::M4a => (Kind::Audio, "audio/mp4"),
            Format::Pdf => (Kind::Pdf, "application/pdf"),
            Format::Text => (Kind::Text, "text/plain; charset=utf-8"),
            Format::Zip => (Kind::Archive, "application/zip"),
            Format::Unknown => (Kind::File, "application/octet-stream"),
        };
        Sniffed { format, kind, mime }
    }
}

/// Decides what a file is from its first bytes. Only the first [`SNIFF_BYTES`] are looked at;
/// pass the whole file if it is shorter. Empty input is `application/octet-stream`.
pub fn sniff(head: &[u8]) -> Sniffed {
    let head = head.get(..SNIFF_BYTES).unwrap_or(head);
    Sniffed::of(format_of(head))
}

fn format_of(b: &[u8]) -> Format {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Format::Png
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Format::Jpeg
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Format::Gif
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        Format::Webp
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WAVE") {
        Format::Wav
    } else if b.get(4..8) == Some(b"ftyp") {
        iso_bmff(b)
    } else if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        if ebml_doc_type(b) == Some(b"webm") {
            Format::Webm
        } else {
            // Matroska (.mkv) and other EBML: not something every browser plays.
            Format::Unknown
        }
    } else if b.starts_with(b"OggS\0") {
        Format::Ogg
    } else if b.starts_with(b"%PDF-") {
        Format::Pdf
    } else if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if is_id3(b) || is_mp3_frames(b) {
        Format::Mp3
    } else if is_text(b) {
        Format::Text
    } else {
        Format::Unknown
    }
}

/// ISO base media (`ftyp` box first): AVIF, M4A, or MP4 video, by brand.
fn iso_bmff(b: &[u8]) -> Format {
    const AVIF: [&[u8; 4]; 2] = [b"avif", b"avis"];
    const AUDIO: [&[u8; 4]; 2] = [b"M4A ", b"M4B "];
    const VIDEO: [&[u8; 4]; 14] = [
        b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
        b"M4VH", b"M4VP", b"dash", b"mmp4",
    ];
    let Some(size) = b.get(0..4).and_then(be32) else {
        return Format::Unknown;
    };
    let Some(major) = b.get(8..12) else {
        return Format::Unknown;
    };
    // Box size 0 means "to the end of the file"; otherwise the brands end where the box does.
    // Compatible brands start after the 4-byte minor version.
    let end = if size == 0 {
        b.len()
    } else {
        (size as usize).min(b.len())
    };
    let compatible: Vec<&[u8]> = b.get(16..end).unwrap_or_default().chunks_exact(4).collect();
    let brand_in = |set: &[&[u8; 4]], with_compatible: bool| {
        set.iter().any(|brand| {
            major == brand.as_slice() || (with_compatible && compatible.contains(&brand.as_slice()))
        })
    };
    // AVIF first: an AVIF file often also lists `mif1`/`miaf` or an MP4 brand as compatible,
    // and it must be decoded as an image, not handed to a video player.
    if brand_in(&AVIF, true) {
        Format::Avif
    } else if brand_in(&AUDIO, false) {
        Format::M4a
    } else if brand_in(&VIDEO, true) {
        Format::Mp4
    } else {
        // QuickTime, HEIC, 3GP-only and the like: served as a download.
        Format::Unknown
    }
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// The DocType of an EBML header (`1A 45 DF A3`, size, then child elements), if it is inside
/// `b`.
fn ebml_doc_type(b: &[u8]) -> Option<&[u8]> {
    let (_, id_len) = vint(b, true)?;
    let (size, size_len) = vint(b.get(id_len..)?, false)?;
    let start = id_len + size_len;
    let end = usize::try_from(size)
        .ok()
        .and_then(|s| start.checked_add(s))
        .map_or(b.len(), |e| e.min(b.len()));
    let mut at = start;
    while at < end {
        let (id, id_len) = vint(b.get(at..end)?, true)?;
        let (len, len_len) = vint(b.get(at + id_len..end)?, false)?;
        let data = at + id_len + len_len;
        let data_end = data.checked_add(usize::try_from(len).ok()?)?;
        if id == 0x4282 {
            return b.get(data..data_end);
        }
        at = data_end;
    }
    None
}

/// An EBML variable-length integer: (value, length in bytes). IDs keep their length marker;
/// sizes drop it.
fn vint(b: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(..len)?;
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - len)) - 1)
    };
    for &byte in &bytes[1..] {
        value = (value << 8) | u64::from(byte);
    }
    Some((value, len))
}

/// An ID3v2 tag header: `ID3`, major version 2 to 4 (a control byte, so a text file that
/// starts with the letters "ID3" is not mistaken for one), revision, flags, and a 4-byte
/// sync-safe size.
fn is_id3(b: &[u8]) -> bool {
    match b.get(..10) {
        Some([b'I', b'D', b'3', major, minor, _flags, size @ ..]) => {
            (2..=4).contains(major) && *minor != 0xFF && size.iter().all(|s| *s < 0x80)
        }
        _ => false,
    }
}

/// A Layer III frame header at the start and, when the head is long enough to hold it, another
/// one where the first frame ends: a lone `FF Fx` pair is too common in arbitrary bytes to
/// trust by itself.
fn is_mp3_frames(b: &[u8]) -> bool {
    let Some(first) = mp3_frame_len(b) else {
        return false;
    };
    match b.get(first..) {
        Some(next) if next.len() >= 4 => mp3_frame_len(next).is_some(),
        _ => true,
    }
}

/// The length of the MPEG audio Layer III frame whose header starts `b`, if it is one.
fn mp3_frame_len(b: &[u8]) -> Option<usize> {
    const KBPS_V1: [u32; 16] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
    ];
    const KBPS_V2: [u32; 16] = [
        0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
    ];
    let h = b.get(..4)?;
    // 11 sync bits.
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0b11; // 00 = 2.5, 01 reserved, 10 = 2, 11 = 1
    let layer = (h[1] >> 1) & 0b11; // 01 = Layer III
    if version == 0b01 || layer != 0b01 {
        return None;
    }
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0b11);
    let padding = u32::from((h[2] >> 1) & 1);
    let (kbps, rates, samples_per_byte) = match version {
        0b11 => (KBPS_V1[bitrate_index], [44_100, 48_000, 32_000], 144),
        0b10 => (KBPS_V2[bitrate_index], [22_050, 24_000, 16_000], 72),
        _ => (KBPS_V2[bitrate_index], [11_025, 12_000, 8_000], 72),
    };
    // Index 0 is "free format" and 15 is invalid; neither is worth trusting from a sniff.
    let rate: u32 = *rates.get(rate_index)?;
    if kbps == 0 {
        return None;
    }
    usize::try_from(samples_per_byte * kbps * 1000 / rate + padding).ok()
}

/// Plain UTF-8 text with no binary control bytes, and not markup a browser could run.
fn is_text(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(b) {
        Ok(text) => text,
        // The head may be cut at SNIFF_BYTES in the middle of a multi-byte character: that
        // is still text if everything before the cut is valid.
        Err(e) if e.error_len().is_none() && b.len() >= SNIFF_BYTES => {
            match std::str::from_utf8(&b[..e.valid_up_to()]) {
                Ok(text) => text,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    // Tab, newline, form feed and carriage return are text; every other control character
    // (NUL, escape, DEL, C1) marks a binary file.
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\x0C' | '\r'));
    !binary && !is_markup(text)
}

/// HTML, SVG, XML and the like: text a browser would run if it were ever served as markup, so
/// it is never called text. Anything that opens with a tag, comment, doctype or processing
/// instruction counts, and so does a head that mentions a few tags that run script anywhere.
fn is_markup(text: &str) -> bool {
    const ANYWHERE: [&str; 8] = [
        "<script",
        "<html",
        "<svg",
        "<iframe",
        "<!doctype",
        "<?xml",
        "<body",
        "<object",
    ];
    let start = text.trim_start().as_bytes();
    let opens_with_tag = start.first() == Some(&b'<')
        && start
            .get(1)
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'!' | b'?' | b'/'));
    let lower = text.to_ascii_lowercase();
    opens_with_tag || ANYWHERE.iter().any(|tag| lower.contains(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_frame_length_follows_the_bitrate_table() {
        // MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding: 417 bytes.
        assert_eq!(mp3_frame_len(&[0xFF, 0xFB, 0x90, 0x00]), Some(417));
        // Reserved version bits are not a frame.
        assert_eq!(mp3_frame_len(&[0xFF, 0xEB, 0x90, 0x00]), None);
        // AAC ADTS (layer bits 00) is not MP3.
        assert_eq!(mp3_frame_len(&[0xFF, 0xF1, 0x50, 0x80]), None);
    }

    #[test]
    fn ebml_sizes_drop_their_marker_and_ids_keep_it() {
        assert_eq!(vint(&[0x84], false), Some((4, 1)));
        assert_eq!(vint(&[0x42, 0x82], true), Some((0x4282, 2)));
        assert_eq!(vint(&[0x00], false), None);
    }
}
