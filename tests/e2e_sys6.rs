//! The IPv6 socket pieces of `snoopcast::runtime::sys` on a real kernel: joins and leaves
//! as the kernel sees them (/proc/net/igmp6, /proc/net/mcfilter6), the per-socket
//! membership limits, and the BPF programs' verdicts (`bpf::run`) against the kernel's.
//!
//! ```text
//!  [scsys6-<pid>-<role>]   v0 --veth-- v1     (IPv6 on; no addresses needed)
//!   joins: sockets on v0            BPF: frames sent on v0, filtered packet sockets on v1
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
use std::fs::{self, File};
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

/// An address as /proc/net/igmp6 and mcfilter6 print it: 32 hex digits.
fn hex(a: Ipv6Addr) -> String {
    a.octets().iter().map(|b| format!("{b:02x}")).collect()
}

/// The calling thread's namespace's /proc/net file (not /proc/net: that is the process's).
fn proc_net(file: &str) -> String {
    fs::read_to_string(format!("/proc/thread-self/net/{file}")).expect("read /proc/net")
}

/// Groups on `dev` with their user counts, from /proc/net/igmp6
/// (`idx dev group users flags timer`).
fn igmp6(dev: &str) -> Vec<(String, u32)> {
    proc_net("igmp6")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[1] == dev).then(|| (f[2].to_string(), f[3].parse().unwrap()))
        })
        .collect()
}

fn users(dev: &str, group: Ipv6Addr) -> u32 {
    let g = hex(group);
    igmp6(dev)
        .into_iter()
        .find(|(x, _)| *x == g)
        .map_or(0, |(_, u)| u)
}

/// (source, include count, exclude count) of `group` on `dev`, from /proc/net/mcfilter6
/// (`idx dev group source inc exc`, after a header line).
fn sources(dev: &str, group: Ipv6Addr) -> Vec<(String, u32, u32)> {
    let g = hex(group);
    proc_net("mcfilter6")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[1] == dev && f[2] == g).then(|| {
                (
                    f[3].to_string(),
                    f[4].parse().unwrap(),
                    f[5].parse().unwrap(),
                )
            })
        })
        .collect()
}

fn errno(r: io::Result<()>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

fn read_sysctl(path: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn ipv6_joins_show_in_the_kernel_and_leaves_remove_them() {
    require_root!();
    let ns = Netns::new("join", true);
    ns.enter(|| {
        let ifx = sys::if_nametoindex("v0").expect("v0 in the namespace");
        let (asm, ssm) = (a("ff0e::1:1"), a("ff3e::8000:1"));
        let (s1, s2) = (a("2001:db8::1"), a("2001:db8::2"));
        let j1 = sys::join_socket6().unwrap();
        let j2 = sys::join_socket6().unwrap();
        assert_eq!(users("v0", asm), 0, "no membership before the join");

        // Any-source on two sockets: one device membership, two users.
        sys::any_source6(&j1, ifx, asm, true).unwrap();
        assert_eq!(users("v0", asm), 1);
        sys::any_source6(&j2, ifx, asm, true).unwrap();
        assert_eq!(users("v0", asm), 2);
        assert!(
            sources("v0", asm).is_empty(),
            "any-source has no source list"
        );
        assert_eq!(
            errno(sys::any_source6(&j1, ifx, asm, true)),
            Some(libc::EADDRINUSE),
            "the same group twice on one socket"
        );

        // Source-specific: INCLUDE {s1, s2}.
        sys::source_specific6(&j1, ifx, ssm, s1, true).unwrap();
        sys::source_specific6(&j1, ifx, ssm, s2, true).unwrap();
        assert_eq!(users("v0", ssm), 1);
        let mut got = sources("v0", ssm);
        got.sort();
        assert_eq!(
            got,
            vec![(hex(s1), 1, 0), (hex(s2), 1, 0)],
            "INCLUDE {{s1, s2}}"
        );

        // Leaves.
        sys::source_specific6(&j1, ifx, ssm, s1, false).unwrap();
        assert_eq!(sources("v0", ssm), vec![(hex(s2), 1, 0)]);
        assert_eq!(
            errno(sys::source_specific6(&j1, ifx, ssm, s1, false)),
            Some(libc::EADDRNOTAVAIL),
            "a source left twice"
        );
        sys::source_specific6(&j1, ifx, ssm, s2, false).unwrap();
        assert_eq!(
            users("v0", ssm),
            0,
            "the last source's leave leaves the group"
        );
        assert!(sources("v0", ssm).is_empty());
        sys::any_source6(&j1, ifx, asm, false).unwrap();
        assert_eq!(users("v0", asm), 1, "j2 still holds it");
        assert_eq!(
            errno(sys::any_source6(&j1, ifx, asm, false)),
            Some(libc::EADDRNOTAVAIL),
            "a group left twice"
        );
        drop(j2);
        assert_eq!(users("v0", asm), 0, "closing a socket leaves its groups");

        // What a source join does to a group the same socket holds any-source (reported,
        // not asserted: the pool keeps the two on different sockets anyway).
        let g = a("ff0e::1:2");
        sys::any_source6(&j1, ifx, g, true).unwrap();
        let r = sys::source_specific6(&j1, ifx, g, s1, true);
        println!(
            "source join on an any-source socket: {r:?}; {} now has sources {:?}",
            g,
            sources("v0", g)
        );
        // Joins on v1 with IPv6 on, then off: what v0 hears (reported, not asserted).
        let v1 = sys::if_nametoindex("v1").unwrap();
        let cap = Socket::new(Domain::PACKET, Type::RAW, None).unwrap();
        sys::attach_filter(&cap, &sys::bpf::group_messages(false, true)).unwrap();
        sys::bind_packet(&cap, ifx, libc::ETH_P_ALL as u16).unwrap();
        let heard = |cap: &Socket| {
            std::thread::sleep(Duration::from_millis(1500));
            receive_all(cap)
                .iter()
                .filter(|f| f.len() > 14 + 48 && f[14 + 48] == 143)
                .count()
        };
        receive_all(&cap);
        sys::any_source6(&j1, v1, a("ff0e::1:4"), true).unwrap();
        let on = heard(&cap);
        fs::write("/proc/sys/net/ipv6/conf/v1/disable_ipv6", "1").unwrap();
        receive_all(&cap);
        let r = sys::any_source6(&j1, v1, a("ff0e::1:3"), true);
        let r2 = sys::source_specific6(&j1, v1, a("ff3e::1:3"), s1, true);
        let off = heard(&cap);
        println!(
            "join on v1 with IPv6 on: {on} MLDv2 reports heard on v0; with disable_ipv6=1: \
             any-source {r:?}, source-specific {r2:?}, {off} reports heard; igmp6 on v1: {:?}",
            igmp6("v1")
        );
    });
}

#[test]
fn probe_ipv6_membership_limits_of_one_socket() {
    require_root!();
    // A global sysctl that Linux (6.18 here) shows only in the initial namespace, unlike
    // igmp_max_msf and optmem_max, which every namespace has: read it here, before
    // entering ours, and inside only where the kernel has it there too.
    const MSF: &str = "/proc/sys/net/ipv6/mld_max_msf";
    let root_msf = read_sysctl(MSF);
    let ns = Netns::new("lim", true);
    ns.enter(move || {
        let ifx = sys::if_nametoindex("v0").unwrap();
        let msf = if Path::new(MSF).exists() {
            read_sysctl(MSF)
        } else {
            println!("{MSF} is not shown in a network namespace; {root_msf} outside");
            root_msf
        };
        let optmem = read_sysctl("/proc/sys/net/core/optmem_max");

        // Groups on one socket until the kernel refuses one.
        let s = sys::join_socket6().unwrap();
        let mut groups = 0u32;
        let err = loop {
            let g = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 2, groups as u16);
            match sys::any_source6(&s, ifx, g, true) {
                Ok(()) => groups += 1,
                Err(e) => break e,
            }
            assert!(groups < 60_000, "no limit in sight");
        };
        println!(
            "groups per socket: {groups}, then {err} (optmem_max {optmem}: {} bytes per group)",
            optmem / u64::from(groups.max(1))
        );
        assert!(groups > 20, "IPv6 takes more than IPv4's 20 ({groups})");
        assert!(
            matches!(err.raw_os_error(), Some(libc::ENOMEM) | Some(libc::ENOBUFS)),
            "{err}"
        );
        let g0 = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 2, 0);
        assert_eq!(users("v0", g0), 1);
        drop(s);
        assert_eq!(users("v0", g0), 0, "closing the socket leaves them all");
        assert!(
            !igmp6("v0").iter().any(|(g, _)| g.starts_with("ff0e")),
            "nothing left"
        );

        // Sources of one group on one socket.
        let s = sys::join_socket6().unwrap();
        let g = a("ff3e::3");
        let mut n = 0u64;
        let err = loop {
            let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, n as u16);
            match sys::source_specific6(&s, ifx, g, src, true) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 60_000, "no limit in sight");
        };
        println!("sources per group and socket: {n}, then {err} (mld_max_msf {msf})");
        assert_eq!(n, msf, "mld_max_msf is the limit");
        assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS), "{err}");
        assert_eq!(sources("v0", g).len() as u64, msf);
        drop(s);

        // Groups with full source lists on one socket: the optmem budget the pool has.
        let s = sys::join_socket6().unwrap();
        let (mut full, mut total) = (0u32, 0u64);
        let err = 'outer: loop {
            let g = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 4, full as u16);
            for k in 0..msf {
                let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, k as u16);
                if let Err(e) = sys::source_specific6(&s, ifx, g, src, true) {
                    break 'outer e;
                }
                total += 1;
            }
            full += 1;
            assert!(full < 10_000, "no limit in sight");
        };
        println!(
            "groups with {msf} sources per socket: {full} (then {err} after {} more sources; \
             {total} sources in all)",
            total - u64::from(full) * msf
        );
        assert!(full >= 1, "one full group fits");
        assert!(
            matches!(err.raw_os_error(), Some(libc::ENOMEM) | Some(libc::ENOBUFS)),
            "{err}"
        );
        drop(s);
        assert!(proc_net("mcfilter6").lines().count() <= 1, "no source left");
    });
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
