//! `snoopcast status` on a running daemon: per-group upstream traffic, the `--group` and
//! `--interface` filters, `--no-headers`, and `--watch` rates against a stream of known rate.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- [sw: br0] -- h1 (A), h2 (B)
//!   mcast_send A                          dn1 --veth-- [sw2: br0] -- h3 (A)
//! ```

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const A: &str = "239.1.7.1";
const B: &str = "239.1.7.2";
/// The stream's rate (datagrams per second) and length.
const RATE: u64 = 400;
const COUNT: u64 = 1_600;

fn group<'a>(status: &'a Value, g: &str) -> &'a Value {
    status["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|x| x["group"] == g))
        .unwrap_or_else(|| panic!("no group {g} in status: {status:#}"))
}

/// `snoopcast status ARGS` in the box namespace: its stdout (it must succeed).
fn status_out(lan: &Lan, args: &[&str]) -> String {
    let ctl = lan.control_path();
    let mut argv = vec![
        snoopcast_bin(),
        "status".into(),
        "--control".into(),
        ctl.to_str().unwrap().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ns_exec(&lan.box_ns(), &argv, Duration::from_secs(5));
    assert!(out.ok(), "status {args:?}: {} {}", out.status, out.stderr);
    out.stdout
}

fn status_json_with(lan: &Lan, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&status_out(lan, &a)).expect("status --json is JSON")
}

/// The PKT/S column (second to last) of the line of `view` that starts with `prefix` and
/// contains `also`; None when it has no number there ("-": no rate yet).
fn pkt_rate(view: &str, prefix: &str, also: &str) -> Option<f64> {
    let line = view
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains(also))?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    let v = cols[cols.len() - 2];
    let (num, mult) = match v.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => (v, 1.0),
    };
    num.parse::<f64>().ok().map(|n| n * mult)
}

#[test]
fn group_traffic_filters_and_watch_rates() {
    require_root!();
    let lan = Lan::builder("stview").hosts(2).downstream2_hosts(1).build();
    let daemon = start_snoopcast(&lan, &[]);
    let _h1 = lan.start_agent(1, &[A]);
    let _h2 = lan.start_agent(2, &[B]);
    let _h3 = lan.start_agent(3, &[A]);
    let (h1, h2, h3) = (
        lan.host(1).clone(),
        lan.host(2).clone(),
        lan.host(3).clone(),
    );
    wait_for_status(&lan, Duration::from_secs(10), "h1, h3 in A, h2 in B", |s| {
        is_member(s, A, &h1) && is_member(s, B, &h2) && is_member(s, A, &h3)
    });
    // The forwarding snapshot is rebuilt shortly after the table changes.
    settle();
    let s0 = lan.status_json();
    for g in [A, B] {
        let u = &group(&s0, g)["upstream"];
        assert_eq!(u["packets"], 0, "{g} before any stream: {u}");
        assert!(u["last_packet_ms_ago"].is_null(), "{g}: {u}");
    }
    let text = status_out(&lan, &[]);
    assert!(text.contains("Groups, as they arrive upstream"), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains(A) || l.contains(B))
            .any(|l| l.contains("no traffic")),
        "no traffic yet: {text}"
    );

    // A alone, RATE per second for COUNT / RATE = 4 s; `status --watch 1s` from 0.7 s to
    // 3.4 s draws views at about 0.7, 1.7 and 2.7 s: two intervals inside the stream.
    let sender = lan.spawn_sender(&[
        "--group",
        A,
        "--count",
        &COUNT.to_string(),
        "--rate",
        &RATE.to_string(),
    ]);
    let started = Instant::now();
    sleep(Duration::from_millis(700));
    let ctl = lan.control_path();
    let watch = Command::new("ip")
        .args(["netns", "exec", &lan.box_ns(), &snoopcast_bin(), "status"])
        .args(["--control", ctl.to_str().unwrap(), "--watch", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn status --watch");
    sleep(Duration::from_millis(3_400).saturating_sub(started.elapsed()));
    // SIGINT, as Ctrl-C: the view loop ends with the process.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    let out = watch.wait_with_output().expect("status --watch output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = sender.wait(Duration::from_secs(20));
    let sent = report.sent(A);
    assert_eq!(sent, COUNT, "the sender sent what it was told");

    let views: Vec<String> = text
        .split("\nsnoopcast ")
        .map(str::to_string)
        .filter(|v| v.contains("GROUP"))
        .collect();
    assert!(
        views.len() >= 3,
        "--watch 1s over 2.7 s draws three views: {text}"
    );
    assert!(
        pkt_rate(&views[0], &format!("  {A}"), "").is_none(),
        "the first view has no rates yet: {}",
        views[0]
    );
    for (k, v) in views.iter().enumerate().skip(1).take(2) {
        let group = pkt_rate(v, &format!("  {A}"), "")
            .unwrap_or_else(|| panic!("view {k}: no rate for {A}: {v}"));
        let member =
            pkt_rate(v, A, &h1.mac).unwrap_or_else(|| panic!("view {k}: no rate for h1: {v}"));
        eprintln!("view {k}: {A} upstream {group} pkt/s, h1 {member} pkt/s (sent {RATE}/s)");
        for (what, r) in [("upstream", group), ("h1", member)] {
            assert!(
                (r - RATE as f64).abs() <= RATE as f64 * 0.10,
                "view {k}: {what} {r} pkt/s, sent {RATE}/s: {v}"
            );
        }
        let b = pkt_rate(v, &format!("  {B}"), "").expect("B has a rate, 0");
        assert_eq!(b, 0.0, "view {k}: B has no stream: {v}");
    }

    // Counted once per packet upstream, not per copy (A has two members).
    wait_for_status(&lan, Duration::from_secs(5), "A's packets counted", |s| {
        group(s, A)["upstream"]["packets"] == COUNT
    });
    let s1 = lan.status_json();
    let a = group(&s1, A);
    let m1 = member(&s1, A, &h1).expect("h1 in A");
    let ip_len = m1["bytes"].as_u64().unwrap() / m1["packets"].as_u64().unwrap();
    assert_eq!(a["upstream"]["bytes"].as_u64(), Some(COUNT * ip_len), "{a}");
    assert_eq!(group(&s1, B)["upstream"]["packets"], 0, "B had no stream");
    assert!(group(&s1, B)["upstream"]["last_packet_ms_ago"].is_null());
    let last0 = a["upstream"]["last_packet_ms_ago"]
        .as_u64()
        .expect("A had packets");
    sleep(Duration::from_secs(1));
    let s2 = lan.status_json();
    let last1 = group(&s2, A)["upstream"]["last_packet_ms_ago"]
        .as_u64()
        .unwrap();
    let up = s2["uptime_ms"].as_u64().unwrap() - s1["uptime_ms"].as_u64().unwrap();
    assert_eq!(last1 - last0, up, "the age grows with the daemon's clock");

    // Filters: by group, by interface; rows only.
    let f = status_json_with(&lan, &["--group", B]);
    let gs: Vec<&str> = f["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(gs, [B], "{f:#}");
    assert_eq!(upstream_joined(&f), [B.to_string()], "{f:#}");
    let f = status_json_with(&lan, &["--interface", "dn1"]);
    let a = group(&f, A);
    let macs: Vec<&str> = a["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, [h3.mac.to_lowercase().as_str()], "{f:#}");
    assert_eq!(
        f["groups"].as_array().unwrap().len(),
        1,
        "B has no one on dn1"
    );
    let names: Vec<&str> = f["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dn1"]);
    let rows = status_out(&lan, &["--no-headers", "--group", A]);
    assert_eq!(rows.lines().count(), 2, "h1 and h3: {rows}");
    assert!(rows.lines().all(|l| l.starts_with(A)), "{rows}");

    // Silent for more than 5 s: "no traffic" in the text view.
    sleep(Duration::from_millis(5_200).saturating_sub(Duration::from_millis(last1)));
    let text = status_out(&lan, &["--group", A]);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("  {A}")))
        .unwrap_or_else(|| panic!("no group row: {text}"));
    assert!(line.contains("no traffic ("), "{line}");
    let all = status_out(&lan, &["--all-counters"]);
    assert!(all.contains("copies_dropped"), "every counter: {all}");
    assert!(
        !text.contains("copies_dropped "),
        "zero counters hidden: {text}"
    );
    daemon.stop_ok();
}

/// An IGMPv2 general query from `src` out of `iface` in namespace `ns`, built with scapy
/// (TTL 1, Router Alert, to 224.0.0.1).
fn send_v2_query(ns: &str, iface: &str, src: &str) {
    let script = format!(
        "from scapy.all import Ether, IP, IPOption_Router_Alert, sendp, get_if_hwaddr\n\
         from scapy.contrib.igmp import IGMP\n\
         f = Ether(src=get_if_hwaddr('{iface}'), dst='01:00:5e:00:00:01') / \
         IP(src='{src}', dst='224.0.0.1', ttl=1, options=[IPOption_Router_Alert()]) / \
         IGMP(type=0x11, mrcode=100, gaddr='0.0.0.0')\n\
         sendp(f, iface='{iface}', verbose=0)\n"
    );
    let out = ns_exec(ns, &[python(), "-c", &script], Duration::from_secs(30));
    assert!(
        out.ok(),
        "scapy query in {ns}: {} {}",
        out.status,
        out.stderr
    );
}

/// The querier heard upstream (the router that keeps the box's memberships) and another
/// querier on a downstream, each with its address and IGMP version.
#[test]
fn queriers_heard_upstream_and_downstream_show_address_and_version() {
    require_root!();
    let lan = Lan::builder("stqry").hosts(1).build();
    let daemon = start_snoopcast(&lan, &[]);
    let s = lan.status_json();
    assert!(s["upstream"]["querier"].is_null(), "none heard yet: {s:#}");
    send_v2_query(&lan.src_ns(), "s0", "10.1.0.1");
    // dn0 has no address: an addressed querier there wins the election.
    let h1 = lan.host(1).clone();
    send_v2_query(&h1.ns, "eth0", &h1.ip);
    wait_for_status(&lan, Duration::from_secs(5), "both queriers heard", |s| {
        !s["upstream"]["querier"].is_null() && !iface_status(s, "dn0")["other_querier"].is_null()
    });
    let s = lan.status_json();
    let q = &s["upstream"]["querier"];
    assert_eq!(q["address"], "10.1.0.1", "{s:#}");
    assert_eq!(q["version"], 2, "{s:#}");
    assert!(q["last_seen_ms_ago"].as_u64().unwrap() < 5_000, "{q}");
    let dn = iface_status(&s, "dn0");
    assert_eq!(dn["other_querier"], h1.ip.as_str(), "{dn}");
    assert_eq!(dn["other_querier_version"], 2, "{dn}");
    assert_eq!(dn["querier"], "non-querier", "{dn}");
    let text = status_out(&lan, &[]);
    assert!(
        text.contains("IGMP querier 10.1.0.1 (v2), last query"),
        "{text}"
    );
    assert!(
        text.contains(&format!("querier heard: {} (v2)", h1.ip)),
        "{text}"
    );
    assert!(
        daemon
            .log_text()
            .contains("upstream IGMP querier 10.1.0.1, version 2"),
        "one log line when the upstream querier appears"
    );
    daemon.stop_ok();
}
