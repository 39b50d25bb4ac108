//! Bounded counters of failed attempts (web logins), per key in a sliding window. Memory is
//! bounded whatever strangers send: keys are capped in length and number, and each key keeps at
//! most `max` timestamps.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys longer than this are cut (usernames are at most 96 characters; IPs far less).
const MAX_KEY: usize = 128;

pub struct AttemptLimiter {
    max: usize,
    window: Duration,
    capacity: usize,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl AttemptLimiter {
    pub fn new(max: usize, window: Duration, capacity: usize) -> AttemptLimiter {
        AttemptLimiter { max: max.max(1), window, capacity: capacity.max(1), attempts: Mutex::new(HashMap::new()) }
    }

    fn key(key: &str) -> String {
        key.chars().take(MAX_KEY).collect::<String>().to_lowercase()
    }

    /// Whether `key` has used up its attempts in the current window.
    pub fn exhausted(&self, key: &str) -> bool {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = map.get_mut(&Self::key(key)) else { return false };
        while times.front().is_some_and(|t| t.elapsed() >= self.window) {
            times.pop_front();
        }
        times.len() >= self.max
    }

    /// Counts a failed attempt. When the table is full, expired keys go first, then the keys
    /// least recently tried.
    pub fn record(&self, key: &str) {
        let key = Self::key(key);
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= self.capacity {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < window));
            while map.len() >= self.capacity {
                let oldest = map.iter().min_by_key(|(_, times)| times.back().copied()).map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
        }
        let times = map.entry(key).or_default();
        times.push_back(Instant::now());
        while times.len() > self.max {
            times.pop_front();
        }
    }

    /// Forgets every attempt (an administrator's reset; tests).
    pub fn clear(&self) {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_and_memory_is_bounded() {
        let l = AttemptLimiter::new(3, Duration::from_secs(60), 100);
        for _ in 0..3 {
            assert!(!l.exhausted("Alice"));
            l.record("alice");
        }
        assert!(l.exhausted("ALICE"), "keys are case-insensitive");
        assert!(!l.exhausted("bob"));
        // Ten thousand distinct, huge keys: the table stays at its capacity, keys stay short.
        let huge = "x".repeat(1 << 20);
        for i in 0..10_000 {
            l.record(&format!("{i}{huge}"));
        }
        assert_eq!(l.len(), 100);
        let total: usize = l.attempts.lock().unwrap().keys().map(String::len).sum();
        assert!(total <= 100 * MAX_KEY);
    }

    #[test]
    fn the_window_slides() {
        let l = AttemptLimiter::new(1, Duration::from_millis(30), 10);
        l.record("a");
        assert!(l.exhausted("a"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!l.exhausted("a"));
    }
}
