//! The Worker asking rooms questions on a user's behalf: one room's search or context, and the
//! fan-outs over every room the user belongs to (cross-room search, the room list's unread
//! counts), which run concurrently and stop waiting at a deadline, marking what is missing.

use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use serde::de::DeserializeOwned;
use shared::error::{ChatError, ErrorCode};
use shared::protocol::http::{ErrorBody, RoomUnread, SearchHit, SearchResults};
use shared::protocol::RoomInfo;
use shared::search;
use worker::{Delay, Env, Method, Request, RequestInit, Response};

use super::object::RoomQuery;
use crate::api::ROOMS_BINDING;
use crate::config;

/// How long a fan-out waits for the slowest room unless `SEARCH_DEADLINE_MS` says otherwise.
const DEADLINE_MS: u64 = 1_500;

/// The fan-out deadline.
pub fn deadline(env: &Env) -> Duration {
    let ms = config::string(env, "SEARCH_DEADLINE_MS")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEADLINE_MS);
    Duration::from_millis(ms)
}

/// Why a room did not answer.
pub enum Unanswered {
    /// It refused (the message is safe to show).
    Refused(ChatError),
    /// It failed (detail for the log).
    Failed(worker::Error),
}

impl From<worker::Error> for Unanswered {
    fn from(e: worker::Error) -> Self {
        Unanswered::Failed(e)
    }
}

/// Asks one room `/internal/<what>` and reads its JSON answer.
pub async fn ask<T: DeserializeOwned>(
    env: &Env,
    what: &str,
    query: &RoomQuery,
) -> Result<T, Unanswered> {
    let body = serde_json::to_string(query).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init(&format!("https://room.internal/internal/{what}"), &init)?;
    let stub = env
        .durable_object(ROOMS_BINDING)?
        .get_by_name(&query.room.slug)?;
    let mut response: Response = stub.fetch_with_request(req).await?;
    if response.status_code() >= 400 {
        return Err(match response.json::<ErrorBody>().await {
            Ok(body) => Unanswered::Refused(ChatError::new(body.code, body.message)),
            Err(e) => Unanswered::Failed(e),
        });
    }
    Ok(response.json().await?)
}

/// The query for one room.
pub fn room_query(room: &RoomInfo, user_id: &str) -> RoomQuery {
    RoomQuery {
        room: room.clone(),
        user_id: user_id.to_owned(),
        query: String::new(),
        limit: None,
        seq: None,
        count: None,
        loopback: false,
    }
}

/// Asks every room concurrently and returns the answers that came before the deadline, and the
/// slugs of the rooms that did not answer (late or failed; failures are logged). A room that
/// refuses (the user is banned there) adds nothing and is not missing.
pub async fn fan_out<T: DeserializeOwned>(
    env: &Env,
    what: &str,
    queries: Vec<RoomQuery>,
) -> (Vec<T>, Vec<String>) {
    let wait = deadline(env);
    let asks = queries.iter().map(|q| async move {
        let answer = Box::pin(ask::<T>(env, what, q));
        let timer = Box::pin(Delay::from(wait));
        match select(answer, timer).await {
            Either::Left((Ok(answer), _)) => Ok(Some(answer)),
            Either::Left((Err(Unanswered::Failed(e)), _)) => {
                worker::console_error!("{what} in {} failed: {e}", q.room.slug);
                Err(q.room.slug.clone())
            }
            // The room's answer is that this user gets nothing there (banned, say): not a
            // missing answer.
            Either::Left((Err(Unanswered::Refused(_)), _)) => Ok(None),
            Either::Right(_) => Err(q.room.slug.clone()),
        }
    });
    let mut answers = Vec::new();
    let mut missing = Vec::new();
    for result in join_all(asks).await {
        match result {
            Ok(Some(answer)) => answers.push(answer),
            Ok(None) => {}
            Err(slug) => missing.push(slug),
        }
    }
    (answers, missing)
}

/// Cross-room search: every room the user belongs to, merged by score.
pub async fn search_all(
    env: &Env,
    rooms: &[RoomInfo],
    user_id: &str,
    query: &str,
    limit: u32,
    loopback: bool,
) -> SearchResults {
    let queries = rooms
        .iter()
        .map(|room| RoomQuery {
            query: query.to_owned(),
            limit: Some(limit),
            loopback,
            ..room_query(room, user_id)
        })
        .collect();
    let (answers, missing): (Vec<SearchResults>, _) = fan_out(env, "search", queries).await;
    let per_room: Vec<Vec<SearchHit>> = answers.into_iter().map(|a| a.hits).collect();
    SearchResults {
        hits: search::merge_rooms(per_room, limit as usize),
        partial: !missing.is_empty(),
        missing,
    }
}

/// The user's unread counts in each of their rooms that answered in time.
pub async fn unread_all(
    env: &Env,
    rooms: &[RoomInfo],
    user_id: &str,
    loopback: bool,
) -> Vec<RoomUnread> {
    let queries = rooms
        .iter()
        .map(|room| RoomQuery {
            loopback,
            ..room_query(room, user_id)
        })
        .collect();
    fan_out(env, "unread", queries).await.0
}

/// A refusal from a room, or a failure, as an API error.
pub fn unanswered_error(e: Unanswered) -> crate::api::ApiError {
    match e {
        Unanswered::Refused(e) => e.into(),
        Unanswered::Failed(e) => e.into(),
    }
}

/// Shown when a search is refused before any room is asked.
pub fn empty_query() -> ChatError {
    ChatError::new(
        ErrorCode::InvalidInput,
        "Type something to search for, or a filter such as from:name or has:link.",
    )
}
