//! PSCI power calls over the conduit that `/psci` names.

use smccc::{Hvc, Smc, psci};

use crate::platform::Conduit;

/// Asks the firmware or hypervisor to power the system off. Returns only if
/// the call failed.
pub fn system_off(conduit: Conduit) -> psci::Error {
    let result = match conduit {
        Conduit::Hvc => psci::system_off::<Hvc>(),
        Conduit::Smc => psci::system_off::<Smc>(),
    };
    match result {
        Ok(()) => psci::Error::NotSupported,
        Err(error) => error,
    }
}

/// Powers the calling CPU off. Returns only if the call failed.
pub fn cpu_off(conduit: Conduit) -> psci::Error {
    let result = match conduit {
        Conduit::Hvc => psci::cpu_off::<Hvc>(),
        Conduit::Smc => psci::cpu_off::<Smc>(),
    };
    match result {
        Ok(()) => psci::Error::NotSupported,
        Err(error) => error,
    }
}

/// Asks for a system reset. Returns only if the call failed.
pub fn system_reset(conduit: Conduit) -> psci::Error {
    let result = match conduit {
        Conduit::Hvc => psci::system_reset::<Hvc>(),
        Conduit::Smc => psci::system_reset::<Smc>(),
    };
    match result {
        Ok(()) => psci::Error::NotSupported,
        Err(error) => error,
    }
}
