//! Sign-in end to end: the real Worker under `wrangler dev`, and a real OAuth 2.0 / OpenID
//! Connect server on loopback standing in for GitHub, Google, Apple and Discord
//! (`e2e::oauth_fake`). Run `./scripts/build` first.

use std::time::Duration;

use anyhow::ensure;
use e2e::client::expect_error;
use e2e::login::{Browser, SESSION_COOKIE, STATE_COOKIE};
use e2e::oauth_fake::{self, FakeUser, OAuthFake, APPLE_TEAM};
use e2e::{unique, DevOptions, DevServer, Result, Session};
use shared::auth::{LoginError, Provider};
use shared::protocol::http::{SessionInfo, SessionState};
use shared::protocol::{close, ServerMessage};
use shared::ErrorCode;
use tokio::sync::OnceCell;

/// A test-only P-256 key (PKCS#8, one line with literal `\n`, as it would sit in `.dev.vars`):
/// the Worker signs Apple client secrets with it.
const APPLE_TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5xpa25MlANE5V7I0\\nCOsS1av3+TMnqu+Td2Lx2oGN3l6hRANCAATM0cUARAXJEs2aZZAvoK9TQvAgDMpI\\neRn+2utaqRQ3WO/DHcO530446x0E/m62pi3WQw5JO1sZua02oIUrNpFv\\n-----END PRIVATE KEY-----";

struct OauthServer {
    fake: OAuthFake,
    server: DevServer,
}

static OAUTH: OnceCell<OauthServer> = OnceCell::const_new();

/// A server with all four providers pointed at one fake (and `DEV_LOGIN=true`, which must then
/// be refused: the local account is only for servers with no provider).
async fn oauth() -> &'static OauthServer {
    OAUTH
        .get_or_init(|| async {
            let fake = OAuthFake::start().expect("the OAuth fake starts");
            let mut options = DevOptions::default()
                .var("OAUTH_TEST_ENDPOINTS", fake.base())
                .var("DEV_LOGIN", "true")
                .var("ADMIN_EMAILS", format!("ops@example.com, {ADMIN_EMAIL}"));
            for p in ["github", "google", "discord"] {
                let name = p.to_uppercase();
                options = options
                    .var(&format!("{name}_CLIENT_ID"), oauth_fake::client_id(p))
                    .var(
                        &format!("{name}_CLIENT_SECRET"),
                        oauth_fake::client_secret(p),
                    );
            }
            options = options
                .var("APPLE_CLIENT_ID", oauth_fake::client_id("apple"))
                .var("APPLE_TEAM_ID", APPLE_TEAM)
                .var("APPLE_KEY_ID", "KEYFAKE001")
                .var("APPLE_PRIVATE_KEY", APPLE_TEST_KEY);
            let server = DevServer::start(options)
                .await
                .expect("wrangler dev starts (run ./scripts/build first)");
            OauthServer { fake, server }
        })
        .await
}

/// On the OAuth server's `ADMIN_EMAILS` list.
const ADMIN_EMAIL: &str = "Boss@Example.com";

/// The signed-in account's global role, as the API reports it. (Reading D1 from a second
/// process while the server runs could make the server's own queries fail with SQLITE_BUSY.)
async fn role(browser: &mut Browser) -> Result<String> {
    let profile: serde_json::Value = browser
        .request(reqwest::Method::GET, "/api/profile")
        .await?
        .json()
        .await?;
    Ok(match profile["admin"].as_bool() {
        Some(true) => "admin",
        Some(false) => "user",
        None => "no profile",
    }
    .to_owned())
}

fn someone(name: &str) -> FakeUser {
    FakeUser::verified(name, &format!("{}@example.com", unique(name)))
}

fn login_error(location: &str) -> Option<LoginError> {
    location
        .strip_prefix("/?login_error=")
        .map(LoginError::parse)
}

#[tokio::test]
async fn the_login_options_are_exactly_the_configured_providers_and_no_local_account_beside_them(
) -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    let options = browser.login_options().await?;
    assert_eq!(options.providers, Provider::OAUTH.to_vec());
    assert!(
        !options.dev_login,
        "DEV_LOGIN is refused while a provider is configured"
    );
    let response = browser
        .request(reqwest::Method::POST, "/api/auth/local")
        .await?;
    expect_error(response, ErrorCode::Forbidden).await?;
    Ok(())
}

#[tokio::test]
async fn a_github_login_sets_a_host_only_secure_session_cookie_and_lands_signed_in() -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    let authorize = browser.start("github").await?;
    ensure!(authorize.starts_with(&format!("{}/github/authorize?", s.fake.base())));
    let state_cookie = browser
        .last_set_cookies
        .iter()
        .find(|c| c.starts_with(STATE_COOKIE))
        .cloned()
        .unwrap_or_default();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        ensure!(
            state_cookie.contains(attr),
            "state cookie {state_cookie:?} lacks {attr}"
        );
    }
    let user = someone("Grace");
    let callback = browser.consent(&authorize, Some(&user)).await?;
    assert_eq!(
        callback.path, "/api/auth/github/callback",
        "the exact redirect URI"
    );
    let landed = browser.finish(&callback).await?;
    assert_eq!(landed, "/");
    let session_cookie = browser
        .last_set_cookies
        .iter()
        .find(|c| c.starts_with(SESSION_COOKIE))
        .cloned()
        .unwrap_or_default();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        ensure!(
            session_cookie.contains(attr),
            "session cookie {session_cookie:?} lacks {attr}"
        );
    }
    ensure!(
        !session_cookie.contains("Domain"),
        "__Host- cookies have no Domain"
    );
    assert!(
        !browser.has_cookie(STATE_COOKIE),
        "the state cookie is single-use"
    );
    let me = browser.session_info().await?;
    assert!(me.signed_in);
    assert_eq!(me.name, "Grace");
    assert_eq!(me.providers, vec![Provider::Github]);
    Ok(())
}

#[tokio::test]
async fn google_apple_and_discord_logins_each_sign_in_end_to_end() -> Result {
    let s = oauth().await;
    for provider in [Provider::Google, Provider::Apple, Provider::Discord] {
        let mut browser = Browser::new(&s.server);
        let user = someone("Ada");
        let me = browser.login(provider.as_str(), &user).await?;
        assert!(me.signed_in, "{provider:?}");
        assert_eq!(me.providers, vec![provider]);
        if provider != Provider::Apple {
            // Apple's ID token has no name (it comes once, in a form field, at first sign-in).
            assert_eq!(me.name, "Ada", "{provider:?}");
        }
        // The same person again is the same account.
        let mut again = Browser::new(&s.server);
        assert_eq!(
            again.login(provider.as_str(), &user).await?.user_id,
            me.user_id
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_id_token_whose_signature_the_providers_published_key_refuses_signs_no_one_in() -> Result
{
    let s = oauth().await;
    for provider in ["google", "apple"] {
        let mut browser = Browser::new(&s.server);
        let authorize = browser.start(provider).await?;
        let callback = browser
            .consent(&authorize, Some(&someone("Mallory").forged()))
            .await?;
        let landed = browser.finish(&callback).await?;
        assert_eq!(
            login_error(&landed),
            Some(LoginError::OauthIdTokenInvalid),
            "{provider}"
        );
        assert!(!browser.has_cookie(SESSION_COOKIE), "{provider}");
    }
    Ok(())
}

#[tokio::test]
async fn a_callback_with_a_wrong_or_missing_state_returns_oauth_state_mismatch_and_no_session(
) -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    let authorize = browser.start("github").await?;
    let callback = browser
        .consent(&authorize, Some(&someone("Mallory")))
        .await?;
    let forged = callback.clone().with("state", "forged-state");
    let landed = browser.finish(&forged).await?;
    assert_eq!(login_error(&landed), Some(LoginError::OauthStateMismatch));
    assert!(!browser.has_cookie(SESSION_COOKIE));

    // The genuine callback in a browser that never started this login (login CSRF).
    let mut other = Browser::new(&s.server);
    let landed = other.finish(&callback).await?;
    assert_eq!(login_error(&landed), Some(LoginError::OauthStateMismatch));
    assert!(!other.has_cookie(SESSION_COOKIE));
    Ok(())
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_the_provider_and_the_login_fails_with_oauth_exchange_failed(
) -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    let authorize = browser.start("discord").await?;
    let first = browser
        .consent(&authorize, Some(&someone("Replay")))
        .await?;
    assert_eq!(browser.finish(&first).await?, "/");
    let code = first.param("code").unwrap_or_default().to_owned();

    // A second login in the same browser, answered with the first login's (spent) code.
    let mut attacker = Browser::new(&s.server);
    let authorize = attacker.start("discord").await?;
    let fresh = attacker
        .consent(&authorize, Some(&someone("Other")))
        .await?;
    let replayed = fresh.with("code", &code);
    let landed = attacker.finish(&replayed).await?;
    assert_eq!(login_error(&landed), Some(LoginError::OauthExchangeFailed));
    assert!(!attacker.has_cookie(SESSION_COOKIE));
    assert!(
        s.fake.refusals().iter().any(|r| r == "code already used"),
        "{:?}",
        s.fake.refusals()
    );
    Ok(())
}

#[tokio::test]
async fn a_code_redeemed_with_another_logins_pkce_verifier_fails_with_oauth_exchange_failed(
) -> Result {
    let s = oauth().await;
    // The victim's login gets a code, which the attacker injects into their own login.
    let mut victim = Browser::new(&s.server);
    let authorize = victim.start("google").await?;
    let stolen = victim.consent(&authorize, Some(&someone("Victim"))).await?;
    let mut attacker = Browser::new(&s.server);
    let authorize = attacker.start("google").await?;
    let own = attacker
        .consent(&authorize, Some(&someone("Attacker")))
        .await?;
    let injected = own.with("code", stolen.param("code").unwrap_or_default());
    let landed = attacker.finish(&injected).await?;
    assert_eq!(login_error(&landed), Some(LoginError::OauthExchangeFailed));
    assert!(!attacker.has_cookie(SESSION_COOKIE));
    assert!(
        s.fake
            .refusals()
            .iter()
            .any(|r| r == "PKCE verifier does not match the challenge"),
        "{:?}",
        s.fake.refusals()
    );
    Ok(())
}

#[tokio::test]
async fn declining_at_the_provider_returns_oauth_denied_and_an_unknown_provider_is_not_configured(
) -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    let authorize = browser.start("github").await?;
    let callback = browser.consent(&authorize, None).await?;
    assert_eq!(callback.param("error"), Some("access_denied"));
    let landed = browser.finish(&callback).await?;
    assert_eq!(login_error(&landed), Some(LoginError::OauthDenied));

    let response = browser
        .request(reqwest::Method::GET, "/api/auth/myspace/start")
        .await?;
    let landed = e2e::login::location(&response, 302)?;
    assert_eq!(
        login_error(&landed),
        Some(LoginError::ProviderNotConfigured)
    );
    Ok(())
}

#[tokio::test]
async fn an_unverified_email_is_never_linked_to_the_account_that_owns_it_but_a_verified_one_is(
) -> Result {
    let s = oauth().await;
    let email = format!("{}@example.com", unique("owner"));
    let owner = Browser::new(&s.server)
        .login("github", &FakeUser::verified("Owner", &email))
        .await?;

    let claimant = FakeUser::verified("Claimant", &email).unverified();
    let unverified = Browser::new(&s.server).login("discord", &claimant).await?;
    assert_ne!(
        unverified.user_id, owner.user_id,
        "an unverified email must not reach someone else's account"
    );
    assert_eq!(unverified.providers, vec![Provider::Discord]);

    let verified = Browser::new(&s.server)
        .login("google", &FakeUser::verified("Owner", &email))
        .await?;
    assert_eq!(
        verified.user_id, owner.user_id,
        "same verified email: linked"
    );
    let mut providers = verified.providers.clone();
    providers.sort_by_key(|p| p.as_str());
    assert_eq!(providers, vec![Provider::Github, Provider::Google]);
    Ok(())
}

#[tokio::test]
async fn a_signed_in_account_links_a_second_provider_and_may_unlink_any_but_the_last() -> Result {
    let s = oauth().await;
    // Unverified emails, so no email rule can tie the identities together again.
    let email = format!("{}@example.com", unique("linker"));
    let on_github = FakeUser::verified("Linker", &email).unverified();
    let mut browser = Browser::new(&s.server);
    let first = browser.login("github", &on_github).await?;
    // Signing in with another provider while signed in links it to this account.
    let on_discord = FakeUser::verified("Linker", &email).unverified();
    let linked = browser.login("discord", &on_discord).await?;
    assert_eq!(linked.user_id, first.user_id);
    assert_eq!(linked.providers, vec![Provider::Discord, Provider::Github]);

    let unlink = |provider: &str| format!("/api/auth/identities/{provider}");
    let response = browser
        .request(reqwest::Method::DELETE, &unlink("github"))
        .await?;
    ensure!(response.status() == 200, "unlink: {}", response.status());
    let after: shared::protocol::http::SessionInfo = response.json().await?;
    assert_eq!(after.providers, vec![Provider::Discord]);

    // The last way in, a provider that is not linked, and one that does not exist are refused.
    let last = browser
        .request(reqwest::Method::DELETE, &unlink("discord"))
        .await?;
    expect_error(last, ErrorCode::Conflict).await?;
    let absent = browser
        .request(reqwest::Method::DELETE, &unlink("google"))
        .await?;
    expect_error(absent, ErrorCode::NotFound).await?;
    let unknown = browser
        .request(reqwest::Method::DELETE, &unlink("myspace"))
        .await?;
    expect_error(unknown, ErrorCode::NotFound).await?;
    assert_eq!(
        browser.session_info().await?.providers,
        vec![Provider::Discord]
    );

    // The unlinked GitHub identity no longer leads to this account.
    let elsewhere = Browser::new(&s.server).login("github", &on_github).await?;
    assert_ne!(elsewhere.user_id, first.user_id);
    // A guest has no identities to unlink.
    let guest = Session::create(&s.server, "Guest").await?;
    let refused = guest
        .request(reqwest::Method::DELETE, &unlink("github"))
        .send()
        .await?;
    expect_error(refused, ErrorCode::Unauthorized).await?;
    Ok(())
}

#[tokio::test]
async fn a_guest_who_signs_in_keeps_their_id_and_messages_and_the_old_guest_cookie_stops_working(
) -> Result {
    let s = oauth().await;
    let guest = Session::create(&s.server, "Guest Gus").await?;
    let room = guest.new_room().await?;
    let (mut socket, _) = guest.join(&room.slug, None).await?;
    let (seq, _) = socket.post("c1", "written as a guest").await?;
    socket.close().await;

    let mut browser = Browser::with_guest(&s.server, &guest);
    let me = browser.login("github", &someone("Gus")).await?;
    assert_eq!(
        me.user_id,
        guest.user_id(),
        "the account takes the guest's id"
    );
    assert!(
        !browser.has_cookie(e2e::client::COOKIE_NAME),
        "the guest cookie is cleared"
    );

    let account = browser.session(&s.server).await?;
    let (socket, joined) = account.join(&room.slug, None).await?;
    let mine = joined
        .history
        .iter()
        .flat_map(|h| h.messages.iter())
        .find(|m| m.seq == seq)
        .map(|m| m.author.id.clone());
    assert_eq!(
        mine.as_deref(),
        Some(guest.user_id()),
        "the message is still theirs"
    );
    socket.close().await;

    // A copy of the old guest cookie no longer acts as that (now signed-in) user: not over the
    // API, and not in a room that admitted it a moment ago either.
    let response = guest.get("/api/session").await?;
    expect_error(response, ErrorCode::Unauthorized).await?;
    let refused = guest.upgrade_refusal(&room.slug).await?;
    assert_eq!(refused.map(|r| r.status), Some(401));
    Ok(())
}

#[tokio::test]
async fn revoking_a_session_closes_its_open_socket_at_once_and_its_cookie_stops_working() -> Result
{
    let s = oauth().await;
    let user = someone("Rita");
    let mut laptop = Browser::new(&s.server);
    laptop.login("github", &user).await?;
    let mut phone = Browser::new(&s.server);
    phone.login("github", &user).await?;

    let on_laptop = laptop.session(&s.server).await?;
    let room = on_laptop.new_room().await?;
    let (mut socket, _) = on_laptop.join(&room.slug, None).await?;
    // A second tab: the room admits it on the verification it remembers from the first.
    let mut second_tab = on_laptop.connect(&room.slug).await?;
    assert!(second_tab.reused_verification());

    let devices = phone.devices().await?;
    assert_eq!(devices.sessions.len(), 2, "{devices:?}");
    assert_eq!(devices.sessions.iter().filter(|d| d.current).count(), 1);
    let laptop_id = devices
        .sessions
        .iter()
        .find(|d| !d.current)
        .map(|d| d.id.clone())
        .unwrap_or_default();

    let response = phone
        .request(
            reqwest::Method::DELETE,
            &format!("/api/sessions/{laptop_id}"),
        )
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let (code, reason, _) = socket.expect_close(Duration::from_secs(10)).await?;
    assert_eq!(code, Some(close::UNAUTHORIZED));
    assert_eq!(reason, "unauthorized");
    let (code, _, _) = second_tab.expect_close(Duration::from_secs(10)).await?;
    assert_eq!(code, Some(close::UNAUTHORIZED));

    // Seconds after it was verified, the room no longer admits the session on that memory.
    expect_error(
        on_laptop.get("/api/session").await?,
        ErrorCode::Unauthorized,
    )
    .await?;
    let refused = on_laptop.upgrade_refusal(&room.slug).await?;
    assert_eq!(refused.map(|r| r.status), Some(401));
    // The phone is untouched; revoking the same session again finds nothing.
    assert_eq!(phone.devices().await?.sessions.len(), 1);
    let again = phone
        .request(
            reqwest::Method::DELETE,
            &format!("/api/sessions/{laptop_id}"),
        )
        .await?;
    expect_error(again, ErrorCode::NotFound).await?;
    Ok(())
}

#[tokio::test]
async fn revoke_all_others_keeps_only_this_session_and_no_account_can_revoke_anothers() -> Result {
    let s = oauth().await;
    let user = someone("Otto");
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let mut b = Browser::new(&s.server);
        b.login("discord", &user).await?;
        browsers.push(b);
    }
    let mut stranger = Browser::new(&s.server);
    stranger.login("discord", &someone("Stranger")).await?;
    let victim_id = browsers[0].devices().await?.sessions[0].id.clone();
    let response = stranger
        .request(
            reqwest::Method::DELETE,
            &format!("/api/sessions/{victim_id}"),
        )
        .await?;
    expect_error(response, ErrorCode::NotFound).await?;
    assert_eq!(browsers[0].devices().await?.sessions.len(), 3);

    let response = browsers[2]
        .request(reqwest::Method::POST, "/api/sessions/revoke-others")
        .await?;
    let revoked: shared::auth::Revoked = response.json().await?;
    assert_eq!(revoked.revoked, 2);
    let left = browsers[2].devices().await?;
    assert_eq!(left.sessions.len(), 1);
    assert!(left.sessions[0].current);
    assert!(browsers[0].session_info().await.is_err());

    // A guest has no devices page.
    let guest = Session::create(&s.server, "Guest").await?;
    expect_error(guest.get("/api/sessions").await?, ErrorCode::Unauthorized).await?;
    Ok(())
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_not_only_the_cookie() -> Result {
    let s = oauth().await;
    let mut browser = Browser::new(&s.server);
    browser.login("google", &someone("Sam")).await?;
    let copy = browser.cookie_header();
    let response = browser
        .request(reqwest::Method::DELETE, "/api/session")
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    assert!(!browser.has_cookie(SESSION_COOKIE));
    let replay = e2e::client::http()
        .get(format!("{}/api/session", s.server.url()))
        .header("Cookie", copy)
        .send()
        .await?;
    expect_error(replay, ErrorCode::Unauthorized).await?;
    Ok(())
}

#[tokio::test]
async fn a_link_started_before_signing_out_never_completes_for_that_account_or_the_next_person(
) -> Result {
    let s = oauth().await;
    let email = format!("{}@example.com", unique("leaver"));
    let mut first = Browser::new(&s.server);
    let me = first
        .login("github", &FakeUser::verified("Leaver", &email).unverified())
        .await?;
    // A link to Discord is started, then the person signs out before finishing it.
    let authorize = first.start("discord").await?;
    assert!(first.has_cookie(STATE_COOKIE));
    let state_cookie = first
        .cookie_header()
        .split("; ")
        .find(|c| c.starts_with(&format!("{STATE_COOKIE}=")))
        .map(str::to_owned)
        .expect("the state cookie");
    let response = first
        .request(reqwest::Method::DELETE, "/api/session")
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    assert!(
        !first.has_cookie(STATE_COOKIE),
        "signing out clears the pending link's cookie"
    );

    // Someone else at the same browser, holding a copy of that state cookie, completes the
    // provider's consent with their own Discord account: it must not join the first account.
    let other = FakeUser::verified("Next", &format!("{}@example.com", unique("next"))).unverified();
    let mut next = Browser::with_cookies(&s.server, &state_cookie);
    let callback = next.consent(&authorize, Some(&other)).await?;
    let landed = next.finish(&callback).await?;
    assert_eq!(
        login_error(&landed),
        Some(LoginError::OauthStateMismatch),
        "landed at {landed}"
    );
    assert!(!next.has_cookie(SESSION_COOKIE));
    // Their Discord identity leads to an account of its own, not to the one that signed out.
    let theirs = Browser::new(&s.server).login("discord", &other).await?;
    assert_ne!(theirs.user_id, me.user_id);
    assert_eq!(theirs.providers, vec![Provider::Discord]);
    Ok(())
}

// ---- The local account of a dev server ----

static DEV: OnceCell<DevServer> = OnceCell::const_new();

async fn dev() -> &'static DevServer {
    DevServer::shared(&DEV, || DevOptions::default().var("DEV_LOGIN", "true")).await
}

async fn local_login(server: &DevServer, name: &str) -> Result<Browser> {
    let mut browser = Browser::new(server);
    let response = browser
        .http_post_json("/api/auth/local", &serde_json::json!({ "name": name }))
        .await?;
    ensure!(
        response.status().as_u16() == 200,
        "local login answered {}",
        response.status()
    );
    Ok(browser)
}

#[tokio::test]
async fn a_dev_server_offers_the_local_account_which_signs_in_by_name() -> Result {
    let server = dev().await;
    let mut browser = Browser::new(server);
    let options = browser.login_options().await?;
    assert!(options.dev_login);
    assert!(options.providers.is_empty());

    let name = unique("Dev");
    let mut first = local_login(server, &name).await?;
    let me = first.session_info().await?;
    assert!(me.signed_in);
    assert_eq!(me.providers, vec![Provider::Local]);
    let mut second = local_login(server, &name).await?;
    assert_eq!(second.session_info().await?.user_id, me.user_id);
    let devices = second.devices().await?;
    assert_eq!(devices.sessions.len(), 2, "a new session at every login");
    Ok(())
}

/// `GET /api/session?optional=1` (`SessionState::PATH`), expecting 200: the session, if any.
async fn session_state(browser: &mut Browser) -> Result<Option<SessionInfo>> {
    let response = browser
        .request(reqwest::Method::GET, SessionState::PATH)
        .await?;
    let status = response.status().as_u16();
    ensure!(
        status == 200,
        "GET {} answered {status}: {}",
        SessionState::PATH,
        response.text().await.unwrap_or_default()
    );
    let state: SessionState = response.json().await?;
    Ok(state.session)
}

#[tokio::test]
async fn asking_for_an_optional_session_answers_200_with_none_for_a_new_visitor_and_plain_get_still_401(
) -> Result {
    let server = dev().await;
    // A new visitor: no session, and no failed request for the browser to log.
    let mut visitor = Browser::new(server);
    assert_eq!(session_state(&mut visitor).await?, None);
    // Plain GET /api/session keeps its contract for every other client.
    let plain = visitor
        .request(reqwest::Method::GET, "/api/session")
        .await?;
    expect_error(plain, ErrorCode::Unauthorized).await?;
    // A cookie that is not a session is none too.
    let mut forged = Browser::with_cookies(server, &format!("{SESSION_COOKIE}=not-a-session"));
    assert_eq!(session_state(&mut forged).await?, None);

    // A guest gets their session, the same as plain GET answers.
    let guest = Session::create(server, &unique("Optional")).await?;
    let mut guest_browser = Browser::with_guest(server, &guest);
    let got = session_state(&mut guest_browser).await?;
    assert_eq!(got.as_ref(), Some(&guest.info));
    assert_eq!(got, Some(guest_browser.session_info().await?));

    // A signed-in account gets theirs, providers included; signed out, none again.
    let mut account = local_login(server, &unique("Optional")).await?;
    let me = session_state(&mut account)
        .await?
        .expect("a signed-in account has a session");
    assert!(me.signed_in);
    assert_eq!(me.providers, vec![Provider::Local]);
    assert_eq!(me, account.session_info().await?);
    let cookies = account.cookie_header();
    let signed_out = account
        .request(reqwest::Method::DELETE, "/api/session")
        .await?;
    ensure!(
        signed_out.status().is_success(),
        "sign-out answered {}",
        signed_out.status()
    );
    // The copy of the cookie the browser held is no session any more.
    let mut copy = Browser::with_cookies(server, &cookies);
    assert_eq!(session_state(&mut copy).await?, None);
    expect_error(
        copy.request(reqwest::Method::GET, "/api/session").await?,
        ErrorCode::Unauthorized,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_local_account_is_refused_unless_the_request_is_addressed_to_localhost() -> Result {
    let server = dev().await;
    let response = e2e::client::http()
        .post(format!("{}/api/auth/local", server.url()))
        .header("Host", "chat.example.com")
        .json(&serde_json::json!({ "name": "Eve" }))
        .send()
        .await?;
    expect_error(response, ErrorCode::Forbidden).await?;
    Ok(())
}

#[tokio::test]
async fn a_server_with_providers_configured_offers_no_local_account_even_with_dev_login() -> Result
{
    let s = oauth().await;
    // This server sets DEV_LOGIN=true, and its configured providers switch the local account
    // off. (A server without DEV_LOGIN: the wrangler.toml check in tests/config.rs.)
    let response = e2e::client::http()
        .post(format!("{}/api/auth/local", s.server.url()))
        .json(&serde_json::json!({ "name": "Eve" }))
        .send()
        .await?;
    expect_error(response, ErrorCode::Forbidden).await?;
    Ok(())
}

#[tokio::test]
async fn an_idle_session_expires_and_then_opens_neither_the_api_nor_a_socket() -> Result {
    let server = DevServer::start(
        DevOptions::default()
            .var("DEV_LOGIN", "true")
            .var("SESSION_IDLE_SECONDS", 2),
    )
    .await?;
    let mut browser = local_login(&server, "Idle").await?;
    let session = browser.session(&server).await?;
    let room = session.new_room().await?;
    let (first, _) = session.join(&room.slug, None).await?;
    first.close().await;
    // Past the idle time; also past what the room may reuse of that connect's verification,
    // which ends with the session however recent it is (not a timing assertion: the session must be over after it).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    expect_error(session.get("/api/session").await?, ErrorCode::Unauthorized).await?;
    let refused = session.upgrade_refusal(&room.slug).await?;
    assert_eq!(refused.map(|r| r.status), Some(401));
    assert!(browser.devices().await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_key_rotation_keeps_sessions_valid_and_dropping_the_old_key_ends_them() -> Result {
    let mut server = DevServer::start(DevOptions::default().var("DEV_LOGIN", "true")).await?;
    let mut browser = local_login(&server, "Rot").await?;
    let before = browser.session_info().await?;
    // The first account of a fresh install is its admin; the next is not.
    assert_eq!(role(&mut browser).await?, "admin");
    let mut second = local_login(&server, "Second").await?;
    assert_eq!(role(&mut second).await?, "user");
    let guest = Session::create(&server, "Guest").await?;

    server.rotate_secret(true);
    server.restart().await?;
    let after = browser.session_info().await?;
    assert_eq!(
        after.user_id, before.user_id,
        "signed-in session survives the rotation"
    );
    assert_eq!(
        Session::from_cookie(&server, guest.cookie())
            .await?
            .user_id(),
        guest.user_id(),
        "guest session survives the rotation"
    );

    server.rotate_secret(false);
    server.restart().await?;
    assert!(
        browser.session_info().await.is_err(),
        "two rotations later the old key is gone"
    );
    Ok(())
}

#[tokio::test]
async fn only_a_verified_email_on_the_admin_list_makes_a_new_account_an_admin() -> Result {
    let s = oauth().await;
    // Someone else first (the install's first account is always an admin).
    Browser::new(&s.server)
        .login("google", &someone("Nobody"))
        .await?;
    // Unverified: not linked to anyone, and not an admin either.
    let claimant = FakeUser::verified("Claimant", "boss@example.com").unverified();
    let mut claimant_browser = Browser::new(&s.server);
    let unverified = claimant_browser.login("discord", &claimant).await?;
    assert_eq!(role(&mut claimant_browser).await?, "user");

    let boss = FakeUser::verified("Boss", "boss@example.com");
    let mut boss_browser = Browser::new(&s.server);
    let verified = boss_browser.login("github", &boss).await?;
    assert_ne!(verified.user_id, unverified.user_id);
    assert_eq!(role(&mut boss_browser).await?, "admin");

    Ok(())
}

// ---- Guests and the author card (issue 10: items 6 and 7) ----

/// The `Max-Age` of the `Set-Cookie` named `name`.
fn max_age(set_cookies: &[String], name: &str) -> Option<i64> {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))?
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age=")?.parse().ok())
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect()
}

#[tokio::test]
async fn a_guest_cookie_lives_thirty_days_at_most_not_a_year() -> Result {
    let server = dev().await;
    let response = e2e::client::http()
        .post(format!("{}/api/session", server.url()))
        .json(&serde_json::json!({ "name": "Gus" }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let age = max_age(&set_cookies(&response), e2e::client::COOKIE_NAME);
    assert!(
        age.is_some_and(|a| a > 0 && a <= 30 * 24 * 3600),
        "guest cookie Max-Age {age:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_guest_session_ends_at_its_lifetime_even_if_the_browser_keeps_the_cookie() -> Result {
    let server = DevServer::start(DevOptions::default().var("GUEST_SESSION_SECONDS", 2)).await?;
    let guest = Session::create(&server, "Brief").await?;
    let room = guest.new_room().await?;
    // Past the lifetime (not a timing assertion: the session must be over after it).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    expect_error(guest.get("/api/session").await?, ErrorCode::Unauthorized).await?;
    let refused = guest.upgrade_refusal(&room.slug).await?;
    assert_eq!(refused.map(|r| r.status), Some(401));
    Ok(())
}

#[tokio::test]
async fn a_signed_out_guests_cookie_is_revoked_on_the_server_not_only_cleared() -> Result {
    let server = dev().await;
    let guest = Session::create(server, "Leaving").await?;
    let copy = guest.cookie().to_owned();
    let mut browser = Browser::with_guest(server, &guest);
    let response = browser
        .request(reqwest::Method::DELETE, "/api/session")
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    assert!(!browser.has_cookie(e2e::client::COOKIE_NAME));
    // A copy of the cookie (another tab's, or a stolen one) opens nothing any more.
    let replay = e2e::client::http()
        .get(format!("{}/api/session", server.url()))
        .header("Cookie", &copy)
        .send()
        .await?;
    expect_error(replay, ErrorCode::Unauthorized).await?;
    // Another guest is unaffected.
    let other = Session::create(server, "Staying").await?;
    assert_eq!(other.get("/api/session").await?.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn a_guest_who_signs_out_has_their_open_sockets_closed_at_once() -> Result {
    let server = dev().await;
    let guest = Session::create(server, "Leaving Soon").await?;
    let room = guest.new_room().await?;
    // An open room (another tab, or someone holding a copy of the cookie).
    let (mut socket, _) = guest.join(&room.slug, None).await?;
    let other = Session::create(server, "Staying On").await?;
    let (mut staying, _) = other.join(&room.slug, None).await?;
    // The room remembers the guest's verification: a reconnect now would not be checked again.
    let mut reconnected = guest.connect(&room.slug).await?;
    assert!(reconnected.reused_verification());
    reconnected.hello(None).await?;

    let mut browser = Browser::with_guest(server, &guest);
    let response = browser
        .request(reqwest::Method::DELETE, "/api/session")
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    let (code, reason, _) = socket.expect_close(Duration::from_secs(10)).await?;
    assert_eq!(code, Some(close::UNAUTHORIZED));
    assert_eq!(reason, "unauthorized");
    // ...and forgot it: the copy of the cookie opens nothing.
    let refused = guest.upgrade_refusal(&room.slug).await?;
    assert_eq!(refused.map(|r| r.status), Some(401));
    // Another guest in the room stays connected.
    staying.post("still-here", "still here").await?;
    Ok(())
}

#[tokio::test]
async fn a_reconnect_within_a_minute_is_admitted_on_the_verification_the_room_remembers() -> Result
{
    let server = dev().await;
    let guest = Session::create(server, "Returning Guest").await?;
    let account = local_login(server, "Returning Account")
        .await?
        .session(server)
        .await?;
    let room = guest.new_room().await?;
    let elsewhere = guest.new_room().await?;
    for who in [&guest, &account] {
        let (first, joined) = who.join(&room.slug, None).await?;
        assert!(
            !first.reused_verification(),
            "a first join is verified in full"
        );
        first.close().await;
        let mut again = who.connect(&room.slug).await?;
        assert!(
            again.reused_verification(),
            "a reconnect seconds later is not"
        );
        // The same person, as the full verification found them.
        let rejoined = again.hello(None).await?;
        assert_eq!(rejoined.you, joined.you);
        // Remembered by that room only.
        let other_room = who.connect(&elsewhere.slug).await?;
        assert!(!other_room.reused_verification());
    }
    // Nobody else's cookies match what the room remembers.
    let stranger = Session::create(server, "Stranger").await?;
    assert!(!stranger.connect(&room.slug).await?.reused_verification());
    Ok(())
}

#[tokio::test]
async fn an_account_renamed_while_its_rooms_are_open_shows_the_new_name_there_and_on_reconnect(
) -> Result {
    let server = dev().await;
    let mut browser = local_login(server, "Old Name").await?;
    let session = browser.session(server).await?;
    let room = session.new_room().await?;
    let (first, _) = session.join(&room.slug, None).await?;
    first.close().await;
    // Someone else has the room open.
    let (mut watching, _) = Session::create(server, "Watching")
        .await?
        .join(&room.slug, None)
        .await?;
    let response = browser
        .http_post_json("/api/session", &serde_json::json!({ "name": "New Name" }))
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    // The open room shows the new name at once...
    let (renamed, _) = watching
        .expect_until(Duration::from_secs(10), |m| match m {
            ServerMessage::ProfileUpdated { member } => Some(member.name.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(renamed, "New Name");
    // ...and, though the session cookie did not change, the room verifies the next connect.
    let mut again = session.connect(&room.slug).await?;
    assert!(!again.reused_verification());
    assert_eq!(again.hello(None).await?.you.name, "New Name");
    Ok(())
}

#[tokio::test]
async fn a_renamed_guest_keeps_the_cookies_lifetime_and_revocation() -> Result {
    let server = dev().await;
    let guest = Session::create(server, "Before").await?;
    let response = guest
        .post("/api/session", &serde_json::json!({ "name": "After" }))
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let renamed = set_cookies(&response)
        .into_iter()
        .filter_map(|c| c.split(';').next().map(String::from))
        .find(|c| c.starts_with(&format!("{}=", e2e::client::COOKIE_NAME)))
        .expect("a renewed guest cookie");
    // Signing out with the renamed cookie also revokes the one issued before the rename.
    let response = e2e::client::http()
        .delete(format!("{}/api/session", server.url()))
        .header("Cookie", &renamed)
        .header("Origin", server.origin())
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    for cookie in [renamed.as_str(), guest.cookie()] {
        let replay = e2e::client::http()
            .get(format!("{}/api/session", server.url()))
            .header("Cookie", cookie)
            .send()
            .await?;
        expect_error(replay, ErrorCode::Unauthorized).await?;
    }
    Ok(())
}

#[tokio::test]
async fn display_names_with_bidi_or_invisible_characters_or_the_assistants_name_are_refused(
) -> Result {
    let server = dev().await;
    for name in [
        "\u{202E}nimda",
        "Ann\u{200B}",
        "\u{3164}",
        "Assistant",
        "assistant 🤖",
    ] {
        let response = e2e::client::http()
            .post(format!("{}/api/session", server.url()))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        expect_error(response, ErrorCode::InvalidInput)
            .await
            .map_err(|e| e.context(format!("POST /api/session {name:?}")))?;
    }
    // The profile page's rename and the local account take the same rule.
    let guest = Session::create(server, "Fine").await?;
    let response = guest
        .request(reqwest::Method::PUT, "/api/profile")
        .json(&serde_json::json!({ "name": "Assistant" }))
        .send()
        .await?;
    expect_error(response, ErrorCode::InvalidInput).await?;
    let response = e2e::client::http()
        .post(format!("{}/api/auth/local", server.url()))
        .json(&serde_json::json!({ "name": "A\u{2066}ssistant" }))
        .send()
        .await?;
    expect_error(response, ErrorCode::InvalidInput).await?;
    Ok(())
}

/// `GET /api/users/<id>` as `who`.
async fn card(who: &Session, id: &str) -> Result<serde_json::Value> {
    let response = who.get(&format!("/api/users/{id}")).await?;
    ensure!(
        response.status().as_u16() == 200,
        "card: {}",
        response.status()
    );
    Ok(response.json().await?)
}

#[tokio::test]
async fn the_author_card_says_whether_someone_is_a_guest_or_signed_in_and_with_what() -> Result {
    let server = dev().await;
    // Two people with the same name: one a guest, one signed in.
    let name = unique("Twin");
    let guest = Session::create(server, &name).await?;
    let mut browser = local_login(server, &name).await?;
    let account = browser.session(server).await?;
    let room = guest.new_room().await?;
    let (_a, _) = guest.join(&room.slug, None).await?;
    let (_b, _) = account.join(&room.slug, None).await?;

    let of_guest = card(&account, guest.user_id()).await?;
    assert_eq!(of_guest["name"], name.as_str());
    assert_eq!(of_guest["signed_in"], false, "{of_guest}");
    assert_eq!(of_guest["providers"], serde_json::json!([]), "{of_guest}");
    let of_account = card(&guest, account.user_id()).await?;
    assert_eq!(of_account["name"], name.as_str());
    assert_eq!(of_account["signed_in"], true, "{of_account}");
    assert_eq!(
        of_account["providers"],
        serde_json::json!(["local"]),
        "{of_account}"
    );
    Ok(())
}
