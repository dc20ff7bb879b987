//! The Jailhouse communication region as a discovery source: the page the
//! hypervisor fills before it starts a cell, read once into a
//! [`CommRegion`] snapshot and turned, with what the board says
//! ([`CellBoard`]), into a [`Platform`].
//!
//! Layout (Jailhouse's `struct jailhouse_comm_region` for arm64, ABI
//! revision 2, packed little-endian; see `../shared/PLATFORM-NOTES.md`):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0x00 | 6 | signature "JHCOMM" |
//! | 0x06 | 2 | revision |
//! | 0x08 | 4 | cell_state |
//! | 0x0c | 4 | msg_to_cell |
//! | 0x10 | 4 | reply_from_cell |
//! | 0x14 | 4 | flags (bit 0: debug putc permitted, bit 1: active) |
//! | 0x18 | 8 | console.address |
//! | 0x20 | 4 | console.size |
//! | 0x24 | 2 | console.type |
//! | 0x26 | 2 | console.flags (bit 0 MMIO, bit 1 4-byte register distance) |
//! | 0x28 | 4 | console.divider (0: the UART is set up and shared) |
//! | 0x2c | 4 | console.gate_nr |
//! | 0x30 | 8 | console.clock_reg |
//! | 0x38 | 8 | pci_mmconfig_base |
//! | 0x40 | 1 | gic_version (7 bytes padding follow) |
//! | 0x48 | 8 | gicd_base |
//! | 0x50 | 8 | gicc_base |
//! | 0x58 | 8 | gicr_base |
//! | 0x60 | 4 | vpci_irq_base (SPI number: INTID - 32) |
//!
//! Every field is untrusted: the hypervisor is trusted to partition, not to
//! be configured right. Each error names the field.

// A PlatformError is about 200 bytes: see crate::platform.
#![allow(clippy::result_large_err)]

use arrayvec::{ArrayString, ArrayVec};

use crate::platform::rules;
use crate::platform::{
    Conduit, ConfigMechanism, ErrorKind, GICV2_CPU_INTERFACE_WINDOW, GICV2_DISTRIBUTOR_WINDOW,
    GICV3_DISTRIBUTOR_WINDOW, GICV3_REDISTRIBUTOR_WINDOW, Gic, Interrupt, InterruptKind, IntxRoute, Origin, PAGE_SIZE,
    PCI_WINDOW, PL011_WINDOW, PciHostBridge, Platform, PlatformError, Psci, PsciVersion, Range, Reserved, Timer, Uart,
    check_window,
};

use super::CellBoard;

/// Bytes of the region the runtime reads (the page is 4 KiB).
pub const COMM_REGION_BYTES: usize = 0x64;
/// The region's page.
pub const COMM_REGION_PAGE: u64 = 0x1000;

/// The region's first six bytes.
pub const SIGNATURE: [u8; 6] = *b"JHCOMM";
/// The ABI revision this runtime speaks (Jailhouse's
/// `COMM_REGION_ABI_REVISION`).
pub const ABI_REVISION: u16 = 2;

/// Field offsets, for the runtime's writes and for tests.
pub mod offset {
    /// `revision` (u16).
    pub const REVISION: usize = 0x06;
    /// `cell_state` (u32): the cell's state, which the cell writes at its end.
    pub const CELL_STATE: usize = 0x08;
    /// `msg_to_cell` (u32): the hypervisor's message.
    pub const MSG_TO_CELL: usize = 0x0c;
    /// `reply_from_cell` (u32): the cell's answer.
    pub const REPLY_FROM_CELL: usize = 0x10;
    /// `flags` (u32).
    pub const FLAGS: usize = 0x14;
    /// `console.address` (u64).
    pub const CONSOLE_ADDRESS: usize = 0x18;
    /// `console.size` (u32).
    pub const CONSOLE_SIZE: usize = 0x20;
    /// `console.type` (u16).
    pub const CONSOLE_TYPE: usize = 0x24;
    /// `console.flags` (u16).
    pub const CONSOLE_FLAGS: usize = 0x26;
    /// `console.divider` (u32).
    pub const CONSOLE_DIVIDER: usize = 0x28;
    /// `pci_mmconfig_base` (u64).
    pub const PCI_MMCONFIG_BASE: usize = 0x38;
    /// `gic_version` (u8).
    pub const GIC_VERSION: usize = 0x40;
    /// `gicd_base` (u64).
    pub const GICD_BASE: usize = 0x48;
    /// `gicc_base` (u64).
    pub const GICC_BASE: usize = 0x50;
    /// `gicr_base` (u64).
    pub const GICR_BASE: usize = 0x58;
    /// `vpci_irq_base` (u32).
    pub const VPCI_IRQ_BASE: usize = 0x60;
}

/// `flags` bit 0: the cell may use the debug-console hypercall.
pub const FLAG_DEBUG_PUTC_PERMITTED: u32 = 1 << 0;

/// Console type (`JAILHOUSE_CON_TYPE_*`): no console.
pub const CONSOLE_NONE: u16 = 0;
/// An 8250-compatible UART (not driven by the runtime).
pub const CONSOLE_8250: u16 = 2;
/// A PL011.
pub const CONSOLE_PL011: u16 = 3;
/// Console flag: the UART's registers are memory-mapped.
pub const CONSOLE_MMIO: u16 = 1 << 0;

/// SPI numbers a GIC has (INTIDs 32..1020).
const MAX_SPI: u64 = 987;
/// Legacy INTx pins A..D, each its own SPI from the vPCI base.
const INTX_PINS: u32 = 4;

/// Why the region cannot be read at all. Jailhouse's own inmates end in
/// "failed comm ABI" (`cell_state` 4) for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiMismatch {
    /// The page does not start with "JHCOMM" (not a comm region, or the
    /// board names the wrong address).
    Signature {
        /// The first six bytes of the page.
        found: [u8; 6],
    },
    /// A revision this runtime does not speak.
    Revision {
        /// The revision the region gives.
        found: u16,
    },
}

impl core::fmt::Display for AbiMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AbiMismatch::Signature { found } => {
                write!(f, "comm region field \"signature\": {:02x?} is not \"JHCOMM\"", found)
            }
            AbiMismatch::Revision { found } => {
                write!(f, "comm region field \"revision\": ABI revision {found}, this runtime speaks {ABI_REVISION}")
            }
        }
    }
}

/// A copy of the region's platform fields, taken once: the hypervisor can
/// change the page at any time, so validation and use read this copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommRegion {
    /// `flags`: see [`FLAG_DEBUG_PUTC_PERMITTED`].
    pub flags: u32,
    /// `console.address`: the UART's registers.
    pub console_address: u64,
    /// `console.size`: bytes of the UART's window.
    pub console_size: u32,
    /// `console.type`: one of the `CONSOLE_*` types.
    pub console_type: u16,
    /// `console.flags`: see [`CONSOLE_MMIO`].
    pub console_flags: u16,
    /// `console.divider`: 0 when the UART is set up and shared.
    pub console_divider: u32,
    /// `pci_mmconfig_base`: the vPCI host bridge's ECAM window, 0 for none.
    pub pci_mmconfig_base: u64,
    /// `gic_version`: 2 or 3.
    pub gic_version: u8,
    /// `gicd_base`: the GIC distributor.
    pub gicd_base: u64,
    /// `gicc_base`: the GICv2 CPU interface (0 for GICv3).
    pub gicc_base: u64,
    /// `gicr_base`: the GICv3 redistributors.
    pub gicr_base: u64,
    /// `vpci_irq_base`: the SPI number (INTID - 32) of the vPCI's INTA.
    pub vpci_irq_base: u32,
}

fn field<const N: usize>(bytes: &[u8; COMM_REGION_BYTES], at: usize) -> [u8; N] {
    let mut value = [0; N];
    // Offsets are constants inside the region; `get` keeps this total anyway.
    if let Some(source) = bytes.get(at..at + N) {
        value.copy_from_slice(source);
    }
    value
}

impl CommRegion {
    /// Checks signature and revision, then takes the platform fields.
    pub fn parse(bytes: &[u8; COMM_REGION_BYTES]) -> Result<Self, AbiMismatch> {
        let signature: [u8; 6] = field(bytes, 0);
        if signature != SIGNATURE {
            return Err(AbiMismatch::Signature { found: signature });
        }
        let revision = u16::from_le_bytes(field(bytes, offset::REVISION));
        if revision != ABI_REVISION {
            return Err(AbiMismatch::Revision { found: revision });
        }
        let u16_at = |at| u16::from_le_bytes(field(bytes, at));
        let u32_at = |at| u32::from_le_bytes(field(bytes, at));
        let u64_at = |at| u64::from_le_bytes(field(bytes, at));
        Ok(CommRegion {
            flags: u32_at(offset::FLAGS),
            console_address: u64_at(offset::CONSOLE_ADDRESS),
            console_size: u32_at(offset::CONSOLE_SIZE),
            console_type: u16_at(offset::CONSOLE_TYPE),
            console_flags: u16_at(offset::CONSOLE_FLAGS),
            console_divider: u32_at(offset::CONSOLE_DIVIDER),
            pci_mmconfig_base: u64_at(offset::PCI_MMCONFIG_BASE),
            gic_version: field::<1>(bytes, offset::GIC_VERSION)[0],
            gicd_base: u64_at(offset::GICD_BASE),
            gicc_base: u64_at(offset::GICC_BASE),
            gicr_base: u64_at(offset::GICR_BASE),
            vpci_irq_base: u32_at(offset::VPCI_IRQ_BASE),
        })
    }

    /// Whether the cell may print through the debug-console hypercall.
    pub fn debug_putc_permitted(&self) -> bool {
        self.flags & FLAG_DEBUG_PUTC_PERMITTED != 0
    }

    /// Whether the UART is already set up and shared with the hypervisor
    /// and other cells (divider 0): never reprogram it, and wait for it to
    /// go idle before writing.
    pub fn console_shared(&self) -> bool {
        self.console_divider == 0
    }
}

fn at(field: &'static str, kind: ErrorKind) -> PlatformError {
    PlatformError::new(Origin::CommRegion(field), "", kind)
}

fn window(field: &'static str, base: u64, size: u64) -> Result<Range, PlatformError> {
    if base == 0 {
        return Err(at(field, ErrorKind::MissingProperty));
    }
    Range::new(base, size).map_err(|error| at(field, error.into()))
}

/// The platform of a cell: RAM, the comm region's page and the timer from
/// the board; the GIC, console, PSCI (SMC, as Jailhouse offers it) and the
/// virtual PCI host bridge from the region. Every window must fit its
/// driver, lie outside RAM and the region's page, and not overlap another.
pub fn discover(region: &CommRegion, board: &CellBoard) -> Result<Platform, PlatformError> {
    // RAM: the board's ranges and the comm region's page (normal memory,
    // kept out of the heap by a reservation below).
    let page = Range::new(board.comm_region, COMM_REGION_PAGE)
        .map_err(|error| PlatformError::new(Origin::Board("CELL.comm_region"), "", error.into()))?;
    if !board.comm_region.is_multiple_of(PAGE_SIZE) {
        let kind = ErrorKind::Misaligned { value: board.comm_region, alignment: PAGE_SIZE };
        return Err(PlatformError::new(Origin::Board("CELL.comm_region"), "", kind));
    }
    let mut memory: ArrayVec<(Range, Origin), { crate::platform::MAX_MEMORY_RANGES }> = ArrayVec::new();
    for &(base, size) in board.ram {
        let range =
            Range::new(base, size).map_err(|error| PlatformError::new(Origin::Board("CELL.ram"), "", error.into()))?;
        memory
            .try_push((range, Origin::Board("CELL.ram")))
            .map_err(|_| PlatformError::new(Origin::Board("CELL.ram"), "", ErrorKind::TooManyEntries { limit: 15 }))?;
    }
    if memory.is_empty() {
        return Err(PlatformError::new(Origin::Board("CELL.ram"), "", ErrorKind::MissingProperty));
    }
    memory
        .try_push((page, Origin::Board("CELL.comm_region")))
        .map_err(|_| PlatformError::new(Origin::Board("CELL.ram"), "", ErrorKind::TooManyEntries { limit: 15 }))?;
    let sorted = rules::check_memory(&mut memory, "")?;
    let mut reserved = ArrayVec::new();
    // Capacity is at least one.
    let _ = reserved.try_push(Reserved { origin: Origin::Board("CELL.comm_region"), range: page, no_map: false });

    let gic = read_gic(region, board, &memory)?;
    let uart = read_console(region, &memory)?;
    let pci = read_vpci(region, board, &memory)?;

    // No two windows over the same registers: a driver would program
    // another driver's device.
    let mut windows: ArrayVec<(Origin, Range), 8> = ArrayVec::new();
    let gic_fields: &[&'static str] = match &gic {
        Gic::V2 { .. } => &["gicd_base", "gicc_base"],
        Gic::V3 { .. } => &["gicd_base", "gicr_base"],
    };
    for (field, range) in gic_fields.iter().zip(gic.ranges()) {
        let _ = windows.try_push((Origin::CommRegion(field), range));
    }
    if let Some(uart) = &uart {
        let _ = windows.try_push((uart.origin, uart.reg));
    }
    if let Some(bridge) = &pci {
        let _ = windows.try_push((bridge.origin, bridge.config));
    }
    rules::check_disjoint_windows(&windows, "")?;

    let psci = Psci {
        conduit: Conduit::Smc,
        version: PsciVersion::V1_0,
        cpu_suspend: None,
        cpu_off: None,
        cpu_on: None,
        migrate: None,
    };
    let timer = Timer {
        interrupts: board
            .timer_ppis
            .iter()
            .map(|&number| Interrupt { kind: InterruptKind::Ppi, number, flags: 4 })
            .collect(),
    };
    let mut pci_bridges = ArrayVec::new();
    if let Some(bridge) = pci {
        let _ = pci_bridges.try_push(Ok(bridge));
    }
    Ok(Platform {
        memory: sorted,
        reserved,
        pools: ArrayVec::new(),
        virtio: ArrayVec::new(),
        pci: pci_bridges,
        gic: Some(gic),
        gic_origin: Origin::CommRegion("gic_version"),
        psci: Some(psci),
        timer: Some(timer),
        uart,
        bootargs: ArrayString::new(),
    })
}

fn read_gic(region: &CommRegion, board: &CellBoard, memory: &[(Range, Origin)]) -> Result<Gic, PlatformError> {
    let check = |field, range: Range, rule| check_window(range, rule, memory).map_err(|kind| at(field, kind));
    match region.gic_version {
        2 => {
            let distributor = window("gicd_base", region.gicd_base, GICV2_DISTRIBUTOR_WINDOW.min_size)?;
            let cpu_interface = window("gicc_base", region.gicc_base, GICV2_CPU_INTERFACE_WINDOW.min_size)?;
            check("gicd_base", distributor, GICV2_DISTRIBUTOR_WINDOW)?;
            check("gicc_base", cpu_interface, GICV2_CPU_INTERFACE_WINDOW)?;
            Ok(Gic::V2 { distributor, cpu_interface })
        }
        3 => {
            let distributor = window("gicd_base", region.gicd_base, GICV3_DISTRIBUTOR_WINDOW.min_size)?;
            // The region gives only the base; the board knows how many
            // frames (CPUs) the system has.
            let redistributor = window("gicr_base", region.gicr_base, board.gicr_size)?;
            check("gicd_base", distributor, GICV3_DISTRIBUTOR_WINDOW)?;
            check("gicr_base", redistributor, GICV3_REDISTRIBUTOR_WINDOW)?;
            let mut redistributors = ArrayVec::new();
            let _ = redistributors.try_push(redistributor);
            Ok(Gic::V3 { distributor, redistributors })
        }
        other => Err(at("gic_version", ErrorKind::OutOfRange { value: other.into(), min: 2, max: 3 })),
    }
}

fn read_console(region: &CommRegion, memory: &[(Range, Origin)]) -> Result<Option<Uart>, PlatformError> {
    let origin = Origin::CommRegion("console");
    match region.console_type {
        CONSOLE_NONE => Ok(None),
        CONSOLE_PL011 => {
            if region.console_flags & CONSOLE_MMIO == 0 {
                let value = crate::platform::ShortValue::new("port I/O");
                return Err(at("console.flags", ErrorKind::UnsupportedValue { value }));
            }
            // console.size is 0 in Jailhouse's own configs: the PL011's
            // window is its 4 KiB page whatever the region says.
            let reg = window("console.address", region.console_address, PL011_WINDOW.min_size)?;
            check_window(reg, PL011_WINDOW, memory).map_err(|kind| at("console.address", kind))?;
            Ok(Some(Uart { origin, reg, interrupt: None }))
        }
        other => {
            let mut value = crate::platform::ShortValue::new("type ");
            let mut digits = ArrayString::<8>::new();
            let _ = core::fmt::write(&mut digits, format_args!("{other}"));
            value.push_str(&digits);
            if other == CONSOLE_8250 {
                value.push_str(" (8250)");
            }
            Err(at("console.type", ErrorKind::UnsupportedValue { value }))
        }
    }
}

/// Jailhouse's virtual PCI host bridge: an ECAM window of the board's bus
/// count at `pci_mmconfig_base`, legacy INTx pin n of every device on SPI
/// `vpci_irq_base + n - 1`, edge-triggered. No memory windows: ivshmem
/// BARs are placed by the guest itself.
fn read_vpci(
    region: &CommRegion,
    board: &CellBoard,
    memory: &[(Range, Origin)],
) -> Result<Option<PciHostBridge>, PlatformError> {
    if region.pci_mmconfig_base == 0 {
        return Ok(None);
    }
    let buses = u64::from(board.pci_buses.max(1));
    let config = window("pci_mmconfig_base", region.pci_mmconfig_base, buses << 20)?;
    if !config.base.is_multiple_of(1 << 20) {
        return Err(at("pci_mmconfig_base", ErrorKind::Misaligned { value: config.base, alignment: 1 << 20 }));
    }
    check_window(config, PCI_WINDOW, memory).map_err(|kind| at("pci_mmconfig_base", kind))?;
    let base = u64::from(region.vpci_irq_base);
    let max = MAX_SPI - u64::from(INTX_PINS - 1);
    if !(1..=max).contains(&base) {
        return Err(at("vpci_irq_base", ErrorKind::OutOfRange { value: base, min: 1, max }));
    }
    let mut intx = ArrayVec::new();
    for pin in 1..=INTX_PINS {
        let interrupt = Interrupt { kind: InterruptKind::Spi, number: region.vpci_irq_base + pin - 1, flags: 1 };
        let _ = intx.try_push(IntxRoute { child_hi: 0, pin, interrupt });
    }
    Ok(Some(PciHostBridge {
        origin: Origin::CommRegion("pci_mmconfig_base"),
        mechanism: ConfigMechanism::Ecam,
        config,
        bus_start: 0,
        bus_end: (buses - 1) as u8,
        windows: ArrayVec::new(),
        refused_windows: ArrayVec::new(),
        dma_coherent: true,
        pool: None,
        function_pools: ArrayVec::new(),
        // Only the pin selects the route.
        interrupt_map_mask: [0, 0, 0, 7],
        intx,
    }))
}
