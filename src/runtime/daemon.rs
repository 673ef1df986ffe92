//! Daemon wiring and the control thread.
//!
//! ```text
//!  cap-up:IF ──(fib snapshot, read without the table lock)──> per-worker bounded channels
//!                                                              └─> send-N ──> downstream sockets
//!  cap-dn:IF ──(parsed IGMP)──> ctl (owns the table behind a lock; timers, queries, upstream
//!                                    joins, interfaces coming and going; publishes the fib)
//!  control   ──(locks briefly for a snapshot, serialises outside)──> status clients
//! ```

use super::classify::{self, DownDrop};
use super::datapath::{sender, DownTx, Job, Pool};
use super::links::{LinkChange, Links};
use super::stats::{inc, Counters, RateLimit};
use super::{control, iface, sys};
use crate::config::Config;
use crate::core::fib::Fib;
use crate::core::membership::{
    CompatFallback, Event, FilterMode, HostKey, IgnoreReason, LeaveReason, Table, UpstreamWant,
};
use crate::core::querier::{Mode, Querier, Role, RoleChange};
use crate::core::upstream::{JoinKind, JoinLimits, JoinOp, JoinPool};
use crate::core::IfaceId;
use crate::status::{
    CompatStatus, GroupStatus, InterfaceStatus, JoinStatus, MemberStatus, Snapshot, UpstreamStatus,
};
use crate::wire::igmp::{self, Message};
use crate::wire::MacAddr;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use log::{debug, info, warn};
use parking_lot::{Mutex, RwLock};
use socket2::Socket;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any blocking call may wait before looking at the stop flag: shutdown within
/// about a second, and an idle daemon wakes each thread only about once a second.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// Bursts (up to 64 frames each) queued per sender worker before copies are dropped:
/// bounded memory, and a backlog of at most a few milliseconds.
const QUEUE_PER_WORKER: usize = 64;
/// Parsed IGMP messages queued for the control thread.
const EVENT_QUEUE: usize = 4096;
/// How often failed upstream joins are retried.
const JOIN_RETRY: Duration = Duration::from_secs(5);
/// How often interfaces are checked for coming and going.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

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

/// A parsed IGMP message from a downstream host, for the control thread.
pub struct IgmpIn {
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
pub struct Shared {
    pub cfg: Config,
    state: Mutex<State>,
    /// The forwarding snapshot, swapped whole by the control thread.
    pub fib: RwLock<Arc<Fib>>,
    /// Bumped after each swap so readers refresh their copy only then.
    pub fib_gen: AtomicU64,
    /// Each downstream's send side; None while the interface is away.
    pub down: Vec<RwLock<Option<Arc<DownTx>>>>,
    /// Bumped whenever `down` changes.
    pub links_gen: AtomicU64,
    /// The upstream interface while it is open.
    pub up_link: RwLock<Option<iface::IfaceInfo>>,
    pub counters: Counters,
    started: Instant,
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    /// A copy of every downstream's send side, for a worker to cache.
    pub fn down_links(&self) -> Vec<Option<Arc<DownTx>>> {
        self.down.iter().map(|l| l.read().clone()).collect()
    }
}

/// Run until `stop` is set. Leaves every upstream group before returning.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<(), RunError> {
    let now = Instant::now();
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
            .map(|d| {
                Querier::new(
                    cfg.querier.clone(),
                    d.query_source.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    now,
                )
            })
            .collect(),
        joins: JoinPool::new(limits),
    };
    let shared = Arc::new(Shared {
        down: cfg.downstreams.iter().map(|_| RwLock::new(None)).collect(),
        cfg,
        state: Mutex::new(state),
        fib: RwLock::new(Arc::new(Fib::default())),
        fib_gen: AtomicU64::new(0),
        links_gen: AtomicU64::new(0),
        up_link: RwLock::new(None),
        counters: Counters::default(),
        started: now,
        stop,
    });
    let workers = shared.cfg.workers;
    let mut threads = Vec::new();
    let mut job_txs = Vec::new();
    let pending = Arc::new(AtomicUsize::new(0));
    for w in 0..workers {
        let (tx, rx) = bounded::<Job>(QUEUE_PER_WORKER);
        job_txs.push(tx);
        let (sh, p) = (shared.clone(), pending.clone());
        threads.push(spawn(format!("send-{w}"), true, move || {
            sender(&sh, rx, p)
        })?);
    }
    let job_txs = Pool::new(job_txs, pending);
    let (ev_tx, ev_rx) = bounded::<IgmpIn>(EVENT_QUEUE);
    let mut links = Links::new(&shared, job_txs, ev_tx, now);
    // Open what is there now, so a missing privilege is reported before anything runs;
    // then the control socket.
    let started = links.open_at_start(&shared, now).and_then(|c| {
        Ok((
            c,
            control::bind(&shared.cfg.control).map_err(|e| RunError::Io(e.to_string()))?,
        ))
    });
    let (opened, listener) = match started {
        Ok(x) => x,
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            links.shutdown();
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
    };
    let cfg = &shared.cfg;
    info!(
        "snoopcast {} started: upstream {}, downstream {}; {} sender workers",
        env!("CARGO_PKG_VERSION"),
        cfg.upstream,
        cfg.downstreams
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        workers
    );
    {
        let sh = shared.clone();
        threads.push(spawn("ctl".into(), true, move || {
            control_loop(&sh, links, opened, ev_rx, limits)
        })?);
    }
    {
        let sh = shared.clone();
        threads.push(spawn("control".into(), false, move || {
            control::serve(listener, &sh.stop, || snapshot(&sh))
        })?);
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&shared.cfg.control);
    info!("snoopcast stopped");
    Ok(())
}

/// Nice value of the threads a packet waits for (captures, the table owner, senders): on a
/// busy box other programs should not delay copies, joins or leaves by a scheduler slice.
const PACKET_THREAD_NICE: i32 = -10;

/// Start a named thread. `packet`: one a packet waits for, run at [`PACKET_THREAD_NICE`]
/// when the process may (CAP_SYS_NICE; root may), else at the process's own priority.
pub(crate) fn spawn(
    name: String,
    packet: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, RunError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if packet {
                if let Err(e) = sys::set_thread_nice(PACKET_THREAD_NICE) {
                    debug!("thread priority left as it is ({e}; needs CAP_SYS_NICE)");
                }
            }
            f()
        })
        .map_err(|e| RunError::Io(format!("thread {name}: {e}")))
}

fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

static WARN_MALFORMED: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_CAPTURE: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_LIMIT: RateLimit = RateLimit::new(Duration::from_secs(10));

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

/// Downstream capture: read IGMP, check it, hand it to the control thread. Runs until `stop`
/// or `cancel` (the interface went away).
pub(crate) fn capture_downstream(
    sh: &Shared,
    iface: IfaceId,
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    tx: Sender<IgmpIn>,
    cancel: &AtomicBool,
) {
    let name = &sh.cfg.downstreams[iface].name;
    let c = &sh.counters;
    while !sh.stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        let Some(frame) = next_frame(&mut rx, name) else {
            continue;
        };
        // 1. Parse and check (classify::downstream): Ethernet, IPv4 (header length, checksum,
        //    total length), IGMP checksum, a unicast source MAC, then TTL 1 (RFC 3376
        //    section 4 / RFC 2236 section 2: anything else did not come from this link).
        let f = match classify::downstream(frame) {
            Ok(f) => f,
            Err(DownDrop::BadTtl { ttl, src }) => {
                inc(&c.igmp_bad_ttl);
                debug!("{name}: ignored IGMP with TTL {ttl} from {src}");
                continue;
            }
            Err(why) => {
                inc(&c.igmp_malformed);
                if WARN_MALFORMED.allow(Instant::now()) {
                    warn!("{name}: dropped malformed IGMP ({why}); further ones are counted, not logged, for 10 s");
                }
                continue;
            }
        };
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

/// The control thread: owns the table, runs timers and queriers, joins upstream, watches
/// interfaces.
fn control_loop(
    sh: &Arc<Shared>,
    mut links: Links,
    opened: Vec<LinkChange>,
    rx: Receiver<IgmpIn>,
    limits: JoinLimits,
) {
    let mut join_socks: Vec<Socket> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut inbox: Vec<IgmpIn> = Vec::new();
    let mut link_changes = opened;
    let mut next_watch = Instant::now() + WATCH_INTERVAL;
    loop {
        // 1. Wait for IGMP or the next timer, at most until the next interface check.
        let now = Instant::now();
        let deadline = {
            let st = sh.state.lock();
            let mut d = next_watch;
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
        if let Ok(m) = rx.recv_deadline(deadline.max(now)) {
            inbox.push(m);
            inbox.extend(rx.try_iter().take(255));
        }
        let stopping = sh.stop.load(Ordering::Relaxed);
        let now = Instant::now();
        if now >= next_watch && !stopping {
            link_changes.extend(links.watch(sh, now));
            next_watch = now + WATCH_INTERVAL;
        }
        // 2. Apply inputs, interface changes and timers under the lock.
        let mut events = Vec::new();
        let mut role_changes = Vec::new();
        let mut queries: Vec<(IfaceId, Message, Ipv4Addr)> = Vec::new();
        let mut links_changed = false;
        let upstream_open = links.upstream_index().is_some();
        let (fib, ops) = {
            let mut guard = sh.state.lock();
            let st = &mut *guard;
            for ch in link_changes.drain(..) {
                links_changed = true;
                match ch {
                    LinkChange::DownOpened(i, link) => {
                        info!(
                            "downstream {}: open (index {}, MAC {}, queries from {}); sending startup queries",
                            link.iface.name, link.iface.index, link.source_mac, link.query_source
                        );
                        if link.query_source.is_unspecified() && sh.cfg.querier.mode != Mode::Off {
                            warn!(
                                "{}: no IPv4 address, queries go out from 0.0.0.0; some devices ignore such \
                                 queries (give --query-source to choose an address)",
                                link.iface.name
                            );
                        }
                        st.queriers[i] =
                            Querier::new(sh.cfg.querier.clone(), link.query_source, now);
                    }
                    LinkChange::DownClosed(i) => {
                        let gone = st.table.remove_iface(i);
                        let n = gone
                            .iter()
                            .filter(|e| matches!(e, Event::Left { .. }))
                            .count();
                        sh.counters
                            .members_dropped_iface
                            .fetch_add(n as u64, Ordering::Relaxed);
                        warn!(
                            "downstream {}: {n} members dropped with the interface",
                            sh.cfg.downstreams[i].name
                        );
                        events.extend(gone);
                    }
                    LinkChange::UpOpened(info) => {
                        info!(
                            "upstream {}: open (index {}, {:?} link); joining what members want",
                            info.name, info.index, info.link
                        );
                    }
                    LinkChange::UpClosed => {
                        // The kernel drops a vanished device's memberships; closing the
                        // sockets drops the rest. Rejoin from scratch when it returns.
                        st.joins = JoinPool::new(limits);
                        join_socks.clear();
                    }
                }
            }
            for m in inbox.drain(..) {
                if !links.is_down_open(m.iface) {
                    continue;
                }
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
                if due && !stopping && links.is_down_open(i) {
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
            } else if upstream_open && (changed || retry || links_changed) {
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
            let n = &sh.cfg.downstreams[i].name;
            match ch {
                RoleChange::Yielded { other } => {
                    info!("{n}: querier {other} has a lower address; we stop querying")
                }
                RoleChange::Resumed => info!("{n}: the other querier went silent; we query again"),
            }
        }
        for e in &events {
            if let Event::SendGroupQuery { iface, group } = e {
                let msg = sh
                    .cfg
                    .querier
                    .group_query(*group, sh.cfg.settings.last_member_query_interval);
                queries.push((*iface, msg, *group));
            }
            log_event(sh, e);
        }
        for (i, msg, dst) in queries {
            send_query(sh, i, &msg, dst);
        }
        let mut failed = false;
        if let Some(ifx) = links.upstream_index() {
            for op in ops {
                if let Err(e) = apply_join(sh, ifx, &mut join_socks, op) {
                    failed = true;
                    inc(&sh.counters.upstream_join_errors);
                    warn!("upstream {}: {:?} failed: {e}", sh.cfg.upstream, op.kind);
                    if !stopping {
                        sh.state.lock().joins.undo(op);
                    }
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
            links.shutdown();
            return;
        }
    }
}

fn apply_join(sh: &Shared, ifx: u32, socks: &mut Vec<Socket>, op: JoinOp) -> io::Result<()> {
    while socks.len() <= op.socket {
        socks.push(sys::join_socket()?);
    }
    let s = &socks[op.socket];
    let up = &sh.cfg.upstream;
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

fn send_query(sh: &Shared, i: IfaceId, msg: &Message, dst: Ipv4Addr) {
    let Some(tx) = sh.down[i].read().clone() else {
        return;
    };
    let frame = igmp::build_frame(tx.link.source_mac, tx.link.query_source, dst, msg);
    match sys::send(&tx.sock, &frame) {
        Ok(_) => {
            inc(&sh.counters.queries_sent);
            debug!("{}: sent query for {dst}", tx.link.iface.name);
        }
        Err(e) => {
            if WARN_SEND.allow(Instant::now()) {
                warn!("{}: sending a query failed: {e}", tx.link.iface.name);
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
    let ifname = |i: IfaceId| sh.cfg.downstreams[i].name.as_str();
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
    let ifname = |i: IfaceId| cfg.downstreams[i].name.clone();
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
        .zip(&sh.down)
        .map(|((d, r), link)| {
            let link = link.read().clone();
            let (querier, other) = match r {
                Role::Querier => ("querier", None),
                Role::NonQuerier { other, .. } => ("non-querier", Some(other.to_string())),
                Role::Disabled { other } => ("off", other.map(|o| o.to_string())),
            };
            InterfaceStatus {
                name: d.name.clone(),
                state: if link.is_some() {
                    "up".into()
                } else {
                    "down".into()
                },
                query_source: link
                    .map(|l| l.link.query_source)
                    .or(d.query_source)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED)
                    .to_string(),
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
            interface: cfg.upstream.clone(),
            state: if sh.up_link.read().is_some() {
                "up".into()
            } else {
                "down".into()
            },
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
