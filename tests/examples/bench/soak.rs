//! `--soak TOOL`: our stdio server on the fake gateway, `--calls N` sequential calls of one tool
//! (or of the MCP `ping` with `--soak ping`, or of the three measured tools in the bench's order
//! with `--soak all`, as the stdio bench makes them before its peak RSS reading) after a
//! warm-up, for profiling by hand. `OMNIROUTE_MCP_BENCH_WRAP` prefixes the server's
//! command line (split on spaces), e.g. `perf stat -e instructions,page-faults -x, -o FILE --`
//! or `perf record -F 4000 -g -o FILE --`; the wrapper sees startup and warm-up too, so use
//! enough calls for them not to matter. `OMNIROUTE_MCP_BENCH_ARGS` adds server arguments (split on
//! spaces, e.g. `--audit off`). Prints the median and p99; asserts nothing.

use std::path::Path;
use std::time::Instant;

use omniroute_mcp_tests::{FakeGateway, TempDir};

use crate::stats::Summary;
use crate::stdio::{self, StdioServer};

/// The environment variable holding the wrapper command.
const WRAP_ENV: &str = "OMNIROUTE_MCP_BENCH_WRAP";
/// The environment variable holding extra server arguments.
const ARGS_ENV: &str = "OMNIROUTE_MCP_BENCH_ARGS";

pub async fn run(bin: &Path, tool: &str, calls: usize) -> Result<Summary, String> {
    let tools: Vec<&str> = if tool == "all" { crate::TOOLS.to_vec() } else { vec![tool] };
    let fake = FakeGateway::start();
    let data = TempDir::new("bench-soak-data");
    let cache = TempDir::new("bench-soak-cache");
    let extra = std::env::var(ARGS_ENV).unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let ours = stdio::ours(bin, None, data.path(), cache.path(), &fake.url(), None, &extra);
    let cmd = match std::env::var(WRAP_ENV).ok().filter(|w| !w.trim().is_empty()) {
        None => ours,
        Some(wrap) => {
            let mut words = wrap.split_whitespace();
            let mut wrapped = tokio::process::Command::new(words.next().unwrap_or_default());
            wrapped.args(words).arg(ours.as_std().get_program()).args(ours.as_std().get_args());
            for (key, value) in ours.as_std().get_envs() {
                match value {
                    Some(value) => wrapped.env(key, value),
                    None => wrapped.env_remove(key),
                };
            }
            wrapped
        }
    };
    let mut server = StdioServer::spawn(cmd)?;
    server.handshake().await?;
    let mut samples = Vec::with_capacity(calls * tools.len());
    for tool in tools {
        // `ping` is the MCP ping (no tool): the transport's own round trip.
        let name = format!("omniroute_{tool}");
        let args = crate::args_for(tool);
        let mut once = async || -> Result<(), String> {
            if tool == "ping" {
                return server.request("ping", serde_json::json!({})).await.map(drop);
            }
            match server.call(&name, &args).await? {
                true => Err(format!("{name} answered isError: true")),
                false => Ok(()),
            }
        };
        for _ in 0..20 {
            once().await?;
        }
        for _ in 0..calls {
            let t = Instant::now();
            once().await?;
            samples.push(t.elapsed());
        }
    }
    if let Some(status) = server.pid().and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok()) {
        let memory: Vec<&str> = status.lines().filter(|l| ["VmHWM", "VmRSS", "RssAnon", "RssFile"].iter().any(|k| l.starts_with(k))).collect();
        eprintln!("bench: server memory: {}", memory.join(", ").split_whitespace().collect::<Vec<_>>().join(" "));
    }
    server.finish().await;
    Summary::of(&samples).ok_or_else(|| "no samples".into())
}
