//! The sandbox engine in `Cargo.lock` is in a patched range of every RustSec
//! advisory against it that we know of (`tests/advisories/wasmtime.toml`,
//! copied from the RustSec advisory database with its source named). This
//! machine's registries do not reach the advisory database itself, so
//! `cargo audit` cannot run here; the vendored list is updated by hand when
//! an advisory is published, and this test keeps a lockfile update from
//! going back into an affected version.

use omniroute_mcp_tests::paths;
use serde_json::Value;

/// A version `major.minor.patch` (pre-release suffixes are not used by the engine's releases).
type Version = (u64, u64, u64);

fn parse_version(text: &str) -> Version {
    let mut parts = text.trim().split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("version {text:?} is not major.minor.patch"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// Whether `version` satisfies a RustSec range such as `">= 48.0.4, < 49.0.0"`.
fn satisfies(version: Version, range: &str) -> bool {
    range.split(',').all(|bound| {
        let bound = bound.trim();
        if let Some(v) = bound.strip_prefix(">=") {
            version >= parse_version(v)
        } else if let Some(v) = bound.strip_prefix('<') {
            version < parse_version(v)
        } else if let Some(v) = bound.strip_prefix('>') {
            version > parse_version(v)
        } else {
            panic!("unknown bound {bound:?} in range {range:?}")
        }
    })
}

/// The versions of `package` in the workspace's `Cargo.lock`.
fn locked_versions(lock: &toml::Table, package: &str) -> Vec<String> {
    lock["package"]
        .as_array()
        .expect("Cargo.lock has [[package]] entries")
        .iter()
        .filter(|p| p["name"].as_str() == Some(package))
        .map(|p| p["version"].as_str().expect("a locked package has a version").to_owned())
        .collect()
}

#[test]
fn the_locked_engine_is_patched_against_every_listed_advisory() {
    let root = paths::workspace_root();
    let lock: toml::Table = std::fs::read_to_string(root.join("Cargo.lock"))
        .expect("read Cargo.lock")
        .parse()
        .expect("Cargo.lock is TOML");
    let advisories: toml::Table = std::fs::read_to_string(root.join("tests/advisories/wasmtime.toml"))
        .expect("read tests/advisories/wasmtime.toml")
        .parse()
        .expect("the advisory list is TOML");
    let advisories: Value = serde_json::to_value(&advisories["advisory"]).expect("advisories as JSON");
    let advisories = advisories.as_array().expect("[[advisory]] entries");
    assert!(advisories.len() >= 10, "the advisory list lost entries");

    let mut checked = 0;
    let mut affected = Vec::new();
    for advisory in advisories {
        let id = advisory["id"].as_str().expect("id");
        let package = advisory["package"].as_str().expect("package");
        let patched: Vec<&str> = advisory["patched"]
            .as_array()
            .expect("patched ranges")
            .iter()
            .map(|r| r.as_str().expect("a range is a string"))
            .collect();
        let versions = locked_versions(&lock, package);
        assert!(!versions.is_empty(), "{id}: {package} is not in Cargo.lock; is the list still about our engine?");
        for version in versions {
            checked += 1;
            if !patched.iter().any(|range| satisfies(parse_version(&version), range)) {
                affected.push(format!("{package} {version} is affected by {id} (patched: {})", patched.join(" | ")));
            }
        }
    }
    assert!(checked >= advisories.len());
    assert!(affected.is_empty(), "update the engine: {}", affected.join("; "));
}

#[test]
fn ranges_are_read_as_rustsec_writes_them() {
    assert!(satisfies((48, 0, 10), ">= 48.0.4, < 49.0.0"));
    assert!(!satisfies((48, 0, 3), ">= 48.0.4, < 49.0.0"));
    assert!(!satisfies((49, 0, 0), ">= 48.0.4, < 49.0.0"));
    assert!(satisfies((50, 0, 1), ">= 49.0.2"));
    assert!(!satisfies((47, 0, 3), ">= 47.0.4"));
}
