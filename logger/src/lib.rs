//! Durable Chat's logging Worker (issue 12): it owns the `LOGS` KV namespace, stores the
//! structured entries the main Worker sends it (its own failures, the rooms', the assistant's
//! provider failures and the app's reports), scrubbed again on arrival, and lists, filters and
//! tails them for the admin-only `/logs` viewer. The entries, their scrubbing, keys and queries
//! are `shared::logs`; the HTTP API is `api`; the paging and tail rules are `store`, over the
//! small `store::LogKv` interface that `kv` implements on Workers KV.
//!
//! Reached only through the main Worker's service binding: deployed, it has neither a
//! `workers.dev` URL nor routes (`logger/wrangler.toml`).

mod api;
mod kv;
mod store;

use worker::{event, Context, Env, Request, Response};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    api::handle(req, &env).await
}
