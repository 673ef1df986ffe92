//! The log lines of the control plane: what a snooper's notes say, in words, at a level and
//! rate an admin can live with, and the counters they bump.

use super::shared::Shared;
use super::stats::{LogBudget, RateLimit, Take};
use crate::core::family::GroupAddr;
use crate::core::membership::{
    CompatFallback, Event, FilterMode, IgnoreReason, LeaveReason, UpstreamWant,
};
use crate::core::querier::RoleChange;
use crate::core::snooper::{Count, Note};
use crate::core::IfaceId;
use log::{debug, info, warn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static WARN_LIMIT: RateLimit = RateLimit::new(Duration::from_secs(10));
/// Joins, leaves, expiries and upstream joins are logged one by one (info) up to this many
/// per 10 s; beyond, at debug only: a host churning memberships must not fill the disk.
static CHANGE_LOG: LogBudget = LogBudget::new(Duration::from_secs(10), 500);

/// Log a membership or upstream change at info, within [`CHANGE_LOG`]'s budget.
fn log_change(args: std::fmt::Arguments<'_>) {
    match CHANGE_LOG.take(Instant::now()) {
        Take::Log { held_back: 0 } => info!("{args}"),
        Take::Log { held_back } => {
            info!("{held_back} membership/upstream changes were logged at debug level only (more than 500 in 10 s)");
            info!("{args}")
        }
        Take::FirstHeld => {
            info!("more than 500 membership/upstream changes in 10 s: further ones at debug level only for now (counters and status have them)");
            debug!("{args}")
        }
        Take::Held => debug!("{args}"),
    }
}

/// Log a note of a snooper and bump its counter.
pub(crate) fn log_note<A: GroupAddr>(sh: &Shared, note: &Note<A>) {
    if let Some((k, n)) = note.count() {
        counter(sh, k).fetch_add(n, Ordering::Relaxed);
    }
    let ifname = |i: IfaceId| sh.down_name(i);
    match note {
        Note::Membership(e) => log_event(sh, e),
        Note::Role { iface, change } => {
            let n = ifname(*iface);
            // IGMP says nothing of its protocol, as it always did.
            let proto = if A::QUERIES_NEED_SOURCE { "MLD " } else { "" };
            match change {
                RoleChange::Yielded { other } => {
                    info!("{n}: {proto}querier {other} has a lower address; we stop querying")
                }
                RoleChange::Resumed => info!("{n}: the other querier went silent; we query again"),
            }
        }
        Note::MembersDropped { iface, count } => {
            if *count > 0 {
                warn!(
                    "downstream {}: {count} {} members dropped with the interface",
                    ifname(*iface),
                    A::PROTOCOL
                );
            }
        }
        Note::NoQuerySource { iface } => warn!(
            "{}: no IPv6 link-local address (yet): no MLD queries go out there until \
             it has one (hosts ignore queries from any other source, RFC 3810 section \
             5.1.14)",
            ifname(*iface)
        ),
        Note::OlderQuerier {
            iface,
            version,
            address,
            ours,
        } => {
            let p = if A::QUERIES_NEED_SOURCE {
                "MLDv"
            } else {
                "IGMPv"
            };
            warn!(
                "{}: {p}{version} querier {address} heard (snoopcast runs {p}{ours}): the hosts \
                 answer it in {p}{version}, without source filters, and snoopcast queries in \
                 {p}{version} while it stays; configure that querier for {p}{ours} (a Linux \
                 bridge: mcast_igmp_version 3 / mcast_mld_version 2) or turn it off",
                ifname(*iface)
            )
        }
        Note::Upstream { group, want } => {
            let up = &sh.cfg.upstream;
            let list = |s: &std::collections::BTreeSet<A>| {
                s.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match want {
                None => log_change(format_args!("upstream {up}: left {group}")),
                Some(UpstreamWant::AnySource) => log_change(format_args!(
                    "upstream {up}: reporting {group} (any source)"
                )),
                Some(UpstreamWant::Exclude(x)) => log_change(format_args!(
                    "upstream {up}: reporting {group} (any source except {})",
                    list(x)
                )),
                Some(UpstreamWant::Sources(x)) => log_change(format_args!(
                    "upstream {up}: reporting {group} from {}",
                    list(x)
                )),
            }
        }
        Note::QuerySourceFound { iface, source } => info!(
            "{}: IPv6 link-local address {source} is there now; MLD queries go out from it",
            ifname(*iface)
        ),
    }
}

fn counter(sh: &Shared, k: Count) -> &AtomicU64 {
    let c = &sh.counters;
    match k {
        Count::MembersExpired => &c.members_expired,
        Count::MembersDroppedIface => &c.members_dropped_iface,
        Count::LimitGroupsPerHost => &c.limit_groups_per_host,
        Count::LimitMembers => &c.limit_members,
        Count::LimitAddressesPerMac => &c.limit_addresses_per_mac,
        Count::IgnoredFiltered => &c.ignored_filtered,
        Count::IgnoredSsm => &c.ignored_ssm,
    }
}

fn filter_text<A: GroupAddr>(mode: FilterMode, sources: &[A]) -> String {
    let m = match mode {
        FilterMode::Include => "include",
        FilterMode::Exclude => "exclude",
    };
    let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    format!("{m}{{{}}}", s.join(","))
}

/// The log line of a membership event (its counter is bumped by [`log_note`]).
fn log_event<A: GroupAddr>(sh: &Shared, e: &Event<A>) {
    let ifname = |i: IfaceId| sh.down_name(i);
    match e {
        Event::Joined {
            host,
            ip,
            group,
            mode,
            sources,
        }
        | Event::Changed {
            host,
            ip,
            group,
            mode,
            sources,
        } => {
            let verb = if matches!(e, Event::Joined { .. }) {
                "join"
            } else {
                "change"
            };
            log_change(format_args!(
                "{verb}: {group} by {} ({ip}) on {}: {}",
                host.mac,
                ifname(host.iface),
                filter_text(*mode, sources)
            ))
        }
        Event::Left {
            host,
            ip,
            group,
            reason,
        } => {
            let why = match reason {
                LeaveReason::Leave => "leave",
                LeaveReason::EmptyInclude => "leave (include{})",
                LeaveReason::Expired => "expired",
                LeaveReason::InterfaceGone => "interface gone",
                LeaveReason::Filtered => "no longer allowed (--allow/--deny)",
            };
            log_change(format_args!(
                "{why}: {group} by {} ({ip}) on {}",
                host.mac,
                ifname(host.iface)
            ));
        }
        Event::CompatStarted {
            iface,
            group,
            version,
        } => {
            // As configured now (a reload may have changed it); the lock is free here.
            if sh.state.lock().v4.config().fallback[*iface] == CompatFallback::Multicast {
                log_change(format_args!(
                    "{}v{version} host present for {group} on {}: sending it there as L2 multicast \
                     (older hosts suppress each other's reports) until the older-host timer ends",
                    A::PROTOCOL,
                    ifname(*iface)
                ))
            } else {
                log_change(format_args!(
                    "{}v{version} host present for {group} on {}: keeping unicast (--compat-fallback unicast)",
                    A::PROTOCOL,
                    ifname(*iface)
                ))
            }
        }
        Event::CompatEnded { iface, group } => log_change(format_args!(
            "no older-version {} host left for {group} on {}: back to unicast copies",
            A::PROTOCOL,
            ifname(*iface)
        )),
        Event::SendGroupQuery { iface, group } => {
            debug!("{}: last-member query for {group}", ifname(*iface))
        }
        Event::Ignored {
            host,
            group,
            reason,
        } => {
            let limit = matches!(
                reason,
                IgnoreReason::GroupsPerHostLimit
                    | IgnoreReason::MembersLimit
                    | IgnoreReason::AddressesLimit
            );
            if limit && WARN_LIMIT.allow(Instant::now()) {
                warn!(
                    "ignored {group} from {} on {}: {reason:?} reached (counted; further ones not logged for 10 s)",
                    host.mac,
                    ifname(host.iface)
                );
            } else {
                debug!(
                    "ignored {group} from {} on {}: {reason:?}",
                    host.mac,
                    ifname(host.iface)
                );
            }
        }
    }
}
