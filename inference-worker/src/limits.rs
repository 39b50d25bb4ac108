//! How much compute runs at once, across all models.

use std::sync::{Condvar, Mutex};

/// A counting semaphore for blocking threads: each forward pass or generation step holds a slot,
/// so concurrent requests share the cores instead of oversubscribing them.
pub struct ComputeSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

pub struct Slot<'a>(&'a ComputeSlots);

impl ComputeSlots {
    pub fn new(n: usize) -> ComputeSlots {
        ComputeSlots { free: Mutex::new(n.max(1)), freed: Condvar::new() }
    }

    pub fn acquire(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.freed.notify_one();
    }
}
