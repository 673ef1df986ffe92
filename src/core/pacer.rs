//! Pacing of whole-table work: the forwarding snapshot and the upstream want set are
//! rebuilt from the whole membership table, O(members) each time. Done after every burst
//! of reports, a report flood that keeps changing a table of 10,000 members costs
//! O(members) per report and starves the control thread (measured: 70 % of a core, two
//! thirds of the reports dropped). The pacer lets the first change after a quiet spell
//! through at once (join and leave latency stay what they were) and then spaces rebuilds
//! by a multiple of what the last one cost (from the start of one to the start of the
//! next), so rebuilding takes at most about 1 / factor of the control thread whatever the
//! table's size. Changes in between
//! are collected and go out together in the next rebuild.
//!
//! Pure: time and the measured cost are arguments.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Shortest spacing between two rebuilds.
    min_gap: Duration,
    /// Spacing as a multiple of the last rebuild's cost.
    factor: u32,
    /// Longest spacing, however slow a rebuild was: bounds how late a change takes effect.
    max_gap: Duration,
    /// Something changed since the last rebuild.
    dirty: bool,
    /// When the last rebuild happened, and the spacing it asked for.
    last: Option<(Instant, Duration)>,
}

impl Pacer {
    pub fn new(min_gap: Duration, factor: u32, max_gap: Duration) -> Self {
        Pacer {
            min_gap,
            factor,
            max_gap: max_gap.max(min_gap),
            dirty: false,
            last: None,
        }
    }

    /// The table changed at some point: a rebuild is owed.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// When the owed rebuild may run, `now` at the earliest (None: nothing is owed).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(match self.last {
            Some((at, gap)) => (at + gap).max(now),
            None => now,
        })
    }

    /// True when a rebuild is owed and may run at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next_deadline(now).is_some_and(|at| at <= now)
    }

    /// A rebuild ran at `now` and took `cost`.
    pub fn done(&mut self, now: Instant, cost: Duration) {
        self.dirty = false;
        let gap = cost
            .saturating_mul(self.factor)
            .clamp(self.min_gap, self.max_gap);
        self.last = Some((now, gap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_owed_nothing_due() {
        let p = Pacer::new(ms(1), 4, ms(100));
        let t = Instant::now();
        assert!(!p.due(t));
        assert_eq!(p.next_deadline(t), None);
    }

    #[test]
    fn first_change_goes_at_once() {
        let mut p = Pacer::new(ms(1), 4, ms(100));
        let t = Instant::now();
        p.mark();
        assert!(p.due(t));
        assert_eq!(p.next_deadline(t), Some(t));
    }

    #[test]
    fn change_after_a_quiet_spell_goes_at_once() {
        let mut p = Pacer::new(ms(1), 4, ms(100));
        let t = Instant::now();
        p.mark();
        p.done(t, ms(2));
        // Quiet for longer than the gap (4 x 2 ms): the next change is not held back.
        p.mark();
        assert!(p.due(t + ms(8)));
        assert!(p.due(t + ms(500)));
    }

    #[test]
    fn changes_in_a_burst_wait_for_the_gap_and_go_together() {
        let mut p = Pacer::new(ms(1), 4, ms(100));
        let t = Instant::now();
        p.mark();
        p.done(t, ms(3));
        p.mark();
        p.mark();
        assert!(!p.due(t + ms(11)), "gap is 4 x 3 ms");
        assert_eq!(p.next_deadline(t + ms(1)), Some(t + ms(12)));
        assert!(p.due(t + ms(12)));
        p.done(t + ms(12), ms(3));
        assert!(!p.is_dirty(), "one rebuild covers every change before it");
        assert!(!p.due(t + ms(100)));
    }

    #[test]
    fn gap_is_clamped() {
        let mut p = Pacer::new(ms(1), 4, ms(50));
        let t = Instant::now();
        p.mark();
        p.done(t, Duration::from_micros(10));
        p.mark();
        assert_eq!(p.next_deadline(t), Some(t + ms(1)), "min gap");
        p.done(t, ms(40));
        p.mark();
        assert_eq!(p.next_deadline(t), Some(t + ms(50)), "max gap, not 160 ms");
    }

    #[test]
    fn rebuild_share_of_time_is_bounded() {
        // Changes all the time, each rebuild costing 5 ms: over a second, rebuilding may
        // take about 1 / factor of it, not all of it.
        let mut p = Pacer::new(ms(1), 4, ms(100));
        let t0 = Instant::now();
        let (mut t, mut busy, mut rebuilds) = (t0, Duration::ZERO, 0);
        while t < t0 + Duration::from_secs(1) {
            p.mark();
            if p.due(t) {
                p.done(t, ms(5));
                busy += ms(5);
                rebuilds += 1;
                t += ms(5);
            } else {
                t += Duration::from_micros(100);
            }
        }
        assert!(
            (49..=51).contains(&rebuilds),
            "{rebuilds} rebuilds, one per 20 ms"
        );
        assert!(busy <= ms(255), "busy {busy:?}");
    }
}
