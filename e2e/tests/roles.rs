//! Roles, moderation, private rooms, profiles and the admin API against the real Worker under
//! `wrangler dev`. One server for the file (with the dev server's local accounts), tests kept
//! apart by their own sessions and rooms. Everyone is a guest but the global admin (the
//! install's first account, signed in once for the whole file) and the accounts it disables.

use std::time::Duration;

use e2e::client::{expect_error, RoomSocket, DEFAULT_TIMEOUT};
use e2e::fake_ai::FakeAi;
use e2e::{unique, DevOptions, DevServer, Result, Session};
use serde_json::{json, Value};
use shared::moderation::http::{AdminUsers, AuditPage, MemberList};
use shared::moderation::{Command, Invite};
use shared::profile::Profile;
use shared::protocol::http::{CreateRoom, SearchResults};
use shared::protocol::{
    close, AnswerState, ClientMessage, EventKind, Role, RoomInfo, ServerMessage, Vote,
};
use shared::ErrorCode;
use tokio::sync::OnceCell;

static SHARED: OnceCell<(DevServer, FakeAi)> = OnceCell::const_new();
static ADMIN: OnceCell<Session> = OnceCell::const_new();

/// One server for these tests, its assistant pointed at a fake provider (which answers "ok"
/// to anything), so rating and managing answers are in the permission matrix too.
async fn server() -> &'static DevServer {
    &SHARED
        .get_or_init(|| async {
            let fake = FakeAi::start().await.expect("fake provider");
            let options = DevOptions::default()
                .var("DEV_LOGIN", "true")
                .var("AI_PROVIDER", "openai")
                .var("AI_BASE_URL", fake.base_url())
                .var("AI_MODEL", "fake-model");
            match DevServer::start(options).await {
                Ok(server) => (server, fake),
                Err(e) => panic!("could not start wrangler dev: {e:#}"),
            }
        })
        .await
        .0
}

async fn user(name: &str) -> Result<Session> {
    Session::create(server().await, name).await
}

/// Signs in a local account (the dev server's login) and returns it as an API session.
async fn local_account(name: &str) -> Result<Session> {
    e2e::login::local_account(server().await, name).await
}

/// The global admin: the install's first account (auth makes it admin), created before any
/// other account of this file.
async fn admin() -> Result<Session> {
    let session = ADMIN
        .get_or_try_init(|| async { local_account("Root").await })
        .await?;
    let profile: Profile = session.get("/api/profile").await?.json().await?;
    anyhow::ensure!(profile.admin, "the first account is a global admin");
    Ok(session.clone())
}

/// A plain account (created after the admin, so it is not one).
async fn account(name: &str) -> Result<Session> {
    admin().await?;
    local_account(name).await
}

/// `POST /api/rooms/<slug>/moderation`; the status and error code (if any).
async fn moderate_http(session: &Session, slug: &str, command: &Command) -> Result<Outcome> {
    outcome(session.moderate(slug, command).await?).await
}

/// Whether a request succeeded, or the error code it got.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Refused(ErrorCode),
}

async fn outcome(response: reqwest::Response) -> Result<Outcome> {
    if response.status().is_success() {
        return Ok(Outcome::Ok);
    }
    let (status, body) = e2e::client::error_body(response).await?;
    assert_eq!(status, body.code.http_status(), "{body:?}");
    Ok(Outcome::Refused(body.code))
}

/// Sends a mutation or command frame and reads its answer.
async fn answer(socket: &mut RoomSocket, message: &ClientMessage, id: &str) -> Result<Outcome> {
    Ok(match socket.answer(message, id).await? {
        Ok(()) => Outcome::Ok,
        Err(code) => Outcome::Refused(code),
    })
}

fn moderate(id: &str, command: Command) -> ClientMessage {
    ClientMessage::Moderate {
        client_id: id.into(),
        command,
    }
}

async fn set_role(owner: &Session, slug: &str, user_id: &str, role: Role) -> Result {
    let result = moderate_http(
        owner,
        slug,
        &Command::SetRole {
            user_id: user_id.into(),
            role,
        },
    )
    .await?;
    assert_eq!(result, Outcome::Ok, "setting {user_id} to {role:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The permission matrix

/// Who performs the actions: a room role, or a global admin who is a plain member of the room.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Owner,
    Moderator,
    Member,
    ReadOnly,
    Admin,
}

const ACTORS: [Actor; 5] = [
    Actor::Owner,
    Actor::Moderator,
    Actor::Member,
    Actor::ReadOnly,
    Actor::Admin,
];

/// The expected outcome of every (actor × action) pair, written out here on purpose rather
/// than read from `shared::permissions`: this is the specification the server must meet.
///                              owner  mod    member read-only admin
const EXPECTED: &[(&str, [bool; 5])] = &[
    ("post", [true, true, true, false, true]),
    ("edit_own", [true, true, true, false, true]),
    ("delete_own", [true, true, true, false, true]),
    ("react", [true, true, true, false, true]),
    ("pin", [true, true, false, false, true]),
    ("rate", [true, true, true, false, true]),
    ("manage_answers", [true, true, false, false, true]),
    ("delete_any", [true, true, false, false, true]),
    ("kick", [true, true, false, false, true]),
    ("mute", [true, true, false, false, true]),
    ("ban", [true, true, false, false, true]),
    ("edit_room", [true, false, false, false, true]),
    ("assign_role", [true, false, false, false, true]),
    ("invite", [true, true, false, false, true]),
    ("view_audit", [true, true, false, false, true]),
];

/// Runs every action of the table as `actor` in a fresh room; returns (action, allowed).
async fn run_actions(actor: Actor) -> Result<Vec<(&'static str, bool)>> {
    let owner = user("Owner").await?;
    let room = owner.new_room().await?;
    let slug = room.slug.as_str();
    let acting = match actor {
        Actor::Owner => owner.clone(),
        Actor::Admin => admin().await?,
        _ => user("Actor").await?,
    };
    let victim = user("Victim").await?;
    let other = user("Other").await?;
    victim.visit(slug).await?;
    other.visit(slug).await?;
    // The victim's message, and two of the actor's own (posted while a member, before any
    // demotion).
    let (mut v, _) = victim.join(slug, None).await?;
    let (victim_seq, _) = v.post("v1", "victim's message").await?;
    // And an answer to the victim's question, finished.
    let (question, _) = v.post("v2", "@assistant say ok").await?;
    let (answer_seq, _) = v
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Event { event } => match &event.kind {
                EventKind::Answer { prompt, .. } if *prompt == question => Some(event.seq),
                _ => None,
            },
            _ => None,
        })
        .await?;
    v.expect_until(DEFAULT_TIMEOUT, |m| match m {
        ServerMessage::Event { event } => match &event.kind {
            EventKind::AnswerStatus {
                target,
                status: AnswerState::Done,
                ..
            } if *target == answer_seq => Some(()),
            _ => None,
        },
        _ => None,
    })
    .await?;
    v.close().await;
    let (mut a, _) = acting.join(slug, None).await?;
    let (own_1, _) = a.post("own-1", "mine").await?;
    let (own_2, _) = a.post("own-2", "mine too").await?;
    let role = match actor {
        Actor::Moderator => Some(Role::Moderator),
        Actor::ReadOnly => Some(Role::ReadOnly),
        _ => None,
    };
    if let Some(role) = role {
        set_role(&owner, slug, acting.user_id(), role).await?;
        // The change reaches the open connection live.
        let (seen, _) = a
            .expect_until(DEFAULT_TIMEOUT, |m| match m {
                ServerMessage::MemberUpdated { user_id, role, .. }
                    if user_id == acting.user_id() =>
                {
                    Some(*role)
                }
                _ => None,
            })
            .await?;
        assert_eq!(seen, role);
    }

    let mut results = Vec::new();
    let ok = |o: Outcome, what: &str| -> Result<bool> {
        match o {
            Outcome::Ok => Ok(true),
            Outcome::Refused(ErrorCode::Forbidden) => Ok(false),
            other => anyhow::bail!("{what} as {actor:?}: unexpected {other:?}"),
        }
    };
    let send = ClientMessage::Send {
        client_id: "p1".into(),
        text: "hello".into(),
        attachments: Vec::new(),
    };
    results.push(("post", ok(answer(&mut a, &send, "p1").await?, "post")?));
    let edit = ClientMessage::Edit {
        client_id: "e1".into(),
        target: own_1,
        text: "edited".into(),
    };
    results.push(("edit_own", ok(answer(&mut a, &edit, "e1").await?, "edit")?));
    let delete = ClientMessage::Delete {
        client_id: "d1".into(),
        target: own_2,
    };
    results.push((
        "delete_own",
        ok(answer(&mut a, &delete, "d1").await?, "delete")?,
    ));
    let react = ClientMessage::React {
        client_id: "r1".into(),
        target: victim_seq,
        emoji: "🎉".into(),
        add: true,
    };
    results.push(("react", ok(answer(&mut a, &react, "r1").await?, "react")?));
    let pin = ClientMessage::Pin {
        client_id: "pin1".into(),
        target: victim_seq,
        pinned: true,
    };
    results.push(("pin", ok(answer(&mut a, &pin, "pin1").await?, "pin")?));
    let rate = ClientMessage::Rate {
        client_id: "rt1".into(),
        target: answer_seq,
        vote: Vote::Up,
        reason: None,
    };
    results.push(("rate", ok(answer(&mut a, &rate, "rt1").await?, "rate")?));
    // Regenerating someone else's answer is managing it.
    let regenerate = ClientMessage::Regenerate {
        client_id: "rg1".into(),
        target: answer_seq,
    };
    results.push((
        "manage_answers",
        ok(answer(&mut a, &regenerate, "rg1").await?, "manage_answers")?,
    ));
    let delete_any = ClientMessage::Delete {
        client_id: "d2".into(),
        target: victim_seq,
    };
    results.push((
        "delete_any",
        ok(answer(&mut a, &delete_any, "d2").await?, "delete_any")?,
    ));
    // Kick, mute and ban over the socket.
    let target = || victim.user_id().to_owned();
    let kick = moderate("k1", Command::Kick { user_id: target() });
    results.push(("kick", ok(answer(&mut a, &kick, "k1").await?, "kick")?));
    let mute = moderate(
        "m1",
        Command::Mute {
            user_id: target(),
            seconds: 60,
        },
    );
    results.push(("mute", ok(answer(&mut a, &mute, "m1").await?, "mute")?));
    let ban = moderate("b1", Command::Ban { user_id: target() });
    results.push(("ban", ok(answer(&mut a, &ban, "b1").await?, "ban")?));
    // Room settings and roles over HTTP.
    let edit_room = Command::UpdateRoom {
        name: None,
        topic: Some("new topic".into()),
        private: None,
        assistant: Some(shared::protocol::AssistantMode::All),
    };
    results.push((
        "edit_room",
        ok(moderate_http(&acting, slug, &edit_room).await?, "edit_room")?,
    ));
    let assign = Command::SetRole {
        user_id: other.user_id().into(),
        role: Role::ReadOnly,
    };
    results.push((
        "assign_role",
        ok(moderate_http(&acting, slug, &assign).await?, "assign_role")?,
    ));
    let invite = acting
        .post(&format!("/api/rooms/{slug}/invites"), &json!({}))
        .await?;
    results.push(("invite", ok(outcome(invite).await?, "invite")?));
    let audit = acting.get(&format!("/api/rooms/{slug}/audit")).await?;
    results.push(("view_audit", ok(outcome(audit).await?, "view_audit")?));
    a.close().await;
    Ok(results)
}

#[tokio::test]
async fn every_role_may_do_exactly_what_the_permission_table_says_over_socket_and_http() -> Result {
    let mut mismatches = Vec::new();
    for (column, actor) in ACTORS.iter().enumerate() {
        let results = run_actions(*actor).await?;
        assert_eq!(results.len(), EXPECTED.len(), "every action was run");
        for ((action, allowed), (expected_action, row)) in results.iter().zip(EXPECTED) {
            assert_eq!(action, expected_action);
            if *allowed != row[column] {
                mismatches.push(format!(
                    "{actor:?} {action}: expected {}, got {}",
                    row[column], allowed
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Moderation

#[tokio::test]
async fn a_kick_closes_the_targets_socket_with_kicked() -> Result {
    let owner = user("Owner").await?;
    let target = user("Target").await?;
    let room = owner.new_room().await?;
    let (mut t, _) = target.join(&room.slug, None).await?;
    let result = moderate_http(
        &owner,
        &room.slug,
        &Command::Kick {
            user_id: target.user_id().into(),
        },
    )
    .await?;
    assert_eq!(result, Outcome::Ok);
    let (code, reason, _) = t.expect_close(DEFAULT_TIMEOUT).await?;
    assert_eq!(code, Some(close::KICKED));
    assert_eq!(reason, "kicked");
    // A kick is not a ban: they may come back.
    let (back, joined) = target.join(&room.slug, None).await?;
    assert_eq!(joined.you.role, Role::Member);
    back.close().await;
    Ok(())
}

#[tokio::test]
async fn a_banned_user_is_closed_and_cannot_rejoin_until_unbanned() -> Result {
    let owner = user("Owner").await?;
    let target = user("Target").await?;
    let room = owner.new_room().await?;
    let (mut t, _) = target.join(&room.slug, None).await?;
    let (mut o, _) = owner.join(&room.slug, None).await?;
    let ban = moderate(
        "ban",
        Command::Ban {
            user_id: target.user_id().into(),
        },
    );
    assert_eq!(answer(&mut o, &ban, "ban").await?, Outcome::Ok);
    let (code, reason, _) = t.expect_close(DEFAULT_TIMEOUT).await?;
    assert_eq!((code, reason.as_str()), (Some(close::BANNED), "banned"));

    let refused = target
        .upgrade_refusal(&room.slug)
        .await?
        .expect("a banned user's upgrade is refused");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body.map(|b| b.code), Some(ErrorCode::Banned));

    // Nor can they read the room another way: its search and a message in context are
    // refused, and a search across their rooms leaves this one out without calling the
    // results partial.
    let (seq, _) = o.post("m1", "zebracorn sighting").await?;
    let search = format!("/api/rooms/{}/search?q=zebracorn", room.slug);
    expect_error(target.get(&search).await?, ErrorCode::Banned).await?;
    let context = format!("/api/rooms/{}/context?seq={seq}", room.slug);
    expect_error(target.get(&context).await?, ErrorCode::Banned).await?;
    let everywhere: SearchResults = target.get("/api/search?q=zebracorn").await?.json().await?;
    assert!(everywhere.hits.is_empty(), "{everywhere:?}");
    assert!(!everywhere.partial, "{everywhere:?}");

    let unban = moderate(
        "unban",
        Command::Unban {
            user_id: target.user_id().into(),
        },
    );
    assert_eq!(answer(&mut o, &unban, "unban").await?, Outcome::Ok);
    let (again, _) = target.join(&room.slug, None).await?;
    again.close().await;
    let found: SearchResults = target.get(&search).await?.json().await?;
    assert_eq!(found.hits.len(), 1, "{found:?}");
    Ok(())
}

#[tokio::test]
async fn a_muted_users_send_gets_muted_with_the_time_left() -> Result {
    let owner = user("Owner").await?;
    let target = user("Target").await?;
    let room = owner.new_room().await?;
    let (mut t, _) = target.join(&room.slug, None).await?;
    let result = moderate_http(
        &owner,
        &room.slug,
        &Command::Mute {
            user_id: target.user_id().into(),
            seconds: 120,
        },
    )
    .await?;
    assert_eq!(result, Outcome::Ok);
    t.send("muted-1", "can anyone hear me?").await?;
    let (error, _) = t
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::Error {
                code,
                retry_after_ms,
                client_id: Some(id),
                ..
            } if id == "muted-1" => Some((*code, *retry_after_ms)),
            _ => None,
        })
        .await?;
    assert_eq!(error.0, ErrorCode::Muted);
    let left = error.1.expect("a retry time");
    assert!(left > 0 && left <= 120_000, "{left}");
    // Unmuted, the same user posts again.
    moderate_http(
        &owner,
        &room.slug,
        &Command::Unmute {
            user_id: target.user_id().into(),
        },
    )
    .await?;
    t.post("muted-2", "now?").await?;
    t.close().await;
    Ok(())
}

#[tokio::test]
async fn a_moderator_cannot_kick_the_owner() -> Result {
    let owner = user("Owner").await?;
    let moderator = user("Mod").await?;
    let room = owner.new_room().await?;
    moderator.visit(&room.slug).await?;
    set_role(&owner, &room.slug, moderator.user_id(), Role::Moderator).await?;
    let result = moderate_http(
        &moderator,
        &room.slug,
        &Command::Kick {
            user_id: owner.user_id().into(),
        },
    )
    .await?;
    assert_eq!(result, Outcome::Refused(ErrorCode::Forbidden));
    Ok(())
}

#[tokio::test]
async fn moderators_read_the_rooms_audit_log_and_members_do_not() -> Result {
    let owner = user("Owner").await?;
    let member = user("Member").await?;
    let moderator = user("Mod").await?;
    let room = owner.new_room().await?;
    member.visit(&room.slug).await?;
    moderator.visit(&room.slug).await?;
    set_role(&owner, &room.slug, moderator.user_id(), Role::Moderator).await?;
    moderate_http(
        &owner,
        &room.slug,
        &Command::Mute {
            user_id: member.user_id().into(),
            seconds: 30,
        },
    )
    .await?;
    // Read by the moderator, not the owner: moderators may read it too.
    let page: AuditPage = moderator
        .get(&format!("/api/rooms/{}/audit", room.slug))
        .await?
        .json()
        .await?;
    let entry = &page.entries[0];
    assert_eq!(entry.action, "mute");
    assert_eq!(entry.actor_id, owner.user_id());
    assert_eq!(entry.target_id.as_deref(), Some(member.user_id()));
    expect_error(
        member
            .get(&format!("/api/rooms/{}/audit", room.slug))
            .await?,
        ErrorCode::Forbidden,
    )
    .await?;
    let members: MemberList = member
        .get(&format!("/api/rooms/{}/members", room.slug))
        .await?
        .json()
        .await?;
    let owner_record = members
        .members
        .iter()
        .find(|m| m.user_id == owner.user_id())
        .expect("the owner is listed");
    assert_eq!(owner_record.role, Role::Owner);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Private rooms and invites

async fn private_room(owner: &Session) -> Result<RoomInfo> {
    let response = owner
        .post(
            "/api/rooms",
            &CreateRoom {
                name: unique("secret"),
                topic: String::new(),
                assistant: Default::default(),
                private: true,
            },
        )
        .await?;
    assert_eq!(response.status().as_u16(), 201);
    Ok(response.json().await?)
}

async fn create_invite(owner: &Session, slug: &str, body: Value) -> Result<Invite> {
    let response = owner
        .post(&format!("/api/rooms/{slug}/invites"), &body)
        .await?;
    assert_eq!(response.status().as_u16(), 201);
    Ok(response.json().await?)
}

async fn join_with(session: &Session, slug: &str, invite: Option<&str>) -> Result<Outcome> {
    let response = session
        .post(
            &format!("/api/rooms/{slug}/join"),
            &json!({ "invite": invite }),
        )
        .await?;
    outcome(response).await
}

#[tokio::test]
async fn a_non_member_cannot_see_or_join_a_private_room_until_invited() -> Result {
    let owner = user("Owner").await?;
    let stranger = user("Stranger").await?;
    let room = private_room(&owner).await?;
    assert!(room.private);

    let listed = stranger.rooms().await?;
    assert!(!listed.rooms.iter().any(|r| r.slug == room.slug));
    expect_error(
        stranger.get(&format!("/api/rooms/{}", room.slug)).await?,
        ErrorCode::NotFound,
    )
    .await?;
    let refused = stranger
        .upgrade_refusal(&room.slug)
        .await?
        .expect("a non-member's upgrade is refused");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body.map(|b| b.code), Some(ErrorCode::Forbidden));
    assert_eq!(
        join_with(&stranger, &room.slug, None).await?,
        Outcome::Refused(ErrorCode::Forbidden)
    );

    let invite = create_invite(&owner, &room.slug, json!({ "max_uses": 1 })).await?;
    assert_eq!(
        join_with(&stranger, &room.slug, Some(&invite.token)).await?,
        Outcome::Ok
    );
    let (socket, joined) = stranger.join(&room.slug, None).await?;
    assert_eq!(joined.you.role, Role::Member);
    socket.close().await;
    assert!(stranger
        .rooms()
        .await?
        .rooms
        .iter()
        .any(|r| r.slug == room.slug));
    // The invite had one use.
    let late = user("Late").await?;
    assert_eq!(
        join_with(&late, &room.slug, Some(&invite.token)).await?,
        Outcome::Refused(ErrorCode::InviteInvalid)
    );
    Ok(())
}

#[tokio::test]
async fn a_revoked_or_expired_invite_is_refused() -> Result {
    let owner = user("Owner").await?;
    let room = private_room(&owner).await?;
    let revoked = create_invite(&owner, &room.slug, json!({})).await?;
    let response = owner
        .request(
            reqwest::Method::DELETE,
            &format!("/api/rooms/{}/invites/{}", room.slug, revoked.token),
        )
        .send()
        .await?;
    assert_eq!(outcome(response).await?, Outcome::Ok);
    let guest = user("Guest").await?;
    assert_eq!(
        join_with(&guest, &room.slug, Some(&revoked.token)).await?,
        Outcome::Refused(ErrorCode::InviteInvalid)
    );

    let expiring = create_invite(&owner, &room.slug, json!({ "expires_in_seconds": 1 })).await?;
    let expires_at = expiring.expires_at.expect("an expiry");
    assert_eq!(expires_at, expiring.created_at + 1_000);
    // Wait past the expiry (a wait, not a timing assertion).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        join_with(&guest, &room.slug, Some(&expiring.token)).await?,
        Outcome::Refused(ErrorCode::InviteInvalid)
    );
    let made_up = join_with(&guest, &room.slug, Some("0123456789abcdef")).await?;
    assert_eq!(made_up, Outcome::Refused(ErrorCode::InviteInvalid));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Profiles

async fn put_profile(session: &Session, profile: &Profile) -> Result<reqwest::Response> {
    Ok(session
        .request(reqwest::Method::PUT, "/api/profile")
        .json(profile)
        .send()
        .await?)
}

#[tokio::test]
async fn a_profile_rename_reaches_another_connected_client_live_and_new_joins_see_it() -> Result {
    let ann = user("Ann").await?;
    let bob = user("Bob").await?;
    let room = ann.new_room().await?;
    let (mut a, _) = ann.join(&room.slug, None).await?;
    a.post("hello", "hello from ann").await?;
    let (mut b, _) = bob.join(&room.slug, None).await?;

    let mut profile: Profile = ann.get("/api/profile").await?.json().await?;
    profile.name = "Annabel".into();
    profile.pronouns = "she/her".into();
    profile.ai.tone = "brief".into();
    let response = put_profile(&ann, &profile).await?;
    assert_eq!(response.status().as_u16(), 200);

    let (member, _) = b
        .expect_until(DEFAULT_TIMEOUT, |m| match m {
            ServerMessage::ProfileUpdated { member } => Some(member.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(member.user_id, ann.user_id());
    assert_eq!(member.name, "Annabel");

    // A new join's page shows the current name on the old message.
    let carol = user("Carol").await?;
    let (_, joined) = carol.join(&room.slug, None).await?;
    let page = joined.history.expect("a page");
    assert_eq!(page.messages[0].author.name, "Annabel");
    let stored: Profile = ann.get("/api/profile").await?.json().await?;
    assert_eq!(stored.pronouns, "she/her");
    assert_eq!(stored.ai.tone, "brief");
    a.close().await;
    b.close().await;
    Ok(())
}

#[tokio::test]
async fn an_invalid_profile_is_refused_with_the_field_named() -> Result {
    let ann = user("Ann").await?;
    let profile = Profile {
        name: "Ann".into(),
        accent: "not-a-color".into(),
        ..Profile::default()
    };
    let body = expect_error(put_profile(&ann, &profile).await?, ErrorCode::InvalidInput).await?;
    assert!(body.message.contains("Accent"), "{}", body.message);
    Ok(())
}

/// A real 1×1 PNG.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

#[tokio::test]
async fn an_avatar_is_checked_by_its_bytes_stored_and_served() -> Result {
    let ann = user("Ann").await?;
    let upload = |bytes: Vec<u8>| {
        ann.request(reqwest::Method::PUT, "/api/profile/avatar")
            .header("Content-Type", "image/png")
            .body(bytes)
            .send()
    };
    expect_error(
        upload(b"just text, named .png".to_vec()).await?,
        ErrorCode::UnsupportedMedia,
    )
    .await?;
    let mut big = PNG_1X1.to_vec();
    big.resize(1024 * 1024 + 1, 0);
    expect_error(upload(big).await?, ErrorCode::TooLarge).await?;

    let response = upload(PNG_1X1.to_vec()).await?;
    assert_eq!(response.status().as_u16(), 200);
    let profile: Profile = response.json().await?;
    let url = profile.avatar.expect("an avatar URL");
    let served = ann.get(&url).await?;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(
        served.headers()["content-type"].to_str()?,
        "image/png",
        "served with the type its bytes have"
    );
    assert_eq!(served.bytes().await?.as_ref(), PNG_1X1);

    // A new upload replaces the old image, which is deleted.
    let again: Profile = upload(PNG_1X1.to_vec()).await?.json().await?;
    let new_url = again.avatar.expect("a new avatar URL");
    assert_ne!(new_url, url);
    assert_eq!(ann.get(&new_url).await?.status().as_u16(), 200);
    expect_error(ann.get(&url).await?, ErrorCode::NotFound).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Admin

#[tokio::test]
async fn an_admin_disabling_a_user_closes_their_sockets_and_refuses_them() -> Result {
    let root = admin().await?;
    let target = account(&unique("Target")).await?;
    let room = target.new_room().await?;
    let (mut t, _) = target.join(&room.slug, None).await?;

    let users: AdminUsers = root
        .get(&format!("/api/admin/users?q={}", target.info.name))
        .await?
        .json()
        .await?;
    assert_eq!(users.users.len(), 1);
    assert_eq!(users.users[0].profile.user_id, target.user_id());

    let response = root
        .post(
            &format!("/api/admin/users/{}", target.user_id()),
            &json!({ "disabled": true }),
        )
        .await?;
    assert_eq!(outcome(response).await?, Outcome::Ok);
    let (code, _, _) = t.expect_close(DEFAULT_TIMEOUT).await?;
    assert_eq!(code, Some(close::UNAUTHORIZED));
    expect_error(target.get("/api/rooms").await?, ErrorCode::Unauthorized).await?;

    let audit: AuditPage = root.get("/api/admin/audit").await?.json().await?;
    assert!(audit
        .entries
        .iter()
        .any(|e| e.action == "disable_user" && e.target_id.as_deref() == Some(target.user_id())));
    Ok(())
}

#[tokio::test]
async fn the_admin_api_is_refused_to_guests_and_plain_accounts() -> Result {
    let ann = user("Ann").await?;
    expect_error(ann.get("/api/admin/users").await?, ErrorCode::Forbidden).await?;
    expect_error(ann.get("/api/admin/rooms").await?, ErrorCode::Forbidden).await?;
    let plain = account(&unique("Plain")).await?;
    expect_error(plain.get("/api/admin/audit").await?, ErrorCode::Forbidden).await?;
    let disable_root = plain
        .post(
            &format!("/api/admin/users/{}", admin().await?.user_id()),
            &json!({ "disabled": true }),
        )
        .await?;
    expect_error(disable_root, ErrorCode::Forbidden).await?;
    Ok(())
}

#[tokio::test]
async fn a_global_admin_sees_private_rooms_on_the_admin_page() -> Result {
    let owner = user("Owner").await?;
    let room = private_room(&owner).await?;
    let root = admin().await?;
    let rooms: shared::moderation::http::AdminRooms =
        root.get("/api/admin/rooms").await?.json().await?;
    assert!(rooms.rooms.iter().any(|r| r.slug == room.slug && r.private));
    Ok(())
}
