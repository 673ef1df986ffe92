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
    /// Other Querier Present Interval, RFC 3376 section 8.5: robustness x QI + QRI / 2.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval / 2
    }

    /// The general query we send.
    pub fn general_query(&self) -> Message {
        self.group_query(Ipv4Addr::UNSPECIFIED, self.query_response_interval)
    }

    /// A group-specific query (last-member query, RFC 3376 section 6.6.3.1).
    pub fn group_query(&self, group: Ipv4Addr, max_resp: Duration) -> Message {
        let v3 = self.version >= 3;
        Message::Query(Query {
            version: if v3 {
                QueryVersion::V3
            } else {
                QueryVersion::V2
            },
            max_resp,
            group,
            s_flag: false,
            qrv: if v3 { self.robustness.min(7) as u8 } else { 0 },
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
            qrv: if v2 { self.robustness.min(7) as u8 } else { 0 },
            qqi: if v2 {
                self.query_interval
            } else {
                Duration::ZERO
            },
            sources: vec![],
        })
    }
}

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
        }
    }

    pub fn config(&self) -> &QuerierConfig {
        &self.cfg
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

    /// A query of `version` was heard on the interface from source `src`.
    pub fn accept_query(&mut self, src: A, version: u8, now: Instant) -> Option<RoleChange<A>> {
        if !self.beats_us(src) {
            return None;
        }
        match self.role {
            Role::Disabled { .. } => {
                self.role = Role::Disabled { other: Some(src) };
                self.other_version = Some(version);
                None
            }
            Role::Querier if self.cfg.mode == Mode::On => None,
            Role::Querier => {
                self.other_version = Some(version);
                self.role = Role::NonQuerier {
                    other: src,
                    until: now + self.cfg.other_querier_present_interval(),
                };
                Some(RoleChange::Yielded { other: src })
            }
            Role::NonQuerier { other, .. } => {
                // Keep the lowest address heard; refresh the timer.
                if src <= other {
                    self.other_version = Some(version);
                }
                let other = if src < other { src } else { other };
                self.role = Role::NonQuerier {
                    other,
                    until: now + self.cfg.other_querier_present_interval(),
                };
                None
            }
        }
    }

    /// Run timers. Returns whether a general query is due now, and a role change to log.
    pub fn poll(&mut self, now: Instant) -> (bool, Option<RoleChange<A>>) {
        let mut change = None;
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

    /// When `poll` has work next (None when disabled).
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.role {
            Role::Querier => Some(self.next_query),
            Role::NonQuerier { until, .. } => Some(until),
            Role::Disabled { .. } => None,
        }
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
        q.accept_query(ip("10.2.0.3"), 2, t0);
        assert_eq!(q.other_version(), Some(2));
        // A higher address does not change the other querier, nor its version.
        q.accept_query(ip("10.2.0.4"), 3, t0);
        assert_eq!(q.other_version(), Some(2));
        // The same one, now in v3; then a lower one in v1.
        q.accept_query(ip("10.2.0.3"), 3, t0);
        assert_eq!(q.other_version(), Some(3));
        q.accept_query(ip("10.2.0.1"), 1, t0);
        assert_eq!(q.other_version(), Some(1));
        // It went silent: we query again and name no other querier.
        q.poll(t0 + Duration::from_secs(300));
        assert_eq!(q.role(), Role::Querier);
        assert_eq!(q.other_version(), None);
        // --querier off remembers the last lower querier and its version.
        let mut off = Querier::new(cfg(Mode::Off), ip("10.2.0.5"), t0);
        off.accept_query(ip("10.2.0.2"), 2, t0);
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
            q.accept_query(ip("10.2.0.1"), 3, t1),
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
        assert_eq!(q.accept_query(ip("10.2.0.9"), 3, t0), None);
        assert_eq!(q.accept_query(ip("10.2.0.5"), 3, t0), None, "our own query");
        assert_eq!(q.accept_query(Ipv4Addr::UNSPECIFIED, 3, t0), None);
        assert_eq!(q.role(), Role::Querier);
    }

    #[test]
    fn without_an_address_any_addressed_querier_wins() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), Ipv4Addr::UNSPECIFIED, t0);
        assert_eq!(q.accept_query(Ipv4Addr::UNSPECIFIED, 3, t0), None);
        assert!(q.accept_query(ip("192.168.1.1"), 3, t0).is_some());
    }

    #[test]
    fn refresh_keeps_lowest_and_extends() {
        let t0 = Instant::now();
        let mut q = Querier::new(cfg(Mode::Auto), ip("10.2.0.5"), t0);
        q.accept_query(ip("10.2.0.3"), 3, t0);
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(q.accept_query(ip("10.2.0.4"), 3, t1), None);
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
        assert_eq!(on.accept_query(ip("10.2.0.1"), 3, t0), None);
        assert!(on.poll(t0).0);
        let mut off = Querier::new(cfg(Mode::Off), ip("10.2.0.5"), t0);
        assert!(!off.poll(t0).0);
        assert_eq!(off.next_deadline(), None);
        off.accept_query(ip("10.2.0.1"), 3, t0);
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
    }
}
