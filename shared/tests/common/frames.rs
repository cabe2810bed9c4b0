//! Client frames for the properties that feed the frame gate (`client_frames.rs`) and the
//! room (`room_frames.rs`): a valid message of every variant, and mutations of its JSON.

use proptest::prelude::*;
use serde_json::{Map, Value};
use shared::moderation::{Command, MUTE_MAX_SECONDS};
use shared::protocol::{ClientMessage, Role};

use super::{any_string, edge_number, edge_string, json_key, json_value};

/// Every field name and `type`/`action` value a client frame can carry.
pub const KEYS: &[&str] = &[
    "type",
    "protocol",
    "after",
    "client_id",
    "text",
    "target",
    "before",
    "limit",
    "vote",
    "reason",
    "also_in_room",
    "emoji",
    "add",
    "pinned",
    "seq",
    "root",
    "command",
    "action",
    "user_id",
    "seconds",
    "role",
    "name",
    "topic",
    "private",
    "assistant",
    "token",
    "hello",
    "send",
    "edit",
    "delete",
    "history",
    "stop",
    "regenerate",
    "rate",
    "reply",
    "react",
    "pin",
    "read",
    "thread",
    "pins",
    "members",
    "typing",
    "ping",
    "watch",
    "moderate",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "set_role",
    "update_room",
    "revoke_invite",
    "up",
    "down",
    "none",
    "owner",
    "moderator",
    "member",
    "read_only",
    "off",
    "mention",
    "all",
];

pub fn client_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

pub fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, any::<u64>()]
}

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z *_`#>\\[\\]()\n-]{1,80}", "\\PC{1,40}"]
        .prop_filter("not blank", |t| !t.trim().is_empty())
}

pub fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(vec![
        Role::Owner,
        Role::Moderator,
        Role::Member,
        Role::ReadOnly,
    ])
}

pub fn command() -> impl Strategy<Value = Command> {
    let user = "[a-z0-9]{1,12}";
    prop_oneof![
        user.prop_map(|user_id| Command::Kick { user_id }),
        user.prop_map(|user_id| Command::Ban { user_id }),
        user.prop_map(|user_id| Command::Unban { user_id }),
        (user, 1..=MUTE_MAX_SECONDS)
            .prop_map(|(user_id, seconds)| Command::Mute { user_id, seconds }),
        user.prop_map(|user_id| Command::Unmute { user_id }),
        (user, role()).prop_map(|(user_id, role)| Command::SetRole { user_id, role }),
        (
            proptest::option::of("[A-Za-z][A-Za-z ]{0,20}"),
            proptest::option::of("[a-z ]{0,40}"),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(name, topic, private)| Command::UpdateRoom {
                name,
                topic,
                private,
                assistant: None,
            }),
        "[A-Za-z0-9]{8,32}".prop_map(|token| Command::RevokeInvite { token }),
    ]
}

/// A message of any variant that keeps every rule.
pub fn valid_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (any::<u32>(), proptest::option::of(seq()))
            .prop_map(|(protocol, after)| ClientMessage::Hello { protocol, after }),
        (client_id(), text()).prop_map(|(client_id, text)| ClientMessage::Send {
            client_id,
            text,
            attachments: Vec::new()
        }),
        (client_id(), seq(), text()).prop_map(|(client_id, target, text)| ClientMessage::Edit {
            client_id,
            target,
            text
        }),
        (client_id(), seq())
            .prop_map(|(client_id, target)| ClientMessage::Delete { client_id, target }),
        (seq(), proptest::option::of(any::<u32>()))
            .prop_map(|(before, limit)| ClientMessage::History { before, limit }),
        (client_id(), seq())
            .prop_map(|(client_id, target)| ClientMessage::Stop { client_id, target }),
        (client_id(), seq())
            .prop_map(|(client_id, target)| ClientMessage::Regenerate { client_id, target }),
        (
            client_id(),
            seq(),
            prop::sample::select(vec![
                shared::protocol::Vote::Up,
                shared::protocol::Vote::Down,
                shared::protocol::Vote::None
            ]),
            proptest::option::of("\\PC{0,40}")
        )
            .prop_map(|(client_id, target, vote, reason)| ClientMessage::Rate {
                client_id,
                target,
                vote,
                reason
            }),
        (client_id(), seq(), text(), any::<bool>()).prop_map(
            |(client_id, target, text, also_in_room)| ClientMessage::Reply {
                client_id,
                target,
                text,
                also_in_room,
                attachments: Vec::new()
            }
        ),
        (
            client_id(),
            seq(),
            prop::sample::select(vec!["👍", "🎉", "❤️", "🇫🇷", "👩‍👩‍👧"]),
            any::<bool>()
        )
            .prop_map(|(client_id, target, emoji, add)| ClientMessage::React {
                client_id,
                target,
                emoji: emoji.to_owned(),
                add
            }),
        (client_id(), seq(), any::<bool>()).prop_map(|(client_id, target, pinned)| {
            ClientMessage::Pin {
                client_id,
                target,
                pinned,
            }
        }),
        seq().prop_map(|seq| ClientMessage::Read { seq }),
        seq().prop_map(|root| ClientMessage::Thread { root }),
        Just(ClientMessage::Pins {}),
        Just(ClientMessage::Members {}),
        Just(ClientMessage::Typing {}),
        Just(ClientMessage::Ping {}),
        any::<u32>().prop_map(|protocol| ClientMessage::Watch { protocol }),
        (client_id(), command())
            .prop_map(|(client_id, command)| ClientMessage::Moderate { client_id, command }),
    ]
}

/// One change to a frame's JSON.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Drop a field.
    Remove(prop::sample::Index),
    /// Give a field another value (of any type).
    Replace(prop::sample::Index, Value),
    /// Add a field (known or not).
    Insert(String, Value),
    /// Change a field of the nested `command` object instead.
    InCommand(Box<Mutation>),
}

pub fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => edge_number(),
        2 => edge_string().prop_map(Value::String),
        1 => any_string().prop_map(Value::String),
        1 => json_value(KEYS),
        1 => prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_owned())),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let flat = prop_oneof![
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        3 => (any::<prop::sample::Index>(), replacement()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (json_key(KEYS), replacement()).prop_map(|(k, v)| Mutation::Insert(k, v)),
    ];
    prop_oneof![
        4 => flat.clone(),
        1 => flat.prop_map(|m| Mutation::InCommand(Box::new(m))),
    ]
}

pub fn apply(object: &mut Map<String, Value>, mutation: Mutation) {
    let key = |index: prop::sample::Index, object: &Map<String, Value>| {
        (!object.is_empty()).then(|| {
            object
                .keys()
                .nth(index.index(object.len()))
                .unwrap()
                .clone()
        })
    };
    match mutation {
        Mutation::Remove(i) => {
            if let Some(k) = key(i, object) {
                object.remove(&k);
            }
        }
        Mutation::Replace(i, value) => {
            if let Some(k) = key(i, object) {
                object.insert(k, value);
            }
        }
        Mutation::Insert(k, value) => {
            object.insert(k, value);
        }
        Mutation::InCommand(inner) => {
            if let Some(Value::Object(command)) = object.get_mut("command") {
                apply(command, *inner);
            }
        }
    }
}

pub fn mutated_frame() -> impl Strategy<Value = String> {
    (valid_message(), prop::collection::vec(mutation(), 1..4)).prop_map(|(message, mutations)| {
        let Value::Object(mut object) = serde_json::to_value(&message).unwrap() else {
            unreachable!("a client message serializes to an object")
        };
        for m in mutations {
            apply(&mut object, m);
        }
        Value::Object(object).to_string()
    })
}
