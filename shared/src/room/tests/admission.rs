//! Admission: a guest's ban covering their network, asking whether a connect would be admitted
//! (the same rule as admitting, storing nothing), and what a rejoin writes.

use super::*;

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
