//! What the Worker's code reads from `env`, found by reading its source.
//!
//! The edge code reads bindings through a handful of calls (`env.d1(BINDING)`,
//! `.durable_object(ROOMS_BINDING)`, `.bucket(profiles::AVATARS)`, `env.ai("AI")`,
//! `rate_limit(env, "ROOM_LIMITER", ..)`, and for Vectorize, which workers-rs does not wrap,
//! `Reflect::get(env.as_ref(), &JsValue::from_str(INDEX_BINDING))`), with the name either a
//! literal or a `const NAME: &str`, and its settings through `config::string(env, "NAME")` and
//! helpers over it. A scan of those patterns is deliberately simple: a binding read some other
//! way is not seen, and the check then says nothing about it, so new code should read bindings
//! the same ways (or extend the patterns here, with a test below).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regex::Regex;

use crate::config::Kind;

/// What a binding read expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Kind(Kind),
    /// Read as a plain JS property of `env`: any kind will do.
    Any,
}

/// One place the code reads a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub name: String,
    pub want: Want,
    /// `path:line`, relative to the scanned directory.
    pub at: String,
}

/// Everything the scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub bindings: Vec<Read>,
    /// Var and secret names read (`config::string(env, "AI_MODEL")`, or any upper-case
    /// `SNAKE_CASE` literal in non-test code that is not a binding).
    pub settings: BTreeSet<String>,
    /// Names built at run time, by their fixed tail: `format!("{name}_CLIENT_ID")` is
    /// `_CLIENT_ID`.
    pub setting_suffixes: BTreeSet<String>,
    /// Upper-case literals without an underscore (`"GITHUB"`): prefixes of built names, or not
    /// settings at all.
    pub words: BTreeSet<String>,
    /// `#[durable_object]` classes.
    pub durable_object_classes: BTreeSet<String>,
    /// `const NAME: &str = "value"` per file (`rooms/semantic.rs` → `DEFAULT_MODEL`).
    pub consts: BTreeMap<(String, String), String>,
}

impl Scan {
    /// The value of a string const in a file.
    pub fn const_in(&self, file: &str, name: &str) -> Option<&str> {
        self.consts
            .get(&(file.to_owned(), name.to_owned()))
            .map(String::as_str)
    }
}

/// Drops a file's `#[cfg(test)] mod …` (tests read names the Worker never does).
fn without_tests(text: &str) -> &str {
    let test_mod = Regex::new(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s").expect("regex");
    match test_mod.find(text) {
        Some(m) => &text[..m.start()],
        None => text,
    }
}

/// Scans every `.rs` file under `dir`.
pub fn scan_dir(dir: &Path) -> std::io::Result<Scan> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    Ok(scan_sources(&files))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].bytes().filter(|b| *b == b'\n').count() + 1
}

/// Scans `(path, source)` pairs.
pub fn scan_sources(files: &[(String, String)]) -> Scan {
    const ARG: &str = r#"("[A-Za-z0-9_]+"|(?:[a-z_][a-z0-9_]*::)*[A-Z][A-Z0-9_]*)"#;
    let re = |pattern: &str| Regex::new(&pattern.replace("ARG", ARG)).expect("regex");
    let str_const = re(r#"const\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*"([^"]*)""#);
    let method = re(
        r"\.(d1|durable_object|bucket|kv|ai|rate_limiter|service|analytics_engine|assets)\(\s*ARG\s*\)",
    );
    let rate_limit_helper = re(r"\brate_limit\(\s*&?[a-z_.]+\s*,\s*ARG");
    let any_binding = re(
        r"(?:\.get_binding(?:::<[^>]*>)?\(\s*ARG|Reflect::get\(\s*&?(?:self\.)?env\.as_ref\(\)\s*,\s*&?JsValue::from_str\(\s*ARG)",
    );
    let setting_call = re(
        r#"(?:\bstring|\bpositive|\.secret|\.var)\(\s*(?:&?(?:self\.)?env\s*,\s*)?"([A-Z][A-Z0-9_]*)""#,
    );
    let snake_literal = re(r#""([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)""#);
    let word_literal = re(r#""([A-Z][A-Z0-9]+)""#);
    let built_name = re(r#""\{[a-z_]*\}(_[A-Z0-9_]+)""#);
    // Compile-time environment (`option_env!("DC_BUILD_VERSION")`) is not a Worker setting.
    let build_env = re(r#"\b(?:option_)?env!\(\s*"([A-Z][A-Z0-9_]*)""#);
    let durable_object =
        re(r"#\[durable_object\]\s*(?:pub(?:\([a-z]+\))?\s+)?struct\s+([A-Za-z0-9_]+)");

    let mut scan = Scan::default();
    let sources: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), without_tests(t)))
        .collect();
    for (path, text) in &sources {
        for c in str_const.captures_iter(text) {
            scan.consts
                .insert((path.to_string(), c[1].to_owned()), c[2].to_owned());
        }
    }
    // A const named in another file resolves when its name is unique, or by the same file's.
    let resolve = |path: &str, arg: &str| -> Option<String> {
        if let Some(lit) = arg.strip_prefix('"') {
            return Some(lit.trim_end_matches('"').to_owned());
        }
        let name = arg.rsplit("::").next().unwrap_or(arg);
        if let Some(v) = scan.consts.get(&(path.to_owned(), name.to_owned())) {
            return Some(v.clone());
        }
        let values: BTreeSet<&String> = scan
            .consts
            .iter()
            .filter(|((_, n), _)| n == name)
            .map(|(_, v)| v)
            .collect();
        (values.len() == 1)
            .then(|| values.into_iter().next().cloned())
            .flatten()
    };

    let mut build_time = BTreeSet::new();
    let mut bindings = Vec::new();
    for (path, text) in &sources {
        for c in build_env.captures_iter(text) {
            build_time.insert(c[1].to_owned());
        }
        let mut found = |name: Option<String>, want: Want, offset: usize| {
            if let Some(name) = name {
                bindings.push(Read {
                    name,
                    want,
                    at: format!("{path}:{}", line_of(text, offset)),
                });
            }
        };
        for c in method.captures_iter(text) {
            let kind = match &c[1] {
                "d1" => Kind::D1,
                "durable_object" => Kind::DurableObject,
                "bucket" => Kind::R2,
                "kv" => Kind::Kv,
                "ai" => Kind::WorkersAi,
                "rate_limiter" => Kind::RateLimit,
                "service" => Kind::Service,
                "analytics_engine" => Kind::AnalyticsEngine,
                _ => Kind::Assets,
            };
            let at = c.get(0).map_or(0, |m| m.start());
            found(resolve(path, &c[2]), Want::Kind(kind), at);
        }
        for c in rate_limit_helper.captures_iter(text) {
            let at = c.get(0).map_or(0, |m| m.start());
            found(resolve(path, &c[1]), Want::Kind(Kind::RateLimit), at);
        }
        for c in any_binding.captures_iter(text) {
            let arg = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            let at = c.get(0).map_or(0, |m| m.start());
            found(resolve(path, arg), Want::Any, at);
        }
        for c in setting_call.captures_iter(text) {
            scan.settings.insert(c[1].to_owned());
        }
        for c in snake_literal.captures_iter(text) {
            scan.settings.insert(c[1].to_owned());
        }
        for c in word_literal.captures_iter(text) {
            scan.words.insert(c[1].to_owned());
        }
        for c in built_name.captures_iter(text) {
            scan.setting_suffixes.insert(c[1].to_owned());
        }
        for c in durable_object.captures_iter(text) {
            scan.durable_object_classes.insert(c[1].to_owned());
        }
    }
    let binding_names: BTreeSet<String> = bindings.iter().map(|r| r.name.clone()).collect();
    scan.settings
        .retain(|s| !binding_names.contains(s) && !build_time.contains(s));
    scan.words.retain(|s| !binding_names.contains(s));
    // A word read as a setting is a setting.
    scan.words.retain(|w| !scan.settings.contains(w));
    scan.bindings = bindings;
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(files: &[(&str, &str)]) -> Scan {
        let owned: Vec<(String, String)> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        scan_sources(&owned)
    }

    fn reads(scan: &Scan) -> Vec<(String, Want)> {
        scan.bindings
            .iter()
            .map(|r| (r.name.clone(), r.want))
            .collect()
    }

    #[test]
    fn bindings_read_by_literal_or_by_a_const_in_another_file_are_found_with_their_kind() {
        let s = scan(&[
            (
                "api.rs",
                r#"pub const ROOMS_BINDING: &str = "ROOMS";
                fn f(env: &Env) {
                    let stub = env.durable_object(ROOMS_BINDING)?;
                    let b = env.bucket(profiles::AVATARS)?;
                    rate_limit(env, "ROOM_LIMITER", key).await?;
                    let Ok(limiter) = env.rate_limiter(binding) else { return };
                }"#,
            ),
            (
                "profiles.rs",
                r#"pub const AVATARS: &str = "AVATARS";
                fn db(env: &Env) { env
                    .d1("DB") }"#,
            ),
            (
                "semantic.rs",
                r#"pub const INDEX_BINDING: &str = "VECTORIZE";
                let ai = env.ai("AI").ok()?;
                let index = Reflect::get(env.as_ref(), &JsValue::from_str(INDEX_BINDING)).ok()?;"#,
            ),
        ]);
        assert_eq!(
            reads(&s),
            [
                ("ROOMS".into(), Want::Kind(Kind::DurableObject)),
                ("AVATARS".into(), Want::Kind(Kind::R2)),
                ("ROOM_LIMITER".into(), Want::Kind(Kind::RateLimit)),
                ("DB".into(), Want::Kind(Kind::D1)),
                ("AI".into(), Want::Kind(Kind::WorkersAi)),
                ("VECTORIZE".into(), Want::Any),
            ]
        );
        assert_eq!(s.bindings[3].at, "profiles.rs:3");
        assert_eq!(
            s.const_in("semantic.rs", "INDEX_BINDING"),
            Some("VECTORIZE")
        );
        // Binding names are not settings.
        assert!(!s.settings.contains("ROOM_LIMITER"));
    }

    #[test]
    fn settings_are_read_names_and_snake_case_literals_but_not_those_in_test_modules() {
        let s = scan(&[(
            "config.rs",
            r#"
            const KEY_NAMES: [(&str, &str); 1] = [("SESSION_SECRET", "SESSION_SECRET_PREVIOUS")];
            fn f(env: &Env) {
                config::string(env, "DEBUG");
                positive(env, "AI_BURST");
                let id = config::string(env, &format!("{name}_CLIENT_ID"))?;
                match p { Provider::Github => "GITHUB" }
                let alg = "RS256";
                const V: &str = match option_env!("DC_BUILD_VERSION") { _ => env!("CARGO_PKG_VERSION") };
            }
            #[cfg(test)]
            mod tests { fn t() { vars(&[("ONLY_IN_TESTS", "x")]); } }
            "#,
        )]);
        let settings: Vec<_> = s.settings.iter().map(String::as_str).collect();
        assert_eq!(
            settings,
            [
                "AI_BURST",
                "DEBUG",
                "SESSION_SECRET",
                "SESSION_SECRET_PREVIOUS"
            ]
        );
        assert_eq!(
            s.setting_suffixes.iter().collect::<Vec<_>>(),
            ["_CLIENT_ID"]
        );
        assert!(s.words.contains("GITHUB") && s.words.contains("RS256"));
        assert!(!s.words.contains("DEBUG"));
    }

    #[test]
    fn durable_object_classes_are_found_by_their_attribute() {
        let s = scan(&[(
            "object.rs",
            "#[durable_object]\npub struct ChatRoom {\n}\nstruct NotAnObject;",
        )]);
        assert_eq!(
            s.durable_object_classes.iter().collect::<Vec<_>>(),
            ["ChatRoom"]
        );
    }
}
