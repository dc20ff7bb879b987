//! `cargo xtask fuzz [TARGET] [--seconds N] [--sanitizer address|none]`:
//! runs the libFuzzer targets of `fuzz/` (docs/reliability.md), each for
//! N seconds from the committed seeds (`fuzz/seeds/TARGET`) and the
//! reproducers already found (`tests/data/fuzz/TARGET`), growing a working
//! corpus in `fuzz/corpus/TARGET` (not committed), and fails if any target
//! crashes, hangs or runs out of memory, printing the reproducer's path.
//!
//! cargo-fuzz is installed at a pinned version where it is missing.
//!
//! # The toolchain
//!
//! The pinned toolchain is stable (rust-toolchain.toml), and CI has no
//! other. cargo-fuzz asks rustc for AddressSanitizer with `-Zsanitizer`,
//! which stable refuses, so the cargo-fuzz processes run with
//! `RUSTC_BOOTSTRAP=1`: the same stable compiler then accepts `-Z` flags.
//! Only those processes get it, and they build into `fuzz/target` (the
//! fuzz crate is its own workspace), so nothing else is built with it. The
//! stable toolchain ships the sanitizer runtimes
//! (`lib/rustlib/x86_64-unknown-linux-gnu/lib/librustc-stable_rt.asan.a`),
//! so AddressSanitizer works (checked with 1.95.0); `--sanitizer none`
//! builds without it (faster runs, no `-Z` flag needed) for the inputs
//! whose code has no `unsafe` worth checking.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::{Error, Result, bail, paths};

/// cargo-fuzz, installed with `cargo install --locked` where missing.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds per target unless `--seconds` says.
pub const DEFAULT_SECONDS: u64 = 20;
/// An input that runs longer than this is a hang (libFuzzer's -timeout).
pub const HANG_SECONDS: u64 = 10;
/// Memory a run may use (libFuzzer's -rss_limit_mb; -malloc_limit_mb
/// defaults to it, so one allocation of more than this is a failure too).
pub const RSS_LIMIT_MB: u64 = 2048;

/// `cargo xtask fuzz --help`.
pub const HELP: &str = "\
cargo xtask fuzz [TARGET] [--seconds N] [--sanitizer address|none]

Runs each fuzz target of fuzz/ (or TARGET alone) for N seconds (default 20)
from its committed seeds (fuzz/seeds/TARGET) and the reproducers in
tests/data/fuzz/TARGET, keeping what it finds in fuzz/corpus/TARGET, and
fails on a crash, hang or out-of-memory, printing the reproducer's path.
Installs cargo-fuzz {version} where missing. See docs/reliability.md.";

/// What `cargo xtask fuzz` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// One target, or every target.
    pub target: Option<String>,
    /// Seconds per target.
    pub seconds: u64,
    /// cargo-fuzz's `--sanitizer` (address or none).
    pub sanitizer: String,
}

/// Reads `cargo xtask fuzz`'s arguments.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let mut options = Options { target: None, seconds: DEFAULT_SECONDS, sanitizer: "address".into() };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| Error(format!("{name} needs a value")));
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = match text.parse() {
                    Ok(seconds) if seconds > 0 => seconds,
                    _ => bail!("--seconds takes a positive number of seconds, not `{text}`"),
                };
            }
            "--sanitizer" => {
                options.sanitizer = value("--sanitizer")?;
                if !matches!(options.sanitizer.as_str(), "address" | "none") {
                    bail!("--sanitizer takes address or none, not `{}`", options.sanitizer);
                }
            }
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n\n{}", help()),
            _ if options.target.is_none() => options.target = Some(arg),
            _ => bail!("unexpected argument `{arg}`\n\n{}", help()),
        }
    }
    Ok(options)
}

/// The help text, with the pinned cargo-fuzz version.
pub fn help() -> String {
    HELP.replace("{version}", CARGO_FUZZ_VERSION)
}

/// The fuzz crate.
pub fn fuzz_dir() -> PathBuf {
    paths::workspace().join("fuzz")
}

/// Every target: the files of `fuzz/fuzz_targets`, sorted.
pub fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let directory = fuzz_dir.join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .map_err(|error| Error(format!("{}: {error}", directory.display())))?
        .filter_map(|entry| entry.ok()?.path().file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// What libFuzzer's output says about a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs run (`stat::number_of_executed_units`).
    pub executions: Option<u64>,
    /// Coverage points (`cov:`).
    pub coverage: Option<u64>,
    /// Features (`ft:`).
    pub features: Option<u64>,
    /// The working corpus libFuzzer reported last (`corp: N/SIZE`).
    pub corpus: Option<String>,
    /// Where libFuzzer wrote the failing input, if it did.
    pub reproducer: Option<String>,
}

/// The number after `key` in `line` (`cov: 123`), if any.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Stats {
    /// Takes what `line` of libFuzzer's output reports.
    pub fn read(&mut self, line: &str) {
        if let Some(count) = number_after(line, "stat::number_of_executed_units:") {
            self.executions = Some(count);
        }
        // Progress lines: `#4096 pulse cov: 812 ft: 1534 corp: 61/4393b ...`.
        if line.starts_with('#') {
            if let Some(coverage) = number_after(line, " cov:") {
                self.coverage = Some(coverage);
            }
            if let Some(features) = number_after(line, " ft:") {
                self.features = Some(features);
            }
            if let Some(corpus) = line.split(" corp: ").nth(1).and_then(|rest| rest.split_whitespace().next()) {
                self.corpus = Some(corpus.to_string());
            }
        }
        if let Some(path) = line.split("Test unit written to ").nth(1) {
            self.reproducer = Some(path.trim().to_string());
        }
    }
}

/// Whether `cargo fuzz` is the pinned version.
fn cargo_fuzz_installed(cargo: &str) -> bool {
    let output = Command::new(cargo).args(["fuzz", "--version"]).output();
    output.is_ok_and(|output| {
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).trim() == format!("cargo-fuzz {CARGO_FUZZ_VERSION}")
    })
}

fn ensure_cargo_fuzz(cargo: &str) -> Result<()> {
    if cargo_fuzz_installed(cargo) {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION} (cargo install --locked)");
    let started = Instant::now();
    crate::run_command(Command::new(cargo).args([
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        &format!("={CARGO_FUZZ_VERSION}"),
    ]))?;
    println!("xtask fuzz: cargo-fuzz installed in {:.0} s", started.elapsed().as_secs_f64());
    if !cargo_fuzz_installed(cargo) {
        bail!(
            "`cargo fuzz --version` is not cargo-fuzz {CARGO_FUZZ_VERSION} after installing it (is ~/.cargo/bin on PATH?)"
        );
    }
    Ok(())
}

/// `cargo fuzz SUBCOMMAND` for the pinned toolchain (see the module docs
/// for RUSTC_BOOTSTRAP).
fn cargo_fuzz(cargo: &str, subcommand: &str, sanitizer: &str) -> Command {
    let mut command = Command::new(cargo);
    command
        .current_dir(paths::workspace())
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", subcommand, "--fuzz-dir"])
        .arg(fuzz_dir())
        .args(["--sanitizer", sanitizer]);
    command
}

/// One target's run.
#[derive(Debug)]
struct Outcome {
    target: String,
    stats: Stats,
    seconds: f64,
    corpus_files: usize,
    log: PathBuf,
    failed: bool,
}

fn count_files(directory: &Path) -> usize {
    std::fs::read_dir(directory).map_or(0, |entries| entries.filter(|entry| entry.is_ok()).count())
}

fn run_target(cargo: &str, target: &str, options: &Options, logs: &Path) -> Result<Outcome> {
    let fuzz = fuzz_dir();
    let corpus = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let mut command = cargo_fuzz(cargo, "run", &options.sanitizer);
    // The working corpus first: libFuzzer writes what it finds there and
    // only reads the others (the committed seeds and reproducers).
    command.arg(target).arg(&corpus).arg(fuzz.join("seeds").join(target));
    let regressions = paths::workspace().join("tests/data/fuzz").join(target);
    if regressions.is_dir() {
        command.arg(&regressions);
    }
    command.args([
        "--".to_string(),
        format!("-max_total_time={}", options.seconds),
        format!("-timeout={HANG_SECONDS}"),
        format!("-rss_limit_mb={RSS_LIMIT_MB}"),
        "-print_final_stats=1".to_string(),
    ]);
    let log_path = logs.join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path)?;
    println!("xtask fuzz: {target}: {} s (log: {})", options.seconds, log_path.display());
    let started = Instant::now();
    // libFuzzer reports on stderr; cargo's build output goes there too.
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| Error(format!("cannot start cargo fuzz: {error}")))?;
    let mut stats = Stats::default();
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
            let _ = writeln!(log, "{line}");
            stats.read(&line);
            tail.push(line);
            if tail.len() > 60 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait()?;
    let failed = !status.success();
    if failed {
        println!("xtask fuzz: {target} FAILED ({status}); the end of its log:");
        for line in &tail {
            println!("    {line}");
        }
    }
    Ok(Outcome {
        target: target.to_string(),
        stats,
        seconds: started.elapsed().as_secs_f64(),
        corpus_files: count_files(&corpus),
        log: log_path,
        failed,
    })
}

fn or_dash(value: Option<u64>) -> String {
    value.map_or("-".into(), |value| value.to_string())
}

/// `cargo xtask fuzz`: runs the targets, fails on a finding.
pub fn main(args: impl IntoIterator<Item = String>) -> Result<ExitCode> {
    let options = parse(args)?;
    let all = targets(&fuzz_dir())?;
    let selected = match &options.target {
        Some(target) if target == "help" => {
            println!("{}", help());
            return Ok(ExitCode::SUCCESS);
        }
        Some(target) if all.contains(target) => vec![target.clone()],
        Some(target) => bail!("no fuzz target `{target}` (targets: {})", all.join(", ")),
        None => all,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    ensure_cargo_fuzz(&cargo)?;

    // One build of every selected target (cargo builds them together).
    let build_started = Instant::now();
    let mut build = cargo_fuzz(&cargo, "build", &options.sanitizer);
    if let [target] = selected.as_slice() {
        build.arg(target);
    }
    crate::run_command(&mut build)?;
    println!("xtask fuzz: built in {:.0} s", build_started.elapsed().as_secs_f64());

    let logs = fuzz_dir().join("target").join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut outcomes = Vec::new();
    for target in &selected {
        outcomes.push(run_target(&cargo, target, &options, &logs)?);
    }

    println!(
        "\n{:<18} {:>6} {:>12} {:>7} {:>7} {:>16} {:>8}  result",
        "target", "s", "executions", "cov", "ft", "corpus (libFuzzer)", "files"
    );
    for outcome in &outcomes {
        println!(
            "{:<18} {:>6.0} {:>12} {:>7} {:>7} {:>16} {:>8}  {}",
            outcome.target,
            outcome.seconds,
            or_dash(outcome.stats.executions),
            or_dash(outcome.stats.coverage),
            or_dash(outcome.stats.features),
            outcome.stats.corpus.as_deref().unwrap_or("-"),
            outcome.corpus_files,
            if outcome.failed { "FAILED" } else { "ok" }
        );
    }
    println!("xtask fuzz: {} target(s) in {:.0} s", outcomes.len(), started.elapsed().as_secs_f64());
    let failed: Vec<&Outcome> = outcomes.iter().filter(|outcome| outcome.failed).collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut message = format!("{} fuzz target(s) failed:", failed.len());
    for outcome in failed {
        match &outcome.stats.reproducer {
            Some(path) => message.push_str(&format!(
                "\n  {}: reproducer {path}\n    replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer {} {} {path}\n    \
                 or:     TIDEPOOL_FUZZ_TRACE=1 TIDEPOOL_FUZZ_REPLAY={}:{path} cargo test --manifest-path fuzz/Cargo.toml --test replay -- --nocapture",
                outcome.target, options.sanitizer, outcome.target, outcome.target
            )),
            None => message.push_str(&format!(
                "\n  {}: failed without a reproducer (build or setup problem?); log {}",
                outcome.target,
                outcome.log.display()
            )),
        }
    }
    message.push_str(
        "\nKeep the reproducer under tests/data/fuzz/TARGET/ with a unit test that feeds it (tests/data/fuzz/README.md).",
    );
    Err(Error(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(args(&[])).unwrap(),
            Options { target: None, seconds: DEFAULT_SECONDS, sanitizer: "address".into() }
        );
        let options = parse(args(&["devicetree", "--seconds", "3600", "--sanitizer", "none"])).unwrap();
        assert_eq!(options, Options { target: Some("devicetree".into()), seconds: 3600, sanitizer: "none".into() });
        assert!(parse(args(&["--seconds", "0"])).is_err());
        assert!(parse(args(&["--seconds"])).is_err());
        assert!(parse(args(&["--sanitizer", "memory"])).is_err());
        assert!(parse(args(&["a", "b"])).is_err());
        assert!(parse(args(&["--jobs", "2"])).unwrap_err().0.contains("unknown option `--jobs`"));
    }

    #[test]
    fn libfuzzer_output_is_read() {
        let mut stats = Stats::default();
        for line in [
            "INFO: Seed: 1234",
            "#2\tINITED cov: 410 ft: 511 corp: 4/430b exec/s: 0 rss: 40Mb",
            "#8192\tpulse  cov: 805 ft: 1035 corp: 69/6049b lim: 3408 exec/s: 4096 rss: 324Mb",
            "#429117\tDONE   cov: 812 ft: 1040 corp: 70/6050b lim: 3859 exec/s: 39010 rss: 359Mb",
            "stat::number_of_executed_units: 429117",
            "stat::average_exec_per_sec:     39010",
        ] {
            stats.read(line);
        }
        assert_eq!(stats.executions, Some(429117));
        assert_eq!((stats.coverage, stats.features), (Some(812), Some(1040)));
        assert_eq!(stats.corpus.as_deref(), Some("70/6050b"));
        assert_eq!(stats.reproducer, None);
        stats.read("artifact_prefix='/w/fuzz/artifacts/devicetree/'; Test unit written to /w/fuzz/artifacts/devicetree/crash-8f6b");
        assert_eq!(stats.reproducer.as_deref(), Some("/w/fuzz/artifacts/devicetree/crash-8f6b"));
    }

    #[test]
    fn every_target_has_seeds() {
        let fuzz = fuzz_dir();
        let targets = targets(&fuzz).unwrap();
        assert!(targets.len() >= 8, "{targets:?}");
        for target in targets {
            let seeds = fuzz.join("seeds").join(&target);
            assert!(count_files(&seeds) > 0, "no seeds in {}", seeds.display());
        }
    }
}
