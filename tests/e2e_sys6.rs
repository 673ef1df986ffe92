//! Socket pieces of `snoopcast::runtime::sys` on a real kernel: the BPF programs'
//! verdicts (`bpf::run`) against the kernel's, and the upstream capture's receive ring
//! (`RxRing`). (The upstream join sockets this file also tested are gone: snoopcast
//! reports upstream itself, issue 16.)
//!
//! ```text
//!  [scsys6-<pid>-<role>]   v0 --veth-- v1     (IPv6 on; no addresses needed)
//!   BPF: frames sent on v0, filtered packet sockets on v1
//! ```
//!
//! The test thread's work runs on a thread of its own that enters the namespace with
//! setns(2), so sockets and /proc/thread-self/net belong to it. The namespace is deleted
//! when the test ends, also when it fails. The global e2e lock keeps this apart from the
//! other e2e tests (and the three tests here apart from each other).

mod common;

use common::*;
use snoopcast::runtime::sys;
use socket2::{Domain, Socket, Type};
use std::fs::File;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A namespace `scsys6-<pid>-<role>` holding the veth pair v0/v1, up, with IPv6 on or off
/// (off: the kernel sends nothing on them). Dropping it deletes the namespace (and with it
/// the veths).
struct Netns {
    name: String,
    _lock: Option<File>,
}

impl Netns {
    fn new(role: &str, ipv6: bool) -> Netns {
        let lock = global_lock();
        remove_stale();
        let name = format!("scsys6-{}-{role}", std::process::id());
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name, _lock: lock };
        let n = ns.name.as_str();
        let off = if ipv6 { "0" } else { "1" };
        for (k, v) in [
            ("net.ipv6.conf.all.disable_ipv6", off),
            ("net.ipv6.conf.default.disable_ipv6", off),
            // No router solicitations or DAD chatter on the veths.
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.default.dad_transmits", "0"),
        ] {
            ns_sysctl(n, k, v);
        }
        run(&["ip", "-n", n, "link", "set", "lo", "up"]);
        run(&[
            "ip", "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        run(&["ip", "-n", n, "link", "set", "v0", "up"]);
        run(&["ip", "-n", n, "link", "set", "v1", "up"]);
        ns
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns (a panic in
    /// `f` fails the test).
    fn enter<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns(2) on a descriptor we own; it changes only this thread's
            // network namespace.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete netns {}: {out:?}", self.name);
        }
    }
}

/// Deletes `scsys6-<pid>-*` namespaces of test processes that are gone.
fn remove_stale() {
    let out = run(&["ip", "netns", "list"]);
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("scsys6-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale namespace {name}");
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
    }
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

// ------------------------------------------------------------------------------------------
// BPF: bpf::run against the kernel
// ------------------------------------------------------------------------------------------

fn eth(ethertype: u16, dst_mac: [u8; 6], ip: &[u8], tag: u8) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&[0x02, 0x5c, 0x00, 0x06, 0x00, tag]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    // A trailing tag byte too, so stripped (raw-IP) copies stay distinct.
    f.push(tag);
    f
}

fn ipv4(dst: [u8; 4], proto: u8) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 8];
    p[0] = 0x45;
    p[8] = 1;
    p[9] = proto;
    p[12..16].copy_from_slice(&[10, 1, 0, 1]);
    p[16..20].copy_from_slice(&dst);
    p
}

fn ipv6(dst: &str, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = nh;
    p[7] = 1;
    p[8..24].copy_from_slice(&a("fe80::1").octets());
    p[24..40].copy_from_slice(&a(dst).octets());
    p.extend_from_slice(payload);
    p
}

/// Hop-by-hop header of 8 * (1 + ext_len) octets (Router Alert, padding), then `inner`.
fn hbh(nh: u8, ext_len: u8, inner: &[u8]) -> Vec<u8> {
    let len = 8 * (1 + usize::from(ext_len));
    let mut h = vec![nh, ext_len, 5, 2, 0, 0, 1, (len - 8) as u8];
    h.resize(len, 0);
    h.extend_from_slice(inner);
    h
}

fn icmp6(ty: u8) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.resize(24, 0);
    m
}

/// Frames each program takes or leaves: IGMP, MLD (with and without hop-by-hop),
/// neighbour discovery, IPv4 and IPv6 data of every scope, ARP, truncated frames.
fn frames() -> Vec<Vec<u8>> {
    const V4MAC: [u8; 6] = [1, 0, 0x5e, 1, 1, 1];
    const V6MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
    let udp = [0x13u8, 0x88, 0x13, 0x88, 0, 8, 0, 0];
    let mut ips: Vec<(u16, Vec<u8>)> = vec![
        (0x0800, ipv4([224, 0, 0, 22], 2)),
        (0x0800, ipv4([239, 1, 1, 1], 2)),
        (0x0800, ipv4([239, 1, 1, 1], 17)),
        (0x0800, ipv4([232, 1, 1, 1], 17)),
        (0x0800, ipv4([224, 0, 0, 251], 17)),
        (0x0800, ipv4([10, 1, 1, 1], 17)),
        (0x0806, ipv4([239, 1, 1, 1], 2)),
        (0x86dd, ipv6("ff02::16", 0, &hbh(58, 0, &icmp6(143)))),
        (0x86dd, ipv6("ff02::16", 0, &hbh(58, 2, &icmp6(143)))),
        (0x86dd, ipv6("ff02::16", 58, &icmp6(143))),
        (0x86dd, ipv6("ff02::1:ff00:1", 58, &icmp6(135))),
        (0x86dd, ipv6("ff0e::1", 0, &hbh(58, 0, &icmp6(131)))),
        (0x86dd, ipv6("ff05::1", 0, &hbh(58, 3, &icmp6(130)))),
        (0x86dd, ipv6("ff0e::1", 58, &icmp6(132))),
        (0x86dd, ipv6("ff0e::1", 58, &icmp6(128))),
        (0x86dd, ipv6("ff0e::1", 0, &hbh(58, 1, &icmp6(128)))),
        (0x86dd, ipv6("ff0e::1", 0, &hbh(58, 4, &[])[..8])),
        (0x86dd, ipv6("ff0e::1", 0, &hbh(17, 0, &udp))),
        (0x86dd, ipv6("2001:db8::1", 17, &udp)),
    ];
    for dst in [
        "ff0e::1",
        "ff05::1",
        "ff08::1",
        "ff3e::8000:1",
        "ff02::1",
        "ff01::1",
        "ff02::1:ff00:1",
        "ff00::1",
        "ff0f::1",
    ] {
        ips.push((0x86dd, ipv6(dst, 17, &udp)));
    }
    // The IPv6 version with an IPv4 EtherType and the other way round.
    ips.push((0x0800, ipv6("ff0e::1", 17, &udp)));
    ips.push((0x86dd, ipv4([239, 1, 1, 1], 17)));
    let mut out: Vec<Vec<u8>> = ips
        .iter()
        .enumerate()
        .map(|(i, (et, ip))| {
            let mac = if *et == 0x86dd { V6MAC } else { V4MAC };
            eth(*et, mac, ip, i as u8)
        })
        .collect();
    // Truncated: Ethernet plus part of an IPv6 header. At least 14 + 25 bytes, else the
    // raw-IP copy would be shorter than the kernel accepts from a packet socket.
    let mut cut = eth(0x86dd, V6MAC, &ipv6("ff0e::1", 17, &udp), 200);
    cut.truncate(14 + 25);
    out.push(cut);
    out
}

/// What each filtered socket on v1 received after `frames` were sent on v0.
fn receive_all(sock: &Socket) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    loop {
        match sock.recv(&mut buf) {
            // SAFETY: recv initialised the first n bytes.
            Ok(n) => got.push(
                buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect(),
            ),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn bpf_run_gives_the_kernels_verdicts() {
    require_root!();
    let ns = Netns::new("bpf", false);
    ns.enter(|| {
        let v0 = sys::if_nametoindex("v0").unwrap();
        let v1 = sys::if_nametoindex("v1").unwrap();
        // (name, program, raw-IP: the socket is SOCK_DGRAM, data starts at the IP header).
        let mut progs = vec![];
        for (v4, v6) in [(true, true), (true, false), (false, true)] {
            progs.push((
                format!("group_messages({v4}, {v6})"),
                sys::bpf::group_messages(v4, v6),
                false,
            ));
            for raw in [false, true] {
                let h = if raw { 0 } else { 14 };
                progs.push((
                    format!("multicast_data({h}, {v4}, {v6})"),
                    sys::bpf::multicast_data(h, v4, v6),
                    raw,
                ));
            }
        }
        let socks: Vec<Socket> = progs
            .iter()
            .map(|(_, p, raw)| {
                let ty = if *raw { Type::DGRAM } else { Type::RAW };
                let s = Socket::new(Domain::PACKET, ty, None).unwrap();
                sys::attach_filter(&s, p).unwrap();
                sys::set_ignore_outgoing(&s).unwrap();
                sys::bind_packet(&s, v1, libc::ETH_P_ALL as u16).unwrap();
                s
            })
            .collect();
        let tx = sys::packet_socket().unwrap();
        sys::bind_packet(&tx, v0, 0).unwrap();
        let frames = frames();
        for f in &frames {
            let n = sys::send(&tx, f).unwrap_or_else(|e| panic!("send {f:02x?}: {e}"));
            assert_eq!(n, f.len());
        }
        let mut accepted_somewhere = 0;
        for ((name, prog, raw), sock) in progs.iter().zip(&socks) {
            let strip = if *raw { 14 } else { 0 };
            let mut want: Vec<Vec<u8>> = frames
                .iter()
                // A SOCK_DGRAM socket gets every frame without its link header, and its
                // filter sees the same bytes.
                .map(|f| f[strip..].to_vec())
                .filter(|f| sys::bpf::run(prog, f) > 0)
                .collect();
            let mut got = receive_all(sock);
            want.sort();
            got.sort();
            assert!(!want.is_empty(), "{name}: takes something");
            accepted_somewhere += want.len();
            assert_eq!(
                got, want,
                "{name}: the kernel's verdicts (left) differ from bpf::run's (right)"
            );
        }
        println!(
            "{} frames x {} programs: bpf::run and the kernel agree ({accepted_somewhere} accepts)",
            frames.len(),
            progs.len()
        );
    });
}

// ------------------------------------------------------------------------------------------
// The upstream capture's receive ring on a real kernel
// ------------------------------------------------------------------------------------------

/// Frames of every size up to a jumbo arrive through `sys::Frames::Ring` whole and in
/// order: those that fit a slot in the ring itself, a larger one (the MTU raised after the
/// ring was made) through the socket queue the kernel also puts it on (TP_STATUS_COPY).
#[test]
fn the_receive_ring_delivers_every_frame_whole_and_in_order_jumbo_ones_too() {
    require_root!();
    let ns = Netns::new("ring", false);
    run(&["ip", "-n", &ns.name, "link", "set", "v0", "mtu", "9000"]);
    run(&["ip", "-n", &ns.name, "link", "set", "v1", "mtu", "9000"]);
    ns.enter(|| {
        let v0 = sys::if_nametoindex("v0").unwrap();
        let v1 = sys::if_nametoindex("v1").unwrap();
        let rx = sys::packet_socket().unwrap();
        sys::set_auxdata(&rx).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert_eq!(sys::iface_mtu(&rx, "v1").unwrap(), 9000);
        // Slots for MTU 1500 (2048 bytes): the jumbo frames cannot fit.
        let ring = sys::RxRing::open(&rx, sys::ring_frame_size(1500), 64).expect("a ring");
        let mut frames = sys::Frames::Ring(ring);
        sys::bind_packet(&rx, v1, libc::ETH_P_ALL as u16).unwrap();
        let tx = sys::packet_socket().unwrap();
        sys::bind_packet(&tx, v0, 0).unwrap();
        let sizes = [60, 1514, 3000, 100, 9014, 1514, 64];
        let sent: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let mut f = eth(0x88b5, [2, 0, 0, 0, 0, 1], &[], i as u8);
                f.resize(len, i as u8);
                f
            })
            .collect();
        for f in &sent {
            assert_eq!(sys::send(&tx, f).unwrap(), f.len());
        }
        let mut got = Vec::new();
        loop {
            let n = frames.recv(&rx).unwrap();
            if n == 0 {
                break;
            }
            for i in 0..n {
                got.push(frames.frame_mut(i).0.to_vec());
            }
        }
        assert_eq!(frames.take_lost(), 0);
        assert_eq!(sys::take_drops(&rx).unwrap(), 0);
        let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
        assert_eq!(lens, sizes, "every frame, whole, in order");
        assert_eq!(got, sent);
        println!(
            "ring: {} frames of {sizes:?} bytes, 2048-byte slots",
            got.len()
        );
    });
}
