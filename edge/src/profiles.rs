//! Profiles (D1 `profiles`, for guests and accounts alike), the admin's view of accounts (D1
//! `users`, owned by `auth`), the global audit log (D1 `audit_log`), and avatars (R2 `AVATARS`).

use serde::Deserialize;
use shared::moderation::http::AdminUser;
use shared::moderation::AuditEntry;
use shared::profile::{AiPrefs, Profile, Theme};
use worker::wasm_bindgen::JsValue;
use worker::{console_error, D1Database, D1PreparedStatement, Env};

use crate::audit::AuditRow;
use crate::directory::BINDING;
use crate::rooms::contract::{self, Identity, ProfileChanged};
use crate::session::SessionUser;

/// The R2 bucket of avatar images.
pub const AVATARS: &str = "AVATARS";

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

#[derive(Deserialize)]
struct ProfileRow {
    id: String,
    name: Option<String>,
    role: Option<String>,
    disabled_at: Option<f64>,
    created_at: Option<f64>,
    avatar_key: Option<String>,
    bio: Option<String>,
    pronouns: Option<String>,
    status: Option<String>,
    time_zone: Option<String>,
    language: Option<String>,
    accent: Option<String>,
    theme: Option<String>,
    ai_tone: Option<String>,
    ai_interests: Option<String>,
    ai_instructions: Option<String>,
    ai_language: Option<String>,
    ai_memory: Option<f64>,
}

impl ProfileRow {
    fn profile(&self) -> Profile {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Profile {
            user_id: self.id.clone(),
            name: self.name.clone().unwrap_or_default(),
            avatar: self.avatar_key.as_deref().map(avatar_url),
            bio: text(&self.bio),
            pronouns: text(&self.pronouns),
            status: text(&self.status),
            time_zone: text(&self.time_zone),
            language: text(&self.language),
            accent: text(&self.accent),
            theme: self
                .theme
                .as_deref()
                .and_then(|t| serde_json::from_value(serde_json::Value::String(t.into())).ok())
                .unwrap_or(Theme::System),
            ai: AiPrefs {
                tone: text(&self.ai_tone),
                interests: text(&self.ai_interests),
                instructions: text(&self.ai_instructions),
                language: text(&self.ai_language),
                memory: self.ai_memory.is_some_and(|m| m != 0.0),
            },
            admin: self.role.as_deref() == Some("admin"),
        }
    }
}

const PROFILE_COLUMNS: &str = "p.avatar_key, p.bio, p.pronouns, p.status, p.time_zone,
    p.language, p.accent, p.theme, p.ai_tone, p.ai_interests, p.ai_instructions, p.ai_language,
    p.ai_memory";

/// The public URL of a stored avatar key (`avatars/<user>/<id>`).
pub fn avatar_url(key: &str) -> String {
    format!("/api/{key}")
}

/// A user's profile: an account's (`users` joined with `profiles`) or a guest's (`profiles`
/// only); `None` for someone the server has never seen.
async fn row(env: &Env, user_id: &str) -> worker::Result<Option<ProfileRow>> {
    db(env)?
        .prepare(format!(
            "SELECT ?1 AS id, COALESCE(u.name, NULLIF(p.name, '')) AS name, u.role,
                    u.disabled_at, u.created_at, {PROFILE_COLUMNS}
             FROM (SELECT ?1 AS uid) k
             LEFT JOIN users u ON u.id = k.uid
             LEFT JOIN profiles p ON p.user_id = k.uid
             WHERE u.id IS NOT NULL OR p.user_id IS NOT NULL"
        ))
        .bind(&[JsValue::from(user_id)])?
        .first(None)
        .await
}

/// Remembers the display name a user connects with (one write, only when it changed), so
/// their profile card has a name even if they never saved a profile (guests have no account).
pub fn touch_statement(
    db: &D1Database,
    user_id: &str,
    name: &str,
    now: i64,
) -> worker::Result<D1PreparedStatement> {
    db.prepare(
        "INSERT INTO profiles (user_id, name, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET name = excluded.name
         WHERE profiles.name <> excluded.name",
    )
    .bind(&[
        JsValue::from(user_id),
        JsValue::from(name),
        JsValue::from(now as f64),
    ])
}

/// After a connect: remembers the user's name for their profile card (the room itself records
/// the membership on a first join).
pub async fn record_connect(env: &Env, user_id: &str, name: &str, now: i64) -> worker::Result<()> {
    touch_statement(&db(env)?, user_id, name, now)?
        .run()
        .await?;
    Ok(())
}

/// Who the session's user is now: their name and global role (from the session), and their
/// avatar and assistant preferences (from the profile).
pub async fn identity(env: &Env, user: &SessionUser) -> worker::Result<Identity> {
    Ok(identity_from(user, row(env, &user.user_id).await?))
}

/// A profile read before the session it belongs to was verified (a guest's id is in their
/// cookie), so a connect can read both at once. Worth nothing until [`Prefetched::identity`]
/// matches it to the verified session.
pub struct Prefetched {
    user_id: String,
    row: Option<ProfileRow>,
}

impl Prefetched {
    /// Reads the profile of `user_id`.
    pub async fn read(env: &Env, user_id: &str) -> worker::Result<Self> {
        Ok(Prefetched {
            user_id: user_id.to_owned(),
            row: row(env, user_id).await?,
        })
    }

    /// The identity of `user`, if this is their profile (else it must be read afresh).
    pub fn identity(self, user: &SessionUser) -> Option<Identity> {
        (self.user_id == user.user_id).then(|| identity_from(user, self.row))
    }
}

fn identity_from(user: &SessionUser, row: Option<ProfileRow>) -> Identity {
    let profile = row.map(|r| r.profile());
    Identity {
        id: user.user_id.clone(),
        name: user.name.clone(),
        admin: user.role.as_deref() == Some("admin"),
        avatar: profile.as_ref().and_then(|p| p.avatar.clone()),
        prefs: profile.map(|p| p.ai).unwrap_or_default(),
    }
}

/// A user's whole profile.
pub async fn get(env: &Env, user_id: &str) -> worker::Result<Option<Profile>> {
    Ok(row(env, user_id).await?.map(|r| r.profile()))
}

/// Stores a validated profile (name in `users`, the rest in `profiles`).
pub async fn put(env: &Env, profile: &Profile, now: i64) -> worker::Result<()> {
    let db = db(env)?;
    let theme = match profile.theme {
        Theme::Light => "light",
        Theme::Dark => "dark",
        Theme::System | Theme::Unknown => "system",
    };
    db.prepare(
        "INSERT INTO profiles (user_id, bio, pronouns, status, time_zone, language, accent,
               theme, ai_tone, ai_interests, ai_instructions, ai_language, ai_memory, updated_at,
               name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, bio = excluded.bio,
               pronouns = excluded.pronouns, status = excluded.status,
               time_zone = excluded.time_zone, language = excluded.language,
               accent = excluded.accent, theme = excluded.theme, ai_tone = excluded.ai_tone,
               ai_interests = excluded.ai_interests, ai_instructions = excluded.ai_instructions,
               ai_language = excluded.ai_language, ai_memory = excluded.ai_memory,
               updated_at = excluded.updated_at",
    )
    .bind(&[
        JsValue::from(profile.user_id.as_str()),
        JsValue::from(profile.bio.as_str()),
        JsValue::from(profile.pronouns.as_str()),
        JsValue::from(profile.status.as_str()),
        JsValue::from(profile.time_zone.as_str()),
        JsValue::from(profile.language.as_str()),
        JsValue::from(profile.accent.as_str()),
        JsValue::from(theme),
        JsValue::from(profile.ai.tone.as_str()),
        JsValue::from(profile.ai.interests.as_str()),
        JsValue::from(profile.ai.instructions.as_str()),
        JsValue::from(profile.ai.language.as_str()),
        JsValue::from(i32::from(profile.ai.memory)),
        JsValue::from(now as f64),
        JsValue::from(profile.name.as_str()),
    ])?
    .run()
    .await?;
    crate::cache::purge(&crate::cache::Entry::ProfileCard {
        user: &profile.user_id,
    })
    .await;
    Ok(())
}

/// Points the profile at a newly stored avatar.
pub async fn set_avatar(env: &Env, user_id: &str, key: &str, now: i64) -> worker::Result<()> {
    db(env)?
        .prepare(
            "INSERT INTO profiles (user_id, avatar_key, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET avatar_key = excluded.avatar_key,
               updated_at = excluded.updated_at",
        )
        .bind(&[
            JsValue::from(user_id),
            JsValue::from(key),
            JsValue::from(now as f64),
        ])?
        .run()
        .await?;
    crate::cache::purge(&crate::cache::Entry::ProfileCard { user: user_id }).await;
    Ok(())
}

/// Users whose name or id contains `query` (all when empty), newest first, at most 100.
pub async fn search(env: &Env, query: &str) -> worker::Result<Vec<AdminUser>> {
    let pattern = format!(
        "%{}%",
        query
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows: Vec<ProfileRow> = db(env)?
        .prepare(format!(
            "SELECT u.id, u.name, u.role, u.disabled_at, u.created_at, {PROFILE_COLUMNS}
             FROM users u LEFT JOIN profiles p ON p.user_id = u.id
             WHERE u.name LIKE ?1 ESCAPE '\\' OR u.id = ?2
             ORDER BY u.created_at DESC LIMIT 100"
        ))
        .bind(&[JsValue::from(pattern.as_str()), JsValue::from(query)])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .into_iter()
        .map(|r| AdminUser {
            profile: r.profile().public(),
            role: r.role.clone().unwrap_or_else(|| "user".into()),
            disabled_at: r.disabled_at.map(|t| t as i64),
            created_at: r.created_at.unwrap_or_default() as i64,
        })
        .collect())
}

/// Sets a user's global role (`admin` or `user`). False when there is no such user.
pub async fn set_role(env: &Env, user_id: &str, role: &str) -> worker::Result<bool> {
    let result = db(env)?
        .prepare("UPDATE users SET role = ?1 WHERE id = ?2")
        .bind(&[JsValue::from(role), JsValue::from(user_id)])?
        .run()
        .await?;
    crate::cache::purge(&crate::cache::Entry::ProfileCard { user: user_id }).await;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or_default() > 0)
}

/// Marks a user disabled or enabled (ending their sessions and sockets is `auth`'s
/// `sessions::end_all_of_user`). False when there is no such account.
pub async fn set_disabled(
    env: &Env,
    user_id: &str,
    disabled: bool,
    now: i64,
) -> worker::Result<bool> {
    let at = if disabled {
        JsValue::from(now as f64)
    } else {
        JsValue::NULL
    };
    let result = db(env)?
        .prepare("UPDATE users SET disabled_at = ?1 WHERE id = ?2")
        .bind(&[at, JsValue::from(user_id)])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or_default() > 0)
}

/// Appends to the global audit log.
pub async fn audit(env: &Env, entry: &AuditEntry) -> worker::Result<()> {
    db(env)?
        .prepare(
            "INSERT INTO audit_log (at, actor_id, actor_name, action, target_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&[
            JsValue::from(entry.at as f64),
            JsValue::from(entry.actor_id.as_str()),
            JsValue::from(entry.actor_name.as_str()),
            JsValue::from(entry.action.as_str()),
            entry
                .target_id
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from),
            JsValue::from(entry.detail.as_str()),
        ])?
        .run()
        .await?;
    Ok(())
}

/// The newest global audit entries (with ids below `before`).
pub async fn audit_page(env: &Env, before: Option<u64>) -> worker::Result<Vec<AuditEntry>> {
    let rows: Vec<AuditRow> = db(env)?
        .prepare(
            "SELECT id, at, actor_id, actor_name, action, target_id, detail FROM audit_log
             WHERE id < ?1 ORDER BY id DESC LIMIT 50",
        )
        .bind(&[JsValue::from(before.map_or(9.0e15, |b| b as f64))])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// Tells each room the user joined about their new name, avatar and assistant preferences.
/// A room that fails is logged and skipped: the profile is stored, and the room shows the new
/// name at the user's next connect verified in full (within a minute: a connect it remembers
/// from before the change may still be reused until then, `shared::room::verified`).
pub async fn announce(env: &Env, profile: &Profile) {
    // `profile` was read after the change was written, so no earlier read is newer than it.
    let as_of = Some(crate::time::now());
    let rooms = match crate::directory::rooms_of(env, &profile.user_id).await {
        Ok(rooms) => rooms,
        Err(e) => {
            console_error!("could not list the rooms of {}: {e}", profile.user_id);
            return;
        }
    };
    let user = Identity {
        id: profile.user_id.clone(),
        name: profile.name.clone(),
        admin: profile.admin,
        avatar: profile.avatar.clone(),
        prefs: profile.ai.clone(),
    };
    for slug in rooms {
        let changed = ProfileChanged {
            user: user.clone(),
            as_of,
        };
        if let Err(e) = contract::call(env, &slug, changed).await {
            console_error!("could not tell {slug} about a profile change: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(id: &str) -> SessionUser {
        SessionUser {
            user_id: id.into(),
            name: "Gus".into(),
            session_id: None,
            role: None,
            valid_until: 0,
        }
    }

    #[test]
    fn a_prefetched_profile_is_used_only_for_the_session_it_was_read_for() {
        let prefetched = || Prefetched {
            user_id: "g1".into(),
            row: None,
        };
        let me = prefetched().identity(&guest("g1")).expect("the same user");
        assert_eq!((me.id.as_str(), me.name.as_str()), ("g1", "Gus"));
        // The verified session is someone else's (an account signed in beside a guest cookie):
        // its profile must be read afresh.
        assert!(prefetched().identity(&guest("a1")).is_none());
    }
}
