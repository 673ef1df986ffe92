//! The status snapshot: what the control socket sends and `snoopcast status` prints.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: String,
    pub uptime_ms: u64,
    pub groups: Vec<GroupStatus>,
    pub upstream: UpstreamStatus,
    pub interfaces: Vec<InterfaceStatus>,
    pub counters: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: String,
    /// Interfaces where the group goes out as one L2 multicast copy (IGMPv1/v2 hosts).
    #[serde(default)]
    pub multicast_on: Vec<CompatStatus>,
    pub members: Vec<MemberStatus>,
    /// What arrived on the upstream for this group since it appeared in the table.
    #[serde(default)]
    pub upstream: GroupTraffic,
}

/// A group's traffic as it arrives on the upstream interface (before any copy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTraffic {
    /// Multicast data packets of the group read on the upstream.
    pub packets: u64,
    /// Their IP bytes (the IP packet, as the members' `bytes`).
    pub bytes: u64,
    /// Milliseconds since the last one; None when none has arrived yet.
    pub last_packet_ms_ago: Option<u64>,
}

/// A querier heard on an interface: its address, IGMP/MLD version and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeardQuerier {
    pub address: String,
    /// IGMP 1, 2 or 3; MLD 1 or 2.
    pub version: u8,
    pub last_seen_ms_ago: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatStatus {
    pub interface: String,
    /// "multicast" (sent as L2 multicast) or "unicast" (compat seen, policy keeps unicast).
    pub delivery: String,
    pub expires_in_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub interface: String,
    pub mac: String,
    pub ip: String,
    /// "include" or "exclude".
    pub mode: String,
    pub sources: Vec<String>,
    /// IGMP version of its last report (IPv4 groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub igmp_version: Option<u8>,
    /// MLD version of its last report (IPv6 groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mld_version: Option<u8>,
    pub expires_in_ms: u64,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub interface: String,
    /// "up" while open, "down" while missing or down.
    #[serde(default)]
    pub state: String,
    pub joined: Vec<JoinStatus>,
    /// Kernel sockets holding the memberships.
    pub sockets: usize,
    /// The last IGMP general query heard on the upstream, if any.
    #[serde(default)]
    pub querier: Option<HeardQuerier>,
    /// The last MLD general query heard on the upstream, if any.
    #[serde(default)]
    pub mld_querier: Option<HeardQuerier>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinStatus {
    pub group: String,
    /// Empty for an any-source (*, G) join.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// "up" while open, "down" while missing or down.
    #[serde(default)]
    pub state: String,
    pub query_source: String,
    /// "querier", "non-querier", or "off".
    pub querier: String,
    /// The other querier heard, if any.
    pub other_querier: Option<String>,
    /// The IGMP version (1, 2, 3) of the other querier's last query.
    #[serde(default)]
    pub other_querier_version: Option<u8>,
    pub compat_fallback: String,
    /// The MLD querier: its source (the interface's link-local address; None without one or
    /// with IPv6 off), role and the other MLD querier heard.
    #[serde(default)]
    pub query_source6: Option<String>,
    #[serde(default)]
    pub mld_querier: String,
    #[serde(default)]
    pub mld_other_querier: Option<String>,
    /// The MLD version (1, 2) of the other MLD querier's last query.
    #[serde(default)]
    pub mld_other_querier_version: Option<u8>,
}

fn secs(ms: u64) -> String {
    format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
}

/// The human-readable table of `snoopcast status`.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "snoopcast {} up {}",
        s.version,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_ms / 1000))
    );
    let _ = writeln!(o);
    let head = [
        "GROUP",
        "HOST MAC",
        "HOST IP",
        "INTERFACE",
        "FILTER",
        "EXPIRES",
        "PACKETS",
        "BYTES",
    ];
    let mut rows: Vec<[String; 8]> = vec![];
    for g in &s.groups {
        for m in &g.members {
            let filter = if m.sources.is_empty() {
                format!("{}{{}}", m.mode)
            } else {
                format!("{}{{{}}}", m.mode, m.sources.join(","))
            };
            let filter = match (m.igmp_version, m.mld_version) {
                (Some(v), _) if v < 3 => format!("{filter} v{v}"),
                (_, Some(v)) if v < 2 => format!("{filter} MLDv{v}"),
                _ => filter,
            };
            rows.push([
                g.group.clone(),
                m.mac.clone(),
                m.ip.clone(),
                m.interface.clone(),
                filter,
                secs(m.expires_in_ms),
                m.packets.to_string(),
                m.bytes.to_string(),
            ]);
        }
    }
    if rows.is_empty() {
        let _ = writeln!(o, "No members.");
    } else {
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                let _ = if i >= 6 {
                    write!(l, "{:>1$}  ", c, w[i])
                } else {
                    write!(l, "{:<1$}  ", c, w[i])
                };
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(o, "{}", line(head.to_vec()));
        for r in &rows {
            let _ = writeln!(o, "{}", line(r.iter().map(String::as_str).collect()));
        }
    }
    let compat: Vec<_> = s
        .groups
        .iter()
        .flat_map(|g| g.multicast_on.iter().map(move |c| (g, c)))
        .collect();
    if !compat.is_empty() {
        let _ = writeln!(o, "\nOlder-version hosts present (IGMPv1/v2, MLDv1):");
        for (g, c) in compat {
            let _ = writeln!(
                o,
                "  {} on {}: sent as {} (compat ends in {})",
                g.group,
                c.interface,
                if c.delivery == "multicast" {
                    "L2 multicast"
                } else {
                    "unicast copies"
                },
                secs(c.expires_in_ms)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nUpstream {} ({}, {} join sockets):",
        s.upstream.interface, s.upstream.state, s.upstream.sockets
    );
    if s.upstream.joined.is_empty() {
        let _ = writeln!(o, "  nothing joined");
    }
    for j in &s.upstream.joined {
        if j.sources.is_empty() {
            let _ = writeln!(o, "  {} any source", j.group);
        } else {
            let _ = writeln!(o, "  {} from {}", j.group, j.sources.join(", "));
        }
    }
    let _ = writeln!(o, "\nDownstream interfaces:");
    for i in &s.interfaces {
        let other = i
            .other_querier
            .as_deref()
            .map(|q| format!(", querier heard: {q}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} ({}): {} (query source {}{}), older-host fallback {}",
            i.name, i.state, i.querier, i.query_source, other, i.compat_fallback
        );
        if !i.mld_querier.is_empty() {
            let other = i
                .mld_other_querier
                .as_deref()
                .map(|q| format!(", querier heard: {q}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {} MLD: {} (query source {}{})",
                i.name,
                i.mld_querier,
                i.query_source6.as_deref().unwrap_or("none"),
                other
            );
        }
    }
    let _ = writeln!(o, "\nCounters:");
    for (k, v) in &s.counters {
        let _ = writeln!(o, "  {k:<24} {v}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            version: "0.1.0".into(),
            uptime_ms: 61_000,
            groups: vec![GroupStatus {
                group: "239.1.1.1".into(),
                multicast_on: vec![CompatStatus {
                    interface: "dn0".into(),
                    delivery: "multicast".into(),
                    expires_in_ms: 5000,
                }],
                members: vec![MemberStatus {
                    interface: "dn0".into(),
                    mac: "aa:bb:cc:dd:ee:ff".into(),
                    ip: "10.2.0.11".into(),
                    mode: "exclude".into(),
                    sources: vec![],
                    igmp_version: Some(3),
                    mld_version: None,
                    expires_in_ms: 1234,
                    packets: 10,
                    bytes: 13160,
                }],
                upstream: GroupTraffic::default(),
            }],
            upstream: UpstreamStatus {
                interface: "up0".into(),
                state: "up".into(),
                joined: vec![JoinStatus {
                    group: "239.1.1.1".into(),
                    sources: vec![],
                }],
                sockets: 1,
                ..Default::default()
            },
            interfaces: vec![InterfaceStatus {
                name: "dn0".into(),
                state: "up".into(),
                query_source: "0.0.0.0".into(),
                querier: "querier".into(),
                other_querier: None,
                compat_fallback: "multicast".into(),
                query_source6: Some("fe80::1".into()),
                mld_querier: "querier".into(),
                mld_other_querier: None,
                ..Default::default()
            }],
            counters: [("copies_sent".to_string(), 10u64)].into(),
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        let m = &v["groups"][0]["members"][0];
        assert_eq!(v["groups"][0]["group"], "239.1.1.1");
        for k in [
            "interface",
            "mac",
            "ip",
            "mode",
            "sources",
            "expires_in_ms",
            "packets",
            "bytes",
        ] {
            assert!(m.get(k).is_some(), "member field {k}");
        }
        assert_eq!(v["upstream"]["interface"], "up0");
        assert!(v["upstream"]["joined"].is_array());
        assert_eq!(v["counters"]["copies_sent"], 10);
        let back: Snapshot = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn table_shows_members_and_compat() {
        let t = render(&sample());
        assert!(
            t.contains("GROUP") && t.contains("HOST MAC") && t.contains("EXPIRES"),
            "{t}"
        );
        assert!(
            t.contains("aa:bb:cc:dd:ee:ff") && t.contains("exclude{}") && t.contains("1.2s"),
            "{t}"
        );
        assert!(t.contains("L2 multicast"), "{t}");
        assert!(t.contains("239.1.1.1 any source"), "{t}");
    }
}
