//! The status snapshot in the OpenMetrics 1.0 text format, for `snoopcast status --format
//! openmetrics` and the `--metrics-listen` HTTP endpoint. Pure: the caller takes the
//! snapshot and passes the counters' doc comments (`runtime::stats::Counters::docs`), from
//! which the `# HELP` lines of the counters come.
//!
//! Families (every name starts with `snoopcast_`; counters end in `_total`, their `# TYPE`
//! line names the family without it; `_bytes` and `_seconds` families have a `# UNIT`):
//!
//! ```text
//! build_info{version}                          info
//! uptime_seconds                               gauge
//! upstream_up{interface}                       gauge 1/0
//! upstream_joins, upstream_report_version      gauge
//! downstream_up{interface}                     gauge 1/0
//! querier_role{interface,protocol,querier_role} stateset: querier, non-querier, off
//! downstream_members{interface}, downstream_groups{interface}   gauge
//! groups, members                              gauge
//! group_members{group}                         gauge
//! group_upstream_packets_total{group}          counter
//! group_upstream_bytes_total{group}            counter, bytes
//! group_upstream_last_packet_age_seconds{group} gauge (groups that had a packet)
//! member_packets_total{interface,group,mac,ip} counter  } at most max_member_series
//! member_bytes_total{interface,group,mac,ip}   counter  } members
//! member_series_omitted                        gauge: members left out by the cap
//! <counter>_total                              counter, each daemon counter
//! ```

use crate::status::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Display, Write as _};

/// The Content-Type of the text format (OpenMetrics 1.0, section "Protocol Negotiation").
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Default of `--metrics-max-members`.
pub const DEFAULT_MAX_MEMBERS: u64 = 1000;

/// The states of the `snoopcast_querier_role` stateset, as `status` names them.
const ROLES: [&str; 3] = ["querier", "non-querier", "off"];

/// Escape a label value or HELP text: backslash, double quote and line feed (the
/// `escaped-string` of the OpenMetrics ABNF).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// A valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// A doc comment as one line (lines trimmed, joined with spaces).
fn one_line(raw: &str) -> String {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds from milliseconds, as an OpenMetrics number ("61.5", "0.007").
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The text being built; each family at most once (a duplicate is left out whole, so the
/// output always parses).
struct Out {
    text: String,
    families: BTreeSet<String>,
    /// Samples of the family last opened go out; false after a refused duplicate.
    open: bool,
}

impl Out {
    /// Open a family: its TYPE, UNIT (when given) and HELP lines.
    fn family(&mut self, name: &str, kind: &str, unit: Option<&str>, help: &str) {
        self.open = self.families.insert(name.to_string());
        if !self.open {
            return;
        }
        let t = &mut self.text;
        let _ = writeln!(t, "# TYPE {name} {kind}");
        if let Some(u) = unit {
            let _ = writeln!(t, "# UNIT {name} {u}");
        }
        let _ = writeln!(t, "# HELP {name} {}", escape(help));
    }

    /// One sample of the family last opened.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        if !self.open {
            return;
        }
        let t = &mut self.text;
        t.push_str(name);
        if !labels.is_empty() {
            t.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    t.push(',');
                }
                let _ = write!(t, "{k}=\"{}\"", escape(v));
            }
            t.push('}');
        }
        let _ = writeln!(t, " {value}");
    }
}

/// The snapshot `s` as OpenMetrics text, ending in `# EOF`. At most `max_member_series`
/// members get their packets and bytes series (in the snapshot's order: by group, then as
/// the table lists them); `snoopcast_member_series_omitted` says how many did not.
/// `counter_docs`: each counter's name and raw doc comment, for HELP (a counter of the
/// snapshot without one gets a generic HELP).
pub fn render(s: &Snapshot, max_member_series: usize, counter_docs: &[(&str, &str)]) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
        families: BTreeSet::new(),
        open: false,
    };
    let up = |state: &str| u8::from(state == "up");

    o.family(
        "snoopcast_build",
        "info",
        None,
        "The version of the running snoopcast.",
    );
    o.sample("snoopcast_build_info", &[("version", &s.version)], 1);
    o.family(
        "snoopcast_uptime_seconds",
        "gauge",
        Some("seconds"),
        "Seconds since the daemon started.",
    );
    o.sample("snoopcast_uptime_seconds", &[], seconds(s.uptime_ms));

    // Interfaces.
    let u = &s.upstream;
    o.family(
        "snoopcast_upstream_up",
        "gauge",
        None,
        "1 while the upstream interface is open, 0 while it is missing or down.",
    );
    o.sample(
        "snoopcast_upstream_up",
        &[("interface", &u.interface)],
        up(&u.state),
    );
    o.family(
        "snoopcast_upstream_joins",
        "gauge",
        None,
        "Groups (IPv4 and IPv6) reported on the upstream interface.",
    );
    o.sample("snoopcast_upstream_joins", &[], u.joined.len());
    o.family(
        "snoopcast_upstream_report_version",
        "gauge",
        None,
        "Protocol version of the reports sent upstream (IGMP 3, 2 or 1; MLD 2 or 1): lower \
         while an older querier is present there.",
    );
    o.sample(
        "snoopcast_upstream_report_version",
        &[("protocol", "igmp")],
        u.report_version,
    );
    if u.mld_report_version > 0 {
        o.sample(
            "snoopcast_upstream_report_version",
            &[("protocol", "mld")],
            u.mld_report_version,
        );
    }
    o.family(
        "snoopcast_downstream_up",
        "gauge",
        None,
        "1 while the downstream interface is open, 0 while it is missing or down.",
    );
    for i in &s.interfaces {
        o.sample(
            "snoopcast_downstream_up",
            &[("interface", &i.name)],
            up(&i.state),
        );
    }
    o.family(
        "snoopcast_querier_role",
        "stateset",
        None,
        "The querier role of snoopcast on a downstream interface, per protocol (igmp, mld): \
         querier (it sends the general queries), non-querier (another querier with a lower \
         address was heard), off (--querier off, or MLD with --no-ipv6).",
    );
    for i in &s.interfaces {
        for (protocol, role) in [("igmp", &i.querier), ("mld", &i.mld_querier)] {
            if role.is_empty() {
                continue; // a daemon without MLD: nothing to say
            }
            // "off (--no-ipv6)" is off.
            let now = role.split(' ').next().unwrap_or_default();
            for state in ROLES {
                o.sample(
                    "snoopcast_querier_role",
                    &[
                        ("interface", &i.name),
                        ("protocol", protocol),
                        ("snoopcast_querier_role", state),
                    ],
                    u8::from(now == state),
                );
            }
        }
    }

    // Members and groups per downstream interface: every interface listed, also those
    // without members, and any a member names that the list lacks.
    let mut per_iface: BTreeMap<&str, (u64, BTreeSet<&str>)> = s
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), (0, BTreeSet::new())))
        .collect();
    let mut members = 0u64;
    for g in &s.groups {
        for m in &g.members {
            let e = per_iface.entry(&m.interface).or_default();
            e.0 += 1;
            e.1.insert(&g.group);
            members += 1;
        }
    }
    o.family(
        "snoopcast_downstream_members",
        "gauge",
        None,
        "Members (host x group) on a downstream interface.",
    );
    for (name, (n, _)) in &per_iface {
        o.sample("snoopcast_downstream_members", &[("interface", name)], n);
    }
    o.family(
        "snoopcast_downstream_groups",
        "gauge",
        None,
        "Groups with at least one member on a downstream interface.",
    );
    for (name, (_, groups)) in &per_iface {
        o.sample(
            "snoopcast_downstream_groups",
            &[("interface", name)],
            groups.len(),
        );
    }
    o.family(
        "snoopcast_groups",
        "gauge",
        None,
        "Groups in the membership table (IPv4 and IPv6).",
    );
    o.sample("snoopcast_groups", &[], s.groups.len());
    o.family(
        "snoopcast_members",
        "gauge",
        None,
        "Members (host x group) in the membership table, over all downstream interfaces.",
    );
    o.sample("snoopcast_members", &[], members);

    // Per group.
    o.family(
        "snoopcast_group_members",
        "gauge",
        None,
        "Members of a group, over all downstream interfaces.",
    );
    for g in &s.groups {
        o.sample(
            "snoopcast_group_members",
            &[("group", &g.group)],
            g.members.len(),
        );
    }
    o.family(
        "snoopcast_group_upstream_packets",
        "counter",
        None,
        "Multicast data packets of a group read on the upstream interface since the group \
         appeared in the table.",
    );
    for g in &s.groups {
        o.sample(
            "snoopcast_group_upstream_packets_total",
            &[("group", &g.group)],
            g.upstream.packets,
        );
    }
    o.family(
        "snoopcast_group_upstream_bytes",
        "counter",
        Some("bytes"),
        "IP bytes of those packets.",
    );
    for g in &s.groups {
        o.sample(
            "snoopcast_group_upstream_bytes_total",
            &[("group", &g.group)],
            g.upstream.bytes,
        );
    }
    o.family(
        "snoopcast_group_upstream_last_packet_age_seconds",
        "gauge",
        Some("seconds"),
        "Seconds since the last packet of a group arrived on the upstream (only groups that \
         had one).",
    );
    for g in &s.groups {
        if let Some(ms) = g.upstream.last_packet_ms_ago {
            o.sample(
                "snoopcast_group_upstream_last_packet_age_seconds",
                &[("group", &g.group)],
                seconds(ms),
            );
        }
    }

    // Per member, capped.
    let listed: Vec<_> = s
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(move |m| (g, m)))
        .take(max_member_series)
        .collect();
    let labels = |g: &crate::status::GroupStatus, m: &crate::status::MemberStatus| {
        [
            ("interface", m.interface.clone()),
            ("group", g.group.clone()),
            ("mac", m.mac.clone()),
            ("ip", m.ip.clone()),
        ]
    };
    for (family, unit, help, bytes) in [
        (
            "snoopcast_member_packets",
            None,
            "Copies of a group's packets sent to a member (one host on one downstream \
             interface).",
            false,
        ),
        (
            "snoopcast_member_bytes",
            Some("bytes"),
            "IP bytes of the copies sent to a member.",
            true,
        ),
    ] {
        o.family(family, "counter", unit, help);
        let sample = format!("{family}_total");
        for (g, m) in &listed {
            let l = labels(g, m);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            o.sample(&sample, &l, if bytes { m.bytes } else { m.packets });
        }
    }
    o.family(
        "snoopcast_member_series_omitted",
        "gauge",
        None,
        "Members without snoopcast_member_packets/bytes series: beyond --metrics-max-members.",
    );
    o.sample(
        "snoopcast_member_series_omitted",
        &[],
        members.saturating_sub(listed.len() as u64),
    );

    // The daemon's counters.
    for (name, value) in &s.counters {
        let family = format!("snoopcast_{name}");
        if !valid_name(&family) || name.ends_with("_total") {
            continue;
        }
        let help = counter_docs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| one_line(d))
            .unwrap_or_else(|| format!("The daemon's counter {name}."));
        o.family(&family, "counter", None, &help);
        o.sample(&format!("{family}_total"), &[], value);
    }
    o.text.push_str("# EOF\n");
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{
        GroupStatus, GroupTraffic, InterfaceStatus, JoinStatus, MemberStatus, UpstreamStatus,
    };

    fn member(mac: &str, ip: &str, packets: u64) -> MemberStatus {
        MemberStatus {
            interface: "dn0".into(),
            mac: mac.into(),
            ip: ip.into(),
            mode: "exclude".into(),
            igmp_version: Some(3),
            expires_in_ms: 1000,
            packets,
            bytes: packets * 228,
            ..Default::default()
        }
    }

    pub(crate) fn sample() -> Snapshot {
        Snapshot {
            version: "0.1.0".into(),
            uptime_ms: 61_500,
            groups: vec![
                GroupStatus {
                    group: "239.1.1.1".into(),
                    members: vec![
                        member("02:5c:00:02:00:01", "10.2.0.11", 10),
                        member("02:5c:00:02:00:02", "10.2.0.12", 20),
                    ],
                    upstream: GroupTraffic {
                        packets: 30,
                        bytes: 6840,
                        last_packet_ms_ago: Some(7),
                    },
                    ..Default::default()
                },
                GroupStatus {
                    group: "ff3e::1".into(),
                    members: vec![MemberStatus {
                        interface: "tap\"0\\x".into(),
                        igmp_version: None,
                        mld_version: Some(2),
                        ..member("02:5c:00:02:00:03", "fe80::1", 5)
                    }],
                    ..Default::default()
                },
            ],
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
            interfaces: vec![
                InterfaceStatus {
                    name: "dn0".into(),
                    state: "up".into(),
                    querier: "querier".into(),
                    mld_querier: "non-querier".into(),
                    ..Default::default()
                },
                InterfaceStatus {
                    name: "dn1".into(),
                    state: "down".into(),
                    querier: "off".into(),
                    mld_querier: "off (--no-ipv6)".into(),
                    ..Default::default()
                },
            ],
            counters: [
                ("copies_sent".to_string(), 35u64),
                ("reloads".to_string(), 2),
            ]
            .into(),
            ..Default::default()
        }
    }

    const DOCS: &[(&str, &str)] = &[
        (
            "copies_sent",
            " Unicast copies \"sent\".\n With a \\ backslash.\n",
        ),
        ("reloads", " Reloads applied.\n"),
    ];

    fn lines(t: &str) -> Vec<&str> {
        t.lines().collect()
    }

    #[test]
    fn ends_in_eof_and_every_family_has_type_and_help_before_its_samples() {
        let t = render(&sample(), 1000, DOCS);
        assert!(t.ends_with("\n# EOF\n"), "{t}");
        assert_eq!(t.matches("# EOF").count(), 1);
        let mut family = String::new();
        let mut seen = BTreeSet::new();
        let mut helped = false;
        for l in lines(&t) {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    ["counter", "gauge", "info", "stateset"].contains(&kind),
                    "{l}"
                );
                assert!(seen.insert(name.to_string()), "family {name} twice");
                family = name.to_string();
                helped = false;
            } else if let Some(rest) = l.strip_prefix("# HELP ") {
                assert!(rest.starts_with(&format!("{family} ")), "{l}");
                helped = true;
            } else if let Some(rest) = l.strip_prefix("# UNIT ") {
                let (name, unit) = rest.split_once(' ').unwrap();
                assert_eq!(name, family);
                assert!(name.ends_with(&format!("_{unit}")), "{l}");
            } else if l != "# EOF" {
                assert!(helped, "sample before HELP: {l}");
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(
                    name == family
                        || name == format!("{family}_total")
                        || name == format!("{family}_info"),
                    "{name} outside its family {family}"
                );
            }
        }
        assert!(seen.len() > 15, "{seen:?}");
    }

    #[test]
    fn counters_are_named_total_and_get_their_doc_as_help() {
        let t = render(&sample(), 1000, DOCS);
        let l = lines(&t);
        assert!(l.contains(&"# TYPE snoopcast_copies_sent counter"), "{t}");
        assert!(l.contains(&"snoopcast_copies_sent_total 35"), "{t}");
        assert!(
            l.contains(
                &r#"# HELP snoopcast_copies_sent Unicast copies \"sent\". With a \\ backslash."#
            ),
            "{t}"
        );
        assert!(l.contains(&"snoopcast_reloads_total 2"), "{t}");
        assert!(!t.contains("# TYPE snoopcast_copies_sent_total"), "{t}");
        // Every counter family's samples end in _total.
        let counters: Vec<_> = l
            .iter()
            .filter_map(|x| x.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        assert!(counters.len() >= 6, "{counters:?}");
        for c in counters {
            assert!(!c.ends_with("_total"), "{c}");
            assert!(
                l.iter().any(|x| x.starts_with(&format!("{c}_total"))),
                "no {c}_total"
            );
            assert!(
                !l.iter()
                    .any(|x| x.starts_with(&format!("{c} ")) || x.starts_with(&format!("{c}{{"))),
                "{c} sample without _total"
            );
        }
        // One unknown to this version: a generic HELP; a name that is no metric name: left out.
        let mut s = sample();
        s.counters.insert("future_thing".into(), 4);
        s.counters.insert("bad name\n".into(), 4);
        let t = render(&s, 1000, DOCS);
        assert!(
            t.contains("# HELP snoopcast_future_thing The daemon's counter future_thing.\nsnoopcast_future_thing_total 4\n"),
            "{t}"
        );
        assert!(!t.contains("bad name"), "{t}");
    }

    #[test]
    fn bytes_and_seconds_have_a_unit() {
        let t = render(&sample(), 1000, DOCS);
        for l in [
            "# UNIT snoopcast_member_bytes bytes",
            "# UNIT snoopcast_group_upstream_bytes bytes",
            "# UNIT snoopcast_uptime_seconds seconds",
            "snoopcast_uptime_seconds 61.500",
            r#"snoopcast_group_upstream_packets_total{group="239.1.1.1"} 30"#,
            r#"snoopcast_group_upstream_bytes_total{group="239.1.1.1"} 6840"#,
            r#"snoopcast_group_upstream_last_packet_age_seconds{group="239.1.1.1"} 0.007"#,
            r#"snoopcast_group_upstream_packets_total{group="ff3e::1"} 0"#,
        ] {
            assert!(t.lines().any(|x| x == l), "{l} missing:\n{t}");
        }
        // No packet yet: no age.
        assert!(
            !t.contains(r#"last_packet_age_seconds{group="ff3e::1"}"#),
            "{t}"
        );
    }

    #[test]
    fn interfaces_querier_roles_and_counts() {
        let t = render(&sample(), 1000, DOCS);
        for l in [
            r#"snoopcast_upstream_up{interface="up0"} 1"#,
            r#"snoopcast_downstream_up{interface="dn0"} 1"#,
            r#"snoopcast_downstream_up{interface="dn1"} 0"#,
            r#"snoopcast_querier_role{interface="dn0",protocol="igmp",snoopcast_querier_role="querier"} 1"#,
            r#"snoopcast_querier_role{interface="dn0",protocol="igmp",snoopcast_querier_role="off"} 0"#,
            r#"snoopcast_querier_role{interface="dn0",protocol="mld",snoopcast_querier_role="non-querier"} 1"#,
            r#"snoopcast_querier_role{interface="dn1",protocol="mld",snoopcast_querier_role="off"} 1"#,
            r#"snoopcast_querier_role{interface="dn1",protocol="mld",snoopcast_querier_role="querier"} 0"#,
            r#"snoopcast_downstream_members{interface="dn0"} 2"#,
            r#"snoopcast_downstream_members{interface="dn1"} 0"#,
            r#"snoopcast_downstream_groups{interface="dn0"} 1"#,
            r#"snoopcast_downstream_members{interface="tap\"0\\x"} 1"#,
            "snoopcast_groups 2",
            "snoopcast_members 3",
            r#"snoopcast_group_members{group="239.1.1.1"} 2"#,
            "snoopcast_upstream_joins 1",
            "snoopcast_upstream_report_version{protocol=\"igmp\"} 3",
            r#"snoopcast_build_info{version="0.1.0"} 1"#,
        ] {
            assert!(t.lines().any(|x| x == l), "{l} missing:\n{t}");
        }
        // One state set per interface and protocol: exactly one state is 1.
        let ones = t
            .lines()
            .filter(|l| l.starts_with("snoopcast_querier_role{") && l.ends_with(" 1"))
            .count();
        assert_eq!(ones, 4, "{t}");
    }

    #[test]
    fn member_series_carry_escaped_labels() {
        let t = render(&sample(), 1000, DOCS);
        assert!(t.lines().any(|l| l
            == r#"snoopcast_member_packets_total{interface="dn0",group="239.1.1.1",mac="02:5c:00:02:00:02",ip="10.2.0.12"} 20"#), "{t}");
        assert!(t.lines().any(|l| l
            == r#"snoopcast_member_bytes_total{interface="tap\"0\\x",group="ff3e::1",mac="02:5c:00:02:00:03",ip="fe80::1"} 1140"#), "{t}");
        assert!(t.contains("snoopcast_member_series_omitted 0\n"), "{t}");
        assert_eq!(escape("a\nb\"c\\"), r#"a\nb\"c\\"#);
        // A newline in a label value never breaks a line.
        let mut s = sample();
        s.groups[0].members[0].interface = "evil\n# EOF".into();
        let t = render(&s, 1000, DOCS);
        assert_eq!(t.lines().filter(|l| *l == "# EOF").count(), 1, "{t}");
        assert!(t.contains(r#"interface="evil\n# EOF""#), "{t}");
    }

    #[test]
    fn the_cap_bounds_member_series_and_says_how_many_were_left_out() {
        let count = |t: &str, p: &str| t.lines().filter(|l| l.starts_with(p)).count();
        let t = render(&sample(), 2, DOCS);
        assert_eq!(count(&t, "snoopcast_member_packets_total{"), 2, "{t}");
        assert_eq!(count(&t, "snoopcast_member_bytes_total{"), 2, "{t}");
        assert!(t.contains("snoopcast_member_series_omitted 1\n"), "{t}");
        // The first ones in the snapshot's order are kept.
        assert!(
            t.contains(r#"mac="02:5c:00:02:00:01""#) && !t.contains(r#"mac="02:5c:00:02:00:03""#)
        );
        let t = render(&sample(), 0, DOCS);
        assert_eq!(
            count(&t, "snoopcast_member_"),
            1,
            "only the omitted gauge: {t}"
        );
        assert!(t.contains("snoopcast_member_series_omitted 3\n"), "{t}");
        // The families are still declared, so a dashboard's queries stay valid.
        assert!(t.contains("# TYPE snoopcast_member_packets counter"), "{t}");
        // Members still count in the totals.
        assert!(t.contains("snoopcast_members 3\n"), "{t}");
    }

    #[test]
    fn an_empty_snapshot_still_renders_valid_text() {
        let t = render(&Snapshot::default(), 1000, &[]);
        assert!(t.ends_with("# EOF\n"));
        assert!(
            t.contains("snoopcast_members 0\n")
                && t.contains("snoopcast_upstream_up{interface=\"\"} 0\n"),
            "{t}"
        );
    }

    #[test]
    fn metric_names_are_checked() {
        assert!(valid_name("snoopcast_copies_sent"));
        assert!(!valid_name("snoopcast_copies sent"));
        assert!(!valid_name("1abc") && !valid_name(""));
    }
}
