//! Running the official Python MCP SDK clients in `tests/python/` as
//! bounded child processes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::paths;

/// What a finished script printed.
#[derive(Debug)]
pub struct ScriptRun {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `tests/python/<script>` with the venv interpreter, no inherited
/// `OMNIROUTE_*` variables, the given environment, and a time limit (the
/// backstop if Python itself hangs). Panics with both output streams and
/// `context` (e.g. the server's log) when the script fails or times out.
pub async fn run_script(script: &str, env: &[(String, String)], limit: Duration, context: impl Fn() -> String) -> ScriptRun {
    let python = paths::python_interpreter();
    let path = paths::python_scripts_dir().join(script);
    let mut command = tokio::process::Command::new(&python);
    command.arg(&path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            command.env_remove(&name);
        }
    }
    command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {limit:?}\n--- context ---\n{}", path.display(), context()))
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python.display(), path.display()));
    let run = ScriptRun {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    assert!(
        output.status.success(),
        "{script} failed ({}, after {:.1} s)\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- context ---\n{}",
        output.status,
        run.elapsed.as_secs_f64(),
        run.stdout,
        run.stderr,
        context()
    );
    run
}
