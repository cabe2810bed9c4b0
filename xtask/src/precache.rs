//! The service worker's precache manifest, written at build time (issue 12, "the service worker
//! precaches the app shell from a manifest generated at build time").
//!
//! Trunk copies `assets/sw.js` into `dist/` unchanged; [`write`] then replaces its placeholder
//! with the list of every file the shell needs, each with a revision (a hash of its bytes). So
//! each deploy that changes any file also changes `sw.js` by a byte, which is what makes a
//! browser install the new worker; and the worker installs exactly the build beside it instead
//! of guessing the hashed names from `index.html` at run time.

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// The worker's placeholder, replaced by the manifest's JSON.
pub const PLACEHOLDER: &str = "/* PRECACHE_MANIFEST */ null";

/// Files of `dist/` that are not part of the shell a browser loads: the worker itself (a
/// browser fetches it on its own schedule) and the hosts' configuration files.
const NOT_SHELL: &[&str] = &["sw.js", "_headers", "_routes.json", "_redirects"];

/// The full bundle's files (scripts/trunk-post-build.js names them): the pages outside the chat,
/// loaded when one is opened. Precaching them would make every first visit download them in
/// the background, and those pages need the server anyway. `index.html` names them, so a new
/// full bundle still changes the manifest's version. The welcome and chat bundles are
/// precached: a new visitor's browser fetches the chat while the sign-in prompt is read.
const ON_DEMAND_PREFIX: &str = "full-";

/// One file of the shell: where the browser asks for it and a hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub url: String,
    pub revision: String,
}

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file at the top of `dist` that the shell needs, sorted by URL; `index.html` is `/`
/// (the app's only page: every route is answered with it).
pub fn entries(dist: &Path) -> Result<Vec<Entry>, String> {
    let read = |e: std::io::Error| format!("reading {}: {e}", dist.display());
    let mut entries = Vec::new();
    for item in fs::read_dir(dist).map_err(read)? {
        let item = item.map_err(read)?;
        if !item.file_type().map_err(read)?.is_file() {
            continue;
        }
        let name = item.file_name().to_string_lossy().into_owned();
        if NOT_SHELL.contains(&name.as_str())
            || name.starts_with('.')
            || name.starts_with(ON_DEMAND_PREFIX)
        {
            continue;
        }
        let bytes = fs::read(item.path()).map_err(read)?;
        let url = if name == "index.html" {
            "/".to_owned()
        } else {
            format!("/{name}")
        };
        entries.push(Entry {
            url,
            revision: digest(&bytes),
        });
    }
    if !entries.iter().any(|e| e.url == "/") {
        return Err(format!(
            "{} has no index.html: build the app first",
            dist.display()
        ));
    }
    entries.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(entries)
}

/// The manifest as the worker reads it: `{ "version", "files": [{ "url", "revision" }] }`,
/// where `version` changes whenever any file does (it names the worker's cache).
pub fn manifest(entries: &[Entry]) -> serde_json::Value {
    let files: Vec<_> = entries
        .iter()
        .map(|e| json!({ "url": e.url, "revision": e.revision }))
        .collect();
    let all: String = entries
        .iter()
        .map(|e| format!("{} {}\n", e.url, e.revision))
        .collect();
    json!({ "version": digest(all.as_bytes()), "files": files })
}

/// Writes the manifest of `dist` into `dist/sw.js`; returns how many files it lists.
pub fn write(dist: &Path) -> Result<usize, String> {
    let entries = entries(dist)?;
    let path = dist.join("sw.js");
    let worker =
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if worker.matches(PLACEHOLDER).count() != 1 {
        return Err(format!(
            "{} must hold `{PLACEHOLDER}` exactly once (was it written already?)",
            path.display()
        ));
    }
    let worker = worker.replace(PLACEHOLDER, &manifest(&entries).to_string());
    fs::write(&path, worker).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const WORKER: &str = "const PRECACHE = /* PRECACHE_MANIFEST */ null;\n";

    #[test]
    fn the_manifest_lists_the_page_as_root_and_every_shell_file_but_not_the_worker_or_headers() {
        let dir = dist(&[
            ("index.html", "<html>"),
            ("app-0123456789abcdef_bg.wasm", "wasm"),
            ("boot.js", "boot"),
            ("sw.js", WORKER),
            ("_headers", "/*"),
        ]);
        fs::create_dir(dir.path().join("snippets")).unwrap();
        let urls: Vec<_> = entries(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.url)
            .collect();
        assert_eq!(urls, ["/", "/app-0123456789abcdef_bg.wasm", "/boot.js"]);
    }

    #[test]
    fn the_full_bundle_is_left_to_load_on_demand() {
        let dir = dist(&[
            ("index.html", "<html>"),
            ("app-0123456789abcdef.js", "glue"),
            ("full-0123456789abcdef.js", "glue"),
            ("full-0123456789abcdef_bg.wasm", "wasm"),
        ]);
        let urls: Vec<_> = entries(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.url)
            .collect();
        assert_eq!(urls, ["/", "/app-0123456789abcdef.js"]);
    }

    #[test]
    fn a_changed_file_changes_its_revision_and_the_version_and_nothing_else() {
        let before = entries(dist(&[("index.html", "a"), ("boot.js", "b")]).path()).unwrap();
        let after = entries(dist(&[("index.html", "a"), ("boot.js", "c")]).path()).unwrap();
        assert_eq!(before[0], after[0]);
        assert_ne!(before[1].revision, after[1].revision);
        assert_ne!(manifest(&before)["version"], manifest(&after)["version"]);
        let again = entries(dist(&[("index.html", "a"), ("boot.js", "b")]).path()).unwrap();
        assert_eq!(manifest(&before), manifest(&again));
    }

    #[test]
    fn writing_fills_the_workers_placeholder_once_and_refuses_a_second_time() {
        let dir = dist(&[("index.html", "<html>"), ("sw.js", WORKER)]);
        assert_eq!(write(dir.path()).unwrap(), 1);
        let worker = fs::read_to_string(dir.path().join("sw.js")).unwrap();
        assert!(!worker.contains(PLACEHOLDER));
        let json = worker
            .strip_prefix("const PRECACHE = ")
            .and_then(|s| s.strip_suffix(";\n"))
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(manifest["files"][0]["url"], "/");
        let again = write(dir.path()).unwrap_err();
        assert!(again.contains("exactly once"), "{again}");
    }

    #[test]
    fn a_dist_without_the_page_is_refused_with_a_hint() {
        let error = write(dist(&[("sw.js", WORKER)]).path()).unwrap_err();
        assert!(error.contains("build the app first"), "{error}");
    }

    #[test]
    fn the_service_worker_in_assets_carries_the_placeholder_once() {
        let worker = fs::read_to_string(crate::repo_root().join("assets/sw.js")).unwrap();
        assert_eq!(worker.matches(PLACEHOLDER).count(), 1);
    }
}
