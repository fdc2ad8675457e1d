//! Recycling of activation buffers during one forward pass.
//!
//! A model's inference frees each activation after its last use and allocates the next
//! layer's output right after. Large fresh allocations cost a page fault and a kernel-zeroed
//! page per 4 KiB, and reused heap memory a `memset` — for outputs the kernels overwrite
//! entirely. While a [`scope`] lives, [`recycle`] keeps the buffer of a tensor nobody else
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
    /// `Some` while a [`scope`] lives.
    static POOL: RefCell<Option<Vec<CpuStorage>>> = const { RefCell::new(None) };
}

/// Recycling is on for this thread while a `Scope` lives (see [`scope`]); the outermost one
/// frees the kept buffers when it ends.
#[must_use = "recycling stops when the scope is dropped"]
pub struct Scope {
    outermost: bool,
    /// Tied to the thread whose pool it opened.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Turns recycling on for this thread until the returned [`Scope`] is dropped (nested scopes
/// share the outer pool).
pub fn scope() -> Scope {
    let outermost = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let outermost = p.is_none();
        if outermost {
            *p = Some(Vec::new());
        }
        outermost
    });
    Scope { outermost, _not_send: std::marker::PhantomData }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.outermost {
            POOL.with(|p| *p.borrow_mut() = None);
        }
    }
}

/// Drops `t`; inside a [`scope`] its buffer is kept for reuse when `t` is the
/// only handle to a large, owned CPU buffer (no view, gradient or graph shares it).
pub fn recycle(t: Tensor) {
    if !POOL.with(|p| p.borrow().is_some()) {
        return;
    }
    let Ok(s) = sole_cpu_storage(t) else { return };
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

/// The buffer of `t` as a `Vec`, when `t` is its only handle and shows all of it in order
/// (an owned, contiguous CPU tensor from offset 0 that no view, gradient or graph shares),
/// for an op to overwrite in place; otherwise `t` back, untouched. Works inside a scope or
/// not.
pub(crate) fn take_whole<T: StorageElement>(t: Tensor) -> std::result::Result<Vec<T>, Tensor> {
    let whole = T::DTYPE == t.dtype()
        && !t.requires_grad()
        && t.layout().is_contiguous()
        && t.layout().offset() == 0
        && t.0.storage.read().is_ok_and(|s| s.len() == t.numel());
    if !whole {
        return Err(t);
    }
    let s = sole_cpu_storage(t)?;
    Ok(T::unwrap(s).unwrap_or_else(|_| unreachable!("dtype checked")))
}

/// The owned CPU storage of `t` when `t` is its only handle (no clone, view, gradient or
/// graph shares the tensor or its storage); otherwise `t` back, untouched.
fn sole_cpu_storage(t: Tensor) -> std::result::Result<CpuStorage, Tensor> {
    let sole = t.device() == Device::Cpu
        && Arc::strong_count(&t.0) == 1
        && Arc::weak_count(&t.0) == 0
        && Arc::strong_count(&t.0.storage) == 1
        && Arc::weak_count(&t.0.storage) == 0
        && t.0.storage.read().is_ok_and(|s| matches!(*s, Storage::Cpu(_)));
    if !sole {
        return Err(t);
    }
    // The checks above leave no other handle that could share or clone what is unwrapped.
    let node = Arc::try_unwrap(t.0).unwrap_or_else(|_| unreachable!("the only handle"));
    let cell = Arc::try_unwrap(node.storage).unwrap_or_else(|_| unreachable!("the only handle"));
    match cell.into_inner() {
        Ok(Storage::Cpu(s)) => Ok(s),
        _ => unreachable!("an unpoisoned CPU storage, checked"),
    }
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

    fn big() -> Tensor {
        Tensor::from_vec(vec![1.5f32; 1 << 17], [1 << 17]).unwrap()
    }

    #[test]
    fn buffers_are_kept_only_inside_a_scope_and_only_when_unshared() {
        recycle(big());
        assert!(take::<f32>(1 << 17).is_none(), "outside a scope nothing is kept");
        {
            let _scope = scope();
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
            let inner = scope();
            recycle(big());
            drop(inner);
            assert!(take::<f32>(1 << 17).is_some(), "a nested scope shares and keeps the pool");
            recycle(big());
        }
        let _scope = scope();
        assert!(take::<f32>(1 << 17).is_none(), "the outer scope's end frees the pool");
    }
}
