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
            },
            created_by: row.created_by,
        }
    }
}

const COLUMNS: &str =
    "slug, name, topic, created_by, created_at, last_activity, message_count, assistant";

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

/// Rooms, most recently active first.
pub async fn list(env: &Env) -> worker::Result<Vec<RoomInfo>> {
    let rows: Vec<RoomRow> = db(env)?
        .prepare(format!(
            "SELECT {COLUMNS} FROM rooms
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

/// Creates a room under `base` or, if taken, the first free `base-2`, `base-3`, ….
pub async fn create(
    env: &Env,
    base: &str,
    name: &str,
    topic: &str,
    assistant: AssistantMode,
    created_by: &str,
    now: i64,
) -> worker::Result<RoomInfo> {
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
                   assistant)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) ON CONFLICT (slug) DO NOTHING",
            )
            .bind(&[
                JsValue::from(slug.as_str()),
                JsValue::from(name),
                JsValue::from(topic),
                JsValue::from(created_by),
                JsValue::from(now as f64),
                JsValue::from(mode_name(assistant)),
            ])?
            .run()
            .await?;
        let changed = inserted.meta()?.and_then(|m| m.changes).unwrap_or_default();
        if changed > 0 {
            return Ok(RoomInfo {
                slug,
                name: name.to_owned(),
                topic: topic.to_owned(),
                created_at: now,
                last_activity: None,
                message_count: 0,
                assistant,
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
