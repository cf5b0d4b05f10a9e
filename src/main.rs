//! The `bpm-edge` command-line tool: native helpers around the same core the
//! worker runs. `check-config` validates a configuration the way the worker
//! build does and prints one `file:line:col: field: message` line per error;
//! `backtest` runs the configured rules over an access log (or the bare
//! drop detector over a recorded series) causally and prints one JSON
//! object per alert state change; `replay` prints a log's per-minute
//! counts; `discover` ranks the request signatures that tell an incident
//! apart and prints them as configuration.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::run(std::env::args().skip(1).collect()));
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use bpm_edge::alert::detector::DetectorParams;
    use bpm_edge::alert::lifecycle::LifecycleParams;
    use bpm_edge::config::{parse_deployment, MetricKind};
    use bpm_edge::history::backtest::{self, native_step, parse_csv, parse_duration, to_grid};
    use std::io::Write;

    const USAGE: &str = "usage:
  bpm-edge check-config [FILE]                       validate a config (default: bpm.toml)
  bpm-edge backtest --log access.log[.gz] [--config bpm.toml] [--site NAME] [--rule NAME] [--from T] [--to T]
                   [--silence RULE=FROM..TO]... [--format combined|common|logpush] [--host HOST]
                                                     run the configured rules over an access log
  bpm-edge backtest --series FILE.csv [--step 15m] [--severity critical|warning]
                                                     replay a NAB-format series through the detector
  bpm-edge replay --log access.log[.gz] [--config bpm.toml] [--site NAME] [--format combined|common|logpush]
                   [--host HOST]                     per-minute metric counts (CSV) from an access log
  bpm-edge discover --log access.log[.gz] --incident FROM..TO [--config bpm.toml] [--top 3] [--json]
                   [--format combined|common|logpush] [--host HOST]
                                                     the request signatures that tell an incident apart,
                                                     as ready [[metric]] and [[alert]] TOML
  --site NAME: the site of a file with several [[sites]] (discover takes a one-[site] file)";

    pub fn run(args: Vec<String>) -> i32 {
        match args.first().map(String::as_str) {
            Some("check-config") => check_config(args.get(1).map_or("bpm.toml", String::as_str)),
            Some("backtest") => backtest_cmd(args.get(1..).unwrap_or(&[])),
            Some("replay") => replay_cmd(args.get(1..).unwrap_or(&[])),
            Some("discover") => discover_cmd(args.get(1..).unwrap_or(&[])),
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
        match parse_deployment(&text, path) {
            Ok(d) => {
                for cfg in &d.sites {
                    let ratios = cfg
                        .metrics
                        .iter()
                        .filter(|m| matches!(m.kind, MetricKind::Ratio(_)))
                        .count();
                    let hosts = if d.by_host {
                        format!(", hosts {}", cfg.site.hosts.join(" "))
                    } else {
                        String::new()
                    };
                    println!(
                        "{path}: ok: {} metrics ({} counted, {ratios} ratios), {} alert rules, {} receivers, site {:?}, prefix {}, time zone {}{hosts}",
                        cfg.metrics.len(),
                        cfg.metrics.len() - ratios,
                        cfg.alerts.len(),
                        cfg.receivers.len(),
                        cfg.site.name,
                        cfg.site.prefix,
                        cfg.time.zone
                    );
                }
                0
            }
            Err(errors) => {
                eprintln!("{errors}");
                1
            }
        }
    }

    fn backtest_cmd(args: &[String]) -> i32 {
        if args.iter().any(|a| a == "--log") {
            return rules_backtest_cmd(args);
        }
        let mut series = None;
        let mut step = None;
        let mut params = DetectorParams::critical();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned();
            match arg.as_str() {
                "--series" => series = value(),
                "--step" => match value().as_deref().and_then(parse_duration) {
                    Some(s) => step = Some(s),
                    None => return usage_error("--step takes a duration like 5m, 15m or 1h"),
                },
                "--severity" => match value().as_deref() {
                    Some("critical") => params = DetectorParams::critical(),
                    Some("warning") => params = DetectorParams::warning(),
                    _ => return usage_error("--severity is critical or warning"),
                },
                other => return usage_error(&format!("unknown argument {other:?}")),
            }
        }
        let Some(path) = series else {
            return usage_error("--series FILE.csv is required");
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: cannot read: {e}");
                return 1;
            }
        };
        let raw = match parse_csv(&text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{path}: {e}");
                return 1;
            }
        };
        let native = native_step(&raw).unwrap_or(60);
        let step = step.unwrap_or(native);
        if step < native || step % native != 0 {
            eprintln!(
                "{path}: --step must be a multiple of the series' own step ({})",
                bpm_edge::time::duration_label(native)
            );
            return 1;
        }
        let (grid, gaps) = match to_grid(&raw, step) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{path}: {e}");
                return 1;
            }
        };
        let lifecycle = LifecycleParams::default();
        let outcomes = backtest::run(&grid, &params, &lifecycle);
        let mut out = std::io::stdout().lock();
        for o in &outcomes {
            let line =
                serde_json::to_string(&o.event(lifecycle.resolve_window)).unwrap_or_default();
            if writeln!(out, "{line}").is_err() {
                // The reader went away (e.g. `| head`): not an error of ours.
                return 0;
            }
        }
        eprintln!(
            "{path}: {} buckets of {} ({gaps} missing, counted as 0), {} state changes",
            grid.len(),
            bpm_edge::time::duration_label(step),
            outcomes.len()
        );
        0
    }

    /// `backtest --log`: the configured rules over a replayed access log.
    fn rules_backtest_cmd(args: &[String]) -> i32 {
        use bpm_edge::alert::silence::Silence;
        use bpm_edge::history::rule_backtest;
        use bpm_edge::time::{format_time, parse_rfc3339};

        let mut input = LogInput::default();
        let mut rule = None;
        let (mut from, mut to) = (None, None);
        let mut silences = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned();
            match input.take(arg, &mut value) {
                Taken::Yes => continue,
                Taken::Bad(msg) => return usage_error(&msg),
                Taken::No => {}
            }
            match arg.as_str() {
                "--rule" => rule = value(),
                "--silence" => {
                    // RULE=FROM..TO: in force from FROM (its creation) until TO.
                    let text = value().unwrap_or_default();
                    let parsed = text.split_once('=').and_then(|(rule, range)| {
                        let (a, b) = time_range(range)?;
                        (a < b && !rule.is_empty()).then(|| Silence {
                            id: format!("backtest-{}", silences.len() + 1),
                            rule: rule.to_string(),
                            until: b,
                            reason: "given on the command line".into(),
                            author: "bpm-edge backtest".into(),
                            created_at: a,
                        })
                    });
                    match parsed {
                        Some(s) => silences.push(s),
                        None => {
                            return usage_error(
                                "--silence takes RULE=FROM..TO (RULE or *, two RFC 3339 times)",
                            )
                        }
                    }
                }
                "--from" | "--to" => {
                    let Some(t) = value().as_deref().and_then(parse_rfc3339) else {
                        return usage_error(&format!("{arg} takes an RFC 3339 time"));
                    };
                    if arg == "--from" {
                        from = Some(t);
                    } else {
                        to = Some(t);
                    }
                }
                other => return usage_error(&format!("unknown argument {other:?}")),
            }
        }
        let Replayed {
            log,
            config,
            cfg,
            replay,
            ..
        } = match input.replay() {
            Ok(r) => r,
            Err(code) => return code,
        };
        let named = rule
            .iter()
            .chain(silences.iter().map(|s| &s.rule).filter(|r| *r != "*"));
        for name in named {
            if !cfg.alerts.iter().any(|r| &r.name == name) {
                eprintln!("{config}: no [[alert]] named {name:?}");
                return 1;
            }
        }
        let result = rule_backtest::run(&cfg, &replay, rule.as_deref(), (from, to), &silences);
        let mut out = std::io::stdout().lock();
        for h in &result.history {
            let line = serde_json::to_string(h).unwrap_or_default();
            if writeln!(out, "{line}").is_err() {
                return 0;
            }
        }
        eprintln!(
            "{log}: {} lines ({} malformed), judged {} .. {}",
            replay.lines,
            replay.malformed,
            format_time(result.from),
            format_time(result.to)
        );
        if !result.not_judged.is_empty() {
            eprintln!("not judged: {}", result.not_judged.join(", "));
        }
        eprintln!("| rule | metric | fired | resolved | lasted | lowest ratio |");
        eprintln!("|---|---|---|---|---|---|");
        for e in result.episodes() {
            eprintln!(
                "| {} | {} | {} | {} | {} | {} |",
                e.value
                    .as_ref()
                    .map_or_else(|| e.rule.clone(), |v| format!("{}[{v}]", e.rule)),
                e.metric,
                format_time(e.fired),
                e.resolved
                    .map_or_else(|| "still firing".into(), format_time),
                e.resolved.map_or_else(
                    || "-".into(),
                    |r| bpm_edge::time::duration_label(r - e.fired)
                ),
                e.lowest_ratio
                    .map_or_else(|| "-".into(), |r| format!("{r:.2}"))
            );
        }
        0
    }

    /// `discover`: the signatures that tell an incident apart.
    fn discover_cmd(args: &[String]) -> i32 {
        use bpm_edge::history::discover::{discover, DiscoverOptions, Incident};
        use bpm_edge::history::replay::read_request;
        use bpm_edge::time::{duration_label, format_time};

        let mut input = LogInput::default();
        let mut incident = None;
        let mut top = 3usize;
        let mut json = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned();
            match input.take(arg, &mut value) {
                Taken::Yes => continue,
                Taken::Bad(msg) => return usage_error(&msg),
                Taken::No => {}
            }
            match arg.as_str() {
                "--incident" => {
                    let parsed = time_range(&value().unwrap_or_default())
                        .map(|(from, to)| Incident { from, to });
                    match parsed {
                        Some(i) => incident = Some(i),
                        None => {
                            return usage_error(
                                "--incident takes FROM..TO, two RFC 3339 times (2026-11-23T14:00:00Z..2026-11-23T16:00:00Z)",
                            )
                        }
                    }
                }
                "--top" => match value().and_then(|v| v.parse().ok()) {
                    Some(n) => top = n,
                    None => return usage_error("--top takes a number"),
                },
                "--json" => json = true,
                other => return usage_error(&format!("unknown argument {other:?}")),
            }
        }
        let Some(incident) = incident else {
            return usage_error("--incident FROM..TO is required");
        };
        if input.site.is_some() {
            return usage_error("discover takes a one-[site] file (it appends its TOML to it)");
        }
        let Some(log) = input.log.clone() else {
            return usage_error("--log FILE is required");
        };
        // No config: the defaults (UTC, no rules to compare with).
        let (config_text, config_file) = match std::fs::read_to_string(&input.config) {
            Ok(t) => (t, input.config.clone()),
            Err(_) if !input.config_given => {
                ("[site]\nname = \"site\"\n".to_string(), "-".to_string())
            }
            Err(e) => {
                eprintln!("{}: cannot read: {e}", input.config);
                return 1;
            }
        };
        let host = input.host.clone().unwrap_or_else(|| "localhost".into());
        let format = input.format;
        let mut read = |visit: &mut bpm_edge::history::discover::Visit<'_>| -> Result<(), String> {
            use std::io::BufRead;
            let reader = open_maybe_gzip(&log).map_err(|e| format!("{log}: cannot read: {e}"))?;
            for (i, line) in reader.split(b'\n').enumerate() {
                let line = line.map_err(|e| format!("{log}: read error after line {i}: {e}"))?;
                let text = String::from_utf8_lossy(&line);
                read_request(format, &host, &text, &mut *visit);
            }
            Ok(())
        };
        let found = match discover(
            &config_text,
            &config_file,
            std::path::Path::new(&log)
                .file_name()
                .map_or(log.as_str(), |n| n.to_str().unwrap_or(&log)),
            &mut read,
            incident,
            &DiscoverOptions::default(),
        ) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{log}: {e}");
                return 1;
            }
        };
        let mut out = std::io::stdout().lock();
        if json {
            let text = serde_json::to_string_pretty(&found).unwrap_or_default();
            // A reader that went away (`| head`) is not an error of ours.
            let _ = writeln!(out, "{text}");
            return 0;
        }
        let minutes_in = |t: i64| duration_label((t - incident.from).max(0));
        let mut text = String::new();
        let seen = found.seen;
        text.push_str(&format!(
            "{log}: {} requests ({} from bots; {} for assets, housekeeping paths or answered 5xx, left out)\n",
            seen.requests, seen.bots, seen.left_out
        ));
        text.push_str(&format!(
            "incident {} .. {}, compared with the same time on {} earlier days ({})\n",
            format_time(incident.from),
            format_time(incident.to),
            found.compared.len(),
            found
                .compared
                .iter()
                .map(|t| format_time(*t).get(..10).unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        text.push_str(&format!(
            "{} signatures had the volume to judge, {} fell; the best {} backtested over {} .. {}\n",
            found.considered,
            found.fell,
            found.candidates.len(),
            format_time(found.judged.0),
            format_time(found.judged.1)
        ));
        text.push_str(&match (&found.configured, found.configured_rules) {
            (_, 0) => "your rules: none configured to compare with\n".to_string(),
            (Some(e), _) => format!(
                "your rules: {} fired first, {} into the incident\n",
                e.rule,
                minutes_in(e.fired)
            ),
            (None, n) => format!("your rules: none of {n} fired during the incident\n"),
        });
        if found.candidates.is_empty() {
            text.push_str("no signature fell enough to tell the incident apart\n");
        } else {
            text.push_str("\n| # | signature | during | usual | drop | fired | false alerts | metric |\n|---|---|---:|---:|---:|---|---:|---|\n");
        }
        for (i, c) in found.candidates.iter().enumerate() {
            text.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.0} % | {} | {} | {} |\n",
                i + 1,
                c.signature,
                c.during,
                c.usual,
                c.drop * 100.0,
                c.fired
                    .map_or_else(|| "no".into(), |t| format!("after {}", minutes_in(t))),
                c.false_alerts.len(),
                c.metric
            ));
        }
        for (i, c) in found.candidates.iter().take(top).enumerate() {
            let fired = match (c.fired, &found.configured) {
                (None, _) => "did not fire during the incident".to_string(),
                (Some(t), Some(e)) if t < e.fired => format!(
                    "fired {} into the incident, {} before {}",
                    minutes_in(t),
                    duration_label(e.fired - t),
                    e.rule
                ),
                (Some(t), _) => format!("fired {} into the incident", minutes_in(t)),
            };
            text.push_str(&format!(
                "\n# {}. {}: {fired}; {} false alert(s) elsewhere in the log\n{}",
                i + 1,
                c.signature,
                c.false_alerts.len(),
                c.toml
            ));
        }
        let _ = out.write_all(text.as_bytes());
        0
    }

    /// The arguments `replay` and `backtest --log` share.
    struct LogInput {
        log: Option<String>,
        config: String,
        /// `--config` was given (else `config` is the default path).
        config_given: bool,
        /// `--site`: which site of a `[[sites]]` file.
        site: Option<String>,
        format: bpm_edge::history::replay::LogFormat,
        host: Option<String>,
    }

    impl Default for LogInput {
        fn default() -> Self {
            LogInput {
                log: None,
                config: "bpm.toml".into(),
                config_given: false,
                site: None,
                format: bpm_edge::history::replay::LogFormat::Combined,
                host: None,
            }
        }
    }

    /// Whether an argument was one of [`LogInput`]'s.
    enum Taken {
        Yes,
        No,
        Bad(String),
    }

    /// A log classified with a config.
    struct Replayed {
        log: String,
        /// The config's path.
        config: String,
        cfg: bpm_edge::config::Config,
        format: bpm_edge::history::replay::LogFormat,
        replay: bpm_edge::history::replay::Replay,
    }

    impl LogInput {
        /// Reads the config and replays the log; the exit code on failure
        /// (the reason is printed).
        fn replay(self) -> Result<Replayed, i32> {
            let Some(log) = self.log else {
                return Err(usage_error("--log FILE is required"));
            };
            let fail = |e: String| {
                eprintln!("{e}");
                1
            };
            let cfg = read_config(&self.config, self.site.as_deref()).map_err(fail)?;
            let replay = replay_log(&log, &cfg, self.format, self.host).map_err(fail)?;
            Ok(Replayed {
                log,
                config: self.config,
                cfg,
                format: self.format,
                replay,
            })
        }

        fn take(&mut self, arg: &str, value: &mut dyn FnMut() -> Option<String>) -> Taken {
            use bpm_edge::history::replay::LogFormat;
            match arg {
                "--log" => self.log = value(),
                "--config" => match value() {
                    Some(c) => {
                        self.config = c;
                        self.config_given = true;
                    }
                    None => return Taken::Bad("--config takes a file".into()),
                },
                "--host" => self.host = value(),
                "--site" => match value() {
                    Some(s) => self.site = Some(s),
                    None => return Taken::Bad("--site takes a site's name".into()),
                },
                "--format" => match value().as_deref() {
                    Some("combined") => self.format = LogFormat::Combined,
                    Some("common") => self.format = LogFormat::Common,
                    Some("logpush") => self.format = LogFormat::Logpush,
                    _ => return Taken::Bad("--format is combined, common or logpush".into()),
                },
                _ => return Taken::No,
            }
            Taken::Yes
        }
    }

    /// The config of one site: the file's only site, or (a `[[sites]]`
    /// file) the one `--site` names.
    fn read_config(path: &str, site: Option<&str>) -> Result<bpm_edge::config::Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
        let mut d = parse_deployment(&text, path).map_err(|e| e.to_string())?;
        let names = d.names().join(", ");
        match site {
            Some(name) => d
                .site(name)
                .cloned()
                .ok_or_else(|| format!("{path} has no site {name:?} (its sites: {names})")),
            None if d.sites.len() == 1 => Ok(d.sites.swap_remove(0)),
            None => Err(format!(
                "{path} declares several sites ({names}): pass --site NAME"
            )),
        }
    }

    /// Classifies every line of `log` (gzip or plain) with `cfg`.
    fn replay_log(
        log: &str,
        cfg: &bpm_edge::config::Config,
        format: bpm_edge::history::replay::LogFormat,
        host: Option<String>,
    ) -> Result<bpm_edge::history::replay::Replay, String> {
        use bpm_edge::count::classify::Classifier;
        use std::io::BufRead;
        // The site's first host by name (a `*.` suffix names no one host).
        let host = host
            .or_else(|| {
                cfg.site
                    .hosts
                    .iter()
                    .find(|h| !h.starts_with("*."))
                    .cloned()
            })
            .unwrap_or_else(|| "localhost".into());
        let classifier = Classifier::new(cfg.clone());
        let reader = open_maybe_gzip(log).map_err(|e| format!("{log}: cannot read: {e}"))?;
        let mut replay = bpm_edge::history::replay::Replay::default();
        let mut hits = Vec::new();
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("{log}: read error after line {i}: {e}"))?;
            let text = String::from_utf8_lossy(&line);
            replay.add_line(&classifier, format, &host, i as u64 + 1, &text, &mut hits);
        }
        Ok(replay)
    }

    /// `FROM..TO`, two RFC 3339 times.
    fn time_range(text: &str) -> Option<(i64, i64)> {
        use bpm_edge::time::parse_rfc3339;
        let (a, b) = text.split_once("..")?;
        Some((parse_rfc3339(a.trim())?, parse_rfc3339(b.trim())?))
    }

    fn usage_error(msg: &str) -> i32 {
        eprintln!("{msg}\n{USAGE}");
        2
    }

    fn replay_cmd(args: &[String]) -> i32 {
        use bpm_edge::count::classify::Classifier;
        use bpm_edge::history::replay::{unreplayable_metrics, LogFormat};

        let mut input = LogInput::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned();
            match input.take(arg, &mut value) {
                Taken::Yes => {}
                Taken::Bad(msg) => return usage_error(&msg),
                Taken::No => return usage_error(&format!("unknown argument {arg:?}")),
            }
        }
        let Replayed {
            log,
            cfg,
            format,
            replay,
            ..
        } = match input.replay() {
            Ok(r) => r,
            Err(code) => return code,
        };
        let classifier = Classifier::new(cfg);
        if std::io::stdout()
            .lock()
            .write_all(replay.to_csv().as_bytes())
            .is_err()
        {
            return 0;
        }
        eprintln!(
            "{log}: {} lines, {} malformed{}, {} hits of kinds their metric does not count left out, {} (minute, metric) counts",
            replay.lines,
            replay.malformed,
            if replay.malformed_examples.is_empty() {
                String::new()
            } else {
                format!(" (first at lines {:?})", replay.malformed_examples)
            },
            replay.not_counted,
            replay.counts.len()
        );
        // A metric counts a kind or never does: one figure per kind.
        let mut metric = "";
        for ((name, kind), (counted, not)) in &replay.kinds {
            if name != metric {
                eprint!("{}{name}:", if metric.is_empty() { "" } else { "\n" });
                metric = name;
            } else {
                eprint!(",");
            }
            let (n, what) = if *counted > 0 {
                (counted, "counted")
            } else {
                (not, "not counted")
            };
            eprint!(" {} {n} {what}", kind.as_str());
        }
        if !metric.is_empty() {
            eprintln!();
        }
        let blind = unreplayable_metrics(&classifier);
        if !blind.is_empty() {
            let why = if format == LogFormat::Logpush {
                "these metrics need the Location response header (a Logpush job's ResponseHeaders field)"
            } else {
                "access logs have no Location header, so these metrics cannot be replayed"
            };
            eprintln!("note: {why}: {}", blind.join(", "));
        }
        0
    }

    /// A file, transparently gunzipped when it starts with the gzip magic.
    fn open_maybe_gzip(path: &str) -> std::io::Result<Box<dyn std::io::BufRead>> {
        use std::io::{BufReader, Read};
        let mut file = std::fs::File::open(path)?;
        let mut magic = [0u8; 2];
        let n = file.read(&mut magic)?;
        let file = std::fs::File::open(path)?;
        if n == 2 && magic == [0x1f, 0x8b] {
            Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
                file,
            ))))
        } else {
            Ok(Box::new(BufReader::new(file)))
        }
    }
}
