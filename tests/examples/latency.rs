//! Startup and per-call latency of the server against the instant fake
//! gateway: time to the first tools/list answer with a cold and a warm
//! precompiled cache, then N sequential get_health calls (median, p99).
//!
//! ```sh
//! cargo xtask build --release
//! OMNIROUTE_MCP_BIN=target/release/omniroute-mcp cargo run --release -p omniroute-mcp-tests --example latency -- 1000
//! ```
//! A measurement, not a test: it prints numbers and asserts nothing about them.

use std::time::{Duration, Instant};

use omniroute_mcp_tests::{FakeGateway, TempDir, paths};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn startup(gateway: &FakeGateway, cache: &std::path::Path, data: &std::path::Path, calls: usize) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(paths::server_binary())
        .arg("--tools-dir")
        .arg(paths::builtin_tools_dir())
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(cache)
        .env("OMNIROUTE_BASE_URL", gateway.url())
        .env("OMNIROUTE_MCP_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |v: Value| stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    send(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"latency","version":"0"}}})).await;
    send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    send(json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}})).await;
    loop {
        let line = lines.next_line().await.unwrap().expect("server alive");
        if line.contains("\"id\":1") {
            break;
        }
    }
    let to_list = started.elapsed();
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let id = 2 + i;
        let t = Instant::now();
        send(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"omniroute_get_health","arguments":{}}})).await;
        loop {
            let line = lines.next_line().await.unwrap().expect("server alive");
            if line.contains(&format!("\"id\":{id},")) || line.contains(&format!("\"id\":{id}}}")) {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    drop(stdin);
    let _ = child.wait().await;
    (to_list, samples)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let gateway = FakeGateway::start();
    let cache = TempDir::new("latency-cache");
    let data = TempDir::new("latency-data");
    let (cold, _) = startup(&gateway, cache.path(), data.path(), 0).await;
    let (warm, mut samples) = startup(&gateway, cache.path(), data.path(), calls).await;
    samples.sort();
    println!("binary: {}", paths::server_binary().display());
    println!("startup to first tools/list, cold cache: {:.1} ms", cold.as_secs_f64() * 1e3);
    println!("startup to first tools/list, warm cache: {:.1} ms", warm.as_secs_f64() * 1e3);
    if !samples.is_empty() {
        println!(
            "get_health x{calls} (sequential, fake gateway): median {:.0} µs, p99 {:.0} µs",
            percentile(&samples, 50.0).as_secs_f64() * 1e6,
            percentile(&samples, 99.0).as_secs_f64() * 1e6
        );
    }
}
