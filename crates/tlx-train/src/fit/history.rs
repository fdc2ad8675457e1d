//! `History`: the epoch-end logs of a `fit`, as Keras's `History.history`, with CSV and JSON
//! output.

use crate::error::{Error, Result};
use crate::Logs;
use serde_json::{json, Value};
use std::path::Path;

/// Logs of every epoch run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Epoch numbers (0-based, as Keras counts them).
    pub epochs: Vec<usize>,
    /// The logs at the end of each of those epochs.
    pub logs: Vec<Logs>,
}

impl History {
    /// Appends an epoch.
    pub fn push(&mut self, epoch: usize, logs: Logs) {
        self.epochs.push(epoch);
        self.logs.push(logs);
    }

    /// One quantity across epochs (`loss`, `val_accuracy`, …).
    pub fn series(&self, key: &str) -> Vec<f64> {
        self.logs.iter().map(|l| l.get(key).copied().unwrap_or(f64::NAN)).collect()
    }

    /// The last value of a quantity.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.logs.last().and_then(|l| l.get(key).copied())
    }

    /// Every key that appears, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.logs.iter().flat_map(|l| l.keys().cloned()).collect();
        k.sort();
        k.dedup();
        k
    }

    /// Appends another history (a second `fit`, e.g. fine-tuning after feature extraction).
    pub fn extend(&mut self, other: &History) {
        self.epochs.extend(&other.epochs);
        self.logs.extend(other.logs.iter().cloned());
    }

    /// CSV with an `epoch` column then the keys in sorted order (Keras's CSVLogger layout).
    pub fn to_csv(&self) -> String {
        let keys = self.keys();
        let mut out = String::from("epoch");
        for k in &keys {
            out.push(',');
            out.push_str(k);
        }
        out.push('\n');
        for (e, l) in self.epochs.iter().zip(&self.logs) {
            out.push_str(&e.to_string());
            for k in &keys {
                out.push(',');
                if let Some(v) = l.get(k) {
                    out.push_str(&format!("{v}"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// `{"epoch": [...], "loss": [...], ...}` like Keras's `history.history` plus epochs.
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("epoch".into(), json!(self.epochs));
        for k in self.keys() {
            let v: Vec<Value> = self
                .series(&k)
                .into_iter()
                .map(|x| if x.is_finite() { json!(x) } else { Value::Null })
                .collect();
            o.insert(k, Value::Array(v));
        }
        Value::Object(o)
    }

    /// Reads back [`History::to_json`].
    pub fn from_json(v: &Value) -> Result<History> {
        let o = v.as_object().ok_or_else(|| Error::Invalid("history: expected a JSON object".into()))?;
        let epochs: Vec<usize> = o
            .get("epoch")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| e.as_u64().map(|e| e as usize)).collect())
            .unwrap_or_default();
        let mut logs = vec![Logs::new(); epochs.len()];
        for (k, vals) in o {
            if k == "epoch" {
                continue;
            }
            if let Some(a) = vals.as_array() {
                for (i, x) in a.iter().enumerate().take(epochs.len()) {
                    logs[i].insert(k.clone(), x.as_f64().unwrap_or(f64::NAN));
                }
            }
        }
        Ok(History { epochs, logs })
    }

    /// Writes `history.csv` and `history.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        weights_tools::safetensors::write_atomic(&dir.join("history.csv"), self.to_csv().as_bytes())?;
        let json = serde_json::to_string_pretty(&self.to_json()).expect("JSON of numbers");
        weights_tools::safetensors::write_atomic(&dir.join("history.json"), json.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_round_trip() {
        let mut h = History::default();
        h.push(0, Logs::from([("loss".into(), 1.5), ("val_loss".into(), 2.0)]));
        h.push(1, Logs::from([("loss".into(), 1.0), ("val_loss".into(), 1.8)]));
        assert_eq!(h.to_csv(), "epoch,loss,val_loss\n0,1.5,2\n1,1,1.8\n");
        let back = History::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);
        assert_eq!(h.series("loss"), vec![1.5, 1.0]);
        assert_eq!(h.last("val_loss"), Some(1.8));
    }
}
