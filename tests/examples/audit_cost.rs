//! The cost of auditing: 1,000 concurrent get_health calls against the
//! instant fake gateway, once with the audit log on and once with
//! `--audit off`, through one MCP stdio session each.
//!
//! ```sh
//! cargo run --release -p omniroute-mcp-tests --example audit_cost -- 1000
//! ```
//! A measurement: it prints throughput and the per-call difference.

use std::time::Instant;

use omniroute_mcp_tests::{FakeGateway, McpClient, ServerCommand};
use serde_json::json;

async fn run(gateway: &FakeGateway, audit: bool, calls: usize) -> f64 {
    let mut cmd = ServerCommand::new(&gateway.url());
    if !audit {
        cmd = cmd.arg("--audit").arg("off");
    }
    let client = McpClient::start(cmd).await;
    // Warm-up: first instantiation, connection pool.
    for _ in 0..20 {
        client.call("omniroute_get_health", json!({})).await;
    }
    let started = Instant::now();
    let results = futures::future::join_all((0..calls).map(|_| client.call("omniroute_get_health", json!({})))).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(results.iter().all(|r| !r.is_error), "a call failed");
    client.shutdown().await;
    elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let gateway = FakeGateway::start();
    let off = run(&gateway, false, calls).await;
    let on = run(&gateway, true, calls).await;
    println!("{calls} concurrent get_health calls, one stdio session each run:");
    println!("  audit off: {:.2} s, {:.0} calls/s", off, calls as f64 / off);
    println!("  audit on:  {:.2} s, {:.0} calls/s", on, calls as f64 / on);
    println!("  cost of auditing: {:.0} µs per call ({:+.1}%)", (on - off) / calls as f64 * 1e6, (on / off - 1.0) * 100.0);
}
