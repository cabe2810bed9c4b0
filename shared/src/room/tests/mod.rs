//! The room's unit tests, on real SQLite (in memory), split by concern.

mod admission;
mod attachments;
mod gate;
mod log;
mod members;
mod sync;

use super::store::sqlite::Sqlite;
use super::*;
use crate::limits::REPLAY_MAX_EVENTS;
use crate::moderation::{Command, CreateInvite};
use crate::protocol::{Event, MessageView, Role, UnreadCounts};
use crate::rate_limit::RateLimits;

/// A new room on a fresh in-memory SQLite database, with the real schema.
fn fresh_room() -> Room<Sqlite> {
    let store = SqlStore::open(Sqlite::memory().expect("SQLite")).expect("schema");
    Room::open(store, info()).expect("room")
}

fn info() -> RoomInfo {
    RoomInfo {
        slug: "general".into(),
        name: "General".into(),
        topic: String::new(),
        created_at: 0,
        last_activity: None,
        message_count: 0,
        assistant: Default::default(),
        private: false,
    }
}

fn conn(id: &str, role: Role) -> Conn {
    let mut conn = Conn::new(Author {
        id: id.into(),
        name: id.to_uppercase(),
        role,
    });
    conn.joined = true;
    conn
}

struct Fixture {
    room: Room<Sqlite>,
    limiter: ConnLimiter,
    now: Millis,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            room: fresh_room(),
            limiter: ConnLimiter::new(
                RateLimits {
                    send_burst: 1000.0,
                    send_per_second: 1000.0,
                    frame_burst: 1000.0,
                    frame_per_second: 1000.0,
                },
                0,
            ),
            now: 1_000,
        }
    }

    fn frame(&mut self, conn: &Conn, msg: serde_json::Value) -> Vec<Effect> {
        self.now += 1;
        let raw = msg.to_string();
        self.room.on_frame(
            conn,
            &mut self.limiter,
            Frame::Text(&raw),
            self.now,
            Vec::new,
        )
    }

    /// A member whose connection said hello (so the room knows them, for mentions).
    fn member_who_joined(&mut self, id: &str) -> Conn {
        let mut member = conn(id, Role::Member);
        member.joined = false;
        self.frame(&member, serde_json::json!({"type":"hello","protocol":1}));
        member.joined = true;
        member
    }

    fn send(&mut self, conn: &Conn, client_id: &str, text: &str) -> Vec<Effect> {
        self.frame(
            conn,
            serde_json::json!({"type":"send","client_id":client_id,"text":text}),
        )
    }
}

fn ack_of(effects: &[Effect]) -> (Seq, bool) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply(ServerMessage::Ack { seq, duplicate, .. }) => Some((*seq, *duplicate)),
            _ => None,
        })
        .expect("an ack")
}

fn error_of(effects: &[Effect]) -> ErrorCode {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply(ServerMessage::Error { code, .. }) => Some(*code),
            _ => None,
        })
        .expect("an error reply")
}

fn broadcasts(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Broadcast(_) | Effect::BroadcastOthers(_)))
        .count()
}

fn reply(f: &mut Fixture, who: &Conn, id: &str, target: Seq, also: bool) -> Vec<Effect> {
    f.frame(
        who,
        serde_json::json!({"type":"reply","client_id":id,"target":target,"text":format!("re {id}"),"also_in_room":also}),
    )
}

fn react(f: &mut Fixture, who: &Conn, id: &str, target: Seq, add: bool) -> Vec<Effect> {
    f.frame(
        who,
        serde_json::json!({"type":"react","client_id":id,"target":target,"emoji":"🎉","add":add}),
    )
}

fn replayed(f: &mut Fixture, who: &Conn, after: Seq) -> Vec<Event> {
    f.frame(
        who,
        serde_json::json!({"type":"hello","protocol":1,"after":after}),
    )
    .into_iter()
    .filter_map(|e| match e {
        Effect::Reply(ServerMessage::Replay { events, .. }) => Some(events),
        _ => None,
    })
    .flatten()
    .collect()
}

fn notices(effects: &[Effect]) -> Vec<&ServerMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(m) => Some(m),
            _ => None,
        })
        .collect()
}

// -----------------------------------------------------------------------------------------
// Membership and moderation

/// A fixture room where `owner` created it and `ann` (member) and `mod` (moderator) joined.
fn moderated() -> (Fixture, Conn, Conn, Conn) {
    let mut f = Fixture::new();
    let mut owner = conn("owner", Role::Member);
    let mut ann = conn("ann", Role::Member);
    let mut moderator = conn("mod", Role::Member);
    // One after the other, so the member list (by join time) has an order to check.
    for (joined_at, c) in [&mut owner, &mut ann, &mut moderator]
        .into_iter()
        .enumerate()
    {
        f.room.admit(c, "owner", None, joined_at as Millis).unwrap();
    }
    assert_eq!(owner.author.role, Role::Owner);
    assert_eq!(ann.author.role, Role::Member);
    f.command(
        &owner,
        Command::SetRole {
            user_id: "mod".into(),
            role: Role::Moderator,
        },
    )
    .unwrap();
    moderator.author.role = Role::Moderator;
    (f, owner, ann, moderator)
}

impl Fixture {
    fn command(&mut self, conn: &Conn, command: Command) -> Result<Vec<Effect>, ErrorCode> {
        self.now += 1;
        self.room
            .command(conn, command, self.now)
            .map_err(|f| f.into_error().0.code)
    }
}
