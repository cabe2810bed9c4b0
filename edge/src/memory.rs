//! The assistant's memory of users who opted in (D1 `ai_memory`): facts it learned from their
//! questions, which they can list and delete. At most [`MEMORY_MAX_FACTS`] per user; the oldest
//! go first.

use serde::{Deserialize, Serialize};
use shared::ai::MEMORY_MAX_FACTS;
use worker::wasm_bindgen::JsValue;
use worker::Env;

/// One remembered fact, as `GET /api/me/memory` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fact {
    /// Id, for deleting it.
    pub id: f64,
    /// The fact.
    pub fact: String,
    /// The room it was learned in.
    pub room: String,
    /// When.
    pub created_at: f64,
}

/// Stores new facts about `user_id` and drops the oldest beyond the cap.
pub async fn add(env: &Env, user_id: &str, room: &str, facts: &[String]) -> worker::Result<()> {
    let db = env.d1("DB")?;
    let at = worker::Date::now().as_millis() as f64;
    let mut statements = Vec::new();
    for fact in facts {
        statements.push(
            db.prepare(
                "INSERT INTO ai_memory (user_id, fact, room, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(&[user_id.into(), fact.as_str().into(), room.into(), at.into()])?,
        );
    }
    statements.push(
        db.prepare(
            "DELETE FROM ai_memory WHERE user_id = ?1 AND id NOT IN
               (SELECT id FROM ai_memory WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)",
        )
        .bind(&[user_id.into(), JsValue::from(MEMORY_MAX_FACTS as f64)])?,
    );
    db.batch(statements).await?;
    Ok(())
}

/// A user's facts, oldest first.
pub async fn list(env: &Env, user_id: &str) -> worker::Result<Vec<Fact>> {
    env.d1("DB")?
        .prepare("SELECT id, fact, room, created_at FROM ai_memory WHERE user_id = ?1 ORDER BY id")
        .bind(&[user_id.into()])?
        .all()
        .await?
        .results()
}

/// The facts the assistant may use for `user_id` in room `slug`, oldest first: everything
/// learned in public rooms, and what was learned in a private room only in that same room (a
/// private conversation, the user's own assistant room included, does not leak into others).
pub async fn for_room(env: &Env, user_id: &str, slug: &str) -> worker::Result<Vec<Fact>> {
    env.d1("DB")?
        .prepare(
            "SELECT m.id, m.fact, m.room, m.created_at FROM ai_memory m
             LEFT JOIN rooms r ON r.slug = m.room
             WHERE m.user_id = ?1 AND (m.room = ?2 OR COALESCE(r.private, 1) = 0)
             ORDER BY m.id",
        )
        .bind(&[user_id.into(), slug.into()])?
        .all()
        .await?
        .results()
}

/// Deletes one fact (`Some(id)`) or all of them; returns how many went.
pub async fn delete(env: &Env, user_id: &str, id: Option<i64>) -> worker::Result<usize> {
    let db = env.d1("DB")?;
    let statement = match id {
        Some(id) => db
            .prepare("DELETE FROM ai_memory WHERE user_id = ?1 AND id = ?2")
            .bind(&[user_id.into(), JsValue::from(id as f64)])?,
        None => db
            .prepare("DELETE FROM ai_memory WHERE user_id = ?1")
            .bind(&[user_id.into()])?,
    };
    let result = statement.run().await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// The slug of the user's private assistant room, if they have one.
pub async fn assistant_room(env: &Env, user_id: &str) -> worker::Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        slug: String,
    }
    let row: Option<Row> = env
        .d1("DB")?
        .prepare("SELECT slug FROM ai_rooms WHERE user_id = ?1")
        .bind(&[user_id.into()])?
        .first(None)
        .await?;
    Ok(row.map(|r| r.slug))
}

/// Records the user's assistant room unless one is recorded already; returns the one that is.
pub async fn set_assistant_room(env: &Env, user_id: &str, slug: &str) -> worker::Result<String> {
    env.d1("DB")?
        .prepare("INSERT INTO ai_rooms (user_id, slug) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .bind(&[user_id.into(), slug.into()])?
        .run()
        .await?;
    Ok(assistant_room(env, user_id)
        .await?
        .unwrap_or_else(|| slug.to_owned()))
}
