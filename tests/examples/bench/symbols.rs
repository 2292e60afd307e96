//! `--symbol-order FILE`: the functions of the server binary that run from start-up through
//! calls of the bench's tools and `ping`, for lld's `--symbol-ordering-file` (`host/build.rs`
//! passes `host/link/symbol-order.txt` when it links the release binary on x86_64 Linux).
//!
//! Why: the kernel maps 64 KiB around every page fault in a file mapping, and the functions a
//! start and a call run are spread over the 29 MB text section, so a server that ran a few calls
//! had 23 MB of its text resident for 3 MB of code it touches. Laid out side by side, those
//! functions fill a few MB.
//!
//! How: the server runs under callgrind (`--demangle=no`, so the names are the symbols' own)
//! with the compiled-component cache filled natively first, as `--instructions` does; every
//! function of the server binary that callgrind saw execute is listed in the order callgrind
//! first met it. Only the names matter to the linker: a name the next build lacks is skipped,
//! so the file stays useful across small changes; regenerate it after larger ones.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use omniroute_mcp_tests::TempDir;
use serde_json::{Value, json};

use crate::instructions::{command, fill_cache, under_callgrind};
use crate::stdio::StdioServer;

/// Writes the functions `bin` runs (start-up, `calls` calls of each tool, `calls` pings) to
/// `file`; returns how many.
pub async fn write(bin: &Path, gateway: &str, tools: &[(&'static str, Value)], calls: usize, file: &Path) -> Result<usize, String> {
    crate::instructions::valgrind_version()?;
    let data = TempDir::new("bench-symbols-data");
    let cache = TempDir::new("bench-symbols-cache");
    crate::progress("symbol order: filling the compiled cache natively");
    fill_cache(bin, gateway, data.path(), cache.path(), tools, false).await?;
    let out = data.path().join("callgrind.out");
    crate::progress(&format!("symbol order: start-up, {calls} calls of each tool and {calls} pings under callgrind"));
    let mut server = StdioServer::spawn(under_callgrind(&command(bin, gateway, data.path(), cache.path(), false), &out, &["--demangle=no"]))?;
    server.handshake().await?;
    for (tool, args) in tools {
        for _ in 0..calls {
            server.call(&format!("omniroute_{tool}"), args).await?;
        }
    }
    for _ in 0..calls {
        server.request("ping", json!({})).await?;
    }
    server.finish().await;
    let dump = std::fs::read_to_string(&out).map_err(|e| format!("cannot read the callgrind output {}: {e}", out.display()))?;
    let object = bin.file_name().and_then(|n| n.to_str()).ok_or("the server binary has no file name")?;
    let names = executed_functions(&dump, object);
    if names.is_empty() {
        return Err(format!("callgrind saw no function of {object} run"));
    }
    let mut text = format!(
        "# Functions of the release server that run from start-up through tool calls, in the order\n\
         # callgrind first met them: lld lays them out side by side (host/build.rs).\n\
         # {} names, written by `target/release/examples/bench --symbol-order FILE` (README,\n\
         # Performance); regenerate after large changes.\n",
        names.len()
    );
    for name in &names {
        text.push_str(name);
        text.push('\n');
    }
    std::fs::write(file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(names.len())
}

/// The functions of the object whose file name is `object` that have a cost block in a
/// callgrind output (`fn=` under `ob=`), in order of appearance, without duplicates. Names and
/// objects may be compressed (`fn=(12) name` defines id 12, a later `fn=(12)` refers to it).
fn executed_functions(dump: &str, object: &str) -> Vec<String> {
    let mut objects: HashMap<String, String> = HashMap::new();
    let mut functions: HashMap<String, String> = HashMap::new();
    let mut ours = false;
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for line in dump.lines() {
        if let Some(rest) = line.strip_prefix("ob=") {
            let path = resolve(&mut objects, rest);
            ours = Path::new(&path).file_name().and_then(|n| n.to_str()) == Some(object);
        } else if let Some(rest) = line.strip_prefix("cob=") {
            resolve(&mut objects, rest);
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            resolve(&mut functions, rest);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            let name = resolve(&mut functions, rest);
            // A recursion level (`name'2`) is the same symbol; addresses (`0x…`) and
            // valgrind's own entries (`(below main)`) are none.
            let name = name.split('\'').next().unwrap_or_default().to_owned();
            if ours && !name.is_empty() && !name.starts_with("0x") && !name.starts_with('(') && seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    names
}

/// The name of a possibly compressed `(id) name` / `(id)` / `name` field, recording new ids.
fn resolve(ids: &mut HashMap<String, String>, field: &str) -> String {
    let field = field.trim();
    let Some(rest) = field.strip_prefix('(') else { return field.to_owned() };
    let Some((id, name)) = rest.split_once(')') else { return field.to_owned() };
    let name = name.trim();
    if name.is_empty() {
        ids.get(id).cloned().unwrap_or_default()
    } else {
        ids.insert(id.to_owned(), name.to_owned());
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_of_the_object_in_order_with_compressed_names() {
        let dump = "ob=(1) /x/libc.so.6\nfn=(1) memcpy\n0 5\nob=(2) /x/omniroute-mcp\nfn=(2) _ZN4main\n0 3\n\
                    cob=(1)\ncfn=(1)\ncalls=1 0\n0 5\nfn=(3) _ZN5other'2\n0 1\nob=(1)\nfn=(4) free\n0 1\nob=(2)\nfn=(2)\n0 1\nfn=(5) 0x0000123\n";
        assert_eq!(executed_functions(dump, "omniroute-mcp"), vec!["_ZN4main".to_owned(), "_ZN5other".to_owned()]);
    }
}
