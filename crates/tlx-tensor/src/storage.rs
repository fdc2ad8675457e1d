//! Tensor storage: owned CPU buffers of each element type, read-only memory-mapped bytes
//! (a weights file) that are copied into an owned buffer on the first write, and — with the
//! `cuda` feature — typed device buffers (`Storage::Cuda`, see [`crate::cuda`]).

use half::{bf16, f16};
use std::sync::Arc;
use tlx_core::{DType, Element, Error, Result};

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
