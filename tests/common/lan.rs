//! The LAN: its hosts, the builder, setting it up and tearing it down (see the diagram in
//! tests/README.md), and the lock that runs one LAN at a time.

use super::*;
use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// One receiver host of the LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// "h1", "h2", ...
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// eth0's address: 10.2.0.(10+k) behind dn0, 10.3.0.(10+k) behind dn1, where k is the
    /// host's place on its switch (1-based; for hosts behind dn0 k = i).
    pub ip: String,
    /// eth0's MAC: 02:5c:00:02:00:kk behind dn0, 02:5c:00:03:00:kk behind dn1.
    pub mac: String,
    /// Some(2) when the kernel is forced to IGMPv2 (force_igmp_version).
    pub igmp_version: Option<u8>,
    /// The box interface the host is behind: "dn0" or "dn1".
    pub downstream: String,
}

/// What the box namespace does between up0 and dn0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxMode {
    /// Nothing: snoopcast is started there (up0 has 10.1.0.2/24, dn0 no address).
    Snoopcast,
    /// A plain Linux bridge `brx` (no snooping) joins up0 and dn0: every frame floods.
    Bridge,
}

/// What the box's upstream interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// `up0` 10.1.0.2/24, a veth to `s0` in the src namespace, where the sender runs.
    Veth,
    /// `tun0` 10.9.0.1/24, an L3 tun device (no Ethernet header) created and fed by
    /// tests/helpers/tun_source.py in the box: its datagrams come from 10.9.0.2. No src
    /// namespace; `Lan::send` asks the helper.
    Tun,
    /// `up0` 10.1.0.2/24, a dummy device in the box with 239.0.0.0/8 and 224.0.0.0/4
    /// routed to it; the sender runs on the box itself (a local source; dummy offloads the
    /// UDP checksum, so the captured frames carry a partial one). No src namespace. Where
    /// the kernel has no dummy driver, up0 is an ifb, which behaves the same here (drops
    /// what it is given, NETIF_F_HW_CSUM).
    Dummy,
}

pub struct LanBuilder {
    tag: String,
    hosts: Vec<Option<u8>>,
    hosts2: Vec<Option<u8>>,
    box_mode: BoxMode,
    upstream: Upstream,
    ipv6: bool,
    src_addrs: Vec<String>,
    /// (host, version) for force_mld_version, set before the host's eth0 comes up.
    mld_versions: Vec<(usize, u8)>,
    /// OpenVPN clients instead of dn0's hosts (`openvpn_tap`, openvpn.rs); 0: none.
    pub(super) openvpn_clients: usize,
    /// The src-box link goes through a snooping bridge (`upstream_snooping_bridge`).
    upstream_bridge: bool,
}

impl LanBuilder {
    /// `n` hosts h1..hn with the kernel's default IGMP version (3).
    pub fn hosts(mut self, n: usize) -> Self {
        assert!((1..=100).contains(&n), "1..=100 hosts");
        self.hosts = vec![None; n];
        self
    }

    /// A second downstream: the box gets `dn1` (MAC 02:5c:00:01:00:04) leading to a second
    /// dumb switch (namespace role `sw2`) with `n` hosts. They are numbered after dn0's
    /// hosts: with `.hosts(2).downstream2_hosts(3)`, h3..h5 are behind dn1, with addresses
    /// 10.3.0.11..13.
    pub fn downstream2_hosts(mut self, n: usize) -> Self {
        assert!((1..=100).contains(&n), "1..=100 hosts");
        self.hosts2 = vec![None; n];
        self
    }

    /// Forces host `i` (1-based, dn0's hosts first, then dn1's) to IGMP version `v` via
    /// force_igmp_version. Call it after `hosts` and `downstream2_hosts`.
    pub fn igmp_version(mut self, i: usize, v: u8) -> Self {
        let n = self.hosts.len();
        assert!((1..=n + self.hosts2.len()).contains(&i), "no host h{i}");
        assert!((1..=3).contains(&v));
        if i <= n {
            self.hosts[i - 1] = Some(v);
        } else {
            self.hosts2[i - 1 - n] = Some(v);
        }
        self
    }

    /// The upstream is `tun0`, fed by tests/helpers/tun_source.py (see `Upstream::Tun`).
    pub fn tun_upstream(mut self) -> Self {
        self.upstream = Upstream::Tun;
        self
    }

    /// The upstream is a dummy `up0` with a local sender (see `Upstream::Dummy`).
    pub fn dummy_upstream(mut self) -> Self {
        self.upstream = Upstream::Dummy;
        self
    }

    /// The upstream link goes through a Linux bridge with IGMP and MLD snooping in its own
    /// namespace (role `upsw`), a snooping switch between the source and the box:
    /// `s0 [src] --veth-- u0 [upsw: br0] u1 --veth-- up0 [box]`. br0 has mcast_snooping 1,
    /// mcast_querier 1, mcast_igmp_version 3 and mcast_mld_version 2 (its IGMP queries come
    /// from 0.0.0.0, its MLD queries from br0's link-local address when the LAN has IPv6).
    /// Read its database with `bridge mdb show` in `Lan::upsw_ns`. Veth upstream only.
    pub fn upstream_snooping_bridge(mut self) -> Self {
        self.upstream_bridge = true;
        self
    }

    /// A plain bridge in the box instead of snoopcast (the flooding baseline).
    pub fn bridge_box(mut self) -> Self {
        self.box_mode = BoxMode::Bridge;
        self
    }

    /// Another address on s0 (e.g. "10.1.0.3/24"), for a second multicast source.
    pub fn src_addr(mut self, cidr: &str) -> Self {
        self.src_addrs.push(cidr.to_string());
        self
    }

    /// Leave IPv6 enabled (off by default so MLD and router solicitations stay quiet).
    /// With it: s0 fd00:1::1/64, the box's up0 fd00:1::2/64 (snoopcast box), hosts and dn0
    /// with their link-local addresses only, DAD off everywhere (addresses usable at once),
    /// no router solicitations; the switches keep IPv6 off (a dumb switch has no IP stack).
    /// Extra IPv6 source addresses: `src_addr("fd00:1::9/64")`.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Forces host `i`'s kernel to MLD version `v` (1 or 2) via
    /// net.ipv6.conf.eth0.force_mld_version (needs `.ipv6(true)`).
    pub fn mld_version(mut self, i: usize, v: u8) -> Self {
        assert!(
            (1..=self.hosts.len() + self.hosts2.len()).contains(&i),
            "no host h{i}"
        );
        assert!((1..=2).contains(&v), "MLD version 1 or 2");
        self.mld_versions.push((i, v));
        self
    }

    pub fn build(self) -> Lan {
        let lock = global_lock();
        remove_stale_namespaces();
        let prefix = format!("sc{}-{}", self.tag, std::process::id());
        let dir = std::env::temp_dir().join(format!("snoopcast-e2e-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test's temp dir");
        assert!(
            self.upstream == Upstream::Veth || self.box_mode == BoxMode::Snoopcast,
            "the bridge box needs the veth upstream"
        );
        let mut lan = Lan {
            prefix,
            box_mode: self.box_mode,
            upstream: self.upstream,
            downstreams: if self.hosts2.is_empty() { 1 } else { 2 },
            tun: Mutex::new(None),
            openvpn: Mutex::new(None),
            hosts: Vec::new(),
            namespaces: Vec::new(),
            dir,
            logs: Mutex::new(Vec::new()),
            _lock: lock,
        };
        lan.setup(&self);
        lan
    }
}

/// The test LAN. Dropping it kills everything inside its namespaces and deletes them.
pub struct Lan {
    /// `sc<tag>-<pid>`: every namespace of this LAN starts with it.
    pub prefix: String,
    pub box_mode: BoxMode,
    pub upstream: Upstream,
    /// 1 (dn0) or 2 (dn0 and dn1).
    pub downstreams: usize,
    /// The helper behind tun0 (`Upstream::Tun`).
    pub(super) tun: Mutex<Option<TunSource>>,
    /// The openvpn processes of an OpenVPN LAN (`LanBuilder::openvpn_tap`).
    pub(super) openvpn: Mutex<Option<OpenVpn>>,
    pub hosts: Vec<Host>,
    pub(super) namespaces: Vec<String>,
    /// Per-test temp dir: logs and the control socket.
    pub dir: PathBuf,
    pub(super) logs: Mutex<Vec<(String, PathBuf)>>,
    _lock: Option<File>,
}

impl Lan {
    /// `tag`: a short [a-z0-9] name unique among the tests (namespace names carry it).
    pub fn builder(tag: &str) -> LanBuilder {
        assert!(
            !tag.is_empty()
                && tag.len() <= 10
                && tag
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "tag must be 1-10 chars of [a-z0-9]: {tag:?}"
        );
        LanBuilder {
            tag: tag.to_string(),
            hosts: vec![None; 3],
            hosts2: Vec::new(),
            box_mode: BoxMode::Snoopcast,
            upstream: Upstream::Veth,
            ipv6: false,
            src_addrs: Vec::new(),
            mld_versions: Vec::new(),
            openvpn_clients: 0,
            upstream_bridge: false,
        }
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
    pub fn src_ns(&self) -> String {
        self.ns("src")
    }
    pub fn box_ns(&self) -> String {
        self.ns("box")
    }
    pub fn sw_ns(&self) -> String {
        self.ns("sw")
    }
    /// The snooping bridge on the upstream link (`LanBuilder::upstream_snooping_bridge`).
    pub fn upsw_ns(&self) -> String {
        self.ns("upsw")
    }
    /// The switch behind dn1.
    pub fn sw2_ns(&self) -> String {
        self.ns("sw2")
    }
    /// The switch behind downstream `d` (0: dn0, 1: dn1).
    pub fn sw_ns_of(&self, d: usize) -> String {
        if d == 0 {
            self.sw_ns()
        } else {
            self.ns(&format!("sw{}", d + 1))
        }
    }
    /// The upstream interface's name: "up0", or "tun0" for a tun upstream.
    pub fn upstream_if(&self) -> &'static str {
        match self.upstream {
            Upstream::Tun => "tun0",
            Upstream::Veth | Upstream::Dummy => "up0",
        }
    }
    /// The downstream interfaces: ["dn0"] or ["dn0", "dn1"].
    pub fn downstream_ifs(&self) -> Vec<String> {
        (0..self.downstreams).map(|d| format!("dn{d}")).collect()
    }
    /// The 1-based numbers of the hosts behind `dn` ("dn0" or "dn1").
    pub fn hosts_on(&self, dn: &str) -> Vec<usize> {
        (1..=self.hosts.len())
            .filter(|&i| self.host(i).downstream == dn)
            .collect()
    }
    /// Host `i`, 1-based.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }
    /// Where snoopcast's control socket is put by `start_snoopcast`.
    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Registers a file to print when the test fails.
    pub fn add_log(&self, label: &str, path: &Path) {
        self.logs
            .lock()
            .unwrap()
            .push((label.to_string(), path.to_path_buf()));
    }

    pub(super) fn add_ns(&mut self, role: &str, ipv6: bool) -> String {
        let ns = self.ns(role);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        if !ipv6 {
            // Before any veth exists, so none of them starts IPv6 (no MLD, no RS noise).
            ns_sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", "1");
            ns_sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", "1");
        } else {
            // No duplicate address detection: link-local addresses are usable (and MLD
            // reports carry them, RFC 3810 5.2.13) the moment a link is up; no router
            // solicitations (noise).
            for conf in ["all", "default"] {
                ns_sysctl(&ns, &format!("net.ipv6.conf.{conf}.accept_dad"), "0");
                ns_sysctl(
                    &ns,
                    &format!("net.ipv6.conf.{conf}.router_solicitations"),
                    "0",
                );
            }
        }
        ns_sysctl(&ns, "net.ipv4.conf.all.rp_filter", "0");
        ns_sysctl(&ns, "net.ipv4.conf.default.rp_filter", "0");
        ns
    }

    fn setup(&mut self, b: &LanBuilder) {
        let src = (self.upstream == Upstream::Veth).then(|| self.add_ns("src", b.ipv6));
        let bx = self.add_ns("box", b.ipv6);
        let ip = |ns: &str, args: &[&str]| {
            let mut argv = vec!["ip", "-n", ns];
            argv.extend_from_slice(args);
            run(&argv);
        };

        match (self.upstream, &src) {
            (Upstream::Veth, Some(src)) => {
                if b.upstream_bridge {
                    // src <-> upsw (a snooping bridge) <-> box
                    self.add_upstream_bridge(src, &bx, b.ipv6);
                } else {
                    // src <-> box
                    run(&[
                        "ip", "link", "add", "s0", "netns", src, "type", "veth", "peer", "name",
                        "up0", "netns", &bx,
                    ]);
                }
                ip(src, &["link", "set", "s0", "address", "02:5c:00:01:00:01"]);
                ip(&bx, &["link", "set", "up0", "address", "02:5c:00:01:00:02"]);
                ip(src, &["addr", "add", "10.1.0.1/24", "dev", "s0"]);
                for cidr in &b.src_addrs {
                    if cidr.contains(':') {
                        ip(src, &["addr", "add", cidr, "dev", "s0", "nodad"]);
                    } else {
                        ip(src, &["addr", "add", cidr, "dev", "s0"]);
                    }
                }
                if b.ipv6 {
                    ip(src, &["addr", "add", "fd00:1::1/64", "dev", "s0", "nodad"]);
                }
                ip(src, &["link", "set", "s0", "up"]);
                ip(src, &["route", "add", "224.0.0.0/4", "dev", "s0"]);
                // veth leaves the UDP checksum to "hardware": a frame captured and re-sent by
                // snoopcast would then carry a wrong checksum and hosts drop it silently.
                if exec(&["sh", "-c", "command -v ethtool"], CMD_TIMEOUT).ok() {
                    ns_run(src, &["ethtool", "-K", "s0", "tx", "off"]);
                } else {
                    panic!("ethtool is missing (apt-get install ethtool, or run tests/run.sh)");
                }
                if self.box_mode == BoxMode::Snoopcast {
                    ip(&bx, &["addr", "add", "10.1.0.2/24", "dev", "up0"]);
                    if b.ipv6 {
                        ip(&bx, &["addr", "add", "fd00:1::2/64", "dev", "up0", "nodad"]);
                    }
                }
            }
            (Upstream::Dummy, _) => {
                // A local source: the sender runs here and its datagrams leave through up0
                // with the UDP checksum left to "hardware" (no ethtool: that is the point).
                // Kernels without the dummy driver (this VM's) get an ifb: a black hole too,
                // Ethernet, and with the same checksum offload (NETIF_F_HW_CSUM).
                let dummy = ns_exec(
                    &bx,
                    &[
                        "ip",
                        "link",
                        "add",
                        "up0",
                        "address",
                        "02:5c:00:01:00:02",
                        "type",
                        "dummy",
                    ],
                    CMD_TIMEOUT,
                );
                if !dummy.ok() {
                    eprintln!(
                        "no dummy device ({}); up0 is an ifb instead",
                        dummy.stderr.trim()
                    );
                    // (ifb cannot change its MAC later: it is given at creation.)
                    ip(
                        &bx,
                        &[
                            "link",
                            "add",
                            "up0",
                            "address",
                            "02:5c:00:01:00:02",
                            "type",
                            "ifb",
                        ],
                    );
                }
                ip(&bx, &["link", "set", "up0", "multicast", "on"]);
                ip(&bx, &["addr", "add", "10.1.0.2/24", "dev", "up0"]);
                if b.ipv6 {
                    ip(&bx, &["addr", "add", "fd00:1::2/64", "dev", "up0", "nodad"]);
                }
            }
            (Upstream::Tun, _) => {
                // tun_source.py creates tun0 (10.9.0.1/24) and brings it up; the tun device
                // lives as long as the helper holds it open.
                *self.tun.lock().unwrap() = Some(TunSource::start(self, &bx));
            }
            (Upstream::Veth, None) => unreachable!("a veth upstream has a src namespace"),
        }
        if self.box_mode == BoxMode::Bridge {
            ip(
                &bx,
                &[
                    "link",
                    "add",
                    "brx",
                    "type",
                    "bridge",
                    "mcast_snooping",
                    "0",
                ],
            );
            ip(&bx, &["link", "set", "up0", "master", "brx"]);
            ip(&bx, &["link", "set", "brx", "up"]);
        }
        if self.upstream != Upstream::Tun {
            ip(&bx, &["link", "set", "up0", "up"]);
        }
        if self.upstream == Upstream::Dummy {
            ip(&bx, &["route", "add", "239.0.0.0/8", "dev", "up0"]);
            ip(&bx, &["route", "add", "224.0.0.0/4", "dev", "up0"]);
        }
        if b.openvpn_clients > 0 {
            // The OpenVPN TAP LAN (openvpn.rs) instead of dn0, its switch and hosts.
            assert!(!b.ipv6, "openvpn_tap is IPv4 only");
            return self.setup_openvpn(b.openvpn_clients);
        }

        self.add_downstream(0, &b.hosts, b.ipv6, &b.mld_versions);
        if !b.hosts2.is_empty() {
            self.add_downstream(1, &b.hosts2, b.ipv6, &b.mld_versions);
        }
        self.wait_links_up();
        if b.ipv6 {
            self.wait_ipv6_ready();
        }
    }

    /// The namespace `upsw` with a snooping bridge br0 (see
    /// `LanBuilder::upstream_snooping_bridge`) and the veths s0 (src) -- u0 (upsw) and
    /// u1 (upsw) -- up0 (box), its ports up.
    fn add_upstream_bridge(&mut self, src: &str, bx: &str, ipv6: bool) {
        let upsw = self.add_ns("upsw", ipv6);
        run(&[
            "ip", "link", "add", "s0", "netns", src, "type", "veth", "peer", "name", "u0", "netns",
            &upsw,
        ]);
        run(&[
            "ip", "link", "add", "u1", "netns", &upsw, "type", "veth", "peer", "name", "up0",
            "netns", bx,
        ]);
        run(&[
            "ip",
            "-n",
            &upsw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "1",
            "mcast_querier",
            "1",
            "mcast_igmp_version",
            "3",
            "mcast_mld_version",
            "2",
        ]);
        for port in ["u0", "u1"] {
            run(&["ip", "-n", &upsw, "link", "set", port, "master", "br0"]);
            run(&["ip", "-n", &upsw, "link", "set", port, "up"]);
        }
        run(&["ip", "-n", &upsw, "link", "set", "br0", "up"]);
    }

    /// Downstream `d` (0 or 1): the box's `dn<d>`, a veth to port p0 of a dumb switch (a
    /// bridge without snooping, in namespace sw or sw2) and `hosts.len()` hosts on p1.., each
    /// forced to the IGMP version given (None: the kernel's default), and to the MLD
    /// version `mld` gives for its number, if any (before eth0 is up, so even the first
    /// reports have that version).
    fn add_downstream(&mut self, d: usize, hosts: &[Option<u8>], ipv6: bool, mld: &[(usize, u8)]) {
        let dn = format!("dn{d}");
        let sw_role = if d == 0 {
            "sw".to_string()
        } else {
            format!("sw{}", d + 1)
        };
        // A dumb switch has no IP stack: IPv6 stays off there even in IPv6 LANs.
        let sw = self.add_ns(&sw_role, false);
        let ip = |ns: &str, args: &[&str]| {
            let mut argv = vec!["ip", "-n", ns];
            argv.extend_from_slice(args);
            run(&argv);
        };

        // box <-> sw
        self.add_downstream_link(d);

        // the dumb switch
        ip(
            &sw,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        );
        ip(&sw, &["link", "set", "p0", "master", "br0"]);
        ip(&sw, &["link", "set", "p0", "up"]);

        for (idx, version) in hosts.iter().enumerate() {
            let k = idx + 1;
            let i = self.hosts.len() + 1;
            let name = format!("h{i}");
            let ns = self.add_ns(&name, ipv6);
            let port = format!("p{k}");
            let mac = format!("02:5c:00:{:02x}:00:{k:02x}", 2 + d);
            let addr = format!("10.{}.0.{}", 2 + d, 10 + k);
            run(&[
                "ip", "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&sw, &["link", "set", &port, "master", "br0"]);
            ip(&sw, &["link", "set", &port, "up"]);
            ip(&ns, &["link", "set", "eth0", "address", &mac]);
            ns_sysctl(&ns, "net.ipv4.conf.eth0.rp_filter", "0");
            if let Some(v) = version {
                ns_sysctl(&ns, "net.ipv4.conf.eth0.force_igmp_version", &v.to_string());
            }
            if let Some(&(_, v)) = mld.iter().find(|&&(h, _)| h == i).filter(|_| ipv6) {
                ns_sysctl(&ns, "net.ipv6.conf.eth0.force_mld_version", &v.to_string());
            }
            ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&ns, &["link", "set", "eth0", "up"]);
            ip(&ns, &["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            self.hosts.push(Host {
                name,
                ns,
                ip: addr,
                mac,
                igmp_version: *version,
                downstream: dn.clone(),
            });
        }
        ip(&sw, &["link", "set", "br0", "up"]);
    }

    /// The veth pair `dn<d>` (box) -- `p0` (its switch), dn<d> with MAC 02:5c:00:01:00:0(3+d),
    /// up (and in brx for the bridge box). p0 is left to the caller.
    pub(super) fn add_downstream_link(&self, d: usize) {
        let (bx, sw) = (self.box_ns(), self.sw_ns_of(d));
        let dn = format!("dn{d}");
        run(&[
            "ip", "link", "add", &dn, "netns", &bx, "type", "veth", "peer", "name", "p0", "netns",
            &sw,
        ]);
        let mac = format!("02:5c:00:01:00:{:02x}", 3 + d);
        run(&["ip", "-n", &bx, "link", "set", &dn, "address", &mac]);
        if self.box_mode == BoxMode::Bridge {
            run(&["ip", "-n", &bx, "link", "set", &dn, "master", "brx"]);
        }
        run(&["ip", "-n", &bx, "link", "set", &dn, "up"]);
    }

    fn print_logs(&self) {
        for (label, path) in self.logs.lock().unwrap().iter() {
            let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(300);
            eprintln!(
                "----- {label}: {} ({} lines) -----",
                path.display(),
                lines.len()
            );
            if skip > 0 {
                eprintln!("... {skip} earlier lines left out");
            }
            for l in &lines[skip..] {
                eprintln!("{l}");
            }
        }
        eprintln!("----- end of logs; kept in {} -----", self.dir.display());
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let failed = thread::panicking();
        if failed {
            self.print_logs();
        }
        for ns in self.namespaces.iter().rev() {
            kill_ns_processes(ns);
        }
        for ns in self.namespaces.iter().rev() {
            let out = Command::new("ip").args(["netns", "delete", ns]).output();
            if !matches!(&out, Ok(o) if o.status.success()) {
                eprintln!("warning: could not delete netns {ns}: {out:?}");
            }
        }
        if !failed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// SIGKILLs every process inside `ns` (all of them were started by this harness) and waits
/// briefly for them to go, so the namespace and its veths really disappear.
fn kill_ns_processes(ns: &str) {
    let pids = |ns: &str| -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let me = std::process::id() as i32;
    for pid in pids(ns) {
        if pid != me {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    wait_until(Duration::from_secs(2), || pids(ns).is_empty());
}

/// Deletes namespaces `sc<tag>-<pid>-<role>` left by test processes that no longer exist
/// (a test binary killed with SIGKILL cannot run its Drop).
pub fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let mut parts = name.splitn(3, '-');
        let (Some(head), Some(pid), Some(role)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let ours = matches!(role, "src" | "box" | "sw" | "sw2" | "inet" | "upsw")
            || (role.len() > 1 && role.starts_with(['h', 'c']) && role[1..].parse::<u32>().is_ok());
        if !ours {
            continue;
        }
        if !head.starts_with("sc")
            || head == "scdemo"
            || Path::new(&format!("/proc/{pid}")).exists()
        {
            continue;
        }
        eprintln!("removing stale namespace {name} (pid {pid} is gone)");
        kill_ns_processes(name);
        let _ = Command::new("ip").args(["netns", "delete", name]).status();
    }
}

/// One e2e LAN at a time on this machine (2 cores: parallel LANs made the timing-sensitive
/// checks noisy). An flock on a file in the temp dir, held for the Lan's lifetime; it also
/// serialises separate test binaries. SNOOPCAST_E2E_PARALLEL=1 turns it off.
pub fn global_lock() -> Option<File> {
    if std::env::var("SNOOPCAST_E2E_PARALLEL")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        return None;
    }
    let path = std::env::temp_dir().join("snoopcast-e2e.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the e2e lock file");
    // SAFETY: flock(2) on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        eprintln!(
            "waiting for {} (another e2e test is running)",
            path.display()
        );
        // SAFETY: as above.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
    }
    Some(file)
}
