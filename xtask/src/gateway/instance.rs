//! One running gateway instance: the mock upstream plus OmniRoute on loopback, seeded through
//! the REST API, described by a JSON state file per instance name.

use super::http::{self, expect_json, snippet, with_cookie};
use super::install::{self, Installed};
use super::proc::{self, Lock};
use crate::util::{step, workspace_root};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DEFAULT_NAME: &str = "default";
/// How long `start` waits for `GET /api/monitoring/health` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const GATEWAY_SCRIPT: &str = "server-ws.mjs";
/// The provider key the gateway holds for the mock; clients never send it.
pub const UPSTREAM_API_KEY: &str = "sk-mock";
pub const PROVIDER_PREFIX: &str = "mock";
/// The key of the second connection, which the mock refuses with 401 (`REVOKED_KEY` in
/// `tests/gateway/mock-upstream.mjs`), and its node's prefix.
const REVOKED_API_KEY: &str = "sk-mock-revoked";
const REVOKED_PREFIX: &str = "revoked";

/// What to start.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Instance name: its state file is `target/gateway/<name>/state.json`.
    pub name: String,
    /// Start with `INITIAL_PASSWORD=<password>`: management routes then need the login cookie.
    pub password: Option<String>,
    /// Start with `REQUIRE_API_KEY=true`: `/v1/*` then needs `Authorization: Bearer <api_key>`.
    pub require_api_key: bool,
    /// Also seed the combo `broken` (priority, `mock/mock-fail`).
    pub broken_combo: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            name: DEFAULT_NAME.into(),
            password: None,
            require_api_key: false,
            broken_combo: false,
        }
    }
}

impl StartOptions {
    pub fn named(name: &str) -> Self {
        StartOptions {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// PIDs of the two processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pids {
    pub gateway: u32,
    pub mock: u32,
}

/// Log files of the two processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logs {
    pub gateway: PathBuf,
    pub mock: PathBuf,
}

/// A running, seeded instance. This is also the state file's JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayInfo {
    pub name: String,
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base_url: String,
    pub port: u16,
    pub pids: Pids,
    /// `target/gateway/<name>/runs/<timestamp>-<pid>`: holds `data/` and the logs.
    pub run_dir: PathBuf,
    /// The gateway's `DATA_DIR` (`storage.sqlite` lives here).
    pub data_dir: PathBuf,
    /// The mock's root URL, `http://127.0.0.1:<mock_port>` (`/__stats` and `/__reset` live here).
    pub mock_url: String,
    pub mock_port: u16,
    /// The provider node's base URL as given to the gateway: `<mock_url>/v1`.
    pub mock_base_url: String,
    /// Provider node id, `openai-compatible-chat-<uuid>` (prices are keyed by it).
    pub node_id: String,
    pub provider_prefix: String,
    pub connection_id: String,
    /// The key the gateway holds for the upstream (`sk-mock`).
    pub upstream_api_key: String,
    /// A second provider node (prefix `revoked`, same mock) whose one connection holds a key the
    /// mock refuses with 401; seeding sends one completion through it, so the gateway has
    /// recorded the refusal on that connection. Empty in state files of older seedings.
    #[serde(default)]
    pub revoked_node_id: String,
    #[serde(default)]
    pub revoked_connection_id: String,
    /// Combo ids by name: `coding-fast`, `free-tier` and, if asked for, `broken`.
    pub combos: BTreeMap<String, String>,
    /// A gateway API key (`POST /api/keys`), usable as Bearer on `/v1/*`.
    pub api_key: String,
    /// The dashboard password (`INITIAL_PASSWORD`), if the instance has one.
    pub password: Option<String>,
    pub require_api_key: bool,
    pub logs: Logs,
    /// Node 22 binary that runs both processes.
    pub node: PathBuf,
    pub omniroute_version: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Seconds from spawning the gateway to its first health 200, and for seeding.
    pub ready_secs: f64,
    pub seed_secs: f64,
}

impl GatewayInfo {
    /// A copy for a gateway listening on `port` of 127.0.0.1.
    fn at_port(&self, port: u16) -> GatewayInfo {
        GatewayInfo {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            ..self.clone()
        }
    }

    /// Where this instance's state file is.
    pub fn state_file(&self) -> PathBuf {
        state_file(&self.name)
    }

    /// Logs in with the password (if any) and returns the `Cookie` header value
    /// (`auth_token=…`), or `None` when the instance has no password.
    pub fn login_cookie(&self) -> anyhow::Result<Option<String>> {
        match &self.password {
            Some(pw) => login(&self.base_url, pw).map(Some),
            None => Ok(None),
        }
    }

    /// Environment for test processes: `<PREFIX>_URL`, `_PASSWORD` (only if set), `_API_KEY`,
    /// `_MOCK_URL`, `_NODE_ID`, `_STATE` (path of the state file, JSON as this struct).
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        let mut v = vec![
            (format!("{prefix}_URL"), self.base_url.clone()),
            (format!("{prefix}_API_KEY"), self.api_key.clone()),
            (format!("{prefix}_MOCK_URL"), self.mock_url.clone()),
            (format!("{prefix}_NODE_ID"), self.node_id.clone()),
            (
                format!("{prefix}_STATE"),
                self.state_file().display().to_string(),
            ),
        ];
        if let Some(pw) = &self.password {
            v.push((format!("{prefix}_PASSWORD"), pw.clone()));
        }
        v
    }

    /// The gateway process is alive and ours.
    pub fn gateway_alive(&self) -> bool {
        proc::alive_as(self.pids.gateway, &marker("gateway", &self.run_dir))
    }

    /// The mock process is alive and ours.
    pub fn mock_alive(&self) -> bool {
        proc::alive_as(self.pids.mock, &marker("mock", &self.run_dir))
    }

    /// Both processes alive (and still ours) and the health route answers 200.
    pub fn is_healthy(&self) -> bool {
        self.gateway_alive() && self.mock_alive() && health_status(&self.base_url) == Some(200)
    }
}

/// The value of [`proc::MARKER_VAR`] for one process of one run.
fn marker(role: &str, run_dir: &Path) -> String {
    format!("{role}@{}", run_dir.display())
}

/// `target/gateway/<name>/`.
pub fn instance_dir(name: &str) -> PathBuf {
    workspace_root().join("target").join("gateway").join(name)
}

/// `target/gateway/<name>/state.json`.
pub fn state_file(name: &str) -> PathBuf {
    instance_dir(name).join("state.json")
}

/// The recorded state of an instance, if any (it may be dead; see [`GatewayInfo::is_healthy`]).
pub fn load_state(name: &str) -> anyhow::Result<Option<GatewayInfo>> {
    let path = state_file(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("cannot parse {}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_state(info: &GatewayInfo) -> anyhow::Result<()> {
    let path = info.state_file();
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(info)? + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("invalid instance name {name:?}: use letters, digits, '-' and '_'");
    }
    Ok(())
}

fn lock(name: &str) -> anyhow::Result<Lock> {
    Lock::acquire(
        &instance_dir(name).join("instance.lock"),
        &format!("gateway '{name}'"),
        Duration::from_secs(10 * 60),
    )
}

/// `GET /api/monitoring/health` status, `None` if unreachable.
pub fn health_status(base_url: &str) -> Option<u16> {
    let request = http::client()
        .ok()?
        .get(format!("{base_url}/api/monitoring/health"))
        .timeout(Duration::from_secs(5));
    http::send(request).ok().map(|r| r.status().as_u16())
}

/// `POST /api/auth/login`; returns the `Cookie` header value `auth_token=<jwt>`.
pub fn login(base_url: &str, password: &str) -> anyhow::Result<String> {
    let request = http::client()?
        .post(format!("{base_url}/api/auth/login"))
        .json(&json!({ "password": password }));
    let r = http::send(request)?;
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.trim_start().starts_with("auth_token="))
        .map(|c| c.trim().to_string());
    if status != 200 {
        let text = r.text().unwrap_or_default();
        bail!("dashboard login failed [{status}]: {}", snippet(&text));
    }
    cookie.context("login answered 200 without an auth_token cookie")
}

/// Starts (or reuses) the instance described by `opts`.
pub fn start_instance(opts: &StartOptions) -> anyhow::Result<GatewayInfo> {
    validate_name(&opts.name)?;
    let _lock = lock(&opts.name)?;
    let previous = load_state(&opts.name).unwrap_or_else(|e| {
        // Unreadable (say, written by an older xtask): its processes cannot be identified.
        step(&format!("ignoring an unreadable state file: {e:#}"));
        let _ = std::fs::remove_file(state_file(&opts.name));
        None
    });
    if let Some(old) = previous {
        let same_options = old.password == opts.password
            && old.require_api_key == opts.require_api_key
            && old.combos.contains_key("broken") == opts.broken_combo;
        if old.is_healthy() && same_options && seeded_ok(&old) {
            step(&format!(
                "gateway '{}' already running at {} (pids {} / mock {}); reusing it",
                old.name, old.base_url, old.pids.gateway, old.pids.mock
            ));
            return Ok(old);
        }
        let why = if !same_options {
            "started with other options"
        } else {
            "not healthy or not fully seeded"
        };
        step(&format!(
            "gateway '{}' from {} is {why}: stopping it",
            old.name,
            old.state_file().display()
        ));
        stop_processes(&old);
        let _ = std::fs::remove_file(old.state_file());
    }
    let installed = install::ensure_installed()?;
    launch(&installed, opts)
}

/// Seeding finished (the state file is first written before it) and the seeded combos still
/// exist (tests may have changed a reused instance).
fn seeded_ok(info: &GatewayInfo) -> bool {
    if info.node_id.is_empty()
        || info.revoked_connection_id.is_empty()
        || info.api_key.is_empty()
        || !info.combos.contains_key("coding-fast")
        || !info.combos.contains_key("free-tier")
    {
        return false;
    }
    let check = || -> anyhow::Result<bool> {
        let cookie = info.login_cookie()?;
        let request = http::client()?.get(format!("{}/api/combos", info.base_url));
        let v = expect_json(
            http::send(with_cookie(request, cookie.as_deref()))?,
            200,
            "GET /api/combos",
        )?;
        let list = v
            .get("combos")
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default();
        Ok(info.combos.iter().all(|(name, id)| {
            list.iter()
                .any(|c| c["name"] == name.as_str() && c["id"] == id.as_str())
        }))
    };
    check().unwrap_or(false)
}

/// Stops the instance named `name` (no-op if there is no state file).
pub fn stop_instance(name: &str) -> anyhow::Result<bool> {
    validate_name(name)?;
    let _lock = lock(name)?;
    let Some(info) = load_state(name)? else {
        return Ok(false);
    };
    stop_processes(&info);
    std::fs::remove_file(info.state_file())?;
    Ok(true)
}

fn stop_processes(info: &GatewayInfo) {
    let t = Instant::now();
    if proc::terminate(
        info.pids.gateway,
        &marker("gateway", &info.run_dir),
        Duration::from_secs(15),
    ) {
        step(&format!(
            "gateway pid {} ignored SIGTERM: killed",
            info.pids.gateway
        ));
    }
    if proc::terminate(
        info.pids.mock,
        &marker("mock", &info.run_dir),
        Duration::from_secs(5),
    ) {
        step(&format!(
            "mock pid {} ignored SIGTERM: killed",
            info.pids.mock
        ));
    }
    step(&format!(
        "stopped gateway '{}' (pids {} / mock {}) in {:.1} s; logs kept in {}",
        info.name,
        info.pids.gateway,
        info.pids.mock,
        t.elapsed().as_secs_f64(),
        info.run_dir.display()
    ));
    // The data dir is throwaway; keep the logs for post-mortems.
    let _ = std::fs::remove_dir_all(&info.data_dir);
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Keeps the newest `keep` run dirs of an instance.
fn prune_runs(runs: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let n = dirs.len();
    for d in dirs.into_iter().take(n.saturating_sub(keep)) {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn launch(installed: &Installed, opts: &StartOptions) -> anyhow::Result<GatewayInfo> {
    let runs = instance_dir(&opts.name).join("runs");
    prune_runs(&runs, 4);
    let run_dir = runs.join(format!("{}-{}", unix_now(), std::process::id()));
    let data_dir = run_dir.join("data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let logs = Logs {
        gateway: run_dir.join("gateway.log"),
        mock: run_dir.join("mock.log"),
    };

    // 1. The mock upstream on a port of its own choosing (no race), reported through a file.
    let t = Instant::now();
    let script = workspace_root()
        .join("tests")
        .join("gateway")
        .join("mock-upstream.mjs");
    let port_file = run_dir.join("mock.port");
    let mock_log = File::create(&logs.mock)?;
    let mut mock = Command::new(&installed.node)
        .arg(&script)
        .args(["--port", "0", "--port-file"])
        .arg(&port_file)
        .current_dir(&run_dir)
        .env(proc::MARKER_VAR, marker("mock", &run_dir))
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(mock_log.try_clone()?)
        .stderr(mock_log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the mock {}", script.display()))?;
    let mock_pid = mock.id();
    let mock_port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse().context("bad mock port file")?;
        }
        if let Some(status) = proc::reap(&mut mock) {
            bail!(
                "the mock upstream exited ({status}):\n{}",
                proc::tail(&logs.mock, 40)
            );
        }
        if t.elapsed() > Duration::from_secs(15) {
            proc::terminate(mock_pid, &marker("mock", &run_dir), Duration::from_secs(2));
            bail!(
                "the mock upstream did not start within 15 s:\n{}",
                proc::tail(&logs.mock, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mock_url = format!("http://127.0.0.1:{mock_port}");
    let unseeded = unseeded_info(opts, installed, &run_dir, &logs, mock_pid, mock_port);

    // 2. The gateway; a port taken between our probe and its bind is retried with another.
    let mut attempt = 0;
    let (gateway_pid, port, ready_secs) = loop {
        attempt += 1;
        let port = free_port()?;
        let base_url = format!("http://127.0.0.1:{port}");
        let mut info = unseeded.at_port(port);
        let mut cmd = Command::new(&installed.node);
        cmd.arg(GATEWAY_SCRIPT)
            .current_dir(&installed.app_dir)
            .env(proc::MARKER_VAR, marker("gateway", &run_dir))
            .env("DATA_DIR", &data_dir)
            .env("HOSTNAME", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("NODE_ENV", "production")
            .env("OMNIROUTE_ALLOW_PRIVATE_PROVIDER_URLS", "true")
            .env("NEXT_TELEMETRY_DISABLED", "1")
            .env_remove("NODE_OPTIONS")
            .env_remove("INITIAL_PASSWORD")
            .env_remove("REQUIRE_API_KEY")
            .env_remove("JWT_SECRET")
            .env_remove("API_PORT")
            .env_remove("DASHBOARD_PORT")
            .env_remove("OUTBOUND_SSRF_GUARD_ENABLED")
            .env_remove("AUTH_COOKIE_SECURE");
        if let Some(pw) = &opts.password {
            cmd.env("INITIAL_PASSWORD", pw);
        }
        if opts.require_api_key {
            cmd.env("REQUIRE_API_KEY", "true");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logs.gateway)?;
        let t = Instant::now();
        let mut gw = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("cannot start the gateway (server-ws.mjs)")?;
        info.pids.gateway = gw.id();
        // Recorded at once, so `stop` finds the processes even if we are interrupted.
        save_state(&info)?;
        step(&format!(
            "started gateway '{}' pid {} on {base_url} (mock pid {mock_pid} on {mock_url}); waiting for health",
            opts.name,
            gw.id()
        ));
        let outcome = loop {
            if let Some(status) = proc::reap(&mut gw) {
                break Err(status);
            }
            if health_status(&base_url) == Some(200) {
                break Ok(t.elapsed().as_secs_f64());
            }
            if t.elapsed() > READY_TIMEOUT {
                stop_processes(&info);
                let _ = std::fs::remove_file(info.state_file());
                bail!(
                    "the gateway did not answer /api/monitoring/health with 200 within {} s; last lines of {}:\n{}",
                    READY_TIMEOUT.as_secs(),
                    logs.gateway.display(),
                    proc::tail(&logs.gateway, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        match outcome {
            Ok(secs) => break (gw.id(), port, secs),
            Err(status) => {
                let tail = proc::tail(&logs.gateway, 40);
                if tail.contains("EADDRINUSE") && attempt < 3 {
                    step(&format!(
                        "port {port} was taken meanwhile; retrying with another"
                    ));
                    continue;
                }
                proc::terminate(mock_pid, &marker("mock", &run_dir), Duration::from_secs(5));
                let _ = std::fs::remove_file(info.state_file());
                bail!(
                    "the gateway exited during startup ({status}); last lines of {}:\n{tail}",
                    logs.gateway.display()
                );
            }
        }
    };
    step(&format!(
        "gateway '{}' healthy after {ready_secs:.1} s",
        opts.name
    ));

    // 3. Seed.
    let mut info = unseeded.at_port(port);
    info.pids.gateway = gateway_pid;
    info.ready_secs = ready_secs;
    let t = Instant::now();
    if let Err(e) = seed(&mut info, opts) {
        stop_processes(&info);
        let _ = std::fs::remove_file(info.state_file());
        return Err(e.context(format!(
            "seeding the gateway failed; last lines of {}:\n{}",
            logs.gateway.display(),
            proc::tail(&logs.gateway, 40)
        )));
    }
    info.seed_secs = t.elapsed().as_secs_f64();
    save_state(&info)?;
    step(&format!(
        "gateway '{}' seeded in {:.1} s: node {}, combos {}; state in {}",
        info.name,
        info.seed_secs,
        info.node_id,
        info.combos.keys().cloned().collect::<Vec<_>>().join(", "),
        info.state_file().display()
    ));
    Ok(info)
}

/// What is known once the mock runs: everything but the gateway's port and pid and the seeded ids.
fn unseeded_info(
    opts: &StartOptions,
    installed: &Installed,
    run_dir: &Path,
    logs: &Logs,
    mock_pid: u32,
    mock_port: u16,
) -> GatewayInfo {
    let mock_url = format!("http://127.0.0.1:{mock_port}");
    GatewayInfo {
        name: opts.name.clone(),
        base_url: String::new(),
        port: 0,
        pids: Pids {
            gateway: 0,
            mock: mock_pid,
        },
        run_dir: run_dir.to_path_buf(),
        data_dir: run_dir.join("data"),
        mock_base_url: format!("{mock_url}/v1"),
        mock_url,
        mock_port,
        node_id: String::new(),
        provider_prefix: PROVIDER_PREFIX.into(),
        connection_id: String::new(),
        upstream_api_key: UPSTREAM_API_KEY.into(),
        revoked_node_id: String::new(),
        revoked_connection_id: String::new(),
        combos: BTreeMap::new(),
        api_key: String::new(),
        password: opts.password.clone(),
        require_api_key: opts.require_api_key,
        logs: logs.clone(),
        node: installed.node.clone(),
        omniroute_version: install::OMNIROUTE_VERSION.into(),
        started_at: unix_now(),
        ready_secs: 0.0,
        seed_secs: 0.0,
    }
}

fn str_at(v: &serde_json::Value, pointer: &str, what: &str) -> anyhow::Result<String> {
    v.pointer(pointer)
        .and_then(|s| s.as_str())
        .map(String::from)
        .with_context(|| format!("{what}: no {pointer} in {}", snippet(&v.to_string())))
}

/// Management requests of one seeding: the gateway's base URL and the login cookie, if any.
struct Seeder<'a> {
    base: &'a str,
    cookie: Option<String>,
}

impl Seeder<'_> {
    /// `method path` with an optional JSON body, which must answer `status` with JSON.
    fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let what = format!("{method} {path}");
        let mut request = with_cookie(
            http::client()?.request(method, format!("{}{path}", self.base)),
            self.cookie.as_deref(),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        expect_json(http::send(request)?, status, &what)
    }

    /// `POST path` that must answer 201; returns the string at `pointer` of the answer.
    fn create(&self, path: &str, body: serde_json::Value, pointer: &str) -> anyhow::Result<String> {
        let v = self.json(Method::POST, path, Some(body), 201)?;
        str_at(&v, pointer, &format!("POST {path}"))
    }
}

/// Shared README step 4 plus prices, an API key and a connection whose key the upstream refuses.
fn seed(info: &mut GatewayInfo, opts: &StartOptions) -> anyhow::Result<()> {
    let seeder = Seeder {
        base: &info.base_url.clone(),
        cookie: match &opts.password {
            Some(pw) => Some(login(&info.base_url, pw)?),
            None => None,
        },
    };
    info.node_id = seeder.create(
        "/api/provider-nodes",
        json!({"name": "Mock", "prefix": PROVIDER_PREFIX, "apiType": "chat",
               "baseUrl": info.mock_base_url, "type": "openai-compatible"}),
        "/node/id",
    )?;
    info.connection_id = seeder.create(
        "/api/providers",
        json!({"provider": info.node_id, "apiKey": UPSTREAM_API_KEY, "name": "mockconn"}),
        "/connection/id",
    )?;

    let path = format!("/api/providers/{}/models", info.connection_id);
    let v = seeder.json(Method::GET, &path, None, 200)?;
    let imported: Vec<&str> = v["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    if !(imported.contains(&"mock-small") && imported.contains(&"mock-large")) {
        bail!(
            "model import did not return mock-small and mock-large: {}",
            snippet(&v.to_string())
        );
    }

    let mut combos: Vec<(&str, Vec<&str>)> = vec![
        ("coding-fast", vec!["mock/mock-small", "mock/mock-large"]),
        ("free-tier", vec!["mock/mock-small"]),
    ];
    if opts.broken_combo {
        combos.push(("broken", vec!["mock/mock-fail"]));
    }
    for (name, models) in combos {
        let id = seeder.create(
            "/api/combos",
            json!({"name": name, "models": models, "strategy": "priority"}),
            "/id",
        )?;
        info.combos.insert(name.to_string(), id);
    }

    // Prices under the node id, so x-omniroute-response-cost is non-zero.
    let mut prices = serde_json::Map::new();
    prices.insert(
        info.node_id.clone(),
        json!({"mock-small": {"input": 1.5, "output": 6}, "mock-large": {"input": 3, "output": 15}}),
    );
    seeder.json(Method::PATCH, "/api/pricing", Some(prices.into()), 200)?;

    info.api_key = seeder.create("/api/keys", json!({"name": "omniroute-mcp-tests"}), "/key")?;
    seed_revoked(info, &seeder)
}

/// The node `Revoked` on the same mock, its connection with [`REVOKED_API_KEY`], and one
/// completion through it, which the mock refuses with 401: the gateway then records that
/// refusal on the connection as it does for a provider key revoked in real life.
fn seed_revoked(info: &mut GatewayInfo, seeder: &Seeder<'_>) -> anyhow::Result<()> {
    info.revoked_node_id = seeder.create(
        "/api/provider-nodes",
        json!({"name": "Revoked", "prefix": REVOKED_PREFIX, "apiType": "chat",
               "baseUrl": info.mock_base_url, "type": "openai-compatible"}),
        "/node/id",
    )?;
    info.revoked_connection_id = seeder.create(
        "/api/providers",
        json!({"provider": info.revoked_node_id, "apiKey": REVOKED_API_KEY, "name": "revokedconn"}),
        "/connection/id",
    )?;
    let completion = http::client()?
        .post(format!("{}/v1/chat/completions", info.base_url))
        .bearer_auth(&info.api_key)
        .json(&json!({"model": format!("{REVOKED_PREFIX}/mock-small"), "stream": false,
                      "messages": [{"role": "user", "content": "seed: a refused key"}]}));
    let r = http::send(completion)?;
    let status = r.status().as_u16();
    if status != 401 {
        bail!(
            "a completion through the revoked connection: expected the upstream's 401, got {status}: {}",
            snippet(&r.text().unwrap_or_default())
        );
    }
    Ok(())
}

/// Prints the state of one instance; errors if it is not running and healthy.
pub fn print_status(name: &str) -> anyhow::Result<()> {
    validate_name(name)?;
    let Some(info) = load_state(name)? else {
        bail!(
            "gateway '{name}' is not running (no {})",
            state_file(name).display()
        );
    };
    let gw = info.gateway_alive();
    let mock = info.mock_alive();
    let health = health_status(&info.base_url);
    let mock_ok = http::client()
        .map(|c| c.get(format!("{}/__stats", info.mock_url)).timeout(Duration::from_secs(3)))
        .and_then(http::send)
        .is_ok_and(|r| r.status() == 200);
    let yn = |b: bool| if b { "alive" } else { "NOT RUNNING" };
    println!("gateway '{}' ({})", info.name, info.state_file().display());
    println!("  base_url      {}", info.base_url);
    println!("  gateway pid   {} {}", info.pids.gateway, yn(gw));
    println!(
        "  health        {}",
        health
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unreachable".into())
    );
    println!(
        "  mock          {} pid {} {}{}",
        info.mock_url,
        info.pids.mock,
        yn(mock),
        if mock_ok { "" } else { " (not answering)" }
    );
    println!("  node id       {}", info.node_id);
    println!("  connection    {}", info.connection_id);
    for (n, id) in &info.combos {
        println!("  combo         {n} = {id}");
    }
    println!("  api key       {}", info.api_key);
    println!(
        "  password      {}",
        info.password.as_deref().unwrap_or("(none)")
    );
    println!("  require key   {}", info.require_api_key);
    println!("  data dir      {}", info.data_dir.display());
    println!(
        "  logs          {} , {}",
        info.logs.gateway.display(),
        info.logs.mock.display()
    );
    if gw && mock && health == Some(200) && mock_ok {
        println!("  status        healthy");
        Ok(())
    } else {
        bail!(
            "gateway '{name}' is not healthy (stop it with `cargo xtask gateway stop --name {name}`)"
        )
    }
}

/// Names of instances that have a state file.
pub fn instance_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(workspace_root().join("target").join("gateway")) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}
