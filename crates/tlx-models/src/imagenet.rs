//! The 1000 ImageNet-1k classes in the order of Keras's `imagenet_class_index.json` (index →
//! WordNet id and Keras's short name, e.g. 0 → `("n01440764", "tench")`, 207 →
//! `("n02099601", "golden_retriever")`), and Keras's `decode_predictions`.
//!
//! The table is `data/imagenet_class_index.tsv`, embedded in the binary; its header says where
//! it came from (Keras's own class index, shipped in the keras-hub wheel) and its licence.
//! Two names occur twice, as in Keras: `crane` (134 the bird, 517 the machine) and `maillot`
//! (638, 639); use the wnid to tell them apart.

use crate::{Error, Result};
use std::sync::OnceLock;
use tlx_tensor::Tensor;

/// How many classes an ImageNet classifier predicts.
pub const NUM_CLASSES: usize = 1000;

/// `wnid<TAB>name` per class, in index order, after `#` comment lines.
const CLASS_INDEX_TSV: &str = include_str!("../data/imagenet_class_index.tsv");

/// Every class as `(wnid, name)`, in index order.
pub fn classes() -> &'static [(&'static str, &'static str)] {
    static TABLE: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        CLASS_INDEX_TSV
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| line.split_once('\t'))
            .collect()
    })
}

/// The class with that index as `(wnid, name)`; `None` past 999.
pub fn class(index: usize) -> Option<(&'static str, &'static str)> {
    classes().get(index).copied()
}

/// The index of the class with that WordNet id (e.g. `n02099601` → 207).
pub fn index_of_wnid(wnid: &str) -> Option<usize> {
    classes().iter().position(|(w, _)| *w == wnid)
}

/// One decoded prediction: a class and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The class index (0–999).
    pub index: usize,
    /// The WordNet id, e.g. `n01440764`.
    pub wnid: &'static str,
    /// Keras's short name, e.g. `tench`.
    pub name: &'static str,
    /// The score at that index, as given.
    pub score: f64,
}

/// Keras's `decode_predictions(preds, top)`: for each row of `probs` (`[n, 1000]`, any float
/// or integer dtype), the `top` highest-scoring classes, best first.
///
/// Ties keep the lower class index first (Keras leaves their order to NumPy's unstable
/// `argsort`). `top` larger than 1000 gives all 1000 classes; `top = 0` gives empty lists (in
/// Keras, `argsort()[-0:]` would return every class). A NaN score is an error, naming the row
/// and column, since no order of NaN would mean anything.
pub fn decode_predictions(probs: &Tensor, top: usize) -> Result<Vec<Vec<Prediction>>> {
    const OP: &str = "decode_predictions";
    let dims = probs.dims();
    if dims.len() != 2 || dims[1] != NUM_CLASSES {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "expects a batch of predictions (a 2D array of shape (samples, {NUM_CLASSES})), got shape {}",
                probs.shape()
            ),
        });
    }
    let table = classes();
    if table.len() != NUM_CLASSES {
        return Err(Error::Invalid {
            op: OP,
            msg: format!("the embedded class table has {} classes, not {NUM_CLASSES}", table.len()),
        });
    }
    let values = probs.to_vec_f64()?;
    let keep = top.min(NUM_CLASSES);
    values
        .chunks_exact(NUM_CLASSES)
        .enumerate()
        .map(|(row, scores)| {
            if let Some(col) = scores.iter().position(|s| s.is_nan()) {
                return Err(Error::Invalid {
                    op: OP,
                    msg: format!("score at row {row}, class {col} is NaN"),
                });
            }
            let mut order: Vec<usize> = (0..NUM_CLASSES).collect();
            // Stable: equal scores stay in ascending index order.
            order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal));
            Ok(order
                .into_iter()
                .take(keep)
                .map(|index| {
                    let (wnid, name) = table[index];
                    Prediction { index, wnid, name, score: scores[index] }
                })
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_class_once() {
        assert_eq!(classes().len(), NUM_CLASSES);
        let mut wnids: Vec<&str> = classes().iter().map(|(w, _)| *w).collect();
        // Keras's index order is the sorted order of the wnids.
        assert!(wnids.windows(2).all(|w| w[0] < w[1]));
        wnids.dedup();
        assert_eq!(wnids.len(), NUM_CLASSES);
        assert!(classes().iter().all(|(w, n)| w.len() == 9 && w.starts_with('n') && !n.is_empty()));
    }
}
