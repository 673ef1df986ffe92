//! systemd's notification protocol on a real daemon: `NOTIFY_SOCKET` points at a datagram
//! socket this test reads, as systemd's would be for `Type=notify`, with `WATCHDOG_USEC`
//! set. Its own test binary: the environment it sets is the process's.
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
