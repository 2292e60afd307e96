//! The documentation in `docs/` against the code (see `docs/README.md#keeping-the-docs-true`):
//! every tool page against the tool's `describe()` as the server reports it, the tool index and
//! the capability table against the server, every link into `docs/` and every repository path
//! the docs name, and no text in the repository citing a document that is not in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use omniroute_mcp_tests::gateway::unreachable_url;
use omniroute_mcp_tests::markdown::{anchors, code_spans, first_table, links, preamble, section};
use omniroute_mcp_tests::{McpClient, ServerCommand, paths};
use serde_json::Value;

/// The prefix every built-in tool name has and no page name repeats.
const TOOL_PREFIX: &str = "omniroute_";

fn docs_dir() -> PathBuf {
    paths::workspace_root().join("docs")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `omniroute-mcp tools --json` with the built-in tools: what the server loaded.
async fn tools_json() -> Value {
    let command = ServerCommand::new(&unreachable_url()).arg("tools").arg("--json");
    let output = command.run_to_end().await;
    assert!(
        output.status.success(),
        "{} failed: {}",
        command.describe(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("tools --json printed no JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

fn tools_of(json: &Value) -> &[Value] {
    json["tools"].as_array().map(Vec::as_slice).unwrap_or_else(|| panic!("no tools in {json}"))
}

/// Fails with every mismatch at once, and how to fix them.
fn assert_none(problems: Vec<String>, fix: &str) {
    assert!(problems.is_empty(), "{} problem(s):\n  {}\n{fix}", problems.len(), problems.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_page_matches_what_the_server_describes() {
    let described = tools_json().await;
    let tools = tools_of(&described);

    // tools --json must show what MCP clients are shown.
    let client = McpClient::start(ServerCommand::new(&unreachable_url())).await;
    let listed = client.list_tools().await;
    client.shutdown().await;
    let mut problems = Vec::new();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    let listed_names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
    if names != listed_names {
        problems.push(format!("tools --json lists {names:?} but tools/list {listed_names:?}"));
    }
    for (tool, entry) in tools.iter().zip(&listed) {
        for (ours, theirs) in [("inputSchema", "inputSchema"), ("outputSchema", "outputSchema"), ("title", "title"), ("description", "description")] {
            if tool[ours] != entry[theirs] {
                problems.push(format!("{}: {ours} of tools --json differs from tools/list", tool["name"]));
            }
        }
    }

    let pages_dir = docs_dir().join("tools");
    let mut pages: HashMap<String, PathBuf> = HashMap::new();
    for entry in std::fs::read_dir(&pages_dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", pages_dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            pages.insert(format!("{TOOL_PREFIX}{stem}"), path);
        }
    }
    for tool in tools {
        let name = tool["name"].as_str().unwrap_or_default();
        match pages.remove(name) {
            Some(path) => problems.extend(check_tool_page(tool, &read(&path)).into_iter().map(|p| format!("{}: {p}", path.display()))),
            None => problems.push(format!(
                "the built-in tool {name} has no page: write {}/{}.md",
                pages_dir.display(),
                name.trim_start_matches(TOOL_PREFIX)
            )),
        }
    }
    for (name, path) in pages {
        problems.push(format!("{} documents {name}, which the server does not load: remove the page or the tool's prefix", path.display()));
    }
    assert_none(problems, "Fix the page (or the tool's describe()) so they say the same; the page format is in docs/README.md.");
}

/// Every difference between one page and its tool's description.
fn check_tool_page(tool: &Value, page: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let name = tool["name"].as_str().unwrap_or_default();
    if page.lines().next() != Some(&format!("# {name}")) {
        problems.push(format!("the first line must be `# {name}`"));
    }
    let meta: HashMap<String, String> = first_table(&preamble(page))
        .into_iter()
        .filter(|row| row.len() >= 2)
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let field = |key: &str| meta.get(key).cloned().unwrap_or_default();
    if code_spans(&field("tool")) != [name] {
        problems.push(format!("metadata row `tool` is {:?}, the tool is {name}", field("tool")));
    }
    if tool["title"].as_str() != Some(field("title").as_str()) {
        problems.push(format!("metadata row `title` is {:?}, describe() says {}", field("title"), tool["title"]));
    }
    let scopes: Vec<String> = strings(&tool["declaredScopes"]);
    if code_spans(&field("scopes")) != scopes {
        problems.push(format!("metadata row `scopes` is {:?}, describe() declares {scopes:?}", field("scopes")));
    }
    match section(page, "## Input") {
        None => problems.push("no `## Input` section".to_owned()),
        Some(lines) => problems.extend(check_keys("input", &tool["inputSchema"], &first_table(&lines), check_input_row)),
    }
    match section(page, "## Output") {
        None => problems.push("no `## Output` section".to_owned()),
        Some(lines) => problems.extend(check_keys("output", &tool["outputSchema"], &first_table(&lines), check_output_row)),
    }
    problems
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// A key the schema declares: its path (`a.b`, `a[].b`), its schema and whether its parent requires it.
struct SchemaKey {
    path: String,
    node: Value,
    required: bool,
}

/// The declared keys in document order (each key, then its members), and every schema node by
/// path (array items as `<path>[]`).
fn schema_keys(schema: &Value) -> (Vec<SchemaKey>, HashMap<String, Value>) {
    fn walk(node: &Value, prefix: &str, keys: &mut Vec<SchemaKey>, nodes: &mut HashMap<String, Value>) {
        if let Some(properties) = node["properties"].as_object() {
            let required = strings(&node["required"]);
            for (key, child) in properties {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                keys.push(SchemaKey { path: path.clone(), node: child.clone(), required: required.contains(key) });
                nodes.insert(path.clone(), child.clone());
                walk(child, &path, keys, nodes);
            }
        }
        if node["items"].is_object() {
            let path = format!("{prefix}[]");
            nodes.insert(path.clone(), node["items"].clone());
            walk(&node["items"], &path, keys, nodes);
        }
    }
    let mut keys = Vec::new();
    let mut nodes = HashMap::from([(String::new(), schema.clone())]);
    walk(schema, "", &mut keys, &mut nodes);
    (keys, nodes)
}

fn parent(path: &str) -> &str {
    if let Some(items) = path.strip_suffix("[]") {
        items
    } else {
        path.rfind('.').map_or("", |i| &path[..i])
    }
}

/// Whether a documented key the schema does not declare sits below a schema node that declares
/// no members (an object or array copied from the gateway).
fn below_undeclared_members(path: &str, nodes: &HashMap<String, Value>) -> bool {
    let mut at = parent(path);
    loop {
        if let Some(node) = nodes.get(at) {
            return !node["properties"].is_object();
        }
        if at.is_empty() {
            return false;
        }
        at = parent(at);
    }
}

/// `string`, `number or null`, … as the pages write a schema's `type`; empty without one.
fn type_text(node: &Value) -> String {
    match &node["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => String::new(),
    }
}

/// Checks the documented rows of one table against a schema: the declared keys, all of them, in
/// order; extra rows only below undeclared members; each declared row through `row_check`.
fn check_keys(what: &str, schema: &Value, rows: &[Vec<String>], row_check: fn(&SchemaKey, &[String]) -> Vec<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let (keys, nodes) = schema_keys(schema);
    let documented: Vec<(String, &Vec<String>)> = rows
        .iter()
        .filter_map(|row| {
            let spans = code_spans(row.first()?);
            (spans.len() == 1 && row[0] == format!("`{}`", spans[0])).then(|| (spans[0].clone(), row))
        })
        .collect();
    let declared: Vec<&str> = keys.iter().map(|k| k.path.as_str()).collect();
    let documented_declared: Vec<&str> = documented.iter().map(|(p, _)| p.as_str()).filter(|p| declared.contains(p)).collect();
    if documented_declared != declared {
        problems.push(format!("{what} keys documented {documented_declared:?}, the schema declares {declared:?} (same keys, same order)"));
    }
    for (path, row) in &documented {
        match keys.iter().find(|k| &k.path == path) {
            Some(key) => problems.extend(row_check(key, row).into_iter().map(|p| format!("{what} `{path}`: {p}"))),
            None if below_undeclared_members(path, &nodes) => {}
            None => problems.push(format!("{what} `{path}` is documented but the schema does not declare it")),
        }
    }
    problems
}

/// `| key | type | required | constraints | default | description |`.
fn check_input_row(key: &SchemaKey, row: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if row.len() != 6 {
        return vec![format!("the row needs 6 cells (key, type, required, constraints, default, description), has {}", row.len())];
    }
    if row[1] != type_text(&key.node) {
        problems.push(format!("type is {:?}, the schema says {:?}", row[1], type_text(&key.node)));
    }
    let required = if key.required { "yes" } else { "no" };
    if row[2] != required {
        problems.push(format!("required is {:?}, the schema says {required:?}", row[2]));
    }
    let allowed = strings(&key.node["enum"]);
    if !allowed.is_empty() && code_spans(&row[3]) != allowed {
        problems.push(format!("constraints name {:?}, the schema allows {allowed:?}", code_spans(&row[3])));
    }
    if let Some(max) = key.node["maxLength"].as_u64() {
        if !row[3].contains(&format!("at most {max} characters")) {
            problems.push(format!("constraints must say \"at most {max} characters\""));
        }
    }
    let default = key.node.get("default").map(|d| format!("`{d}`")).unwrap_or_default();
    if row[4] != default {
        problems.push(format!("default is {:?}, the schema says {default:?}", row[4]));
    }
    let description = key.node["description"].as_str().unwrap_or_default();
    if row[5] != description {
        problems.push(format!("description is {:?}, the published one is {description:?}", row[5]));
    }
    problems
}

/// `| key | type | source |`.
fn check_output_row(key: &SchemaKey, row: &[String]) -> Vec<String> {
    if row.len() != 3 {
        return vec![format!("the row needs 3 cells (key, type, source), has {}", row.len())];
    }
    if row[1] != type_text(&key.node) {
        return vec![format!("type is {:?}, the schema says {:?}", row[1], type_text(&key.node))];
    }
    if row[2].is_empty() {
        return vec!["the source is empty: say where the value comes from".to_owned()];
    }
    Vec::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_index_and_capability_table_are_the_servers() {
    let described = tools_json().await;
    let mut problems = Vec::new();

    let index = read(&docs_dir().join("README.md"));
    let rows = first_table(&section(&index, "## The built-in tools").expect("docs/README.md has `## The built-in tools`"));
    let listed: Vec<(Vec<String>, Vec<String>)> = rows.iter().map(|row| (code_spans(&row[0]), code_spans(row.get(1).map_or("", String::as_str)))).collect();
    let expected: Vec<(Vec<String>, Vec<String>)> =
        tools_of(&described).iter().map(|t| (vec![t["name"].as_str().unwrap_or_default().to_owned()], strings(&t["declaredScopes"]))).collect();
    if listed != expected {
        problems.push(format!("docs/README.md lists (tool, scopes) {listed:?}, the server loads {expected:?}"));
    }
    for row in &rows {
        let name = code_spans(&row[0]).concat();
        let page = format!("(tools/{}.md)", name.trim_start_matches(TOOL_PREFIX));
        if !row[0].ends_with(&page) {
            problems.push(format!("docs/README.md: the row of {name} must link to {page}"));
        }
    }

    let architecture = read(&docs_dir().join("architecture.md"));
    let rows = first_table(&section(&architecture, "## Capability table").expect("docs/architecture.md has `## Capability table`"));
    let documented: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            let cell = |i: usize| row.get(i).cloned().unwrap_or_default();
            [code_spans(&cell(0)).concat(), cell(1), code_spans(&cell(2)).concat(), cell(3)]
        })
        .collect();
    let table: Vec<[String; 4]> = described["capabilityTable"]
        .as_array()
        .expect("tools --json has capabilityTable")
        .iter()
        .map(|r| ["scope", "method", "path", "purpose"].map(|k| r[k].as_str().unwrap_or_default().to_owned()))
        .collect();
    for (i, (doc, code)) in documented.iter().zip(&table).enumerate() {
        if doc != code {
            problems.push(format!("docs/architecture.md capability table row {}: {doc:?}, host/src/capability/table.rs has {code:?}", i + 1));
        }
    }
    if documented.len() != table.len() {
        problems.push(format!("docs/architecture.md has {} capability rows, the server {}", documented.len(), table.len()));
    }
    assert_none(problems, "Update docs/README.md and docs/architecture.md#capability-table to what the server loads.");
}

/// The folders and files whose text is checked: sources, scripts, manifests and docs.
fn repository_text_files() -> Vec<PathBuf> {
    const ROOTS: &[&str] = &["README.md", "Cargo.toml", ".ci", ".cargo", "docs", "host", "xtask", "tests", "tool-components", "tools-wit"];
    const SKIP_DIRS: &[&str] = &["target", ".git", "node_modules", "__pycache__"];
    const EXTENSIONS: &[&str] = &["rs", "py", "js", "mjs", "toml", "md", "wit", "sh", "txt", "yml", "yaml"];
    let root = paths::workspace_root();
    // Captured gateway answers: data, not prose.
    let fixtures = paths::gateway_fixtures_dir();
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ROOTS.iter().map(|r| root.join(r)).filter(|p| p.exists()).collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if SKIP_DIRS.contains(&name) || path == fixtures {
                continue;
            }
            for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display())) {
                stack.push(entry.expect("directory entry").path());
            }
        } else {
            let ext = path.extension().and_then(|e| e.to_str());
            let in_ci = path.parent().is_some_and(|p| p.ends_with(".ci"));
            if ext.is_some_and(|e| EXTENSIONS.contains(&e)) || (ext.is_none() && in_ci) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(paths::workspace_root()).unwrap_or(path).display().to_string()
}

#[test]
fn links_into_docs_and_paths_named_in_docs_exist() {
    let root = paths::workspace_root();
    let mut problems = Vec::new();
    let mut anchor_cache: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut check = |from: &str, target: &Path, anchor: Option<&str>, problems: &mut Vec<String>| {
        if !target.exists() {
            problems.push(format!("{from}: {} does not exist", relative(target)));
            return;
        }
        if let Some(anchor) = anchor.filter(|a| !a.is_empty()) {
            let known = anchor_cache.entry(target.to_path_buf()).or_insert_with(|| anchors(&read(target)));
            if !known.iter().any(|a| a == anchor) {
                problems.push(format!("{from}: {}#{anchor}: no such heading (anchors: {})", relative(target), known.join(", ")));
            }
        }
    };

    for file in repository_text_files() {
        let text = read(&file);
        let from = relative(&file);
        // References written as repository paths: `docs/architecture.md#budget-guard`.
        for (line_no, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("docs/") {
                let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '/');
                let tail = &rest[i..];
                let end = tail.find(|c: char| !(c.is_alphanumeric() || "/._-#".contains(c))).unwrap_or(tail.len());
                let reference = tail[..end].trim_end_matches(['.', ',']);
                rest = &tail[end.max(5)..];
                let (file_part, anchor) = reference.split_once('#').map_or((reference, None), |(f, a)| (f, Some(a)));
                if boundary && file_part.ends_with(".md") {
                    check(&format!("{from}:{}", line_no + 1), &root.join(file_part), anchor, &mut problems);
                }
            }
        }
        if !file.starts_with(root.join("docs")) || file.extension().is_none_or(|e| e != "md") {
            continue;
        }
        // Markdown links between pages, relative to the page.
        for link in links(&text) {
            if link.starts_with("http") || link.starts_with("mailto:") {
                continue;
            }
            let (file_part, anchor) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file_part.is_empty() { file.clone() } else { file.parent().unwrap_or(&root).join(file_part) };
            check(&from, &target, anchor, &mut problems);
        }
        // Repository paths the docs name in code spans.
        for span in code_spans(&text) {
            let named = ["host/", "tool-components/", "tests/", "xtask/", "tools-wit/", "docs/", ".ci/"].iter().any(|p| span.starts_with(p));
            let plain = !span.contains(|c: char| c.is_whitespace() || "<>*…{}".contains(c));
            if named && plain {
                let path = span.split_once('#').map_or(span.as_str(), |(f, _)| f);
                if !root.join(path).exists() {
                    problems.push(format!("{from}: names `{span}`, which does not exist"));
                }
            }
        }
    }
    assert_none(problems, "Fix the link or path (headings give GitHub anchors: `## One call, end to end` is #one-call-end-to-end).");
}

/// What `line` cites that is not in the repository: a section of the old developer
/// specification (its word, then a section letter A-D and number, or a bare section number in
/// parentheses), that specification or the design document by file name, the folder they lived
/// in, or the specification itself. The needles are assembled from pieces, so that this file
/// cites nothing itself.
fn outside_citations(line: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let lower = line.to_lowercase();
    let word = concat!("sp", "ec");
    for (i, _) in lower.match_indices(word) {
        let starts_word = lower[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = &lower[i + word.len()..];
        if !starts_word || !after.starts_with(char::is_whitespace) {
            continue;
        }
        let mut rest = after.trim_start();
        if let Some(r) = rest.strip_prefix("part").filter(|r| r.starts_with(char::is_whitespace)) {
            rest = r.trim_start();
        }
        let mut chars = rest.chars();
        if matches!(chars.next(), Some('a'..='d')) && chars.next().is_none_or(|c| !c.is_alphanumeric()) {
            found.push("a section of the old specification");
        }
    }
    let bytes = line.as_bytes();
    let bare = (0..bytes.len().saturating_sub(2)).any(|i| {
        let starts = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        starts && (b'A'..=b'D').contains(&bytes[i]) && bytes[i + 1] == b'.' && bytes[i + 2].is_ascii_digit()
    });
    if bare {
        found.push("a section number of the old specification");
    }
    let vague = concat!("the ", "sp", "ec");
    if lower.match_indices(vague).any(|(i, _)| lower[i + vague.len()..].chars().next().is_none_or(|c| !c.is_alphabetic())) {
        found.push("the old specification");
    }
    for (needle, what) in [
        (concat!("design", ".md"), "the design document"),
        (concat!("sp", "ec.md"), "the old specification"),
        (concat!("/work", "/shared"), "a folder outside the repository"),
        (concat!("omniroute", "/samples"), "a folder outside the repository"),
        (concat!("\"our ", "contract\""), "a heading of the old specification"),
    ] {
        if lower.contains(needle) {
            found.push(what);
        }
    }
    found
}

#[test]
fn outside_citations_are_recognised() {
    let (s, c, d, ours) = (concat!("sp", "ec"), "C", "D", concat!("\"Our ", "contract\""));
    let cited = [
        format!("//! `omniroute_get_health` ({s} {c}.1, {ours})."),
        format!("/// Checks the range of {s} {c}.0.3."),
        format!("//! ({s} part {c}), grouped"),
        format!("non-zero ({s} {d})."),
        format!("/// the sum of the costs ({c}.0.7)."),
        format!("/// {d}.9: a gateway without a password"),
        format!("/// Defaults from the {s} for a base URL."),
        concat!("# Pinned by design (design", ".md)").to_owned(),
    ];
    for line in &cited {
        assert!(!outside_citations(line).is_empty(), "not recognised: {line}");
    }
    let innocent = [
        format!("let {s}s = \"{s}\";"),
        format!("the {s}ification of a special case"),
        "/// docs/architecture.md#budget-guard (see docs/tools/get_health.md)".to_owned(),
        format!("OmniRoute 3.7.9, wasmtime 48.0.8, x.{c}.1"),
        "let inputSchema = Value::Null;".to_owned(),
    ];
    for line in &innocent {
        assert!(outside_citations(line).is_empty(), "wrongly flagged: {line}: {:?}", outside_citations(line));
    }
}

#[test]
fn no_text_cites_a_document_outside_the_repository() {
    let mut problems = Vec::new();
    for file in repository_text_files() {
        for (n, line) in read(&file).lines().enumerate() {
            for what in outside_citations(line) {
                problems.push(format!("{}:{}: cites {what}: {}", relative(&file), n + 1, line.trim()));
            }
        }
    }
    assert_none(
        problems,
        "A contributor has only the repository: point into docs/ instead, e.g. docs/tools/get_health.md or docs/architecture.md#budget-guard (docs/README.md#keeping-the-docs-true).",
    );
}
