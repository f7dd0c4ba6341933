//! Paced admission of agent links: a replica takes new links at a steady rate and gives every
//! agent it turns away a time of its own to come back.
//!
//! After a broker restart every agent of the fleet dials at once. Admitting them all at once
//! would spend the replica's CPU on handshakes, token checks and store writes while its callers
//! wait, and refusing them with one shared "retry in a second" would only move the stampede a
//! second later. So links are admitted at `--link-admissions-per-second` (with a burst of a fifth
//! of a second's worth), and an agent over the rate is answered 503 with a *promise*: the next
//! free admission slot, reserved for its cluster. Agents keep to the time they are given
//! (`details.retry_after_ms`), so the returning fleet arrives spread over exactly as many
//! seconds as the rate needs, each agent admitted at its first return.
//!
//! The schedule is one GCRA-style clock (`next`): every admission and every promise takes the
//! next slot, so promises and fresh arrivals never share a slot. Promises are per cluster (the
//! cluster of an accepted token: a caller cannot make them without one), at most
//! [`MAX_PROMISES`] at a time and forgotten [`PROMISE_GRACE`] after their slot, so an agent
//! that never returns costs one slot and a map entry for a while.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default `--link-admissions-per-second`.
pub const DEFAULT_LINK_ADMISSIONS_PER_SECOND: u32 = 1000;

/// Promises held at once. Past it, an agent is told a time spread over the current schedule
/// without a slot of its own (it competes again on return).
pub const MAX_PROMISES: usize = 100_000;

/// How long after its slot a promise is kept for an agent that is late.
pub const PROMISE_GRACE: Duration = Duration::from_secs(30);

/// How early an agent may come back for its promised slot and still be admitted (clocks and
/// timers are not exact).
const EARLY_TOLERANCE: Duration = Duration::from_millis(50);

/// The admission schedule of one replica.
#[derive(Debug)]
pub struct Admissions {
    /// Time between two admissions.
    interval: Duration,
    /// How far ahead of now the schedule may run before arrivals are turned away.
    burst: Duration,
    state: Mutex<Schedule>,
}

#[derive(Debug)]
struct Schedule {
    /// The next free slot.
    next: Instant,
    /// Promised slots by cluster.
    promises: HashMap<String, Instant>,
    /// The promises in the order they were made, which is slot order: the front ones lapse
    /// first. (A kept promise leaves `promises` at once and this queue when it lapses.)
    made: VecDeque<(Instant, String)>,
}

/// Whether a link may be admitted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admitted,
    /// Come back after this long (a slot is kept for the cluster, if the promise table has room).
    Later(Duration),
}

impl Admissions {
    /// A schedule of `per_second` admissions a second (at least one).
    pub fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        Self {
            interval,
            // A fifth of a second's admissions may come at once.
            burst: interval * (per_second / 5).max(1),
            state: Mutex::new(Schedule {
                next: Instant::now(),
                promises: HashMap::new(),
                made: VecDeque::new(),
            }),
        }
    }

    /// Decides for a link of `cluster` arriving at `now`.
    pub fn admit(&self, cluster: &str, now: Instant) -> Admission {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&slot) = s.promises.get(cluster) {
            if now + EARLY_TOLERANCE >= slot {
                // Its slot was taken out of the schedule when it was promised.
                s.promises.remove(cluster);
                return Admission::Admitted;
            }
            return Admission::Later(slot - now);
        }
        if s.next < now {
            s.next = now;
        }
        if s.next <= now + self.burst {
            s.next += self.interval;
            return Admission::Admitted;
        }
        s.forget_lapsed(now);
        let slot = s.next;
        if s.made.len() >= MAX_PROMISES {
            // No room to remember it: a time somewhere in the schedule, no slot.
            let ahead = slot - now;
            let spread = rand::random_range(0..=ahead.as_millis() as u64);
            return Admission::Later(ahead.min(Duration::from_millis(spread).max(self.interval)));
        }
        s.next += self.interval;
        s.promises.insert(cluster.to_owned(), slot);
        s.made.push_back((slot, cluster.to_owned()));
        Admission::Later(slot - now)
    }

    /// Promises outstanding (for tests and the log).
    pub fn promised(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .promises
            .len()
    }
}

impl Schedule {
    /// Drops the promises whose grace has passed (amortized O(1): each is dropped once).
    fn forget_lapsed(&mut self, now: Instant) {
        while let Some((slot, _)) = self.made.front() {
            if *slot + PROMISE_GRACE > now {
                break;
            }
            let (slot, cluster) = self.made.pop_front().expect("front exists");
            // Only if it is still this promise (not kept, not replaced by a later one).
            if self.promises.get(&cluster) == Some(&slot) {
                self.promises.remove(&cluster);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(a: Admission) -> Duration {
        match a {
            Admission::Later(d) => d,
            Admission::Admitted => panic!("expected a later slot"),
        }
    }

    #[test]
    fn a_burst_is_admitted_then_each_agent_gets_its_own_slot() {
        let admissions = Admissions::new(100); // 10 ms apart, burst of 20
        let t0 = Instant::now();
        let mut admitted = 0;
        let mut slots = Vec::new();
        for i in 0..1000 {
            match admissions.admit(&format!("c{i}"), t0) {
                Admission::Admitted => admitted += 1,
                Admission::Later(d) => slots.push(d),
            }
        }
        assert_eq!(
            admitted, 21,
            "a fifth of a second's worth, and the slot at now"
        );
        assert_eq!(slots.len(), 979);
        // Distinct, 10 ms apart, in arrival order: the fleet returns at the configured rate.
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(10));
        }
        assert_eq!(admissions.promised(), 979);
        // Every agent that comes back at its time is admitted at once.
        for (i, d) in slots.iter().enumerate() {
            let cluster = format!("c{}", i + 21);
            assert_eq!(admissions.admit(&cluster, t0 + *d), Admission::Admitted);
        }
        assert_eq!(admissions.promised(), 0);
    }

    #[test]
    fn an_early_return_keeps_its_slot_and_a_fresh_arrival_queues_behind_promises() {
        let admissions = Admissions::new(10); // 100 ms apart, burst of 2
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(admissions.admit(&format!("a{i}"), t0), Admission::Admitted);
        }
        let slot = later(admissions.admit("late", t0));
        assert_eq!(slot, Duration::from_millis(300));
        // Back too early: told the rest of its wait, the same slot.
        let early = t0 + Duration::from_millis(100);
        assert_eq!(
            later(admissions.admit("late", early)),
            Duration::from_millis(200)
        );
        // A newcomer does not take the promised slot: it gets the next one.
        assert_eq!(
            later(admissions.admit("new", early)),
            Duration::from_millis(300)
        );
        // Within the tolerance of its slot, admitted.
        let back = t0 + Duration::from_millis(260);
        assert_eq!(admissions.admit("late", back), Admission::Admitted);
    }

    #[test]
    fn the_schedule_refills_while_idle() {
        let admissions = Admissions::new(10);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(admissions.admit(&format!("a{i}"), t0), Admission::Admitted);
        }
        later(admissions.admit("b", t0));
        // After the promised slot and some idle time, arrivals are admitted straight away.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(admissions.admit("c", t1), Admission::Admitted);
        assert_eq!(admissions.admit("d", t1), Admission::Admitted);
    }

    #[test]
    fn stale_promises_are_forgotten_and_the_table_is_bounded() {
        let admissions = Admissions::new(10_000); // 0.1 ms apart: 10 s of promises
        let t0 = Instant::now();
        for i in 0..(MAX_PROMISES + 5_000) {
            let _ = admissions.admit(&format!("c{i}"), t0);
        }
        assert_eq!(admissions.promised(), MAX_PROMISES);
        // Past the table's size: a time within the schedule, no slot.
        let d = later(admissions.admit("one-more", t0));
        assert!(
            d <= Duration::from_secs(10) + Duration::from_millis(300),
            "{d:?}"
        );
        // Long after every slot: the old promises lapse and new ones fit again.
        let t1 = t0 + PROMISE_GRACE + Duration::from_secs(60);
        for i in 0..3_000 {
            let _ = admissions.admit(&format!("x{i}"), t1);
        }
        assert!(admissions.promised() < 3_000, "{}", admissions.promised());
    }
}
