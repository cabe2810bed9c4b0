//! The assistant's aggregates for admins (`GET /api/admin/ai`): per room and model, how many
//! answers, how they ended, their speed and tokens, and the votes; plus the most recent
//! low-rated answers with their reasons. Read from the D1 tables the rooms write
//! (`ai_answers`, `ai_feedback`).

use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::JsValue;
use worker::Env;

/// One room × model line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelLine {
    /// Room slug.
    pub room: String,
    /// Model.
    pub model: String,
    /// Answer versions finished (done, stopped or failed).
    pub answers: f64,
    /// Of which failed.
    pub failed: f64,
    /// Of which stopped.
    pub stopped: f64,
    /// Mean time to first token, ms.
    pub avg_first_token_ms: Option<f64>,
    /// Mean total time, ms.
    pub avg_total_ms: Option<f64>,
    /// Prompt tokens.
    pub tokens_in: f64,
    /// Answer tokens.
    pub tokens_out: f64,
    /// Thumbs up.
    #[serde(default)]
    pub up: f64,
    /// Thumbs down.
    #[serde(default)]
    pub down: f64,
    /// up / (up + down), when anyone voted.
    #[serde(default)]
    pub ratio: Option<f64>,
}

/// A recent thumbs-down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LowRated {
    /// Room slug.
    pub room: String,
    /// The answer message.
    pub target: f64,
    /// Model.
    pub model: String,
    /// The voter's reason, if any.
    pub reason: Option<String>,
    /// When.
    pub at: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per room and model.
    pub lines: Vec<ModelLine>,
    /// The 20 most recent thumbs-down.
    pub recent_low: Vec<LowRated>,
}

#[derive(Deserialize)]
struct Votes {
    room: String,
    model: String,
    up: f64,
    down: f64,
}

/// Builds the report.
pub async fn report(env: &Env) -> worker::Result<Report> {
    let db = env.d1("DB")?;
    let mut lines: Vec<ModelLine> = db
        .prepare(
            "SELECT room, model, COUNT(*) AS answers,
                SUM(state = 'failed') AS failed, SUM(state = 'stopped') AS stopped,
                AVG(CASE WHEN state != 'failed' THEN first_token_ms END) AS avg_first_token_ms,
                AVG(CASE WHEN state != 'failed' THEN total_ms END) AS avg_total_ms,
                SUM(tokens_in) AS tokens_in, SUM(tokens_out) AS tokens_out
             FROM ai_answers GROUP BY room, model ORDER BY answers DESC LIMIT 500",
        )
        .all()
        .await?
        .results()?;
    let votes: Vec<Votes> = db
        .prepare(
            "SELECT room, model, SUM(vote = 1) AS up, SUM(vote = -1) AS down
             FROM ai_feedback GROUP BY room, model",
        )
        .all()
        .await?
        .results()?;
    for v in votes {
        let at = lines
            .iter()
            .position(|l| l.room == v.room && l.model == v.model);
        let line = match at {
            Some(i) => &mut lines[i],
            None => {
                lines.push(ModelLine {
                    room: v.room.clone(),
                    model: v.model.clone(),
                    ..ModelLine::default()
                });
                let last = lines.len() - 1;
                &mut lines[last]
            }
        };
        line.up = v.up;
        line.down = v.down;
        line.ratio = (v.up + v.down > 0.0).then(|| v.up / (v.up + v.down));
    }
    let recent_low: Vec<LowRated> = db
        .prepare(
            "SELECT room, target, model, reason, at FROM ai_feedback
             WHERE vote = -1 ORDER BY at DESC LIMIT ?1",
        )
        .bind(&[JsValue::from(20)])?
        .all()
        .await?
        .results()?;
    Ok(Report { lines, recent_low })
}
