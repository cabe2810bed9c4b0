//! The link in a message that gets a preview. Used by the app (to show a placeholder while the
//! preview loads) and the edge (to fetch it), so both agree on which link it is.

/// The longest link that gets a preview, in bytes. A longer one is skipped, not cut: a cut URL
/// is another URL.
pub const LINK_MAX_BYTES: usize = 2_048;

/// Characters that end a sentence rather than a URL when they trail a bare link. `)` is handled
/// apart: it stays when it closes a `(` inside the URL.
const TRAILING_PUNCTUATION: &[u8] = b".,;:!?'\"*_~";

/// The first http(s) link a message's markdown shows, the one that gets a preview. Not inside
/// inline code or fenced code blocks; bare URLs and `[text](url)` / `<url>` forms; trailing
/// punctuation `.,;:!?)` not part of a bare URL (balanced parens kept); at most 2,048 bytes.
///
/// An image (`![alt](url)`) counts as a link: the app shows images as links. Indented code
/// blocks are not recognised (a bare URL in one still counts).
pub fn first_link(markdown: &str) -> Option<&str> {
    // Prose between fenced code blocks is scanned a stretch at a time, so a code span may run
    // across lines (as CommonMark allows) but never into or out of a fence.
    let mut fence: Option<(u8, usize)> = None;
    let mut prose_start = 0;
    let mut at = 0;
    for line in markdown.split_inclusive('\n') {
        let line_start = at;
        at += line.len();
        match fence {
            Some((mark, len)) => {
                if closes_fence(line, mark, len) {
                    fence = None;
                    prose_start = at;
                }
            }
            None => {
                if let Some(opened) = opens_fence(line) {
                    if let Some(link) = markdown.get(prose_start..line_start).and_then(scan_inline)
                    {
                        return Some(link);
                    }
                    fence = Some(opened);
                }
            }
        }
    }
    // An unclosed fence runs to the end of the message.
    match fence {
        Some(_) => None,
        None => markdown.get(prose_start..).and_then(scan_inline),
    }
}

/// Up to three spaces, then three or more backticks or tildes: (the mark, how many).
fn opens_fence(line: &str) -> Option<(u8, usize)> {
    let rest = strip_indent(line)?;
    let mark = *rest.as_bytes().first()?;
    if mark != b'`' && mark != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|&b| b == mark).count();
    // A backtick fence's info string cannot hold a backtick (it would be a code span).
    let info_ok = mark == b'~' || !rest[len..].contains('`');
    (len >= 3 && info_ok).then_some((mark, len))
}

/// The same mark at least as many times, then nothing but whitespace.
fn closes_fence(line: &str, mark: u8, len: usize) -> bool {
    let Some(rest) = strip_indent(line) else {
        return false;
    };
    let run = rest.bytes().take_while(|&b| b == mark).count();
    run >= len && rest[run..].trim().is_empty()
}

fn strip_indent(line: &str) -> Option<&str> {
    let spaces = line.bytes().take_while(|&b| b == b' ').count();
    (spaces <= 3).then(|| &line[spaces..])
}

/// The first link in a stretch of prose, skipping code spans.
fn scan_inline(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // An escaped character is literal text: `\[` opens no link.
                i += if b.get(i + 1).is_some_and(u8::is_ascii_punctuation) {
                    2
                } else {
                    1
                };
            }
            b'`' => i = skip_code_span(b, i),
            b'<' => {
                if let Some(link) = autolink(text, i) {
                    return Some(link);
                }
                i += 1;
            }
            b'[' => match inline_link(text, i) {
                Some((dest, end)) => {
                    if is_web_link(dest) {
                        return Some(dest);
                    }
                    // A link to something else (`mailto:`, a relative path): its text is
                    // shown as that link, so no bare URL inside it is a link either.
                    i = end;
                }
                None => i += 1,
            },
            b'h' | b'H' if i == 0 || !b[i - 1].is_ascii_alphanumeric() => match bare_url(text, i) {
                Some(url) if is_web_link(url) => return Some(url),
                Some(url) => i += url.len().max(1),
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    None
}

/// Past a code span that opens at `i`; past the backticks alone if nothing closes it.
fn skip_code_span(b: &[u8], i: usize) -> usize {
    let run = b[i..].iter().take_while(|&&c| c == b'`').count();
    let mut j = i + run;
    while j < b.len() {
        if b[j] == b'`' {
            let close = b[j..].iter().take_while(|&&c| c == b'`').count();
            if close == run {
                return j + close;
            }
            j += close;
        } else {
            j += 1;
        }
    }
    i + run
}

/// `<https://…>`: the URL, if the angle brackets hold one with no spaces.
fn autolink(text: &str, i: usize) -> Option<&str> {
    let rest = text.get(i + 1..)?;
    let end = rest.find(['>', '<', ' ', '\t', '\n', '\r'])?;
    let url = &rest[..end];
    (rest.as_bytes()[end] == b'>' && is_web_link(url)).then_some(url)
}

/// `[text](dest)`, `[text](<dest>)`, `[text](dest "title")`, `![alt](dest)` at `i` (the `[`):
/// the destination and where the construct ends.
fn inline_link(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    // The matching `]`, allowing nested brackets; a blank line ends a paragraph and any link.
    let mut depth = 0usize;
    let mut j = i;
    let close = loop {
        match b.get(j)? {
            b'\\' => j += 1,
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    break j;
                }
            }
            b'\n'
                if text
                    .get(j + 1..)?
                    .trim_start_matches([' ', '\t'])
                    .starts_with('\n') =>
            {
                return None;
            }
            _ => {}
        }
        j += 1;
    };
    if b.get(close + 1) != Some(&b'(') {
        return None;
    }
    let open = close + 2;
    let start = skip_whitespace(b, open);
    let (dest, after) = if b.get(start) == Some(&b'<') {
        let len = text.get(start + 1..)?.find(['>', '\n'])?;
        if b[start + 1 + len] != b'>' {
            return None;
        }
        (&text[start + 1..start + 1 + len], start + len + 2)
    } else {
        let mut parens = 0usize;
        let mut k = start;
        while let Some(&c) = b.get(k) {
            match c {
                b'(' => parens += 1,
                b')' if parens == 0 => break,
                b')' => parens -= 1,
                c if c.is_ascii_whitespace() || c.is_ascii_control() => break,
                _ => {}
            }
            k += 1;
        }
        (&text[start..k], k)
    };
    // An optional title in quotes or parentheses, then the closing parenthesis; anything else
    // means this was not a link after all.
    let mut k = skip_whitespace(b, after);
    if let Some(&quote) = b.get(k).filter(|&&c| matches!(c, b'"' | b'\'' | b'(')) {
        if k == after {
            return None;
        }
        let closing = if quote == b'(' { b')' } else { quote };
        k += 1 + b.get(k + 1..)?.iter().position(|&c| c == closing)? + 1;
        k = skip_whitespace(b, k);
    }
    (b.get(k) == Some(&b')')).then_some((dest, k + 1))
}

fn skip_whitespace(b: &[u8], from: usize) -> usize {
    from + b
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count()
}

/// Whether `b` starts with `prefix`, ignoring ASCII case.
fn starts_with_ignore_case(b: &[u8], prefix: &[u8]) -> bool {
    b.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// A bare `http://` or `https://` URL at `i`, without the punctuation that ends its sentence.
fn bare_url(text: &str, i: usize) -> Option<&str> {
    let rest = text.get(i..)?;
    let bytes = rest.as_bytes();
    if !starts_with_ignore_case(bytes, b"http://") && !starts_with_ignore_case(bytes, b"https://") {
        return None;
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '<' || c.is_control())
        .unwrap_or(rest.len());
    let mut url = &rest[..end];
    while let Some(&last) = url.as_bytes().last() {
        let trimmed = if TRAILING_PUNCTUATION.contains(&last) {
            true
        } else if last == b')' {
            // `(see https://x.y/a_(b))`: one `)` belongs to the URL, the other to the prose.
            let opened = url.bytes().filter(|&c| c == b'(').count();
            let closed = url.bytes().filter(|&c| c == b')').count();
            closed > opened
        } else {
            false
        };
        if !trimmed {
            break;
        }
        url = &url[..url.len() - 1];
    }
    Some(url)
}

/// An absolute http(s) URL with a host, short enough to preview.
fn is_web_link(url: &str) -> bool {
    let b = url.as_bytes();
    let rest = if starts_with_ignore_case(b, b"https://") {
        &b[8..]
    } else if starts_with_ignore_case(b, b"http://") {
        &b[7..]
    } else {
        return false;
    };
    let host_starts = rest
        .first()
        .is_some_and(|&c| !matches!(c, b'/' | b'?' | b'#' | b'\\'));
    url.len() <= LINK_MAX_BYTES && host_starts
}
