//! The space-saving summary of Metwally, Agrawal and El Abbadi ("Efficient Computation of
//! Frequent and Top-k Elements in Data Streams", ICDT 2005): at most `capacity` counters,
//! whatever the stream. A key already counted adds one to its counter; a new key takes a free
//! counter, or, when all are taken, the smallest one, whose count it inherits plus one (that
//! inherited count is its `error`).
//!
//! What it guarantees, for a stream of `total` observations:
//! - every counter over-estimates by at most its `error`: `count - error <= true <= count`;
//! - `error <= total / capacity`, so any key seen more than `total / capacity` times is in the
//!   summary;
//! - with at most `capacity` distinct keys, counts are exact (`error` 0).
//!
//! The smallest counter is found by a scan: with the ~50 counters the report keeps, a scan of
//! one cache-friendly `Vec` costs less than keeping the paper's linked buckets, and it runs
//! only for refused requests.

use std::time::SystemTime;

/// One counter.
#[derive(Debug, Clone)]
pub struct Slot<K, V> {
    pub key: K,
    /// Observations counted for this key (an over-estimate by at most `error`).
    pub count: u64,
    /// What the key inherited when it took the counter of another.
    pub error: u64,
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
    /// What the caller keeps with the key (reset when the counter changes hands).
    pub extra: V,
}

/// A space-saving summary of at most `capacity` keys.
#[derive(Debug)]
pub struct SpaceSaving<K, V = ()> {
    capacity: usize,
    total: u64,
    slots: Vec<Slot<K, V>>,
}

impl<K, V: Default> SpaceSaving<K, V> {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a summary needs one counter");
        SpaceSaving {
            capacity,
            total: 0,
            slots: Vec::with_capacity(capacity),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Observations counted since the start, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Counts one observation of the key that `is_key` recognises; `new_key` builds it only
    /// when it is not counted yet (so that a known key costs no allocation).
    pub fn observe_with(
        &mut self,
        is_key: impl Fn(&K) -> bool,
        new_key: impl FnOnce() -> K,
        now: SystemTime,
    ) -> &mut Slot<K, V> {
        self.total += 1;
        let mut smallest = 0;
        let mut found = None;
        for (i, s) in self.slots.iter().enumerate() {
            if is_key(&s.key) {
                found = Some(i);
                break;
            }
            if s.count < self.slots[smallest].count {
                smallest = i;
            }
        }
        let i = match found {
            Some(i) => {
                let s = &mut self.slots[i];
                s.count += 1;
                s.last_seen = now;
                i
            }
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot {
                    key: new_key(),
                    count: 1,
                    error: 0,
                    first_seen: now,
                    last_seen: now,
                    extra: V::default(),
                });
                self.slots.len() - 1
            }
            None => {
                let s = &mut self.slots[smallest];
                *s = Slot {
                    key: new_key(),
                    count: s.count + 1,
                    error: s.count,
                    first_seen: now,
                    last_seen: now,
                    extra: V::default(),
                };
                smallest
            }
        };
        &mut self.slots[i]
    }

    /// The counters, largest count first.
    pub fn top(&self) -> Vec<&Slot<K, V>> {
        let mut all: Vec<_> = self.slots.iter().collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.count));
        all
    }
}

#[cfg(test)]
impl<K: PartialEq + Clone, V: Default> SpaceSaving<K, V> {
    pub fn observe(&mut self, key: &K, now: SystemTime) -> &mut Slot<K, V> {
        self.observe_with(|k| k == key, || key.clone(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn count(s: &SpaceSaving<u64>, key: u64) -> Option<(u64, u64)> {
        s.top()
            .iter()
            .find(|x| x.key == key)
            .map(|x| (x.count, x.error))
    }

    #[test]
    fn counts_are_exact_while_there_are_no_more_keys_than_counters() {
        let mut s: SpaceSaving<u64> = SpaceSaving::new(50);
        let now = SystemTime::now();
        for key in 0..50u64 {
            for _ in 0..=key {
                s.observe(&key, now);
            }
        }
        assert_eq!(s.len(), 50);
        assert_eq!(s.total(), (1..=50).sum::<u64>());
        for key in 0..50 {
            assert_eq!(count(&s, key), Some((key + 1, 0)), "key {key}");
        }
        assert_eq!(s.top()[0].key, 49);
    }

    #[test]
    fn a_flood_of_distinct_keys_keeps_the_size_bounded_and_the_heavy_hitters_in() {
        let mut s: SpaceSaving<u64> = SpaceSaving::new(50);
        let now = SystemTime::now();
        let mut truth: HashMap<u64, u64> = HashMap::new();
        // Three heavy keys interleaved with 200,000 keys seen once each.
        for i in 0..200_000u64 {
            let key = 1_000_000 + i;
            s.observe(&key, now);
            *truth.entry(key).or_default() += 1;
            for heavy in [1u64, 2, 3] {
                if i % (heavy * 10) == 0 {
                    s.observe(&heavy, now);
                    *truth.entry(heavy).or_default() += 1;
                }
            }
            assert!(s.len() <= 50);
        }
        assert_eq!(s.len(), 50);
        let top: Vec<u64> = s.top().iter().take(3).map(|x| x.key).collect();
        assert_eq!(top, [1, 2, 3]);
        let bound = s.total() / 50;
        for slot in s.top() {
            let real = truth[&slot.key];
            assert!(slot.count >= real, "never under-counts");
            assert!(
                slot.count - slot.error <= real,
                "count - error is a lower bound"
            );
            assert!(slot.error <= bound, "error {} over N/k {bound}", slot.error);
        }
    }

    #[test]
    fn a_new_key_takes_the_smallest_counter_and_inherits_its_count_as_error() {
        let mut s: SpaceSaving<&str> = SpaceSaving::new(2);
        let now = SystemTime::now();
        for k in ["a", "a", "a", "b", "b"] {
            s.observe(&k, now);
        }
        let slot = s.observe(&"c", now);
        assert_eq!((slot.key, slot.count, slot.error), ("c", 3, 2));
        let keys: Vec<_> = s.top().iter().map(|x| x.key).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&"a") && keys.contains(&"c"), "{keys:?}");
    }
}
