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

// -----------------------------------------------------------------------------------------
// A guest's ban also covers their network for a while (security issue, item 3)

/// Admits `id` at the fixture's time: a guest connecting from `network`, or a signed-in
/// account with `None` (the Worker sends accounts no network).
fn admit_from(f: &mut Fixture, id: &str, network: Option<&str>) -> Result<Conn, ErrorCode> {
    let mut c = conn(id, Role::Member);
    f.room
        .admit(&mut c, "owner", network, f.now)
        .map(|_| c)
        .map_err(|e| e.into_error().0.code)
}

fn ban(f: &mut Fixture, by: &Conn, user_id: &str) {
    f.command(
        by,
        Command::Ban {
            user_id: user_id.into(),
        },
    )
    .unwrap();
}

fn unban(f: &mut Fixture, by: &Conn, user_id: &str) {
    f.command(
        by,
        Command::Unban {
            user_id: user_id.into(),
        },
    )
    .unwrap();
}

#[test]
fn banning_a_guest_refuses_new_guests_from_their_network_with_network_banned() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    // The same person minting a fresh guest id walks into the network ban.
    let mut fresh = conn("gus-again", Role::Member);
    let refusal = f
        .room
        .admit(&mut fresh, "owner", Some("net-a"), f.now + 1)
        .unwrap_err()
        .into_error()
        .0;
    assert_eq!(refusal.code, ErrorCode::NetworkBanned);
    assert!(refusal.message.contains("sign in"), "{}", refusal.message);
    // Joining over HTTP is no way around it, and no member record is left behind.
    let err = f
        .room
        .join(&fresh, "owner", None, Some("net-a"), f.now + 1)
        .unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::NetworkBanned);
    assert!(f.room.store().member("gus-again").unwrap().is_none());
    // The audit log says the ban reached further than the guest.
    let log = f.room.store().audit_before(None, 1).unwrap();
    assert_eq!(log[0].action, "ban");
    assert!(log[0].detail.contains("network"), "{:?}", log[0]);
}

#[test]
fn an_invite_does_not_let_a_new_guest_from_a_banned_network_in_nor_is_it_used_up() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    f.room
        .create_invite(
            &owner,
            &CreateInvite {
                expires_in_seconds: None,
                max_uses: Some(1),
            },
            "tok".into(),
            f.now,
        )
        .unwrap();
    let fresh = conn("gus-again", Role::Member);
    let err = f
        .room
        .join(&fresh, "owner", Some("tok"), Some("net-a"), f.now + 1)
        .unwrap_err();
    assert_eq!(err.into_error().0.code, ErrorCode::NetworkBanned);
    assert_eq!(f.room.store().invite("tok").unwrap().unwrap().uses, 0);
}

#[test]
fn a_signed_in_account_from_a_banned_guests_network_is_admitted() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    // Shared networks (offices, universities): accounts are never kept out by a network ban.
    let account = admit_from(&mut f, "colleague", None).unwrap();
    assert_eq!(account.author.role, Role::Member);
    assert!(f.room.join(&account, "owner", None, None, f.now).is_ok());
}

#[test]
fn a_guest_from_another_network_is_admitted_after_a_guest_ban() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    assert!(admit_from(&mut f, "stranger", Some("net-b")).is_ok());
    let other = conn("other", Role::Member);
    assert!(f
        .room
        .join(&other, "owner", None, Some("net-b"), f.now)
        .is_ok());
}

#[test]
fn guests_who_were_members_before_the_ban_keep_their_access_from_the_same_network() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "flatmate", Some("net-a")).unwrap();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    assert!(admit_from(&mut f, "flatmate", Some("net-a")).is_ok());
    // The banned guest themself stays out as a banned member.
    assert_eq!(
        admit_from(&mut f, "gus", Some("net-a")).unwrap_err(),
        ErrorCode::Banned
    );
}

#[test]
fn the_network_ban_ends_when_its_time_is_up() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    ban(&mut f, &owner, "gus");
    let banned_at = f.now;
    let ends = banned_at + crate::limits::GUEST_NETWORK_BAN_SECONDS * 1000;
    f.now = ends - 1;
    assert_eq!(
        admit_from(&mut f, "late", Some("net-a")).unwrap_err(),
        ErrorCode::NetworkBanned
    );
    f.now = ends;
    assert!(admit_from(&mut f, "late", Some("net-a")).is_ok());
    // The guest's own ban has no end.
    assert_eq!(
        admit_from(&mut f, "gus", Some("net-a")).unwrap_err(),
        ErrorCode::Banned
    );
}

#[test]
fn unbanning_a_guest_lifts_the_network_ban_their_ban_made_and_no_other() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    admit_from(&mut f, "gil", Some("net-a")).unwrap();
    admit_from(&mut f, "ned", Some("net-b")).unwrap();
    ban(&mut f, &owner, "gus");
    ban(&mut f, &owner, "gil");
    ban(&mut f, &owner, "ned");
    unban(&mut f, &owner, "ned");
    assert!(admit_from(&mut f, "new-b", Some("net-b")).is_ok());
    // Two guests of one network were banned: lifting one ban leaves the other's in force.
    unban(&mut f, &owner, "gus");
    assert_eq!(
        admit_from(&mut f, "new-a", Some("net-a")).unwrap_err(),
        ErrorCode::NetworkBanned
    );
    unban(&mut f, &owner, "gil");
    assert!(admit_from(&mut f, "new-a", Some("net-a")).is_ok());
}

#[test]
fn banning_a_signed_in_account_bans_no_network_even_one_it_used_as_a_guest() {
    let (mut f, owner, ..) = moderated();
    // A guest from net-a who has since signed in (the account keeps the guest's id).
    admit_from(&mut f, "ada", Some("net-a")).unwrap();
    admit_from(&mut f, "ada", None).unwrap();
    admit_from(&mut f, "bob", None).unwrap();
    ban(&mut f, &owner, "ada");
    ban(&mut f, &owner, "bob");
    assert!(admit_from(&mut f, "guest", Some("net-a")).is_ok());
    let log = f.room.store().audit_before(None, 1).unwrap();
    assert_eq!(
        (log[0].action.as_str(), log[0].detail.as_str()),
        ("ban", "")
    );
}

#[test]
fn the_network_banned_is_the_one_of_the_guests_latest_connection() {
    let (mut f, owner, ..) = moderated();
    admit_from(&mut f, "gus", Some("net-home")).unwrap();
    admit_from(&mut f, "gus", Some("net-cafe")).unwrap();
    ban(&mut f, &owner, "gus");
    assert_eq!(
        admit_from(&mut f, "fresh", Some("net-cafe")).unwrap_err(),
        ErrorCode::NetworkBanned
    );
    assert!(admit_from(&mut f, "fresh", Some("net-home")).is_ok());
}

// -----------------------------------------------------------------------------------------
// Asking whether a connect would be admitted (a browser cannot read a refused upgrade, so the
// app asks after its socket closed without opening)

/// What asking says about `c` connecting from `network` now, without admitting.
fn asked(f: &Fixture, c: &Conn, network: Option<&str>) -> Result<(), ErrorCode> {
    f.room
        .may_admit(c, "owner", network, f.now)
        .map_err(|e| e.into_error().0.code)
}

/// What admitting `c` from `network` now answers (and does).
fn admitted(f: &mut Fixture, c: &Conn, network: Option<&str>) -> Result<(), ErrorCode> {
    let mut c = c.clone();
    f.room
        .admit(&mut c, "owner", network, f.now)
        .map(drop)
        .map_err(|e| e.into_error().0.code)
}

/// For each case, asking answers `expected`, and then admitting answers the same.
fn asking_agrees_with_admitting<'a>(
    f: &mut Fixture,
    cases: impl IntoIterator<Item = (Conn, Option<&'a str>, Result<(), ErrorCode>)>,
) {
    for (c, network, expected) in cases {
        let id = c.author.id.clone();
        assert_eq!(asked(f, &c, network), expected, "asked for {id}");
        assert_eq!(admitted(f, &c, network), expected, "admitted {id}");
    }
}

#[test]
fn asking_answers_what_admitting_would_for_members_bans_banned_networks_and_newcomers() {
    let (mut f, owner, ann, _) = moderated();
    admit_from(&mut f, "gus", Some("net-a")).unwrap();
    admit_from(&mut f, "troll", None).unwrap();
    ban(&mut f, &owner, "gus");
    ban(&mut f, &owner, "troll");
    let mut root = conn("root", Role::Member);
    root.admin = true;
    let cases = [
        (ann, None, Ok(())),
        (owner.clone(), None, Ok(())),
        (conn("troll", Role::Member), None, Err(ErrorCode::Banned)),
        (
            conn("gus", Role::Member),
            Some("net-a"),
            Err(ErrorCode::Banned),
        ),
        (
            conn("gus-again", Role::Member),
            Some("net-a"),
            Err(ErrorCode::NetworkBanned),
        ),
        (conn("elsewhere", Role::Member), Some("net-b"), Ok(())),
        (conn("account", Role::Member), None, Ok(())),
        (root, Some("net-a"), Ok(())),
    ];
    asking_agrees_with_admitting(&mut f, cases);
}

#[test]
fn asking_answers_what_admitting_would_in_a_private_room() {
    let mut f = Fixture::new();
    f.room.set_info(RoomInfo {
        private: true,
        ..info()
    });
    let mut root = conn("root", Role::Member);
    root.admin = true;
    let cases = [
        // The creator who never connected is its owner; a global admin may enter any room.
        (conn("owner", Role::Member), Ok(())),
        (root, Ok(())),
        (conn("eve", Role::Member), Err(ErrorCode::Forbidden)),
    ];
    asking_agrees_with_admitting(&mut f, cases.map(|(c, expected)| (c, None, expected)));
}

#[test]
fn asking_makes_no_one_a_member_and_changes_no_name_or_network() {
    let mut f = Fixture::new();
    f.room.set_info(RoomInfo {
        private: true,
        ..info()
    });
    // The private room's creator, before ever connecting, and an outsider.
    assert_eq!(
        asked(&f, &conn("owner", Role::Member), Some("net-o")),
        Ok(())
    );
    assert_eq!(
        asked(&f, &conn("eve", Role::Member), Some("net-e")),
        Err(ErrorCode::Forbidden)
    );
    assert!(f.room.store().member_records().unwrap().is_empty());
    assert_eq!(f.room.store().member_network("owner").unwrap(), None);

    // A member asking under a new name, from a new network: their record stays as it was.
    let mut f = Fixture::new();
    admit_from(&mut f, "gus", Some("net-home")).unwrap();
    let before = f.room.store().member("gus").unwrap();
    let mut renamed = conn("gus", Role::Member);
    renamed.author.name = "Gus the Second".into();
    f.now += 1_000;
    assert_eq!(asked(&f, &renamed, Some("net-cafe")), Ok(()));
    assert_eq!(f.room.store().member("gus").unwrap(), before);
    assert_eq!(
        f.room.store().member_network("gus").unwrap().as_deref(),
        Some("net-home")
    );
    // A newcomer to the public room who asks is still no member.
    assert_eq!(asked(&f, &conn("ned", Role::Member), Some("net-x")), Ok(()));
    assert_eq!(f.room.store().member("ned").unwrap(), None);
}

/// SQLite that counts the statements that write (every `execute`).
struct CountingWrites {
    db: Sqlite,
    writes: std::cell::Cell<usize>,
}

impl Sql for CountingWrites {
    fn execute(&self, sql: &str, params: &[store::SqlValue]) -> Result<(), StoreError> {
        self.writes.set(self.writes.get() + 1);
        self.db.execute(sql, params)
    }
    fn query(&self, sql: &str, params: &[store::SqlValue]) -> Result<Vec<store::Row>, StoreError> {
        self.db.query(sql, params)
    }
}

/// Writes the room made while `conn` connected (admitted, from `network`) and said hello.
fn writes_to_join(
    room: &mut Room<CountingWrites>,
    conn: &Conn,
    network: Option<&str>,
    now: Millis,
) -> usize {
    let before = room.store().db().writes.get();
    let mut conn = conn.clone();
    conn.joined = false;
    room.admit(&mut conn, "owner", network, now).unwrap();
    let mut limiter = ConnLimiter::new(RateLimits::default(), now);
    let hello = r#"{"type":"hello","protocol":1}"#;
    let effects = room.on_frame(&conn, &mut limiter, Frame::Text(hello), now, Vec::new);
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Joined)),
        "{effects:?}"
    );
    room.store().db().writes.get() - before
}

#[test]
fn rejoining_under_the_same_name_from_the_same_network_writes_nothing_so_no_answer_waits_for_a_write(
) {
    let db = CountingWrites {
        db: Sqlite::memory().unwrap(),
        writes: std::cell::Cell::new(0),
    };
    let mut room = Room::open(SqlStore::open(db).unwrap(), info()).unwrap();
    let ann = conn("ann", Role::Member);
    assert!(
        writes_to_join(&mut room, &ann, Some("net-a"), 1_000) > 0,
        "a first join is recorded"
    );
    assert_eq!(
        writes_to_join(&mut room, &ann, Some("net-a"), 2_000),
        0,
        "a reconnect"
    );
    // What changed is written: a network, a name, and "last seen" once it is a step old.
    assert!(
        writes_to_join(&mut room, &ann, Some("net-b"), 3_000) > 0,
        "a new network"
    );
    let mut renamed = ann.clone();
    renamed.author.name = "Annie".into();
    assert!(
        writes_to_join(&mut room, &renamed, Some("net-b"), 4_000) > 0,
        "a new name"
    );
    assert_eq!(writes_to_join(&mut room, &renamed, Some("net-b"), 5_000), 0);
    let later = 4_000 + store::LAST_SEEN_STEP_MS;
    assert!(
        writes_to_join(&mut room, &renamed, Some("net-b"), later) > 0,
        "seen a step later"
    );
    let order = room.store().members(10).unwrap();
    assert_eq!(order[0].name, "Annie");
}
