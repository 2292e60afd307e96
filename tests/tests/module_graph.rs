//! No module cycles. For each crate's `src` folder, the graph of its
//! top-level modules (an edge A -> B when a file under module A names
//! `crate::B`, `crate::{B, ..}` or reaches B through `super::`) must be
//! acyclic, so each module can be read, tested and moved on top of the ones
//! it uses. Comments and string literals do not count.
//!
//! To check another crate, add a test calling [`assert_no_cycle`] with its
//! `src` folder (relative to the workspace root).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use omniroute_mcp_tests::paths;

#[test]
fn host_modules_form_no_cycle() {
    assert_no_cycle("host/src");
}

#[test]
fn xtask_modules_form_no_cycle() {
    assert_no_cycle("xtask/src");
}

#[test]
fn guest_sdk_modules_form_no_cycle() {
    assert_no_cycle("tool-components/sdk/src");
}

#[test]
fn contract_modules_form_no_cycle() {
    assert_no_cycle("tool-components/contract/src");
}

#[test]
fn testing_crate_modules_form_no_cycle() {
    assert_no_cycle("tool-components/testing/src");
}

/// Fails naming the first cycle found in `src` (relative to the workspace
/// root) and, for each edge on it, the file and line that makes it.
fn assert_no_cycle(src: &str) {
    let root = paths::workspace_root().join(src);
    let graph = ModuleGraph::read(&root);
    assert!(
        graph.modules.len() >= 2,
        "{} has {} top-level modules; is the path right?",
        root.display(),
        graph.modules.len()
    );
    if let Some(cycle) = graph.find_cycle() {
        let evidence: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                let (file, line) = &graph.edges[&pair[0]][&pair[1]];
                format!("{file}:{line} names crate::{}", pair[1])
            })
            .collect();
        panic!("module cycle in {src}: {} ({})", cycle.join(" -> "), evidence.join("; "));
    }
}

/// Top-level modules and the references between them.
#[derive(Debug, Default)]
struct ModuleGraph {
    modules: BTreeSet<String>,
    /// from -> to -> the first (file, line) that references it.
    edges: BTreeMap<String, BTreeMap<String, (String, usize)>>,
}

impl ModuleGraph {
    fn read(root: &Path) -> ModuleGraph {
        let mut files = Vec::new();
        collect_rs(root, &mut files);
        let mut graph = ModuleGraph::default();
        let mut references = Vec::new();
        for file in &files {
            let rel = file.strip_prefix(root).unwrap_or(file).to_string_lossy().replace('\\', "/");
            let Some(path) = module_path(&rel) else { continue };
            graph.modules.insert(path[0].clone());
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for (target, line) in crate_references(&strip_comments_and_strings(&text), &path) {
                references.push((path[0].clone(), target, rel.clone(), line));
            }
        }
        for (from, to, file, line) in references {
            if from != to && graph.modules.contains(&to) {
                graph.edges.entry(from).or_default().entry(to).or_insert((file, line));
            }
        }
        graph
    }

    /// A cycle as `[a, b, .., a]`, if there is one.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit(graph: &ModuleGraph, node: &str, marks: &mut BTreeMap<String, Mark>, stack: &mut Vec<String>) -> Option<Vec<String>> {
            marks.insert(node.to_owned(), Mark::Open);
            stack.push(node.to_owned());
            for next in graph.edges.get(node).into_iter().flat_map(|e| e.keys()) {
                match marks.get(next.as_str()) {
                    Some(Mark::Open) => {
                        let start = stack.iter().position(|m| m == next).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        if let Some(cycle) = visit(graph, next, marks, stack) {
                            return Some(cycle);
                        }
                    }
                }
            }
            stack.pop();
            marks.insert(node.to_owned(), Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for module in &self.modules {
            if !marks.contains_key(module)
                && let Some(cycle) = visit(self, module, &mut marks, &mut Vec::new())
            {
                return Some(cycle);
            }
        }
        None
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src`: `a/b.rs` -> [a, b], `a/mod.rs` ->
/// [a]. Crate roots (`lib.rs`, `main.rs`) name every module and are skipped.
fn module_path(rel: &str) -> Option<Vec<String>> {
    let without = rel.strip_suffix(".rs")?;
    let mut parts: Vec<String> = without.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return None;
    }
    (!parts.is_empty()).then_some(parts)
}

/// Source with comments removed and string/char literal contents blanked
/// (line breaks kept, so line numbers stay right).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let keep_newlines = |out: &mut String, slice: &[char]| out.extend(slice.iter().filter(|c| **c == '\n'));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut out, &chars[start..i.min(chars.len())]);
        } else if c == 'r' && (next == Some('"') || (next == Some('#') && is_raw_string_start(&chars[i + 1..]))) && !ident_before(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let start = i;
            i += 2 + hashes;
            while i < chars.len() && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes) {
                i += 1;
            }
            i = (i + 1 + hashes).min(chars.len());
            out.push_str("\"\"");
            keep_newlines(&mut out, &chars[start..i]);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            out.push_str("\"\"");
            keep_newlines(&mut out, &chars[start..i]);
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\u{..}'); a lifetime has no closing quote.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_raw_string_start(rest: &[char]) -> bool {
    let hashes = rest.iter().take_while(|c| **c == '#').count();
    rest.get(hashes) == Some(&'"')
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules a file at module path `path` names, with lines:
/// `crate::x`, `crate::{x, y::z}`, and `super::` chains that climb out of
/// the file's top-level module.
fn crate_references(code: &str, path: &[String]) -> Vec<(String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let line_at = |i: usize| chars[..i].iter().filter(|c| **c == '\n').count() + 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if ident_before(&chars, i) || (i > 0 && chars[i - 1] == '$') {
            i += 1;
            continue;
        }
        let rest: String = chars[i..(i + 7).min(chars.len())].iter().collect();
        if rest == "crate::" {
            let line = line_at(i);
            let (names, end) = path_heads(&chars, i + 7);
            out.extend(names.into_iter().map(|n| (n, line)));
            i = end;
        } else if rest.starts_with("super::") {
            // Each `super::` climbs one level from the file's module.
            let line = line_at(i);
            let mut depth = path.len();
            let mut j = i;
            while chars[j..].iter().take(7).collect::<String>() == "super::" {
                depth = depth.saturating_sub(1);
                j += 7;
            }
            let (names, end) = path_heads(&chars, j);
            if depth == 0 {
                out.extend(names.into_iter().map(|n| (n, line)));
            }
            i = end.max(i + 7);
        } else {
            i += 1;
        }
    }
    out
}

/// After `crate::`: the first segment, or the first segment of each item of
/// a `{..}` group. Returns the names and where parsing stopped.
fn path_heads(chars: &[char], mut i: usize) -> (Vec<String>, usize) {
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    skip_ws(&mut i);
    if chars.get(i) != Some(&'{') {
        let name = ident(&mut i);
        return (if name.is_empty() { vec![] } else { vec![name] }, i);
    }
    let mut names = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
                i += 1;
            }
            '}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            ',' => {
                expect_head = depth == 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            c if is_ident(c) && expect_head => {
                let name = ident(&mut i);
                if name != "self" {
                    names.push(name);
                }
                expect_head = false;
            }
            _ => i += 1,
        }
    }
    (names, i)
}

#[test]
fn the_parser_sees_real_references_only() {
    let code = r##"
use crate::audit::{AuditRecord, input_hash};
use crate::{capability::{Grants, Scope}, gateway, self};
// use crate::commented;
/* use crate::blocked; /* nested crate::deeper */ */
let s = "crate::in_a_string";
let r = r#"crate::in_a_raw_string"#;
let c = '"'; let l: &'static str = "x"; fn f<'a>(x: &'a str) {}
macro_rules! m { () => { $crate::macro_path } }
use super::super::runtime::Runtime;
use super::sibling;
"##;
    let stripped = strip_comments_and_strings(code);
    let names: Vec<String> = crate_references(&stripped, &["mcp".into(), "call".into()]).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["audit", "capability", "gateway", "runtime"]);
    let lines: Vec<usize> = crate_references(&stripped, &["mcp".into(), "call".into()]).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, [2, 3, 3, 10]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = ModuleGraph::default();
    for m in ["a", "b", "c"] {
        graph.modules.insert(m.into());
    }
    fn edge(graph: &mut ModuleGraph, from: &str, to: &str) {
        graph.edges.entry(from.into()).or_default().insert(to.into(), ("f.rs".into(), 1));
    }
    edge(&mut graph, "a", "b");
    edge(&mut graph, "b", "c");
    assert_eq!(graph.find_cycle(), None);
    edge(&mut graph, "c", "b");
    assert_eq!(graph.find_cycle(), Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()]));
}
