//! The room directory in D1: slug, name, topic, creation, last activity, message count.

use serde::Deserialize;
use shared::limits::SLUG_MAX;
use shared::protocol::{AssistantMode, RoomInfo};
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, Env};

/// The D1 binding's name.
pub const BINDING: &str = "DB";
/// Rooms listed at most.
const LIST_MAX: u32 = 200;

#[derive(Deserialize)]
struct RoomRow {
    slug: String,
    name: String,
    topic: String,
    created_by: String,
    created_at: f64,
    last_activity: Option<f64>,
    message_count: f64,
    assistant: Option<String>,
    private: f64,
}

/// The mode as stored (`mention`, `all`, `off`).
fn mode_name(mode: AssistantMode) -> &'static str {
    match mode {
        AssistantMode::Off => "off",
        AssistantMode::All => "all",
        AssistantMode::Mention | AssistantMode::Unknown => "mention",
    }
}

fn parse_mode(name: Option<&str>) -> AssistantMode {
    match name {
        Some("off") => AssistantMode::Off,
        Some("all") => AssistantMode::All,
        _ => AssistantMode::Mention,
    }
}

/// A directory entry with who created the room.
pub struct DirectoryEntry {
    /// The public part.
    pub info: RoomInfo,
    /// The creating user's id (the room's owner).
    pub created_by: String,
}

impl From<RoomRow> for DirectoryEntry {
    fn from(row: RoomRow) -> Self {
        DirectoryEntry {
            info: RoomInfo {
                slug: row.slug,
                name: row.name,
                topic: row.topic,
                created_at: row.created_at as i64,
                last_activity: row.last_activity.map(|t| t as i64),
                message_count: row.message_count as u64,
                assistant: parse_mode(row.assistant.as_deref()),
                private: row.private != 0.0,
            },
            created_by: row.created_by,
        }
    }
}

// One line: `member_rooms` prefixes each column by splitting on ", ".
const COLUMNS: &str =
    "slug, name, topic, created_by, created_at, last_activity, message_count, assistant, private";

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

/// Rooms `user_id` may see, most recently active first: every public room, and the private
/// ones they created or joined (`room_members`). Global admins see all (`all`).
pub async fn list(env: &Env, user_id: &str, all: bool) -> worker::Result<Vec<RoomInfo>> {
    let rows: Vec<RoomRow> = db(env)?
        .prepare(format!(
            "SELECT {COLUMNS} FROM rooms
             WHERE ?3 = 1 OR private = 0 OR created_by = ?2
                OR slug IN (SELECT slug FROM room_members WHERE user_id = ?2)
             ORDER BY COALESCE(last_activity, created_at) DESC LIMIT ?1"
        ))
        .bind(&[
            JsValue::from(LIST_MAX),
            JsValue::from(user_id),
            JsValue::from(i32::from(all)),
        ])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .into_iter()
        .map(|r| DirectoryEntry::from(r).info)
        .collect())
}

/// The rooms `user_id` may see, as [`list`] gives them, with the public ones read through the
/// edge cache ([`crate::cache::Entry::PublicRooms`]): everyone's room list shares that part, and
/// only the user's own private rooms are read for them. True when the public part was a hit.
pub async fn list_for(env: &Env, user_id: &str) -> worker::Result<(Vec<RoomInfo>, bool)> {
    let (public, hit): (Vec<RoomInfo>, bool) =
        crate::cache::json(&crate::cache::Entry::PublicRooms, async {
            let rows: Vec<RoomRow> = db(env)?
                .prepare(format!(
                    "SELECT {COLUMNS} FROM rooms WHERE private = 0
                 ORDER BY COALESCE(last_activity, created_at) DESC LIMIT ?1"
                ))
                .bind(&[JsValue::from(LIST_MAX)])?
                .all()
                .await?
                .results()?;
            Ok(rows
                .into_iter()
                .map(|r| DirectoryEntry::from(r).info)
                .collect())
        })
        .await?;
    let private: Vec<RoomRow> = db(env)?
        .prepare(format!(
            "SELECT {COLUMNS} FROM rooms
             WHERE private = 1 AND (created_by = ?2
                OR slug IN (SELECT slug FROM room_members WHERE user_id = ?2))
             ORDER BY COALESCE(last_activity, created_at) DESC LIMIT ?1"
        ))
        .bind(&[JsValue::from(LIST_MAX), JsValue::from(user_id)])?
        .all()
        .await?
        .results()?;
    let rooms = merge_newest(
        public,
        private.into_iter().map(|r| DirectoryEntry::from(r).info),
    );
    Ok((rooms, hit))
}

/// Both lists as one, most recently active first (as [`list`] orders them), at most
/// `LIST_MAX`.
fn merge_newest(
    mut rooms: Vec<RoomInfo>,
    more: impl IntoIterator<Item = RoomInfo>,
) -> Vec<RoomInfo> {
    rooms.extend(more);
    rooms.sort_by_key(|r| std::cmp::Reverse(r.last_activity.unwrap_or(r.created_at)));
    rooms.truncate(LIST_MAX as usize);
    rooms
}

/// One room.
pub async fn get(env: &Env, slug: &str) -> worker::Result<Option<DirectoryEntry>> {
    let row: Option<RoomRow> = db(env)?
        .prepare(format!("SELECT {COLUMNS} FROM rooms WHERE slug = ?1"))
        .bind(&[JsValue::from(slug)])?
        .first(None)
        .await?;
    Ok(row.map(DirectoryEntry::from))
}

/// A new room's settings.
pub struct RoomSettings {
    /// When the assistant answers.
    pub assistant: AssistantMode,
    /// Invite-only.
    pub private: bool,
}

/// Creates a room under `base` or, if taken, the first free `base-2`, `base-3`, ….
pub async fn create(
    env: &Env,
    base: &str,
    name: &str,
    topic: &str,
    settings: RoomSettings,
    created_by: &str,
    now: i64,
) -> worker::Result<RoomInfo> {
    let RoomSettings { assistant, private } = settings;
    let db = db(env)?;
    #[derive(Deserialize)]
    struct SlugRow {
        slug: String,
    }
    // Two creators racing for the same slug: the loser's INSERT conflicts and it tries again.
    for _ in 0..5 {
        let taken: Vec<SlugRow> = db
            .prepare("SELECT slug FROM rooms WHERE slug = ?1 OR slug LIKE ?1 || '-%'")
            .bind(&[JsValue::from(base)])?
            .all()
            .await?
            .results()?;
        let slug = (1u32..)
            .map(|n| {
                if n == 1 {
                    base.to_owned()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|candidate| !taken.iter().any(|t| &t.slug == candidate))
            .unwrap_or_else(|| base.to_owned());
        debug_assert!(slug.len() <= SLUG_MAX + 8);
        let inserted = db
            .prepare(
                "INSERT INTO rooms (slug, name, topic, created_by, created_at, message_count,
                   assistant, private)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7) ON CONFLICT (slug) DO NOTHING",
            )
            .bind(&[
                JsValue::from(slug.as_str()),
                JsValue::from(name),
                JsValue::from(topic),
                JsValue::from(created_by),
                JsValue::from(now as f64),
                JsValue::from(mode_name(assistant)),
                JsValue::from(i32::from(private)),
            ])?
            .run()
            .await?;
        let changed = inserted.meta()?.and_then(|m| m.changes).unwrap_or_default();
        if changed > 0 {
            if !private {
                crate::cache::purge(&crate::cache::Entry::PublicRooms).await;
            }
            return Ok(RoomInfo {
                slug,
                name: name.to_owned(),
                topic: topic.to_owned(),
                created_at: now,
                last_activity: None,
                message_count: 0,
                assistant,
                private,
            });
        }
    }
    Err(worker::Error::RustError(format!(
        "could not find a free slug for {base}"
    )))
}

/// Records a room's message count and last activity (called by the room, in batches).
pub async fn record_activity(
    env: &Env,
    slug: &str,
    message_count: u64,
    last_activity: Option<i64>,
) -> worker::Result<()> {
    db(env)?
        .prepare("UPDATE rooms SET message_count = ?1, last_activity = ?2 WHERE slug = ?3")
        .bind(&[
            JsValue::from(message_count as f64),
            last_activity.map_or(JsValue::NULL, |t| JsValue::from(t as f64)),
            JsValue::from(slug),
        ])?
        .run()
        .await?;
    Ok(())
}

/// Writes a room's name, topic and privacy (changed by its owner through the room).
pub async fn update_info(env: &Env, info: &RoomInfo) -> worker::Result<()> {
    db(env)?
        .prepare(
            "UPDATE rooms SET name = ?1, topic = ?2, private = ?3, assistant = ?4 WHERE slug = ?5",
        )
        .bind(&[
            JsValue::from(info.name.as_str()),
            JsValue::from(info.topic.as_str()),
            JsValue::from(i32::from(info.private)),
            JsValue::from(mode_name(info.assistant)),
            JsValue::from(info.slug.as_str()),
        ])?
        .run()
        .await?;
    // A rename or a change of privacy shows in the public list at once (here).
    crate::cache::purge(&crate::cache::Entry::PublicRooms).await;
    Ok(())
}

/// The rooms a user has joined (newest first, bounded).
pub async fn rooms_of(env: &Env, user_id: &str) -> worker::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room: String,
    }
    let rows: Vec<Row> = db(env)?
        .prepare(
            "SELECT slug AS room FROM room_members WHERE user_id = ?1
             ORDER BY joined_at DESC LIMIT 500",
        )
        .bind(&[JsValue::from(user_id)])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.room).collect())
}

/// Rooms a user belongs to at most, for cross-room search and unread counts.
pub const MEMBER_ROOMS_MAX: u32 = 100;

/// Records that a user joined a room (idempotent).
pub async fn record_member(env: &Env, slug: &str, user_id: &str, now: i64) -> worker::Result<()> {
    db(env)?
        .prepare(
            "INSERT INTO room_members (slug, user_id, joined_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (slug, user_id) DO NOTHING",
        )
        .bind(&[
            JsValue::from(slug),
            JsValue::from(user_id),
            JsValue::from(now as f64),
        ])?
        .run()
        .await?;
    Ok(())
}

/// The rooms a user has joined, most recently active first.
pub async fn member_rooms(env: &Env, user_id: &str) -> worker::Result<Vec<DirectoryEntry>> {
    let rows: Vec<RoomRow> = db(env)?
        .prepare(format!(
            "SELECT {} FROM rooms r JOIN room_members m ON m.slug = r.slug
             WHERE m.user_id = ?1
             ORDER BY COALESCE(r.last_activity, r.created_at) DESC LIMIT ?2",
            COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(&[JsValue::from(user_id), JsValue::from(MEMBER_ROOMS_MAX)])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(DirectoryEntry::from).collect())
}
