//! Freezing and unfreezing, the ways transfer learning needs: by name, by glob (`block5_*`),
//! by index range (`model.layers[a..b]`), everything below a layer (`fine_tune_at`), or a
//! layer and everything after it (`unfreeze_from("block5_conv1")`). Selectors look into
//! nested models, so `freeze_below("block5_conv1")` works on `Sequential([vgg16, …])` too.

use super::Model;
use crate::error::{Error, Result};
use crate::layer::Layer;

/// Which layers a trainability change applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSelector {
    /// Every layer.
    All,
    /// Layers with exactly these names.
    Names(Vec<String>),
    /// Layers whose name matches a glob (`*`, `?`, `[a-z]`, `[!0-9]`).
    Glob(String),
    /// Top-level layers with index in `start..end` (like `model.layers[start:end]`).
    Range(usize, usize),
    /// Every layer before the named one, in `model.layers` order (nested models flattened).
    Below(String),
    /// The named layer and every layer after it.
    From(String),
    /// Every layer of a class (`BatchNormalization`), nested models included.
    Class(String),
}

impl LayerSelector {
    /// Parses the command-line form: `all`, `name1,name2`, `glob:block5_*`, `range:0..15`,
    /// `below:block5_conv1`, `from:block5_conv1`.
    pub fn parse(text: &str) -> Result<LayerSelector> {
        let bad = || {
            Error::Msg(format!("bad layer selector '{text}': expected all, NAME[,NAME…], glob:PATTERN, range:A..B, below:NAME, from:NAME or class:CLASS"))
        };
        if text == "all" {
            return Ok(LayerSelector::All);
        }
        if let Some(p) = text.strip_prefix("glob:") {
            return Ok(LayerSelector::Glob(p.into()));
        }
        if let Some(n) = text.strip_prefix("below:") {
            return Ok(LayerSelector::Below(n.into()));
        }
        if let Some(n) = text.strip_prefix("from:") {
            return Ok(LayerSelector::From(n.into()));
        }
        if let Some(c) = text.strip_prefix("class:") {
            return Ok(LayerSelector::Class(c.into()));
        }
        if let Some(r) = text.strip_prefix("range:") {
            let (a, b) = r.split_once("..").ok_or_else(bad)?;
            let a = if a.is_empty() { 0 } else { a.parse().map_err(|_| bad())? };
            let b = if b.is_empty() { usize::MAX } else { b.parse().map_err(|_| bad())? };
            return Ok(LayerSelector::Range(a, b));
        }
        if text.is_empty() || text.contains(':') {
            return Err(bad());
        }
        if text.contains(['*', '?', '[']) {
            return Ok(LayerSelector::Glob(text.into()));
        }
        Ok(LayerSelector::Names(text.split(',').map(|s| s.trim().to_string()).collect()))
    }
}

/// Glob matching with `*`, `?` and character classes `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    fn class_end(p: &[char], i: usize) -> Option<usize> {
        let mut j = i + 1;
        if j < p.len() && (p[j] == '!' || p[j] == '^') {
            j += 1;
        }
        if j < p.len() && p[j] == ']' {
            j += 1;
        }
        while j < p.len() && p[j] != ']' {
            j += 1;
        }
        (j < p.len()).then_some(j)
    }
    fn in_class(p: &[char], c: char) -> bool {
        let (neg, body) = match p.first() {
            Some('!') | Some('^') => (true, &p[1..]),
            _ => (false, p),
        };
        let mut hit = false;
        let mut k = 0;
        while k < body.len() {
            if k + 2 < body.len() && body[k + 1] == '-' {
                hit |= body[k] <= c && c <= body[k + 2];
                k += 3;
            } else {
                hit |= body[k] == c;
                k += 1;
            }
        }
        hit != neg
    }
    // Iterative matcher with backtracking to the last `*`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        let step = if i < p.len() {
            match p[i] {
                '*' => {
                    star = Some((i, j));
                    i += 1;
                    continue;
                }
                '?' => Some(i + 1),
                '[' => match class_end(&p, i) {
                    Some(end) if in_class(&p[i + 1..end], s[j]) => Some(end + 1),
                    Some(_) => None,
                    None => (p[i] == s[j]).then_some(i + 1),
                },
                c => (c == s[j]).then_some(i + 1),
            }
        } else {
            None
        };
        match step {
            Some(next) => {
                i = next;
                j += 1;
            }
            None => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Names of every layer, nested models flattened (a nested model's own name first).
fn flat_names(m: &Model, out: &mut Vec<String>) {
    for l in &m.layers {
        out.push(l.name().to_string());
        if let Some(sub) = l.as_model() {
            flat_names(sub, out);
        }
    }
}

/// Names of the layers of class `class`, nested models included.
fn flat_class_names(m: &Model, class: &str, out: &mut Vec<String>) {
    for l in &m.layers {
        if l.class_name() == class {
            out.push(l.name().to_string());
        }
        if let Some(sub) = l.as_model() {
            flat_class_names(sub, class, out);
        }
    }
}

/// Names of the layers that are not models, nested ones flattened in order.
fn flat_leaf_names(m: &Model, out: &mut Vec<String>) {
    for l in &m.layers {
        match l.as_model() {
            Some(sub) => flat_leaf_names(sub, out),
            None => out.push(l.name().to_string()),
        }
    }
}

impl Model {
    /// Names of all layers in `model.layers` order with nested models' layers in place.
    pub fn all_layer_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        flat_names(self, &mut v);
        v
    }

    /// Sets `trainable = on` for the selected layers and returns how many changed hands.
    /// Turning a layer inside a frozen nested model on also turns that model on (as a
    /// Keras user would after `base.trainable = True; for l in base.layers[:k]: …`).
    pub fn set_trainable_where(&mut self, selector: &LayerSelector, on: bool) -> Result<usize> {
        let names = self.all_layer_names();
        let pick: Vec<String> = match selector {
            LayerSelector::All => names.clone(),
            LayerSelector::Names(ns) => {
                for n in ns {
                    if !names.contains(n) {
                        return Err(self.no_layer(n));
                    }
                }
                ns.clone()
            }
            LayerSelector::Glob(g) => {
                let v: Vec<String> = names.iter().filter(|n| glob_match(g, n)).cloned().collect();
                if v.is_empty() {
                    return Err(Error::Msg(format!("no layer of model '{}' matches '{g}'", self.name())));
                }
                v
            }
            LayerSelector::Range(a, b) => {
                let end = (*b).min(self.layers.len());
                if *a > end {
                    return Err(Error::Msg(format!(
                        "layer range {a}..{b} is outside model '{}' ({} layers)",
                        self.name(),
                        self.layers.len()
                    )));
                }
                self.layers[*a..end].iter().map(|l| l.name().to_string()).collect()
            }
            LayerSelector::Class(c) => {
                let mut v = Vec::new();
                flat_class_names(self, c, &mut v);
                if v.is_empty() {
                    return Err(Error::Msg(format!("model '{}' has no {c} layer", self.name())));
                }
                v
            }
            LayerSelector::Below(n) | LayerSelector::From(n) => {
                // Leaf layers only: a nested model around the boundary must not be switched
                // as a whole.
                let mut leaves = Vec::new();
                flat_leaf_names(self, &mut leaves);
                let at = match leaves.iter().position(|x| x == n) {
                    Some(at) => at,
                    None if names.contains(n) => {
                        // The boundary is a nested model: its first leaf.
                        let sub =
                            self.find_layer(n).and_then(|l| l.as_model()).ok_or_else(|| self.no_layer(n))?;
                        let mut sub_leaves = Vec::new();
                        flat_leaf_names(sub, &mut sub_leaves);
                        sub_leaves
                            .first()
                            .and_then(|f| leaves.iter().position(|x| x == f))
                            .ok_or_else(|| self.no_layer(n))?
                    }
                    None => return Err(self.no_layer(n)),
                };
                let v =
                    if matches!(selector, LayerSelector::Below(_)) { &leaves[..at] } else { &leaves[at..] };
                v.to_vec()
            }
        };
        let mut count = 0;
        set_where(self, &pick, on, &mut count)?;
        Ok(count)
    }

    fn no_layer(&self, n: &str) -> Error {
        Error::Msg(format!("model '{}' has no layer '{n}'", self.name()))
    }

    /// Freezes every layer before `name` and unfreezes `name` and everything after it
    /// (Keras's `fine_tune_at` recipe).
    pub fn fine_tune_from(&mut self, name: &str) -> Result<()> {
        self.set_trainable_where(&LayerSelector::From(name.into()), true)?;
        self.set_trainable_where(&LayerSelector::Below(name.into()), false)?;
        Ok(())
    }

    /// Freezes or unfreezes a whole model (Keras's `model.trainable = on`).
    pub fn set_all_trainable(&mut self, on: bool) -> Result<()> {
        Layer::set_trainable(self, on)
    }
}

/// Applies the change to matching layers; a nested model is switched on when any of its
/// layers is, without touching its other layers.
fn set_where(m: &mut Model, pick: &[String], on: bool, count: &mut usize) -> Result<bool> {
    let mut any_on = false;
    for l in m.layers.iter_mut() {
        let name = l.name().to_string();
        if pick.contains(&name) {
            l.set_trainable(on)?;
            *count += 1;
            any_on |= on;
            continue;
        }
        if let Some(sub) = l.as_model_mut() {
            if set_where(sub, pick, on, count)? {
                sub.base.trainable = true;
                any_on = true;
            }
        }
    }
    Ok(any_on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("block5_*", "block5_conv1"));
        assert!(!glob_match("block5_*", "block4_conv1"));
        assert!(glob_match("block[3-5]_conv?", "block4_conv2"));
        assert!(!glob_match("block[!3-5]_conv?", "block4_conv2"));
        assert!(glob_match("*bn*", "conv2_block1_0_bn"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn selector_parsing() {
        assert_eq!(LayerSelector::parse("all").unwrap(), LayerSelector::All);
        assert_eq!(LayerSelector::parse("range:..15").unwrap(), LayerSelector::Range(0, 15));
        assert_eq!(LayerSelector::parse("block5_*").unwrap(), LayerSelector::Glob("block5_*".into()));
        assert_eq!(LayerSelector::parse("a, b").unwrap(), LayerSelector::Names(vec!["a".into(), "b".into()]));
        assert_eq!(LayerSelector::parse("below:x").unwrap(), LayerSelector::Below("x".into()));
        assert!(LayerSelector::parse("range:a..b").is_err());
        assert!(LayerSelector::parse("what:x").is_err());
        assert_eq!(
            LayerSelector::parse("class:BatchNormalization").unwrap(),
            LayerSelector::Class("BatchNormalization".into())
        );
    }
}
