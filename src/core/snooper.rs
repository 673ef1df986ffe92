//! The snooper of one address family: the membership table, a querier per downstream
//! interface, the upstream reporter, the rebuild pacer and their timers, driven by inputs
//! and returning actions. No I/O and no clock of its own: `now` is always an argument (the one
//! exception, [`Snooper::with_stopwatch`], only measures how long a rebuild took, for pacing).
//!
//! The runtime's control thread waits until [`Snooper::next_deadline`] or an input, calls
//! [`Snooper::handle`] for each input and [`Snooper::poll`] once, and carries out the actions
//! in order: sending queries downstream and reports upstream, setting the upstream's
//! link-layer filter, publishing the forwarding snapshot, logging and counting.

use super::family::GroupAddr;
use super::fib::{Fib, GroupTraffic};
use super::filter::GroupFilter;
use super::membership::{
    CompatFallback, Event, Heard, HostKey, IgnoreReason, LeaveReason, Settings, Table, UpstreamWant,
};
use super::pacer::Pacer;
#[cfg(doc)]
use super::querier::OLDER_QUERIER_WARN_EVERY;
use super::querier::{HeardQuery, Mode, Querier, QuerierConfig, Role, RoleChange};
use super::reporter::{ReportOut, Reporter, ReporterConfig};
use super::IfaceId;
use crate::wire::MacAddr;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pacing of the whole-table rebuilds (forwarding snapshot, upstream want set), see
/// [`Pacer`]: the first change after a quiet spell at once, then at least REBUILD_FACTOR
/// times the last rebuild's cost apart (rebuilding takes at most about a quarter of the
/// control thread), between 1 ms and 50 ms.
pub const REBUILD_MIN_GAP: Duration = Duration::from_millis(1);
pub const REBUILD_FACTOR: u32 = 4;
pub const REBUILD_MAX_GAP: Duration = Duration::from_millis(50);

/// Everything a snooper is configured with; a reload hands it a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnooperConfig {
    pub settings: Settings,
    pub filter: GroupFilter,
    /// Per downstream interface, indexed by [`IfaceId`]; its length is the number of
    /// downstream interfaces.
    pub fallback: Vec<CompatFallback>,
    /// The querier of every downstream (mode Off when the family is off).
    pub querier: QuerierConfig,
    /// The upstream host side: robustness, intervals, leave hold-down.
    pub reporter: ReporterConfig,
}

/// What happened, for the snooper to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<A> {
    /// A group message from a downstream host, already parsed and checked.
    Heard {
        iface: IfaceId,
        mac: MacAddr,
        src: A,
        msg: Heard<A>,
    },
    /// A downstream interface opened; `source` is its address to query from (IPv4: the
    /// configured or first address; IPv6: its usable link-local address), if it has one.
    DownOpened { iface: IfaceId, source: Option<A> },
    /// A downstream that opened without a source address has one now.
    DownAddress { iface: IfaceId, source: A },
    /// A downstream interface went away, went down or was re-created.
    DownClosed { iface: IfaceId },
    /// The upstream interface opened: report what members want.
    UpstreamOpened,
    /// The upstream interface went away.
    UpstreamClosed,
    /// A query heard on the upstream, from `src`.
    UpstreamQuery { src: A, query: HeardQuery<A> },
    /// A new configuration (a reload).
    Reconfigure(Box<SnooperConfig>),
    /// Shutting down: leave every upstream group, send nothing more.
    Stop,
}

/// A query to send on a downstream: the querier's decision is taken, only the frame is left
/// to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOut<A> {
    pub iface: IfaceId,
    /// The IP source of the query.
    pub source: A,
    /// The group of a group-specific query; unspecified for a general query.
    pub group: A,
    /// Maximum response time it carries.
    pub max_resp: Duration,
    /// Version, robustness and query interval it carries.
    pub querier: QuerierConfig,
}

impl<A: GroupAddr> QueryOut<A> {
    pub fn is_general(&self) -> bool {
        self.group.is_unspecified()
    }
}

/// A counter a [`Note`] bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    MembersExpired,
    MembersDroppedIface,
    LimitGroupsPerHost,
    LimitMembers,
    LimitAddressesPerMac,
    IgnoredFiltered,
    IgnoredSsm,
}

/// Something worth a log line (and perhaps a counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note<A> {
    /// A membership change or an ignored record.
    Membership(Event<A>),
    /// The querier of `iface` yielded or resumed.
    Role {
        iface: IfaceId,
        change: RoleChange<A>,
    },
    /// A closed downstream took `count` members with it.
    MembersDropped { iface: IfaceId, count: usize },
    /// A downstream opened without the address queries must come from: its querier stays
    /// silent until [`Input::DownAddress`].
    NoQuerySource { iface: IfaceId },
    /// The awaited query source address is there.
    QuerySourceFound { iface: IfaceId, source: A },
    /// What is reported upstream for `group` changed: now `want`, or left (None).
    Upstream {
        group: A,
        want: Option<UpstreamWant<A>>,
    },
    /// A querier of an older `version` than `ours` was heard on `iface` at `address`
    /// (RFC 3376 7.3.1, RFC 3810 8.3.1): the hosts answer it in the older version. Due when
    /// first heard and again every [`OLDER_QUERIER_WARN_EVERY`] while it stays.
    OlderQuerier {
        iface: IfaceId,
        version: u8,
        address: A,
        ours: u8,
    },
}

impl<A> Note<A> {
    /// The counter the note bumps, and by how much.
    pub fn count(&self) -> Option<(Count, u64)> {
        let k = match self {
            Note::Membership(Event::Left {
                reason: LeaveReason::Expired,
                ..
            }) => Count::MembersExpired,
            Note::Membership(Event::Ignored { reason, .. }) => match reason {
                IgnoreReason::GroupsPerHostLimit => Count::LimitGroupsPerHost,
                IgnoreReason::MembersLimit => Count::LimitMembers,
                IgnoreReason::AddressesLimit => Count::LimitAddressesPerMac,
                IgnoreReason::GroupFiltered => Count::IgnoredFiltered,
                IgnoreReason::SsmExclude => Count::IgnoredSsm,
                IgnoreReason::UnknownRecord | IgnoreReason::SourcesLimit => return None,
            },
            Note::MembersDropped { count, .. } => {
                return Some((Count::MembersDroppedIface, *count as u64))
            }
            _ => return None,
        };
        Some((k, 1))
    }
}

/// What the runtime is to do, in order.
#[derive(Debug, Clone)]
pub enum Action<A> {
    SendQuery(QueryOut<A>),
    /// Send this report on the upstream.
    Report(ReportOut<A>),
    /// The group MACs the upstream must receive now (its link-layer multicast filter):
    /// every group reported. Given when it changes and whenever the upstream opens.
    Listen(BTreeSet<MacAddr>),
    /// Swap in this forwarding snapshot.
    Publish(Arc<Fib<A>>),
    Log(Note<A>),
}

/// One family's control plane.
#[derive(Debug)]
pub struct Snooper<A> {
    cfg: SnooperConfig,
    table: Table<A>,
    queriers: Vec<Querier<A>>,
    reporter: Reporter<A>,
    /// The group MACs last given with [`Action::Listen`]; None: to be given again.
    listening: Option<BTreeSet<MacAddr>>,
    pacer: Pacer,
    down_open: Vec<bool>,
    /// Open downstreams whose querier waits for a source address.
    awaiting_source: Vec<bool>,
    up_open: bool,
    /// An interface opened or closed since the last reconcile: reconcile even without a
    /// table change.
    links_changed: bool,
    stopping: bool,
    /// Every group was left (once, when stopping).
    left: bool,
    stopwatch: fn() -> Instant,
    /// Per-group upstream traffic counters, kept across forwarding rebuilds.
    traffic: GroupTraffic<A>,
}

impl<A: GroupAddr> Snooper<A> {
    /// A snooper at daemon start: every interface closed; `sources[i]` is what downstream `i`
    /// queries from until it opens (the configured address, if any).
    pub fn new(cfg: SnooperConfig, sources: &[Option<A>], now: Instant) -> Self {
        let n = cfg.fallback.len();
        let queriers = (0..n)
            .map(|i| querier(&cfg.querier, sources.get(i).copied().flatten(), now))
            .collect();
        Snooper {
            table: Table::new(
                cfg.settings.clone(),
                cfg.filter.clone(),
                cfg.fallback.clone(),
            ),
            reporter: Reporter::new(cfg.reporter.clone(), 0x5eed),
            listening: None,
            queriers,
            pacer: Pacer::new(REBUILD_MIN_GAP, REBUILD_FACTOR, REBUILD_MAX_GAP),
            down_open: vec![false; n],
            awaiting_source: vec![false; n],
            up_open: false,
            links_changed: false,
            stopping: false,
            left: false,
            stopwatch: Instant::now,
            traffic: GroupTraffic::default(),
            cfg,
        }
    }

    /// Seed the random delays of the upstream reports (the runtime gives each process its
    /// own, so two boxes on one link do not answer a query at the same instant).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.reporter = Reporter::new(self.cfg.reporter.clone(), seed);
        self
    }

    /// Measure rebuild costs (for pacing) with this clock instead of `Instant::now`.
    pub fn with_stopwatch(mut self, stopwatch: fn() -> Instant) -> Self {
        self.stopwatch = stopwatch;
        self
    }

    pub fn table(&self) -> &Table<A> {
        &self.table
    }

    /// The per-group upstream traffic counters of the groups in the forwarding snapshot.
    pub fn traffic(&self) -> &GroupTraffic<A> {
        &self.traffic
    }

    pub fn queriers(&self) -> &[Querier<A>] {
        &self.queriers
    }

    /// The upstream host side: what is reported, the upstream querier's version.
    pub fn reporter(&self) -> &Reporter<A> {
        &self.reporter
    }

    pub fn config(&self) -> &SnooperConfig {
        &self.cfg
    }

    /// Open downstreams waiting for an address to query from (the runtime looks for one).
    pub fn awaiting_source(&self) -> impl Iterator<Item = IfaceId> + '_ {
        (0..self.awaiting_source.len()).filter(|&i| self.awaiting_source[i])
    }

    /// The earliest instant [`Snooper::poll`] has work.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.table
            .next_deadline()
            .into_iter()
            .chain(self.queriers.iter().filter_map(Querier::next_deadline))
            .chain(self.pacer.next_deadline(now))
            .chain(self.reporter.next_deadline())
            .min()
    }

    /// Take one input.
    pub fn handle(&mut self, input: Input<A>, now: Instant) -> Vec<Action<A>> {
        let mut out = Vec::new();
        match input {
            Input::Heard {
                iface,
                mac,
                src,
                msg,
            } => {
                // A message queued before its interface closed belongs to the old link.
                if self.stopping || !self.down_open.get(iface).copied().unwrap_or(false) {
                    return out;
                }
                if let Heard::Query(q) = msg {
                    let (change, older) = self.queriers[iface].accept_query(src, &q, now);
                    if let Some(change) = change {
                        out.push(Action::Log(Note::Role { iface, change }));
                    }
                    if let Some(o) = older {
                        out.push(Action::Log(Note::OlderQuerier {
                            iface,
                            version: o.version,
                            address: o.address,
                            ours: self.cfg.querier.version,
                        }));
                    }
                    self.sync_timers(iface);
                    self.table.note_query(iface, &q, now);
                } else {
                    let host = HostKey { iface, mac };
                    let ev = self.table.accept(host, src, &msg, now);
                    self.take_events(ev, &mut out);
                }
            }
            Input::DownOpened { iface, source } => {
                self.down_open[iface] = true;
                self.links_changed = true;
                // A new link: the querier starts up again (RFC 3376 section 8.7).
                self.queriers[iface] = querier(&self.cfg.querier, source, now);
                self.sync_timers(iface);
                self.awaiting_source[iface] = waits_for_source(&self.cfg.querier, source);
                if self.awaiting_source[iface] {
                    out.push(Action::Log(Note::NoQuerySource { iface }));
                }
            }
            Input::DownAddress { iface, source } => {
                if self.awaiting_source[iface] && self.down_open[iface] {
                    self.awaiting_source[iface] = false;
                    self.queriers[iface] = querier(&self.cfg.querier, Some(source), now);
                    self.sync_timers(iface);
                    out.push(Action::Log(Note::QuerySourceFound { iface, source }));
                }
            }
            Input::DownClosed { iface } => {
                self.down_open[iface] = false;
                self.awaiting_source[iface] = false;
                self.links_changed = true;
                let gone = self.table.remove_iface(iface);
                let count = gone
                    .iter()
                    .filter(|e| matches!(e, Event::Left { .. }))
                    .count();
                out.push(Action::Log(Note::MembersDropped { iface, count }));
                self.take_events(gone, &mut out);
            }
            Input::UpstreamOpened => {
                if !self.stopping {
                    self.up_open = true;
                    self.links_changed = true;
                    // A new socket: its filter is empty. The state is reported afresh.
                    self.listening = None;
                    let wants = self.table.upstream_wants();
                    self.reporter.set_wanted(wants, now);
                    let sent = self.reporter.opened(now);
                    report(sent, &mut out);
                }
            }
            Input::UpstreamClosed => {
                self.up_open = false;
                self.listening = None;
                self.reporter.closed();
            }
            Input::UpstreamQuery { src, query } => {
                if !self.stopping {
                    self.reporter.accept_query(src, &query, now);
                }
            }
            Input::Reconfigure(cfg) => self.reconfigure(*cfg, now, &mut out),
            Input::Stop => self.stopping = true,
        }
        out
    }

    /// Run what is due at `now`: membership timers, queriers, the paced rebuild of the
    /// forwarding snapshot and the upstream joins.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<A>> {
        let mut out = Vec::new();
        let ev = self.table.poll(now);
        self.take_events(ev, &mut out);
        for i in 0..self.queriers.len() {
            let (due, change) = self.queriers[i].poll(now);
            if let Some(change) = change {
                out.push(Action::Log(Note::Role { iface: i, change }));
            }
            self.sync_timers(i);
            if due {
                let q = &self.queriers[i];
                let general = QueryOut {
                    iface: i,
                    source: q.own_ip(),
                    group: A::MIN,
                    max_resp: q.config().query_response_interval,
                    querier: q.query_config(),
                };
                self.push_query(general, &mut out);
            }
        }
        // The forwarding snapshot and the upstream want set are rebuilt from the whole
        // table: paced, so a burst of changes costs one rebuild, not one per report.
        let rebuild = self.pacer.due(now);
        if rebuild {
            let started = (self.stopwatch)();
            let mut fib = self.table.forwarding();
            self.traffic.attach(&mut fib);
            out.push(Action::Publish(Arc::new(fib)));
            let cost = (self.stopwatch)().saturating_duration_since(started);
            self.pacer.done(now, cost);
        }
        if self.stopping {
            if !self.left {
                self.left = true;
                let left = self.reporter.leave_all(now);
                report(left, &mut out);
            }
            return out;
        }
        let before = self.up_open.then(|| self.reporter.state().clone());
        if rebuild || self.links_changed {
            self.links_changed = false;
            let sent = self.reporter.set_wanted(self.table.upstream_wants(), now);
            report(sent, &mut out);
        }
        let due = self.reporter.poll(now);
        report(due, &mut out);
        if let Some(before) = before {
            upstream_notes(&before, self.reporter.state(), &mut out);
        }
        if self.up_open {
            let macs: BTreeSet<MacAddr> = self
                .reporter
                .state()
                .keys()
                .map(|g| g.group_mac())
                .collect();
            if self.listening.as_ref() != Some(&macs) {
                self.listening = Some(macs.clone());
                out.push(Action::Listen(macs));
            }
        }
        out
    }

    /// Log the events, mark the pacer for those that change who gets what, and turn
    /// last-member query requests into queries.
    fn take_events(&mut self, events: Vec<Event<A>>, out: &mut Vec<Action<A>>) {
        for e in events {
            if e.changes_state() {
                self.pacer.mark();
            }
            if let Event::SendGroupQuery { iface, group } = e {
                // RFC 3376 section 6.6.3.1, RFC 3810 section 7.6.3.1: a group-specific query
                // to the group itself, Last Member Query Interval as its maximum response.
                // As non-querier none goes out (push_query); the last-member timers still
                // run, and the elected querier's own group query makes the remaining hosts
                // report, which keeps the group.
                let q = &self.queriers[iface];
                let query = QueryOut {
                    iface,
                    source: q.own_ip(),
                    group,
                    max_resp: self.cfg.settings.last_member_query_interval,
                    querier: q.query_config(),
                };
                self.push_query(query, out);
            }
            out.push(Action::Log(Note::Membership(e)));
        }
    }

    /// A query goes out only on an open link, never while stopping, only from the querier
    /// (RFC 2236 section 7, RFC 3376 section 6.6.3.1, RFC 9776 section 6.6.3.1: a
    /// group-specific query from a non-querier with a lower address would silence the
    /// elected querier, and `--querier off` never queries), and (MLD) never from the
    /// unspecified address (RFC 3810 section 5.1.14).
    fn push_query(&self, q: QueryOut<A>, out: &mut Vec<Action<A>>) {
        if self.stopping || !self.down_open[q.iface] {
            return;
        }
        if self.queriers[q.iface].role() != Role::Querier {
            return;
        }
        if A::QUERIES_NEED_SOURCE && q.source.is_unspecified() {
            return;
        }
        // An IGMPv1 querier sends no group-specific queries (RFC 3376 7.3.1: in v1 mode
        // leaves are ignored).
        if !q.is_general() && A::ignores_leaves(q.querier.version) {
            return;
        }
        out.push(Action::SendQuery(q));
    }

    /// Give the table the timers `iface`'s querier says the link runs by.
    fn sync_timers(&mut self, iface: IfaceId) {
        let t = self.queriers[iface].timers();
        self.table.set_timers(iface, Some(t));
    }

    /// Take a new configuration: the table drops members of groups no longer allowed and
    /// keeps every other one; queriers whose configuration changed start up again; the
    /// forwarding snapshot is rebuilt (the fallback of an interface may have changed) and
    /// the upstream state reported anew where it changed.
    /// The number of downstream interfaces stays what it was.
    fn reconfigure(&mut self, cfg: SnooperConfig, now: Instant, out: &mut Vec<Action<A>>) {
        let ev = self.table.reconfigure(
            cfg.settings.clone(),
            cfg.filter.clone(),
            cfg.fallback.clone(),
        );
        self.take_events(ev, out);
        self.pacer.mark();
        self.links_changed = true;
        if cfg.querier != self.cfg.querier {
            for (i, q) in self.queriers.iter_mut().enumerate() {
                let source = Some(q.own_ip()).filter(|a| !a.is_unspecified());
                *q = querier(&cfg.querier, source, now);
                self.awaiting_source[i] =
                    self.down_open[i] && waits_for_source(&cfg.querier, source);
            }
        }
        self.reporter.reconfigure(cfg.reporter.clone(), now);
        self.cfg = cfg;
        for i in 0..self.queriers.len() {
            self.sync_timers(i);
        }
    }
}

/// A note per group whose reported state differs between `before` and `after`.
fn upstream_notes<A: GroupAddr>(
    before: &std::collections::BTreeMap<A, UpstreamWant<A>>,
    after: &std::collections::BTreeMap<A, UpstreamWant<A>>,
    out: &mut Vec<Action<A>>,
) {
    if before == after {
        return;
    }
    for (g, w) in after {
        if before.get(g) != Some(w) {
            out.push(Action::Log(Note::Upstream {
                group: *g,
                want: Some(w.clone()),
            }));
        }
    }
    for g in before.keys().filter(|g| !after.contains_key(g)) {
        out.push(Action::Log(Note::Upstream {
            group: *g,
            want: None,
        }));
    }
}

fn report<A>(reports: Vec<ReportOut<A>>, out: &mut Vec<Action<A>>) {
    out.extend(reports.into_iter().map(Action::Report));
}

/// Whether a downstream whose address is `source` must wait for one before it queries: the
/// family's queries need an address (RFC 3810 section 5.1.14) and the querier is not off.
fn waits_for_source<A: GroupAddr>(cfg: &QuerierConfig, source: Option<A>) -> bool {
    A::QUERIES_NEED_SOURCE && source.is_none() && cfg.mode != Mode::Off
}

/// The querier of a downstream whose address is `source`: off while it waits for one.
fn querier<A: GroupAddr>(cfg: &QuerierConfig, source: Option<A>, now: Instant) -> Querier<A> {
    let mut cfg = cfg.clone();
    if A::QUERIES_NEED_SOURCE && source.is_none() {
        cfg.mode = Mode::Off;
    }
    Querier::new(cfg, source.unwrap_or(A::MIN), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fib::Target;
    use crate::core::querier::HeardQuery;
    use crate::core::reporter::ReporterConfig;
    use crate::wire::igmp::RecordType;
    use crate::wire::Record;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 5);
    const OTHER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Every rebuild costs nothing: the pacer's spacing is its minimum.
    fn frozen() -> Instant {
        thread_local!(static T: Instant = Instant::now());
        T.with(|t| *t)
    }

    fn config(ifaces: usize, mode: Mode) -> SnooperConfig {
        SnooperConfig {
            settings: Settings {
                robustness: 2,
                query_interval: secs(10),
                query_response_interval: secs(2),
                last_member_query_interval: secs(1),
                ..Settings::default()
            },
            filter: GroupFilter::default(),
            fallback: vec![CompatFallback::Multicast; ifaces],
            querier: QuerierConfig {
                mode,
                version: 3,
                query_interval: secs(10),
                query_response_interval: secs(2),
                robustness: 2,
            },
            reporter: ReporterConfig::default(),
        }
    }

    /// An upstream report's meaning, as the tests look at it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum JoinKind<A> {
        /// TO_EX {}: (*, G) joined.
        JoinAny(A),
        /// TO_IN {}: left.
        LeaveAny(A),
        Record(RecordType, A, Vec<A>),
    }

    fn v4(ifaces: usize, mode: Mode, now: Instant) -> Snooper<Ipv4Addr> {
        Snooper::new(config(ifaces, mode), &vec![Some(ME); ifaces], now).with_stopwatch(frozen)
    }

    fn open(s: &mut Snooper<Ipv4Addr>, iface: IfaceId, now: Instant) -> Vec<Action<Ipv4Addr>> {
        s.handle(
            Input::DownOpened {
                iface,
                source: Some(ME),
            },
            now,
        )
    }

    /// A snooper with downstream 0 and the upstream open, its startup actions taken.
    fn running(now: Instant) -> Snooper<Ipv4Addr> {
        let mut s = v4(2, Mode::Auto, now);
        open(&mut s, 0, now);
        s.handle(Input::UpstreamOpened, now);
        s.poll(now);
        s
    }

    fn report(iface: IfaceId, msg: Heard<Ipv4Addr>) -> Input<Ipv4Addr> {
        Input::Heard {
            iface,
            mac: MAC,
            src: Ipv4Addr::new(192, 168, 1, 50),
            msg,
        }
    }

    /// An IGMPv3 general query on downstream 0 from OTHER, which has a lower address than
    /// ME, carrying the same timers as ours.
    fn query_from_other() -> Input<Ipv4Addr> {
        query_with(2, 10, 2)
    }

    /// That query with QRV `qrv`, QQIC `qqi_s` seconds and Max Resp `max_resp_s` seconds.
    fn query_with(qrv: u8, qqi_s: u64, max_resp_s: u64) -> Input<Ipv4Addr> {
        Input::Heard {
            iface: 0,
            mac: MAC,
            src: OTHER,
            msg: Heard::Query(HeardQuery {
                qrv,
                qqi: secs(qqi_s),
                max_resp: secs(max_resp_s),
                ..HeardQuery::general(3)
            }),
        }
    }

    fn join_any(g: Ipv4Addr) -> Heard<Ipv4Addr> {
        Heard::Records(vec![Record {
            record_type: RecordType::ChangeToExclude,
            group: g,
            sources: vec![],
        }])
    }

    fn queries<A: GroupAddr>(a: &[Action<A>]) -> Vec<QueryOut<A>> {
        a.iter()
            .filter_map(|a| match a {
                Action::SendQuery(q) => Some(q.clone()),
                _ => None,
            })
            .collect()
    }

    /// The records of the upstream reports among the actions.
    fn joins<A: GroupAddr>(a: &[Action<A>]) -> Vec<JoinKind<A>> {
        a.iter()
            .filter_map(|a| match a {
                Action::Report(ReportOut::Records(r)) => Some(r.clone()),
                _ => None,
            })
            .flatten()
            .map(|r| match r.record_type {
                RecordType::ChangeToExclude if r.sources.is_empty() => JoinKind::JoinAny(r.group),
                RecordType::ChangeToInclude if r.sources.is_empty() => JoinKind::LeaveAny(r.group),
                t => JoinKind::Record(t, r.group, r.sources),
            })
            .collect()
    }

    fn published<A: GroupAddr>(a: &[Action<A>]) -> Option<Arc<Fib<A>>> {
        a.iter().rev().find_map(|a| match a {
            Action::Publish(f) => Some(f.clone()),
            _ => None,
        })
    }

    fn notes<A: GroupAddr>(a: &[Action<A>]) -> Vec<Note<A>> {
        a.iter()
            .filter_map(|a| match a {
                Action::Log(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn targets(f: &Fib<Ipv4Addr>, g: Ipv4Addr) -> Vec<Target> {
        let (mut out, mut c) = (Vec::new(), Vec::new());
        f.targets(S, g, &mut out, &mut c);
        out
    }

    #[test]
    fn startup_queries_only_on_open_links_then_every_query_interval() {
        let t0 = Instant::now();
        let mut s = v4(2, Mode::Auto, t0);
        assert!(queries(&s.poll(t0)).is_empty(), "nothing is open yet");
        open(&mut s, 0, t0);
        let q = queries(&s.poll(t0));
        assert_eq!(q.len(), 1, "downstream 1 is still closed: {q:?}");
        assert!(q[0].is_general() && q[0].iface == 0 && q[0].source == ME);
        assert_eq!(q[0].max_resp, secs(2));
        // RFC 3376 section 8.7: the second startup query a quarter interval later.
        assert_eq!(s.next_deadline(t0), Some(t0 + secs(10) / 4));
        assert!(queries(&s.poll(t0 + secs(2))).is_empty());
        assert_eq!(queries(&s.poll(t0 + secs(10) / 4)).len(), 1);
        let after = t0 + secs(10) / 4;
        assert_eq!(s.next_deadline(after), Some(after + secs(10)));
        assert_eq!(queries(&s.poll(after + secs(10))).len(), 1);
    }

    /// Issue 15 defect 2: next to a router that queries every 30 s with robustness 3, our
    /// 10 s configuration must not expire its members between its queries; the membership
    /// interval follows the elected querier's timers while it is there (RFC 3376 4.1.6,
    /// 4.1.7, 8.4).
    #[test]
    fn non_querier_membership_follows_adopted_timers() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(query_with(3, 30, 5), t0);
        assert_eq!(s.table().timers(0).query_interval, secs(30));
        s.handle(report(0, join_any(G)), t0 + secs(1));
        // GMI = 3 x 30 s + 2 x 5 s = 100 s, not our 2 x 10 s + 2 x 2 s = 24 s.
        let m = s.table().member(HostKey { iface: 0, mac: MAC }, G).unwrap();
        assert_eq!(m.expires, t0 + secs(101));
        // The router keeps querying every 30 s; the member answers each time.
        for k in 1..=4u64 {
            let t = t0 + secs(30 * k);
            s.handle(query_with(3, 30, 5), t);
            s.handle(report(0, join_any(G)), t + secs(2));
            let a = s.poll(t + secs(29));
            assert!(!joins(&a).contains(&JoinKind::LeaveAny(G)), "{a:?}");
        }
        assert_eq!(
            s.table().member_count(),
            1,
            "no expiry between the router's queries"
        );
        // Interface 1 has no other querier: its configured timers.
        assert_eq!(s.table().timers(1).query_interval, secs(10));
        // The router goes silent: after its Other Querier Present Interval (3 x 30 s + 2.5 s)
        // we query again with our own timers.
        let last = t0 + secs(120);
        let a = s.poll(last + secs(93));
        assert!(notes(&a).contains(&Note::Role {
            iface: 0,
            change: RoleChange::Resumed
        }));
        assert_eq!(s.table().timers(0).query_interval, secs(10));
    }

    #[test]
    fn a_lower_querier_silences_us_until_its_present_interval_ends() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let a = s.handle(query_from_other(), t0);
        assert_eq!(
            notes(&a),
            vec![Note::Role {
                iface: 0,
                change: RoleChange::Yielded { other: OTHER }
            }]
        );
        assert!(queries(&s.poll(t0 + secs(20))).is_empty());
        // Other Querier Present Interval: 2 x 10 s + 2 s / 2 = 21 s.
        let a = s.poll(t0 + secs(21));
        assert!(notes(&a).contains(&Note::Role {
            iface: 0,
            change: RoleChange::Resumed
        }));
        assert_eq!(queries(&a).len(), 1, "querying again at once");
    }

    #[test]
    fn mld_waits_for_a_link_local_source_and_never_queries_from_unspecified() {
        let t0 = Instant::now();
        let cfg = config(1, Mode::Auto);
        let mut s: Snooper<Ipv6Addr> = Snooper::new(cfg, &[], t0).with_stopwatch(frozen);
        let a = s.handle(
            Input::DownOpened {
                iface: 0,
                source: None,
            },
            t0,
        );
        assert_eq!(notes(&a), vec![Note::NoQuerySource { iface: 0 }]);
        assert_eq!(s.awaiting_source().collect::<Vec<_>>(), vec![0]);
        assert!(queries(&s.poll(t0)).is_empty());
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let a = s.handle(
            Input::DownAddress {
                iface: 0,
                source: ll,
            },
            t0 + secs(1),
        );
        assert_eq!(
            notes(&a),
            vec![Note::QuerySourceFound {
                iface: 0,
                source: ll
            }]
        );
        assert_eq!(s.awaiting_source().count(), 0);
        let q = queries(&s.poll(t0 + secs(1)));
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].source, ll);
    }

    #[test]
    fn ipv4_queries_from_unspecified_when_the_link_has_no_address() {
        let t0 = Instant::now();
        let mut s = v4(1, Mode::Auto, t0);
        let a = s.handle(
            Input::DownOpened {
                iface: 0,
                source: Some(Ipv4Addr::UNSPECIFIED),
            },
            t0,
        );
        assert!(notes(&a).is_empty());
        let q = queries(&s.poll(t0));
        assert_eq!(q.len(), 1);
        assert!(q[0].source.is_unspecified());
    }

    #[test]
    fn querier_off_never_queries() {
        let t0 = Instant::now();
        let mut s = v4(1, Mode::Off, t0);
        open(&mut s, 0, t0);
        assert!(queries(&s.poll(t0)).is_empty());
        assert_eq!(s.next_deadline(t0), None);
    }

    #[test]
    fn a_report_publishes_and_joins_at_once_and_a_burst_is_paced() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let a = s.handle(report(0, join_any(G)), t0);
        assert!(matches!(
            &notes(&a)[..],
            [Note::Membership(Event::Joined { group: G, .. })]
        ));
        let a = s.poll(t0);
        let fib = published(&a).expect("the first change after a quiet spell at once");
        assert_eq!(targets(&fib, G), vec![Target { iface: 0, mac: MAC }]);
        assert_eq!(joins(&a), vec![JoinKind::JoinAny(G)]);
        assert!(matches!(a.last(), Some(Action::Listen(m)) if m.contains(&G.group_mac())));
        // A second change right after waits for the pacer's gap (1 ms at zero cost).
        let g2 = Ipv4Addr::new(239, 1, 1, 2);
        s.handle(report(0, join_any(g2)), t0);
        assert!(published(&s.poll(t0)).is_none());
        assert_eq!(s.next_deadline(t0), Some(t0 + REBUILD_MIN_GAP));
        let a = s.poll(t0 + REBUILD_MIN_GAP);
        assert_eq!(targets(&published(&a).unwrap(), g2).len(), 1);
        // G's retransmission still pending rides along (RFC 3376 5.1: one report for all).
        assert!(joins(&a).contains(&JoinKind::JoinAny(g2)), "{a:?}");
    }

    #[test]
    fn messages_for_a_closed_interface_are_dropped() {
        let t0 = Instant::now();
        let mut s = running(t0);
        assert!(s.handle(report(1, join_any(G)), t0).is_empty());
        assert_eq!(s.table().member_count(), 0);
        assert!(published(&s.poll(t0)).is_none());
    }

    #[test]
    fn no_joins_while_the_upstream_is_away_then_all_of_them_when_it_opens() {
        let t0 = Instant::now();
        let mut s = v4(1, Mode::Auto, t0);
        open(&mut s, 0, t0);
        s.handle(report(0, join_any(G)), t0);
        let a = s.poll(t0);
        assert!(
            published(&a).is_some(),
            "forwarding does not wait for the upstream"
        );
        assert!(joins(&a).is_empty());
        let a = s.handle(Input::UpstreamOpened, t0 + secs(1));
        assert_eq!(
            joins(&a),
            vec![JoinKind::JoinAny(G)],
            "reported as it opens"
        );
        let a = s.poll(t0 + secs(1));
        assert!(matches!(a.last(), Some(Action::Listen(m)) if m.contains(&G.group_mac())));
        // It goes away: nothing more is sent, and the state is reported again when it
        // returns (with the filter given again, for the new socket).
        let a = s.handle(Input::UpstreamClosed, t0 + secs(2));
        assert!(a.is_empty());
        assert!(s.reporter().state().contains_key(&G));
        assert!(joins(&s.poll(t0 + secs(5))).is_empty());
        let a = s.handle(Input::UpstreamOpened, t0 + secs(6));
        assert_eq!(joins(&a), vec![JoinKind::JoinAny(G)]);
        assert!(matches!(
            s.poll(t0 + secs(6)).last(),
            Some(Action::Listen(_))
        ));
    }

    #[test]
    fn upstream_queries_are_answered_with_the_merged_wants() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(report(0, join_any(G)), t0);
        s.poll(t0);
        s.poll(t0 + secs(2));
        let q = HeardQuery {
            max_resp: secs(1),
            ..HeardQuery::general(3)
        };
        s.handle(
            Input::UpstreamQuery {
                src: OTHER,
                query: q,
            },
            t0 + secs(3),
        );
        let mut got = Vec::new();
        let mut t = t0 + secs(3);
        while let Some(d) = s.next_deadline(t).filter(|d| *d <= t0 + secs(4)) {
            got.extend(joins(&s.poll(d)));
            t = d;
        }
        assert_eq!(
            got,
            vec![JoinKind::Record(RecordType::ModeIsExclude, G, vec![])]
        );
        assert_eq!(s.reporter().last_query().unwrap().source, OTHER);
    }

    #[test]
    fn a_closed_downstream_drops_its_members_and_their_upstream_joins() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(report(0, join_any(G)), t0);
        s.poll(t0);
        let a = s.handle(Input::DownClosed { iface: 0 }, t0 + secs(1));
        let n = notes(&a);
        assert_eq!(n[0], Note::MembersDropped { iface: 0, count: 1 });
        assert_eq!(n[0].count(), Some((Count::MembersDroppedIface, 1)));
        assert!(matches!(
            n[1],
            Note::Membership(Event::Left {
                reason: LeaveReason::InterfaceGone,
                ..
            })
        ));
        let a = s.poll(t0 + secs(1));
        assert!(targets(&published(&a).unwrap(), G).is_empty());
        assert_eq!(joins(&a), vec![JoinKind::LeaveAny(G)]);
        assert!(
            queries(&s.poll(t0 + secs(100))).is_empty(),
            "closed: no queries"
        );
    }

    #[test]
    fn expiry_is_counted_and_leaves_upstream() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(report(0, join_any(G)), t0);
        s.poll(t0);
        // Group Membership Interval (RFC 9776 8.4): 2 x 10 s + 2 x 2 s.
        assert!(!joins(&s.poll(t0 + secs(23))).contains(&JoinKind::LeaveAny(G)));
        let a = s.poll(t0 + secs(24));
        let expired: Vec<_> = notes(&a)
            .into_iter()
            .filter(|n| n.count() == Some((Count::MembersExpired, 1)))
            .collect();
        assert_eq!(expired.len(), 1, "{a:?}");
        assert_eq!(joins(&a), vec![JoinKind::LeaveAny(G)]);
    }

    #[test]
    fn limits_and_filters_are_counted() {
        let t0 = Instant::now();
        let mut cfg = config(1, Mode::Auto);
        cfg.settings.max_members = 1;
        let mut s = Snooper::new(cfg, &[Some(ME)], t0).with_stopwatch(frozen);
        open(&mut s, 0, t0);
        s.handle(report(0, join_any(G)), t0);
        let a = s.handle(report(0, join_any(Ipv4Addr::new(239, 1, 1, 2))), t0);
        assert_eq!(notes(&a)[0].count(), Some((Count::LimitMembers, 1)));
        let a = s.handle(report(0, join_any(Ipv4Addr::new(224, 0, 0, 5))), t0);
        assert_eq!(notes(&a)[0].count(), Some((Count::IgnoredFiltered, 1)));
        let a = s.handle(report(0, join_any(Ipv4Addr::new(232, 1, 1, 1))), t0);
        assert_eq!(notes(&a)[0].count(), Some((Count::IgnoredSsm, 1)));
    }

    #[test]
    fn a_v2_leave_in_compat_mode_sends_group_queries_on_open_links_only() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(
            report(
                0,
                Heard::OldReport {
                    version: 2,
                    group: G,
                },
            ),
            t0,
        );
        s.poll(t0);
        let a = s.handle(report(0, Heard::Leave { group: G }), t0 + secs(1));
        let q = queries(&a);
        assert_eq!(q.len(), 1, "{a:?}");
        // RFC 3376 section 6.6.3.1: to the group, Last Member Query Interval to answer.
        assert_eq!((q[0].group, q[0].max_resp, q[0].iface), (G, secs(1), 0));
        // The second one a Last Member Query Interval later...
        assert_eq!(queries(&s.poll(t0 + secs(2))).len(), 1);
        // ...and none while stopping.
        s.handle(report(0, join_any(G)), t0 + secs(3));
        s.handle(Input::Stop, t0 + secs(3));
        assert!(queries(&s.handle(report(0, Heard::Leave { group: G }), t0 + secs(3))).is_empty());
    }

    #[test]
    fn only_the_querier_sends_group_queries_after_a_v2_leave() {
        let v2 = Heard::OldReport {
            version: 2,
            group: G,
        };
        let leave = Heard::Leave { group: G };
        // --querier off: never, not even a last-member query.
        let t0 = Instant::now();
        let mut off = v4(1, Mode::Off, t0);
        open(&mut off, 0, t0);
        off.handle(Input::UpstreamOpened, t0);
        off.poll(t0);
        off.handle(report(0, v2.clone()), t0);
        off.poll(t0);
        let mut sent = queries(&off.handle(report(0, leave.clone()), t0 + secs(1)));
        for k in 2..6 {
            sent.extend(queries(&off.poll(t0 + secs(k))));
        }
        assert!(sent.is_empty(), "--querier off sent {sent:?}");
        // Auto, but a lower querier is elected: none while it is there...
        let mut s = running(t0);
        s.handle(query_from_other(), t0);
        s.handle(report(0, v2.clone()), t0);
        s.poll(t0);
        let a = s.handle(report(0, leave.clone()), t0 + secs(1));
        assert!(queries(&a).is_empty(), "{a:?}");
        assert!(queries(&s.poll(t0 + secs(2))).is_empty());
        // ...and the leave is still logged.
        assert!(notes(&a)
            .iter()
            .any(|n| matches!(n, Note::Membership(Event::SendGroupQuery { .. }))));
        // Once the other querier's present interval ends we are the querier again.
        let later = t0 + secs(100);
        s.poll(later);
        s.handle(report(0, v2), later);
        s.poll(later);
        let a = s.handle(report(0, leave), later + secs(1));
        assert_eq!(queries(&a).len(), 1, "{a:?}");
        assert!(!queries(&a)[0].is_general());
    }

    #[test]
    fn stop_leaves_everything_and_sends_nothing() {
        let t0 = Instant::now();
        let mut s = running(t0);
        s.handle(report(0, join_any(G)), t0);
        s.poll(t0);
        s.handle(Input::Stop, t0 + secs(1));
        let a = s.poll(t0 + secs(30));
        assert_eq!(joins(&a), vec![JoinKind::LeaveAny(G)]);
        assert!(queries(&a).is_empty());
        // Left once: nothing more goes out.
        assert!(s.poll(t0 + secs(31)).is_empty());
        assert!(s
            .next_deadline(t0 + secs(30))
            .is_none_or(|d| d > t0 + secs(31)));
    }

    #[test]
    fn reconfigured_queriers_start_up_again() {
        let t0 = Instant::now();
        let mut s = running(t0);
        assert!(queries(&s.poll(t0 + secs(3))).len() == 1);
        let mut cfg = s.config().clone();
        cfg.querier.query_interval = secs(60);
        s.handle(Input::Reconfigure(Box::new(cfg)), t0 + secs(4));
        let q = queries(&s.poll(t0 + secs(4)));
        assert_eq!(q.len(), 1, "a startup query at once");
        assert_eq!(q[0].querier.query_interval, secs(60));
        assert_eq!(s.next_deadline(t0 + secs(4)), Some(t0 + secs(4) + secs(15)));
    }
    #[test]
    fn a_narrower_filter_drops_only_the_members_outside_it() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let g2 = Ipv4Addr::new(239, 2, 0, 1);
        s.handle(report(0, join_any(G)), t0);
        s.handle(report(0, join_any(g2)), t0);
        s.poll(t0);
        let host = HostKey { iface: 0, mac: MAC };
        let expires = s.table().member(host, G).unwrap().expires;
        let mut cfg = s.config().clone();
        cfg.filter = GroupFilter::v4(vec!["239.1.0.0/16".parse().unwrap()], vec![]);
        let a = s.handle(Input::Reconfigure(Box::new(cfg)), t0 + secs(1));
        assert!(
            matches!(
                &notes(&a)[..],
                [Note::Membership(Event::Left { group, reason: LeaveReason::Filtered, .. })] if *group == g2
            ),
            "{a:?}"
        );
        let m = s.table().member(host, G).expect("the other member stays");
        assert_eq!(m.expires, expires, "and keeps its timer");
        let a = s.poll(t0 + secs(1));
        let fib = published(&a).unwrap();
        assert_eq!(targets(&fib, G).len(), 1);
        assert!(targets(&fib, g2).is_empty());
        assert!(joins(&a).contains(&JoinKind::LeaveAny(g2)), "{a:?}");
        assert!(!s.reporter().state().contains_key(&g2));
        // A report for the group now filtered is ignored and counted.
        let a = s.handle(report(0, join_any(g2)), t0 + secs(2));
        assert_eq!(notes(&a)[0].count(), Some((Count::IgnoredFiltered, 1)));
    }

    #[test]
    fn a_new_compat_fallback_is_published_at_once() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let v2 = Heard::OldReport {
            version: 2,
            group: G,
        };
        s.handle(report(0, v2), t0);
        let fib = published(&s.poll(t0)).unwrap();
        assert_eq!(
            fib.groups[&G].multicast_ifaces,
            vec![0],
            "multicast fallback"
        );
        let mut cfg = s.config().clone();
        cfg.fallback[0] = CompatFallback::Unicast;
        s.handle(Input::Reconfigure(Box::new(cfg)), t0 + secs(1));
        let fib = published(&s.poll(t0 + secs(1))).expect("rebuilt for the new fallback");
        assert!(fib.groups[&G].multicast_ifaces.is_empty());
        assert_eq!(targets(&fib, G), vec![Target { iface: 0, mac: MAC }]);
    }
}
