//! Log lines when stderr is the systemd journal: `JOURNAL_STREAM` names stderr's device
//! and inode, as systemd sets it for a unit whose stderr is the journal. Its own test
//! binary: the environment it sets is the process's.
//!
//! ```text
//!  [src] s0 --veth-- up0 [box: snoopcast] dn0 --veth-- p0 [sw: br0, dumb] p1 --veth-- eth0 [h1]
//! ```

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Every line carries its syslog priority (`<6>` info, `<4>` warning, `<7>` debug) and no
/// timestamp; the same daemon without JOURNAL_STREAM writes RFC 3339 timestamps instead.
#[test]
fn journal_lines_carry_priorities_and_no_timestamps() {
    require_root!();
    let lan = Lan::builder("jrnl").hosts(1).build();
    // The daemon's stderr is this file (start_snoopcast truncates it, same inode).
    let log = lan.dir.join("snoopcast.log");
    std::fs::write(&log, "").unwrap();
    let m = std::fs::metadata(&log).unwrap();
    // One test in this binary: nothing else reads the environment concurrently.
    std::env::set_var("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
    // A second downstream that is not there: a warning, waited for.
    let args = [
        "--query-interval",
        "5s",
        "--query-response-interval",
        "1s",
        "--downstream",
        "jrnl-absent",
        "--wait-for-interfaces",
    ];
    let daemon = start_snoopcast(&lan, &args);
    std::env::remove_var("JOURNAL_STREAM");
    std::thread::sleep(Duration::from_millis(300));
    daemon.stop_ok();
    let text = std::fs::read_to_string(&log).unwrap();
    // The first line is the harness's own "# ip ..." line.
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("# ")).collect();
    assert!(!lines.is_empty(), "no log lines: {text}");
    for l in &lines {
        let ok = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .any(|p| l.starts_with(p));
        assert!(ok, "line without a priority prefix: {l:?}");
        assert!(
            !l.contains("[INFO]") && !l.contains("[WARN]"),
            "level text: {l:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>snoopcast ") && l.contains(" started")),
        "no <6> start line: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("jrnl-absent")),
        "no <4> warning for the absent interface: {text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<7>")),
        "no <7> debug line: {text}"
    );

    // Without JOURNAL_STREAM: timestamps with the date and an offset, no priorities.
    let daemon = start_snoopcast(&lan, &args[..4]);
    daemon.stop_ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let started = text
        .lines()
        .find(|l| l.contains(" started: upstream"))
        .unwrap_or_else(|| panic!("no start line: {text}"));
    let stamp = started.split_whitespace().next().unwrap();
    assert!(
        stamp.len() >= 20 && stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[10] == b'T',
        "not an RFC 3339 timestamp: {started:?}"
    );
    assert!(
        stamp.ends_with('Z') || stamp[19..].contains('+') || stamp[19..].contains('-'),
        "no UTC offset: {started:?}"
    );
    assert!(!started.starts_with('<'), "{started:?}");
}
