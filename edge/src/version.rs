//! The build's version, as `/api/health` reports it: what `scripts/build` put in
//! `DC_BUILD_VERSION` (the git commit, `-dirty` with uncommitted changes), or the crate's own
//! version when built without it. The app shows the same value (`app/src/version.rs`), so a
//! user's report names what both halves ran.

pub const BUILD: &str = match option_env!("DC_BUILD_VERSION") {
    Some(v) if !v.is_empty() => v,
    _ => env!("CARGO_PKG_VERSION"),
};

/// The body of `GET /api/health`.
pub fn health() -> serde_json::Value {
    serde_json::json!({ "ok": true, "version": BUILD })
}
