//! The few socket operations that need `unsafe` (libc setsockopt with structs socket2 does
//! not model), behind a safe API. Nothing else in the crate calls libc directly for sockets.

use socket2::{Domain, SockFilter, Socket, Type};
use std::io;
use std::mem;
use std::os::fd::AsRawFd;

// linux/if_packet.h (libc does not export these for every target).
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// Most messages one sendmmsg/recvmmsg call takes (UIO_MAXIOV).
pub const MAX_MMSG: usize = 1024;
/// tpacket_auxdata.tp_status: the checksum is left to the device (CHECKSUM_PARTIAL).
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

/// The receive buffer of a [`RecvBatch`] (64 slots of 64 KiB for the upstream capture: 4
/// MiB): a private anonymous mapping of its own, unmapped on drop, so the memory goes back
/// to the system when a capture thread ends (an interface that went away and came back).
/// A heap block of that size stayed in the ending thread's malloc arena instead (glibc
/// raises its mmap threshold after the first such block is freed), and the next capture
/// thread's zeroed allocation from an arena touched all of it: the soak test saw VmRSS
/// grow by 4 MiB steps with upstream flaps. Untouched pages of the mapping cost nothing.
/// Where mmap fails, a plain heap buffer.
struct FrameBuf {
    map: Option<(std::ptr::NonNull<u8>, usize)>,
    heap: Vec<u8>,
}

impl FrameBuf {
    fn new(len: usize) -> Self {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match std::ptr::NonNull::new(p as *mut u8) {
            Some(ptr) if p != libc::MAP_FAILED => FrameBuf {
                map: Some((ptr, len)),
                heap: Vec::new(),
            },
            _ => FrameBuf {
                map: None,
                heap: vec![0; len],
            },
        }
    }
}

impl AsRef<[u8]> for FrameBuf {
    fn as_ref(&self) -> &[u8] {
        match self.map {
            // SAFETY: the mapping is `len` readable bytes (zero-filled) that live as long
            // as self; shared access follows from &self.
            Some((ptr, len)) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) },
            None => &self.heap,
        }
    }
}

impl AsMut<[u8]> for FrameBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self.map {
            // SAFETY: as in as_ref; exclusive access follows from &mut self.
            Some((ptr, len)) => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) },
            None => &mut self.heap,
        }
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some((ptr, len)) = self.map.take() {
            // SAFETY: exactly the mapping made in new, unmapped once; no slice of it
            // outlives self.
            unsafe {
                libc::munmap(ptr.as_ptr() as *mut libc::c_void, len);
            }
        }
    }
}

/// A libc return value of 0 is success; anything else is errno's error.
fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

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
    check(r)
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
    check(r)
}

/// Do not hand our own outgoing frames back to this socket (Linux 4.20+).
pub fn set_ignore_outgoing(sock: &Socket) -> io::Result<()> {
    setsockopt(sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)
}

/// Receive all multicast on the interface (IGMPv2 reports go to the group address itself).
pub fn add_allmulti(sock: &Socket, ifindex: u32) -> io::Result<()> {
    packet_membership(sock, ifindex, None, true)
}

/// Add (or drop) a link-layer multicast membership of the packet socket: the group MAC
/// `mac` (PACKET_MR_MULTICAST, which programs the NIC's filter) or, for None, all
/// multicast (PACKET_MR_ALLMULTI). The kernel counts them per socket and drops them when
/// the socket closes.
pub fn packet_membership(
    sock: &Socket,
    ifindex: u32,
    mac: Option<crate::wire::MacAddr>,
    add: bool,
) -> io::Result<()> {
    #[repr(C)]
    struct PacketMreq {
        mr_ifindex: libc::c_int,
        mr_type: libc::c_ushort,
        mr_alen: libc::c_ushort,
        mr_address: [u8; 8],
    }
    let mut mreq = PacketMreq {
        mr_ifindex: ifindex as i32,
        mr_type: PACKET_MR_ALLMULTI,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    if let Some(m) = mac {
        mreq.mr_type = PACKET_MR_MULTICAST;
        mreq.mr_alen = 6;
        mreq.mr_address[..6].copy_from_slice(&m.octets());
    }
    let op = if add {
        PACKET_ADD_MEMBERSHIP
    } else {
        PACKET_DROP_MEMBERSHIP
    };
    setsockopt(sock, SOL_PACKET, op, &mreq)
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

/// Wait until `fd` is readable (a listening socket: a client is waiting) or `timeout` passes.
pub fn wait_readable(fd: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd, alive for the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r > 0)
    }
}

/// Set the calling thread's nice value (Linux: PRIO_PROCESS with a thread id is per thread).
/// A value below the current one needs CAP_SYS_NICE.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid and setpriority take and return plain integers.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    check(r)
}

/// fchmod(2) on a socket: a unix socket bound afterwards is created with this mode.
pub fn fchmod(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod takes a descriptor and an integer.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// The calling thread's nice value.
pub fn thread_nice() -> io::Result<i32> {
    // getpriority can return -1 legitimately: errno tells an error apart.
    // SAFETY: gettid and getpriority take and return plain integers; errno is thread-local.
    unsafe {
        *libc::__errno_location() = 0;
        let r = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        if r == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r)
    }
}

/// Send straight to the driver, skipping the interface's qdisc (PACKET_QDISC_BYPASS, Linux
/// 3.14+): the copies are already paced by the stream that came in. A full driver queue then
/// fails the send (counted as a dropped copy) instead of queueing.
pub fn set_qdisc_bypass(sock: &Socket) -> io::Result<()> {
    setsockopt(sock, SOL_PACKET, PACKET_QDISC_BYPASS, &1 as &libc::c_int)
}

/// Frames the kernel dropped because this socket's receive queue was full, since the last
/// call (PACKET_STATISTICS resets on read).
pub fn take_drops(sock: &Socket) -> io::Result<u64> {
    #[repr(C)]
    #[derive(Default)]
    struct TpacketStats {
        tp_packets: u32,
        tp_drops: u32,
    }
    let mut st = TpacketStats::default();
    let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are live and describe a buffer of exactly `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            &mut st as *mut TpacketStats as *mut libc::c_void,
            &mut len,
        )
    };
    check(r).map(|()| u64::from(st.tp_drops))
}

/// Receive buffers for up to `slots` frames per recvmmsg call, each with its own
/// PACKET_AUXDATA control buffer. Allocated and wired up once by the thread that uses it;
/// a call only resets what the previous call changed.
///
/// Invariant: `buf`, `control`, `iov` and `hdrs` are never resized after `new`, so the
/// pointers between them (into their heap storage, which does not move with the struct)
/// stay valid for the struct's life.
pub struct RecvBatch {
    buf: FrameBuf,
    slot: usize,
    /// Per slot: received length (truncated to the slot) and tpacket_auxdata status.
    got: Vec<(usize, u32)>,
    control: Vec<[u64; 8]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Headers the last call may have changed (their controllen and flags need resetting).
    used: usize,
}

impl RecvBatch {
    pub fn new(slots: usize, slot: usize) -> Self {
        let slots = slots.clamp(1, MAX_MMSG);
        let mut b = RecvBatch {
            buf: FrameBuf::new(slots * slot),
            slot,
            got: vec![(0, 0); slots],
            control: vec![[0; 8]; slots],
            iov: Vec::with_capacity(slots),
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            hdrs: (0..slots).map(|_| unsafe { mem::zeroed() }).collect(),
            used: 0,
        };
        let base = b.buf.as_mut().as_mut_ptr();
        for i in 0..slots {
            b.iov.push(libc::iovec {
                // SAFETY: i * slot is within `buf` (slots * slot bytes long).
                iov_base: unsafe { base.add(i * slot) } as *mut libc::c_void,
                iov_len: slot,
            });
        }
        for (i, h) in b.hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_iov = &mut b.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = b.control[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_controllen = mem::size_of::<[u64; 8]>() as _;
        }
        b
    }

    pub fn capacity(&self) -> usize {
        self.got.len()
    }

    /// Wait (up to the socket's read timeout) for one frame, then take whatever else is
    /// already queued, up to the capacity: one system call for a whole burst
    /// (MSG_WAITFORONE). Returns the number of frames; a timeout is `WouldBlock`.
    pub fn recv(&mut self, sock: &Socket) -> io::Result<usize> {
        let slots = self.got.len();
        for h in &mut self.hdrs[..self.used] {
            h.msg_hdr.msg_controllen = mem::size_of::<[u64; 8]>() as _;
            h.msg_hdr.msg_flags = 0;
        }
        self.used = 0;
        // SAFETY: every header points at its own iovec (a distinct slot of `buf`) and its own
        // control buffer, all owned by `self` and untouched until the call returns.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.used = 1;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // The kernel may also have touched the header after the last one it filled.
        self.used = slots.min(n + 1);
        for (i, h) in self.hdrs.iter().take(n).enumerate() {
            let mut status = 0;
            // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
            // msg_controllen; the auxdata's first field (tp_status) is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        status = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const u32);
                    }
                    c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
                }
            }
            self.got[i] = ((h.msg_len as usize).min(self.slot), status);
        }
        Ok(n)
    }

    /// Frame `i` of the last `recv`, writable (a checksum may be completed in place), and
    /// its auxdata status.
    pub fn frame_mut(&mut self, i: usize) -> (&mut [u8], u32) {
        let (len, status) = self.got[i];
        let start = i * self.slot;
        (&mut self.buf.as_mut()[start..start + len], status)
    }

    /// Where frame `i` starts in [`RecvBatch::bytes`].
    pub fn offset(&self, i: usize) -> usize {
        i * self.slot
    }

    /// The whole receive buffer, for copies that point into it.
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }
}

// linux/if_packet.h, for the receive ring.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_COPY_THRESH: libc::c_int = 7;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1 << 0;
const TP_STATUS_COPY: u32 = 1 << 1;
/// Frames in a receive ring whatever the MTU (the frame slot grows with it), as long as
/// the ring stays within [`RING_MAX_BYTES`]. 4096 slots of 2048 bytes take the 8 MiB the
/// socket's receive buffer was given before; 2048 lowered the lossless rate at N = 16 by
/// about a fifth (a scheduling hiccup overflowed it sooner), 8192 gained nothing measurable.
const RING_FRAMES: usize = 4096;
const RING_MAX_BYTES: usize = 16 << 20;
/// Room in a ring slot before the frame: the tpacket2_hdr and sockaddr_ll (52 bytes) with
/// the kernel's alignment of the network header (TPACKET_ALIGN(52 + 16) = 80); the frame's
/// own link header is counted within, and a few bytes are spare.
const RING_HEADROOM: usize = 96;

/// The ring slot size for frames of an interface with this MTU: a power of two (slots must
/// tile the kernel's blocks), at least 2048.
pub fn ring_frame_size(mtu: u32) -> usize {
    (mtu as usize + RING_HEADROOM)
        .next_power_of_two()
        .clamp(2048, 1 << 16)
}

/// An interface's MTU (SIOCGIFMTU), asked through any socket.
pub fn iface_mtu(sock: &Socket, name: &str) -> io::Result<u32> {
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name and writes the MTU into `req`,
    // alive for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the union's MTU member.
    Ok(unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32)
}

/// The upstream capture's receive side: a shared-memory ring (PACKET_RX_RING, TPACKET_V2)
/// where the kernel supports it, else [`RecvBatch`]. Both hand out bursts the same way.
pub enum Frames {
    Ring(RxRing),
    Batch(RecvBatch),
}

impl Frames {
    pub fn recv(&mut self, sock: &Socket) -> io::Result<usize> {
        match self {
            Frames::Ring(r) => r.recv(sock),
            Frames::Batch(b) => b.recv(sock),
        }
    }

    pub fn capacity(&self) -> usize {
        match self {
            Frames::Ring(r) => r.capacity(),
            Frames::Batch(b) => b.capacity(),
        }
    }

    pub fn frame_mut(&mut self, i: usize) -> (&mut [u8], u32) {
        match self {
            Frames::Ring(r) => r.frame_mut(i),
            Frames::Batch(b) => b.frame_mut(i),
        }
    }

    pub fn offset(&self, i: usize) -> usize {
        match self {
            Frames::Ring(r) => r.offset(i),
            Frames::Batch(b) => b.offset(i),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Frames::Ring(r) => r.bytes(),
            Frames::Batch(b) => b.bytes(),
        }
    }

    /// Frames lost since the last call that the socket's drop count does not include (a
    /// ring slot truncated while the queue for oversized frames was full).
    pub fn take_lost(&mut self) -> u64 {
        match self {
            Frames::Ring(r) => std::mem::take(&mut r.lost),
            Frames::Batch(_) => 0,
        }
    }
}

/// A packet socket's receive ring (PACKET_RX_RING, TPACKET_V2), mapped into this process:
/// the kernel copies each frame into the next free slot in its receive softirq and marks it
/// TP_STATUS_USER; this side reads the slots in order and hands them back (TP_STATUS_KERNEL)
/// at the start of the next [`RxRing::recv`], once the burst's copies are sent. Against
/// recvmmsg this saves, per frame, the socket queue (an skb clone queued, dequeued and
/// freed) and the system call's share: under a blast at N = 1 the minimal C forwarder
/// forwarded about 1.5 times as many frames with a ring (bench/RESULTS.md).
///
/// A frame larger than a slot (an MTU raised after the ring was made, a local program's
/// GSO packet) is not lost: with PACKET_COPY_THRESH the kernel also queues it whole on the
/// socket (its slot says TP_STATUS_COPY), and `recv` reads it from there, in order, as a
/// burst of its own.
pub struct RxRing {
    map: std::ptr::NonNull<u8>,
    len: usize,
    frame: usize,
    slots: usize,
    burst: usize,
    /// The next slot to look at.
    cur: usize,
    /// Slots of the last burst, handed back at the next recv.
    held: Vec<usize>,
    /// Per frame of the last burst: its start in `bytes()`, length, tp_status.
    got: Vec<(usize, usize, u32)>,
    /// An oversized frame read from the socket queue; the last burst is that one frame.
    side: RecvBatch,
    on_side: bool,
    /// Frames whose slot was truncated and had no whole copy queued.
    lost: u64,
    /// Unmap on drop (false for a test's plain memory).
    mapped: bool,
    /// How long `recv` waits for a frame: the socket's read timeout when the ring was made
    /// (read once, not with a system call per wait).
    wait: std::time::Duration,
}

// SAFETY: the ring is memory of this process (a mapping) that only the owning RxRing reads
// and writes from user space; moving it to another thread moves that ownership.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Make `sock` (an unbound AF_PACKET socket: frames queued before would be read out of
    /// order with the ring) a TPACKET_V2 ring socket with RING_FRAMES slots of `frame`
    /// bytes (see [`ring_frame_size`]) and map the ring. `recv` waits up to the socket's
    /// read timeout as it is now (1 s without one).
    pub fn open(sock: &Socket, frame: usize, burst: usize) -> io::Result<Self> {
        let wait = sock
            .read_timeout()?
            .unwrap_or(std::time::Duration::from_secs(1));
        let frame = frame.next_power_of_two().clamp(2048, 1 << 16);
        let slots = RING_FRAMES.min(RING_MAX_BYTES / frame);
        let block = frame.max(128 << 10);
        let per_block = block / frame;
        let blocks = slots.div_ceil(per_block);
        let slots = blocks * per_block;
        #[repr(C)]
        struct TpacketReq {
            block_size: u32,
            block_nr: u32,
            frame_size: u32,
            frame_nr: u32,
        }
        let req = TpacketReq {
            block_size: block as u32,
            block_nr: blocks as u32,
            frame_size: frame as u32,
            frame_nr: slots as u32,
        };
        setsockopt(sock, SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        setsockopt(sock, SOL_PACKET, PACKET_RX_RING, &req)?;
        setsockopt(sock, SOL_PACKET, PACKET_COPY_THRESH, &1 as &libc::c_int)?;
        let len = block * blocks;
        // SAFETY: maps the ring the kernel just made for this socket; no existing memory is
        // affected. It stays valid while mapped, even after the socket closes.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                sock.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = std::ptr::NonNull::new(p as *mut u8).ok_or_else(io::Error::last_os_error)?;
        Ok(Self::from_parts(map, len, frame, burst, wait, true))
    }

    fn from_parts(
        map: std::ptr::NonNull<u8>,
        len: usize,
        frame: usize,
        burst: usize,
        wait: std::time::Duration,
        mapped: bool,
    ) -> Self {
        let burst = burst.clamp(1, MAX_MMSG);
        RxRing {
            map,
            len,
            frame,
            slots: len / frame,
            burst,
            cur: 0,
            held: Vec::with_capacity(burst),
            got: Vec::with_capacity(burst),
            side: RecvBatch::new(1, 65536 + 14),
            on_side: false,
            lost: 0,
            mapped,
            wait,
        }
    }

    pub fn capacity(&self) -> usize {
        self.burst
    }

    /// The status word of a slot, which the kernel and this side hand the slot over with.
    fn status(&self, slot: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: slot < slots, so the slot's first 4 bytes (tp_status, 4-aligned: slots
        // are 2048-aligned in a page-aligned mapping) lie within the mapping, alive for
        // self's life. The kernel writes it too, hence the atomic.
        unsafe {
            &*(self.map.as_ptr().add(slot * self.frame) as *const std::sync::atomic::AtomicU32)
        }
    }

    fn header_u32(&self, slot: usize, at: usize) -> u32 {
        // SAFETY: within the slot's tpacket2_hdr (32 bytes); read after the Acquire load of
        // its status, so the kernel has finished writing it.
        unsafe {
            std::ptr::read_unaligned(self.map.as_ptr().add(slot * self.frame + at) as *const u32)
        }
    }

    /// Hand the last burst's slots back to the kernel, then take the ready ones (up to the
    /// capacity), waiting up to the socket's read timeout when there are none. Returns the
    /// number of frames (0 after a timeout).
    pub fn recv(&mut self, sock: &Socket) -> io::Result<usize> {
        use std::sync::atomic::Ordering;
        for i in 0..self.held.len() {
            let slot = self.held[i];
            self.status(slot).store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.held.clear();
        self.got.clear();
        self.on_side = false;
        if self.take(sock) == 0 && !self.on_side {
            wait_readable(sock, self.wait)?;
            self.take(sock);
        }
        Ok(self.got.len())
    }

    fn take(&mut self, sock: &Socket) -> usize {
        use std::sync::atomic::Ordering;
        while self.got.len() < self.burst {
            let slot = self.cur;
            let status = self.status(slot).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                break;
            }
            if status & TP_STATUS_COPY != 0 && !self.got.is_empty() {
                break; // read it as a burst of its own, after this one
            }
            self.cur = (slot + 1) % self.slots;
            let (len, snap, mac) = (
                self.header_u32(slot, 4) as usize,
                self.header_u32(slot, 8) as usize,
                (self.header_u32(slot, 12) & 0xffff) as usize,
            );
            if status & TP_STATUS_COPY != 0 {
                // The whole frame waits on the socket queue (queued before the slot was
                // marked): read it there, and give the truncated slot back at once.
                self.status(slot).store(TP_STATUS_KERNEL, Ordering::Release);
                match self.side.recv(sock) {
                    Ok(1) => {
                        let (f, st) = self.side.frame_mut(0);
                        self.got.push((0, f.len(), st));
                        self.on_side = true;
                    }
                    _ => self.lost += 1,
                }
                return self.got.len();
            }
            if snap < len || mac + snap > self.frame {
                // Truncated with no whole copy (that queue was full), or a header that
                // does not fit its slot: lost.
                self.lost += 1;
                self.held.push(slot);
                continue;
            }
            self.got.push((slot * self.frame + mac, snap, status));
            self.held.push(slot);
        }
        self.got.len()
    }

    pub fn frame_mut(&mut self, i: usize) -> (&mut [u8], u32) {
        let (start, len, status) = self.got[i];
        if self.on_side {
            return (&mut self.side.frame_mut(0).0[..len], status);
        }
        // SAFETY: start + len lies within the slot (checked in `take`), which the kernel
        // handed over (TP_STATUS_USER) and does not touch until `recv` hands it back;
        // &mut self keeps any other view of the ring from existing meanwhile.
        let f = unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(start), len) };
        (f, status)
    }

    pub fn offset(&self, i: usize) -> usize {
        self.got[i].0
    }

    /// The memory the last burst's frames are in (the ring, or the oversized frame's
    /// buffer), for copies that point into it. Only the burst's own slots are read through
    /// it: the kernel may be writing other slots meanwhile.
    pub fn bytes(&self) -> &[u8] {
        if self.on_side {
            return self.side.bytes();
        }
        // SAFETY: the mapping is `len` bytes alive for self's life; readers only look at
        // slots handed over to this side (see above).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len) }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: exactly the mapping made in `open`, unmapped once; no slice of it
            // outlives self.
            unsafe {
                libc::munmap(self.map.as_ptr() as *mut libc::c_void, self.len);
            }
        }
    }
}

/// One outgoing copy: its own Ethernet header and a payload (the IP packet, unchanged)
/// shared with the other copies of the same frame, as a range of a caller's buffer.
#[derive(Debug, Clone)]
pub struct OutCopy {
    pub head: [u8; 14],
    pub payload: std::ops::Range<usize>,
}

/// Scratch space for [`send_copies`], kept by each sending thread so sends never allocate.
#[derive(Default)]
pub struct SendScratch {
    iov: Vec<[libc::iovec; 2]>,
    hdrs: Vec<libc::mmsghdr>,
}

/// Send every copy on one bound packet socket with as few sendmmsg calls as possible, each
/// message two iovecs: the copy's header and its payload in `base`. Copies are sent in
/// order. A copy the kernel refuses is skipped and its index pushed to `failed`; the first
/// such error is returned for logging. Panics if a payload range is outside `base`.
pub fn send_copies(
    sock: &Socket,
    base: &[u8],
    copies: &[OutCopy],
    scratch: &mut SendScratch,
    failed: &mut Vec<usize>,
) -> Option<io::Error> {
    let mut first_err = None;
    let mut start = 0;
    while start < copies.len() {
        let chunk = &copies[start..copies.len().min(start + MAX_MMSG)];
        scratch.iov.clear();
        scratch.hdrs.clear();
        for c in chunk {
            let payload = &base[c.payload.clone()];
            scratch.iov.push([
                libc::iovec {
                    iov_base: c.head.as_ptr() as *mut libc::c_void,
                    iov_len: c.head.len(),
                },
                libc::iovec {
                    iov_base: payload.as_ptr() as *mut libc::c_void,
                    iov_len: payload.len(),
                },
            ]);
        }
        for iov in scratch.iov.iter_mut() {
            // SAFETY: mmsghdr is plain old data; zeroed is valid before we fill the iovec.
            let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
            h.msg_hdr.msg_iov = iov.as_mut_ptr();
            h.msg_hdr.msg_iovlen = 2;
            scratch.hdrs.push(h);
        }
        // SAFETY: each header points at its own two iovecs in `scratch.iov`, which point at
        // `chunk`'s headers and `base`; all borrowed for the duration of the call. The kernel
        // only reads the buffers.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                scratch.hdrs.as_mut_ptr(),
                scratch.hdrs.len() as libc::c_uint,
                0,
            )
        };
        if r < 0 {
            // The first message of the chunk failed: skip it and go on after it.
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            failed.push(start);
            first_err.get_or_insert(e);
            start += 1;
        } else {
            // r >= 1: a short count means message `start + r` failed; the next call reports
            // its error (or sends it, if the condition passed).
            start += r as usize;
        }
    }
    first_err
}

/// Classic BPF, built with symbolic jump targets.
///
/// A program is a list of loads, ALU steps and conditional jumps whose targets are
/// symbolic: the next instruction, the shared "accept" or "drop" return at the end, or a
/// named label further on (classic BPF only jumps forward). Falling off the end of the
/// body accepts. `finish` lays the program out and turns targets into offsets.
pub mod bpf {
    use libc::sock_filter as Insn_;

    fn mk(code: u16, jt: u8, jf: u8, k: u32) -> Insn_ {
        Insn_ { code, jt, jf, k }
    }

    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_B_IND: u16 = 0x50;
    const ALU_ADD_K: u16 = 0x04;
    const ALU_AND_K: u16 = 0x54;
    const ALU_LSH_K: u16 = 0x64;
    const MISC_TAX: u16 = 0x07;
    const JA: u16 = 0x05;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;

    const ETH_P_IP: u32 = 0x0800;
    const ETH_P_IPV6: u32 = 0x86dd;
    /// IPv4 protocol / IPv6 next header numbers.
    const IGMP: u32 = 2;
    const HOP_BY_HOP: u32 = 0;
    const ICMPV6: u32 = 58;

    /// Where a jump goes.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum To {
        Next,
        Accept,
        Drop,
        /// A label set with [`Prog::label`] later in the program.
        L(&'static str),
    }

    enum Insn {
        Plain(u16, u32),
        Jeq(u32, To, To),
        Goto(To),
        /// Marks a position; takes no instruction.
        Label(&'static str),
    }

    struct Prog(Vec<Insn>);

    impl Prog {
        fn new() -> Self {
            Prog(Vec::new())
        }
        fn plain(&mut self, code: u16, k: u32) -> &mut Self {
            self.0.push(Insn::Plain(code, k));
            self
        }
        /// A = the 16-bit word at `off` (network order).
        fn ld_h(&mut self, off: u32) -> &mut Self {
            self.plain(LD_H_ABS, off)
        }
        /// A = the byte at `off`.
        fn ld_b(&mut self, off: u32) -> &mut Self {
            self.plain(LD_B_ABS, off)
        }
        /// A = the 32-bit word at `off` (network order).
        fn ld_w(&mut self, off: u32) -> &mut Self {
            self.plain(LD_W_ABS, off)
        }
        /// A = the byte at X + `off`.
        fn ld_b_ind(&mut self, off: u32) -> &mut Self {
            self.plain(LD_B_IND, off)
        }
        fn and(&mut self, k: u32) -> &mut Self {
            self.plain(ALU_AND_K, k)
        }
        fn add(&mut self, k: u32) -> &mut Self {
            self.plain(ALU_ADD_K, k)
        }
        fn lsh(&mut self, k: u32) -> &mut Self {
            self.plain(ALU_LSH_K, k)
        }
        /// X = A.
        fn tax(&mut self) -> &mut Self {
            self.plain(MISC_TAX, 0)
        }
        /// If A == k go to `t`, else to `f`.
        fn jeq(&mut self, k: u32, t: To, f: To) -> &mut Self {
            self.0.push(Insn::Jeq(k, t, f));
            self
        }
        /// Continue when A == k, else drop.
        fn require(&mut self, k: u32) -> &mut Self {
            self.jeq(k, To::Next, To::Drop)
        }
        /// Drop when A == k, else continue.
        fn reject(&mut self, k: u32) -> &mut Self {
            self.jeq(k, To::Drop, To::Next)
        }
        fn goto(&mut self, to: To) -> &mut Self {
            self.0.push(Insn::Goto(to));
            self
        }
        fn label(&mut self, name: &'static str) -> &mut Self {
            self.0.push(Insn::Label(name));
            self
        }

        /// Lay out the body, then "accept up to `snap` bytes" and "drop"; resolve jumps.
        /// Panics on an unknown or backward label, or a conditional jump longer than 255
        /// instructions: programming errors in the fixed programs below, which every one
        /// of their unit tests would hit.
        fn finish(&self, snap: u32) -> Vec<Insn_> {
            // Position of each real instruction and label.
            let mut at = Vec::with_capacity(self.0.len());
            let mut n = 0usize;
            for insn in &self.0 {
                at.push(n);
                if !matches!(insn, Insn::Label(_)) {
                    n += 1;
                }
            }
            let (accept_at, drop_at) = (n, n + 1);
            let target = |to: To, next: usize| -> usize {
                match to {
                    To::Next => next,
                    To::Accept => accept_at,
                    To::Drop => drop_at,
                    To::L(name) => {
                        let found = self.0.iter().zip(&at).find_map(|(insn, &pos)| match insn {
                            Insn::Label(l) if *l == name => Some(pos),
                            _ => None,
                        });
                        found.unwrap_or_else(|| panic!("bpf: no label {name:?}"))
                    }
                }
            };
            let mut out = Vec::with_capacity(n + 2);
            for (insn, &pos) in self.0.iter().zip(&at) {
                let next = pos + 1;
                let off = |to: To| -> usize {
                    let t = target(to, next);
                    assert!(t >= next, "bpf: backward jump to {to:?}");
                    t - next
                };
                match *insn {
                    Insn::Plain(code, k) => out.push(mk(code, 0, 0, k)),
                    Insn::Jeq(k, t, f) => {
                        let short = |to| u8::try_from(off(to)).expect("bpf: jump over 255");
                        out.push(mk(JEQ_K, short(t), short(f), k));
                    }
                    Insn::Goto(to) => out.push(mk(JA, 0, 0, off(to) as u32)),
                    Insn::Label(_) => {}
                }
            }
            out.push(mk(RET_K, 0, 0, snap));
            out.push(mk(RET_K, 0, 0, 0));
            out
        }
    }

    /// IPv4 with protocol IGMP at `b` (RFC 2236 2, RFC 3376 4: IP protocol number 2).
    fn ipv4_igmp(p: &mut Prog, b: u32) {
        p.ld_b(b + 9).require(IGMP);
    }

    /// IPv6 whose first next header is hop-by-hop options (where MLD lives: RFC 3810 5
    /// sends every MLD message with a Router Alert option) or ICMPv6 itself (MLD without
    /// Router Alert, which userspace drops and counts). Other ICMPv6 (neighbour discovery)
    /// passes too; userspace tells it apart by type.
    fn ipv6_group_messages(p: &mut Prog, b: u32) {
        p.ld_b(b + 6)
            .jeq(HOP_BY_HOP, To::Accept, To::Next)
            .require(ICMPV6);
    }

    /// IPv4 multicast data at `b`: destination in 224.0.0.0/4 but not 224.0.0.0/24 (the
    /// Local Network Control Block, never routed: RFC 5771 4), and not IGMP (RFC 2236
    /// reports go to the group address itself).
    fn ipv4_data(p: &mut Prog, b: u32) {
        p.ld_b(b).and(0xf0).require(0x40);
        p.ld_b(b + 16).and(0xf0).require(0xe0);
        p.ld_w(b + 16).and(0xffff_ff00).reject(0xe000_0000);
        p.ld_b(b + 9).reject(IGMP);
    }

    /// IPv6 multicast data at `b`: version 6, destination in ff00::/8 (RFC 4291 2.7) with a
    /// scope wider than link-local (not 0 reserved, 1 interface-local, 2 link-local, f
    /// reserved), and not an MLD message (ICMPv6 types 130, 131, 132, 143: RFC 3810 5,
    /// RFC 2710 3), directly or behind one hop-by-hop header. MLDv1 reports and
    /// group-specific queries go to the group address itself, like IGMPv2 reports.
    fn ipv6_data(p: &mut Prog, b: u32) {
        p.ld_b(b).and(0xf0).require(0x60);
        p.ld_b(b + 24).require(0xff);
        p.ld_b(b + 25).and(0x0f);
        p.reject(0x0).reject(0x1).reject(0x2).reject(0xf);
        // X is 0 here (the kernel clears A and X before a classic program runs), so the
        // ICMPv6 type is at X + b + 40 on both ways to the label.
        p.ld_b(b + 6).jeq(ICMPV6, To::L("icmp6"), To::Next);
        p.jeq(HOP_BY_HOP, To::Next, To::Accept);
        p.ld_b(b + 40).jeq(ICMPV6, To::Next, To::Accept);
        // Hop-by-hop header length: (Hdr Ext Len + 1) * 8 octets (RFC 8200 4.3).
        p.ld_b(b + 41).add(1).lsh(3).tax();
        p.label("icmp6").ld_b_ind(b + 40);
        p.reject(130).reject(131).reject(132).reject(143);
    }

    /// Downstream capture: IGMP (`v4`) and/or the IPv6 frames that can carry MLD (`v6`):
    /// first next header hop-by-hop or ICMPv6. Ethernet only. Neither family: drop all.
    pub fn group_messages(v4: bool, v6: bool) -> Vec<Insn_> {
        let mut p = Prog::new();
        match (v4, v6) {
            (false, false) => return drop_all(),
            (true, false) => {
                p.ld_h(12).require(ETH_P_IP);
                ipv4_igmp(&mut p, 14);
            }
            (false, true) => {
                p.ld_h(12).require(ETH_P_IPV6);
                ipv6_group_messages(&mut p, 14);
            }
            (true, true) => {
                p.ld_h(12).jeq(ETH_P_IP, To::Next, To::L("v6"));
                ipv4_igmp(&mut p, 14);
                p.goto(To::Accept);
                p.label("v6").require(ETH_P_IPV6);
                ipv6_group_messages(&mut p, 14);
            }
        }
        p.finish(65535)
    }

    /// Downstream: IPv4 IGMP only (`group_messages(true, false)`).
    pub fn igmp_only() -> Vec<Insn_> {
        group_messages(true, false)
    }

    /// Upstream: multicast data of IPv4 (`v4`) and/or IPv6 (`v6`), see `ipv4_data` and
    /// `ipv6_data`. `link_header` is 14 for Ethernet (the EtherType picks the family), 0
    /// for raw-IP links such as tun (the version nibble does). Neither family: drop all.
    pub fn multicast_data(link_header: u32, v4: bool, v6: bool) -> Vec<Insn_> {
        let b = link_header;
        let eth = b == 14;
        let mut p = Prog::new();
        match (v4, v6) {
            (false, false) => return drop_all(),
            (true, false) => {
                if eth {
                    p.ld_h(12).require(ETH_P_IP);
                }
                ipv4_data(&mut p, b);
            }
            (false, true) => {
                if eth {
                    p.ld_h(12).require(ETH_P_IPV6);
                }
                ipv6_data(&mut p, b);
            }
            (true, true) => {
                if eth {
                    p.ld_h(12).jeq(ETH_P_IP, To::Next, To::L("v6"));
                } else {
                    p.ld_b(b).and(0xf0).jeq(0x40, To::Next, To::L("v6"));
                }
                ipv4_data(&mut p, b);
                p.goto(To::Accept);
                p.label("v6");
                if eth {
                    p.require(ETH_P_IPV6);
                }
                ipv6_data(&mut p, b);
            }
        }
        p.finish(262_144)
    }

    /// Accept nothing (join sockets must never buffer the stream).
    pub fn drop_all() -> Vec<Insn_> {
        vec![mk(RET_K, 0, 0, 0)]
    }

    /// Run a program the way the kernel would (only the instructions built here), returning
    /// the accepted length. A and X start at 0; an out-of-bounds load returns 0 (drop), as
    /// in the kernel; conditional jumps skip jt/jf instructions, `ja` skips k. For tests
    /// and the fuzz targets only: built with `cfg(test)` or the `bpf-interpreter` feature
    /// (which fuzz/Cargo.toml and the self dev-dependency in Cargo.toml turn on).
    #[cfg(any(test, feature = "bpf-interpreter"))]
    pub fn run(prog: &[Insn_], pkt: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut pc = 0;
        let byte = |off: u32| pkt.get(off as usize).map(|&b| u32::from(b));
        while pc < prog.len() {
            let i = &prog[pc];
            let k = i.k as usize;
            pc += 1;
            match i.code {
                LD_H_ABS => match pkt.get(k..k.saturating_add(2)) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                LD_B_ABS => match byte(i.k) {
                    Some(b) => a = b,
                    None => return 0,
                },
                LD_W_ABS => match pkt.get(k..k.saturating_add(4)) {
                    Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    None => return 0,
                },
                LD_B_IND => match x.checked_add(i.k).and_then(byte) {
                    Some(b) => a = b,
                    None => return 0,
                },
                ALU_AND_K => a &= i.k,
                ALU_ADD_K => a = a.wrapping_add(i.k),
                ALU_LSH_K => a = a.wrapping_shl(i.k),
                MISC_TAX => x = a,
                JA => pc += k,
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

    use super::{send_copies, OutCopy, RecvBatch, RxRing, SendScratch};
    use socket2::{Domain, Socket, Type};

    fn pair() -> (Socket, Socket) {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None).unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        (a, b)
    }

    fn copy(dst: u8, payload: std::ops::Range<usize>) -> OutCopy {
        let mut head = [0u8; 14];
        head[0] = dst;
        OutCopy { head, payload }
    }

    #[test]
    fn copies_go_out_in_order_as_header_plus_shared_payload_and_arrive_as_one_burst() {
        let (tx, rx) = pair();
        let base: Vec<u8> = (0..100u8).collect();
        let copies: Vec<OutCopy> = (0..5).map(|i| copy(i, 10..20 + usize::from(i))).collect();
        let mut failed = Vec::new();
        let err = send_copies(
            &tx,
            &base,
            &copies,
            &mut SendScratch::default(),
            &mut failed,
        );
        assert!(err.is_none() && failed.is_empty());
        let mut rb = RecvBatch::new(8, 64);
        assert_eq!(rb.capacity(), 8);
        assert_eq!(rb.recv(&rx).unwrap(), 5, "one call takes everything queued");
        for i in 0..5 {
            let (f, status) = rb.frame_mut(i);
            assert_eq!(status, 0, "no auxdata on this socket");
            assert_eq!(f.len(), 14 + 10 + i);
            assert_eq!(f[0], i as u8);
            assert_eq!(&f[14..], &base[10..20 + i]);
            assert_eq!(rb.offset(i), i * 64);
        }
        let e = rb.recv(&rx).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "timeout");
    }

    /// A receive ring over plain memory, `slots` slots of 2048 bytes, as the kernel would
    /// fill it: `put` writes a slot's tpacket2_hdr and frame.
    struct TestRing {
        mem: Vec<u64>,
    }

    impl TestRing {
        fn new(slots: usize) -> Self {
            TestRing {
                mem: vec![0; slots * 2048 / 8],
            }
        }

        fn ring(&mut self, burst: usize) -> RxRing {
            let len = self.mem.len() * 8;
            let p = std::ptr::NonNull::new(self.mem.as_mut_ptr() as *mut u8).unwrap();
            RxRing::from_parts(
                p,
                len,
                2048,
                burst,
                std::time::Duration::from_millis(100),
                false,
            )
        }

        fn bytes(&mut self) -> &mut [u8] {
            let len = self.mem.len() * 8;
            // SAFETY: the Vec's own memory, len bytes.
            unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr() as *mut u8, len) }
        }

        /// Slot `i` holds a frame of `len` bytes (first byte `tag`), `snap` of them kept.
        fn put(&mut self, i: usize, status: u32, len: usize, snap: usize, tag: u8) {
            let b = &mut self.bytes()[i * 2048..(i + 1) * 2048];
            b[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
            b[8..12].copy_from_slice(&(snap as u32).to_ne_bytes());
            b[12..14].copy_from_slice(&66u16.to_ne_bytes());
            b[66..66 + snap.min(2048 - 66)].fill(tag);
            b[0..4].copy_from_slice(&status.to_ne_bytes());
        }

        fn status(&mut self, i: usize) -> u32 {
            let b = &self.bytes()[i * 2048..];
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    const USER: u32 = super::TP_STATUS_USER;

    #[test]
    fn a_ring_hands_out_ready_slots_in_order_and_gives_them_back_at_the_next_recv() {
        let (_tx, rx) = pair();
        let mut t = TestRing::new(4);
        let mut r = t.ring(8);
        t.put(0, USER, 60, 60, 1);
        t.put(1, USER | super::TP_STATUS_CSUMNOTREADY, 70, 70, 2);
        assert_eq!(r.recv(&rx).unwrap(), 2);
        let (f, st) = r.frame_mut(1);
        assert_eq!((f.len(), f[0], f[69]), (70, 2, 2));
        assert_ne!(st & super::TP_STATUS_CSUMNOTREADY, 0);
        assert_eq!(r.offset(0), 66);
        assert_eq!(r.offset(1), 2048 + 66);
        assert_eq!(r.bytes()[2048 + 66], 2, "copies point into the ring itself");
        assert_eq!(t.status(0), USER, "held while the burst's copies go out");
        // Nothing more: the burst is handed back, then the read times out empty.
        assert_eq!(r.recv(&rx).unwrap(), 0);
        assert_eq!((t.status(0), t.status(1)), (0, 0), "TP_STATUS_KERNEL again");
        // Around the end of the ring, and no more than the burst size at once.
        let mut r = t.ring(2);
        for (i, tag) in [(0, 10), (1, 11), (2, 12), (3, 13)] {
            t.put(i, USER, 60, 60, tag);
        }
        assert_eq!(r.recv(&rx).unwrap(), 2);
        assert_eq!(r.recv(&rx).unwrap(), 2);
        assert_eq!(r.frame_mut(1).0[0], 13);
        t.put(0, USER, 60, 60, 20);
        assert_eq!(r.recv(&rx).unwrap(), 1, "slot 0 again after slot 3");
        assert_eq!(r.frame_mut(0).0[0], 20);
    }

    #[test]
    fn an_oversized_frame_is_read_whole_from_the_socket_as_a_burst_of_its_own() {
        let (tx, rx) = pair();
        let mut t = TestRing::new(4);
        let mut r = t.ring(8);
        t.put(0, USER, 60, 60, 1);
        t.put(1, USER | super::TP_STATUS_COPY, 5000, 2048 - 66, 2);
        t.put(2, USER, 60, 60, 3);
        tx.send(&[7u8; 5000]).unwrap();
        assert_eq!(
            r.recv(&rx).unwrap(),
            1,
            "the burst ends before the copied frame"
        );
        assert_eq!(r.frame_mut(0).0[0], 1);
        assert_eq!(r.recv(&rx).unwrap(), 1);
        let (f, _) = r.frame_mut(0);
        assert_eq!(
            (f.len(), f[0], f[4999]),
            (5000, 7, 7),
            "whole, from the socket"
        );
        assert_eq!(r.offset(0), 0);
        assert_eq!(r.bytes().len(), 65536 + 14, "the side buffer, not the ring");
        assert_eq!(t.status(1), 0, "its truncated slot went back at once");
        assert_eq!(r.recv(&rx).unwrap(), 1);
        assert_eq!(r.frame_mut(0).0[0], 3, "then the ring again, in order");
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn a_truncated_slot_without_a_whole_copy_is_counted_lost() {
        let (_tx, rx) = pair();
        let mut t = TestRing::new(4);
        let mut r = t.ring(8);
        t.put(0, USER, 5000, 2048 - 66, 1);
        // COPY said but nothing queued (cannot happen with the kernel's order; still lost).
        t.put(1, USER | super::TP_STATUS_COPY, 5000, 2048 - 66, 2);
        t.put(2, USER, 60, 60, 3);
        assert_eq!(r.recv(&rx).unwrap(), 1, "slots 0 and 1 lost, then slot 2");
        assert_eq!(r.frame_mut(0).0[0], 3);
        assert_eq!(r.lost, 2);
        assert_eq!(r.recv(&rx).unwrap(), 0);
        assert_eq!((t.status(0), t.status(1), t.status(2)), (0, 0, 0));
    }

    #[test]
    fn a_refused_copy_is_reported_and_skipped_and_the_rest_still_go() {
        let (tx, rx) = pair();
        tx.set_send_buffer_size(4096).unwrap();
        let sndbuf = tx.send_buffer_size().unwrap();
        // Larger than the send buffer: EMSGSIZE for that one copy only.
        let base = vec![7u8; sndbuf * 2 + 100];
        let copies = vec![
            copy(1, 0..10),
            copy(2, 0..base.len()),
            copy(3, 0..10),
            copy(4, 0..base.len()),
        ];
        let mut failed = Vec::new();
        let err = send_copies(
            &tx,
            &base,
            &copies,
            &mut SendScratch::default(),
            &mut failed,
        );
        assert_eq!(failed, vec![1, 3]);
        assert!(err.is_some());
        let mut rb = RecvBatch::new(8, 64);
        assert_eq!(rb.recv(&rx).unwrap(), 2);
        assert_eq!(rb.frame_mut(0).0[0], 1);
        assert_eq!(rb.frame_mut(1).0[0], 3);
    }

    #[test]
    fn more_copies_than_one_call_takes_are_sent_in_chunks() {
        let (tx, rx) = pair();
        tx.set_send_buffer_size(1 << 20).unwrap();
        rx.set_recv_buffer_size(1 << 20).unwrap();
        let base = [9u8; 4];
        let n = super::MAX_MMSG + 10;
        let copies: Vec<OutCopy> = (0..n).map(|i| copy(i as u8, 0..4)).collect();
        let mut failed = Vec::new();
        let err = send_copies(
            &tx,
            &base,
            &copies,
            &mut SendScratch::default(),
            &mut failed,
        );
        assert!(err.is_none(), "{err:?}");
        let mut rb = RecvBatch::new(super::MAX_MMSG, 32);
        let mut got = 0;
        while got < n {
            let k = rb.recv(&rx).unwrap();
            for i in 0..k {
                assert_eq!(rb.frame_mut(i).0[0], (got + i) as u8, "in order");
            }
            got += k;
        }
        assert_eq!(got, n);
    }

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
            let p = bpf::multicast_data(link, true, false);
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

    fn eth_ipv6(dst: &str, nh: u8, payload: &[u8]) -> Vec<u8> {
        let dst: std::net::Ipv6Addr = dst.parse().unwrap();
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[14 + 4..14 + 6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        f[14 + 6] = nh;
        f[14 + 7] = 1;
        f[14 + 8] = 0xfe;
        f[14 + 9] = 0x80;
        f[14 + 23] = 1;
        f[14 + 24..14 + 40].copy_from_slice(&dst.octets());
        f.extend_from_slice(payload);
        f
    }

    /// A hop-by-hop header of `8 * (1 + ext_len)` octets (Router Alert, then padding) in
    /// front of `inner` (protocol `nh`).
    fn hbh(nh: u8, ext_len: u8, inner: &[u8]) -> Vec<u8> {
        let mut h = vec![nh, ext_len, 5, 2, 0, 0];
        let pad = 8 * (1 + usize::from(ext_len)) - h.len();
        h.push(1);
        h.push((pad - 2) as u8);
        h.extend(std::iter::repeat_n(0, pad - 2));
        h.extend_from_slice(inner);
        h
    }

    fn icmp6(ty: u8) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0];
        m.extend_from_slice(&[0; 20]);
        m
    }

    const UDP: &[u8] = &[0x13, 0x88, 0x13, 0x88, 0, 8, 0, 0];

    #[test]
    fn downstream_filter_takes_igmp_and_what_may_be_mld() {
        let both = bpf::group_messages(true, true);
        let v4 = bpf::group_messages(true, false);
        let v6 = bpf::group_messages(false, true);
        let none = bpf::group_messages(false, false);
        let igmp = eth_ipv4([224, 0, 0, 22], 2);
        let mld_hbh = eth_ipv6("ff02::16", 0, &hbh(58, 0, &icmp6(143)));
        let mld_long_hbh = eth_ipv6("ff02::16", 0, &hbh(58, 2, &icmp6(143)));
        let mld_no_ra = eth_ipv6("ff02::16", 58, &icmp6(143));
        // Neighbour solicitation: ICMPv6 too; userspace tells it from MLD by type.
        let ns = eth_ipv6("ff02::1:ff00:1", 58, &icmp6(135));
        let udp6 = eth_ipv6("ff02::1", 17, UDP);
        let udp4 = eth_ipv4([239, 1, 1, 1], 17);
        let igmp_v2 = eth_ipv4([239, 1, 1, 1], 2);
        for f in [&igmp, &igmp_v2] {
            assert!(bpf::run(&both, f) > 0 && bpf::run(&v4, f) > 0);
            assert_eq!(bpf::run(&v6, f), 0);
        }
        for f in [&mld_hbh, &mld_long_hbh, &mld_no_ra, &ns] {
            assert!(bpf::run(&both, f) > 0 && bpf::run(&v6, f) > 0);
            assert_eq!(bpf::run(&v4, f), 0, "IPv4-only takes no IPv6");
        }
        for f in [&udp6, &udp4, &igmp[..20].to_vec(), &vec![0u8; 10]] {
            assert_eq!(bpf::run(&both, f), 0);
            assert_eq!(bpf::run(&v6, f), 0);
        }
        assert_eq!(bpf::run(&v4, &udp4), 0);
        let mut arp = igmp.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(bpf::run(&both, &arp), 0);
        for f in [&igmp, &mld_hbh, &mld_no_ra] {
            assert_eq!(bpf::run(&none, f), 0, "neither family: nothing");
        }
        assert_eq!(bpf::igmp_only(), v4, "igmp_only is the IPv4-only program");
    }

    #[test]
    fn upstream_filter_takes_routable_ipv6_multicast_data_only() {
        for (link, strip) in [(14u32, 0usize), (0, 14)] {
            let both = bpf::multicast_data(link, true, true);
            let v6 = bpf::multicast_data(link, false, true);
            let v4 = bpf::multicast_data(link, true, false);
            let pkt = |dst: &str, nh: u8, p: &[u8]| eth_ipv6(dst, nh, p)[strip..].to_vec();
            let yes = [
                pkt("ff0e::1", 17, UDP),
                pkt("ff05::1", 17, UDP),
                pkt("ff08::1:2", 17, UDP),
                pkt("ff3e::8000:1", 17, UDP),
                pkt("ff1e::1", 17, UDP),
                pkt("ff04::1", 17, UDP),
                // Not MLD: echo requests and UDP, also behind a hop-by-hop header.
                pkt("ff0e::1", 58, &icmp6(128)),
                pkt("ff0e::1", 0, &hbh(58, 1, &icmp6(128))),
                pkt("ff0e::1", 0, &hbh(17, 0, UDP)),
                // A hop-by-hop header whose next header is not ICMPv6 is not read further.
                pkt("ff0e::1", 0, &hbh(17, 0, &[])[..2]),
            ];
            for (i, f) in yes.iter().enumerate() {
                assert!(bpf::run(&both, f) > 0, "link {link} frame {i}");
                assert!(bpf::run(&v6, f) > 0, "link {link} frame {i}");
                assert_eq!(bpf::run(&v4, f), 0, "link {link} frame {i}: v4 only");
            }
            let no = [
                ("ff02::1", pkt("ff02::1", 17, UDP)),
                ("ff01::1", pkt("ff01::1", 17, UDP)),
                ("ff02::1:ff00:1", pkt("ff02::1:ff00:1", 17, UDP)),
                ("ff00::1 scope 0", pkt("ff00::1", 17, UDP)),
                ("ff0f::1 scope f", pkt("ff0f::1", 17, UDP)),
                ("ff32::1 SSM link", pkt("ff32::1", 17, UDP)),
                ("unicast", pkt("2001:db8::1", 17, UDP)),
                ("fe80::1", pkt("fe80::1", 17, UDP)),
                ("MLDv1 report", pkt("ff0e::1", 0, &hbh(58, 0, &icmp6(131)))),
                ("MLDv1 done", pkt("ff0e::1", 0, &hbh(58, 0, &icmp6(132)))),
                ("MLD query", pkt("ff05::1", 0, &hbh(58, 3, &icmp6(130)))),
                ("MLDv2 report", pkt("ff0e::1", 0, &hbh(58, 0, &icmp6(143)))),
                ("MLD without RA", pkt("ff0e::1", 58, &icmp6(131))),
                ("HBH past the end", pkt("ff0e::1", 0, &hbh(58, 4, &[])[..8])),
                (
                    "cut before the scope",
                    pkt("ff0e::1", 17, UDP)[..14 - strip + 25].to_vec(),
                ),
            ];
            for (what, f) in &no {
                assert_eq!(bpf::run(&both, f), 0, "link {link}: {what}");
                assert_eq!(bpf::run(&v6, f), 0, "link {link}: {what}");
            }
            let mut v4_in_v6 = pkt("ff0e::1", 17, UDP);
            v4_in_v6[14 - strip] = 0x40;
            assert_eq!(bpf::run(&v6, &v4_in_v6), 0, "version 4 in an IPv6 frame");
            let v4data = eth_ipv4([239, 1, 1, 1], 17)[strip..].to_vec();
            assert!(bpf::run(&both, &v4data) > 0);
            assert_eq!(bpf::run(&v6, &v4data), 0, "v6 only takes no IPv4");
            let none = bpf::multicast_data(link, false, false);
            assert_eq!(bpf::run(&none, &v4data), 0);
            assert_eq!(bpf::run(&none, &yes[0]), 0);
        }
    }

    #[test]
    fn every_program_is_accepted_by_the_kernel() {
        // Attaching to an unprivileged UDP socket runs the kernel's classic BPF checker.
        let s = socket2::Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let mut progs = vec![bpf::drop_all(), bpf::igmp_only()];
        for v4 in [false, true] {
            for v6 in [false, true] {
                progs.push(bpf::group_messages(v4, v6));
                progs.push(bpf::multicast_data(14, v4, v6));
                progs.push(bpf::multicast_data(0, v4, v6));
            }
        }
        for p in &progs {
            super::attach_filter(&s, p).unwrap_or_else(|e| panic!("{e}: {p:?}"));
        }
    }
}
