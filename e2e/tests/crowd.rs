//! The crowd bench's test-only guest minting (`POST /api/test/guests`, `BENCH_GUESTS=1`):
//! it does not exist without its switch or for a request not addressed to localhost, its
//! guests are real guest sessions, and it refuses more than it mints in one request. The bench
//! itself (`bench --only crowd`) measures; nothing here asserts on time.

use e2e::crowd::{mint_guests, mint_request, session_of, Crowd, Phase, Target};
use e2e::{DevOptions, DevServer, Result};
use shared::ErrorCode;
use tokio::sync::OnceCell;

static MINTING: OnceCell<DevServer> = OnceCell::const_new();
static PLAIN: OnceCell<DevServer> = OnceCell::const_new();

/// A server with the switch on.
async fn minting() -> &'static DevServer {
    DevServer::shared(&MINTING, || DevOptions::default().var("BENCH_GUESTS", "1")).await
}

/// A server without it, as every deployed Worker is.
async fn plain() -> &'static DevServer {
    DevServer::shared(&PLAIN, DevOptions::default).await
}

/// A request as a deployed site would get it: the same server, another host name.
const PUBLIC_HOST: &str = "chat.example.com";

#[tokio::test(flavor = "multi_thread")]
async fn guest_minting_is_not_found_on_a_server_without_its_switch() -> Result {
    let response = mint_request(plain().await, 3, "crowd", None).await?;
    e2e::client::expect_error(response, ErrorCode::NotFound).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_minting_is_not_found_for_a_request_not_addressed_to_localhost_even_with_the_switch(
) -> Result {
    let response = mint_request(minting().await, 3, "crowd", Some(PUBLIC_HOST)).await?;
    e2e::client::expect_error(response, ErrorCode::NotFound).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn minted_guests_are_distinct_sessions_that_the_server_knows_by_their_minted_names() -> Result
{
    let server = minting().await;
    let guests = mint_guests(server, 3, "crowd").await?;
    let names: Vec<&str> = guests.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["crowd-00000", "crowd-00001", "crowd-00002"]);
    let mut ids: Vec<&str> = guests.iter().map(|g| g.user_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every guest has an id of its own: {guests:?}");
    for guest in &guests {
        // GET /api/session answers who the cookie is, as for a guest POST /api/session made.
        let session = session_of(server, guest).await?;
        assert_eq!(session.info.name, guest.name);
        assert_eq!(session.info.user_id, guest.user_id);
        assert!(!session.info.signed_in);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn minting_more_guests_than_one_request_may_is_an_invalid_input_error() -> Result {
    let server = minting().await;
    let over = e2e::crowd::MAX_GUESTS_PER_REQUEST + 1;
    let body = e2e::client::expect_error(
        mint_request(server, over, "crowd", None).await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    assert!(body.message.contains("10000"), "{}", body.message);
    e2e::client::expect_error(
        mint_request(server, 0, "crowd", None).await?,
        ErrorCode::InvalidInput,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minted_crowd_joins_one_room_as_distinct_people_and_each_hears_one_message() -> Result {
    let server = minting().await;
    let guests = mint_guests(server, 5, "joiner").await?;
    let owner = session_of(server, &guests[0]).await?;
    let room = owner.new_room().await?;
    let mut crowd = Crowd::join(&Target::ours(server, &room.slug, guests), 5, 5).await?;
    assert!(crowd.failures.is_empty(), "{:?}", crowd.failures);
    assert_eq!(crowd.len(), 5);
    crowd.enter(Phase::Idle);
    let one = crowd
        .fan_out(Phase::One, &[2], 1, e2e::client::DEFAULT_TIMEOUT)
        .await?;
    assert!(!one.timed_out, "{one:?}");
    assert_eq!((one.deliveries, one.complete_sockets), (5, 5), "{one:?}");
    assert!(one.errors.is_empty(), "{:?}", one.errors);
    crowd.close().await;
    Ok(())
}
