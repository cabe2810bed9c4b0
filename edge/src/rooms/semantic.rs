//! Semantic search in production: messages embedded with a Workers AI embedding model into a
//! Vectorize index (one namespace per room), ranked together with FTS5 by
//! [`shared::search::hybrid_rank`]. Used only when both bindings exist (`AI` and `VECTORIZE`);
//! locally (wrangler dev, offline) neither exists and search is FTS5 alone.
//!
//! workers-rs 0.8 wraps Workers AI but not Vectorize, so the index is called through its JS
//! methods (`upsert`, `deleteByIds`, `query`).
//!
//! Not run in this repository's tests: Workers AI and Vectorize cannot run offline.

use js_sys::{Array, Function, Object, Promise, Reflect};
use serde::{Deserialize, Serialize};
use shared::protocol::{Event, EventKind, Seq};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, Ai, Env};

use crate::config;

/// The Vectorize binding's name.
pub const INDEX_BINDING: &str = "VECTORIZE";
/// The embedding model unless `EMBEDDING_MODEL` says otherwise (384 dimensions; the index must
/// be created with the same).
const DEFAULT_MODEL: &str = "@cf/baai/bge-small-en-v1.5";
/// Semantic candidates fetched per search (fused with as many full-text ones).
pub const CANDIDATES: u32 = 50;

/// The two bindings, when both exist.
pub struct Semantic {
    ai: Ai,
    index: JsValue,
    model: String,
}

#[derive(Serialize)]
struct EmbedInput<'a> {
    text: &'a [&'a str],
}

#[derive(Deserialize)]
struct EmbedOutput {
    data: Vec<Vec<f32>>,
}

fn js_error(e: JsValue) -> worker::Error {
    worker::Error::RustError(format!("vectorize: {e:?}"))
}

/// The vector id of a message: ids are unique per index, so they carry the room.
fn vector_id(slug: &str, seq: Seq) -> String {
    format!("{slug}:{seq}")
}

impl Semantic {
    /// Both bindings, or `None` (then search is full-text only).
    pub fn from_env(env: &Env) -> Option<Semantic> {
        let ai = env.ai("AI").ok()?;
        let index = Reflect::get(env.as_ref(), &JsValue::from_str(INDEX_BINDING)).ok()?;
        if index.is_undefined() || index.is_null() {
            return None;
        }
        let model = config::string(env, "EMBEDDING_MODEL").unwrap_or_else(|| DEFAULT_MODEL.into());
        Some(Semantic { ai, index, model })
    }

    async fn call(&self, method: &str, args: &[JsValue]) -> worker::Result<JsValue> {
        let f: Function = Reflect::get(&self.index, &JsValue::from_str(method))
            .map_err(js_error)?
            .dyn_into()
            .map_err(js_error)?;
        let promise = f
            .apply(&self.index, &args.iter().collect::<Array>())
            .map_err(js_error)?;
        JsFuture::from(Promise::from(promise))
            .await
            .map_err(js_error)
    }

    /// Embeds texts (one vector each).
    pub async fn embed(&self, texts: &[&str]) -> worker::Result<Vec<Vec<f32>>> {
        let out: EmbedOutput = self.ai.run(&self.model, EmbedInput { text: texts }).await?;
        Ok(out.data)
    }

    /// Indexes (or re-indexes, after an edit) a message's text.
    pub async fn upsert(&self, slug: &str, seq: Seq, text: &str) -> worker::Result<()> {
        let Some(values) = self.embed(&[text]).await?.pop() else {
            return Ok(());
        };
        let vector = Object::new();
        let set = |k: &str, v: JsValue| Reflect::set(&vector, &JsValue::from_str(k), &v);
        set("id", JsValue::from_str(&vector_id(slug, seq))).map_err(js_error)?;
        set("namespace", JsValue::from_str(slug)).map_err(js_error)?;
        set(
            "values",
            values
                .iter()
                .map(|v| JsValue::from_f64(f64::from(*v)))
                .collect::<Array>()
                .into(),
        )
        .map_err(js_error)?;
        self.call("upsert", &[Array::of1(&vector).into()]).await?;
        Ok(())
    }

    /// Removes a deleted message from the index.
    pub async fn delete(&self, slug: &str, seq: Seq) -> worker::Result<()> {
        let ids = Array::of1(&JsValue::from_str(&vector_id(slug, seq)));
        self.call("deleteByIds", &[ids.into()]).await?;
        Ok(())
    }

    /// The room's messages nearest in meaning to `text`, best first.
    pub async fn query(&self, slug: &str, text: &str) -> worker::Result<Vec<Seq>> {
        let Some(values) = self.embed(&[text]).await?.pop() else {
            return Ok(Vec::new());
        };
        let options = Object::new();
        let set = |k: &str, v: JsValue| Reflect::set(&options, &JsValue::from_str(k), &v);
        set("topK", JsValue::from(CANDIDATES)).map_err(js_error)?;
        set("namespace", JsValue::from_str(slug)).map_err(js_error)?;
        let vector: Array = values
            .iter()
            .map(|v| JsValue::from_f64(f64::from(*v)))
            .collect();
        let result = self.call("query", &[vector.into(), options.into()]).await?;
        let matches: Array = Reflect::get(&result, &JsValue::from_str("matches"))
            .map_err(js_error)?
            .dyn_into()
            .map_err(js_error)?;
        let prefix = format!("{slug}:");
        Ok(matches
            .iter()
            .filter_map(|m| Reflect::get(&m, &JsValue::from_str("id")).ok()?.as_string())
            .filter_map(|id| id.strip_prefix(&prefix)?.parse::<Seq>().ok())
            .collect())
    }
}

/// Keeps the index true after stored events: a new or edited text is (re-)embedded, a deleted
/// message leaves the index. Failures are logged; full-text search is unaffected, and search
/// results are read back from SQLite, so a deleted message is never returned even if its
/// vector lingers.
pub async fn index_events(semantic: &Semantic, slug: &str, events: &[Event]) {
    for event in events {
        let result = match &event.kind {
            EventKind::Message { text, .. } | EventKind::Reply { text, .. } => {
                semantic.upsert(slug, event.seq, text).await
            }
            EventKind::Edit { target, text } => semantic.upsert(slug, *target, text).await,
            EventKind::Delete { target } => semantic.delete(slug, *target).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            console_error!("semantic index of {slug} event {}: {e}", event.seq);
        }
    }
}
