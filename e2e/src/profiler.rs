//! A CPU profile of the Worker (and its Durable Objects, which run in the same isolate under
//! `wrangler dev`) through the V8 inspector that `wrangler dev` exposes: the Chrome DevTools
//! protocol's `Profiler` domain. The result is a `.cpuprofile` that Chrome DevTools opens, and
//! [`self_time_by_function`] sums it for a report.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::Result;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running CPU profile.
pub struct Profiler {
    ws: Socket,
    next_id: u64,
}

impl Profiler {
    /// Attaches to the inspector on `port` and starts sampling every `interval_us`.
    pub async fn start(port: u16, interval_us: u64) -> Result<Profiler> {
        let mut profiler = Profiler::attach(port).await?;
        profiler.call("Profiler.enable", json!({})).await?;
        profiler
            .call(
                "Profiler.setSamplingInterval",
                json!({ "interval": interval_us }),
            )
            .await?;
        profiler.call("Profiler.start", json!({})).await?;
        Ok(profiler)
    }

    /// A connection to the inspector on `port` (its first debuggable target), for calls of any
    /// DevTools protocol domain.
    pub async fn attach(port: u16) -> Result<Profiler> {
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json"))
            .await?
            .json()
            .await
            .context("the inspector's target list")?;
        let url = targets
            .iter()
            .find_map(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| anyhow!("no debuggable target on the inspector: {targets:?}"))?
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(Profiler { ws, next_id: 0 })
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Stops sampling; the profile (`Profiler.Profile`).
    pub async fn stop(mut self) -> Result<Value> {
        let result = self.call("Profiler.stop", json!({})).await?;
        let _ = self.ws.close(None).await;
        Ok(result["profile"].clone())
    }

    /// Calls `method` and returns its result (what arrives before the answer is skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(request.to_string())).await?;
        while let Some(message) = self.ws.next().await {
            let Message::Text(text) = message? else {
                continue;
            };
            let value: Value = serde_json::from_str(&text)?;
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    anyhow::bail!("{method}: {error}");
                }
                return Ok(value["result"].clone());
            }
        }
        anyhow::bail!("the inspector closed during {method}")
    }
}

/// Milliseconds of self time per function (`name (url:line)`), largest first.
pub fn self_time_by_function(profile: &Value) -> Vec<(String, f64)> {
    let mut names = HashMap::new();
    for node in profile["nodes"].as_array().into_iter().flatten() {
        let frame = &node["callFrame"];
        let name = frame["functionName"].as_str().unwrap_or_default();
        let url = frame["url"].as_str().unwrap_or_default();
        let label = match (name, url) {
            ("", "") => "(anonymous)".to_owned(),
            (name, "") => name.to_owned(),
            (name, url) => {
                let file = url.rsplit('/').next().unwrap_or(url);
                format!("{name} ({file})")
            }
        };
        names.insert(node["id"].as_u64().unwrap_or_default(), label);
    }
    let mut totals: HashMap<String, f64> = HashMap::new();
    let samples = profile["samples"].as_array().cloned().unwrap_or_default();
    let deltas = profile["timeDeltas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (sample, delta) in samples.iter().zip(deltas.iter().skip(1).chain([&json!(0)])) {
        let label = names
            .get(&sample.as_u64().unwrap_or_default())
            .cloned()
            .unwrap_or_default();
        *totals.entry(label).or_default() += delta.as_f64().unwrap_or_default() / 1000.0;
    }
    let mut totals: Vec<(String, f64)> = totals.into_iter().collect();
    totals.sort_by(|a, b| b.1.total_cmp(&a.1));
    totals
}
