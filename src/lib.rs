//! Tidepool: a bare-metal runtime for aarch64 guests of embedded hypervisors.
//!
//! An image links this crate, declares its `main` with [`entry!`] and gets
//! a validated [`platform::Platform`], a console, a heap and an identity
//! map. See `docs/architecture.md` for how the pieces fit.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

// The fuzzing feature exposes test fakes; an image must never carry them.
#[cfg(all(feature = "fuzzing", feature = "image"))]
compile_error!("the `fuzzing` feature is for the host fuzz targets (fuzz/) and must not be enabled in an image");

pub mod arch;
pub mod board;
pub mod boot;
pub mod console;
pub mod devicetree;
pub mod dma;
pub mod exit;
pub mod harness;
pub mod heap;
pub mod hostmem;
pub mod interrupts;
pub mod jailhouse;
pub mod pci;
pub mod platform;
pub mod time;
pub mod virtio;

pub use boot::Boot;
pub use harness::{TestFailure, TestResult};

#[doc(hidden)]
pub use alloc::format as __format;

/// Declares the image's main function: `fn main(boot: &'static Boot) -> u32`,
/// whose return value is the image's exit status.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(export_name = "tidepool_main")]
        fn __tidepool_main(boot: &'static $crate::Boot) -> u32 {
            $main(boot)
        }
    };
}

#[cfg(all(feature = "image", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(location) => console::emergency_print(format_args!(
            "\n*** panic at {}:{}:{}: {}\n",
            location.file(),
            location.line(),
            location.column(),
            info.message()
        )),
        None => console::emergency_print(format_args!("\n*** panic: {}\n", info.message())),
    }
    exit::exit(exit::FAILURE_PANIC)
}
