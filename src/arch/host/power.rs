//! No machine to power off on the host.

use core::fmt;

use crate::platform::Platform;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerError;

impl PowerError {
    pub fn is_not_supported(&self) -> bool {
        false
    }
}

impl fmt::Display for PowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("power calls are only meaningful on the target")
    }
}

pub fn configure(_platform: &Platform) {}

pub fn set_conduit(_conduit: Option<crate::platform::Conduit>) {}

pub fn debug_exit(status: u32) -> ! {
    panic!("debug exit {status} is only meaningful on the target")
}

pub fn off() -> PowerError {
    PowerError
}

pub fn reset() -> PowerError {
    PowerError
}

pub fn cpu_off() -> PowerError {
    PowerError
}
