//! How the server under test is launched: `ServerCommand`, and capturing its stderr.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;

use crate::{TempDir, lock, paths};

/// The `omniroute-mcp` invocation for one test: binary, tool folders, a fresh data dir, the
/// gateway URL and any extra environment. Inherited `OMNIROUTE_*` variables are removed so the
/// developer's shell cannot change what a test runs against.
#[derive(Debug)]
pub struct ServerCommand {
    program: PathBuf,
    tools_dirs: Vec<PathBuf>,
    data_dir: TempDir,
    extra_args: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl ServerCommand {
    /// The binary from [`paths::server_binary`], the built-in tools only, a fresh data dir,
    /// `OMNIROUTE_BASE_URL=<gateway_url>` and no API key.
    pub fn new(gateway_url: &str) -> Self {
        Self {
            program: paths::server_binary(),
            tools_dirs: vec![paths::builtin_tools_dir()],
            data_dir: TempDir::new("data"),
            extra_args: Vec::new(),
            env: vec![("OMNIROUTE_BASE_URL".to_owned(), gateway_url.to_owned())],
        }
    }

    /// Also loads the test-only components (`test_hostile`, ...).
    pub fn with_test_tools(mut self) -> Self {
        self.tools_dirs.push(paths::test_tools_dir());
        self
    }

    /// Loads the built-in tools from `dir` instead (e.g. a copy the test changes).
    pub fn tools_dir(mut self, dir: &Path) -> Self {
        self.tools_dirs = vec![dir.to_path_buf()];
        self
    }

    /// Sets `OMNIROUTE_API_KEY`.
    pub fn api_key(self, key: &str) -> Self {
        self.env("OMNIROUTE_API_KEY", key)
    }

    /// Sets an environment variable for the server (replacing an earlier value).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends a command-line argument after the generated ones.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The full argument list: `--tools-dir` for each folder (built-in first), `--data-dir`, `--cache-dir`, extras.
    pub fn args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        for dir in &self.tools_dirs {
            args.push("--tools-dir".into());
            args.push(dir.clone().into_os_string());
        }
        args.push("--data-dir".into());
        args.push(self.data_dir.path().to_path_buf().into_os_string());
        // One precompiled-code cache for the whole suite: each server start
        // then maps the components instead of compiling them again.
        args.push("--cache-dir".into());
        args.push(crate::paths::workspace_root().join("target").join("test-cache").into_os_string());
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The environment variables this command sets (on top of the scrubbed inherited ones).
    pub fn envs(&self) -> &[(String, String)] {
        &self.env
    }

    /// A ready-to-spawn command: piped stdio, killed on drop.
    pub fn to_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(self.args());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OMNIROUTE_") {
                command.env_remove(&name);
            }
        }
        command.envs(self.env.iter().map(|(n, v)| (n, v)));
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs the binary with these arguments (e.g. a `plugins verify DIR`
    /// subcommand added with [`Self::arg`]) to completion, bounded by
    /// [`crate::STARTUP_TIMEOUT`]; returns its exit status, stdout and stderr.
    pub async fn run_to_end(&self) -> std::process::Output {
        let mut command = self.to_command();
        command.stdin(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        match tokio::time::timeout(crate::STARTUP_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("{} failed to run: {e}", self.describe()),
            Err(_) => panic!("{} did not finish within {:?}", self.describe(), crate::STARTUP_TIMEOUT),
        }
    }

    /// For failure messages: the command line and the variables set.
    pub fn describe(&self) -> String {
        let args: Vec<String> = self
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env: Vec<String> = self.env.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!(
            "{} {} ({})",
            self.program.display(),
            args.join(" "),
            env.join(" ")
        )
    }
}

/// The tail of a child's stderr, read continuously so the child never blocks on a full pipe.
#[derive(Clone, Debug, Default)]
pub struct StderrTail {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl StderrTail {
    /// Keep at most this many of the last bytes.
    const KEEP: usize = 256 * 1024;

    /// Starts draining `stderr` on the current Tokio runtime.
    pub fn capture(mut stderr: ChildStderr) -> Self {
        let tail = Self::default();
        let buffer = Arc::clone(&tail.buffer);
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 16 * 1024];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut buffer = lock(&buffer);
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.len() > Self::KEEP {
                    let excess = buffer.len() - Self::KEEP;
                    buffer.drain(..excess);
                }
            }
        });
        tail
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buffer)).into_owned()
    }
}
