//! The status snapshot: copied from both snoopers under the lock, formatted after it, for
//! the status socket.

use super::shared::Shared;
use crate::config::Downstream;
use crate::core::family::GroupAddr;
use crate::core::membership::{CompatFallback, FilterMode, HostKey, UpstreamWant};
use crate::core::querier::{OlderQuerier, Role, Timers};
use crate::core::reporter::{LastQuery, LastReport};
use crate::core::snooper::Snooper;
use crate::core::IfaceId;
use crate::status::{
    AddressFilter, CompatStatus, DaemonSettings, GroupStatus, GroupTraffic, HeardQuerier,
    InterfaceStatus, JoinStatus, LinkTimers, MemberStatus, QueryHeard, ReportSent, Snapshot,
    UpstreamStatus,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::time::Instant;

fn left_ms(t: Instant, now: Instant) -> u64 {
    t.saturating_duration_since(now).as_millis() as u64
}

/// One family's part of a status snapshot, copied under the lock.
struct FamilyCopy<A> {
    members: Vec<(A, HostKey, crate::core::membership::Member<A>)>,
    compat: Vec<(A, IfaceId, Instant)>,
    joined: BTreeMap<A, UpstreamWant<A>>,
    held: BTreeMap<A, Instant>,
    report_version: u8,
    last_query: Option<LastQuery<A>>,
    last_report: Option<LastReport>,
    /// Each querier's role, source address and the other querier's version.
    roles: Vec<(Role<A>, A, Option<u8>)>,
    /// Each querier's older-version querier heard, and the timers its link runs by.
    links: Vec<(Option<OlderQuerier<A>>, Timers, bool)>,
    /// Each downstream's older-host delivery, as configured now (a reload changes it).
    fallback: Vec<CompatFallback>,
    /// Per group in the forwarding snapshot: upstream packets, bytes, when the last came.
    traffic: BTreeMap<A, (u64, u64, Option<u64>)>,
}

fn copy_family<A: GroupAddr>(s: &Snooper<A>, ifaces: usize, now_ms: u64) -> FamilyCopy<A> {
    let (table, queriers, rep) = (s.table(), s.queriers(), s.reporter());
    let members: Vec<_> = table.members().map(|(g, h, m)| (g, h, m.clone())).collect();
    let groups: BTreeSet<A> = members
        .iter()
        .map(|(g, _, _)| *g)
        .chain(table.upstream_wants().into_keys())
        .collect();
    let mut compat = Vec::new();
    for g in &groups {
        for i in 0..ifaces {
            if let Some(t) = table.compat_until(i, *g) {
                compat.push((*g, i, t));
            }
        }
    }
    let traffic = groups
        .iter()
        .filter_map(|g| {
            let t = s.traffic().get(g)?;
            Some((
                *g,
                (
                    t.packets.load(Ordering::Relaxed),
                    t.bytes.load(Ordering::Relaxed),
                    t.last_packet_ms_ago(now_ms),
                ),
            ))
        })
        .collect();
    FamilyCopy {
        members,
        compat,
        traffic,
        joined: rep.state().clone(),
        held: rep.held().clone(),
        report_version: rep.version(),
        last_query: rep.last_query().cloned(),
        last_report: rep.last_report().cloned(),
        roles: queriers
            .iter()
            .map(|q| (q.role(), q.own_ip(), q.other_version()))
            .collect(),
        links: queriers
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let t = table.timers(i);
                (q.older_querier(), t, t != table.settings().timers())
            })
            .collect(),
        fallback: s.config().fallback.clone(),
    }
}

/// Add one family's groups and joins to the snapshot being built.
fn format_family<A: GroupAddr>(
    slots: &[Option<Downstream>],
    now: Instant,
    f: FamilyCopy<A>,
    groups: &mut BTreeMap<IpAddr, GroupStatus>,
    joined: &mut Vec<JoinStatus>,
) {
    let ifname = |i: IfaceId| {
        slots
            .get(i)
            .cloned()
            .flatten()
            .map_or_else(|| "-".into(), |d| d.name)
    };
    let new_group = |g: A| GroupStatus {
        group: g.to_string(),
        multicast_on: vec![],
        members: vec![],
        upstream: Default::default(),
    };
    let v6 = A::PROTOCOL == <Ipv6Addr as GroupAddr>::PROTOCOL;
    for (g, h, m) in f.members {
        groups
            .entry(g.into())
            .or_insert_with(|| new_group(g))
            .members
            .push(MemberStatus {
                interface: ifname(h.iface),
                mac: h.mac.to_string(),
                ip: m.ip.to_string(),
                mode: mode_text(m.mode),
                sources: m.sources.iter().map(|s| s.to_string()).collect(),
                igmp_version: (!v6).then_some(m.version),
                mld_version: v6.then_some(m.version),
                expires_in_ms: left_ms(m.expires, now),
                packets: m.counters.packets.load(Ordering::Relaxed),
                bytes: m.counters.bytes.load(Ordering::Relaxed),
                addresses: m
                    .per_ip
                    .iter()
                    .map(|(ip, f)| AddressFilter {
                        ip: ip.to_string(),
                        mode: mode_text(f.mode),
                        sources: f.sources.iter().map(|s| s.to_string()).collect(),
                        expires_in_ms: left_ms(f.expires, now),
                    })
                    .collect(),
            });
    }
    for (g, i, t) in f.compat {
        groups
            .entry(g.into())
            .or_insert_with(|| new_group(g))
            .multicast_on
            .push(CompatStatus {
                interface: ifname(i),
                delivery: match f.fallback[i] {
                    CompatFallback::Multicast => "multicast".into(),
                    CompatFallback::Unicast => "unicast".into(),
                },
                expires_in_ms: left_ms(t, now),
            });
    }
    for (g, (packets, bytes, last_packet_ms_ago)) in f.traffic {
        groups
            .entry(g.into())
            .or_insert_with(|| new_group(g))
            .upstream = GroupTraffic {
            packets,
            bytes,
            last_packet_ms_ago,
        };
    }
    let text = |s: &BTreeSet<A>| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let held = f.held;
    joined.extend(f.joined.into_iter().map(|(g, w)| JoinStatus {
        group: g.to_string(),
        leaving_in_ms: held.get(&g).map(|t| left_ms(*t, now)),
        sources: match &w {
            UpstreamWant::Sources(s) => text(s),
            _ => vec![],
        },
        exclude: match &w {
            UpstreamWant::Exclude(x) => text(x),
            _ => vec![],
        },
    }));
}

fn query_heard<A: GroupAddr>(q: &LastQuery<A>, now: Instant) -> QueryHeard {
    QueryHeard {
        address: q.source.to_string(),
        version: q.version,
        group: (!q.group.is_unspecified()).then(|| q.group.to_string()),
        ms_ago: now.saturating_duration_since(q.at).as_millis() as u64,
    }
}

fn report_sent(r: &LastReport, now: Instant) -> ReportSent {
    ReportSent {
        kind: r.kind.into(),
        version: r.version,
        records: r.records,
        ms_ago: now.saturating_duration_since(r.at).as_millis() as u64,
    }
}

fn mode_text(m: FilterMode) -> String {
    match m {
        FilterMode::Include => "include".into(),
        FilterMode::Exclude => "exclude".into(),
    }
}

fn older_status<A: GroupAddr>(o: OlderQuerier<A>, now: Instant) -> HeardQuerier {
    HeardQuerier {
        address: o.address.to_string(),
        version: o.version,
        last_seen_ms_ago: now.saturating_duration_since(o.last_seen).as_millis() as u64,
    }
}

fn link_timers(t: Timers, adopted: bool) -> LinkTimers {
    LinkTimers {
        robustness: t.robustness,
        query_interval_ms: t.query_interval.as_millis() as u64,
        query_response_interval_ms: t.query_response_interval.as_millis() as u64,
        membership_interval_ms: t.group_membership_interval().as_millis() as u64,
        source: if adopted { "adopted" } else { "configured" }.into(),
    }
}

fn role_text<A: GroupAddr>(r: Role<A>) -> (String, Option<String>) {
    match r {
        Role::Querier => ("querier".into(), None),
        Role::NonQuerier { other, .. } => ("non-querier".into(), Some(other.to_string())),
        Role::Disabled { other } => ("off".into(), other.map(|o| o.to_string())),
    }
}

/// Build a status snapshot: copy under the lock, format after.
pub(crate) fn snapshot(sh: &Shared) -> Snapshot {
    let now = Instant::now();
    let now_ms = now.duration_since(sh.started).as_millis() as u64;
    let cfg = &sh.cfg;
    let slots = sh.slots.read().clone();
    let n = slots.len();
    let (v4, v6, settings) = {
        let st = sh.state.lock();
        let (c4, c6) = (st.v4.config(), st.v6.config());
        let settings = DaemonSettings {
            query_interval_ms: c4.settings.query_interval.as_millis() as u64,
            query_response_interval_ms: c4.settings.query_response_interval.as_millis() as u64,
            robustness: c4.settings.robustness,
            igmp_version: c4.querier.version,
            mld_version: c6.querier.version,
            ipv6: cfg.ipv6,
        };
        (
            copy_family(&st.v4, n, now_ms),
            copy_family(&st.v6, n, now_ms),
            settings,
        )
    };
    let reported = (
        v4.report_version,
        v6.report_version,
        v4.last_query.as_ref().map(|q| query_heard(q, now)),
        v6.last_query.as_ref().map(|q| query_heard(q, now)),
        v4.last_report.as_ref().map(|r| report_sent(r, now)),
        v6.last_report.as_ref().map(|r| report_sent(r, now)),
    );
    let up_queriers = *sh.up_queriers.lock();
    let heard = |q: Option<super::shared::HeardQuery>| {
        q.map(|q| HeardQuerier {
            address: q.source.to_string(),
            version: q.version,
            last_seen_ms_ago: now.saturating_duration_since(q.at).as_millis() as u64,
        })
    };
    let roles: Vec<_> = v4
        .roles
        .iter()
        .copied()
        .zip(v6.roles.iter().copied())
        .collect();
    let links: Vec<_> = v4
        .links
        .iter()
        .copied()
        .zip(v6.links.iter().copied())
        .collect();
    let mut groups: BTreeMap<IpAddr, GroupStatus> = BTreeMap::new();
    let mut joined = Vec::new();
    let fallback = v4.fallback.clone();
    format_family(&slots, now, v4, &mut groups, &mut joined);
    format_family(&slots, now, v6, &mut groups, &mut joined);
    // The slots in use, in slot order (the configured order, then what reloads added).
    let interfaces = slots
        .iter()
        .zip(roles)
        .zip(links)
        .zip(&sh.down)
        .zip(fallback)
        .filter_map(|((((d, r), l), link), fallback)| Some((d.as_ref()?, r, l, link, fallback)))
        .map(
            |(d, ((r, _, ver), (r6, src6, ver6)), (l4, l6), link, fallback)| {
                let link = link.read().clone();
                let (querier, other) = role_text(r);
                let (mld_querier, mld_other) = if cfg.ipv6 {
                    role_text(r6)
                } else {
                    ("off (--no-ipv6)".into(), None)
                };
                InterfaceStatus {
                    name: d.name.clone(),
                    state: if link.is_some() {
                        "up".into()
                    } else {
                        "down".into()
                    },
                    query_source: link
                        .as_ref()
                        .map(|l| l.link.query_source)
                        .or(d.query_source)
                        .unwrap_or(Ipv4Addr::UNSPECIFIED)
                        .to_string(),
                    querier,
                    other_querier: other,
                    other_querier_version: ver,
                    compat_fallback: match fallback {
                        CompatFallback::Multicast => "multicast".into(),
                        CompatFallback::Unicast => "unicast".into(),
                    },
                    query_source6: (cfg.ipv6 && link.is_some() && !src6.is_unspecified())
                        .then(|| src6.to_string()),
                    mld_querier,
                    mld_other_querier: mld_other,
                    mld_other_querier_version: if cfg.ipv6 { ver6 } else { None },
                    older_querier: l4.0.map(|o| older_status(o, now)),
                    mld_older_querier: l6.0.filter(|_| cfg.ipv6).map(|o| older_status(o, now)),
                    timers: Some(link_timers(l4.1, l4.2)),
                    mld_timers: cfg.ipv6.then(|| link_timers(l6.1, l6.2)),
                }
            },
        )
        .collect();
    Snapshot {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_ms: now.duration_since(sh.started).as_millis() as u64,
        groups: groups.into_values().collect(),
        upstream: UpstreamStatus {
            interface: cfg.upstream.clone(),
            state: if sh.up_link.read().is_some() {
                "up".into()
            } else {
                "down".into()
            },
            joined,
            report_version: reported.0,
            mld_report_version: if cfg.ipv6 { reported.1 } else { 0 },
            last_query: reported.2,
            mld_last_query: reported.3,
            last_report: reported.4,
            mld_last_report: reported.5,
            querier: heard(up_queriers[0]),
            mld_querier: heard(up_queriers[1]),
            querier_version: up_queriers[0].map(|q| q.version),
            mld_querier_version: up_queriers[1].map(|q| q.version),
        },
        interfaces,
        counters: sh.counters.snapshot(),
        settings: Some(settings),
    }
}
