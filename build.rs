//! Validates the BPM configuration at build time and hands the worker its
//! compiled form (a `config::sites::Deployment`: one site or several):
//! `$OUT_DIR/bpm-config.json` and the env `BPM_CONFIG_HASH`
//! (`sha256:` of the file, so `sha256sum bpm.toml` shows what is deployed).
//! An invalid config fails the build with one `file:line:col` line per error.
//! The file is `bpm.toml` beside Cargo.toml, or `$BPM_CONFIG` when set.
//!
//! Also indexes the vendored user-agent list (with our markers) and writes
//! the index as Rust statics into `$OUT_DIR/agent_index.rs`, which
//! `src/count/agent_table.rs` includes: a fresh isolate builds nothing. A
//! list whose tables do not fit their integer types fails the build.

#[allow(dead_code)]
#[path = "src/count"]
mod count {
    // `agent` for `AgentKind` (the config checker) and the list's text;
    // `agent_list` for the builder.
    pub mod agent;
    pub mod agent_list;

    /// Stand-in for `src/count/agent_table.rs`, which includes the file this
    /// script writes: an empty index (nothing here classifies an agent).
    pub mod agent_table {
        use super::agent_list::AgentIndex;

        pub fn shipped_list() -> &'static AgentIndex<'static> {
            &AgentIndex::EMPTY
        }
    }
}

#[allow(dead_code)]
#[path = "src/time.rs"]
mod time;

// Brings its `rules`, `pattern`, `sites` and `sitetime` submodules.
#[allow(dead_code, unused_imports)]
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
    let deployment = match config::parse_deployment(&text, &shown) {
        Ok(c) => c,
        Err(errors) => fail(&errors.to_string()),
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let out = out_dir.join("bpm-config.json");
    if let Err(e) = std::fs::write(&out, deployment.to_json()) {
        fail(&format!("cannot write {}: {e}", out.display()));
    }
    write_agent_index(&out_dir);
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=BPM_CONFIG_HASH=sha256:{hex}");
}

/// Builds the user-agent list's index and writes it as Rust source.
fn write_agent_index(out_dir: &std::path::Path) {
    // The list is included by `agent.rs` (so a change recompiles this
    // script too); said here for cargo's own record.
    println!("cargo:rerun-if-changed=data/crawler-user-agents/patterns.txt");
    let list = match count::agent_list::AgentList::with_own_markers(count::agent::LIST_TEXT) {
        Ok(l) => l,
        Err(e) => fail_with("cannot index the user-agent list", &e),
    };
    let out = out_dir.join("agent_index.rs");
    if let Err(e) = std::fs::write(&out, list.to_rust()) {
        fail_with(
            "cannot index the user-agent list",
            &format!("cannot write {}: {e}", out.display()),
        );
    }
}

fn fail(msg: &str) -> ! {
    fail_with("invalid bpm-edge configuration", msg)
}

fn fail_with(heading: &str, msg: &str) -> ! {
    for line in msg.lines() {
        println!("cargo:warning={line}");
    }
    eprintln!("{heading}:\n{msg}");
    std::process::exit(1);
}
