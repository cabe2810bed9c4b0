//! `@name` mentions: finding who a text mentions (the room counts them per member; the app
//! highlights a mention of you) and completing a half-typed mention from the room's members.
//!
//! Display names may contain spaces and are not unique, so a mention is `@` followed by a
//! member's whole display name (case-insensitive, the longest that fits), ending at the end of
//! the text or a character that is not a letter or digit. Two members with the same name are
//! both mentioned.

use crate::protocol::Member;

/// Most suggestions offered while typing a mention.
pub const SUGGESTIONS_MAX: usize = 8;

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `name` is mentioned at the start of `rest` (the text just after an `@`).
fn mentions_at(rest: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut rest_chars = rest.chars();
    for n in name.chars() {
        match rest_chars.next() {
            Some(r) if r.to_lowercase().eq(n.to_lowercase()) => {}
            _ => return false,
        }
    }
    !rest_chars.next().is_some_and(is_word)
}

/// The positions just after each `@` that can start a mention (not inside a word or address).
fn mention_starts(text: &str) -> impl Iterator<Item = &str> {
    text.char_indices().filter_map(move |(i, c)| {
        if c != '@' {
            return None;
        }
        let before = text[..i].chars().next_back();
        if before.is_some_and(is_word) {
            return None; // an email address, not a mention
        }
        Some(&text[i + 1..])
    })
}

/// Mention starts looked at in one text: past this many `@`s the rest are not mentions (a text
/// of `@`s must not cost a lookup per character).
pub const MENTIONS_MAX: usize = 20;

/// The lowercased names `text` could be mentioning: for each `@` that can start a mention, the
/// text after it cut at each word end, up to a display name's length. A room looks up only
/// members with these names ([`name_key`]), then [`find_mentions`] picks among them, so a
/// mention costs a few index lookups however large the room.
pub fn candidate_keys(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for rest in mention_starts(text).take(MENTIONS_MAX) {
        let mut prefix = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if prefix.chars().count() >= crate::limits::DISPLAY_NAME_MAX_CHARS {
                break;
            }
            prefix.push(c);
            let ends_word = !chars.peek().copied().is_some_and(is_word);
            if ends_word && !prefix.trim().is_empty() {
                let key = name_key(&prefix);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            if c == '\n' {
                break;
            }
        }
    }
    keys
}

/// The key a member's name is looked up by: lowercased, as [`find_mentions`] compares.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// The user ids `text` mentions, among `members`, each once, in member order.
pub fn find_mentions<'a>(text: &str, members: &'a [Member]) -> Vec<&'a str> {
    let mut found: Vec<&str> = Vec::new();
    for rest in mention_starts(text) {
        let longest = members
            .iter()
            .filter(|m| mentions_at(rest, &m.name))
            .map(|m| m.name.chars().count())
            .max();
        if let Some(len) = longest {
            for m in members {
                if m.name.chars().count() == len
                    && mentions_at(rest, &m.name)
                    && !found.contains(&m.user_id.as_str())
                {
                    found.push(&m.user_id);
                }
            }
        }
    }
    members
        .iter()
        .map(|m| m.user_id.as_str())
        .filter(|id| found.contains(id))
        .fold(Vec::new(), |mut acc, id| {
            if !acc.contains(&id) {
                acc.push(id);
            }
            acc
        })
}

/// Whether `text` mentions someone named `name` (for highlighting a mention of you).
pub fn mentions_name(text: &str, name: &str) -> bool {
    mention_starts(text).any(|rest| mentions_at(rest, name))
}

/// The half-typed mention at the end of `before_cursor` (the text after its last `@`), if the
/// user is typing one: the `@` starts a word and no line break follows it.
pub fn typing_mention(before_cursor: &str) -> Option<&str> {
    let at = before_cursor.rfind('@')?;
    let before = before_cursor[..at].chars().next_back();
    if before.is_some_and(is_word) {
        return None;
    }
    let partial = &before_cursor[at + 1..];
    let too_long = partial.chars().count() > crate::limits::DISPLAY_NAME_MAX_CHARS;
    (!partial.contains('\n') && !too_long).then_some(partial)
}

/// Members whose name starts with `partial` (case-insensitive), then those whose name contains
/// it, at most [`SUGGESTIONS_MAX`], without `me`.
pub fn suggestions<'a>(partial: &str, members: &'a [Member], me: Option<&str>) -> Vec<&'a Member> {
    let partial = partial.to_lowercase();
    let candidates = || {
        members
            .iter()
            .filter(move |m| Some(m.user_id.as_str()) != me)
            .map(|m| (m, m.name.to_lowercase()))
    };
    let mut out: Vec<&Member> = candidates()
        .filter(|(_, name)| name.starts_with(&partial))
        .map(|(m, _)| m)
        .collect();
    out.extend(
        candidates()
            .filter(|(_, name)| !name.starts_with(&partial) && name.contains(&partial))
            .map(|(m, _)| m),
    );
    out.truncate(SUGGESTIONS_MAX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, name: &str) -> Member {
        Member {
            user_id: id.into(),
            name: name.into(),
            avatar: None,
        }
    }

    #[test]
    fn a_mention_is_at_a_members_whole_name_case_insensitively() {
        let members = [member("a", "Ann"), member("b", "Bob")];
        assert_eq!(
            find_mentions("hi @ann, and @BOB!", &members),
            vec!["a", "b"]
        );
        assert!(find_mentions("hi @annabel", &members).is_empty());
        assert!(find_mentions("mail ann@ann.example", &members).is_empty());
        assert!(find_mentions("no mention of Ann", &members).is_empty());
    }

    #[test]
    fn names_with_spaces_match_the_longest_member_name() {
        let members = [member("a", "Ann"), member("al", "Ann Lee")];
        assert_eq!(find_mentions("ask @Ann Lee now", &members), vec!["al"]);
        assert_eq!(find_mentions("ask @Ann now", &members), vec!["a"]);
    }

    #[test]
    fn members_sharing_a_name_are_all_mentioned_once() {
        let members = [member("a1", "Sam"), member("a2", "Sam")];
        assert_eq!(find_mentions("@sam @sam", &members), vec!["a1", "a2"]);
    }

    #[test]
    fn a_mention_of_you_is_found_by_your_name() {
        assert!(mentions_name("ping @Zoë", "zoë"));
        assert!(!mentions_name("ping @Zoëy", "Zoë"));
        assert!(!mentions_name("ping Zoë", "Zoë"));
    }

    #[test]
    fn the_mention_being_typed_is_the_text_after_the_last_at() {
        assert_eq!(typing_mention("hello @an"), Some("an"));
        assert_eq!(typing_mention("@"), Some(""));
        assert_eq!(typing_mention("mail me@ex"), None);
        assert_eq!(typing_mention("@ann\nnext"), None);
        assert_eq!(typing_mention("no at"), None);
    }

    #[test]
    fn suggestions_put_prefix_matches_first_and_leave_out_yourself() {
        let members = [
            member("1", "Joanna"),
            member("2", "Ann"),
            member("3", "Annie"),
            member("me", "Anna"),
        ];
        let names: Vec<&str> = suggestions("an", &members, Some("me"))
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, vec!["Ann", "Annie", "Joanna"]);
    }

    #[test]
    fn the_candidate_names_of_a_mention_are_the_text_after_the_at_cut_at_each_word_end() {
        assert_eq!(
            candidate_keys("hi @Ann Lee, bye"),
            vec!["ann", "ann lee", "ann lee,", "ann lee, bye"]
        );
        assert!(candidate_keys("mail ann@example.com").is_empty());
        assert!(candidate_keys("no mention here").is_empty());
        let many = "@a ".repeat(100);
        assert!(candidate_keys(&many).len() <= MENTIONS_MAX * 2);
    }

    #[test]
    fn every_mention_find_mentions_would_make_is_among_the_candidates() {
        let members = [
            member("a", "Ann Lee"),
            member("b", "Émile"),
            member("c", "bob"),
        ];
        let text = "ping @ann lee and @ÉMILE and @Bob!";
        let keys = candidate_keys(text);
        for m in &members {
            assert!(
                keys.contains(&name_key(&m.name)),
                "{} among {keys:?}",
                m.name
            );
        }
        assert_eq!(find_mentions(text, &members), vec!["a", "b", "c"]);
    }
}
