//! aarch64: entry, exceptions, MMU, PSCI and semihosting.

pub mod esr;

#[cfg(all(target_arch = "aarch64", feature = "image"))]
mod entry;
#[cfg(all(target_arch = "aarch64", feature = "image"))]
pub mod exceptions;
#[cfg(target_arch = "aarch64")]
pub mod mmu;
#[cfg(target_arch = "aarch64")]
pub mod psci;
#[cfg(target_arch = "aarch64")]
pub mod semihosting;
#[cfg(target_arch = "aarch64")]
pub mod timer;
