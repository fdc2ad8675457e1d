//! [`CudaContext`]: one GPU as tlx uses it — the driver context, one stream on which all of
//! the device's work runs in order, a lazily created cuBLAS handle, the kernel modules (NVRTC
//! PTX loaded once per device), the caching allocator — plus kernel launching and GPU timers.
//!
//! Contexts are process-wide per device: `CudaContext::new(i)` returns the same one each time.

use crate::alloc::{AllocStats, Allocator};
use crate::error::{Error, Result};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{result as drv, sys, CudaEvent, CudaFunction, CudaModule, CudaStream, LaunchConfig};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What the driver reports about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
    pub multiprocessors: usize,
    /// The SM clock the driver reports, in kHz.
    pub clock_khz: usize,
    /// The NVRTC target used for this device's kernels (`compute_XY`).
    pub arch: String,
}

struct Inner {
    info: DeviceInfo,
    driver: Arc<cudarc::driver::CudaContext>,
    stream: Arc<CudaStream>,
    alloc: Arc<Allocator>,
    blas: Mutex<Option<Arc<CudaBlas>>>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    tf32: AtomicBool,
}

/// One CUDA device with its stream, allocator, cuBLAS handle and kernels (a cheap handle).
#[derive(Clone)]
pub struct CudaContext {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CudaContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaContext").field("info", &self.inner.info).finish()
    }
}

impl PartialEq for CudaContext {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

fn registry() -> &'static Mutex<HashMap<usize, CudaContext>> {
    static REG: OnceLock<Mutex<HashMap<usize, CudaContext>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaContext {
    /// The number of CUDA devices; an error (not a panic) when there is no driver.
    pub fn device_count() -> Result<usize> {
        crate::libs::driver()?;
        drv::init().map_err(Error::driver("cuInit"))?;
        let n = drv::device::get_count().map_err(Error::driver("cuDeviceGetCount"))?;
        Ok(n.max(0) as usize)
    }

    /// The context of device `ordinal`, created on first use. Errors when the driver, the
    /// device or NVRTC is missing.
    pub fn new(ordinal: usize) -> Result<CudaContext> {
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = reg.get(&ordinal) {
            return Ok(ctx.clone());
        }
        let count = Self::device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice { ordinal, count });
        }
        crate::libs::nvrtc()?;
        let driver = cudarc::driver::CudaContext::new(ordinal).map_err(Error::driver("create context"))?;
        // SAFETY: every buffer of this device is used on its one stream only (`stream` below);
        // stream order is the synchronisation, so cudarc's per-slice events are not needed.
        unsafe { driver.disable_event_tracking() };
        let stream = driver.new_stream().map_err(Error::driver("create stream"))?;
        let compute_capability = driver.compute_capability().map_err(Error::driver("compute capability"))?;
        let info = DeviceInfo {
            ordinal,
            name: driver.name().map_err(Error::driver("device name"))?,
            compute_capability,
            total_memory: driver.total_mem().map_err(Error::driver("total memory"))?,
            multiprocessors: driver
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .map_err(Error::driver("multiprocessor count"))?
                .max(1) as usize,
            clock_khz: driver
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
                .map_err(Error::driver("clock rate"))?
                .max(0) as usize,
            arch: crate::nvrtc::arch_for(compute_capability.0, compute_capability.1)?,
        };
        let ctx = CudaContext {
            inner: Arc::new(Inner {
                info,
                alloc: Arc::new(Allocator::new(stream.clone())),
                driver,
                stream,
                blas: Mutex::new(None),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                tf32: AtomicBool::new(false),
            }),
        };
        reg.insert(ordinal, ctx.clone());
        Ok(ctx)
    }

    /// Device 0, or the reason there is none (what tests print when they skip).
    pub fn first() -> Result<CudaContext> {
        Self::new(0)
    }

    /// What the driver reports about this device.
    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.info.ordinal
    }

    /// Waits for all work queued on the device's stream.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.stream.synchronize().map_err(Error::driver("synchronize"))
    }

    /// The allocator's counters.
    pub fn alloc_stats(&self) -> AllocStats {
        self.inner.alloc.stats()
    }

    /// Returns the allocator's cached blocks to the driver.
    pub fn empty_cache(&self) -> Result<()> {
        self.inner.alloc.empty_cache()
    }

    /// Lets f32 GEMMs use TF32 tensor cores (faster; about 1e-3 relative error instead of
    /// f32's 1e-6). Off by default.
    pub fn set_allow_tf32(&self, allow: bool) {
        self.inner.tf32.store(allow, Ordering::Relaxed);
    }

    /// Whether f32 GEMMs may use TF32.
    pub fn allow_tf32(&self) -> bool {
        self.inner.tf32.load(Ordering::Relaxed)
    }

    pub(crate) fn allocator(&self) -> &Arc<Allocator> {
        &self.inner.alloc
    }

    pub(crate) fn cu_stream(&self) -> sys::CUstream {
        self.inner.stream.cu_stream()
    }

    /// Makes this device's context current on the calling thread (before raw driver calls).
    pub(crate) fn bind(&self) -> Result<()> {
        self.inner.driver.bind_to_thread().map_err(Error::driver("bind context"))
    }

    /// The cuBLAS handle on this device's stream, created on first use.
    pub(crate) fn blas(&self) -> Result<Arc<CudaBlas>> {
        let mut slot = self.inner.blas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = slot.as_ref() {
            return Ok(b.clone());
        }
        crate::libs::cublas()?;
        let blas = Arc::new(
            CudaBlas::new(self.inner.stream.clone())
                .map_err(|source| Error::Blas { what: "create handle", source })?,
        );
        *slot = Some(blas.clone());
        Ok(blas)
    }

    /// Kernel `function` of `kernels/{file}`: the source is compiled by NVRTC once per process
    /// and loaded once per device.
    pub(crate) fn function(&self, file: &'static str, function: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self.inner.functions.lock().unwrap_or_else(|p| p.into_inner()).get(function) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(file) {
                Some(m) => m.clone(),
                None => {
                    let src = crate::nvrtc::source(file).ok_or_else(|| {
                        Error::invalid("kernel", format!("no kernel source kernels/{file}"))
                    })?;
                    let compiled = crate::nvrtc::compile(src, &self.inner.info.arch)?;
                    let ptx = cudarc::nvrtc::Ptx::from_src(compiled.ptx.clone());
                    let m = self
                        .inner
                        .driver
                        .load_module(ptx)
                        .map_err(Error::driver(format!("load kernels/{file}")))?;
                    modules.insert(file, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(function).map_err(|source| Error::MissingKernel {
            file,
            function,
            source,
        })?;
        self.inner.functions.lock().unwrap_or_else(|p| p.into_inner()).insert(function, f.clone());
        Ok(f)
    }

    /// Launches `function` of `kernels/{file}` on the device's stream with `args`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in number, order and type, every device
    /// pointer in it must point into live buffers of this device large enough for every
    /// element the kernel reads or writes with these arguments, and buffers it writes must not
    /// be written concurrently by anything else.
    pub(crate) unsafe fn launch(
        &self,
        file: &'static str,
        function: &'static str,
        cfg: LaunchConfig,
        args: &KernelArgs,
    ) -> Result<()> {
        let f = self.function(file, function)?;
        self.bind()?;
        let mut params: Vec<*mut c_void> = args.words.iter().map(|w| w.as_ptr() as *mut c_void).collect();
        // SAFETY: the caller guarantees the arguments fit the kernel; `params` points at
        // `args`' storage, which outlives this call (cuLaunchKernel copies the values).
        unsafe {
            drv::launch_kernel(
                f.cu_function(),
                cfg.grid_dim,
                cfg.block_dim,
                cfg.shared_mem_bytes,
                self.cu_stream(),
                &mut params,
            )
        }
        .map_err(Error::driver(format!("launch {function} (kernels/{file})")))
    }

    /// A pair of timing events on this device's stream.
    pub fn timer(&self) -> Result<GpuTimer> {
        let ev = || {
            self.inner
                .driver
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(Error::driver("create event"))
        };
        Ok(GpuTimer { start: ev()?, end: ev()?, stream: self.inner.stream.clone() })
    }
}

impl DeviceInfo {
    /// FP32 CUDA cores per SM of this architecture (0 when unknown).
    pub fn fp32_cores_per_sm(&self) -> usize {
        match self.compute_capability {
            (7, _) | (8, 0) => 64,
            (8, _) | (9, _) | (10, _) | (12, _) => 128,
            _ => 0,
        }
    }

    /// The peak f32 throughput of the CUDA cores (FMA = 2 flops) at the reported clock, in
    /// GFLOP/s; `None` for an architecture not in the table.
    pub fn peak_f32_gflops(&self) -> Option<f64> {
        let cores = self.fp32_cores_per_sm();
        (cores > 0 && self.clock_khz > 0)
            .then(|| 2.0 * (cores * self.multiprocessors) as f64 * self.clock_khz as f64 * 1e-6)
    }
}

/// Times work on a device's stream with CUDA events.
pub struct GpuTimer {
    start: CudaEvent,
    end: CudaEvent,
    stream: Arc<CudaStream>,
}

impl GpuTimer {
    /// Records the start event.
    pub fn start(&self) -> Result<()> {
        self.start.record(&self.stream).map_err(Error::driver("record event"))
    }

    /// Records the end event, waits for it and returns the milliseconds since `start`.
    pub fn stop_ms(&self) -> Result<f32> {
        self.end.record(&self.stream).map_err(Error::driver("record event"))?;
        self.end.synchronize().map_err(Error::driver("synchronize event"))?;
        self.start.elapsed_ms(&self.end).map_err(Error::driver("elapsed time"))
    }
}

/// Kernel arguments passed by value: each argument's bytes in its own 8-byte-aligned slot.
#[derive(Default)]
pub(crate) struct KernelArgs {
    words: Vec<Box<[u64]>>,
}

impl KernelArgs {
    pub(crate) fn new() -> Self {
        KernelArgs::default()
    }

    /// Appends a value (a scalar, a device pointer as `u64`, or a `#[repr(C)]` struct whose
    /// layout matches the kernel's parameter type).
    pub(crate) fn val<T: Copy + 'static>(&mut self, v: T) -> &mut Self {
        let size = std::mem::size_of::<T>();
        assert!(std::mem::align_of::<T>() <= 8, "kernel argument aligned above 8 bytes");
        let mut slot = vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice();
        // SAFETY: `slot` has at least `size` bytes and is 8-byte aligned (≥ T's alignment);
        // T is Copy, so a byte copy is a valid copy.
        unsafe {
            std::ptr::copy_nonoverlapping(&v as *const T as *const u8, slot.as_mut_ptr() as *mut u8, size)
        };
        self.words.push(slot);
        self
    }

    /// Appends a device pointer (`0` is a null pointer).
    pub(crate) fn ptr(&mut self, p: u64) -> &mut Self {
        self.val(p)
    }
}

/// A 1-D launch of `threads`-thread blocks covering `n` items with grid-stride loops.
pub(crate) fn grid_1d(n: usize, threads: u32) -> LaunchConfig {
    let blocks = n.div_ceil(threads as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
}
