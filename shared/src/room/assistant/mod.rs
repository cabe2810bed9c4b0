//! The assistant's life in a room, with no I/O: when it answers, its queue (one generation per
//! room at a time), how an answer grows (batched stream frames, persisted text), stop,
//! regenerate, ratings, recovery after a restart, and when the rolling summary is refreshed.
//!
//! The Durable Object runs the provider call that an [`Effect::Generate`] asks for and reports
//! back through [`Room::ai_token`], [`Room::ai_tick`] and [`Room::ai_finish`], each tagged with
//! the generation id it was given: a report about a generation that was stopped or replaced
//! is ignored, so a slow provider can never write into an answer after its Stop.
//!
//! Queue policy: first come, first served; at most [`AiConfig::max_queue`] answers waiting in a
//! room and [`AiConfig::max_queued_per_user`] per asker; beyond that the mention is stored as a
//! normal message and the asker gets `ai_busy`. Queued answers are posted at once (state
//! `queued`) so everyone sees the assistant has it.

mod grounded;
mod manage;

use grounded::{Grounding, PrivateJob};
pub use grounded::{CANDIDATES, MAX_SOURCES, PRIVATE_RESEND_MS};

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ai::{self, CompletionRequest, Personalization, PromptInput, Usage};
use crate::error::{ChatError, ErrorCode};
use crate::grounding;
use crate::permissions::Action;
use crate::protocol::{
    AnswerError, AnswerMeta, AnswerState, AssistantMode, Author, Event, EventKind, MessageView,
    Millis, Role, Seq, ServerMessage, Vote,
};
use crate::rate_limit::TokenBucket;

use crate::room::{refused, Conn, Effect, Failure, Room, Sql};

/// The assistant's user id. Session ids are random hex, so no person can have it.
pub const ASSISTANT_ID: &str = "assistant";

pub use crate::ai::ASSISTANT_NAME;

/// What the room is told when an answer fails: the stable code and a generic sentence for it.
/// The provider's own text (its URL, status, error body, a key's prefix) goes to the server
/// log only (`edge/src/rooms/generate.rs` logs it), because every member of the room reads
/// this and the provider's words are not the room's business.
pub fn public_failure(code: ErrorCode) -> AnswerError {
    let message = match code {
        ErrorCode::AiUnavailable => "The assistant is unavailable right now; try again later.",
        ErrorCode::AiTimeout => "The assistant took too long to answer; try again.",
        ErrorCode::AiFailed => "The assistant could not answer this; try again.",
        ErrorCode::ConfigError => "The assistant is not set up correctly on this server.",
        _ => "Something went wrong while the assistant was answering; try again.",
    };
    AnswerError {
        code,
        message: message.into(),
    }
}

/// An error frame answering no mutation.
fn error_frame(err: ChatError) -> ServerMessage {
    ServerMessage::Error {
        code: err.code,
        message: err.message,
        client_id: None,
        retry_after_ms: err.retry_after_ms,
    }
}

/// The assistant as an author.
pub fn assistant_author() -> Author {
    Author {
        id: ASSISTANT_ID.into(),
        name: ASSISTANT_NAME.into(),
        role: Role::Member,
    }
}

/// Whether a message mentions the assistant: `@assistant` (any case) not inside a word.
pub fn mentions_assistant(text: &str) -> bool {
    // Most messages mention no one: skip lowercasing a copy of every message.
    if !text.contains('@') {
        return false;
    }
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    lower.match_indices("@assistant").any(|(i, m)| {
        let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let end = i + m.len();
        let after_ok =
            end == bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
        before_ok && after_ok
    })
}

/// The most a stream frame waits before going out: a token is sent at once if nothing went out
/// in the last this many ms, otherwise it joins the next batch.
pub const STREAM_BATCH_MS: Millis = 50;

/// The room's assistant settings (from the Worker's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AiConfig {
    /// Answers waiting per room, beyond the one being written.
    pub max_queue: usize,
    /// Answers waiting per asker.
    pub max_queued_per_user: usize,
    /// Questions a user may ask at once (token bucket burst).
    pub burst: f64,
    /// Questions per second a user regains.
    pub per_second: f64,
    /// Prompt budget in tokens.
    pub context_tokens: usize,
    /// Recent messages considered for the prompt (the budget may keep fewer).
    pub context_messages: usize,
    /// Longest answer in tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Messages that must have left the prompt window before the summary is refreshed.
    pub summary_every: usize,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            max_queue: 5,
            max_queued_per_user: 2,
            burst: 5.0,
            per_second: 1.0 / 12.0,
            context_tokens: 1500,
            context_messages: 40,
            max_tokens: 400,
            temperature: 0.4,
            summary_every: 20,
        }
    }
}

/// The room's summary of history older than the prompt window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The newest message seq it covers.
    pub upto: Seq,
    /// The text.
    pub text: String,
}

/// Where an answer came from, reported with its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
}

/// One answer to write.
#[derive(Debug, Clone, PartialEq)]
struct Job {
    target: Seq,
    prompt: Seq,
    /// The thread the question was asked in: its root and replies are the context.
    thread: Option<Seq>,
    asker: String,
    version: u32,
    personalization: Personalization,
    /// A private answer's record; `None` for an answer in the room.
    private: Option<PrivateJob>,
}

/// The answer being written.
#[derive(Debug, Clone)]
struct Running {
    gen: u64,
    job: Job,
    /// Text already sent and persisted.
    flushed: String,
    /// Text received but not yet sent.
    pending: String,
    last_flush_at: Option<Millis>,
    started_at: Millis,
    first_token_at: Option<Millis>,
    /// The prompt's estimated size, for when the provider reports no usage.
    prompt_estimate: u32,
    usage: Option<Usage>,
    /// The messages it may cite and the citations it made.
    grounding: Grounding,
}

/// Data for analytics outside the room (the Durable Object writes it to D1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An answer version ended.
    Answer {
        /// The answer message.
        target: Seq,
        /// Who asked.
        asker: String,
        /// How it ended.
        state: AnswerState,
        /// How it was produced.
        meta: AnswerMeta,
        /// Failure code, when it failed.
        error: Option<ErrorCode>,
    },
    /// A user rated an answer.
    Feedback {
        /// The answer message.
        target: Seq,
        /// The voter.
        user_id: String,
        /// The vote.
        vote: Vote,
        /// Their reason, if they gave one (never broadcast).
        reason: Option<String>,
        /// The model that wrote the rated version.
        model: String,
    },
}

/// The assistant's in-memory state in one room. The queue is rebuilt from storage on wake
/// ([`Room::resume_assistant`]); per-user buckets start full, like connection limits.
#[derive(Debug, Default)]
pub struct Assistant {
    config: AiConfig,
    queue: VecDeque<Job>,
    running: Option<Running>,
    next_gen: u64,
    buckets: HashMap<String, TokenBucket>,
    summarizing: bool,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            target: 0,
            prompt: 0,
            thread: None,
            asker: String::new(),
            version: 1,
            personalization: Personalization::default(),
            private: None,
        }
    }
}

impl Assistant {
    /// An idle assistant with these settings.
    pub fn new(config: AiConfig) -> Self {
        Assistant {
            config,
            ..Default::default()
        }
    }

    /// The answer being written and its generation id.
    pub fn running(&self) -> Option<(Seq, u64)> {
        self.running.as_ref().map(|r| (r.job.target, r.gen))
    }

    /// Answers waiting, in order (private ones, which have no message, as 0).
    pub fn queued(&self) -> Vec<Seq> {
        self.queue.iter().map(|j| j.target).collect()
    }

    /// Who asked for generation `gen` (their budget pays for it).
    pub fn asker(&self, gen: u64) -> Option<&str> {
        let running = self.running.as_ref().filter(|r| r.gen == gen)?;
        Some(running.job.asker.as_str())
    }

    fn is_active(&self, target: Seq) -> bool {
        let public = |j: &Job| j.private.is_none() && j.target == target;
        self.running.as_ref().is_some_and(|r| public(&r.job)) || self.queue.iter().any(public)
    }

    /// Refuses a new question when the asker is over their rate or the queue is full.
    fn admit(&mut self, asker: &str, now: Millis) -> Result<(), ChatError> {
        let waiting = self.queue.len() + usize::from(self.running.is_some());
        if waiting > self.config.max_queue {
            return Err(ChatError::new(
                ErrorCode::AiBusy,
                "The assistant has too many questions waiting in this room; ask again in a moment.",
            ));
        }
        let mine = self.queue.iter().filter(|j| j.asker == asker).count()
            + usize::from(self.running.as_ref().is_some_and(|r| r.job.asker == asker));
        if mine >= self.config.max_queued_per_user {
            return Err(ChatError::new(
                ErrorCode::AiBusy,
                "The assistant is still working on your earlier questions; ask again when they are answered.",
            ));
        }
        let config = self.config;
        let bucket = self
            .buckets
            .entry(asker.to_owned())
            .or_insert_with(|| TokenBucket::new(config.burst, config.per_second, now));
        bucket.try_take(now).map_err(|retry| ChatError {
            code: ErrorCode::RateLimited,
            message: format!(
                "You have asked the assistant a lot; try again in {:.0} s.",
                (retry as f64 / 1000.0).ceil()
            ),
            retry_after_ms: Some(retry),
        })
    }
}

impl<D: Sql> Room<D> {
    /// Replaces the assistant's settings (keeps its queue).
    pub fn set_ai_config(&mut self, config: AiConfig) {
        self.assistant.config = config;
    }

    /// The assistant's state, for the Durable Object and tests.
    pub fn assistant(&self) -> &Assistant {
        &self.assistant
    }

    /// After a post's effects: if it stored a new message (not a resend), let the assistant
    /// see whether it asks for an answer.
    pub(crate) fn maybe_ask(
        &mut self,
        conn: &Conn,
        mut effects: Vec<Effect>,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        let posted = effects.iter().find_map(|e| match e {
            Effect::Broadcast(ServerMessage::Event { event }) => Some(event.clone()),
            _ => None,
        });
        if let Some(posted) = posted {
            effects.extend(self.after_post(conn, &posted, now)?);
        }
        Ok(effects)
    }

    /// Called after a new message is stored: queues an answer if the message asks for one.
    fn after_post(
        &mut self,
        conn: &Conn,
        message: &Event,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        let (text, thread) = match &message.kind {
            EventKind::Message { text, .. } => (text, None),
            // A question in a thread is answered in that thread, with the thread as context.
            EventKind::Reply { text, thread, .. } => (text, Some(*thread)),
            _ => return Ok(vec![]),
        };
        let asks = match self.info.assistant {
            AssistantMode::Off => false,
            AssistantMode::All => true,
            AssistantMode::Mention | AssistantMode::Unknown => mentions_assistant(text),
        };
        if !asks || conn.author.id == ASSISTANT_ID {
            return Ok(vec![]);
        }
        if let Some(thread) = self.private_intent(text, thread) {
            // The request is stored like any message; only the answer is private.
            return match self.ask_private(conn, thread, None, message.seq - 1, now) {
                Ok(effects) => Ok(effects),
                Err(Failure::Refused(err)) => Ok(vec![Effect::Reply(error_frame(err))]),
                Err(failure) => Err(failure),
            };
        }
        if let Err(err) = self.assistant.admit(&conn.author.id, now) {
            // The question itself is stored and acknowledged; only the answer is refused.
            return Ok(vec![Effect::Reply(error_frame(err))]);
        }
        let answer = self.append_event(
            assistant_author(),
            None,
            now,
            EventKind::Answer {
                prompt: message.seq,
                asker: conn.author.id.clone(),
                thread,
            },
        )?;
        self.assistant.queue.push_back(Job {
            target: answer.seq,
            prompt: message.seq,
            thread,
            asker: conn.author.id.clone(),
            version: 1,
            personalization: conn.personalization.clone(),
            private: None,
        });
        let notify = self.activity(&answer, Vec::new(), None)?;
        let mut effects = vec![Effect::Broadcast(ServerMessage::Event { event: answer })];
        effects.extend(notify);
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// Starts the next queued answer if none is being written.
    fn start_next(&mut self, now: Millis) -> Result<Vec<Effect>, Failure> {
        if self.assistant.running.is_some() {
            return Ok(vec![]);
        }
        let Some(job) = self.assistant.queue.pop_front() else {
            return Ok(vec![]);
        };
        let mut effects = Vec::new();
        if job.private.is_none() {
            let started = self.append_event(
                assistant_author(),
                None,
                now,
                EventKind::AnswerStatus {
                    target: job.target,
                    version: job.version,
                    status: AnswerState::Streaming,
                    text: String::new(),
                    error: None,
                    meta: None,
                },
            )?;
            effects.push(Effect::Broadcast(ServerMessage::Event { event: started }));
        }
        let prepared = self.prepare(&job)?;
        let prompt_estimate = prepared
            .request
            .messages
            .iter()
            .map(|m| ai::estimate_tokens(&m.content))
            .sum::<usize>() as u32;
        self.assistant.next_gen += 1;
        let gen = self.assistant.next_gen;
        let target = job.target;
        let running = Running {
            gen,
            job,
            flushed: String::new(),
            pending: String::new(),
            last_flush_at: None,
            started_at: now,
            first_token_at: None,
            prompt_estimate,
            usage: None,
            grounding: Grounding {
                filter: grounding::CitationFilter::new(prepared.sources.len()),
                sources: prepared.sources,
                room_question: prepared.room_question,
                retrieval: prepared.retrieval,
            },
        };
        effects.extend(Self::private_frame(&running, AnswerState::Streaming));
        self.assistant.running = Some(running);
        match prepared.immediate {
            // Nothing for the provider to do: the answer is known (nothing in the room matches,
            // nothing is unread).
            Some(text) => {
                if let Some(running) = self.assistant.running.as_mut() {
                    running.pending = text;
                }
                let source = Source {
                    provider: "room".into(),
                    model: String::new(),
                };
                effects.extend(self.ai_finish(gen, Ok(source), now)?);
            }
            None => effects.push(Effect::Generate {
                gen,
                target,
                request: prepared.request,
            }),
        }
        Ok(effects)
    }

    /// Sends and persists the text received so far.
    fn flush(&mut self, now: Millis) -> Result<Vec<Effect>, Failure> {
        let Some(running) = self.assistant.running.as_mut() else {
            return Ok(vec![]);
        };
        if running.pending.is_empty() {
            return Ok(vec![]);
        }
        let offset = running.flushed.len() as u32;
        let text = std::mem::take(&mut running.pending);
        running.flushed.push_str(&text);
        running.last_flush_at = Some(now);
        if running.job.private.is_some() {
            // Private text is stored when it ends; a reconnect meanwhile gets it from memory.
            let running = &*running;
            return Ok(Self::private_frame(running, AnswerState::Streaming)
                .into_iter()
                .collect());
        }
        let (target, version) = (running.job.target, running.job.version);
        self.store.set_answer_text(target, &running.flushed)?;
        Ok(vec![Effect::Broadcast(ServerMessage::Stream {
            target,
            version,
            offset,
            text,
        })])
    }

    fn current(&mut self, gen: u64) -> Option<&mut Running> {
        self.assistant.running.as_mut().filter(|r| r.gen == gen)
    }

    /// A token from the provider for generation `gen`.
    pub fn ai_token(&mut self, gen: u64, text: &str, now: Millis) -> Result<Vec<Effect>, Failure> {
        let Some(running) = self.current(gen) else {
            return Ok(vec![]);
        };
        running.first_token_at.get_or_insert(now);
        // Invented citations are removed before anyone sees them.
        let shown = running.grounding.filter.push(text);
        running.pending.push_str(&shown);
        let due = running
            .last_flush_at
            .is_none_or(|at| now - at >= STREAM_BATCH_MS);
        if due {
            self.flush(now)
        } else {
            Ok(vec![])
        }
    }

    /// Token counts from the provider for generation `gen`.
    pub fn ai_usage(&mut self, gen: u64, usage: Usage) {
        if let Some(running) = self.current(gen) {
            running.usage = Some(usage);
        }
    }

    /// When buffered text of generation `gen` must go out, if any is waiting.
    pub fn ai_deadline(&self, gen: u64) -> Option<Millis> {
        let running = self.assistant.running.as_ref().filter(|r| r.gen == gen)?;
        if running.pending.is_empty() {
            return None;
        }
        Some(running.last_flush_at.map_or(0, |at| at + STREAM_BATCH_MS))
    }

    /// Time passed: sends buffered text of generation `gen` that is due.
    pub fn ai_tick(&mut self, gen: u64, now: Millis) -> Result<Vec<Effect>, Failure> {
        match self.ai_deadline(gen) {
            Some(deadline) if now >= deadline => self.flush(now),
            _ => Ok(vec![]),
        }
    }

    /// Generation `gen` ended, with the provider's name or its error. Posts the final text,
    /// records the numbers, and starts the next queued answer.
    pub fn ai_finish(
        &mut self,
        gen: u64,
        outcome: Result<Source, ChatError>,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        let Some(running) = self.current(gen) else {
            return Ok(vec![]);
        };
        let held = running.grounding.filter.finish();
        running.pending.push_str(&held);
        let mut effects = self.flush(now)?;
        let Some(running) = self.assistant.running.take() else {
            return Ok(effects);
        };
        let (status, error, source) = match outcome {
            Ok(source) => (AnswerState::Done, None, source),
            Err(err) => (
                AnswerState::Failed,
                Some(public_failure(err.code)),
                Source::default(),
            ),
        };
        // Without the provider's counts, the estimate made when the prompt was built (building
        // it again here would re-read the history the room has moved past).
        let usage = running.usage.unwrap_or(Usage {
            prompt_tokens: running.prompt_estimate,
            completion_tokens: ai::estimate_tokens(&running.flushed) as u32,
        });
        let mut meta = AnswerMeta {
            provider: source.provider,
            model: source.model,
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            first_token_ms: running
                .first_token_at
                .map_or(0, |t| (t - running.started_at).max(0) as u32),
            total_ms: (now - running.started_at).max(0) as u32,
            ..AnswerMeta::default()
        };
        let (text, cited) = Self::ground_final(running.flushed.clone(), status, &running.grounding);
        Self::grounded_meta(&mut meta, &running.grounding, &cited);
        if running.job.private.is_some() {
            effects.extend(self.finish_private(&running, text, status, error, meta)?);
            effects.extend(self.start_next(now)?);
            return Ok(effects);
        }
        let record = Record::Answer {
            target: running.job.target,
            asker: running.job.asker.clone(),
            state: status,
            meta: meta.clone(),
            error: error.as_ref().map(|e| e.code),
        };
        let ended = self.append_event(
            assistant_author(),
            None,
            now,
            EventKind::AnswerStatus {
                target: running.job.target,
                version: running.job.version,
                status,
                text,
                error,
                meta: Some(meta),
            },
        )?;
        effects.push(Effect::Broadcast(ServerMessage::Event { event: ended }));
        effects.push(Effect::Record(record));
        if status == AnswerState::Done && running.job.personalization.remember {
            effects.extend(self.remember(&running.job)?);
        }
        effects.extend(self.summary_due(running.job.prompt)?);
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// Asks what to remember about an asker who opted in, from their question.
    fn remember(&self, job: &Job) -> Result<Option<Effect>, Failure> {
        let Some(question) = self.store.message(job.prompt)? else {
            return Ok(None);
        };
        if question.deleted {
            return Ok(None);
        }
        let known = job.personalization.memory.clone();
        Ok(Some(Effect::Remember {
            user_id: job.asker.clone(),
            request: CompletionRequest {
                messages: ai::build_memory_prompt(&question.author.name, &question.text, &known),
                max_tokens: 120,
                temperature: 0.1,
                images: Vec::new(),
            },
            known,
        }))
    }

    /// Asks for a summary refresh when enough messages left the prompt window since the last.
    fn summary_due(&mut self, prompt: Seq) -> Result<Vec<Effect>, Failure> {
        if self.assistant.summarizing {
            return Ok(vec![]);
        }
        let config = self.assistant.config;
        let (window, _) = self
            .store
            .messages_before(Some(prompt + 1), config.context_messages)?;
        let Some(oldest_in_window) = window.first().map(|m| m.seq) else {
            return Ok(vec![]);
        };
        let summary = self.store.summary()?;
        let covered = summary.as_ref().map_or(0, |s| s.upto);
        let (older, _) = self
            .store
            .messages_before(Some(oldest_in_window), config.context_messages)?;
        let fresh: Vec<MessageView> = older.into_iter().filter(|m| m.seq > covered).collect();
        if fresh.len() < config.summary_every {
            return Ok(vec![]);
        }
        self.assistant.summarizing = true;
        let upto = fresh.last().map_or(covered, |m| m.seq);
        let messages = ai::build_summary_prompt(summary.as_ref().map(|s| s.text.as_str()), &fresh);
        Ok(vec![Effect::Summarize {
            upto,
            request: CompletionRequest {
                messages,
                max_tokens: 200,
                temperature: 0.2,
                images: Vec::new(),
            },
        }])
    }

    /// The summary the provider wrote (or `None` if that failed).
    pub fn ai_summarized(&mut self, upto: Seq, text: Option<String>) -> Result<(), Failure> {
        self.assistant.summarizing = false;
        match text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
            Some(text) => self
                .store
                .set_summary(&Summary { upto, text })
                .map_err(Failure::from),
            None => Ok(()),
        }
    }

    /// After a restart: an answer that was being written when the room stopped cannot
    /// continue (its provider call is gone), so it ends as failed with the text it had and can
    /// be regenerated; queued answers are queued again in order.
    pub fn resume_assistant(&mut self, now: Millis) -> Result<Vec<Effect>, Failure> {
        if self.assistant.running.is_some() || !self.assistant.queue.is_empty() {
            return Ok(vec![]);
        }
        self.fail_unfinished_private()?;
        let unfinished = self.store.unfinished_answers()?;
        let mut effects = Vec::new();
        for message in unfinished {
            let Some(answer) = message.answer else {
                continue;
            };
            match answer.state {
                AnswerState::Streaming => {
                    let event = self.append_event(
                        assistant_author(),
                        None,
                        now,
                        EventKind::AnswerStatus {
                            target: message.seq,
                            version: answer.version,
                            status: AnswerState::Failed,
                            text: message.text,
                            error: Some(AnswerError {
                                code: ErrorCode::Internal,
                                message: "The room restarted while this answer was being written; regenerate it to try again.".into(),
                            }),
                            meta: None,
                        },
                    )?;
                    effects.push(Effect::Broadcast(ServerMessage::Event { event }));
                }
                AnswerState::Queued => {
                    // A first answer waits at version 1 with nothing written; a regenerated
                    // one keeps its finished text until the next version starts.
                    let fresh = answer.version == 1
                        && message.text.is_empty()
                        && answer.meta.is_none()
                        && answer.error.is_none();
                    self.assistant.queue.push_back(Job {
                        target: message.seq,
                        prompt: answer.prompt,
                        thread: message.thread,
                        asker: answer.asker,
                        version: if fresh { 1 } else { answer.version + 1 },
                        personalization: Personalization::default(),
                        private: None,
                    });
                }
                _ => {}
            }
        }
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// The answer frame a joining client needs after its page or replay: the text written so
    /// far of the answer being streamed, from offset 0 (the client keeps what it has).
    pub fn stream_snapshot(&self) -> Option<ServerMessage> {
        let running = self.assistant.running.as_ref()?;
        if running.job.private.is_some() {
            return None;
        }
        Some(ServerMessage::Stream {
            target: running.job.target,
            version: running.job.version,
            offset: 0,
            text: running.flushed.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_at_assistant_not_inside_a_word_or_address() {
        assert!(mentions_assistant("@assistant hi"));
        assert!(mentions_assistant("hey @Assistant, what is 2+2?"));
        assert!(mentions_assistant("(@ASSISTANT)"));
        assert!(!mentions_assistant("mail me@assistant.example"));
        assert!(!mentions_assistant("@assistants are cool"));
        assert!(!mentions_assistant("the assistant"));
    }
}
