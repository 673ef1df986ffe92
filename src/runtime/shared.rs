//! What the runtime's threads share, and the types they pass each other: every other runtime
//! file may import this one, and it imports none of them but `stats`, `iface` and `sys`, so no runtime file imports another in a circle.

use super::iface;
use super::stats::Counters;
use super::sys;
use crate::config::{Config, DownLink, Downstream};
use crate::core::fib::Forwarding;
use crate::core::membership::Heard;
use crate::core::querier;
use crate::core::snooper::Snooper;
use crate::core::IfaceId;
use crate::wire::MacAddr;
use log::debug;
use parking_lot::{Mutex, RwLock};
use socket2::Socket;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any blocking call may wait before looking at the stop flag: shutdown within
/// about a second, and an idle daemon wakes each thread only about once a second.
pub const TICK: Duration = Duration::from_secs(1);

/// Records and sources queued for the control thread, over all messages: 4096 reports of
/// a few records each pass; 4096 jumbo reports of thousands of records each (gigabytes
/// once parsed) do not. About 64 bytes each at most: a few MiB.
pub(crate) const MAX_QUEUED_WEIGHT: usize = 1 << 16;

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

/// A parsed IGMP or MLD message from a downstream host, for the control thread.
pub struct IgmpIn {
    pub(crate) iface: IfaceId,
    pub(crate) src_mac: MacAddr,
    pub(crate) msg: GroupMsg,
    /// `msg.weight()`, counted in [`Shared::queued_weight`] while queued.
    pub(crate) weight: usize,
}

/// The message with its IP source.
pub(crate) enum GroupMsg {
    V4(Ipv4Addr, Heard<Ipv4Addr>),
    V6(Ipv6Addr, Heard<Ipv6Addr>),
    /// A query heard on the upstream (the `iface` of its [`IgmpIn`] is then unused).
    UpV4(Ipv4Addr, querier::HeardQuery<Ipv4Addr>),
    UpV6(Ipv6Addr, querier::HeardQuery<Ipv6Addr>),
}

/// Everything the control thread owns, one snooper per address family; the status thread
/// reads it under the lock.
pub(crate) struct State {
    pub(crate) v4: Snooper<Ipv4Addr>,
    pub(crate) v6: Snooper<Ipv6Addr>,
}

/// A downstream interface's send side while it is there.
pub struct DownTx {
    pub sock: Socket,
    pub link: DownLink,
}

/// The upstream's send side while it is open: reports go out of `sock`; `capture` is the
/// data capture socket again, whose link-layer multicast memberships (PACKET_ADD_MEMBERSHIP)
/// make the NIC pass the groups reported.
pub struct UpTx {
    pub sock: Socket,
    pub capture: Socket,
    pub info: iface::IfaceInfo,
}

/// Downstream slots beyond the configured ones, for interfaces a reload adds.
pub const SPARE_SLOTS: usize = 8;

/// What the threads share.
pub struct Shared {
    /// The configuration at start. The downstream list a reload changes is in `slots`.
    pub cfg: Config,
    /// The downstream interfaces by slot ([`IfaceId`]): the configured ones first, then
    /// [`SPARE_SLOTS`] free ones (None). A reload frees the slot of an interface it removes
    /// and fills a free one with an interface it adds; the control thread opens it.
    pub slots: RwLock<Vec<Option<Downstream>>>,
    pub(crate) state: Mutex<State>,
    /// The forwarding snapshot, swapped whole by the control thread.
    pub fib: RwLock<Arc<Forwarding>>,
    /// Bumped after each swap so readers refresh their copy only then.
    pub fib_gen: AtomicU64,
    /// Each downstream's send side; None while the interface is away.
    pub down: Vec<RwLock<Option<Arc<DownTx>>>>,
    /// Bumped whenever `down` changes.
    pub links_gen: AtomicU64,
    /// The upstream interface while it is open.
    pub up_link: RwLock<Option<iface::IfaceInfo>>,
    /// The upstream's send side while it is open.
    pub up_tx: RwLock<Option<Arc<UpTx>>>,
    /// The last IGMP and MLD general query heard on the upstream (`[v4, v6]`), written by
    /// the upstream query listener (`qry-up:IF`), read by status.
    pub up_queriers: Mutex<[Option<HeardQuery>; 2]>,
    pub counters: Counters,
    /// Total weight (records and sources, [`Message::weight`]) of the parsed IGMP queued
    /// for the control thread: bounded by [`MAX_QUEUED_WEIGHT`] as well as by count.
    pub(crate) queued_weight: AtomicUsize,
    pub(crate) started: Instant,
    pub stop: Arc<AtomicBool>,
    /// `--metrics-max-members` as configured now (a reload changes it).
    pub metrics_max_members: AtomicUsize,
}

/// A general query heard on the upstream: from where, its version, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeardQuery {
    pub source: std::net::IpAddr,
    pub version: u8,
    pub at: Instant,
}

impl Shared {
    /// The slots of a start configuration.
    pub fn slots_of(cfg: &Config) -> Vec<Option<Downstream>> {
        cfg.downstreams
            .iter()
            .cloned()
            .map(Some)
            .chain(std::iter::repeat_n(None, SPARE_SLOTS))
            .collect()
    }

    /// The downstream in slot `i`, if the slot is in use.
    pub fn downstream(&self, i: IfaceId) -> Option<Downstream> {
        self.slots.read().get(i).cloned().flatten()
    }

    /// The name of the interface in slot `i` ("-" for a free slot), for log lines and status.
    pub fn down_name(&self, i: IfaceId) -> String {
        self.downstream(i).map_or_else(|| "-".into(), |d| d.name)
    }

    /// A copy of every downstream's send side, for a worker to cache.
    pub fn down_links(&self) -> Vec<Option<Arc<DownTx>>> {
        self.down.iter().map(|l| l.read().clone()).collect()
    }
}

/// Nice value of the threads a packet waits for (captures, the table owner, senders): on a
/// busy box other programs should not delay copies, joins or leaves by a scheduler slice.
pub(crate) const PACKET_THREAD_NICE: i32 = -10;

/// Start a named thread. `packet`: one a packet waits for, run at [`PACKET_THREAD_NICE`].
/// It normally inherits that value from its creator (the main thread lowers itself while it
/// still may, before dropping CAP_SYS_NICE; see `run`); otherwise it tries itself, which
/// works only with CAP_SYS_NICE, and stays at its creator's value if not.
pub fn spawn(
    name: String,
    packet: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, RunError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if packet && sys::thread_nice().map_or(true, |n| n > PACKET_THREAD_NICE) {
                if let Err(e) = sys::set_thread_nice(PACKET_THREAD_NICE) {
                    debug!("thread priority left as it is ({e}; needs CAP_SYS_NICE)");
                }
            }
            f()
        })
        .map_err(|e| RunError::Io(format!("thread {name}: {e}")))
}

/// A number from a sysctl (or sysfs) file, if it is there and reads as one.
pub(crate) fn read_sysctl(path: impl AsRef<std::path::Path>) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
