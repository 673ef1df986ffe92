//! Structured fuzzing of the control plane of IPv4 (`core::snooper::Snooper<Ipv4Addr>`) and,
//! through it, of the membership table, the upstream reporter and the querier.
//!
//! The input (derived with `arbitrary`) is a small configuration and a sequence of operations,
//! each fed to the snooper as an `Input` (then `poll` where the operation says so):
//! IGMPv1/v2 reports, v2 leaves and v3 reports with records of every type (and unknown ones)
//! from a few hosts on a few interfaces, about a few groups (one SSM, one link-local, one that
//! may be denied, one not even multicast) and sources, so that collisions happen, all as
//! `Input::Heard`; queries (`Heard::Query`); clock steps of every size; polls; interfaces
//! going away (`DownClosed` then `DownOpened`) or staying closed for a while; the upstream
//! closing and opening; queries heard on the upstream (`Input::UpstreamQuery`, every
//! version, so the reporter's compatibility mode changes); settling (the clock moves past
//! `REBUILD_MAX_GAP`, then a poll). Limits are drawn small so they bite. The snooper's
//! `Action::Report`s are heard by the router model of common/router.rs.
//!
//! Next to the snooper runs a naive model of the table written from the rules (RFC 3376
//! sections 3.2, 6.4, 7.3.2 and 8, RFC 2236 section 3, RFC 4604 section 2.2, per host as
//! membership.rs documents). After every step, reading `snooper.table()`, `.reporter()` and
//! `.queriers()`:
//! - no panic; member_count is the number of members and never above max_members; no host
//!   has more than max_groups_per_host groups, no member more than max_sources_per_member
//!   sources; no INCLUDE{} member, no EXCLUDE member of an SSM group, no filtered group;
//! - a host is a member of a group only if it sent a report naming that group on that
//!   interface while it was open and has not been removed with the interface since; a
//!   message heard on a closed interface yields no action at all;
//! - every member (mode, sources, IP, version, expiry) and every compatibility timer is the
//!   model's; the table's `next_deadline` is the model's earliest timer, and after a poll it
//!   and the snooper's `next_deadline` are in the future;
//! - `upstream_wants()` is computed again from `members()` and the compatibility state: any
//!   source where an older host is present; with an EXCLUDE member, any source but those
//!   every EXCLUDE member excludes and no INCLUDE member wants (RFC 4605 4.1); else the
//!   union of the INCLUDE sources;
//! - `forwarding()` sends (source, group) to exactly the members admitting the source, except
//!   on interfaces in multicast fallback, which get one group-MAC copy;
//! - the snooper's reports go out only while the upstream is open and each `emit`s to at
//!   most `max_report_len` bytes (here also small ones, so reports are packed into several
//!   messages); the router model that hears them agrees with `reporter().state()` after
//!   every step while the upstream is open (whole filters in the source-filtering version,
//!   joined-or-not under an older upstream querier); after settling the reporter's state is
//!   exactly the want set (also while the upstream is closed: it is kept for the next open);
//! - after the clock moves a Group Membership Interval past the last input, a poll leaves
//!   the table empty, with no timer and nothing wanted upstream;
//! - the querier never yields to itself or to 0.0.0.0, never leaves `Off`, and after a poll
//!   its next deadline is in the future;
//! - at the end, `Stop` and a poll leave the reporter's state and the router empty.
#![no_main]

#[path = "common/router.rs"]
mod router;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use router::{check_fits, whole_record_len, Router};
use snoopcast::core::filter::{GroupFilter, Ipv4Cidr, ALL_MULTICAST};
use snoopcast::core::membership::{
    CompatFallback, FilterMode, Heard, HostKey, Settings, Table, UpstreamWant,
};
use snoopcast::core::querier::{HeardQuery, Mode, Querier, QuerierConfig, Role};
use snoopcast::core::reporter::{ReportOut, ReporterConfig};
use snoopcast::core::snooper::{
    Action, Input as SInput, Note, Snooper, SnooperConfig, REBUILD_MAX_GAP,
};
use snoopcast::core::IfaceId;
use snoopcast::wire::igmp::{GroupRecord, Message, Query, QueryVersion, RecordType};
use snoopcast::wire::MacAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IFACES: usize = 3;
const HOSTS: u8 = 4;
const GROUPS: [Ipv4Addr; 8] = [
    Ipv4Addr::new(239, 1, 1, 1),
    Ipv4Addr::new(239, 1, 1, 2),
    Ipv4Addr::new(239, 1, 1, 3),
    Ipv4Addr::new(224, 0, 1, 1),
    Ipv4Addr::new(232, 1, 1, 1),   // SSM: INCLUDE only (RFC 4604)
    Ipv4Addr::new(239, 255, 0, 1), // denied when `deny` is set
    Ipv4Addr::new(224, 0, 0, 251), // link-local: never handled (RFC 4541 2.1.2)
    Ipv4Addr::new(10, 1, 1, 1),    // not multicast
];
const SOURCES: u8 = 6;
/// A source no member ever names, for the forwarding check.
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn group(i: u8) -> Ipv4Addr {
    GROUPS[usize::from(i) % GROUPS.len()]
}
fn source(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + i % SOURCES)
}
fn host(iface: u8, h: u8) -> HostKey {
    HostKey {
        iface: usize::from(iface) % IFACES,
        mac: MacAddr(2, 0, 0, 0, 0, 1 + h % HOSTS),
    }
}
fn host_ip(h: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 2, 0, 10 + h % HOSTS)
}
fn is_ssm(g: Ipv4Addr) -> bool {
    g.octets()[0] == 232
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
    /// Fallback of each interface (true: multicast); a short list leaves the default.
    fallback: Vec<bool>,
    deny: bool,
    /// Robustness of the reporter, and Some(n): a max_report_len n bytes over one record
    /// of six sources (several messages, no record cut); None: the default.
    report_robustness: u8,
    small_len: Option<u8>,
    querier_mode: u8,
    querier_v3: bool,
}

#[derive(Arbitrary, Debug)]
struct Rec {
    kind: u8,
    group: u8,
    sources: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Ms(u8),
    Lmqi,
    HalfQi,
    Qi,
    GmiMinus1Ms,
    Gmi,
    Hours(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    V1 {
        iface: u8,
        host: u8,
        group: u8,
    },
    V2 {
        iface: u8,
        host: u8,
        group: u8,
    },
    Leave {
        iface: u8,
        host: u8,
        group: u8,
    },
    V3 {
        iface: u8,
        host: u8,
        records: Vec<Rec>,
    },
    Query {
        iface: u8,
        from: u8,
        group: u8,
    },
    Step(Step),
    Poll,
    /// The interface goes away and comes back (`DownClosed`, `DownOpened`).
    RemoveIface(u8),
    /// The interface goes away and stays closed (messages on it are dropped).
    CloseIface(u8),
    /// The interface opens (again).
    OpenIface(u8),
    UpstreamClose,
    UpstreamOpen,
    /// A query heard on the upstream (versions 1-3; a group of ours or general).
    UpstreamQuery {
        version: u8,
        group: u8,
        max_resp_100ms: u8,
    },
    /// The clock moves a Group Membership Interval on with no input: everything must go.
    Silence,
    /// The clock moves past REBUILD_MAX_GAP, then a poll: the snooper has told the reporter
    /// the want set.
    Settle,
}

#[derive(Arbitrary, Debug)]
struct FuzzInput {
    cfg: Cfg,
    ops: Vec<Op>,
}

// ----- the model of the table -----

#[derive(Debug, Clone, PartialEq, Eq)]
struct MMember {
    mode: FilterMode,
    sources: BTreeSet<Ipv4Addr>,
    ip: Ipv4Addr,
    version: u8,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct MCompat {
    until: Instant,
    v1_until: Option<Instant>,
    /// Last-member queries: (queries sent, next step).
    lmq: Option<(u32, Instant)>,
}

struct Model {
    s: Settings,
    deny: bool,
    fallback: Vec<CompatFallback>,
    members: BTreeMap<(Ipv4Addr, HostKey), MMember>,
    compat: BTreeMap<(IfaceId, Ipv4Addr), MCompat>,
    /// (host, group) pairs the host named in some report since its interface last went.
    named: BTreeSet<(HostKey, Ipv4Addr)>,
}

#[derive(PartialEq)]
enum Applied {
    Member,
    Other,
}

impl Model {
    /// Group Membership Interval, RFC 9776 8.4: RV x QI + 2 x QRI.
    fn gmi(&self) -> Duration {
        self.s.query_interval * self.s.robustness + self.s.query_response_interval * 2
    }
    /// Older Host Present Interval, RFC 3376 8.13: RV x QI + QRI.
    fn ohpi(&self) -> Duration {
        self.s.query_interval * self.s.robustness + self.s.query_response_interval
    }
    /// --allow 224.0.0.0/4, --deny 239.255.0.0/16 if `deny`; never 224.0.0.0/24.
    fn admits(&self, g: Ipv4Addr) -> bool {
        let o = g.octets();
        (224..=239).contains(&o[0])
            && !(o[0] == 224 && o[1] == 0 && o[2] == 0)
            && !(self.deny && o[0] == 239 && o[1] == 255)
    }
    fn multicast_fallback(&self, iface: IfaceId) -> bool {
        self.fallback.get(iface).copied().unwrap_or_default() == CompatFallback::Multicast
    }

    #[allow(clippy::too_many_arguments)]
    fn set_filter(
        &mut self,
        h: HostKey,
        ip: Ipv4Addr,
        g: Ipv4Addr,
        version: u8,
        mode: FilterMode,
        sources: BTreeSet<Ipv4Addr>,
        now: Instant,
    ) -> Applied {
        // Over the cap: the sources already listed in this mode first, then new ones, each
        // lowest first.
        let old: BTreeSet<Ipv4Addr> = match self.members.get(&(g, h)) {
            Some(m) if m.mode == mode => m.sources.clone(),
            _ => BTreeSet::new(),
        };
        let (mut order, fresh): (Vec<Ipv4Addr>, Vec<Ipv4Addr>) =
            sources.iter().partition(|s| old.contains(s));
        order.extend(fresh);
        let sources: BTreeSet<Ipv4Addr> = order
            .into_iter()
            .take(self.s.max_sources_per_member)
            .collect();
        if mode == FilterMode::Include && sources.is_empty() {
            self.members.remove(&(g, h));
            return Applied::Other;
        }
        let expires = now + self.gmi();
        if let Some(m) = self.members.get_mut(&(g, h)) {
            *m = MMember {
                mode,
                sources,
                ip,
                version,
                expires,
            };
        } else {
            let of_host = self.members.keys().filter(|(_, k)| *k == h).count();
            if of_host >= self.s.max_groups_per_host || self.members.len() >= self.s.max_members {
                return Applied::Other;
            }
            self.members.insert(
                (g, h),
                MMember {
                    mode,
                    sources,
                    ip,
                    version,
                    expires,
                },
            );
        }
        // Any report of a member answers the last-member queries.
        if let Some(c) = self.compat.get_mut(&(h.iface, g)) {
            c.lmq = None;
        }
        Applied::Member
    }

    fn old_report(&mut self, h: HostKey, ip: Ipv4Addr, g: Ipv4Addr, version: u8, now: Instant) {
        self.named.insert((h, g));
        if !self.admits(g) || is_ssm(g) {
            return;
        }
        let applied = self.set_filter(h, ip, g, version, FilterMode::Exclude, BTreeSet::new(), now);
        if applied == Applied::Member {
            let until = now + self.ohpi();
            let c = self.compat.entry((h.iface, g)).or_insert(MCompat {
                until,
                v1_until: None,
                lmq: None,
            });
            c.until = until;
            if version == 1 {
                c.v1_until = Some(until);
            }
        }
    }

    fn leave(&mut self, h: HostKey, g: Ipv4Addr, now: Instant) {
        self.named.insert((h, g));
        if !self.admits(g) || is_ssm(g) {
            return;
        }
        self.members.remove(&(g, h));
        let iface = h.iface;
        let others = self
            .members
            .keys()
            .any(|(mg, mh)| *mg == g && mh.iface == iface);
        if !self.multicast_fallback(iface) || others {
            return;
        }
        let lmqi = self.s.last_member_query_interval;
        if let Some(c) = self.compat.get_mut(&(iface, g)) {
            let v1 = c.v1_until.is_some_and(|t| t > now);
            if c.until > now && !v1 && c.lmq.is_none() {
                // The first query goes out at once.
                c.lmq = Some((1, now + lmqi));
            }
        }
    }

    fn record(&mut self, h: HostKey, ip: Ipv4Addr, r: &GroupRecord, now: Instant) {
        use FilterMode::{Exclude, Include};
        let g = r.group;
        self.named.insert((h, g));
        if matches!(r.record_type, RecordType::Unknown(_)) || !self.admits(g) {
            return;
        }
        let b: BTreeSet<Ipv4Addr> = r.sources.iter().copied().collect();
        let cur = self
            .members
            .get(&(g, h))
            .map(|m| (m.mode, m.sources.clone()));
        let (mode, set) = match r.record_type {
            RecordType::ModeIsInclude | RecordType::ChangeToInclude => (Include, b),
            RecordType::ModeIsExclude | RecordType::ChangeToExclude => {
                if is_ssm(g) {
                    return;
                }
                (Exclude, b)
            }
            RecordType::AllowNew => match cur {
                None => (Include, b),
                Some((Include, a)) => (Include, a.union(&b).copied().collect()),
                Some((Exclude, x)) => (Exclude, x.difference(&b).copied().collect()),
            },
            RecordType::BlockOld => match cur {
                None => return,
                Some((Include, a)) => (Include, a.difference(&b).copied().collect()),
                Some((Exclude, x)) => (Exclude, x.union(&b).copied().collect()),
            },
            RecordType::Unknown(_) => return,
        };
        self.set_filter(h, ip, g, 3, mode, set, now);
    }

    fn poll(&mut self, now: Instant) {
        self.members.retain(|_, m| m.expires > now);
        let lmqi = self.s.last_member_query_interval;
        let robustness = self.s.robustness;
        self.compat.retain(|_, c| loop {
            // At the same instant the end of the Older Host Present timer comes first.
            match c.lmq {
                Some((sent, next)) if next <= now && next < c.until => {
                    if sent < robustness {
                        c.lmq = Some((sent + 1, next + lmqi));
                    } else {
                        break false;
                    }
                }
                _ => break c.until > now,
            }
        });
    }

    fn remove_iface(&mut self, iface: IfaceId) {
        self.members.retain(|(_, h), _| h.iface != iface);
        self.compat.retain(|(i, _), _| *i != iface);
        self.named.retain(|(h, _)| h.iface != iface);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let m = self.members.values().map(|m| m.expires);
        let c = self
            .compat
            .values()
            .flat_map(|c| std::iter::once(c.until).chain(c.lmq.map(|(_, t)| t)));
        m.chain(c).min()
    }
}

// ----- checks -----

fn check_table(t: &Table, m: &Model, now: Instant, polled: bool) {
    let s = &m.s;
    // Counts and limits.
    let members: Vec<_> = t.members().collect();
    assert_eq!(t.member_count(), members.len(), "member_count");
    assert!(t.member_count() <= s.max_members, "over max_members");
    let mut per_host: BTreeMap<HostKey, usize> = BTreeMap::new();
    for &(g, h, mem) in &members {
        *per_host.entry(h).or_default() += 1;
        assert!(
            mem.sources.len() <= s.max_sources_per_member,
            "{h:?} {g}: {} sources",
            mem.sources.len()
        );
        assert!(
            mem.mode == FilterMode::Exclude || !mem.sources.is_empty(),
            "{h:?} {g}: INCLUDE{{}}"
        );
        assert!(
            !(is_ssm(g) && mem.mode == FilterMode::Exclude),
            "{h:?}: EXCLUDE in SSM {g}"
        );
        assert!(m.admits(g), "filtered group {g} has a member");
        assert!(
            m.named.contains(&(h, g)),
            "{h:?} is a member of {g} without having named it"
        );
        assert_eq!(t.member(h, g).map(|x| x.expires), Some(mem.expires));
    }
    for (h, n) in per_host {
        assert!(n <= s.max_groups_per_host, "{h:?} has {n} groups");
    }
    // The same members as the model, field by field.
    let got: BTreeMap<(Ipv4Addr, HostKey), MMember> = members
        .iter()
        .map(|&(g, h, x)| {
            (
                (g, h),
                MMember {
                    mode: x.mode,
                    sources: x.sources.clone(),
                    ip: x.ip,
                    version: x.version,
                    expires: x.expires,
                },
            )
        })
        .collect();
    assert_eq!(got, m.members, "table and model differ");
    // Compatibility state, over every (iface, group) the input can name.
    let mut compat: BTreeSet<(IfaceId, Ipv4Addr)> = BTreeSet::new();
    for iface in 0..IFACES + 1 {
        for g in GROUPS {
            let want = m.compat.get(&(iface, g)).map(|c| c.until);
            assert_eq!(t.compat_until(iface, g), want, "compat of ({iface}, {g})");
            if want.is_some() {
                compat.insert((iface, g));
            }
        }
    }
    // Timers.
    assert_eq!(t.next_deadline(), m.next_deadline(), "next deadline");
    if polled {
        assert!(
            t.next_deadline().is_none_or(|d| d > now),
            "a due timer survived poll"
        );
    }
    // Upstream wants, from the members and the compatibility state alone: RFC 4605 4.1,
    // source by source. A source is blocked when every EXCLUDE member excludes it and no
    // INCLUDE member lists it.
    let mut want: BTreeMap<Ipv4Addr, UpstreamWant> = BTreeMap::new();
    let groups: BTreeSet<Ipv4Addr> = members.iter().map(|&(g, _, _)| g).collect();
    for g in groups {
        let of_g: Vec<_> = members.iter().filter(|m| m.0 == g).map(|m| m.2).collect();
        let incl: BTreeSet<Ipv4Addr> = of_g
            .iter()
            .filter(|x| x.mode == FilterMode::Include)
            .flat_map(|x| x.sources.iter().copied())
            .collect();
        let excl: Vec<_> = of_g
            .iter()
            .filter(|x| x.mode == FilterMode::Exclude)
            .collect();
        let w = if excl.is_empty() {
            UpstreamWant::Sources(incl)
        } else {
            let cands: BTreeSet<Ipv4Addr> = excl
                .iter()
                .flat_map(|x| x.sources.iter().copied())
                .collect();
            let blocked: BTreeSet<Ipv4Addr> = cands
                .into_iter()
                .filter(|s| excl.iter().all(|x| x.sources.contains(s)) && !incl.contains(s))
                .collect();
            if blocked.is_empty() {
                UpstreamWant::AnySource
            } else {
                UpstreamWant::Exclude(blocked)
            }
        };
        want.insert(g, w);
    }
    for &(_, g) in &compat {
        want.insert(g, UpstreamWant::AnySource);
    }
    assert_eq!(t.upstream_wants(), want, "upstream_wants");
    // Forwarding: exactly the admitting members, except on multicast-fallback interfaces.
    let fib = t.forwarding();
    let mut sources: Vec<Ipv4Addr> = (0..SOURCES).map(source).collect();
    sources.push(STRANGER);
    for g in GROUPS {
        let mc: BTreeSet<IfaceId> = compat
            .iter()
            .filter(|(i, cg)| *cg == g && m.multicast_fallback(*i))
            .map(|(i, _)| *i)
            .collect();
        for &src in &sources {
            let mut out = Vec::new();
            let mut counters = Vec::new();
            fib.targets(src, g, &mut out, &mut counters);
            assert_eq!(out.len(), counters.len());
            let mut got: Vec<(IfaceId, MacAddr)> = out.iter().map(|t| (t.iface, t.mac)).collect();
            got.sort();
            let mut exp: Vec<(IfaceId, MacAddr)> = mc
                .iter()
                .map(|&i| (i, snoopcast::wire::ethernet::ipv4_group_mac(g)))
                .collect();
            for &(mg, h, x) in &members {
                if mg == g && !mc.contains(&h.iface) && x.admits(src) {
                    exp.push((h.iface, h.mac));
                }
            }
            exp.sort();
            assert_eq!(got, exp, "targets of ({src}, {g})");
        }
    }
}

fn check_queriers(qs: &[Querier], mode: Mode, own: &[Ipv4Addr], now: Instant, polled: bool) {
    for (q, &own) in qs.iter().zip(own) {
        match q.role() {
            Role::Querier => assert_ne!(mode, Mode::Off),
            Role::NonQuerier { other, until } => {
                assert_eq!(mode, Mode::Auto, "only auto yields");
                assert!(
                    other != own && !other.is_unspecified(),
                    "yielded to {other}"
                );
                assert!(own.is_unspecified() || u32::from(other) < u32::from(own));
                if polled {
                    assert!(until > now);
                }
            }
            Role::Disabled { .. } => {
                assert_eq!(mode, Mode::Off);
                // Only the adopted timers' and an older querier's expiry remain.
                if polled {
                    assert!(q.next_deadline().is_none_or(|d| d > now));
                }
            }
        }
        if polled && mode != Mode::Off {
            assert!(q.next_deadline().is_some_and(|d| d > now));
        }
    }
}

/// Rebuilds cost nothing (the pacer's spacing is its minimum), so a run is reproducible.
fn frozen() -> Instant {
    static T: OnceLock<Instant> = OnceLock::new();
    *T.get_or_init(Instant::now)
}

/// The snooper, the router that hears its reports, and what the harness knows about the
/// links.
struct Run {
    s: Snooper<Ipv4Addr>,
    router: Router<Ipv4Addr>,
    max_report_len: usize,
    up_open: bool,
    open: [bool; IFACES],
}

impl Run {
    /// Carry out actions as the runtime's `execute` does; the router hears the reports.
    fn execute(&mut self, actions: Vec<Action<Ipv4Addr>>) {
        let mut reports: Vec<ReportOut<Ipv4Addr>> = Vec::new();
        for a in actions {
            match a {
                Action::Report(r) => {
                    assert!(self.up_open, "{r:?} while the upstream is closed");
                    reports.push(r);
                }
                Action::Listen(_) => assert!(self.up_open, "Listen while the upstream is closed"),
                Action::SendQuery(q) => {
                    assert!(self.open[q.iface], "query on closed {}", q.iface)
                }
                Action::Publish(_) | Action::Log(_) => {}
            }
        }
        check_fits(&reports, self.max_report_len);
        if self.up_open {
            self.router.hear(&reports);
        }
    }

    fn handle(&mut self, input: SInput<Ipv4Addr>, now: Instant) -> Vec<Action<Ipv4Addr>> {
        let a = self.s.handle(input, now);
        self.execute(a.clone());
        a
    }

    fn poll(&mut self, now: Instant) -> Vec<Action<Ipv4Addr>> {
        let a = self.s.poll(now);
        self.execute(a.clone());
        a
    }

    /// After every step: the router has what the reporter says it reported.
    fn check_reports(&mut self) {
        if self.up_open {
            let rep = self.s.reporter();
            self.router.check(rep.state(), rep.version(), false);
        }
    }
}

fn heard(iface: IfaceId, h: u8, src: Ipv4Addr, msg: Message) -> SInput<Ipv4Addr> {
    SInput::Heard {
        iface,
        mac: host(iface as u8, h).mac,
        src,
        msg: Heard::from(msg),
    }
}

/// Membership notes in actions (a query must yield none).
fn membership_notes(a: &[Action<Ipv4Addr>]) -> usize {
    a.iter()
        .filter(|a| matches!(a, Action::Log(Note::Membership(_))))
        .count()
}

fuzz_target!(|input: FuzzInput| {
    let c = &input.cfg;
    let qi = Duration::from_millis(100) * (1 + u32::from(c.qi_100ms % 30));
    let settings = Settings {
        robustness: 1 + u32::from(c.robustness % 7),
        query_interval: qi,
        // Below the query interval, as the command line insists.
        query_response_interval: qi * u32::from(c.qri_tenths % 10) / 10,
        last_member_query_interval: Duration::from_millis(10) * (1 + u32::from(c.lmqi_10ms % 50)),
        max_groups_per_host: usize::from(c.max_groups_per_host % 6),
        max_members: usize::from(c.max_members % 12),
        max_sources_per_member: usize::from(c.max_sources % 5),
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
    // The snooper's fallback list is its number of interfaces.
    fallback.resize(IFACES, CompatFallback::default());
    let deny = if c.deny {
        vec![Ipv4Cidr::new(Ipv4Addr::new(239, 255, 0, 0), 16)]
    } else {
        vec![]
    };
    let filter = GroupFilter::v4(vec![ALL_MULTICAST], deny);
    let reporter = ReporterConfig {
        robustness: 1 + c.report_robustness % 4,
        unsolicited_report_interval: Duration::from_millis(
            1 + 10 * u64::from(c.report_robustness / 4 % 100),
        ),
        query_interval: settings.query_interval,
        leave_delay: Duration::ZERO,
        max_report_len: match c.small_len {
            Some(n) => whole_record_len::<Ipv4Addr>(usize::from(SOURCES)) + usize::from(n % 64),
            None => 1500 - 24,
        },
    };
    let qmode = match c.querier_mode % 3 {
        0 => Mode::Auto,
        1 => Mode::On,
        _ => Mode::Off,
    };
    let qcfg = QuerierConfig {
        mode: qmode,
        version: if c.querier_v3 { 3 } else { 2 },
        query_interval: settings.query_interval,
        query_response_interval: settings.query_response_interval,
        robustness: settings.robustness,
    };
    // Interface 0 has the lowest address on its segment, 1 a middle one, 2 none.
    let own = [
        Ipv4Addr::new(10, 2, 0, 1),
        Ipv4Addr::new(10, 2, 0, 12),
        Ipv4Addr::UNSPECIFIED,
    ];
    let query_from = [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 2, 0, 1),
        Ipv4Addr::new(10, 2, 0, 11),
        Ipv4Addr::new(10, 2, 0, 12),
        Ipv4Addr::new(10, 2, 0, 200),
    ];

    let mut now = Instant::now();
    let cfg = SnooperConfig {
        settings: settings.clone(),
        filter,
        fallback: fallback.clone(),
        querier: qcfg,
        reporter: reporter.clone(),
    };
    let sources: Vec<Option<Ipv4Addr>> = own.iter().copied().map(Some).collect();
    let mut run = Run {
        s: Snooper::new(cfg, &sources, now).with_stopwatch(frozen),
        router: Router::default(),
        max_report_len: reporter.max_report_len,
        up_open: false,
        open: [false; IFACES],
    };
    let mut model = Model {
        s: settings.clone(),
        deny: c.deny,
        fallback,
        members: BTreeMap::new(),
        compat: BTreeMap::new(),
        named: BTreeSet::new(),
    };
    let gmi = model.gmi();
    // Everything opens at daemon start.
    for (i, &ip) in own.iter().enumerate() {
        run.handle(
            SInput::DownOpened {
                iface: i,
                source: Some(ip),
            },
            now,
        );
        run.open[i] = true;
    }
    run.up_open = true;
    run.handle(SInput::UpstreamOpened, now);
    run.poll(now);
    run.check_reports();

    for op in input.ops.iter().take(256) {
        let mut polled = false;
        match op {
            Op::V1 {
                iface,
                host: h,
                group: g,
            }
            | Op::V2 {
                iface,
                host: h,
                group: g,
            } => {
                let v = if matches!(op, Op::V1 { .. }) { 1 } else { 2 };
                let msg = if v == 1 {
                    Message::ReportV1 { group: group(*g) }
                } else {
                    Message::ReportV2 { group: group(*g) }
                };
                let k = host(*iface, *h);
                let a = run.handle(heard(k.iface, *h, host_ip(*h), msg), now);
                if run.open[k.iface] {
                    model.old_report(k, host_ip(*h), group(*g), v, now);
                } else {
                    assert!(a.is_empty(), "a report on a closed link acted: {a:?}");
                }
            }
            Op::Leave {
                iface,
                host: h,
                group: g,
            } => {
                let k = host(*iface, *h);
                let msg = Message::LeaveV2 { group: group(*g) };
                let a = run.handle(heard(k.iface, *h, host_ip(*h), msg), now);
                if run.open[k.iface] {
                    model.leave(k, group(*g), now);
                } else {
                    assert!(a.is_empty(), "a leave on a closed link acted: {a:?}");
                }
            }
            Op::V3 {
                iface,
                host: h,
                records,
            } => {
                let records: Vec<GroupRecord> = records
                    .iter()
                    .take(8)
                    .map(|r| GroupRecord {
                        // 1..=6 and two unknown types.
                        record_type: RecordType::from(r.kind % 8),
                        group: group(r.group),
                        sources: r.sources.iter().take(12).map(|&s| source(s)).collect(),
                    })
                    .collect();
                let k = host(*iface, *h);
                let msg = Message::ReportV3 {
                    records: records.clone(),
                };
                let a = run.handle(heard(k.iface, *h, host_ip(*h), msg), now);
                if run.open[k.iface] {
                    for r in &records {
                        model.record(k, host_ip(*h), r, now);
                    }
                } else {
                    assert!(a.is_empty(), "a report on a closed link acted: {a:?}");
                }
            }
            Op::Query {
                iface,
                from,
                group: g,
            } => {
                let i = usize::from(*iface) % IFACES;
                let src = query_from[usize::from(*from) % query_from.len()];
                let q = Message::Query(Query {
                    version: QueryVersion::V3,
                    max_resp: settings.query_response_interval,
                    group: if *g % 2 == 0 {
                        Ipv4Addr::UNSPECIFIED
                    } else {
                        group(*g)
                    },
                    s_flag: false,
                    // Our own timers: what a non-querier adopts equals the configured
                    // ones, so the model's intervals stay right (the adoption has its
                    // unit tests in core::querier and core::snooper).
                    qrv: u8::try_from(settings.robustness)
                        .ok()
                        .filter(|&r| r <= 7)
                        .unwrap_or(0),
                    qqi: settings.query_interval,
                    sources: vec![],
                });
                // The table ignores queries; only the querier hears them.
                let a = run.handle(heard(i, 0, src, q), now);
                assert_eq!(membership_notes(&a), 0, "a query changed the table: {a:?}");
                if !run.open[i] {
                    assert!(a.is_empty(), "a query on a closed link acted: {a:?}");
                }
            }
            Op::Step(s) => {
                now += match s {
                    Step::Ms(n) => Duration::from_millis(u64::from(*n)),
                    Step::Lmqi => settings.last_member_query_interval,
                    Step::HalfQi => settings.query_interval / 2,
                    Step::Qi => settings.query_interval,
                    Step::GmiMinus1Ms => gmi.saturating_sub(Duration::from_millis(1)),
                    Step::Gmi => gmi,
                    Step::Hours(n) => Duration::from_secs(3600 * u64::from(*n % 4)),
                };
            }
            Op::Poll => {
                run.poll(now);
                model.poll(now);
                polled = true;
            }
            Op::RemoveIface(i) => {
                let i = usize::from(*i) % IFACES;
                run.handle(SInput::DownClosed { iface: i }, now);
                run.open[i] = false;
                model.remove_iface(i);
                run.handle(
                    SInput::DownOpened {
                        iface: i,
                        source: Some(own[i]),
                    },
                    now,
                );
                run.open[i] = true;
            }
            Op::CloseIface(i) => {
                let i = usize::from(*i) % IFACES;
                run.handle(SInput::DownClosed { iface: i }, now);
                run.open[i] = false;
                model.remove_iface(i);
            }
            Op::OpenIface(i) => {
                let i = usize::from(*i) % IFACES;
                run.handle(
                    SInput::DownOpened {
                        iface: i,
                        source: Some(own[i]),
                    },
                    now,
                );
                run.open[i] = true;
            }
            Op::UpstreamClose => {
                run.up_open = false;
                // The link is new to the router when it comes back.
                run.router.reset();
                run.handle(SInput::UpstreamClosed, now);
            }
            Op::UpstreamOpen => {
                // The runtime opens only a closed upstream: one found re-created is closed
                // first, in the same batch.
                if run.up_open {
                    run.up_open = false;
                    run.router.reset();
                    run.handle(SInput::UpstreamClosed, now);
                }
                run.up_open = true;
                run.handle(SInput::UpstreamOpened, now);
            }
            Op::UpstreamQuery {
                version,
                group: g,
                max_resp_100ms,
            } => {
                let query = HeardQuery {
                    max_resp: Duration::from_millis(100 * u64::from(max_resp_100ms % 101)),
                    group: if *g % 2 == 0 {
                        Ipv4Addr::UNSPECIFIED
                    } else {
                        group(*g)
                    },
                    ..HeardQuery::general(1 + version % 3)
                };
                let src = Ipv4Addr::new(10, 9, 0, 1);
                let a = run.handle(SInput::UpstreamQuery { src, query }, now);
                assert!(a.is_empty(), "an upstream query acted: {a:?}");
            }
            Op::Silence => {
                now += gmi;
                run.poll(now);
                model.poll(now);
                polled = true;
                let t = run.s.table();
                assert_eq!(t.member_count(), 0, "members outlived the GMI");
                assert_eq!(t.next_deadline(), None, "timers outlived the GMI");
                assert!(t.upstream_wants().is_empty());
            }
            Op::Settle => {
                now += REBUILD_MAX_GAP;
                run.poll(now);
                model.poll(now);
                polled = true;
                assert_eq!(
                    *run.s.reporter().state(),
                    run.s.table().upstream_wants(),
                    "settled, and the reporter's state is not the want set"
                );
            }
        }
        check_table(run.s.table(), &model, now, polled);
        check_queriers(run.s.queriers(), qmode, &own, now, polled);
        run.check_reports();
        if polled {
            assert!(
                run.s.next_deadline(now).is_none_or(|d| d > now),
                "the snooper's deadline is due after a poll"
            );
        }
    }
    // Shutdown leaves everything.
    run.handle(SInput::Stop, now);
    run.poll(now);
    run.check_reports();
    assert!(
        run.s.reporter().state().is_empty() && run.router.groups.is_empty(),
        "Stop left groups: reporter {:?}, router {:?}",
        run.s.reporter().state(),
        run.router.groups
    );
});
