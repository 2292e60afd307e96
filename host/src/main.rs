//! `omniroute-mcp`: the command line. Logs go to stderr; in stdio mode stdout
//! carries JSON-RPC only.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Dropped last: flushes the log lines still queued (bounded wait).
    let _logs = omniroute_mcp::telemetry::init_logging(&cli.global.log);
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
