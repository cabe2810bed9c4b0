//! The local model server fixture the assistant's integration tests use: it starts the built
//! binary with the real model and answers at the URL it reports.

use e2e::model::ModelServer;
use serde_json::json;

#[tokio::test]
async fn the_model_fixture_serves_openai_chat_completions_at_its_base_url() -> e2e::Result {
    let model = ModelServer::start().await?;
    assert!(model.base_url().starts_with("http://127.0.0.1:"));
    assert!(model.base_url().ends_with("/v1"));
    assert_eq!(model.model(), "SmolLM2-135M-Instruct.Q4_1");

    let http = reqwest::Client::new();
    let models: serde_json::Value = http
        .get(format!("{}/models", model.base_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(models["data"][0]["id"], model.model());

    let response = http
        .post(format!("{}/chat/completions", model.base_url()))
        .json(&json!({
            "model": model.model(),
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "temperature": 0,
        }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value = response.json().await?;
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(!text.trim().is_empty(), "{answer}");
    Ok(())
}

/// The integration case with the real model: SmolLM2 answers a mention through the
/// running Worker; two clients get the same final text, and one that reconnects mid-answer
/// gets the whole answer exactly once.
#[tokio::test]
async fn the_local_model_answers_a_mention_streamed_to_two_clients_and_one_that_reconnects(
) -> e2e::Result {
    use e2e::watcher::Watcher;
    use e2e::{unique, DevOptions, DevServer, Session};
    use shared::protocol::AnswerState;

    let model = ModelServer::start().await?;
    let server = DevServer::start(
        DevOptions::default()
            .var("AI_PROVIDER", "openai")
            .var("AI_BASE_URL", model.base_url())
            .var("AI_MODEL", model.model())
            // Long enough for a visible stream, short enough for CI on 2 cores.
            .var("AI_MAX_TOKENS", 96),
    )
    .await?;
    let ann = Session::create(&server, "Ann").await?;
    let bob = Session::create(&server, "Bob").await?;
    let room = ann.create_room(&unique("local model"), "cooking").await?;
    let mut a = Watcher::join(&ann, &room.slug).await?;
    let mut b = Watcher::join(&bob, &room.slug).await?;
    let question = "@assistant Write three short sentences about bread.";
    a.say(question).await?;

    // Bob drops while the answer is being written, holding what he had, and comes back. The
    // first text he sees must still be streaming, or the test never reached the mid-answer
    // path (a real model cannot be held at a gate; 96 tokens leave the reconnect time).
    b.until(|r| {
        r.messages().any(|m| {
            m.answer.as_ref().is_some_and(|a| {
                !m.text.is_empty()
                    || !matches!(a.state, AnswerState::Queued | AnswerState::Streaming)
            })
        })
    })
    .await?;
    let partial = b.answer_to(question).expect("answer");
    assert_eq!(
        partial.answer.as_ref().map(|a| a.state),
        Some(AnswerState::Streaming),
        "the answer had ended before a partial one was seen: {partial:?}"
    );
    let mut held = std::mem::take(&mut b.room);
    held.disconnected();
    b.socket.close().await;
    let mut b = Watcher::rejoin(&bob, &room.slug, held).await?;

    let from_a = a.answer_in(question, AnswerState::Done).await?;
    let from_b = b.answer_in(question, AnswerState::Done).await?;
    assert!(!from_a.text.trim().is_empty());
    assert_eq!(
        from_a.text, from_b.text,
        "the reconnecting client has the same text, once"
    );
    assert!(
        from_b.text.starts_with(&partial.text),
        "{:?} does not continue the partial {:?}",
        from_b.text,
        partial.text
    );
    let meta = from_a.answer.and_then(|x| x.meta).expect("meta");
    assert_eq!(meta.model, model.model());
    assert!(meta.tokens_out > 0 && meta.tokens_out <= 96, "{meta:?}");
    Ok(())
}
