//! The host side of the upstream interface: snoopcast reports for its downstream members
//! itself, as an IGMP/MLD proxy's upstream side does (RFC 4605 section 4.1), instead of
//! asking the box kernel to join. One [`Reporter`] per address family, no I/O and no clock:
//! it takes the merged want set of the downstream members ([`Reporter::set_wanted`]),
//! queries heard on the upstream ([`Reporter::accept_query`]) and the time, and returns the
//! reports to send ([`ReportOut`]).
//!
//! The rules, by section:
//! - State-change reports (RFC 3376 5.1, RFC 3810 6.1): sent at once when the interface state
//!   of a group changes, then retransmitted so that [Robustness Variable] reports go out in
//!   all, at random intervals in (0, [Unsolicited Report Interval]). A change while earlier
//!   retransmissions are pending is merged with them: a filter-mode change keeps its own
//!   counter and carries the current state; every source in a difference keeps a counter
//!   until it has been sent [Robustness Variable] times.
//! - Current-state reports (RFC 3376 5.2, RFC 3810 6.2): a general query schedules one
//!   answer for the whole interface, a group-specific or group-and-source-specific query one
//!   per group, each after a random delay in [0, Max Resp]; a pending answer due earlier
//!   makes a later one unnecessary; source lists of pending group-and-source answers merge.
//! - Older queriers (RFC 3376 7.2.1, RFC 3810 8.2.1): an IGMPv1/v2 or MLDv1 query starts the
//!   Older Version Querier Present timer (RFC 3376 8.12, RFC 3810 9.12); while it runs the
//!   reports and leaves are of that version, source lists are dropped, and a change of
//!   compatibility mode cancels every pending response and retransmission.
//! - Leave hold-down (`--upstream-leave-delay`): a group the members stopped wanting keeps
//!   its upstream state that long, so zapping back to it needs no new join.

use super::family::GroupAddr;
use super::membership::UpstreamWant;
use super::querier::HeardQuery;
use crate::wire::igmp::RecordType;
use crate::wire::Record;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How the reporter is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterConfig {
    /// Robustness Variable: how many times a state change is sent (RFC 3376 8.1).
    pub robustness: u8,
    /// Unsolicited Report Interval (RFC 3376 8.11, RFC 3810 9.11: 1 s): the range of the
    /// random gaps between retransmissions of a state change.
    pub unsolicited_report_interval: Duration,
    /// The query interval assumed for the Older Version Querier Present Timeout when the
    /// older querier's queries do not carry one (IGMPv1/v2 and MLDv1 queries never do).
    pub query_interval: Duration,
    /// How long a group keeps its upstream state after the last member stopped wanting it.
    pub leave_delay: Duration,
    /// Most bytes of one report message (IGMP or ICMPv6 part), for packing records: the
    /// upstream MTU less the IP header, its Router Alert and (MLD) the hop-by-hop header.
    pub max_report_len: usize,
}

impl Default for ReporterConfig {
    fn default() -> Self {
        ReporterConfig {
            robustness: 2,
            unsolicited_report_interval: Duration::from_secs(1),
            query_interval: Duration::from_secs(125),
            leave_delay: Duration::ZERO,
            max_report_len: 1500 - 24,
        }
    }
}

/// A report to send on the upstream: the decision is taken, the frame is left to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOut<A> {
    /// A source-filtering report (IGMPv3 to 224.0.0.22, MLDv2 to ff02::16) carrying these
    /// records; already packed to fit `max_report_len`.
    Records(Vec<Record<A>>),
    /// An older-version membership report for one group, sent to the group (IGMPv1 or v2,
    /// MLDv1).
    Join { version: u8, group: A },
    /// An IGMPv2 Leave Group (to 224.0.0.2) or MLDv1 Done (to ff02::2).
    Leave { version: u8, group: A },
}

impl<A> ReportOut<A> {
    /// Whether the report is an answer to a query (current-state records) rather than a
    /// state change.
    pub fn is_current_state(&self) -> bool {
        match self {
            ReportOut::Records(r) => r.iter().all(|r| {
                matches!(
                    r.record_type,
                    RecordType::ModeIsInclude | RecordType::ModeIsExclude
                )
            }),
            _ => false,
        }
    }
}

/// The last query heard upstream, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastQuery<A> {
    pub source: A,
    pub version: u8,
    /// Unspecified for a general query.
    pub group: A,
    pub at: Instant,
}

/// What was last sent, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReport {
    pub at: Instant,
    /// The protocol version of the report.
    pub version: u8,
    /// "state-change", "current-state" or "leave".
    pub kind: &'static str,
    /// Group records (1 for an older-version report).
    pub records: usize,
}

/// State-change retransmissions still owed for one group (RFC 3376 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Retransmit<A> {
    /// Filter-mode change reports still to send.
    mode: u8,
    /// Per source: how many more reports must carry it.
    sources: BTreeMap<A, u8>,
}

impl<A> Default for Retransmit<A> {
    fn default() -> Self {
        Retransmit {
            mode: 0,
            sources: BTreeMap::new(),
        }
    }
}

impl<A> Retransmit<A> {
    fn is_done(&self) -> bool {
        self.mode == 0 && self.sources.is_empty()
    }
}

/// One group's interface state before and after a change (`None`: INCLUDE {}).
type Change<A> = (A, Option<UpstreamWant<A>>, Option<UpstreamWant<A>>);

/// A pending answer to a group-specific (`None`) or group-and-source-specific query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupAnswer<A> {
    at: Instant,
    sources: Option<BTreeSet<A>>,
}

/// One family's upstream host side.
#[derive(Debug, Clone)]
pub struct Reporter<A> {
    cfg: ReporterConfig,
    /// What the members want now (the merge of RFC 4605 section 4.1).
    wanted: BTreeMap<A, UpstreamWant<A>>,
    /// The interface state as reported: `wanted` plus the groups held down.
    state: BTreeMap<A, UpstreamWant<A>>,
    /// Groups in `state` but not in `wanted`, and when their hold-down ends.
    held: BTreeMap<A, Instant>,
    retransmit: BTreeMap<A, Retransmit<A>>,
    retransmit_at: Option<Instant>,
    general_at: Option<Instant>,
    groups_at: BTreeMap<A, GroupAnswer<A>>,
    /// Older Version Querier Present timers, by version (IGMP 1 and 2, MLD 1).
    older_until: BTreeMap<u8, Instant>,
    /// Whether the upstream is open (nothing is sent while it is not).
    open: bool,
    rng: u64,
    last_query: Option<LastQuery<A>>,
    last_report: Option<LastReport>,
    sent: u64,
}

impl<A: GroupAddr> Reporter<A> {
    /// A reporter with the upstream closed. `seed` drives the random delays.
    pub fn new(cfg: ReporterConfig, seed: u64) -> Self {
        Reporter {
            cfg,
            wanted: BTreeMap::new(),
            state: BTreeMap::new(),
            held: BTreeMap::new(),
            retransmit: BTreeMap::new(),
            retransmit_at: None,
            general_at: None,
            groups_at: BTreeMap::new(),
            older_until: BTreeMap::new(),
            open: false,
            rng: seed,
            last_query: None,
            last_report: None,
            sent: 0,
        }
    }

    pub fn config(&self) -> &ReporterConfig {
        &self.cfg
    }

    /// A new configuration: the robustness and intervals apply from the next report; a
    /// shorter hold-down shortens the holds running.
    pub fn reconfigure(&mut self, cfg: ReporterConfig, now: Instant) {
        for until in self.held.values_mut() {
            *until = (*until).min(now + cfg.leave_delay);
        }
        self.cfg = cfg;
    }

    /// The interface state as reported upstream (held groups included).
    pub fn state(&self) -> &BTreeMap<A, UpstreamWant<A>> {
        &self.state
    }

    /// The groups kept only by the hold-down, and when it ends.
    pub fn held(&self) -> &BTreeMap<A, Instant> {
        &self.held
    }

    /// The version reports go out in: the oldest querier present, else the family's
    /// source-filtering version (RFC 3376 7.2.1: IGMPv1 mode wins over IGMPv2 mode).
    pub fn version(&self) -> u8 {
        self.older_until
            .keys()
            .next()
            .copied()
            .unwrap_or(A::FILTER_VERSION)
    }

    pub fn last_query(&self) -> Option<&LastQuery<A>> {
        self.last_query.as_ref()
    }

    pub fn last_report(&self) -> Option<&LastReport> {
        self.last_report.as_ref()
    }

    /// Report messages sent since start.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The earliest instant [`Reporter::poll`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t = [
            self.retransmit_at,
            self.general_at,
            self.groups_at.values().map(|a| a.at).min(),
            self.held.values().min().copied(),
            self.older_until.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min();
        if !self.open {
            // Closed: only the hold-downs and compat timers run (they change state, which
            // is reported when the upstream opens).
            t = [
                self.held.values().min().copied(),
                self.older_until.values().min().copied(),
            ]
            .into_iter()
            .flatten()
            .min();
        }
        t
    }

    /// The upstream opened: its state is reported afresh, as a new interface's (RFC 3376
    /// 5.1: every group's change from INCLUDE {} to its state).
    pub fn opened(&mut self, now: Instant) -> Vec<ReportOut<A>> {
        self.expire_compat(now);
        self.open = true;
        self.cancel_timers();
        let state = std::mem::take(&mut self.state);
        let mut out = Vec::new();
        let older = self.version() < A::FILTER_VERSION;
        for (g, w) in &state {
            if older {
                // The older protocol knows only joined: every group's join goes out
                // [Robustness Variable] times, the first below. (The source counters of
                // `changed` never run down in an older version: an INCLUDE group's report
                // would repeat until the compatibility mode ended.)
                let r = self.retransmit.entry(*g).or_default();
                r.mode = self.cfg.robustness.max(1);
                r.sources.clear();
            } else {
                self.changed(*g, None, Some(w));
            }
        }
        self.state = state;
        self.send_retransmit(now, &mut out);
        out
    }

    /// The upstream went away: nothing pending is sent; the state stays, to be reported
    /// when it opens again.
    pub fn closed(&mut self) {
        self.open = false;
        self.cancel_timers();
    }

    /// The members' merged wants changed (or may have): report the difference at once.
    /// A group no longer wanted is held down for `leave_delay` first.
    pub fn set_wanted(
        &mut self,
        wanted: BTreeMap<A, UpstreamWant<A>>,
        now: Instant,
    ) -> Vec<ReportOut<A>> {
        self.expire_compat(now);
        self.wanted = wanted;
        let mut changes: Vec<Change<A>> = Vec::new();
        // Groups wanted: new, changed, or back while held.
        for (g, w) in &self.wanted {
            self.held.remove(g);
            let old = self.state.get(g);
            if old != Some(w) {
                changes.push((*g, old.cloned(), Some(w.clone())));
            }
        }
        // Groups no longer wanted: held, or gone now.
        let gone: Vec<A> = self
            .state
            .keys()
            .filter(|g| !self.wanted.contains_key(g))
            .copied()
            .collect();
        for g in gone {
            if self.cfg.leave_delay.is_zero() {
                changes.push((g, self.state.get(&g).cloned(), None));
            } else {
                self.held.entry(g).or_insert(now + self.cfg.leave_delay);
            }
        }
        self.apply(changes, now)
    }

    /// Shutting down: leave every group at once (the retransmissions are not waited for).
    pub fn leave_all(&mut self, now: Instant) -> Vec<ReportOut<A>> {
        self.expire_compat(now);
        self.wanted.clear();
        self.held.clear();
        let changes = self
            .state
            .iter()
            .map(|(g, w)| (*g, Some(w.clone()), None))
            .collect();
        let out = self.apply(changes, now);
        self.cancel_timers();
        self.retransmit.clear();
        out
    }

    /// A query heard on the upstream from `source` (RFC 3376 5.2, 7.2.1; RFC 3810 6.2, 8.2.1).
    pub fn accept_query(&mut self, source: A, q: &HeardQuery<A>, now: Instant) {
        self.expire_compat(now);
        self.last_query = Some(LastQuery {
            source,
            version: q.version,
            group: q.group,
            at: now,
        });
        if q.version < A::FILTER_VERSION {
            // RFC 3376 8.12 / RFC 3810 9.12: Older Version Querier Present Timeout =
            // Robustness Variable x Query Interval + Query Response Interval.
            let timeout =
                u32::from(self.cfg.robustness.max(1)) * self.cfg.query_interval + q.max_resp;
            let before = self.version();
            self.older_until.insert(q.version, now + timeout);
            if self.version() != before {
                // RFC 3376 7.2.1: "Whenever a host changes its compatibility mode, it
                // cancels all its pending response and retransmission timers."
                self.cancel_timers();
                self.retransmit.clear();
            }
        }
        if !self.open {
            return;
        }
        // RFC 3376 5.2: a delay chosen at random in [0, Max Resp Time].
        let delay = self.random_upto(q.max_resp);
        let at = now + delay;
        // 1. A general answer pending sooner than this one covers it.
        if self.general_at.is_some_and(|g| g < at) {
            return;
        }
        if q.group.is_unspecified() {
            // 2. A general query: the interface timer, any earlier pending one replaced.
            self.general_at = Some(at);
            return;
        }
        if !self.state.contains_key(&q.group) {
            // No reception state for the group: nothing will be answered (5.2 step 5).
            return;
        }
        // Older versions answer a group query with a report, without sources.
        let sources: Option<BTreeSet<A>> = (self.version() == A::FILTER_VERSION
            && !q.sources.is_empty())
        .then(|| q.sources.iter().copied().collect());
        match self.groups_at.get_mut(&q.group) {
            // 3. No answer pending for the group: schedule one with the query's sources.
            None => {
                self.groups_at.insert(q.group, GroupAnswer { at, sources });
            }
            // 4. Pending: the earlier of the two delays; a group-specific query on either
            //    side makes it a group-specific answer, else the source lists merge.
            Some(p) => {
                p.at = p.at.min(at);
                match (&mut p.sources, sources) {
                    (Some(a), Some(b)) => a.extend(b),
                    (s, _) => *s = None,
                }
            }
        }
    }

    /// Send what is due at `now`: hold-downs ending, retransmissions, answers to queries,
    /// compatibility timers ending.
    pub fn poll(&mut self, now: Instant) -> Vec<ReportOut<A>> {
        let mut out = Vec::new();
        self.expire_compat(now);
        // Hold-downs that ended: the group leaves.
        let ended: Vec<A> = self
            .held
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(g, _)| *g)
            .collect();
        if !ended.is_empty() {
            let changes = ended
                .into_iter()
                .map(|g| {
                    self.held.remove(&g);
                    (g, self.state.get(&g).cloned(), None)
                })
                .collect();
            out.extend(self.apply(changes, now));
        }
        if !self.open {
            return out;
        }
        if self.retransmit_at.is_some_and(|t| t <= now) {
            self.retransmit_at = None;
            self.send_retransmit(now, &mut out);
        }
        if self.general_at.is_some_and(|t| t <= now) {
            self.general_at = None;
            let groups: Vec<A> = self.state.keys().copied().collect();
            // A general answer covers the group answers pending (5.2 step 1).
            self.groups_at.clear();
            self.send_current(groups.into_iter().map(|g| (g, None)), now, &mut out);
        }
        let due: Vec<(A, Option<BTreeSet<A>>)> = self
            .groups_at
            .iter()
            .filter(|(_, a)| a.at <= now)
            .map(|(g, a)| (*g, a.sources.clone()))
            .collect();
        if !due.is_empty() {
            for (g, _) in &due {
                self.groups_at.remove(g);
            }
            self.send_current(due.into_iter(), now, &mut out);
        }
        out
    }

    /// Compatibility timers that ran out by `now`: back to the newer version, timers
    /// cancelled. Every call taking `now` starts with it, so that a change at `now` is
    /// reported in the version of `now` even when `poll(now)` has not run yet (the snooper
    /// sets the wants before it polls).
    fn expire_compat(&mut self, now: Instant) {
        let before = self.version();
        self.older_until.retain(|_, until| *until > now);
        if self.version() != before {
            self.cancel_timers();
            self.retransmit.clear();
        }
    }

    fn cancel_timers(&mut self) {
        self.retransmit_at = None;
        self.general_at = None;
        self.groups_at.clear();
    }

    /// Put state changes into effect and send the state-change report at once.
    fn apply(&mut self, changes: Vec<Change<A>>, now: Instant) -> Vec<ReportOut<A>> {
        let mut out = Vec::new();
        if changes.is_empty() {
            return out;
        }
        let version = self.version();
        for (g, old, new) in changes {
            match &new {
                Some(w) => self.state.insert(g, w.clone()),
                None => self.state.remove(&g),
            };
            if !self.open {
                continue;
            }
            if version < A::FILTER_VERSION {
                // RFC 3376 7.2.1 / RFC 3810 8.2.1: the older protocol knows only joined or
                // not; a change of sources is no change to it.
                match (old.is_some(), new.is_some()) {
                    (false, true) => {
                        self.older_retransmit(g);
                        self.record_sent(
                            now,
                            version,
                            "state-change",
                            1,
                            &mut out,
                            ReportOut::Join { version, group: g },
                        );
                    }
                    (true, false) => {
                        self.retransmit.remove(&g);
                        self.groups_at.remove(&g);
                        // RFC 2236 section 3: IGMPv1 has no leave; v2 leaves go to
                        // all-routers (the frame builder picks the address).
                        if !(A::ignores_leaves(version)) {
                            self.record_sent(
                                now,
                                version,
                                "leave",
                                1,
                                &mut out,
                                ReportOut::Leave { version, group: g },
                            );
                        }
                    }
                    _ => {}
                }
                continue;
            }
            self.changed(g, old.as_ref(), new.as_ref());
        }
        if self.open && version == A::FILTER_VERSION {
            // RFC 3376 5.1: the (merged) state-change report goes out at once; it is the
            // first of [Robustness Variable] transmissions.
            self.send_retransmit(now, &mut out);
        } else if self.open && !self.retransmit.is_empty() && self.retransmit_at.is_none() {
            // The older-version joins went out above; their repetitions follow.
            self.retransmit_at = Some(now + self.retransmit_gap());
        }
        out
    }

    /// An older-version join is repeated like a state change (RFC 2236 section 3: "repeat
    /// the Report once or twice after short delays").
    fn older_retransmit(&mut self, g: A) {
        let r = self.retransmit.entry(g).or_default();
        r.mode = self.cfg.robustness.saturating_sub(1);
        r.sources.clear();
        if r.is_done() {
            self.retransmit.remove(&g);
        }
    }

    /// Record the retransmission state of one group's change (RFC 3376 5.1, the table of
    /// state-change records): a filter-mode change, or the sources that differ.
    fn changed(&mut self, g: A, old: Option<&UpstreamWant<A>>, new: Option<&UpstreamWant<A>>) {
        let rv = self.cfg.robustness.max(1);
        let (old_ex, old_set) = filter_of(old);
        let (new_ex, new_set) = filter_of(new);
        let r = self.retransmit.entry(g).or_default();
        if old_ex != new_ex {
            r.mode = rv;
            // The filter-mode record carries the whole new state; the per-source deltas it
            // supersedes are dropped.
            r.sources.clear();
        } else {
            for s in old_set.symmetric_difference(&new_set) {
                r.sources.insert(*s, rv);
            }
        }
        if r.is_done() {
            self.retransmit.remove(&g);
        }
    }

    /// Send one round of the pending state-change report and schedule the next.
    fn send_retransmit(&mut self, now: Instant, out: &mut Vec<ReportOut<A>>) {
        if !self.open || self.retransmit.is_empty() {
            return;
        }
        let version = self.version();
        let mut records = Vec::new();
        let mut older = Vec::new();
        for (g, r) in self.retransmit.iter_mut() {
            if version < A::FILTER_VERSION {
                // An older-version join being repeated.
                if self.state.contains_key(g) {
                    older.push(*g);
                }
                r.mode = r.mode.saturating_sub(1);
                continue;
            }
            let (ex, set) = filter_of(self.state.get(g));
            if r.mode > 0 {
                // TO_EX(current exclude list) or TO_IN(current include list).
                let t = if ex {
                    RecordType::ChangeToExclude
                } else {
                    RecordType::ChangeToInclude
                };
                records.push(record(t, *g, set.iter().copied()));
                r.mode -= 1;
                continue;
            }
            // ALLOW and BLOCK from the sources with retransmissions left: in INCLUDE mode
            // ALLOW those included now and BLOCK the others; in EXCLUDE mode the reverse.
            let (allow, block): (Vec<A>, Vec<A>) = r
                .sources
                .keys()
                .copied()
                .partition(|s| set.contains(s) != ex);
            if !allow.is_empty() {
                records.push(record(RecordType::AllowNew, *g, allow));
            }
            if !block.is_empty() {
                records.push(record(RecordType::BlockOld, *g, block));
            }
            for n in r.sources.values_mut() {
                *n -= 1;
            }
            r.sources.retain(|_, n| *n > 0);
        }
        self.retransmit.retain(|_, r| !r.is_done());
        if !records.is_empty() {
            let n = records.len();
            for msg in pack(records, self.cfg.max_report_len) {
                self.record_sent(now, version, "state-change", n, out, msg);
            }
        }
        for g in older {
            self.record_sent(
                now,
                version,
                "state-change",
                1,
                out,
                ReportOut::Join { version, group: g },
            );
        }
        self.retransmit_at = if self.retransmit.is_empty() {
            None
        } else {
            Some(now + self.retransmit_gap())
        };
    }

    /// RFC 3376 5.1: retransmissions at intervals chosen at random from (0, [Unsolicited
    /// Report Interval]).
    fn retransmit_gap(&mut self) -> Duration {
        let gap = self.random_upto(self.cfg.unsolicited_report_interval);
        gap.max(Duration::from_millis(1))
    }

    /// Answer queries: current-state records for `groups`, each with the sources queried
    /// (`Some`) or the whole state (RFC 3376 5.2 step 5; RFC 3810 6.2).
    fn send_current(
        &mut self,
        groups: impl Iterator<Item = (A, Option<BTreeSet<A>>)>,
        now: Instant,
        out: &mut Vec<ReportOut<A>>,
    ) {
        let version = self.version();
        let mut records = Vec::new();
        for (g, queried) in groups {
            let Some(w) = self.state.get(&g) else {
                continue;
            };
            if version < A::FILTER_VERSION {
                self.record_sent(
                    now,
                    version,
                    "current-state",
                    1,
                    out,
                    ReportOut::Join { version, group: g },
                );
                continue;
            }
            let (ex, set) = filter_of(Some(w));
            match queried {
                None if ex => records.push(record(RecordType::ModeIsExclude, g, set)),
                None => records.push(record(RecordType::ModeIsInclude, g, set)),
                // A group-and-source-specific query: INCLUDE(A) answers IS_IN(A*B),
                // EXCLUDE(X) answers IS_IN(B-X); nothing when that is empty.
                Some(b) => {
                    let answer: Vec<A> = if ex {
                        b.difference(&set).copied().collect()
                    } else {
                        b.intersection(&set).copied().collect()
                    };
                    if !answer.is_empty() {
                        records.push(record(RecordType::ModeIsInclude, g, answer));
                    }
                }
            }
        }
        if !records.is_empty() {
            let n = records.len();
            for msg in pack(records, self.cfg.max_report_len) {
                self.record_sent(now, version, "current-state", n, out, msg);
            }
        }
    }

    fn record_sent(
        &mut self,
        now: Instant,
        version: u8,
        kind: &'static str,
        records: usize,
        out: &mut Vec<ReportOut<A>>,
        msg: ReportOut<A>,
    ) {
        self.sent += 1;
        self.last_report = Some(LastReport {
            at: now,
            version,
            kind,
            records,
        });
        out.push(msg);
    }

    /// A delay in [0, max], uniform to the microsecond (SplitMix64).
    fn random_upto(&mut self, max: Duration) -> Duration {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(z % us.saturating_add(1))
    }
}

/// (is EXCLUDE, its source set) of a group's state; no state is INCLUDE {}.
fn filter_of<A: GroupAddr>(w: Option<&UpstreamWant<A>>) -> (bool, BTreeSet<A>) {
    match w {
        None => (false, BTreeSet::new()),
        Some(UpstreamWant::AnySource) => (true, BTreeSet::new()),
        Some(UpstreamWant::Exclude(x)) => (true, x.clone()),
        Some(UpstreamWant::Sources(s)) => (false, s.clone()),
    }
}

fn record<A>(record_type: RecordType, group: A, sources: impl IntoIterator<Item = A>) -> Record<A> {
    Record {
        record_type,
        group,
        sources: sources.into_iter().collect(),
    }
}

/// Pack records into reports of at most `max_len` bytes (RFC 3376 4.2.16, RFC 3810 5.2.15):
/// records are put in one report while they fit; a record too long for one report is split
/// over several, each with a part of the sources, except an EXCLUDE-mode record (IS_EX,
/// TO_EX), which keeps as many sources as fit and drops the rest.
pub fn pack<A: GroupAddr>(records: Vec<Record<A>>, max_len: usize) -> Vec<ReportOut<A>> {
    let addr = A::ADDR_LEN;
    // Report header 8 bytes; a record 4 bytes plus the group and its sources.
    let head = 8;
    let room = max_len.saturating_sub(head).max(4 + 2 * addr);
    let per_record = (room - 4 - addr) / addr;
    let mut out = Vec::new();
    let mut cur: Vec<Record<A>> = Vec::new();
    let mut used = 0;
    let mut flush = |cur: &mut Vec<Record<A>>, used: &mut usize| {
        if !cur.is_empty() {
            out.push(ReportOut::Records(std::mem::take(cur)));
        }
        *used = 0;
    };
    for r in records {
        let parts: Vec<Record<A>> = if r.sources.len() <= per_record {
            vec![r]
        } else if matches!(
            r.record_type,
            RecordType::ModeIsExclude | RecordType::ChangeToExclude
        ) {
            let mut r = r;
            r.sources.truncate(per_record);
            vec![r]
        } else {
            r.sources
                .chunks(per_record)
                .map(|c| record(r.record_type, r.group, c.iter().copied()))
                .collect()
        };
        for p in parts {
            let len = 4 + addr * (1 + p.sources.len());
            if used + len > room {
                flush(&mut cur, &mut used);
            }
            used += len;
            cur.push(p);
        }
    }
    flush(&mut cur, &mut used);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);
    const SSM: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);
    const S1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const S3: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const Q: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn open(t0: Instant) -> Reporter<Ipv4Addr> {
        let mut r = Reporter::new(ReporterConfig::default(), 7);
        assert!(r.opened(t0).is_empty());
        r
    }

    fn set(srcs: &[Ipv4Addr]) -> BTreeSet<Ipv4Addr> {
        srcs.iter().copied().collect()
    }

    fn wants(
        w: &[(Ipv4Addr, UpstreamWant<Ipv4Addr>)],
    ) -> BTreeMap<Ipv4Addr, UpstreamWant<Ipv4Addr>> {
        w.iter().cloned().collect()
    }

    /// The records of the reports, in order, as (type, group, sources).
    fn recs(out: &[ReportOut<Ipv4Addr>]) -> Vec<(RecordType, Ipv4Addr, Vec<Ipv4Addr>)> {
        out.iter()
            .flat_map(|o| match o {
                ReportOut::Records(r) => r
                    .iter()
                    .map(|r| (r.record_type, r.group, r.sources.clone()))
                    .collect::<Vec<_>>(),
                other => panic!("not a v3 report: {other:?}"),
            })
            .collect()
    }

    /// Poll until `until`, returning every report with the instant it went out.
    fn run(r: &mut Reporter<Ipv4Addr>, until: Instant) -> Vec<(Instant, ReportOut<Ipv4Addr>)> {
        let mut got = Vec::new();
        while let Some(t) = r.next_deadline().filter(|t| *t <= until) {
            for o in r.poll(t) {
                got.push((t, o));
            }
        }
        got
    }

    fn query(
        version: u8,
        group: Ipv4Addr,
        max_resp: Duration,
        sources: &[Ipv4Addr],
    ) -> HeardQuery<Ipv4Addr> {
        HeardQuery {
            version,
            max_resp,
            group,
            s_flag: false,
            qrv: 2,
            qqi: secs(125),
            sources: sources.to_vec(),
        }
    }

    #[test]
    fn a_join_is_sent_at_once_then_robustness_minus_one_times_within_the_interval() {
        // RFC 3376 5.1.
        let t0 = Instant::now();
        let mut r = open(t0);
        let out = r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        assert_eq!(recs(&out), vec![(RecordType::ChangeToExclude, G, vec![])]);
        let later = run(&mut r, t0 + secs(10));
        assert_eq!(later.len(), 1, "robustness 2: one retransmission {later:?}");
        assert!(later[0].0 > t0 && later[0].0 <= t0 + secs(1));
        assert_eq!(
            recs(&[later[0].1.clone()]),
            vec![(RecordType::ChangeToExclude, G, vec![])]
        );
        assert_eq!(r.next_deadline(), None, "nothing pending after that");
    }

    #[test]
    fn robustness_sets_the_number_of_transmissions() {
        let t0 = Instant::now();
        let cfg = ReporterConfig {
            robustness: 4,
            ..Default::default()
        };
        let mut r = Reporter::new(cfg, 1);
        r.opened(t0);
        let first = r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        assert_eq!(first.len() + run(&mut r, t0 + secs(10)).len(), 4);
    }

    #[test]
    fn an_include_join_is_allow_and_a_new_source_merges_into_the_pending_report() {
        let t0 = Instant::now();
        let mut r = open(t0);
        let out = r.set_wanted(wants(&[(SSM, UpstreamWant::Sources(set(&[S1])))]), t0);
        // From INCLUDE {} to INCLUDE {S1}: same filter mode, ALLOW {S1} (RFC 3376 5.1 table).
        assert_eq!(recs(&out), vec![(RecordType::AllowNew, SSM, vec![S1])]);
        let out = r.set_wanted(
            wants(&[(SSM, UpstreamWant::Sources(set(&[S1, S2])))]),
            t0 + ms(10),
        );
        // Merged with the pending retransmission: S1 still owed one, S2 new.
        assert_eq!(recs(&out), vec![(RecordType::AllowNew, SSM, vec![S1, S2])]);
        let later = run(&mut r, t0 + secs(10));
        // S1 was sent twice already; S2 once more.
        assert_eq!(
            recs(&later.into_iter().map(|x| x.1).collect::<Vec<_>>()),
            vec![(RecordType::AllowNew, SSM, vec![S2])]
        );
    }

    #[test]
    fn a_source_dropped_from_an_include_is_block() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(SSM, UpstreamWant::Sources(set(&[S1, S2])))]), t0);
        run(&mut r, t0 + secs(5));
        let out = r.set_wanted(
            wants(&[(SSM, UpstreamWant::Sources(set(&[S1])))]),
            t0 + secs(5),
        );
        assert_eq!(recs(&out), vec![(RecordType::BlockOld, SSM, vec![S2])]);
    }

    #[test]
    fn exclude_mode_source_changes_are_allow_and_block_reversed() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::Exclude(set(&[S1])))]), t0);
        run(&mut r, t0 + secs(5));
        // EXCLUDE {S1} -> EXCLUDE {S2}: ALLOW(S1), BLOCK(S2).
        let out = r.set_wanted(
            wants(&[(G, UpstreamWant::Exclude(set(&[S2])))]),
            t0 + secs(5),
        );
        assert_eq!(
            recs(&out),
            vec![
                (RecordType::AllowNew, G, vec![S1]),
                (RecordType::BlockOld, G, vec![S2])
            ]
        );
    }

    #[test]
    fn a_leave_is_to_in_empty_and_a_mode_change_carries_the_current_state() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        run(&mut r, t0 + secs(5));
        let out = r.set_wanted(BTreeMap::new(), t0 + secs(5));
        assert_eq!(recs(&out), vec![(RecordType::ChangeToInclude, G, vec![])]);
        // A change back while the leave is pending: the next report is TO_EX, and it is
        // what the retransmissions carry.
        let out = r.set_wanted(
            wants(&[(G, UpstreamWant::Exclude(set(&[S3])))]),
            t0 + secs(5) + ms(1),
        );
        assert_eq!(recs(&out), vec![(RecordType::ChangeToExclude, G, vec![S3])]);
        let later: Vec<_> = run(&mut r, t0 + secs(10))
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(
            recs(&later),
            vec![(RecordType::ChangeToExclude, G, vec![S3])]
        );
    }

    #[test]
    fn changes_of_several_groups_share_one_report() {
        let t0 = Instant::now();
        let mut r = open(t0);
        let out = r.set_wanted(
            wants(&[
                (G, UpstreamWant::AnySource),
                (G2, UpstreamWant::AnySource),
                (SSM, UpstreamWant::Sources(set(&[S1]))),
            ]),
            t0,
        );
        assert_eq!(out.len(), 1, "one message");
        assert_eq!(recs(&out).len(), 3);
    }

    #[test]
    fn nothing_is_sent_while_closed_and_the_state_is_reported_when_it_opens() {
        let t0 = Instant::now();
        let mut r = Reporter::new(ReporterConfig::default(), 3);
        assert!(r
            .set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0)
            .is_empty());
        assert_eq!(r.next_deadline(), None);
        let out = r.opened(t0 + secs(1));
        assert_eq!(recs(&out), vec![(RecordType::ChangeToExclude, G, vec![])]);
        r.closed();
        assert_eq!(r.next_deadline(), None, "retransmissions cancelled");
        assert_eq!(r.state().len(), 1, "the state stays for the next open");
    }

    #[test]
    fn a_general_query_is_answered_within_max_resp_with_every_group() {
        // RFC 3376 5.2.
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(
            wants(&[
                (G, UpstreamWant::AnySource),
                (SSM, UpstreamWant::Sources(set(&[S1, S2]))),
                (G2, UpstreamWant::Exclude(set(&[S3]))),
            ]),
            t0,
        );
        run(&mut r, t0 + secs(5));
        for seed in 0..50 {
            let mut r = r.clone();
            r.rng = seed;
            let tq = t0 + secs(10);
            r.accept_query(Q, &query(3, Ipv4Addr::UNSPECIFIED, secs(2), &[]), tq);
            let got = run(&mut r, tq + secs(5));
            assert_eq!(got.len(), 1);
            assert!(
                got[0].0 >= tq && got[0].0 <= tq + secs(2),
                "within Max Resp"
            );
            assert_eq!(
                recs(&[got[0].1.clone()]),
                vec![
                    (RecordType::ModeIsInclude, SSM, vec![S1, S2]),
                    (RecordType::ModeIsExclude, G, vec![]),
                    (RecordType::ModeIsExclude, G2, vec![S3]),
                ]
            );
            assert!(got[0].1.is_current_state());
        }
    }

    #[test]
    fn random_delays_spread_over_the_whole_range() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        run(&mut r, t0 + secs(5));
        let mut delays = Vec::new();
        for i in 0..200 {
            let tq = t0 + secs(10 + 20 * i);
            r.accept_query(Q, &query(3, Ipv4Addr::UNSPECIFIED, secs(10), &[]), tq);
            let got = run(&mut r, tq + secs(15));
            delays.push(got[0].0 - tq);
        }
        assert!(delays.iter().all(|d| *d <= secs(10)));
        assert!(delays.iter().any(|d| *d < secs(2)) && delays.iter().any(|d| *d > secs(8)));
    }

    #[test]
    fn an_earlier_general_answer_covers_a_later_query() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        run(&mut r, t0 + secs(5));
        let tq = t0 + secs(10);
        r.accept_query(Q, &query(3, Ipv4Addr::UNSPECIFIED, ms(1), &[]), tq);
        r.accept_query(Q, &query(3, G, secs(10), &[]), tq);
        assert!(
            r.groups_at.is_empty(),
            "step 1: the general answer comes first"
        );
        assert_eq!(run(&mut r, tq + secs(20)).len(), 1);
    }

    #[test]
    fn a_group_query_is_answered_for_that_group_only_and_not_for_unknown_groups() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(
            wants(&[(G, UpstreamWant::AnySource), (G2, UpstreamWant::AnySource)]),
            t0,
        );
        run(&mut r, t0 + secs(5));
        let tq = t0 + secs(10);
        r.accept_query(Q, &query(3, G, secs(1), &[]), tq);
        r.accept_query(Q, &query(3, Ipv4Addr::new(239, 9, 9, 9), secs(1), &[]), tq);
        let got = run(&mut r, tq + secs(5));
        assert_eq!(got.len(), 1);
        assert!(got[0].0 <= tq + secs(1));
        assert_eq!(
            recs(&[got[0].1.clone()]),
            vec![(RecordType::ModeIsExclude, G, vec![])]
        );
    }

    #[test]
    fn group_and_source_queries_answer_the_queried_sources_and_merge() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(
            wants(&[
                (SSM, UpstreamWant::Sources(set(&[S1, S2]))),
                (G, UpstreamWant::Exclude(set(&[S1]))),
            ]),
            t0,
        );
        run(&mut r, t0 + secs(5));
        let tq = t0 + secs(10);
        // INCLUDE {S1,S2}, queried for {S1,S3} then {S2}: IS_IN({S1,S2}).
        r.accept_query(Q, &query(3, SSM, secs(1), &[S1, S3]), tq);
        r.accept_query(Q, &query(3, SSM, secs(1), &[S2]), tq);
        // EXCLUDE {S1}, queried for {S1,S3}: IS_IN({S3}).
        r.accept_query(Q, &query(3, G, secs(1), &[S1, S3]), tq);
        let got: Vec<_> = run(&mut r, tq + secs(5)).into_iter().map(|x| x.1).collect();
        let mut all = recs(&got);
        all.sort_by_key(|r| r.1);
        assert_eq!(
            all,
            vec![
                (RecordType::ModeIsInclude, SSM, vec![S1, S2]),
                (RecordType::ModeIsInclude, G, vec![S3]),
            ]
        );
        // Queried only for a source it does not want: no answer at all.
        let tq = tq + secs(10);
        r.accept_query(Q, &query(3, SSM, secs(1), &[S3]), tq);
        assert!(run(&mut r, tq + secs(5)).is_empty());
    }

    #[test]
    fn a_group_query_after_a_source_query_makes_a_group_answer() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(SSM, UpstreamWant::Sources(set(&[S1, S2])))]), t0);
        run(&mut r, t0 + secs(5));
        let tq = t0 + secs(10);
        r.accept_query(Q, &query(3, SSM, secs(1), &[S1]), tq);
        r.accept_query(Q, &query(3, SSM, secs(1), &[]), tq);
        let got: Vec<_> = run(&mut r, tq + secs(5)).into_iter().map(|x| x.1).collect();
        assert_eq!(
            recs(&got),
            vec![(RecordType::ModeIsInclude, SSM, vec![S1, S2])]
        );
    }

    #[test]
    fn an_igmpv2_querier_makes_v2_reports_and_leaves_until_its_timer_ends() {
        // RFC 3376 7.2.1, 8.12.
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(SSM, UpstreamWant::Sources(set(&[S1])))]), t0);
        run(&mut r, t0 + secs(5));
        let tq = t0 + secs(10);
        r.accept_query(Q, &query(2, Ipv4Addr::UNSPECIFIED, secs(1), &[]), tq);
        assert_eq!(r.version(), 2);
        let got: Vec<_> = run(&mut r, tq + secs(2)).into_iter().map(|x| x.1).collect();
        assert_eq!(
            got,
            vec![ReportOut::Join {
                version: 2,
                group: SSM
            }],
            "sources dropped"
        );
        // A join: v2 report at once and once more.
        let out = r.set_wanted(
            wants(&[
                (SSM, UpstreamWant::Sources(set(&[S1]))),
                (G, UpstreamWant::AnySource),
            ]),
            tq + secs(3),
        );
        assert_eq!(
            out,
            vec![ReportOut::Join {
                version: 2,
                group: G
            }]
        );
        let again: Vec<_> = run(&mut r, tq + secs(5)).into_iter().map(|x| x.1).collect();
        assert_eq!(
            again,
            vec![ReportOut::Join {
                version: 2,
                group: G
            }]
        );
        // A source change is nothing to v2; a leave is a v2 leave.
        assert!(r
            .set_wanted(
                wants(&[
                    (SSM, UpstreamWant::Sources(set(&[S1, S2]))),
                    (G, UpstreamWant::AnySource)
                ]),
                tq + secs(6)
            )
            .is_empty());
        let out = r.set_wanted(
            wants(&[(SSM, UpstreamWant::Sources(set(&[S1, S2])))]),
            tq + secs(7),
        );
        assert_eq!(
            out,
            vec![ReportOut::Leave {
                version: 2,
                group: G
            }]
        );
        // RV x QI + Max Resp = 2 x 125 + 1 s later, back to v3.
        let end = tq + secs(251);
        run(&mut r, end - ms(1));
        assert_eq!(r.version(), 2);
        run(&mut r, end);
        assert_eq!(r.version(), 3);
    }

    #[test]
    fn igmpv1_mode_wins_over_v2_and_sends_no_leave() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.accept_query(Q, &query(2, Ipv4Addr::UNSPECIFIED, secs(1), &[]), t0);
        r.accept_query(Q, &query(1, Ipv4Addr::UNSPECIFIED, secs(10), &[]), t0);
        assert_eq!(r.version(), 1);
        let out = r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        assert_eq!(
            out,
            vec![ReportOut::Join {
                version: 1,
                group: G
            }]
        );
        run(&mut r, t0 + secs(2));
        assert!(
            r.set_wanted(BTreeMap::new(), t0 + secs(3)).is_empty(),
            "IGMPv1 has no leave"
        );
    }

    #[test]
    fn a_compat_mode_change_cancels_pending_answers_and_retransmissions() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        r.accept_query(Q, &query(3, Ipv4Addr::UNSPECIFIED, secs(5), &[]), t0);
        assert!(r.next_deadline().is_some());
        // Max Resp 0 of the older query: no new answer scheduled later than now.
        r.accept_query(Q, &query(2, G2, secs(0), &[]), t0);
        assert!(r.retransmit.is_empty() && r.general_at.is_none());
    }

    #[test]
    fn the_hold_down_keeps_a_group_then_leaves_it() {
        let t0 = Instant::now();
        let cfg = ReporterConfig {
            leave_delay: secs(30),
            ..Default::default()
        };
        let mut r = Reporter::new(cfg, 9);
        r.opened(t0);
        r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
        run(&mut r, t0 + secs(5));
        assert!(
            r.set_wanted(BTreeMap::new(), t0 + secs(5)).is_empty(),
            "held"
        );
        assert!(r.state().contains_key(&G) && r.held().contains_key(&G));
        // Zapping back within the hold: nothing to send.
        assert!(r
            .set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0 + secs(10))
            .is_empty());
        assert!(r.held().is_empty());
        r.set_wanted(BTreeMap::new(), t0 + secs(20));
        let got = run(&mut r, t0 + secs(49) + ms(999));
        assert!(got.is_empty(), "{got:?}");
        let got: Vec<_> = run(&mut r, t0 + secs(51))
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(
            recs(&got[..1]),
            vec![(RecordType::ChangeToInclude, G, vec![])]
        );
        assert!(r.state().is_empty());
    }

    #[test]
    fn leave_all_leaves_every_group_at_once() {
        let t0 = Instant::now();
        let mut r = open(t0);
        r.set_wanted(
            wants(&[
                (G, UpstreamWant::AnySource),
                (SSM, UpstreamWant::Sources(set(&[S1]))),
            ]),
            t0,
        );
        let out = r.leave_all(t0 + ms(5));
        assert_eq!(
            recs(&out),
            vec![
                (RecordType::BlockOld, SSM, vec![S1]),
                (RecordType::ChangeToInclude, G, vec![]),
            ]
        );
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn packing_splits_reports_and_long_records() {
        // IPv4: 8-byte header, records of 8 + 4n bytes.
        let many: Vec<Ipv4Addr> = (0..400u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        let recs4: Vec<Record<Ipv4Addr>> = (0..400u32)
            .map(|i| {
                record(
                    RecordType::ChangeToExclude,
                    Ipv4Addr::from(0xef00_0000 + i),
                    [],
                )
            })
            .collect();
        let out = pack(recs4, 1476);
        // (1476 - 8) / 8 = 183 records per report.
        let counts: Vec<usize> = out
            .iter()
            .map(|o| match o {
                ReportOut::Records(r) => r.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(counts, vec![183, 183, 34]);
        let allow = pack(vec![record(RecordType::AllowNew, G, many.clone())], 1476);
        let sizes: Vec<usize> = allow
            .iter()
            .map(|o| match o {
                ReportOut::Records(r) => r[0].sources.len(),
                _ => 0,
            })
            .collect();
        // (1476 - 8 - 8) / 4 = 365 sources per record.
        assert_eq!(sizes, vec![365, 35]);
        let ex = pack(vec![record(RecordType::ModeIsExclude, G, many)], 1476);
        assert_eq!(ex.len(), 1, "an exclude record is cut, not split");
        // IPv6: records of 20 + 16n bytes.
        let g6: Ipv6Addr = "ff3e::1".parse().unwrap();
        let s6: Vec<Ipv6Addr> = (0..100u128)
            .map(|i| Ipv6Addr::from(0x2001_0db8 << 96 | i))
            .collect();
        let out = pack(vec![record(RecordType::ModeIsInclude, g6, s6)], 1452);
        let sizes: Vec<usize> = out
            .iter()
            .map(|o| match o {
                ReportOut::Records(r) => r[0].sources.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![89, 11], "(1452 - 8 - 20) / 16 = 89");
    }

    #[test]
    fn mld_reports_v1_under_an_mldv1_querier() {
        // RFC 3810 8.2.1.
        let t0 = Instant::now();
        let g: Ipv6Addr = "ff0e::1234".parse().unwrap();
        let mut r: Reporter<Ipv6Addr> = Reporter::new(ReporterConfig::default(), 5);
        r.opened(t0);
        let q = HeardQuery {
            version: 1,
            max_resp: secs(1),
            group: Ipv6Addr::UNSPECIFIED,
            s_flag: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: vec![],
        };
        r.accept_query("fe80::1".parse().unwrap(), &q, t0);
        let out = r.set_wanted([(g, UpstreamWant::AnySource)].into_iter().collect(), t0);
        assert_eq!(
            out,
            vec![ReportOut::Join {
                version: 1,
                group: g
            }]
        );
        let out = r.set_wanted(BTreeMap::new(), t0 + secs(3));
        assert_eq!(
            out,
            vec![ReportOut::Leave {
                version: 1,
                group: g
            }]
        );
    }

    #[test]
    fn opening_under_an_older_querier_repeats_each_join_robustness_times() {
        // Found by the `reporter` fuzz target: the want set and an IGMPv1 (or v2) query
        // came while the upstream was closed; on `opened` the INCLUDE group's v1 report was
        // repeated at every retransmission round until the compatibility mode ended.
        let t0 = Instant::now();
        let mut r = Reporter::new(ReporterConfig::default(), 7);
        r.set_wanted(
            wants(&[
                (SSM, UpstreamWant::Sources(set(&[S1]))),
                (G, UpstreamWant::AnySource),
                (G2, UpstreamWant::Exclude(set(&[S2]))),
            ]),
            t0,
        );
        for v in [1, 2] {
            let mut r = r.clone();
            r.accept_query(Q, &query(v, Ipv4Addr::UNSPECIFIED, secs(1), &[]), t0);
            let mut got = r.opened(t0 + ms(10));
            // Well before the older querier's timer (2 x 125 s + 1 s) ends.
            got.extend(run(&mut r, t0 + secs(60)).into_iter().map(|x| x.1));
            for g in [SSM, G, G2] {
                let n = got
                    .iter()
                    .filter(|o| {
                        **o == ReportOut::Join {
                            version: v,
                            group: g,
                        }
                    })
                    .count();
                assert_eq!(n, 2, "v{v} reports of {g}: {got:?}");
            }
            assert_eq!(got.len(), 6, "{got:?}");
        }
    }

    #[test]
    fn a_change_after_the_older_querier_timer_ended_is_reported_in_the_newer_version() {
        // Found by the `membership` fuzz target: the snooper sets the wants before it polls
        // the reporter, so a leave at the instant the IGMPv1 querier timer ended went out
        // in IGMPv1 mode, that is not at all, and the router kept the group.
        let t0 = Instant::now();
        for v in [1, 2] {
            let mut r = open(t0);
            r.accept_query(Q, &query(v, Ipv4Addr::UNSPECIFIED, secs(10), &[]), t0);
            r.set_wanted(wants(&[(G, UpstreamWant::AnySource)]), t0);
            run(&mut r, t0 + secs(20));
            // RV x QI + Max Resp = 2 x 125 + 10 s: the timer ends at t0 + 260 s. No poll yet.
            let end = t0 + secs(260);
            let out = r.set_wanted(BTreeMap::new(), end);
            assert_eq!(r.version(), 3, "v{v}");
            assert_eq!(
                recs(&out),
                vec![(RecordType::ChangeToInclude, G, vec![])],
                "v{v}"
            );
        }
    }
}
