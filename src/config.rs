//! Validated configuration: interfaces resolved, options checked, before anything starts.

use crate::cli::{QuerierMode, RunArgs};
use crate::core::filter::GroupFilter;
use crate::core::membership::{CompatFallback, Settings};
use crate::core::querier::{Mode, QuerierConfig};
use crate::runtime::iface::{self, IfaceInfo};
use crate::runtime::privs;
use crate::wire::{LinkType, MacAddr};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// A downstream interface as configured (by name: it may come and go).
#[derive(Debug, Clone)]
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
    /// Check everything `run` was given. `lookup` finds interfaces (the real one reads the
    /// kernel; tests pass a fake). Interfaces that exist are checked now; a missing one is an
    /// error unless `--wait-for-interfaces`.
    pub fn from_args(
        a: &RunArgs,
        lookup: impl Fn(&str) -> Option<IfaceInfo>,
    ) -> Result<Config, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let present = |name: &str, opt: &str| match lookup(name) {
            Some(i) => Ok(Some(i)),
            None if a.wait_for_interfaces => Ok(None),
            None => Err(ConfigError(format!(
                "{opt} {name}: no such network interface (use --wait-for-interfaces to wait for it)"
            ))),
        };
        present(&a.upstream, "--upstream")?;
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
            if name == &a.upstream {
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
                privs::parse_group(g)
                    .and_then(|spec| privs::resolve_group(&spec, privs::group_by_name))
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
            upstream: a.upstream.clone(),
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
        })
    }

    /// With the real interface lookup.
    pub fn from_system(a: &RunArgs) -> Result<Config, ConfigError> {
        Config::from_args(a, iface::lookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

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
        Config::from_args(&r, fake)
    }

    fn link(c: &Config, i: usize) -> DownLink {
        c.downstreams[i]
            .resolve(fake(&c.downstreams[i].name).unwrap())
            .unwrap()
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
        assert_eq!(c.settings.group_membership_interval().as_secs(), 260);
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
}
