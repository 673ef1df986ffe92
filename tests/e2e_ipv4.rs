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
//!
//! Most tests have an IPv6 twin in e2e_ipv6.rs: they run one body of tests/twins with
//! `V4` (tests/common/family.rs); the doc of each behaviour is on its body there.

mod common;
mod twins;

use common::*;
use serde_json::Value;
use std::time::Duration;

const G1: &str = V4.g1;
const G2: &str = V4.g2;

/// (a) Members get unicast copies, nobody gets L2 multicast, the non-member gets nothing.
#[test]
fn members_get_unicast_copies_only() {
    require_root!();
    twins::members_get_unicast_copies_only(&V4);
}

/// (b) A leave stops delivery to that host at once; the other member keeps the stream.
#[test]
fn leave_stops_delivery_at_once() {
    require_root!();
    twins::leave_stops_delivery_at_once(&V4);
}

/// (c) An IGMPv2 host's group goes out as L2 multicast in compatibility mode (the default);
/// a group of IGMPv3 hosts only stays unicast (compatibility is per group, RFC 3376 7.3.2).
#[test]
fn igmpv2_host_gets_multicast_in_compat_mode() {
    require_root!();
    twins::old_host_gets_multicast_in_compat_mode(&V4);
}

/// (c) With --compat-fallback unicast the IGMPv2 host gets unicast copies too, and its
/// IGMPv2 Leave removes it at once.
#[test]
fn igmpv2_host_gets_unicast_with_compat_fallback_unicast() {
    require_root!();
    twins::old_host_gets_unicast_and_leave_removes_it(&V4);
}

/// (d) A host that stops answering queries (no leave) expires after the group membership
/// interval, and delivery to it stops while the other member keeps the stream.
#[test]
fn silent_host_expires_after_gmi() {
    require_root!();
    twins::silent_host_expires(&V4);
}

/// (e) Source-specific joins: each host gets only the source it asked for.
#[test]
fn source_specific_join_gets_only_that_source() {
    require_root!();
    twins::source_specific_join_gets_only_that_source(&V4);
}

/// (f) One host in 40 groups gets all of them.
#[test]
fn forty_groups_all_arrive() {
    require_root!();
    twins::many_groups_all_joined_and_delivered(&V4);
}
/// (g) `status --json` describes each member: interface, MAC, IP, mode, timers, counters;
/// and the upstream joins.
#[test]
fn status_json_lists_members() {
    require_root!();
    let (lan, daemon, [h1, h2, h3], [a, b, c]) = twins::members_lan(&V4, "status");

    let sent = lan.send(&["--group", G1, "--count", "200", "--rate", "400"]);
    settle();
    let status = lan.status_json();
    let dump = format!("{status:#}");

    // GMI = 2 * 5 s + 2 * 1 s with TIMERS.
    let gmi_ms = 12_000;
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
    twins::fragments_and_extension_headers_are_forwarded(&V4);
}
