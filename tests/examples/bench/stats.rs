//! Latency samples and their summary (median, p99), and peak RSS and CPU time from /proc.

use std::time::Duration;

/// Median and p99 of a set of samples, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub median_us: f64,
    pub p99_us: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        Some(Summary {
            n: sorted.len(),
            median_us: percentile(&sorted, 50.0),
            p99_us: percentile(&sorted, 99.0),
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "n": self.n, "median_us": round1(self.median_us), "p99_us": round1(self.p99_us) })
    }
}

/// Nearest-rank percentile of sorted samples, in microseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e6
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The median of a few durations (startup repeats), in milliseconds.
pub fn median_ms(samples: &[Duration]) -> Option<f64> {
    Summary::of(samples).map(|s| s.median_us / 1e3)
}

/// Peak resident set size (`VmHWM`) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One clock tick of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux), in microseconds.
pub const TICK_US: f64 = 10_000.0;

/// CPU time of a live process, all threads, user + system (`utime` + `stime`), in ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
