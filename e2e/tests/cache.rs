//! The edge cache (issue 12) through the real Worker under `wrangler dev`, whose Cache API is
//! the runtime's own: profile cards, avatars and the public part of the room list are served
//! from it (`X-Cache: hit`), revalidate with their `ETag` (304), and are purged when their data
//! changes. Nothing asserts on elapsed time.

use e2e::client::header;
use e2e::{unique, DevOptions, DevServer, Result, Session};
use reqwest::Method;
use shared::profile::{Profile, PublicProfile};
use tokio::sync::OnceCell;

static SHARED: OnceCell<DevServer> = OnceCell::const_new();

async fn server() -> &'static DevServer {
    DevServer::shared(&SHARED, DevOptions::default).await
}

async fn user(name: &str) -> Result<Session> {
    Session::create(server().await, name).await
}

async fn save_bio(who: &Session, bio: &str) -> Result {
    let mut profile: Profile = who.get("/api/profile").await?.json().await?;
    profile.bio = bio.into();
    let saved = who
        .request(Method::PUT, "/api/profile")
        .json(&profile)
        .send()
        .await?;
    anyhow::ensure!(saved.status().as_u16() == 200, "saving: {}", saved.status());
    Ok(())
}

#[tokio::test]
async fn a_profile_card_comes_from_the_edge_cache_until_its_owner_changes_it() -> Result {
    let ann = user(&unique("Ann")).await?;
    let bob = user(&unique("Bob")).await?;
    save_bio(&ann, "first words").await?;
    let card = format!("/api/users/{}", ann.user_id());

    let first = bob.get(&card).await?;
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(header(&first, "X-Cache"), "miss");
    let tag = header(&first, "ETag");
    assert!(tag.starts_with('"'), "an ETag: {tag:?}");
    assert_eq!(header(&first, "Cache-Control"), "private, no-cache");

    let second = bob.get(&card).await?;
    assert_eq!(header(&second, "X-Cache"), "hit");
    assert_eq!(header(&second, "ETag"), tag);
    let body: PublicProfile = second.json().await?;
    assert_eq!(body.bio, "first words");

    let revalidated = bob
        .request(Method::GET, &card)
        .header("If-None-Match", &tag)
        .send()
        .await?;
    assert_eq!(
        revalidated.status().as_u16(),
        304,
        "the reader has this version"
    );
    assert!(revalidated.bytes().await?.is_empty());

    save_bio(&ann, "second words").await?;
    let after = bob.get(&card).await?;
    assert_eq!(
        header(&after, "X-Cache"),
        "miss",
        "the save purged the card"
    );
    assert_ne!(header(&after, "ETag"), tag);
    let body: PublicProfile = after.json().await?;
    assert_eq!(body.bio, "second words");
    let stale = bob
        .request(Method::GET, &card)
        .header("If-None-Match", &tag)
        .send()
        .await?;
    assert_eq!(stale.status().as_u16(), 200, "an old version is not 304");
    Ok(())
}

#[tokio::test]
async fn a_card_is_still_only_for_a_session_even_when_cached() -> Result {
    let ann = user(&unique("Ann")).await?;
    let card = format!("/api/users/{}", ann.user_id());
    ann.get(&card).await?;
    let anonymous = reqwest::Client::new()
        .get(format!("{}{card}", server().await.url()))
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn an_avatar_is_served_from_the_edge_cache_and_a_replaced_one_is_gone() -> Result {
    let ann = user(&unique("Ann")).await?;
    let png = e2e::fixture_image_bytes("chelsea-224.png")?;
    let upload = |bytes: Vec<u8>| {
        ann.request(Method::PUT, "/api/profile/avatar")
            .header("Content-Type", "image/png")
            .body(bytes)
            .send()
    };
    let saved: Profile = upload(png.clone()).await?.json().await?;
    let url = saved.avatar.clone().expect("an avatar URL");

    let first = ann.get(&url).await?;
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(header(&first, "X-Cache"), "miss");
    let second = ann.get(&url).await?;
    assert_eq!(header(&second, "X-Cache"), "hit");
    assert_eq!(
        header(&second, "Cache-Control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(second.bytes().await?.len(), png.len());

    let replaced: Profile = upload(png).await?.json().await?;
    assert_ne!(replaced.avatar.as_deref(), Some(url.as_str()), "a new URL");
    let old = ann.get(&url).await?;
    assert_eq!(
        old.status().as_u16(),
        404,
        "the replaced avatar is deleted and purged, not served from the cache"
    );
    Ok(())
}

#[tokio::test]
async fn a_new_public_room_is_in_everyones_list_at_once_and_a_private_one_only_in_its_members(
) -> Result {
    let ann = user(&unique("Ann")).await?;
    let bob = user(&unique("Bob")).await?;
    // Bob's list fills the cache with the public rooms.
    bob.rooms().await?;
    let public = ann.create_room(&unique("open"), "").await?;
    let listed = bob.rooms().await?;
    assert!(
        listed.rooms.iter().any(|r| r.slug == public.slug),
        "creating a public room purged the cached list"
    );
    let response = ann
        .post(
            "/api/rooms",
            &shared::protocol::http::CreateRoom {
                name: unique("closed"),
                topic: String::new(),
                assistant: Default::default(),
                private: true,
            },
        )
        .await?;
    assert_eq!(response.status().as_u16(), 201);
    let private: shared::protocol::RoomInfo = response.json().await?;
    assert!(ann
        .rooms()
        .await?
        .rooms
        .iter()
        .any(|r| r.slug == private.slug));
    assert!(
        !bob.rooms()
            .await?
            .rooms
            .iter()
            .any(|r| r.slug == private.slug),
        "a private room never enters the shared list"
    );
    Ok(())
}

#[tokio::test]
async fn the_public_part_of_the_room_list_is_shared_by_every_reader() -> Result {
    let ann = user(&unique("Ann")).await?;
    let bob = user(&unique("Bob")).await?;
    ann.get("/api/rooms").await?;
    let second = bob.get("/api/rooms").await?;
    assert_eq!(
        header(&second, "X-Cache"),
        "hit",
        "{}",
        server().await.log_tail()
    );
    Ok(())
}
