//! `cargo xtask bench`'s measuring program: our server (stdio and Streamable HTTP) and the
//! original TypeScript MCP server, against the in-process instant fake gateway and against a
//! real OmniRoute gateway, plus the floor: the same gateway requests sent directly.
//!
//! ```sh
//! cargo xtask bench [--quick] [--fake-only] [--calls N] [--real-calls N]   # builds, starts the gateway, runs this
//! cargo xtask bench --compare OLD_BINARY [--compare-tools DIR] [--rounds N] [--calls N]   # A/B of two builds
//! cargo xtask bench --instructions [--instruction-calls N]   # only the callgrind counts (instructions.rs)
//! ```
//! `--soak TOOL` (by hand, for profiling: soak.rs) runs only that tool `--calls` times.
//! `--symbol-order FILE` (symbols.rs) writes the functions the server runs, for the linker.
//! `--http-only` (run by hand, below) measures only our HTTP server: latency, throughput, and
//! the memory of 1,000 idle sessions on a fresh server; it prints and writes nothing.
//! Run by hand (after `cargo xtask build --release`):
//! ```sh
//! OMNIROUTE_MCP_BIN=target/release/omniroute-mcp cargo run --release -p omniroute-mcp-tests --example bench -- \
//!     [--quick] [--calls N] [--real-calls N] [--out target/bench] \
//!     [--node PATH --original PATH/app/open-sse/mcp-server/server.js] [--real-url URL --real-api-key KEY]
//! ```
//! Writes `results.json`, `results.md` and `latency.svg` to `--out` and prints the markdown; with
//! `--compare OLD_BINARY`, only the A/B of `compare.rs`, into `compare.json` and `compare.md`.
//! When valgrind is installed, the run also counts instructions per call with metrics off and on
//! (`instructions.rs`, skipped with `--no-instructions`), keeps the callgrind dumps in
//! `callgrind/` under `--out` and puts the top inclusive entries of get_health in the report;
//! `--instructions` runs only that, into `instructions.json` and `instructions.md`, and replaces
//! the `instructions` member of an existing `results.json` (and its section of `results.md`).
//! A measurement, not a test: it asserts nothing about the numbers.

mod compare;
mod direct;
mod http;
mod instructions;
mod report;
mod soak;
mod stats;
mod stdio;
mod store;
mod symbols;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omniroute_mcp_tests::{FakeGateway, TempDir, paths};
use serde_json::{Value, json};

use direct::{Direct, Shape};
use report::{Http, IdleSessions, Results, Section, Server, ToolRun};
use stats::Summary;
use stdio::StdioServer;

const TOOLS: [&str; 3] = ["get_health", "list_combos", "route_request"];

fn args_for(tool: &str) -> Value {
    match tool {
        "route_request" => json!({"model": "coding-fast", "messages": [{"role": "user", "content": "Say hi"}]}),
        _ => json!({}),
    }
}

struct Config {
    calls: usize,
    real_calls: usize,
    route_real_calls: usize,
    startup_repeats: usize,
    out: PathBuf,
    node: Option<PathBuf>,
    original: Option<PathBuf>,
    real_url: Option<String>,
    real_api_key: Option<String>,
    quick: bool,
    /// A/B mode: the old binary, its tools folder (else its own default) and the rounds.
    compare: Option<PathBuf>,
    compare_tools: Option<PathBuf>,
    rounds: usize,
    /// Only the callgrind instruction counts; or none of them.
    instructions_only: bool,
    no_instructions: bool,
    /// Counted calls per tool under callgrind.
    instruction_calls: usize,
    /// The state-store measurement (store.rs): a PostgreSQL base URL and the store_cost report.
    postgres_url: Option<String>,
    store_cost: Option<PathBuf>,
    /// Only the HTTP measurements (latency, throughput, idle sessions), printed.
    http_only: bool,
    /// Only `--calls` calls of this tool, for profiling (soak.rs).
    soak: Option<String>,
    /// Only the functions the server runs, written to this file for the linker (symbols.rs).
    symbol_order: Option<PathBuf>,
}

impl Config {
    fn parse() -> Result<Config, String> {
        let mut cfg = Config {
            calls: 1000,
            real_calls: 100,
            route_real_calls: 10,
            startup_repeats: 5,
            out: paths::target_dir().join("bench"),
            node: None,
            original: None,
            real_url: None,
            real_api_key: None,
            quick: false,
            compare: None,
            compare_tools: None,
            rounds: 2,
            instructions_only: false,
            no_instructions: false,
            instruction_calls: 30,
            postgres_url: None,
            store_cost: None,
            http_only: false,
            soak: None,
            symbol_order: None,
        };
        let mut instruction_calls = None;
        let (mut calls, mut real_calls) = (None, None);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => cfg.quick = true,
                "--calls" => calls = Some(value()?.parse::<usize>().map_err(|e| format!("--calls: {e}"))?),
                "--real-calls" => real_calls = Some(value()?.parse::<usize>().map_err(|e| format!("--real-calls: {e}"))?),
                "--out" => cfg.out = PathBuf::from(value()?),
                "--node" => cfg.node = Some(PathBuf::from(value()?)),
                "--original" => cfg.original = Some(PathBuf::from(value()?)),
                "--real-url" => cfg.real_url = Some(value()?),
                "--real-api-key" => cfg.real_api_key = Some(value()?),
                "--compare" => cfg.compare = Some(PathBuf::from(value()?)),
                "--compare-tools" => cfg.compare_tools = Some(PathBuf::from(value()?)),
                "--rounds" => cfg.rounds = value()?.parse::<usize>().map_err(|e| format!("--rounds: {e}"))?.max(1),
                "--instructions" => cfg.instructions_only = true,
                "--http-only" => cfg.http_only = true,
                "--soak" => cfg.soak = Some(value()?),
                "--symbol-order" => cfg.symbol_order = Some(PathBuf::from(value()?)),
                "--no-instructions" => cfg.no_instructions = true,
                "--postgres-url" => cfg.postgres_url = Some(value()?),
                "--store-cost" => cfg.store_cost = Some(PathBuf::from(value()?)),
                "--instruction-calls" => {
                    instruction_calls = Some(value()?.parse::<usize>().map_err(|e| format!("--instruction-calls: {e}"))?.max(1))
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if cfg.quick {
            (cfg.calls, cfg.real_calls, cfg.route_real_calls, cfg.startup_repeats) = (200, 20, 3, 3);
        }
        if cfg.quick {
            cfg.instruction_calls = 10;
        }
        cfg.instruction_calls = instruction_calls.unwrap_or(cfg.instruction_calls);
        cfg.calls = calls.unwrap_or(cfg.calls).max(1);
        cfg.real_calls = real_calls.unwrap_or(cfg.real_calls).max(1);
        // The real gateway queues completions beyond ~100 per minute: keep route_request few.
        cfg.route_real_calls = cfg.route_real_calls.min(cfg.real_calls);
        Ok(cfg)
    }
}

/// How many calls of each tool one gateway gets.
#[derive(Clone, Copy)]
struct Plan {
    calls: usize,
    route_calls: usize,
    warmup: usize,
    startup_repeats: usize,
}

impl Plan {
    fn calls_for(&self, tool: &str) -> usize {
        if tool == "route_request" { self.route_calls } else { self.calls }
    }
}

/// The gateway a section runs against.
struct Target<'a> {
    url: String,
    api_key: Option<String>,
    /// Records the requests of one call (fake gateway); otherwise `shapes` gives them.
    fake: Option<&'a FakeGateway>,
    shapes: HashMap<String, Vec<Shape>>,
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

/// `(data dir, cache dir) -> command` for one server.
type Make<'a> = &'a dyn Fn(&Path, &Path) -> tokio::process::Command;

async fn startup(make: Make<'_>, data: &Path, cache: &Path) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut server = StdioServer::spawn(make(data, cache))?;
    let listed = server.handshake().await;
    let elapsed = started.elapsed();
    server.kill().await;
    Ok((elapsed, listed?))
}

/// A cold start (empty data and cache folders) to the tools/list answer, then the first
/// get_health (which compiles, or maps, that one component).
async fn cold_start_and_first_call(make: Make<'_>, data: &Path, cache: &Path) -> Result<(Duration, usize, Duration), String> {
    let started = Instant::now();
    let mut server = StdioServer::spawn(make(data, cache))?;
    let listed = server.handshake().await;
    let listed_after = started.elapsed();
    let called = Instant::now();
    let call = server.call("omniroute_get_health", &json!({})).await;
    let first_call = called.elapsed();
    server.kill().await;
    let listed = listed?;
    call?;
    Ok((listed_after, listed, first_call))
}

/// Startup (cold, then warm repeats), then every tool sequentially, then the floor for each.
/// `who` prefixes the keys of the recorded request shapes.
async fn measure_stdio(who: &str, make: Make<'_>, plan: Plan, target: &mut Target<'_>) -> Result<Server, String> {
    let data = TempDir::new(&format!("bench-{who}-data"));
    let cache = TempDir::new(&format!("bench-{who}-cache"));
    let mut result = Server::default();
    progress(&format!("{who}: startup, cold, then the first get_health"));
    let (cold, listed, first_call) = cold_start_and_first_call(make, data.path(), cache.path()).await?;
    result.startup_cold_ms = Some(cold.as_secs_f64() * 1e3);
    result.first_call_cold_ms = Some(first_call.as_secs_f64() * 1e3);
    result.tools_listed = listed;
    let mut warm = Vec::new();
    for _ in 0..plan.startup_repeats {
        warm.push(startup(make, data.path(), cache.path()).await?.0);
    }
    result.startup_warm_ms = stats::median_ms(&warm);

    let mut server = StdioServer::spawn(make(data.path(), cache.path()))?;
    server.handshake().await?;
    for tool in TOOLS {
        let name = format!("omniroute_{tool}");
        let args = args_for(tool);
        let n = plan.calls_for(tool);
        progress(&format!("{who}: {tool} x{n}"));
        for _ in 0..plan.warmup {
            server.call(&name, &args).await?;
        }
        if let Some(fake) = target.fake {
            // One more call, after the warm-up, whose gateway requests the floor replays.
            fake.clear_requests();
            server.call(&name, &args).await?;
            target.shapes.insert(format!("{who}/{tool}"), direct::shapes(&fake.requests()));
        }
        let (mut samples, mut is_error) = (Vec::with_capacity(n), 0);
        for _ in 0..n {
            let t = Instant::now();
            is_error += usize::from(server.call(&name, &args).await?);
            samples.push(t.elapsed());
        }
        let requests = target.shapes.get(&format!("{who}/{tool}")).map(|s| direct::describe(s)).unwrap_or_default();
        result.tools.push(ToolRun { tool, latency: Summary::of(&samples).expect("n >= 1"), is_error, floor: None, requests });
    }
    let mut samples = Vec::with_capacity(plan.calls);
    for _ in 0..plan.calls {
        let t = Instant::now();
        server.request("ping", json!({})).await?;
        samples.push(t.elapsed());
    }
    result.tools.push(ToolRun { tool: "ping", latency: Summary::of(&samples).expect("n >= 1"), is_error: 0, floor: None, requests: String::new() });
    result.rss_kib = server.pid().and_then(stats::peak_rss_kib);
    result.stdout_junk_lines = server.junk_lines;
    server.finish().await;

    let direct = Direct::new(&target.url, target.api_key.as_deref());
    for run in result.tools.iter_mut().filter(|r| r.tool != "ping") {
        let Some(shapes) = target.shapes.get(&format!("{who}/{}", run.tool)) else { continue };
        let n = plan.calls_for(run.tool);
        progress(&format!("{who}: direct floor for {} x{n} ({})", run.tool, run.requests));
        run.floor = floor(&direct, &direct::phases(run.tool, shapes), plan.warmup, n).await?;
    }
    Ok(result)
}

async fn floor(direct: &Direct, shapes: &[Vec<Shape>], warmup: usize, n: usize) -> Result<Option<Summary>, String> {
    if shapes.is_empty() {
        return Ok(None);
    }
    for _ in 0..warmup {
        direct.once(shapes).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        samples.push(direct.once(shapes).await?);
    }
    Ok(Summary::of(&samples))
}

/// get_health only, sequential, our server with `--audit off`.
async fn audit_off(make: Make<'_>, plan: Plan) -> Result<Summary, String> {
    let data = TempDir::new("bench-audit-off-data");
    let cache = TempDir::new("bench-audit-off-cache");
    let mut server = StdioServer::spawn(make(data.path(), cache.path()))?;
    server.handshake().await?;
    progress(&format!("ours --audit off: get_health x{}", plan.calls));
    let mut samples = Vec::with_capacity(plan.calls);
    for i in 0..plan.warmup + plan.calls {
        let t = Instant::now();
        server.call("omniroute_get_health", &json!({})).await?;
        if i >= plan.warmup {
            samples.push(t.elapsed());
        }
    }
    server.finish().await;
    Summary::of(&samples).ok_or_else(|| "no samples".into())
}

async fn measure_http(make: &dyn Fn(&[&str]) -> tokio::process::Command, plan: Plan, stdio: &Result<Server, String>) -> Result<Http, String> {
    let server = Arc::new(http::HttpServer::start(make).await?);
    let session = server.session().await?;
    let mut tools = Vec::new();
    for tool in TOOLS {
        let name = format!("omniroute_{tool}");
        let args = args_for(tool);
        let n = plan.calls_for(tool);
        progress(&format!("ours HTTP: {tool} x{n}"));
        for _ in 0..plan.warmup {
            server.call(&session, &name, &args).await?;
        }
        let (mut samples, mut is_error) = (Vec::with_capacity(n), 0);
        for _ in 0..n {
            let t = Instant::now();
            is_error += usize::from(server.call(&session, &name, &args).await?);
            samples.push(t.elapsed());
        }
        let same = stdio.as_ref().ok().and_then(|s| s.tool(tool));
        tools.push(ToolRun {
            tool,
            latency: Summary::of(&samples).expect("n >= 1"),
            is_error,
            floor: same.and_then(|r| r.floor),
            requests: same.map(|r| r.requests.clone()).unwrap_or_default(),
        });
    }
    // Rounds of a fixed duration, the concurrency levels alternating, so that a burst of
    // load from elsewhere on the machine lands in one round of one level, not in a level.
    // Each level keeps its sessions from round to round (idle for less than the park delay).
    let mut levels = Vec::with_capacity(CALLERS.len());
    for callers in CALLERS {
        levels.push(server.callers(callers, "omniroute_get_health").await?);
    }
    let mut rounds: Vec<Vec<http::Throughput>> = CALLERS.iter().map(|_| Vec::new()).collect();
    for round in 1..=THROUGHPUT_ROUNDS {
        for (level, sessions) in levels.iter().enumerate() {
            progress(&format!("ours HTTP: get_health by {} concurrent caller(s) for {THROUGHPUT_WINDOW:?}, round {round}/{THROUGHPUT_ROUNDS}", sessions.len()));
            rounds[level].push(server.throughput(sessions, THROUGHPUT_WINDOW, "omniroute_get_health").await?);
        }
    }
    let throughput = rounds.into_iter().filter_map(http::Throughput::combine).collect();
    let rss_kib = server.pid().and_then(stats::peak_rss_kib);
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    let idle = idle_sessions(make, IDLE_SESSIONS).await;
    Ok(Http { tools, throughput, rss_kib, idle })
}

/// How many idle sessions the HTTP memory measurement opens.
const IDLE_SESSIONS: usize = 1000;

/// The throughput runs' concurrency levels, rounds and the length of each round.
const CALLERS: [usize; 3] = [1, 8, 64];
const THROUGHPUT_ROUNDS: usize = 3;
const THROUGHPUT_WINDOW: Duration = Duration::from_millis(1500);

/// The server's default `--session-park-after`, plus two sweeps (a sweep runs every quarter
/// of it) and a margin: by then the idle sessions are parked.
const PARKED_AFTER: Duration = Duration::from_secs(10 + 5 + 2);

/// A fresh HTTP server, warmed by one session and one get_health call; then `n` sessions
/// opened over the idle tenants and left idle: its VmRSS before and after.
async fn idle_sessions(make: &dyn Fn(&[&str]) -> tokio::process::Command, n: usize) -> Result<IdleSessions, String> {
    let server = http::HttpServer::start(make).await?;
    let session = server.session().await?;
    server.call(&session, "omniroute_get_health", &json!({})).await?;
    progress(&format!("ours HTTP: {n} idle sessions over {} tenants on a fresh server", http::IDLE_TENANTS));
    let (before_kib, after_kib, sessions) = server.idle_sessions(n).await?;
    progress(&format!("ours HTTP: waiting {PARKED_AFTER:?} for the idle sessions to be parked (the default park delay)"));
    tokio::time::sleep(PARKED_AFTER).await;
    let parked_kib = server.rss_kib();
    // The first request to a parked session restores it; a live session's call beside it.
    let mut restore = Vec::new();
    let mut live = Vec::new();
    for (token, parked) in sessions.iter().step_by(n.div_ceil(20).max(1)) {
        restore.push(server.timed_call_as(token, parked).await?);
        live.push(server.timed_call_as(http::HttpServer::token(), &session).await?);
    }
    server.stop().await;
    Ok(IdleSessions {
        sessions: n,
        tenants: http::IDLE_TENANTS,
        before_kib,
        after_kib,
        parked_kib,
        restore_call_us: stats::median_ms(&restore).map(|ms| ms * 1e3),
        live_call_us: stats::median_ms(&live).map(|ms| ms * 1e3),
    })
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned()).unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = mem.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok()).map(|k| k / 1024.0 / 1024.0).unwrap_or(0.0);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB, load average {} at the start", load.join(" "))
}

async fn run(cfg: Config) -> Result<Results, String> {
    let bin = paths::server_binary();
    let tools_dir = paths::builtin_tools_dir();
    let mut skipped = Vec::new();
    let original_paths = match (&cfg.node, &cfg.original) {
        (Some(node), Some(js)) if node.exists() && js.exists() => Some((node.clone(), js.clone())),
        (Some(node), Some(js)) => {
            skipped.push(format!("original server not measured: {} or {} does not exist", node.display(), js.display()));
            None
        }
        _ => {
            skipped.push("original server not measured: no --node/--original given (`cargo xtask bench` passes them)".into());
            None
        }
    };
    let fake_plan = Plan { calls: cfg.calls, route_calls: cfg.calls, warmup: 20, startup_repeats: cfg.startup_repeats };
    let real_plan = Plan { calls: cfg.real_calls, route_calls: cfg.route_real_calls, warmup: 2, startup_repeats: cfg.startup_repeats.min(3) };
    let machine = machine();
    progress(&format!("machine: {machine}; server: {}", bin.display()));

    let fake = FakeGateway::start();
    let mut target = Target { url: fake.url(), api_key: None, fake: Some(&fake), shapes: HashMap::new() };
    let ours_make = |url: String, key: Option<String>, extra: Vec<&'static str>| {
        // The self-contained binary as users run it: its embedded tools, no tools folder.
        let bin = bin.clone();
        move |data: &Path, cache: &Path| stdio::ours(&bin, None, data, cache, &url, key.as_deref(), &extra)
    };
    let original_make = |url: String, key: Option<String>| {
        let paths = original_paths.clone();
        move |data: &Path, _cache: &Path| {
            let (node, js) = paths.as_ref().expect("only called when the original is installed");
            stdio::original(node, js, data, &url, key.as_deref())
        }
    };

    progress(&format!("fake gateway at {}", fake.url()));
    let ours = measure_stdio("ours", &ours_make(fake.url(), None, vec![]), fake_plan, &mut target).await;
    let audit = audit_off(&ours_make(fake.url(), None, vec!["--audit", "off"]), fake_plan).await;
    let http_data = TempDir::new("bench-http-data");
    let http_cache = TempDir::new("bench-http-cache");
    let http_make = |extra: &[&str]| stdio::ours(&bin, Some(&tools_dir), http_data.path(), http_cache.path(), &fake.url(), None, extra);
    let http = measure_http(&http_make, fake_plan, &ours).await;
    let original = match &original_paths {
        Some(_) => measure_stdio("original", &original_make(fake.url(), None), fake_plan, &mut target).await,
        None => Err("not installed (see notes)".into()),
    };
    let mut sections = vec![Section {
        key: "fake",
        title: "in-process instant fake gateway".into(),
        ours,
        http: Some(http),
        original,
        audit_off: Some(audit),
    }];

    if let Some(url) = &cfg.real_url {
        progress(&format!("real gateway at {url}"));
        let mut target = Target { url: url.clone(), api_key: cfg.real_api_key.clone(), fake: None, shapes: target.shapes };
        let ours = measure_stdio("ours", &ours_make(url.clone(), cfg.real_api_key.clone(), vec![]), real_plan, &mut target).await;
        let original = match &original_paths {
            Some(_) => measure_stdio("original", &original_make(url.clone(), cfg.real_api_key.clone()), real_plan, &mut target).await,
            None => Err("not installed (see notes)".into()),
        };
        sections.push(Section { key: "real", title: format!("real OmniRoute 3.7.9 gateway ({url}) with a mock upstream"), ours, http: None, original, audit_off: None });
    } else {
        skipped.push("real gateway not measured (`--fake-only`, or no --real-url)".into());
    }

    let settings = format!(
        "Release build. Fake gateway: {} sequential calls per tool after {} warm-up calls. Real gateway: {} calls ({} for route_request, whose completions the gateway rate-limits). Warm startup: median of {} starts. HTTP throughput: closed loop, one session per caller, 3 rounds of 1.5 s per level, the levels alternating; the median round.",
        fake_plan.calls, fake_plan.warmup, real_plan.calls, real_plan.route_calls, fake_plan.startup_repeats
    );
    Ok(Results { machine, settings, sections, skipped })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cfg = match Config::parse() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = cfg.out.clone();
    if let Some(old) = cfg.compare.clone() {
        return ab(cfg, old).await;
    }
    if cfg.instructions_only {
        return instructions_only(&cfg).await;
    }
    if cfg.http_only {
        return http_only(&cfg).await;
    }
    if let Some(file) = &cfg.symbol_order {
        let fake = FakeGateway::start();
        let tools: Vec<(&'static str, Value)> = TOOLS.iter().map(|t| (*t, args_for(t))).collect();
        return match symbols::write(&paths::server_binary(), &fake.url(), &tools, 3, file).await {
            Ok(n) => {
                println!("{n} functions written to {}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(tool) = &cfg.soak {
        return match soak::run(&paths::server_binary(), tool, cfg.calls).await {
            Ok(s) => {
                println!("{tool}: {} calls, median {:.1} µs, p99 {:.1} µs", s.n, s.median_us, s.p99_us);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let count = !cfg.no_instructions;
    let instruction_calls = cfg.instruction_calls;
    let store_plan = cfg.postgres_url.clone().map(|url| (url, cfg.store_cost.clone(), cfg.calls));
    let results = match run(cfg).await {
        Ok(results) => results,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut markdown = results.markdown();
    let mut json = results.json();
    if let Some((url, report, calls)) = store_plan {
        let store = store::measure(&paths::server_binary(), &url, report.as_deref(), calls, 20).await;
        markdown.push_str(&store.markdown());
        json["state_store"] = store.json();
    }
    if count {
        let counted = count_instructions(instruction_calls, &out).await;
        match &counted {
            Ok(counted) => markdown.push_str(&format!("\n{}", counted.markdown())),
            Err(e) => markdown.push_str(&format!("\nInstructions per call not counted: {e}\n")),
        }
        json["instructions"] = match counted {
            Ok(counted) => counted.json(),
            Err(e) => json!({ "not_measured": e }),
        };
    }
    let written = std::fs::create_dir_all(&out).and_then(|()| {
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json).expect("JSON") + "\n")?;
        std::fs::write(out.join("results.md"), &markdown)?;
        std::fs::write(out.join("latency.svg"), results.svg())
    });
    if let Err(e) = written {
        eprintln!("bench: cannot write to {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("{markdown}");
    progress(&format!("wrote results.json, results.md and latency.svg to {}", out.display()));
    if results.sections.first().is_some_and(|s| s.ours.is_ok()) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Instructions per call of every tool, metrics off and on, against a fresh fake gateway.
async fn count_instructions(calls: usize, out: &Path) -> Result<instructions::Instructions, String> {
    let fake = FakeGateway::start();
    let tools: Vec<(&'static str, Value)> = TOOLS.iter().map(|t| (*t, args_for(t))).collect();
    instructions::run(&paths::server_binary(), &fake.url(), &tools, calls, 10, Some(&out.join("callgrind"))).await
}

/// `--http-only`: our HTTP server alone on the fake gateway (no stdio run, no floor), printed.
async fn http_only(cfg: &Config) -> ExitCode {
    let fake = FakeGateway::start();
    let (bin, tools_dir) = (paths::server_binary(), paths::builtin_tools_dir());
    let data = TempDir::new("bench-http-data");
    let cache = TempDir::new("bench-http-cache");
    let make = |extra: &[&str]| stdio::ours(&bin, Some(&tools_dir), data.path(), cache.path(), &fake.url(), None, extra);
    let plan = Plan { calls: cfg.calls, route_calls: cfg.calls, warmup: 20, startup_repeats: 1 };
    match measure_http(&make, plan, &Err("not measured".into())).await {
        Ok(http) => {
            for run in &http.tools {
                println!("{}: median {:.0} µs, p99 {:.0} µs", run.tool, run.latency.median_us, run.latency.p99_us);
            }
            for t in &http.throughput {
                let cpu = t.server_cpu_us.map(|us| format!(", server CPU {us:.0} µs a call")).unwrap_or_default();
                let rounds: Vec<String> = t.rounds.iter().map(|r| format!("{r:.0}")).collect();
                println!("{} callers: {:.0} calls/s (rounds {}; {} failed){cpu}", t.callers, t.calls_per_s, rounds.join(", "), t.failures);
            }
            match &http.idle {
                Ok(idle) => println!(
                    "{} idle sessions: +{:.1} MiB just opened, +{} parked, over {:.1} MiB; first call to a parked session {} (a live one {})",
                    idle.sessions,
                    idle.added_mib(),
                    idle.parked_added_mib().map_or("?".into(), |m| format!("{m:.1} MiB")),
                    idle.before_kib as f64 / 1024.0,
                    idle.restore_call_us.map_or("?".into(), |us| format!("{us:.0} µs")),
                    idle.live_call_us.map_or("?".into(), |us| format!("{us:.0} µs")),
                ),
                Err(e) => println!("idle sessions not measured: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--instructions`: only the callgrind counts, into `instructions.{json,md}`.
async fn instructions_only(cfg: &Config) -> ExitCode {
    let counted = match count_instructions(cfg.instruction_calls, &cfg.out).await {
        Ok(counted) => counted,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let markdown = counted.markdown();
    let written = std::fs::create_dir_all(&cfg.out).and_then(|()| {
        std::fs::write(cfg.out.join("instructions.json"), serde_json::to_string_pretty(&counted.json()).expect("JSON") + "\n")?;
        std::fs::write(cfg.out.join("instructions.md"), &markdown)?;
        fold_into_results(&cfg.out, &counted)
    });
    if let Err(e) = written {
        eprintln!("bench: cannot write to {}: {e}", cfg.out.display());
        return ExitCode::FAILURE;
    }
    println!("{markdown}");
    progress(&format!("wrote instructions.json and instructions.md to {}", cfg.out.display()));
    ExitCode::SUCCESS
}

/// Replaces the `instructions` member of an existing `results.json` (and the section of
/// `results.md`) with a newer count, so the latest figures per tool sit with the last full run.
fn fold_into_results(out: &Path, counted: &instructions::Instructions) -> std::io::Result<()> {
    let json_path = out.join("results.json");
    let Ok(text) = std::fs::read_to_string(&json_path) else { return Ok(()) };
    let Ok(mut results) = serde_json::from_str::<Value>(&text) else { return Ok(()) };
    results["instructions"] = counted.json();
    std::fs::write(&json_path, serde_json::to_string_pretty(&results).expect("JSON") + "\n")?;
    let md_path = out.join("results.md");
    if let Ok(md) = std::fs::read_to_string(&md_path) {
        let kept = md.split("\n## Instructions per tools/call").next().unwrap_or(&md).trim_end();
        std::fs::write(&md_path, format!("{kept}\n\n{}", counted.markdown()))?;
    }
    progress(&format!("folded the counts into {}", json_path.display()));
    Ok(())
}

/// `--compare OLD_BINARY`: the A/B of the binary under test against `OLD_BINARY`.
async fn ab(cfg: Config, old: PathBuf) -> ExitCode {
    if !old.is_file() {
        eprintln!("bench: --compare {}: no such binary", old.display());
        return ExitCode::FAILURE;
    }
    let old = compare::Build { label: "old", bin: old, tools: cfg.compare_tools.clone() };
    let new = compare::Build { label: "new", bin: paths::server_binary(), tools: Some(paths::builtin_tools_dir()) };
    let comparison = match compare::run(old, new, cfg.rounds, cfg.calls, cfg.startup_repeats).await {
        Ok(comparison) => comparison,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let markdown = comparison.markdown();
    let written = std::fs::create_dir_all(&cfg.out).and_then(|()| {
        std::fs::write(cfg.out.join("compare.json"), serde_json::to_string_pretty(&comparison.json()).expect("JSON") + "\n")?;
        std::fs::write(cfg.out.join("compare.md"), &markdown)
    });
    if let Err(e) = written {
        eprintln!("bench: cannot write to {}: {e}", cfg.out.display());
        return ExitCode::FAILURE;
    }
    println!("{markdown}");
    progress(&format!("wrote compare.json and compare.md to {}", cfg.out.display()));
    ExitCode::SUCCESS
}
