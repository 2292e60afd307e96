//! A newline-delimited JSON-RPC client over a child's stdio, for both servers: ours and the
//! original TypeScript one, whose stdout also carries non-JSON `[DB] …` / `[Migration] …` lines
//! before its first answer; those are skipped and counted. Requests are sequential and the answer is read
//! inline (no reader task), so a measured latency is write + server + read, nothing else.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use omniroute_mcp_tests::process::StderrTail;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Upper bound for one answer (startup included: a cold cache compiles every component).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

pub struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    line: String,
    next_id: u64,
    /// Non-JSON stdout lines seen so far.
    pub junk_lines: usize,
}

/// Our server on stdio: scrubbed `OMNIROUTE_*` environment, then the given gateway. Without
/// `tools`, the binary finds its own (`tools` beside it or one level up).
pub fn ours(bin: &Path, tools: Option<&Path>, data: &Path, cache: &Path, gateway: &str, api_key: Option<&str>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(tools) = tools {
        cmd.arg("--tools-dir").arg(tools);
    }
    cmd.arg("--data-dir").arg(data).arg("--cache-dir").arg(cache).args(extra);
    scrub(&mut cmd);
    cmd.env("OMNIROUTE_BASE_URL", gateway).env("OMNIROUTE_MCP_LOG", "warn");
    if let Some(key) = api_key {
        cmd.env("OMNIROUTE_API_KEY", key);
    }
    cmd
}

/// The original server: `node app/open-sse/mcp-server/server.js` with a throwaway `DATA_DIR`.
pub fn original(node: &Path, server_js: &Path, data: &Path, gateway: &str, api_key: Option<&str>) -> Command {
    let mut cmd = Command::new(node);
    cmd.arg(server_js);
    scrub(&mut cmd);
    cmd.env("DATA_DIR", data).env("OMNIROUTE_BASE_URL", gateway).current_dir(data);
    if let Some(key) = api_key {
        cmd.env("OMNIROUTE_API_KEY", key);
    }
    cmd
}

fn scrub(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("OMNIROUTE_") || name_text == "DATA_DIR" || name_text.ends_with("BASE_URL") {
            cmd.env_remove(&name);
        }
    }
}

impl StdioServer {
    pub fn spawn(mut cmd: Command) -> Result<Self, String> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot spawn {:?}: {e}", cmd.as_std().get_program()))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let stderr = StderrTail::capture(child.stderr.take().ok_or("no stderr")?);
        Ok(Self { child, stdin, stdout, stderr, line: String::new(), next_id: 1, junk_lines: 0 })
    }

    /// initialize, notifications/initialized, tools/list; returns the number of tools listed.
    pub async fn handshake(&mut self) -> Result<usize, String> {
        self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}),
        )
        .await?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        let list = self.request("tools/list", json!({})).await?;
        list["result"]["tools"].as_array().map(Vec::len).ok_or_else(|| format!("tools/list answered {list}"))
    }

    /// One tools/call; Ok(true) when the result has `isError: true`.
    pub async fn call(&mut self, tool: &str, args: &Value) -> Result<bool, String> {
        let answer = self.request("tools/call", json!({"name": tool, "arguments": args})).await?;
        if let Some(error) = answer.get("error") {
            return Err(format!("{tool}: JSON-RPC error {error}"));
        }
        Ok(answer["result"]["isError"].as_bool().unwrap_or(false))
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        let id = json!(id);
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            self.line.clear();
            let read = tokio::time::timeout_at(deadline, self.stdout.read_line(&mut self.line)).await;
            match read {
                Err(_) => return Err(format!("{method}: no answer within {ANSWER_TIMEOUT:?}{}", self.stderr_tail())),
                Ok(Err(e)) => return Err(format!("{method}: reading stdout: {e}")),
                Ok(Ok(0)) => return Err(format!("{method}: the server closed stdout{}", self.stderr_tail())),
                Ok(Ok(_)) => {}
            }
            match serde_json::from_str::<Value>(self.line.trim_end()) {
                Ok(message) if message.get("id") == Some(&id) && message.get("method").is_none() => return Ok(message),
                Ok(_) => {}
                Err(_) => self.junk_lines += 1,
            }
        }
    }

    async fn send(&mut self, message: &Value) -> Result<(), String> {
        let mut bytes = message.to_string().into_bytes();
        bytes.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(&bytes).await.map_err(|e| format!("writing to the server: {e}"))?;
        stdin.flush().await.map_err(|e| format!("writing to the server: {e}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn stderr_tail(&self) -> String {
        let text = self.stderr.text();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr ends with:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        }
    }

    /// Ends the process at once (startup runs: nothing to flush that matters).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Closes stdin and waits (bounded) for the exit; kills the server if it lingers.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
