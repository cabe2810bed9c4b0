//! Pure text formatting for the UI: times, counters, typing lines. No browser APIs, so it is
//! unit-tested natively.

use shared::limits::TEXT_MAX_CHARS;
use shared::protocol::Millis;

/// `HH:MM` from local hours and minutes.
pub fn hh_mm(hours: u32, minutes: u32) -> String {
    format!("{hours:02}:{minutes:02}")
}

/// `2026-03-02` in UTC (the day the room's prompts name too).
pub fn utc_date(at: Millis) -> String {
    shared::search::format_day(at)
}

/// `2026-03-02`.
pub fn ymd(year: i64, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// A short "how long ago" for the room list ("just now", "5 min ago", "3 h ago", "2 d ago").
pub fn ago(now: Millis, then: Millis) -> String {
    let secs = (now - then).max(0) / 1000;
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Characters left before the counter is shown.
const COUNTER_FROM: usize = 500;

/// The composer's counter ("3,612 / 4,000" style, plainly "3612/4000"), shown only near the
/// limit so it does not distract while typing ordinary messages.
pub fn char_counter(chars: usize) -> Option<String> {
    (chars + COUNTER_FROM > TEXT_MAX_CHARS).then(|| format!("{chars}/{TEXT_MAX_CHARS}"))
}

/// "Ann is typing…", "Ann and Bob are typing…", "Several people are typing…".
pub fn typing_line(names: &[&str]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [a, b] => Some(format!("{a} and {b} are typing…")),
        _ => Some("Several people are typing…".to_owned()),
    }
}

/// "Covers 40 of 120 unread messages" under a catch-up (or "… messages in this thread" under
/// a thread summary), when the prompt could not hold all of them.
pub fn coverage(thread: bool, considered: u32, total: u32) -> Option<String> {
    (considered < total).then(|| {
        if thread {
            format!("Covers {considered} of {total} messages in this thread")
        } else {
            format!("Covers {considered} of {total} unread messages")
        }
    })
}

/// Whole seconds until `at`, rounded up, for the reconnect countdown.
pub fn seconds_until(now: Millis, at: Millis) -> i64 {
    ((at - now).max(0) + 999) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_zero_padded_to_hh_mm() {
        assert_eq!(hh_mm(7, 5), "07:05");
        assert_eq!(hh_mm(23, 59), "23:59");
    }

    #[test]
    fn utc_dates_are_year_month_day() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_772_409_600_000), "2026-03-02");
        assert_eq!(utc_date(1_772_409_600_000 - 1), "2026-03-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn ago_picks_the_largest_whole_unit() {
        assert_eq!(ago(10_000, 9_000), "just now");
        assert_eq!(ago(5 * 60_000, 0), "5 min ago");
        assert_eq!(ago(3 * 3_600_000 + 1, 0), "3 h ago");
        assert_eq!(ago(2 * 86_400_000, 0), "2 d ago");
    }

    #[test]
    fn a_timestamp_from_the_future_reads_as_just_now() {
        assert_eq!(ago(0, 60_000), "just now");
    }

    #[test]
    fn the_counter_appears_only_near_the_limit() {
        assert_eq!(char_counter(10), None);
        assert_eq!(char_counter(TEXT_MAX_CHARS - COUNTER_FROM), None);
        assert_eq!(
            char_counter(TEXT_MAX_CHARS - 1),
            Some(format!("{}/{}", TEXT_MAX_CHARS - 1, TEXT_MAX_CHARS))
        );
        assert!(
            char_counter(TEXT_MAX_CHARS + 3).is_some(),
            "over the limit it still shows"
        );
    }

    #[test]
    fn typing_lines_name_one_or_two_people_and_summarise_more() {
        assert_eq!(typing_line(&[]), None);
        assert_eq!(typing_line(&["Ann"]).as_deref(), Some("Ann is typing…"));
        assert_eq!(
            typing_line(&["Ann", "Bob"]).as_deref(),
            Some("Ann and Bob are typing…")
        );
        assert_eq!(
            typing_line(&["A", "B", "C"]).as_deref(),
            Some("Several people are typing…")
        );
    }

    #[test]
    fn coverage_is_noted_only_when_some_messages_were_left_out() {
        assert_eq!(coverage(false, 8, 8), None);
        assert_eq!(
            coverage(false, 40, 120).as_deref(),
            Some("Covers 40 of 120 unread messages")
        );
        assert_eq!(
            coverage(true, 3, 9).as_deref(),
            Some("Covers 3 of 9 messages in this thread")
        );
    }

    #[test]
    fn the_countdown_rounds_up_and_never_goes_negative() {
        assert_eq!(seconds_until(0, 1), 1);
        assert_eq!(seconds_until(0, 3_000), 3);
        assert_eq!(seconds_until(0, 3_001), 4);
        assert_eq!(seconds_until(5_000, 0), 0);
    }
}
