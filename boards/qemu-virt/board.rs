// qemu-virt: what the runtime knows about the board before it has read a
// device tree. Included by src/board.rs (build.rs points it here).

/// The board's name, as printed at boot.
pub const NAME: &str = "qemu-virt";

/// The boot map the entry code switches on before anything else, in 1 GiB
/// blocks: device memory below the first number (QEMU virt's devices, the
/// early UART among them, are in the first GiB), normal memory from there
/// to the second (RAM starts at 1 GiB; the image, the loader's tree and the
/// early heap must be in this range), nothing above.
pub const BOOT_MAP_NORMAL_GIB: (u64, u64) = (1, 4);

/// QEMU virt's PL011, usable to report a boot failure before (or instead
/// of) the tree's own console: its address is fixed for the machine type,
/// and the boot map (first GiB device memory) covers it.
pub const EARLY_UART: Option<usize> = Some(0x0900_0000);

/// Not a Jailhouse cell: the platform comes from a device tree.
pub const JAILHOUSE_CELL: Option<crate::jailhouse::CellBoard> = None;
