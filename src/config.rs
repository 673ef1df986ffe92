//! Validated configuration: interfaces resolved, options checked, before anything starts.

use crate::cli::{QuerierMode, RunArgs};
use crate::core::filter::GroupFilter;
use crate::core::membership::{CompatFallback, Settings};
use crate::core::querier::{Mode, QuerierConfig};
use crate::wire::{LinkType, MacAddr};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Facts about a present interface, as `runtime::iface::lookup` reads them from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub ipv4: Option<Ipv4Addr>,
    /// The interface's IPv6 link-local address (fe80::/10), the source of our MLD queries.
    pub ipv6_link_local: Option<Ipv6Addr>,
    pub link: LinkType,
    /// ARPHRD_* number, for messages.
    pub arphrd: u32,
}

/// A `--control-group` value: a group name, or a numeric gid (which needs no group entry,
/// as with chown).
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupSpec {
    Gid(u32),
    Name(String),
}

/// Parse a `--control-group` value. Pure.
fn parse_group(s: &str) -> Result<GroupSpec, String> {
    if s.is_empty() {
        return Err("--control-group: empty group name".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            // (gid_t)-1 means "unchanged" to chown.
            Ok(g) if g != u32::MAX => Ok(GroupSpec::Gid(g)),
            _ => Err(format!("--control-group {s}: not a valid group id")),
        };
    }
    if s.contains(['\0', ':', '\n']) {
        return Err(format!("--control-group {s:?}: not a valid group name"));
    }
    Ok(GroupSpec::Name(s.to_string()))
}

/// Resolve a parsed group with `by_name` (the real one is
/// `runtime::privs::group_by_name`). Pure.
fn resolve_group(spec: &GroupSpec, by_name: impl Fn(&str) -> Option<u32>) -> Result<u32, String> {
    match spec {
        GroupSpec::Gid(g) => Ok(*g),
        GroupSpec::Name(n) => by_name(n).ok_or_else(|| {
            format!(
                "--control-group {n}: no such group (give an existing group name or a numeric gid)"
            )
        }),
    }
}

/// What the configuration needs to know about the system, passed in so that this module does
/// no I/O: the real one (in main) reads the kernel and the group database, tests pass a fake.
pub trait Lookups {
    /// The interface named `name`; None when it does not exist.
    fn interface(&self, name: &str) -> Option<IfaceInfo>;
    /// The gid of group `name`; None when there is no such group.
    fn group_id(&self, name: &str) -> Option<u32>;
}

/// A downstream interface as configured (by name: it may come and go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    pub name: String,
    /// `--source-mac`, else the interface's own MAC at the time it is opened.
    pub source_mac: Option<MacAddr>,
    /// `--query-source`, else the interface's IPv4 address, else 0.0.0.0.
    pub query_source: Option<Ipv4Addr>,
    pub compat_fallback: CompatFallback,
}

/// What a downstream interface is while it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownLink {
    pub iface: IfaceInfo,
    /// Source MAC of the copies and queries sent here.
    pub source_mac: MacAddr,
    /// Source address of our queries (0.0.0.0 when the interface has none).
    pub query_source: Ipv4Addr,
    /// Source address of our MLD queries: the interface's link-local address (RFC 3810
    /// section 5.1.14: hosts discard queries from anything else); None without one.
    pub query_source6: Option<Ipv6Addr>,
}

impl Downstream {
    /// Check a present interface for use as this downstream.
    pub fn resolve(&self, iface: IfaceInfo) -> Result<DownLink, String> {
        let name = &self.name;
        if iface.link != LinkType::Ethernet {
            return Err(format!(
                "--downstream {name} has no Ethernet header (link type {}); downstream interfaces must be \
                 Ethernet-like (a LAN port, veth, bridge or OpenVPN tap)",
                iface.arphrd
            ));
        }
        let Some(source_mac) = self.source_mac.or(iface.mac) else {
            return Err(format!(
                "--downstream {name} has no MAC address; give --source-mac"
            ));
        };
        let query_source = self
            .query_source
            .or(iface.ipv4)
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let query_source6 = iface.ipv6_link_local;
        Ok(DownLink {
            iface,
            source_mac,
            query_source,
            query_source6,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub upstream: String,
    pub downstreams: Vec<Downstream>,
    /// Interfaces missing at start are waited for instead of being an error.
    pub wait_for_interfaces: bool,
    pub control: PathBuf,
    /// `--control-group`, resolved to a gid.
    pub control_group: Option<u32>,
    pub settings: Settings,
    pub querier: QuerierConfig,
    /// The MLD querier: as `querier` but with `--mld-version`.
    pub querier6: QuerierConfig,
    /// IPv6 (MLD snooping, queries, forwarding, joins) on; `--no-ipv6` turns it off.
    pub ipv6: bool,
    pub filter: GroupFilter,
    pub workers: usize,
    pub log_level: log::LevelFilter,
    pub log_file: Option<PathBuf>,
    /// `--metrics-listen`: where the HTTP metrics endpoint listens; None: off.
    pub metrics_listen: Option<SocketAddr>,
    /// `--metrics-max-members`: most members with their own metrics series.
    pub metrics_max_members: usize,
    /// `--upstream-leave-delay`: how long a group stays reported upstream after its last
    /// member left.
    pub upstream_leave_delay: Duration,
}

/// What a reload may change while the daemon runs, and what it may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// These keys changed, and all of them can be applied live (empty: nothing changed).
    Apply(Vec<&'static str>),
    /// This key changed and cannot be applied without a restart.
    NeedsRestart(&'static str),
}

impl Config {
    /// Compare with `new`, the configuration a reload read. Pure.
    pub fn reload_to(&self, new: &Config) -> Reload {
        let (o, n) = (self, new);
        // A valid configuration has a downstream.
        let first = |c: &'_ Config| c.downstreams[0].clone();
        let names = |c: &Config| {
            c.downstreams
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
        };
        let fixed: [(&'static str, bool); 10] = [
            ("upstream", o.upstream != n.upstream),
            ("control", o.control != n.control),
            ("control-group", o.control_group != n.control_group),
            ("no-ipv6", o.ipv6 != n.ipv6),
            ("workers", o.workers != n.workers),
            (
                "wait-for-interfaces",
                o.wait_for_interfaces != n.wait_for_interfaces,
            ),
            ("log-file", o.log_file != n.log_file),
            // Bound at start, before privileges are dropped (a port below 1024 needs them).
            ("metrics-listen", o.metrics_listen != n.metrics_listen),
            // One value for every downstream: the first one's says it.
            ("source-mac", first(o).source_mac != first(n).source_mac),
            (
                "query-source",
                first(o).query_source != first(n).query_source,
            ),
        ];
        if let Some((key, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Reload::NeedsRestart(key);
        }
        let (so, sn) = (&o.settings, &n.settings);
        let live: [(&'static str, bool); 14] = [
            ("downstream", names(o) != names(n)),
            ("allow/deny", o.filter != n.filter),
            (
                "max-groups-per-host",
                so.max_groups_per_host != sn.max_groups_per_host,
            ),
            ("max-members", so.max_members != sn.max_members),
            ("query-interval", so.query_interval != sn.query_interval),
            (
                "query-response-interval",
                so.query_response_interval != sn.query_response_interval,
            ),
            ("robustness", so.robustness != sn.robustness),
            (
                "upstream-leave-delay",
                o.upstream_leave_delay != n.upstream_leave_delay,
            ),
            ("querier", o.querier.mode != n.querier.mode),
            ("igmp-version", o.querier.version != n.querier.version),
            ("mld-version", o.querier6.version != n.querier6.version),
            (
                "compat-fallback",
                o.downstreams
                    .iter()
                    .map(|d| d.compat_fallback)
                    .ne(n.downstreams.iter().map(|d| d.compat_fallback)),
            ),
            ("log-level", o.log_level != n.log_level),
            (
                "metrics-max-members",
                o.metrics_max_members != n.metrics_max_members,
            ),
        ];
        Reload::Apply(live.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect())
    }
}

/// The downstream slots after a reload to `new` (see `runtime::shared::Shared::slots`): an
/// interface that stays keeps its slot (with its new settings), one that goes frees it, one
/// that comes takes the first free slot. Pure.
pub fn assign_slots(
    slots: &[Option<Downstream>],
    new: &[Downstream],
) -> Result<Vec<Option<Downstream>>, String> {
    let mut out: Vec<Option<Downstream>> = slots
        .iter()
        .map(|s| {
            let name = &s.as_ref()?.name;
            new.iter().find(|d| &d.name == name).cloned()
        })
        .collect();
    for d in new {
        if out.iter().flatten().any(|s| s.name == d.name) {
            continue;
        }
        match out.iter_mut().find(|s| s.is_none()) {
            Some(free) => *free = Some(d.clone()),
            None => {
                return Err(format!(
                    "downstream {}: no free slot (at most {} downstream interfaces without a \
                     restart); restart snoopcast to add it",
                    d.name,
                    slots.len()
                ))
            }
        }
    }
    Ok(out)
}

/// The message for a required option that neither the command line nor the file gave.
fn missing(key: &str, a: &RunArgs) -> String {
    match &a.config {
        Some(f) => format!(
            "no {key} interface: give --{key} IF, or `{key} = ...` in {}",
            f.display()
        ),
        None => format!("no {key} interface: give --{key} IF"),
    }
}

/// A configuration error: printed as one line, exit status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Check everything `run` was given. `sys` finds interfaces and groups. Interfaces that
    /// exist are checked now; a missing one is an error unless `--wait-for-interfaces`.
    /// Settings that work but that an RFC advises against, each said with what to do.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        // RFC 3376 section 8.1, RFC 3810 section 9.1: the Robustness Variable SHOULD NOT be
        // one.
        if self.settings.robustness == 1 {
            w.push(
                "robustness 1: one lost report or query expires a member, and a leave is \
                 queried only once (RFC 3376 8.1 advises against 1); use 2 or more"
                    .to_string(),
            );
        }
        w
    }

    pub fn from_args(a: &RunArgs, sys: &dyn Lookups) -> Result<Config, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let present = |name: &str, opt: &str| match sys.interface(name) {
            Some(i) => Ok(Some(i)),
            None if a.wait_for_interfaces => Ok(None),
            None => Err(ConfigError(format!(
                "{opt} {name}: no such network interface (use --wait-for-interfaces to wait for it)"
            ))),
        };
        let upstream = match &a.upstream {
            Some(u) => u.clone(),
            None => return err(missing("upstream", a)),
        };
        if a.downstreams.is_empty() {
            return err(missing("downstream", a));
        }
        present(&upstream, "--upstream")?;
        for f in &a.compat_fallback {
            if let Some(i) = &f.iface {
                if !a.downstreams.contains(i) {
                    return err(format!(
                        "--compat-fallback {i}=...: {i} is not a --downstream interface"
                    ));
                }
            }
        }
        let default_fallback = a
            .compat_fallback
            .iter()
            .rev()
            .find(|f| f.iface.is_none())
            .map_or(CompatFallback::Multicast, |f| f.policy);
        let mut downstreams: Vec<Downstream> = Vec::new();
        for name in &a.downstreams {
            if name == &upstream {
                return err(format!(
                    "--downstream {name} is also the --upstream interface; they must differ"
                ));
            }
            if downstreams.iter().any(|d| &d.name == name) {
                return err(format!("--downstream {name} is given twice"));
            }
            let compat_fallback = a
                .compat_fallback
                .iter()
                .rev()
                .find(|f| f.iface.as_deref() == Some(name))
                .map_or(default_fallback, |f| f.policy);
            let d = Downstream {
                name: name.clone(),
                source_mac: a.source_mac,
                query_source: a.query_source,
                compat_fallback,
            };
            if let Some(info) = present(name, "--downstream")? {
                d.resolve(info).map_err(ConfigError)?;
            }
            downstreams.push(d);
        }
        if a.query_response_interval >= a.query_interval {
            return err(format!(
                "--query-response-interval {} must be shorter than --query-interval {}",
                humantime::format_duration(a.query_response_interval),
                humantime::format_duration(a.query_interval)
            ));
        }
        let settings = Settings {
            robustness: a.robustness,
            query_interval: a.query_interval,
            query_response_interval: a.query_response_interval,
            max_groups_per_host: a.max_groups_per_host as usize,
            max_members: a.max_members as usize,
            ..Settings::default()
        };
        let querier = QuerierConfig {
            mode: match a.querier {
                QuerierMode::Auto => Mode::Auto,
                QuerierMode::On => Mode::On,
                QuerierMode::Off => Mode::Off,
            },
            version: a.igmp_version,
            query_interval: a.query_interval,
            query_response_interval: a.query_response_interval,
            robustness: a.robustness,
        };
        // Unknown groups are a usage error, found before anything starts.
        let control_group = match &a.control_group {
            Some(g) => Some(
                parse_group(g)
                    .and_then(|spec| resolve_group(&spec, |n| sys.group_id(n)))
                    .map_err(ConfigError)?,
            ),
            None => None,
        };
        let workers = match a.workers {
            Some(n) => n as usize,
            // available_parallelism honours the CPU affinity (taskset, CPUAffinity=).
            None => std::thread::available_parallelism()
                .map(|n| n.get() - 1)
                .unwrap_or(0),
        };
        Ok(Config {
            upstream,
            downstreams,
            wait_for_interfaces: a.wait_for_interfaces,
            control: a.control.clone(),
            control_group,
            settings,
            querier6: QuerierConfig {
                version: a.mld_version,
                ..querier.clone()
            },
            querier,
            ipv6: !a.no_ipv6,
            filter: GroupFilter::new(a.allow.clone(), a.deny.clone()),
            workers,
            log_level: a.log_level.into(),
            log_file: a.log_file.clone(),
            metrics_listen: a.metrics_listen,
            metrics_max_members: usize::try_from(a.metrics_max_members).unwrap_or(usize::MAX),
            upstream_leave_delay: a.upstream_leave_delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// The interfaces below, and groups root (0) and netops (1234).
    struct Fake;

    impl Lookups for Fake {
        fn interface(&self, name: &str) -> Option<IfaceInfo> {
            fake(name)
        }
        fn group_id(&self, name: &str) -> Option<u32> {
            match name {
                "root" => Some(0),
                "netops" => Some(1234),
                _ => None,
            }
        }
    }

    fn fake(name: &str) -> Option<IfaceInfo> {
        let (link, arphrd, ipv4) = match name {
            "up0" => (LinkType::Ethernet, 1, Some(Ipv4Addr::new(10, 1, 0, 2))),
            "tun0" => (LinkType::RawIp, 65534, Some(Ipv4Addr::new(10, 8, 0, 1))),
            "dn0" | "dn1" => (LinkType::Ethernet, 1, None),
            "lan0" => (LinkType::Ethernet, 1, Some(Ipv4Addr::new(10, 2, 0, 1))),
            _ => return None,
        };
        Some(IfaceInfo {
            name: name.into(),
            index: 7,
            mac: Some(MacAddr(2, 0, 0, 0, 0, 7)),
            ipv4,
            ipv6_link_local: None,
            link,
            arphrd,
        })
    }

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["snoopcast", "run"];
        v.extend_from_slice(args);
        let Command::Run(r) = Cli::try_parse_from(v).unwrap().command else {
            unreachable!()
        };
        Config::from_args(&r, &Fake)
    }

    fn link(c: &Config, i: usize) -> DownLink {
        c.downstreams[i]
            .resolve(fake(&c.downstreams[i].name).unwrap())
            .unwrap()
    }

    /// Issue 15 defect 9: `--robustness 1` is accepted with a warning (RFC 3376 8.1 SHOULD
    /// NOT); 2 and more say nothing.
    #[test]
    fn robustness_one_warns() {
        let base = ["--upstream", "tun0", "--downstream", "dn0", "--robustness"];
        let with = |n: &str| {
            let mut a = base.to_vec();
            a.push(n);
            cfg(&a).unwrap().warnings()
        };
        let w = with("1");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("RFC 3376 8.1") && w[0].contains("use 2"),
            "{w:?}"
        );
        assert!(with("2").is_empty());
        assert!(with("7").is_empty());
    }

    #[test]
    fn resolves_interfaces_and_defaults() {
        let c = cfg(&[
            "--upstream",
            "tun0",
            "--downstream",
            "dn0",
            "--downstream",
            "lan0",
        ])
        .unwrap();
        assert_eq!(c.upstream, "tun0");
        assert_eq!(link(&c, 0).query_source, Ipv4Addr::UNSPECIFIED);
        assert_eq!(link(&c, 1).query_source, Ipv4Addr::new(10, 2, 0, 1));
        assert_eq!(link(&c, 0).source_mac, MacAddr(2, 0, 0, 0, 0, 7));
        assert_eq!(c.downstreams[0].compat_fallback, CompatFallback::Multicast);
        assert_eq!(c.settings.group_membership_interval().as_secs(), 270);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.workers, cores - 1, "one core is the capture thread's");
    }

    #[test]
    fn control_group_is_a_gid_or_a_known_name_and_unknown_names_are_usage_errors() {
        let base = ["--upstream", "up0", "--downstream", "dn0"];
        let with = |g: &str| {
            let mut a = base.to_vec();
            a.extend(["--control-group", g]);
            cfg(&a)
        };
        assert_eq!(cfg(&base).unwrap().control_group, None);
        assert_eq!(with("4242").unwrap().control_group, Some(4242));
        assert_eq!(with("root").unwrap().control_group, Some(0));
        assert_eq!(with("netops").unwrap().control_group, Some(1234));
        let e = with("snoopcast-no-such-group").unwrap_err();
        assert!(
            e.0.contains("--control-group snoopcast-no-such-group")
                && e.0.contains("no such group"),
            "{e}"
        );
        assert!(with("").is_err());
    }

    #[test]
    fn compat_fallback_per_interface_beats_the_default() {
        let c = cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--downstream",
            "dn1",
            "--compat-fallback",
            "unicast",
            "--compat-fallback",
            "dn1=multicast",
        ])
        .unwrap();
        assert_eq!(c.downstreams[0].compat_fallback, CompatFallback::Unicast);
        assert_eq!(c.downstreams[1].compat_fallback, CompatFallback::Multicast);
        let e = cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--compat-fallback",
            "tap7=unicast",
        ])
        .unwrap_err();
        assert!(e.0.contains("tap7"), "{e}");
    }

    #[test]
    fn missing_interfaces_are_waited_for_only_when_asked() {
        let e = cfg(&["--upstream", "up0", "--downstream", "later0"]).unwrap_err();
        assert!(
            e.0.contains("later0") && e.0.contains("--wait-for-interfaces"),
            "{e}"
        );
        let c = cfg(&[
            "--upstream",
            "later1",
            "--downstream",
            "later0",
            "--wait-for-interfaces",
        ])
        .unwrap();
        assert_eq!(
            (c.upstream.as_str(), c.downstreams[0].name.as_str()),
            ("later1", "later0")
        );
        // Present interfaces are still checked.
        assert!(cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "tun0",
            "--wait-for-interfaces"
        ])
        .is_err());
    }

    #[test]
    fn errors_name_the_bad_value() {
        let e = cfg(&["--upstream", "nope0", "--downstream", "dn0"]).unwrap_err();
        assert!(e.0.contains("nope0") && e.0.contains("no such"), "{e}");
        let e = cfg(&["--upstream", "up0", "--downstream", "ghost9"]).unwrap_err();
        assert!(e.0.contains("ghost9"), "{e}");
        let e = cfg(&["--upstream", "up0", "--downstream", "up0"]).unwrap_err();
        assert!(e.0.contains("must differ"), "{e}");
        let e = cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--downstream",
            "dn0",
        ])
        .unwrap_err();
        assert!(e.0.contains("twice"), "{e}");
        let e = cfg(&["--upstream", "up0", "--downstream", "tun0"]).unwrap_err();
        assert!(e.0.contains("Ethernet"), "{e}");
        let e = cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--query-interval",
            "5s",
            "--query-response-interval",
            "10s",
        ])
        .unwrap_err();
        assert!(e.0.contains("shorter"), "{e}");
    }

    #[test]
    fn explicit_query_source_and_mac_win() {
        let c = cfg(&[
            "--upstream",
            "up0",
            "--downstream",
            "lan0",
            "--query-source",
            "10.2.0.99",
            "--source-mac",
            "02:11:22:33:44:55",
        ])
        .unwrap();
        assert_eq!(link(&c, 0).query_source, Ipv4Addr::new(10, 2, 0, 99));
        assert_eq!(link(&c, 0).source_mac.to_string(), "02:11:22:33:44:55");
    }

    #[test]
    fn group_values_parse_as_gid_or_name() {
        assert_eq!(parse_group("0"), Ok(GroupSpec::Gid(0)));
        assert_eq!(parse_group("4242"), Ok(GroupSpec::Gid(4242)));
        assert_eq!(
            parse_group("snoopcast"),
            Ok(GroupSpec::Name("snoopcast".into()))
        );
        assert_eq!(
            parse_group("net-admins"),
            Ok(GroupSpec::Name("net-admins".into()))
        );
        assert!(parse_group("").is_err());
        assert!(parse_group("4294967295").is_err(), "(gid_t)-1");
        assert!(parse_group("99999999999").is_err());
        assert!(parse_group("a:b").is_err());
    }

    #[test]
    fn group_names_resolve_through_the_lookup_and_unknown_ones_are_named() {
        let fake = |n: &str| (n == "netops").then_some(1234);
        assert_eq!(
            resolve_group(&GroupSpec::Name("netops".into()), fake),
            Ok(1234)
        );
        assert_eq!(resolve_group(&GroupSpec::Gid(77), fake), Ok(77));
        let e = resolve_group(&GroupSpec::Name("nosuch".into()), fake).unwrap_err();
        assert!(e.contains("nosuch") && e.contains("no such group"), "{e}");
    }

    #[test]
    fn an_unknown_interface_is_named_with_its_option_and_the_fix() {
        let e = cfg(&["--upstream", "nope0", "--downstream", "dn0"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--upstream nope0: no such network interface (use --wait-for-interfaces to wait for it)"
        );
        let e = cfg(&["--upstream", "up0", "--downstream", "ghost9"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--downstream ghost9: no such network interface (use --wait-for-interfaces to wait for it)"
        );
    }

    #[test]
    fn a_missing_group_is_a_usage_error_and_a_gid_needs_no_group_entry() {
        let base = [
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--control-group",
        ];
        let with = |g: &str| {
            let mut a = base.to_vec();
            a.push(g);
            cfg(&a)
        };
        assert_eq!(
            with("staff").unwrap_err().to_string(),
            "--control-group staff: no such group (give an existing group name or a numeric gid)"
        );
        // Not in the (fake) group database, and still fine: a gid is taken as it is.
        assert_eq!(with("4242").unwrap().control_group, Some(4242));
        assert!(with("a:b")
            .unwrap_err()
            .to_string()
            .contains("not a valid group name"));
    }

    fn reload(from: &[&str], to: &[&str]) -> Reload {
        let base = [
            "--upstream",
            "up0",
            "--downstream",
            "dn0",
            "--downstream",
            "dn1",
        ];
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            cfg(&a).unwrap()
        };
        with(from).reload_to(&with(to))
    }

    #[test]
    fn a_reload_applies_live_keys_and_names_each_change() {
        assert_eq!(reload(&[], &[]), Reload::Apply(vec![]));
        assert_eq!(
            reload(
                &["--allow", "239.0.0.0/8"],
                &["--allow", "239.0.0.0/8", "--deny", "239.1.0.0/16"]
            ),
            Reload::Apply(vec!["allow/deny"])
        );
        assert_eq!(
            reload(
                &[],
                &[
                    "--query-interval",
                    "60s",
                    "--robustness",
                    "3",
                    "--log-level",
                    "debug"
                ]
            ),
            Reload::Apply(vec!["query-interval", "robustness", "log-level"])
        );
        assert_eq!(
            reload(
                &[],
                &[
                    "--igmp-version",
                    "2",
                    "--mld-version",
                    "1",
                    "--querier",
                    "off"
                ]
            ),
            Reload::Apply(vec!["querier", "igmp-version", "mld-version"])
        );
        assert_eq!(
            reload(
                &[],
                &["--compat-fallback", "dn1=unicast", "--max-members", "5"]
            ),
            Reload::Apply(vec!["max-members", "compat-fallback"])
        );
        assert_eq!(
            reload(
                &[],
                &[
                    "--max-groups-per-host",
                    "4",
                    "--query-response-interval",
                    "5s"
                ]
            ),
            Reload::Apply(vec!["max-groups-per-host", "query-response-interval"])
        );
        assert_eq!(
            reload(&[], &["--metrics-max-members", "10"]),
            Reload::Apply(vec!["metrics-max-members"])
        );
    }

    #[test]
    fn a_reload_that_needs_a_restart_names_the_key() {
        let c = cfg(&["--upstream", "up0", "--downstream", "dn0"]).unwrap();
        let other = |a: &[&str]| c.reload_to(&cfg(a).unwrap());
        assert_eq!(
            other(&["--upstream", "lan0", "--downstream", "dn0"]),
            Reload::NeedsRestart("upstream")
        );
        assert_eq!(
            other(&["--upstream", "up0", "--downstream", "dn1"]),
            Reload::Apply(vec!["downstream"]),
            "downstream interfaces can be added and removed live"
        );
        for (extra, key) in [
            (["--control", "/run/other.sock"], "control"),
            (["--control-group", "4242"], "control-group"),
            (["--workers", "9"], "workers"),
            (["--log-file", "/tmp/x.log"], "log-file"),
            (["--metrics-listen", "127.0.0.1:9808"], "metrics-listen"),
            (["--source-mac", "02:00:00:00:00:09"], "source-mac"),
            (["--query-source", "10.9.9.9"], "query-source"),
        ] {
            let mut a = vec!["--upstream", "up0", "--downstream", "dn0"];
            a.extend(extra);
            assert_eq!(other(&a), Reload::NeedsRestart(key));
        }
        let mut a = vec!["--upstream", "up0", "--downstream", "dn0", "--no-ipv6"];
        assert_eq!(other(&a), Reload::NeedsRestart("no-ipv6"));
        a[4] = "--wait-for-interfaces";
        assert_eq!(other(&a), Reload::NeedsRestart("wait-for-interfaces"));
        // A restart key wins over live ones changed with it: nothing is applied.
        assert_eq!(
            other(&[
                "--upstream",
                "lan0",
                "--downstream",
                "dn0",
                "--robustness",
                "3"
            ]),
            Reload::NeedsRestart("upstream")
        );
    }

    fn down(name: &str, fb: CompatFallback) -> Downstream {
        Downstream {
            name: name.into(),
            source_mac: None,
            query_source: None,
            compat_fallback: fb,
        }
    }

    #[test]
    fn reload_slots_keep_staying_interfaces_free_removed_ones_and_fill_free_ones() {
        use CompatFallback::{Multicast as M, Unicast as U};
        let slots = vec![Some(down("a", M)), Some(down("b", M)), None, None];
        let names = |s: &[Option<Downstream>]| {
            s.iter()
                .map(|d| d.as_ref().map_or("-", |d| d.name.as_str()).to_string())
                .collect::<Vec<_>>()
        };
        // b goes, c and d come: c takes b's slot, d the next free one; a keeps slot 0 with
        // its new setting.
        let out = assign_slots(&slots, &[down("a", U), down("c", M), down("d", M)]).unwrap();
        assert_eq!(names(&out), ["a", "c", "d", "-"]);
        assert_eq!(out[0].as_ref().unwrap().compat_fallback, U);
        // Unchanged: the same slots.
        assert_eq!(
            assign_slots(&slots, &[down("a", M), down("b", M)]).unwrap(),
            slots
        );
        // Order in the file does not move an interface.
        let out = assign_slots(&slots, &[down("b", M), down("a", M)]).unwrap();
        assert_eq!(names(&out), ["a", "b", "-", "-"]);
        // No free slot left: an error naming the interface and the limit.
        let e = assign_slots(
            &slots,
            &[
                down("a", M),
                down("b", M),
                down("c", M),
                down("d", M),
                down("e", M),
            ],
        )
        .unwrap_err();
        assert!(e.contains("downstream e") && e.contains("at most 4"), "{e}");
    }
}
