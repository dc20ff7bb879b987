//! Ending the image with a status that the host can see.
//!
//! The runtime always prints `tidepool: exit status N` as its last line, so
//! a launcher can read the status from the console. With semihosting enabled
//! (`tidepool.exit=semihosting` on the command line) QEMU's own exit code is
//! the status too; otherwise (`tidepool.exit=psci`, or nothing) the image
//! powers off through PSCI SYSTEM_OFF.
//!
//! Parts of the runtime with something to report however the image ends
//! (the DMA pools' counters) register it with [`at_exit`]; exit knows none
//! of them, so they can call [`exit`] without a dependency cycle.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use arrayvec::ArrayVec;
use spin::Mutex;

use crate::devicetree::Conduit;

pub const SUCCESS: u32 = 0;
/// A test case failed, or the image's main returned an error.
pub const FAILURE: u32 = 1;
/// The image panicked.
pub const FAILURE_PANIC: u32 = 101;
/// The image took an exception it could not handle.
pub const FAILURE_EXCEPTION: u32 = 102;
/// The boot itself failed (invalid device tree, no memory, ...).
pub const FAILURE_BOOT: u32 = 103;

/// The exit line's prefix, parsed by the launcher.
pub const EXIT_LINE_PREFIX: &str = "tidepool: exit status ";

const METHOD_PSCI: u8 = 0;
const METHOD_SEMIHOSTING: u8 = 1;

static METHOD: AtomicU8 = AtomicU8::new(METHOD_PSCI);
static CONDUIT: AtomicU32 = AtomicU32::new(0);

/// How many reports [`at_exit`] holds.
pub const MAX_FINAL_REPORTS: usize = 4;

static FINAL_REPORTS: Mutex<ArrayVec<fn(), MAX_FINAL_REPORTS>> = Mutex::new(ArrayVec::new_const());
static REPORTED: AtomicBool = AtomicBool::new(false);

/// [`at_exit`] already holds [`MAX_FINAL_REPORTS`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalReportsFull;

impl core::fmt::Display for FinalReportsFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no room for another final report (max {MAX_FINAL_REPORTS})")
    }
}

/// Has [`exit`] call `report` before the exit line, in the order of
/// registration, however the image ends.
pub fn at_exit(report: fn()) -> Result<(), FinalReportsFull> {
    FINAL_REPORTS.lock().try_push(report).map_err(|_| FinalReportsFull)
}

/// Runs the registered reports, once per image: a report that panics or
/// faults comes back through [`exit`], which must then still end the image.
fn run_final_reports() {
    if REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    // Never wait: the image may be ending inside `at_exit`. Copied out so
    // that the lock is not held while the reports run.
    let Some(reports) = FINAL_REPORTS.try_lock().map(|reports| reports.clone()) else {
        return;
    };
    for report in reports {
        report();
    }
}

/// How the image ends, from the command line and the `/psci` conduit.
pub fn configure(bootargs: &str, conduit: Option<Conduit>) {
    // The last `tidepool.exit=` word wins, so a launcher's default can be
    // overridden by words appended after it.
    let semihosting = crate::devicetree::bootarg(bootargs, "tidepool.exit") == Some("semihosting");
    METHOD.store(if semihosting { METHOD_SEMIHOSTING } else { METHOD_PSCI }, Ordering::Relaxed);
    let conduit = match conduit {
        None => 0,
        Some(Conduit::Hvc) => 1,
        Some(Conduit::Smc) => 2,
    };
    CONDUIT.store(conduit, Ordering::Relaxed);
}

/// The PSCI conduit that [`configure`] recorded.
#[cfg(target_arch = "aarch64")]
fn conduit() -> Option<Conduit> {
    match CONDUIT.load(Ordering::Relaxed) {
        1 => Some(Conduit::Hvc),
        2 => Some(Conduit::Smc),
        _ => None,
    }
}

/// Resets the system through PSCI SYSTEM_RESET over the `/psci` conduit.
/// Returns only if there is no conduit or the call failed (with why).
pub fn reset() -> &'static str {
    crate::console::emergency_print(format_args!("tidepool: system reset\n"));
    #[cfg(target_arch = "aarch64")]
    {
        let Some(conduit) = conduit() else {
            return "the device tree names no PSCI conduit";
        };
        let error = crate::arch::aarch64::psci::system_reset(conduit);
        crate::console::emergency_print(format_args!("tidepool: PSCI SYSTEM_RESET failed: {error:?}\n"));
        "PSCI SYSTEM_RESET failed"
    }
    #[cfg(not(target_arch = "aarch64"))]
    "reset is only meaningful on the target"
}

/// Prints the exit line and ends the image. Never returns.
pub fn exit(status: u32) -> ! {
    run_final_reports();
    crate::console::emergency_print(format_args!("{EXIT_LINE_PREFIX}{status}\n"));
    #[cfg(target_arch = "aarch64")]
    {
        if METHOD.load(Ordering::Relaxed) == METHOD_SEMIHOSTING {
            crate::arch::aarch64::semihosting::exit(status);
        }
        if let Some(conduit) = conduit() {
            let error = crate::arch::aarch64::psci::system_off(conduit);
            crate::console::emergency_print(format_args!("tidepool: PSCI SYSTEM_OFF failed: {error:?}\n"));
        }
        loop {
            aarch64_cpu::asm::wfe();
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    panic!("exit({status}) is only meaningful on the target");
}
