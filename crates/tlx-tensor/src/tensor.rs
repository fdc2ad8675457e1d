//! `Tensor`: a cheap `Arc` handle to a node holding storage, layout, dtype, device and —
//! only when some input needs gradients and grad mode is on — the op that made it.

use crate::autograd::{self, Op};
use crate::storage::{CpuStorage, SharedBytes, Storage, StorageCell, StorageElement};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLockReadGuard, RwLockWriteGuard};
use tlx_core::{DType, Element, Error, Layout, Result, Shape};

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    /// An NVIDIA GPU by ordinal (requires the `cuda` backend).
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Unique identity of a tensor node (autograd keys gradients by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Node {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<StorageCell>,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    /// How this tensor was computed (present only when recorded for autograd).
    pub(crate) op: Option<Op>,
    /// For leaves: whether gradients are wanted. For recorded results: always true.
    pub(crate) requires_grad: AtomicBool,
    /// Accumulated gradient of a leaf.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

/// An n-dimensional array with reverse-mode automatic differentiation.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {}, {}", self.shape(), self.dtype(), self.device())?;
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, ")")
    }
}

impl Tensor {
    // ----- construction -------------------------------------------------------------------

    pub(crate) fn from_parts(
        storage: Arc<StorageCell>,
        layout: Layout,
        dtype: DType,
        device: Device,
        op: Option<Op>,
    ) -> Tensor {
        let tracked = op.is_some();
        Tensor(Arc::new(Node {
            id: TensorId::next(),
            storage,
            layout,
            dtype,
            device,
            op,
            requires_grad: AtomicBool::new(tracked),
            grad: Mutex::new(None),
        }))
    }

    /// A new contiguous tensor owning `storage`, recording `op` if autograd wants it.
    pub(crate) fn from_storage(storage: CpuStorage, shape: Shape, op: Option<Op>) -> Tensor {
        debug_assert_eq!(storage.len(), shape.numel());
        let dtype = storage.dtype();
        let op = op.filter(autograd::should_record);
        Tensor::from_parts(
            StorageCell::new(Storage::Cpu(storage)),
            Layout::contiguous(shape),
            dtype,
            Device::Cpu,
            op,
        )
    }

    /// A new contiguous tensor owning GPU `storage` (`op` already filtered by the caller).
    #[cfg(feature = "cuda")]
    pub(crate) fn from_cuda(storage: crate::cuda::CudaStorage, shape: Shape, op: Option<Op>) -> Tensor {
        debug_assert_eq!(storage.len(), shape.numel());
        let (dtype, device) = (storage.dtype(), Device::Cuda(storage.device()));
        Tensor::from_parts(
            StorageCell::new(Storage::Cuda(storage)),
            Layout::contiguous(shape),
            dtype,
            device,
            op,
        )
    }

    /// A view sharing this tensor's storage with another layout (records `op` if tracked).
    pub(crate) fn view_with(&self, layout: Layout, op: Op) -> Tensor {
        let op = Some(op).filter(autograd::should_record);
        Tensor::from_parts(self.0.storage.clone(), layout, self.0.dtype, self.0.device, op)
    }

    /// A tensor from a vector and a shape.
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "from_vec",
                format!("{} elements do not fill shape {shape} ({} elements)", data.len(), shape.numel()),
            ));
        }
        Ok(Tensor::from_storage(T::wrap(data), shape, None))
    }

    /// A tensor copied from a slice.
    pub fn from_slice<T: StorageElement>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: StorageElement>(v: T) -> Tensor {
        Tensor::from_storage(T::wrap(vec![v]), Shape::scalar(), None)
    }

    /// A tensor of `shape` filled with `value` converted to `dtype`.
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let storage = match dtype {
            DType::U8 => CpuStorage::U8(vec![u8::from_f64(value); n]),
            DType::I32 => CpuStorage::I32(vec![i32::from_f64(value); n]),
            DType::I64 => CpuStorage::I64(vec![i64::from_f64(value); n]),
            DType::F16 => CpuStorage::F16(vec![half::f16::from_f64(value); n]),
            DType::BF16 => CpuStorage::BF16(vec![half::bf16::from_f64(value); n]),
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
        };
        Tensor::from_storage(storage, shape, None)
    }

    /// Zeros of `shape` and `dtype`.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        Tensor::from_storage(CpuStorage::zeros(dtype, shape.numel()), shape, None)
    }

    /// Ones of `shape` and `dtype`.
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A tensor of `shape` filled with `value` converted to `dtype`, on `device`.
    pub fn full_on(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, value, dtype).to_device(device)
    }

    /// Zeros of `shape` and `dtype` on `device`.
    pub fn zeros_on(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_on(shape, 0.0, dtype, device)
    }

    /// Zeros with this tensor's shape and dtype, on the CPU (see [`Tensor::zeros_on`] for
    /// another device).
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape().clone(), self.dtype())
    }

    /// Ones with this tensor's shape and dtype, on the CPU.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape().clone(), self.dtype())
    }

    /// `[start, start + step, …)` below `end`, as a rank-1 tensor of `dtype`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid("arange", format!("bad range {start}..{end} step {step}")));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, [n])?.to_dtype(dtype)
    }

    /// A zero-copy tensor over `len` elements of `dtype` at `byte_offset` of shared bytes (a
    /// memory-mapped weights file). The first write copies it. Falls back to a copy when the
    /// bytes are not aligned for `dtype`.
    pub fn from_shared_bytes(
        bytes: SharedBytes,
        byte_offset: usize,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let storage = Storage::from_shared_bytes(bytes, byte_offset, dtype, shape.numel())?;
        Ok(Tensor::from_parts(StorageCell::new(storage), Layout::contiguous(shape), dtype, Device::Cpu, None))
    }

    // ----- accessors ----------------------------------------------------------------------

    /// The node's identity.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }

    /// Dimension `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        Ok(self.dims()[self.shape().axis(axis, "dim")?])
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// The strided layout over the storage.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// True when the elements are dense and row-major in the storage.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// True when the storage is still a memory-mapped (never written) view.
    pub fn is_mapped(&self) -> bool {
        self.read_storage().map(|s| s.is_mapped()).unwrap_or(false)
    }

    /// True when both tensors view the same storage buffer.
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub(crate) fn read_storage(&self) -> Result<RwLockReadGuard<'_, Storage>> {
        self.0.storage.read().map_err(|_| Error::Device("tensor storage lock poisoned".into()))
    }

    pub(crate) fn write_storage(&self) -> Result<RwLockWriteGuard<'_, Storage>> {
        self.0.storage.write().map_err(|_| Error::Device("tensor storage lock poisoned".into()))
    }

    /// A value computed by `make` from this tensor's dense f32 elements, kept with the
    /// storage and returned again for the same `key` until the storage is next written
    /// (through any view): a convolution kernel transformed for Winograd, reused from call
    /// to call while the weights stay the same. The key is made specific to this view.
    pub(crate) fn derived_f32<V: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        make: impl FnOnce(&[f32]) -> Result<V>,
    ) -> Result<Arc<V>> {
        let range = self.0.layout.contiguous_range().ok_or_else(|| {
            Error::invalid("derived_f32", format!("tensor of shape {} is a strided view", self.shape()))
        })?;
        let guard = self.read_storage()?;
        let key = format!("{key} {:?} {range:?}", self.dims());
        self.0.storage.derived(&guard, key, |s| make(&s.as_slice::<f32>("derived_f32")?[range]))
    }

    /// Calls `f` with the raw storage and this tensor's layout (read lock held).
    pub fn with_storage<R>(&self, f: impl FnOnce(&Storage, &Layout) -> Result<R>) -> Result<R> {
        let s = self.read_storage()?;
        f(&s, &self.0.layout)
    }

    /// Calls `f` with the dense elements of this tensor (copies only if it is a strided view,
    /// or to the host if it is on a GPU).
    pub fn with_slice<T: StorageElement, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        check_dtype::<T>(self, "with_slice")?;
        if let (Some(range), Device::Cpu) = (self.0.layout.contiguous_range(), self.device()) {
            let s = self.read_storage()?;
            return Ok(f(&s.as_slice::<T>("with_slice")?[range]));
        }
        let v = self.to_vec::<T>()?;
        Ok(f(&v))
    }

    /// The elements in row-major order as a vector of exactly `T` (no conversion). A tensor
    /// on a GPU is copied to the host.
    pub fn to_vec<T: StorageElement>(&self) -> Result<Vec<T>> {
        check_dtype::<T>(self, "to_vec")?;
        let s = self.read_storage()?;
        #[cfg(feature = "cuda")]
        if let Storage::Cuda(c) = &*s {
            let host = c.download(&self.0.layout)?;
            return T::slice(&host)
                .map(|v| v.to_vec())
                .ok_or_else(|| Error::dtype("to_vec", format!("device storage is not {}", T::DTYPE)));
        }
        let data = s.as_slice::<T>("to_vec")?;
        let mut out = vec![T::default(); self.numel()];
        tlx_cpu::copy::copy_strided(data, &self.0.layout, &mut out);
        Ok(out)
    }

    /// The elements converted to f32.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.to_dtype(DType::F32)?.to_vec::<f32>()
    }

    /// The elements converted to f64.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_dtype(DType::F64)?.to_vec::<f64>()
    }

    /// The single element of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("tensor of shape {} has {} elements, not 1", self.shape(), self.numel()),
            ));
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// Moves to `device`. Only the CPU exists in this build (without the `cuda` feature).
    #[cfg(not(feature = "cuda"))]
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(self.clone()),
            Device::Cuda(i) => Err(Error::Device(format!(
                "cannot move a tensor to cuda:{i}: this build has no CUDA backend (enable the `cuda` feature)"
            ))),
        }
    }

    /// This tensor on `device`: itself when it is already there, else a dense copy (host to
    /// GPU straight from owned or memory-mapped bytes, GPU to host, GPU to GPU through the
    /// host). Gradients flow back to the original device.
    #[cfg(feature = "cuda")]
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        use crate::cuda::CudaStorage;
        if device == self.device() {
            return Ok(self.clone());
        }
        let op = Some(Op::ToDevice { x: self.clone() }).filter(autograd::should_record);
        let shape = self.shape().clone();
        let whole = |t: &Tensor, len: usize| t.0.layout.contiguous_range() == Some(0..len);
        match (self.device(), device) {
            (Device::Cpu, Device::Cuda(i)) => {
                let src = if whole(self, self.read_storage()?.len()) {
                    self.clone()
                } else {
                    self.contiguous_copy()?
                };
                let st = CudaStorage::upload(i, &*src.read_storage()?)?;
                Ok(Tensor::from_cuda(st, shape, op))
            }
            (Device::Cuda(_), Device::Cpu) => {
                let host = match &*self.read_storage()? {
                    Storage::Cuda(c) => c.download(&self.0.layout)?,
                    _ => unreachable!("a cuda tensor has device storage"),
                };
                Ok(Tensor::from_storage(host, shape, op))
            }
            (Device::Cuda(_), Device::Cuda(_)) => {
                let moved = crate::with_no_grad(|| self.to_device(Device::Cpu)?.to_device(device))?;
                Ok(match op {
                    Some(op) => Tensor::from_parts(
                        moved.0.storage.clone(),
                        moved.0.layout.clone(),
                        moved.dtype(),
                        device,
                        Some(op),
                    ),
                    None => moved,
                })
            }
            (Device::Cpu, Device::Cpu) => unreachable!("same device returned above"),
        }
    }

    // ----- in-place updates (optimizers, loading weights) ---------------------------------

    /// Makes this tensor's storage the same bytes as `src`'s without copying them when `src`
    /// is memory-mapped (loading weights): same shape and dtype, both dense from their start.
    /// Anything else falls back to [`Tensor::assign`]. Other views of the old storage keep it.
    pub fn adopt_storage(&self, src: &Tensor) -> Result<()> {
        let dense_from_start = |t: &Tensor| t.0.layout.contiguous_range().is_some_and(|r| r.start == 0);
        let same_len = |t: &Tensor| t.read_storage().map(|s| s.len() == t.numel()).unwrap_or(false);
        if src.shape() != self.shape()
            || src.dtype() != self.dtype()
            || !dense_from_start(self)
            || !dense_from_start(src)
            || !same_len(src)
            || !same_len(self)
            || Arc::ptr_eq(&self.0.storage, &src.0.storage)
            || src.device() != self.device()
        {
            return self.assign(src);
        }
        let new = src.read_storage()?.clone();
        *self.write_storage()? = new;
        Ok(())
    }

    /// Overwrites this tensor's elements with `src`'s (same shape; converted to this dtype).
    /// Writes through shared storage (views see the change); mapped storage is copied first.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shape(
                "assign",
                format!("cannot assign shape {} to shape {}", src.shape(), self.shape()),
            ));
        }
        // Materialise first so a source sharing our storage cannot deadlock the write lock.
        let src =
            crate::with_no_grad(|| src.to_device(self.device())?.to_dtype(self.dtype())?.contiguous_copy())?;
        let src_guard = src.read_storage()?;
        let mut dst = self.write_storage()?;
        #[cfg(feature = "cuda")]
        if let (Storage::Cuda(d), Storage::Cuda(s)) = (&mut *dst, &*src_guard) {
            return d.scatter_from(s, &self.0.layout);
        }
        macro_rules! write_typed {
            ($t:ty) => {{
                let from = src_guard.as_slice::<$t>("assign")?;
                let to = dst.as_mut_slice::<$t>("assign")?;
                for (o, v) in self.0.layout.offsets().zip(from) {
                    to[o] = *v;
                }
            }};
        }
        match self.dtype() {
            DType::U8 => write_typed!(u8),
            DType::I32 => write_typed!(i32),
            DType::I64 => write_typed!(i64),
            DType::F16 => write_typed!(half::f16),
            DType::BF16 => write_typed!(half::bf16),
            DType::F32 => write_typed!(f32),
            DType::F64 => write_typed!(f64),
        }
        Ok(())
    }

    /// Runs `f` on this tensor's dense elements in place (the fused optimizer updates).
    /// The tensor must be contiguous; mapped storage is copied first.
    pub fn update_in_place<T: StorageElement, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R> {
        check_dtype::<T>(self, "update_in_place")?;
        #[cfg(feature = "cuda")]
        crate::cuda::no_kernel("update_in_place", &[self])?;
        let range = self.0.layout.contiguous_range().ok_or_else(|| {
            Error::invalid("update_in_place", format!("tensor of shape {} is a strided view", self.shape()))
        })?;
        let mut s = self.write_storage()?;
        Ok(f(&mut s.as_mut_slice::<T>("update_in_place")?[range]))
    }

    // ----- autograd -------------------------------------------------------------------------

    /// True when gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf as wanting gradients (a trainable weight) or not (frozen).
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if self.0.op.is_some() {
            return Err(Error::Autograd(
                "requires_grad can only be changed on a leaf tensor; use detach() first".into(),
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(Error::Autograd(format!("a {} tensor cannot require gradients", self.dtype())));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Builder form of `set_requires_grad(true)` for fresh leaves.
    pub fn with_grad(self) -> Result<Tensor> {
        self.set_requires_grad(true)?;
        Ok(self)
    }

    /// True when this tensor was produced by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }

    /// The gradient accumulated by `backward` (leaves only).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().ok().and_then(|g| g.clone())
    }

    /// Clears the accumulated gradient. Inside a recycling scope (a training step's) its
    /// buffer goes back to the pool for the next step's gradients (`crate::recycle`).
    pub fn zero_grad(&self) {
        let old = self.0.grad.lock().ok().and_then(|mut g| g.take());
        if let Some(g) = old {
            crate::recycle::recycle(g);
        }
    }

    pub(crate) fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        let mut slot = self.0.grad.lock().map_err(|_| Error::Autograd("gradient lock poisoned".into()))?;
        *slot = Some(match slot.take() {
            None => g,
            Some(old) => old.add(&g)?,
        });
        Ok(())
    }

    /// The same values with no history: gradients stop here. Shares storage.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), self.0.layout.clone(), self.0.dtype, self.0.device, None)
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }
}

pub(crate) fn check_dtype<T: Element>(t: &Tensor, op: &'static str) -> Result<()> {
    if t.dtype() != T::DTYPE {
        return Err(Error::dtype(op, format!("tensor is {}, requested {}", t.dtype(), T::DTYPE)));
    }
    Ok(())
}
