//! Recycling of activation (and gradient) buffers within a forward pass or training step.
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
//! freed, so nothing outlives the forward pass — unless the scope was opened with
//! [`scope_with`] on a [`Kept`] (a model's): then up to 4 MiB of them go back there for the
//! next pass or training step, which takes them instead of fresh zeroed memory (a training
//! step's gradients, freed by `zero_grad`: the Fashion-MNIST MLP's 784×300 weights' is
//! 0.9 MiB). Larger buffers are not carried: they would stay allocated through the next
//! pass until taken, raising its peak memory.

use crate::storage::{CpuStorage, Storage, StorageElement};
use crate::{Device, Tensor};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Buffers smaller than this are left to the allocator (bytes).
const MIN_BYTES: usize = 1 << 18;
/// Most buffers kept at once.
const MAX_KEPT: usize = 8;
/// Most bytes a [`Kept`] carries from one scope to the next.
const CARRY_BYTES: usize = 4 << 20;

thread_local! {
    /// `Some` while a [`scope`] lives: the kept buffers, each with whether this scope put it
    /// there (`false`: carried in from a [`Kept`] and not used yet).
    static POOL: RefCell<Option<Vec<(CpuStorage, bool)>>> = const { RefCell::new(None) };
}

/// Buffers kept from one recycling scope to the next (see [`scope_with`]), at most
/// `CARRY_BYTES`: a model keeps what its last forward pass or training step freed, and frees
/// them when it is dropped.
#[derive(Debug, Default)]
pub struct Kept(Vec<CpuStorage>);

impl Kept {
    /// Bytes they hold.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(storage_bytes).sum()
    }

    /// Frees them.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

fn storage_bytes(s: &CpuStorage) -> usize {
    crate::match_cpu_storage!(s, v => std::mem::size_of_val(&v[..]))
}

/// Recycling is on for this thread while a `Scope` lives (see [`scope`]); the outermost one
/// frees the kept buffers when it ends, or hands them back to its [`Kept`].
#[must_use = "recycling stops when the scope is dropped"]
pub struct Scope<'a> {
    outermost: bool,
    /// Where the outermost scope of [`scope_with`] returns the pool.
    carry: Option<&'a Mutex<Kept>>,
    /// Tied to the thread whose pool it opened.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Turns recycling on for this thread until the returned [`Scope`] is dropped (nested scopes
/// share the outer pool).
pub fn scope() -> Scope<'static> {
    open(None)
}

/// [`scope`], starting from the buffers in `kept` and handing the pool back to it at the end
/// (when this is the outermost scope; a nested one shares the outer pool as `scope` does).
/// Passes that run at once on other threads find `kept` taken and start empty.
pub fn scope_with(kept: &Mutex<Kept>) -> Scope<'_> {
    open(Some(kept))
}

fn open(carry: Option<&Mutex<Kept>>) -> Scope<'_> {
    let outermost = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let outermost = p.is_none();
        if outermost {
            let start = carry.and_then(|k| k.try_lock().ok()).map(|mut k| std::mem::take(&mut k.0));
            *p = Some(start.unwrap_or_default().into_iter().map(|s| (s, false)).collect());
        }
        outermost
    });
    Scope { outermost, carry: carry.filter(|_| outermost), _not_send: std::marker::PhantomData }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if self.outermost {
            let pool = POOL.with(|p| p.borrow_mut().take()).unwrap_or_default();
            if let Some(mut kept) = self.carry.and_then(|k| k.lock().ok()) {
                // Only what this pass freed: buffers carried in and not taken (another batch
                // size's) are let go, and another pass's leftovers (one that ran at the same
                // time) give way. At most CARRY_BYTES in all: what is carried stays allocated
                // through the next pass until taken, so large buffers (a VGG16 activation at
                // batch 32 is 411 MB) would raise the next pass's peak memory.
                let mut bytes = 0;
                kept.0 = pool
                    .into_iter()
                    .filter_map(|(s, fresh)| fresh.then_some(s))
                    .filter(|s| {
                        bytes += storage_bytes(s);
                        bytes <= CARRY_BYTES
                    })
                    .collect();
            }
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
    if storage_bytes(&s) < MIN_BYTES {
        return;
    }
    POOL.with(|p| {
        if let Some(pool) = p.borrow_mut().as_mut() {
            if pool.len() >= MAX_KEPT {
                // Room is made by letting go of a buffer carried in and not used (if any).
                if let Some(stale) = pool.iter().position(|(_, fresh)| !fresh) {
                    pool.swap_remove(stale);
                }
            }
            if pool.len() < MAX_KEPT {
                pool.push((s, true));
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
        let at =
            pool.iter().position(|(s, _)| T::slice(s).is_some_and(|v| v.len() >= n && v.len() <= 2 * n))?;
        let mut v = T::unwrap(pool.swap_remove(at).0).ok()?;
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

    #[test]
    fn a_cleared_gradient_goes_back_to_the_pool() {
        let p = big().with_grad().unwrap();
        p.mul(&p).unwrap().sum(&[0], false).unwrap().backward().unwrap();
        let _scope = scope();
        let g = p.grad().expect("a gradient");
        p.zero_grad();
        assert!(take::<f32>(1 << 17).is_none(), "another handle to the gradient keeps it");
        drop(g);
        p.mul(&p).unwrap().sum(&[0], false).unwrap().backward().unwrap();
        p.zero_grad();
        assert!(p.grad().is_none());
        assert!(take::<f32>(1 << 17).is_some(), "the gradient's buffer is kept");
    }

    #[test]
    fn a_kept_pool_carries_buffers_from_one_scope_to_the_next() {
        let kept = Mutex::new(Kept::default());
        let first = {
            let _scope = scope_with(&kept);
            let t = big();
            let v = match &*t.0.storage.read().unwrap() {
                Storage::Cpu(s) => f32::slice(s).unwrap().as_ptr() as usize,
                _ => unreachable!("a CPU tensor"),
            };
            recycle(t);
            {
                let _nested = scope_with(&kept);
            }
            assert_eq!(kept.lock().unwrap().0.len(), 0, "a nested scope hands nothing back");
            v
        };
        assert_eq!(kept.lock().unwrap().0.len(), 1, "the outermost scope hands its pool back");
        assert!(take::<f32>(1 << 17).is_none(), "outside a scope nothing is taken");
        {
            let _scope = scope_with(&kept);
            assert!(kept.lock().unwrap().0.is_empty(), "the scope took the kept buffers");
            let v = take::<f32>(1 << 17).expect("carried over");
            assert_eq!(v.as_ptr() as usize, first, "the same buffer");
        }
        assert!(kept.lock().unwrap().0.is_empty(), "what was taken stays taken");
        {
            let _scope = scope_with(&kept);
            recycle(big());
        }
        {
            let _scope = scope();
            assert!(take::<f32>(1 << 17).is_none(), "a plain scope does not read a Kept");
        }
        assert_eq!(kept.lock().unwrap().0.len(), 1, "nor empty it");
        // A carried buffer no pass takes (another batch size's) is let go after one pass,
        // and makes room at once when the pool is full.
        {
            let _scope = scope_with(&kept);
            let _ = take::<f32>(16);
        }
        assert!(kept.lock().unwrap().0.is_empty(), "an unused carried buffer is let go");
        {
            let _scope = scope_with(&kept);
            for _ in 0..MAX_KEPT {
                recycle(Tensor::from_vec(vec![0f64; 1 << 16], [1 << 16]).unwrap());
            }
        }
        assert_eq!(kept.lock().unwrap().0.len(), MAX_KEPT, "8 buffers of 512 KiB: 4 MiB, all carried");
        {
            let _scope = scope_with(&kept);
            recycle(big());
            assert!(take::<f32>(1 << 17).is_some(), "a full pool of stale buffers makes room");
        }
        assert!(kept.lock().unwrap().0.is_empty(), "unused carried buffers go at the end of a pass");
        {
            let _scope = scope_with(&kept);
            for _ in 0..3 {
                recycle(Tensor::from_vec(vec![0f32; 1 << 19], [1 << 19]).unwrap());
            }
        }
        assert_eq!(kept.lock().unwrap().0.len(), 2, "at most 4 MiB is carried");
    }
}
