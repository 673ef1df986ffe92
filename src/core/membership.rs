//! The membership table: which host (interface, MAC) wants which group from which sources.
//!
//! Pure: every input carries `now`, every change comes back as an [`Event`] for the runtime
//! to log or act on. One timer per (host, group): RFC 3376 section 6.4 keeps per-source timers
//! because a router only sees the union of many hosts; we see each host's own reports, so a
//! host's current-state record (section 3 / 4.2.12) states its whole filter for that group.

use super::filter::GroupFilter;
use super::IfaceId;
use crate::wire::igmp::{GroupRecord, Message, RecordType};
use crate::wire::ipv4::is_ssm_group;
use crate::wire::MacAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the downstream segment does with IGMPv1/v2 hosts (report suppression, RFC 2236
/// section 3: a v2 host that hears another member's report stays silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatFallback {
    /// While an older host is present for a group, send that group on that interface as one
    /// ordinary L2 multicast copy (the silent members get it too).
    #[default]
    Multicast,
    /// Keep per-host unicast (correct where hosts cannot hear each other, e.g. a VPN tap
    /// without client-to-client).
    Unicast,
}

/// Timers and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub robustness: u32,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    /// Last Member Query Interval (RFC 3376 8.8), used for group-specific queries sent when
    /// the last known member of a group in IGMPv1/v2 compatibility leaves.
    pub last_member_query_interval: Duration,
    pub max_groups_per_host: usize,
    pub max_members: usize,
    /// Cap on the sources one member may list (excess sources are ignored and counted).
    pub max_sources_per_member: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            last_member_query_interval: Duration::from_secs(1),
            max_groups_per_host: 128,
            max_members: 10_000,
            max_sources_per_member: 64,
        }
    }
}

impl Settings {
    /// Group Membership Interval, RFC 3376 section 8.4: robustness x QI + QRI.
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval
    }
    /// Older Host Present Interval, RFC 3376 section 8.13: robustness x QI + QRI.
    pub fn older_host_present_interval(&self) -> Duration {
        self.group_membership_interval()
    }
}

/// A host on a downstream interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    pub iface: IfaceId,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterMode {
    Include,
    Exclude,
}

/// Per-member traffic counters, shared with the forwarding snapshot so the data path can
/// count without touching the table.
#[derive(Debug, Default)]
pub struct MemberCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

/// One host's membership of one group.
#[derive(Debug, Clone)]
pub struct Member {
    pub mode: FilterMode,
    /// INCLUDE: the sources it wants. EXCLUDE: the sources it does not want.
    pub sources: BTreeSet<Ipv4Addr>,
    /// The IPv4 source address of its last report (for status and logs).
    pub ip: Ipv4Addr,
    /// IGMP version of its last report (1, 2 or 3).
    pub version: u8,
    pub expires: Instant,
    pub counters: Arc<MemberCounters>,
}

impl Member {
    /// Whether this member wants traffic from `source` (RFC 3376 section 3.2 semantics).
    pub fn admits(&self, source: Ipv4Addr) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.contains(&source),
            FilterMode::Exclude => !self.sources.contains(&source),
        }
    }
}

/// Why a member went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// IGMPv2 Leave Group.
    Leave,
    /// TO_IN{} / IS_IN{} or BLOCK that emptied an INCLUDE filter.
    EmptyInclude,
    /// Silent for the group membership interval.
    Expired,
    /// Its interface went away.
    InterfaceGone,
}

/// Why a report or record was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The group is outside --allow, inside --deny, or in 224.0.0.0/24.
    GroupFiltered,
    /// EXCLUDE-mode record or v1/v2 report for the SSM range (RFC 4604 section 2.2).
    SsmExclude,
    /// Unknown v3 record type (RFC 3376 section 4.2.12).
    UnknownRecord,
    /// The host already has --max-groups-per-host groups.
    GroupsPerHostLimit,
    /// The table already has --max-members members.
    MembersLimit,
    /// Sources beyond max_sources_per_member were dropped (the record was still applied).
    SourcesLimit,
}

/// What changed; the runtime logs these and carries out the ones that need I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A host became a member of a group.
    Joined {
        host: HostKey,
        ip: Ipv4Addr,
        group: Ipv4Addr,
        mode: FilterMode,
        sources: Vec<Ipv4Addr>,
    },
    /// An existing member's filter changed.
    Changed {
        host: HostKey,
        ip: Ipv4Addr,
        group: Ipv4Addr,
        mode: FilterMode,
        sources: Vec<Ipv4Addr>,
    },
    /// A member went away.
    Left {
        host: HostKey,
        ip: Ipv4Addr,
        group: Ipv4Addr,
        reason: LeaveReason,
    },
    /// An IGMPv1/v2 host appeared for (iface, group): compatibility mode began.
    CompatStarted {
        iface: IfaceId,
        group: Ipv4Addr,
        version: u8,
    },
    /// The Older Host Present timer ran out (or the last-member queries went unanswered).
    CompatEnded { iface: IfaceId, group: Ipv4Addr },
    /// The runtime should send an IGMP group-specific query for `group` on `iface`
    /// (last-member query while in compatibility mode, RFC 2236 section 3 / RFC 3376 6.6.3.1).
    SendGroupQuery { iface: IfaceId, group: Ipv4Addr },
    /// Something in a report was ignored.
    Ignored {
        host: HostKey,
        group: Ipv4Addr,
        reason: IgnoreReason,
    },
}

/// What the upstream must join for one group: the union of what members want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamWant {
    /// Some member is in EXCLUDE mode (or an older host is present): join (*, G).
    AnySource,
    /// Every member is INCLUDE: join (S, G) for each source in the union.
    Sources(BTreeSet<Ipv4Addr>),
}

/// A pending timer. Each one is indexed exactly once in `Table::timers` under the instant it
/// fires; whoever moves or drops the timer moves or drops the index entry, so the index
/// never holds stale entries and its first element is the next deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    /// A member's group membership timer.
    Member(Ipv4Addr, HostKey),
    /// The Older Host Present timer of (iface, group).
    CompatEnd(IfaceId, Ipv4Addr),
    /// The next step of the last-member queries of (iface, group).
    LastMemberQuery(IfaceId, Ipv4Addr),
}

/// IGMPv1/v2 compatibility state of one (iface, group), RFC 3376 section 7.3.2.
#[derive(Debug, Clone)]
struct Compat {
    /// Older Host Present timer (either version).
    until: Instant,
    /// Until when an IGMPv1 host is present: while it is, v2 leaves do not start last-member
    /// queries (RFC 2236 section 4, RFC 3376 section 7.3.2). Checked lazily, no timer entry.
    v1_until: Option<Instant>,
    /// Last-member queries in progress, if any.
    lmq: Option<LastMemberQueries>,
}

/// Last-member queries of one (iface, group) in compatibility mode (RFC 2236 section 3,
/// RFC 3376 section 6.6.3.1): `robustness` group-specific queries one Last Member Query
/// Interval apart; one interval after the last one, compatibility ends unless a report came.
#[derive(Debug, Clone, Copy)]
struct LastMemberQueries {
    sent: u32,
    next: Instant,
}

/// The result of applying a report to a host's filter for one group.
enum Applied {
    /// The host is a member afterwards (created, changed or refreshed).
    Member,
    /// The host is not a member afterwards (removed, or nothing to create).
    Absent,
    /// The report was ignored (a limit); nothing changed.
    Rejected,
}

/// The membership table. Owned by one thread, behind a lock for the status reader.
#[derive(Debug)]
pub struct Table {
    settings: Settings,
    filter: GroupFilter,
    /// Per downstream interface, indexed by IfaceId.
    fallback: Vec<CompatFallback>,
    /// Members by group, then host: the order of `members()`.
    groups: BTreeMap<Ipv4Addr, BTreeMap<HostKey, Member>>,
    /// The groups of each host (for the per-host limit and `remove_iface`).
    host_groups: BTreeMap<HostKey, BTreeSet<Ipv4Addr>>,
    /// Number of members, the sum over `groups`.
    count: usize,
    /// (iface, group) pairs in IGMPv1/v2 compatibility mode.
    compat: BTreeMap<(IfaceId, Ipv4Addr), Compat>,
    /// Every pending timer, ordered by when it fires.
    timers: BTreeSet<(Instant, TimerKey)>,
}

/// The first and last host keys of an interface, for range scans.
fn iface_hosts(iface: IfaceId) -> std::ops::RangeInclusive<HostKey> {
    HostKey {
        iface,
        mac: MacAddr([0; 6]),
    }..=HostKey {
        iface,
        mac: MacAddr([0xff; 6]),
    }
}

impl Table {
    /// `fallback[i]` is the compatibility policy of downstream interface `i`.
    pub fn new(settings: Settings, filter: GroupFilter, fallback: Vec<CompatFallback>) -> Self {
        Table {
            settings,
            filter,
            fallback,
            groups: BTreeMap::new(),
            host_groups: BTreeMap::new(),
            count: 0,
            compat: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Apply one IGMP report (v1, v2, v3) or v2 leave heard from `host` whose IP source is
    /// `ip`. Queries are not handled here (the runtime gives them to the querier) and are
    /// ignored. A host with no state that sends BLOCK is ignored; ALLOW creates INCLUDE.
    pub fn accept_report(
        &mut self,
        host: HostKey,
        ip: Ipv4Addr,
        msg: &Message,
        now: Instant,
    ) -> Vec<Event> {
        let mut ev = Vec::new();
        match msg {
            Message::Query(_) => {}
            Message::ReportV1 { group } => {
                self.accept_old_report(host, ip, *group, 1, now, &mut ev)
            }
            Message::ReportV2 { group } => {
                self.accept_old_report(host, ip, *group, 2, now, &mut ev)
            }
            Message::LeaveV2 { group } => self.accept_leave(host, *group, now, &mut ev),
            Message::ReportV3 { records } => {
                for rec in records {
                    self.accept_record(host, ip, rec, now, &mut ev);
                }
            }
        }
        ev
    }

    /// Run timers due at `now`: member expiry, compat-mode end, last-member queries.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match key {
                // Group membership timer ran out (RFC 3376 section 6.5 / 8.4): the host was
                // silent for a whole Group Membership Interval.
                TimerKey::Member(group, host) => {
                    if let Some(m) = self.remove_member(group, host) {
                        ev.push(Event::Left {
                            host,
                            ip: m.ip,
                            group,
                            reason: LeaveReason::Expired,
                        });
                    }
                }
                // Older Host Present timer ran out (RFC 3376 section 7.3.2).
                TimerKey::CompatEnd(iface, group) => self.end_compat(iface, group, &mut ev),
                TimerKey::LastMemberQuery(iface, group) => {
                    self.last_member_query_step(iface, group, &mut ev)
                }
            }
        }
        ev
    }

    /// The earliest instant at which `poll` has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Drop every member of `iface` (the interface vanished). Its compatibility state goes
    /// too, each with a `CompatEnded` so every `CompatStarted` has its end.
    pub fn remove_iface(&mut self, iface: IfaceId) -> Vec<Event> {
        let mut ev = Vec::new();
        let pairs: Vec<(HostKey, Ipv4Addr)> = self
            .host_groups
            .range(iface_hosts(iface))
            .flat_map(|(h, gs)| gs.iter().map(move |g| (*h, *g)))
            .collect();
        for (host, group) in pairs {
            if let Some(m) = self.remove_member(group, host) {
                ev.push(Event::Left {
                    host,
                    ip: m.ip,
                    group,
                    reason: LeaveReason::InterfaceGone,
                });
            }
        }
        let lo = (iface, Ipv4Addr::UNSPECIFIED);
        let hi = (iface, Ipv4Addr::BROADCAST);
        let compat: Vec<Ipv4Addr> = self.compat.range(lo..=hi).map(|(&(_, g), _)| g).collect();
        for group in compat {
            self.end_compat(iface, group, &mut ev);
        }
        ev
    }

    /// Number of (host, group) members.
    pub fn member_count(&self) -> usize {
        self.count
    }

    /// Every member, ordered by group then host.
    pub fn members(&self) -> impl Iterator<Item = (Ipv4Addr, HostKey, &Member)> + '_ {
        self.groups
            .iter()
            .flat_map(|(g, hosts)| hosts.iter().map(move |(h, m)| (*g, *h, m)))
    }

    /// One host's membership of one group, if any.
    pub fn member(&self, host: HostKey, group: Ipv4Addr) -> Option<&Member> {
        self.groups.get(&group)?.get(&host)
    }

    /// Whether (iface, group) is in IGMPv1/v2 compatibility mode, and until when.
    pub fn compat_until(&self, iface: IfaceId, group: Ipv4Addr) -> Option<Instant> {
        self.compat.get(&(iface, group)).map(|c| c.until)
    }

    /// What upstream must join: one entry per group with at least one member or one
    /// interface in compatibility mode.
    pub fn upstream_wants(&self) -> BTreeMap<Ipv4Addr, UpstreamWant> {
        // An older host present means someone wants (*, G) whose filter we cannot see
        // (IGMPv1/v2 reports are EXCLUDE{}, RFC 3376 section 7.3.2), so compat forces ASM.
        let mut out: BTreeMap<Ipv4Addr, UpstreamWant> = self
            .compat
            .keys()
            .map(|&(_, g)| (g, UpstreamWant::AnySource))
            .collect();
        for (&group, hosts) in &self.groups {
            if out.contains_key(&group) {
                continue;
            }
            // The router-side merge of RFC 3376 section 3.2: any EXCLUDE member makes the
            // result EXCLUDE; we join (*, G) for it instead of tracking the intersection.
            let mut union = BTreeSet::new();
            let mut any = false;
            for m in hosts.values() {
                match m.mode {
                    FilterMode::Exclude => {
                        any = true;
                        break;
                    }
                    FilterMode::Include => union.extend(m.sources.iter().copied()),
                }
            }
            out.insert(
                group,
                if any {
                    UpstreamWant::AnySource
                } else {
                    UpstreamWant::Sources(union)
                },
            );
        }
        out
    }

    /// Build the forwarding snapshot the data path reads.
    pub fn forwarding(&self) -> crate::core::fib::Fib {
        use crate::core::fib::{Fib, FibMember, GroupFwd};
        // Interfaces that get a group as one L2 multicast copy: compat mode with the
        // Multicast fallback (silent, report-suppressed v1/v2 hosts, RFC 2236 section 3).
        let mut multicast: BTreeMap<Ipv4Addr, Vec<IfaceId>> = BTreeMap::new();
        for &(iface, group) in self.compat.keys() {
            if self.fallback_of(iface) == CompatFallback::Multicast {
                multicast.entry(group).or_default().push(iface);
            }
        }
        let mut fib = Fib::default();
        for (&group, hosts) in &self.groups {
            let mc = multicast.remove(&group).unwrap_or_default();
            let members = hosts
                .iter()
                .filter(|(h, _)| !mc.contains(&h.iface))
                .map(|(h, m)| FibMember {
                    iface: h.iface,
                    mac: h.mac,
                    mode: m.mode,
                    sources: m.sources.iter().copied().collect(),
                    counters: Arc::clone(&m.counters),
                })
                .collect();
            fib.groups.insert(
                group,
                GroupFwd {
                    multicast_ifaces: mc,
                    members,
                },
            );
        }
        for (group, mc) in multicast {
            fib.groups.insert(
                group,
                GroupFwd {
                    multicast_ifaces: mc,
                    members: Vec::new(),
                },
            );
        }
        fib
    }

    #[doc(hidden)]
    pub fn _unused(&self) -> (&GroupFilter, &[CompatFallback], Option<&GroupRecord>) {
        (&self.filter, &self.fallback, None)
    }

    // ----- inputs -----

    /// IGMPv1 (RFC 1112) / IGMPv2 (RFC 2236) membership report: the host wants every source,
    /// EXCLUDE{} (RFC 3376 section 7.3.2), and an older host is present on the interface.
    fn accept_old_report(
        &mut self,
        host: HostKey,
        ip: Ipv4Addr,
        group: Ipv4Addr,
        version: u8,
        now: Instant,
        ev: &mut Vec<Event>,
    ) {
        if !self.filter.admits(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::GroupFiltered,
            });
            return;
        }
        // RFC 4604 section 2.2: a non-source-specific request for an SSM group is ignored.
        if is_ssm_group(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::SsmExclude,
            });
            return;
        }
        let applied = self.set_filter(
            host,
            ip,
            group,
            version,
            FilterMode::Exclude,
            BTreeSet::new(),
            now,
            ev,
        );
        if matches!(applied, Applied::Member) {
            self.start_compat(host.iface, group, version, now, ev);
        }
    }

    /// IGMPv2 Leave Group (RFC 2236 section 3). We know exactly who left, so that host's
    /// membership goes at once; the last-member queries exist only for the silent,
    /// report-suppressed hosts of compatibility mode.
    fn accept_leave(&mut self, host: HostKey, group: Ipv4Addr, now: Instant, ev: &mut Vec<Event>) {
        if !self.filter.admits(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::GroupFiltered,
            });
            return;
        }
        // RFC 4604 section 2.2: IGMPv1/v2 messages carry no membership for SSM groups.
        if is_ssm_group(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::SsmExclude,
            });
            return;
        }
        if let Some(m) = self.remove_member(group, host) {
            ev.push(Event::Left {
                host,
                ip: m.ip,
                group,
                reason: LeaveReason::Leave,
            });
        }
        let iface = host.iface;
        if self.fallback_of(iface) != CompatFallback::Multicast || self.has_member_on(iface, group)
        {
            return;
        }
        let Some(c) = self.compat.get_mut(&(iface, group)) else {
            return;
        };
        // While an IGMPv1 host is present, leaves are ignored (RFC 2236 section 4, RFC 3376
        // section 7.3.2): a v1 host answers a group query only within its own 10 s, so the
        // queries would end compatibility under it. Queries already running are not restarted
        // (RFC 2236 section 6, "Checking Membership" ignores further leaves).
        if c.until <= now || c.v1_until.is_some_and(|t| t > now) || c.lmq.is_some() {
            return;
        }
        c.lmq = Some(LastMemberQueries { sent: 0, next: now });
        self.last_member_query_step(iface, group, ev);
    }

    /// One IGMPv3 group record, applied to the host's own filter (RFC 3376 section 3.2 and the
    /// state tables of section 6.4, read per host: the host's report states its whole filter,
    /// so no per-source timers are needed).
    fn accept_record(
        &mut self,
        host: HostKey,
        ip: Ipv4Addr,
        rec: &GroupRecord,
        now: Instant,
        ev: &mut Vec<Event>,
    ) {
        let group = rec.group;
        // RFC 3376 section 4.2.12: records of an unknown type are ignored.
        if let RecordType::Unknown(_) = rec.record_type {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::UnknownRecord,
            });
            return;
        }
        if !self.filter.admits(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::GroupFiltered,
            });
            return;
        }
        let b: BTreeSet<Ipv4Addr> = rec.sources.iter().copied().collect();
        let current = self.member(host, group).map(|m| (m.mode, &m.sources));
        use FilterMode::{Exclude, Include};
        let (mode, sources) = match (rec.record_type, current) {
            // IS_IN(B) / TO_IN(B): the filter becomes INCLUDE(B) (sections 4.2.12, 4.2.13).
            (RecordType::ModeIsInclude | RecordType::ChangeToInclude, _) => (Include, b),
            // IS_EX(B) / TO_EX(B): EXCLUDE(B). Not in the SSM range, where only INCLUDE
            // membership exists (RFC 4604 section 2.2).
            (RecordType::ModeIsExclude | RecordType::ChangeToExclude, _) => {
                if is_ssm_group(group) {
                    ev.push(Event::Ignored {
                        host,
                        group,
                        reason: IgnoreReason::SsmExclude,
                    });
                    return;
                }
                (Exclude, b)
            }
            // ALLOW(B): INCLUDE(A) -> INCLUDE(A+B), EXCLUDE(X) -> EXCLUDE(X-B); with no state
            // the host's filter was INCLUDE{} (section 3.2), so it becomes INCLUDE(B).
            (RecordType::AllowNew, None) => (Include, b),
            (RecordType::AllowNew, Some((Include, a))) => (Include, a | &b),
            (RecordType::AllowNew, Some((Exclude, x))) => (Exclude, x - &b),
            // BLOCK(B): INCLUDE(A) -> INCLUDE(A-B), EXCLUDE(X) -> EXCLUDE(X+B); with no state
            // (INCLUDE{}) blocking changes nothing.
            (RecordType::BlockOld, None) => return,
            (RecordType::BlockOld, Some((Include, a))) => (Include, a - &b),
            (RecordType::BlockOld, Some((Exclude, x))) => (Exclude, x | &b),
            (RecordType::Unknown(_), _) => unreachable!("handled above"),
        };
        self.set_filter(host, ip, group, 3, mode, sources, now, ev);
    }

    // ----- state changes -----

    /// Make `host`'s filter for `group` (mode, sources), refreshing its timer; create or remove
    /// the member as needed, within the limits. An empty INCLUDE filter means "not a member"
    /// (RFC 3376 section 3.2).
    #[allow(clippy::too_many_arguments)]
    fn set_filter(
        &mut self,
        host: HostKey,
        ip: Ipv4Addr,
        group: Ipv4Addr,
        version: u8,
        mode: FilterMode,
        mut sources: BTreeSet<Ipv4Addr>,
        now: Instant,
        ev: &mut Vec<Event>,
    ) -> Applied {
        let cap = self.settings.max_sources_per_member;
        let mut capped = false;
        if sources.len() > cap {
            // Keep the sources the member already lists in this mode, then the lowest new
            // ones, so repeated reports give a stable set.
            let old = self
                .member(host, group)
                .filter(|m| m.mode == mode)
                .map(|m| &m.sources);
            let (mut kept, fresh): (BTreeSet<_>, BTreeSet<_>) = sources
                .iter()
                .partition(|s| old.is_some_and(|o| o.contains(s)));
            while kept.len() > cap {
                kept.pop_last();
            }
            let room = cap - kept.len();
            kept.extend(fresh.into_iter().take(room));
            sources = kept;
            capped = true;
        }
        if mode == FilterMode::Include && sources.is_empty() {
            if let Some(m) = self.remove_member(group, host) {
                ev.push(Event::Left {
                    host,
                    ip: m.ip,
                    group,
                    reason: LeaveReason::EmptyInclude,
                });
            }
            if capped {
                ev.push(Event::Ignored {
                    host,
                    group,
                    reason: IgnoreReason::SourcesLimit,
                });
            }
            return Applied::Absent;
        }
        let expires = now + self.settings.group_membership_interval();
        if let Some(m) = self.groups.get_mut(&group).and_then(|hs| hs.get_mut(&host)) {
            let changed = m.mode != mode || m.sources != sources;
            self.timers
                .remove(&(m.expires, TimerKey::Member(group, host)));
            self.timers.insert((expires, TimerKey::Member(group, host)));
            m.expires = expires;
            m.ip = ip;
            m.version = version;
            if changed {
                m.mode = mode;
                m.sources = sources;
                let sources = m.sources.iter().copied().collect();
                ev.push(Event::Changed {
                    host,
                    ip,
                    group,
                    mode,
                    sources,
                });
            }
        } else {
            let host_count = self.host_groups.get(&host).map_or(0, |g| g.len());
            if host_count >= self.settings.max_groups_per_host {
                ev.push(Event::Ignored {
                    host,
                    group,
                    reason: IgnoreReason::GroupsPerHostLimit,
                });
                return Applied::Rejected;
            }
            if self.count >= self.settings.max_members {
                ev.push(Event::Ignored {
                    host,
                    group,
                    reason: IgnoreReason::MembersLimit,
                });
                return Applied::Rejected;
            }
            let list = sources.iter().copied().collect();
            let m = Member {
                mode,
                sources,
                ip,
                version,
                expires,
                counters: Arc::default(),
            };
            self.groups.entry(group).or_default().insert(host, m);
            self.host_groups.entry(host).or_default().insert(group);
            self.count += 1;
            self.timers.insert((expires, TimerKey::Member(group, host)));
            ev.push(Event::Joined {
                host,
                ip,
                group,
                mode,
                sources: list,
            });
        }
        if capped {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::SourcesLimit,
            });
        }
        // A report answered the last-member queries: a member is there after all.
        self.cancel_last_member_queries(host.iface, group);
        Applied::Member
    }

    /// Remove one member and its indexes.
    fn remove_member(&mut self, group: Ipv4Addr, host: HostKey) -> Option<Member> {
        let hosts = self.groups.get_mut(&group)?;
        let m = hosts.remove(&host)?;
        if hosts.is_empty() {
            self.groups.remove(&group);
        }
        if let Some(gs) = self.host_groups.get_mut(&host) {
            gs.remove(&group);
            if gs.is_empty() {
                self.host_groups.remove(&host);
            }
        }
        self.count -= 1;
        self.timers
            .remove(&(m.expires, TimerKey::Member(group, host)));
        Some(m)
    }

    /// Start or refresh the Older Host Present timer of (iface, group) (RFC 3376 sections
    /// 7.3.2 and 8.13). Never for SSM groups (the caller has already ignored those).
    fn start_compat(
        &mut self,
        iface: IfaceId,
        group: Ipv4Addr,
        version: u8,
        now: Instant,
        ev: &mut Vec<Event>,
    ) {
        let until = now + self.settings.older_host_present_interval();
        let v1_until = (version == 1).then_some(until);
        let key = TimerKey::CompatEnd(iface, group);
        match self.compat.get_mut(&(iface, group)) {
            Some(c) => {
                self.timers.remove(&(c.until, key));
                c.until = until;
                if v1_until.is_some() {
                    c.v1_until = v1_until;
                }
            }
            None => {
                self.compat.insert(
                    (iface, group),
                    Compat {
                        until,
                        v1_until,
                        lmq: None,
                    },
                );
                ev.push(Event::CompatStarted {
                    iface,
                    group,
                    version,
                });
            }
        }
        self.timers.insert((until, key));
    }

    /// End compatibility mode of (iface, group) with its timers.
    fn end_compat(&mut self, iface: IfaceId, group: Ipv4Addr, ev: &mut Vec<Event>) {
        if let Some(c) = self.compat.remove(&(iface, group)) {
            self.timers
                .remove(&(c.until, TimerKey::CompatEnd(iface, group)));
            if let Some(l) = c.lmq {
                self.timers
                    .remove(&(l.next, TimerKey::LastMemberQuery(iface, group)));
            }
            ev.push(Event::CompatEnded { iface, group });
        }
    }

    /// The last-member queries of (iface, group) are due (their index entry, if any, is
    /// already gone): send the next query, or end compatibility mode once `robustness`
    /// queries went unanswered for a Last Member Query Interval each (RFC 2236 section 3,
    /// RFC 3376 sections 6.6.3.1, 8.8 and 8.9).
    fn last_member_query_step(&mut self, iface: IfaceId, group: Ipv4Addr, ev: &mut Vec<Event>) {
        let Some(c) = self.compat.get_mut(&(iface, group)) else {
            return;
        };
        let Some(l) = c.lmq.as_mut() else { return };
        if l.sent < self.settings.robustness {
            ev.push(Event::SendGroupQuery { iface, group });
            l.sent += 1;
            l.next += self.settings.last_member_query_interval;
            self.timers
                .insert((l.next, TimerKey::LastMemberQuery(iface, group)));
        } else {
            c.lmq = None;
            self.end_compat(iface, group, ev);
        }
    }

    fn cancel_last_member_queries(&mut self, iface: IfaceId, group: Ipv4Addr) {
        if let Some(c) = self.compat.get_mut(&(iface, group)) {
            if let Some(l) = c.lmq.take() {
                self.timers
                    .remove(&(l.next, TimerKey::LastMemberQuery(iface, group)));
            }
        }
    }

    fn has_member_on(&self, iface: IfaceId, group: Ipv4Addr) -> bool {
        self.groups
            .get(&group)
            .is_some_and(|hs| hs.range(iface_hosts(iface)).next().is_some())
    }

    /// The compatibility policy of `iface`; interfaces beyond the configured list get the
    /// default.
    fn fallback_of(&self, iface: IfaceId) -> CompatFallback {
        self.fallback.get(iface).copied().unwrap_or_default()
    }
}
