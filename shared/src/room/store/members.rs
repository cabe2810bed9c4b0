//! Members and what is kept about each: who joined and under which name, read positions,
//! mentions and unread counts, roles, mutes, bans (and network bans), the audit log and invites.

use super::{json, Row, Sql, SqlStore, StoreError, MAX_SAFE_INTEGER};
use crate::limits::UNREAD_COUNT_CAP;
use crate::moderation::{AuditEntry, Invite, MemberRecord};
use crate::protocol::{Member, Millis, Role, Seq, UnreadCounts};
use crate::sql_params;

const MEMBER_COLUMNS: &str =
    "user_id, name, role, banned, muted_until, joined_at, renamed_at, name_as_of";
const INVITE_COLUMNS: &str =
    "token, created_by, created_at, expires_at, max_uses, uses, revoked_at";

/// At most this many members are remembered; past it the cache starts over.
const MEMBER_CACHE_MAX: usize = 4_096;

/// How stale a member's "last seen" may get before a rejoin writes it again (see
/// [`SqlStore::record_member`]).
pub const LAST_SEEN_STEP_MS: Millis = 60_000;

fn member_from_row(row: &Row) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        user_id: row.text(0)?,
        name: row.text(1)?,
        // An unreadable role grants nothing (Unknown is refused everything).
        role: serde_json::from_value(serde_json::Value::String(row.text(2)?))
            .unwrap_or(Role::Unknown),
        banned: row.int(3)? != 0,
        muted_until: row.opt_int(4)?,
        joined_at: row.int(5)?,
        renamed_at: row.opt_int(6)?,
        name_as_of: row.opt_int(7)?,
    })
}

fn invite_from_row(row: &Row) -> Result<Invite, StoreError> {
    Ok(Invite {
        token: row.text(0)?,
        created_by: row.text(1)?,
        created_at: row.int(2)?,
        expires_at: row.opt_int(3)?,
        max_uses: row.opt_uint(4)?.map(|n| n as u32),
        uses: row.uint(5)? as u32,
        revoked_at: row.opt_int(6)?,
    })
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Moderator => "moderator",
        Role::Member => "member",
        Role::ReadOnly | Role::Unknown => "read_only",
    }
}

impl<D: Sql> SqlStore<D> {
    /// Records that a member joined (or rejoined under a new name). Returns true the first
    /// time this user joins the room.
    ///
    /// A member seen again under the same name within [`LAST_SEEN_STEP_MS`] is not written:
    /// a write holds the room's answer (the welcome) until it is durable, and "recently seen"
    /// (the order of mention suggestions) needs no finer step than that.
    pub fn record_member(&self, member: &Member, now: Millis) -> Result<bool, StoreError> {
        let key = crate::mentions::name_key(&member.name);
        let known = self.db.query(
            "SELECT name, name_key, last_seen FROM members WHERE user_id = ?",
            sql_params![member.user_id.as_str()],
        )?;
        if let Some(row) = known.first() {
            let unchanged = row.text(0)? == member.name
                && row.opt_text(1)?.as_deref() == Some(key.as_str())
                && now.saturating_sub(row.int(2)?) < LAST_SEEN_STEP_MS;
            if unchanged {
                return Ok(false);
            }
        }
        self.db.execute(
            "INSERT INTO members (user_id, name, last_seen, name_key) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,
                 last_seen = excluded.last_seen, name_key = excluded.name_key",
            sql_params![member.user_id.as_str(), member.name.as_str(), now, key],
        )?;
        Ok(known.is_empty())
    }

    /// The room's members, most recently seen first, at most `limit`.
    pub fn members(&self, limit: usize) -> Result<Vec<Member>, StoreError> {
        self.db
            .query(
                "SELECT user_id, name FROM members ORDER BY last_seen DESC LIMIT ?",
                sql_params![limit.min(MAX_SAFE_INTEGER as usize) as u64],
            )?
            .iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.text(0)?,
                    name: r.text(1)?,
                    avatar: None,
                })
            })
            .collect()
    }

    /// The members whose name has one of these keys ([`crate::mentions::name_key`]), most
    /// recently seen first: the candidates a text's mentions could name.
    pub fn members_named(&self, keys: &[String]) -> Result<Vec<Member>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .query(
                "SELECT user_id, name FROM members
                 WHERE name_key IN (SELECT value FROM json_each(?))
                 ORDER BY last_seen DESC",
                sql_params![json(&keys)?],
            )?
            .iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.text(0)?,
                    name: r.text(1)?,
                    avatar: None,
                })
            })
            .collect()
    }

    /// The users message `seq` mentions.
    pub fn mentioned(&self, seq: Seq) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT user_id FROM mentions WHERE seq = ? ORDER BY user_id",
                sql_params![seq],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Records that message `seq` mentions these users.
    pub fn add_mentions(&self, seq: Seq, user_ids: &[&str]) -> Result<(), StoreError> {
        for id in user_ids {
            self.db.execute(
                "INSERT OR IGNORE INTO mentions (user_id, seq) VALUES (?, ?)",
                sql_params![*id, seq],
            )?;
        }
        Ok(())
    }

    /// A member's read position.
    pub fn read_position(&self, user_id: &str) -> Result<Option<Seq>, StoreError> {
        let rows = self.db.query(
            "SELECT seq FROM reads WHERE user_id = ?",
            sql_params![user_id],
        )?;
        rows.first().map(|r| r.uint(0)).transpose()
    }

    /// Sets a member's read position.
    pub fn set_read_position(&self, user_id: &str, seq: Seq) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO reads (user_id, seq) VALUES (?, ?)
             ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
            sql_params![user_id, seq],
        )
    }

    /// What is unread for `user_id` after `read`: timeline messages by others that are not
    /// deleted, and messages mentioning them. Both counts stop at [`UNREAD_COUNT_CAP`], so a
    /// member far behind costs a bounded scan.
    pub fn unread_counts(&self, user_id: &str, read: Seq) -> Result<UnreadCounts, StoreError> {
        let rows = self.db.query(
            "SELECT
               (SELECT COUNT(*) FROM (SELECT 1 FROM messages
                  WHERE seq > ?1 AND in_main = 1 AND deleted = 0 AND author_id != ?2
                  LIMIT ?3)),
               (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn
                  JOIN messages m ON m.seq = mn.seq
                  WHERE mn.user_id = ?2 AND mn.seq > ?1 AND m.deleted = 0
                  LIMIT ?3))",
            sql_params![read, user_id, UNREAD_COUNT_CAP],
        )?;
        match rows.first() {
            Some(r) => Ok(UnreadCounts {
                unread: r.uint(0)? as u32,
                mentions: r.uint(1)? as u32,
            }),
            None => Ok(UnreadCounts::default()),
        }
    }

    /// A user's standing in the room.
    pub fn member(&self, user_id: &str) -> Result<Option<MemberRecord>, StoreError> {
        if let Some(known) = self.members.borrow().get(user_id) {
            return Ok(known.clone());
        }
        let rows = self.db.query(
            &format!("SELECT {MEMBER_COLUMNS} FROM member_roles WHERE user_id = ?"),
            sql_params![user_id],
        )?;
        let member = rows.first().map(member_from_row).transpose()?;
        let mut members = self.members.borrow_mut();
        if members.len() >= MEMBER_CACHE_MAX {
            members.clear();
        }
        members.insert(user_id.to_owned(), member.clone());
        Ok(member)
    }

    /// Stores a user's standing (insert or replace).
    pub fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        // Forgotten first, so a failed write leaves the next read to the database.
        self.members.borrow_mut().remove(&m.user_id);
        self.db.execute(
            "INSERT INTO member_roles (user_id, name, role, banned, muted_until, joined_at, renamed_at,
                 name_as_of)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, role = excluded.role,
               banned = excluded.banned, muted_until = excluded.muted_until,
               renamed_at = excluded.renamed_at, name_as_of = excluded.name_as_of",
            sql_params![
                m.user_id.as_str(),
                m.name.as_str(),
                role_str(m.role),
                m.banned,
                m.muted_until,
                m.joined_at,
                m.renamed_at,
                m.name_as_of
            ],
        )
    }

    /// Remembers the network a member's latest connection came from (`None`: a signed-in
    /// account, which has none). Writes only when it changed.
    pub fn set_member_network(
        &self,
        user_id: &str,
        network: Option<&str>,
    ) -> Result<(), StoreError> {
        // Read first: an UPDATE that changes nothing is still a write, which holds the
        // upgrade's answer until it is durable.
        if self.member_network(user_id)?.as_deref() == network {
            return Ok(());
        }
        self.db.execute(
            "UPDATE member_roles SET network = ? WHERE user_id = ?",
            sql_params![network, user_id],
        )
    }

    /// The network a member's latest connection came from, if they connected as a guest.
    pub fn member_network(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.db.query(
            "SELECT network FROM member_roles WHERE user_id = ?",
            sql_params![user_id],
        )?;
        rows.first()
            .map(|r| r.opt_text(0))
            .transpose()
            .map(Option::flatten)
    }

    /// Bans new guests from `network` until `until` because `user_id` was banned (a second ban
    /// of the same user moves the end). Drops the bans that ended before `now` on the way.
    pub fn ban_network(
        &self,
        network: &str,
        user_id: &str,
        now: Millis,
        until: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM network_bans WHERE until_ms <= ?",
            sql_params![now],
        )?;
        self.db.execute(
            "INSERT INTO network_bans (network, user_id, until_ms) VALUES (?, ?, ?)
             ON CONFLICT (network, user_id) DO UPDATE SET until_ms = excluded.until_ms",
            sql_params![network, user_id, until],
        )
    }

    /// Lifts the network bans that banning `user_id` made.
    pub fn lift_network_bans(&self, user_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM network_bans WHERE user_id = ?",
            sql_params![user_id],
        )
    }

    /// Whether new guests from `network` are banned at `now` (a ban that has ended counts for
    /// nothing, whether or not its row is gone yet).
    pub fn network_banned(&self, network: &str, now: Millis) -> Result<bool, StoreError> {
        let rows = self.db.query(
            "SELECT 1 FROM network_bans WHERE network = ? AND until_ms > ? LIMIT 1",
            sql_params![network, now],
        )?;
        Ok(!rows.is_empty())
    }

    /// Member records by join time (bounded: a member list is for people, not for scanning a
    /// huge room).
    pub fn member_records(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles ORDER BY joined_at, user_id LIMIT 1000"
                ),
                &[],
            )?
            .iter()
            .map(member_from_row)
            .collect()
    }

    /// Members whose name changed after `at` (bounded like the member list; renames are rare
    /// next to messages).
    pub fn renamed_since(&self, at: Millis) -> Result<Vec<MemberRecord>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles WHERE renamed_at > ?
                     ORDER BY renamed_at LIMIT 1000"
                ),
                sql_params![at],
            )?
            .iter()
            .map(member_from_row)
            .collect()
    }

    /// Appends to the audit log (the store assigns the id).
    pub fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO audit (at, actor_id, actor_name, action, target_id, detail)
             VALUES (?, ?, ?, ?, ?, ?)",
            sql_params![
                e.at,
                e.actor_id.as_str(),
                e.actor_name.as_str(),
                e.action.as_str(),
                e.target_id.as_deref(),
                e.detail.as_str()
            ],
        )
    }

    /// Up to `limit` audit entries with `id < before` (all if `None`), newest first.
    pub fn audit_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.db
            .query(
                "SELECT id, at, actor_id, actor_name, action, target_id, detail FROM audit
                 WHERE id < ? ORDER BY id DESC LIMIT ?",
                sql_params![before.map_or(MAX_SAFE_INTEGER, |b| b as i64), limit as u64],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.uint(0)?,
                    at: r.int(1)?,
                    actor_id: r.text(2)?,
                    actor_name: r.text(3)?,
                    action: r.text(4)?,
                    target_id: r.opt_text(5)?,
                    detail: r.text(6)?,
                })
            })
            .collect()
    }

    /// An invite by token.
    pub fn invite(&self, token: &str) -> Result<Option<Invite>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {INVITE_COLUMNS} FROM invites WHERE token = ?"),
            sql_params![token],
        )?;
        rows.first().map(invite_from_row).transpose()
    }

    /// Stores an invite (insert, or update its uses and revocation).
    pub fn put_invite(&self, i: &Invite) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO invites (token, created_by, created_at, expires_at, max_uses, uses, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (token) DO UPDATE SET uses = excluded.uses,
               revoked_at = excluded.revoked_at",
            sql_params![
                i.token.as_str(),
                i.created_by.as_str(),
                i.created_at,
                i.expires_at,
                i.max_uses,
                i.uses,
                i.revoked_at
            ],
        )
    }

    /// The newest invites first (at most 200).
    pub fn invites(&self) -> Result<Vec<Invite>, StoreError> {
        self.db
            .query(
                &format!("SELECT {INVITE_COLUMNS} FROM invites ORDER BY created_at DESC LIMIT 200"),
                &[],
            )?
            .iter()
            .map(invite_from_row)
            .collect()
    }
}
