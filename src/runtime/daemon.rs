//! Daemon wiring: opens every socket up front, then runs one thread per role.
//!
//! ```text
//!  cap-up:IF ──(fib snapshot, read without the table lock)──> per-worker bounded channels
//!                                                              └─> send-N ──> downstream sockets
//!  cap-dn:IF ──(parsed IGMP)──> ctl (owns the table behind a lock; timers, queries,
//!                                    upstream joins, publishes the fib)
//!  control   ──(locks briefly for a snapshot, serialises outside)──> status clients
//! ```

use crate::config::Config;
use crate::core::fib::{Fib, Target};
use crate::core::membership::{
    CompatFallback, Event, FilterMode, HostKey, IgnoreReason, LeaveReason, MemberCounters, Table,
    UpstreamWant,
};
use crate::core::querier::{Querier, Role, RoleChange};
use crate::core::upstream::{JoinKind, JoinLimits, JoinOp, JoinPool};
use crate::core::IfaceId;
use crate::runtime::stats::{add, inc, Counters, RateLimit};
use crate::runtime::{control, iface, sys};
use crate::status::{
    CompatStatus, GroupStatus, InterfaceStatus, JoinStatus, MemberStatus, Snapshot, UpstreamStatus,
};
use crate::wire::igmp::{self, Message};
use crate::wire::{self, ethernet, LinkType, MacAddr};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use log::{debug, info, trace, warn};
use parking_lot::{Mutex, RwLock};
use socket2::Socket;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any blocking call may wait before looking at the stop flag.
const TICK: Duration = Duration::from_millis(200);
/// Frames queued per sender worker before copies are dropped (bounded memory).
const QUEUE_PER_WORKER: usize = 2048;
/// Parsed IGMP messages queued for the control thread.
const EVENT_QUEUE: usize = 4096;
/// How often failed upstream joins are retried.
const JOIN_RETRY: Duration = Duration::from_secs(5);

/// Why the daemon could not run. Exit status 1.
#[derive(Debug)]
pub enum RunError {
    /// Missing CAP_NET_RAW / CAP_NET_ADMIN.
    Privilege(String),
    Io(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Privilege(s) | RunError::Io(s) => f.write_str(s),
        }
    }
}

fn open_err(what: &str, ifname: &str, e: io::Error) -> RunError {
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

/// A parsed IGMP message from a downstream host, for the control thread.
struct IgmpIn {
    iface: IfaceId,
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    msg: Message,
}

/// Everything the control thread owns; the status thread reads it under the lock.
struct State {
    table: Table,
    queriers: Vec<Querier>,
    joins: JoinPool,
}

/// What the threads share.
struct Shared {
    cfg: Config,
    state: Mutex<State>,
    /// The forwarding snapshot, swapped whole by the control thread.
    fib: RwLock<Arc<Fib>>,
    /// Bumped after each swap so readers refresh their copy only then.
    fib_gen: AtomicU64,
    counters: Counters,
    started: Instant,
    stop: Arc<AtomicBool>,
}

/// One copy job for one sender worker: a packet and the hosts this worker sends it to.
/// Each host always goes to the same worker (by MAC), so its copies stay in order.
struct Job {
    ip: Arc<[u8]>,
    targets: Vec<(Target, Option<Arc<MemberCounters>>)>,
}

/// A downstream interface's send side.
struct DownTx {
    sock: Socket,
    src_mac: MacAddr,
}

fn send_socket(iface: &iface::IfaceInfo) -> Result<Socket, RunError> {
    let s = sys::packet_socket().map_err(|e| open_err("send socket", &iface.name, e))?;
    (|| {
        sys::attach_filter(&s, &sys::bpf::drop_all())?;
        sys::bind_packet(&s, iface.index, 0)?;
        let _ = s.set_send_buffer_size(4 << 20);
        s.set_nonblocking(true)
    })()
    .map_err(|e| open_err("send socket", &iface.name, e))?;
    Ok(s)
}

fn capture(
    iface: &iface::IfaceInfo,
    prog: &[libc::sock_filter],
    allmulti: bool,
    rcvbuf: usize,
) -> Result<Box<dyn pnet_datalink::DataLinkReceiver>, RunError> {
    let what = "capture socket";
    let s = sys::packet_socket().map_err(|e| open_err(what, &iface.name, e))?;
    (|| {
        sys::attach_filter(&s, prog)?;
        sys::set_ignore_outgoing(&s)?;
        if allmulti {
            sys::add_allmulti(&s, iface.index)?;
        }
        sys::set_rcvbuf(&s, rcvbuf)
    })()
    .map_err(|e| open_err(what, &iface.name, e))?;
    let ni = iface::pnet_interface(iface.index).ok_or_else(|| {
        RunError::Io(format!(
            "interface {} disappeared during start-up",
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
        Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => Ok(rx),
        Ok(_) => Err(RunError::Io(format!(
            "unexpected channel type on {}",
            iface.name
        ))),
        Err(e) => Err(open_err(what, &iface.name, e)),
    }
}

/// Run until `stop` is set. Leaves every upstream group before returning.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<(), RunError> {
    let now = Instant::now();
    // Open everything first, so a missing privilege is reported before anything runs.
    let mut down_rx = Vec::new();
    let mut down_tx = Vec::new();
    for d in &cfg.downstreams {
        down_tx.push(DownTx {
            sock: send_socket(&d.iface)?,
            src_mac: d.source_mac,
        });
        down_rx.push(capture(&d.iface, &sys::bpf::igmp_only(), true, 1 << 20)?);
    }
    let header = if cfg.upstream.link == LinkType::Ethernet {
        14
    } else {
        0
    };
    let up_rx = capture(
        &cfg.upstream,
        &sys::bpf::multicast_data(header),
        false,
        8 << 20,
    )?;
    let listener = control::bind(&cfg.control).map_err(|e| RunError::Io(e.to_string()))?;

    for d in &cfg.downstreams {
        if d.query_source.is_unspecified() && cfg.querier.mode != crate::core::querier::Mode::Off {
            warn!(
                "{}: no IPv4 address, queries go out from 0.0.0.0; some devices ignore such queries \
                 (give --query-source to choose an address)",
                d.iface.name
            );
        }
    }
    let limits = JoinLimits {
        groups_per_socket: read_sysctl("/proc/sys/net/ipv4/igmp_max_memberships")
            .unwrap_or(20)
            .max(1),
        sources_per_group: read_sysctl("/proc/sys/net/ipv4/igmp_max_msf")
            .unwrap_or(10)
            .max(1),
    };
    let fallback: Vec<CompatFallback> = cfg.downstreams.iter().map(|d| d.compat_fallback).collect();
    let state = State {
        table: Table::new(cfg.settings.clone(), cfg.filter.clone(), fallback),
        queriers: cfg
            .downstreams
            .iter()
            .map(|d| Querier::new(cfg.querier.clone(), d.query_source, now))
            .collect(),
        joins: JoinPool::new(limits),
    };
    let shared = Arc::new(Shared {
        cfg,
        state: Mutex::new(state),
        fib: RwLock::new(Arc::new(Fib::default())),
        fib_gen: AtomicU64::new(0),
        counters: Counters::default(),
        started: now,
        stop,
    });
    let cfg = &shared.cfg;
    info!(
        "snoopcast {} started: upstream {} ({}), downstream {}; {} sender workers",
        env!("CARGO_PKG_VERSION"),
        cfg.upstream.name,
        if cfg.upstream.link == LinkType::Ethernet {
            "Ethernet"
        } else {
            "raw IP"
        },
        cfg.downstreams
            .iter()
            .map(|d| d.iface.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.workers
    );

    let down_tx = Arc::new(down_tx);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .map_err(|e| RunError::Io(format!("thread {name}: {e}")))
    };

    let mut job_txs = Vec::new();
    for w in 0..cfg.workers {
        let (tx, rx) = bounded::<Job>(QUEUE_PER_WORKER);
        job_txs.push(tx);
        let (sh, dt) = (shared.clone(), down_tx.clone());
        threads.push(spawn(
            format!("send-{w}"),
            Box::new(move || sender(&sh, &dt, rx)),
        )?);
    }
    let (ev_tx, ev_rx) = bounded::<IgmpIn>(EVENT_QUEUE);
    for (i, rx) in down_rx.into_iter().enumerate() {
        let (sh, tx) = (shared.clone(), ev_tx.clone());
        let name = format!("cap-dn:{}", shared.cfg.downstreams[i].iface.name);
        threads.push(spawn(
            name,
            Box::new(move || capture_downstream(&sh, i, rx, tx)),
        )?);
    }
    drop(ev_tx);
    {
        let sh = shared.clone();
        let name = format!("cap-up:{}", shared.cfg.upstream.name);
        threads.push(spawn(
            name,
            Box::new(move || capture_upstream(&sh, up_rx, job_txs)),
        )?);
    }
    {
        let (sh, dt) = (shared.clone(), down_tx.clone());
        threads.push(spawn(
            "ctl".into(),
            Box::new(move || control_loop(&sh, &dt, ev_rx)),
        )?);
    }
    {
        let sh = shared.clone();
        threads.push(spawn(
            "control".into(),
            Box::new(move || control::serve(listener, &sh.stop, || snapshot(&sh))),
        )?);
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&shared.cfg.control);
    info!("snoopcast stopped");
    Ok(())
}

fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

static WARN_MALFORMED: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_CAPTURE: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_LIMIT: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_QUEUE: RateLimit = RateLimit::new(Duration::from_secs(10));

/// The next captured frame, or None after a read timeout (so the caller can look at the stop
/// flag) or an error (logged at a limited rate, then a pause).
fn next_frame<'a>(
    rx: &'a mut Box<dyn pnet_datalink::DataLinkReceiver>,
    name: &str,
) -> Option<&'a [u8]> {
    match rx.next() {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => None,
        Err(e) => {
            if WARN_CAPTURE.allow(Instant::now()) {
                warn!("{name}: capture error: {e}");
            }
            std::thread::sleep(TICK);
            None
        }
    }
}

/// Downstream capture: read IGMP, check it, hand it to the control thread.
fn capture_downstream(
    sh: &Shared,
    iface: IfaceId,
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    tx: Sender<IgmpIn>,
) {
    let name = &sh.cfg.downstreams[iface].iface.name;
    let c = &sh.counters;
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(frame) = next_frame(&mut rx, name) else {
            continue;
        };
        // 1. Parse: Ethernet, IPv4 (header length, checksum, total length), IGMP checksum.
        let f = match wire::parse_igmp_frame(frame) {
            Ok(f) if !f.src_mac.is_multicast() => f,
            bad => {
                inc(&c.igmp_malformed);
                if WARN_MALFORMED.allow(Instant::now()) {
                    let why =
                        bad.map_or_else(|e| e.to_string(), |_| "multicast source MAC".to_string());
                    warn!("{name}: dropped malformed IGMP ({why}); further ones are counted, not logged, for 10 s");
                }
                continue;
            }
        };
        // 2. RFC 3376 section 4 / RFC 2236 section 2: IGMP messages are sent with TTL 1;
        //    anything else did not come from this link.
        if f.ip.ttl != 1 {
            inc(&c.igmp_bad_ttl);
            debug!(
                "{name}: ignored IGMP with TTL {} from {}",
                f.ip.ttl, f.ip.src
            );
            continue;
        }
        match &f.message {
            Message::Query(_) => inc(&c.queries_received),
            Message::ReportV1 { .. } => inc(&c.reports_v1),
            Message::ReportV2 { .. } => inc(&c.reports_v2),
            Message::LeaveV2 { .. } => inc(&c.leaves_v2),
            Message::ReportV3 { .. } => inc(&c.reports_v3),
        }
        debug!("{name}: from {} ({}): {:?}", f.src_mac, f.ip.src, f.message);
        // 3. Hand over; never block the capture on a slow control thread.
        match tx.try_send(IgmpIn {
            iface,
            src_mac: f.src_mac,
            src_ip: f.ip.src,
            msg: f.message,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => inc(&c.events_dropped),
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Upstream capture: the per-packet hot path.
fn capture_upstream(
    sh: &Shared,
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    workers: Vec<Sender<Job>>,
) {
    let link = sh.cfg.upstream.link;
    let name = &sh.cfg.upstream.name;
    let c = &sh.counters;
    let mut fib = sh.fib.read().clone();
    let mut fib_gen = sh.fib_gen.load(Ordering::Acquire);
    let mut targets = Vec::new();
    let mut per_worker: Vec<Vec<(Target, Option<Arc<MemberCounters>>)>> =
        vec![Vec::new(); workers.len()];
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(frame) = next_frame(&mut rx, name) else {
            continue;
        };
        inc(&c.frames_received);
        // 1. Read: find the IPv4 multicast packet (trimmed to its total length).
        let Ok(pkt) = wire::parse_data_packet(link, frame) else {
            inc(&c.frames_invalid);
            continue;
        };
        // 2. Look up: refresh our copy of the forwarding snapshot only when it changed.
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
        // 3. Hand out: each host's copies to its own worker (ordered per host).
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
fn sender(sh: &Shared, down: &[DownTx], rx: Receiver<Job>) {
    let c = &sh.counters;
    let mut buf = vec![0u8; 65536 + ethernet::HEADER_LEN];
    loop {
        let job = match rx.recv_timeout(TICK) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => {
                if sh.stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let len = ethernet::HEADER_LEN + job.ip.len();
        buf[ethernet::HEADER_LEN..len].copy_from_slice(&job.ip);
        for (t, counter) in &job.targets {
            let tx = &down[t.iface];
            ethernet::write_header(&mut buf, t.mac, tx.src_mac, ethernet::ETHERTYPE_IPV4);
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
                        warn!(
                            "{}: send to {} failed: {e}",
                            sh.cfg.downstreams[t.iface].iface.name, t.mac
                        );
                    }
                }
            }
        }
    }
}

/// The control thread: owns the table, runs timers and queriers, joins upstream.
fn control_loop(sh: &Shared, down: &[DownTx], rx: Receiver<IgmpIn>) {
    let mut join_socks: Vec<Socket> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut inbox: Vec<IgmpIn> = Vec::new();
    loop {
        // 1. Wait for IGMP or the next timer, at most one tick.
        let now = Instant::now();
        let deadline = {
            let st = sh.state.lock();
            let mut d = now + TICK;
            for x in st
                .table
                .next_deadline()
                .into_iter()
                .chain(st.queriers.iter().filter_map(Querier::next_deadline))
            {
                d = d.min(x);
            }
            d
        };
        match rx.recv_deadline(deadline.max(now)) {
            Ok(m) => {
                inbox.push(m);
                inbox.extend(rx.try_iter().take(255));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {}
        }
        let stopping = sh.stop.load(Ordering::Relaxed);
        // 2. Apply inputs and timers under the lock; collect what to do after.
        let now = Instant::now();
        let mut events = Vec::new();
        let mut role_changes = Vec::new();
        let mut queries: Vec<(IfaceId, Message, Ipv4Addr)> = Vec::new();
        let (fib, ops) = {
            let mut guard = sh.state.lock();
            let st = &mut *guard;
            for m in inbox.drain(..) {
                match &m.msg {
                    Message::Query(_) => {
                        if let Some(ch) = st.queriers[m.iface].accept_query(m.src_ip, now) {
                            role_changes.push((m.iface, ch));
                        }
                    }
                    _ => events.extend(st.table.accept_report(
                        HostKey {
                            iface: m.iface,
                            mac: m.src_mac,
                        },
                        m.src_ip,
                        &m.msg,
                        now,
                    )),
                }
            }
            events.extend(st.table.poll(now));
            for (i, q) in st.queriers.iter_mut().enumerate() {
                let (due, ch) = q.poll(now);
                if let Some(ch) = ch {
                    role_changes.push((i, ch));
                }
                if due && !stopping {
                    queries.push((i, q.config().general_query(), igmp::ALL_SYSTEMS));
                }
            }
            let changed = events
                .iter()
                .any(|e| !matches!(e, Event::Ignored { .. } | Event::SendGroupQuery { .. }));
            let retry = retry_at.is_some_and(|t| now >= t);
            let fib = changed.then(|| st.table.forwarding());
            let ops = if stopping {
                st.joins.leave_all()
            } else if changed || retry {
                let want = st.table.upstream_wants();
                st.joins.reconcile(&want)
            } else {
                Vec::new()
            };
            (fib, ops)
        };
        // 3. Carry out, outside the lock.
        if let Some(fib) = fib {
            *sh.fib.write() = Arc::new(fib);
            sh.fib_gen.fetch_add(1, Ordering::Release);
        }
        for (i, ch) in role_changes {
            let n = &sh.cfg.downstreams[i].iface.name;
            match ch {
                RoleChange::Yielded { other } => {
                    info!("{n}: querier {other} has a lower address; we stop querying")
                }
                RoleChange::Resumed => info!("{n}: the other querier went silent; we query again"),
            }
        }
        for e in &events {
            if let Event::SendGroupQuery { iface, group } = e {
                let cfg = &sh.cfg.querier;
                let msg = cfg.group_query(*group, sh.cfg.settings.last_member_query_interval);
                queries.push((*iface, msg, *group));
            }
            log_event(sh, e);
        }
        for (i, msg, dst) in queries {
            send_query(sh, down, i, &msg, dst);
        }
        let mut failed = false;
        for op in ops {
            if let Err(e) = apply_join(sh, &mut join_socks, op) {
                failed = true;
                inc(&sh.counters.upstream_join_errors);
                warn!(
                    "upstream {}: {:?} failed: {e}",
                    sh.cfg.upstream.name, op.kind
                );
                if !stopping {
                    sh.state.lock().joins.undo(op);
                }
            }
        }
        retry_at = if failed {
            Some(now + JOIN_RETRY)
        } else if retry_at.is_some_and(|t| now >= t) {
            None
        } else {
            retry_at
        };
        if stopping {
            return;
        }
    }
}

fn apply_join(sh: &Shared, socks: &mut Vec<Socket>, op: JoinOp) -> io::Result<()> {
    while socks.len() <= op.socket {
        socks.push(sys::join_socket()?);
    }
    let s = &socks[op.socket];
    let ifx = sh.cfg.upstream.index;
    let up = &sh.cfg.upstream.name;
    match op.kind {
        JoinKind::JoinAny(g) => {
            sys::any_source(s, ifx, g, true)?;
            info!("upstream {up}: joined {g} (any source)");
        }
        JoinKind::LeaveAny(g) => {
            sys::any_source(s, ifx, g, false)?;
            info!("upstream {up}: left {g}");
        }
        JoinKind::JoinSource(g, src) => {
            sys::source_specific(s, ifx, g, src, true)?;
            info!("upstream {up}: joined {g} from {src}");
        }
        JoinKind::LeaveSource(g, src) => {
            sys::source_specific(s, ifx, g, src, false)?;
            info!("upstream {up}: left {g} from {src}");
        }
    }
    Ok(())
}

fn send_query(sh: &Shared, down: &[DownTx], i: IfaceId, msg: &Message, dst: Ipv4Addr) {
    let d = &sh.cfg.downstreams[i];
    let frame = igmp::build_frame(d.source_mac, d.query_source, dst, msg);
    match sys::send(&down[i].sock, &frame) {
        Ok(_) => {
            inc(&sh.counters.queries_sent);
            debug!("{}: sent query for {dst}", d.iface.name);
        }
        Err(e) => {
            if WARN_SEND.allow(Instant::now()) {
                warn!("{}: sending a query failed: {e}", d.iface.name);
            }
        }
    }
}

fn filter_text(mode: FilterMode, sources: &[Ipv4Addr]) -> String {
    let m = match mode {
        FilterMode::Include => "include",
        FilterMode::Exclude => "exclude",
    };
    let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    format!("{m}{{{}}}", s.join(","))
}

fn log_event(sh: &Shared, e: &Event) {
    let ifname = |i: IfaceId| sh.cfg.downstreams[i].iface.name.as_str();
    let c = &sh.counters;
    match e {
        Event::Joined {
            host,
            ip,
            group,
            mode,
            sources,
        }
        | Event::Changed {
            host,
            ip,
            group,
            mode,
            sources,
        } => {
            let verb = if matches!(e, Event::Joined { .. }) {
                "join"
            } else {
                "change"
            };
            info!(
                "{verb}: {group} by {} ({ip}) on {}: {}",
                host.mac,
                ifname(host.iface),
                filter_text(*mode, sources)
            )
        }
        Event::Left {
            host,
            ip,
            group,
            reason,
        } => {
            let why = match reason {
                LeaveReason::Leave => "leave",
                LeaveReason::EmptyInclude => "leave (include{})",
                LeaveReason::Expired => {
                    inc(&c.members_expired);
                    "expired"
                }
                LeaveReason::InterfaceGone => "interface gone",
            };
            info!(
                "{why}: {group} by {} ({ip}) on {}",
                host.mac,
                ifname(host.iface)
            );
        }
        Event::CompatStarted {
            iface,
            group,
            version,
        } => {
            if sh.cfg.downstreams[*iface].compat_fallback == CompatFallback::Multicast {
                info!(
                    "IGMPv{version} host present for {group} on {}: sending it there as L2 multicast \
                     (older hosts suppress each other's reports) until the older-host timer ends",
                    ifname(*iface)
                )
            } else {
                info!(
                    "IGMPv{version} host present for {group} on {}: keeping unicast (--compat-fallback unicast)",
                    ifname(*iface)
                )
            }
        }
        Event::CompatEnded { iface, group } => {
            info!(
                "no IGMPv1/v2 host left for {group} on {}: back to unicast copies",
                ifname(*iface)
            )
        }
        Event::SendGroupQuery { iface, group } => {
            debug!("{}: last-member query for {group}", ifname(*iface))
        }
        Event::Ignored {
            host,
            group,
            reason,
        } => {
            let (counter, limit) = match reason {
                IgnoreReason::GroupsPerHostLimit => (Some(&c.limit_groups_per_host), true),
                IgnoreReason::MembersLimit => (Some(&c.limit_members), true),
                IgnoreReason::GroupFiltered => (Some(&c.ignored_filtered), false),
                IgnoreReason::SsmExclude => (Some(&c.ignored_ssm), false),
                IgnoreReason::UnknownRecord | IgnoreReason::SourcesLimit => (None, false),
            };
            if let Some(k) = counter {
                inc(k);
            }
            if limit && WARN_LIMIT.allow(Instant::now()) {
                warn!(
                    "ignored {group} from {} on {}: {reason:?} reached (counted; further ones not logged for 10 s)",
                    host.mac,
                    ifname(host.iface)
                );
            } else {
                debug!(
                    "ignored {group} from {} on {}: {reason:?}",
                    host.mac,
                    ifname(host.iface)
                );
            }
        }
    }
}

fn left_ms(t: Instant, now: Instant) -> u64 {
    t.saturating_duration_since(now).as_millis() as u64
}

/// Build a status snapshot: copy under the lock, format after.
fn snapshot(sh: &Shared) -> Snapshot {
    let now = Instant::now();
    let cfg = &sh.cfg;
    let ifname = |i: IfaceId| cfg.downstreams[i].iface.name.clone();
    let (members, compat, joined, sockets, roles) = {
        let st = sh.state.lock();
        let members: Vec<_> = st
            .table
            .members()
            .map(|(g, h, m)| (g, h, m.clone()))
            .collect();
        let groups: BTreeSet<Ipv4Addr> = members
            .iter()
            .map(|(g, _, _)| *g)
            .chain(st.table.upstream_wants().into_keys())
            .collect();
        let mut compat = Vec::new();
        for g in &groups {
            for i in 0..cfg.downstreams.len() {
                if let Some(t) = st.table.compat_until(i, *g) {
                    compat.push((*g, i, t));
                }
            }
        }
        let roles: Vec<Role> = st.queriers.iter().map(Querier::role).collect();
        (
            members,
            compat,
            st.joins.joined(),
            st.joins.socket_count(),
            roles,
        )
    };
    let mut groups: BTreeMap<Ipv4Addr, GroupStatus> = BTreeMap::new();
    let new_group = |g: Ipv4Addr| GroupStatus {
        group: g.to_string(),
        multicast_on: vec![],
        members: vec![],
    };
    for (g, h, m) in members {
        groups
            .entry(g)
            .or_insert_with(|| new_group(g))
            .members
            .push(MemberStatus {
                interface: ifname(h.iface),
                mac: h.mac.to_string(),
                ip: m.ip.to_string(),
                mode: match m.mode {
                    FilterMode::Include => "include".into(),
                    FilterMode::Exclude => "exclude".into(),
                },
                sources: m.sources.iter().map(|s| s.to_string()).collect(),
                igmp_version: m.version,
                expires_in_ms: left_ms(m.expires, now),
                packets: m.counters.packets.load(Ordering::Relaxed),
                bytes: m.counters.bytes.load(Ordering::Relaxed),
            });
    }
    for (g, i, t) in compat {
        groups
            .entry(g)
            .or_insert_with(|| new_group(g))
            .multicast_on
            .push(CompatStatus {
                interface: ifname(i),
                delivery: match cfg.downstreams[i].compat_fallback {
                    CompatFallback::Multicast => "multicast".into(),
                    CompatFallback::Unicast => "unicast".into(),
                },
                expires_in_ms: left_ms(t, now),
            });
    }
    let interfaces = cfg
        .downstreams
        .iter()
        .zip(roles)
        .map(|(d, r)| {
            let (querier, other) = match r {
                Role::Querier => ("querier", None),
                Role::NonQuerier { other, .. } => ("non-querier", Some(other.to_string())),
                Role::Disabled { other } => ("off", other.map(|o| o.to_string())),
            };
            InterfaceStatus {
                name: d.iface.name.clone(),
                query_source: d.query_source.to_string(),
                querier: querier.into(),
                other_querier: other,
                compat_fallback: match d.compat_fallback {
                    CompatFallback::Multicast => "multicast".into(),
                    CompatFallback::Unicast => "unicast".into(),
                },
            }
        })
        .collect();
    Snapshot {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_ms: now.duration_since(sh.started).as_millis() as u64,
        groups: groups.into_values().collect(),
        upstream: UpstreamStatus {
            interface: cfg.upstream.name.clone(),
            joined: joined
                .into_iter()
                .map(|(g, w)| JoinStatus {
                    group: g.to_string(),
                    sources: match w {
                        UpstreamWant::AnySource => vec![],
                        UpstreamWant::Sources(s) => s.iter().map(|s| s.to_string()).collect(),
                    },
                })
                .collect(),
            sockets,
        },
        interfaces,
        counters: sh
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}
