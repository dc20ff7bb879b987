//! What the image knows about its board before it has read a device tree.
//!
//! The board is chosen at build time (`TIDEPOOL_BOARD`, default `qemu-virt`);
//! `build.rs` turns it into the `tidepool_board` cfg.

/// A PL011 that may be used to report a boot failure before (or instead of)
/// the tree's own console. Only boards where the address is architectural
/// for the platform name one.
#[cfg(tidepool_board = "qemu-virt")]
pub const EARLY_UART: Option<usize> = Some(0x0900_0000);
#[cfg(not(tidepool_board = "qemu-virt"))]
pub const EARLY_UART: Option<usize> = None;

/// A device tree built into the image, for loaders that pass none (x0 = 0),
/// such as a Jailhouse cell. `None` on boards whose loader always passes one.
pub const BUILTIN_DTB: Option<&[u8]> = None;

/// The board's name, as printed at boot.
#[cfg(tidepool_board = "qemu-virt")]
pub const NAME: &str = "qemu-virt";
#[cfg(not(tidepool_board = "qemu-virt"))]
pub const NAME: &str = "unknown";
