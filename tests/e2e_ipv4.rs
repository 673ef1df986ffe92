//! snoopcast end to end over IPv4, against the command-line and status contract.
//!
//! ```text
//!  [src] s0 10.1.0.1 --veth-- up0 10.1.0.2 [box: snoopcast] dn0 --veth-- p0 [sw: br0, dumb]
//!                                                      p1..pN --veth-- eth0 10.2.0.1N [h1..hN]
//! ```
//!
//! Every test starts the daemon first, then the host agents: a join makes the kernel send
//! unsolicited reports at once, and each test waits until `status --json` lists the members
//! before it sends, so no test depends on when the daemon's queries go out.

mod common;

use common::*;
use serde_json::Value;
use std::thread::sleep;
use std::time::{Duration, Instant};

const G1: &str = "239.1.1.1";
const G2: &str = "239.1.1.2";
const SSM: &str = "232.1.1.1";
const S1: &str = "10.1.0.1";
const S2: &str = "10.1.0.3";

/// Short timers: GMI = 2 * 5 s + 1 s = 11 s.
const TIMERS: [&str; 6] = [
    "--query-interval",
    "5s",
    "--query-response-interval",
    "1s",
    "--robustness",
    "2",
];

const JOIN_WAIT: Duration = Duration::from_secs(10);

/// (a) Members get unicast copies, nobody gets L2 multicast, the non-member gets nothing.
#[test]
fn members_get_unicast_copies_only() {
    require_root!();
    let lan = Lan::builder("v4ucast").hosts(3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G1, G2]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1, h2 in G1 and G2", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b) && is_member(s, G2, &b)
    });

    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "800", "--rate", "400",
    ]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_unicast_member(&r1, G1, sent.sent(G1));
    assert_nothing(&r1, G2);
    assert_unicast_member(&r2, G1, sent.sent(G1));
    assert_unicast_member(&r2, G2, sent.sent(G2));
    assert_nothing(&r3, G1);
    assert_nothing(&r3, G2);
    daemon.stop_ok();
}

/// (b) A leave stops delivery to that host at once; the other member keeps the stream.
#[test]
fn leave_stops_delivery_at_once() {
    require_root!();
    let lan = Lan::builder("v4leave").hosts(2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1]);
    let mut h2 = lan.start_agent(2, &[G1]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b)
    });

    // 4 s of stream; h1 leaves after 1.5 s.
    let sender = lan.spawn_sender(&["--group", G1, "--count", "1600", "--rate", "400"]);
    sleep(Duration::from_millis(1500));
    h1.leave(G1);
    sleep(Duration::from_millis(300));
    h1.mark();
    h2.mark();
    wait_for_status(
        &lan,
        Duration::from_secs(1),
        "h1 gone from G1 after its leave",
        |s| !is_member(s, G1, &a) && is_member(s, G1, &b),
    );
    let sent = sender.wait(Duration::from_secs(30));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    assert!(
        r1.frames(G1, UNICAST) >= 400,
        "h1 got the stream before its leave: {}",
        r1.frames(G1, UNICAST)
    );
    assert_eq!(
        r1.since_mark(G1),
        0,
        "h1 still got frames of G1 more than 0.3 s after its leave"
    );
    assert_unicast_member(&r2, G1, sent.sent(G1));
    assert!(
        r2.since_mark_class(G1, UNICAST) >= 500,
        "h2 kept the stream after h1 left"
    );
    daemon.stop_ok();
}

/// (c) An IGMPv2 host's group goes out as L2 multicast in compatibility mode (the default);
/// a group of IGMPv3 hosts only stays unicast (compatibility is per group, RFC 3376 7.3.2).
#[test]
fn igmpv2_host_gets_multicast_in_compat_mode() {
    require_root!();
    let lan = Lan::builder("v4compat").hosts(3).igmp_version(1, 2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G2]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 (v2) in G1, h2 in G2", |s| {
        is_member(s, G1, &a) && is_member(s, G2, &b)
    });

    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "800", "--rate", "400",
    ]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_delivered(
        r1.frames(G1, MULTICAST),
        sent.sent(G1),
        "h1 (v2) G1 multicast",
    );
    assert_eq!(
        r1.frames(G1, UNICAST),
        0,
        "h1 (v2): no unicast copies in compat mode"
    );
    assert_delivered(r1.sock_ok(G1), sent.sent(G1), "h1 (v2) G1 socket");
    assert_eq!(r1.sock_bad_or_dup(), 0);
    assert_unicast_member(&r2, G2, sent.sent(G2));
    assert_nothing(&r3, G2);
    assert_eq!(r3.sock_ok(G1), 0);
    daemon.stop_ok();
}

/// (c) With --compat-fallback unicast the IGMPv2 host gets unicast copies too.
#[test]
fn igmpv2_host_gets_unicast_with_compat_fallback_unicast() {
    require_root!();
    let lan = Lan::builder("v4compu").hosts(3).igmp_version(1, 2).build();
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&["--compat-fallback", "unicast"]);
    let daemon = start_snoopcast(&lan, &args);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G1]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 (v2) and h2 in G1", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b)
    });

    let sent = lan.send(&["--group", G1, "--count", "800", "--rate", "400"]);
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    assert_unicast_member(&r1, G1, sent.sent(G1));
    assert_unicast_member(&r2, G1, sent.sent(G1));
    assert_nothing(&r3, G1);
    daemon.stop_ok();
}

/// (d) A host that stops answering queries (no leave) expires after the group membership
/// interval, and delivery to it stops while the other member keeps the stream.
///
/// Method: a tc egress filter on h1's eth0 drops its outgoing IGMP (`Lan::block_igmp_out`).
/// The host keeps its membership and the kernel keeps answering queries, but nothing reaches
/// the wire: exactly a host that vanished without a leave. The agent confirms it, since it
/// counts outgoing IGMP after tc (`igmp_out_since_mark` must stay 0).
#[test]
fn silent_host_expires_after_gmi() {
    require_root!();
    let lan = Lan::builder("v4expire").hosts(2).build();
    // GMI = robustness * QI + QRI = 2 * 2 s + 1 s = 5 s.
    let gmi = Duration::from_secs(5);
    let daemon = start_snoopcast(
        &lan,
        &[
            "--query-interval",
            "2s",
            "--query-response-interval",
            "1s",
            "--robustness",
            "2",
        ],
    );
    let mut h1 = lan.start_agent(1, &[G1]);
    let mut h2 = lan.start_agent(2, &[G1]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 and h2 in G1", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b)
    });

    // 13 s of stream: h1 goes silent after 1 s and must be gone within GMI (+ 2 s slack).
    let sender = lan.spawn_sender(&["--group", G1, "--count", "3900", "--rate", "300"]);
    sleep(Duration::from_secs(1));
    lan.block_igmp_out(1);
    let silenced = Instant::now();
    h1.mark();
    wait_for_status(
        &lan,
        gmi + Duration::from_secs(2),
        "silent h1 expired",
        |s| !is_member(s, G1, &a),
    );
    let expired_after = silenced.elapsed();
    eprintln!("h1 expired {expired_after:?} after it went silent (GMI {gmi:?})");
    assert!(
        is_member(&lan.status_json(), G1, &b),
        "h2 answers queries and must stay a member"
    );
    sleep(Duration::from_millis(300));
    h1.mark();
    h2.mark();
    sleep(Duration::from_millis(1500));
    let (r1_mid, r2_mid) = (h1.report(), h2.report());
    let sent = sender.wait(Duration::from_secs(30));
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    assert_eq!(
        r1.igmp_out_since_mark(),
        0,
        "h1 was not silent: the tc filter failed"
    );
    assert!(
        r1.frames(G1, UNICAST) > 0,
        "h1 got the stream before it went silent"
    );
    assert_eq!(
        r1_mid.since_mark(G1),
        0,
        "h1 still gets G1 after it expired"
    );
    assert_eq!(r1.since_mark(G1), 0, "h1 still gets G1 after it expired");
    assert!(
        r2_mid.since_mark_class(G1, UNICAST) >= 300,
        "h2 kept the stream"
    );
    assert_unicast_member(&r2, G1, sent.sent(G1));
    daemon.stop_ok();
}

/// (e) Source-specific joins: each host gets only the source it asked for.
#[test]
fn source_specific_join_gets_only_that_source() {
    require_root!();
    let lan = Lan::builder("v4ssm")
        .hosts(3)
        .src_addr("10.1.0.3/24")
        .build();
    let mut args = TIMERS.to_vec();
    args.extend_from_slice(&["--igmp-version", "3"]);
    let daemon = start_snoopcast(&lan, &args);
    let h1 = lan.start_agent(1, &[&format!("{SSM}@{S1}")]);
    let h2 = lan.start_agent(2, &[&format!("{SSM}@{S2}")]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    let has_source = |m: &Value, src: &str| {
        m["sources"]
            .as_array()
            .map(|v| v.iter().any(|s| s == src))
            .unwrap_or(false)
    };
    wait_for_status(&lan, JOIN_WAIT, "h1 in (S1,G), h2 in (S2,G)", |s| {
        member(s, SSM, &a).is_some_and(|m| has_source(&m, S1) && m["mode"] == "include")
            && member(s, SSM, &b).is_some_and(|m| has_source(&m, S2) && m["mode"] == "include")
    });

    let common = ["--group", SSM, "--count", "600", "--rate", "200"];
    let s1 = lan.spawn_sender(&[&["--source", S1][..], &common].concat());
    let s2 = lan.spawn_sender(&[&["--source", S2][..], &common].concat());
    let (s1, s2) = (
        s1.wait(Duration::from_secs(30)),
        s2.wait(Duration::from_secs(30)),
    );
    settle();
    let (r1, r2, r3) = (h1.finish(), h2.finish(), h3.finish());

    for (r, want, want_sent, other) in [(&r1, S1, &s1, S2), (&r2, S2, &s2, S1)] {
        let who = &r.host.name;
        assert_delivered(
            r.frames_from(SSM, want, UNICAST),
            want_sent.sent(SSM),
            &format!("{who} ({want},G) unicast frames"),
        );
        assert_delivered(
            r.sock_ok_from(SSM, want),
            want_sent.sent(SSM),
            &format!("{who} ({want},G) socket"),
        );
        assert_eq!(
            r.frames_any_from(SSM, other),
            0,
            "{who}: got frames from {other}, which it did not ask for"
        );
        assert_no_multicast(r, SSM);
        assert_eq!(r.sock_bad_or_dup(), 0);
    }
    assert_nothing(&r3, SSM);
    daemon.stop_ok();
}

/// (f) One host in 40 groups gets all of them.
#[test]
fn forty_groups_all_arrive() {
    require_root!();
    let lan = Lan::builder("v4many").hosts(2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let groups: Vec<String> = (1..=40).map(|i| format!("239.2.0.{i}")).collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let h1 = lan.start_agent(1, &refs);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, Duration::from_secs(15), "h1 in all 40 groups", |s| {
        groups_of(s, &a).len() >= 40 && refs.iter().all(|g| is_member(s, g, &a))
    });

    let mut args = vec!["--count", "60", "--rate", "480"];
    for g in &refs {
        args.extend_from_slice(&["--group", g]);
    }
    let sent = lan.send(&args);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    let missing: Vec<String> = refs
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
    assert!(
        missing.is_empty(),
        "groups short of {DELIVERY}: {missing:?}"
    );
    for g in &refs {
        assert_no_multicast(&r1, g);
        assert_nothing(&r2, g);
    }
    assert_eq!(r1.sock_bad_or_dup(), 0);
    daemon.stop_ok();
}

/// (g) `status --json` describes each member: interface, MAC, IP, mode, timers, counters;
/// and the upstream joins.
#[test]
fn status_json_lists_members() {
    require_root!();
    let lan = Lan::builder("v4status").hosts(3).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G1, G2]);
    let h3 = lan.start_agent(3, &[]);
    let (a, b, c) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1, h2 in G1 and G2", |s| {
        is_member(s, G1, &a) && is_member(s, G1, &b) && is_member(s, G2, &b)
    });

    let sent = lan.send(&["--group", G1, "--count", "200", "--rate", "400"]);
    settle();
    let status = lan.status_json();
    let dump = format!("{status:#}");

    // GMI = 2 * 5 s + 1 s with TIMERS.
    let gmi_ms = 11_000;
    for (host, group) in [(&a, G1), (&b, G1), (&b, G2)] {
        let m = member(&status, group, host)
            .unwrap_or_else(|| panic!("{} not listed in {group}:\n{dump}", host.name));
        assert_eq!(m["interface"], "dn0", "{}: interface\n{dump}", host.name);
        assert_eq!(
            m["mac"].as_str().map(str::to_ascii_lowercase).as_deref(),
            Some(host.mac.as_str()),
            "{}: mac\n{dump}",
            host.name
        );
        assert_eq!(m["ip"], host.ip.as_str(), "{}: ip\n{dump}", host.name);
        assert_eq!(
            m["mode"], "exclude",
            "{}: an ASM join is EXCLUDE {{}}\n{dump}",
            host.name
        );
        assert_eq!(
            m["sources"],
            Value::Array(vec![]),
            "{}: sources\n{dump}",
            host.name
        );
        let expires = m["expires_in_ms"].as_u64().unwrap_or(0);
        assert!(
            expires > 0 && expires <= gmi_ms,
            "{}: expires_in_ms {expires} not in 1..={gmi_ms}\n{dump}",
            host.name
        );
    }
    for host in [&a, &b] {
        let m = member(&status, G1, host).unwrap();
        let packets = m["packets"].as_u64().unwrap_or(0);
        assert_delivered(
            packets,
            sent.sent(G1),
            &format!("{} packets counter", host.name),
        );
        assert!(
            m["bytes"].as_u64().unwrap_or(0) > packets,
            "bytes counter\n{dump}"
        );
    }
    assert_eq!(
        members(&status, G1).len(),
        2,
        "G1 has exactly h1 and h2\n{dump}"
    );
    assert_eq!(members(&status, G2).len(), 1, "G2 has exactly h2\n{dump}");
    assert!(
        groups_of(&status, &c).is_empty(),
        "h3 joined nothing\n{dump}"
    );

    assert_eq!(status["upstream"]["interface"], "up0", "upstream\n{dump}");
    let joined: Vec<String> = status["upstream"]["joined"]
        .as_array()
        .unwrap_or_else(|| panic!("upstream.joined is not a list\n{dump}"))
        .iter()
        .filter_map(|j| {
            j.as_str()
                .or_else(|| j["group"].as_str())
                .map(str::to_string)
        })
        .collect();
    for g in [G1, G2] {
        assert!(
            joined.iter().any(|j| j == g),
            "{g} not joined upstream\n{dump}"
        );
    }
    assert!(status["counters"].is_object(), "counters\n{dump}");

    // The plain form works as well.
    let ctl = lan.control_path();
    let plain = ns_exec(
        &lan.box_ns(),
        &[
            &snoopcast_bin(),
            "status",
            "--control",
            ctl.to_str().unwrap(),
        ],
        Duration::from_secs(5),
    );
    assert!(
        plain.ok() && !plain.stdout.trim().is_empty(),
        "status: {plain:?}"
    );

    drop((h1.finish(), h2.finish(), h3.finish()));
    daemon.stop_ok();
}

/// Fragments are forwarded as they come: 3000-byte datagrams leave the source as three IP
/// fragments each; every fragment reaches the member as a unicast copy and its kernel
/// reassembles intact datagrams. The non-member gets nothing.
#[test]
fn fragmented_datagrams_arrive_intact() {
    require_root!();
    let lan = Lan::builder("v4frag").hosts(2).build();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[]);
    let a = lan.host(1).clone();
    wait_for_status(&lan, JOIN_WAIT, "h1 in G1", |s| is_member(s, G1, &a));
    let sent = lan.send(&[
        "--group", G1, "--count", "300", "--rate", "200", "--size", "3000",
    ]);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_delivered(r1.sock_ok(G1), sent.sent(G1), "h1 G1 reassembled datagrams");
    assert_eq!(r1.sock_bad_or_dup(), 0);
    let frames = r1.frames(G1, UNICAST);
    assert!(
        frames >= 3 * r1.sock_ok(G1),
        "each datagram is 3 fragments: {frames} unicast frames for {} datagrams",
        r1.sock_ok(G1)
    );
    assert_no_multicast(&r1, G1);
    assert_nothing(&r2, G1);
    daemon.stop_ok();
}
