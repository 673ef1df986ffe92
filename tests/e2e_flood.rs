//! The harness proves itself without snoopcast: a plain Linux bridge in the box floods every
//! multicast frame to every host, so every host sees every group as L2 multicast and the
//! members' sockets get every datagram intact. Also checks the two tools the snoopcast tests
//! lean on: source-specific joins in host_agent.py and the IGMP silencer.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: brx] dn0 --veth-- p0 [sw: br0] p1..p3 --veth-- eth0 [h1..h3]
//! ```

mod common;

use common::*;
use std::time::Duration;

const G1: &str = "239.1.1.1";
const G2: &str = "239.1.1.2";

#[test]
fn bridge_floods_every_group_to_every_host() {
    require_root!();
    let lan = Lan::builder("flood").hosts(3).bridge_box().build();
    let h1 = lan.start_agent(1, &[G1]);
    let h2 = lan.start_agent(2, &[G1, G2]);
    let h3 = lan.start_agent(3, &[]);

    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "600", "--rate", "400",
    ]);
    settle();
    let reports = [h1.finish(), h2.finish(), h3.finish()];

    for r in &reports {
        assert_eq!(r.mac(), r.host.mac, "agent reads eth0's MAC");
        for g in [G1, G2] {
            let what = format!("{} {g} multicast frames", r.host.name);
            assert_delivered(r.frames(g, MULTICAST), sent.sent(g), &what);
            assert_eq!(
                r.frames(g, UNICAST),
                0,
                "{}: no unicast copies on a bridge",
                r.host.name
            );
            assert_eq!(
                r.frames(g, OTHER),
                0,
                "{}: no frames for other MACs",
                r.host.name
            );
        }
        assert_eq!(
            r.sock_bad_or_dup(),
            0,
            "{}: corrupt or duplicate datagrams",
            r.host.name
        );
    }
    let [r1, r2, r3] = &reports;
    assert_delivered(r1.sock_ok(G1), sent.sent(G1), "h1 socket G1");
    assert_eq!(
        r1.sock_ok(G2),
        0,
        "h1 did not join G2: IP_MULTICAST_ALL=0 keeps it out"
    );
    assert_delivered(r2.sock_ok(G1), sent.sent(G1), "h2 socket G1");
    assert_delivered(r2.sock_ok(G2), sent.sent(G2), "h2 socket G2");
    assert_eq!(r3.sock_ok(G1) + r3.sock_ok(G2), 0, "h3 joined nothing");
}

#[test]
fn agent_source_specific_join_filters_sources() {
    require_root!();
    const G: &str = "232.1.1.1";
    let lan = Lan::builder("floodssm")
        .hosts(2)
        .bridge_box()
        .src_addr("10.1.0.3/24")
        .build();
    let h1 = lan.start_agent(1, &["232.1.1.1@10.1.0.1"]);
    let h2 = lan.start_agent(2, &["232.1.1.1@10.1.0.3"]);

    let args = ["--group", G, "--count", "400", "--rate", "200"];
    let s1 = lan.spawn_sender(&[&["--source", "10.1.0.1"], &args[..]].concat());
    let s2 = lan.spawn_sender(&[&["--source", "10.1.0.3"], &args[..]].concat());
    let (s1, s2) = (
        s1.wait(Duration::from_secs(60)),
        s2.wait(Duration::from_secs(60)),
    );
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());

    for r in [&r1, &r2] {
        assert_delivered(
            r.frames_from(G, "10.1.0.1", MULTICAST),
            s1.sent(G),
            "frames S1",
        );
        assert_delivered(
            r.frames_from(G, "10.1.0.3", MULTICAST),
            s2.sent(G),
            "frames S2",
        );
        assert_eq!(r.sock_bad_or_dup(), 0);
    }
    assert_delivered(
        r1.sock_ok_from(G, "10.1.0.1"),
        s1.sent(G),
        "h1 socket (S1,G)",
    );
    assert_eq!(
        r1.sock_any_from(G, "10.1.0.3"),
        0,
        "h1 socket must not get S2"
    );
    assert_delivered(
        r2.sock_ok_from(G, "10.1.0.3"),
        s2.sent(G),
        "h2 socket (S2,G)",
    );
    assert_eq!(
        r2.sock_any_from(G, "10.1.0.1"),
        0,
        "h2 socket must not get S1"
    );
}

#[test]
fn agent_leave_and_igmp_silencer_work() {
    require_root!();
    let lan = Lan::builder("floodsil").hosts(2).bridge_box().build();
    let mut h1 = lan.start_agent(1, &[]);
    let mut h2 = lan.start_agent(2, &[]);

    // A join makes the kernel send unsolicited reports at once; blocked on h1 only.
    lan.block_igmp_out(1);
    h1.join(G1);
    h2.join(G1);
    std::thread::sleep(Duration::from_millis(1500));
    let (r1, r2) = (h1.report(), h2.report());
    assert_eq!(
        r1.igmp_out(),
        0,
        "h1's IGMP must be dropped before the wire"
    );
    assert!(
        r2.igmp_out() > 0,
        "h2 (not blocked) sends unsolicited reports"
    );
    assert!(r1.igmp_in() > 0, "h2's reports reach h1 over the switch");
    assert_eq!(r2.igmp_in(), 0, "nothing of h1's reaches h2");

    // A leave closes the socket: datagrams after it are not counted, frames still are.
    h2.leave(G1);
    let sent = lan.send(&["--group", G1, "--count", "200", "--rate", "400"]);
    settle();
    let (r1, r2) = (h1.finish(), h2.finish());
    assert_delivered(
        r1.sock_ok(G1),
        sent.sent(G1),
        "h1 (silent, still joined) socket",
    );
    assert_eq!(r2.sock_ok(G1), 0, "h2 left before the stream");
    assert_delivered(
        r2.frames(G1, MULTICAST),
        sent.sent(G1),
        "h2 still sees flooded frames",
    );
}
