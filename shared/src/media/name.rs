//! An attachment's file name as shown and as sent in `Content-Disposition`. The name is the
//! uploader's text: it never decides the type (see [`super::sniff`]), and here it is made safe
//! to show, to save on any desktop, and to put in a header.

/// The longest name kept, in characters (the extension is kept when a name is cut).
pub const NAME_MAX_CHARS: usize = 120;

/// An extension longer than this is not treated as one when a long name is cut.
const EXTENSION_MAX_CHARS: usize = 16;

/// Windows device names: a file called `CON.txt` cannot be saved there, and opening one can
/// hang a program.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file name safe to show and to save: the last path component only (both `/` and `\`), no
/// control characters, no bidi controls (which make `a\u{202E}gnp.exe` look like `aexe.png`),
/// quotes and `;<>:*?|` replaced with `_`, whitespace collapsed to single spaces, dots and
/// spaces trimmed from the ends, Windows device names (`CON`, `NUL`, `COM1`, …) prefixed with
/// `_`, and at most [`NAME_MAX_CHARS`] characters, keeping the extension. An empty result is
/// `file`. Applying it twice changes nothing more.
pub fn sanitize_file_name(raw: &str) -> String {
    // The last component that is not empty: `dir/` names `dir`, `../../etc/passwd` names
    // `passwd`.
    let last = raw
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or_default();
    let mut name = String::with_capacity(last.len());
    let mut space = false;
    for c in last.chars() {
        if c.is_whitespace() {
            // CR and LF are whitespace too: they become a space, so a name cannot split a
            // header line.
            space = true;
            continue;
        }
        if c.is_control() || is_invisible_control(c) {
            continue;
        }
        if space && !name.is_empty() {
            name.push(' ');
        }
        space = false;
        name.push(if is_forbidden(c) { '_' } else { c });
    }
    let mut name = trim_ends(&name).to_owned();
    if name.is_empty() {
        return "file".to_owned();
    }
    // Windows reads `CON.txt` and `con .tar.gz` as the device too. Prefixed before the cap, so
    // the prefix is counted in the length and a second pass finds nothing to change.
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        name.insert(0, '_');
    }
    if name.chars().count() > NAME_MAX_CHARS {
        name = shorten(&name);
    }
    name
}

/// A `Content-Disposition` header value: `inline` or `attachment`, an ASCII `filename` for old
/// clients (every non-ASCII character and `%` replaced with `_`) and a UTF-8 `filename*`
/// (RFC 6266, RFC 5987). The name is sanitised first, so whatever is passed cannot break out of
/// the header.
pub fn content_disposition(name: &str, inline: bool) -> String {
    let name = sanitize_file_name(name);
    let fallback: String = name
        .chars()
        .map(|c| {
            // `%` too: some browsers percent-decode the plain `filename`.
            if c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '%') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for &b in name.as_bytes() {
        if is_attr_char(b) {
            encoded.push(char::from(b));
        } else {
            encoded.push('%');
            encoded.push(hex(b >> 4));
            encoded.push(hex(b & 0xF));
        }
    }
    let disposition = if inline { "inline" } else { "attachment" };
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Bidi embeddings, overrides and isolates (U+202A–202E, U+2066–2069) and the directional
/// marks (U+200E, U+200F, U+061C): invisible characters that reorder what is shown, so a name
/// can look like another. Also used for link preview text.
pub(crate) fn is_invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Characters Windows refuses in names, plus `;` and `"` which would end a header parameter.
fn is_forbidden(c: char) -> bool {
    matches!(c, '"' | ';' | '<' | '>' | ':' | '*' | '?' | '|')
}

fn trim_ends(name: &str) -> &str {
    name.trim_matches(|c| c == '.' || c == ' ')
}

/// Cuts a name to [`NAME_MAX_CHARS`] characters, keeping a short extension.
fn shorten(name: &str) -> String {
    let extension = name
        .rsplit_once('.')
        .filter(|(stem, ext)| {
            !stem.is_empty() && !ext.is_empty() && ext.chars().count() <= EXTENSION_MAX_CHARS
        })
        .map(|(_, ext)| ext);
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    match extension {
        Some(ext) => {
            let keep = NAME_MAX_CHARS - ext.chars().count() - 1;
            let stem = cut(name, keep);
            let stem = trim_ends(&stem);
            if stem.is_empty() {
                ext.to_owned()
            } else {
                format!("{stem}.{ext}")
            }
        }
        None => trim_ends(&cut(name, NAME_MAX_CHARS)).to_owned(),
    }
}

/// RFC 5987 `attr-char`: sent as is; everything else is percent-encoded.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn hex(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0xF)])
}
