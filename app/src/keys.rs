//! Keyboard rules shared by the composer and the inline message editor.

/// Whether a key press in the composer sends: Enter without Shift, outside IME composition
/// (keyCode 229 is what some browsers report for keys that compose).
pub fn sends(key: &str, shift: bool, composing: bool, key_code: u32) -> bool {
    key == "Enter" && !shift && !composing && key_code != 229
}

#[cfg(test)]
mod tests {
    use super::sends;

    #[test]
    fn enter_sends_but_shift_enter_and_composition_do_not() {
        assert!(sends("Enter", false, false, 13));
        assert!(!sends("Enter", true, false, 13));
        assert!(!sends("Enter", false, true, 13));
        assert!(!sends("Enter", false, false, 229));
        assert!(!sends("a", false, false, 65));
    }
}
