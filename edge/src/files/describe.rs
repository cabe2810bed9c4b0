//! What a stored file is about: an image's labels (the local model server, or Workers AI's
//! classifier) and an audio file's transcript (Workers AI's Whisper, production only).

use super::*;

/// Largest image read back from R2 to classify: the classifier looks at 224×224 pixels, and a
/// bigger file is a camera original that would only cost memory.
const CLASSIFY_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Largest input handed to Workers AI: its models take bytes as a JSON array of numbers, about
/// eight bytes of the Worker's memory per byte of file.
const WORKERS_AI_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// How long an upload waits for its labels or transcript before it is stored without them.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(20);

/// Labels kept: the likeliest few, and none under 1%.
const LABELS_MAX: usize = 5;
const LABEL_MIN_PROBABILITY: f64 = 0.01;

/// Workers AI's image classifier and speech recognizer (production only).
const WORKERS_AI_CLASSIFIER: &str = "@cf/microsoft/resnet-50";
const WORKERS_AI_WHISPER: &str = "@cf/openai/whisper";

/// Where an image's labels (and, on Workers AI, an audio file's transcript) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Classifier {
    /// The local model server: `POST {base}/v1/classify` with the image's bytes.
    Server { base: String },
    /// Workers AI through the `AI` binding (production).
    WorkersAi,
}

/// Chooses the classifier from plain settings (unit-tested apart from [`Env`]):
/// `CLASSIFIER` is `workers-ai`, `server` or `off`; unset, `CLASSIFIER_URL` (the local model
/// server's address, which `./scripts/dev` sets) wins, then the `AI` binding, else none. A
/// wrong setting is logged and classifies nothing: labels are a nicety, never a reason to
/// refuse an upload.
fn choose_classifier(
    mode: Option<&str>,
    url: Option<String>,
    has_binding: bool,
) -> Result<Option<Classifier>, String> {
    let server = |url: Option<String>| match url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let base = url.trim_end_matches('/');
            // Either the server's root or its `/v1` (the assistant's base URL) will do.
            let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
            Ok(Some(Classifier::Server { base }))
        }
        Some(url) => Err(format!(
            "CLASSIFIER_URL must be an http(s) URL, not {url:?}"
        )),
        None => Err("CLASSIFIER is server but CLASSIFIER_URL is not set".into()),
    };
    match mode.map(str::to_ascii_lowercase).as_deref() {
        Some("off" | "none") => Ok(None),
        Some("workers-ai") if has_binding => Ok(Some(Classifier::WorkersAi)),
        Some("workers-ai") => Err("CLASSIFIER is workers-ai but there is no AI binding".into()),
        Some("server") => server(url),
        Some(other) => Err(format!(
            "CLASSIFIER {other:?} is not one of workers-ai, server, off"
        )),
        None if url.is_some() => server(url),
        None if has_binding => Ok(Some(Classifier::WorkersAi)),
        None => Ok(None),
    }
}

pub(super) fn classifier(env: &Env) -> Option<Classifier> {
    choose_classifier(
        config::string(env, "CLASSIFIER").as_deref(),
        config::string(env, "CLASSIFIER_URL"),
        env.ai("AI").is_ok(),
    )
    .unwrap_or_else(|e| {
        console_error!("classifier configuration: {e}");
        None
    })
}

/// Labels for a stored image, a transcript for stored audio (Workers AI only): read back from
/// R2, bounded in size and time. Any failure is logged and the file is stored without them.
pub(super) async fn describe(
    env: &Env,
    bucket: &worker::Bucket,
    key: &str,
    sniffed: Sniffed,
    size: u64,
) -> (Vec<Label>, Option<String>) {
    let Some(classifier) = classifier(env) else {
        return (Vec::new(), None);
    };
    let limit = match classifier {
        Classifier::Server { .. } => CLASSIFY_MAX_BYTES,
        Classifier::WorkersAi => WORKERS_AI_MAX_BYTES,
    };
    let wanted = match sniffed.kind {
        Kind::Image => true,
        Kind::Audio => classifier == Classifier::WorkersAi,
        _ => false,
    };
    if !wanted || size > limit {
        return (Vec::new(), None);
    }
    let work = async {
        let object = bucket
            .get(key)
            .execute()
            .await?
            .ok_or_else(|| worker::Error::RustError("the object just stored is gone".into()))?;
        let bytes = match object.body() {
            Some(body) => body.bytes().await?,
            None => Vec::new(),
        };
        match (&classifier, sniffed.kind) {
            (Classifier::Server { base }, _) => {
                Ok((classify_on_server(base, sniffed.mime, bytes).await?, None))
            }
            (Classifier::WorkersAi, Kind::Audio) => {
                Ok((Vec::new(), transcribe_workers_ai(env, bytes).await?))
            }
            (Classifier::WorkersAi, _) => Ok((classify_workers_ai(env, bytes).await?, None)),
        }
    };
    let started = crate::time::now();
    let outcome = match select(Box::pin(work), Box::pin(Delay::from(CLASSIFY_TIMEOUT))).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(worker::Error::RustError(format!(
            "no answer within {} s",
            CLASSIFY_TIMEOUT.as_secs()
        ))),
    };
    match outcome {
        Ok(described) => {
            worker::console_log!(
                "{}",
                serde_json::json!({
                    "event": "file_described",
                    "key": key,
                    "labels": described.0.len(),
                    "transcript": described.1.is_some(),
                    "ms": crate::time::now() - started,
                })
            );
            described
        }
        Err(e) => {
            console_warn!("could not describe {key}; stored without labels: {e}");
            (Vec::new(), None)
        }
    }
}

/// The model server's answer to `POST /v1/classify`.
#[derive(Debug, Deserialize)]
struct ServerClassification {
    labels: Vec<ServerLabel>,
}

#[derive(Debug, Deserialize)]
struct ServerLabel {
    name: String,
    probability: f64,
}

/// One of Workers AI's image classification results.
#[derive(Debug, Deserialize)]
struct WorkersAiLabel {
    label: String,
    score: f64,
}

/// The likeliest labels, at most [`LABELS_MAX`], none under [`LABEL_MIN_PROBABILITY`], as
/// thousandths.
fn top_labels(found: impl IntoIterator<Item = (String, f64)>) -> Vec<Label> {
    let mut found: Vec<(String, f64)> = found
        .into_iter()
        .filter(|(name, p)| p.is_finite() && *p >= LABEL_MIN_PROBABILITY && !name.trim().is_empty())
        .collect();
    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    found
        .into_iter()
        .take(LABELS_MAX)
        .map(|(name, p)| Label {
            name: name.trim().to_owned(),
            score: (p.min(1.0) * 1000.0).round() as u16,
        })
        .collect()
}

fn server_labels(body: &str) -> Result<Vec<Label>, String> {
    let parsed: ServerClassification =
        serde_json::from_str(body).map_err(|e| format!("classifier answer: {e}"))?;
    Ok(top_labels(
        parsed.labels.into_iter().map(|l| (l.name, l.probability)),
    ))
}

fn workers_ai_labels(value: serde_json::Value) -> Result<Vec<Label>, String> {
    let parsed: Vec<WorkersAiLabel> =
        serde_json::from_value(value).map_err(|e| format!("resnet-50 answer: {e}"))?;
    Ok(top_labels(parsed.into_iter().map(|l| (l.label, l.score))))
}

/// Workers AI's transcript of an audio file (its `text`), if it heard anything.
fn whisper_text(value: &serde_json::Value) -> Option<String> {
    let text = value.get("text")?.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

async fn classify_on_server(base: &str, mime: &str, bytes: Vec<u8>) -> worker::Result<Vec<Label>> {
    let headers = Headers::new();
    headers.set("Content-Type", mime)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(bytes.as_slice()).into(),
        ));
    let req = Request::new_with_init(&format!("{base}/v1/classify"), &init)?;
    let mut response = Fetch::Request(req).send().await?;
    let text = response.text().await?;
    if response.status_code() != 200 {
        let detail: String = text.chars().take(300).collect();
        return Err(worker::Error::RustError(format!(
            "classifier answered {}: {detail}",
            response.status_code()
        )));
    }
    server_labels(&text).map_err(worker::Error::RustError)
}

#[derive(Serialize)]
struct ImageInput {
    image: Vec<u8>,
}

#[derive(Serialize)]
struct AudioInput {
    audio: Vec<u8>,
}

async fn classify_workers_ai(env: &Env, bytes: Vec<u8>) -> worker::Result<Vec<Label>> {
    let value: serde_json::Value = env
        .ai("AI")?
        .run(WORKERS_AI_CLASSIFIER, ImageInput { image: bytes })
        .await?;
    workers_ai_labels(value).map_err(worker::Error::RustError)
}

async fn transcribe_workers_ai(env: &Env, bytes: Vec<u8>) -> worker::Result<Option<String>> {
    let value: serde_json::Value = env
        .ai("AI")?
        .run(WORKERS_AI_WHISPER, AudioInput { audio: bytes })
        .await?;
    Ok(whisper_text(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_model_servers_answer_becomes_the_likeliest_labels_in_thousandths() {
        // Recorded from `POST /v1/classify` with ../shared/fixtures/images/chelsea-224.png.
        let body = r#"{"labels":[
            {"index":285,"name":"Egyptian Mau","probability":0.7992},
            {"index":282,"name":"a cat having a striped coat","probability":0.0841},
            {"index":281,"name":"tabby cat","probability":0.0830},
            {"index":287,"name":"lynx","probability":0.0119},
            {"index":728,"name":"plastic bag","probability":0.0009}],
            "width":224,"height":224,"format":"png","model":"efficientnet-lite0"}"#;
        let labels = server_labels(body).unwrap();
        let names: Vec<(&str, u16)> = labels.iter().map(|l| (l.name.as_str(), l.score)).collect();
        assert_eq!(
            names,
            [
                ("Egyptian Mau", 799),
                ("a cat having a striped coat", 84),
                ("tabby cat", 83),
                ("lynx", 12),
            ]
        );
        assert!(server_labels("{\"error\":{}}").is_err());
    }

    #[test]
    fn workers_ais_answer_becomes_at_most_five_labels_likeliest_first() {
        // The shape of `@cf/microsoft/resnet-50`'s output (a list of label and score).
        let value = serde_json::json!([
            {"label": "EGYPTIAN CAT", "score": 0.41},
            {"label": "TABBY", "score": 0.22},
            {"label": "TIGER CAT", "score": 0.2},
            {"label": "LYNX", "score": 0.05},
            {"label": "WOOD RABBIT", "score": 0.03},
            {"label": "CARTON", "score": 0.02},
            {"label": "PAPER TOWEL", "score": 0.005}
        ]);
        let labels = workers_ai_labels(value).unwrap();
        assert_eq!(labels.len(), LABELS_MAX);
        assert_eq!(labels[0].name, "EGYPTIAN CAT");
        assert_eq!(labels[0].score, 410);
        assert!(labels.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(workers_ai_labels(serde_json::json!({"labels": []})).is_err());
    }

    #[test]
    fn whispers_text_is_the_transcript_and_silence_is_none() {
        let heard = serde_json::json!({"text": " Hello there. ", "word_count": 2});
        assert_eq!(whisper_text(&heard).as_deref(), Some("Hello there."));
        assert_eq!(whisper_text(&serde_json::json!({"text": "  "})), None);
        assert_eq!(whisper_text(&serde_json::json!({})), None);
    }

    #[test]
    fn the_classifier_is_the_servers_when_its_url_is_set_else_workers_ai_when_bound() {
        let url = || Some("http://127.0.0.1:8788/v1/".to_owned());
        let server = Some(Classifier::Server {
            base: "http://127.0.0.1:8788".into(),
        });
        assert_eq!(choose_classifier(None, url(), true), Ok(server.clone()));
        assert_eq!(choose_classifier(Some("server"), url(), false), Ok(server));
        assert_eq!(
            choose_classifier(None, None, true),
            Ok(Some(Classifier::WorkersAi))
        );
        assert_eq!(
            choose_classifier(Some("workers-ai"), url(), true),
            Ok(Some(Classifier::WorkersAi))
        );
        assert_eq!(choose_classifier(None, None, false), Ok(None));
        assert_eq!(choose_classifier(Some("off"), url(), true), Ok(None));
        assert!(choose_classifier(Some("workers-ai"), None, false).is_err());
        assert!(choose_classifier(Some("server"), None, true).is_err());
        assert!(choose_classifier(None, Some("ftp://x".into()), true).is_err());
        assert!(choose_classifier(Some("magic"), url(), true).is_err());
    }
}
