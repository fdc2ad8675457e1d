//! Recycling of activation buffers during one forward pass.
//!
//! A model's inference frees each activation after its last use and allocates the next
//! layer's output right after. Large fresh allocations cost a page fault and a kernel-zeroed
//! page per 4 KiB, and reused heap memory a `memset` — for outputs the kernels overwrite
//! entirely. Inside [`with_recycling`], [`recycle`] keeps the buffer of a tensor nobody else
//! holds, and the ops that overwrite their whole output (`conv2d_fused`, `add_relu`) take
//! their buffer from here when one of a fitting size is kept. Recycled buffers hold earlier
//! values (initialised memory, never uninitialised), which those ops overwrite.
//!
//! The pool is per thread and lives only for the scope: when it ends, the kept buffers are
//! freed, so nothing outlives the forward pass.

use crate::storage::{CpuStorage, Storage, StorageElement};
use crate::{Device, Tensor};
use std::cell::RefCell;
use std::sync::Arc;

/// Buffers smaller than this are left to the allocator (bytes).
const MIN_BYTES: usize = 1 << 18;
/// Most buffers kept at once.
const MAX_KEPT: usize = 8;

thread_local! {
    /// `Some` inside a [`with_recycling`] scope.
    static POOL: RefCell<Option<Vec<CpuStorage>>> = const { RefCell::new(None) };
}

/// Runs `f` with recycling on for this thread (nested scopes share the outer pool).
pub fn with_recycling<R>(f: impl FnOnce() -> R) -> R {
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                POOL.with(|p| *p.borrow_mut() = None);
            }
        }
    }
    let outer = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let outer = p.is_some();
        if !outer {
            *p = Some(Vec::new());
        }
        outer
    });
    let _end = End(!outer);
    f()
}

/// Drops `t`; inside a [`with_recycling`] scope its buffer is kept for reuse when `t` is the
/// only handle to a large, owned CPU buffer (no view, gradient or graph shares it).
pub fn recycle(t: Tensor) {
    if !POOL.with(|p| p.borrow().is_some()) || t.device() != Device::Cpu {
        return;
    }
    let Ok(node) = Arc::try_unwrap(t.0) else { return };
    let Ok(lock) = Arc::try_unwrap(node.storage) else { return };
    let Ok(Storage::Cpu(s)) = lock.into_inner() else { return };
    let bytes = crate::match_cpu_storage!(&s, v => std::mem::size_of_val(&v[..]));
    if bytes < MIN_BYTES {
        return;
    }
    POOL.with(|p| {
        if let Some(pool) = p.borrow_mut().as_mut() {
            if pool.len() < MAX_KEPT {
                pool.push(s);
            }
        }
    });
}

/// A kept buffer of `n` elements of `T` (one of `n` to `2n`, truncated), if any: its
/// contents are earlier values, to be overwritten.
pub(crate) fn take<T: StorageElement>(n: usize) -> Option<Vec<T>> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let pool = p.as_mut()?;
        let at = pool.iter().position(|s| T::slice(s).is_some_and(|v| v.len() >= n && v.len() <= 2 * n))?;
        let mut v = T::unwrap(pool.swap_remove(at)).ok()?;
        v.truncate(n);
        Some(v)
    })
}

/// A buffer of `n` elements of `T` for an output that will be overwritten entirely: a kept
/// one inside a recycling scope, otherwise zeros.
pub(crate) fn output_buffer<T: StorageElement + Default + Clone>(n: usize) -> Vec<T> {
    take::<T>(n).unwrap_or_else(|| vec![T::default(); n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn big() -> Tensor {
        Tensor::from_vec(vec![1.5f32; 1 << 17], [1 << 17]).unwrap()
    }

    #[test]
    fn buffers_are_kept_only_inside_a_scope_and_only_when_unshared() {
        recycle(big());
        assert!(take::<f32>(1 << 17).is_none(), "outside a scope nothing is kept");
        with_recycling(|| {
            let shared = big();
            let view = shared.reshape([2, 1 << 16]).unwrap();
            recycle(shared);
            assert!(take::<f32>(1 << 17).is_none(), "a view still shares the storage");
            drop(view);
            recycle(Tensor::from_vec(vec![1f32; 16], [16]).unwrap());
            assert!(take::<f32>(16).is_none(), "small buffers are left to the allocator");
            recycle(big());
            assert!(take::<f64>(1 << 17).is_none(), "another dtype does not match");
            assert!(take::<f32>(1 << 19).is_none(), "too small for the request");
            let v = take::<f32>(100_000).expect("kept");
            assert_eq!(v.len(), 100_000);
            assert!(take::<f32>(100_000).is_none(), "taken once");
            recycle(big());
        });
        with_recycling(|| assert!(take::<f32>(1 << 17).is_none(), "the scope's end frees the pool"));
        let _ = DType::F32;
    }
}
