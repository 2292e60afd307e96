//! Where Cranelift runs. The server compiles a component in a short-lived child process of its
//! own binary (`omniroute-mcp __compile-component`: the component on stdin, wasmtime's
//! precompiled code on stdout), then maps that code itself. Compared with compiling in process:
//!
//! * the server never pages in Cranelift's machine code nor keeps the heap a compile leaves
//!   fragmented: measured on the bench's three tools with an empty cache, the server's peak RSS
//!   fell from 39 MiB to that of a warm cache (see the README's Memory paragraph);
//! * a component that keeps the compiler busy is stopped at the compile time limit
//!   ([`COMPILE_TIME_LIMIT_ENV`], default [`DEFAULT_COMPILE_TIME_LIMIT`]) and refused, where an
//!   in-process compile cannot be interrupted;
//! * a compiler crash on a hostile component ends the child, not the server and its sessions.
//!
//! The child gets no environment but the allocator settings, so it holds no gateway key.
//! Before its first compile the server probes the child once (`__compile-component --probe`
//! must answer with the server's own engine key): where the binary cannot run as a child of
//! itself (under `qemu-user` with a sysroot the child does not inherit, say) or would build
//! another engine, components are compiled in process, with one warning. After a good probe, a
//! child that fails is the component's doing and the tool is refused. Library users and tests
//! (no binary registered with [`compile_in_child_processes`]) compile in process.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The hidden first argument that makes the binary a compiler child.
pub const CHILD_ARG: &str = "__compile-component";

/// The child's second argument for the probe: print the engine key, compile nothing.
const PROBE_ARG: &str = "--probe";

/// The probe builds an engine and compiles nothing: milliseconds natively, well under a
/// second under emulation. Not the compile limit, which bounds the component's work.
const PROBE_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The environment variable bounding one compile, in seconds.
pub const COMPILE_TIME_LIMIT_ENV: &str = "OMNIROUTE_MCP_COMPILE_TIME_LIMIT_S";

/// Ample for this project's components (0.2-0.5 s each on a 2-core machine, 10-20 times that
/// under qemu); a component that needs longer is refused.
pub const DEFAULT_COMPILE_TIME_LIMIT: Duration = Duration::from_secs(120);

/// What the child keeps of the server's environment: what shapes the engine or its allocator.
const FORWARDED_ENV: [&str; 5] = [
    super::engine::ALLOCATOR_ENV,
    "MALLOC_ARENA_MAX",
    "SystemRoot",
    "TEMP",
    "TMP",
];

/// How much of the child's stderr is kept for an error message.
const STDERR_KEPT: usize = 4096;

static CHILD_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Whether the child answered the probe as this server's engine would (found once).
static CHILD_USABLE: OnceLock<bool> = OnceLock::new();

/// Makes this process compile components in child processes of `exe` (the server's own binary,
/// which must handle [`CHILD_ARG`] with [`serve_as_child`]).
pub fn compile_in_child_processes(exe: PathBuf) {
    let _ = CHILD_EXE.set(exe);
}

/// Why a compile in a child process failed.
#[derive(Debug, thiserror::Error)]
enum ChildError {
    #[error("could not start the compiler process {exe}: {source}")]
    Start { exe: String, source: std::io::Error },
    #[error("{0}")]
    Refused(String),
    #[error(
        "compiling took longer than {0:?}, so the component was refused (raise {COMPILE_TIME_LIMIT_ENV} only for a component you trust)"
    )]
    TimedOut(Duration),
    #[error("the compiler process failed ({status}){detail}")]
    Crashed { status: String, detail: String },
    #[error("could not talk to the compiler process: {0}")]
    Pipe(#[from] std::io::Error),
}

/// Compiles `wasm` for `engine`: the precompiled code (for the cache) and the component.
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Vec<u8>, Component)> {
    if let Some(exe) = CHILD_EXE.get().filter(|exe| *CHILD_USABLE.get_or_init(|| probe(exe, engine))) {
        let started = Instant::now();
        match in_child(exe, &[], wasm, time_limit()) {
            Ok(code) => {
                // SAFETY: `code` is what this server's own binary produced with
                // `Engine::precompile_component` for an engine built by the same
                // `engine_config`; wasmtime checks its header and refuses code made
                // for another engine configuration or version.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(component) => {
                        tracing::debug!(
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            bytes = code.len(),
                            "compiled in a child process"
                        );
                        return Ok((code, component));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the compiler process made code this server cannot use (was the binary replaced?); compiling in process")
                    }
                }
            }
            Err(ChildError::Start { exe, source }) => {
                tracing::warn!(exe, error = %source, "could not start the compiler process; compiling in process");
            }
            Err(e) => return Err(wasmtime::Error::msg(e.to_string())),
        }
    }
    let code = engine.precompile_component(wasm)?;
    // SAFETY: `code` was produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &code)? };
    Ok((code, component))
}

fn time_limit() -> Duration {
    std::env::var(COMPILE_TIME_LIMIT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_COMPILE_TIME_LIMIT, Duration::from_secs_f64)
}

/// Runs the child once with `--probe`: usable if it answers with this engine's key.
fn probe(exe: &Path, engine: &Engine) -> bool {
    let expected = super::cache::engine_key(engine);
    match in_child(exe, &[PROBE_ARG], b"", PROBE_TIME_LIMIT) {
        Ok(answer) if answer == expected.as_bytes() => {
            tracing::debug!(exe = %exe.display(), "components are compiled in child processes");
            true
        }
        Ok(answer) => {
            let answer = String::from_utf8_lossy(&answer);
            tracing::warn!(exe = %exe.display(), expected, answer = %answer, "the compiler process builds another engine; compiling components in process");
            false
        }
        Err(e) => {
            tracing::warn!(exe = %exe.display(), error = %e, "the compiler process cannot run here; compiling components in process");
            false
        }
    }
}

fn in_child(exe: &Path, args: &[&str], wasm: &[u8], limit: Duration) -> Result<Vec<u8>, ChildError> {
    let mut command = Command::new(exe);
    command
        .arg(CHILD_ARG)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in FORWARDED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = command.spawn().map_err(|source| ChildError::Start {
        exe: exe.display().to_string(),
        source,
    })?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ChildError::Pipe(std::io::Error::other(
            "the child's pipes were not set up",
        )));
    };
    std::thread::scope(|scope| {
        // Written while the output is read: neither side can fill a pipe and wait on the other.
        let writer = scope.spawn(move || stdin.write_all(wasm));
        let errors = scope.spawn(move || {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let _ = stderr
                .by_ref()
                .take(STDERR_KEPT as u64)
                .read_to_end(&mut kept);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&kept).trim().to_owned()
        });
        let (sender, receiver) = mpsc::channel();
        scope.spawn(move || {
            let mut code = Vec::new();
            let _ = sender.send(stdout.read_to_end(&mut code).map(|_| code));
        });
        let output = match receiver.recv_timeout(limit) {
            Ok(output) => output,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::TimedOut(limit));
            }
        };
        let status = child.wait()?;
        let message = errors.join().unwrap_or_default();
        // A child that refused the component stops reading: a broken pipe then is expected.
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
        match status.code() {
            Some(0) => {
                written?;
                Ok(output?)
            }
            Some(REFUSED) => Err(ChildError::Refused(message)),
            _ => Err(ChildError::Crashed {
                status: status.to_string(),
                detail: if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                },
            }),
        }
    })
}

/// The child's exit code for "not a component this engine can compile" (message on stderr).
const REFUSED: i32 = 3;

/// The child's side: reads a component on stdin, writes its precompiled code on stdout (with
/// `--probe`: its engine key).
pub fn serve_as_child() -> ExitCode {
    let probing = std::env::args_os().nth(2).is_some_and(|arg| arg == PROBE_ARG);
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut wasm) {
        eprintln!("could not read the component: {e}");
        return ExitCode::FAILURE;
    }
    let engine = match super::engine::engine_config().and_then(|config| {
        Engine::new(&config).map_err(|e| super::RuntimeError::Engine(format!("{e:#}")))
    }) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let code = if probing {
        super::cache::engine_key(&engine).into_bytes()
    } else {
        match engine.precompile_component(&wasm) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e:#}");
                return ExitCode::from(REFUSED as u8);
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&code).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("could not write the compiled code: {e}");
            ExitCode::FAILURE
        }
    }
}
