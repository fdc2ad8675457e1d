//! Runs the Fashion-MNIST transfer experiment: `cargo run --release -p tlx-train --example
//! transfer_demo -- [DATA_DIR] [MAX_TRAIN_IMAGES|all] [SEED...]`: one JSON line per seed.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "data/fashion-mnist".into());
    let mut cfg = tlx_train::transfer_demo::DemoConfig::new(dir);
    cfg.max_train_images = args.get(2).and_then(|s| s.parse().ok());
    let seeds: Vec<u64> = args.iter().skip(3).filter_map(|s| s.parse().ok()).collect();
    let seeds = if seeds.is_empty() { vec![cfg.seed] } else { seeds };
    for seed in seeds {
        cfg.seed = seed;
        match tlx_train::transfer_demo::run(&cfg) {
            Ok(r) => {
                let mut j = r.to_json();
                j["seed"] = serde_json::json!(seed);
                println!("{j}");
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
