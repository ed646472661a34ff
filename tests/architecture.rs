//! The rules that keep `src/` a house a newcomer can walk (see ARCHITECTURE.md): no import circle
//! between files or between folders, at most three loose files, no file over 400 lines, and every
//! folder on ARCHITECTURE.md's map. Read from the source text, so a change that breaks a rule
//! fails `cargo test` with the files that break it.
//!
//! An import is any path the code names: `use` items (braces expanded) and paths written inline,
//! from `crate::`, `super::`, `self::` or a child module's name, resolved to the file of the
//! longest module prefix it names. Declaring a child (`mod x;`) is containment, not an import;
//! a file's `#[cfg(test)]` module at its end is left out (tests may reach anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LOOSE_FILES: usize = 3;
const MAX_LINES: usize = 400;

struct Module {
    /// Its path from the crate root: `["db", "rooms"]`.
    path: Vec<String>,
    /// Its file, relative to the crate root (`src/db/rooms.rs`).
    file: String,
    lines: usize,
    /// Its code without comments, strings and its trailing test module.
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn modules() -> Vec<Module> {
    let mut found = Vec::new();
    walk(&src(), &mut found);
    found
}

fn walk(dir: &Path, found: &mut Vec<Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src()).unwrap();
        let mut segments: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let last = segments.pop().unwrap();
        match last.as_str() {
            "lib.rs" | "mod.rs" => {}
            "main.rs" if segments.is_empty() => continue,
            other => segments.push(other.trim_end_matches(".rs").to_string()),
        }
        let text = std::fs::read_to_string(&path).unwrap();
        found.push(Module {
            path: segments,
            file: format!("src/{}", rel.display()),
            lines: text.lines().count(),
            code: strip(&text),
        });
    }
}

/// The code without comments, string and char literals, and the `#[cfg(test)] mod` at its end.
fn strip(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len(), |e| e + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' && is_char_literal(rest) {
            let len = rest[1..].find('\'').unwrap() + 2;
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether `rest` (starting with `'`) is a char literal rather than a lifetime.
fn is_char_literal(rest: &str) -> bool {
    let mut chars = rest[1..].chars();
    match chars.next() {
        Some('\\') => true,
        Some(_) => chars.next() == Some('\''),
        None => false,
    }
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path written in `code`: `use` trees expanded, and inline `a::b::c` paths.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    // `use` items first (their braces need expanding), then the code without them.
    let mut without_uses = String::new();
    while let Some(at) = find_keyword(rest, "use") {
        without_uses.push_str(&rest[..at]);
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        expand(&rest[at + 3..end], &mut Vec::new(), &mut found);
        rest = &rest[(end + 1).min(rest.len())..];
    }
    without_uses.push_str(rest);
    let chars: Vec<char> = without_uses.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if ident_char(chars[i]) && (i == 0 || !(ident_char(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segments = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && ident_char(chars[j]) {
                    j += 1;
                }
                segments.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && ident_char(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                found.push(segments);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    found
}

/// The offset of `keyword` as a whole word followed by whitespace.
fn find_keyword(code: &str, keyword: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = code[from..].find(keyword) {
        let at = from + at;
        let before = code[..at].chars().next_back();
        let after = code[at + keyword.len()..].chars().next();
        if before.is_none_or(|c| !ident_char(c)) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + keyword.len();
    }
    None
}

/// Expands a `use` tree such as `crate::{a::b,c::{d,e}}` into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let pushed = push_segments(head, prefix);
        for item in split_top_level(inner) {
            expand(item, prefix, out);
        }
        prefix.truncate(prefix.len() - pushed);
    } else {
        let path = tree.split_whitespace().next().unwrap_or(tree);
        let pushed = push_segments(path, prefix);
        out.push(prefix.clone());
        prefix.truncate(prefix.len() - pushed);
    }
}

fn push_segments(head: &str, prefix: &mut Vec<String>) -> usize {
    let segments: Vec<String> = head
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let n = segments.len();
    prefix.extend(segments);
    n
}

fn split_top_level(inner: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
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
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The module a path written in `from` names, as an absolute module path (or `None`: another
/// crate, or a name of this module's own).
fn absolute(from: &Module, path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "self" => from.path.clone(),
        "super" => {
            let mut base = from.path.clone();
            let mut i = 0;
            while path.get(i).is_some_and(|s| s == "super") {
                base.pop();
                i += 1;
            }
            base.extend(path[i..].iter().cloned());
            return Some(base);
        }
        child => {
            let mut candidate = from.path.clone();
            candidate.push(child.to_string());
            if !known.contains(&candidate) {
                return None;
            }
            from.path.clone()
        }
    };
    let skip = usize::from(matches!(path[0].as_str(), "crate" | "self"));
    base.extend(path[skip..].iter().cloned());
    Some(base)
}

/// The file-level import graph: for each module, the modules it imports.
fn graph(modules: &[Module]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut edges = BTreeMap::new();
    for m in modules {
        let mut to = BTreeSet::new();
        for path in paths(&m.code) {
            let Some(target) = absolute(m, &path, &known) else {
                continue;
            };
            // The longest prefix that is a module: the file the named item lives in.
            let module = (0..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| known.contains(p));
            if let Some(module) = module {
                if module != m.path {
                    to.insert(module);
                }
            }
        }
        edges.insert(m.path.clone(), to);
    }
    edges
}

/// The strongly connected components with more than one node (Tarjan).
fn circles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        found: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(n: &N, edges: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(n.clone(), i);
        s.low.insert(n.clone(), i);
        s.stack.push(n.clone());
        s.on_stack.insert(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if !s.index.contains_key(m) {
                visit(m, edges, s);
                let low = s.low[n].min(s.low[m]);
                s.low.insert(n.clone(), low);
            } else if s.on_stack.contains(m) {
                let low = s.low[n].min(s.index[m]);
                s.low.insert(n.clone(), low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = Vec::new();
            loop {
                let m = s.stack.pop().unwrap();
                s.on_stack.remove(&m);
                let done = &m == n;
                component.push(m);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for n in edges.keys() {
        if !s.index.contains_key(n) {
            visit(n, edges, &mut s);
        }
    }
    s.found
}

fn file_of(modules: &[Module], path: &[String]) -> String {
    modules
        .iter()
        .find(|m| m.path == path)
        .map_or_else(|| path.join("::"), |m| m.file.clone())
}

#[test]
fn no_file_imports_itself_through_others() {
    let modules = modules();
    let edges = graph(&modules);
    let found: Vec<String> = circles(&edges)
        .into_iter()
        .map(|c| {
            let files: Vec<String> = c.iter().map(|p| file_of(&modules, p)).collect();
            files.join(" <-> ")
        })
        .collect();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn no_folder_imports_itself_through_others() {
    let modules = modules();
    let folder = |p: &Vec<String>| p.first().cloned().unwrap_or_else(|| "lib.rs".into());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in graph(&modules) {
        let entry = edges.entry(folder(&from)).or_default();
        entry.extend(to.iter().map(folder).filter(|f| *f != folder(&from)));
    }
    let found = circles(&edges);
    assert!(found.is_empty(), "folder circles: {found:?}\n{edges:#?}");
}

/// What each folder of `src/` may import (ARCHITECTURE.md's code map); `app/` may import anything.
const MAY_USE: &[(&str, &[&str])] = &[
    ("twilio", &[]),
    ("domain", &["twilio"]),
    ("db", &["domain", "twilio"]),
    ("telemetry", &["db", "domain", "twilio"]),
    ("auth", &["db", "domain", "telemetry", "twilio"]),
    ("workers", &["auth", "db", "domain", "telemetry", "twilio"]),
    ("media", &["auth", "db", "domain", "telemetry", "twilio"]),
    (
        "http",
        &["auth", "db", "domain", "media", "telemetry", "twilio"],
    ),
    (
        "console",
        &[
            "auth",
            "db",
            "domain",
            "http",
            "media",
            "telemetry",
            "twilio",
        ],
    ),
];

#[test]
fn each_folder_imports_only_what_the_code_map_allows() {
    let modules = modules();
    let mut wrong = BTreeSet::new();
    for (from, to) in graph(&modules) {
        let Some(folder) = from.first() else { continue };
        if folder == "app" {
            continue;
        }
        let allowed = MAY_USE
            .iter()
            .find(|(f, _)| f == folder)
            .unwrap_or_else(|| panic!("{folder}/ is not in MAY_USE (and ARCHITECTURE.md)"))
            .1;
        for target in to {
            let Some(other) = target.first() else {
                continue;
            };
            if other != folder && !allowed.contains(&other.as_str()) {
                wrong.insert(format!(
                    "{} imports {}",
                    file_of(&modules, &from),
                    file_of(&modules, &target)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the code map does not allow:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn src_holds_folders_and_at_most_three_loose_files() {
    let loose: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        loose.len() <= MAX_LOOSE_FILES,
        "loose files in src/: {loose:?}"
    );
}

#[test]
fn no_source_file_is_over_400_lines() {
    let long: Vec<String> = modules()
        .iter()
        .filter(|m| m.lines > MAX_LINES)
        .map(|m| format!("{} ({} lines)", m.file, m.lines))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn architecture_md_names_every_folder_of_src() {
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md at the root");
    let missing: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| format!("`{}/`", p.file_name().unwrap().to_string_lossy()))
        .filter(|name| !map.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}

#[test]
fn the_checker_sees_imports_and_circles() {
    let paths = paths("use crate::{a::b, c::{d, e as f}};\nfn x() { crate::g::h(); super::i::J; }");
    for want in [
        &["crate", "a", "b"][..],
        &["crate", "c", "d"],
        &["crate", "c", "e"],
        &["crate", "g", "h"],
        &["super", "i", "J"],
    ] {
        assert!(paths.iter().any(|p| p == want), "{want:?} not in {paths:?}");
    }
    let stripped = strip("let s = \"crate::x::y\"; // crate::z::w\nlet c = '\"';");
    assert!(!stripped.contains("crate::"), "{stripped}");
    let edges: BTreeMap<u8, BTreeSet<u8>> = [(1, [2].into()), (2, [3].into()), (3, [1].into())]
        .into_iter()
        .collect();
    assert_eq!(circles(&edges).len(), 1);
    let edges: BTreeMap<u8, BTreeSet<u8>> = [(1, [2].into()), (2, [3].into()), (3, [].into())]
        .into_iter()
        .collect();
    assert!(circles(&edges).is_empty());
}
