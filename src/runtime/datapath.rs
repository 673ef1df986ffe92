//! The per-packet path: the upstream capture and the sender pool.
//!
//! ```text
//! cap-up:IF  1. read a burst of frames with one recvmmsg (PACKET_AUXDATA with each)
//!            2. complete checksums left to the device (frames a local program sent)
//!            3. look up (source, group) in the forwarding snapshot, refreshed only when its
//!               generation changes (no lock per packet)
//!            4. plan one copy per target: its own 14-byte Ethernet header plus the frame's IP
//!               packet, shared by all copies (never copied in user space)
//!            5a. keeping up: send the burst's copies itself, one sendmmsg per interface
//!            5b. behind (the read came back full) and there is a pool: hand the burst to the
//!                send-N workers, each host always to the same worker; a full queue drops
//!                and counts
//! send-N     6. send its share of a burst, one sendmmsg per interface, then return the
//!               emptied job to its capture thread's free list
//! ```
//!
//! Order per host: the capture thread sends itself only while no job is pending in the
//! pool, so a host's copies never overtake each other.

use super::shared::{DownTx, Shared};
use super::stats::{add, RateLimit};
use super::sys::{self, Frames, OutCopy, RecvBatch, RxRing, SendScratch};
use crate::core::fib::Target;
use crate::core::membership::MemberCounters;
use crate::wire::classify;
use crate::wire::{ethernet, LinkType, MacAddr};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use log::warn;
use socket2::Socket;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames read per recvmmsg. 64 frames x 16 copies fill one sendmmsg (1024 messages).
pub const BURST: usize = 64;
/// Room for the largest IPv4 packet behind an Ethernet header.
const SLOT: usize = 65536 + ethernet::HEADER_LEN;
/// How often the capture socket's drop count is read.
const DROPS_EVERY: Duration = Duration::from_millis(500);

/// Copies to send, per downstream interface (indexed by `IfaceId`), with payload ranges
/// into some buffer the owner keeps beside it.
#[derive(Default)]
struct Outbox {
    ifaces: Vec<IfaceOut>,
    /// The interfaces with copies, in the order they got their first: a flush visits only
    /// these, not every slot (the slots include the spare ones a reload may fill).
    touched: Vec<usize>,
}

#[derive(Default)]
struct IfaceOut {
    copies: Vec<OutCopy>,
    /// In step with `copies`: the member's counters (None for a group-MAC copy).
    counters: Vec<Option<Arc<MemberCounters>>>,
}

impl Outbox {
    fn new(ifaces: usize) -> Self {
        Outbox {
            ifaces: (0..ifaces).map(|_| IfaceOut::default()).collect(),
            touched: Vec::new(),
        }
    }

    fn push(
        &mut self,
        t: &Target,
        counter: Option<Arc<MemberCounters>>,
        ethertype: u16,
        payload: std::ops::Range<usize>,
    ) {
        if let Some(o) = self.ifaces.get_mut(t.iface) {
            if o.copies.is_empty() {
                self.touched.push(t.iface);
            }
            // The source MAC is filled in at send time, from the interface's current link.
            let mut head = [0u8; ethernet::HEADER_LEN];
            head[..6].copy_from_slice(&t.mac.octets());
            head[12..].copy_from_slice(&ethertype.to_be_bytes());
            o.copies.push(OutCopy { head, payload });
            o.counters.push(counter);
        }
    }

    fn len(&self) -> usize {
        self.touched
            .iter()
            .map(|&i| self.ifaces[i].copies.len())
            .sum()
    }

    /// Empty every interface's list, keeping their capacity.
    fn clear(&mut self) {
        for &i in &self.touched {
            self.ifaces[i].copies.clear();
            self.ifaces[i].counters.clear();
        }
        self.touched.clear();
    }
}

/// Room reserved in a new job's buffer: a burst of full-size (1500-byte) packets.
const JOB_BUF: usize = BURST * 1500;
/// A job whose buffer grew past this (a burst of jumbo packets) is freed, not recycled, so
/// a free list never holds much more than steady traffic needs.
const JOB_BUF_KEEP: usize = BURST * 9216;
/// Emptied jobs a capture thread keeps per sender worker.
const FREE_PER_WORKER: usize = 4;

/// One burst's copies for one sender worker: the IP packets back to back in `buf`.
///
/// Jobs are recycled: the worker empties a sent job and returns it through `home` to the
/// free list of the capture thread that made it, which takes it from there for a later
/// burst. Offloading therefore allocates only until enough jobs circulate.
pub struct Job {
    buf: Vec<u8>,
    out: Outbox,
    home: Sender<Job>,
}

impl Job {
    fn new(ifaces: usize, home: Sender<Job>) -> Self {
        Job {
            buf: Vec::with_capacity(JOB_BUF),
            out: Outbox::new(ifaces),
            home,
        }
    }

    /// Empty the job and return it to its capture thread's free list. It is freed instead
    /// when that list is full (the capture thread has enough), when the capture thread is
    /// gone (the interface closed), or when its buffer grew past `JOB_BUF_KEEP`.
    fn recycle(mut self) {
        if self.buf.capacity() > JOB_BUF_KEEP {
            return;
        }
        self.buf.clear();
        self.out.clear();
        // Full or gone: the job is dropped here instead.
        let home = self.home.clone();
        let _ = home.try_send(self);
    }
}

/// The sender pool as the capture thread sees it.
#[derive(Clone)]
pub struct Pool {
    txs: Vec<Sender<Job>>,
    /// Jobs handed out and not yet fully sent.
    pending: Arc<AtomicUsize>,
}

impl Pool {
    pub fn new(txs: Vec<Sender<Job>>, pending: Arc<AtomicUsize>) -> Self {
        Pool { txs, pending }
    }

    fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Each host always goes to the same worker, so its copies stay in order. All six bytes
    /// count: virtual MACs often differ only in the middle.
    fn worker_of(&self, mac: MacAddr) -> usize {
        let mut x = [0u8; 8];
        x[..6].copy_from_slice(&mac.octets());
        let h = u64::from_le_bytes(x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 32) as usize) % self.txs.len()
    }
}

static WARN_CAPTURE: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_QUEUE: RateLimit = RateLimit::new(Duration::from_secs(10));

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The sending side of a thread: its own scratch space and a cached copy of the downstream
/// links, refreshed when their generation changes.
struct Emitter {
    scratch: SendScratch,
    failed: Vec<usize>,
    links: Vec<Option<Arc<DownTx>>>,
    links_gen: u64,
}

impl Emitter {
    fn new(sh: &Shared) -> Self {
        Emitter {
            scratch: SendScratch::default(),
            failed: Vec::new(),
            links: sh.down_links(),
            links_gen: sh.links_gen.load(Ordering::Acquire),
        }
    }

    /// Takes the current downstream senders when they changed. Called on every send and
    /// also when idle: a sender of a downstream that was closed (its packet socket) must not
    /// stay open in here until the next copy goes out (the soak test found such fds left
    /// after every member had gone).
    fn refresh(&mut self, sh: &Shared) {
        let g = sh.links_gen.load(Ordering::Acquire);
        if g != self.links_gen {
            self.links = sh.down_links();
            self.links_gen = g;
        }
    }

    /// Send everything in `out` (payloads in `base`) and empty it; count sent and failed
    /// copies, daemon-wide once per call and per member.
    fn flush(&mut self, sh: &Shared, base: &[u8], out: &mut Outbox) {
        self.refresh(sh);
        let c = &sh.counters;
        for &i in &out.touched {
            let o = &mut out.ifaces[i];
            let Some(tx) = self.links.get(i).and_then(|l| l.as_ref()) else {
                add(&c.copies_dropped, o.copies.len() as u64);
                o.copies.clear();
                o.counters.clear();
                continue;
            };
            let src = tx.link.source_mac.octets();
            for copy in &mut o.copies {
                copy.head[6..12].copy_from_slice(&src);
            }
            self.failed.clear();
            let err = sys::send_copies(
                &tx.sock,
                base,
                &o.copies,
                &mut self.scratch,
                &mut self.failed,
            );
            add(&c.copies_sent, (o.copies.len() - self.failed.len()) as u64);
            if let Some(e) = err {
                add(&c.copies_dropped, self.failed.len() as u64);
                if WARN_SEND.allow(Instant::now()) {
                    warn!("{}: sending copies failed: {e}", tx.link.iface.name);
                }
            }
            // `failed` is ascending: walk it beside the copies.
            let mut failed = self.failed.iter().copied().peekable();
            for (k, (copy, counter)) in o.copies.iter().zip(&o.counters).enumerate() {
                if failed.peek() == Some(&k) {
                    failed.next();
                    continue;
                }
                if let Some(m) = counter {
                    m.packets.fetch_add(1, Ordering::Relaxed);
                    m.bytes
                        .fetch_add(copy.payload.len() as u64, Ordering::Relaxed);
                }
            }
            o.copies.clear();
            o.counters.clear();
        }
        out.touched.clear();
    }
}

/// Per-burst counts, added to the shared counters once per burst.
#[derive(Default)]
struct BurstCounts {
    forwarded: u64,
    unwanted: u64,
    invalid: u64,
    checksums: u64,
}

/// Upstream capture until `stop` or `cancel` (the interface went away).
pub fn capture_upstream(
    sh: &Shared,
    sock: Socket,
    ring: Option<RxRing>,
    link: LinkType,
    name: &str,
    pool: Pool,
    cancel: &AtomicBool,
) {
    let c = &sh.counters;
    let ifaces = sh.down.len();
    let mut rb = match ring {
        Some(r) => Frames::Ring(r),
        None => Frames::Batch(RecvBatch::new(BURST, SLOT)),
    };
    let mut fib = sh.fib.read().clone();
    let mut fib_gen = sh.fib_gen.load(Ordering::Acquire);
    let mut targets = Vec::new();
    let mut counters = Vec::new();
    let mut outbox = Outbox::new(ifaces);
    let mut emitter = Emitter::new(sh);
    let mut jobs: Vec<Option<Job>> = (0..pool.txs.len()).map(|_| None).collect();
    // Emptied jobs come back here from the workers (see `Job`).
    let (free_tx, free) = bounded::<Job>(FREE_PER_WORKER * jobs.len().max(1));
    // Per worker: the frame whose packet was last appended to its job, and where it went.
    let mut appended: Vec<(usize, std::ops::Range<usize>)> = vec![(usize::MAX, 0..0); jobs.len()];
    let mut drops_read = Instant::now();
    // Milliseconds since the daemon's start at `drops_read`: a burst's time is this plus
    // the time since, which the drop check computes anyway (one clock subtraction a burst).
    let mut drops_read_ms = drops_read.duration_since(sh.started).as_millis() as u64;
    while !sh.stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        // 1. Read a burst.
        let n = match rb.recv(&sock) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => 0,
            Err(e) => {
                if WARN_CAPTURE.allow(Instant::now()) {
                    warn!("{name}: capture error: {e}");
                }
                std::thread::sleep(super::shared::TICK);
                continue;
            }
        };
        let now = Instant::now();
        let mut since = now.duration_since(drops_read);
        if since >= DROPS_EVERY {
            drops_read = now;
            drops_read_ms = now.duration_since(sh.started).as_millis() as u64;
            since = Duration::ZERO;
            if let Ok(d) = sys::take_drops(&sock) {
                add(&c.capture_drops, d + rb.take_lost());
            }
        }
        if n == 0 {
            emitter.refresh(sh);
            continue;
        }
        add(&c.frames_received, n as u64);
        // The burst's read time, for the groups' last-packet time.
        let now_ms = drops_read_ms + since.as_secs() * 1000 + u64::from(since.subsec_millis());
        let g = sh.fib_gen.load(Ordering::Acquire);
        if g != fib_gen {
            fib = sh.fib.read().clone();
            fib_gen = g;
        }
        // Behind when the read came back full; then the pool, if any, takes the burst. Once
        // it has drained, this thread sends again itself (keeping each host's order).
        let offload =
            !pool.is_empty() && (n == rb.capacity() || pool.pending.load(Ordering::Acquire) > 0);
        let mut k = BurstCounts::default();
        for i in 0..n {
            // 2. A frame a local program sent out of this interface may still carry a
            //    partial checksum (CHECKSUM_PARTIAL): receivers would drop the copies.
            //    classify::upstream completes it, then finds the multicast packet.
            let (frame, status) = rb.frame_mut(i);
            let frame_start = frame.as_ptr() as usize;
            let csum_not_ready = status & sys::TP_STATUS_CSUMNOTREADY != 0;
            let up = classify::upstream(link, frame, csum_not_ready);
            k.checksums += u64::from(up.checksum_completed);
            let Ok(pkt) = up.packet else {
                k.invalid += 1;
                continue;
            };
            // 3. Look up.
            targets.clear();
            counters.clear();
            let group = fib.targets(pkt.source, pkt.group, &mut targets, &mut counters);
            if let Some(g) = group {
                g.count(pkt.ip.len(), now_ms);
            }
            if targets.is_empty() {
                k.unwanted += 1;
                continue;
            }
            k.forwarded += 1;
            // 4. Plan the copies.
            let ip_start = pkt.ip.as_ptr() as usize - frame_start;
            let ip_len = pkt.ip.len();
            let ethertype = pkt.ethertype();
            if !offload {
                let at = rb.offset(i) + ip_start;
                for (t, ctr) in targets.iter().zip(counters.drain(..)) {
                    outbox.push(t, ctr, ethertype, at..at + ip_len);
                }
                continue;
            }
            for (t, ctr) in targets.iter().zip(counters.drain(..)) {
                let w = pool.worker_of(t.mac);
                let job = jobs[w].get_or_insert_with(|| {
                    free.try_recv()
                        .unwrap_or_else(|_| Job::new(ifaces, free_tx.clone()))
                });
                if appended[w].0 != i {
                    let at = job.buf.len();
                    job.buf.extend_from_slice(pkt.ip);
                    appended[w] = (i, at..at + ip_len);
                }
                job.out.push(t, ctr, ethertype, appended[w].1.clone());
            }
        }
        add(&c.frames_forwarded, k.forwarded);
        add(&c.frames_unwanted, k.unwanted);
        add(&c.frames_invalid, k.invalid);
        add(&c.checksums_completed, k.checksums);
        if !offload {
            // 5a. Send the burst.
            emitter.flush(sh, rb.bytes(), &mut outbox);
            continue;
        }
        // 5b. Hand it out.
        for (w, slot) in jobs.iter_mut().enumerate() {
            appended[w].0 = usize::MAX;
            let Some(job) = slot.take() else { continue };
            let copies = job.out.len() as u64;
            add(&c.copies_offloaded, copies);
            pool.pending.fetch_add(1, Ordering::AcqRel);
            match pool.txs[w].try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    job.recycle();
                    pool.pending.fetch_sub(1, Ordering::AcqRel);
                    add(&c.copies_dropped, copies);
                    if WARN_QUEUE.allow(Instant::now()) {
                        warn!("sender queue full: dropping copies (counted in copies_dropped)");
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// A sender worker: send each job's copies, mark it done and return it to its free list.
pub fn sender(sh: &Shared, rx: Receiver<Job>, pending: Arc<AtomicUsize>) {
    let mut emitter = Emitter::new(sh);
    loop {
        let mut job = match rx.recv_timeout(super::shared::TICK) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                emitter.refresh(sh);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // 6. Send.
        emitter.flush(sh, &job.buf, &mut job.out);
        pending.fetch_sub(1, Ordering::AcqRel);
        job.recycle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_job_comes_back_empty_with_its_buffer() {
        let (home, free) = bounded::<Job>(1);
        let mut job = Job::new(2, home.clone());
        job.buf.extend_from_slice(&[1; 1500]);
        let t = Target {
            iface: 1,
            mac: MacAddr(2, 0, 0, 0, 0, 1),
        };
        job.out.push(&t, None, 0x0800, 0..1500);
        let ptr = job.buf.as_ptr();
        job.recycle();
        let back = free.try_recv().expect("returned to the free list");
        assert!(back.buf.is_empty());
        assert_eq!(back.buf.as_ptr(), ptr, "the same allocation");
        assert_eq!(back.out.len(), 0);
        assert_eq!(back.out.ifaces.len(), 2);
        assert!(back.out.touched.is_empty());
    }

    #[test]
    fn a_job_is_freed_when_the_free_list_is_full_or_its_buffer_grew() {
        let (home, free) = bounded::<Job>(1);
        Job::new(1, home.clone()).recycle();
        Job::new(1, home.clone()).recycle();
        assert_eq!(free.len(), 1);
        free.try_recv().unwrap();
        let mut big = Job::new(1, home.clone());
        big.buf.reserve(JOB_BUF_KEEP + 1);
        big.recycle();
        assert!(free.is_empty());
        drop(free);
        Job::new(1, home).recycle();
    }
}
