//! Per-interface IGMP and MLD querier state (RFC 3376 sections 6.6 and 8, RFC 3810 sections
//! 6.6 and 9: the same election and timers).
//!
//! Pure: `poll(now)` says when to send a general query, `accept_query` runs the election.

use super::family::GroupAddr;
use crate::wire::igmp::{Message, Query, QueryVersion};
use crate::wire::mld;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Take part in the election (RFC 3376 section 6.6.2).
    Auto,
    /// Always query.
    On,
    /// Never query.
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerierConfig {
    pub mode: Mode,
    /// 2 or 3: the version of the queries we send.
    pub version: u8,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub robustness: u32,
}

impl QuerierConfig {
    /// Startup Query Interval, RFC 3376 section 8.6: QI / 4.
    pub fn startup_query_interval(&self) -> Duration {
        self.query_interval / 4
    }
    /// The QRV our queries carry: the robustness, or 0 above 7, the field's maximum (RFC
    /// 3376 4.1.6, RFC 3810 5.1.8).
    fn qrv(&self) -> u8 {
        u8::try_from(self.robustness)
            .ok()
            .filter(|&r| r <= 7)
            .unwrap_or(0)
    }

    /// The configured timers.
    pub fn timers(&self) -> Timers {
        Timers {
            robustness: self.robustness,
            query_interval: self.query_interval,
            query_response_interval: self.query_response_interval,
        }
    }

    /// The general query we send (`version` 1 sends an IGMPv1 query, RFC 3376 7.3.1).
    pub fn general_query(&self) -> Message {
        self.group_query(Ipv4Addr::UNSPECIFIED, self.query_response_interval)
    }

    /// A group-specific query (last-member query, RFC 3376 section 6.6.3.1).
    pub fn group_query(&self, group: Ipv4Addr, max_resp: Duration) -> Message {
        let v3 = self.version >= 3;
        Message::Query(Query {
            version: match self.version {
                3.. => QueryVersion::V3,
                2 => QueryVersion::V2,
                _ => QueryVersion::V1,
            },
            max_resp,
            group,
            s_flag: false,
            qrv: if v3 { self.qrv() } else { 0 },
            qqi: if v3 {
                self.query_interval
            } else {
                Duration::ZERO
            },
            sources: vec![],
        })
    }

    /// The MLD general query we send (`version` is the MLD version, 1 or 2).
    pub fn mld_general_query(&self) -> mld::Message {
        self.mld_group_query(Ipv6Addr::UNSPECIFIED, self.query_response_interval)
    }

    /// An MLD multicast-address-specific query (RFC 3810 section 7.6.3.1, RFC 2710 section 4).
    pub fn mld_group_query(&self, group: Ipv6Addr, max_resp: Duration) -> mld::Message {
        let v2 = self.version >= 2;
        mld::Message::Query(mld::Query {
            version: if v2 {
                mld::QueryVersion::V2
            } else {
                mld::QueryVersion::V1
            },
            max_resp,
            group,
            s_flag: false,
            qrv: if v2 { self.qrv() } else { 0 },
            qqi: if v2 {
                self.query_interval
            } else {
                Duration::ZERO
            },
            sources: vec![],
        })
    }
}

/// A query heard on a downstream, with what the election and the timers take from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardQuery<A = Ipv4Addr> {
    /// IGMP 1, 2 or 3; MLD 1 or 2.
    pub version: u8,
    /// The decoded Max Resp Time (an IGMPv1 query's 0 taken as 10 s, RFC 2236 section 4).
    pub max_resp: Duration,
    /// Unspecified for a general query.
    pub group: A,
    pub s_flag: bool,
    /// The querier's robustness (IGMPv3/MLDv2; 0 when absent or unknown).
    pub qrv: u8,
    /// The querier's query interval (IGMPv3/MLDv2; zero when absent or unknown).
    pub qqi: Duration,
    /// Sources of a group-and-source-specific query.
    pub sources: Vec<A>,
}

impl<A: GroupAddr> HeardQuery<A> {
    /// A general query of `version` with the RFC 3376 default timers (tests, fuzzing).
    pub fn general(version: u8) -> Self {
        HeardQuery {
            version,
            max_resp: Duration::from_secs(10),
            group: A::MIN,
            s_flag: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }
    }

    pub fn is_general(&self) -> bool {
        self.group.is_unspecified()
    }
}

/// The timers an interface's membership runs by: the configured ones, or, as non-querier,
/// those the elected querier's queries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub robustness: u32,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
}

impl Timers {
    /// Other Querier Present Interval, RFC 3376 section 8.5 (RFC 3810 9.5): robustness x QI
    /// + QRI / 2.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval / 2
    }
}

/// What the elected other querier's last queries said (RFC 3376 4.1.6, 4.1.7 and 8.3; RFC
/// 3810 5.1.8, 5.1.9 and 9.3): None keeps the configured value (a QRV or QQIC of 0, or a
/// version without the field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Adopted {
    robustness: Option<u32>,
    query_interval: Option<Duration>,
    query_response_interval: Option<Duration>,
}

/// A querier of an older version than ours heard on the interface (RFC 3376 7.3.1, RFC
/// 3810 8.3.1), from any address, 0.0.0.0 and higher ones included: its queries turn the
/// hosts to the older version whether it wins the election or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OlderQuerier<A = Ipv4Addr> {
    pub version: u8,
    pub address: A,
    pub last_seen: Instant,
}

/// An older-version querier is warned about when first heard and again at most this often
/// while it stays.
pub const OLDER_QUERIER_WARN_EVERY: Duration = Duration::from_secs(600);

/// Who queries on the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<A = Ipv4Addr> {
    /// We send general queries.
    Querier,
    /// Another querier with a lower address was heard; we stay quiet until `until`.
    NonQuerier { other: A, until: Instant },
    /// `--querier off`: we never query (`other` is the last querier heard, if any).
    Disabled { other: Option<A> },
}

/// A change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange<A = Ipv4Addr> {
    /// We stopped querying because `other` has a lower address.
    Yielded { other: A },
    /// The other querier went silent; we query again.
    Resumed,
}

impl<A> RoleChange<A> {
    /// The same change with the address converted (e.g. into an `IpAddr` for logging).
    pub fn map<B>(self, f: impl FnOnce(A) -> B) -> RoleChange<B> {
        match self {
            RoleChange::Yielded { other } => RoleChange::Yielded { other: f(other) },
            RoleChange::Resumed => RoleChange::Resumed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Querier<A = Ipv4Addr> {
    cfg: QuerierConfig,
    own_ip: A,
    role: Role<A>,
    startup_left: u32,
    next_query: Instant,
    /// The IGMP/MLD version of the last query from the other querier of `role`.
    other_version: Option<u8>,
    /// The elected other querier's timers, until `adopted_until`.
    adopted: Adopted,
    adopted_until: Option<Instant>,
    /// The oldest-version querier heard, until `older_until`.
    older: Option<OlderQuerier<A>>,
    older_until: Instant,
    older_warned: Option<Instant>,
}

impl<A: GroupAddr> Querier<A> {
    /// A querier that starts up at `now`: `robustness` general queries spaced by the startup
    /// query interval (RFC 3376 section 8.7), the first one at once.
    pub fn new(cfg: QuerierConfig, own_ip: A, now: Instant) -> Self {
        let role = if cfg.mode == Mode::Off {
            Role::Disabled { other: None }
        } else {
            Role::Querier
        };
        let startup_left = cfg.robustness;
        Querier {
            cfg,
            own_ip,
            role,
            startup_left,
            next_query: now,
            other_version: None,
            adopted: Adopted::default(),
            adopted_until: None,
            older: None,
            older_until: now,
            older_warned: None,
        }
    }

    pub fn config(&self) -> &QuerierConfig {
        &self.cfg
    }

    /// What our queries carry: the configured values, the version lowered to that of an
    /// older querier present on the link (RFC 3376 7.3.1: the querier uses the lowest
    /// version present; RFC 3810 8.3.1).
    pub fn query_config(&self) -> QuerierConfig {
        let mut c = self.cfg.clone();
        if let Some(o) = self.older {
            c.version = c.version.min(o.version);
        }
        c
    }

    /// The timers the interface's membership runs by: as non-querier (or with `--querier
    /// off`) the elected querier's robustness, query interval and query response interval
    /// where its queries carry them (RFC 3376 4.1.6, 4.1.7; RFC 3810 5.1.8, 5.1.9), the
    /// configured ones otherwise.
    pub fn timers(&self) -> Timers {
        if self.role == Role::Querier || self.adopted_until.is_none() {
            return self.cfg.timers();
        }
        self.timers_adopted()
    }

    /// The older-version querier present, if any.
    pub fn older_querier(&self) -> Option<OlderQuerier<A>> {
        self.older
    }

    pub fn role(&self) -> Role<A> {
        self.role
    }

    pub fn own_ip(&self) -> A {
        self.own_ip
    }

    /// The version of the last query heard from the querier that `role` names as the other
    /// one (NonQuerier's `other`, Disabled's `other`); None when `role` names none.
    pub fn other_version(&self) -> Option<u8> {
        match self.role {
            Role::NonQuerier { .. } | Role::Disabled { other: Some(_) } => self.other_version,
            _ => None,
        }
    }

    /// Start over as at daemon start (the interface came back).
    pub fn restart(&mut self, now: Instant) {
        *self = Querier::new(self.cfg.clone(), self.own_ip, now);
    }

    /// Whether the querier at `other` beats us (RFC 3376 section 6.6.2: lowest address wins).
    /// A query from our own address is our own (never taken as another querier's). A query
    /// from 0.0.0.0 never wins: it comes from a snooping device without an address, and
    /// yielding to it could leave the segment with no querier. When we have no address
    /// ourselves, any addressed querier wins, as a real router should be the querier.
    fn beats_us(&self, other: A) -> bool {
        if other == self.own_ip || other.is_unspecified() {
            return false;
        }
        self.own_ip.is_unspecified() || other < self.own_ip
    }

    /// A query was heard on the interface from source `src`. Returns the role change to log
    /// and, when a warning is due, the older-version querier it heard.
    pub fn accept_query(
        &mut self,
        src: A,
        q: &HeardQuery<A>,
        now: Instant,
    ) -> (Option<RoleChange<A>>, Option<OlderQuerier<A>>) {
        if src == self.own_ip && !src.is_unspecified() {
            return (None, None);
        }
        let older = self.note_older(src, q.version, now);
        // RFC 9776 section 6.6.2 (RFC 9777 7.6.2): the election looks at general queries
        // only; a group-specific query neither makes us yield nor refreshes the timer.
        let change = if q.is_general() {
            self.elect(src, q.version, now)
        } else {
            None
        };
        if self.is_elected(src) {
            self.adopt(q, now);
        }
        (change, older)
    }

    /// Whether `src` is the querier we defer to (or, with `--querier off`, the one we heard).
    fn is_elected(&self, src: A) -> bool {
        match self.role {
            Role::NonQuerier { other, .. } | Role::Disabled { other: Some(other) } => other == src,
            _ => false,
        }
    }

    /// Take the elected querier's timers from its query: QRV and QQIC from any of its
    /// queries (a 0 keeps the configured value, RFC 3376 4.1.6 and 4.1.7), the maximum
    /// response time from its general queries only (a group-specific one carries the Last
    /// Member Query Interval instead).
    fn adopt(&mut self, q: &HeardQuery<A>, now: Instant) {
        self.adopted.robustness = (q.qrv != 0).then_some(u32::from(q.qrv));
        self.adopted.query_interval = (!q.qqi.is_zero()).then_some(q.qqi);
        if !q.is_general() {
            return;
        }
        if !q.max_resp.is_zero() {
            self.adopted.query_response_interval = Some(q.max_resp);
        }
        // Its general query restarts the Other Querier Present timer, now with its timers.
        let until = now + self.timers_adopted().other_querier_present_interval();
        self.adopted_until = Some(until);
        if let Role::NonQuerier { other, .. } = self.role {
            self.role = Role::NonQuerier { other, until };
        }
    }

    /// The adopted timers, whatever the role.
    fn timers_adopted(&self) -> Timers {
        let c = self.cfg.timers();
        Timers {
            robustness: self.adopted.robustness.unwrap_or(c.robustness),
            query_interval: self.adopted.query_interval.unwrap_or(c.query_interval),
            query_response_interval: self
                .adopted
                .query_response_interval
                .unwrap_or(c.query_response_interval),
        }
    }

    /// Record a query older than the version we run; returns it when a warning is due
    /// (first heard, a different version or address, or [`OLDER_QUERIER_WARN_EVERY`] since
    /// the last warning).
    fn note_older(&mut self, src: A, version: u8, now: Instant) -> Option<OlderQuerier<A>> {
        if version >= self.cfg.version {
            return None;
        }
        let heard = OlderQuerier {
            version,
            address: src,
            last_seen: now,
        };
        let prev = self.older.filter(|_| now < self.older_until);
        // The oldest version present is the one that counts; a newer (still older than
        // ours) one replaces it only once it is gone.
        if prev.is_some_and(|p| p.version < version) {
            return None;
        }
        self.older = Some(heard);
        self.older_until = now + self.timers().other_querier_present_interval();
        let changed = prev.is_none_or(|p| (p.version, p.address) != (version, src));
        let due = self
            .older_warned
            .is_none_or(|t| now >= t + OLDER_QUERIER_WARN_EVERY);
        if changed || due {
            self.older_warned = Some(now);
            return Some(heard);
        }
        None
    }

    /// The election part of a general query from `src` of `version`.
    fn elect(&mut self, src: A, version: u8, now: Instant) -> Option<RoleChange<A>> {
        if !self.beats_us(src) {
            return None;
        }
        let oqpi = self.timers_adopted().other_querier_present_interval();
        match self.role {
            Role::Disabled { .. } => {
                self.role = Role::Disabled { other: Some(src) };
                self.other_version = Some(version);
                None
            }
            Role::Querier if self.cfg.mode == Mode::On => None,
            Role::Querier => {
                self.other_version = Some(version);
                self.adopted = Adopted::default();
                self.role = Role::NonQuerier {
                    other: src,
                    until: now + self.cfg.timers().other_querier_present_interval(),
                };
                Some(RoleChange::Yielded { other: src })
            }
            Role::NonQuerier { other, .. } => {
                // Keep the lowest address heard; refresh the timer.
                if src <= other {
                    self.other_version = Some(version);
                }
                if src < other {
                    // A new elected querier: its own queries set the timers.
                    self.adopted = Adopted::default();
                }
                let other = if src < other { src } else { other };
                self.role = Role::NonQuerier {
                    other,
                    until: now + oqpi,
                };
                None
            }
        }
    }

    /// Run timers. Returns whether a general query is due now, and a role change to log.
    pub fn poll(&mut self, now: Instant) -> (bool, Option<RoleChange<A>>) {
        let mut change = None;
        if self.older.is_some() && now >= self.older_until {
            self.older = None;
        }
        if self.adopted_until.is_some_and(|t| now >= t) {
            self.adopted_until = None;
            self.adopted = Adopted::default();
        }
        if let Role::NonQuerier { until, .. } = self.role {
            if now < until {
                return (false, None);
            }
            // Other querier present timer expired: become querier again (6.6.2) and query now.
            self.role = Role::Querier;
            self.next_query = now;
            change = Some(RoleChange::Resumed);
        }
        if self.role != Role::Querier || now < self.next_query {
            return (false, change);
        }
        if self.startup_left > 0 {
            self.startup_left -= 1;
        }
        let gap = if self.startup_left > 0 {
            self.cfg.startup_query_interval()
        } else {
            self.cfg.query_interval
        };
        self.next_query = now + gap;
        (true, change)
    }

    /// When `poll` has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let role = match self.role {
            Role::Querier => Some(self.next_query),
            Role::NonQuerier { until, .. } => Some(until),
            Role::Disabled { .. } => None,
        };
        let older = self.older.map(|_| self.older_until);
        role.into_iter()
            .chain(older)
            .chain(self.adopted_until)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: Mode) -> QuerierConfig {
        QuerierConfig {
            mode,
            version: 3,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            robustness: 2,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn gq(version: u8) -> HeardQuery {
        HeardQuery::general(version)
    }

    /// Collect the instants at which queries go out, polling at every deadline until `end`.
    fn queries_until(q: &mut Querier, t0: Instant, end: Duration) -> Vec<Duration> {
        let mut out = vec![];
        let mut now = t0;
        while now <= t0 + end {
            if q.poll(now).0 {
                out.push(now - t0);
            }
            match q.next_deadline() {
                Some(d) if d > now => now = d,
                Some(_) => {}
                None => break,
            }
        }
        out
    }

    #[test]
    fn startup_burst_then_regular_interval() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.1"), t0);
        let sent = queries_until(&mut q, t0, Duration::from_secs(400));
        let s = |n| Duration::from_millis(n);
        // robustness (2) startup queries QI/4 apart, then every QI.
        assert_eq!(sent, vec![s(0), s(31_250), s(156_250), s(281_250)]);
    }

    #[test]
    fn the_other_queriers_version_is_that_of_the_lowest_address_while_it_is_there() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        assert_eq!(q.other_version(), None);
        q.accept_query(ip("10.2.0.3"), &gq(2), t0);
        assert_eq!(q.other_version(), Some(2));
        // A higher address does not change the other querier, nor its version.
        q.accept_query(ip("10.2.0.4"), &gq(3), t0);
        assert_eq!(q.other_version(), Some(2));
        // The same one, now in v3; then a lower one in v1.
        q.accept_query(ip("10.2.0.3"), &gq(3), t0);
        assert_eq!(q.other_version(), Some(3));
        q.accept_query(ip("10.2.0.1"), &gq(1), t0);
        assert_eq!(q.other_version(), Some(1));
        // It went silent: we query again and name no other querier.
        q.poll(t0 + Duration::from_secs(300));
        assert_eq!(q.role(), Role::Querier);
        assert_eq!(q.other_version(), None);
        // --querier off remembers the last lower querier and its version.
        let mut off = Querier::new(cfg(Mode::Off), ip("10.2.0.5"), t0);
        off.accept_query(ip("10.2.0.2"), &gq(2), t0);
        assert_eq!(
            off.role(),
            Role::Disabled {
                other: Some(ip("10.2.0.2"))
            }
        );
        assert_eq!(off.other_version(), Some(2));
    }

    #[test]
    fn lower_address_silences_us_until_other_querier_present_interval() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        assert!(q.poll(t0).0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            q.accept_query(ip("10.2.0.1"), &gq(3), t1).0,
            Some(RoleChange::Yielded {
                other: ip("10.2.0.1")
            })
        );
        let until = t1 + Duration::from_secs(255);
        assert_eq!(q.next_deadline(), Some(until));
        assert_eq!(q.poll(until - Duration::from_millis(1)), (false, None));
        assert_eq!(q.poll(until), (true, Some(RoleChange::Resumed)));
        assert_eq!(q.role(), Role::Querier);
    }

    #[test]
    fn higher_own_and_unspecified_sources_are_ignored() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        assert_eq!(q.accept_query(ip("10.2.0.9"), &gq(3), t0).0, None);
        assert_eq!(
            q.accept_query(ip("10.2.0.5"), &gq(3), t0).0,
            None,
            "our own query"
        );
        assert_eq!(q.accept_query(Ipv4Addr::UNSPECIFIED, &gq(3), t0).0, None);
        assert_eq!(q.role(), Role::Querier);
    }

    #[test]
    fn without_an_address_any_addressed_querier_wins() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), Ipv4Addr::UNSPECIFIED, t0);
        assert_eq!(q.accept_query(Ipv4Addr::UNSPECIFIED, &gq(3), t0).0, None);
        assert!(q.accept_query(ip("192.168.1.1"), &gq(3), t0).0.is_some());
    }

    #[test]
    fn refresh_keeps_lowest_and_extends() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        q.accept_query(ip("10.2.0.3"), &gq(3), t0);
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(q.accept_query(ip("10.2.0.4"), &gq(3), t1).0, None);
        assert_eq!(
            q.role(),
            Role::NonQuerier {
                other: ip("10.2.0.3"),
                until: t1 + Duration::from_secs(255)
            }
        );
    }

    #[test]
    fn mode_on_never_yields_and_off_never_queries() {
        let t0 = Instant::now();
        let mut on = Querier::new(cfg(Mode::On), ip("10.2.0.5"), t0);
        assert_eq!(on.accept_query(ip("10.2.0.1"), &gq(3), t0).0, None);
        assert!(on.poll(t0).0);
        let mut off = Querier::new(cfg(Mode::Off), ip("10.2.0.5"), t0);
        assert!(!off.poll(t0).0);
        assert_eq!(off.next_deadline(), None);
        off.accept_query(ip("10.2.0.1"), &gq(3), t0);
        assert_eq!(
            off.role(),
            Role::Disabled {
                other: Some(ip("10.2.0.1"))
            }
        );
    }

    #[test]
    fn restart_repeats_the_startup_burst() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        queries_until(&mut q, t0, Duration::from_secs(300));
        let t1 = t0 + Duration::from_secs(1000);
        q.restart(t1);
        assert_eq!(queries_until(&mut q, t1, Duration::from_secs(40)).len(), 2);
    }

    #[test]
    fn query_messages_carry_our_timers() {
        let c = cfg(Mode::Auto);
        let Message::Query(q) = c.general_query() else {
            panic!()
        };
        assert_eq!(
            (q.version, q.max_resp, q.qrv, q.qqi),
            (
                QueryVersion::V3,
                Duration::from_secs(10),
                2,
                Duration::from_secs(125)
            )
        );
        assert!(q.group.is_unspecified());
        let c2 = QuerierConfig { version: 2, ..c };
        let Message::Query(q) = c2.group_query(ip("239.1.1.1"), Duration::from_secs(1)) else {
            panic!()
        };
        assert_eq!(
            (q.version, q.group, q.qrv),
            (QueryVersion::V2, ip("239.1.1.1"), 0)
        );
        // RFC 3376 4.1.6 / RFC 3810 5.1.8: a robustness above 7 goes out as QRV 0.
        let big = QuerierConfig {
            robustness: 9,
            ..cfg(Mode::Auto)
        };
        let Message::Query(q) = big.general_query() else {
            panic!()
        };
        assert_eq!(q.qrv, 0);
        let mld::Message::Query(q) = big.mld_general_query() else {
            panic!()
        };
        assert_eq!(q.qrv, 0);
    }

    fn v3_query(qrv: u8, qqi_s: u64, max_resp_ms: u64) -> HeardQuery {
        HeardQuery {
            qrv,
            qqi: Duration::from_secs(qqi_s),
            max_resp: Duration::from_millis(max_resp_ms),
            ..gq(3)
        }
    }

    /// Issue 15 defect 2: as non-querier, the elected querier's QRV, QQIC and Max Resp Time
    /// set the membership timers and the Other Querier Present Interval (RFC 3376 4.1.6,
    /// 4.1.7; RFC 3810 5.1.8, 5.1.9).
    #[test]
    fn adopts_elected_querier_robustness_and_interval() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::Auto);
        c.query_interval = Duration::from_secs(10);
        let mut q = Querier::new(c, ip("10.2.0.5"), t0);
        assert_eq!(q.timers().query_interval, Duration::from_secs(10));
        q.accept_query(ip("10.2.0.1"), &v3_query(3, 30, 5000), t0);
        let want = Timers {
            robustness: 3,
            query_interval: Duration::from_secs(30),
            query_response_interval: Duration::from_secs(5),
        };
        assert_eq!(q.timers(), want);
        // Other querier present: 3 x 30 s + 5 s / 2.
        let until = t0 + Duration::from_millis(92_500);
        assert_eq!(
            q.role(),
            Role::NonQuerier {
                other: ip("10.2.0.1"),
                until
            }
        );
        // A higher querier's values are not taken; a group-specific query of the elected
        // one keeps its Max Resp (the Last Member Query Interval) out.
        q.accept_query(ip("10.2.0.3"), &v3_query(7, 60, 1000), t0);
        assert_eq!(q.timers(), want);
        let gsq = HeardQuery {
            group: ip("239.1.1.1"),
            ..v3_query(3, 30, 1000)
        };
        q.accept_query(ip("10.2.0.1"), &gsq, t0 + Duration::from_secs(1));
        assert_eq!(q.timers(), want);
        // The querier goes silent: back to the configured timers, and we query.
        let back = q.poll(t0 + Duration::from_secs(200));
        assert_eq!(back, (true, Some(RoleChange::Resumed)));
        assert_eq!(
            q.timers().query_interval,
            Duration::from_secs(10),
            "configured again"
        );
        // With --querier off the querier heard sets the timers too, until it goes silent.
        let mut off = Querier::new(cfg(Mode::Off), ip("10.2.0.5"), t0);
        off.accept_query(ip("10.2.0.1"), &v3_query(3, 30, 5000), t0);
        assert_eq!(off.timers(), want);
        assert_eq!(off.next_deadline(), Some(until));
        off.poll(until);
        assert_eq!(off.timers(), cfg(Mode::Off).timers());
        // As the querier (mode on) we keep our own.
        let mut on = Querier::new(cfg(Mode::On), ip("10.2.0.5"), t0);
        on.accept_query(ip("10.2.0.1"), &v3_query(3, 30, 5000), t0);
        assert_eq!(on.timers(), cfg(Mode::On).timers());
    }

    /// Issue 15 defect 2: a QRV or QQIC of 0, or a v2 query without the fields, keeps the
    /// configured value (RFC 3376 4.1.6, 4.1.7).
    #[test]
    fn qqic_zero_keeps_configured_values() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        q.accept_query(ip("10.2.0.1"), &v3_query(0, 0, 4000), t0);
        let c = cfg(Mode::Auto).timers();
        assert_eq!(
            q.timers(),
            Timers {
                query_response_interval: Duration::from_secs(4),
                ..c
            }
        );
        // The next query carries QRV 4 and QQIC 20; then a v2 query: back to configured
        // robustness and interval, its Max Resp Time kept.
        q.accept_query(ip("10.2.0.1"), &v3_query(4, 20, 4000), t0);
        assert_eq!(
            (q.timers().robustness, q.timers().query_interval.as_secs()),
            (4, 20)
        );
        let v2 = HeardQuery {
            max_resp: Duration::from_secs(8),
            ..gq(2)
        };
        q.accept_query(ip("10.2.0.1"), &v2, t0);
        assert_eq!(
            q.timers(),
            Timers {
                query_response_interval: Duration::from_secs(8),
                ..c
            }
        );
    }

    /// Issue 15 defect 3: an older-version querier is recorded whatever its address (0.0.0.0
    /// included), warned about once per [`OLDER_QUERIER_WARN_EVERY`], and forgotten one
    /// Other Querier Present Interval after its last query (RFC 3376 7.3.1, RFC 3810 8.3.1).
    #[test]
    fn older_querier_recorded_per_interface() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        assert_eq!(q.older_querier(), None);
        let zero = Ipv4Addr::UNSPECIFIED;
        let (change, warn) = q.accept_query(zero, &gq(2), t0);
        assert_eq!(change, None, "0.0.0.0 never wins");
        let first = OlderQuerier {
            version: 2,
            address: zero,
            last_seen: t0,
        };
        assert_eq!(warn, Some(first));
        assert_eq!(q.older_querier(), Some(first));
        assert_eq!(q.role(), Role::Querier);
        // Heard again 60 s later: recorded, no second warning inside the window.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(q.accept_query(zero, &gq(2), t1).1, None);
        assert_eq!(q.older_querier().unwrap().last_seen, t1);
        // A v3 query is not older; a v1 one from elsewhere is older still: warned at once.
        assert_eq!(q.accept_query(ip("10.2.0.9"), &gq(3), t1).1, None);
        let v1 = q.accept_query(ip("10.2.0.9"), &gq(1), t1).1.unwrap();
        assert_eq!((v1.version, v1.address), (1, ip("10.2.0.9")));
        // The v2 one does not replace the v1 one while that stays.
        assert_eq!(q.accept_query(zero, &gq(2), t1).1, None);
        assert_eq!(q.older_querier().unwrap().version, 1);
        // Still there (querying every 100 s) after the warning window: warned again.
        let t2 = t1 + OLDER_QUERIER_WARN_EVERY;
        for k in 1..6 {
            let t = t1 + Duration::from_secs(100 * k);
            assert_eq!(q.accept_query(ip("10.2.0.9"), &gq(1), t).1, None);
        }
        assert!(q.accept_query(ip("10.2.0.9"), &gq(1), t2).1.is_some());
        // Gone for an Other Querier Present Interval (255 s): forgotten.
        q.poll(t2 + Duration::from_secs(255));
        assert_eq!(q.older_querier(), None);
        // An MLDv1 querier next to our MLDv2 one.
        let mut c6 = cfg(Mode::Auto);
        c6.version = 2;
        let me6: Ipv6Addr = "fe80::5".parse().unwrap();
        let mut q6 = Querier::new(c6, me6, t0);
        let w = q6
            .accept_query(Ipv6Addr::UNSPECIFIED, &HeardQuery::general(1), t0)
            .1;
        assert_eq!(w.map(|o| o.version), Some(1));
        assert_eq!(q6.query_config().version, 1);
    }

    /// Issue 15 defect 3: as querier we send the lowest version present (RFC 3376 7.3.1);
    /// once the older querier is gone, our own again.
    #[test]
    fn querier_sends_oldest_version_present() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        assert_eq!(q.query_config().version, 3);
        q.accept_query(Ipv4Addr::UNSPECIFIED, &gq(2), t0);
        assert_eq!(q.query_config().version, 2);
        let Message::Query(m) = q.query_config().general_query() else {
            panic!()
        };
        assert_eq!((m.version, m.qrv), (QueryVersion::V2, 0));
        q.accept_query(ip("10.2.0.7"), &gq(1), t0);
        let Message::Query(m) = q.query_config().general_query() else {
            panic!()
        };
        assert_eq!(m.version, QueryVersion::V1);
        q.poll(t0 + Duration::from_secs(255));
        assert_eq!(q.query_config().version, 3);
        assert_eq!(q.config().version, 3, "the configuration is not changed");
    }

    /// RFC 9776 section 6.6.2: only a general query from a lower address makes us yield
    /// or refreshes the Other Querier Present timer.
    #[test]
    fn election_yields_only_to_general_queries() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        let gsq = HeardQuery {
            group: ip("239.1.1.1"),
            ..gq(3)
        };
        assert_eq!(q.accept_query(ip("10.2.0.1"), &gsq, t0).0, None);
        assert_eq!(q.role(), Role::Querier);
        assert!(q.accept_query(ip("10.2.0.1"), &gq(3), t0).0.is_some());
        let until = t0 + Duration::from_secs(255);
        q.accept_query(ip("10.2.0.1"), &gsq, t0 + Duration::from_secs(100));
        assert_eq!(
            q.role(),
            Role::NonQuerier {
                other: ip("10.2.0.1"),
                until
            },
            "a group-specific query does not refresh the timer"
        );
        assert_eq!(q.poll(until).1, Some(RoleChange::Resumed));
    }
}
