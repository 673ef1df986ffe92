//! The upstream's link layer: which group MACs its NIC must pass, and what an older
//! upstream querier loses of the reported state.
//!
//! snoopcast reports upstream itself ([`super::reporter`]) and the box kernel holds no IP
//! membership for the groups forwarded, so nothing programs the NIC's multicast filter for
//! them but the data capture socket's own link-layer memberships (PACKET_ADD_MEMBERSHIP).
//! [`LinkFilter::plan`] decides them: one per group MAC, or all-multicast past a bound.

use super::family::GroupAddr;
use super::membership::UpstreamWant;
use crate::wire::MacAddr;
use std::collections::{BTreeMap, BTreeSet};

/// The groups whose upstream membership lists sources while the upstream querier speaks
/// `version`, older than the family's source-filtering one (IGMPv3, MLDv2). Reports are then
/// of the older version (RFC 3376 7.2.1, RFC 3810 8.2.1), which carries no sources: the join
/// arrives as (*, G), which an SSM router ignores for an SSM group (RFC 4604 section 2.1),
/// and any other router answers with every source.
pub fn sources_lost<A: GroupAddr>(version: u8, joined: &BTreeMap<A, UpstreamWant<A>>) -> Vec<A> {
    if version >= A::FILTER_VERSION {
        return Vec::new();
    }
    joined
        .iter()
        .filter(|(_, w)| matches!(w, UpstreamWant::Sources(_)))
        .map(|(g, _)| *g)
        .collect()
}

/// Most group MACs given to the upstream NIC one by one; past it, all-multicast. NICs have
/// small exact filters (often 16 to 64 entries) and fall back to a hash or to all-multicast
/// themselves; the bound keeps the socket's membership list, and the setsockopt calls per
/// change, small.
pub const MAX_LINK_GROUPS: usize = 256;

/// The link-layer memberships a capture socket holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFilter {
    pub macs: BTreeSet<MacAddr>,
    pub all_multicast: bool,
}

/// One change of a socket's link-layer memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Add(MacAddr),
    Drop(MacAddr),
    /// PACKET_MR_ALLMULTI on (true) or off.
    AllMulticast(bool),
}

impl LinkFilter {
    /// The memberships that let in `wanted`, with at most `bound` MACs, and the operations
    /// from `self` to them, ordered so that no wanted group is ever shut out on the way:
    /// all-multicast goes on before the MACs are dropped, and off only after they are added.
    pub fn plan(&self, wanted: &BTreeSet<MacAddr>, bound: usize) -> (LinkFilter, Vec<FilterOp>) {
        let target = if wanted.len() > bound {
            LinkFilter {
                macs: BTreeSet::new(),
                all_multicast: true,
            }
        } else {
            LinkFilter {
                macs: wanted.clone(),
                all_multicast: false,
            }
        };
        let mut ops = Vec::new();
        if target.all_multicast && !self.all_multicast {
            ops.push(FilterOp::AllMulticast(true));
        }
        ops.extend(
            target
                .macs
                .difference(&self.macs)
                .map(|m| FilterOp::Add(*m)),
        );
        ops.extend(
            self.macs
                .difference(&target.macs)
                .map(|m| FilterOp::Drop(*m)),
        );
        if !target.all_multicast && self.all_multicast {
            ops.push(FilterOp::AllMulticast(false));
        }
        (target, ops)
    }

    /// `self` after `op` took effect.
    pub fn apply(&mut self, op: FilterOp) {
        match op {
            FilterOp::Add(m) => {
                self.macs.insert(m);
            }
            FilterOp::Drop(m) => {
                self.macs.remove(&m);
            }
            FilterOp::AllMulticast(on) => self.all_multicast = on,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn mac(n: u8) -> MacAddr {
        MacAddr(1, 0, 0x5e, 0, 0, n)
    }

    fn macs(ns: impl IntoIterator<Item = u8>) -> BTreeSet<MacAddr> {
        ns.into_iter().map(mac).collect()
    }

    #[test]
    fn group_macs_are_added_and_dropped() {
        let f = LinkFilter::default();
        let (f, ops) = f.plan(&macs([1, 2]), 4);
        assert_eq!(ops, vec![FilterOp::Add(mac(1)), FilterOp::Add(mac(2))]);
        let (f2, ops) = f.plan(&macs([2, 3]), 4);
        assert_eq!(ops, vec![FilterOp::Add(mac(3)), FilterOp::Drop(mac(1))]);
        assert_eq!(f2.macs, macs([2, 3]));
        assert!(f2.plan(&macs([2, 3]), 4).1.is_empty(), "no change, no op");
    }

    #[test]
    fn past_the_bound_all_multicast_goes_on_first_and_off_last() {
        let (f, _) = LinkFilter::default().plan(&macs([1, 2]), 2);
        let (big, ops) = f.plan(&macs([1, 2, 3]), 2);
        assert_eq!(
            ops,
            vec![
                FilterOp::AllMulticast(true),
                FilterOp::Drop(mac(1)),
                FilterOp::Drop(mac(2))
            ]
        );
        assert!(big.all_multicast && big.macs.is_empty());
        let (_, ops) = big.plan(&macs([1]), 2);
        assert_eq!(
            ops,
            vec![FilterOp::Add(mac(1)), FilterOp::AllMulticast(false)]
        );
        // Replaying the ops gives the planned filter.
        let mut replay = big.clone();
        for op in ops {
            replay.apply(op);
        }
        assert_eq!(replay.macs, macs([1]));
        assert!(!replay.all_multicast);
    }

    #[test]
    fn upstream_old_querier_names_ssm_groups() {
        let g = Ipv4Addr::new(232, 1, 1, 1);
        let joined: BTreeMap<_, _> = [
            (
                g,
                UpstreamWant::Sources([Ipv4Addr::new(10, 0, 0, 1)].into()),
            ),
            (Ipv4Addr::new(239, 1, 1, 1), UpstreamWant::AnySource),
        ]
        .into();
        assert!(sources_lost(3, &joined).is_empty());
        assert_eq!(sources_lost(2, &joined), vec![g]);
    }
}
