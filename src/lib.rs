//! Tidepool: a bare-metal runtime for aarch64 guests of embedded hypervisors.
//!
//! An image links this crate, declares its `main` with [`entry!`] and gets
//! a validated [`platform::Platform`], a console, a heap and an identity
//! map. See `docs/architecture.md` for how the pieces fit.
//!
//! Images are built for `aarch64-unknown-none` with the `image` feature
//! (entry point, exception vectors, allocator, panic handler) and linked
//! with the board's linker script, which this crate's build script supplies
//! (`TIDEPOOL_BOARD`, default `qemu-virt`). Without the feature the crate
//! builds for the host, where the unit tests and these docs' examples run.
//!
//! Where to start: [`entry!`] or [`test_image!`] and [`Boot`]; devices
//! from `virtio::probe` (bare metal only), each bound to its restricted
//! DMA pool ([`dma`], [`with_pool_hal!`]); shared host memory through
//! [`hostmem`]; the exit statuses in [`exit`].

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
///
/// The runtime calls it once, at EL1, after the boot has succeeded (see
/// [`Boot`] for what that guarantees); when it returns, the image ends with
/// its value as the status ([`exit::SUCCESS`], [`exit::FAILURE`], or any
/// other). It need not return: [`exit::exit`] ends the image from anywhere.
/// An image has exactly one `entry!` (or one [`test_image!`], which uses it).
///
/// ```ignore
/// // examples/my_image.rs, with `required-features = ["image"]` in Cargo.toml
/// #![no_std]
/// #![no_main]
///
/// use tidepool::{Boot, println};
///
/// tidepool::entry!(main);
///
/// fn main(boot: &'static Boot) -> u32 {
///     println!("{}", boot.platform); // what the device tree described
///     tidepool::exit::SUCCESS
/// }
/// ```
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
