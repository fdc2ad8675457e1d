//! EarlyStopping and ReduceLROnPlateau against KERAS-NOTES §2.2's worked examples (checked by
//! running Keras) and a Keras-written conformance sequence, plus baseline, start_from_epoch,
//! mode max, cooldown, min_lr clamping, reuse and bad configurations.

use serde_json::json;
use tlx_train::{EarlyStopping, Error, Logs, ReduceLROnPlateau};

fn logs(name: &str, value: f64) -> Logs {
    Logs::from([(name.to_string(), value)])
}

/// Runs `values` (as `monitor`) through an EarlyStopping built from `config`; returns the
/// epoch it stopped after (if it did), the best epoch and the epochs told to snapshot.
fn early_stop(
    config: serde_json::Value,
    monitor: &str,
    values: &[f64],
) -> (Option<usize>, usize, Vec<usize>) {
    let mut cb = EarlyStopping::from_keras_config(&config).unwrap();
    cb.on_train_begin();
    let mut snapshots = Vec::new();
    for (epoch, v) in values.iter().enumerate() {
        let step = cb.on_epoch_end(epoch, &logs(monitor, *v));
        if step.snapshot_weights {
            snapshots.push(epoch);
        }
        if step.stop {
            assert_eq!(cb.stopped_epoch(), Some(epoch));
            return (Some(epoch), cb.best_epoch(), snapshots);
        }
    }
    assert_eq!(cb.stopped_epoch(), None);
    (None, cb.best_epoch(), snapshots)
}

/// The learning rate after each epoch, the optimizer holding it as float32.
fn lr_sequence(config: serde_json::Value, initial_lr: f64, values: &[f64]) -> Vec<f64> {
    let mut cb = ReduceLROnPlateau::from_keras_config(&config).unwrap();
    cb.on_train_begin();
    let mut lr = initial_lr as f32;
    values
        .iter()
        .enumerate()
        .map(|(epoch, v)| {
            if let Some(new) = cb.on_epoch_end(epoch, &logs("val_loss", *v), lr as f64) {
                lr = new as f32;
            }
            lr as f64
        })
        .collect()
}

const NOTES_SERIES: [f64; 8] = [1.0, 0.8, 0.85, 0.9, 0.79995, 0.7, 0.6, 0.5];

#[test]
fn early_stopping_worked_examples() {
    // KERAS-NOTES §2.2: patience 0 stops at epoch index 2, patience 2 at index 3.
    assert_eq!(early_stop(json!({"patience": 0}), "val_loss", &NOTES_SERIES).0, Some(2));
    assert_eq!(early_stop(json!({"patience": 2}), "val_loss", &NOTES_SERIES), (Some(3), 1, vec![]));
    // Patience 3 reaches epoch 4, whose 0.79995 beats 0.8: training goes on to the end.
    assert_eq!(early_stop(json!({"patience": 3}), "val_loss", &NOTES_SERIES), (None, 7, vec![]));
}

#[test]
fn early_stopping_min_delta_is_absolute() {
    // 0.79995 improves on 0.8 by less than 0.01: with patience 3 it now stops at epoch 4.
    let cfg = json!({"patience": 3, "min_delta": -0.01});
    assert_eq!(early_stop(cfg, "val_loss", &NOTES_SERIES), (Some(4), 1, vec![]));
}

#[test]
fn early_stopping_snapshots_for_restore_best_weights() {
    let cfg = json!({"patience": 2, "restore_best_weights": true});
    let (stop, best, snapshots) = early_stop(cfg, "val_loss", &NOTES_SERIES);
    assert_eq!((stop, best, snapshots), (Some(3), 1, vec![0, 1]));

    // Keras 3 restores at the end even when training never stopped early.
    let mut cb =
        EarlyStopping::from_keras_config(&json!({"patience": 5, "restore_best_weights": true})).unwrap();
    cb.on_train_begin();
    assert!(!cb.restore_at_train_end(), "no snapshot yet");
    for (epoch, v) in [1.0, 0.5, 0.7].iter().enumerate() {
        assert!(!cb.on_epoch_end(epoch, &logs("val_loss", *v)).stop);
    }
    assert!(cb.restore_at_train_end());
    assert_eq!((cb.best_epoch(), cb.best()), (1, Some(0.5)));

    let mut plain = EarlyStopping::from_keras_config(&json!({"patience": 5})).unwrap();
    plain.on_train_begin();
    assert!(!plain.on_epoch_end(0, &logs("val_loss", 1.0)).snapshot_weights);
    assert!(!plain.restore_at_train_end());
}

#[test]
fn early_stopping_baseline_keeps_wait_counting_until_beaten() {
    let series = [1.0, 0.9, 0.95, 0.97, 0.99];
    // Without a baseline the improvements reset wait: patience 2 stops at epoch 3.
    assert_eq!(early_stop(json!({"patience": 2}), "val_loss", &series).0, Some(3));
    // Improvements that do not beat the baseline do not reset wait: stop at the first
    // non-improvement, epoch 2 (wait = 3).
    assert_eq!(
        early_stop(json!({"patience": 2, "baseline": 0.5}), "val_loss", &series),
        (Some(2), 1, vec![])
    );
    // A baseline that is beaten behaves as none.
    assert_eq!(early_stop(json!({"patience": 2, "baseline": 0.95}), "val_loss", &series).0, Some(3));
}

#[test]
fn early_stopping_start_from_epoch_ignores_the_warm_up() {
    let series = [0.1, 0.2, 1.0, 0.9, 0.95];
    assert_eq!(early_stop(json!({}), "val_loss", &series), (Some(1), 0, vec![]));
    assert_eq!(early_stop(json!({"start_from_epoch": 2}), "val_loss", &series), (Some(4), 3, vec![]));
}

#[test]
fn early_stopping_mode_max_with_accuracy() {
    let series = [0.5, 0.6, 0.55, 0.58];
    for cfg in [
        json!({"monitor": "val_accuracy", "patience": 1}),
        json!({"monitor": "val_accuracy", "patience": 1, "mode": "max"}),
    ] {
        assert_eq!(early_stop(cfg, "val_accuracy", &series), (Some(2), 1, vec![]));
    }
    // Forcing min on an accuracy inverts the verdict: epoch 1 (0.6 > 0.5) already counts.
    let cfg = json!({"monitor": "val_accuracy", "patience": 0, "mode": "min"});
    assert_eq!(early_stop(cfg, "val_accuracy", &series).0, Some(1));
}

#[test]
fn early_stopping_skips_epochs_without_the_monitored_value() {
    let mut cb = EarlyStopping::from_keras_config(&json!({"restore_best_weights": true})).unwrap();
    cb.on_train_begin();
    let step = cb.on_epoch_end(0, &logs("loss", 1.0));
    assert_eq!((step.stop, step.snapshot_weights, cb.best()), (false, false, None));
    assert!(!cb.restore_at_train_end());
}

#[test]
fn early_stopping_can_be_reused() {
    let mut cb = EarlyStopping::from_keras_config(&json!({"patience": 0})).unwrap();
    for _ in 0..2 {
        cb.on_train_begin();
        assert!(!cb.on_epoch_end(0, &logs("val_loss", 1.0)).stop);
        assert!(cb.on_epoch_end(1, &logs("val_loss", 2.0)).stop);
        assert_eq!((cb.stopped_epoch(), cb.best_epoch(), cb.best()), (Some(1), 0, Some(1.0)));
    }
}

#[test]
fn reduce_lr_worked_example() {
    // KERAS-NOTES §2.2: lr0 .1, values [1, .9 × 9], patience 2, factor .5.
    let mut values = vec![1.0];
    values.extend([0.9; 9]);
    let got = lr_sequence(json!({"factor": 0.5, "patience": 2}), 0.1, &values);
    let want = [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625];
    assert_eq!(got, want.map(|v: f64| v as f32 as f64));
}

#[test]
fn reduce_lr_cooldown_and_min_lr_as_keras_wrote_them() {
    // The Keras 3.15 conformance case `reduce_lr_on_plateau_factor0.2_patience1_cooldown2_min_lr0.005`.
    let values = [1.0, 0.9, 0.91, 0.92, 0.93, 0.89, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 0.7, 0.71, 0.72, 0.73];
    let cfg = json!({"factor": 0.2, "patience": 1, "cooldown": 2, "min_lr": 0.005});
    let got = lr_sequence(cfg, 0.1, &values);
    let mut want = vec![0.10000000149011612, 0.10000000149011612, 0.019999999552965164, 0.019999999552965164];
    want.extend([0.004999999888241291; 12]);
    assert_eq!(got, want);
}

#[test]
fn reduce_lr_cooldown_pauses_counting() {
    let values = [1.0; 7];
    let got = lr_sequence(json!({"factor": 0.5, "patience": 1, "cooldown": 2}), 0.1, &values);
    let want = [0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125].map(|v: f64| v as f32 as f64);
    assert_eq!(got, want);
    let no_cooldown = lr_sequence(json!({"factor": 0.5, "patience": 1}), 0.1, &values);
    assert_eq!(no_cooldown[2], 0.025f32 as f64);
}

#[test]
fn reduce_lr_clamps_to_min_lr_then_stops_reducing() {
    let mut cb = ReduceLROnPlateau::from_keras_config(&json!({"patience": 1, "min_lr": 0.005})).unwrap();
    cb.on_train_begin();
    assert_eq!(cb.on_epoch_end(0, &logs("val_loss", 1.0), 0.1), None);
    let first = cb.on_epoch_end(1, &logs("val_loss", 1.0), 0.1).unwrap();
    assert!((first - 0.01).abs() < 1e-9);
    assert_eq!(cb.on_epoch_end(2, &logs("val_loss", 1.0), first as f32 as f64), Some(0.005));
    assert_eq!(cb.last_reduction(), Some((2, 0.005)));
    // At min_lr (compared as float32) nothing more happens and wait keeps counting.
    assert_eq!(cb.on_epoch_end(3, &logs("val_loss", 1.0), 0.005f32 as f64), None);
    assert_eq!(cb.on_epoch_end(4, &logs("val_loss", 1.0), 0.005f32 as f64), None);
    assert_eq!(cb.wait(), 2);
}

#[test]
fn reduce_lr_min_delta_default_is_1e_4() {
    // 0.99995 is not 1e-4 better than 1.0: patience 1 reduces at epoch 1.
    let got = lr_sequence(json!({"patience": 1, "factor": 0.5}), 0.1, &[1.0, 0.99995]);
    assert_eq!(got[1], 0.05f32 as f64);
    let got = lr_sequence(json!({"patience": 1, "factor": 0.5, "min_delta": 0}), 0.1, &[1.0, 0.99995]);
    assert_eq!(got[1], 0.1f32 as f64);
}

#[test]
fn reduce_lr_ignores_epochs_without_the_monitored_value() {
    let mut cb = ReduceLROnPlateau::from_keras_config(&json!({"patience": 0})).unwrap();
    assert_eq!(cb.on_epoch_end(0, &logs("loss", 1.0), 0.1), None);
    assert_eq!((cb.best(), cb.wait()), (None, 0));
}

fn config_error(err: Error) -> (String, String) {
    match err {
        Error::Config { field, msg, .. } => (field, msg),
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn bad_configs_are_errors_naming_the_field() {
    for factor in [1.0, 1.5] {
        let (field, msg) =
            config_error(ReduceLROnPlateau::from_keras_config(&json!({ "factor": factor })).unwrap_err());
        assert_eq!(field, "factor");
        assert!(msg.contains(">= 1.0"), "{msg}");
    }
    let (field, msg) = config_error(EarlyStopping::from_keras_config(&json!({"patienc": 3})).unwrap_err());
    assert_eq!(field, "patienc");
    assert!(msg.contains("unknown") && msg.contains("patience"), "{msg}");
    let (field, _) =
        config_error(ReduceLROnPlateau::from_keras_config(&json!({"epsilon": 1e-4})).unwrap_err());
    assert_eq!(field, "epsilon");
    for (cfg, want) in [
        (json!({"patience": -1}), "patience"),
        (json!({"patience": 2.5}), "patience"),
        (json!({"start_from_epoch": "2"}), "start_from_epoch"),
        (json!({"mode": "maximum"}), "mode"),
        (json!({"restore_best_weights": "yes"}), "restore_best_weights"),
        (json!({"baseline": "low"}), "baseline"),
        (json!({"monitor": 3}), "monitor"),
    ] {
        let (field, _) = config_error(EarlyStopping::from_keras_config(&cfg).unwrap_err());
        assert_eq!(field, want, "{cfg}");
    }
    let err = EarlyStopping::from_keras_config(&json!({"monitor": "throughput"})).unwrap_err();
    assert!(matches!(err, Error::UnknownMonitorDirection { .. }), "{err}");
    let err = EarlyStopping::from_keras_config(&json!([1, 2])).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
}

#[test]
fn keras_defaults_and_ignored_arguments() {
    let cb =
        EarlyStopping::from_keras_config(&json!({"verbose": 1, "patience": 3.0, "baseline": null})).unwrap();
    let c = cb.config();
    assert_eq!((c.monitor.as_str(), c.patience, c.min_delta, c.baseline), ("val_loss", 3, 0.0, None));
    let cb = ReduceLROnPlateau::from_keras_config(&json!({"verbose": 0})).unwrap();
    let c = cb.config();
    assert_eq!((c.factor, c.patience, c.min_delta, c.cooldown, c.min_lr), (0.1, 10, 1e-4, 0, 0.0));
}
