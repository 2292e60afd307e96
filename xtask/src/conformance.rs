//! `cargo xtask conformance`: the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`) against our Streamable HTTP server, in two pinned
//! releases ([`PINS`]): 0.1.16 (the legacy protocol revisions, every server scenario) and the
//! 0.2.0 pre-release that checks the 2026-07-28 revision (stateless requests, `server/discover`),
//! run with `--requirements 2026-07-28`: exactly the scenarios that revision requires.
//!
//! * Installs each suite once into the cache (`<cache>/conformance-<version>`, next to the
//!   gateway's Node 22, which runs it), guarded by a lock and a completion marker.
//! * Starts `omniroute-mcp serve --http 127.0.0.1:0` with a throwaway tenant (a fresh random
//!   token; the tenants file under `target/conformance/` keeps only its SHA-256), a fresh
//!   server per suite.
//! * The suite's client sends no `Authorization` header, so instead of weakening the server,
//!   `tests/conformance/auth-proxy.mjs` (loopback only) sits in front of it and adds the
//!   tenant's bearer token, forwarding everything else (Host and Origin included) unchanged
//!   and streaming responses (SSE) unbuffered.
//! * Runs the suite with the pin's baseline (`xtask/conformance-baseline*.toml`) as the
//!   expected failures, then checks that the scenarios we must pass passed outright.

use crate::gateway;
use crate::util::{self, RunExt};
use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The suite's npm package.
pub const PACKAGE: &str = "@modelcontextprotocol/conformance";

/// One pinned release of the suite and how we run it.
#[derive(Debug, Clone, Copy)]
pub struct Pin {
    pub version: &'static str,
    /// What it checks, for the progress lines.
    pub label: &'static str,
    /// The scenario selection passed to `conformance server` (and to `list`).
    pub selection: &'static [&'static str],
    /// Scenario name -> why it does not apply to us.
    pub baseline: &'static str,
    /// Scenarios that must pass outright: never in the baseline.
    pub must_pass: &'static [&'static str],
}

/// The releases `cargo xtask conformance` runs, in order.
pub const PINS: [Pin; 2] = [
    Pin {
        version: "0.1.16",
        label: "protocol revisions up to 2025-11-25, every server scenario",
        selection: &["--suite", "all"],
        baseline: "xtask/conformance-baseline.toml",
        must_pass: &[
            "server-initialize",
            "ping",
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
        ],
    },
    Pin {
        version: "0.2.0-alpha.12",
        label: "what revision 2026-07-28 requires (stateless, server/discover)",
        selection: &["--requirements", "2026-07-28"],
        baseline: "xtask/conformance-baseline-2026-07-28.toml",
        must_pass: &[
            "tools-list",
            "server-sse-multiple-streams",
            "dns-rebinding-protection",
        ],
    },
];

const PROXY_SCRIPT: &str = "tests/conformance/auth-proxy.mjs";
const LISTENING: &str = "listening on http://";
/// The server compiles its tool components on a cold cache; allow for a slow machine.
const START_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Baseline {
    /// Scenario name -> why it does not apply to us.
    expected_failures: BTreeMap<String, String>,
    /// `scenario/check-id` -> why that one check does not apply. A scenario named here is
    /// one we pass in part: it may be an expected failure for the suite, but xtask then
    /// requires every other check of it to succeed.
    #[serde(default)]
    not_applicable_checks: BTreeMap<String, String>,
}

impl Baseline {
    /// The scenarios passed in part, each with the ids of its checks that do not apply.
    fn partial(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut partial: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for key in self.not_applicable_checks.keys() {
            if let Some((scenario, check)) = key.split_once('/') {
                partial.entry(scenario).or_default().push(check);
            }
        }
        partial
    }
}

/// Builds (unless `built` is given), installs every pinned suite if needed, and runs them.
pub fn run(built: Option<&crate::build::Built>) -> anyhow::Result<()> {
    let install = std::thread::spawn(|| PINS.map(|pin| ensure_installed(&pin)));
    let owned;
    let built = match built {
        Some(b) => b,
        None => {
            owned = crate::build::build_all(false)?;
            &owned
        }
    };
    let suites = install
        .join()
        .map_err(|_| anyhow::anyhow!("the conformance install thread panicked"))?;
    for (pin, suite) in PINS.iter().zip(suites) {
        run_pin(pin, &suite?, built)?;
    }
    Ok(())
}

/// Runs one pinned suite against a fresh server.
fn run_pin(pin: &Pin, suite: &Suite, built: &crate::build::Built) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = util::workspace_root();
    let full = load_baseline(&root.join(pin.baseline), pin)?;
    let baseline = &full.expected_failures;
    let (version, baseline_file) = (pin.version, pin.baseline);

    // Every baseline entry must name a scenario of the pinned suite.
    let listed = suite.list_server_scenarios(pin.selection)?;
    for name in baseline.keys() {
        ensure!(
            listed.iter().any(|s| s == name),
            "{baseline_file}: `{name}` is not a server scenario that {PACKAGE}@{version} runs with {} (it runs: {})",
            pin.selection.join(" "),
            listed.join(", ")
        );
    }
    for name in pin.must_pass {
        ensure!(
            listed.iter().any(|s| s == name),
            "{PACKAGE}@{version} has no scenario `{name}`"
        );
    }

    let work = root.join("target").join("conformance").join(version);
    let results = work.join("results");
    if results.exists() {
        std::fs::remove_dir_all(&results)
            .with_context(|| format!("cannot remove {}", results.display()))?;
    }
    std::fs::create_dir_all(&results)?;

    // A throwaway tenant: random token, only its hash on disk. The suite starts
    // a session per scenario and ends none, so the session cap is raised.
    let token = format!("omr_{}", hex::encode(random_bytes::<32>()?));
    let tenants = work.join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "# Written by `cargo xtask conformance` for one run; the token was never stored.\n\
             [[tenant]]\nid = \"conformance\"\ntoken_sha256 = \"{}\"\nscopes = [\"*\"]\n\
             max_concurrent = 16\nrate_per_minute = 100000\nmax_sessions = 1000\n",
            hex::encode(Sha256::digest(token.as_bytes()))
        ),
    )?;

    util::step("starting omniroute-mcp (Streamable HTTP, loopback) and the auth proxy");
    let mut server_cmd = Command::new(&built.binary);
    server_cmd
        .arg("--tools-dir")
        .arg(&built.tools_dir)
        .arg("--data-dir")
        .arg(work.join("data"))
        .args(["serve", "--http", "127.0.0.1:0", "--tenants"])
        .arg(&tenants)
        .env_remove("OMNIROUTE_MCP_TENANTS");
    let server = Background::start(server_cmd, "omniroute-mcp", &work.join("server.log"), false)?;
    let server_url = server.wait_for_url(START_TIMEOUT)?;
    let server_port = port_of(&server_url)?;

    let mut proxy_cmd = Command::new(&suite.node);
    proxy_cmd
        .arg(root.join(PROXY_SCRIPT))
        .arg(server_port.to_string())
        .env("CONFORMANCE_BEARER", &token);
    let proxy = Background::start(proxy_cmd, "auth proxy", &work.join("proxy.log"), true)?;
    let proxy_url = format!("{}/mcp", proxy.wait_for_url(Duration::from_secs(60))?);

    // The suite reads the baseline as YAML: `server: [names]`.
    let yaml = work.join("expected-failures.yml");
    let mut text = String::from("# Generated from xtask/conformance-baseline.toml\nserver:\n");
    for name in baseline.keys() {
        text.push_str(&format!("  - {}\n", serde_json::to_string(name)?));
    }
    std::fs::write(&yaml, text)?;

    util::step(&format!(
        "running {PACKAGE}@{version} ({}; {} in the baseline) against {proxy_url}",
        pin.label,
        baseline.len()
    ));
    let suite_started = Instant::now();
    let status = Command::new(&suite.node)
        .arg(&suite.cli)
        .args([
            "server",
        ])
        .args(pin.selection)
        .args([
            "--url",
            &proxy_url,
            "--expected-failures",
        ])
        .arg(&yaml)
        .arg("--output-dir")
        .arg(&results)
        .current_dir(&work)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .status()
        .context("cannot start the conformance suite")?;
    let suite_secs = suite_started.elapsed().as_secs_f64();
    drop(proxy);
    drop(server);
    if !status.success() {
        bail!(
            "the conformance suite failed ({status}) after {suite_secs:.0} s: see the unexpected \
             failures or stale baseline entries above, the checks in {}, and the logs {} and {}",
            results.display(),
            work.join("server.log").display(),
            work.join("proxy.log").display()
        );
    }

    // Belt and braces: the must-pass scenarios ran and every check in them succeeded.
    for name in pin.must_pass {
        check_passed(&results, name, &[])?;
    }
    let partial = full.partial();
    for (scenario, not_applicable) in &partial {
        check_passed(&results, scenario, not_applicable)?;
    }
    util::step(&format!(
        "conformance {version} passed: {}{} ({} scenarios in the baseline) in {:.0} s (suite {suite_secs:.1} s)",
        pin.must_pass.join(", "),
        if partial.is_empty() {
            String::new()
        } else {
            format!(
                "; in part, every check but {} named: {}",
                full.not_applicable_checks.len(),
                partial.keys().copied().collect::<Vec<_>>().join(", ")
            )
        },
        baseline.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn load_baseline(path: &Path, pin: &Pin) -> anyhow::Result<Baseline> {
    let file = pin.baseline;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let baseline: Baseline =
        toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    for (name, reason) in &baseline.expected_failures {
        ensure!(
            !reason.trim().is_empty(),
            "{file}: `{name}` needs a reason"
        );
        ensure!(
            !pin.must_pass.contains(&name.as_str()),
            "{file}: `{name}` must pass; it cannot be in the baseline"
        );
    }
    for (key, reason) in &baseline.not_applicable_checks {
        ensure!(!reason.trim().is_empty(), "{file}: check `{key}` needs a reason");
        let scenario = key.split_once('/').map(|(s, _)| s).filter(|s| !s.is_empty());
        ensure!(
            scenario.is_some(),
            "{file}: `{key}` in not_applicable_checks must be `scenario/check-id`"
        );
    }
    Ok(baseline)
}

/// The suite's `checks.json` for one scenario (in `server-<name>-<timestamp>/`): at least one
/// SUCCESS, nothing else but INFO, except the checks `not_applicable` names (each of which must
/// still be among the scenario's checks, so a stale entry fails the run).
fn check_passed(results: &Path, scenario: &str, not_applicable: &[&str]) -> anyhow::Result<()> {
    let prefix = format!("server-{scenario}-");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(results)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A timestamp follows, so `server-ping-` never matches another scenario's folder.
        if name
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        {
            dirs.push(entry.path());
        }
    }
    ensure!(
        dirs.len() == 1,
        "expected one result folder for `{scenario}` in {}, found {}",
        results.display(),
        dirs.len()
    );
    let file = dirs[0].join("checks.json");
    let checks: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?,
    )?;
    for id in not_applicable {
        ensure!(
            checks.iter().any(|c| c["id"].as_str() == Some(id)),
            "`{scenario}` has no check `{id}` any more: remove it from not_applicable_checks ({})",
            file.display()
        );
    }
    let mut successes = 0;
    for check in &checks {
        if check["id"].as_str().is_some_and(|id| not_applicable.contains(&id)) {
            continue;
        }
        match check["status"].as_str() {
            Some("SUCCESS") => successes += 1,
            Some("INFO") => {}
            other => bail!(
                "`{scenario}`: check {} is {:?}: {}",
                check["id"],
                other,
                check["errorMessage"]
            ),
        }
    }
    ensure!(
        successes > 0,
        "`{scenario}` reported no successful check ({})",
        file.display()
    );
    Ok(())
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf)
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .with_context(|| format!("not a loopback URL: {url}"))?;
    let port: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    port.parse().with_context(|| format!("no port in {url}"))
}

/// A child process whose output goes to a log; its first `listening on http://…` line is
/// reported. Killed (by its own pid) when dropped.
struct Background {
    child: Child,
    label: &'static str,
    log: PathBuf,
    url: mpsc::Receiver<String>,
}

impl Background {
    /// `url_on_stdout`: the readiness line is on stdout (else stderr); the other stream goes
    /// to the log too.
    fn start(
        mut cmd: Command,
        label: &'static str,
        log: &Path,
        url_on_stdout: bool,
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stdin(Stdio::null());
        if url_on_stdout {
            cmd.stdout(Stdio::piped()).stderr(file.try_clone()?);
        } else {
            cmd.stderr(Stdio::piped()).stdout(file.try_clone()?);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {label}: {cmd:?}"))?;
        let pipe: Box<dyn Read + Send> = if url_on_stdout {
            Box::new(child.stdout.take().context("no stdout pipe")?)
        } else {
            Box::new(child.stderr.take().context("no stderr pipe")?)
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut file = file;
            let mut sent = false;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if !sent && let Some(at) = line.find(LISTENING) {
                    let url = line[at + "listening on ".len()..].trim().to_string();
                    sent = tx.send(url).is_ok();
                }
            }
        });
        Ok(Self {
            child,
            label,
            log: log.to_path_buf(),
            url: rx,
        })
    }

    /// The URL from the readiness line (without a trailing `/mcp`).
    fn wait_for_url(&self, timeout: Duration) -> anyhow::Result<String> {
        match self.url.recv_timeout(timeout) {
            Ok(url) => Ok(url.trim_end_matches("/mcp").to_string()),
            Err(_) => bail!(
                "the {} did not report its address within {} s; last lines of {}:\n{}",
                self.label,
                timeout.as_secs(),
                self.log.display(),
                tail(&self.log, 30)
            ),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where the installed suite is.
struct Suite {
    node: PathBuf,
    /// `…/node_modules/@modelcontextprotocol/conformance/dist/index.js`
    cli: PathBuf,
}

impl Suite {
    /// The server scenarios the suite runs with `selection` (`--suite all` lists everything).
    fn list_server_scenarios(&self, selection: &[&str]) -> anyhow::Result<Vec<String>> {
        let filter: &[&str] = if selection.first() == Some(&"--requirements") { selection } else { &[] };
        let out = Command::new(&self.node)
            .arg(&self.cli)
            .arg("list")
            .args(filter)
            .env("NO_COLOR", "1")
            .output_text()?;
        let mut names = Vec::new();
        let mut in_server = false;
        for line in out.lines() {
            if !line.starts_with(' ') {
                in_server = line.starts_with("Server scenarios");
                continue;
            }
            // Extensions and pending scenarios are listed indented under their own heading.
            if line.starts_with("  ") && !line.starts_with("  - ") {
                in_server = false;
                continue;
            }
            if in_server && let Some(item) = line.trim().strip_prefix("- ") {
                names.extend(item.split_whitespace().next().map(String::from));
            }
        }
        ensure!(
            !names.is_empty(),
            "`conformance list` printed no server scenarios:\n{out}"
        );
        Ok(names)
    }
}

/// Installs a pinned suite into the cache (npm from PATH; Node 22 from the gateway install)
/// unless its completion marker is there.
fn ensure_installed(pin: &Pin) -> anyhow::Result<Suite> {
    let version = pin.version;
    let installed = gateway::ensure_installed()?;
    let dir = gateway::cache_root()?.join(format!("conformance-{version}"));
    let suite = Suite {
        node: installed.node.clone(),
        cli: dir
            .join("node_modules")
            .join(PACKAGE)
            .join("dist")
            .join("index.js"),
    };
    let stamp = format!("{PACKAGE}@{version}");
    let marker = dir.join(".complete");
    let complete =
        || std::fs::read_to_string(&marker).is_ok_and(|m| m == stamp) && suite.cli.is_file();
    if complete() {
        return Ok(suite);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = gateway::Lock::acquire(
        &dir.join("install.lock"),
        "conformance install",
        Duration::from_secs(10 * 60),
    )?;
    if complete() {
        return Ok(suite);
    }
    let started = Instant::now();
    util::step(&format!("installing {stamp} into {}", dir.display()));
    let log = dir.join("install.log");
    let mut npm = Command::new(std::env::var("NPM").unwrap_or_else(|_| "npm".into()));
    npm.arg("install")
        .arg("--prefix")
        .arg(&dir)
        .args([
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--engine-strict=false",
        ])
        .arg(&stamp)
        .env("npm_config_update_notifier", "false")
        .env("npm_config_progress", "false");
    gateway::run_logged(&mut npm, &log, "npm install (conformance)")?;
    ensure!(
        suite.cli.is_file(),
        "npm installed {stamp} but {} is missing",
        suite.cli.display()
    );
    let tmp = dir.join(".complete.tmp");
    std::fs::write(&tmp, &stamp)?;
    std::fs::rename(&tmp, &marker)?;
    util::step(&format!(
        "conformance suite installed ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(suite)
}
