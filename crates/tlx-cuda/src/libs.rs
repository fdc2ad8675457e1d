//! Finding the CUDA libraries at run time before cudarc touches them (cudarc panics when a
//! library is missing; tlx-cuda turns that into [`Error::LibraryMissing`]).
//!
//! cudarc looks libraries up by name (`libcuda.so.1`, `libnvrtc.so.12`, `libcublas.so.12`, …)
//! through the dynamic loader's search path (`LD_LIBRARY_PATH`, the ld cache). In addition,
//! when `TLX_CUDA_LIB_DIR` names one or more directories (`:`-separated), every
//! `libnvrtc*.so*`, `libcublas*.so*` and `libcuda.so*` file in them is loaded first by its full
//! path; the loader then resolves cudarc's by-name lookups to those already-loaded libraries
//! (matched by soname). That is how a pip wheel's libnvrtc (`nvidia-cuda-nvrtc-cu12`) can be
//! used without touching `LD_LIBRARY_PATH`.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Environment variable with extra directories holding CUDA libraries.
pub const LIB_DIR_ENV: &str = "TLX_CUDA_LIB_DIR";

/// What `TLX_CUDA_LIB_DIR` gave: the libraries loaded (kept loaded for the whole process) and
/// a note per file that failed to load.
struct Preloaded {
    _libs: Vec<libloading::Library>,
    notes: Vec<String>,
}

fn preload() -> &'static Preloaded {
    static LIBS: OnceLock<Preloaded> = OnceLock::new();
    LIBS.get_or_init(|| {
        let Some(dirs) = std::env::var_os(LIB_DIR_ENV) else {
            return Preloaded { _libs: Vec::new(), notes: Vec::new() };
        };
        let mut notes = Vec::new();
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for dir in std::env::split_paths(&dirs) {
            match std::fs::read_dir(&dir) {
                Ok(entries) => files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    (name.starts_with("libnvrtc")
                        || name.starts_with("libcublas")
                        || name.starts_with("libcuda."))
                        && name.contains(".so")
                        && !name.contains(".alt.")
                })),
                Err(e) => notes.push(format!("{LIB_DIR_ENV} entry {}: {e}", dir.display())),
            }
        }
        // Builtins before the compiler that needs them, cublasLt before cublas.
        files.sort_by_key(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            (!(name.contains("builtins") || name.contains("cublasLt")), name)
        });
        let mut libs = Vec::new();
        for p in files {
            // SAFETY: loading a CUDA library runs its initialisers, which have no
            // preconditions beyond being the library they claim to be; the handle is kept for
            // the process.
            match unsafe { libloading::Library::new(&p) } {
                Ok(l) => libs.push(l),
                Err(e) => notes.push(format!("{}: {e}", p.display())),
            }
        }
        Preloaded { _libs: libs, notes }
    })
}

fn check(lib: &'static str, present: bool, hint: &str) -> Result<()> {
    if present {
        return Ok(());
    }
    let notes = &preload().notes;
    let hint = if notes.is_empty() { hint.to_string() } else { format!("{hint} ({})", notes.join("; ")) };
    Err(Error::LibraryMissing { lib, hint })
}

/// Ok when the CUDA driver library (libcuda) can be loaded.
pub fn driver() -> Result<()> {
    preload();
    // SAFETY: only tries to dlopen the library by its known names.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    check("libcuda", present, "no NVIDIA driver on this machine (is a GPU attached?)")
}

/// Ok when NVRTC (libnvrtc) can be loaded.
pub fn nvrtc() -> Result<()> {
    preload();
    // SAFETY: only tries to dlopen the library by its known names.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    check(
        "libnvrtc",
        present,
        "install the `nvidia-cuda-nvrtc-cu12` wheel and put its nvidia/cuda_nvrtc/lib on LD_LIBRARY_PATH or TLX_CUDA_LIB_DIR",
    )
}

/// Ok when cuBLAS (libcublas) can be loaded.
pub fn cublas() -> Result<()> {
    preload();
    // SAFETY: only tries to dlopen the library by its known names.
    let present = unsafe { cudarc::cublas::sys::is_culib_present() };
    check(
        "libcublas",
        present,
        "install the CUDA toolkit or the `nvidia-cublas-cu12` wheel and put its lib directory on LD_LIBRARY_PATH or TLX_CUDA_LIB_DIR",
    )
}

/// NVRTC's version `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: libnvrtc is present (checked above); the pointers are to live locals.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        Ok((major, minor))
    } else {
        Err(Error::invalid("nvrtc_version", format!("nvrtcVersion failed: {r:?}")))
    }
}
