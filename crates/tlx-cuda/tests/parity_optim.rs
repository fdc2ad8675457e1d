//! CPU-vs-CUDA parity of the fused optimizer updates: every rule of `tlx_optim` (SGD with
//! momentum and Nesterov, Adagrad, RMSprop with momentum and centered, Adam with AMSGrad,
//! AdamW, Adamax, Nadam) with clipnorm, global_clipnorm, clipvalue and weight decay, over
//! several steps of two variables, against `tlx_optim::Optimizer` on CPU tensors. The GPU
//! kernels repeat tlx-optim's f32 arithmetic operation for operation (no FMA contraction), so
//! the bound is 1e-6 (tighter than the 1e-5 of the other ops); the test also prints how many
//! weights differ in any bit.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng};
use tlx_cuda::ops::elementwise::fill;
use tlx_cuda::ops::optim::{nadam_next_u_product, update, GradClip, Prep, Rule, Step};
use tlx_cuda::ops::reduce::sum_squares;
use tlx_cuda::DeviceBuf;
use tlx_optim::Optimizer;
use tlx_tensor::Tensor;

#[derive(Clone, Copy, Debug)]
enum Clip {
    None,
    Norm(f64),
    Global(f64),
    Value(f64),
}

struct Case {
    class: &'static str,
    config: &'static str,
    rule: Rule,
    clip: Clip,
    weight_decay: Option<f64>,
}

fn cases() -> Vec<Case> {
    let c = |class, config, rule, clip, weight_decay| Case { class, config, rule, clip, weight_decay };
    vec![
        c("SGD", "", Rule::Sgd { momentum: 0.0, nesterov: false }, Clip::None, None),
        c("SGD", r#""momentum": 0.9"#, Rule::Sgd { momentum: 0.9, nesterov: false }, Clip::Value(0.05), None),
        c(
            "SGD",
            r#""momentum": 0.8, "nesterov": true"#,
            Rule::Sgd { momentum: 0.8, nesterov: true },
            Clip::None,
            Some(0.01),
        ),
        c(
            "Adagrad",
            "",
            Rule::Adagrad { initial_accumulator_value: 0.1, epsilon: 1e-7 },
            Clip::Norm(0.3),
            None,
        ),
        c(
            "RMSprop",
            "",
            Rule::RmsProp { rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false },
            Clip::None,
            None,
        ),
        c(
            "RMSprop",
            r#""momentum": 0.5"#,
            Rule::RmsProp { rho: 0.9, momentum: 0.5, epsilon: 1e-7, centered: false },
            Clip::Value(0.1),
            None,
        ),
        c(
            "RMSprop",
            r#""centered": true, "rho": 0.8"#,
            Rule::RmsProp { rho: 0.8, momentum: 0.0, epsilon: 1e-7, centered: true },
            Clip::None,
            None,
        ),
        c(
            "RMSprop",
            r#""momentum": 0.9, "centered": true"#,
            Rule::RmsProp { rho: 0.9, momentum: 0.9, epsilon: 1e-7, centered: true },
            Clip::Global(0.5),
            None,
        ),
        c(
            "Adam",
            "",
            Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false },
            Clip::None,
            None,
        ),
        c(
            "Adam",
            r#""amsgrad": true"#,
            Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: true },
            Clip::Global(0.2),
            None,
        ),
        c(
            "AdamW",
            "",
            Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false },
            Clip::None,
            Some(0.004),
        ),
        c(
            "Adam",
            r#""beta_1": 0.8, "beta_2": 0.99"#,
            Rule::Adam { beta_1: 0.8, beta_2: 0.99, epsilon: 1e-7, amsgrad: false },
            Clip::Norm(0.2),
            None,
        ),
        c("Adamax", "", Rule::Adamax { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, Clip::None, None),
        c("Nadam", "", Rule::Nadam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }, Clip::None, None),
        c(
            "Nadam",
            "",
            Rule::Nadam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 },
            Clip::Norm(0.25),
            Some(0.02),
        ),
    ]
}

fn keras_json(case: &Case, lr: f64) -> String {
    let mut fields = vec![format!(r#""learning_rate": {lr}"#)];
    if !case.config.is_empty() {
        fields.push(case.config.to_string());
    }
    match case.clip {
        Clip::None => {}
        Clip::Norm(v) => fields.push(format!(r#""clipnorm": {v}"#)),
        Clip::Global(v) => fields.push(format!(r#""global_clipnorm": {v}"#)),
        Clip::Value(v) => fields.push(format!(r#""clipvalue": {v}"#)),
    }
    if let (Some(wd), false) = (case.weight_decay, case.class == "AdamW") {
        fields.push(format!(r#""weight_decay": {wd}"#));
    }
    format!(r#"{{"class_name": "{}", "config": {{{}}}}}"#, case.class, fields.join(", "))
}

#[test]
fn fused_updates_match_tlx_optim() {
    let Some(ctx) = common::device("optimizers") else { return };
    let mut rng = Rng::new(40);
    let sizes = [1000usize, 4099];
    let lr = 0.01;
    for case in cases() {
        let json = keras_json(&case, lr);
        let mut opt = Optimizer::from_keras_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let w0: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, -1.0, 1.0)).collect();
        let cpu: Vec<Tensor> = w0.iter().map(|w| Tensor::from_vec(w.clone(), [w.len()]).unwrap()).collect();
        let mut gw: Vec<DeviceBuf<f32>> = w0.iter().map(|w| ctx.htod(w).unwrap()).collect();
        let mut slots: Vec<Vec<DeviceBuf<f32>>> = sizes
            .iter()
            .map(|&n| {
                (0..case.rule.slot_count())
                    .map(|_| {
                        let mut s = ctx.alloc::<f32>(n).unwrap();
                        fill(&mut s, case.rule.slot_init()).unwrap();
                        s
                    })
                    .collect()
            })
            .collect();
        let mut u_product = 1.0f64;
        for step in 0..4u64 {
            let grads: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, -0.5, 0.5)).collect();
            let pairs: Vec<(Tensor, Tensor)> = grads
                .iter()
                .zip(&cpu)
                .map(|(g, w)| (Tensor::from_vec(g.clone(), [g.len()]).unwrap(), w.clone()))
                .collect();
            opt.apply_gradients(&pairs).unwrap();

            let gg: Vec<DeviceBuf<f32>> = grads.iter().map(|g| ctx.htod(g).unwrap()).collect();
            if let Rule::Nadam { beta_1, .. } = case.rule {
                u_product = nadam_next_u_product(beta_1, u_product, step);
            }
            let s = Step { lr: lr as f32, iterations: step, u_product };
            let sums: Vec<f64> = gg.iter().map(|g| sum_squares(g).unwrap()).collect();
            for (v, g) in gg.iter().enumerate() {
                let clip = match case.clip {
                    Clip::None => GradClip::None,
                    Clip::Norm(c) => GradClip::clipnorm(c, sums[v]),
                    Clip::Global(c) => GradClip::global_clipnorm(c, GradClip::global_norm(&sums)),
                    Clip::Value(c) => GradClip::clipvalue(c),
                };
                let prep = Prep::new(clip, case.weight_decay, s.lr);
                let mut refs: Vec<&mut DeviceBuf<f32>> = slots[v].iter_mut().collect();
                update(&case.rule, &s, prep, &mut gw[v], g, &mut refs).unwrap();
            }
            for (v, w) in cpu.iter().enumerate() {
                let want = w.to_vec::<f32>().unwrap();
                let got = gw[v].to_vec().unwrap();
                let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                let what = format!("{json} step {step} variable {v}");
                println!("{what}: {differ} of {} weights differ from the CPU in any bit", got.len());
                assert_close(&what, &got, &up(&want), 1e-6);
            }
        }
    }
}

#[test]
fn slot_counts_follow_the_rules() {
    // No device needed.
    assert_eq!(Rule::Sgd { momentum: 0.0, nesterov: false }.slot_count(), 0);
    assert_eq!(Rule::Sgd { momentum: 0.9, nesterov: true }.slot_count(), 1);
    assert_eq!(Rule::RmsProp { rho: 0.9, momentum: 0.9, epsilon: 1e-7, centered: true }.slot_count(), 3);
    assert_eq!(Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: true }.slot_count(), 3);
    assert_eq!(Rule::Adagrad { initial_accumulator_value: 0.1, epsilon: 1e-7 }.slot_init(), 0.1);
    // Keras's global_clipnorm factor is NaN for a non-finite norm.
    assert!(matches!(GradClip::global_clipnorm(1.0, f32::INFINITY), GradClip::Scale(s) if s.is_nan()));
    assert_eq!(GradClip::global_clipnorm(1.0, 0.5), GradClip::Scale(1.0));
    assert_eq!(GradClip::global_clipnorm(1.0, 4.0), GradClip::Scale(0.25));
}
