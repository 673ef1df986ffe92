//! snoopcast: thin entry point. Parse the command line, run, map the result to an exit code:
//! 0 clean stop, 1 runtime failure (privilege, sockets, daemon not running), 2 bad usage.

use clap::Parser;
use snoopcast::cli::{Cli, Command, RunArgs, StatusArgs};
use snoopcast::config::{Config, IfaceInfo, Lookups};
use snoopcast::runtime::{control, daemon, iface, privs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match cli.command {
        Command::Run(a) => run(*a),
        Command::Status(a) => status(a),
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

fn run(a: RunArgs) -> ExitCode {
    let cfg = match Config::from_args(&a, &System) {
        Ok(c) => c,
        Err(e) => return fail(2, e),
    };
    if let Err(e) = init_logging(&cfg) {
        return fail(1, e);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // Installed by `run` once privileges are dropped: ctrlc starts a thread, and
    // capabilities are per thread.
    // Until then SIGINT/SIGTERM are held pending (blocked on this thread, and so on the
    // threads it starts), not fatal.
    let held = block_stop_signals(true);
    let signals = move || {
        ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
            .map_err(|e| format!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
        if held {
            block_stop_signals(false);
        }
        Ok(())
    };
    match daemon::run(cfg, stop, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            fail(1, e)
        }
    }
}

/// Block (or unblock) SIGINT and SIGTERM on the calling thread. True when it worked.
fn block_stop_signals(block: bool) -> bool {
    // SAFETY: sigset_t is plain old data filled by sigemptyset/sigaddset; pthread_sigmask
    // reads it and changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut()) == 0
    }
}

fn init_logging(cfg: &Config) -> Result<(), String> {
    use simplelog::{
        ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode,
        WriteLogger,
    };
    let lc = ConfigBuilder::new()
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![TermLogger::new(
        cfg.log_level,
        lc.clone(),
        TerminalMode::Stderr,
        ColorChoice::Never,
    )];
    if let Some(p) = &cfg.log_file {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("--log-file {}: {e}", p.display()))?;
        loggers.push(WriteLogger::new(cfg.log_level, lc, f));
    }
    CombinedLogger::init(loggers).map_err(|e| e.to_string())
}

fn status(a: StatusArgs) -> ExitCode {
    let body = match control::fetch(&a.control) {
        Ok(b) => b,
        Err(e) => return fail(1, e),
    };
    let snap = match control::parse(&body) {
        Ok(s) => s,
        Err(e) => return fail(1, e),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&snap).unwrap_or(body));
    } else {
        print!("{}", snoopcast::status::render(&snap));
    }
    ExitCode::SUCCESS
}
