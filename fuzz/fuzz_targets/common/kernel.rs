//! A model of the kernel's upstream join sockets, shared by the `membership` and `snooper`
//! targets: one membership per group and socket, `groups_per_socket` groups per socket
//! (igmp_max_memberships), `sources_per_group` sources per group (igmp_max_msf), no (S, G)
//! on a (*, G) membership, no leave of what is not joined. Closing a socket drops what it
//! holds.

use snoopcast::core::family::GroupAddr;
use snoopcast::core::membership::UpstreamWant;
use snoopcast::core::upstream::{JoinKind, JoinLimits, JoinOp};
use std::collections::{BTreeMap, BTreeSet};

pub struct Kernel<A> {
    /// Per socket: group -> None for (*, G), Some(sources) for (S, G).
    pub socks: BTreeMap<usize, BTreeMap<A, Option<BTreeSet<A>>>>,
}

impl<A> Default for Kernel<A> {
    fn default() -> Self {
        Kernel {
            socks: BTreeMap::new(),
        }
    }
}

impl<A: GroupAddr> Kernel<A> {
    /// Carry out one operation as Linux would; Err is the errno it would return.
    pub fn apply(&mut self, op: JoinOp<A>, lim: JoinLimits) -> Result<(), &'static str> {
        let s = self.socks.entry(op.socket).or_default();
        let r = match op.kind {
            JoinKind::JoinAny(g) => {
                if s.contains_key(&g) {
                    Err("EADDRINUSE/EINVAL: group already on the socket")
                } else if s.len() >= lim.groups_per_socket {
                    Err("ENOBUFS: igmp_max_memberships")
                } else {
                    s.insert(g, None);
                    Ok(())
                }
            }
            JoinKind::LeaveAny(g) => match s.get(&g) {
                Some(None) => {
                    s.remove(&g);
                    Ok(())
                }
                _ => Err("EADDRNOTAVAIL: no (*, G) to leave"),
            },
            JoinKind::JoinSource(g, x) => match s.get_mut(&g) {
                Some(None) => Err("EINVAL: (S, G) on a (*, G) membership"),
                Some(Some(set)) => {
                    if set.contains(&x) {
                        Err("EADDRNOTAVAIL: source already joined")
                    } else if set.len() >= lim.sources_per_group {
                        Err("ENOBUFS: igmp_max_msf")
                    } else {
                        set.insert(x);
                        Ok(())
                    }
                }
                None => {
                    if s.len() >= lim.groups_per_socket {
                        Err("ENOBUFS: igmp_max_memberships")
                    } else {
                        s.insert(g, Some(BTreeSet::from([x])));
                        Ok(())
                    }
                }
            },
            JoinKind::LeaveSource(g, x) => match s.get_mut(&g) {
                Some(Some(set)) if set.contains(&x) => {
                    set.remove(&x);
                    if set.is_empty() {
                        s.remove(&g);
                    }
                    Ok(())
                }
                _ => Err("EADDRNOTAVAIL: no (S, G) to leave"),
            },
        };
        if s.is_empty() {
            // An empty socket holds nothing; keep the map canonical.
            self.socks.remove(&op.socket);
        }
        r
    }

    /// `Action::KeepSockets(n)`: the sockets from `n` on are closed.
    pub fn keep(&mut self, n: usize) {
        self.socks.retain(|&i, _| i < n);
    }

    pub fn is_empty(&self) -> bool {
        self.socks.values().all(BTreeMap::is_empty)
    }

    /// What the sockets hold, merged as `JoinPool::joined` merges its plan.
    pub fn joined(&self) -> BTreeMap<A, UpstreamWant<A>> {
        let mut out: BTreeMap<A, UpstreamWant<A>> = BTreeMap::new();
        for s in self.socks.values() {
            for (g, h) in s {
                match h {
                    None => {
                        out.insert(*g, UpstreamWant::AnySource);
                    }
                    Some(set) => match out
                        .entry(*g)
                        .or_insert_with(|| UpstreamWant::Sources(BTreeSet::new()))
                    {
                        UpstreamWant::Sources(all) => all.extend(set),
                        UpstreamWant::AnySource => {}
                    },
                }
            }
        }
        out
    }

    /// No socket over the limits.
    pub fn check_limits(&self, lim: JoinLimits) {
        for s in self.socks.values() {
            assert!(
                s.len() <= lim.groups_per_socket,
                "socket over groups_per_socket"
            );
            for set in s.values().flatten() {
                assert!(
                    set.len() <= lim.sources_per_group,
                    "group over sources_per_group"
                );
            }
        }
    }
}
