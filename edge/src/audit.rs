//! An audit log row as both logs store it (the room's SQLite and D1 share the columns), read
//! back into the protocol's entry. Both return numbers as JavaScript doubles.

use serde::Deserialize;
use shared::moderation::AuditEntry;

/// The columns of `SELECT id, at, actor_id, actor_name, action, target_id, detail`.
#[derive(Deserialize)]
pub struct AuditRow {
    id: f64,
    at: f64,
    actor_id: String,
    actor_name: String,
    action: String,
    target_id: Option<String>,
    detail: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id as u64,
            at: r.at as i64,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            target_id: r.target_id,
            detail: r.detail,
        }
    }
}
