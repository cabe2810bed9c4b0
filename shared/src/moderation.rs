//! Room membership, moderation commands, invites and the audit log: the data and the pure rules.
//! The room ([`crate::room::Room`]) applies them; the room's storage keeps them.

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, ErrorCode};
use crate::permissions::Action;
use crate::protocol::{Millis, Role};

/// Longest mute, in seconds (30 days).
pub const MUTE_MAX_SECONDS: u32 = 30 * 24 * 60 * 60;
/// Longest invite lifetime, in seconds (30 days).
pub const INVITE_MAX_SECONDS: u32 = 30 * 24 * 60 * 60;
/// Audit entries per page.
pub const AUDIT_PAGE: usize = 50;

/// A user's standing in one room, kept in the room's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// User id.
    pub user_id: String,
    /// Their display name as last seen by the room.
    pub name: String,
    /// Their role in the room.
    pub role: Role,
    /// Banned users cannot join.
    #[serde(default)]
    pub banned: bool,
    /// Muted until this time (they can read but not post).
    #[serde(default)]
    pub muted_until: Option<Millis>,
    /// When they first joined.
    pub joined_at: Millis,
    /// When the room last saw their name change (so a client catching up by replay learns
    /// the new name for the messages it already holds).
    #[serde(default)]
    pub renamed_at: Option<Millis>,
    /// How recent the stored name is: when the Worker read it (its clock, not the room's),
    /// `None` when unknown. A connect that read an older name must not undo a newer rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_as_of: Option<Millis>,
}

impl MemberRecord {
    /// How long the mute still lasts at `now`, if it does.
    pub fn mute_left(&self, now: Millis) -> Option<u64> {
        self.muted_until
            .filter(|until| *until > now)
            .map(|until| (until - now) as u64)
    }
}

/// A privileged command on a room, over the socket ([`crate::ClientMessage::Moderate`]) or
/// HTTP (`POST /api/rooms/<slug>/moderation`). Both go through the same checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Close the user's connections (they may come back unless banned).
    Kick {
        /// Target user.
        user_id: String,
    },
    /// Ban the user: their connections close and they cannot join again.
    Ban {
        /// Target user.
        user_id: String,
    },
    /// Lift a ban.
    Unban {
        /// Target user.
        user_id: String,
    },
    /// Mute the user for a time.
    Mute {
        /// Target user.
        user_id: String,
        /// How long, 1 to [`MUTE_MAX_SECONDS`].
        seconds: u32,
    },
    /// Lift a mute.
    Unmute {
        /// Target user.
        user_id: String,
    },
    /// Change the user's role in the room.
    SetRole {
        /// Target user.
        user_id: String,
        /// The new role.
        role: Role,
    },
    /// Change the room's name, topic, privacy or assistant mode (absent fields stay as they
    /// are).
    UpdateRoom {
        /// New display name.
        #[serde(default)]
        name: Option<String>,
        /// New topic.
        #[serde(default)]
        topic: Option<String>,
        /// Invite-only or not.
        #[serde(default)]
        private: Option<bool>,
        /// When the assistant answers.
        #[serde(default)]
        assistant: Option<crate::protocol::AssistantMode>,
    },
    /// Revoke an invite link.
    RevokeInvite {
        /// The invite's token.
        token: String,
    },
}

impl Command {
    /// Checks the command's own fields (not whether the actor may run it).
    pub fn validate(&self) -> Result<(), ChatError> {
        match self {
            Command::Mute { seconds, .. } if *seconds == 0 || *seconds > MUTE_MAX_SECONDS => {
                Err(ChatError::new(
                    ErrorCode::InvalidInput,
                    format!("A mute lasts 1 to {MUTE_MAX_SECONDS} seconds."),
                ))
            }
            Command::SetRole {
                role: Role::Unknown,
                ..
            } => Err(ChatError::new(
                ErrorCode::InvalidInput,
                "role must be owner, moderator, member or read_only.",
            )),
            Command::UpdateRoom { name, topic, .. } => {
                if let Some(name) = name {
                    crate::limits::validate_room_name(name)?;
                }
                if let Some(topic) = topic {
                    crate::limits::validate_topic(topic)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The permission this command needs.
    pub fn action(&self) -> Action {
        match self {
            Command::Kick { .. } => Action::Kick,
            Command::Ban { .. } | Command::Unban { .. } => Action::Ban,
            Command::Mute { .. } | Command::Unmute { .. } => Action::Mute,
            Command::SetRole { .. } => Action::AssignRole,
            Command::UpdateRoom { .. } => Action::EditRoom,
            Command::RevokeInvite { .. } => Action::Invite,
        }
    }

    /// The user the command is about, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Command::Kick { user_id }
            | Command::Ban { user_id }
            | Command::Unban { user_id }
            | Command::Mute { user_id, .. }
            | Command::Unmute { user_id }
            | Command::SetRole { user_id, .. } => Some(user_id),
            Command::UpdateRoom { .. } | Command::RevokeInvite { .. } => None,
        }
    }

    /// Its name in the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Kick { .. } => "kick",
            Command::Ban { .. } => "ban",
            Command::Unban { .. } => "unban",
            Command::Mute { .. } => "mute",
            Command::Unmute { .. } => "unmute",
            Command::SetRole { .. } => "set_role",
            Command::UpdateRoom { .. } => "update_room",
            Command::RevokeInvite { .. } => "revoke_invite",
        }
    }
}

/// An invite link to a (private) room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The secret part of the link (`/invite/<slug>/<token>`).
    pub token: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<Millis>,
    /// How many joins it allows, if limited.
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// Joins so far.
    #[serde(default)]
    pub uses: u32,
    /// When it was revoked, if it was.
    #[serde(default)]
    pub revoked_at: Option<Millis>,
}

impl Invite {
    /// Whether the invite admits someone at `now`; the error says why not.
    pub fn check(&self, now: Millis) -> Result<(), ChatError> {
        if self.revoked_at.is_some() {
            return Err(ChatError::new(
                ErrorCode::InviteInvalid,
                "This invite link was revoked; ask for a new one.",
            ));
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Err(ChatError::new(
                ErrorCode::InviteInvalid,
                "This invite link has expired; ask for a new one.",
            ));
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(ChatError::new(
                ErrorCode::InviteInvalid,
                "This invite link has been used up; ask for a new one.",
            ));
        }
        Ok(())
    }
}

/// `POST /api/rooms/<slug>/invites`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateInvite {
    /// Lifetime in seconds, 1 to [`INVITE_MAX_SECONDS`]; none = until revoked.
    pub expires_in_seconds: Option<u32>,
    /// Joins allowed; none = unlimited.
    pub max_uses: Option<u32>,
}

impl CreateInvite {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), ChatError> {
        if self
            .expires_in_seconds
            .is_some_and(|s| s == 0 || s > INVITE_MAX_SECONDS)
        {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                format!("expires_in_seconds must be 1 to {INVITE_MAX_SECONDS}."),
            ));
        }
        if self.max_uses == Some(0) {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "max_uses must be at least 1.",
            ));
        }
        Ok(())
    }
}

/// One privileged action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id (pages go by it).
    pub id: u64,
    /// When.
    pub at: Millis,
    /// Who did it.
    pub actor_id: String,
    /// Their name at the time.
    pub actor_name: String,
    /// What (`kick`, `ban`, `set_role`, `create_invite`, `delete_message`, ...).
    pub action: String,
    /// On whom, if anyone.
    #[serde(default)]
    pub target_id: Option<String>,
    /// Details (a role, a duration, a message number).
    #[serde(default)]
    pub detail: String,
}

/// Bodies of the roles HTTP API.
pub mod http {
    use serde::{Deserialize, Serialize};

    use super::{AuditEntry, Invite, MemberRecord};
    use crate::profile::PublicProfile;
    use crate::protocol::RoomInfo;

    /// `GET /api/rooms/<slug>/members`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MemberList {
        /// Members, by join time.
        pub members: Vec<MemberRecord>,
    }

    /// `GET /api/rooms/<slug>/audit` and `GET /api/admin/audit`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AuditPage {
        /// Newest first.
        pub entries: Vec<AuditEntry>,
    }

    /// `GET /api/rooms/<slug>/invites`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InviteList {
        /// Invites, newest first.
        pub invites: Vec<Invite>,
    }

    /// `POST /api/rooms/<slug>/join`: join a room, with an invite for a private one.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct JoinRoom {
        /// The invite token.
        pub invite: Option<String>,
    }

    /// One row of `GET /api/admin/users`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AdminUser {
        /// Public profile.
        #[serde(flatten)]
        pub profile: PublicProfile,
        /// `admin` or `user`.
        pub role: String,
        /// When disabled, if disabled.
        #[serde(default)]
        pub disabled_at: Option<i64>,
        /// When the account was created.
        pub created_at: i64,
    }

    /// `GET /api/admin/users`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AdminUsers {
        /// Matching users, newest first.
        pub users: Vec<AdminUser>,
    }

    /// `POST /api/admin/users/<id>`: change a user's global role or disable/enable them.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct UpdateUser {
        /// `admin` or `user`.
        pub role: Option<String>,
        /// Disable (true) or enable (false).
        pub disabled: Option<bool>,
    }

    /// `GET /api/admin/rooms`: every room, private ones included.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AdminRooms {
        /// Rooms, most recently active first.
        pub rooms: Vec<RoomInfo>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            token: "t".into(),
            created_by: "owner".into(),
            created_at: 1_000,
            expires_at: Some(2_000),
            max_uses: Some(2),
            uses: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn an_invite_admits_until_it_expires() {
        assert!(invite().check(1_999).is_ok());
        let err = invite().check(2_000).unwrap_err();
        assert_eq!(err.code, ErrorCode::InviteInvalid);
        assert!(err.message.contains("expired"), "{}", err.message);
    }

    #[test]
    fn a_revoked_invite_admits_no_one_even_before_it_expires() {
        let revoked = Invite {
            revoked_at: Some(1_500),
            ..invite()
        };
        let err = revoked.check(1_600).unwrap_err();
        assert_eq!(err.code, ErrorCode::InviteInvalid);
        assert!(err.message.contains("revoked"), "{}", err.message);
    }

    #[test]
    fn an_invite_is_used_up_after_its_last_use() {
        let used = Invite {
            uses: 2,
            ..invite()
        };
        assert!(used.check(1_100).unwrap_err().message.contains("used up"));
        let unlimited = Invite {
            max_uses: None,
            expires_at: None,
            uses: 1_000,
            ..invite()
        };
        assert!(unlimited.check(i64::MAX).is_ok());
    }

    #[test]
    fn a_mute_lasts_until_its_end_and_not_after() {
        let member = MemberRecord {
            user_id: "u".into(),
            name: "U".into(),
            role: Role::Member,
            banned: false,
            muted_until: Some(5_000),
            joined_at: 0,
            renamed_at: None,
            name_as_of: None,
        };
        assert_eq!(member.mute_left(4_000), Some(1_000));
        assert_eq!(member.mute_left(5_000), None);
        assert_eq!(member.mute_left(9_000), None);
    }

    #[test]
    fn invite_limits_are_checked() {
        assert!(CreateInvite::default().validate().is_ok());
        assert!(CreateInvite {
            expires_in_seconds: Some(0),
            max_uses: None
        }
        .validate()
        .is_err());
        assert!(CreateInvite {
            expires_in_seconds: None,
            max_uses: Some(0)
        }
        .validate()
        .is_err());
    }

    #[test]
    fn commands_read_from_tagged_json_and_name_their_permission() {
        let command: Command =
            serde_json::from_str(r#"{"action":"mute","user_id":"u","seconds":60}"#).unwrap();
        assert_eq!(command.action(), Action::Mute);
        assert_eq!(command.target(), Some("u"));
        assert!(serde_json::from_str::<Command>(r#"{"action":"kick"}"#).is_err());
    }
}
