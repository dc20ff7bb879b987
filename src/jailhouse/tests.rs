//! The comm region as a discovery source, against the values Jailhouse's
//! QEMU arm64 target writes and against hostile ones.

#![allow(clippy::result_large_err)] // as in comm_region.rs

use std::string::{String, ToString};

use super::comm_region::{COMM_REGION_BYTES, CommRegion, discover, offset};
use super::*;
use crate::platform::{ErrorKind, Gic, Origin, Platform, PlatformError, Range};

const BOARD: CellBoard = CellBoard {
    comm_region: 0x8000_0000,
    ram: &[(0x4000_0000, 64 << 20)],
    gicr_size: 0x4_0000,
    pci_buses: 1,
    cpu: 1,
    timer_ppis: [13, 14, 11, 10],
};

/// What Jailhouse writes for a cell on its QEMU arm64 target.
fn qemu_region() -> [u8; COMM_REGION_BYTES] {
    let mut bytes = [0; COMM_REGION_BYTES];
    bytes[..6].copy_from_slice(b"JHCOMM");
    put(&mut bytes, offset::REVISION, 2u16.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_ADDRESS, 0x0900_0000u64.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_TYPE, 3u16.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_FLAGS, 3u16.to_le_bytes());
    put(&mut bytes, offset::PCI_MMCONFIG_BASE, 0x08e0_0000u64.to_le_bytes());
    bytes[offset::GIC_VERSION] = 3;
    put(&mut bytes, offset::GICD_BASE, 0x0800_0000u64.to_le_bytes());
    put(&mut bytes, offset::GICR_BASE, 0x080a_0000u64.to_le_bytes());
    put(&mut bytes, offset::VPCI_IRQ_BASE, 112u32.to_le_bytes());
    bytes
}

fn put<const N: usize>(bytes: &mut [u8; COMM_REGION_BYTES], at: usize, value: [u8; N]) {
    bytes[at..at + N].copy_from_slice(&value);
}

fn platform(bytes: &[u8; COMM_REGION_BYTES]) -> Result<Platform, PlatformError> {
    discover(&CommRegion::parse(bytes).expect("signature and revision"), &BOARD)
}

fn error(edit: impl FnOnce(&mut [u8; COMM_REGION_BYTES])) -> String {
    let mut bytes = qemu_region();
    edit(&mut bytes);
    platform(&bytes).expect_err("a hostile region must be refused").to_string()
}

fn range(base: u64, size: u64) -> Range {
    Range::new(base, size).unwrap()
}

#[test]
fn jailhouse_qemu_values_give_the_cells_platform() {
    let bytes = qemu_region();
    let region = CommRegion::parse(&bytes).unwrap();
    assert!(region.console_shared() && !region.debug_putc_permitted());
    let platform = platform(&bytes).unwrap();
    assert_eq!(platform.memory(), [range(0x4000_0000, 64 << 20), range(0x8000_0000, 0x1000)]);
    // The comm region's page is mapped but never heap.
    assert_eq!(platform.reserved().len(), 1);
    assert_eq!(platform.reserved()[0].range, range(0x8000_0000, 0x1000));
    assert!(!platform.reserved()[0].no_map);
    let Some(Gic::V3 { distributor, redistributors }) = platform.gic() else { panic!("GICv3 expected") };
    assert_eq!(
        (*distributor, redistributors.as_slice()),
        (range(0x0800_0000, 0x1_0000), &[range(0x080a_0000, 0x4_0000)][..])
    );
    assert_eq!(platform.uart().map(|uart| uart.reg), Some(range(0x0900_0000, 0x1000)));
    assert_eq!(platform.uart().map(|uart| uart.origin), Some(Origin::CommRegion("console")));
    assert_eq!(platform.psci_conduit(), Some(crate::platform::Conduit::Smc));
    assert_eq!(platform.timer().and_then(|timer| timer.virtual_timer()).map(|irq| irq.intid()), Some(27));
    let bridge = platform.pci_bridges()[0].as_ref().unwrap();
    assert_eq!((bridge.config, bridge.bus_start, bridge.bus_end), (range(0x08e0_0000, 1 << 20), 0, 0));
    // INTx pin n of any device: SPI vpci_irq_base + n - 1, edge.
    for (pin, device) in [(1, 0), (4, 3), (2, 7)] {
        let interrupt = bridge.intx(0, device, 0, pin).unwrap();
        assert_eq!(interrupt.intid(), 32 + 112 + u32::from(pin) - 1);
        assert_eq!(interrupt.trigger(), Some(crate::platform::Trigger::EdgeRising));
    }
    assert!(platform.pools().is_empty() && platform.virtio().is_empty());
}

#[test]
fn a_foreign_abi_is_a_mismatch_not_a_platform() {
    let mut bytes = qemu_region();
    bytes[0] = b'X';
    assert!(matches!(CommRegion::parse(&bytes), Err(AbiMismatch::Signature { .. })));
    let mut bytes = qemu_region();
    put(&mut bytes, offset::REVISION, 1u16.to_le_bytes());
    let mismatch = CommRegion::parse(&bytes).unwrap_err();
    assert_eq!(mismatch, AbiMismatch::Revision { found: 1 });
    assert_eq!(mismatch.to_string(), "comm region field \"revision\": ABI revision 1, this runtime speaks 2");
    // An all-zero page (no hypervisor wrote it) is not a comm region.
    assert!(CommRegion::parse(&[0; COMM_REGION_BYTES]).is_err());
}

#[test]
fn hostile_fields_are_refused_by_name() {
    // GIC distributor inside the cell's RAM.
    let message = error(|b| put(b, offset::GICD_BASE, 0x4000_0000u64.to_le_bytes()));
    assert!(message.starts_with("comm region field \"gicd_base\": register window"), "{message}");
    assert!(message.contains("board constant CELL.ram"), "{message}");
    // Redistributors over the distributor.
    let message = error(|b| put(b, offset::GICR_BASE, 0x0800_0000u64.to_le_bytes()));
    assert!(message.starts_with("comm region field \"gicr_base\": range"), "{message}");
    assert!(message.contains("overlaps comm region field \"gicd_base\""), "{message}");
    // The console over the comm region's own page.
    let message = error(|b| put(b, offset::CONSOLE_ADDRESS, 0x8000_0000u64.to_le_bytes()));
    assert!(message.starts_with("comm region field \"console.address\""), "{message}");
    // Unknown and unsupported console types.
    let message = error(|b| put(b, offset::CONSOLE_TYPE, 0x77u16.to_le_bytes()));
    assert_eq!(message, "comm region field \"console.type\": unsupported value \"type 119\"");
    let message = error(|b| put(b, offset::CONSOLE_TYPE, 2u16.to_le_bytes()));
    assert!(message.contains("type 2 (8250)"), "{message}");
    let message = error(|b| put(b, offset::CONSOLE_FLAGS, 0u16.to_le_bytes()));
    assert!(message.starts_with("comm region field \"console.flags\""), "{message}");
    // vPCI interrupt base zero or past the last SPI.
    let message = error(|b| put(b, offset::VPCI_IRQ_BASE, 0u32.to_le_bytes()));
    assert_eq!(message, "comm region field \"vpci_irq_base\": 0x0 is outside 0x1..=0x3d8");
    let message = error(|b| put(b, offset::VPCI_IRQ_BASE, 0xffff_fff0u32.to_le_bytes()));
    assert!(message.starts_with("comm region field \"vpci_irq_base\""), "{message}");
    // vPCI window off its 1 MiB alignment, or wrapping the address space.
    let message = error(|b| put(b, offset::PCI_MMCONFIG_BASE, 0x08e0_1000u64.to_le_bytes()));
    assert!(message.starts_with("comm region field \"pci_mmconfig_base\": 0x8e01000 is not a multiple"), "{message}");
    let message = error(|b| put(b, offset::PCI_MMCONFIG_BASE, u64::MAX.to_le_bytes()));
    assert!(message.contains("past the end of the address space"), "{message}");
    // GIC version neither 2 nor 3, or a missing base.
    let message = error(|b| b[offset::GIC_VERSION] = 4);
    assert_eq!(message, "comm region field \"gic_version\": 0x4 is outside 0x2..=0x3");
    let message = error(|b| put(b, offset::GICD_BASE, 0u64.to_le_bytes()));
    assert_eq!(message, "comm region field \"gicd_base\": missing");
    let message = error(|b| {
        b[offset::GIC_VERSION] = 2;
        put(b, offset::GICC_BASE, 0x0800_0000u64.to_le_bytes());
    });
    assert!(message.contains("\"gicc_base\"") && message.contains("overlaps"), "{message}");
    // Addresses the page tables cannot reach.
    let message = error(|b| put(b, offset::GICR_BASE, (1u64 << 48).to_le_bytes()));
    assert!(message.contains("ends above"), "{message}");
}

#[test]
fn without_vpci_the_interrupt_base_is_not_read() {
    let mut bytes = qemu_region();
    put(&mut bytes, offset::PCI_MMCONFIG_BASE, 0u64.to_le_bytes());
    put(&mut bytes, offset::VPCI_IRQ_BASE, 0u32.to_le_bytes());
    let platform = platform(&bytes).unwrap();
    assert!(platform.pci_bridges().is_empty());
    // No console: the image stays on the board's early UART (or the
    // hypervisor's debug console, where permitted).
    put(&mut bytes, offset::CONSOLE_TYPE, 0u16.to_le_bytes());
    assert!(self::platform(&bytes).unwrap().uart().is_none());
}

#[test]
fn bad_board_descriptions_are_named() {
    let region = CommRegion::parse(&qemu_region()).unwrap();
    let board = CellBoard { ram: &[], ..BOARD };
    assert_eq!(discover(&region, &board).unwrap_err().to_string(), "board constant CELL.ram: missing");
    let board = CellBoard { comm_region: 0x4000_1000, ..BOARD };
    let message = discover(&region, &board).unwrap_err().to_string();
    assert!(message.contains("CELL.comm_region") && message.contains("overlaps"), "{message}");
    let board = CellBoard { comm_region: 0x8000_0800, ..BOARD };
    assert!(discover(&region, &board).unwrap_err().to_string().contains("not a multiple of 0x1000"));
    assert!(matches!(
        discover(&region, &CellBoard { gicr_size: 0x1000, ..BOARD }).unwrap_err().kind,
        ErrorKind::WindowTooSmall { .. }
    ));
}

/// Random regions (a fixed seed, so a failure replays): never a panic, and
/// every platform accepted keeps its device windows out of RAM and apart.
#[test]
fn random_regions_never_panic_and_accepted_ones_hold_the_rules() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut bytes = qemu_region();
        // Mutate a few fields past the header, sometimes to plausible values.
        for _ in 0..1 + next() % 4 {
            let at = 0x14 + (next() as usize % (COMM_REGION_BYTES - 0x14 - 8));
            let value = match next() % 4 {
                0 => next(),
                1 => next() & 0xffff_f000,
                2 => 0x0800_0000 + (next() % 0x200) * 0x1000,
                _ => next() % 8,
            };
            put(&mut bytes, at, value.to_le_bytes());
        }
        let Ok(platform) = platform(&bytes) else { continue };
        accepted += 1;
        let windows: std::vec::Vec<Range> = platform.device_windows().collect();
        for (index, window) in windows.iter().enumerate() {
            assert!(!platform.memory().iter().any(|ram| ram.overlaps(window)), "{window} in RAM: {bytes:02x?}");
            assert!(!windows[..index].iter().any(|other| other.overlaps(window)), "{window} shared: {bytes:02x?}");
        }
    }
    assert!(accepted > 100, "the mutations should leave many regions valid ({accepted})");
}
