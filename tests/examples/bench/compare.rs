//! `cargo xtask bench --compare OLD_BINARY`: an A/B of two builds of our server over stdio on the
//! in-process instant fake gateway. The binaries alternate (old then new, then new then old, …)
//! so that drift on the machine falls on both alike. Per binary and round: the warm start to a
//! served tools/list (median of the starts), the median and p99 of sequential calls of each tool
//! and of `ping`, the server's CPU time per call (`/proc/<pid>/stat` utime + stime over the
//! calls, in 10 ms ticks), and the peak RSS after the calls. The report gives every round's
//! value, the median over the rounds for each binary, and new/old.

use std::path::{Path, PathBuf};
use std::time::Instant;

use omniroute_mcp_tests::{FakeGateway, TempDir};
use serde_json::{Value, json};

use crate::stats::{self, Summary, round1};
use crate::stdio::{self, StdioServer};
use crate::{args_for, progress, startup};

/// The tools measured, `ping` last (a round trip without any gateway request).
const MEASURED: [&str; 4] = ["get_health", "list_combos", "route_request", "ping"];
const WARMUP: usize = 20;

/// One of the two builds.
#[derive(Clone, Debug)]
pub struct Build {
    pub label: &'static str,
    pub bin: PathBuf,
    /// `--tools-dir` for it; `None`: the binary's own default (`tools` beside it or one level up).
    pub tools: Option<PathBuf>,
}

/// One tool measured in one round.
struct ToolSample {
    tool: &'static str,
    latency: Summary,
    /// The server's CPU time per call, µs; `None` if `/proc` could not be read.
    cpu_us: Option<f64>,
}

/// One binary measured once.
struct Round {
    label: &'static str,
    warm_start_ms: f64,
    tools: Vec<ToolSample>,
    rss_kib: Option<u64>,
}

/// Every round of both binaries.
pub struct Comparison {
    machine: String,
    settings: String,
    builds: [Build; 2],
    rounds: Vec<Round>,
}

/// Measures `old` and `new` `rounds` times each, alternating.
pub async fn run(old: Build, new: Build, rounds: usize, calls: usize, startup_repeats: usize) -> Result<Comparison, String> {
    let gateway = FakeGateway::start();
    progress(&format!("A/B on the fake gateway at {}: old {}, new {}", gateway.url(), old.bin.display(), new.bin.display()));
    let mut measured = Vec::new();
    for round in 0..rounds.max(1) {
        let order = if round % 2 == 0 { [&old, &new] } else { [&new, &old] };
        for build in order {
            progress(&format!("round {} of {}: {}", round + 1, rounds.max(1), build.label));
            measured.push(measure(build, &gateway, calls, startup_repeats).await?);
        }
    }
    let settings = format!(
        "Stdio, fake gateway (`cargo xtask bench --compare` builds the new binary in release). Per round and binary: \
         warm start = median of {startup_repeats} starts \
         after a cold one; {calls} sequential calls per tool after {WARMUP} warm-up calls; CPU = the server's \
         utime+stime over those calls / {calls}. {} round(s), alternating old/new.",
        rounds.max(1)
    );
    Ok(Comparison { machine: crate::machine(), settings, builds: [old, new], rounds: measured })
}

fn command(build: &Build, data: &Path, cache: &Path, gateway: &str) -> tokio::process::Command {
    stdio::ours(&build.bin, build.tools.as_deref(), data, cache, gateway, None, &[])
}

async fn measure(build: &Build, gateway: &FakeGateway, calls: usize, startup_repeats: usize) -> Result<Round, String> {
    let data = TempDir::new(&format!("bench-ab-{}-data", build.label));
    let cache = TempDir::new(&format!("bench-ab-{}-cache", build.label));
    let make = |data: &Path, cache: &Path| command(build, data, cache, &gateway.url());
    startup(&make, data.path(), cache.path()).await?; // cold: fills the cache, not reported
    let mut warm = Vec::new();
    for _ in 0..startup_repeats.max(1) {
        warm.push(startup(&make, data.path(), cache.path()).await?.0);
    }
    let warm_start_ms = stats::median_ms(&warm).ok_or("no warm start")?;

    let mut server = StdioServer::spawn(make(data.path(), cache.path()))?;
    server.handshake().await?;
    let pid = server.pid();
    let mut tools = Vec::new();
    for tool in MEASURED {
        let name = format!("omniroute_{tool}");
        let args = args_for(tool);
        for _ in 0..WARMUP {
            call(&mut server, tool, &name, &args).await?;
        }
        let cpu_before = pid.and_then(stats::cpu_ticks);
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            call(&mut server, tool, &name, &args).await?;
            samples.push(t.elapsed());
        }
        let cpu_after = pid.and_then(stats::cpu_ticks);
        let cpu_us = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => Some((after - before) as f64 * stats::TICK_US / calls as f64),
            _ => None,
        };
        tools.push(ToolSample { tool, latency: Summary::of(&samples).ok_or("no samples")?, cpu_us });
    }
    let rss_kib = pid.and_then(stats::peak_rss_kib);
    server.finish().await;
    Ok(Round { label: build.label, warm_start_ms, tools, rss_kib })
}

async fn call(server: &mut StdioServer, tool: &str, name: &str, args: &Value) -> Result<(), String> {
    if tool == "ping" {
        server.request("ping", json!({})).await.map(|_| ())
    } else if server.call(name, args).await? {
        Err(format!("{name} answered isError: true; the A/B measures successful calls"))
    } else {
        Ok(())
    }
}

/// One row: a name and, per round, a value of each build (`None`: not measured).
struct Row {
    name: String,
    unit: &'static str,
    old: Vec<Option<f64>>,
    new: Vec<Option<f64>>,
}

fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

fn show(value: Option<f64>, unit: &str) -> String {
    match (value, unit) {
        (None, _) => "–".into(),
        (Some(v), "µs") if v >= 1000.0 => format!("{:.2} ms", v / 1e3),
        (Some(v), "µs") => format!("{v:.0} µs"),
        (Some(v), "ms") => format!("{v:.1} ms"),
        (Some(v), "MiB") => format!("{v:.1} MiB"),
        (Some(v), unit) => format!("{v:.1} {unit}"),
    }
}

impl Comparison {
    fn rows(&self) -> Vec<Row> {
        let of = |label: &str, pick: &dyn Fn(&Round) -> Option<f64>| -> Vec<Option<f64>> {
            self.rounds.iter().filter(|r| r.label == label).map(pick).collect()
        };
        let row = |name: String, unit: &'static str, pick: &dyn Fn(&Round) -> Option<f64>| Row {
            name,
            unit,
            old: of("old", pick),
            new: of("new", pick),
        };
        let tool = |r: &Round, t: &str| r.tools.iter().find(|s| s.tool == t).map(|s| (s.latency, s.cpu_us));
        let mut rows = Vec::new();
        for t in MEASURED {
            rows.push(row(format!("{t}: median"), "µs", &|r| tool(r, t).map(|(l, _)| l.median_us)));
            rows.push(row(format!("{t}: p99"), "µs", &|r| tool(r, t).map(|(l, _)| l.p99_us)));
            rows.push(row(format!("{t}: server CPU per call"), "µs", &|r| tool(r, t).and_then(|(_, c)| c)));
        }
        rows.push(row("warm start to a served tools/list".into(), "ms", &|r| Some(r.warm_start_ms)));
        rows.push(row("peak RSS after the calls".into(), "MiB", &|r| r.rss_kib.map(|k| k as f64 / 1024.0)));
        rows
    }

    pub fn markdown(&self) -> String {
        let [old, new] = &self.builds;
        let mut md = format!(
            "A/B (`cargo xtask bench --compare`): old = `{}`, new = `{}`\n\nMachine: {}. {}\n\n",
            old.bin.display(),
            new.bin.display(),
            self.machine,
            self.settings
        );
        md.push_str("| measurement | old, each round | new, each round | old | new | new/old |\n| --- | --- | --- | --- | --- | --- |\n");
        for row in self.rows() {
            let each = |v: &[Option<f64>]| v.iter().map(|x| show(*x, row.unit)).collect::<Vec<_>>().join(", ");
            let (o, n) = (median(&row.old), median(&row.new));
            let ratio = match (o, n) {
                (Some(o), Some(n)) if o > 0.0 => format!("{:.3}", n / o),
                _ => "–".into(),
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {ratio} |\n",
                row.name,
                each(&row.old),
                each(&row.new),
                show(o, row.unit),
                show(n, row.unit)
            ));
        }
        md.push_str("\nold and new: the median over the rounds. Compare within one run: absolute numbers move between runs.\n");
        md
    }

    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows()
            .iter()
            .map(|r| {
                let (o, n) = (median(&r.old), median(&r.new));
                json!({
                    "measurement": r.name, "unit": r.unit,
                    "old": r.old.iter().map(|v| v.map(round1)).collect::<Vec<_>>(),
                    "new": r.new.iter().map(|v| v.map(round1)).collect::<Vec<_>>(),
                    "old_median": o.map(round1), "new_median": n.map(round1),
                    "ratio_new_over_old": match (o, n) { (Some(o), Some(n)) if o > 0.0 => Some(n / o), _ => None },
                })
            })
            .collect();
        let [old, new] = &self.builds;
        json!({
            "machine": self.machine,
            "settings": self.settings,
            "old": { "binary": old.bin, "tools": old.tools },
            "new": { "binary": new.bin, "tools": new.tools },
            "rows": rows,
        })
    }
}
