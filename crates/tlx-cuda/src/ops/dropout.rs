//! Dropout launchers (`kernels/dropout.cu`): inverted dropout whose mask is a pure function
//! of `(seed, offset, element index)` through Philox4x32-10, so the backward pass regenerates
//! the mask (call [`dropout`] on the output gradient with the same key) instead of storing it,
//! and [`crate::philox`] reproduces any mask on the host bit for bit.
//!
//! An element is kept when its uniform is `≥ rate` (`tlx_tensor`'s rule) and kept elements are
//! scaled by `1/(1 − rate)` (computed in f64, rounded once). Use a new `offset` (or seed) per
//! call to get independent masks.

use super::{exact, grid};
use crate::buffer::DeviceBuf;
use crate::context::KernelArgs;
use crate::error::{Error, Result};

const FILE: &str = "dropout.cu";

/// `PhiloxKey` of dropout.cu: the stream `(seed, offset)` split into 32-bit words.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PhiloxKey {
    seed_lo: u32,
    seed_hi: u32,
    offset_lo: u32,
    offset_hi: u32,
}

impl PhiloxKey {
    fn new(seed: u64, offset: u64) -> Self {
        PhiloxKey {
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            offset_lo: offset as u32,
            offset_hi: (offset >> 32) as u32,
        }
    }
}

fn check_rate(op: &'static str, rate: f64) -> Result<()> {
    if (0.0..1.0).contains(&rate) {
        Ok(())
    } else {
        Err(Error::invalid(op, format!("rate must be in [0, 1), got {rate}")))
    }
}

/// `out[i] = keep(i) ? x[i]/(1 − rate) : 0` for the stream `(seed, offset)`; `x`, `out` `[n]`.
/// The backward pass is the same call on the output gradient.
pub fn dropout(
    x: &DeviceBuf<f32>,
    out: &mut DeviceBuf<f32>,
    rate: f64,
    seed: u64,
    offset: u64,
) -> Result<()> {
    const OP: &str = "dropout";
    check_rate(OP, rate)?;
    let ctx = out.context().clone();
    let n = out.len();
    let (px, po) = (exact(&ctx, OP, "x", x, n)?, exact(&ctx, OP, "out", out, n)?);
    if n == 0 {
        return Ok(());
    }
    let scale = (1.0 / (1.0 - rate)) as f32;
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(po).val(n as i64).val(rate as f32).val(scale).val(PhiloxKey::new(seed, offset));
    // SAFETY: dropout_f32(const float* x, float* out, i64 n, float rate, float scale,
    // PhiloxKey): reads x[0..n), writes out[0..n); both hold n f32.
    unsafe { ctx.launch(FILE, "dropout_f32", grid(n), &a) }
}

/// `mask[i] = keep(i)` as 0/1 bytes for the stream `(seed, offset)`.
pub fn dropout_mask(mask: &mut DeviceBuf<u8>, rate: f64, seed: u64, offset: u64) -> Result<()> {
    const OP: &str = "dropout_mask";
    check_rate(OP, rate)?;
    let ctx = mask.context().clone();
    let n = mask.len();
    let pm = mask.arg(&ctx, OP, "mask", n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(pm).val(n as i64).val(rate as f32).val(PhiloxKey::new(seed, offset));
    // SAFETY: dropout_mask_u8(u8* mask, i64 n, float rate, PhiloxKey) writes mask[0..n).
    unsafe { ctx.launch(FILE, "dropout_mask_u8", grid(n), &a) }
}

/// `out[i]` = the uniform in `[0, 1)` of element `i` of the stream `(seed, offset)`
/// ([`crate::philox::uniform`] on the host).
pub fn uniform(out: &mut DeviceBuf<f32>, seed: u64, offset: u64) -> Result<()> {
    let ctx = out.context().clone();
    let n = out.len();
    let po = out.arg(&ctx, "uniform", "out", n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(po).val(n as i64).val(PhiloxKey::new(seed, offset));
    // SAFETY: uniform_f32(float* out, i64 n, PhiloxKey) writes out[0..n).
    unsafe { ctx.launch(FILE, "uniform_f32", grid(n), &a) }
}
