//! `omniroute-mcp doctor`: checks what a first run depends on (the gateway
//! URL, the dashboard login, the API key on a `/v1` route, the data folder,
//! the audit database) and says for each problem what to change. It sends
//! the same requests the tools would, through the same broker.

use crate::capability::{CapabilitySet, Method, Scope};
use crate::config::Settings;
use crate::gateway::probe::{self, ProbeOutcome};
use crate::gateway::{Broker, BrokerConfig, Credentials, GatewayError, GatewayRequest};
use std::time::Duration;

/// How long each gateway check waits.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but worth knowing (auditing off, no API key in use).
    Note,
    /// A problem: the server will not work as expected until it is fixed.
    Fail,
    /// Not checked because an earlier check failed.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `gateway`, `dashboard`, `api key`, `data folder`, `audit`.
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to change, for a problem.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Check { name, status, detail: detail.into(), fix: None }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check in order; gateway checks are skipped when the gateway
/// does not answer.
pub async fn run(settings: &Settings) -> Vec<Check> {
    let mut checks = vec![tools_check(settings)];
    let gateway = gateway_check(settings).await;
    let reachable = gateway.status == Status::Ok;
    checks.push(gateway);
    if reachable {
        match broker(settings) {
            Ok(broker) => {
                checks.push(dashboard_check(settings, &broker).await);
                checks.push(api_key_check(settings, &broker).await);
            }
            Err(e) => checks.push(Check::fail(
                "credentials",
                format!("the gateway client cannot be built: {e}"),
                "check OMNIROUTE_API_KEY (printable characters only, no newline)",
            )),
        }
    } else {
        for name in ["dashboard", "api key"] {
            checks.push(Check::new(name, Status::Skipped, "not checked: the gateway does not answer"));
        }
    }
    checks.push(data_dir_check(settings));
    checks.push(audit_check(settings).await);
    checks
}

/// How many checks found a problem.
pub fn problems(checks: &[Check]) -> usize {
    checks.iter().filter(|c| c.status == Status::Fail).count()
}

/// Where the built-in tools come from: embedded in this binary, or a folder.
fn tools_check(settings: &Settings) -> Check {
    let embedded = crate::registry::embedded().len();
    if settings.tools_dirs.is_empty() {
        return Check::new("tools", Status::Ok, format!("{embedded} built-in tools embedded in this binary"));
    }
    let dirs: Vec<String> = settings.tools_dirs.iter().map(|d| d.display().to_string()).collect();
    Check::new(
        "tools",
        Status::Note,
        format!("built-in tools from {} (--tools-dir / OMNIROUTE_MCP_TOOLS_DIR); this binary embeds {embedded}", dirs.join(", ")),
    )
}

async fn gateway_check(settings: &Settings) -> Check {
    let url = settings.base_url.as_str().trim_end_matches('/');
    match probe::probe(&settings.base_url, CHECK_TIMEOUT).await {
        ProbeOutcome::Reachable { version } => Check::new(
            "gateway",
            Status::Ok,
            format!("OmniRoute {} answers at {url}", version.as_deref().unwrap_or("(version not given)")),
        ),
        outcome => Check::fail(
            "gateway",
            probe::message(&settings.base_url, &outcome),
            "set OMNIROUTE_BASE_URL (or --base-url) to your gateway's URL, e.g. http://localhost:20128, and check that it runs",
        ),
    }
}

fn broker(settings: &Settings) -> Result<Broker, String> {
    let mut config = BrokerConfig::new(settings.base_url.clone());
    config.credentials = Credentials::new(settings.api_key.as_deref()).map_err(|e| e.to_string())?;
    config.dashboard_password = settings.dashboard_password.clone();
    config.request_timeout = CHECK_TIMEOUT;
    config.connect_timeout = CHECK_TIMEOUT;
    Broker::new(config).map_err(|e| e.to_string())
}

async fn get(broker: &Broker, scope: Scope, path: &str) -> Result<u16, GatewayError> {
    let request = GatewayRequest { method: Method::Get, path: path.to_owned(), query: Vec::new(), body: None };
    broker.send(&CapabilitySet::new([scope]), &request).await.map(|r| r.status)
}

async fn dashboard_check(settings: &Settings, broker: &Broker) -> Check {
    const NAME: &str = "dashboard";
    let password_set = settings.dashboard_password.as_deref().is_some_and(|p| !p.is_empty());
    match get(broker, Scope::ReadCombos, "/api/combos").await {
        Ok(200) if password_set => Check::new(NAME, Status::Ok, "logged in with OMNIROUTE_DASHBOARD_PASSWORD; GET /api/combos answered 200"),
        Ok(200) => Check::new(NAME, Status::Ok, "management routes answer without a login (the gateway has no dashboard password); GET /api/combos answered 200"),
        Ok(status @ (401 | 403)) => Check::fail(
            NAME,
            format!("GET /api/combos answered HTTP {status}: the gateway wants a dashboard login"),
            if password_set {
                "OMNIROUTE_DASHBOARD_PASSWORD was not accepted; set it to the gateway's dashboard password"
            } else {
                "set OMNIROUTE_DASHBOARD_PASSWORD to the gateway's dashboard password"
            },
        ),
        Ok(status) => Check::fail(
            NAME,
            format!("GET /api/combos answered HTTP {status}"),
            "check that OMNIROUTE_BASE_URL points at the OmniRoute gateway itself (not a proxy in front of it)",
        ),
        Err(GatewayError::Auth(message)) => Check::fail(
            NAME,
            message,
            if password_set {
                "set OMNIROUTE_DASHBOARD_PASSWORD to the gateway's dashboard password (after a lockout, wait until it ends)"
            } else {
                "set OMNIROUTE_DASHBOARD_PASSWORD to the gateway's dashboard password"
            },
        ),
        Err(e) => Check::fail(NAME, format!("GET /api/combos failed: {e}"), "check that the gateway runs and answers at OMNIROUTE_BASE_URL"),
    }
}

async fn api_key_check(settings: &Settings, broker: &Broker) -> Check {
    const NAME: &str = "api key";
    let key_set = settings.api_key.as_deref().is_some_and(|k| !k.is_empty());
    match get(broker, Scope::ReadModels, "/v1/models").await {
        Ok(200) if key_set => Check::new(NAME, Status::Ok, "OMNIROUTE_API_KEY accepted: GET /v1/models answered 200"),
        Ok(200) => Check::new(
            NAME,
            Status::Note,
            "GET /v1/models answered 200 without an API key (the gateway does not require one); set OMNIROUTE_API_KEY if it will",
        ),
        Ok(status @ (401 | 403)) => Check::fail(
            NAME,
            format!("GET /v1/models answered HTTP {status}"),
            if key_set {
                "the gateway refused OMNIROUTE_API_KEY: create a key in the dashboard (API Manager) and set it"
            } else {
                "the gateway requires an API key on /v1 routes: set OMNIROUTE_API_KEY to a key from the dashboard (API Manager)"
            },
        ),
        Ok(status) => Check::fail(
            NAME,
            format!("GET /v1/models answered HTTP {status}"),
            "check that OMNIROUTE_BASE_URL points at the OmniRoute gateway itself",
        ),
        Err(e) => Check::fail(NAME, format!("GET /v1/models failed: {e}"), "check that the gateway runs and answers at OMNIROUTE_BASE_URL"),
    }
}

fn data_dir_check(settings: &Settings) -> Check {
    const NAME: &str = "data folder";
    let dir = &settings.data_dir;
    let fix = "set OMNIROUTE_MCP_DATA_DIR (or --data-dir) to a folder this user can write";
    if let Err(e) = crate::db::files::private_dir(dir) {
        return Check::fail(NAME, format!("cannot create {}: {e}", dir.display()), fix);
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"ok") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Check::new(NAME, Status::Ok, format!("{} is writable", dir.display()))
        }
        Err(e) => Check::fail(NAME, format!("cannot write in {}: {e}", dir.display()), fix),
    }
}

async fn audit_check(settings: &Settings) -> Check {
    const NAME: &str = "audit";
    let Some(path) = &settings.audit_db else {
        return Check::new(NAME, Status::Note, "auditing is off (--audit off): tool calls are not recorded");
    };
    match &settings.audit_url {
        Some(url) => match crate::audit::postgres_reader(url).await {
            Ok(_) => Check::new(NAME, Status::Ok, "the PostgreSQL audit log opens"),
            Err(e) => Check::fail(
                NAME,
                format!("cannot open the PostgreSQL audit log: {e}"),
                "check OMNIROUTE_MCP_AUDIT_URL (host, database, user and password), or unset it to audit to SQLite",
            ),
        },
        None => match crate::audit::open_connection(path) {
            Ok(_) => Check::new(NAME, Status::Ok, format!("the audit database {} opens", path.display())),
            Err(e) => Check::fail(
                NAME,
                format!("cannot open the audit database {}: {e}", path.display()),
                "set OMNIROUTE_MCP_AUDIT_DB to a writable file (or fix the permissions of this one)",
            ),
        },
    }
}

/// The report as text: one line per check, then the fix under each problem.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let label = match check.status {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        out.push_str(&format!("  {label:<5} {:<12} {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("        {:<12} fix: {fix}\n", ""));
        }
    }
    out
}
