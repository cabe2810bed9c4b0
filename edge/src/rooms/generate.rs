//! The room object's half of the assistant: runs the provider calls that the room's
//! [`Effect::Generate`] and [`Effect::Summarize`] ask for, feeds tokens back into
//! [`shared::room::Room`] (which decides what is sent and stored), aborts on Stop, enforces the
//! timeouts, and writes the analytics records to D1. No assistant rule lives here.
//!
//! Work runs inside the event handler that produced it (a socket message or the alarm): the
//! object stays awake while a provider call is open, and other sockets' frames are handled in
//! between, because the runtime delivers events while a handler awaits the network.

use std::cell::{RefCell, RefMut};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use shared::ai::{CompletionRequest, StreamItem, StreamReader};
use shared::error::{ChatError, ErrorCode};
use shared::protocol::{AnswerState, Seq, Vote};
use shared::room::assistant::{Record, Source};
use shared::room::{Effect, Failure, Room};
use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_log, AbortController, Delay, Env};

use super::semantic::Semantic;
use super::store::DurableSql;
use crate::ai::{Provider, SeenImage};
use crate::time::now;

/// The rate-limiting binding that holds each user's assistant budget across rooms.
const AI_LIMITER: &str = "AI_LIMITER";

/// A provider call to make.
pub enum Work {
    Generate {
        gen: u64,
        request: CompletionRequest,
    },
    Summarize {
        upto: Seq,
        request: CompletionRequest,
    },
    Record(Record),
    Remember {
        user_id: String,
        request: CompletionRequest,
        known: Vec<String>,
    },
}

/// How long the room waits on a provider.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the request to the first token.
    pub first_token_ms: i64,
    /// Between two chunks.
    pub idle_ms: i64,
    /// For a whole answer.
    pub total_ms: i64,
}

/// The assistant's runtime state in the room object.
pub struct AiRuntime {
    work: RefCell<VecDeque<Work>>,
    aborts: RefCell<HashMap<u64, AbortController>>,
    pub timeouts: Timeouts,
}

impl AiRuntime {
    pub fn new(timeouts: Timeouts) -> Self {
        AiRuntime {
            work: RefCell::new(VecDeque::new()),
            aborts: RefCell::new(HashMap::new()),
            timeouts,
        }
    }

    pub fn has_work(&self) -> bool {
        !self.work.borrow().is_empty()
    }

    /// Takes an assistant effect; returns it back if it is not one.
    pub fn take(&self, effect: Effect) -> Option<Effect> {
        match effect {
            Effect::Generate { gen, request, .. } => {
                self.work
                    .borrow_mut()
                    .push_back(Work::Generate { gen, request });
            }
            Effect::Summarize { upto, request } => {
                self.work
                    .borrow_mut()
                    .push_back(Work::Summarize { upto, request });
            }
            Effect::Record(record) => self.work.borrow_mut().push_back(Work::Record(record)),
            Effect::Remember {
                user_id,
                request,
                known,
            } => self.work.borrow_mut().push_back(Work::Remember {
                user_id,
                request,
                known,
            }),
            Effect::Cancel { gen } => {
                if let Some(controller) = self.aborts.borrow_mut().remove(&gen) {
                    controller.abort();
                }
            }
            other => return Some(other),
        }
        None
    }
}

/// What ended a stream early.
pub(super) enum Ended {
    /// The provider finished (or the room stopped the answer).
    Finished,
}

/// What the assistant's runtime needs of the room object: the room to step, the socket-side
/// effects of memory it learned, and the environment. The object implements it, so this module
/// does not depend on the object.
pub(super) trait AiHost {
    /// The runtime's state.
    fn ai(&self) -> &AiRuntime;
    /// The Worker's environment (provider settings, D1).
    fn env(&self) -> &Env;
    /// The room's slug.
    fn slug(&self) -> String;
    /// Runs one assistant step on the room and carries out its effects.
    fn with_room(
        &self,
        step: impl FnOnce(&mut Room<DurableSql>, i64) -> Result<Vec<Effect>, Failure>,
    );
    /// Runs a step that has no effects to carry out.
    fn with_room_quiet(&self, step: impl FnOnce(&mut Room<DurableSql>));
    /// The room, borrowed mutably.
    fn room_mut(&self) -> RefMut<'_, Option<Room<DurableSql>>>;
    /// Whether generation `gen` is still the one being written.
    fn is_running(&self, gen: u64) -> bool;
    /// When generation `gen`'s buffered text must go out.
    fn room_deadline(&self, gen: u64) -> Option<i64>;
    /// Adds facts to the memory every open connection of `user_id` carries.
    fn learned(&self, user_id: &str, facts: &[String]);
    /// Sends an entry to the logging Worker (after the handler; never waited on).
    fn log(&self, entry: shared::logs::LogEntry);
}

/// The assistant's provider work, for any [`AiHost`].
pub(super) trait AiWork: AiHost {
    /// Runs queued assistant work until none is left (a finished answer may start the next).
    async fn run_ai_work(&self) {
        loop {
            let work = self.ai().work.borrow_mut().pop_front();
            match work {
                None => return,
                Some(Work::Generate { gen, request }) => self.generate(gen, request).await,
                Some(Work::Summarize { upto, request }) => self.summarize(upto, request).await,
                Some(Work::Remember {
                    user_id,
                    request,
                    known,
                }) => {
                    // Memory calls count against the user's budget like answers.
                    if self.within_budget(&user_id).await {
                        self.remember(&user_id, request, &known).await;
                    }
                }
                Some(Work::Record(record)) => {
                    let slug = self.slug();
                    if let Err(e) = write_record(self.env(), &slug, &record).await {
                        console_error!("assistant analytics for {slug} not written: {e}");
                    }
                }
            }
        }
    }

    /// Whether `user_id` may make one more assistant call: the `AI_LIMITER` rate-limiting
    /// binding keyed by user, which every room consults, so the budget neither multiplies with
    /// the rooms a user is in nor resets when a room restarts (each room also keeps its own
    /// short-term limit). Without the binding, or if it fails, only the room's limit applies.
    async fn within_budget(&self, user_id: &str) -> bool {
        let Ok(limiter) = self.env().rate_limiter(AI_LIMITER) else {
            return true;
        };
        match limiter.limit(format!("ai:{user_id}")).await {
            Ok(outcome) => outcome.success,
            Err(e) => {
                console_error!("the assistant budget could not be checked: {e}");
                true
            }
        }
    }

    async fn generate(&self, gen: u64, request: CompletionRequest) {
        // Who asked: their budget, not the room's, pays for the answer.
        let asker = self
            .room_mut()
            .as_ref()
            .and_then(|room| room.assistant().asker(gen).map(str::to_owned));
        if let Some(asker) = asker {
            if !self.within_budget(&asker).await {
                let refused = ChatError::new(
                    ErrorCode::RateLimited,
                    "You have asked the assistant too often in the last minute; try again shortly.",
                );
                self.ai().aborts.borrow_mut().remove(&gen);
                self.with_room(|room, now| room.ai_finish(gen, Err(refused), now));
                return;
            }
        }
        let request = self.grounded(gen, request).await;
        // The room runs apart from any request: it reads the settings page's values itself.
        crate::settings::store::refresh(self.env()).await;
        let outcome = match Provider::from_env(self.env()) {
            Ok(provider) => {
                // A model that sees gets the question's images themselves; every model has
                // them in words (`attachment_facts`) in the prompt.
                let images = if provider.sees(crate::config::ai_vision(self.env())) {
                    crate::ai::read_images(self.env(), &self.slug(), &request.images).await
                } else {
                    Vec::new()
                };
                self.stream_answer(&provider, gen, &request, &images)
                    .await
                    .map(|Ended::Finished| Source {
                        provider: provider.name().into(),
                        model: provider.model().into(),
                    })
            }
            Err(err) => Err(err),
        };
        self.ai().aborts.borrow_mut().remove(&gen);
        if let Err(err) = &outcome {
            console_log!(
                "{}",
                serde_json::json!({"event": "ai_failed", "room": self.slug(), "code": err.code.as_str(), "detail": err.message})
            );
            self.log(crate::logs::provider_failure(
                &self.slug(),
                provider_name(self.env()),
                err,
            ));
        }
        self.with_room(|room, now| room.ai_finish(gen, outcome, now));
    }

    /// In production, the messages Vectorize finds nearest in meaning to the question join
    /// the full-text ones as the answer's sources (fused by rank, `Room::ai_reground`). Without
    /// the binding, or if the query fails, the full-text sources stand.
    async fn grounded(&self, gen: u64, request: CompletionRequest) -> CompletionRequest {
        let Some(semantic) = Semantic::from_env(self.env()) else {
            return request;
        };
        let question = self
            .room_mut()
            .as_ref()
            .and_then(|room| room.ai_retrieval(gen).map(str::to_owned));
        let Some(question) = question else {
            return request;
        };
        let near = match semantic.query(&self.slug(), &question).await {
            Ok(near) => near,
            Err(e) => {
                console_error!("semantic retrieval for {} failed: {e}", self.slug());
                return request;
            }
        };
        let mut regrounded = None;
        self.with_room_quiet(|room| match room.ai_reground(gen, &near) {
            Ok(request) => regrounded = request,
            Err(e) => console_error!("the answer's sources were not fused: {e:?}"),
        });
        regrounded.unwrap_or(request)
    }

    /// Reads the provider's stream into the room until it ends, fails, times out, or the
    /// room stops this generation.
    async fn stream_answer(
        &self,
        provider: &Provider,
        gen: u64,
        request: &CompletionRequest,
        images: &[SeenImage],
    ) -> Result<Ended, ChatError> {
        let controller = AbortController::default();
        let signal = controller.signal();
        self.ai().aborts.borrow_mut().insert(gen, controller);
        let timeouts = self.ai().timeouts;
        let started = now();
        // The first-token limit also covers waiting for the response headers.
        let headers = Delay::from(Duration::from_millis(timeouts.first_token_ms.max(1) as u64));
        let mut stream = match select(
            Box::pin(provider.stream(self.env(), request, images, &signal)),
            headers,
        )
        .await
        {
            Either::Left((stream, _)) => stream?,
            Either::Right(_) => {
                return Err(ChatError::new(
                    ErrorCode::AiTimeout,
                    "The AI provider did not start answering in time.",
                ))
            }
        };
        let mut reader = StreamReader::new(provider.format());
        let mut got_token = false;
        let mut last_chunk = now();
        loop {
            if !self.is_running(gen) {
                return Ok(Ended::Finished); // Stopped: the room already posted the end.
            }
            let t = now();
            let limit = if got_token {
                (last_chunk + timeouts.idle_ms).min(started + timeouts.total_ms)
            } else {
                started + timeouts.first_token_ms
            };
            if t >= limit {
                return Err(ChatError::new(
                    ErrorCode::AiTimeout,
                    if got_token {
                        "The AI provider stopped sending; the answer is cut short."
                    } else {
                        "The AI provider did not start answering in time."
                    },
                ));
            }
            // Wake for the next chunk, the next batch deadline, or a timeout check.
            let deadline = self
                .room_deadline(gen)
                .map_or(limit, |d| d.min(limit))
                .min(t + 250);
            let wait = Delay::from(Duration::from_millis((deadline - t).max(1) as u64));
            let items = match select(stream.next(), wait).await {
                Either::Left((Some(Ok(bytes)), _)) => {
                    last_chunk = now();
                    reader.push(&bytes)
                }
                Either::Left((Some(Err(e)), _)) => {
                    if !self.is_running(gen) {
                        return Ok(Ended::Finished);
                    }
                    return Err(ChatError::new(
                        ErrorCode::AiUnavailable,
                        format!("The AI provider's stream broke: {e}"),
                    ));
                }
                Either::Left((None, _)) => {
                    let mut items = reader.finish();
                    if !reader.is_done() {
                        items.push(StreamItem::Done);
                    }
                    items
                }
                Either::Right(_) => {
                    self.with_room(|room, now| room.ai_tick(gen, now));
                    continue;
                }
            };
            for item in items {
                match item {
                    StreamItem::Token(text) => {
                        got_token = true;
                        self.with_room(|room, now| room.ai_token(gen, &text, now));
                    }
                    StreamItem::Usage(usage) => {
                        self.with_room_quiet(|room| room.ai_usage(gen, usage))
                    }
                    StreamItem::Done => return Ok(Ended::Finished),
                    StreamItem::Error(message) => {
                        return Err(ChatError::new(ErrorCode::AiFailed, message));
                    }
                }
            }
        }
    }

    /// A whole (non-streamed to anyone) completion, for the summary and memory.
    async fn complete(&self, request: &CompletionRequest) -> Result<String, ChatError> {
        crate::settings::store::refresh(self.env()).await;
        let provider = Provider::from_env(self.env())?;
        let signal = AbortController::default().signal();
        // Summaries and memory are about words: no images.
        let mut stream = provider.stream(self.env(), request, &[], &signal).await?;
        let mut reader = StreamReader::new(provider.format());
        let mut text = String::new();
        let deadline = now() + self.ai().timeouts.total_ms;
        while now() < deadline && !reader.is_done() {
            let items = match stream.next().await {
                Some(Ok(bytes)) => reader.push(&bytes),
                Some(Err(e)) => {
                    return Err(ChatError::new(ErrorCode::AiUnavailable, e.to_string()))
                }
                None => reader.finish(),
            };
            let ended = items.is_empty() && reader.is_done();
            for item in items {
                match item {
                    StreamItem::Token(t) => text.push_str(&t),
                    StreamItem::Error(e) => return Err(ChatError::new(ErrorCode::AiFailed, e)),
                    StreamItem::Usage(_) | StreamItem::Done => {}
                }
            }
            if ended {
                break;
            }
        }
        Ok(text)
    }

    async fn summarize(&self, upto: Seq, request: CompletionRequest) {
        let text = match self.complete(&request).await {
            Ok(text) => Some(text),
            Err(e) => {
                console_error!("room summary failed: {e}");
                self.log(crate::logs::provider_failure(
                    &self.slug(),
                    provider_name(self.env()),
                    &e,
                ));
                None
            }
        };
        let mut room = self.room_mut();
        if let Some(room) = room.as_mut() {
            if let Err(e) = room.ai_summarized(upto, text) {
                console_error!("room summary not stored: {e:?}");
            }
        }
    }

    /// Learns facts about a user who opted in, into their memory (D1), and into the open
    /// connections' preferences so the next answer already knows them.
    async fn remember(&self, user_id: &str, request: CompletionRequest, known: &[String]) {
        let facts = match self.complete(&request).await {
            Ok(text) => shared::ai::parse_facts(&text, known),
            Err(e) => {
                console_error!("assistant memory extraction failed: {e}");
                self.log(crate::logs::provider_failure(
                    &self.slug(),
                    provider_name(self.env()),
                    &e,
                ));
                return;
            }
        };
        if facts.is_empty() {
            return;
        }
        let slug = self.slug();
        if let Err(e) = crate::memory::add(self.env(), user_id, &slug, &facts).await {
            console_error!("assistant memory not stored: {e}");
            return;
        }
        self.learned(user_id, &facts);
    }
}

impl<T: AiHost> AiWork for T {}

/// The configured provider's name, for the log (`None` when none is).
fn provider_name(env: &Env) -> Option<&'static str> {
    Provider::from_env(env).ok().map(|p| p.name())
}

/// Writes one analytics record to D1 (tables from migrations/0004_ai.sql).
async fn write_record(env: &Env, room: &str, record: &Record) -> worker::Result<()> {
    let db = env.d1("DB")?;
    let at = now() as f64;
    match record {
        Record::Answer {
            target,
            asker,
            state,
            meta,
            error,
        } => {
            let state = match state {
                AnswerState::Done => "done",
                AnswerState::Stopped => "stopped",
                AnswerState::Failed => "failed",
                _ => "other",
            };
            db.prepare(
                "INSERT INTO ai_answers (room, target, asker, state, provider, model, tokens_in,
                   tokens_out, first_token_ms, total_ms, error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .bind(&[
                room.into(),
                (*target as f64).into(),
                asker.as_str().into(),
                state.into(),
                meta.provider.as_str().into(),
                meta.model.as_str().into(),
                f64::from(meta.tokens_in).into(),
                f64::from(meta.tokens_out).into(),
                f64::from(meta.first_token_ms).into(),
                f64::from(meta.total_ms).into(),
                error.map_or(JsValue::NULL, |c| c.as_str().into()),
                at.into(),
            ])?
            .run()
            .await?;
        }
        Record::Feedback {
            target,
            user_id,
            vote,
            reason,
            model,
        } => {
            let vote = match vote {
                Vote::Up => 1.0,
                Vote::Down => -1.0,
                Vote::None => 0.0,
            };
            db.prepare(
                "INSERT INTO ai_feedback (room, target, user_id, vote, reason, model, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (room, target, user_id) DO UPDATE SET
                   vote = excluded.vote, reason = excluded.reason, at = excluded.at",
            )
            .bind(&[
                room.into(),
                (*target as f64).into(),
                user_id.as_str().into(),
                vote.into(),
                reason.as_deref().map_or(JsValue::NULL, JsValue::from),
                model.as_str().into(),
                at.into(),
            ])?
            .run()
            .await?;
        }
    }
    Ok(())
}
