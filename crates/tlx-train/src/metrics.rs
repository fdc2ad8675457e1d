//! Metrics as Keras 3 reports them: running means over an epoch, weighted by sample.
//!
//! `"accuracy"` resolves by shapes like Keras 3's `compile_utils`: a last dimension of 1 →
//! binary accuracy (`p > 0.5`); else integer labels (rank below the prediction's, or a last
//! dimension of 1) → sparse categorical accuracy; else categorical accuracy.

use crate::error::{Error, Result};
use tlx_tensor::{DType, Tensor};

/// A metric by what it computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// `"accuracy"` / `"acc"`: resolved per batch from the shapes.
    Accuracy,
    BinaryAccuracy {
        threshold: f64,
    },
    SparseCategoricalAccuracy,
    CategoricalAccuracy,
    /// The true class is among the k largest predictions (sparse or one-hot labels).
    TopKCategoricalAccuracy {
        k: usize,
    },
    /// Mean of the loss function (any loss) as a metric, e.g. `"mse"`.
    Loss(tlx_nn::Loss),
}

impl Metric {
    /// Parses a Keras metric name (`accuracy`, `acc`, `binary_accuracy`,
    /// `sparse_categorical_accuracy`, `categorical_accuracy`, `top_k_categorical_accuracy`,
    /// `sparse_top_k_categorical_accuracy`, `top5` / `top_k:5`, or a loss name such as `mse`).
    pub fn from_name(name: &str) -> Result<Metric> {
        Ok(match name {
            "accuracy" | "acc" => Metric::Accuracy,
            "binary_accuracy" => Metric::BinaryAccuracy { threshold: 0.5 },
            "sparse_categorical_accuracy" => Metric::SparseCategoricalAccuracy,
            "categorical_accuracy" => Metric::CategoricalAccuracy,
            "top_k_categorical_accuracy" | "sparse_top_k_categorical_accuracy" => {
                Metric::TopKCategoricalAccuracy { k: 5 }
            }
            other => {
                let k = other.strip_prefix("top_k:").or_else(|| other.strip_prefix("top"));
                if let Some(k) = k.and_then(|k| k.parse::<usize>().ok()).filter(|&k| k > 0) {
                    return Ok(Metric::TopKCategoricalAccuracy { k });
                }
                let loss = tlx_nn::Loss::from_keras(&serde_json::Value::String(other.into()))
                    .map_err(|_| Error::Invalid(format!("unknown metric '{other}'")))?;
                Metric::Loss(loss)
            }
        })
    }

    /// The name Keras logs it under.
    pub fn log_name(&self) -> String {
        match self {
            Metric::Accuracy => "accuracy".into(),
            Metric::BinaryAccuracy { .. } => "binary_accuracy".into(),
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy".into(),
            Metric::CategoricalAccuracy => "categorical_accuracy".into(),
            Metric::TopKCategoricalAccuracy { k } if *k == 5 => "top_k_categorical_accuracy".into(),
            Metric::TopKCategoricalAccuracy { k } => format!("top_{k}_accuracy"),
            Metric::Loss(l) => l.name().into(),
        }
    }

    /// Per-sample values of the metric for one batch (`[batch]`, f64).
    pub fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Vec<f64>> {
        let _g = tlx_tensor::no_grad();
        let p = y_pred.detach();
        let rows = p.dims().first().copied().unwrap_or(1).max(1);
        let width = p.numel() / rows;
        let pv = p.to_vec_f64()?;
        let last = p.dims().last().copied().unwrap_or(1);
        let resolved = match self {
            Metric::Accuracy => {
                if last == 1 {
                    Metric::BinaryAccuracy { threshold: 0.5 }
                } else if y_true.rank() < p.rank() || y_true.dims().last() == Some(&1) {
                    Metric::SparseCategoricalAccuracy
                } else {
                    Metric::CategoricalAccuracy
                }
            }
            other => other.clone(),
        };
        let yv = y_true.to_dtype(DType::F64)?.to_vec_f64()?;
        let classes_of = |y: &[f64]| -> Result<Vec<usize>> {
            if y.len() == rows {
                y.iter()
                    .map(|&c| {
                        if c >= 0.0 && (c as usize) < width && c.fract() == 0.0 {
                            Ok(c as usize)
                        } else {
                            Err(Error::Data(format!("label {c} is not a class index below {width}")))
                        }
                    })
                    .collect()
            } else if y.len() == rows * width {
                Ok(y.chunks(width).map(argmax).collect())
            } else {
                Err(Error::Data(format!(
                    "labels of shape {:?} do not fit predictions of shape {:?}",
                    y_true.dims(),
                    p.dims()
                )))
            }
        };
        Ok(match resolved {
            Metric::BinaryAccuracy { threshold } => {
                if yv.len() != pv.len() {
                    return Err(Error::Data(format!(
                        "binary accuracy: labels of shape {:?} vs predictions {:?}",
                        y_true.dims(),
                        p.dims()
                    )));
                }
                let hits: Vec<f64> = pv
                    .iter()
                    .zip(&yv)
                    .map(|(&q, &y)| f64::from(u8::from((q > threshold) == (y > threshold))))
                    .collect();
                hits.chunks(width).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect()
            }
            Metric::SparseCategoricalAccuracy | Metric::CategoricalAccuracy => {
                let truth = classes_of(&yv)?;
                pv.chunks(width).zip(truth).map(|(row, t)| f64::from(u8::from(argmax(row) == t))).collect()
            }
            Metric::TopKCategoricalAccuracy { k } => {
                let truth = classes_of(&yv)?;
                pv.chunks(width)
                    .zip(truth)
                    .map(|(row, t)| {
                        // In the top k when fewer than k predictions are strictly larger (ties count in, as tf.math.in_top_k).
                        let larger = row.iter().filter(|&&v| v > row[t]).count();
                        f64::from(u8::from(larger < k))
                    })
                    .collect()
            }
            Metric::Loss(l) => {
                let mut l = l.clone();
                l.reduction = tlx_nn::losses::Reduction::None;
                l.compute(y_true, &p, None)?.to_vec_f64()?
            }
            Metric::Accuracy => unreachable!("resolved above"),
        })
    }
}

/// Index of the largest value (the first on ties, like NumPy's argmax).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// A running weighted mean (Keras's `Mean` metric).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunningMean {
    pub total: f64,
    pub count: f64,
}

impl RunningMean {
    /// Adds `value` with weight `weight`.
    pub fn add(&mut self, value: f64, weight: f64) {
        self.total += value * weight;
        self.count += weight;
    }

    /// The mean so far (0 before any value, as Keras).
    pub fn mean(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape.to_vec()).unwrap()
    }

    #[test]
    fn accuracy_resolves_by_shape() {
        let p = t(vec![0.1, 0.7, 0.2, 0.8, 0.1, 0.1], &[2, 3]);
        let sparse = Tensor::from_vec(vec![1i64, 2], [2]).unwrap();
        assert_eq!(Metric::Accuracy.per_sample(&sparse, &p).unwrap(), vec![1.0, 0.0]);
        let onehot = t(vec![0., 1., 0., 1., 0., 0.], &[2, 3]);
        assert_eq!(Metric::Accuracy.per_sample(&onehot, &p).unwrap(), vec![1.0, 1.0]);
        let pb = t(vec![0.7, 0.2], &[2, 1]);
        let yb = t(vec![1.0, 1.0], &[2, 1]);
        assert_eq!(Metric::Accuracy.per_sample(&yb, &pb).unwrap(), vec![1.0, 0.0]);
    }

    #[test]
    fn top_k() {
        let p = t(vec![0.1, 0.5, 0.2, 0.2], &[1, 4]);
        let y = Tensor::from_vec(vec![2i64], [1]).unwrap();
        assert_eq!(Metric::TopKCategoricalAccuracy { k: 1 }.per_sample(&y, &p).unwrap(), vec![0.0]);
        // Tied with index 3 for second place: both count as in the top 2.
        assert_eq!(Metric::TopKCategoricalAccuracy { k: 2 }.per_sample(&y, &p).unwrap(), vec![1.0]);
        assert!(Metric::from_name("nonsense_metric").is_err());
        assert_eq!(Metric::from_name("top3").unwrap(), Metric::TopKCategoricalAccuracy { k: 3 });
    }

    #[test]
    fn bad_labels_are_errors() {
        let p = t(vec![0.1, 0.9], &[1, 2]);
        let y = Tensor::from_vec(vec![5i64], [1]).unwrap();
        assert!(Metric::SparseCategoricalAccuracy.per_sample(&y, &p).is_err());
    }

    #[test]
    fn running_mean() {
        let mut m = RunningMean::default();
        assert_eq!(m.mean(), 0.0);
        m.add(1.0, 32.0);
        m.add(0.0, 16.0);
        assert!((m.mean() - 2.0 / 3.0).abs() < 1e-12);
    }
}
