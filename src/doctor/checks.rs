//! The checks of `snoopcast doctor`: pure functions of [`Facts`]. Each returns one or more
//! findings named after the check; a check that cannot look says "not checked: why".

use super::{Facts, Finding, LinkFacts, Origin};
use crate::status::{HeardQuerier, InterfaceStatus, Snapshot};
use std::net::IpAddr;
use std::time::Duration;

/// The usual MAC ageing time of a dumb switch (IEEE 802.1D's default).
pub const SWITCH_AGEING: Duration = Duration::from_secs(300);
/// The upstream capture buffer the daemon asks for (`runtime::links::DATA_RCVBUF`).
pub const CAPTURE_BUFFER: u64 = crate::runtime::links::DATA_RCVBUF as u64;

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The name of every check, in the order [`all`] prints them.
pub const CHECKS: [&str; 12] = [
    "daemon",
    "interfaces",
    "mac-ageing",
    "bridge-port",
    "other-querier",
    "upstream-querier",
    "ipv4-address",
    "link-local",
    "rp-filter",
    "rmem",
    "capture-drops",
    "firewall",
];

/// Every check, in the order printed.
pub fn all(f: &Facts) -> Vec<Finding> {
    let mut out = vec![daemon(f)];
    out.extend(interfaces(f));
    out.extend(mac_ageing(f));
    out.extend(bridge_port(f));
    out.extend(other_querier(f));
    out.extend(upstream_querier(f));
    out.extend(ipv4_address(f));
    out.extend(link_local(f));
    out.push(rp_filter(f));
    out.push(rmem(f));
    out.push(capture_drops(f));
    out.push(firewall(f));
    out
}

/// The two snapshots, when a daemon answered.
fn snaps(f: &Facts) -> Option<(&Snapshot, &Snapshot)> {
    f.daemon.as_ref().ok().map(|(a, b)| (a, b))
}

pub fn daemon(f: &Facts) -> Finding {
    match &f.daemon {
        Ok((_, s)) => Finding::ok(
            "daemon",
            format!(
                "snoopcast {} answers on {} (up {}; upstream {}, downstream {})",
                s.version,
                f.control,
                secs(Duration::from_millis(s.uptime_ms)),
                s.upstream.interface,
                s.interfaces
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(why) => Finding::ok(
            "daemon",
            format!(
                "not running: {why}; skipped: other-querier, upstream-querier, capture-drops \
                 (start snoopcast, or give --control PATH, to check them)"
            ),
        ),
    }
}

/// The interfaces named exist.
pub fn interfaces(f: &Facts) -> Vec<Finding> {
    if f.origin == Origin::Nothing {
        return vec![Finding::fail(
            "interfaces",
            format!(
                "no interfaces to check: no daemon answers on {} and neither --config nor \
                 --upstream/--downstream name them; give them, or --control PATH of the running daemon",
                f.control
            ),
        )];
    }
    let mut missing = vec![];
    for name in f.upstream.iter().chain(&f.downstreams) {
        if !f.links.get(name).is_some_and(|l| l.exists) {
            missing.push(name.clone());
        }
    }
    if missing.is_empty() {
        vec![Finding::ok(
            "interfaces",
            format!(
                "upstream {}, downstream {} present",
                f.upstream.as_deref().unwrap_or("(none)"),
                f.downstreams.join(", ")
            ),
        )]
    } else {
        vec![Finding::fail(
            "interfaces",
            format!(
                "{} missing in this network namespace: create it, fix the name, or run doctor \
                 where snoopcast runs (ip netns exec NS snoopcast doctor)",
                missing.join(", ")
            ),
        )]
    }
}

fn link<'a>(f: &'a Facts, name: &str) -> Option<&'a LinkFacts> {
    f.links.get(name).filter(|l| l.exists)
}

pub fn mac_ageing(f: &Facts) -> Vec<Finding> {
    const N: &str = "mac-ageing";
    let t = f.timers;
    let mut out = vec![];
    if t.query_interval >= SWITCH_AGEING {
        out.push(Finding::warn(
            N,
            format!(
                "query interval {} is at or above {}, the usual MAC ageing time of a dumb switch: \
                 the switch forgets hosts that only answer queries and floods their unicast copies \
                 to every port; use --query-interval 125s (below the switch's ageing time)",
                secs(t.query_interval),
                secs(SWITCH_AGEING)
            ),
        ));
    }
    // A host refreshes its MAC when it answers: up to QI + QRI apart.
    let gap = t.query_interval + t.query_response_interval;
    for d in &f.downstreams {
        let Some(l) = link(f, d) else { continue };
        for (how, b) in [("a port of", &l.master), ("itself", &l.own_bridge)] {
            let Some(b) = b else { continue };
            match b.ageing {
                Some(a) if !a.is_zero() && gap > a => out.push(Finding::warn(
                    N,
                    format!(
                        "{d} is {how} bridge {} with MAC ageing {}, shorter than the query interval \
                         plus response interval ({}): it forgets quiet hosts and floods their copies; \
                         lower --query-interval, or raise it with `ip link set {} type bridge \
                         ageing_time {}`",
                        b.name,
                        secs(a),
                        secs(gap),
                        b.name,
                        (gap.as_secs() + 60) * 100
                    ),
                )),
                _ => {}
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            N,
            format!(
                "query interval {} is below {} (a dumb switch's usual MAC ageing) and below the \
                 ageing time of any bridge on the downstreams",
                secs(t.query_interval),
                secs(SWITCH_AGEING)
            ),
        ));
    }
    out
}

pub fn bridge_port(f: &Facts) -> Vec<Finding> {
    const N: &str = "bridge-port";
    let mut out = vec![];
    for d in &f.downstreams {
        let Some(l) = link(f, d) else { continue };
        let Some(b) = &l.master else { continue };
        match l.port_mcast_flood {
            Some(false) => out.push(Finding::ok(
                N,
                format!("{d} is a port of bridge {} with mcast_flood off", b.name),
            )),
            flood => out.push(Finding::warn(
                N,
                format!(
                    "{d} is a port of bridge {}, which {} multicast into it: hosts behind {d} get \
                     the bridge's multicast as well as snoopcast's unicast copies; run `bridge link \
                     set dev {d} mcast_flood off`, or let the bridge do it without snoopcast \
                     (`ip link set {} type bridge mcast_snooping 1` and `bridge link set dev {d} \
                     mcast_to_unicast on`)",
                    b.name,
                    if flood.is_some() {
                        "floods (mcast_flood on)"
                    } else {
                        "may flood (brport/multicast_flood unreadable)"
                    },
                    b.name
                ),
            )),
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(N, "no downstream is a bridge port"));
    }
    out
}

fn version_text(v: Option<u8>, v6: bool) -> String {
    match (v, v6) {
        (Some(v), false) => format!("IGMPv{v}"),
        (Some(v), true) => format!("MLDv{v}"),
        (None, false) => "IGMP, version unknown".into(),
        (None, true) => "MLD, version unknown".into(),
    }
}

fn other_querier_of(i: &InterfaceStatus, v6: bool) -> Option<Finding> {
    let (addr, version) = if v6 {
        (i.mld_other_querier.as_ref()?, i.mld_other_querier_version)
    } else {
        (i.other_querier.as_ref()?, i.other_querier_version)
    };
    let old = version.is_some_and(|v| if v6 { v < 2 } else { v < 3 });
    let name = &i.name;
    let vt = version_text(version, v6);
    let text = if old {
        format!(
            "{vt} querier {addr} is elected on {name}: hosts there fall back to {}, suppress \
             each other's reports, and snoopcast sends their groups as L2 multicast (the compat \
             fallback); set that querier to {}, or turn it off so snoopcast queries",
            if v6 { "MLDv1" } else { "IGMPv2" },
            if v6 { "MLDv2" } else { "IGMPv3" }
        )
    } else {
        format!(
            "{vt} querier {addr} is elected on {name}: snoopcast stays silent there and its own \
             --query-interval does not apply; keep that querier's interval below the switch's MAC \
             ageing, or turn it off so snoopcast queries"
        )
    };
    Some(Finding::warn("other-querier", text))
}

pub fn other_querier(f: &Facts) -> Vec<Finding> {
    const N: &str = "other-querier";
    let Some((_, s)) = snaps(f) else {
        return vec![Finding::not_checked(N, "no daemon")];
    };
    let mut out: Vec<Finding> = s
        .interfaces
        .iter()
        .flat_map(|i| [other_querier_of(i, false), other_querier_of(i, true)])
        .flatten()
        .collect();
    if out.is_empty() {
        out.push(Finding::ok(N, "no other querier heard on the downstreams"));
    }
    out
}

fn heard(q: &Option<HeardQuerier>, proto: &str, up: &str, s: &Snapshot, f: &Facts) -> Finding {
    const N: &str = "upstream-querier";
    let gmi = f.timers.membership_interval();
    let fix = "the upstream router may let the box's memberships expire and stop the streams; \
               enable IGMP/MLD querying on the upstream router (or a querier on that link)";
    match q {
        None if Duration::from_millis(s.uptime_ms) <= gmi => Finding::not_checked(
            N,
            format!(
                "no {proto} query heard on {up} yet, but snoopcast has run only {} (less than one \
                 membership interval, {}); run doctor again later",
                secs(Duration::from_millis(s.uptime_ms)),
                secs(gmi)
            ),
        ),
        None => Finding::warn(
            N,
            format!(
                "no {proto} general query heard on {up} in the {} snoopcast has run: {fix}",
                secs(Duration::from_millis(s.uptime_ms))
            ),
        ),
        Some(q) if Duration::from_millis(q.last_seen_ms_ago) > gmi => Finding::warn(
            N,
            format!(
                "the last {proto} query on {up} (from {}) was {} ago, more than one membership \
                 interval ({}): {fix}",
                q.address,
                secs(Duration::from_millis(q.last_seen_ms_ago)),
                secs(gmi)
            ),
        ),
        Some(q) => Finding::ok(
            N,
            format!(
                "{} querier {} heard on {up} {} ago",
                version_text(Some(q.version), proto == "MLD"),
                q.address,
                secs(Duration::from_millis(q.last_seen_ms_ago))
            ),
        ),
    }
}

pub fn upstream_querier(f: &Facts) -> Vec<Finding> {
    const N: &str = "upstream-querier";
    let Some((_, s)) = snaps(f) else {
        return vec![Finding::not_checked(N, "no daemon")];
    };
    let up = &s.upstream.interface;
    if f.links.get(up).is_some_and(|l| l.l3) {
        return vec![Finding::not_checked(
            N,
            format!("{up} is a layer-3 link (no Ethernet): no IGMP/MLD querier is heard there"),
        )];
    }
    let mut out = vec![heard(&s.upstream.querier, "IGMP", up, s, f)];
    let v6_joined = s.upstream.joined.iter().any(|j| j.group.contains(':'));
    if v6_joined {
        out.push(heard(&s.upstream.mld_querier, "MLD", up, s, f));
    }
    let ssm = |v6: bool| {
        s.upstream
            .joined
            .iter()
            .filter(|j| j.group.contains(':') == v6 && !j.sources.is_empty())
            .map(|j| j.group.as_str())
            .collect::<Vec<_>>()
    };
    for (q, v6, old) in [
        (&s.upstream.querier, false, 2u8),
        (&s.upstream.mld_querier, true, 1u8),
    ] {
        let Some(q) = q else { continue };
        let groups = ssm(v6);
        if q.version <= old && !groups.is_empty() {
            out.push(Finding::warn(
                N,
                format!(
                    "the upstream querier {} on {up} is {}, and members joined {} source-specific: \
                     the box's kernel falls back to {} there, which cannot carry sources, so the \
                     SSM joins are useless; set the upstream router to {}",
                    q.address,
                    version_text(Some(q.version), v6),
                    groups.join(", "),
                    if v6 { "MLDv1" } else { "IGMPv2" },
                    if v6 { "MLDv2" } else { "IGMPv3" }
                ),
            ));
        }
    }
    out
}

pub fn ipv4_address(f: &Facts) -> Vec<Finding> {
    const N: &str = "ipv4-address";
    let mut out = vec![];
    for d in &f.downstreams {
        let Some(l) = link(f, d) else {
            out.push(Finding::not_checked(N, format!("{d} is missing")));
            continue;
        };
        let daemon_source = snaps(f)
            .and_then(|(_, s)| s.interfaces.iter().find(|i| &i.name == d))
            .map(|i| i.query_source.clone())
            .filter(|q| q != "0.0.0.0");
        out.push(match (l.ipv4.first(), f.query_source, daemon_source) {
            (Some(a), _, _) => Finding::ok(N, format!("{d} has {a}, the source of its queries")),
            (None, Some(q), _) => Finding::ok(N, format!("{d} queries from --query-source {q}")),
            (None, None, Some(q)) => Finding::ok(N, format!("{d} queries from {q}")),
            (None, None, None) => Finding::warn(
                N,
                format!(
                    "{d} has no IPv4 address: snoopcast's IGMP queries go out from 0.0.0.0, which \
                     some hosts ignore (then they stop reporting and expire); give {d} an address \
                     (ip addr add ADDR/LEN dev {d}) or use --query-source ADDR"
                ),
            ),
        });
    }
    out
}

pub fn link_local(f: &Facts) -> Vec<Finding> {
    const N: &str = "link-local";
    if !f.ipv6 {
        return vec![Finding::ok(N, "IPv6 is off (--no-ipv6)")];
    }
    let mut out = vec![];
    for d in &f.downstreams {
        let Some(l) = link(f, d) else {
            out.push(Finding::not_checked(N, format!("{d} is missing")));
            continue;
        };
        out.push(match l.link_local {
            Some(a) => Finding::ok(N, format!("{d} has {a}, the source of its MLD queries")),
            None => Finding::warn(
                N,
                format!(
                    "{d} has no usable IPv6 link-local address: snoopcast sends no MLD queries \
                     there, so IPv6 members expire unless another MLD querier keeps them \
                     reporting; enable IPv6 on it (sysctl -w net.ipv6.conf.{d}.disable_ipv6=0, \
                     addr_gen_mode 0) or run with --no-ipv6"
                ),
            ),
        });
    }
    out
}

/// The IPv4 sources whose route the rp-filter check looks at: the upstream queriers and the
/// sources of the source-specific joins.
pub fn sources_to_route(s: Option<&Snapshot>) -> Vec<IpAddr> {
    let Some(s) = s else { return vec![] };
    let mut v: Vec<IpAddr> = s
        .upstream
        .querier
        .iter()
        .filter_map(|q| q.address.parse().ok())
        .chain(
            s.upstream
                .joined
                .iter()
                .flat_map(|j| j.sources.iter().filter_map(|a| a.parse().ok())),
        )
        .filter(|a: &IpAddr| a.is_ipv4())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// An address that stands for "a remote source": where the default route goes.
pub const REMOTE_PROBE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

pub fn rp_filter(f: &Facts) -> Finding {
    const N: &str = "rp-filter";
    let Some(up) = &f.upstream else {
        return Finding::not_checked(N, "no upstream interface");
    };
    let Some(l) = link(f, up) else {
        return Finding::not_checked(N, format!("{up} is missing"));
    };
    let (Some(all), Some(own)) = (f.rp_filter_all, l.rp_filter) else {
        return Finding::not_checked(N, "net.ipv4.conf.{all,IF}.rp_filter unreadable");
    };
    // The kernel uses the larger of the two.
    let eff = all.max(own);
    if eff != 1 {
        return Finding::ok(
            N,
            format!(
                "rp_filter on {up} is {eff} ({})",
                if eff == 0 { "off" } else { "loose" }
            ),
        );
    }
    let fix = format!(
        "set loose mode (sysctl -w net.ipv4.conf.{up}.rp_filter=2 net.ipv4.conf.all.rp_filter=2) \
         or route those sources through {up}"
    );
    let mut bad = vec![];
    let known = sources_to_route(snaps(f).map(|(_, s)| s));
    for a in &known {
        match f.routes.get(a) {
            Some(Ok(Some(dev))) if dev == up => {}
            Some(Ok(Some(dev))) => bad.push(format!("{a} (routed through {dev})")),
            Some(Ok(None)) => bad.push(format!("{a} (no route)")),
            Some(Err(_)) | None => {}
        }
    }
    if !bad.is_empty() {
        return Finding::fail(
            N,
            format!(
                "strict reverse-path filtering (rp_filter 1) on {up}, and {} not routed back \
                 through it: the kernel drops their queries and data arriving on {up}; {fix}",
                bad.join(", ")
            ),
        );
    }
    match f.routes.get(&REMOTE_PROBE) {
        Some(Ok(Some(dev))) if dev == up => Finding::ok(
            N,
            format!("strict rp_filter on {up}, and the default route and every known source go through it"),
        ),
        Some(Err(e)) => Finding::not_checked(N, format!("strict rp_filter on {up}; cannot ask routes: {e}")),
        other => Finding::warn(
            N,
            format!(
                "strict reverse-path filtering (rp_filter 1) on {up}, and the default route {}: \
                 multicast from any source outside {up}'s own routes (and such an upstream \
                 router's queries) is dropped by the kernel; {fix}",
                match other {
                    Some(Ok(Some(dev))) => format!("goes through {dev}"),
                    _ => "is missing".into(),
                }
            ),
        ),
    }
}

pub fn rmem(f: &Facts) -> Finding {
    const N: &str = "rmem";
    match f.rmem_max {
        None => Finding::not_checked(N, "/proc/sys/net/core/rmem_max unreadable"),
        Some(m) if m >= CAPTURE_BUFFER => Finding::ok(
            N,
            format!(
                "net.core.rmem_max {m} holds the {} MiB capture buffer",
                CAPTURE_BUFFER >> 20
            ),
        ),
        Some(m) => Finding::warn(
            N,
            format!(
                "net.core.rmem_max is {m} bytes, below the {} MiB capture buffer: without \
                 CAP_NET_ADMIN the capture buffers are capped there (drops under bursts), with it \
                 snoopcast keeps CAP_NET_ADMIN all its life for SO_RCVBUFFORCE; raise it \
                 (sysctl -w net.core.rmem_max={CAPTURE_BUFFER}, and in /etc/sysctl.d/)",
                CAPTURE_BUFFER >> 20
            ),
        ),
    }
}

/// The counters that count lost frames or copies.
pub const DROP_COUNTERS: [&str; 4] = [
    "capture_drops",
    "copies_dropped",
    "igmp_capture_drops",
    "events_dropped",
];

pub fn capture_drops(f: &Facts) -> Finding {
    const N: &str = "capture-drops";
    let Some((a, b)) = snaps(f) else {
        return Finding::not_checked(N, "no daemon");
    };
    if b.uptime_ms <= a.uptime_ms {
        return Finding::not_checked(N, "the daemon restarted between the two snapshots");
    }
    let dt = (b.uptime_ms - a.uptime_ms) as f64 / 1000.0;
    let get = |s: &Snapshot, k: &str| s.counters.get(k).copied().unwrap_or(0);
    let growing: Vec<String> = DROP_COUNTERS
        .iter()
        .filter_map(|k| {
            let d = get(b, k).saturating_sub(get(a, k));
            (d > 0).then(|| format!("{k} +{d} in {dt:.1}s"))
        })
        .collect();
    if growing.is_empty() {
        let total: Vec<String> = DROP_COUNTERS
            .iter()
            .filter(|k| get(b, k) > 0)
            .map(|k| format!("{k} {}", get(b, k)))
            .collect();
        return Finding::ok(
            N,
            if total.is_empty() {
                format!("no drops (watched {dt:.1}s)")
            } else {
                format!(
                    "none in the last {dt:.1}s (since start: {})",
                    total.join(", ")
                )
            },
        );
    }
    Finding::warn(
        N,
        format!(
            "drops growing now: {}; snoopcast does not keep up: keep the upstream NIC's \
             interrupts and RPS (/sys/class/net/IF/queues/rx-*/rps_cpus) off snoopcast's CPU, \
             give it a core of its own (CPUAffinity=), raise net.core.rmem_max, and see the \
             README's Performance section",
            growing.join(", ")
        ),
    )
}

pub fn firewall(f: &Facts) -> Finding {
    const N: &str = "firewall";
    let texts = match &f.firewall {
        super::FirewallText::NotChecked(why) => return Finding::not_checked(N, why),
        super::FirewallText::Read(t) => t,
    };
    let mut hits = vec![];
    for (tool, text) in texts {
        for h in super::firewall::drops(text) {
            hits.push(format!("{tool}: `{h}`"));
        }
    }
    if hits.is_empty() {
        let tools: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
        return Finding::ok(
            N,
            format!(
                "no rule dropping IGMP, MLD or multicast ({})",
                tools.join(", ")
            ),
        );
    }
    Finding::fail(
        N,
        format!(
            "{}: the box's kernel then cannot join upstream or answer the upstream router's \
             queries (or the multicast is dropped); accept IGMP (`meta l4proto igmp accept`) and \
             MLD (`icmpv6 type {{ mld-listener-query, mld-listener-report, mld2-listener-report, \
             mld-listener-done }} accept`) before that rule",
            hits.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{BridgeFacts, FirewallText, Level, Timers};
    use crate::status::{DaemonSettings, JoinStatus};

    /// A healthy machine with a healthy daemon: every check ok.
    fn clean() -> Facts {
        let mut f = Facts::empty();
        f.origin = Origin::Options;
        f.upstream = Some("up0".into());
        f.downstreams = vec!["dn0".into()];
        f.links.insert(
            "up0".into(),
            LinkFacts {
                exists: true,
                ipv4: vec!["10.1.0.2".parse().unwrap()],
                rp_filter: Some(0),
                ..Default::default()
            },
        );
        f.links.insert(
            "dn0".into(),
            LinkFacts {
                exists: true,
                ipv4: vec!["10.2.0.1".parse().unwrap()],
                link_local: Some("fe80::1".parse().unwrap()),
                rp_filter: Some(0),
                ..Default::default()
            },
        );
        f.rmem_max = Some(8 << 20);
        f.rp_filter_all = Some(0);
        f.firewall = FirewallText::Read(vec![("nft list ruleset".into(), String::new())]);
        let mut s = Snapshot {
            version: "t".into(),
            uptime_ms: 10_000,
            settings: Some(DaemonSettings {
                query_interval_ms: 125_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        s.upstream.interface = "up0".into();
        s.upstream.querier = Some(HeardQuerier {
            address: "10.1.0.1".into(),
            version: 3,
            last_seen_ms_ago: 1000,
        });
        s.interfaces.push(InterfaceStatus {
            name: "dn0".into(),
            querier: "querier".into(),
            query_source: "10.2.0.1".into(),
            ..Default::default()
        });
        let mut s2 = s.clone();
        s2.uptime_ms += 2000;
        f.daemon = Ok((s, s2));
        f
    }

    fn levels<'a>(v: &'a [Finding], name: &str) -> Vec<&'a Finding> {
        v.iter().filter(|x| x.name == name).collect()
    }

    fn only(f: &Facts, name: &str) -> Finding {
        let all = all(f);
        let bad: Vec<_> = all.iter().filter(|x| x.level != Level::Ok).collect();
        assert_eq!(
            bad.len(),
            1,
            "exactly one non-ok finding expected: {bad:#?}"
        );
        assert_eq!(bad[0].name, name, "{bad:#?}");
        bad[0].clone()
    }

    #[test]
    fn a_clean_machine_is_all_ok() {
        let all = all(&clean());
        assert!(all.iter().all(|x| x.level == Level::Ok), "{all:#?}");
        for n in CHECKS {
            assert_eq!(levels(&all, n).len(), 1, "{n}: {all:#?}");
        }
        assert_eq!(crate::doctor::exit_code(&all), 0);
    }

    #[test]
    fn query_interval_of_300s_or_more_warns() {
        let mut f = clean();
        f.timers.query_interval = Duration::from_secs(300);
        let w = only(&f, "mac-ageing");
        assert!(
            w.text.contains("5m") && w.text.contains("--query-interval"),
            "{}",
            w.text
        );
        f.timers.query_interval = Duration::from_secs(299);
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
    }

    #[test]
    fn a_bridge_with_shorter_ageing_warns_and_a_flooding_port_warns() {
        let mut f = clean();
        let br = BridgeFacts {
            name: "br0".into(),
            ageing: Some(Duration::from_secs(60)),
            mcast_snooping: Some(false),
        };
        f.links.get_mut("dn0").unwrap().own_bridge = Some(br.clone());
        let w = only(&f, "mac-ageing");
        assert!(
            w.text.contains("br0") && w.text.contains("ageing_time"),
            "{}",
            w.text
        );
        // A zero ageing time never forgets.
        f.links
            .get_mut("dn0")
            .unwrap()
            .own_bridge
            .as_mut()
            .unwrap()
            .ageing = Some(Duration::ZERO);
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        let mut f = clean();
        let dn = f.links.get_mut("dn0").unwrap();
        dn.master = Some(BridgeFacts {
            ageing: Some(Duration::from_secs(300)),
            ..br
        });
        dn.port_mcast_flood = Some(true);
        let w = only(&f, "bridge-port");
        assert!(
            w.text.contains("mcast_flood off") && w.text.contains("mcast_to_unicast"),
            "{}",
            w.text
        );
        f.links.get_mut("dn0").unwrap().port_mcast_flood = Some(false);
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        f.links.get_mut("dn0").unwrap().port_mcast_flood = None;
        assert_eq!(only(&f, "bridge-port").level, Level::Warn);
    }

    #[test]
    fn another_querier_warns_with_address_and_version() {
        let mut f = clean();
        let (_, s) = f.daemon.as_mut().unwrap();
        s.interfaces[0].querier = "non-querier".into();
        s.interfaces[0].other_querier = Some("10.2.0.5".into());
        s.interfaces[0].other_querier_version = Some(2);
        let w = only(&f, "other-querier");
        assert!(
            w.text.contains("IGMPv2 querier 10.2.0.5") && w.text.contains("compat"),
            "{}",
            w.text
        );
        let (_, s) = f.daemon.as_mut().unwrap();
        s.interfaces[0].other_querier_version = None;
        assert!(only(&f, "other-querier").text.contains("version unknown"));
        let (_, s) = f.daemon.as_mut().unwrap();
        s.interfaces[0].other_querier = None;
        s.interfaces[0].mld_other_querier = Some("fe80::9".into());
        s.interfaces[0].mld_other_querier_version = Some(1);
        assert!(only(&f, "other-querier")
            .text
            .contains("MLDv1 querier fe80::9"));
    }

    #[test]
    fn upstream_querier_is_not_checked_on_a_layer_3_upstream() {
        let mut f = clean();
        let (_, s) = f.daemon.as_mut().unwrap();
        s.upstream.querier = None;
        s.uptime_ms = 3_600_000;
        let up = s.upstream.interface.clone();
        assert_eq!(
            upstream_querier(&f)[0].level,
            Level::Warn,
            "Ethernet: a missing querier warns"
        );
        f.links.get_mut(&up).unwrap().l3 = true;
        let r = upstream_querier(&f);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].level, Level::Ok);
        assert!(
            r[0].text.contains("not checked") && r[0].text.contains("layer-3"),
            "{r:?}"
        );
    }

    #[test]
    fn upstream_querier_missing_stale_or_igmpv2_with_ssm_warns() {
        let mut f = clean();
        f.timers = Timers {
            query_interval: Duration::from_secs(1),
            query_response_interval: Duration::from_millis(500),
            robustness: 1,
        };
        let (_, s) = f.daemon.as_mut().unwrap();
        s.upstream.querier = None;
        assert!(only(&f, "upstream-querier")
            .text
            .contains("no IGMP general query heard on up0"));
        // Not yet one membership interval up: not a warning.
        let (_, s) = f.daemon.as_mut().unwrap();
        s.uptime_ms = 1000;
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        let (_, s) = f.daemon.as_mut().unwrap();
        s.uptime_ms = 100_000;
        s.upstream.querier = Some(HeardQuerier {
            address: "10.1.0.1".into(),
            version: 3,
            last_seen_ms_ago: 2600,
        });
        // Stale: more than one membership interval (1 x 1 s + 2 x 500 ms) ago.
        assert!(only(&f, "upstream-querier").text.contains("2s ago"));
        let (_, s) = f.daemon.as_mut().unwrap();
        let q = s.upstream.querier.as_mut().unwrap();
        q.last_seen_ms_ago = 100;
        q.version = 2;
        assert!(
            all(&f).iter().all(|x| x.level == Level::Ok),
            "no SSM member: fine"
        );
        let (_, s) = f.daemon.as_mut().unwrap();
        s.upstream.joined.push(JoinStatus {
            group: "232.1.1.1".into(),
            sources: vec!["10.1.0.1".into()],
            ..Default::default()
        });
        let w = only(&f, "upstream-querier");
        assert!(
            w.text.contains("IGMPv2") && w.text.contains("232.1.1.1"),
            "{}",
            w.text
        );
        // An IPv6 group joined: the MLD querier is looked at too.
        let mut f = clean();
        let (_, s) = f.daemon.as_mut().unwrap();
        s.upstream.joined.push(JoinStatus {
            group: "ff0e::1".into(),
            sources: vec![],
            ..Default::default()
        });
        s.uptime_ms = 1_000_000;
        assert!(only(&f, "upstream-querier").text.contains("no MLD"));
    }

    #[test]
    fn downstream_addresses() {
        let mut f = clean();
        f.links.get_mut("dn0").unwrap().ipv4.clear();
        let (_, s) = f.daemon.as_mut().unwrap();
        s.interfaces[0].query_source = "0.0.0.0".into();
        assert!(only(&f, "ipv4-address").text.contains("0.0.0.0"));
        f.query_source = Some("10.2.0.1".parse().unwrap());
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        let mut f = clean();
        f.links.get_mut("dn0").unwrap().link_local = None;
        assert!(only(&f, "link-local").text.contains("--no-ipv6"));
        f.ipv6 = false;
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
    }

    #[test]
    fn strict_rp_filter_fails_for_sources_routed_elsewhere_and_warns_without_default_route() {
        let mut f = clean();
        f.links.get_mut("up0").unwrap().rp_filter = Some(1);
        // No route asked for the remote probe: missing default route.
        let w = only(&f, "rp-filter");
        assert_eq!(w.level, Level::Warn);
        assert!(w.text.contains("rp_filter=2"), "{}", w.text);
        f.routes.insert(REMOTE_PROBE, Ok(Some("up0".into())));
        f.routes
            .insert("10.1.0.1".parse().unwrap(), Ok(Some("up0".into())));
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        f.routes
            .insert("10.1.0.1".parse().unwrap(), Ok(Some("eth9".into())));
        let w = only(&f, "rp-filter");
        assert_eq!(w.level, Level::Fail);
        assert!(
            w.text.contains("10.1.0.1 (routed through eth9)"),
            "{}",
            w.text
        );
        // all=1 counts too (the kernel takes the larger); 2 is loose.
        let mut f = clean();
        f.rp_filter_all = Some(2);
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        f.rp_filter_all = None;
        assert!(all(&f).iter().any(|x| x.text.starts_with("not checked")));
    }

    #[test]
    fn small_rmem_max_drops_growing_and_firewall() {
        let mut f = clean();
        f.rmem_max = Some(212_992);
        assert!(only(&f, "rmem").text.contains("8388608"));
        let mut f = clean();
        let (_, s) = f.daemon.as_mut().unwrap();
        s.counters.insert("capture_drops".into(), 40);
        let w = only(&f, "capture-drops");
        assert!(
            w.text.contains("capture_drops +40") && w.text.contains("RPS"),
            "{}",
            w.text
        );
        let (a, _) = f.daemon.as_mut().unwrap();
        a.counters.insert("capture_drops".into(), 40);
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
        let mut f = clean();
        f.firewall = FirewallText::Read(vec![(
            "nft list ruleset".into(),
            "table inet t {\n chain c {\n  type filter hook input priority 0; policy accept;\n  meta l4proto igmp drop\n }\n}\n".into(),
        )]);
        let w = only(&f, "firewall");
        assert_eq!(w.level, Level::Fail);
        assert!(w.text.contains("meta l4proto igmp drop"), "{}", w.text);
        f.firewall = FirewallText::NotChecked("no nft".into());
        assert!(all(&f).iter().all(|x| x.level == Level::Ok));
    }

    #[test]
    fn without_daemon_the_daemon_checks_say_not_checked_and_missing_interfaces_fail() {
        let mut f = clean();
        f.daemon = Err("nothing answers".into());
        let a = all(&f);
        assert!(a.iter().all(|x| x.level == Level::Ok), "{a:#?}");
        assert!(levels(&a, "daemon")[0].text.contains("not running"));
        for n in ["other-querier", "upstream-querier", "capture-drops"] {
            assert!(levels(&a, n)[0].text.starts_with("not checked"), "{n}");
        }
        f.links.remove("dn0");
        assert_eq!(only(&f, "interfaces").level, Level::Fail);
        let mut f = Facts::empty();
        f.daemon = Err("x".into());
        let a = all(&f);
        assert_eq!(levels(&a, "interfaces")[0].level, Level::Fail);
        assert_eq!(crate::doctor::exit_code(&a), 1);
    }
}
