//! `Model::summary()`: Keras's table of layers (name and class), output shapes and parameter
//! counts, closed by the total, trainable and non-trainable parameter counts.

use super::{Model, ModelKind, Source};
use crate::layer::ShapeSpec;

/// `(None, 28, 28, 3)`, Keras's way of printing a shape.
pub fn shape_str(s: &ShapeSpec) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.map_or("None".to_string(), |d| d.to_string())).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

fn with_commas(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: usize) -> String {
    let units = ["B", "KB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
}

impl Model {
    /// The output shape of each layer (its first call), `None` for layers never called.
    pub fn layer_output_shapes(&self) -> Vec<Option<ShapeSpec>> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if let Some(spec) = self.inputs.iter().find(|s| s.layer == Some(i)) {
                    return Some(spec.shape.clone());
                }
                self.nodes.iter().find(|n| n.layer == i).map(|n| n.output_shape.clone())
            })
            .collect()
    }

    /// Keras-style summary table.
    pub fn summary(&self) -> String {
        let shapes = self.layer_output_shapes();
        let functional = self.kind == ModelKind::Functional;
        let mut rows: Vec<[String; 4]> = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let shape = shapes[i].as_ref().map_or("?".to_string(), shape_str);
            let connected = if functional {
                let srcs: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.layer == i)
                    .flat_map(|n| n.inputs.iter())
                    .map(|s| match s {
                        Source::Input(k) => format!("{}[0][0]", self.inputs[*k].name),
                        Source::Node(j) => format!("{}[0][0]", self.layers[self.nodes[*j].layer].name()),
                    })
                    .collect();
                if srcs.is_empty() {
                    "-".to_string()
                } else {
                    srcs.join(", ")
                }
            } else {
                String::new()
            };
            rows.push([
                format!("{} ({})", l.name(), l.class_name()),
                shape,
                with_commas(l.param_count()),
                connected,
            ]);
        }
        let headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"];
        let ncol = if functional { 4 } else { 3 };
        let mut width = [0usize; 4];
        for (c, w) in width.iter_mut().enumerate().take(ncol) {
            *w = rows.iter().map(|r| r[c].chars().count()).chain([headers[c].len()]).max().unwrap_or(0) + 2;
        }
        let total_width: usize = width[..ncol].iter().sum();
        let line = |ch: char| ch.to_string().repeat(total_width);
        let fmt_row = |cells: &[String]| -> String {
            let mut s = String::new();
            for (c, cell) in cells.iter().enumerate().take(ncol) {
                if c == 2 {
                    s.push_str(&format!("{:>w$}  ", cell, w = width[c] - 2));
                } else {
                    s.push_str(&format!("{:<w$}", cell, w = width[c]));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("Model: \"{}\"\n", self.name());
        out.push_str(&line('━'));
        out.push('\n');
        out.push_str(&fmt_row(&headers.map(String::from)));
        out.push('\n');
        out.push_str(&line('━'));
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            out.push_str(&fmt_row(r));
            out.push('\n');
            if i + 1 < rows.len() {
                out.push_str(&line('─'));
                out.push('\n');
            }
        }
        out.push_str(&line('━'));
        out.push('\n');
        let (total, trainable, frozen) = self.param_counts();
        let bytes = |n: usize| human_bytes(n * 4);
        out.push_str(&format!(" Total params: {} ({})\n", with_commas(total), bytes(total)));
        out.push_str(&format!(" Trainable params: {} ({})\n", with_commas(trainable), bytes(trainable)));
        out.push_str(&format!(" Non-trainable params: {} ({})\n", with_commas(frozen), bytes(frozen)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(shape_str(&vec![None, Some(28), Some(3)]), "(None, 28, 3)");
        assert_eq!(shape_str(&vec![None]), "(None,)");
        assert_eq!(with_commas(14714688), "14,714,688");
        assert_eq!(with_commas(999), "999");
        assert_eq!(human_bytes(14714688 * 4), "56.13 MB");
    }
}
