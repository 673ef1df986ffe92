//! The forwarding snapshot: built by the table owner when membership changes, read by the
//! upstream capture thread without touching the table.

use super::family::GroupAddr;
use super::IfaceId;
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A host's source filter mode for one group (RFC 3376 section 3.2).
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

/// Per-group counters of what arrives on the upstream, shared with the forwarding snapshot
/// so the data path counts every packet of a group in the table, admitted by a member or not.
#[derive(Debug, Default)]
pub struct GroupCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// When the last packet was read, in milliseconds since the daemon's start plus one; 0
    /// while none has arrived. Written by the data path, which knows the start.
    pub last_ms: AtomicU64,
}

impl GroupCounters {
    /// Count one packet of `len` IP bytes read `at_ms` (milliseconds since the start).
    pub fn count(&self, len: usize, at_ms: u64) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.last_ms.store(at_ms + 1, Ordering::Relaxed);
    }

    /// Milliseconds between the last packet and `now_ms`; None before the first.
    pub fn last_packet_ms_ago(&self, now_ms: u64) -> Option<u64> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms.saturating_sub(t - 1)),
        }
    }
}

/// The per-group counters of one family, kept by the table's owner across rebuilds of the
/// forwarding snapshot: a group keeps its counters while it stays in the snapshot and
/// starts again from zero when it comes back after leaving it.
#[derive(Debug)]
pub struct GroupTraffic<A> {
    groups: HashMap<A, Arc<GroupCounters>>,
}

impl<A> Default for GroupTraffic<A> {
    fn default() -> Self {
        GroupTraffic {
            groups: HashMap::new(),
        }
    }
}

impl<A: GroupAddr> GroupTraffic<A> {
    /// Give every group of a freshly built `fib` its counters, and forget the groups no
    /// longer in it.
    pub fn attach(&mut self, fib: &mut Fib<A>) {
        self.groups.retain(|g, _| fib.groups.contains_key(g));
        for (g, fwd) in &mut fib.groups {
            fwd.traffic = Arc::clone(self.groups.entry(*g).or_default());
        }
    }

    pub fn get(&self, group: &A) -> Option<&Arc<GroupCounters>> {
        self.groups.get(group)
    }
}

/// One unicast receiver of a group.
#[derive(Debug, Clone)]
pub struct FibMember<A = Ipv4Addr> {
    pub iface: IfaceId,
    pub mac: MacAddr,
    pub mode: FilterMode,
    /// Sorted, for binary search.
    pub sources: Arc<[A]>,
    pub counters: Arc<MemberCounters>,
}

impl<A: GroupAddr> FibMember<A> {
    pub fn admits(&self, source: A) -> bool {
        let listed = self.sources.binary_search(&source).is_ok();
        match self.mode {
            FilterMode::Include => listed,
            FilterMode::Exclude => !listed,
        }
    }
}

/// How one group is delivered.
#[derive(Debug, Clone)]
pub struct GroupFwd<A = Ipv4Addr> {
    /// Interfaces where the group goes out as one L2 multicast copy (compat fallback).
    pub multicast_ifaces: Vec<IfaceId>,
    /// Unicast receivers on the other interfaces.
    pub members: Vec<FibMember<A>>,
    /// What arrives for the group upstream (see [`GroupTraffic::attach`]).
    pub traffic: Arc<GroupCounters>,
}

/// Where a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub iface: IfaceId,
    pub mac: MacAddr,
}

#[derive(Debug, Clone)]
pub struct Fib<A = Ipv4Addr> {
    pub groups: HashMap<A, GroupFwd<A>>,
}

impl<A> Default for Fib<A> {
    fn default() -> Self {
        Fib {
            groups: HashMap::new(),
        }
    }
}

impl<A: GroupAddr> Fib<A> {
    /// Copies for one (source, group) packet: one per admitting member, one group-MAC copy
    /// per multicast interface. Appends to `out`, and to `counters` in step with it: the
    /// member's counters (None for a group-MAC copy), so the caller can count after sending.
    /// Returns the group's traffic counters when the group is in the snapshot (even if no
    /// member admits the source), for the caller to count the packet.
    pub fn targets(
        &self,
        source: A,
        group: A,
        out: &mut Vec<Target>,
        counters: &mut Vec<Option<Arc<MemberCounters>>>,
    ) -> Option<&GroupCounters> {
        let g = self.groups.get(&group)?;
        for &iface in &g.multicast_ifaces {
            out.push(Target {
                iface,
                mac: group.group_mac(),
            });
            counters.push(None);
        }
        for m in &g.members {
            if m.admits(source) {
                out.push(Target {
                    iface: m.iface,
                    mac: m.mac,
                });
                counters.push(Some(Arc::clone(&m.counters)));
            }
        }
        Some(&g.traffic)
    }
}

/// The forwarding snapshot of both families, swapped whole by the control thread. Each
/// family's part is rebuilt by its own snooper; the other one's is shared, not copied.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    pub v4: Arc<Fib<Ipv4Addr>>,
    pub v6: Arc<Fib<Ipv6Addr>>,
}

impl Forwarding {
    /// [`Fib::targets`] of the packet's family (a source of the other family matches
    /// nothing).
    pub fn targets(
        &self,
        source: IpAddr,
        group: IpAddr,
        out: &mut Vec<Target>,
        counters: &mut Vec<Option<Arc<MemberCounters>>>,
    ) -> Option<&GroupCounters> {
        match (source, group) {
            (IpAddr::V4(s), IpAddr::V4(g)) => self.v4.targets(s, g, out, counters),
            (IpAddr::V6(s), IpAddr::V6(g)) => self.v6.targets(s, g, out, counters),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }
    fn member(iface: IfaceId, n: u8, mode: FilterMode, sources: &[u8]) -> FibMember {
        FibMember {
            iface,
            mac: MacAddr(2, 0, 0, 0, 0, n),
            mode,
            sources: sources.iter().map(|&s| src(s)).collect(),
            counters: Arc::default(),
        }
    }

    #[test]
    fn member_admits_by_mode() {
        let inc = member(0, 1, FilterMode::Include, &[1, 3, 5]);
        let exc = member(0, 2, FilterMode::Exclude, &[1, 3, 5]);
        for s in 0..8 {
            let listed = s % 2 == 1 && s < 6;
            assert_eq!(inc.admits(src(s)), listed, "{s}");
            assert_eq!(exc.admits(src(s)), !listed, "{s}");
        }
        assert!(member(0, 3, FilterMode::Exclude, &[]).admits(src(9)));
        assert!(!member(0, 3, FilterMode::Include, &[]).admits(src(9)));
    }

    #[test]
    fn targets_multicast_first_then_admitting_members_with_counters() {
        let g = Ipv4Addr::new(239, 1, 2, 3);
        let mut fib = Fib::default();
        fib.groups.insert(
            g,
            GroupFwd {
                multicast_ifaces: vec![2],
                members: vec![
                    member(0, 1, FilterMode::Include, &[1]),
                    member(1, 2, FilterMode::Exclude, &[1]),
                    member(1, 3, FilterMode::Exclude, &[]),
                ],
                traffic: Arc::default(),
            },
        );
        let mut out = vec![Target {
            iface: 9,
            mac: MacAddr::broadcast(),
        }];
        let mut counters = vec![None];
        fib.targets(src(1), g, &mut out, &mut counters);
        assert_eq!(
            out,
            vec![
                Target {
                    iface: 9,
                    mac: MacAddr::broadcast()
                },
                Target {
                    iface: 2,
                    mac: MacAddr(0x01, 0x00, 0x5e, 0x01, 0x02, 0x03)
                },
                Target {
                    iface: 0,
                    mac: MacAddr(2, 0, 0, 0, 0, 1)
                },
                Target {
                    iface: 1,
                    mac: MacAddr(2, 0, 0, 0, 0, 3)
                },
            ],
            "appends"
        );
        assert_eq!(counters.len(), out.len(), "in step with the targets");
        assert!(counters[1].is_none(), "no counters for the multicast copy");
        assert!(counters[2].is_some() && counters[3].is_some());
        counters[2]
            .as_ref()
            .unwrap()
            .packets
            .fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            fib.groups[&g].members[0]
                .counters
                .packets
                .load(Ordering::Relaxed),
            1
        );
        out.clear();
        counters.clear();
        let none = fib.targets(src(1), Ipv4Addr::new(239, 9, 9, 9), &mut out, &mut counters);
        assert!(out.is_empty() && counters.is_empty() && none.is_none());
    }

    #[test]
    fn group_counters_count_packets_a_member_filters_out_and_survive_rebuilds() {
        let g = Ipv4Addr::new(239, 1, 2, 3);
        let build = || {
            let mut fib = Fib::default();
            fib.groups.insert(
                g,
                GroupFwd {
                    multicast_ifaces: vec![],
                    members: vec![member(0, 1, FilterMode::Include, &[1])],
                    traffic: Arc::default(),
                },
            );
            fib
        };
        let mut traffic = GroupTraffic::default();
        let mut fib = build();
        traffic.attach(&mut fib);
        let (mut out, mut ctr) = (vec![], vec![]);
        // Source 2 is not admitted: no copy, but the group's traffic is still counted.
        let t = fib.targets(src(2), g, &mut out, &mut ctr).expect("group");
        assert!(out.is_empty());
        assert_eq!(t.last_packet_ms_ago(5), None, "nothing yet");
        t.count(100, 0);
        t.count(50, 7);
        assert_eq!(t.last_packet_ms_ago(10), Some(3));
        // A rebuild keeps them; a rebuild without the group forgets them.
        let mut fib2 = build();
        traffic.attach(&mut fib2);
        let t2 = &fib2.groups[&g].traffic;
        assert_eq!(t2.packets.load(Ordering::Relaxed), 2);
        assert_eq!(t2.bytes.load(Ordering::Relaxed), 150);
        traffic.attach(&mut Fib::default());
        assert!(traffic.get(&g).is_none());
        let mut fib3 = build();
        traffic.attach(&mut fib3);
        assert_eq!(fib3.groups[&g].traffic.packets.load(Ordering::Relaxed), 0);
    }
}
