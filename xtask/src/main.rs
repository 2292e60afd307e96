//! `cargo xtask`: the project's build, run and test entry points, so a fresh
//! machine with only Rust, Node and Python needs nothing else installed by hand.

mod bench;
mod build;
mod component;
mod conformance;
mod dist;
mod gateway;
mod new_tool;
mod oauth;
mod plugins;
mod postgres;
mod python;
mod run;
mod util;

use clap::{Parser, Subcommand};
use util::RunExt;
use std::process::ExitCode;

/// Build, run and test omniroute-mcp.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the tool components (wasm32-wasip2, own target dir) and the host.
    Build {
        /// Build the host in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Build everything, then serve MCP on stdio against OMNIROUTE_BASE_URL, else a gateway
    /// answering at http://localhost:20128, else the project's demo gateway (started as by
    /// `cargo xtask gateway start`, left running). Extra arguments go to the server.
    Run(run::RunArgs),
    /// Run every test: the MCP conformance suite, component unit tests, host tests and
    /// end-to-end tests over MCP (Rust rmcp client and the official Python SDK).
    ///
    /// Arguments after `--` narrow the run to `cargo test` with those arguments, with the same
    /// real services and environment (the conformance suite and component tests are skipped):
    /// `cargo xtask test -- -p omniroute-mcp-tests --test docs`.
    Test {
        /// Arguments for `cargo test` (a focused run); none runs everything.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// The official MCP conformance suite against our Streamable HTTP server (loopback,
    /// through an auth proxy); scenarios that do not apply are in xtask/conformance-baseline.toml.
    Conformance,
    /// The real OmniRoute 3.7.9 gateway plus a mock upstream on loopback, for end-to-end tests.
    Gateway {
        #[command(subcommand)]
        action: gateway::GatewayAction,
    },
    /// A throwaway PostgreSQL 18 on loopback for the PostgreSQL store and audit tests
    /// (`cargo xtask test` starts it; OMNIROUTE_MCP_TEST_POSTGRES_URL uses another server).
    Postgres {
        #[command(subcommand)]
        action: postgres::PostgresAction,
    },
    /// Release benchmarks: our server (stdio, HTTP) vs the original TypeScript server vs the
    /// direct-HTTP floor, on a fake and a real gateway; writes target/bench/ and prints the table.
    Bench(bench::BenchArgs),
    /// Package the release for users without a Rust toolchain, into target/dist: a tar.gz per
    /// platform (+ .sha256), the npm launcher and platform packages, a Python wheel, an MCPB
    /// bundle and server.json for the MCP registry (validated against its vendored schema).
    Dist(dist::DistArgs),
    /// Generate a standalone tool plugin crate (Rust SDK, example tool, FakeGateway tests).
    NewTool {
        /// Tool name: 1-64 of a-z 0-9 _ -, not starting with `omniroute_`.
        name: String,
        /// Where to create the crate (default: beside this repository, ../<name>).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Build a plugin folder (Rust crate or Python app with a tool.toml) and write
    /// <name>.wasm + <name>.toml with the sha256 pinned into a plugin folder.
    BuildPlugin {
        path: std::path::PathBuf,
        /// The plugin folder to write into (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { release } => build::build_all(release).map(|_| ()),
        Command::Run(args) => run::run(args),
        Command::Test { cargo_args } => test(&cargo_args),
        Command::Conformance => conformance::run(None),
        Command::Gateway { action } => gateway::command(action),
        Command::Postgres { action } => postgres::command(action),
        Command::Bench(args) => bench::run(args),
        Command::Dist(args) => dist::command(args),
        Command::NewTool { name, dir } => new_tool::command(&name, dir.as_deref()),
        Command::BuildPlugin { path, out } => plugins::build_plugin(&path, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The dashboard password of the `auth` test gateway.
const TEST_GATEWAY_PASSWORD: &str = "omniroute-mcp-test-password";

fn test(cargo_args: &[String]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let target = util::workspace_root().join("target");
    util::report_disk(&target, "at start");
    // The gateway install (npm, minutes on a fresh machine) overlaps the build.
    let install = std::thread::spawn(gateway::ensure_installed);
    let built = build::build_all(false)?;
    // The aarch64 Linux and Windows binaries, run under qemu-user and Wine by tests/tests/dist.rs.
    let cross_started = std::time::Instant::now();
    let cross = dist::cross::for_tests()?;
    util::step(&format!("cross builds checked in {:.0} s", cross_started.elapsed().as_secs_f64()));
    let python = python::ensure_venv()?;
    let root = util::workspace_root();
    let installed = install
        .join()
        .map_err(|_| anyhow::anyhow!("the gateway install thread panicked"))??;
    let oauth_server = oauth::ensure_installed(&installed)?;
    let pg_started = std::time::Instant::now();
    let (postgres_url, postgres_ours) = postgres::for_tests()?;
    util::step(&format!("test PostgreSQL ready in {:.1} s", pg_started.elapsed().as_secs_f64()));
    util::step("starting the real OmniRoute gateways (plain, and with a dashboard password + API keys)");
    let plain = gateway::ensure_running()?;
    let auth = gateway::start_instance(&gateway::StartOptions {
        name: "auth".into(),
        password: Some(TEST_GATEWAY_PASSWORD.into()),
        require_api_key: true,
        ..Default::default()
    })?;

    let focused = !cargo_args.is_empty();
    if !focused {
        // The conformance suite prints its own "Total: N passed, M failed" line
        // (its expected failures included); it runs first so that cargo test's
        // summaries are the run's closing lines.
        util::step("MCP conformance suite (Streamable HTTP)");
        conformance::run(Some(&built))?;

        util::step("component unit tests (native)");
        build::components_cargo(&["test"]).current_dir(&root).run()?;
        plugins::test(&root)?;
    }

    // Every test binary runs even after one fails, so a red run lists all its failures.
    let mut test_args: Vec<&str> = vec!["test"];
    if focused {
        util::step(&format!("focused run: cargo test {}", cargo_args.join(" ")));
        test_args.extend(cargo_args.iter().map(String::as_str));
    } else {
        util::step("host and end-to-end tests");
        test_args.extend(["--workspace", "--no-fail-fast"]);
    }
    util::report_disk(&target, "before the host tests");
    util::cargo(&test_args)
        .current_dir(&root)
        .env("OMNIROUTE_MCP_BIN", &built.binary)
        .env("OMNIROUTE_MCP_TOOLS_DIR", &built.tools_dir)
        .env("OMNIROUTE_MCP_TEST_TOOLS_DIR", &built.test_tools_dir)
        .env("OMNIROUTE_MCP_TEST_PLUGINS_DIR", &built.plugins_dir)
        .env("OMNIROUTE_MCP_PYTHON", &python)
        // Built beside the server by the workspace build above (which may have
        // relinked the running xtask, so not `current_exe`).
        .env("OMNIROUTE_MCP_XTASK_BIN", built.binary.with_file_name(format!("xtask{}", std::env::consts::EXE_SUFFIX)))
        .envs(plain.env("OMNIROUTE_TEST_GATEWAY"))
        .envs(auth.env("OMNIROUTE_TEST_GATEWAY_AUTH"))
        .env(postgres::URL_VAR, &postgres_url)
        .env(dist::cross::ENV, &cross)
        .env(oauth::NODE_VAR, &installed.node)
        .env(oauth::PACKAGE_VAR, &oauth_server)
        .run()?;

    if std::env::var_os("CI").is_some() {
        for name in ["default", "auth"] {
            let _ = gateway::stop_instance(name);
        }
        if postgres_ours {
            let _ = postgres::stop();
        }
    }

    util::report_disk(&target, "at the end");
    let what = if focused { "the focused tests" } else { "all tests" };
    util::step(&format!("{what} passed in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}
