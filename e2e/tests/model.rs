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
