//! Shared harness of the netns end-to-end tests: builds the test LAN, runs the helpers and
//! snoopcast inside it, and tears everything down again (see tests/README.md).
//!
//! ```text
//!  [src] s0 --veth-- up0 [box] dn0 --veth-- p0 [sw: br0, dumb] p1..pN --veth-- eth0 [h1..hN]
//!                            dn1 --veth-- p0 [sw2: br0, dumb] p1..pM --veth-- eth0 [h(N+1)..]
//! ```
//!
//! The second downstream (`LanBuilder::downstream2_hosts`) is optional. Instead of the veth
//! to [src], the upstream can be a tun device `tun0` fed by tests/helpers/tun_source.py
//! (`LanBuilder::tun_upstream`) or a dummy `up0` with the sender on the box itself
//! (`LanBuilder::dummy_upstream`); there is no [src] namespace then.
//!
//! Every namespace is called `sc<tag>-<pid>-<role>`; interfaces are created directly inside
//! them, so nothing is ever added to the root namespace. `Lan` deletes its namespaces and
//! kills every process left inside them when it is dropped, also while a test panics.
#![allow(dead_code)]

use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The daemon under test (see `snoopcast_bin`).
pub const SNOOPCAST: &str = env!("CARGO_BIN_EXE_snoopcast");

/// The snoopcast binary the tests run: SNOOPCAST_E2E_BIN if set (e.g. a release build),
/// else the one cargo built for this test.
pub fn snoopcast_bin() -> String {
    std::env::var("SNOOPCAST_E2E_BIN").unwrap_or_else(|_| SNOOPCAST.to_string())
}
/// tests/helpers, holding host_agent.py and mcast_send.py.
pub const HELPERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers");
/// UDP port the senders and agents use.
pub const PORT: u16 = 5000;
/// The default timeout of a helper command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Fraction of sent datagrams that must arrive for a stream to count as delivered.
pub const DELIVERY: f64 = 0.98;

/// Skips (returns from) the test when not root; under CI=true it fails instead.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::have_root() {
            return;
        }
    };
}

/// True when running as root. Otherwise: panics under `CI=true` (CI must not skip
/// silently), else prints "skipped: needs root" and returns false.
pub fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("e2e tests need root (network namespaces, veth, bridges); CI=true, so this fails");
    }
    println!("skipped: needs root");
    false
}

/// The python3 that runs the helpers: Debian's /usr/bin/python3 when present.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

// ------------------------------------------------------------------------------------------
// Running commands
// ------------------------------------------------------------------------------------------

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

fn collect<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet (it cannot be reused).
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Stops a child: SIGTERM, then SIGKILL after `grace`. Returns its exit status.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
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

// ------------------------------------------------------------------------------------------
// The LAN
// ------------------------------------------------------------------------------------------

/// One receiver host of the LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// "h1", "h2", ...
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// eth0's address: 10.2.0.(10+k) behind dn0, 10.3.0.(10+k) behind dn1, where k is the
    /// host's place on its switch (1-based; for hosts behind dn0 k = i).
    pub ip: String,
    /// eth0's MAC: 02:5c:00:02:00:kk behind dn0, 02:5c:00:03:00:kk behind dn1.
    pub mac: String,
    /// Some(2) when the kernel is forced to IGMPv2 (force_igmp_version).
    pub igmp_version: Option<u8>,
    /// The box interface the host is behind: "dn0" or "dn1".
    pub downstream: String,
}

/// What the box namespace does between up0 and dn0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxMode {
    /// Nothing: snoopcast is started there (up0 has 10.1.0.2/24, dn0 no address).
    Snoopcast,
    /// A plain Linux bridge `brx` (no snooping) joins up0 and dn0: every frame floods.
    Bridge,
}

/// What the box's upstream interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// `up0` 10.1.0.2/24, a veth to `s0` in the src namespace, where the sender runs.
    Veth,
    /// `tun0` 10.9.0.1/24, an L3 tun device (no Ethernet header) created and fed by
    /// tests/helpers/tun_source.py in the box: its datagrams come from 10.9.0.2. No src
    /// namespace; `Lan::send` asks the helper.
    Tun,
    /// `up0` 10.1.0.2/24, a dummy device in the box with 239.0.0.0/8 and 224.0.0.0/4
    /// routed to it; the sender runs on the box itself (a local source; dummy offloads the
    /// UDP checksum, so the captured frames carry a partial one). No src namespace. Where
    /// the kernel has no dummy driver, up0 is an ifb, which behaves the same here (drops
    /// what it is given, NETIF_F_HW_CSUM).
    Dummy,
}

pub struct LanBuilder {
    tag: String,
    hosts: Vec<Option<u8>>,
    hosts2: Vec<Option<u8>>,
    box_mode: BoxMode,
    upstream: Upstream,
    ipv6: bool,
    src_addrs: Vec<String>,
    /// (host, version) for force_mld_version, set before the host's eth0 comes up.
    mld_versions: Vec<(usize, u8)>,
}

impl LanBuilder {
    /// `n` hosts h1..hn with the kernel's default IGMP version (3).
    pub fn hosts(mut self, n: usize) -> Self {
        assert!((1..=100).contains(&n), "1..=100 hosts");
        self.hosts = vec![None; n];
        self
    }

    /// A second downstream: the box gets `dn1` (MAC 02:5c:00:01:00:04) leading to a second
    /// dumb switch (namespace role `sw2`) with `n` hosts. They are numbered after dn0's
    /// hosts: with `.hosts(2).downstream2_hosts(3)`, h3..h5 are behind dn1, with addresses
    /// 10.3.0.11..13.
    pub fn downstream2_hosts(mut self, n: usize) -> Self {
        assert!((1..=100).contains(&n), "1..=100 hosts");
        self.hosts2 = vec![None; n];
        self
    }

    /// Forces host `i` (1-based, dn0's hosts first, then dn1's) to IGMP version `v` via
    /// force_igmp_version. Call it after `hosts` and `downstream2_hosts`.
    pub fn igmp_version(mut self, i: usize, v: u8) -> Self {
        let n = self.hosts.len();
        assert!((1..=n + self.hosts2.len()).contains(&i), "no host h{i}");
        assert!((1..=3).contains(&v));
        if i <= n {
            self.hosts[i - 1] = Some(v);
        } else {
            self.hosts2[i - 1 - n] = Some(v);
        }
        self
    }

    /// The upstream is `tun0`, fed by tests/helpers/tun_source.py (see `Upstream::Tun`).
    pub fn tun_upstream(mut self) -> Self {
        self.upstream = Upstream::Tun;
        self
    }

    /// The upstream is a dummy `up0` with a local sender (see `Upstream::Dummy`).
    pub fn dummy_upstream(mut self) -> Self {
        self.upstream = Upstream::Dummy;
        self
    }

    /// A plain bridge in the box instead of snoopcast (the flooding baseline).
    pub fn bridge_box(mut self) -> Self {
        self.box_mode = BoxMode::Bridge;
        self
    }

    /// Another address on s0 (e.g. "10.1.0.3/24"), for a second multicast source.
    pub fn src_addr(mut self, cidr: &str) -> Self {
        self.src_addrs.push(cidr.to_string());
        self
    }

    /// Leave IPv6 enabled (off by default so MLD and router solicitations stay quiet).
    /// With it: s0 fd00:1::1/64, the box's up0 fd00:1::2/64 (snoopcast box), hosts and dn0
    /// with their link-local addresses only, DAD off everywhere (addresses usable at once),
    /// no router solicitations; the switches keep IPv6 off (a dumb switch has no IP stack).
    /// Extra IPv6 source addresses: `src_addr("fd00:1::9/64")`.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Forces host `i`'s kernel to MLD version `v` (1 or 2) via
    /// net.ipv6.conf.eth0.force_mld_version (needs `.ipv6(true)`).
    pub fn mld_version(mut self, i: usize, v: u8) -> Self {
        assert!(
            (1..=self.hosts.len() + self.hosts2.len()).contains(&i),
            "no host h{i}"
        );
        assert!((1..=2).contains(&v), "MLD version 1 or 2");
        self.mld_versions.push((i, v));
        self
    }

    pub fn build(self) -> Lan {
        let lock = global_lock();
        remove_stale_namespaces();
        let prefix = format!("sc{}-{}", self.tag, std::process::id());
        let dir = std::env::temp_dir().join(format!("snoopcast-e2e-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test's temp dir");
        assert!(
            self.upstream == Upstream::Veth || self.box_mode == BoxMode::Snoopcast,
            "the bridge box needs the veth upstream"
        );
        let mut lan = Lan {
            prefix,
            box_mode: self.box_mode,
            upstream: self.upstream,
            downstreams: if self.hosts2.is_empty() { 1 } else { 2 },
            tun: Mutex::new(None),
            hosts: Vec::new(),
            namespaces: Vec::new(),
            dir,
            logs: Mutex::new(Vec::new()),
            _lock: lock,
        };
        lan.setup(&self);
        lan
    }
}

/// The test LAN. Dropping it kills everything inside its namespaces and deletes them.
pub struct Lan {
    /// `sc<tag>-<pid>`: every namespace of this LAN starts with it.
    pub prefix: String,
    pub box_mode: BoxMode,
    pub upstream: Upstream,
    /// 1 (dn0) or 2 (dn0 and dn1).
    pub downstreams: usize,
    /// The helper behind tun0 (`Upstream::Tun`).
    tun: Mutex<Option<TunSource>>,
    pub hosts: Vec<Host>,
    namespaces: Vec<String>,
    /// Per-test temp dir: logs and the control socket.
    pub dir: PathBuf,
    logs: Mutex<Vec<(String, PathBuf)>>,
    _lock: Option<File>,
}

impl Lan {
    /// `tag`: a short [a-z0-9] name unique among the tests (namespace names carry it).
    pub fn builder(tag: &str) -> LanBuilder {
        assert!(
            !tag.is_empty()
                && tag.len() <= 10
                && tag
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "tag must be 1-10 chars of [a-z0-9]: {tag:?}"
        );
        LanBuilder {
            tag: tag.to_string(),
            hosts: vec![None; 3],
            hosts2: Vec::new(),
            box_mode: BoxMode::Snoopcast,
            upstream: Upstream::Veth,
            ipv6: false,
            src_addrs: Vec::new(),
            mld_versions: Vec::new(),
        }
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
    pub fn src_ns(&self) -> String {
        self.ns("src")
    }
    pub fn box_ns(&self) -> String {
        self.ns("box")
    }
    pub fn sw_ns(&self) -> String {
        self.ns("sw")
    }
    /// The switch behind dn1.
    pub fn sw2_ns(&self) -> String {
        self.ns("sw2")
    }
    /// The switch behind downstream `d` (0: dn0, 1: dn1).
    pub fn sw_ns_of(&self, d: usize) -> String {
        if d == 0 {
            self.sw_ns()
        } else {
            self.ns(&format!("sw{}", d + 1))
        }
    }
    /// The upstream interface's name: "up0", or "tun0" for a tun upstream.
    pub fn upstream_if(&self) -> &'static str {
        match self.upstream {
            Upstream::Tun => "tun0",
            Upstream::Veth | Upstream::Dummy => "up0",
        }
    }
    /// The downstream interfaces: ["dn0"] or ["dn0", "dn1"].
    pub fn downstream_ifs(&self) -> Vec<String> {
        (0..self.downstreams).map(|d| format!("dn{d}")).collect()
    }
    /// The 1-based numbers of the hosts behind `dn` ("dn0" or "dn1").
    pub fn hosts_on(&self, dn: &str) -> Vec<usize> {
        (1..=self.hosts.len())
            .filter(|&i| self.host(i).downstream == dn)
            .collect()
    }
    /// Host `i`, 1-based.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }
    /// Where snoopcast's control socket is put by `start_snoopcast`.
    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Registers a file to print when the test fails.
    pub fn add_log(&self, label: &str, path: &Path) {
        self.logs
            .lock()
            .unwrap()
            .push((label.to_string(), path.to_path_buf()));
    }

    fn add_ns(&mut self, role: &str, ipv6: bool) -> String {
        let ns = self.ns(role);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        if !ipv6 {
            // Before any veth exists, so none of them starts IPv6 (no MLD, no RS noise).
            ns_sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", "1");
            ns_sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", "1");
        } else {
            // No duplicate address detection: link-local addresses are usable (and MLD
            // reports carry them, RFC 3810 5.2.13) the moment a link is up; no router
            // solicitations (noise).
            for conf in ["all", "default"] {
                ns_sysctl(&ns, &format!("net.ipv6.conf.{conf}.accept_dad"), "0");
                ns_sysctl(
                    &ns,
                    &format!("net.ipv6.conf.{conf}.router_solicitations"),
                    "0",
                );
            }
        }
        ns_sysctl(&ns, "net.ipv4.conf.all.rp_filter", "0");
        ns_sysctl(&ns, "net.ipv4.conf.default.rp_filter", "0");
        ns
    }

    fn setup(&mut self, b: &LanBuilder) {
        let src = (self.upstream == Upstream::Veth).then(|| self.add_ns("src", b.ipv6));
        let bx = self.add_ns("box", b.ipv6);
        let ip = |ns: &str, args: &[&str]| {
            let mut argv = vec!["ip", "-n", ns];
            argv.extend_from_slice(args);
            run(&argv);
        };

        match (self.upstream, &src) {
            (Upstream::Veth, Some(src)) => {
                // src <-> box
                run(&[
                    "ip", "link", "add", "s0", "netns", src, "type", "veth", "peer", "name", "up0",
                    "netns", &bx,
                ]);
                ip(src, &["link", "set", "s0", "address", "02:5c:00:01:00:01"]);
                ip(&bx, &["link", "set", "up0", "address", "02:5c:00:01:00:02"]);
                ip(src, &["addr", "add", "10.1.0.1/24", "dev", "s0"]);
                for cidr in &b.src_addrs {
                    if cidr.contains(':') {
                        ip(src, &["addr", "add", cidr, "dev", "s0", "nodad"]);
                    } else {
                        ip(src, &["addr", "add", cidr, "dev", "s0"]);
                    }
                }
                if b.ipv6 {
                    ip(src, &["addr", "add", "fd00:1::1/64", "dev", "s0", "nodad"]);
                }
                ip(src, &["link", "set", "s0", "up"]);
                ip(src, &["route", "add", "224.0.0.0/4", "dev", "s0"]);
                // veth leaves the UDP checksum to "hardware": a frame captured and re-sent by
                // snoopcast would then carry a wrong checksum and hosts drop it silently.
                if exec(&["sh", "-c", "command -v ethtool"], CMD_TIMEOUT).ok() {
                    ns_run(src, &["ethtool", "-K", "s0", "tx", "off"]);
                } else {
                    panic!("ethtool is missing (apt-get install ethtool, or run tests/run.sh)");
                }
                if self.box_mode == BoxMode::Snoopcast {
                    ip(&bx, &["addr", "add", "10.1.0.2/24", "dev", "up0"]);
                    if b.ipv6 {
                        ip(&bx, &["addr", "add", "fd00:1::2/64", "dev", "up0", "nodad"]);
                    }
                }
            }
            (Upstream::Dummy, _) => {
                // A local source: the sender runs here and its datagrams leave through up0
                // with the UDP checksum left to "hardware" (no ethtool: that is the point).
                // Kernels without the dummy driver (this VM's) get an ifb: a black hole too,
                // Ethernet, and with the same checksum offload (NETIF_F_HW_CSUM).
                let dummy = ns_exec(
                    &bx,
                    &[
                        "ip",
                        "link",
                        "add",
                        "up0",
                        "address",
                        "02:5c:00:01:00:02",
                        "type",
                        "dummy",
                    ],
                    CMD_TIMEOUT,
                );
                if !dummy.ok() {
                    eprintln!(
                        "no dummy device ({}); up0 is an ifb instead",
                        dummy.stderr.trim()
                    );
                    // (ifb cannot change its MAC later: it is given at creation.)
                    ip(
                        &bx,
                        &[
                            "link",
                            "add",
                            "up0",
                            "address",
                            "02:5c:00:01:00:02",
                            "type",
                            "ifb",
                        ],
                    );
                }
                ip(&bx, &["link", "set", "up0", "multicast", "on"]);
                ip(&bx, &["addr", "add", "10.1.0.2/24", "dev", "up0"]);
                if b.ipv6 {
                    ip(&bx, &["addr", "add", "fd00:1::2/64", "dev", "up0", "nodad"]);
                }
            }
            (Upstream::Tun, _) => {
                // tun_source.py creates tun0 (10.9.0.1/24) and brings it up; the tun device
                // lives as long as the helper holds it open.
                *self.tun.lock().unwrap() = Some(TunSource::start(self, &bx));
            }
            (Upstream::Veth, None) => unreachable!("a veth upstream has a src namespace"),
        }
        if self.box_mode == BoxMode::Bridge {
            ip(
                &bx,
                &[
                    "link",
                    "add",
                    "brx",
                    "type",
                    "bridge",
                    "mcast_snooping",
                    "0",
                ],
            );
            ip(&bx, &["link", "set", "up0", "master", "brx"]);
            ip(&bx, &["link", "set", "brx", "up"]);
        }
        if self.upstream != Upstream::Tun {
            ip(&bx, &["link", "set", "up0", "up"]);
        }
        if self.upstream == Upstream::Dummy {
            ip(&bx, &["route", "add", "239.0.0.0/8", "dev", "up0"]);
            ip(&bx, &["route", "add", "224.0.0.0/4", "dev", "up0"]);
        }

        self.add_downstream(0, &b.hosts, b.ipv6, &b.mld_versions);
        if !b.hosts2.is_empty() {
            self.add_downstream(1, &b.hosts2, b.ipv6, &b.mld_versions);
        }
        self.wait_links_up();
        if b.ipv6 {
            self.wait_ipv6_ready();
        }
    }

    /// Downstream `d` (0 or 1): the box's `dn<d>`, a veth to port p0 of a dumb switch (a
    /// bridge without snooping, in namespace sw or sw2) and `hosts.len()` hosts on p1.., each
    /// forced to the IGMP version given (None: the kernel's default), and to the MLD
    /// version `mld` gives for its number, if any (before eth0 is up, so even the first
    /// reports have that version).
    fn add_downstream(&mut self, d: usize, hosts: &[Option<u8>], ipv6: bool, mld: &[(usize, u8)]) {
        let dn = format!("dn{d}");
        let sw_role = if d == 0 {
            "sw".to_string()
        } else {
            format!("sw{}", d + 1)
        };
        // A dumb switch has no IP stack: IPv6 stays off there even in IPv6 LANs.
        let sw = self.add_ns(&sw_role, false);
        let ip = |ns: &str, args: &[&str]| {
            let mut argv = vec!["ip", "-n", ns];
            argv.extend_from_slice(args);
            run(&argv);
        };

        // box <-> sw
        self.add_downstream_link(d);

        // the dumb switch
        ip(
            &sw,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        );
        ip(&sw, &["link", "set", "p0", "master", "br0"]);
        ip(&sw, &["link", "set", "p0", "up"]);

        for (idx, version) in hosts.iter().enumerate() {
            let k = idx + 1;
            let i = self.hosts.len() + 1;
            let name = format!("h{i}");
            let ns = self.add_ns(&name, ipv6);
            let port = format!("p{k}");
            let mac = format!("02:5c:00:{:02x}:00:{k:02x}", 2 + d);
            let addr = format!("10.{}.0.{}", 2 + d, 10 + k);
            run(&[
                "ip", "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&sw, &["link", "set", &port, "master", "br0"]);
            ip(&sw, &["link", "set", &port, "up"]);
            ip(&ns, &["link", "set", "eth0", "address", &mac]);
            ns_sysctl(&ns, "net.ipv4.conf.eth0.rp_filter", "0");
            if let Some(v) = version {
                ns_sysctl(&ns, "net.ipv4.conf.eth0.force_igmp_version", &v.to_string());
            }
            if let Some(&(_, v)) = mld.iter().find(|&&(h, _)| h == i).filter(|_| ipv6) {
                ns_sysctl(&ns, "net.ipv6.conf.eth0.force_mld_version", &v.to_string());
            }
            ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&ns, &["link", "set", "eth0", "up"]);
            ip(&ns, &["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            self.hosts.push(Host {
                name,
                ns,
                ip: addr,
                mac,
                igmp_version: *version,
                downstream: dn.clone(),
            });
        }
        ip(&sw, &["link", "set", "br0", "up"]);
    }

    /// The veth pair `dn<d>` (box) -- `p0` (its switch), dn<d> with MAC 02:5c:00:01:00:0(3+d),
    /// up (and in brx for the bridge box). p0 is left to the caller.
    fn add_downstream_link(&self, d: usize) {
        let (bx, sw) = (self.box_ns(), self.sw_ns_of(d));
        let dn = format!("dn{d}");
        run(&[
            "ip", "link", "add", &dn, "netns", &bx, "type", "veth", "peer", "name", "p0", "netns",
            &sw,
        ]);
        let mac = format!("02:5c:00:01:00:{:02x}", 3 + d);
        run(&["ip", "-n", &bx, "link", "set", &dn, "address", &mac]);
        if self.box_mode == BoxMode::Bridge {
            run(&["ip", "-n", &bx, "link", "set", &dn, "master", "brx"]);
        }
        run(&["ip", "-n", &bx, "link", "set", &dn, "up"]);
    }

    /// Deletes the box's `dn<d>` (`ip link del` in the box), which also removes the switch's
    /// port p0: the downstream vanishes.
    pub fn delete_downstream(&self, d: usize) {
        ns_run(&self.box_ns(), &["ip", "link", "del", &format!("dn{d}")]);
    }

    /// Creates the box's `dn<d>` again after `delete_downstream`: a new veth pair, p0 back
    /// in its switch's bridge, and waits until the links are up.
    pub fn recreate_downstream(&self, d: usize) {
        self.add_downstream_link(d);
        let sw = self.sw_ns_of(d);
        run(&["ip", "-n", &sw, "link", "set", "p0", "master", "br0"]);
        run(&["ip", "-n", &sw, "link", "set", "p0", "up"]);
        self.wait_links_up();
    }

    /// `ip link set IFACE up|down` in the box.
    pub fn set_box_link(&self, iface: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ns_run(&self.box_ns(), &["ip", "link", "set", iface, state]);
    }

    /// The groups the box's kernel has joined on `iface` (from /proc/net/igmp, 224.0.0.x left
    /// out), each with its number of users (sockets holding it), in the kernel's order.
    pub fn kernel_groups(&self, iface: &str) -> Vec<(String, u32)> {
        let text = ns_run(&self.box_ns(), &["cat", "/proc/net/igmp"]);
        let mut out = Vec::new();
        let mut in_iface = false;
        for line in text.lines() {
            if !line.starts_with('\t') && !line.starts_with(' ') {
                // "Idx\tDevice    : Count Querier" header or "3\tup0       :     2      V3"
                in_iface = line.split_whitespace().nth(1) == Some(iface);
                continue;
            }
            if !in_iface {
                continue;
            }
            // "\t\t\t\t010101EF     1 0:00000000\t\t0": group (network order read as a
            // host integer, in hex), users, timer, reporter.
            let mut words = line.split_whitespace();
            let (Some(hex), Some(users)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(v) = u32::from_str_radix(hex, 16) else {
                continue;
            };
            let a = std::net::Ipv4Addr::from(u32::from_be(v));
            let o = a.octets();
            if o[0] == 224 && o[1] == 0 && o[2] == 0 {
                continue;
            }
            out.push((a.to_string(), users.parse().unwrap_or(0)));
        }
        out
    }

    /// Waits until every interface but lo is operationally up. Carrier changes are applied
    /// by the kernel's linkwatch, up to a second later; until then the device still has the
    /// noop qdisc (which drops everything) and bridge ports do not forward yet. The tun and
    /// dummy upstreams have no carrier state: "UNKNOWN" with the UP flag counts as up there.
    pub fn wait_links_up(&self) {
        let bx = self.box_ns();
        let soft = match self.upstream {
            Upstream::Veth => "",
            Upstream::Tun => "tun0",
            Upstream::Dummy => "up0",
        };
        let mut down = Vec::new();
        let ok = wait_until(Duration::from_secs(10), || {
            down.clear();
            for ns in &self.namespaces {
                let out = run(&["ip", "-n", ns, "-o", "link", "show"]);
                for line in out.lines() {
                    let name = line.split(": ").nth(1).unwrap_or("").split('@').next();
                    let name = name.unwrap_or("");
                    let flags = line
                        .split('<')
                        .nth(1)
                        .and_then(|f| f.split('>').next())
                        .unwrap_or("");
                    let admin_up = flags.split(',').any(|f| f == "UP");
                    let up = line.contains(" state UP ")
                        || (*ns == bx
                            && name == soft
                            && admin_up
                            && line.contains(" state UNKNOWN "));
                    if name != "lo" && !up {
                        down.push(format!("{ns}/{name}"));
                    }
                }
            }
            down.is_empty()
        });
        assert!(ok, "links not up after 10 s: {down:?}");
    }

    // -- helpers ---------------------------------------------------------------------------

    /// Starts host_agent.py in host `i` (1-based) joined to `joins` (G or G@S) and waits for
    /// it to be ready (joined and capturing).
    pub fn start_agent(&self, i: usize, joins: &[&str]) -> Agent {
        self.start_agent_for(i, joins, Duration::from_secs(300))
    }

    /// `start_agent` for an agent that exits by itself after `duration` (not 300 s).
    pub fn start_agent_for(&self, i: usize, joins: &[&str], duration: Duration) -> Agent {
        self.start_agent_on(self.host(i).clone(), "eth0", joins, duration)
    }

    /// `start_agent_for` with any namespace and interface: `host.ns`, `iface` (e.g. the
    /// box's up0, to see what arrives upstream and join there through the kernel).
    pub fn start_agent_on(
        &self,
        host: Host,
        iface: &str,
        joins: &[&str],
        duration: Duration,
    ) -> Agent {
        let duration = duration.as_secs().max(1).to_string();
        let script = format!("{HELPERS}/host_agent.py");
        let port = PORT.to_string();
        let mut argv: Vec<&str> = vec![
            "netns",
            "exec",
            &host.ns,
            python(),
            &script,
            "--iface",
            iface,
            "--port",
            &port,
            "--duration",
            &duration,
            "--name",
            &host.name,
        ];
        for j in joins {
            argv.push("--join");
            argv.push(j);
        }
        let log = self.dir.join(format!("agent-{}.stderr", host.name));
        self.add_log(&format!("agent {} stderr", host.name), &log);
        let mut child = Command::new("ip")
            .args(&argv)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("agent log"))
            .spawn()
            .expect("spawn host_agent.py");
        let stdin = child.stdin.take().unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        let mut agent = Agent {
            host,
            child,
            stdin,
            lines,
            log,
        };
        agent.expect_line(|l| l == "ready", Duration::from_secs(10), "ready");
        agent
    }

    /// Starts mcast_send.py in the src namespace; `args` are its options beyond --iface s0
    /// (e.g. ["--group", G, "--count", "800", "--rate", "400"]). With the dummy upstream it
    /// runs in the box with --iface up0 (a local source). A tun upstream has no sender
    /// process: use `send`.
    pub fn spawn_sender(&self, args: &[&str]) -> Sender {
        let script = format!("{HELPERS}/mcast_send.py");
        let (ns, iface) = match self.upstream {
            Upstream::Veth => (self.src_ns(), "s0"),
            Upstream::Dummy => (self.box_ns(), "up0"),
            Upstream::Tun => panic!("spawn_sender: the tun upstream is fed by Lan::send"),
        };
        let port = PORT.to_string();
        let mut argv: Vec<&str> = vec![
            "netns",
            "exec",
            &ns,
            python(),
            &script,
            "--iface",
            iface,
            "--port",
            &port,
        ];
        argv.extend_from_slice(args);
        let mut child = Command::new("ip")
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcast_send.py");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Sender {
            child,
            out: Some(out),
            err: Some(err),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Sends and waits for the sender to finish (timeout 120 s). With the tun upstream,
    /// tun_source.py writes the datagrams into tun0 (same options: --group, --count,
    /// --rate, --size, --ttl).
    pub fn send(&self, args: &[&str]) -> SendReport {
        if self.upstream == Upstream::Tun {
            let mut tun = self.tun.lock().unwrap();
            let tun = tun.as_mut().expect("the tun helper is running");
            return tun.send(args, Duration::from_secs(120));
        }
        self.spawn_sender(args).wait(Duration::from_secs(120))
    }

    /// `snoopcast status --json` in the box namespace, parsed; Err if it failed.
    pub fn try_status_json(&self) -> Result<Value, String> {
        let ctl = self.control_path();
        let out = ns_exec(
            &self.box_ns(),
            &[
                &snoopcast_bin(),
                "status",
                "--control",
                ctl.to_str().unwrap(),
                "--json",
            ],
            Duration::from_secs(5),
        );
        if !out.ok() {
            return Err(format!("status failed ({}): {}", out.status, out.stderr));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// `snoopcast status --json`, parsed; panics if it fails.
    pub fn status_json(&self) -> Value {
        self.try_status_json().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Makes host `i` silent for IGMP: a tc clsact egress filter on its eth0 drops every
    /// outgoing IPv4 frame with protocol 2. The kernel keeps its memberships (the socket
    /// still receives) and keeps trying to answer queries, but nothing reaches the wire,
    /// so the host looks exactly like one that vanished without a leave. The filter is a
    /// classic BPF program (iproute2 only, no nft/iptables, no act_gact module):
    ///   ldb [23]; jeq #2, drop, pass; drop: ret #2 (TC_ACT_SHOT); pass: ret #0 (TC_ACT_OK)
    /// Offset 23 = 14 (Ethernet) + 9 (IPv4 protocol); tc egress sees the Ethernet header.
    pub fn block_igmp_out(&self, i: usize) {
        self.drop_egress(
            i,
            "IGMP",
            ("ip", "1", "4,48 0 0 23,21 0 1 2,6 0 0 2,6 0 0 0"),
            "add table ip sc; add chain ip sc out { type filter hook output priority 0; }; \
             add rule ip sc out ip protocol igmp drop",
        );
    }

    /// Drop host `i`'s outgoing `what` at tc egress on eth0 (a clsact qdisc, shared by every
    /// such filter, and a classic BPF `filter` = (protocol, prio, bytecode)), or with the
    /// nftables `nft` script where the tc classifier is missing from the kernel.
    fn drop_egress(&self, i: usize, what: &str, filter: (&str, &str, &str), nft: &str) {
        let ns = &self.host(i).ns;
        let (protocol, prio, bytecode) = filter;
        // The qdisc may exist already (another drop_egress); the filter is what matters.
        let _ = ns_exec(
            ns,
            &["tc", "qdisc", "add", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let tc = ns_exec(
            ns,
            &[
                "tc", "filter", "add", "dev", "eth0", "egress", "protocol", protocol, "prio", prio,
                "bpf", "da", "bytecode", bytecode,
            ],
            CMD_TIMEOUT,
        );
        if tc.ok() {
            return;
        }
        let fallback = ns_exec(ns, &["nft", nft], CMD_TIMEOUT);
        assert!(
            fallback.ok(),
            "cannot block outgoing {what} on {ns}: tc: {} nft: {}",
            tc.stderr,
            fallback.stderr
        );
    }

    fn print_logs(&self) {
        for (label, path) in self.logs.lock().unwrap().iter() {
            let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(300);
            eprintln!(
                "----- {label}: {} ({} lines) -----",
                path.display(),
                lines.len()
            );
            if skip > 0 {
                eprintln!("... {skip} earlier lines left out");
            }
            for l in &lines[skip..] {
                eprintln!("{l}");
            }
        }
        eprintln!("----- end of logs; kept in {} -----", self.dir.display());
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let failed = thread::panicking();
        if failed {
            self.print_logs();
        }
        for ns in self.namespaces.iter().rev() {
            kill_ns_processes(ns);
        }
        for ns in self.namespaces.iter().rev() {
            let out = Command::new("ip").args(["netns", "delete", ns]).output();
            if !matches!(&out, Ok(o) if o.status.success()) {
                eprintln!("warning: could not delete netns {ns}: {out:?}");
            }
        }
        if !failed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// SIGKILLs every process inside `ns` (all of them were started by this harness) and waits
/// briefly for them to go, so the namespace and its veths really disappear.
fn kill_ns_processes(ns: &str) {
    let pids = |ns: &str| -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let me = std::process::id() as i32;
    for pid in pids(ns) {
        if pid != me {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    wait_until(Duration::from_secs(2), || pids(ns).is_empty());
}

/// Deletes namespaces `sc<tag>-<pid>-<role>` left by test processes that no longer exist
/// (a test binary killed with SIGKILL cannot run its Drop).
pub fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let mut parts = name.splitn(3, '-');
        let (Some(head), Some(pid), Some(role)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let ours = matches!(role, "src" | "box" | "sw" | "sw2")
            || (role.len() > 1 && role.starts_with('h') && role[1..].parse::<u32>().is_ok());
        if !ours {
            continue;
        }
        if !head.starts_with("sc")
            || head == "scdemo"
            || Path::new(&format!("/proc/{pid}")).exists()
        {
            continue;
        }
        eprintln!("removing stale namespace {name} (pid {pid} is gone)");
        kill_ns_processes(name);
        let _ = Command::new("ip").args(["netns", "delete", name]).status();
    }
}

/// One e2e LAN at a time on this machine (2 cores: parallel LANs made the timing-sensitive
/// checks noisy). An flock on a file in the temp dir, held for the Lan's lifetime; it also
/// serialises separate test binaries. SNOOPCAST_E2E_PARALLEL=1 turns it off.
pub fn global_lock() -> Option<File> {
    if std::env::var("SNOOPCAST_E2E_PARALLEL")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        return None;
    }
    let path = std::env::temp_dir().join("snoopcast-e2e.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the e2e lock file");
    // SAFETY: flock(2) on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        eprintln!(
            "waiting for {} (another e2e test is running)",
            path.display()
        );
        // SAFETY: as above.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
    }
    Some(file)
}

// ------------------------------------------------------------------------------------------
// snoopcast
// ------------------------------------------------------------------------------------------

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
    let log = lan.dir.join("snoopcast.log");
    lan.add_log("snoopcast", &log);
    let file = File::create(&log).expect("create snoopcast.log");
    writeln!(&file, "# ip {}", argv.join(" ")).unwrap();
    let child = Command::new("ip")
        .args(argv)
        .env("RUST_BACKTRACE", "1")
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
// status --json
// ------------------------------------------------------------------------------------------

/// The member entries of `group` in a status snapshot (empty if the group is not listed).
pub fn members(status: &Value, group: &str) -> Vec<Value> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["group"] == group)
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// How many members `status` lists, over all groups.
pub fn member_count(status: &Value) -> usize {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["members"].as_array().map_or(0, Vec::len))
        .sum()
}

/// The member entry of `host` in `group`, matched by MAC.
pub fn member(status: &Value, group: &str, host: &Host) -> Option<Value> {
    members(status, group)
        .into_iter()
        .find(|m| m["mac"].as_str().map(|s| s.eq_ignore_ascii_case(&host.mac)) == Some(true))
}

pub fn is_member(status: &Value, group: &str, host: &Host) -> bool {
    member(status, group, host).is_some()
}

/// Groups the status lists `host` in.
pub fn groups_of(status: &Value, host: &Host) -> Vec<String> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| {
            g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mac"].as_str().map(|s| s.eq_ignore_ascii_case(&host.mac)) == Some(true))
        })
        .filter_map(|g| g["group"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `status --json` satisfies `cond`; panics with the last snapshot if not.
pub fn wait_for_status(lan: &Lan, timeout: Duration, what: &str, cond: impl Fn(&Value) -> bool) {
    let mut last = Value::Null;
    let ok = wait_until(timeout, || match lan.try_status_json() {
        Ok(v) => {
            let hit = cond(&v);
            last = v;
            hit
        }
        Err(e) => {
            last = Value::String(e);
            false
        }
    });
    assert!(
        ok,
        "timed out after {timeout:?} waiting for: {what}\nlast status: {last:#}"
    );
}

// ------------------------------------------------------------------------------------------
// Agents and senders
// ------------------------------------------------------------------------------------------

/// A running host_agent.py (see tests/helpers/host_agent.py for its protocol).
pub struct Agent {
    pub host: Host,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pub log: PathBuf,
}

impl Agent {
    fn expect_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
        what: &str,
    ) -> String {
        let (child, log) = (&mut self.child, &self.log);
        expect_line(
            &self.lines,
            &format!("agent {}", self.host.name),
            pred,
            timeout,
            what,
            || {
                let status = child.wait().ok();
                format!(
                    "exit {status:?}; stderr:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                )
            },
        )
    }

    /// Sends one command (`join SPEC`, `leave SPEC`, `mark`) and waits for its `ok`.
    pub fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to agent");
        self.stdin.flush().expect("flush agent stdin");
        let ok = format!("ok {cmd}");
        self.expect_line(|l| l == ok, Duration::from_secs(5), &ok);
    }

    pub fn join(&mut self, spec: &str) {
        self.command(&format!("join {spec}"));
    }
    pub fn leave(&mut self, spec: &str) {
        self.command(&format!("leave {spec}"));
    }
    /// Zeroes the agent's `since_mark` counters.
    pub fn mark(&mut self) {
        self.command("mark");
    }

    /// The counts so far; the agent keeps running.
    pub fn report(&mut self) -> AgentReport {
        writeln!(self.stdin, "report").expect("write to agent");
        self.stdin.flush().expect("flush agent stdin");
        let line = self.expect_line(|l| l.starts_with('{'), Duration::from_secs(5), "report");
        self.expect_line(|l| l == "ok report", Duration::from_secs(5), "ok report");
        AgentReport::parse(&self.host, &line)
    }

    /// Stops the agent (SIGTERM) and returns its final counts.
    pub fn finish(mut self) -> AgentReport {
        signal(&self.child, libc::SIGTERM);
        let line = self.expect_line(|l| l.starts_with('{'), Duration::from_secs(10), "result");
        AgentReport::parse(&self.host, &line)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Frame classes counted by the agent.
pub const UNICAST: &str = "unicast_to_me";
pub const MULTICAST: &str = "multicast";
pub const OTHER: &str = "other";

/// An agent's JSON result with accessors. Counts of absent keys are 0.
#[derive(Debug, Clone)]
pub struct AgentReport {
    pub host: Host,
    pub json: Value,
}

impl AgentReport {
    fn parse(host: &Host, line: &str) -> AgentReport {
        let json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("agent {}: bad JSON ({e}): {line}", host.name));
        AgentReport {
            host: host.clone(),
            json,
        }
    }

    fn sum(table: &Value, group: &str, source: Option<&str>, key: Option<&str>) -> u64 {
        let Some(per_source) = table[group].as_object() else {
            return 0;
        };
        per_source
            .iter()
            .filter(|(s, _)| source.map_or(true, |want| want == s.as_str()))
            .map(|(_, counts)| match key {
                Some(k) => counts[k].as_u64().unwrap_or(0),
                None => counts
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0),
            })
            .sum()
    }

    /// Frames of `group` of one class (UNICAST, MULTICAST, OTHER), all sources.
    pub fn frames(&self, group: &str, class: &str) -> u64 {
        Self::sum(&self.json["frames"], group, None, Some(class))
    }
    /// Frames of `group` from `source` of one class.
    pub fn frames_from(&self, group: &str, source: &str, class: &str) -> u64 {
        Self::sum(&self.json["frames"], group, Some(source), Some(class))
    }
    /// Frames of `group` of any class.
    pub fn frames_any(&self, group: &str) -> u64 {
        Self::sum(&self.json["frames"], group, None, None)
    }
    /// Frames of `group` from `source` of any class.
    pub fn frames_any_from(&self, group: &str, source: &str) -> u64 {
        Self::sum(&self.json["frames"], group, Some(source), None)
    }
    /// Frames of `group` of any class since the last `mark`.
    pub fn since_mark(&self, group: &str) -> u64 {
        Self::sum(&self.json["since_mark"], group, None, None)
    }
    pub fn since_mark_class(&self, group: &str, class: &str) -> u64 {
        Self::sum(&self.json["since_mark"], group, None, Some(class))
    }
    /// Intact datagrams of `group` received on the agent's socket, all sources.
    pub fn sock_ok(&self, group: &str) -> u64 {
        Self::sum(&self.json["socket"], group, None, Some("ok"))
    }
    pub fn sock_ok_from(&self, group: &str, source: &str) -> u64 {
        Self::sum(&self.json["socket"], group, Some(source), Some("ok"))
    }
    /// Datagrams of `group` from `source` on the socket, intact or not.
    pub fn sock_any_from(&self, group: &str, source: &str) -> u64 {
        Self::sum(&self.json["socket"], group, Some(source), None)
    }
    /// Corrupt or duplicate datagrams over all groups.
    pub fn sock_bad_or_dup(&self) -> u64 {
        self.json["socket"]
            .as_object()
            .into_iter()
            .flat_map(|groups| groups.keys())
            .map(|g| {
                Self::sum(&self.json["socket"], g, None, Some("bad"))
                    + Self::sum(&self.json["socket"], g, None, Some("dup"))
            })
            .sum()
    }
    /// Groups that any frame arrived for.
    pub fn groups_seen(&self) -> Vec<String> {
        self.json["frames"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }
    pub fn igmp_out(&self) -> u64 {
        self.json["igmp_out"].as_u64().unwrap_or(0)
    }
    pub fn igmp_in(&self) -> u64 {
        self.json["igmp_in"].as_u64().unwrap_or(0)
    }
    pub fn igmp_out_since_mark(&self) -> u64 {
        self.json["igmp_out_since_mark"].as_u64().unwrap_or(0)
    }
    pub fn mac(&self) -> &str {
        self.json["mac"].as_str().unwrap_or("")
    }
}

/// A running mcast_send.py.
pub struct Sender {
    child: Child,
    out: Option<thread::JoinHandle<String>>,
    err: Option<thread::JoinHandle<String>>,
    argv: Vec<String>,
}

impl Sender {
    /// Waits for the sender to finish and returns what it sent; panics on failure.
    pub fn wait(mut self, timeout: Duration) -> SendReport {
        let status = wait_child(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("sender still running after {timeout:?}: {:?}", self.argv));
        let out = self.out.take().unwrap().join().unwrap_or_default();
        let err = self.err.take().unwrap().join().unwrap_or_default();
        assert!(
            status.success(),
            "sender failed ({status}): {err}\n{:?}",
            self.argv
        );
        let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        let json: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("sender printed no JSON ({e}): {out}{err}"));
        assert_eq!(json["errors"], 0, "sender had send errors: {json}\n{err}");
        SendReport { json }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(1));
    }
}

/// tests/helpers/tun_source.py in the box: creates tun0 and writes datagrams into it on
/// command (`Lan::send`). Killed with the LAN (tun0 disappears with it).
struct TunSource {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    log: PathBuf,
}

impl TunSource {
    /// Starts the helper in `box_ns` and waits for `ready` (tun0 up with 10.9.0.1/24).
    fn start(lan: &Lan, box_ns: &str) -> TunSource {
        let script = format!("{HELPERS}/tun_source.py");
        let port = PORT.to_string();
        let log = lan.dir.join("tun_source.stderr");
        lan.add_log("tun_source stderr", &log);
        let mut child = Command::new("ip")
            .args(["netns", "exec", box_ns, python(), &script])
            .args([
                "--name",
                "tun0",
                "--addr",
                "10.9.0.1/24",
                "--source",
                "10.9.0.2",
            ])
            .args(["--port", &port])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("tun_source log"))
            .spawn()
            .expect("spawn tun_source.py");
        let stdin = child.stdin.take().unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        let mut tun = TunSource {
            child,
            stdin,
            lines,
            log,
        };
        tun.expect_line(|l| l == "ready", Duration::from_secs(10), "ready");
        tun
    }

    fn expect_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
        what: &str,
    ) -> String {
        let (child, log) = (&mut self.child, &self.log);
        expect_line(&self.lines, "tun_source", pred, timeout, what, || {
            let status = child.wait().ok();
            format!(
                "exit {status:?}; stderr:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            )
        })
    }

    /// `send ARGS`: waits for its JSON line and `ok`; panics on send errors.
    fn send(&mut self, args: &[&str], timeout: Duration) -> SendReport {
        let cmd = format!("send {}", args.join(" "));
        writeln!(self.stdin, "{cmd}").expect("write to tun_source");
        self.stdin.flush().expect("flush tun_source stdin");
        let line = self.expect_line(|l| l.starts_with('{'), timeout, "send result");
        let ok = format!("ok {cmd}");
        self.expect_line(|l| l == ok, Duration::from_secs(5), &ok);
        let json: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("tun_source printed bad JSON ({e}): {line}"));
        assert_eq!(json["errors"], 0, "tun_source had write errors: {json}");
        SendReport { json }
    }
}

impl Drop for TunSource {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// What mcast_send.py reported.
#[derive(Debug, Clone)]
pub struct SendReport {
    pub json: Value,
}

impl SendReport {
    pub fn sent(&self, group: &str) -> u64 {
        self.json["per_group"][group].as_u64().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.json["sent"].as_u64().unwrap_or(0)
    }
}

/// No frame of `group` arrived at this host as L2 multicast.
pub fn assert_no_multicast(r: &AgentReport, group: &str) {
    assert_eq!(
        r.frames(group, MULTICAST),
        0,
        "{}: {group} arrived as L2 multicast",
        r.host.name
    );
}

/// The member got the stream as unicast copies to its own MAC, intact on its socket.
pub fn assert_unicast_member(r: &AgentReport, group: &str, sent: u64) {
    let who = &r.host.name;
    assert_delivered(
        r.frames(group, UNICAST),
        sent,
        &format!("{who} {group} unicast frames"),
    );
    assert_delivered(r.sock_ok(group), sent, &format!("{who} {group} socket"));
    assert_no_multicast(r, group);
    assert_eq!(
        r.frames(group, OTHER),
        0,
        "{who}: {group} frames for other MACs"
    );
    assert_eq!(
        r.sock_bad_or_dup(),
        0,
        "{who}: corrupt or duplicate datagrams"
    );
}

/// Nothing of `group` reached this host, in any frame class or on any socket.
pub fn assert_nothing(r: &AgentReport, group: &str) {
    let who = &r.host.name;
    assert_eq!(r.frames_any(group), 0, "{who}: got frames of {group}");
    assert_eq!(r.sock_ok(group), 0, "{who}: socket got {group}");
}

/// Asserts `got >= DELIVERY * sent` (and `got <= sent`: no duplicates), with context.
pub fn assert_delivered(got: u64, sent: u64, what: &str) {
    assert!(sent > 0, "{what}: nothing was sent");
    let need = (sent as f64 * DELIVERY).ceil() as u64;
    assert!(
        got >= need && got <= sent,
        "{what}: got {got} of {sent} (need {need}..={sent})"
    );
}

/// Gives the last frames time to arrive after a sender finished.
pub fn settle() {
    thread::sleep(Duration::from_millis(400));
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

// ------------------------------------------------------------------------------------------
// Soak test helpers (tests/soak.rs)
// ------------------------------------------------------------------------------------------

impl Lan {
    /// Undoes `block_igmp_out`: removes the clsact qdisc (and its filter) from host `i`'s
    /// eth0, or the nftables table of the fallback.
    pub fn unblock_igmp_out(&self, i: usize) {
        let ns = &self.host(i).ns;
        let tc = ns_exec(
            ns,
            &["tc", "qdisc", "del", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let nft = ns_exec(ns, &["nft", "delete", "table", "ip", "sc"], CMD_TIMEOUT);
        assert!(
            tc.ok() || nft.ok(),
            "cannot unblock IGMP on {ns}: tc: {} nft: {}",
            tc.stderr,
            nft.stderr
        );
    }

    /// `ip link set eth0 up|down` in host `i`. Taking eth0 down deletes its routes: on up,
    /// the 224.0.0.0/4 route is put back.
    pub fn set_host_link(&self, i: usize, up: bool) {
        let ns = &self.host(i).ns;
        let state = if up { "up" } else { "down" };
        ns_run(ns, &["ip", "link", "set", "eth0", state]);
        if up {
            ns_run(
                ns,
                &["ip", "route", "replace", "224.0.0.0/4", "dev", "eth0"],
            );
        }
    }
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

// ------------------------------------------------------------------------------------------
// IPv6 (tests/e2e_ipv6.rs): LanBuilder::ipv6, LanBuilder::mld_version
// ------------------------------------------------------------------------------------------

/// The multicast groups joined on `iface` in namespace `ns`, from /proc/net/igmp6, with
/// their users, link-local scope (ff02::/16, ff01::/16: all-nodes, solicited-node, ...)
/// left out. Groups in Rust's Ipv6Addr form (`ff0e::1:1`).
pub fn kernel_groups6_in(ns: &str, iface: &str) -> Vec<(String, u32)> {
    // "2    up0             ff0e0000000000000000000000010001     1 00000004 0"
    let text = ns_run(ns, &["cat", "/proc/net/igmp6"]);
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 4 || w[1] != iface || w[2].len() != 32 {
            continue;
        }
        let Ok(v) = u128::from_str_radix(w[2], 16) else {
            continue;
        };
        let a = std::net::Ipv6Addr::from(v);
        let scope = a.segments()[0] & 0xff0f;
        if scope == 0xff01 || scope == 0xff02 {
            continue;
        }
        out.push((a.to_string(), w[3].parse().unwrap_or(0)));
    }
    out
}

impl Lan {
    /// The IPv6 groups the box's kernel has joined on `iface` (see `kernel_groups6_in`).
    pub fn kernel_groups6(&self, iface: &str) -> Vec<(String, u32)> {
        kernel_groups6_in(&self.box_ns(), iface)
    }

    /// The IPv6 addresses of `iface` in `ns` with scope `scope` ("link" or "global").
    pub fn ipv6_addrs(ns: &str, iface: &str, scope: &str) -> Vec<String> {
        let out = ns_run(
            ns,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", iface, "scope", scope,
            ],
        );
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|&x| x == "inet6")?;
                w.next()?.split('/').next().map(str::to_string)
            })
            .collect()
    }

    /// Host `i`'s link-local address on eth0 (the source of its MLD reports, and the `ip`
    /// snoopcast lists for it).
    pub fn host_ll6(&self, i: usize) -> String {
        let ns = &self.host(i).ns;
        Self::ipv6_addrs(ns, "eth0", "link")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("h{i} has no link-local address on eth0"))
    }

    /// Sets host `i`'s force_mld_version (0: the kernel's choice, 1, 2) at run time.
    pub fn set_mld_version(&self, i: usize, v: u8) {
        let ns = self.host(i).ns.clone();
        ns_sysctl(&ns, "net.ipv6.conf.eth0.force_mld_version", &v.to_string());
    }

    /// Waits until every host's eth0 and the box's downstreams have a usable (not
    /// tentative) link-local address, and s0/up0 their global ones.
    fn wait_ipv6_ready(&self) {
        let mut want: Vec<(String, String, &str)> = self
            .hosts
            .iter()
            .map(|h| (h.ns.clone(), "eth0".to_string(), "link"))
            .collect();
        for dn in self.downstream_ifs() {
            want.push((self.box_ns(), dn, "link"));
        }
        if self.upstream == Upstream::Veth {
            want.push((self.src_ns(), "s0".into(), "global"));
        }
        if self.upstream != Upstream::Tun && self.box_mode == BoxMode::Snoopcast {
            want.push((self.box_ns(), "up0".into(), "global"));
        }
        let mut missing = Vec::new();
        let ok = wait_until(Duration::from_secs(5), || {
            missing.clear();
            for (ns, iface, scope) in &want {
                let out = run(&["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", iface]);
                let ready = out
                    .lines()
                    .any(|l| l.contains(&format!("scope {scope}")) && !l.contains("tentative"));
                if !ready {
                    missing.push(format!("{ns}/{iface} ({scope})"));
                }
            }
            missing.is_empty()
        });
        assert!(ok, "IPv6 addresses not ready after 5 s: {missing:?}");
    }
}

impl AgentReport {
    /// MLD messages (query, v1 report, done, v2 report) the host sent, after tc egress.
    pub fn mld_out(&self) -> u64 {
        self.json["mld_out"].as_u64().unwrap_or(0)
    }
    pub fn mld_out_since_mark(&self) -> u64 {
        self.json["mld_out_since_mark"].as_u64().unwrap_or(0)
    }
    /// MLD messages the host received (snoopcast's queries, other hosts' reports on a
    /// dumb switch).
    pub fn mld_in(&self) -> u64 {
        self.json["mld_in"].as_u64().unwrap_or(0)
    }
    /// Outgoing MLD messages of ICMPv6 type `t` (131 v1 report, 132 done, 143 v2 report).
    pub fn mld_out_type(&self, t: u8) -> u64 {
        self.json["mld_out_types"][t.to_string()]
            .as_u64()
            .unwrap_or(0)
    }
    /// The interface's IPv6 addresses as the agent saw them, link-local first.
    pub fn ip6(&self) -> Vec<String> {
        self.json["ip6"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
}

impl Lan {
    /// Makes host `i` silent for MLD, the IPv6 twin of `block_igmp_out`: a tc clsact egress
    /// filter on its eth0 drops every outgoing IPv6 frame whose first next header is
    /// hop-by-hop (0), which every MLD message has (its Router Alert, RFC 3810 5) and
    /// neighbour discovery has not:
    ///   ldb [20]; jeq #0, drop, pass; drop: ret #2 (TC_ACT_SHOT); pass: ret #0 (TC_ACT_OK)
    /// Offset 20 = 14 (Ethernet) + 6 (IPv6 next header). Undo with `unblock_mld_out`.
    pub fn block_mld_out(&self, i: usize) {
        self.drop_egress(
            i,
            "MLD",
            ("ipv6", "2", "4,48 0 0 20,21 0 1 0,6 0 0 2,6 0 0 0"),
            "add table ip6 sc6; add chain ip6 sc6 out { type filter hook output priority 0; }; \
             add rule ip6 sc6 out icmpv6 type { mld-listener-report, mld-listener-done, \
             mld2-listener-report } drop",
        );
    }

    /// Undoes `block_mld_out` (and `block_igmp_out`: they share the clsact qdisc).
    pub fn unblock_mld_out(&self, i: usize) {
        let ns = &self.host(i).ns;
        let tc = ns_exec(
            ns,
            &["tc", "qdisc", "del", "dev", "eth0", "clsact"],
            CMD_TIMEOUT,
        );
        let nft = ns_exec(ns, &["nft", "delete", "table", "ip6", "sc6"], CMD_TIMEOUT);
        assert!(
            tc.ok() || nft.ok(),
            "cannot unblock MLD on {ns}: tc: {} nft: {}",
            tc.stderr,
            nft.stderr
        );
    }
}
