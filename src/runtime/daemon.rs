//! Start-up and shutdown: opens the sockets, drops privileges, starts the threads in order,
//! and takes everything down again.
//!
//! ```text
//!  cap-up:IF ──(fib snapshot, read without the table lock)──> per-worker bounded channels
//!                                                              └─> send-N ──> downstream sockets
//!  cap-dn:IF ──(parsed IGMP/MLD)──> ctl (both snoopers behind a lock: timers, queries, upstream
//!                                        joins, interfaces coming and going; publishes the fib)
//!  control   ──(locks briefly for a snapshot, serialises outside)──> status clients
//! ```
//!
//! The threads' bodies live in their own files: capture.rs (`cap-dn`), datapath.rs (`cap-up`,
//! `send-N`), ctl.rs (`ctl`), control.rs and snapshot.rs (`control`).

use super::ctl::control_loop;
use super::datapath::{sender, Job, Pool};
use super::links::{open_err, Links, DATA_RCVBUF};
use super::reload::{snooper_configs, Reconfig, Reloader};
use super::shared::{read_sysctl, spawn, IgmpIn, RunError, Shared, State, PACKET_THREAD_NICE};
use super::snapshot::snapshot;
use super::stats::Counters;
use super::{control, metrics, notify, privs, sys};
use crate::config::Config;
use crate::core::fib::Forwarding;
use crate::core::snooper::Snooper;
use crate::openmetrics;
use crossbeam_channel::bounded;
use log::{debug, info, warn};
use parking_lot::{Mutex, RwLock};
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Bursts (up to 64 frames each) queued per sender worker before copies are dropped:
/// bounded memory, and a backlog of at most a few milliseconds.
const QUEUE_PER_WORKER: usize = 64;
/// Parsed IGMP messages queued for the control thread.
const EVENT_QUEUE: usize = 4096;

/// A start that failed after threads were started: stop them, remove the control socket.
fn abort(shared: &Shared, threads: Vec<JoinHandle<()>>, e: RunError) -> RunError {
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&shared.cfg.control);
    e
}

/// Run until `stop` is set. Leaves every upstream group before returning. `install_signals`
/// is called once privileges are dropped and the packet threads run: whatever thread it
/// starts then has the reduced capabilities too (the ctrlc crate starts one). It is given
/// the [`Reloader`] that applies a configuration read again (SIGHUP).
///
/// `metrics`: the `--metrics-listen` socket, bound by the caller (a bind error is a usage
/// error, exit 2, reported before anything starts); served on its own thread.
pub fn run(
    cfg: Config,
    metrics: Option<TcpListener>,
    stop: Arc<AtomicBool>,
    install_signals: impl FnOnce(Reloader) -> Result<(), String>,
) -> Result<(), RunError> {
    let now = Instant::now();
    let slots = Shared::slots_of(&cfg);
    let (cfg4, cfg6) = snooper_configs(&cfg, &slots);
    let sources: Vec<_> = slots
        .iter()
        .map(|d| d.as_ref().and_then(|d| d.query_source))
        .collect();
    // The random delays of the upstream reports: each process its own (RFC 3376 5.2).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let state = State {
        v4: Snooper::new(cfg4, &sources, now).with_seed(seed),
        v6: Snooper::new(cfg6, &[], now).with_seed(seed.rotate_left(17)),
    };
    let cfg_metrics_max = cfg.metrics_max_members;
    let shared = Arc::new(Shared {
        down: slots.iter().map(|_| RwLock::new(None)).collect(),
        slots: RwLock::new(slots),
        cfg,
        state: Mutex::new(state),
        fib: RwLock::new(Arc::new(Forwarding::default())),
        fib_gen: AtomicU64::new(0),
        links_gen: AtomicU64::new(0),
        up_link: RwLock::new(None),
        up_tx: RwLock::new(None),
        counters: Counters::default(),
        queued_weight: AtomicUsize::new(0),
        up_queriers: Default::default(),
        started: now,
        stop,
        metrics_max_members: AtomicUsize::new(cfg_metrics_max),
    });
    let workers = shared.cfg.workers;
    let pending = Arc::new(AtomicUsize::new(0));
    let (job_txs, job_rxs): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| bounded::<Job>(QUEUE_PER_WORKER))
        .unzip();
    let pool = Pool::new(job_txs, pending.clone());
    let (ev_tx, ev_rx) = bounded::<IgmpIn>(EVENT_QUEUE);
    let (re_tx, re_rx) = bounded::<Reconfig>(4);
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
            links.shutdown();
            return Err(abort(&shared, threads, e));
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
    for w in cfg.warnings() {
        warn!("configuration: {w}");
    }
    // The control thread owns the links; if it cannot start, the capture threads it would
    // have stopped see the stop flag instead.
    let sh = shared.clone();
    match spawn("ctl".into(), true, move || {
        control_loop(&sh, links, opened, ev_rx, re_rx)
    }) {
        Ok(t) => threads.push(t),
        Err(e) => return Err(abort(&shared, threads, e)),
    }
    // 4. Back to the base nice value (raising needs no privilege) for what follows: the
    //    signal handler's thread and the status server.
    let _ = sys::set_thread_nice(base_nice);
    if let Err(e) = install_signals(Reloader::new(shared.clone(), re_tx)) {
        return Err(abort(&shared, threads, RunError::Io(e)));
    }
    let sh = shared.clone();
    match spawn("control".into(), false, move || {
        control::serve(listener, &sh.stop, || snapshot(&sh))
    }) {
        Ok(t) => threads.push(t),
        Err(e) => return Err(abort(&shared, threads, e)),
    }
    if let Some(l) = metrics {
        let at = l
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let sh = shared.clone();
        match spawn("metrics".into(), false, move || {
            metrics::serve(l, &sh.stop, &sh.counters, || {
                let max = sh.metrics_max_members.load(Ordering::Relaxed);
                openmetrics::render(&snapshot(&sh), max, Counters::docs())
            })
        }) {
            Ok(t) => threads.push(t),
            Err(e) => return Err(abort(&shared, threads, e)),
        }
        info!("metrics: OpenMetrics at http://{at}/metrics");
    }
    // The control socket is bound and served, the packet threads run: ready.
    notify::ready(&format!(
        "running: upstream {}, downstream {}",
        shared.cfg.upstream,
        shared
            .cfg
            .downstreams
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
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
