//! The membership table: which host (interface, MAC) wants which group from which sources.
//!
//! Pure: every input carries `now`, every change comes back as an [`Event`] for the runtime
//! to log or act on. One timer per (host, group): RFC 3376 section 6.4 keeps per-source timers
//! because a router only sees the union of many hosts; we see each host's own reports, so a
//! host's current-state record (section 3 / 4.2.12) states its whole filter for that group.

use super::family::GroupAddr;
/// Defined beside the forwarding snapshot, which carries them to the data path.
pub use super::fib::{FilterMode, MemberCounters};
use super::filter::GroupFilter;
use super::querier::{HeardQuery, Timers};
use super::IfaceId;
use crate::wire::igmp::{self, RecordType};
use crate::wire::mld;
use crate::wire::{MacAddr, Record};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// The configured timers.
    pub fn timers(&self) -> Timers {
        Timers {
            robustness: self.robustness,
            query_interval: self.query_interval,
            query_response_interval: self.query_response_interval,
        }
    }
    /// [`Timers::group_membership_interval`] of the configured timers.
    pub fn group_membership_interval(&self) -> Duration {
        self.timers().group_membership_interval()
    }
    /// [`Timers::older_host_present_interval`] of the configured timers.
    pub fn older_host_present_interval(&self) -> Duration {
        self.timers().older_host_present_interval()
    }
}

impl Timers {
    /// Group Membership Interval: robustness x QI + 2 x QRI (RFC 9776 section 8.4, RFC 9777
    /// section 9.4). RFC 3376 8.4 and RFC 3810 9.4 had one QRI; the revisions add the second
    /// so that a host answering late in the last query's response window is not expired
    /// just before its report arrives.
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval * 2
    }
    /// Older Host Present Interval: robustness x QI + QRI (RFC 3376 section 8.13, unchanged
    /// in RFC 9776 8.13; RFC 3810 9.13 and RFC 9777 9.13 for MLDv1 hosts).
    pub fn older_host_present_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval
    }
}

/// At most this many group-and-source-specific query windows are remembered at once.
const MAX_SOURCE_QUERIES: usize = 1024;

/// A group-and-source-specific query heard on an interface: within its response window a
/// host's IS_IN answers for the queried sources only (RFC 3376 sections 5.2 and 6.4.1,
/// RFC 3810 section 7.4).
#[derive(Debug, Clone)]
struct SourceQuery<A> {
    sources: BTreeSet<A>,
    until: Instant,
}

/// A host on a downstream interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    pub iface: IfaceId,
    pub mac: MacAddr,
}

/// One host's membership of one group.
#[derive(Debug, Clone)]
pub struct Member<A = Ipv4Addr> {
    pub mode: FilterMode,
    /// INCLUDE: the sources it wants. EXCLUDE: the sources it does not want.
    pub sources: BTreeSet<A>,
    /// The IPv4 source address of its last report (for status and logs).
    pub ip: A,
    /// IGMP version of its last report (1, 2 or 3).
    pub version: u8,
    pub expires: Instant,
    pub counters: Arc<MemberCounters>,
    /// Where one MAC reports from more than one address (a MAC-translating Wi-Fi repeater,
    /// a proxy-ARP bridge: several hosts behind one MAC), each address's own filter; then
    /// `mode` and `sources` are their union (the one copy per MAC carries what any of them
    /// wants), `version` the oldest and `expires` the earliest. Empty for one address.
    pub per_ip: BTreeMap<A, IpFilter<A>>,
}

/// One address's filter of a [`Member`] shared by several addresses behind one MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFilter<A> {
    pub mode: FilterMode,
    pub sources: BTreeSet<A>,
    pub version: u8,
    pub expires: Instant,
}

/// At most this many addresses share one MAC's membership of a group; a report from one
/// more is ignored (IgnoreReason::AddressesLimit), so one MAC cannot grow a member without
/// bound.
pub const MAX_ADDRESSES_PER_MAC: usize = 8;

/// The union of the filters of the addresses behind one MAC (as RFC 3376 3.2 merges
/// several sockets' filters): INCLUDE of the union when all are INCLUDE, else EXCLUDE of
/// what every EXCLUDE filter excludes minus what any INCLUDE filter wants.
fn union_filter<A: GroupAddr>(per_ip: &BTreeMap<A, IpFilter<A>>) -> (FilterMode, BTreeSet<A>) {
    let incl: BTreeSet<A> = per_ip
        .values()
        .filter(|f| f.mode == FilterMode::Include)
        .flat_map(|f| f.sources.iter().copied())
        .collect();
    let mut excl: Option<BTreeSet<A>> = None;
    for f in per_ip.values().filter(|f| f.mode == FilterMode::Exclude) {
        excl = Some(match excl {
            None => f.sources.clone(),
            Some(x) => &x & &f.sources,
        });
    }
    match excl {
        None => (FilterMode::Include, incl),
        Some(x) => (FilterMode::Exclude, &x - &incl),
    }
}

impl<A: GroupAddr> Member<A> {
    /// The filter the address `ip` itself stated, None when it has stated none.
    pub fn filter_of(&self, ip: A) -> Option<(FilterMode, &BTreeSet<A>)> {
        if self.per_ip.is_empty() {
            (self.ip == ip).then_some((self.mode, &self.sources))
        } else {
            self.per_ip.get(&ip).map(|f| (f.mode, &f.sources))
        }
    }

    /// Recompute the union fields from `per_ip`, or, with one address left, go back to
    /// being a one-address member.
    fn settle(&mut self) {
        if self.per_ip.len() == 1 {
            let (ip, f) = self.per_ip.pop_first().expect("one entry");
            self.ip = ip;
            self.mode = f.mode;
            self.sources = f.sources;
            self.version = f.version;
            self.expires = f.expires;
            return;
        }
        let (mode, sources) = union_filter(&self.per_ip);
        self.mode = mode;
        self.sources = sources;
        self.version = self
            .per_ip
            .values()
            .map(|f| f.version)
            .min()
            .unwrap_or(self.version);
        self.expires = self
            .per_ip
            .values()
            .map(|f| f.expires)
            .min()
            .unwrap_or(self.expires);
    }

    /// Whether this member wants traffic from `source` (RFC 3376 section 3.2 semantics).
    pub fn admits(&self, source: A) -> bool {
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
    /// A new configuration no longer admits its group (`--allow`/`--deny` changed).
    Filtered,
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
    /// The MAC already reports the group from [`MAX_ADDRESSES_PER_MAC`] addresses.
    AddressesLimit,
}

/// What changed; the runtime logs these and carries out the ones that need I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<A = Ipv4Addr> {
    /// A host became a member of a group.
    Joined {
        host: HostKey,
        ip: A,
        group: A,
        mode: FilterMode,
        sources: Vec<A>,
    },
    /// An existing member's filter changed.
    Changed {
        host: HostKey,
        ip: A,
        group: A,
        mode: FilterMode,
        sources: Vec<A>,
    },
    /// A member went away.
    Left {
        host: HostKey,
        ip: A,
        group: A,
        reason: LeaveReason,
    },
    /// An IGMPv1/v2 host appeared for (iface, group): compatibility mode began.
    CompatStarted {
        iface: IfaceId,
        group: A,
        version: u8,
    },
    /// The Older Host Present timer ran out (or the last-member queries went unanswered).
    CompatEnded { iface: IfaceId, group: A },
    /// The runtime should send an IGMP group-specific query for `group` on `iface`
    /// (last-member query while in compatibility mode, RFC 2236 section 3 / RFC 3376 6.6.3.1).
    SendGroupQuery { iface: IfaceId, group: A },
    /// Something in a report was ignored.
    Ignored {
        host: HostKey,
        group: A,
        reason: IgnoreReason,
    },
}

impl<A> Event<A> {
    /// Whether the event changes who gets what (and so the forwarding snapshot and the
    /// upstream joins): everything but ignored records and query requests.
    pub fn changes_state(&self) -> bool {
        !matches!(self, Event::Ignored { .. } | Event::SendGroupQuery { .. })
    }
}

/// What the upstream must join for one group: the union of what members want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamWant<A = Ipv4Addr> {
    /// Some member is in EXCLUDE mode and no source is excluded by all of them and wanted
    /// by none (or an older host is present): join (*, G).
    AnySource,
    /// Join (*, G) but block these sources: every EXCLUDE member excludes them and no
    /// INCLUDE member lists them (the merge of RFC 4605 section 4.1). Never empty.
    Exclude(BTreeSet<A>),
    /// Every member is INCLUDE: join (S, G) for each source in the union.
    Sources(BTreeSet<A>),
}

/// A pending timer. Each one is indexed exactly once in `Table::timers` under the instant it
/// fires; whoever moves or drops the timer moves or drops the index entry, so the index
/// never holds stale entries and its first element is the next deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey<A> {
    /// A member's group membership timer.
    Member(A, HostKey),
    /// The Older Host Present timer of (iface, group).
    CompatEnd(IfaceId, A),
    /// The next step of the last-member queries of (iface, group).
    LastMemberQuery(IfaceId, A),
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
pub struct Table<A = Ipv4Addr> {
    settings: Settings,
    filter: GroupFilter,
    /// Per downstream interface, indexed by IfaceId.
    fallback: Vec<CompatFallback>,
    /// Members by group, then host: the order of `members()`.
    groups: BTreeMap<A, BTreeMap<HostKey, Member<A>>>,
    /// The groups of each host (for the per-host limit and `remove_iface`).
    host_groups: BTreeMap<HostKey, BTreeSet<A>>,
    /// Number of members, the sum over `groups`.
    count: usize,
    /// (iface, group) pairs in IGMPv1/v2 compatibility mode.
    compat: BTreeMap<(IfaceId, A), Compat>,
    /// Every pending timer, ordered by when it fires.
    timers: BTreeSet<(Instant, TimerKey<A>)>,
    /// Per interface, the timers its querier says the link runs by (None: `settings`).
    iface_timers: Vec<Option<Timers>>,
    /// The group-and-source-specific queries whose response window is open.
    source_queries: BTreeMap<(IfaceId, A), SourceQuery<A>>,
}

/// The first and last host keys of an interface, for range scans.
fn iface_hosts(iface: IfaceId) -> std::ops::RangeInclusive<HostKey> {
    HostKey {
        iface,
        mac: MacAddr(0, 0, 0, 0, 0, 0),
    }..=HostKey {
        iface,
        mac: MacAddr(0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    }
}

impl<A: GroupAddr> Table<A> {
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
            iface_timers: Vec::new(),
            source_queries: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The timers of `iface`: what its querier adopted, or the configured ones.
    pub fn timers(&self, iface: IfaceId) -> Timers {
        self.iface_timers
            .get(iface)
            .copied()
            .flatten()
            .unwrap_or_else(|| self.settings.timers())
    }

    /// Run `iface`'s membership by `timers` from the next report on (None: the configured
    /// ones). The querier decides: as non-querier, the elected querier's (RFC 3376 4.1.6,
    /// 4.1.7). Timers already running keep their deadline.
    pub fn set_timers(&mut self, iface: IfaceId, timers: Option<Timers>) {
        if self.iface_timers.len() <= iface {
            self.iface_timers.resize(iface + 1, None);
        }
        self.iface_timers[iface] = timers.filter(|t| *t != self.settings.timers());
    }

    /// A group-and-source-specific query for `q.group` and `q.sources` was heard on `iface`:
    /// until its Max Resp Time has passed, a host's IS_IN record for the group answers for
    /// those sources only (RFC 3376 sections 5.2 and 6.4.1, RFC 3810 section 7.4). A
    /// retransmission within the window adds its sources and restarts it.
    pub fn note_query(&mut self, iface: IfaceId, q: &HeardQuery<A>, now: Instant) {
        if q.is_general() || q.sources.is_empty() {
            return;
        }
        if self.source_queries.len() >= MAX_SOURCE_QUERIES {
            self.source_queries.retain(|_, w| w.until > now);
        }
        let until = now + q.max_resp;
        let full = self.source_queries.len() >= MAX_SOURCE_QUERIES;
        match self.source_queries.get_mut(&(iface, q.group)) {
            Some(w) if w.until > now => {
                w.sources.extend(q.sources.iter().copied());
                w.until = w.until.max(until);
            }
            None if full => {}
            _ => {
                self.source_queries.insert(
                    (iface, q.group),
                    SourceQuery {
                        sources: q.sources.iter().copied().collect(),
                        until,
                    },
                );
            }
        }
    }

    /// The sources queried by an open group-and-source-specific query window of (iface,
    /// group), dropping a closed one.
    fn queried_sources(&mut self, iface: IfaceId, group: A, now: Instant) -> Option<&BTreeSet<A>> {
        let key = (iface, group);
        if self.source_queries.get(&key)?.until <= now {
            self.source_queries.remove(&key);
            return None;
        }
        self.source_queries.get(&key).map(|w| &w.sources)
    }

    /// Run timers due at `now`: member expiry, compat-mode end, last-member queries.
    pub fn poll(&mut self, now: Instant) -> Vec<Event<A>> {
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
                    if self.expire_addresses(group, host, at, &mut ev) {
                        continue;
                    }
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

    /// A shared member's timer ran out at `at`: drop the addresses silent since, keep the
    /// others (true) or let the member go (false, also for a one-address member).
    fn expire_addresses(
        &mut self,
        group: A,
        host: HostKey,
        at: Instant,
        ev: &mut Vec<Event<A>>,
    ) -> bool {
        let Some(m) = self.groups.get_mut(&group).and_then(|hs| hs.get_mut(&host)) else {
            return false;
        };
        if m.per_ip.is_empty() {
            return false;
        }
        m.per_ip.retain(|_, f| f.expires > at);
        if m.per_ip.is_empty() {
            return false;
        }
        // The timer that ran out is already off the index.
        self.resettle(group, host, None, ev);
        true
    }

    /// A shared member's per-address filters changed: recompute the union, move its timer
    /// from `old_expires` (None: already off the index) to the new earliest expiry, and
    /// report a change of the union.
    fn resettle(
        &mut self,
        group: A,
        host: HostKey,
        old_expires: Option<Instant>,
        ev: &mut Vec<Event<A>>,
    ) {
        let Some(m) = self.groups.get_mut(&group).and_then(|hs| hs.get_mut(&host)) else {
            return;
        };
        let (old_mode, before) = (m.mode, m.sources.clone());
        m.settle();
        let changed = m.mode != old_mode || m.sources != before;
        let (new_expires, mode, list, ip) =
            (m.expires, m.mode, m.sources.iter().copied().collect(), m.ip);
        if let Some(t) = old_expires {
            self.timers.remove(&(t, TimerKey::Member(group, host)));
        }
        self.timers
            .insert((new_expires, TimerKey::Member(group, host)));
        if changed {
            ev.push(Event::Changed {
                host,
                ip,
                group,
                mode,
                sources: list,
            });
        }
    }

    /// The earliest instant at which `poll` has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Drop every member of `iface` (the interface vanished). Its compatibility state goes
    /// too, each with a `CompatEnded` so every `CompatStarted` has its end.
    pub fn remove_iface(&mut self, iface: IfaceId) -> Vec<Event<A>> {
        let mut ev = Vec::new();
        let pairs: Vec<(HostKey, A)> = self
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
        let lo = (iface, A::MIN);
        let hi = (iface, A::MAX);
        self.source_queries.retain(|&(i, _), _| i != iface);
        let compat: Vec<A> = self.compat.range(lo..=hi).map(|(&(_, g), _)| g).collect();
        for group in compat {
            self.end_compat(iface, group, &mut ev);
        }
        ev
    }

    /// Take a new configuration (a reload). Members of groups the new filter no longer
    /// admits leave at once (and compatibility state for them ends); every other member
    /// keeps its filter and its timers, which take the new intervals at its next report.
    /// Lowered limits stop new members; existing ones are kept.
    pub fn reconfigure(
        &mut self,
        settings: Settings,
        filter: GroupFilter,
        fallback: Vec<CompatFallback>,
    ) -> Vec<Event<A>> {
        let mut ev = Vec::new();
        self.settings = settings;
        self.filter = filter;
        self.fallback = fallback;
        let gone: Vec<(A, HostKey)> = self
            .members()
            .filter(|(g, _, _)| !self.filter.admits(*g))
            .map(|(g, h, _)| (g, h))
            .collect();
        for (group, host) in gone {
            if let Some(m) = self.remove_member(group, host) {
                ev.push(Event::Left {
                    host,
                    ip: m.ip,
                    group,
                    reason: LeaveReason::Filtered,
                });
            }
        }
        let compat: Vec<(IfaceId, A)> = self
            .compat
            .keys()
            .filter(|(_, g)| !self.filter.admits(*g))
            .copied()
            .collect();
        for (iface, group) in compat {
            self.end_compat(iface, group, &mut ev);
        }
        ev
    }

    /// Number of groups with at least one member.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of (host, group) members.
    pub fn member_count(&self) -> usize {
        self.count
    }

    /// Every member, ordered by group then host.
    pub fn members(&self) -> impl Iterator<Item = (A, HostKey, &Member<A>)> + '_ {
        self.groups
            .iter()
            .flat_map(|(g, hosts)| hosts.iter().map(move |(h, m)| (*g, *h, m)))
    }

    /// One host's membership of one group, if any.
    pub fn member(&self, host: HostKey, group: A) -> Option<&Member<A>> {
        self.groups.get(&group)?.get(&host)
    }

    /// Whether (iface, group) is in IGMPv1/v2 compatibility mode, and until when.
    pub fn compat_until(&self, iface: IfaceId, group: A) -> Option<Instant> {
        self.compat.get(&(iface, group)).map(|c| c.until)
    }

    /// What upstream must join: one entry per group with at least one member or one
    /// interface in compatibility mode.
    pub fn upstream_wants(&self) -> BTreeMap<A, UpstreamWant<A>> {
        // An older host present means someone wants (*, G) whose filter we cannot see
        // (IGMPv1/v2 reports are EXCLUDE{}, RFC 3376 section 7.3.2), so compat forces ASM.
        let mut out: BTreeMap<A, UpstreamWant<A>> = self
            .compat
            .keys()
            .map(|&(_, g)| (g, UpstreamWant::AnySource))
            .collect();
        for (&group, hosts) in &self.groups {
            if out.contains_key(&group) {
                continue;
            }
            // The merge of RFC 4605 section 4.1 (RFC 3376 section 3.2): with any EXCLUDE
            // member the result is EXCLUDE of the sources every EXCLUDE member excludes,
            // minus those an INCLUDE member wants; else INCLUDE of the union.
            let mut union = BTreeSet::new();
            let mut excluded: Option<BTreeSet<A>> = None;
            for m in hosts.values() {
                match m.mode {
                    FilterMode::Exclude => {
                        excluded = Some(match excluded {
                            None => m.sources.clone(),
                            Some(x) => &x & &m.sources,
                        })
                    }
                    FilterMode::Include => union.extend(m.sources.iter().copied()),
                }
            }
            let want = match excluded {
                None => UpstreamWant::Sources(union),
                Some(x) => {
                    let x: BTreeSet<A> = &x - &union;
                    if x.is_empty() {
                        UpstreamWant::AnySource
                    } else {
                        UpstreamWant::Exclude(x)
                    }
                }
            };
            out.insert(group, want);
        }
        out
    }

    /// Build the forwarding snapshot the data path reads (each group with fresh traffic
    /// counters: the owner attaches the kept ones, see `fib::GroupTraffic`).
    pub fn forwarding(&self) -> crate::core::fib::Fib<A> {
        use crate::core::fib::{Fib, FibMember, GroupFwd};
        // Interfaces that get a group as one L2 multicast copy: compat mode with the
        // Multicast fallback (silent, report-suppressed v1/v2 hosts, RFC 2236 section 3).
        let mut multicast: BTreeMap<A, Vec<IfaceId>> = BTreeMap::new();
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
                    traffic: Arc::default(),
                },
            );
        }
        for (group, mc) in multicast {
            fib.groups.insert(
                group,
                GroupFwd {
                    multicast_ifaces: mc,
                    members: Vec::new(),
                    traffic: Arc::default(),
                },
            );
        }
        fib
    }

    // ----- inputs -----

    /// IGMPv1 (RFC 1112) / IGMPv2 (RFC 2236) membership report: the host wants every source,
    /// EXCLUDE{} (RFC 3376 section 7.3.2), and an older host is present on the interface.
    fn accept_old_report(
        &mut self,
        host: HostKey,
        ip: A,
        group: A,
        version: u8,
        now: Instant,
        ev: &mut Vec<Event<A>>,
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
        if group.is_ssm() {
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
    fn accept_leave(
        &mut self,
        host: HostKey,
        ip: A,
        group: A,
        now: Instant,
        ev: &mut Vec<Event<A>>,
    ) {
        if !self.filter.admits(group) {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::GroupFiltered,
            });
            return;
        }
        // RFC 4604 section 2.2: IGMPv1/v2 messages carry no membership for SSM groups.
        if group.is_ssm() {
            ev.push(Event::Ignored {
                host,
                group,
                reason: IgnoreReason::SsmExclude,
            });
            return;
        }
        if self.is_shared(host, group, ip) {
            // One of several addresses behind the MAC leaves (issue 15 defect 7).
            self.drop_address(host, ip, group, ev);
        } else if let Some(m) = self.remove_member(group, host) {
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
    #[allow(clippy::too_many_arguments)]
    fn accept_record(
        &mut self,
        host: HostKey,
        ip: A,
        record_type: RecordType,
        group: A,
        sources: &[A],
        now: Instant,
        ev: &mut Vec<Event<A>>,
    ) {
        // RFC 3376 section 4.2.12, RFC 3810 section 5.2.12: records of an unknown type are
        // ignored.
        if let RecordType::Unknown(_) = record_type {
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
        let b: BTreeSet<A> = sources.iter().copied().collect();
        let queried = match record_type {
            RecordType::ModeIsInclude => self.queried_sources(host.iface, group, now).cloned(),
            _ => None,
        };
        let current = self.member(host, group).and_then(|m| m.filter_of(ip));
        use FilterMode::{Exclude, Include};
        let (mode, sources) = match (record_type, current) {
            // IS_IN(C) answering a query for sources Q: it speaks for Q only, so INCLUDE(A)
            // becomes INCLUDE((A-Q)+C) and EXCLUDE(X) becomes EXCLUDE((X-Q)+(Q-C)) (RFC 3376
            // sections 5.2 and 6.4.1, RFC 3810 section 7.4).
            (RecordType::ModeIsInclude, Some((Include, a))) if queried.is_some() => {
                let q = queried.as_ref().expect("checked");
                (Include, &(a - q) | &b)
            }
            (RecordType::ModeIsInclude, Some((Exclude, x))) if queried.is_some() => {
                let q = queried.as_ref().expect("checked");
                (Exclude, &(x - q) | &(q - &b))
            }
            // IS_IN(B) / TO_IN(B): the filter becomes INCLUDE(B) (sections 4.2.12, 4.2.13).
            (RecordType::ModeIsInclude | RecordType::ChangeToInclude, _) => (Include, b),
            // IS_EX(B) / TO_EX(B): EXCLUDE(B). Not in the SSM range, where only INCLUDE
            // membership exists (RFC 4604 section 2.2).
            (RecordType::ModeIsExclude | RecordType::ChangeToExclude, _) => {
                if group.is_ssm() {
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
        self.set_filter(host, ip, group, A::FILTER_VERSION, mode, sources, now, ev);
    }

    // ----- state changes -----

    /// Make `host`'s filter for `group` (mode, sources), refreshing its timer; create or remove
    /// the member as needed, within the limits. An empty INCLUDE filter means "not a member"
    /// (RFC 3376 section 3.2).
    #[allow(clippy::too_many_arguments)]
    fn set_filter(
        &mut self,
        host: HostKey,
        ip: A,
        group: A,
        version: u8,
        mode: FilterMode,
        mut sources: BTreeSet<A>,
        now: Instant,
        ev: &mut Vec<Event<A>>,
    ) -> Applied {
        let cap = self.settings.max_sources_per_member;
        let mut capped = false;
        if sources.len() > cap {
            // Keep the sources the member already lists in this mode, then the lowest new
            // ones, so repeated reports give a stable set.
            let old = self
                .member(host, group)
                .and_then(|m| m.filter_of(ip))
                .filter(|(m, _)| *m == mode)
                .map(|(_, s)| s);
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
            if self.is_shared(host, group, ip) {
                // One of several addresses behind the MAC leaves; the others stay.
                self.drop_address(host, ip, group, ev);
            } else if let Some(m) = self.remove_member(group, host) {
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
        let expires = now + self.timers(host.iface).group_membership_interval();
        if self.is_shared(host, group, ip) {
            let m = self
                .groups
                .get_mut(&group)
                .and_then(|hs| hs.get_mut(&host))
                .expect("a shared member exists");
            // Issue 15 defect 7: another address behind the same MAC keeps its own filter;
            // the MAC's one copy carries the union.
            if !m.per_ip.contains_key(&ip) && m.per_ip.len().max(1) >= MAX_ADDRESSES_PER_MAC {
                ev.push(Event::Ignored {
                    host,
                    group,
                    reason: IgnoreReason::AddressesLimit,
                });
                return Applied::Rejected;
            }
            let old_expires = m.expires;
            if m.per_ip.is_empty() {
                let first = IpFilter {
                    mode: m.mode,
                    sources: m.sources.clone(),
                    version: m.version,
                    expires: m.expires,
                };
                m.per_ip.insert(m.ip, first);
            }
            m.per_ip.insert(
                ip,
                IpFilter {
                    mode,
                    sources,
                    version,
                    expires,
                },
            );
            m.ip = ip;
            self.resettle(group, host, Some(old_expires), ev);
        } else if let Some(m) = self.groups.get_mut(&group).and_then(|hs| hs.get_mut(&host)) {
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
                per_ip: BTreeMap::new(),
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

    /// Whether `host`'s membership of `group` is (or, with a report from `ip`, becomes)
    /// shared by several addresses behind its MAC.
    fn is_shared(&self, host: HostKey, group: A, ip: A) -> bool {
        self.member(host, group)
            .is_some_and(|m| !m.per_ip.is_empty() || m.ip != ip)
    }

    /// The address `ip` of a shared member leaves (a leave, TO_IN{}): the member keeps the
    /// others' union. Nothing when `ip` stated no filter.
    fn drop_address(&mut self, host: HostKey, ip: A, group: A, ev: &mut Vec<Event<A>>) {
        let Some(m) = self.groups.get_mut(&group).and_then(|hs| hs.get_mut(&host)) else {
            return;
        };
        if m.per_ip.remove(&ip).is_none() {
            return;
        }
        let old_expires = m.expires;
        self.resettle(group, host, Some(old_expires), ev);
    }

    /// Remove one member and its indexes.
    fn remove_member(&mut self, group: A, host: HostKey) -> Option<Member<A>> {
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
        group: A,
        version: u8,
        now: Instant,
        ev: &mut Vec<Event<A>>,
    ) {
        let until = now + self.timers(iface).older_host_present_interval();
        let v1_until = A::ignores_leaves(version).then_some(until);
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
    fn end_compat(&mut self, iface: IfaceId, group: A, ev: &mut Vec<Event<A>>) {
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
    fn last_member_query_step(&mut self, iface: IfaceId, group: A, ev: &mut Vec<Event<A>>) {
        let robustness = self.timers(iface).robustness;
        let Some(c) = self.compat.get_mut(&(iface, group)) else {
            return;
        };
        let Some(l) = c.lmq.as_mut() else { return };
        if l.sent < robustness {
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

    fn cancel_last_member_queries(&mut self, iface: IfaceId, group: A) {
        if let Some(c) = self.compat.get_mut(&(iface, group)) {
            if let Some(l) = c.lmq.take() {
                self.timers
                    .remove(&(l.next, TimerKey::LastMemberQuery(iface, group)));
            }
        }
    }

    fn has_member_on(&self, iface: IfaceId, group: A) -> bool {
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

/// A group message heard from a downstream host, in the terms both families share: IGMPv1/v2
/// and MLDv1 reports are old-version reports, an IGMPv2 leave and an MLDv1 Done are leaves,
/// IGMPv3 group records and MLDv2 address records are records (RFC 3810 section 8.3.2 and
/// sections 5.2.12 and 6.4: the same state tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard<A = Ipv4Addr> {
    /// A query (general or specific) of IGMP version 1, 2 or 3 (MLD 1 or 2): it goes to the
    /// querier election and the timers, and (group-and-source-specific) to
    /// [`Table::note_query`].
    Query(HeardQuery<A>),
    /// IGMPv1 (RFC 1112), IGMPv2 (RFC 2236) or MLDv1 (RFC 2710) report of `version`.
    OldReport { version: u8, group: A },
    /// IGMPv2 Leave Group or MLDv1 Done.
    Leave { group: A },
    /// IGMPv3 or MLDv2 current-state and state-change records.
    Records(Vec<Record<A>>),
}

impl<A> Heard<A> {
    /// Records and sources carried, plus one (the measure queues of parsed messages use).
    pub fn weight(&self) -> usize {
        1 + match self {
            Heard::Records(r) => r.iter().map(|r| 1 + r.sources.len()).sum::<usize>(),
            Heard::Query(q) => q.sources.len(),
            _ => 0,
        }
    }
}

impl From<igmp::Message> for Heard<Ipv4Addr> {
    fn from(m: igmp::Message) -> Self {
        use igmp::Message;
        match m {
            Message::Query(q) => Heard::Query(HeardQuery {
                version: match q.version {
                    igmp::QueryVersion::V1 => 1,
                    igmp::QueryVersion::V2 => 2,
                    igmp::QueryVersion::V3 => 3,
                },
                // RFC 2236 section 4: a v1 query's 0 is taken as 100 (10 s).
                max_resp: if q.version == igmp::QueryVersion::V1 {
                    Duration::from_secs(10)
                } else {
                    q.max_resp
                },
                group: q.group,
                s_flag: q.s_flag,
                qrv: q.qrv,
                qqi: q.qqi,
                sources: q.sources,
            }),
            Message::ReportV1 { group } => Heard::OldReport { version: 1, group },
            Message::ReportV2 { group } => Heard::OldReport { version: 2, group },
            Message::LeaveV2 { group } => Heard::Leave { group },
            Message::ReportV3 { records } => Heard::Records(records),
        }
    }
}

impl From<mld::Message> for Heard<Ipv6Addr> {
    fn from(m: mld::Message) -> Self {
        use mld::Message;
        match m {
            Message::Query(q) => Heard::Query(HeardQuery {
                version: match q.version {
                    mld::QueryVersion::V1 => 1,
                    mld::QueryVersion::V2 => 2,
                },
                max_resp: q.max_resp,
                group: q.group,
                s_flag: q.s_flag,
                qrv: q.qrv,
                qqi: q.qqi,
                sources: q.sources,
            }),
            Message::ReportV1 { group } => Heard::OldReport { version: 1, group },
            Message::DoneV1 { group } => Heard::Leave { group },
            Message::ReportV2 { records } => Heard::Records(records),
        }
    }
}

impl<A: GroupAddr> Table<A> {
    /// Apply one report or leave heard from `host` whose IP source is `ip`. Queries are not
    /// handled here (they go to the querier) and are ignored. A host with no state that sends
    /// BLOCK is ignored; ALLOW creates INCLUDE.
    pub fn accept(&mut self, host: HostKey, ip: A, msg: &Heard<A>, now: Instant) -> Vec<Event<A>> {
        let mut ev = Vec::new();
        match msg {
            Heard::Query(_) => {}
            Heard::OldReport { version, group } => {
                self.accept_old_report(host, ip, *group, *version, now, &mut ev)
            }
            Heard::Leave { group } => self.accept_leave(host, ip, *group, now, &mut ev),
            Heard::Records(records) => {
                for r in records {
                    self.accept_record(host, ip, r.record_type, r.group, &r.sources, now, &mut ev);
                }
            }
        }
        ev
    }
}

impl Table<Ipv4Addr> {
    /// [`Table::accept`] of an IGMP message (v1, v2, v3 report or v2 leave).
    pub fn accept_report(
        &mut self,
        host: HostKey,
        ip: Ipv4Addr,
        msg: &igmp::Message,
        now: Instant,
    ) -> Vec<Event> {
        self.accept(host, ip, &Heard::from(msg.clone()), now)
    }
}

impl Table<Ipv6Addr> {
    /// [`Table::accept`] of an MLD message (v1, v2 report or v1 Done).
    pub fn accept_mld(
        &mut self,
        host: HostKey,
        ip: Ipv6Addr,
        msg: &mld::Message,
        now: Instant,
    ) -> Vec<Event<Ipv6Addr>> {
        self.accept(host, ip, &Heard::from(msg.clone()), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fib::Target;
    use crate::core::filter::Ipv4Cidr;
    use crate::wire::igmp::{GroupRecord, Message};
    use crate::wire::ipv4::is_ssm_group;
    use std::sync::atomic::Ordering;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);
    const SSM: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    fn host(iface: IfaceId, n: u8) -> HostKey {
        HostKey {
            iface,
            mac: MacAddr(2, 0, 0, 0, iface as u8, n),
        }
    }
    fn hip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }
    fn src(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }
    fn set(ns: &[u8]) -> BTreeSet<Ipv4Addr> {
        ns.iter().map(|&n| src(n)).collect()
    }
    fn v3(record_type: RecordType, group: Ipv4Addr, ns: &[u8]) -> Message {
        Message::ReportV3 {
            records: vec![GroupRecord {
                record_type,
                group,
                sources: ns.iter().map(|&n| src(n)).collect(),
            }],
        }
    }
    /// GMI = 2 x 10 s + 2 x 2 s = 24 s (RFC 9776 8.4), Older Host Present Interval 22 s, LMQI = 1 s.
    fn settings() -> Settings {
        Settings {
            robustness: 2,
            query_interval: secs(10),
            query_response_interval: secs(2),
            last_member_query_interval: secs(1),
            ..Settings::default()
        }
    }
    /// Interface 0 falls back to multicast, interface 1 stays unicast.
    fn table() -> Table {
        Table::new(
            settings(),
            GroupFilter::default(),
            vec![CompatFallback::Multicast, CompatFallback::Unicast],
        )
    }
    fn state(t: &Table, h: HostKey, g: Ipv4Addr) -> Option<(FilterMode, BTreeSet<Ipv4Addr>)> {
        t.member(h, g).map(|m| (m.mode, m.sources.clone()))
    }
    fn ignored<A>(ev: &[Event<A>]) -> Vec<IgnoreReason> {
        ev.iter()
            .filter_map(|e| {
                if let Event::Ignored { reason, .. } = e {
                    Some(*reason)
                } else {
                    None
                }
            })
            .collect()
    }
    fn queries<A>(ev: &[Event<A>]) -> usize {
        ev.iter()
            .filter(|e| matches!(e, Event::SendGroupQuery { .. }))
            .count()
    }
    fn targets(fib: &crate::core::fib::Fib, s: Ipv4Addr, g: Ipv4Addr) -> Vec<Target> {
        let mut out = Vec::new();
        let mut counters = Vec::new();
        fib.targets(s, g, &mut out, &mut counters);
        out
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Ev {
        None,
        Joined,
        Changed,
        Left,
    }

    #[test]
    fn v3_records_in_every_starting_state() {
        use FilterMode::{Exclude as Ex, Include as In};
        use RecordType::*;
        type S = Option<(FilterMode, &'static [u8])>;
        // (start state, record, sources, end state, event)
        let cases: &[(S, RecordType, &[u8], S, Ev)] = &[
            // No state: the host's filter is INCLUDE{} (RFC 3376 section 3.2).
            (
                None,
                ModeIsInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Joined,
            ),
            (
                None,
                ChangeToInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Joined,
            ),
            (
                None,
                ModeIsExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Joined,
            ),
            (
                None,
                ChangeToExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Joined,
            ),
            (None, AllowNew, &[2, 3], Some((In, &[2, 3])), Ev::Joined),
            (None, BlockOld, &[2, 3], None, Ev::None),
            (None, ModeIsInclude, &[], None, Ev::None),
            (None, ChangeToInclude, &[], None, Ev::None),
            (None, AllowNew, &[], None, Ev::None),
            (None, ChangeToExclude, &[], Some((Ex, &[])), Ev::Joined),
            // INCLUDE{1,2}
            (
                Some((In, &[1, 2])),
                ModeIsInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((In, &[1, 2])),
                ChangeToInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((In, &[1, 2])),
                ModeIsExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((In, &[1, 2])),
                ChangeToExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((In, &[1, 2])),
                AllowNew,
                &[2, 3],
                Some((In, &[1, 2, 3])),
                Ev::Changed,
            ),
            (
                Some((In, &[1, 2])),
                BlockOld,
                &[2, 3],
                Some((In, &[1])),
                Ev::Changed,
            ),
            (Some((In, &[1, 2])), BlockOld, &[1, 2, 3], None, Ev::Left),
            (Some((In, &[1, 2])), ModeIsInclude, &[], None, Ev::Left),
            (Some((In, &[1, 2])), ChangeToInclude, &[], None, Ev::Left),
            (
                Some((In, &[1, 2])),
                ModeIsInclude,
                &[1, 2],
                Some((In, &[1, 2])),
                Ev::None,
            ),
            (
                Some((In, &[1, 2])),
                AllowNew,
                &[1],
                Some((In, &[1, 2])),
                Ev::None,
            ),
            (
                Some((In, &[1, 2])),
                BlockOld,
                &[7],
                Some((In, &[1, 2])),
                Ev::None,
            ),
            // EXCLUDE{1,2}
            (
                Some((Ex, &[1, 2])),
                ModeIsInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                ChangeToInclude,
                &[2, 3],
                Some((In, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                ModeIsExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                ChangeToExclude,
                &[2, 3],
                Some((Ex, &[2, 3])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                AllowNew,
                &[2, 3],
                Some((Ex, &[1])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                AllowNew,
                &[1, 2],
                Some((Ex, &[])),
                Ev::Changed,
            ),
            (
                Some((Ex, &[1, 2])),
                BlockOld,
                &[2, 3],
                Some((Ex, &[1, 2, 3])),
                Ev::Changed,
            ),
            (Some((Ex, &[1, 2])), ChangeToInclude, &[], None, Ev::Left),
            (
                Some((Ex, &[1, 2])),
                ModeIsExclude,
                &[2, 1],
                Some((Ex, &[1, 2])),
                Ev::None,
            ),
            (
                Some((Ex, &[1, 2])),
                BlockOld,
                &[1],
                Some((Ex, &[1, 2])),
                Ev::None,
            ),
        ];
        let t0 = Instant::now();
        let h = host(0, 1);
        for (i, &(start, rt, b, end, want)) in cases.iter().enumerate() {
            let mut t = table();
            if let Some((mode, a)) = start {
                let rt0 = if mode == In {
                    ModeIsInclude
                } else {
                    ModeIsExclude
                };
                t.accept_report(h, hip(1), &v3(rt0, G, a), t0);
            }
            let ev = t.accept_report(h, hip(1), &v3(rt, G, b), t0 + secs(5));
            let got = match ev.as_slice() {
                [] => Ev::None,
                [Event::Joined { .. }] => Ev::Joined,
                [Event::Changed { .. }] => Ev::Changed,
                [Event::Left {
                    reason: LeaveReason::EmptyInclude,
                    ..
                }] => Ev::Left,
                other => panic!("case {i}: unexpected events {other:?}"),
            };
            assert_eq!(got, want, "case {i}: event");
            assert_eq!(
                state(&t, h, G),
                end.map(|(m, s)| (m, set(s))),
                "case {i}: state"
            );
            if let Some(m) = t.member(h, G) {
                // Every record refreshes the one timer, plain refreshes included.
                assert_eq!(m.expires, t0 + secs(5 + 24), "case {i}: timer");
                assert_eq!(m.version, 3);
            }
            assert_eq!(
                t.member_count(),
                usize::from(end.is_some()),
                "case {i}: count"
            );
        }
    }

    #[test]
    fn events_carry_host_ip_group_mode_and_sorted_sources() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        let ev = t.accept_report(h, hip(1), &v3(RecordType::AllowNew, G, &[9, 3]), t0);
        assert_eq!(
            ev,
            vec![Event::Joined {
                host: h,
                ip: hip(1),
                group: G,
                mode: FilterMode::Include,
                sources: vec![src(3), src(9)]
            }]
        );
        // A new IP is recorded, but is no change of the filter.
        assert!(t
            .accept_report(h, hip(7), &v3(RecordType::ModeIsInclude, G, &[3, 9]), t0)
            .is_empty());
        assert_eq!(t.member(h, G).unwrap().ip, hip(7));
        let ev = t.accept_report(h, hip(7), &v3(RecordType::ChangeToExclude, G, &[]), t0);
        assert_eq!(
            ev,
            vec![Event::Changed {
                host: h,
                ip: hip(7),
                group: G,
                mode: FilterMode::Exclude,
                sources: vec![]
            }]
        );
    }

    #[test]
    fn unknown_record_is_ignored_and_others_in_the_report_apply() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        let msg = Message::ReportV3 {
            records: vec![
                GroupRecord {
                    record_type: RecordType::Unknown(9),
                    group: G,
                    sources: vec![],
                },
                GroupRecord {
                    record_type: RecordType::ChangeToExclude,
                    group: G2,
                    sources: vec![],
                },
            ],
        };
        let ev = t.accept_report(h, hip(1), &msg, t0);
        assert_eq!(
            ev[0],
            Event::Ignored {
                host: h,
                group: G,
                reason: IgnoreReason::UnknownRecord
            }
        );
        assert!(matches!(ev[1], Event::Joined { group: G2, .. }));
        assert_eq!(t.member_count(), 1);
    }

    #[test]
    fn queries_are_ignored() {
        let mut t = table();
        let q = crate::wire::igmp::Query {
            version: crate::wire::igmp::QueryVersion::V2,
            max_resp: secs(10),
            group: Ipv4Addr::UNSPECIFIED,
            s_flag: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: vec![],
        };
        assert!(t
            .accept_report(host(0, 1), hip(1), &Message::Query(q), Instant::now())
            .is_empty());
        assert_eq!(t.member_count(), 0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn v1_v2_report_and_leave() {
        let mut t = table();
        let t0 = Instant::now();
        let (a, b) = (host(1, 1), host(1, 2));
        let ev = t.accept_report(a, hip(1), &Message::ReportV2 { group: G }, t0);
        assert_eq!(
            ev,
            vec![
                Event::Joined {
                    host: a,
                    ip: hip(1),
                    group: G,
                    mode: FilterMode::Exclude,
                    sources: vec![]
                },
                Event::CompatStarted {
                    iface: 1,
                    group: G,
                    version: 2
                },
            ]
        );
        let ev = t.accept_report(b, hip(2), &Message::ReportV1 { group: G }, t0);
        assert!(
            matches!(ev.as_slice(), [Event::Joined { .. }]),
            "compat refresh is silent: {ev:?}"
        );
        assert_eq!(t.member(b, G).unwrap().version, 1);
        assert_eq!(t.member(a, G).unwrap().version, 2);
        // Leave: that host goes at once, the other stays.
        let ev = t.accept_report(a, hip(1), &Message::LeaveV2 { group: G }, t0 + secs(1));
        assert_eq!(
            ev,
            vec![Event::Left {
                host: a,
                ip: hip(1),
                group: G,
                reason: LeaveReason::Leave
            }]
        );
        assert!(t.member(a, G).is_none());
        assert!(t.member(b, G).is_some());
        // A leave from a host that is not a member changes nothing (and the unicast
        // fallback needs no queries).
        let ev = t.accept_report(a, hip(1), &Message::LeaveV2 { group: G }, t0 + secs(1));
        assert!(ev.is_empty());
        let ev = t.accept_report(b, hip(2), &Message::LeaveV2 { group: G }, t0 + secs(2));
        assert_eq!(
            ev,
            vec![Event::Left {
                host: b,
                ip: hip(2),
                group: G,
                reason: LeaveReason::Leave
            }]
        );
        assert_eq!(t.member_count(), 0);
        // Compat is still tracked for status until its own timer.
        assert_eq!(t.compat_until(1, G), Some(t0 + secs(22)));
    }

    #[test]
    fn v2_report_turns_an_include_member_into_exclude_all() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsInclude, G, &[1]), t0);
        let ev = t.accept_report(h, hip(1), &Message::ReportV2 { group: G }, t0);
        assert!(matches!(
            ev[0],
            Event::Changed {
                mode: FilterMode::Exclude,
                ..
            }
        ));
        assert_eq!(state(&t, h, G), Some((FilterMode::Exclude, set(&[]))));
        assert_eq!(t.member(h, G).unwrap().version, 2);
    }

    #[test]
    fn to_in_empty_removes_at_once() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ChangeToExclude, G, &[]), t0);
        let ev = t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ChangeToInclude, G, &[]),
            t0 + secs(1),
        );
        assert_eq!(
            ev,
            vec![Event::Left {
                host: h,
                ip: hip(1),
                group: G,
                reason: LeaveReason::EmptyInclude
            }]
        );
        assert_eq!(t.member_count(), 0);
        assert_eq!(t.next_deadline(), None);
        assert!(t.upstream_wants().is_empty());
    }

    #[test]
    fn expiry_exactly_at_gmi_and_refresh_extends_it() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[]), t0);
        assert_eq!(t.next_deadline(), Some(t0 + secs(24)));
        assert!(t.poll(t0 + secs(24) - Duration::from_nanos(1)).is_empty());
        assert_eq!(t.member_count(), 1);
        // Refresh at 10 s: now due at 34 s.
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsExclude, G, &[]),
            t0 + secs(10),
        );
        assert_eq!(t.next_deadline(), Some(t0 + secs(34)));
        assert!(t.poll(t0 + secs(24)).is_empty());
        assert!(t.poll(t0 + secs(33)).is_empty());
        let ev = t.poll(t0 + secs(34));
        assert_eq!(
            ev,
            vec![Event::Left {
                host: h,
                ip: hip(1),
                group: G,
                reason: LeaveReason::Expired
            }]
        );
        assert_eq!(t.member_count(), 0);
        assert_eq!(t.next_deadline(), None);
        assert!(t.poll(t0 + secs(100)).is_empty());
    }

    #[test]
    fn late_poll_expires_everything_due_in_time_order() {
        let mut t = table();
        let t0 = Instant::now();
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsExclude, G, &[]),
            t0 + secs(1),
        );
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsExclude, G2, &[]),
            t0,
        );
        t.accept_report(
            host(0, 3),
            hip(3),
            &v3(RecordType::ModeIsExclude, G, &[]),
            t0 + secs(50),
        );
        let ev = t.poll(t0 + secs(60));
        let left: Vec<_> = ev
            .iter()
            .map(|e| {
                if let Event::Left { host, .. } = e {
                    *host
                } else {
                    panic!()
                }
            })
            .collect();
        assert_eq!(left, vec![host(0, 1), host(0, 2)]);
        assert_eq!(t.next_deadline(), Some(t0 + secs(74)));
    }

    #[test]
    fn compat_start_refresh_and_end_by_timer() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        let ev = t.accept_report(h, hip(1), &Message::ReportV1 { group: G }, t0);
        assert_eq!(
            ev[1],
            Event::CompatStarted {
                iface: 0,
                group: G,
                version: 1
            }
        );
        assert_eq!(t.compat_until(0, G), Some(t0 + secs(22)));
        assert_eq!(t.compat_until(1, G), None);
        // A v3 report from another host does not refresh compat; a v2 report does, silently.
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ChangeToExclude, G, &[]),
            t0 + secs(5),
        );
        assert_eq!(t.compat_until(0, G), Some(t0 + secs(22)));
        let ev = t.accept_report(
            host(0, 3),
            hip(3),
            &Message::ReportV2 { group: G },
            t0 + secs(10),
        );
        assert!(!ev.iter().any(|e| matches!(e, Event::CompatStarted { .. })));
        assert_eq!(t.compat_until(0, G), Some(t0 + secs(32)));
        // Host 1 expires at 24 s, host 2 at 29 s; compat at 32 s, host 3 at 34 s.
        assert!(t.poll(t0 + secs(31)).iter().all(|e| matches!(
            e,
            Event::Left {
                reason: LeaveReason::Expired,
                ..
            }
        )));
        assert!(t.compat_until(0, G).is_some());
        let ev = t.poll(t0 + secs(32));
        assert!(ev.contains(&Event::CompatEnded { iface: 0, group: G }));
        assert_eq!(t.compat_until(0, G), None);
        assert_eq!(t.next_deadline(), Some(t0 + secs(34)));
    }

    /// The dumb-switch case: host A reports, host B hears it and stays silent (RFC 2236
    /// section 3). When A leaves, B must be asked.
    #[test]
    fn last_member_queries_count_spacing_and_end() {
        let mut t = table();
        let t0 = Instant::now();
        let a = host(0, 1);
        t.accept_report(a, hip(1), &Message::ReportV2 { group: G }, t0);
        let ev = t.accept_report(a, hip(1), &Message::LeaveV2 { group: G }, t0 + secs(3));
        assert_eq!(
            ev,
            vec![
                Event::Left {
                    host: a,
                    ip: hip(1),
                    group: G,
                    reason: LeaveReason::Leave
                },
                Event::SendGroupQuery { iface: 0, group: G },
            ]
        );
        // Still in compat mode (and so still wanted upstream and multicast on iface 0).
        assert_eq!(t.upstream_wants().get(&G), Some(&UpstreamWant::AnySource));
        assert_eq!(t.next_deadline(), Some(t0 + secs(4)));
        assert!(t.poll(t0 + secs(4) - Duration::from_millis(1)).is_empty());
        // A second leave while querying does not restart the queries.
        assert!(t
            .accept_report(
                host(0, 2),
                hip(2),
                &Message::LeaveV2 { group: G },
                t0 + secs(3)
            )
            .is_empty());
        assert_eq!(
            t.poll(t0 + secs(4)),
            vec![Event::SendGroupQuery { iface: 0, group: G }]
        );
        assert_eq!(t.next_deadline(), Some(t0 + secs(5)));
        assert!(t.poll(t0 + secs(5) - Duration::from_millis(1)).is_empty());
        // robustness (2) queries, then robustness x LMQI after the leave, compat ends.
        assert_eq!(
            t.poll(t0 + secs(5)),
            vec![Event::CompatEnded { iface: 0, group: G }]
        );
        assert_eq!(t.compat_until(0, G), None);
        assert_eq!(t.next_deadline(), None);
        assert!(t.upstream_wants().is_empty());
        assert!(t.forwarding().groups.is_empty());
    }

    #[test]
    fn last_member_queries_with_a_late_poll_and_other_robustness() {
        let mut t = Table::new(
            Settings {
                robustness: 3,
                ..settings()
            },
            GroupFilter::default(),
            vec![],
        );
        let t0 = Instant::now();
        let a = host(0, 1);
        t.accept_report(a, hip(1), &Message::ReportV2 { group: G }, t0);
        let ev = t.accept_report(a, hip(1), &Message::LeaveV2 { group: G }, t0);
        assert_eq!(queries(&ev), 1);
        // One late poll runs every step that came due, in order.
        let ev = t.poll(t0 + secs(10));
        assert_eq!(
            ev,
            vec![
                Event::SendGroupQuery { iface: 0, group: G },
                Event::SendGroupQuery { iface: 0, group: G },
                Event::CompatEnded { iface: 0, group: G },
            ]
        );
    }

    #[test]
    fn report_cancels_last_member_queries() {
        let mut t = table();
        let t0 = Instant::now();
        let (a, b) = (host(0, 1), host(0, 2));
        t.accept_report(a, hip(1), &Message::ReportV2 { group: G }, t0);
        let ev = t.accept_report(a, hip(1), &Message::LeaveV2 { group: G }, t0 + secs(1));
        assert_eq!(queries(&ev), 1);
        // The silent host B answers the query.
        let ev = t.accept_report(
            b,
            hip(2),
            &Message::ReportV2 { group: G },
            t0 + secs(1) + Duration::from_millis(300),
        );
        assert!(matches!(ev.as_slice(), [Event::Joined { .. }]));
        let ev = t.poll(t0 + secs(10));
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(
            t.compat_until(0, G),
            Some(t0 + secs(23) + Duration::from_millis(300))
        );
        assert_eq!(
            t.next_deadline(),
            Some(t0 + secs(23) + Duration::from_millis(300))
        );
        // An IGMPv3 host answering also counts.
        let ev = t.accept_report(b, hip(2), &Message::LeaveV2 { group: G }, t0 + secs(11));
        assert_eq!(queries(&ev), 1);
        t.accept_report(
            host(0, 3),
            hip(3),
            &v3(RecordType::ModeIsExclude, G, &[]),
            t0 + secs(11),
        );
        assert!(t.poll(t0 + secs(15)).is_empty());
        assert!(t.compat_until(0, G).is_some());
    }

    #[test]
    fn no_last_member_queries_while_members_remain_or_unicast_or_v1() {
        let t0 = Instant::now();
        // Another member remains on the interface.
        let mut t = table();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        assert_eq!(
            queries(&t.accept_report(host(0, 1), hip(1), &Message::LeaveV2 { group: G }, t0)),
            0
        );
        // A member on another interface does not count.
        let mut t = table();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(host(1, 1), hip(2), &Message::ReportV2 { group: G }, t0);
        assert_eq!(
            queries(&t.accept_report(host(0, 1), hip(1), &Message::LeaveV2 { group: G }, t0)),
            1
        );
        // Unicast fallback: the leave suffices.
        let mut t = table();
        t.accept_report(host(1, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        let ev = t.accept_report(host(1, 1), hip(1), &Message::LeaveV2 { group: G }, t0);
        assert_eq!(queries(&ev), 0);
        assert!(t.compat_until(1, G).is_some());
        // An IGMPv1 host present: leaves are ignored for compat (RFC 3376 section 7.3.2)
        // until its timer runs out.
        let mut t = table();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV1 { group: G }, t0);
        t.accept_report(
            host(0, 2),
            hip(2),
            &Message::ReportV2 { group: G },
            t0 + secs(10),
        );
        t.accept_report(
            host(0, 1),
            hip(1),
            &Message::LeaveV2 { group: G },
            t0 + secs(11),
        );
        let ev = t.accept_report(
            host(0, 2),
            hip(2),
            &Message::LeaveV2 { group: G },
            t0 + secs(11),
        );
        assert_eq!(queries(&ev), 0);
        t.accept_report(
            host(0, 2),
            hip(2),
            &Message::ReportV2 { group: G },
            t0 + secs(25),
        );
        let ev = t.accept_report(
            host(0, 2),
            hip(2),
            &Message::LeaveV2 { group: G },
            t0 + secs(26),
        );
        assert_eq!(queries(&ev), 1, "v1 host gone after 22 s");
        // No compat at all: no queries.
        let mut t = table();
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ChangeToExclude, G, &[]),
            t0,
        );
        assert!(
            t.accept_report(host(0, 1), hip(1), &Message::LeaveV2 { group: G }, t0)
                .len()
                == 1
        );
    }

    #[test]
    fn ssm_range_only_include() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        for msg in [
            Message::ReportV1 { group: SSM },
            Message::ReportV2 { group: SSM },
            Message::LeaveV2 { group: SSM },
            v3(RecordType::ModeIsExclude, SSM, &[]),
            v3(RecordType::ChangeToExclude, SSM, &[1]),
        ] {
            let ev = t.accept_report(h, hip(1), &msg, t0);
            assert_eq!(
                ev,
                vec![Event::Ignored {
                    host: h,
                    group: SSM,
                    reason: IgnoreReason::SsmExclude
                }],
                "{msg:?}"
            );
        }
        assert_eq!(t.member_count(), 0);
        assert_eq!(t.compat_until(0, SSM), None);
        t.accept_report(h, hip(1), &v3(RecordType::AllowNew, SSM, &[1]), t0);
        // An EXCLUDE record does not disturb the INCLUDE member, nor refresh it.
        let ev = t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ChangeToExclude, SSM, &[]),
            t0 + secs(5),
        );
        assert_eq!(ignored(&ev), vec![IgnoreReason::SsmExclude]);
        assert_eq!(state(&t, h, SSM), Some((FilterMode::Include, set(&[1]))));
        assert_eq!(t.member(h, SSM).unwrap().expires, t0 + secs(24));
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsInclude, SSM, &[1, 2]), t0);
        assert_eq!(
            t.upstream_wants().get(&SSM),
            Some(&UpstreamWant::Sources(set(&[1, 2])))
        );
        let ev = t.accept_report(h, hip(1), &v3(RecordType::BlockOld, SSM, &[1, 2]), t0);
        assert!(matches!(
            ev.as_slice(),
            [Event::Left {
                reason: LeaveReason::EmptyInclude,
                ..
            }]
        ));
    }

    #[test]
    fn group_filter_rejects_without_creating_state() {
        let filter = GroupFilter::v4(
            vec![Ipv4Cidr::new(Ipv4Addr::new(239, 0, 0, 0), 8)],
            vec![Ipv4Cidr::new(G2, 32)],
        );
        let mut t = Table::new(settings(), filter, vec![]);
        let t0 = Instant::now();
        let h = host(0, 1);
        let mdns = Ipv4Addr::new(224, 0, 0, 251);
        let other = Ipv4Addr::new(238, 1, 1, 1);
        for g in [G2, mdns, other] {
            for msg in [
                Message::ReportV1 { group: g },
                Message::ReportV2 { group: g },
                Message::LeaveV2 { group: g },
                v3(RecordType::AllowNew, g, &[1]),
                v3(RecordType::ChangeToExclude, g, &[]),
            ] {
                let ev = t.accept_report(h, hip(1), &msg, t0);
                assert_eq!(
                    ev,
                    vec![Event::Ignored {
                        host: h,
                        group: g,
                        reason: IgnoreReason::GroupFiltered
                    }]
                );
            }
            assert_eq!(t.compat_until(0, g), None);
        }
        assert_eq!(t.member_count(), 0);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(
            t.accept_report(h, hip(1), &Message::ReportV2 { group: G }, t0)
                .len(),
            2
        );
    }

    #[test]
    fn groups_per_host_limit_but_updates_still_work() {
        let mut t = Table::new(
            Settings {
                max_groups_per_host: 2,
                ..settings()
            },
            GroupFilter::default(),
            vec![],
        );
        let t0 = Instant::now();
        let h = host(0, 1);
        let g3 = Ipv4Addr::new(239, 1, 1, 3);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsInclude, G, &[1]), t0);
        t.accept_report(h, hip(1), &Message::ReportV2 { group: G2 }, t0);
        for msg in [
            Message::ReportV2 { group: g3 },
            v3(RecordType::AllowNew, g3, &[1]),
        ] {
            let ev = t.accept_report(h, hip(1), &msg, t0);
            assert_eq!(
                ev,
                vec![Event::Ignored {
                    host: h,
                    group: g3,
                    reason: IgnoreReason::GroupsPerHostLimit
                }]
            );
        }
        // A rejected v2 report starts no compat mode.
        assert_eq!(t.compat_until(0, g3), None);
        // Existing members can change and refresh.
        let ev = t.accept_report(h, hip(1), &v3(RecordType::AllowNew, G, &[2]), t0 + secs(1));
        assert!(matches!(ev.as_slice(), [Event::Changed { .. }]));
        assert_eq!(t.member(h, G).unwrap().expires, t0 + secs(25));
        // Another host is not affected.
        assert!(matches!(
            t.accept_report(host(0, 2), hip(2), &Message::ReportV2 { group: g3 }, t0)[0],
            Event::Joined { .. }
        ));
        // After one leaves, there is room again.
        t.accept_report(h, hip(1), &Message::LeaveV2 { group: G2 }, t0);
        assert!(matches!(
            t.accept_report(h, hip(1), &Message::ReportV2 { group: g3 }, t0)[0],
            Event::Joined { .. }
        ));
    }

    #[test]
    fn members_limit_but_updates_still_work() {
        let mut t = Table::new(
            Settings {
                max_members: 2,
                ..settings()
            },
            GroupFilter::default(),
            vec![],
        );
        let t0 = Instant::now();
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        let ev = t.accept_report(
            host(0, 3),
            hip(3),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        assert_eq!(
            ev,
            vec![Event::Ignored {
                host: host(0, 3),
                group: G,
                reason: IgnoreReason::MembersLimit
            }]
        );
        let ev = t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ChangeToExclude, G, &[]),
            t0,
        );
        assert!(matches!(ev.as_slice(), [Event::Changed { .. }]));
        assert_eq!(t.member_count(), 2);
        // A BLOCK with no state is silently nothing, even at the limit.
        assert!(t
            .accept_report(host(0, 3), hip(3), &v3(RecordType::BlockOld, G, &[1]), t0)
            .is_empty());
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ChangeToInclude, G, &[]),
            t0,
        );
        assert!(matches!(
            t.accept_report(host(0, 3), hip(3), &v3(RecordType::AllowNew, G, &[1]), t0)[0],
            Event::Joined { .. }
        ));
    }

    #[test]
    fn source_cap() {
        let mut t = Table::new(
            Settings {
                max_sources_per_member: 3,
                ..settings()
            },
            GroupFilter::default(),
            vec![],
        );
        let t0 = Instant::now();
        let h = host(0, 1);
        // New member: the lowest sources in sorted order.
        let ev = t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[9, 5, 1, 7, 3]),
            t0,
        );
        assert!(matches!(ev[0], Event::Joined { .. }));
        assert_eq!(
            ev[1..],
            [Event::Ignored {
                host: h,
                group: G,
                reason: IgnoreReason::SourcesLimit
            }]
        );
        assert_eq!(
            state(&t, h, G),
            Some((FilterMode::Include, set(&[1, 3, 5])))
        );
        // ALLOW beyond the cap keeps the sources already present.
        let ev = t.accept_report(h, hip(1), &v3(RecordType::AllowNew, G, &[0, 2]), t0);
        assert_eq!(ignored(&ev), vec![IgnoreReason::SourcesLimit]);
        assert_eq!(
            state(&t, h, G),
            Some((FilterMode::Include, set(&[1, 3, 5])))
        );
        // Room again after a BLOCK: the new source fits.
        t.accept_report(h, hip(1), &v3(RecordType::BlockOld, G, &[5]), t0);
        let ev = t.accept_report(h, hip(1), &v3(RecordType::AllowNew, G, &[0, 2]), t0);
        assert_eq!(ignored(&ev), vec![IgnoreReason::SourcesLimit]);
        assert_eq!(
            state(&t, h, G),
            Some((FilterMode::Include, set(&[0, 1, 3])))
        );
        // EXCLUDE mode is capped too, once per record; at the cap exactly is fine.
        let ev = t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ChangeToExclude, G, &[4, 5, 6, 7]),
            t0,
        );
        assert_eq!(ignored(&ev), vec![IgnoreReason::SourcesLimit]);
        assert_eq!(
            state(&t, h, G),
            Some((FilterMode::Exclude, set(&[4, 5, 6])))
        );
        assert!(ignored(&t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsExclude, G, &[4, 5, 6]),
            t0
        ))
        .is_empty());
    }

    #[test]
    fn remove_iface_drops_members_and_compat_of_that_iface_only() {
        let mut t = table();
        let t0 = Instant::now();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(host(0, 1), hip(1), &v3(RecordType::AllowNew, G2, &[1]), t0);
        t.accept_report(host(0, 2), hip(2), &v3(RecordType::AllowNew, G2, &[1]), t0);
        t.accept_report(host(1, 1), hip(3), &Message::ReportV2 { group: G }, t0);
        let ev = t.remove_iface(0);
        let mut left: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Left {
                    host,
                    group,
                    reason: LeaveReason::InterfaceGone,
                    ..
                } => Some((*group, *host)),
                _ => None,
            })
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![(G, host(0, 1)), (G2, host(0, 1)), (G2, host(0, 2))]
        );
        assert!(ev.contains(&Event::CompatEnded { iface: 0, group: G }));
        assert_eq!(ev.len(), 4);
        assert_eq!(t.member_count(), 1);
        assert_eq!(t.compat_until(0, G), None);
        assert!(t.compat_until(1, G).is_some());
        assert_eq!(
            t.members().map(|(g, h, _)| (g, h)).collect::<Vec<_>>(),
            vec![(G, host(1, 1))]
        );
        assert!(t.remove_iface(0).is_empty());
        // Only iface 1's timers remain.
        assert_eq!(t.next_deadline(), Some(t0 + secs(22)));
    }

    #[test]
    fn remove_iface_stops_last_member_queries() {
        let mut t = table();
        let t0 = Instant::now();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(host(0, 1), hip(1), &Message::LeaveV2 { group: G }, t0);
        assert_eq!(
            t.remove_iface(0),
            vec![Event::CompatEnded { iface: 0, group: G }]
        );
        assert_eq!(t.next_deadline(), None);
        assert!(t.poll(t0 + secs(100)).is_empty());
    }

    #[test]
    fn members_ordered_by_group_then_host() {
        let mut t = table();
        let t0 = Instant::now();
        t.accept_report(
            host(1, 1),
            hip(1),
            &v3(RecordType::ChangeToExclude, G2, &[]),
            t0,
        );
        t.accept_report(
            host(0, 9),
            hip(2),
            &v3(RecordType::ChangeToExclude, G2, &[]),
            t0,
        );
        t.accept_report(
            host(1, 1),
            hip(1),
            &v3(RecordType::ChangeToExclude, G, &[]),
            t0,
        );
        t.accept_report(
            host(0, 3),
            hip(3),
            &v3(RecordType::ChangeToExclude, G2, &[]),
            t0,
        );
        let got: Vec<_> = t.members().map(|(g, h, _)| (g, h)).collect();
        assert_eq!(
            got,
            vec![
                (G, host(1, 1)),
                (G2, host(0, 3)),
                (G2, host(0, 9)),
                (G2, host(1, 1))
            ]
        );
        assert_eq!(t.member_count(), 4);
    }

    #[test]
    fn upstream_wants_mixed() {
        let mut t = table();
        let t0 = Instant::now();
        let g3 = Ipv4Addr::new(239, 1, 1, 3);
        let g4 = Ipv4Addr::new(239, 1, 1, 4);
        // G: INCLUDE members only -> union of sources.
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[1, 2]),
            t0,
        );
        t.accept_report(
            host(1, 1),
            hip(2),
            &v3(RecordType::ModeIsInclude, G, &[2, 3]),
            t0,
        );
        // G2: one INCLUDE and one EXCLUDE member -> any source.
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsInclude, G2, &[1]),
            t0,
        );
        t.accept_report(
            host(0, 2),
            hip(3),
            &v3(RecordType::ModeIsExclude, G2, &[1]),
            t0,
        );
        // g3: INCLUDE member plus compat on another iface (member gone) -> any source.
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsInclude, g3, &[5]),
            t0,
        );
        t.accept_report(host(1, 2), hip(4), &Message::ReportV2 { group: g3 }, t0);
        t.accept_report(host(1, 2), hip(4), &Message::LeaveV2 { group: g3 }, t0);
        // g4: compat only, no members.
        t.accept_report(host(1, 3), hip(5), &Message::ReportV1 { group: g4 }, t0);
        t.accept_report(host(1, 3), hip(5), &Message::LeaveV2 { group: g4 }, t0);
        let want = t.upstream_wants();
        let expect: BTreeMap<_, _> = [
            (G, UpstreamWant::Sources(set(&[1, 2, 3]))),
            (G2, UpstreamWant::AnySource),
            (g3, UpstreamWant::AnySource),
            (g4, UpstreamWant::AnySource),
        ]
        .into_iter()
        .collect();
        assert_eq!(want, expect);
        // Compat ends: g3 falls back to its INCLUDE member, g4 disappears.
        t.poll(t0 + secs(24));
        assert!(t.upstream_wants().is_empty());
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsInclude, g3, &[5]),
            t0 + secs(40),
        );
        t.accept_report(
            host(1, 2),
            hip(4),
            &Message::ReportV2 { group: g3 },
            t0 + secs(30),
        );
        t.accept_report(
            host(1, 2),
            hip(4),
            &Message::LeaveV2 { group: g3 },
            t0 + secs(30),
        );
        assert_eq!(t.upstream_wants().get(&g3), Some(&UpstreamWant::AnySource));
        t.poll(t0 + secs(52));
        assert_eq!(
            t.upstream_wants().get(&g3),
            Some(&UpstreamWant::Sources(set(&[5])))
        );
    }

    #[test]
    fn forwarding_multicast_vs_unicast_fallback_and_source_filtering() {
        let mut t = table();
        let t0 = Instant::now();
        // iface 0 (multicast fallback): a v2 host and a v3 INCLUDE host.
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        // iface 1 (unicast fallback): a v2 host, an INCLUDE{1} host and an EXCLUDE{1} host.
        t.accept_report(host(1, 1), hip(3), &Message::ReportV2 { group: G }, t0);
        t.accept_report(
            host(1, 2),
            hip(4),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0,
        );
        t.accept_report(
            host(1, 3),
            hip(5),
            &v3(RecordType::ModeIsExclude, G, &[1]),
            t0,
        );
        // G2: no compat anywhere, a member on iface 0 gets unicast.
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsInclude, G2, &[2, 1]),
            t0,
        );
        let fib = t.forwarding();
        let gf = &fib.groups[&G];
        assert_eq!(gf.multicast_ifaces, vec![0]);
        assert!(
            gf.members.iter().all(|m| m.iface == 1),
            "no unicast copies on a multicast iface"
        );
        let group_mac = Target {
            iface: 0,
            mac: crate::wire::ethernet::ipv4_group_mac(G),
        };
        let uni = |h: HostKey| Target {
            iface: h.iface,
            mac: h.mac,
        };
        assert_eq!(
            targets(&fib, src(1), G),
            vec![group_mac.clone(), uni(host(1, 1)), uni(host(1, 2))]
        );
        assert_eq!(
            targets(&fib, src(2), G),
            vec![group_mac, uni(host(1, 1)), uni(host(1, 3))]
        );
        assert_eq!(&*fib.groups[&G2].members[0].sources, &[src(1), src(2)]);
        assert_eq!(targets(&fib, src(2), G2), vec![uni(host(0, 2))]);
        assert!(targets(&fib, src(3), G2).is_empty());
        assert!(targets(&fib, src(1), Ipv4Addr::new(239, 9, 9, 9)).is_empty());
        // When compat ends on iface 0, its remaining members get unicast copies again.
        t.accept_report(
            host(0, 2),
            hip(2),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0 + secs(20),
        );
        t.accept_report(
            host(1, 1),
            hip(3),
            &Message::ReportV2 { group: G },
            t0 + secs(20),
        );
        t.accept_report(
            host(1, 2),
            hip(4),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0 + secs(20),
        );
        assert!(t
            .poll(t0 + secs(24))
            .contains(&Event::CompatEnded { iface: 0, group: G }));
        let fib = t.forwarding();
        assert!(fib.groups[&G].multicast_ifaces.is_empty());
        assert_eq!(
            targets(&fib, src(1), G),
            vec![uni(host(0, 2)), uni(host(1, 1)), uni(host(1, 2))]
        );
    }

    #[test]
    fn forwarding_compat_without_members_still_multicasts() {
        let mut t = table();
        let t0 = Instant::now();
        t.accept_report(host(0, 1), hip(1), &Message::ReportV2 { group: G }, t0);
        t.accept_report(host(0, 1), hip(1), &Message::LeaveV2 { group: G }, t0);
        let fib = t.forwarding();
        assert_eq!(
            targets(&fib, src(1), G),
            vec![Target {
                iface: 0,
                mac: crate::wire::ethernet::ipv4_group_mac(G)
            }]
        );
    }

    #[test]
    fn counters_survive_rebuilds() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(1, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[]), t0);
        let fib = t.forwarding();
        let mut out = Vec::new();
        let mut counters = Vec::new();
        fib.targets(src(1), G, &mut out, &mut counters);
        assert_eq!(counters.len(), 1);
        let c = counters[0].as_ref().unwrap();
        c.packets.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(100, Ordering::Relaxed);
        // Changes and rebuilds keep the same counters.
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[9]), t0);
        t.accept_report(
            host(1, 2),
            hip(2),
            &v3(RecordType::ModeIsExclude, G, &[]),
            t0,
        );
        let fib2 = t.forwarding();
        let m = fib2.groups[&G]
            .members
            .iter()
            .find(|m| m.mac == h.mac)
            .unwrap();
        assert!(Arc::ptr_eq(
            &m.counters,
            &fib.groups[&G].members[0].counters
        ));
        assert_eq!(m.counters.packets.load(Ordering::Relaxed), 1);
        assert_eq!(
            t.member(h, G)
                .unwrap()
                .counters
                .bytes
                .load(Ordering::Relaxed),
            100
        );
        // A new membership after a leave starts from zero.
        t.accept_report(h, hip(1), &Message::LeaveV2 { group: G }, t0);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[]), t0);
        assert_eq!(
            t.member(h, G)
                .unwrap()
                .counters
                .packets
                .load(Ordering::Relaxed),
            0
        );
    }

    /// The sizes the daemon is built for: 1,000 hosts x 10 groups = 10,000 members.
    #[test]
    fn ten_thousand_members() {
        let mut t = Table::new(settings(), GroupFilter::default(), vec![]);
        let t0 = Instant::now();
        for h in 0..1000u16 {
            let key = HostKey {
                iface: usize::from(h % 4),
                mac: MacAddr(2, 0, 0, 0, (h >> 8) as u8, h as u8),
            };
            let records = (0..10)
                .map(|g| GroupRecord {
                    record_type: RecordType::ModeIsInclude,
                    group: Ipv4Addr::new(239, 2, 0, g),
                    sources: vec![src(g), src(g + 1)],
                })
                .collect();
            let at = t0 + Duration::from_millis(u64::from(h));
            let ev = t.accept_report(key, hip(1), &Message::ReportV3 { records }, at);
            assert_eq!(ev.len(), 10);
        }
        assert_eq!(t.member_count(), 10_000);
        assert_eq!(t.next_deadline(), Some(t0 + secs(24)));
        assert_eq!(
            t.forwarding()
                .groups
                .values()
                .map(|g| g.members.len())
                .sum::<usize>(),
            10_000
        );
        assert_eq!(t.upstream_wants().len(), 10);
        assert_eq!(
            t.poll(t0 + secs(24) + Duration::from_millis(499)).len(),
            5_000
        );
        assert_eq!(t.member_count(), 5_000);
        assert_eq!(t.remove_iface(0).len(), 1_250);
        t.assert_consistent();
    }

    /// xorshift64: deterministic randomness without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    impl Table {
        /// The private indexes agree with the members and compat state.
        fn assert_consistent(&self) {
            let mut timers = BTreeSet::new();
            let mut count = 0;
            let mut host_groups: BTreeMap<HostKey, BTreeSet<Ipv4Addr>> = BTreeMap::new();
            for (g, h, m) in self.members() {
                count += 1;
                host_groups.entry(h).or_default().insert(g);
                timers.insert((m.expires, TimerKey::Member(g, h)));
                assert!(!(m.mode == FilterMode::Include && m.sources.is_empty()));
                assert!(!(is_ssm_group(g) && m.mode == FilterMode::Exclude));
                assert!(m.sources.len() <= self.settings.max_sources_per_member);
            }
            for (&(i, g), c) in &self.compat {
                assert!(!is_ssm_group(g));
                timers.insert((c.until, TimerKey::CompatEnd(i, g)));
                if let Some(l) = c.lmq {
                    timers.insert((l.next, TimerKey::LastMemberQuery(i, g)));
                }
            }
            assert!(self.groups.values().all(|hs| !hs.is_empty()));
            assert_eq!(count, self.count);
            assert_eq!(host_groups, self.host_groups);
            assert_eq!(timers, self.timers);
        }
    }

    #[test]
    fn randomized_reports_keep_invariants() {
        let s = Settings {
            max_groups_per_host: 4,
            max_members: 40,
            max_sources_per_member: 3,
            ..settings()
        };
        let filter = GroupFilter::v4(vec![], vec![Ipv4Cidr::new(Ipv4Addr::new(239, 0, 0, 7), 32)]);
        let mut t = Table::new(
            s.clone(),
            filter,
            vec![CompatFallback::Multicast, CompatFallback::Unicast],
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let t0 = Instant::now();
        let mut now = t0;
        let groups: Vec<Ipv4Addr> = (0..8)
            .map(|i| Ipv4Addr::new(239, 0, 0, i))
            .chain([
                SSM,
                Ipv4Addr::new(232, 0, 0, 2),
                Ipv4Addr::new(224, 0, 0, 5),
            ])
            .collect();
        let types = [
            RecordType::ModeIsInclude,
            RecordType::ModeIsExclude,
            RecordType::ChangeToInclude,
            RecordType::ChangeToExclude,
            RecordType::AllowNew,
            RecordType::BlockOld,
            RecordType::Unknown(7),
        ];
        let mut reported: BTreeSet<(HostKey, Ipv4Addr)> = BTreeSet::new();
        let mut queries_sent = 0;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for step in 0..20_000 {
            now += Duration::from_millis(rng.below(1500));
            let h = host(rng.below(3) as usize, rng.below(8) as u8);
            let g = groups[rng.below(groups.len() as u64) as usize];
            let action = rng.below(10);
            let ev = match action {
                0 => t.poll(now),
                1 => t.accept_report(h, hip(h.mac.5), &Message::ReportV2 { group: g }, now),
                2 => t.accept_report(h, hip(h.mac.5), &Message::ReportV1 { group: g }, now),
                3 => t.accept_report(h, hip(h.mac.5), &Message::LeaveV2 { group: g }, now),
                4 if rng.below(50) == 0 => t.remove_iface(h.iface),
                _ => {
                    let n = rng.below(6);
                    let records = (0..1 + rng.below(3))
                        .map(|_| GroupRecord {
                            record_type: types[rng.below(types.len() as u64) as usize],
                            group: groups[rng.below(groups.len() as u64) as usize],
                            sources: (0..n).map(|_| src(rng.below(6) as u8)).collect(),
                        })
                        .collect::<Vec<_>>();
                    for r in &records {
                        reported.insert((h, r.group));
                    }
                    t.accept_report(h, hip(h.mac.5), &Message::ReportV3 { records }, now)
                }
            };
            reported.insert((h, g));
            queries_sent += queries(&ev);
            for e in &ev {
                seen.insert(match e {
                    Event::Ignored { reason, .. } => format!("{reason:?}"),
                    Event::Left { reason, .. } => format!("Left{reason:?}"),
                    other => format!("{other:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_string(),
                });
            }
            // Invariants.
            t.assert_consistent();
            assert!(t.member_count() <= s.max_members, "step {step}");
            let mut per_host: BTreeMap<HostKey, usize> = BTreeMap::new();
            for (g, h, m) in t.members() {
                *per_host.entry(h).or_default() += 1;
                assert!(
                    reported.contains(&(h, g)),
                    "step {step}: {h:?} never reported {g}"
                );
                assert!(t.next_deadline().unwrap() <= m.expires, "step {step}");
                assert!(
                    action != 0 || m.expires > now,
                    "step {step}: a due member survived a poll"
                );
            }
            assert!(
                per_host.values().all(|&n| n <= s.max_groups_per_host),
                "step {step}"
            );
            let with_state: BTreeSet<Ipv4Addr> = t
                .members()
                .map(|(g, _, _)| g)
                .chain(t.compat.keys().map(|&(_, g)| g))
                .collect();
            let wants = t.upstream_wants();
            assert_eq!(
                wants.keys().copied().collect::<BTreeSet<_>>(),
                with_state,
                "step {step}"
            );
            for (g, w) in &wants {
                if let UpstreamWant::Sources(s) = w {
                    assert!(!s.is_empty(), "step {step}: {g}");
                }
            }
            if let Some(d) = t.next_deadline() {
                assert!(t.compat.values().all(|c| d <= c.until));
            }
        }
        assert!(t.member_count() > 0);
        assert!(
            queries_sent > 0,
            "the walk should exercise last-member queries"
        );
        // The walk reaches every kind of event.
        assert_eq!(seen.len(), 15, "{seen:?}");
    }

    // ----- MLD (the same table, IPv6 addresses) -----

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn table6() -> Table<Ipv6Addr> {
        Table::new(
            settings(),
            GroupFilter::default(),
            vec![CompatFallback::Multicast, CompatFallback::Unicast],
        )
    }
    fn mld2(record_type: RecordType, group: &str, sources: &[&str]) -> mld::Message {
        mld::Message::ReportV2 {
            records: vec![mld::AddressRecord {
                record_type,
                group: a6(group),
                sources: sources.iter().map(|s| a6(s)).collect(),
            }],
        }
    }

    #[test]
    fn mldv2_records_follow_the_igmpv3_rules_and_forward_to_the_host_mac() {
        let mut t = table6();
        let t0 = Instant::now();
        let (h1, h2) = (host(1, 1), host(1, 2));
        let ll = a6("fe80::1");
        let ev = t.accept_mld(
            h1,
            ll,
            &mld2(RecordType::ChangeToExclude, "ff0e::1:1", &[]),
            t0,
        );
        assert!(
            matches!(
                ev[..],
                [Event::Joined {
                    mode: FilterMode::Exclude,
                    ..
                }]
            ),
            "{ev:?}"
        );
        assert_eq!(t.member(h1, a6("ff0e::1:1")).unwrap().version, 2);
        let ev = t.accept_mld(
            h2,
            a6("fe80::2"),
            &mld2(RecordType::AllowNew, "ff3e::8000:1", &["2001:db8::1"]),
            t0,
        );
        assert!(
            matches!(
                ev[..],
                [Event::Joined {
                    mode: FilterMode::Include,
                    ..
                }]
            ),
            "{ev:?}"
        );
        let fib = t.forwarding();
        let mut out = vec![];
        let mut ctr = vec![];
        fib.targets(a6("2001:db8::9"), a6("ff0e::1:1"), &mut out, &mut ctr);
        assert_eq!(
            out,
            vec![Target {
                iface: 1,
                mac: h1.mac
            }]
        );
        out.clear();
        fib.targets(a6("2001:db8::9"), a6("ff3e::8000:1"), &mut out, &mut ctr);
        assert!(out.is_empty(), "source not in the INCLUDE list");
        fib.targets(a6("2001:db8::1"), a6("ff3e::8000:1"), &mut out, &mut ctr);
        assert_eq!(
            out,
            vec![Target {
                iface: 1,
                mac: h2.mac
            }]
        );
        let want = t.upstream_wants();
        assert_eq!(want[&a6("ff0e::1:1")], UpstreamWant::AnySource);
        assert_eq!(
            want[&a6("ff3e::8000:1")],
            UpstreamWant::Sources([a6("2001:db8::1")].into())
        );
        // TO_IN{} leaves; the table is empty one GMI after the last report.
        let ev = t.accept_mld(
            h1,
            ll,
            &mld2(RecordType::ChangeToInclude, "ff0e::1:1", &[]),
            t0,
        );
        assert!(matches!(
            ev[..],
            [Event::Left {
                reason: LeaveReason::EmptyInclude,
                ..
            }]
        ));
        let ev = t.poll(t0 + settings().group_membership_interval());
        assert!(matches!(
            ev[..],
            [Event::Left {
                reason: LeaveReason::Expired,
                ..
            }]
        ));
        assert_eq!(t.member_count(), 0);
    }

    #[test]
    fn mld_ssm_and_link_scope_groups_are_ignored_as_rfc_4604_and_4541_say() {
        let mut t = table6();
        let t0 = Instant::now();
        let h = host(0, 1);
        let ll = a6("fe80::1");
        let ev = t.accept_mld(h, ll, &mld2(RecordType::ModeIsExclude, "ff3e::1", &[]), t0);
        assert_eq!(ignored(&ev), vec![IgnoreReason::SsmExclude]);
        let ev = t.accept_mld(
            h,
            ll,
            &mld::Message::ReportV1 {
                group: a6("ff3e::1"),
            },
            t0,
        );
        assert_eq!(ignored(&ev), vec![IgnoreReason::SsmExclude]);
        for g in ["ff02::1:3", "ff02::1:ff00:1", "ff01::1", "ff12::1"] {
            let ev = t.accept_mld(h, ll, &mld2(RecordType::ModeIsExclude, g, &[]), t0);
            assert_eq!(ignored(&ev), vec![IgnoreReason::GroupFiltered], "{g}");
        }
        assert_eq!(t.member_count(), 0);
    }

    #[test]
    fn mldv1_is_compat_mode_whose_done_starts_last_listener_queries() {
        let mut t = table6();
        let t0 = Instant::now();
        let h = host(0, 1);
        let g = a6("ff0e::42");
        let ev = t.accept_mld(h, a6("fe80::1"), &mld::Message::ReportV1 { group: g }, t0);
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::CompatStarted { version: 1, .. })),
            "{ev:?}"
        );
        assert_eq!(t.member(h, g).unwrap().version, 1);
        assert_eq!(t.upstream_wants()[&g], UpstreamWant::AnySource);
        // Unlike an IGMPv1 host, an MLDv1 host sends Done, which is not ignored (RFC 3810
        // section 8.3.2): the member goes and last-listener queries start.
        let ev = t.accept_mld(
            h,
            a6("fe80::1"),
            &mld::Message::DoneV1 { group: g },
            t0 + secs(1),
        );
        assert!(ev.iter().any(|e| matches!(
            e,
            Event::Left {
                reason: LeaveReason::Leave,
                ..
            }
        )));
        assert_eq!(queries(&ev), 1, "{ev:?}");
        let ev = t.poll(t0 + secs(2));
        assert_eq!(queries(&ev), 1);
        let ev = t.poll(t0 + secs(3));
        assert!(
            ev.iter().any(|e| matches!(e, Event::CompatEnded { .. })),
            "{ev:?}"
        );
        assert!(t.upstream_wants().is_empty());
    }

    /// A group-and-source-specific query for G and sources `ns`, Max Resp 1 s.
    fn gs_query(ns: &[u8]) -> HeardQuery {
        HeardQuery {
            group: G,
            max_resp: secs(1),
            sources: ns.iter().map(|&n| src(n)).collect(),
            ..HeardQuery::general(3)
        }
    }

    /// Issue 15 defect 4: within a Q(G,S) window an IS_IN(C) speaks for the queried sources
    /// B only: INCLUDE(A) becomes INCLUDE((A-B)+C) (RFC 3376 5.2 and 6.4.1, RFC 3810 7.4).
    #[test]
    fn gs_query_reply_include_answers_only_queried_sources() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsInclude, G, &[1, 2]), t0);
        // A v3 querier asks about S1 only (say another host blocked it); h answers IS_IN{S1}.
        t.note_query(0, &gs_query(&[1]), t0 + secs(1));
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0 + secs(1) + Duration::from_millis(500),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Include, set(&[1, 2]))));
        // Asked about S2 and S3, it answers IS_IN{S3}: S2 goes, S3 comes, S1 stays.
        t.note_query(0, &gs_query(&[2, 3]), t0 + secs(2));
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[3]),
            t0 + secs(2),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Include, set(&[1, 3]))));
        // The window (Max Resp 1 s) is over: IS_IN is the whole filter again.
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[3]),
            t0 + secs(4),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Include, set(&[3]))));
        // A query on another interface or for another group opens no window here.
        t.note_query(1, &gs_query(&[3]), t0 + secs(5));
        let other = HeardQuery {
            group: G2,
            ..gs_query(&[3])
        };
        t.note_query(0, &other, t0 + secs(5));
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[4]),
            t0 + secs(5),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Include, set(&[4]))));
    }

    /// Issue 15 defect 4: EXCLUDE(X) with IS_IN(C) for queried B becomes
    /// EXCLUDE((X-B)+(B-C)): the queried sources it did not name stay blocked, those it
    /// named are wanted, the others keep their state.
    #[test]
    fn gs_query_reply_exclude_answers_only_queried_sources() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[1, 2]), t0);
        t.note_query(0, &gs_query(&[2, 3, 4]), t0 + secs(1));
        // It wants S3 and S4 of the queried ones (not S2).
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[3, 4]),
            t0 + secs(1),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Exclude, set(&[1, 2]))));
        // A later query for S1 (the first window closed at 2 s), answered IS_IN{S1}: S1 is
        // wanted now. (A query heard while a window is open adds its sources to it, as a
        // host merges them into its pending response, RFC 3376 5.2.)
        t.note_query(
            0,
            &gs_query(&[1]),
            t0 + secs(2) + Duration::from_millis(500),
        );
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsInclude, G, &[1]),
            t0 + secs(2) + Duration::from_millis(600),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Exclude, set(&[2]))));
        let m = t.member(h, G).unwrap();
        assert!(m.admits(src(1)) && m.admits(src(3)) && !m.admits(src(2)));
        // An IS_EX is always the whole filter.
        t.note_query(0, &gs_query(&[9]), t0 + secs(3));
        t.accept_report(
            h,
            hip(1),
            &v3(RecordType::ModeIsExclude, G, &[9]),
            t0 + secs(3),
        );
        assert_eq!(state(&t, h, G), Some((FilterMode::Exclude, set(&[9]))));
    }

    /// Issue 15 defect 6: RFC 9776 section 8.4 (RFC 9777 9.4): GMI = RV x QI + 2 x QRI;
    /// the Older Host Present Interval keeps one QRI (RFC 3376 8.13).
    #[test]
    fn membership_interval_rfc9776() {
        let s = Settings::default();
        assert_eq!(s.group_membership_interval(), secs(2 * 125 + 2 * 10));
        assert_eq!(s.older_host_present_interval(), secs(2 * 125 + 10));
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[]), t0);
        assert_eq!(t.member(h, G).unwrap().expires, t0 + secs(2 * 10 + 2 * 2));
        // Timers the querier adopted for the interface apply from the next report on.
        t.set_timers(
            0,
            Some(Timers {
                robustness: 3,
                query_interval: secs(30),
                query_response_interval: secs(5),
            }),
        );
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsExclude, G, &[]), t0);
        assert_eq!(t.member(h, G).unwrap().expires, t0 + secs(100));
        t.set_timers(0, None);
        assert_eq!(t.timers(0), settings().timers());
    }

    /// Issue 15 defect 8: the upstream want of EXCLUDE members is the RFC 4605 4.1 merge:
    /// the sources every EXCLUDE member excludes, minus those an INCLUDE member wants.
    #[test]
    fn upstream_exclude_merge_rfc4605() {
        let mut t = table();
        let t0 = Instant::now();
        let want = |t: &Table| t.upstream_wants().get(&G).cloned();
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsExclude, G, &[1, 2, 3]),
            t0,
        );
        assert_eq!(want(&t), Some(UpstreamWant::Exclude(set(&[1, 2, 3]))));
        t.accept_report(
            host(1, 2),
            hip(2),
            &v3(RecordType::ModeIsExclude, G, &[2, 3, 4]),
            t0,
        );
        assert_eq!(want(&t), Some(UpstreamWant::Exclude(set(&[2, 3]))));
        t.accept_report(
            host(0, 3),
            hip(3),
            &v3(RecordType::ModeIsInclude, G, &[3, 9]),
            t0,
        );
        assert_eq!(want(&t), Some(UpstreamWant::Exclude(set(&[2]))));
        t.accept_report(
            host(0, 4),
            hip(4),
            &v3(RecordType::ModeIsInclude, G, &[2]),
            t0,
        );
        assert_eq!(
            want(&t),
            Some(UpstreamWant::AnySource),
            "nothing left to block"
        );
        // An older host (its filter unknown) forces any source.
        let mut t = table();
        t.accept_report(
            host(0, 1),
            hip(1),
            &v3(RecordType::ModeIsExclude, G, &[1]),
            t0,
        );
        t.accept_report(host(0, 2), hip(2), &Message::ReportV2 { group: G }, t0);
        assert_eq!(want(&t), Some(UpstreamWant::AnySource));
    }

    /// Issue 15 defect 7: hosts behind one MAC (a MAC-translating repeater) keep their own
    /// filters, per address; the MAC gets one copy for the union; one's leave or expiry
    /// leaves the others; at most MAX_ADDRESSES_PER_MAC addresses.
    #[test]
    fn several_hosts_behind_one_mac_keep_their_own_filters() {
        let mut t = table();
        let t0 = Instant::now();
        let h = host(0, 1);
        t.accept_report(h, hip(1), &v3(RecordType::ModeIsInclude, G, &[1, 2]), t0);
        let ev = t.accept_report(h, hip(2), &v3(RecordType::ModeIsInclude, G, &[3]), t0);
        assert!(matches!(ev.as_slice(), [Event::Changed { .. }]), "{ev:?}");
        assert_eq!(
            state(&t, h, G),
            Some((FilterMode::Include, set(&[1, 2, 3])))
        );
        let m = t.member(h, G).unwrap();
        assert_eq!(m.filter_of(hip(2)), Some((FilterMode::Include, &set(&[3]))));
        assert_eq!(t.member_count(), 1, "one member, one copy per MAC");
        // Host 2 blocks its source: host 1's filter is untouched (it used to be overwritten).
        t.accept_report(h, hip(2), &v3(RecordType::BlockOld, G, &[3]), t0 + secs(1));
        assert_eq!(state(&t, h, G), Some((FilterMode::Include, set(&[1, 2]))));
        let m = t.member(h, G).unwrap();
        assert!(m.per_ip.is_empty() && m.ip == hip(1), "back to one address");
        // IGMPv2: one host's leave keeps the other's membership.
        let g2 = G2;
        t.accept_report(h, hip(3), &Message::ReportV2 { group: g2 }, t0);
        t.accept_report(h, hip(4), &Message::ReportV2 { group: g2 }, t0);
        let ev = t.accept_report(h, hip(3), &Message::LeaveV2 { group: g2 }, t0 + secs(1));
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Left { .. })),
            "{ev:?}"
        );
        assert_eq!(t.member(h, g2).unwrap().ip, hip(4));
        // An EXCLUDE host and an INCLUDE host: EXCLUDE of what the first excludes minus
        // what the second wants.
        let g3 = Ipv4Addr::new(239, 1, 1, 3);
        t.accept_report(h, hip(5), &v3(RecordType::ModeIsExclude, g3, &[1, 2]), t0);
        t.accept_report(
            h,
            hip(6),
            &v3(RecordType::ModeIsInclude, g3, &[2]),
            t0 + secs(10),
        );
        assert_eq!(state(&t, h, g3), Some((FilterMode::Exclude, set(&[1]))));
        // Host 5 goes silent: at its expiry host 6's INCLUDE{2} is left, then nothing.
        let ev = t.poll(t0 + secs(24));
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::Changed { group, .. } if *group == g3)),
            "{ev:?}"
        );
        assert_eq!(state(&t, h, g3), Some((FilterMode::Include, set(&[2]))));
        t.poll(t0 + secs(34));
        assert!(t.member(h, g3).is_none());
        // A ninth address is refused.
        let g4 = Ipv4Addr::new(239, 1, 1, 4);
        let t1 = t0 + secs(40);
        for n in 10..18 {
            t.accept_report(h, hip(n), &v3(RecordType::ModeIsExclude, g4, &[]), t1);
        }
        assert_eq!(t.member(h, g4).unwrap().per_ip.len(), MAX_ADDRESSES_PER_MAC);
        let ev = t.accept_report(h, hip(18), &v3(RecordType::ModeIsExclude, g4, &[]), t1);
        assert_eq!(ignored(&ev), vec![IgnoreReason::AddressesLimit]);
        t.assert_consistent();
    }
}
