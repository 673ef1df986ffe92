//! The I/O that differs between the address families, behind one trait: query and report
//! frames, and where a family's counters and forwarding snapshot live. The control thread
//! is written once over it.

use super::stats::Counters;
use crate::core::family::GroupAddr;
use crate::core::fib::{Fib, Forwarding};
use crate::core::reporter::ReportOut;
use crate::core::snooper::QueryOut;
use crate::wire::{igmp, ipv6, mld, MacAddr};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the control thread needs of one family's frames.
pub trait FamilyIo: GroupAddr {
    /// The Ethernet frame of a query from `mac`.
    fn query_frame(mac: MacAddr, q: &QueryOut<Self>) -> Vec<u8>;
    /// The Ethernet frame of an upstream report from `mac` and `source`.
    fn report_frame(mac: MacAddr, source: Self, r: &ReportOut<Self>) -> Vec<u8>;
    /// Counter of the queries sent.
    fn queries_sent(c: &Counters) -> &AtomicU64;
    /// Counter of the reports sent upstream.
    fn reports_sent(c: &Counters) -> &AtomicU64;
    /// `fwd` with this family's part replaced by `fib`.
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding;
}

impl FamilyIo for Ipv4Addr {
    fn query_frame(mac: MacAddr, q: &QueryOut<Self>) -> Vec<u8> {
        // General queries to all-systems, group-specific ones to the group (RFC 3376
        // section 4.1.12, RFC 2236 section 2).
        let dst = if q.is_general() {
            igmp::ALL_SYSTEMS
        } else {
            q.group
        };
        let msg = q.querier.group_query(q.group, q.max_resp);
        igmp::build_frame(mac, q.source, dst, &msg)
    }
    fn report_frame(mac: MacAddr, source: Self, r: &ReportOut<Self>) -> Vec<u8> {
        // RFC 3376 section 4.2.14: IGMPv3 reports to 224.0.0.22; RFC 2236 section 2 and 3:
        // v1/v2 reports to the group, leaves to all-routers. TTL 1 and Router Alert.
        let (dst, msg) = match r {
            ReportOut::Records(records) => (
                igmp::ALL_V3_ROUTERS,
                igmp::Message::ReportV3 {
                    records: records.clone(),
                },
            ),
            ReportOut::Join { version: 1, group } => {
                (*group, igmp::Message::ReportV1 { group: *group })
            }
            ReportOut::Join { group, .. } => (*group, igmp::Message::ReportV2 { group: *group }),
            ReportOut::Leave { group, .. } => {
                (igmp::ALL_ROUTERS, igmp::Message::LeaveV2 { group: *group })
            }
        };
        igmp::build_frame(mac, source, dst, &msg)
    }
    fn queries_sent(c: &Counters) -> &AtomicU64 {
        &c.queries_sent
    }
    fn reports_sent(c: &Counters) -> &AtomicU64 {
        &c.reports_sent
    }
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding {
        Forwarding {
            v4: fib,
            v6: fwd.v6.clone(),
        }
    }
}

impl FamilyIo for Ipv6Addr {
    fn query_frame(mac: MacAddr, q: &QueryOut<Self>) -> Vec<u8> {
        // RFC 3810 section 7.6.3.1 / RFC 2710 section 4: general queries to all-nodes,
        // multicast-address-specific queries to the address itself.
        let dst = if q.is_general() {
            mld::ALL_NODES
        } else {
            q.group
        };
        let msg = q.querier.mld_group_query(q.group, q.max_resp);
        ipv6::build_mld_frame(mac, q.source, dst, &msg)
    }
    fn report_frame(mac: MacAddr, source: Self, r: &ReportOut<Self>) -> Vec<u8> {
        // RFC 3810 section 5.2.14: MLDv2 reports to ff02::16; RFC 2710 section 3: MLDv1
        // reports to the address, dones to all-routers. Hop limit 1 and Router Alert.
        let (dst, msg) = match r {
            ReportOut::Records(records) => (
                mld::ALL_MLDV2_ROUTERS,
                mld::Message::ReportV2 {
                    records: records.clone(),
                },
            ),
            ReportOut::Join { group, .. } => (*group, mld::Message::ReportV1 { group: *group }),
            ReportOut::Leave { group, .. } => {
                (mld::ALL_ROUTERS, mld::Message::DoneV1 { group: *group })
            }
        };
        ipv6::build_mld_frame(mac, source, dst, &msg)
    }
    fn queries_sent(c: &Counters) -> &AtomicU64 {
        &c.mld_queries_sent
    }
    fn reports_sent(c: &Counters) -> &AtomicU64 {
        &c.mld_reports_sent
    }
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding {
        Forwarding {
            v4: fwd.v4.clone(),
            v6: fib,
        }
    }
}
