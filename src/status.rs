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
    /// The settings the daemon runs with now (after any reload); None from a daemon older
    /// than this field.
    #[serde(default)]
    pub settings: Option<DaemonSettings>,
}

/// The daemon's running settings that `snoopcast doctor` checks (timers, versions, IPv6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSettings {
    pub query_interval_ms: u64,
    pub query_response_interval_ms: u64,
    pub robustness: u32,
    /// IGMP version of the queries it sends (2 or 3).
    pub igmp_version: u8,
    /// MLD version of the queries it sends (1 or 2).
    pub mld_version: u8,
    /// False under --no-ipv6.
    pub ipv6: bool,
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
    /// Where several hosts report from behind this one MAC: every address with its own
    /// filter (`mode` and `sources` above are then their union); absent for one address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddressFilter>,
}

/// One address's own filter of a member shared by several hosts behind one MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFilter {
    pub ip: String,
    pub mode: String,
    pub sources: Vec<String>,
    pub expires_in_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub interface: String,
    /// "up" while open, "down" while missing or down.
    #[serde(default)]
    pub state: String,
    /// What snoopcast reports upstream for the members (RFC 4605 4.1 merge), per group.
    pub joined: Vec<JoinStatus>,
    /// The IGMP version of the reports it sends: 3, or 2 / 1 while an older querier is
    /// present upstream (RFC 3376 7.2.1).
    #[serde(default)]
    pub report_version: u8,
    /// The MLD version of its reports: 2, or 1 while an MLDv1 querier is present.
    #[serde(default)]
    pub mld_report_version: u8,
    /// The last IGMP query heard upstream (general or group-specific).
    #[serde(default)]
    pub last_query: Option<QueryHeard>,
    #[serde(default)]
    pub mld_last_query: Option<QueryHeard>,
    /// The last IGMP report sent upstream.
    #[serde(default)]
    pub last_report: Option<ReportSent>,
    #[serde(default)]
    pub mld_last_report: Option<ReportSent>,
    /// The last IGMP general query heard on the upstream, if any.
    #[serde(default)]
    pub querier: Option<HeardQuerier>,
    /// The last MLD general query heard on the upstream, if any.
    #[serde(default)]
    pub mld_querier: Option<HeardQuerier>,
    /// The version of `querier` (IGMPv1/v2 here turns source-specific joins into
    /// any-source ones); None while none is heard.
    #[serde(default)]
    pub querier_version: Option<u8>,
    /// The version of `mld_querier` (MLDv1 likewise).
    #[serde(default)]
    pub mld_querier_version: Option<u8>,
}

/// A query heard upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryHeard {
    pub address: String,
    pub version: u8,
    /// The group of a group-specific query; None for a general query.
    pub group: Option<String>,
    pub ms_ago: u64,
}

/// A report sent upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSent {
    /// "state-change", "current-state" (an answer to a query) or "leave".
    pub kind: String,
    pub version: u8,
    /// Group records it carried.
    pub records: usize,
    pub ms_ago: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinStatus {
    pub group: String,
    /// Kept only by --upstream-leave-delay: the members left, it is left in this long.
    #[serde(default)]
    pub leaving_in_ms: Option<u64>,
    /// Empty for an any-source (*, G) join.
    pub sources: Vec<String>,
    /// The sources an any-source join blocks (EXCLUDE mode, RFC 4605 4.1); empty for none.
    #[serde(default)]
    pub exclude: Vec<String>,
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
    /// An IGMP querier of an older version than ours heard here (any address, 0.0.0.0
    /// included) within the last Other Querier Present Interval.
    #[serde(default)]
    pub older_querier: Option<HeardQuerier>,
    /// The same for MLD (an MLDv1 querier).
    #[serde(default)]
    pub mld_older_querier: Option<HeardQuerier>,
    /// The IGMP timers the interface's membership runs by now.
    #[serde(default)]
    pub timers: Option<LinkTimers>,
    /// The MLD timers (None with IPv6 off).
    #[serde(default)]
    pub mld_timers: Option<LinkTimers>,
}

/// The timers an interface runs by: configured, or adopted from the elected querier's
/// queries while snoopcast is not the querier (RFC 3376 4.1.6, 4.1.7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTimers {
    pub robustness: u32,
    pub query_interval_ms: u64,
    pub query_response_interval_ms: u64,
    /// Group Membership Interval: robustness x QI + 2 x QRI.
    pub membership_interval_ms: u64,
    /// "configured" or "adopted".
    pub source: String,
}

fn secs(ms: u64) -> String {
    format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
}

/// A joined group whose last upstream packet is older than this is shown as "no traffic".
pub const NO_TRAFFIC_AFTER_MS: u64 = 5_000;

impl GroupTraffic {
    /// Whether the text view calls the group silent: nothing yet, or nothing for
    /// [`NO_TRAFFIC_AFTER_MS`].
    pub fn silent(&self) -> bool {
        self.last_packet_ms_ago
            .is_none_or(|ms| ms > NO_TRAFFIC_AFTER_MS)
    }
}

/// What `status --group`/`--interface` keep: the groups named (all when none), their
/// members on the interfaces named (all when none), and those interfaces. A group left
/// without members by the interface filter is dropped unless it goes out as L2 multicast
/// there. Counters and the upstream stay whole (they are daemon-wide).
pub fn filter(s: &Snapshot, groups: &[std::net::IpAddr], ifaces: &[String]) -> Snapshot {
    let group_ok = |g: &str| {
        groups.is_empty()
            || g.parse::<std::net::IpAddr>()
                .is_ok_and(|a| groups.contains(&a))
    };
    let iface_ok = |i: &str| ifaces.is_empty() || ifaces.iter().any(|f| f == i);
    let mut out = s.clone();
    out.groups = s
        .groups
        .iter()
        .filter(|g| group_ok(&g.group))
        .filter_map(|g| {
            let mut g = g.clone();
            g.members.retain(|m| iface_ok(&m.interface));
            g.multicast_on.retain(|c| iface_ok(&c.interface));
            let keep = ifaces.is_empty() || !g.members.is_empty() || !g.multicast_on.is_empty();
            keep.then_some(g)
        })
        .collect();
    out.interfaces.retain(|i| iface_ok(&i.name));
    if !groups.is_empty() {
        out.upstream.joined.retain(|j| group_ok(&j.group));
    }
    out
}

/// Packets and bytes per second between two snapshots of the same daemon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub packets: f64,
    pub bytes: f64,
}

/// Rates of every member and group present in both snapshots, from their counters and the
/// daemon's uptime (so the interval is the daemon's, not the polling's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// By (interface, mac, group).
    pub members: BTreeMap<(String, String, String), Rate>,
    /// By group: what arrived upstream.
    pub groups: BTreeMap<String, Rate>,
}

impl Rates {
    /// None when `now` is not later than `before` (a restarted daemon, or the same one).
    pub fn between(before: &Snapshot, now: &Snapshot) -> Option<Rates> {
        if now.uptime_ms <= before.uptime_ms {
            return None;
        }
        let dt = (now.uptime_ms - before.uptime_ms) as f64 / 1000.0;
        let rate = |p0: u64, b0: u64, p1: u64, b1: u64| Rate {
            packets: p1.saturating_sub(p0) as f64 / dt,
            bytes: b1.saturating_sub(b0) as f64 / dt,
        };
        let mut old_members = BTreeMap::new();
        let mut old_groups = BTreeMap::new();
        for g in &before.groups {
            old_groups.insert(g.group.as_str(), &g.upstream);
            for m in &g.members {
                old_members.insert((m.interface.as_str(), m.mac.as_str(), g.group.as_str()), m);
            }
        }
        let mut r = Rates::default();
        for g in &now.groups {
            if let Some(o) = old_groups.get(g.group.as_str()) {
                r.groups.insert(
                    g.group.clone(),
                    rate(o.packets, o.bytes, g.upstream.packets, g.upstream.bytes),
                );
            }
            for m in &g.members {
                let key = (m.interface.as_str(), m.mac.as_str(), g.group.as_str());
                if let Some(o) = old_members.get(&key) {
                    r.members.insert(
                        (m.interface.clone(), m.mac.clone(), g.group.clone()),
                        rate(o.packets, o.bytes, m.packets, m.bytes),
                    );
                }
            }
        }
        Some(r)
    }
}

/// How `status` prints the text view.
#[derive(Debug, Clone, Copy, Default)]
pub struct View<'a> {
    /// Every counter, also those at 0 (`--all-counters`).
    pub all_counters: bool,
    /// Only the member rows, without title, headers or the other sections (`--no-headers`).
    pub no_headers: bool,
    /// Rates from the previous snapshot (`--watch`): extra columns.
    pub rates: Option<&'a Rates>,
}

/// Packets or bits per second, short: 950, 12.3k, 4.56M.
fn per_sec(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Left-aligned columns, the numeric ones (from `right_from`) right-aligned.
fn table(head: &[&str], rows: &[Vec<String>], right_from: usize, headers: bool) -> String {
    let mut w: Vec<usize> = head
        .iter()
        .map(|h| if headers { h.len() } else { 0 })
        .collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            let _ = if i >= right_from {
                write!(l, "{:>1$}  ", c, w[i])
            } else {
                write!(l, "{:<1$}  ", c, w[i])
            };
        }
        l.trim_end().to_string() + "\n"
    };
    let mut o = String::new();
    if headers {
        o += &line(&mut head.iter().copied());
    }
    for r in rows {
        o += &line(&mut r.iter().map(String::as_str));
    }
    o
}

fn member_rows(s: &Snapshot, rates: Option<&Rates>) -> Vec<Vec<String>> {
    let mut rows = vec![];
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
            let mut row = vec![
                g.group.clone(),
                m.mac.clone(),
                m.ip.clone(),
                m.interface.clone(),
                filter,
                secs(m.expires_in_ms),
                m.packets.to_string(),
                m.bytes.to_string(),
            ];
            if let Some(r) = rates {
                let key = (m.interface.clone(), m.mac.clone(), g.group.clone());
                match r.members.get(&key) {
                    Some(r) => row.extend([per_sec(r.packets), per_sec(r.bytes * 8.0)]),
                    None => row.extend(["-".into(), "-".into()]),
                }
            }
            rows.push(row);
        }
    }
    rows
}

/// The human-readable view of `snoopcast status`.
pub fn render(s: &Snapshot, v: &View) -> String {
    let mut head = vec![
        "GROUP",
        "HOST MAC",
        "HOST IP",
        "INTERFACE",
        "FILTER",
        "EXPIRES",
        "PACKETS",
        "BYTES",
    ];
    if v.rates.is_some() {
        head.extend(["PKT/S", "BIT/S"]);
    }
    let rows = member_rows(s, v.rates);
    if v.no_headers {
        return table(&head, &rows, 6, false);
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "snoopcast {} up {}",
        s.version,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_ms / 1000))
    );
    let _ = writeln!(o);
    if rows.is_empty() {
        let _ = writeln!(o, "No members.");
    } else {
        o += &table(&head, &rows, 6, true);
    }
    if !s.groups.is_empty() {
        let _ = writeln!(o, "\nGroups, as they arrive upstream:");
        let mut head = vec!["GROUP", "MEMBERS", "PACKETS", "BYTES", "LAST PACKET"];
        if v.rates.is_some() {
            head.extend(["PKT/S", "BIT/S"]);
        }
        let rows: Vec<Vec<String>> = s
            .groups
            .iter()
            .map(|g| {
                let u = &g.upstream;
                let last = match u.last_packet_ms_ago {
                    Some(ms) if !u.silent() => format!("{} ago", secs(ms)),
                    Some(ms) => format!("no traffic ({} ago)", secs(ms)),
                    None => "no traffic".into(),
                };
                let mut row = vec![
                    g.group.clone(),
                    g.members.len().to_string(),
                    u.packets.to_string(),
                    u.bytes.to_string(),
                    last,
                ];
                if let Some(r) = v.rates {
                    match r.groups.get(&g.group) {
                        Some(r) => row.extend([per_sec(r.packets), per_sec(r.bytes * 8.0)]),
                        None => row.extend(["-".into(), "-".into()]),
                    }
                }
                row
            })
            .collect();
        for line in table(&head, &rows, 1, true).lines() {
            let _ = writeln!(o, "  {line}");
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
        "\nUpstream {} ({}, reports in IGMPv{}{}):",
        s.upstream.interface,
        s.upstream.state,
        s.upstream.report_version,
        if s.upstream.mld_report_version > 0 {
            format!(" and MLDv{}", s.upstream.mld_report_version)
        } else {
            String::new()
        }
    );
    for (proto, r) in [
        ("IGMP", &s.upstream.last_report),
        ("MLD", &s.upstream.mld_last_report),
    ] {
        if let Some(r) = r {
            let _ = writeln!(
                o,
                "  last {proto} report: {} ({} records) {} ago",
                r.kind,
                r.records,
                secs(r.ms_ago)
            );
        }
    }
    for (proto, q) in [
        ("IGMP", &s.upstream.querier),
        ("MLD", &s.upstream.mld_querier),
    ] {
        if let Some(q) = q {
            let v = if proto == "IGMP" { "v" } else { "MLDv" };
            let _ = writeln!(
                o,
                "  {proto} querier {} ({v}{}), last query {} ago",
                q.address,
                q.version,
                secs(q.last_seen_ms_ago)
            );
        }
    }
    if s.upstream.joined.is_empty() {
        let _ = writeln!(o, "  nothing reported");
    }
    for j in &s.upstream.joined {
        if let Some(ms) = j.leaving_in_ms {
            let _ = writeln!(o, "  {} (members gone; leaving in {})", j.group, secs(ms));
        } else if !j.exclude.is_empty() {
            let _ = writeln!(
                o,
                "  {} any source except {}",
                j.group,
                j.exclude.join(", ")
            );
        } else if j.sources.is_empty() {
            let _ = writeln!(o, "  {} any source", j.group);
        } else {
            let _ = writeln!(o, "  {} from {}", j.group, j.sources.join(", "));
        }
    }
    let _ = writeln!(o, "\nDownstream interfaces:");
    let heard = |q: &Option<String>, v: Option<u8>, prefix: &str| {
        q.as_deref()
            .map(|q| match v {
                Some(v) => format!(", querier heard: {q} ({prefix}{v})"),
                None => format!(", querier heard: {q}"),
            })
            .unwrap_or_default()
    };
    let older = |o: &mut String, name: &str, q: &Option<HeardQuerier>, prefix: &str| {
        if let Some(q) = q {
            let _ = writeln!(
                o,
                "  {name}: older querier {prefix}{} at {}, heard {} ago",
                q.version,
                q.address,
                secs(q.last_seen_ms_ago)
            );
        }
    };
    let adopted = |o: &mut String, name: &str, t: &Option<LinkTimers>, what: &str| {
        if let Some(t) = t.as_ref().filter(|t| t.source == "adopted") {
            let _ = writeln!(
                o,
                "  {name}: {what}timers of the querier heard: robustness {}, query interval {}, \
                 response interval {}, membership interval {}",
                t.robustness,
                secs(t.query_interval_ms),
                secs(t.query_response_interval_ms),
                secs(t.membership_interval_ms)
            );
        }
    };
    for i in &s.interfaces {
        let other = heard(&i.other_querier, i.other_querier_version, "v");
        let _ = writeln!(
            o,
            "  {} ({}): {} (query source {}{}), older-host fallback {}",
            i.name, i.state, i.querier, i.query_source, other, i.compat_fallback
        );
        older(&mut o, &i.name, &i.older_querier, "IGMPv");
        adopted(&mut o, &i.name, &i.timers, "");
        if !i.mld_querier.is_empty() {
            let other = heard(&i.mld_other_querier, i.mld_other_querier_version, "MLDv");
            let _ = writeln!(
                o,
                "  {} MLD: {} (query source {}{})",
                i.name,
                i.mld_querier,
                i.query_source6.as_deref().unwrap_or("none"),
                other
            );
        }
        older(&mut o, &i.name, &i.mld_older_querier, "MLDv");
        adopted(&mut o, &i.name, &i.mld_timers, "MLD ");
    }
    let shown: Vec<_> = s
        .counters
        .iter()
        .filter(|(_, &n)| v.all_counters || n != 0)
        .collect();
    let hidden = s.counters.len() - shown.len();
    let _ = writeln!(
        o,
        "\nCounters{}:",
        if hidden > 0 {
            format!(" ({hidden} at 0 not shown; --all-counters shows them)")
        } else {
            String::new()
        }
    );
    for (k, n) in shown {
        let _ = writeln!(o, "  {k:<24} {n}");
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
                    addresses: vec![],
                }],
                upstream: GroupTraffic::default(),
            }],
            upstream: UpstreamStatus {
                interface: "up0".into(),
                state: "up".into(),
                joined: vec![JoinStatus {
                    group: "239.1.1.1".into(),
                    sources: vec![],
                    ..Default::default()
                }],
                report_version: 3,
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
            ..Default::default()
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
        let t = render(&sample(), &View::default());
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

    fn two_groups() -> Snapshot {
        let mut s = sample();
        let mut g2 = s.groups[0].clone();
        g2.group = "239.1.1.2".into();
        g2.multicast_on.clear();
        g2.members[0].interface = "dn1".into();
        g2.members[0].mac = "aa:bb:cc:dd:ee:01".into();
        s.groups.push(g2);
        let mut i2 = s.interfaces[0].clone();
        i2.name = "dn1".into();
        s.interfaces.push(i2);
        s.upstream.joined.push(JoinStatus {
            group: "239.1.1.2".into(),
            sources: vec![],
            ..Default::default()
        });
        s
    }

    #[test]
    fn filters_keep_the_named_groups_and_interfaces_and_all_counters() {
        let s = two_groups();
        let g2: std::net::IpAddr = "239.1.1.2".parse().unwrap();
        let f = filter(&s, &[g2], &[]);
        assert_eq!(f.groups.len(), 1);
        assert_eq!(f.groups[0].group, "239.1.1.2");
        assert_eq!(f.upstream.joined.len(), 1);
        assert_eq!(f.interfaces.len(), 2, "no interface filter");
        assert_eq!(f.counters, s.counters);
        let f = filter(&s, &[], &["dn0".into()]);
        assert_eq!(f.groups.len(), 1, "239.1.1.2 has no member on dn0");
        assert_eq!(f.groups[0].members[0].interface, "dn0");
        assert_eq!(f.interfaces.len(), 1);
        assert_eq!(f.upstream.joined.len(), 2, "the upstream stays whole");
        let f = filter(&s, &[g2], &["dn0".into()]);
        assert!(f.groups.is_empty());
        assert_eq!(filter(&s, &[], &[]), s);
    }

    #[test]
    fn rates_come_from_two_snapshots_and_the_daemon_uptime() {
        let a = two_groups();
        let mut b = a.clone();
        b.uptime_ms += 2_000;
        b.groups[0].members[0].packets += 200;
        b.groups[0].members[0].bytes += 200_000;
        b.groups[0].upstream.packets += 300;
        b.groups[0].upstream.bytes += 3_000;
        // A member that came only in the second snapshot has no rate.
        b.groups[1].members[0].mac = "aa:bb:cc:dd:ee:02".into();
        let r = Rates::between(&a, &b).unwrap();
        let key = (
            "dn0".to_string(),
            "aa:bb:cc:dd:ee:ff".to_string(),
            "239.1.1.1".to_string(),
        );
        assert_eq!(
            r.members[&key],
            Rate {
                packets: 100.0,
                bytes: 100_000.0
            }
        );
        assert_eq!(r.members.len(), 1);
        assert_eq!(
            r.groups["239.1.1.1"],
            Rate {
                packets: 150.0,
                bytes: 1_500.0
            }
        );
        assert_eq!(
            r.groups["239.1.1.2"],
            Rate {
                packets: 0.0,
                bytes: 0.0
            }
        );
        assert!(Rates::between(&b, &a).is_none(), "a restarted daemon");
        let t = render(
            &b,
            &View {
                rates: Some(&r),
                ..View::default()
            },
        );
        assert!(t.contains("PKT/S") && t.contains("BIT/S"), "{t}");
        assert!(
            t.contains(" 100  800.0k"),
            "member: 100 pkt/s, 800 kbit/s: {t}"
        );
    }

    #[test]
    fn text_view_shows_group_traffic_nonzero_counters_and_no_headers_rows_only() {
        let mut s = two_groups();
        s.groups[0].upstream = GroupTraffic {
            packets: 42,
            bytes: 4200,
            last_packet_ms_ago: Some(300),
        };
        s.groups[1].upstream = GroupTraffic {
            packets: 7,
            bytes: 700,
            last_packet_ms_ago: Some(NO_TRAFFIC_AFTER_MS + 1),
        };
        s.counters.insert("copies_dropped".into(), 0);
        s.upstream.querier = Some(HeardQuerier {
            address: "10.1.0.1".into(),
            version: 2,
            last_seen_ms_ago: 1500,
        });
        s.interfaces[0].other_querier = Some("10.2.0.1".into());
        s.interfaces[0].other_querier_version = Some(2);
        let t = render(&s, &View::default());
        let line = |needle: &str| {
            t.lines()
                .find(|l| {
                    l.contains(needle) && l.contains("ago")
                        || l.contains(needle) && l.contains("traffic")
                })
                .unwrap_or_else(|| panic!("{needle}: {t}"))
                .to_string()
        };
        assert!(
            line("239.1.1.1").contains("42") && line("239.1.1.1").contains("0.3s ago"),
            "{t}"
        );
        assert!(line("239.1.1.2").contains("no traffic (5.0s ago)"), "{t}");
        assert!(
            t.contains("IGMP querier 10.1.0.1 (v2), last query 1.5s ago"),
            "{t}"
        );
        assert!(t.contains("querier heard: 10.2.0.1 (v2)"), "{t}");
        assert!(
            t.contains("copies_sent") && !t.contains("copies_dropped"),
            "{t}"
        );
        assert!(t.contains("1 at 0 not shown"), "{t}");
        let all = render(
            &s,
            &View {
                all_counters: true,
                ..View::default()
            },
        );
        assert!(
            all.contains("copies_dropped") && !all.contains("not shown"),
            "{all}"
        );
        let rows = render(
            &s,
            &View {
                no_headers: true,
                ..View::default()
            },
        );
        assert_eq!(rows.lines().count(), 2, "one line per member: {rows}");
        assert!(rows.lines().all(|l| l.starts_with("239.1.1.")), "{rows}");
        let mut quiet = s.clone();
        quiet.groups[0].upstream = GroupTraffic::default();
        assert!(
            render(&quiet, &View::default()).contains("no traffic"),
            "never any packet"
        );
    }
}
