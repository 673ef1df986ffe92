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
    // It names the socket it tried and the option to give another.
    assert!(
        stderr(&o).contains(path.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--control PATH"), "{}", stderr(&o));
    let o = snoopcast(&["status", "--json", "--control", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_tries_the_default_socket_of_the_unit_and_names_it() {
    // (No daemon listens on the default socket where the tests run: they use their own.)
    let o = snoopcast(&["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/run/snoopcast/snoopcast.sock"),
        "{}",
        stderr(&o)
    );
}

/// A file in a fresh temporary directory, removed with it.
fn config_file(name: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("snoopcast-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!("{name}.toml"));
    std::fs::write(&f, text).unwrap();
    (dir, f)
}

#[test]
fn config_file_errors_exit_2_with_one_line_naming_file_line_and_key() {
    for (name, text, want) in [
        (
            "unknown",
            "upstream = \"lo\"\nquery-intervall = \"5s\"\n",
            "line 2: key 'query-intervall': unknown key",
        ),
        (
            "type",
            "upstream = \"lo\"\ndownstream = [\"dn0\"]\nrobustness = \"two\"\n",
            "line 3: key 'robustness': expected a number, found string",
        ),
        (
            "value",
            "allow = [\"239.0.0.0/40\"]\n",
            "line 1: key 'allow': invalid value '239.0.0.0/40'",
        ),
        ("syntax", "upstream = \"lo\n", "line 1: "),
    ] {
        let (dir, f) = config_file(name, text);
        for sub in ["run", "check"] {
            let o = snoopcast(&[sub, "--config", f.to_str().unwrap()]);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{sub} {name}: {e}");
            assert_eq!(e.lines().count(), 1, "{sub} {name}: one line: {e}");
            assert!(e.starts_with(&format!("snoopcast: {}", f.display())), "{e}");
            assert!(e.contains(want), "{sub} {name}: {e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
    let o = snoopcast(&["check", "--config", "/nonexistent/snoopcast.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read /nonexistent/snoopcast.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_validates_interfaces_like_run_and_the_command_line_wins() {
    let (dir, f) = config_file(
        "ifaces",
        "upstream = \"nosuchif7\"\ndownstream = [\"lo\"]\n",
    );
    let f = f.to_str().unwrap();
    let o = snoopcast(&["check", "--config", f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--upstream nosuchif7: no such network interface"),
        "{}",
        stderr(&o)
    );
    // --upstream on the command line replaces the file's; lo cannot be both, as run says.
    let o = snoopcast(&["check", "--config", f, "--upstream", "lo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must differ"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
    let o = snoopcast(&["check", "--upstream", "lo"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--downstream"), "{}", stderr(&o));
}

#[test]
fn the_example_file_is_valid_toml_with_every_key_commented_out() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/snoopcast.toml");
    let o = snoopcast(&["check", "--config", example]);
    // Nothing is set in it, so the interfaces are missing (and named), nothing else.
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no upstream interface"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("`upstream = ...` in"), "{}", stderr(&o));
}

/// A reader that goes away (`snoopcast status | grep -q .`) ends status quietly with exit 0,
/// not a panic: the fake daemon answers only after the read end of stdout is closed.
#[test]
fn status_into_a_closed_pipe_exits_0_without_a_panic() {
    use snoopcast::status::Snapshot;
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    use std::process::Stdio;
    let snap = Snapshot {
        version: "t".into(),
        ..Default::default()
    };
    let body = serde_json::to_string(&snap).unwrap();
    for json in [false, true] {
        let path = std::env::temp_dir().join(format!(
            "snoopcast-cli-pipe-{}-{json}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
        let reply = body.clone();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            closed_rx.recv().unwrap();
            s.write_all(reply.as_bytes()).unwrap();
        });
        let mut args = vec!["status", "--control", path.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_snoopcast"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        closed_tx.send(()).unwrap();
        let o = child.wait_with_output().unwrap();
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(o.status.code(), Some(0), "json={json}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "json={json}: {}", stderr(&o));
    }
}

/// `doctor` with no daemon and no interfaces named: a fail line that says so (exit 1), the
/// machine-wide checks still printed; a bad option is exit 2; its own option is not a
/// --config key.
#[test]
fn doctor_without_daemon_or_interfaces_fails_the_interfaces_check() {
    let sock =
        std::env::temp_dir().join(format!("snoopcast-cli-doctor-{}.sock", std::process::id()));
    let o = snoopcast(&[
        "doctor",
        "--control",
        sock.to_str().unwrap(),
        "--drops-interval",
        "100ms",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ok daemon: not running"), "{out}");
    assert!(
        out.contains("fail interfaces: no interfaces to check"),
        "{out}"
    );
    for name in ["mac-ageing", "rmem", "firewall", "capture-drops"] {
        assert!(
            out.lines().any(|l| l.contains(&format!(" {name}: "))),
            "{name}: {out}"
        );
    }
    for l in out.lines() {
        assert!(
            ["ok ", "warn ", "fail "].iter().any(|p| l.starts_with(p)),
            "not a check line: {l}"
        );
    }
    assert_eq!(snoopcast(&["doctor", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        snoopcast(&["doctor", "--drops-interval", "1ms"])
            .status
            .code(),
        Some(2)
    );
    let (dir, file) = config_file("doctor", "drops-interval = \"3s\"\n");
    let o = snoopcast(&["doctor", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

/// A fake daemon on a fresh control socket that answers `snap` once per connection.
fn fake_daemon(name: &str, snap: &snoopcast::status::Snapshot) -> std::path::PathBuf {
    use std::io::Write;
    let path =
        std::env::temp_dir().join(format!("snoopcast-cli-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let body = serde_json::to_string(snap).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let _ = c.unwrap().write_all(body.as_bytes());
        }
    });
    path
}

#[test]
fn status_format_openmetrics_prints_the_metrics_with_the_cap() {
    use snoopcast::status::*;
    let member = |mac: &str| MemberStatus {
        interface: "dn0".into(),
        mac: mac.into(),
        ip: "10.2.0.11".into(),
        mode: "exclude".into(),
        packets: 7,
        bytes: 700,
        ..Default::default()
    };
    let snap = Snapshot {
        version: "9.9.9".into(),
        groups: vec![GroupStatus {
            group: "239.1.1.1".into(),
            members: vec![member("02:00:00:00:00:01"), member("02:00:00:00:00:02")],
            ..Default::default()
        }],
        counters: [("copies_sent".to_string(), 14u64)].into(),
        ..Default::default()
    };
    let path = fake_daemon("om", &snap);
    let p = path.to_str().unwrap();
    let o = snoopcast(&["status", "--control", p, "--format", "openmetrics"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("# EOF\n"), "{out}");
    assert!(out.contains("\nsnoopcast_copies_sent_total 14\n"), "{out}");
    // The HELP is the counter's doc comment, from this binary.
    assert!(
        out.contains("# HELP snoopcast_copies_sent Unicast or group-MAC copies written to downstream interfaces.\n"),
        "{out}"
    );
    assert_eq!(
        out.matches("snoopcast_member_packets_total{").count(),
        2,
        "{out}"
    );
    let o = snoopcast(&[
        "status",
        "--control",
        p,
        "--format",
        "openmetrics",
        "--metrics-max-members",
        "1",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("snoopcast_member_packets_total{").count(),
        1,
        "{out}"
    );
    assert!(
        out.contains("\nsnoopcast_member_series_omitted 1\n"),
        "{out}"
    );
    // --json and --format json print the same; together with --format they conflict.
    let a = snoopcast(&["status", "--control", p, "--json"]);
    let b = snoopcast(&["status", "--control", p, "--format", "json"]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
    let o = snoopcast(&[
        "status",
        "--control",
        p,
        "--json",
        "--format",
        "openmetrics",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_metrics_address_in_use_exits_2_and_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ctl =
        std::env::temp_dir().join(format!("snoopcast-cli-metrics-{}.sock", std::process::id()));
    let o = snoopcast(&[
        "run",
        "--upstream",
        "scmissing-up",
        "--downstream",
        "scmissing-dn",
        "--wait-for-interfaces",
        "--control",
        ctl.to_str().unwrap(),
        "--metrics-listen",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("--metrics-listen {addr}: cannot listen there")),
        "{}",
        stderr(&o)
    );
    assert!(!ctl.exists(), "nothing started");
    let o = snoopcast(&[
        "run",
        "--upstream",
        "u",
        "--downstream",
        "d",
        "--metrics-listen",
        "localhost:80",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("localhost:80"), "{}", stderr(&o));
}
