//! Search queries under random input (issue 9, item 7): whatever someone types in the search
//! box, [`validate_search_query`] and [`parse_query`] answer without panicking, a refusal has
//! its code, and the FTS5 `MATCH` expression built from an accepted query is only quoted
//! strings (an optional `*` after the last), so nothing typed is ever FTS5 syntax.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

use common::{any_string, config};
use proptest::prelude::*;
use shared::error::ErrorCode;
use shared::limits::{validate_search_query, SEARCH_QUERY_MAX_CHARS};
use shared::search::{
    flags, parse_day, parse_query, snippet_parts, Term, FLAG_ATTACHMENT, FLAG_LINK, MARK_END,
    MARK_START,
};

const DAY_MS: i64 = 86_400_000;

/// Reads an FTS5 expression made only of strings: `"…"` (a quote inside doubled), each
/// perhaps followed by `*`, separated by one space. Returns each string's text and whether it
/// is a prefix, or why the expression is something else.
fn fts_strings(expr: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    loop {
        if chars.next() != Some('"') {
            return Err(format!("a term does not start with a quote in {expr:?}"));
        }
        let mut text = String::new();
        loop {
            match chars.next() {
                Some('"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    text.push('"');
                }
                Some('"') => break,
                Some(c) => text.push(c),
                None => return Err(format!("an unclosed string in {expr:?}")),
            }
        }
        let prefix = chars.peek() == Some(&'*');
        if prefix {
            chars.next();
        }
        out.push((text, prefix));
        match chars.next() {
            None => return Ok(out),
            Some(' ') => {}
            Some(c) => return Err(format!("{c:?} outside a string in {expr:?}")),
        }
    }
}

/// Search-box input: words, quotes, filters (valid and not), FTS5 operators and punctuation.
fn query() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => "[a-zA-Z0-9éü]{1,8}",
        2 => prop::sample::select(vec![
            "AND", "OR", "NOT", "NEAR", "NEAR(a b, 2)", "a*", "*", "^x", "col:x", "{a b}:x",
            "-x", "+x", "(", ")", "\"", "\"\"", "'", ":", "::", "a:b:c", "\u{0}", "\u{2}", "\t",
            "from:", "from:ann", "from:\"Ann Lee\"", "FROM:x", "in:thread", "in:dms",
            "has:link", "has:gif", "has:", "after:2026-01-31", "after:2026-02-30",
            "before:9999-12-31", "on:2024-02-29", "on:2025-02-29", "since:1970-01-01",
            "until:2026-1-1", "after:+2026-01-01", "after:-1-01-01", "on:99999999999999999999-1-1",
            "after:2026-01-01-01", "🎉", "日本語", "é\u{301}",
        ]).prop_map(str::to_owned),
        1 => "\\PC{1,6}",
    ];
    let sep = prop::sample::select(vec![" ", " ", "  ", "\u{3000}", "\u{a0}", "", "\""]);
    prop::collection::vec((token, sep), 0..10)
        .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
}

fn check(raw: &str) -> Result<(), TestCaseError> {
    let query = match validate_search_query(raw) {
        Ok(query) => query,
        Err(e) => {
            prop_assert!(
                matches!(e.code, ErrorCode::TooLarge | ErrorCode::InvalidInput),
                "{:?}",
                e
            );
            let too_long = raw.trim().chars().count() > SEARCH_QUERY_MAX_CHARS;
            let control = raw.trim().chars().any(char::is_control);
            prop_assert!(too_long || control, "{:?} refused: {:?}", raw, e);
            return Ok(());
        }
    };
    prop_assert!(query.chars().count() <= SEARCH_QUERY_MAX_CHARS);
    prop_assert!(!query.chars().any(char::is_control));
    let parsed = match parse_query(query) {
        Ok(parsed) => parsed,
        Err(e) => {
            prop_assert_eq!(e.code, ErrorCode::InvalidInput, "{}", e);
            prop_assert!(!e.message.is_empty());
            return Ok(());
        }
    };
    let _ = (parsed.text(), parsed.is_empty(), parsed.is_filtered());
    for term in &parsed.terms {
        let (Term::Word(t) | Term::Phrase(t)) = term;
        prop_assert!(t.chars().any(char::is_alphanumeric), "{:?}", term);
    }
    match parsed.fts_match() {
        None => prop_assert!(parsed.terms.is_empty()),
        Some(expr) => {
            let strings = fts_strings(&expr).map_err(TestCaseError::fail)?;
            prop_assert_eq!(strings.len(), parsed.terms.len(), "{}", expr);
            let last = strings.len() - 1;
            for (i, ((text, prefix), term)) in strings.iter().zip(&parsed.terms).enumerate() {
                let (Term::Word(t) | Term::Phrase(t)) = term;
                prop_assert_eq!(text, t);
                prop_assert_eq!(
                    *prefix,
                    i == last && matches!(term, Term::Word(_)),
                    "{}",
                    expr
                );
            }
        }
    }
    if let (Some(after), Some(before)) = (parsed.after, parsed.before) {
        prop_assert!(after % DAY_MS == 0 && before % DAY_MS == 0);
    }
    Ok(())
}

/// Days from 1970-01-01 to `y-m-d`, counted the slow way (an oracle for `parse_day`).
fn days_since_epoch(y: i64, m: i64, d: i64) -> i64 {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = |y: i64, m: i64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let years: i64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months: i64 = (1..m).map(|m| month_days(y, m)).sum();
    years + months + d - 1
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn a_typed_query_is_refused_with_its_code_or_becomes_only_quoted_fts5_strings(
        raw in query()
    ) {
        check(&raw)?;
    }

    #[test]
    fn any_text_is_refused_with_its_code_or_becomes_only_quoted_fts5_strings(
        raw in any_string()
    ) {
        check(&raw)?;
    }

    #[test]
    fn a_calendar_day_parses_to_its_midnight_and_anything_else_to_nothing(
        y in 1900i64..10100, m in -1i64..14, d in -1i64..33,
    ) {
        let text = format!("{y:04}-{m:02}-{d:02}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let valid = (1970..=9999).contains(&y) && (1..=12).contains(&m) && (1..=month_days).contains(&d);
        let expected = valid.then(|| days_since_epoch(y, m, d) * DAY_MS);
        prop_assert_eq!(parse_day(&text), expected, "{}", text);
    }

    #[test]
    fn any_day_text_parses_without_panicking(text in "[-+0-9 ]{0,24}|\\PC{0,16}") {
        if let Some(ms) = parse_day(&text) {
            prop_assert!(ms >= 0 && ms % DAY_MS == 0);
        }
    }

    #[test]
    fn snippet_parts_keep_every_character_but_the_markers(snippet in any_string()) {
        let joined: String = snippet_parts(&snippet).iter().map(|(s, _)| *s).collect();
        let expected: String = snippet.chars().filter(|c| *c != MARK_START && *c != MARK_END).collect();
        prop_assert_eq!(joined, expected);
    }
}

#[test]
fn fts5_operators_typed_in_a_query_stay_inside_strings() {
    for (raw, expected) in [
        (r#"a OR b"#, r#""a" "OR" "b"*"#),
        (r#"NEAR(a b, 2)"#, r#""NEAR(a" "b," "2)"*"#),
        (r#"x" OR "y"#, r#""x OR " "y"*"#),
        (r#"{a b}:x ^y"#, r#""{a" "b}:x" "^y"*"#),
        (r#"say "it "" loud"#, r#""say" "it " " loud""#),
    ] {
        let parsed = parse_query(raw).unwrap();
        assert_eq!(parsed.fts_match().as_deref(), Some(expected), "{raw}");
        assert!(fts_strings(expected).is_ok());
    }
    // The reader itself refuses what is not only strings.
    for bad in [r#""a" OR "b""#, r#""a"#, r#"a"#, r#""a"  "b""#, r#""a"**"#] {
        assert!(fts_strings(bad).is_err(), "{bad}");
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    /// The one-pass [`flags`] says what its plain definition says, for texts full of near
    /// misses (`htp://`, `WWW`, `!]`, `[(`) and for any text.
    #[test]
    fn a_message_is_flagged_as_its_plain_definition_says(
        text in prop_oneof![
            "[hHtTpPsS:/wW.!\\[\\]() xé]{0,30}",
            any_string(),
        ]
    ) {
        let lower = text.to_ascii_lowercase();
        let link = lower.contains("http://") || lower.contains("https://") || lower.contains("www.");
        let attachment = text.contains("![") && text.contains("](");
        let expected = (if link { FLAG_LINK } else { 0 }) | (if attachment { FLAG_ATTACHMENT } else { 0 });
        prop_assert_eq!(flags(&text), expected, "{:?}", text);
    }
}
