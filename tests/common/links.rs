//! Changing the LAN under a running test: interfaces deleted, re-created, taken down and up,
//! a host made silent for IGMP or MLD, and the groups the kernels have joined.

use super::*;
use std::time::Duration;

/// The multicast groups joined on `iface` in namespace `ns`, from /proc/net/igmp6, with
/// their users, link-local scope (ff02::/16, ff01::/16: all-nodes, solicited-node, ...)
/// left out. Groups in Rust's Ipv6Addr form (`ff0e::1:1`).
pub fn kernel_groups6_in(ns: &str, iface: &str) -> Vec<(String, u32)> {
    // "2    up0             ff0e0000000000000000000000010001     1 00000004 0"
    let text = ns_run(ns, &["cat", "/proc/net/igmp6"]);
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 4 || w[1] != iface || w[2].len() != 32 {
            continue;
        }
        let Ok(v) = u128::from_str_radix(w[2], 16) else {
            continue;
        };
        let a = std::net::Ipv6Addr::from(v);
        let scope = a.segments()[0] & 0xff0f;
        if scope == 0xff01 || scope == 0xff02 {
            continue;
        }
        out.push((a.to_string(), w[3].parse().unwrap_or(0)));
    }
    out
}

impl Lan {
    /// Deletes the box's `dn<d>` (`ip link del` in the box), which also removes the switch's
    /// port p0: the downstream vanishes.
    pub fn delete_downstream(&self, d: usize) {
        ns_run(&self.box_ns(), &["ip", "link", "del", &format!("dn{d}")]);
    }

    /// Creates the box's `dn<d>` again after `delete_downstream`: a new veth pair, p0 back
    /// in its switch's bridge, and waits until the links are up.
    pub fn recreate_downstream(&self, d: usize) {
        self.add_downstream_link(d);
        let sw = self.sw_ns_of(d);
        run(&["ip", "-n", &sw, "link", "set", "p0", "master", "br0"]);
        run(&["ip", "-n", &sw, "link", "set", "p0", "up"]);
        self.wait_links_up();
    }

    /// `ip link set IFACE up|down` in the box.
    pub fn set_box_link(&self, iface: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ns_run(&self.box_ns(), &["ip", "link", "set", iface, state]);
    }

    /// The groups the box's kernel has joined on `iface` (from /proc/net/igmp, 224.0.0.x left
    /// out), each with its number of users (sockets holding it), in the kernel's order.
    pub fn kernel_groups(&self, iface: &str) -> Vec<(String, u32)> {
        let text = ns_run(&self.box_ns(), &["cat", "/proc/net/igmp"]);
        let mut out = Vec::new();
        let mut in_iface = false;
        for line in text.lines() {
            if !line.starts_with('\t') && !line.starts_with(' ') {
                // "Idx\tDevice    : Count Querier" header or "3\tup0       :     2      V3"
                in_iface = line.split_whitespace().nth(1) == Some(iface);
                continue;
            }
            if !in_iface {
                continue;
            }
            // "\t\t\t\t010101EF     1 0:00000000\t\t0": group (network order read as a
            // host integer, in hex), users, timer, reporter.
            let mut words = line.split_whitespace();
            let (Some(hex), Some(users)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(v) = u32::from_str_radix(hex, 16) else {
                continue;
            };
            let a = std::net::Ipv4Addr::from(u32::from_be(v));
            let o = a.octets();
            if o[0] == 224 && o[1] == 0 && o[2] == 0 {
                continue;
            }
            out.push((a.to_string(), users.parse().unwrap_or(0)));
        }
        out
    }

    /// Waits until every interface but lo is operationally up. Carrier changes are applied
    /// by the kernel's linkwatch, up to a second later; until then the device still has the
    /// noop qdisc (which drops everything) and bridge ports do not forward yet. The tun and
    /// dummy upstreams have no carrier state: "UNKNOWN" with the UP flag counts as up there.
    pub fn wait_links_up(&self) {
        let bx = self.box_ns();
        let soft = match self.upstream {
            Upstream::Veth => "",
            Upstream::Tun => "tun0",
            Upstream::Dummy => "up0",
        };
        let mut down = Vec::new();
        let ok = wait_until(Duration::from_secs(10), || {
            down.clear();
            for ns in &self.namespaces {
                let out = run(&["ip", "-n", ns, "-o", "link", "show"]);
                for line in out.lines() {
                    let name = line.split(": ").nth(1).unwrap_or("").split('@').next();
                    let name = name.unwrap_or("");
                    let flags = line
                        .split('<')
                        .nth(1)
                        .and_then(|f| f.split('>').next())
                        .unwrap_or("");
                    let admin_up = flags.split(',').any(|f| f == "UP");
                    let up = line.contains(" state UP ")
                        || (*ns == bx
                            && name == soft
                            && admin_up
                            && line.contains(" state UNKNOWN "));
                    if name != "lo" && !up {
                        down.push(format!("{ns}/{name}"));
                    }
                }
            }
            down.is_empty()
        });
        assert!(ok, "links not up after 10 s: {down:?}");
    }

    /// Makes host `i` silent for IGMP: a tc clsact egress filter on its eth0 drops every
    /// outgoing IPv4 frame with protocol 2. The kernel keeps its memberships (the socket
    /// still receives) and keeps trying to answer queries, but nothing reaches the wire,
    /// so the host looks exactly like one that vanished without a leave. The filter is a
    /// classic BPF program (iproute2 only, no nft/iptables, no act_gact module):
    ///   ldb [23]; jeq #2, drop, pass; drop: ret #2 (TC_ACT_SHOT); pass: ret #0 (TC_ACT_OK)
    /// Offset 23 = 14 (Ethernet) + 9 (IPv4 protocol); tc egress sees the Ethernet header.
    pub fn block_igmp_out(&self, i: usize) {
        self.drop_egress(
            i,
            "IGMP",
            ("ip", "1", "4,48 0 0 23,21 0 1 2,6 0 0 2,6 0 0 0"),
            "add table ip sc; add chain ip sc out { type filter hook output priority 0; }; \
             add rule ip sc out ip protocol igmp drop",
        );
    }

    /// Drop host `i`'s outgoing `what` at tc egress on eth0 (a clsact qdisc, shared by every
    /// such filter, and a classic BPF `filter` = (protocol, prio, bytecode)), or with the
    /// nftables `nft` script where the tc classifier is missing from the kernel.
    fn drop_egress(&self, i: usize, what: &str, filter: (&str, &str, &str), nft: &str) {
        let ns = &self.host(i).ns;
        let (protocol, prio, bytecode) = filter;
        // The qdisc may exist already (another drop_egress); the filter is what matters.
        let _ = ns_exec(
            ns,
            &["tc", "qdisc", "add", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let tc = ns_exec(
            ns,
            &[
                "tc", "filter", "add", "dev", "eth0", "egress", "protocol", protocol, "prio", prio,
                "bpf", "da", "bytecode", bytecode,
            ],
            CMD_TIMEOUT,
        );
        if tc.ok() {
            return;
        }
        let fallback = ns_exec(ns, &["nft", nft], CMD_TIMEOUT);
        assert!(
            fallback.ok(),
            "cannot block outgoing {what} on {ns}: tc: {} nft: {}",
            tc.stderr,
            fallback.stderr
        );
    }

    /// Undoes `block_igmp_out`: removes the clsact qdisc (and its filter) from host `i`'s
    /// eth0, or the nftables table of the fallback.
    pub fn unblock_igmp_out(&self, i: usize) {
        let ns = &self.host(i).ns;
        let tc = ns_exec(
            ns,
            &["tc", "qdisc", "del", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let nft = ns_exec(ns, &["nft", "delete", "table", "ip", "sc"], CMD_TIMEOUT);
        assert!(
            tc.ok() || nft.ok(),
            "cannot unblock IGMP on {ns}: tc: {} nft: {}",
            tc.stderr,
            nft.stderr
        );
    }

    /// `ip link set eth0 up|down` in host `i`. Taking eth0 down deletes its routes: on up,
    /// the 224.0.0.0/4 route is put back.
    pub fn set_host_link(&self, i: usize, up: bool) {
        let ns = &self.host(i).ns;
        let state = if up { "up" } else { "down" };
        ns_run(ns, &["ip", "link", "set", "eth0", state]);
        if up {
            ns_run(
                ns,
                &["ip", "route", "replace", "224.0.0.0/4", "dev", "eth0"],
            );
        }
    }

    /// The IPv6 groups the box's kernel has joined on `iface` (see `kernel_groups6_in`).
    pub fn kernel_groups6(&self, iface: &str) -> Vec<(String, u32)> {
        kernel_groups6_in(&self.box_ns(), iface)
    }

    /// The IPv6 addresses of `iface` in `ns` with scope `scope` ("link" or "global").
    pub fn ipv6_addrs(ns: &str, iface: &str, scope: &str) -> Vec<String> {
        let out = ns_run(
            ns,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", iface, "scope", scope,
            ],
        );
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|&x| x == "inet6")?;
                w.next()?.split('/').next().map(str::to_string)
            })
            .collect()
    }

    /// Host `i`'s link-local address on eth0 (the source of its MLD reports, and the `ip`
    /// snoopcast lists for it).
    pub fn host_ll6(&self, i: usize) -> String {
        let ns = &self.host(i).ns;
        Self::ipv6_addrs(ns, "eth0", "link")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("h{i} has no link-local address on eth0"))
    }

    /// Sets host `i`'s force_mld_version (0: the kernel's choice, 1, 2) at run time.
    pub fn set_mld_version(&self, i: usize, v: u8) {
        let ns = self.host(i).ns.clone();
        ns_sysctl(&ns, "net.ipv6.conf.eth0.force_mld_version", &v.to_string());
    }

    /// Waits until every host's eth0 and the box's downstreams have a usable (not
    /// tentative) link-local address, and s0/up0 their global ones.
    pub(super) fn wait_ipv6_ready(&self) {
        let mut want: Vec<(String, String, &str)> = self
            .hosts
            .iter()
            .map(|h| (h.ns.clone(), "eth0".to_string(), "link"))
            .collect();
        for dn in self.downstream_ifs() {
            want.push((self.box_ns(), dn, "link"));
        }
        if self.upstream == Upstream::Veth {
            want.push((self.src_ns(), "s0".into(), "global"));
        }
        if self.upstream != Upstream::Tun && self.box_mode == BoxMode::Snoopcast {
            want.push((self.box_ns(), "up0".into(), "global"));
        }
        let mut missing = Vec::new();
        let ok = wait_until(Duration::from_secs(5), || {
            missing.clear();
            for (ns, iface, scope) in &want {
                let out = run(&["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", iface]);
                let ready = out
                    .lines()
                    .any(|l| l.contains(&format!("scope {scope}")) && !l.contains("tentative"));
                if !ready {
                    missing.push(format!("{ns}/{iface} ({scope})"));
                }
            }
            missing.is_empty()
        });
        assert!(ok, "IPv6 addresses not ready after 5 s: {missing:?}");
    }

    /// Makes host `i` silent for MLD, the IPv6 twin of `block_igmp_out`: a tc clsact egress
    /// filter on its eth0 drops every outgoing IPv6 frame whose first next header is
    /// hop-by-hop (0), which every MLD message has (its Router Alert, RFC 3810 5) and
    /// neighbour discovery has not:
    ///   ldb [20]; jeq #0, drop, pass; drop: ret #2 (TC_ACT_SHOT); pass: ret #0 (TC_ACT_OK)
    /// Offset 20 = 14 (Ethernet) + 6 (IPv6 next header). Undo with `unblock_mld_out`.
    pub fn block_mld_out(&self, i: usize) {
        self.drop_egress(
            i,
            "MLD",
            ("ipv6", "2", "4,48 0 0 20,21 0 1 0,6 0 0 2,6 0 0 0"),
            "add table ip6 sc6; add chain ip6 sc6 out { type filter hook output priority 0; }; \
             add rule ip6 sc6 out icmpv6 type { mld-listener-report, mld-listener-done, \
             mld2-listener-report } drop",
        );
    }

    /// Undoes `block_mld_out` (and `block_igmp_out`: they share the clsact qdisc).
    pub fn unblock_mld_out(&self, i: usize) {
        let ns = &self.host(i).ns;
        let tc = ns_exec(
            ns,
            &["tc", "qdisc", "del", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let nft = ns_exec(ns, &["nft", "delete", "table", "ip6", "sc6"], CMD_TIMEOUT);
        assert!(
            tc.ok() || nft.ok(),
            "cannot unblock MLD on {ns}: tc: {} nft: {}",
            tc.stderr,
            nft.stderr
        );
    }
}
