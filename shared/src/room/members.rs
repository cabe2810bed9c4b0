//! Membership, roles, moderation, invites and the audit log.

use super::*;
use crate::moderation::{AuditEntry, Command, CreateInvite, Invite, MemberRecord};
use crate::permissions::outranks;

/// Membership, moderation, invites and the audit log.
impl<D: Sql> Room<D> {
    /// Decides whether `conn` may join, at connect time, and stamps its room role. The room's
    /// creator (`owner_id`) is its owner; anyone else joining a public room becomes a member;
    /// a private room admits only members (see [`Room::join`]) and global admins; a
    /// banned user is refused, and so is a new guest from a network under a guest's ban.
    /// Returns what to announce (a changed name). The decision is [`Room::may_admit`]'s.
    ///
    /// `network` is the Worker's keyed hash of a guest's network (`None` for a signed-in
    /// account): the room remembers a guest member's latest one, so that banning the guest
    /// also bans, for [`crate::limits::GUEST_NETWORK_BAN_SECONDS`], new guests from it.
    pub fn admit(
        &mut self,
        conn: &mut Conn,
        owner_id: &str,
        network: Option<&str>,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        let user_id = conn.author.id.clone();
        let mut effects = Vec::new();
        let record = match self.admission(conn, owner_id, network, now)? {
            // A rename the room missed is taken from the connection, but only from a name read
            // after the stored one: a connect that read the old name while the rename was on
            // its way must not undo it.
            Some(mut record)
                if record.name != conn.author.name
                    && newer(conn.name_as_of, record.name_as_of, false) =>
            {
                record.name.clone_from(&conn.author.name);
                record.name_as_of = conn.name_as_of;
                record.renamed_at = Some(now);
                self.store.put_member(&record)?;
                effects.push(Effect::BroadcastOthers(ServerMessage::ProfileUpdated {
                    member: conn.member(),
                }));
                record
            }
            Some(record) => record,
            None => self.enroll(conn, owner_id, now)?,
        };
        self.store.set_member_network(&user_id, network)?;
        conn.author.role = record.role;
        Ok(effects)
    }

    /// Whether [`Room::admit`] would admit `conn` now, with the refusal it would give, and
    /// nothing stored: no member record, no name, no network. A browser cannot read why an
    /// upgrade was refused (the socket just closes), so the app asks this afterwards, over
    /// HTTP, and it must answer exactly as the upgrade did.
    pub fn may_admit(
        &self,
        conn: &Conn,
        owner_id: &str,
        network: Option<&str>,
        now: Millis,
    ) -> Result<(), Failure> {
        self.admission(conn, owner_id, network, now).map(drop)
    }

    /// The admission rule, once, reading only: the member record `conn` would be admitted
    /// on, `None` for a newcomer who would be enrolled, or the refusal.
    fn admission(
        &self,
        conn: &Conn,
        owner_id: &str,
        network: Option<&str>,
        now: Millis,
    ) -> Result<Option<MemberRecord>, Failure> {
        match self.store.member(&conn.author.id)? {
            Some(record) if record.banned && !conn.admin => Err(banned()),
            Some(record) => Ok(Some(record)),
            None if self.info.private && !conn.admin && conn.author.id != owner_id => Err(refused(
                ErrorCode::Forbidden,
                "This room is private; you need an invite to join it.",
            )),
            None => {
                self.check_network(conn, owner_id, network, now)?;
                Ok(None)
            }
        }
    }

    /// Refuses a new guest (someone with no member record, arriving with a `network`) whose
    /// network is under a live network ban. Accounts never are (offices and universities share
    /// one address), nor the room's creator or a global admin (both are accounts anyway), and
    /// members keep their access: only newcomers are refused, which is what stops a banned
    /// guest minting a new id and walking back in.
    fn check_network(
        &self,
        conn: &Conn,
        owner_id: &str,
        network: Option<&str>,
        now: Millis,
    ) -> Result<(), Failure> {
        let Some(network) = network else {
            return Ok(());
        };
        if conn.admin || conn.author.id == owner_id {
            return Ok(());
        }
        if self.store.network_banned(network, now)? {
            return Err(refused(
                ErrorCode::NetworkBanned,
                "Guests from your network are banned from this room for now; sign in with an \
                 account to join.",
            ));
        }
        Ok(())
    }

    /// Stamps the role of a caller acting over HTTP (not through a socket) from the room's
    /// records, as [`Room::admit`] does for a socket: the creator acting before ever connecting
    /// becomes the owner now; someone with no record keeps no role beyond what a global admin
    /// has.
    pub fn act_as(&mut self, conn: &mut Conn, owner_id: &str, now: Millis) -> Result<(), Failure> {
        match self.store.member(&conn.author.id)? {
            // A ban takes every power in the room, whatever role the record still names.
            Some(record) if record.banned && !conn.admin => Err(banned()),
            Some(record) => {
                conn.author.role = record.role;
                Ok(())
            }
            None if conn.author.id == owner_id => self.admit(conn, owner_id, None, now).map(drop),
            None => Ok(()),
        }
    }

    /// Whether `user_id` may read the room's messages outside a connection (search, a
    /// message in context): not if they are banned from it.
    pub fn may_read(&self, user_id: &str) -> Result<(), Failure> {
        match self.store.member(user_id)? {
            Some(record) if record.banned => Err(banned()),
            _ => Ok(()),
        }
    }

    /// Makes `conn`'s user a member: the owner if they created the room.
    pub(super) fn enroll(
        &mut self,
        conn: &Conn,
        owner_id: &str,
        now: Millis,
    ) -> Result<MemberRecord, Failure> {
        let record = MemberRecord {
            user_id: conn.author.id.clone(),
            name: conn.author.name.clone(),
            role: if conn.author.id == owner_id {
                Role::Owner
            } else {
                Role::Member
            },
            banned: false,
            muted_until: None,
            joined_at: now,
            renamed_at: None,
            name_as_of: conn.name_as_of,
        };
        self.store.put_member(&record)?;
        Ok(record)
    }

    /// The actor's current role from storage (the source of truth), falling back to the
    /// connection's for someone with no record (a global admin visiting).
    pub(super) fn actor(&self, conn: &Conn) -> Result<Conn, Failure> {
        let mut actor = conn.clone();
        if let Some(record) = self.store.member(&conn.author.id)? {
            if record.banned && !conn.admin {
                return Err(banned());
            }
            actor.author.role = record.role;
        }
        Ok(actor)
    }

    pub(super) fn audit(
        &mut self,
        actor: &Conn,
        action: &str,
        target_id: Option<String>,
        detail: String,
        now: Millis,
    ) -> Result<(), Failure> {
        self.store
            .append_audit(&AuditEntry {
                id: 0,
                at: now,
                actor_id: actor.author.id.clone(),
                actor_name: actor.author.name.clone(),
                action: action.to_owned(),
                target_id,
                detail,
            })
            .map_err(Failure::from)
    }

    /// Carries out a privileged command for `conn` (over the socket or HTTP alike): checks
    /// the permission table, the ranks (moderating someone needs a strictly higher role, except
    /// for global admins), stores the change, logs it in the audit log, and says what to tell
    /// or close.
    pub fn command(
        &mut self,
        conn: &Conn,
        command: Command,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        command.validate().map_err(Failure::Refused)?;
        let actor = self.actor(conn)?;
        if !actor.may(command.action()) {
            return Err(forbidden());
        }
        let mut target = match command.target() {
            Some(user_id) => {
                if user_id == actor.author.id {
                    return Err(refused(
                        ErrorCode::InvalidInput,
                        "You cannot do that to yourself.",
                    ));
                }
                let record = self.store.member(user_id)?.ok_or_else(|| {
                    refused(
                        ErrorCode::NotFound,
                        "That user is not a member of this room.",
                    )
                })?;
                if !outranks(actor.author.role, actor.admin, record.role) {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "You can only moderate members below your own role.",
                    ));
                }
                Some(record)
            }
            None => None,
        };
        let name = command.name();
        let target_id = target.as_ref().map(|t| t.user_id.clone());
        let mut effects = Vec::new();
        let detail = match command {
            Command::Kick { user_id } => {
                effects.push(Effect::CloseUser(user_id, close::KICKED, ErrorCode::Kicked));
                String::new()
            }
            Command::Ban { user_id } => {
                if let Some(t) = target.as_mut() {
                    t.banned = true;
                }
                // A guest can mint another id at will: their ban also covers, for a while, new
                // guests from the network they last connected from. An account has none.
                let network = self.store.member_network(&user_id)?;
                if let Some(network) = &network {
                    let until = now + crate::limits::GUEST_NETWORK_BAN_SECONDS * 1000;
                    self.store.ban_network(network, &user_id, now, until)?;
                }
                effects.push(Effect::CloseUser(user_id, close::BANNED, ErrorCode::Banned));
                if network.is_some() {
                    format!(
                        "and new guests from their network for {} h",
                        crate::limits::GUEST_NETWORK_BAN_SECONDS / 3600
                    )
                } else {
                    String::new()
                }
            }
            Command::Unban { user_id } => {
                if let Some(t) = target.as_mut() {
                    t.banned = false;
                }
                self.store.lift_network_bans(&user_id)?;
                String::new()
            }
            Command::Mute { seconds, .. } => {
                if let Some(t) = target.as_mut() {
                    t.muted_until = Some(now + i64::from(seconds) * 1000);
                }
                format!("{seconds} s")
            }
            Command::Unmute { .. } => {
                if let Some(t) = target.as_mut() {
                    t.muted_until = None;
                }
                String::new()
            }
            Command::SetRole { user_id, role } => {
                if !actor.admin && role == Role::Owner && actor.author.role != Role::Owner {
                    return Err(forbidden());
                }
                if let Some(t) = target.as_mut() {
                    t.role = role;
                }
                effects.push(Effect::SetRole(user_id, role));
                format!("{role:?}").to_lowercase()
            }
            Command::UpdateRoom {
                name: room_name,
                topic,
                private,
                assistant,
            } => {
                let mut info = self.info.clone();
                if let Some(n) = room_name {
                    info.name = crate::limits::validate_room_name(&n).map_err(Failure::Refused)?;
                }
                if let Some(t) = topic {
                    info.topic = crate::limits::validate_topic(&t).map_err(Failure::Refused)?;
                }
                if let Some(p) = private {
                    info.private = p;
                }
                if let Some(mode) = assistant {
                    info.assistant = mode;
                }
                let detail = format!(
                    "name: {}, topic: {}, private: {}, assistant: {:?}",
                    info.name, info.topic, info.private, info.assistant
                );
                self.info = info.clone();
                effects.push(Effect::InfoChanged(info.clone()));
                effects.push(Effect::Broadcast(ServerMessage::RoomUpdated { room: info }));
                detail
            }
            Command::RevokeInvite { token } => {
                let mut invite = self
                    .store
                    .invite(&token)?
                    .ok_or_else(|| refused(ErrorCode::NotFound, "There is no such invite."))?;
                invite.revoked_at.get_or_insert(now);
                self.store.put_invite(&invite)?;
                short(&token)
            }
        };
        if let Some(t) = target {
            self.store.put_member(&t)?;
            if matches!(name, "mute" | "unmute" | "set_role") {
                effects.push(Effect::Broadcast(ServerMessage::MemberUpdated {
                    user_id: t.user_id.clone(),
                    role: t.role,
                    muted_until: t.muted_until,
                }));
            }
        }
        self.audit(&actor, name, target_id, detail, now)?;
        Ok(effects)
    }

    /// Creates an invite link (`token` is fresh randomness from the caller).
    pub fn create_invite(
        &mut self,
        conn: &Conn,
        request: &CreateInvite,
        token: String,
        now: Millis,
    ) -> Result<Invite, Failure> {
        request.validate().map_err(Failure::Refused)?;
        let actor = self.actor(conn)?;
        if !actor.may(Action::Invite) {
            return Err(forbidden());
        }
        let invite = Invite {
            token,
            created_by: actor.author.id.clone(),
            created_at: now,
            expires_at: request
                .expires_in_seconds
                .map(|s| now + i64::from(s) * 1000),
            max_uses: request.max_uses,
            uses: 0,
            revoked_at: None,
        };
        self.store.put_invite(&invite)?;
        let detail = short(&invite.token);
        self.audit(&actor, "create_invite", None, detail, now)?;
        Ok(invite)
    }

    /// The room's invites, for those who may invite.
    pub fn invites(&self, conn: &Conn) -> Result<Vec<Invite>, Failure> {
        if !self.actor(conn)?.may(Action::Invite) {
            return Err(forbidden());
        }
        self.store.invites().map_err(Failure::from)
    }

    /// Joins `conn`'s user to the room: with a valid invite (counted as used), or without one
    /// for a public room. A banned user stays out, and so does a new guest from a network
    /// under a guest's ban (see [`Room::admit`]); an existing member is left as they are.
    pub fn join(
        &mut self,
        conn: &Conn,
        owner_id: &str,
        token: Option<&str>,
        network: Option<&str>,
        now: Millis,
    ) -> Result<Role, Failure> {
        let user_id = &conn.author.id;
        if let Some(record) = self.store.member(user_id)? {
            if record.banned {
                return Err(banned());
            }
            self.store.set_member_network(user_id, network)?;
            return Ok(record.role);
        }
        // Before an invite is counted as used.
        self.check_network(conn, owner_id, network, now)?;
        if let Some(token) = token {
            let mut invite = self.store.invite(token)?.ok_or_else(|| {
                refused(ErrorCode::InviteInvalid, "This invite link is not valid.")
            })?;
            invite.check(now).map_err(Failure::Refused)?;
            invite.uses += 1;
            self.store.put_invite(&invite)?;
        } else if self.info.private && !conn.admin && user_id != owner_id {
            return Err(refused(
                ErrorCode::Forbidden,
                "This room is private; you need an invite to join it.",
            ));
        }
        let role = self.enroll(conn, owner_id, now)?.role;
        self.store.set_member_network(user_id, network)?;
        Ok(role)
    }

    /// The member list, for members (and admins).
    pub fn members(&self, conn: &Conn) -> Result<Vec<MemberRecord>, Failure> {
        let known = self
            .store
            .member(&conn.author.id)?
            .is_some_and(|m| !m.banned);
        if !known && !conn.admin {
            return Err(forbidden());
        }
        self.store.member_records().map_err(Failure::from)
    }

    /// A page of the audit log, newest first, for those who may view it.
    pub fn audit_log(&self, conn: &Conn, before: Option<u64>) -> Result<Vec<AuditEntry>, Failure> {
        if !self.actor(conn)?.may(Action::ViewAudit) {
            return Err(forbidden());
        }
        self.store
            .audit_before(before, crate::moderation::AUDIT_PAGE)
            .map_err(Failure::from)
    }

    /// A user changed their name or avatar (the Worker read the profile at `as_of`, its
    /// clock): remember the name and tell the room. `None` when the room already holds a newer
    /// name than this one (two changes that arrived out of order): nothing changes.
    pub fn profile_changed(
        &mut self,
        member: Member,
        as_of: Option<Millis>,
        now: Millis,
    ) -> Result<Option<Vec<Effect>>, Failure> {
        if let Some(mut record) = self.store.member(&member.user_id)? {
            if !newer(as_of, record.name_as_of, true) {
                return Ok(None);
            }
            record.name.clone_from(&member.name);
            record.name_as_of = as_of.or(record.name_as_of);
            record.renamed_at = Some(now);
            self.store.put_member(&record)?;
        }
        Ok(Some(vec![Effect::Broadcast(
            ServerMessage::ProfileUpdated { member },
        )]))
    }
}

/// Whether a name read at `read` may replace one stored as of `stored`. A name of known age
/// replaces one of unknown age; one of unknown age replaces only another of unknown age. A
/// pushed change (`ties`) also replaces a name of the same age, which a connect does not: it
/// may have read just before the change it ties with.
fn newer(read: Option<Millis>, stored: Option<Millis>, ties: bool) -> bool {
    match (read, stored) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(read), Some(stored)) => read > stored || (ties && read == stored),
    }
}

fn banned() -> Failure {
    refused(ErrorCode::Banned, "You are banned from this room.")
}

/// The first characters of a secret, enough to tell invites apart in a log.
fn short(token: &str) -> String {
    token.chars().take(6).collect()
}
