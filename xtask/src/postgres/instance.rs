//! One throwaway PostgreSQL server on loopback for the tests, described by
//! `target/postgres/state.json`.
//!
//! PostgreSQL refuses to run as root, which CI is: as root the server runs as
//! an unprivileged user (`nobody`, or `OMNIROUTE_MCP_POSTGRES_USER`) through
//! `runuser`, its data folder owned by that user, and its binaries copied to a
//! folder that user can read when the cache (under root's home) is closed to it.

use crate::gateway::{Lock, alive_as, tail, MARKER_VAR};
use crate::util::{step, workspace_root};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running server. This is also the state file's JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PostgresInfo {
    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`
    pub url: String,
    pub port: u16,
    /// The postmaster's pid.
    pub pid: u32,
    /// Temporary folder holding `data/`, the log and the password file.
    pub run_dir: PathBuf,
    /// Folder of `initdb`, `pg_ctl`, `postgres`.
    pub bin_dir: PathBuf,
    /// The OS user the server runs as when we are root.
    pub os_user: Option<String>,
    pub log: PathBuf,
    /// `postgres --version`.
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Seconds for initdb and for the server to accept connections.
    pub initdb_secs: f64,
    pub start_secs: f64,
}

impl PostgresInfo {
    fn data_dir(&self) -> PathBuf {
        self.run_dir.join("data")
    }

    /// The postmaster is alive, ours, and accepts TCP connections.
    pub fn is_healthy(&self) -> bool {
        alive_as(self.pid, &marker(&self.run_dir))
            && std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(2)).is_ok()
    }
}

fn marker(run_dir: &Path) -> String {
    format!("postgres@{}", run_dir.display())
}

/// `target/postgres/`.
fn instance_dir() -> PathBuf {
    workspace_root().join("target").join("postgres")
}

/// `target/postgres/state.json`.
pub fn state_file() -> PathBuf {
    instance_dir().join("state.json")
}

/// The recorded state, if any (it may be dead; see [`PostgresInfo::is_healthy`]).
pub fn load_state() -> anyhow::Result<Option<PostgresInfo>> {
    let path = state_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_state(info: &PostgresInfo) -> anyhow::Result<()> {
    let path = state_file();
    std::fs::create_dir_all(instance_dir())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(info)? + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn lock() -> anyhow::Result<Lock> {
    Lock::acquire(&instance_dir().join("instance.lock"), "postgres", Duration::from_secs(5 * 60))
}

/// Starts the server, or reuses a healthy one started earlier.
pub fn start() -> anyhow::Result<PostgresInfo> {
    let _lock = lock()?;
    if let Some(old) = load_state().unwrap_or(None) {
        if old.is_healthy() {
            step(&format!("postgres already running at 127.0.0.1:{} (pid {}); reusing it", old.port, old.pid));
            return Ok(old);
        }
        step("postgres from an earlier start is gone: starting a new one");
        stop_server(&old);
        let _ = std::fs::remove_file(state_file());
    }
    let bin_dir = match std::env::var_os("OMNIROUTE_MCP_POSTGRES_BIN").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => super::install::ensure_installed()?,
    };
    launch(&bin_dir)
}

/// Stops the server (no-op without a state file); returns whether one was recorded.
pub fn stop() -> anyhow::Result<bool> {
    let _lock = lock()?;
    let Some(info) = load_state()? else { return Ok(false) };
    stop_server(&info);
    std::fs::remove_file(state_file())?;
    Ok(true)
}

fn stop_server(info: &PostgresInfo) {
    let t = Instant::now();
    if alive_as(info.pid, &marker(&info.run_dir)) {
        let mut cmd = as_user(info.os_user.as_deref(), &info.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(info.data_dir()).args(["-m", "fast", "-w", "-t", "20", "stop"]);
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        crate::gateway::terminate(info.pid, &marker(&info.run_dir), Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&info.run_dir);
    step(&format!("stopped postgres (pid {}) in {:.1} s", info.pid, t.elapsed().as_secs_f64()));
}

/// Prints the state; fails unless the server is running and accepts connections.
pub fn print_status() -> anyhow::Result<()> {
    let Some(info) = load_state()? else {
        bail!("postgres is not running (no {}); start it with `cargo xtask postgres start`", state_file().display());
    };
    println!("postgres ({})", state_file().display());
    println!("  url        {}", info.url);
    println!("  version    {}", info.version);
    println!("  pid        {}", info.pid);
    println!("  runs as    {}", info.os_user.as_deref().unwrap_or("(this user)"));
    println!("  binaries   {}", info.bin_dir.display());
    println!("  run dir    {}", info.run_dir.display());
    println!("  log        {}", info.log.display());
    if info.is_healthy() {
        println!("  status     healthy");
        Ok(())
    } else {
        bail!("postgres is not healthy; last lines of {}:\n{}", info.log.display(), tail(&info.log, 20))
    }
}

/// The effective user id, from `/proc/self/status`.
fn euid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .context("no effective uid in /proc/self/status")
}

/// Runs `program` as `user` through runuser (we are root), or directly.
fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn id_of(user: &str, flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id").arg(flag).arg(user).output().context("cannot run `id`")?;
    anyhow::ensure!(out.status.success(), "no such user {user:?} (set OMNIROUTE_MCP_POSTGRES_USER to an unprivileged user)");
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

/// `bin_dir` itself when `user` can run from it; otherwise a copy under the
/// temp folder (root-owned, world-readable, reused while its stamp matches).
fn runnable_bin_dir(bin_dir: &Path, user: &str) -> anyhow::Result<PathBuf> {
    let probe = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(bin_dir.join("postgres"))
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if probe.is_ok_and(|s| s.success()) {
        return Ok(bin_dir.to_path_buf());
    }
    // The package root is two levels above bin (`native/bin`); copy all of `native`.
    let native = bin_dir.parent().context("the postgres bin folder has no parent")?;
    let stamp = format!("{}", native.display());
    let copy = std::env::temp_dir().join(format!("omniroute-mcp-postgres-bin-{}", &short_digest(&stamp)));
    let marker = copy.join(".complete");
    let trusted = std::fs::symlink_metadata(&copy).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0
    });
    if trusted && std::fs::read_to_string(&marker).is_ok_and(|m| m == stamp) {
        return Ok(copy.join("bin"));
    }
    let _ = std::fs::remove_dir_all(&copy);
    step(&format!("copying the PostgreSQL binaries to {} (readable by {user})", copy.display()));
    let status = Command::new("cp").arg("-a").arg(native).arg(&copy).status().context("cannot run cp")?;
    anyhow::ensure!(status.success(), "copying {} to {} failed", native.display(), copy.display());
    Command::new("chmod").args(["-R", "go-w,a+rX"]).arg(&copy).status()?;
    std::fs::write(&marker, &stamp)?;
    Ok(copy.join("bin"))
}

/// A short stable name derived from a path (not a secret).
fn short_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn launch(bin_dir: &Path) -> anyhow::Result<PostgresInfo> {
    let root = euid()? == 0;
    let os_user = root.then(|| std::env::var("OMNIROUTE_MCP_POSTGRES_USER").unwrap_or_else(|_| "nobody".into()));
    let bin_dir = match &os_user {
        Some(user) => runnable_bin_dir(bin_dir, user)?,
        None => bin_dir.to_path_buf(),
    };
    let version = String::from_utf8_lossy(
        &as_user(os_user.as_deref(), &bin_dir.join("postgres")).arg("--version").output().context("cannot run postgres --version")?.stdout,
    )
    .trim()
    .to_owned();

    let run_dir = std::env::temp_dir().join(format!("omniroute-mcp-postgres-{}-{}", std::process::id(), random_hex(4)?));
    std::fs::create_dir(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700))?;
    let password = random_hex(16)?;
    let pwfile = run_dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n"))?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
    if let Some(user) = &os_user {
        let (uid, gid) = (id_of(user, "-u")?, id_of(user, "-g")?);
        std::os::unix::fs::chown(&run_dir, Some(uid), Some(gid))?;
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
    }
    let data = run_dir.join("data");
    let log = run_dir.join("postgres.log");

    let t = Instant::now();
    let out = as_user(os_user.as_deref(), &bin_dir.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .context("cannot run initdb")?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&run_dir);
        bail!("initdb failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_file(&pwfile);
    let initdb_secs = t.elapsed().as_secs_f64();

    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let t = Instant::now();
        // Throwaway data: durability settings off for speed (the tests kill our
        // server processes, never PostgreSQL).
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        );
        let status = as_user(os_user.as_deref(), &bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .env(MARKER_VAR, marker(&run_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run pg_ctl")?;
        if !status.success() {
            let text = tail(&log, 30);
            if text.contains("could not bind") && attempt < 3 {
                step(&format!("port {port} was taken meanwhile; retrying with another"));
                continue;
            }
            let _ = std::fs::remove_dir_all(&run_dir);
            bail!("PostgreSQL did not start ({status}); last lines of its log:\n{text}");
        }
        let pid: u32 = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .context("pg_ctl started the server but postmaster.pid has no pid")?;
        let info = PostgresInfo {
            url: format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres"),
            port,
            pid,
            run_dir: run_dir.clone(),
            bin_dir: bin_dir.clone(),
            os_user: os_user.clone(),
            log: log.clone(),
            version: version.clone(),
            started_at: unix_now(),
            initdb_secs,
            start_secs: t.elapsed().as_secs_f64(),
        };
        save_state(&info)?;
        step(&format!(
            "{version} on 127.0.0.1:{port} (pid {pid}{}; initdb {initdb_secs:.1} s, start {:.1} s)",
            os_user.as_deref().map(|u| format!(", as {u}")).unwrap_or_default(),
            info.start_secs
        ));
        return Ok(info);
    }
}
