//! Processes and locks without libc: `/proc` for liveness and identity, the `kill` command
//! for signals, and lock files created atomically with a hard link.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `/proc/<pid>/stat` fields after the command name: (state, start time in clock ticks).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// True when the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The environment variable through which we recognise processes we started: PIDs get
/// reused, and the gateway rewrites its command line (to `next-server (v16.2.4)`), so neither
/// the PID nor the command line alone proves a process is ours.
pub const MARKER_VAR: &str = "OMNIROUTE_MCP_PROCESS";

/// True when the process's initial environment holds exactly `<MARKER_VAR>=<marker>`.
fn has_marker(pid: u32, marker: &str) -> bool {
    let wanted = format!("{MARKER_VAR}={marker}");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        env.split(|b| *b == 0)
            .any(|entry| entry == wanted.as_bytes())
    })
}

/// Alive, not a zombie, and started by us with this marker (see [`MARKER_VAR`]).
pub fn alive_as(pid: u32, marker: &str) -> bool {
    pid != 0 && alive(pid) && has_marker(pid, marker)
}

/// Sends a signal with the `kill` command; errors are ignored (the process may be gone).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM, wait up to `grace`, then SIGKILL; only if the process still carries `marker`.
/// Returns true if it had to be killed.
pub fn terminate(pid: u32, marker: &str, grace: Duration) -> bool {
    if !alive_as(pid, marker) {
        return false;
    }
    signal(pid, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(pid, "KILL");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Reaps a child we spawned if it has exited (so it does not linger as a zombie); never blocks.
pub fn reap(child: &mut Child) -> Option<std::process::ExitStatus> {
    child.try_wait().ok().flatten()
}

/// An exclusive lock file holding "<pid> <start time>"; removed on drop.
pub struct Lock {
    path: PathBuf,
    content: String,
}

fn my_identity() -> String {
    let pid = std::process::id();
    let start = stat(pid).map(|(_, s)| s).unwrap_or(0);
    format!("{pid} {start}")
}

/// True when the identity written in a lock file belongs to a running process.
fn holder_alive(content: &str) -> bool {
    let mut parts = content.split_whitespace();
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    matches!(stat(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

impl Lock {
    /// Waits (up to `max_wait`) for the lock at `path`, breaking it if its holder is dead.
    /// `what` names the lock in progress messages.
    pub fn acquire(path: &Path, what: &str, max_wait: Duration) -> anyhow::Result<Lock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let content = my_identity();
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let started = Instant::now();
        let mut last_note: Option<Instant> = None;
        loop {
            {
                let mut f = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                f.write_all(content.as_bytes())?;
                f.sync_all()?;
            }
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    return Ok(Lock {
                        path: path.to_path_buf(),
                        content,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create lock {}", path.display()));
                }
            }
            match std::fs::read_to_string(path) {
                Ok(holder) if !holder_alive(&holder) => {
                    // Stale: move it aside, and delete it only if it is still the one we judged.
                    let aside = path.with_extension(format!("stale-{}", std::process::id()));
                    if std::fs::rename(path, &aside).is_ok() {
                        let moved = std::fs::read_to_string(&aside).unwrap_or_default();
                        if moved != holder {
                            // We raced with a new holder: put its lock back.
                            let _ = std::fs::hard_link(&aside, path);
                        } else {
                            crate::util::step(&format!(
                                "removed a stale {what} lock (holder {} is gone)",
                                holder.trim()
                            ));
                        }
                        let _ = std::fs::remove_file(&aside);
                    }
                    continue;
                }
                Ok(holder) => {
                    if started.elapsed() > max_wait {
                        anyhow::bail!(
                            "timed out after {} s waiting for the {what} lock {} (held by process {})",
                            max_wait.as_secs(),
                            path.display(),
                            holder.trim()
                        );
                    }
                    if last_note.is_none_or(|t| t.elapsed() > Duration::from_secs(20)) {
                        crate::util::step(&format!(
                            "waiting for the {what} lock held by process {} ({:.0} s)",
                            holder.split_whitespace().next().unwrap_or("?"),
                            started.elapsed().as_secs_f64()
                        ));
                        last_note = Some(Instant::now());
                    }
                }
                Err(_) => {} // vanished between link and read: retry at once
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|c| c == self.content) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The last `n` lines of a file (or a note that it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs a command with stdout and stderr appended to `log`, printing a heartbeat every 30 s.
/// On failure the error carries the last 40 lines of the log.
pub fn run_logged(cmd: &mut Command, log: &Path, label: &str) -> anyhow::Result<()> {
    let line = format!("{cmd:?}");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    {
        let mut f = &file;
        writeln!(f, "\n$ {line}")?;
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {line}"))?;
    let mut next_note = Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= next_note {
            crate::util::step(&format!(
                "  … {label}: still running ({:.0} s)",
                started.elapsed().as_secs_f64()
            ));
            next_note += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        anyhow::bail!(
            "{label} failed ({status}): {line}\nlast lines of {}:\n{}",
            log.display(),
            tail(log, 40)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_breaks_stale_holders() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("x.lock");
        // A holder that cannot be alive (PID beyond pid_max).
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "4194399 1").unwrap();
        let lock = Lock::acquire(&path, "test", Duration::from_secs(5)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), my_identity());
        // Held by a live process (us): a second acquire times out.
        let err = Lock::acquire(&path, "test", Duration::from_millis(300))
            .err()
            .unwrap();
        assert!(err.to_string().contains("timed out"), "{err}");
        drop(lock);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn liveness_and_identity() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(!alive(4194399));
        assert!(!alive_as(me, "definitely-not-our-marker"));
    }
}
