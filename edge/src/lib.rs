//! Durable Chat's edge: the Worker (routes, sessions, the room directory) and the `ChatRoom`
//! Durable Object. Thin glue over the `shared` crate, which holds every room rule.

mod ai;
mod ai_stats;
mod api;
mod audit;
pub mod auth;
mod body;
mod cache;
mod config;
mod cookies;
mod directory;
mod files;
mod http;
mod logs;
mod memory;
mod metrics;
mod network;
mod preview;
mod profiles;
mod random;
mod rooms;
pub mod session;
mod settings;
mod time;
mod version;

pub use metrics::Metrics;
pub use rooms::object::ChatRoom;

use worker::{event, Context, Env, Request, Response};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Static assets are served by the runtime (Workers static assets, `run_worker_first` only for
/// `/api/*`), so everything that reaches this handler is an API request.
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    Ok(api::handle(req, &env, &ctx).await)
}
