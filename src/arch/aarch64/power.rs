//! Ending and resetting the machine on aarch64: Arm semihosting for a
//! launcher's debug exit, PSCI SYSTEM_OFF / SYSTEM_RESET over the conduit
//! the platform names.

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::platform::{Conduit, Platform};

const NO_CONDUIT: u8 = 0;
const HVC: u8 = 1;
const SMC: u8 = 2;

static CONDUIT: AtomicU8 = AtomicU8::new(NO_CONDUIT);

/// Why the machine is still running after a power call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerError {
    /// The platform names no PSCI conduit.
    NoConduit,
    /// SYSTEM_OFF was refused.
    Off(smccc::psci::Error),
    /// SYSTEM_RESET was refused.
    Reset(smccc::psci::Error),
    /// CPU_OFF was refused.
    CpuOff(smccc::psci::Error),
}

impl PowerError {
    /// Whether the firmware or hypervisor answered that it does not offer
    /// the call (as Jailhouse answers SYSTEM_OFF).
    pub fn is_not_supported(&self) -> bool {
        matches!(
            self,
            PowerError::Off(smccc::psci::Error::NotSupported)
                | PowerError::Reset(smccc::psci::Error::NotSupported)
                | PowerError::CpuOff(smccc::psci::Error::NotSupported)
        )
    }
}

impl fmt::Display for PowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerError::NoConduit => f.write_str("the platform names no PSCI conduit"),
            PowerError::Off(error) => write!(f, "PSCI SYSTEM_OFF failed: {error:?}"),
            PowerError::Reset(error) => write!(f, "PSCI SYSTEM_RESET failed: {error:?}"),
            PowerError::CpuOff(error) => write!(f, "PSCI CPU_OFF failed: {error:?}"),
        }
    }
}

/// Records how to reach the power interface `platform` names.
pub fn configure(platform: &Platform) {
    set_conduit(platform.psci_conduit());
}

/// Records the PSCI conduit before there is a platform (a Jailhouse cell
/// must be able to end before its comm region is validated: PSCI there is
/// always SMC).
pub fn set_conduit(conduit: Option<Conduit>) {
    let conduit = match conduit {
        None => NO_CONDUIT,
        Some(Conduit::Hvc) => HVC,
        Some(Conduit::Smc) => SMC,
    };
    CONDUIT.store(conduit, Ordering::Relaxed);
}

fn conduit() -> Option<Conduit> {
    match CONDUIT.load(Ordering::Relaxed) {
        HVC => Some(Conduit::Hvc),
        SMC => Some(Conduit::Smc),
        _ => None,
    }
}

/// Ends the program with `status` as the launcher's exit code (Arm
/// semihosting SYS_EXIT). Only called when the command line says the
/// launcher provides it: without a semihosting host the HLT traps.
pub fn debug_exit(status: u32) -> ! {
    super::semihosting::exit(status)
}

/// Powers the machine off; returns only if that failed.
pub fn off() -> PowerError {
    match conduit() {
        Some(conduit) => PowerError::Off(super::psci::system_off(conduit)),
        None => PowerError::NoConduit,
    }
}

/// Powers this CPU off (how a Jailhouse cell ends: the hypervisor refuses
/// SYSTEM_OFF); returns only if that failed.
pub fn cpu_off() -> PowerError {
    match conduit() {
        Some(conduit) => PowerError::CpuOff(super::psci::cpu_off(conduit)),
        None => PowerError::NoConduit,
    }
}

/// Resets the machine; returns only if that failed.
pub fn reset() -> PowerError {
    match conduit() {
        Some(conduit) => PowerError::Reset(super::psci::system_reset(conduit)),
        None => PowerError::NoConduit,
    }
}
