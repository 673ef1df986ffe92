//! Structured fuzzing of `core::reporter::Reporter`, the upstream host side, for both
//! families (the same input drives a `Reporter<Ipv4Addr>` and a `Reporter<Ipv6Addr>`), against
//! the router model of common/router.rs and the rules of RFC 3376 5 and 7.2.1 / RFC 3810 6
//! and 8.2.1.
//!
//! The input is a configuration (robustness 0-4, Unsolicited Report Interval 1 ms-2.5 s, query
//! interval 0.1-5 s, leave hold-down 0 or 1 ms-5 s, max_report_len from the smallest `pack`
//! keeps up, or the default) and up to 64 operations: `set_wanted` with a want map over four
//! groups and six sources (any source, EXCLUDE a set, INCLUDE a set); `accept_query` of every
//! version (IGMP 1-3, MLD 1-2), general, group-specific or (newest version)
//! group-and-source-specific, Max Resp 0-10 s; `opened` and `closed`; clock steps that poll
//! through every deadline on the way (ms, the Unsolicited Report Interval, 10 s, past the
//! Older Version Querier Present timeout); a jump that does not poll (a stalled thread);
//! a poll followed by one just before `next_deadline`; `reconfigure`. At the end the clock runs
//! on until every retransmission is done, then `leave_all`.
//!
//! Checked on every call:
//! - the router model, which hears every report, agrees with `state()` while the upstream is
//!   open (the whole filter in the source-filtering version, joined-or-not under an older
//!   querier, see common/router.rs); `state()` is the last want map plus the held groups
//!   (none when the hold-down is 0);
//! - (a) the call that changes a group's state carries its first report: TO_EX/TO_IN for a
//!   filter-mode change, ALLOW/BLOCK naming each changed source (or TO_EX/TO_IN while a mode
//!   change is still being repeated), an older-version report for a join and a Leave/Done
//!   for a leave under an older querier (none under IGMPv1);
//! - (b) between two filter-mode changes of a group at most [Robustness Variable] reports carry
//!   its TO_EX/TO_IN, and between two changes of a source at most that many carry it in
//!   ALLOW/BLOCK; once the time for all of them has passed (RV - 1 report intervals for a
//!   mode change; for a source those plus the mode-change reports still owed, which go
//!   first, RFC 3810 6.1) exactly that many
//!   did, unless the upstream closed, the compatibility mode changed, the configuration
//!   changed or the clock jumped meanwhile; an older-version join goes out RV times plus at
//!   most one answer per query heard since; no state-change record names a group or source
//!   without such a change;
//! - (c) a query is answered no later than its Max Resp after it while the upstream stays
//!   open and the version stays (a general query: current-state records of every group; a
//!   group query: one of that group, while it has state; a group-and-source query: IS_EX, or
//!   IS_IN with every asked source the state lets in, while the group's state stays and that
//!   set is not empty), unless a jump skipped the deadline;
//! - (d) nothing is sent while the upstream is closed;
//! - (e) in IGMPv1/v2 and MLDv1 mode only `Join`/`Leave` of that version go out, never a
//!   Leave in IGMPv1 mode, never a `Join` for a group without state; in the newest version
//!   only `Records`; every `Records` message `emit`s to at most `max_report_len` bytes;
//! - the version is that of the oldest querier whose Older Version Querier Present timer
//!   (RFC 3376 8.12: RV x QI + Max Resp, modelled here) runs at the call's `now`;
//! - (f) after `poll(now)` `next_deadline()` is not at or before `now`, and a poll just
//!   before it sends nothing and changes no state;
//! - at the end `leave_all` leaves the router with nothing and the state empty, and nothing
//!   is sent after it.
#![no_main]

#[path = "common/router.rs"]
mod router;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use router::{check_fits, joined_records, whole_record_len, Router, Wire};
use snoopcast::core::membership::UpstreamWant;
use snoopcast::core::querier::HeardQuery;
use snoopcast::core::reporter::{ReportOut, Reporter, ReporterConfig};
use snoopcast::wire::igmp::RecordType;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const GROUPS: u8 = 4;
const SOURCES: u8 = 6;
const MAX_OPS: usize = 64;

trait Fam: Wire {
    fn group(i: u8) -> Self;
    fn source(i: u8) -> Self;
    const QUERIER: Self;
    /// Query versions: 1 ..= FILTER_VERSION.
    fn query_version(v: u8) -> u8 {
        1 + v % Self::FILTER_VERSION
    }
    /// Default max_report_len (1500 less the IP header, Router Alert, hop-by-hop).
    const DEFAULT_LEN: usize;
}

impl Fam for Ipv4Addr {
    fn group(i: u8) -> Self {
        [
            Ipv4Addr::new(239, 1, 1, 1),
            Ipv4Addr::new(239, 1, 1, 2),
            Ipv4Addr::new(232, 1, 1, 1),
            Ipv4Addr::new(224, 0, 1, 1),
        ][usize::from(i % GROUPS)]
    }
    fn source(i: u8) -> Self {
        Ipv4Addr::new(192, 0, 2, 1 + i % SOURCES)
    }
    const QUERIER: Self = Ipv4Addr::new(10, 1, 0, 1);
    const DEFAULT_LEN: usize = 1500 - 24;
}

impl Fam for Ipv6Addr {
    fn group(i: u8) -> Self {
        [
            Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 2),
            Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 1),
            Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x1234),
        ][usize::from(i % GROUPS)]
    }
    fn source(i: u8) -> Self {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1 + u16::from(i % SOURCES))
    }
    const QUERIER: Self = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const DEFAULT_LEN: usize = 1500 - 40 - 8;
}

#[derive(Arbitrary, Debug, Clone)]
struct Cfg {
    robustness: u8,
    uri_10ms: u8,
    qi_100ms: u8,
    leave_delay_ms: u16,
    /// Some(n): a max_report_len n bytes over the smallest `pack` keeps to; None: the default.
    small_len: Option<u8>,
}

#[derive(Arbitrary, Debug)]
enum WantKind {
    Any,
    /// EXCLUDE the sources whose bit is set (none: any source).
    Exclude(u8),
    /// INCLUDE the sources whose bit is set (none: not wanted).
    Include(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Ms(u16),
    Uri,
    HalfUri,
    TenSecs,
    /// Past the Older Version Querier Present timeout of a query with Max Resp 10 s.
    PastCompat,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Want(Vec<(u8, WantKind)>),
    Query {
        version: u8,
        /// None: a general query.
        group: Option<u8>,
        /// Sources asked about (newest version only), by bit.
        sources: u8,
        max_resp_100ms: u8,
    },
    Open,
    Close,
    Step(Step),
    /// The clock moves on without a poll.
    Jump(u16),
    PollEarly,
    Reconfigure(Cfg),
}

#[derive(Arbitrary, Debug)]
struct FuzzInput {
    cfg: Cfg,
    ops: Vec<Op>,
}

type State<A> = BTreeMap<A, UpstreamWant<A>>;

/// REPORTER_TRACE=1 prints every call (to replay a finding).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("REPORTER_TRACE").is_some())
}

fn config<A: Fam>(c: &Cfg) -> ReporterConfig {
    ReporterConfig {
        robustness: c.robustness % 5,
        unsolicited_report_interval: Duration::from_millis(1 + 10 * u64::from(c.uri_10ms % 250)),
        query_interval: Duration::from_millis(100 * (1 + u64::from(c.qi_100ms % 50))),
        leave_delay: if c.leave_delay_ms.is_multiple_of(2) {
            Duration::ZERO
        } else {
            Duration::from_millis(u64::from(c.leave_delay_ms % 5000))
        },
        max_report_len: match c.small_len {
            Some(n) => 8 + 4 + 2 * A::ADDR_LEN + usize::from(n % 150),
            None => A::DEFAULT_LEN,
        },
    }
}

fn sources<A: Fam>(mask: u8) -> BTreeSet<A> {
    (0..SOURCES)
        .filter(|i| mask & (1 << i) != 0)
        .map(A::source)
        .collect()
}

/// (EXCLUDE?, sources) of a state; absent is INCLUDE {}.
fn filter<A: Fam>(w: Option<&UpstreamWant<A>>) -> (bool, BTreeSet<A>) {
    match w {
        None => (false, BTreeSet::new()),
        Some(UpstreamWant::AnySource) => (true, BTreeSet::new()),
        Some(UpstreamWant::Exclude(x)) => (true, x.clone()),
        Some(UpstreamWant::Sources(s)) => (false, s.clone()),
    }
}

/// Reports of one retransmission cycle, counted from one change.
#[derive(Debug, Clone)]
struct Epoch {
    start: Instant,
    /// Reports due: RV for a state change, 0 for a group met under an older querier without
    /// a join (it gets only answers).
    due: u32,
    sent: u32,
    /// Report intervals after `start` by which all `due` reports must be out.
    rounds: u32,
    /// The longest gap between them.
    gap: Duration,
    /// Queries heard before it whose answers cannot come any more (older-version reports
    /// also answer queries: one per query heard since, or pending when it started).
    queries: u32,
    /// Nothing interfered (close, compat change, reconfigure, jump): the count must be exact.
    exact: bool,
}

#[derive(Debug, Clone)]
enum Ask<A> {
    General,
    Group(A),
    /// The group, the state when asked, the sources an answer must name.
    Sources(A, UpstreamWant<A>, BTreeSet<A>),
}

#[derive(Debug, Clone)]
struct Obligation<A> {
    ask: Ask<A>,
    asked: Instant,
    deadline: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Want,
    Query,
    Opened,
    Closed,
    Poll,
    LeaveAll,
}

struct Run<A: Fam> {
    t0: Instant,
    r: Reporter<A>,
    cfg: ReporterConfig,
    router: Router<A>,
    now: Instant,
    open: bool,
    wanted: State<A>,
    /// Filter-mode change reports per group, source-list change reports per (group, source),
    /// older-version reports per group.
    mode: BTreeMap<A, Epoch>,
    src: BTreeMap<(A, A), Epoch>,
    join: BTreeMap<A, Epoch>,
    queries: u32,
    /// The Max Resp deadlines of the queries heard in this version while open.
    answers_due: Vec<Instant>,
    asks: Vec<Obligation<A>>,
    /// Until when a retransmission timer of an earlier configuration may be pending, and
    /// its longest gap.
    slow_until: Instant,
    slow_gap: Duration,
    /// The Older Version Querier Present timers (RFC 3376 8.12), by version.
    older_until: BTreeMap<u8, Instant>,
}

impl<A: Fam> Run<A> {
    fn rv(&self) -> u32 {
        u32::from(self.cfg.robustness.max(1))
    }
    fn uri(&self) -> Duration {
        self.cfg
            .unsolicited_report_interval
            .max(Duration::from_millis(1))
    }
    /// The longest gap between two retransmissions now: the report interval, or a longer
    /// one before a reconfigure while a timer it set may still be pending.
    fn gap(&self) -> Duration {
        if self.now < self.slow_until {
            self.uri().max(self.slow_gap)
        } else {
            self.uri()
        }
    }
    fn lossy(&self) -> bool {
        self.cfg.max_report_len < whole_record_len::<A>(usize::from(SOURCES))
    }
    fn interrupt(&mut self) {
        for e in self
            .mode
            .values_mut()
            .chain(self.src.values_mut())
            .chain(self.join.values_mut())
        {
            e.exact = false;
        }
    }
    fn epoch(&self, due: u32) -> Epoch {
        let pending = self.answers_due.iter().filter(|d| **d >= self.now).count() as u32;
        Epoch {
            start: self.now,
            due,
            sent: 0,
            rounds: due.saturating_sub(1),
            gap: self.gap(),
            queries: self.queries - pending,
            exact: true,
        }
    }

    /// Check one call's output and the state after it.
    fn after(
        &mut self,
        call: Call,
        before: &State<A>,
        before_version: u8,
        out: &[ReportOut<A>],
        query: Option<&HeardQuery<A>>,
    ) {
        let now = self.now;
        let version = self.r.version();
        let state = self.r.state().clone();
        let older = version < A::FILTER_VERSION;
        if trace() {
            eprintln!(
                "{:?} {call:?} v{version} {out:?} -> {state:?} held {:?} next {:?}",
                now - self.t0,
                self.r.held(),
                self.r.next_deadline().map(|d| d - self.t0)
            );
        }
        // The version is the oldest querier's whose timer runs at `now` (closed() takes no
        // time, so it may be behind).
        self.older_until.retain(|_, until| *until > now);
        if let Some(q) = query.filter(|q| q.version < A::FILTER_VERSION) {
            let timeout = self.cfg.query_interval * self.rv() + q.max_resp;
            self.older_until.insert(q.version, now + timeout);
        }
        if call != Call::Closed {
            let want = self.older_until.keys().next().copied();
            assert_eq!(
                version,
                want.unwrap_or(A::FILTER_VERSION),
                "{call:?}: the version at {now:?}"
            );
        }
        // (d) Nothing while closed.
        if !self.open {
            assert!(out.is_empty(), "{call:?} sent while closed: {out:?}");
        }
        // (e) The version's kind of report, and the size.
        check_fits(out, self.cfg.max_report_len);
        for o in out {
            match o {
                ReportOut::Records(_) => assert!(!older, "v3/MLDv2 report in v{version} mode"),
                ReportOut::Join { version: v, group } => {
                    assert!(older && *v == version, "{o:?} in v{version} mode");
                    assert!(state.contains_key(group), "{o:?} for a group without state");
                }
                ReportOut::Leave { version: v, group } => {
                    assert!(older && *v == version, "{o:?} in v{version} mode");
                    assert!(!A::ignores_leaves(version), "{o:?} in IGMPv1 mode");
                    assert!(!state.contains_key(group), "{o:?} for a group with state");
                }
            }
        }
        // The state is the wants plus the held groups.
        let held = self.r.held().clone();
        if call != Call::LeaveAll {
            for (g, w) in &self.wanted {
                assert_eq!(state.get(g), Some(w), "wanted {g} not in the state");
                assert!(!held.contains_key(g), "wanted {g} held");
            }
            for g in state.keys() {
                assert!(
                    self.wanted.contains_key(g) || held.contains_key(g),
                    "{g} in the state, neither wanted nor held"
                );
            }
            for (g, until) in &held {
                assert!(state.contains_key(g), "held {g} not in the state");
                assert!(
                    call != Call::Poll || *until > now,
                    "hold of {g} over at {now:?}"
                );
            }
        }
        if self.cfg.leave_delay.is_zero() {
            assert!(held.is_empty(), "held with no hold-down");
        }
        // A compatibility change cancels every retransmission and pending answer.
        if version != before_version {
            self.interrupt();
            self.asks.clear();
            self.answers_due.clear();
            if older {
                for g in state.keys() {
                    let e = self.epoch(0);
                    self.join.insert(*g, e);
                }
            }
        }
        if call == Call::Opened {
            // The state is reported afresh, as state changes; what was pending is cancelled
            // (opening while open included: the router hears the whole state anyway).
            self.interrupt();
            self.asks.clear();
            self.answers_due.clear();
        }
        // The router hears it all and agrees.
        if self.open {
            self.router.hear(out);
            self.router.check(&state, version, self.lossy());
        }
        let recs = joined_records(out);
        let to_x: BTreeSet<A> = recs
            .iter()
            .filter(|r| {
                matches!(
                    r.record_type,
                    RecordType::ChangeToExclude | RecordType::ChangeToInclude
                )
            })
            .map(|r| r.group)
            .collect();
        let src_change: BTreeSet<(A, A)> = recs
            .iter()
            .filter(|r| matches!(r.record_type, RecordType::AllowNew | RecordType::BlockOld))
            .flat_map(|r| r.sources.iter().map(move |s| (r.group, *s)))
            .collect();
        let current: BTreeSet<A> = recs
            .iter()
            .filter(|r| {
                matches!(
                    r.record_type,
                    RecordType::ModeIsExclude | RecordType::ModeIsInclude
                )
            })
            .map(|r| r.group)
            .collect();
        let joins: BTreeSet<A> = out
            .iter()
            .filter_map(|o| match o {
                ReportOut::Join { group, .. } => Some(*group),
                _ => None,
            })
            .collect();
        let leaves: BTreeSet<A> = out
            .iter()
            .filter_map(|o| match o {
                ReportOut::Leave { group, .. } => Some(*group),
                _ => None,
            })
            .collect();
        // (a) The changes made by this call and their first reports; new epochs.
        if self.open {
            let empty = State::new();
            let from = if call == Call::Opened { &empty } else { before };
            let keys: BTreeSet<A> = from.keys().chain(state.keys()).copied().collect();
            for g in keys {
                let (old, new) = (from.get(&g), state.get(&g));
                if old == new {
                    continue;
                }
                if older {
                    if old.is_none() {
                        assert!(joins.contains(&g), "join of {g} not sent at once: {out:?}");
                        let e = self.epoch(self.rv());
                        self.end(EpochKey::Join(g), e);
                    } else if new.is_none() {
                        if !A::ignores_leaves(version) {
                            assert!(leaves.contains(&g), "leave of {g} not sent at once");
                        }
                        let e = self.epoch(0);
                        self.end(EpochKey::Join(g), e);
                    }
                    continue;
                }
                let (old_ex, old_set) = filter(old);
                let (new_ex, new_set) = filter(new);
                if old_ex != new_ex {
                    assert!(
                        to_x.contains(&g),
                        "filter-mode change of {g} ({old:?} -> {new:?}) not sent at once: {out:?}"
                    );
                    let e = self.epoch(self.rv());
                    self.end(EpochKey::Mode(g), e);
                    // The source changes pending are superseded.
                    self.src.retain(|(h, _), _| *h != g);
                } else {
                    // A mode change still being repeated goes first (RFC 3810 6.1): its
                    // reports owed, this one included, then the source reports.
                    let mode_owed = match self.mode.get(&g) {
                        Some(m) if to_x.contains(&g) => m.due.saturating_sub(m.sent),
                        _ => 0,
                    };
                    for s in old_set.symmetric_difference(&new_set) {
                        assert!(
                            src_change.contains(&(g, *s)) || to_x.contains(&g),
                            "change of {s} in {g} ({old:?} -> {new:?}) not sent at once: {out:?}"
                        );
                        let mut e = self.epoch(self.rv());
                        e.rounds += mode_owed;
                        self.end(EpochKey::Src(g, *s), e);
                    }
                }
            }
        }
        // (b) Count the reports of this call.
        for g in &to_x {
            let e = self
                .mode
                .get_mut(g)
                .unwrap_or_else(|| panic!("TO_EX/TO_IN of {g} with no filter-mode change"));
            e.sent += 1;
            assert!(e.sent <= e.due, "{g}: {} filter-mode reports", e.sent);
        }
        for k in &src_change {
            let e = self
                .src
                .get_mut(k)
                .unwrap_or_else(|| panic!("ALLOW/BLOCK of {k:?} with no change of it"));
            e.sent += 1;
            assert!(e.sent <= e.due, "{k:?}: {} source reports", e.sent);
        }
        for g in &joins {
            let queries = self.queries;
            let e = self
                .join
                .get_mut(g)
                .unwrap_or_else(|| panic!("older-version report of {g} from nowhere"));
            e.sent += 1;
            assert!(
                e.sent <= e.due + (queries - e.queries),
                "{g}: {} older-version reports, {} due and {} queries since",
                e.sent,
                e.due,
                queries - e.queries
            );
        }
        if call == Call::LeaveAll {
            self.interrupt();
        }
        // (b) Complete once their time has passed.
        let done = |e: &Epoch, rounds: u32| e.exact && now >= e.start + e.gap * rounds;
        for (g, e) in &self.mode {
            if done(e, e.rounds) {
                assert_eq!(
                    e.sent, e.due,
                    "{g}: filter-mode reports since {:?}",
                    e.start
                );
            }
        }
        for (k, e) in &self.src {
            if done(e, e.rounds) {
                assert_eq!(e.sent, e.due, "{k:?}: source reports since {:?}", e.start);
            }
        }
        for (g, e) in &self.join {
            if done(e, e.rounds) {
                assert!(
                    e.sent >= e.due,
                    "{g}: older-version reports since {:?}",
                    e.start
                );
            }
        }
        // (c) Answers to queries.
        let general = !state.is_empty()
            && state.keys().all(|g| {
                if older {
                    joins.contains(g)
                } else {
                    current.contains(g)
                }
            });
        let open = self.open;
        self.asks.retain(|o| {
            if !open {
                return false;
            }
            let answered = general
                || match &o.ask {
                    Ask::General => false,
                    Ask::Group(g) => {
                        if older {
                            joins.contains(g)
                        } else {
                            current.contains(g)
                        }
                    }
                    Ask::Sources(g, _, want) => recs.iter().any(|r| {
                        r.group == *g
                            && (r.record_type == RecordType::ModeIsExclude
                                || (r.record_type == RecordType::ModeIsInclude
                                    && want.iter().all(|s| r.sources.contains(s))))
                    }),
                };
            let moot = match &o.ask {
                Ask::General => state.is_empty(),
                Ask::Group(g) => !state.contains_key(g),
                Ask::Sources(g, w, _) => state.get(g) != Some(w),
            };
            !answered && !moot
        });
        for o in &self.asks {
            assert!(
                now <= o.deadline,
                "{:?} asked at {:?} unanswered at its deadline {:?} (now {now:?})",
                o.ask,
                o.asked,
                o.deadline
            );
        }
        if let (Some(q), true) = (query, self.open) {
            let deadline = now + q.max_resp;
            let ask = if q.group.is_unspecified() {
                (!state.is_empty()).then_some(Ask::General)
            } else if let Some(w) = state.get(&q.group) {
                if q.sources.is_empty() || older {
                    Some(Ask::Group(q.group))
                } else {
                    let b: BTreeSet<A> = q.sources.iter().copied().collect();
                    let (ex, set) = filter(Some(w));
                    let want: BTreeSet<A> = if ex { &b - &set } else { &b & &set };
                    (!want.is_empty()).then(|| Ask::Sources(q.group, w.clone(), want))
                }
            } else {
                None
            };
            if let Some(ask) = ask {
                self.asks.push(Obligation {
                    ask,
                    asked: now,
                    deadline,
                });
            }
            self.queries += 1;
            self.answers_due.push(deadline);
        }
        if !self.open {
            self.answers_due.clear();
        }
        // (f) After a poll the deadline lies ahead.
        if call == Call::Poll {
            let d = self.r.next_deadline();
            assert!(
                d.is_none_or(|d| d > now),
                "next_deadline {d:?} not after {now:?}"
            );
        }
    }

    /// Start epoch `e` for `k`, ending the one before (superseded: no exactness check; its
    /// reports were bounded as they went).
    fn end(&mut self, k: EpochKey<A>, e: Epoch) {
        match k {
            EpochKey::Mode(g) => {
                self.mode.insert(g, e);
            }
            EpochKey::Src(g, s) => {
                self.src.insert((g, s), e);
            }
            EpochKey::Join(g) => {
                self.join.insert(g, e);
            }
        }
    }

    fn snapshot(&self) -> (State<A>, u8) {
        (self.r.state().clone(), self.r.version())
    }

    fn set_wanted(&mut self, w: State<A>) {
        let (before, v) = self.snapshot();
        self.wanted = w.clone();
        let out = self.r.set_wanted(w, self.now);
        self.after(Call::Want, &before, v, &out, None);
    }

    fn query(&mut self, q: HeardQuery<A>) {
        let (before, v) = self.snapshot();
        self.r.accept_query(A::QUERIER, &q, self.now);
        self.after(Call::Query, &before, v, &[], Some(&q));
    }

    fn poll(&mut self) {
        let (before, v) = self.snapshot();
        let out = self.r.poll(self.now);
        self.after(Call::Poll, &before, v, &out, None);
    }

    fn open(&mut self) {
        let (before, v) = self.snapshot();
        self.open = true;
        let out = self.r.opened(self.now);
        self.after(Call::Opened, &before, v, &out, None);
    }

    fn close(&mut self) {
        let (before, v) = self.snapshot();
        self.r.closed();
        self.open = false;
        self.router.reset();
        self.interrupt();
        self.after(Call::Closed, &before, v, &[], None);
    }

    /// Poll through every deadline up to `to`, then at `to`.
    fn advance(&mut self, to: Instant) {
        let mut n = 0;
        while let Some(d) = self.r.next_deadline().filter(|d| *d <= to) {
            self.now = self.now.max(d);
            self.poll();
            n += 1;
            assert!(
                n < 20_000,
                "the deadline does not move on: {:?}",
                self.r.next_deadline()
            );
        }
        self.now = self.now.max(to);
        self.poll();
    }
}

enum EpochKey<A> {
    Mode(A),
    Src(A, A),
    Join(A),
}

fn run<A: Fam>(input: &FuzzInput) {
    let t0 = Instant::now();
    let cfg = config::<A>(&input.cfg);
    let mut run = Run {
        t0,
        r: Reporter::new(cfg.clone(), 0x5eed),
        cfg,
        router: Router::default(),
        now: t0,
        open: false,
        wanted: State::new(),
        mode: BTreeMap::new(),
        src: BTreeMap::new(),
        join: BTreeMap::new(),
        queries: 0,
        answers_due: Vec::new(),
        asks: Vec::new(),
        slow_until: t0,
        slow_gap: Duration::ZERO,
        older_until: BTreeMap::new(),
    };
    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Want(ws) => {
                let mut w = State::new();
                for (g, k) in ws.iter().take(GROUPS.into()) {
                    let g = A::group(*g);
                    match k {
                        WantKind::Any => {
                            w.insert(g, UpstreamWant::AnySource);
                        }
                        WantKind::Exclude(m) => {
                            let x = sources::<A>(*m);
                            w.insert(
                                g,
                                if x.is_empty() {
                                    UpstreamWant::AnySource
                                } else {
                                    UpstreamWant::Exclude(x)
                                },
                            );
                        }
                        WantKind::Include(m) => {
                            let s = sources::<A>(*m);
                            if s.is_empty() {
                                w.remove(&g);
                            } else {
                                w.insert(g, UpstreamWant::Sources(s));
                            }
                        }
                    }
                }
                run.set_wanted(w);
            }
            Op::Query {
                version,
                group,
                sources: m,
                max_resp_100ms,
            } => {
                let version = A::query_version(*version);
                let q = HeardQuery {
                    version,
                    max_resp: Duration::from_millis(100 * u64::from(max_resp_100ms % 101)),
                    group: group.map_or(A::MIN, A::group),
                    s_flag: false,
                    qrv: 2,
                    qqi: Duration::from_secs(125),
                    sources: if version == A::FILTER_VERSION && group.is_some() {
                        sources::<A>(*m).into_iter().collect()
                    } else {
                        Vec::new()
                    },
                };
                run.query(q);
            }
            Op::Open => run.open(),
            Op::Close => run.close(),
            Op::Step(s) => {
                let d = match s {
                    Step::Ms(n) => Duration::from_millis(u64::from(n % 3000)),
                    Step::Uri => run.uri(),
                    Step::HalfUri => run.uri() / 2,
                    Step::TenSecs => Duration::from_secs(10),
                    Step::PastCompat => {
                        run.cfg.query_interval * run.rv() + Duration::from_millis(10_001)
                    }
                };
                let to = run.now + d;
                run.advance(to);
            }
            Op::Jump(ms) => {
                run.now += Duration::from_millis(u64::from(*ms % 3000));
                run.interrupt();
                let now = run.now;
                // Answers due meanwhile come late: nobody polled.
                run.asks.retain(|o| o.deadline >= now);
                for d in &mut run.answers_due {
                    *d = (*d).max(now);
                }
            }
            Op::PollEarly => {
                run.poll();
                if let Some(d) = run.r.next_deadline() {
                    let t = d - Duration::from_micros(1);
                    if t > run.now {
                        let (state, v) = run.snapshot();
                        let out = run.r.poll(t);
                        assert!(out.is_empty(), "a poll before next_deadline sent {out:?}");
                        assert_eq!((run.r.state(), run.r.version()), (&state, v));
                        assert_eq!(run.r.next_deadline(), Some(d));
                        run.now = t;
                    }
                }
            }
            Op::Reconfigure(c) => {
                let cfg = config::<A>(c);
                run.slow_gap = run.gap();
                run.slow_until = run.now + run.slow_gap;
                run.r.reconfigure(cfg.clone(), run.now);
                run.cfg = cfg;
                run.interrupt();
                // A shorter hold-down may be due at once.
                run.poll();
            }
        }
    }
    // Every retransmission runs out (the compat timers may end meanwhile).
    let to = run.now + run.gap() * 10;
    run.advance(to);
    let (before, v) = run.snapshot();
    let out = run.r.leave_all(run.now);
    run.wanted.clear();
    run.after(Call::LeaveAll, &before, v, &out, None);
    assert!(run.r.state().is_empty() && run.r.held().is_empty());
    assert!(
        run.router.groups.is_empty(),
        "the router still has {:?} after leave_all",
        run.router.groups
    );
    let to = run.now + Duration::from_secs(400);
    let mut n = 0;
    while let Some(d) = run.r.next_deadline().filter(|d| *d <= to) {
        run.now = run.now.max(d);
        let out = run.r.poll(run.now);
        assert!(out.is_empty(), "sent after leave_all: {out:?}");
        n += 1;
        assert!(n < 100, "deadlines after leave_all do not end");
    }
}

fuzz_target!(|input: FuzzInput| {
    run::<Ipv4Addr>(&input);
    run::<Ipv6Addr>(&input);
});
