//! A reload that adds and removes downstream interfaces: the added one is opened and queried
//! within seconds, the removed one is closed and its members dropped, and the members of an
//! interface the reload does not touch keep their stream; the daemon is the same process.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- [sw]  -- h1
//!                                         dn1 --veth-- [sw2] -- h2
//! ```

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const G: &str = "239.1.7.7";
/// How long an added interface may take: the interface check runs at once after a reload,
/// then the startup query and the host's answer (up to the 1 s response interval).
const ADD_WAIT: Duration = Duration::from_secs(8);
const JOIN_WAIT: Duration = Duration::from_secs(10);
/// How long a removed interface may take to close: the reload round itself.
const REMOVE_WAIT: Duration = Duration::from_secs(3);

fn interfaces(s: &Value) -> Vec<String> {
    s["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(String::from))
        .collect()
}

fn counter(s: &Value, name: &str) -> u64 {
    s["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("status has no counter {name}"))
}

fn hup(daemon: &Snoopcast) {
    // SAFETY: kill(2) with a pid we started and still hold.
    assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) }, 0);
}

#[test]
fn a_reload_adds_and_removes_downstream_interfaces_live() {
    require_root!();
    let lan = Lan::builder("rlif").hosts(1).downstream2_hosts(1).build();
    assert_eq!(
        (lan.hosts_on("dn0"), lan.hosts_on("dn1")),
        (vec![1], vec![2])
    );
    let file = lan.dir.join("snoopcast.toml");
    let write = |downs: &str| {
        std::fs::write(
            &file,
            format!(
                "downstream = [{downs}]\nquery-interval = \"5s\"\nquery-response-interval = \"1s\"\n"
            ),
        )
        .unwrap()
    };
    write("\"dn0\"");
    let mut daemon = start_snoopcast_with(&lan, "up0", &[], &["--config", file.to_str().unwrap()]);
    let pid = daemon.pid();
    let mut h1 = lan.start_agent(1, &[G]);
    let mut h2 = lan.start_agent(2, &[G]);
    let (a, b) = (lan.host(1).clone(), lan.host(2).clone());
    wait_for_status(&lan, JOIN_WAIT, "h1 in G", |s| is_member(s, G, &a));
    let s = lan.status_json();
    assert_eq!(interfaces(&s), ["dn0"], "{s:#}");
    assert!(!is_member(&s, G, &b), "dn1 is not a downstream yet: {s:#}");

    // Add dn1: opened, queried, h2 a member; h1 untouched.
    let h1_before = member(&s, G, &a).expect("h1's entry");
    write("\"dn0\", \"dn1\"");
    hup(&daemon);
    wait_for_status(&lan, ADD_WAIT, "dn1 added and h2 in G", |s| {
        interfaces(s) == ["dn0", "dn1"] && is_member(s, G, &b) && is_member(s, G, &a)
    });
    let s = lan.status_json();
    assert_eq!(counter(&s, "reloads"), 1, "{s:#}");
    assert_eq!(counter(&s, "reload_errors"), 0, "{s:#}");
    let h1_after = member(&s, G, &a).unwrap();
    assert_eq!(h1_after["mac"], h1_before["mac"]);
    h1.mark();
    h2.mark();
    let sent = lan
        .send(&["--group", G, "--count", "400", "--rate", "400"])
        .sent(G);
    assert_delivered(
        h1.report().since_mark(G),
        sent,
        "h1 on dn0 after adding dn1",
    );
    assert_delivered(h2.report().since_mark(G), sent, "h2 on the added dn1");

    // Remove dn0: closed, h1 dropped (counted), h2 keeps its stream.
    write("\"dn1\"");
    hup(&daemon);
    wait_for_status(&lan, REMOVE_WAIT, "dn0 removed, h1 gone", |s| {
        interfaces(s) == ["dn1"] && !is_member(s, G, &a) && is_member(s, G, &b)
    });
    let s = lan.status_json();
    assert_eq!(counter(&s, "reloads"), 2, "{s:#}");
    assert!(counter(&s, "members_dropped_iface") >= 1, "{s:#}");
    h1.mark();
    h2.mark();
    let sent = lan
        .send(&["--group", G, "--count", "400", "--rate", "400"])
        .sent(G);
    assert_delivered(
        h2.report().since_mark(G),
        sent,
        "h2 on dn1 after removing dn0",
    );
    assert_eq!(h1.report().since_mark(G), 0, "h1's interface was removed");
    assert_eq!(daemon.pid(), pid);
    assert!(daemon.is_running());
    daemon.stop_ok();
}
