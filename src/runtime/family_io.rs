//! The I/O that differs between the address families, behind one trait: upstream join
//! sockets and their join/leave calls, query frames, and where a family's counters and
//! forwarding snapshot live. The control thread is written once over it.

use super::shared::State;
use super::stats::Counters;
use super::sys;
use crate::core::family::GroupAddr;
use crate::core::fib::{Fib, Forwarding};
use crate::core::snooper::{QueryOut, Snooper};
use crate::core::upstream::{JoinKind, JoinOp};
use crate::wire::{igmp, ipv6, mld, MacAddr};
use socket2::Socket;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the control thread needs of one family's sockets and frames.
pub trait FamilyIo: GroupAddr {
    /// A socket for upstream joins only (it receives nothing).
    fn join_socket() -> io::Result<Socket>;
    /// MCAST_JOIN_GROUP / MCAST_LEAVE_GROUP.
    fn any_source(s: &Socket, ifindex: u32, group: Self, join: bool) -> io::Result<()>;
    /// MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP.
    fn source_specific(
        s: &Socket,
        ifindex: u32,
        group: Self,
        source: Self,
        join: bool,
    ) -> io::Result<()>;
    /// MCAST_BLOCK_SOURCE / MCAST_UNBLOCK_SOURCE on an any-source membership.
    fn block_source(
        s: &Socket,
        ifindex: u32,
        group: Self,
        source: Self,
        block: bool,
    ) -> io::Result<()>;
    /// The Ethernet frame of a query from `mac`.
    fn query_frame(mac: MacAddr, q: &QueryOut<Self>) -> Vec<u8>;
    /// Counter of the queries sent.
    fn queries_sent(c: &Counters) -> &AtomicU64;
    /// This family's snooper.
    fn snooper(st: &mut State) -> &mut Snooper<Self>;
    /// `fwd` with this family's part replaced by `fib`.
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding;
}

impl FamilyIo for Ipv4Addr {
    fn join_socket() -> io::Result<Socket> {
        sys::join_socket()
    }
    fn any_source(s: &Socket, ifindex: u32, group: Self, join: bool) -> io::Result<()> {
        sys::any_source(s, ifindex, group, join)
    }
    fn source_specific(s: &Socket, ifx: u32, g: Self, src: Self, join: bool) -> io::Result<()> {
        sys::source_specific(s, ifx, g, src, join)
    }
    fn block_source(s: &Socket, ifx: u32, g: Self, src: Self, block: bool) -> io::Result<()> {
        sys::block_source(s, ifx, g, src, block)
    }
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
    fn queries_sent(c: &Counters) -> &AtomicU64 {
        &c.queries_sent
    }
    fn snooper(st: &mut State) -> &mut Snooper<Self> {
        &mut st.v4
    }
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding {
        Forwarding {
            v4: fib,
            v6: fwd.v6.clone(),
        }
    }
}

impl FamilyIo for Ipv6Addr {
    fn join_socket() -> io::Result<Socket> {
        sys::join_socket6()
    }
    fn any_source(s: &Socket, ifindex: u32, group: Self, join: bool) -> io::Result<()> {
        sys::any_source6(s, ifindex, group, join)
    }
    fn source_specific(s: &Socket, ifx: u32, g: Self, src: Self, join: bool) -> io::Result<()> {
        sys::source_specific6(s, ifx, g, src, join)
    }
    fn block_source(s: &Socket, ifx: u32, g: Self, src: Self, block: bool) -> io::Result<()> {
        sys::block_source6(s, ifx, g, src, block)
    }
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
    fn queries_sent(c: &Counters) -> &AtomicU64 {
        &c.mld_queries_sent
    }
    fn snooper(st: &mut State) -> &mut Snooper<Self> {
        &mut st.v6
    }
    fn with_fib(fwd: &Forwarding, fib: Arc<Fib<Self>>) -> Forwarding {
        Forwarding {
            v4: fwd.v4.clone(),
            v6: fib,
        }
    }
}

/// The upstream join sockets of one family, numbered as the join planner numbers them.
pub struct JoinSockets<A> {
    socks: Vec<Socket>,
    _family: std::marker::PhantomData<A>,
}

impl<A: FamilyIo> JoinSockets<A> {
    pub fn new() -> Self {
        JoinSockets {
            socks: Vec::new(),
            _family: std::marker::PhantomData,
        }
    }

    /// Carry out one join or leave on the upstream interface `ifindex`, opening the socket
    /// it names if it is new.
    pub fn apply(&mut self, ifindex: u32, op: JoinOp<A>) -> io::Result<()> {
        while self.socks.len() <= op.socket {
            self.socks.push(A::join_socket()?);
        }
        let s = &self.socks[op.socket];
        match op.kind {
            JoinKind::JoinAny(g) => A::any_source(s, ifindex, g, true),
            JoinKind::LeaveAny(g) => A::any_source(s, ifindex, g, false),
            JoinKind::JoinSource(g, src) => A::source_specific(s, ifindex, g, src, true),
            JoinKind::LeaveSource(g, src) => A::source_specific(s, ifindex, g, src, false),
            JoinKind::Block(g, src) => A::block_source(s, ifindex, g, src, true),
            JoinKind::Unblock(g, src) => A::block_source(s, ifindex, g, src, false),
        }
    }

    /// Close the sockets from `keep` on: no fd is kept for a high-water mark of groups long
    /// gone, and closing drops whatever a socket still held.
    pub fn keep(&mut self, keep: usize) {
        self.socks.truncate(keep);
    }
}
