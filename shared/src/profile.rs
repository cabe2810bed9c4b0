//! Profiles: what a user says about themselves, their app preferences, and what they ask of the
//! assistant. Validation rules and avatar checks live here so the Worker and the app agree.

use serde::{Deserialize, Serialize};

use crate::ai::Personalization;
use crate::error::{ChatError, ErrorCode};
use crate::limits;

/// Longest bio, in characters.
pub const BIO_MAX_CHARS: usize = 500;
/// Longest pronouns, status, time zone or language label, in characters.
pub const SHORT_MAX_CHARS: usize = 60;
/// Longest assistant tone or interests, in characters.
pub const AI_SHORT_MAX_CHARS: usize = 200;
/// Longest custom instructions for the assistant, in characters.
pub const AI_INSTRUCTIONS_MAX_CHARS: usize = 1000;
/// Largest avatar upload, in bytes.
pub const AVATAR_MAX_BYTES: usize = 1024 * 1024;
/// Largest avatar width or height, in pixels. The app downscales with a canvas before upload;
/// the Worker only checks, so it needs no image decoder.
pub const AVATAR_MAX_SIDE: u32 = 1024;

/// What the assistant should know about how this user wants answers. Carried into each room
/// connection (`Conn::prefs`) and updated live when the profile changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AiPrefs {
    /// How the assistant should sound ("concise", "friendly", ...).
    pub tone: String,
    /// Topics the user cares about.
    pub interests: String,
    /// Free-form custom instructions.
    pub instructions: String,
    /// Preferred answer language (BCP 47 tag or a name); empty = the conversation's.
    pub language: String,
    /// Whether the assistant may remember things about the user across conversations (opt-in).
    pub memory: bool,
}

impl AiPrefs {
    /// Copies these preferences into the assistant's per-connection [`Personalization`],
    /// keeping the facts it already remembers (those come from the assistant's memory store).
    pub fn apply_to(&self, p: &mut Personalization) {
        p.tone.clone_from(&self.tone);
        p.interests.clone_from(&self.interests);
        p.instructions.clone_from(&self.instructions);
        p.language.clone_from(&self.language);
        p.remember = self.memory;
        if !self.memory {
            // Opting out forgets at once what this connection carried.
            p.memory.clear();
        }
    }
}

/// Color theme of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Follow the system.
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
    /// A theme this build does not know.
    #[serde(other)]
    Unknown,
}

/// A user's profile, as `GET /api/profile` returns it and `PUT /api/profile` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Stable user id (ignored on update).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// URL of the avatar image, if one was uploaded (ignored on update: upload it instead).
    pub avatar: Option<String>,
    /// About me.
    pub bio: String,
    /// Pronouns.
    pub pronouns: String,
    /// Status text.
    pub status: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// UI language (BCP 47), e.g. `en`.
    pub language: String,
    /// Accent color, `#rrggbb`, or empty for the default.
    pub accent: String,
    /// Color theme.
    pub theme: Theme,
    /// Preferences for the assistant.
    pub ai: AiPrefs,
    /// Whether the user is a global admin (read-only here).
    pub admin: bool,
}

/// The public part of a profile, for a profile card.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicProfile {
    /// Stable user id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// About me.
    pub bio: String,
    /// Pronouns.
    pub pronouns: String,
    /// Status text.
    pub status: String,
    /// Time zone.
    pub time_zone: String,
    /// Whether this is a signed-in account (false: a guest, who only picked a name). Filled by
    /// the server, not stored: two people may share a name, the card tells them apart.
    pub signed_in: bool,
    /// The sign-in methods linked to the account (empty for a guest).
    pub providers: Vec<crate::auth::Provider>,
}

impl Profile {
    /// The part anyone may see.
    pub fn public(&self) -> PublicProfile {
        PublicProfile {
            user_id: self.user_id.clone(),
            name: self.name.clone(),
            avatar: self.avatar.clone(),
            bio: self.bio.clone(),
            pronouns: self.pronouns.clone(),
            status: self.status.clone(),
            time_zone: self.time_zone.clone(),
            signed_in: false,
            providers: Vec::new(),
        }
    }

    /// Checks and normalizes an update: every field within its limit, no control characters,
    /// a valid accent color and time zone shape. Returns the normalized profile.
    pub fn validated(mut self) -> Result<Profile, ChatError> {
        self.name = limits::validate_display_name(&self.name)?;
        self.bio = text("Bio", &self.bio, BIO_MAX_CHARS)?;
        self.pronouns = line("Pronouns", &self.pronouns, SHORT_MAX_CHARS)?;
        self.status = line("Status", &self.status, SHORT_MAX_CHARS)?;
        self.time_zone = line("Time zone", &self.time_zone, SHORT_MAX_CHARS)?;
        if !self
            .time_zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        {
            return Err(invalid("Time zone must look like Europe/Paris or UTC."));
        }
        self.language = line("Language", &self.language, SHORT_MAX_CHARS)?;
        self.accent = self.accent.trim().to_ascii_lowercase();
        let hex = self.accent.strip_prefix('#').unwrap_or("x");
        let valid_hex = hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit());
        if !self.accent.is_empty() && !valid_hex {
            return Err(invalid("Accent color must be #rrggbb."));
        }
        if self.theme == Theme::Unknown {
            return Err(invalid("Theme must be system, light or dark."));
        }
        self.ai.tone = line("Assistant tone", &self.ai.tone, AI_SHORT_MAX_CHARS)?;
        self.ai.interests = line("Interests", &self.ai.interests, AI_SHORT_MAX_CHARS)?;
        self.ai.instructions = text(
            "Custom instructions",
            &self.ai.instructions,
            AI_INSTRUCTIONS_MAX_CHARS,
        )?;
        self.ai.language = line("Assistant language", &self.ai.language, SHORT_MAX_CHARS)?;
        Ok(self)
    }
}

fn invalid(message: &str) -> ChatError {
    ChatError::new(ErrorCode::InvalidInput, message)
}

fn too_long(what: &str, chars: usize, max: usize) -> Result<(), ChatError> {
    if chars > max {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("{what} is {chars} characters; the limit is {max}."),
        ));
    }
    Ok(())
}

/// One line: trimmed, whitespace runs folded, no control characters.
fn line(what: &str, value: &str, max: usize) -> Result<String, ChatError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(&format!("{what} must be a single line.")));
    }
    let normalized = value.split_whitespace().collect::<Vec<_>>().join(" ");
    too_long(what, normalized.chars().count(), max)?;
    Ok(normalized)
}

/// Multi-line text: trimmed, no control characters but newlines and tabs.
fn text(what: &str, value: &str, max: usize) -> Result<String, ChatError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(invalid(&format!("{what} contains control characters.")));
    }
    let trimmed = value.trim().to_owned();
    too_long(what, trimmed.chars().count(), max)?;
    Ok(trimmed)
}

/// An accepted avatar image type, recognized by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// GIF.
    Gif,
}

impl ImageType {
    /// The `Content-Type` to serve it with.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }
}

/// A checked avatar: its type and pixel size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avatar {
    /// The image type.
    pub kind: ImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Checks an avatar upload by its bytes (never its name or declared type): at most
/// [`AVATAR_MAX_BYTES`], a PNG, JPEG, WebP or GIF whose header gives its size, at most
/// [`AVATAR_MAX_SIDE`] pixels a side.
pub fn check_avatar(bytes: &[u8]) -> Result<Avatar, ChatError> {
    if bytes.len() > AVATAR_MAX_BYTES {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!(
                "The image is {} KB; the limit is {} KB.",
                bytes.len().div_ceil(1024),
                AVATAR_MAX_BYTES / 1024
            ),
        ));
    }
    let unsupported = || {
        ChatError::new(
            ErrorCode::UnsupportedMedia,
            "That file is not a PNG, JPEG, WebP or GIF image.",
        )
    };
    let kind = image_type(bytes).ok_or_else(unsupported)?;
    let (width, height) = dimensions(kind, bytes).ok_or_else(|| {
        ChatError::new(
            ErrorCode::UnsupportedMedia,
            "The image's header is damaged; its size cannot be read.",
        )
    })?;
    if width == 0 || height == 0 {
        return Err(ChatError::new(
            ErrorCode::UnsupportedMedia,
            "The image has no pixels.",
        ));
    }
    if width > AVATAR_MAX_SIDE || height > AVATAR_MAX_SIDE {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!(
                "The image is {width}×{height} pixels; the limit is {AVATAR_MAX_SIDE}×{AVATAR_MAX_SIDE}."
            ),
        ));
    }
    Ok(Avatar {
        kind,
        width,
        height,
    })
}

fn image_type(b: &[u8]) -> Option<ImageType> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else {
        None
    }
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

fn dimensions(kind: ImageType, b: &[u8]) -> Option<(u32, u32)> {
    match kind {
        ImageType::Png => {
            // The first chunk must be IHDR: width and height as big-endian u32.
            if b.get(12..16)? != b"IHDR" {
                return None;
            }
            let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
            Some((w, h))
        }
        ImageType::Gif => Some((le16(b, 6)?, le16(b, 8)?)),
        ImageType::Webp => match b.get(12..16)? {
            b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
            b"VP8L" => {
                if *b.get(20)? != 0x2F {
                    return None;
                }
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
            _ => None,
        },
        ImageType::Jpeg => {
            // Walk the segments to the first start-of-frame marker.
            let mut at = 2;
            loop {
                while *b.get(at)? != 0xFF {
                    at += 1;
                }
                while *b.get(at)? == 0xFF {
                    at += 1;
                }
                let marker = *b.get(at)?;
                at += 1;
                if matches!(marker, 0xD8 | 0x01 | 0xD0..=0xD7) {
                    continue; // markers without a length
                }
                let len = be16(b, at)? as usize;
                let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_sof {
                    return Some((be16(b, at + 5)?, be16(b, at + 3)?));
                }
                if len < 2 {
                    return None;
                }
                at += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real 1×1 PNG (as written by common encoders).
    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];

    /// A real 2×3 baseline JPEG header (JFIF APP0, a quantization table, SOF0).
    fn jpeg_2x3() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        // APP0 JFIF, length 16.
        b.extend_from_slice(&[
            0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
            0x00, 0x01, 0x00, 0x00,
        ]);
        // DQT, length 67.
        b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
        b.extend(std::iter::repeat_n(1u8, 64));
        // SOF0: length 11, precision 8, height 3, width 2, 1 component.
        b.extend_from_slice(&[
            0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x03, 0x00, 0x02, 0x01, 0x01, 0x11, 0x00,
        ]);
        b.extend_from_slice(&[0xFF, 0xD9]);
        b
    }

    #[test]
    fn a_tiny_png_is_accepted_with_its_size() {
        let avatar = check_avatar(PNG_1X1).unwrap();
        assert_eq!(avatar.kind, ImageType::Png);
        assert_eq!((avatar.width, avatar.height), (1, 1));
        assert_eq!(avatar.kind.mime(), "image/png");
    }

    #[test]
    fn a_tiny_jpeg_is_accepted_with_its_size() {
        let avatar = check_avatar(&jpeg_2x3()).unwrap();
        assert_eq!(avatar.kind, ImageType::Jpeg);
        assert_eq!((avatar.width, avatar.height), (2, 3));
    }

    #[test]
    fn gif_and_webp_headers_give_their_sizes() {
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[10, 0, 20, 0, 0, 0, 0]);
        assert_eq!(check_avatar(&gif).unwrap().width, 10);
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 49, 0, 0]);
        let avatar = check_avatar(&webp).unwrap();
        assert_eq!((avatar.width, avatar.height), (100, 50));
    }

    #[test]
    fn a_text_file_named_png_is_refused_as_unsupported_media() {
        let err = check_avatar(b"hello, I am not an image\n").unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedMedia);
    }

    #[test]
    fn an_upload_over_one_megabyte_is_refused_as_too_large() {
        let mut big = PNG_1X1.to_vec();
        big.resize(AVATAR_MAX_BYTES + 1, 0);
        let err = check_avatar(&big).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
        assert!(err.message.contains("1024 KB"), "{}", err.message);
    }

    #[test]
    fn an_image_wider_than_the_limit_is_refused_with_its_size() {
        let mut png = PNG_1X1.to_vec();
        png[16..20].copy_from_slice(&4000u32.to_be_bytes());
        let err = check_avatar(&png).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
        assert!(err.message.contains("4000×1"), "{}", err.message);
    }

    #[test]
    fn a_truncated_header_is_refused_not_panicked_on() {
        for len in 0..PNG_1X1.len().min(24) {
            assert!(check_avatar(&PNG_1X1[..len]).is_err());
        }
        let jpeg = jpeg_2x3();
        for len in 0..jpeg.len() - 2 {
            let _ = check_avatar(&jpeg[..len]);
        }
    }

    #[test]
    fn a_profile_update_is_normalized_and_checked() {
        let profile = Profile {
            name: "  Ann   Lee ".into(),
            accent: "#A0B1C2".into(),
            time_zone: "Europe/Paris".into(),
            ..Profile::default()
        }
        .validated()
        .unwrap();
        assert_eq!(profile.name, "Ann Lee");
        assert_eq!(profile.accent, "#a0b1c2");

        let bad_accent = Profile {
            name: "Ann".into(),
            accent: "red".into(),
            ..Profile::default()
        };
        assert_eq!(
            bad_accent.validated().unwrap_err().code,
            ErrorCode::InvalidInput
        );
        let long_bio = Profile {
            name: "Ann".into(),
            bio: "x".repeat(BIO_MAX_CHARS + 1),
            ..Profile::default()
        };
        assert_eq!(long_bio.validated().unwrap_err().code, ErrorCode::TooLarge);
        let empty_name = Profile::default();
        assert_eq!(
            empty_name.validated().unwrap_err().code,
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn ai_prefs_reach_the_assistants_personalization_and_opting_out_forgets_its_facts() {
        let mut p = Personalization {
            memory: vec!["likes tea".into()],
            remember: true,
            ..Personalization::default()
        };
        let prefs = AiPrefs {
            tone: "brief".into(),
            language: "fr".into(),
            memory: true,
            ..AiPrefs::default()
        };
        prefs.apply_to(&mut p);
        assert_eq!((p.tone.as_str(), p.language.as_str()), ("brief", "fr"));
        assert_eq!(p.memory, ["likes tea"], "facts stay while opted in");
        AiPrefs {
            memory: false,
            ..prefs
        }
        .apply_to(&mut p);
        assert!(!p.remember);
        assert!(p.memory.is_empty());
    }

    #[test]
    fn ai_prefs_default_to_no_memory_and_parse_from_partial_json() {
        let prefs: AiPrefs = serde_json::from_str(r#"{"tone":"brief"}"#).unwrap();
        assert_eq!(prefs.tone, "brief");
        assert!(!prefs.memory);
    }
}
