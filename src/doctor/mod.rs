//! `snoopcast doctor`: checks of the machine and of the running daemon, each printed as one
//! line `ok|warn|fail NAME: what was found, and what to do`.
//!
//! The checks ([`checks`]) are pure: they take [`Facts`] and return [`Finding`]s. The
//! gatherer ([`gather`]) reads /proc/sys, sysfs, `ip`, `nft`/`iptables-save` and the control
//! socket into `Facts`. Nothing in `runtime` or `core` uses this module.

pub mod checks;
pub mod firewall;
pub mod gather;

use crate::core::membership::Settings;
use crate::status::Snapshot;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub name: &'static str,
    pub text: String,
}

impl Finding {
    pub fn ok(name: &'static str, text: impl Into<String>) -> Self {
        Finding {
            level: Level::Ok,
            name,
            text: text.into(),
        }
    }
    pub fn warn(name: &'static str, text: impl Into<String>) -> Self {
        Finding {
            level: Level::Warn,
            name,
            text: text.into(),
        }
    }
    pub fn fail(name: &'static str, text: impl Into<String>) -> Self {
        Finding {
            level: Level::Fail,
            name,
            text: text.into(),
        }
    }
    /// An `ok` line for a check that could not look.
    pub fn not_checked(name: &'static str, why: impl std::fmt::Display) -> Self {
        Finding::ok(name, format!("not checked: {why}"))
    }
}

/// The timers the checks compare with (the daemon's, the configuration's or the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub robustness: u32,
}

impl Default for Timers {
    /// The daemon's defaults.
    fn default() -> Self {
        let s = Settings::default();
        Timers {
            query_interval: s.query_interval,
            query_response_interval: s.query_response_interval,
            robustness: s.robustness,
        }
    }
}

impl Timers {
    /// The Group Membership Interval, as the membership table computes it.
    pub fn membership_interval(&self) -> Duration {
        Settings {
            query_interval: self.query_interval,
            query_response_interval: self.query_response_interval,
            robustness: self.robustness,
            ..Settings::default()
        }
        .group_membership_interval()
    }
}

/// Where the interfaces and timers checked come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--config` or run options on the command line.
    Options,
    /// The running daemon's snapshot.
    Daemon,
    /// Neither names interfaces.
    Nothing,
}

/// A Linux bridge on the downstream path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeFacts {
    pub name: String,
    /// /sys/class/net/BR/bridge/ageing_time (centiseconds there); None when unreadable.
    pub ageing: Option<Duration>,
    pub mcast_snooping: Option<bool>,
}

/// What the machine says about one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFacts {
    pub exists: bool,
    pub ipv4: Vec<Ipv4Addr>,
    /// A usable (not tentative) IPv6 link-local address.
    pub link_local: Option<Ipv6Addr>,
    /// net.ipv4.conf.IF.rp_filter.
    pub rp_filter: Option<u32>,
    /// The bridge it is a port of (/sys/class/net/IF/brport/bridge).
    pub master: Option<BridgeFacts>,
    /// brport/multicast_flood and brport/multicast_to_unicast, when it is a port.
    pub port_mcast_flood: Option<bool>,
    pub port_mcast_to_unicast: Option<bool>,
    /// Itself a bridge (/sys/class/net/IF/bridge).
    pub own_bridge: Option<BridgeFacts>,
    /// A layer-3 link without Ethernet headers (tun, WireGuard): no router queries the box
    /// there, and the daemon does not listen for queries on it.
    pub l3: bool,
}

/// The rule set of the box's firewall, as text, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallText {
    /// (tool, its output), e.g. ("nft list ruleset", "...").
    Read(Vec<(String, String)>),
    NotChecked(String),
}

/// Everything the checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub origin: Origin,
    pub upstream: Option<String>,
    pub downstreams: Vec<String>,
    pub timers: Timers,
    /// IPv6 (MLD) on: false under --no-ipv6.
    pub ipv6: bool,
    /// `--query-source` given (then a downstream without an address still queries from it).
    pub query_source: Option<Ipv4Addr>,
    /// The control socket asked.
    pub control: String,
    /// Two snapshots of the running daemon, `interval` apart, or why there are none.
    pub daemon: Result<(Snapshot, Snapshot), String>,
    pub interval: Duration,
    pub links: BTreeMap<String, LinkFacts>,
    pub rmem_max: Option<u64>,
    /// net.ipv4.conf.all.rp_filter.
    pub rp_filter_all: Option<u32>,
    /// Where the box routes each address asked (`ip route get`): Ok(Some(dev)), Ok(None) no
    /// route, Err(why) when it could not ask.
    pub routes: BTreeMap<IpAddr, Result<Option<String>, String>>,
    pub firewall: FirewallText,
}

impl Facts {
    /// Facts with nothing known, for tests and as a starting point.
    pub fn empty() -> Facts {
        Facts {
            origin: Origin::Nothing,
            upstream: None,
            downstreams: vec![],
            timers: Timers::default(),
            ipv6: true,
            query_source: None,
            control: crate::cli::DEFAULT_CONTROL.into(),
            daemon: Err("not asked".into()),
            interval: Duration::from_secs(2),
            links: BTreeMap::new(),
            rmem_max: None,
            rp_filter_all: None,
            routes: BTreeMap::new(),
            firewall: FirewallText::NotChecked("not asked".into()),
        }
    }
}

/// The report's text: one line per finding.
pub fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} {}: {}\n", f.level.word(), f.name, f.text))
        .collect()
}

/// 0 when every finding is ok, 1 otherwise.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.level != Level::Ok))
}
