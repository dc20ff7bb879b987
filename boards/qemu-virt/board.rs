// qemu-virt: what the runtime knows about the board before it has read a
// device tree. Included by src/board.rs (build.rs points it here).

/// The board's name, as printed at boot.
pub const NAME: &str = "qemu-virt";

/// QEMU virt's PL011, usable to report a boot failure before (or instead
/// of) the tree's own console: its address is fixed for the machine type,
/// and the boot map (first GiB device memory) covers it.
pub const EARLY_UART: Option<usize> = Some(0x0900_0000);
