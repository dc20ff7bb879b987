//! The host side of building and running Tidepool images: QEMU setup, image
//! builds, board trees, and launching with a timeout. The `cargo xtask`
//! binary and the QEMU integration tests (`tests/`) both use this library.

pub mod backend;
pub mod bench;
pub mod board;
pub mod cell;
pub mod dtb;
pub mod fuzz;
pub mod image;
pub mod paths;
pub mod qemu;
pub mod run;
pub mod runner;
pub mod setup;
pub mod signals;

use std::fmt;

/// An error that ends an xtask command with a message and status 1 (no
/// backtrace: the message says what to do).
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error(error.to_string())
    }
}

/// xtask's result: errors are messages ([`Error`]).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Err(Error(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error(format!($($arg)*))) };
}

/// Runs a command to completion, failing with its name and status.
pub fn run_command(command: &mut std::process::Command) -> Result<()> {
    let status =
        command.status().map_err(|error| Error(format!("cannot start {:?}: {error}", command.get_program())))?;
    if !status.success() {
        bail!("{:?} failed with {status}", command);
    }
    Ok(())
}
