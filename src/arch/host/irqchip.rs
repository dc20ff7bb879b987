//! No interrupt controller on the host.

use crate::interrupts::InterruptError;
use crate::platform::Platform;

/// # Safety
///
/// Nothing to uphold on the host; the signature matches the targets'.
pub unsafe fn init(_platform: &Platform) -> Result<(), InterruptError> {
    Err(InterruptError::NoController)
}

/// Fails: no interrupt controller on the host.
pub fn enable(_intid: u32, _trigger_level: bool) -> Result<(), InterruptError> {
    Err(InterruptError::NoController)
}
