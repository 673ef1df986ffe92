//! Cargo.toml's `rust-version` is the true minimum of the locked build: at least every locked
//! dependency's `rust-version` (those that declare one), and equal to the largest of them, so
//! neither a `cargo update` that needs a newer rustc nor a stale, too-high claim goes
//! unnoticed. Reads `cargo metadata --locked` for the packages built on this platform.

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

#[test]
fn rust_version_is_the_largest_locked_dependency_rust_version() {
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
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
