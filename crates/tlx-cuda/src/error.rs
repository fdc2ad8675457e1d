//! The one error type of tlx-cuda: missing libraries or devices, driver, NVRTC and cuBLAS
//! failures, out-of-memory, and bad arguments (shapes, lengths) at the public API.

use thiserror::Error;

/// Result with tlx-cuda's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tlx-cuda.
#[derive(Debug, Error)]
pub enum Error {
    /// A CUDA library (driver, NVRTC, cuBLAS) could not be loaded.
    #[error("CUDA library `{lib}` not found: {hint}")]
    LibraryMissing { lib: &'static str, hint: String },
    /// The driver loaded but reports no such device.
    #[error("no CUDA device {ordinal}: the driver reports {count} device(s)")]
    NoDevice { ordinal: usize, count: usize },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {what}: {source}")]
    Driver {
        what: String,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A device allocation failed even after the allocator released its cached blocks.
    #[error(
        "out of GPU memory allocating {bytes} bytes ({cached} bytes were cached, {live} live): {source}"
    )]
    OutOfMemory {
        bytes: usize,
        cached: usize,
        live: usize,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// NVRTC rejected a kernel source.
    #[error("NVRTC failed to compile kernels/{file} for {arch}: {log}")]
    Compile { file: &'static str, arch: String, log: String },
    /// A kernel function is missing from its module.
    #[error("kernel `{function}` not found in kernels/{file}: {source}")]
    MissingKernel {
        file: &'static str,
        function: &'static str,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS error in {what}: {source}")]
    Blas {
        what: &'static str,
        #[source]
        source: cudarc::cublas::result::CublasError,
    },
    /// Arguments that do not fit together (lengths, shapes, devices).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
}

impl Error {
    /// An argument error of `op`.
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Invalid { op, msg: msg.into() }
    }

    /// Wraps a driver error with what was being done.
    pub(crate) fn driver(what: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
        let what = what.into();
        move |source| Error::Driver { what, source }
    }

    /// True for the errors that mean "no usable GPU here" (tests skip on these).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::LibraryMissing { .. } | Error::NoDevice { .. })
            || matches!(self, Error::Driver { source, .. }
                if source.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE
                    || source.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_STUB_LIBRARY)
    }
}
