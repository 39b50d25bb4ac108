//! The tokio runtime the hub runs on: how many async workers, how many blocking threads, and
//! which of them the kernel should run first when the CPUs are busy.
//!
//! The async workers answer every request; the blocking threads do bulk work for a few (file
//! reads and writes of transfers, hashing, git). Under 200 transfers on 2 cores, perf showed the
//! workers preempted each time they handed a chunk to a blocking thread (the woken thread runs
//! first) and yielding to them on the blocking pool's lock, so a cheap request like `/health`
//! waited up to ~150 ms behind bulk I/O. The blocking threads therefore run at a higher nice
//! value than the workers: they still get every CPU the workers leave idle, but a worker with a
//! request to answer gets the CPU first. Worst `/health` in the SQLite load suite (the hub's own
//! time): 43-80 ms over 6 runs without it, 16-55 ms over 12 runs with it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name of the async worker threads (`hub-worker-0`, …) and of the blocking threads, as
/// `top -H`, perf and /proc show them.
const WORKER_PREFIX: &str = "hub-worker-";
const BLOCKING_NAME: &str = "hub-blocking";

/// The runtime's shape, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeShape {
    /// Async workers; 0: one per CPU.
    pub workers: usize,
    /// The most blocking threads at once.
    pub blocking: usize,
    /// Added to the blocking threads' nice value (0: the same as the workers').
    pub blocking_nice: i32,
}

/// Builds the multi-threaded runtime: named threads, and the blocking ones at `blocking_nice`.
pub fn build(shape: RuntimeShape) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = match shape.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Threads are named in the order they are spawned, and the runtime spawns its workers first,
    // while it is built. But a worker is a task its thread picks from the blocking pool's queue:
    // a blocking task queued before every worker thread had picked its own could be picked by a
    // worker's thread, and a worker by a later thread. So `build` returns only once every worker
    // runs (has parked once, which only workers do), before anything else can be queued.
    let named = AtomicUsize::new(0);
    let running = Arc::new(AtomicUsize::new(0));
    let nice = shape.blocking_nice;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(shape.blocking.max(2))
        .thread_name_fn(move || match named.fetch_add(1, Ordering::Relaxed) {
            n if n < workers => format!("{WORKER_PREFIX}{n}"),
            _ => BLOCKING_NAME.to_string(),
        })
        .on_thread_start(move || {
            if nice != 0 && std::thread::current().name() == Some(BLOCKING_NAME) {
                lower_this_thread(nice);
            }
        })
        .on_thread_park({
            let running = running.clone();
            move || {
                thread_local!(static COUNTED: Cell<bool> = const { Cell::new(false) });
                if !COUNTED.replace(true) {
                    running.fetch_add(1, Ordering::Release);
                }
            }
        })
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.load(Ordering::Acquire) < workers {
        if Instant::now() > deadline {
            return Err(std::io::Error::other("the runtime's worker threads did not start within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(runtime)
}

/// Raises the calling thread's nice value by `by` (Linux keeps nice per thread). Raising needs
/// no privilege; where it fails anyway the thread runs at the default, which is only slower.
#[cfg(target_os = "linux")]
fn lower_this_thread(by: i32) {
    use rustix::process::{getpriority_process, setpriority_process};
    let tid = Some(rustix::thread::gettid());
    let now = getpriority_process(tid).unwrap_or(0);
    if let Err(e) = setpriority_process(tid, (now + by).clamp(-20, 19)) {
        tracing::debug!(error = %e, "could not lower a blocking thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread(_by: i32) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::process::getpriority_process;

    fn this_thread() -> (String, i32) {
        let name = std::thread::current().name().unwrap_or_default().to_string();
        (name, getpriority_process(Some(rustix::thread::gettid())).expect("getpriority"))
    }

    #[test]
    fn workers_are_named_and_blocking_threads_run_at_the_higher_nice() {
        let base = getpriority_process(None).expect("getpriority");
        let runtime = build(RuntimeShape { workers: 2, blocking: 4, blocking_nice: 5 }).expect("runtime");
        let (worker, blocking) = runtime.block_on(async {
            let worker = tokio::spawn(async { this_thread() }).await.expect("task");
            let blocking = tokio::task::spawn_blocking(this_thread).await.expect("blocking task");
            (worker, blocking)
        });
        assert!(worker.0 == "hub-worker-0" || worker.0 == "hub-worker-1", "{worker:?}");
        assert_eq!(worker.1, base, "a worker keeps the process's nice value");
        assert_eq!(blocking, (BLOCKING_NAME.to_string(), (base + 5).min(19)));
    }

    #[test]
    fn a_nice_of_zero_leaves_blocking_threads_alone() {
        let base = getpriority_process(None).expect("getpriority");
        let runtime = build(RuntimeShape { workers: 1, blocking: 2, blocking_nice: 0 }).expect("runtime");
        let blocking = runtime.block_on(async { tokio::task::spawn_blocking(this_thread).await }).expect("blocking task");
        assert_eq!(blocking, (BLOCKING_NAME.to_string(), base));
    }
}
