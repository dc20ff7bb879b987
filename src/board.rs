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
/// such as a Jailhouse cell or QEMU booting an ELF: `$TIDEPOOL_BUILTIN_DTB`
/// at build time (see build.rs). `None` when the loader always passes one.
#[cfg(tidepool_builtin_dtb)]
pub const BUILTIN_DTB: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/builtin.dtb")));
#[cfg(not(tidepool_builtin_dtb))]
pub const BUILTIN_DTB: Option<&[u8]> = None;

/// The board's name, as printed at boot.
#[cfg(tidepool_board = "qemu-virt")]
pub const NAME: &str = "qemu-virt";
#[cfg(not(tidepool_board = "qemu-virt"))]
pub const NAME: &str = "unknown";
