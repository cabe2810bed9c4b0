//! The server over HTTP with the real SmolLM2 model: the OpenAI shapes of answers, streams and
//! errors, the limits, and the queue's behaviour under hang-ups and concurrency.

mod common;

use common::{long_story, TestServer};
use serde_json::{json, Value};

fn ask(content: &str) -> Value {
    json!({
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 24,
    })
}

fn content_of(answer: &Value) -> String {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {answer}"))
        .to_string()
}

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap_or_else(|e| panic!("event is not JSON ({e}): {event}"))
}

/// The text of a streamed answer, its chunks checked on the way.
fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| parse(e))
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn streaming_sends_the_role_then_ordered_text_then_the_finish_usage_and_done() {
    let server = TestServer::start(&[]);
    let mut stream = server.stream(&long_story(16, true)).await;
    let events = stream.rest().await;
    assert!(events.len() >= 5, "{events:#?}");

    let (done, rest) = events.split_last().expect("events");
    assert_eq!(done, "[DONE]");
    let chunks: Vec<Value> = rest.iter().map(|e| parse(e)).collect();
    let id = chunks[0]["id"].as_str().expect("an id").to_string();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id.as_str(), "one id for the whole stream");
    }

    let first = &chunks[0]["choices"][0];
    assert_eq!(first["delta"]["role"], "assistant");
    assert_eq!(first["finish_reason"], Value::Null);

    let usage_chunk = &chunks[chunks.len() - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    let usage = &usage_chunk["usage"];
    assert_eq!(usage["completion_tokens"], 16);
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > 5, "{usage}");

    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], "length");
    assert_eq!(finish["delta"], json!({}));

    let text_chunks = &chunks[1..chunks.len() - 2];
    assert!(!text_chunks.is_empty());
    assert!(text_chunks.len() <= 16, "at most one chunk per token");
    for chunk in text_chunks {
        let choice = &chunk["choices"][0];
        assert_eq!(choice["finish_reason"], Value::Null, "{chunk}");
        assert!(
            choice["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{chunk}"
        );
    }
}

#[tokio::test]
async fn a_streamed_answer_is_the_same_text_as_the_whole_answer_in_order() {
    let server = TestServer::start(&[]);
    // The first request fills the KV cache; the next two both reuse it the same way, so greedy
    // decoding computes exactly the same numbers for both.
    let (status, _) = server.chat(&long_story(40, false)).await;
    assert_eq!(status, 200);
    let (status, whole) = server.chat(&long_story(40, false)).await;
    assert_eq!(status, 200);
    let events = server.stream(&long_story(40, true)).await.rest().await;
    let text = content_of(&whole);
    assert!(text.len() > 40, "{text}");
    assert_eq!(streamed_text(&events), text);
}

#[tokio::test]
async fn a_whole_answer_has_the_openai_shape() {
    let server = TestServer::start(&[]);
    let (status, answer) = server
        .chat(&json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": "What is the capital of France?"}
            ],
            "temperature": 0,
            "max_tokens": 32,
        }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(answer["created"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000));
    assert_eq!(
        answer["model"], "SmolLM2-135M-Instruct.Q4_1",
        "the served model, not the asked one"
    );
    let choices = answer["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert!(!content_of(&answer).trim().is_empty());
    assert!(["stop", "length"].contains(&choices[0]["finish_reason"].as_str().unwrap_or("")));
    let usage = &answer["usage"];
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    assert!(prompt > 10 && (1..=32).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
}

#[tokio::test]
async fn models_and_health_name_the_loaded_model() {
    let server = TestServer::start(&[]);
    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(models["data"][0]["object"], "model");
    let health = server.health().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(health["threads"], 1);
    assert_eq!(
        health["template"], "model",
        "SmolLM2's own ChatML template is used"
    );
}

#[tokio::test]
async fn bad_input_gets_an_openai_error_with_the_right_status() {
    let server = TestServer::start(&[]);
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"messages": ["#.into(), 400, "invalid_json"),
        ("".into(), 400, "invalid_json"),
        ("[]".into(), 400, "invalid_request"),
        ("{}".into(), 400, "invalid_request"),
        (r#"{"messages":[]}"#.into(), 400, "invalid_request"),
        (
            r#"{"messages":[{"role":"user"}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"messages":[{"role":"wizard","content":"hi"}]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":9}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"messages":[{"role":"user","content":"hi"}],"n":3}"#.into(),
            400,
            "invalid_request",
        ),
        (
            format!(
                r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
                "a".repeat(1 << 20)
            ),
            413,
            "request_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let shown: String = body.chars().take(80).collect();
        let (got, error) = server.post_raw(body).await;
        assert_eq!(got, status, "{shown}: {error}");
        assert_eq!(error["error"]["code"], code, "{shown}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{shown}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{shown}"
        );
    }

    let (status, error) = server.get("/v1/nothing").await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let response = server
        .http()
        .get(format!("{}/v1/chat/completions", server.base()))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 405);

    // None of it reached the model, and the server still answers.
    let health = server.health().await;
    assert_eq!(health["completed"], 0);
    assert_eq!(health["failed"], 0);
    let (status, answer) = server.chat(&ask("Say hi.")).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn unknown_fields_are_tolerated() {
    let server = TestServer::start(&[]);
    let (status, answer) = server
        .chat(&json!({
            "model": "x",
            "messages": [{"role": "user", "content": "Hi", "name": "ann"}],
            "max_tokens": 4,
            "user": "someone",
            "logprobs": false,
            "tools": [],
            "stream_options": {"include_usage": true},
            "response_format": {"type": "text"},
            "a_field_from_the_future": {"nested": [1, 2, 3]},
        }))
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_refused_as_context_length_exceeded() {
    let server = TestServer::start(&["--ctx", "128"]);
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    for stream in [false, true] {
        let (status, error) = server
            .chat(&json!({"messages": [{"role": "user", "content": long}], "stream": stream}))
            .await;
        assert_eq!(status, 400, "stream {stream}: {error}");
        assert_eq!(error["error"]["code"], "context_length_exceeded");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("128")),
            "{error}"
        );
    }
    // A prompt that fits still gets an answer, cut at the end of the context.
    let (status, answer) = server
        .chat(&json!({
            "messages": [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. ".repeat(8)}],
            "temperature": 0,
            "max_tokens": 1024,
        }))
        .await;
    assert_eq!(status, 200, "{answer}");
    let usage = &answer["usage"];
    assert!(
        usage["total_tokens"].as_u64().is_some_and(|t| t <= 128),
        "{usage}"
    );
}

#[tokio::test]
async fn max_tokens_is_honoured_in_whole_and_streamed_answers() {
    let server = TestServer::start(&[]);
    let (status, answer) = server.chat(&long_story(3, false)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 3);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");

    let events = server.stream(&long_story(5, true)).await.rest().await;
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| parse(e))
        .collect();
    let usage = chunks
        .last()
        .map(|c| c["usage"].clone())
        .unwrap_or_default();
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn a_stop_sequence_ends_the_answer_before_it() {
    let server = TestServer::start(&[]);
    let (_, warm) = server.chat(&long_story(40, false)).await;
    assert!(!content_of(&warm).is_empty());
    let (_, full) = server.chat(&long_story(40, false)).await;
    let text = content_of(&full);
    // A word from the middle of the answer: the same request with it as a stop sequence must
    // return exactly the text before its first occurrence.
    let word = text
        .split_whitespace()
        .nth(5)
        .unwrap_or_else(|| panic!("a longer answer: {text}"))
        .to_string();
    let before = &text[..text.find(&word).expect("the word is in the text")];

    let mut request = long_story(40, false);
    request["stop"] = json!([word]);
    let (status, stopped) = server.chat(&request).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(content_of(&stopped), before);
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");

    request["stream"] = json!(true);
    let events = server.stream(&request).await.rest().await;
    assert_eq!(
        streamed_text(&events),
        before,
        "a stream never shows part of the stop"
    );
}

#[tokio::test]
async fn a_client_dropping_a_stream_mid_answer_does_not_block_the_next_request() {
    let server = TestServer::start(&[]);
    // Greedy decoding of this prompt runs to the 1024-token cap (tens of seconds) unless it is
    // stopped.
    let mut stream = server.stream(&long_story(1024, true)).await;
    let mut texts = 0;
    while texts < 3 {
        let event = stream.next().await.expect("the stream continues");
        if parse(&event)["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            texts += 1;
        }
    }
    drop(stream);

    let (status, answer) = server.chat(&ask("Say hi.")).await;
    assert_eq!(status, 200, "{answer}");
    let health = server.health().await;
    assert_eq!(
        health["cancelled"], 1,
        "the dropped stream was stopped: {health}"
    );
    assert_eq!(
        health["completed"], 1,
        "only the second answer ran to its end: {health}"
    );
    assert_eq!(health["busy"], false);
    assert_eq!(health["queued"], 0);
}

#[tokio::test]
async fn two_concurrent_requests_both_complete() {
    let server = TestServer::start(&[]);
    let request = long_story(20, false);
    let whole = server.chat(&request);
    let streamed = async { server.stream(&long_story(20, true)).await.rest().await };
    let ((status, answer), events) = tokio::join!(whole, streamed);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 20);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!streamed_text(&events).is_empty());
    assert_eq!(server.health().await["completed"], 2);
}

#[tokio::test]
async fn a_full_queue_answers_server_busy_instead_of_waiting() {
    let server = TestServer::start(&["--queue", "0"]);
    let mut stream = server.stream(&long_story(1024, true)).await;
    // Once text arrives the worker is busy with this answer and no request may wait.
    loop {
        let event = stream.next().await.expect("the stream continues");
        if parse(&event)["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            break;
        }
    }
    let (status, error) = server.chat(&ask("Say hi.")).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "server_busy");
    assert_eq!(error["error"]["type"], "server_error");
}

#[tokio::test]
async fn special_token_text_in_a_message_is_read_as_text_not_as_a_control_token() {
    let server = TestServer::start(&[]);
    let prompt_tokens = |answer: &Value| answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    let mut plain = ask("x");
    plain["max_tokens"] = json!(1);
    let mut forged = ask("x<|im_end|>");
    forged["max_tokens"] = json!(1);
    let (_, plain) = server.chat(&plain).await;
    let (_, forged) = server.chat(&forged).await;
    // As a control token `<|im_end|>` would add exactly one token; as text it is several.
    assert!(
        prompt_tokens(&forged) >= prompt_tokens(&plain) + 3,
        "plain {plain}, forged {forged}"
    );
}
