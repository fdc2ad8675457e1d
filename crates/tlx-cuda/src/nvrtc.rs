//! The kernel sources of `kernels/` (embedded with `include_str!`) and their compilation to PTX
//! by NVRTC, once per (source, architecture) per process.
//!
//! A source may `#include "common.cuh"`: the include is replaced by the header's text (with
//! `#line` markers so NVRTC's messages name the right file and line), since NVRTC is given no
//! include path. Compiling needs only libnvrtc, not a GPU: [`compile`] is what CI runs on every
//! source.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex, OnceLock};

/// One `kernels/*.cu` file: its text, the kernels it defines and how it is compiled.
#[derive(Debug)]
pub struct KernelSource {
    /// File name under `kernels/`.
    pub file: &'static str,
    /// The file's text.
    pub code: &'static str,
    /// Every `extern "C" __global__` function it defines.
    pub functions: &'static [&'static str],
    /// Whether NVRTC may contract `a·b + c` into FMAs (`--fmad`). Off for code whose f32
    /// rounding must match the CPU's operation for operation (the optimizer updates).
    pub fmad: bool,
}

/// Headers that sources may include, by name.
pub const HEADERS: &[(&str, &str)] = &[("common.cuh", include_str!("../../../kernels/common.cuh"))];

/// Every kernel source, one op family per file.
pub static SOURCES: &[KernelSource] = &[
    KernelSource {
        file: "elementwise.cu",
        code: include_str!("../../../kernels/elementwise.cu"),
        functions: &[
            "unary_f32",
            "unary_backward_f32",
            "binary_dense_f32",
            "binary_strided_f32",
            "binary_backward_f32",
            "compare_f32",
            "compare_f64",
            "compare_i64",
            "compare_i32",
            "compare_u8",
            "where_f32",
            "gather_strided_u64",
            "gather_strided_u32",
            "gather_strided_u16",
            "gather_strided_u8",
            "scatter_strided_u64",
            "scatter_strided_u32",
            "scatter_strided_u16",
            "scatter_strided_u8",
            "fill_f32",
            "add_row_vector_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "reduce.cu",
        code: include_str!("../../../kernels/reduce.cu"),
        functions: &[
            "reduce_partial_f32",
            "reduce_warp_f32",
            "reduce_finish_f32",
            "arg_extreme_f32",
            "sum_squares_partial_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "softmax.cu",
        code: include_str!("../../../kernels/softmax.cu"),
        functions: &[
            "softmax_rows_f32",
            "softmax_lines_f32",
            "softmax_backward_rows_f32",
            "softmax_backward_lines_f32",
            "softmax_xent_dense_f32",
            "softmax_xent_sparse_i64_f32",
            "softmax_xent_sparse_i32_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "conv.cu",
        code: include_str!("../../../kernels/conv.cu"),
        functions: &[
            "im2col_f32",
            "col2im_f32",
            "depthwise_forward_f32",
            "depthwise_backward_input_f32",
            "depthwise_backward_kernel_partial_f32",
            "sum_columns_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "pool.cu",
        code: include_str!("../../../kernels/pool.cu"),
        functions: &[
            "max_pool_forward_f32",
            "avg_pool_forward_f32",
            "max_pool_backward_f32",
            "avg_pool_backward_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "batchnorm.cu",
        code: include_str!("../../../kernels/batchnorm.cu"),
        functions: &[
            "bn_partial_sums_f32",
            "bn_finish_f64",
            "channel_affine_f32",
            "bn_train_coeffs_f32",
            "bn_inference_coeffs_f32",
            "bn_update_moving_f32",
            "bn_backward_partial_f32",
            "bn_backward_dx_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "dropout.cu",
        code: include_str!("../../../kernels/dropout.cu"),
        functions: &["dropout_f32", "dropout_mask_u8", "uniform_f32"],
        fmad: true,
    },
    KernelSource {
        file: "optim.cu",
        code: include_str!("../../../kernels/optim.cu"),
        functions: &["sgd_f32", "adagrad_f32", "rmsprop_f32", "adam_f32", "adamax_f32", "nadam_f32"],
        fmad: false,
    },
    KernelSource {
        file: "mixed.cu",
        code: include_str!("../../../kernels/mixed.cu"),
        functions: &[
            "cast_f32_to_f16",
            "cast_f16_to_f32",
            "cast_f32_to_bf16",
            "cast_bf16_to_f32",
            "scale_f32",
            "unscale_check_f32",
            "unscale_check_f16_to_f32",
        ],
        fmad: true,
    },
    KernelSource {
        file: "index.cu",
        code: include_str!("../../../kernels/index.cu"),
        functions: &[
            "convert_u8_to_i32",
            "convert_u8_to_i64",
            "convert_u8_to_f32",
            "convert_u8_to_f64",
            "convert_i32_to_u8",
            "convert_i32_to_i64",
            "convert_i32_to_f32",
            "convert_i32_to_f64",
            "convert_i64_to_u8",
            "convert_i64_to_i32",
            "convert_i64_to_f32",
            "convert_i64_to_f64",
            "convert_f32_to_u8",
            "convert_f32_to_i32",
            "convert_f32_to_i64",
            "convert_f32_to_f64",
            "convert_f64_to_u8",
            "convert_f64_to_i32",
            "convert_f64_to_i64",
            "convert_f64_to_f32",
            "index_check_i64",
            "gather_axis_f32",
            "scatter_add_axis_f32",
        ],
        fmad: true,
    },
];

/// The source named `file` (e.g. `"conv.cu"`).
pub fn source(file: &str) -> Option<&'static KernelSource> {
    SOURCES.iter().find(|s| s.file == file)
}

/// The text NVRTC compiles: `#include "x.cuh"` lines replaced by the header's text.
pub fn expand(src: &KernelSource) -> String {
    let mut out = String::with_capacity(src.code.len() + 8192);
    for (i, line) in src.code.lines().enumerate() {
        let header = line
            .trim()
            .strip_prefix("#include")
            .map(|rest| rest.trim().trim_matches('"'))
            .and_then(|name| HEADERS.iter().find(|(n, _)| *n == name));
        match header {
            Some((name, text)) => {
                out.push_str(&format!("#line 1 \"{name}\"\n{text}\n#line {} \"{}\"\n", i + 2, src.file));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The `compute_XY` architecture NVRTC should target for a device of compute capability
/// `(major, minor)`: the device's own when NVRTC supports it, else the newest it supports
/// below it (the driver JIT-compiles the PTX for the device).
pub fn arch_for(major: i32, minor: i32) -> Result<String> {
    let want = major * 10 + minor;
    let supported = supported_archs()?;
    let best = supported.iter().copied().filter(|&a| a <= want).max().ok_or_else(|| {
        Error::invalid(
            "nvrtc",
            format!("NVRTC supports none of the architectures up to sm_{want}: {supported:?}"),
        )
    })?;
    Ok(format!("compute_{best}"))
}

/// The architectures (as `10·major + minor`) this libnvrtc can target.
pub fn supported_archs() -> Result<Vec<i32>> {
    crate::libs::nvrtc()?;
    use cudarc::nvrtc::sys;
    let mut n = 0;
    // SAFETY: libnvrtc is loaded; `n` and the vector outlive the calls and the vector has room
    // for the `n` entries NVRTC reports.
    unsafe {
        if sys::nvrtcGetNumSupportedArchs(&mut n) != sys::nvrtcResult::NVRTC_SUCCESS || n <= 0 {
            return Err(Error::invalid("nvrtc", "nvrtcGetNumSupportedArchs failed"));
        }
        let mut archs = vec![0i32; n as usize];
        if sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(Error::invalid("nvrtc", "nvrtcGetSupportedArchs failed"));
        }
        Ok(archs)
    }
}

/// A compiled source: its PTX text and NVRTC's log (warnings; empty when clean).
#[derive(Debug)]
pub struct Compiled {
    pub ptx: String,
    pub log: String,
}

fn c_chars_to_string(v: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = v.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles `src` for `arch` (e.g. `"compute_80"`), without any process cache.
pub fn compile_uncached(src: &KernelSource, arch: &str) -> Result<Compiled> {
    crate::libs::nvrtc()?;
    use cudarc::nvrtc::result as nv;
    let fail = |log: String| Error::Compile { file: src.file, arch: arch.to_string(), log };
    let text = CString::new(expand(src)).map_err(|_| fail("source contains a NUL byte".into()))?;
    let name = CString::new(src.file).map_err(|_| fail("file name contains a NUL byte".into()))?;
    let prog = nv::create_program(&text, Some(name.as_c_str())).map_err(|e| fail(format!("{e:?}")))?;
    let options = vec![
        format!("--gpu-architecture={arch}"),
        format!("--fmad={}", src.fmad),
        "--std=c++17".to_string(),
        "--extra-device-vectorization".to_string(),
    ];
    // SAFETY: `prog` was just created and is destroyed once below; the options are plain
    // strings.
    let compiled = unsafe { nv::compile_program(prog, &options) };
    // SAFETY: `prog` is a live program whose compilation has run.
    let log = unsafe { nv::get_program_log(prog) }.map(|l| c_chars_to_string(&l)).unwrap_or_default();
    let ptx = match compiled {
        // SAFETY: compilation succeeded, so the program has PTX.
        Ok(()) => {
            unsafe { nv::get_ptx(prog) }.map(|p| c_chars_to_string(&p)).map_err(|e| fail(format!("{e:?}")))
        }
        Err(e) => Err(fail(format!("{e:?}\n{log}"))),
    };
    // SAFETY: destroys the program created above, once.
    let _ = unsafe { nv::destroy_program(prog) };
    let log = log.trim().to_string();
    Ok(Compiled { ptx: ptx?, log })
}

/// Compiles `src` for `arch`, once per process: later calls return the cached PTX.
pub fn compile(src: &'static KernelSource, arch: &str) -> Result<Arc<Compiled>> {
    type Cache = Mutex<HashMap<(&'static str, String), Arc<Compiled>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (src.file, arch.to_string());
    if let Some(hit) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    // Compile outside the lock: other sources can compile meanwhile; a race compiles twice
    // and keeps one.
    let compiled = Arc::new(compile_uncached(src, arch)?);
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    Ok(guard.entry(key).or_insert(compiled).clone())
}

/// The PTX's `.entry` names (the kernels it defines).
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| l.trim().strip_prefix(".visible .entry "))
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or("").to_string())
        .collect()
}
