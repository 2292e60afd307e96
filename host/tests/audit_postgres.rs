//! The audit log on PostgreSQL (`--audit-url`), against the real server of
//! `cargo xtask postgres` (OMNIROUTE_MCP_TEST_POSTGRES_URL); each test gets
//! a schema of its own. Two `AuditLog`s on one database are two nodes.

use omniroute_mcp::audit::{AuditLog, AuditOptions, AuditRecord, AuditTarget, GatewayCall, RecentFilter, input_hash, postgres_reader};
use std::sync::Arc;

fn postgres_url() -> String {
    std::env::var("OMNIROUTE_MCP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect(
        "OMNIROUTE_MCP_TEST_POSTGRES_URL is not set: start a test server with `cargo xtask postgres start` and export the URL it prints \
         (cargo xtask test does both)",
    )
}

/// A URL whose connections use a fresh schema.
async fn fresh_schema() -> String {
    let base = postgres_url();
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    let schema = format!("a_{}_{}", std::process::id(), b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn record(tool: &str, caller: &str) -> AuditRecord {
    AuditRecord {
        tool_name: tool.into(),
        input_hash: input_hash(&serde_json::json!({})),
        output_summary: "(null)".into(),
        duration_ms: 2,
        api_key_id: None,
        success: true,
        error_code: None,
        caller: caller.into(),
        session_id: Some("s".into()),
        stop_cause: None,
        gateway_calls: vec![GatewayCall {
            method: "GET".into(),
            path_template: "/api/combos".into(),
            status: Some(200),
            duration_ms: 1,
            bytes: 10,
            error: None,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_write_one_verifiable_chain() {
    let url = fresh_schema().await;
    let target = AuditTarget::Postgres(url.clone());
    let nodes = [
        Arc::new(AuditLog::open_target(&target, AuditOptions::default()).await),
        Arc::new(AuditLog::open_target(&target, AuditOptions::default()).await),
    ];
    for node in &nodes {
        node.check().expect("the PostgreSQL audit log opens");
    }
    let mut tasks = Vec::new();
    for i in 0..300 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move { node.commit(record(&format!("t{}", i % 5), &format!("node{}", i % 2))).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("committed");
    }
    // Refusals aggregate per node and caller.
    for _ in 0..20 {
        nodes[0].refused(AuditRecord { error_code: Some("tenant_limit".into()), ..record("x", "flooder") }).await.unwrap();
    }
    for node in &nodes {
        node.close().await;
    }

    let reader = postgres_reader(&url).await.unwrap();
    let report = reader.verify().await.unwrap();
    assert_eq!((report.rows, report.first_broken_id), (302, None), "{report:?}");
    let stats = reader.stats(None).await.unwrap();
    assert_eq!(stats.total_calls, 320, "300 calls and 20 refusals (one row plus one aggregated row)");
    assert_eq!(stats.top_tools.len(), 6);
    let recent = reader.recent(&RecentFilter { limit: Some(5), ..Default::default() }).await.unwrap();
    assert_eq!(recent.len(), 5);
    let mut exported = 0;
    reader.export(None, |_| {
        exported += 1;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(exported, 302);

    // Tampering is named.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("UPDATE mcp_tool_audit SET caller = 'someone-else' WHERE id = 7").await.unwrap();
    let report = reader.verify().await.unwrap();
    assert_eq!(report.first_broken_id, Some(7), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_refuses_calls_with_the_reason() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = AuditTarget::Postgres(format!("postgres://u:secret-pw@127.0.0.1:{port}/db"));
    let log = AuditLog::open_target(&target, AuditOptions::default()).await;
    let err = log.check().unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")) && !err.contains("secret-pw"), "the reason names the server, never the password: {err}");
}
