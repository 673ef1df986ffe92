//! The control socket: each connection gets one JSON snapshot, then the server closes it.
//! The server never reads from clients.

use crate::runtime::sys;
use crate::status::Snapshot;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why the control socket could not be opened.
#[derive(Debug)]
pub enum ControlError {
    /// Another daemon answers on the path.
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    NotASocket(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::InUse(p) => write!(
                f,
                "another snoopcast is running: {} answers (use --control PATH)",
                p.display()
            ),
            ControlError::NotASocket(p) => write!(
                f,
                "control path {} exists and is not a socket; not removing it",
                p.display()
            ),
            ControlError::Io(p, e) => {
                write!(f, "cannot create control socket {}: {e}", p.display())
            }
        }
    }
}

/// Mode of the control socket: the daemon's user and the control group may connect (a
/// connection only ever reads one snapshot), nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// Bind the control socket, removing a stale one (a socket nobody answers on) first. It is
/// created with mode 0600 (set on the socket before bind, so no umask and no other thread's
/// file creation is involved), given to `group` when set, made 0660, and only then listens:
/// there is no moment when anyone outside the owner and the group can connect.
pub fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, ControlError> {
    // The default socket's directory (/run/snoopcast): made when missing and it may be
    // (systemd's RuntimeDirectory= makes it otherwise). One level only, mode 0755 so that
    // the socket's own mode decides who may connect.
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(|e| {
                ControlError::Io(
                    path.into(),
                    io::Error::new(
                        e.kind(),
                        format!("creating its directory {}: {e}", dir.display()),
                    ),
                )
            })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket(path.into()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.into()));
        }
        std::fs::remove_file(path).map_err(|e| ControlError::Io(path.into(), e))?;
    }
    let io_err = |e| ControlError::Io(path.into(), e);
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err)?;
    // Linux creates the socket file with the socket inode's mode (minus the umask).
    sys::fchmod(&sock, 0o600).map_err(io_err)?;
    let addr = SockAddr::unix(path).map_err(io_err)?;
    sock.bind(&addr).map_err(io_err)?;
    let finish = || -> io::Result<()> {
        if let Some(gid) = group {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "giving it to --control-group {}: {e} (the daemon's user must be a member of the group, \
                         or have CAP_CHOWN)",
                        crate::runtime::privs::describe_group(gid)
                    ),
                )
            })?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        sock.listen(128)?;
        sock.set_nonblocking(true)
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_file(path);
        return Err(io_err(e));
    }
    Ok(UnixListener::from(OwnedFd::from(sock)))
}

/// Serve snapshots until `stop`. `snapshot` builds one (under the daemon's lock, which it
/// drops before returning); serialisation and writing happen outside the lock.
pub fn serve(listener: UnixListener, stop: &AtomicBool, snapshot: impl Fn() -> Snapshot) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let snap = snapshot();
                let mut body = serde_json::to_vec(&snap).unwrap_or_default();
                body.push(b'\n');
                if let Err(e) = stream.write_all(&body) {
                    log::debug!("control: client went away: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Sleep until a client connects or a tick passes (poll, not a busy loop:
                // an idle daemon should cost nothing).
                let _ = crate::runtime::sys::wait_readable(&listener, crate::runtime::shared::TICK);
            }
            Err(e) => {
                log::warn!("control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Why `status` failed.
#[derive(Debug)]
pub enum ClientError {
    NotRunning(PathBuf, io::Error),
    /// The socket's mode or group keeps this user out.
    PermissionDenied {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Io(io::Error),
    BadReply(String),
    /// The reply went past `MAX_REPLY` bytes; reading stopped there.
    TooLarge(u64),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(p, e) => {
                write!(
                    f,
                    "snoopcast is not running (nothing answers on {}: {e}); if it runs with \
                     another control socket, give that with --control PATH",
                    p.display()
                )
            }
            ClientError::PermissionDenied {
                path,
                mode,
                uid,
                gid,
            } => {
                let group = crate::runtime::privs::describe_group(*gid);
                write!(
                    f,
                    "permission denied: {} (socket mode {mode:04o}, owner uid {uid}, group {group}); \
                     add the user to group {} or use sudo",
                    path.display(),
                    crate::runtime::privs::group_name(*gid).unwrap_or_else(|| gid.to_string())
                )
            }
            ClientError::Io(e) => write!(f, "reading status failed: {e}"),
            ClientError::BadReply(e) => write!(f, "the daemon sent an unreadable status: {e}"),
            ClientError::TooLarge(limit) => write!(
                f,
                "the daemon's status is larger than {} MiB; not reading further \
                 (is another program listening on the control socket?)",
                limit >> 20
            ),
        }
    }
}

/// Most bytes `fetch` reads. A member is about 300 bytes of JSON without sources, so the
/// default --max-members 10000 makes a snapshot of about 3 MB; 64 MiB leaves a factor of
/// twenty for source lists and raised limits, and keeps a reply that never ends (a wrong
/// program on the socket) from filling the client's memory.
pub const MAX_REPLY: u64 = 64 << 20;

/// Fetch one snapshot as raw JSON text.
pub fn fetch(path: &Path) -> Result<String, ClientError> {
    fetch_at_most(path, MAX_REPLY)
}

fn fetch_at_most(path: &Path, limit: u64) -> Result<String, ClientError> {
    let s = UnixStream::connect(path).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            if let Ok(m) = std::fs::metadata(path) {
                return ClientError::PermissionDenied {
                    path: path.into(),
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                };
            }
        }
        ClientError::NotRunning(path.into(), e)
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(ClientError::Io)?;
    read_reply(s, limit)
}

/// Read a whole reply of at most `limit` bytes.
fn read_reply(r: impl Read, limit: u64) -> Result<String, ClientError> {
    let mut body = String::new();
    r.take(limit + 1)
        .read_to_string(&mut body)
        .map_err(ClientError::Io)?;
    if body.len() as u64 > limit {
        return Err(ClientError::TooLarge(limit));
    }
    Ok(body)
}

pub fn parse(body: &str) -> Result<Snapshot, ClientError> {
    serde_json::from_str(body).map_err(|e| ClientError::BadReply(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::UpstreamStatus;
    use std::sync::Arc;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("snoopcast-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    fn snap() -> Snapshot {
        Snapshot {
            version: "t".into(),
            uptime_ms: 1,
            groups: vec![],
            upstream: UpstreamStatus {
                interface: "up0".into(),
                state: "up".into(),
                joined: vec![],
                report_version: 3,
                ..Default::default()
            },
            interfaces: vec![],
            counters: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn serves_one_snapshot_per_connection_and_detects_stale_and_busy_paths() {
        let p = tmp("serve");
        let l = bind(&p, None).unwrap();
        assert!(
            matches!(bind(&p, None), Err(ControlError::InUse(_))),
            "a live socket is not stolen"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || serve(l, &s2, snap));
        for _ in 0..2 {
            assert_eq!(parse(&fetch(&p).unwrap()).unwrap(), snap());
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        // Now stale: the next bind removes it.
        drop(bind(&p, None).unwrap());
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(fetch(&p), Err(ClientError::NotRunning(..))));
    }

    #[test]
    fn a_reply_over_the_limit_is_refused_with_a_clear_error() {
        assert_eq!(read_reply(&b"12345"[..], 5).unwrap(), "12345");
        let e = read_reply(&b"123456"[..], 5).unwrap_err();
        assert!(matches!(e, ClientError::TooLarge(5)), "{e:?}");
        assert!(ClientError::TooLarge(MAX_REPLY)
            .to_string()
            .contains("larger than 64 MiB"),);
        // A peer that never stops writing: reading ends at the limit.
        let p = tmp("endless");
        let l = UnixListener::bind(&p).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let chunk = [b' '; 4096];
            while c.write_all(&chunk).is_ok() {}
        });
        let e = fetch_at_most(&p, 1 << 20).unwrap_err();
        assert!(matches!(e, ClientError::TooLarge(_)), "{e:?}");
        t.join().unwrap();
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn refuses_to_remove_a_regular_file() {
        let p = tmp("file");
        std::fs::write(&p, b"x").unwrap();
        assert!(matches!(bind(&p, None), Err(ControlError::NotASocket(_))));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn socket_is_mode_0660_and_given_to_the_control_group() {
        let p = tmp("mode");
        // Whatever the umask, the mode is exactly 0660.
        // SAFETY: umask takes and returns an integer; other tests create no files that
        // depend on it (their temp files are written with explicit modes or not checked).
        let old = unsafe { libc::umask(0) };
        let l = bind(&p, None);
        unsafe { libc::umask(old) };
        drop(l.unwrap());
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o660, "mode {:o}", m.mode());
        std::fs::remove_file(&p).unwrap();
        // Our own group is always allowed (root: any group).
        // SAFETY: getegid takes nothing and returns an integer.
        let gid = unsafe { libc::getegid() };
        drop(bind(&p, Some(gid)).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().gid(), gid);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn permission_denied_names_mode_group_and_the_fix() {
        let e = ClientError::PermissionDenied {
            path: "/run/snoopcast/snoopcast.sock".into(),
            mode: 0o660,
            uid: 0,
            gid: 0,
        };
        let s = e.to_string();
        for needle in [
            "permission denied",
            "0660",
            "group root",
            "sudo",
            "snoopcast.sock",
        ] {
            assert!(s.contains(needle), "{needle} missing: {s}");
        }
    }
}
