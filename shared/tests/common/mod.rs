//! Generators and settings shared by the decoder property suites (`client_frames`,
//! `server_frames`, `markdown_safety`, `search_queries`, `inputs`, `room_frames`).
//!
//! Case counts: each property names its count for the normal run (`scripts/test`: 300 to
//! 3,000, about 25 s of CPU time for the six suites in a debug build). Setting
//! `PROPTEST_CASES` replaces every count, for a long run:
//! `PROPTEST_CASES=200000 cargo test -p shared --all-features --release --test client_frames`
//! (README, "Testing").

#![allow(dead_code)] // Each suite uses a different part of this module.

pub mod frames;

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// The settings of a property: `normal` cases, or `PROPTEST_CASES` when it is set. Failures
/// are not written to `*.proptest-regressions` files: a failure found here becomes a named
/// regression test beside the property instead (issue 9, item 7).
pub fn config(normal: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(normal);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings that break naive handling: empty, whitespace of every kind, controls, bidi and
/// zero-width characters, combining marks, emoji sequences, non-characters, characters that
/// change length when case-folded, and JSON/HTML/SQL punctuation.
pub fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\t\n\r".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{7f}".to_owned()),
        Just("\u{85}".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("\u{1680}".to_owned()),
        Just("\u{2028}\u{2029}".to_owned()),
        Just("\u{3000}".to_owned()),
        Just("\u{200b}\u{200d}\u{2060}\u{feff}".to_owned()),
        Just("\u{202e}gnp.exe\u{202c}".to_owned()),
        Just("e\u{301}\u{301}\u{301}".to_owned()),
        Just("👩‍👩‍👧‍👦".to_owned()),
        Just("🇫🇷".to_owned()),
        Just("👍🏽".to_owned()),
        Just("❤️".to_owned()),
        Just("\u{fe0f}".to_owned()),
        Just("\u{fffd}\u{fffe}\u{ffff}".to_owned()),
        Just("\u{10ffff}".to_owned()),
        Just("İıßẞﬃ".to_owned()),
        Just("日本語".to_owned()),
        Just("\"'\\/<>&;".to_owned()),
        Just("null".to_owned()),
        Just("1e309".to_owned()),
        Just("a".repeat(65)),
        Just("é".repeat(4001)),
        Just("x".repeat(21 * 1024)),
        "\\PC{0,8}",
        any::<String>(),
    ]
}

/// Any string: mostly short arbitrary ones, sometimes an [`edge_string`] or a long run.
pub fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<String>(),
        3 => edge_string(),
        // Runs a little past every limit (the 20 KiB frame, 4,000 characters), kept short
        // enough that thousands of cases stay fast.
        1 => (edge_string(), 0usize..300).prop_map(|(s, n)| s.repeat(n.min(
            (24_000 / s.len().max(1)).max(1)
        ))),
    ]
}

/// Numbers at and beyond the edges of every integer field (`u32`, `u64`, `i64`), negative
/// ones, fractions and floats that are integers in value.
pub fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(1)),
        Just(Value::from(-1)),
        Just(Value::from(u32::MAX)),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(1.5)),
        Just(Value::from(2.0)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e300)),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// A JSON value of any shape, with object keys drawn from `keys` (the field names the decoder
/// knows) or arbitrary, nested a few levels.
pub fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        // Short strings inside structures: the long ones are tried at the top level.
        prop_oneof!["\\PC{0,12}", edge_string()].prop_map(Value::String),
        prop::sample::select(keys).prop_map(|k| Value::String(k.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(keys), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object key: usually one the decoder knows, sometimes anything.
pub fn json_key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
}

/// Text that is almost JSON: a serialized value cut, with a byte changed, or raw bytes.
pub fn broken_json(value: impl Strategy<Value = Value>) -> impl Strategy<Value = String> {
    (value, any::<prop::sample::Index>(), any::<u8>(), 0u8..4).prop_map(|(value, at, byte, how)| {
        let mut text = value.to_string().into_bytes();
        if !text.is_empty() {
            let i = at.index(text.len());
            match how {
                0 => text.truncate(i),
                1 => text[i] = byte,
                2 => text.insert(i, byte),
                _ => {
                    text.remove(i);
                }
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}
