//! `snoopcast status --json`: reading it, waiting for it, and the assertions on what the
//! agents saw.

use super::*;
use serde_json::Value;
use std::thread;
use std::time::Duration;

impl Lan {
    /// `snoopcast status --json` in the box namespace, parsed; Err if it failed.
    pub fn try_status_json(&self) -> Result<Value, String> {
        let ctl = self.control_path();
        let out = ns_exec(
            &self.box_ns(),
            &[
                &snoopcast_bin(),
                "status",
                "--control",
                ctl.to_str().unwrap(),
                "--json",
            ],
            Duration::from_secs(5),
        );
        if !out.ok() {
            return Err(format!("status failed ({}): {}", out.status, out.stderr));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// `snoopcast status --json`, parsed; panics if it fails.
    pub fn status_json(&self) -> Value {
        self.try_status_json().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The member entries of `group` in a status snapshot (empty if the group is not listed).
pub fn members(status: &Value, group: &str) -> Vec<Value> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["group"] == group)
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// How many members `status` lists, over all groups.
pub fn member_count(status: &Value) -> usize {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["members"].as_array().map_or(0, Vec::len))
        .sum()
}

/// The member entry of `host` in `group`, matched by MAC.
pub fn member(status: &Value, group: &str, host: &Host) -> Option<Value> {
    members(status, group)
        .into_iter()
        .find(|m| m["mac"].as_str().map(|s| s.eq_ignore_ascii_case(&host.mac)) == Some(true))
}

pub fn is_member(status: &Value, group: &str, host: &Host) -> bool {
    member(status, group, host).is_some()
}

/// Groups the status lists `host` in.
pub fn groups_of(status: &Value, host: &Host) -> Vec<String> {
    status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| {
            g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mac"].as_str().map(|s| s.eq_ignore_ascii_case(&host.mac)) == Some(true))
        })
        .filter_map(|g| g["group"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `status --json` satisfies `cond`; panics with the last snapshot if not.
pub fn wait_for_status(lan: &Lan, timeout: Duration, what: &str, cond: impl Fn(&Value) -> bool) {
    let mut last = Value::Null;
    let ok = wait_until(timeout, || match lan.try_status_json() {
        Ok(v) => {
            let hit = cond(&v);
            last = v;
            hit
        }
        Err(e) => {
            last = Value::String(e);
            false
        }
    });
    assert!(
        ok,
        "timed out after {timeout:?} waiting for: {what}\nlast status: {last:#}"
    );
}

/// No frame of `group` arrived at this host as L2 multicast.
pub fn assert_no_multicast(r: &AgentReport, group: &str) {
    assert_eq!(
        r.frames(group, MULTICAST),
        0,
        "{}: {group} arrived as L2 multicast",
        r.host.name
    );
}

/// The member got the stream as unicast copies to its own MAC, intact on its socket.
pub fn assert_unicast_member(r: &AgentReport, group: &str, sent: u64) {
    let who = &r.host.name;
    assert_delivered(
        r.frames(group, UNICAST),
        sent,
        &format!("{who} {group} unicast frames"),
    );
    assert_delivered(r.sock_ok(group), sent, &format!("{who} {group} socket"));
    assert_only_unicast(r, group);
}

/// `assert_unicast_member` for the stream of `group` from `source` (`sent` datagrams),
/// where other sources may have sent to the group too.
pub fn assert_unicast_member_from(r: &AgentReport, group: &str, source: &str, sent: u64) {
    let who = &r.host.name;
    assert_delivered(
        r.frames_from(group, source, UNICAST),
        sent,
        &format!("{who} {group} from {source}: unicast frames"),
    );
    assert_delivered(
        r.sock_ok_from(group, source),
        sent,
        &format!("{who} {group} from {source}: socket"),
    );
    assert_only_unicast(r, group);
}

/// No frame of `group` as L2 multicast or for another MAC, no corrupt or duplicate datagram.
fn assert_only_unicast(r: &AgentReport, group: &str) {
    let who = &r.host.name;
    assert_no_multicast(r, group);
    assert_eq!(
        r.frames(group, OTHER),
        0,
        "{who}: {group} frames for other MACs"
    );
    assert_eq!(
        r.sock_bad_or_dup(),
        0,
        "{who}: corrupt or duplicate datagrams"
    );
}

/// Nothing of `group` reached this host, in any frame class or on any socket.
pub fn assert_nothing(r: &AgentReport, group: &str) {
    let who = &r.host.name;
    assert_eq!(r.frames_any(group), 0, "{who}: got frames of {group}");
    assert_eq!(r.sock_ok(group), 0, "{who}: socket got {group}");
}

/// Asserts `got >= DELIVERY * sent` (and `got <= sent`: no duplicates), with context.
pub fn assert_delivered(got: u64, sent: u64, what: &str) {
    assert!(sent > 0, "{what}: nothing was sent");
    let need = (sent as f64 * DELIVERY).ceil() as u64;
    assert!(
        got >= need && got <= sent,
        "{what}: got {got} of {sent} (need {need}..={sent})"
    );
}

/// Gives the last frames time to arrive after a sender finished.
pub fn settle() {
    thread::sleep(Duration::from_millis(400));
}
