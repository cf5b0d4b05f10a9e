//! Validates the BPM configuration at build time and hands the worker its
//! compiled form: `$OUT_DIR/bpm-config.json` and the env `BPM_CONFIG_HASH`
//! (`sha256:` of the file, so `sha256sum bpm.toml` shows what is deployed).
//! An invalid config fails the build with one `file:line:col` line per error.
//! The file is `bpm.toml` beside Cargo.toml, or `$BPM_CONFIG` when set.

#[allow(dead_code)]
#[path = "src/count"]
mod count {
    pub mod agent;
}

#[allow(dead_code)]
#[path = "src/time.rs"]
mod time;

// Brings its `rules`, `pattern` and `sitetime` submodules.
#[allow(dead_code)]
#[path = "src/config/mod.rs"]
mod config;

use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BPM_CONFIG");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = match std::env::var("BPM_CONFIG") {
        Ok(p) if !p.is_empty() => root.join(p),
        _ => root.join("bpm.toml"),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => fail(&format!("cannot read {}: {e}", path.display())),
    };
    let shown = path
        .strip_prefix(&root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let cfg = match config::parse_toml(&text, &shown) {
        Ok(c) => c,
        Err(errors) => fail(&errors.to_string()),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("bpm-config.json");
    if let Err(e) = std::fs::write(&out, cfg.to_json()) {
        fail(&format!("cannot write {}: {e}", out.display()));
    }
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=BPM_CONFIG_HASH=sha256:{hex}");
}

fn fail(msg: &str) -> ! {
    for line in msg.lines() {
        println!("cargo:warning={line}");
    }
    eprintln!("invalid bpm-edge configuration:\n{msg}");
    std::process::exit(1);
}
