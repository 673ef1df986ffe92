//! Daemon-wide counters. Relaxed atomics: they are statistics, read whole only by status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Every counter by name, for the status snapshot.
            pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
                let mut m = BTreeMap::new();
                $(m.insert(stringify!($name), self.$name.load(Ordering::Relaxed));)*
                m
            }
        }
    };
}

counters! {
    /// Multicast data frames read on the upstream interface.
    frames_received,
    /// Frames that had at least one receiver.
    frames_forwarded,
    /// Frames for groups (or sources) nobody downstream wants.
    frames_unwanted,
    /// Upstream frames that were not forwardable IPv4 multicast (bad header, link-local...).
    frames_invalid,
    /// Unicast or group-MAC copies written to downstream interfaces.
    copies_sent,
    /// Copies not sent: sender queue full, or the send failed.
    copies_dropped,
    /// Copies handed to the sender pool (the capture thread sends the rest itself).
    copies_offloaded,
    /// Upstream frames the kernel dropped because the capture socket's queue was full.
    capture_drops,
    /// IGMP messages dropped as malformed (truncated, bad checksum, bad lengths).
    igmp_malformed,
    /// IGMP messages dropped because their TTL was not 1.
    igmp_bad_ttl,
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
    /// Reports ignored: the host had --max-groups-per-host groups.
    limit_groups_per_host,
    /// Reports ignored: the table had --max-members members.
    limit_members,
    /// Records ignored: group outside --allow / inside --deny / link-local.
    ignored_filtered,
    /// Records ignored: EXCLUDE or v1/v2 for the SSM range.
    ignored_ssm,
    /// Members that expired after the group membership interval.
    members_expired,
    /// IGMP messages dropped because the control thread was behind.
    events_dropped,
    /// Upstream join/leave operations the kernel refused.
    upstream_join_errors,
    /// Members dropped because their downstream interface went away or down.
    members_dropped_iface,
    /// Checksums completed in frames sent by a local program (CHECKSUM_PARTIAL).
    checksums_completed,
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
    fn rate_limit_allows_one_per_period() {
        let r = RateLimit::new(Duration::from_secs(10));
        let t = Instant::now();
        assert!(r.allow(t));
        assert!(!r.allow(t + Duration::from_secs(9)));
        assert!(r.allow(t + Duration::from_secs(10)));
    }
}
