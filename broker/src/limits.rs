//! Amplification limits at the broker: how many executes may be in flight at once, per API key
//! and per cluster.
//!
//! An execute is *in flight* from the moment the broker accepts it until its caller is answered
//! or goes away. The count is held by a [`Permit`], an RAII guard inside the handler's future:
//! whatever ends the request (an answer, an error, a timeout, the caller disconnecting and
//! axum dropping the future), dropping the permit gives the slot back. Nothing else can leak.
//!
//! Counts are per broker replica (in memory, so a dead replica leaks nothing): with `N`
//! replicas a key may have up to `N × limit` executes in flight fleet-wide. The queue limit per
//! cluster (checked against the store, so shared by all replicas) bounds what stays behind.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Counts in-flight executes by key `K`, refusing past `max` per key.
pub struct InFlight<K: Hash + Eq + Clone> {
    max: usize,
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> InFlight<K> {
    /// A counter allowing `max` in flight per key.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::default(),
        })
    }

    /// The limit per key.
    pub fn max(&self) -> usize {
        self.max
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one slot of `key`, or `None` when `key` already has `max` in flight.
    pub fn try_acquire(self: &Arc<Self>, key: &K) -> Option<Permit<K>> {
        let mut counts = self.counts();
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Permit {
            counter: self.clone(),
            key: key.clone(),
        })
    }

    /// How many `key` has in flight now.
    pub fn in_flight(&self, key: &K) -> usize {
        self.counts().get(key).copied().unwrap_or(0)
    }

    /// How many keys have something in flight (idle keys are forgotten, so this stays small).
    pub fn keys(&self) -> usize {
        self.counts().len()
    }
}

/// One in-flight slot; given back when dropped.
pub struct Permit<K: Hash + Eq + Clone> {
    counter: Arc<InFlight<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Permit<K> {
    fn drop(&mut self) {
        let mut counts = self.counter.counts();
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The broker's in-flight execute counters.
pub struct ExecuteLimits {
    /// Per API key.
    pub per_key: Arc<InFlight<String>>,
    /// Per cluster.
    pub per_cluster: Arc<InFlight<String>>,
    /// Largest queue (commands queued or running, as `queue_depth` reports) per cluster.
    pub max_queue: u64,
    /// Open streams per credential.
    pub streams_per_key: Arc<InFlight<String>>,
    /// Open streams per cluster.
    pub streams_per_cluster: Arc<InFlight<String>>,
}

impl ExecuteLimits {
    /// Counters with these limits.
    pub fn new(per_key: usize, per_cluster: usize, max_queue: u64) -> Self {
        Self {
            per_key: InFlight::new(per_key),
            per_cluster: InFlight::new(per_cluster),
            max_queue,
            streams_per_key: InFlight::new(crate::stream::DEFAULT_MAX_STREAMS_PER_KEY),
            streams_per_cluster: InFlight::new(crate::stream::DEFAULT_MAX_STREAMS_PER_CLUSTER),
        }
    }

    /// The same with these stream limits.
    pub fn with_streams(mut self, per_key: usize, per_cluster: usize) -> Self {
        self.streams_per_key = InFlight::new(per_key);
        self.streams_per_cluster = InFlight::new(per_cluster);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_key_and_given_back_on_drop() {
        let limit = InFlight::<String>::new(2);
        let a = "a".to_owned();
        let p1 = limit.try_acquire(&a).unwrap();
        let p2 = limit.try_acquire(&a).unwrap();
        assert!(limit.try_acquire(&a).is_none());
        let other = limit.try_acquire(&"b".to_owned()).unwrap();
        assert_eq!(limit.in_flight(&a), 2);
        drop(p1);
        assert_eq!(limit.in_flight(&a), 1);
        let p3 = limit.try_acquire(&a).unwrap();
        drop((p2, p3, other));
        assert_eq!(limit.in_flight(&a), 0);
        assert_eq!(limit.keys(), 0, "idle keys are forgotten");
    }

    #[tokio::test]
    async fn a_future_dropped_mid_wait_gives_its_permit_back() {
        let limit = InFlight::<String>::new(1);
        let key = "k".to_owned();
        let task = {
            let (limit, key) = (limit.clone(), key.clone());
            tokio::spawn(async move {
                let _permit = limit.try_acquire(&key).unwrap();
                std::future::pending::<()>().await;
            })
        };
        while limit.in_flight(&key) == 0 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        assert_eq!(limit.in_flight(&key), 0);
        assert!(limit.try_acquire(&key).is_some());
    }
}
