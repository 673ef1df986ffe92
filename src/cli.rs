//! Command-line definitions (clap) and value parsers.

use crate::core::filter::Prefix;
use crate::core::membership::CompatFallback;
use crate::openmetrics::DEFAULT_MAX_MEMBERS;
use crate::wire::MacAddr;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_CONTROL: &str = "/run/snoopcast/snoopcast.sock";
/// The configuration file the packaged unit gives `--config`.
pub const DEFAULT_CONFIG: &str = "/etc/snoopcast/snoopcast.toml";

#[derive(Debug, Parser)]
#[command(
    name = "snoopcast",
    version,
    about = "IGMP and MLD snooping with multicast-to-unicast forwarding for dumb switches and VPN taps",
    long_about = "snoopcast listens for IGMP and MLD reports on downstream interfaces, joins the wanted \
groups on the upstream interface, and re-sends every multicast data frame as one Ethernet frame \
per subscribed host, addressed to that host's own MAC. See snoopcast(8)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run(Box<RunArgs>),
    /// Check a configuration as `run` would (interfaces, prefixes, durations, groups) without
    /// opening any socket; print the effective configuration as TOML.
    Check(Box<RunArgs>),
    /// Show the membership table and counters of a running daemon.
    Status(StatusArgs),
    /// Check the machine and the running daemon for what keeps snoopcast from working (MAC
    /// ageing, bridges, queriers, addresses, rp_filter, rmem_max, drops, firewall); one line
    /// per check, exit 1 if any warns or fails. Takes run's options (all optional: without
    /// interfaces it checks the running daemon's). See snoopcast(8), DOCTOR.
    Doctor(Box<DoctorArgs>),
    /// Print a shell completion script (for packagers).
    #[command(hide = true)]
    Completions(CompletionsArgs),
}

/// The shells the package ships completions for (`snoopcast completions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// Shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuerierMode {
    /// Query unless a querier with a lower address is heard (RFC 3376 section 6.6.2).
    Auto,
    /// Always query.
    On,
    /// Never query; rely on another querier on the segment.
    Off,
}

/// One `--compat-fallback` value: `multicast|unicast` for every downstream interface, or
/// `IF=multicast|unicast` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackArg {
    pub iface: Option<String>,
    pub policy: CompatFallback,
}

fn parse_fallback(s: &str) -> Result<FallbackArg, String> {
    let (iface, value) = match s.split_once('=') {
        Some(("", _)) => return Err(format!("'{s}': the interface name before '=' is empty")),
        Some((i, v)) => (Some(i.to_string()), v),
        None => (None, s),
    };
    let policy = match value {
        "multicast" => CompatFallback::Multicast,
        "unicast" => CompatFallback::Unicast,
        _ => {
            return Err(format!(
                "'{s}': expected multicast, unicast, or IF=multicast|unicast"
            ))
        }
    };
    Ok(FallbackArg { iface, policy })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Read options from this TOML file (keys are the long option names: `upstream = "eth1"`);
    /// an option given on the command line wins over the file. See snoopcast.toml(5).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface where multicast arrives and where groups are joined (Ethernet or L3 tun).
    #[arg(long, value_name = "IF", required_unless_present = "config")]
    pub upstream: Option<String>,
    /// Interface with hosts behind a dumb switch or a VPN tap (repeatable).
    #[arg(
        long = "downstream",
        value_name = "IF",
        required_unless_present = "config"
    )]
    pub downstreams: Vec<String>,
    /// Unix socket for `snoopcast status`.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// Group of the control socket (name or numeric gid): its members may run `snoopcast
    /// status`. The socket is mode 0660, owned by the daemon's user and this group (default:
    /// the daemon's own group).
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<String>,
    /// General query interval (RFC 3376 8.2), e.g. 125s, 2m.
    #[arg(long, value_name = "DUR", default_value = "125s", value_parser = parse_duration)]
    pub query_interval: Duration,
    /// Maximum response time advertised in general queries (RFC 3376 8.3).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub query_response_interval: Duration,
    /// Keep the upstream membership of a group this long after its last member left, so a
    /// member coming back (IPTV channel zapping) finds the stream still there; 0: leave at
    /// once.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = parse_delay)]
    pub upstream_leave_delay: Duration,
    /// Robustness variable (RFC 3376 8.1), 1 to 7.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=7))]
    pub robustness: u32,
    /// Whether to send general queries downstream.
    #[arg(long, value_enum, default_value_t = QuerierMode::Auto)]
    pub querier: QuerierMode,
    /// IGMP version of the queries it sends.
    #[arg(long, value_name = "2|3", default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub igmp_version: u8,
    /// MLD version of the IPv6 queries it sends.
    #[arg(long, value_name = "1|2", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub mld_version: u8,
    /// Turn IPv6 off: no MLD snooping, no MLD queries, no IPv6 forwarding or joins.
    #[arg(long)]
    pub no_ipv6: bool,
    /// Handle only groups in this IPv4 or IPv6 prefix (repeatable; each family's list is
    /// separate; default 224.0.0.0/4 and ff00::/8).
    #[arg(long, value_name = "CIDR", value_parser = parse_group_prefix)]
    pub allow: Vec<Prefix>,
    /// Never handle groups in this prefix (repeatable; beats --allow).
    #[arg(long, value_name = "CIDR", value_parser = parse_group_prefix)]
    pub deny: Vec<Prefix>,
    /// Most groups one host may join; reports beyond are ignored and counted.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_groups_per_host: u64,
    /// Most memberships (host x group) in total; reports beyond are ignored and counted.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_members: u64,
    /// Source address of the queries (default: the interface's IPv4 address, else 0.0.0.0).
    #[arg(long, value_name = "IP", value_parser = parse_query_source)]
    pub query_source: Option<Ipv4Addr>,
    /// Delivery of groups with IGMPv1/v2 hosts (their reports are suppressed on a shared
    /// segment): multicast|unicast for all downstreams (default multicast), or IF=multicast|unicast
    /// for one (repeatable).
    #[arg(long, value_name = "[IF=]POLICY", value_parser = parse_fallback)]
    pub compat_fallback: Vec<FallbackArg>,
    /// Wait for interfaces missing at start (with a warning) instead of failing.
    #[arg(long)]
    pub wait_for_interfaces: bool,
    /// Sender threads besides the upstream capture thread, which sends copies itself while it
    /// keeps up and hands bursts to them when it falls behind; 0 = the capture thread sends
    /// every copy (default: the cores this process may use, minus one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=64))]
    pub workers: Option<u64>,
    /// Source MAC of the copies (default: the downstream interface's own MAC).
    #[arg(long, value_name = "MAC", value_parser = parse_unicast_mac)]
    pub source_mac: Option<MacAddr>,
    /// Log level.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Also log to this file (appended).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Serve the metrics (OpenMetrics text, as `status --format openmetrics` prints them) at
    /// http://ADDR:PORT/metrics, e.g. 127.0.0.1:9808 or [::]:9808 (default: off).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Most members given their own packets and bytes series in the metrics; the rest are
    /// counted in snoopcast_member_series_omitted.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_MEMBERS, value_parser = clap::value_parser!(u64).range(0..=MAX_MAX_MEMBERS))]
    pub metrics_max_members: u64,
}

/// Most `--metrics-max-members`.
pub const MAX_MAX_MEMBERS: u64 = 1_000_000;

/// What `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// The tables.
    Text,
    /// The raw snapshot, pretty-printed JSON.
    Json,
    /// OpenMetrics 1.0 text, as --metrics-listen serves it.
    Openmetrics,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Time between the two status snapshots the capture-drops check compares.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_watch)]
    pub drops_interval: Duration,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The options `doctor` takes besides run's, which a --config file may not set.
pub const DOCTOR_ONLY: &[&str] = &["drops-interval"];

/// The `doctor` subcommand as parsed: run's options, with the interfaces optional (the
/// running daemon's are checked when none are named).
pub fn doctor_command() -> clap::Command {
    command()
        .find_subcommand("doctor")
        .cloned()
        .expect("the doctor subcommand")
}

/// The whole command line: [`Cli`], with `doctor`'s interfaces optional.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("doctor", |d| {
        d.mut_arg("upstream", |a| {
            a.required_unless_present(clap::builder::Resettable::<clap::Id>::Reset)
        })
        .mut_arg("downstreams", |a| {
            a.required_unless_present(clap::builder::Resettable::<clap::Id>::Reset)
        })
    })
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Control socket of the running daemon.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// Print the raw JSON snapshot (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Only this group (repeatable): its members, its traffic and its upstream join.
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<std::net::IpAddr>,
    /// Only members on this downstream interface (repeatable), and only its querier state.
    #[arg(long, value_name = "IF")]
    pub interface: Vec<String>,
    /// Redraw every DUR with packet and bit rates per member and per group, computed from
    /// two snapshots (like watch(1)); Ctrl-C ends it.
    #[arg(long, value_name = "DUR", value_parser = parse_watch)]
    pub watch: Option<Duration>,
    /// Print only the member rows, without title, column headers or the other sections.
    #[arg(long)]
    pub no_headers: bool,
    /// List every counter in the text view, also those at 0.
    #[arg(long)]
    pub all_counters: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// With --format openmetrics: most members given their own series (as the daemon's
    /// --metrics-max-members).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_MEMBERS, value_parser = clap::value_parser!(u64).range(0..=MAX_MAX_MEMBERS))]
    pub metrics_max_members: u64,
}

impl StatusArgs {
    /// The format asked for: `--json` is `--format json`.
    pub fn format(&self) -> StatusFormat {
        if self.json {
            StatusFormat::Json
        } else {
            self.format
        }
    }
}

/// `--watch`: a humantime duration of at least 100 ms and at most one hour.
pub fn parse_watch(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 1s, 500ms"))?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("'{s}': between 100ms and 1h"));
    }
    Ok(d)
}

/// humantime durations ("125s", "2m", "500ms"), at least 100 ms and at most one day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 125s, 2m, 500ms"))?;
    if d < Duration::from_millis(100) {
        return Err(format!("'{s}' is too short: at least 100ms"));
    }
    if d > Duration::from_secs(86_400) {
        return Err(format!("'{s}' is too long: at most 24h"));
    }
    Ok(d)
}

/// A delay that may be zero (`0s`: none), at most an hour.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 0s, 30s, 2m"))?;
    if d > Duration::from_secs(3600) {
        return Err(format!("'{s}' is too long: at most 1h"));
    }
    Ok(d)
}

/// An `--allow`/`--deny` prefix: one that holds some group (a unicast range is a mistake).
fn parse_group_prefix(s: &str) -> Result<Prefix, String> {
    let p: Prefix = s.parse()?;
    if !p.has_multicast() {
        return Err(format!(
            "'{s}' holds no multicast group address (IPv4 groups are in 224.0.0.0/4, IPv6 \
             groups in ff00::/8)"
        ));
    }
    Ok(p)
}

/// `--query-source`: IPv4 only; MLD queries go out from the interface's link-local address.
fn parse_query_source(s: &str) -> Result<Ipv4Addr, String> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(a);
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(format!(
            "'{s}' is an IPv6 address: --query-source is the IPv4 source of IGMP queries; MLD \
             queries always go out from the interface's link-local address (RFC 3810 section \
             5.1.14), so there is nothing to set for IPv6"
        ));
    }
    Err(format!("'{s}' is not an IPv4 address"))
}

fn parse_unicast_mac(s: &str) -> Result<MacAddr, String> {
    let m = crate::wire::ethernet::parse_mac(s).map_err(|e| format!("{e}"))?;
    if m.is_multicast() || m.is_zero() {
        return Err(format!("'{s}' is not a unicast MAC address"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut v = vec!["snoopcast", "run"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| match c.command {
            Command::Run(r) => *r,
            _ => unreachable!(),
        })
    }

    #[test]
    fn defaults_match_the_contract() {
        let r = run(&["--upstream", "up0", "--downstream", "dn0"]).unwrap();
        assert_eq!(r.control, PathBuf::from("/run/snoopcast/snoopcast.sock"));
        assert_eq!(r.query_interval, Duration::from_secs(125));
        assert_eq!(r.query_response_interval, Duration::from_secs(10));
        assert_eq!(r.robustness, 2);
        assert_eq!(r.querier, QuerierMode::Auto);
        assert_eq!(r.igmp_version, 3);
        assert_eq!(r.max_groups_per_host, 128);
        assert_eq!(r.max_members, 10_000);
        assert!(r.compat_fallback.is_empty() && !r.wait_for_interfaces);
        assert_eq!(r.log_level, LogLevel::Info);
        assert!(r.allow.is_empty() && r.deny.is_empty() && r.workers.is_none());
    }

    fn status(args: &[&str]) -> Result<StatusArgs, clap::Error> {
        let mut v = vec!["snoopcast", "status"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| match c.command {
            Command::Status(s) => s,
            _ => unreachable!(),
        })
    }

    #[test]
    fn status_format_json_is_a_synonym_that_conflicts_with_format() {
        assert_eq!(status(&[]).unwrap().format(), StatusFormat::Text);
        assert_eq!(status(&["--json"]).unwrap().format(), StatusFormat::Json);
        assert_eq!(
            status(&["--format", "json"]).unwrap().format(),
            StatusFormat::Json
        );
        let s = status(&["--format", "openmetrics", "--metrics-max-members", "5"]).unwrap();
        assert_eq!(s.format(), StatusFormat::Openmetrics);
        assert_eq!(s.metrics_max_members, 5);
        assert_eq!(status(&[]).unwrap().metrics_max_members, 1000);
        let e = status(&["--json", "--format", "text"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
        assert!(status(&["--format", "yaml"]).is_err());
    }

    #[test]
    fn metrics_options_of_run() {
        let base = ["--upstream", "u", "--downstream", "d"];
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            run(&a)
        };
        let r = with(&[]).unwrap();
        assert_eq!((r.metrics_listen, r.metrics_max_members), (None, 1000));
        let r = with(&[
            "--metrics-listen",
            "[::1]:9808",
            "--metrics-max-members",
            "0",
        ])
        .unwrap();
        assert_eq!(r.metrics_listen, Some("[::1]:9808".parse().unwrap()));
        assert_eq!(r.metrics_max_members, 0);
        for bad in ["localhost", "127.0.0.1", "127.0.0.1:99999"] {
            let e = with(&["--metrics-listen", bad]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(with(&["--metrics-max-members", "1000001"]).is_err());
    }

    #[test]
    fn repeatable_options() {
        let r = run(&[
            "--upstream",
            "up0",
            "--downstream",
            "a",
            "--downstream",
            "b",
            "--allow",
            "239.0.0.0/8",
            "--allow",
            "232.0.0.0/8",
            "--deny",
            "239.255.0.0/16",
        ])
        .unwrap();
        assert_eq!(r.downstreams, vec!["a", "b"]);
        assert_eq!(r.allow.len(), 2);
        assert_eq!(r.deny.len(), 1);
        let r = run(&[
            "--upstream",
            "up0",
            "--downstream",
            "a",
            "--compat-fallback",
            "unicast",
            "--compat-fallback",
            "b=multicast",
        ])
        .unwrap();
        assert_eq!(
            r.compat_fallback[0],
            FallbackArg {
                iface: None,
                policy: CompatFallback::Unicast
            }
        );
        assert_eq!(
            r.compat_fallback[1],
            FallbackArg {
                iface: Some("b".into()),
                policy: CompatFallback::Multicast
            }
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--query-interval",
            "soon",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--allow",
            "239.1.1.1/99",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("239.1.1.1/99"), "{e}");
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--source-mac",
            "01:00:5e:00:00:01",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("unicast"), "{e}");
        assert!(run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--igmp-version",
            "1"
        ])
        .is_err());
        assert!(run(&["--upstream", "u", "--downstream", "d", "--robustness", "0"]).is_err());
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--compat-fallback",
            "d=sometimes",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("d=sometimes"), "{e}");
        assert!(run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--compat-fallback",
            "=unicast"
        ])
        .is_err());
        assert!(run(&["--upstream", "u"]).is_err());
        for p in ["10.0.0.0/8", "2001:db8::/32"] {
            let e = run(&["--upstream", "u", "--downstream", "d", "--deny", p]).unwrap_err();
            assert!(
                e.to_string().contains("holds no multicast group address"),
                "{e}"
            );
        }
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--query-source",
            "fe80::1",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("link-local address"), "{e}");
        let e = run(&[
            "--upstream",
            "u",
            "--downstream",
            "d",
            "--query-source",
            "10.1",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not an IPv4 address"), "{e}");
    }
}
