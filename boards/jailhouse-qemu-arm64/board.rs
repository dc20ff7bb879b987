// jailhouse-qemu-arm64: a Jailhouse cell on Jailhouse's QEMU arm64 target
// (QEMU virt, GICv3, root cell configs/arm64/qemu-arm64.c). Included by
// src/board.rs (build.rs points it here). The cell itself is described in
// tidepool-cell.c, in Jailhouse's config format; keep the two in step.

/// The board's name, as printed at boot.
pub const NAME: &str = "jailhouse-qemu-arm64";

/// The boot map in 1 GiB blocks: device memory in the first GiB (GIC,
/// PL011, vPCI), normal memory in the second and third (the cell's RAM at
/// 0x4000_0000 and the comm region at 0x8000_0000), nothing above. The
/// final map keeps only what the cell has.
pub const BOOT_MAP_NORMAL_GIB: (u64, u64) = (1, 3);

/// The PL011 the cell shares with the hypervisor and the root cell: usable
/// before the comm region is read (and written to as a shared UART).
pub const EARLY_UART: Option<usize> = Some(0x0900_0000);

/// What the comm region does not say (tidepool-cell.c has the same).
pub const JAILHOUSE_CELL: Option<crate::jailhouse::CellBoard> = Some(crate::jailhouse::CellBoard {
    comm_region: 0x8000_0000,
    // 64 MiB at IPA 0x4000_0000 (physical 0x7000_0000 in the root cell).
    ram: &[(0x4000_0000, 64 << 20)],
    // QEMU virt's redistributor frames for 2 CPUs (128 KiB each); the
    // frame of this CPU is found by affinity.
    gicr_size: 2 * 0x2_0000,
    // The root config's vPCI: pci_mmconfig_end_bus 0.
    pci_buses: 1,
    // The cell runs on CPU 1.
    cpu: 1,
    // QEMU virt's timer PPIs: secure 13, non-secure 14, virtual 11, hyp 10.
    timer_ppis: [13, 14, 11, 10],
});
