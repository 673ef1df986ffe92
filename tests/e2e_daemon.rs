//! The daemon's own duties on a real kernel: privilege errors, upstream joins through the
//! kernel beyond the per-socket limit and their release on SIGTERM, querier election.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0, dumb] p1.. --veth-- eth0 [h1..]
//! ```

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

const TIMERS: [&str; 4] = ["--query-interval", "5s", "--query-response-interval", "1s"];

/// Groups the box's kernel has joined on up0, from /proc/net/igmp (hex, host byte order).
fn kernel_groups_on_up0(lan: &Lan) -> BTreeSet<String> {
    let text = ns_run(&lan.box_ns(), &["cat", "/proc/net/igmp"]);
    let mut out = BTreeSet::new();
    let mut in_up0 = false;
    for line in text.lines() {
        if !line.starts_with('\t') && !line.starts_with(' ') {
            // "Idx\tDevice    : Count Querier" header or "3\tup0       :     2      V3"
            in_up0 = line.split_whitespace().nth(1) == Some("up0");
            continue;
        }
        if in_up0 {
            if let Some(hex) = line.split_whitespace().next() {
                if let Ok(v) = u32::from_str_radix(hex, 16) {
                    let a = std::net::Ipv4Addr::from(u32::from_be(v));
                    if !ipv4_link_local(a) {
                        out.insert(a.to_string());
                    }
                }
            }
        }
    }
    out
}

fn ipv4_link_local(a: std::net::Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 224 && o[1] == 0 && o[2] == 0
}

/// Without CAP_NET_RAW the daemon names the missing capabilities, says how to fix it, and
/// exits 1 before doing anything.
#[test]
fn missing_capabilities_are_named_and_exit_1() {
    require_root!();
    let lan = Lan::builder("dpriv").hosts(1).build();
    let ctl = lan.control_path();
    let bin = snoopcast_bin();
    let out = ns_exec(
        &lan.box_ns(),
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            &bin,
            "run",
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--control",
            ctl.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        out.stdout,
        out.stderr
    );
    for needle in ["CAP_NET_RAW", "CAP_NET_ADMIN", "setcap", "root", "dn0"] {
        assert!(
            out.stderr.contains(needle),
            "message lacks {needle}: {}",
            out.stderr
        );
    }
    assert!(!ctl.exists(), "no control socket is left behind");
}

/// 45 groups from one host: more than Linux lets one socket join (20). snoopcast reports
/// them upstream itself (issue 16), so no per-socket limit applies and the box kernel holds
/// none of them on up0; status lists all 45 and the reports counter moves. SIGTERM ends it
/// cleanly (the leaves on the wire: e2e_upstream_reports).
#[test]
fn forty_five_groups_are_reported_without_kernel_joins() {
    require_root!();
    let lan = Lan::builder("djoin").hosts(1).build();
    let groups: Vec<String> = (1..=45).map(|i| format!("239.2.0.{i}")).collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &refs);
    let reported = wait_until(Duration::from_secs(15), || {
        lan.status_json()["upstream"]["joined"]
            .as_array()
            .is_some_and(|j| j.len() == 45)
    });
    let status = lan.status_json();
    assert!(reported, "not all 45 reported upstream: {status:#}");
    let kernel = kernel_groups_on_up0(&lan);
    let forwarded: BTreeSet<String> = groups.iter().cloned().collect();
    assert!(
        kernel.is_disjoint(&forwarded),
        "the box kernel holds forwarded groups on up0: {kernel:?}"
    );
    assert!(status["counters"]["reports_sent"].as_u64().unwrap() >= 1);
    assert_eq!(status["counters"]["report_send_errors"], 0);
    daemon.stop_ok();
    drop(h1);
}

/// RFC 3376 6.6.2: a querier with a lower address silences ours (`--querier auto`); with
/// `--querier on` we keep querying.
#[test]
fn lower_querier_wins_the_election() {
    require_root!();
    let lan = Lan::builder("dquer").hosts(1).build();
    // h1 (10.2.0.11) plays a router: IGMPv3 general queries every 300 ms.
    let script = r#"
import socket, struct, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
q = bytearray(struct.pack('!BBH4sBBH', 0x11, 100, 0, bytes(4), 2, 125, 0))
q[2:4] = struct.pack('!H', csum(bytes(q)))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b'\x94\x04\x00\x00')
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.2.0.11'))
end = time.time() + 8
while time.time() < end:
    s.sendto(bytes(q), ('224.0.0.1', 0)); time.sleep(0.3)
"#;
    for (mode, expect) in [("auto", "non-querier"), ("on", "querier")] {
        let mut args = TIMERS.to_vec();
        args.extend_from_slice(&["--query-source", "10.2.0.200", "--querier", mode]);
        let daemon = start_snoopcast(&lan, &args);
        let host = lan.host(1).ns.clone();
        let router = std::thread::spawn(move || {
            ns_exec(&host, &[python(), "-c", script], Duration::from_secs(15))
        });
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(6), || {
            let s = lan.status_json();
            last = s["interfaces"][0].to_string();
            s["interfaces"][0]["querier"] == expect
                && s["counters"]["queries_received"].as_u64().unwrap_or(0) > 0
                && (expect == "querier" || s["interfaces"][0]["other_querier"] == "10.2.0.11")
        });
        assert!(ok, "--querier {mode}: expected {expect}, status: {last}");
        let r = router.join().unwrap();
        assert!(r.ok(), "router script failed: {}", r.stderr);
        daemon.stop_ok();
    }
}

/// SIGHUP never stops the daemon (the smcroute and logrotate habit): it reopens --log-file,
/// so a rotated file is let go of and a new one created; status keeps answering, the pid
/// stays the same, and SIGTERM still stops it cleanly.
#[test]
fn sighup_reopens_the_log_file_and_never_stops_the_daemon() {
    require_root!();
    let lan = Lan::builder("dhup").hosts(1).build();
    let log = lan.dir.join("daemon.log");
    let rotated = lan.dir.join("daemon.log.1");
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&["--log-file", log.to_str().unwrap()]);
    let mut daemon = start_snoopcast(&lan, &args);
    let pid = daemon.pid();
    std::fs::rename(&log, &rotated).unwrap();
    for round in 1..=2 {
        // SAFETY: kill(2) with a pid we started and still hold.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
        let reopened = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SIGHUP: log file"))
        });
        assert!(
            reopened,
            "round {round}: no new log file with the reopen line"
        );
        assert!(
            daemon.is_running(),
            "round {round}: SIGHUP stopped the daemon"
        );
        assert!(
            lan.try_status_json().is_ok(),
            "round {round}: status no longer answers"
        );
        assert_eq!(daemon.pid(), pid);
        std::fs::rename(&log, &rotated).unwrap();
    }
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("SIGHUP: log file"), "rotated file: {old}");
    daemon.stop_ok();
}
