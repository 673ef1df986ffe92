//! The bodies of the IPv4/IPv6 twin tests: one body a behaviour, run for one address family
//! (`Fam`, tests/common/family.rs) by a thin `#[test]` in e2e_ipv4.rs or e2e_topologies.rs
//! (`V4`) and in e2e_ipv6.rs (`V6`), so each family passes or fails on its own under the
//! test name it always had. Each body asserts, for both families, what either twin asserted
//! before they were merged. Every body starts the daemon first, then the host agents, and
//! waits until `status --json` lists the members before it sends.
#![allow(dead_code)]

use crate::common::*;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Short timers: GMI = 2 * 5 s + 2 * 1 s = 12 s.
pub const TIMERS: [&str; 6] = [
    "--query-interval",
    "5s",
    "--query-response-interval",
    "1s",
    "--robustness",
    "2",
];

pub const JOIN_WAIT: Duration = Duration::from_secs(10);

fn with_timers(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = TIMERS.to_vec();
    v.extend_from_slice(extra);
    v
}

/// The LAN of the members tests, tagged `what`: snoopcast with `TIMERS`, h1 in G1, h2 in G1
/// and G2, h3 in nothing; returns once status lists the members. Drop order: the agents,
/// the daemon, then the LAN.
pub fn members_lan(f: &Fam, what: &str) -> (Lan, Snoopcast, [Agent; 3], [Host; 3]) {
    let (g1, g2) = (f.g1, f.g2);
    let lan = f.lan(what, 3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let agents = [
        lan.start_agent(1, &[g1]),
        lan.start_agent(2, &[g1, g2]),
        lan.start_agent(3, &[]),
    ];
    let hosts = [1, 2, 3].map(|i| lan.host(i).clone());
    let [a, b, _] = &hosts;
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1, h2 in G1 and G2", |s| {
        is_member(s, g1, a) && is_member(s, g1, b) && is_member(s, g2, b)
    });
    (lan, daemon, agents, hosts)
}

/// Members get unicast copies to their own MAC and nothing as L2 multicast, the non-member
/// nothing. Status lists them on dn0 with their address (IPv6: link-local), the current
/// version and mode EXCLUDE, counts their reports, and dn0's querier queries from its
/// address; the groups are joined upstream and in the box kernel on up0.
pub fn members_get_unicast_copies_only(f: &Fam) {
    let (g1, g2) = (f.g1, f.g2);
    let (lan, daemon, [h1, h2, h3], [a, b, c]) = members_lan(f, "ucast");
    let status = lan.status_json();
    let dump = format!("{status:#}");
    for (i, host) in [(1, &a), (2, &b)] {
        let m = member(&status, g1, host).unwrap();
        let field = f.version_field;
        assert_eq!(m[field], f.version, "{}: {field}\n{dump}", host.name);
        assert_eq!(
            m["ip"],
            f.member_ip(&lan, i).as_str(),
            "{}: ip (IPv6: the host's link-local address)\n{dump}",
            host.name
        );
        assert_eq!(m["interface"], "dn0", "{}: interface\n{dump}", host.name);
        assert_eq!(m["mode"], "exclude", "{}: ASM join\n{dump}", host.name);
    }
    assert_eq!(members(&status, g1).len(), 2, "exactly h1 and h2\n{dump}");
    assert!(
        groups_of(&status, &c).is_empty(),
        "h3 joined nothing\n{dump}"
    );
    for g in [g1, g2] {
        assert!(
            upstream_joined(&status).iter().any(|j| j == g),
            "{g} not in upstream.joined\n{dump}"
        );
        // snoopcast reports upstream itself (issue 16): the box kernel joins nothing.
        assert!(
            !f.kernel_has(&lan, "up0", g),
            "the box kernel holds {g} on up0, it must not: {:?}",
            f.kernel_groups(&lan, "up0")
        );
    }
    assert!(
        counter(&status, f.reports_counter) >= 2,
        "{} counts h1's and h2's reports\n{dump}",
        f.reports_counter
    );
    let dn0 = iface_status(&status, "dn0");
    assert_eq!(dn0[f.querier_field], "querier", "dn0 querier\n{dump}");
    if let Err(e) = f.query_source_ok(&lan, "dn0", &dn0) {
        panic!("{e}\n{dump}");
    }
    assert!(
        counter(&status, f.queries_sent_counter) >= 1,
        "startup {} queries\n{dump}",
        f.proto
    );

    let sent = lan.send(&[
        "--group", g1, "--group", g2, "--count", "800", "--rate", "400",
    ]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_unicast_member(&r1, g1, sent.sent(g1));
    assert_nothing(&r1, g2);
    assert_unicast_member(&r2, g1, sent.sent(g1));
    assert_unicast_member(&r2, g2, sent.sent(g2));
    assert_nothing(&r3, g1);
    assert_nothing(&r3, g2);
    daemon.stop_ok();
}

/// A leave (IGMPv3/MLDv2 TO_IN{}) stops delivery to that host at once: snoopcast drops it
/// within 1 s, and nothing reaches it 0.3 s after its leave (and 0.1 s after snoopcast
/// processed it, for copies already queued); the other member keeps the stream. When the
/// last member leaves, the upstream join goes too (status and the box kernel).
pub fn leave_stops_delivery_at_once(f: &Fam) {
    let g = f.g1;
    let lan = f.lan("leave", 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[g]);
    let mut h2 = lan.start_agent(2, &[g]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, g, &a) && is_member(s, g, &b)
    });

    // 4 s of stream; h1 leaves after 1.5 s.
    let sender = lan.spawn_sender(&["--group", g, "--count", "1600", "--rate", "400"]);
    sleep(Duration::from_millis(1500));
    h1.leave(g);
    let left = Instant::now();
    wait_for_status(
        &lan,
        Duration::from_secs(1),
        "h1 gone from G1 after its leave",
        |s| !is_member(s, g, &a) && is_member(s, g, &b),
    );
    let gone = left.elapsed();
    eprintln!("h1 gone from status {gone:?} after its {} leave", f.proto);
    sleep((gone + Duration::from_millis(100)).max(Duration::from_millis(300)) - gone);
    h1.mark();
    h2.mark();
    let sent = sender.wait(Duration::from_secs(30));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    assert!(
        r1.frames(g, UNICAST) >= 400,
        "h1 got the stream before its leave: {}",
        r1.frames(g, UNICAST)
    );
    assert_eq!(
        r1.since_mark(g),
        0,
        "h1 still got frames of {g} more than 0.3 s after its leave (and 0.1 s after \
         snoopcast processed it)"
    );
    assert_unicast_member(&r2, g, sent.sent(g));
    assert!(
        r2.since_mark_class(g, UNICAST) >= 500,
        "h2 kept the stream after h1 left: {}",
        r2.since_mark_class(g, UNICAST)
    );

    // The last member leaves: the upstream membership goes too.
    let mut h2 = lan.start_agent(2, &[]);
    h2.join(g);
    wait_for_status(&lan, JOIN_WAIT, "h2 in G1 again", |s| is_member(s, g, &b));
    h2.leave(g);
    wait_for_status(&lan, Duration::from_secs(2), "G1 left upstream", |s| {
        members(s, g).is_empty() && !upstream_joined(s).iter().any(|j| j == g)
    });
    drop(h2.finish());
    daemon.stop_ok();
}

/// By default (`--compat-fallback multicast`) a group with an old-version host (IGMPv2,
/// MLDv1) is in compatibility mode (RFC 3376 7.3.2, RFC 3810 8.3.2) and goes out as L2
/// multicast; a group of current-version hosts only stays unicast (compatibility is per
/// group). Status shows which.
pub fn old_host_gets_multicast_in_compat_mode(f: &Fam) {
    let (g1, g2, old) = (f.g1, f.g2, f.old_name);
    let lan = f.old_host(f.lan("compat", 3), 1).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[g1]);
    let h2 = lan.start_agent(2, &[g2]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 (old version) in G1, h2 in G2", |s| {
        is_member(s, g1, &a) && is_member(s, g2, &b)
    });
    let status = lan.status_json();
    assert!(
        compat_of(&status, g1)
            .iter()
            .any(|c| c["interface"] == "dn0" && c["delivery"] == "multicast"),
        "{g1} in {old} compatibility on dn0, delivered as multicast\n{status:#}"
    );
    assert!(
        compat_of(&status, g2).is_empty(),
        "{g2} has current-version hosts only\n{status:#}"
    );

    let sent = lan.send(&[
        "--group", g1, "--group", g2, "--count", "400", "--rate", "800",
    ]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_delivered(
        r1.frames(g1, MULTICAST),
        sent.sent(g1),
        &format!("h1 ({old}) {g1} multicast"),
    );
    assert_eq!(
        r1.frames(g1, UNICAST),
        0,
        "h1 ({old}): no unicast copies in compat mode"
    );
    assert_delivered(
        r1.sock_ok(g1),
        sent.sent(g1),
        &format!("h1 ({old}) {g1} socket"),
    );
    assert_eq!(r1.sock_bad_or_dup(), 0);
    assert_unicast_member(&r2, g2, sent.sent(g2));
    assert_nothing(&r3, g2);
    assert_eq!(r3.sock_ok(g1), 0, "h3 joined nothing");
    daemon.stop_ok();
}

/// An old-version host (IGMPv2, MLDv1) next to a current-version host in the same group.
/// With `--compat-fallback unicast` both get unicast copies; status shows both versions and
/// counts the old reports; the old host's leave (IGMPv2 Leave, MLDv1 Done: RFC 2236 3,
/// RFC 2710 4) removes it at once and the other host keeps the stream, still as unicast.
pub fn old_host_gets_unicast_and_leave_removes_it(f: &Fam) {
    let (g, old) = (f.g1, f.old_name);
    let lan = f.old_host(f.lan("compu", 3), 1).build();
    let daemon = start_snoopcast(&lan, &with_timers(&["--compat-fallback", "unicast"]));
    let mut h1 = lan.start_agent(1, &[g]);
    let mut h2 = lan.start_agent(2, &[g]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 (old version) and h2 in G1", |s| {
        is_member(s, g, &a) && is_member(s, g, &b)
    });
    let status = lan.status_json();
    let dump = format!("{status:#}");
    let field = f.version_field;
    assert_eq!(
        member(&status, g, &a).unwrap()[field],
        f.old_version,
        "h1 is forced to {old}\n{dump}"
    );
    assert_eq!(
        member(&status, g, &b).unwrap()[field],
        f.version,
        "h2 speaks the current version\n{dump}"
    );
    assert!(
        counter(&status, f.old_reports_counter) >= 1,
        "{}\n{dump}",
        f.old_reports_counter
    );

    let sent = lan.send(&["--group", g, "--count", "400", "--rate", "400"]);
    settle();
    let (r1, r2) = (h1.report(), h2.report());
    assert_unicast_member(&r1, g, sent.sent(g));
    assert_unicast_member(&r2, g, sent.sent(g));

    h1.leave(g);
    let left = Instant::now();
    wait_for_status(
        &lan,
        Duration::from_secs(2),
        "h1 gone from G1 after its old-version leave",
        |s| !is_member(s, g, &a) && is_member(s, g, &b),
    );
    eprintln!(
        "h1 gone from status {:?} after its {old} leave",
        left.elapsed()
    );
    sleep(Duration::from_millis(100));
    h1.mark();
    h2.mark();
    let after = lan.send(&["--group", g, "--count", "400", "--rate", "400"]);
    settle();
    let status = lan.status_json();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert!(
        f.spoke_old_version_and_left(&r1),
        "h1 spoke {old} (reports and a leave): {}",
        f.out_types(&r1)
    );
    assert!(
        counter(&status, f.leaves_counter) >= 1,
        "{} counts h1's leave\n{status:#}",
        f.leaves_counter
    );
    assert_eq!(r1.since_mark(g), 0, "h1 still got {g} after its leave");
    assert_delivered(
        r2.since_mark_class(g, UNICAST),
        after.sent(g),
        "h2 G1 unicast after h1 left",
    );
    assert_eq!(r2.since_mark_class(g, MULTICAST), 0);
    assert_nothing(&r3, g);
    daemon.stop_ok();
}

/// A host that stops answering queries (no leave) expires after the group membership
/// interval (GMI, MLD's MALI: robustness x QI + 2 x QRI), and delivery to it stops; the other
/// member, which answers snoopcast's queries, stays well past it. This is what proves the
/// querier: hosts only answer queries they accept, and h2 would expire too otherwise.
///
/// Method: a tc egress filter on h1's eth0 drops its outgoing IGMP or MLD
/// (`Lan::block_igmp_out`, `Lan::block_mld_out`). The host keeps its membership and the
/// kernel keeps answering queries, but nothing reaches the wire: exactly a host that
/// vanished without a leave. The agent counts outgoing messages after tc, so the test
/// checks the silence held.
pub fn silent_host_expires(f: &Fam) {
    let (g, gmi_name) = (f.g1, f.gmi_name);
    let lan = f.lan("expire", 2).build();
    // GMI = 2 * 1.5 s + 2 * 0.5 s = 4 s (RFC 9776 8.4).
    let gmi = Duration::from_millis(4000);
    let daemon = start_snoopcast(
        &lan,
        &[
            "--query-interval",
            "1500ms",
            "--query-response-interval",
            "500ms",
            "--robustness",
            "2",
        ],
    );
    let mut h1 = lan.start_agent(1, &[g]);
    let mut h2 = lan.start_agent(2, &[g]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, g, &a) && is_member(s, g, &b)
    });

    // 8 s of stream: h1 goes silent after 1 s and must be gone within GMI (+ 2 s slack).
    let sender = lan.spawn_sender(&["--group", g, "--count", "2400", "--rate", "300"]);
    sleep(Duration::from_secs(1));
    f.block_out(&lan, 1);
    let silenced = Instant::now();
    h1.mark();
    h2.mark();
    wait_for_status(
        &lan,
        gmi + Duration::from_secs(2),
        "silent h1 expired",
        |s| !is_member(s, g, &a),
    );
    eprintln!(
        "h1 expired {:?} after it went silent ({gmi_name} {gmi:?})",
        silenced.elapsed()
    );
    let r1_silent = h1.report();
    assert!(
        is_member(&lan.status_json(), g, &b),
        "h2 answers queries and must stay a member"
    );
    sleep(Duration::from_millis(300));
    h1.mark();
    // h2's stream over 1.5 s after h1 expired (h2 keeps its mark: its answers count).
    let r2_from = h2.report().since_mark_class(g, UNICAST);
    sleep(Duration::from_millis(1500));
    let (r1_mid, r2_mid) = (h1.report(), h2.report());
    // h2 must outlive several query rounds, well past its own GMI.
    let outlive = gmi + Duration::from_secs(2);
    if let Some(left) = outlive.checked_sub(silenced.elapsed()) {
        sleep(left);
    }
    let status = lan.status_json();
    assert!(
        is_member(&status, g, &b),
        "h2 answers queries and must stay a member {:?} after the start of the \
         silence\n{status:#}",
        silenced.elapsed()
    );
    assert!(
        counter(&status, f.queries_sent_counter) >= 3,
        "general queries every 1.5 s\n{status:#}"
    );
    let sent = sender.wait(Duration::from_secs(30));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    assert_eq!(
        f.out_since_mark(&r1_silent),
        0,
        "h1 was not silent: the tc filter failed"
    );
    assert_eq!(
        f.out_since_mark(&r1),
        0,
        "h1 was not silent after it expired: the tc filter failed"
    );
    assert!(
        f.heard(&r1_silent) >= 1,
        "h1 heard {} (queries, h2's reports) while silent",
        f.proto
    );
    assert!(
        f.out_since_mark(&r2) >= 2,
        "h2 answered the queries: {} {} messages",
        f.out_since_mark(&r2),
        f.proto
    );
    assert!(
        r1.frames(g, UNICAST) > 0,
        "h1 got the stream before it went silent"
    );
    assert_eq!(r1_mid.since_mark(g), 0, "h1 still gets G1 after it expired");
    assert_eq!(r1.since_mark(g), 0, "h1 still gets G1 after it expired");
    let r2_window = r2_mid.since_mark_class(g, UNICAST) - r2_from;
    assert!(
        r2_window >= 300,
        "h2 kept the stream: {r2_window} frames in 1.5 s"
    );
    assert_unicast_member(&r2, g, sent.sent(g));
    daemon.stop_ok();
}

/// Source-specific joins (INCLUDE {S}, RFC 3376 4.2.12, RFC 3810 5.2.12): each host gets
/// only the source it asked for, from two sources sending to the same SSM group. An
/// any-source join (EXCLUDE {}) of the SSM group makes no member (RFC 4604 3, RFC 4607 1).
pub fn source_specific_join_gets_only_that_source(f: &Fam) {
    let (ssm, s1, s2) = (f.ssm, f.s1, f.s2);
    let lan = f.lan("ssm", 3).src_addr(f.s2_cidr).build();
    let version = f.version.to_string();
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&[f.version_opt, &version]);
    let daemon = start_snoopcast(&lan, &args);
    let h1 = lan.start_agent(1, &[&format!("{ssm}@{s1}")]);
    let h2 = lan.start_agent(2, &[&format!("{ssm}@{s2}")]);
    let h3 = lan.start_agent(3, &[ssm]);
    let (a, b, c) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, JOIN_WAIT, "h1 in (S1,SSM), h2 in (S2,SSM)", |s| {
        member(s, ssm, &a).is_some_and(|m| has_source(&m, s1) && m["mode"] == "include")
            && member(s, ssm, &b).is_some_and(|m| has_source(&m, s2) && m["mode"] == "include")
    });
    let status = lan.status_json();
    let m1 = member(&status, ssm, &a).unwrap();
    assert!(
        !has_source(&m1, s2),
        "h1 asked for {s1} only: {m1}\n{status:#}"
    );
    assert!(
        upstream_joined(&status).iter().any(|j| j == ssm) && !f.kernel_has(&lan, "up0", ssm),
        "{ssm} must be reported upstream by snoopcast, not joined by the box kernel: {:?}",
        f.kernel_groups(&lan, "up0")
    );

    let common = ["--group", ssm, "--count", "400", "--rate", "400"];
    let t1 = lan.spawn_sender(&[&["--source", s1][..], &common].concat());
    let t2 = lan.spawn_sender(&[&["--source", s2][..], &common].concat());
    let (t1, t2) = (
        t1.wait(Duration::from_secs(30)),
        t2.wait(Duration::from_secs(30)),
    );
    settle();
    let status_end = lan.status_json();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    for (r, want, want_sent, other) in [(&r1, s1, &t1, s2), (&r2, s2, &t2, s1)] {
        let who = &r.host.name;
        assert_delivered(
            r.frames_from(ssm, want, UNICAST),
            want_sent.sent(ssm),
            &format!("{who} ({want},G) unicast frames"),
        );
        assert_delivered(
            r.sock_ok_from(ssm, want),
            want_sent.sent(ssm),
            &format!("{who} ({want},G) socket"),
        );
        assert_eq!(
            r.frames_any_from(ssm, other),
            0,
            "{who}: got frames from {other}, which it did not ask for"
        );
        assert_no_multicast(r, ssm);
        assert_eq!(r.sock_bad_or_dup(), 0);
    }
    assert!(
        f.sent_reports(&r3) && !is_member(&status_end, ssm, &c),
        "h3 reported an any-source join of an SSM group, which must be ignored: {}\n\
         {status_end:#}",
        f.out_types(&r3)
    );
    assert_nothing(&r3, ssm);
    daemon.stop_ok();
}

/// One host in many groups (IPv4 40; IPv6 60, more than one join socket holds: snoopcast
/// puts optmem_max / 2 / 80 IPv6 groups on one, 54 at 128 KiB, fewer below): all are
/// joined upstream (status and the box kernel) and all arrive at the member.
pub fn many_groups_all_joined_and_delivered(f: &Fam) {
    let n = f.many;
    let lan = f.lan("many", 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let groups: Vec<String> = (1..=n).map(|i| f.many_group(i)).collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let h1 = lan.start_agent(1, &refs);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(
        &lan,
        Duration::from_secs(15),
        &format!("h1 in all {n} groups"),
        |s| groups_of(s, &a).len() >= n && refs.iter().all(|g| is_member(s, g, &a)),
    );
    let status = lan.status_json();
    let joined = upstream_joined(&status);
    let kernel = f.kernel_groups(&lan, "up0");
    let missing: Vec<&&str> = refs
        .iter()
        .filter(|g| !joined.iter().any(|j| j == *g))
        .collect();
    assert!(missing.is_empty(), "not reported upstream: {missing:?}");
    let in_kernel: Vec<&&str> = refs
        .iter()
        .filter(|g| kernel.iter().any(|(k, _)| k == **g))
        .collect();
    assert!(
        in_kernel.is_empty(),
        "the box kernel holds forwarded groups on up0: {in_kernel:?}"
    );

    let mut args = vec!["--count", "30", "--rate", "600"];
    for g in &refs {
        args.extend_from_slice(&["--group", g]);
    }
    let sent = lan.send(&args);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    let short: Vec<String> = refs
        .iter()
        .filter(|g| {
            let need = (sent.sent(g) as f64 * DELIVERY).ceil() as u64;
            r1.frames(g, UNICAST) < need || r1.sock_ok(g) < need
        })
        .map(|g| {
            format!(
                "{g}: {} frames, {} on socket",
                r1.frames(g, UNICAST),
                r1.sock_ok(g)
            )
        })
        .collect();
    assert!(short.is_empty(), "groups short of {DELIVERY}: {short:?}");
    for g in &refs {
        assert_no_multicast(&r1, g);
        assert_nothing(&r2, g);
    }
    assert_eq!(r1.sock_bad_or_dup(), 0);
    daemon.stop_ok();
}

/// Fragments are forwarded as they come (README, Forwarding: "extension headers and
/// fragments included"): 3000-byte datagrams to G1 leave the source as three fragments
/// each (IPv6: behind a Fragment header, RFC 8200 4.5); every fragment reaches the member
/// as a unicast copy and its kernel reassembles intact datagrams. Where the family has an
/// extension header to put before UDP (IPv6: an 8-byte hop-by-hop options header, PadN,
/// which MLD has too), datagrams to G2 carry it and are forwarded like any other. The
/// non-member gets nothing.
pub fn fragments_and_extension_headers_are_forwarded(f: &Fam) {
    let (g1, g2) = (f.g1, f.g2);
    let lan = f.lan("frag", 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let joins: Vec<&str> = match f.ext_header_opt {
        Some(_) => vec![g1, g2],
        None => vec![g1],
    };
    let h1 = lan.start_agent(1, &joins);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in its groups", |s| {
        joins.iter().all(|g| is_member(s, g, &a))
    });
    let frag = lan.spawn_sender(&[
        "--group", g1, "--count", "300", "--rate", "200", "--size", "3000",
    ]);
    let ext = f
        .ext_header_opt
        .map(|opt| lan.spawn_sender(&["--group", g2, "--count", "300", "--rate", "200", opt]));
    let frag = frag.wait(Duration::from_secs(30));
    let ext = ext.map(|s| s.wait(Duration::from_secs(30)));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_delivered(r1.sock_ok(g1), frag.sent(g1), "h1 G1 reassembled datagrams");
    assert_eq!(r1.sock_bad_or_dup(), 0);
    let frames = r1.frames(g1, UNICAST);
    assert!(
        frames >= 3 * r1.sock_ok(g1),
        "each datagram is 3 fragments: {frames} unicast frames for {} datagrams",
        r1.sock_ok(g1)
    );
    assert_no_multicast(&r1, g1);
    assert_nothing(&r2, g1);
    if let Some(ext) = ext {
        assert_unicast_member(&r1, g2, ext.sent(g2));
        assert_nothing(&r2, g2);
    }
    daemon.stop_ok();
}

/// A local source: the sender runs in the box and its datagrams leave through a dummy up0
/// with the UDP checksum left to the device (CHECKSUM_PARTIAL: the captured frames carry
/// only the pseudo-header sum). snoopcast must complete it (IPv6: over the IPv6
/// pseudo-header, RFC 8200 8.1) before sending copies, or the members' kernels drop every
/// datagram silently: the frames arrive, the socket stays empty.
pub fn local_source_gets_its_checksum_completed(f: &Fam) {
    let g = f.g1;
    let lan = f.lan("local", 3).dummy_upstream().build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[g]);
    let h2 = lan.start_agent(2, &[g]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, g, &a) && is_member(s, g, &b)
    });
    let sent = lan.send(&["--group", g, "--count", "400", "--rate", "400"]);
    assert_eq!(
        sent.json["source"], f.up0_addr,
        "the box itself is the source (up0's address)"
    );
    settle();
    let status = lan.status_json();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());
    assert_unicast_member(&r1, g, sent.sent(g));
    assert_unicast_member(&r2, g, sent.sent(g));
    assert_nothing(&r3, g);
    assert!(
        counter(&status, "checksums_completed") >= sent.sent(g),
        "checksums_completed counts the local datagrams\n{status:#}"
    );
    daemon.stop_ok();
}
