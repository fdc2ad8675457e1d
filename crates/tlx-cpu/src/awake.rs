//! Keeping the pool's other threads awake through a run of parallel operations (one forward
//! pass, one training step), as ONNX Runtime's parallel sections and OpenMP's spin-wait do.
//!
//! A rayon worker that finds no work yields a few times and then sleeps; the next parallel
//! operation wakes it again: a system call for the waker and, for the sleeper, the time to be
//! scheduled again — on a virtual machine, whose idle virtual CPU the host takes back, tens
//! of microseconds and more. A training step of the Fashion-MNIST MLP is a few dozen short
//! operations, and its threads slept ~3.5 times a step (2-vCPU VM, 3,000 steps: 10.7 K
//! voluntary context switches, 0.7–2.1 K with spinners; median step 0.98–1.17 → 0.71–0.94 ms).
//!
//! [`keep_awake`] gives every other thread of the pool a spinner: a task that runs the
//! pool's pending work as it appears (`rayon::yield_now`), polling between jobs (its CPU
//! yielded to any other thread that wants it, never asleep), until the operation is done or
//! it has found no work for [`IDLE_LIMIT`]. The limit bounds what a spinner costs while the
//! owner does serial work, and also the one way a spinner can hold up progress: run nested
//! inside a job (a worker waiting in a join takes queued work, spinners included), it keeps
//! that job from finishing until it gives up.
//! `TLX_SPIN=0` turns spinning off.

use rayon::Yield;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a spinner polls with no work before it hands its thread back to rayon (which
/// puts it to sleep).
pub const IDLE_LIMIT: Duration = Duration::from_millis(1);

/// Empty polls of the pool between two yields of the CPU (a poll is ~0.1 µs).
const POLLS_PER_YIELD: u32 = 32;

thread_local! {
    /// Whether this thread is running a spinner (one further down its stack): a spinner
    /// taken up by a thread that is already spinning returns at once.
    static SPINNING: Cell<bool> = const { Cell::new(false) };
}

/// Whether spinning is on (`TLX_SPIN` is not `0`), read once.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("TLX_SPIN").map_or(true, |v| v.trim() != "0"))
}

/// Runs `f` on a thread of the current rayon pool (as [`crate::on_worker`]) with the pool's
/// other threads kept awake, running its parallel parts as they are queued, until `f`
/// returns. The result is `f`'s; only the scheduling differs.
pub fn keep_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    crate::on_worker(|| {
        let others = rayon::current_num_threads().saturating_sub(1);
        let owner = rayon::current_thread_index();
        if others == 0 || !enabled() || SPINNING.with(Cell::get) {
            return f();
        }
        let done = AtomicBool::new(false);
        rayon::in_place_scope(|scope| {
            // Pushed before `f` queues anything: thieves take the oldest job first, so the
            // spinners are taken before any of `f`'s work.
            for _ in 0..others {
                scope.spawn(|_| spin(&done, owner));
            }
            // Set when `f` returns or unwinds, so that the scope's wait for the spinners
            // is short either way.
            let _stop = Stop(&done);
            f()
        })
    })
}

/// Sets its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A spinner: runs the pool's pending jobs until `done` is set or none has come for
/// [`IDLE_LIMIT`], yielding its CPU between polls (to any other thread that wants it: a
/// pool larger than the machine, another process). Returns at once on the owner's thread
/// (which takes it up only while waiting inside `f`, where spinning until `f` is done would
/// never end) and on a thread that is already spinning.
fn spin(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner || SPINNING.with(Cell::get) {
        return;
    }
    SPINNING.with(|s| s.set(true));
    let mut idle_since: Option<Instant> = None;
    let mut idle_polls = 0u32;
    while !done.load(Ordering::Acquire) {
        if let Some(Yield::Executed) = rayon::yield_now() {
            (idle_since, idle_polls) = (None, 0);
            continue;
        }
        idle_polls += 1;
        if !idle_polls.is_multiple_of(POLLS_PER_YIELD) {
            std::hint::spin_loop();
            continue;
        }
        // Every few microseconds: the CPU to any other thread that wants it, and the clock.
        std::thread::yield_now();
        let now = Instant::now();
        if now.duration_since(*idle_since.get_or_insert(now)) > IDLE_LIMIT {
            break;
        }
    }
    SPINNING.with(|s| s.set(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool")
    }

    #[test]
    fn the_result_is_the_operations_and_its_parallel_parts_all_run() {
        for threads in [1, 2, 3, 4] {
            let sum = pool(threads)
                .install(|| keep_awake(|| (0..10_000u64).into_par_iter().map(|i| i * i).sum::<u64>()));
            assert_eq!(sum, (0..10_000u64).map(|i| i * i).sum::<u64>(), "{threads} threads");
        }
    }

    #[test]
    fn from_outside_the_pool_nested_and_concurrent_calls_finish() {
        // Nested calls, calls from several outside threads at once and many short calls in a
        // row (each leaving spinners behind for the next) must neither deadlock nor lose work.
        let p = pool(3);
        let totals: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let p = &p;
                    s.spawn(move || {
                        p.install(|| {
                            (0..50u64)
                                .map(|step| {
                                    keep_awake(|| {
                                        let inner = keep_awake(|| (0..200u64).into_par_iter().sum::<u64>());
                                        inner + (0..300u64).into_par_iter().map(|i| i + t + step).sum::<u64>()
                                    })
                                })
                                .sum()
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("no panic")).collect()
        });
        for (t, total) in totals.into_iter().enumerate() {
            let t = t as u64;
            let want: u64 =
                (0..50u64).map(|step| 19_900 + (0..300u64).map(|i| i + t + step).sum::<u64>()).sum();
            assert_eq!(total, want);
        }
    }

    #[test]
    fn a_panic_in_the_operation_reaches_the_caller() {
        let p = pool(2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.install(|| keep_awake(|| -> u32 { panic!("inside the operation") }))
        }));
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(p.install(|| keep_awake(|| (0..100u32).into_par_iter().sum::<u32>())), 4950);
    }

    #[test]
    fn a_spinner_runs_the_work_queued_while_the_owner_is_busy() {
        // The owner queues the second half of a join and is busy with the first; the other
        // thread must take it up from inside its spinner (not woken from sleep by rayon).
        // Tried a few times: the spinner may not have started by the first join.
        let taken_by_a_spinner = pool(2).install(|| {
            keep_awake(|| {
                (0..20).any(|_| {
                    let me = rayon::current_thread_index();
                    let (_, (there, spinning)) = rayon::join(
                        || std::thread::sleep(Duration::from_micros(300)),
                        || (rayon::current_thread_index(), SPINNING.with(Cell::get)),
                    );
                    there != me && spinning
                })
            })
        });
        assert!(taken_by_a_spinner);
    }
}
