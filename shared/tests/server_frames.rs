//! Server frames under random input (issue 9, item 7): the app decodes every frame a room
//! sends with the hand-written [`ServerMessage`] / [`EventKind`] deserializers. Whatever
//! arrives, decoding never panics; a frame or event kind this build does not know reads as
//! `Unknown` (the protocol's rule that old clients ignore what newer rooms add); and the
//! client's state machines ([`ClientRoom`], [`UnreadTracker`]) take any decoded frame without
//! panicking.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

use common::{any_string, broken_json, config, edge_number, edge_string, json_key, json_value};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::client::{ClientRoom, PendingOp};
use shared::protocol::{Event, EventKind, ServerMessage};
use shared::unread::UnreadTracker;

/// Every field name of a server frame, of the structs inside it, and the tags it uses.
const KEYS: &[&str] = &[
    "type",
    "protocol",
    "you",
    "room",
    "head",
    "present",
    "messages",
    "has_more",
    "reason",
    "events",
    "done",
    "event",
    "client_id",
    "seq",
    "duplicate",
    "code",
    "message",
    "retry_after_ms",
    "member",
    "user_id",
    "name",
    "target",
    "version",
    "offset",
    "text",
    "read",
    "root",
    "replies",
    "members",
    "counts",
    "role",
    "muted_until",
    "by",
    "main",
    "mentions",
    "removed",
    "kind",
    "prompt",
    "asker",
    "status",
    "error",
    "meta",
    "vote",
    "thread",
    "also_in_room",
    "emoji",
    "add",
    "pinned",
    "at",
    "author",
    "id",
    "slug",
    "topic",
    "created_at",
    "last_activity",
    "message_count",
    "assistant",
    "private",
    "avatar",
    "edited_at",
    "deleted",
    "answer",
    "reactions",
    "count",
    "last_at",
    "unread",
    "state",
    "previous",
    "votes",
    "provider",
    "model",
    "tokens_in",
    "tokens_out",
    "first_token_ms",
    "total_ms",
    "welcome",
    "history",
    "replay",
    "ack",
    "presence_join",
    "presence_leave",
    "typing",
    "stream",
    "pinned",
    "pong",
    "applied",
    "member_updated",
    "profile_updated",
    "room_updated",
    "activity",
    "edit",
    "delete",
    "answer_status",
    "feedback",
    "reply",
    "react",
    "pin",
    "latest",
    "reset",
    "older",
    "owner",
    "moderator",
    "member",
    "read_only",
    "queued",
    "streaming",
    "stopped",
    "failed",
    "up",
    "down",
    "none",
    "rate_limited",
    "invalid_frame",
];

/// The `type` of every frame this build knows.
const FRAME_TYPES: &[&str] = &[
    "welcome",
    "history",
    "replay",
    "event",
    "ack",
    "error",
    "presence_join",
    "presence_leave",
    "typing",
    "stream",
    "thread",
    "pinned",
    "members",
    "unread",
    "pong",
    "applied",
    "member_updated",
    "profile_updated",
    "room_updated",
    "activity",
];

/// The `kind` of every event this build knows.
const EVENT_KINDS: &[&str] = &[
    "message",
    "edit",
    "delete",
    "answer",
    "answer_status",
    "feedback",
    "reply",
    "react",
    "pin",
];

fn author() -> Value {
    json!({"id": "u", "name": "Ann", "role": "member"})
}

fn member() -> Value {
    json!({"user_id": "u", "name": "Ann", "avatar": "/api/avatars/u/1"})
}

fn room() -> Value {
    json!({"slug": "s", "name": "S", "topic": "t", "created_at": 1, "last_activity": 2,
        "message_count": 3, "assistant": "mention", "private": false})
}

fn view(seq: u64) -> Value {
    json!({"seq": seq, "at": 5, "author": author(), "client_id": "c", "text": "hi",
        "edited_at": null, "deleted": false, "thread": 1, "also_in_room": true,
        "replies": {"count": 2, "last_at": 7}, "pinned": true,
        "reactions": [{"emoji": "👍", "by": [member()]}],
        "answer": {"prompt": 1, "asker": "u", "state": "streaming", "version": 1,
            "previous": ["a"], "votes": {"u": "up"},
            "error": {"code": "ai_failed", "message": "m"},
            "meta": {"provider": "p", "model": "m", "tokens_in": 1, "tokens_out": 2,
                "first_token_ms": 3, "total_ms": 4}}})
}

/// One event of every kind.
fn events() -> Vec<Value> {
    let kinds = [
        json!({"kind": "message", "text": "hi"}),
        json!({"kind": "edit", "target": 1, "text": "b"}),
        json!({"kind": "delete", "target": 1}),
        json!({"kind": "answer", "prompt": 1, "asker": "u", "thread": 1}),
        json!({"kind": "answer_status", "target": 2, "version": 2, "status": "done", "text": "x",
            "error": {"code": "ai_timeout", "message": "slow"},
            "meta": {"provider": "p", "model": "m", "tokens_in": 1, "tokens_out": 2,
                "first_token_ms": 3, "total_ms": 4}}),
        json!({"kind": "feedback", "target": 2, "vote": "down"}),
        json!({"kind": "reply", "thread": 1, "text": "r", "also_in_room": true}),
        json!({"kind": "react", "target": 1, "emoji": "🎉", "add": true}),
        json!({"kind": "pin", "target": 1, "pinned": true}),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            json!({"seq": i + 1, "at": 10, "author": author(), "client_id": "c", "kind": kind})
        })
        .collect()
}

/// One valid frame of every type.
fn frames() -> Vec<Value> {
    let mut frames = vec![
        json!({"type": "welcome", "protocol": 1, "you": author(), "room": room(), "head": 4,
            "present": [member()], "read": 3}),
        json!({"type": "history", "messages": [view(1), view(2)], "has_more": true,
            "reason": "reset"}),
        json!({"type": "replay", "events": events(), "done": true}),
        json!({"type": "ack", "client_id": "c", "seq": 5, "duplicate": true}),
        json!({"type": "error", "code": "rate_limited", "message": "slow", "client_id": "c",
            "retry_after_ms": 10}),
        json!({"type": "presence_join", "member": member()}),
        json!({"type": "presence_leave", "user_id": "u"}),
        json!({"type": "typing", "user_id": "u", "name": "Ann"}),
        json!({"type": "stream", "target": 2, "version": 1, "offset": 0, "text": "abc"}),
        json!({"type": "thread", "root": view(1), "replies": [view(3)], "has_more": false}),
        json!({"type": "pinned", "messages": [view(1)]}),
        json!({"type": "members", "members": [member()]}),
        json!({"type": "unread", "read": 4, "counts": {"unread": 2, "mentions": 1}}),
        json!({"type": "pong"}),
        json!({"type": "applied", "client_id": "m1"}),
        json!({"type": "member_updated", "user_id": "u", "role": "moderator",
            "muted_until": 77}),
        json!({"type": "profile_updated", "member": member()}),
        json!({"type": "room_updated", "room": room()}),
        json!({"type": "activity", "seq": 9, "by": "u", "main": true, "mentions": ["v"],
            "removed": false}),
    ];
    frames.extend(
        events()
            .into_iter()
            .map(|event| json!({"type": "event", "event": event})),
    );
    frames
}

#[test]
fn the_sample_frames_cover_every_type_and_kind_and_all_decode() {
    let frames = frames();
    for kind in FRAME_TYPES {
        assert!(frames.iter().any(|f| f["type"] == *kind), "{kind}");
    }
    for kind in EVENT_KINDS {
        assert!(
            events().iter().any(|e| e["kind"]["kind"] == *kind),
            "{kind}"
        );
    }
    for frame in frames {
        let parsed: ServerMessage = serde_json::from_value(frame.clone()).unwrap();
        assert_ne!(parsed, ServerMessage::Unknown, "{frame}");
    }
}

/// A change somewhere inside a frame: at a path of object keys and array positions chosen
/// from `steps`, drop the value, replace it, or add a field beside it.
#[derive(Debug, Clone)]
struct Mutation {
    steps: Vec<prop::sample::Index>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Remove,
    Replace(Value),
    Insert(String, Value),
}

fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => edge_number(),
        2 => edge_string().prop_map(Value::String),
        1 => any_string().prop_map(Value::String),
        1 => json_value(KEYS),
        1 => prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_owned())),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        prop_oneof![
            1 => Just(Op::Remove),
            3 => replacement().prop_map(Op::Replace),
            1 => (json_key(KEYS), replacement()).prop_map(|(k, v)| Op::Insert(k, v)),
        ],
    )
        .prop_map(|(steps, op)| Mutation { steps, op })
}

fn apply(value: &mut Value, steps: &[prop::sample::Index], op: Op) {
    // Go one level deeper while there are steps left and somewhere to go; the last step
    // chooses the field or element to change.
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    let child_count = match value {
        Value::Object(o) => o.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    let deeper = !rest.is_empty() && child_count > 0 && {
        let i = step.index(child_count);
        let child = match value {
            Value::Object(o) => o.values().nth(i),
            Value::Array(a) => a.get(i),
            _ => None,
        };
        child.is_some_and(|c| c.is_object() || c.is_array())
    };
    if deeper {
        let i = step.index(child_count);
        let child = match value {
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            Value::Array(a) => &mut a[i],
            _ => unreachable!(),
        };
        return apply(child, rest, op);
    }
    match (value, op) {
        (Value::Object(o), Op::Insert(k, v)) => {
            o.insert(k, v);
        }
        (Value::Object(o), op) if !o.is_empty() => {
            let key = o.keys().nth(step.index(o.len())).unwrap().clone();
            match op {
                Op::Remove => {
                    o.remove(&key);
                }
                Op::Replace(v) | Op::Insert(_, v) => {
                    o.insert(key, v);
                }
            }
        }
        (Value::Array(a), op) if !a.is_empty() => {
            let i = step.index(a.len());
            match op {
                Op::Remove => {
                    a.remove(i);
                }
                Op::Replace(v) | Op::Insert(_, v) => a[i] = v,
            }
        }
        (Value::Array(a), Op::Replace(v) | Op::Insert(_, v)) => a.push(v),
        _ => {}
    }
}

fn mutated_frame() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(frames()),
        prop::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(mut frame, mutations)| {
            for m in mutations {
                apply(&mut frame, &m.steps, m.op);
            }
            frame
        })
}

/// A `type` (or `kind`) no build knows yet.
fn unknown_tag(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,16}",
        "\\PC{0,12}",
        prop::sample::select(known).prop_map(|k| k.to_uppercase()),
        prop::sample::select(known).prop_map(|k| format!("{k}_v2")),
    ]
    .prop_filter("not a known tag", move |t| !known.contains(&t.as_str()))
}

/// Decodes `raw` as the app does, and checks that what it decoded reads back as itself.
fn decode(raw: &str) -> Result<Option<ServerMessage>, TestCaseError> {
    let Ok(message) = ServerMessage::from_json(raw) else {
        return Ok(None);
    };
    let again = serde_json::to_string(&message).unwrap();
    let back: ServerMessage = serde_json::from_str(&again)
        .map_err(|e| TestCaseError::fail(format!("{again} does not read back: {e}")))?;
    prop_assert_eq!(&back, &message);
    Ok(Some(message))
}

/// Feeds frames to a fresh client room and a watcher's tracker, reading their state after each.
fn feed(frames: Vec<ServerMessage>) {
    let mut room = ClientRoom::new();
    let _ = room.connect();
    // Something in the outbox under the sample frames' client id, for acks and errors to find.
    room.queue(
        "c".into(),
        PendingOp::Send {
            text: "hi".into(),
            attachments: Vec::new(),
        },
        0,
    );
    let mut tracker = UnreadTracker::new("u");
    for (now, frame) in (0i64..).zip(frames) {
        tracker.apply(&frame);
        let _ = tracker.counts();
        let _ = room.apply(frame, now * 1_000);
        let _ = room.timeline();
        let _ = room.first_unread();
        let _ = room.typing(now * 1_000);
        let _ = room.take_frames(now * 1_000);
        let _ = room.next_retry_at();
        let _ = room.request_older();
        let _ = room.to_cache();
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_frame_of_an_unknown_type_reads_as_unknown_whatever_its_fields(
        kind in unknown_tag(FRAME_TYPES),
        fields in prop::collection::vec((json_key(KEYS), replacement()), 0..6),
    ) {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), Value::String(kind));
        let raw = Value::Object(object).to_string();
        let parsed = ServerMessage::from_json(&raw);
        prop_assert!(matches!(parsed, Ok(ServerMessage::Unknown)), "{} → {:?}", raw, parsed);
    }

    #[test]
    fn an_event_of_an_unknown_kind_reads_as_unknown_whatever_its_fields(
        kind in unknown_tag(EVENT_KINDS),
        fields in prop::collection::vec((json_key(KEYS), replacement()), 0..6),
        seq in 1u64..1000,
    ) {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert("kind".into(), Value::String(kind));
        let frame = json!({"type": "event", "event": {"seq": seq, "at": 1, "author": author(),
            "client_id": "c", "kind": Value::Object(object)}});
        let raw = frame.to_string();
        let parsed = ServerMessage::from_json(&raw);
        let ok = matches!(
            &parsed,
            Ok(ServerMessage::Event { event: Event { seq: s, kind: EventKind::Unknown, .. } })
                if *s == seq
        );
        prop_assert!(ok, "{} → {:?}", raw, parsed);
    }

    #[test]
    fn a_mutated_valid_frame_decodes_to_something_that_reads_back_or_is_refused(
        frame in mutated_frame()
    ) {
        decode(&frame.to_string())?;
    }

    #[test]
    fn any_json_value_decodes_or_is_refused(value in json_value(KEYS)) {
        decode(&value.to_string())?;
    }

    #[test]
    fn broken_json_decodes_or_is_refused(raw in broken_json(mutated_frame())) {
        decode(&raw)?;
    }

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<ServerMessage>(&bytes);
        decode(&String::from_utf8_lossy(&bytes))?;
    }

}

proptest! {
    // Each case is up to a dozen frames.
    #![proptest_config(config(300))]

    #[test]
    fn the_client_takes_any_sequence_of_decoded_frames_without_panicking(
        frames in prop::collection::vec(mutated_frame(), 1..12)
    ) {
        let decoded: Vec<ServerMessage> = frames
            .iter()
            .filter_map(|f| serde_json::from_value(f.clone()).ok())
            .collect();
        feed(decoded);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: each failure the properties found, kept as an example.

#[test]
fn a_frame_of_an_unknown_type_with_a_known_field_of_another_type_reads_as_unknown() {
    // Found by `a_frame_of_an_unknown_type_reads_as_unknown_whatever_its_fields`: the flat
    // struct typed `protocol` as a u32 for every frame type, so a newer room's frame that used
    // the name for something else could not be read at all.
    for raw in [
        r#"{"type":"_","protocol":4294967296}"#,
        r#"{"protocol":"v2","type":"poll"}"#,
        r#"{"type":"poll","messages":{"a":1},"seq":"x"}"#,
    ] {
        assert_eq!(
            ServerMessage::from_json(raw).ok(),
            Some(ServerMessage::Unknown),
            "{raw}"
        );
    }
    // A known type with a field of the wrong type is still refused.
    assert!(ServerMessage::from_json(r#"{"type":"ack","client_id":"c","seq":"x"}"#).is_err());
}

#[test]
fn an_event_of_an_unknown_kind_with_a_known_field_of_another_type_reads_as_unknown() {
    // Found by `an_event_of_an_unknown_kind_reads_as_unknown_whatever_its_fields`: the event
    // could not be read, so the client could not move its cursor past it and every replay
    // across it failed.
    let raw = r#"{"type":"event","event":{"seq":1,"at":1,"author":{"id":"u","name":"Ann","role":"member"},"client_id":"c","kind":{"error":0,"kind":"_"}}}"#;
    let Ok(ServerMessage::Event { event }) = ServerMessage::from_json(raw) else {
        panic!("{raw} did not read as an event");
    };
    assert_eq!((event.seq, event.kind), (1, EventKind::Unknown));
    let poll = r#"{"kind":"poll","text":["a","b"],"target":"x"}"#;
    assert_eq!(
        serde_json::from_str::<EventKind>(poll).ok(),
        Some(EventKind::Unknown)
    );
    // A known kind with a field of the wrong type is still refused.
    assert!(
        serde_json::from_str::<EventKind>(r#"{"kind":"edit","target":"x","text":"b"}"#).is_err()
    );
}

#[test]
fn a_welcome_with_the_largest_read_position_does_not_overflow_the_first_unread() {
    // Found by `the_client_takes_any_sequence_of_decoded_frames_without_panicking`:
    // `first_unread` computed `read + 1`.
    let welcome = json!({"type": "welcome", "protocol": 1, "you": author(), "room": room(),
        "head": 4, "present": [], "read": u64::MAX});
    feed(vec![serde_json::from_value(welcome).unwrap()]);
}

#[test]
fn a_retryable_error_with_the_largest_retry_delay_does_not_overflow_the_clock() {
    // `now + retry_after_ms` on the send's next attempt.
    let error = json!({"type": "error", "code": "rate_limited", "message": "slow",
        "client_id": "c", "retry_after_ms": i64::MAX});
    feed(vec![
        serde_json::from_value(error.clone()).unwrap(),
        serde_json::from_value(error).unwrap(),
    ]);
}

#[test]
fn an_unread_count_at_the_largest_number_does_not_overflow_on_more_activity() {
    let unread = json!({"type": "unread", "read": 1, "counts": {"unread": u32::MAX,
        "mentions": u32::MAX}});
    let activity = json!({"type": "activity", "seq": 9, "by": "v", "main": true,
        "mentions": ["u"]});
    feed(vec![
        serde_json::from_value(unread).unwrap(),
        serde_json::from_value(activity).unwrap(),
    ]);
}

#[test]
fn a_reply_to_a_thread_at_the_largest_reply_count_does_not_overflow() {
    let welcome = json!({"type": "welcome", "protocol": 1, "you": author(), "room": room(),
        "head": 1, "present": []});
    let mut root = view(1);
    root["replies"]["count"] = json!(u32::MAX);
    root["thread"] = Value::Null;
    let history = json!({"type": "history", "messages": [root], "has_more": false,
        "reason": "latest"});
    let reply = json!({"type": "event", "event": {"seq": 2, "at": 10, "author": author(),
        "client_id": "r", "kind": {"kind": "reply", "thread": 1, "text": "r"}}});
    feed(
        [welcome, history, reply]
            .into_iter()
            .map(|f| serde_json::from_value(f).unwrap())
            .collect(),
    );
}
