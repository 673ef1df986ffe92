//! Structured fuzzing of the actions of `core::snooper::Snooper`, for both families (the same
//! input runs through a `Snooper<Ipv4Addr>` and a `Snooper<Ipv6Addr>`), against a naive model
//! of the control decisions. The `membership` target checks the table, pool and querier
//! state behind the snooper; this one checks what the snooper tells the runtime to do.
//!
//! The input is a small configuration (robustness 1-4, query interval 0.1-2 s, a rebuild
//! cost 0-15 ms that the stopwatch reports, so the pacer's spacing varies between
//! REBUILD_MIN_GAP and REBUILD_MAX_GAP) and up to 64 operations: old-version reports, leaves
//! and records from three hosts on three interfaces; queries from several addresses (ours,
//! lower, higher, unspecified); clock steps; polls (plain, just before `next_deadline`, at
//! it); interfaces opening (with or without a query source), getting their address, closing;
//! the upstream opening and closing; queries heard on the upstream (every version, general,
//! group or group-and-source, so the reporter's compatibility mode changes); `Stop`. The
//! upstream reports are heard by the router model of common/router.rs.
//!
//! Checked on every action list:
//! - `SendQuery` only for an open interface, never after `Stop`, never from the unspecified
//!   address for IPv6; general queries only from `poll`, exactly when the model querier says
//!   (startup: robustness queries a quarter query interval apart, then every query interval;
//!   none while a lower querier is present, which only `auto` yields to, and never to itself
//!   or the unspecified address; at most one per interface per poll), from the interface's
//!   address, with the query response interval and the configured querier settings;
//!   group-specific queries exactly for the `SendGroupQuery` events of the same list while
//!   the model is the querier (not off, no lower querier present), with the Last Member
//!   Query Interval;
//! - `Role` notes exactly when the model yields or resumes; `NoQuerySource` when an MLD
//!   interface opens without an address (querier not off), `QuerySourceFound` when it gets
//!   one; a message on a closed interface or after `Stop` yields nothing;
//! - every `Publish` (only from `poll`) is `table().forwarding()` at that moment, and a
//!   forwarding change is published within REBUILD_MAX_GAP;
//! - `Report` only while the upstream is open (from `poll`, or from `UpstreamOpened`), only
//!   leaves (TO_IN, BLOCK, Leave) after `Stop`; every source-filtering report `emit`s to at
//!   most `max_report_len` bytes; the router model, which hears every report, agrees with
//!   `reporter().state()` after every action list while the upstream is open (see
//!   common/router.rs for what an older querier changes); `reporter().state()` is
//!   `table().upstream_wants()` plus the held groups (exactly the wants when the hold-down
//!   is 0) within REBUILD_MAX_GAP of a change; an upstream close or query acts not at all;
//!   after `Stop` and a poll the reporter's state and the router hold nothing;
//! - every `Listen` (from `poll` only, upstream open, not after `Stop`) is the group MACs of
//!   `reporter().state()`, and after every poll with the upstream open the last one given
//!   since it opened is that;
//! - `next_deadline` is never in the past after a poll, never later than the table's or a
//!   model querier's deadline, and a poll just before it yields no action at all;
//! - every note's `count()` matches its event (Expired -> MembersExpired, the ignore reasons
//!   -> their limits and filters, MembersDropped -> its count, which is the number of
//!   InterfaceGone leaves of that interface and of members it had); a poll expires exactly
//!   the members whose timer is due.
#![no_main]

#[path = "common/router.rs"]
mod router;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use router::{check_fits, macs, whole_record_len, Router, Wire};
use snoopcast::core::family::GroupAddr;
use snoopcast::core::fib::Fib;
use snoopcast::core::filter::{GroupFilter, Ipv4Cidr, Ipv6Cidr, Prefix};
use snoopcast::core::membership::{
    CompatFallback, Event, FilterMode, Heard, IgnoreReason, LeaveReason, Settings,
};
use snoopcast::core::querier::{HeardQuery, Mode, QuerierConfig, RoleChange};
use snoopcast::core::reporter::{ReportOut, ReporterConfig};
use snoopcast::core::snooper::{
    Action, Count, Input as SInput, Note, Snooper, SnooperConfig, REBUILD_MAX_GAP,
};
use snoopcast::core::IfaceId;
use snoopcast::wire::igmp::RecordType;
use snoopcast::wire::{MacAddr, Record};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const IFACES: usize = 3;
const HOSTS: u8 = 3;
const MAX_OPS: usize = 64;

/// What differs between the families in this harness.
trait Fam: Wire {
    /// Two ordinary groups, one SSM, one that `deny` filters, one link-local, one unicast.
    fn group(i: u8) -> Self;
    fn source(i: u8) -> Self;
    fn host_ip(h: u8) -> Self;
    /// The address interface `i` queries from when it has one (IPv4's third: 0.0.0.0).
    fn own(i: usize) -> Self;
    /// Query sources: unspecified, ours on interface 0, between 0 and 1, ours on 1, high.
    fn query_from(i: u8) -> Self;
    fn filter(deny: bool) -> GroupFilter;
    /// The version of the second kind of old report (IGMPv2; MLD has only v1).
    const OLD2: u8;
    /// The upstream querier.
    const UPSTREAM: Self;
    /// The daemon's max_report_len for a 1500-byte MTU.
    const DEFAULT_LEN: usize;
}

impl Fam for Ipv4Addr {
    fn group(i: u8) -> Self {
        [
            Ipv4Addr::new(239, 1, 1, 1),
            Ipv4Addr::new(239, 1, 1, 2),
            Ipv4Addr::new(232, 1, 1, 1),
            Ipv4Addr::new(239, 255, 0, 1),
            Ipv4Addr::new(224, 0, 0, 251),
            Ipv4Addr::new(10, 1, 1, 1),
        ][usize::from(i) % 6]
    }
    fn source(i: u8) -> Self {
        Ipv4Addr::new(192, 0, 2, 1 + i % 4)
    }
    fn host_ip(h: u8) -> Self {
        Ipv4Addr::new(10, 2, 0, 100 + h % HOSTS)
    }
    fn own(i: usize) -> Self {
        [
            Ipv4Addr::new(10, 2, 0, 1),
            Ipv4Addr::new(10, 2, 0, 12),
            Ipv4Addr::UNSPECIFIED,
        ][i]
    }
    fn query_from(i: u8) -> Self {
        [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 2, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            Ipv4Addr::new(10, 2, 0, 12),
            Ipv4Addr::new(10, 2, 0, 200),
        ][usize::from(i) % 5]
    }
    fn filter(deny: bool) -> GroupFilter {
        let deny = if deny {
            vec![Ipv4Cidr::new(Ipv4Addr::new(239, 255, 0, 0), 16)]
        } else {
            vec![]
        };
        GroupFilter::v4(vec![], deny)
    }
    const OLD2: u8 = 2;
    const UPSTREAM: Self = Ipv4Addr::new(10, 9, 0, 1);
    const DEFAULT_LEN: usize = 1500 - 24;
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

impl Fam for Ipv6Addr {
    fn group(i: u8) -> Self {
        v6([
            "ff0e::1",
            "ff0e::2",
            "ff3e::8000:1",
            "ff05::1",
            "ff02::fb",
            "2001:db8::1",
        ][usize::from(i) % 6])
    }
    fn source(i: u8) -> Self {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1 + u16::from(i % 4))
    }
    fn host_ip(h: u8) -> Self {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100 + u16::from(h % HOSTS))
    }
    fn own(i: usize) -> Self {
        v6(["fe80::1", "fe80::12", "fe80::20"][i])
    }
    fn query_from(i: u8) -> Self {
        v6(["::", "fe80::1", "fe80::11", "fe80::12", "fe80::200"][usize::from(i) % 5])
    }
    fn filter(deny: bool) -> GroupFilter {
        let deny = if deny {
            vec![Prefix::V6(Ipv6Cidr::new(v6("ff05::"), 16))]
        } else {
            vec![]
        };
        GroupFilter::new(vec![], deny)
    }
    const OLD2: u8 = 1;
    const UPSTREAM: Self = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x901);
    const DEFAULT_LEN: usize = 1500 - 40 - 8;
}

fn mac(h: u8) -> MacAddr {
    MacAddr(2, 0, 0, 0, 0, 1 + h % HOSTS)
}

#[derive(Arbitrary, Debug)]
struct Cfg {
    robustness: u8,
    qi_100ms: u8,
    qri_tenths: u8,
    lmqi_10ms: u8,
    max_groups_per_host: u8,
    max_members: u8,
    max_sources: u8,
    fallback: Vec<bool>,
    deny: bool,
    /// The reporter: Unsolicited Report Interval, hold-down (odd: on), a small
    /// max_report_len (so reports are packed into several messages) or the default.
    uri_10ms: u8,
    leave_delay_ms: u16,
    small_len: Option<u8>,
    querier_mode: u8,
    querier_new: bool,
    /// What one rebuild costs by the stopwatch, in ms.
    cost_ms: u8,
}

#[derive(Arbitrary, Debug)]
struct Rec {
    kind: u8,
    group: u8,
    sources: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Old1(u8),
    Old2(u8),
    Leave(u8),
    Records(Vec<Rec>),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Ms(u8),
    QuarterQi,
    Qi,
    Lmqi,
    Gmi,
    MaxGap,
    Uri,
    LeaveDelay,
    ToDeadline,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Heard {
        iface: u8,
        host: u8,
        msg: Msg,
    },
    Query {
        iface: u8,
        from: u8,
    },
    Step(Step),
    Poll,
    /// Poll, then poll again just before the deadline it leaves: nothing may happen.
    PollEarly,
    DownOpen {
        iface: u8,
        addr: bool,
    },
    DownAddress(u8),
    DownClose(u8),
    UpOpen,
    UpClose,
    /// A query heard on the upstream.
    UpQuery {
        version: u8,
        /// None: a general query.
        group: Option<u8>,
        /// Sources asked about (newest version only), by bit.
        sources: u8,
        max_resp_100ms: u8,
    },
    Stop,
}

#[derive(Arbitrary, Debug)]
struct FuzzInput {
    cfg: Cfg,
    ops: Vec<Op>,
}

// ----- the stopwatch: each reading moves on by the configured rebuild cost -----

thread_local! {
    static WATCH: Cell<Option<Instant>> = const { Cell::new(None) };
    static COST: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

fn stopwatch() -> Instant {
    let t = WATCH.with(|w| w.get()).unwrap_or_else(Instant::now) + COST.with(Cell::get);
    WATCH.with(|w| w.set(Some(t)));
    t
}

// ----- the model of a querier (RFC 3376 sections 6.6 and 8, RFC 3810 section 7.6) -----

#[derive(Debug, Clone)]
struct MQuerier<A> {
    /// Queries at all: not off, and (MLD) has an address.
    enabled: bool,
    mode: Mode,
    own: A,
    /// The lower querier heard and until when it is taken as present.
    other: Option<(A, Instant)>,
    startup_left: u32,
    next: Instant,
}

impl<A: Fam> MQuerier<A> {
    fn new(c: &QuerierConfig, source: Option<A>, now: Instant) -> Self {
        MQuerier {
            enabled: c.mode != Mode::Off && !(A::QUERIES_NEED_SOURCE && source.is_none()),
            mode: c.mode,
            own: source.unwrap_or(A::MIN),
            other: None,
            startup_left: c.robustness,
            next: now,
        }
    }

    /// A query from `src`: whether we yield to it now.
    fn query(&mut self, c: &QuerierConfig, src: A, now: Instant) -> bool {
        // Lowest address wins; never ourselves nor the unspecified address; without an
        // address any addressed querier wins.
        let beats = src != self.own
            && !src.is_unspecified()
            && (self.own.is_unspecified() || src < self.own);
        if !self.enabled || !beats || self.mode == Mode::On {
            return false;
        }
        let until = now + c.query_interval * c.robustness + c.query_response_interval / 2;
        match self.other {
            Some((o, _)) => {
                self.other = Some((o.min(src), until));
                false
            }
            None => {
                self.other = Some((src, until));
                true
            }
        }
    }

    /// (a general query is due, the other querier's time ran out).
    fn poll(&mut self, c: &QuerierConfig, now: Instant) -> (bool, bool) {
        let mut resumed = false;
        if let Some((_, until)) = self.other {
            if now < until {
                return (false, false);
            }
            self.other = None;
            self.next = now;
            resumed = true;
        }
        if !self.enabled || now < self.next {
            return (false, resumed);
        }
        self.startup_left = self.startup_left.saturating_sub(1);
        self.next = now
            + if self.startup_left > 0 {
                c.query_interval / 4
            } else {
                c.query_interval
            };
        (true, resumed)
    }

    fn deadline(&self) -> Option<Instant> {
        match self.other {
            Some((_, until)) => Some(until),
            None if self.enabled => Some(self.next),
            None => None,
        }
    }
}

// ----- the forwarding snapshot in a comparable form -----

type FibMembers<A> = Vec<(IfaceId, MacAddr, bool, Vec<A>)>;
type Canon<A> = BTreeMap<A, (Vec<IfaceId>, FibMembers<A>)>;

fn canon<A: GroupAddr>(f: &Fib<A>) -> Canon<A> {
    f.groups
        .iter()
        .filter(|(_, fwd)| !fwd.multicast_ifaces.is_empty() || !fwd.members.is_empty())
        .map(|(g, fwd)| {
            let mut mc = fwd.multicast_ifaces.clone();
            mc.sort();
            let mut ms: FibMembers<A> = fwd
                .members
                .iter()
                .map(|m| {
                    (
                        m.iface,
                        m.mac,
                        m.mode == FilterMode::Include,
                        m.sources.to_vec(),
                    )
                })
                .collect();
            ms.sort();
            (*g, (mc, ms))
        })
        .collect()
}

// ----- the run -----

struct Run<A: Fam> {
    s: Snooper<A>,
    cfg: SnooperConfig,
    router: Router<A>,
    /// The last `Listen` since the upstream opened.
    listening: Option<BTreeSet<MacAddr>>,
    open: [bool; IFACES],
    awaiting: [bool; IFACES],
    up_open: bool,
    stopped: bool,
    q: Vec<MQuerier<A>>,
    /// What the runtime forwards with: the last published snapshot.
    published: Canon<A>,
    /// Since when `table().forwarding()` differs from `published`.
    fib_stale_since: Option<Instant>,
    /// Since when the reporter's state differs from the want set plus the held groups.
    wants_stale_since: Option<Instant>,
}

fn notes<A: Clone>(a: &[Action<A>]) -> Vec<Note<A>> {
    a.iter()
        .filter_map(|a| match a {
            Action::Log(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// The counter a note must bump, written from the event.
fn expected_count<A>(n: &Note<A>) -> Option<(Count, u64)> {
    match n {
        Note::Membership(Event::Left {
            reason: LeaveReason::Expired,
            ..
        }) => Some((Count::MembersExpired, 1)),
        Note::Membership(Event::Ignored { reason, .. }) => match reason {
            IgnoreReason::GroupsPerHostLimit => Some((Count::LimitGroupsPerHost, 1)),
            IgnoreReason::MembersLimit => Some((Count::LimitMembers, 1)),
            IgnoreReason::AddressesLimit => Some((Count::LimitAddressesPerMac, 1)),
            IgnoreReason::GroupFiltered => Some((Count::IgnoredFiltered, 1)),
            IgnoreReason::SsmExclude => Some((Count::IgnoredSsm, 1)),
            IgnoreReason::UnknownRecord | IgnoreReason::SourcesLimit => None,
        },
        Note::MembersDropped { count, .. } => Some((Count::MembersDroppedIface, *count as u64)),
        _ => None,
    }
}

impl<A: Fam> Run<A> {
    fn qc(&self) -> &QuerierConfig {
        &self.cfg.querier
    }

    /// Carry out and check one list of actions (from `poll` when `in_poll`).
    fn execute(&mut self, acts: &[Action<A>], in_poll: bool) {
        let mut reports: Vec<ReportOut<A>> = Vec::new();
        for a in acts {
            match a {
                Action::SendQuery(q) => {
                    assert!(
                        q.iface < IFACES && self.open[q.iface],
                        "query on closed: {q:?}"
                    );
                    assert!(!self.stopped, "query after Stop: {q:?}");
                    assert!(
                        !(A::QUERIES_NEED_SOURCE && q.source.is_unspecified()),
                        "MLD query from :: {q:?}"
                    );
                    assert_eq!(q.source, self.q[q.iface].own, "query source");
                    assert_eq!(&q.querier, self.qc(), "query settings");
                    if q.is_general() {
                        assert!(in_poll, "general query outside poll");
                        assert_eq!(q.max_resp, self.qc().query_response_interval);
                    } else {
                        assert_eq!(q.max_resp, self.cfg.settings.last_member_query_interval);
                    }
                }
                Action::Report(r) => {
                    assert!(self.up_open, "{r:?} while the upstream is closed");
                    if self.stopped {
                        let leaving = match r {
                            ReportOut::Records(recs) => recs.iter().all(|x| {
                                matches!(
                                    x.record_type,
                                    RecordType::ChangeToInclude | RecordType::BlockOld
                                ) && (x.record_type == RecordType::BlockOld || x.sources.is_empty())
                            }),
                            ReportOut::Leave { .. } => true,
                            ReportOut::Join { .. } => false,
                        };
                        assert!(leaving, "{r:?} after Stop");
                    }
                    reports.push(r.clone());
                }
                Action::Listen(m) => {
                    assert!(in_poll, "Listen outside poll");
                    assert!(
                        self.up_open && !self.stopped,
                        "Listen upstream closed or stopped"
                    );
                    assert_eq!(
                        *m,
                        macs(self.s.reporter().state()),
                        "Listen is not the reported groups"
                    );
                    self.listening = Some(m.clone());
                }
                Action::Publish(fib) => {
                    assert!(in_poll, "publish outside poll");
                    let got = canon(fib);
                    assert_eq!(
                        got,
                        canon(&self.s.table().forwarding()),
                        "published snapshot is not the table's"
                    );
                    self.published = got;
                }
                Action::Log(n) => {
                    assert_eq!(n.count(), expected_count(n), "count of {n:?}");
                    if let Note::Membership(e) = n {
                        match e {
                            Event::Ignored {
                                group,
                                reason: IgnoreReason::GroupFiltered,
                                ..
                            } => assert!(!self.cfg.filter.admits(*group), "{e:?}"),
                            Event::Ignored {
                                group,
                                reason: IgnoreReason::SsmExclude,
                                ..
                            } => assert!(group.is_ssm(), "{e:?}"),
                            Event::Joined { group, .. } | Event::Changed { group, .. } => {
                                assert!(self.cfg.filter.admits(*group), "{e:?}")
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // The router hears the reports and agrees with what the reporter says it reported.
        check_fits(&reports, self.cfg.reporter.max_report_len);
        if self.up_open {
            self.router.hear(&reports);
            let rep = self.s.reporter();
            self.router.check(rep.state(), rep.version(), false);
        }
        // Group-specific queries: exactly one for each SendGroupQuery that may go out.
        let mut asked: Vec<(IfaceId, A)> = notes(acts)
            .into_iter()
            .filter_map(|n| match n {
                Note::Membership(Event::SendGroupQuery { iface, group }) => Some((iface, group)),
                _ => None,
            })
            .filter(|&(i, _)| {
                // Only the querier sends them (RFC 3376 section 6.6.3.1): not with
                // `--querier off`, not while a lower querier is present.
                self.open[i]
                    && !self.stopped
                    && !(A::QUERIES_NEED_SOURCE && self.q[i].own.is_unspecified())
                    && self.q[i].mode != Mode::Off
                    && self.q[i].other.is_none()
            })
            .collect();
        let mut sent: Vec<(IfaceId, A)> = acts
            .iter()
            .filter_map(|a| match a {
                Action::SendQuery(q) if !q.is_general() => Some((q.iface, q.group)),
                _ => None,
            })
            .collect();
        asked.sort();
        sent.sort();
        assert_eq!(sent, asked, "group-specific queries");
    }

    fn handle(&mut self, input: SInput<A>, now: Instant) -> Vec<Action<A>> {
        let a = self.s.handle(input, now);
        self.execute(&a, false);
        a
    }

    fn poll(&mut self, now: Instant) {
        let expiring: usize = self
            .s
            .table()
            .members()
            .filter(|(_, _, m)| m.expires <= now)
            .count();
        let a = self.s.poll(now);
        self.execute(&a, true);
        // General queries and role changes: the model's.
        let mut want_q = Vec::new();
        let mut want_resumed = Vec::new();
        let qc = self.cfg.querier.clone();
        for i in 0..IFACES {
            let (due, resumed) = self.q[i].poll(&qc, now);
            let may = self.open[i]
                && !self.stopped
                && !(A::QUERIES_NEED_SOURCE && self.q[i].own.is_unspecified());
            if due && may {
                want_q.push(i);
            }
            if resumed {
                want_resumed.push(i);
            }
        }
        let got_q: Vec<IfaceId> = a
            .iter()
            .filter_map(|a| match a {
                Action::SendQuery(q) if q.is_general() => Some(q.iface),
                _ => None,
            })
            .collect();
        assert_eq!(got_q, want_q, "general queries at {now:?}");
        let n = notes(&a);
        let got_resumed: Vec<IfaceId> = n
            .iter()
            .filter_map(|n| match n {
                Note::Role {
                    iface,
                    change: RoleChange::Resumed,
                } => Some(*iface),
                Note::Role { change, .. } => panic!("{change:?} in poll"),
                _ => None,
            })
            .collect();
        assert_eq!(got_resumed, want_resumed, "Resumed notes");
        let expired = n
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    Note::Membership(Event::Left {
                        reason: LeaveReason::Expired,
                        ..
                    })
                )
            })
            .count();
        assert_eq!(expired, expiring, "members expired in the poll");
        if self.stopped {
            assert!(
                self.s.reporter().state().is_empty() && self.router.groups.is_empty(),
                "groups left after Stop and a poll: reporter {:?}, router {:?}",
                self.s.reporter().state(),
                self.router.groups
            );
        } else if self.up_open {
            assert_eq!(
                self.listening,
                Some(macs(self.s.reporter().state())),
                "the upstream filter is not the reported groups after a poll"
            );
        }
        // The deadline.
        let d = self.s.next_deadline(now);
        // After Stop the snooper no longer polls its reporter, so a compat timer that ran
        // out stays in the past (harmless: the runtime exits after that poll).
        let stale_reporter =
            self.stopped && self.s.reporter().next_deadline().is_some_and(|r| r <= now);
        assert!(
            d.is_none_or(|d| d > now) || stale_reporter,
            "next_deadline due after a poll"
        );
        let mut lower = self.s.table().next_deadline();
        if let Some(r) = self.s.reporter().next_deadline() {
            lower = Some(lower.map_or(r, |l| l.min(r)));
        }
        for q in &self.q {
            lower = match (lower, q.deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(l) = lower {
            assert!(d.is_some_and(|d| d <= l), "next_deadline {d:?} after {l:?}");
        }
    }

    /// After every operation: the publications and the reporter's state keep up with the
    /// table.
    fn after(&mut self, now: Instant, polled: bool) {
        let fib = canon(&self.s.table().forwarding());
        if fib == self.published {
            self.fib_stale_since = None;
        } else if self.fib_stale_since.is_none() {
            self.fib_stale_since = Some(now);
        }
        // The reporter's state is the want set plus the groups held down.
        let rep = self.s.reporter();
        let mut want = self.s.table().upstream_wants();
        for g in rep.held().keys() {
            if !want.contains_key(g) {
                if let Some(w) = rep.state().get(g) {
                    want.insert(*g, w.clone());
                }
            }
        }
        if self.cfg.reporter.leave_delay.is_zero() {
            assert!(rep.held().is_empty(), "held with no hold-down");
        }
        let stale = !self.stopped && *rep.state() != want;
        if !stale {
            self.wants_stale_since = None;
        } else if self.wants_stale_since.is_none() {
            self.wants_stale_since = Some(now);
        }
        if polled {
            if let Some(p) = self.fib_stale_since {
                assert!(
                    now < p + REBUILD_MAX_GAP,
                    "a change at {p:?} unpublished at {now:?}"
                );
            }
            if let Some(p) = self.wants_stale_since {
                assert!(
                    now < p + REBUILD_MAX_GAP,
                    "wants {:?} (with the held groups) differ from the reporter's state {:?} since \
                     {p:?}, at {now:?}",
                    want,
                    self.s.reporter().state()
                );
            }
        }
    }
}

fn run<A: Fam>(input: &FuzzInput) {
    let c = &input.cfg;
    let qi = Duration::from_millis(100) * (1 + u32::from(c.qi_100ms % 20));
    let robustness = 1 + u32::from(c.robustness % 4);
    let settings = Settings {
        robustness,
        query_interval: qi,
        query_response_interval: qi * u32::from(c.qri_tenths % 10) / 10,
        last_member_query_interval: Duration::from_millis(10) * (1 + u32::from(c.lmqi_10ms % 30)),
        max_groups_per_host: usize::from(c.max_groups_per_host % 5),
        max_members: usize::from(c.max_members % 8),
        max_sources_per_member: usize::from(c.max_sources % 4),
    };
    let mut fallback: Vec<CompatFallback> = c
        .fallback
        .iter()
        .take(IFACES)
        .map(|&m| {
            if m {
                CompatFallback::Multicast
            } else {
                CompatFallback::Unicast
            }
        })
        .collect();
    fallback.resize(IFACES, CompatFallback::default());
    let mode = match c.querier_mode % 3 {
        0 => Mode::Auto,
        1 => Mode::On,
        _ => Mode::Off,
    };
    let querier = QuerierConfig {
        mode,
        version: if c.querier_new {
            A::FILTER_VERSION
        } else {
            A::FILTER_VERSION - 1
        },
        query_interval: qi,
        query_response_interval: settings.query_response_interval,
        robustness,
    };
    let cfg = SnooperConfig {
        settings: settings.clone(),
        filter: A::filter(c.deny),
        fallback,
        querier: querier.clone(),
        reporter: ReporterConfig {
            robustness: robustness as u8,
            unsolicited_report_interval: Duration::from_millis(
                1 + 10 * u64::from(c.uri_10ms % 100),
            ),
            query_interval: qi,
            leave_delay: if c.leave_delay_ms.is_multiple_of(2) {
                Duration::ZERO
            } else {
                Duration::from_millis(u64::from(c.leave_delay_ms % 3000))
            },
            // Up to four sources per record: a small length packs several messages, never
            // cuts a record.
            max_report_len: match c.small_len {
                Some(n) => whole_record_len::<A>(4) + usize::from(n % 64),
                None => A::DEFAULT_LEN,
            },
        },
    };
    COST.with(|k| k.set(Duration::from_millis(u64::from(c.cost_ms % 16))));
    let mut now = Instant::now();
    let sources: Vec<Option<A>> = (0..IFACES).map(|i| Some(A::own(i))).collect();
    let mut r = Run {
        s: Snooper::new(cfg.clone(), &sources, now).with_stopwatch(stopwatch),
        q: sources
            .iter()
            .map(|&s| MQuerier::new(&querier, s, now))
            .collect(),
        cfg,
        router: Router::default(),
        listening: None,
        open: [false; IFACES],
        awaiting: [false; IFACES],
        up_open: false,
        stopped: false,
        published: Canon::new(),
        fib_stale_since: None,
        wants_stale_since: None,
    };
    let gmi = settings.group_membership_interval();

    for op in input.ops.iter().take(MAX_OPS) {
        let mut polled = false;
        match op {
            Op::Heard { iface, host, msg } => {
                let i = usize::from(*iface) % IFACES;
                let heard = match msg {
                    Msg::Old1(g) => Heard::OldReport {
                        version: 1,
                        group: A::group(*g),
                    },
                    Msg::Old2(g) => Heard::OldReport {
                        version: A::OLD2,
                        group: A::group(*g),
                    },
                    Msg::Leave(g) => Heard::Leave {
                        group: A::group(*g),
                    },
                    Msg::Records(rs) => Heard::Records(
                        rs.iter()
                            .take(4)
                            .map(|x| Record {
                                record_type: RecordType::from(x.kind % 8),
                                group: A::group(x.group),
                                sources: x.sources.iter().take(6).map(|&s| A::source(s)).collect(),
                            })
                            .collect(),
                    ),
                };
                let before: usize = r.s.table().member_count();
                let a = r.handle(
                    SInput::Heard {
                        iface: i,
                        mac: mac(*host),
                        src: A::host_ip(*host),
                        msg: heard,
                    },
                    now,
                );
                if !r.open[i] || r.stopped {
                    assert!(a.is_empty(), "heard on a closed link or after Stop: {a:?}");
                    assert_eq!(r.s.table().member_count(), before);
                }
                assert!(notes(&a).iter().all(|n| matches!(n, Note::Membership(_))));
            }
            Op::Query { iface, from } => {
                let i = usize::from(*iface) % IFACES;
                let src = A::query_from(*from);
                // A query carrying our own timers: the adopted ones equal the configured.
                let qc = r.cfg.querier.clone();
                let heard = HeardQuery {
                    max_resp: qc.query_response_interval,
                    qrv: qc.robustness as u8,
                    qqi: qc.query_interval,
                    ..HeardQuery::general(qc.version)
                };
                let a = r.handle(
                    SInput::Heard {
                        iface: i,
                        mac: mac(0),
                        src,
                        msg: Heard::Query(heard),
                    },
                    now,
                );
                let qc = r.cfg.querier.clone();
                let yielded = r.open[i] && !r.stopped && r.q[i].query(&qc, src, now);
                let want: Vec<Action<A>> = if yielded {
                    vec![Action::Log(Note::Role {
                        iface: i,
                        change: RoleChange::Yielded { other: src },
                    })]
                } else {
                    vec![]
                };
                assert_eq!(format!("{a:?}"), format!("{want:?}"), "query from {src}");
            }
            Op::Step(s) => {
                now += match s {
                    Step::Ms(n) => Duration::from_millis(u64::from(*n)),
                    Step::QuarterQi => qi / 4,
                    Step::Qi => qi,
                    Step::Lmqi => settings.last_member_query_interval,
                    Step::Gmi => gmi,
                    Step::MaxGap => REBUILD_MAX_GAP,
                    Step::Uri => r.cfg.reporter.unsolicited_report_interval,
                    Step::LeaveDelay => r.cfg.reporter.leave_delay,
                    Step::ToDeadline => {
                        r.s.next_deadline(now)
                            .map_or(Duration::ZERO, |d| d.saturating_duration_since(now))
                    }
                };
            }
            Op::Poll => {
                r.poll(now);
                polled = true;
            }
            Op::PollEarly => {
                r.poll(now);
                r.after(now, true);
                let t = match r.s.next_deadline(now) {
                    Some(d) => d - Duration::from_nanos(1),
                    None => now + Duration::from_secs(3600),
                };
                if t > now {
                    now = t;
                    let a = r.s.poll(now);
                    assert!(a.is_empty(), "a poll before next_deadline acted: {a:?}");
                    let qc = r.cfg.querier.clone();
                    for q in &mut r.q {
                        assert_eq!(q.poll(&qc, now), (false, false), "model querier due early");
                    }
                }
                polled = true;
            }
            Op::DownOpen { iface, addr } => {
                let i = usize::from(*iface) % IFACES;
                let source = addr.then(|| A::own(i));
                let a = r.handle(SInput::DownOpened { iface: i, source }, now);
                r.open[i] = true;
                r.q[i] = MQuerier::new(&querier, source, now);
                r.awaiting[i] = A::QUERIES_NEED_SOURCE && source.is_none() && mode != Mode::Off;
                let want: Vec<Action<A>> = if r.awaiting[i] {
                    vec![Action::Log(Note::NoQuerySource { iface: i })]
                } else {
                    vec![]
                };
                assert_eq!(format!("{a:?}"), format!("{want:?}"), "DownOpened");
            }
            Op::DownAddress(iface) => {
                let i = usize::from(*iface) % IFACES;
                let source = A::own(i);
                let a = r.handle(SInput::DownAddress { iface: i, source }, now);
                let want: Vec<Action<A>> = if r.awaiting[i] && r.open[i] {
                    r.awaiting[i] = false;
                    r.q[i] = MQuerier::new(&querier, Some(source), now);
                    vec![Action::Log(Note::QuerySourceFound { iface: i, source })]
                } else {
                    vec![]
                };
                assert_eq!(format!("{a:?}"), format!("{want:?}"), "DownAddress");
            }
            Op::DownClose(iface) => {
                let i = usize::from(*iface) % IFACES;
                let had =
                    r.s.table()
                        .members()
                        .filter(|(_, h, _)| h.iface == i)
                        .count();
                let a = r.handle(SInput::DownClosed { iface: i }, now);
                r.open[i] = false;
                r.awaiting[i] = false;
                let n = notes(&a);
                assert!(
                    matches!(n.first(), Some(Note::MembersDropped { iface, count }) if *iface == i && *count == had),
                    "DownClosed with {had} members: {n:?}"
                );
                let gone = n
                    .iter()
                    .filter(|n| matches!(n, Note::Membership(Event::Left { host, reason: LeaveReason::InterfaceGone, .. }) if host.iface == i))
                    .count();
                let left = n
                    .iter()
                    .filter(|n| matches!(n, Note::Membership(Event::Left { .. })))
                    .count();
                assert_eq!((gone, left), (had, had), "InterfaceGone leaves");
                assert_eq!(a.len(), n.len(), "DownClosed acts: {a:?}");
            }
            Op::UpOpen => {
                // The runtime opens only a closed upstream: one found re-created is closed
                // first, in the same batch.
                if r.up_open {
                    r.up_open = false;
                    r.listening = None;
                    r.router.reset();
                    let a = r.handle(SInput::UpstreamClosed, now);
                    assert!(a.is_empty(), "UpstreamClosed: {a:?}");
                }
                // Stopping, the snooper no longer opens the upstream.
                if !r.stopped {
                    r.up_open = true;
                    r.listening = None;
                }
                let a = r.handle(SInput::UpstreamOpened, now);
                assert!(
                    a.iter().all(|a| matches!(a, Action::Report(_))),
                    "UpstreamOpened: {a:?}"
                );
                if r.stopped {
                    assert!(a.is_empty(), "UpstreamOpened after Stop: {a:?}");
                }
            }
            Op::UpClose => {
                r.up_open = false;
                r.listening = None;
                // The link is new to the router when it comes back.
                r.router.reset();
                let a = r.handle(SInput::UpstreamClosed, now);
                assert!(a.is_empty(), "UpstreamClosed: {a:?}");
            }
            Op::UpQuery {
                version,
                group,
                sources,
                max_resp_100ms,
            } => {
                let version = 1 + version % A::FILTER_VERSION;
                let query = HeardQuery {
                    version,
                    max_resp: Duration::from_millis(100 * u64::from(max_resp_100ms % 101)),
                    group: group.map_or(A::MIN, A::group),
                    s_flag: false,
                    qrv: 2,
                    qqi: Duration::from_secs(125),
                    sources: if version == A::FILTER_VERSION && group.is_some() {
                        (0..4)
                            .filter(|i| sources & (1 << i) != 0)
                            .map(A::source)
                            .collect()
                    } else {
                        Vec::new()
                    },
                };
                let a = r.handle(
                    SInput::UpstreamQuery {
                        src: A::UPSTREAM,
                        query,
                    },
                    now,
                );
                assert!(a.is_empty(), "UpstreamQuery acts: {a:?}");
            }
            Op::Stop => {
                r.stopped = true;
                let a = r.handle(SInput::Stop, now);
                assert!(a.is_empty(), "Stop: {a:?}");
            }
        }
        r.after(now, polled);
    }
    // Shutdown: Stop and a poll leave nothing reported (the check is in `poll`).
    r.stopped = true;
    r.handle(SInput::Stop, now);
    r.poll(now);
    assert!(r.router.groups.is_empty() && r.s.reporter().state().is_empty());
}

fuzz_target!(|input: FuzzInput| {
    WATCH.with(|w| w.set(None));
    run::<Ipv4Addr>(&input);
    run::<Ipv6Addr>(&input);
});
