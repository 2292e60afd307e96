//! `--instructions`: instructions per `tools/call`, counted by callgrind (valgrind), for each
//! tool with metrics off and with metrics on (`serve --metrics 127.0.0.1:0`), traces off in both.
//!
//! Why callgrind: hardware counters (`perf stat -e instructions`) are not available on every VM,
//! and wall time on a shared 2-core machine moves by more than the 2 % this checks; callgrind
//! counts every instruction of every thread of the process, the same run after run.
//!
//! How: the server runs under `valgrind --tool=callgrind` on stdio against the in-process fake
//! gateway; per tool, `warmup` calls, then `callgrind_control --zero`, `calls` calls,
//! `callgrind_control --dump`, and the dump's `totals:` divided by `calls`. Startup and warm-up
//! are so left out. The compiled-component cache is filled by a native run first, so nothing is
//! compiled under valgrind. The server runs with `OMNIROUTE_MCP_WASM_ALLOCATOR=on-demand`:
//! wasmtime's pooling allocator reserves terabytes of address space up front, which valgrind's
//! address-space manager refuses (the engine cannot start), so both modes use the on-demand
//! allocator; the ratio compares like with like, and the absolute figure is for that allocator.
//! Background threads (the 5 ms epoch ticker, idle tokio workers) add a few instructions per
//! millisecond of wall time to both modes alike.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use omniroute_mcp_tests::TempDir;
use serde_json::{Value, json};

use crate::stdio::{self, StdioServer};

/// The environment variable that picks wasmtime's instance allocator (see the module doc).
const ALLOCATOR_VAR: &str = "OMNIROUTE_MCP_WASM_ALLOCATOR";

/// One tool's instructions per call in both modes.
pub struct ToolCount {
    pub tool: &'static str,
    pub off: f64,
    pub on: f64,
}

impl ToolCount {
    /// (on − off) / off, in percent.
    pub fn overhead_pct(&self) -> f64 {
        (self.on - self.off) / self.off * 100.0
    }
}

/// What `--instructions` measured.
pub struct Instructions {
    pub calls: usize,
    pub warmup: usize,
    pub valgrind: String,
    pub tools: Vec<ToolCount>,
    /// Where the callgrind dumps were kept (`<out>/callgrind/metrics-{off,on}-<tool>.out`).
    pub dumps: Option<PathBuf>,
    /// The top inclusive entries of the first tool's metrics-off dump (`callgrind_annotate`).
    pub profile: Option<(&'static str, Vec<String>)>,
}

/// How many inclusive entries of the profile the report keeps.
const PROFILE_ENTRIES: usize = 40;

/// Whether valgrind can run here (its version line), else why not.
pub fn valgrind_version() -> Result<String, String> {
    let out = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(|e| format!("valgrind is not installed ({e}); install it (apt-get install valgrind) to count instructions"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Measures `tools` (name, arguments) on `bin` against `gateway`; keeps the dumps in `keep`.
pub async fn run(
    bin: &Path,
    gateway: &str,
    tools: &[(&'static str, Value)],
    calls: usize,
    warmup: usize,
    keep: Option<&Path>,
) -> Result<Instructions, String> {
    let valgrind = valgrind_version()?;
    let mut counts: Vec<ToolCount> = tools.iter().map(|(tool, _)| ToolCount { tool, off: 0.0, on: 0.0 }).collect();
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for metrics in [false, true] {
        let per_call = measure(bin, gateway, tools, calls, warmup, metrics, keep).await?;
        for (count, n) in counts.iter_mut().zip(per_call) {
            if metrics {
                count.on = n;
            } else {
                count.off = n;
            }
        }
    }
    let profile = match (keep, tools.first()) {
        (Some(dir), Some((tool, _))) => annotate(&dir.join(dump_name(false, tool))).await.map(|lines| (*tool, lines)),
        _ => None,
    };
    Ok(Instructions { calls, warmup, valgrind, tools: counts, dumps: keep.map(Path::to_path_buf), profile })
}

/// The kept dump of one tool in one mode.
fn dump_name(metrics: bool, tool: &str) -> String {
    format!("metrics-{}-{tool}.out", if metrics { "on" } else { "off" })
}

/// The top inclusive entries of a dump (`callgrind_annotate --inclusive=yes`), or `None`
/// when the annotator cannot run (it is a Perl script shipped with valgrind).
async fn annotate(dump: &Path) -> Option<Vec<String>> {
    let out = tokio::process::Command::new("callgrind_annotate").arg("--inclusive=yes").arg(dump).output().await.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The entries follow the header line that ends in "file:function". Left out: the
    // runtime's scaffolding above the call (main, the scheduler: more than 90 %) and the
    // guest's JIT-compiled code, which has no symbols (`???:0x…`).
    let share = |l: &str| l.split_once('(').and_then(|(_, r)| r.split_once('%')).and_then(|(p, _)| p.trim().parse::<f64>().ok());
    let lines = text
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("file:function"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--") && !l.contains("???:0x"))
        .filter(|l| share(l).is_some_and(|p| p <= 90.0))
        .take(PROFILE_ENTRIES)
        .map(|l| l.chars().take(200).collect())
        .collect();
    Some(lines)
}

pub(crate) fn command(bin: &Path, gateway: &str, data: &Path, cache: &Path, metrics: bool) -> tokio::process::Command {
    let extra: &[&str] = if metrics { &["serve", "--metrics", "127.0.0.1:0"] } else { &["serve"] };
    let mut cmd = stdio::ours(bin, None, data, cache, gateway, None, extra);
    cmd.env(ALLOCATOR_VAR, "on-demand");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// `cmd` run under callgrind, writing its dumps to `out` (`out.1`, `out.2`, …); `extra`
/// are more callgrind options.
pub(crate) fn under_callgrind(cmd: &tokio::process::Command, out: &Path, extra: &[&str]) -> tokio::process::Command {
    let std = cmd.as_std();
    let mut wrapped = tokio::process::Command::new("valgrind");
    let mut file = OsString::from("--callgrind-out-file=");
    file.push(out);
    wrapped
        .arg("--tool=callgrind")
        .arg(file)
        // Counts only: no per-instruction or cache data, no collection of jumps.
        .arg("--dump-instr=no")
        .arg("--collect-jumps=no")
        .arg("--vgdb=yes")
        .args(extra)
        .arg(std.get_program())
        .args(std.get_args());
    for (name, value) in std.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    wrapped
}

async fn measure(
    bin: &Path,
    gateway: &str,
    tools: &[(&'static str, Value)],
    calls: usize,
    warmup: usize,
    metrics: bool,
    keep: Option<&Path>,
) -> Result<Vec<f64>, String> {
    let mode = if metrics { "metrics on" } else { "metrics off" };
    let data = TempDir::new("bench-instructions-data");
    let cache = TempDir::new("bench-instructions-cache");
    crate::progress(&format!("instructions, {mode}: filling the compiled cache natively"));
    fill_cache(bin, gateway, data.path(), cache.path(), tools, metrics).await?;

    let out = data.path().join("callgrind.out");
    let mut server = StdioServer::spawn(under_callgrind(&command(bin, gateway, data.path(), cache.path(), metrics), &out, &[]))?;
    server.handshake().await?;
    let pid = server.pid().ok_or("the server under valgrind has no pid")?;
    let mut per_call = Vec::new();
    for (dump, (tool, args)) in tools.iter().enumerate() {
        let name = format!("omniroute_{tool}");
        crate::progress(&format!("instructions, {mode}: {tool}, {warmup} warm-up + {calls} counted calls under callgrind"));
        for _ in 0..warmup {
            server.call(&name, args).await?;
        }
        control(pid, "--zero").await?;
        let mut is_error = 0;
        for _ in 0..calls {
            is_error += usize::from(server.call(&name, args).await?);
        }
        control(pid, "--dump").await?;
        if is_error > 0 {
            return Err(format!("{tool}: {is_error} of {calls} calls answered isError under callgrind ({mode})"));
        }
        let file = PathBuf::from(format!("{}.{}", out.display(), dump + 1));
        let total = totals(&file)?;
        per_call.push(total as f64 / calls as f64);
        if let Some(dir) = keep {
            let kept = dir.join(dump_name(metrics, tool));
            std::fs::copy(&file, &kept).map_err(|e| format!("cannot keep the dump as {}: {e}", kept.display()))?;
        }
    }
    server.finish().await;
    Ok(per_call)
}

/// Runs every tool once natively, so the compiled-component cache holds them all and nothing
/// is compiled under valgrind.
pub(crate) async fn fill_cache(bin: &Path, gateway: &str, data: &Path, cache: &Path, tools: &[(&'static str, Value)], metrics: bool) -> Result<(), String> {
    let mut native = StdioServer::spawn(command(bin, gateway, data, cache, metrics))?;
    native.handshake().await?;
    for (tool, args) in tools {
        native.call(&format!("omniroute_{tool}"), args).await?;
    }
    native.finish().await;
    Ok(())
}

/// `callgrind_control <flag> <pid>`, waiting for its answer.
async fn control(pid: u32, flag: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .output()
        .await
        .map_err(|e| format!("cannot run callgrind_control (part of valgrind): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("OK") {
        return Err(format!("callgrind_control {flag} {pid} failed: {text}{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// The `totals:` (instructions) of a callgrind dump.
fn totals(file: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read the callgrind dump {}: {e}", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals: line in {}", file.display()))
}

impl Instructions {
    pub fn markdown(&self) -> String {
        let mut md = String::from("## Instructions per tools/call (callgrind)\n\n");
        md.push_str(&format!(
            "{}; stdio, fake gateway, {} counted calls per tool after {} warm-up calls; traces off; wasmtime on-demand \
             allocator (valgrind cannot host the pooling allocator's reservation).\n\n",
            self.valgrind, self.calls, self.warmup
        ));
        md.push_str("| tool | metrics off | metrics on | on vs off |\n|---|---:|---:|---:|\n");
        for t in &self.tools {
            md.push_str(&format!("| {} | {:.0} | {:.0} | {:+.2} % |\n", t.tool, t.off, t.on, t.overhead_pct()));
        }
        if let Some(dir) = &self.dumps {
            md.push_str(&format!(
                "\nThe dumps are kept in `{}` (`callgrind_annotate --inclusive=yes FILE` for a profile).\n",
                dir.display()
            ));
        }
        if let Some((tool, lines)) = &self.profile {
            md.push_str(&format!(
                "\nTop {} inclusive entries of {tool} under 90 % (metrics off; instructions over all {} counted calls, all threads; \
                 the guest's JIT code, without symbols, left out; wasmtime's fiber switches make callgrind attribute \
                 some host work to the frames that resumed the guest):\n\n```text\n",
                lines.len(),
                self.calls
            ));
            for line in lines {
                md.push_str(line);
                md.push('\n');
            }
            md.push_str("```\n");
        }
        md
    }

    pub fn json(&self) -> Value {
        json!({
            "valgrind": self.valgrind,
            "calls": self.calls,
            "warmup": self.warmup,
            "allocator": "on-demand",
            "dumps": self.dumps.as_ref().map(|d| d.display().to_string()),
            "profile": self.profile.as_ref().map(|(tool, lines)| json!({ "tool": tool, "inclusive": lines })),
            "tools": self.tools.iter().map(|t| json!({
                "tool": t.tool,
                "instructionsPerCallMetricsOff": t.off.round(),
                "instructionsPerCallMetricsOn": t.on.round(),
                "metricsOverheadPct": (t.overhead_pct() * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
        })
    }
}
