//! PNG plots of training curves: [`save_history_png`] draws a [`History`] as two panels side
//! by side, the loss (`loss`, `val_loss`) and the accuracy-like metrics (`accuracy`,
//! `val_accuracy`, top-k, AUC, precision, recall…), each with a title, axes, grid, tick labels,
//! an `epoch` axis label and a legend, in a small built-in bitmap font ([`font`]): no font
//! files, no system dependencies.
//!
//! Series are drawn in matplotlib's tab10 colours ([`PALETTE`]): the k-th series of a panel in
//! `PALETTE[k]`, so a quantity and its `val_` counterpart always differ. Lines have no
//! antialiasing (exact colours); every finite point gets a square marker, and a NaN or
//! infinite value is skipped, breaking the line there. The file is written atomically (temp
//! file, fsync, rename).

pub mod font;

use crate::error::{Error, Result};
use crate::fit::History;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use std::path::Path;

/// Width of the image in pixels.
pub const WIDTH: u32 = 1000;
/// Height of the image in pixels.
pub const HEIGHT: u32 = 420;

/// Series colours (matplotlib's tab10): blue, orange, green, red, purple, brown, pink, cyan.
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];

const WHITE: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [40, 40, 40];
const GRID: [u8; 3] = [225, 225, 225];
const FRAME: [u8; 3] = [120, 120, 120];

/// Draws `history` as a PNG of [`WIDTH`]×[`HEIGHT`] and writes it to `path` atomically.
///
/// ```
/// use tlx_train::{History, Logs};
/// let mut h = History::default();
/// h.push(0, Logs::from([("loss".to_string(), 0.9), ("val_loss".to_string(), 1.0)]));
/// h.push(1, Logs::from([("loss".to_string(), 0.5), ("val_loss".to_string(), 0.7)]));
/// let path = std::env::temp_dir().join(format!("tlx-plot-doc-{}.png", std::process::id()));
/// tlx_train::plot::save_history_png(&h, &path)?;
/// assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), tlx_train::Error>(())
/// ```
pub fn save_history_png(history: &History, path: &Path) -> Result<()> {
    let bytes = history_png(history)?;
    weights_tools::safetensors::write_atomic(path, &bytes)?;
    Ok(())
}

/// The PNG bytes of [`save_history_png`]'s plot.
pub fn history_png(history: &History) -> Result<Vec<u8>> {
    let img = render(history);
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .map_err(|e| Error::Invalid(format!("encoding the history plot as PNG: {e}")))?;
    Ok(bytes)
}

/// One curve: its name, its values per epoch, its colour.
struct Series {
    name: String,
    values: Vec<f64>,
    colour: [u8; 3],
}

/// True for the metrics the second panel shows (by the name without `val_`).
fn accuracy_like(base: &str) -> bool {
    ["acc", "auc", "precision", "recall"].iter().any(|k| base.contains(k))
}

/// The panels: (title, series), each series coloured by its position in the panel.
fn panels(history: &History) -> Vec<(&'static str, Vec<Series>)> {
    let keys = history.keys();
    let base_of = |k: &str| k.strip_prefix("val_").unwrap_or(k).to_string();
    let mut loss_names: Vec<String> = Vec::new();
    let mut metric_names: Vec<String> = Vec::new();
    for k in &keys {
        let base = base_of(k);
        let list = if base == "loss" {
            &mut loss_names
        } else if accuracy_like(&base) {
            &mut metric_names
        } else {
            continue;
        };
        // A quantity, then its `val_` counterpart.
        for name in [base.clone(), format!("val_{base}")] {
            if keys.contains(&name) && !list.contains(&name) {
                list.push(name);
            }
        }
    }
    let series = |names: Vec<String>| -> Vec<Series> {
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Series {
                values: history.series(&name),
                colour: PALETTE[i % PALETTE.len()],
                name,
            })
            .collect()
    };
    vec![("loss", series(loss_names)), ("accuracy", series(metric_names))]
}

/// An RGB canvas with bounds-checked drawing.
struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    fn fill(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }

    fn hline(&mut self, x0: i64, x1: i64, y: i64, c: [u8; 3]) {
        self.fill(x0, y, x1 - x0 + 1, 1, c);
    }

    fn vline(&mut self, x: i64, y0: i64, y1: i64, c: [u8; 3]) {
        self.fill(x, y0, 1, y1 - y0 + 1, c);
    }

    /// A 2-pixel-wide line (Bresenham, a 2×2 pen).
    fn line(&mut self, (mut x0, mut y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.fill(x0, y0, 2, 2, c);
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y); returns the width drawn.
    fn text(&mut self, x: i64, y: i64, text: &str, c: [u8; 3], scale: usize) -> i64 {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let gx = x + (i * font::ADVANCE) as i64 * s;
            for (r, bits) in font::glyph(ch).iter().enumerate() {
                for col in 0..font::GLYPH_W {
                    if bits & (1 << (font::GLYPH_W - 1 - col)) != 0 {
                        self.fill(gx + col as i64 * s, y + r as i64 * s, s, s, c);
                    }
                }
            }
        }
        font::text_width(text, scale) as i64
    }
}

/// About five round tick values (1, 2 or 5 times a power of ten apart) covering `lo..=hi`,
/// with the number of decimals that shows them.
fn ticks(lo: f64, hi: f64, want: f64) -> (Vec<f64>, usize) {
    let raw = ((hi - lo) / want).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    let mut v = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 && v.len() < 50 {
        v.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    (v, decimals)
}

fn tick_label(v: f64, decimals: usize) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-4) {
        format!("{v:.1e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// The value range of the finite values, padded; `0..1` when there are none.
fn y_range(series: &[Series]) -> (f64, f64) {
    let finite = series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.06 } else { (hi.abs() * 0.05).max(0.05) };
    (lo - pad, hi + pad)
}

fn render(history: &History) -> RgbImage {
    let mut cv = Canvas { img: RgbImage::from_pixel(WIDTH, HEIGHT, Rgb(WHITE)) };
    let xs: Vec<f64> = history.epochs.iter().map(|&e| e as f64 + 1.0).collect();
    let panel_w = WIDTH as i64 / 2;
    for (p, (title, series)) in panels(history).into_iter().enumerate() {
        let x_off = p as i64 * panel_w;
        draw_panel(&mut cv, x_off, panel_w, title, &xs, &series);
    }
    cv.img
}

fn draw_panel(cv: &mut Canvas, x_off: i64, panel_w: i64, title: &str, xs: &[f64], series: &[Series]) {
    let (left, right) = (x_off + 70, x_off + panel_w - 20);
    let (top, bottom) = (40i64, HEIGHT as i64 - 46);
    let tw = font::text_width(title, 2) as i64;
    cv.text(x_off + 70 + (right - left - tw) / 2, 12, title, INK, 2);

    let (y_lo, y_hi) = y_range(series);
    let (x_lo, x_hi) = match (xs.first(), xs.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        (Some(&a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    // Inset the data area a little so that markers at the ends stay inside the frame.
    let (dl, dr, dt, db) = (left + 8, right - 8, top + 8, bottom - 8);
    let px = |x: f64| dl + ((x - x_lo) / (x_hi - x_lo) * (dr - dl) as f64).round() as i64;
    let py = |y: f64| db - ((y - y_lo) / (y_hi - y_lo) * (db - dt) as f64).round() as i64;

    // Grid and y ticks.
    let (yt, ydec) = ticks(y_lo, y_hi, 5.0);
    for &t in &yt {
        let y = py(t);
        if y < top || y > bottom {
            continue;
        }
        cv.hline(left + 1, right - 1, y, GRID);
        cv.hline(left - 4, left, y, FRAME);
        let label = tick_label(t, ydec);
        let w = font::text_width(&label, 1) as i64;
        cv.text(left - 8 - w, y - 3, &label, INK, 1);
    }
    // X ticks: whole epochs only.
    let (xt, _) = ticks(x_lo, x_hi, 8.0);
    for t in xt.into_iter().filter(|t| t.fract() == 0.0) {
        let x = px(t);
        if x < left || x > right {
            continue;
        }
        cv.vline(x, bottom, bottom + 4, FRAME);
        let label = format!("{t:.0}");
        let w = font::text_width(&label, 1) as i64;
        cv.text(x - w / 2, bottom + 8, &label, INK, 1);
    }
    let xl = "epoch";
    cv.text((left + right - font::text_width(xl, 1) as i64) / 2, bottom + 24, xl, INK, 1);
    // Frame.
    cv.hline(left, right, top, FRAME);
    cv.hline(left, right, bottom, FRAME);
    cv.vline(left, top, bottom, FRAME);
    cv.vline(right, top, bottom, FRAME);

    if series.is_empty() {
        let msg = format!("no {title} values");
        let w = font::text_width(&msg, 1) as i64;
        cv.text((left + right - w) / 2, (top + bottom) / 2 - 3, &msg, FRAME, 1);
        return;
    }
    // Curves: a line between consecutive finite points, a marker on each.
    for s in series {
        let mut prev: Option<(i64, i64)> = None;
        for (&x, &v) in xs.iter().zip(&s.values) {
            if !v.is_finite() {
                prev = None;
                continue;
            }
            let pt = (px(x), py(v));
            if let Some(q) = prev {
                cv.line(q, pt, s.colour);
            }
            cv.fill(pt.0 - 2, pt.1 - 2, 5, 5, s.colour);
            prev = Some(pt);
        }
    }
    // Legend: the corner inside the frame that hides the fewest points (top right first).
    let text_w = series.iter().map(|s| font::text_width(&s.name, 1)).max().unwrap_or(0) as i64;
    let (box_w, box_h) = (text_w + 36, series.len() as i64 * 12 + 8);
    let points: Vec<(i64, i64)> = series
        .iter()
        .flat_map(|s| xs.iter().zip(&s.values).filter(|(_, v)| v.is_finite()).map(|(&x, &v)| (px(x), py(v))))
        .collect();
    let corners = [
        (right - box_w - 6, top + 6),
        (right - box_w - 6, bottom - box_h - 6),
        (left + 6, top + 6),
        (left + 6, bottom - box_h - 6),
    ];
    let hidden = |&(bx, by): &(i64, i64)| {
        points
            .iter()
            .filter(|(x, y)| *x >= bx - 3 && *x <= bx + box_w + 3 && *y >= by - 3 && *y <= by + box_h + 3)
            .count()
    };
    let (bx, by) = corners.iter().copied().min_by_key(|c| hidden(c)).unwrap_or(corners[0]);
    cv.fill(bx, by, box_w, box_h, WHITE);
    cv.hline(bx, bx + box_w - 1, by, FRAME);
    cv.hline(bx, bx + box_w - 1, by + box_h - 1, FRAME);
    cv.vline(bx, by, by + box_h - 1, FRAME);
    cv.vline(bx + box_w - 1, by, by + box_h - 1, FRAME);
    for (i, s) in series.iter().enumerate() {
        let y = by + 6 + i as i64 * 12;
        cv.fill(bx + 6, y + 2, 18, 3, s.colour);
        cv.text(bx + 30, y, &s.name, INK, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Logs;

    fn count(img: &RgbImage, c: [u8; 3]) -> usize {
        img.pixels().filter(|p| p.0 == c).count()
    }

    fn history(rows: &[(f64, f64, f64, f64)]) -> History {
        let mut h = History::default();
        for (e, &(l, vl, a, va)) in rows.iter().enumerate() {
            h.push(
                e,
                Logs::from([
                    ("loss".to_string(), l),
                    ("val_loss".to_string(), vl),
                    ("accuracy".to_string(), a),
                    ("val_accuracy".to_string(), va),
                    ("learning_rate".to_string(), 0.001),
                ]),
            );
        }
        h
    }

    #[test]
    fn png_has_the_size_and_both_series_colours_in_both_panels() {
        let h = history(&[(1.2, 1.3, 0.4, 0.35), (0.8, 1.0, 0.6, 0.5), (0.5, 0.9, 0.8, 0.6)]);
        let dir = std::env::temp_dir().join(format!("tlx-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.png");
        save_history_png(&h, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        let half = WIDTH / 2;
        for (x0, x1) in [(0, half), (half, WIDTH)] {
            let panel = image::imageops::crop_imm(&img, x0, 0, x1 - x0, HEIGHT).to_image();
            assert!(count(&panel, PALETTE[0]) > 50, "train series missing in panel at {x0}");
            assert!(count(&panel, PALETTE[1]) > 50, "val series missing in panel at {x0}");
        }
        // Text (titles, ticks, legend) is drawn in ink.
        assert!(count(&img, INK) > 200);
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("history.png")]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn nan_values_are_skipped_and_curves_move_with_the_data() {
        let nan = f64::NAN;
        let h = history(&[(1.0, nan, 0.5, nan), (nan, nan, 0.6, nan), (0.5, f64::INFINITY, 0.7, nan)]);
        let img = image::load_from_memory(&history_png(&h).unwrap()).unwrap().to_rgb8();
        // `val_accuracy` is all NaN: only its legend swatch (18×3) shows orange on the right.
        let right = image::imageops::crop_imm(&img, WIDTH / 2, 0, WIDTH / 2, HEIGHT).to_image();
        assert_eq!(count(&right, PALETTE[1]), 18 * 3);
        // Loss has two finite points, not adjacent: two markers and no line between them.
        let left = image::imageops::crop_imm(&img, 0, 0, WIDTH / 2, HEIGHT).to_image();
        assert_eq!(count(&left, PALETTE[0]), 2 * 25 + 18 * 3);

        // Rising and falling accuracy put the marker of the last epoch at different heights.
        let up = render(&history(&[(1.0, 1.0, 0.1, 0.1), (1.0, 1.0, 0.9, 0.9)]));
        let down = render(&history(&[(1.0, 1.0, 0.9, 0.9), (1.0, 1.0, 0.1, 0.1)]));
        assert_ne!(up, down);
    }

    #[test]
    fn empty_history_and_missing_metrics_still_draw() {
        let img = render(&History::default());
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        let mut h = History::default();
        h.push(0, Logs::from([("loss".to_string(), 2.0)]));
        let img = render(&h);
        assert!(count(&img, PALETTE[0]) > 0);
        assert_eq!(count(&img, PALETTE[1]), 0);
    }

    #[test]
    fn tick_steps_are_round() {
        let (t, dec) = ticks(0.0, 1.0, 5.0);
        assert_eq!(t, vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(dec, 1);
        assert_eq!(tick_label(t[3], dec), "0.6");
        let (t, dec) = ticks(1.0, 30.0, 8.0);
        assert_eq!((t[0], t[1], dec), (5.0, 10.0, 0));
    }
}
