//! A lint over the sources of the tools and the crates they share: a value
//! the gateway did not supply must reach the output as `null` with its
//! reason (in `degraded` or the schema), never as a made-up default. So a
//! string or numeric fallback (`unwrap_or("…")`, `unwrap_or(0)`,
//! `unwrap_or_default()`, `coerce::str(v, "…")`, the words "unknown" and
//! "available", …) fails this test unless it is in [`ALLOWED`] with the
//! reason it is not an invented value.
//!
//! Scanned: `tool-components/*/src` and `tool-components/plugins/*/src`
//! (the built-in tools, the example plugin, the contract and the SDK), not
//! their tests (`tests.rs`, `#[cfg(test)] mod tests`), not comments. Not
//! scanned: this testing crate, and `test-components/` (components that
//! only the host's sandbox tests load).

use std::path::{Path, PathBuf};

/// One allowed fallback: the file (relative to `tool-components/`), a
/// fragment of the line, and why the value is not an invention.
struct Allowed {
    file: &'static str,
    code: &'static str,
    reason: &'static str,
}

const ALLOWED: &[Allowed] = &[
    Allowed {
        file: "contract/src/clock.rs",
        code: ".unwrap_or(0)",
        reason: "now_ms: a wall clock set before 1970 saturates at the epoch (a u64 cannot hold it); it is this machine's clock, not a gateway value",
    },
    Allowed {
        file: "contract/src/coerce.rs",
        code: "let exp: i32 = exp.parse().unwrap_or(0);",
        reason: "js_number parses Rust's own `{:e}` text, whose exponent is always an integer; no gateway data passes here",
    },
    Allowed {
        file: "contract/src/combos.rs",
        code: r#""priority": coerce::num_value(&step["priority"], (index + 1) as f64),"#,
        reason: "a step without its own priority is tried in list order: its 1-based position is its priority, read from the combo, not guessed",
    },
    Allowed {
        file: "contract/src/combos.rs",
        code: r#"stored.unwrap_or("priority")"#,
        reason: "OmniRoute routes a combo that names no strategy by priority (its default); the value is what the gateway does",
    },
    Allowed {
        file: "contract/src/providers.rs",
        code: ".unwrap_or_default();",
        reason: "Providers::from_json: a pricing-models answer that is missing or not an object maps no built-in provider, so the alias maps are just emptier; nothing is output from it",
    },
    Allowed {
        file: "cost-report/src/lib.rs",
        code: r#".unwrap_or("session");"#,
        reason: "the input's published default (`period` defaults to session), not a gateway value",
    },
    Allowed {
        file: "explain-route/src/factors.rs",
        code: ".map_or(0.0, |k| {",
        reason: "task_fit formula: a serving provider that is not in the role's preferred list scores 0 (computed from the fitness table; null when role or provider is unknown)",
    },
    Allowed {
        file: "list-models-catalog/src/lib.rs",
        code: r#".unwrap_or("chat");"#,
        reason: "/v1/models marks every non-chat model with `type` (embedding, image, ...); an entry without one is a chat model, as the gateway lists it",
    },
    Allowed {
        file: "plugins/combo-ranker/src/lib.rs",
        code: r#"unwrap_or("a step without model")"#,
        reason: "words naming a step inside the explanatory `notes` sentence; no value of the output",
    },
    Allowed {
        file: "test-combo/src/lib.rs",
        code: r#"r.map_or(json!("none"), |(step, _)| step["provider"].clone())"#,
        reason: "fastestProvider/cheapestProvider are \"none\" when no step succeeded: a known outcome of the test, documented in the output schema",
    },
];

/// What counts as a fallback, as (name, test on a code line).
fn patterns() -> Vec<(&'static str, fn(&str) -> bool)> {
    fn literal_after(line: &str, call: &str) -> bool {
        line.match_indices(call).any(|(i, _)| {
            let rest = line[i + call.len()..].trim_start();
            let rest = rest.strip_prefix("||").map_or(rest, str::trim_start);
            rest.starts_with('"')
                || rest.starts_with(|c: char| c.is_ascii_digit())
                || rest.starts_with("-")
                || rest.starts_with("String::new")
                || rest.starts_with("Vec::new")
                || rest.starts_with("json!([])")
                || rest.starts_with("json!({})")
                || rest.starts_with("json!(\"")
                || rest.starts_with("json!(0")
        })
    }
    vec![
        ("a literal in unwrap_or", |l| literal_after(l, "unwrap_or(")),
        ("a literal in unwrap_or_else", |l| {
            literal_after(l, "unwrap_or_else(")
        }),
        ("a literal in map_or", |l| literal_after(l, "map_or(")),
        ("unwrap_or_default()", |l| l.contains("unwrap_or_default()")),
        ("a fallback reader (coerce::str/num/num_a/num_value)", |l| {
            [
                "coerce::str(",
                "coerce::num(",
                "coerce::num_a(",
                "coerce::num_value(",
            ]
            .iter()
            .any(|f| l.contains(f))
        }),
        ("the word \"unknown\"", |l| l.contains("\"unknown\"")),
        ("the word \"available\"", |l| l.contains("\"available\"")),
    ]
}

/// A finding: where, which pattern, the line.
#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    pattern: &'static str,
    code: String,
}

fn components_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testing crate sits in tool-components/")
        .to_path_buf()
}

/// The `src/` folders to scan.
fn scanned_src_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for parent in [root.to_path_buf(), root.join("plugins")] {
        let entries = std::fs::read_dir(&parent)
            .unwrap_or_else(|e| panic!("reading {}: {e}", parent.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if ["testing", "test-components", "target", "plugins"].contains(&name) {
                continue;
            }
            if path.join("src").is_dir() {
                dirs.push(path.join("src"));
            }
        }
    }
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The code lines of a source file, numbered from 1: without the
/// `#[cfg(test)] mod tests { … }` block at its end and without comments.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let end = text.find("#[cfg(test)]\nmod tests {").unwrap_or(text.len());
    text[..end]
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let code = line.split("//").next().unwrap_or("").trim();
            (!code.is_empty()).then_some((i + 1, line.trim()))
        })
        .collect()
}

fn findings(root: &Path) -> Vec<Finding> {
    let mut files = Vec::new();
    for dir in scanned_src_dirs(root) {
        rust_files(&dir, &mut files);
    }
    files.sort();
    assert!(
        files.len() > 30,
        "expected the tool sources under {}, found {files:?}",
        root.display()
    );
    let patterns = patterns();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let file = path
            .strip_prefix(root)
            .expect("under tool-components")
            .to_string_lossy()
            .replace('\\', "/");
        for (line, code) in code_lines(&text) {
            let without_comment = code.split("//").next().unwrap_or("");
            for (pattern, matches) in &patterns {
                if matches(without_comment) {
                    out.push(Finding {
                        file: file.clone(),
                        line,
                        pattern,
                        code: code.to_string(),
                    });
                }
            }
        }
    }
    out
}

fn allowed(f: &Finding) -> Option<&'static Allowed> {
    ALLOWED
        .iter()
        .find(|a| a.file == f.file && f.code.contains(a.code))
}

#[test]
fn no_string_or_numeric_fallbacks_outside_the_allow_list() {
    let found = findings(&components_dir());
    let unexplained: Vec<String> = found
        .iter()
        .filter(|f| allowed(f).is_none())
        .map(|f| format!("  {}:{}: {}\n      {}", f.file, f.line, f.pattern, f.code))
        .collect();
    assert!(
        unexplained.is_empty(),
        "fallbacks that may invent a value the gateway did not supply:\n{}\n\
         Return null and name the reason in the tool's `degraded` (or its schema), \
         or add the line to ALLOWED in {} with the reason it is not an invention.",
        unexplained.join("\n"),
        file!()
    );
}

#[test]
fn every_allowed_entry_is_still_needed_and_explained() {
    let found = findings(&components_dir());
    for a in ALLOWED {
        assert!(
            a.reason.len() > 20,
            "{}: `{}` needs a real reason",
            a.file,
            a.code
        );
        assert!(
            found
                .iter()
                .any(|f| f.file == a.file && f.code.contains(a.code)),
            "ALLOWED entry no longer matches anything, remove it: {}: `{}`",
            a.file,
            a.code
        );
    }
}

#[test]
fn the_patterns_catch_what_they_claim() {
    let hits = |line: &str| -> Vec<&str> {
        patterns()
            .into_iter()
            .filter(|(_, m)| m(line))
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(hits(r#"let p = x.unwrap_or("unknown");"#).len(), 2);
    assert_eq!(
        hits("let n = x.unwrap_or(0.0);"),
        ["a literal in unwrap_or"]
    );
    assert_eq!(hits("let n = x.unwrap_or(-1);"), ["a literal in unwrap_or"]);
    assert_eq!(
        hits(r#"x.unwrap_or_else(|| "none".to_string())"#),
        ["a literal in unwrap_or_else"]
    );
    assert_eq!(hits("x.map_or(0, f)"), ["a literal in map_or"]);
    assert_eq!(hits("x.unwrap_or_default()"), ["unwrap_or_default()"]);
    assert_eq!(hits(r#"coerce::str(&v["a"], "b")"#).len(), 1);
    assert_eq!(
        hits(r#"json!({"status": "available"})"#),
        ["the word \"available\""]
    );
    assert!(
        hits("x.unwrap_or(Value::Null)").is_empty(),
        "null is not an invention"
    );
    assert!(hits("x.map_or(Value::Null, coerce::number)").is_empty());
    assert!(hits("x.unwrap_or(fallback)").is_empty());
    let text = "let a = 1;\n// x.unwrap_or(0)\nlet b = 2; // y.unwrap_or(0)\n#[cfg(test)]\nmod tests {\n    x.unwrap_or(0);\n}\n";
    let lines: Vec<usize> = code_lines(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        lines,
        [1, 3],
        "comments and the test module are not scanned"
    );
}
