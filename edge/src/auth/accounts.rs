//! Accounts in D1: users and the provider identities linked to them.
//!
//! Which user an identity signs in as, in order:
//! 1. the user it is already linked to;
//! 2. the signed-in user who started the login (adding a provider to an account);
//! 3. the user who owns the same email, when both this identity and that user's email are
//!    verified by their provider — never by an unverified email, which anyone can claim;
//! 4. a new user, whose id is the browser's guest id when it has one (so the messages written as
//!    a guest stay theirs). The first account of an install, and any account whose verified
//!    email is in `ADMIN_EMAILS`, is an admin.

use serde::Deserialize;
use shared::auth::{is_admin_email, normalize_email, Provider};
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, Env};

use crate::config;
use crate::directory::BINDING;

/// What a provider says about the person signing in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// Which provider.
    pub provider: Provider,
    /// The provider's stable id for the person.
    pub subject: String,
    /// Their email, if shared.
    pub email: Option<String>,
    /// Whether the provider verified that email.
    pub email_verified: bool,
    /// A display name for a new account.
    pub name: String,
}

/// Who is signing in besides the identity: the browser's guest id and signed-in account, as
/// captured when the login started.
#[derive(Debug, Clone, Default)]
pub struct SignInContext {
    /// The guest id of this browser, if it had one.
    pub guest_id: Option<String>,
    /// The account already signed in on this browser, if any (the identity is linked to it).
    pub account_id: Option<String>,
}

/// The outcome of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Signed in as this user.
    User(String),
    /// The identity's user is disabled.
    Disabled,
}

#[derive(Deserialize)]
struct UserIdRow {
    user_id: String,
}

#[derive(Deserialize)]
struct DisabledRow {
    disabled_at: Option<f64>,
}

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

fn opt(value: &Option<String>) -> JsValue {
    value.as_deref().map_or(JsValue::NULL, JsValue::from)
}

/// Finds or creates the user an identity signs in as (see the module docs for the order).
pub async fn sign_in(
    env: &Env,
    identity: &ExternalIdentity,
    context: &SignInContext,
    now: i64,
) -> worker::Result<SignIn> {
    let db = db(env)?;
    let email = identity.email.as_deref().map(normalize_email);
    let verified = identity.email_verified && email.is_some();
    let user_id = match linked_user(&db, identity).await? {
        Some(user_id) => {
            // Keep the identity's email current (a provider may verify it later).
            db.prepare(
                "UPDATE identities SET email = ?3, email_verified = ?4
                 WHERE provider = ?1 AND subject = ?2",
            )
            .bind(&[
                JsValue::from(identity.provider.as_str()),
                JsValue::from(identity.subject.as_str()),
                opt(&email),
                JsValue::from(verified as u8),
            ])?
            .run()
            .await?;
            user_id
        }
        None => {
            let existing = match &context.account_id {
                Some(account) => Some(account.clone()),
                None if verified => user_with_verified_email(&db, email.as_deref()).await?,
                None => None,
            };
            match existing {
                Some(user_id) => {
                    link(&db, identity, &user_id, &email, verified, now).await?;
                    user_id
                }
                None => create_user(env, &db, identity, context, &email, verified, now).await?,
            }
        }
    };
    let row: Option<DisabledRow> = db
        .prepare("SELECT disabled_at FROM users WHERE id = ?1")
        .bind(&[JsValue::from(user_id.as_str())])?
        .first(None)
        .await?;
    Ok(match row {
        Some(DisabledRow {
            disabled_at: Some(_),
        }) => SignIn::Disabled,
        _ => SignIn::User(user_id),
    })
}

async fn linked_user(
    db: &D1Database,
    identity: &ExternalIdentity,
) -> worker::Result<Option<String>> {
    let row: Option<UserIdRow> = db
        .prepare("SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2")
        .bind(&[
            JsValue::from(identity.provider.as_str()),
            JsValue::from(identity.subject.as_str()),
        ])?
        .first(None)
        .await?;
    Ok(row.map(|r| r.user_id))
}

async fn user_with_verified_email(
    db: &D1Database,
    email: Option<&str>,
) -> worker::Result<Option<String>> {
    let Some(email) = email else { return Ok(None) };
    let row: Option<UserIdRow> = db
        .prepare(
            "SELECT id AS user_id FROM users WHERE email = ?1 AND email_verified = 1
             UNION ALL
             SELECT user_id FROM identities WHERE email = ?1 AND email_verified = 1
             LIMIT 1",
        )
        .bind(&[JsValue::from(email)])?
        .first(None)
        .await?;
    Ok(row.map(|r| r.user_id))
}

async fn link(
    db: &D1Database,
    identity: &ExternalIdentity,
    user_id: &str,
    email: &Option<String>,
    verified: bool,
    now: i64,
) -> worker::Result<()> {
    db.prepare(
        "INSERT INTO identities (provider, subject, user_id, email, email_verified, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&[
        JsValue::from(identity.provider.as_str()),
        JsValue::from(identity.subject.as_str()),
        JsValue::from(user_id),
        opt(email),
        JsValue::from(verified as u8),
        JsValue::from(now as f64),
    ])?
    .run()
    .await?;
    Ok(())
}

async fn create_user(
    env: &Env,
    db: &D1Database,
    identity: &ExternalIdentity,
    context: &SignInContext,
    email: &Option<String>,
    verified: bool,
    now: i64,
) -> worker::Result<String> {
    let admin_emails = config::string(env, "ADMIN_EMAILS").unwrap_or_default();
    let listed_admin = email
        .as_deref()
        .is_some_and(|e| is_admin_email(&admin_emails, e, verified));
    // The guest id becomes the account id unless a user already has it (then that guest id
    // already became an account, and this is someone else's sign-in).
    let mut candidates = context.guest_id.iter().cloned().collect::<Vec<_>>();
    candidates.push(random_id());
    for user_id in candidates {
        // One batch is one transaction: the user and its identity exist together or not at all.
        // The role is decided inside the INSERT, so two first sign-ins racing on a fresh install
        // cannot both become admin.
        let statements = vec![
            db.prepare(
                "INSERT INTO users (id, name, email, email_verified, role, created_at)
                 SELECT ?1, ?2, ?3, ?4,
                        CASE WHEN ?5 = 1 OR NOT EXISTS (SELECT 1 FROM users)
                             THEN 'admin' ELSE 'user' END,
                        ?6
                 WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
            )
            .bind(&[
                JsValue::from(user_id.as_str()),
                JsValue::from(identity.name.as_str()),
                opt(email),
                JsValue::from(verified as u8),
                JsValue::from(listed_admin as u8),
                JsValue::from(now as f64),
            ])?,
            db.prepare(
                "INSERT INTO identities (provider, subject, user_id, email, email_verified,
                                         created_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE changes() = 1",
            )
            .bind(&[
                JsValue::from(identity.provider.as_str()),
                JsValue::from(identity.subject.as_str()),
                JsValue::from(user_id.as_str()),
                opt(email),
                JsValue::from(verified as u8),
                JsValue::from(now as f64),
            ])?,
        ];
        let results = db.batch(statements).await?;
        let created = results
            .first()
            .and_then(|r| r.meta().ok().flatten())
            .and_then(|m| m.changes)
            .unwrap_or_default()
            > 0;
        if created {
            // New accounts per minute on the analytics page (issue 12); best effort.
            crate::metrics::client::account_created(env).await;
            return Ok(user_id);
        }
    }
    Err(worker::Error::RustError(
        "could not create a user: every candidate id was taken".into(),
    ))
}

/// Whether a user id belongs to an account (then a guest cookie with that id no longer acts
/// as it: the person signs in instead).
pub async fn is_account(env: &Env, user_id: &str) -> worker::Result<bool> {
    #[derive(Deserialize)]
    struct One {
        #[allow(dead_code)]
        one: f64,
    }
    let row: Option<One> = db(env)?
        .prepare("SELECT 1 AS one FROM users WHERE id = ?1")
        .bind(&[JsValue::from(user_id)])?
        .first(None)
        .await?;
    Ok(row.is_some())
}

/// The providers linked to a user.
pub async fn providers(env: &Env, user_id: &str) -> worker::Result<Vec<Provider>> {
    #[derive(Deserialize)]
    struct Row {
        provider: Provider,
    }
    let rows: Vec<Row> = db(env)?
        .prepare("SELECT DISTINCT provider FROM identities WHERE user_id = ?1 ORDER BY provider")
        .bind(&[JsValue::from(user_id)])?
        .all()
        .await?
        .results()?;
    Ok(rows.into_iter().map(|r| r.provider).collect())
}

/// Removes a provider's identities from a user; returns how many were removed.
pub async fn unlink(env: &Env, user_id: &str, provider: Provider) -> worker::Result<usize> {
    let result = db(env)?
        .prepare("DELETE FROM identities WHERE user_id = ?1 AND provider = ?2")
        .bind(&[JsValue::from(user_id), JsValue::from(provider.as_str())])?
        .run()
        .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or_default())
}

/// An account's display name.
pub async fn name(env: &Env, user_id: &str) -> worker::Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
    }
    let row: Option<Row> = db(env)?
        .prepare("SELECT name FROM users WHERE id = ?1")
        .bind(&[JsValue::from(user_id)])?
        .first(None)
        .await?;
    Ok(row.map(|r| r.name))
}

/// Changes an account's display name.
pub async fn rename(env: &Env, user_id: &str, name: &str) -> worker::Result<()> {
    db(env)?
        .prepare("UPDATE users SET name = ?2 WHERE id = ?1")
        .bind(&[JsValue::from(user_id), JsValue::from(name)])?
        .run()
        .await?;
    Ok(())
}

/// 128 random bits, hex (the same form as guest ids).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
