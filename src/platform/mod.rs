//! The platform model and what every platform source shares.
//!
//! [`Platform`] describes RAM, reservations, DMA pools, devices and their
//! transports, the interrupt controller, console, power interface, timer
//! and command line, whichever source produced it: today a device tree
//! (`devicetree::discover`); a Jailhouse communication region,
//! multiboot with ACPI, or a board's own table would each produce the same
//! model. Every entry carries its [`Origin`] (a tree node, and later a
//! comm-region field, an ACPI table or a board constant), and every error
//! is a [`PlatformError`] naming origin and property or field.
//!
//! Shared with every source: address ranges, page geometry, the address
//! limit, command-line parsing, the rules for device windows
//! ([`check_window`]), and the memory layout ([`layout()`]: pool placement
//! and free RAM), which only reads the model.
//!
//! Nothing here imports a source: sources depend on this module, never the
//! reverse.

// A PlatformError is about 200 bytes: it names origin and property (and for
// an overlap the other origin) in fixed-capacity strings, since errors are
// built before there is a heap to box them in. Errors are rare and returned
// once.
#![allow(clippy::result_large_err)]

mod cmdline;
mod error;
mod layout;
mod model;
mod pci;
mod range;
pub(crate) mod rules;
mod text;

pub use cmdline::bootarg;
pub use error::{ErrorKind, Origin, PlatformError};
pub use layout::{DEVICE_TREE, IMAGE, Layout, MAX_FREE_RANGES, MAX_NORMAL_RANGES, layout};
pub use model::{
    Conduit, Gic, Interrupt, InterruptKind, MAX_ALLOC_RANGES, MAX_BOOTARGS, MAX_MEMORY_RANGES, MAX_POOLS,
    MAX_REDISTRIBUTOR_REGIONS, MAX_RESERVED, MAX_TIMER_INTERRUPTS, MAX_VIRTIO, Placement, Platform, Pool, Psci,
    PsciVersion, Reserved, Timer, Trigger, Uart, VirtioMmio,
};
pub use pci::{
    ConfigMechanism, FunctionPool, IntxRoute, MAX_INTX_ROUTES, MAX_PCI_BRIDGES, MAX_PCI_FUNCTION_POOLS,
    MAX_PCI_WINDOWS, MAX_REFUSED_WINDOWS, PciHostBridge, PciWindow, SpaceCode,
};
pub use range::{Range, RangeError};
pub use text::{BoundedStr, NODE_PATH_CAPACITY, NodePath, PROP_NAME_CAPACITY, PropName, ShortValue, VALUE_CAPACITY};

/// Granule that pools must be aligned to and the heap is carved in.
pub const PAGE_SIZE: u64 = 4096;

/// Highest address (exclusive) the runtime's page tables map: RAM and
/// device windows beyond it can never be used, whatever the source says.
pub const ADDRESS_LIMIT: u64 = crate::arch::mmu::ADDRESS_SPACE_END;

/// The whole pages `range` touches: what mapping it affects. Saturates in
/// the top page of the address space, far above [`ADDRESS_LIMIT`].
pub fn page_span(range: Range) -> Range {
    let base = range.base & !(PAGE_SIZE - 1);
    let end = range.end().saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    Range { base, size: end.saturating_sub(base) }
}

/// Whether `range` is all RAM; `memory` is sorted and disjoint, and a range
/// may span adjacent RAM ranges.
pub fn ram_covers(memory: &[Range], range: Range) -> bool {
    let mut covered_to = range.base;
    for ram in memory {
        if ram.base <= covered_to && covered_to < ram.end() {
            covered_to = ram.end();
        }
        if covered_to >= range.end() {
            return true;
        }
    }
    false
}

/// What a driver needs of a device's register window: at least the bytes
/// it touches, aligned as its registers are.
#[derive(Clone, Copy, Debug)]
pub struct WindowRule {
    /// Bytes the driver accesses: the window must be at least this big.
    pub min_size: u64,
    /// Alignment the window's base must have.
    pub alignment: u64,
}

/// virtio-mmio: registers and config space up to 0x200, the window
/// `MmioRegisters` requires (`virtio::mmio::WINDOW_SIZE`); 32-bit registers.
/// QEMU packs the transports 0x200 apart, so pages are shared between them.
pub const VIRTIO_WINDOW: WindowRule = WindowRule { min_size: 0x200, alignment: 4 };
/// PL011: arm-pl011-uart's register block runs to UARTPCellID3 at 0xffc.
pub const PL011_WINDOW: WindowRule = WindowRule { min_size: 0x1000, alignment: PAGE_SIZE };
/// GICv2 distributor: arm-gic's block runs to GICD_SGIR at 0xf00, in a 4 KiB
/// frame.
pub const GICV2_DISTRIBUTOR_WINDOW: WindowRule = WindowRule { min_size: 0x1000, alignment: PAGE_SIZE };
/// GICv2 CPU interface: GICC_DIR is at 0x1000, so two 4 KiB frames.
pub const GICV2_CPU_INTERFACE_WINDOW: WindowRule = WindowRule { min_size: 0x2000, alignment: PAGE_SIZE };
/// GICv3 distributor: arm-gic's block is the architected 64 KiB (ID
/// registers at 0xffd0..0x10000).
pub const GICV3_DISTRIBUTOR_WINDOW: WindowRule = WindowRule { min_size: 0x1_0000, alignment: PAGE_SIZE };
/// GICv3 redistributor region: at least one redistributor, the RD_base and
/// SGI_base 64 KiB frames arm-gic uses for the one CPU the runtime runs on.
pub const GICV3_REDISTRIBUTOR_WINDOW: WindowRule = WindowRule { min_size: 0x2_0000, alignment: PAGE_SIZE };

/// A PCI host bridge's config and memory windows: mapped as device memory
/// in whole pages, so page-aligned; any size.
pub const PCI_WINDOW: WindowRule = WindowRule { min_size: 1, alignment: PAGE_SIZE };

/// A device window's own problems: beyond the page tables, misaligned, too
/// small for its driver, or sharing a page with RAM (`memory`: each RAM
/// range with its origin, which the error names). The map works in pages
/// and later entries win, so RAM in a window's first or last page would
/// become device memory (code or stack included: the next unaligned access
/// or instruction fetch there faults).
pub fn check_window(range: Range, rule: WindowRule, memory: &[(Range, Origin)]) -> Result<(), ErrorKind> {
    if range.end() > ADDRESS_LIMIT {
        return Err(ErrorKind::BeyondAddressSpace { range, limit: ADDRESS_LIMIT });
    }
    if !range.base.is_multiple_of(rule.alignment) {
        return Err(ErrorKind::Misaligned { value: range.base, alignment: rule.alignment });
    }
    if range.size < rule.min_size {
        return Err(ErrorKind::WindowTooSmall { size: range.size, min: rule.min_size });
    }
    let pages = page_span(range);
    if let Some((ram, memory)) = memory.iter().find(|(ram, _)| ram.overlaps(&pages)) {
        return Err(ErrorKind::DeviceInRam { range, memory: *memory, ram: *ram });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(base: u64, size: u64) -> Range {
        Range::new(base, size).unwrap()
    }

    #[test]
    fn ranges_refuse_zero_sizes_and_wrapping() {
        assert_eq!(Range::new(0x1000, 0), Err(RangeError::ZeroSize { base: 0x1000 }));
        assert_eq!(Range::new(u64::MAX, 1), Err(RangeError::Overflow { base: u64::MAX, size: 1 }));
        assert_eq!(range(u64::MAX - 1, 1).end(), u64::MAX);
    }

    #[test]
    fn window_rules_apply_whatever_the_source() {
        let origin = Origin::Runtime("(RAM)");
        let ram = [(range(0x4000_0000, 0x1000_0000), origin)];
        assert_eq!(check_window(range(0x0900_0000, 0x1000), PL011_WINDOW, &ram), Ok(()));
        assert_eq!(
            check_window(range(0x0900_0800, 0x1000), PL011_WINDOW, &ram),
            Err(ErrorKind::Misaligned { value: 0x0900_0800, alignment: PAGE_SIZE })
        );
        assert_eq!(
            check_window(range(0x0a00_0000, 0x100), VIRTIO_WINDOW, &ram),
            Err(ErrorKind::WindowTooSmall { size: 0x100, min: 0x200 })
        );
        // The last page before RAM is shared with it.
        assert_eq!(
            check_window(range(0x3fff_fe00, 0x200), VIRTIO_WINDOW, &[(range(0x3fff_ff00, 0x100), origin)]),
            Err(ErrorKind::DeviceInRam {
                range: range(0x3fff_fe00, 0x200),
                memory: origin,
                ram: range(0x3fff_ff00, 0x100)
            })
        );
        assert_eq!(
            check_window(range(ADDRESS_LIMIT - 0x100, 0x200), VIRTIO_WINDOW, &ram),
            Err(ErrorKind::BeyondAddressSpace { range: range(ADDRESS_LIMIT - 0x100, 0x200), limit: ADDRESS_LIMIT })
        );
    }

    #[test]
    fn ram_coverage_spans_adjacent_ranges() {
        let memory = [range(0x1000, 0x1000), range(0x2000, 0x1000), range(0x4000, 0x1000)];
        assert!(ram_covers(&memory, range(0x1800, 0x1000)));
        assert!(!ram_covers(&memory, range(0x2800, 0x1000)));
        assert_eq!(page_span(range(0x1ff0, 0x20)), range(0x1000, 0x2000));
    }
}
