//! Markdown to safe HTML for message bodies.
//!
//! Safety comes from what is never emitted rather than from cleaning afterwards: raw HTML in the
//! source is turned into escaped text, link and image targets must use an allowed scheme, and
//! images become links (a message cannot make every reader's browser fetch a tracker). This
//! gives the safety of a sanitizer such as ammonia at a fraction of its wasm size (see
//! ARCHITECTURE.md).

use pulldown_cmark::{html, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Link schemes a message may use. Relative links stay within the app.
const ALLOWED_SCHEMES: [&str; 3] = ["http:", "https:", "mailto:"];

/// Whether a link target is safe to put in `href`.
pub fn is_safe_url(url: &str) -> bool {
    // Read the target as a browser's URL parser does: controls and spaces around it are
    // trimmed, tabs and newlines anywhere are dropped, and in an http(s) page's links `\` is
    // `/` (so `/\host` is protocol-relative too).
    let lower: String = url
        .trim_matches(|c: char| c <= ' ' || c.is_whitespace())
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| {
            if c == '\\' {
                '/'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    // Anything before the first '/', '?' or '#' that contains ':' is a scheme.
    let scheme_end = lower.find([':', '/', '?', '#']);
    match scheme_end {
        Some(i) if lower.as_bytes()[i] == b':' => {
            ALLOWED_SCHEMES.iter().any(|s| lower.starts_with(s))
        }
        // Protocol-relative ("//host") leaves the app; refuse it like an unknown scheme.
        _ => !lower.starts_with("//"),
    }
}

/// Renders message markdown to HTML that is safe to insert into the page.
pub fn render(source: &str) -> String {
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut in_image = 0usize;
    let events = Parser::new_ext(source, options).flat_map(|event| -> Vec<Event<'_>> {
        match event {
            // Raw HTML is shown as the text it is.
            Event::Html(raw) | Event::InlineHtml(raw) => vec![Event::Text(raw)],
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            }) => {
                let href = if is_safe_url(&dest_url) {
                    escape_attr(&dest_url)
                } else {
                    String::from("#")
                };
                let title = if title.is_empty() {
                    String::new()
                } else {
                    format!(r#" title="{}""#, escape_attr(&title))
                };
                let _ = link_type == LinkType::Email;
                vec![Event::InlineHtml(CowStr::from(format!(
                    r#"<a href="{href}"{title} rel="noopener noreferrer nofollow ugc" target="_blank">"#
                )))]
            }
            Event::End(TagEnd::Link) => vec![Event::InlineHtml(CowStr::Borrowed("</a>"))],
            // pulldown-cmark names the language by the info string up to its first space; a
            // tab or form feed before that would start a second class on the code element
            // (any class the app's stylesheet knows). Keep the first word only.
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let lang = info.split(char::is_whitespace).next().unwrap_or_default();
                vec![Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(
                    CowStr::from(lang.to_owned()),
                )))]
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                in_image += 1;
                let href = if is_safe_url(&dest_url) {
                    escape_attr(&dest_url)
                } else {
                    String::from("#")
                };
                vec![Event::InlineHtml(CowStr::from(format!(
                    r#"<a class="image-link" href="{href}" rel="noopener noreferrer nofollow ugc" target="_blank">🖼 "#
                )))]
            }
            Event::End(TagEnd::Image) => {
                in_image = in_image.saturating_sub(1);
                vec![Event::InlineHtml(CowStr::Borrowed("</a>"))]
            }
            other => vec![other],
        }
    });
    let mut out = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Escapes text for an HTML attribute value (also safe as element text).
pub fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_rendered() {
        let html = render("**bold** _it_ `code` ~~gone~~");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<em>it</em>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("<del>gone</del>"));
    }

    #[test]
    fn raw_html_never_reaches_the_dom() {
        for source in [
            "<script>alert(1)</script>",
            "hi <img src=x onerror=alert(1)>",
            "<div>\n<iframe src=\"https://evil\"></iframe>\n</div>",
        ] {
            let html = render(source);
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<iframe"), "{html}");
            assert!(html.contains("&lt;"), "{html}");
        }
    }

    #[test]
    fn links_get_rel_noopener_nofollow_and_open_in_a_new_tab() {
        let html = render("[site](https://example.com \"T\")");
        assert!(html.contains(r#"href="https://example.com""#), "{html}");
        assert!(html.contains("noopener"), "{html}");
        assert!(html.contains("nofollow"), "{html}");
        assert!(html.contains(r#"title="T""#), "{html}");
    }

    #[test]
    fn script_and_data_urls_are_neutralized() {
        for source in [
            "[x](javascript:alert(1))",
            "[x]( JAVASCRIPT:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "<javascript:alert(1)>",
        ] {
            let html = render(source).to_ascii_lowercase();
            assert!(html.contains(r##"href="#""##), "{html}");
            for scheme in ["javascript:", "data:", "vbscript:"] {
                assert!(!html.contains(&format!(r#"href="{scheme}"#)), "{html}");
                assert!(!html.contains(&format!(r#"href=" {scheme}"#)), "{html}");
            }
        }
    }

    #[test]
    fn images_become_links_so_no_remote_fetch_happens() {
        let html = render("![cat](https://example.com/cat.png)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(r#"href="https://example.com/cat.png""#),
            "{html}"
        );
    }

    #[test]
    fn attribute_values_cannot_break_out_of_their_quotes() {
        let html = render(r#"[x](https://a.com/"onmouseover="alert(1))"#);
        assert!(!html.contains(r#"" onmouseover"#), "{html}");
    }

    #[test]
    fn safe_urls_are_recognized() {
        assert!(is_safe_url("https://example.com"));
        assert!(is_safe_url("mailto:a@b.c"));
        assert!(is_safe_url("/r/general"));
        assert!(is_safe_url("#top"));
        assert!(!is_safe_url("//evil.com"));
        assert!(!is_safe_url("javascript:x"));
        assert!(!is_safe_url("  javascript:x"));
        assert!(!is_safe_url("file:///etc/passwd"));
    }
}
