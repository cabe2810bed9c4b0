//! The module graph of a crate's `src/`, read from its `use` declarations and `crate::` paths,
//! and the import cycles in it. `edge/src` and `app/src` are kept free of cycles (a test below):
//! a cycle through seven files of the Worker once made every change there touch them all. A
//! second layout rule is tested here too: no file of the room's home (`shared/src/room/`) grows
//! past 800 lines.
//!
//! A module depends on another when it names one of its items: `use crate::a::b::Item`,
//! `use super::sibling::Item`, or a `crate::a::f()` path in code. Unit tests at the end of a
//! file (`#[cfg(test)] mod tests`) are left out: they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path relative to the crate root: `rooms::object`; the root itself is empty.
type Module = String;

/// Every module of the crate whose sources are under `src`, with the modules it depends on.
pub fn graph(src: &Path) -> std::io::Result<BTreeMap<Module, BTreeSet<Module>>> {
    let mut files = BTreeMap::new();
    collect(src, src, &mut files)?;
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, text) in &files {
        let mut deps = BTreeSet::new();
        for path in referenced_paths(module, text) {
            if let Some(target) = longest_module(&modules, &path) {
                if target != *module {
                    deps.insert(target);
                }
            }
        }
        edges.insert(module.clone(), deps);
    }
    Ok(edges)
}

/// The import cycles of a graph: each a set of modules that reach one another, sorted.
pub fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Tarjan's strongly connected components, iteratively over an explicit stack.
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let next = s.index.len();
        s.index.insert(v, next);
        s.low.insert(v, next);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(deps) = s.graph.get(v) {
            for w in deps {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found.sort();
    state.found
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<Module, String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            files.insert(parts.join("::"), std::fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// The module paths (crate-relative, `::`-joined) a file's code names. `super` is the parent
/// module whether the file is `name.rs` or `name/mod.rs`.
fn referenced_paths(module: &str, text: &str) -> Vec<String> {
    let code = without_tests_and_comments(text);
    let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let parent = &parent[..parent.len().saturating_sub(1)];
    let mut paths = Vec::new();
    // `use` declarations, braces expanded.
    let mut rest = code.as_str();
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let Some(end) = after.find(';') else { break };
        let tree: String = after[..end].split_whitespace().collect();
        for path in expand(&tree) {
            let path = path.split(" as ").next().unwrap_or(&path).to_owned();
            if let Some(p) = path.strip_prefix("crate::") {
                paths.push(p.to_owned());
            } else if let Some(p) = path.strip_prefix("super::") {
                let mut full: Vec<&str> = parent.to_vec();
                full.extend(p.split("::"));
                paths.push(full.join("::"));
            } else if let Some(p) = path.strip_prefix("self::") {
                paths.push(format!("{module}::{p}"));
            }
        }
        rest = &after[end..];
    }
    // `crate::a::b` paths in code.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        let len = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        // `crate::a::{b, c}` and `crate::a::*` are `use` trees, read above.
        if !tail[..len].ends_with("::") {
            paths.push(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    paths
        .into_iter()
        .map(|p| p.replace("::self", ""))
        .filter(|p| !p.is_empty() && p != "*")
        .collect()
}

/// The code of a file without its line comments and without a trailing unit-test module.
fn without_tests_and_comments(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.trim_start().starts_with("//") {
            true => "",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index of `word` standing alone (not inside an identifier) in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !ident(before) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// `a::{b, c::{d, e}}` (whitespace removed) as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand(item).into_iter().map(|e| format!("{prefix}{e}")))
        .collect()
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_module(modules: &BTreeSet<Module>, path: &str) -> Option<Module> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn crate_src(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(name)
            .join("src")
    }

    /// A throwaway crate `src/` with these files.
    fn fake_crate(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("dir");
            std::fs::write(file, text).expect("write");
        }
        dir
    }

    #[test]
    fn the_workers_modules_import_one_another_without_a_cycle() {
        let graph = graph(&crate_src("edge")).expect("edge/src reads");
        assert!(graph.len() > 20, "read {} modules", graph.len());
        assert!(
            graph["api"].contains("rooms::contract"),
            "{:?}",
            graph["api"]
        );
        assert_eq!(cycles(&graph), Vec::<Vec<String>>::new());
    }

    #[test]
    fn the_apps_modules_import_one_another_without_a_cycle() {
        let graph = graph(&crate_src("app")).expect("app/src reads");
        assert!(graph.len() > 20, "read {} modules", graph.len());
        assert_eq!(cycles(&graph), Vec::<Vec<String>>::new());
    }

    /// Every `.rs` file under `dir`, with its line count.
    fn line_counts(dir: &Path, out: &mut Vec<(PathBuf, usize)>) {
        for entry in std::fs::read_dir(dir).expect("reads") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                line_counts(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("reads");
                out.push((path, text.lines().count()));
            }
        }
    }

    #[test]
    fn no_file_of_the_rooms_home_grows_past_800_lines() {
        // The room was once one 3,175-line file mixing rules, storage and tests.
        let mut files = Vec::new();
        line_counts(&crate_src("shared").join("room"), &mut files);
        assert!(files.len() > 10, "read {} files", files.len());
        let long: Vec<_> = files.iter().filter(|(_, n)| *n > 800).collect();
        assert!(long.is_empty(), "split these by concern: {long:?}");
    }

    #[test]
    fn two_modules_naming_each_others_items_are_a_cycle_however_they_name_them() {
        let src = fake_crate(
            "cycle",
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
                ("a.rs", "use crate::b::{self, Thing};\n"),
                // Through `super` and a path in code rather than a `use`.
                ("b.rs", "fn f() { crate::c::g(); }\n"),
                ("c.rs", "use super::{\n    a::Other,\n};\n"),
            ],
        );
        let found = cycles(&graph(&src).expect("reads"));
        let _ = std::fs::remove_dir_all(&src);
        assert_eq!(found, vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn one_way_imports_comments_and_unit_tests_make_no_cycle() {
        let src = fake_crate(
            "acyclic",
            &[
                ("lib.rs", "mod a;\nmod b;\n"),
                ("a.rs", "use crate::b::Thing;\n"),
                (
                    "b.rs",
                    "// use crate::a::Nothing;\npub struct Thing;\n\
                     #[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n",
                ),
            ],
        );
        let graph = graph(&src).expect("reads");
        let _ = std::fs::remove_dir_all(&src);
        assert!(graph["a"].contains("b"));
        assert!(graph["b"].is_empty(), "{:?}", graph["b"]);
        assert!(cycles(&graph).is_empty());
    }
}
