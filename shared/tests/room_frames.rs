//! The room under random frames (issue 9, item 7): two members of a room on real SQLite say
//! hello and then send any sequence of frames — valid ones of every variant aimed at the
//! messages that exist, mutated ones, and arbitrary text. The room never panics, never fails
//! in its storage, refuses with the codes a client can act on (never `internal`), and every
//! frame it sends reads back in the client's decoder as what it sent.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

use common::frames::{mutated_frame, valid_message};
use common::{any_string, config};
use proptest::prelude::*;
use shared::error::ErrorCode;
use shared::protocol::{Author, Role, RoomInfo, ServerMessage};
use shared::rate_limit::RateLimits;
use shared::room::store::sqlite::Sqlite;
use shared::room::{presence, Conn, ConnLimiter, Effect, Frame, Room, SqlStore};

fn generous() -> RateLimits {
    RateLimits {
        send_burst: 1e9,
        send_per_second: 1e9,
        frame_burst: 1e9,
        frame_per_second: 1e9,
    }
}

fn conn(id: &str, role: Role) -> Conn {
    Conn::new(Author {
        id: id.into(),
        name: id.to_uppercase(),
        role,
    })
}

/// A frame from one of the two members.
fn frame() -> impl Strategy<Value = (bool, String)> {
    let raw = prop_oneof![
        // Valid messages mostly aim at low sequence numbers, where the messages are.
        3 => valid_message().prop_map(|m| {
            let mut v = serde_json::to_value(m).unwrap();
            for key in ["target", "seq", "root", "before", "after"] {
                if let Some(n) = v.get(key).and_then(serde_json::Value::as_u64) {
                    v[key] = (n % 12).into();
                }
            }
            v.to_string()
        }),
        2 => mutated_frame(),
        1 => any_string(),
    ];
    (any::<bool>(), raw)
}

/// Codes that say what the client did wrong or what it may not do; `internal` (a failure of
/// the room itself) and `unknown` are never among them.
const ROOM_CODES: &[ErrorCode] = &[
    ErrorCode::InvalidFrame,
    ErrorCode::InvalidInput,
    ErrorCode::TooLarge,
    ErrorCode::RateLimited,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::UnsupportedProtocol,
    ErrorCode::Conflict,
    ErrorCode::AiUnavailable,
    ErrorCode::AiBusy,
    ErrorCode::Muted,
    ErrorCode::Banned,
    ErrorCode::Kicked,
];

fn check_sent(message: &ServerMessage) -> Result<(), TestCaseError> {
    if let ServerMessage::Error { code, .. } = message {
        prop_assert!(ROOM_CODES.contains(code), "{:?}", message);
    }
    let text = serde_json::to_string(message).unwrap();
    let back = ServerMessage::from_json(&text)
        .map_err(|e| TestCaseError::fail(format!("the client cannot read {text}: {e}")))?;
    prop_assert_eq!(&back, message);
    Ok(())
}

/// Runs the frames; returns how many events the room broadcast and how many errors it sent.
fn run(frames: &[(bool, String)]) -> Result<(usize, usize), TestCaseError> {
    let info = RoomInfo {
        slug: "fuzz".into(),
        name: "Fuzz".into(),
        topic: String::new(),
        created_at: 0,
        last_activity: None,
        message_count: 0,
        assistant: Default::default(),
        private: false,
    };
    let mut room = Room::open(SqlStore::open(Sqlite::memory().unwrap()).unwrap(), info).unwrap();
    let mut conns = [conn("ann", Role::Owner), conn("bob", Role::Member)];
    let mut limiters = [
        ConnLimiter::new(generous(), 0),
        ConnLimiter::new(generous(), 0),
    ];
    let hello = r#"{"type":"hello","protocol":1}"#.to_owned();
    let script = [(true, hello.clone()), (false, hello)];
    let (mut events, mut errors) = (0, 0);
    for (now, (first, raw)) in (1_000i64..).zip(script.iter().chain(frames)) {
        let i = usize::from(!*first);
        let others: Vec<Conn> = conns.to_vec();
        let effects = room.on_frame(
            &conns[i],
            &mut limiters[i],
            Frame::Text(raw),
            now * 10,
            || presence(others.iter()),
        );
        for effect in effects {
            match effect {
                Effect::Reply(m)
                | Effect::Broadcast(m)
                | Effect::BroadcastOthers(m)
                | Effect::ToUser(_, m)
                | Effect::Notify(m)
                | Effect::NotifyUser(_, m) => {
                    check_sent(&m)?;
                    events += usize::from(matches!(m, ServerMessage::Event { .. }));
                    errors += usize::from(matches!(m, ServerMessage::Error { .. }));
                }
                Effect::Joined => conns[i].joined = true,
                Effect::Log(detail) => {
                    return Err(TestCaseError::fail(format!(
                        "storage failure on {raw:?}: {detail}"
                    )))
                }
                Effect::Close(_, code) | Effect::CloseUser(_, _, code) => {
                    prop_assert!(ROOM_CODES.contains(&code), "closed with {:?}", code);
                }
                _ => {}
            }
        }
    }
    Ok((events, errors))
}

proptest! {
    // Each case is a room on SQLite and up to a dozen frames.
    #![proptest_config(config(300))]

    #[test]
    fn the_room_answers_any_frames_with_readable_frames_and_client_codes(
        frames in prop::collection::vec(frame(), 1..12)
    ) {
        run(&frames)?;
    }
}

#[test]
fn the_room_of_the_property_stores_what_members_send_and_refuses_what_they_may_not() {
    let frames = [
        (false, r#"{"type":"send","client_id":"a","text":"hi"}"#),
        (
            true,
            r#"{"type":"edit","client_id":"b","target":1,"text":"mine?"}"#,
        ),
        (
            true,
            r#"{"type":"send","client_id":"c","text":"bell\u0007"}"#,
        ),
    ];
    let frames: Vec<(bool, String)> = frames.iter().map(|(f, s)| (*f, (*s).to_owned())).collect();
    let (events, errors) = run(&frames).unwrap();
    assert_eq!((events, errors), (1, 2));
}
