//! Everything shared by all MCP sessions of one server process.

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::gateway::{Broker, BrokerConfig, Credentials};
use crate::registry::{LoadOptions, PluginSource, Registry, ToolFolder};
use crate::runtime::{CallContext, LimitPolicy, Runtime};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The loaded server: sandbox runtime, tools, gateway broker and audit log.
/// Who may call what is not here: each call carries its principal.
pub struct App {
    runtime: Runtime,
    /// The tools on offer. A plugin reload swaps the whole registry; a call
    /// in flight keeps the snapshot (and the tool entry) it started with.
    registry: RwLock<Arc<Registry>>,
    /// The built-in tools, loaded once and shared by every registry snapshot.
    builtins: Arc<Registry>,
    /// The plugin folder and grants file (`--plugins`), if any.
    plugins: Option<PluginSource>,
    /// Bumped whenever a reload changes what is offered; each MCP session
    /// watches it to send `notifications/tools/list_changed`.
    tools_changed: tokio::sync::watch::Sender<u64>,
    /// True once the plugin folder (if any) has been loaded once.
    plugins_loaded: tokio::sync::watch::Sender<bool>,
    /// One plugin load at a time, so an older load never replaces a newer one.
    plugin_load: tokio::sync::Mutex<()>,
    /// The server's per-call limits (manifests may tighten them).
    limits: LimitPolicy,
    /// The context `describe()` runs in: no scopes, throwaway session.
    describe_ctx: CallContext,
    broker: Arc<Broker>,
    /// The audit log (or why it is unusable).
    audit: AuditLog,
    /// `OMNIROUTE_API_KEY_ID`, copied into audit rows.
    api_key_id: Option<String>,
    /// State that outlives calls, processes and nodes (SQLite or
    /// PostgreSQL).
    state: crate::state::Store,
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
    #[error("cannot open the state store: {0}")]
    State(#[from] crate::state::StoreError),
    #[error(transparent)]
    Metrics(#[from] crate::telemetry::endpoint::EndpointError),
}

impl App {
    /// Builds the broker and runtime and loads the built-in tools. The
    /// plugin folder, if any, is loaded in the background: a plugin cannot
    /// delay the built-ins, and its tools arrive with `tools/list_changed`
    /// (see [`App::plugins_loaded`]).
    pub async fn start(settings: &Settings) -> Result<Arc<App>, StartError> {
        crate::db::files::private_dir(&settings.data_dir)
            .map_err(|e| StartError::DataDir(settings.data_dir.display().to_string(), e))?;
        let state = crate::state::open(
            &crate::state::StateLocation::from_setting(settings.state_url.as_deref(), &settings.data_dir),
            crate::state::Retention::default(),
        )
        .await?;
        spawn_state_maintenance(&state);
        let mut broker_config = BrokerConfig::new(settings.base_url.clone());
        broker_config.credentials = Credentials::new(settings.api_key.as_deref())?;
        broker_config.dashboard_password = settings.dashboard_password.clone();
        broker_config.request_timeout = settings.gateway_timeout;
        broker_config.completion_timeout = settings.completion_timeout;
        let broker = Arc::new(Broker::new(broker_config)?);

        let runtime = Runtime::new(Some(&settings.cache_dir))?;
        let describe_ctx = CallContext {
            tool: Arc::from(""),
            caps: Default::default(),
            broker: broker.clone(),
            store: state.clone(),
            bucket: Arc::new(std::sync::Mutex::new(crate::session::bucket::CallBucket::default_of(Arc::from("host:describe")))),
            default_guard: None,
            spend: Default::default(),
            journal: Default::default(),
            progress: None,
        };
        let builtins = Arc::new(
            Registry::load(LoadOptions {
                runtime: &runtime,
                dirs: &settings.tools_dirs,
                limits: settings.limits,
                describe_ctx: describe_ctx.clone(),
            })
            .await,
        );

        let audit = match &settings.audit_db {
            Some(path) => {
                let target = crate::audit::AuditTarget::from_settings(settings.audit_url.as_deref(), path.clone());
                AuditLog::open_target(&target, settings.audit_options).await
            }
            None => AuditLog::off(),
        };
        let app = Arc::new(App {
            runtime,
            registry: RwLock::new(builtins.clone()),
            builtins,
            plugins: settings.plugins.clone(),
            tools_changed: tokio::sync::watch::Sender::new(0),
            plugins_loaded: tokio::sync::watch::Sender::new(settings.plugins.is_none()),
            plugin_load: tokio::sync::Mutex::new(()),
            limits: settings.limits,
            describe_ctx,
            broker,
            audit,
            api_key_id: settings.api_key_id.clone(),
            state,
        });
        // Off unless the standard OTEL_EXPORTER_OTLP_* variables configure it.
        crate::telemetry::trace::start_from_env();
        if let Some(endpoint) = &settings.metrics {
            let weak = Arc::downgrade(&app);
            let snapshot: crate::telemetry::endpoint::ReadSnapshot = Arc::new(move || {
                let weak = weak.clone();
                Box::pin(async move {
                    let app = weak.upgrade()?;
                    let (tools_loaded, tools_refused) = {
                        let registry = app.registry();
                        (registry.tools().len(), registry.refused().len())
                    };
                    let handles = match app.state.handle_counts().await {
                        Ok(counts) => Some(counts),
                        Err(e) => {
                            tracing::warn!(error = %e, "the session_handles gauge could not be read from the state store");
                            None
                        }
                    };
                    Some(crate::telemetry::endpoint::Snapshot {
                        tools_loaded,
                        tools_refused,
                        audit_queue: app.audit.queue_depth(),
                        handles,
                    })
                })
            });
            crate::telemetry::endpoint::spawn(snapshot, endpoint).await?;
        }
        if app.plugins.is_some() {
            let loader = app.clone();
            tokio::spawn(async move {
                loader.reload_plugins().await;
                loader.plugins_loaded.send_replace(true);
            });
        }
        Ok(app)
    }

    /// Waits until the plugin folder (if any) has been loaded once; for
    /// commands that print or check what loads, not for serving.
    pub async fn plugins_loaded(&self) {
        let mut loaded = self.plugins_loaded.subscribe();
        // The sender lives as long as `self`, so this only ends when loaded.
        let _ = loaded.wait_for(|done| *done).await;
    }

    /// Whether the plugin folder (if any) has been loaded once (`/readyz`).
    pub fn plugins_ready(&self) -> bool {
        *self.plugins_loaded.borrow()
    }
}

/// The registry to serve: the built-ins plus the plugins of `source`.
async fn compose(
    runtime: &Runtime,
    builtins: &Arc<Registry>,
    source: &PluginSource,
    limits: LimitPolicy,
    describe_ctx: &CallContext,
) -> Arc<Registry> {
    let opts = LoadOptions { runtime, dirs: &[], limits, describe_ctx: describe_ctx.clone() };
    Arc::new(Registry::with_plugins(builtins, opts, source).await)
}

/// How often idle state is pruned and stale reservations are settled.
const STATE_PRUNE: Duration = Duration::from_secs(600);

/// Prunes the state store now and then (see `crate::state::Retention`).
fn spawn_state_maintenance(state: &crate::state::Store) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATE_PRUNE);
        loop {
            tick.tick().await;
            match state.prune(crate::db::now_ms()).await {
                Ok(report) if report != crate::state::PruneReport::default() => tracing::info!(?report, "pruned idle state"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning the state store failed"),
            }
        }
    });
}

/// How often the plugin folder and grants file are looked at for changes.
const PLUGIN_POLL: Duration = Duration::from_secs(1);

impl App {
    /// The sandbox the tools run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The only way to the gateway.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The audit log (or why it is unusable).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The state store (SQLite or PostgreSQL).
    pub fn state(&self) -> &crate::state::Store {
        &self.state
    }

    /// `OMNIROUTE_API_KEY_ID`, copied into audit rows.
    pub fn api_key_id(&self) -> Option<&str> {
        self.api_key_id.as_deref()
    }

    /// The plugin folder and grants file (`--plugins`), if any.
    pub fn plugins(&self) -> Option<&PluginSource> {
        self.plugins.as_ref()
    }

    /// The current tools. Hold the `Arc` for the length of one request.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A receiver that changes whenever the tool list does.
    pub fn tools_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tools_changed.subscribe()
    }

    /// Reloads the plugin folder and grants (built-ins stay as they are) and
    /// swaps the registry in. If the tool list changed, every session is
    /// told. Unchanged components come from the compile cache, so a reload
    /// costs milliseconds.
    pub async fn reload_plugins(&self) {
        let Some(source) = &self.plugins else { return };
        let _one_at_a_time = self.plugin_load.lock().await;
        let next = compose(&self.runtime, &self.builtins, source, self.limits, &self.describe_ctx).await;
        let changed = next.listing() != self.registry().listing();
        let tools = next.tools().len();
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = next;
        if changed {
            self.tools_changed.send_modify(|n| *n += 1);
        }
        tracing::info!(tools, changed, dir = %source.dir.display(), "plugins reloaded");
    }

    /// With a plugin folder: reloads when the folder or the grants file
    /// changes (polled every second; `plugins reload` touches `.reload` in
    /// the folder) or on SIGHUP. Without one: does nothing.
    pub fn watch_plugins(self: &Arc<Self>) {
        let Some(source) = self.plugins.clone() else { return };
        let app = self.clone();
        tokio::spawn(async move {
            // Windows has no SIGHUP: the folder poll (and `plugins reload`) still reloads.
            let mut hangup = crate::hangup::Hangup::listen("the plugin folder");
            let mut seen = plugin_state(&source);
            let mut tick = tokio::time::interval(PLUGIN_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let signalled = tokio::select! {
                    _ = tick.tick() => false,
                    () = hangup.received() => true,
                };
                let now = plugin_state(&source);
                if signalled || now != seen {
                    seen = now;
                    app.reload_plugins().await;
                }
            }
        });
    }
}

/// Everything whose change means "reload": the folder's entries (names,
/// sizes, mtimes, the `.reload` marker included) and the grants file.
fn plugin_state(source: &PluginSource) -> (Option<Vec<crate::registry::FileStamp>>, Option<(u64, Option<std::time::SystemTime>)>) {
    let folder = ToolFolder::open(&source.dir).and_then(|f| f.stamps()).ok();
    let grants = std::fs::metadata(&source.grants_file).ok().map(|m| (m.len(), m.modified().ok()));
    (folder, grants)
}
