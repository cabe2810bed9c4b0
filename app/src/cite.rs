//! Citations in the assistant's answers: the `[n]` markers of a finished answer become buttons
//! that name their source and open it in context, and what a hover card quotes of it.
//!
//! Safety: the markers are linked in a second pass over the HTML that
//! `shared::markdown::render` already made safe, so the sanitizer itself is not loosened. The
//! pass only touches text between tags (sanitized HTML never has a raw `<` or `>` in text or in
//! an attribute value, so the tags are found unambiguously), leaves the text inside `<a>`,
//! `<code>` and `<pre>` alone, and replaces nothing but a marker made of digits, commas and
//! spaces whose every number is one of the answer's citations. What it inserts is markup of its
//! own whose only variable parts are those digits and the escaped label. Pure, so it is tested
//! natively.

use shared::protocol::{Citation, Millis};

/// Elements whose text is never linked: a link inside a link is invalid, and code is quoted.
const SKIP: [&str; 3] = ["a", "code", "pre"];

/// "Source 1: Ann, 2026-03-02": the accessible name of citation `c`'s buttons.
pub fn label(c: &Citation, day: &dyn Fn(Millis) -> String) -> String {
    format!("Source {}: {}, {}", c.n, c.author, day(c.at))
}

/// `html` (sanitized answer HTML) with each citation marker (`[1]`, `[1, 3]`) turned into
/// buttons `<button class="cite-ref" data-n>` named by [`label`]. Markers naming a number that
/// is not among `citations` stay text.
pub fn link_citations(
    html: &str,
    citations: &[Citation],
    day: &dyn Fn(Millis) -> String,
) -> String {
    if citations.is_empty() {
        return html.to_owned();
    }
    let mut out = String::with_capacity(html.len() + citations.len() * 96);
    let mut skip = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |i| i + 1);
            let tag = &rest[..end];
            let (closing, name) = match tag[1..].strip_prefix('/') {
                Some(after) => (true, after),
                None => (false, &tag[1..]),
            };
            let name: String = name
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase();
            if SKIP.contains(&name.as_str()) {
                skip = if closing {
                    skip.saturating_sub(1)
                } else {
                    skip + 1
                };
            }
            out.push_str(tag);
            rest = &rest[end..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            if skip == 0 {
                link_text(text, citations, day, &mut out);
            } else {
                out.push_str(text);
            }
            rest = &rest[end..];
        }
    }
    out
}

/// One text run: markers linked, everything else copied as it is.
fn link_text(text: &str, citations: &[Citation], day: &dyn Fn(Millis) -> String, out: &mut String) {
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match marker(after) {
            Some((len, numbers)) if numbers.iter().all(|n| find(citations, *n).is_some()) => {
                out.push_str(r#"<span class="cite">["#);
                // Between the numbers: the marker's own commas and spaces.
                for (i, part) in after[1..len - 1].split(',').enumerate() {
                    let digits = part.trim_matches(' ');
                    let lead = &part[..part.len() - part.trim_start_matches(' ').len()];
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(lead);
                    if let Some(c) = digits.parse().ok().and_then(|n| find(citations, n)) {
                        out.push_str(&format!(
                            r#"<button type="button" class="cite-ref" data-n="{n}" aria-label="{}">{n}</button>"#,
                            shared::markdown::escape_attr(&label(c, day)),
                            n = c.n,
                        ));
                    }
                    out.push_str(&part[lead.len() + digits.len()..]);
                }
                out.push_str("]</span>");
                rest = &after[len..];
            }
            _ => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

/// A marker at the start of `s`: `[` numbers separated by commas (and spaces) `]`; its length
/// in bytes and its numbers.
fn marker(s: &str) -> Option<(usize, Vec<u32>)> {
    // Only a short run is looked at: a long text of `[`s stays linear.
    let close = s.bytes().take(42).position(|b| b == b']')?;
    let inner = &s[1..close];
    if inner.is_empty() {
        return None;
    }
    let numbers = inner
        .split(',')
        .map(|part| {
            let digits = part.trim_matches(' ');
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            digits.parse().ok()
        })
        .collect::<Option<Vec<u32>>>()?;
    Some((close + 1, numbers))
}

/// The citation numbered `n`.
pub fn find(citations: &[Citation], n: u32) -> Option<&Citation> {
    citations.iter().find(|c| c.n == n)
}

/// What a hover card quotes of a message: its text on one line, at most about 160 characters.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 160;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= MAX {
        return line;
    }
    let cut: String = line.chars().take(MAX).collect();
    // End at a word if one ends in the last quarter.
    let cut = match cut.rfind(' ') {
        Some(i) if i > MAX * 3 / 4 => cut[..i].to_owned(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::markdown::render;

    fn cite(n: u32, seq: u64, author: &str) -> Citation {
        Citation {
            n,
            seq,
            author: author.into(),
            at: 0,
            thread: None,
        }
    }

    fn day(_: Millis) -> String {
        "2026-03-02".into()
    }

    fn linked(source: &str, citations: &[Citation]) -> String {
        link_citations(&render(source), citations, &day)
    }

    #[test]
    fn a_marker_becomes_a_button_named_by_its_source_and_the_text_reads_the_same() {
        let html = linked("Lunch moved to Friday [1].", &[cite(1, 7, "Ann")]);
        assert!(
            html.contains(r#"<span class="cite">[<button type="button" class="cite-ref" data-n="1" aria-label="Source 1: Ann, 2026-03-02">1</button>]</span>"#),
            "{html}"
        );
        assert!(html.starts_with("<p>Lunch moved to Friday "), "{html}");
        assert!(html.ends_with("</span>.</p>\n"), "{html}");
    }

    #[test]
    fn each_number_of_a_combined_marker_is_its_own_button() {
        let html = linked(
            "- decided [1, 3]\n- asked [2][3]",
            &[cite(1, 4, "Ann"), cite(2, 5, "Bob"), cite(3, 9, "Cy")],
        );
        assert_eq!(html.matches("<button").count(), 4, "{html}");
        assert!(
            html.contains(
                r#"data-n="1" aria-label="Source 1: Ann, 2026-03-02">1</button>, <button"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"data-n="3" aria-label="Source 3: Cy, 2026-03-02">3</button>]</span>"#),
            "{html}"
        );
    }

    #[test]
    fn markers_without_citations_or_with_an_unknown_number_stay_text() {
        assert_eq!(linked("see [1]", &[]), render("see [1]"));
        let html = linked("see [2] and [1, 9] and [x] and [", &[cite(1, 4, "Ann")]);
        assert!(!html.contains("<button"), "{html}");
        assert!(html.contains("see [2] and [1, 9] and [x] and ["), "{html}");
    }

    #[test]
    fn markers_inside_code_and_links_are_left_alone() {
        let html = linked(
            "`arr[1]` and\n\n```\nx[1]\n```\n\n[link [1]](https://e.com/[1]) then [1]",
            &[cite(1, 4, "Ann")],
        );
        assert_eq!(html.matches("<button").count(), 1, "{html}");
        assert!(html.contains("<code>arr[1]</code>"), "{html}");
        assert!(html.contains(r#"href="https://e.com/[1]""#), "{html}");
    }

    #[test]
    fn an_author_name_cannot_break_out_of_the_label_attribute() {
        let html = linked("x [1]", &[cite(1, 4, r#"Ann" onmouseover="alert(1)<b>"#)]);
        assert!(!html.contains(r#"" onmouseover"#), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("Ann&quot; onmouseover=&quot;alert(1)&lt;b&gt;"),
            "{html}"
        );
    }

    #[test]
    fn raw_html_in_an_answer_stays_escaped_after_linking() {
        let html = linked("<img src=x onerror=alert(1)> [1]", &[cite(1, 4, "Ann")]);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img"), "{html}");
        assert_eq!(html.matches("<button").count(), 1, "{html}");
    }

    #[test]
    fn an_excerpt_is_one_line_and_cut_at_a_word_near_160_characters() {
        assert_eq!(excerpt("two\n\nlines  here"), "two lines here");
        let long = "word ".repeat(60);
        let cut = excerpt(&long);
        assert!(cut.ends_with("word…"), "{cut}");
        assert!(cut.chars().count() <= 161, "{cut}");
    }
}
