//! Repository tasks that need no server (`cargo run -p xtask -- <task>`, wrapped by
//! `scripts/deploy` and `scripts/notices`):
//!
//! - `deploy [--dry-run] [--no-build] [--pages]`: production in one command ([`deploy`]).
//! - `notices [--check]`: the crate licenses in `THIRD_PARTY_NOTICES.md` ([`notices`]).
//! - `precache DIST`: the service worker's precache manifest, written into `DIST/sw.js` by
//!   `scripts/build-app` ([`precache`]).
//! - `first-download DIST`: the app's first download against its budget ([`download`]).
//!
//! The production configuration is checked against the Worker's code by [`check`], from what
//! [`scan`] finds the code reading and what [`config`] finds wrangler.toml declaring. [`modules`]
//! keeps the Worker's and the app's modules free of import cycles (its tests).

pub mod check;
pub mod config;
pub mod deploy;
pub mod download;
pub mod modules;
pub mod notices;
pub mod precache;
pub mod scan;
pub mod settings;

use std::path::PathBuf;

/// The repository's root (this crate lives in `xtask/`).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
