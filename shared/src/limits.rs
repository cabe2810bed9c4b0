//! Documented limits and the validation of everything that crosses the boundary.
//!
//! Every inbound frame goes through [`parse_client_frame`]; every HTTP body field through the
//! `validate_*` functions. Both halves use these, so the app can check before it sends and the
//! edge checks again because the app is not trusted.

use crate::error::{ChatError, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::protocol::{ClientMessage, Millis};

/// Largest accepted socket frame, in bytes. A message of [`TEXT_MAX_CHARS`] 4-byte characters
/// plus the envelope fits.
pub const FRAME_MAX_BYTES: usize = 20 * 1024;
/// Longest message text, in characters (Unicode scalar values).
pub const TEXT_MAX_CHARS: usize = 4000;
/// Longest client id, in bytes (ASCII only).
pub const CLIENT_ID_MAX: usize = 64;
/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 40;
/// Longest room name, in characters.
pub const ROOM_NAME_MAX_CHARS: usize = 60;
/// Longest room topic, in characters.
pub const TOPIC_MAX_CHARS: usize = 200;
/// Longest room slug, in bytes.
pub const SLUG_MAX: usize = 48;
/// Largest accepted HTTP JSON body, in bytes.
pub const BODY_MAX_BYTES: usize = 4 * 1024;
/// Messages in the page sent on join.
pub const PAGE_DEFAULT: u32 = 50;
/// Largest page a client may ask for.
pub const PAGE_MAX: u32 = 100;
/// A reconnecting client further behind than this gets a fresh page instead of a replay, so a
/// reconnect never costs more than a bounded amount of work and bandwidth.
pub const REPLAY_MAX_EVENTS: u64 = 500;
/// Events per replay frame (keeps each frame well under the runtime's message size limit).
pub const REPLAY_BATCH: usize = 100;

/// Longest reaction emoji, in bytes: every standard emoji fits (the longest, a couple with two
/// skin tones, is 35 bytes); the grammar of [`crate::emoji`] bounds the rest.
pub const EMOJI_MAX_BYTES: usize = 48;
/// Replies in a [`crate::protocol::ServerMessage::Thread`] answer (the newest ones).
pub const THREAD_PAGE: usize = 200;
/// Distinct reactions one message may carry (each may have any number of people).
pub const REACTIONS_PER_MESSAGE: usize = 20;
/// Typing notices one user may send at once in a room, then this many a second (the rest are
/// dropped: each one fans out to every socket).
pub const TYPING_BURST: f64 = 2.0;
/// See [`TYPING_BURST`].
pub const TYPING_PER_SECOND: f64 = 0.5;
/// Sockets one user may hold open to one room (tabs, devices, the watching socket of each).
pub const SOCKETS_PER_USER: usize = 20;
/// Sockets one room holds at most: room for 5,000-person rooms with a tab or two each, and
/// well under the 32,768 hibernated WebSockets Cloudflare documents per Durable Object.
pub const SOCKETS_PER_ROOM: usize = 12_000;
/// How long a moderator's ban of a guest also keeps new guests from that guest's network out of
/// the room (24 hours). Signed-in accounts from the network are never kept out.
pub const GUEST_NETWORK_BAN_SECONDS: i64 = 24 * 60 * 60;
/// Pinned messages listed per room.
pub const PINS_MAX: usize = 50;
/// Members listed for mention autocomplete.
pub const MEMBERS_MAX: usize = 500;
/// Unread counts stop counting here ("999+"), so a member months behind costs the same as one
/// a day behind.
pub const UNREAD_COUNT_CAP: u32 = 999;
/// Longest search query, in characters.
pub const SEARCH_QUERY_MAX_CHARS: usize = 200;
/// Most search results per room.
pub const SEARCH_LIMIT_MAX: u32 = 50;
/// Search results per room unless asked otherwise.
pub const SEARCH_LIMIT_DEFAULT: u32 = 20;
/// Messages on each side of a search result opened in context.
pub const CONTEXT_SIDE: usize = 20;

/// Parses and validates one inbound text frame.
pub fn parse_client_frame(raw: &str) -> Result<ClientMessage, ChatError> {
    if raw.len() > FRAME_MAX_BYTES {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!(
                "Frame is {} bytes; the limit is {FRAME_MAX_BYTES}.",
                raw.len()
            ),
        ));
    }
    let message: ClientMessage = serde_json::from_str(raw).map_err(|e| {
        ChatError::new(
            ErrorCode::InvalidFrame,
            format!("Frame is not a valid client message: {e}"),
        )
    })?;
    validate_client_message(&message)?;
    Ok(message)
}

/// Longest reason a user may give with a rating.
pub const FEEDBACK_REASON_MAX_CHARS: usize = 500;

/// Longest member-list search ([`ClientMessage::Presence`]); a display name is shorter.
pub const PRESENCE_QUERY_MAX_CHARS: usize = 64;

/// Files one message may carry.
pub const ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Largest thumbnail the sender's browser may store beside an image or video.
pub const THUMB_MAX_BYTES: u64 = 256 * 1024;
/// How long an upload may wait to be attached to a message before the room deletes it.
pub const UPLOAD_ORPHAN_MS: Millis = 24 * 60 * 60 * 1000;
/// The most the per-file limit may be configured to: one request body of the Worker (100 MB on
/// every plan) with room to spare, so a file never needs R2 multipart.
pub const FILE_MAX_BYTES_CEILING: u64 = 95 * 1024 * 1024;
/// An attachment id: 128 random bits in unpadded base64url.
pub const ATTACHMENT_ID_LEN: usize = 22;
/// Longest measured pixel side or playing time a sender may report (layout hints only).
const HINT_MAX_PIXELS: u32 = 100_000;

/// The upload limits of a room (configurable on the Worker: `ATTACHMENT_MAX_BYTES`,
/// `ROOM_QUOTA_BYTES`, `UPLOADS_PER_MINUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadLimits {
    /// Largest file.
    pub file_max_bytes: u64,
    /// Bytes of files one room may hold.
    pub room_quota_bytes: u64,
    /// Uploads one person may announce in one room per minute.
    pub uploads_per_minute: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            file_max_bytes: 25 * 1024 * 1024,
            room_quota_bytes: 2 * 1024 * 1024 * 1024,
            uploads_per_minute: 30,
        }
    }
}

/// Bytes as people read them: `25 MB`, `1.5 GB`, `812 KB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Checks an upload announcement against the field rules and the per-file limit (the room
/// checks its quota and the sender's rate).
pub fn validate_begin_upload(
    request: &crate::protocol::http::BeginUpload,
    limits: &UploadLimits,
) -> Result<(), ChatError> {
    validate_client_id(&request.upload_id)?;
    if request.name.chars().count() > 1_000 {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            "The file name is too long.",
        ));
    }
    if request.size == 0 {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "The file is empty.",
        ));
    }
    if request.size > limits.file_max_bytes {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!(
                "The file is {}; files may be at most {}.",
                human_bytes(request.size),
                human_bytes(limits.file_max_bytes)
            ),
        ));
    }
    let pixels = [request.width, request.height];
    if pixels
        .iter()
        .flatten()
        .any(|&p| p == 0 || p > HINT_MAX_PIXELS)
        || request.duration_ms.is_some_and(|d| d > 100 * 3_600_000)
    {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "The measured size or duration of the file is out of range.",
        ));
    }
    Ok(())
}

/// A well-formed attachment id (anything else cannot name a file, and is `not_found`).
pub fn is_attachment_id(id: &str) -> bool {
    id.len() == ATTACHMENT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The files a send names: at most [`ATTACHMENTS_PER_MESSAGE`], each a well-formed id, none
/// twice.
fn validate_attachment_ids(ids: &[String]) -> Result<(), ChatError> {
    if ids.len() > ATTACHMENTS_PER_MESSAGE {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("A message can carry {ATTACHMENTS_PER_MESSAGE} files."),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        if !is_attachment_id(id) {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "An attachment id is malformed.",
            ));
        }
        if ids[..i].contains(id) {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "The same file is attached twice.",
            ));
        }
    }
    Ok(())
}

/// A message's text: required unless it carries files.
fn validate_body(text: &str, attachments: &[String]) -> Result<(), ChatError> {
    validate_attachment_ids(attachments)?;
    if attachments.is_empty() || !text.trim().is_empty() {
        validate_text(text)
    } else {
        Ok(())
    }
}

/// Checks the field rules of a parsed client message.
pub fn validate_client_message(message: &ClientMessage) -> Result<(), ChatError> {
    match message {
        ClientMessage::Send {
            client_id,
            text,
            attachments,
        } => {
            validate_client_id(client_id)?;
            validate_body(text, attachments)
        }
        ClientMessage::Edit {
            client_id, text, ..
        } => {
            validate_client_id(client_id)?;
            validate_text(text)
        }
        ClientMessage::Delete { client_id, .. }
        | ClientMessage::Stop { client_id, .. }
        | ClientMessage::Regenerate { client_id, .. } => validate_client_id(client_id),
        ClientMessage::Rate {
            client_id, reason, ..
        } => {
            validate_client_id(client_id)?;
            match reason {
                Some(reason) if reason.chars().count() > FEEDBACK_REASON_MAX_CHARS => {
                    Err(ChatError::new(
                        ErrorCode::TooLarge,
                        format!("A reason may be at most {FEEDBACK_REASON_MAX_CHARS} characters."),
                    ))
                }
                _ => Ok(()),
            }
        }
        ClientMessage::Reply {
            client_id,
            text,
            attachments,
            ..
        } => {
            validate_client_id(client_id)?;
            validate_body(text, attachments)
        }
        ClientMessage::React {
            client_id, emoji, ..
        } => {
            validate_client_id(client_id)?;
            validate_emoji(emoji)
        }
        ClientMessage::Pin { client_id, .. } => validate_client_id(client_id),
        ClientMessage::Moderate { client_id, command } => {
            validate_client_id(client_id)?;
            command.validate()
        }
        ClientMessage::Presence { query, .. } => match query {
            Some(query) if query.chars().count() > PRESENCE_QUERY_MAX_CHARS => Err(ChatError::new(
                ErrorCode::TooLarge,
                format!("A member search may be at most {PRESENCE_QUERY_MAX_CHARS} characters."),
            )),
            _ => Ok(()),
        },
        ClientMessage::Hello { .. }
        | ClientMessage::History { .. }
        | ClientMessage::Read { .. }
        | ClientMessage::Thread { .. }
        | ClientMessage::Pins {}
        | ClientMessage::Members {}
        | ClientMessage::Typing {}
        | ClientMessage::Ping {}
        | ClientMessage::CatchUp { .. }
        | ClientMessage::Watch { .. } => Ok(()),
    }
}

/// A reaction: exactly one emoji ([`crate::emoji::is_emoji`]: a pictograph with its skin tone,
/// VS16 and tags, a ZWJ sequence of them, a flag or a keycap), at most [`EMOJI_MAX_BYTES`].
/// Text, symbols that are not emoji, and invisible or bidi characters are refused: reactions
/// ride in every page, so they must not be a side channel for text or for reordering it.
pub fn validate_emoji(emoji: &str) -> Result<(), ChatError> {
    if emoji.is_empty() || emoji.len() > EMOJI_MAX_BYTES {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("A reaction is one emoji of at most {EMOJI_MAX_BYTES} bytes."),
        ));
    }
    if !crate::emoji::is_emoji(emoji) {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "A reaction must be one emoji.",
        ));
    }
    Ok(())
}

/// A search query: at most [`SEARCH_QUERY_MAX_CHARS`], no control characters. Returns it
/// trimmed.
pub fn validate_search_query(query: &str) -> Result<&str, ChatError> {
    let query = query.trim();
    if query.chars().count() > SEARCH_QUERY_MAX_CHARS {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("A search may be at most {SEARCH_QUERY_MAX_CHARS} characters."),
        ));
    }
    if query.chars().any(char::is_control) {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "The search contains control characters.",
        ));
    }
    Ok(query)
}

/// A client id: 1 to [`CLIENT_ID_MAX`] characters of `A-Z a-z 0-9 _ -`.
pub fn validate_client_id(id: &str) -> Result<(), ChatError> {
    if id.is_empty() || id.len() > CLIENT_ID_MAX {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("client_id must be 1 to {CLIENT_ID_MAX} characters."),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "client_id may contain only letters, digits, '-' and '_'.",
        ));
    }
    Ok(())
}

/// Message text: not blank, at most [`TEXT_MAX_CHARS`], no control characters but newline and tab.
pub fn validate_text(text: &str) -> Result<(), ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::new(ErrorCode::InvalidInput, "Message is empty."));
    }
    let chars = text.chars().count();
    if chars > TEXT_MAX_CHARS {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("Message is {chars} characters; the limit is {TEXT_MAX_CHARS}."),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "Message contains control characters.",
        ));
    }
    Ok(())
}

/// Format characters (Unicode category `Cf`): bidi controls and marks, zero-width spaces and
/// joiners, the soft hyphen, invisible operators, tags. Compact and closed: the whole category.
const FORMAT_CHARS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Letters and marks that draw nothing: fillers, the braille blank, the combining grapheme
/// joiner, Khmer's invisible vowels, Mongolian and supplementary variation selectors.
const BLANK_CHARS: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180D}'),
    ('\u{180F}', '\u{180F}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{E0100}', '\u{E01EF}'),
];

/// The generic combining diacritics (any script's letters take them; "zalgo" text stacks them).
const COMBINING_MARKS: &[(char, char)] = &[
    ('\u{0300}', '\u{036F}'),
    ('\u{1AB0}', '\u{1AFF}'),
    ('\u{1DC0}', '\u{1DFF}'),
    ('\u{20D0}', '\u{20FF}'),
    ('\u{FE20}', '\u{FE2F}'),
];

/// Most generic combining marks on one character (Vietnamese needs two).
const MAX_STACKED_MARKS: usize = 3;

fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The first character of `value` that is invisible where it stands: a format character (but a
/// zero-width joiner inside an emoji sequence), a blank letter, or a variation selector that
/// does not follow an emoji base.
fn invisible_char(value: &str) -> Option<char> {
    let chars: Vec<char> = value.chars().collect();
    // The emoji base a joiner or selector may follow: skip back over selectors and skin tones.
    let emoji_before = |i: usize| {
        chars[..i]
            .iter()
            .rev()
            .find(|c| !matches!(c, '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}'))
            .is_some_and(|c| {
                crate::emoji::is_pictographic(*c) || matches!(c, '0'..='9' | '#' | '*')
            })
    };
    chars.iter().enumerate().find_map(|(i, &c)| {
        let allowed = match c {
            '\u{200D}' => {
                emoji_before(i)
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| crate::emoji::is_pictographic(*n))
            }
            '\u{FE0F}' => emoji_before(i),
            '\u{FE00}'..='\u{FE0E}' => false,
            _ => !in_ranges(c, FORMAT_CHARS) && !in_ranges(c, BLANK_CHARS),
        };
        (!allowed).then_some(c)
    })
}

/// A single-line label (display name, room name, topic): trimmed, inner whitespace runs folded
/// to one space, no control characters, no invisible or bidi characters (which let a name
/// reorder or hide its text), no stacked diacritics, something visible, within `max`
/// characters. Returns the normalized label.
fn validate_label(
    what: &str,
    value: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, ChatError> {
    if value.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("{what} contains control characters."),
        ));
    }
    if let Some(c) = invisible_char(value) {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!(
                "{what} contains an invisible or text-direction character (U+{:04X}).",
                u32::from(c)
            ),
        ));
    }
    let mut stacked = 0;
    for c in value.chars() {
        stacked = if in_ranges(c, COMBINING_MARKS) {
            stacked + 1
        } else {
            0
        };
        if stacked > MAX_STACKED_MARKS {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                format!("{what} stacks too many accents on one letter."),
            ));
        }
    }
    let normalized = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let visible = normalized
        .chars()
        .any(|c| c != ' ' && !in_ranges(c, COMBINING_MARKS));
    if !visible && !allow_empty {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("{what} is empty."),
        ));
    }
    if !visible && !normalized.is_empty() {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("{what} shows nothing."),
        ));
    }
    let chars = normalized.chars().count();
    if chars > max {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("{what} is {chars} characters; the limit is {max}."),
        ));
    }
    Ok(normalized)
}

/// A display name, normalized. The assistant's name (in any case, spacing or decoration) is
/// reserved, so nobody can post as if the assistant said it.
pub fn validate_display_name(name: &str) -> Result<String, ChatError> {
    let name = validate_label("Display name", name, DISPLAY_NAME_MAX_CHARS, false)?;
    let folded: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if folded == crate::ai::ASSISTANT_NAME.to_lowercase() {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            format!("\"{name}\" is the assistant's name; please pick another."),
        ));
    }
    Ok(name)
}

/// A room name, normalized. It must also yield a usable slug.
pub fn validate_room_name(name: &str) -> Result<String, ChatError> {
    let name = validate_label("Room name", name, ROOM_NAME_MAX_CHARS, false)?;
    if slugify(&name).is_empty() {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "Room name needs at least one letter or digit.",
        ));
    }
    Ok(name)
}

/// A room topic, normalized; may be empty.
pub fn validate_topic(topic: &str) -> Result<String, ChatError> {
    validate_label("Topic", topic, TOPIC_MAX_CHARS, true)
}

/// The URL slug for a room name: lowercase ASCII letters and digits, other runs folded to one
/// `-`, trimmed, at most [`SLUG_MAX`] bytes. Non-ASCII letters are dropped (a room named only in
/// them gets an error from [`validate_room_name`]).
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len().min(SLUG_MAX));
    let mut pending_dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            let dash = pending_dash && !slug.is_empty();
            if slug.len() + usize::from(dash) + 1 > SLUG_MAX {
                break;
            }
            if dash {
                slug.push('-');
            }
            pending_dash = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
    }
    slug
}

/// Whether a path segment is a well-formed slug (as [`slugify`] makes them, plus the numeric
/// suffix the directory adds on a name clash).
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= SLUG_MAX + 8
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_at_the_text_limit_is_accepted_and_one_more_character_is_too_large() {
        let at_limit = "é".repeat(TEXT_MAX_CHARS);
        let frame = serde_json::json!({"type":"send","client_id":"c1","text":at_limit}).to_string();
        assert!(parse_client_frame(&frame).is_ok());

        let over = "é".repeat(TEXT_MAX_CHARS + 1);
        let frame = serde_json::json!({"type":"send","client_id":"c1","text":over}).to_string();
        assert_eq!(
            parse_client_frame(&frame).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn a_reaction_must_be_a_short_emoji_not_text() {
        for ok in ["👍", "🎉", "❤️", "🇫🇷", "👩‍👩‍👧"] {
            assert!(validate_emoji(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ok", "+1", "👍 ", "é", "日本", &"👍".repeat(9)] {
            assert!(validate_emoji(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_kind_of_real_emoji_is_a_valid_reaction() {
        for ok in [
            "👍",
            "👍🏽",                                                       // skin tone
            "❤️",                                                       // VS16
            "❤",  // text-default pictograph without VS16
            "©️", // a pictograph outside the emoji blocks
            "🇫🇷", // flag
            "1️⃣", // keycap with VS16
            "#⃣",  // keycap without
            "👩‍👩‍👧", // ZWJ family
            "🏳️‍🌈", // ZWJ with VS16
            "🧑🏽‍❤️‍💋‍🧑🏻", // ZWJ with skin tones and VS16 (35 bytes)
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // tag sequence (Scotland)
            "🫠",
        ] {
            assert!(
                validate_emoji(ok).is_ok(),
                "{ok:?} {:x?}",
                ok.chars().collect::<Vec<_>>()
            );
        }
        for app_quick_reaction in ["👍", "❤️", "😂", "🎉", "😮", "👀"] {
            assert!(validate_emoji(app_quick_reaction).is_ok());
        }
    }

    #[test]
    fn invisible_bidi_and_non_emoji_symbols_are_not_reactions() {
        for bad in [
            "\u{202E}",   // right-to-left override
            "\u{202E}👍", // ... before an emoji
            "👍\u{202E}",
            "\u{200B}",   // zero-width space
            "\u{200D}",   // a lone zero-width joiner
            "👍\u{200D}", // a dangling one
            "\u{200D}👍",
            "👍\u{200D}\u{200D}👍",
            "\u{2060}",  // word joiner
            "\u{FEFF}",  // byte order mark
            "\u{00AD}",  // soft hyphen
            "\u{E0067}", // a tag character alone
            "\u{FE0F}",  // a lone variation selector
            "\u{1F3FD}", // a lone skin tone
            "👍\u{1F3FD}\u{1F3FD}",
            "👍\u{FE0E}", // text presentation asked for
            "🇫",          // half a flag
            "🇫🇷🇫",
            "→",
            "∑",
            "★",
            "♪",
            "€",
            "¯",
            "\u{0301}", // a combining accent
            "👍\u{0301}",
            "👍👍", // two emoji
            "1",
            "1\u{20E3}\u{20E3}",
            "a\u{20E3}",
            "🏴\u{E0067}",          // tag sequence without its end
            "👍\u{E0067}\u{E007F}", // tags on a non-flag
            "é",
            "日本",
        ] {
            assert!(
                validate_emoji(bad).is_err(),
                "{bad:?} {:x?}",
                bad.chars().map(u32::from).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_search_query_is_trimmed_and_bounded() {
        assert_eq!(validate_search_query("  hello ").unwrap(), "hello");
        let long = "x".repeat(SEARCH_QUERY_MAX_CHARS + 1);
        assert_eq!(
            validate_search_query(&long).unwrap_err().code,
            ErrorCode::TooLarge
        );
        assert_eq!(
            validate_search_query("a\u{0}b").unwrap_err().code,
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn a_frame_over_the_byte_limit_is_too_large_before_it_is_parsed() {
        let frame = "x".repeat(FRAME_MAX_BYTES + 1);
        assert_eq!(
            parse_client_frame(&frame).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn garbage_and_unknown_types_are_invalid_frames() {
        for raw in [
            "",
            "not json",
            "[]",
            r#"{"type":"shout","text":"hi"}"#,
            r#"{"text":"hi"}"#,
            r#"{"type":"send","client_id":5,"text":"hi"}"#,
        ] {
            assert_eq!(
                parse_client_frame(raw).unwrap_err().code,
                ErrorCode::InvalidFrame,
                "{raw}"
            );
        }
    }

    #[test]
    fn blank_text_and_control_characters_are_invalid_input() {
        for text in ["", "   \n\t", "bell\u{7}"] {
            let frame = serde_json::json!({"type":"send","client_id":"c","text":text}).to_string();
            assert_eq!(
                parse_client_frame(&frame).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{text:?}"
            );
        }
    }

    #[test]
    fn client_ids_are_short_and_url_safe() {
        assert!(validate_client_id("01HZX-abc_9").is_ok());
        assert!(validate_client_id("").is_err());
        assert!(validate_client_id("has space").is_err());
        assert!(validate_client_id(&"a".repeat(CLIENT_ID_MAX + 1)).is_err());
    }

    #[test]
    fn labels_are_trimmed_and_whitespace_folded() {
        assert_eq!(
            validate_display_name("  Ada \t Lovelace ").unwrap(),
            "Ada Lovelace"
        );
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name("a\u{0}b").is_err());
        assert_eq!(
            validate_display_name(&"x".repeat(DISPLAY_NAME_MAX_CHARS + 1))
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
        assert_eq!(validate_topic("").unwrap(), "");
    }

    #[test]
    fn names_with_bidi_controls_or_invisible_characters_are_refused() {
        for bad in [
            "\u{202E}nnA",         // right-to-left override
            "Ann\u{202C}",         // pop directional formatting
            "\u{2067}Ann\u{2069}", // isolates
            "A\u{200F}nn",         // right-to-left mark
            "A\u{200B}nn",         // zero-width space
            "A\u{200C}nn",         // zero-width non-joiner
            "A\u{200D}nn",         // a joiner between letters
            "A\u{2060}nn",         // word joiner
            "\u{FEFF}Ann",         // byte order mark
            "An\u{00AD}n",         // soft hyphen
            "Ann\u{E0041}",        // a tag character
            "Ann\u{034F}",         // combining grapheme joiner
            "A\u{115F}nn",         // Hangul choseong filler
        ] {
            let error = validate_display_name(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidInput, "{bad:?}");
        }
        // Emoji sequences keep their joiners and selectors.
        assert_eq!(validate_display_name("Ann 👩‍💻").unwrap(), "Ann 👩‍💻");
        assert_eq!(validate_display_name("❤️ Ann").unwrap(), "❤️ Ann");
        // Scripts that need combining marks still work.
        assert_eq!(validate_display_name("Nguyễn").unwrap(), "Nguyễn");
        assert_eq!(validate_display_name("José").unwrap(), "José");
        assert_eq!(validate_display_name("ราชา").unwrap(), "ราชา");
        // Room names and topics are labels too.
        assert!(validate_room_name("Lobby\u{202E}").is_err());
        assert!(validate_topic("news\u{200B}").is_err());
    }

    #[test]
    fn names_that_show_nothing_are_refused() {
        for blank in [
            "\u{3164}", // Hangul filler
            "\u{3164} \u{3164}",
            "\u{2800}",         // braille blank
            "\u{FFA0}",         // halfwidth Hangul filler
            "\u{0301}\u{0301}", // only combining marks
            "\u{3000}",         // ideographic space
        ] {
            assert!(validate_display_name(blank).is_err(), "{blank:?}");
        }
        // Stacked combining marks (\"zalgo\") are not a name either.
        assert!(validate_display_name("A\u{0301}\u{0302}\u{0303}\u{0304}\u{0305}").is_err());
    }

    #[test]
    fn the_assistants_name_is_reserved_in_any_case_or_spacing() {
        for taken in [
            "Assistant",
            "assistant",
            "ASSISTANT",
            " Assistant ",
            "Assistant.",
            "A ssistant",
            "Assistant 🤖",
        ] {
            let error = validate_display_name(taken).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidInput, "{taken:?}");
        }
        for free in ["Assistant Ann", "Ann the assistant", "Assist"] {
            assert!(validate_display_name(free).is_ok(), "{free:?}");
        }
        // Only display names: a room may be called that.
        assert!(validate_room_name("Assistant").is_ok());
    }

    #[test]
    fn slugs_are_lowercase_ascii_with_single_dashes() {
        assert_eq!(slugify("  Rust & WebAssembly!! "), "rust-webassembly");
        assert_eq!(slugify("Café au lait"), "caf-au-lait");
        assert_eq!(slugify("日本語"), "");
        assert!(slugify(&"ab ".repeat(100)).len() <= SLUG_MAX);
        assert!(is_valid_slug("rust-webassembly-2"));
        assert!(!is_valid_slug("Rust"));
        assert!(!is_valid_slug("-a"));
        assert!(!is_valid_slug("a--b"));
        assert!(!is_valid_slug("../x"));
    }

    #[test]
    fn a_room_name_without_letters_or_digits_is_refused() {
        assert!(validate_room_name("日本語").is_err());
        assert!(validate_room_name("!!!").is_err());
        assert_eq!(validate_room_name(" General ").unwrap(), "General");
    }
}
