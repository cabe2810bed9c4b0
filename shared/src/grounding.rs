//! Answers grounded in the room's own history: what a question asks for (an answer, "catch me
//! up", a thread summary), the full-text query that retrieves the messages it may be about, and
//! the citations an answer makes to them.
//!
//! An answer cites the messages it was given as `[n]`. What reaches anyone is checked here, as
//! the text streams: [`CitationFilter`] removes every number the model was not given (and counts
//! them), so an invented citation is never shown, not even for the 50 ms before the answer ends.
//! Small local models rarely cite; [`attribute`] then cites a sentence's source when the
//! sentence repeats enough of that message's own words, so a weak answer still points at its
//! evidence, and a claim with no evidence stays uncited. A question about the room that ends
//! with no citation at all is answered with [`nothing_found`] instead of the guess.

use crate::protocol::{Citation, MessageView};

/// What a message addressed to the assistant asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// An ordinary question, answered in the room for everyone.
    Question,
    /// "Catch me up": a private summary of what the asker has not read.
    CatchUp,
    /// "Summarize thread": a private summary of the thread it was asked in.
    SummarizeThread,
}

/// The words of `text` with `@assistant` removed, lowercased, punctuation as spaces.
fn plain_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace("@assistant", " ")
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Reads the intent of a message that mentions the assistant. Only a message that is nothing
/// but the request ("@assistant catch me up", "@assistant summarize this thread", with polite
/// words around it) is one: "how do I catch up on sleep?" is a question.
pub fn intent(text: &str) -> Intent {
    const POLITE: &[&str] = &[
        "please", "pls", "hey", "hi", "can", "you", "could", "quickly",
    ];
    let words: Vec<String> = plain_words(text)
        .into_iter()
        .filter(|w| !POLITE.contains(&w.as_str()))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["catch", "me", "up"] | ["what", "did", "i", "miss"] | ["catch", "up"] => Intent::CatchUp,
        ["summarize" | "summarise", "thread"]
        | ["summarize" | "summarise", "this" | "the", "thread"] => Intent::SummarizeThread,
        _ => Intent::Question,
    }
}

/// Words too common to say what a question is about.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "all",
    "am",
    "an",
    "and",
    "any",
    "anyone",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "for",
    "from",
    "get",
    "got",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "know",
    "let",
    "me",
    "my",
    "no",
    "not",
    "of",
    "on",
    "or",
    "our",
    "out",
    "over",
    "please",
    "room",
    "said",
    "say",
    "says",
    "she",
    "should",
    "so",
    "some",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "up",
    "us",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    // Filler that matches chatter rather than facts ("what time is standup now?").
    "now",
    "going",
    "happen",
    "happened",
    "happening",
    "find",
    "thing",
    "things",
    "really",
    "also",
    "still",
    "yet",
];

/// Whether a word says what a text is about: not a stopword, and three characters or more, or
/// two with a digit in them ("v2", "q3", the "15" of 9:15).
fn is_content(word: &str) -> bool {
    let n = word.chars().count();
    !STOPWORDS.contains(&word) && (n >= 3 || (n == 2 && word.chars().any(|c| c.is_ascii_digit())))
}

/// Most terms a retrieval query keeps (the first ones of the question).
pub const MAX_TERMS: usize = 12;

/// The stem a term is matched by as a prefix: the common English endings removed, so "decided"
/// finds "decide" and "dates" finds "date", without a stemmer in the index (the room's FTS5
/// index is shared with search, where a user's words must match as typed).
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "ly", "s"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.chars().count() >= 4 && !(suffix == "s" && base.ends_with('s')) {
                return base;
            }
        }
    }
    word
}

/// The terms a question is retrieved by: its words without stopwords, short words and
/// `@assistant`, stemmed, each once, at most [`MAX_TERMS`].
pub fn retrieval_terms(question: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in plain_words(question) {
        let word = word.trim_end_matches("'s");
        if !is_content(word) {
            continue;
        }
        let term = stem(word).to_owned();
        if !terms.contains(&term) {
            terms.push(term);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

/// The FTS5 `MATCH` expression for retrieval terms: any of them, each a quoted prefix (so
/// nothing in a question is FTS5 syntax), ranked by bm25, which rewards messages that hold more
/// of the rarer terms. `None` when the question has no term.
pub fn fts_expression(terms: &[String]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    let parts: Vec<String> = terms
        .iter()
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect();
    Some(parts.join(" OR "))
}

/// Whether a message is a question about the room's own conversation ("what did we decide",
/// "who said", "was … mentioned?"), so that an answer citing nothing is a guess to refuse
/// rather than general knowledge. Deliberately narrow: it must read as a question (a `?`, or a
/// question word first) and name the room's talk; a general question that slips through is
/// answered as before, and a remark ("we shipped it") is never refused.
pub fn asks_about_room(question: &str) -> bool {
    const QUESTION_WORDS: &[&str] = &[
        "what", "who", "when", "where", "which", "why", "how", "did", "do", "does", "is", "was",
        "were", "has", "have", "had", "can", "could", "any",
    ];
    const ROOM_WORDS: &[&str] = &[
        "we",
        "our",
        "us",
        "decide",
        "decided",
        "decision",
        "agree",
        "agreed",
        "said",
        "mentioned",
        "discussed",
        "anyone",
        "someone",
        "yesterday",
        "earlier",
        "ago",
        "posted",
        "shared",
        "told",
        "asked",
        "missed",
    ];
    let words = plain_words(question);
    let is_question = question.contains('?')
        || words
            .first()
            .is_some_and(|w| QUESTION_WORDS.contains(&w.as_str()));
    is_question && words.iter().any(|w| ROOM_WORDS.contains(&w.as_str()))
}

/// The answer to a question about the room when the model's answer cited none of the
/// messages it was given and repeated none of them: it says so and points at the closest ones
/// (at most three), so the reader can look for themselves. Returns the text and the numbers it
/// cites.
pub fn closest(sources: usize) -> (String, Vec<u32>) {
    let cited: Vec<u32> = (1..=sources.min(3) as u32).collect();
    let list: Vec<String> = cited.iter().map(|n| format!("[{n}]")).collect();
    (
        format!(
            "I could not answer that from this room's messages. The closest I found: {}.",
            list.join(", ")
        ),
        cited,
    )
}

/// The answer to a question about the room that nothing in the room matches.
pub fn nothing_found(question: &str) -> String {
    let terms = retrieval_terms(question);
    let about: Vec<String> = plain_words(question)
        .into_iter()
        .filter(|w| terms.iter().any(|t| w.starts_with(t.as_str())))
        .take(6)
        .collect();
    if about.is_empty() {
        "I found nothing in this room about that.".to_owned()
    } else {
        format!("I found nothing in this room about {}.", about.join(" "))
    }
}

/// The longest citation group held back while it streams (`[12, 3, 7]`); anything longer is
/// text, not a citation.
const MAX_GROUP: usize = 24;

/// Removes invented citations from a streaming answer. A `[` opens a group that is held back
/// until it closes: digits, commas and spaces closed by `]` are a citation group, whose numbers
/// outside `1..=sources` are removed (the whole group when none is valid); anything else (a
/// Markdown link's text, `[x]`) goes out unchanged.
#[derive(Debug, Clone, Default)]
pub struct CitationFilter {
    sources: u32,
    held: String,
    cited: Vec<u32>,
    dropped: u32,
}

impl CitationFilter {
    /// A filter for an answer given `sources` numbered messages.
    pub fn new(sources: usize) -> Self {
        CitationFilter {
            sources: sources as u32,
            ..Default::default()
        }
    }

    /// The valid numbers cited so far, each once, in the order first cited.
    pub fn cited(&self) -> &[u32] {
        &self.cited
    }

    /// How many invented numbers were removed.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Takes more text; returns what may be shown now.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            if self.held.is_empty() {
                if c == '[' {
                    self.held.push(c);
                } else {
                    out.push(c);
                }
                continue;
            }
            self.held.push(c);
            if c == ']' {
                let group = std::mem::take(&mut self.held);
                out.push_str(&self.resolve(&group));
            } else if !(c.is_ascii_digit() || c == ',' || c == ' ') || self.held.len() > MAX_GROUP {
                // Not a citation: release it (a new `[` inside starts over).
                let held = std::mem::take(&mut self.held);
                let (text, last) = held.split_at(held.len() - c.len_utf8());
                out.push_str(text);
                if last == "[" {
                    self.held.push('[');
                } else {
                    out.push_str(last);
                }
            }
        }
        out
    }

    /// The end of the text: whatever is held back is text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// A closed group `[…]`: the valid numbers, or nothing.
    fn resolve(&mut self, group: &str) -> String {
        let inner = &group[1..group.len() - 1];
        let numbers: Vec<&str> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if numbers.is_empty() {
            return group.to_owned();
        }
        let mut kept = Vec::new();
        for number in numbers {
            match number.parse::<u32>() {
                Ok(n) if (1..=self.sources).contains(&n) => {
                    if !self.cited.contains(&n) {
                        self.cited.push(n);
                    }
                    kept.push(n.to_string());
                }
                _ => self.dropped += 1,
            }
        }
        if kept.is_empty() {
            String::new()
        } else {
            format!("[{}]", kept.join(", "))
        }
    }
}

/// The content words of a text, for attribution: lowercased, stopwords and short words out.
fn content_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in plain_words(text) {
        if !is_content(&word) {
            continue;
        }
        let word = stem(&word).to_owned();
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// Shared content words a sentence needs with a message to cite it.
const ATTRIBUTE_MIN_SHARED: usize = 2;

/// Cites sources for an answer that cited none: each sentence that shares at least
/// [`ATTRIBUTE_MIN_SHARED`] content words with one source, and at least half of its own, gets
/// that source's number (the one sharing the most). Words of the `question` do not count: a
/// sentence that only restates the question is not evidence. Returns the text and the numbers
/// cited, in the order first cited. A sentence no source supports stays uncited.
pub fn attribute(text: &str, sources: &[MessageView], question: &str) -> (String, Vec<u32>) {
    let source_words: Vec<Vec<String>> = sources.iter().map(|m| content_words(&m.text)).collect();
    let asked = content_words(question);
    let mut out = String::new();
    let mut cited = Vec::new();
    for sentence in sentences(text) {
        let words: Vec<String> = content_words(sentence)
            .into_iter()
            .filter(|w| !asked.contains(w))
            .collect();
        let best = source_words
            .iter()
            .enumerate()
            .map(|(i, sw)| (i, words.iter().filter(|w| sw.contains(w)).count()))
            .filter(|(_, shared)| {
                *shared >= ATTRIBUTE_MIN_SHARED && *shared * 2 >= words.len().max(1)
            })
            .max_by_key(|(i, shared)| (*shared, std::cmp::Reverse(*i)));
        let Some((i, _)) = best else {
            out.push_str(sentence);
            continue;
        };
        let n = i as u32 + 1;
        if !cited.contains(&n) {
            cited.push(n);
        }
        // The number goes after the sentence's words, before its closing punctuation's space.
        let trimmed = sentence.trim_end();
        out.push_str(trimmed);
        out.push_str(&format!(" [{n}]"));
        out.push_str(&sentence[trimmed.len()..]);
    }
    (out, cited)
}

/// Splits text into sentences, each keeping its end punctuation and the whitespace after it.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end_mark = matches!(bytes[i], b'.' | b'!' | b'?' | b'\n');
        if end_mark {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\n') {
                j += 1;
            }
            if j == bytes.len() || bytes[i] == b'\n' || bytes[i + 1] == b' ' {
                out.push(&text[start..j]);
                start = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The citations for the numbers cited, in that order.
pub fn citations(cited: &[u32], sources: &[MessageView]) -> Vec<Citation> {
    cited
        .iter()
        .filter_map(|&n| {
            let m = sources.get(n.checked_sub(1)? as usize)?;
            Some(Citation {
                n,
                seq: m.seq,
                author: m.author.name.clone(),
                at: m.at,
                thread: m.thread,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Author, Role};

    fn msg(seq: u64, text: &str) -> MessageView {
        MessageView {
            seq,
            at: 0,
            author: Author {
                id: format!("u{seq}"),
                name: format!("User {seq}"),
                role: Role::Member,
            },
            client_id: format!("c{seq}"),
            text: text.into(),
            edited_at: None,
            deleted: false,
            answer: None,
            thread: None,
            also_in_room: false,
            replies: None,
            reactions: Vec::new(),
            pinned: false,
            attachments: Vec::new(),
        }
    }

    fn filtered(sources: usize, chunks: &[&str]) -> (String, CitationFilter) {
        let mut f = CitationFilter::new(sources);
        let mut out: String = chunks.iter().map(|c| f.push(c)).collect();
        out.push_str(&f.finish());
        (out, f)
    }

    #[test]
    fn catch_me_up_and_summarize_thread_are_requests_only_when_they_are_the_whole_message() {
        assert_eq!(intent("@assistant catch me up"), Intent::CatchUp);
        assert_eq!(intent("@Assistant, please catch me up!"), Intent::CatchUp);
        assert_eq!(intent("@assistant what did I miss?"), Intent::CatchUp);
        assert_eq!(
            intent("@assistant summarize this thread"),
            Intent::SummarizeThread
        );
        assert_eq!(
            intent("@assistant how do I catch up on sleep?"),
            Intent::Question
        );
        assert_eq!(
            intent("@assistant summarize the launch plan"),
            Intent::Question
        );
    }

    #[test]
    fn short_words_with_a_digit_are_terms_and_filler_is_not() {
        assert_eq!(retrieval_terms("when is v2 going out now?"), vec!["v2"]);
        assert_eq!(retrieval_terms("standup at 9:15"), vec!["standup", "15"]);
        assert_eq!(closest(5).1, vec![1, 2, 3]);
        assert_eq!(
            closest(1).0,
            "I could not answer that from this room's messages. The closest I found: [1]."
        );
    }

    #[test]
    fn retrieval_terms_drop_stopwords_and_stem_common_endings() {
        assert_eq!(
            retrieval_terms("@assistant What did we decide about the launch dates?"),
            vec!["decide", "launch", "date"]
        );
        assert_eq!(retrieval_terms("who is it?"), Vec::<String>::new());
        assert_eq!(
            fts_expression(&retrieval_terms("Deployed \"staging\" OR NEAR(x)")).unwrap(),
            "\"deploy\"* OR \"stag\"* OR \"near\"*"
        );
        assert_eq!(fts_expression(&[]), None);
    }

    #[test]
    fn questions_about_the_room_are_told_from_general_ones() {
        assert!(asks_about_room("what did we decide about the launch date?"));
        assert!(asks_about_room("has anyone mentioned the budget?"));
        assert!(!asks_about_room("what is the capital of France?"));
        assert!(!asks_about_room("@assistant plan my weekend"));
        assert!(!asks_about_room("we shipped it, no mention here"));
        assert_eq!(
            nothing_found("@assistant what did we decide about the launch date?"),
            "I found nothing in this room about decide launch date."
        );
    }

    #[test]
    fn invented_citations_are_removed_even_when_split_across_tokens() {
        let (text, f) = filtered(
            3,
            &["The date is March 3 [", "2] and ", "the venue [7", "]."],
        );
        assert_eq!(text, "The date is March 3 [2] and the venue .");
        assert_eq!(f.cited(), &[2]);
        assert_eq!(f.dropped(), 1);

        let (text, f) = filtered(2, &["Both [1, 4,2] agree [0]."]);
        assert_eq!(text, "Both [1, 2] agree .");
        assert_eq!(f.cited(), &[1, 2]);
        assert_eq!(f.dropped(), 2);
    }

    #[test]
    fn brackets_that_are_not_citations_pass_through_unchanged() {
        let (text, f) = filtered(
            2,
            &["See [the docs](https://x.y) and [ ] and [x] and [[1]] and an open [1"],
        );
        assert_eq!(
            text,
            "See [the docs](https://x.y) and [ ] and [x] and [[1]] and an open [1"
        );
        assert_eq!(f.cited(), &[1]);
        assert_eq!(f.dropped(), 0);
    }

    #[test]
    fn a_sentence_repeating_a_sources_words_cites_it_and_a_claim_without_evidence_does_not() {
        let sources = [
            msg(
                4,
                "We decided the launch date is March 10, after the venue review.",
            ),
            msg(9, "Lunch is pizza on Friday."),
        ];
        let question = "what did we decide about the launch?";
        let (text, cited) = attribute(
            "The launch date was decided: March 10. The sky is green.",
            &sources,
            question,
        );
        assert_eq!(
            text,
            "The launch date was decided: March 10. [1] The sky is green."
        );
        assert_eq!(cited, vec![1]);
        let (text, cited) = attribute("Nothing relevant here.", &sources, question);
        assert_eq!(text, "Nothing relevant here.");
        assert!(cited.is_empty());
        // Restating the question is not evidence, however many of its words it shares.
        let (_, cited) = attribute(
            "You ask what we decided about the launch date after the venue review.",
            &sources,
            "what did we decide about the launch date after the venue review?",
        );
        assert!(cited.is_empty());
    }

    #[test]
    fn citations_name_the_message_in_the_order_cited_and_skip_unknown_numbers() {
        let sources = [msg(4, "short"), msg(9, "long")];
        let c = citations(&[2, 1, 5], &sources);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].n, c[0].seq), (2, 9));
        assert_eq!((c[1].n, c[1].seq, c[1].author.as_str()), (1, 4, "User 4"));
    }
}
