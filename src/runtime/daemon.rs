//! Daemon wiring and the control thread.
//!
//! ```text
//!  cap-up:IF ──(fib snapshot, read without the table lock)──> per-worker bounded channels
//!                                                              └─> send-N ──> downstream sockets
//!  cap-dn:IF ──(parsed IGMP)──> ctl (owns the table behind a lock; timers, queries, upstream
//!                                    joins, interfaces coming and going; publishes the fib)
//!  control   ──(locks briefly for a snapshot, serialises outside)──> status clients
//! ```

use super::datapath::{sender, Job, Pool};
use super::links::{open_err, LinkChange, Links, DATA_RCVBUF};
use super::shared::{spawn, GroupMsg, IgmpIn, RunError, Shared, State, PACKET_THREAD_NICE};
use super::stats::{inc, Counters, LogBudget, RateLimit, Take};
use super::{control, iface, privs, sys};
use crate::config::Config;
use crate::core::family::GroupAddr;
use crate::core::fib::Forwarding;
use crate::core::membership::{
    CompatFallback, Event, FilterMode, HostKey, IgnoreReason, LeaveReason, Table, UpstreamWant,
};
use crate::core::pacer::Pacer;
use crate::core::querier::{Mode, Querier, Role, RoleChange};
use crate::core::upstream::{JoinKind, JoinLimits, JoinOp, JoinPool};
use crate::core::IfaceId;
use crate::status::{
    CompatStatus, GroupStatus, InterfaceStatus, JoinStatus, MemberStatus, Snapshot, UpstreamStatus,
};
use crate::wire::igmp::{self, Message};
use crate::wire::{ipv6, mld};
use crossbeam_channel::{bounded, Receiver};
use log::{debug, info, warn};
use parking_lot::{Mutex, RwLock};
use socket2::Socket;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bursts (up to 64 frames each) queued per sender worker before copies are dropped:
/// bounded memory, and a backlog of at most a few milliseconds.
const QUEUE_PER_WORKER: usize = 64;
/// Parsed IGMP messages queued for the control thread.
const EVENT_QUEUE: usize = 4096;
/// How often failed upstream joins are retried.
const JOIN_RETRY: Duration = Duration::from_secs(5);
/// How often interfaces are checked for coming and going.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Pacing of the whole-table rebuilds (forwarding snapshot, upstream want set), see
/// [`Pacer`]: the first change after a quiet spell at once, then at least REBUILD_FACTOR
/// times the last rebuild's cost apart (rebuilding takes at most about a quarter of the
/// control thread), between 1 ms and 50 ms.
const REBUILD_MIN_GAP: Duration = Duration::from_millis(1);
const REBUILD_FACTOR: u32 = 4;
const REBUILD_MAX_GAP: Duration = Duration::from_millis(50);

/// Run until `stop` is set. Leaves every upstream group before returning. `install_signals`
/// is called once privileges are dropped and the packet threads run: whatever thread it
/// starts then has the reduced capabilities too (the ctrlc crate starts one).
pub fn run(
    cfg: Config,
    stop: Arc<AtomicBool>,
    install_signals: impl FnOnce() -> Result<(), String>,
) -> Result<(), RunError> {
    let now = Instant::now();
    let limits = JoinLimits {
        groups_per_socket: read_sysctl("/proc/sys/net/ipv4/igmp_max_memberships")
            .unwrap_or(20)
            .max(1),
        sources_per_group: read_sysctl("/proc/sys/net/ipv4/igmp_max_msf")
            .unwrap_or(10)
            .max(1),
    };
    let limits6 = ipv6_join_limits(
        read_sysctl("/proc/sys/net/ipv6/mld_max_msf"),
        read_sysctl("/proc/sys/net/core/optmem_max"),
    );
    let fallback: Vec<CompatFallback> = cfg.downstreams.iter().map(|d| d.compat_fallback).collect();
    let state = State {
        table: Table::new(cfg.settings.clone(), cfg.filter.clone(), fallback.clone()),
        table6: Table::new(cfg.settings.clone(), cfg.filter.clone(), fallback),
        queriers6: cfg
            .downstreams
            .iter()
            .map(|_| Querier::new(querier6_config(&cfg, None), Ipv6Addr::UNSPECIFIED, now))
            .collect(),
        joins6: JoinPool::new(limits6),
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
        fib: RwLock::new(Arc::new(Forwarding::default())),
        fib_gen: AtomicU64::new(0),
        links_gen: AtomicU64::new(0),
        up_link: RwLock::new(None),
        counters: Counters::default(),
        queued_weight: AtomicUsize::new(0),
        started: now,
        stop,
    });
    let workers = shared.cfg.workers;
    let pending = Arc::new(AtomicUsize::new(0));
    let (job_txs, job_rxs): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| bounded::<Job>(QUEUE_PER_WORKER))
        .unzip();
    let pool = Pool::new(job_txs, pending.clone());
    let (ev_tx, ev_rx) = bounded::<IgmpIn>(EVENT_QUEUE);
    let mut links = Links::new(&shared, pool, ev_tx, now);
    // 1. Open every socket there is to open now, on this one thread, so a missing privilege
    //    is reported before anything runs; then the control socket.
    let ready = links.prepare_at_start(&shared, now)?;
    if ready.is_empty() {
        // Every interface is awaited: check now that packet sockets can be opened at all.
        sys::packet_socket().map_err(|e| open_err("packet socket", &shared.cfg.upstream, e))?;
    }
    let listener = control::bind(&shared.cfg.control, shared.cfg.control_group)
        .map_err(|e| RunError::Io(e.to_string()))?;
    // 2. Nice value and capabilities, still on one thread: every thread started from here on
    //    inherits both (see privs). Packet threads come from this thread or the control
    //    thread, so they get PACKET_THREAD_NICE even after CAP_SYS_NICE is gone.
    let base_nice = sys::thread_nice().unwrap_or(0);
    if base_nice > PACKET_THREAD_NICE {
        if let Err(e) = sys::set_thread_nice(PACKET_THREAD_NICE) {
            debug!("packet threads stay at nice {base_nice} ({e}; nice {PACKET_THREAD_NICE} needs CAP_SYS_NICE at start)");
        }
    }
    if let Err(e) = drop_privileges() {
        let _ = std::fs::remove_file(&shared.cfg.control);
        return Err(e);
    }
    // 3. The packet threads: senders, captures, the control thread (at the packet nice value).
    let mut threads = Vec::new();
    let started = (|| {
        for (w, rx) in job_rxs.into_iter().enumerate() {
            let (sh, p) = (shared.clone(), pending.clone());
            threads.push(spawn(format!("send-{w}"), true, move || {
                sender(&sh, rx, p)
            })?);
        }
        links.start_all(&shared, ready)
    })();
    let opened = match started {
        Ok(x) => x,
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            links.shutdown();
            for t in threads {
                let _ = t.join();
            }
            let _ = std::fs::remove_file(&shared.cfg.control);
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
            control_loop(&sh, links, opened, ev_rx, (limits, limits6))
        })?);
    }
    // 4. Back to the base nice value (raising needs no privilege) for what follows: the
    //    signal handler's thread and the status server.
    let _ = sys::set_thread_nice(base_nice);
    if let Err(e) = install_signals() {
        shared.stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&shared.cfg.control);
        return Err(RunError::Io(e));
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

/// Keep only the capabilities still needed once the start-up sockets are open (see
/// [`privs::needed_after_start`]), set no_new_privs, and say what was kept. The process must
/// still have one thread.
fn drop_privileges() -> Result<(), RunError> {
    let err = |e: io::Error| RunError::Io(format!("cannot drop privileges: {e}"));
    let has = privs::current().map_err(err)?.permitted;
    let rmem_max = read_sysctl("/proc/sys/net/core/rmem_max");
    let keep = privs::needed_after_start(has, rmem_max, DATA_RCVBUF);
    if let Some(m) = rmem_max.filter(|&m| m < DATA_RCVBUF && !has.contains(privs::CAP_NET_ADMIN)) {
        warn!(
            "no CAP_NET_ADMIN: capture buffers are capped at net.core.rmem_max ({m} bytes, {} wanted); \
             grant CAP_NET_ADMIN or raise the sysctl",
            DATA_RCVBUF
        );
    }
    let done = privs::reduce_to(keep.caps).map_err(err)?;
    info!(
        "privileges: kept {}{}; dropped {} other capabilities{}; no_new_privs set",
        keep.caps,
        if keep.why.is_empty() {
            String::new()
        } else {
            format!(" ({})", keep.why.join("; "))
        },
        done.dropped.len(),
        if done.bounding_reduced {
            ", bounding set reduced to the kept ones"
        } else {
            " (bounding set left as it is: no CAP_SETPCAP; no_new_privs stops an exec from gaining any)"
        }
    );
    Ok(())
}

/// Per-socket limits of IPv6 joins. Linux has no IPv6 counterpart of igmp_max_memberships:
/// a socket holds groups until its option memory (net.core.optmem_max) runs out, about 56
/// bytes per group plus 16 per source, and the kernel holds the old and the new source list
/// while one grows. Sources per group: net.ipv6.mld_max_msf (global, so missing inside a
/// network namespace: its default, 64).
fn ipv6_join_limits(mld_max_msf: Option<usize>, optmem_max: Option<usize>) -> JoinLimits {
    let sources = mld_max_msf.unwrap_or(64).max(1);
    let per_group = 80 + 16 * sources.div_ceil(10) * 10;
    JoinLimits {
        groups_per_socket: (optmem_max.unwrap_or(20_480) / 2 / per_group).clamp(1, 1000),
        sources_per_group: sources,
    }
}

/// The MLD querier's configuration for a downstream whose link-local address is `source`:
/// off with IPv6 off or without a link-local address (RFC 3810 section 5.1.14: hosts
/// discard queries from any other source).
fn querier6_config(cfg: &Config, source: Option<Ipv6Addr>) -> crate::core::querier::QuerierConfig {
    let mut q = cfg.querier6.clone();
    if !cfg.ipv6 || source.is_none() {
        q.mode = Mode::Off;
    }
    q
}

fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_LIMIT: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_JOIN: RateLimit = RateLimit::new(Duration::from_secs(10));
/// Joins, leaves, expiries and upstream joins are logged one by one (info) up to this many
/// per 10 s; beyond, at debug only: a host churning memberships must not fill the disk.
static CHANGE_LOG: LogBudget = LogBudget::new(Duration::from_secs(10), 500);

/// Log a membership or upstream change at info, within [`CHANGE_LOG`]'s budget.
fn log_change(args: std::fmt::Arguments<'_>) {
    match CHANGE_LOG.take(Instant::now()) {
        Take::Log { held_back: 0 } => info!("{args}"),
        Take::Log { held_back } => {
            info!("{held_back} membership/upstream changes were logged at debug level only (more than 500 in 10 s)");
            info!("{args}")
        }
        Take::FirstHeld => {
            info!("more than 500 membership/upstream changes in 10 s: further ones at debug level only for now (counters and status have them)");
            debug!("{args}")
        }
        Take::Held => debug!("{args}"),
    }
}

/// The control thread: owns the tables, runs timers and queriers, joins upstream, watches
/// interfaces.
fn control_loop(
    sh: &Arc<Shared>,
    mut links: Links,
    opened: Vec<LinkChange>,
    rx: Receiver<IgmpIn>,
    (limits, limits6): (JoinLimits, JoinLimits),
) {
    let mut join_socks: Vec<Socket> = Vec::new();
    let mut join_socks6: Vec<Socket> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut inbox: Vec<IgmpIn> = Vec::new();
    let mut link_changes = opened;
    let mut next_watch = Instant::now() + WATCH_INTERVAL;
    let mut pacer = Pacer::new(REBUILD_MIN_GAP, REBUILD_FACTOR, REBUILD_MAX_GAP);
    // Open downstreams whose MLD querier waits for a link-local address (an interface just
    // brought up has none until IPv6 assigns it): looked up again at every interface check.
    let mut awaiting_ll: Vec<bool> = vec![false; sh.cfg.downstreams.len()];
    loop {
        // 1. Wait for IGMP/MLD or the next timer, at most until the next interface check.
        let now = Instant::now();
        let deadline = {
            let st = sh.state.lock();
            let mut d = next_watch;
            for x in st
                .table
                .next_deadline()
                .into_iter()
                .chain(st.table6.next_deadline())
                .chain(st.queriers.iter().filter_map(Querier::next_deadline))
                .chain(st.queriers6.iter().filter_map(Querier::next_deadline))
                .chain(pacer.next_deadline(now))
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
        let mut found_ll: Vec<(IfaceId, Ipv6Addr)> = Vec::new();
        if now >= next_watch && !stopping {
            link_changes.extend(links.watch(sh, now));
            next_watch = now + WATCH_INTERVAL;
            for (i, waiting) in awaiting_ll.iter_mut().enumerate() {
                if !*waiting || !links.is_down_open(i) {
                    continue;
                }
                let name = &sh.cfg.downstreams[i].name;
                if let Some(a) = iface::lookup(name).and_then(|f| f.ipv6_link_local) {
                    *waiting = false;
                    info!("{name}: IPv6 link-local address {a} is there now; MLD queries go out from it");
                    found_ll.push((i, a));
                }
            }
        }
        // 2. Apply inputs, interface changes and timers under the lock.
        let mut events = Vec::new();
        let mut events6 = Vec::new();
        let mut role_changes = Vec::new();
        let mut queries: Vec<(IfaceId, Query)> = Vec::new();
        let mut links_changed = false;
        let upstream_open = links.upstream_index().is_some();
        let (fib, ops, ops6) = {
            let mut guard = sh.state.lock();
            let st = &mut *guard;
            for ch in link_changes.drain(..) {
                links_changed = true;
                match ch {
                    LinkChange::DownOpened(i, link) => {
                        info!(
                            "downstream {}: open (index {}, MAC {}, queries from {}{}); sending startup queries",
                            link.iface.name,
                            link.iface.index,
                            link.source_mac,
                            link.query_source,
                            match (sh.cfg.ipv6, link.query_source6) {
                                (true, Some(a)) => format!(" and {a}"),
                                _ => String::new(),
                            }
                        );
                        if link.query_source.is_unspecified() && sh.cfg.querier.mode != Mode::Off {
                            warn!(
                                "{}: no IPv4 address, queries go out from 0.0.0.0; some devices ignore such \
                                 queries (give --query-source to choose an address)",
                                link.iface.name
                            );
                        }
                        awaiting_ll[i] = sh.cfg.ipv6
                            && link.query_source6.is_none()
                            && sh.cfg.querier6.mode != Mode::Off;
                        if awaiting_ll[i] {
                            warn!(
                                "{}: no IPv6 link-local address (yet): no MLD queries go out there until \
                                 it has one (hosts ignore queries from any other source, RFC 3810 section \
                                 5.1.14)",
                                link.iface.name
                            );
                        }
                        st.queriers[i] =
                            Querier::new(sh.cfg.querier.clone(), link.query_source, now);
                        st.queriers6[i] = Querier::new(
                            querier6_config(&sh.cfg, link.query_source6),
                            link.query_source6.unwrap_or(Ipv6Addr::UNSPECIFIED),
                            now,
                        );
                    }
                    LinkChange::DownClosed(i) => {
                        awaiting_ll[i] = false;
                        let gone = st.table.remove_iface(i);
                        let gone6 = st.table6.remove_iface(i);
                        let n = gone
                            .iter()
                            .filter(|e| matches!(e, Event::Left { .. }))
                            .count()
                            + gone6
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
                        events6.extend(gone6);
                    }
                    LinkChange::UpOpened(info) => {
                        info!(
                            "upstream {}: open (index {}, {:?} link); joining what members want",
                            info.name, info.index, info.link
                        );
                        // The kernel takes IPv6 joins there but sends no MLD report for them.
                        let off = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", info.name);
                        if sh.cfg.ipv6 && read_sysctl(&off) == Some(1) {
                            warn!(
                                "upstream {}: IPv6 is disabled on it (disable_ipv6=1): IPv6 groups are \
                                 joined but no MLD report goes out, so no IPv6 stream will come",
                                info.name
                            );
                        }
                    }
                    LinkChange::UpClosed => {
                        // The kernel drops a vanished device's memberships; closing the
                        // sockets drops the rest. Rejoin from scratch when it returns.
                        st.joins = JoinPool::new(limits);
                        st.joins6 = JoinPool::new(limits6);
                        join_socks.clear();
                        join_socks6.clear();
                    }
                }
            }
            for (i, a) in found_ll.drain(..) {
                st.queriers6[i] = Querier::new(querier6_config(&sh.cfg, Some(a)), a, now);
            }
            for m in inbox.drain(..) {
                sh.queued_weight.fetch_sub(m.weight, Ordering::AcqRel);
                if !links.is_down_open(m.iface) {
                    continue;
                }
                let host = HostKey {
                    iface: m.iface,
                    mac: m.src_mac,
                };
                match &m.msg {
                    GroupMsg::Igmp(src, Message::Query(_)) => {
                        if let Some(ch) = st.queriers[m.iface].accept_query(*src, now) {
                            role_changes.push((m.iface, ch.map(IpAddr::V4)));
                        }
                    }
                    GroupMsg::Igmp(src, msg) => {
                        events.extend(st.table.accept_report(host, *src, msg, now))
                    }
                    GroupMsg::Mld(src, mld::Message::Query(_)) => {
                        if let Some(ch) = st.queriers6[m.iface].accept_query(*src, now) {
                            role_changes.push((m.iface, ch.map(IpAddr::V6)));
                        }
                    }
                    GroupMsg::Mld(src, msg) => {
                        events6.extend(st.table6.accept_mld(host, *src, msg, now))
                    }
                }
            }
            events.extend(st.table.poll(now));
            events6.extend(st.table6.poll(now));
            for (i, q) in st.queriers.iter_mut().enumerate() {
                let (due, ch) = q.poll(now);
                if let Some(ch) = ch {
                    role_changes.push((i, ch.map(IpAddr::V4)));
                }
                if due && !stopping && links.is_down_open(i) {
                    queries.push((
                        i,
                        Query::Igmp(q.config().general_query(), igmp::ALL_SYSTEMS),
                    ));
                }
            }
            for (i, q) in st.queriers6.iter_mut().enumerate() {
                let (due, ch) = q.poll(now);
                if let Some(ch) = ch {
                    role_changes.push((i, ch.map(IpAddr::V6)));
                }
                if due && !stopping && links.is_down_open(i) {
                    queries.push((
                        i,
                        Query::Mld(q.config().mld_general_query(), mld::ALL_NODES, q.own_ip()),
                    ));
                }
            }
            if events.iter().any(Event::changes_state) || events6.iter().any(Event::changes_state) {
                pacer.mark();
            }
            // The forwarding snapshot and the upstream want sets are rebuilt from the whole
            // tables: paced, so a burst of changes costs one rebuild, not one per report.
            let rebuild = pacer.due(now);
            let built = Instant::now();
            let retry = retry_at.is_some_and(|t| now >= t);
            let fib = rebuild.then(|| Forwarding {
                v4: st.table.forwarding(),
                v6: st.table6.forwarding(),
            });
            let (ops, ops6) = if stopping {
                (st.joins.leave_all(), st.joins6.leave_all())
            } else if upstream_open && (rebuild || retry || links_changed) {
                (
                    st.joins.reconcile(&st.table.upstream_wants()),
                    st.joins6.reconcile(&st.table6.upstream_wants()),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            if rebuild {
                pacer.done(now, built.elapsed());
            }
            (fib, ops, ops6)
        };
        // 3. Carry out, outside the lock.
        if let Some(fib) = fib {
            *sh.fib.write() = Arc::new(fib);
            sh.fib_gen.fetch_add(1, Ordering::Release);
        }
        for (i, ch) in role_changes {
            let n = &sh.cfg.downstreams[i].name;
            let proto = match ch {
                RoleChange::Yielded {
                    other: IpAddr::V6(_),
                } => "MLD ",
                _ => "",
            };
            match ch {
                RoleChange::Yielded { other } => {
                    info!("{n}: {proto}querier {other} has a lower address; we stop querying")
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
                queries.push((*iface, Query::Igmp(msg, *group)));
            }
            log_event(sh, e);
        }
        for e in &events6 {
            if let Event::SendGroupQuery { iface, group } = e {
                // RFC 3810 section 7.6.3.1 / RFC 2710 section 4: multicast-address-specific
                // queries go to the address itself.
                let msg = sh
                    .cfg
                    .querier6
                    .mld_group_query(*group, sh.cfg.settings.last_member_query_interval);
                let src = sh.state.lock().queriers6[*iface].own_ip();
                queries.push((*iface, Query::Mld(msg, *group, src)));
            }
            log_event(sh, e);
        }
        for (i, q) in queries {
            send_query(sh, i, &q);
        }
        let mut failed = false;
        let had_ops = !ops.is_empty() || !ops6.is_empty();
        if let Some(ifx) = links.upstream_index() {
            let mut refused = |what: String, e: io::Error| {
                failed = true;
                inc(&sh.counters.upstream_join_errors);
                // Hosts choose how many groups we join: a flood of them must not turn
                // into a warning per group every JOIN_RETRY.
                if WARN_JOIN.allow(Instant::now()) {
                    warn!(
                        "upstream {}: {what} failed: {e} (further failures counted in \
                         upstream_join_errors, not logged, for 10 s)",
                        sh.cfg.upstream
                    );
                } else {
                    debug!("upstream {}: {what} failed: {e}", sh.cfg.upstream);
                }
            };
            for op in ops {
                if let Err(e) = apply_join(sh, ifx, &mut join_socks, op) {
                    refused(format!("{:?}", op.kind), e);
                    if !stopping {
                        sh.state.lock().joins.undo(op);
                    }
                }
            }
            for op in ops6 {
                if let Err(e) = apply_join6(sh, ifx, &mut join_socks6, op) {
                    refused(format!("{:?}", op.kind), e);
                    if !stopping {
                        sh.state.lock().joins6.undo(op);
                    }
                }
            }
        }
        if had_ops {
            // Close the sockets the pools let go of (emptied at their end): no fd is kept
            // for a high-water mark of groups long gone.
            let (keep, keep6) = {
                let st = sh.state.lock();
                (st.joins.socket_count(), st.joins6.socket_count())
            };
            join_socks.truncate(keep);
            join_socks6.truncate(keep6);
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

/// A query to send on a downstream, with its destination address (and, for MLD, its source:
/// the link-local address the MLD querier has).
enum Query {
    Igmp(Message, Ipv4Addr),
    Mld(mld::Message, Ipv6Addr, Ipv6Addr),
}

fn log_join<A: GroupAddr>(up: &str, kind: &JoinKind<A>) {
    match kind {
        JoinKind::JoinAny(g) => log_change(format_args!("upstream {up}: joined {g} (any source)")),
        JoinKind::LeaveAny(g) => log_change(format_args!("upstream {up}: left {g}")),
        JoinKind::JoinSource(g, src) => {
            log_change(format_args!("upstream {up}: joined {g} from {src}"))
        }
        JoinKind::LeaveSource(g, src) => {
            log_change(format_args!("upstream {up}: left {g} from {src}"))
        }
    }
}

fn apply_join(sh: &Shared, ifx: u32, socks: &mut Vec<Socket>, op: JoinOp) -> io::Result<()> {
    while socks.len() <= op.socket {
        socks.push(sys::join_socket()?);
    }
    let s = &socks[op.socket];
    match op.kind {
        JoinKind::JoinAny(g) => sys::any_source(s, ifx, g, true)?,
        JoinKind::LeaveAny(g) => sys::any_source(s, ifx, g, false)?,
        JoinKind::JoinSource(g, src) => sys::source_specific(s, ifx, g, src, true)?,
        JoinKind::LeaveSource(g, src) => sys::source_specific(s, ifx, g, src, false)?,
    }
    log_join(&sh.cfg.upstream, &op.kind);
    Ok(())
}

/// [`apply_join`] for IPv6: MCAST_JOIN_GROUP / MCAST_JOIN_SOURCE_GROUP on AF_INET6 sockets.
fn apply_join6(
    sh: &Shared,
    ifx: u32,
    socks: &mut Vec<Socket>,
    op: JoinOp<Ipv6Addr>,
) -> io::Result<()> {
    while socks.len() <= op.socket {
        socks.push(sys::join_socket6()?);
    }
    let s = &socks[op.socket];
    match op.kind {
        JoinKind::JoinAny(g) => sys::any_source6(s, ifx, g, true)?,
        JoinKind::LeaveAny(g) => sys::any_source6(s, ifx, g, false)?,
        JoinKind::JoinSource(g, src) => sys::source_specific6(s, ifx, g, src, true)?,
        JoinKind::LeaveSource(g, src) => sys::source_specific6(s, ifx, g, src, false)?,
    }
    log_join(&sh.cfg.upstream, &op.kind);
    Ok(())
}

fn send_query(sh: &Shared, i: IfaceId, q: &Query) {
    let Some(tx) = sh.down[i].read().clone() else {
        return;
    };
    let (frame, dst, counter): (Vec<u8>, IpAddr, _) = match q {
        Query::Igmp(msg, dst) => (
            igmp::build_frame(tx.link.source_mac, tx.link.query_source, *dst, msg),
            (*dst).into(),
            &sh.counters.queries_sent,
        ),
        Query::Mld(msg, dst, src) => {
            // Never from `::`: hosts would discard it (RFC 3810 section 5.1.14).
            if src.is_unspecified() {
                return;
            }
            let src = *src;
            (
                ipv6::build_mld_frame(tx.link.source_mac, src, *dst, msg),
                (*dst).into(),
                &sh.counters.mld_queries_sent,
            )
        }
    };
    match sys::send(&tx.sock, &frame) {
        Ok(_) => {
            inc(counter);
            debug!("{}: sent query for {dst}", tx.link.iface.name);
        }
        Err(e) => {
            if WARN_SEND.allow(Instant::now()) {
                warn!("{}: sending a query failed: {e}", tx.link.iface.name);
            }
        }
    }
}

fn filter_text<A: GroupAddr>(mode: FilterMode, sources: &[A]) -> String {
    let m = match mode {
        FilterMode::Include => "include",
        FilterMode::Exclude => "exclude",
    };
    let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    format!("{m}{{{}}}", s.join(","))
}

fn log_event<A: GroupAddr>(sh: &Shared, e: &Event<A>) {
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
            log_change(format_args!(
                "{verb}: {group} by {} ({ip}) on {}: {}",
                host.mac,
                ifname(host.iface),
                filter_text(*mode, sources)
            ))
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
            log_change(format_args!(
                "{why}: {group} by {} ({ip}) on {}",
                host.mac,
                ifname(host.iface)
            ));
        }
        Event::CompatStarted {
            iface,
            group,
            version,
        } => {
            if sh.cfg.downstreams[*iface].compat_fallback == CompatFallback::Multicast {
                log_change(format_args!(
                    "{}v{version} host present for {group} on {}: sending it there as L2 multicast \
                     (older hosts suppress each other's reports) until the older-host timer ends",
                    A::PROTOCOL,
                    ifname(*iface)
                ))
            } else {
                log_change(format_args!(
                    "{}v{version} host present for {group} on {}: keeping unicast (--compat-fallback unicast)",
                    A::PROTOCOL,
                    ifname(*iface)
                ))
            }
        }
        Event::CompatEnded { iface, group } => log_change(format_args!(
            "no older-version {} host left for {group} on {}: back to unicast copies",
            A::PROTOCOL,
            ifname(*iface)
        )),
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

/// One family's part of a status snapshot, copied under the lock.
struct FamilyCopy<A> {
    members: Vec<(A, HostKey, crate::core::membership::Member<A>)>,
    compat: Vec<(A, IfaceId, Instant)>,
    joined: BTreeMap<A, UpstreamWant<A>>,
    sockets: usize,
    /// Each querier's role and source address.
    roles: Vec<(Role<A>, A)>,
}

fn copy_family<A: GroupAddr>(
    table: &Table<A>,
    queriers: &[Querier<A>],
    joins: &JoinPool<A>,
    ifaces: usize,
) -> FamilyCopy<A> {
    let members: Vec<_> = table.members().map(|(g, h, m)| (g, h, m.clone())).collect();
    let groups: BTreeSet<A> = members
        .iter()
        .map(|(g, _, _)| *g)
        .chain(table.upstream_wants().into_keys())
        .collect();
    let mut compat = Vec::new();
    for g in &groups {
        for i in 0..ifaces {
            if let Some(t) = table.compat_until(i, *g) {
                compat.push((*g, i, t));
            }
        }
    }
    FamilyCopy {
        members,
        compat,
        joined: joins.joined(),
        sockets: joins.socket_count(),
        roles: queriers.iter().map(|q| (q.role(), q.own_ip())).collect(),
    }
}

/// Add one family's groups and joins to the snapshot being built.
fn format_family<A: GroupAddr>(
    cfg: &Config,
    now: Instant,
    f: FamilyCopy<A>,
    groups: &mut BTreeMap<IpAddr, GroupStatus>,
    joined: &mut Vec<JoinStatus>,
) {
    let ifname = |i: IfaceId| cfg.downstreams[i].name.clone();
    let new_group = |g: A| GroupStatus {
        group: g.to_string(),
        multicast_on: vec![],
        members: vec![],
    };
    let v6 = A::PROTOCOL == <Ipv6Addr as GroupAddr>::PROTOCOL;
    for (g, h, m) in f.members {
        groups
            .entry(g.into())
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
                igmp_version: (!v6).then_some(m.version),
                mld_version: v6.then_some(m.version),
                expires_in_ms: left_ms(m.expires, now),
                packets: m.counters.packets.load(Ordering::Relaxed),
                bytes: m.counters.bytes.load(Ordering::Relaxed),
            });
    }
    for (g, i, t) in f.compat {
        groups
            .entry(g.into())
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
    joined.extend(f.joined.into_iter().map(|(g, w)| JoinStatus {
        group: g.to_string(),
        sources: match w {
            UpstreamWant::AnySource => vec![],
            UpstreamWant::Sources(s) => s.iter().map(|s| s.to_string()).collect(),
        },
    }));
}

fn role_text<A: GroupAddr>(r: Role<A>) -> (String, Option<String>) {
    match r {
        Role::Querier => ("querier".into(), None),
        Role::NonQuerier { other, .. } => ("non-querier".into(), Some(other.to_string())),
        Role::Disabled { other } => ("off".into(), other.map(|o| o.to_string())),
    }
}

/// Build a status snapshot: copy under the lock, format after.
fn snapshot(sh: &Shared) -> Snapshot {
    let now = Instant::now();
    let cfg = &sh.cfg;
    let n = cfg.downstreams.len();
    let (v4, v6) = {
        let st = sh.state.lock();
        (
            copy_family(&st.table, &st.queriers, &st.joins, n),
            copy_family(&st.table6, &st.queriers6, &st.joins6, n),
        )
    };
    let sockets = v4.sockets + v6.sockets;
    let roles: Vec<_> = v4
        .roles
        .iter()
        .copied()
        .zip(v6.roles.iter().copied())
        .collect();
    let mut groups: BTreeMap<IpAddr, GroupStatus> = BTreeMap::new();
    let mut joined = Vec::new();
    format_family(cfg, now, v4, &mut groups, &mut joined);
    format_family(cfg, now, v6, &mut groups, &mut joined);
    let interfaces = cfg
        .downstreams
        .iter()
        .zip(roles)
        .zip(&sh.down)
        .map(|((d, ((r, _), (r6, src6))), link)| {
            let link = link.read().clone();
            let (querier, other) = role_text(r);
            let (mld_querier, mld_other) = if cfg.ipv6 {
                role_text(r6)
            } else {
                ("off (--no-ipv6)".into(), None)
            };
            InterfaceStatus {
                name: d.name.clone(),
                state: if link.is_some() {
                    "up".into()
                } else {
                    "down".into()
                },
                query_source: link
                    .as_ref()
                    .map(|l| l.link.query_source)
                    .or(d.query_source)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED)
                    .to_string(),
                querier,
                other_querier: other,
                compat_fallback: match d.compat_fallback {
                    CompatFallback::Multicast => "multicast".into(),
                    CompatFallback::Unicast => "unicast".into(),
                },
                query_source6: (cfg.ipv6 && link.is_some() && !src6.is_unspecified())
                    .then(|| src6.to_string()),
                mld_querier,
                mld_other_querier: mld_other,
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
            joined,
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
