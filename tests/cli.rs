//! `bpm-edge check-config`: exit codes and messages as an operator sees them.

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("bpm-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("c{}.toml", text.len()));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_checks_ok() {
    let (code, out, _) = check(include_str!("../bpm.toml"));
    assert_eq!(code, 0);
    assert!(out.contains("ok: 7 metrics (6 counted, 1 ratios)"), "{out}");
}

#[test]
fn invalid_config_exits_1_naming_line_and_field() {
    let (code, _, err) = check("[[metric]]\nname = \"x\"\nstage = \"revenue\"\ndescription = \"d\"\nmatch = { path = \"/a\", status = \"6xx\" }\n");
    assert_eq!(code, 1);
    assert!(err.contains(":5:"), "{err}");
    assert!(err.contains("metric \"x\".match.status"), "{err}");
}

#[test]
fn missing_file_and_bad_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(["check-config", "/nonexistent/bpm.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
