//! Attachments and link previews (issue: attachments & link previews): what an upload is by
//! its bytes, how its metadata is blanked as it streams, how its name is shown and sent, which
//! URLs the edge may fetch for a preview, what a page says about itself, and which link in a
//! message gets the preview.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

// Every test sits under `media::`, so `cargo test media` selects them all.
mod media {
    /// Which link in a message gets the preview.
    mod link {
        use crate::common::{any_string, config, edge_string};
        use proptest::prelude::*;
        use shared::media::link::{first_link, LINK_MAX_BYTES};

        #[test]
        fn a_bare_url_is_the_link() {
            assert_eq!(
                first_link("look at https://example.com/a?b=c#d now"),
                Some("https://example.com/a?b=c#d")
            );
        }

        #[test]
        fn a_markdown_link_gives_its_destination_not_its_text() {
            assert_eq!(
                first_link("see [https://shown.example](https://real.example/x \"title\") ok"),
                Some("https://real.example/x")
            );
            assert_eq!(
                first_link("[docs](<https://example.com/a b>)"),
                Some("https://example.com/a b")
            );
        }

        #[test]
        fn an_image_counts_as_a_link_because_the_app_shows_images_as_links() {
            assert_eq!(
                first_link("![cat](https://example.com/cat.png)"),
                Some("https://example.com/cat.png")
            );
        }

        #[test]
        fn an_angle_bracket_autolink_is_the_link() {
            assert_eq!(
                first_link("ping <https://example.com/x>."),
                Some("https://example.com/x")
            );
        }

        #[test]
        fn a_url_inside_a_code_span_is_ignored() {
            assert_eq!(
                first_link("run `curl https://internal.example` then https://b.example"),
                Some("https://b.example")
            );
            assert_eq!(first_link("``a ` https://x.example ``"), None);
        }

        #[test]
        fn an_unclosed_backtick_is_literal_and_does_not_hide_the_link() {
            assert_eq!(
                first_link("a ` b https://x.example"),
                Some("https://x.example")
            );
        }

        #[test]
        fn a_url_inside_a_fenced_block_is_ignored() {
            let message = "```sh\ncurl https://inside.example\n```\nthen https://after.example";
            assert_eq!(first_link(message), Some("https://after.example"));
            let tilde = "~~~\nhttps://inside.example\n~~~~\n";
            assert_eq!(first_link(tilde), None);
        }

        #[test]
        fn a_link_before_a_fence_comes_first() {
            let message = "https://before.example\n```\nhttps://inside.example\n```";
            assert_eq!(first_link(message), Some("https://before.example"));
        }

        #[test]
        fn an_unclosed_fence_hides_everything_after_it() {
            assert_eq!(first_link("```\nhttps://x.example\nmore"), None);
        }

        #[test]
        fn a_shorter_fence_does_not_close_a_longer_one() {
            let message = "````\n```\nhttps://inside.example\n````\nhttps://out.example";
            assert_eq!(first_link(message), Some("https://out.example"));
        }

        #[test]
        fn mailto_and_other_schemes_are_not_previewed() {
            assert_eq!(first_link("[mail](mailto:a@b.example)"), None);
            assert_eq!(first_link("<mailto:a@b.example> ftp://x.example"), None);
            assert_eq!(
                first_link("[https://text.example](mailto:a@b.example) then https://next.example"),
                Some("https://next.example"),
                "the text of a mailto link is that link, not a web link"
            );
        }

        #[test]
        fn trailing_punctuation_is_not_part_of_a_bare_url() {
            assert_eq!(
                first_link("Go to https://example.com/a."),
                Some("https://example.com/a")
            );
            assert_eq!(
                first_link("really? https://example.com/?q=1!?"),
                Some("https://example.com/?q=1")
            );
            assert_eq!(
                first_link("(https://example.com/x)"),
                Some("https://example.com/x")
            );
        }

        #[test]
        fn a_balanced_parenthesis_stays_in_the_url() {
            assert_eq!(
                first_link("(see https://x.y/a_(b))"),
                Some("https://x.y/a_(b)")
            );
        }

        #[test]
        fn a_scheme_glued_to_a_word_is_not_a_url() {
            assert_eq!(first_link("xhttps://a.example"), None);
            assert_eq!(first_link("https:// nothing"), None);
            assert_eq!(first_link("https:///path-only"), None);
        }

        #[test]
        fn an_escaped_bracket_opens_no_link() {
            // Not a link to mailto: the bracket is literal, so the bare URL inside is the link.
            assert_eq!(
                first_link(r"\[see https://a.example \](mailto:x@y.example)"),
                Some("https://a.example")
            );
        }

        #[test]
        fn an_overlong_url_is_skipped_not_cut() {
            let long = format!("https://example.com/{}", "a".repeat(LINK_MAX_BYTES));
            assert_eq!(first_link(&long), None);
            let message = format!("{long} https://short.example");
            assert_eq!(first_link(&message), Some("https://short.example"));
        }

        #[test]
        fn no_link_is_none() {
            assert_eq!(first_link(""), None);
            assert_eq!(
                first_link("just words, www.example.com and a@b.example"),
                None
            );
        }

        proptest! {
            #![proptest_config(config(1000))]

            #[test]
            fn first_link_never_panics_and_returns_part_of_the_message(
                text in prop_oneof![any_string(), edge_string(), "[\\[\\]()<>`~ \nhtps:/.a-z!?]{0,60}"]
            ) {
                if let Some(link) = first_link(&text) {
                    prop_assert!(text.contains(link));
                    prop_assert!(link.len() <= LINK_MAX_BYTES);
                    prop_assert!(link.to_ascii_lowercase().starts_with("http"));
                }
            }
        }
    }

    #[cfg(feature = "server")]
    mod sniff {
        use shared::media::sniff::{sniff, Format, SNIFF_BYTES};
        use shared::media::Kind;

        fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
            let size = 16 + 4 * compatible.len();
            let mut b = (size as u32).to_be_bytes().to_vec();
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(major);
            b.extend_from_slice(&[0, 0, 0, 0]);
            for brand in compatible {
                b.extend_from_slice(*brand);
            }
            b.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']);
            b
        }

        fn ebml(doc_type: &[u8]) -> Vec<u8> {
            let mut children = vec![0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01];
            children.extend_from_slice(&[0x42, 0x82, 0x80 | doc_type.len() as u8]);
            children.extend_from_slice(doc_type);
            children.extend_from_slice(&[0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02]);
            let mut b = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80 | children.len() as u8];
            b.extend_from_slice(&children);
            // The Segment element follows the header.
            b.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF]);
            b
        }

        fn is(head: &[u8], format: Format, kind: Kind, mime: &str) {
            let found = sniff(head);
            assert_eq!(
                (found.format, found.kind, found.mime),
                (format, kind, mime),
                "{:?}",
                String::from_utf8_lossy(&head[..head.len().min(40)])
            );
        }

        fn octet_stream(head: &[u8]) {
            is(
                head,
                Format::Unknown,
                Kind::File,
                "application/octet-stream",
            );
        }

        #[test]
        fn each_image_format_is_known_by_its_magic_bytes() {
            let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
            is(png, Format::Png, Kind::Image, "image/png");
            is(
                &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0],
                Format::Jpeg,
                Kind::Image,
                "image/jpeg",
            );
            is(
                b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0",
                Format::Webp,
                Kind::Image,
                "image/webp",
            );
            is(
                b"GIF89a\x01\0\x01\0\x80\0\0",
                Format::Gif,
                Kind::Image,
                "image/gif",
            );
            is(
                b"GIF87a\x01\0\x01\0\0\0\0",
                Format::Gif,
                Kind::Image,
                "image/gif",
            );
            let avif = ftyp(b"avif", &[b"avif", b"mif1", b"miaf"]);
            is(&avif, Format::Avif, Kind::Image, "image/avif");
        }

        #[test]
        fn avif_is_known_by_a_compatible_brand_and_wins_over_mp4_brands() {
            let avif = ftyp(b"mif1", &[b"mif1", b"avif", b"isom"]);
            is(&avif, Format::Avif, Kind::Image, "image/avif");
            let sequence = ftyp(b"avis", &[b"avis", b"msf1", b"iso8"]);
            is(&sequence, Format::Avif, Kind::Image, "image/avif");
        }

        #[test]
        fn each_audio_and_video_format_is_known_by_its_magic_bytes() {
            let mp4 = ftyp(b"isom", &[b"isom", b"iso2", b"avc1", b"mp41"]);
            is(&mp4, Format::Mp4, Kind::Video, "video/mp4");
            is(&ftyp(b"mp42", &[]), Format::Mp4, Kind::Video, "video/mp4");
            let m4a = ftyp(b"M4A ", &[b"M4A ", b"mp42", b"isom"]);
            is(&m4a, Format::M4a, Kind::Audio, "audio/mp4");
            is(&ebml(b"webm"), Format::Webm, Kind::Video, "video/webm");
            is(
                b"ID3\x04\0\0\0\0\0\x0aTIT2",
                Format::Mp3,
                Kind::Audio,
                "audio/mpeg",
            );
            // Two MPEG-1 Layer III frames at 128 kbps, 44.1 kHz: 417 bytes each.
            let mut frames = vec![0xFF, 0xFB, 0x90, 0x00];
            frames.resize(417, 0);
            frames.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
            is(&frames, Format::Mp3, Kind::Audio, "audio/mpeg");
            is(b"OggS\0\x02\0\0\0\0", Format::Ogg, Kind::Audio, "audio/ogg");
            is(
                b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0",
                Format::Wav,
                Kind::Audio,
                "audio/wav",
            );
        }

        #[test]
        fn documents_and_archives_are_known_by_their_magic_bytes() {
            is(
                b"%PDF-1.7\n%\xe2\xe3",
                Format::Pdf,
                Kind::Pdf,
                "application/pdf",
            );
            is(
                b"PK\x03\x04\x14\0\0\0\x08\0",
                Format::Zip,
                Kind::Archive,
                "application/zip",
            );
            is(
                b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                Format::Zip,
                Kind::Archive,
                "application/zip",
            );
        }

        #[test]
        fn plain_utf8_is_text() {
            let text = "hello, wörld\r\n\tindented\n";
            is(
                text.as_bytes(),
                Format::Text,
                Kind::Text,
                "text/plain; charset=utf-8",
            );
            is(
                "\u{FEFF}a < b and c > d".as_bytes(),
                Format::Text,
                Kind::Text,
                "text/plain; charset=utf-8",
            );
        }

        #[test]
        fn text_cut_inside_a_multibyte_character_at_the_sniff_limit_is_still_text() {
            let mut head = "a".repeat(SNIFF_BYTES - 1).into_bytes();
            head.extend_from_slice("é and more".as_bytes());
            assert_eq!(sniff(&head).format, Format::Text);
            // The same cut in a whole, short file is not valid UTF-8.
            octet_stream(b"abc\xC3");
        }

        #[test]
        fn binary_bytes_and_control_characters_are_not_text() {
            octet_stream(b"abc\0def");
            octet_stream(b"colour \x1b[31mred");
            octet_stream(b"\xff\xfe\x00h\x00i");
            octet_stream(b"abc\x7f");
        }

        #[test]
        fn text_that_starts_with_the_letters_id3_is_not_mp3() {
            assert_eq!(sniff(b"ID3 tags explained").format, Format::Text);
        }

        #[test]
        fn html_is_octet_stream_whatever_name_it_was_uploaded_with() {
            // There is no name parameter at all: "evil.png" cannot make this an image.
            octet_stream(b"<!DOCTYPE html><html><body>hi</body></html>");
            octet_stream(b"\xEF\xBB\xBF \n  <HtMl><script>alert(1)</script>");
            octet_stream(b"<head><meta http-equiv=refresh content=0>");
            octet_stream(b"<iframe src=x>");
            octet_stream(b"<!-- comment --> then anything");
        }

        #[test]
        fn svg_and_xml_are_octet_stream() {
            octet_stream(b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>");
            octet_stream(b"<?xml version=\"1.0\"?><svg></svg>");
            octet_stream(b"<?xml version=\"1.0\"?><note>x</note>");
        }

        #[test]
        fn text_with_a_script_tag_anywhere_in_its_head_is_octet_stream() {
            octet_stream(b"Dear reader,\nthis is harmless <ScRiPt>alert(1)</script>");
            octet_stream(b"notes: <svg onload=alert(1)>");
        }

        #[test]
        fn a_gif_with_html_after_its_header_is_a_gif() {
            // A GIFAR-style polyglot is served as image/gif with nosniff, so a browser only ever
            // decodes it as an image; the HTML is never parsed as a page.
            let mut polyglot = b"GIF89a\x01\0\x01\0\x80\0\0".to_vec();
            polyglot.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
            is(&polyglot, Format::Gif, Kind::Image, "image/gif");
        }

        #[test]
        fn empty_input_is_octet_stream() {
            octet_stream(b"");
        }

        #[test]
        fn unplayable_containers_are_octet_stream() {
            octet_stream(&ebml(b"matroska"));
            octet_stream(&ftyp(b"qt  ", &[b"qt  "]));
            octet_stream(&ftyp(b"heic", &[b"mif1", b"heic"]));
            // A lone sync word followed by something that is not a second frame.
            let mut not_frames = vec![0xFF, 0xFB, 0x90, 0x00];
            not_frames.resize(417, 0);
            not_frames.extend_from_slice(b"nope");
            octet_stream(&not_frames);
        }

        #[test]
        fn only_images_audio_and_video_are_inline() {
            let inline = |b: &[u8]| sniff(b).inline();
            assert!(inline(b"GIF89a\x01\0\x01\0"));
            assert!(inline(b"OggS\0\x02"));
            assert!(inline(&ftyp(b"isom", &[])));
            assert!(!inline(b"%PDF-1.4"));
            assert!(!inline(b"plain text"));
            assert!(!inline(b"PK\x03\x04"));
            assert!(!inline(b"<svg/>"));
            assert!(!inline(b""));
        }

        #[test]
        fn only_the_first_sniff_bytes_are_looked_at() {
            let mut head = "a".repeat(SNIFF_BYTES).into_bytes();
            head.extend_from_slice(b"\0<script>");
            assert_eq!(sniff(&head).format, Format::Text);
        }
    }

    #[cfg(feature = "server")]
    mod scrub {
        use crate::common::config;
        use proptest::prelude::*;
        use shared::media::scrub::{Report, ScrubError, Scrubber, PNG_BLANK, WEBP_BLANK};
        use shared::media::sniff::{sniff, Format};

        fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
            let mut s = vec![0xFF, marker];
            s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(payload);
            s
        }

        const JFIF: &[u8] = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
        const ICC: &[u8] = b"ICC_PROFILE\0\x01\x01 colour profile bytes";
        const ENTROPY: &[u8] = &[
            0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78, 0x9A, 0xFF, 0x00, 0xBC, 0xFF, 0xD1,
            0xDE,
        ];

        /// A JPEG with Exif (holding a GPS IFD), IPTC and a comment, with fill bytes and a
        /// standalone marker among its headers.
        fn jpeg() -> Vec<u8> {
            let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
            exif.extend_from_slice(b"\x88\x25 GPS IFD: GPSLatitude 48/1 51/1 2904/100 N");
            exif.extend_from_slice(b" GPSLongitude 2/1 17/1 4020/100 E");
            let mut b = vec![0xFF, 0xD8];
            b.extend(segment(0xE0, JFIF));
            b.extend(segment(0xE1, &exif));
            b.extend(segment(0xE2, ICC));
            b.extend(segment(
                0xED,
                b"Photoshop 3.0\08BIM\x04\x04 IPTC city: Paris GPS",
            ));
            b.extend([0xFF, 0xFF, 0xFF]); // fill bytes before the next marker
            b.extend(segment(0xFE, b"shot at GPS 48.8584, 2.2945"));
            b.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01"));
            b.extend(segment(0xDB, &[0u8; 65]));
            b.extend([0xFF, 0x01]); // TEM: a marker with no length
            b.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
            b.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
            b.extend_from_slice(ENTROPY);
            b.extend([0xFF, 0xD9]);
            b
        }

        /// The segments before the first scan: (marker, payload). Panics if they do not walk.
        fn jpeg_segments(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
            assert_eq!(&b[..2], &[0xFF, 0xD8]);
            let mut at = 2;
            let mut segments = Vec::new();
            loop {
                assert_eq!(b[at], 0xFF, "a marker at {at}");
                let marker = b[at + 1];
                if marker == 0xFF {
                    at += 1;
                    continue;
                }
                if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
                    segments.push((marker, Vec::new()));
                    at += 2;
                    continue;
                }
                let len = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
                segments.push((marker, b[at + 4..at + 2 + len].to_vec()));
                at += 2 + len;
                if marker == 0xDA {
                    return segments;
                }
            }
        }

        fn contains(hay: &[u8], needle: &[u8]) -> bool {
            hay.windows(needle.len()).any(|w| w == needle)
        }

        /// Feeds `input` in chunks of `size` bytes (all of it at once for 0).
        fn scrub_in_chunks(format: Format, input: &[u8], size: usize) -> (Vec<u8>, Report) {
            let mut scrubber = Scrubber::new(format);
            let mut out = Vec::new();
            let size = if size == 0 { input.len().max(1) } else { size };
            for chunk in input.chunks(size) {
                out.extend(scrubber.push(chunk).unwrap());
            }
            let (tail, report) = scrubber.finish().unwrap();
            out.extend(tail);
            (out, report)
        }

        fn scrub_at(format: Format, input: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ScrubError> {
            let mut scrubber = Scrubber::new(format);
            let mut out = Vec::new();
            let mut from = 0;
            for &cut in cuts.iter().chain([input.len()].iter()) {
                let cut = cut.clamp(from, input.len());
                out.extend(scrubber.push(&input[from..cut])?);
                from = cut;
            }
            out.extend(scrubber.finish()?.0);
            Ok(out)
        }

        #[test]
        fn jpeg_metadata_is_blanked_in_place_whatever_the_chunk_sizes() {
            let input = jpeg();
            assert_eq!(sniff(&input).format, Format::Jpeg);
            let (whole, report) = scrub_in_chunks(Format::Jpeg, &input, 0);
            assert_eq!(report.neutralised, 3, "APP1, APP13 and COM");
            for size in 1..=17 {
                let (out, report) = scrub_in_chunks(Format::Jpeg, &input, size);
                assert_eq!(out, whole, "chunks of {size}");
                assert_eq!(report.neutralised, 3);
            }
            assert_eq!(whole.len(), input.len());
            assert!(!contains(&whole, b"Exif"));
            assert!(!contains(&whole, b"GPS"));
            assert!(!contains(&whole, b"Photoshop"));
            assert!(!contains(&whole, b"Paris"));
            assert!(whole.starts_with(&[0xFF, 0xD8]));
            let before = jpeg_segments(&input);
            let after = jpeg_segments(&whole);
            assert_eq!(before.len(), after.len());
            for ((m_in, p_in), (m_out, p_out)) in before.iter().zip(&after) {
                assert_eq!(p_in.len(), p_out.len(), "segment lengths are kept");
                match m_in {
                    0xE1 | 0xED | 0xFE => {
                        assert_eq!(*m_out, 0xFE, "metadata becomes a comment");
                        assert!(p_out.iter().all(|&b| b == 0), "with a zero payload");
                    }
                    _ => assert_eq!((m_in, p_in), (m_out, p_out), "kept as it was"),
                }
            }
            assert!(contains(&whole, &segment(0xE0, JFIF)), "APP0 unchanged");
            assert!(contains(&whole, &segment(0xE2, ICC)), "APP2 unchanged");
            let scan = input.len() - ENTROPY.len() - 2;
            assert_eq!(
                &whole[scan..],
                &input[scan..],
                "entropy-coded data unchanged"
            );
        }

        #[test]
        fn every_metadata_app_segment_is_blanked_and_the_colour_ones_are_kept() {
            for marker in 0xE0..=0xEFu8 {
                let mut input = vec![0xFF, 0xD8];
                input.extend(segment(marker, b"secret GPS"));
                input.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
                let (out, report) = scrub_in_chunks(Format::Jpeg, &input, 0);
                let kept = matches!(marker, 0xE0 | 0xE2 | 0xEE);
                assert_eq!(contains(&out, b"secret GPS"), kept, "APP{}", marker - 0xE0);
                assert_eq!(report.neutralised, u32::from(!kept));
            }
        }

        #[test]
        fn a_truncated_jpeg_header_is_an_error() {
            let input = jpeg();
            // Cut inside the Exif segment.
            let err = scrub_at(Format::Jpeg, &input[..30], &[]).unwrap_err();
            assert_eq!(err, ScrubError::Truncated);
            assert_eq!(err.code(), "truncated_image");
            // Cut inside a marker's length.
            assert!(scrub_at(Format::Jpeg, &input[..23], &[7]).is_err());
            assert!(scrub_at(Format::Jpeg, &[0xFF], &[]).is_err());
        }

        #[test]
        fn a_jpeg_segment_length_below_two_is_invalid() {
            let input = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01, 0x00, 0x00];
            let err = scrub_at(Format::Jpeg, &input, &[]).unwrap_err();
            assert_eq!(err.code(), "invalid_image");
            assert!(!err.to_string().is_empty());
        }

        #[test]
        fn bytes_that_are_not_a_marker_before_the_scan_are_invalid_and_stay_invalid() {
            let mut scrubber = Scrubber::new(Format::Jpeg);
            let err = scrubber.push(&[0xFF, 0xD8, 0x12, 0x34]).unwrap_err();
            assert_eq!(err.code(), "invalid_image");
            assert_eq!(scrubber.push(&[0xFF, 0xD9]).unwrap_err(), err);
            assert_eq!(scrubber.finish().unwrap_err(), err);
            assert!(scrub_at(Format::Jpeg, b"GIF89a", &[]).is_err());
        }

        /// CRC-32 bit by bit: a second implementation to check the scrubber's table-driven one.
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }

        fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            let crc = crc32(&c[4..]);
            c.extend_from_slice(&crc.to_be_bytes());
            c
        }

        const IHDR: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0];
        const IDAT: &[u8] = b"\x78\x9c\x63\x60\x00\x00\x00\x02\x00\x01";

        fn png() -> Vec<u8> {
            let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
            b.extend(chunk(b"IHDR", IHDR));
            b.extend(chunk(b"eXIf", b"MM\0*\0\0\0\x08 GPSLatitude 48.8584 N"));
            b.extend(chunk(b"tEXt", b"Comment\0taken at GPS 48.8584, 2.2945"));
            b.extend(chunk(b"iCCP", b"sRGB\0\0colour"));
            b.extend(chunk(b"zTXt", b"Raw profile\0\0x\x9c GPS"));
            b.extend(chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:GPS/>"));
            b.extend(chunk(b"tIME", &[0x07, 0xE8, 1, 2, 3, 4, 5]));
            b.extend(chunk(b"IDAT", IDAT));
            b.extend(chunk(b"IEND", &[]));
            b
        }

        /// The chunks in order: (type, data). Panics unless each CRC is right and IEND ends it.
        fn png_chunks(b: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
            let mut at = 8;
            let mut chunks = Vec::new();
            while at < b.len() {
                let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
                let kind: [u8; 4] = b[at + 4..at + 8].try_into().unwrap();
                let data = b[at + 8..at + 8 + len].to_vec();
                let crc = u32::from_be_bytes(b[at + 8 + len..at + 12 + len].try_into().unwrap());
                assert_eq!(crc, crc32(&b[at + 4..at + 8 + len]), "CRC of {kind:?}");
                chunks.push((kind, data));
                at += 12 + len;
            }
            assert_eq!(&chunks[0].0, b"IHDR");
            assert_eq!(&chunks.last().unwrap().0, b"IEND");
            chunks
        }

        #[test]
        fn png_text_and_exif_chunks_are_blanked_with_valid_crcs_whatever_the_chunk_sizes() {
            let input = png();
            assert_eq!(sniff(&input).format, Format::Png);
            let (whole, report) = scrub_in_chunks(Format::Png, &input, 0);
            assert_eq!(report.neutralised, 5);
            for size in 1..=17 {
                assert_eq!(
                    scrub_in_chunks(Format::Png, &input, size).0,
                    whole,
                    "chunks of {size}"
                );
            }
            assert_eq!(whole.len(), input.len());
            assert!(!contains(&whole, b"GPS"));
            assert!(!contains(&whole, b"tEXt") && !contains(&whole, b"eXIf"));
            let before = png_chunks(&input);
            let after = png_chunks(&whole);
            let kinds: Vec<&[u8; 4]> = after.iter().map(|(k, _)| k).collect();
            assert_eq!(
                kinds,
                [
                    b"IHDR", &PNG_BLANK, &PNG_BLANK, b"iCCP", &PNG_BLANK, &PNG_BLANK, &PNG_BLANK,
                    b"IDAT", b"IEND"
                ]
            );
            for ((k_in, d_in), (k_out, d_out)) in before.iter().zip(&after) {
                assert_eq!(d_in.len(), d_out.len());
                if k_out == &PNG_BLANK {
                    assert!(d_out.iter().all(|&b| b == 0));
                } else {
                    assert_eq!((k_in, d_in), (k_out, d_out));
                }
            }
            // The blank type is ancillary (lowercase first letter), so decoders skip it.
            assert!(PNG_BLANK[0].is_ascii_lowercase() && PNG_BLANK[2].is_ascii_uppercase());
        }

        #[test]
        fn nothing_after_png_iend_is_parsed() {
            let mut input = png();
            input.extend_from_slice(b"\0\0\0\x04tEXtGPS!trailing");
            let (out, _) = scrub_in_chunks(Format::Png, &input, 3);
            assert!(out.ends_with(b"\0\0\0\x04tEXtGPS!trailing"));
        }

        #[test]
        fn a_png_cut_before_iend_or_with_a_broken_chunk_is_an_error() {
            let input = png();
            let cut = input.len() - 12;
            assert_eq!(
                scrub_at(Format::Png, &input[..cut], &[]).unwrap_err(),
                ScrubError::Truncated
            );
            let mut broken = input[..33].to_vec();
            broken.extend_from_slice(b"\0\0\0\x01\0\0\0\0");
            assert_eq!(
                scrub_at(Format::Png, &broken, &[]).unwrap_err().code(),
                "invalid_image"
            );
        }

        fn riff_chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
            let mut c = fourcc.to_vec();
            c.extend_from_slice(&(data.len() as u32).to_le_bytes());
            c.extend_from_slice(data);
            if data.len() % 2 == 1 {
                c.push(0);
            }
            c
        }

        const VP8L: &[u8] = b"\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";

        fn webp() -> Vec<u8> {
            // Flags: alpha (0x10) + EXIF (0x08) + XMP (0x04); canvas 1 x 1.
            let vp8x = [0x1C, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let mut body = b"WEBP".to_vec();
            body.extend(riff_chunk(b"VP8X", &vp8x));
            body.extend(riff_chunk(b"VP8L", VP8L));
            body.extend(riff_chunk(
                b"EXIF",
                b"Exif\0\0MM\0*\0\0\0\x08 GPSLatitude 48 N",
            ));
            body.extend(riff_chunk(
                b"XMP ",
                b"<x:xmpmeta><exif:GPSLatitude/></x:xmpmeta>",
            ));
            let mut b = b"RIFF".to_vec();
            b.extend_from_slice(&(body.len() as u32).to_le_bytes());
            b.extend(body);
            b
        }

        /// The chunks after the RIFF header: (FourCC, data). Panics if they do not walk.
        fn webp_chunks(b: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
            assert_eq!(&b[..4], b"RIFF");
            assert_eq!(&b[8..12], b"WEBP");
            let end = 8 + u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
            assert_eq!(end, b.len());
            let mut at = 12;
            let mut chunks = Vec::new();
            while at < end {
                let fourcc: [u8; 4] = b[at..at + 4].try_into().unwrap();
                let size = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
                chunks.push((fourcc, b[at + 8..at + 8 + size].to_vec()));
                at += 8 + size + size % 2;
            }
            assert_eq!(at, end);
            chunks
        }

        #[test]
        fn webp_exif_and_xmp_are_blanked_and_their_flags_cleared_whatever_the_chunk_sizes() {
            let input = webp();
            assert_eq!(sniff(&input).format, Format::Webp);
            let (whole, report) = scrub_in_chunks(Format::Webp, &input, 0);
            assert_eq!(report.neutralised, 2);
            for size in 1..=17 {
                assert_eq!(
                    scrub_in_chunks(Format::Webp, &input, size).0,
                    whole,
                    "chunks of {size}"
                );
            }
            assert_eq!(whole.len(), input.len());
            assert!(!contains(&whole, b"Exif") && !contains(&whole, b"GPS"));
            let after = webp_chunks(&whole);
            let fourccs: Vec<&[u8; 4]> = after.iter().map(|(f, _)| f).collect();
            assert_eq!(fourccs, [b"VP8X", b"VP8L", &WEBP_BLANK, &WEBP_BLANK]);
            assert_eq!(
                after[0].1[0], 0x10,
                "EXIF and XMP flags cleared, alpha kept"
            );
            assert_eq!(after[0].1[1..], webp_chunks(&input)[0].1[1..]);
            assert_eq!(after[1].1, VP8L, "image data unchanged");
            assert!(after[2..].iter().all(|(_, d)| d.iter().all(|&b| b == 0)));
        }

        #[test]
        fn a_webp_cut_short_or_with_a_chunk_past_its_end_is_an_error() {
            let input = webp();
            assert_eq!(
                scrub_at(Format::Webp, &input[..input.len() - 5], &[]).unwrap_err(),
                ScrubError::Truncated
            );
            let mut lying = input.clone();
            lying[4..8].copy_from_slice(&30u32.to_le_bytes());
            assert_eq!(
                scrub_at(Format::Webp, &lying, &[]).unwrap_err().code(),
                "invalid_image"
            );
        }

        #[test]
        fn formats_it_does_not_rewrite_pass_through_untouched() {
            let gif = b"GIF89a\x01\0\x01\0\x80\0\0 comment GPS".to_vec();
            for format in [Format::Gif, Format::Avif, Format::Pdf, Format::Unknown] {
                let (out, report) = scrub_in_chunks(format, &gif, 5);
                assert_eq!(out, gif);
                assert_eq!(report.neutralised, 0);
            }
            assert!(Scrubber::new(Format::Gif).finish().is_ok());
        }

        proptest! {
            #![proptest_config(config(300))]

            #[test]
            fn random_chunk_splits_give_the_same_output_as_one_piece(
                which in 0..3usize,
                cuts in proptest::collection::vec(0..400usize, 0..12),
            ) {
                let (format, input) = match which {
                    0 => (Format::Jpeg, jpeg()),
                    1 => (Format::Png, png()),
                    _ => (Format::Webp, webp()),
                };
                let mut cuts = cuts;
                cuts.sort_unstable();
                let whole = scrub_at(format, &input, &[]).unwrap();
                prop_assert_eq!(scrub_at(format, &input, &cuts).unwrap(), whole);
            }

            #[test]
            fn arbitrary_bytes_never_panic_and_keep_their_length_when_accepted(
                which in 0..3usize,
                tail in proptest::collection::vec(any::<u8>(), 0..300),
                keep in 0..200usize,
                cuts in proptest::collection::vec(0..500usize, 0..6),
            ) {
                let (format, fixture) = match which {
                    0 => (Format::Jpeg, jpeg()),
                    1 => (Format::Png, png()),
                    _ => (Format::Webp, webp()),
                };
                // A real header, then garbage: the walk goes some way before it meets nonsense.
                let mut input = fixture[..keep.min(fixture.len())].to_vec();
                input.extend(tail);
                let mut cuts = cuts;
                cuts.sort_unstable();
                if let Ok(out) = scrub_at(format, &input, &cuts) {
                    prop_assert_eq!(out.len(), input.len());
                }
            }
        }
    }

    #[cfg(feature = "server")]
    mod name {
        use crate::common::{any_string, config, edge_string};
        use proptest::prelude::*;
        use shared::media::name::{content_disposition, sanitize_file_name, NAME_MAX_CHARS};

        #[test]
        fn only_the_last_path_component_is_kept() {
            assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
            assert_eq!(sanitize_file_name("C:\\x\\evil.exe"), "evil.exe");
            assert_eq!(sanitize_file_name("photos/2024/"), "2024");
            assert_eq!(sanitize_file_name(".."), "file");
            assert_eq!(sanitize_file_name("/"), "file");
        }

        #[test]
        fn bidi_overrides_cannot_disguise_an_extension() {
            assert_eq!(sanitize_file_name("a\u{202E}gnp.exe"), "agnp.exe");
            assert_eq!(sanitize_file_name("x\u{2066}y\u{2069}.txt"), "xy.txt");
        }

        #[test]
        fn quotes_and_header_punctuation_cannot_inject_a_parameter() {
            let name = sanitize_file_name("\"; filename=x.html");
            assert!(!name.contains('"') && !name.contains(';'), "{name}");
            assert_eq!(
            content_disposition("\"; filename=x.html", false),
            "attachment; filename=\"__ filename=x.html\"; filename*=UTF-8''__%20filename%3Dx.html"
        );
            assert_eq!(sanitize_file_name("a<b>c:d*e?f|g.txt"), "a_b_c_d_e_f_g.txt");
        }

        #[test]
        fn crlf_cannot_split_the_header() {
            let header = content_disposition("evil.txt\r\nSet-Cookie: a=b", true);
            assert!(!header.contains('\r') && !header.contains('\n'), "{header}");
            assert_eq!(sanitize_file_name("a\r\n\tb\0c.txt"), "a bc.txt");
        }

        #[test]
        fn dots_and_spaces_are_trimmed_and_whitespace_collapsed() {
            assert_eq!(
                sanitize_file_name("  .. my   report .pdf. . "),
                "my report .pdf"
            );
            assert_eq!(sanitize_file_name("   "), "file");
            assert_eq!(sanitize_file_name(""), "file");
        }

        #[test]
        fn a_long_name_is_cut_keeping_its_extension() {
            let name = sanitize_file_name(&format!("{}.jpeg", "x".repeat(300)));
            assert_eq!(name.chars().count(), NAME_MAX_CHARS);
            assert!(name.ends_with("x.jpeg"));
            let unicode = sanitize_file_name(&format!("{}.txt", "é".repeat(300)));
            assert_eq!(unicode.chars().count(), NAME_MAX_CHARS);
            assert!(unicode.ends_with(".txt"));
            // A "extension" that is itself huge is not kept whole.
            let odd = sanitize_file_name(&format!("a.{}", "b".repeat(300)));
            assert_eq!(odd.chars().count(), NAME_MAX_CHARS);
            assert!(odd.starts_with("a.b"));
        }

        #[test]
        fn windows_device_names_are_prefixed() {
            assert_eq!(sanitize_file_name("CON.txt"), "_CON.txt");
            assert_eq!(sanitize_file_name("nul"), "_nul");
            assert_eq!(sanitize_file_name("com1.tar.gz"), "_com1.tar.gz");
            assert_eq!(sanitize_file_name("Lpt9 .log"), "_Lpt9 .log");
            assert_eq!(sanitize_file_name("CONSOLE.txt"), "CONSOLE.txt");
            assert_eq!(sanitize_file_name("com10"), "com10");
        }

        #[test]
        fn the_header_has_an_ascii_fallback_and_a_utf8_name() {
            assert_eq!(
                content_disposition("report.pdf", false),
                "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
            );
            assert_eq!(
            content_disposition("Grüße 100%.png", true),
            "inline; filename=\"Gr__e 100_.png\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20100%25.png"
        );
        }

        fn percent_decode(s: &str) -> String {
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }

        fn utf8_name(header: &str) -> String {
            percent_decode(header.split("filename*=UTF-8''").nth(1).unwrap())
        }

        #[test]
        fn unicode_names_round_trip_through_the_utf8_name() {
            for name in [
                "日本語のファイル.txt",
                "emoji 🎉 party.gif",
                "Ωmega's (1).pdf",
            ] {
                assert_eq!(utf8_name(&content_disposition(name, false)), name);
            }
        }

        proptest! {
            #![proptest_config(config(1000))]

            #[test]
            fn any_name_becomes_a_safe_name_and_a_second_pass_changes_nothing(
                raw in prop_oneof![any_string(), edge_string(), "[a-zA-Z0-9 ./\\\\:;\"<>|?*\r\n]{0,300}"]
            ) {
                let name = sanitize_file_name(&raw);
                prop_assert!(!name.is_empty());
                prop_assert!(name.chars().count() <= NAME_MAX_CHARS);
                let unsafe_char = |c: char| {
                    c.is_control()
                        || matches!(c, '/' | '\\' | '"' | ';' | '<' | '>' | ':' | '*' | '?' | '|')
                        || ('\u{202A}'..='\u{202E}').contains(&c)
                        || ('\u{2066}'..='\u{2069}').contains(&c)
                };
                prop_assert!(!name.chars().any(unsafe_char), "{:?}", name);
                prop_assert!(!name.starts_with([' ', '.']) && !name.ends_with([' ', '.']));
                prop_assert_eq!(sanitize_file_name(&name), name.clone());

                let header = content_disposition(&raw, false);
                prop_assert!(header.is_ascii());
                prop_assert_eq!(header.matches('"').count(), 2);
                prop_assert_eq!(utf8_name(&header), name);
            }
        }
    }

    #[cfg(feature = "server")]
    mod ssrf {
        use shared::media::ssrf::{check, check_redirect, Policy, Refusal};
        use url::Url;

        const PUBLIC: Policy = Policy {
            allow_loopback: false,
        };
        const TESTING: Policy = Policy {
            allow_loopback: true,
        };

        fn refused(raw: &str, policy: Policy) -> Refusal {
            match check(raw, policy) {
                Ok(target) => panic!("{raw} was allowed as {}", target.url),
                Err(refusal) => refusal,
            }
        }

        #[test]
        fn public_web_urls_are_allowed() {
            for raw in [
                "https://example.com/a?b#c",
                "http://93.184.216.34/",
                "https://example.com:443/",
                "http://example.com:80/x",
                "https://example.com.",
                "https://[2606:2800:220:1:248:1893:25c8:1946]/",
                "https://bücher.example/",
            ] {
                assert!(check(raw, PUBLIC).is_ok(), "{raw}");
            }
            let target = check("HTTPS://Example.COM/a?b#c", PUBLIC).unwrap();
            assert_eq!(target.url.as_str(), "https://example.com/a?b#c");
        }

        #[test]
        fn numeric_forms_of_loopback_are_normalised_and_refused() {
            for (raw, host) in [
                ("http://2130706433/", "127.0.0.1"),
                ("http://0x7f.1/", "127.0.0.1"),
                ("http://0177.0.0.1/", "127.0.0.1"),
                ("http://127.1/", "127.0.0.1"),
                ("http://0x7f000001/", "127.0.0.1"),
                ("http://127.255.255.254/", "127.255.255.254"),
                ("http://0/", "0.0.0.0"),
            ] {
                assert_eq!(
                    Url::parse(raw).unwrap().host_str(),
                    Some(host),
                    "the parser makes {raw} an IPv4 address"
                );
                assert_eq!(refused(raw, PUBLIC), Refusal::Host, "{raw}");
            }
        }

        #[test]
        fn the_ssrf_corpus_is_refused() {
            let corpus = [
                ("http://[::ffff:127.0.0.1]/", Refusal::Host),
                ("http://[::ffff:7f00:1]/", Refusal::Host),
                ("http://[::1]/", Refusal::Host),
                ("http://[::]/", Refusal::Host),
                ("http://0.0.0.0/", Refusal::Host),
                ("http://0/", Refusal::Host),
                ("http://localhost/", Refusal::Host),
                ("http://localhost./", Refusal::Host),
                ("http://LOCALHOST/", Refusal::Host),
                ("http://foo.localhost/", Refusal::Host),
                ("http://ｌｏｃａｌｈｏｓｔ/", Refusal::Host),
                ("http://user:pw@example.com/", Refusal::Credentials),
                ("http://user@example.com/", Refusal::Credentials),
                ("http://example.com:8080/", Refusal::Port),
                ("https://example.com:22/", Refusal::Port),
                ("ftp://example.com/", Refusal::Scheme),
                ("file:///etc/passwd", Refusal::Scheme),
                ("javascript:alert(1)", Refusal::Scheme),
                ("gopher://example.com:70/", Refusal::Scheme),
                ("data:text/html,hi", Refusal::Scheme),
                ("http://169.254.169.254/latest/meta-data", Refusal::Host),
                ("http://[fd00::1]/", Refusal::Host),
                ("http://[fe80::1]/", Refusal::Host),
                ("http://[ff02::1]/", Refusal::Host),
                ("http://[64:ff9b::7f00:1]/", Refusal::Host),
                ("http://[2002:7f00:1::]/", Refusal::Host),
                ("http://[2001:db8::1]/", Refusal::Host),
                ("http://[::127.0.0.1]/", Refusal::Host),
                ("http://100.64.0.1/", Refusal::Host),
                ("http://10.0.0.1/", Refusal::Host),
                ("http://172.16.5.4/", Refusal::Host),
                ("http://172.31.255.255/", Refusal::Host),
                ("http://192.168.1.1/", Refusal::Host),
                ("http://192.0.2.1/", Refusal::Host),
                ("http://198.18.0.1/", Refusal::Host),
                ("http://224.0.0.1/", Refusal::Host),
                ("http://240.0.0.1/", Refusal::Host),
                ("http://255.255.255.255/", Refusal::Host),
                ("http://intranet/", Refusal::Host),
                ("http://printer.local/", Refusal::Host),
                ("http://metadata.google.internal/", Refusal::Host),
                ("http://nas.home.arpa/", Refusal::Host),
                ("http://router.lan/", Refusal::Host),
                ("http://wiki.corp/", Refusal::Host),
                ("http://", Refusal::Malformed),
                ("not a url", Refusal::Malformed),
                ("http://1.2.3.4.5/", Refusal::Malformed),
            ];
            for (raw, why) in corpus {
                assert_eq!(refused(raw, PUBLIC), why, "{raw}");
            }
        }

        #[test]
        fn neighbours_of_private_ranges_are_public() {
            for raw in [
                "http://172.32.0.1/",
                "http://100.128.0.1/",
                "http://11.0.0.1/",
                "http://192.169.0.1/",
                "http://223.255.255.255/",
            ] {
                assert!(check(raw, PUBLIC).is_ok(), "{raw}");
            }
        }

        #[test]
        fn a_redirect_to_loopback_is_refused_and_a_relative_one_stays_public() {
            let from = Url::parse("https://example.com/a/b").unwrap();
            assert_eq!(
                check_redirect(&from, "http://127.0.0.1/", PUBLIC).unwrap_err(),
                Refusal::Host
            );
            assert_eq!(
                check_redirect(&from, "//169.254.169.254/x", PUBLIC).unwrap_err(),
                Refusal::Host
            );
            assert_eq!(
                check_redirect(&from, "file:///etc/passwd", PUBLIC).unwrap_err(),
                Refusal::Scheme
            );
            let target = check_redirect(&from, "../c?d=1", PUBLIC).unwrap();
            assert_eq!(target.url.as_str(), "https://example.com/c?d=1");
        }

        #[test]
        fn a_url_longer_than_a_link_may_be_is_malformed() {
            let long = format!("https://example.com/{}", "a".repeat(3000));
            assert_eq!(refused(&long, PUBLIC), Refusal::Malformed);
        }

        #[test]
        fn the_test_policy_allows_loopback_and_any_port_but_nothing_else_private() {
            assert!(check("http://127.0.0.1:45678/", TESTING).is_ok());
            assert!(check("http://localhost:8787/x", TESTING).is_ok());
            assert!(check("http://[::1]:9000/", TESTING).is_ok());
            assert_eq!(refused("http://10.0.0.1/", TESTING), Refusal::Host);
            assert_eq!(refused("http://169.254.169.254/", TESTING), Refusal::Host);
            assert_eq!(
                refused("http://[::ffff:127.0.0.1]/", TESTING),
                Refusal::Host
            );
            assert_eq!(refused("file:///etc/passwd", TESTING), Refusal::Scheme);
            assert_eq!(refused("gopher://127.0.0.1/", TESTING), Refusal::Scheme);
            assert_eq!(
                refused("http://127.0.0.1:45678/", PUBLIC),
                Refusal::Port,
                "and without it the same URL is refused"
            );
        }

        #[test]
        fn refusals_have_stable_codes_and_messages() {
            let all = [
                (Refusal::Malformed, "preview_url_malformed"),
                (Refusal::Scheme, "preview_url_scheme"),
                (Refusal::Port, "preview_url_port"),
                (Refusal::Credentials, "preview_url_credentials"),
                (Refusal::Host, "preview_url_host"),
            ];
            for (refusal, code) in all {
                assert_eq!(refusal.code(), code);
                assert!(!refusal.to_string().is_empty());
            }
        }
    }

    #[cfg(feature = "server")]
    mod preview {
        use crate::common::{any_string, config};
        use proptest::prelude::*;
        use shared::media::preview::{parse, PagePreview, DESCRIPTION_MAX, TITLE_MAX};
        use url::Url;

        fn page() -> Url {
            Url::parse("https://news.example/section/story.html").unwrap()
        }

        #[test]
        fn open_graph_tags_make_the_preview() {
            let html = r#"<!doctype html><html><head>
            <meta charset="utf-8">
            <title>Fallback title</title>
            <meta property="og:title" content="The Story">
            <meta property="og:description" content="What happened.">
            <meta property="og:site_name" content="News">
            <meta property="og:image" content="https://cdn.example/i.jpg">
            </head><body></body></html>"#;
            assert_eq!(
                parse(html, &page()),
                PagePreview {
                    title: Some("The Story".into()),
                    description: Some("What happened.".into()),
                    site_name: Some("News".into()),
                    image: Some("https://cdn.example/i.jpg".into()),
                }
            );
        }

        #[test]
        fn attribute_order_quotes_and_case_do_not_matter() {
            let html = "<HEAD><META CONTENT='Swapped' PROPERTY=og:title>\
                    <meta content=bare name=DESCRIPTION />\
                    <meta\n  name = \"twitter:image\"\tcontent = \"/img/a.png\" >";
            let preview = parse(html, &page());
            assert_eq!(preview.title.as_deref(), Some("Swapped"));
            assert_eq!(preview.description.as_deref(), Some("bare"));
            assert_eq!(
                preview.image.as_deref(),
                Some("https://news.example/img/a.png")
            );
        }

        #[test]
        fn the_title_element_and_twitter_tags_are_fallbacks() {
            let html =
                "<title>  Plain \n\t title </title><meta name=twitter:description content=tw>";
            let preview = parse(html, &page());
            assert_eq!(preview.title.as_deref(), Some("Plain title"));
            assert_eq!(preview.description.as_deref(), Some("tw"));
            let html = "<title>t</title><meta name=twitter:title content=Twitter>";
            assert_eq!(parse(html, &page()).title.as_deref(), Some("Twitter"));
        }

        #[test]
        fn a_title_inside_a_script_or_comment_is_ignored() {
            let html = "<head><script>var s = '<title>Fake</title>';</script>\
                    <!-- <meta property=og:title content=Hidden> -->\
                    <style>/* <title>Styled</title> */</style>\
                    <title>Real</title></head>";
            assert_eq!(parse(html, &page()).title.as_deref(), Some("Real"));
        }

        #[test]
        fn entities_are_decoded_and_unknown_ones_left_as_written() {
            let html = "<meta property=og:title content=\"Tom &amp; Jerry &lt;3 &quot;hi&quot; \
                    &#39;a&apos; &#x263A; &#9731; &copy; &bogus; & x&nbsp;y\">";
            assert_eq!(
                parse(html, &page()).title.as_deref(),
                Some("Tom & Jerry <3 \"hi\" 'a' ☺ ☃ &copy; &bogus; & x y")
            );
            let bad = "<title>&#0; &#xD800; &#99999999999; &#x;</title>";
            assert_eq!(
                parse(bad, &page()).title.as_deref(),
                Some("\u{FFFD} \u{FFFD} &#99999999999; &#x;")
            );
        }

        #[test]
        fn a_huge_title_is_capped_on_a_character_boundary() {
            let html = format!("<title>{}</title>", "é".repeat(5000));
            let title = parse(&html, &page()).title.unwrap();
            assert_eq!(title.chars().count(), TITLE_MAX);
            assert!(title.ends_with('…'));
            let html = format!(
                "<meta name=description content=\"{}\">",
                "word ".repeat(500)
            );
            let description = parse(&html, &page()).description.unwrap();
            assert!(description.chars().count() <= DESCRIPTION_MAX);
            assert!(description.ends_with("word…"));
        }

        #[test]
        fn a_javascript_image_is_dropped_and_the_next_candidate_used() {
            let html = "<meta property=og:image content=\"javascript:alert(1)\">\
                    <meta name=twitter:image content=\"data:image/png;base64,AAAA\">";
            assert_eq!(parse(html, &page()).image, None);
            let html = "<meta property=og:image:secure_url content=\"javascript:alert(1)\">\
                    <meta property=og:image content=\"//cdn.example/x.png\">";
            assert_eq!(
                parse(html, &page()).image.as_deref(),
                Some("https://cdn.example/x.png")
            );
        }

        #[test]
        fn a_relative_image_resolves_against_the_page() {
            let html = "<meta property=og:image content=\"../img/cover.jpg?w=1&amp;h=2\">";
            assert_eq!(
                parse(html, &page()).image.as_deref(),
                Some("https://news.example/img/cover.jpg?w=1&h=2")
            );
        }

        #[test]
        fn scanning_stops_at_the_end_of_the_head() {
            let html = "<head><title>Head</title></head><body>\
                    <meta property=og:title content=Body></body>";
            assert_eq!(parse(html, &page()).title.as_deref(), Some("Head"));
        }

        #[test]
        fn the_first_of_a_repeated_tag_wins() {
            let html =
                "<meta property=og:title content=First><meta property=og:title content=Second>";
            assert_eq!(parse(html, &page()).title.as_deref(), Some("First"));
        }

        #[test]
        fn malformed_html_gives_what_it_can_without_panicking() {
            for html in [
                "",
                "<",
                "<meta",
                "<meta property=\"og:title\" content=\"unterminated",
                "<title>no end",
                "<!-- never closed <title>x</title>",
                "<script>never closed <title>x</title>",
                "<<<>>><meta =x ==y content>",
                "</",
                "<a b='>'><title>after</title>",
            ] {
                let _ = parse(html, &page());
            }
            assert_eq!(
                parse("<title>no end", &page()).title.as_deref(),
                Some("no end")
            );
            assert_eq!(
                parse("<!-- never closed <title>x</title>", &page()).title,
                None
            );
            assert_eq!(
                parse("<a b='>'><title>after</title>", &page())
                    .title
                    .as_deref(),
                Some("after")
            );
            assert_eq!(
                parse("<meta property=og:title>", &page()),
                PagePreview::default()
            );
        }

        #[test]
        fn bidi_and_control_characters_are_dropped_from_text() {
            let html = "<title>a\u{202E}b\u{0007}c</title>";
            assert_eq!(parse(html, &page()).title.as_deref(), Some("abc"));
            assert_eq!(parse("<title> \u{202E} </title>", &page()).title, None);
        }

        #[test]
        fn nothing_after_the_first_512_kilobytes_is_read() {
            let html = format!("{}<title>late</title>", " ".repeat(512 * 1024));
            assert_eq!(parse(&html, &page()).title, None);
        }

        proptest! {
            #![proptest_config(config(500))]

            #[test]
            fn any_page_parses_without_panicking_and_within_its_limits(
                html in prop_oneof![
                    any_string(),
                    "(<(meta|title|script|/head|!--)[ a-z=\"':/.&#;x0-9-]{0,30}>?[a-z &;#<>]{0,10}){0,8}",
                ]
            ) {
                let preview = parse(&html, &page());
                if let Some(title) = &preview.title {
                    prop_assert!(title.chars().count() <= TITLE_MAX && !title.is_empty());
                }
                if let Some(image) = &preview.image {
                    prop_assert!(image.starts_with("http://") || image.starts_with("https://"));
                }
            }
        }
    }
}
