//! Fused optimizer updates (`kernels/optim.cu`): one launch per variable updates the weight
//! and its slots in one pass, with gradient clipping and decoupled weight decay folded in, for
//! SGD (momentum, Nesterov), Adagrad, RMSprop (momentum, centered), Adam (AMSGrad; AdamW is
//! Adam with weight decay), Adamax and Nadam.
//!
//! The arithmetic is tlx-optim's (Keras 3's) in f32, operation for operation: every per-step
//! scalar (bias corrections, Nadam's momentum schedule, clipping factors) is computed here on
//! the host exactly as `tlx_optim`'s rules compute it, and optim.cu is compiled without FMA
//! contraction, so a GPU step gives the CPU's f32 results (IEEE division and square root on
//! both sides). The optimizer's bookkeeping (step counter, learning-rate schedule, Nadam's
//! shared `u_product`, EMA, gradient accumulation) stays with the caller.

use super::{exact, grid};
use crate::buffer::DeviceBuf;
use crate::context::KernelArgs;
use crate::error::{Error, Result};

const FILE: &str = "optim.cu";

/// An update rule with its hyper-parameters (Keras's names; f64 like the Python floats, each
/// rounded to f32 as tlx-optim does).
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Slots: `[momentum]` when `momentum != 0`, else none.
    Sgd { momentum: f64, nesterov: bool },
    /// Slots: `[accumulator]`, initialised to `initial_accumulator_value`.
    Adagrad { initial_accumulator_value: f64, epsilon: f64 },
    /// Slots: `[velocity]`, then `momentum` when `momentum > 0`, then `average_gradient` when
    /// centered.
    RmsProp { rho: f64, momentum: f64, epsilon: f64, centered: bool },
    /// Slots: `[momentum, velocity]`, then `velocity_hat` with AMSGrad.
    Adam { beta_1: f64, beta_2: f64, epsilon: f64, amsgrad: bool },
    /// Slots: `[momentum, norm]`.
    Adamax { beta_1: f64, beta_2: f64, epsilon: f64 },
    /// Slots: `[momentum, velocity]`; needs the shared `u_product` ([`nadam_next_u_product`]).
    Nadam { beta_1: f64, beta_2: f64, epsilon: f64 },
}

impl Rule {
    /// The number of slot buffers per variable, in tlx-optim's (Keras's) order.
    pub fn slot_count(&self) -> usize {
        match *self {
            Rule::Sgd { momentum, .. } => usize::from(momentum != 0.0),
            Rule::Adagrad { .. } => 1,
            Rule::RmsProp { momentum, centered, .. } => {
                1 + usize::from(momentum > 0.0) + usize::from(centered)
            }
            Rule::Adam { amsgrad, .. } => 2 + usize::from(amsgrad),
            Rule::Adamax { .. } | Rule::Nadam { .. } => 2,
        }
    }

    /// The initial value of every slot (Adagrad's accumulator; zero otherwise).
    pub fn slot_init(&self) -> f32 {
        match *self {
            Rule::Adagrad { initial_accumulator_value, .. } => initial_accumulator_value as f32,
            _ => 0.0,
        }
    }
}

/// The per-step state the scalars depend on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// This step's learning rate (a schedule's value at `iterations`), f32 as in Keras.
    pub lr: f32,
    /// Completed steps before this one (Keras's `iterations`).
    pub iterations: u64,
    /// Nadam only: the shared momentum product after this step's factor.
    pub u_product: f64,
}

/// What happens to each gradient element before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradClip {
    None,
    /// `g·s` (global_clipnorm's factor, [`GradClip::global_clipnorm`]).
    Scale(f32),
    /// `(g·clipnorm)/divisor`, `divisor = max(‖g‖, clipnorm)` ([`GradClip::clipnorm`]).
    ClipNorm {
        clipnorm: f32,
        divisor: f32,
    },
    /// `clip(g, −v, v)`, NaN propagating.
    ClipValue(f32),
}

fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

impl GradClip {
    /// Keras's `clipnorm` for one variable from the f64 sum of squares of its gradient
    /// ([`super::reduce::sum_squares`]): the norm is that sum rounded to f32, then its f32
    /// square root.
    pub fn clipnorm(clipnorm: f64, sum_squares: f64) -> GradClip {
        let norm = (sum_squares as f32).sqrt();
        let cn = clipnorm as f32;
        GradClip::ClipNorm { clipnorm: cn, divisor: max_nan(norm, cn) }
    }

    /// The global norm of a step's gradients as Keras computes it in float32: every
    /// variable's sum of squares rounded to f32, added in f32, then the f32 square root.
    pub fn global_norm(sum_squares: &[f64]) -> f32 {
        let mut sq = 0f32;
        for &s in sum_squares {
            sq += s as f32;
        }
        sq.sqrt()
    }

    /// Keras's `global_clipnorm` factor `clip·min(1/N, 1/clip) + (N − N)` for the global norm
    /// `N` ([`GradClip::global_norm`]): NaN when N is not finite.
    pub fn global_clipnorm(clip: f64, norm: f32) -> GradClip {
        let inv_n = 1.0 / norm;
        let inv_c = (1.0 / clip) as f32;
        let m = if inv_n.is_nan() || inv_n < inv_c { inv_n } else { inv_c };
        let nan_unless_finite = if norm.is_finite() { 0.0 } else { f32::NAN };
        GradClip::Scale(clip as f32 * m + nan_unless_finite)
    }

    /// Keras's `clipvalue`.
    pub fn clipvalue(v: f64) -> GradClip {
        GradClip::ClipValue(v as f32)
    }
}

/// `Prep` of optim.cu: the gradient transform and the decoupled weight decay
/// `w ← w − w·wd·lr` of one variable.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prep {
    mode: i32,
    a: f32,
    b: f32,
    decay: i32,
    wd: f32,
    lr: f32,
}

impl Prep {
    /// `clip` and, when `weight_decay` applies to this variable, decay by `wd·lr` (both
    /// rounded to f32).
    pub fn new(clip: GradClip, weight_decay: Option<f64>, lr: f32) -> Prep {
        let (mode, a, b) = match clip {
            GradClip::None => (0, 0.0, 0.0),
            GradClip::Scale(s) => (1, s, 0.0),
            GradClip::ClipNorm { clipnorm, divisor } => (2, clipnorm, divisor),
            GradClip::ClipValue(v) => (3, v, 0.0),
        };
        let (decay, wd) = match weight_decay {
            Some(wd) => (1, wd as f32),
            None => (0, 0.0),
        };
        Prep { mode, a, b, decay, wd, lr }
    }
}

/// Nadam's shared product after step `iterations + 1`: `Π·β1·(1 − ½·0.96^t)` in f32 (tlx-optim's
/// `next_u_product` for f32 variables). Start from `u_product = 1`.
pub fn nadam_next_u_product(beta_1: f64, u_product: f64, iterations: u64) -> f64 {
    let t = (iterations + 1) as f32;
    let factor = 1.0f32 - 0.5f32 * 0.96f32.powf(t);
    (((u_product as f32) * (beta_1 as f32)) * factor) as f64
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct RmsPropArgs {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    eps: f32,
    momentum: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AdamArgs {
    alpha: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AdamaxArgs {
    lr: f32,
    one_minus_b1p: f32,
    c1: f32,
    b2: f32,
    eps: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct NadamArgs {
    lr: f32,
    c1: f32,
    c2: f32,
    u_t_1: f32,
    d1: f32,
    k: f32,
    d2: f32,
    one_b2p: f32,
    eps: f32,
}

/// One fused update of the variable `w` with gradient `g` and its slots (in [`Rule`]'s
/// order, each `[n]`, initialised to [`Rule::slot_init`] before the first step), in place.
pub fn update(
    rule: &Rule,
    step: &Step,
    prep: Prep,
    w: &mut DeviceBuf<f32>,
    g: &DeviceBuf<f32>,
    slots: &mut [&mut DeviceBuf<f32>],
) -> Result<()> {
    const OP: &str = "optimizer_update";
    let ctx = w.context().clone();
    let n = w.len();
    if slots.len() != rule.slot_count() {
        return Err(Error::invalid(
            OP,
            format!("{rule:?} takes {} slot buffers, got {}", rule.slot_count(), slots.len()),
        ));
    }
    let pw = exact(&ctx, OP, "weight", w, n)?;
    let pg = exact(&ctx, OP, "gradient", g, n)?;
    let ps = slots.iter().map(|s| exact(&ctx, OP, "slot", s, n)).collect::<Result<Vec<u64>>>()?;
    if n == 0 {
        return Ok(());
    }
    let slot = |i: usize| ps.get(i).copied().unwrap_or(0);
    let lr = step.lr;
    let one = 1.0f32;
    let mut a = KernelArgs::new();
    a.ptr(pw).ptr(pg);
    let function = match *rule {
        Rule::Sgd { momentum, nesterov } => {
            a.ptr(slot(0)).val(n as i64).val(lr).val(momentum as f32).val(nesterov as i32);
            "sgd_f32"
        }
        Rule::Adagrad { epsilon, .. } => {
            a.ptr(slot(0)).val(n as i64).val(lr).val(epsilon as f32);
            "adagrad_f32"
        }
        Rule::RmsProp { rho, momentum, epsilon, centered } => {
            let m = if momentum > 0.0 { slot(1) } else { 0 };
            let avg = if centered { slot(if momentum > 0.0 { 2 } else { 1 }) } else { 0 };
            let args = RmsPropArgs {
                lr,
                rho: rho as f32,
                one_minus_rho: (1.0 - rho) as f32,
                eps: epsilon as f32,
                momentum: momentum as f32,
            };
            a.ptr(slot(0)).ptr(m).ptr(avg).val(n as i64).val(args);
            "rmsprop_f32"
        }
        Rule::Adam { beta_1, beta_2, epsilon, amsgrad } => {
            let t = (step.iterations + 1) as f32;
            let b1p = (beta_1 as f32).powf(t);
            let b2p = (beta_2 as f32).powf(t);
            let alpha = lr * (one - b2p).sqrt() / (one - b1p);
            let args =
                AdamArgs { alpha, c1: (1.0 - beta_1) as f32, c2: (1.0 - beta_2) as f32, eps: epsilon as f32 };
            a.ptr(slot(0)).ptr(slot(1)).ptr(if amsgrad { slot(2) } else { 0 }).val(n as i64).val(args);
            "adam_f32"
        }
        Rule::Adamax { beta_1, beta_2, epsilon } => {
            let t = (step.iterations + 1) as f32;
            let args = AdamaxArgs {
                lr,
                one_minus_b1p: one - (beta_1 as f32).powf(t),
                c1: (1.0 - beta_1) as f32,
                b2: beta_2 as f32,
                eps: epsilon as f32,
            };
            a.ptr(slot(0)).ptr(slot(1)).val(n as i64).val(args);
            "adamax_f32"
        }
        Rule::Nadam { beta_1, beta_2, epsilon } => {
            let half = 0.5f32;
            let local_step = (step.iterations + 1) as f32;
            let next_step = (step.iterations + 2) as f32;
            let decay = 0.96f32;
            let (b1, b2) = (beta_1 as f32, beta_2 as f32);
            let u_t = b1 * (one - half * decay.powf(local_step));
            let u_t_1 = b1 * (one - half * decay.powf(next_step));
            let u_prod_t = step.u_product as f32;
            let u_prod_t_1 = u_prod_t * u_t_1;
            let args = NadamArgs {
                lr,
                c1: one - b1,
                c2: one - b2,
                u_t_1,
                d1: one - u_prod_t_1,
                k: one - u_t,
                d2: one - u_prod_t,
                one_b2p: one - b2.powf(local_step),
                eps: epsilon as f32,
            };
            a.ptr(slot(0)).ptr(slot(1)).val(n as i64).val(args);
            "nadam_f32"
        }
    };
    a.val(prep);
    // SAFETY: the arguments follow each kernel's parameter list in optim.cu (weight, gradient,
    // the rule's slot pointers — null where the rule's options leave a slot out, as the kernels
    // expect — n, the rule's scalars, Prep); the weight, gradient and every slot hold exactly
    // n f32 on this device (checked above) and are distinct buffers (`&mut` borrows).
    unsafe { ctx.launch(FILE, function, grid(n), &a) }
}
