//! Search, the pure parts: the query language, its translation into a safe FTS5 `MATCH`
//! expression, the message flags the filters use, snippet markers, and the ranking merges
//! (across rooms, and of full-text with semantic hits in production).
//!
//! Query language (issue 5): words and `"quoted phrases"` (all must match; the last word also
//! matches as a prefix, for search-as-you-type), and filters `from:name` (or `from:"Ann Lee"`),
//! `in:thread`, `has:link`, `has:attachment` (or `has:file`: any file, or an embedded image
//! link), `has:image` (an attached image), `tag:label` (an attached image the classifier labelled
//! so, matched by whole words: `tag:cat` finds "tabby cat"), `after:YYYY-MM-DD`,
//! `before:YYYY-MM-DD` (UTC days; `after` includes its day, `before` excludes its day),
//! `on:YYYY-MM-DD`.

use crate::error::{ChatError, ErrorCode};
use crate::protocol::http::SearchHit;
use crate::protocol::{Millis, Seq};

/// Marks the start of a matched term in a snippet (a control character, which message text may
/// not contain, so it cannot be forged).
pub const MARK_START: char = '\u{2}';
/// Marks the end of a matched term in a snippet.
pub const MARK_END: char = '\u{3}';

/// Flag bit: the text links somewhere (`http://`, `https://` or `www.`).
pub const FLAG_LINK: u32 = 1;
/// Flag bit: the message has a file attached, or its text embeds an image link (markdown
/// `![..](..)`).
pub const FLAG_ATTACHMENT: u32 = 2;
/// Flag bit: the message has an image attached.
pub const FLAG_IMAGE: u32 = 4;

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words and phrases, all of which must match.
    pub terms: Vec<Term>,
    /// Only messages by an author with this display name (case-insensitive) or user id.
    pub from: Option<String>,
    /// Only thread replies.
    pub in_thread: bool,
    /// Only messages with a link.
    pub has_link: bool,
    /// Only messages with an attachment.
    pub has_attachment: bool,
    /// Only messages with an attached image.
    pub has_image: bool,
    /// Only messages with an image labelled with this (lowercase, whole words).
    pub tag: Option<String>,
    /// Only messages posted at or after this time.
    pub after: Option<Millis>,
    /// Only messages posted before this time.
    pub before: Option<Millis>,
}

/// One text term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word.
    Word(String),
    /// A quoted phrase.
    Phrase(String),
}

impl SearchQuery {
    /// Whether the query asks for nothing at all (no terms and no filters).
    pub fn is_empty(&self) -> bool {
        *self == SearchQuery::default()
    }

    /// Whether any filter narrows the matches (beyond the text terms).
    pub fn is_filtered(&self) -> bool {
        self.from.is_some()
            || self.tag.is_some()
            || self.in_thread
            || self.required_flags() != 0
            || self.after.is_some()
            || self.before.is_some()
    }

    /// The flags a message must have.
    pub fn required_flags(&self) -> u32 {
        (if self.has_link { FLAG_LINK } else { 0 })
            | (if self.has_attachment {
                FLAG_ATTACHMENT
            } else {
                0
            })
            | (if self.has_image { FLAG_IMAGE } else { 0 })
    }

    /// The terms as plain text (what a semantic search embeds).
    pub fn text(&self) -> String {
        self.terms
            .iter()
            .map(|t| match t {
                Term::Word(w) | Term::Phrase(w) => w.as_str(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The FTS5 `MATCH` expression for the terms, or `None` when there are none (a filter-only
    /// search). Every term is a quoted FTS5 string, so nothing a user types is FTS5 syntax.
    pub fn fts_match(&self) -> Option<String> {
        if self.terms.is_empty() {
            return None;
        }
        let last = self.terms.len() - 1;
        let parts: Vec<String> = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, term)| match term {
                Term::Word(w) if i == last => format!("{}*", quote(w)),
                Term::Word(w) | Term::Phrase(w) => quote(w),
            })
            .collect();
        Some(parts.join(" "))
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Splits a query into tokens: whitespace-separated, with `"…"` grouping (also after `key:`).
fn tokens(query: &str) -> Vec<(Option<String>, String, bool)> {
    let mut out = Vec::new();
    let mut chars = query.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = None;
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' {
                quoted = true;
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    word.push(c);
                }
                break;
            }
            if c == ':' && key.is_none() && !word.is_empty() {
                key = Some(std::mem::take(&mut word).to_lowercase());
                continue;
            }
            word.push(c);
        }
        out.push((key, word, quoted));
    }
    out
}

/// Parses a query. Unknown `key:value` tokens are searched as text; a malformed date or an
/// unknown `in:`/`has:` value is an `invalid_input` error saying what is accepted.
pub fn parse_query(query: &str) -> Result<SearchQuery, ChatError> {
    let mut parsed = SearchQuery::default();
    for (key, value, quoted) in tokens(query) {
        let bad = |what: &str| ChatError::new(ErrorCode::InvalidInput, what.to_owned());
        match key.as_deref() {
            Some("from") if !value.is_empty() => parsed.from = Some(value),
            Some("in") => match value.as_str() {
                "thread" | "threads" => parsed.in_thread = true,
                _ => return Err(bad("Use in:thread.")),
            },
            Some("has") => match value.as_str() {
                "link" | "links" => parsed.has_link = true,
                "attachment" | "attachments" | "file" | "files" => parsed.has_attachment = true,
                "image" | "images" => parsed.has_image = true,
                _ => return Err(bad("Use has:link, has:file or has:image.")),
            },
            Some("tag") => {
                let words = tag_words(&value);
                if words.is_empty() {
                    return Err(bad("Write a label after tag:, for example tag:cat."));
                }
                parsed.tag = Some(words);
            }
            Some(k @ ("after" | "before" | "on" | "since" | "until")) => {
                let day = parse_day(&value)
                    .ok_or_else(|| bad("Dates are written YYYY-MM-DD, for example 2026-01-31."))?;
                let next = day + DAY_MS;
                match k {
                    "after" | "since" => parsed.after = Some(day),
                    "before" => parsed.before = Some(day),
                    "until" => parsed.before = Some(next),
                    _ => {
                        parsed.after = Some(day);
                        parsed.before = Some(next);
                    }
                }
            }
            Some(k) => push_term(&mut parsed, format!("{k}:{value}"), quoted),
            None => push_term(&mut parsed, value, quoted),
        }
    }
    Ok(parsed)
}

fn push_term(parsed: &mut SearchQuery, text: String, quoted: bool) {
    // A term without a letter or digit indexes to nothing and would match nothing.
    if !text.chars().any(char::is_alphanumeric) {
        return;
    }
    parsed
        .terms
        .push(if quoted || text.contains(char::is_whitespace) {
            Term::Phrase(text)
        } else {
            Term::Word(text)
        });
}

const DAY_MS: Millis = 86_400_000;

/// Midnight UTC of a `YYYY-MM-DD` day, in ms since the epoch.
pub fn parse_day(text: &str) -> Option<Millis> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * DAY_MS)
}

/// The UTC day of a time, as `YYYY-MM-DD` (the inverse of [`parse_day`]).
pub fn format_day(at: Millis) -> String {
    // Howard Hinnant's civil_from_days.
    let z = at.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A label as the `tags` column and a `tag:` filter compare it: lowercase words separated by
/// one space (so `Egyptian  Mau` and `egyptian mau` are the same tag).
pub fn tag_words(label: &str) -> String {
    label
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The searchable words of a message's image labels, framed by spaces (` egyptian mau tabby
/// cat `), so a `tag:` filter is a whole-word `instr`; `None` without labels.
pub fn tags_column(attachments: &[crate::protocol::Attachment]) -> Option<String> {
    let words: Vec<String> = attachments
        .iter()
        .flat_map(|a| a.labels.iter().map(|l| tag_words(&l.name)))
        .filter(|w| !w.is_empty())
        .collect();
    (!words.is_empty()).then(|| format!(" {} ", words.join(" | ")))
}

/// The flag bits a message's files add: [`FLAG_ATTACHMENT`] for any, [`FLAG_IMAGE`] for an image.
pub fn attachment_flags(attachments: &[crate::protocol::Attachment]) -> u32 {
    attachments.iter().fold(0, |flags, a| {
        flags
            | FLAG_ATTACHMENT
            | if a.kind == crate::media::Kind::Image {
                FLAG_IMAGE
            } else {
                0
            }
    })
}

/// The [`FLAG_LINK`] / [`FLAG_ATTACHMENT`] bits of a message text: a link is `http://`,
/// `https://` or `www.` in any ASCII case; an attachment is `![` and `](` anywhere. One pass
/// over the bytes with no allocation: it runs on every stored message.
pub fn flags(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let at = |i: usize, pattern: &[u8]| {
        bytes
            .get(i..i + pattern.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(pattern))
    };
    let (mut link, mut image, mut target) = (false, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'h' | b'H' if !link => link = at(i, b"http://") || at(i, b"https://"),
            b'w' | b'W' if !link => link = at(i, b"www."),
            b'!' if !image => image = bytes.get(i + 1) == Some(&b'['),
            b']' if !target => target = bytes.get(i + 1) == Some(&b'('),
            _ => {}
        }
    }
    (if link { FLAG_LINK } else { 0 }) | (if image && target { FLAG_ATTACHMENT } else { 0 })
}

/// A snippet split into (text, highlighted) parts, for rendering without HTML.
pub fn snippet_parts(snippet: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = snippet;
    let mut on = false;
    while !rest.is_empty() {
        let next = rest.find([MARK_START, MARK_END]);
        let (piece, tail) = match next {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !piece.is_empty() {
            out.push((piece, on));
        }
        match tail.chars().next() {
            Some(MARK_START) => on = true,
            Some(MARK_END) => on = false,
            _ => {}
        }
        rest = tail.get(1..).unwrap_or("");
    }
    out
}

/// Merges per-room results into one list, best score first (newest first on a tie), at most
/// `limit`. Scores are each room's negated bm25, comparable enough across rooms of one
/// deployment since they share the tokenizer and ranking function.
pub fn merge_rooms(per_room: Vec<Vec<SearchHit>>, limit: usize) -> Vec<SearchHit> {
    let mut all: Vec<SearchHit> = per_room.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.at.cmp(&a.at))
            .then(a.slug.cmp(&b.slug))
            .then(b.seq.cmp(&a.seq))
    });
    all.truncate(limit);
    all
}

/// Reciprocal-rank fusion constant (the usual 60: a hit's weight decays slowly with its rank).
pub const RRF_K: f64 = 60.0;

/// Fuses a full-text ranking and a semantic ranking (each best first) into one, by reciprocal
/// rank: `score = Σ 1 / (RRF_K + rank)`. Rank fusion needs no calibration between bm25 and
/// cosine scores, which live on different scales. Returns (seq, score), best first; a message in
/// both lists ranks above one in either alone at the same ranks.
pub fn hybrid_rank(full_text: &[Seq], semantic: &[Seq], limit: usize) -> Vec<(Seq, f64)> {
    let mut scores: Vec<(Seq, f64)> = Vec::new();
    for list in [full_text, semantic] {
        for (rank, seq) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f64 + 1.0);
            match scores.iter_mut().find(|(s, _)| s == seq) {
                Some((_, score)) => *score += add,
                None => scores.push((*seq, add)),
            }
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    scores.truncate(limit);
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Author, Role};

    #[test]
    fn a_day_formats_back_to_what_it_was_parsed_from() {
        for day in ["1970-01-01", "2024-02-29", "2026-11-30", "2100-03-01"] {
            assert_eq!(format_day(parse_day(day).unwrap() + 3_600_000), day);
        }
    }

    #[test]
    fn words_phrases_and_filters_are_parsed() {
        let q = parse_query(
            r#"deploy "release notes" from:"Ann Lee" in:thread has:link after:2026-01-02 before:2026-02-01"#,
        )
        .unwrap();
        assert_eq!(
            q.terms,
            vec![
                Term::Word("deploy".into()),
                Term::Phrase("release notes".into())
            ]
        );
        assert_eq!(q.from.as_deref(), Some("Ann Lee"));
        assert!(q.in_thread && q.has_link && !q.has_attachment);
        assert_eq!(q.after, Some(parse_day("2026-01-02").unwrap()));
        assert_eq!(q.before, Some(parse_day("2026-02-01").unwrap()));
    }

    #[test]
    fn the_match_expression_quotes_every_term_so_user_input_is_never_fts_syntax() {
        let q = parse_query(r#"NEAR(a b) OR "x" -y col:z ab"#).unwrap();
        let expr = q.fts_match().unwrap();
        assert_eq!(expr, r#""NEAR(a" "b)" "OR" "x" "-y" "col:z" "ab"*"#);
        // An unclosed quote runs to the end; a quote character never reaches the expression
        // unescaped.
        let q = parse_query(r#"say "it loud"#).unwrap();
        assert_eq!(q.fts_match().unwrap(), r#""say" "it loud""#);
        assert_eq!(quote(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn only_the_last_plain_word_is_a_prefix() {
        let q = parse_query(r#"hel wor"#).unwrap();
        assert_eq!(q.fts_match().unwrap(), r#""hel" "wor"*"#);
        let q = parse_query(r#"hel "wor""#).unwrap();
        assert_eq!(q.fts_match().unwrap(), r#""hel" "wor""#);
    }

    #[test]
    fn punctuation_only_terms_are_dropped_and_a_filter_only_query_has_no_match_expression() {
        let q = parse_query("!!! has:attachment").unwrap();
        assert!(q.terms.is_empty());
        assert!(q.fts_match().is_none());
        assert_eq!(q.required_flags(), FLAG_ATTACHMENT);
        assert!(!q.is_empty());
        assert!(parse_query("   ").unwrap().is_empty());
    }

    #[test]
    fn bad_filter_values_are_invalid_input_not_silently_ignored() {
        for q in [
            "in:dms",
            "has:gif",
            "after:2026-13-01",
            "before:yesterday",
            "on:2025-02-29",
        ] {
            assert_eq!(
                parse_query(q).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{q}"
            );
        }
    }

    #[test]
    fn on_a_day_covers_exactly_that_utc_day() {
        let q = parse_query("on:2024-02-29").unwrap();
        assert_eq!(q.after, Some(1_709_164_800_000));
        assert_eq!(q.before, Some(1_709_164_800_000 + DAY_MS));
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2000-03-01"), Some(951_868_800_000));
    }

    #[test]
    fn flags_see_links_and_embedded_images() {
        assert_eq!(flags("see https://example.com"), FLAG_LINK);
        assert_eq!(flags("www.example.com"), FLAG_LINK);
        assert_eq!(
            flags("![cat](https://x/cat.png)"),
            FLAG_LINK | FLAG_ATTACHMENT
        );
        assert_eq!(flags("just words [x]"), 0);
        assert_eq!(flags("HTTPS://EXAMPLE.COM"), FLAG_LINK);
        assert_eq!(flags("a ](b) then ![c"), FLAG_ATTACHMENT);
        assert_eq!(flags("http:/ www nope ![ only"), 0);
    }

    #[test]
    fn snippet_markers_become_highlighted_parts() {
        let s = format!("a {MARK_START}b{MARK_END} c {MARK_START}d{MARK_END}");
        assert_eq!(
            snippet_parts(&s),
            vec![("a ", false), ("b", true), (" c ", false), ("d", true)]
        );
        assert_eq!(snippet_parts("plain"), vec![("plain", false)]);
    }

    fn hit(slug: &str, seq: Seq, score: f64, at: Millis) -> SearchHit {
        SearchHit {
            slug: slug.into(),
            seq,
            at,
            author: Author {
                id: "u".into(),
                name: "U".into(),
                role: Role::Member,
            },
            thread: None,
            snippet: String::new(),
            score,
        }
    }

    #[test]
    fn rooms_merge_by_score_then_recency_and_are_cut_to_the_limit() {
        let merged = merge_rooms(
            vec![
                vec![hit("a", 1, 3.0, 10), hit("a", 2, 1.0, 20)],
                vec![hit("b", 7, 2.0, 5), hit("b", 8, 3.0, 30)],
                vec![],
            ],
            3,
        );
        let order: Vec<(&str, Seq)> = merged.iter().map(|h| (h.slug.as_str(), h.seq)).collect();
        assert_eq!(order, vec![("b", 8), ("a", 1), ("b", 7)]);
    }

    #[test]
    fn hybrid_ranking_prefers_messages_both_rankings_found() {
        let fused = hybrid_rank(&[1, 2, 3], &[3, 4], 10);
        assert_eq!(fused[0].0, 3, "{fused:?}");
        let seqs: Vec<Seq> = fused.iter().map(|f| f.0).collect();
        assert_eq!(seqs.len(), 4);
        assert!(seqs.contains(&4));
        // With one ranking empty the other's order is kept (the local, FTS-only case).
        let alone: Vec<Seq> = hybrid_rank(&[5, 6, 7], &[], 2)
            .iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(alone, vec![5, 6]);
    }
}
