//! Launching a built image: what `tidepool-runner` (cargo's `runner` for a
//! crate that depends on the runtime) and `cargo xtask run` share.
//!
//! From an ELF: the board it was built for (the `.tidepool_board` section,
//! src/board.rs), the raw image in the board's format, QEMU (the cached
//! build `cargo xtask setup` makes, built on first use), the board's tree
//! or emulated cell, optional virtio devices and the hostmem backend; then
//! the console is streamed, the guest stopped on timeout or Ctrl-C, and a
//! test image's result repeated as a libtest summary line.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use object::{Object, ObjectSection};

use crate::board::{Board, Variant};
use crate::qemu::Launch;
use crate::run::Outcome;
use crate::{Result, bail, paths};

/// How to launch.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Another board that runs this board's images (`image-board`), such
    /// as qemu-virt-pci for a qemu-virt image.
    pub board: Option<String>,
    /// GIC version and entry level (tree boards).
    pub variant: Variant,
    /// How long the guest may run.
    pub timeout: Duration,
    /// Extra kernel command line words.
    pub bootargs: Vec<String>,
    /// Stock virtio devices to attach, by QEMU base name (`virtio-rng`).
    pub devices: Vec<String>,
    /// Start the hostmem backend.
    pub backend: Option<crate::backend::BackendSpec>,
    /// Load the raw image here instead of the board's address.
    pub load_address: Option<u64>,
    /// Boot with this tree instead of the board's.
    pub dtb: Option<PathBuf>,
    /// Print the console as it arrives.
    pub echo: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            board: None,
            variant: Variant::default(),
            timeout: Duration::from_secs(120),
            bootargs: Vec::new(),
            devices: Vec::new(),
            backend: None,
            load_address: None,
            dtb: None,
            echo: true,
        }
    }
}

/// The board an image was built for, from its `.tidepool_board` section.
pub fn board_of(elf: &Path) -> Result<String> {
    let data = fs::read(elf).map_err(|error| crate::Error(format!("{}: {error}", elf.display())))?;
    let file = object::File::parse(&*data).map_err(|error| crate::Error(format!("{}: {error}", elf.display())))?;
    let section = file.section_by_name(".tidepool_board").ok_or_else(|| {
        crate::Error(format!(
            "{}: no .tidepool_board section: not a Tidepool image (built with the runtime's `image` feature and \
             `-Ttidepool.ld`?)",
            elf.display()
        ))
    })?;
    let name = section.data().map_err(|error| crate::Error(format!("{}: {error}", elf.display())))?;
    match std::str::from_utf8(name) {
        Ok(name) if !name.is_empty() => Ok(name.to_string()),
        _ => bail!("{}: the .tidepool_board section holds no board name", elf.display()),
    }
}

/// The launch for `elf`: its board (or `options.board`, which must run
/// this board's images), the raw image next to the ELF, QEMU set up.
pub fn launch_for(elf: &Path, options: &RunOptions) -> Result<Launch> {
    let built_for = board_of(elf)?;
    let board = Board::find(options.board.as_deref().unwrap_or(&built_for))?;
    if board.image_board != built_for {
        bail!(
            "{} was built for board {built_for}; board {} runs images of {}",
            elf.display(),
            board.name,
            board.image_board
        );
    }
    let image_board = Board::find(&built_for)?;
    let raw = raw_path(elf);
    crate::image::elf_to_raw(elf, &raw, image_board.load_address)?;
    let mut launch = Launch::new(board, raw, options.variant, options.bootargs.clone())?;
    launch.load_address = options.load_address;
    if let Some(tree) = &options.dtb {
        launch.dtb = tree.clone();
    }
    for device in &options.devices {
        launch.extra_args.push("-device".into());
        launch.extra_args.push(board.virtio_device(device, ""));
    }
    Ok(launch)
}

/// Where the raw image of `elf` goes: beside it, `.bin`.
fn raw_path(elf: &Path) -> PathBuf {
    let mut name = elf.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".bin");
    elf.parent().map(|dir| dir.join(&name)).unwrap_or_else(|| paths::out_dir().join(name))
}

/// Runs `launch` (with the backend if asked), prints a test image's
/// summary the way libtest does, and returns the outcome.
pub fn run_launch(launch: &Launch, options: &RunOptions) -> Result<Outcome> {
    let start = Instant::now();
    let outcome = match &options.backend {
        Some(backend) => crate::run::run_with_backend(launch, backend, options.timeout, options.echo)?,
        None => crate::run::run(launch, options.timeout, options.echo)?,
    };
    if let Some(line) = libtest_summary(&outcome.console, start.elapsed()) {
        println!("\n{line}");
    }
    if let Some(state) = crate::cell::cell_state(&outcome.console)
        && options.echo
    {
        println!("xtask: the Jailhouse cell ended in state {state}");
    }
    Ok(outcome)
}

/// The exit code a launcher returns for `outcome`: the guest's status,
/// clamped to 1..=255 when it is not 0.
pub fn exit_code(outcome: &Outcome) -> u8 {
    let status = outcome.status();
    u8::try_from(status).unwrap_or(1).max(u8::from(status != 0))
}

/// The harness's `N passed, N failed` (src/harness.rs) as libtest's
/// `test result:` line, so cargo test's readers (and `cargo xtask test`'s
/// totals) count the guest's cases. `None` for an image that is not a test
/// image.
pub fn libtest_summary(console: &str, elapsed: Duration) -> Option<String> {
    let (passed, failed) = console.lines().rev().find_map(|line| {
        let (passed, failed) = line.trim_end().split_once(" passed, ")?;
        let failed = failed.strip_suffix(" failed")?;
        Some((passed.parse::<u64>().ok()?, failed.parse::<u64>().ok()?))
    })?;
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    Some(format!(
        "test result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in \
         {:.2}s",
        elapsed.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_summary_becomes_a_libtest_line() {
        let console = "running 3 test cases\ntest a ... ok\n2 passed, 1 failed\ntidepool: exit status 1\n";
        let line = libtest_summary(console, Duration::from_millis(1500)).unwrap();
        assert_eq!(
            line,
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s"
        );
        assert!(libtest_summary("hello from tidepool\n", Duration::ZERO).is_none());
        let ok = libtest_summary("3 passed, 0 failed\n", Duration::ZERO).unwrap();
        assert!(ok.starts_with("test result: ok. 3 passed; 0 failed;"));
    }

    #[test]
    fn the_board_comes_from_the_image() {
        let error = board_of(Path::new("/nonexistent/elf")).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/elf"));
        // xtask's own ELF is not a Tidepool image.
        let me = std::env::current_exe().unwrap();
        assert!(board_of(&me).unwrap_err().to_string().contains("no .tidepool_board section"));
    }
}
