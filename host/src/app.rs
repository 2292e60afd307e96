//! Everything shared by all MCP sessions of one server process.

use crate::audit::AuditLog;
use crate::capability::Grants;
use crate::config::Settings;
use crate::gateway::{Broker, BrokerConfig, Credentials};
use crate::registry::{LoadOptions, Registry};
use crate::runtime::{CallContext, Runtime};
use crate::session::Session;
use crate::session::ledger::RoutingIndex;
use std::sync::Arc;

/// The loaded server: sandbox runtime, tools, gateway broker and grants.
pub struct App {
    pub runtime: Runtime,
    pub registry: Registry,
    pub broker: Arc<Broker>,
    /// Completions by request id, across sessions (explain_route).
    pub routing_index: Arc<RoutingIndex>,
    /// What the operator granted.
    pub grants: Grants,
    /// Whether missing scopes refuse a call (`OMNIROUTE_MCP_ENFORCE_SCOPES=true`).
    pub enforce_scopes: bool,
    /// Where the grants came from, as the original names it (`env`, `none`).
    pub grants_source: &'static str,
    /// Who is calling, for denial texts (stdio: `anonymous`, as the original).
    pub caller: String,
    /// The audit log (or why it is unusable).
    pub audit: AuditLog,
    /// `OMNIROUTE_API_KEY_ID`, copied into audit rows.
    pub api_key_id: Option<String>,
}

/// A failure that prevents the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error(transparent)]
    Credential(#[from] crate::gateway::InvalidCredential),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
}

impl App {
    /// Builds the broker and runtime and loads every tool.
    pub async fn start(settings: &Settings) -> Result<Arc<App>, StartError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| StartError::DataDir(settings.data_dir.display().to_string(), e))?;
        let mut broker_config = BrokerConfig::new(settings.base_url.clone());
        broker_config.credentials = Credentials::new(settings.api_key.as_deref())?;
        broker_config.dashboard_password = settings.dashboard_password.clone();
        broker_config.request_timeout = settings.gateway_timeout;
        broker_config.completion_timeout = settings.completion_timeout;
        let broker = Arc::new(Broker::new(broker_config)?);

        let runtime = Runtime::new(Some(&settings.cache_dir))?;
        let describe_ctx = CallContext {
            tool: Arc::from(""),
            caller: Arc::from("host"),
            caps: Default::default(),
            broker: broker.clone(),
            session: Arc::new(Session::new("describe")),
            journal: Default::default(),
            routing_index: Arc::new(RoutingIndex::new(1)),
            progress: None,
        };
        let registry = Registry::load(LoadOptions {
            runtime: &runtime,
            dirs: &settings.tools_dirs,
            limits: settings.limits,
            describe_ctx,
        })
        .await;

        let audit = match &settings.audit_db {
            Some(path) => AuditLog::open(path),
            None => AuditLog::off(),
        };
        let (grants, source) = if settings.enforce_scopes {
            let source = if settings.scopes.patterns().is_empty() { "none" } else { "env" };
            (settings.scopes.clone(), source)
        } else {
            (Grants::all(), "env")
        };
        Ok(Arc::new(App {
            runtime,
            registry,
            broker,
            routing_index: Arc::new(RoutingIndex::default()),
            grants,
            enforce_scopes: settings.enforce_scopes,
            grants_source: source,
            caller: "anonymous".to_owned(),
            audit,
            api_key_id: settings.api_key_id.clone(),
        }))
    }
}
