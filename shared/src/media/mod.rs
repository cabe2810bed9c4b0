//! Attachments and link previews: what a file is (by its bytes, never its name), how its
//! metadata is removed on the way to storage, how its name is shown, and which URLs the edge may
//! fetch for a preview. Pure functions over bytes and strings; the edge streams through them.

use serde::{Deserialize, Serialize};

pub mod link;
#[cfg(feature = "server")]
pub mod name;
#[cfg(feature = "server")]
pub mod preview;
#[cfg(feature = "server")]
pub mod scrub;
#[cfg(feature = "server")]
pub mod sniff;
#[cfg(feature = "server")]
pub mod ssrf;

/// What kind of file an attachment is, as its content says. Decides how it is shown (inline
/// image, player, or a download card) and what `has:` search finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// PNG, JPEG, WebP, GIF, AVIF.
    Image,
    /// MP4, WebM.
    Video,
    /// MP3, Ogg, WAV, M4A.
    Audio,
    /// PDF.
    Pdf,
    /// Plain UTF-8 text.
    Text,
    /// ZIP (and formats built on it).
    Archive,
    /// Anything else, served as `application/octet-stream`.
    File,
}
