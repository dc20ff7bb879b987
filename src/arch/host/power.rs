//! No machine to power off on the host.

use core::fmt;

use crate::platform::Platform;

/// Every power call fails on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerError;

impl PowerError {
    /// Always false: the host never answers "not supported".
    pub fn is_not_supported(&self) -> bool {
        false
    }
}

impl fmt::Display for PowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("power calls are only meaningful on the target")
    }
}

/// Nothing to record on the host.
pub fn configure(_platform: &Platform) {}

/// Nothing to record on the host.
pub fn set_conduit(_conduit: Option<crate::platform::Conduit>) {}

/// Panics: only the target has a debug exit.
pub fn debug_exit(status: u32) -> ! {
    panic!("debug exit {status} is only meaningful on the target")
}

/// Fails: no machine to power off.
pub fn off() -> PowerError {
    PowerError
}

/// Fails: no machine to reset.
pub fn reset() -> PowerError {
    PowerError
}

/// Fails: no CPU to turn off.
pub fn cpu_off() -> PowerError {
    PowerError
}
