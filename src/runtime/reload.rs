//! Reloads (SIGHUP with `--config`): a new configuration is compared with the running one
//! (`Config::reload_to`); what can change live goes to the control thread as the snoopers'
//! new configuration, which keeps every member and upstream join the change does not touch.
//! A key that needs a restart, or a file that no longer checks, keeps the old configuration
//! running with one error line. Also the snoopers' configuration at start.

use super::logging;
use super::notify;
use super::shared::Shared;
use super::stats::inc;
use crate::config::{assign_slots, Config, Downstream, Reload};
use crate::core::membership::CompatFallback;
use crate::core::querier::Mode;
use crate::core::reporter::ReporterConfig;
use crate::core::snooper::SnooperConfig;
use crossbeam_channel::Sender;
use log::{error, info, warn};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A reload for the control thread: the snoopers' new configurations and the downstream
/// slots (see [`Shared::slots`]).
pub(crate) struct Reconfig {
    pub(crate) v4: SnooperConfig,
    pub(crate) v6: SnooperConfig,
    pub(crate) slots: Vec<Option<Downstream>>,
}

/// Applies reloads; handed to the signal handler once the daemon runs.
pub struct Reloader {
    sh: Arc<Shared>,
    /// The configuration running now (the start one, then each applied reload).
    running: Mutex<Config>,
    tx: Sender<Reconfig>,
}

impl Reloader {
    pub(crate) fn new(sh: Arc<Shared>, tx: Sender<Reconfig>) -> Reloader {
        let running = Mutex::new(sh.cfg.clone());
        Reloader { sh, running, tx }
    }

    /// Apply `new`, the configuration read again (or why it could not be), and say so in
    /// one log line and the counters `reloads` or `reload_errors`. None: there is no
    /// configuration file to read again. RELOADING=1 and READY=1 around it either way.
    pub fn reload(&self, new: Option<Result<Config, String>>) {
        notify::reloading();
        if let Some(new) = new {
            self.apply(new);
        }
        notify::reloaded();
    }

    fn apply(&self, new: Result<Config, String>) {
        let c = &self.sh.counters;
        let new = match new {
            Ok(n) => n,
            Err(e) => {
                inc(&c.reload_errors);
                error!("reload: {e}; the old configuration keeps running (fix the file and send SIGHUP again)");
                return;
            }
        };
        let mut running = self.running.lock();
        match running.reload_to(&new) {
            Reload::NeedsRestart(key) => {
                inc(&c.reload_errors);
                error!(
                    "reload: {key} cannot change while running; the old configuration keeps running \
                     (restart snoopcast to apply it, or put the old value back)"
                );
            }
            Reload::Apply(keys) if keys.is_empty() => {
                inc(&c.reloads);
                info!("reload: configuration unchanged");
            }
            Reload::Apply(keys) => {
                let slots = match assign_slots(&self.sh.slots.read(), &new.downstreams) {
                    Ok(s) => s,
                    Err(e) => {
                        inc(&c.reload_errors);
                        error!("reload: {e}; the old configuration keeps running");
                        return;
                    }
                };
                let (v4, v6) = snooper_configs(&new, &slots);
                if self.tx.send(Reconfig { v4, v6, slots }).is_err() {
                    inc(&c.reload_errors);
                    error!("reload: the control thread has stopped; nothing changed");
                    return;
                }
                logging::set_level(new.log_level);
                self.sh
                    .metrics_max_members
                    .store(new.metrics_max_members, Ordering::Relaxed);
                inc(&c.reloads);
                info!("reload: applied {}", keys.join(", "));
                for w in new.warnings() {
                    warn!("configuration: {w}");
                }
                *running = new;
            }
        }
    }
}

/// The two snoopers' configuration: the IPv6 one, with `--no-ipv6`, without a querier.
/// Both report upstream with the downstream robustness and query interval (the robustness
/// of a network is one setting) and the upstream leave delay.
pub(crate) fn snooper_configs(
    cfg: &Config,
    slots: &[Option<Downstream>],
) -> (SnooperConfig, SnooperConfig) {
    let reporter = ReporterConfig {
        robustness: u8::try_from(cfg.settings.robustness).unwrap_or(7),
        query_interval: cfg.settings.query_interval,
        leave_delay: cfg.upstream_leave_delay,
        ..ReporterConfig::default()
    };
    let v4 = SnooperConfig {
        settings: cfg.settings.clone(),
        filter: cfg.filter.clone(),
        // Per slot; a free slot's is never used.
        fallback: slots
            .iter()
            .map(|d| {
                d.as_ref()
                    .map_or(CompatFallback::Multicast, |d| d.compat_fallback)
            })
            .collect(),
        querier: cfg.querier.clone(),
        reporter: reporter.clone(),
    };
    let mut querier6 = cfg.querier6.clone();
    if !cfg.ipv6 {
        querier6.mode = Mode::Off;
    }
    let v6 = SnooperConfig {
        querier: querier6,
        reporter: ReporterConfig {
            // The ICMPv6 part of an MLD report: the MTU less the IPv6 and hop-by-hop headers.
            max_report_len: 1500 - 40 - 8,
            ..reporter
        },
        ..v4.clone()
    };
    (v4, v6)
}
