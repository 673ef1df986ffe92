//! Interfaces that come and go.
//!
//! Each configured interface (the upstream and every downstream) is a slot known by name. The
//! control thread calls [`Links::watch`] about once a second: an open interface that vanished,
//! went down or was re-created (new index) is closed; a closed one that is there and up is
//! opened, with a backoff of 1 s doubling to 30 s while opening fails. Every capture thread
//! has its own cancel flag, so closing one never disturbs the others.

use super::capture::{capture_downstream, listen_upstream_queries};
use super::datapath::{capture_upstream, Pool, BURST};
use super::shared::{spawn, DownTx, IgmpIn, RunError, Shared, UpTx, TICK};
use super::{iface, sys};
use crate::config::DownLink;
use crate::core::IfaceId;
use crate::wire::LinkType;
use crossbeam_channel::Sender;
use log::{debug, info, warn};
use socket2::Socket;
use std::io;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Receive buffer of a downstream IGMP capture socket.
const IGMP_RCVBUF: usize = 1 << 20;
/// Receive buffer of the upstream data capture socket: the largest one asked for.
pub(crate) const DATA_RCVBUF: usize = 8 << 20;

pub(crate) fn open_err(what: &str, ifname: &str, e: io::Error) -> RunError {
    if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EPERM) {
        RunError::Privilege(format!(
            "cannot open a packet socket on {ifname} ({what}): {e}. snoopcast needs CAP_NET_RAW and \
             CAP_NET_ADMIN: run it as root, or grant them with \
             `setcap cap_net_raw,cap_net_admin+ep /path/to/snoopcast` (or AmbientCapabilities= in a systemd unit)"
        ))
    } else {
        RunError::Io(format!("cannot set up {what} on {ifname}: {e}"))
    }
}

fn send_socket(iface: &iface::IfaceInfo) -> Result<Socket, RunError> {
    let s = sys::packet_socket().map_err(|e| open_err("send socket", &iface.name, e))?;
    (|| {
        sys::attach_filter(&s, &sys::bpf::drop_all())?;
        sys::bind_packet(&s, iface.index, 0)?;
        let _ = s.set_send_buffer_size(4 << 20);
        // Not every kernel or device takes it; the copies then go through the qdisc.
        let _ = sys::set_qdisc_bypass(&s);
        s.set_nonblocking(true)
    })()
    .map_err(|e| open_err("send socket", &iface.name, e))?;
    Ok(s)
}

/// Downstream IGMP capture through pnet, on a socket prepared first: IGMP-only filter (set
/// before pnet binds it, so nothing else is ever queued), own frames ignored, all-multicast.
/// Also returns a second handle on the same socket, for reading its drop count
/// (PACKET_STATISTICS) beside pnet's receiver.
fn igmp_capture(
    iface: &iface::IfaceInfo,
    ipv6: bool,
    allmulti: bool,
) -> Result<(Box<dyn pnet_datalink::DataLinkReceiver>, Socket), RunError> {
    let what = "IGMP capture socket";
    let s = sys::packet_socket().map_err(|e| open_err(what, &iface.name, e))?;
    let stats = (|| {
        sys::attach_filter(&s, &sys::bpf::group_messages(true, ipv6))?;
        sys::set_ignore_outgoing(&s)?;
        if allmulti {
            sys::add_allmulti(&s, iface.index)?;
        }
        sys::set_rcvbuf(&s, IGMP_RCVBUF)?;
        s.try_clone()
    })()
    .map_err(|e| open_err(what, &iface.name, e))?;
    let ni = iface::pnet_interface(iface.index).ok_or_else(|| {
        RunError::Io(format!(
            "interface {} disappeared while opening it",
            iface.name
        ))
    })?;
    let pcfg = pnet_datalink::Config {
        read_buffer_size: 65536,
        read_timeout: Some(TICK),
        promiscuous: false,
        socket_fd: Some(s.into_raw_fd()),
        ..Default::default()
    };
    match pnet_datalink::channel(&ni, pcfg) {
        Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => Ok((rx, stats)),
        Ok(_) => Err(RunError::Io(format!(
            "unexpected channel type on {}",
            iface.name
        ))),
        Err(e) => Err(open_err(what, &iface.name, e)),
    }
}

/// Upstream data capture on our own socket: pnet's receiver cannot hand back PACKET_AUXDATA,
/// which says whether a locally sent frame's checksum is still to be computed. Outgoing
/// frames are kept (a local program sending out of the upstream is a source too).
///
/// The receive ring is set up before the socket is bound, so no frame is queued the old way
/// first; without one (an old kernel, no memory for it) frames are read with recvmmsg.
fn data_capture(
    iface: &iface::IfaceInfo,
    ipv6: bool,
) -> Result<(Socket, Option<Box<sys::RxRing>>), RunError> {
    let what = "data capture socket";
    let header = if iface.link == LinkType::Ethernet {
        14
    } else {
        0
    };
    let s = sys::packet_socket().map_err(|e| open_err(what, &iface.name, e))?;
    (|| {
        sys::attach_filter(&s, &sys::bpf::multicast_data(header, true, ipv6))?;
        sys::set_auxdata(&s)?;
        sys::set_rcvbuf(&s, DATA_RCVBUF)?;
        s.set_read_timeout(Some(TICK))?;
        let mtu = sys::iface_mtu(&s, &iface.name).unwrap_or(1500);
        let ring = sys::RxRing::open(&s, sys::ring_frame_size(mtu), BURST)
            .map_err(|e| {
                debug!(
                    "{}: no receive ring ({e}): frames are read with recvmmsg",
                    iface.name
                )
            })
            .ok()
            .map(Box::new);
        sys::bind_packet(&s, iface.index, libc::ETH_P_ALL as u16)?;
        Ok(ring)
    })()
    .map(|ring| (s, ring))
    .map_err(|e| open_err(what, &iface.name, e))
}

struct Capture {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    /// The upstream's query listener, beside its data capture (same cancel flag).
    listener: Option<JoinHandle<()>>,
}

struct Slot {
    name: String,
    /// The interface index while open.
    open: Option<u32>,
    capture: Option<Capture>,
    next_try: Instant,
    backoff: Duration,
    /// "waiting for it" was logged since it last closed.
    said_waiting: bool,
}

impl Slot {
    fn new(name: &str, now: Instant) -> Self {
        Slot {
            name: name.to_string(),
            open: None,
            capture: None,
            next_try: now,
            backoff: BACKOFF_FIRST,
            said_waiting: false,
        }
    }
}

/// An interface whose sockets are open but whose capture thread has not started yet.
pub enum Prepared {
    Down {
        i: IfaceId,
        link: DownLink,
        sock: Socket,
        rx: Box<dyn pnet_datalink::DataLinkReceiver>,
        /// The capture socket again, for its drop count.
        stats: Socket,
    },
    Up {
        info: iface::IfaceInfo,
        sock: Socket,
        /// The report socket and the data capture socket again (its filter memberships).
        tx: UpTx,
        /// IGMP and MLD capture for the query listener (Ethernet upstreams only: on an L3
        /// link such as tun no router queries the box).
        queries: Option<Box<dyn pnet_datalink::DataLinkReceiver>>,
        /// The data capture socket's receive ring, when the kernel gave one.
        ring: Option<Box<sys::RxRing>>,
    },
}

/// What changed, for the control thread to act on.
#[derive(Debug)]
pub enum LinkChange {
    DownOpened(IfaceId, DownLink),
    DownClosed(IfaceId),
    UpOpened(iface::IfaceInfo),
    UpClosed,
}

/// The interface slots, owned by the control thread.
pub struct Links {
    up: Slot,
    down: Vec<Slot>,
    pool: Pool,
    ev_tx: Sender<IgmpIn>,
    finished: Vec<JoinHandle<()>>,
}

impl Links {
    pub fn new(sh: &Shared, pool: Pool, ev_tx: Sender<IgmpIn>, now: Instant) -> Self {
        Links {
            up: Slot::new(&sh.cfg.upstream, now),
            down: sh
                .slots
                .read()
                .iter()
                .map(|d| Slot::new(d.as_ref().map_or("", |d| d.name.as_str()), now))
                .collect(),
            pool,
            ev_tx,
            finished: Vec::new(),
        }
    }

    /// Open the sockets of every interface that is there, without starting any thread (the
    /// daemon drops privileges in between, while it has one thread). A failure here (no
    /// privilege, say) is fatal; interfaces missing or down are waited for.
    pub fn prepare_at_start(
        &mut self,
        sh: &Arc<Shared>,
        now: Instant,
    ) -> Result<Vec<Prepared>, RunError> {
        let mut ready = Vec::new();
        for i in 0..self.down.len() {
            if self.down[i].name.is_empty() {
                continue; // a free slot
            }
            match iface::lookup_usable(&self.down[i].name) {
                Some(info) => ready.push(Self::prepare_down(sh, i, info)?),
                None => self.say_waiting(i, now),
            }
        }
        match iface::lookup_usable(&self.up.name) {
            Some(info) => ready.push(Self::prepare_up(sh, info)?),
            None => {
                warn!("upstream {}: missing or down; waiting for it", self.up.name);
                self.up.said_waiting = true;
            }
        }
        Ok(ready)
    }

    /// Start the capture threads of what [`Links::prepare_at_start`] opened.
    pub fn start_all(
        &mut self,
        sh: &Arc<Shared>,
        ready: Vec<Prepared>,
    ) -> Result<Vec<LinkChange>, RunError> {
        ready.into_iter().map(|p| self.start(sh, p)).collect()
    }

    fn say_waiting(&mut self, i: usize, _now: Instant) {
        let s = &mut self.down[i];
        if !s.said_waiting {
            warn!("downstream {}: missing or down; waiting for it", s.name);
            s.said_waiting = true;
        }
    }

    /// Whether the upstream is open, and its index.
    pub fn upstream_index(&self) -> Option<u32> {
        self.up.open
    }

    pub fn is_down_open(&self, i: IfaceId) -> bool {
        self.down[i].open.is_some()
    }

    fn open_down(
        &mut self,
        sh: &Arc<Shared>,
        i: IfaceId,
        info: iface::IfaceInfo,
    ) -> Result<LinkChange, RunError> {
        let p = Self::prepare_down(sh, i, info)?;
        self.start(sh, p)
    }

    fn open_up(
        &mut self,
        sh: &Arc<Shared>,
        info: iface::IfaceInfo,
    ) -> Result<LinkChange, RunError> {
        let p = Self::prepare_up(sh, info)?;
        self.start(sh, p)
    }

    /// A downstream's sockets: send, and IGMP capture.
    fn prepare_down(sh: &Shared, i: IfaceId, info: iface::IfaceInfo) -> Result<Prepared, RunError> {
        let d = sh
            .downstream(i)
            .ok_or_else(|| RunError::Io(format!("downstream slot {i} is free")))?;
        let link = d.resolve(info).map_err(RunError::Io)?;
        let sock = send_socket(&link.iface)?;
        let (rx, stats) = igmp_capture(&link.iface, sh.cfg.ipv6, true)?;
        Ok(Prepared::Down {
            i,
            link,
            sock,
            rx,
            stats,
        })
    }

    fn prepare_up(sh: &Shared, info: iface::IfaceInfo) -> Result<Prepared, RunError> {
        let (sock, ring) = data_capture(&info, sh.cfg.ipv6)?;
        let capture = sock
            .try_clone()
            .map_err(|e| open_err("data capture socket", &info.name, e))?;
        let tx = UpTx {
            sock: send_socket(&info)?,
            capture,
            info: info.clone(),
        };
        // The upstream's queries: general ones go to all-systems / all-nodes, which the
        // interface always receives; group-specific ones to a group reported, which the
        // data socket's memberships let in. No all-multicast here (RFC 4605 section 4:
        // the box receives only what it reported).
        let queries = if info.link == LinkType::Ethernet {
            Some(igmp_capture(&info, sh.cfg.ipv6, false)?.0)
        } else {
            None
        };
        Ok(Prepared::Up {
            info,
            sock,
            tx,
            queries,
            ring,
        })
    }

    /// Publish an opened interface and start its capture thread. Threads started here (by
    /// the main thread at start, by the control thread later) inherit their creator's nice
    /// value and capabilities.
    fn start(&mut self, sh: &Arc<Shared>, p: Prepared) -> Result<LinkChange, RunError> {
        let cancel = Arc::new(AtomicBool::new(false));
        match p {
            Prepared::Down {
                i,
                link,
                sock,
                rx,
                stats,
            } => {
                let tx = Arc::new(DownTx {
                    sock,
                    link: link.clone(),
                });
                let (sh2, ev, c2) = (sh.clone(), self.ev_tx.clone(), cancel.clone());
                let handle = spawn(format!("cap-dn:{}", link.iface.name), true, move || {
                    capture_downstream(&sh2, i, rx, &stats, ev, &c2)
                })?;
                *sh.down[i].write() = Some(tx);
                sh.links_gen.fetch_add(1, Ordering::Release);
                let s = &mut self.down[i];
                s.open = Some(link.iface.index);
                s.capture = Some(Capture {
                    cancel,
                    handle,
                    listener: None,
                });
                s.backoff = BACKOFF_FIRST;
                s.said_waiting = false;
                Ok(LinkChange::DownOpened(i, link))
            }
            Prepared::Up {
                info,
                sock,
                tx,
                queries,
                ring,
            } => {
                let (sh2, jobs, c2, link, name) = (
                    sh.clone(),
                    self.pool.clone(),
                    cancel.clone(),
                    info.link,
                    info.name.clone(),
                );
                let handle = spawn(format!("cap-up:{}", info.name), true, move || {
                    capture_upstream(&sh2, sock, ring.map(|r| *r), link, &name, jobs, &c2)
                })?;
                let listener = match queries {
                    Some(rx) => {
                        let (sh3, c3, name) = (sh.clone(), cancel.clone(), info.name.clone());
                        let ev = self.ev_tx.clone();
                        let spawned = spawn(format!("qry-up:{}", info.name), true, move || {
                            listen_upstream_queries(&sh3, rx, &name, ev, &c3)
                        });
                        match spawned {
                            Ok(h) => Some(h),
                            Err(e) => {
                                cancel.store(true, Ordering::Relaxed);
                                let _ = handle.join();
                                return Err(e);
                            }
                        }
                    }
                    None => None,
                };
                *sh.up_link.write() = Some(info.clone());
                *sh.up_tx.write() = Some(Arc::new(tx));
                let s = &mut self.up;
                s.open = Some(info.index);
                s.capture = Some(Capture {
                    cancel,
                    handle,
                    listener,
                });
                s.backoff = BACKOFF_FIRST;
                s.said_waiting = false;
                Ok(LinkChange::UpOpened(info))
            }
        }
    }

    fn close(slot: &mut Slot, finished: &mut Vec<JoinHandle<()>>, now: Instant) {
        slot.open = None;
        if let Some(c) = slot.capture.take() {
            c.cancel.store(true, Ordering::Relaxed);
            finished.push(c.handle);
            finished.extend(c.listener);
        }
        slot.next_try = now;
        slot.backoff = BACKOFF_FIRST;
    }

    /// A reload changed the downstream slots (already in `sh.slots`): close the interface of
    /// every slot whose name changed; the next [`Links::watch`] opens the new ones.
    pub fn set_slots(&mut self, sh: &Shared, now: Instant) -> Vec<LinkChange> {
        let mut changes = Vec::new();
        let slots = sh.slots.read().clone();
        for (i, d) in slots.iter().enumerate() {
            let name = d.as_ref().map_or("", |d| d.name.as_str());
            let Some(slot) = self.down.get_mut(i) else {
                continue;
            };
            if slot.name == name {
                continue;
            }
            if slot.open.is_some() {
                info!("downstream {}: removed by a reload; closing it", slot.name);
                Self::close(slot, &mut self.finished, now);
                *sh.down[i].write() = None;
                sh.links_gen.fetch_add(1, Ordering::Release);
                changes.push(LinkChange::DownClosed(i));
            }
            if !name.is_empty() {
                info!("downstream {name}: added by a reload");
            }
            *slot = Slot::new(name, now);
        }
        changes
    }

    /// Look at every interface once: close what went away, open what came back.
    pub fn watch(&mut self, sh: &Arc<Shared>, now: Instant) -> Vec<LinkChange> {
        let mut changes = Vec::new();
        for i in 0..self.down.len() {
            if self.down[i].name.is_empty() {
                continue; // a free slot
            }
            // Only the index and flags each second; the full lookup (addresses) when opening.
            let index = iface::usable_index(&self.down[i].name);
            if let Some(idx) = self.down[i].open {
                if index != Some(idx) {
                    warn!(
                        "downstream {}: went away, went down or was re-created; closing it",
                        self.down[i].name
                    );
                    Self::close(&mut self.down[i], &mut self.finished, now);
                    *sh.down[i].write() = None;
                    sh.links_gen.fetch_add(1, Ordering::Release);
                    changes.push(LinkChange::DownClosed(i));
                }
            }
            let closed = self.down[i].open.is_none();
            let info = if closed && index.is_some() && now >= self.down[i].next_try {
                iface::lookup_usable(&self.down[i].name)
            } else {
                None
            };
            match info {
                Some(info) => match self.open_down(sh, i, info) {
                    Ok(ch) => changes.push(ch),
                    Err(e) => Self::backoff(&mut self.down[i], "downstream", now, &e),
                },
                None if closed && index.is_none() => self.say_waiting(i, now),
                None => {}
            }
        }
        let index = iface::usable_index(&self.up.name);
        if let Some(idx) = self.up.open {
            if index != Some(idx) {
                warn!(
                    "upstream {}: went away, went down or was re-created; closing it",
                    self.up.name
                );
                Self::close(&mut self.up, &mut self.finished, now);
                *sh.up_link.write() = None;
                *sh.up_tx.write() = None;
                changes.push(LinkChange::UpClosed);
            }
        }
        let closed = self.up.open.is_none();
        let info = if closed && index.is_some() && now >= self.up.next_try {
            iface::lookup_usable(&self.up.name)
        } else {
            None
        };
        match info {
            Some(info) => match self.open_up(sh, info) {
                Ok(ch) => changes.push(ch),
                Err(e) => Self::backoff(&mut self.up, "upstream", now, &e),
            },
            None if closed && index.is_none() && !self.up.said_waiting => {
                warn!("upstream {}: missing or down; waiting for it", self.up.name);
                self.up.said_waiting = true;
            }
            _ => {}
        }
        self.finished.retain(|h| !h.is_finished());
        changes
    }

    /// Opening failed: try again after the backoff, which doubles up to BACKOFF_MAX.
    fn backoff(s: &mut Slot, role: &str, now: Instant, e: &RunError) {
        warn!(
            "{role} {}: cannot open: {e}; retrying in {}s",
            s.name,
            s.backoff.as_secs()
        );
        s.next_try = now + s.backoff;
        s.backoff = (s.backoff * 2).min(BACKOFF_MAX);
    }

    /// Stop every capture thread and wait for them.
    pub fn shutdown(mut self) {
        let now = Instant::now();
        for s in self.down.iter_mut().chain(std::iter::once(&mut self.up)) {
            Self::close(s, &mut self.finished, now);
        }
        for h in self.finished.drain(..) {
            let _ = h.join();
        }
    }
}
