//! `cargo xtask run`: build, then serve MCP on stdio against the user's gateway or, on a
//! machine where none answers, the project's demo gateway.
//!
//! * A gateway URL the user set (`OMNIROUTE_BASE_URL`, `BASE_URL`, `NEXT_PUBLIC_BASE_URL` or
//!   `--base-url` among the server's arguments) is used as it is: nothing is started in its
//!   place, even if it is down (the server's startup line then says so).
//! * Otherwise, a gateway answering at the default URL is used.
//! * Otherwise the demo gateway is started the way `cargo xtask gateway start` does (installed
//!   on first use, with progress) while the build runs, and the server is pointed at it. It is a
//!   real OmniRoute gateway on loopback with a mock upstream, not the user's; it keeps running
//!   when the server stops, for the next run, until `cargo xtask gateway stop`.
//!
//! Only the server writes to stdout (JSON-RPC); every progress line goes to stderr.

use crate::build::{self, Built};
use crate::gateway::{self, GatewayInfo};
use crate::util::step;
use std::process::Command;

/// The server's own default gateway URL.
pub const DEFAULT_BASE_URL: &str = "http://localhost:20128";

/// The environment variables the server reads the gateway URL from, in its order.
const BASE_URL_VARS: [&str; 3] = ["OMNIROUTE_BASE_URL", "BASE_URL", "NEXT_PUBLIC_BASE_URL"];

/// `cargo xtask run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Build and serve the host in release mode.
    #[arg(long)]
    pub release: bool,
    /// Serve the last build (`cargo xtask build`) instead of building first.
    #[arg(long)]
    pub no_build: bool,
    /// The URL probed when no gateway URL is set; the tests point it at a closed port.
    #[arg(long, hide = true, default_value = DEFAULT_BASE_URL)]
    pub default_url: String,
    /// Arguments for the server (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The gateway the server is pointed at, and why.
#[derive(Debug)]
enum Gateway {
    /// The user's setting, passed on untouched.
    UserSet(String),
    /// Something answered the health route at the default URL.
    AtDefault(String),
    /// The project's demo gateway (an instance of `cargo xtask gateway`).
    Demo(Box<GatewayInfo>),
    /// No gateway at the default URL and the demo gateway could not be started: the server
    /// starts anyway and reports the gateway unreachable.
    Unavailable(String),
}

/// Runs `cargo xtask run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let user_set = user_set_url(&args.args);
    let default_url = args.default_url.clone();
    // The demo gateway's install and start (minutes on a fresh machine) overlap the build.
    let choosing = std::thread::spawn(move || choose(user_set, &default_url));
    let built = if args.no_build {
        build::existing(args.release)?
    } else {
        build::build_all(args.release)?
    };
    let gateway = choosing
        .join()
        .map_err(|_| anyhow::anyhow!("the thread choosing the gateway panicked"))?;
    announce(&built, &gateway);
    let status = server_command(&built, &gateway, &args.args).status()?;
    anyhow::ensure!(status.success(), "omniroute-mcp exited with {status}");
    Ok(())
}

/// The gateway URL the user set, if any: a non-empty variable of [`BASE_URL_VARS`] or a
/// `--base-url` among the server's arguments.
fn user_set_url(server_args: &[String]) -> Option<String> {
    let from_args = server_args.iter().enumerate().find_map(|(i, arg)| {
        match arg.strip_prefix("--base-url") {
            Some("") => server_args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        }
    });
    from_args.or_else(|| {
        BASE_URL_VARS
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
    })
}

/// Picks the gateway (see the module comment); starts the demo gateway if it comes to that.
fn choose(user_set: Option<String>, default_url: &str) -> Gateway {
    if let Some(url) = user_set {
        return Gateway::UserSet(url);
    }
    let default_url = default_url.trim_end_matches('/');
    if gateway::health_status(default_url) == Some(200) {
        return Gateway::AtDefault(default_url.to_owned());
    }
    step(&format!(
        "no gateway answers at {default_url} and OMNIROUTE_BASE_URL is not set: starting the \
         project's demo gateway (as `cargo xtask gateway start` does; the first time it installs \
         OmniRoute, about 1.7 GB, 6-10 minutes)"
    ));
    match gateway::ensure_running() {
        Ok(info) => Gateway::Demo(Box::new(info)),
        Err(e) => {
            step(&format!("could not start the demo gateway: {e:#}"));
            Gateway::Unavailable(default_url.to_owned())
        }
    }
}

/// Says on stderr which gateway the server gets; for the demo gateway, that it is not the
/// user's and how it ends.
fn announce(built: &Built, gateway: &Gateway) {
    let binary = built.binary.display();
    match gateway {
        Gateway::UserSet(url) => step(&format!("starting {binary} on stdio against your gateway {url}")),
        Gateway::AtDefault(url) => step(&format!("starting {binary} on stdio against the gateway answering at {url}")),
        Gateway::Demo(info) => step(&format!(
            "starting {binary} on stdio against the DEMO gateway at {}: OmniRoute {} started by this \
             project on loopback with a mock upstream (canned answers, no real model provider), not \
             your gateway. It keeps running after the server stops, for the next run; `cargo xtask \
             gateway stop` ends it. To use your gateway, set OMNIROUTE_BASE_URL.",
            info.base_url, info.omniroute_version
        )),
        Gateway::Unavailable(url) => step(&format!(
            "starting {binary} on stdio against {url}, where no gateway answers: every tool will \
             report it unreachable. Set OMNIROUTE_BASE_URL to your gateway, or fix the demo \
             gateway's start (above) and run again."
        )),
    }
}

/// The server process: stdio inherited, the gateway chosen passed in its environment.
fn server_command(built: &Built, gateway: &Gateway, server_args: &[String]) -> Command {
    let mut cmd = Command::new(&built.binary);
    cmd.arg("--tools-dir").arg(&built.tools_dir).args(server_args);
    match gateway {
        Gateway::UserSet(_) => {}
        Gateway::AtDefault(url) | Gateway::Unavailable(url) => {
            cmd.env("OMNIROUTE_BASE_URL", url);
        }
        Gateway::Demo(info) => {
            // The demo gateway's own key; the user's credentials are for the user's gateway.
            cmd.env("OMNIROUTE_BASE_URL", &info.base_url)
                .env("OMNIROUTE_API_KEY", &info.api_key)
                .env_remove("OMNIROUTE_DASHBOARD_PASSWORD");
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_among_the_server_arguments_is_the_users() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            user_set_url(&args(&["--base-url", "http://gw:1"])),
            Some("http://gw:1".into())
        );
        assert_eq!(
            user_set_url(&args(&["--log", "debug", "--base-url=http://gw:2"])),
            Some("http://gw:2".into())
        );
    }

    #[test]
    fn a_user_setting_is_used_even_when_nothing_answers_there() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", listener.local_addr().expect("addr"))
        };
        match choose(Some(closed.clone()), DEFAULT_BASE_URL) {
            Gateway::UserSet(url) => assert_eq!(url, closed),
            other => panic!("nothing may be started in place of the user's gateway: {other:?}"),
        }
    }
}
