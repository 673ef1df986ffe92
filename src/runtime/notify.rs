//! The systemd notification protocol (sd_notify(3)): readiness, stopping, the watchdog and a
//! status line, as datagrams to `NOTIFY_SOCKET` (abstract names included) through the
//! sd-notify crate. Nothing is sent when `NOTIFY_SOCKET` is not set (not run by systemd
//! with `Type=notify`). A failed send is logged at debug level only: the daemon works on
//! without the service manager's view.

use log::debug;
use sd_notify::NotifyState;
use std::time::Duration;

fn send(what: &str, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify {what}: {e}");
    }
}

/// READY=1 with a first status line: the threads run and the control socket answers.
pub fn ready(status: &str) {
    send("READY", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with MONOTONIC_USEC: a reload began (READY=1 follows when it is done).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING", &[NotifyState::Reloading, now]),
        Err(e) => debug!("sd_notify RELOADING: no monotonic time: {e}"),
    }
}

/// READY=1 again after a reload.
pub fn reloaded() {
    send("READY", &[NotifyState::Ready]);
}

/// STOPPING=1: shutdown began (upstream groups are being left).
pub fn stopping() {
    send(
        "STOPPING",
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
}

/// A new STATUS= line (what `systemctl status` shows).
pub fn status(line: &str) {
    send("STATUS", &[NotifyState::Status(line)]);
}

/// WATCHDOG=1: the control loop is alive.
pub fn watchdog() {
    send("WATCHDOG", &[NotifyState::Watchdog]);
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC` when the service manager set it
/// for this process, else never.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
