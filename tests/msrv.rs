//! Cargo.toml's `rust-version` is the true minimum of the locked build: at least every locked
//! dependency's `rust-version` (those that declare one), and equal to the largest of them, so
//! neither a `cargo update` that needs a newer rustc nor a stale, too-high claim goes
//! unnoticed. Reads `cargo metadata --locked` for the packages built on this platform.
//! Also: a locked `time` older than the RUSTSEC-2026-0009 fix has its parser left out.

use std::process::Command;

type Version = (u64, u64, u64);

fn parse(v: &str) -> Version {
    let mut it = v.split('.').map(|p| p.parse::<u64>().expect(v));
    (
        it.next().unwrap(),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("host line")
}

fn metadata() -> serde_json::Value {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host()])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --locked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rust_version_is_the_largest_locked_dependency_rust_version() {
    let meta = metadata();
    let root_id = meta["resolve"]["root"].as_str().expect("a root package");
    let mut ours = None;
    let mut needs: Vec<(Version, String)> = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let Some(rv) = p["rust_version"].as_str() else {
            continue;
        };
        if p["id"] == root_id {
            ours = Some(parse(rv));
        } else {
            needs.push((
                parse(rv),
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                ),
            ));
        }
    }
    let ours = ours.expect("Cargo.toml declares rust-version");
    let too_new: Vec<_> = needs.iter().filter(|(v, _)| *v > ours).collect();
    assert!(
        too_new.is_empty(),
        "locked dependencies need a newer rustc than Cargo.toml's rust-version {ours:?}: {too_new:?}"
    );
    let (max, _) = needs
        .iter()
        .max()
        .expect("dependencies with a rust-version");
    let at_max: Vec<_> = needs
        .iter()
        .filter(|(v, _)| v == max)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        ours, *max,
        "rust-version {ours:?} is above what the lock needs ({max:?}, for {at_max:?}): lower it"
    );
}

/// The lock holds time 0.3.45 (through simplelog) because 0.3.47, which fixes
/// RUSTSEC-2026-0009, needs rustc 1.88 and Debian 13 ships 1.85. The advisory is a stack
/// exhaustion in time's RFC 2822 *parser*; the build must not compile it (the `parsing`
/// feature off), so that the affected code is not in the binary. A newer time is fine.
#[test]
fn a_time_release_before_the_rustsec_2026_0009_fix_has_no_parser_compiled() {
    let meta = metadata();
    let mut seen = false;
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        let Some(p) = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id && p["name"] == "time")
        else {
            continue;
        };
        seen = true;
        let version = parse(p["version"].as_str().unwrap());
        let features: Vec<&str> = node["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        assert!(
            version >= (0, 3, 47) || !features.contains(&"parsing"),
            "time {version:?} (RUSTSEC-2026-0009) is built with its parser: {features:?}; \
             update time to >= 0.3.47 (rustc 1.88) or drop what enables `parsing`"
        );
    }
    assert!(seen, "time is in the lock (through simplelog)");
}
