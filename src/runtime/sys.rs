//! The few socket operations that need `unsafe` (libc setsockopt with structs socket2 does
//! not model), behind a safe API. Nothing else in the crate calls libc directly for sockets.

use socket2::{Domain, SockFilter, Socket, Type};
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

// linux/if_packet.h (libc does not export these for every target).
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;
const PACKET_AUXDATA: libc::c_int = 8;
/// tpacket_auxdata.tp_status: the checksum is left to the device (CHECKSUM_PARTIAL).
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T for the duration of the call and the
    // length passed is exactly its size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An AF_PACKET raw socket bound to no protocol yet: it receives nothing until bound, so a
/// filter attached now applies from the first packet.
pub fn packet_socket() -> io::Result<Socket> {
    Socket::new(Domain::PACKET, Type::RAW, None)
}

/// Bind a packet socket to an interface and EtherType (0: receive nothing; send only).
pub fn bind_packet(sock: &Socket, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: the pointer and length describe `sll`, alive for the call.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Do not hand our own outgoing frames back to this socket (Linux 4.20+).
pub fn set_ignore_outgoing(sock: &Socket) -> io::Result<()> {
    setsockopt(sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)
}

/// Receive all multicast on the interface (IGMPv2 reports go to the group address itself).
pub fn add_allmulti(sock: &Socket, ifindex: u32) -> io::Result<()> {
    #[repr(C)]
    struct PacketMreq {
        mr_ifindex: libc::c_int,
        mr_type: libc::c_ushort,
        mr_alen: libc::c_ushort,
        mr_address: [u8; 8],
    }
    let mreq = PacketMreq {
        mr_ifindex: ifindex as i32,
        mr_type: PACKET_MR_ALLMULTI,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    setsockopt(sock, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// A larger receive buffer: SO_RCVBUFFORCE when we have CAP_NET_ADMIN, else SO_RCVBUF
/// (capped by net.core.rmem_max).
pub fn set_rcvbuf(sock: &Socket, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
        .or_else(|_| sock.set_recv_buffer_size(bytes))
}

/// Ask for a `tpacket_auxdata` control message with every frame (PACKET_AUXDATA), which says
/// whether the frame's checksum is still to be computed.
pub fn set_auxdata(sock: &Socket) -> io::Result<()> {
    setsockopt(sock, SOL_PACKET, PACKET_AUXDATA, &1 as &libc::c_int)
}

/// Receive one frame into `buf`. Returns its length (truncated to `buf`) and the
/// tpacket_auxdata status (0 without PACKET_AUXDATA). A read timeout set with
/// `set_read_timeout` surfaces as `WouldBlock`/`TimedOut`.
pub fn recv_frame(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, u32)> {
    #[repr(C)]
    struct Auxdata {
        tp_status: u32,
        tp_len: u32,
        tp_snaplen: u32,
        tp_mac: u16,
        tp_net: u16,
        tp_vlan_tci: u16,
        tp_vlan_tpid: u16,
    }
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is valid before we fill the pointers.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: msg points to iov (describing `buf`) and `control`, all alive for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // msg_controllen; the auxdata payload is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                let aux = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const Auxdata);
                status = aux.tp_status;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(((n as usize).min(buf.len()), status))
}

/// Classic BPF, built with symbolic jump targets.
pub mod bpf {
    use libc::sock_filter as Insn_;

    fn mk(code: u16, jt: u8, jf: u8, k: u32) -> Insn_ {
        Insn_ { code, jt, jf, k }
    }

    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_W_ABS: u16 = 0x20;
    const ALU_AND_K: u16 = 0x54;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;

    /// Where a conditional jump goes.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        Drop,
    }

    enum Insn {
        Plain(u16, u32),
        Jeq(u32, To, To),
    }

    struct Prog(Vec<Insn>);

    impl Prog {
        fn ld_h(&mut self, off: u32) -> &mut Self {
            self.0.push(Insn::Plain(LD_H_ABS, off));
            self
        }
        fn ld_b(&mut self, off: u32) -> &mut Self {
            self.0.push(Insn::Plain(LD_B_ABS, off));
            self
        }
        fn ld_w(&mut self, off: u32) -> &mut Self {
            self.0.push(Insn::Plain(LD_W_ABS, off));
            self
        }
        fn and(&mut self, k: u32) -> &mut Self {
            self.0.push(Insn::Plain(ALU_AND_K, k));
            self
        }
        /// Continue when A == k, else drop.
        fn require(&mut self, k: u32) -> &mut Self {
            self.0.push(Insn::Jeq(k, To::Next, To::Drop));
            self
        }
        /// Drop when A == k, else continue.
        fn reject(&mut self, k: u32) -> &mut Self {
            self.0.push(Insn::Jeq(k, To::Drop, To::Next));
            self
        }
        /// Append "accept up to `snap` bytes" and the drop target; resolve jumps.
        fn finish(&self, snap: u32) -> Vec<Insn_> {
            let n = self.0.len();
            let drop_at = n + 1;
            let mut out: Vec<Insn_> = self
                .0
                .iter()
                .enumerate()
                .map(|(i, insn)| match *insn {
                    Insn::Plain(code, k) => mk(code, 0, 0, k),
                    Insn::Jeq(k, t, f) => {
                        let off = |to: To| match to {
                            To::Next => 0,
                            To::Drop => (drop_at - (i + 1)) as u8,
                        };
                        mk(JEQ_K, off(t), off(f), k)
                    }
                })
                .collect();
            out.push(mk(RET_K, 0, 0, snap));
            out.push(mk(RET_K, 0, 0, 0));
            out
        }
    }

    /// Downstream: IPv4 frames whose protocol is IGMP (2). Ethernet only.
    pub fn igmp_only() -> Vec<Insn_> {
        Prog(vec![])
            .ld_h(12)
            .require(0x0800)
            .ld_b(14 + 9)
            .require(2)
            .finish(65535)
    }

    /// Upstream: IPv4 multicast data. Destination in 224.0.0.0/4 but not 224.0.0.0/24, and
    /// not IGMP. `link_header` is 14 for Ethernet, 0 for raw-IP links (tun).
    pub fn multicast_data(link_header: u32) -> Vec<Insn_> {
        let b = link_header;
        let mut p = Prog(vec![]);
        if b == 14 {
            p.ld_h(12).require(0x0800);
        }
        p.ld_b(b).and(0xf0).require(0x40);
        p.ld_b(b + 16).and(0xf0).require(0xe0);
        p.ld_w(b + 16).and(0xffff_ff00).reject(0xe000_0000);
        p.ld_b(b + 9).reject(2);
        p.finish(262_144)
    }

    /// Accept nothing (join sockets must never buffer the stream).
    pub fn drop_all() -> Vec<Insn_> {
        vec![mk(RET_K, 0, 0, 0)]
    }

    /// Run a program the way the kernel would (only the instructions built here), returning
    /// the accepted length. Out-of-bounds loads reject, as in the kernel. For tests.
    pub fn run(prog: &[Insn_], pkt: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0;
        while pc < prog.len() {
            let i = &prog[pc];
            let k = i.k as usize;
            pc += 1;
            match i.code {
                LD_H_ABS => match pkt.get(k..k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                LD_B_ABS => match pkt.get(k) {
                    Some(&b) => a = u32::from(b),
                    None => return 0,
                },
                LD_W_ABS => match pkt.get(k..k + 4) {
                    Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    None => return 0,
                },
                ALU_AND_K => a &= i.k,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return i.k,
                c => panic!("opcode {c:#x} not modelled"),
            }
        }
        panic!("program fell off the end")
    }
}

/// Attach a classic BPF program to a socket.
pub fn attach_filter(sock: &Socket, prog: &[libc::sock_filter]) -> io::Result<()> {
    let f: Vec<SockFilter> = prog
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    sock.attach_filter(&f)
}

/// A UDP socket that only holds multicast memberships: unbound, IP_MULTICAST_ALL off, and a
/// drop-all filter, so it never queues a datagram.
pub fn join_socket() -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    s.set_multicast_all_v4(false)?;
    attach_filter(&s, &bpf::drop_all())?;
    Ok(s)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data and larger than sockaddr_in.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_storage is aligned and sized for any sockaddr.
    unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
    ss
}

/// MCAST_JOIN_GROUP / MCAST_LEAVE_GROUP on interface `ifindex` (RFC 3678 protocol-independent
/// API: works on interfaces without an IPv4 address, unlike IP_ADD_SOURCE_MEMBERSHIP).
pub fn any_source(sock: &Socket, ifindex: u32, group: Ipv4Addr, join: bool) -> io::Result<()> {
    let req = libc::group_req {
        gr_interface: ifindex,
        gr_group: sockaddr_in(group),
    };
    let opt = if join {
        libc::MCAST_JOIN_GROUP
    } else {
        libc::MCAST_LEAVE_GROUP
    };
    setsockopt(sock, libc::IPPROTO_IP, opt, &req)
}

/// MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP.
pub fn source_specific(
    sock: &Socket,
    ifindex: u32,
    group: Ipv4Addr,
    source: Ipv4Addr,
    join: bool,
) -> io::Result<()> {
    let req = libc::group_source_req {
        gsr_interface: ifindex,
        gsr_group: sockaddr_in(group),
        gsr_source: sockaddr_in(source),
    };
    let opt = if join {
        libc::MCAST_JOIN_SOURCE_GROUP
    } else {
        libc::MCAST_LEAVE_SOURCE_GROUP
    };
    setsockopt(sock, libc::IPPROTO_IP, opt, &req)
}

/// Send one frame on a bound packet socket. Never blocks for long: the socket is
/// non-blocking or has a send timeout set by the caller.
pub fn send(sock: &Socket, frame: &[u8]) -> io::Result<usize> {
    sock.send(frame)
}

/// Interface index by name, None when there is no such interface.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::bpf;

    fn eth_ipv4(dst: [u8; 4], proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f
    }

    #[test]
    fn downstream_filter_takes_igmp_only() {
        let p = bpf::igmp_only();
        assert!(bpf::run(&p, &eth_ipv4([224, 0, 0, 22], 2)) > 0);
        assert_eq!(bpf::run(&p, &eth_ipv4([239, 1, 1, 1], 17)), 0);
        let mut arp = eth_ipv4([239, 1, 1, 1], 2);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(bpf::run(&p, &arp), 0);
        assert_eq!(bpf::run(&p, &[0u8; 10]), 0, "short frames are rejected");
    }

    #[test]
    fn upstream_filter_takes_routable_multicast_data_only() {
        for (link, strip) in [(14u32, 0usize), (0, 14)] {
            let p = bpf::multicast_data(link);
            let pkt = |dst, proto| eth_ipv4(dst, proto)[strip..].to_vec();
            assert!(bpf::run(&p, &pkt([239, 1, 1, 1], 17)) > 0, "link {link}");
            assert!(bpf::run(&p, &pkt([232, 1, 1, 1], 17)) > 0);
            assert!(bpf::run(&p, &pkt([224, 0, 1, 1], 17)) > 0);
            assert_eq!(
                bpf::run(&p, &pkt([224, 0, 0, 251], 17)),
                0,
                "224.0.0.0/24 is link-local"
            );
            assert_eq!(bpf::run(&p, &pkt([239, 1, 1, 1], 2)), 0, "IGMP is not data");
            assert_eq!(bpf::run(&p, &pkt([10, 1, 1, 1], 17)), 0, "unicast");
            assert_eq!(bpf::run(&p, &pkt([240, 1, 1, 1], 17)), 0, "class E");
            let mut v6 = pkt([239, 1, 1, 1], 17);
            v6[14 - strip] = 0x60;
            assert_eq!(bpf::run(&p, &v6), 0, "not IPv4");
        }
    }
}
