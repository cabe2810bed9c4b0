//! The message list's scroll decisions, separated from the DOM so they can be tested natively.

/// A scroll container's geometry, in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// `scrollTop`.
    pub top: f64,
    /// `scrollHeight`.
    pub height: f64,
    /// `clientHeight`.
    pub client: f64,
}

/// Within this many pixels of the end counts as "at the bottom" (sub-pixel rounding and the
/// last row's margin must not unstick the list).
const BOTTOM_SLACK: f64 = 48.0;
/// Within this many pixels of the start, the next older page is requested.
const TOP_PRELOAD: f64 = 300.0;

impl Metrics {
    /// Whether the user is reading the newest messages.
    pub fn at_bottom(&self) -> bool {
        self.height - self.top - self.client <= BOTTOM_SLACK
    }

    /// Whether the user is close enough to the start that the older page should load.
    pub fn near_top(&self) -> bool {
        self.top <= TOP_PRELOAD
    }
}

/// Rows rendered at first, and added each time the reader reaches the top of what is rendered.
/// Everything loaded stays in memory, but only this window of the newest rows is in the DOM
/// until the reader scrolls up, so a new message costs the same with 100 or 10,000 loaded.
pub const WINDOW: usize = 200;

/// What reaching the top of the rendered rows does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AtTop {
    /// Render more of the rows already loaded (no network).
    ShowMore,
    /// Everything loaded is rendered: ask the room for the page before it.
    LoadOlder,
    /// This is the beginning of the room.
    Nothing,
}

/// Decides what reaching the top does, given how many loaded rows are not rendered.
pub fn at_top(hidden: usize, has_more: bool) -> AtTop {
    if hidden > 0 {
        AtTop::ShowMore
    } else if has_more {
        AtTop::LoadOlder
    } else {
        AtTop::Nothing
    }
}

/// The index of the first rendered row when the newest `shown` of `len` rows are rendered.
pub fn window_start(len: usize, shown: usize) -> usize {
    len.saturating_sub(shown)
}

/// What the list does after its rows changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjust {
    /// Scroll to the end (the user was there, or sent something).
    ToBottom,
    /// Set `scrollTop` to this, so the rows the user was reading stay put after older rows were
    /// inserted above them.
    KeepPlace(f64),
    /// New rows arrived below while the user reads older ones: offer the "New messages" button.
    ShowNewButton,
    /// Nothing to do.
    Nothing,
}

/// Decides the adjustment after an update. `before` is the geometry last seen before the
/// update, `height_now` the new `scrollHeight`; `prepended` and `appended` say where rows came.
pub fn adjust(
    before: Metrics,
    height_now: f64,
    prepended: bool,
    appended: bool,
    was_at_bottom: bool,
) -> Adjust {
    if was_at_bottom && !prepended {
        return if appended || height_now != before.height {
            Adjust::ToBottom
        } else {
            Adjust::Nothing
        };
    }
    if prepended {
        return Adjust::KeepPlace(before.top + (height_now - before.height));
    }
    if appended {
        Adjust::ShowNewButton
    } else {
        Adjust::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_of_the_window_shows_loaded_rows_before_asking_the_room() {
        assert_eq!(at_top(5, true), AtTop::ShowMore);
        assert_eq!(at_top(0, true), AtTop::LoadOlder);
        assert_eq!(at_top(0, false), AtTop::Nothing);
    }

    #[test]
    fn only_the_newest_rows_of_a_long_history_are_rendered() {
        assert_eq!(window_start(10_000, WINDOW), 10_000 - WINDOW);
        assert_eq!(window_start(50, WINDOW), 0);
    }

    fn at(top: f64) -> Metrics {
        Metrics {
            top,
            height: 2_000.0,
            client: 500.0,
        }
    }

    #[test]
    fn the_end_of_the_list_counts_as_the_bottom_within_a_little_slack() {
        assert!(at(1_500.0).at_bottom());
        assert!(at(1_460.0).at_bottom());
        assert!(!at(1_000.0).at_bottom());
    }

    #[test]
    fn new_messages_keep_a_reader_at_the_bottom_pinned_there() {
        assert_eq!(
            adjust(at(1_500.0), 2_100.0, false, true, true),
            Adjust::ToBottom
        );
    }

    #[test]
    fn new_messages_do_not_move_a_reader_scrolled_up_but_offer_the_button() {
        assert_eq!(
            adjust(at(200.0), 2_100.0, false, true, false),
            Adjust::ShowNewButton
        );
    }

    #[test]
    fn an_older_page_keeps_the_rows_being_read_in_place() {
        assert_eq!(
            adjust(at(10.0), 3_000.0, true, false, false),
            Adjust::KeepPlace(1_010.0)
        );
    }

    #[test]
    fn near_top_triggers_loading_only_close_to_the_start() {
        assert!(at(0.0).near_top());
        assert!(!at(800.0).near_top());
    }
}
