//! Daemon-wide counters. Relaxed atomics: they are statistics, read whole only by status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Each counter is written once below, with its doc comment: the macro makes the field, its
/// entry in the status snapshot and its entry in [`Counters::docs`], from which the
/// OpenMetrics `# HELP` lines come (and against which the man page's COUNTERS section and
/// the README's list are tested).
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Every counter by name, as the status snapshot holds them.
            pub fn snapshot(&self) -> BTreeMap<String, u64> {
                let mut m = BTreeMap::new();
                $(m.insert(stringify!($name).to_string(), self.$name.load(Ordering::Relaxed));)*
                m
            }

            /// Every counter's name and doc comment, in the order they are defined. The doc
            /// text is raw: one line per comment line, each with its leading space; see
            /// [`doc_text`] for one line of plain text.
            pub fn docs() -> &'static [(&'static str, &'static str)] {
                &[$((stringify!($name), concat!($($doc, "\n",)*)),)*]
            }
        }
    };
}

/// A raw doc comment of [`Counters::docs`] as one line: its lines trimmed and joined with
/// spaces, Markdown backquotes kept.
pub fn doc_text(raw: &str) -> String {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

counters! {
    /// Reloads (SIGHUP with --config) that were applied, also those that changed nothing.
    reloads,
    /// Reloads refused: the file did not parse or check, or a key changed that needs a
    /// restart; the old configuration kept running.
    reload_errors,
    /// Multicast data frames read on the upstream interface.
    frames_received,
    /// Frames that had at least one receiver.
    frames_forwarded,
    /// Frames for groups (or sources) nobody downstream wants.
    frames_unwanted,
    /// Upstream frames that were not forwardable multicast (bad header, link-local scope...).
    frames_invalid,
    /// Unicast or group-MAC copies written to downstream interfaces.
    copies_sent,
    /// Copies not sent: sender queue full, or the send failed.
    copies_dropped,
    /// Copies handed to the sender pool (the capture thread sends the rest itself).
    copies_offloaded,
    /// Upstream frames the kernel dropped because the capture ring (or socket queue) was full.
    capture_drops,
    /// IGMP messages dropped as malformed (truncated, bad checksum, bad lengths).
    igmp_malformed,
    /// IGMP messages dropped because their TTL was not 1.
    igmp_bad_ttl,
    /// Well-formed IGMP messages of a type snoopcast does not handle (mtrace, DVMRP, PIMv1
    /// ...): ignored as RFC 3376 section 4 says, not malformed.
    igmp_unknown_type,
    /// Downstream IGMP frames the kernel dropped because the capture socket's queue was
    /// full (a report flood faster than snoopcast reads).
    igmp_capture_drops,
    /// IGMPv1 reports seen.
    reports_v1,
    /// IGMPv2 reports seen.
    reports_v2,
    /// IGMPv3 reports seen.
    reports_v3,
    /// IGMPv2 leaves seen.
    leaves_v2,
    /// Queries heard from others.
    queries_received,
    /// Queries we sent.
    queries_sent,
    /// IGMP and MLD queries that could not be sent (the downstream socket refused them).
    query_send_errors,
    /// Reports ignored: the host had --max-groups-per-host groups.
    limit_groups_per_host,
    /// Reports ignored: the table had --max-members members.
    limit_members,
    /// Reports ignored: the MAC already reported the group from 8 other addresses.
    limit_addresses_per_mac,
    /// Records ignored: group outside --allow / inside --deny / link-local.
    ignored_filtered,
    /// Records ignored: EXCLUDE or v1/v2 for the SSM range.
    ignored_ssm,
    /// Members that expired after the group membership interval.
    members_expired,
    /// IGMP messages dropped because the control thread was behind.
    events_dropped,
    /// IGMP reports (v3 state-change and current-state, v1/v2 reports and leaves) sent
    /// upstream.
    reports_sent,
    /// MLD reports (v2, v1 reports and dones) sent upstream.
    mld_reports_sent,
    /// Upstream reports that could not be sent (the upstream socket refused them).
    report_send_errors,
    /// Changes of the upstream's link-layer multicast filter the kernel refused.
    upstream_filter_errors,
    /// Members dropped because their downstream interface went away or down.
    members_dropped_iface,
    /// Checksums completed in frames sent by a local program (CHECKSUM_PARTIAL).
    checksums_completed,
    /// MLD messages dropped as malformed (truncated, bad checksum, bad lengths, fragmented).
    mld_malformed,
    /// MLD messages dropped because their hop limit was not 1 (RFC 3810 section 5).
    mld_bad_hop_limit,
    /// MLD messages dropped for their IPv6 source: not link-local (RFC 3810 sections 5.1.14
    /// and 5.2.13).
    mld_bad_source,
    /// MLD messages dropped because they had no hop-by-hop Router Alert option (RFC 3810
    /// section 5).
    mld_no_router_alert,
    /// Well-formed MLD-range ICMPv6 messages of a type snoopcast does not handle.
    mld_unknown_type,
    /// MLDv1 reports seen.
    mld_reports_v1,
    /// MLDv2 reports seen.
    mld_reports_v2,
    /// MLDv1 Done messages seen.
    mld_dones,
    /// MLD queries heard from others.
    mld_queries_received,
    /// MLD queries we sent.
    mld_queries_sent,
    /// HTTP requests to --metrics-listen answered with the metrics.
    metrics_scrapes,
    /// HTTP requests to --metrics-listen refused: malformed (400), another path (404) or
    /// method (405), too slow (408), a head over 8 KiB (431), all workers busy (503), not
    /// HTTP/1.x (505).
    metrics_rejected,
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// At most one message per `every` per kind: for warnings an attacker can trigger.
#[derive(Debug)]
pub struct RateLimit {
    every: std::time::Duration,
    last: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl RateLimit {
    pub const fn new(every: std::time::Duration) -> Self {
        RateLimit {
            every,
            last: parking_lot::Mutex::new(None),
        }
    }

    /// True when a message may be logged now.
    pub fn allow(&self, now: std::time::Instant) -> bool {
        let mut last = self.last.lock();
        match *last {
            Some(t) if now.duration_since(t) < self.every => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// At most `burst` lines per `every` for messages that are worth logging one by one at a
/// normal pace (joins, leaves, upstream joins) but that a host could produce by the
/// thousand a second: the rest is counted and summed up in the next line let through.
#[derive(Debug)]
pub struct LogBudget {
    every: std::time::Duration,
    burst: u32,
    /// Start of the current window, lines let through in it, lines held back since the
    /// last one let through.
    state: parking_lot::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

impl LogBudget {
    pub const fn new(every: std::time::Duration, burst: u32) -> Self {
        LogBudget {
            every,
            burst,
            state: parking_lot::Mutex::new((None, 0, 0)),
        }
    }

    /// Whether a line may be logged now.
    pub fn take(&self, now: std::time::Instant) -> Take {
        let mut st = self.state.lock();
        let (start, used, held) = &mut *st;
        let new_window = match *start {
            None => true,
            Some(t0) => now.duration_since(t0) >= self.every,
        };
        if new_window {
            *start = Some(now);
            *used = 0;
        }
        if *used < self.burst {
            *used += 1;
            Take::Log {
                held_back: std::mem::take(held),
            }
        } else {
            *held += 1;
            if *held == 1 {
                Take::FirstHeld
            } else {
                Take::Held
            }
        }
    }
}

/// What [`LogBudget::take`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Log it; `held_back` lines were held back before it (say so when not 0).
    Log { held_back: u64 },
    /// Hold it back; the first held back since the last one logged (say that more follow).
    FirstHeld,
    /// Hold it back.
    Held,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn snapshot_names_every_counter() {
        let c = Counters::default();
        inc(&c.copies_sent);
        add(&c.copies_dropped, 3);
        let s = c.snapshot();
        assert_eq!(s["copies_sent"], 1);
        assert_eq!(s["copies_dropped"], 3);
        assert!(s.contains_key("reports_v3") && s.contains_key("igmp_malformed"));
    }

    #[test]
    fn docs_name_every_counter_once_with_its_comment() {
        let docs = Counters::docs();
        let names: Vec<_> = docs.iter().map(|(n, _)| *n).collect();
        let snap = Counters::default().snapshot();
        assert_eq!(names.len(), snap.len(), "one entry per counter");
        for n in snap.keys() {
            assert!(names.contains(&n.as_str()), "{n} has no doc entry");
        }
        for (n, d) in docs {
            assert!(!doc_text(d).is_empty(), "{n}: empty doc comment");
            assert!(!doc_text(d).contains("  "), "{n}: {:?}", doc_text(d));
        }
        let (_, reload_errors) = docs.iter().find(|(n, _)| *n == "reload_errors").unwrap();
        assert_eq!(
            doc_text(reload_errors),
            "Reloads refused: the file did not parse or check, or a key changed that needs a \
             restart; the old configuration kept running."
        );
    }

    /// The counters as the man page's COUNTERS section lists them: each `.TP`, `.B name`,
    /// then one line of text (roff's `\-` read back as `-`).
    fn man_counters() -> Vec<(String, String)> {
        let man = include_str!("../../man/snoopcast.8");
        let sec = man
            .split_once("\n.SH COUNTERS\n")
            .expect("man/snoopcast.8 has a COUNTERS section")
            .1;
        let sec = sec.split("\n.SH ").next().unwrap();
        let lines: Vec<&str> = sec.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if *l == ".TP" {
                let name = lines[i + 1].strip_prefix(".B ").expect(".TP then .B name");
                let text = lines.get(i + 2).copied().unwrap_or_default();
                out.push((name.to_string(), text.replace("\\-", "-")));
            }
        }
        out
    }

    /// The counters of the README's table under "### Counters": `| `name` | text |`.
    fn readme_counters() -> Vec<(String, String)> {
        let readme = include_str!("../../README.md");
        let sec = readme
            .split_once("\n### Counters\n")
            .expect("README.md has a Counters section")
            .1;
        let sec = sec.split("\n#").next().unwrap();
        sec.lines()
            .filter_map(|l| {
                let row = l.strip_prefix("| `")?.strip_suffix(" |")?;
                let (name, text) = row.split_once("` | ")?;
                Some((name.to_string(), text.replace("\\|", "|")))
            })
            .collect()
    }

    #[test]
    fn man_page_and_readme_document_every_counter_once_with_its_doc_comment() {
        let docs: Vec<(String, String)> = Counters::docs()
            .iter()
            .map(|(n, d)| (n.to_string(), doc_text(d)))
            .collect();
        for (what, listed) in [
            ("man/snoopcast.8 COUNTERS", man_counters()),
            ("README.md Counters", readme_counters()),
        ] {
            for (n, d) in &docs {
                let hits: Vec<_> = listed.iter().filter(|(m, _)| m == n).collect();
                assert_eq!(
                    hits.len(),
                    1,
                    "{what}: counter {n} listed {} times",
                    hits.len()
                );
                assert_eq!(
                    &hits[0].1, d,
                    "{what}: the text of {n} differs from its doc comment"
                );
            }
            for (m, _) in &listed {
                assert!(
                    docs.iter().any(|(n, _)| n == m),
                    "{what}: {m} is no counter (any more)"
                );
            }
        }
    }

    #[test]
    fn log_budget_lets_a_burst_through_then_counts() {
        let b = LogBudget::new(Duration::from_secs(10), 3);
        let t = Instant::now();
        let log = |n| Take::Log { held_back: n };
        assert_eq!(b.take(t), log(0));
        assert_eq!(b.take(t), log(0));
        assert_eq!(b.take(t + Duration::from_secs(1)), log(0));
        assert_eq!(b.take(t + Duration::from_secs(2)), Take::FirstHeld);
        assert_eq!(b.take(t + Duration::from_secs(9)), Take::Held);
        // A new window: the first line through says how many were held back.
        assert_eq!(b.take(t + Duration::from_secs(10)), log(2));
        assert_eq!(b.take(t + Duration::from_secs(11)), log(0));
    }

    #[test]
    fn rate_limit_allows_one_per_period() {
        let r = RateLimit::new(Duration::from_secs(10));
        let t = Instant::now();
        assert!(r.allow(t));
        assert!(!r.allow(t + Duration::from_secs(9)));
        assert!(r.allow(t + Duration::from_secs(10)));
    }
}
