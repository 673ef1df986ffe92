//! Running commands, in the root namespace or inside one of the LAN's, and waiting for
//! children and their output.

use super::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs argv (in the root namespace) with a timeout; panics if it cannot start or times out.
pub fn exec(argv: &[&str], timeout: Duration) -> CmdOutput {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let status = match wait_child(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {timeout:?}: {argv:?}\nstdout: {}\nstderr: {}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
    };
    CmdOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs argv inside namespace `ns` (`ip netns exec`) with a timeout and returns its output.
pub fn ns_exec(ns: &str, argv: &[&str], timeout: Duration) -> CmdOutput {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    exec(&full, timeout)
}

/// Like `exec`, but panics unless the command exits 0; returns its stdout.
pub fn run(argv: &[&str]) -> String {
    let out = exec(argv, CMD_TIMEOUT);
    if !out.ok() {
        panic!(
            "{argv:?} failed ({}): {}{}",
            out.status, out.stderr, out.stdout
        );
    }
    out.stdout
}

/// Like `ns_exec`, but panics unless the command exits 0; returns its stdout.
pub fn ns_run(ns: &str, argv: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// Writes a sysctl inside `ns` through /proc/sys (no dependency on procps).
pub fn ns_sysctl(ns: &str, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    ns_run(
        ns,
        &["sh", "-c", "echo \"$1\" > \"$2\"", "sh", value, &path],
    );
}

/// A thread that passes the lines `r` prints on to the returned channel.
pub fn line_reader<R: Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    lines
}

/// Waits for a line of a helper's stdout that matches `pred`; panics on an `err ...` line,
/// on timeout, or when the helper ends (with what `on_end` says about it).
pub fn expect_line(
    lines: &Receiver<String>,
    who: &str,
    pred: impl Fn(&str) -> bool,
    timeout: Duration,
    what: &str,
    on_end: impl FnOnce() -> String,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) if line.starts_with("err ") => panic!("{who}: {line}"),
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => panic!("{who}: no '{what}' within {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{who} ended before '{what}'; {}", on_end())
            }
        }
    }
}

pub(super) fn collect<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub(super) fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet (it cannot be reused).
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Stops a child: SIGTERM, then SIGKILL after `grace`. Returns its exit status.
pub(super) fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child, libc::SIGTERM);
    if let Some(status) = wait_child(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Polls `cond` every 50 ms until it is true (returns true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
