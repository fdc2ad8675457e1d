//! The progress display of `fit`: Keras's bar (`12/40 ━━━━━━──── 3s 75ms/step - loss: 0.41`)
//! redrawn in place on a terminal, or one line per epoch, or nothing. Written to stderr so
//! standard output stays clean for machine-readable results.

use crate::Logs;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// How much `fit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// A bar when stderr is a terminal, nothing otherwise.
    #[default]
    Auto,
    /// Nothing.
    Silent,
    /// The bar, redrawn in place.
    Bar,
    /// One line per epoch.
    EpochLines,
}

/// Formats the metrics part of a line: `loss: 0.4123 - accuracy: 0.8750`.
pub fn format_logs(logs: &Logs) -> String {
    // Keras's order: metrics alphabetically with val_ ones last.
    let mut keys: Vec<&String> = logs.keys().collect();
    keys.sort_by_key(|k| (k.starts_with("val_"), k.as_str().to_string()));
    keys.iter()
        .map(|k| {
            let v = logs[*k];
            if *k == "learning_rate" {
                format!("{k}: {v:.4e}")
            } else {
                format!("{k}: {v:.4}")
            }
        })
        .collect::<Vec<_>>()
        .join(" - ")
}

fn duration(secs: f64) -> String {
    if secs >= 3600.0 {
        format!(
            "{}:{:02}:{:02}",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64,
            (secs % 60.0) as u64
        )
    } else if secs >= 60.0 {
        format!("{}:{:02}", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{}s", secs.round() as u64)
    }
}

/// Progress of one `fit`.
pub struct Progress {
    mode: Verbosity,
    epoch_start: Instant,
    last_draw: Option<Instant>,
    steps: usize,
}

impl Progress {
    /// A display in `mode` (Auto resolved against stderr).
    pub fn new(mode: Verbosity) -> Progress {
        let mode = match mode {
            Verbosity::Auto if std::io::stderr().is_terminal() => Verbosity::Bar,
            Verbosity::Auto => Verbosity::Silent,
            m => m,
        };
        Progress { mode, epoch_start: Instant::now(), last_draw: None, steps: 0 }
    }

    /// The resolved mode.
    pub fn mode(&self) -> Verbosity {
        self.mode
    }

    /// Start of an epoch of `steps` batches.
    pub fn epoch_begin(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.epoch_start = Instant::now();
        self.last_draw = None;
        self.steps = steps;
        if self.mode == Verbosity::Bar {
            eprintln!("Epoch {}/{epochs}", epoch + 1);
        }
    }

    /// After batch `done` (1-based) of the epoch, with the running logs.
    pub fn batch_end(&mut self, done: usize, logs: &Logs) {
        if self.mode != Verbosity::Bar {
            return;
        }
        let now = Instant::now();
        let last = done == self.steps;
        if !last && self.last_draw.is_some_and(|t| now.duration_since(t).as_millis() < 100) {
            return;
        }
        self.last_draw = Some(now);
        let elapsed = now.duration_since(self.epoch_start).as_secs_f64();
        let per_step = elapsed / done.max(1) as f64;
        let width = 20;
        let filled = (done * width).checked_div(self.steps).unwrap_or(width).min(width);
        let bar: String = "━".repeat(filled) + &"─".repeat(width - filled);
        let time = if last {
            format!("{} {:.0}ms/step", duration(elapsed), per_step * 1e3)
        } else {
            format!("ETA {}", duration(per_step * (self.steps - done) as f64))
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{done}/{} {bar} {time} - {}", self.steps, format_logs(logs));
        let _ = err.flush();
    }

    /// End of an epoch with the complete logs (validation included).
    pub fn epoch_end(&mut self, epoch: usize, epochs: usize, logs: &Logs) {
        let elapsed = self.epoch_start.elapsed().as_secs_f64();
        match self.mode {
            Verbosity::Bar => {
                let per_step = elapsed / self.steps.max(1) as f64;
                let bar = "━".repeat(20);
                eprintln!(
                    "\r\x1b[2K{}/{} {bar} {} {:.0}ms/step - {}",
                    self.steps,
                    self.steps,
                    duration(elapsed),
                    per_step * 1e3,
                    format_logs(logs)
                );
            }
            Verbosity::EpochLines => {
                eprintln!("Epoch {}/{epochs} - {} - {}", epoch + 1, duration(elapsed), format_logs(logs));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formatting() {
        let logs = Logs::from([("val_loss".into(), 0.5), ("loss".into(), 0.25), ("accuracy".into(), 0.875)]);
        assert_eq!(format_logs(&logs), "accuracy: 0.8750 - loss: 0.2500 - val_loss: 0.5000");
        assert_eq!(duration(75.0), "1:15");
        assert_eq!(duration(3.4), "3s");
        assert_eq!(Progress::new(Verbosity::Silent).mode(), Verbosity::Silent);
    }
}
