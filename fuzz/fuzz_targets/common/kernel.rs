//! A model of the kernel's upstream join sockets, shared by the `membership` and `snooper`
//! targets: one membership per group and socket, `groups_per_socket` groups per socket
//! (igmp_max_memberships), `sources_per_group` sources per group (igmp_max_msf), no (S, G)
//! on a (*, G) membership, no leave of what is not joined, blocks only on a (*, G)
//! membership and at most `sources_per_group` of them. Closing a socket drops what it
//! holds.

use snoopcast::core::family::GroupAddr;
use snoopcast::core::membership::UpstreamWant;
use snoopcast::core::upstream::{JoinKind, JoinLimits, JoinOp};
use std::collections::{BTreeMap, BTreeSet};

pub struct Kernel<A> {
    /// Per socket: group -> None for (*, G), Some(sources) for (S, G).
    pub socks: BTreeMap<usize, BTreeMap<A, Option<BTreeSet<A>>>>,
    /// The sources blocked on the (*, G) memberships, by (socket, group); never empty.
    pub blocked: BTreeMap<(usize, A), BTreeSet<A>>,
}

impl<A> Default for Kernel<A> {
    fn default() -> Self {
        Kernel {
            socks: BTreeMap::new(),
            blocked: BTreeMap::new(),
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
                    self.blocked.remove(&(op.socket, g));
                    Ok(())
                }
                _ => Err("EADDRNOTAVAIL: no (*, G) to leave"),
            },
            JoinKind::Block(g, x) => match s.get(&g) {
                Some(None) => {
                    let b = self.blocked.entry((op.socket, g)).or_default();
                    if b.contains(&x) {
                        Err("EADDRNOTAVAIL: source already blocked")
                    } else if b.len() >= lim.sources_per_group {
                        Err("ENOBUFS: igmp_max_msf")
                    } else {
                        b.insert(x);
                        Ok(())
                    }
                }
                _ => Err("EINVAL: block without a (*, G) membership"),
            },
            JoinKind::Unblock(g, x) => {
                let key = (op.socket, g);
                match self.blocked.get_mut(&key) {
                    Some(b) if b.contains(&x) => {
                        b.remove(&x);
                        if b.is_empty() {
                            self.blocked.remove(&key);
                        }
                        Ok(())
                    }
                    _ => Err("EADDRNOTAVAIL: source not blocked"),
                }
            }
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
        self.blocked.retain(|&(i, _), _| i < n);
    }

    pub fn is_empty(&self) -> bool {
        self.socks.values().all(BTreeMap::is_empty)
    }

    /// What the sockets hold, merged as `JoinPool::joined` merges its plan.
    pub fn joined(&self) -> BTreeMap<A, UpstreamWant<A>> {
        let mut out: BTreeMap<A, UpstreamWant<A>> = BTreeMap::new();
        for (i, s) in &self.socks {
            for (g, h) in s {
                match h {
                    None => {
                        let w = match self.blocked.get(&(*i, *g)) {
                            Some(b) => UpstreamWant::Exclude(b.clone()),
                            None => UpstreamWant::AnySource,
                        };
                        out.insert(*g, w);
                    }
                    Some(set) => match out
                        .entry(*g)
                        .or_insert_with(|| UpstreamWant::Sources(BTreeSet::new()))
                    {
                        UpstreamWant::Sources(all) => all.extend(set),
                        UpstreamWant::AnySource | UpstreamWant::Exclude(_) => {}
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
