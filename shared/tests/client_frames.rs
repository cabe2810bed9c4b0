//! Client frames under random input (issue 9, item 7): whatever a socket sends, the room's
//! gate ([`parse_client_frame`]: size, shape, then [`validate_client_message`]) answers with a
//! message that keeps every field rule, or with an error whose code says which kind of wrong
//! it was — never a panic.
//!
//! The rules are restated here independently of `limits.rs` ([`rules_broken`]), so a rule
//! that the gate stops checking fails these properties instead of passing silently.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

use common::frames::{mutated_frame, replacement, valid_message, KEYS};
use common::{any_string, broken_json, config, json_key, json_value};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::error::ErrorCode;
use shared::limits::{
    parse_client_frame, validate_client_message, validate_room_name, validate_topic, CLIENT_ID_MAX,
    EMOJI_MAX_BYTES, FEEDBACK_REASON_MAX_CHARS, FRAME_MAX_BYTES, TEXT_MAX_CHARS,
};
use shared::moderation::{Command, MUTE_MAX_SECONDS};
use shared::protocol::{ClientMessage, Role};

/// The only codes the frame gate may answer with.
const GATE_CODES: [ErrorCode; 3] = [
    ErrorCode::InvalidFrame,
    ErrorCode::InvalidInput,
    ErrorCode::TooLarge,
];

// ---------------------------------------------------------------------------------------------
// The rules, restated.

fn client_id_ok(id: &str) -> bool {
    (1..=CLIENT_ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The codes a message text may be refused with (empty when it is acceptable).
fn text_broken(text: &str) -> Vec<ErrorCode> {
    let mut broken = Vec::new();
    if text.chars().all(char::is_whitespace) {
        broken.push(ErrorCode::InvalidInput);
    }
    if text.chars().count() > TEXT_MAX_CHARS {
        broken.push(ErrorCode::TooLarge);
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        broken.push(ErrorCode::InvalidInput);
    }
    broken
}

/// One emoji within the size cap. What counts as one emoji is the grammar's, proven by its own
/// tests (`shared::emoji`): here the point is that the gate applies it to every reaction.
fn emoji_ok(emoji: &str) -> bool {
    (1..=EMOJI_MAX_BYTES).contains(&emoji.len()) && shared::emoji::is_emoji(emoji)
}

/// Every rule `message` breaks, as the codes each may be refused with. Empty: acceptable.
fn rules_broken(message: &ClientMessage) -> Vec<ErrorCode> {
    let mut broken = Vec::new();
    let mut id = |id: &str| {
        if !client_id_ok(id) {
            broken.push(ErrorCode::InvalidInput);
        }
    };
    match message {
        ClientMessage::Send {
            client_id, text, ..
        }
        | ClientMessage::Edit {
            client_id, text, ..
        }
        | ClientMessage::Reply {
            client_id, text, ..
        } => {
            id(client_id);
            broken.extend(text_broken(text));
        }
        ClientMessage::Delete { client_id, .. }
        | ClientMessage::Stop { client_id, .. }
        | ClientMessage::Regenerate { client_id, .. }
        | ClientMessage::Pin { client_id, .. } => id(client_id),
        ClientMessage::Rate {
            client_id, reason, ..
        } => {
            id(client_id);
            if reason
                .as_ref()
                .is_some_and(|r| r.chars().count() > FEEDBACK_REASON_MAX_CHARS)
            {
                broken.push(ErrorCode::TooLarge);
            }
        }
        ClientMessage::React {
            client_id, emoji, ..
        } => {
            id(client_id);
            if !emoji_ok(emoji) {
                broken.push(ErrorCode::InvalidInput);
            }
        }
        ClientMessage::Moderate { client_id, command } => {
            id(client_id);
            match command {
                Command::Mute { seconds, .. } if !(1..=MUTE_MAX_SECONDS).contains(seconds) => {
                    broken.push(ErrorCode::InvalidInput);
                }
                Command::SetRole {
                    role: Role::Unknown,
                    ..
                } => broken.push(ErrorCode::InvalidInput),
                Command::UpdateRoom { name, topic, .. } => {
                    // Labels have their own properties in `inputs.rs`; here they only need to
                    // be checked at all.
                    if let Some(Err(e)) = name.as_deref().map(validate_room_name) {
                        broken.push(e.code);
                    }
                    if let Some(Err(e)) = topic.as_deref().map(validate_topic) {
                        broken.push(e.code);
                    }
                }
                _ => {}
            }
        }
        ClientMessage::Hello { .. }
        | ClientMessage::History { .. }
        | ClientMessage::Read { .. }
        | ClientMessage::Thread { .. }
        | ClientMessage::Pins {}
        | ClientMessage::Members {}
        | ClientMessage::Typing {}
        | ClientMessage::Ping {}
        | ClientMessage::CatchUp { .. }
        | ClientMessage::Presence { .. }
        | ClientMessage::Watch { .. } => {}
    }
    broken
}

/// Runs one raw frame through the gate and checks everything the gate promises about it.
fn check_frame(raw: &str) -> Result<(), TestCaseError> {
    let result = parse_client_frame(raw);
    if let Err(e) = &result {
        prop_assert!(GATE_CODES.contains(&e.code), "{:?}", e);
    }
    if raw.len() > FRAME_MAX_BYTES {
        prop_assert_eq!(result.map_err(|e| e.code), Err(ErrorCode::TooLarge));
        return Ok(());
    }
    let parsed = serde_json::from_str::<ClientMessage>(raw);
    match (result, parsed) {
        (Err(e), Err(_)) => prop_assert_eq!(e.code, ErrorCode::InvalidFrame, "{}", e),
        (Err(e), Ok(message)) => {
            let broken = rules_broken(&message);
            prop_assert!(
                broken.contains(&e.code),
                "refused {:?} with {:?}, but the rules it breaks are {:?}",
                message,
                e,
                broken
            );
            prop_assert!(!e.message.is_empty());
            prop_assert_eq!(
                validate_client_message(&message).map_err(|e| e.code),
                Err(e.code)
            );
        }
        (Ok(message), parsed) => {
            prop_assert_eq!(Some(&message), parsed.as_ref().ok());
            let broken = rules_broken(&message);
            prop_assert!(
                broken.is_empty(),
                "accepted {:?}, which breaks {:?}",
                message,
                broken
            );
            // What the room accepted reads back as the same message (it may be logged, echoed
            // or stored as JSON).
            let again = serde_json::to_string(&message).unwrap();
            prop_assert_eq!(
                serde_json::from_str::<ClientMessage>(&again).ok(),
                Some(message)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn a_mutated_valid_frame_is_accepted_only_within_the_rules_and_refused_with_its_code(
        raw in mutated_frame()
    ) {
        check_frame(&raw)?;
    }

    #[test]
    fn any_object_tagged_with_a_known_type_is_handled(
        kind in prop::sample::select(KEYS),
        fields in prop::collection::vec((json_key(KEYS), replacement()), 0..6),
    ) {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), json!(kind));
        check_frame(&Value::Object(object).to_string())?;
    }
}

proptest! {
    #![proptest_config(config(800))]

    #[test]
    fn a_valid_frame_of_every_variant_is_accepted_as_itself(message in valid_message()) {
        let raw = serde_json::to_string(&message).unwrap();
        prop_assert_eq!(parse_client_frame(&raw), Ok(message));
    }

    #[test]
    fn any_json_value_is_accepted_only_within_the_rules_and_refused_with_its_code(
        value in json_value(KEYS)
    ) {
        check_frame(&value.to_string())?;
    }

    #[test]
    fn broken_json_is_an_invalid_frame(raw in broken_json(json_value(KEYS))) {
        check_frame(&raw)?;
    }

    #[test]
    fn any_string_is_handled(raw in any_string()) {
        check_frame(&raw)?;
    }

    #[test]
    fn any_bytes_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // A socket's text frames are UTF-8 by the time the room sees them; binary frames are
        // decoded the same way (lossily) before they reach the gate.
        check_frame(&String::from_utf8_lossy(&bytes))?;
        let _ = serde_json::from_slice::<ClientMessage>(&bytes);
    }

    #[test]
    fn a_frame_over_the_size_limit_is_too_large_whatever_it_holds(
        message in valid_message(),
        padding in FRAME_MAX_BYTES..FRAME_MAX_BYTES + 64,
    ) {
        let raw = format!("{}{}", serde_json::to_string(&message).unwrap(), " ".repeat(padding));
        prop_assert_eq!(parse_client_frame(&raw).map_err(|e| e.code), Err(ErrorCode::TooLarge));
    }
}

// ---------------------------------------------------------------------------------------------
// Examples: each kind of refusal with its code, so a change of code is seen at once.

fn code(raw: &str) -> Option<ErrorCode> {
    parse_client_frame(raw).err().map(|e| e.code)
}

#[test]
fn every_refusal_of_the_gate_has_one_of_three_codes() {
    let cases = [
        ("", ErrorCode::InvalidFrame),
        ("{", ErrorCode::InvalidFrame),
        (
            r#"{"type":"send","client_id":"a","text":"hi","text":"x"}"#,
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"send","client_id":"a","text":"\ud800"}"#,
            ErrorCode::InvalidFrame,
        ),
        (r#"{"type":"read","seq":-1}"#, ErrorCode::InvalidFrame),
        (
            r#"{"type":"read","seq":18446744073709551616}"#,
            ErrorCode::InvalidFrame,
        ),
        (r#"{"type":"read","seq":1.0}"#, ErrorCode::InvalidFrame),
        (
            r#"{"type":"hello","protocol":4294967296}"#,
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"Send","client_id":"a","text":"hi"}"#,
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"moderate","client_id":"a","command":{"action":"mute","user_id":"u"}}"#,
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"moderate","client_id":"a","command":{"action":"kick","user_id":"u","x":1}}"#,
            ErrorCode::InvalidFrame,
        ),
        (
            r#"{"type":"send","client_id":"a b","text":"hi"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"send","client_id":"","text":"hi"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"send","client_id":"é","text":"hi"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"send","client_id":"a","text":"\u2028\u3000"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"send","client_id":"a","text":"hi\u0000"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"send","client_id":"a","text":"hi\u0085"}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"react","client_id":"a","target":1,"emoji":"+1","add":true}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"moderate","client_id":"a","command":{"action":"mute","user_id":"u","seconds":0}}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"moderate","client_id":"a","command":{"action":"set_role","user_id":"u","role":"god"}}"#,
            ErrorCode::InvalidInput,
        ),
        (
            r#"{"type":"moderate","client_id":"a","command":{"action":"update_room","name":"!!!"}}"#,
            ErrorCode::InvalidInput,
        ),
    ];
    for (raw, expected) in cases {
        assert_eq!(code(raw), Some(expected), "{raw}");
    }
    let long_text = json!({"type":"send","client_id":"a","text":"é".repeat(TEXT_MAX_CHARS + 1)});
    assert_eq!(code(&long_text.to_string()), Some(ErrorCode::TooLarge));
    let long_reason = json!({"type":"rate","client_id":"a","target":1,"vote":"up",
        "reason":"x".repeat(FEEDBACK_REASON_MAX_CHARS + 1)});
    assert_eq!(code(&long_reason.to_string()), Some(ErrorCode::TooLarge));
    let long_name = json!({"type":"moderate","client_id":"a",
        "command":{"action":"update_room","name":"x".repeat(61)}});
    assert_eq!(code(&long_name.to_string()), Some(ErrorCode::TooLarge));
}
