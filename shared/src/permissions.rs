//! The one permission table (role × action → allowed), used by the room's checks (socket and
//! HTTP alike) and by the app to hide controls a user may not use.
//!
//! To add an action: add a variant, give it a row in [`TABLE`] (the exhaustiveness test fails
//! until you do), and add it to the e2e permission matrix.

use serde::{Deserialize, Serialize};

use crate::protocol::Role;

/// Something a member may try to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Post a message.
    Post,
    /// Edit a message one wrote.
    EditOwn,
    /// Delete a message one wrote.
    DeleteOwn,
    /// Delete anyone's message.
    DeleteAny,
    /// Rate the assistant's answers.
    Rate,
    /// Stop or regenerate the assistant's answers to other people.
    ManageAnswers,
    /// Add or take back one's own emoji reactions.
    React,
    /// Pin and unpin messages for the whole room.
    Pin,
    /// Close someone's connections to the room (they may come back).
    Kick,
    /// Ban or unban someone (a banned user cannot join).
    Ban,
    /// Mute or unmute someone for a time (they can read but not post).
    Mute,
    /// Change the room's name, topic or privacy.
    EditRoom,
    /// Change someone's role in the room.
    AssignRole,
    /// Create, list and revoke invite links.
    Invite,
    /// Read the room's audit log.
    ViewAudit,
}

/// Columns of [`TABLE`]: the room roles, highest first.
pub const ROLES: [Role; 4] = [Role::Owner, Role::Moderator, Role::Member, Role::ReadOnly];

/// The table: for each action, whether [owner, moderator, member, read-only] may do it.
pub const TABLE: &[(Action, [bool; 4])] = &[
    //                        owner  mod    member read-only
    (Action::Post, /*      */ [true, true, true, false]),
    (Action::EditOwn, /*   */ [true, true, true, false]),
    (Action::DeleteOwn, /* */ [true, true, true, false]),
    (Action::DeleteAny, /* */ [true, true, false, false]),
    (Action::Kick, /*      */ [true, true, false, false]),
    (Action::Ban, /*       */ [true, true, false, false]),
    (Action::Mute, /*      */ [true, true, false, false]),
    (Action::EditRoom, /*  */ [true, false, false, false]),
    (Action::AssignRole, /**/ [true, false, false, false]),
    (Action::Invite, /*    */ [true, true, false, false]),
    (Action::ViewAudit, /* */ [true, true, false, false]),
    (Action::Rate, /*      */ [true, true, true, false]),
    (Action::ManageAnswers, [true, true, false, false]),
    (Action::React, /*     */ [true, true, true, false]),
    (Action::Pin, /*       */ [true, true, false, false]),
];

/// Every action, in table order.
pub fn actions() -> impl Iterator<Item = Action> {
    TABLE.iter().map(|(action, _)| *action)
}

/// Whether `role` may perform `action`.
pub fn allows(role: Role, action: Action) -> bool {
    let Some(column) = ROLES.iter().position(|r| *r == role) else {
        // Unknown roles come from a newer server; grant nothing rather than guess.
        return false;
    };
    TABLE
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, row)| row[column])
}

/// Whether someone with this room role, and global admin or not, may perform `action`. Global
/// admins may do everything in every room.
pub fn may(role: Role, admin: bool, action: Action) -> bool {
    admin || allows(role, action)
}

/// A role's rank: who may act on whom. Moderation (kick, ban, mute, role changes) needs a
/// strictly higher rank than the target's, so moderators cannot remove each other or the owner.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 3,
        Role::Moderator => 2,
        Role::Member => 1,
        Role::ReadOnly | Role::Unknown => 0,
    }
}

/// Whether an actor (role, global admin) may moderate a target with `target` role.
pub fn outranks(actor: Role, admin: bool, target: Role) -> bool {
    admin || rank(actor) > rank(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_row() {
        let mut seen = Vec::new();
        for action in actions() {
            assert!(!seen.contains(&action), "{action:?} has two rows");
            seen.push(action);
        }
        // The match has no wildcard, so a new variant fails to compile here until listed.
        for action in &seen {
            match action {
                Action::Post
                | Action::EditOwn
                | Action::DeleteOwn
                | Action::DeleteAny
                | Action::Kick
                | Action::Ban
                | Action::Mute
                | Action::EditRoom
                | Action::AssignRole
                | Action::Invite
                | Action::ViewAudit
                | Action::Rate
                | Action::ManageAnswers
                | Action::React
                | Action::Pin => {}
            }
        }
        assert_eq!(seen.len(), 15);
    }

    #[test]
    fn members_manage_only_their_own_messages() {
        assert!(allows(Role::Member, Action::Post));
        assert!(allows(Role::Member, Action::EditOwn));
        assert!(allows(Role::Member, Action::DeleteOwn));
        assert!(!allows(Role::Member, Action::DeleteAny));
        assert!(!allows(Role::Member, Action::Kick));
        assert!(!allows(Role::Member, Action::Invite));
    }

    #[test]
    fn read_only_and_unknown_roles_may_do_nothing() {
        for action in actions() {
            assert!(!allows(Role::ReadOnly, action), "{action:?}");
            assert!(!allows(Role::Unknown, action), "{action:?}");
        }
    }

    #[test]
    fn members_react_but_only_owners_and_moderators_pin() {
        assert!(allows(Role::Member, Action::React));
        assert!(!allows(Role::Member, Action::Pin));
        assert!(allows(Role::Owner, Action::Pin));
        assert!(allows(Role::Moderator, Action::Pin));
        assert!(!allows(Role::ReadOnly, Action::React));
    }

    #[test]
    fn owners_and_moderators_may_delete_anyones_message() {
        assert!(allows(Role::Owner, Action::DeleteAny));
        assert!(allows(Role::Moderator, Action::DeleteAny));
    }

    #[test]
    fn moderators_moderate_but_do_not_edit_the_room_or_assign_roles() {
        for action in [
            Action::DeleteAny,
            Action::Kick,
            Action::Ban,
            Action::Mute,
            Action::Invite,
            Action::ViewAudit,
        ] {
            assert!(allows(Role::Moderator, action), "{action:?}");
        }
        assert!(!allows(Role::Moderator, Action::EditRoom));
        assert!(!allows(Role::Moderator, Action::AssignRole));
    }

    #[test]
    fn owners_may_do_everything_in_their_room() {
        for action in actions() {
            assert!(allows(Role::Owner, action), "{action:?}");
        }
    }

    #[test]
    fn global_admins_may_do_everything_whatever_their_room_role() {
        for action in actions() {
            assert!(may(Role::ReadOnly, true, action), "{action:?}");
        }
        assert!(!may(Role::ReadOnly, false, Action::Post));
    }

    #[test]
    fn moderation_needs_a_strictly_higher_rank_unless_admin() {
        assert!(outranks(Role::Moderator, false, Role::Member));
        assert!(!outranks(Role::Moderator, false, Role::Moderator));
        assert!(!outranks(Role::Moderator, false, Role::Owner));
        assert!(outranks(Role::Owner, false, Role::Moderator));
        assert!(outranks(Role::Member, true, Role::Owner));
    }
}
