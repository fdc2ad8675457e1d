//! Runs the Fashion-MNIST transfer experiment: `cargo run --release -p tlx-train --example
//! transfer_demo -- [DATA_DIR] [MAX_TRAIN_IMAGES]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "data/fashion-mnist".into());
    let mut cfg = tlx_train::transfer_demo::DemoConfig::new(dir);
    cfg.max_train_images = args.get(2).and_then(|s| s.parse().ok());
    cfg.verbose = tlx_train::Verbosity::EpochLines;
    match tlx_train::transfer_demo::run(&cfg) {
        Ok(r) => println!("{}\n{}", r.table(), r.to_json()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
