//! Soak test: hosts join, leave, go silent (and expire) and flap links at random for a long
//! time while streams run; at the end nothing may be left over (members, upstream groups,
//! sockets, threads) and memory may not have grown.
//!
//! Not part of `cargo test` (it is `#[ignore]`d): run it with `sudo tests/soak.sh [DURATION]`
//! (default 10m), which sets SNOOPCAST_SOAK_DURATION and runs
//! `cargo test --release --test soak -- --ignored --nocapture`.
//!
//! ```text
//!  [src] s0 10.1.0.1 + 10.1.0.3 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0]  -- h1 h2 h3 h4(v2)
//!   sender A (10.1.0.1): 239.1.1.1-3, 232.1.1.1         dn1 --veth-- p0 [sw2: br0] -- h5 h6 h7 h8(v2)
//!   sender B (10.1.0.3): 239.1.1.3, 232.1.1.1            (dn0: compat fallback multicast,
//!   25 datagrams/s per (group, source)                    dn1: compat fallback unicast)
//! ```
//!
//! snoopcast runs with --query-interval 5s --query-response-interval 1s --robustness 2, so a
//! silent member expires after GMI = 2 x 5 s + 2 x 1 s = 12 s (RFC 9776 8.4).
//!
//! A seeded driver (SNOOPCAST_SOAK_SEED replays a run) does one random thing every 150-600
//! ms: a host joins (any-source, or source-specific on IGMPv3 hosts) or leaves, a host goes
//! silent for 3-20 s (its outgoing IGMP dropped by tc, so its membership expires when the
//! silence outlasts GMI), a host's eth0 goes down for 0.3-3 s, a box downstream goes down
//! for 0.5-4 s or is deleted and re-created, the upstream goes down for 0.5-3 s.
//!
//! Every 30 s the driver stops, brings every link up, ends every silence, waits until
//! snoopcast has every interface open again and the hosts have had time to report (QI plus
//! QRI plus 3 s after they could), and checks
//! the table against its model over a 2 s window: every host is a member
//! of exactly the groups it joined with the right filter (hosts that may still hold a stale
//! membership, after a leave that could not reach the wire, are only checked for what they
//! joined), receives every stream it joined (at least half of the 50 datagrams of the
//! window), and receives no copy of a stream it did not join (L2 multicast of a group in
//! IGMPv2 compatibility on its interface excepted). A monitor thread asks `status` every
//! second throughout and samples the daemon's /proc entries.
//!
//! At the end every host leaves, the silences and links are restored, and after a final
//! expiry period snoopcast must hold no member and no upstream join, the box kernel no group
//! on up0 beyond its baseline, the same number of fds and threads as at the start (sampled
//! after a warm-up with no members), VmRSS at most RSS_GROWTH_KIB above the start, and
//! copies_dropped at most 1 % of copies_sent plus 1.5 s of copies per downstream outage
//! (copies to a downstream that went down fail until snoopcast notices, within about a
//! second), and at least one member must have expired. No agent may have received a
//! corrupt or duplicate datagram.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

const QI_S: u64 = 5;
const QRI_S: u64 = 1;
const ROBUSTNESS: u64 = 2;
const DAEMON_ARGS: [&str; 10] = [
    "--query-interval",
    "5s",
    "--query-response-interval",
    "1s",
    "--robustness",
    "2",
    "--compat-fallback",
    "dn1=unicast",
    "--log-level",
    "debug",
];
/// Group membership interval (RFC 9776 8.4): a silent member is gone after it.
const GMI: Duration = Duration::from_secs(ROBUSTNESS * QI_S + 2 * QRI_S);
/// Time for a host that can report again to have answered a query: QI + QRI + margin.
const REPORT_SETTLE: Duration = Duration::from_secs(QI_S + QRI_S + 3);
/// Time for a membership whose leave never reached the wire to expire: GMI + margin.
const STALE_SETTLE: Duration = Duration::from_secs(ROBUSTNESS * QI_S + 2 * QRI_S + 3);

const SRC_A: &str = "10.1.0.1";
const SRC_B: &str = "10.1.0.3";
/// Datagrams per second of each (group, source) stream.
const STREAM_PPS: u64 = 25;
/// Every (group, source) stream that runs.
const STREAMS: [(&str, &str); 6] = [
    ("239.1.1.1", SRC_A),
    ("239.1.1.2", SRC_A),
    ("239.1.1.3", SRC_A),
    ("232.1.1.1", SRC_A),
    ("239.1.1.3", SRC_B),
    ("232.1.1.1", SRC_B),
];
/// What IGMPv3 hosts join: any-source, source-specific in the SSM range (RFC 4607) and
/// source-specific (INCLUDE) outside it.
const SPECS_V3: [&str; 6] = [
    "239.1.1.1",
    "239.1.1.2",
    "239.1.1.3",
    "232.1.1.1@10.1.0.1",
    "232.1.1.1@10.1.0.3",
    "239.1.1.3@10.1.0.3",
];
/// IGMPv2 hosts have no source filters (and none in 232/8: RFC 4604 ignores v2 there).
const SPECS_V2: [&str; 3] = ["239.1.1.1", "239.1.1.2", "239.1.1.3"];

const HOSTS_DN0: usize = 4;
const HOSTS_DN1: usize = 4;
/// Forced to IGMPv2: the last host of each switch (one per switch, so no v2 report
/// suppression between hosts).
const V2_HOSTS: [usize; 2] = [4, 8];

/// A host joins at most this many specs at once, so that every check also finds streams it
/// must not receive.
const MAX_SPECS: usize = 3;

const CHECK_EVERY: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(2);
/// A joined stream must bring at least this many datagrams in WINDOW (half of 2 s x 25/s).
const MIN_IN_WINDOW: u64 = STREAM_PPS;
/// The bound on memory growth over the run.
const RSS_GROWTH_KIB: u64 = 8 * 1024;
/// copies_dropped may be at most this fraction of copies_sent...
const DROP_BOUND: f64 = 0.01;
/// ... plus this long of copies per downstream outage (snoopcast notices within about 1 s).
const DROP_PER_OUTAGE: Duration = Duration::from_millis(1500);

// ------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------

/// SNOOPCAST_SOAK_DURATION: "90s", "10m", "1h" or plain seconds. Missing: the test fails
/// and says how to run it.
fn soak_duration() -> Duration {
    let Ok(text) = std::env::var("SNOOPCAST_SOAK_DURATION") else {
        panic!(
            "SNOOPCAST_SOAK_DURATION is not set. Run the soak test with `sudo tests/soak.sh \
             [DURATION]` (default 10m), or set SNOOPCAST_SOAK_DURATION=10m (90s, 1h...) and run \
             `cargo test --release --test soak -- --ignored --nocapture` as root."
        )
    };
    let text = text.trim();
    let d = match text.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => humantime::parse_duration(text)
            .unwrap_or_else(|e| panic!("SNOOPCAST_SOAK_DURATION={text:?}: {e} (say 90s or 10m)")),
    };
    assert!(
        d >= Duration::from_secs(30),
        "SNOOPCAST_SOAK_DURATION={text:?}: at least 30s"
    );
    d
}

fn soak_seed() -> u64 {
    match std::env::var("SNOOPCAST_SOAK_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("SNOOPCAST_SOAK_SEED={s:?}: {e} (a u64)")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// SplitMix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A duration in [lo, hi) milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len())])
    }
}

// ------------------------------------------------------------------------------------------
// The driver's model
// ------------------------------------------------------------------------------------------

struct HostModel {
    /// 1-based host number.
    i: usize,
    agent: Agent,
    v2: bool,
    /// 0 (dn0) or 1 (dn1).
    dn: usize,
    /// What the agent has joined: "G" or "G@S".
    specs: BTreeSet<String>,
    /// Some(until): outgoing IGMP dropped until then.
    silent_until: Option<Instant>,
    /// Some(until): eth0 down until then.
    link_down_until: Option<Instant>,
    /// Before this, it may not be a member of everything it joined yet.
    settle_join: Instant,
    /// Before this, it may still be a member of something it left.
    settle_stale: Instant,
}

impl HostModel {
    fn group_of(spec: &str) -> &str {
        spec.split('@').next().unwrap()
    }
    fn wants(&self, group: &str, source: &str) -> bool {
        self.specs.iter().any(|s| match s.split_once('@') {
            Some((g, src)) => g == group && src == source,
            None => s == group,
        })
    }
    /// The table entry it should have per group: (mode, sources), RFC 3376 6.4.
    fn expected(&self) -> BTreeMap<String, (String, BTreeSet<String>)> {
        let mut m: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for s in &self.specs {
            match s.split_once('@') {
                Some((g, src)) => {
                    let e = m
                        .entry(g.to_string())
                        .or_insert_with(|| ("include".into(), BTreeSet::new()));
                    e.1.insert(src.to_string());
                }
                None => {
                    m.insert(s.clone(), ("exclude".into(), BTreeSet::new()));
                }
            }
        }
        m
    }
    /// Specs it may join now: not joined, and no any-source/source-specific mix in a group
    /// (the agent keeps one socket per group).
    fn joinable(&self) -> Vec<&'static str> {
        let catalogue: &[&'static str] = if self.v2 { &SPECS_V2 } else { &SPECS_V3 };
        catalogue
            .iter()
            .copied()
            .filter(|c| !self.specs.contains(*c))
            .filter(|c| {
                let g = Self::group_of(c);
                let ssm = c.contains('@');
                self.specs
                    .iter()
                    .filter(|s| Self::group_of(s) == g)
                    .all(|s| s.contains('@') == ssm && ssm)
            })
            .collect()
    }
}

#[derive(Default, Debug)]
struct Tally {
    joins: u64,
    leaves: u64,
    hidden_leaves: u64,
    silences: u64,
    host_flaps: u64,
    dn_flaps: u64,
    dn_recreates: u64,
    up_flaps: u64,
    checks: u64,
    hosts_checked: u64,
    streams_checked: u64,
    negatives_checked: u64,
}

struct Driver<'a> {
    lan: &'a Lan,
    /// snoopcast's pid.
    pid: u32,
    rng: Rng,
    hosts: Vec<HostModel>,
    /// Some(until) per box downstream while it is down.
    dn_down_until: [Option<Instant>; 2],
    up_down_until: Option<Instant>,
    /// When an interface of the box last came back (the check waits REPORT_SETTLE after).
    last_iface_up: Option<Instant>,
    tally: Tally,
    failures: Vec<String>,
    log: File,
    t0: Instant,
}

impl<'a> Driver<'a> {
    fn note(&mut self, what: String) {
        let t = self.t0.elapsed().as_secs_f64();
        let _ = writeln!(self.log, "{t:8.2} {what}");
    }

    fn fail(&mut self, what: String) {
        let t = self.t0.elapsed().as_secs_f64();
        println!("soak: MISMATCH at {t:.1}s: {what}");
        self.note(format!("MISMATCH {what}"));
        self.failures.push(format!("{t:.1}s: {what}"));
    }

    fn dn_name(d: usize) -> String {
        format!("dn{d}")
    }

    /// Carries out the restores that are due; with `links`, every link comes up now, with
    /// `silences` every silent host speaks again now.
    fn restore(&mut self, links: bool, silences: bool) {
        let now = Instant::now();
        let due = |t: Option<Instant>, all: bool| t.is_some_and(|t| all || t <= now);
        for d in 0..2 {
            if due(self.dn_down_until[d], links) {
                self.lan.set_box_link(&Self::dn_name(d), true);
                self.dn_down_until[d] = None;
                self.last_iface_up = Some(Instant::now());
                self.note(format!("dn{d} up"));
            }
        }
        if due(self.up_down_until, links) {
            self.lan.set_box_link("up0", true);
            self.up_down_until = None;
            self.last_iface_up = Some(Instant::now());
            self.note("up0 up".into());
        }
        for k in 0..self.hosts.len() {
            let i = self.hosts[k].i;
            if due(self.hosts[k].link_down_until, links) {
                self.lan.set_host_link(i, true);
                let h = &mut self.hosts[k];
                h.link_down_until = None;
                // The kernel reports its groups again on link up (ip_mc_up).
                h.settle_join = h.settle_join.max(Instant::now() + REPORT_SETTLE);
                self.note(format!("h{i} eth0 up"));
            }
            if due(self.hosts[k].silent_until, silences) {
                self.lan.unblock_igmp_out(i);
                let h = &mut self.hosts[k];
                h.silent_until = None;
                // It reports again at the next query; leaves it sent meanwhile were lost.
                h.settle_join = h.settle_join.max(Instant::now() + REPORT_SETTLE);
                self.note(format!("h{i} speaks again"));
            }
        }
    }

    fn all_links_up(&self) -> bool {
        self.dn_down_until.iter().all(Option::is_none)
            && self.up_down_until.is_none()
            && self.hosts.iter().all(|h| h.link_down_until.is_none())
    }

    /// One random action.
    fn act(&mut self) {
        let now = Instant::now();
        let roll = self.rng.below(100);
        match roll {
            0..=34 => {
                // join
                let cands: Vec<usize> = (0..self.hosts.len())
                    .filter(|&k| {
                        self.hosts[k].link_down_until.is_none()
                            && self.hosts[k].specs.len() < MAX_SPECS
                            && !self.hosts[k].joinable().is_empty()
                    })
                    .collect();
                let Some(k) = self.rng.pick(&cands) else {
                    return;
                };
                let spec = self.rng.pick(&self.hosts[k].joinable()).unwrap();
                let h = &mut self.hosts[k];
                h.agent.join(spec);
                h.specs.insert(spec.to_string());
                // v2 hosts repeat their unsolicited report only after up to 10 s: give
                // them (and everyone) until the next query has been answered.
                h.settle_join = h.settle_join.max(now + Duration::from_secs(3));
                let i = h.i;
                self.tally.joins += 1;
                self.note(format!("h{i} join {spec}"));
            }
            35..=62 => {
                // leave
                let cands: Vec<usize> = (0..self.hosts.len())
                    .filter(|&k| {
                        self.hosts[k].link_down_until.is_none() && !self.hosts[k].specs.is_empty()
                    })
                    .collect();
                let Some(k) = self.rng.pick(&cands) else {
                    return;
                };
                let specs: Vec<String> = self.hosts[k].specs.iter().cloned().collect();
                let spec = specs[self.rng.below(specs.len())].clone();
                let dn_down = self.dn_down_until[self.hosts[k].dn].is_some();
                let h = &mut self.hosts[k];
                h.agent.leave(&spec);
                h.specs.remove(&spec);
                // A leave that cannot reach snoopcast (silent host, or its downstream down
                // when snoopcast may not have noticed) leaves a member until GMI passes.
                let hidden = h.silent_until.is_some() || dn_down;
                let wait = if hidden {
                    STALE_SETTLE
                } else {
                    Duration::from_secs(2)
                };
                h.settle_stale = h.settle_stale.max(now + wait);
                let i = h.i;
                self.tally.leaves += 1;
                if hidden {
                    self.tally.hidden_leaves += 1;
                }
                self.note(format!(
                    "h{i} leave {spec}{}",
                    if hidden { " (not heard)" } else { "" }
                ));
            }
            63..=66 => {
                // silence: a member, mostly for longer than GMI (12 s) so that it expires
                let cands: Vec<usize> = (0..self.hosts.len())
                    .filter(|&k| {
                        self.hosts[k].silent_until.is_none() && !self.hosts[k].specs.is_empty()
                    })
                    .collect();
                let Some(k) = self.rng.pick(&cands) else {
                    return;
                };
                let i = self.hosts[k].i;
                let len = if self.rng.below(3) == 0 {
                    self.rng.ms(2_000, 9_000)
                } else {
                    self.rng.ms(12_000, 25_000)
                };
                self.lan.block_igmp_out(i);
                self.hosts[k].silent_until = Some(now + len);
                self.tally.silences += 1;
                self.note(format!("h{i} silent for {len:?}"));
            }
            67..=84 => {
                // a host's own link
                let cands: Vec<usize> = (0..self.hosts.len())
                    .filter(|&k| self.hosts[k].link_down_until.is_none())
                    .collect();
                let Some(k) = self.rng.pick(&cands) else {
                    return;
                };
                let i = self.hosts[k].i;
                let len = self.rng.ms(300, 3_000);
                self.lan.set_host_link(i, false);
                self.hosts[k].link_down_until = Some(now + len);
                self.tally.host_flaps += 1;
                self.note(format!("h{i} eth0 down for {len:?}"));
            }
            85..=92 => {
                // a box downstream goes down
                let d = self.rng.below(2);
                if self.dn_down_until[d].is_some() {
                    return;
                }
                let len = self.rng.ms(500, 4_000);
                self.lan.set_box_link(&Self::dn_name(d), false);
                self.dn_down_until[d] = Some(now + len);
                self.tally.dn_flaps += 1;
                self.note(format!("dn{d} down for {len:?}"));
            }
            93..=95 => {
                // a box downstream is deleted and created again (recreate_downstream waits
                // for every link of the LAN to be up: only when nothing else is down)
                if !self.all_links_up() {
                    return;
                }
                let d = self.rng.below(2);
                let gap = self.rng.ms(500, 2_000);
                self.note(format!("dn{d} deleted for {gap:?}"));
                self.lan.delete_downstream(d);
                sleep(gap);
                self.lan.recreate_downstream(d);
                self.last_iface_up = Some(Instant::now());
                // Leaves sent meanwhile were lost; snoopcast dropped dn's members anyway.
                for h in self.hosts.iter_mut().filter(|h| h.dn == d) {
                    h.settle_stale = h.settle_stale.max(Instant::now() + STALE_SETTLE);
                }
                self.tally.dn_recreates += 1;
                self.note(format!("dn{d} re-created"));
            }
            _ => {
                // the upstream
                if self.up_down_until.is_some() {
                    return;
                }
                let len = self.rng.ms(500, 3_000);
                self.lan.set_box_link("up0", false);
                self.up_down_until = Some(now + len);
                self.tally.up_flaps += 1;
                self.note(format!("up0 down for {len:?}"));
            }
        }
        // A downstream that went down may have been noticed or not: leaves and joins of
        // hosts behind it during the gap are covered by the settle times set on restore.
        for d in 0..2 {
            if self.dn_down_until[d].is_some() {
                for h in self.hosts.iter_mut().filter(|h| h.dn == d) {
                    h.settle_stale = h.settle_stale.max(now + STALE_SETTLE);
                }
            }
        }
    }

    /// Brings everything up, waits for the table to settle, and compares it and the
    /// traffic of a 2 s window with the model.
    fn check(&mut self, label: &str) {
        // Silences go on (silent hosts are not checked): they are what makes members expire.
        self.restore(true, false);
        // Every interface open again in snoopcast.
        let mut last = Value::Null;
        let open = wait_until(Duration::from_secs(45), || {
            match self.lan.try_status_json() {
                Ok(v) => {
                    let ok = v["upstream"]["state"] == "up"
                        && v["interfaces"]
                            .as_array()
                            .is_some_and(|a| a.len() == 2 && a.iter().all(|i| i["state"] == "up"));
                    last = v;
                    ok
                }
                Err(_) => false,
            }
        });
        if !open {
            self.fail(format!(
                "{label}: interfaces not all open 45 s after the links came up: {} / {}",
                last["upstream"], last["interfaces"]
            ));
            return;
        }
        // Hosts that can speak have answered a query since they could.
        let now = Instant::now();
        let mut until = now;
        if let Some(t) = self.last_iface_up {
            until = until.max(t + REPORT_SETTLE);
        }
        for h in self.hosts.iter().filter(|h| h.silent_until.is_none()) {
            until = until.max(h.settle_join);
        }
        sleep(until.saturating_duration_since(now));

        let checked: Vec<usize> = (0..self.hosts.len())
            .filter(|&k| self.hosts[k].silent_until.is_none())
            .collect();
        let Ok(s1) = self.lan.try_status_json() else {
            self.fail(format!("{label}: status failed"));
            return;
        };
        for &k in &checked {
            self.hosts[k].agent.mark();
        }
        sleep(WINDOW);
        let reports: Vec<AgentReport> = checked
            .iter()
            .map(|&k| self.hosts[k].agent.report())
            .collect();
        let Ok(s2) = self.lan.try_status_json() else {
            self.fail(format!("{label}: status failed"));
            return;
        };
        let now = Instant::now();

        let mut problems = Vec::new();
        let mut streams = 0;
        let mut negatives = 0;
        for (&k, r) in checked.iter().zip(&reports) {
            let h = &self.hosts[k];
            let host = self.lan.host(h.i);
            let dn = Self::dn_name(h.dn);
            // Silent hosts are skipped; a host whose leave may not have been heard may
            // still hold what it left (until GMI).
            let exact = now >= h.settle_stale;
            let expected = h.expected();
            for s in [&s1, &s2] {
                let actual = table_of(s, host);
                for (g, want) in &expected {
                    match actual.get(g) {
                        None => problems.push(format!(
                            "h{} joined {g} {want:?} but is no member (status groups: {:?})",
                            h.i, actual
                        )),
                        // IGMPv2 reports carry no filter: EXCLUDE {} (RFC 3376 7.3.2).
                        Some(got) if got != want => problems
                            .push(format!("h{} {g}: table has {got:?}, joined {want:?}", h.i)),
                        Some(_) => {}
                    }
                }
                if exact {
                    for g in actual.keys().filter(|g| !expected.contains_key(*g)) {
                        problems.push(format!(
                            "h{} is a member of {g}, which it did not join (joined {:?})",
                            h.i, h.specs
                        ));
                    }
                }
            }
            for (g, src) in STREAMS {
                let since = |class: &str| -> u64 {
                    r.json["since_mark"][g][src][class].as_u64().unwrap_or(0)
                };
                if h.wants(g, src) {
                    streams += 1;
                    let got = since(UNICAST) + since(MULTICAST);
                    if got < MIN_IN_WINDOW {
                        problems.push(format!(
                            "h{} joined ({g}, {src}) but got {got} datagrams in {WINDOW:?} \
                             (need {MIN_IN_WINDOW})",
                            h.i
                        ));
                    }
                } else if exact {
                    negatives += 1;
                    let uni = since(UNICAST);
                    if uni > 0 {
                        problems.push(format!(
                            "h{} did not join ({g}, {src}) but got {uni} unicast copies",
                            h.i
                        ));
                    }
                    let multi = since(MULTICAST);
                    if multi > 0 && !multicast_on(&s1, g, &dn) && !multicast_on(&s2, g, &dn) {
                        problems.push(format!(
                            "h{} did not join ({g}, {src}) but got {multi} multicast frames, \
                             and {g} is not in compatibility mode on {dn}",
                            h.i
                        ));
                    }
                }
            }
        }
        self.tally.checks += 1;
        self.tally.hosts_checked += checked.len() as u64;
        self.tally.streams_checked += streams;
        self.tally.negatives_checked += negatives;
        let members = member_count(&s2);
        let t = self.t0.elapsed().as_secs();
        let p = proc_sample(self.pid);
        println!(
            "soak: {label} at {t}s: {} hosts checked ({} silent skipped), {streams} joined \
             streams delivered, {negatives} unjoined streams absent; {members} members, {} \
             upstream joins, {} expired so far; VmRSS {} KiB, fds {}, threads {}{}",
            checked.len(),
            self.hosts.len() - checked.len(),
            s2["upstream"]["joined"].as_array().map_or(0, Vec::len),
            s2["counters"]["members_expired"],
            p.map_or(0, |p| p.rss_kib),
            p.map_or(0, |p| p.fds),
            p.map_or(0, |p| p.threads),
            if problems.is_empty() {
                String::new()
            } else {
                format!(", {} PROBLEMS", problems.len())
            }
        );
        self.note(format!("{label}: {} problems", problems.len()));
        for p in problems {
            self.fail(format!("{label}: {p}"));
        }
    }
}

/// Group -> (mode, sources) of `host` in a status snapshot.
fn table_of(status: &Value, host: &Host) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for g in groups_of(status, host) {
        if let Some(m) = member(status, &g, host) {
            let sources = m["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            out.insert(g, (m["mode"].as_str().unwrap_or("?").to_string(), sources));
        }
    }
    out
}

/// True when `group` goes out as L2 multicast on `iface` (IGMPv1/v2 compatibility).
fn multicast_on(status: &Value, group: &str, iface: &str) -> bool {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["group"] == group)
        .flat_map(|g| g["multicast_on"].as_array().cloned().unwrap_or_default())
        .any(|c| c["interface"] == iface && c["delivery"] == "multicast")
}

// ------------------------------------------------------------------------------------------
// Samples and the monitor
// ------------------------------------------------------------------------------------------

/// What the start/end table shows.
struct Sample {
    proc: ProcSample,
    members: usize,
    groups: usize,
    upstream_joined: usize,
    join_sockets: u64,
    kernel_up0: Vec<(String, u32)>,
    copies_sent: u64,
    copies_dropped: u64,
}

fn sample(lan: &Lan, pid: u32) -> Sample {
    let s = lan.status_json();
    let proc = proc_sample(pid).expect("snoopcast is gone");
    Sample {
        proc,
        members: member_count(&s),
        groups: s["groups"].as_array().map_or(0, Vec::len),
        upstream_joined: s["upstream"]["joined"].as_array().map_or(0, Vec::len),
        join_sockets: s["upstream"]["sockets"].as_u64().unwrap_or(0),
        kernel_up0: lan.kernel_groups("up0"),
        copies_sent: s["counters"]["copies_sent"].as_u64().unwrap_or(0),
        copies_dropped: s["counters"]["copies_dropped"].as_u64().unwrap_or(0),
    }
}

#[derive(Default)]
struct MonitorLog {
    polls: u64,
    failures: Vec<String>,
    dead: bool,
    slowest: Duration,
    peak_rss_kib: u64,
    peak_fds: usize,
    peak_threads: usize,
    peak_members: usize,
}

/// Until `stop`: every second, the daemon must exist and `status` must answer.
fn monitor(lan: &Lan, pid: u32, stop: &AtomicBool, log: &Mutex<MonitorLog>, t0: Instant) {
    while !stop.load(Ordering::Relaxed) {
        let p = proc_sample(pid);
        let asked = Instant::now();
        let st = lan.try_status_json();
        let took = asked.elapsed();
        {
            let mut l = log.lock().unwrap();
            l.polls += 1;
            l.slowest = l.slowest.max(took);
            match p {
                Some(p) => {
                    l.peak_rss_kib = l.peak_rss_kib.max(p.rss_kib);
                    l.peak_fds = l.peak_fds.max(p.fds);
                    l.peak_threads = l.peak_threads.max(p.threads);
                }
                None => {
                    l.dead = true;
                    l.failures.push(format!(
                        "{:.1}s: snoopcast is gone",
                        t0.elapsed().as_secs_f64()
                    ));
                    return;
                }
            }
            match st {
                Ok(v) => l.peak_members = l.peak_members.max(member_count(&v)),
                Err(e) => {
                    let t = t0.elapsed().as_secs_f64();
                    println!("soak: status did not answer at {t:.1}s: {e}");
                    l.failures.push(format!("{t:.1}s: {e}"));
                }
            }
        }
        for _ in 0..10 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// Sets the flag when dropped, also when the driver panics (the scope then still joins the
/// monitor thread, which must stop).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the process's fds are: "packet", "raw", "udp", "unix", "netlink" sockets (looked up
/// by inode in /proc/PID/net, the process's own namespace), else the link target
/// ("anon_inode:[eventpoll]", "pipe", a path), counted.
fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut tables = Vec::new();
    for t in ["packet", "raw", "udp", "unix", "netlink", "tcp"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).unwrap_or_default();
        tables.push((t, text));
    }
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        let target = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let kind = match target
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
        {
            Some(inode) => tables
                .iter()
                .find(|(_, text)| {
                    text.lines()
                        .skip(1)
                        .any(|l| l.split_whitespace().any(|w| w == inode))
                })
                .map_or("socket", |(t, _)| t)
                .to_string(),
            None if target.starts_with("pipe:") => "pipe".into(),
            None => target,
        };
        *out.entry(kind).or_insert(0) += 1;
    }
    out
}

fn kernel_list(v: &[(String, u32)]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.iter()
            .map(|(g, n)| format!("{g}x{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

#[test]
#[ignore = "soak test: run with sudo tests/soak.sh [DURATION]"]
fn soak_join_leave_expire_flap() {
    let duration = soak_duration();
    require_root!();
    let seed = soak_seed();
    println!(
        "soak: duration {}, seed {seed} (replay with SNOOPCAST_SOAK_SEED={seed})",
        humantime::format_duration(duration)
    );

    let mut b = Lan::builder("soak")
        .hosts(HOSTS_DN0)
        .downstream2_hosts(HOSTS_DN1)
        .src_addr("10.1.0.3/24");
    for i in V2_HOSTS {
        b = b.igmp_version(i, 2);
    }
    let lan = b.build();
    let kernel_baseline = lan.kernel_groups("up0");
    let daemon = start_snoopcast(&lan, &DAEMON_ARGS);
    let pid = daemon.pid();
    let log_path = lan.dir.join("driver.log");
    lan.add_log("soak driver", &log_path);

    // Streams for the whole run and then some.
    let secs = duration.as_secs() + 600;
    let count = (STREAM_PPS * secs).to_string();
    let rate_a = (STREAM_PPS * 4).to_string();
    let rate_b = (STREAM_PPS * 2).to_string();
    #[rustfmt::skip]
    let _sender_a = lan.spawn_sender(&[
        "--group", "239.1.1.1", "--group", "239.1.1.2", "--group", "239.1.1.3",
        "--group", "232.1.1.1", "--count", &count, "--rate", &rate_a, "--source", SRC_A,
    ]);
    #[rustfmt::skip]
    let _sender_b = lan.spawn_sender(&[
        "--group", "239.1.1.3", "--group", "232.1.1.1", "--count", &count, "--rate", &rate_b,
        "--source", SRC_B,
    ]);

    let t0 = Instant::now();
    let agent_life = Duration::from_secs(secs);
    let hosts: Vec<HostModel> = (1..=HOSTS_DN0 + HOSTS_DN1)
        .map(|i| HostModel {
            i,
            agent: lan.start_agent_for(i, &[], agent_life),
            v2: V2_HOSTS.contains(&i),
            dn: usize::from(i > HOSTS_DN0),
            specs: BTreeSet::new(),
            silent_until: None,
            link_down_until: None,
            settle_join: t0,
            settle_stale: t0,
        })
        .collect();
    let mut drv = Driver {
        lan: &lan,
        pid,
        rng: Rng(seed),
        hosts,
        dn_down_until: [None, None],
        up_down_until: None,
        last_iface_up: None,
        tally: Tally::default(),
        failures: Vec::new(),
        log: File::create(&log_path).expect("driver.log"),
        t0,
    };

    // Warm-up: everyone joins something, streams flow, everyone leaves; then the start
    // sample, with no members (as at the end).
    for k in 0..drv.hosts.len() {
        let spec = drv.hosts[k].joinable()[k % 3];
        drv.hosts[k].agent.join(spec);
        drv.hosts[k].specs.insert(spec.to_string());
        drv.hosts[k].settle_join = Instant::now() + Duration::from_secs(3);
    }
    drv.check("warm-up");
    for k in 0..drv.hosts.len() {
        for spec in std::mem::take(&mut drv.hosts[k].specs) {
            drv.hosts[k].agent.leave(&spec);
        }
    }
    wait_for_status(
        &lan,
        Duration::from_secs(15),
        "no members after the warm-up",
        |s| {
            member_count(s) == 0
                && s["upstream"]["joined"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
        },
    );
    sleep(Duration::from_secs(2));
    let start = sample(&lan, pid);
    let start_fds = fd_kinds(pid);
    println!(
        "soak: start sample: VmRSS {} KiB, fds {} {start_fds:?}, threads {}",
        start.proc.rss_kib, start.proc.fds, start.proc.threads
    );

    // The run: chaos, a check every CHECK_EVERY, status polled every second throughout.
    let stop = AtomicBool::new(false);
    let mon_log = Mutex::new(MonitorLog::default());
    let run_start = Instant::now();
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| monitor(&lan, pid, &stop, &mon_log, t0));
        let end = run_start + duration;
        let mut next_check = Instant::now() + CHECK_EVERY;
        let mut n = 0;
        while Instant::now() < end {
            drv.restore(false, false);
            if Instant::now() >= next_check {
                n += 1;
                drv.check(&format!("check {n}"));
                next_check = Instant::now() + CHECK_EVERY;
                continue;
            }
            drv.act();
            let pause = drv.rng.ms(150, 600);
            sleep(pause);
        }
        drv.check("final check");

        // The end: everyone leaves, everything comes back, a final expiry period.
        drv.restore(true, true);
        for k in 0..drv.hosts.len() {
            for spec in std::mem::take(&mut drv.hosts[k].specs) {
                drv.hosts[k].agent.leave(&spec);
            }
        }
        drv.note("all hosts left".into());
        sleep(GMI + Duration::from_secs(3));
    });
    let run_time = run_start.elapsed();
    let mon = mon_log.into_inner().unwrap();

    // Leftovers: wait (bounded) for the state to drain, then sample.
    let drained = wait_until(Duration::from_secs(15), || {
        lan.try_status_json().is_ok_and(|s| {
            member_count(&s) == 0
                && s["groups"].as_array().is_some_and(Vec::is_empty)
                && s["upstream"]["joined"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
        }) && lan.kernel_groups("up0") == kernel_baseline
    });
    let settled = wait_until(Duration::from_secs(35), || {
        proc_sample(pid).is_some_and(|p| p.fds == start.proc.fds && p.threads == start.proc.threads)
    });
    let end = sample(&lan, pid);
    let end_fds = fd_kinds(pid);
    let final_status = lan.status_json();
    if end_fds != start_fds {
        println!("soak: fds at the start {start_fds:?}, at the end {end_fds:?}");
    }

    let mut table = String::new();
    let _ = writeln!(table, "soak: {:<34} {:>12} {:>12}", "", "start", "end");
    let row = |t: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(t, "soak: {name:<34} {a:>12} {b:>12}");
    };
    row(
        &mut table,
        "daemon VmRSS (KiB)",
        start.proc.rss_kib.to_string(),
        end.proc.rss_kib.to_string(),
    );
    row(
        &mut table,
        "daemon VmHWM (KiB)",
        start.proc.hwm_kib.to_string(),
        end.proc.hwm_kib.to_string(),
    );
    row(
        &mut table,
        "open fds (/proc/PID/fd)",
        start.proc.fds.to_string(),
        end.proc.fds.to_string(),
    );
    row(
        &mut table,
        "threads (/proc/PID/task)",
        start.proc.threads.to_string(),
        end.proc.threads.to_string(),
    );
    row(
        &mut table,
        "members (status)",
        start.members.to_string(),
        end.members.to_string(),
    );
    row(
        &mut table,
        "groups listed (status)",
        start.groups.to_string(),
        end.groups.to_string(),
    );
    row(
        &mut table,
        "upstream joined (status)",
        start.upstream_joined.to_string(),
        end.upstream_joined.to_string(),
    );
    row(
        &mut table,
        "upstream join sockets (status)",
        start.join_sockets.to_string(),
        end.join_sockets.to_string(),
    );
    row(
        &mut table,
        "up0 groups (box /proc/net/igmp)",
        kernel_list(&start.kernel_up0),
        kernel_list(&end.kernel_up0),
    );
    row(
        &mut table,
        "copies_sent",
        start.copies_sent.to_string(),
        end.copies_sent.to_string(),
    );
    row(
        &mut table,
        "copies_dropped",
        start.copies_dropped.to_string(),
        end.copies_dropped.to_string(),
    );
    print!("{table}");
    let counters = &final_status["counters"];
    let c = |k: &str| counters[k].as_u64().unwrap_or(0);
    println!(
        "soak: run {:.0}s (+ warm-up and end), baseline up0 groups {}; peaks during the run: \
         VmRSS {} KiB, fds {}, threads {}, members {}",
        run_time.as_secs_f64(),
        kernel_list(&kernel_baseline),
        mon.peak_rss_kib,
        mon.peak_fds,
        mon.peak_threads,
        mon.peak_members
    );
    println!(
        "soak: status polled {} times, {} failures, slowest {} ms; daemon alive: {}",
        mon.polls,
        mon.failures.len(),
        mon.slowest.as_millis(),
        !mon.dead
    );
    let t = &drv.tally;
    println!(
        "soak: actions: {} joins, {} leaves ({} not heard), {} silences, {} host link flaps, \
         {} downstream flaps, {} downstream re-creations, {} upstream flaps",
        t.joins,
        t.leaves,
        t.hidden_leaves,
        t.silences,
        t.host_flaps,
        t.dn_flaps,
        t.dn_recreates,
        t.up_flaps
    );
    println!(
        "soak: checks: {} ({} host checks, {} joined streams delivered, {} unjoined streams \
         absent), {} mismatches",
        t.checks,
        t.hosts_checked,
        t.streams_checked,
        t.negatives_checked,
        drv.failures.len()
    );
    println!(
        "soak: counters: members_expired {}, members_dropped_iface {}, reports_v2 {}, \
         reports_v3 {}, leaves_v2 {}, queries_sent {}, report_send_errors {}, \
         capture_drops {}, events_dropped {}, igmp_malformed {}",
        c("members_expired"),
        c("members_dropped_iface"),
        c("reports_v2"),
        c("reports_v3"),
        c("leaves_v2"),
        c("queries_sent"),
        c("report_send_errors"),
        c("capture_drops"),
        c("events_dropped"),
        c("igmp_malformed")
    );

    // Corrupt or duplicate datagrams over the whole run.
    let mut bad = Vec::new();
    for h in std::mem::take(&mut drv.hosts) {
        let r = h.agent.finish();
        if r.sock_bad_or_dup() > 0 {
            bad.push(format!(
                "h{}: {} corrupt or duplicate",
                h.i,
                r.sock_bad_or_dup()
            ));
        }
    }

    // Until snoopcast notices a downstream went down (it looks about once a second), copies
    // to it fail and are counted as dropped: the bound allows DROP_PER_OUTAGE of copies at
    // the run's mean rate per downstream outage, plus DROP_BOUND of everything.
    let sent = end.copies_sent.saturating_sub(start.copies_sent);
    let dropped = end.copies_dropped.saturating_sub(start.copies_dropped);
    let outages = t.dn_flaps + t.dn_recreates;
    let rate = sent as f64 / run_time.as_secs_f64();
    let drop_allowed =
        DROP_BOUND * sent as f64 + outages as f64 * DROP_PER_OUTAGE.as_secs_f64() * rate;
    println!(
        "soak: copies during the run: {sent} sent, {dropped} dropped ({:.3} %); bound {:.0} = \
         {} % of sent + {} downstream outages x {:?} x {:.0} copies/s",
        dropped as f64 * 100.0 / sent.max(1) as f64,
        drop_allowed,
        DROP_BOUND * 100.0,
        outages,
        DROP_PER_OUTAGE,
        rate
    );
    println!(
        "soak: bounds: end VmRSS <= start + {} KiB; fds and threads equal to the start",
        RSS_GROWTH_KIB
    );

    assert!(!mon.dead, "snoopcast died during the soak");
    assert!(
        mon.failures.is_empty(),
        "status did not always answer: {:?}",
        mon.failures
    );
    assert!(
        drv.failures.is_empty(),
        "{} mismatches between the table and the model:\n{}",
        drv.failures.len(),
        drv.failures.join("\n")
    );
    assert!(
        t.checks >= 2 && t.streams_checked > 0 && t.negatives_checked > 0,
        "the checks checked too little: {t:?}"
    );
    assert!(
        bad.is_empty(),
        "agents got corrupt or duplicate datagrams: {bad:?}"
    );
    assert!(
        drained,
        "leftovers after every host left and GMI passed: members {}, upstream joined {}, up0 \
         groups {} (baseline {})\nstatus: {final_status:#}",
        end.members,
        end.upstream_joined,
        kernel_list(&end.kernel_up0),
        kernel_list(&kernel_baseline)
    );
    assert_eq!(end.members, 0, "members left over");
    assert_eq!(end.upstream_joined, 0, "upstream joins left over");
    assert_eq!(
        end.kernel_up0, kernel_baseline,
        "box kernel groups on up0 left over"
    );
    assert!(
        settled,
        "fds/threads did not return to the start values: start {:?}, end {:?}",
        start.proc, end.proc
    );
    assert!(
        end.proc.rss_kib <= start.proc.rss_kib + RSS_GROWTH_KIB,
        "VmRSS grew from {} KiB to {} KiB (bound: + {RSS_GROWTH_KIB} KiB)",
        start.proc.rss_kib,
        end.proc.rss_kib
    );
    assert!(sent > 0, "no copies were sent during the run");
    assert!(
        dropped as f64 <= drop_allowed,
        "copies_dropped {dropped} is over the bound {drop_allowed:.0} (copies_sent {sent})"
    );
    assert!(
        c("members_expired") > 0,
        "no member expired: the silences did not exercise expiry"
    );
    daemon.stop_ok();
}
