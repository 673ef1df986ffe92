//! The upstream side of the proxy on the wire (issue 16, RFC 4605 section 4.1, RFC 3376
//! section 5, RFC 2236, RFC 3810 section 6): what leaves the box's up0 when downstream
//! members come and go, when the upstream router queries, when snoopcast stops, behind a
//! snooping switch, under an IGMPv2 router and with 5,000 groups; and that the box's own
//! kernel holds no IP membership for the groups snoopcast forwards.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0, dumb] p1.. --veth-- eth0 [h1..]
//!    ^
//!    tests/helpers/upstream_wire.py sniff records every IGMP and MLD message on s0 and
//!    takes the reports apart record by record: "in" is what left the box's up0, "out"
//!    what src sent (the queries of querier.py and `upstream_wire.py query`)
//!
//!  upstream_snooping_bridge_learns_the_groups instead:
//!  [src] s0 --veth-- u0 [upsw: br0, IGMP/MLD snooping, querier] u1 --veth-- up0 [box] ...
//! ```
//!
//! The assertions are about the wire (record types, source sets, destinations, times from
//! the kernel's receive timestamps) and the box kernel's /proc files, never about status.
//! Timers are short: snoopcast runs with a 5 s query interval, 1 s response interval and
//! robustness 2 (except the 5,000-group test, whose injected members must outlive the test:
//! default timers); queries from src have a Max Resp of 1 or 2 s. The hosts are IGMPv3 and
//! MLDv2. Each test has its own namespace tag.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// snoopcast's timers downstream (GMI = 2 x 5 s + 1 s = 11 s, longer than any member has
/// to last unqueried here).
const TIMERS: [&str; 6] = [
    "--query-interval",
    "5s",
    "--query-response-interval",
    "1s",
    "--robustness",
    "2",
];
/// Robustness (snoopcast's and the box kernel's default qrv): how often a state-change
/// record is sent in all (RFC 3376 8.1).
const ROBUSTNESS: usize = 2;
/// IGMPv3 / MLDv2 Unsolicited Report Interval (RFC 3376 8.11, RFC 3810 9.11): 1 s.
const URI: f64 = 1.0;
/// How late past Max Resp (or URI) a message may reach s0 and still count: the box's
/// scheduling, snoopcast's processing, the capture.
const SLACK: f64 = 0.4;
/// How soon after a downstream leave the upstream state change must be on the wire. An
/// IGMPv3/MLDv2 member's leave is explicit (snoopcast tracks each host), so the group or
/// source goes at once, without last-member queries (those are for IGMPv2/MLDv1
/// compatibility); 1 s is generous.
const PROMPT: f64 = 1.0;
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// up0's MAC (tests/README.md): the source of everything the box sends upstream.
const UP0_MAC: &str = "02:5c:00:01:00:02";
const UP0_IP: &str = "10.1.0.2";
/// s0's address (the default source, and the querier's) and a second source.
const S1: &str = "10.1.0.1";
const S2: &str = "10.1.0.3";
const S2_CIDR: &str = "10.1.0.3/24";
/// A source nobody sends from or asks for.
const S3: &str = "10.1.0.4";
/// s0's IPv6 address: the source of the IPv6 streams.
const S6: &str = "fd00:1::1";

/// IGMP types (RFC 2236 2.1, RFC 3376 4) and ICMPv6 MLD types (RFC 2710 3, RFC 3810 5).
const IGMP_QUERY: u64 = 0x11;
const IGMP_V1_REPORT: u64 = 0x12;
const IGMP_V2_REPORT: u64 = 0x16;
const IGMP_LEAVE: u64 = 0x17;
const IGMP_V3_REPORT: u64 = 0x22;
const MLD_QUERY: u64 = 130;
const MLD_V1_REPORT: u64 = 131;
const MLD_DONE: u64 = 132;
const MLD_V2_REPORT: u64 = 143;

/// Group record types (RFC 3376 4.2.12, RFC 3810 5.2.12).
const IS_IN: u64 = 1;
const IS_EX: u64 = 2;
const TO_IN: u64 = 3;
const TO_EX: u64 = 4;
const ALLOW: u64 = 5;
const BLOCK: u64 = 6;

fn record_name(t: u64) -> String {
    match t {
        IS_IN => "IS_IN".into(),
        IS_EX => "IS_EX".into(),
        TO_IN => "TO_IN".into(),
        TO_EX => "TO_EX".into(),
        ALLOW => "ALLOW".into(),
        BLOCK => "BLOCK".into(),
        t => format!("type{t}"),
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `G@S` for host_agent.py's source-specific join.
fn at(group: &str, source: &str) -> String {
    format!("{group}@{source}")
}

/// Link-local scope groups (224.0.0.0/24, ff01::/16, ff02::/16): the box kernel's own
/// business (all-systems, solicited-node, ...), never a forwarded group.
fn link_local(group: &str) -> bool {
    if let Ok(a) = group.parse::<Ipv4Addr>() {
        let o = a.octets();
        return o[0] == 224 && o[1] == 0 && o[2] == 0;
    }
    match group.parse::<Ipv6Addr>() {
        Ok(a) => matches!(a.segments()[0] & 0xff0f, 0xff01 | 0xff02),
        Err(_) => false,
    }
}

fn sleep_until(epoch: f64) {
    let left = epoch - epoch_now();
    if left > 0.0 {
        sleep(Duration::from_secs_f64(left));
    }
}

// ------------------------------------------------------------------------------------------
// The recorder on s0 (tests/helpers/upstream_wire.py sniff) and what it saw
// ------------------------------------------------------------------------------------------

/// One group record of an IGMPv3 or MLDv2 report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    kind: u64,
    group: String,
    sources: BTreeSet<String>,
}

impl Rec {
    fn show(&self) -> String {
        let s: Vec<&str> = self.sources.iter().map(String::as_str).collect();
        format!(
            "{} {} {{{}}}",
            record_name(self.kind),
            self.group,
            s.join(",")
        )
    }
}

/// One IGMP or MLD message on s0.
#[derive(Debug, Clone)]
struct Msg {
    t: f64,
    dir: String,
    src_mac: String,
    proto: String,
    src: String,
    dst: String,
    ttl: u64,
    ra: bool,
    kind: u64,
    len: u64,
    group: String,
    sources: Vec<String>,
    records: Vec<Rec>,
    bad: Option<String>,
}

impl Msg {
    fn parse(v: &Value) -> Msg {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let strs = |x: &Value| -> Vec<String> {
            x.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        Msg {
            t: v["t"].as_f64().unwrap_or(0.0),
            dir: s("dir"),
            src_mac: s("src_mac"),
            proto: s("proto"),
            src: s("src"),
            dst: s("dst"),
            ttl: v["ttl"].as_u64().unwrap_or(0),
            ra: v["ra"].as_bool().unwrap_or(false),
            kind: v["type"].as_u64().unwrap_or(0),
            len: v["len"].as_u64().unwrap_or(0),
            group: s("group"),
            sources: strs(&v["sources"]),
            records: v["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| Rec {
                    kind: r["type"].as_u64().unwrap_or(0),
                    group: r["group"].as_str().unwrap_or("").to_string(),
                    sources: strs(&r["sources"]).into_iter().collect(),
                })
                .collect(),
            bad: v["bad"].as_str().map(str::to_string),
        }
    }

    /// Sent by the box (arrived at s0 from up0's MAC).
    fn sent_by_box(&self) -> bool {
        self.dir == "in" && self.src_mac == UP0_MAC
    }

    fn is_report(&self) -> bool {
        matches!(
            (self.proto.as_str(), self.kind),
            (
                "igmp",
                IGMP_V1_REPORT | IGMP_V2_REPORT | IGMP_LEAVE | IGMP_V3_REPORT
            ) | ("mld", MLD_V1_REPORT | MLD_DONE | MLD_V2_REPORT)
        )
    }

    fn is_query(&self) -> bool {
        matches!(
            (self.proto.as_str(), self.kind),
            ("igmp", IGMP_QUERY) | ("mld", MLD_QUERY)
        )
    }

    fn show(&self) -> String {
        let what = match (self.proto.as_str(), self.kind) {
            ("igmp", IGMP_QUERY) | ("mld", MLD_QUERY) => {
                format!("query group {} sources {:?}", self.group, self.sources)
            }
            ("igmp", IGMP_V3_REPORT) | ("mld", MLD_V2_REPORT) => {
                let n = self.records.len();
                let mut r: Vec<String> = self.records.iter().take(6).map(Rec::show).collect();
                if n > 6 {
                    r.push(format!("... {} more", n - 6));
                }
                format!(
                    "report [{}]{}",
                    r.join("; "),
                    self.bad.as_deref().unwrap_or("")
                )
            }
            _ => format!("group {}", self.group),
        };
        format!(
            "{:.3} {} {} {} -> {} ttl {} ra {} {} type {} len {}: {what}",
            self.t,
            self.dir,
            self.src_mac,
            self.src,
            self.dst,
            self.ttl,
            self.ra,
            self.proto,
            self.kind,
            self.len,
        )
    }
}

/// A group's state as the box has reported it upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Include(BTreeSet<String>),
    Exclude(BTreeSet<String>),
}

fn inc(v: &[&str]) -> Filter {
    Filter::Include(set(v))
}
fn exc(v: &[&str]) -> Filter {
    Filter::Exclude(set(v))
}

/// What upstream_wire.py sniff recorded on s0.
struct Cap {
    msgs: Vec<Msg>,
}

impl Cap {
    fn parse(line: &str) -> Cap {
        let v: Value = serde_json::from_str(line).expect("upstream_wire.py JSON");
        Cap {
            msgs: v["msgs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Msg::parse)
                .collect(),
        }
    }

    /// The reports (every version) the box sent.
    fn box_reports(&self) -> Vec<&Msg> {
        self.msgs
            .iter()
            .filter(|m| m.sent_by_box() && m.is_report())
            .collect()
    }

    /// Every record of the box's IGMPv3 and MLDv2 reports, with the message's time.
    fn box_records(&self) -> Vec<(f64, &Rec)> {
        self.box_reports()
            .into_iter()
            .flat_map(|m| m.records.iter().map(move |r| (m.t, r)))
            .collect()
    }

    /// The box's records with `from <= t < to`, link-local groups left out.
    fn box_records_between(&self, from: f64, to: f64) -> Vec<(f64, &Rec)> {
        self.box_records()
            .into_iter()
            .filter(|(t, r)| *t >= from && *t < to && !link_local(&r.group))
            .collect()
    }

    /// The queries src sent (seen leaving s0).
    fn queries_sent(&self) -> Vec<&Msg> {
        self.msgs
            .iter()
            .filter(|m| m.dir == "out" && m.is_query())
            .collect()
    }

    /// When the box last sent a report, if ever.
    fn last_box_report(&self) -> Option<f64> {
        self.box_reports().iter().map(|m| m.t).reduce(f64::max)
    }

    /// The state the box has reported upstream per group (link-local groups left out): its
    /// reports in order applied as one reporter's state changes (RFC 3376 section 5.1,
    /// RFC 2236): IS_IN/TO_IN and IS_EX/TO_EX set the filter, ALLOW and BLOCK move sources,
    /// an IGMPv2/MLDv1 report means EXCLUDE{}, a leave or INCLUDE{} no membership.
    fn reported(&self) -> BTreeMap<String, Filter> {
        let mut state: BTreeMap<String, Filter> = BTreeMap::new();
        for m in self.box_reports() {
            match (m.proto.as_str(), m.kind) {
                ("igmp", IGMP_V1_REPORT | IGMP_V2_REPORT) | ("mld", MLD_V1_REPORT) => {
                    state.insert(m.group.clone(), Filter::Exclude(BTreeSet::new()));
                }
                ("igmp", IGMP_LEAVE) | ("mld", MLD_DONE) => {
                    state.remove(&m.group);
                }
                _ => {}
            }
            for r in &m.records {
                let cur = state.remove(&r.group);
                let src = r.sources.clone();
                let next = match (r.kind, cur) {
                    (IS_IN | TO_IN, _) => Some(Filter::Include(src)),
                    (IS_EX | TO_EX, _) => Some(Filter::Exclude(src)),
                    (ALLOW, Some(Filter::Include(x))) => Some(Filter::Include(&x | &src)),
                    (ALLOW, Some(Filter::Exclude(y))) => Some(Filter::Exclude(&y - &src)),
                    (ALLOW, None) => Some(Filter::Include(src)),
                    (BLOCK, Some(Filter::Include(x))) => Some(Filter::Include(&x - &src)),
                    (BLOCK, Some(Filter::Exclude(y))) => Some(Filter::Exclude(&y | &src)),
                    (_, cur) => cur,
                };
                match next {
                    Some(Filter::Include(x)) if x.is_empty() => {}
                    Some(f) => {
                        state.insert(r.group.clone(), f);
                    }
                    None => {}
                }
            }
        }
        state.retain(|g, _| !link_local(g));
        state
    }

    /// One line per message, for failure messages (the first 150).
    fn dump(&self) -> String {
        let mut lines: Vec<String> = self.msgs.iter().take(150).map(Msg::show).collect();
        if self.msgs.len() > 150 {
            lines.push(format!("... {} more messages", self.msgs.len() - 150));
        }
        if lines.is_empty() {
            "(no IGMP or MLD message on s0)".into()
        } else {
            lines.join("\n")
        }
    }
}

fn show_records(recs: &[(f64, &Rec)]) -> String {
    if recs.is_empty() {
        return "(none)".into();
    }
    recs.iter()
        .map(|(t, r)| format!("{t:.3} {}", r.show()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// upstream_wire.py sniff on s0 in the src namespace; killed on drop (and with the LAN).
struct UpWire {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    log: PathBuf,
}

impl UpWire {
    fn start(lan: &Lan) -> UpWire {
        let script = format!("{HELPERS}/upstream_wire.py");
        let log = lan.dir.join("upstream_wire-sniff.stderr");
        lan.add_log("upstream_wire.py sniff stderr", &log);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lan.src_ns(), python(), &script, "sniff"])
            .args(["--iface", "s0", "--duration", "170"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("sniff log"))
            .spawn()
            .expect("spawn upstream_wire.py sniff");
        let stdin = child.stdin.take().unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        let mut w = UpWire {
            child,
            stdin,
            lines,
            log,
        };
        w.expect(|l| l == "ready", "ready");
        w
    }

    fn expect(&mut self, pred: impl Fn(&str) -> bool, what: &str) -> String {
        let (child, log) = (&mut self.child, &self.log);
        expect_line(
            &self.lines,
            "upstream_wire.py sniff",
            pred,
            Duration::from_secs(20),
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

    /// Everything recorded so far; the recorder keeps running.
    fn dump(&mut self) -> Cap {
        writeln!(self.stdin, "dump").expect("write to the recorder");
        self.stdin.flush().expect("flush the recorder's stdin");
        let line = self.expect(|l| l.starts_with('{'), "dump");
        self.expect(|l| l == "ok dump", "ok dump");
        Cap::parse(&line)
    }

    /// Polls `dump` every 200 ms until `cond` holds; panics with `what` and the capture.
    fn wait(&mut self, timeout: Duration, what: &str, cond: impl Fn(&Cap) -> bool) -> Cap {
        let deadline = Instant::now() + timeout;
        loop {
            let cap = self.dump();
            if cond(&cap) {
                return cap;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\nreported state: {:?}\n\
                     on s0:\n{}",
                    cap.reported(),
                    cap.dump()
                );
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the box has reported exactly `want` (link-local groups aside).
    fn wait_reported(&mut self, want: &BTreeMap<String, Filter>, what: &str) -> Cap {
        self.wait(JOIN_WAIT, what, |c| c.reported() == *want)
    }

    /// Waits until the box has sent no report for `quiet` seconds (the retransmissions of
    /// the last state change are over).
    fn wait_quiet(&mut self, quiet: f64) -> Cap {
        self.wait(
            Duration::from_secs(10),
            &format!("{quiet} s without a report from the box"),
            |c| c.last_box_report().is_none_or(|t| t < epoch_now() - quiet),
        )
    }

    /// Stops the recorder (SIGTERM) and returns what it recorded.
    fn finish(mut self) -> Cap {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let line = self.expect(|l| l.starts_with('{'), "result");
        Cap::parse(&line)
    }
}

impl Drop for UpWire {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn want(v: &[(&str, Filter)]) -> BTreeMap<String, Filter> {
    v.iter().map(|(g, f)| (g.to_string(), f.clone())).collect()
}

// ------------------------------------------------------------------------------------------
// Queriers on s0
// ------------------------------------------------------------------------------------------

/// tests/helpers/querier.py in src on s0 from 10.1.0.1 (general queries: the first at
/// once, then every --interval); killed on drop.
struct Querier(Child);

impl Querier {
    fn start(lan: &Lan, args: &[&str]) -> Querier {
        let script = format!("{HELPERS}/querier.py");
        let log = lan.dir.join("querier.stderr");
        lan.add_log("querier.py stderr", &log);
        let child = Command::new("ip")
            .args(["netns", "exec", &lan.src_ns(), python(), &script])
            .args(["--iface", "s0", "--src", S1])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("querier log"))
            .spawn()
            .expect("start querier.py");
        Querier(child)
    }
}

impl Drop for Querier {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One query from 10.1.0.1 out of s0 (`upstream_wire.py query ARGS`); returns when it was
/// sent (epoch).
fn send_query(lan: &Lan, args: &[&str]) -> f64 {
    let script = format!("{HELPERS}/upstream_wire.py");
    let mut argv = vec![python(), &script, "query", "--iface", "s0", "--src", S1];
    argv.extend_from_slice(args);
    let out = ns_exec(&lan.src_ns(), &argv, CMD_TIMEOUT);
    assert!(
        out.ok(),
        "upstream_wire.py query {args:?}: {} {}",
        out.status,
        out.stderr
    );
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("query printed no JSON ({e}): {}", out.stdout));
    v["t"][0].as_f64().expect("query time")
}

/// Current-state records (IS_IN, IS_EX) per group in `recs`, without times.
fn current_state(recs: &[(f64, &Rec)]) -> BTreeMap<String, Vec<Filter>> {
    let mut out: BTreeMap<String, Vec<Filter>> = BTreeMap::new();
    for (_, r) in recs {
        let f = match r.kind {
            IS_IN => Filter::Include(r.sources.clone()),
            IS_EX => Filter::Exclude(r.sources.clone()),
            _ => continue,
        };
        out.entry(r.group.clone()).or_default().push(f);
    }
    out
}

fn is_current_state(r: &Rec) -> bool {
    matches!(r.kind, IS_IN | IS_EX)
}

/// Every IGMPv3 report of the box is well formed and addressed as RFC 3376 4.2.14 and 9.1
/// ask: from up0's address to 224.0.0.22, TTL 1, with a Router Alert.
fn assert_v3_reports_well_formed(cap: &Cap) {
    for m in cap.box_reports() {
        if m.proto != "igmp" || m.kind != IGMP_V3_REPORT {
            continue;
        }
        assert!(
            m.src == UP0_IP && m.dst == "224.0.0.22" && m.ttl == 1 && m.ra && m.bad.is_none(),
            "an IGMPv3 report of the box is not from {UP0_IP} to 224.0.0.22 with TTL 1 and a \
             Router Alert, or is malformed: {}\non s0:\n{}",
            m.show(),
            cap.dump()
        );
    }
}

// ------------------------------------------------------------------------------------------
// 1. The box kernel holds no membership
// ------------------------------------------------------------------------------------------

/// IPv4 and IPv6 members (any-source and source-specific) downstream get their streams and
/// the box reports the groups upstream, yet the box's kernel holds none of them on up0:
/// /proc/net/igmp and /proc/net/igmp6 (hence /proc/net/mcfilter{,6}) list no entry for
/// them. snoopcast sends the reports itself (RFC 4605 proxy, issue 16).
#[test]
fn box_kernel_holds_no_membership_for_forwarded_groups() {
    require_root!();
    const G: &str = "239.7.1.1";
    const SSM: &str = "232.7.1.1";
    const G6: &str = "ff0e::7:1";
    const SSM6: &str = "ff3e::7:1";
    let lan = Lan::builder("urnokern").hosts(1).ipv6(true).build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G, &at(SSM, S1), G6, &at(SSM6, S6)]);
    wire.wait_reported(
        &want(&[
            (G, exc(&[])),
            (SSM, inc(&[S1])),
            (G6, exc(&[])),
            (SSM6, inc(&[S6])),
        ]),
        "the box reports the four groups upstream",
    );

    let v4 = lan.send(&[
        "--group", G, "--group", SSM, "--count", "200", "--rate", "400",
    ]);
    let v6 = lan.send(&[
        "--group", G6, "--group", SSM6, "--count", "200", "--rate", "400",
    ]);
    settle();
    let r = h1.report();
    for g in [G, SSM] {
        assert_unicast_member(&r, g, v4.sent(g));
    }
    for g in [G6, SSM6] {
        assert_unicast_member(&r, g, v6.sent(g));
    }

    let k4 = lan.kernel_groups("up0");
    let k6 = lan.kernel_groups6("up0");
    let held: Vec<String> = k4
        .iter()
        .chain(k6.iter())
        .map(|(g, _)| g.clone())
        .filter(|g| [G, SSM, G6, SSM6].contains(&g.as_str()))
        .collect();
    let proc = |f: &str| ns_run(&lan.box_ns(), &["cat", f]);
    assert!(
        held.is_empty(),
        "the box kernel holds {held:?} on up0 (its groups there: IPv4 {k4:?}, IPv6 {k6:?}); \
         snoopcast must report them itself\n/proc/net/igmp:\n{}\n/proc/net/mcfilter:\n{}\n\
         /proc/net/igmp6:\n{}\n/proc/net/mcfilter6:\n{}",
        proc("/proc/net/igmp"),
        proc("/proc/net/mcfilter"),
        proc("/proc/net/igmp6"),
        proc("/proc/net/mcfilter6")
    );
    let _ = h1.finish();
    daemon.stop_ok();
    drop(wire);
    eprintln!(
        "box_kernel_holds_no_membership_for_forwarded_groups: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// 2. and 3. Queries from the upstream router
// ------------------------------------------------------------------------------------------

/// Two hosts want G1 any-source (IGMPv3 EXCLUDE{}) and G2 from S1 and S2 (one source each:
/// the box merges them); G3 was wanted and left. A general IGMPv3 query from src (Max Resp
/// 2 s) is answered within Max Resp with exactly one current-state record per wanted group:
/// IS_EX{} for G1 and IS_IN{S1,S2} for G2, nothing for G3 or anything else (RFC 3376 5.2,
/// RFC 4605 4.1); no current-state record is ever sent unasked. Every IGMPv3 report of the
/// box goes from up0's address to 224.0.0.22 with TTL 1 and a Router Alert.
#[test]
fn general_query_is_answered_with_exactly_the_wanted_state() {
    require_root!();
    const G1: &str = "239.7.2.1";
    const G2: &str = "232.7.2.1";
    const G3: &str = "239.7.2.3";
    const MAX_RESP: f64 = 2.0;
    let lan = Lan::builder("urgenq").hosts(2).src_addr(S2_CIDR).build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1, &at(G2, S1), G3]);
    let _h2 = lan.start_agent(2, &[G1, &at(G2, S2)]);
    let all = want(&[(G1, exc(&[])), (G2, inc(&[S1, S2])), (G3, exc(&[]))]);
    wire.wait_reported(&all, "G1, G2 from S1 and S2, and G3 reported");
    h1.leave(G3);
    let wanted = want(&[(G1, exc(&[])), (G2, inc(&[S1, S2]))]);
    wire.wait_reported(&wanted, "G3 left upstream");
    wire.wait_quiet(1.5);

    let q = Querier::start(
        &lan,
        &["--version", "3", "--max-resp", "2", "--interval", "60"],
    );
    let cap = wire.wait(Duration::from_secs(5), "the query leaving s0", |c| {
        !c.queries_sent().is_empty()
    });
    let tq = cap.queries_sent()[0].t;
    sleep_until(tq + MAX_RESP + SLACK + 0.5);
    drop(q);
    let cap = wire.finish();
    let dump = cap.dump();
    assert_eq!(
        cap.queries_sent().len(),
        1,
        "one general query from src\n{dump}"
    );

    let early: Vec<(f64, &Rec)> = cap
        .box_records_between(0.0, tq)
        .into_iter()
        .filter(|(_, r)| is_current_state(r))
        .collect();
    assert!(
        early.is_empty(),
        "current-state records before any query:\n{}\n{dump}",
        show_records(&early)
    );
    let window = cap.box_records_between(tq, tq + MAX_RESP + SLACK);
    let answer = current_state(&window);
    let expect: BTreeMap<String, Vec<Filter>> = [
        (G1.to_string(), vec![exc(&[])]),
        (G2.to_string(), vec![inc(&[S1, S2])]),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        answer,
        expect,
        "the answer to the general query at {tq:.3} (records within Max Resp {MAX_RESP} s + \
         {SLACK} s):\n{}\nwant exactly IS_EX {G1} {{}} and IS_IN {G2} {{{S1},{S2}}}, nothing \
         for {G3} or any other group\non s0:\n{dump}",
        show_records(&window)
    );
    let late: Vec<(f64, &Rec)> = cap
        .box_records_between(tq + MAX_RESP + SLACK, f64::MAX)
        .into_iter()
        .filter(|(_, r)| is_current_state(r))
        .collect();
    assert!(
        late.is_empty(),
        "current-state records after Max Resp:\n{}\n{dump}",
        show_records(&late)
    );
    assert_v3_reports_well_formed(&cap);
    daemon.stop_ok();
    eprintln!(
        "general_query_is_answered_with_exactly_the_wanted_state: {:?}",
        started.elapsed()
    );
}

/// A group-specific query for G1 (Max Resp 1 s) is answered within 1 s with IS_EX{} for G1
/// alone; a group-and-source-specific query for G2 (INCLUDE {S1,S2}) asking for {S1,S3}
/// with IS_IN{S1} alone (RFC 3376 5.2: the sources asked for that are wanted); a
/// group-specific query for a group nobody wants gets no answer.
#[test]
fn group_specific_query_is_answered_within_max_resp() {
    require_root!();
    const G1: &str = "239.7.3.1";
    const G2: &str = "232.7.3.1";
    const G9: &str = "239.7.3.9";
    const MAX_RESP: f64 = 1.0;
    let lan = Lan::builder("urgsq").hosts(1).src_addr(S2_CIDR).build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let _h1 = lan.start_agent(1, &[G1, &at(G2, S1), &at(G2, S2)]);
    wire.wait_reported(
        &want(&[(G1, exc(&[])), (G2, inc(&[S1, S2]))]),
        "G1 and G2 from S1 and S2 reported",
    );
    wire.wait_quiet(1.5);

    let gap = MAX_RESP + SLACK + 0.3;
    let t1 = send_query(&lan, &["--group", G1, "--max-resp", "1"]);
    sleep_until(t1 + gap);
    let t2 = send_query(
        &lan,
        &[
            "--group",
            G2,
            "--source",
            S1,
            "--source",
            S3,
            "--max-resp",
            "1",
        ],
    );
    sleep_until(t2 + gap);
    let t3 = send_query(&lan, &["--group", G9, "--max-resp", "1"]);
    sleep_until(t3 + gap);
    let cap = wire.finish();
    let dump = cap.dump();
    let sent: Vec<(String, Vec<String>)> = cap
        .queries_sent()
        .iter()
        .map(|m| (m.group.clone(), m.sources.clone()))
        .collect();
    assert_eq!(
        sent,
        vec![
            (G1.to_string(), vec![]),
            (G2.to_string(), vec![S1.to_string(), S3.to_string()]),
            (G9.to_string(), vec![]),
        ],
        "the three queries left s0\n{dump}"
    );

    let cases = [
        (t1, t2, format!("group-specific query for {G1}"), {
            let mut m = BTreeMap::new();
            m.insert(G1.to_string(), vec![exc(&[])]);
            m
        }),
        (
            t2,
            t3,
            format!("group-and-source-specific query for {G2} {{{S1},{S3}}}"),
            {
                let mut m = BTreeMap::new();
                m.insert(G2.to_string(), vec![inc(&[S1])]);
                m
            },
        ),
        (
            t3,
            f64::MAX,
            format!("group-specific query for {G9}"),
            BTreeMap::new(),
        ),
    ];
    for (from, to, what, expect) in cases {
        let all = cap.box_records_between(from, to);
        let in_time = cap.box_records_between(from, from + MAX_RESP + SLACK);
        assert_eq!(
            current_state(&all),
            expect,
            "the answer to the {what} at {from:.3}:\n{}\non s0:\n{dump}",
            show_records(&all)
        );
        assert_eq!(
            current_state(&in_time),
            expect,
            "the answer to the {what} at {from:.3} came later than Max Resp {MAX_RESP} s + \
             {SLACK} s:\n{}\non s0:\n{dump}",
            show_records(&all)
        );
    }
    assert_v3_reports_well_formed(&cap);
    daemon.stop_ok();
    eprintln!(
        "group_specific_query_is_answered_within_max_resp: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// 4. and 5. Leaves
// ------------------------------------------------------------------------------------------

/// Asserts that the box's records of `group` after `since` are `ROBUSTNESS` copies of
/// `expect`, the first within PROMPT of `since`, each next within URI (+ slack) of the one
/// before (RFC 3376 5.1: a state change is sent [Robustness Variable] times, spaced by the
/// Unsolicited Report Interval).
fn assert_state_change(cap: &Cap, since: f64, group: &str, expect: &Rec, why: &str) {
    let recs: Vec<(f64, &Rec)> = cap
        .box_records_between(since, f64::MAX)
        .into_iter()
        .filter(|(_, r)| r.group == group)
        .collect();
    let dump = || {
        format!(
            "records for {group}:\n{}\non s0:\n{}",
            show_records(&recs),
            cap.dump()
        )
    };
    assert!(
        recs.iter().all(|(_, r)| *r == expect),
        "{why}: want only {} for {group}\n{}",
        expect.show(),
        dump()
    );
    assert_eq!(
        recs.len(),
        ROBUSTNESS,
        "{why}: {} must go {ROBUSTNESS} times (robustness)\n{}",
        expect.show(),
        dump()
    );
    let first = recs[0].0;
    assert!(
        first - since <= PROMPT,
        "{why}: the first {} came {:.3} s after the leave (at most {PROMPT} s)\n{}",
        expect.show(),
        first - since,
        dump()
    );
    for w in recs.windows(2) {
        assert!(
            w[1].0 - w[0].0 <= URI + 0.15,
            "{why}: {:.3} s between two copies of {} (the Unsolicited Report Interval is {URI} s)\n{}",
            w[1].0 - w[0].0,
            expect.show(),
            dump()
        );
    }
}

/// h1 and h2 are in G1; h1 also wants G2 from S1 and S2. h2 leaving G1 changes nothing
/// upstream (h1 stays). Then h1, the last member, leaves G1 and drops S2 from G2: the box
/// sends TO_IN{} for G1 and BLOCK{S2} for G2 at once, each Robustness (2) times in all,
/// the second within the Unsolicited Report Interval (1 s) of the first (RFC 3376 5.1,
/// RFC 4605 4.1); G2 stays INCLUDE{S1}.
#[test]
fn leave_sends_the_state_change_at_once_and_robustness_times() {
    require_root!();
    const G1: &str = "239.7.4.1";
    const G2: &str = "232.7.4.1";
    let lan = Lan::builder("urleave").hosts(2).src_addr(S2_CIDR).build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1, &at(G2, S1), &at(G2, S2)]);
    let mut h2 = lan.start_agent(2, &[G1]);
    wire.wait_reported(
        &want(&[(G1, exc(&[])), (G2, inc(&[S1, S2]))]),
        "G1 and G2 from S1 and S2 reported",
    );
    wire.wait_quiet(1.5);

    // Not the last member: nothing goes upstream.
    let ta = epoch_now();
    h2.leave(G1);
    sleep(Duration::from_millis(1500));
    let cap = wire.dump();
    let after = cap.box_records_between(ta, f64::MAX);
    assert!(
        after.is_empty(),
        "h2 left {G1} but h1 is still a member: the box sent\n{}\non s0:\n{}",
        show_records(&after),
        cap.dump()
    );

    // The last member of G1 leaves; S2 leaves G2's include set.
    let tb = epoch_now();
    h1.leave(G1);
    h1.leave(&at(G2, S2));
    sleep_until(tb + PROMPT + (ROBUSTNESS - 1) as f64 * (URI + 0.15) + 1.0);
    let cap = wire.finish();
    let to_in = Rec {
        kind: TO_IN,
        group: G1.into(),
        sources: set(&[]),
    };
    let block = Rec {
        kind: BLOCK,
        group: G2.into(),
        sources: set(&[S2]),
    };
    assert_state_change(&cap, tb, G1, &to_in, "the last member left G1");
    assert_state_change(&cap, tb, G2, &block, "S2 left G2's include set");
    assert_eq!(
        cap.reported(),
        want(&[(G2, inc(&[S1]))]),
        "what the box reported in the end\non s0:\n{}",
        cap.dump()
    );
    assert_v3_reports_well_formed(&cap);
    let _ = (h1.finish(), h2.finish());
    daemon.stop_ok();
    eprintln!(
        "leave_sends_the_state_change_at_once_and_robustness_times: {:?}",
        started.elapsed()
    );
}

/// h1 stays in two any-source IPv4 groups, an SSM group from S1 and S2 and an IPv6 group.
/// SIGTERM to snoopcast: before the process is gone, the box has sent a leave for every
/// group: TO_IN{} for the any-source groups (IGMPv3 and MLDv2), BLOCK of both sources (or
/// TO_IN{}) for the SSM group (RFC 4605 4.1: the upstream memberships are left on
/// shutdown). "Gone" is when the test saw the exit (polled every 10 ms).
#[test]
fn sigterm_leaves_everything() {
    require_root!();
    const G1: &str = "239.7.5.1";
    const G3: &str = "239.7.5.2";
    const G2: &str = "232.7.5.1";
    const G6: &str = "ff0e::7:5";
    let lan = Lan::builder("urterm")
        .hosts(1)
        .ipv6(true)
        .src_addr(S2_CIDR)
        .build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let h1 = lan.start_agent(1, &[G1, G3, &at(G2, S1), &at(G2, S2), G6]);
    wire.wait_reported(
        &want(&[
            (G1, exc(&[])),
            (G3, exc(&[])),
            (G2, inc(&[S1, S2])),
            (G6, exc(&[])),
        ]),
        "the four groups reported",
    );
    wire.wait_quiet(1.5);

    let ts = epoch_now();
    let pid = daemon.pid();
    daemon.stop_ok();
    let t_exit = epoch_now();
    sleep(Duration::from_millis(1500));
    let cap = wire.finish();
    let dump = cap.dump();
    let recs = cap.box_records_between(ts, f64::MAX);
    // When each group's leave was complete: TO_IN{}, or (for the include group) BLOCKs
    // covering all its sources.
    let left_at = |group: &str, sources: &[&str]| -> Option<f64> {
        let mut blocked = BTreeSet::new();
        for (t, r) in recs.iter().filter(|(_, r)| r.group == group) {
            match r.kind {
                TO_IN if r.sources.is_empty() => return Some(*t),
                BLOCK if !sources.is_empty() => {
                    blocked.extend(r.sources.iter().cloned());
                    if set(sources).is_subset(&blocked) {
                        return Some(*t);
                    }
                }
                _ => {}
            }
        }
        None
    };
    for (g, sources) in [(G1, vec![]), (G3, vec![]), (G2, vec![S1, S2]), (G6, vec![])] {
        match left_at(g, &sources) {
            Some(t) => assert!(
                t <= t_exit,
                "the leave of {g} went out {:.3} s after snoopcast (pid {pid}) had exited \
                 (SIGTERM at {ts:.3}, exit seen at {t_exit:.3})\nrecords since SIGTERM:\n{}\n\
                 on s0:\n{dump}",
                t - t_exit,
                show_records(&recs)
            ),
            None => panic!(
                "no leave for {g} after SIGTERM (want TO_IN{{}}{}); records since SIGTERM \
                 at {ts:.3} (exit seen at {t_exit:.3}):\n{}\non s0:\n{dump}",
                if sources.is_empty() {
                    String::new()
                } else {
                    format!(" or BLOCK {{{}}}", sources.join(","))
                },
                show_records(&recs)
            ),
        }
    }
    assert!(
        cap.reported().is_empty(),
        "after SIGTERM the box still has reported {:?}\non s0:\n{dump}",
        cap.reported()
    );
    let _ = h1.finish();
    eprintln!(
        "sigterm_leaves_everything: {:?} (exit {:.3} s after SIGTERM)",
        started.elapsed(),
        t_exit - ts
    );
}

// ------------------------------------------------------------------------------------------
// 6. A snooping switch upstream
// ------------------------------------------------------------------------------------------

/// The groups `bridge mdb show` lists on `port` of the upstream bridge: group -> (filter
/// mode of the (*, G) entry, sources of its (S, G) entries), link-local groups left out.
fn mdb_on(lan: &Lan, port: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = ns_run(
        &lan.upsw_ns(),
        &["bridge", "-j", "-d", "mdb", "show", "dev", "br0"],
    );
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("bridge -j mdb show is not JSON ({e}): {text}"));
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for e in v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|x| x["mdb"].as_array().cloned().unwrap_or_default())
    {
        let (Some(grp), Some(p)) = (e["grp"].as_str(), e["port"].as_str()) else {
            continue;
        };
        if p != port || link_local(grp) {
            continue;
        }
        let entry = out.entry(grp.to_string()).or_default();
        match e["src"].as_str() {
            Some(s) => {
                entry.1.insert(s.to_string());
            }
            None => entry.0 = e["filter_mode"].as_str().unwrap_or("?").to_string(),
        }
    }
    out
}

/// The upstream link goes through a Linux bridge with IGMPv3/MLDv2 snooping and its own
/// querier (`LanBuilder::upstream_snooping_bridge`). What the box reports must build the
/// bridge's database on its port u1: G1 and an IPv6 group any-source (filter mode
/// exclude), the SSM groups in include mode with exactly their sources; nothing else there.
/// The bridge then forwards G1's stream to the box (the member gets it), and the box's
/// leave removes G1 from u1 (the bridge's last-member queries go unanswered).
#[test]
fn upstream_snooping_bridge_learns_the_groups() {
    require_root!();
    const G1: &str = "239.7.6.1";
    const G2: &str = "232.7.6.1";
    const G6: &str = "ff0e::7:6";
    const SSM6: &str = "ff3e::7:6";
    let lan = Lan::builder("urbridge")
        .hosts(1)
        .ipv6(true)
        .src_addr(S2_CIDR)
        .upstream_snooping_bridge()
        .build();
    let started = Instant::now();
    let daemon = start_snoopcast(&lan, &TIMERS);
    let mut h1 = lan.start_agent(1, &[G1, &at(G2, S1), &at(G2, S2), G6, &at(SSM6, S6)]);
    let entry = |mode: &str, s: &[&str]| (mode.to_string(), set(s));
    let expect: BTreeMap<String, (String, BTreeSet<String>)> = [
        (G1.to_string(), entry("exclude", &[])),
        (G2.to_string(), entry("include", &[S1, S2])),
        (G6.to_string(), entry("exclude", &[])),
        (SSM6.to_string(), entry("include", &[S6])),
    ]
    .into_iter()
    .collect();
    let mut last = BTreeMap::new();
    let ok = wait_until(JOIN_WAIT, || {
        last = mdb_on(&lan, "u1");
        last == expect
    });
    let show_all = || {
        format!(
            "bridge mdb show:\n{}\nbox /proc/net/igmp:\n{}\nbox /proc/net/igmp6:\n{}",
            ns_run(&lan.upsw_ns(), &["bridge", "-d", "mdb", "show"]),
            ns_run(&lan.box_ns(), &["cat", "/proc/net/igmp"]),
            ns_run(&lan.box_ns(), &["cat", "/proc/net/igmp6"]),
        )
    };
    assert!(
        ok,
        "the upstream bridge's database on u1 (the box's port) after {JOIN_WAIT:?}:\n\
         {last:?}\nwant {expect:?}\n{}",
        show_all()
    );

    // The snooping bridge forwards G1 to u1 because of the box's report.
    let sent = lan.send(&["--group", G1, "--count", "200", "--rate", "400"]);
    settle();
    assert_unicast_member(&h1.report(), G1, sent.sent(G1));

    // The last member leaves: the box's TO_IN{} and its silence at the bridge's
    // last-member queries remove G1 from u1.
    h1.leave(G1);
    let ok = wait_until(Duration::from_secs(8), || {
        last = mdb_on(&lan, "u1");
        !last.contains_key(G1)
    });
    assert!(
        ok,
        "{G1} still on u1 8 s after its last member left: {last:?}\n{}",
        show_all()
    );
    let _ = h1.finish();
    daemon.stop_ok();
    eprintln!(
        "upstream_snooping_bridge_learns_the_groups: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// 7. An IGMPv2 router upstream
// ------------------------------------------------------------------------------------------

/// IGMPv2 general queries from src every second (Max Resp 1 s), from before the hosts
/// join. The box then speaks IGMPv2 upstream (RFC 3376 7.2.1): v2 membership reports (0x16)
/// to the group address, TTL 1, Router Alert, for G1 and G3, again after later queries, and
/// never an IGMPv3 report; h2 leaving G3 (h1 stays) sends nothing; h1, G1's last member,
/// leaving sends an IGMPv2 Leave (0x17) to 224.0.0.2 at once, after which G1 is no longer
/// reported while G3 still is.
#[test]
fn igmpv2_upstream_router_gets_v2_reports() {
    require_root!();
    const G1: &str = "239.7.7.1";
    const G3: &str = "239.7.7.3";
    let lan = Lan::builder("urv2").hosts(2).build();
    let started = Instant::now();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &TIMERS);
    let _q = Querier::start(
        &lan,
        &["--version", "2", "--max-resp", "1", "--interval", "1"],
    );
    let cap = wire.wait(Duration::from_secs(5), "two IGMPv2 queries on s0", |c| {
        c.queries_sent().len() >= 2
    });
    // By the second query the box has heard one.
    let tv2 = cap.queries_sent()[1].t;
    let tj = epoch_now();
    let mut h1 = lan.start_agent(1, &[G1, G3]);
    let mut h2 = lan.start_agent(2, &[G3]);
    let v2_reports = |c: &Cap, g: &str, from: f64, to: f64| -> Vec<f64> {
        c.box_reports()
            .into_iter()
            .filter(|m| m.proto == "igmp" && m.kind == IGMP_V2_REPORT && m.group == g)
            .map(|m| m.t)
            .filter(|t| *t >= from && *t < to)
            .collect()
    };
    wire.wait(JOIN_WAIT, "IGMPv2 reports for G1 and G3", |c| {
        !v2_reports(c, G1, tj, f64::MAX).is_empty() && !v2_reports(c, G3, tj, f64::MAX).is_empty()
    });
    // Answers to the next queries.
    let tr = epoch_now();
    sleep(Duration::from_millis(2600));
    let cap = wire.dump();
    for g in [G1, G3] {
        let n = v2_reports(&cap, g, tr, f64::MAX).len();
        assert!(
            n >= 2,
            "{n} IGMPv2 reports for {g} in the 2.6 s after the first (queries every 1 s, \
             Max Resp 1 s)\non s0:\n{}",
            cap.dump()
        );
    }

    // Not the last member of G3: nothing.
    let ta = epoch_now();
    h2.leave(G3);
    // The last member of G1.
    sleep(Duration::from_millis(1200));
    let tl = epoch_now();
    h1.leave(G1);
    sleep(Duration::from_millis(2500));
    let cap = wire.finish();
    let dump = cap.dump();
    let from_box = cap.box_reports();
    let v3: Vec<&&Msg> = from_box
        .iter()
        .filter(|m| {
            m.t > tv2 && !(m.proto == "igmp" && matches!(m.kind, IGMP_V2_REPORT | IGMP_LEAVE))
        })
        .collect();
    assert!(
        v3.is_empty(),
        "with an IGMPv2 querier upstream the box sent reports other than IGMPv2 ones:\n{}\n\
         on s0:\n{dump}",
        v3.iter().map(|m| m.show()).collect::<Vec<_>>().join("\n")
    );
    for m in &from_box {
        if m.proto == "igmp" && m.kind == IGMP_V2_REPORT {
            assert!(
                m.dst == m.group && m.ttl == 1 && m.ra && m.src == UP0_IP,
                "an IGMPv2 report must go from {UP0_IP} to its group with TTL 1 and a Router \
                 Alert (RFC 2236 2, 9): {}\non s0:\n{dump}",
                m.show()
            );
        }
    }
    let leaves = |g: &str| -> Vec<&Msg> {
        from_box
            .iter()
            .copied()
            .filter(|m| m.proto == "igmp" && m.kind == IGMP_LEAVE && m.group == g)
            .collect()
    };
    assert!(
        leaves(G3).is_empty(),
        "an IGMPv2 Leave for {G3}, which h1 still wants (h2 left at {ta:.3})\non s0:\n{dump}"
    );
    let l1 = leaves(G1);
    assert!(
        !l1.is_empty(),
        "no IGMPv2 Leave for {G1} after its last member left at {tl:.3}\non s0:\n{dump}"
    );
    let leave = l1[0];
    assert!(
        leave.t >= tl && leave.t - tl <= PROMPT,
        "the IGMPv2 Leave for {G1} came {:.3} s after its last member left (at most {PROMPT} \
         s)\non s0:\n{dump}",
        leave.t - tl
    );
    assert!(
        leave.dst == "224.0.0.2" && leave.ttl == 1 && leave.ra && leave.src == UP0_IP,
        "the IGMPv2 Leave must go from {UP0_IP} to 224.0.0.2 with TTL 1 and a Router Alert \
         (RFC 2236 3, 9): {}",
        leave.show()
    );
    let stale = v2_reports(&cap, G1, leave.t, f64::MAX);
    assert!(
        stale.is_empty(),
        "{G1} reported again after its Leave at {:.3}: {stale:?}\non s0:\n{dump}",
        leave.t
    );
    assert!(
        !v2_reports(&cap, G3, tl + 0.1, f64::MAX).is_empty(),
        "{G3} (h1 stays) no longer reported after {G1}'s leave\non s0:\n{dump}"
    );
    let _ = (h1.finish(), h2.finish());
    daemon.stop_ok();
    eprintln!(
        "igmpv2_upstream_router_gets_v2_reports: {:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// 8. 5,000 groups
// ------------------------------------------------------------------------------------------

/// The box namespace's sysctls that bound or tune the kernel's multicast memberships and
/// reports, or that a daemon might raise to hold more of them: path -> value ("-" when the
/// file does not exist).
fn box_sysctls(lan: &Lan) -> BTreeMap<String, String> {
    const KEYS: [&str; 10] = [
        "net/ipv4/igmp_max_memberships",
        "net/ipv4/igmp_max_msf",
        "net/ipv4/igmp_qrv",
        "net/ipv6/mld_max_msf",
        "net/ipv6/mld_qrv",
        "net/core/optmem_max",
        "net/core/rmem_max",
        "net/core/wmem_max",
        "net/ipv4/conf/up0/force_igmp_version",
        "net/ipv4/conf/up0/igmpv3_unsolicited_report_interval",
    ];
    let script = "for k in \"$@\"; do printf '%s %s\\n' \"$k\" \"$(cat /proc/sys/$k 2>/dev/null || echo -)\"; done";
    let mut argv = vec!["sh", "-c", script, "sh"];
    argv.extend_from_slice(&KEYS);
    ns_run(&lan.box_ns(), &argv)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// h1 reports 5,000 any-source groups (raw IGMPv3 reports of TO_EX{} records, packed
/// 183 to a frame, sent twice; snoopcast with --max-groups-per-host 5000 and default timers
/// so they outlive the test). The box reports every one of them upstream, then answers a
/// general query (Max Resp 2 s) with IS_EX{} for all 5,000 and nothing else, and no sysctl
/// of the box namespace changed: net.ipv4.igmp_max_memberships is still the default 20.
#[test]
fn five_thousand_groups_upstream_without_sysctls() {
    require_root!();
    const N: usize = 5000;
    const FIRST: &str = "239.100.0.1";
    const MAX_RESP: f64 = 2.0;
    let lan = Lan::builder("ur5k").hosts(1).build();
    let started = Instant::now();
    let before = box_sysctls(&lan);
    assert_eq!(
        before
            .get("net/ipv4/igmp_max_memberships")
            .map(String::as_str),
        Some("20"),
        "a fresh namespace has the default igmp_max_memberships: {before:?}"
    );
    let first: u32 = FIRST.parse::<Ipv4Addr>().unwrap().into();
    let groups: BTreeSet<String> = (0..N as u32)
        .map(|k| Ipv4Addr::from(first + k).to_string())
        .collect();
    let mut wire = UpWire::start(&lan);
    let daemon = start_snoopcast(&lan, &["--max-groups-per-host", "5000"]);

    let h1 = lan.host(1).clone();
    let script = format!("{HELPERS}/upstream_wire.py");
    let n = N.to_string();
    let t0 = epoch_now();
    let out = ns_exec(
        &h1.ns,
        &[
            python(),
            &script,
            "report",
            "--iface",
            "eth0",
            "--src",
            &h1.ip,
            "--first",
            FIRST,
            "--groups",
            &n,
            "--type",
            "4",
            "--repeat",
            "2",
        ],
        CMD_TIMEOUT,
    );
    assert!(
        out.ok(),
        "upstream_wire.py report: {} {}",
        out.status,
        out.stderr
    );
    let all_reported = |c: &Cap| {
        let r = c.reported();
        r.len() == N
            && groups
                .iter()
                .all(|g| r.get(g) == Some(&Filter::Exclude(BTreeSet::new())))
    };
    let cap = wire.wait(
        Duration::from_secs(20),
        "all 5,000 groups reported upstream",
        all_reported,
    );
    // When the last of them was first reported.
    let mut first_seen: BTreeMap<&str, f64> = BTreeMap::new();
    for (t, r) in cap.box_records() {
        first_seen.entry(r.group.as_str()).or_insert(t);
    }
    let t_all = first_seen.values().copied().fold(t0, f64::max);
    wire.wait_quiet(1.5);

    let tq = send_query(&lan, &["--max-resp", "2"]);
    sleep_until(tq + MAX_RESP + SLACK + 0.5);
    let after = box_sysctls(&lan);
    let cap = wire.finish();
    let window = cap.box_records_between(tq, tq + MAX_RESP + SLACK);
    let answer = current_state(&window);
    let exact = answer.len() == N
        && groups
            .iter()
            .all(|g| answer.get(g).map(Vec::as_slice) == Some(&[exc(&[])][..]));
    if !exact {
        let missing: Vec<&String> = groups.iter().filter(|g| !answer.contains_key(*g)).collect();
        let odd: Vec<(&String, &Vec<Filter>)> = answer
            .iter()
            .filter(|(g, f)| !groups.contains(*g) || f.as_slice() != [exc(&[])])
            .collect();
        panic!(
            "the answer to the general query at {tq:.3} (within {MAX_RESP} s + {SLACK} s): \
             {} groups; {} of the 5,000 missing (first: {:?}); unexpected or repeated: {:?}\n\
             on s0:\n{}",
            answer.len(),
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            odd.iter().take(5).collect::<Vec<_>>(),
            cap.dump()
        );
    }
    assert_v3_reports_well_formed(&cap);
    assert_eq!(
        after, before,
        "sysctls of the box namespace changed while snoopcast held 5,000 groups"
    );
    daemon.stop_ok();
    eprintln!(
        "five_thousand_groups_upstream_without_sysctls: {:?} (all reported {:.2} s after \
         the injection; {} report messages on s0)",
        started.elapsed(),
        t_all - t0,
        cap.box_reports().len()
    );
}
