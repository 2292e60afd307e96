//! `cargo xtask bench`: our server against the original TypeScript MCP server and against the
//! floor (the same gateway requests sent directly), on an in-process instant fake gateway and
//! on a real OmniRoute 3.7.9 gateway, in one run on this machine.
//!
//! The measuring is done by the release-built example `tests/examples/bench/` (it owns the fake
//! gateway and the MCP clients); this module builds everything in release, installs the real
//! gateway and the original server (cached), starts a dedicated gateway instance named
//! [`INSTANCE`], runs the example, stops the instance, and leaves `target/bench/results.{json,md}`
//! and `target/bench/latency.svg`. With `--compare OLD_BINARY` it runs the program's A/B of two
//! builds instead (fake gateway only) and leaves `target/bench/compare.{json,md}`; with
//! `--instructions`, only the instructions per call under callgrind, metrics off vs on
//! (`target/bench/instructions.{json,md}`; the full run includes them when valgrind is installed).
//!
//! The full run also measures the state store (issue #13): it starts PostgreSQL (as the tests
//! do), runs the release example `host/examples/store_cost` (each store operation of a
//! tools/call, SQLite and PostgreSQL) into `target/bench/store_cost.json`, and passes the URL and
//! that file to the program, which adds per-call medians with `--state-url postgres://…` beside
//! the default SQLite store (`tests/examples/bench/store.rs`). `--no-postgres` skips both.

use crate::gateway::{self, Installed, StartOptions};
use crate::util::{self, RunExt};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;

/// The gateway instance the bench starts and stops (the tests use `default` and `auth`).
pub const INSTANCE: &str = "bench";

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Fewer calls (200 per tool on the fake gateway, 20 on the real one, 3 completions).
    #[arg(long)]
    pub quick: bool,
    /// Skip the real gateway; the original server is still measured if it is already installed.
    #[arg(long)]
    pub fake_only: bool,
    /// Sequential calls per tool against the fake gateway (default 1000, 200 with --quick).
    #[arg(long)]
    pub calls: Option<usize>,
    /// Calls per tool against the real gateway (default 100, 20 with --quick); route_request
    /// makes at most 10 (3 with --quick): the gateway queues completions beyond ~100 a minute.
    #[arg(long)]
    pub real_calls: Option<usize>,
    /// A/B instead: this (older) release binary against the one just built, alternating runs
    /// on the fake gateway; writes target/bench/compare.{json,md}. Build the old one in another
    /// worktree: `git worktree add ../old REV && (cd ../old && cargo xtask build --release)`.
    #[arg(long, value_name = "OLD_BINARY", conflicts_with_all = ["fake_only", "real_calls"])]
    pub compare: Option<PathBuf>,
    /// The old binary's tools folder (default: its own, `tools` beside it or one level up).
    #[arg(long, value_name = "DIR", requires = "compare")]
    pub compare_tools: Option<PathBuf>,
    /// A/B rounds: each binary is measured this many times, alternating (default 2).
    #[arg(long, requires = "compare")]
    pub rounds: Option<usize>,
    /// Only count instructions per tools/call under callgrind (valgrind), metrics off vs on;
    /// writes target/bench/instructions.{json,md}. Takes a few minutes.
    #[arg(long, conflicts_with_all = ["compare", "real_calls"])]
    pub instructions: bool,
    /// Skip the callgrind count the full run adds when valgrind is installed.
    #[arg(long, conflicts_with = "instructions")]
    pub no_instructions: bool,
    /// Counted calls per tool under callgrind (default 30, 10 with --quick).
    #[arg(long)]
    pub instruction_calls: Option<usize>,
    /// Skip the state-store measurement (PostgreSQL start, store_cost example, per-call medians
    /// with `--state-url postgres://…`).
    #[arg(long)]
    pub no_postgres: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = util::workspace_root();
    // The A/B and the instruction count use the fake gateway only.
    let ab = args.compare.is_some() || args.instructions;
    // The gateway install (npm, minutes on a fresh machine) overlaps the build.
    let install = (!args.fake_only && !ab).then(|| std::thread::spawn(gateway::ensure_installed));
    let built = build_all_release()?;
    util::step("building the bench program (tests/examples/bench, release)");
    util::cargo(&["build", "--release", "-p", "omniroute-mcp-tests", "--example", "bench"])
        .current_dir(&root)
        .run()?;
    let store = if args.no_postgres || ab { None } else { Some(StoreBench::run(&built, args.quick)?) };
    let installed: Option<Installed> = match install {
        Some(handle) => Some(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("the gateway install thread panicked"))?
                .context("installing the real gateway and the original MCP server")?,
        ),
        None => gateway::find_installed(),
    };

    let real = if args.fake_only || ab {
        None
    } else {
        util::step(&format!("starting the real gateway instance '{INSTANCE}' (loopback, mock upstream)"));
        Some(gateway::start_instance(&StartOptions::named(INSTANCE)).context("starting the bench gateway")?)
    };

    let program = built.target.join("release").join("examples").join("bench");
    let out = built.target.join("bench");
    let mut cmd = std::process::Command::new(&program);
    cmd.current_dir(&root)
        .env("OMNIROUTE_MCP_BIN", &built.binary)
        .env("OMNIROUTE_MCP_TOOLS_DIR", &built.tools_dir)
        .arg("--out")
        .arg(&out);
    if args.quick {
        cmd.arg("--quick");
    }
    if let Some(n) = args.calls {
        cmd.arg("--calls").arg(n.to_string());
    }
    if let Some(n) = args.real_calls {
        cmd.arg("--real-calls").arg(n.to_string());
    }
    if let Some(old) = &args.compare {
        cmd.arg("--compare").arg(std::path::absolute(old)?);
    }
    if let Some(dir) = &args.compare_tools {
        cmd.arg("--compare-tools").arg(std::path::absolute(dir)?);
    }
    if let Some(n) = args.rounds {
        cmd.arg("--rounds").arg(n.to_string());
    }
    if args.instructions {
        cmd.arg("--instructions");
    }
    if args.no_instructions {
        cmd.arg("--no-instructions");
    }
    if let Some(n) = args.instruction_calls {
        cmd.arg("--instruction-calls").arg(n.to_string());
    }
    if let Some(installed) = installed.as_ref().filter(|_| !ab) {
        let server = installed.app_dir.join("open-sse").join("mcp-server").join("server.js");
        cmd.arg("--node").arg(&installed.node).arg("--original").arg(server);
    }
    if let Some(real) = &real {
        cmd.arg("--real-url").arg(&real.base_url).arg("--real-api-key").arg(&real.api_key);
    }
    if let Some(store) = &store {
        cmd.arg("--postgres-url").arg(&store.url).arg("--store-cost").arg(&store.report);
    }
    util::step("measuring (progress below; the table follows)");
    let measured = cmd.run();
    if let Some(store) = store {
        store.stop();
    }
    if real.is_some() {
        util::step(&format!("stopping the gateway instance '{INSTANCE}'"));
        if let Err(e) = gateway::stop_instance(INSTANCE) {
            util::step(&format!("warning: could not stop the gateway instance '{INSTANCE}': {e:#}"));
        }
    }
    measured?;
    let files = if args.instructions {
        "instructions.json, instructions.md"
    } else if ab {
        "compare.json, compare.md"
    } else {
        "results.json, results.md, latency.svg"
    };
    util::step(&format!(
        "results in {} ({files}); {:.0} s in all",
        out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

struct Release {
    binary: PathBuf,
    tools_dir: PathBuf,
    target: PathBuf,
}

fn build_all_release() -> anyhow::Result<Release> {
    let built = crate::build::build_all(true)?;
    // build_all puts the host in <target>/release/omniroute-mcp.
    let target = built
        .binary
        .parent()
        .and_then(|release| release.parent())
        .map(PathBuf::from)
        .context("the host binary has no target directory")?;
    Ok(Release { binary: built.binary, tools_dir: built.tools_dir, target })
}

/// The state store's part of a full run: a PostgreSQL server and the store_cost report.
struct StoreBench {
    url: String,
    /// `target/bench/store_cost.json`, written by the store_cost example.
    report: PathBuf,
    /// Whether this run started the server (and so stops it).
    ours: bool,
}

impl StoreBench {
    /// Starts (or reuses) PostgreSQL, builds and runs `host/examples/store_cost` in release.
    fn run(built: &Release, quick: bool) -> anyhow::Result<StoreBench> {
        util::step("starting PostgreSQL for the state-store measurement (--no-postgres skips it)");
        let (url, ours) = crate::postgres::for_tests().context("starting PostgreSQL for the bench")?;
        let bench = StoreBench { url, report: built.target.join("bench").join("store_cost.json"), ours };
        let root = util::workspace_root();
        util::step("measuring the state store per operation (host/examples/store_cost, release)");
        std::fs::create_dir_all(built.target.join("bench"))?;
        let iterations = if quick { "300" } else { "2000" };
        // Built with the workspace's features (as `build_all` built the rest), so nothing is
        // compiled again with `-p omniroute-mcp`'s narrower feature set.
        let measured = util::cargo(&["build", "--release", "-q", "--workspace", "--example", "store_cost"]).current_dir(&root).run().and_then(|()| {
            std::process::Command::new(built.target.join("release").join("examples").join("store_cost"))
                .arg(iterations)
                .arg("--json")
                .arg(&bench.report)
                .env(crate::postgres::URL_VAR, &bench.url)
                .current_dir(&root)
                .run()
        });
        if let Err(e) = measured {
            bench.stop();
            return Err(e.context("the store_cost example failed"));
        }
        Ok(bench)
    }

    fn stop(self) {
        if self.ours {
            if let Err(e) = crate::postgres::stop() {
                util::step(&format!("warning: could not stop PostgreSQL: {e:#}"));
            }
        }
    }
}
