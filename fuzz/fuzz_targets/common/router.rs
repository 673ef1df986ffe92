//! A model of the upstream router that hears snoopcast's reports, shared by the `membership`,
//! `snooper` and `reporter` targets. Per group it keeps what a router concludes about this
//! one host's interface state from the reports it hears (RFC 3376 6.4 and 7.3.2, RFC 3810 7.4
//! and 8.3.2, read for a single reporter):
//!
//! - IS_EX(X), TO_EX(X): EXCLUDE(X);
//! - TO_IN(A): INCLUDE(A);
//! - IS_IN(B): INCLUDE(A) -> INCLUDE(A + B), EXCLUDE(X) -> EXCLUDE(X - B) (an answer to a
//!   group-and-source query names only the sources asked about, so it cannot replace the
//!   state; a full answer to a router in step changes nothing);
//! - ALLOW(B): INCLUDE(A) -> INCLUDE(A + B), EXCLUDE(X) -> EXCLUDE(X - B);
//! - BLOCK(B): INCLUDE(A) -> INCLUDE(A - B), EXCLUDE(X) -> EXCLUDE(X + B);
//! - an older-version report: (*, G); an IGMPv2 Leave / MLDv1 Done: gone;
//! - INCLUDE {} is no state at all.
//!
//! A record split over several records (RFC 3376 4.2.16: too many sources for one report) is
//! put together again first: consecutive records of one type and group in one batch of
//! reports are one record.
//!
//! Under an older querier the reports carry no sources, so the router knows only which
//! groups are joined, and after going back to the source-filtering version it knows the
//! sources only once a report tells it (a query's answer, a filter-mode change, or a source
//! change on a state it had right). [`Router::check`] therefore compares the whole state in
//! the source-filtering version and only the groups under an older one, and exempts a
//! group whose sources the older version lost until the router has it right again.

// Each target uses a part of this module.
#![allow(dead_code)]

use snoopcast::core::family::GroupAddr;
use snoopcast::core::membership::UpstreamWant;
use snoopcast::core::reporter::ReportOut;
use snoopcast::wire::igmp::RecordType;
use snoopcast::wire::{igmp, mld, Record};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The router's view of one host.
#[derive(Debug, Clone)]
pub struct Router<A> {
    /// Per group what the router concluded (canonical: no INCLUDE {}, EXCLUDE {} is
    /// `AnySource`).
    pub groups: BTreeMap<A, UpstreamWant<A>>,
    /// Groups the router knows only as joined: reported under an older querier, their
    /// sources unknown until a report in the source-filtering version sets them right.
    pub vague: BTreeSet<A>,
    /// Groups whose EXCLUDE record was cut to fit a report (RFC 3376 4.2.16): the router's
    /// exclude list may be short of the host's until a report tells it whole.
    pub cut: BTreeSet<A>,
}

impl<A> Default for Router<A> {
    fn default() -> Self {
        Router {
            groups: BTreeMap::new(),
            vague: BTreeSet::new(),
            cut: BTreeSet::new(),
        }
    }
}

/// (EXCLUDE?, sources) of a state; absent is INCLUDE {}.
fn filter<A: GroupAddr>(w: Option<&UpstreamWant<A>>) -> (bool, BTreeSet<A>) {
    match w {
        None => (false, BTreeSet::new()),
        Some(UpstreamWant::AnySource) => (true, BTreeSet::new()),
        Some(UpstreamWant::Exclude(x)) => (true, x.clone()),
        Some(UpstreamWant::Sources(s)) => (false, s.clone()),
    }
}

fn canonical<A: GroupAddr>(ex: bool, set: BTreeSet<A>) -> Option<UpstreamWant<A>> {
    match (ex, set.is_empty()) {
        (true, true) => Some(UpstreamWant::AnySource),
        (true, false) => Some(UpstreamWant::Exclude(set)),
        (false, true) => None,
        (false, false) => Some(UpstreamWant::Sources(set)),
    }
}

/// The records of a batch of reports with split records joined again.
pub fn joined_records<A: GroupAddr>(out: &[ReportOut<A>]) -> Vec<Record<A>> {
    let mut all: Vec<Record<A>> = Vec::new();
    for r in out {
        if let ReportOut::Records(rs) = r {
            for rec in rs {
                match all.last_mut() {
                    Some(last)
                        if last.group == rec.group && last.record_type == rec.record_type =>
                    {
                        last.sources.extend(rec.sources.iter().copied())
                    }
                    _ => all.push(rec.clone()),
                }
            }
        }
    }
    all
}

impl<A: GroupAddr> Router<A> {
    /// The link is new to the router (the upstream closed): it holds nothing for us.
    pub fn reset(&mut self) {
        self.groups.clear();
        self.vague.clear();
        self.cut.clear();
    }

    fn set(&mut self, g: A, ex: bool, set: BTreeSet<A>) {
        match canonical(ex, set) {
            Some(w) => self.groups.insert(g, w),
            None => self.groups.remove(&g),
        };
    }

    /// Hear one batch of reports (the output of one call).
    pub fn hear(&mut self, out: &[ReportOut<A>]) {
        for r in out {
            match r {
                ReportOut::Records(_) => {}
                ReportOut::Join { group, .. } => {
                    // RFC 3376 7.3.2: an older report is IS_EX {}.
                    self.groups.insert(*group, UpstreamWant::AnySource);
                    self.vague.insert(*group);
                }
                ReportOut::Leave { group, .. } => {
                    self.groups.remove(group);
                    self.vague.remove(group);
                }
            }
        }
        for rec in joined_records(out) {
            let g = rec.group;
            let b: BTreeSet<A> = rec.sources.iter().copied().collect();
            let (ex, cur) = filter(self.groups.get(&g));
            match rec.record_type {
                RecordType::ModeIsExclude | RecordType::ChangeToExclude => self.set(g, true, b),
                RecordType::ChangeToInclude => self.set(g, false, b),
                RecordType::ModeIsInclude | RecordType::AllowNew => {
                    if ex {
                        self.set(g, true, &cur - &b)
                    } else {
                        self.set(g, false, &cur | &b)
                    }
                }
                RecordType::BlockOld => {
                    if ex {
                        self.set(g, true, &cur | &b)
                    } else {
                        self.set(g, false, &cur - &b)
                    }
                }
                RecordType::Unknown(t) => panic!("record of unknown type {t} sent: {rec:?}"),
            }
        }
    }

    /// The router's view against the host's interface state `state`, the reporter being in
    /// compatibility `version`: the same groups, and in the source-filtering version the same
    /// filter, except for groups marked vague (then unmarked as soon as they agree).
    /// `lossy_exclude`: EXCLUDE records may be cut now (a max_report_len too small for them,
    /// RFC 3376 4.2.16), so the router's exclude list may be short of the host's (it then
    /// lets more in, never less); such a group stays marked until the lists agree.
    pub fn check(
        &mut self,
        state: &BTreeMap<A, UpstreamWant<A>>,
        version: u8,
        lossy_exclude: bool,
    ) {
        if A::ignores_leaves(version) {
            // IGMPv1 has no leave: the router's membership timer ends a group the host left.
            self.groups.retain(|g, _| state.contains_key(g));
        }
        // A vague group the host left: the router's group timer ends it (no report of the
        // source-filtering version need tell it, its filter was not the host's).
        let gone: Vec<A> = self
            .vague
            .iter()
            .filter(|g| !state.contains_key(g))
            .copied()
            .collect();
        for g in gone {
            self.vague.remove(&g);
            self.groups.remove(&g);
        }
        self.cut.retain(|g| state.contains_key(g));
        let keys: BTreeSet<A> = self.groups.keys().chain(state.keys()).copied().collect();
        for g in keys {
            let r = self.groups.get(&g);
            let w = state.get(&g);
            let same = if version < A::FILTER_VERSION {
                // Only joined or not counts; what the older reports lost is marked.
                if r.is_some() && w.is_some() && r != w {
                    self.vague.insert(g);
                }
                r.is_some() == w.is_some()
            } else if r == w {
                self.cut.remove(&g);
                true
            } else {
                let short = match (r, w) {
                    (Some(UpstreamWant::AnySource), Some(UpstreamWant::Exclude(_))) => true,
                    (Some(UpstreamWant::Exclude(a)), Some(UpstreamWant::Exclude(b))) => {
                        a.is_subset(b)
                    }
                    _ => false,
                };
                if short && lossy_exclude {
                    self.cut.insert(g);
                }
                short && self.cut.contains(&g)
            };
            if same && version >= A::FILTER_VERSION {
                self.vague.remove(&g);
            }
            assert!(
                same || self.vague.contains(&g),
                "router has {g} as {r:?}, the reporter's state is {w:?} (version {version}; \
                 router {:?}, state {state:?})",
                self.groups
            );
        }
    }
}

/// What differs between the families for the router: the wire form of a report.
pub trait Wire: GroupAddr {
    /// The length of the report's IGMP or ICMPv6 message as `emit` writes it.
    fn report_len(r: &ReportOut<Self>) -> usize;
}

impl Wire for Ipv4Addr {
    fn report_len(r: &ReportOut<Self>) -> usize {
        let msg = match r {
            ReportOut::Records(records) => igmp::Message::ReportV3 {
                records: records.clone(),
            },
            ReportOut::Join { version: 1, group } => igmp::Message::ReportV1 { group: *group },
            ReportOut::Join { group, .. } => igmp::Message::ReportV2 { group: *group },
            ReportOut::Leave { group, .. } => igmp::Message::LeaveV2 { group: *group },
        };
        let mut out = Vec::new();
        igmp::emit(&msg, &mut out);
        out.len()
    }
}

impl Wire for Ipv6Addr {
    fn report_len(r: &ReportOut<Self>) -> usize {
        let msg = match r {
            ReportOut::Records(records) => mld::Message::ReportV2 {
                records: records.clone(),
            },
            ReportOut::Join { group, .. } => mld::Message::ReportV1 { group: *group },
            ReportOut::Leave { group, .. } => mld::Message::DoneV1 { group: *group },
        };
        let mut out = Vec::new();
        mld::emit(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            mld::ALL_MLDV2_ROUTERS,
            &msg,
            &mut out,
        );
        out.len()
    }
}

/// Every source-filtering report fits `max_len` bytes; `max_len` below one record with one
/// source (the floor `pack` keeps) is not checked.
pub fn check_fits<A: Wire>(out: &[ReportOut<A>], max_len: usize) {
    for r in out {
        if let ReportOut::Records(recs) = r {
            assert!(!recs.is_empty(), "an empty report");
            let len = A::report_len(r);
            if max_len >= 8 + 4 + 2 * A::ADDR_LEN {
                assert!(
                    len <= max_len,
                    "a report of {len} bytes, max_report_len {max_len}: {r:?}"
                );
            }
        }
    }
}

/// The group MACs of a state (`Action::Listen`).
pub fn macs<A: GroupAddr>(
    state: &BTreeMap<A, UpstreamWant<A>>,
) -> BTreeSet<snoopcast::wire::MacAddr> {
    state.keys().map(|g| g.group_mac()).collect()
}

/// The smallest max_report_len that carries a record of `sources` sources whole.
pub fn whole_record_len<A: GroupAddr>(sources: usize) -> usize {
    8 + 4 + A::ADDR_LEN * (1 + sources)
}
