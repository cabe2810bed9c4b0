//! The build's version, shown in the app's footer: what `scripts/build` put in
//! `DC_BUILD_VERSION` (the git commit, `-dirty` with uncommitted changes), or the crate's own
//! version when built without it. The Worker reports the same value at `/api/health`
//! (`edge/src/version.rs`), so a user's report names what both halves ran.

pub const BUILD: &str = match option_env!("DC_BUILD_VERSION") {
    Some(v) if !v.is_empty() => v,
    _ => env!("CARGO_PKG_VERSION"),
};
