//! The one permission table (role × action → allowed), used by the room's checks and by the
//! app to hide controls a user may not use.

use crate::protocol::Role;

/// Something a member may try to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

/// Every action, for exhaustive tests and UIs.
pub const ACTIONS: [Action; 8] = [
    Action::Post,
    Action::EditOwn,
    Action::DeleteOwn,
    Action::DeleteAny,
    Action::Rate,
    Action::ManageAnswers,
    Action::React,
    Action::Pin,
];

/// Whether `role` may perform `action`.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Owner | Role::Moderator => true,
        Role::Member => matches!(action, Post | EditOwn | DeleteOwn | Rate | React),
        // Unknown roles come from a newer server; grant nothing rather than guess.
        Role::ReadOnly | Role::Unknown => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_manage_only_their_own_messages() {
        assert!(allows(Role::Member, Action::Post));
        assert!(allows(Role::Member, Action::EditOwn));
        assert!(allows(Role::Member, Action::DeleteOwn));
        assert!(!allows(Role::Member, Action::DeleteAny));
    }

    #[test]
    fn read_only_and_unknown_roles_may_do_nothing() {
        for action in ACTIONS {
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
}
