//! snoopcast: thin entry point. Parse the command line, run, map the result to an exit code:
//! 0 clean stop, 1 runtime failure (privilege, sockets, daemon not running), 2 bad usage.

use clap::{CommandFactory, FromArgMatches};
use snoopcast::cli::{Cli, Command, RunArgs, StatusArgs, StatusFormat};
use snoopcast::config::{Config, IfaceInfo, Lookups};
use snoopcast::config_file;
use snoopcast::runtime::logging::{self, LogFile};
use snoopcast::runtime::reload::Reloader;
use snoopcast::runtime::stats::Counters;
use snoopcast::runtime::{control, daemon, iface, metrics, privs};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match snoopcast::cli::command()
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match cli.command {
        Command::Run(_) => match options(&argv) {
            // A reload reads the same command line and file again.
            Ok((a, _)) => run(a, move || {
                let (a, _) = options(&argv)?;
                Config::from_args(&a, &System).map_err(|e| e.to_string())
            }),
            Err(e) => fail(2, e),
        },
        Command::Check(_) => match options(&argv) {
            Ok((a, m)) => check(&a, &m),
            Err(e) => fail(2, e),
        },
        Command::Status(a) => status(a),
        Command::Doctor(_) => doctor(&argv),
        Command::Completions(a) => snoopcast::completions::print(a),
    }
}

/// The options of `run` or `check` (the same), with a --config file's.
fn options(argv: &[OsString]) -> Result<(RunArgs, clap::ArgMatches), String> {
    // There are no options before the subcommand: it is the first argument.
    config_file::resolve(&run_command(), &argv[2..], |p| std::fs::read_to_string(p))
}

/// `doctor`: gather, check, print one line per check; exit 0 when all are ok, else 1.
fn doctor(argv: &[OsString]) -> ExitCode {
    use snoopcast::doctor::{self, gather, Timers};
    let (a, m) = match config_file::resolve(&snoopcast::cli::doctor_command(), &argv[2..], |p| {
        std::fs::read_to_string(p)
    }) {
        Ok(v) => v,
        Err(e) => return fail(2, e),
    };
    let interval = m
        .get_one::<std::time::Duration>("drops_interval")
        .copied()
        .unwrap_or(std::time::Duration::from_secs(2));
    let req = gather::Request {
        upstream: a.upstream.clone(),
        downstreams: a.downstreams.clone(),
        timers: Timers {
            query_interval: a.query_interval,
            query_response_interval: a.query_response_interval,
            robustness: a.robustness,
        },
        ipv6: !a.no_ipv6,
        query_source: a.query_source,
        control: a.control.clone(),
        interval,
    };
    let findings = doctor::checks::all(&gather::gather(&req));
    let code = emit(&doctor::render(&findings));
    if code != ExitCode::SUCCESS {
        return code;
    }
    ExitCode::from(doctor::exit_code(&findings))
}

/// The `run` subcommand's clap definition (`check` has the same arguments).
fn run_command() -> clap::Command {
    Cli::command()
        .find_subcommand("run")
        .cloned()
        .expect("the run subcommand")
}

/// `check`: everything `run` checks before it opens a socket; the effective configuration.
fn check(a: &RunArgs, m: &clap::ArgMatches) -> ExitCode {
    match Config::from_args(a, &System) {
        Err(e) => return fail(2, e),
        Ok(c) => {
            for w in c.warnings() {
                eprintln!("snoopcast: warning: {w}");
            }
        }
    }
    emit(&config_file::render(&run_command(), m))
}

/// Write a command's output to stdout. A reader that has gone (`snoopcast status | grep -q`,
/// `| head`) is a normal end, exit 0; any other write error is exit 1, named.
fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(1, format!("cannot write to standard output: {e}")),
    }
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("snoopcast: {msg}");
    ExitCode::from(code)
}

/// The configuration's lookups, from the kernel and the group database.
struct System;

impl Lookups for System {
    fn interface(&self, name: &str) -> Option<IfaceInfo> {
        iface::lookup(name)
    }
    fn group_id(&self, name: &str) -> Option<u32> {
        privs::group_by_name(name)
    }
}

/// `run`. `reread`: the configuration read again, for SIGHUP when there is a --config file.
fn run(a: RunArgs, reread: impl Fn() -> Result<Config, String> + Send + 'static) -> ExitCode {
    let has_file = a.config.is_some();
    let cfg = match Config::from_args(&a, &System) {
        Ok(c) => c,
        Err(e) => return fail(2, e),
    };
    // Bound first, with the privileges of the start (a port below 1024 needs
    // CAP_NET_BIND_SERVICE, dropped later): a bind error is a usage error, like an unknown
    // interface.
    let metrics = match cfg.metrics_listen.map(metrics::bind).transpose() {
        Ok(l) => l,
        Err(e) => return fail(2, e),
    };
    let log_file = match logging::init(cfg.log_level, cfg.log_file.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(1, e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // Installed by `run` once privileges are dropped: ctrlc and signal-hook each start a
    // thread, and capabilities are per thread. Until then SIGINT, SIGTERM and SIGHUP are
    // held pending (blocked on this thread, and so on the threads it starts), not fatal.
    let held = block_signals(true);
    let signals = move |reloader: Reloader| {
        // Ctrl-C through ctrlc; SIGTERM (stop) and SIGHUP (never a stop: reopen the log
        // file, the logrotate habit) through signal-hook, which tells them apart.
        let s2 = s.clone();
        ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed))
            .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
        let mut sigs = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGHUP])
            .map_err(|e| format!("cannot install the SIGTERM/SIGHUP handlers: {e}"))?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in sigs.forever() {
                    if sig == libc::SIGHUP {
                        on_hangup(log_file.as_deref(), has_file);
                        reloader.reload(has_file.then(&reread));
                    } else {
                        s.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        if held {
            block_signals(false);
        }
        Ok(())
    };
    match daemon::run(cfg, metrics, stop, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: the stderr logger prints it (and --log-file keeps it).
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// SIGHUP: reopen `--log-file` (a rotated file is let go of, a new one created); the
/// configuration file, if any, is read again after this.
fn on_hangup(log_file: Option<&LogFile>, has_file: bool) {
    match log_file {
        Some(f) => match f.reopen() {
            Ok(()) => log::info!("SIGHUP: log file {} reopened", f.path.display()),
            Err(e) => log::error!(
                "SIGHUP: cannot reopen the log file {}: {e}; logging goes on to the old one",
                f.path.display()
            ),
        },
        None if has_file => log::info!("SIGHUP: reading the configuration file again"),
        None => log::info!(
            "SIGHUP: nothing to do (no --config to read again, no --log-file to reopen); still running"
        ),
    }
}

/// Block (or unblock) SIGINT, SIGTERM and SIGHUP on the calling thread. True when it worked.
fn block_signals(block: bool) -> bool {
    // SAFETY: sigset_t is plain old data filled by sigemptyset/sigaddset; pthread_sigmask
    // reads it and changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut()) == 0
    }
}

fn status(a: StatusArgs) -> ExitCode {
    let Some(every) = a.watch else {
        return match fetch_snapshot(&a) {
            Ok(snap) => emit(&status_text(&a, &snap, None)),
            Err(code) => code,
        };
    };
    // --watch: redraw until Ctrl-C (SIGINT's default action ends the process) or until
    // the daemon goes away (exit 1, named).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut before: Option<snoopcast::status::Snapshot> = None;
    loop {
        let snap = match fetch_snapshot(&a) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let rates = before
            .as_ref()
            .and_then(|b| snoopcast::status::Rates::between(b, &snap));
        let mut text = status_text(&a, &snap, Some(rates.as_ref()));
        if tty {
            // Home and clear, as watch(1) does.
            text.insert_str(0, "\x1b[H\x1b[2J");
        } else {
            text.push('\n');
        }
        let code = emit(&text);
        if code != ExitCode::SUCCESS {
            return code;
        }
        before = Some(snap);
        std::thread::sleep(every);
    }
}

/// One filtered snapshot from the daemon, or the exit code of the failure (printed).
fn fetch_snapshot(a: &StatusArgs) -> Result<snoopcast::status::Snapshot, ExitCode> {
    let body = control::fetch(&a.control).map_err(|e| fail(1, e))?;
    let snap = control::parse(&body).map_err(|e| fail(1, e))?;
    Ok(snoopcast::status::filter(&snap, &a.group, &a.interface))
}

/// The snapshot as `status` prints it; `watch` is Some (with the rates once there are two
/// snapshots) under --watch.
fn status_text(
    a: &StatusArgs,
    snap: &snoopcast::status::Snapshot,
    watch: Option<Option<&snoopcast::status::Rates>>,
) -> String {
    match a.format() {
        StatusFormat::Json => {
            let mut text = serde_json::to_string_pretty(snap).expect("a snapshot serializes");
            text.push('\n');
            return text;
        }
        StatusFormat::Openmetrics => {
            let max = usize::try_from(a.metrics_max_members).unwrap_or(usize::MAX);
            return snoopcast::openmetrics::render(snap, max, Counters::docs());
        }
        StatusFormat::Text => {}
    }
    let empty = snoopcast::status::Rates::default();
    let view = snoopcast::status::View {
        all_counters: a.all_counters,
        no_headers: a.no_headers,
        // Under --watch the rate columns are there from the first draw ("-" until the
        // second snapshot).
        rates: watch.map(|r| r.unwrap_or(&empty)),
    };
    snoopcast::status::render(snap, &view)
}
