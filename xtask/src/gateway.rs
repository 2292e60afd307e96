//! `cargo xtask gateway`: the real OmniRoute 3.7.9 gateway on loopback, for end-to-end tests.
//!
//! * Installs Node 22 and `omniroute@3.7.9` once into the cache (`$OMNIROUTE_MCP_CACHE`, else
//!   `$XDG_CACHE_HOME/omniroute-mcp`, else `~/.cache/omniroute-mcp`), outside the repository,
//!   guarded by a lock and completion markers.
//! * Starts the mock upstream (`tests/gateway/mock-upstream.mjs`) and the gateway on free
//!   127.0.0.1 ports with a throwaway data dir, waits for health and seeds the provider node
//!   `Mock`, its connection, models, the combos `coding-fast` and `free-tier`, prices keyed by
//!   the node id and an API key; then the node `Revoked` whose connection's key the mock refuses
//!   (one completion through it, so the gateway has recorded the refusal).
//! * Records everything in `target/gateway/<name>/state.json` (the JSON of [`GatewayInfo`]);
//!   `start` reuses a healthy instance, `stop` ends it, `status` reports on it.

mod http;
mod install;
mod instance;
mod proc;

pub use install::{Installed, cache_root, ensure_installed, find_installed};
pub use proc::{Lock, MARKER_VAR, alive_as, run_logged, tail, terminate};
pub use instance::{
    DEFAULT_NAME, GatewayInfo, StartOptions, health_status, start_instance, stop_instance,
};

use crate::util::step;

/// `cargo xtask gateway …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GatewayAction {
    /// Install if needed, then start and seed a gateway plus mock upstream on loopback
    /// (reuses a healthy one started earlier with the same options).
    Start {
        /// Instance name; each has its own state file target/gateway/<name>/state.json.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Dashboard password (INITIAL_PASSWORD): management routes then need a login.
        #[arg(long)]
        password: Option<String>,
        /// Start with REQUIRE_API_KEY=true (/v1/* needs the seeded Bearer key).
        #[arg(long)]
        require_api_key: bool,
        /// Also seed the combo `broken` (priority, mock/mock-fail).
        #[arg(long)]
        broken: bool,
    },
    /// Stop an instance (SIGTERM, then SIGKILL after 15 s) and remove its state file.
    Stop {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Stop every instance that has a state file.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// Print an instance's state; fails unless it is running and healthy.
    Status {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Only install Node 22 and OmniRoute into the cache.
    Install,
}

/// Runs one `cargo xtask gateway` action.
pub fn command(action: GatewayAction) -> anyhow::Result<()> {
    match action {
        GatewayAction::Start {
            name,
            password,
            require_api_key,
            broken,
        } => {
            let info = start_instance(&StartOptions {
                name,
                password,
                require_api_key,
                broken_combo: broken,
            })?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        GatewayAction::Stop { name, all } => {
            let names = if all {
                instance::instance_names()
            } else {
                vec![name]
            };
            for name in names {
                if !stop_instance(&name)? {
                    step(&format!("gateway '{name}' is not running (no state file)"));
                }
            }
            Ok(())
        }
        GatewayAction::Status { name } => instance::print_status(&name),
        GatewayAction::Install => {
            let i = ensure_installed()?;
            step(&format!("node: {}", i.node.display()));
            step(&format!(
                "gateway: {}",
                i.app_dir.join("server-ws.mjs").display()
            ));
            Ok(())
        }
    }
}

/// The default instance (no password), started and seeded if it is not already running.
pub fn ensure_running() -> anyhow::Result<GatewayInfo> {
    start_instance(&StartOptions::default())
}
