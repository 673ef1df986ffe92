//! The address family of a twin test: the IPv4 and IPv6 end-to-end tests that differ only in
//! addresses, protocol versions and status field names run one body (tests/twins) with a
//! `Fam` — `V4` from e2e_ipv4.rs / e2e_topologies.rs, `V6` from e2e_ipv6.rs.
//!
//! What really differs between IGMP and MLD is said here, not in the bodies: IGMPv3/MLDv2
//! are the current versions and IGMPv2/MLDv1 the old ones whose groups go to compatibility
//! mode; an IGMPv2 Leave and an MLDv1 Done both end a membership at once; IPv6 members are
//! listed with their link-local address, and only IPv6 has an extension header to put
//! before UDP in the data (hop-by-hop).

use super::*;
use serde_json::Value;

/// ICMPv6 types of MLD messages (RFC 2710 3.6, RFC 3810 5).
pub const MLD_V1_REPORT: u8 = 131;
pub const MLD_DONE: u8 = 132;
pub const MLD_V2_REPORT: u8 = 143;

#[derive(Debug, Clone, Copy)]
pub struct Fam {
    /// "IPv4" or "IPv6", for messages.
    pub name: &'static str,
    /// What the LAN tags of its tests start with: "v4" or "v6".
    pub tag: &'static str,
    /// `LanBuilder::ipv6`.
    pub ipv6: bool,
    /// The membership protocol, for messages: "IGMP" or "MLD".
    pub proto: &'static str,
    /// Two any-source groups and a source-specific one (232/8, ff3x::/32).
    pub g1: &'static str,
    pub g2: &'static str,
    pub ssm: &'static str,
    /// s0's address (the default source) and a second one, given to `LanBuilder::src_addr`
    /// as `s2_cidr`.
    pub s1: &'static str,
    pub s2: &'static str,
    pub s2_cidr: &'static str,
    /// up0's address: the source of a sender on the box itself (`dummy_upstream`).
    pub up0_addr: &'static str,
    /// The current version (IGMPv3, MLDv2) and the old one (IGMPv2, MLDv1).
    pub version: u8,
    pub old_version: u8,
    /// "IGMPv2" or "MLDv1", for messages.
    pub old_name: &'static str,
    /// The member field with the version of its last report.
    pub version_field: &'static str,
    /// snoopcast's option for the version of its queries.
    pub version_opt: &'static str,
    /// Counters: current-version reports, old-version reports, old-version leaves (IGMPv2
    /// Leave, MLDv1 Done), queries sent.
    pub reports_counter: &'static str,
    pub old_reports_counter: &'static str,
    pub leaves_counter: &'static str,
    pub queries_sent_counter: &'static str,
    /// The `interfaces[]` field with snoopcast's querier role there.
    pub querier_field: &'static str,
    /// The name of the membership timeout, for messages: "GMI" or "MALI".
    pub gmi_name: &'static str,
    /// How many groups the many-groups test joins (IPv6: more than one join socket holds).
    pub many: usize,
    /// The mcast_send.py option that puts an extension header before UDP, where the family
    /// has one (IPv6's hop-by-hop options header).
    pub ext_header_opt: Option<&'static str>,
}

pub const V4: Fam = Fam {
    name: "IPv4",
    tag: "v4",
    ipv6: false,
    proto: "IGMP",
    g1: "239.1.1.1",
    g2: "239.1.1.2",
    ssm: "232.1.1.1",
    s1: "10.1.0.1",
    s2: "10.1.0.3",
    s2_cidr: "10.1.0.3/24",
    up0_addr: "10.1.0.2",
    version: 3,
    old_version: 2,
    old_name: "IGMPv2",
    version_field: "igmp_version",
    version_opt: "--igmp-version",
    reports_counter: "reports_v3",
    old_reports_counter: "reports_v2",
    leaves_counter: "leaves_v2",
    queries_sent_counter: "queries_sent",
    querier_field: "querier",
    gmi_name: "GMI",
    many: 40,
    ext_header_opt: None,
};

pub const V6: Fam = Fam {
    name: "IPv6",
    tag: "v6",
    ipv6: true,
    proto: "MLD",
    g1: "ff0e::1:1",
    g2: "ff0e::1:2",
    ssm: "ff3e::1",
    s1: "fd00:1::1",
    s2: "fd00:1::9",
    s2_cidr: "fd00:1::9/64",
    up0_addr: "fd00:1::2",
    version: 2,
    old_version: 1,
    old_name: "MLDv1",
    version_field: "mld_version",
    version_opt: "--mld-version",
    reports_counter: "mld_reports_v2",
    old_reports_counter: "mld_reports_v1",
    leaves_counter: "mld_dones",
    queries_sent_counter: "mld_queries_sent",
    querier_field: "mld_querier",
    gmi_name: "MALI",
    many: 60,
    ext_header_opt: Some("--hop-by-hop"),
};

impl Fam {
    /// A LAN tagged `<tag><what>` (e.g. `v6leave`) with `hosts` hosts, IPv6 on for V6.
    pub fn lan(&self, what: &str, hosts: usize) -> LanBuilder {
        Lan::builder(&format!("{}{what}", self.tag))
            .hosts(hosts)
            .ipv6(self.ipv6)
    }

    /// Forces host `i` to the old version (force_igmp_version=2, force_mld_version=1).
    pub fn old_host(&self, b: LanBuilder, i: usize) -> LanBuilder {
        if self.ipv6 {
            b.mld_version(i, self.old_version)
        } else {
            b.igmp_version(i, self.old_version)
        }
    }

    /// The `i`-th (1-based) group of the many-groups test: 239.2.0.i or ff0e::2:i.
    pub fn many_group(&self, i: usize) -> String {
        if self.ipv6 {
            format!("ff0e::2:{i:x}")
        } else {
            assert!(i <= 254, "239.2.0.{i}");
            format!("239.2.0.{i}")
        }
    }

    /// The address snoopcast lists for host `i` (`ip`): eth0's IPv4 address, or its
    /// link-local IPv6 address, the source of its MLD reports (RFC 3810 5.2.13).
    pub fn member_ip(&self, lan: &Lan, i: usize) -> String {
        if self.ipv6 {
            lan.host_ll6(i)
        } else {
            lan.host(i).ip.clone()
        }
    }

    /// The groups the box kernel has joined on `iface` (/proc/net/igmp or igmp6).
    pub fn kernel_groups(&self, lan: &Lan, iface: &str) -> Vec<(String, u32)> {
        if self.ipv6 {
            lan.kernel_groups6(iface)
        } else {
            lan.kernel_groups(iface)
        }
    }

    pub fn kernel_has(&self, lan: &Lan, iface: &str, group: &str) -> bool {
        self.kernel_groups(lan, iface)
            .iter()
            .any(|(g, _)| g == group)
    }

    /// Makes host `i` silent for the family's membership protocol (`Lan::block_igmp_out`,
    /// `Lan::block_mld_out`).
    pub fn block_out(&self, lan: &Lan, i: usize) {
        if self.ipv6 {
            lan.block_mld_out(i)
        } else {
            lan.block_igmp_out(i)
        }
    }

    /// Membership messages the host sent since its agent's mark (after tc egress).
    pub fn out_since_mark(&self, r: &AgentReport) -> u64 {
        if self.ipv6 {
            r.mld_out_since_mark()
        } else {
            r.igmp_out_since_mark()
        }
    }

    /// Membership messages the host heard (queries, other hosts' reports).
    pub fn heard(&self, r: &AgentReport) -> u64 {
        if self.ipv6 {
            r.mld_in()
        } else {
            r.igmp_in()
        }
    }

    /// The host's kernel sent current-version reports. (The agent tells MLD messages by
    /// type; IGMP only by count, so for IPv4 any outgoing IGMP counts.)
    pub fn sent_reports(&self, r: &AgentReport) -> bool {
        if self.ipv6 {
            r.mld_out_type(MLD_V2_REPORT) >= 1
        } else {
            r.igmp_out() >= 1
        }
    }

    /// The host spoke the old version: reports and a leave (for IPv6 by type and no MLDv2
    /// report; for IPv4 at least two IGMP messages, the version is in the status).
    pub fn spoke_old_version_and_left(&self, r: &AgentReport) -> bool {
        if self.ipv6 {
            r.mld_out_type(MLD_V1_REPORT) >= 1
                && r.mld_out_type(MLD_DONE) >= 1
                && r.mld_out_type(MLD_V2_REPORT) == 0
        } else {
            r.igmp_out() >= 2
        }
    }

    /// What the agent says about the messages it sent, for assertion messages.
    pub fn out_types(&self, r: &AgentReport) -> String {
        if self.ipv6 {
            r.json["mld_out_types"].to_string()
        } else {
            format!("{} IGMP out", r.igmp_out())
        }
    }

    /// snoopcast's querier on `iface` (its `interfaces[]` entry `dn`) queries from the
    /// right source: the interface's link-local address for MLD (RFC 3810 5.1.14), for
    /// IGMP the interface's IPv4 address, 0.0.0.0 on the test LAN's downstreams (they have
    /// none).
    pub fn query_source_ok(&self, lan: &Lan, iface: &str, dn: &Value) -> Result<(), String> {
        let (field, want) = if self.ipv6 {
            let ll = Lan::ipv6_addrs(&lan.box_ns(), iface, "link");
            ("query_source6", ll)
        } else {
            ("query_source", vec!["0.0.0.0".to_string()])
        };
        if dn[field]
            .as_str()
            .is_some_and(|q| want.iter().any(|a| a == q))
        {
            Ok(())
        } else {
            Err(format!(
                "{iface} {field} is {}, not one of {want:?}",
                dn[field]
            ))
        }
    }
}

/// The groups `upstream.joined` lists (strings or objects with a `group` key).
pub fn upstream_joined(status: &Value) -> Vec<String> {
    status["upstream"]["joined"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| {
            j.as_str()
                .or_else(|| j["group"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// A counter of the status snapshot (0 when absent).
pub fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap_or(0)
}

/// The member's `sources` include `src`.
pub fn has_source(m: &Value, src: &str) -> bool {
    m["sources"]
        .as_array()
        .is_some_and(|v| v.iter().any(|s| s == src))
}

/// The `multicast_on` entries (compatibility mode) of `group`.
pub fn compat_of(status: &Value, group: &str) -> Vec<Value> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["group"] == group)
        .flat_map(|e| e["multicast_on"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The `interfaces[]` entry called `name` (Null when it is not listed).
pub fn iface_status(status: &Value, name: &str) -> Value {
    status["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}
