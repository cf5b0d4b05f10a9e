//! The `bpm-edge` command-line tool: native helpers around the same core the
//! worker runs. `check-config` validates a configuration the way the worker
//! build does and prints one `file:line:col: field: message` line per error.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::run(std::env::args().skip(1).collect()));
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use bpm_edge::config::{parse_toml, MetricKind};

    const USAGE: &str = "usage: bpm-edge check-config [FILE]   (default: bpm.toml)";

    pub fn run(args: Vec<String>) -> i32 {
        match args.first().map(String::as_str) {
            Some("check-config") => check_config(args.get(1).map_or("bpm.toml", String::as_str)),
            Some("-h" | "--help" | "help") => {
                println!("{USAGE}");
                0
            }
            Some("-V" | "--version") => {
                println!("bpm-edge {}", env!("CARGO_PKG_VERSION"));
                0
            }
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    }

    fn check_config(path: &str) -> i32 {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: cannot read: {e}");
                return 1;
            }
        };
        match parse_toml(&text, path) {
            Ok(cfg) => {
                let ratios = cfg
                    .metrics
                    .iter()
                    .filter(|m| matches!(m.kind, MetricKind::Ratio(_)))
                    .count();
                println!(
                    "{path}: ok: {} metrics ({} counted, {ratios} ratios), site {:?}, prefix {}",
                    cfg.metrics.len(),
                    cfg.metrics.len() - ratios,
                    cfg.site.name,
                    cfg.site.prefix
                );
                0
            }
            Err(errors) => {
                eprintln!("{errors}");
                1
            }
        }
    }
}
