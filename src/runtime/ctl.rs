//! The control thread (`ctl`): waits for the earliest deadline of either snooper or for a
//! message, feeds both snoopers, and carries out what they return. Every decision is taken
//! in `core::snooper`; this file only waits, translates and executes.

use super::family_io::{FamilyIo, JoinSockets};
use super::links::{LinkChange, Links};
use super::notes::{log_join, log_note};
use super::reload::Reconfig;
use super::shared::{GroupMsg, IgmpIn, Shared};
use super::stats::{inc, RateLimit};
use super::{iface, notify, sys};
use crate::core::querier::Mode;
use crate::core::snooper::{Action, Input, QueryOut, Snooper};
use crate::core::upstream::JoinOp;
use crossbeam_channel::{select, Receiver};
use log::{debug, info, warn};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often interfaces are checked for coming and going.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Messages taken from the queue per round, after the first.
const BATCH: usize = 255;

static WARN_SEND: RateLimit = RateLimit::new(Duration::from_secs(10));
static WARN_JOIN: RateLimit = RateLimit::new(Duration::from_secs(10));

/// One round's inputs, per family.
struct Inputs {
    v4: Vec<Input<Ipv4Addr>>,
    v6: Vec<Input<Ipv6Addr>>,
}

/// The control thread's body. `opened`: what opened at start; `reloads`: new snooper
/// configurations. Returns after the stop flag, once every upstream group is left and every
/// capture thread has ended.
pub(crate) fn control_loop(
    sh: &Arc<Shared>,
    mut links: Links,
    opened: Vec<LinkChange>,
    rx: Receiver<IgmpIn>,
    mut reloads: Receiver<Reconfig>,
) {
    let mut socks4 = JoinSockets::<Ipv4Addr>::new();
    let mut socks6 = JoinSockets::<Ipv6Addr>::new();
    let mut changes = opened;
    let mut inbox: Vec<IgmpIn> = Vec::new();
    let mut next_watch = Instant::now() + WATCH_INTERVAL;
    let watchdog = notify::watchdog_period();
    let mut next_ping = Instant::now();
    let mut said = String::new();
    loop {
        // 0. Tell systemd's watchdog this loop is alive (it is the thread that would hang).
        if let Some(period) = watchdog {
            let now = Instant::now();
            if now >= next_ping {
                notify::watchdog();
                next_ping = now + period;
            }
        }
        // 1. Wait for a message or the earliest deadline, at most until the interface check.
        let now = Instant::now();
        let deadline = {
            let st = sh.state.lock();
            [st.v4.next_deadline(now), st.v6.next_deadline(now)]
                .into_iter()
                .flatten()
                .fold(next_watch, Instant::min)
        };
        let deadline = match watchdog {
            Some(_) => deadline.min(next_ping),
            None => deadline,
        };
        let mut reconfig = None;
        select! {
            recv(rx) -> m => if let Ok(m) = m {
                inbox.push(m);
                inbox.extend(rx.try_iter().take(BATCH));
            },
            recv(reloads) -> r => match r {
                Ok(r) => reconfig = Some(r),
                // The reloader is gone: wait on the messages alone.
                Err(_) => reloads = crossbeam_channel::never(),
            },
            default(deadline.max(now).saturating_duration_since(now)) => {}
        }
        if let Ok(r) = reloads.try_recv() {
            reconfig = Some(r);
        }
        let stopping = sh.stop.load(Ordering::Relaxed);
        let now = Instant::now();
        // A reload's downstream list: close what it removed, look for what it added now.
        if let Some(r) = &reconfig {
            *sh.slots.write() = r.slots.clone();
            changes.extend(links.set_slots(sh, now));
            next_watch = now;
        }
        // 2. Turn what happened into inputs.
        let mut found = Vec::new();
        if now >= next_watch && !stopping {
            changes.extend(links.watch(sh, now));
            next_watch = now + WATCH_INTERVAL;
            let line = status_line(sh, links.upstream_index().is_some());
            if line != said {
                notify::status(&line);
                said = line;
            }
            let awaiting: Vec<_> = sh.state.lock().v6.awaiting_source().collect();
            for iface in awaiting {
                let name = &sh.down_name(iface);
                if let Some(source) = iface::lookup(name).and_then(|f| f.ipv6_link_local) {
                    found.push(Input::DownAddress { iface, source });
                }
            }
        }
        // Link changes first: a message queued before its interface closed is then dropped,
        // and an address found for an interface that just closed is ignored.
        let mut inputs = Inputs {
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for ch in changes.drain(..) {
            link_change(sh, ch, &mut inputs);
        }
        inputs.v6.append(&mut found);
        if let Some(r) = reconfig {
            // A reload: before this round's messages, so they meet the new filter.
            inputs.v4.push(reconfigure(&sh.state.lock().v4, r.v4));
            inputs.v6.push(reconfigure(&sh.state.lock().v6, r.v6));
        }
        for m in inbox.drain(..) {
            sh.queued_weight.fetch_sub(m.weight, Ordering::AcqRel);
            match m.msg {
                GroupMsg::V4(src, msg) => inputs.v4.push(Input::Heard {
                    iface: m.iface,
                    mac: m.src_mac,
                    src,
                    msg,
                }),
                GroupMsg::V6(src, msg) => inputs.v6.push(Input::Heard {
                    iface: m.iface,
                    mac: m.src_mac,
                    src,
                    msg,
                }),
            }
        }
        if stopping {
            notify::stopping();
            inputs.v4.push(Input::Stop);
            inputs.v6.push(Input::Stop);
        }
        // 3. Feed both snoopers under the lock, 4. carry out outside it.
        let (a4, a6) = {
            let mut st = sh.state.lock();
            (
                feed(&mut st.v4, inputs.v4, now),
                feed(&mut st.v6, inputs.v6, now),
            )
        };
        let up = links.upstream_index();
        execute(sh, &mut socks4, up, a4);
        execute(sh, &mut socks6, up, a6);
        if stopping {
            links.shutdown();
            return;
        }
    }
}

/// The STATUS= line for systemd: members and groups of both families, and the upstream.
fn status_line(sh: &Shared, upstream_open: bool) -> String {
    let st = sh.state.lock();
    let (t4, t6) = (st.v4.table(), st.v6.table());
    let groups = t4.group_count() + t6.group_count();
    format!(
        "{} members in {} groups; upstream {} {}",
        t4.member_count() + t6.member_count(),
        groups,
        sh.cfg.upstream,
        if upstream_open { "up" } else { "down" }
    )
}

/// The input of a reload: the new configuration, with the join limits the snooper has
/// (they were read from the kernel at start).
fn reconfigure<A: FamilyIo>(
    s: &Snooper<A>,
    mut cfg: crate::core::snooper::SnooperConfig,
) -> Input<A> {
    cfg.limits = s.config().limits;
    Input::Reconfigure(Box::new(cfg))
}

/// Every input, then the timers.
fn feed<A: FamilyIo>(s: &mut Snooper<A>, inputs: Vec<Input<A>>, now: Instant) -> Vec<Action<A>> {
    let mut out = Vec::new();
    for i in inputs {
        out.extend(s.handle(i, now));
    }
    out.extend(s.poll(now));
    out
}

/// An interface opened or closed: say so, and tell both snoopers.
fn link_change(sh: &Shared, ch: LinkChange, inputs: &mut Inputs) {
    match ch {
        LinkChange::DownOpened(iface, link) => {
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
            let mode = sh.state.lock().v4.config().querier.mode;
            if link.query_source.is_unspecified() && mode != Mode::Off {
                warn!(
                    "{}: no IPv4 address, queries go out from 0.0.0.0; some devices ignore such \
                     queries (give --query-source to choose an address)",
                    link.iface.name
                );
            }
            inputs.v4.push(Input::DownOpened {
                iface,
                source: Some(link.query_source),
            });
            inputs.v6.push(Input::DownOpened {
                iface,
                source: link.query_source6,
            });
        }
        LinkChange::DownClosed(iface) => {
            inputs.v4.push(Input::DownClosed { iface });
            inputs.v6.push(Input::DownClosed { iface });
        }
        LinkChange::UpOpened(info) => {
            info!(
                "upstream {}: open (index {}, {:?} link); joining what members want",
                info.name, info.index, info.link
            );
            // The kernel takes IPv6 joins there but sends no MLD report for them.
            let off = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", info.name);
            if sh.cfg.ipv6 && super::shared::read_sysctl(&off) == Some(1) {
                warn!(
                    "upstream {}: IPv6 is disabled on it (disable_ipv6=1): IPv6 groups are \
                     joined but no MLD report goes out, so no IPv6 stream will come",
                    info.name
                );
            }
            inputs.v4.push(Input::UpstreamOpened);
            inputs.v6.push(Input::UpstreamOpened);
        }
        LinkChange::UpClosed => {
            inputs.v4.push(Input::UpstreamClosed);
            inputs.v6.push(Input::UpstreamClosed);
        }
    }
}

/// Carry out a snooper's actions in order. Joins the kernel refuses go back to the snooper,
/// which undoes them in its plan and retries later.
fn execute<A: FamilyIo>(
    sh: &Shared,
    socks: &mut JoinSockets<A>,
    upstream: Option<u32>,
    actions: Vec<Action<A>>,
) {
    let mut refused: Vec<JoinOp<A>> = Vec::new();
    for a in actions {
        match a {
            Action::SendQuery(q) => send_query(sh, &q),
            Action::Join(op) => {
                let Some(ifx) = upstream else { continue };
                match socks.apply(ifx, op) {
                    Ok(()) => log_join(&sh.cfg.upstream, &op.kind),
                    Err(e) => {
                        join_refused(sh, op, &e);
                        refused.push(op);
                    }
                }
            }
            Action::KeepSockets(n) => socks.keep(n),
            Action::Publish(fib) => {
                let mut cur = sh.fib.write();
                *cur = Arc::new(A::with_fib(&cur, fib));
                sh.fib_gen.fetch_add(1, Ordering::Release);
            }
            Action::Log(note) => log_note(sh, &note),
        }
    }
    if !refused.is_empty() {
        let now = Instant::now();
        let more: Vec<Action<A>> = {
            let mut st = sh.state.lock();
            let s = A::snooper(&mut st);
            refused
                .into_iter()
                .flat_map(|op| s.handle(Input::JoinFailed(op), now))
                .collect()
        };
        execute(sh, socks, upstream, more);
    }
}

fn join_refused<A: FamilyIo>(sh: &Shared, op: JoinOp<A>, e: &io::Error) {
    inc(&sh.counters.upstream_join_errors);
    // Hosts choose how many groups we join: a flood of them must not turn into a warning
    // per group every retry.
    if WARN_JOIN.allow(Instant::now()) {
        warn!(
            "upstream {}: {:?} failed: {e} (further failures counted in upstream_join_errors, \
             not logged, for 10 s)",
            sh.cfg.upstream, op.kind
        );
    } else {
        debug!("upstream {}: {:?} failed: {e}", sh.cfg.upstream, op.kind);
    }
}

fn send_query<A: FamilyIo>(sh: &Shared, q: &QueryOut<A>) {
    let Some(tx) = sh.down[q.iface].read().clone() else {
        return;
    };
    let frame = A::query_frame(tx.link.source_mac, q);
    match sys::send(&tx.sock, &frame) {
        Ok(_) => {
            inc(A::queries_sent(&sh.counters));
            debug!("{}: sent query for {}", tx.link.iface.name, q.group);
        }
        Err(e) => {
            inc(&sh.counters.query_send_errors);
            if WARN_SEND.allow(Instant::now()) {
                warn!(
                    "{}: sending a query failed: {e} (counted in query_send_errors; further \
                     failures not logged for 10 s)",
                    tx.link.iface.name
                );
            }
        }
    }
}
