//! The forwarding snapshot: built by the table owner when membership changes, read by the
//! upstream capture thread without touching the table.

use super::membership::{FilterMode, MemberCounters};
use super::IfaceId;
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// One unicast receiver of a group.
#[derive(Debug, Clone)]
pub struct FibMember {
    pub iface: IfaceId,
    pub mac: MacAddr,
    pub mode: FilterMode,
    /// Sorted, for binary search.
    pub sources: Arc<[Ipv4Addr]>,
    pub counters: Arc<MemberCounters>,
}

impl FibMember {
    pub fn admits(&self, source: Ipv4Addr) -> bool {
        let listed = self.sources.binary_search(&source).is_ok();
        match self.mode {
            FilterMode::Include => listed,
            FilterMode::Exclude => !listed,
        }
    }
}

/// How one group is delivered.
#[derive(Debug, Clone, Default)]
pub struct GroupFwd {
    /// Interfaces where the group goes out as one L2 multicast copy (compat fallback).
    pub multicast_ifaces: Vec<IfaceId>,
    /// Unicast receivers on the other interfaces.
    pub members: Vec<FibMember>,
}

/// Where a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub iface: IfaceId,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Default)]
pub struct Fib {
    pub groups: HashMap<Ipv4Addr, GroupFwd>,
}

impl Fib {
    /// Copies for one (source, group) packet: one per admitting member, one group-MAC copy
    /// per multicast interface. Appends to `out`; also returns the admitting members' counters
    /// through `counters` so the caller can count after sending.
    pub fn targets<'a>(
        &'a self,
        source: Ipv4Addr,
        group: Ipv4Addr,
        out: &mut Vec<Target>,
        counters: &mut Vec<&'a Arc<MemberCounters>>,
    ) {
        let Some(g) = self.groups.get(&group) else {
            return;
        };
        for &iface in &g.multicast_ifaces {
            out.push(Target {
                iface,
                mac: MacAddr::for_ipv4_group(group),
            });
        }
        for m in &g.members {
            if m.admits(source) {
                out.push(Target {
                    iface: m.iface,
                    mac: m.mac,
                });
                counters.push(&m.counters);
            }
        }
    }
}
