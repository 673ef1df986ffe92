//! The per-packet path: the upstream capture and the sender workers.
//!
//! ```text
//! cap-up:IF  1. read a frame (recvmsg, with PACKET_AUXDATA)
//!            2. complete a checksum left to the device (frames sent by a local program)
//!            3. look up (source, group) in the forwarding snapshot, refreshed only when its
//!               generation changes
//!            4. hand each host's copies to that host's worker (bounded channel; full = drop
//!               and count)
//! send-N     5. rewrite the Ethernet header in the worker's own buffer, send, count
//! ```

use super::daemon::Shared;
use super::stats::{add, inc, RateLimit};
use super::sys;
use crate::config::DownLink;
use crate::core::fib::Target;
use crate::core::membership::MemberCounters;
use crate::wire::{self, ethernet, ipv4, LinkType};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use log::{trace, warn};
use socket2::Socket;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One copy job for one sender worker: a packet and the hosts this worker sends it to.
/// Each host always goes to the same worker (by MAC), so its copies stay in order.
pub struct Job {
    ip: Arc<[u8]>,
    targets: Vec<(Target, Option<Arc<MemberCounters>>)>,
}

/// A downstream interface's send side while it is there.
pub struct DownTx {
    pub sock: Socket,
    pub link: DownLink,
}

static WARN_CAPTURE: RateLimit = RateLimit::new(std::time::Duration::from_secs(10));
static WARN_SEND: RateLimit = RateLimit::new(std::time::Duration::from_secs(10));
static WARN_QUEUE: RateLimit = RateLimit::new(std::time::Duration::from_secs(10));

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Upstream capture until `stop` or `cancel` (the interface went away).
pub fn capture_upstream(
    sh: &Shared,
    sock: Socket,
    link: LinkType,
    name: &str,
    workers: Vec<Sender<Job>>,
    cancel: &AtomicBool,
) {
    let c = &sh.counters;
    let mut buf = vec![0u8; 65536 + ethernet::HEADER_LEN];
    let mut fib = sh.fib.read().clone();
    let mut fib_gen = sh.fib_gen.load(Ordering::Acquire);
    let mut targets = Vec::new();
    let mut per_worker: Vec<Vec<(Target, Option<Arc<MemberCounters>>)>> =
        vec![Vec::new(); workers.len()];
    let ip_offset = if link == LinkType::Ethernet {
        ethernet::HEADER_LEN
    } else {
        0
    };
    while !sh.stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        // 1. Read.
        let (n, status) = match sys::recv_frame(&sock, &mut buf) {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => {
                if WARN_CAPTURE.allow(Instant::now()) {
                    warn!("{name}: capture error: {e}");
                }
                std::thread::sleep(super::daemon::TICK);
                continue;
            }
        };
        inc(&c.frames_received);
        let frame = &mut buf[..n];
        // 2. A frame a local program sent out of this interface may still carry a partial
        //    checksum (CHECKSUM_PARTIAL): receivers would drop the copies silently.
        if status & sys::TP_STATUS_CSUMNOTREADY != 0
            && frame.len() > ip_offset
            && ipv4::complete_udp_checksum(&mut frame[ip_offset..])
        {
            inc(&c.checksums_completed);
        }
        let Ok(pkt) = wire::parse_data_packet(link, frame) else {
            inc(&c.frames_invalid);
            continue;
        };
        // 3. Look up.
        let g = sh.fib_gen.load(Ordering::Acquire);
        if g != fib_gen {
            fib = sh.fib.read().clone();
            fib_gen = g;
        }
        targets.clear();
        let mut ctrs = Vec::new();
        fib.targets(pkt.source, pkt.group, &mut targets, &mut ctrs);
        if targets.is_empty() {
            inc(&c.frames_unwanted);
            continue;
        }
        inc(&c.frames_forwarded);
        trace!(
            "{name}: {} -> {}: {} copies",
            pkt.source,
            pkt.group,
            targets.len()
        );
        // 4. Hand out.
        let ip: Arc<[u8]> = Arc::from(pkt.ip);
        let mut ci = ctrs.iter();
        for t in targets.drain(..) {
            let counter = if t.mac.is_multicast() {
                None
            } else {
                ci.next().map(|c| Arc::clone(c))
            };
            let w = usize::from(t.mac.0[5]) % workers.len();
            per_worker[w].push((t, counter));
        }
        for (w, tx) in workers.iter().enumerate() {
            if per_worker[w].is_empty() {
                continue;
            }
            let job = Job {
                ip: ip.clone(),
                targets: std::mem::take(&mut per_worker[w]),
            };
            match tx.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(j)) => {
                    add(&c.copies_dropped, j.targets.len() as u64);
                    if WARN_QUEUE.allow(Instant::now()) {
                        warn!("sender queue full: dropping copies (counted in copies_dropped)");
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// A sender worker: rewrite the Ethernet header in its own buffer and send.
pub fn sender(sh: &Shared, rx: Receiver<Job>) {
    let c = &sh.counters;
    let mut buf = vec![0u8; 65536 + ethernet::HEADER_LEN];
    let mut links = sh.down_links();
    let mut links_gen = sh.links_gen.load(Ordering::Acquire);
    loop {
        let job = match rx.recv_timeout(super::daemon::TICK) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let g = sh.links_gen.load(Ordering::Acquire);
        if g != links_gen {
            links = sh.down_links();
            links_gen = g;
        }
        // 5. Rewrite and send.
        let len = ethernet::HEADER_LEN + job.ip.len();
        buf[ethernet::HEADER_LEN..len].copy_from_slice(&job.ip);
        for (t, counter) in &job.targets {
            let Some(tx) = &links[t.iface] else {
                inc(&c.copies_dropped);
                continue;
            };
            ethernet::write_header(
                &mut buf,
                t.mac,
                tx.link.source_mac,
                ethernet::ETHERTYPE_IPV4,
            );
            match sys::send(&tx.sock, &buf[..len]) {
                Ok(_) => {
                    inc(&c.copies_sent);
                    if let Some(m) = counter {
                        m.packets.fetch_add(1, Ordering::Relaxed);
                        m.bytes.fetch_add(job.ip.len() as u64, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    inc(&c.copies_dropped);
                    if WARN_SEND.allow(Instant::now()) {
                        warn!("{}: send to {} failed: {e}", tx.link.iface.name, t.mac);
                    }
                }
            }
        }
    }
}
