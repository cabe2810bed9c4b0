//! What a web page says about itself, for a link preview: its Open Graph and Twitter card
//! tags, its description, its `<title>`.
//!
//! A small hand-written scanner rather than an HTML parser: the edge is a wasm Worker whose
//! cold start grows with its size, and a preview only needs a few tags from a page's head. It
//! reads tags and attributes the way browsers tokenise them (any attribute order, single,
//! double or no quotes, any case), skips comments and the contents of `<script>` and
//! `<style>`, and stops at `</head>` or after [`super::ssrf::MAX_BODY_BYTES`].

use serde::{Deserialize, Serialize};
use url::Url;

use super::link::LINK_MAX_BYTES;
use super::name::is_invisible_control;
use super::ssrf::MAX_BODY_BYTES;

/// The longest title kept, in characters (a longer one is cut and ends with "…").
pub const TITLE_MAX: usize = 200;
/// The longest description kept, in characters (a longer one is cut and ends with "…").
pub const DESCRIPTION_MAX: usize = 400;
/// The longest site name kept, in characters.
const SITE_NAME_MAX: usize = 100;

/// What a page says about itself. Every field is optional: a page may say nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PagePreview {
    /// `og:title`, else `twitter:title`, else the `<title>`; whitespace collapsed, at most
    /// [`TITLE_MAX`] characters.
    pub title: Option<String>,
    /// `og:description`, else `twitter:description`, else `description`; at most
    /// [`DESCRIPTION_MAX`] characters.
    pub description: Option<String>,
    /// `og:site_name`.
    pub site_name: Option<String>,
    /// absolute http(s) URL of the page's image, resolved against the page URL
    pub image: Option<String>,
}

/// The first value of each tag the preview reads, as written (entities decoded).
#[derive(Default)]
struct Found {
    og_title: Option<String>,
    twitter_title: Option<String>,
    title: Option<String>,
    og_description: Option<String>,
    twitter_description: Option<String>,
    description: Option<String>,
    site_name: Option<String>,
    /// Image candidates in order of preference: `og:image:secure_url`, `og:image`,
    /// `twitter:image`.
    images: [Option<String>; 3],
}

/// Reads a page's preview from its HTML (the first [`MAX_BODY_BYTES`] of it, up to
/// `</head>`). `page_url` is the URL the page was fetched from (after redirects): relative
/// image URLs resolve against it.
pub fn parse(html: &str, page_url: &Url) -> PagePreview {
    let found = scan(cap_bytes(html, MAX_BODY_BYTES));
    let text = |value: Option<String>, max: usize| value.and_then(|v| clean(&v, max));
    let title = text(found.og_title, TITLE_MAX)
        .or_else(|| text(found.twitter_title, TITLE_MAX))
        .or_else(|| text(found.title, TITLE_MAX));
    let description = text(found.og_description, DESCRIPTION_MAX)
        .or_else(|| text(found.twitter_description, DESCRIPTION_MAX))
        .or_else(|| text(found.description, DESCRIPTION_MAX));
    let image = found
        .images
        .into_iter()
        .flatten()
        .find_map(|raw| resolve_image(&raw, page_url));
    PagePreview {
        title,
        description,
        site_name: text(found.site_name, SITE_NAME_MAX),
        image,
    }
}

/// Walks the markup and collects the tags a preview reads.
fn scan(html: &str) -> Found {
    let b = html.as_bytes();
    let mut found = Found::default();
    let mut i = 0;
    while let Some(offset) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'<'))
    {
        i += offset;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |end| end + 3);
        } else if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            // Doctype, CDATA, processing instruction: up to the next `>`.
            i = find(b, i, b">").map_or(b.len(), |end| end + 1);
        } else if rest.starts_with(b"</") {
            let (name, after) = tag_name(html, i + 2);
            if name.eq_ignore_ascii_case("head") {
                break;
            }
            i = find(b, after, b">").map_or(b.len(), |end| end + 1);
        } else if rest.get(1).is_some_and(u8::is_ascii_alphabetic) {
            let (name, after) = tag_name(html, i + 1);
            let (attributes, end) = attributes(html, after);
            i = end;
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "meta" => meta(&attributes, &mut found),
                // Raw text: nothing inside is a tag, whatever it looks like.
                "script" | "style" | "noscript" | "template" | "textarea" | "xmp" => {
                    i = raw_text_end(html, i, &name);
                }
                "title" => {
                    let close = find_ignore_case(b, i, b"</title").unwrap_or(b.len());
                    if found.title.is_none() {
                        found.title = Some(decode_entities(&html[i..close]));
                    }
                    i = find(b, close, b">").map_or(b.len(), |end| end + 1);
                }
                _ => {}
            }
        } else {
            // A `<` that starts no tag is text.
            i += 1;
        }
    }
    found
}

/// Keeps the first value of each tag the preview reads.
fn meta(attributes: &[(String, String)], found: &mut Found) {
    let get = |key: &str| {
        attributes
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    };
    let Some(content) = get("content") else {
        return;
    };
    // Open Graph uses `property`, Twitter and `description` use `name`; pages mix them up.
    for key in [get("property"), get("name")].into_iter().flatten() {
        let slot = match key.to_ascii_lowercase().as_str() {
            "og:title" => &mut found.og_title,
            "twitter:title" => &mut found.twitter_title,
            "og:description" => &mut found.og_description,
            "twitter:description" => &mut found.twitter_description,
            "description" => &mut found.description,
            "og:site_name" => &mut found.site_name,
            "og:image:secure_url" => &mut found.images[0],
            "og:image" | "og:image:url" => &mut found.images[1],
            "twitter:image" | "twitter:image:src" => &mut found.images[2],
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(content.clone());
        }
    }
}

/// The tag name starting at `i` and where it ends.
fn tag_name(html: &str, i: usize) -> (&str, usize) {
    let b = html.as_bytes();
    let len = b
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| !c.is_ascii_whitespace() && c != b'>' && c != b'/')
        .count();
    (html.get(i..i + len).unwrap_or_default(), i + len)
}

/// A tag's attributes from `i` to its `>`: (lowercased name, decoded value) pairs, and the
/// index after the `>`.
fn attributes(html: &str, mut i: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut found = Vec::new();
    loop {
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b'/')
        {
            i += 1;
        }
        match b.get(i) {
            None => return (found, b.len()),
            Some(b'>') => return (found, i + 1),
            Some(_) => {}
        }
        let start = i;
        // A name runs to whitespace, `/`, `>` or `=`; its first character may be `=`.
        i += 1;
        while b
            .get(i)
            .is_some_and(|&c| !c.is_ascii_whitespace() && !matches!(c, b'/' | b'>' | b'='))
        {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let before_equals = i;
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            // An attribute with no value; what follows is the next attribute.
            i = before_equals;
            found.push((name, String::new()));
            continue;
        }
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let value = match b.get(i) {
            Some(&quote @ (b'"' | b'\'')) => {
                let end = b[i + 1..]
                    .iter()
                    .position(|&c| c == quote)
                    .map_or(b.len(), |p| i + 1 + p);
                let value = &html[i + 1..end];
                i = (end + 1).min(b.len());
                value
            }
            _ => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|&c| !c.is_ascii_whitespace() && c != b'>')
                {
                    i += 1;
                }
                &html[start..i]
            }
        };
        found.push((name, decode_entities(value)));
    }
}

/// Past the end tag that closes a raw-text element opened before `i`.
fn raw_text_end(html: &str, i: usize, name: &str) -> usize {
    let b = html.as_bytes();
    let close = format!("</{name}");
    match find_ignore_case(b, i, close.as_bytes()) {
        Some(at) => find(b, at, b">").map_or(b.len(), |end| end + 1),
        None => b.len(),
    }
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// `needle` must be lowercase.
fn find_ignore_case(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

/// Decodes the character references a title or attribute commonly holds; an unknown or
/// malformed one is left as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // A reference is short; a `;` further away is not its end.
        let end = rest.get(1..).and_then(|r| {
            r.char_indices()
                .take(12)
                .find(|&(_, c)| c == ';')
                .map(|(p, _)| p + 1)
        });
        let decoded = end.and_then(|end| entity(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let numeric = |digits: &str, radix: u32| {
        if digits.is_empty() {
            return None;
        }
        let code = u32::from_str_radix(digits, radix).ok()?;
        // NUL, surrogates and out-of-range numbers decode to the replacement character, as
        // browsers do.
        Some(
            char::from_u32(code)
                .filter(|&c| c != '\0')
                .unwrap_or('\u{FFFD}'),
        )
    };
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{A0}'),
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => numeric(&hex[1..], 16),
            Some(dec) if dec.bytes().all(|c| c.is_ascii_digit()) => numeric(dec, 10),
            _ => None,
        },
    }
}

/// Whitespace collapsed, control and bidi characters dropped, at most `max` characters (the
/// last one "…" when cut). None when nothing is left.
fn clean(text: &str, max: usize) -> Option<String> {
    let text: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|&c| !c.is_control() && !is_invisible_control(c))
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    if text.chars().count() <= max {
        return Some(text);
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    Some(cut)
}

/// The image URL made absolute against the page's, if it is http(s) and not too long.
fn resolve_image(raw: &str, page_url: &Url) -> Option<String> {
    let url = page_url.join(raw.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.as_str().len() <= LINK_MAX_BYTES)
        .then(|| url.into())
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a character boundary.
fn cap_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
