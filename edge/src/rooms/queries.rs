//! The Worker's fan-outs over every room a user belongs to (cross-room search, the room list's
//! unread counts): concurrent, cut at a deadline, with the rooms that did not answer named.

use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use shared::error::{ChatError, ErrorCode};
use shared::protocol::http::{RoomUnread, SearchHit, SearchResults};
use shared::protocol::RoomInfo;
use shared::search;
use worker::{Delay, Env};

use super::contract::{call, RoomCall, Search, Unanswered, Unread};
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

/// Asks every room concurrently and returns the answers that came before the deadline, and the
/// slugs of the rooms that did not answer (late or failed; failures are logged). A room that
/// refuses (the user is banned there) adds nothing and is not missing.
pub async fn fan_out<R: RoomCall>(
    env: &Env,
    requests: Vec<(String, R)>,
) -> (Vec<R::Response>, Vec<String>) {
    let wait = deadline(env);
    let asks = requests.into_iter().map(|(slug, request)| async move {
        let answer = Box::pin(call(env, &slug, request));
        let timer = Box::pin(Delay::from(wait));
        // Resolved before matching, so the late answer's future (which borrows the slug) is
        // dropped first.
        let outcome = match select(answer, timer).await {
            Either::Left((answer, _)) => Some(answer),
            Either::Right(_) => None,
        };
        match outcome {
            Some(Ok(answer)) => Ok(Some(answer)),
            Some(Err(Unanswered::Failed(e))) => {
                worker::console_error!("a fan-out to {slug} failed: {e}");
                Err(slug)
            }
            // The room's answer is that this user gets nothing there (banned, say): not a
            // missing answer.
            Some(Err(Unanswered::Refused(_))) => Ok(None),
            None => Err(slug),
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
    let requests = rooms
        .iter()
        .map(|room| {
            let search = Search {
                room: room.clone(),
                user_id: user_id.to_owned(),
                query: query.to_owned(),
                limit,
                loopback,
            };
            (room.slug.clone(), search)
        })
        .collect();
    let (answers, missing) = fan_out(env, requests).await;
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
    let requests = rooms
        .iter()
        .map(|room| {
            let unread = Unread {
                room: room.clone(),
                user_id: user_id.to_owned(),
                loopback,
            };
            (room.slug.clone(), unread)
        })
        .collect();
    fan_out(env, requests).await.0
}

/// A refusal from a room, or a failure, as an API error.
pub fn unanswered_error(e: Unanswered) -> crate::http::ApiError {
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
