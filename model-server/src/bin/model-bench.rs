//! `model-bench`: how fast the local model answers, per llama.cpp thread count.
//!
//! For each thread count it loads the model, warms it up, then answers a chat-assistant-shaped
//! prompt (a system prompt and a page of room messages, a few hundred tokens) several times with
//! greedy decoding, each time with a different first message so no prompt is reused from the
//! cache, and once more as a follow-up turn of the same conversation (which is). It prints JSON:
//! time to first token (the prompt's prefill plus one token), prompt tokens per second, answer
//! tokens per second after the first, and the follow-up's time to first token; medians of the
//! runs.
//!
//! It drives the same [`Engine`] the server uses, without HTTP (whose cost is noise next to the
//! model's). Thread counts above the core count are allowed here, to show why the server
//! refuses them.
//!
//! ```sh
//! cargo run --release -p model-server --bin model-bench -- [--threads 1,2] [--tokens 128] [--runs 3] [--model PATH]
//! ```
//!
//! With `--classify` it times image classification instead (the vision model behind
//! `POST /v1/classify`): for each thread count and each image (the two photos in
//! `shared/fixtures/images/` unless `--image PATH` is given, repeatable), one warm-up and then
//! `--runs` classifications (default 20) of the image's bytes, decoding and resizing included;
//! it prints the median (p50) and 90th percentile in milliseconds.
//!
//! ```sh
//! cargo run --release -p model-server --bin model-bench -- --classify [--threads 1] [--runs 20] [--vision-model DIR] [--image PATH]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use model_server::config::{DEFAULT_MODEL, DEFAULT_VISION_MODEL};
use model_server::engine::{Engine, EngineConfig, Event};
use model_server::openai::{Generation, Message, Role, Usage};
use model_server::vision::Classifier;
use serde_json::{json, Value};

/// The photos timed by `--classify` unless `--image` names others.
const PHOTOS: [&str; 2] = [
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/images/chelsea.png"
    ),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/images/coffee.png"
    ),
];

struct Options {
    model: String,
    threads: Vec<usize>,
    tokens: u32,
    /// Runs per measurement; the default depends on the mode.
    runs: Option<usize>,
    classify: bool,
    vision_model: String,
    images: Vec<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        model: std::env::var("LOCAL_MODEL_PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        threads: vec![1, 2],
        tokens: 128,
        runs: None,
        classify: false,
        vision_model: DEFAULT_VISION_MODEL.to_string(),
        images: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => options.model = value()?,
            "--threads" => {
                options.threads = value()?
                    .split(',')
                    .map(|t| t.trim().parse().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or("--threads expects a list like 1,2")?;
            }
            "--tokens" => {
                options.tokens = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 1)
                    .ok_or("--tokens expects a number above 1")?;
            }
            "--runs" => {
                options.runs = Some(
                    value()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("--runs expects a positive number")?,
                );
            }
            "--classify" => options.classify = true,
            "--vision-model" => options.vision_model = value()?,
            "--image" => options.images.push(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// A system prompt and a page of chat, like the assistant in a room gets.
fn conversation(run: usize) -> Vec<Message> {
    let mut room = format!("Run {run}. Recent messages in the room #garden:\n");
    let lines = [
        ("ana", "Has anyone planted tomatoes this early before?"),
        ("ben", "I did last year, the frost got half of them."),
        ("chloe", "Cover them at night with fleece, it works."),
        ("ana", "Good idea. What about basil?"),
        ("ben", "Basil hates cold, wait until June."),
        ("dev", "I grow basil indoors on the windowsill all year."),
        (
            "chloe",
            "Same, and pinch the flowers off so it keeps growing leaves.",
        ),
        ("ana", "Does it need a lot of water?"),
        (
            "dev",
            "Keep the soil moist but not soaked, and drain the pot.",
        ),
        (
            "ben",
            "Also turn the pot every few days so it grows straight.",
        ),
    ];
    for (who, text) in lines {
        room.push_str(&format!("{who}: {text}\n"));
    }
    room.push_str("ana: @assistant can you sum up the advice about basil and tomatoes?");
    vec![
        Message {
            role: Role::System,
            content: "You are the assistant of a chat room. Answer the person who mentioned you, \
                      briefly and kindly, using what was said in the room. Do not invent facts."
                .into(),
        },
        Message {
            role: Role::User,
            content: room,
        },
    ]
}

fn generation(messages: Vec<Message>, max_tokens: u32) -> Generation {
    Generation {
        messages,
        max_tokens,
        temperature: 0.0,
        top_p: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        stop: Vec::new(),
        seed: None,
        stream: true,
    }
}

struct Sample {
    ttft: Duration,
    total: Duration,
    text: String,
    usage: Usage,
}

fn answer(engine: &Engine, generation: Generation) -> Result<Sample, String> {
    let prompt = engine
        .prompt(&generation.messages)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut events = engine
        .submit(prompt, generation)
        .map_err(|e| e.to_string())?;
    let mut ttft = None;
    let mut text = String::new();
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Text(t) => {
                ttft.get_or_insert_with(|| start.elapsed());
                text.push_str(&t);
            }
            Event::Done { usage, .. } => {
                let total = start.elapsed();
                return Ok(Sample {
                    ttft: ttft.unwrap_or(total),
                    total,
                    text,
                    usage,
                });
            }
            Event::Failed(e) => return Err(e.to_string()),
        }
    }
    Err("the model worker stopped".into())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn bench(options: &Options, threads: usize) -> Result<Value, String> {
    let loading = Instant::now();
    let engine = Engine::load(&EngineConfig {
        model: options.model.clone().into(),
        ctx: 2048,
        threads,
        queue: 1,
    })?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    answer(&engine, generation(conversation(usize::MAX), 8))?;

    let mut ttft = Vec::new();
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut followup_ttft = Vec::new();
    let mut prompt_tokens = 0;
    for run in 0..options.runs.unwrap_or(3) {
        let messages = conversation(run);
        let sample = answer(&engine, generation(messages.clone(), options.tokens))?;
        prompt_tokens = sample.usage.prompt_tokens;
        ttft.push(sample.ttft.as_secs_f64() * 1000.0);
        prefill.push(f64::from(sample.usage.prompt_tokens) / sample.ttft.as_secs_f64());
        let after_first = (sample.total - sample.ttft).as_secs_f64();
        if sample.usage.completion_tokens > 1 && after_first > 0.0 {
            decode.push(f64::from(sample.usage.completion_tokens - 1) / after_first);
        }

        let mut follow = messages;
        follow.push(Message {
            role: Role::Assistant,
            content: sample.text,
        });
        follow.push(Message {
            role: Role::User,
            content: "ben: thanks! and how often should I water the tomatoes?".into(),
        });
        let sample = answer(&engine, generation(follow, 8))?;
        followup_ttft.push(sample.ttft.as_secs_f64() * 1000.0);
    }
    Ok(json!({
        "threads": threads,
        "load_ms": round(load_ms),
        "prompt_tokens": prompt_tokens,
        "answer_tokens": options.tokens,
        "ttft_ms": round(median(ttft)),
        "prompt_tokens_per_s": round(median(prefill)),
        "answer_tokens_per_s": round(median(decode)),
        "followup_ttft_ms": round(median(followup_ttft)),
    }))
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
fn percentile(values: &[f64], p: usize) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}

/// The model's id and one row per image.
fn bench_classify(options: &Options, threads: usize) -> Result<(String, Vec<Value>), String> {
    let loading = Instant::now();
    let classifier = Classifier::load(std::path::Path::new(&options.vision_model), threads)
        .map_err(|e| e.to_string())?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    let images: Vec<String> = if options.images.is_empty() {
        PHOTOS.iter().map(|p| p.to_string()).collect()
    } else {
        options.images.clone()
    };
    let mut results = Vec::new();
    for path in images {
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let first = classifier.classify(&bytes).map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..options.runs.unwrap_or(20) {
            let start = Instant::now();
            classifier.classify(&bytes).map_err(|e| e.to_string())?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let top = first.labels.first();
        results.push(json!({
            "threads": threads,
            "load_ms": round(load_ms),
            "image": std::path::Path::new(&path).file_name().map(|n| n.to_string_lossy()),
            "width": first.width,
            "height": first.height,
            "top1": top.map(|l| l.name.as_str()),
            "top1_probability": top.map(|l| (f64::from(l.probability) * 1e4).round() / 1e4),
            "p50_ms": round(percentile(&times, 50)),
            "p90_ms": round(percentile(&times, 90)),
        }));
    }
    Ok((classifier.id().to_string(), results))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("model-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let cores = model_server::config::detect_physical_cores();
    if options.classify {
        return main_classify(&options, cores);
    }
    let mut results = Vec::new();
    for &threads in &options.threads {
        if threads > cores {
            eprintln!("[model-bench] {threads} threads on {cores} physical cores: oversubscribed");
        }
        match bench(&options, threads) {
            Ok(result) => {
                eprintln!("[model-bench] {result}");
                results.push(result);
            }
            Err(e) => {
                eprintln!("model-bench: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let report = json!({
        "model": model_server::engine::model_id(std::path::Path::new(&options.model)),
        "physical_cores": cores,
        "results": results,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

fn main_classify(options: &Options, cores: usize) -> ExitCode {
    let mut results = Vec::new();
    let mut model = String::new();
    for &threads in &options.threads {
        match bench_classify(options, threads) {
            Ok((id, rows)) => {
                model = id;
                for row in rows {
                    eprintln!("[model-bench] {row}");
                    results.push(row);
                }
            }
            Err(e) => {
                eprintln!("model-bench: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let report = json!({
        "model": model,
        "physical_cores": cores,
        "runs": options.runs.unwrap_or(20),
        "results": results,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    ExitCode::SUCCESS
}
