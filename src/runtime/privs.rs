//! Least privilege after start-up: which capabilities the running daemon still needs, and
//! dropping the rest (capget/capset, the bounding set, ambient capabilities, no_new_privs),
//! plus the group look-ups of `--control-group`. The unsafe calls live here behind a safe API.
//!
//! Capabilities are per thread on Linux: capset(2) and PR_CAPBSET_DROP change the calling
//! thread only, and a new thread starts with a copy of its creator's. So [`reduce_to`] refuses
//! to run unless the process has exactly one thread, and the daemon calls it before it starts
//! any: every thread it creates afterwards, and every thread those create, inherits the
//! reduced sets.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;

/// Capability numbers (linux/capability.h).
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_NICE: u32 = 23;

/// Names of capabilities 0..=40, as in linux/capability.h (for log lines).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A set of capabilities as a bit mask (bit n = capability n), the layout of the CapEff,
/// CapPrm, ... lines of /proc/PID/status.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub fn of(caps: &[u32]) -> CapSet {
        CapSet(caps.iter().fold(0, |m, &c| m | (1u64 << c)))
    }

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn and(self, o: CapSet) -> CapSet {
        CapSet(self.0 & o.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&c| self.contains(c))
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
}

/// `CAP_NET_ADMIN, CAP_NET_RAW`, or `none`.
impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<String> = self
            .iter()
            .map(|c| match NAMES.get(c as usize) {
                Some(n) => n.to_string(),
                None => format!("cap_{c}"),
            })
            .collect();
        f.write_str(&names.join(", "))
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapSet({:#x}: {self})", self.0)
    }
}

/// What the daemon keeps after start-up, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub caps: CapSet,
    /// One reason per kept capability, for the log.
    pub why: Vec<&'static str>,
}

/// Which of the capabilities it `has` the daemon still needs once every socket it can open
/// now is open. Pure.
///
/// - CAP_NET_RAW: an interface that goes away and comes back (an OpenVPN restart, a cable)
///   is reopened, which means new AF_PACKET sockets; also the first open of an interface
///   missing at start (`--wait-for-interfaces`).
/// - CAP_NET_ADMIN: only SO_RCVBUFFORCE needs it (allmulti through PACKET_ADD_MEMBERSHIP,
///   PACKET_QDISC_BYPASS, PACKET_IGNORE_OUTGOING, filters, multicast joins and SO_SNDBUF do
///   not). It is kept only while a reopened socket would otherwise get a smaller receive
///   buffer than at start: when net.core.rmem_max (`rmem_max`, None if unreadable) is below
///   the largest buffer asked for (`largest_rcvbuf`).
/// - Nothing else: CAP_SYS_NICE is not needed later (threads inherit the nice value of the
///   thread that creates them), the control socket is bound and joins need no privilege.
pub fn needed_after_start(has: CapSet, rmem_max: Option<usize>, largest_rcvbuf: usize) -> Keep {
    let mut keep = Keep {
        caps: CapSet::EMPTY,
        why: Vec::new(),
    };
    if has.contains(CAP_NET_RAW) {
        keep.caps.0 |= 1 << CAP_NET_RAW;
        keep.why
            .push("CAP_NET_RAW to reopen packet sockets when an interface comes back");
    }
    if has.contains(CAP_NET_ADMIN) && rmem_max.is_none_or(|m| m < largest_rcvbuf) {
        keep.caps.0 |= 1 << CAP_NET_ADMIN;
        keep.why.push(
            "CAP_NET_ADMIN for SO_RCVBUFFORCE on reopened sockets (net.core.rmem_max is below the buffer wanted)",
        );
    }
    keep
}

/// One thread's capability sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sets {
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
}

/// The sets to install so that only `keep` remains: permitted and effective cut down to
/// `keep` (never widened), inheritable emptied (snoopcast executes nothing). Pure.
pub fn reduced(now: Sets, keep: CapSet) -> Sets {
    let permitted = now.permitted.and(keep);
    Sets {
        effective: permitted,
        permitted,
        inheritable: CapSet::EMPTY,
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's capability sets (capget).
pub fn current() -> io::Result<Sets> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and an array of two data structs, both live and
    // writable for the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    check(r)?;
    let join = |lo: u32, hi: u32| CapSet(u64::from(lo) | (u64::from(hi) << 32));
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

fn set(s: Sets) -> io::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |c: CapSet| (c.0 as u32, (c.0 >> 32) as u32);
    let (e0, e1) = split(s.effective);
    let (p0, p1) = split(s.permitted);
    let (i0, i1) = split(s.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: as in `current`; the kernel only reads the data array.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    check(r)
}

fn prctl(op: libc::c_int, a: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl operations used here take integer arguments only.
    let r = unsafe {
        libc::prctl(
            op,
            a,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// The calling thread's bounding set.
pub fn bounding() -> CapSet {
    let mut m = CapSet::EMPTY;
    for c in 0..=last_cap() {
        if prctl(libc::PR_CAPBSET_READ, c.into()).unwrap_or(0) == 1 {
            m.0 |= 1 << c;
        }
    }
    m
}

/// Threads of this process (entries of /proc/self/task).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// What [`reduce_to`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities that were permitted before and are gone now.
    pub dropped: CapSet,
    /// The bounding set was cut down to the kept capabilities (needs CAP_SETPCAP; without
    /// it the bounding set stays, and no_new_privs keeps an exec from gaining anything).
    pub bounding_reduced: bool,
}

/// Keep only `keep` of the capabilities, in every set, for good: set no_new_privs, cut the
/// bounding set (when CAP_SETPCAP allows), clear the ambient set, then capset. Must be called
/// while the process has one thread (see the module comment); fails otherwise.
pub fn reduce_to(keep: CapSet) -> io::Result<Dropped> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "capabilities are per thread and {threads} threads already run; refusing to drop them in one only"
        )));
    }
    let before = current()?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    let bounding_reduced = before.effective.contains(CAP_SETPCAP);
    if bounding_reduced {
        for c in 0..=last_cap() {
            if !keep.contains(c) {
                match prctl(libc::PR_CAPBSET_DROP, c.into()) {
                    Ok(_) => {}
                    // A number this kernel does not know.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Linux 4.3+; before that there is no ambient set to clear.
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
        _ => {}
    }
    let want = reduced(before, keep);
    set(want)?;
    let after = current()?;
    if after != want {
        return Err(io::Error::other(format!(
            "capabilities after capset are {after:?}, expected {want:?}"
        )));
    }
    Ok(Dropped {
        dropped: CapSet(before.permitted.0 & !after.permitted.0),
        bounding_reduced,
    })
}

/// getgrnam_r / getgrgid_r with a buffer grown on ERANGE. Returns the group's (gid, name).
fn group_entry(
    lookup: impl Fn(&mut libc::group, &mut [u8], &mut *mut libc::group) -> libc::c_int,
) -> Option<(u32, String)> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `group` is plain old data; zeroed is a valid value before the call fills it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        let r = lookup(&mut grp, &mut buf, &mut res);
        if r == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if r != 0 || res.is_null() {
            return None;
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned();
        return Some((grp.gr_gid, name));
    }
}

/// The gid of a group name (NSS: /etc/group, LDAP, ...), None if there is no such group.
pub fn group_by_name(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    group_entry(|grp, buf, res| {
        // SAFETY: every pointer is live for the call and `buf.len()` is its real length.
        unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                grp,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                res,
            )
        }
    })
    .map(|(g, _)| g)
}

/// The name of a gid, None if it has no group entry.
pub fn group_name(gid: u32) -> Option<String> {
    group_entry(|grp, buf, res| {
        // SAFETY: as in `group_by_name`.
        unsafe {
            libc::getgrgid_r(
                gid,
                grp,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                res,
            )
        }
    })
    .map(|(_, n)| n)
}

/// `name (gid N)` or `gid N`, for messages.
pub fn describe_group(gid: u32) -> String {
    match group_name(gid) {
        Some(n) => format!("{n} (gid {gid})"),
        None => format!("gid {gid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW_ADMIN: [u32; 2] = [CAP_NET_RAW, CAP_NET_ADMIN];

    #[test]
    fn full_root_keeps_net_raw_and_net_admin_only_while_rmem_max_is_too_small() {
        let root = CapSet((1u64 << 41) - 1);
        let k = needed_after_start(root, Some(212_992), 8 << 20);
        assert_eq!(k.caps, CapSet::of(&RAW_ADMIN));
        assert_eq!(k.why.len(), 2);
        assert_eq!(k.caps.to_string(), "CAP_NET_ADMIN, CAP_NET_RAW");
        // rmem_max large enough: SO_RCVBUF gets the full buffer, NET_ADMIN is not needed.
        let k = needed_after_start(root, Some(16 << 20), 8 << 20);
        assert_eq!(k.caps, CapSet::of(&[CAP_NET_RAW]));
        assert!(!k.caps.contains(CAP_SYS_NICE) && !k.caps.contains(CAP_SETPCAP));
        // Unreadable rmem_max: keep it, to be safe.
        let k = needed_after_start(root, None, 8 << 20);
        assert_eq!(k.caps, CapSet::of(&RAW_ADMIN));
    }

    #[test]
    fn nothing_is_kept_that_was_not_there() {
        let k = needed_after_start(CapSet::of(&[CAP_NET_RAW]), Some(0), 8 << 20);
        assert_eq!(k.caps, CapSet::of(&[CAP_NET_RAW]));
        let k = needed_after_start(CapSet::of(&[CAP_SYS_NICE, CAP_NET_ADMIN]), Some(0), 1);
        assert_eq!(k.caps, CapSet::of(&[CAP_NET_ADMIN]));
        let k = needed_after_start(CapSet::EMPTY, Some(0), 1);
        assert!(k.caps.is_empty() && k.why.is_empty());
        assert_eq!(k.caps.to_string(), "none");
    }

    #[test]
    fn reduced_sets_never_widen_and_empty_inheritable() {
        let now = Sets {
            effective: CapSet::of(&[CAP_NET_RAW]),
            permitted: CapSet::of(&[CAP_NET_RAW, CAP_SYS_NICE, CAP_SETPCAP]),
            inheritable: CapSet::of(&[CAP_NET_RAW, CAP_NET_ADMIN]),
        };
        let r = reduced(now, CapSet::of(&RAW_ADMIN));
        assert_eq!(
            r.permitted,
            CapSet::of(&[CAP_NET_RAW]),
            "NET_ADMIN was not permitted"
        );
        assert_eq!(r.effective, r.permitted);
        assert_eq!(r.inheritable, CapSet::EMPTY);
    }

    #[test]
    fn capset_displays_like_the_kernel_names_them() {
        assert_eq!(
            CapSet::of(&[0, 40]).to_string(),
            "CAP_CHOWN, CAP_CHECKPOINT_RESTORE"
        );
        assert_eq!(CapSet::of(&[41]).to_string(), "cap_41");
        assert_eq!(CapSet::of(&RAW_ADMIN).len(), 2);
        assert_eq!(
            CapSet::of(&RAW_ADMIN).0,
            0x3000,
            "bits 12 and 13, as in CapEff"
        );
    }

    #[test]
    fn the_real_group_database_knows_root() {
        // gid 0 is "root" on every Linux system the tests run on.
        assert_eq!(group_by_name("root"), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(group_by_name("snoopcast-no-such-group-x"), None);
        assert_eq!(describe_group(0), "root (gid 0)");
    }

    #[test]
    fn this_thread_can_read_its_sets() {
        let s = current().unwrap();
        assert_eq!(
            s.effective.0 & !s.permitted.0,
            0,
            "effective is a subset of permitted"
        );
    }
}
