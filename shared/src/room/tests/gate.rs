//! The frame gate: parsing, the handshake, rate limits, flooding, typing and presence.

use super::*;

#[test]
fn an_invalid_frame_gets_an_error_and_nothing_is_broadcast() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    let effects = f.frame(&ann, serde_json::json!({"type":"send","text":"no id"}));
    assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
    assert_eq!(broadcasts(&effects), 0);
    let effects = f.send(&ann, "c", &"x".repeat(limits::TEXT_MAX_CHARS + 1));
    assert_eq!(error_of(&effects), ErrorCode::TooLarge);
    assert_eq!(f.room.head(), 0);
    // The room keeps working.
    assert_eq!(ack_of(&f.send(&ann, "ok", "fine")).0, 1);
}

#[test]
fn a_binary_frame_is_refused_with_invalid_frame() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    let effects = f
        .room
        .on_frame(&ann, &mut f.limiter, Frame::Binary(10), 5, Vec::new);
    assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
}

#[test]
fn anything_before_hello_closes_the_connection() {
    let mut f = Fixture::new();
    let mut ann = conn("ann", Role::Member);
    ann.joined = false;
    let effects = f.send(&ann, "c", "hi");
    assert!(effects.contains(&Effect::Close(
        close::INVALID_HANDSHAKE,
        ErrorCode::InvalidFrame
    )));
    assert_eq!(f.room.head(), 0);
}

#[test]
fn a_hello_with_another_protocol_version_is_refused_and_closed() {
    let mut f = Fixture::new();
    let mut ann = conn("ann", Role::Member);
    ann.joined = false;
    let effects = f.frame(&ann, serde_json::json!({"type":"hello","protocol":99}));
    assert_eq!(error_of(&effects), ErrorCode::UnsupportedProtocol);
    assert!(effects.contains(&Effect::Close(
        close::UNSUPPORTED_PROTOCOL,
        ErrorCode::UnsupportedProtocol
    )));
    assert!(!effects.contains(&Effect::Joined));
}

#[test]
fn sends_beyond_the_burst_are_rate_limited_with_the_client_id_and_a_retry_time() {
    let mut room = fresh_room();
    let ann = conn("ann", Role::Member);
    let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
    let burst = RateLimits::default().send_burst as usize;
    for i in 0..burst {
        let raw =
            serde_json::json!({"type":"send","client_id":format!("c{i}"),"text":"x"}).to_string();
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(&raw), 0, Vec::new);
        ack_of(&effects);
    }
    let raw = r#"{"type":"send","client_id":"late","text":"x"}"#;
    let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 0, Vec::new);
    let Effect::Reply(ServerMessage::Error {
        code,
        client_id,
        retry_after_ms,
        ..
    }) = &effects[0]
    else {
        panic!()
    };
    assert_eq!(*code, ErrorCode::RateLimited);
    assert_eq!(client_id.as_deref(), Some("late"));
    assert_eq!(*retry_after_ms, Some(200));
    // After the retry time the same send goes through.
    let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 200, Vec::new);
    ack_of(&effects);
}

#[test]
fn a_connection_that_keeps_flooding_is_closed() {
    let mut room = fresh_room();
    let ann = conn("ann", Role::Member);
    let limits = RateLimits::default();
    let mut limiter = ConnLimiter::new(limits, 0);
    let mut closed_after = None;
    for i in 0..(limits.frame_burst as usize + FLOOD_STRIKES as usize + 1) {
        let effects = room.on_frame(
            &ann,
            &mut limiter,
            Frame::Text(r#"{"type":"typing"}"#),
            0,
            Vec::new,
        );
        if effects.contains(&Effect::Close(close::RATE_LIMITED, ErrorCode::RateLimited)) {
            closed_after = Some(i);
            break;
        }
    }
    assert_eq!(
        closed_after,
        Some(limits.frame_burst as usize + FLOOD_STRIKES as usize - 1)
    );
}

#[test]
fn typing_goes_to_the_others_and_ping_gets_a_pong() {
    let mut f = Fixture::new();
    let ann = conn("ann", Role::Member);
    let effects = f.frame(&ann, serde_json::json!({"type":"typing"}));
    assert!(matches!(
        effects.as_slice(),
        [Effect::BroadcastOthers(ServerMessage::Typing { .. })]
    ));
    let effects = f.frame(&ann, serde_json::json!({"type":"ping"}));
    assert_eq!(effects, vec![Effect::Reply(ServerMessage::Pong {})]);
}

#[test]
fn a_user_is_present_only_through_a_joined_connection() {
    let ann = conn("ann", Role::Member);
    let mut bob = conn("bob", Role::Member);
    bob.joined = false;
    assert!(is_present([&ann, &bob], "ann"));
    assert!(!is_present([&ann, &bob], "bob"), "not before the hello");
    assert!(!is_present([], "ann"));
}

#[test]
fn presence_lists_each_joined_user_once() {
    let ann1 = conn("ann", Role::Member);
    let ann2 = conn("ann", Role::Member);
    let mut bob = conn("bob", Role::Member);
    bob.joined = false;
    let members = presence([&ann1, &ann2, &bob]);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, "ann");
}

#[test]
fn a_socket_past_the_per_user_or_the_per_room_cap_is_refused_with_its_code() {
    use crate::limits::{SOCKETS_PER_ROOM, SOCKETS_PER_USER};
    assert!(may_open_socket(SOCKETS_PER_USER - 1, SOCKETS_PER_ROOM - 1).is_ok());
    let mine = may_open_socket(SOCKETS_PER_USER, 0).unwrap_err();
    assert_eq!(mine.code, ErrorCode::TooManyConnections);
    assert_eq!(mine.code.http_status(), 429);
    let full = may_open_socket(0, SOCKETS_PER_ROOM).unwrap_err();
    assert_eq!(full.code, ErrorCode::RoomFull);
    assert_eq!(full.code.http_status(), 503);
}
