//! The metrics: `status --format openmetrics` and `--metrics-listen` on the test LAN.
//!
//! ```text
//!  [src] s0 10.1.0.1 --veth-- up0 10.1.0.2 [box: snoopcast, metrics on 127.0.0.1:9808]
//!                                          dn0 --veth-- p0 [sw: br0, dumb] p1, p2 -- [h1] [h2]
//! ```
//!
//! h1 and h2 join 239.1.1.1. The OpenMetrics text of both ways is parsed with
//! prometheus_client (tests/helpers/metrics_client.py parse) and compared with `status
//! --json`; then, while a stream flows to the members, the endpoint gets a slowloris client,
//! a 1 MiB request line and 100 connections at once, and `status`, the endpoint and the
//! stream must all keep going.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const G: &str = "239.1.1.1";
const ADDR: &str = "127.0.0.1";
const MPORT: &str = "9808";

/// metrics_client.py in the box; its JSON output.
fn client(lan: &Lan, args: &[&str], stdin: Option<&str>, timeout: Duration) -> Value {
    let script = format!("{HELPERS}/metrics_client.py");
    let mut argv = vec!["ip", "netns", "exec"];
    let ns = lan.box_ns();
    argv.push(&ns);
    argv.push(python());
    argv.push(&script);
    argv.extend_from_slice(args);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn metrics_client.py");
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            i.write_all(text.as_bytes()).unwrap();
        }
    }
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < timeout,
            "metrics_client.py {args:?}: still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "metrics_client.py {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `status --format openmetrics [extra]` in the box.
fn status_openmetrics(lan: &Lan, extra: &[&str]) -> String {
    let ctl = lan.control_path();
    let bin = snoopcast_bin();
    let mut argv = vec![
        bin.as_str(),
        "status",
        "--control",
        ctl.to_str().unwrap(),
        "--format",
        "openmetrics",
    ];
    argv.extend_from_slice(extra);
    let out = ns_exec(&lan.box_ns(), &argv, Duration::from_secs(5));
    assert!(out.ok(), "status --format openmetrics: {}", out.stderr);
    out.stdout
}

/// One GET of the endpoint: (status, headers, body).
fn scrape(lan: &Lan) -> (u64, Value, String) {
    let v = client(lan, &["get", ADDR, MPORT], None, Duration::from_secs(10));
    (
        v["status"].as_u64().unwrap_or(0),
        v["headers"].clone(),
        v["body"].as_str().unwrap_or_default().to_string(),
    )
}

/// Parsed families: name -> samples [name, labels, value].
fn parse(lan: &Lan, text: &str) -> Value {
    client(lan, &["parse"], Some(text), Duration::from_secs(10))
}

/// The value of the sample `name` with these labels (all of them) in parsed families.
fn value(fams: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    fams.as_object()?
        .values()
        .flat_map(|f| f["samples"].as_array().cloned().unwrap_or_default())
        .find(|s| {
            s[0] == name
                && labels.iter().all(|(k, v)| s[1][*k] == *v)
                && s[1].as_object().map_or(0, |m| m.len()) == labels.len()
        })
        .and_then(|s| s[2].as_f64())
}

/// The counters, members' packets and member count of a status snapshot, as the parsed
/// OpenMetrics should show them; compared field by field.
fn expected(status: &Value) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for (k, v) in status["counters"].as_object().unwrap() {
        m.insert(format!("snoopcast_{k}_total"), v.as_f64().unwrap());
    }
    m.insert("snoopcast_members".into(), member_count(status) as f64);
    for x in members(status, G) {
        let key = format!(
            "snoopcast_member_packets_total{{interface={},group={G},mac={},ip={}}}",
            x["interface"].as_str().unwrap(),
            x["mac"].as_str().unwrap(),
            x["ip"].as_str().unwrap()
        );
        m.insert(key, x["packets"].as_f64().unwrap());
    }
    m
}

fn observed(fams: &Value, status: &Value) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for k in status["counters"].as_object().unwrap().keys() {
        let name = format!("snoopcast_{k}_total");
        if let Some(v) = value(fams, &name, &[]) {
            m.insert(name, v);
        }
    }
    if let Some(v) = value(fams, "snoopcast_members", &[]) {
        m.insert("snoopcast_members".into(), v);
    }
    for x in members(status, G) {
        let (i, mac, ip) = (
            x["interface"].as_str().unwrap(),
            x["mac"].as_str().unwrap(),
            x["ip"].as_str().unwrap(),
        );
        let l = [("interface", i), ("group", G), ("mac", mac), ("ip", ip)];
        if let Some(v) = value(fams, "snoopcast_member_packets_total", &l) {
            m.insert(
                format!(
                    "snoopcast_member_packets_total{{interface={i},group={G},mac={mac},ip={ip}}}"
                ),
                v,
            );
        }
    }
    m
}

/// Status JSON, then `get()`, then status JSON again, until both JSONs agree on what is
/// compared (a query may go out in between); the text and the snapshot it must match.
fn consistent(lan: &Lan, get: impl Fn() -> String) -> (String, Value) {
    for _ in 0..5 {
        let before = lan.status_json();
        let text = get();
        let after = lan.status_json();
        // A scrape counts itself (metrics_scrapes, before it renders): the text has the
        // count of `after`, not of `before`.
        let stable = |s: &Value| {
            let mut e = expected(s);
            e.remove("snoopcast_metrics_scrapes_total");
            e
        };
        if stable(&before) == stable(&after) {
            return (text, after);
        }
    }
    panic!("the counters never stood still for a status, a scrape and a status");
}

#[test]
fn metrics_parse_match_status_and_survive_hostile_clients() {
    require_root!();
    let lan = Lan::builder("metrics").hosts(2).build();
    let daemon = start_snoopcast(
        &lan,
        &[
            "--query-interval",
            "120s",
            "--query-response-interval",
            "1s",
            "--metrics-listen",
            &format!("{ADDR}:{MPORT}"),
        ],
    );
    let mut h1 = lan.start_agent(1, &[G]);
    let mut h2 = lan.start_agent(2, &[G]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, Duration::from_secs(10), "h1 and h2 in G", |s| {
        is_member(s, G, &a) && is_member(s, G, &b)
    });
    let first = lan
        .send(&["--group", G, "--count", "200", "--rate", "500"])
        .sent(G);
    settle();
    assert!(
        daemon.log_text().contains(&format!(
            "metrics: OpenMetrics at http://{ADDR}:{MPORT}/metrics"
        )),
        "{}",
        daemon.log_text()
    );

    // 1. Both ways parse with a real OpenMetrics parser and equal status --json.
    let (om, status) = consistent(&lan, || status_openmetrics(&lan, &[]));
    let fams = parse(&lan, &om);
    assert_eq!(
        observed(&fams, &status),
        expected(&status),
        "status --format openmetrics vs --json"
    );
    assert!(
        value(
            &fams,
            "snoopcast_member_packets_total",
            &[
                ("interface", "dn0"),
                ("group", G),
                ("mac", &a.mac),
                ("ip", &a.ip)
            ]
        ) >= Some(first as f64 * DELIVERY),
        "h1's packets: {fams}"
    );
    assert_eq!(fams["snoopcast_copies_sent"]["type"], "counter");
    assert_eq!(fams["snoopcast_member_bytes"]["unit"], "bytes");
    assert_eq!(fams["snoopcast_querier_role"]["type"], "stateset");
    assert_eq!(
        value(&fams, "snoopcast_downstream_up", &[("interface", "dn0")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &fams,
            "snoopcast_downstream_members",
            &[("interface", "dn0")]
        ),
        Some(2.0)
    );

    let (body, status) = consistent(&lan, || {
        let (code, headers, body) = scrape(&lan);
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(headers["connection"], "close");
        body
    });
    let fams = parse(&lan, &body);
    assert_eq!(
        observed(&fams, &status),
        expected(&status),
        "GET /metrics vs status --json"
    );
    assert!(value(&fams, "snoopcast_metrics_scrapes_total", &[]) >= Some(1.0));

    // The cap: one member series, one left out, in both ways.
    let fams = parse(
        &lan,
        &status_openmetrics(&lan, &["--metrics-max-members", "1"]),
    );
    let n = fams["snoopcast_member_packets"]["samples"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 1, "{fams}");
    assert_eq!(
        value(&fams, "snoopcast_member_series_omitted", &[]),
        Some(1.0)
    );

    // 2. Hostile clients while a stream flows to h1 and h2 and status is polled.
    h1.mark();
    h2.mark();
    let stream = lan.spawn_sender(&["--group", G, "--count", "5000", "--rate", "500"]);
    let stop = Arc::new(AtomicBool::new(false));
    let poll = {
        let (stop, ctl, ns, bin) = (
            stop.clone(),
            lan.control_path(),
            lan.box_ns(),
            snoopcast_bin(),
        );
        std::thread::spawn(move || {
            let (mut n, mut slowest, mut failures) = (0, Duration::ZERO, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let out = ns_exec(
                    &ns,
                    &[&bin, "status", "--control", ctl.to_str().unwrap(), "--json"],
                    Duration::from_secs(5),
                );
                slowest = slowest.max(t0.elapsed());
                n += 1;
                if !out.ok() {
                    failures.push(out.stderr);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (n, slowest, failures)
        })
    };
    // A slowloris client holds a worker: it is cut off by the head deadline (408 or a
    // close), and meanwhile a scrape is answered at once.
    let slow = {
        let ns = lan.box_ns();
        let script = format!("{HELPERS}/metrics_client.py");
        std::thread::spawn(move || {
            let out = ns_exec(
                &ns,
                &[python(), &script, "slowloris", ADDR, MPORT, "8"],
                Duration::from_secs(15),
            );
            serde_json::from_str::<Value>(out.stdout.trim()).unwrap_or(Value::String(out.stdout))
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    let (code, _, body) = scrape(&lan);
    assert_eq!(code, 200, "a scrape during the slowloris: {body}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let big = client(
        &lan,
        &["bigline", ADDR, MPORT],
        None,
        Duration::from_secs(15),
    );
    let answer = big["answer"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 431 ")
            || (answer.is_empty() && !big["error"].as_str().unwrap_or_default().is_empty()),
        "a 1 MiB request line: {big}"
    );
    let flood = client(
        &lan,
        &["flood", ADDR, MPORT, "100"],
        None,
        Duration::from_secs(30),
    );
    let codes = &flood["codes"];
    let count = |k: &str| codes[k].as_u64().unwrap_or(0);
    assert!(
        count("200") >= 1 && count("503") >= 1,
        "100 connections: {flood}"
    );
    let total: u64 = codes
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 100, "{flood}");
    let slow = slow.join().unwrap();
    let elapsed = slow["elapsed"].as_f64().unwrap_or(99.0);
    assert!(
        elapsed < 5.0 && slow["sent"].as_u64() < Some(6),
        "the slowloris client was not cut off by the 3 s head deadline: {slow}"
    );
    eprintln!("slowloris: {slow}\n1 MiB line: {big}\n100 connections: {flood}");
    // Still answering, right after.
    let (code, _, body) = scrape(&lan);
    assert_eq!(code, 200, "{body}");
    let fams = parse(&lan, &body);
    let rejected = value(&fams, "snoopcast_metrics_rejected_total", &[]).unwrap_or(0.0);
    assert!(
        rejected >= 3.0,
        "slowloris, big line and 503s are counted: {rejected}"
    );
    let sent = stream.wait(Duration::from_secs(30));
    settle();
    stop.store(true, Ordering::Relaxed);
    let (polls, slowest, failures) = poll.join().unwrap();
    assert!(
        failures.is_empty(),
        "status failed during the hostile clients: {failures:?}"
    );
    assert!(polls >= 10, "{polls} status polls");
    assert!(
        slowest < Duration::from_secs(2),
        "slowest status {slowest:?}"
    );
    for (who, agent) in [("h1", &mut h1), ("h2", &mut h2)] {
        assert_delivered(
            agent.report().since_mark_class(G, UNICAST),
            sent.sent(G),
            &format!("{who}: unicast copies while the hostile clients ran"),
        );
    }
    assert!(
        daemon.log_text().lines().all(|l| !l.contains("panicked")),
        "{}",
        daemon.log_text()
    );
    daemon.stop_ok();
}

/// Member series in a scrape, and the omitted gauge.
fn member_series(lan: &Lan) -> (usize, Option<f64>) {
    let (code, _, body) = scrape(lan);
    assert_eq!(code, 200, "{body}");
    let fams = parse(lan, &body);
    let n = fams["snoopcast_member_packets"]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    (n, value(&fams, "snoopcast_member_series_omitted", &[]))
}

/// `metrics-max-members` in the file changes on SIGHUP, live; `metrics-listen` cannot (one
/// error naming it, reload_errors, the endpoint keeps serving on the old address).
#[test]
fn metrics_max_members_reloads_live_and_metrics_listen_needs_a_restart() {
    require_root!();
    let lan = Lan::builder("metricsrl").hosts(2).build();
    let file = lan.dir.join("snoopcast.toml");
    let write = |max: u32, port: &str| {
        let text = format!(
            "upstream = \"{}\"\ndownstream = [\"dn0\"]\nquery-interval = \"120s\"\n\
             query-response-interval = \"1s\"\nmetrics-listen = \"{ADDR}:{port}\"\n\
             metrics-max-members = {max}\n",
            lan.upstream_if()
        );
        std::fs::write(&file, text).unwrap();
    };
    write(2, MPORT);
    let daemon = start_snoopcast_config(&lan, &file, &[]);
    let _h1 = lan.start_agent(1, &[G]);
    let _h2 = lan.start_agent(2, &[G]);
    wait_for_status(&lan, Duration::from_secs(10), "two members", |s| {
        member_count(s) == 2
    });
    assert_eq!(member_series(&lan), (2, Some(0.0)));
    write(1, MPORT);
    daemon.signal(libc::SIGHUP);
    wait_for_status(&lan, Duration::from_secs(5), "reloads 1", |s| {
        counter(s, "reloads") == 1
    });
    assert_eq!(
        member_series(&lan),
        (1, Some(1.0)),
        "the cap after the reload"
    );
    assert!(
        daemon
            .log_text()
            .contains("reload: applied metrics-max-members"),
        "{}",
        daemon.log_text()
    );
    write(1, "9809");
    daemon.signal(libc::SIGHUP);
    wait_for_status(&lan, Duration::from_secs(5), "reload_errors 1", |s| {
        counter(s, "reload_errors") == 1
    });
    assert!(
        daemon
            .log_text()
            .contains("reload: metrics-listen cannot change while running"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        member_series(&lan),
        (1, Some(1.0)),
        "still served on the old address"
    );
    daemon.stop_ok();
}
