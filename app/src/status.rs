//! The connection banner's states and wording, kept pure so they are tested natively.

use shared::protocol::{close, Millis};

/// Where the link to the room stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not started yet (loading the cache).
    Idle,
    /// A socket is opening or syncing.
    Connecting,
    /// Live.
    Live,
    /// Waiting to reconnect at this time.
    Waiting(Millis),
    /// Closed for good: a retry cannot help (close code and reason).
    Stopped(u16, String),
}

/// What the connection banner shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerState {
    /// `data-phase`: connecting, live, reconnecting or offline.
    pub phase: &'static str,
    /// The text.
    pub text: String,
    /// Whether "Retry now" is offered.
    pub can_retry: bool,
}

/// The banner for a link state. Pure, so its wording is tested natively.
pub fn banner_state(link: &Link, was_connected: bool, online: bool, now: Millis) -> BannerState {
    let state = |phase, text: String, can_retry| BannerState {
        phase,
        text,
        can_retry,
    };
    if let Link::Live = link {
        return state("live", "Connected".into(), false);
    }
    if let Link::Stopped(code, reason) = link {
        let text = match *code {
            close::NOT_FOUND => "This room does not exist.".to_owned(),
            close::UNAUTHORIZED => {
                "Your session has ended. Choose a display name to continue.".into()
            }
            close::FORBIDDEN => "You may not join this room.".into(),
            close::UNSUPPORTED_PROTOCOL => {
                "This version of the app is out of date. Reload the page.".into()
            }
            _ if !reason.is_empty() => reason.clone(),
            _ => "Disconnected.".into(),
        };
        return state("offline", text, false);
    }
    if !online {
        return state(
            "offline",
            "Offline — messages will be sent when you reconnect".into(),
            false,
        );
    }
    match link {
        Link::Waiting(at) => state(
            "reconnecting",
            format!(
                "Reconnecting in {} s…",
                crate::format::seconds_until(now, *at)
            ),
            true,
        ),
        _ if was_connected => state("reconnecting", "Reconnecting…".into(), false),
        _ => state("connecting", "Connecting…".into(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_connection_says_connecting_and_later_ones_reconnecting() {
        assert_eq!(
            banner_state(&Link::Connecting, false, true, 0).phase,
            "connecting"
        );
        assert_eq!(
            banner_state(&Link::Connecting, true, true, 0).phase,
            "reconnecting"
        );
    }

    #[test]
    fn a_wait_counts_down_and_offers_retry_now() {
        let b = banner_state(&Link::Waiting(4_500), true, true, 1_000);
        assert_eq!(b.phase, "reconnecting");
        assert_eq!(b.text, "Reconnecting in 4 s…");
        assert!(b.can_retry);
    }

    #[test]
    fn offline_wins_over_waiting_but_not_over_a_terminal_close() {
        let b = banner_state(&Link::Waiting(4_500), true, false, 1_000);
        assert_eq!(b.phase, "offline");
        assert_eq!(b.text, "Offline — messages will be sent when you reconnect");
        let stopped = banner_state(
            &Link::Stopped(close::NOT_FOUND, String::new()),
            true,
            false,
            0,
        );
        assert_eq!(stopped.text, "This room does not exist.");
        assert!(!stopped.can_retry);
    }

    #[test]
    fn live_is_live_even_if_the_browser_reports_offline() {
        assert_eq!(banner_state(&Link::Live, true, false, 0).phase, "live");
    }
}
