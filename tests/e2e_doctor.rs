//! `snoopcast doctor` end to end, run in the box namespace against a running daemon.
//!
//! ```text
//!  [src] s0 10.1.0.1 --veth-- up0 10.1.0.2 [box: snoopcast, doctor] dn0 10.2.0.x --veth-- [sw] -- [h1]
//!   (querier.py: IGMPv3 queries,                                   dn1 (planted: no address,
//!    clean LAN only)                                                    in bridge scdbr0) -- [sw2] -- [h2]
//! ```
//!
//! The clean LAN (dn0 10.2.0.1, an IGMPv3 querier upstream, `--no-ipv6`) gives ok on every
//! line. The planted LAN has one cause per check: an IGMPv2 querier h1 (10.2.0.11) below
//! dn0's 10.2.0.100, dn1 without an address and enslaved to a flooding bridge, no upstream
//! querier, strict rp_filter on up0 (and no default route), an nftables rule dropping IGMP;
//! then a daemon restarted with `--query-interval 400s`. net.core.rmem_max is not per
//! namespace on this kernel (writing it in a namespace gives EINVAL), so the clean LAN's
//! rmem line is first checked against the machine's value, then doctor runs in a mount
//! namespace of its own with a file bound over /proc/sys/net/core/rmem_max: 8 MiB gives
//! all ok and exit 0, 212992 an rmem warning and exit 1.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The line of check `name` in doctor's output ("ok|warn|fail NAME: ...").
fn lines_of<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| {
            l.split_once(": ")
                .and_then(|(head, _)| head.split_once(' '))
                .is_some_and(|(_, n)| n == name)
        })
        .collect()
}

fn level(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

/// Runs doctor in the box against the test daemon; returns (exit code, stdout).
fn doctor(lan: &Lan, extra: &[&str]) -> (i32, String) {
    let control = lan.control_path();
    let bin = snoopcast_bin();
    let mut argv = vec![
        bin.as_str(),
        "doctor",
        "--control",
        control.to_str().unwrap(),
    ];
    if !extra.contains(&"--drops-interval") {
        argv.extend(["--drops-interval", "500ms"]);
    }
    argv.extend_from_slice(extra);
    let o = ns_exec(&lan.box_ns(), &argv, Duration::from_secs(30));
    eprintln!("doctor {extra:?}:\n{}{}", o.stdout, o.stderr);
    (o.status.code().unwrap_or(-1), o.stdout)
}

/// tests/helpers/querier.py in `ns`, killed on drop.
struct Querier(Child);

impl Querier {
    fn start(ns: &str, iface: &str, src: &str, version: u8) -> Querier {
        let script = format!("{HELPERS}/querier.py");
        let v = version.to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, python(), &script, "--iface", iface])
            .args(["--src", src, "--version", &v, "--interval", "0.3"])
            .stdin(Stdio::null())
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

/// Doctor as [`doctor`], but seeing `rmem_max` in net.core.rmem_max: the file is bound over
/// /proc/sys/net/core/rmem_max in a mount namespace of doctor's own (`unshare -m`), so the
/// machine's setting, which is not per network namespace on this kernel, stays untouched.
fn doctor_with_rmem(lan: &Lan, rmem_max: u64) -> (i32, String) {
    let fake = lan.dir.join(format!("rmem_max.{rmem_max}"));
    std::fs::write(&fake, format!("{rmem_max}\n")).unwrap();
    let control = lan.control_path();
    let script = format!(
        "mount --bind {} /proc/sys/net/core/rmem_max && exec {} doctor --control {} \
         --drops-interval 500ms",
        fake.display(),
        snoopcast_bin(),
        control.display()
    );
    let o = ns_exec(
        &lan.box_ns(),
        &["unshare", "-m", "sh", "-c", &script],
        Duration::from_secs(30),
    );
    eprintln!("doctor (rmem_max {rmem_max}):\n{}{}", o.stdout, o.stderr);
    (o.status.code().unwrap_or(-1), o.stdout)
}

fn machine_rmem_ok(lan: &Lan) -> bool {
    let v: u64 = ns_run(&lan.box_ns(), &["cat", "/proc/sys/net/core/rmem_max"])
        .trim()
        .parse()
        .unwrap();
    v >= 8 << 20
}

/// Short timers: a membership interval of 2 s (1 x 1 s + 2 x 500 ms), so a missing upstream querier shows at once.
const FAST: &[&str] = &[
    "--no-ipv6",
    "--query-interval",
    "1s",
    "--query-response-interval",
    "500ms",
    "--robustness",
    "1",
];

#[test]
fn clean_lan_is_all_ok() {
    require_root!();
    let lan = Lan::builder("doc1").hosts(1).build();
    let bx = lan.box_ns();
    ns_run(&bx, &["ip", "addr", "add", "10.2.0.1/24", "dev", "dn0"]);
    let _q = Querier::start(&lan.src_ns(), "s0", "10.1.0.1", 3);
    let _d = start_snoopcast(&lan, FAST);
    // Past one membership interval, with the upstream querier heard.
    wait_for_status(&lan, Duration::from_secs(10), "the upstream querier", |s| {
        s["upstream"]["querier"]["address"] == "10.1.0.1" && s["uptime_ms"].as_u64() > Some(2000)
    });
    let (code, out) = doctor(&lan, &[]);
    let rmem_ok = machine_rmem_ok(&lan);
    // rmem is judged apart: it depends on the machine here.
    for name in snoopcast::doctor::checks::CHECKS
        .into_iter()
        .filter(|&n| n != "rmem")
    {
        let l = lines_of(&out, name);
        assert!(!l.is_empty(), "{name} missing:\n{out}");
        for l in l {
            assert_eq!(level(l), "ok", "{name}:\n{out}");
            assert!(
                !l.contains("not checked"),
                "{name} must look on the clean LAN: {l}"
            );
        }
    }
    assert!(lines_of(&out, "upstream-querier")[0].contains("IGMPv3 querier 10.1.0.1"));
    let rmem = lines_of(&out, "rmem");
    assert_eq!(level(rmem[0]), if rmem_ok { "ok" } else { "warn" }, "{out}");
    assert_eq!(code, if rmem_ok { 0 } else { 1 }, "{out}");
    // The same LAN where net.core.rmem_max holds the capture buffer: every line ok, exit 0;
    // and where it is the kernel's default 212992: rmem warns, exit 1.
    let (code, out) = doctor_with_rmem(&lan, 8 << 20);
    assert!(
        out.lines().all(|l| level(l) == "ok") && !out.is_empty(),
        "every check ok:\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = doctor_with_rmem(&lan, 212_992);
    let rmem = lines_of(&out, "rmem");
    assert_eq!(level(rmem[0]), "warn", "{out}");
    assert!(
        rmem[0].contains("212992") && rmem[0].contains("sysctl -w"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| level(l) != "ok").count(),
        1,
        "only rmem:\n{out}"
    );
    assert_eq!(code, 1, "{out}");
}

#[test]
fn each_planted_cause_fires_its_check() {
    require_root!();
    let lan = Lan::builder("doc2").hosts(1).downstream2_hosts(1).build();
    let bx = lan.box_ns();
    ns_run(&bx, &["ip", "addr", "add", "10.2.0.100/24", "dev", "dn0"]);
    // dn1: no address, a port of a bridge that floods multicast.
    ns_run(
        &bx,
        &[
            "ip",
            "link",
            "add",
            "scdbr0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    );
    ns_run(&bx, &["ip", "link", "set", "dn1", "master", "scdbr0"]);
    ns_run(&bx, &["ip", "link", "set", "scdbr0", "up"]);
    ns_sysctl(&bx, "net.ipv4.conf.up0.rp_filter", "1");
    ns_run(&bx, &["nft", "add", "table", "inet", "scdoc"]);
    ns_run(
        &bx,
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "scdoc",
            "in",
            "{ type filter hook input priority 0 ; }",
        ],
    );
    ns_run(
        &bx,
        &[
            "nft", "add", "rule", "inet", "scdoc", "in", "meta", "l4proto", "igmp", "drop",
        ],
    );
    let h1 = lan.host(1).clone();
    let _q = Querier::start(&h1.ns, "eth0", &h1.ip, 2);
    let d = start_snoopcast(&lan, FAST);
    wait_for_status(&lan, Duration::from_secs(10), "h1 elected on dn0", |s| {
        s["interfaces"][0]["other_querier"] == h1.ip.as_str()
            && s["uptime_ms"].as_u64() > Some(2000)
    });
    let (code, out) = doctor(&lan, &[]);
    assert_eq!(code, 1, "{out}");
    let has = |name: &str, lvl: &str, needle: &str| {
        let l = lines_of(&out, name);
        assert!(
            l.iter().any(|l| level(l) == lvl && l.contains(needle)),
            "{name}: expected a {lvl} line with {needle:?}:\n{out}"
        );
    };
    has("daemon", "ok", "answers");
    has(
        "other-querier",
        "warn",
        &format!("IGMPv2 querier {} is elected on dn0", h1.ip),
    );
    has("bridge-port", "warn", "dn1 is a port of bridge scdbr0");
    has("ipv4-address", "warn", "dn1 has no IPv4 address");
    has("ipv4-address", "ok", "dn0 has 10.2.0.100");
    has(
        "upstream-querier",
        "warn",
        "no IGMP general query heard on up0",
    );
    has("rp-filter", "warn", "rp_filter 1");
    has("firewall", "fail", "meta l4proto igmp drop");
    has("mac-ageing", "ok", "below");
    let rmem_ok = machine_rmem_ok(&lan);
    has("rmem", if rmem_ok { "ok" } else { "warn" }, "rmem_max");
    drop(d);
    // The query interval: a daemon with 400 s.
    let _d = start_snoopcast(&lan, &["--no-ipv6", "--query-interval", "400s"]);
    let (code, out) = doctor(&lan, &[]);
    assert_eq!(code, 1, "{out}");
    let l = lines_of(&out, "mac-ageing");
    assert!(
        l.iter()
            .any(|l| level(l) == "warn" && l.contains("query interval 6m 40s")),
        "{out}"
    );
    // Run options name the interfaces and the timers instead of the daemon's.
    let (_, out) = doctor(&lan, &["--upstream", "up0", "--downstream", "dn0"]);
    let l = lines_of(&out, "mac-ageing");
    assert!(l.iter().all(|l| level(l) == "ok"), "{out}");
    assert!(
        lines_of(&out, "bridge-port")
            .iter()
            .all(|l| level(l) == "ok"),
        "{out}"
    );
}

/// Drops growing now: a stream as fast as mcast_send.py goes while the daemon is stopped
/// (SIGSTOP) for 2 s at a time, so its 8 MiB upstream capture queue overflows; doctor's two
/// snapshots 5 s apart see capture_drops grow and warn capture-drops. Stopped again, the
/// stream gone, the drops of the past are ok.
#[test]
fn capture_drops_growing_warn() {
    require_root!();
    let lan = Lan::builder("doc3").hosts(1).build();
    let bx = lan.box_ns();
    ns_run(&bx, &["ip", "addr", "add", "10.2.0.1/24", "dev", "dn0"]);
    let d = start_snoopcast(&lan, FAST);
    let sender = lan.spawn_sender(&[
        "--group",
        "239.9.9.9",
        "--count",
        "3000000",
        "--rate",
        "1000000",
        "--size",
        "1400",
    ]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d, stopper) = {
        let d = std::sync::Arc::new(d);
        let (d2, stop2) = (d.clone(), stop.clone());
        let t = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                d2.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_secs(2));
                d2.signal(libc::SIGCONT);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        (d, t)
    };
    let (code, out) = doctor(&lan, &["--drops-interval", "5s"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    stopper.join().unwrap();
    d.signal(libc::SIGCONT);
    drop(sender);
    assert_eq!(code, 1, "{out}");
    let l = lines_of(&out, "capture-drops");
    assert!(
        l.iter()
            .any(|l| level(l) == "warn" && l.contains("capture_drops +")),
        "{out}"
    );
    // The stream gone: wait until the counter stands still.
    let drops = || lan.status_json()["counters"]["capture_drops"].as_u64();
    let mut last = drops();
    assert!(
        wait_until(Duration::from_secs(15), || {
            std::thread::sleep(Duration::from_secs(1));
            let now = drops();
            std::mem::replace(&mut last, now) == now
        }),
        "capture_drops never stopped growing"
    );
    let (_, out) = doctor(&lan, &["--drops-interval", "1s"]);
    let l = lines_of(&out, "capture-drops");
    assert!(
        l.iter()
            .any(|l| level(l) == "ok" && l.contains("since start: capture_drops")),
        "{out}"
    );
}

/// An IGMPv2 querier upstream (querier.py v2 from 10.1.0.1 in src) and a member that joined
/// source-specific (232.1.1.1 from 10.1.0.1): upstream-querier warns that the SSM joins are
/// useless there. With strict rp_filter on up0 the querier, routed back through up0, is ok
/// for rp-filter's known sources, but the missing default route still warns.
#[test]
fn igmpv2_upstream_querier_with_ssm_members_warns() {
    require_root!();
    let lan = Lan::builder("doc4").hosts(1).build();
    let bx = lan.box_ns();
    ns_run(&bx, &["ip", "addr", "add", "10.2.0.1/24", "dev", "dn0"]);
    let _q = Querier::start(&lan.src_ns(), "s0", "10.1.0.1", 2);
    let _d = start_snoopcast(&lan, FAST);
    let _a = lan.start_agent(1, &["232.1.1.1@10.1.0.1"]);
    wait_for_status(
        &lan,
        Duration::from_secs(10),
        "the SSM join and the v2 querier",
        |s| {
            s["upstream"]["querier"]["version"] == 2
                && s["upstream"]["joined"]
                    .as_array()
                    .is_some_and(|j| j.iter().any(|j| j["group"] == "232.1.1.1"))
        },
    );
    let (code, out) = doctor(&lan, &[]);
    assert_eq!(code, 1, "{out}");
    let l = lines_of(&out, "upstream-querier");
    assert!(
        l.iter().any(|l| level(l) == "warn"
            && l.contains("10.1.0.1")
            && l.contains("IGMPv2")
            && l.contains("232.1.1.1")),
        "{out}"
    );
    ns_sysctl(&bx, "net.ipv4.conf.up0.rp_filter", "1");
    let (_, out) = doctor(&lan, &[]);
    let l = lines_of(&out, "rp-filter");
    assert!(
        l.iter()
            .any(|l| level(l) == "warn" && l.contains("default route")),
        "{out}"
    );
    // A default route through up0: every source routes back, strict is fine.
    ns_run(
        &bx,
        &[
            "ip", "route", "add", "default", "via", "10.1.0.1", "dev", "up0",
        ],
    );
    let (_, out) = doctor(&lan, &[]);
    let l = lines_of(&out, "rp-filter");
    assert!(
        l.iter().all(|l| level(l) == "ok") && l[0].contains("strict"),
        "{out}"
    );
}
