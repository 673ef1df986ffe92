//! The membership table: which host (interface, MAC) wants which group from which sources.
//!
//! Pure: every input carries `now`, every change comes back as an [`Event`] for the runtime
//! to log or act on. One timer per (host, group): RFC 3376 section 6.4 keeps per-source timers
//! because a router only sees the union of many hosts; we see each host's own reports, so a
//! host's current-state record (section 3 / 4.2.12) states its whole filter for that group.

use super::filter::GroupFilter;
use super::IfaceId;
use crate::wire::igmp::{GroupRecord, Message};
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

/// The membership table. Owned by one thread, behind a lock for the status reader.
#[derive(Debug)]
pub struct Table {
    settings: Settings,
    filter: GroupFilter,
    /// Per downstream interface, indexed by IfaceId.
    fallback: Vec<CompatFallback>,
    // The implementation chooses the rest of the private state.
}

impl Table {
    /// `fallback[i]` is the compatibility policy of downstream interface `i`.
    pub fn new(settings: Settings, filter: GroupFilter, fallback: Vec<CompatFallback>) -> Self {
        todo!("core helper")
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
        todo!("core helper")
    }

    /// Run timers due at `now`: member expiry, compat-mode end, last-member queries.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        todo!("core helper")
    }

    /// The earliest instant at which `poll` has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!("core helper")
    }

    /// Drop every member of `iface` (the interface vanished).
    pub fn remove_iface(&mut self, iface: IfaceId) -> Vec<Event> {
        todo!("core helper")
    }

    /// Number of (host, group) members.
    pub fn member_count(&self) -> usize {
        todo!("core helper")
    }

    /// Every member, ordered by group then host.
    pub fn members(&self) -> impl Iterator<Item = (Ipv4Addr, HostKey, &Member)> + '_ {
        std::iter::empty::<(Ipv4Addr, HostKey, &Member)>()
    }

    /// Whether (iface, group) is in IGMPv1/v2 compatibility mode, and until when.
    pub fn compat_until(&self, iface: IfaceId, group: Ipv4Addr) -> Option<Instant> {
        todo!("core helper")
    }

    /// What upstream must join: one entry per group with at least one member or one
    /// interface in compatibility mode.
    pub fn upstream_wants(&self) -> BTreeMap<Ipv4Addr, UpstreamWant> {
        todo!("core helper")
    }

    /// Build the forwarding snapshot the data path reads.
    pub fn forwarding(&self) -> crate::core::fib::Fib {
        todo!("core helper")
    }

    #[doc(hidden)]
    pub fn _unused(&self) -> (&GroupFilter, &[CompatFallback], Option<&GroupRecord>) {
        (&self.filter, &self.fallback, None)
    }
}
