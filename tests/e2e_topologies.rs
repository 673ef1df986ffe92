//! snoopcast in other topologies: two downstreams with their own compatibility policy, an L3
//! tun upstream, a local source on a dummy upstream, and interfaces that vanish, go down,
//! come back or appear late.
//!
//! ```text
//!  two downstreams (test 1, 4):
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0]  p1.. --veth-- [h1..hN] 10.2.0.1k
//!                                         dn1 --veth-- p0 [sw2: br0] p1.. --veth-- [hN+1..] 10.3.0.1k
//!
//!  tun upstream (test 2):
//!  tun_source.py ==fd==> tun0 10.9.0.1 [box: snoopcast] dn0 --veth-- [sw] -- [h1..h3]
//!    (raw IPv4 from 10.9.0.2, no Ethernet header)
//!
//!  local source (test 3):
//!  mcast_send.py --iface up0 -> up0 (dummy) 10.1.0.2 [box: snoopcast] dn0 --veth-- [sw] -- [h1..h3]
//!    (sent on the box itself: UDP checksum left to "hardware", CHECKSUM_PARTIAL)
//! ```
//!
//! Every test starts the daemon before the hosts join and waits until `status --json` lists
//! the members before it sends. Each stream to a group is sent once per test (the agents
//! count a repeated sequence number of a (group, source) as a duplicate); probes that look
//! for delivery to resume use their own group.
//!
//! Test 3 has an IPv6 twin in e2e_ipv6.rs: both run one body of tests/twins (with `V4`
//! here, see tests/common/family.rs).

mod common;
mod twins;

use common::*;
use serde_json::Value;
use std::thread::sleep;
use std::time::{Duration, Instant};

const G1: &str = "239.1.1.1";
const G2: &str = "239.1.1.2";
/// The probe group: sent to repeatedly while waiting for delivery to resume.
const GP: &str = "239.1.1.99";

/// Short timers: GMI = 2 * 4 s + 2 * 1 s = 10 s.
const TIMERS: [&str; 4] = ["--query-interval", "4s", "--query-response-interval", "1s"];

const JOIN_WAIT: Duration = Duration::from_secs(10);
/// How long snoopcast may take to notice an interface change (it polls about once a second).
const IFACE_WAIT: Duration = Duration::from_secs(5);
/// How long until hosts behind a returned interface are members again and streams flow.
const RETURN_WAIT: Duration = Duration::from_secs(10);

fn args_with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = TIMERS.to_vec();
    v.extend_from_slice(extra);
    v
}

/// The `state` of interface `name` in the status ("up"/"down"), or "" if it is not listed.
fn iface_state(status: &Value, name: &str) -> String {
    iface_status(status, name)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// How often `group` is in `upstream.joined` (strings or objects with a `group` key).
fn upstream_joined_count(status: &Value, group: &str) -> usize {
    status["upstream"]["joined"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| *j == group || j["group"] == group)
        .count()
}

/// Member entries listed on interface `dn`, over all groups.
fn members_on(status: &Value, dn: &str) -> usize {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["interface"] == dn)
        .count()
}

/// Corrupt or duplicate datagrams of `group` on the agent's socket.
fn bad_or_dup(r: &AgentReport, group: &str) -> u64 {
    r.json["socket"][group]
        .as_object()
        .into_iter()
        .flat_map(|per_source| per_source.values())
        .map(|c| c["bad"].as_u64().unwrap_or(0) + c["dup"].as_u64().unwrap_or(0))
        .sum()
}

/// The member got the stream as unicast copies to its own MAC, intact on its socket.
fn assert_unicast_member(r: &AgentReport, group: &str, sent: u64) {
    let who = &r.host.name;
    assert_delivered(
        r.frames(group, UNICAST),
        sent,
        &format!("{who} {group} unicast frames"),
    );
    assert_delivered(
        r.sock_ok(group),
        sent,
        &format!("{who} {group} intact datagrams on the socket (frames arrived: a bad checksum?)"),
    );
    assert_eq!(
        r.frames(group, MULTICAST),
        0,
        "{who}: {group} arrived as L2 multicast"
    );
    assert_eq!(
        r.frames(group, OTHER),
        0,
        "{who}: {group} frames for other MACs"
    );
    assert_eq!(
        bad_or_dup(r, group),
        0,
        "{who}: corrupt or duplicate datagrams of {group}"
    );
}

/// The member got the stream as one L2 multicast copy (compatibility mode), intact.
fn assert_multicast_member(r: &AgentReport, group: &str, sent: u64) {
    let who = &r.host.name;
    assert_delivered(
        r.frames(group, MULTICAST),
        sent,
        &format!("{who} {group} L2 multicast frames"),
    );
    assert_eq!(
        r.frames(group, UNICAST),
        0,
        "{who}: unicast copies of {group} besides the multicast one"
    );
    assert_delivered(r.sock_ok(group), sent, &format!("{who} {group} socket"));
    assert_eq!(
        bad_or_dup(r, group),
        0,
        "{who}: corrupt or duplicate datagrams of {group}"
    );
}

/// Sends short bursts to `GP` until every agent got frames of it since its mark, or panics
/// after `timeout`. Returns how long it took.
fn wait_delivery_resumes(lan: &Lan, agents: &mut [&mut Agent], timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        for a in agents.iter_mut() {
            a.mark();
        }
        lan.send(&["--group", GP, "--count", "40", "--rate", "400"]);
        settle();
        let missing: Vec<String> = agents
            .iter_mut()
            .map(|a| a.report())
            .filter(|r| r.since_mark(GP) == 0)
            .map(|r| r.host.name.clone())
            .collect();
        if missing.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "delivery did not resume within {timeout:?}: no probe of {GP} reached {missing:?}"
        );
        sleep(Duration::from_millis(300));
    }
}

/// (1) Two downstreams, each with its own compatibility policy. IGMPv2 and IGMPv3 hosts in
/// the same group G1 on both: the group is one upstream membership; on dn0 (multicast
/// fallback) it goes out as one L2 multicast copy, on dn1 (unicast fallback) as a unicast
/// copy per member; the host on dn1 that did not join gets nothing.
#[test]
fn two_downstreams_with_per_interface_fallback() {
    require_root!();
    let lan = Lan::builder("toptwo")
        .hosts(2)
        .downstream2_hosts(3)
        .igmp_version(1, 2)
        .igmp_version(3, 2)
        .build();
    assert_eq!(lan.hosts_on("dn0"), vec![1, 2]);
    assert_eq!(lan.hosts_on("dn1"), vec![3, 4, 5]);
    let daemon = start_snoopcast(
        &lan,
        &args_with(&[
            "--compat-fallback",
            "dn0=multicast",
            "--compat-fallback",
            "dn1=unicast",
        ]),
    );
    let h1 = lan.start_agent(1, &[G1]); // dn0, v2
    let h2 = lan.start_agent(2, &[G1]); // dn0, v3
    let h3 = lan.start_agent(3, &[G1]); // dn1, v2
    let h4 = lan.start_agent(4, &[G1]); // dn1, v3
    let h5 = lan.start_agent(5, &[]); // dn1, no group
    let members: Vec<Host> = (1..=4).map(|i| lan.host(i).clone()).collect();
    wait_for_status(&lan, JOIN_WAIT, "h1..h4 in G1", |s| {
        members.iter().all(|h| is_member(s, G1, h))
    });
    // The v2 hosts' reports put G1 in compatibility mode on both interfaces.
    wait_for_status(&lan, JOIN_WAIT, "G1 in IGMPv2 compatibility on dn0", |s| {
        compat_of(s, G1)
            .iter()
            .any(|c| c["interface"] == "dn0" && c["delivery"] == "multicast")
    });

    let status = lan.status_json();
    for h in &members {
        let m = member(&status, G1, h).unwrap();
        assert_eq!(
            m["interface"], h.downstream,
            "{} is listed on the wrong interface: {m}",
            h.name
        );
    }
    for (dn, policy) in [("dn0", "multicast"), ("dn1", "unicast")] {
        let i = iface_status(&status, dn);
        assert!(!i.is_null(), "{dn} not in {status:#}");
        assert_eq!(i["compat_fallback"], policy, "{dn}: {i}");
        assert_eq!(i["state"], "up", "{dn}: {i}");
    }
    let compat = compat_of(&status, G1);
    assert!(
        !compat
            .iter()
            .any(|c| c["interface"] == "dn1" && c["delivery"] == "multicast"),
        "dn1's policy is unicast, yet G1 goes out as multicast there: {compat:?}"
    );
    assert_eq!(
        upstream_joined_count(&status, G1),
        1,
        "G1 must be one upstream membership: {}",
        status["upstream"]
    );
    let kernel = lan.kernel_groups("up0");
    assert!(
        !kernel.iter().any(|(g, _)| g == G1),
        "the box kernel holds G1 on up0 (snoopcast reports it itself): {kernel:?}"
    );

    let sent = lan.send(&["--group", G1, "--count", "800", "--rate", "400"]);
    settle();
    let (r1, r2, r3, r4, r5) = (
        h1.finish(),
        h2.finish(),
        h3.finish(),
        h4.finish(),
        h5.finish(),
    );
    let n = sent.sent(G1);
    assert_multicast_member(&r1, G1, n);
    assert_multicast_member(&r2, G1, n);
    assert_unicast_member(&r3, G1, n);
    assert_unicast_member(&r4, G1, n);
    assert_nothing(&r5, G1);
    daemon.stop_ok();
}

/// (2) The upstream is an L3 tun device (no Ethernet header): datagrams written into tun0
/// reach the members as unicast copies, intact; the non-member gets nothing.
#[test]
fn tun_upstream() {
    require_root!();
    let lan = Lan::builder("toptun").hosts(3).tun_upstream().build();
    assert_eq!(lan.upstream_if(), "tun0");
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G1]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b)
    });
    let joined = wait_until(Duration::from_secs(5), || {
        upstream_joined_count(&lan.status_json(), G1) == 1
    });
    let kernel = lan.kernel_groups("tun0");
    assert!(
        joined && !kernel.iter().any(|(g, _)| g == G1),
        "G1 must be reported on tun0 by snoopcast, not joined by the box kernel: {kernel:?}"
    );

    let sent = lan.send(&["--group", G1, "--count", "800", "--rate", "400"]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());
    assert_unicast_member(&r1, G1, sent.sent(G1));
    assert_unicast_member(&r2, G1, sent.sent(G1));
    assert_nothing(&r3, G1);
    daemon.stop_ok();
}

/// (3) A program on the box sends out of the upstream (a dummy device, so the UDP checksum
/// is left to "hardware": the captured frames carry only the pseudo-header sum). The
/// members get the stream intact on their sockets, which they would drop unless snoopcast
/// completes the checksum.
#[test]
fn local_source_on_dummy_upstream() {
    require_root!();
    twins::local_source_gets_its_checksum_completed(&V4);
}

/// (4) dn0 is deleted (its switch port with it) while h1 and h2 behind it are members:
/// snoopcast keeps running, shows dn0 down, drops their memberships and keeps serving h3
/// behind dn1. The veth comes back: hosts re-report on snoopcast's queries, and a stream
/// sent after they re-appear reaches them.
#[test]
fn downstream_vanishes_and_returns() {
    require_root!();
    let lan = Lan::builder("topvanish")
        .hosts(2)
        .downstream2_hosts(1)
        .build();
    let mut daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1, G2]);
    let mut h2 = lan.start_agent(2, &[G1, G2]);
    let h3 = lan.start_agent(3, &[G1]);
    let (a, b, c) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, JOIN_WAIT, "h1, h2 in G1 and G2, h3 in G1", |s| {
        [G1, G2]
            .iter()
            .all(|g| is_member(s, g, &a) && is_member(s, g, &b))
            && is_member(s, G1, &c)
    });
    let before = lan.status_json();
    let dropped_before = counter(&before, "members_dropped_iface");
    let on_dn0 = members_on(&before, "dn0") as u64;
    assert_eq!(on_dn0, 4, "h1 and h2 in two groups: {before:#}");

    lan.delete_downstream(0);
    wait_for_status(&lan, IFACE_WAIT, "dn0 down, its members dropped", |s| {
        iface_state(s, "dn0") == "down" && members_on(s, "dn0") == 0
    });
    assert!(daemon.is_running(), "snoopcast exited when dn0 vanished");
    let status = lan.status_json();
    assert_eq!(iface_state(&status, "dn1"), "up", "{status:#}");
    assert!(is_member(&status, G1, &c), "h3 behind dn1 lost G1");
    assert_eq!(
        counter(&status, "members_dropped_iface") - dropped_before,
        on_dn0,
        "members_dropped_iface counts the memberships dropped with dn0"
    );

    // dn1 keeps working meanwhile.
    h1.mark();
    h2.mark();
    let during = lan.send(&["--group", G1, "--count", "600", "--rate", "400"]);
    settle();

    lan.recreate_downstream(0);
    wait_for_status(&lan, RETURN_WAIT, "dn0 up, h1 and h2 members again", |s| {
        iface_state(s, "dn0") == "up"
            && [G1, G2]
                .iter()
                .all(|g| is_member(s, g, &a) && is_member(s, g, &b))
    });
    let after = lan.send(&["--group", G2, "--count", "800", "--rate", "400"]);
    settle();
    assert!(daemon.is_running(), "snoopcast exited");
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());
    assert_unicast_member(&r3, G1, during.sent(G1));
    assert_eq!(r1.since_mark(G1), 0, "h1 got G1 while dn0 was gone");
    assert_eq!(r2.since_mark(G1), 0, "h2 got G1 while dn0 was gone");
    assert_unicast_member(&r1, G2, after.sent(G2));
    assert_unicast_member(&r2, G2, after.sent(G2));
    assert_nothing(&r3, G2);
    daemon.stop_ok();
}

/// (5) The upstream goes down and up again: delivery resumes and the box's kernel holds the
/// groups on up0 again.
#[test]
fn upstream_down_and_up() {
    require_root!();
    let lan = Lan::builder("topupdown").hosts(2).build();
    let mut daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1, GP]);
    let mut h2 = lan.start_agent(2, &[G1, GP]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1 and GP", |s| {
        [G1, GP]
            .iter()
            .all(|g| is_member(s, g, &a) && is_member(s, g, &b))
    });
    // Both reported upstream (snoopcast reports itself; the box kernel holds neither).
    let kernel_has_both = |lan: &Lan| {
        let s = lan.status_json();
        let k = lan.kernel_groups("up0");
        [G1, GP]
            .iter()
            .all(|g| upstream_joined_count(&s, g) == 1 && !k.iter().any(|(kg, _)| kg == g))
    };
    assert!(
        wait_until(Duration::from_secs(5), || kernel_has_both(&lan)),
        "G1 and GP not joined on up0 at start: {:?}",
        lan.kernel_groups("up0")
    );

    lan.set_box_link("up0", false);
    // Give snoopcast time to notice (it polls about once a second).
    sleep(Duration::from_secs(2));
    assert!(daemon.is_running(), "snoopcast exited when up0 went down");
    let status = lan.status_json();
    assert!(
        is_member(&status, G1, &a) && is_member(&status, G1, &b),
        "the downstream members must survive the upstream going down: {status:#}"
    );

    lan.set_box_link("up0", true);
    lan.wait_links_up();
    let took = wait_delivery_resumes(&lan, &mut [&mut h1, &mut h2], RETURN_WAIT);
    eprintln!("delivery resumed {took:?} after up0 came back");
    assert!(
        wait_until(Duration::from_secs(5), || kernel_has_both(&lan)),
        "G1 and GP not joined on up0 again: {:?}",
        lan.kernel_groups("up0")
    );
    let sent = lan.send(&["--group", G1, "--count", "800", "--rate", "400"]);
    settle();
    assert!(daemon.is_running(), "snoopcast exited");
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_unicast_member(&r1, G1, sent.sent(G1));
    assert_unicast_member(&r2, G1, sent.sent(G1));
    daemon.stop_ok();
}

/// (6) A downstream missing at start: exit 2 naming it, unless --wait-for-interfaces, when
/// snoopcast runs, shows it down, and takes it up once it appears (dn0 renamed to dn9): a
/// host's join through it works.
#[test]
fn wait_for_interfaces() {
    require_root!();
    let lan = Lan::builder("topwait").hosts(1).build();

    let out = run_snoopcast_once(&lan, "up0", &["dn9"], &TIMERS, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing --downstream without --wait-for-interfaces: exit 2\nstdout {}\nstderr {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("dn9") || out.stdout.contains("dn9"),
        "the message names dn9: {}{}",
        out.stderr,
        out.stdout
    );

    let mut daemon = start_snoopcast_with(
        &lan,
        "up0",
        &["dn9"],
        &args_with(&["--wait-for-interfaces"]),
    );
    wait_for_status(&lan, Duration::from_secs(3), "dn9 listed down", |s| {
        iface_state(s, "dn9") == "down"
    });
    assert!(
        daemon.is_running(),
        "snoopcast exited while waiting for dn9"
    );

    // dn9 appears: the veth to the switch, renamed (a link must be down to be renamed).
    lan.set_box_link("dn0", false);
    ns_run(&lan.box_ns(), &["ip", "link", "set", "dn0", "name", "dn9"]);
    lan.set_box_link("dn9", true);
    lan.wait_links_up();
    wait_for_status(&lan, IFACE_WAIT, "dn9 up", |s| {
        iface_state(s, "dn9") == "up"
    });

    let h1 = lan.start_agent(1, &[G1]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1 through dn9", |s| {
        member(s, G1, &a).map(|m| m["interface"] == "dn9") == Some(true)
    });
    let sent = lan.send(&["--group", G1, "--count", "800", "--rate", "400"]);
    settle();
    assert_unicast_member(&h1.finish(), G1, sent.sent(G1));
    daemon.stop_ok();
}
