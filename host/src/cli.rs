//! Flags, subcommands and what each one does.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use omniroute_mcp::app::App;
use omniroute_mcp::auth::{self, PrincipalId};
use omniroute_mcp::capability::{CAPABILITY_TABLE, Grants, Scope};
use omniroute_mcp::config::{self, Settings};
use omniroute_mcp::registry::{Origin, PluginSource, Registry, join_scopes};
use omniroute_mcp::runtime::LimitPolicy;
use omniroute_mcp::transport;
use std::path::PathBuf;
use std::time::Duration;

/// How a list of folders in one variable is separated, as in `PATH`: Windows
/// paths hold a drive colon (`C:\tools`), so there it is `;`.
const PATH_LIST_SEPARATOR: char = if cfg!(windows) { ';' } else { ':' };

/// MCP server for the OmniRoute AI gateway. Every tool runs as a sandboxed
/// WebAssembly component that can reach only the gateway routes its scopes allow.
///
/// With no command it serves MCP over stdio, for IDEs such as Claude Desktop,
/// Cursor and VS Code. Logs go to stderr.
#[derive(Debug, Parser)]
#[command(name = "omniroute-mcp", version, about, long_about, args_override_self = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (the default), or over Streamable HTTP with `--http`.
    Serve(ServeArgs),
    /// Manage the tenants file of the HTTP transport.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Print the tools, their scopes, and the scope -> gateway capability table.
    Tools {
        /// JSON instead of text: every tool's describe() as loaded (name, scopes,
        /// schemas, annotations), refusals, warnings and the capability table.
        #[arg(long)]
        json: bool,
        /// Write each built-in tool's validated describe() output to
        /// DIR/<tool>.describe.json (used by `cargo xtask build` to embed it).
        #[arg(long, value_name = "DIR", hide = true)]
        export_describe: Option<PathBuf>,
    },
    /// Read the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check what a first run depends on: the gateway URL, the dashboard login, the API key
    /// on a /v1 route, the data folder and the audit database. Says what to fix; exits 1
    /// when something is wrong.
    Doctor,
    /// Print the snippet that adds this server (this binary's absolute path) to an MCP
    /// client: claude-desktop, cursor, vscode or claude-code. Secrets are never copied
    /// into it; a placeholder marks where they go.
    Config {
        /// The MCP client.
        #[arg(value_enum)]
        client: omniroute_mcp::client_config::Client,
    },
    /// Third-party tool plugins: what loads and with which scopes, checking a
    /// folder before deploying it, and asking running servers to reload.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// The plugins of --plugins (OMNIROUTE_MCP_PLUGINS): each loaded one with its
    /// requested, granted and withheld scopes, each refused one with the reason.
    List {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a plugin folder exactly as the server would load it (sha256 pins,
    /// describe(), names, grants). Exits 1 if any plugin would be refused.
    Verify {
        /// The folder to check.
        dir: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask every server watching the plugin folder to reload it now (touches
    /// `.reload` in the folder; sending SIGHUP to a server does the same).
    Reload,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve MCP Streamable HTTP at http://ADDR/mcp (with /healthz and /readyz)
    /// instead of stdio, e.g. 127.0.0.1:8931 (port 0 picks a free port; the
    /// address is printed on stderr). Needs a tenants file.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Tenants file (TOML) for --http: tokens (hashed), scopes, tools, limits.
    #[arg(long, env = "OMNIROUTE_MCP_TENANTS")]
    pub tenants: Option<PathBuf>,
    /// A Host header value to accept besides loopback (name or name:port); repeatable.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// A browser Origin to accept besides loopback (scheme://host[:port]); repeatable.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// With --http: close an MCP session after this many seconds without a
    /// request (its tenant's session slot is then free again).
    #[arg(long, env = "OMNIROUTE_MCP_SESSION_IDLE_S", value_name = "SECONDS",
          default_value_t = transport::http::DEFAULT_SESSION_IDLE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_timeout: u64,
    /// With --http: park an MCP session after this many seconds without a
    /// request and with no stream open. A parked session keeps its id, its
    /// tenant slot and its state, holds about 15-20 KiB instead of about 62 KiB,
    /// and is restored by its next request. Parking never happens when this
    /// is not below --session-idle-timeout.
    #[arg(long, env = "OMNIROUTE_MCP_SESSION_PARK_S", value_name = "SECONDS",
          default_value_t = transport::http::DEFAULT_SESSION_PARK.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_park_after: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics on a listener of their
    /// own (stdio and --http alike), e.g. 127.0.0.1:9464; off when absent. A
    /// non-loopback ADDR needs OMNIROUTE_MCP_METRICS_TOKEN (scrapes then send
    /// `Authorization: Bearer <token>`): the metrics name tenants.
    #[arg(long, env = "OMNIROUTE_MCP_METRICS", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// `omniroute-mcp` with no command: stdio, defaults everywhere.
impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            http: None,
            tenants: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            session_idle_timeout: transport::http::DEFAULT_SESSION_IDLE.as_secs(),
            session_park_after: transport::http::DEFAULT_SESSION_PARK.as_secs(),
            metrics: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Add a tenant: prints a new bearer token once and stores only its SHA-256.
    Add {
        /// Tenant id (A-Z a-z 0-9 _ . -), recorded as the audit caller.
        name: String,
        /// Granted scopes, comma-separated (e.g. read:health,read:combos; `read:*`, `*`).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Only these tools (comma-separated); default: every tool its scopes allow.
        #[arg(long, value_delimiter = ',')]
        tools: Option<Vec<String>>,
        /// Calls running at once.
        #[arg(long, default_value_t = auth::DEFAULT_MAX_CONCURRENT)]
        max_concurrent: u32,
        /// Calls (and session starts) per minute.
        #[arg(long, default_value_t = auth::DEFAULT_RATE_PER_MINUTE)]
        rate_per_minute: u32,
        /// Live MCP sessions at once.
        #[arg(long, default_value_t = auth::DEFAULT_MAX_SESSIONS)]
        max_sessions: u32,
        /// The tenants file (created if missing). Default: OMNIROUTE_MCP_TENANTS, else
        /// `tenants.toml` in the data directory.
        #[arg(long, env = "OMNIROUTE_MCP_TENANTS")]
        file: Option<PathBuf>,
    },
    /// Revoke a principal in the state store: every node sharing it (--state-url) refuses its
    /// credentials, static token or OAuth, within about a second, whatever its tenants file says.
    Revoke {
        /// A tenant id (acme) or a full principal id (tenant:acme, oauth:<issuer>:<sub>).
        principal: String,
        /// Why, shown in the refusal and the server logs.
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
    /// Lift a revocation made with `tenants revoke`.
    Restore {
        /// A tenant id or a full principal id, as given to `revoke`.
        principal: String,
    },
    /// List the principals revoked in the state store.
    Revoked,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest audit rows.
    Recent {
        /// How many rows (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only failed calls (denials, invalid arguments, errors).
        #[arg(long)]
        failed: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Totals: calls, success rate (a fraction), average duration, top tools.
    Stats {
        /// Window, e.g. 24h, 30m, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain of every row; exits 1 and names the first broken
    /// row if a row was changed, deleted, inserted or reordered. Prints the
    /// head hash: keep it elsewhere to detect a rewrite of the whole log.
    Verify {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print rows oldest first, one JSON object per line, with their gateway
    /// requests and hashes.
    Export {
        /// Only rows of this window, e.g. 24h, 30m, 7d (default: all).
        #[arg(long)]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

/// `audit export` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

/// What happens while audit rows cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFailureMode {
    /// Refuse calls (nothing runs unaudited).
    Refuse,
    /// Answer calls with a warning on stderr.
    Warn,
}

/// How SQLite audit rows reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditWrites {
    /// Appended to a journal before the answer, imported in batches.
    Journal,
    /// Committed into the database before the answer.
    Direct,
}

/// Whether calls are audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditMode {
    /// Record every call; refuse calls when the database is unusable.
    On,
    /// Do not record anything (the operator's explicit choice).
    Off,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Gateway base URL. Falls back to BASE_URL and NEXT_PUBLIC_BASE_URL, then http://localhost:20128.
    #[arg(long, env = "OMNIROUTE_BASE_URL", global = true)]
    pub base_url: Option<String>,

    /// Folder(s) of built-in tool components (`<tool>.toml` + `.wasm`), for development;
    /// repeat the flag, or separate with ':' in the variable (';' on Windows). Default: the tools built into
    /// this binary (`cargo xtask build` embeds them; `tools --json` shows where each came
    /// from), or for a binary built without them, `tools` beside the binary.
    #[arg(long = "tools-dir", env = "OMNIROUTE_MCP_TOOLS_DIR", value_delimiter = PATH_LIST_SEPARATOR, global = true)]
    pub tools_dirs: Vec<PathBuf>,

    /// Data directory (precompiled tool cache). Default: the user's data folder.
    #[arg(long, env = "OMNIROUTE_MCP_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Precompiled tool cache. Default: `cache` in the data directory.
    #[arg(long, env = "OMNIROUTE_MCP_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,

    /// Timeout in seconds for gateway requests other than completions (10-30).
    #[arg(long, env = "OMNIROUTE_MCP_GATEWAY_TIMEOUT_S", default_value_t = 15, global = true)]
    pub gateway_timeout: u64,

    /// Timeout in seconds for chat completions.
    #[arg(long, env = "OMNIROUTE_MCP_COMPLETION_TIMEOUT_S", default_value_t = 120, global = true)]
    pub completion_timeout: u64,

    /// Memory limit per tool call, in MiB (a tool's manifest may set less).
    #[arg(long, env = "OMNIROUTE_MCP_CALL_MEMORY_MIB", default_value_t = 128, global = true)]
    pub call_memory_mib: usize,

    /// Audit every tool call (SQLite, or PostgreSQL with --audit-url); `off` runs unaudited, by explicit choice.
    #[arg(long, value_enum, default_value_t = AuditMode::On, global = true)]
    pub audit: AuditMode,

    /// Audit database path. Default: `audit.sqlite` in the data directory.
    #[arg(long, env = "OMNIROUTE_MCP_AUDIT_DB", global = true)]
    pub audit_db: Option<PathBuf>,

    /// The audit log on PostgreSQL (postgres://user:password@host/db), shared by several
    /// nodes, instead of the SQLite file. Put the password in the variable, not in argv.
    #[arg(long, env = "OMNIROUTE_MCP_AUDIT_URL", global = true, hide_env_values = true)]
    pub audit_url: Option<String>,

    /// While audit rows cannot be written (full disk, lost database): refuse calls, or
    /// answer them with a warning on stderr.
    #[arg(long, env = "OMNIROUTE_MCP_AUDIT_ON_FAILURE", value_enum, default_value_t = AuditFailureMode::Refuse, global = true)]
    pub audit_on_failure: AuditFailureMode,

    /// SQLite audit: `journal` (the default) appends each call's row to a journal file
    /// before answering and moves rows into audit.sqlite in batches, within 100 ms
    /// (`omniroute-mcp audit ...` imports what is pending first); `direct` commits each row
    /// into audit.sqlite before answering (about 75 µs more CPU per call), for readers that
    /// query the file themselves and must see a row the moment its call is answered.
    #[arg(long, env = "OMNIROUTE_MCP_AUDIT_WRITES", value_enum, default_value_t = AuditWrites::Journal, global = true)]
    pub audit_writes: AuditWrites,

    /// Delete audit rows older than this many days (checked hourly); the hash chain stays
    /// verifiable from a recorded anchor. Default: keep everything.
    #[arg(long, env = "OMNIROUTE_MCP_AUDIT_RETENTION_DAYS", global = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_days: Option<u32>,

    /// The state store (budget guards, ledgers, handles, spend, rate buckets): a
    /// postgres:// URL shared by several nodes, or a SQLite file. Default: `state.sqlite`
    /// in the data directory.
    #[arg(long, env = "OMNIROUTE_MCP_STATE_URL", global = true, hide_env_values = true)]
    pub state_url: Option<String>,

    /// Plugin folder: third-party tool components (`<name>.toml` + component), each
    /// loaded with at most the scopes the operator grants it. Watched while serving:
    /// a change reloads the plugins and tells clients the tool list changed.
    #[arg(long, env = "OMNIROUTE_MCP_PLUGINS", global = true)]
    pub plugins: Option<PathBuf>,

    /// The operator's grants for plugins: TOML with `[tools]` and one line per plugin,
    /// e.g. `rank_combos = ["read:combos"]`. Default: `grants.toml` in the plugin folder.
    #[arg(long = "plugin-grants", env = "OMNIROUTE_MCP_PLUGIN_GRANTS", global = true)]
    pub plugin_grants: Option<PathBuf>,

    /// Log filter for stderr (tracing syntax, e.g. `info` or `omniroute_mcp=debug`).
    #[arg(long, env = "OMNIROUTE_MCP_LOG", default_value = "info,rmcp=warn", global = true)]
    pub log: String,
}

fn settings(global: &GlobalArgs) -> anyhow::Result<Settings> {
    let env = |k: &str| std::env::var(k).ok();
    let base_url = config::resolve_base_url(&[
        global.base_url.clone(),
        env("BASE_URL"),
        env("NEXT_PUBLIC_BASE_URL"),
    ])?;
    let data_dir = match &global.data_dir {
        Some(dir) => dir.clone(),
        None => config::default_data_dir()?,
    };
    let tools_dirs = if global.tools_dirs.is_empty() && !omniroute_mcp::registry::embedded().is_empty() {
        // The built-in tools embedded in this binary (no folder needed).
        Vec::new()
    } else if global.tools_dirs.is_empty() {
        let exe = std::env::current_exe().context("cannot locate the running binary")?;
        config::default_tools_dirs(&exe)?
    } else {
        global.tools_dirs.clone()
    };
    let completion_timeout = config::completion_timeout(global.completion_timeout)?;
    let gateway_timeout = config::gateway_timeout(global.gateway_timeout)?;
    let limits = LimitPolicy {
        // Each tool's wall deadline is derived from these by class, above the
        // request timeouts, so a slow gateway reports its timeout, not a stop.
        gateway_timeout,
        completion_timeout,
        memory_bytes: global.call_memory_mib.clamp(16, 1024) * 1024 * 1024,
        ..LimitPolicy::default()
    };
    Ok(Settings {
        base_url,
        api_key: env("OMNIROUTE_API_KEY"),
        dashboard_password: env("OMNIROUTE_DASHBOARD_PASSWORD"),
        tools_dirs,
        gateway_timeout,
        completion_timeout,
        enforce_scopes: env("OMNIROUTE_MCP_ENFORCE_SCOPES").as_deref() == Some("true"),
        scopes: Grants::parse_checked(&env("OMNIROUTE_MCP_SCOPES").unwrap_or_default())
            .context("OMNIROUTE_MCP_SCOPES has a pattern that grants nothing")?,
        operator: PrincipalId::operator(env("OMNIROUTE_MCP_PRINCIPAL").as_deref().unwrap_or(auth::DEFAULT_OPERATOR))?,
        operator_spend: config::operator_spend(
            env("OMNIROUTE_MCP_SPEND_CAP").as_deref(),
            env("OMNIROUTE_MCP_UNPRICED_COMPLETION_USD").as_deref(),
            env("OMNIROUTE_MCP_DEFAULT_MAX_TOKENS").as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
        limits,
        audit_db: match global.audit {
            AuditMode::Off => None,
            AuditMode::On => Some(global.audit_db.clone().unwrap_or_else(|| data_dir.join("audit.sqlite"))),
        },
        audit_url: global.audit_url.clone().filter(|u| !u.trim().is_empty()),
        audit_options: omniroute_mcp::audit::AuditOptions {
            on_failure: match global.audit_on_failure {
                AuditFailureMode::Refuse => omniroute_mcp::audit::OnFailure::Refuse,
                AuditFailureMode::Warn => omniroute_mcp::audit::OnFailure::Warn,
            },
            retention: global.audit_retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
            journal: global.audit_writes == AuditWrites::Journal,
            ..Default::default()
        },
        state_url: global.state_url.clone().filter(|u| !u.trim().is_empty()),
        api_key_id: env("OMNIROUTE_API_KEY_ID").filter(|s| !s.is_empty()),
        plugins: global.plugins.clone().map(|dir| PluginSource::new(dir, global.plugin_grants.clone())),
        metrics: None,
        cache_dir: global.cache_dir.clone().unwrap_or_else(|| data_dir.join("cache")),
        data_dir,
    })
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Tenants { command }) = cli.command {
        return tenants_command(&cli.global, command).await;
    }
    let mut settings = settings(&cli.global)?;
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::Serve(ServeArgs { metrics: Some(addr), .. }) = &command {
        settings.metrics = Some(omniroute_mcp::telemetry::endpoint::MetricsEndpoint::from_env(*addr));
    }
    match command {
        Command::Serve(ServeArgs { http: Some(addr), tenants, allowed_hosts, allowed_origins, session_idle_timeout, session_park_after, .. }) => {
            let args = transport::http::HttpArgs {
                addr,
                tenants,
                allowed_hosts,
                allowed_origins,
                session_idle: Duration::from_secs(session_idle_timeout),
                session_park: Duration::from_secs(session_park_after),
            };
            transport::http::run(&settings, args).await
        }
        Command::Serve(ServeArgs { http: None, .. }) => transport::stdio::serve(&settings).await,
        Command::Tenants { .. } => unreachable!("handled above"),
        Command::Tools { export_describe: Some(dir), .. } => export_describe(&settings, &dir).await,
        Command::Tools { json, export_describe: None } => print_tools(&settings, json).await,
        Command::Audit { command } => audit_command(&settings, command).await,
        Command::Plugins { command } => plugins_command(settings, &cli.global, command).await,
        Command::Doctor => doctor(&settings).await,
        Command::Config { client } => print_client_config(&settings, client),
    }
}

async fn tenants_command(global: &GlobalArgs, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Add { name, scopes, tools, max_concurrent, rate_per_minute, max_sessions, file } => {
            let path = match file {
                Some(path) => path,
                None => match &global.data_dir {
                    Some(dir) => dir.join("tenants.toml"),
                    None => config::default_data_dir()?.join("tenants.toml"),
                },
            };
            let new = auth::tenants::NewTenant {
                id: &name,
                scopes: &scopes,
                tools: tools.as_deref(),
                max_concurrent,
                rate_per_minute,
                max_sessions,
            };
            let token = auth::tenants::add_tenant(&path, &new).map_err(anyhow::Error::msg)?;
            eprintln!(
                "Added tenant {name} to {}. Its bearer token is below; it is shown only this once (the file keeps only its SHA-256):",
                path.display()
            );
            println!("{token}");
            Ok(())
        }
        TenantsCommand::Revoke { principal, reason } => {
            let id = omniroute_mcp::auth::revocations::principal_from_cli(&principal).map_err(anyhow::Error::msg)?;
            let (store, location) = open_state(global).await?;
            store.revoke(id.as_str(), &reason).await.with_context(|| format!("revoking {id} in {location}"))?;
            store.close().await.ok();
            eprintln!("Revoked {id} in {location}: every server using this state store refuses it within about a second.");
            Ok(())
        }
        TenantsCommand::Restore { principal } => {
            let id = omniroute_mcp::auth::revocations::principal_from_cli(&principal).map_err(anyhow::Error::msg)?;
            let (store, location) = open_state(global).await?;
            let restored = store.restore(id.as_str()).await.with_context(|| format!("restoring {id} in {location}"))?;
            store.close().await.ok();
            if restored {
                eprintln!("Restored {id} in {location}.");
                Ok(())
            } else {
                anyhow::bail!("{id} is not revoked in {location}; `omniroute-mcp tenants revoked` lists the revoked principals")
            }
        }
        TenantsCommand::Revoked => {
            let (store, location) = open_state(global).await?;
            let list = store.revocations().await.with_context(|| format!("reading revocations from {location}"))?;
            store.close().await.ok();
            eprintln!("{} revoked principal(s) in {location}", list.len());
            for r in list {
                println!("{}\t{}\t{}", r.principal, omniroute_mcp::session::iso8601_ms(r.revoked_ms), r.reason);
            }
            Ok(())
        }
    }
}

/// The state store the global options name (`--state-url`, else `state.sqlite`
/// in the data folder), and how to name it in messages (never a password).
async fn open_state(global: &GlobalArgs) -> anyhow::Result<(omniroute_mcp::state::Store, String)> {
    use omniroute_mcp::state::{Retention, StateLocation};
    let data_dir = match &global.data_dir {
        Some(dir) => dir.clone(),
        None => config::default_data_dir()?,
    };
    let location = StateLocation::from_setting(global.state_url.as_deref(), &data_dir);
    let named = match &location {
        StateLocation::Sqlite(path) => path.display().to_string(),
        StateLocation::Postgres(_) => "the PostgreSQL state store (--state-url)".to_owned(),
    };
    let store = omniroute_mcp::state::open(&location, Retention::default())
        .await
        .with_context(|| format!("opening {named}"))?;
    Ok((store, named))
}

async fn print_tools(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let app = App::start(settings).await?;
    app.plugins_loaded().await;
    let registry = app.registry();
    if json {
        println!("{}", serde_json::to_string_pretty(&tools_json(settings, &registry))?);
        return Ok(());
    }
    let mut sources = if settings.tools_dirs.is_empty() {
        omniroute_mcp::registry::EMBEDDED_LABEL.to_owned()
    } else {
        join_paths(&settings.tools_dirs)
    };
    if let Some(plugins) = &settings.plugins {
        sources.push_str(&format!(" and plugins from {}", plugins.dir.display()));
    }
    println!("Tools ({} loaded, from {sources}):", registry.tools().len());
    println!("  {:<36} {:<8} {:<40} {}", "NAME", "ORIGIN", "SCOPES", "TITLE");
    for tool in registry.tools() {
        println!(
            "  {:<36} {:<8} {:<40} {}",
            tool.name(),
            tool.origin.label(),
            scope_list(&tool.scopes),
            tool.description.title.as_deref().unwrap_or("")
        );
    }
    if !registry.refused().is_empty() {
        println!("\nRefused:");
        for r in registry.refused() {
            println!("  {}: {}", r.path.display(), r.reason);
        }
    }
    for warning in registry.warnings() {
        println!("\nWarning: {warning}");
    }
    println!(
        "\nScopes: enforcement {} (OMNIROUTE_MCP_ENFORCE_SCOPES), granted: {}",
        if settings.enforce_scopes { "on" } else { "off: every tool gets the scopes it declares" },
        if settings.scopes.patterns().is_empty() { "(none)".to_owned() } else { settings.scopes.patterns().join(",") }
    );
    println!("\nCapability table (scope -> gateway requests it allows):");
    for scope in Scope::ALL {
        println!("  {scope}");
        let rows: Vec<_> = CAPABILITY_TABLE.iter().filter(|r| r.scope == scope).collect();
        if rows.is_empty() {
            println!("    (no gateway route: host state only)");
        }
        for row in rows {
            let body = if row.body.is_some() { " (body: only what its JSON Schema allows)" } else { "" };
            println!("    {:<6} {:<32} {}{body}", row.method.as_str(), row.pattern, row.purpose);
        }
    }
    Ok(())
}

/// `doctor`: every check, then what to fix; an error (exit 1) if any failed.
async fn doctor(settings: &Settings) -> anyhow::Result<()> {
    use omniroute_mcp::doctor;
    println!("omniroute-mcp {} doctor", env!("CARGO_PKG_VERSION"));
    let checks = doctor::run(settings).await;
    print!("{}", doctor::render(&checks));
    match doctor::problems(&checks) {
        0 => {
            println!("No problems found.");
            Ok(())
        }
        n => anyhow::bail!("doctor found {n} problem(s); each has its fix above"),
    }
}

/// `config <client>`: the snippet with this binary's absolute path.
fn print_client_config(settings: &Settings, client: omniroute_mcp::client_config::Client) -> anyhow::Result<()> {
    use omniroute_mcp::client_config::{self, SnippetEnv};
    let exe = std::env::current_exe().context("cannot locate the running binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let env = SnippetEnv {
        base_url: settings.base_url.as_str().trim_end_matches('/').to_owned(),
        api_key: settings.api_key.as_deref().is_some_and(|k| !k.is_empty()),
        dashboard_password: settings.dashboard_password.as_deref().is_some_and(|p| !p.is_empty()),
    };
    eprintln!("{}", client_config::where_it_goes(client));
    println!("{}", client_config::snippet(client, &exe, &env));
    if env.api_key || env.dashboard_password {
        eprintln!("Replace the <...> placeholders with your secrets; they are not copied from this shell.");
    }
    Ok(())
}

/// `tools --export-describe DIR`: each built-in tool's describe() output,
/// validated by loading it, keyed by its component's sha256, so the build
/// can embed it and a cold start needs no compile. Fails if a tool was refused.
async fn export_describe(settings: &Settings, dir: &std::path::Path) -> anyhow::Result<()> {
    use omniroute_mcp::registry::BuildDescribe;
    let app = App::start(settings).await?;
    let registry = app.registry();
    if let Some(r) = registry.refused().first() {
        anyhow::bail!("{} was refused: {}", r.path.display(), r.reason);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for tool in registry.tools().iter().filter(|t| t.origin == Origin::Builtin) {
        let entry = BuildDescribe { sha256: tool.manifest.sha256.clone(), describe: tool.describe_json().to_owned() };
        let path = dir.join(format!("{}.describe.json", tool.name()));
        let text = serde_json::to_string_pretty(&entry)? + "\n";
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// `tools --json`: what the registry loaded, as machine-readable as the
/// text listing (the docs test compares `docs/tools/*.md` against it).
fn tools_json(settings: &Settings, registry: &Registry) -> serde_json::Value {
    use serde_json::json;
    let names = |scopes: &[Scope]| scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>();
    let tools: Vec<_> = registry
        .tools()
        .iter()
        .map(|tool| {
            let d = &tool.description;
            let a = &d.annotations;
            json!({
                "name": tool.name(),
                "origin": tool.origin.label(),
                "title": d.title,
                "description": d.description,
                "scopes": names(&tool.scopes),
                "declaredScopes": names(&d.scopes),
                "annotations": {
                    "readOnlyHint": a.read_only_hint,
                    "destructiveHint": a.destructive_hint,
                    "idempotentHint": a.idempotent_hint,
                    "openWorldHint": a.open_world_hint,
                },
                "inputSchema": d.input_schema,
                "outputSchema": d.output_schema,
                "auditOutput": d.audit_output,
                "limits": {
                    "wallMs": tool.limits.wall.as_millis() as u64,
                    "wallMaxMs": tool.limits.wall_max.as_millis() as u64,
                    "cpuMs": tool.limits.cpu.as_millis() as u64,
                    "memoryBytes": tool.limits.memory_bytes,
                    "outputBytes": tool.limits.output_bytes,
                    "gatewayRequests": tool.limits.gateway_requests,
                },
                "component": tool.path,
                "sha256": tool.manifest.sha256,
            })
        })
        .collect();
    json!({
        "tools": tools,
        "refused": registry.refused().iter().map(|r| json!({ "path": r.path, "reason": r.reason, "plugin": r.plugin })).collect::<Vec<_>>(),
        "warnings": registry.warnings(),
        "scopes": {
            "enforced": settings.enforce_scopes,
            "granted": settings.scopes.patterns(),
        },
        "capabilityTable": CAPABILITY_TABLE
            .iter()
            .map(|row| json!({
                "scope": row.scope.as_str(),
                "method": row.method.as_str(),
                "path": row.pattern,
                "purpose": row.purpose,
            }))
            .collect::<Vec<_>>(),
    })
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

async fn audit_command(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    use omniroute_mcp::audit::{self, AuditReader, AuditTarget, terminal_safe};
    let path = settings
        .audit_db
        .clone()
        .context("auditing is off (--audit off); there is no audit log to read")?;
    let target = AuditTarget::from_settings(settings.audit_url.as_deref(), path);
    let conn;
    let reader = match &target {
        AuditTarget::Sqlite(path) => {
            anyhow::ensure!(path.exists(), "no audit database at {} yet (it is created when the server starts)", path.display());
            conn = audit::open_connection(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            AuditReader::Sqlite(&conn)
        }
        AuditTarget::Postgres(url) => audit::postgres_reader(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the audit log at {}: {e}", target.describe()))?,
    };
    match command {
        AuditCommand::Recent { limit, tool, failed, json } => {
            let rows = reader
                .recent(&audit::RecentFilter { limit: Some(limit), tool, failed_only: failed })
                .await
                .map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            // Tool names, errors and summaries are untrusted text: escaped so a
            // newline cannot forge a row and no escape sequence reaches the terminal.
            println!("{:<6} {:<20} {:<32} {:<4} {:>7}  {}", "ID", "CREATED (UTC)", "TOOL", "OK", "MS", "ERROR / OUTPUT");
            for r in rows {
                let mut detail = r.error_code.or(r.output_summary).unwrap_or_default();
                if let Some(n) = r.refusal_count {
                    detail = format!("[x{n}] {detail}");
                }
                let detail: String = terminal_safe(&detail).chars().take(80).collect();
                let tool: String = terminal_safe(&r.tool_name).chars().take(64).collect();
                println!(
                    "{:<6} {:<20} {:<32} {:<4} {:>7}  {}",
                    r.id,
                    terminal_safe(&r.created_at),
                    tool,
                    if r.success { "yes" } else { "no" },
                    r.duration_ms.unwrap_or(0),
                    detail
                );
            }
        }
        AuditCommand::Stats { since, json } => {
            let window = audit::parse_since(&since).map_err(anyhow::Error::msg)?;
            let s = reader.stats(Some(window)).await.map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            println!("Calls in the last {since}: {}", s.total_calls);
            println!("Success rate: {}", s.success_rate.map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0)));
            println!("Average duration: {}", s.avg_duration_ms.map_or("n/a".into(), |d| format!("{d:.1} ms")));
            println!("Top tools:");
            for t in s.top_tools {
                println!("  {:<36} {}", terminal_safe(&t.tool), t.count);
            }
        }
        AuditCommand::Verify { json } => {
            let report = reader.verify().await.map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("Audit log: {}", target.describe());
                match report.anchor_through_id {
                    Some(id) => println!("Chain starts after pruned row {id} (the recorded anchor)"),
                    None => println!("Chain starts at the first row"),
                }
                println!("Rows checked: {}", report.rows);
                println!("Head hash: {}", report.head_hash);
            }
            if let (Some(id), Some(reason)) = (report.first_broken_id, &report.reason) {
                anyhow::bail!("the audit chain is broken at row {id}: {reason}");
            }
            if !json {
                println!("OK: every row is intact and in order");
            }
        }
        AuditCommand::Export { since, format: ExportFormat::Jsonl } => {
            let window = since.as_deref().map(audit::parse_since).transpose().map_err(anyhow::Error::msg)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            reader
                .export(window, |row| {
                    use std::io::Write as _;
                    let line = serde_json::to_string(row).map_err(|e| e.to_string())?;
                    writeln!(out, "{line}").map_err(|e| e.to_string())
                })
                .await
                .map_err(anyhow::Error::msg)?;
            std::io::Write::flush(&mut out)?;
        }
    }
    Ok(())
}

fn scope_list(scopes: &[Scope]) -> String {
    if scopes.is_empty() { "(none)".to_owned() } else { join_scopes(scopes).replace(", ", ",") }
}

async fn plugins_command(mut settings: Settings, global: &GlobalArgs, command: PluginsCommand) -> anyhow::Result<()> {
    let no_folder = || {
        anyhow::anyhow!("no plugin folder: pass --plugins DIR or set OMNIROUTE_MCP_PLUGINS (see `omniroute-mcp plugins --help`)")
    };
    match command {
        PluginsCommand::Reload => {
            let source = settings.plugins.ok_or_else(no_folder)?;
            let marker = source.reload_marker();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            std::fs::write(&marker, format!("{stamp}\n"))
                .with_context(|| format!("cannot write {} (is the plugin folder writable?)", marker.display()))?;
            eprintln!(
                "Asked servers watching {} to reload (wrote {}); they pick it up within a second.",
                source.dir.display(),
                marker.display()
            );
            Ok(())
        }
        PluginsCommand::List { json } => {
            let source = settings.plugins.clone().ok_or_else(no_folder)?;
            let app = App::start(&settings).await?;
            app.plugins_loaded().await;
            print_plugins(&app.registry(), &source, json)?;
            Ok(())
        }
        PluginsCommand::Verify { dir, json } => {
            anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
            let source = PluginSource::new(dir, global.plugin_grants.clone());
            settings.plugins = Some(source.clone());
            let app = App::start(&settings).await?;
            app.plugins_loaded().await;
            let refused = print_plugins(&app.registry(), &source, json)?;
            if refused > 0 {
                anyhow::bail!("{refused} plugin(s) in {} would be refused; see the reasons above", source.dir.display());
            }
            Ok(())
        }
    }
}

/// Prints the plugin part of `registry`; returns how many were refused.
fn print_plugins(registry: &Registry, source: &PluginSource, json: bool) -> anyhow::Result<usize> {
    let plugins: Vec<_> = registry
        .tools()
        .iter()
        .filter_map(|t| match &t.origin {
            Origin::Plugin { requested, withheld } => Some((t, requested, withheld)),
            Origin::Builtin => None,
        })
        .collect();
    let refused: Vec<_> = registry.refused().iter().filter(|r| r.plugin).collect();
    if json {
        let names = |scopes: &[Scope]| scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>();
        let value = serde_json::json!({
            "folder": source.dir,
            "grants": source.grants_file,
            "loaded": plugins.iter().map(|(t, requested, withheld)| serde_json::json!({
                "name": t.name(),
                "version": t.manifest.version,
                "component": t.path,
                "sha256": t.manifest.sha256,
                "requested": names(requested),
                "granted": names(&t.scopes),
                "withheld": names(withheld),
            })).collect::<Vec<_>>(),
            "refused": refused.iter().map(|r| serde_json::json!({ "path": r.path, "reason": r.reason })).collect::<Vec<_>>(),
            "warnings": registry.warnings(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(refused.len());
    }
    println!("Plugins in {} (grants: {}):", source.dir.display(), source.grants_file.display());
    if plugins.is_empty() {
        println!("  (none loaded)");
    }
    for (t, requested, withheld) in &plugins {
        println!("  {} {}  loaded from {}", t.name(), t.manifest.version, t.path.display());
        println!("      requested: {}", scope_list(requested));
        println!("      granted:   {}", scope_list(&t.scopes));
        if !withheld.is_empty() {
            println!("      withheld:  {} (not granted by the operator)", scope_list(withheld));
        }
    }
    if !refused.is_empty() {
        println!("Refused:");
        for r in &refused {
            println!("  {}: {}", r.path.display(), r.reason);
        }
    }
    for warning in registry.warnings() {
        println!("Warning: {warning}");
    }
    Ok(refused.len())
}
