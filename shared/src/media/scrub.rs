//! Removes image metadata (camera, location, editing history, comments) while an upload streams
//! to storage.
//!
//! R2 needs an object's length before its first byte, so the scrubber never changes the byte
//! count: it neutralises metadata in place. A metadata block keeps its length but gets a type
//! every decoder skips and an all-zero payload:
//!
//! - JPEG, up to the first scan (SOS): APP1 (Exif, XMP), APP3–APP13 (APP13 is IPTC/Photoshop),
//!   APP15 and COM segments become COM segments of zeros. APP0 (JFIF), APP2 (ICC colour
//!   profile) and APP14 (Adobe colour transform) stay: decoders need them to show the right
//!   colours. After SOS everything passes through.
//! - PNG: `eXIf`, `tEXt`, `zTXt`, `iTXt` and `tIME` chunks become [`PNG_BLANK`] chunks of zeros
//!   with a recomputed CRC. Nothing after `IEND` is parsed.
//! - WebP: `EXIF` and `XMP ` chunks become [`WEBP_BLANK`] chunks of zeros, and the `VP8X`
//!   header's EXIF and XMP flags are cleared. Nothing after the RIFF payload is parsed.
//!
//! Not scrubbed, passed through untouched: AVIF (its Exif is an item inside the `meta` box,
//! found through `iinf`/`iloc`, which needs the whole box tree rather than a stream walk), GIF
//! (no standard place for camera or location data; comment extensions are not rewritten), and
//! every non-image format.

use std::fmt;

use super::sniff::Format;

/// The chunk type a PNG metadata chunk becomes. Lowercase first letter: ancillary, so every
/// decoder skips a type it does not know. Lowercase second: private (not a registered type).
/// Uppercase third: the reserved bit stays clear, as the PNG spec requires. Lowercase fourth:
/// safe to copy, so an editor keeps the file valid either way.
pub const PNG_BLANK: [u8; 4] = *b"blNk";

/// The FourCC a WebP metadata chunk becomes. `JUNK` is RIFF's filler chunk, and the WebP
/// container spec requires readers to ignore chunks they do not know.
pub const WEBP_BLANK: [u8; 4] = *b"JUNK";

/// Why an image could not be scrubbed. The upload must be refused: its metadata may still be
/// in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubError {
    /// The bytes break the format's structure where the scrubber walks it (the detail says
    /// how, for the server's log).
    Invalid(&'static str),
    /// The stream ended inside the part of the image the scrubber walks (JPEG before its
    /// first scan, PNG before `IEND`, WebP before the end its RIFF header gives).
    Truncated,
}

impl ScrubError {
    /// A stable, snake_case code for logs and error replies.
    pub fn code(&self) -> &'static str {
        match self {
            ScrubError::Invalid(_) => "invalid_image",
            ScrubError::Truncated => "truncated_image",
        }
    }
}

impl fmt::Display for ScrubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScrubError::Invalid(why) => write!(f, "the image is not valid: {why}"),
            ScrubError::Truncated => f.write_str("the image ends before its headers do"),
        }
    }
}

impl std::error::Error for ScrubError {}

/// What the scrubber did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// How many metadata blocks (segments or chunks) were blanked.
    pub neutralised: u32,
}

/// Strips metadata from a stream of image bytes without changing its length. Feed chunks with
/// [`Scrubber::push`] in order, then call [`Scrubber::finish`]. After an error the stream must
/// be abandoned; every later call returns the same error.
#[derive(Debug)]
pub struct Scrubber {
    state: State,
    /// Bytes of a header that arrived split across chunks, kept until the header is whole.
    held: Vec<u8>,
    neutralised: u32,
}

#[derive(Debug)]
enum State {
    Failed(ScrubError),
    /// Everything from here on is copied unchanged.
    Pass,
    /// Copy this many bytes unchanged, then read `then`.
    Copy {
        left: u64,
        then: Header,
    },
    /// Replace this many bytes with zeros, then read `then`. For PNG, `crc` runs over the
    /// zeros, and the chunk's CRC comes next.
    Zero {
        left: u64,
        crc: Option<u32>,
        then: Header,
    },
    /// Read a header (it may need more bytes than have arrived).
    Header(Header),
}

#[derive(Debug, Clone, Copy)]
enum Header {
    /// The walk is over: everything after passes through.
    End,
    JpegStart,
    JpegMarker,
    PngSignature,
    PngChunk,
    /// The CRC to write over the chunk's old one.
    PngCrc(u32),
    WebpRiff,
    /// The next chunk starts at byte `at`; the RIFF payload ends at byte `end`.
    WebpChunk {
        at: u64,
        end: u64,
    },
    /// The first byte of `VP8X` data (its flags), then `rest` more bytes of the chunk.
    Vp8xFlags {
        rest: u64,
        at: u64,
        end: u64,
    },
}

/// What reading a header decided.
enum Read {
    /// Not enough bytes yet: hold them back.
    More,
    /// This many input bytes were consumed (their replacement is in the output); go on in
    /// this state.
    Done(usize, State),
}

impl Scrubber {
    /// A scrubber for a file of this format; formats it does not rewrite pass through.
    pub fn new(format: Format) -> Self {
        let state = match format {
            Format::Jpeg => State::Header(Header::JpegStart),
            Format::Png => State::Header(Header::PngSignature),
            Format::Webp => State::Header(Header::WebpRiff),
            _ => State::Pass,
        };
        Scrubber {
            state,
            held: Vec::new(),
            neutralised: 0,
        }
    }

    /// Feeds the next chunk; returns the bytes ready to send (may hold back a few bytes across
    /// a chunk boundary). Total output == total input.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, ScrubError> {
        // Only a header split across chunks is ever held, so copying it in front of the next
        // chunk is cheap; the common case (nothing held) reads the chunk where it is.
        let joined;
        let input = if self.held.is_empty() {
            chunk
        } else {
            let mut held = std::mem::take(&mut self.held);
            held.extend_from_slice(chunk);
            joined = held;
            &joined
        };
        let mut out = Vec::with_capacity(input.len());
        let used = match self.run(input, &mut out) {
            Ok(used) => used,
            Err(e) => {
                self.state = State::Failed(e.clone());
                return Err(e);
            }
        };
        self.held = input.get(used..).unwrap_or_default().to_vec();
        Ok(out)
    }

    /// Ends the stream: the held-back bytes. Err when the image was cut short inside a header
    /// it had to rewrite.
    pub fn finish(self) -> Result<(Vec<u8>, Report), ScrubError> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Pass if self.held.is_empty() => Ok((
                self.held,
                Report {
                    neutralised: self.neutralised,
                },
            )),
            _ => Err(ScrubError::Truncated),
        }
    }

    /// Processes `input` as far as it can; returns how many bytes it consumed.
    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ScrubError> {
        let mut at = 0;
        loop {
            let rest = input.get(at..).unwrap_or_default();
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Pass => {
                    out.extend_from_slice(rest);
                    return Ok(input.len());
                }
                State::Copy { left, then } => {
                    let n = take(*left, rest);
                    out.extend_from_slice(&rest[..n]);
                    at += n;
                    *left -= n as u64;
                    if *left > 0 {
                        return Ok(at);
                    }
                    self.state = State::Header(*then);
                }
                State::Zero { left, crc, then } => {
                    let n = take(*left, rest);
                    out.resize(out.len() + n, 0);
                    if let Some(crc) = crc {
                        *crc = crc32_zeros(*crc, n);
                    }
                    at += n;
                    *left -= n as u64;
                    if *left > 0 {
                        return Ok(at);
                    }
                    self.state = match crc {
                        Some(crc) => State::Header(Header::PngCrc(!*crc)),
                        None => State::Header(*then),
                    };
                }
                State::Header(header) => {
                    let header = *header;
                    match self.header(header, rest, out)? {
                        Read::More => return Ok(at),
                        Read::Done(n, next) => {
                            at += n;
                            self.state = next;
                        }
                    }
                }
            }
        }
    }

    fn header(&mut self, header: Header, b: &[u8], out: &mut Vec<u8>) -> Result<Read, ScrubError> {
        match header {
            Header::End => Ok(Read::Done(0, State::Pass)),
            Header::JpegStart => {
                let Some(soi) = b.get(..2) else {
                    return Ok(Read::More);
                };
                if soi != [0xFF, 0xD8] {
                    return Err(ScrubError::Invalid("a JPEG must start with FF D8"));
                }
                out.extend_from_slice(soi);
                Ok(Read::Done(2, State::Header(Header::JpegMarker)))
            }
            Header::JpegMarker => self.jpeg_marker(b, out),
            Header::PngSignature => {
                let Some(signature) = b.get(..8) else {
                    return Ok(Read::More);
                };
                if signature != b"\x89PNG\r\n\x1a\n" {
                    return Err(ScrubError::Invalid("not a PNG signature"));
                }
                out.extend_from_slice(signature);
                Ok(Read::Done(8, State::Header(Header::PngChunk)))
            }
            Header::PngChunk => self.png_chunk(b, out),
            Header::PngCrc(crc) => {
                if b.len() < 4 {
                    return Ok(Read::More);
                }
                out.extend_from_slice(&crc.to_be_bytes());
                Ok(Read::Done(4, State::Header(Header::PngChunk)))
            }
            Header::WebpRiff => {
                let Some(riff) = b.get(..12) else {
                    return Ok(Read::More);
                };
                if &riff[..4] != b"RIFF" || &riff[8..] != b"WEBP" {
                    return Err(ScrubError::Invalid("not a WebP RIFF header"));
                }
                let size = u64::from(le32(&riff[4..8]));
                out.extend_from_slice(riff);
                let next = Header::WebpChunk {
                    at: 12,
                    end: 8 + size,
                };
                Ok(Read::Done(12, State::Header(next)))
            }
            Header::WebpChunk { at, end } => self.webp_chunk(at, end, b, out),
            Header::Vp8xFlags { rest, at, end } => {
                let Some(&flags) = b.first() else {
                    return Ok(Read::More);
                };
                // Bit 3 says "has EXIF", bit 2 "has XMP"; those chunks are blanked, so a reader
                // must not go looking for them.
                out.push(flags & !(0x08 | 0x04));
                let then = Header::WebpChunk { at, end };
                Ok(Read::Done(1, State::Copy { left: rest, then }))
            }
        }
    }

    fn jpeg_marker(&mut self, b: &[u8], out: &mut Vec<u8>) -> Result<Read, ScrubError> {
        let Some(&[ff, marker]) = b.get(..2) else {
            return Ok(Read::More);
        };
        if ff != 0xFF {
            return Err(ScrubError::Invalid("expected a JPEG marker"));
        }
        match marker {
            // A fill byte before a marker: keep it and read on.
            0xFF => {
                out.push(0xFF);
                return Ok(Read::Done(1, State::Header(Header::JpegMarker)));
            }
            // TEM and RST0–RST7 stand alone, without a length.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[ff, marker]);
                return Ok(Read::Done(2, State::Header(Header::JpegMarker)));
            }
            // Start of scan (entropy-coded data follows) or end of image: nothing more to
            // rewrite.
            0xDA | 0xD9 => {
                out.extend_from_slice(&[ff, marker]);
                return Ok(Read::Done(2, State::Pass));
            }
            0x00 | 0xD8 => return Err(ScrubError::Invalid("unexpected JPEG marker")),
            _ => {}
        }
        let Some(length) = b.get(2..4) else {
            return Ok(Read::More);
        };
        let length = u16::from_be_bytes([length[0], length[1]]);
        if length < 2 {
            return Err(ScrubError::Invalid("JPEG segment length below 2"));
        }
        // The length counts its own two bytes.
        let left = u64::from(length - 2);
        let then = Header::JpegMarker;
        // APP1 (Exif, XMP), APP3–APP13 (APP13: IPTC/Photoshop), APP15, COM.
        if matches!(marker, 0xE1 | 0xE3..=0xED | 0xEF | 0xFE) {
            self.neutralised += 1;
            out.extend_from_slice(&[0xFF, 0xFE]);
            out.extend_from_slice(&length.to_be_bytes());
            Ok(Read::Done(
                4,
                State::Zero {
                    left,
                    crc: None,
                    then,
                },
            ))
        } else {
            out.extend_from_slice(&b[..4]);
            Ok(Read::Done(4, State::Copy { left, then }))
        }
    }

    fn png_chunk(&mut self, b: &[u8], out: &mut Vec<u8>) -> Result<Read, ScrubError> {
        let Some(head) = b.get(..8) else {
            return Ok(Read::More);
        };
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = &head[4..8];
        if length > 0x7FFF_FFFF {
            return Err(ScrubError::Invalid("PNG chunk length above 2^31 - 1"));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(ScrubError::Invalid("PNG chunk type is not four letters"));
        }
        let left = u64::from(length);
        if matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            self.neutralised += 1;
            out.extend_from_slice(&head[..4]);
            out.extend_from_slice(&PNG_BLANK);
            Ok(Read::Done(
                8,
                State::Zero {
                    left,
                    crc: Some(crc32_update(!0, &PNG_BLANK)),
                    then: Header::PngChunk,
                },
            ))
        } else {
            out.extend_from_slice(head);
            // Data, then the CRC. After IEND nothing is a chunk any more.
            let then = if kind == b"IEND" {
                Header::End
            } else {
                Header::PngChunk
            };
            let state = State::Copy {
                left: left + 4,
                then,
            };
            Ok(Read::Done(8, state))
        }
    }

    fn webp_chunk(
        &mut self,
        at: u64,
        end: u64,
        b: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Read, ScrubError> {
        if at >= end {
            // Past the RIFF payload: nothing more is a chunk.
            return Ok(Read::Done(0, State::Pass));
        }
        let Some(head) = b.get(..8) else {
            return Ok(Read::More);
        };
        let fourcc = &head[..4];
        let size = u64::from(le32(&head[4..8]));
        // Chunk data is padded to an even length.
        let padded = size + (size & 1);
        let next = at + 8 + padded;
        if next > end {
            return Err(ScrubError::Invalid("WebP chunk runs past the RIFF end"));
        }
        let then = Header::WebpChunk { at: next, end };
        if matches!(fourcc, b"EXIF" | b"XMP ") {
            self.neutralised += 1;
            out.extend_from_slice(&WEBP_BLANK);
            out.extend_from_slice(&head[4..8]);
            let state = State::Zero {
                left: padded,
                crc: None,
                then,
            };
            Ok(Read::Done(8, state))
        } else if fourcc == b"VP8X" {
            if size == 0 {
                return Err(ScrubError::Invalid("empty VP8X chunk"));
            }
            out.extend_from_slice(head);
            let flags = Header::Vp8xFlags {
                rest: padded - 1,
                at: next,
                end,
            };
            Ok(Read::Done(8, State::Header(flags)))
        } else {
            out.extend_from_slice(head);
            Ok(Read::Done(8, State::Copy { left: padded, then }))
        }
    }
}

/// How many of the `left` bytes a state still wants are in `rest`.
fn take(left: u64, rest: &[u8]) -> usize {
    usize::try_from(left).map_or(rest.len(), |left| left.min(rest.len()))
}

fn le32(b: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    for (w, byte) in word.iter_mut().zip(b) {
        *w = *byte;
    }
    u32::from_le_bytes(word)
}

/// The CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) table PNG uses, built at compile
/// time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// Runs the CRC register over `bytes` (start from `!0`, finish with `!`).
fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

fn crc32_zeros(mut crc: u32, n: usize) -> u32 {
    for _ in 0..n {
        crc = CRC_TABLE[(crc & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
        // IEND's CRC, as every PNG ends with it.
        assert_eq!(!crc32_update(!0, b"IEND"), 0xAE42_6082);
        assert_eq!(
            crc32_zeros(crc32_update(!0, b"ab"), 3),
            crc32_update(!0, b"ab\0\0\0")
        );
    }
}
