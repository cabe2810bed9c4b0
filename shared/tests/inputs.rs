//! Everything else in `shared` that reads outside input, under random input (issue 9, item
//! 7): profile updates and avatar bytes, display names, room names, topics and slugs,
//! reactions, moderation commands and invites from JSON bodies, login codes and provider
//! names from URLs, User-Agent strings, mentions in message text, and the AI provider's
//! event stream. None panics; each refusal has its code; what is accepted keeps its rules.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

mod common;

use common::{any_string, config, edge_number, edge_string, json_key, json_value};
use proptest::prelude::*;
use serde_json::Value;
use shared::ai::{decode_event, parse_facts, StreamFormat, StreamReader, MEMORY_FACT_MAX_CHARS};
use shared::auth::{browser_label, provider_named, LoginError, Provider};
use shared::error::ErrorCode;
use shared::limits::{
    is_valid_slug, slugify, validate_display_name, validate_emoji, validate_room_name,
    validate_topic, DISPLAY_NAME_MAX_CHARS, EMOJI_MAX_BYTES, ROOM_NAME_MAX_CHARS, SLUG_MAX,
    TOPIC_MAX_CHARS,
};
use shared::mentions::{find_mentions, mentions_name, suggestions, typing_mention};
use shared::moderation::{Command, CreateInvite, Invite, INVITE_MAX_SECONDS, MUTE_MAX_SECONDS};
use shared::profile::{
    check_avatar, ImageType, Profile, Theme, AI_INSTRUCTIONS_MAX_CHARS, AI_SHORT_MAX_CHARS,
    AVATAR_MAX_SIDE, BIO_MAX_CHARS, SHORT_MAX_CHARS,
};
use shared::protocol::{Member, Role};

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A single-line label as the label rules leave it: trimmed, whitespace runs folded to one
/// space, no control characters.
fn is_normalized_line(s: &str) -> bool {
    s == s.split_whitespace().collect::<Vec<_>>().join(" ") && !s.chars().any(char::is_control)
}

// ---------------------------------------------------------------------------------------------
// Labels.

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any_string(),
        2 => "[ \\ta-zA-Z0-9!&é日\u{a0}\u{3000}\u{200b}-]{0,70}",
        1 => (edge_string(), edge_string(), "[a-z]{0,60}").prop_map(|(a, b, c)| format!("{a}{c}{b}")),
    ]
}

fn check_label(
    result: Result<String, shared::ChatError>,
    max: usize,
    allow_empty: bool,
) -> Result<Option<String>, TestCaseError> {
    match result {
        Ok(label) => {
            prop_assert!(is_normalized_line(&label), "{:?}", label);
            prop_assert!(chars(&label) <= max, "{:?}", label);
            prop_assert!(allow_empty || !label.is_empty());
            Ok(Some(label))
        }
        Err(e) => {
            prop_assert!(
                matches!(e.code, ErrorCode::InvalidInput | ErrorCode::TooLarge),
                "{:?}",
                e
            );
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_display_name_is_refused_with_its_code_or_normalized_within_its_limit(raw in label()) {
        if let Some(name) = check_label(validate_display_name(&raw), DISPLAY_NAME_MAX_CHARS, false)? {
            prop_assert_eq!(validate_display_name(&name), Ok(name.clone()), "normalizing twice changes nothing");
        }
    }

    #[test]
    fn a_room_name_is_refused_with_its_code_or_normalized_with_a_valid_slug(raw in label()) {
        if let Some(name) = check_label(validate_room_name(&raw), ROOM_NAME_MAX_CHARS, false)? {
            prop_assert!(is_valid_slug(&slugify(&name)), "{:?} → {:?}", name, slugify(&name));
            prop_assert_eq!(validate_room_name(&name), Ok(name.clone()));
        }
    }

    #[test]
    fn a_topic_is_refused_with_its_code_or_normalized_within_its_limit(raw in label()) {
        if let Some(topic) = check_label(validate_topic(&raw), TOPIC_MAX_CHARS, true)? {
            prop_assert_eq!(validate_topic(&topic), Ok(topic.clone()));
        }
    }

    #[test]
    fn a_slug_of_anything_is_empty_or_valid_and_short(raw in label()) {
        let slug = slugify(&raw);
        prop_assert!(slug.len() <= SLUG_MAX);
        prop_assert!(slug.is_empty() || is_valid_slug(&slug), "{:?} → {:?}", raw, slug);
        let _ = is_valid_slug(&raw);
    }

    #[test]
    fn a_reaction_is_refused_as_invalid_input_or_is_a_short_run_of_emoji(
        raw in prop_oneof![any_string(), edge_string(), "[👍🎉❤️🇫🇷\u{fe0f}\u{200d}\u{1f3fd}a ]{0,9}"]
    ) {
        match validate_emoji(&raw) {
            Ok(()) => {
                prop_assert!((1..=EMOJI_MAX_BYTES).contains(&raw.len()));
                prop_assert!(raw.chars().all(|c| !c.is_ascii() && !c.is_control()
                    && !c.is_whitespace() && !c.is_alphanumeric()), "{:?}", raw);
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidInput),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles and avatars.

fn theme() -> impl Strategy<Value = Theme> {
    prop::sample::select(vec![
        Theme::System,
        Theme::Light,
        Theme::Dark,
        Theme::Unknown,
    ])
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[ \\ta-zA-Z0-9/#+_é日\u{a0}-]{0,12}",
        1 => edge_string(),
        1 => label(),
        1 => prop::sample::select(vec!["Europe/Paris", "UTC", "#A0b1C2", " #abcdef ", "#abc", "#gggggg", "en-GB", "a\nb", "a\tb\r\n"]).prop_map(str::to_owned),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        (field(), field(), field(), field(), field(), field()),
        (
            field(),
            field(),
            theme(),
            field(),
            field(),
            field(),
            field(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, bio, pronouns, status, time_zone, language),
                (accent, avatar, theme, tone, interests, instructions, ai_language, memory),
            )| {
                let mut p = Profile {
                    name,
                    bio,
                    pronouns,
                    status,
                    time_zone,
                    language,
                    accent,
                    avatar: Some(avatar),
                    theme,
                    ..Profile::default()
                };
                p.ai.tone = tone;
                p.ai.interests = interests;
                p.ai.instructions = instructions;
                p.ai.language = ai_language;
                p.ai.memory = memory;
                p
            },
        )
}

fn check_profile(profile: Profile) -> Result<(), TestCaseError> {
    match profile.validated() {
        Ok(p) => {
            prop_assert!(!p.name.is_empty() && chars(&p.name) <= DISPLAY_NAME_MAX_CHARS);
            for (line, max) in [
                (&p.name, DISPLAY_NAME_MAX_CHARS),
                (&p.pronouns, SHORT_MAX_CHARS),
                (&p.status, SHORT_MAX_CHARS),
                (&p.time_zone, SHORT_MAX_CHARS),
                (&p.language, SHORT_MAX_CHARS),
                (&p.ai.tone, AI_SHORT_MAX_CHARS),
                (&p.ai.interests, AI_SHORT_MAX_CHARS),
                (&p.ai.language, SHORT_MAX_CHARS),
            ] {
                prop_assert!(is_normalized_line(line) && chars(line) <= max, "{:?}", line);
            }
            for (text, max) in [
                (&p.bio, BIO_MAX_CHARS),
                (&p.ai.instructions, AI_INSTRUCTIONS_MAX_CHARS),
            ] {
                prop_assert!(
                    chars(text) <= max && text.trim() == text.as_str(),
                    "{:?}",
                    text
                );
                prop_assert!(!text
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')));
            }
            prop_assert!(p
                .time_zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)));
            prop_assert!(
                p.accent.is_empty()
                    || (p.accent.len() == 7
                        && p.accent.starts_with('#')
                        && p.accent[1..]
                            .chars()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())),
                "{:?}",
                p.accent
            );
            prop_assert_ne!(p.theme, Theme::Unknown);
            prop_assert_eq!(
                p.clone().validated(),
                Ok(p),
                "validating twice changes nothing"
            );
        }
        Err(e) => prop_assert!(
            matches!(e.code, ErrorCode::InvalidInput | ErrorCode::TooLarge),
            "{:?}",
            e
        ),
    }
    Ok(())
}

const PROFILE_KEYS: &[&str] = &[
    "user_id",
    "name",
    "avatar",
    "bio",
    "pronouns",
    "status",
    "time_zone",
    "language",
    "accent",
    "theme",
    "ai",
    "admin",
    "tone",
    "interests",
    "instructions",
    "memory",
    "system",
    "light",
    "dark",
];

/// Image bytes: one of the accepted signatures (or none) followed by random or structured
/// header bytes.
fn image_bytes() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop::sample::select(vec![
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec(),
        b"\x89PNG\r\n\x1a\n".to_vec(),
        vec![0xFF, 0xD8, 0xFF],
        vec![0xFF, 0xD8],
        b"RIFF\0\0\0\0WEBPVP8 ".to_vec(),
        b"RIFF\0\0\0\0WEBPVP8L".to_vec(),
        b"RIFF\0\0\0\0WEBPVP8X".to_vec(),
        b"RIFF\0\0\0\0WEBP".to_vec(),
        b"GIF87a".to_vec(),
        b"GIF89a".to_vec(),
        Vec::new(),
    ]);
    // A JPEG-like run of segments: markers with lengths (sometimes wrong), fill bytes, and
    // markers without a length.
    let segment = (
        prop::sample::select(vec![
            0xC0u8, 0xC2, 0xC4, 0xC8, 0xCF, 0xD0, 0xD8, 0xD9, 0xDA, 0xDB, 0xE0, 0x01, 0xFF, 0x00,
        ]),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..12),
        0usize..3,
    )
        .prop_map(|(marker, len, payload, fill)| {
            let mut b = vec![0xFF; fill + 1];
            b.push(marker);
            b.extend_from_slice(&len.to_be_bytes());
            b.extend(payload);
            b
        });
    let tail = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(segment, 0..8).prop_map(|s| s.concat()),
    ];
    (magic, tail).prop_map(|(mut m, t)| {
        m.extend(t);
        m
    })
}

proptest! {
    #![proptest_config(config(800))]

    #[test]
    fn a_profile_update_is_refused_with_its_code_or_normalized_within_every_limit(p in profile()) {
        check_profile(p)?;
    }

    #[test]
    fn a_profile_body_of_any_json_is_refused_or_normalized(value in json_value(PROFILE_KEYS)) {
        if let Ok(p) = serde_json::from_value::<Profile>(value) {
            check_profile(p)?;
        }
    }

    #[test]
    fn avatar_bytes_are_refused_with_their_code_or_give_a_size_within_the_limit(bytes in image_bytes()) {
        match check_avatar(&bytes) {
            Ok(avatar) => {
                prop_assert!((1..=AVATAR_MAX_SIDE).contains(&avatar.width));
                prop_assert!((1..=AVATAR_MAX_SIDE).contains(&avatar.height));
                let prefix: &[u8] = match avatar.kind {
                    ImageType::Png => b"\x89PNG",
                    ImageType::Jpeg => &[0xFF, 0xD8, 0xFF],
                    ImageType::Webp => b"RIFF",
                    ImageType::Gif => b"GIF8",
                };
                prop_assert!(bytes.starts_with(prefix));
            }
            Err(e) => prop_assert!(matches!(e.code, ErrorCode::UnsupportedMedia | ErrorCode::TooLarge), "{:?}", e),
        }
    }
}

#[test]
fn an_avatar_over_the_byte_limit_is_too_large_whatever_it_holds() {
    let mut big = b"GIF89a\x01\x00\x01\x00".to_vec();
    big.resize(shared::profile::AVATAR_MAX_BYTES + 1, 0xFF);
    assert_eq!(check_avatar(&big).unwrap_err().code, ErrorCode::TooLarge);
    // A megabyte of fill bytes after a JPEG start is walked to its end, not forever.
    let mut jpeg = vec![0xFF, 0xD8];
    jpeg.resize(shared::profile::AVATAR_MAX_BYTES, 0xFF);
    assert_eq!(
        check_avatar(&jpeg).unwrap_err().code,
        ErrorCode::UnsupportedMedia
    );
}

// ---------------------------------------------------------------------------------------------
// Moderation commands and invites (HTTP bodies).

const MODERATION_KEYS: &[&str] = &[
    "action",
    "user_id",
    "seconds",
    "role",
    "name",
    "topic",
    "private",
    "assistant",
    "token",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "set_role",
    "update_room",
    "revoke_invite",
    "owner",
    "moderator",
    "member",
    "read_only",
    "off",
    "mention",
    "all",
    "expires_in_seconds",
    "max_uses",
];

fn moderation_body() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "kick",
            "ban",
            "unban",
            "mute",
            "unmute",
            "set_role",
            "update_room",
            "revoke_invite",
            "nuke",
        ]),
        prop::collection::vec(
            (
                json_key(MODERATION_KEYS),
                prop_oneof![
                    edge_number(),
                    label().prop_map(Value::String),
                    json_value(MODERATION_KEYS)
                ],
            ),
            0..5,
        ),
    )
        .prop_map(|(action, fields)| {
            let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
            object.insert("action".into(), Value::String(action.into()));
            Value::Object(object)
        })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_moderation_command_is_refused_with_its_code_or_keeps_its_limits(value in moderation_body()) {
        let Ok(command) = serde_json::from_value::<Command>(value) else { return Ok(()) };
        let _ = (command.action(), command.target(), command.name());
        match command.validate() {
            Ok(()) => match &command {
                Command::Mute { seconds, .. } => prop_assert!((1..=MUTE_MAX_SECONDS).contains(seconds)),
                Command::SetRole { role, .. } => prop_assert_ne!(*role, Role::Unknown),
                Command::UpdateRoom { name, topic, .. } => {
                    prop_assert!(name.as_deref().is_none_or(|n| validate_room_name(n).is_ok()));
                    prop_assert!(topic.as_deref().is_none_or(|t| validate_topic(t).is_ok()));
                }
                _ => {}
            },
            Err(e) => prop_assert!(matches!(e.code, ErrorCode::InvalidInput | ErrorCode::TooLarge), "{:?}", e),
        }
    }

    #[test]
    fn an_invite_request_is_refused_as_invalid_input_or_keeps_its_limits(
        value in json_value(MODERATION_KEYS),
        expires in proptest::option::of(edge_number()),
        uses in proptest::option::of(edge_number()),
    ) {
        let mut bodies = vec![value];
        let mut object = serde_json::Map::new();
        if let Some(e) = expires { object.insert("expires_in_seconds".into(), e); }
        if let Some(u) = uses { object.insert("max_uses".into(), u); }
        bodies.push(Value::Object(object));
        for body in bodies {
            let Ok(invite) = serde_json::from_value::<CreateInvite>(body) else { continue };
            match invite.validate() {
                Ok(()) => {
                    prop_assert!(invite.expires_in_seconds.is_none_or(|s| (1..=INVITE_MAX_SECONDS).contains(&s)));
                    prop_assert_ne!(invite.max_uses, Some(0));
                }
                Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidInput),
            }
        }
    }

    #[test]
    fn an_invite_admits_or_says_invite_invalid(
        expires_at in proptest::option::of(any::<i64>()),
        max_uses in proptest::option::of(any::<u32>()),
        uses in any::<u32>(),
        revoked_at in proptest::option::of(any::<i64>()),
        now in any::<i64>(),
    ) {
        let invite = Invite { token: "t".into(), created_by: "u".into(), created_at: 0, expires_at, max_uses, uses, revoked_at };
        let admits = revoked_at.is_none() && expires_at.is_none_or(|at| now < at) && max_uses.is_none_or(|m| uses < m);
        match invite.check(now) {
            Ok(()) => prop_assert!(admits),
            Err(e) => {
                prop_assert!(!admits);
                prop_assert_eq!(e.code, ErrorCode::InviteInvalid);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login codes, provider names and User-Agents (from URLs and headers).

proptest! {
    #![proptest_config(config(800))]

    #[test]
    fn a_login_error_code_from_a_url_is_known_exactly_or_unknown(raw in prop_oneof![
        any_string(),
        prop::sample::select(vec!["oauth_denied", "internal", "unknown", "Oauth_Denied", "oauth_denied ", "\"internal\""]).prop_map(str::to_owned),
    ]) {
        let code = LoginError::parse(&raw);
        prop_assert!(code == LoginError::Unknown || code.as_str() == raw, "{:?} → {:?}", raw, code);
        prop_assert!(!code.message().is_empty());
    }

    #[test]
    fn a_provider_from_a_url_is_named_exactly_or_none(raw in prop_oneof![
        any_string(),
        prop::sample::select(vec!["github", "GitHub", "local", "google ", "apple", "discord", ""]).prop_map(str::to_owned),
    ]) {
        if let Some(p) = provider_named(&raw) {
            prop_assert_eq!(p.as_str(), raw.as_str());
        }
        if let Some(p) = Provider::oauth_from_str(&raw) {
            prop_assert!(p.as_str() == raw && p != Provider::Local);
        }
    }

    #[test]
    fn any_user_agent_gets_a_label(ua in prop_oneof![
        any_string(),
        "(Mozilla/5.0 |Chrome/|Edg/|OPR/|Firefox/|Safari/|Android|iPhone|Windows|Linux|CrOS| ){0,6}",
    ]) {
        prop_assert!(!browser_label(&ua).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Mentions in message text.

fn members() -> impl Strategy<Value = Vec<Member>> {
    prop::collection::vec(
        (
            "[a-z]{1,4}",
            prop_oneof![
                label(),
                "[A-Za-z ]{0,8}",
                Just("İ".to_owned()),
                Just("ß".to_owned())
            ],
        ),
        0..6,
    )
    .prop_map(|ms| {
        ms.into_iter()
            .map(|(user_id, name)| Member {
                user_id,
                name,
                avatar: None,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn mentions_in_any_text_name_only_members_once_each(
        text in prop_oneof![any_string(), "([@a-zA-Z İß.]|@@|\u{301}){0,30}"],
        members in members(),
    ) {
        let found = find_mentions(&text, &members);
        for (i, id) in found.iter().enumerate() {
            prop_assert!(members.iter().any(|m| m.user_id == *id));
            prop_assert!(!found[..i].contains(id), "{:?} twice", id);
        }
        for m in &members {
            let _ = mentions_name(&text, &m.name);
        }
        if let Some(partial) = typing_mention(&text) {
            prop_assert!(text.ends_with(partial) && !partial.contains('\n'));
            let suggested = suggestions(partial, &members, members.first().map(|m| m.user_id.as_str()));
            prop_assert!(suggested.len() <= shared::mentions::SUGGESTIONS_MAX);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The AI provider's event stream.

fn sse_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zé ]{0,8}".prop_map(|t| format!("data: {}", serde_json::json!({"choices": [{"delta": {"content": t}}]}))),
        2 => "[a-zé ]{0,8}".prop_map(|t| format!("data: {}", serde_json::json!({"response": t, "usage": {"prompt_tokens": 1}}))),
        1 => Just("data: [DONE]".to_owned()),
        1 => Just("data: {\"error\": {\"message\": \"quota\"}}".to_owned()),
        1 => Just("data: {\"error\": 5}".to_owned()),
        1 => json_value(&["choices", "delta", "content", "message", "response", "usage", "error", "prompt_tokens"]).prop_map(|v| format!("data:{v}")),
        1 => prop::sample::select(vec![": keep-alive", "event: message", "id: 7", "retry: 10", "", "", "data:", "data: {", "data: 日本"]).prop_map(str::to_owned),
        1 => any_string(),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            sse_line(),
            prop::sample::select(vec!["\n", "\n", "\r\n", "\n\n", "\r\n\r\n"]),
        ),
        0..10,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(l, end)| format!("{l}{end}").into_bytes())
            .collect()
    })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_provider_stream_decodes_the_same_however_it_is_split(
        bytes in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        openai in any::<bool>(),
    ) {
        let format = if openai { StreamFormat::OpenAi } else { StreamFormat::WorkersAi };
        let mut whole = StreamReader::new(format);
        let mut expected = whole.push(&bytes);
        expected.extend(whole.finish());

        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut split = StreamReader::new(format);
        let mut got = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([bytes.len()]) {
            got.extend(split.push(&bytes[from..to]));
            from = to;
        }
        got.extend(split.finish());
        prop_assert_eq!(got, expected);
        prop_assert_eq!(split.is_done(), whole.is_done());
    }

    #[test]
    fn any_event_payload_decodes_without_panicking(data in prop_oneof![any_string(), json_value(&["choices", "delta", "content", "message", "response", "usage", "error"]).prop_map(|v| v.to_string())]) {
        let _ = decode_event(StreamFormat::OpenAi, &data);
        let _ = decode_event(StreamFormat::WorkersAi, &data);
    }

    #[test]
    fn remembered_facts_from_any_answer_are_few_short_and_new(
        answer in prop_oneof![any_string(), "((- |\\* |-|  - )[a-zA-Zİ ]{0,6}\n){0,6}"],
        known in prop::collection::vec("[a-zA-Z ]{0,6}", 0..3),
    ) {
        let facts = parse_facts(&answer, &known);
        prop_assert!(facts.len() <= 3);
        for (i, fact) in facts.iter().enumerate() {
            prop_assert!(fact.len() >= 3 && chars(fact) <= MEMORY_FACT_MAX_CHARS, "{:?}", fact);
            prop_assert!(!known.iter().any(|k| k.eq_ignore_ascii_case(fact)));
            prop_assert!(!facts[..i].iter().any(|f| f.eq_ignore_ascii_case(fact)));
        }
    }
}
