//! `bpm-edge discover` on a real access log with a spliced outage (the
//! blog's successful responses removed for two hours, see `spliced_log`):
//! the removed signature ranks first, its rule fires during the outage and
//! nowhere else, and its TOML, appended to the shipped `bpm.toml`, passes
//! `check-config`. Run through the command an operator uses.

use std::path::PathBuf;
use std::process::{Command, Output};

mod spliced_log;

use spliced_log::{blog, built_log, outage_range};

fn incident_arg() -> String {
    let (from, to) = outage_range();
    format!(
        "{}..{}",
        bpm_edge::time::format_time(from),
        bpm_edge::time::format_time(to)
    )
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpm-edge-discover-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bpm_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(args)
        .output()
        .unwrap()
}

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bpm.toml");

#[test]
fn the_removed_signature_ranks_first_and_its_toml_passes_check_config() {
    let dir = scratch("spliced");
    let log = dir.join("access.log");
    std::fs::write(&log, built_log(Some(blog)).join("\n")).unwrap();
    let log = log.to_str().unwrap();
    let incident = incident_arg();

    let discover = |extra: &[&str]| {
        let mut args = vec!["discover", "--config", SHIPPED, "--log", log];
        args.extend(["--incident", &incident]);
        args.extend(extra);
        bpm_edge(&args)
    };
    let out = discover(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let best = &found["candidates"][0];
    assert_eq!(best["signature"], "GET /blog/** 2xx", "{found:#}");
    assert_eq!(best["during"], 0);
    let (from, to) = outage_range();
    let fired = best["fired"].as_i64().expect("fired during the outage");
    assert!((from..to).contains(&fired), "{best:#}");
    assert_eq!(best["false_alerts"].as_array().map(Vec::len), Some(0));
    // The posts inside `/blog/**` fell as much: not proposed apart.
    for c in found["candidates"].as_array().unwrap() {
        let s = c["signature"].as_str().unwrap();
        assert!(
            !s.starts_with("GET /blog/") || s == "GET /blog/** 2xx",
            "{s}"
        );
    }
    assert_eq!(found["compared"].as_array().map(Vec::len), Some(3));

    let toml = best["toml"].as_str().unwrap();
    assert!(toml.contains(r#"path = "/blog/**""#), "{toml}");
    let pasted = dir.join("bpm.toml");
    let shipped = std::fs::read_to_string(SHIPPED).unwrap();
    std::fs::write(&pasted, format!("{shipped}\n{toml}")).unwrap();
    let check = bpm_edge(&["check-config", pasted.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The text report: the ranking table and the ready TOML.
    let out = discover(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| 1 | GET /blog/** 2xx | 0 |"), "{text}");
    assert!(
        text.contains("[[metric]]\nname = \"get_blog_2xx\""),
        "{text}"
    );
    assert!(text.contains("name = \"get_blog_2xx_drop\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_log_without_the_outage_proposes_nothing() {
    let dir = scratch("clean");
    let log = dir.join("access.log");
    std::fs::write(&log, built_log(None).join("\n")).unwrap();
    let out = bpm_edge(&[
        "discover",
        "--config",
        SHIPPED,
        "--log",
        log.to_str().unwrap(),
        "--incident",
        &incident_arg(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["candidates"], serde_json::json!([]), "{found:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_incident_range_is_a_usage_error() {
    let out = bpm_edge(&["discover", "--log", "x.log", "--incident", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--incident takes FROM..TO"));
}
