//! `omniroute-mcp`: the command line. Logs go to stderr; in stdio mode stdout
//! carries JSON-RPC only.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    if std::env::args_os().nth(1).is_some_and(|arg| arg == omniroute_mcp::runtime::COMPILER_CHILD_ARG) {
        return omniroute_mcp::runtime::serve_as_compiler_child();
    }
    let cli = cli::Cli::parse();
    // Dropped last: flushes the log lines still queued (bounded wait).
    let _logs = omniroute_mcp::telemetry::init_logging(&cli.global.log);
    // Cranelift runs in a child process of this binary (runtime/compiler.rs); without a path
    // to the binary, components are compiled in process.
    match std::env::current_exe() {
        Ok(exe) => omniroute_mcp::runtime::compile_in_child_processes(exe),
        Err(e) => tracing::debug!(error = %e, "no path to this binary; components are compiled in process"),
    }
    // One stdio session is served best by one thread: a call then needs no
    // hand-offs between worker threads (measured: fewer context switches and
    // less CPU per call). HTTP serves many sessions and keeps the worker pool.
    let serves_http = matches!(&cli.command, Some(cli::Command::Serve(args)) if args.http.is_some());
    let mut builder = if serves_http {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omniroute-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Through the log queue: a direct write could block on a full,
            // unread stderr pipe and keep the process from exiting.
            tracing::error!("omniroute-mcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that meets a locked arena an arena of its own,
/// up to 8 per core, and each keeps its freed memory: with the runtime's,
/// the audit writer's and the checkpointers' threads that was 3-4 MiB more
/// resident memory than one arena per core (measured: route_request x3000,
/// VmHWM 37.5 → 34.5 MiB, no measurable change in latency). An operator's
/// `MALLOC_ARENA_MAX` wins; it must be set before any other thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}
