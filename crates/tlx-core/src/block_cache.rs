//! A global allocator that keeps freed large blocks for the next allocation of their size.
//!
//! A training step allocates the same large buffers as the step before (activations,
//! gradients, BatchNorm and activation backward outputs, column buffers), and the system
//! allocator hands blocks that large (above glibc's 32 MiB `mmap` ceiling, and often below)
//! straight back to the kernel when they are freed: the next step faults every page in
//! again and the kernel zeroes each one. Measured on MobileNetV2 trained whole at batch 32
//! (2 threads), that was 2.2 GB of fresh pages and a third of the process's CPU time, in
//! the kernel, every step.
//!
//! [`BlockCache`] sits over [`System`]: blocks of at least [`MIN_BYTES`] are rounded up to a
//! size class (16 per doubling) and, when freed, kept in a small table; an allocation of the
//! same class (and no stricter alignment) takes one back instead of asking the system. The
//! cache never holds more than the peak of live large blocks minus what is live now, so the
//! process's resident memory never goes above the high-water mark it reached without the
//! cache: when a fresh block would push live plus cached past that peak, the oldest cached
//! blocks are returned to the system first. Blocks handed out again are not zeroed unless
//! they were asked for zeroed (`alloc_zeroed` clears them).
//!
//! A binary opts in with
//! `#[global_allocator] static ALLOC: tlx_core::BlockCache = tlx_core::BlockCache::new();`
//! (the `tlx` tool does).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks below this size go straight to the system allocator (bytes).
pub const MIN_BYTES: usize = 1 << 20;
/// Most blocks kept at once (a training step of MobileNetV2 frees hundreds).
const SLOTS: usize = 1024;
/// Most blocks evicted under one hold of the lock (then it is released to free them).
const EVICT_BATCH: usize = 32;
/// Most blocks out at once that serve a smaller class than their own.
const LENT: usize = 256;

/// A cached block: address, class size, alignment it was allocated with, and when it was
/// freed (`size == 0`: empty slot).
#[derive(Clone, Copy)]
struct Slot {
    addr: usize,
    size: usize,
    align: usize,
    freed_at: u64,
}

const EMPTY: Slot = Slot { addr: 0, size: 0, align: 0, freed_at: 0 };

struct Table {
    slots: [Slot; SLOTS],
    /// Blocks handed out for a smaller class than their own (at most twice as large), with
    /// their own size and alignment, which their `dealloc` will not tell (`size == 0`: free).
    lent: [Slot; LENT],
    /// Bytes of large blocks handed out and not freed (class sizes).
    live: usize,
    /// Bytes of large blocks kept in `slots`.
    cached: usize,
    /// The most `live` has ever been.
    peak: usize,
    /// Frees so far (ages the slots).
    clock: u64,
    hits: u64,
    misses: u64,
}

/// Counters of a [`BlockCache`] (bytes are class sizes of blocks of at least [`MIN_BYTES`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Bytes handed out and not freed.
    pub live_bytes: usize,
    /// Bytes kept for reuse.
    pub cached_bytes: usize,
    /// The most bytes ever live at once (live + cached never exceeds it).
    pub peak_bytes: usize,
    /// Large allocations served from the cache.
    pub hits: u64,
    /// Large allocations that went to the system allocator.
    pub misses: u64,
}

/// The caching allocator (see the module header).
pub struct BlockCache {
    table: Mutex<Table>,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The size class of a large request: `size` rounded up to a 1/32 of the power of two at or
/// above it (at most 1/16 more), and to whole pages.
fn class_of(size: usize) -> usize {
    let step = (size.next_power_of_two() / 32).max(4096);
    size.div_ceil(step) * step
}

/// Blocks taken out of the table to be freed once its lock is released.
struct Evicted {
    blocks: [Slot; EVICT_BATCH],
    len: usize,
}

impl Evicted {
    fn new() -> Self {
        Evicted { blocks: [EMPTY; EVICT_BATCH], len: 0 }
    }

    fn full(&self) -> bool {
        self.len == EVICT_BATCH
    }

    /// Returns every block to the system allocator.
    ///
    /// # Safety
    /// Each block must have come from `System` with its recorded size and alignment and be
    /// owned by nobody.
    unsafe fn release(self) {
        for s in &self.blocks[..self.len] {
            // SAFETY: the caller's contract; the slot recorded the layout it was allocated with.
            unsafe { System.dealloc(s.addr as *mut u8, Layout::from_size_align_unchecked(s.size, s.align)) };
        }
    }
}

impl Table {
    /// Takes a cached block of class `size` with alignment at least `align`, or else the
    /// smallest one up to twice that size (recorded in `lent`): it is resident already,
    /// while a fresh block would add to the process's memory.
    fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        let fits = |s: &Slot| s.align >= align && s.addr.is_multiple_of(align);
        let i = match self.slots.iter().position(|s| s.size == size && fits(s)) {
            Some(i) => i,
            None => {
                let free_lent = self.lent.iter().position(|l| l.size == 0)?;
                let i = (0..SLOTS)
                    .filter(|&i| {
                        self.slots[i].size > size && self.slots[i].size <= 2 * size && fits(&self.slots[i])
                    })
                    .min_by_key(|&i| self.slots[i].size)?;
                self.lent[free_lent] = self.slots[i];
                i
            }
        };
        let s = std::mem::replace(&mut self.slots[i], EMPTY);
        self.cached -= s.size;
        self.live += s.size;
        self.hits += 1;
        Some(s.addr)
    }

    /// Moves the oldest cached block to `out` (false: none, or `out` is full).
    fn evict_oldest(&mut self, out: &mut Evicted) -> bool {
        if out.full() {
            return false;
        }
        let Some(i) = (0..SLOTS).filter(|&i| self.slots[i].size != 0).min_by_key(|&i| self.slots[i].freed_at)
        else {
            return false;
        };
        let s = std::mem::replace(&mut self.slots[i], EMPTY);
        self.cached -= s.size;
        out.blocks[out.len] = s;
        out.len += 1;
        true
    }

    /// Counts a fresh block of `size` as live and raises the peak.
    fn add_fresh(&mut self, size: usize) {
        self.live += size;
        self.misses += 1;
        self.peak = self.peak.max(self.live);
    }

    /// Keeps a freed block of class `size` (or its own size, if it was lent for that class),
    /// evicting the oldest when every slot is full.
    fn keep(&mut self, addr: usize, mut size: usize, mut align: usize, out: &mut Evicted) {
        if let Some(l) = self.lent.iter_mut().find(|l| l.size != 0 && l.addr == addr) {
            (size, align) = (l.size, l.align);
            *l = EMPTY;
        }
        self.live -= size;
        self.clock += 1;
        let i = match self.slots.iter().position(|s| s.size == 0) {
            Some(i) => i,
            None => {
                self.evict_oldest(out);
                self.slots.iter().position(|s| s.size == 0).expect("a slot was just freed")
            }
        };
        self.slots[i] = Slot { addr, size, align, freed_at: self.clock };
        self.cached += size;
        debug_assert!(self.live + self.cached <= self.peak);
    }
}

impl BlockCache {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> Self {
        BlockCache {
            table: Mutex::new(Table {
                slots: [EMPTY; SLOTS],
                lent: [EMPTY; LENT],
                live: 0,
                cached: 0,
                peak: 0,
                clock: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing panics while the lock is held; a poisoned table is still consistent.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters now.
    pub fn stats(&self) -> BlockCacheStats {
        let t = self.lock();
        BlockCacheStats {
            live_bytes: t.live,
            cached_bytes: t.cached,
            peak_bytes: t.peak,
            hits: t.hits,
            misses: t.misses,
        }
    }

    /// Returns every cached block to the system allocator.
    pub fn trim(&self) {
        self.evict_while(|t| t.cached > 0);
    }

    /// Returns the oldest cached blocks to the system allocator while `more` holds of the
    /// table, a batch per hold of the lock (freed after it is released).
    fn evict_while(&self, more: impl Fn(&Table) -> bool) {
        loop {
            let mut out = Evicted::new();
            let again = {
                let mut t = self.lock();
                while more(&t) && t.evict_oldest(&mut out) {}
                out.full() && more(&t)
            };
            // SAFETY: evicted blocks came from `System` with their recorded layouts and are
            // no longer in the table.
            unsafe { out.release() };
            if !again {
                return;
            }
        }
    }

    /// A large block for `layout` (of class `size`), from the cache or the system
    /// (`zeroed`: its first `layout.size()` bytes zero).
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc` for `layout`; `size` is its class.
    unsafe fn alloc_large(&self, layout: Layout, size: usize, zeroed: bool) -> *mut u8 {
        let align = layout.align();
        let hit = self.lock().take(size, align);
        if let Some(addr) = hit {
            let p = addr as *mut u8;
            if zeroed {
                // Only the bytes asked for: pages past them stay as they are (untouched ones
                // are not made resident).
                // SAFETY: the block holds `size` ≥ `layout.size()` bytes, now the caller's.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
            }
            return p;
        }
        // SAFETY: `size` is non-zero and `align` a power of two (from a valid Layout).
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        // SAFETY: a non-zero size.
        let p = unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        };
        if !p.is_null() {
            self.lock().add_fresh(size);
            // Back under the peak of live blocks.
            self.evict_while(|t| t.live + t.cached > t.peak);
        }
        p
    }
}

// SAFETY: small requests go to `System` unchanged; a large one gets a block of at least its
// size (its class) and alignment, owned by nobody else: either fresh from `System` or one
// freed earlier and removed from the table under its lock. Freed large blocks are recorded
// with the class size and alignment they were allocated with, and given back to `System`
// with exactly those.
unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_BYTES {
            // SAFETY: the caller's contract.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: the caller's contract.
        unsafe { self.alloc_large(layout, class_of(layout.size()), false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < MIN_BYTES {
            // SAFETY: the caller's contract.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: the caller's contract.
        unsafe { self.alloc_large(layout, class_of(layout.size()), true) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < MIN_BYTES {
            // SAFETY: the caller's contract: `ptr` came from `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        let mut out = Evicted::new();
        self.lock().keep(ptr as usize, class_of(layout.size()), layout.align(), &mut out);
        // SAFETY: evicted blocks came from `System` with their layouts and left the table.
        unsafe { out.release() };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if old < MIN_BYTES && new_size < MIN_BYTES {
            // SAFETY: the caller's contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if old >= MIN_BYTES && new_size >= MIN_BYTES && class_of(old) == class_of(new_size) {
            // The block already spans the new size's class.
            return ptr;
        }
        // SAFETY: the caller's contract: `new_size` with `layout`'s alignment is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid, non-zero layout (the caller's contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least min(old, new_size) bytes and do not overlap;
            // `ptr` was allocated here with `layout`.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, old.min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 64).unwrap()
    }

    #[test]
    fn classes_round_up_by_at_most_an_eighth_and_to_pages() {
        for size in [MB, MB + 1, 3 * MB + 17, (1 << 30) + 5, 411 * MB] {
            let c = class_of(size);
            assert!(c >= size && c - size <= size / 8 + 4096 && c.is_multiple_of(4096), "{size} -> {c}");
            assert_eq!(class_of(c), c, "a class is its own class");
        }
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let cache = BlockCache::new();
        unsafe {
            let a = cache.alloc(layout(3 * MB));
            a.write_bytes(7, 3 * MB);
            cache.dealloc(a, layout(3 * MB));
            assert_eq!(cache.stats().cached_bytes, class_of(3 * MB));
            // Same class, slightly different size: the same block.
            let b = cache.alloc(layout(3 * MB - 100));
            assert_eq!(a, b);
            assert_eq!(cache.stats().hits, 1);
            cache.dealloc(b, layout(3 * MB - 100));
            // Zeroed on request, though it held sevens.
            let z = cache.alloc_zeroed(layout(3 * MB));
            assert_eq!(z, a);
            assert!(std::slice::from_raw_parts(z, 3 * MB).iter().all(|&x| x == 0));
            cache.dealloc(z, layout(3 * MB));
            // A stricter alignment than the block was made with is not served from it.
            let strict = Layout::from_size_align(3 * MB, 1 << 21).unwrap();
            let s = cache.alloc(strict);
            assert!((s as usize).is_multiple_of(1 << 21));
            cache.dealloc(s, strict);
            cache.trim();
            assert_eq!(cache.stats().cached_bytes, 0);
        }
    }

    #[test]
    fn a_larger_cached_block_serves_a_smaller_class_and_comes_back_whole() {
        let cache = BlockCache::new();
        unsafe {
            let big = cache.alloc(layout(6 * MB));
            cache.dealloc(big, layout(6 * MB));
            // 4 MiB: no block of its class, the 6 MiB one is at most twice as large.
            let small = cache.alloc(layout(4 * MB));
            assert_eq!(small, big);
            assert_eq!(cache.stats().live_bytes, class_of(6 * MB), "counted at its own size");
            cache.dealloc(small, layout(4 * MB));
            let s = cache.stats();
            assert_eq!((s.live_bytes, s.cached_bytes), (0, class_of(6 * MB)));
            // Back under its own class: it serves a 6 MiB request again.
            let again = cache.alloc(layout(6 * MB));
            assert_eq!(again, big);
            cache.dealloc(again, layout(6 * MB));
            // More than twice as large is not lent: 2 MiB gets a block of its own.
            let tiny = cache.alloc(layout(2 * MB));
            assert_ne!(tiny, big);
            cache.dealloc(tiny, layout(2 * MB));
            cache.trim();
            assert_eq!(cache.stats().cached_bytes, 0);
        }
    }

    #[test]
    fn live_plus_cached_never_exceeds_the_peak_of_live_blocks() {
        let cache = BlockCache::new();
        unsafe {
            let a = cache.alloc(layout(8 * MB));
            cache.dealloc(a, layout(8 * MB));
            // A class under half its size: fresh memory, and the cached 8 MiB would lift
            // live + cached above the peak (8 MiB then, 3 MiB live now), so it goes back to the
            // system.
            let b = cache.alloc(layout(3 * MB));
            let s = cache.stats();
            assert_eq!((s.live_bytes, s.cached_bytes, s.peak_bytes), (class_of(3 * MB), 0, class_of(8 * MB)));
            // Below the peak, freed blocks stay cached.
            let c = cache.alloc(layout(2 * MB));
            cache.dealloc(c, layout(2 * MB));
            cache.dealloc(b, layout(3 * MB));
            let s = cache.stats();
            assert_eq!((s.live_bytes, s.cached_bytes), (0, class_of(3 * MB) + class_of(2 * MB)));
            assert!(s.cached_bytes <= s.peak_bytes);
            cache.trim();
        }
    }

    #[test]
    fn small_requests_bypass_and_full_tables_evict_the_oldest() {
        let cache = BlockCache::new();
        unsafe {
            let p = cache.alloc(layout(1000));
            cache.dealloc(p, layout(1000));
            assert_eq!(cache.stats(), BlockCacheStats::default());
            // Fill every slot and one more: all live at once, so the peak allows them all.
            let blocks: Vec<_> = (0..SLOTS + 1).map(|_| cache.alloc(layout(MB))).collect();
            for &b in &blocks {
                cache.dealloc(b, layout(MB));
            }
            let s = cache.stats();
            assert_eq!(s.cached_bytes, SLOTS * MB, "one block evicted to make room");
            // The most recently freed block is still there; the first freed is not.
            let t = cache.lock();
            assert!(t.slots.iter().any(|s| s.addr == blocks[SLOTS] as usize));
            assert!(!t.slots.iter().any(|s| s.addr == blocks[0] as usize));
            drop(t);
            cache.trim();
        }
    }

    #[test]
    fn realloc_keeps_contents_within_and_across_classes() {
        let cache = BlockCache::new();
        unsafe {
            let p = cache.alloc(layout(MB + 10));
            for i in 0..MB + 10 {
                *p.add(i) = (i % 251) as u8;
            }
            // Same class: same block.
            let q = cache.realloc(p, layout(MB + 10), MB + 20);
            assert_eq!(p, q);
            // Larger class, then down to a small size: contents follow.
            let r = cache.realloc(q, layout(MB + 20), 5 * MB);
            let s = cache.realloc(r, layout(5 * MB), 4000);
            assert!((0..4000).all(|i| *s.add(i) == (i % 251) as u8));
            cache.dealloc(s, layout(4000));
            cache.trim();
        }
    }

    #[test]
    fn threads_sharing_the_cache_get_disjoint_blocks() {
        let cache = BlockCache::new();
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let cache = &cache;
                scope.spawn(move || unsafe {
                    for round in 0..50usize {
                        let size = MB * (1 + (round + t as usize) % 3);
                        let p = cache.alloc(layout(size));
                        p.write_bytes(t, size);
                        std::thread::yield_now();
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|&x| x == t), "block shared");
                        cache.dealloc(p, layout(size));
                    }
                });
            }
        });
        let s = cache.stats();
        assert_eq!(s.live_bytes, 0);
        assert!(s.hits > 0 && s.cached_bytes <= s.peak_bytes);
        cache.trim();
    }
}
