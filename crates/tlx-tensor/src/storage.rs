//! Tensor storage: owned CPU buffers of each element type, read-only memory-mapped bytes
//! (a weights file) that are copied into an owned buffer on the first write, and — with the
//! `cuda` feature — typed device buffers (`Storage::Cuda`, see [`crate::cuda`]).

use half::{bf16, f16};
use std::any::Any;
use std::sync::{Arc, LockResult, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tlx_core::{DType, Element, Error, Result};

/// A tensor's storage (shared by its views) with values derived from its current contents
/// (a convolution kernel transformed for Winograd), which every write drops.
pub(crate) struct StorageCell {
    data: RwLock<Storage>,
    /// `(key, value)`: at most [`StorageCell::MAX_DERIVED`], oldest first.
    derived: Mutex<Vec<(String, Arc<dyn Any + Send + Sync>)>>,
}

impl StorageCell {
    /// Derived values kept per storage (a kernel used at two tile sizes, say).
    const MAX_DERIVED: usize = 4;

    pub(crate) fn new(storage: Storage) -> Arc<StorageCell> {
        Arc::new(StorageCell { data: RwLock::new(storage), derived: Mutex::new(Vec::new()) })
    }

    pub(crate) fn read(&self) -> LockResult<RwLockReadGuard<'_, Storage>> {
        self.data.read()
    }

    /// The write lock; what was derived from the old contents is dropped first.
    pub(crate) fn write(&self) -> LockResult<RwLockWriteGuard<'_, Storage>> {
        let guard = self.data.write();
        // Under the write lock no reader is deriving anything (they hold the read lock
        // while they do), so nothing derived from the old contents can appear after this.
        self.derived.lock().unwrap_or_else(|e| e.into_inner()).clear();
        guard
    }

    pub(crate) fn into_inner(self) -> LockResult<Storage> {
        self.data.into_inner()
    }

    /// The value derived under `key` from the contents `guard` (this cell's read lock, held
    /// by the caller) shows, made by `make` if not yet kept.
    pub(crate) fn derived<V: Any + Send + Sync, E>(
        &self,
        guard: &RwLockReadGuard<'_, Storage>,
        key: String,
        make: impl FnOnce(&Storage) -> std::result::Result<V, E>,
    ) -> std::result::Result<Arc<V>, E> {
        let find = |kept: &[(String, Arc<dyn Any + Send + Sync>)]| {
            kept.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.clone().downcast::<V>().ok())
        };
        if let Some(v) = find(&self.derived.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(v);
        }
        // Made without the mutex held (it may take a while, on the rayon pool); two readers
        // may both make it, the second finds the first's.
        let made = Arc::new(make(guard)?);
        let mut kept = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = find(&kept) {
            return Ok(v);
        }
        if kept.len() == Self::MAX_DERIVED {
            kept.remove(0);
        }
        kept.push((key, made.clone()));
        Ok(made)
    }
}

/// Owned CPU elements of one type.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Bytes owned elsewhere (a memory map, a buffer read from a zip) that tensors can view.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A typed, aligned, read-only window into shared bytes.
#[derive(Clone)]
pub struct MappedStorage {
    bytes: SharedBytes,
    byte_offset: usize,
    len: usize,
    dtype: DType,
}

impl std::fmt::Debug for MappedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({} × {} at byte {})", self.len, self.dtype, self.byte_offset)
    }
}

/// Where a tensor's elements live.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Owned, writable CPU memory.
    Cpu(CpuStorage),
    /// Read-only view into memory-mapped bytes; replaced by `Cpu` on the first write.
    Mapped(MappedStorage),
    /// A typed buffer in a GPU's memory (the `cuda` feature). Host reads of it fail here
    /// ([`Storage::as_slice`]); `Tensor::to_vec` and `Tensor::with_slice` copy it to the host.
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}

/// Element types that have a `CpuStorage` variant.
pub trait StorageElement: Element {
    /// The elements, if `s` holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// The elements mutably, if `s` holds this type.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Wraps a vector.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// The vector, if `s` holds this type (otherwise `s` back).
    fn unwrap(s: CpuStorage) -> std::result::Result<Vec<Self>, CpuStorage>;
}

macro_rules! storage_element {
    ($t:ty, $v:ident) => {
        impl StorageElement for $t {
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$v(v)
            }
            fn unwrap(s: CpuStorage) -> std::result::Result<Vec<Self>, CpuStorage> {
                match s {
                    CpuStorage::$v(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}
storage_element!(u8, U8);
storage_element!(i32, I32);
storage_element!(i64, I64);
storage_element!(f16, F16);
storage_element!(bf16, BF16);
storage_element!(f32, F32);
storage_element!(f64, F64);

/// Calls `$body` with `$v` bound to the typed vector/slice of a `CpuStorage`.
#[macro_export]
macro_rules! match_cpu_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::storage::CpuStorage::U8($v) => $body,
            $crate::storage::CpuStorage::I32($v) => $body,
            $crate::storage::CpuStorage::I64($v) => $body,
            $crate::storage::CpuStorage::F16($v) => $body,
            $crate::storage::CpuStorage::BF16($v) => $body,
            $crate::storage::CpuStorage::F32($v) => $body,
            $crate::storage::CpuStorage::F64($v) => $body,
        }
    };
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match_cpu_storage!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zeros of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> CpuStorage {
        match dtype {
            DType::U8 => CpuStorage::U8(vec![0; n]),
            DType::I32 => CpuStorage::I32(vec![0; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
        }
    }

    /// Decodes little-endian bytes of `dtype` into owned elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Result<CpuStorage> {
        let size = dtype.size_in_bytes();
        if !bytes.len().is_multiple_of(size) {
            return Err(Error::invalid(
                "from_bytes",
                format!("{} bytes is not a whole number of {dtype} elements", bytes.len()),
            ));
        }
        fn decode<T: StorageElement>(bytes: &[u8]) -> CpuStorage {
            // pod_collect_to_vec copies into a correctly aligned Vec<T> (little-endian host).
            T::wrap(bytemuck::pod_collect_to_vec::<u8, T>(bytes))
        }
        Ok(match dtype {
            DType::U8 => decode::<u8>(bytes),
            DType::I32 => decode::<i32>(bytes),
            DType::I64 => decode::<i64>(bytes),
            DType::F16 => decode::<f16>(bytes),
            DType::BF16 => decode::<bf16>(bytes),
            DType::F32 => decode::<f32>(bytes),
            DType::F64 => decode::<f64>(bytes),
        })
    }
}

impl MappedStorage {
    /// The raw bytes of the window.
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = (*self.bytes).as_ref();
        &all[self.byte_offset..self.byte_offset + self.len * self.dtype.size_in_bytes()]
    }

    /// The shared owner of the bytes (e.g. to check zero-copy in tests).
    pub fn owner(&self) -> &SharedBytes {
        &self.bytes
    }
}

impl Storage {
    /// A storage viewing `len` elements of `dtype` at `byte_offset` of `bytes` without a copy
    /// when the address is aligned for `dtype`; otherwise the elements are copied (still
    /// correct, just not zero-copy). Little-endian hosts only (checked at compile time below).
    pub fn from_shared_bytes(
        bytes: SharedBytes,
        byte_offset: usize,
        dtype: DType,
        len: usize,
    ) -> Result<Storage> {
        let total = (*bytes).as_ref().len();
        let need = len
            .checked_mul(dtype.size_in_bytes())
            .and_then(|n| n.checked_add(byte_offset))
            .ok_or_else(|| Error::invalid("from_shared_bytes", "size overflows"))?;
        if need > total {
            return Err(Error::invalid(
                "from_shared_bytes",
                format!("{len} × {dtype} at byte {byte_offset} exceeds the {total}-byte buffer"),
            ));
        }
        let window = &(*bytes).as_ref()[byte_offset..need];
        if !(window.as_ptr() as usize).is_multiple_of(dtype.size_in_bytes()) {
            return Ok(Storage::Cpu(CpuStorage::from_le_bytes(dtype, window)?));
        }
        Ok(Storage::Mapped(MappedStorage { bytes, byte_offset, len, dtype }))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
            Storage::Mapped(m) => m.dtype,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.dtype(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
            Storage::Mapped(m) => m.len,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the elements live.
    pub fn device(&self) -> crate::Device {
        match self {
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => crate::Device::Cuda(c.device()),
            _ => crate::Device::Cpu,
        }
    }

    /// True for memory-mapped (not yet copied) storage.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped(_))
    }

    /// The elements as `&[T]`, or a dtype error naming `op`.
    pub fn as_slice<T: StorageElement>(&self, op: &'static str) -> Result<&[T]> {
        let wrong = || Error::dtype(op, format!("expected {} storage, found {}", T::DTYPE, self.dtype()));
        match self {
            Storage::Cpu(c) => T::slice(c).ok_or_else(wrong),
            Storage::Mapped(m) => {
                if m.dtype != T::DTYPE {
                    return Err(wrong());
                }
                // Alignment was checked when the mapped storage was created.
                Ok(bytemuck::cast_slice(m.bytes()))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Err(c.host_access_error(op)),
        }
    }

    /// The elements mutably; mapped storage is first copied into an owned buffer.
    pub fn as_mut_slice<T: StorageElement>(&mut self, op: &'static str) -> Result<&mut [T]> {
        if let Storage::Mapped(m) = self {
            *self = Storage::Cpu(CpuStorage::from_le_bytes(m.dtype, m.bytes())?);
        }
        let found = self.dtype();
        match self {
            Storage::Cpu(c) => T::slice_mut(c)
                .ok_or_else(|| Error::dtype(op, format!("expected {} storage, found {found}", T::DTYPE))),
            Storage::Mapped(_) => unreachable!("mapped storage was just copied"),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Err(c.host_access_error(op)),
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("tlx assumes a little-endian host (weights files and mapped storage are little-endian)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_is_zero_copy_and_copies_on_write() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let shared: SharedBytes = Arc::new(data);
        let base = (*shared).as_ref().as_ptr();
        let mut s = Storage::from_shared_bytes(shared.clone(), 4, DType::F32, 2).unwrap();
        assert!(s.is_mapped());
        let view = s.as_slice::<f32>("t").unwrap();
        assert_eq!(view, &[2.0, 3.0]);
        assert_eq!(view.as_ptr() as *const u8, base.wrapping_add(4));
        s.as_mut_slice::<f32>("t").unwrap()[0] = 9.0;
        assert!(!s.is_mapped());
        assert_eq!(s.as_slice::<f32>("t").unwrap(), &[9.0, 3.0]);
        // The shared bytes are untouched.
        assert_eq!(&(*shared).as_ref()[4..8], &2.0f32.to_le_bytes());
    }

    #[test]
    fn misaligned_bytes_are_copied_and_bad_ranges_fail() {
        let data: Vec<u8> = (0..13).collect();
        let shared: SharedBytes = Arc::new(data);
        let s = Storage::from_shared_bytes(shared.clone(), 1, DType::F32, 3).unwrap();
        assert!(!s.is_mapped());
        assert!(Storage::from_shared_bytes(shared.clone(), 2, DType::F32, 3).is_err());
        assert!(s.as_slice::<f64>("t").is_err());
    }
}

#[cfg(test)]
mod derived_tests {
    use super::*;

    #[test]
    fn derived_values_are_kept_until_the_storage_is_written() {
        let cell = StorageCell::new(Storage::Cpu(CpuStorage::F32(vec![1.0, 2.0])));
        let made = std::cell::Cell::new(0);
        let get = |key: &str| {
            let guard = cell.read().unwrap();
            cell.derived(&guard, key.to_string(), |s| {
                made.set(made.get() + 1);
                Ok::<_, ()>(s.len() * 10)
            })
            .unwrap()
        };
        let first = get("a");
        assert_eq!((*first, made.get()), (20, 1));
        assert!(Arc::ptr_eq(&first, &get("a")), "kept");
        assert_eq!(made.get(), 1);
        // Another key is another value; a write drops both.
        get("b");
        assert_eq!(made.get(), 2);
        drop(cell.write().unwrap());
        assert!(!Arc::ptr_eq(&first, &get("a")), "made again after the write");
        assert_eq!(made.get(), 3);
        // At most MAX_DERIVED kept: the oldest goes first.
        for k in ["c", "d", "e", "f"] {
            get(k);
        }
        assert_eq!(made.get(), 7);
        get("a");
        assert_eq!(made.get(), 8, "a was the oldest");
        get("f");
        assert_eq!(made.get(), 8, "f was still kept");
        // A failing `make` keeps nothing and reports its error.
        let guard = cell.read().unwrap();
        assert_eq!(cell.derived::<usize, _>(&guard, "g".into(), |_| Err("no")), Err("no"));
    }
}
