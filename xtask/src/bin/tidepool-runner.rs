//! `tidepool-runner`: cargo's `runner` for crates that build Tidepool
//! images. `cargo run` and `cargo test` call it with the built ELF; it
//! boots the image on the board it was built for and exits with the
//! guest's status. Install it with
//! `cargo install --path <tidepool checkout>/xtask --bin tidepool-runner`
//! and name it in `.cargo/config.toml`:
//!
//! ```toml
//! [target.aarch64-unknown-none]
//! runner = "tidepool-runner"
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use xtask::runner::{RunOptions, exit_code, launch_for, run_launch};
use xtask::{Error, Result, bail};

const HELP: &str = "\
tidepool-runner [options] IMAGE.elf [ignored arguments]

Boots a Tidepool image (an ELF built with the runtime) under QEMU on the
board it was built for, streams its console and exits with its status.
A test image's `N passed, N failed` is repeated as libtest's `test result:`
line. QEMU is the cached build of `cargo xtask setup`, made on first use.

Options (put them before the image, in the runner string of
.cargo/config.toml):
  --board NAME        run on NAME, a board that runs this board's images
                      (qemu-virt-pci for a qemu-virt image)
  --device NAME       attach a stock virtio device (virtio-rng, ...); the
                      board binds it to a DMA pool
  --backend           attach the hostmem device and start its backend
  --timeout SECONDS   stop the guest after this long (default 120)
  --bootargs WORDS    extra kernel command line words
  --gic 2|3, --el2    the machine variant (tree boards)
";

fn parse(mut args: impl Iterator<Item = String>) -> Result<(PathBuf, RunOptions)> {
    let mut options = RunOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| Error(format!("{name} needs a value")));
        match arg.as_str() {
            "--board" => options.board = Some(value("--board")?),
            "--device" => options.devices.push(value("--device")?),
            "--backend" => options.backend = Some(xtask::backend::BackendSpec::default()),
            "--timeout" => {
                let text = value("--timeout")?;
                let seconds = text.parse().map_err(|_| Error(format!("--timeout takes seconds, not `{text}`")))?;
                options.timeout = Duration::from_secs(seconds);
            }
            "--bootargs" => options.bootargs.extend(value("--bootargs")?.split_whitespace().map(String::from)),
            "--gic" => {
                options.variant.gic_version = match value("--gic")?.as_str() {
                    "2" => 2,
                    "3" => 3,
                    other => bail!("--gic takes 2 or 3, not `{other}`"),
                }
            }
            "--el2" => options.variant.el2 = true,
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown option `{flag}` (see tidepool-runner --help)"),
            // Cargo appends the program's own arguments after the image
            // (`cargo run -- ...`, libtest filters for `cargo test`); a
            // guest has no use for them.
            image => return Ok((PathBuf::from(image), options)),
        }
    }
    bail!("no image given (see tidepool-runner --help)")
}

fn real_main() -> Result<ExitCode> {
    xtask::signals::install()?;
    let (elf, options) = parse(std::env::args().skip(1))?;
    let launch = launch_for(&elf, &options)?;
    let outcome = run_launch(&launch, &options)?;
    Ok(ExitCode::from(exit_code(&outcome)))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tidepool-runner: {error}");
            ExitCode::from(1)
        }
    }
}
