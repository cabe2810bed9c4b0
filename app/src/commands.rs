//! What the composer does itself instead of posting: "@assistant catch me up" asks for a private
//! catch-up rather than putting the request in everyone's timeline.

/// Whether `text` is, as a whole, "@assistant catch me up": any case, spacing and trailing
/// punctuation; a comma or colon may follow the mention.
pub fn is_catch_up(text: &str) -> bool {
    let text = text
        .trim()
        .trim_end_matches(['.', '!', '?', '…'])
        .to_lowercase();
    let Some(rest) = text.strip_prefix("@assistant") else {
        return false;
    };
    let rest = rest.strip_prefix([',', ':']).unwrap_or(rest);
    // The mention must end where the name does ("@assistants catch me up" is not it).
    rest.starts_with(char::is_whitespace) && rest.split_whitespace().eq(["catch", "me", "up"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_me_up_is_recognised_in_any_case_with_trailing_punctuation() {
        for text in [
            "@assistant catch me up",
            "  @Assistant Catch Me Up  ",
            "@assistant catch me up!",
            "@assistant catch me up?!",
            "@assistant, catch   me\nup.",
            "@ASSISTANT: catch me up…",
        ] {
            assert!(is_catch_up(text), "{text:?}");
        }
    }

    #[test]
    fn anything_more_or_less_is_an_ordinary_message() {
        for text in [
            "catch me up",
            "@assistant catch me up on the budget",
            "@assistant please catch me up",
            "@assistants catch me up",
            "@assistantcatch me up",
            "hey @assistant catch me up",
            "@assistant catch me up. Also what is 2+2?",
            "",
        ] {
            assert!(!is_catch_up(text), "{text:?}");
        }
    }
}
