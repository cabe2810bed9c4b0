//! Grounding evaluation: `cargo run --release -p e2e --bin grounding-eval [-- flags]`.
//!
//! Over the generated fixture room of `e2e::grounding` (600 messages, six weeks, six people,
//! planted facts, corrections, thread answers and distractors; questions with gold sets):
//!
//! - always, natively and in well under a second: the room's full-text retrieval
//!   (`SqlStore::retrieve_question`, 10 results) for each question, scored as recall@5,
//!   recall@10 and mean reciprocal rank, with the questions whose gold it misses;
//! - with `--answers`: the answers of the real Worker under `wrangler dev` and a model. Each
//!   question gets a fresh room loaded with the fixture over sockets (six people sending in
//!   order, thread replies as replies), so no earlier question or answer is in its history or
//!   its sources; it is asked as `@assistant <question>` and the answer is read to its final
//!   `answer_status`. Per question and overall: citation precision (cited seqs in the gold set
//!   / cited), the share of answers citing anything, the invented citations dropped, the gold
//!   among the sources the model was given, whether the answer holds the expected value,
//!   refusals ("I found nothing in this room") on the unanswerable questions and on the others,
//!   and latency (first token and total, seen from the asker's socket, p50/p90). The fixture's
//!   times are not kept here: the Worker stamps every message with its own clock.
//!
//! The model is the local one (`model-server` with SmolLM2 from `../shared/models`, built by
//! `./scripts/build`) unless `--endpoint URL --model NAME [--api-key-env VAR]` names an
//! OpenAI-compatible endpoint (the key is read from the variable VAR and passed to `wrangler dev`
//! as the `AI_API_KEY` var, so it is on this machine's process list while the run lasts).
//!
//! `wrangler dev` reloads when `edge/build` changes under it (a rebuild in another shell) and
//! resets every socket: a question that fails so is asked once more in a new room. For a long
//! run on a machine where others build, point `E2E_REPO_ROOT` at a copy of the repository's
//! `wrangler.toml`, `migrations`, `dist` and `edge/build` (with links to `node_modules` and
//! `target`, and `LOCAL_MODEL_PATH` set).
//!
//! Flags: `--answers`; `--questions N` (the first N answerable questions, all by default);
//! `--unanswerable N` (the first N of those the room cannot answer, all by default);
//! `--max-tokens N` (the answer's `AI_MAX_TOKENS`; 160 for the local model, the Worker's
//! default otherwise); `--json` (one JSON object on stdout instead of the tables);
//! `--verbose` (the top retrieved texts of each retrieval miss). Progress goes to stderr.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use e2e::grounding::{
    evaluate_retrieval, fixture, Fixture, NativeRoom, Question, RetrievalReport, PEOPLE,
};
use e2e::model::ModelServer;
use e2e::{require_build, unique, DevOptions, DevServer, Result, RoomSocket, Session};
use serde::Serialize;
use serde_json::json;
use shared::protocol::{AnswerMeta, AnswerState, ClientMessage, EventKind, Seq, ServerMessage};

/// Results per retrieval question.
const RETRIEVAL_LIMIT: u32 = 10;
/// The longest an answer may take, queue included.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// What the room answers a question about itself that nothing in it supports.
const REFUSAL: &str = "I found nothing in this room";

struct Args {
    answers: bool,
    questions: Option<usize>,
    unanswerable: Option<usize>,
    max_tokens: Option<u32>,
    endpoint: Option<String>,
    model: Option<String>,
    api_key_env: Option<String>,
    json: bool,
    verbose: bool,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut args = Args {
            answers: false,
            questions: None,
            unanswerable: None,
            max_tokens: None,
            endpoint: None,
            model: None,
            api_key_env: None,
            json: false,
            verbose: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--answers" => args.answers = true,
                "--json" => args.json = true,
                "--verbose" => args.verbose = true,
                "--questions" | "--unanswerable" | "--max-tokens" | "--endpoint" | "--model"
                | "--api-key-env" => {
                    let value = it.next().with_context(|| format!("{flag} needs a value"))?;
                    match flag.as_str() {
                        "--questions" => args.questions = Some(value.parse()?),
                        "--unanswerable" => args.unanswerable = Some(value.parse()?),
                        "--max-tokens" => args.max_tokens = Some(value.parse()?),
                        "--endpoint" => args.endpoint = Some(value),
                        "--model" => args.model = Some(value),
                        _ => args.api_key_env = Some(value),
                    }
                }
                other => {
                    bail!("unknown flag {other} (see the doc comment of e2e/src/bin/grounding.rs)")
                }
            }
        }
        if args.endpoint.is_some() != args.model.is_some() {
            bail!("--endpoint and --model go together");
        }
        if args.api_key_env.is_some() && args.endpoint.is_none() {
            bail!("--api-key-env needs --endpoint");
        }
        Ok(args)
    }
}

fn say(what: impl AsRef<str>) {
    eprintln!("[grounding] {}", what.as_ref());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let args = Args::parse()?;
    let fixture = fixture();
    let started = Instant::now();
    let native = NativeRoom::load(&fixture)?;
    let retrieval = evaluate_retrieval(&native, &fixture, RETRIEVAL_LIMIT)?;
    let retrieval_ms = started.elapsed().as_millis();
    if !args.json {
        print_retrieval(&retrieval, &fixture);
        if args.verbose {
            print_misses(&retrieval, &native, &fixture)?;
        }
    }
    let answers = if args.answers {
        let report = run_answers(&args, &fixture).await?;
        if !args.json {
            print_answers(&report);
        }
        Some(report)
    } else {
        None
    };
    if args.json {
        let report = json!({
            "fixture": {
                "messages": fixture.lines.len(),
                "questions": fixture.answerable().count(),
                "unanswerable": fixture.unanswerable().count(),
            },
            "retrieval": {
                "limit": RETRIEVAL_LIMIT,
                "recall_5": retrieval.recall_5,
                "recall_10": retrieval.recall_10,
                "mrr": retrieval.mrr,
                "load_and_eval_ms": retrieval_ms,
                "questions": retrieval.answerable,
                "unanswerable": retrieval.unanswerable,
            },
            "answers": answers,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn ranks(ranks: &[Option<usize>]) -> String {
    ranks
        .iter()
        .map(|r| r.map_or("-".to_owned(), |r| r.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_retrieval(report: &RetrievalReport, fixture: &Fixture) {
    println!(
        "retrieval (FTS5 bm25, {} messages, top {RETRIEVAL_LIMIT}; gold ranks, - = not returned)",
        fixture.lines.len()
    );
    println!(
        "{:>6} {:>5} {:>5} {:>5}  question",
        "ranks", "r@5", "r@10", "RR"
    );
    for r in &report.answerable {
        println!(
            "{:>6} {:>5.2} {:>5.2} {:>5.2}  {}",
            ranks(&r.gold_ranks),
            r.recall_5,
            r.recall_10,
            r.reciprocal_rank,
            r.question
        );
    }
    for r in &report.unanswerable {
        println!(
            "{:>6} {:>5} {:>5} {:>5}  {} (unanswerable: {} retrieved)",
            "",
            "",
            "",
            "",
            r.question,
            r.ranked.len()
        );
    }
    println!(
        "recall@5 {:.3}  recall@10 {:.3}  MRR {:.3}  over {} questions ({} miss gold in the top 10)",
        report.recall_5,
        report.recall_10,
        report.mrr,
        report.answerable.len(),
        report.misses(10).len()
    );
}

/// The top texts of each question that misses gold in its top 10.
fn print_misses(report: &RetrievalReport, room: &NativeRoom, fixture: &Fixture) -> Result {
    for miss in report.misses(10) {
        println!(
            "\nmiss: {} (terms {:?})",
            miss.question,
            shared::grounding::retrieval_terms(&miss.question)
        );
        for &g in &miss.gold {
            println!("  gold {g}: {}", text_of(room, fixture, g));
        }
        for (i, &seq) in miss.ranked.iter().enumerate() {
            println!("  {:>2}. {seq}: {}", i + 1, text_of(room, fixture, seq));
        }
    }
    Ok(())
}

fn text_of<'a>(room: &NativeRoom, fixture: &'a Fixture, seq: Seq) -> &'a str {
    room.seqs
        .iter()
        .position(|s| *s == seq)
        .map_or("?", |i| fixture.lines[i].text.as_str())
}

/// One answer through the Worker.
#[derive(Debug, Clone, Serialize)]
struct Answered {
    question: String,
    answerable: bool,
    state: String,
    text: String,
    /// Cited seqs and how many of them are gold.
    cited: Vec<Seq>,
    cited_gold: usize,
    dropped_citations: u32,
    /// Gold seqs among the sources the model was given, of all gold.
    sources_gold: usize,
    gold: usize,
    /// The answer holds one of the question's expected values (answerable questions).
    expected_found: Option<bool>,
    refused: bool,
    /// From sending the question to the first streamed text (none for an answer given at once).
    first_token_ms: Option<u64>,
    total_ms: u64,
    /// The Worker's own measures (from the provider request).
    server_first_token_ms: Option<u32>,
    server_total_ms: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
struct AnswersReport {
    provider: String,
    model: String,
    max_tokens: Option<u32>,
    load_ms_per_room: u64,
    answers: Vec<Answered>,
    /// Cited gold / cited, over all answerable answers' citations.
    citation_precision: Option<f64>,
    /// Answerable questions whose answer cites at least one message.
    cited_share: f64,
    /// Answerable questions whose answer holds the expected value.
    expected_share: f64,
    /// Gold among the model's sources, over all gold.
    sources_recall: f64,
    dropped_citations: u32,
    /// Unanswerable questions refused, of all unanswerable.
    refusals: usize,
    unanswerable: usize,
    /// Answerable questions refused.
    false_refusals: usize,
    answerable: usize,
    first_token_p50_ms: Option<u64>,
    first_token_p90_ms: Option<u64>,
    total_p50_ms: Option<u64>,
    total_p90_ms: Option<u64>,
}

/// Starts the model (unless an endpoint is named) and the Worker, and asks every chosen
/// question in its own freshly loaded room.
async fn run_answers(args: &Args, fixture: &Fixture) -> Result<AnswersReport> {
    require_build(false)?;
    let lifted = "1000000";
    let mut options = DevOptions::default()
        .var("AI_PROVIDER", "openai")
        .var("AI_BURST", lifted)
        .var("AI_PER_MINUTE", lifted)
        .var("SEND_BURST", lifted)
        .var("SEND_PER_SECOND", lifted)
        .var("FRAME_BURST", lifted)
        .var("FRAME_PER_SECOND", lifted)
        // A small model on two cores, queued behind a room summary, can be slow to start.
        .var("AI_FIRST_TOKEN_TIMEOUT_MS", 120_000)
        .var("AI_TOTAL_TIMEOUT_MS", 280_000);
    let (local, model_name, max_tokens) = match (&args.endpoint, &args.model) {
        (Some(endpoint), Some(model)) => {
            options = options.var("AI_BASE_URL", endpoint).var("AI_MODEL", model);
            if let Some(var) = &args.api_key_env {
                let key = std::env::var(var).with_context(|| format!("${var} is not set"))?;
                options = options.var("AI_API_KEY", key);
            }
            (None, model.clone(), args.max_tokens)
        }
        _ => {
            say("starting the local model server");
            let model = ModelServer::start().await?;
            options = options
                .var("AI_BASE_URL", model.base_url())
                .var("AI_MODEL", model.model());
            let name = model.model().to_owned();
            (Some(model), name, Some(args.max_tokens.unwrap_or(160)))
        }
    };
    if let Some(n) = max_tokens {
        options = options.var("AI_MAX_TOKENS", n);
    }
    say("starting wrangler dev");
    let server = DevServer::start(options).await?;
    match ask_all(args, fixture, &server, local.as_ref()).await {
        Ok((answers, load_ms)) => Ok(summarize(answers, model_name, max_tokens, load_ms)),
        Err(e) => {
            say(format!(
                "failed; wrangler dev's last output:\n{}",
                server.log_tail()
            ));
            if let Some(model) = &local {
                say(format!(
                    "the model server's last output:\n{}",
                    model.log_tail()
                ));
            }
            Err(e)
        }
    }
}

async fn ask_all(
    args: &Args,
    fixture: &Fixture,
    server: &DevServer,
    local: Option<&ModelServer>,
) -> Result<(Vec<Answered>, u64)> {
    let mut people = Vec::new();
    for name in PEOPLE {
        people.push(Session::create(server, name).await?);
    }
    let asker = Session::create(server, "Quinn").await?;
    let chosen: Vec<&Question> = fixture
        .answerable()
        .take(args.questions.unwrap_or(usize::MAX))
        .chain(
            fixture
                .unanswerable()
                .take(args.unanswerable.unwrap_or(usize::MAX)),
        )
        .collect();
    let mut answers = Vec::new();
    let mut load_ms = 0;
    for (i, question) in chosen.iter().enumerate() {
        // Each question in a room of its own: earlier questions (which retrieval would find)
        // and answers (in the prompt's history) stay out of it.
        let mut attempt = 1;
        let answered = loop {
            let creator = &people[(i + attempt) % people.len()];
            match load_and_ask(creator, &people, &asker, fixture, question, local).await {
                Ok((answered, ms)) => {
                    load_ms += ms;
                    break answered;
                }
                // A socket reset (wrangler dev reloads when the Worker's build changes under
                // it) costs the question one more room, not the run.
                Err(e) if attempt < 2 => {
                    say(format!(
                        "{:?} failed, once more in a new room: {e:#}",
                        question.text
                    ));
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Err(e) => return Err(e),
            }
        };
        say(format!(
            "{}/{}: {:?} -> {} cited, {} ms: {}",
            i + 1,
            chosen.len(),
            question.text,
            answered.cited.len(),
            answered.total_ms,
            answered.text.replace('\n', " ")
        ));
        answers.push(answered);
    }
    Ok((answers, load_ms / chosen.len().max(1) as u64))
}

/// Loads a room and asks `question` in it; the answer, and how long the load took.
async fn load_and_ask(
    creator: &Session,
    people: &[Session],
    asker: &Session,
    fixture: &Fixture,
    question: &Question,
    local: Option<&ModelServer>,
) -> Result<(Answered, u64)> {
    let started = Instant::now();
    let (slug, seqs) = load_room(creator, people, fixture).await?;
    let load_ms = started.elapsed().as_millis() as u64;
    if let Some(model) = local {
        // The previous room's summary may still be running on the one model thread.
        wait_idle(model).await?;
    }
    Ok((ask(asker, &slug, question, &seqs).await?, load_ms))
}

/// A new room with the fixture posted in order by its people; the seq of each line.
async fn load_room(
    creator: &Session,
    people: &[Session],
    fixture: &Fixture,
) -> Result<(String, Vec<Seq>)> {
    let room = creator
        .create_room(&unique("grounding"), "a product team")
        .await?;
    let mut sockets: Vec<RoomSocket> = Vec::new();
    for person in people {
        let mut socket = person.connect(&room.slug).await?;
        socket.hello(None).await?;
        sockets.push(socket);
    }
    let mut seqs = Vec::with_capacity(fixture.lines.len());
    for (i, line) in fixture.lines.iter().enumerate() {
        let client_id = format!("g{i}");
        let message = match line.reply_to {
            None => ClientMessage::Send {
                client_id: client_id.clone(),
                text: line.text.clone(),
                attachments: Vec::new(),
            },
            Some(root) => ClientMessage::Reply {
                client_id: client_id.clone(),
                target: seqs[root],
                text: line.text.clone(),
                also_in_room: false,
                attachments: Vec::new(),
            },
        };
        let socket = &mut sockets[line.author];
        socket.send_message(&message).await?;
        let (seq, _) = socket.await_ack(&client_id).await?;
        seqs.push(seq);
        if i % 50 == 49 {
            // The others' broadcasts: read them so no socket's buffer fills.
            for socket in &mut sockets {
                while socket.try_next_frame(Duration::ZERO).await?.is_some() {}
            }
        }
    }
    for socket in sockets {
        socket.close().await;
    }
    Ok((room.slug, seqs))
}

/// Waits until the local model answers nothing and has nothing queued.
async fn wait_idle(model: &ModelServer) -> Result {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = model.base_url().replace("/v1", "/health");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let health: serde_json::Value = http.get(&url).send().await?.json().await?;
        if health["busy"] == false && health["queued"] == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the model server stayed busy for two minutes")
}

/// Asks `question` in the room and reads its answer to the end.
async fn ask(asker: &Session, slug: &str, question: &Question, seqs: &[Seq]) -> Result<Answered> {
    let mut socket = asker.connect(slug).await?;
    socket.hello(None).await?;
    let client_id = "ask";
    let sent = Instant::now();
    let (prompt, _) = socket
        .post(client_id, &format!("@assistant {}", question.text))
        .await?;
    let mut answer_seq: Option<Seq> = None;
    let mut first_token: Option<u64> = None;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let (state, text, meta) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no final answer to {:?} within {ANSWER_TIMEOUT:?}",
                question.text
            );
        }
        match socket.next_message(left).await? {
            ServerMessage::Event { event } => match event.kind {
                EventKind::Answer { prompt: p, .. } if p == prompt => answer_seq = Some(event.seq),
                EventKind::AnswerStatus {
                    target,
                    status,
                    text,
                    meta,
                    error,
                    ..
                } if Some(target) == answer_seq && !status.is_active() => {
                    let text = match (status, error) {
                        (AnswerState::Failed, Some(e)) => format!("{text} [failed: {}]", e.message),
                        _ => text,
                    };
                    break (status, text, meta);
                }
                _ => {}
            },
            ServerMessage::Stream { target, text, .. }
                if Some(target) == answer_seq && !text.is_empty() && first_token.is_none() =>
            {
                first_token = Some(sent.elapsed().as_millis() as u64);
            }
            _ => {}
        }
    };
    let total_ms = sent.elapsed().as_millis() as u64;
    socket.close().await;

    let gold: Vec<Seq> = question.gold.iter().map(|&i| seqs[i]).collect();
    let meta: Option<AnswerMeta> = meta;
    let cited: Vec<Seq> = meta
        .as_ref()
        .map(|m| m.citations.iter().map(|c| c.seq).collect())
        .unwrap_or_default();
    let retrieved = meta
        .as_ref()
        .map(|m| m.retrieved.clone())
        .unwrap_or_default();
    let expected = question.expect;
    let lower = text.to_lowercase();
    Ok(Answered {
        question: question.text.to_owned(),
        answerable: !question.gold.is_empty(),
        state: format!("{state:?}").to_lowercase(),
        cited_gold: cited.iter().filter(|s| gold.contains(s)).count(),
        sources_gold: gold.iter().filter(|g| retrieved.contains(g)).count(),
        gold: gold.len(),
        cited,
        dropped_citations: meta.as_ref().map_or(0, |m| m.dropped_citations),
        expected_found: (!expected.is_empty())
            .then(|| expected.iter().any(|e| lower.contains(&e.to_lowercase()))),
        refused: text.contains(REFUSAL),
        first_token_ms: first_token,
        total_ms,
        server_first_token_ms: meta.as_ref().map(|m| m.first_token_ms),
        server_total_ms: meta.as_ref().map(|m| m.total_ms),
        text,
    })
}

fn percentile(values: &[u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn summarize(
    answers: Vec<Answered>,
    model: String,
    max_tokens: Option<u32>,
    load_ms_per_room: u64,
) -> AnswersReport {
    let answerable: Vec<&Answered> = answers.iter().filter(|a| a.answerable).collect();
    let unanswerable: Vec<&Answered> = answers.iter().filter(|a| !a.answerable).collect();
    let cited: usize = answerable.iter().map(|a| a.cited.len()).sum();
    let cited_gold: usize = answerable.iter().map(|a| a.cited_gold).sum();
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let first: Vec<u64> = answers.iter().filter_map(|a| a.first_token_ms).collect();
    let total: Vec<u64> = answers.iter().map(|a| a.total_ms).collect();
    AnswersReport {
        provider: "openai".into(),
        model,
        max_tokens,
        load_ms_per_room,
        citation_precision: (cited > 0).then(|| share(cited_gold, cited)),
        cited_share: share(
            answerable.iter().filter(|a| !a.cited.is_empty()).count(),
            answerable.len(),
        ),
        expected_share: share(
            answerable
                .iter()
                .filter(|a| a.expected_found == Some(true))
                .count(),
            answerable.len(),
        ),
        sources_recall: share(
            answerable.iter().map(|a| a.sources_gold).sum(),
            answerable.iter().map(|a| a.gold).sum(),
        ),
        dropped_citations: answers.iter().map(|a| a.dropped_citations).sum(),
        refusals: unanswerable.iter().filter(|a| a.refused).count(),
        unanswerable: unanswerable.len(),
        false_refusals: answerable.iter().filter(|a| a.refused).count(),
        answerable: answerable.len(),
        first_token_p50_ms: percentile(&first, 0.5),
        first_token_p90_ms: percentile(&first, 0.9),
        total_p50_ms: percentile(&total, 0.5),
        total_p90_ms: percentile(&total, 0.9),
        answers,
    }
}

fn print_answers(report: &AnswersReport) {
    println!(
        "\nanswers ({} through the Worker, max tokens {}; a fresh {}-message room per question, \
         loaded in {} ms each)",
        report.model,
        report
            .max_tokens
            .map_or("default".to_owned(), |n| n.to_string()),
        e2e::grounding::FIXTURE_MESSAGES,
        report.load_ms_per_room
    );
    println!(
        "{:>5} {:>5} {:>4} {:>4} {:>3} {:>3} {:>7} {:>7}  question -> answer",
        "cited", "gold", "src", "exp", "drp", "ref", "ttft", "total"
    );
    for a in &report.answers {
        let mut text: String = a.text.replace('\n', " ").chars().take(70).collect();
        if a.text.chars().count() > 70 {
            text.push('…');
        }
        println!(
            "{:>5} {:>5} {:>4} {:>4} {:>3} {:>3} {:>7} {:>7}  {}{} -> {}",
            a.cited.len(),
            if a.answerable {
                a.cited_gold.to_string()
            } else {
                "".into()
            },
            if a.answerable {
                format!("{}/{}", a.sources_gold, a.gold)
            } else {
                "".into()
            },
            a.expected_found
                .map_or("", |f| if f { "yes" } else { "no" }),
            a.dropped_citations,
            if a.refused { "yes" } else { "" },
            a.first_token_ms.map_or("-".into(), |ms| ms.to_string()),
            a.total_ms,
            if a.answerable { "" } else { "(unanswerable) " },
            a.question,
            text
        );
    }
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    println!(
        "citation precision {}  answers citing ≥1 {:.0}%  holding the expected value {:.0}%  \
         gold in the model's sources {:.0}%",
        report
            .citation_precision
            .map_or("- (nothing cited)".to_owned(), |p| format!("{p:.2}")),
        report.cited_share * 100.0,
        report.expected_share * 100.0,
        report.sources_recall * 100.0
    );
    println!(
        "invented citations dropped {}  refusals: {}/{} unanswerable, {}/{} answerable (false)",
        report.dropped_citations,
        report.refusals,
        report.unanswerable,
        report.false_refusals,
        report.answerable
    );
    println!(
        "latency: first token p50 {} p90 {}; total p50 {} p90 {}",
        ms(report.first_token_p50_ms),
        ms(report.first_token_p90_ms),
        ms(report.total_p50_ms),
        ms(report.total_p90_ms)
    );
}
