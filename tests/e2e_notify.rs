//! systemd's notification protocol on a real daemon: `NOTIFY_SOCKET` points at a datagram
//! socket this test reads, as systemd's would be for `Type=notify`, with `WATCHDOG_USEC`
//! set. Its own test binary: the environment the first test sets is the process's (the
//! second gives NOTIFY_SOCKET to the daemon's command only, `start_snoopcast_env`).
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0, dumb] p1 --veth-- eth0 [h1]
//! ```

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The datagrams received within `within`, each as its text.
fn receive(sock: &UnixDatagram, within: Duration) -> Vec<String> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

/// READY=1 once status answers, WATCHDOG=1 every half of WATCHDOG_USEC, a STATUS= line
/// with members and groups, STOPPING=1 on SIGTERM.
#[test]
fn ready_watchdog_status_and_stopping_reach_the_service_manager() {
    require_root!();
    let lan = Lan::builder("ntfy").hosts(1).build();
    let path = lan.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // One test in this binary: nothing else reads the environment concurrently.
    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "1000000");
    let daemon = start_snoopcast(
        &lan,
        &["--query-interval", "5s", "--query-response-interval", "1s"],
    );
    std::env::remove_var("NOTIFY_SOCKET");
    std::env::remove_var("WATCHDOG_USEC");
    // start_snoopcast returned once status answered; READY=1 is among what came by then.
    let first = receive(&sock, Duration::from_millis(500));
    let ready = first.iter().position(|m| m.lines().any(|l| l == "READY=1"));
    assert!(ready.is_some(), "no READY=1: {first:?}");
    assert!(
        first[ready.unwrap()].contains("STATUS=running: upstream up0, downstream dn0"),
        "{first:?}"
    );
    let _h1 = lan.start_agent(1, &["239.1.2.3"]);
    let msgs = receive(&sock, Duration::from_secs(3));
    let pings = msgs.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    // 3 s at one ping per 0.5 s: about 6; a loaded machine may lose one or two.
    assert!(
        pings >= 4,
        "{pings} WATCHDOG=1 in 3 s with WATCHDOG_USEC=1s: {msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("STATUS=1 members in 1 groups; upstream up0 up")),
        "no STATUS line with the member: {msgs:?}"
    );
    daemon.stop_ok();
    let last = receive(&sock, Duration::from_millis(200));
    let all: Vec<&String> = msgs.iter().chain(&last).collect();
    assert!(
        all.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 on SIGTERM: {last:?}"
    );
}

/// CLOCK_MONOTONIC now, in microseconds: the clock of MONOTONIC_USEC= (not per namespace).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// SIGHUP without --config (Type=notify-reload's reload signal): RELOADING=1 with
/// MONOTONIC_USEC= of the moment, then READY=1 again; the daemon keeps running, members
/// and all, and counts no reload (there is nothing to read again).
#[test]
fn sighup_without_config_sends_reloading_and_ready() {
    require_root!();
    let lan = Lan::builder("ntfyhup").hosts(1).build();
    let path = lan.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut daemon = start_snoopcast_env(
        &lan,
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
        &["--query-interval", "5s", "--query-response-interval", "1s"],
    );
    let first = receive(&sock, Duration::from_millis(500));
    assert!(
        first.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1 at start: {first:?}"
    );
    let _h1 = lan.start_agent(1, &["239.1.2.3"]);
    let h1 = lan.host(1).clone();
    wait_for_status(&lan, Duration::from_secs(10), "h1 in 239.1.2.3", |s| {
        is_member(s, "239.1.2.3", &h1)
    });
    for round in 1..=2 {
        let before = monotonic_usec();
        daemon.signal(libc::SIGHUP);
        let msgs = receive(&sock, Duration::from_millis(1500));
        let after = monotonic_usec();
        let reloading = msgs
            .iter()
            .position(|m| m.lines().any(|l| l == "RELOADING=1"))
            .unwrap_or_else(|| panic!("SIGHUP {round}: no RELOADING=1: {msgs:?}"));
        let usec: u64 = msgs[reloading]
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {msgs:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("MONOTONIC_USEC= not a number ({e}): {msgs:?}"));
        assert!(
            (before..=after).contains(&usec),
            "SIGHUP {round}: MONOTONIC_USEC={usec} is not between the signal ({before}) \
             and the end of the wait ({after})"
        );
        let ready = msgs
            .iter()
            .skip(reloading + 1)
            .any(|m| m.lines().any(|l| l == "READY=1"));
        assert!(
            ready,
            "SIGHUP {round}: no READY=1 after RELOADING=1: {msgs:?}"
        );
        assert!(daemon.is_running(), "snoopcast exited on SIGHUP {round}");
    }
    let status = lan.status_json();
    assert!(is_member(&status, "239.1.2.3", &h1), "{status:#}");
    assert_eq!(status["counters"]["reloads"], 0, "{:#}", status["counters"]);
    assert_eq!(
        status["counters"]["reload_errors"], 0,
        "{:#}",
        status["counters"]
    );
    let log = daemon.log_text();
    assert_eq!(
        log.matches("SIGHUP: nothing to do").count(),
        2,
        "a line per SIGHUP saying there is nothing to read again:\n{log}"
    );
    daemon.stop_ok();
}
