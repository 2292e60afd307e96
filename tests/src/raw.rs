//! `RawServer`: the server binary driven with hand-written newline-delimited JSON-RPC, keeping
//! every line it writes to stdout, so tests can check the stream itself (no stray output).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mcp::ToolResult;
use crate::process::{ServerCommand, StderrTail};
use crate::{DEFAULT_TIMEOUT, STARTUP_TIMEOUT, lock};

/// The protocol version the raw harness asks for in `initialize`.
pub const RAW_PROTOCOL_VERSION: &str = "2025-11-25";

pub struct RawServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    transcript: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
    stderr: StderrTail,
    /// Set by [`RawServer::start_with_stderr_unread`]: the pipe nobody reads yet.
    unread_stderr: Option<ChildStderr>,
    next_id: u64,
    command: ServerCommand,
}

/// Everything the server wrote, collected by [`RawServer::finish`].
#[derive(Debug)]
pub struct RawTranscript {
    /// Every stdout line, without the trailing newline, in order.
    pub stdout_lines: Vec<String>,
    pub stderr: String,
    /// `None` if the server had to be killed.
    pub exit: Option<std::process::ExitStatus>,
}

impl RawTranscript {
    /// Panics unless stdout had at least one line and every line is a JSON-RPC 2.0 message.
    pub fn assert_json_rpc_only(&self) {
        assert!(
            !self.stdout_lines.is_empty(),
            "the server wrote nothing to stdout\n{}",
            self.stderr
        );
        for (index, line) in self.stdout_lines.iter().enumerate() {
            let message: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("stdout line {} is not JSON ({e}): {line:.200}", index + 1)
            });
            assert_eq!(
                message["jsonrpc"],
                "2.0",
                "stdout line {}: {line:.200}",
                index + 1
            );
        }
    }
}

impl RawServer {
    /// Spawns the server; nothing is sent yet.
    pub async fn start(command: ServerCommand) -> Self {
        let mut server = Self::spawn(command);
        if let Some(pipe) = server.unread_stderr.take() {
            server.stderr = StderrTail::capture(pipe);
        }
        server
    }

    /// Spawns the server with its stderr piped but never read, as a client
    /// that ignores stderr would, until [`RawServer::read_stderr_from_now`].
    pub async fn start_with_stderr_unread(command: ServerCommand) -> Self {
        Self::spawn(command)
    }

    /// Starts reading the stderr pipe left unread by [`RawServer::start_with_stderr_unread`].
    pub fn read_stderr_from_now(&mut self) {
        if let Some(pipe) = self.unread_stderr.take() {
            self.stderr = StderrTail::capture(pipe);
        }
    }

    fn spawn(command: ServerCommand) -> Self {
        let mut child = command
            .to_command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", command.describe()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let unread_stderr = Some(child.stderr.take().expect("stderr is piped"));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let (sender, lines) = mpsc::unbounded_channel();
        let reader = {
            let transcript = Arc::clone(&transcript);
            tokio::spawn(async move {
                let mut stdout = BufReader::new(stdout);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match stdout.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                            }
                            let text = String::from_utf8_lossy(&line).into_owned();
                            lock(&transcript).push(text.clone());
                            let _ = sender.send(text);
                        }
                    }
                }
            })
        };
        Self {
            child,
            stdin,
            lines,
            transcript,
            reader,
            stderr: StderrTail::default(),
            unread_stderr,
            next_id: 1,
            command,
        }
    }

    /// Writes one line (a newline is appended).
    pub async fn send_line(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes()).await;
    }

    /// Writes bytes as they are (no newline added).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish()");
        let written = async {
            stdin.write_all(bytes).await?;
            stdin.flush().await
        };
        if let Err(e) = tokio::time::timeout(DEFAULT_TIMEOUT, written)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("write timed out")))
        {
            self.fail(&format!("cannot write to the server's stdin: {e}"));
        }
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_line(&message.to_string()).await;
    }

    /// Sends a request and returns the whole response message (`result` or `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_within(method, params, DEFAULT_TIMEOUT).await
    }

    pub async fn request_within(&mut self, method: &str, params: Value, limit: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&message.to_string()).await;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => self.fail(&format!("server closed stdout before answering {method}")),
                Err(_) => self.fail(&format!("{method} got no answer within {limit:?}")),
            };
            if let Ok(response) = serde_json::from_str::<Value>(&line)
                && response["id"] == json!(id)
                && response.get("method").is_none()
            {
                return response;
            }
        }
    }

    /// `initialize` + `notifications/initialized`; returns the initialize result.
    pub async fn initialize(&mut self) -> Value {
        let response = self
            .request_within(
                "initialize",
                json!({
                    "protocolVersion": RAW_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "omniroute-mcp-tests-raw", "version": env!("CARGO_PKG_VERSION")},
                }),
                STARTUP_TIMEOUT,
            )
            .await;
        let Some(result) = response.get("result").cloned() else {
            self.fail(&format!("initialize failed: {response}"));
        };
        self.notify("notifications/initialized", json!({})).await;
        result
    }

    /// tools/call; panics on a JSON-RPC error.
    pub async fn call_tool(&mut self, name: &str, args: Value) -> ToolResult {
        let response = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        match response.get("result") {
            Some(result) => ToolResult::from_json(result.clone()),
            None => self.fail(&format!("tools/call {name} failed: {response}")),
        }
    }

    /// Waits (bounded by `limit`) until the server has sent `count`
    /// notifications named `method` in all, e.g. `notifications/tools/list_changed`.
    pub async fn wait_for_notifications(&self, method: &str, count: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = self.notifications(method);
            if seen >= count {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("saw {seen} of {count} {method} notifications within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many notifications named `method` the server has sent so far.
    pub fn notifications(&self, method: &str) -> usize {
        lock(&self.transcript)
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["method"] == method && m.get("id").is_none())
            .count()
    }

    /// The stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.transcript).clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Closes stdin, waits (bounded) for the server to exit, killing it if it does not, and
    /// returns everything it wrote.
    pub async fn finish(mut self) -> RawTranscript {
        self.read_stderr_from_now();
        drop(self.stdin.take());
        let exit = match tokio::time::timeout(DEFAULT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        let _ = tokio::time::timeout(DEFAULT_TIMEOUT, &mut self.reader).await;
        RawTranscript {
            stdout_lines: lock(&self.transcript).clone(),
            stderr: self.stderr.text(),
            exit,
        }
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\nserver: {}\n--- server stderr ---\n{}",
            self.command.describe(),
            self.stderr.text()
        )
    }
}
