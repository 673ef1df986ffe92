//! The downstream capture thread: reads IGMP and MLD from one downstream interface, judges
//! each frame (`wire::classify`), counts it and hands what is valid to the control thread.

use super::shared::{GroupMsg, HeardQuery, IgmpIn, Shared, MAX_QUEUED_WEIGHT, TICK};
use super::stats::{add, inc, Counters, RateLimit};
use super::sys;
use crate::core::family::GroupAddr;
use crate::core::upstream::sources_lost;
use crate::core::IfaceId;
use crate::wire::classify::{self, DownDrop, MldDrop};
use crate::wire::igmp::Message;
use crate::wire::{mld, MacAddr};
use crossbeam_channel::{Sender, TrySendError};
use log::{debug, info, warn};
use socket2::Socket;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static WARN_MALFORMED: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_MLD_QUERY_SOURCE: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_CAPTURE: RateLimit = RateLimit::new(Duration::from_secs(10));

/// The next captured frame, or None after a read timeout (so the caller can look at the stop
/// flag) or an error (logged at a limited rate, then a pause).
fn next_frame<'a>(
    rx: &'a mut Box<dyn pnet_datalink::DataLinkReceiver>,
    name: &str,
) -> Option<&'a [u8]> {
    match rx.next() {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => None,
        Err(e) => {
            if WARN_CAPTURE.allow(Instant::now()) {
                warn!("{name}: capture error: {e}");
            }
            std::thread::sleep(TICK);
            None
        }
    }
}

/// Downstream capture: read IGMP, check it, hand it to the control thread. Runs until `stop`
/// or `cancel` (the interface went away). `stats` is the capture socket itself, for its
/// drop count.
pub(crate) fn capture_downstream(
    sh: &Shared,
    iface: IfaceId,
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    stats: &Socket,
    tx: Sender<IgmpIn>,
    cancel: &AtomicBool,
) {
    let name = &sh.down_name(iface);
    let c = &sh.counters;
    let mut drops_read = Instant::now();
    while !sh.stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        let frame = next_frame(&mut rx, name);
        // 0. What the kernel dropped for us (a flood faster than we read), once a second.
        let now = Instant::now();
        if now.duration_since(drops_read) >= TICK {
            drops_read = now;
            if let Ok(d) = sys::take_drops(stats) {
                add(&c.igmp_capture_drops, d);
            }
        }
        let Some(frame) = frame else {
            continue;
        };
        // 1. Parse and check: IGMP (classify::downstream) or MLD (classify::downstream_mld),
        //    then count by type.
        let (src_mac, msg) = if classify::is_ipv6_frame(frame) {
            if !sh.cfg.ipv6 {
                continue;
            }
            match accept_mld_frame(c, name, frame) {
                Some(x) => x,
                None => continue,
            }
        } else {
            match accept_igmp_frame(c, name, frame) {
                Some(x) => x,
                None => continue,
            }
        };
        // 2. Hand over; never block the capture on a slow control thread, and never queue
        //    more than MAX_QUEUED_WEIGHT records and sources in all.
        let weight = match &msg {
            GroupMsg::V4(_, m) => m.weight(),
            GroupMsg::V6(_, m) => m.weight(),
            GroupMsg::UpV4(..) | GroupMsg::UpV6(..) => 1,
        };
        if sh.queued_weight.fetch_add(weight, Ordering::AcqRel) + weight > MAX_QUEUED_WEIGHT {
            sh.queued_weight.fetch_sub(weight, Ordering::AcqRel);
            inc(&c.events_dropped);
            continue;
        }
        match tx.try_send(IgmpIn {
            iface,
            src_mac,
            msg,
            weight,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                sh.queued_weight.fetch_sub(weight, Ordering::AcqRel);
                inc(&c.events_dropped)
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// The upstream query listener: reads IGMP and MLD on the upstream (the same socket filter
/// as a downstream capture) and hands every query to the control thread, whose reporter
/// answers it (RFC 3376 5.2, RFC 3810 6.2) and follows an older querier's version. The
/// last general query of each family is also kept, for status and `snoopcast doctor`. Under
/// an older querier (IGMPv1/v2, MLDv1) it warns, naming them, about the source-specific
/// wants that the older reports lose (RFC 3376 7.2.1, RFC 4604 2.1). Reports of other hosts
/// upstream are passed over. Runs until `stop` or `cancel`.
pub(crate) fn listen_upstream_queries(
    sh: &Shared,
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    name: &str,
    ev: Sender<IgmpIn>,
    cancel: &AtomicBool,
) {
    // Per family: when the source-specific wants an older querier loses were last warned
    // about, and which.
    let mut warned: [Option<(Instant, Vec<String>)>; 2] = [None, None];
    while !sh.stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        let Some(frame) = next_frame(&mut rx, name) else {
            continue;
        };
        let Some((src_mac, msg)) = upstream_query(frame) else {
            continue;
        };
        let (source, version, general): (std::net::IpAddr, u8, bool) = match &msg {
            GroupMsg::UpV4(src, q) => ((*src).into(), q.version, q.group.is_unspecified()),
            GroupMsg::UpV6(src, q) => ((*src).into(), q.version, q.group.is_unspecified()),
            _ => continue,
        };
        let family = usize::from(source.is_ipv6());
        if family == 1 && !sh.cfg.ipv6 {
            continue;
        }
        let weight = 1;
        sh.queued_weight.fetch_add(weight, Ordering::AcqRel);
        match ev.try_send(IgmpIn {
            iface: 0,
            src_mac,
            msg,
            weight,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                sh.queued_weight.fetch_sub(weight, Ordering::AcqRel);
                inc(&sh.counters.events_dropped);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
        if !general {
            continue;
        }
        let heard = HeardQuery {
            source,
            version,
            at: Instant::now(),
        };
        let before = sh.up_queriers.lock()[family].replace(heard);
        let changed = before.is_none_or(|b| (b.source, b.version) != (source, version));
        if changed {
            let proto = if family == 0 { "IGMP" } else { "MLD" };
            info!("{name}: upstream {proto} querier {source}, version {version}");
        }
        let lost = {
            let st = sh.state.lock();
            if family == 0 {
                names(&sources_lost(version, st.v4.reporter().state()))
            } else {
                names(&sources_lost(version, st.v6.reporter().state()))
            }
        };
        if lost.is_empty() {
            warned[family] = None;
            continue;
        }
        let now = Instant::now();
        let due = warned[family]
            .as_ref()
            .is_none_or(|(at, was)| *was != lost || now >= *at + OLD_UPSTREAM_WARN_EVERY);
        if due {
            let (old, new) = if family == 0 {
                (format!("IGMPv{version}"), "IGMPv3")
            } else {
                (format!("MLDv{version}"), "MLDv2")
            };
            warn!(
                "{name}: the upstream querier {source} runs {old}: snoopcast reports in {old}, \
                 without sources, so these source-specific groups reach it as any-source and an \
                 SSM router ignores them: {}; make the upstream router run {new}",
                lost.join(", ")
            );
            warned[family] = Some((now, lost));
        }
    }
}

/// A query on the upstream, well-formed by the rules of a downstream frame (checksums, TTL
/// or hop limit 1, MLD from a link-local address with Router Alert), with its source MAC.
fn upstream_query(frame: &[u8]) -> Option<(MacAddr, GroupMsg)> {
    use crate::core::membership::Heard;
    if classify::is_ipv6_frame(frame) {
        let f = classify::downstream_mld(frame).ok()?;
        match Heard::from(f.message) {
            Heard::Query(q) => Some((f.src_mac, GroupMsg::UpV6(f.ip.src, q))),
            _ => None,
        }
    } else {
        let f = classify::downstream(frame).ok()?;
        match Heard::from(f.message) {
            Heard::Query(q) => Some((f.src_mac, GroupMsg::UpV4(f.ip.src, q))),
            _ => None,
        }
    }
}

/// How often the warning about source-specific joins under an older upstream querier
/// repeats while nothing changes.
const OLD_UPSTREAM_WARN_EVERY: Duration = Duration::from_secs(600);

/// The groups as the warning names them: SSM ones marked.
fn names<A: GroupAddr>(groups: &[A]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            if g.is_ssm() {
                format!("{g} (SSM)")
            } else {
                g.to_string()
            }
        })
        .collect()
}

/// An IPv4 frame from a downstream capture: Ethernet, IPv4 (header length, checksum, total
/// length), IGMP checksum, a unicast source MAC, then TTL 1 (RFC 3376 section 4 / RFC 2236
/// section 2: anything else did not come from this link). Counted either way.
fn accept_igmp_frame(c: &Counters, name: &str, frame: &[u8]) -> Option<(MacAddr, GroupMsg)> {
    let f = match classify::downstream(frame) {
        Ok(f) => f,
        // RFC 3376 section 4: unrecognised message types are silently ignored. They are
        // well-formed IGMP of other protocols (mtrace, DVMRP, PIMv1), not a broken host.
        Err(DownDrop::Malformed(crate::wire::WireError::UnknownType(t))) => {
            inc(&c.igmp_unknown_type);
            debug!("{name}: ignored IGMP of unknown type 0x{t:02x}");
            return None;
        }
        Err(DownDrop::BadTtl { ttl, src }) => {
            inc(&c.igmp_bad_ttl);
            debug!("{name}: ignored IGMP with TTL {ttl} from {src}");
            return None;
        }
        Err(why) => {
            inc(&c.igmp_malformed);
            if WARN_MALFORMED.allow(Instant::now()) {
                warn!("{name}: dropped malformed IGMP ({why}); further ones are counted, not logged, for 10 s");
            }
            return None;
        }
    };
    match &f.message {
        Message::Query(_) => inc(&c.queries_received),
        Message::ReportV1 { .. } => inc(&c.reports_v1),
        Message::ReportV2 { .. } => inc(&c.reports_v2),
        Message::LeaveV2 { .. } => inc(&c.leaves_v2),
        Message::ReportV3 { .. } => inc(&c.reports_v3),
    }
    debug!("{name}: from {} ({}): {:?}", f.src_mac, f.ip.src, f.message);
    Some((f.src_mac, GroupMsg::V4(f.ip.src, f.message.into())))
}

/// An IPv6 frame from a downstream capture: an MLD message judged by
/// [`classify::downstream_mld`] (well-formed, unicast source MAC, hop limit 1, link-local
/// source, Router Alert). Other ICMPv6 (neighbour discovery) is passed over silently.
fn accept_mld_frame(c: &Counters, name: &str, frame: &[u8]) -> Option<(MacAddr, GroupMsg)> {
    let f = match classify::downstream_mld(frame) {
        Ok(f) => f,
        Err(MldDrop::NotMld) => return None,
        Err(MldDrop::Malformed(crate::wire::WireError::UnknownType(t))) => {
            inc(&c.mld_unknown_type);
            debug!("{name}: ignored MLD of unknown type {t}");
            return None;
        }
        Err(why @ MldDrop::BadHopLimit { .. }) => {
            inc(&c.mld_bad_hop_limit);
            debug!("{name}: ignored MLD: {why}");
            return None;
        }
        Err(why @ MldDrop::BadSource { query, .. }) => {
            inc(&c.mld_bad_source);
            // RFC 3810 section 5.1.14: a query from a non-link-local source is discarded
            // and SHOULD be logged (reports are only counted: hosts can be many).
            if query && WARN_MLD_QUERY_SOURCE.allow(Instant::now()) {
                warn!("{name}: ignored an MLD {why} (RFC 3810 5.1.14: a querier must use its link-local address); counted in mld_bad_source, not logged again for 10 s");
            } else {
                debug!("{name}: ignored MLD: {why}");
            }
            return None;
        }
        Err(why @ MldDrop::NoRouterAlert { .. }) => {
            inc(&c.mld_no_router_alert);
            debug!("{name}: ignored MLD: {why}");
            return None;
        }
        Err(why) => {
            inc(&c.mld_malformed);
            if WARN_MALFORMED.allow(Instant::now()) {
                warn!("{name}: dropped malformed MLD ({why}); further ones are counted, not logged, for 10 s");
            }
            return None;
        }
    };
    match &f.message {
        mld::Message::Query(_) => inc(&c.mld_queries_received),
        mld::Message::ReportV1 { .. } => inc(&c.mld_reports_v1),
        mld::Message::DoneV1 { .. } => inc(&c.mld_dones),
        mld::Message::ReportV2 { .. } => inc(&c.mld_reports_v2),
    }
    debug!("{name}: from {} ({}): {:?}", f.src_mac, f.ip.src, f.message);
    Some((f.src_mac, GroupMsg::V6(f.ip.src, f.message.into())))
}
