//! Small parallelism helpers shared by the kernels: the thread count, a shared mutable buffer
//! whose disjoint parts several rayon tasks write at once, and the two-phase walk over bands
//! of output rows that lets scatter-style backward kernels (col2im, pooling) run in parallel
//! without races. Also a per-thread scratch buffer that kernels borrow instead of allocating
//! (and page-faulting) a fresh column buffer on every call.

use rayon::prelude::*;
use std::cell::RefCell;

/// The number of threads of the current rayon pool.
#[inline]
pub(crate) fn threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `f` on a thread of the current rayon pool: directly when the caller is already one,
/// else handed to the global pool while the caller waits. A loop of many small parallel
/// operations (a training loop) should run this way: from a worker, each operation forks
/// with `join` and the worker goes on with its own part (taking the other back if no thread
/// is free yet), while from an outside thread every operation is queued to the pool and the
/// caller sleeps until a worker has woken, run it and woken the caller in turn — two
/// thread wake-ups per operation, a fifth of a Fashion-MNIST MLP training step.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// A mutable slice that several tasks write concurrently, each through its own disjoint range.
pub(crate) struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: `SharedMut` only hands out sub-slices through the unsafe `range_mut`, whose callers
// promise that concurrently used ranges are disjoint; T itself is Send.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above; sharing the pointer is harmless as long as the ranges are disjoint.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Wraps a slice; the borrow lasts as long as the wrapper.
    pub(crate) fn new(data: &mut [T]) -> Self {
        SharedMut { ptr: data.as_mut_ptr(), len: data.len() }
    }

    /// The elements `start..end`.
    ///
    /// # Safety
    /// No two live slices obtained from the same wrapper may overlap, and the wrapped slice
    /// must outlive the returned one (the wrapper is built from a `&mut` borrow that the
    /// caller keeps alive for the whole parallel section).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range_mut(&self, start: usize, end: usize) -> &mut [T] {
        assert!(start <= end && end <= self.len, "SharedMut: range {start}..{end} of {}", self.len);
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }

    /// A raw pointer to element `i` (for kernels that take raw pointers, such as GEMM).
    pub(crate) fn ptr_at(&self, i: usize) -> *mut T {
        assert!(i <= self.len, "SharedMut: offset {i} of {}", self.len);
        // SAFETY: `i <= len`, so the offset stays inside (or one past) the allocation.
        unsafe { self.ptr.add(i) }
    }
}

/// The smallest band height (in output rows) for which bands two apart never touch the same
/// input row: band `t` reads input rows up to `(t·r + r − 1)·stride + span − 1`, band `t + 2`
/// starts at `(t + 2)·r·stride`, so `(r + 1)·stride > span − 1` is enough.
pub(crate) fn min_band_rows(stride: usize, span: usize) -> usize {
    ((span - 1) / stride).max(1)
}

/// Calls `f(scratch, image, oy0, oy1)` for every band `[oy0, oy1)` of `band` output rows of
/// every image: first all even bands, then all odd ones, in parallel inside each phase when
/// `parallel` holds. With `band >= min_band_rows(..)` the bands of one phase write disjoint
/// input rows, so scatter kernels can hand each band its own slice. `init` makes one scratch
/// value per rayon task.
pub(crate) fn for_each_band_phased<S, I, F>(
    images: usize,
    out_h: usize,
    band: usize,
    parallel: bool,
    init: I,
    f: F,
) where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, usize, usize) + Sync + Send,
{
    debug_assert!(band >= 1);
    let bands = out_h.div_ceil(band);
    for phase in 0..2 {
        let per_image = (bands + 1 - phase) / 2;
        let task = |s: &mut S, i: usize| {
            let (img, t) = (i / per_image, (i % per_image) * 2 + phase);
            let oy0 = t * band;
            f(s, img, oy0, (oy0 + band).min(out_h));
        };
        let count = images * per_image;
        if parallel && count > 1 {
            (0..count).into_par_iter().for_each_init(&init, task);
        } else {
            let mut s = init();
            (0..count).for_each(|i| task(&mut s, i));
        }
    }
}

thread_local! {
    /// Per-thread pool of scratch buffers (8-byte aligned), kept between calls.
    static SCRATCH: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// Largest scratch buffer (bytes) a thread keeps between calls; bigger ones are freed.
const SCRATCH_KEEP: usize = 64 << 20;
/// Most buffers a thread keeps.
const SCRATCH_BUFFERS: usize = 4;

/// Runs `f` with a scratch slice of `len` elements (contents unspecified: callers overwrite
/// what they read). The buffer comes from this thread's pool and goes back after `f`, so a
/// kernel called again (or nested: rayon may run another task on this thread while one
/// waits) reuses memory that is already mapped instead of faulting in fresh pages.
pub(crate) fn with_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    debug_assert!(std::mem::align_of::<T>() <= 8);
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    // The largest free buffer, or a new one.
    let mut buf = SCRATCH
        .with(|pool| {
            let mut pool = pool.borrow_mut();
            let best = (0..pool.len()).max_by_key(|&i| pool[i].len())?;
            Some(pool.swap_remove(best))
        })
        .unwrap_or_default();
    if buf.len() < words {
        buf = vec![0; words];
    }
    let r = f(&mut bytemuck::cast_slice_mut::<u64, T>(&mut buf[..words])[..len]);
    if buf.len() * 8 <= SCRATCH_KEEP {
        SCRATCH.with(|pool| {
            let mut pool = pool.borrow_mut();
            pool.push(buf);
            if pool.len() > SCRATCH_BUFFERS {
                // Drop the smallest.
                let small = (0..pool.len()).min_by_key(|&i| pool[i].len()).expect("non-empty");
                pool.swap_remove(small);
            }
        });
    }
    r
}

/// Fills `out` with zeros, in parallel when it is large.
pub(crate) fn zero<T: Copy + Send + Default>(out: &mut [T]) {
    if out.len() >= crate::PARALLEL_THRESHOLD * 8 {
        out.par_chunks_mut(1 << 16).for_each(|c| c.fill(T::default()));
    } else {
        out.fill(T::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn phased_bands_cover_every_row_once_and_never_overlap_within_a_phase() {
        for (out_h, band, images) in [(7, 2, 1), (8, 3, 2), (1, 1, 3), (5, 5, 1), (6, 1, 2)] {
            let seen = Mutex::new(Vec::new());
            for_each_band_phased(
                images,
                out_h,
                band,
                true,
                || (),
                |_, img, a, b| {
                    seen.lock().unwrap().push((img, a, b));
                },
            );
            let mut rows = vec![0; images * out_h];
            for &(img, a, b) in seen.lock().unwrap().iter() {
                assert!(a < b && b <= out_h && (a % band == 0));
                for r in a..b {
                    rows[img * out_h + r] += 1;
                }
            }
            assert!(rows.iter().all(|&c| c == 1), "{out_h} {band} {images}: {rows:?}");
        }
        assert_eq!(min_band_rows(1, 3), 2);
        assert_eq!(min_band_rows(2, 3), 1);
        assert_eq!(min_band_rows(1, 1), 1);
        assert_eq!(min_band_rows(1, 5), 4);
    }
}
