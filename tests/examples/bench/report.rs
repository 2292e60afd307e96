//! What one bench run measured, and its three renderings: JSON, a markdown table, an SVG chart.

use serde_json::{Value, json};

use crate::http::Throughput;
use crate::stats::{Summary, round1};

/// One tool (or `ping`) measured on one server.
pub struct ToolRun {
    pub tool: &'static str,
    pub latency: Summary,
    /// Calls whose result had `isError: true`.
    pub is_error: usize,
    /// The same gateway requests sent directly (none for `ping`).
    pub floor: Option<Summary>,
    pub requests: String,
}

impl ToolRun {
    /// Median latency minus the median of the direct requests, µs.
    pub fn overhead_us(&self) -> Option<f64> {
        if self.tool == "ping" {
            return Some(self.latency.median_us);
        }
        self.floor.map(|f| self.latency.median_us - f.median_us)
    }
}

/// A stdio server (ours or the original) against one gateway.
#[derive(Default)]
pub struct Server {
    pub startup_cold_ms: Option<f64>,
    /// The first get_health right after the cold start (ours compiles that one component then).
    pub first_call_cold_ms: Option<f64>,
    pub startup_warm_ms: Option<f64>,
    pub rss_kib: Option<u64>,
    pub tools: Vec<ToolRun>,
    pub tools_listed: usize,
    /// Non-JSON lines on stdout (the original's `[DB] …`/`[Migration] …` lines).
    pub stdout_junk_lines: usize,
}

impl Server {
    pub fn tool(&self, tool: &str) -> Option<&ToolRun> {
        self.tools.iter().find(|t| t.tool == tool)
    }
}

/// Our server over Streamable HTTP (fake gateway only).
pub struct Http {
    pub tools: Vec<ToolRun>,
    pub throughput: Vec<Throughput>,
    pub rss_kib: Option<u64>,
    /// Idle sessions on a fresh server.
    pub idle: Result<IdleSessions, String>,
}

/// `sessions` idle sessions (initialize + initialized, nothing after) over `tenants`
/// tenants, opened on a fresh, warmed server: its VmRSS before, just after, and once the
/// server has parked them (its default park delay); then the first call to a parked
/// session (which restores it) beside a call to a live one.
pub struct IdleSessions {
    pub sessions: usize,
    pub tenants: usize,
    pub before_kib: u64,
    pub after_kib: u64,
    pub parked_kib: Option<u64>,
    pub restore_call_us: Option<f64>,
    pub live_call_us: Option<f64>,
}

impl IdleSessions {
    /// What the sessions added just after they were opened, MiB.
    pub fn added_mib(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / 1024.0
    }

    /// What they add once parked (idle for the default park delay), MiB.
    pub fn parked_added_mib(&self) -> Option<f64> {
        self.parked_kib.map(|k| k.saturating_sub(self.before_kib) as f64 / 1024.0)
    }
}

pub struct Section {
    pub key: &'static str,
    pub title: String,
    pub ours: Result<Server, String>,
    pub http: Option<Result<Http, String>>,
    pub original: Result<Server, String>,
    /// ours, stdio, `--audit off` (fake only).
    pub audit_off: Option<Result<Summary, String>>,
}

pub struct Results {
    pub machine: String,
    pub settings: String,
    pub sections: Vec<Section>,
    pub skipped: Vec<String>,
}

pub const TOOL_ORDER: [&str; 4] = ["get_health", "list_combos", "route_request", "ping"];

fn us(x: f64) -> String {
    if x.abs() >= 10_000.0 {
        format!("{:.1} ms", x / 1e3)
    } else if x.abs() >= 1_000.0 {
        format!("{:.2} ms", x / 1e3)
    } else {
        format!("{x:.0} µs")
    }
}

fn lat(s: &Summary) -> String {
    format!("{} / {}", us(s.median_us), us(s.p99_us))
}

fn ms(x: f64) -> String {
    if x >= 1000.0 { format!("{:.2} s", x / 1e3) } else { format!("{x:.1} ms") }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(o), Some(t)) if t > 0.0 => format!("{:.3}", o / t),
        _ => "–".into(),
    }
}

fn opt<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map(show).unwrap_or_else(|| "–".into())
}

fn reason(result: &Result<impl Sized, String>) -> Option<String> {
    result.as_ref().err().map(|e| e.lines().next().unwrap_or_default().chars().take(160).collect())
}

impl Results {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        md.push_str(&format!("Machine: {}. {}\n\n", self.machine, self.settings));
        md.push_str("Per-call latency, median / p99 (sequential calls, one session). Overhead = median minus the median of the same gateway requests sent directly with a plain HTTP client (concurrently where the tool does; route_request's combo lookup, completion and price lookup one after another); for `ping` (no gateway request) it is the whole round trip.\n\n");
        md.push_str("| gateway | tool | ours stdio | ours HTTP | direct floor (ours) | **ours overhead** | original stdio | direct floor (original) | **original overhead** | overhead ours/orig | latency ours/orig |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for section in &self.sections {
            let ours = section.ours.as_ref().ok();
            let orig = section.original.as_ref().ok();
            let http = section.http.as_ref().and_then(|h| h.as_ref().ok());
            for tool in TOOL_ORDER {
                let o = ours.and_then(|s| s.tool(tool));
                let t = orig.and_then(|s| s.tool(tool));
                let h = http.and_then(|h| h.tools.iter().find(|r| r.tool == tool));
                if o.is_none() && t.is_none() {
                    continue;
                }
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    section.key,
                    tool,
                    opt(o, |r| lat(&r.latency)),
                    opt(h, |r| lat(&r.latency)),
                    opt(o.and_then(|r| r.floor), |f| lat(&f)),
                    opt(o.and_then(ToolRun::overhead_us), us),
                    opt(t, |r| lat(&r.latency)),
                    opt(t.and_then(|r| r.floor), |f| lat(&f)),
                    opt(t.and_then(ToolRun::overhead_us), us),
                    ratio(o.and_then(ToolRun::overhead_us), t.and_then(ToolRun::overhead_us)),
                    ratio(o.map(|r| r.latency.median_us), t.map(|r| r.latency.median_us)),
                ));
            }
        }
        md.push('\n');
        md.push_str("| measurement | ours | original | ours/original |\n| --- | --- | --- | --- |\n");
        for section in &self.sections {
            let ours = section.ours.as_ref().ok();
            let orig = section.original.as_ref().ok();
            let rows: [Row<'_>; 4] = [
                ("startup to the first tools/list answer, cold (fresh cache / fresh DATA_DIR; ours: the self-contained binary, no tools folder)", ours.and_then(|s| s.startup_cold_ms), orig.and_then(|s| s.startup_cold_ms), ms),
                ("the first get_health after that cold start", ours.and_then(|s| s.first_call_cold_ms), orig.and_then(|s| s.first_call_cold_ms), ms),
                ("startup to the first tools/list answer, warm (median)", ours.and_then(|s| s.startup_warm_ms), orig.and_then(|s| s.startup_warm_ms), ms),
                ("peak RSS (VmHWM), stdio, after the calls above", ours.and_then(|s| s.rss_kib).map(|k| k as f64), orig.and_then(|s| s.rss_kib).map(|k| k as f64), |k| mib(k as u64)),
            ];
            for (what, o, t, show) in rows {
                md.push_str(&format!("| {}: {what} | {} | {} | {} |\n", section.key, opt(o, show), opt(t, show), ratio(o, t)));
            }
            if let Some(Ok(http)) = &section.http {
                let tput: Vec<String> = http.throughput.iter().map(|t| format!("{:.0}", t.calls_per_s)).collect();
                let callers: Vec<String> = http.throughput.iter().map(|t| t.callers.to_string()).collect();
                let failures: usize = http.throughput.iter().map(|t| t.failures).sum();
                md.push_str(&format!(
                    "| {}: get_health calls/s over HTTP with {} concurrent callers{} | {} | n/a (stdio only) | |\n",
                    section.key,
                    callers.join(" / "),
                    if failures > 0 { format!(" ({failures} failed)") } else { String::new() },
                    tput.join(" / ")
                ));
                if http.throughput.iter().any(|t| t.server_cpu_us.is_some()) {
                    let cpu: Vec<String> = http.throughput.iter().map(|t| t.server_cpu_us.map_or("–".into(), |us| format!("{us:.0} µs"))).collect();
                    md.push_str(&format!(
                        "| {}: the server's CPU time per call in those runs (all threads, user + system) | {} | n/a | |\n",
                        section.key,
                        cpu.join(" / ")
                    ));
                }
                md.push_str(&format!(
                    "| {}: peak RSS of the HTTP server after the 64-caller run | {} | n/a | |\n",
                    section.key,
                    opt(http.rss_kib, mib)
                ));
                md.push_str(&match &http.idle {
                    Ok(idle) => format!(
                        "| {}: RSS added by {} idle HTTP sessions ({} tenants) over a fresh server ({} before): just opened / parked (idle for the default 10 s) | {:.1} MiB / {} | n/a | |\n\
                         | {}: the first get_health in a parked session (restores it) / in a live one, median of 20 | {} / {} | n/a | |\n",
                        section.key,
                        idle.sessions,
                        idle.tenants,
                        mib(idle.before_kib),
                        idle.added_mib(),
                        idle.parked_added_mib().map_or("–".into(), |m| format!("{m:.1} MiB")),
                        section.key,
                        opt(idle.restore_call_us, us),
                        opt(idle.live_call_us, us),
                    ),
                    Err(e) => format!("| {}: idle HTTP sessions | not measured: {e:.120} | n/a | |\n", section.key),
                });
            }
            if let Some(audit_off) = &section.audit_off {
                let on = ours.and_then(|s| s.tool("get_health")).map(|r| r.latency.median_us);
                md.push_str(&format!(
                    "| {}: get_health median, audit on / `--audit off` | {} / {} | | |\n",
                    section.key,
                    opt(on, us),
                    match audit_off { Ok(s) => us(s.median_us), Err(e) => format!("not measured: {e:.80}") }
                ));
            }
        }
        md.push('\n');
        md.push_str(&self.targets_markdown());
        let mut notes = Vec::new();
        for section in &self.sections {
            if let Some(e) = reason(&section.ours) {
                notes.push(format!("{}: our server not measured: {e}", section.key));
            }
            if let Some(e) = reason(&section.original) {
                notes.push(format!("{}: original server not measured: {e}", section.key));
            }
            if let Some(Err(e)) = &section.http {
                notes.push(format!("{}: HTTP transport not measured: {e:.160}", section.key));
            }
            for (who, server) in [("ours", section.ours.as_ref().ok()), ("original", section.original.as_ref().ok())] {
                let Some(server) = server else { continue };
                for run in &server.tools {
                    if run.is_error > 0 {
                        notes.push(format!("{}: {who} {}: {} of {} calls answered isError", section.key, run.tool, run.is_error, run.latency.n));
                    }
                }
                if server.stdout_junk_lines > 0 {
                    notes.push(format!("{}: {who} wrote {} non-JSON stdout lines (skipped)", section.key, server.stdout_junk_lines));
                }
            }
        }
        for skipped in &self.skipped {
            notes.push(skipped.clone());
        }
        if let Some(section) = self.sections.first() {
            for (who, server) in [("ours", section.ours.as_ref().ok()), ("original", section.original.as_ref().ok())] {
                for run in server.map(|s| s.tools.as_slice()).unwrap_or_default() {
                    if !run.requests.is_empty() {
                        notes.push(format!("gateway requests per call, {who} {}: {}", run.tool, run.requests));
                    }
                }
            }
        }
        if !notes.is_empty() {
            md.push_str("\nNotes:\n\n");
            for note in notes {
                md.push_str(&format!("- {note}\n"));
            }
        }
        md
    }

    fn targets_markdown(&self) -> String {
        let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
        for section in &self.sections {
            // Issue 17's cold-start targets, for the self-contained binary with empty caches.
            let Ok(ours) = &section.ours else { continue };
            if let Some(cold) = ours.startup_cold_ms {
                rows.push((format!("cold start to tools/list < 50 ms ({})", section.key), ms(cold), Some(cold < 50.0)));
            }
            if let Some(first) = ours.first_call_cold_ms {
                rows.push((format!("then the first get_health < 150 ms ({})", section.key), ms(first), Some(first < 150.0)));
            }
        }
        for section in &self.sections {
            let (Ok(ours), Ok(orig)) = (&section.ours, &section.original) else { continue };
            for (kind, o, t) in [("cold", ours.startup_cold_ms, orig.startup_cold_ms), ("warm", ours.startup_warm_ms, orig.startup_warm_ms)] {
                if let (Some(o), Some(t)) = (o, t) {
                    rows.push((format!("startup ≥ 10× faster ({}, {kind})", section.key), format!("{:.1}× ({} vs {})", t / o, ms(o), ms(t)), Some(t / o >= 10.0)));
                }
            }
            for tool in ["get_health", "list_combos", "route_request"] {
                let (Some(o), Some(t)) = (ours.tool(tool).and_then(ToolRun::overhead_us), orig.tool(tool).and_then(ToolRun::overhead_us)) else { continue };
                // An overhead at or below 0 means the server's median is within the
                // gateway's own run-to-run noise: no ratio, and no verdict either way.
                let (factor, met) = if o > 0.0 && t > 0.0 {
                    (format!("{:.1}×", t / o), Some(t / o >= 5.0))
                } else {
                    ("not measurable: an overhead is ≤ 0, inside the gateway's noise".to_owned(), None)
                };
                rows.push((format!("overhead ≥ 5× lower ({}, {tool})", section.key), format!("{factor} ({} vs {})", us(o), us(t)), met));
            }
            if let (Some(o), Some(t)) = (ours.rss_kib, orig.rss_kib) {
                rows.push((format!("peak memory ≤ 1/4 ({})", section.key), format!("{:.3} ({} vs {})", o as f64 / t as f64, mib(o), mib(t)), Some(o * 4 <= t)));
            }
        }
        if let Some(Ok(ours)) = self.sections.iter().find(|s| s.key == "fake").map(|s| &s.ours) {
            for tool in ["get_health", "list_combos", "route_request"] {
                if let Some(o) = ours.tool(tool).and_then(ToolRun::overhead_us) {
                    rows.push((format!("overhead ≤ 150 µs at the median (#20; fake, stdio, audit on, {tool})"), us(o), Some(o <= 150.0)));
                    rows.push((format!("overhead < 100 µs at the median (fake, stdio, {tool})"), us(o), Some(o < 100.0)));
                }
            }
        }
        if let Some(Some(Ok(http))) = self.sections.iter().find(|s| s.key == "fake").map(|s| &s.http) {
            let at = |callers: usize| http.throughput.iter().find(|t| t.callers == callers).map(|t| t.calls_per_s);
            if let Some(eight) = at(8) {
                rows.push(("HTTP get_health ≥ 3,000 calls/s with 8 callers (#20, fake)".into(), format!("{eight:.0}/s"), Some(eight >= 3000.0)));
                if let Some(many) = at(64) {
                    let share = many / eight;
                    rows.push((
                        "HTTP with 64 callers ≥ 95 % of 8 callers' rate (#20, fake)".into(),
                        format!("{:.0} % ({many:.0}/s vs {eight:.0}/s)", share * 100.0),
                        Some(share >= 0.95),
                    ));
                }
            }
            if let Ok(idle) = &http.idle {
                if let Some(parked) = idle.parked_added_mib() {
                    rows.push((
                        format!("{} idle HTTP sessions ≤ 50 MiB over a fresh server (#20, fake; parked, as after the default 10 s idle)", idle.sessions),
                        format!("{parked:.1} MiB (just opened: {:.1} MiB)", idle.added_mib()),
                        Some(parked <= 50.0),
                    ));
                }
            }
        }
        let mut md = String::from("| target (`docs/architecture.md`) | measured | met |\n| --- | --- | --- |\n");
        for (target, measured, met) in rows {
            let met = match met { Some(true) => "yes", Some(false) => "**no**", None => "–" };
            md.push_str(&format!("| {target} | {measured} | {met} |\n"));
        }
        md
    }

    pub fn json(&self) -> Value {
        let tool = |r: &ToolRun| {
            json!({
                "tool": r.tool, "latency": r.latency.json(), "is_error": r.is_error,
                "floor": r.floor.map(|f| f.json()), "overhead_us": r.overhead_us().map(round1), "gateway_requests": r.requests,
            })
        };
        let server = |s: &Result<Server, String>| match s {
            Ok(s) => json!({
                "startup_cold_ms": s.startup_cold_ms.map(round1), "first_call_cold_ms": s.first_call_cold_ms.map(round1),
                "startup_warm_ms": s.startup_warm_ms.map(round1),
                "peak_rss_kib": s.rss_kib, "tools_listed": s.tools_listed, "stdout_non_json_lines": s.stdout_junk_lines,
                "calls": s.tools.iter().map(tool).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "not_measured": e }),
        };
        let sections: Vec<Value> = self
            .sections
            .iter()
            .map(|s| {
                json!({
                    "gateway": s.key, "title": s.title,
                    "ours_stdio": server(&s.ours),
                    "ours_http": s.http.as_ref().map(|h| match h {
                        Ok(h) => json!({
                            "calls": h.tools.iter().map(tool).collect::<Vec<_>>(),
                            "throughput": h.throughput.iter().map(|t| json!({"callers": t.callers, "calls": t.calls, "calls_per_s": round1(t.calls_per_s), "rounds_calls_per_s": t.rounds.iter().map(|r| round1(*r)).collect::<Vec<_>>(), "failures": t.failures, "server_cpu_us_per_call": t.server_cpu_us.map(round1)})).collect::<Vec<_>>(),
                            "peak_rss_kib": h.rss_kib,
                            "idle_sessions": match &h.idle {
                                Ok(i) => json!({"sessions": i.sessions, "tenants": i.tenants, "rss_before_kib": i.before_kib,
                                    "rss_after_kib": i.after_kib, "added_mib": round1(i.added_mib()), "rss_parked_kib": i.parked_kib,
                                    "parked_added_mib": i.parked_added_mib().map(round1), "restore_call_us": i.restore_call_us.map(round1),
                                    "live_call_us": i.live_call_us.map(round1)}),
                                Err(e) => json!({ "not_measured": e }),
                            },
                        }),
                        Err(e) => json!({ "not_measured": e }),
                    }),
                    "ours_stdio_audit_off_get_health": s.audit_off.as_ref().map(|a| match a { Ok(s) => s.json(), Err(e) => json!({"not_measured": e}) }),
                    "original_stdio": server(&s.original),
                })
            })
            .collect();
        json!({ "machine": self.machine, "settings": self.settings, "sections": sections, "skipped": self.skipped })
    }

    /// Median latency by tool, both servers and the floor, one panel per gateway (own scale).
    pub fn svg(&self) -> String {
        const W: f64 = 960.0;
        const LEFT: f64 = 150.0;
        const BAR: f64 = 14.0;
        let series: [(&str, &str); 4] = [("ours stdio", "#2b7bb9"), ("ours HTTP", "#7fb3d9"), ("direct floor", "#999999"), ("original stdio", "#d95f02")];
        let mut body = String::new();
        let mut y = 50.0;
        for section in &self.sections {
            let ours = section.ours.as_ref().ok();
            let orig = section.original.as_ref().ok();
            let http = section.http.as_ref().and_then(|h| h.as_ref().ok());
            let mut rows = Vec::new();
            for tool in TOOL_ORDER {
                let o = ours.and_then(|s| s.tool(tool));
                let values = [
                    o.map(|r| r.latency.median_us),
                    http.and_then(|h| h.tools.iter().find(|r| r.tool == tool)).map(|r| r.latency.median_us),
                    o.and_then(|r| r.floor).map(|f| f.median_us),
                    orig.and_then(|s| s.tool(tool)).map(|r| r.latency.median_us),
                ];
                if values.iter().any(Option::is_some) {
                    rows.push((tool, values));
                }
            }
            let max = rows.iter().flat_map(|(_, v)| v.iter().flatten()).cloned().fold(1.0, f64::max);
            body.push_str(&format!("<text x=\"10\" y=\"{y}\" font-weight=\"bold\">{} (median latency per call; scale 0–{})</text>\n", xml(&section.title), us(max)));
            y += 12.0;
            for (tool, values) in rows {
                body.push_str(&format!("<text x=\"10\" y=\"{}\">{tool}</text>\n", y + 2.0 * BAR + 4.0));
                for ((_, color), value) in series.iter().zip(values) {
                    if let Some(v) = value {
                        let w = ((W - LEFT - 110.0) * v / max).max(1.0);
                        body.push_str(&format!("<rect x=\"{LEFT}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/>\n", BAR - 2.0));
                        body.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>\n", LEFT + w + 4.0, y + BAR - 4.0, us(v)));
                    }
                    y += BAR;
                }
                y += 10.0;
            }
            y += 24.0;
        }
        let mut legend = String::new();
        for (i, (name, color)) in series.iter().enumerate() {
            let x = 10.0 + i as f64 * 170.0;
            legend.push_str(&format!("<rect x=\"{x}\" y=\"12\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"22\">{name}</text>\n", x + 16.0));
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{y}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{legend}{body}</svg>\n"
        )
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One comparison row: what, ours, the original's, how to show a value.
type Row<'a> = (&'a str, Option<f64>, Option<f64>, fn(f64) -> String);
