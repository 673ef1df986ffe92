//! Upstream joins spread over a pool of sockets.
//!
//! Desired state (what members want, [`UpstreamWant`]) and actual state (which socket holds
//! which membership) are kept apart and reconciled, as smcroute does. Linux limits one socket
//! to `net.ipv4.igmp_max_memberships` groups (default 20) and one group on one socket to
//! `net.ipv4.igmp_max_msf` sources (default 10), so hundreds of groups need many sockets; we
//! plan around the limits rather than asking anyone to change sysctls. A socket cannot hold
//! an any-source and a source-specific membership of the same group (the kernel says EINVAL).

use super::family::GroupAddr;
use super::membership::UpstreamWant;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The groups whose upstream membership lists sources while the upstream querier speaks
/// `version`, older than the family's source-filtering one (IGMPv3, MLDv2). The kernel then
/// reports in the older version (RFC 3376 7.2.1, RFC 3810 8.2.1), whose reports carry no
/// sources: the join arrives as (*, G), which an SSM router ignores for an SSM group (RFC
/// 4604 section 2.1), and any other router answers with every source.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinLimits {
    pub groups_per_socket: usize,
    pub sources_per_group: usize,
}

impl JoinLimits {
    /// `want` as the pool holds it: an exclude list cut to the lowest `sources_per_group`
    /// sources (one socket holds a group's block list; blocking fewer only lets more
    /// through, and the data path filters per member anyway).
    pub fn held<A: GroupAddr>(&self, want: &UpstreamWant<A>) -> UpstreamWant<A> {
        match want {
            UpstreamWant::Exclude(x) => {
                let cut: BTreeSet<A> = x.iter().take(self.sources_per_group).copied().collect();
                if cut.is_empty() {
                    UpstreamWant::AnySource
                } else {
                    UpstreamWant::Exclude(cut)
                }
            }
            w => w.clone(),
        }
    }

    /// [`JoinLimits::held`] of every group.
    pub fn held_all<A: GroupAddr>(
        &self,
        wants: &BTreeMap<A, UpstreamWant<A>>,
    ) -> BTreeMap<A, UpstreamWant<A>> {
        wants.iter().map(|(g, w)| (*g, self.held(w))).collect()
    }
}

impl Default for JoinLimits {
    fn default() -> Self {
        JoinLimits {
            groups_per_socket: 20,
            sources_per_group: 10,
        }
    }
}

/// One membership operation on socket number `socket` of the pool (the runtime opens
/// sockets as numbers first appear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JoinOp<A = Ipv4Addr> {
    pub socket: usize,
    pub kind: JoinKind<A>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JoinKind<A = Ipv4Addr> {
    /// MCAST_JOIN_GROUP (*, G)
    JoinAny(A),
    /// MCAST_LEAVE_GROUP (*, G)
    LeaveAny(A),
    /// MCAST_JOIN_SOURCE_GROUP (S, G): (group, source)
    JoinSource(A, A),
    /// MCAST_LEAVE_SOURCE_GROUP (S, G): (group, source)
    LeaveSource(A, A),
    /// MCAST_BLOCK_SOURCE on the socket holding (*, G): (group, source)
    Block(A, A),
    /// MCAST_UNBLOCK_SOURCE: (group, source)
    Unblock(A, A),
}

impl<A: Copy> JoinKind<A> {
    /// The group the operation is about.
    pub fn group(&self) -> A {
        match *self {
            JoinKind::JoinAny(g)
            | JoinKind::LeaveAny(g)
            | JoinKind::JoinSource(g, _)
            | JoinKind::LeaveSource(g, _)
            | JoinKind::Block(g, _)
            | JoinKind::Unblock(g, _) => g,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Held<A> {
    /// (*, G), EXCLUDE of these blocked sources (empty: any source).
    Any(BTreeSet<A>),
    Sources(BTreeSet<A>),
}

impl<A> Held<A> {
    fn is_any(&self) -> bool {
        matches!(self, Held::Any(_))
    }
}

/// The actual state: which socket holds what.
#[derive(Debug, Clone)]
pub struct JoinPool<A = Ipv4Addr> {
    limits: JoinLimits,
    sockets: Vec<BTreeMap<A, Held<A>>>,
}

impl<A: GroupAddr> JoinPool<A> {
    pub fn new(limits: JoinLimits) -> Self {
        JoinPool {
            limits,
            sockets: vec![],
        }
    }

    /// Number of sockets the plan uses (some in the middle may be empty; the last is not).
    /// The runtime closes its sockets from this number on after carrying out the ops.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// What is joined now, merged over sockets, for status.
    pub fn joined(&self) -> BTreeMap<A, UpstreamWant<A>> {
        let mut out: BTreeMap<A, UpstreamWant<A>> = BTreeMap::new();
        for s in &self.sockets {
            for (g, h) in s {
                match (out.get_mut(g), h) {
                    (_, Held::Any(blocked)) if blocked.is_empty() => {
                        out.insert(*g, UpstreamWant::AnySource);
                    }
                    (_, Held::Any(blocked)) => {
                        out.insert(*g, UpstreamWant::Exclude(blocked.clone()));
                    }
                    (
                        Some(UpstreamWant::AnySource | UpstreamWant::Exclude(_)),
                        Held::Sources(_),
                    ) => {}
                    (Some(UpstreamWant::Sources(set)), Held::Sources(src)) => set.extend(src),
                    (None, Held::Sources(src)) => {
                        out.insert(*g, UpstreamWant::Sources(src.clone()));
                    }
                }
            }
        }
        out
    }

    /// Plan the operations that turn the actual state into `want`, and record them as done.
    /// Joins come before leaves for a group that changes kind, so traffic does not stop
    /// while (*, G) replaces (S, G) or the other way round. If the runtime fails to carry out
    /// an operation it calls [`JoinPool::undo`], and the next reconcile tries again.
    pub fn reconcile(&mut self, want: &BTreeMap<A, UpstreamWant<A>>) -> Vec<JoinOp<A>> {
        let mut ops = vec![];
        // Groups nobody wants any more.
        for (i, s) in self.sockets.iter_mut().enumerate() {
            s.retain(|g, h| {
                if want.contains_key(g) {
                    return true;
                }
                match h {
                    // Leaving drops the socket's block list with the membership.
                    Held::Any(_) => ops.push(JoinOp {
                        socket: i,
                        kind: JoinKind::LeaveAny(*g),
                    }),
                    Held::Sources(src) => {
                        for s in src.iter() {
                            ops.push(JoinOp {
                                socket: i,
                                kind: JoinKind::LeaveSource(*g, *s),
                            })
                        }
                    }
                }
                false
            });
        }
        // Where each group is held, gathered once: the loop below skips groups held exactly
        // as wanted without scanning every socket, so a reconcile costs O(memberships) plus
        // O(sockets) per group that changes, not O(groups x sockets) (with 4,000 groups on
        // 200 sockets that was tens of milliseconds per reconcile, most of a report flood's
        // cost). Changing one group only touches that group's entries, so the index stays
        // right for the others.
        let mut held_at: BTreeMap<A, Vec<usize>> = BTreeMap::new();
        for (i, s) in self.sockets.iter().enumerate() {
            for g in s.keys() {
                held_at.entry(*g).or_default().push(i);
            }
        }
        for (&g, w) in want {
            let at = held_at.get(&g).map_or(&[][..], Vec::as_slice);
            if self.holds_exactly(g, w, at) {
                continue;
            }
            match w {
                UpstreamWant::AnySource | UpstreamWant::Exclude(_) => {
                    let i = match self
                        .sockets
                        .iter()
                        .position(|s| s.get(&g).is_some_and(Held::is_any))
                    {
                        Some(i) => i,
                        None => {
                            let i = self.socket_with_room(g);
                            self.sockets[i].insert(g, Held::Any(BTreeSet::new()));
                            ops.push(JoinOp {
                                socket: i,
                                kind: JoinKind::JoinAny(g),
                            });
                            i
                        }
                    };
                    self.set_blocked(i, g, &self.blocked_for(w), &mut ops);
                    self.drop_sources(g, |_| true, &mut ops);
                }
                UpstreamWant::Sources(wanted) => {
                    let held: BTreeSet<A> = self
                        .sockets
                        .iter()
                        .filter_map(|s| match s.get(&g) {
                            Some(Held::Sources(src)) => Some(src.iter().copied()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    for &src in wanted.difference(&held) {
                        let i = self.socket_for_source(g);
                        match self.sockets[i]
                            .entry(g)
                            .or_insert_with(|| Held::Sources(BTreeSet::new()))
                        {
                            Held::Sources(set) => set.insert(src),
                            Held::Any(_) => unreachable!(
                                "socket_for_source never picks a socket holding (*, G)"
                            ),
                        };
                        ops.push(JoinOp {
                            socket: i,
                            kind: JoinKind::JoinSource(g, src),
                        });
                    }
                    self.drop_sources(g, |s| !wanted.contains(s), &mut ops);
                    for (i, s) in self.sockets.iter_mut().enumerate() {
                        if s.get(&g).is_some_and(Held::is_any) {
                            s.remove(&g);
                            ops.push(JoinOp {
                                socket: i,
                                kind: JoinKind::LeaveAny(g),
                            });
                        }
                    }
                }
            }
        }
        self.trim();
        ops
    }

    /// True when the sockets `at` (those holding `g`) hold exactly `want`: nothing to do.
    fn holds_exactly(&self, g: A, want: &UpstreamWant<A>, at: &[usize]) -> bool {
        match want {
            UpstreamWant::AnySource | UpstreamWant::Exclude(_) => {
                at.len() == 1
                    && self.sockets[at[0]].get(&g) == Some(&Held::Any(self.blocked_for(want)))
            }
            UpstreamWant::Sources(wanted) => {
                let mut held = BTreeSet::new();
                for &i in at {
                    match self.sockets[i].get(&g) {
                        Some(Held::Sources(src)) => held.extend(src.iter().copied()),
                        _ => return false,
                    }
                }
                held == *wanted
            }
        }
    }

    /// The sources to block for `want`, as [`JoinLimits::held`] cuts them.
    fn blocked_for(&self, want: &UpstreamWant<A>) -> BTreeSet<A> {
        match self.limits.held(want) {
            UpstreamWant::Exclude(x) => x,
            _ => BTreeSet::new(),
        }
    }

    /// Make socket `i`'s (*, `g`) block exactly `want`: unblock first, then block.
    fn set_blocked(&mut self, i: usize, g: A, want: &BTreeSet<A>, ops: &mut Vec<JoinOp<A>>) {
        let Some(Held::Any(blocked)) = self.sockets[i].get_mut(&g) else {
            return;
        };
        for &x in blocked.difference(want) {
            ops.push(JoinOp {
                socket: i,
                kind: JoinKind::Unblock(g, x),
            });
        }
        for &x in want.difference(blocked) {
            ops.push(JoinOp {
                socket: i,
                kind: JoinKind::Block(g, x),
            });
        }
        *blocked = want.clone();
    }

    /// Forgets empty sockets at the end of the pool, so that the runtime closes them: the
    /// pool shrinks again when groups go, instead of keeping its high-water mark of sockets
    /// (each an open fd) for the daemon's lifetime. Only trailing ones: the ops name sockets
    /// by position. Closing an empty socket drops nothing in the kernel.
    fn trim(&mut self) {
        while self.sockets.last().is_some_and(BTreeMap::is_empty) {
            self.sockets.pop();
        }
    }

    /// Leave every membership (shutdown).
    pub fn leave_all(&mut self) -> Vec<JoinOp<A>> {
        self.reconcile(&BTreeMap::new())
    }

    /// The runtime could not carry out `op`: restore the model to what the kernel has.
    /// An op on a socket that `reconcile` already let go of (emptied and trimmed) is not
    /// restored: the runtime closes that socket, which drops whatever it still held.
    pub fn undo(&mut self, op: JoinOp<A>) {
        self.undo_op(op);
        self.trim();
    }

    fn undo_op(&mut self, op: JoinOp<A>) {
        let Some(s) = self.sockets.get_mut(op.socket) else {
            return;
        };
        match op.kind {
            JoinKind::JoinAny(g) => {
                s.remove(&g);
            }
            // The kernel kept the membership; its block list is unknown to us now, so
            // forget it: the next reconcile unblocks nothing and blocks what it wants
            // (a block already there answers EADDRNOTAVAIL, undone again, harmless).
            JoinKind::LeaveAny(g) => {
                s.insert(g, Held::Any(BTreeSet::new()));
            }
            JoinKind::Block(g, x) => {
                if let Some(Held::Any(b)) = s.get_mut(&g) {
                    b.remove(&x);
                }
            }
            JoinKind::Unblock(g, x) => {
                if let Some(Held::Any(b)) = s.get_mut(&g) {
                    b.insert(x);
                }
            }
            JoinKind::JoinSource(g, src) => {
                if let Some(Held::Sources(set)) = s.get_mut(&g) {
                    set.remove(&src);
                    if set.is_empty() {
                        s.remove(&g);
                    }
                }
            }
            JoinKind::LeaveSource(g, src) => {
                if let Held::Sources(set) =
                    s.entry(g).or_insert_with(|| Held::Sources(BTreeSet::new()))
                {
                    set.insert(src);
                }
            }
        }
    }

    fn drop_sources(&mut self, g: A, unwanted: impl Fn(&A) -> bool, ops: &mut Vec<JoinOp<A>>) {
        for (i, s) in self.sockets.iter_mut().enumerate() {
            if let Some(Held::Sources(set)) = s.get_mut(&g) {
                let gone: Vec<A> = set.iter().copied().filter(|x| unwanted(x)).collect();
                for src in gone {
                    set.remove(&src);
                    ops.push(JoinOp {
                        socket: i,
                        kind: JoinKind::LeaveSource(g, src),
                    });
                }
                // The kernel drops the group from the socket with its last source.
                if set.is_empty() {
                    s.remove(&g);
                }
            }
        }
    }

    /// A socket that can take a new group, opening a new one when all are full.
    fn socket_with_room(&mut self, g: A) -> usize {
        let limit = self.limits.groups_per_socket;
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| s.len() < limit && !s.contains_key(&g))
        {
            return i;
        }
        self.sockets.push(BTreeMap::new());
        self.sockets.len() - 1
    }

    /// A socket that can take one more source of `g`: one already holding `g` with fewer
    /// than the source limit, else one with room for a new group.
    fn socket_for_source(&mut self, g: A) -> usize {
        let limit = self.limits.sources_per_group;
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| matches!(s.get(&g), Some(Held::Sources(set)) if set.len() < limit))
        {
            return i;
        }
        self.socket_with_room(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xef01_0000 + n)
    }
    fn src(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a01_0000 + n)
    }
    fn any(groups: impl IntoIterator<Item = Ipv4Addr>) -> BTreeMap<Ipv4Addr, UpstreamWant> {
        groups
            .into_iter()
            .map(|g| (g, UpstreamWant::AnySource))
            .collect()
    }

    /// Replays ops against a naive model of the kernel, checking its rules.
    #[derive(Default)]
    struct Kernel {
        socks: BTreeMap<usize, BTreeMap<Ipv4Addr, Option<BTreeSet<Ipv4Addr>>>>,
        /// The block lists of the any-source memberships, by (socket, group).
        blocked: BTreeMap<(usize, Ipv4Addr), BTreeSet<Ipv4Addr>>,
    }
    impl Kernel {
        fn apply(&mut self, ops: &[JoinOp], lim: JoinLimits) {
            for op in ops {
                let s = self.socks.entry(op.socket).or_default();
                match op.kind {
                    JoinKind::JoinAny(g) => {
                        assert!(!s.contains_key(&g), "{op:?}: group already on socket");
                        s.insert(g, None);
                    }
                    JoinKind::LeaveAny(g) => {
                        assert_eq!(s.remove(&g), Some(None), "{op:?}");
                        self.blocked.remove(&(op.socket, g));
                    }
                    JoinKind::Block(g, x) => {
                        assert_eq!(s.get(&g), Some(&None), "{op:?}: block without (*, G)");
                        let b = self.blocked.entry((op.socket, g)).or_default();
                        assert!(b.insert(x), "{op:?}: already blocked");
                        assert!(b.len() <= lim.sources_per_group);
                    }
                    JoinKind::Unblock(g, x) => {
                        let b = self.blocked.get_mut(&(op.socket, g)).expect("unblock");
                        assert!(b.remove(&x), "{op:?}: not blocked");
                        if b.is_empty() {
                            self.blocked.remove(&(op.socket, g));
                        }
                    }
                    JoinKind::JoinSource(g, x) => {
                        let e = s.entry(g).or_insert_with(|| Some(BTreeSet::new()));
                        let set = e.as_mut().expect("source join on an any-source membership");
                        assert!(set.insert(x));
                        assert!(set.len() <= lim.sources_per_group);
                    }
                    JoinKind::LeaveSource(g, x) => {
                        let set = s.get_mut(&g).unwrap().as_mut().unwrap();
                        assert!(set.remove(&x));
                        if set.is_empty() {
                            s.remove(&g);
                        }
                    }
                }
                assert!(
                    s.len() <= lim.groups_per_socket,
                    "socket {} over the group limit",
                    op.socket
                );
            }
        }
        /// The runtime closes sockets `n..` after each batch: they must hold nothing.
        fn close_from(&mut self, n: usize) {
            for (i, s) in self.socks.split_off(&n) {
                assert!(s.is_empty(), "socket {i} closed while holding {s:?}");
            }
        }
        fn joined(&self) -> BTreeMap<Ipv4Addr, UpstreamWant> {
            let mut out = BTreeMap::new();
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
                        Some(set) => {
                            let e = out
                                .entry(*g)
                                .or_insert_with(|| UpstreamWant::Sources(BTreeSet::new()));
                            if let UpstreamWant::Sources(all) = e {
                                all.extend(set)
                            }
                        }
                    }
                }
            }
            out
        }
    }

    #[test]
    fn hundreds_of_groups_spread_over_sockets() {
        let lim = JoinLimits::default();
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let want = any((0..300).map(g));
        let ops = p.reconcile(&want);
        k.apply(&ops, lim);
        assert_eq!(ops.len(), 300);
        assert_eq!(p.socket_count(), 15);
        assert_eq!(k.joined(), want);
        assert_eq!(p.joined(), want);
        // Nothing to do the second time.
        assert!(p.reconcile(&want).is_empty());
        // Leaving everything leaves everything.
        let ops = p.leave_all();
        k.apply(&ops, lim);
        assert_eq!(ops.len(), 300);
        assert!(k.joined().is_empty());
    }

    #[test]
    fn thousands_of_groups_one_change_touches_only_it() {
        // The flood case: 4,000 groups (200 sockets), mixed kinds, then one group changes
        // kind, one is dropped, one is new. Only those produce operations, and the result
        // still matches the kernel model.
        let lim = JoinLimits::default();
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let mut want: BTreeMap<Ipv4Addr, UpstreamWant> = (0..4000)
            .map(|n| {
                let w = if n % 3 == 0 {
                    UpstreamWant::Sources([src(n % 7), src(n % 11 + 20)].into())
                } else {
                    UpstreamWant::AnySource
                };
                (g(n), w)
            })
            .collect();
        k.apply(&p.reconcile(&want), lim);
        assert_eq!(p.joined(), want);
        assert!(p.reconcile(&want).is_empty(), "nothing changed");
        want.insert(g(3), UpstreamWant::AnySource);
        want.remove(&g(4));
        want.insert(g(5000), UpstreamWant::Sources([src(1)].into()));
        let ops = p.reconcile(&want);
        k.apply(&ops, lim);
        let mut touched: Vec<Ipv4Addr> = ops.iter().map(|o| o.kind.group()).collect();
        touched.sort();
        touched.dedup();
        assert_eq!(touched, vec![g(3), g(4), g(5000)]);
        assert_eq!(k.joined(), want);
        assert_eq!(p.joined(), want);
    }

    #[test]
    fn many_sources_of_one_group_use_several_sockets() {
        let lim = JoinLimits::default();
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let want: BTreeMap<_, _> =
            [(g(1), UpstreamWant::Sources((0..25).map(src).collect()))].into();
        k.apply(&p.reconcile(&want), lim);
        assert_eq!(k.joined(), want);
        assert_eq!(p.socket_count(), 3);
        // Shrink to 3 sources.
        let want: BTreeMap<_, _> =
            [(g(1), UpstreamWant::Sources((0..3).map(src).collect()))].into();
        k.apply(&p.reconcile(&want), lim);
        assert_eq!(k.joined(), want);
    }

    #[test]
    fn switching_kind_joins_before_leaving() {
        let lim = JoinLimits::default();
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let ssm: BTreeMap<_, _> = [(g(1), UpstreamWant::Sources([src(1)].into()))].into();
        k.apply(&p.reconcile(&ssm), lim);
        let ops = p.reconcile(&any([g(1)]));
        assert!(matches!(ops[0].kind, JoinKind::JoinAny(_)), "{ops:?}");
        assert!(matches!(ops[1].kind, JoinKind::LeaveSource(..)), "{ops:?}");
        assert_ne!(
            ops[0].socket, ops[1].socket,
            "(*,G) and (S,G) cannot share a socket"
        );
        k.apply(&ops, lim);
        let ops = p.reconcile(&ssm);
        assert!(matches!(ops[0].kind, JoinKind::JoinSource(..)), "{ops:?}");
        assert!(
            matches!(ops.last().unwrap().kind, JoinKind::LeaveAny(_)),
            "{ops:?}"
        );
        k.apply(&ops, lim);
        assert_eq!(k.joined(), ssm);
    }

    #[test]
    fn undo_makes_the_next_reconcile_retry() {
        let mut p = JoinPool::new(JoinLimits::default());
        let want = any([g(1)]);
        let ops = p.reconcile(&want);
        p.undo(ops[0]);
        assert_eq!(p.reconcile(&want), ops);
    }

    #[test]
    fn random_sequences_match_a_kernel_model() {
        let lim = JoinLimits {
            groups_per_socket: 3,
            sources_per_group: 2,
        };
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..2000 {
            let mut want = BTreeMap::new();
            for gi in 0..8 {
                match next(3) {
                    0 => {}
                    1 => {
                        want.insert(g(gi), UpstreamWant::AnySource);
                    }
                    _ => {
                        let n = 1 + next(5) as u32;
                        want.insert(
                            g(gi),
                            UpstreamWant::Sources((0..n).map(|_| src(next(6) as u32)).collect()),
                        );
                    }
                }
            }
            k.apply(&p.reconcile(&want), lim);
            k.close_from(p.socket_count());
            assert_eq!(k.joined(), want);
            assert_eq!(p.joined(), want);
            if want.is_empty() {
                assert_eq!(p.socket_count(), 0, "an empty pool keeps no socket");
            }
        }
        k.apply(&p.leave_all(), lim);
        k.close_from(p.socket_count());
        assert_eq!(p.socket_count(), 0);
        assert!(k.joined().is_empty());
    }

    /// The soak test found the pool keeping its high-water mark: a group switching from
    /// (S, G) to (*, G) needs a second socket for a moment, and that socket (an open fd)
    /// stayed after everything was left. Emptied sockets at the end are let go.
    #[test]
    fn sockets_emptied_at_the_end_are_released() {
        let lim = JoinLimits::default();
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let ssm: BTreeMap<_, _> = [(g(1), UpstreamWant::Sources([src(1)].into()))].into();
        k.apply(&p.reconcile(&ssm), lim);
        k.apply(&p.reconcile(&any([g(1)])), lim);
        assert_eq!(p.socket_count(), 2, "(*, G) went to a second socket");
        k.close_from(p.socket_count());
        // Back to (S, G): the (*, G) socket empties and, being the last, goes.
        k.apply(&p.reconcile(&ssm), lim);
        assert_eq!(p.socket_count(), 1);
        k.close_from(p.socket_count());
        assert_eq!(k.joined(), ssm);
        k.apply(&p.leave_all(), lim);
        assert_eq!(p.socket_count(), 0);
        k.close_from(0);
        // A failed join on a new socket leaves nothing open either.
        let ops = p.reconcile(&any([g(2)]));
        assert_eq!(p.socket_count(), 1);
        p.undo(ops[0]);
        assert_eq!(p.socket_count(), 0);
    }

    /// Issue 15 defect 5: an IGMPv2 (MLDv1) querier upstream turns source-specific joins
    /// into plain older reports: the source-specific groups are named.
    #[test]
    fn upstream_old_querier_names_ssm_groups() {
        let ssm: Ipv4Addr = "232.1.1.1".parse().unwrap();
        let asm: Ipv4Addr = "239.1.1.1".parse().unwrap();
        let any: Ipv4Addr = "239.1.1.2".parse().unwrap();
        let s: Ipv4Addr = "10.1.0.1".parse().unwrap();
        let joined: BTreeMap<_, _> = [
            (ssm, UpstreamWant::Sources([s].into())),
            (asm, UpstreamWant::Sources([s].into())),
            (any, UpstreamWant::AnySource),
        ]
        .into_iter()
        .collect();
        assert_eq!(sources_lost(2, &joined), vec![ssm, asm]);
        assert_eq!(sources_lost(1, &joined), vec![ssm, asm]);
        assert!(
            sources_lost(3, &joined).is_empty(),
            "IGMPv3 keeps the sources"
        );
        let g6: std::net::Ipv6Addr = "ff3e::1".parse().unwrap();
        let s6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let joined6: BTreeMap<_, _> = [(g6, UpstreamWant::Sources([s6].into()))].into();
        assert_eq!(sources_lost(1, &joined6), vec![g6]);
        assert!(sources_lost(2, &joined6).is_empty());
    }

    /// Issue 15 defect 8: an EXCLUDE want is one (*, G) with the sources blocked on the same
    /// socket, changed by block and unblock alone, capped at the source limit; turning to
    /// INCLUDE leaves it for (S, G) joins.
    #[test]
    fn exclude_want_blocks_sources_on_the_any_source_socket() {
        let lim = JoinLimits {
            groups_per_socket: 20,
            sources_per_group: 3,
        };
        let mut p = JoinPool::new(lim);
        let mut k = Kernel::default();
        let ex = |ns: &[u32]| {
            BTreeMap::from([(
                g(1),
                UpstreamWant::Exclude(ns.iter().map(|&n| src(n)).collect()),
            )])
        };
        let ops = p.reconcile(&ex(&[1, 2]));
        assert_eq!(
            ops.iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![
                JoinKind::JoinAny(g(1)),
                JoinKind::Block(g(1), src(1)),
                JoinKind::Block(g(1), src(2))
            ]
        );
        k.apply(&ops, lim);
        assert_eq!(k.joined(), ex(&[1, 2]));
        assert_eq!(p.joined(), ex(&[1, 2]));
        // The list changes: one unblock, one block, no rejoin.
        let ops = p.reconcile(&ex(&[2, 3]));
        assert_eq!(
            ops.iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![
                JoinKind::Unblock(g(1), src(1)),
                JoinKind::Block(g(1), src(3))
            ]
        );
        k.apply(&ops, lim);
        assert!(p.reconcile(&ex(&[2, 3])).is_empty(), "held exactly");
        // Past the source limit only the lowest three are blocked.
        let ops = p.reconcile(&ex(&[2, 3, 4, 5, 6]));
        k.apply(&ops, lim);
        assert_eq!(k.joined(), ex(&[2, 3, 4]));
        assert!(p.reconcile(&ex(&[2, 3, 4, 5, 6])).is_empty());
        // Any source: everything unblocked, the membership kept.
        let ops = p.reconcile(&any([g(1)]));
        assert!(
            ops.iter().all(|o| matches!(o.kind, JoinKind::Unblock(..))),
            "{ops:?}"
        );
        k.apply(&ops, lim);
        assert_eq!(k.joined(), any([g(1)]));
        // Back to EXCLUDE, then INCLUDE: the (S, G) join comes before the leave.
        k.apply(&p.reconcile(&ex(&[7])), lim);
        let inc = BTreeMap::from([(g(1), UpstreamWant::Sources([src(8)].into()))]);
        let ops = p.reconcile(&inc);
        k.apply(&ops, lim);
        assert_eq!(k.joined(), inc);
        // A failed block is undone and retried.
        let ops = p.reconcile(&ex(&[9]));
        let block = *ops
            .iter()
            .find(|o| matches!(o.kind, JoinKind::Block(..)))
            .unwrap();
        p.undo(block);
        assert_eq!(p.reconcile(&ex(&[9])), vec![block]);
    }
}
