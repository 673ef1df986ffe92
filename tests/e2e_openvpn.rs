//! snoopcast on an OpenVPN server's tap0: the scenario it was made for. OpenVPN in TAP mode
//! floods every multicast frame to every client; with snoopcast on tap0 each client gets
//! only the groups it joined, as unicast frames to its own tap MAC (OpenVPN switches those
//! by the MAC it learned from the client).
//!
//! ```text
//!  10.1.0.1/24               10.1.0.2/24
//! +---[src]----+          +-----------[box]-------------+                  +---[c1]----------+
//! | s0         |--veth----| up0                         |                  | net0 192.0.2.11 |
//! | mcast_send |          |   snoopcast (phase 2, 3)    |     +-[inet]-+   | openvpn client  |
//! +------------+          |   or bridge brx: up0+tap0   |     |        |---| tap0 10.8.0.11  |
//!  224/4 dev s0           |      (phase 1, flooding)    |     |  br0   |   | host_agent      |
//!  tx csum off            | tap0 10.8.0.1/24            |     |        |   +-----------------+
//!                         | openvpn server (UDP 1194,   |     |        |--- [c2] .12 / 10.8.0.12
//!                         |   mode server, no           |     |        |
//!                         |   client-to-client)         |     |        |--- [c3] .13 / 10.8.0.13
//!                         | srv0 192.0.2.1/24           |-----| psrv   |
//!                         +-----------------------------+     +--------+
//! ```
//!
//! The network is the shared harness's OpenVPN LAN (`Lan::builder(tag).openvpn_tap(3)`,
//! tests/common/openvpn.rs): every client's tap0 has a fixed MAC (`lladdr`),
//! 02:5c:00:08:00:1N, and a fixed address pushed from client-config-dir. Client openvpn runs
//! with `persist-tun`, so its tap0, and with it the agent's sockets and capture, survive a
//! reconnect; the server runs without it, so restarting the server destroys and re-creates
//! tap0 under snoopcast's feet (phase 3).

mod common;

use common::*;
use serde_json::Value;
use std::thread::sleep;
use std::time::{Duration, Instant};

const G1: &str = "239.1.1.1";
const G2: &str = "239.1.1.2";
/// Every send has its own source address: the agents count per (group, source), and the
/// sequence numbers of a second send from the same source would count as duplicates.
const S1: &str = "10.1.0.1";
const S2: &str = "10.1.0.3";

/// Clients c1..c3: tap0 10.8.0.1N, MAC 02:5c:00:08:00:1N.
const CLIENTS: usize = 3;

/// Members listed after the agents joined (unsolicited reports).
const JOIN_WAIT: Duration = Duration::from_secs(10);
/// Delivery back after the OpenVPN server came back: it re-creates tap0, the clients
/// reconnect, snoopcast reopens tap0 and queries, the clients' kernels report.
const RESTART_WAIT: Duration = Duration::from_secs(40);

/// Short timers: startup queries 1.25 s apart, then one every 5 s.
const DAEMON_ARGS: [&str; 8] = [
    "--query-interval",
    "5s",
    "--query-response-interval",
    "1s",
    "--compat-fallback",
    "unicast",
    "--log-level",
    "debug",
];

/// The VPN LAN: src (s0 10.1.0.1 and .3), the box as OpenVPN server, clients c1..c3.
fn vpn(tag: &str) -> Lan {
    Lan::builder(tag)
        .src_addr("10.1.0.3/24")
        .openvpn_tap(CLIENTS)
        .build()
}

/// snoopcast in the box: `--upstream up0 --downstream tap0`.
fn start_on_tap0(lan: &Lan) -> Snoopcast {
    start_snoopcast_with(lan, "up0", &["tap0"], &DAEMON_ARGS)
}

/// Phase 1: a plain bridge (no snooping) joins up0 (without its address) and tap0, as a
/// LAN bridge would.
fn bridge_up0_and_tap0(lan: &Lan) {
    let bx = lan.box_ns();
    for cmd in [
        "addr flush dev up0",
        "link add brx type bridge mcast_snooping 0",
        "link set up0 master brx",
        "link set tap0 master brx",
        "link set brx up",
    ] {
        let mut argv = vec!["ip", "-n", &bx];
        argv.extend(cmd.split(' '));
        run(&argv);
    }
    let ok = wait_until(Duration::from_secs(10), || {
        let out = run(&["ip", "-n", &bx, "-o", "link", "show", "brx"]);
        out.contains(" state UP ")
    });
    assert!(ok, "brx not up after 10 s");
}

/// Removes brx again and gives up0 back its address 10.1.0.2/24 (snoopcast's upstream,
/// where it joins the groups).
fn unbridge(lan: &Lan) {
    let bx = lan.box_ns();
    run(&["ip", "-n", &bx, "link", "del", "brx"]);
    run(&["ip", "-n", &bx, "addr", "add", "10.1.0.2/24", "dev", "up0"]);
}

// ------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------

/// Both groups reached this client in full as L2 multicast: OpenVPN's flooding.
fn assert_flooded(r: &AgentReport, sent: &SendReport) {
    for g in [G1, G2] {
        assert_delivered(
            r.frames(g, MULTICAST),
            sent.sent(g),
            &format!("flooding: {} {g} multicast frames on tap0", r.host.name),
        );
    }
}

/// The member got the stream of `group` from `source` as unicast copies to its own tap MAC,
/// intact on its socket, and nothing of it as L2 multicast.
fn assert_tap_member(r: &AgentReport, group: &str, source: &str, sent: u64) {
    let who = &r.host.name;
    assert_eq!(r.mac(), r.host.mac, "{who}: tap0 MAC is not the lladdr set");
    assert_unicast_member_from(r, group, source, sent);
}

/// The client is listed as a member of `group` on tap0.
fn member_on_tap0(s: &Value, group: &str, c: &Host) -> bool {
    member(s, group, c).is_some_and(|m| m["interface"] == "tap0")
}

/// tap0's `state` in `interfaces[]`.
fn tap0_state(s: &Value) -> Option<&str> {
    s["interfaces"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == "tap0")?["state"]
        .as_str()
}

fn members_on_tap0(s: &Value) -> usize {
    s["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["members"].as_array().into_iter().flatten())
        .filter(|m| m["interface"] == "tap0")
        .count()
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

/// Phase 1: a bridge between up0 and tap0 lets OpenVPN flood every group to every client.
/// Phase 2: snoopcast on tap0 instead: each client gets only what it joined, as unicast to
/// its tap MAC; a leave stops delivery to that client at once; SIGTERM exits 0.
#[test]
fn openvpn_tap_flooding_then_snoopcast() {
    require_root!();
    let t0 = Instant::now();
    let lan = vpn("ovpn");
    eprintln!("vpn up after {:.1?}", t0.elapsed());

    // -- phase 1: the problem ------------------------------------------------------------
    bridge_up0_and_tap0(&lan);
    let c1 = lan.start_tap_agent(1, &[G1]);
    let c2 = lan.start_tap_agent(2, &[G2]);
    let c3 = lan.start_tap_agent(3, &[]);
    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "300", "--rate", "300",
    ]);
    settle();
    let (r1, r2, r3) = (c1.finish(), c2.finish(), c3.finish());
    // Every client's tap0 took both groups, c3 (joined nothing) included.
    for r in [&r1, &r2, &r3] {
        assert_flooded(r, &sent);
    }
    assert_delivered(r1.sock_ok(G1), sent.sent(G1), "flooding: c1 G1 socket");
    assert_delivered(r2.sock_ok(G2), sent.sent(G2), "flooding: c2 G2 socket");
    eprintln!("phase 1 (flooding) done after {:.1?}", t0.elapsed());

    // -- phase 2: snoopcast on tap0 ------------------------------------------------------
    unbridge(&lan);
    let daemon = start_on_tap0(&lan);
    let mut c1 = lan.start_tap_agent(1, &[G1]);
    let mut c2 = lan.start_tap_agent(2, &[G2]);
    let mut c3 = lan.start_tap_agent(3, &[]);
    let (h1, h2, h3) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, JOIN_WAIT, "c1 in G1 and c2 in G2 on tap0", |s| {
        member_on_tap0(s, G1, &h1) && member_on_tap0(s, G2, &h2)
    });
    let status = lan.status_json();
    let g1_macs: Vec<String> = members(&status, G1)
        .iter()
        .filter_map(|m| m["mac"].as_str().map(str::to_ascii_lowercase))
        .collect();
    assert_eq!(
        g1_macs,
        vec![h1.mac.clone()],
        "G1's members: c1's tap0 MAC only"
    );
    assert!(
        !is_member(&status, G2, &h1) && !is_member(&status, G1, &h2),
        "no cross membership: {status:#}"
    );
    assert!(
        groups_of(&status, &h3).is_empty(),
        "c3 joined nothing: {status:#}"
    );

    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "300", "--rate", "300",
    ]);
    settle();
    let (r1, r2, r3) = (c1.report(), c2.report(), c3.report());
    assert_tap_member(&r1, G1, S1, sent.sent(G1));
    assert_nothing(&r1, G2);
    assert_tap_member(&r2, G2, S1, sent.sent(G2));
    assert_nothing(&r2, G1);
    assert_nothing(&r3, G1);
    assert_nothing(&r3, G2);
    eprintln!("phase 2 delivery checked after {:.1?}", t0.elapsed());

    // A leave: 4 s of both groups from S2; c1 leaves G1 after 1.5 s. A frame of G1 more
    // than 0.5 s after the leave is late.
    let stream = lan.spawn_sender(&[
        "--source", S2, "--group", G1, "--group", G2, "--count", "800", "--rate", "400",
    ]);
    sleep(Duration::from_millis(1500));
    let before = c1.report().frames_from(G1, S2, UNICAST);
    c1.leave(G1);
    sleep(Duration::from_millis(500));
    c1.mark();
    c2.mark();
    wait_for_status(
        &lan,
        Duration::from_secs(1),
        "c1 gone from G1 after its leave",
        |s| !is_member(s, G1, &h1) && member_on_tap0(s, G2, &h2),
    );
    let sent2 = stream.wait(Duration::from_secs(60));
    settle();
    let (r1, r2, r3) = (c1.finish(), c2.finish(), c3.finish());
    // 200 per second and group: about 300 in the first 1.5 s.
    assert!(
        before >= 200,
        "c1 had the G1 stream before its leave: {before} frames"
    );
    assert_eq!(
        r1.since_mark(G1),
        0,
        "c1 still got frames of G1 more than 0.5 s after its leave"
    );
    assert_nothing(&r1, G2);
    assert!(
        r2.since_mark_class(G2, UNICAST) >= 250,
        "c2 kept its stream after c1's leave: {} frames in the last ~2 s",
        r2.since_mark_class(G2, UNICAST)
    );
    assert_tap_member(&r2, G2, S2, sent2.sent(G2));
    assert_nothing(&r3, G1);
    assert_nothing(&r3, G2);
    daemon.stop_ok();
    eprintln!("phases 1 and 2 took {:.1?}", t0.elapsed());
}

/// Phase 3: the OpenVPN server restarts (tap0 destroyed and created again, no persist-tun).
/// snoopcast keeps running, marks tap0 down and drops its members, reopens it when it is
/// back, queries, and delivery resumes once the clients reconnected and reported, without
/// restarting snoopcast. Needs the daemon's vanishing-interface support.
#[test]
fn openvpn_restart_snoopcast_keeps_running() {
    require_root!();
    let t0 = Instant::now();
    let lan = vpn("ovpnrst");
    let mut daemon = start_on_tap0(&lan);
    let pid = daemon.pid();
    let mut c1 = lan.start_tap_agent(1, &[G1]);
    let mut c2 = lan.start_tap_agent(2, &[G2]);
    let mut c3 = lan.start_tap_agent(3, &[]);
    let (h1, h2) = (lan.host(1).clone(), lan.host(2).clone());
    let both = |s: &Value| member_on_tap0(s, G1, &h1) && member_on_tap0(s, G2, &h2);
    wait_for_status(&lan, JOIN_WAIT, "c1 in G1 and c2 in G2 on tap0", both);
    let sent = lan.send(&[
        "--group", G1, "--group", G2, "--count", "200", "--rate", "400",
    ]);
    settle();
    let (r1, r2) = (c1.report(), c2.report());
    assert_tap_member(&r1, G1, S1, sent.sent(G1));
    assert_tap_member(&r2, G2, S1, sent.sent(G2));
    eprintln!(
        "delivery before the restart checked after {:.1?}",
        t0.elapsed()
    );

    // The server goes away: tap0 is deleted.
    let restart = Instant::now();
    lan.stop_openvpn_server();
    eprintln!(
        "openvpn server stopped, tap0 gone after {:.1?}",
        restart.elapsed()
    );
    assert!(daemon.is_running(), "snoopcast exited when tap0 vanished");
    wait_for_status(
        &lan,
        Duration::from_secs(5),
        "status answers and lists no members on tap0 while it is gone",
        |s| members_on_tap0(s) == 0,
    );
    wait_for_status(
        &lan,
        Duration::from_secs(5),
        "interfaces[] lists tap0 with state \"down\" while it is gone",
        |s| tap0_state(s) == Some("down"),
    );

    // It comes back; the clients reconnect (server-pushed restart, connect-retry 1).
    lan.start_openvpn_server();
    lan.wait_openvpn_clients(2, RESTART_WAIT.saturating_sub(restart.elapsed()));
    eprintln!("clients back after {:.1?}", restart.elapsed());
    wait_for_status(
        &lan,
        RESTART_WAIT.saturating_sub(restart.elapsed()),
        "tap0 \"up\" again with c1 in G1 and c2 in G2",
        |s| tap0_state(s) == Some("up") && both(s),
    );
    eprintln!("members back after {:.1?}", restart.elapsed());
    assert!(daemon.is_running(), "snoopcast exited after tap0 came back");
    assert_eq!(daemon.pid(), pid);

    for c in [&mut c1, &mut c2, &mut c3] {
        c.mark();
    }
    let sent = lan.send(&[
        "--source", S2, "--group", G1, "--group", G2, "--count", "300", "--rate", "300",
    ]);
    settle();
    let (r1, r2, r3) = (c1.finish(), c2.finish(), c3.finish());
    assert_tap_member(&r1, G1, S2, sent.sent(G1));
    assert_tap_member(&r2, G2, S2, sent.sent(G2));
    assert_eq!(r1.since_mark(G2), 0, "c1 got G2 after the restart");
    assert_eq!(r2.since_mark(G1), 0, "c2 got G1 after the restart");
    assert_eq!(
        r3.since_mark(G1) + r3.since_mark(G2),
        0,
        "c3 got frames after the restart"
    );
    daemon.stop_ok();
    eprintln!("phase 3 took {:.1?}", t0.elapsed());
}
