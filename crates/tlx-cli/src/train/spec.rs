//! The small languages of `tlx train` flags: `key=value` lists, optimizers and schedules by
//! name, heads (`gap,dropout:0.2,dense:128:relu`), augmentation, and callback arguments — each
//! turned into the Keras JSON the library reads, with errors naming the flag and the item.

use serde_json::{json, Map, Value};
use tlx_data::{Augment, FillMode, ShiftRange};

/// Parses `a=1,b=true,c=x` into a JSON object (numbers, booleans, `null`, strings, and
/// `;`-separated number lists such as `boundaries=100;200`).
pub fn key_values(flag: &str, text: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| format!("{flag}: '{item}' is not key=value"))?;
        out.insert(k.trim().to_string(), scalar(v.trim()));
    }
    Ok(out)
}

fn scalar(v: &str) -> Value {
    if v.contains(';') {
        let parts: Vec<Value> = v.split(';').map(|p| scalar(p.trim())).collect();
        return Value::Array(parts);
    }
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" | "none" | "None" => Value::Null,
        _ => v
            .parse::<i64>()
            .map(|i| json!(i))
            .or_else(|_| v.parse::<f64>().map(|f| json!(f)))
            .unwrap_or_else(|_| Value::String(v.to_string())),
    }
}

/// Keras's optimizer class for a short name.
fn optimizer_class(name: &str) -> Result<&'static str, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "sgd" => "SGD",
        "adagrad" => "Adagrad",
        "rmsprop" => "RMSprop",
        "adam" => "Adam",
        "adamw" => "AdamW",
        "adamax" => "Adamax",
        "nadam" => "Nadam",
        other => {
            return Err(format!(
                "--optimizer: unknown optimizer '{other}' (sgd, adagrad, rmsprop, adam, adamw, adamax, nadam)"
            ))
        }
    })
}

/// A schedule `name[:key=value,…]` around the initial learning rate `lr`, as Keras JSON.
pub fn schedule(text: &str, lr: f64, steps_per_epoch: usize, epochs: usize) -> Result<Value, String> {
    let (name, args) = text.split_once(':').unwrap_or((text, ""));
    let mut cfg = key_values("--schedule", args)?;
    let total = (steps_per_epoch * epochs).max(1) as i64;
    let class = match name {
        "exponential" => {
            cfg.entry("decay_steps").or_insert(json!(steps_per_epoch.max(1)));
            cfg.entry("decay_rate").or_insert(json!(0.9));
            cfg.insert("initial_learning_rate".into(), json!(lr));
            "ExponentialDecay"
        }
        "inverse_time" | "power" => {
            cfg.entry("decay_steps").or_insert(json!(steps_per_epoch.max(1)));
            cfg.entry("decay_rate").or_insert(json!(0.5));
            cfg.insert("initial_learning_rate".into(), json!(lr));
            "InverseTimeDecay"
        }
        "polynomial" => {
            cfg.entry("decay_steps").or_insert(json!(total));
            cfg.insert("initial_learning_rate".into(), json!(lr));
            "PolynomialDecay"
        }
        "cosine" => {
            cfg.entry("decay_steps").or_insert(json!(total));
            cfg.insert("initial_learning_rate".into(), json!(lr));
            "CosineDecay"
        }
        "cosine_restarts" => {
            cfg.entry("first_decay_steps").or_insert(json!(steps_per_epoch.max(1)));
            cfg.insert("initial_learning_rate".into(), json!(lr));
            "CosineDecayRestarts"
        }
        "piecewise" => {
            if !cfg.contains_key("boundaries") || !cfg.contains_key("values") {
                return Err("--schedule piecewise needs boundaries=A;B and values=X;Y;Z".into());
            }
            "PiecewiseConstantDecay"
        }
        "onecycle" | "1cycle" => {
            cfg.entry("total_steps").or_insert(json!(total));
            cfg.entry("max_learning_rate").or_insert(json!(lr));
            "OneCycle"
        }
        other => {
            return Err(format!(
                "--schedule: unknown schedule '{other}' (exponential, inverse_time, polynomial, cosine, cosine_restarts, piecewise, onecycle)"
            ))
        }
    };
    Ok(json!({"class_name": class, "config": Value::Object(cfg)}))
}

/// The optimizer as Keras JSON: `name`, learning rate (a number or a schedule) and extra
/// `key=value` arguments.
pub fn optimizer(name: &str, lr: Value, args: &str) -> Result<Value, String> {
    let class = optimizer_class(name)?;
    let mut cfg = key_values("--opt", args)?;
    cfg.insert("learning_rate".into(), lr);
    Ok(json!({"class_name": class, "config": Value::Object(cfg)}))
}

/// One head layer: `gap`, `gmp`, `flatten`, `dropout:R`, `dense:UNITS[:ACTIVATION]`,
/// `bn`, as a Keras `{class_name, config}`; names are `head_<kind>_<i>`.
pub fn head_layer(item: &str, i: usize) -> Result<Value, String> {
    let parts: Vec<&str> = item.split(':').collect();
    let name = |kind: &str| format!("head_{kind}_{i}");
    Ok(match parts.as_slice() {
        ["gap"] | ["global_average_pooling"] => {
            json!({"class_name": "GlobalAveragePooling2D", "config": {"name": name("gap")}})
        }
        ["gmp"] | ["global_max_pooling"] => {
            json!({"class_name": "GlobalMaxPooling2D", "config": {"name": name("gmp")}})
        }
        ["flatten"] => json!({"class_name": "Flatten", "config": {"name": name("flatten")}}),
        ["bn"] | ["batchnorm"] => json!({"class_name": "BatchNormalization", "config": {"name": name("bn")}}),
        ["dropout", r] => {
            let rate: f64 = r.parse().map_err(|_| format!("--head: bad dropout rate in '{item}'"))?;
            json!({"class_name": "Dropout", "config": {"name": name("dropout"), "rate": rate}})
        }
        ["dense", u] | ["dense", u, _] => {
            let units: u64 = u.parse().map_err(|_| format!("--head: bad unit count in '{item}'"))?;
            let act = parts.get(2).copied().unwrap_or("relu");
            json!({"class_name": "Dense", "config": {"name": name("dense"), "units": units, "activation": act}})
        }
        _ => {
            return Err(format!(
                "--head: unknown item '{item}' (gap, gmp, flatten, bn, dropout:R, dense:UNITS[:ACTIVATION])"
            ))
        }
    })
}

/// `rotation=15,shift=0.1,zoom=0.1,shear=5,flip=horizontal|vertical|both,brightness=0.8;1.2,
/// fill=nearest|constant|reflect|wrap,cval=0` as Keras's ImageDataGenerator arguments.
pub fn augment(text: &str) -> Result<Augment, String> {
    let mut a = Augment::default();
    for (k, v) in key_values("--augment", text)? {
        let num = || v.as_f64().ok_or_else(|| format!("--augment: {k} needs a number, got {v}"));
        match k.as_str() {
            "rotation" | "rotation_range" => a.rotation_range = num()?,
            "shift" => {
                a.width_shift_range = ShiftRange::Uniform(num()?);
                a.height_shift_range = ShiftRange::Uniform(num()?);
            }
            "width_shift" | "width_shift_range" => a.width_shift_range = ShiftRange::Uniform(num()?),
            "height_shift" | "height_shift_range" => a.height_shift_range = ShiftRange::Uniform(num()?),
            "shear" | "shear_range" => a.shear_range = num()?,
            "zoom" | "zoom_range" => a.zoom_range = Augment::zoom(num()?),
            "channel_shift" | "channel_shift_range" => a.channel_shift_range = num()?,
            "flip" => match v.as_str() {
                Some("horizontal") => a.horizontal_flip = true,
                Some("vertical") => a.vertical_flip = true,
                Some("both") => {
                    a.horizontal_flip = true;
                    a.vertical_flip = true;
                }
                _ => return Err(format!("--augment: flip must be horizontal, vertical or both, got {v}")),
            },
            "brightness" | "brightness_range" => {
                let r: Vec<f64> =
                    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
                if r.len() != 2 {
                    return Err("--augment: brightness needs LOW;HIGH, e.g. brightness=0.8;1.2".into());
                }
                a.brightness_range = Some([r[0], r[1]]);
            }
            "fill" | "fill_mode" => {
                a.warp.fill_mode = match v.as_str() {
                    Some("nearest") => FillMode::Nearest,
                    Some("constant") => FillMode::Constant,
                    Some("reflect") => FillMode::Reflect,
                    Some("wrap") => FillMode::Wrap,
                    _ => {
                        return Err(format!(
                            "--augment: fill must be nearest, constant, reflect or wrap, got {v}"
                        ))
                    }
                }
            }
            "cval" => a.warp.cval = num()?,
            other => return Err(format!("--augment: unknown key '{other}'")),
        }
    }
    a.validate().map_err(|e| format!("--augment: {e}"))?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_languages() {
        let kv = key_values("--opt", "momentum=0.9,nesterov=true,name=x,b=1;2").unwrap();
        assert_eq!(Value::Object(kv), json!({"momentum": 0.9, "nesterov": true, "name": "x", "b": [1, 2]}));
        assert!(key_values("--opt", "momentum").is_err());
        let o = optimizer("sgd", json!(0.01), "momentum=0.9").unwrap();
        assert_eq!(o["class_name"], "SGD");
        assert!(tlx_optim::Optimizer::from_keras_config(&o).is_ok());
        assert!(optimizer("lion", json!(0.1), "").is_err());
        let s = schedule("cosine", 0.1, 10, 5).unwrap();
        assert_eq!(s["config"]["decay_steps"], 50);
        assert!(tlx_optim::Schedule::from_keras_config(&s).is_ok());
        assert!(schedule("piecewise:boundaries=10", 0.1, 1, 1).is_err());
        assert_eq!(head_layer("dense:64:selu", 2).unwrap()["config"]["activation"], "selu");
        assert!(head_layer("conv:3", 0).is_err());
        let a = augment("rotation=15,flip=horizontal,zoom=0.1,brightness=0.8;1.2,fill=reflect").unwrap();
        assert!(a.horizontal_flip && a.rotation_range == 15.0 && a.brightness_range == Some([0.8, 1.2]));
        assert!(augment("flip=sideways").is_err());
    }
}
