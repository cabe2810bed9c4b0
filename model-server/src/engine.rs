//! The model: loaded once, answering one request at a time on its own thread.
//!
//! Why one generation at a time: on a small CPU machine llama.cpp already uses every core for
//! one sequence, so two generations side by side would not finish sooner; they would split the
//! cores or, worse, oversubscribe them (threads that outnumber cores stall at llama.cpp's
//! per-layer barriers). A FIFO queue keeps each answer at full speed and keeps one context (and
//! its KV cache) alive between requests, so a conversation's shared prefix (system prompt,
//! earlier turns) is not computed again.
//!
//! Requests are rendered and tokenized on the caller's side (so a prompt that does not fit is
//! refused at once, without waiting in the queue), then queued as [`Job`]s. The worker sends
//! [`Event`]s back on a channel per job; when the receiver is gone (the HTTP client hung up) the
//! worker stops that generation at the next token.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::openai::{ApiError, ErrorCode, FinishReason, Generation, Message, Usage};
use crate::text::{defuse_special, StopMatcher, Utf8Stream};

/// Tokens decoded per llama.cpp call while reading the prompt.
const PROMPT_BATCH: u32 = 512;
/// llama.cpp's "pick a random seed" value.
const RANDOM_SEED: u32 = u32::MAX;
/// How many recent tokens the presence/frequency penalties look at.
const PENALTY_WINDOW: i32 = 64;

/// How to load the model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The GGUF file.
    pub model: std::path::PathBuf,
    /// Context window in tokens (clamped to what the model was trained for).
    pub ctx: u32,
    /// llama.cpp threads.
    pub threads: usize,
    /// Requests that may wait behind the running one.
    pub queue: usize,
}

/// What a job reports, in order: zero or more `Text`, then exactly one `Done` or `Failed`
/// (none if the job was cancelled because its receiver went away).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// More of the answer (whole characters, stop sequences already cut out).
    Text(String),
    /// The answer is complete.
    Done {
        /// Why it ended.
        finish: FinishReason,
        /// Token counts.
        usage: Usage,
    },
    /// llama.cpp failed; the message is safe to show.
    Failed(ApiError),
}

/// A tokenized prompt ready to queue.
#[derive(Debug, Clone)]
pub struct Prompt {
    tokens: Vec<LlamaToken>,
}

impl Prompt {
    /// Its length in tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether it has no tokens (never, for a rendered chat).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

struct Job {
    prompt: Prompt,
    generation: Generation,
    events: UnboundedSender<Event>,
}

/// Counters for `/health` and the tests (a cancelled generation is visible here).
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs waiting in the queue.
    pub queued: AtomicUsize,
    /// Jobs accepted and not finished (waiting or running): what the queue limit bounds.
    pub pending: AtomicUsize,
    /// Whether a job is running.
    pub busy: AtomicBool,
    /// Jobs that ran to their end.
    pub completed: AtomicU64,
    /// Jobs stopped (or skipped) because their client went away.
    pub cancelled: AtomicU64,
    /// Jobs llama.cpp failed.
    pub failed: AtomicU64,
    /// Prompt tokens taken from the previous request's KV cache instead of computed.
    pub reused_prompt_tokens: AtomicU64,
    /// Whether the worker thread is alive.
    pub worker_alive: AtomicBool,
}

/// The loaded model and its worker.
pub struct Engine {
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    /// ChatML, tried when the model's own template fails on a conversation.
    chatml: LlamaChatTemplate,
    /// Where the template came from: `"model"` (the GGUF's own) or `"chatml"` (fallback).
    template_source: &'static str,
    specials: Vec<String>,
    jobs: Sender<Job>,
    /// Jobs that may wait behind the running one.
    queue_limit: usize,
    stats: Arc<Stats>,
    n_ctx: u32,
    threads: usize,
    id: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.id)
            .field("n_ctx", &self.n_ctx)
            .field("threads", &self.threads)
            .field("template", &self.template_source)
            .finish()
    }
}

/// llama.cpp's global state, initialised once per process (it refuses a second init).
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            // llama.cpp logs every tensor it loads to stderr; our own lines say what matters.
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| format!("initialising llama.cpp: {e}"))
}

impl Engine {
    /// Loads the model, creates its context and starts the worker thread.
    pub fn load(config: &EngineConfig) -> Result<Engine, String> {
        let path = &config.model;
        if !path.is_file() {
            return Err(format!("model file not found: {}", path.display()));
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                format!(
                    "loading {} failed ({e}); is it a GGUF model?",
                    path.display()
                )
            })?;
        let model = Arc::new(model);
        let n_ctx = config.ctx.min(model.n_ctx_train().max(64));
        // "chatml" names a template built into llama.cpp.
        let chatml = LlamaChatTemplate::new("chatml").map_err(|e| e.to_string())?;
        let (template, template_source) = choose_template(&model, &chatml);
        let vocab = model.vocab();
        let specials = vocab
            .tokens()
            .filter(|t| vocab.is_control(*t))
            .map(|t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned())
            .filter(|text| text.chars().count() >= 2)
            .collect();

        let stats = Arc::new(Stats::default());
        // Unbounded, since `pending` enforces the limit: a rendezvous `sync_channel(0)` would
        // refuse a request that arrives while the idle worker is not yet blocked receiving.
        let (jobs, queue) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = Worker {
            model: Arc::clone(&model),
            n_ctx,
            threads: config.threads,
            stats: Arc::clone(&stats),
        };
        std::thread::Builder::new()
            .name("llama-worker".into())
            .spawn(move || worker.run(queue, ready_tx))
            .map_err(|e| format!("starting the model thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the model thread stopped while starting".to_string())??;

        Ok(Engine {
            id: model_id(path),
            model,
            template,
            chatml,
            template_source,
            specials,
            jobs,
            queue_limit: config.queue,
            stats,
            n_ctx,
            threads: config.threads,
        })
    }

    /// The model's id, as `/v1/models` lists it: the file name without `.gguf`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The context window in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// llama.cpp threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `"model"` or `"chatml"`: which chat template renders prompts.
    pub fn template_source(&self) -> &'static str {
        self.template_source
    }

    /// Live counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Renders the conversation with the chat template and tokenizes it; refuses a prompt that
    /// leaves no room for an answer.
    pub fn prompt(&self, messages: &[Message]) -> Result<Prompt, ApiError> {
        let chat = messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(
                    m.role.as_str().to_string(),
                    defuse_special(&m.content, &self.specials),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Messages must not contain NUL characters.",
                )
            })?;
        let rendered = self
            .model
            .apply_chat_template(&self.template, &chat, true)
            .or_else(|_| self.model.apply_chat_template(&self.chatml, &chat, true))
            .map_err(|e| {
                eprintln!("[model-server] chat template failed: {e}");
                ApiError::new(ErrorCode::Internal, "The prompt could not be rendered.")
            })?;
        // Special tokens are parsed so the template's markers become control tokens; message
        // text had its special-token text defused above.
        let tokens = self.model.vocab().tokenize(rendered.as_bytes(), true, true);
        if tokens.len() >= self.n_ctx as usize {
            return Err(ApiError::new(
                ErrorCode::ContextLengthExceeded,
                format!(
                    "This model's context window is {} tokens; the messages take {} tokens, \
                     leaving no room for an answer. Shorten the messages.",
                    self.n_ctx,
                    tokens.len()
                ),
            ));
        }
        Ok(Prompt { tokens })
    }

    /// Queues a generation; its events arrive on the returned channel. Drop the receiver to
    /// cancel it.
    pub fn submit(
        &self,
        prompt: Prompt,
        generation: Generation,
    ) -> Result<UnboundedReceiver<Event>, ApiError> {
        if !self.stats.worker_alive.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "The model worker has stopped.",
            ));
        }
        let admitted =
            self.stats
                .pending
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |pending| {
                    (pending <= self.queue_limit).then_some(pending + 1)
                });
        if admitted.is_err() {
            return Err(ApiError::new(
                ErrorCode::ServerBusy,
                "Too many requests are waiting for the model; try again shortly.",
            ));
        }
        let (events, receiver) = unbounded_channel();
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            prompt,
            generation,
            events,
        };
        if self.jobs.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                ErrorCode::Internal,
                "The model worker has stopped.",
            ));
        }
        Ok(receiver)
    }
}

/// The GGUF's own chat template when llama.cpp can apply it, else ChatML (which most small
/// instruct models, SmolLM2 among them, are trained on).
fn choose_template(
    model: &LlamaModel,
    chatml: &LlamaChatTemplate,
) -> (LlamaChatTemplate, &'static str) {
    let probe = LlamaChatMessage::new("user".into(), "hi".into());
    if let (Ok(template), Ok(probe)) = (model.chat_template(None), probe) {
        if model
            .apply_chat_template(&template, std::slice::from_ref(&probe), true)
            .is_ok()
        {
            return (template, "model");
        }
    }
    (chatml.clone(), "chatml")
}

/// The file name without its `.gguf` extension.
pub fn model_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local-model".to_string());
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

/// How a job ended. The job's last event is sent only after the counters are updated, so a
/// client that has its whole answer sees it counted in `/health`.
enum Outcome {
    Completed { finish: FinishReason, usage: Usage },
    Cancelled,
    Failed(ApiError),
}

struct Worker {
    model: Arc<LlamaModel>,
    n_ctx: u32,
    threads: usize,
    stats: Arc<Stats>,
}

impl Worker {
    fn run(self, queue: Receiver<Job>, ready: mpsc::Sender<Result<(), String>>) {
        let backend = match backend() {
            Ok(b) => b,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let threads = i32::try_from(self.threads).unwrap_or(1);
        let batch = PROMPT_BATCH.min(self.n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.n_ctx))
            .with_n_batch(batch)
            .with_n_ubatch(batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = match self.model.new_context(backend, params) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ready.send(Err(format!("creating the llama.cpp context: {e}")));
                return;
            }
        };
        self.stats.worker_alive.store(true, Ordering::SeqCst);
        // Cleared however this thread ends, a panic in llama.cpp's bindings included, so
        // `/health` stops saying "ok" (and new requests get `internal_error`, not a hang).
        let _alive = AliveGuard(Arc::clone(&self.stats));
        let _ = ready.send(Ok(()));

        // llama.cpp may round the context up; the configured size is the one prompts were
        // checked against, so it is the limit.
        let n_ctx = self.n_ctx.min(ctx.n_ctx()) as usize;
        let mut session = Session {
            ctx: &mut ctx,
            model: &self.model,
            cached: Vec::new(),
            batch_size: batch as usize,
            n_ctx,
        };
        for job in queue {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            if job.events.is_closed() {
                self.stats.cancelled.fetch_add(1, Ordering::SeqCst);
                self.stats.pending.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            self.stats.busy.store(true, Ordering::SeqCst);
            let started = Instant::now();
            let last = match session.generate(&job, &self.stats) {
                Outcome::Completed { finish, usage } => {
                    let seconds = started.elapsed().as_secs_f64();
                    eprintln!(
                        "[model-server] {} prompt + {} answer tokens in {seconds:.2} s ({:.1} tokens/s), {}",
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        f64::from(usage.completion_tokens) / seconds.max(1e-9),
                        finish.as_str()
                    );
                    self.stats.completed.fetch_add(1, Ordering::SeqCst);
                    Some(Event::Done { finish, usage })
                }
                Outcome::Cancelled => {
                    self.stats.cancelled.fetch_add(1, Ordering::SeqCst);
                    None
                }
                Outcome::Failed(error) => {
                    self.stats.failed.fetch_add(1, Ordering::SeqCst);
                    Some(Event::Failed(error))
                }
            };
            self.stats.busy.store(false, Ordering::SeqCst);
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            if let Some(event) = last {
                let _ = job.events.send(event);
            }
        }
    }
}

struct AliveGuard(Arc<Stats>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.worker_alive.store(false, Ordering::SeqCst);
    }
}

/// The context plus what its KV cache holds (sequence 0, positions `0..cached.len()`).
struct Session<'a, 'm> {
    ctx: &'a mut LlamaContext<'m>,
    model: &'m LlamaModel,
    cached: Vec<LlamaToken>,
    batch_size: usize,
    n_ctx: usize,
}

impl Session<'_, '_> {
    fn generate(&mut self, job: &Job, stats: &Stats) -> Outcome {
        match self.run(job, stats) {
            Ok(outcome) => outcome,
            Err(message) => {
                eprintln!("[model-server] generation failed: {message}");
                // The cache may hold a half-decoded batch: start the next request afresh.
                self.ctx.clear_kv_cache();
                self.cached.clear();
                Outcome::Failed(ApiError::new(
                    ErrorCode::Internal,
                    "The model failed while generating; see the server log.",
                ))
            }
        }
    }

    fn run(&mut self, job: &Job, stats: &Stats) -> Result<Outcome, String> {
        let prompt = &job.prompt.tokens;
        if prompt.is_empty() {
            return Err("empty prompt".into());
        }
        let n_ctx = self.n_ctx;

        // Keep the KV entries of the longest common prefix with the previous request; at least
        // the last prompt token is decoded again, since its logits pick the first answer token.
        let mut common = common_prefix(&self.cached, prompt).min(prompt.len() - 1);
        if common < self.cached.len() {
            let removed = u32::try_from(common)
                .ok()
                .map(|p0| self.ctx.kv_cache_seq_rm(0, Some(p0), None).is_ok())
                .unwrap_or(false);
            if !removed {
                self.ctx.clear_kv_cache();
                common = 0;
            }
            self.cached.truncate(common);
        }
        stats
            .reused_prompt_tokens
            .fetch_add(common as u64, Ordering::Relaxed);

        let mut batch = LlamaBatch::new(self.batch_size, 1);
        let mut pos = common;
        for chunk in prompt[common..].chunks(self.batch_size) {
            if job.events.is_closed() {
                return Ok(Outcome::Cancelled);
            }
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let at = pos + i;
                batch
                    .add(*token, position(at)?, &[0], at == prompt.len() - 1)
                    .map_err(|e| e.to_string())?;
            }
            self.ctx.decode(&mut batch).map_err(|e| e.to_string())?;
            self.cached.extend_from_slice(chunk);
            pos += chunk.len();
        }
        let mut logits_at = batch.n_tokens() - 1;

        let vocab = self.model.vocab();
        let mut sampler = sampler_for(&job.generation, self.model.n_vocab());
        let mut utf8 = Utf8Stream::default();
        let mut stop = StopMatcher::new(&job.generation.stop);
        let mut completion: u32 = 0;
        let send = |text: String| -> bool {
            text.is_empty() || job.events.send(Event::Text(text)).is_ok()
        };

        let finish = loop {
            let token = sampler.sample(self.ctx, logits_at);
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            completion += 1;
            // Control tokens render as nothing: they are not part of the answer's text.
            let piece = vocab.token_to_piece(token, false, None);
            let step = stop.push(&utf8.push(&piece));
            if !send(step.emit) {
                return Ok(Outcome::Cancelled);
            }
            if step.stopped {
                break FinishReason::Stop;
            }
            // Prompt plus answer fit the context window, as OpenAI counts it (the last answer
            // token is sampled but never decoded, so the KV cache would hold one more).
            if completion >= job.generation.max_tokens
                || prompt.len() + completion as usize >= n_ctx
            {
                break FinishReason::Length;
            }
            if job.events.is_closed() {
                return Ok(Outcome::Cancelled);
            }
            batch.clear();
            batch
                .add(token, position(pos)?, &[0], true)
                .map_err(|e| e.to_string())?;
            self.ctx.decode(&mut batch).map_err(|e| e.to_string())?;
            self.cached.push(token);
            pos += 1;
            logits_at = 0;
        };

        // The answer ended without a stop sequence: what was held back is ordinary text.
        let tail = stop.push(&utf8.finish());
        let mut rest = tail.emit;
        if !tail.stopped {
            rest.push_str(&stop.finish());
        }
        if !send(rest) {
            return Ok(Outcome::Cancelled);
        }
        let usage = Usage {
            prompt_tokens: u32::try_from(prompt.len()).unwrap_or(u32::MAX),
            completion_tokens: completion,
        };
        Ok(Outcome::Completed { finish, usage })
    }
}

fn position(at: usize) -> Result<i32, String> {
    i32::try_from(at).map_err(|_| format!("position {at} out of range"))
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// llama.cpp's usual order: penalties, then truncation (top-p), then temperature, then the draw.
fn sampler_for(generation: &Generation, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if generation.presence_penalty != 0.0 || generation.frequency_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            PENALTY_WINDOW,
            1.0,
            generation.frequency_penalty,
            generation.presence_penalty,
        ));
    }
    if generation.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if generation.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(generation.top_p, 1));
        }
        chain.push(LlamaSampler::temp(generation.temperature));
        chain.push(LlamaSampler::dist(generation.seed.unwrap_or(RANDOM_SEED)));
    }
    LlamaSampler::chain_simple(chain)
}

/// Reads a job's events to the end: the whole answer, why it ended and its usage.
pub async fn collect(
    mut events: UnboundedReceiver<Event>,
) -> Result<(String, FinishReason, Usage), ApiError> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done { finish, usage } => return Ok((text, finish, usage)),
            Event::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::new(
        ErrorCode::Internal,
        "The model worker stopped before the answer was complete.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_id_is_the_file_name_without_the_gguf_extension() {
        assert_eq!(
            model_id(Path::new("/x/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "SmolLM2-135M-Instruct.Q4_1"
        );
        assert_eq!(model_id(Path::new("weights.bin")), "weights.bin");
    }

    #[test]
    fn the_common_prefix_stops_at_the_first_difference() {
        let t = |ids: &[i32]| ids.iter().map(|&i| LlamaToken::new(i)).collect::<Vec<_>>();
        assert_eq!(common_prefix(&t(&[1, 2, 3]), &t(&[1, 2, 4, 5])), 2);
        assert_eq!(common_prefix(&t(&[]), &t(&[1])), 0);
        assert_eq!(common_prefix(&t(&[1, 2]), &t(&[1, 2])), 2);
    }
}
