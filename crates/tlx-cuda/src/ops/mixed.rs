//! Mixed-precision launchers (`kernels/mixed.cu`): f32 ↔ f16/bf16 casts (round to nearest
//! even, as the `half` crate), scaling, and the unscale-and-check of dynamic loss scaling with
//! [`LossScaler`] (Keras's `LossScaleOptimizer` rule).
//!
//! The intended f16 training step: keep f32 master weights; cast them to f16 for the forward
//! pass (GEMMs in f16 with f32 accumulation, [`crate::blas::gemm`]); scale the loss gradient
//! by [`LossScaler::scale`]; backward; [`LossScaler::unscale_and_update`] the f32 gradients
//! (or [`unscale_check_f16`] f16 ones into f32), and apply the optimizer step only when it
//! reports them finite. bf16 has f32's range and needs no loss scaling.

use super::{check_len, exact, grid};
use crate::buffer::DeviceBuf;
use crate::context::{CudaContext, KernelArgs};
use crate::error::{Error, Result};
use half::{bf16, f16};

const FILE: &str = "mixed.cu";

fn cast<S: crate::DeviceElem, D: crate::DeviceElem>(
    op: &'static str,
    function: &'static str,
    src: &DeviceBuf<S>,
    dst: &mut DeviceBuf<D>,
) -> Result<()> {
    let ctx = dst.context().clone();
    let n = dst.len();
    let (ps, pd) = (exact(&ctx, op, "src", src, n)?, exact(&ctx, op, "dst", dst, n)?);
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(ps).ptr(pd).val(n as i64);
    // SAFETY: cast_*(const S* src, D* dst, i64 n) with S, D the element types of the named
    // kernel (u16 stands for f16/bf16 bits): reads src[0..n), writes dst[0..n); both hold n.
    unsafe { ctx.launch(FILE, function, grid(n), &a) }
}

/// `dst[i] = f16(src[i])`.
pub fn cast_f32_to_f16(src: &DeviceBuf<f32>, dst: &mut DeviceBuf<f16>) -> Result<()> {
    cast("cast_f32_to_f16", "cast_f32_to_f16", src, dst)
}

/// `dst[i] = f32(src[i])` (exact).
pub fn cast_f16_to_f32(src: &DeviceBuf<f16>, dst: &mut DeviceBuf<f32>) -> Result<()> {
    cast("cast_f16_to_f32", "cast_f16_to_f32", src, dst)
}

/// `dst[i] = bf16(src[i])`.
pub fn cast_f32_to_bf16(src: &DeviceBuf<f32>, dst: &mut DeviceBuf<bf16>) -> Result<()> {
    cast("cast_f32_to_bf16", "cast_f32_to_bf16", src, dst)
}

/// `dst[i] = f32(src[i])` (exact).
pub fn cast_bf16_to_f32(src: &DeviceBuf<bf16>, dst: &mut DeviceBuf<f32>) -> Result<()> {
    cast("cast_bf16_to_f32", "cast_bf16_to_f32", src, dst)
}

/// `x[i] ← x[i]·s` in place.
pub fn scale(x: &mut DeviceBuf<f32>, s: f32) -> Result<()> {
    let ctx = x.context().clone();
    let n = x.len();
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(x.arg(&ctx, "scale", "x", n)?).val(n as i64).val(s);
    // SAFETY: scale_f32(float* x, i64 n, float s) updates x[0..n) in place.
    unsafe { ctx.launch(FILE, "scale_f32", grid(n), &a) }
}

/// `g[i] ← g[i]·inv_scale` in place; sets `found_inf[0]` to 1 when any result is not finite
/// (it is never cleared here: zero it before a group of calls).
pub fn unscale_check(g: &mut DeviceBuf<f32>, inv_scale: f32, found_inf: &mut DeviceBuf<i32>) -> Result<()> {
    const OP: &str = "unscale_check";
    let ctx = g.context().clone();
    let n = g.len();
    let pf = found_inf.arg(&ctx, OP, "found_inf", 1)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(g.arg(&ctx, OP, "g", n)?).val(n as i64).val(inv_scale).ptr(pf);
    // SAFETY: unscale_check_f32(float* g, i64 n, float, int* found_inf): updates g[0..n) and
    // may write found_inf[0] (the buffer holds at least one i32).
    unsafe { ctx.launch(FILE, "unscale_check_f32", grid(n), &a) }
}

/// `dst[i] = f32(src[i])·inv_scale` from f16 gradients, with the same finiteness flag as
/// [`unscale_check`].
pub fn unscale_check_f16(
    src: &DeviceBuf<f16>,
    dst: &mut DeviceBuf<f32>,
    inv_scale: f32,
    found_inf: &mut DeviceBuf<i32>,
) -> Result<()> {
    const OP: &str = "unscale_check_f16";
    let ctx = dst.context().clone();
    let n = dst.len();
    let (ps, pd) = (exact(&ctx, OP, "src", src, n)?, exact(&ctx, OP, "dst", dst, n)?);
    let pf = found_inf.arg(&ctx, OP, "found_inf", 1)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(ps).ptr(pd).val(n as i64).val(inv_scale).ptr(pf);
    // SAFETY: unscale_check_f16_to_f32(const u16* src, float* dst, i64 n, float, int*):
    // reads n f16, writes n f32, may write found_inf[0].
    unsafe { ctx.launch(FILE, "unscale_check_f16_to_f32", grid(n), &a) }
}

/// Dynamic loss scaling with Keras 3's `LossScaleOptimizer` rule: start at `initial_scale`
/// (2¹⁵); a step with a non-finite gradient is skipped and halves the scale; after
/// `growth_steps` (2000) finite steps in a row the scale doubles.
#[derive(Debug)]
pub struct LossScaler {
    scale: f32,
    growth_steps: u64,
    counter: u64,
    flag: Option<DeviceBuf<i32>>,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler::new(32_768.0, 2000).expect("valid defaults")
    }
}

impl LossScaler {
    /// A scaler starting at `initial_scale` that doubles after `growth_steps` finite steps.
    pub fn new(initial_scale: f32, growth_steps: u64) -> Result<Self> {
        if !(initial_scale.is_finite() && initial_scale > 0.0) || growth_steps == 0 {
            return Err(Error::invalid(
                "LossScaler",
                format!("initial scale {initial_scale} must be positive and growth steps {growth_steps} at least 1"),
            ));
        }
        Ok(LossScaler { scale: initial_scale, growth_steps, counter: 0, flag: None })
    }

    /// The current scale: multiply the loss (or its gradient) by it before backward.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Finite steps since the last change of scale.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Records a step's outcome: doubles the scale after `growth_steps` finite steps, halves
    /// it on a non-finite one.
    pub fn update(&mut self, finite: bool) {
        if !finite {
            self.counter = 0;
            self.scale /= 2.0;
        } else if self.counter == self.growth_steps - 1 {
            self.counter = 0;
            self.scale *= 2.0;
        } else {
            self.counter += 1;
        }
    }

    /// Unscales every gradient in place by `1/scale`, returns whether all of them are finite
    /// (waits for the device), and updates the scale. Skip the optimizer step when it returns
    /// false.
    pub fn unscale_and_update(&mut self, grads: &mut [&mut DeviceBuf<f32>]) -> Result<bool> {
        let Some(ctx) = grads.first().map(|g| g.context().clone()) else {
            self.update(true);
            return Ok(true);
        };
        let inv = 1.0 / self.scale;
        let flag = self.flag_on(&ctx)?;
        for g in grads.iter_mut() {
            unscale_check(g, inv, flag)?;
        }
        let found = flag.to_vec()?;
        check_len("LossScaler", "flag", found.len(), 1)?;
        let finite = found[0] == 0;
        self.update(finite);
        Ok(finite)
    }

    /// The zeroed device flag of `ctx`.
    fn flag_on(&mut self, ctx: &CudaContext) -> Result<&mut DeviceBuf<i32>> {
        if self.flag.as_ref().is_none_or(|f| f.context() != ctx) {
            self.flag = Some(ctx.alloc::<i32>(1)?);
        }
        let flag = self.flag.as_mut().expect("just set");
        flag.zero()?;
        Ok(flag)
    }
}
