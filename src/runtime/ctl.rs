//! The control thread (`ctl`): waits for the earliest deadline of either snooper or for a
//! message, feeds both snoopers, and carries out what they return. Every decision is taken
//! in `core::snooper`; this file only waits, translates and executes.

use super::family_io::FamilyIo;
use super::links::{LinkChange, Links};
use super::notes::log_note;
use super::reload::Reconfig;
use super::shared::{GroupMsg, IgmpIn, Shared};
use super::stats::{inc, RateLimit};
use super::{iface, notify, sys};
use crate::core::querier::Mode;
use crate::core::reporter::ReportOut;
use crate::core::snooper::{Action, Input, QueryOut, Snooper};
use crate::core::upstream::{FilterOp, LinkFilter, MAX_LINK_GROUPS};
use crate::wire::{LinkType, MacAddr};
use crossbeam_channel::{select, Receiver};
use log::{debug, info, warn};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often interfaces are checked for coming and going.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Messages taken from the queue per round, after the first.
const BATCH: usize = 255;

static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_REPORT: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_FILTER: RateLimit = RateLimit::new(Duration::from_secs(10));

/// The upstream as the control thread keeps it: the link-layer filter of its data socket,
/// the group MACs each family wants in it, the addresses reports come from.
#[derive(Default)]
struct UpSide {
    filter: LinkFilter,
    /// Per family (IPv4, IPv6): the MACs of the groups reported.
    listen: [BTreeSet<MacAddr>; 2],
    /// Its primary IPv4 address (0.0.0.0 when it has none: RFC 3376 section 4.2.13).
    source4: Option<Ipv4Addr>,
    /// Its link-local address (:: until it has one: RFC 3810 section 5.2.13).
    source6: Option<Ipv6Addr>,
}

impl UpSide {
    /// Read the upstream's addresses again (at open, and with each interface check).
    fn refresh(&mut self, sh: &Shared) {
        if let Some(i) = iface::lookup(&sh.cfg.upstream) {
            self.source4 = i.ipv4;
            self.source6 = i.ipv6_link_local;
        }
    }

    /// Bring the data socket's link-layer memberships to the union of both families' MACs.
    fn refilter(&mut self, sh: &Shared) {
        let Some(tx) = sh.up_tx.read().clone() else {
            return;
        };
        if tx.info.link != LinkType::Ethernet {
            // An L3 link (tun) has no link-layer filter: it passes every packet.
            return;
        }
        let want: BTreeSet<MacAddr> = self.listen[0].union(&self.listen[1]).copied().collect();
        let (_, ops) = self.filter.plan(&want, MAX_LINK_GROUPS);
        for op in ops {
            let r = match op {
                FilterOp::Add(m) => {
                    sys::packet_membership(&tx.capture, tx.info.index, Some(m), true)
                }
                FilterOp::Drop(m) => {
                    sys::packet_membership(&tx.capture, tx.info.index, Some(m), false)
                }
                FilterOp::AllMulticast(on) => {
                    sys::packet_membership(&tx.capture, tx.info.index, None, on)
                }
            };
            match r {
                Ok(()) => self.filter.apply(op),
                Err(e) => {
                    inc(&sh.counters.upstream_filter_errors);
                    if WARN_FILTER.allow(Instant::now()) {
                        warn!(
                            "upstream {}: changing its multicast filter ({op:?}) failed: {e}; \
                             the groups it concerns may not arrive (counted in \
                             upstream_filter_errors, not logged again for 10 s)",
                            tx.info.name
                        );
                    }
                }
            }
        }
    }
}

/// One round's inputs, per family.
struct Inputs {
    v4: Vec<Input<Ipv4Addr>>,
    v6: Vec<Input<Ipv6Addr>>,
}

/// The control thread's body. `opened`: what opened at start; `reloads`: new snooper
/// configurations. Returns after the stop flag, once every upstream group is left and every
/// capture thread has ended.
pub(crate) fn control_loop(
    sh: &Arc<Shared>,
    mut links: Links,
    opened: Vec<LinkChange>,
    rx: Receiver<IgmpIn>,
    mut reloads: Receiver<Reconfig>,
) {
    let mut up = UpSide::default();
    up.refresh(sh);
    let mut changes = opened;
    let mut inbox: Vec<IgmpIn> = Vec::new();
    let mut next_watch = Instant::now() + WATCH_INTERVAL;
    let watchdog = notify::watchdog_period();
    let mut next_ping = Instant::now();
    let mut said = String::new();
    loop {
        // 0. Tell systemd's watchdog this loop is alive (it is the thread that would hang).
        if let Some(period) = watchdog {
            let now = Instant::now();
            if now >= next_ping {
                notify::watchdog();
                next_ping = now + period;
            }
        }
        // 1. Wait for a message or the earliest deadline, at most until the interface check.
        let now = Instant::now();
        let deadline = {
            let st = sh.state.lock();
            [st.v4.next_deadline(now), st.v6.next_deadline(now)]
                .into_iter()
                .flatten()
                .fold(next_watch, Instant::min)
        };
        let deadline = match watchdog {
            Some(_) => deadline.min(next_ping),
            None => deadline,
        };
        let mut reconfig = None;
        select! {
            recv(rx) -> m => if let Ok(m) = m {
                inbox.push(m);
                inbox.extend(rx.try_iter().take(BATCH));
            },
            recv(reloads) -> r => match r {
                Ok(r) => reconfig = Some(r),
                // The reloader is gone: wait on the messages alone.
                Err(_) => reloads = crossbeam_channel::never(),
            },
            default(deadline.max(now).saturating_duration_since(now)) => {}
        }
        if let Ok(r) = reloads.try_recv() {
            reconfig = Some(r);
        }
        let stopping = sh.stop.load(Ordering::Relaxed);
        let now = Instant::now();
        // A reload's downstream list: close what it removed, look for what it added now.
        if let Some(r) = &reconfig {
            *sh.slots.write() = r.slots.clone();
            changes.extend(links.set_slots(sh, now));
            next_watch = now;
        }
        // 2. Turn what happened into inputs.
        let mut found = Vec::new();
        if now >= next_watch && !stopping {
            changes.extend(links.watch(sh, now));
            up.refresh(sh);
            next_watch = now + WATCH_INTERVAL;
            let line = status_line(sh, links.upstream_index().is_some());
            if line != said {
                notify::status(&line);
                said = line;
            }
            let awaiting: Vec<_> = sh.state.lock().v6.awaiting_source().collect();
            for iface in awaiting {
                let name = &sh.down_name(iface);
                if let Some(source) = iface::lookup(name).and_then(|f| f.ipv6_link_local) {
                    found.push(Input::DownAddress { iface, source });
                }
            }
        }
        // Link changes first: a message queued before its interface closed is then dropped,
        // and an address found for an interface that just closed is ignored.
        let mut inputs = Inputs {
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for ch in changes.drain(..) {
            if matches!(ch, LinkChange::UpOpened(_)) {
                // A new data socket: it holds no memberships yet.
                up.filter = LinkFilter::default();
                up.refresh(sh);
            }
            link_change(sh, ch, &mut inputs);
        }
        inputs.v6.append(&mut found);
        if let Some(r) = reconfig {
            // A reload: before this round's messages, so they meet the new filter.
            inputs.v4.push(reconfigure(&sh.state.lock().v4, r.v4));
            inputs.v6.push(reconfigure(&sh.state.lock().v6, r.v6));
        }
        for m in inbox.drain(..) {
            sh.queued_weight.fetch_sub(m.weight, Ordering::AcqRel);
            match m.msg {
                GroupMsg::V4(src, msg) => inputs.v4.push(Input::Heard {
                    iface: m.iface,
                    mac: m.src_mac,
                    src,
                    msg,
                }),
                GroupMsg::V6(src, msg) => inputs.v6.push(Input::Heard {
                    iface: m.iface,
                    mac: m.src_mac,
                    src,
                    msg,
                }),
                GroupMsg::UpV4(src, query) => inputs.v4.push(Input::UpstreamQuery { src, query }),
                GroupMsg::UpV6(src, query) => inputs.v6.push(Input::UpstreamQuery { src, query }),
            }
        }
        if stopping {
            notify::stopping();
            inputs.v4.push(Input::Stop);
            inputs.v6.push(Input::Stop);
        }
        // 3. Feed both snoopers under the lock, 4. carry out outside it.
        let (a4, a6) = {
            let mut st = sh.state.lock();
            (
                feed(&mut st.v4, inputs.v4, now),
                feed(&mut st.v6, inputs.v6, now),
            )
        };
        let src4 = up.source4.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let src6 = up.source6.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let l4 = execute(sh, src4, a4);
        let l6 = execute(sh, src6, a6);
        if l4.is_some() || l6.is_some() {
            if let Some(m) = l4 {
                up.listen[0] = m;
            }
            if let Some(m) = l6 {
                up.listen[1] = m;
            }
            up.refilter(sh);
        }
        if stopping {
            links.shutdown();
            return;
        }
    }
}

/// The STATUS= line for systemd: members and groups of both families, and the upstream.
fn status_line(sh: &Shared, upstream_open: bool) -> String {
    let st = sh.state.lock();
    let (t4, t6) = (st.v4.table(), st.v6.table());
    let groups = t4.group_count() + t6.group_count();
    format!(
        "{} members in {} groups; upstream {} {}",
        t4.member_count() + t6.member_count(),
        groups,
        sh.cfg.upstream,
        if upstream_open { "up" } else { "down" }
    )
}

/// The input of a reload: the new configuration.
fn reconfigure<A: FamilyIo>(_s: &Snooper<A>, cfg: crate::core::snooper::SnooperConfig) -> Input<A> {
    Input::Reconfigure(Box::new(cfg))
}

/// Every input, then the timers.
fn feed<A: FamilyIo>(s: &mut Snooper<A>, inputs: Vec<Input<A>>, now: Instant) -> Vec<Action<A>> {
    let mut out = Vec::new();
    for i in inputs {
        out.extend(s.handle(i, now));
    }
    out.extend(s.poll(now));
    out
}

/// An interface opened or closed: say so, and tell both snoopers.
fn link_change(sh: &Shared, ch: LinkChange, inputs: &mut Inputs) {
    match ch {
        LinkChange::DownOpened(iface, link) => {
            info!(
                "downstream {}: open (index {}, MAC {}, queries from {}{}); sending startup queries",
                link.iface.name,
                link.iface.index,
                link.source_mac,
                link.query_source,
                match (sh.cfg.ipv6, link.query_source6) {
                    (true, Some(a)) => format!(" and {a}"),
                    _ => String::new(),
                }
            );
            let mode = sh.state.lock().v4.config().querier.mode;
            if link.query_source.is_unspecified() && mode != Mode::Off {
                warn!(
                    "{}: no IPv4 address, queries go out from 0.0.0.0; some devices ignore such \
                     queries (give --query-source to choose an address)",
                    link.iface.name
                );
            }
            inputs.v4.push(Input::DownOpened {
                iface,
                source: Some(link.query_source),
            });
            inputs.v6.push(Input::DownOpened {
                iface,
                source: link.query_source6,
            });
        }
        LinkChange::DownClosed(iface) => {
            inputs.v4.push(Input::DownClosed { iface });
            inputs.v6.push(Input::DownClosed { iface });
        }
        LinkChange::UpOpened(info) => {
            info!(
                "upstream {}: open (index {}, {:?} link); reporting what members want",
                info.name, info.index, info.link
            );
            // Without IPv6 the interface has no link-local address to report from (RFC
            // 3810 5.2.13: routers discard reports from ::).
            let off = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", info.name);
            if sh.cfg.ipv6 && super::shared::read_sysctl(&off) == Some(1) {
                warn!(
                    "upstream {}: IPv6 is disabled on it (disable_ipv6=1): it has no link-local \
                     address, so snoopcast's MLD reports go out from ::, which routers ignore, \
                     and no IPv6 stream will come; enable IPv6 on it or run with --no-ipv6",
                    info.name
                );
            }
            inputs.v4.push(Input::UpstreamOpened);
            inputs.v6.push(Input::UpstreamOpened);
        }
        LinkChange::UpClosed => {
            inputs.v4.push(Input::UpstreamClosed);
            inputs.v6.push(Input::UpstreamClosed);
        }
    }
}

/// Carry out a snooper's actions in order; reports go out from `source`. Returns the last
/// set of group MACs the snooper wants the upstream to receive, if it gave one.
fn execute<A: FamilyIo>(
    sh: &Shared,
    source: A,
    actions: Vec<Action<A>>,
) -> Option<BTreeSet<MacAddr>> {
    let mut listen = None;
    for a in actions {
        match a {
            Action::SendQuery(q) => send_query(sh, &q),
            Action::Report(r) => send_report(sh, source, &r),
            Action::Listen(macs) => listen = Some(macs),
            Action::Publish(fib) => {
                let mut cur = sh.fib.write();
                *cur = Arc::new(A::with_fib(&cur, fib));
                sh.fib_gen.fetch_add(1, Ordering::Release);
            }
            Action::Log(note) => log_note(sh, &note),
        }
    }
    listen
}

/// Send one report on the upstream: an Ethernet frame from its MAC, or on an L3 link (tun)
/// the IP packet alone.
fn send_report<A: FamilyIo>(sh: &Shared, source: A, r: &ReportOut<A>) {
    let Some(tx) = sh.up_tx.read().clone() else {
        return;
    };
    let mac = tx.info.mac.unwrap_or(MacAddr::zero());
    let frame = A::report_frame(mac, source, r);
    let packet = match tx.info.link {
        LinkType::Ethernet => &frame[..],
        _ => &frame[crate::wire::ethernet::HEADER_LEN..],
    };
    match sys::send(&tx.sock, packet) {
        Ok(_) => {
            inc(A::reports_sent(&sh.counters));
            debug!("upstream {}: sent {r:?}", tx.info.name);
        }
        Err(e) => {
            inc(&sh.counters.report_send_errors);
            if WARN_REPORT.allow(Instant::now()) {
                warn!(
                    "upstream {}: sending a {} report failed: {e} (counted in \
                     report_send_errors; further failures not logged for 10 s)",
                    tx.info.name,
                    A::PROTOCOL
                );
            }
        }
    }
}

fn send_query<A: FamilyIo>(sh: &Shared, q: &QueryOut<A>) {
    let Some(tx) = sh.down[q.iface].read().clone() else {
        return;
    };
    let frame = A::query_frame(tx.link.source_mac, q);
    match sys::send(&tx.sock, &frame) {
        Ok(_) => {
            inc(A::queries_sent(&sh.counters));
            debug!("{}: sent query for {}", tx.link.iface.name, q.group);
        }
        Err(e) => {
            inc(&sh.counters.query_send_errors);
            if WARN_SEND.allow(Instant::now()) {
                warn!(
                    "{}: sending a query failed: {e} (counted in query_send_errors; further \
                     failures not logged for 10 s)",
                    tx.link.iface.name
                );
            }
        }
    }
}
