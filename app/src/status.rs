//! The connection banner's states and wording, and what the app makes of a refused socket,
//! kept pure so they are tested natively.

use shared::protocol::{close, Millis};
use shared::ErrorCode;

/// Where the link to the room stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not started yet (loading the cache).
    Idle,
    /// A socket is opening or syncing.
    Connecting,
    /// Live.
    Live,
    /// Waiting to reconnect at this time; with what the room said when it turned the last
    /// attempt away for a while (full, too many tabs), when it said something.
    Waiting(Millis, Option<String>),
    /// Closed for good: a retry cannot help (close code and reason).
    Stopped(u16, String),
    /// Refused for good before a socket ever opened, as the room's admission answer says
    /// (its code and message): a browser cannot read a refused upgrade, so the app asks.
    Refused(ErrorCode, String),
}

impl Link {
    /// Whether the link ended for good: no retry, no reconnect.
    pub fn is_final(&self) -> bool {
        matches!(self, Link::Stopped(..) | Link::Refused(..))
    }
}

/// What the banner shows.
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
    if let Link::Refused(_, message) = link {
        return state("offline", message.clone(), false);
    }
    if !online {
        return state(
            "offline",
            "Offline — messages will be sent when you reconnect".into(),
            false,
        );
    }
    match link {
        Link::Waiting(at, note) => {
            let countdown = format!(
                "Reconnecting in {} s…",
                crate::format::seconds_until(now, *at)
            );
            let text = match note {
                Some(note) => format!("{note} {countdown}"),
                None => countdown,
            };
            state("reconnecting", text, true)
        }
        _ if was_connected => state("reconnecting", "Reconnecting…".into(), false),
        _ => state("connecting", "Connecting…".into(), false),
    }
}

/// What the app does with the room's answer to "would you admit me now?", asked after a
/// socket closed before it opened (`GET /api/rooms/<slug>/admission`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterRefusal {
    /// A retry cannot help: stop reconnecting and say why ([`Link::Refused`]).
    Stop(ErrorCode, String),
    /// The session ended: ask for a name again, as a socket closed `unauthorized` does.
    SessionEnded,
    /// Passing, or unknown: keep backing off, saying this meanwhile (or nothing).
    KeepTrying(Option<String>),
}

/// Reads the admission answer: `Ok` for 204 (it would admit us now: the refusal was
/// passing), else the error's code and message — a network failure or an answer that is not
/// the API's error body comes as [`ErrorCode::Unknown`], a server error as its code.
pub fn after_refusal(answer: Result<(), (ErrorCode, &str)>) -> AfterRefusal {
    let (code, message) = match answer {
        Ok(()) => return AfterRefusal::KeepTrying(None),
        Err(refusal) => refusal,
    };
    let said = |fallback: &str| {
        if message.trim().is_empty() {
            fallback.to_owned()
        } else {
            message.to_owned()
        }
    };
    match code {
        ErrorCode::Unauthorized => AfterRefusal::SessionEnded,
        ErrorCode::Forbidden => AfterRefusal::Stop(code, said("You may not join this room.")),
        ErrorCode::Banned => AfterRefusal::Stop(code, said("You are banned from this room.")),
        ErrorCode::NetworkBanned => AfterRefusal::Stop(
            code,
            said("Guests from your network may not join this room for now."),
        ),
        ErrorCode::NotFound => AfterRefusal::Stop(code, said("This room does not exist.")),
        ErrorCode::TooManyConnections => AfterRefusal::KeepTrying(Some(said(
            "You have too many tabs or devices connected to this room.",
        ))),
        ErrorCode::RoomFull => AfterRefusal::KeepTrying(Some(said("This room is full right now."))),
        ErrorCode::RateLimited => {
            AfterRefusal::KeepTrying(Some(said("Too many attempts; waiting a little.")))
        }
        // Network failures, server errors and anything this app does not know: the backoff
        // goes on as if it had not asked.
        _ => AfterRefusal::KeepTrying(None),
    }
}

/// How a link that ended for good leaves the room page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The room does not exist: the page says so instead of the room.
    NotFound,
    /// We were removed while in the room: this notice above it.
    Removed(&'static str),
    /// Anything else final (refused at the door, an old app, an ended session): the banner
    /// says why.
    Other,
}

/// How the link ended, if it did.
pub fn ended(link: &Link) -> Option<Ended> {
    Some(match link {
        Link::Stopped(close::NOT_FOUND, _) | Link::Refused(ErrorCode::NotFound, _) => {
            Ended::NotFound
        }
        Link::Stopped(close::KICKED, _) => {
            Ended::Removed("A moderator removed you from this room. Reload to come back.")
        }
        Link::Stopped(close::BANNED, _) => Ended::Removed("You are banned from this room."),
        Link::Stopped(close::FORBIDDEN, _) => Ended::Removed(
            "You may not be in this room (it is private, or your account was disabled).",
        ),
        Link::Stopped(..) | Link::Refused(..) => Ended::Other,
        _ => return None,
    })
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
        let b = banner_state(&Link::Waiting(4_500, None), true, true, 1_000);
        assert_eq!(b.phase, "reconnecting");
        assert_eq!(b.text, "Reconnecting in 4 s…");
        assert!(b.can_retry);
    }

    #[test]
    fn offline_wins_over_waiting_but_not_over_a_terminal_close() {
        let b = banner_state(&Link::Waiting(4_500, None), true, false, 1_000);
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

    #[test]
    fn a_room_that_refuses_us_for_good_stops_reconnecting_and_says_the_rooms_own_words() {
        let private = "This room is private; you need an invite to join it.";
        let cases = [
            (ErrorCode::Forbidden, private),
            (ErrorCode::Banned, "You are banned from this room."),
            (
                ErrorCode::NetworkBanned,
                "Guests from your network are banned.",
            ),
            (ErrorCode::NotFound, "There is no room named x."),
        ];
        for (code, message) in cases {
            let after = after_refusal(Err((code, message)));
            assert_eq!(after, AfterRefusal::Stop(code, message.into()), "{code}");
            let link = Link::Refused(code, message.into());
            assert!(link.is_final());
            // Offline, in the room's words, with no Retry — whether the browser is online or not.
            for online in [true, false] {
                let b = banner_state(&link, true, online, 0);
                assert_eq!(
                    (b.phase, b.text.as_str(), b.can_retry),
                    ("offline", message, false)
                );
            }
        }
    }

    #[test]
    fn a_refusal_without_words_still_says_why() {
        assert_eq!(
            after_refusal(Err((ErrorCode::Banned, " "))),
            AfterRefusal::Stop(ErrorCode::Banned, "You are banned from this room.".into())
        );
        assert_eq!(
            after_refusal(Err((ErrorCode::Forbidden, ""))),
            AfterRefusal::Stop(ErrorCode::Forbidden, "You may not join this room.".into())
        );
    }

    #[test]
    fn an_ended_session_goes_back_to_the_name_prompt() {
        assert_eq!(
            after_refusal(Err((ErrorCode::Unauthorized, "Sign in first."))),
            AfterRefusal::SessionEnded
        );
    }

    #[test]
    fn a_passing_refusal_keeps_the_backoff_and_says_what_the_room_said() {
        for code in [
            ErrorCode::TooManyConnections,
            ErrorCode::RoomFull,
            ErrorCode::RateLimited,
        ] {
            assert_eq!(
                after_refusal(Err((code, "This room is full right now; try again later."))),
                AfterRefusal::KeepTrying(Some(
                    "This room is full right now; try again later.".into()
                )),
                "{code}"
            );
        }
        let b = banner_state(
            &Link::Waiting(
                11_000,
                Some("This room is full right now; try again later.".into()),
            ),
            true,
            true,
            1_000,
        );
        assert_eq!(b.phase, "reconnecting");
        assert_eq!(
            b.text,
            "This room is full right now; try again later. Reconnecting in 10 s…"
        );
        assert!(b.can_retry);
        assert!(!Link::Waiting(0, None).is_final());
    }

    #[test]
    fn no_answer_a_server_error_or_an_admission_keeps_the_backoff_as_it_was() {
        for answer in [
            Ok(()),
            Err((ErrorCode::Unknown, "Could not reach the server.")),
            Err((ErrorCode::Internal, "Something went wrong on the server.")),
            Err((ErrorCode::ConfigError, "Not configured.")),
            Err((
                ErrorCode::InvalidInput,
                "GET is not supported on /api/rooms/x/admission.",
            )),
        ] {
            assert_eq!(
                after_refusal(answer),
                AfterRefusal::KeepTrying(None),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_missing_room_replaces_the_page_and_a_removal_keeps_its_notice() {
        assert_eq!(
            ended(&Link::Refused(ErrorCode::NotFound, "gone".into())),
            Some(Ended::NotFound)
        );
        assert_eq!(
            ended(&Link::Stopped(close::NOT_FOUND, String::new())),
            Some(Ended::NotFound)
        );
        assert_eq!(
            ended(&Link::Stopped(close::BANNED, "banned".into())),
            Some(Ended::Removed("You are banned from this room."))
        );
        // Refused at the door: the banner alone says why.
        assert_eq!(
            ended(&Link::Refused(ErrorCode::Banned, "You are banned.".into())),
            Some(Ended::Other)
        );
        assert_eq!(ended(&Link::Waiting(0, None)), None);
        assert_eq!(ended(&Link::Live), None);
    }
}
