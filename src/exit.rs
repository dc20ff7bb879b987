//! Ending the image with a status that the host can see.
//!
//! The runtime always prints `tidepool: exit status N` as its last line, so
//! a launcher can read the status from the console. With semihosting enabled
//! (`tidepool.exit=semihosting` on the command line) QEMU's own exit code is
//! the status too; otherwise (`tidepool.exit=psci`, or nothing) the image
//! powers off through the platform's power interface (PSCI SYSTEM_OFF on
//! aarch64), unless the platform ends images its own way
//! ([`set_platform_end`]: a Jailhouse cell writes its state, then turns its
//! CPU off).
//!
//! Parts of the runtime with something to report however the image ends
//! (the DMA pools' counters) register it with [`at_exit`]; exit knows none
//! of them, so they can call [`exit`] without a dependency cycle.

use core::sync::atomic::{AtomicBool, Ordering};

use arrayvec::ArrayVec;
use spin::Mutex;

use crate::platform::Platform;

/// The image succeeded: main returned 0, or every test case passed.
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

/// Whether the launcher's debug exit (semihosting under QEMU) ends the image.
static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);

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

/// How the platform ends an image instead of powering off (a Jailhouse
/// cell writes its state and turns its CPU off).
static PLATFORM_END: spin::Once<fn(u32) -> !> = spin::Once::new();

/// Makes `end` the image's end after the exit line, in place of powering
/// off. The first call wins.
pub fn set_platform_end(end: fn(u32) -> !) {
    PLATFORM_END.call_once(|| end);
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

/// How the image ends: the launcher's debug exit when the command line says
/// `tidepool.exit=semihosting`, else the power interface `platform` names.
pub fn configure(bootargs: &str, platform: &Platform) {
    // The last `tidepool.exit=` word wins, so a launcher's default can be
    // overridden by words appended after it.
    let debug_exit = crate::platform::bootarg(bootargs, "tidepool.exit") == Some("semihosting");
    DEBUG_EXIT.store(debug_exit, Ordering::Relaxed);
    crate::arch::power::configure(platform);
}

/// Resets the system through the platform's power interface (PSCI
/// SYSTEM_RESET on aarch64). Returns only if that failed, with why.
pub fn reset() -> crate::arch::power::PowerError {
    crate::console::emergency_print(format_args!("tidepool: system reset\n"));
    let error = crate::arch::power::reset();
    crate::console::emergency_print(format_args!("tidepool: {error}\n"));
    error
}

/// Prints the exit line and ends the image. Never returns.
pub fn exit(status: u32) -> ! {
    run_final_reports();
    crate::console::emergency_print(format_args!("{EXIT_LINE_PREFIX}{status}\n"));
    if DEBUG_EXIT.load(Ordering::Relaxed) {
        crate::arch::power::debug_exit(status);
    }
    if let Some(end) = PLATFORM_END.get() {
        end(status)
    }
    let error = crate::arch::power::off();
    crate::console::emergency_print(format_args!("tidepool: {error}\n"));
    crate::arch::halt()
}
