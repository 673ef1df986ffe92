//! The snoopcast daemon in the box: starting it (also under a wrapper such as setpriv),
//! stopping it, and sampling its resources (tests/soak.rs).

use super::*;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running snoopcast daemon. Dropping it stops it (SIGTERM, then SIGKILL).
pub struct Snoopcast {
    child: Child,
    pub log: PathBuf,
}

/// Starts `snoopcast run --upstream up0 --downstream dn0 --control <lan.control_path()>
/// --log-level debug <args>` in the box namespace (--log-level only when `args` has none),
/// stdout and stderr to `<lan.dir>/snoopcast.log`, and waits until `status --json` answers.
/// The upstream is the LAN's (`Lan::upstream_if`), the downstreams all of its
/// (`Lan::downstream_ifs`: dn0, and dn1 when there is a second downstream).
pub fn start_snoopcast(lan: &Lan, args: &[&str]) -> Snoopcast {
    let dns = lan.downstream_ifs();
    let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
    start_snoopcast_with(lan, lan.upstream_if(), &dns, args)
}

/// The argv of `ip netns exec <box> snoopcast run ...` (without the leading "ip").
fn snoopcast_argv(lan: &Lan, upstream: &str, downstreams: &[&str], args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "netns".into(),
        "exec".into(),
        lan.box_ns(),
        snoopcast_bin(),
        "run".into(),
        "--upstream".into(),
        upstream.into(),
    ];
    for d in downstreams {
        argv.push("--downstream".into());
        argv.push(d.to_string());
    }
    argv.push("--control".into());
    argv.push(lan.control_path().to_str().unwrap().into());
    if !args.contains(&"--log-level") {
        argv.extend(["--log-level".into(), "debug".into()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// `start_snoopcast` with more environment for the daemon (e.g. NOTIFY_SOCKET), set on its
/// command only: the test process's environment is left alone.
pub fn start_snoopcast_env(lan: &Lan, env: &[(&str, &str)], args: &[&str]) -> Snoopcast {
    let dns = lan.downstream_ifs();
    let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
    let argv = snoopcast_argv(lan, lan.upstream_if(), &dns, args);
    spawn_snoopcast_env(lan, &argv, env)
}

/// Starts `snoopcast run --config <config> --control <lan.control_path()> --log-level debug
/// <args>` in the box (--log-level only when `args` has none) and waits until `status
/// --json` answers. No --upstream or --downstream: the file must name them (an option on
/// the command line would win over the file's, so a reload could never change them).
pub fn start_snoopcast_config(lan: &Lan, config: &Path, args: &[&str]) -> Snoopcast {
    assert_eq!(
        lan.box_mode,
        BoxMode::Snoopcast,
        "the box is a bridge in this LAN"
    );
    let mut argv: Vec<String> = vec![
        "netns".into(),
        "exec".into(),
        lan.box_ns(),
        snoopcast_bin(),
        "run".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
        "--control".into(),
        lan.control_path().to_str().unwrap().into(),
    ];
    if !args.contains(&"--log-level") {
        argv.extend(["--log-level".into(), "debug".into()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    spawn_snoopcast(lan, &argv)
}

/// Runs `snoopcast run` in the box with these interfaces (no --wait-for-interfaces unless
/// `args` has it) and waits up to `timeout` for it to exit: for the start-up errors.
pub fn run_snoopcast_once(
    lan: &Lan,
    upstream: &str,
    downstreams: &[&str],
    args: &[&str],
    timeout: Duration,
) -> CmdOutput {
    let argv = snoopcast_argv(lan, upstream, downstreams, args);
    let mut full = vec!["ip"];
    full.extend(argv.iter().map(String::as_str));
    exec(&full, timeout)
}

/// `start_snoopcast` with the upstream and downstream interfaces given.
pub fn start_snoopcast_with(
    lan: &Lan,
    upstream: &str,
    downstreams: &[&str],
    args: &[&str],
) -> Snoopcast {
    assert_eq!(
        lan.box_mode,
        BoxMode::Snoopcast,
        "the box is a bridge in this LAN"
    );
    let argv = snoopcast_argv(lan, upstream, downstreams, args);
    spawn_snoopcast(lan, &argv)
}

/// Runs `ip ARGV` (netns exec into the box, then snoopcast), logging to snoopcast.log, and
/// waits until its control socket answers.
fn spawn_snoopcast(lan: &Lan, argv: &[String]) -> Snoopcast {
    spawn_snoopcast_env(lan, argv, &[])
}

/// `spawn_snoopcast` with `env` added to the daemon's environment.
fn spawn_snoopcast_env(lan: &Lan, argv: &[String], env: &[(&str, &str)]) -> Snoopcast {
    let log = lan.dir.join("snoopcast.log");
    lan.add_log("snoopcast", &log);
    let file = File::create(&log).expect("create snoopcast.log");
    writeln!(&file, "# ip {}", argv.join(" ")).unwrap();
    let child = Command::new("ip")
        .args(argv)
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("spawn snoopcast");
    let mut daemon = Snoopcast { child, log };
    let mut last = String::new();
    let up = wait_until(Duration::from_secs(10), || {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("snoopcast exited at start with {status}");
        }
        match lan.try_status_json() {
            Ok(_) => true,
            Err(e) => {
                last = e;
                false
            }
        }
    });
    assert!(
        up,
        "snoopcast's control socket did not answer within 10 s: {last}"
    );
    daemon
}

impl Snoopcast {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. SIGHUP) to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        signal(&self.child, sig);
    }

    /// What the daemon has logged so far (snoopcast.log).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it with SIGTERM and asserts the contract: exit status 0 within 5 s.
    pub fn stop_ok(mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_child(&mut self.child, Duration::from_secs(5));
        assert!(
            status.is_some(),
            "snoopcast did not exit within 5 s of SIGTERM"
        );
        let status = status.unwrap();
        assert!(
            status.success(),
            "snoopcast exited with {status} after SIGTERM"
        );
    }
}

impl Drop for Snoopcast {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(3));
    }
}

// ------------------------------------------------------------------------------------------
// snoopcast under a wrapper (setpriv: another uid, chosen capabilities)
// ------------------------------------------------------------------------------------------

/// `start_snoopcast` with `wrapper` (e.g. `setpriv --reuid=N ... `) run in the box in front
/// of the binary: `ip netns exec <box> <wrapper...> snoopcast run ...`. The wrapper must
/// exec the binary, so the child's pid is the daemon's. Waits (as root) for `status`.
pub fn start_snoopcast_wrapped(lan: &Lan, wrapper: &[&str], args: &[&str]) -> Snoopcast {
    let dns = lan.downstream_ifs();
    let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
    let mut argv = snoopcast_argv(lan, lan.upstream_if(), &dns, args);
    // "netns exec <box>" then the wrapper, then the binary.
    for (k, w) in wrapper.iter().enumerate() {
        argv.insert(3 + k, w.to_string());
    }
    spawn_snoopcast(lan, &argv)
}

/// Resources of a process from /proc: resident and peak resident memory (VmRSS, VmHWM, in
/// KiB), open file descriptors and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

/// Samples `pid`; None when it no longer exists.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let count = |dir: String| fs::read_dir(dir).map(|d| d.count()).ok();
    Some(ProcSample {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        fds: count(format!("/proc/{pid}/fd"))?,
        threads: count(format!("/proc/{pid}/task"))?,
    })
}
