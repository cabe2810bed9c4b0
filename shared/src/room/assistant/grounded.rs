//! Grounded answers: the messages a question retrieves from the room's history (and, for a
//! private digest, the range it covers), the citations checked as the answer streams and when
//! it ends, and private answers ("catch me up", "summarize thread"), which only their asker's
//! connections receive.

use super::*;
use crate::grounding::{self, CitationFilter, Intent};
use crate::protocol::{PrivateAnswer, PrivateKind};

/// Most messages a question's prompt is given from the room's history.
pub const MAX_SOURCES: usize = 8;
/// Candidates full-text retrieval returns before thread roots are added and the budget cuts.
pub const CANDIDATES: u32 = 20;
/// Most messages of an unread range read to choose what a catch-up is given.
pub const DIGEST_SCAN: u32 = 400;
/// A private answer younger than this is sent again after its asker's hello (a reload
/// mid-answer, another tab opened), so nothing the room accepted is lost to a reconnect.
pub const PRIVATE_RESEND_MS: Millis = 15 * 60 * 1000;

/// A private answer being written, and its asker's name for the prompt.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PrivateJob {
    pub answer: PrivateAnswer,
    pub asker_name: String,
}

/// A job's prompt and what grounds it.
pub(super) struct Prepared {
    pub request: CompletionRequest,
    /// The numbered messages, oldest first (source `[n]` is `sources[n - 1]`).
    pub sources: Vec<MessageView>,
    /// The answer to give without asking the provider.
    pub immediate: Option<String>,
    /// The question, when an answer citing nothing must become [`grounding::nothing_found`].
    pub room_question: Option<String>,
    /// What semantic retrieval may add to the sources (production: Vectorize).
    pub retrieval: Option<String>,
}

/// The grounding a running answer keeps.
#[derive(Debug, Clone, Default)]
pub(super) struct Grounding {
    pub sources: Vec<MessageView>,
    pub filter: CitationFilter,
    pub room_question: Option<String>,
    pub retrieval: Option<String>,
}

fn cost(message: &MessageView) -> usize {
    ai::estimate_tokens(&message.text[..message.text.len().min(ai::SOURCE_MAX_BYTES)]) + 12
}

impl<D: Sql> Room<D> {
    /// The messages from the room's history a question is answered from: full-text matches
    /// before `before` (fused with `semantic`, nearest in meaning, when production has it),
    /// with the root of each matching thread reply, at most [`MAX_SOURCES`] and `budget`
    /// tokens, oldest first. A match that is also among the recent messages in the prompt is
    /// still numbered: it is what the answer cites.
    fn sources(
        &self,
        question: &str,
        before: Seq,
        semantic: &[Seq],
        budget: usize,
    ) -> Result<Vec<MessageView>, Failure> {
        let ranked = self.store.retrieve_question(question, before, CANDIDATES)?;
        let ranked = if semantic.is_empty() {
            ranked
        } else {
            let full_text: Vec<Seq> = ranked.iter().map(|m| m.seq).collect();
            let near: Vec<Seq> = semantic.iter().copied().filter(|s| *s < before).collect();
            let fused: Vec<Seq> =
                crate::search::hybrid_rank(&full_text, &near, CANDIDATES as usize)
                    .into_iter()
                    .map(|(seq, _)| seq)
                    .collect();
            // Read back from SQLite: a deleted message or an answer is never a source, whatever
            // the vector index still holds.
            self.store
                .messages_in_order(&fused)?
                .into_iter()
                .filter(|m| !m.deleted && m.author.id != ASSISTANT_ID && !m.text.is_empty())
                .collect()
        };
        let mut chosen: Vec<MessageView> = Vec::new();
        let mut spent = 0;
        let mut take = |m: MessageView, chosen: &mut Vec<MessageView>| {
            if chosen.len() >= MAX_SOURCES
                || chosen.iter().any(|c| c.seq == m.seq)
                || spent + cost(&m) > budget
            {
                return;
            }
            spent += cost(&m);
            chosen.push(m);
        };
        for m in ranked {
            let root = m.thread;
            take(m, &mut chosen);
            // A reply's thread root says what the reply answers.
            if let Some(root) = root.and_then(|r| self.store.message(r).ok().flatten()) {
                if !root.deleted {
                    take(root, &mut chosen);
                }
            }
        }
        chosen.sort_by_key(|m| m.seq);
        Ok(chosen)
    }

    /// The prompt for a job and its grounding.
    pub(super) fn prepare(&self, job: &Job) -> Result<Prepared, Failure> {
        if let Some(private) = &job.private {
            return self.prepare_digest(job, private);
        }
        let config = self.assistant.config;
        let history = self.prompt_history(job)?;
        let question = self
            .store
            .message(job.prompt)?
            .filter(|m| !m.deleted)
            .map(|m| m.text)
            .unwrap_or_default();
        let sources = self.sources(&question, job.prompt, &[], config.context_tokens / 2)?;
        let room_question = grounding::asks_about_room(&question).then(|| question.clone());
        // A question about the room that nothing in the room matches is answered at once: the
        // model could only guess.
        let immediate = (room_question.is_some() && sources.is_empty())
            .then(|| grounding::nothing_found(&question));
        let retrieval = (!grounding::retrieval_terms(&question).is_empty()).then_some(question);
        let request = self.question_request(job, &history, &sources)?;
        Ok(Prepared {
            request,
            sources,
            immediate,
            room_question,
            retrieval,
        })
    }

    /// The conversation a question's prompt shows: the messages up to it (not what came after
    /// while it waited) or, in a thread, the thread's root and replies; no unfinished answer.
    fn prompt_history(&self, job: &Job) -> Result<Vec<MessageView>, Failure> {
        let config = self.assistant.config;
        let mut history = match job.thread {
            Some(root) => {
                let (root, mut replies, _) = self.thread(root)?;
                replies.retain(|m| m.seq <= job.prompt);
                let skip = replies.len().saturating_sub(config.context_messages);
                std::iter::once(root)
                    .chain(replies.into_iter().skip(skip))
                    .collect()
            }
            None => {
                self.store
                    .messages_before(Some(job.prompt + 1), config.context_messages)?
                    .0
            }
        };
        history.retain(|m| m.answer.as_ref().is_none_or(|a| !a.state.is_active()));
        Ok(history)
    }

    fn question_request(
        &self,
        job: &Job,
        history: &[MessageView],
        sources: &[MessageView],
    ) -> Result<CompletionRequest, Failure> {
        let config = self.assistant.config;
        let summary = self.store.summary()?;
        let messages = ai::build_prompt(&PromptInput {
            room: &self.info,
            summary: summary.as_ref().map(|s| s.text.as_str()),
            history,
            asker_id: &job.asker,
            personalization: &job.personalization,
            budget_tokens: config.context_tokens,
            sources,
        });
        let images = history
            .iter()
            .rev()
            .find(|m| m.seq == job.prompt)
            .map(|question| ai::prompt_images(&messages, question))
            .unwrap_or_default();
        Ok(CompletionRequest {
            messages,
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            images,
        })
    }

    /// A catch-up or thread summary: the range's messages that fit the budget (for a long
    /// unread range, those that mention the asker, ask, link or decide come first), numbered
    /// oldest first.
    fn prepare_digest(&self, job: &Job, private: &PrivateJob) -> Result<Prepared, Failure> {
        let config = self.assistant.config;
        let answer = &private.answer;
        let (candidates, digest) = match answer.thread {
            Some(root) => {
                let (root, replies, _) = self.thread(root)?;
                let all: Vec<MessageView> = std::iter::once(root)
                    .chain(replies)
                    .filter(|m| !m.deleted && !m.text.is_empty())
                    .collect();
                (all, ai::Digest::Thread)
            }
            None => (
                self.store
                    .timeline_range(answer.after, answer.upto, DIGEST_SCAN)?
                    .0,
                ai::Digest::CatchUp,
            ),
        };
        let name = private.asker_name.to_lowercase();
        let weight = |m: &MessageView| {
            let text = m.text.to_lowercase();
            let mut w = 0;
            if !name.is_empty() && text.contains(&format!("@{name}")) {
                w += 4;
            }
            if crate::search::flags(&m.text) != 0 {
                w += 2;
            }
            if text.contains('?') {
                w += 1;
            }
            if ["decid", "agreed", "final", "plan", "deadline", "moved"]
                .iter()
                .any(|k| text.contains(k))
            {
                w += 2;
            }
            w
        };
        let mut ranked: Vec<&MessageView> = candidates.iter().collect();
        // Heaviest first, then newest.
        ranked.sort_by_key(|m| (std::cmp::Reverse(weight(m)), std::cmp::Reverse(m.seq)));
        let budget = config.context_tokens.saturating_sub(300);
        let mut spent = 0;
        let mut chosen: Vec<MessageView> = Vec::new();
        for m in ranked {
            if spent + cost(m) > budget {
                continue;
            }
            spent += cost(m);
            chosen.push(m.clone());
        }
        chosen.sort_by_key(|m| m.seq);
        let immediate = chosen.is_empty().then(|| match digest {
            ai::Digest::CatchUp => {
                "You are all caught up: nothing new in this room since you last read it.".to_owned()
            }
            ai::Digest::Thread => "This thread has nothing to summarize.".to_owned(),
        });
        let messages = ai::build_digest_prompt(
            &self.info,
            &private.asker_name,
            digest,
            &chosen,
            &job.personalization,
        );
        Ok(Prepared {
            request: CompletionRequest {
                messages,
                max_tokens: config.max_tokens,
                temperature: config.temperature,
                images: Vec::new(),
            },
            sources: chosen,
            immediate,
            room_question: None,
            retrieval: None,
        })
    }

    /// The final text of an answer that ended as `status`, with the numbers it cites: the
    /// model's own valid citations; failing those, the sources its sentences repeat; and for
    /// a question about the room that still cites nothing, the plain statement that the room's
    /// messages did not answer it, with the closest of them.
    pub(super) fn ground_final(
        text: String,
        status: AnswerState,
        grounding: &Grounding,
    ) -> (String, Vec<u32>) {
        let cited = grounding.filter.cited().to_vec();
        if status != AnswerState::Done || !cited.is_empty() {
            return (text, cited);
        }
        let question = grounding.retrieval.as_deref().unwrap_or_default();
        let (text, cited) = grounding::attribute(&text, &grounding.sources, question);
        match &grounding.room_question {
            Some(question) if cited.is_empty() => {
                if grounding.sources.is_empty() {
                    (grounding::nothing_found(question), cited)
                } else {
                    // What the room holds did not answer it: say so, and where to look.
                    grounding::closest(grounding.sources.len())
                }
            }
            _ => (text, cited),
        }
    }

    /// The metadata fields of grounding: what was retrieved, what is cited, what was dropped.
    pub(super) fn grounded_meta(meta: &mut AnswerMeta, grounding: &Grounding, cited: &[u32]) {
        meta.retrieved = grounding.sources.iter().map(|m| m.seq).collect();
        meta.citations = grounding::citations(cited, &grounding.sources);
        meta.dropped_citations = grounding.filter.dropped();
    }

    /// Production's semantic retrieval for generation `gen` found `semantic` (message seqs,
    /// nearest first): the sources are chosen again with both rankings fused and the prompt
    /// rebuilt. `None` when `gen` is not a question being answered (or nothing changed).
    pub fn ai_reground(
        &mut self,
        gen: u64,
        semantic: &[Seq],
    ) -> Result<Option<CompletionRequest>, Failure> {
        let Some(running) = self.assistant.running.as_ref().filter(|r| r.gen == gen) else {
            return Ok(None);
        };
        let Some(question) = running.grounding.retrieval.clone() else {
            return Ok(None);
        };
        if semantic.is_empty() || running.job.private.is_some() || !running.flushed.is_empty() {
            return Ok(None);
        }
        let job = running.job.clone();
        let history = self.prompt_history(&job)?;
        let sources = self.sources(
            &question,
            job.prompt,
            semantic,
            self.assistant.config.context_tokens / 2,
        )?;
        if sources == running.grounding.sources {
            return Ok(None);
        }
        let request = self.question_request(&job, &history, &sources)?;
        if let Some(running) = self.assistant.running.as_mut() {
            running.grounding.filter = CitationFilter::new(sources.len());
            running.grounding.sources = sources;
        }
        Ok(Some(request))
    }

    /// The question `gen` is answering, when semantic retrieval may add to its sources.
    pub fn ai_retrieval(&self, gen: u64) -> Option<&str> {
        let running = self.assistant.running.as_ref().filter(|r| r.gen == gen)?;
        running.grounding.retrieval.as_deref()
    }

    /// "Catch me up" (`thread` none) or "summarize thread": queues a private answer for the
    /// asker. A catch-up covers the timeline after `after` (else the asker's stored read
    /// position) up to `upto`. Any range is the asker's own business: every message in it is
    /// one they may read.
    pub(crate) fn ask_private(
        &mut self,
        conn: &Conn,
        thread: Option<Seq>,
        after: Option<Seq>,
        upto: Seq,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        if self.info.assistant == AssistantMode::Off {
            return Err(refused(
                ErrorCode::AiUnavailable,
                "The assistant is turned off in this room.",
            ));
        }
        let (kind, thread, after, total) = match thread {
            Some(root) => {
                let (root, replies, _) = self.thread(root)?;
                let total = 1 + replies.len() as u32;
                (PrivateKind::Thread, Some(root.seq), root.seq - 1, total)
            }
            None => {
                let after = match after {
                    Some(after) => after,
                    None => self.store.read_position(&conn.author.id)?.unwrap_or(0),
                }
                .min(upto);
                let (_, total) = self.store.timeline_range(after, upto, 0)?;
                (PrivateKind::CatchUp, None, after, total)
            }
        };
        self.assistant
            .admit(&conn.author.id, now)
            .map_err(Failure::Refused)?;
        let mut answer = PrivateAnswer {
            id: 0,
            kind,
            thread,
            after,
            upto,
            considered: 0,
            total,
            state: AnswerState::Queued,
            text: String::new(),
            error: None,
            meta: None,
            at: now,
        };
        answer.id = self.store.insert_private(&conn.author.id, &answer)?;
        self.assistant.queue.push_back(Job {
            thread,
            asker: conn.author.id.clone(),
            personalization: conn.personalization.clone(),
            private: Some(PrivateJob {
                answer: answer.clone(),
                asker_name: conn.author.name.clone(),
            }),
            ..Job::default()
        });
        let mut effects = vec![Effect::ToUser(
            conn.author.id.clone(),
            ServerMessage::Private { answer },
        )];
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// A posted message that asks for a private answer ("@assistant catch me up", or
    /// "summarize thread" in a thread): the answer goes to the asker alone.
    pub(super) fn private_intent(&self, text: &str, thread: Option<Seq>) -> Option<Option<Seq>> {
        match (grounding::intent(text), thread) {
            (Intent::CatchUp, _) => Some(None),
            (Intent::SummarizeThread, Some(root)) => Some(Some(root)),
            _ => None,
        }
    }

    /// The private answer of the running job as it stands, to its asker.
    pub(super) fn private_frame(running: &Running, state: AnswerState) -> Option<Effect> {
        let private = running.job.private.as_ref()?;
        let mut answer = private.answer.clone();
        answer.state = state;
        answer.text = running.flushed.clone();
        answer.considered = running.grounding.sources.len() as u32;
        Some(Effect::ToUser(
            running.job.asker.clone(),
            ServerMessage::Private { answer },
        ))
    }

    /// A private answer ended: stored and sent to its asker.
    pub(super) fn finish_private(
        &mut self,
        running: &Running,
        text: String,
        status: AnswerState,
        error: Option<AnswerError>,
        meta: AnswerMeta,
    ) -> Result<Vec<Effect>, Failure> {
        let Some(private) = running.job.private.as_ref() else {
            return Ok(vec![]);
        };
        let mut answer = private.answer.clone();
        answer.state = status;
        answer.text = text;
        answer.error = error;
        answer.considered = running.grounding.sources.len() as u32;
        answer.meta = Some(meta);
        self.store.update_private(&answer)?;
        Ok(vec![Effect::ToUser(
            running.job.asker.clone(),
            ServerMessage::Private { answer },
        )])
    }

    /// The asker's recent private answers, sent after their hello.
    pub(crate) fn private_snapshot(
        &self,
        user_id: &str,
        now: Millis,
    ) -> Result<Vec<ServerMessage>, Failure> {
        let running = self.assistant.running.as_ref();
        Ok(self
            .store
            .private_answers(user_id, now - PRIVATE_RESEND_MS)?
            .into_iter()
            .map(|mut answer| {
                // The one being written: its text so far, which storage does not hold yet.
                if let Some(r) = running.filter(|r| {
                    r.job
                        .private
                        .as_ref()
                        .is_some_and(|p| p.answer.id == answer.id)
                }) {
                    answer.state = AnswerState::Streaming;
                    answer.text = r.flushed.clone();
                }
                ServerMessage::Private { answer }
            })
            .collect())
    }

    /// After a restart: a private answer queued or being written cannot go on (its place in
    /// the queue was in memory); it ends as failed, which its asker sees on their next hello.
    pub(super) fn fail_unfinished_private(&mut self) -> Result<(), Failure> {
        for (_, mut answer) in self.store.unfinished_private()? {
            answer.state = AnswerState::Failed;
            answer.error = Some(AnswerError {
                code: ErrorCode::Internal,
                message: "The room restarted before this answer was finished; ask again.".into(),
            });
            self.store.update_private(&answer)?;
        }
        Ok(())
    }
}
