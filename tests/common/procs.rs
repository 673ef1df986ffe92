//! The helpers in the hosts and the source: host_agent.py (`Agent`, `AgentReport`),
//! mcast_send.py (`Sender`, `SendReport`) and tun_source.py behind tun0.

use super::*;
use serde_json::Value;
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

impl Lan {
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
}

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
            .filter(|(s, _)| source.is_none_or(|want| want == s.as_str()))
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
    /// Arrival timing of `group`'s intact datagrams on the socket (all sources), from the
    /// kernel's receive timestamps; None when none arrived (or from an agent without it).
    pub fn arrivals(&self, group: &str) -> Option<Arrivals> {
        let a = self.json["arrivals"].get(group)?;
        let f = |k: &str| a[k].as_f64();
        Some(Arrivals {
            n: a["n"].as_u64()?,
            first: f("first")?,
            last: f("last")?,
            max_gap_ms: f("max_gap_ms")?,
            max_gap_end: f("max_gap_end")?,
        })
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

/// `AgentReport::arrivals`: times in seconds since the epoch (CLOCK_REALTIME, comparable
/// with `std::time::SystemTime` in the test), gaps in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrivals {
    pub n: u64,
    pub first: f64,
    pub last: f64,
    /// The longest time between two consecutive datagrams (0 with only one).
    pub max_gap_ms: f64,
    /// The arrival that ended the longest gap.
    pub max_gap_end: f64,
}

/// Now, in seconds since the epoch: the clock of `Arrivals`.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
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
pub(super) struct TunSource {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    log: PathBuf,
}

impl TunSource {
    /// Starts the helper in `box_ns` and waits for `ready` (tun0 up with 10.9.0.1/24).
    pub(super) fn start(lan: &Lan, box_ns: &str) -> TunSource {
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
    pub(super) fn send(&mut self, args: &[&str], timeout: Duration) -> SendReport {
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
