//! Live analytics and performance monitoring (issue 12) through the real Worker, rooms and
//! `Metrics` object under `wrangler dev`: a room's batch reaches the admin analytics within the
//! batch interval, the live socket hears it, only admins and a room's owner see anything,
//! `Server-Timing` names its phases, slow requests are listed, and browser vitals are checked,
//! capped and rate-limited with stable codes.
//!
//! One server for the file. Rooms have unique names and the analytics are read per room, so
//! tests running at once never count each other's messages. Waits poll with a deadline: the
//! numbers arrive with the room's next batch (at most `REPORT_INTERVAL_MS` after the first
//! count), and no test asserts how fast.

use std::time::{Duration, Instant};

use e2e::client::{expect_error, RoomSocket, CLIENT_IP_HEADER};
use e2e::fake_ai::{FakeAi, Script};
use e2e::watcher::Watcher;
use e2e::{unique, DevOptions, DevServer, Result, Session};
use futures_util::StreamExt as _;
use shared::client::PendingOp;
use shared::metrics::{Analytics, LiveUpdate, RoomLine, LIVE_KIND, REPORT_INTERVAL_MS};
use shared::profile::Profile;
use shared::protocol::{AnswerState, Vote};
use shared::ErrorCode;
use tokio::sync::OnceCell;
use tokio_tungstenite::tungstenite::{self, Message};

static SHARED: OnceCell<(DevServer, FakeAi)> = OnceCell::const_new();
static ADMIN: OnceCell<Session> = OnceCell::const_new();

/// How long a batch may take to show: a few batch intervals, for a slow, shared machine.
const DEADLINE: Duration = Duration::from_secs(45);

/// One server, with local accounts (the first is the global admin), the assistant pointed at
/// a fake provider, and every request over 1 ms listed as slow.
async fn world() -> &'static (DevServer, FakeAi) {
    SHARED
        .get_or_init(|| async {
            let fake = FakeAi::start().await.expect("fake provider");
            let options = DevOptions::default()
                .var("DEV_LOGIN", "true")
                .var("AI_PROVIDER", "openai")
                .var("AI_BASE_URL", fake.base_url())
                .var("AI_MODEL", "fake-model")
                .var("SLOW_REQUEST_MS", 1);
            match DevServer::start(options).await {
                Ok(server) => (server, fake),
                Err(e) => panic!("could not start wrangler dev: {e:#}"),
            }
        })
        .await
}

async fn server() -> &'static DevServer {
    &world().await.0
}

/// The global admin: the install's first account.
async fn admin() -> Result<Session> {
    let session = ADMIN
        .get_or_try_init(|| async { e2e::login::local_account(server().await, "Root").await })
        .await?;
    let profile: Profile = session.get("/api/profile").await?.json().await?;
    anyhow::ensure!(profile.admin, "the first account is a global admin");
    Ok(session.clone())
}

async fn guest(name: &str) -> Result<Session> {
    admin().await?;
    Session::create(server().await, name).await
}

async fn analytics(session: &Session, path: &str) -> Result<Analytics> {
    let response = session.get(path).await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

/// Reads `path` until `done` holds for the room's line, or fails at the deadline with the last
/// line seen.
async fn line_until(
    session: &Session,
    path: &str,
    slug: &str,
    done: impl Fn(&RoomLine) -> bool,
) -> Result<(Analytics, RoomLine)> {
    let start = Instant::now();
    loop {
        let page = analytics(session, path).await?;
        let line = page.rooms.iter().find(|l| l.room == slug).cloned();
        if let Some(line) = line.filter(|l| done(l)) {
            return Ok((page, line));
        }
        if start.elapsed() > DEADLINE {
            let line = page.rooms.iter().find(|l| l.room == slug);
            anyhow::bail!("{path}: {slug} never got there; last line {line:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn messages_an_answer_and_a_rating_reach_the_admin_analytics_with_the_next_batch() -> Result {
    let root = admin().await?;
    let ann = guest("Ann").await?;
    let slug = ann.create_room(&unique("stats"), "metrics").await?.slug;
    let marker = unique("m");
    world().await.1.push(
        &marker,
        Script::words("forty two", Duration::from_millis(30)),
    );
    let mut room = Watcher::join(&ann, &slug).await?;
    const N: u64 = 5;
    for i in 0..N {
        room.say(&format!("hello {i}")).await?;
    }
    let question = format!("@assistant what is six times seven? {marker}");
    room.say(&question).await?;
    let target = room.answer_in(&question, AnswerState::Done).await?.seq;
    room.queue(PendingOp::Rate {
        target,
        vote: Vote::Up,
        reason: None,
    })
    .await?;

    let (page, line) = line_until(&root, "/api/admin/analytics?range=1h", &slug, |l| {
        l.messages == N + 1 && l.answers == 1 && l.up == 1
    })
    .await?;
    // The question is a message too; the answer is counted as an answer, not a message.
    assert_eq!((line.messages, line.answers, line.down), (N + 1, 1, 0));
    assert!(line.events >= N + 2, "{line:?}");
    assert!(
        line.first_token.p50.is_some() && line.total.p99.is_some(),
        "{line:?}"
    );
    assert!(line.connects >= 1 && line.rows_written > 0, "{line:?}");
    assert!(line.db_bytes > 0, "{line:?}");
    assert_eq!(line.connections, 1, "Ann's socket is open");
    assert_eq!(
        page.points.len(),
        60,
        "one point a minute for the last hour"
    );
    assert!(page.points.iter().map(|p| p.messages).sum::<u64>() > N);
    assert!(page.vitals.is_some());
    // The day and the month read the same room from coarser rollups.
    let (_, day) = line_until(&root, "/api/admin/analytics?range=24h", &slug, |l| {
        l.messages == N + 1
    })
    .await?;
    assert_eq!(day.answers, 1);
    let month = analytics(&root, "/api/admin/analytics?range=30d").await?;
    assert_eq!(month.points.len(), 30 * 24);
    assert!(month
        .rooms
        .iter()
        .any(|l| l.room == slug && l.messages == N + 1));
    Ok(())
}

#[tokio::test]
async fn the_live_socket_receives_an_update_when_a_room_reports() -> Result {
    let root = admin().await?;
    let url = format!(
        "ws://127.0.0.1:{}/api/admin/analytics/live",
        server().await.port()
    );
    let socket = RoomSocket::open(&url, Some(root.origin()), Some(root.cookie()))
        .await?
        .map_err(|r| anyhow::anyhow!("the live socket was refused: {r:?}"))?;
    let mut ws = socket.into_stream()?;
    let read =
        |message: Option<Result<Message, tungstenite::Error>>| -> Result<Option<LiveUpdate>> {
            match message {
                Some(Ok(Message::Text(text))) => Ok(Some(serde_json::from_str(&text)?)),
                Some(Ok(_)) => Ok(None),
                Some(Err(e)) => Err(e.into()),
                None => anyhow::bail!("the live socket closed"),
            }
        };
    // The current numbers come first, naming no room.
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
    let first = read(first)?.expect("a text frame");
    assert_eq!(first.kind, LIVE_KIND);
    assert!(first.rooms.is_empty());

    let bob = guest("Bob").await?;
    let slug = bob.create_room(&unique("live"), "metrics").await?.slug;
    let mut room = Watcher::join(&bob, &slug).await?;
    room.say("anyone here?").await?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no update named {slug} before the deadline"))?;
        if let Some(update) = read(next)? {
            if update.rooms.contains(&slug) {
                assert!(update.minute.messages >= 1, "{update:?}");
                assert!(update.current.connections >= 1, "{update:?}");
                break;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn only_admins_see_everything_and_a_room_owner_sees_only_their_own_room() -> Result {
    let root = admin().await?;
    let ann = guest("Ann").await?;
    let bob = guest("Bob").await?;
    let anns = ann.create_room(&unique("owned"), "metrics").await?.slug;
    let bobs = bob.create_room(&unique("other"), "metrics").await?.slug;
    Watcher::join(&ann, &anns).await?.say("mine").await?;

    // Not admins: there is no such API, and no live socket.
    expect_error(ann.get("/api/admin/analytics").await?, ErrorCode::NotFound).await?;
    let url = format!(
        "ws://127.0.0.1:{}/api/admin/analytics/live",
        server().await.port()
    );
    let refused = RoomSocket::open(&url, Some(ann.origin()), Some(ann.cookie())).await?;
    let refusal = refused.err().expect("refused");
    assert_eq!(refusal.status, 404, "{refusal:?}");

    // The owner sees her room, and only it; another's room does not exist for her.
    let (mine, line) = line_until(
        &ann,
        &format!("/api/rooms/{anns}/analytics?range=1h"),
        &anns,
        |l| l.messages == 1,
    )
    .await?;
    assert_eq!(mine.rooms.len(), 1);
    assert!(
        mine.vitals.is_none() && mine.slow.is_empty(),
        "admins' numbers only"
    );
    assert_eq!(
        mine.points.iter().map(|p| p.messages).sum::<u64>(),
        line.messages
    );
    expect_error(
        ann.get(&format!("/api/rooms/{bobs}/analytics")).await?,
        ErrorCode::NotFound,
    )
    .await?;
    expect_error(
        bob.get(&format!("/api/rooms/{anns}/analytics")).await?,
        ErrorCode::NotFound,
    )
    .await?;
    expect_error(
        ann.get("/api/rooms/no-such-room-here/analytics").await?,
        ErrorCode::NotFound,
    )
    .await?;
    // An admin may look at any room.
    analytics(&root, &format!("/api/rooms/{bobs}/analytics")).await?;
    expect_error(
        root.get("/api/admin/analytics?range=7d").await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn api_responses_name_their_phases_in_server_timing_and_slow_ones_are_listed() -> Result {
    let root = admin().await?;
    let ann = guest("Ann").await?;
    let slug = ann.create_room(&unique("timing"), "metrics").await?.slug;
    let response = ann.get(&format!("/api/rooms/{slug}/members")).await?;
    assert_eq!(response.status().as_u16(), 200);
    let timing = response
        .headers()
        .get("Server-Timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for phase in ["session;dur=", "directory;dur=", "room;dur=", "total;dur="] {
        assert!(timing.contains(phase), "{phase} in {timing:?}");
    }
    assert!(timing.ends_with(|c: char| c.is_ascii_digit()), "{timing:?}");
    // An error answer is timed too.
    let refused = ann.get("/api/rooms/no-such-room-here/members").await?;
    assert!(refused.headers().contains_key("Server-Timing"));

    // This server lists everything over 1 ms (at most one a second per isolate, so the request
    // is made again until it is the one recorded): the route shows, with no room name in it.
    let start = Instant::now();
    loop {
        ann.get(&format!("/api/rooms/{slug}/members")).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let page = analytics(&root, "/api/admin/analytics?range=1h").await?;
        let found = page
            .slow
            .iter()
            .find(|s| s.route == "/api/rooms/:slug/members" && s.status == 200);
        if let Some(slow) = found {
            assert_eq!(slow.method, "GET");
            let phases: Vec<&str> = slow.phases.iter().map(|p| p.name.as_str()).collect();
            assert!(
                phases.contains(&"session") && phases.contains(&"room"),
                "{phases:?}"
            );
            assert!(page.slow.iter().all(|s| !s.route.contains(&slug)));
            break;
        }
        anyhow::ensure!(
            start.elapsed() < DEADLINE,
            "no slow request listed: {:?}",
            page.slow
        );
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    Ok(())
}

async fn post_vitals(session: &Session, ip: &str, body: String) -> Result<reqwest::Response> {
    Ok(session
        .request(reqwest::Method::POST, "/api/vitals")
        .header(CLIENT_IP_HEADER, ip)
        .header("Origin", session.origin())
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await?)
}

/// A client address of its own, so the rate limit counts only this test's reports.
fn address() -> String {
    // Three random bytes: six hex digits.
    let n = u32::from_str_radix(&e2e::random_hex(3), 16).unwrap_or(7);
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

#[tokio::test]
async fn vitals_are_accepted_in_range_refused_out_of_range_or_oversized_and_rate_limited() -> Result
{
    let root = admin().await?;
    let ann = guest("Ann").await?;
    let good = r#"{"lcp_ms":1834.5,"inp_ms":96,"cls":0.04,"first_message_ms":2210}"#;
    let accepted = post_vitals(&ann, &address(), good.into()).await?;
    assert_eq!(accepted.status().as_u16(), 204);

    let ip = address();
    let out_of_range = post_vitals(&ann, &ip, r#"{"lcp_ms":-5}"#.into()).await?;
    let body = expect_error(out_of_range, ErrorCode::InvalidInput).await?;
    assert!(body.message.contains("lcp_ms"), "{}", body.message);
    let huge = post_vitals(&ann, &ip, r#"{"cls":0.1}"#.to_owned() + &" ".repeat(4096)).await?;
    expect_error(huge, ErrorCode::TooLarge).await?;
    let unknown = post_vitals(&ann, &ip, r#"{"lcp_ms":5,"cookie":"x"}"#.into()).await?;
    expect_error(unknown, ErrorCode::InvalidFrame).await?;

    // The limit is per address: one address sending without pause is told to slow down.
    let ip = address();
    let mut limited = None;
    for _ in 0..80 {
        let response = post_vitals(&ann, &ip, good.into()).await?;
        if response.status().as_u16() != 204 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a flood from one address is refused");
    expect_error(limited, ErrorCode::RateLimited).await?;

    // Accepted vitals are in the admins' percentiles.
    let start = Instant::now();
    loop {
        let page = analytics(&root, "/api/admin/analytics?range=1h").await?;
        if let Some(vitals) = page.vitals.filter(|v| v.lcp_ms.samples > 0) {
            assert!(vitals.lcp_ms.p50.is_some() && vitals.cls_milli.samples > 0);
            break;
        }
        anyhow::ensure!(start.elapsed() < DEADLINE, "the vitals never showed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // No session is needed to report (the sign-in page is measured too).
    let anonymous = e2e::client::http()
        .post(format!("{}/api/vitals", server().await.url()))
        .header(CLIENT_IP_HEADER, address())
        .body(good)
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 204);
    Ok(())
}

/// Every SQLite file under `dir` (the D1 database and the objects' storage of a persist dir).
fn sqlite_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            sqlite_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sqlite") {
            out.push(path);
        }
    }
}

/// The messages D1's `metrics_minutes` holds for `room`, read straight from the dev server's
/// D1 file (`None` until some file has the row).
fn exported_messages(dir: &std::path::Path, room: &str) -> Option<u64> {
    use shared::room::store::sqlite::Sqlite;
    use shared::room::store::Sql as _;
    let mut files = Vec::new();
    sqlite_files(dir, &mut files);
    files.iter().find_map(|file| {
        let db = Sqlite::open(file).ok()?;
        let rows = db
            .query(
                "SELECT SUM(messages) FROM metrics_minutes WHERE room = ?1",
                &[room.into()],
            )
            .ok()?;
        rows.first()?.opt_uint(0).ok()?
    })
}

#[tokio::test]
async fn closed_minutes_are_written_to_d1_locally_where_analytics_engine_cannot_be_read() -> Result
{
    let carol = guest("Carol").await?;
    let slug = carol.create_room(&unique("export"), "metrics").await?.slug;
    let mut room = Watcher::join(&carol, &slug).await?;
    room.say("one").await?;
    room.say("two").await?;
    // The minute closes, then the aggregator's next alarm writes it: about a minute.
    let dir = server().await.persist_dir().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        if exported_messages(&dir, &slug) == Some(2) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{slug}'s minute never reached D1"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[test]
fn the_deadline_leaves_room_for_several_batches() {
    assert!(DEADLINE.as_millis() as i64 >= 5 * REPORT_INTERVAL_MS);
}
