//! `cargo xtask`: build, launch, test. Run `cargo xtask help`.

// Declared here, not in the library: only `run --dump-frames` uses it (and
// tests/frame_dump.rs, which includes the file, std only, as a module).
mod contact_sheet;

use std::process::ExitCode;
use std::time::Duration;

use xtask::board::{Board, Variant};
use xtask::image::ImageBuild;
use xtask::{Error, Result, bail};

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  setup                 install host packages; find or build a QEMU that can
                        create the generic vhost-user device (cached)
  build [IMAGE]         build examples/IMAGE.rs as a raw arm64 Image
  dtb [BOARD]           dump QEMU's tree for BOARD and apply the board overlay
  run [IMAGE]           build IMAGE and boot it under QEMU (with the hostmem
                        backend for images that use it); exits with the
                        guest's status
  test                  run every test: host unit tests, the device-tree
                        mutation test and the QEMU integration tests
  fuzz [TARGET]         run the fuzz targets (fuzz/) for --seconds N each
                        (default 20) from the committed seeds; fails on a
                        crash with the reproducer's path (docs/reliability.md)
  bench codec           decode the codec clip three ways and print a table:
                        (a) hostmem zero-copy and (b) virtqueue copy through
                        the DMA pool, both in the guest (examples/codec_bench,
                        guest clock), and (c) the host decoder alone (host
                        clock); --bootargs bench.rounds=R (default 5),
                        bench.depth=D, bench.copy_depth=D; --frames DIR
                        (see docs/benchmarks.md)

Options:
  --board NAME          board: a folder of boards/ (qemu-virt, the default, with
                        virtio-mmio; qemu-virt-pci; jailhouse-qemu-arm64, a
                        Jailhouse cell run under the emulated Jailhouse)
  --gic 2|3             GIC version (default 3)
  --el2                 start the image at EL2 (QEMU virtualization=on)
  --load-address ADDR   `run`: load the raw image at ADDR (hex 0x... or
                        decimal, 4 KiB aligned, in RAM) with QEMU's generic
                        loader and a boot stub, as U-Boot's booti would,
                        instead of -kernel's RAM base + text_offset; the
                        image relocates itself
  --dtb FILE             `run`: boot with your own device tree instead of the
                        board's (QEMU's tree plus the board overlay; apply the
                        overlay yourself if your tree needs the pools)
  --builtin-dtb FILE    build FILE into the image, for loaders that pass no
                        tree (x0 = 0); $TIDEPOOL_BUILTIN_DTB is honoured too
  --debug               build without optimisations
  --timeout SECONDS     stop the guest after this long (default {default_timeout})
  --bootargs WORDS      extra kernel command line words (e.g. tidepool.log=debug)
  --frames DIR          codec images: play the .qoi/.png/.ppm files of DIR
                        (one size) instead of the built-in procedural clip
  --dump-frames DIR     the backend writes every decoded frame to DIR as a
                        PNG (and frames.tsv); after the run, DIR/index.html
                        shows each frame with its size and the guest's
                        verdict
  --no-backend          do not start the hostmem backend
  --backend             start the hostmem backend for any image

IMAGE defaults to codec_demo, the end-to-end demo.

Images that use the hostmem device (codec_demo, hostmem_echo, codec_bench)
run with the vhost-user backend (host/hostmem-backend) attached.

SIGINT, SIGTERM or SIGHUP during `run` stops QEMU and the backend, and xtask
exits with 128 + the signal number (130 for Ctrl-C).";

/// `--timeout` when none is given.
const DEFAULT_TIMEOUT_SECS: u64 = 120;

fn help() -> String {
    HELP.replace("{default_timeout}", &DEFAULT_TIMEOUT_SECS.to_string())
}

/// Images that drive the hostmem device and so need the backend.
const BACKEND_IMAGES: &[&str] = &["codec_demo", "hostmem_echo", "codec_bench"];

#[derive(Debug)]
struct Options {
    command: String,
    target: Option<String>,
    board: String,
    variant: Variant,
    release: bool,
    timeout: Duration,
    bootargs: Vec<String>,
    frames: Option<std::path::PathBuf>,
    dump_frames: Option<std::path::PathBuf>,
    no_backend: bool,
    /// Start the backend even for an image that does not use it.
    force_backend: bool,
    /// Where `run` loads the raw image (None: QEMU's -kernel placement).
    load_address: Option<u64>,
    /// A device tree to build into the image (`--builtin-dtb`, or the
    /// `TIDEPOOL_BUILTIN_DTB` the user set), for loaders that pass none.
    builtin_dtb: Option<std::path::PathBuf>,
    /// The user's own tree to boot with instead of the board's.
    dtb: Option<std::path::PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let command = args.next().unwrap_or_else(|| "help".into());
    let mut options = Options {
        command,
        target: None,
        board: "qemu-virt".into(),
        variant: Variant::default(),
        release: true,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        bootargs: Vec::new(),
        frames: None,
        dump_frames: None,
        no_backend: false,
        force_backend: false,
        load_address: None,
        builtin_dtb: None,
        dtb: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| Error(format!("{name} needs a value")));
        match arg.as_str() {
            "--board" => options.board = value("--board")?,
            "--gic" => {
                options.variant.gic_version = match value("--gic")?.as_str() {
                    "2" => 2,
                    "3" => 3,
                    other => bail!("--gic takes 2 or 3, not `{other}`"),
                }
            }
            "--el2" => options.variant.el2 = true,
            "--debug" => options.release = false,
            "--timeout" => {
                let text = value("--timeout")?;
                let seconds: u64 = text.parse().map_err(|_| Error(format!("--timeout takes seconds, not `{text}`")))?;
                options.timeout = Duration::from_secs(seconds);
            }
            "--bootargs" => options.bootargs.extend(value("--bootargs")?.split_whitespace().map(String::from)),
            "--frames" => options.frames = Some(absolute(value("--frames")?)?),
            "--dump-frames" => options.dump_frames = Some(absolute(value("--dump-frames")?)?),
            "--no-backend" => options.no_backend = true,
            "--backend" => options.force_backend = true,
            "--load-address" => options.load_address = Some(parse_address(&value("--load-address")?)?),
            "--builtin-dtb" => options.builtin_dtb = Some(absolute(value("--builtin-dtb")?)?),
            "--dtb" => options.dtb = Some(absolute(value("--dtb")?)?),
            "-h" | "--help" => options.command = "help".into(),
            flag if flag.starts_with('-') => bail!("unknown option `{flag}` (see `cargo xtask help`)"),
            _ if options.target.is_none() => options.target = Some(arg),
            _ => bail!("unexpected argument `{arg}` (see `cargo xtask help`)"),
        }
    }
    // The documented variable is honoured too (the image build itself clears
    // it, so that a stale setting never leaks into test images).
    if options.builtin_dtb.is_none()
        && let Some(path) = std::env::var_os("TIDEPOOL_BUILTIN_DTB").filter(|path| !path.is_empty())
    {
        options.builtin_dtb = Some(absolute(path.to_string_lossy().into_owned())?);
    }
    for (flag, path) in [("--builtin-dtb", &options.builtin_dtb), ("--dtb", &options.dtb)] {
        if let Some(path) = path.as_ref().filter(|path| !path.is_file()) {
            bail!("{flag} {}: no such file", path.display());
        }
    }
    Ok(options)
}

/// An address given as `0x...` hex or decimal.
fn parse_address(text: &str) -> Result<u64> {
    let digits = text.replace('_', "");
    let parsed = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    parsed.map_err(|_| Error(format!("--load-address takes an address (0x40400000 or decimal), not `{text}`")))
}

fn image_build(options: &Options) -> ImageBuild {
    let mut spec = ImageBuild::new(options.target.as_deref().unwrap_or("codec_demo"));
    spec.board = options.board.clone();
    spec.release = options.release;
    spec.codec_frames = options.frames.clone();
    spec.builtin_dtb = options.builtin_dtb.clone();
    spec
}

/// Paths given on the command line, made absolute (builds run elsewhere).
fn absolute(path: String) -> Result<std::path::PathBuf> {
    let path = std::path::PathBuf::from(path);
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(std::env::current_dir()?.join(path))
}

fn real_main() -> Result<ExitCode> {
    // `fuzz` takes options of its own (xtask/src/fuzz.rs).
    if std::env::args().nth(1).as_deref() == Some("fuzz") {
        return xtask::fuzz::main(std::env::args().skip(2));
    }
    let options = parse(std::env::args().skip(1))?;
    match options.command.as_str() {
        "help" => println!("{}", help()),
        "setup" => {
            xtask::setup::setup()?;
        }
        "build" => {
            Board::find(&options.board)?;
            let path = xtask::image::build(&image_build(&options))?;
            println!("{}", path.display());
        }
        "dtb" => {
            let board = Board::find(options.target.as_deref().unwrap_or(&options.board))?;
            let qemu = xtask::setup::require_qemu()?;
            let tree = xtask::dtb::board_tree(&qemu, board, options.variant)?;
            println!("{}", tree.display());
        }
        "run" => {
            // Built here, launched by the same code as tidepool-runner.
            let spec = image_build(&options);
            Board::find(&spec.board)?;
            let elf = xtask::image::build(&spec)?.with_extension("elf");
            let wants_backend = BACKEND_IMAGES.contains(&spec.name.as_str()) || options.force_backend;
            let backend = if wants_backend && !options.no_backend {
                let mut backend = xtask::backend::BackendSpec::default();
                if let Some(dir) = &options.dump_frames {
                    std::fs::create_dir_all(dir)?;
                    backend.args.push("--dump-frames".into());
                    backend.args.push(dir.display().to_string());
                }
                Some(backend)
            } else {
                if options.dump_frames.is_some() {
                    println!("xtask: no backend runs for this image, so --dump-frames writes nothing");
                }
                None
            };
            let run = xtask::runner::RunOptions {
                board: Some(spec.board.clone()),
                variant: options.variant,
                timeout: options.timeout,
                bootargs: options.bootargs.clone(),
                devices: Vec::new(),
                backend,
                load_address: options.load_address,
                dtb: options.dtb.clone(),
                echo: true,
            };
            let launch = xtask::runner::launch_for(&elf, &run)?;
            let outcome = xtask::runner::run_launch(&launch, &run)?;
            if let (Some(dir), Some(_)) = (&options.dump_frames, &run.backend) {
                // Also after a failed run: the sheet shows which frames failed.
                let sheet = contact_sheet::write(dir, &outcome.console).map_err(|error| {
                    Error(format!("cannot write {}: {error}", dir.join(contact_sheet::INDEX).display()))
                })?;
                println!(
                    "xtask: {} PNG frames ({} verified by the guest) and the contact sheet {}",
                    sheet.pictures(),
                    sheet.verified(),
                    sheet.path.display()
                );
            }
            return Ok(ExitCode::from(xtask::runner::exit_code(&outcome)));
        }
        "bench" => {
            let bench = xtask::bench::BenchOptions {
                board: options.board.clone(),
                variant: options.variant,
                release: options.release,
                timeout: options.timeout,
                bootargs: options.bootargs.clone(),
                frames: options.frames.clone(),
            };
            match options.target.as_deref() {
                Some("codec") => xtask::bench::codec(&bench)?,
                // Path (c) alone; `bench codec` runs it in a release build.
                Some("codec-native") => xtask::bench::codec_native(&bench)?,
                Some(other) => bail!("unknown benchmark `{other}` (known: codec)"),
                None => bail!("name a benchmark: `cargo xtask bench codec`"),
            }
        }
        "test" => {
            xtask::setup::setup()?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            run_tests(
                std::process::Command::new(cargo).current_dir(xtask::paths::workspace()).args(["test", "--workspace"]),
            )?;
        }
        other => bail!("unknown command `{other}` (see `cargo xtask help`)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `cargo test`, passing its output through, and closes with the
/// totals of every test binary (cargo prints one `test result:` line per
/// binary and none for the whole run).
fn run_tests(command: &mut std::process::Command) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| Error(format!("cannot start {:?}: {error}", command.get_program())))?;
    let mut totals = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(std::io::Result::ok) {
            println!("{line}");
            if let Some((passed, failed)) = test_result_counts(&line) {
                totals = (totals.0 + passed, totals.1 + failed);
            }
        }
    }
    let status = child.wait()?;
    println!("xtask test: {} passed, {} failed", totals.0, totals.1);
    if !status.success() {
        bail!("{:?} failed with {status}", command);
    }
    Ok(())
}

/// The passed and failed counts of a libtest `test result:` line.
fn test_result_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    // Parts look like `ok. 146 passed` and `0 failed`: a number, then a label.
    let count = |label: &str| {
        rest.split("; ").find_map(|part| {
            let mut words = part.rsplit(' ');
            (words.next() == Some(label)).then(|| words.next()?.parse().ok()).flatten()
        })
    };
    Some((count("passed")?, count("failed")?))
}

fn main() -> ExitCode {
    let result = xtask::signals::install().and_then(|()| real_main());
    // Whatever the command made of it, a signal during a launch means the
    // launch stopped its children and gave up: say so, with 128 + signal.
    if let Some(signal) = xtask::signals::interrupted() {
        eprintln!("xtask: stopped by {}; the QEMU and backend it started are gone", xtask::signals::name(signal));
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(u8::MAX));
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_counted() {
        let line = "test result: ok. 146 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.16s";
        assert_eq!(test_result_counts(line), Some((146, 0)));
        let line = "test result: FAILED. 6 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s";
        assert_eq!(test_result_counts(line), Some((6, 2)));
        assert_eq!(test_result_counts("running 3 tests"), None);
    }

    #[test]
    fn help_states_the_default_timeout() {
        let help = help();
        assert!(help.contains(&format!("(default {DEFAULT_TIMEOUT_SECS})")), "{help}");
        assert!(!help.contains('{'), "unfilled placeholder: {help}");
        let options = parse(["run".to_string()].into_iter()).unwrap();
        assert_eq!(options.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn load_addresses_parse_as_hex_or_decimal() {
        let args = |words: &[&str]| words.iter().map(|word| word.to_string()).collect::<Vec<_>>().into_iter();
        let options = parse(args(&["run", "hello", "--load-address", "0x4040_0000"])).unwrap();
        assert_eq!(options.load_address, Some(0x4040_0000));
        assert_eq!(parse_address("1077936128").unwrap(), 0x4040_0000);
        assert!(parse(args(&["run", "--load-address", "somewhere"])).is_err());
        assert!(parse(args(&["run", "--load-address"])).is_err());
        assert_eq!(parse(args(&["run"])).unwrap().load_address, None);
    }

    #[test]
    fn trees_given_on_the_command_line_must_exist() {
        let args = |words: &[&str]| words.iter().map(|word| word.to_string()).collect::<Vec<_>>().into_iter();
        let tree = xtask::paths::workspace().join("tests/data/dtb/qemu-virt-numa-pool-nop.dtb");
        let tree_arg = tree.display().to_string();
        let options = parse(args(&["run", "hello", "--dtb", &tree_arg, "--builtin-dtb", &tree_arg])).unwrap();
        assert_eq!((options.dtb.as_ref(), options.builtin_dtb.as_ref()), (Some(&tree), Some(&tree)));
        assert_eq!(image_build(&options).builtin_dtb, Some(tree));
        let error = parse(args(&["run", "--dtb", "/no/such/tree.dtb"])).unwrap_err().to_string();
        assert!(error.contains("--dtb /no/such/tree.dtb: no such file"), "{error}");
        assert!(parse(args(&["build", "--builtin-dtb"])).is_err());
    }
}
