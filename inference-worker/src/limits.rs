//! How much compute runs at once, across all models.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::metrics::SlotMetrics;

/// A counting semaphore for blocking threads: each forward pass or generation step holds a slot,
/// so concurrent requests share the cores instead of oversubscribing them. It keeps its queue
/// (threads waiting), slots held and waiting times in [`SlotMetrics`] for `/metrics`.
pub struct ComputeSlots {
    free: Mutex<usize>,
    freed: Condvar,
    metrics: SlotMetrics,
}

struct Slot<'a>(&'a ComputeSlots);

impl ComputeSlots {
    pub fn new(n: usize) -> ComputeSlots {
        let n = n.max(1);
        ComputeSlots { free: Mutex::new(n), freed: Condvar::new(), metrics: SlotMetrics::new(n) }
    }

    fn acquire(&self) -> Slot<'_> {
        let asked = Instant::now();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if *free == 0 {
            self.metrics.waiting.inc();
            while *free == 0 {
                free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
            }
            self.metrics.waiting.dec();
        }
        *free -= 1;
        self.metrics.busy.inc();
        drop(free);
        self.metrics.wait.observe(asked.elapsed().as_secs_f64());
        Slot(self)
    }

    /// Runs `f` holding a slot, on one of rayon's threads (the caller waits for it). The parallel
    /// parts of a forward pass then split with the other rayon threads by work stealing. Called
    /// from outside the pool, every parallel op is handed to the pool and the caller put to sleep
    /// until it is done: two thread wake-ups per op, ~30 ops in a MiniLM forward pass, each
    /// wake-up tens of microseconds on a virtual machine.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let _slot = self.acquire();
        rayon::scope(|_| f())
    }

    pub fn metrics(&self) -> &SlotMetrics {
        &self.metrics
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.metrics.busy.dec();
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `cond` for up to 10 s (the waiting thread needs a moment to block).
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < until, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_queue_gauge_counts_threads_waiting_for_a_slot() {
        let slots = ComputeSlots::new(1);
        let m = slots.metrics().clone();
        assert_eq!((m.slots.get(), m.waiting.get(), m.busy.get()), (1, 0, 0));
        let held = slots.acquire();
        assert_eq!((m.waiting.get(), m.busy.get()), (0, 1), "a free slot is taken without queueing");
        std::thread::scope(|s| {
            // Made in here so a failed assertion drops them (and `held`) and the waiter ends:
            // the scope joins its threads before passing the panic on.
            let (got_tx, got_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let slots = &slots;
            let waiter = s.spawn(move || {
                let _slot = slots.acquire();
                got_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            });
            eventually("the second thread queues", || m.waiting.get() == 1);
            assert_eq!(m.busy.get(), 1, "the waiter holds nothing yet");
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            got_rx.recv_timeout(Duration::from_secs(10)).expect("the waiter gets the released slot");
            assert_eq!((m.waiting.get(), m.busy.get()), (0, 1), "the waiter left the queue and holds the slot");
            release_tx.send(()).unwrap();
            waiter.join().unwrap();
        });
        assert_eq!((m.waiting.get(), m.busy.get()), (0, 0));
        assert_eq!(m.wait.get_sample_count(), 2);
        assert!(m.wait.get_sample_sum() >= 0.02, "the waiter's wait is recorded: {}", m.wait.get_sample_sum());
    }
}
