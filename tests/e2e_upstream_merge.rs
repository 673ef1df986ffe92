//! The upstream EXCLUDE merge with real hosts (issue 15 defect 8, RFC 4605 section 4.1):
//! with EXCLUDE members downstream, snoopcast reports the group upstream as EXCLUDE of the
//! sources that every EXCLUDE member excludes (and no INCLUDE member wants), and the box's
//! kernel holds no filter for it (snoopcast reports itself, issue 16; the reports on the
//! wire: e2e_upstream_reports). The plain LAN of tests/README.md with two hosts; each host's
//! filter is made by a socket that joins the group and blocks sources (IP_ADD_MEMBERSHIP +
//! IP_BLOCK_SOURCE: the host's kernel reports IS_EX/TO_EX of them). The box kernel's filter
//! is read from /proc/net/mcfilter in the box namespace.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const G: &str = "239.7.8.1";
const S3: &str = "10.1.0.3";
const S4: &str = "10.1.0.4";

/// A socket in `host`'s namespace in EXCLUDE(`blocked`) for G, until dropped (the host's
/// kernel then reports TO_IN{} for it).
struct Excluder(Child);

impl Excluder {
    fn start(host: &Host, blocked: &[&str]) -> Excluder {
        let code = r#"
import socket, sys, time
g, ifaddr = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a = socket.inet_aton
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, a(g) + a(ifaddr))
for src in sys.argv[3:]:
    s.setsockopt(socket.IPPROTO_IP, 38, a(g) + a(ifaddr) + a(src))  # IP_BLOCK_SOURCE
print("ready", flush=True)
time.sleep(120)
"#;
        let mut args = vec![
            "netns", "exec", &host.ns, "python3", "-c", code, G, &host.ip,
        ];
        args.extend_from_slice(blocked);
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the excluding socket");
        Excluder(child)
    }
}

impl Drop for Excluder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sources blocked for G on up0 in the box kernel (/proc/net/mcfilter: per row the
/// device, the group and source in hex, then the INCLUDE and EXCLUDE counts).
fn kernel_blocked(lan: &Lan) -> Vec<String> {
    let text = ns_run(&lan.box_ns(), &["cat", "/proc/net/mcfilter"]);
    let hex = |a: &str| {
        let o: Vec<u8> = a.split('.').map(|x| x.parse().unwrap()).collect();
        format!("0x{:02x}{:02x}{:02x}{:02x}", o[0], o[1], o[2], o[3])
    };
    let g = hex(G);
    let mut out = vec![];
    for s in [S3, S4, "10.1.0.1"] {
        let h = hex(s);
        if text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 6 && f[1] == "up0" && f[2] == g && f[3] == h && f[5] != "0"
        }) {
            out.push(s.to_string());
        }
    }
    out
}

/// What status says is joined for G: Some(exclude list) for an any-source join.
fn joined_exclude(s: &Value) -> Option<Vec<String>> {
    let j = s["upstream"]["joined"]
        .as_array()?
        .iter()
        .find(|j| j["group"] == G)?;
    assert!(j["sources"].as_array().unwrap().is_empty(), "{j}");
    Some(
        j["exclude"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn upstream_report_excludes_the_sources_every_member_excludes() {
    require_root!();
    let lan = Lan::builder("umerge").hosts(2).build();
    let daemon = start_snoopcast(&lan, &["--no-ipv6"]);
    let want = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let (h1, h2) = (lan.host(1).clone(), lan.host(2).clone());

    // h1 excludes S3 and S4, h2 only S3: the merge blocks S3 alone.
    let e1 = Excluder::start(&h1, &[S3, S4]);
    let e2 = Excluder::start(&h2, &[S3]);
    wait_for_status(&lan, Duration::from_secs(10), "both members", |s| {
        is_member(s, G, &h1) && is_member(s, G, &h2) && joined_exclude(s) == want(&[S3])
    });
    assert!(
        kernel_blocked(&lan).is_empty(),
        "the box kernel holds a filter for G"
    );

    // h2 leaves: h1's own list is the merge now.
    drop(e2);
    wait_for_status(&lan, Duration::from_secs(10), "h2 gone", |s| {
        !is_member(s, G, &h2) && joined_exclude(s) == want(&[S3, S4])
    });
    assert!(
        kernel_blocked(&lan).is_empty(),
        "the box kernel holds a filter for G"
    );

    // An any-source member (EXCLUDE{}) joins: nothing is blocked, the group stays joined.
    let e3 = Excluder::start(&h2, &[]);
    wait_for_status(&lan, Duration::from_secs(10), "any-source h2", |s| {
        is_member(s, G, &h2) && joined_exclude(s) == want(&[])
    });
    assert!(
        kernel_blocked(&lan).is_empty(),
        "the box kernel holds a filter for G"
    );

    drop(e3);
    drop(e1);
    wait_for_status(&lan, Duration::from_secs(10), "all gone", |s| {
        joined_exclude(s).is_none()
    });
    daemon.stop_ok();
}
