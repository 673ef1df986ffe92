//! Live reload end to end: `snoopcast run --config FILE`, the file rewritten, SIGHUP. What
//! can change live is applied without touching the members it does not concern; a broken
//! file or a key that needs a restart keeps the running configuration.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast --config F] dn0 --veth-- p0 [sw: br0, dumb]
//!   mcast_send A, B                                          p1..p3 --veth-- eth0 [h1..h3]
//! ```
//!
//! The daemon gets its interfaces from the file only (`start_snoopcast_config`): an option
//! on the command line would win over the file's, and a reload could never change it.
//!
//! Timers: query interval 120 s, so the startup queries are QI / 4 = 30 s apart and none
//! comes while a test runs after the first, sent at start with a maximum response time of
//! 1 s (the query response interval): a host may answer it with what it joined by then,
//! later it reports only when it joins. So 3 s after the start a member's expiry can only
//! go down, unless a reload resets it (membership interval 2 x 120 s + 2 x 1 s = 242 s).

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Group A, kept by the reload.
const A: &str = "239.1.1.1";
/// Group B, denied by the reload (239.2.0.0/16).
const B: &str = "239.2.2.2";
const DENY_B: &str = "deny = [\"239.2.0.0/16\"]\n";

/// The configuration file: the LAN's interfaces, long timers, and `extra` lines.
fn write_config(lan: &Lan, path: &Path, extra: &str) {
    let downstreams: Vec<String> = lan
        .downstream_ifs()
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect();
    let text = format!(
        "# tests/e2e_reload.rs\n\
         upstream = \"{}\"\n\
         downstream = [{}]\n\
         query-interval = \"120s\"\n\
         query-response-interval = \"1s\"\n\
         {extra}",
        lan.upstream_if(),
        downstreams.join(", ")
    );
    fs::write(path, text).expect("write the configuration file");
}

/// The lines of the daemon's log that mention a reload's outcome.
fn reload_lines(daemon: &Snoopcast) -> Vec<String> {
    daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("reload:"))
        .map(str::to_string)
        .collect()
}

fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in status: {:#}", status["counters"]))
}

/// Groups in `upstream.joined` (strings or objects with a `group`).
fn upstream_joined(status: &Value) -> Vec<String> {
    status["upstream"]["joined"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j.as_str().or_else(|| j["group"].as_str()))
        .map(str::to_string)
        .collect()
}

/// Whether snoopcast reports `group` upstream (status), while the box kernel holds no
/// membership for it (snoopcast reports itself, issue 16).
fn reported(lan: &Lan, group: &str) -> bool {
    assert!(
        !lan.kernel_groups("up0").iter().any(|(g, _)| g == group),
        "the box kernel holds {group} on up0"
    );
    lan.try_status_json()
        .is_ok_and(|s| upstream_joined(&s).contains(&group.to_string()))
}

/// When the member's membership runs out, in the daemon's uptime: `uptime_ms +
/// expires_in_ms` of one snapshot (both from the same instant). A reload that kept the
/// member leaves it where it was; one that reset the timer moves it on by the time since
/// the host's last report.
fn deadline_ms(status: &Value, group: &str, host: &Host) -> u64 {
    let m = member(status, group, host)
        .unwrap_or_else(|| panic!("{} not in {group}: {status:#}", host.name));
    status["uptime_ms"].as_u64().unwrap() + m["expires_in_ms"].as_u64().unwrap()
}

/// Waits until `cond` holds, polling; how long it took, or None after `timeout`.
fn time_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        sleep(Duration::from_millis(10));
    }
}

/// A reload that denies B while both groups stream: B's member loses it within a second,
/// from status and from the box kernel's upstream joins; A's members stay the same
/// members with the same expiry and never miss a beat.
#[test]
fn reload_denies_one_group_and_leaves_the_others_untouched() {
    require_root!();
    let lan = Lan::builder("rldeny").hosts(3).build();
    let file = lan.dir.join("snoopcast.toml");
    write_config(&lan, &file, "");
    let mut daemon = start_snoopcast_config(&lan, &file, &[]);
    let pid = daemon.pid();
    let mut h1 = lan.start_agent(1, &[A]);
    let mut h2 = lan.start_agent(2, &[A]);
    let mut h3 = lan.start_agent(3, &[B]);
    let (a1, a2, b3) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, Duration::from_secs(10), "h1, h2 in A, h3 in B", |s| {
        is_member(s, A, &a1) && is_member(s, A, &a2) && is_member(s, B, &b3)
    });
    assert!(
        wait_until(Duration::from_secs(5), || reported(&lan, A)
            && reported(&lan, B)),
        "upstream reports lack A or B (box kernel: {:?})",
        lan.kernel_groups("up0")
    );

    // 500 datagrams/s per group for 9 s; the reload comes 3 s in.
    let sender = lan.spawn_sender(&[
        "--group", A, "--group", B, "--count", "4500", "--rate", "1000",
    ]);
    sleep(Duration::from_secs(3));
    for h in [&mut h1, &mut h2, &mut h3] {
        h.mark();
    }
    let before = lan.status_json();
    write_config(&lan, &file, DENY_B);
    let hup = epoch_now();
    daemon.signal(libc::SIGHUP);

    // B: gone from the members, then from what is reported upstream.
    let b_gone = time_until(Duration::from_secs(3), || {
        lan.try_status_json()
            .is_ok_and(|s| members(&s, B).is_empty() && !upstream_joined(&s).contains(&B.into()))
    });
    let kernel_gone = time_until(Duration::from_secs(3), || !reported(&lan, B))
        .map(|_| Duration::from_secs_f64(epoch_now() - hup));
    // The second snapshot a second after the HUP, so a reset could not hide in the noise.
    sleep(Duration::from_secs_f64((hup + 1.0 - epoch_now()).max(0.0)));
    let after = lan.status_json();
    assert!(
        b_gone.is_some_and(|d| d <= Duration::from_secs(1)),
        "B still in status {b_gone:?} after the reload: {after:#}"
    );
    assert!(
        kernel_gone.is_some_and(|d| d <= Duration::from_secs(2)),
        "B still reported upstream ({kernel_gone:?} after the HUP; box kernel: {:?})",
        lan.kernel_groups("up0")
    );

    // A: the same two members, their expiry where it was, still joined upstream.
    assert!(daemon.is_running(), "snoopcast exited on SIGHUP");
    assert_eq!(daemon.pid(), pid);
    let (u0, u1) = (
        before["uptime_ms"].as_u64().unwrap(),
        after["uptime_ms"].as_u64().unwrap(),
    );
    assert!(u1 > u0, "uptime went back ({u0} -> {u1} ms): a restart?");
    let macs = |s: &Value| {
        let mut m: Vec<String> = members(s, A)
            .iter()
            .map(|m| m["mac"].as_str().unwrap().to_lowercase())
            .collect();
        m.sort();
        m
    };
    assert_eq!(
        macs(&after),
        macs(&before),
        "A's members changed: {after:#}"
    );
    assert_eq!(macs(&after).len(), 2, "{after:#}");
    for h in [&a1, &a2] {
        let (d0, d1) = (deadline_ms(&before, A, h), deadline_ms(&after, A, h));
        let e1 = member(&after, A, h).unwrap()["expires_in_ms"]
            .as_u64()
            .unwrap();
        eprintln!(
            "{}: A expires at uptime {d0} ms before the reload, {d1} ms after \
             (expires_in_ms {e1}, {} ms after the first snapshot)",
            h.name,
            u1 - u0
        );
        // Millisecond truncation of two snapshots: a few ms. A reset would move the
        // deadline on by the time since the host's last report, seconds here.
        assert!(
            d1.abs_diff(d0) <= 20,
            "{}: A's expiry moved from uptime {d0} to {d1} ms over the reload \
             (a reset would put it at about {u1} + 241000)",
            h.name
        );
        let p0 = member(&before, A, h).unwrap()["packets"].as_u64().unwrap();
        let p1 = member(&after, A, h).unwrap()["packets"].as_u64().unwrap();
        assert!(
            p1 > p0,
            "{}: A's packet count {p0} -> {p1}: not the same member",
            h.name
        );
    }
    assert!(
        upstream_joined(&after).contains(&A.into()),
        "A left upstream: {after:#}"
    );
    assert!(
        reported(&lan, A),
        "A no longer reported upstream (box kernel: {:?})",
        lan.kernel_groups("up0")
    );
    assert!(
        upstream_joined(&before).contains(&B.into()),
        "B was reported before the reload: {before:#}"
    );

    let sent = sender.wait(Duration::from_secs(30));
    settle();
    // The premise of the expiry check: no report from A's hosts since the mark.
    for h in [&mut h1, &mut h2] {
        let r = h.report();
        assert_eq!(
            r.igmp_out_since_mark(),
            0,
            "{} reported around the reload, so its expiry may move",
            r.host.name
        );
    }
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());
    let sent_a = sent.sent(A);
    for r in [&r1, &r2] {
        assert_unicast_member(r, A, sent_a);
        let got = r.sock_ok(A);
        let share = got as f64 / sent_a as f64;
        let arr = r.arrivals(A).expect("arrival times of A");
        eprintln!(
            "{}: A {got} of {sent_a} ({:.2} %), longest gap {:.1} ms ending {:+.3} s from the HUP",
            r.host.name,
            share * 100.0,
            arr.max_gap_ms,
            arr.max_gap_end - hup
        );
        assert!(
            share >= 0.995,
            "{}: A got {got} of {sent_a} datagrams ({:.2} %, need 99.5 %)",
            r.host.name,
            share * 100.0
        );
        assert!(
            arr.max_gap_ms <= 100.0,
            "{}: A's longest gap {:.1} ms (ending {:+.3} s from the HUP)",
            r.host.name,
            arr.max_gap_ms,
            arr.max_gap_end - hup
        );
        assert!(
            arr.first < hup - 2.0 && arr.last > hup + 4.0,
            "{}: A's stream did not span the reload: {arr:?}, HUP at {hup}",
            r.host.name
        );
    }
    let b = r3.arrivals(B).expect("h3 got B before the reload");
    let stop = b.last - hup;
    eprintln!(
        "h3: B's last datagram {:.3} s after the HUP ({} before); B out of status after {b_gone:?}; \
         up0 join gone within {kernel_gone:?} of the HUP",
        stop, b.n
    );
    assert!(b.n >= 1000, "h3 got B before the reload: {b:?}");
    assert!(
        stop <= 1.0,
        "h3 still got B {stop:.3} s after the HUP (sender ran until {} s after it)",
        r1.arrivals(A).unwrap().last - hup
    );
    assert_eq!(r3.sock_bad_or_dup(), 0);

    let status = lan.status_json();
    assert_eq!(counter(&status, "reloads"), 1);
    assert_eq!(counter(&status, "reload_errors"), 0);
    let lines = reload_lines(&daemon);
    eprintln!("log: {lines:#?}");
    assert_eq!(lines.len(), 1, "one reload line: {lines:#?}");
    assert!(
        lines[0].contains("reload: applied") && lines[0].contains("allow/deny"),
        "{lines:#?}"
    );
    daemon.stop_ok();
}

/// A file that is no TOML, then a valid one whose upstream differs (and that denies B,
/// which must not be applied either): each SIGHUP leaves one error line and the old
/// configuration running; members, upstream joins and streams carry on.
#[test]
fn a_broken_file_or_a_restart_key_keeps_the_old_configuration() {
    require_root!();
    let lan = Lan::builder("rlkeep").hosts(2).build();
    // Another interface the box has, for the upstream the file will name.
    ns_run(
        &lan.box_ns(),
        &[
            "ip", "link", "add", "up1", "type", "veth", "peer", "name", "up1p",
        ],
    );
    let file = lan.dir.join("snoopcast.toml");
    let path = file.to_str().unwrap().to_string();
    write_config(&lan, &file, "");
    let mut daemon = start_snoopcast_config(&lan, &file, &[]);
    let h1 = lan.start_agent(1, &[A]);
    let mut h2 = lan.start_agent(2, &[B]);
    let (a1, b2) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, Duration::from_secs(10), "h1 in A, h2 in B", |s| {
        is_member(s, A, &a1) && is_member(s, B, &b2)
    });

    // 200 datagrams/s per group for 8 s, spanning both reloads.
    let sender = lan.spawn_sender(&[
        "--group", A, "--group", B, "--count", "1600", "--rate", "400",
    ]);
    sleep(Duration::from_millis(1500));

    // 1. Not TOML.
    fs::write(
        &file,
        "upstream = \"up0\"\ndownstream = [\"dn0\"\nthis is not = = toml\n",
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for_status(&lan, Duration::from_secs(3), "reload_errors 1", |s| {
        counter(s, "reload_errors") == 1
    });
    let status = lan.status_json();
    assert_eq!(counter(&status, "reloads"), 0);
    assert!(
        is_member(&status, A, &a1) && is_member(&status, B, &b2),
        "{status:#}"
    );
    let lines = reload_lines(&daemon);
    assert_eq!(
        lines.len(),
        1,
        "one error line for the broken file: {lines:#?}"
    );
    assert!(
        lines[0].contains("[ERROR]"),
        "not an error line: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(&path),
        "the line names {path}: {}",
        lines[0]
    );
    assert!(daemon.is_running());

    // 2. Valid, but the upstream differs: nothing of it applies, not even the deny.
    sleep(Duration::from_millis(1000));
    let text = format!(
        "upstream = \"up1\"\ndownstream = [\"dn0\"]\nquery-interval = \"120s\"\n\
         query-response-interval = \"1s\"\n{DENY_B}"
    );
    fs::write(&file, text).unwrap();
    h2.mark();
    let hup2 = epoch_now();
    daemon.signal(libc::SIGHUP);
    wait_for_status(&lan, Duration::from_secs(3), "reload_errors 2", |s| {
        counter(s, "reload_errors") == 2
    });
    let lines = reload_lines(&daemon);
    assert_eq!(lines.len(), 2, "one more error line: {lines:#?}");
    assert!(
        lines[1].contains("upstream") && lines[1].contains("cannot change while running"),
        "the line names upstream: {}",
        lines[1]
    );
    sleep(Duration::from_millis(1500));
    let status = lan.status_json();
    assert_eq!(counter(&status, "reloads"), 0);
    assert_eq!(status["upstream"]["interface"], "up0", "{status:#}");
    assert!(
        is_member(&status, A, &a1) && is_member(&status, B, &b2),
        "{status:#}"
    );
    let joined = upstream_joined(&status);
    assert!(
        joined.contains(&A.into()) && joined.contains(&B.into()),
        "{status:#}"
    );
    assert!(
        reported(&lan, A) && reported(&lan, B),
        "{:?}",
        lan.kernel_groups("up0")
    );
    assert!(daemon.is_running());

    let sent = sender.wait(Duration::from_secs(30));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_unicast_member(&r1, A, sent.sent(A));
    assert_unicast_member(&r2, B, sent.sent(B));
    let b = r2.arrivals(B).expect("arrivals of B");
    assert!(
        r2.since_mark_class(B, UNICAST) >= 400 && b.last > hup2 + 2.5,
        "h2 lost B after the second reload: {} frames since, last {:.3} s after it",
        r2.since_mark_class(B, UNICAST),
        b.last - hup2
    );
    let lines = reload_lines(&daemon);
    eprintln!("log: {lines:#?}");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    daemon.stop_ok();
}
