//! Our server over MCP Streamable HTTP (`serve --http 127.0.0.1:0`): one tenant allowed
//! everything with limits far above the load, sessions, timed tools/call POSTs, and a
//! closed-loop throughput run with C concurrent callers (one session each).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use omniroute_mcp_tests::TempDir;
use omniroute_mcp_tests::process::StderrTail;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

const TOKEN: &str = "omr_bench_token";
/// The idle-session measurement spreads its sessions over this many tenants (each with
/// `max_sessions` = [`IDLE_PER_TENANT`]), so no tenant's session cap refuses them.
pub const IDLE_TENANTS: usize = 10;
/// Live sessions each idle tenant may hold.
const IDLE_PER_TENANT: usize = 100;

fn idle_token(tenant: usize) -> String {
    format!("omr_bench_idle_{tenant}")
}
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpServer {
    child: Child,
    _stderr: StderrTail,
    _dir: TempDir,
    url: String,
    client: reqwest::Client,
}

/// Throughput of one concurrency level.
pub struct Throughput {
    pub callers: usize,
    pub calls: usize,
    pub calls_per_s: f64,
    pub failures: usize,
    /// The server's CPU time (all threads, user + system) per call over the run, in µs:
    /// whether more callers cost the server more per call or the machine's two cores ran out.
    pub server_cpu_us: Option<f64>,
    /// Calls/s of each round; `calls_per_s` is their median.
    pub rounds: Vec<f64>,
}

impl Throughput {
    /// The rounds of one concurrency level as one figure: the median round's rate and CPU
    /// time per call, the calls and failures of all rounds.
    pub fn combine(rounds: Vec<Throughput>) -> Option<Throughput> {
        let mut rounds = rounds;
        rounds.sort_by(|a, b| a.calls_per_s.total_cmp(&b.calls_per_s));
        let median = rounds.get(rounds.len() / 2)?;
        Some(Throughput {
            callers: median.callers,
            calls: rounds.iter().map(|r| r.calls).sum(),
            calls_per_s: median.calls_per_s,
            failures: rounds.iter().map(|r| r.failures).sum(),
            server_cpu_us: median.server_cpu_us,
            rounds: rounds.iter().map(|r| r.calls_per_s).collect(),
        })
    }
}

impl HttpServer {
    /// `make(extra_args)` builds the server command; this adds `serve --http … --tenants …`.
    pub async fn start(make: impl FnOnce(&[&str]) -> Command) -> Result<Self, String> {
        let dir = TempDir::new("bench-tenants");
        let file = dir.path().join("tenants.toml");
        let sha = hex::encode(Sha256::digest(TOKEN.as_bytes()));
        let mut tenants = format!(
            "[[tenant]]\nid = \"bench\"\ntoken_sha256 = \"{sha}\"\nscopes = [\"*\"]\nmax_concurrent = 1024\nrate_per_minute = 1000000000\nmax_sessions = 1024\n"
        );
        for t in 0..IDLE_TENANTS {
            let sha = hex::encode(Sha256::digest(idle_token(t).as_bytes()));
            tenants.push_str(&format!(
                "\n[[tenant]]\nid = \"idle-{t}\"\ntoken_sha256 = \"{sha}\"\nscopes = [\"*\"]\nmax_sessions = {IDLE_PER_TENANT}\nrate_per_minute = 1000000\n"
            ));
        }
        std::fs::write(&file, tenants).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let file_arg = file.to_string_lossy().into_owned();
        let mut cmd = make(&["serve", "--http", "127.0.0.1:0", "--tenants", &file_arg]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot spawn the HTTP server: {e}"))?;
        let stderr = StderrTail::capture(child.stderr.take().ok_or("no stderr")?);
        let started = Instant::now();
        let addr = loop {
            let text = stderr.text();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let line = rest.lines().next().unwrap_or_default();
                break line.trim().trim_end_matches("/mcp").to_owned();
            }
            if started.elapsed() > REQUEST_TIMEOUT || child.try_wait().ok().flatten().is_some() {
                return Err(format!("the HTTP server did not start listening: {text}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { child, _stderr: stderr, _dir: dir, url: format!("http://{addr}/mcp"), client })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// initialize + notifications/initialized; returns the session id.
    pub async fn session(&self) -> Result<String, String> {
        self.session_as(TOKEN).await
    }

    /// [`HttpServer::session`] for the tenant whose bearer token is `token`.
    async fn session_as(&self, token: &str) -> Result<String, String> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
        let (session, _) = self.post_as(token, None, &init).await?;
        let session = session.ok_or("initialize answered without mcp-session-id")?;
        self.post_as(token, Some(&session), &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        Ok(session)
    }

    /// The server's resident memory now (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
    }

    /// Opens `n` sessions (initialize + initialized, then nothing), round-robin over the idle
    /// tenants, 8 at a time; returns the server's VmRSS before and after (KiB) and the
    /// sessions with their tokens. The sessions stay held until the server stops (the idle
    /// timeout is minutes); the server parks them after its park delay.
    pub async fn idle_sessions(&self, n: usize) -> Result<(u64, u64, Vec<(String, String)>), String> {
        let before = self.rss_kib().ok_or("cannot read the server's VmRSS")?;
        let opened = AtomicUsize::new(0);
        let open = |_| async {
            let mut mine = Vec::new();
            loop {
                let i = opened.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(mine);
                }
                let token = idle_token(i % IDLE_TENANTS);
                let session = self.session_as(&token).await?;
                mine.push((token, session));
            }
        };
        let sessions = futures::future::try_join_all((0..8).map(open)).await?.into_iter().flatten().collect();
        // Let the per-session tasks settle before reading the memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = self.rss_kib().ok_or("cannot read the server's VmRSS")?;
        Ok((before, after, sessions))
    }

    /// One get_health call in `session` of the tenant with `token`, timed.
    pub async fn timed_call_as(&self, token: &str, session: &str) -> Result<Duration, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "omniroute_get_health", "arguments": {}}});
        let started = Instant::now();
        let (_, text) = self.post_as(token, Some(session), &body).await?;
        let elapsed = started.elapsed();
        if !text.contains("\"result\"") {
            return Err(format!("get_health in session {session}: {text:.300}"));
        }
        Ok(elapsed)
    }

    /// The bench tenant's token, for [`HttpServer::timed_call_as`].
    pub fn token() -> &'static str {
        TOKEN
    }

    /// One tools/call; Ok(true) when the result has `isError: true`.
    pub async fn call(&self, session: &str, tool: &str, args: &Value) -> Result<bool, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
        let (_, text) = self.post(Some(session), &body).await?;
        let answer = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_str()))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .ok_or_else(|| format!("{tool}: no JSON-RPC answer in {text:.300}"))?;
        if let Some(error) = answer.get("error") {
            return Err(format!("{tool}: JSON-RPC error {error}"));
        }
        Ok(answer["result"]["isError"].as_bool().unwrap_or(false))
    }

    /// POSTs one message and reads the whole body (JSON, or the request's SSE stream, which
    /// ends after its answer). Returns the session header and the body.
    async fn post(&self, session: Option<&str>, body: &Value) -> Result<(Option<String>, String), String> {
        self.post_as(TOKEN, session, body).await
    }

    /// [`HttpServer::post`] with the bearer token `token`.
    async fn post_as(&self, token: &str, session: Option<&str>, body: &Value) -> Result<(Option<String>, String), String> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        let response = req.send().await.map_err(|e| format!("POST /mcp: {e}"))?;
        let status = response.status();
        let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.map_err(|e| format!("POST /mcp body: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST /mcp: {status}: {text:.300}"));
        }
        Ok((session, text))
    }

    /// `callers` sessions, each warmed by one call of `tool` (connection and session).
    pub async fn callers(&self, callers: usize, tool: &str) -> Result<Vec<String>, String> {
        let mut sessions = Vec::with_capacity(callers);
        for _ in 0..callers {
            let session = self.session().await?;
            self.call(&session, tool, &json!({})).await?;
            sessions.push(session);
        }
        Ok(sessions)
    }

    /// One closed-loop caller per session of `sessions` calls `tool` for `window` (each
    /// caller finishes the call it is in); one round of a throughput measurement.
    pub async fn throughput(self: &Arc<Self>, sessions: &[String], window: Duration, tool: &'static str) -> Result<Throughput, String> {
        let callers = sessions.len();
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let pid = self.child.id();
        let cpu_before = pid.and_then(crate::stats::cpu_ticks);
        let started = Instant::now();
        let tasks: Vec<_> = sessions
            .iter()
            .cloned()
            .map(|session| {
                let (server, done, failures) = (Arc::clone(self), Arc::clone(&done), Arc::clone(&failures));
                tokio::spawn(async move {
                    while started.elapsed() < window {
                        if !matches!(server.call(&session, tool, &json!({})).await, Ok(false)) {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| format!("a caller panicked: {e}"))?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let calls = done.load(Ordering::Relaxed);
        let cpu_after = pid.and_then(crate::stats::cpu_ticks);
        let server_cpu_us = cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b) as f64 * crate::stats::TICK_US / calls.max(1) as f64);
        Ok(Throughput {
            callers,
            calls,
            calls_per_s: calls as f64 / elapsed,
            failures: failures.load(Ordering::Relaxed),
            server_cpu_us,
            rounds: vec![calls as f64 / elapsed],
        })
    }

    /// SIGTERM (graceful shutdown), bounded; then kill.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
