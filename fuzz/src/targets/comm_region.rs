//! A Jailhouse cell's communication region: the input is the page's first
//! `COMM_REGION_BYTES` bytes (zero-padded), read with the board of the unit
//! tests (Jailhouse's QEMU arm64 cell: 64 MiB of RAM at 0x4000_0000, the
//! region at 0x8000_0000).
//!
//! Checked: `CommRegion::parse` accepts exactly the pages with the right
//! signature and revision and copies the fields as they are; an accepted
//! platform satisfies every source rule (`platform_checks`: device windows
//! out of RAM to the page, below the address limit, fit for their drivers,
//! none over another), its RAM is the board's plus the region's page, which
//! is reserved (never heap), and its vPCI interrupts are SPIs.

use tidepool::jailhouse::CellBoard;
use tidepool::jailhouse::comm_region::{
    ABI_REVISION, COMM_REGION_BYTES, COMM_REGION_PAGE, CommRegion, SIGNATURE, discover, offset,
};
use tidepool::platform::{InterruptKind, Range};

use crate::platform_checks::{check_layout, check_platform, check_windows_against};

/// src/jailhouse/tests.rs's board.
pub const BOARD: CellBoard = CellBoard {
    comm_region: 0x8000_0000,
    ram: &[(0x4000_0000, 64 << 20)],
    gicr_size: 0x4_0000,
    pci_buses: 1,
    cpu: 1,
    timer_ppis: [13, 14, 11, 10],
};

/// The image at the start of the cell's RAM, as the board loads it.
const IMAGE: Range = Range { base: 0x4000_0000, size: 0x20_0000 };

fn le<const N: usize>(bytes: &[u8; COMM_REGION_BYTES], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().unwrap()
}

pub fn run(data: &[u8]) {
    let mut bytes = [0u8; COMM_REGION_BYTES];
    let len = data.len().min(COMM_REGION_BYTES);
    bytes[..len].copy_from_slice(&data[..len]);

    let region = CommRegion::parse(&bytes);
    let speaks = bytes[..6] == SIGNATURE && u16::from_le_bytes(le(&bytes, offset::REVISION)) == ABI_REVISION;
    let region = match region {
        Ok(region) => region,
        Err(mismatch) => {
            let _ = mismatch.to_string();
            assert!(!speaks, "a region with the right signature and revision refused: {mismatch}");
            return;
        }
    };
    assert!(speaks, "a region with a foreign signature or revision accepted");
    assert_eq!(region.flags, u32::from_le_bytes(le(&bytes, offset::FLAGS)));
    assert_eq!(region.console_address, u64::from_le_bytes(le(&bytes, offset::CONSOLE_ADDRESS)));
    assert_eq!(region.console_type, u16::from_le_bytes(le(&bytes, offset::CONSOLE_TYPE)));
    assert_eq!(region.pci_mmconfig_base, u64::from_le_bytes(le(&bytes, offset::PCI_MMCONFIG_BASE)));
    assert_eq!(region.gic_version, bytes[offset::GIC_VERSION]);
    assert_eq!(region.gicd_base, u64::from_le_bytes(le(&bytes, offset::GICD_BASE)));
    assert_eq!(region.gicc_base, u64::from_le_bytes(le(&bytes, offset::GICC_BASE)));
    assert_eq!(region.gicr_base, u64::from_le_bytes(le(&bytes, offset::GICR_BASE)));
    assert_eq!(region.vpci_irq_base, u32::from_le_bytes(le(&bytes, offset::VPCI_IRQ_BASE)));

    let platform = match discover(&region, &BOARD) {
        Ok(platform) => platform,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    check_platform(&platform);
    let page = Range { base: BOARD.comm_region, size: COMM_REGION_PAGE };
    let mut ram: Vec<Range> = BOARD.ram.iter().map(|&(base, size)| Range { base, size }).collect();
    ram.push(page);
    ram.sort();
    assert_eq!(platform.memory(), ram.as_slice(), "a cell's RAM is the board's plus the region's page");
    assert!(platform.reserved().iter().any(|reserved| reserved.range == page), "the region's page is not reserved");
    assert!(platform.pools().is_empty() && platform.virtio().is_empty(), "a cell has no pools or virtio-mmio");
    for bridge in platform.pci_bridges().iter().flatten() {
        for route in &bridge.intx {
            let intid = route.interrupt.intid();
            assert!(route.interrupt.kind == InterruptKind::Spi && (32..1020).contains(&intid), "vPCI INTx {intid}");
        }
    }
    // The boot's layout for a cell: the image, and the region's page as
    // the loader's input.
    let layout = check_layout(&platform, IMAGE, page);
    assert!(layout.free_ranges().iter().all(|free| !free.overlaps(&page)), "the region's page became heap");
    check_windows_against(&platform, IMAGE, page);
}
