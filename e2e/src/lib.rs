//! Test harness for Durable Chat's integration tests, browser tests and benchmark.
//!
//! Everything here talks to the real Worker under `wrangler dev` (workerd), over the same HTTP
//! API and WebSocket protocol the app uses, through the `shared` crate's types:
//!
//! - [`server::DevServer`] starts and stops `wrangler dev` on free ports with its own persist
//!   directory, and can restart it on the same port and directory (history must survive);
//! - [`client::Session`] is one signed-in guest (its cookie) over the HTTP API;
//! - [`client::RoomSocket`] is one WebSocket to a room, with helpers that fail (never hang) when
//!   the server does not answer in time;
//! - [`browser`] drives headless Chromium through the Debian chromedriver;
//! - [`fake_ai::FakeAi`] is a scripted OpenAI-compatible provider for the assistant tests;
//! - [`model::ModelServer`] starts the local OpenAI-compatible model server (a real model);
//! - [`grounding`] is a generated room with questions and their answers, for measuring
//!   retrieval and grounded answers;
//! - [`crowd`] is thousands of minted guests in one room, each socket read by a task that
//!   counts frames and times the bench's messages (the bench's crowd section);
//! - [`fanout`] runs the real room core natively with tens of thousands of virtual clients and
//!   models one object against a tree of fan-out objects (`docs/scaling.md`);
//! - [`oauth_fake`] is an OAuth 2.0 / OpenID Connect provider on loopback, and [`login::Browser`]
//!   walks sign-in flows through it step by step;
//! - [`fake_cloudflare`] is Cloudflare's API (Worker secrets) on loopback, for the settings page.

pub mod browser;
pub mod client;
pub mod crowd;
pub mod fake_ai;
pub mod fake_cloudflare;
pub mod fake_site;
pub mod fanout;
pub mod grounding;
pub mod login;
pub mod model;
pub mod oauth_fake;
pub mod peer;
pub mod profiler;
pub mod server;
pub mod watcher;

pub use client::{Joined, RoomSocket, Session};
pub use server::{DevOptions, DevServer};

/// The error type of the harness: a message with context, printed plainly on failure.
pub type Error = anyhow::Error;
/// A harness result.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// The repository root (the parent of this crate, or `E2E_REPO_ROOT`), where `wrangler.toml`
/// lives.
pub fn repo_root() -> std::path::PathBuf {
    // The bench compares builds side by side: `E2E_REPO_ROOT` points it at another checkout's
    // built Worker (a worktree of the previous commit) while the generator stays the same.
    if let Some(root) = std::env::var_os("E2E_REPO_ROOT") {
        return root.into();
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A fixture image beside the checkout (`../shared/fixtures/images/<name>`), as an absolute
/// path (chromedriver refuses a path with `..` in it); a clear error when it is missing.
pub fn fixture_image(name: &str) -> Result<std::path::PathBuf> {
    let path = repo_root().join("../shared/fixtures/images").join(name);
    path.canonicalize()
        .map_err(|e| anyhow::anyhow!("the image fixture {} is missing: {e}", path.display()))
}

/// A fixture image's bytes ([`fixture_image`]).
pub fn fixture_image_bytes(name: &str) -> Result<Vec<u8>> {
    let path = fixture_image(name)?;
    std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
}

/// `len` random bytes as hex, from the OS (a clock fallback keeps values distinct within a run
/// should the random source ever fail).
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_le_bytes();
        let n = len.min(nanos.len());
        bytes[..n].copy_from_slice(&nanos[..n]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name no other test (or earlier run against the same persist directory) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(5))
}

/// The built artifacts the server needs, or a clear instruction when they are missing.
pub fn require_build(need_app: bool) -> Result {
    let root = repo_root();
    let mut missing = Vec::new();
    let worker = root.join("edge/build/worker/shim.mjs");
    if !worker.exists() {
        missing.push(worker);
    }
    // The logging Worker runs beside it (`server::logger_config`) when the checkout has one.
    let logger = root.join("logger/build/worker/shim.mjs");
    if root.join("logger/wrangler.toml").exists() && !logger.exists() {
        missing.push(logger);
    }
    let app = root.join("dist/index.html");
    if need_app && !app.exists() {
        missing.push(app);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "run ./scripts/build first: missing {}",
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
