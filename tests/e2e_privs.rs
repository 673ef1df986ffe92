//! Least privilege: snoopcast as a non-root uid with only CAP_NET_RAW and CAP_NET_ADMIN
//! (ambient, as systemd's AmbientCapabilities= gives them), the capabilities every thread
//! keeps after start-up (also when started as full root), interface flaps with the reduced
//! set, the clear error without capabilities, and the control socket's mode and group.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast, maybe as uid 4242] dn0 --veth-- p0 [sw: br0, dumb] p1.. --veth-- eth0 [h1..]
//! ```
//!
//! The uids and gids used (4242, 4343, 4444) have no passwd or group entry: setpriv switches
//! to them numerically, nothing is added to the machine.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const G1: &str = "239.1.1.1";
const TIMERS: [&str; 4] = ["--query-interval", "4s", "--query-response-interval", "1s"];
const JOIN_WAIT: Duration = Duration::from_secs(10);
const IFACE_WAIT: Duration = Duration::from_secs(5);
const RETURN_WAIT: Duration = Duration::from_secs(10);

/// The daemon's uid in the unprivileged runs.
const UID: &str = "4242";
/// The control group, and a uid outside it.
const CTL_GID: &str = "4343";
const OTHER_UID: &str = "4444";

const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_NET_RAW: u64 = 1 << 13;
/// The nice value snoopcast gives packet threads.
const PACKET_NICE: i64 = -10;

/// setpriv: become `uid` (gid the same, no supplementary groups) with `caps` (e.g.
/// "+net_raw,+net_admin") inheritable and ambient, so they survive the uid change and exec.
fn setpriv(uid: &str, caps: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
    ];
    if let Some(c) = caps {
        v.push(format!("--inh-caps={c}"));
        v.push(format!("--ambient-caps={c}"));
    }
    v
}

/// What /proc says about one thread.
#[derive(Debug)]
struct ThreadInfo {
    tid: String,
    name: String,
    fields: BTreeMap<String, String>,
    nice: i64,
}

impl ThreadInfo {
    fn hex(&self, key: &str) -> u64 {
        let v = self
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing"));
        u64::from_str_radix(v, 16).unwrap()
    }
}

/// Every thread of `pid`: name, the Cap* and NoNewPrivs lines of status, and the nice value
/// (field 19 of stat).
fn threads(pid: u32) -> Vec<ThreadInfo> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = e.unwrap().path();
        let (Ok(status), Ok(stat)) = (
            std::fs::read_to_string(dir.join("status")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let fields: BTreeMap<String, String> = status
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, _)| k.starts_with("Cap") || k == "NoNewPrivs" || k == "Name")
            .collect();
        // After "pid (comm) ", fields start at number 3; nice is number 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i64 = rest
            .split_whitespace()
            .nth(19 - 3)
            .unwrap()
            .parse()
            .unwrap();
        out.push(ThreadInfo {
            tid: dir.file_name().unwrap().to_string_lossy().into_owned(),
            name: fields["Name"].clone(),
            fields,
            nice,
        });
    }
    out
}

/// The capabilities snoopcast keeps: CAP_NET_RAW, plus CAP_NET_ADMIN while
/// net.core.rmem_max (of the box's namespace) is below its 8 MiB capture buffer.
fn expected_caps(lan: &Lan) -> u64 {
    let rmem: u64 = ns_run(&lan.box_ns(), &["cat", "/proc/sys/net/core/rmem_max"])
        .trim()
        .parse()
        .unwrap();
    if rmem < 8 << 20 {
        CAP_NET_RAW | CAP_NET_ADMIN
    } else {
        CAP_NET_RAW
    }
}

/// Every thread has exactly `caps` effective and permitted, nothing inheritable or ambient,
/// no_new_privs, and (when `bounding`) the bounding set cut to `caps`.
fn assert_reduced(pid: u32, caps: u64, bounding: bool) -> Vec<ThreadInfo> {
    let ts = threads(pid);
    let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
    for want in ["ctl", "control", "cap-dn:dn0", "cap-up:up0", "qry-up:up0"] {
        assert!(names.contains(&want), "thread {want} missing: {names:?}");
    }
    for t in &ts {
        let who = format!("thread {} ({})", t.name, t.tid);
        assert_eq!(t.hex("CapEff"), caps, "{who} CapEff: {t:?}");
        assert_eq!(t.hex("CapPrm"), caps, "{who} CapPrm: {t:?}");
        assert_eq!(t.hex("CapInh"), 0, "{who} CapInh: {t:?}");
        assert_eq!(t.hex("CapAmb"), 0, "{who} CapAmb: {t:?}");
        assert_eq!(t.fields["NoNewPrivs"], "1", "{who} NoNewPrivs: {t:?}");
        if bounding {
            assert_eq!(t.hex("CapBnd"), caps, "{who} CapBnd: {t:?}");
        }
    }
    ts
}

fn is_packet_thread(name: &str) -> bool {
    name == "ctl"
        || name.starts_with("send-")
        || name.starts_with("cap-")
        || name.starts_with("qry-")
}

fn iface_up(s: &serde_json::Value, name: &str) -> bool {
    s["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["name"] == name && i["state"] == "up")
}

/// Delete and recreate dn0 under the running daemon; wait until it is open again and `host`
/// is a member of G1 again.
fn flap_dn0(lan: &Lan, host: &Host) {
    lan.delete_downstream(0);
    wait_for_status(lan, IFACE_WAIT, "dn0 down", |s| !iface_up(s, "dn0"));
    lan.recreate_downstream(0);
    wait_for_status(lan, RETURN_WAIT, "dn0 up and h1 a member again", |s| {
        iface_up(s, "dn0") && is_member(s, G1, host)
    });
}

/// (a) A non-root uid with only the two capabilities, ambient, forwards to a member; root
/// reads its status; its threads keep only what is needed; (c) dn0 vanishing and coming back
/// is recovered with the reduced set, and without CAP_SYS_NICE nothing fails.
#[test]
fn non_root_with_two_ambient_caps_forwards_and_recovers_from_a_flap() {
    require_root!();
    let lan = Lan::builder("pvuser").hosts(2).build();
    // The unprivileged daemon creates its control socket in the test's dir.
    std::os::unix::fs::chown(&lan.dir, Some(UID.parse().unwrap()), None).unwrap();
    let wrap = setpriv(UID, Some("+net_raw,+net_admin"));
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let mut daemon = start_snoopcast_wrapped(&lan, &wrap, &TIMERS);
    let pid = daemon.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == UID),
        "the daemon runs as {UID}: {uid_line}"
    );
    let caps = expected_caps(&lan);
    // No CAP_SETPCAP here, so the bounding set is left to setpriv/systemd.
    let ts = assert_reduced(pid, caps, false);
    assert!(
        ts.iter().all(|t| t.nice == 0),
        "no CAP_SYS_NICE: everything at nice 0: {ts:?}"
    );
    let sock = std::fs::metadata(lan.control_path()).unwrap();
    assert_eq!(
        sock.uid().to_string(),
        UID,
        "socket owned by the daemon's uid"
    );
    assert_eq!(sock.mode() & 0o7777, 0o660);

    let mut h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1", |s| is_member(s, G1, &a));
    let first = lan.send(&["--group", G1, "--count", "400", "--rate", "400"]);
    settle();
    let r = h1.report();
    assert_delivered(
        r.frames(G1, UNICAST),
        first.sent(G1),
        "h1 G1 unicast copies",
    );

    flap_dn0(&lan, &a);
    assert!(daemon.is_running(), "snoopcast exited after the flap");
    h1.mark();
    let after = lan.send(&["--group", G1, "--count", "400", "--rate", "400"]);
    settle();
    let r1 = h1.finish();
    assert_delivered(
        r1.since_mark(G1),
        after.sent(G1),
        "h1 G1 after dn0 came back",
    );
    assert_nothing(&h2.finish(), G1);
    let ts = assert_reduced(pid, caps, false);
    assert!(ts.iter().all(|t| t.nice == 0), "{ts:?}");
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains("privileges: kept CAP_NET"), "{log}");
    assert!(!log.contains("cannot open"), "reopening failed: {log}");
    daemon.stop_ok();
}

/// (b) Started as full root, every thread keeps only the needed capabilities, bounding set
/// included, with no_new_privs; packet threads run at nice -10, others at 0. (c) After dn0 is
/// deleted and recreated, the new capture thread has the same reduced set and still nice
/// -10 (inherited from the control thread: CAP_SYS_NICE is gone by then), and delivery resumes.
#[test]
fn root_keeps_only_needed_caps_in_every_thread_and_packet_threads_keep_nice_after_a_flap() {
    require_root!();
    let lan = Lan::builder("pvroot").hosts(1).build();
    let mut daemon = start_snoopcast(&lan, &TIMERS);
    let pid = daemon.pid();
    let caps = expected_caps(&lan);
    let check_nice = |ts: &[ThreadInfo]| {
        for t in ts {
            let want = if is_packet_thread(&t.name) {
                PACKET_NICE
            } else {
                0
            };
            assert_eq!(t.nice, want, "nice of {} ({}): {ts:?}", t.name, t.tid);
        }
    };
    let before = assert_reduced(pid, caps, true);
    check_nice(&before);
    let old_dn = before
        .iter()
        .find(|t| t.name == "cap-dn:dn0")
        .unwrap()
        .tid
        .clone();

    let mut h1 = lan.start_agent(1, &[G1]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1", |s| is_member(s, G1, &a));
    flap_dn0(&lan, &a);
    assert!(daemon.is_running(), "snoopcast exited after the flap");
    let after = assert_reduced(pid, caps, true);
    check_nice(&after);
    let new_dn = after.iter().find(|t| t.name == "cap-dn:dn0").unwrap();
    assert_ne!(new_dn.tid, old_dn, "dn0's capture thread was restarted");

    h1.mark();
    let sent = lan.send(&["--group", G1, "--count", "400", "--rate", "400"]);
    settle();
    let r = h1.finish();
    assert_delivered(r.since_mark(G1), sent.sent(G1), "h1 G1 after dn0 came back");
    daemon.stop_ok();
}

/// The argv of `ip netns exec <box> <wrapper> snoopcast run --upstream up0 --downstream dn0
/// --control <path> <extra>`.
fn wrapped_run(lan: &Lan, wrapper: &[String], extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), lan.box_ns()];
    v.extend(wrapper.iter().cloned());
    v.push(snoopcast_bin());
    for a in [
        "run",
        "--upstream",
        "up0",
        "--downstream",
        "dn0",
        "--control",
    ] {
        v.push(a.into());
    }
    v.push(lan.control_path().to_str().unwrap().into());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// (d) A non-root uid without the capabilities exits 1 with the message naming them, also
/// when every interface is awaited (nothing to open yet: checked at start all the same).
#[test]
fn non_root_without_caps_exits_1_naming_the_capabilities() {
    require_root!();
    let lan = Lan::builder("pvnocap").hosts(1).build();
    std::os::unix::fs::chown(&lan.dir, Some(UID.parse().unwrap()), None).unwrap();
    let wrap = setpriv(UID, None);
    for extra in [
        &[][..],
        &[
            "--wait-for-interfaces",
            "--upstream",
            "up9",
            "--downstream",
            "dn9",
        ][..],
    ] {
        let mut argv = wrapped_run(&lan, &wrap, &[]);
        if !extra.is_empty() {
            // Replace the interfaces with missing ones.
            let up = argv.iter().position(|a| a == "--upstream").unwrap();
            argv.drain(up..up + 4);
            argv.extend(extra.iter().map(|s| s.to_string()));
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = exec(&refs, Duration::from_secs(10));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{argv:?}: stdout {} stderr {}",
            out.stdout,
            out.stderr
        );
        for needle in [
            "CAP_NET_RAW",
            "CAP_NET_ADMIN",
            "setcap",
            "AmbientCapabilities",
        ] {
            assert!(
                out.stderr.contains(needle),
                "lacks {needle}: {}",
                out.stderr
            );
        }
        assert!(
            !lan.control_path().exists(),
            "no control socket left behind"
        );
    }
}

/// (e) The control socket is mode 0660 and in --control-group; a uid outside the group is
/// refused with a clear message, a uid in it (supplementary group) reads status.
#[test]
fn control_socket_is_0660_in_the_control_group() {
    require_root!();
    let lan = Lan::builder("pvgroup").hosts(1).build();
    std::fs::set_permissions(&lan.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = start_snoopcast(&lan, &["--control-group", CTL_GID]);
    let path = lan.control_path();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o660, "mode {:o}", m.mode());
    assert_eq!(m.gid().to_string(), CTL_GID);
    assert_eq!(m.uid(), 0, "owned by the daemon's uid");
    let status_as = |groups: Option<&str>| {
        let mut argv: Vec<String> = vec![
            "setpriv".into(),
            format!("--reuid={OTHER_UID}"),
            format!("--regid={OTHER_UID}"),
        ];
        match groups {
            Some(g) => argv.push(format!("--groups={g}")),
            None => argv.push("--clear-groups".into()),
        }
        for a in [
            &snoopcast_bin(),
            "status",
            "--json",
            "--control",
            path.to_str().unwrap(),
        ] {
            argv.push(a.to_string());
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        exec(&refs, Duration::from_secs(10))
    };
    let out = status_as(None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        out.stdout,
        out.stderr
    );
    for needle in [
        "permission denied",
        "0660",
        CTL_GID,
        "add the user to group",
        "sudo",
    ] {
        assert!(
            out.stderr.contains(needle),
            "lacks {needle:?}: {}",
            out.stderr
        );
    }
    let out = status_as(Some(CTL_GID));
    assert!(
        out.ok(),
        "a member of the group: {} {}",
        out.stdout,
        out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["upstream"]["interface"], "up0");
    daemon.stop_ok();
}

/// An unknown --control-group is a usage error (exit 2) found before anything starts; needs
/// no root.
#[test]
fn unknown_control_group_exits_2() {
    let out = exec(
        &[
            &snoopcast_bin(),
            "run",
            "--wait-for-interfaces",
            "--upstream",
            "up9",
            "--downstream",
            "dn9",
            "--control",
            "/nonexistent/c.sock",
            "--control-group",
            "snoopcast-no-such-group",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{} {}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("--control-group snoopcast-no-such-group")
            && out.stderr.contains("no such group"),
        "{}",
        out.stderr
    );
}
