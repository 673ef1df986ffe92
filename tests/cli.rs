//! The command line, run as a user would, without root or interfaces.

use std::process::{Command, Output};

fn snoopcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snoopcast"))
        .args(args)
        .output()
        .expect("run snoopcast")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_interface_exits_2_and_names_it() {
    let o = snoopcast(&["run", "--upstream", "nosuchif0", "--downstream", "lo"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nosuchif0"), "{}", stderr(&o));
    let o = snoopcast(&["run", "--upstream", "lo", "--downstream", "nosuchif1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nosuchif1"), "{}", stderr(&o));
}

#[test]
fn upstream_equal_to_downstream_exits_2() {
    let o = snoopcast(&["run", "--upstream", "lo", "--downstream", "lo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must differ"), "{}", stderr(&o));
}

#[test]
fn bad_values_exit_2_and_name_the_value() {
    for (opt, val) in [
        ("--query-interval", "soonish"),
        ("--query-response-interval", "10 parsecs"),
        ("--allow", "239.0.0.0/40"),
        ("--deny", "not-a-prefix"),
        ("--source-mac", "zz:zz"),
        ("--robustness", "0"),
        ("--igmp-version", "1"),
        ("--querier", "sometimes"),
        ("--compat-fallback", "broadcast"),
        ("--max-members", "-5"),
    ] {
        let o = snoopcast(&["run", "--upstream", "lo", "--downstream", "dn0", opt, val]);
        assert_eq!(o.status.code(), Some(2), "{opt} {val}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(val),
            "{opt} {val}: message should name the value: {}",
            stderr(&o)
        );
    }
}

#[test]
fn missing_required_options_exit_2() {
    assert_eq!(
        snoopcast(&["run", "--upstream", "lo"]).status.code(),
        Some(2)
    );
    assert_eq!(snoopcast(&["run"]).status.code(), Some(2));
    assert_eq!(snoopcast(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn help_lists_every_contract_option() {
    let o = snoopcast(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--upstream",
        "--downstream",
        "--control",
        "--query-interval",
        "--query-response-interval",
        "--robustness",
        "--querier",
        "--igmp-version",
        "--allow",
        "--deny",
        "--max-groups-per-host",
        "--max-members",
        "--query-source",
        "--compat-fallback",
        "--workers",
        "--source-mac",
        "--log-level",
        "--log-file",
    ] {
        assert!(out.contains(opt), "run --help lacks {opt}");
    }
}

#[test]
fn status_without_a_daemon_says_so_and_exits_1() {
    let path = std::env::temp_dir().join(format!("snoopcast-cli-test-{}.sock", std::process::id()));
    let o = snoopcast(&["status", "--control", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    let o = snoopcast(&["status", "--json", "--control", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}
