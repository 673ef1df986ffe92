//! Structured fuzzing of the membership table, the upstream join pool and the querier.
//!
//! The input (derived with `arbitrary`) is a small configuration and a sequence of operations:
//! IGMPv1/v2 reports, v2 leaves and v3 reports with records of every type (and unknown ones)
//! from a few hosts on a few interfaces, about a few groups (one SSM, one link-local, one that
//! may be denied, one not even multicast) and sources, so that collisions happen; queries;
//! clock steps of every size; polls; interfaces going away; upstream reconciles that the
//! "kernel" may refuse. Limits are drawn small so they bite.
//!
//! Next to the table runs a naive model written from the rules (RFC 3376 sections 3.2, 6.4,
//! 7.3.2 and 8, RFC 2236 section 3, RFC 4604 section 2.2, per host as membership.rs
//! documents). After every step:
//! - no panic; member_count is the number of members and never above max_members; no host
//!   has more than max_groups_per_host groups, no member more than max_sources_per_member
//!   sources; no INCLUDE{} member, no EXCLUDE member of an SSM group, no filtered group;
//! - a host is a member of a group only if it sent a report naming that group on that
//!   interface and has not been removed with the interface since;
//! - every member (mode, sources, IP, version, expiry) and every compatibility timer is the
//!   model's; `next_deadline` is the model's earliest timer, and after a poll it is in the
//!   future;
//! - `upstream_wants()` is computed again from `members()` and the compatibility state: any
//!   source where some member is EXCLUDE or an older host is present, else the union of the
//!   INCLUDE sources;
//! - `forwarding()` sends (source, group) to exactly the members admitting the source, except
//!   on interfaces in multicast fallback, which get one group-MAC copy;
//! - after `JoinPool::reconcile` the operations replayed on a model of the kernel (20 groups
//!   per socket and 10 sources per group, here drawn smaller) never break its rules nor its
//!   limits; what the pool says is joined is what the kernel holds; when no operation was
//!   refused, that is exactly the want set;
//! - after the clock moves a Group Membership Interval past the last input, a poll leaves
//!   the table empty, with no timer and nothing wanted upstream;
//! - the querier never yields to itself or to 0.0.0.0, never leaves `Off`, and after a poll
//!   its next deadline is in the future.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use snoopcast::core::filter::{GroupFilter, Ipv4Cidr, ALL_MULTICAST};
use snoopcast::core::membership::{
    CompatFallback, FilterMode, HostKey, Settings, Table, UpstreamWant,
};
use snoopcast::core::querier::{Mode, Querier, QuerierConfig, Role};
use snoopcast::core::upstream::{JoinKind, JoinLimits, JoinOp, JoinPool};
use snoopcast::core::IfaceId;
use snoopcast::wire::igmp::{GroupRecord, Message, Query, QueryVersion, RecordType};
use snoopcast::wire::MacAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
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
    groups_per_socket: u8,
    sources_per_group: u8,
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
    RemoveIface(u8),
    /// The kernel refuses the operations of the next reconcile whose index has its bit set.
    FailNext(u32),
    /// The clock moves a Group Membership Interval on with no input: everything must go.
    Silence,
}

#[derive(Arbitrary, Debug)]
struct Input {
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
    fn gmi(&self) -> Duration {
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
            let until = now + self.gmi();
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

// ----- the model of the kernel's join sockets -----

#[derive(Default)]
struct Kernel {
    /// Per socket: group -> None for (*, G), Some(sources) for (S, G).
    socks: BTreeMap<usize, BTreeMap<Ipv4Addr, Option<BTreeSet<Ipv4Addr>>>>,
}

impl Kernel {
    /// Carry out one operation as Linux would; Err is the errno it would return.
    fn apply(&mut self, op: JoinOp, lim: JoinLimits) -> Result<(), &'static str> {
        let s = self.socks.entry(op.socket).or_default();
        match op.kind {
            JoinKind::JoinAny(g) => {
                if s.contains_key(&g) {
                    return Err("EADDRINUSE/EINVAL: group already on the socket");
                }
                if s.len() >= lim.groups_per_socket {
                    return Err("ENOBUFS: igmp_max_memberships");
                }
                s.insert(g, None);
            }
            JoinKind::LeaveAny(g) => match s.get(&g) {
                Some(None) => {
                    s.remove(&g);
                }
                _ => return Err("EADDRNOTAVAIL: no (*, G) to leave"),
            },
            JoinKind::JoinSource(g, x) => match s.get_mut(&g) {
                Some(None) => return Err("EINVAL: (S, G) on a (*, G) membership"),
                Some(Some(set)) => {
                    if set.contains(&x) {
                        return Err("EADDRNOTAVAIL: source already joined");
                    }
                    if set.len() >= lim.sources_per_group {
                        return Err("ENOBUFS: igmp_max_msf");
                    }
                    set.insert(x);
                }
                None => {
                    if s.len() >= lim.groups_per_socket {
                        return Err("ENOBUFS: igmp_max_memberships");
                    }
                    s.insert(g, Some(BTreeSet::from([x])));
                }
            },
            JoinKind::LeaveSource(g, x) => match s.get_mut(&g) {
                Some(Some(set)) if set.contains(&x) => {
                    set.remove(&x);
                    if set.is_empty() {
                        s.remove(&g);
                    }
                }
                _ => return Err("EADDRNOTAVAIL: no (S, G) to leave"),
            },
        }
        Ok(())
    }

    fn joined(&self) -> BTreeMap<Ipv4Addr, UpstreamWant> {
        let mut out: BTreeMap<Ipv4Addr, UpstreamWant> = BTreeMap::new();
        for s in self.socks.values() {
            for (g, h) in s {
                match h {
                    None => {
                        out.insert(*g, UpstreamWant::AnySource);
                    }
                    Some(set) => match out
                        .entry(*g)
                        .or_insert_with(|| UpstreamWant::Sources(BTreeSet::new()))
                    {
                        UpstreamWant::Sources(all) => all.extend(set),
                        UpstreamWant::AnySource => {}
                    },
                }
            }
        }
        out
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
    // Upstream wants, from the members and the compatibility state alone.
    let mut want: BTreeMap<Ipv4Addr, UpstreamWant> = BTreeMap::new();
    for &(g, _, x) in &members {
        let e = want
            .entry(g)
            .or_insert_with(|| UpstreamWant::Sources(BTreeSet::new()));
        match (x.mode, &mut *e) {
            (FilterMode::Exclude, _) => *e = UpstreamWant::AnySource,
            (FilterMode::Include, UpstreamWant::Sources(all)) => all.extend(&x.sources),
            (FilterMode::Include, UpstreamWant::AnySource) => {}
        }
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
                assert_eq!(q.next_deadline(), None);
            }
        }
        if polled && mode != Mode::Off {
            assert!(q.next_deadline().is_some_and(|d| d > now));
        }
    }
}

fn reconcile(
    pool: &mut JoinPool,
    kernel: &mut Kernel,
    lim: JoinLimits,
    want: &BTreeMap<Ipv4Addr, UpstreamWant>,
    fail: u32,
) {
    let before = pool.joined();
    let ops = pool.reconcile(want);
    let mut refused = false;
    for (i, op) in ops.into_iter().enumerate() {
        let r = if fail & (1 << (i % 32)) != 0 {
            Err("injected")
        } else {
            kernel.apply(op, lim)
        };
        if let Err(e) = r {
            // Only a refusal we injected (or one caused by it) may happen.
            assert!(
                fail != 0,
                "{op:?} breaks the kernel's rules ({e}); joined before {before:?}, want {want:?}"
            );
            refused = true;
            pool.undo(op);
        }
    }
    assert_eq!(pool.joined(), kernel.joined(), "pool and kernel differ");
    if !refused {
        assert_eq!(&pool.joined(), want, "joined is not the want set");
    }
    // No socket over the limits.
    for s in kernel.socks.values() {
        assert!(s.len() <= lim.groups_per_socket);
        for set in s.values().flatten() {
            assert!(set.len() <= lim.sources_per_group);
        }
    }
}

fuzz_target!(|input: Input| {
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
    let fallback: Vec<CompatFallback> = c
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
    let deny = if c.deny {
        vec![Ipv4Cidr::new(Ipv4Addr::new(239, 255, 0, 0), 16)]
    } else {
        vec![]
    };
    let filter = GroupFilter::v4(vec![ALL_MULTICAST], deny);
    let lim = JoinLimits {
        groups_per_socket: 1 + usize::from(c.groups_per_socket % 4),
        sources_per_group: 1 + usize::from(c.sources_per_group % 3),
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
    let mut table = Table::new(settings.clone(), filter, fallback.clone());
    let mut model = Model {
        s: settings.clone(),
        deny: c.deny,
        fallback,
        members: BTreeMap::new(),
        compat: BTreeMap::new(),
        named: BTreeSet::new(),
    };
    let mut queriers: Vec<Querier> = own
        .iter()
        .map(|&ip| Querier::new(qcfg.clone(), ip, now))
        .collect();
    let mut pool = JoinPool::new(lim);
    let mut kernel = Kernel::default();
    let mut fail = 0u32;
    let gmi = model.gmi();

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
                table.accept_report(k, host_ip(*h), &msg, now);
                model.old_report(k, host_ip(*h), group(*g), v, now);
            }
            Op::Leave {
                iface,
                host: h,
                group: g,
            } => {
                let k = host(*iface, *h);
                table.accept_report(k, host_ip(*h), &Message::LeaveV2 { group: group(*g) }, now);
                model.leave(k, group(*g), now);
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
                let msg = Message::ReportV3 { records };
                table.accept_report(k, host_ip(*h), &msg, now);
                let Message::ReportV3 { records } = &msg else {
                    unreachable!()
                };
                for r in records {
                    model.record(k, host_ip(*h), r, now);
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
                    max_resp: Duration::from_secs(1),
                    group: if *g % 2 == 0 {
                        Ipv4Addr::UNSPECIFIED
                    } else {
                        group(*g)
                    },
                    s_flag: false,
                    qrv: 2,
                    qqi: Duration::from_secs(125),
                    sources: vec![],
                });
                // The table ignores queries.
                let ev = table.accept_report(host(*iface, 0), src, &q, now);
                assert!(ev.is_empty(), "a query changed the table: {ev:?}");
                queriers[i].accept_query(src, now);
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
                table.poll(now);
                model.poll(now);
                for q in &mut queriers {
                    q.poll(now);
                }
                polled = true;
            }
            Op::RemoveIface(i) => {
                let i = usize::from(*i) % IFACES;
                table.remove_iface(i);
                model.remove_iface(i);
                queriers[i].restart(now);
            }
            Op::FailNext(mask) => fail = *mask,
            Op::Silence => {
                now += gmi;
                table.poll(now);
                model.poll(now);
                for q in &mut queriers {
                    q.poll(now);
                }
                polled = true;
                assert_eq!(table.member_count(), 0, "members outlived the GMI");
                assert_eq!(table.next_deadline(), None, "timers outlived the GMI");
                assert!(table.upstream_wants().is_empty());
            }
        }
        check_table(&table, &model, now, polled);
        check_queriers(&queriers, qmode, &own, now, polled);
        reconcile(&mut pool, &mut kernel, lim, &table.upstream_wants(), fail);
        fail = 0;
    }
    // Shutdown leaves everything.
    let ops = pool.leave_all();
    for op in ops {
        kernel
            .apply(op, lim)
            .unwrap_or_else(|e| panic!("leave_all: {op:?}: {e}"));
    }
    assert!(pool.joined().is_empty() && kernel.joined().is_empty());
});
