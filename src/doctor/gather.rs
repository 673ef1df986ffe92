//! The gatherer of `snoopcast doctor`: reads the facts the checks look at. Anything it cannot
//! read stays None (or says why), never a panic.

use super::{checks, BridgeFacts, Facts, FirewallText, LinkFacts, Origin, Timers};
use crate::runtime::{control, iface};
use crate::status::Snapshot;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Interfaces named by --config or run options (None: take the daemon's).
    pub upstream: Option<String>,
    pub downstreams: Vec<String>,
    /// The timers and IPv6 switch of those options (used only with their interfaces).
    pub timers: Timers,
    pub ipv6: bool,
    pub query_source: Option<Ipv4Addr>,
    pub control: std::path::PathBuf,
    pub interval: Duration,
}

fn read_num(p: impl AsRef<Path>) -> Option<u64> {
    crate::runtime::shared::read_sysctl(p).map(|n| n as u64)
}

fn snapshot(path: &Path) -> Result<Snapshot, String> {
    let body = control::fetch(path).map_err(|e| e.to_string())?;
    control::parse(&body).map_err(|e| e.to_string())
}

fn bridge(name: &str) -> BridgeFacts {
    let b = format!("/sys/class/net/{name}/bridge");
    BridgeFacts {
        name: name.to_string(),
        // USER_HZ (100 on Linux) ticks.
        ageing: read_num(format!("{b}/ageing_time")).map(|t| Duration::from_millis(t * 10)),
        mcast_snooping: read_num(format!("{b}/multicast_snooping")).map(|v| v != 0),
    }
}

/// Facts about one interface.
pub fn link(name: &str) -> LinkFacts {
    let Some(info) = iface::lookup(name) else {
        return LinkFacts::default();
    };
    let sys = format!("/sys/class/net/{name}");
    let master = std::fs::read_link(format!("{sys}/brport/bridge"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|b| bridge(&b));
    let flag = |a: &str| read_num(format!("{sys}/brport/{a}")).map(|v| v != 0);
    LinkFacts {
        exists: true,
        ipv4: info.ipv4.into_iter().collect(),
        link_local: info.ipv6_link_local,
        rp_filter: read_num(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter")).map(|v| v as u32),
        port_mcast_flood: master.as_ref().and_then(|_| flag("multicast_flood")),
        port_mcast_to_unicast: master.as_ref().and_then(|_| flag("multicast_to_unicast")),
        master,
        own_bridge: Path::new(&format!("{sys}/bridge"))
            .exists()
            .then(|| bridge(name)),
        l3: info.link == crate::wire::LinkType::RawIp,
    }
}

/// The interface `ip -o route get ADDR` names in its output (`... dev up0 ...`), if any.
pub fn route_dev(out: &str) -> Option<String> {
    let mut w = out.split_whitespace();
    while let Some(x) = w.next() {
        if x == "dev" {
            return w.next().map(str::to_string);
        }
    }
    None
}

fn route(a: IpAddr) -> Result<Option<String>, String> {
    let o = Command::new("ip")
        .args(["-o", "route", "get", &a.to_string()])
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !o.status.success() {
        // "RTNETLINK answers: Network is unreachable": no route.
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&o.stdout);
    // A blackhole/unreachable route has no dev.
    Ok(route_dev(&text))
}

fn firewall() -> FirewallText {
    let mut read = vec![];
    let mut why = vec![];
    for argv in [
        &["nft", "list", "ruleset"][..],
        &["iptables-save"][..],
        &["ip6tables-save"][..],
    ] {
        match Command::new(argv[0]).args(&argv[1..]).output() {
            Ok(o) if o.status.success() => read.push((
                argv.join(" "),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )),
            Ok(o) => why.push(format!(
                "{}: {}",
                argv.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => why.push(format!("{}: {e}", argv[0])),
        }
    }
    if read.is_empty() {
        FirewallText::NotChecked(format!("no rule set readable ({})", why.join("; ")))
    } else {
        FirewallText::Read(read)
    }
}

/// Read everything. Takes `req.interval` when a daemon answers (two snapshots).
pub fn gather(req: &Request) -> Facts {
    let daemon = snapshot(&req.control).and_then(|a| {
        std::thread::sleep(req.interval);
        snapshot(&req.control).map(|b| (a, b))
    });
    let mut f = Facts::empty();
    f.control = req.control.display().to_string();
    f.interval = req.interval;
    if req.upstream.is_some() || !req.downstreams.is_empty() {
        f.origin = Origin::Options;
        f.upstream = req.upstream.clone();
        f.downstreams = req.downstreams.clone();
        f.timers = req.timers;
        f.ipv6 = req.ipv6;
        f.query_source = req.query_source;
    } else if let Ok((_, s)) = &daemon {
        f.origin = Origin::Daemon;
        f.upstream = Some(s.upstream.interface.clone());
        f.downstreams = s.interfaces.iter().map(|i| i.name.clone()).collect();
        if let Some(st) = &s.settings {
            f.timers = Timers {
                query_interval: Duration::from_millis(st.query_interval_ms),
                query_response_interval: Duration::from_millis(st.query_response_interval_ms),
                robustness: st.robustness,
            };
            f.ipv6 = st.ipv6;
        }
    }
    for n in f.upstream.iter().chain(&f.downstreams) {
        f.links.insert(n.clone(), link(n));
    }
    f.rmem_max = read_num("/proc/sys/net/core/rmem_max");
    f.rp_filter_all = read_num("/proc/sys/net/ipv4/conf/all/rp_filter").map(|v| v as u32);
    let mut routes = BTreeMap::new();
    for a in checks::sources_to_route(daemon.as_ref().ok().map(|(_, s)| s))
        .into_iter()
        .chain([checks::REMOTE_PROBE])
    {
        routes.insert(a, route(a));
    }
    f.routes = routes;
    f.firewall = firewall();
    f.daemon = daemon;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_dev_reads_ip_route_get() {
        assert_eq!(
            route_dev("10.1.0.1 dev up0 src 10.1.0.2 uid 0 \\    cache ").as_deref(),
            Some("up0")
        );
        assert_eq!(
            route_dev("192.0.2.1 via 10.0.0.1 dev eth0 src 10.0.0.2").as_deref(),
            Some("eth0")
        );
        assert_eq!(route_dev("blackhole 192.0.2.1"), None);
        assert_eq!(route_dev("x dev"), None);
        assert_eq!(route_dev(""), None);
    }

    #[test]
    fn a_missing_interface_is_facts_with_exists_false() {
        let l = link("no-such-if-doctor");
        assert!(!l.exists && l.master.is_none());
    }
}
