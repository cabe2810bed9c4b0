//! Membership, roles, moderation, invites, renames and the audit log.

use super::*;

#[test]
fn the_creator_is_owner_and_others_join_a_public_room_as_members() {
    let (f, ..) = moderated();
    let roles: Vec<(String, Role)> = f
        .room
        .store()
        .member_records()
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("owner".into(), Role::Owner),
            ("ann".into(), Role::Member),
            ("mod".into(), Role::Moderator)
        ]
    );
}

#[test]
fn a_kick_closes_every_connection_of_the_target_and_is_audited() {
    let (mut f, _, _, moderator) = moderated();
    let effects = f
        .command(
            &moderator,
            Command::Kick {
                user_id: "ann".into(),
            },
        )
        .unwrap();
    assert!(effects.contains(&Effect::CloseUser(
        "ann".into(),
        close::KICKED,
        ErrorCode::Kicked
    )));
    let log = f.room.store().audit_before(None, 10).unwrap();
    assert_eq!(log[0].action, "kick");
    assert_eq!(log[0].actor_id, "mod");
    assert_eq!(log[0].target_id.as_deref(), Some("ann"));
}

#[test]
fn a_moderator_cannot_kick_the_owner_or_another_moderator() {
    let (mut f, owner, ann, moderator) = moderated();
    let kick_owner = Command::Kick {
        user_id: "owner".into(),
    };
    assert_eq!(
        f.command(&moderator, kick_owner.clone()),
        Err(ErrorCode::Forbidden)
    );
    // A member may not kick at all.
    assert_eq!(f.command(&ann, kick_owner), Err(ErrorCode::Forbidden));
    // The owner may kick the moderator.
    assert!(f
        .command(
            &owner,
            Command::Kick {
                user_id: "mod".into()
            }
        )
        .is_ok());
}

#[test]
fn a_global_admin_may_moderate_anyone_whatever_their_room_role() {
    let (mut f, ..) = moderated();
    let mut admin = conn("root", Role::Member);
    admin.admin = true;
    f.room.admit(&mut admin, "owner", None, 0).unwrap();
    assert!(f
        .command(
            &admin,
            Command::Ban {
                user_id: "owner".into()
            }
        )
        .is_ok());
}

#[test]
fn a_muted_member_gets_muted_with_the_time_left_until_the_mute_ends() {
    let (mut f, _, ann, moderator) = moderated();
    // Ann posted before: the room read her standing then, and the mute must still reach her.
    assert!(!ack_of(&f.send(&ann, "m0", "before the mute")).1);
    f.command(
        &moderator,
        Command::Mute {
            user_id: "ann".into(),
            seconds: 60,
        },
    )
    .unwrap();
    let effects = f.send(&ann, "m1", "can I talk?");
    let Some(Effect::Reply(ServerMessage::Error {
        code,
        retry_after_ms,
        ..
    })) = effects.first()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(*code, ErrorCode::Muted);
    let left = retry_after_ms.unwrap();
    assert!(left > 59_000 && left <= 60_000, "{left}");
    f.now += 60_000;
    assert!(!ack_of(&f.send(&ann, "m2", "now?")).1);
    // And an unmute reaches her at once.
    f.command(
        &moderator,
        Command::Mute {
            user_id: "ann".into(),
            seconds: 60,
        },
    )
    .unwrap();
    assert!(matches!(
        f.send(&ann, "m3", "muted again").first(),
        Some(Effect::Reply(ServerMessage::Error {
            code: ErrorCode::Muted,
            ..
        }))
    ));
    f.command(
        &moderator,
        Command::Unmute {
            user_id: "ann".into(),
        },
    )
    .unwrap();
    assert!(!ack_of(&f.send(&ann, "m4", "unmuted")).1);
}

#[test]
fn a_banned_user_is_refused_at_connect_and_at_join() {
    let (mut f, owner, ann, _) = moderated();
    f.command(
        &owner,
        Command::Ban {
            user_id: "ann".into(),
        },
    )
    .unwrap();
    let mut again = ann.clone();
    let err = f.room.admit(&mut again, "owner", None, 5).unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    let err = f.room.join(&ann, "owner", None, None, 5).unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::Banned);
}

#[test]
fn a_banned_user_may_not_read_the_room_outside_a_connection_and_others_may() {
    let (mut f, owner, _, _) = moderated();
    assert!(f.room.may_read("ann").is_ok());
    assert!(f.room.may_read("never-joined").is_ok());
    f.command(
        &owner,
        Command::Ban {
            user_id: "ann".into(),
        },
    )
    .unwrap();
    let err = f.room.may_read("ann").unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::Banned);
}

#[test]
fn read_only_members_cannot_post_and_role_changes_are_broadcast() {
    let (mut f, owner, mut ann, _) = moderated();
    let effects = f
        .command(
            &owner,
            Command::SetRole {
                user_id: "ann".into(),
                role: Role::ReadOnly,
            },
        )
        .unwrap();
    assert!(effects.contains(&Effect::SetRole("ann".into(), Role::ReadOnly)));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Broadcast(ServerMessage::MemberUpdated {
            role: Role::ReadOnly,
            ..
        })
    )));
    ann.author.role = Role::ReadOnly;
    assert_eq!(error_of(&f.send(&ann, "x", "hi")), ErrorCode::Forbidden);
}

#[test]
fn the_owner_can_switch_when_the_assistant_answers() {
    let (mut f, owner, ..) = moderated();
    assert_eq!(
        f.room.info().assistant,
        crate::protocol::AssistantMode::Mention
    );
    f.command(
        &owner,
        Command::UpdateRoom {
            name: None,
            topic: None,
            private: None,
            assistant: Some(crate::protocol::AssistantMode::All),
        },
    )
    .unwrap();
    assert_eq!(f.room.info().assistant, crate::protocol::AssistantMode::All);
}

#[test]
fn a_private_room_admits_only_members_and_invitees() {
    let (mut f, owner, ..) = moderated();
    f.command(
        &owner,
        Command::UpdateRoom {
            name: None,
            topic: None,
            private: Some(true),
            assistant: None,
        },
    )
    .unwrap();
    let mut eve = conn("eve", Role::Member);
    let err = f.room.admit(&mut eve, "owner", None, 10).unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::Forbidden);
    let invite = f
        .room
        .create_invite(
            &owner,
            &CreateInvite {
                expires_in_seconds: Some(60),
                max_uses: Some(1),
            },
            "tok".into(),
            10,
        )
        .unwrap();
    assert_eq!(invite.expires_at, Some(60_010));
    assert_eq!(
        f.room.join(&eve, "owner", Some("tok"), None, 20).unwrap(),
        Role::Member
    );
    assert!(f.room.admit(&mut eve, "owner", None, 30).is_ok());
    // Used up now.
    let mallory = conn("mallory", Role::Member);
    let err = f
        .room
        .join(&mallory, "owner", Some("tok"), None, 20)
        .unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
}

#[test]
fn a_revoked_invite_admits_no_one() {
    let (mut f, owner, ..) = moderated();
    f.room
        .create_invite(&owner, &CreateInvite::default(), "tok".into(), 10)
        .unwrap();
    f.command(
        &owner,
        Command::RevokeInvite {
            token: "tok".into(),
        },
    )
    .unwrap();
    let eve = conn("eve", Role::Member);
    let err = f
        .room
        .join(&eve, "owner", Some("tok"), None, 20)
        .unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
}

#[test]
fn a_rename_reaches_the_room_and_pages_show_the_current_name_on_old_messages() {
    let (mut f, _, ann, _) = moderated();
    f.send(&ann, "a", "hello");
    let effects = f
        .room
        .profile_changed(
            Member {
                user_id: "ann".into(),
                name: "Annie".into(),
                avatar: None,
            },
            None,
            f.now + 1,
        )
        .unwrap()
        .expect("applied");
    assert!(matches!(
        &effects[0],
        Effect::Broadcast(ServerMessage::ProfileUpdated { member }) if member.name == "Annie"
    ));
    let (page, _) = f.room.store().messages_before(None, 10).unwrap();
    assert_eq!(page[0].author.name, "Annie");
}

/// `ann` renamed, as the Worker announces a saved profile it read at `as_of`.
fn renamed(f: &mut Fixture, name: &str, as_of: Option<Millis>) -> Option<Vec<Effect>> {
    f.now += 1;
    let member = Member {
        user_id: "ann".into(),
        name: name.into(),
        avatar: None,
    };
    f.room.profile_changed(member, as_of, f.now).unwrap()
}

/// `ann` connecting with the name the Worker read at `as_of`; the names the room broadcast.
fn reconnects(f: &mut Fixture, name: &str, as_of: Option<Millis>) -> Vec<String> {
    let mut ann = conn("ann", Role::Member);
    ann.author.name = name.into();
    ann.name_as_of = as_of;
    f.now += 1;
    f.room
        .admit(&mut ann, "owner", None, f.now)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Effect::BroadcastOthers(ServerMessage::ProfileUpdated { member }) => Some(member.name),
            _ => None,
        })
        .collect()
}

fn stored_name(f: &Fixture) -> String {
    f.room
        .store()
        .member("ann")
        .unwrap()
        .expect("a member")
        .name
}

#[test]
fn a_connect_that_read_the_old_name_before_a_rename_arrived_does_not_undo_the_rename() {
    let (mut f, _, ann, _) = moderated();
    f.send(&ann, "a", "hello");
    assert!(renamed(&mut f, "Annie", Some(1_000)).is_some());
    // A socket (another tab, the room list's watch) whose upgrade read her profile just
    // before she saved it reaches the room just after the rename did.
    assert_eq!(reconnects(&mut f, "ANN", Some(999)), Vec::<String>::new());
    assert_eq!(stored_name(&f), "Annie");
    let (page, _) = f.room.store().messages_before(None, 10).unwrap();
    assert_eq!(page[0].author.name, "Annie");
    // Nor does one of the same moment: it may have read just before the write.
    assert_eq!(reconnects(&mut f, "ANN", Some(1_000)), Vec::<String>::new());
    assert_eq!(stored_name(&f), "Annie");
}

#[test]
fn a_connect_that_read_a_newer_name_than_the_room_holds_brings_the_rename_it_missed() {
    let (mut f, _, _, _) = moderated();
    assert!(renamed(&mut f, "Annie", Some(1_000)).is_some());
    // The announcement of a later rename never reached this room.
    assert_eq!(
        reconnects(&mut f, "Anne-Marie", Some(2_000)),
        ["Anne-Marie"]
    );
    assert_eq!(stored_name(&f), "Anne-Marie");
    // The same name again is no rename.
    assert_eq!(
        reconnects(&mut f, "Anne-Marie", Some(3_000)),
        Vec::<String>::new()
    );
}

#[test]
fn a_name_of_unknown_age_replaces_only_a_name_of_unknown_age() {
    let (mut f, _, _, _) = moderated();
    // Stored before names had an age: a guest's cookie name is taken, as before.
    assert_eq!(reconnects(&mut f, "Annie", None), ["Annie"]);
    assert_eq!(stored_name(&f), "Annie");
    // Once a rename of known age arrived, a cookie name (which may predate it) is not taken.
    assert!(renamed(&mut f, "Anne", Some(1_000)).is_some());
    assert_eq!(reconnects(&mut f, "Annie", None), Vec::<String>::new());
    assert_eq!(stored_name(&f), "Anne");
}

#[test]
fn a_profile_change_older_than_the_stored_name_changes_nothing_and_tells_no_one() {
    let (mut f, _, _, _) = moderated();
    assert!(renamed(&mut f, "Anne", Some(2_000)).is_some());
    assert_eq!(renamed(&mut f, "Annie", Some(1_000)), None);
    assert_eq!(stored_name(&f), "Anne");
    // A change of the same moment is the same change arriving again.
    assert!(renamed(&mut f, "Anne", Some(2_000)).is_some());
}

#[test]
fn a_client_catching_up_by_replay_learns_names_changed_since_what_it_holds_and_no_others() {
    let (mut f, _, ann, moderator) = moderated();
    f.send(&ann, "a", "hello");
    // A rename before the cursor's event is already in what the client holds.
    f.now += 10;
    f.room
        .profile_changed(
            Member {
                user_id: "mod".into(),
                name: "Moderator".into(),
                avatar: None,
            },
            None,
            f.now,
        )
        .unwrap();
    f.send(&moderator, "b", "second");
    f.now += 10;
    f.room
        .profile_changed(
            Member {
                user_id: "ann".into(),
                name: "Annie".into(),
                avatar: None,
            },
            None,
            f.now,
        )
        .unwrap();
    let mut returning = ann.clone();
    returning.joined = false;
    let effects = f.frame(
        &returning,
        serde_json::json!({"type":"hello","protocol":1,"after":2}),
    );
    let renamed: Vec<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(ServerMessage::ProfileUpdated { member }) => Some(member.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(renamed, ["Annie"]);
    // Without a cursor the page itself carries current names: no extra frames.
    let effects = f.frame(&returning, serde_json::json!({"type":"hello","protocol":1}));
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::Reply(ServerMessage::ProfileUpdated { .. }))));
}

#[test]
fn only_those_allowed_read_the_audit_log() {
    let (f, owner, ann, moderator) = moderated();
    assert!(f.room.audit_log(&owner, None).is_ok());
    assert!(f.room.audit_log(&moderator, None).is_ok());
    assert_eq!(
        f.room
            .audit_log(&ann, None)
            .unwrap_err()
            .into_error()
            .0
            .code,
        ErrorCode::Forbidden
    );
}

#[test]
fn a_moderator_deleting_someone_elses_message_is_audited() {
    let (mut f, _, ann, moderator) = moderated();
    let seq = ack_of(&f.send(&ann, "a", "spam")).0;
    f.frame(
        &moderator,
        serde_json::json!({"type":"delete","client_id":"d","target":seq}),
    );
    let log = f.room.store().audit_before(None, 10).unwrap();
    assert_eq!(log[0].action, "delete_message");
    assert_eq!(log[0].target_id.as_deref(), Some("ann"));
}

#[test]
fn a_moderate_frame_is_answered_with_applied() {
    let (mut f, _, _, moderator) = moderated();
    let effects = f.frame(
        &moderator,
        serde_json::json!({"type":"moderate","client_id":"m1","command":{"action":"mute","user_id":"ann","seconds":5}}),
    );
    assert_eq!(
        effects[0],
        Effect::Reply(ServerMessage::Applied {
            client_id: "m1".into()
        })
    );
    let effects = f.frame(
        &moderator,
        serde_json::json!({"type":"moderate","client_id":"m2","command":{"action":"mute","user_id":"ann","seconds":0}}),
    );
    assert_eq!(error_of(&effects), ErrorCode::InvalidInput);
}

#[test]
fn a_banned_moderator_keeps_no_power_on_any_path() {
    let (mut f, owner, ann, moderator) = moderated();
    f.command(
        &owner,
        Command::Ban {
            user_id: "mod".into(),
        },
    )
    .unwrap();
    // Over HTTP: the caller's standing is read from the room's records.
    let mut caller = conn("mod", Role::Member);
    let err = f.room.act_as(&mut caller, "owner", 9).unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    // A connection still holding the moderator role (opened before the ban) cannot use it.
    let kick = Command::Kick {
        user_id: ann.author.id.clone(),
    };
    assert_eq!(f.command(&moderator, kick), Err(ErrorCode::Banned));
    let invite = f
        .room
        .create_invite(&moderator, &CreateInvite::default(), "t".into(), 9)
        .unwrap_err();
    assert_eq!(invite.into_error().0.code, ErrorCode::Banned);
    assert_eq!(
        f.room
            .audit_log(&moderator, None)
            .unwrap_err()
            .into_error()
            .0
            .code,
        ErrorCode::Banned
    );
}

#[test]
fn a_moderator_deletes_only_messages_of_members_below_them_and_the_owner_anyones() {
    let (mut f, owner, ann, moderator) = moderated();
    let by_owner = ack_of(&f.send(&owner, "o", "owner's")).0;
    let by_ann = ack_of(&f.send(&ann, "a", "ann's")).0;
    let by_mod = ack_of(&f.send(&moderator, "m", "moderator's")).0;
    let delete =
        |id: &str, target: Seq| serde_json::json!({"type":"delete","client_id":id,"target":target});
    let refused = f.frame(&moderator, delete("d1", by_owner));
    assert_eq!(error_of(&refused), ErrorCode::Forbidden);
    let done = f.frame(&moderator, delete("d2", by_ann));
    assert!(!ack_of(&done).1);
    let done = f.frame(&owner, delete("d3", by_mod));
    assert!(!ack_of(&done).1);
}
