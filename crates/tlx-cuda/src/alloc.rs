//! The caching device allocator: size-bucketed free lists so that a training step's buffers
//! are reused by the next step without going back to the driver.
//!
//! Requests are rounded up to a bucket (512 B minimum; powers of two up to 1 MiB; multiples of
//! 2 MiB above), and a freed buffer goes back to its bucket's free list instead of the driver.
//! All work of one device runs on its one stream, so a block freed after launching kernels that
//! read it may be handed out at once: anything the next owner enqueues runs after those
//! kernels. When the driver is out of memory, the cached blocks are released and the
//! allocation is tried once more.

use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const MIN_BLOCK: usize = 512;
const SMALL_LIMIT: usize = 1 << 20;
const LARGE_STEP: usize = 2 << 20;

/// The size class a request of `bytes` is served from.
pub(crate) fn bucket(bytes: usize) -> usize {
    if bytes <= MIN_BLOCK {
        MIN_BLOCK
    } else if bytes <= SMALL_LIMIT {
        bytes.next_power_of_two()
    } else {
        bytes.div_ceil(LARGE_STEP) * LARGE_STEP
    }
}

/// Counters of one device's allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Bytes in blocks handed out and not yet freed (bucket sizes).
    pub live_bytes: usize,
    /// Bytes in blocks kept on the free lists.
    pub cached_bytes: usize,
    /// The most `live_bytes + cached_bytes` ever held from the driver.
    pub peak_bytes: usize,
    /// Requests served from a free list.
    pub hits: u64,
    /// Requests that went to the driver.
    pub misses: u64,
    /// Blocks returned to the driver (by `empty_cache` or an out-of-memory retry).
    pub releases: u64,
}

/// A block of device memory owned by the allocator's user.
pub(crate) struct Block {
    pub(crate) ptr: u64,
    pub(crate) bytes: usize,
    slice: CudaSlice<u8>,
}

struct State {
    free: HashMap<usize, Vec<CudaSlice<u8>>>,
    stats: AllocStats,
}

/// One device's caching allocator.
pub(crate) struct Allocator {
    stream: Arc<CudaStream>,
    state: Mutex<State>,
}

impl Allocator {
    pub(crate) fn new(stream: Arc<CudaStream>) -> Self {
        Allocator { stream, state: Mutex::new(State { free: HashMap::new(), stats: AllocStats::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn raw_ptr(&self, slice: &CudaSlice<u8>) -> u64 {
        let (ptr, _sync) = slice.device_ptr(&self.stream);
        ptr
    }

    /// A block of at least `bytes` bytes (contents undefined).
    pub(crate) fn alloc(&self, bytes: usize) -> Result<Block> {
        let size = bucket(bytes);
        {
            let mut st = self.lock();
            if let Some(slice) = st.free.get_mut(&size).and_then(Vec::pop) {
                st.stats.hits += 1;
                st.stats.cached_bytes -= size;
                st.stats.live_bytes += size;
                drop(st);
                return Ok(Block { ptr: self.raw_ptr(&slice), bytes: size, slice });
            }
        }
        // SAFETY: the memory is uninitialised bytes; every user writes before reading (kernels
        // overwrite their outputs, copies fill buffers).
        let slice = match unsafe { self.stream.alloc::<u8>(size) } {
            Ok(s) => s,
            Err(_) => {
                self.empty_cache()?;
                // SAFETY: as above.
                unsafe { self.stream.alloc::<u8>(size) }.map_err(|source| {
                    let st = self.lock();
                    Error::OutOfMemory {
                        bytes: size,
                        cached: st.stats.cached_bytes,
                        live: st.stats.live_bytes,
                        source,
                    }
                })?
            }
        };
        let mut st = self.lock();
        st.stats.misses += 1;
        st.stats.live_bytes += size;
        st.stats.peak_bytes = st.stats.peak_bytes.max(st.stats.live_bytes + st.stats.cached_bytes);
        drop(st);
        Ok(Block { ptr: self.raw_ptr(&slice), bytes: size, slice })
    }

    /// Puts a block back on its free list.
    pub(crate) fn release(&self, block: Block) {
        let mut st = self.lock();
        st.stats.live_bytes -= block.bytes;
        st.stats.cached_bytes += block.bytes;
        st.free.entry(block.bytes).or_default().push(block.slice);
    }

    /// Returns every cached block to the driver (after the stream's pending work).
    pub(crate) fn empty_cache(&self) -> Result<()> {
        let blocks: Vec<CudaSlice<u8>> = {
            let mut st = self.lock();
            let blocks: Vec<_> = st.free.drain().flat_map(|(_, v)| v).collect();
            st.stats.releases += blocks.len() as u64;
            st.stats.cached_bytes = 0;
            blocks
        };
        self.stream.synchronize().map_err(Error::driver("synchronize before releasing cached blocks"))?;
        drop(blocks);
        Ok(())
    }

    pub(crate) fn stats(&self) -> AllocStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_round_up_and_stay_close() {
        assert_eq!(bucket(0), 512);
        assert_eq!(bucket(513), 1024);
        assert_eq!(bucket(1 << 20), 1 << 20);
        assert_eq!(bucket((1 << 20) + 1), 2 << 20);
        assert_eq!(bucket(5 << 20), 6 << 20);
        for b in [1usize, 700, 40_000, 3 << 20, 123_456_789] {
            let s = bucket(b);
            assert!(s >= b && (s - b) <= b.max(512) && s - b < (2 << 20).max(b), "{b} → {s}");
        }
    }
}
