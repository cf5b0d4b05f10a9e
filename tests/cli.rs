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
    assert!(
        out.contains("ok: 8 metrics (7 counted, 1 ratios), 6 alert rules, 4 receivers"),
        "{out}"
    );
    assert!(out.contains("time zone Europe/Berlin"), "{out}");
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

/// Five weeks of 15-minute buckets at 200, a 2-hour outage, then recovery.
fn outage_csv() -> String {
    let mut text = String::from("timestamp,value\n");
    let start = 1_400_000_400i64; // aligned to 15 minutes
    let normal = 5 * 7 * 96;
    for i in 0..normal + 8 + 12 {
        let t = chrono::DateTime::from_timestamp(start + i * 900, 0).unwrap();
        let v = if (normal..normal + 8).contains(&i) {
            0
        } else {
            200
        };
        text.push_str(&format!("{},{v}\n", t.format("%Y-%m-%d %H:%M:%S")));
    }
    text
}

#[test]
fn backtest_prints_one_json_line_per_state_change() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-cli-bt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("outage.csv");
    std::fs::write(&file, outage_csv()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(["backtest", "--series"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "firing", "resolved"]);
    assert_eq!(events[1]["observed"], 0.0);
    assert!(events[1]["z"].as_f64().unwrap() <= -5.0);
    assert_eq!(events[2]["window"], "1h");
    assert!(events[0]["at"].as_str().unwrap().ends_with('Z'));
    // Coarser buckets: still one episode.
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(["backtest", "--step", "1h", "--series"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let n = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"firing\""))
        .count();
    assert_eq!(n, 1);
}

#[test]
fn backtest_rejects_bad_input() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-cli-bt2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.csv");
    std::fs::write(
        &file,
        "timestamp,value\n2014-07-01 00:00:00,1\nnot a time,2\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(["backtest", "--series"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args(["backtest", "--step", "7x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn replay_turns_an_access_log_into_per_minute_counts() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-cli-rp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0";
    let text = format!(
        "1.1.1.1 - - [17/May/2015:10:05:03 +0000] \"GET /login HTTP/1.1\" 200 5 \"-\" \"{ua}\"\n\
         1.1.1.1 - - [17/May/2015:10:05:40 +0000] \"GET /blog/x HTTP/1.1\" 200 5 \"https://t.co/\" \"{ua}\"\n\
         this line is not a log line\n\
         1.1.1.1 - - [17/May/2015:10:06:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"Googlebot/2.1\"\n"
    );
    std::fs::write(&log, &text).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/bpm.toml");
    let run = |path: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
            .args(["replay", "--config", config, "--log"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = run(&log);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "timestamp,metric,count\n2015-05-17T10:05:00Z,login_views,1\n2015-05-17T10:05:00Z,marketing_views,1\n2015-05-17T10:05:00Z,traffic,2\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("4 lines, 1 malformed (first at lines [3])"),
        "{err}"
    );
    // The bot view hits marketing_views and traffic, which count no bots.
    assert!(
        err.contains("2 hits of kinds their metric does not count left out"),
        "{err}"
    );
    assert!(
        err.contains("marketing_views: browser 1 counted, bot 1 not counted"),
        "{err}"
    );
    assert!(err.contains("cannot be replayed: logins"), "{err}");
    // The same log gzipped gives the same counts.
    let gz = dir.join("access.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    assert_eq!(run(&gz).stdout, out.stdout);
}

#[test]
fn replay_of_a_file_with_several_sites_takes_the_site_named() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-cli-sites-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0";
    std::fs::write(
        &log,
        format!(
            "1.1.1.1 - - [17/May/2015:10:05:03 +0000] \"GET /blog/x HTTP/1.1\" 200 5 \"-\" \"{ua}\"\n\
             1.1.1.1 - - [17/May/2015:10:05:09 +0000] \"POST /billing/subscribe HTTP/1.1\" 200 5 \"-\" \"{ua}\"\n"
        ),
    )
    .unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/sites.toml");
    let run = |site: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
            .args(["replay", "--config", config])
            .args(site)
            .arg("--log")
            .arg(&log)
            .output()
            .unwrap()
    };
    let shop = run(&["--site", "shop"]);
    assert_eq!(shop.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&shop.stdout),
        "timestamp,metric,count\n2015-05-17T10:05:00Z,page_views,1\n2015-05-17T10:05:00Z,subscriptions,1\n"
    );
    // The blog takes only page views.
    let blog = run(&["--site", "blog"]);
    assert_eq!(
        String::from_utf8_lossy(&blog.stdout),
        "timestamp,metric,count\n2015-05-17T10:05:00Z,page_views,1\n"
    );
    let none = run(&[]);
    assert_eq!(none.status.code(), Some(1));
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("declares several sites (shop, blog): pass --site NAME"),
        "{err}"
    );
    let unknown = run(&["--site", "nope"]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("has no site \"nope\" (its sites: shop, blog)"),
        "{err}"
    );
}
