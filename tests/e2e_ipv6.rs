//! snoopcast end to end over IPv6 (issue 6): MLDv2 and MLDv1 hosts, leave and expiry, SSM,
//! link-local scope, both families at once, `--no-ipv6`, `--mld-version 1`, `--allow` and
//! `--deny` with IPv6 prefixes, fragments and extension headers in the data, a re-created
//! downstream and the MLD querier election. Numbers (1)-(7) are the tests issue 6 asks for.
//!
//! ```text
//!  [src] s0 10.1.0.1      --veth-- up0 10.1.0.2    [box: snoopcast] dn0 (fe80::..)
//!           fd00:1::1/64             fd00:1::2/64        |
//!           (fd00:1::9/64)     (the box kernel joins     +--veth-- p0 [sw: br0, dumb, no IPv6]
//!                               upstream here)                     p1..pN --veth-- eth0 [h1..hN]
//!                                                                  10.2.0.1N + fe80::..
//! ```
//!
//! Hosts report with their link-local addresses (RFC 3810 5.2.13); DAD is off in every
//! namespace, so the addresses are usable at once. The host kernels speak MLDv2, or MLDv1
//! where a test forces it (`force_mld_version`, `LanBuilder::mld_version`). As in
//! e2e_ipv4.rs, every test starts the daemon first, then the agents, and waits until
//! `status --json` lists the members before it sends.
//!
//! The first two tests (`harness_*`) need no snoopcast: they prove the IPv6 side of the
//! harness on the kernel alone (agents' MLD counters and frame counts, SSM filtering on the
//! agents' sockets, the box kernel's upstream join read from /proc/net/igmp6).
//!
//! The tests with an IPv4 twin (in e2e_ipv4.rs, e2e_topologies.rs) run one body of
//! tests/twins with `V6` (tests/common/family.rs); the doc of each behaviour is on its body
//! there.

mod common;
mod twins;

use common::*;
use serde_json::Value;
use std::thread::sleep;
use std::time::{Duration, Instant};
use twins::{JOIN_WAIT, TIMERS};

/// Any-source IPv6 groups (global scope).
const G6: &str = V6.g1;
const G6B: &str = V6.g2;
/// Source-specific (ff3x::/32, RFC 4607 1).
const SSM6: &str = V6.ssm;
/// Link-local scope (never forwarded) and a site-local positive control.
const LL6: &str = "ff02::1:2:3";
const SITE6: &str = "ff05::1";
const S1: &str = V6.s1;
const S2: &str = V6.s2;
const G4: &str = V4.g1;

fn lan6(tag: &str, hosts: usize) -> LanBuilder {
    Lan::builder(tag).hosts(hosts).ipv6(true)
}

/// Every group the status lists.
fn status_groups(status: &Value) -> Vec<String> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["group"].as_str().map(str::to_string))
        .collect()
}

/// The box's up0 as a `Host`, for an agent there (`Lan::start_agent_on`).
fn box_up0(lan: &Lan) -> Host {
    Host {
        name: "box-up0".into(),
        ns: lan.box_ns(),
        ip: "10.1.0.2".into(),
        mac: "02:5c:00:01:00:02".into(),
        igmp_version: None,
        downstream: "up0".into(),
    }
}

fn kernel_has(groups: &[(String, u32)], g: &str) -> bool {
    groups.iter().any(|(k, _)| k == g)
}

// ------------------------------------------------------------------------------------------
// The harness alone (no snoopcast)
// ------------------------------------------------------------------------------------------

/// A plain bridge in the box floods IPv6 multicast to every host: the agents count every
/// IPv6 UDP frame as L2 multicast per (group, source), their sockets get exactly what they
/// joined (any-source, and source-specific filtered by the kernel), and their kernels'
/// MLD reports are counted by type: MLDv2 by default, MLDv1 under force_mld_version=1.
#[test]
fn harness_bridge_floods_ipv6_and_agents_count_it() {
    require_root!();
    let lan = lan6("v6flood", 3)
        .bridge_box()
        .src_addr("fd00:1::9/64")
        .mld_version(3, 1)
        .build();
    let h1 = lan.start_agent(1, &[G6, G6B, LL6]);
    let h2 = lan.start_agent(2, &[&format!("{SSM6}@{S1}")]);
    let h3 = lan.start_agent(3, &[G6]);
    // The kernels' hosts join with unsolicited reports at once; give them time to go out.
    sleep(Duration::from_millis(300));
    // 3000-byte datagrams: three fragments each, behind a Fragment header.
    let big = lan.send(&[
        "--group", G6B, "--count", "100", "--rate", "200", "--size", "3000",
    ]);

    let any = lan.send(&[
        "--group", G6, "--group", LL6, "--count", "300", "--rate", "600",
    ]);
    assert_eq!(any.json["source"], S1, "default IPv6 source is s0's global");
    let args = ["--group", SSM6, "--count", "300", "--rate", "300"];
    let s1 = lan.spawn_sender(&[&["--source", S1][..], &args].concat());
    let s2 = lan.spawn_sender(&[&["--source", S2][..], &args].concat());
    let (s1, s2) = (
        s1.wait(Duration::from_secs(30)),
        s2.wait(Duration::from_secs(30)),
    );
    settle();
    let reports = [h1.finish(), h2.finish(), h3.finish()];

    for r in &reports {
        let who = &r.host.name;
        // Link-local scope too: the agents would see it if snoopcast forwarded it.
        for g in [G6, LL6] {
            assert_delivered(
                r.frames(g, MULTICAST),
                any.sent(g),
                &format!("{who} {g} multicast frames"),
            );
        }
        assert_delivered(
            r.frames_from(SSM6, S1, MULTICAST),
            s1.sent(SSM6),
            &format!("{who} ({S1},{SSM6}) multicast frames"),
        );
        assert_delivered(
            r.frames_from(SSM6, S2, MULTICAST),
            s2.sent(SSM6),
            &format!("{who} ({S2},{SSM6}) multicast frames"),
        );
        assert_eq!(r.frames(G6, UNICAST) + r.frames(SSM6, UNICAST), 0);
        assert_eq!(r.sock_bad_or_dup(), 0, "{who}: corrupt or duplicate");
        assert!(
            r.ip6().first().is_some_and(|a| a.starts_with("fe80:")),
            "{who}: agent lists eth0's link-local address: {:?}",
            r.ip6()
        );
    }
    let [r1, r2, r3] = &reports;
    assert_eq!(r1.ip6()[0], lan.host_ll6(1));
    assert_delivered(r1.sock_ok(G6), any.sent(G6), "h1 socket G6");
    assert_delivered(
        r1.sock_ok(LL6),
        any.sent(LL6),
        "h1 socket LL6 (scope id bind)",
    );
    assert_eq!(r1.sock_ok(SSM6), 0, "h1 did not join SSM6");
    assert_delivered(
        r1.sock_ok(G6B),
        big.sent(G6B),
        "h1 socket G6B (reassembled)",
    );
    assert!(
        r1.frames(G6B, MULTICAST) >= 3 * big.sent(G6B),
        "every fragment counted: {} frames for {} datagrams",
        r1.frames(G6B, MULTICAST),
        big.sent(G6B)
    );
    assert_delivered(
        r2.sock_ok_from(SSM6, S1),
        s1.sent(SSM6),
        "h2 socket (S1,SSM6)",
    );
    assert_eq!(
        r2.sock_any_from(SSM6, S2),
        0,
        "h2's source-specific join must keep S2 out"
    );
    assert_eq!(r2.sock_ok(G6), 0, "h2 did not join G6");
    assert_delivered(r3.sock_ok(G6), any.sent(G6), "h3 socket G6");

    // MLD as the kernels sent it: v2 reports from h1 and h2, v1 reports from h3 (forced).
    for r in [r1, r2] {
        assert!(
            r.mld_out_type(MLD_V2_REPORT) >= 1 && r.mld_out_type(MLD_V1_REPORT) == 0,
            "{}: MLDv2 reports expected: {}",
            r.host.name,
            r.json["mld_out_types"]
        );
    }
    assert!(
        r3.mld_out_type(MLD_V1_REPORT) >= 1 && r3.mld_out_type(MLD_V2_REPORT) == 0,
        "h3 (force_mld_version=1): MLDv1 reports expected: {}",
        r3.json["mld_out_types"]
    );
    assert!(r1.mld_out() >= r1.mld_out_type(MLD_V2_REPORT));
    // On the dumb switch every host hears the others' reports.
    assert!(r1.mld_in() >= 1, "h1 heard no MLD at all");
}

/// Without snoopcast running: a socket in the box joined on up0 is what snoopcast's
/// upstream join does. /proc/net/igmp6 shows it (`Lan::kernel_groups6`), the box kernel
/// reports it upstream, the source's IPv6 datagrams arrive on up0, and a leave removes it.
#[test]
fn harness_box_kernel_joins_ipv6_on_up0() {
    require_root!();
    let lan = lan6("v6kern", 1).build();
    assert!(
        !kernel_has(&lan.kernel_groups6("up0"), G6),
        "{G6} joined on up0 before anyone asked: {:?}",
        lan.kernel_groups6("up0")
    );
    let mut agent = lan.start_agent_on(box_up0(&lan), "up0", &[G6], Duration::from_secs(60));
    let groups = lan.kernel_groups6("up0");
    assert!(
        groups.iter().any(|(g, users)| g == G6 && *users >= 1),
        "{G6} not in the box's /proc/net/igmp6 for up0: {groups:?}"
    );
    assert!(
        groups.iter().all(|(g, _)| !g.starts_with("ff02:")),
        "link-local scope groups must be left out: {groups:?}"
    );
    let sent = lan.send(&["--group", G6, "--count", "200", "--rate", "400"]);
    settle();
    let r = agent.report();
    assert_delivered(r.frames(G6, MULTICAST), sent.sent(G6), "up0 frames of G6");
    assert_delivered(r.sock_ok(G6), sent.sent(G6), "up0 socket G6");
    assert!(
        r.mld_out_type(MLD_V2_REPORT) >= 1,
        "the box kernel reported {G6} upstream: {}",
        r.json["mld_out_types"]
    );
    agent.leave(G6);
    assert!(
        wait_until(Duration::from_secs(2), || !kernel_has(
            &lan.kernel_groups6("up0"),
            G6
        )),
        "{G6} still joined on up0 after the leave: {:?}",
        lan.kernel_groups6("up0")
    );
    drop(agent.finish());
}

// ------------------------------------------------------------------------------------------
// snoopcast
// ------------------------------------------------------------------------------------------

/// (1) MLDv2 any-source: members get unicast copies to their own MAC and nothing as L2
/// multicast, the non-member nothing; status lists them with their link-local address and
/// mld_version 2; the box kernel joined the group on up0.
#[test]
fn mldv2_members_get_unicast_copies_only() {
    require_root!();
    twins::members_get_unicast_copies_only(&V6);
}

/// (2) An MLDv2 leave (TO_IN{}) stops delivery to that host at once; the other member keeps
/// the stream.
#[test]
fn mldv2_leave_stops_delivery_at_once() {
    require_root!();
    twins::leave_stops_delivery_at_once(&V6);
}

/// A host that stops answering MLD queries (no Done) expires after the multicast address
/// listening interval (RFC 3810 9.4: robustness x QI + QRI), and delivery to it stops;
/// the other member, which answers snoopcast's MLD queries, stays. This is what proves the
/// querier: hosts only answer queries they accept (link-local source, hop limit 1, Router
/// Alert, checksum), and h2 would expire too otherwise.
///
/// Method: `Lan::block_mld_out` drops h1's outgoing MLD at tc egress; the agent counts
/// outgoing MLD after tc, so the test checks the silence held.
#[test]
fn mldv2_silent_host_expires_and_queried_host_stays() {
    require_root!();
    twins::silent_host_expires(&V6);
}

/// (3) Source-specific MLDv2 joins (INCLUDE {S}, RFC 3810 5.2.12): each host gets only
/// the source it asked for, from two sources sending to the same SSM group. An
/// any-source join (EXCLUDE {}) of the SSM group makes no member (RFC 4604 3, RFC 4607 1).
#[test]
fn mldv2_source_specific_join_gets_only_that_source() {
    require_root!();
    twins::source_specific_join_gets_only_that_source(&V6);
}

/// (4) An MLDv1 host (force_mld_version=1) next to an MLDv2 host in the same group. With
/// `--compat-fallback unicast` both get unicast copies; status shows mld_version 1 and 2;
/// the v1 host's Done (RFC 2710 4) removes it at once and the v2 host keeps the stream.
#[test]
fn mldv1_host_gets_unicast_and_done_removes_it() {
    require_root!();
    twins::old_host_gets_unicast_and_leave_removes_it(&V6);
}

/// (4b) By default (`--compat-fallback multicast`) a group with an MLDv1 host is in
/// compatibility mode (RFC 3810 8.3.2, like IGMPv2 in RFC 3376 7.3.2) and goes out as L2
/// multicast (33:33:..); a group of MLDv2 hosts only stays unicast.
#[test]
fn mldv1_host_gets_multicast_in_compat_mode() {
    require_root!();
    twins::old_host_gets_multicast_in_compat_mode(&V6);
}

/// `--mld-version 1`: snoopcast's MLDv1 queries put the hosts' kernels in MLDv1 mode
/// (RFC 3810 8.2.1), so they report with MLDv1 and are listed with mld_version 1; with
/// `--compat-fallback unicast` they still get unicast copies.
#[test]
fn mld_version_1_queries_turn_hosts_to_mldv1() {
    require_root!();
    let lan = lan6("v6q1", 2).build();
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&["--mld-version", "1", "--compat-fallback", "unicast"]);
    let daemon = start_snoopcast(&lan, &args);
    // The hosts' kernels must have heard a query before they join.
    wait_for_status(&lan, JOIN_WAIT, "a startup MLD query sent", |s| {
        counter(s, "mld_queries_sent") >= 1
    });
    sleep(Duration::from_millis(200));
    let h1 = lan.start_agent(1, &[G6]);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6 with MLDv1", |s| {
        member(s, G6, &a).is_some_and(|m| m["mld_version"] == 1)
    });
    let sent = lan.send(&["--group", G6, "--count", "400", "--rate", "400"]);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert!(
        r1.mld_out_type(MLD_V1_REPORT) >= 1 && r1.mld_out_type(MLD_V2_REPORT) == 0,
        "h1 reported with MLDv1 only: {}",
        r1.json["mld_out_types"]
    );
    assert_unicast_member(&r1, G6, sent.sent(G6));
    assert_nothing(&r2, G6);
    daemon.stop_ok();
}

/// (5) Link-local scope (ff02::/16) is never forwarded, even when a host joins it; a
/// site-local group (ff05::1) from the same source is, as the positive control.
#[test]
fn link_local_scope_is_never_forwarded() {
    require_root!();
    let lan = lan6("v6scope", 3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[LL6, SITE6]);
    let h2 = lan.start_agent(2, &[LL6]);
    let h3 = lan.start_agent(3, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in ff05::1", |s| {
        is_member(s, SITE6, &a)
    });
    // h1 and h2 reported ff02::1:2:3 with the same reports; give stragglers a moment.
    sleep(Duration::from_millis(500));

    let sent = lan.send(&[
        "--group", LL6, "--group", SITE6, "--count", "400", "--rate", "800",
    ]);
    settle();
    let status = lan.status_json();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_eq!(sent.sent(LL6), 400, "the source did send {LL6}");
    assert_unicast_member(&r1, SITE6, sent.sent(SITE6));
    for r in [&r1, &r2, &r3] {
        assert_nothing(r, LL6);
    }
    assert_nothing(&r2, SITE6);
    assert_nothing(&r3, SITE6);
    let scoped: Vec<String> = status_groups(&status)
        .into_iter()
        .filter(|g| g.starts_with("ff02:") || g.starts_with("ff01:"))
        .collect();
    assert!(
        scoped.is_empty(),
        "status lists link-local scope groups: {scoped:?}\n{status:#}"
    );
    assert!(
        !upstream_joined(&status).iter().any(|g| g == LL6),
        "{LL6} joined upstream\n{status:#}"
    );
    daemon.stop_ok();
}

/// (6) Both families on one LAN: each member gets exactly the groups it joined, the
/// IPv4 one by IGMPv3 and the IPv6 one by MLDv2.
#[test]
fn ipv4_and_ipv6_groups_side_by_side() {
    require_root!();
    let lan = lan6("v6dual", 3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G4]);
    let h2 = lan.start_agent(2, &[G6]);
    let h3 = lan.start_agent(3, &[G4, G6]);
    let (a, b, c) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, JOIN_WAIT, "h1 in G4, h2 in G6, h3 in both", |s| {
        is_member(s, G4, &a) && is_member(s, G6, &b) && is_member(s, G4, &c) && is_member(s, G6, &c)
    });
    let status = lan.status_json();
    let dump = format!("{status:#}");
    assert!(
        !is_member(&status, G6, &a) && !is_member(&status, G4, &b),
        "a host is listed in a group of the other family\n{dump}"
    );
    let joined = upstream_joined(&status);
    assert!(
        joined.iter().any(|g| g == G4) && joined.iter().any(|g| g == G6),
        "both groups joined upstream\n{dump}"
    );
    // Reported by snoopcast itself: the box kernel holds neither (issue 16).
    assert!(!kernel_has(&lan.kernel_groups6("up0"), G6), "{dump}");
    assert!(
        !lan.kernel_groups("up0").iter().any(|(g, _)| g == G4),
        "{dump}"
    );

    let v4 = lan.spawn_sender(&["--group", G4, "--count", "400", "--rate", "400"]);
    let v6 = lan.spawn_sender(&["--group", G6, "--count", "400", "--rate", "400"]);
    let (v4, v6) = (
        v4.wait(Duration::from_secs(30)),
        v6.wait(Duration::from_secs(30)),
    );
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_unicast_member(&r1, G4, v4.sent(G4));
    assert_nothing(&r1, G6);
    assert_unicast_member(&r2, G6, v6.sent(G6));
    assert_nothing(&r2, G4);
    assert_unicast_member(&r3, G4, v4.sent(G4));
    assert_unicast_member(&r3, G6, v6.sent(G6));
    daemon.stop_ok();
}

/// `--allow` and `--deny` with IPv6 prefixes: only allowed, not denied IPv6 groups make
/// members and are forwarded; an IPv6 `--allow` leaves IPv4 at its default (all).
#[test]
fn allow_and_deny_ipv6_prefixes() {
    require_root!();
    const OUTSIDE: &str = "ff0e::2:1";
    let lan = lan6("v6filter", 2).build();
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&["--allow", "ff0e::1:0/112", "--deny", "ff0e::1:2/128"]);
    let daemon = start_snoopcast(&lan, &args);
    let h1 = lan.start_agent(1, &[G6, G6B, OUTSIDE]);
    let h2 = lan.start_agent(2, &[G4]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6, h2 in G4", |s| {
        is_member(s, G6, &a) && is_member(s, G4, &b)
    });
    // h1's one report carried all three groups; give a straggler a moment.
    sleep(Duration::from_millis(300));
    let status = lan.status_json();
    for g in [G6B, OUTSIDE] {
        assert!(
            members(&status, g).is_empty(),
            "{g} is filtered but has members\n{status:#}"
        );
        assert!(
            !upstream_joined(&status).iter().any(|j| j == g),
            "{g} is filtered but joined upstream\n{status:#}"
        );
    }

    let v6 = lan.spawn_sender(&[
        "--group", G6, "--group", G6B, "--group", OUTSIDE, "--count", "300", "--rate", "600",
    ]);
    let v4 = lan.spawn_sender(&["--group", G4, "--count", "300", "--rate", "200"]);
    let (v6, v4) = (
        v6.wait(Duration::from_secs(30)),
        v4.wait(Duration::from_secs(30)),
    );
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_unicast_member(&r1, G6, v6.sent(G6));
    assert_nothing(&r1, G6B);
    assert_nothing(&r1, OUTSIDE);
    assert_unicast_member(&r2, G4, v4.sent(G4));
    daemon.stop_ok();
}

/// dn0 is deleted and created again (an OpenVPN restart without persist-tun): its IPv6
/// members are dropped, and once it is back snoopcast queries from its new link-local
/// address (which only appears once the link is up), the hosts answer and get the stream
/// again, and the group is joined on up0 (again, or still).
#[test]
fn recreated_downstream_queries_ipv6_hosts_again() {
    require_root!();
    let lan = lan6("v6recr", 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G6]);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6", |s| is_member(s, G6, &a));

    lan.delete_downstream(0);
    wait_for_status(&lan, Duration::from_secs(5), "dn0 down, h1 dropped", |s| {
        iface_status(s, "dn0")["state"] == "down" && !is_member(s, G6, &a)
    });
    lan.recreate_downstream(0);
    let back = Instant::now();
    wait_for_status(
        &lan,
        Duration::from_secs(10),
        "dn0 up, h1 in G6 again",
        |s| iface_status(s, "dn0")["state"] == "up" && is_member(s, G6, &a),
    );
    eprintln!("h1 a member again {:?} after dn0 came back", back.elapsed());
    let status = lan.status_json();
    let dn0 = iface_status(&status, "dn0");
    let dn0_ll = Lan::ipv6_addrs(&lan.box_ns(), "dn0", "link");
    assert!(
        dn0["query_source6"]
            .as_str()
            .is_some_and(|q| dn0_ll.iter().any(|x| x == q)),
        "dn0 query_source6 is the new dn0's link-local address {dn0_ll:?}\n{status:#}"
    );
    assert_eq!(dn0["mld_querier"], "querier", "{status:#}");
    assert!(
        upstream_joined(&status).iter().any(|g| g == G6),
        "{G6} reported on up0 again\n{status:#}"
    );
    h1.mark();
    let sent = lan.send(&["--group", G6, "--count", "400", "--rate", "400"]);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_delivered(
        r1.since_mark_class(G6, UNICAST),
        sent.sent(G6),
        "h1 G6 unicast after dn0 came back",
    );
    assert_no_multicast(&r1, G6);
    assert_nothing(&r2, G6);
    daemon.stop_ok();
}

/// `python3 -c MLD_QUERIER_PY SRC COUNT [GROUP [IFACE]]` sends COUNT MLDv2 queries (RFC
/// 3810 5.1) from link-local SRC out of IFACE (eth0), one every 0.25 s, as raw frames: a
/// general query (to ff02::1, 33:33:00:00:00:01), or with GROUP a multicast address
/// specific query to GROUP itself; IPv6 hop limit 1, a hop-by-hop header with Router
/// Alert (MLD), ICMPv6 130 with its pseudo-header checksum.
const MLD_QUERIER_PY: &str = r#"
import socket, struct, sys, time
src, count = socket.inet_pton(socket.AF_INET6, sys.argv[1]), int(sys.argv[2])
group = socket.inet_pton(socket.AF_INET6, sys.argv[3]) if len(sys.argv) > 3 else bytes(16)
iface = sys.argv[4] if len(sys.argv) > 4 else "eth0"
dst = group if any(group) else socket.inet_pton(socket.AF_INET6, "ff02::1")
mac = bytes.fromhex(open(f"/sys/class/net/{iface}/address").read().strip().replace(":", ""))
# type, code, checksum, max resp code (ms), reserved, group, S|QRV=2, QQIC=2, 0 sources
q = struct.pack("!BBHHH16sBBH", 130, 0, 0, 1000, 0, group, 2, 2, 0)
pseudo = src + dst + struct.pack("!I3xB", len(q), 58) + q
s = sum(struct.unpack("!%dH" % (len(pseudo) // 2), pseudo))
while s >> 16:
    s = (s & 0xFFFF) + (s >> 16)
q = q[:2] + struct.pack("!H", ~s & 0xFFFF) + q[4:]
hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
ip6 = struct.pack("!IHBB", 6 << 28, len(hbh) + len(q), 0, 1) + src + dst
frame = b"\x33\x33" + dst[12:] + mac + bytes.fromhex("86dd") + ip6 + hbh + q
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((iface, 0))
for i in range(count):
    sock.send(frame)
    time.sleep(0.25)
"#;

/// MLD querier election (RFC 3810 7.6.2): a query from a lower address (fe80::1, sent by
/// h3, below dn0's fe80::5c:ff:fe01:3) makes snoopcast non-querier; status names the
/// other querier, counts its queries, and the IGMP querier is not affected. Members keep
/// their streams (the hosts answer the other querier).
#[test]
fn lower_mld_querier_wins_the_election() {
    require_root!();
    let lan = lan6("v6elect", 3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G6]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6", |s| is_member(s, G6, &a));
    let status = lan.status_json();
    assert_eq!(iface_status(&status, "dn0")["mld_querier"], "querier");
    assert_eq!(counter(&status, "mld_queries_received"), 0);

    let other = "fe80::1";
    let h3 = lan.host(3).ns.clone();
    let out = ns_exec(
        &h3,
        &[python(), "-c", MLD_QUERIER_PY, other, "4"],
        Duration::from_secs(10),
    );
    assert!(out.ok(), "MLD query sender failed: {}", out.stderr);
    let status = lan.status_json();
    let dump = format!("{status:#}");
    let dn0 = iface_status(&status, "dn0");
    assert_eq!(dn0["mld_querier"], "non-querier", "dn0\n{dump}");
    assert_eq!(dn0["mld_other_querier"], other, "dn0\n{dump}");
    assert_eq!(dn0["querier"], "querier", "IGMP querier unaffected\n{dump}");
    assert_eq!(
        counter(&status, "mld_queries_received"),
        4,
        "mld_queries_received counts the 4 queries\n{dump}"
    );
    assert_eq!(counter(&status, "mld_malformed"), 0, "{dump}");
    assert!(is_member(&status, G6, &a), "h1 stays\n{dump}");
    let sent = lan.send(&["--group", G6, "--count", "400", "--rate", "400"]);
    settle();
    let r1 = h1.finish();
    assert_unicast_member(&r1, G6, sent.sent(G6));
    assert!(
        r1.mld_in() >= 4,
        "h1 heard the other querier: mld_in {}",
        r1.mld_in()
    );
    daemon.stop_ok();
}

/// MLD is never data (README, Forwarding): a multicast-address-specific MLD query for G6
/// (sent to G6 itself, so it looks like G6's traffic but for its ICMPv6 behind the
/// hop-by-hop header) arriving on up0 makes no copy for G6's member; data of G6 does.
#[test]
fn mld_from_upstream_is_not_forwarded() {
    require_root!();
    let lan = lan6("v6mldup", 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G6]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6", |s| is_member(s, G6, &a));
    // Watches up0, to prove the queries got there.
    let mut up0 = lan.start_agent_on(box_up0(&lan), "up0", &[], Duration::from_secs(60));
    let before = counter(&lan.status_json(), "copies_sent");
    h1.mark();
    let out = ns_exec(
        &lan.src_ns(),
        &[python(), "-c", MLD_QUERIER_PY, "fe80::1", "4", G6, "s0"],
        Duration::from_secs(10),
    );
    assert!(out.ok(), "MLD query sender failed: {}", out.stderr);
    settle();
    let after_queries = counter(&lan.status_json(), "copies_sent");
    let mid = h1.report();
    let seen = up0.report().mld_in();
    assert!(seen >= 4, "the 4 MLD queries reached up0: mld_in {seen}");
    let sent = lan.send(&["--group", G6, "--count", "100", "--rate", "400"]);
    settle();
    let status = lan.status_json();
    let r1 = h1.finish();
    assert_eq!(
        after_queries, before,
        "copies were sent for 4 MLD queries to {G6} from upstream\n{status:#}"
    );
    assert_eq!(
        mid.since_mark(G6),
        0,
        "h1 got UDP frames of G6 though none was sent yet"
    );
    assert_eq!(
        counter(&status, "copies_sent") - before,
        sent.sent(G6),
        "one copy per data datagram\n{status:#}"
    );
    assert_unicast_member(&r1, G6, sent.sent(G6));
    daemon.stop_ok();
}

/// (7) `--no-ipv6`: MLD reports make no member and no upstream join, no IPv6 stream is
/// forwarded; IPv4 on the same LAN works as before.
#[test]
fn no_ipv6_ignores_mld_and_keeps_ipv4() {
    require_root!();
    let lan = lan6("v6off", 3).build();
    let mut args = TIMERS.to_vec();
    args.push("--no-ipv6");
    let daemon = start_snoopcast(&lan, &args);
    let mut h1 = lan.start_agent(1, &[G4, G6]);
    let mut h2 = lan.start_agent(2, &[G6]);
    let h3 = lan.start_agent(3, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G4", |s| is_member(s, G4, &a));
    // The MLD reports went out with the joins (the agents saw them leave eth0); the
    // robustness repeat follows within a second.
    sleep(Duration::from_millis(1500));
    for agent in [&mut h1, &mut h2] {
        let r = agent.report();
        assert!(
            r.mld_out_type(MLD_V2_REPORT) >= 1,
            "{}: its kernel sent no MLDv2 report: {}",
            r.host.name,
            r.json["mld_out_types"]
        );
    }
    let status = lan.status_json();
    let dump = format!("{status:#}");
    let v6_groups: Vec<String> = status_groups(&status)
        .into_iter()
        .filter(|g| g.contains(':'))
        .collect();
    assert!(
        v6_groups.is_empty(),
        "--no-ipv6 but IPv6 groups listed: {v6_groups:?}\n{dump}"
    );
    assert!(
        !upstream_joined(&status).iter().any(|g| g.contains(':')),
        "--no-ipv6 but IPv6 joined upstream\n{dump}"
    );
    for c in ["mld_reports_v1", "mld_reports_v2", "mld_queries_sent"] {
        assert_eq!(counter(&status, c), 0, "{c} with --no-ipv6\n{dump}");
    }
    assert_eq!(
        iface_status(&status, "dn0")["mld_querier"],
        "off (--no-ipv6)",
        "dn0's MLD querier\n{dump}"
    );
    let kernel = lan.kernel_groups6("up0");
    assert!(
        !kernel_has(&kernel, G6),
        "--no-ipv6 but the box kernel joined {G6} on up0: {kernel:?}"
    );

    let v4 = lan.spawn_sender(&["--group", G4, "--count", "400", "--rate", "400"]);
    let v6 = lan.spawn_sender(&["--group", G6, "--count", "400", "--rate", "400"]);
    let (v4, v6) = (
        v4.wait(Duration::from_secs(30)),
        v6.wait(Duration::from_secs(30)),
    );
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_eq!(v6.sent(G6), 400, "the source did send {G6}");
    assert_unicast_member(&r1, G4, v4.sent(G4));
    for r in [&r1, &r2, &r3] {
        assert_nothing(r, G6);
    }
    assert_nothing(&r3, G4);
    daemon.stop_ok();
}

/// Extension headers in the data (README, Forwarding: "extension headers and fragments
/// included"): 3000-byte datagrams to G6 leave the source as three IPv6 fragments each (a
/// Fragment header before UDP, RFC 8200 4.5), datagrams to G6B carry an 8-byte hop-by-hop
/// options header (PadN), which MLD has too. Every fragment reaches the member as a
/// unicast copy and its kernel reassembles intact datagrams; the hop-by-hop data is
/// forwarded like any other. The non-member gets nothing.
#[test]
fn fragments_and_hop_by_hop_data_are_forwarded() {
    require_root!();
    twins::fragments_and_extension_headers_are_forwarded(&V6);
}

/// A local IPv6 source: the sender runs in the box and its datagrams leave through a
/// dummy up0 with the UDP checksum left to the device (CHECKSUM_PARTIAL). snoopcast must
/// complete it (over the IPv6 pseudo-header, RFC 8200 8.1) before sending copies, or the
/// members' kernels drop every datagram silently: the frames arrive, the socket stays empty.
#[test]
fn local_ipv6_source_gets_its_checksum_completed() {
    require_root!();
    twins::local_source_gets_its_checksum_completed(&V6);
}

/// Sixty IPv6 groups, more than one join socket holds (snoopcast puts optmem_max / 2 / 80
/// groups on one: 54 at 128 KiB, fewer below): all are joined on up0 (the box kernel's
/// /proc/net/igmp6 lists each) and all arrive at the member.
#[test]
fn sixty_ipv6_groups_all_joined_and_delivered() {
    require_root!();
    twins::many_groups_all_joined_and_delivered(&V6);
}

/// A downstream whose link-local address appears only after snoopcast opened it (IPv6
/// enabled on it later; a tap whose carrier comes later) must get MLD queries from then on;
/// otherwise every IPv6 member there expires after MALI although its host still listens.
/// (With "IPv6 daemon", 1dd9d9e, the address was read once at open and dn0 stayed without
/// MLD queries for good; fixed in 70fff91.)
#[test]
fn link_local_added_after_start_gets_mld_queries() {
    require_root!();
    let lan = lan6("v6late", 1).build();
    let bx = lan.box_ns();
    ns_sysctl(&bx, "net.ipv6.conf.dn0.disable_ipv6", "1");
    // MALI = 2 * 1 s + 0.5 s = 2.5 s.
    let daemon = start_snoopcast(
        &lan,
        &[
            "--query-interval",
            "1s",
            "--query-response-interval",
            "500ms",
            "--robustness",
            "2",
        ],
    );
    assert!(iface_status(&lan.status_json(), "dn0")["query_source6"].is_null());
    ns_sysctl(&bx, "net.ipv6.conf.dn0.disable_ipv6", "0");
    wait_for_status(
        &lan,
        Duration::from_secs(5),
        "dn0 queries from its new link-local address",
        |s| {
            let dn0 = iface_status(s, "dn0");
            let ll = Lan::ipv6_addrs(&bx, "dn0", "link");
            dn0["query_source6"]
                .as_str()
                .is_some_and(|q| ll.iter().any(|a| a == q))
                && dn0["mld_querier"] == "querier"
                && counter(s, "mld_queries_sent") >= 1
        },
    );
    let h1 = lan.start_agent(1, &[G6]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G6", |s| is_member(s, G6, &a));
    sleep(Duration::from_millis(3500));
    let status = lan.status_json();
    assert!(
        is_member(&status, G6, &a),
        "h1 answers queries and must still be a member after MALI\n{status:#}"
    );
    drop(h1.finish());
    daemon.stop_ok();
}
