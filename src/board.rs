//! What the image knows about its board before it has read a device tree.
//!
//! The board is chosen at build time (`TIDEPOOL_BOARD`, default
//! `qemu-virt`); its constants are `boards/<name>/board.rs`, which build.rs
//! points this module at: `NAME`, and `EARLY_UART`, a PL011 that may be used
//! to report a boot failure before (or instead of) the platform's own
//! console (`None` where no address is architectural for the board).

include!(env!("TIDEPOOL_BOARD_CONSTANTS"));

/// The board's name in a section of its own, outside the loaded image
/// (linker/image.ld keeps it, non-allocated): the runner (`tidepool-runner`,
/// xtask) reads it from the ELF to know how to launch an image.
#[cfg(all(target_os = "none", feature = "image"))]
#[used]
#[unsafe(link_section = ".tidepool_board")]
static BOARD_NAME: [u8; NAME.len()] = board_name_bytes();

#[cfg(all(target_os = "none", feature = "image"))]
const fn board_name_bytes() -> [u8; NAME.len()] {
    let mut bytes = [0; NAME.len()];
    let mut index = 0;
    while index < NAME.len() {
        bytes[index] = NAME.as_bytes()[index];
        index += 1;
    }
    bytes
}

/// A device tree built into the image, for loaders that pass none (x0 = 0),
/// such as a Jailhouse cell or QEMU booting an ELF: `$TIDEPOOL_BUILTIN_DTB`
/// at build time (see build.rs). `None` when the loader always passes one.
#[cfg(tidepool_builtin_dtb)]
pub const BUILTIN_DTB: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/builtin.dtb")));
/// A device tree built into the image: none in this build
/// (`$TIDEPOOL_BUILTIN_DTB` was not set), so the loader must pass one.
#[cfg(not(tidepool_builtin_dtb))]
pub const BUILTIN_DTB: Option<&[u8]> = None;
