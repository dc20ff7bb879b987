//! Tests against real QEMU trees (tests/data/dtb, see tests/data/README.md),
//! trees edited with dtc, and small trees built here byte by byte.

extern crate std;

use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::*;
use crate::platform::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/data/dtb/", $name, ".dtb")).as_slice()
    };
}

const GICV2: &[u8] = fixture!("qemu-virt-gicv2");
const GICV2_EL2: &[u8] = fixture!("qemu-virt-gicv2-el2");
const GICV3: &[u8] = fixture!("qemu-virt-gicv3");
const GICV3_EL2: &[u8] = fixture!("qemu-virt-gicv3-el2");
const NUMA: &[u8] = fixture!("qemu-virt-numa");
const NUMA_POOL: &[u8] = fixture!("qemu-virt-numa-pool");
const NUMA_POOL_NOP: &[u8] = fixture!("qemu-virt-numa-pool-nop");
const POOL_DYNAMIC: &[u8] = fixture!("qemu-virt-pool-dynamic");

const MIB: u64 = 1024 * 1024;
const RAM_BASE: u64 = 0x4000_0000;
/// Where the tests pretend the image and the loader's tree are: below the
/// pools of every fixture.
const IMAGE: Range = Range { base: 0x4008_0000, size: 2 * MIB };
const DTB: Range = Range { base: 0x4400_0000, size: 0x2000 };
const POOL_PATH: &str = "/reserved-memory/restricted-dma-pool@48000000";

fn range(base: u64, size: u64) -> Range {
    Range::new(base, size).unwrap()
}

/// The node path an origin names; empty for any other origin.
fn node_of(origin: &Origin) -> &str {
    origin.node_path().map_or("", |path| path.as_str())
}

/// An error at node `path` (none if empty), as the tree names it.
fn node_error(path: &str, property: &str, kind: ErrorKind) -> PlatformError {
    let origin = if path.is_empty() { Origin::Unnamed } else { Origin::node(path) };
    PlatformError::new(origin, property, kind)
}

fn normalized(blob: &[u8]) -> Vec<u8> {
    let mut out = vec![0; blob.len() + 64];
    let len = normalize(blob, &mut out).unwrap();
    out.truncate(len);
    out
}

fn platform(blob: &[u8]) -> Platform {
    discover(&normalized(blob)).unwrap()
}

fn discover_error(blob: &[u8]) -> PlatformError {
    discover(&normalized(blob)).unwrap_err()
}

/// The device whose registers start at `base`.
fn device(platform: &Platform, base: u64) -> VirtioMmio {
    let found =
        platform.virtio().iter().filter_map(|device| device.as_ref().ok()).find(|device| device.reg.base == base);
    *found.unwrap_or_else(|| panic!("no usable virtio device at {base:#x}"))
}

/// The error recorded on the device node `path`.
fn device_error(platform: &Platform, path: &str) -> PlatformError {
    let found = platform
        .virtio()
        .iter()
        .filter_map(|device| device.as_ref().err())
        .find(|error| node_of(&error.origin) == path);
    *found.unwrap_or_else(|| panic!("no error recorded for {path}"))
}

fn pool<'p>(platform: &'p Platform, path: &str) -> (usize, &'p Pool) {
    platform.pools().iter().enumerate().find(|(_, pool)| node_of(&pool.origin) == path).unwrap()
}

fn layout_error(layout: &Layout, index: usize) -> PlatformError {
    layout.pool(index).unwrap().unwrap_err()
}

fn pool_error(platform: &Platform, path: &str) -> PlatformError {
    pool(platform, path).1.placement.clone().unwrap_err()
}

/// Number of FDT_NOP tokens in a blob's struct block, found by walking the
/// tokens (a NOP word inside a property value does not count).
fn count_nops(blob: &[u8]) -> usize {
    let word = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    let (offset, size) = (word(8), word(36));
    let mut at = offset;
    let mut nops = 0;
    while at < offset + size {
        match word(at) {
            1 => at = (blob[at + 4..].iter().position(|&byte| byte == 0).unwrap() + at + 4 + 4) & !3,
            3 => at = (at + 12 + word(at + 4) + 3) & !3,
            2 => at += 4,
            4 => {
                nops += 1;
                at += 4;
            }
            9 => break,
            token => panic!("token {token} at {at}"),
        }
    }
    nops
}

// ---------------------------------------------------------------------------
// Real trees from QEMU

#[test]
fn gicv2_tree() {
    let platform = platform(GICV2);
    assert_eq!(platform.memory(), [range(RAM_BASE, 256 * MIB)]);
    assert!(platform.reserved().is_empty());
    assert!(platform.pools().is_empty());
    assert_eq!(
        platform.gic(),
        Some(&Gic::V2 { distributor: range(0x0800_0000, 0x1_0000), cpu_interface: range(0x0801_0000, 0x1_0000) })
    );
    let psci = platform.psci().unwrap();
    assert_eq!((psci.conduit, psci.version), (Conduit::Hvc, PsciVersion::V1_0));
    assert_eq!((psci.cpu_on, psci.cpu_off), (Some(0xc400_0003), Some(0x8400_0002)));

    let uart = platform.uart().unwrap();
    assert_eq!((node_of(&uart.origin), uart.reg), ("/pl011@9000000", range(0x0900_0000, 0x1000)));
    let uart_interrupt = uart.interrupt.unwrap();
    assert_eq!((uart_interrupt.kind, uart_interrupt.number, uart_interrupt.intid()), (InterruptKind::Spi, 1, 33));
    assert_eq!(uart_interrupt.trigger(), Some(Trigger::LevelHigh));

    let timer = platform.timer().unwrap();
    let timer_ppis: Vec<u32> = timer.interrupts.iter().map(|interrupt| interrupt.number).collect();
    assert_eq!(timer_ppis, [13, 14, 11, 10]);
    assert_eq!(
        timer.virtual_timer().map(|interrupt| (interrupt.kind, interrupt.intid())),
        Some((InterruptKind::Ppi, 27))
    );

    assert_eq!(platform.virtio().len(), 32);
    for (slot, device) in platform.virtio().iter().enumerate() {
        let device = device.as_ref().unwrap();
        assert_eq!(device.reg, range(0x0a00_0000 + 0x200 * slot as u64, 0x200));
        assert_eq!(device.interrupt.number, 16 + slot as u32);
        assert_eq!(device.interrupt.trigger(), Some(Trigger::EdgeRising));
        assert!(device.dma_coherent);
        assert_eq!(device.pool, None);
    }
    assert_eq!(platform.bootargs(), "");
    // The UART, two GIC frames, 32 transports, the PCI config window and
    // the PCI 32-bit window.
    assert_eq!(platform.device_windows().count(), 37);
}

#[test]
fn psci_conduit_follows_virtualization() {
    for (blob, conduit, gic_version) in
        [(GICV2, Conduit::Hvc, 2), (GICV2_EL2, Conduit::Smc, 2), (GICV3, Conduit::Hvc, 3), (GICV3_EL2, Conduit::Smc, 3)]
    {
        let platform = platform(blob);
        assert_eq!(platform.psci_conduit(), Some(conduit));
        assert_eq!(platform.gic().map(Gic::version), Some(gic_version));
        assert_eq!(platform.gic().map(Gic::distributor), Some(range(0x0800_0000, 0x1_0000)));
        assert_eq!(platform.uart().map(|uart| uart.reg.base), Some(0x0900_0000));
        assert_eq!(platform.virtio().iter().filter(|device| device.is_ok()).count(), 32);
    }
}

#[test]
fn gicv3_tree() {
    for blob in [GICV3, GICV3_EL2] {
        let platform = platform(blob);
        let mut redistributors = arrayvec::ArrayVec::new();
        redistributors.push(range(0x080a_0000, 0xf6_0000));
        assert_eq!(platform.gic(), Some(&Gic::V3 { distributor: range(0x0800_0000, 0x1_0000), redistributors }));
    }
}

#[test]
fn numa_tree_has_two_sorted_memory_nodes() {
    // QEMU writes memory@48000000 before memory@40000000.
    let platform = platform(NUMA);
    assert_eq!(platform.memory(), [range(RAM_BASE, 128 * MIB), range(0x4800_0000, 16 * MIB)]);
    assert_eq!(platform.total_ram(), 144 * MIB);
}

#[test]
fn fixed_pool_binds_its_device() {
    let platform = platform(NUMA_POOL);
    let (index, pool) = pool(&platform, POOL_PATH);
    assert_eq!(pool.placement, Ok(Placement::Fixed(range(0x4800_0000, 16 * MIB))));
    assert!(pool.phandle.is_some());
    let bound = device(&platform, 0x0a00_3e00);
    assert_eq!((bound.pool, bound.interrupt.number), (Some(index), 47));
    assert_eq!(platform.pool_devices(index).map(|device| device.reg.base).collect::<Vec<_>>(), [0x0a00_3e00]);
    let unbound = platform.virtio().iter().filter(|device| device.as_ref().is_ok_and(|device| device.pool.is_none()));
    assert_eq!(unbound.count(), 31);

    let layout = layout(&platform, IMAGE, DTB);
    assert_eq!(layout.pool(index), Some(&Ok(range(0x4800_0000, 16 * MIB))));
    // All of NUMA node 1 is the pool; the heap gets node 0 minus image and tree.
    assert_eq!(
        layout.free_ranges(),
        [
            range(RAM_BASE, IMAGE.base - RAM_BASE),
            range(IMAGE.end(), DTB.base - IMAGE.end()),
            range(DTB.end(), 0x4800_0000 - DTB.end()),
        ]
    );
}

#[test]
fn tree_passed_with_dtb_has_nops_and_normalizes_to_the_same_platform() {
    let nops = count_nops(NUMA_POOL_NOP);
    assert!(nops > 0, "the fixture must have FDT_NOP tokens");
    let copy = normalized(NUMA_POOL_NOP);
    assert_eq!(count_nops(&copy), 0);
    // Same block layout in and out: only the NOP words go.
    assert_eq!(copy.len(), NUMA_POOL_NOP.len() - 4 * nops);
    // discover() needs the normalised copy.
    let error = discover(NUMA_POOL_NOP).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::NotNormalized { .. }), "{error}");
    assert_eq!(format!("{}", platform(NUMA_POOL_NOP)), format!("{}", platform(NUMA_POOL)));
}

#[test]
fn normalize_is_idempotent_and_header_size_matches() {
    for blob in [GICV2, GICV2_EL2, GICV3, GICV3_EL2, NUMA, NUMA_POOL, NUMA_POOL_NOP, POOL_DYNAMIC] {
        assert_eq!(blob_total_size(&blob[..HEADER_SIZE]), Ok(blob.len()));
        let once = normalized(blob);
        assert_eq!(blob_total_size(&once[..HEADER_SIZE]), Ok(once.len()));
        assert_eq!(normalized(&once), once);
    }
}

#[test]
fn dynamic_pools_are_placed_highest_first() {
    let platform = platform(POOL_DYNAMIC);
    let (low, low_pool) = pool(&platform, "/reserved-memory/restricted-dma-pool-low");
    let (any, any_pool) = pool(&platform, "/reserved-memory/restricted-dma-pool-any");
    let mut alloc_ranges = arrayvec::ArrayVec::new();
    alloc_ranges.push(range(0x4800_0000, 16 * MIB));
    assert_eq!(low_pool.placement, Ok(Placement::Dynamic { size: 4 * MIB, alignment: Some(2 * MIB), alloc_ranges }));
    assert_eq!(any_pool.placement.as_ref().map(Placement::alignment), Ok(PAGE_SIZE));
    assert_eq!(device(&platform, 0x0a00_3e00).pool, Some(low));
    assert_eq!(device(&platform, 0x0a00_3c00).pool, Some(any));

    let layout = layout(&platform, IMAGE, DTB);
    assert_eq!(layout.pool(low), Some(&Ok(range(0x48c0_0000, 4 * MIB))));
    assert_eq!(layout.pool(any), Some(&Ok(range(0x4ff0_0000, MIB))));
    assert_eq!(
        layout.free_ranges(),
        [
            range(RAM_BASE, IMAGE.base - RAM_BASE),
            range(IMAGE.end(), DTB.base - IMAGE.end()),
            range(DTB.end(), 0x48c0_0000 - DTB.end()),
            range(0x4900_0000, 0x4ff0_0000 - 0x4900_0000),
        ]
    );
}

#[test]
fn dynamic_pool_goes_below_the_image_and_fails_without_room() {
    let platform = platform(POOL_DYNAMIC);
    let (low, _) = pool(&platform, "/reserved-memory/restricted-dma-pool-low");
    // The image takes the top 2 MiB of the allowed window: next 2 MiB
    // boundary below that leaves 4 MiB.
    let image = range(0x48e0_0000, 2 * MIB);
    assert_eq!(layout(&platform, image, DTB).pool(low), Some(&Ok(range(0x48a0_0000, 4 * MIB))));
    // An image over the whole window leaves nothing.
    let image = range(0x4800_0000, 16 * MIB);
    let error = layout_error(&layout(&platform, image, DTB), low);
    assert_eq!(error.kind, ErrorKind::NoSpace { size: 4 * MIB, alignment: 2 * MIB });
    assert_eq!(node_of(&error.origin), "/reserved-memory/restricted-dma-pool-low");
}

#[test]
fn fixed_pool_over_image_or_tree_is_refused_by_layout() {
    let platform = platform(NUMA_POOL);
    let (index, _) = pool(&platform, POOL_PATH);
    let image = range(0x48ff_0000, 0x1_0000);
    let layout_with_image = layout(&platform, image, DTB);
    let error = layout_error(&layout_with_image, index);
    let pool_range = range(0x4800_0000, 16 * MIB);
    assert_eq!(error.kind, ErrorKind::Overlap { range: pool_range, other: crate::platform::IMAGE, other_range: image });
    // The pool's memory goes neither to the pool nor to the heap.
    assert!(layout_with_image.free_ranges().iter().all(|free| !free.overlaps(&pool_range)));

    let dtb = range(0x4800_0000, 0x2000);
    let error = layout_error(&layout(&platform, IMAGE, dtb), index);
    assert_eq!(
        error.to_string(),
        format!(
            "{POOL_PATH}: property \"reg\": range 0x48000000..0x49000000 overlaps (device tree) (0x48000000..0x48002000)"
        )
    );
}

#[test]
fn stdout_path_through_an_alias_with_options() {
    let platform = platform(fixture!("uart-alias"));
    let uart = platform.uart().unwrap();
    assert_eq!((node_of(&uart.origin), uart.reg.base), ("/pl011@9040000", 0x0904_0000));
    assert_eq!(uart.interrupt.map(|interrupt| interrupt.number), Some(8));
    assert_eq!(platform.bootargs(), "console=ttyAMA0 tidepool.exit=semihosting");
}

#[test]
fn self_referencing_alias_falls_back_to_first_pl011() {
    let platform = platform(fixture!("alias-loop"));
    assert_eq!(platform.uart().map(|uart| uart.reg.base), Some(0x0900_0000));
}

#[test]
fn summary_names_pools_devices_and_console() {
    let summary = platform(NUMA_POOL).to_string();
    for expected in [
        "memory: 0x40000000..0x48000000 0x48000000..0x49000000 (144 MiB)",
        "pool 0 /reserved-memory/restricted-dma-pool@48000000: fixed 0x48000000..0x49000000; devices 0xa003e00",
        "virtio-mmio: 32 nodes, 32 usable",
        "  0xa003e00..0xa004000 SPI 47 edge-rising coherent pool 0",
        "gic: v2 distributor 0x8000000..0x8010000 cpu interface 0x8010000..0x8020000",
        "psci: hvc (PSCI 1.0)",
        "timer: PPI 13 level-high, PPI 14 level-high, PPI 11 level-high, PPI 10 level-high",
        "uart: /pl011@9000000 0x9000000..0x9001000 SPI 1 level-high",
    ] {
        assert!(summary.lines().any(|line| line == expected), "missing {expected:?} in\n{summary}");
    }
}

// ---------------------------------------------------------------------------
// Trees edited with dtc (tests/data/dts)

#[test]
fn overlapping_memory_fails_discovery() {
    let error = discover_error(fixture!("bad-memory-overlap"));
    assert_eq!((node_of(&error.origin), error.property.as_str()), ("/memory@47000000", "reg"));
    let expected = ErrorKind::Overlap {
        range: range(0x4700_0000, 32 * MIB),
        other: Origin::node("/memory@40000000"),
        other_range: range(RAM_BASE, 128 * MIB),
    };
    assert_eq!(error.kind, expected);
}

#[test]
fn overlapping_pools_are_both_unusable() {
    let platform = platform(fixture!("bad-pool-overlap"));
    let first = pool_error(&platform, POOL_PATH);
    let second = pool_error(&platform, "/reserved-memory/restricted-dma-pool@48800000");
    assert!(
        matches!(first.kind, ErrorKind::Overlap { other, .. } if node_of(&other) == "/reserved-memory/restricted-dma-pool@48800000")
    );
    assert!(matches!(second.kind, ErrorKind::Overlap { other, .. } if node_of(&other) == POOL_PATH));
    let error = device_error(&platform, "/virtio_mmio@a003e00");
    assert_eq!(error.kind, ErrorKind::PoolUnusable { pool: Origin::node(POOL_PATH) });
    // Every other device is fine, and the layout carries the errors over.
    assert_eq!(platform.virtio().iter().filter(|device| device.is_ok()).count(), 31);
    assert!(layout(&platform, IMAGE, DTB).pools().iter().all(Result::is_err));
}

#[test]
fn pool_overlapping_a_reservation_is_unusable() {
    let platform = platform(fixture!("bad-pool-reserved-overlap"));
    let firmware = range(0x48f0_0000, MIB);
    let reserved = platform.reserved();
    assert_eq!(reserved.len(), 1);
    assert_eq!(
        (node_of(&reserved[0].origin), reserved[0].range, reserved[0].no_map),
        ("/reserved-memory/firmware@48f00000", firmware, true)
    );
    let error = pool_error(&platform, POOL_PATH);
    assert!(matches!(error.kind, ErrorKind::Overlap { other_range, .. } if other_range == firmware));
    // The reservation stays out of the heap.
    let layout = layout(&platform, IMAGE, DTB);
    assert!(layout.free_ranges().iter().all(|free| !free.overlaps(&firmware)));
}

#[test]
fn dangling_memory_region_only_affects_its_device() {
    let platform = platform(fixture!("bad-dangling-phandle"));
    let error = device_error(&platform, "/virtio_mmio@a003e00");
    assert_eq!(error.property.as_str(), "memory-region");
    assert_eq!(error.kind, ErrorKind::DanglingPhandle { phandle: 0x1234 });
    assert!(pool(&platform, POOL_PATH).1.placement.is_ok());
    assert_eq!(platform.pool_devices(0).count(), 0);
    assert_eq!(platform.virtio().iter().filter(|device| device.is_ok()).count(), 31);
}

#[test]
fn memory_region_naming_a_non_pool() {
    let platform = platform(fixture!("bad-not-a-pool"));
    let error = device_error(&platform, "/virtio_mmio@a003e00");
    assert_eq!(error.kind, ErrorKind::NotAPool { phandle: 0x8002, node: Origin::node("/intc@8000000") });
    assert_eq!(
        error.to_string(),
        "/virtio_mmio@a003e00: property \"memory-region\": phandle 0x8002 names /intc@8000000, which is not a restricted-dma-pool"
    );
}

#[test]
fn duplicate_phandle_is_ambiguous() {
    let platform = platform(fixture!("bad-duplicate-phandle"));
    let error = device_error(&platform, "/virtio_mmio@a003e00");
    assert_eq!(error.kind, ErrorKind::DuplicatePhandle { phandle: 0x8000 });
}

#[test]
fn interrupt_parent_other_than_the_gic() {
    let platform = platform(fixture!("bad-interrupt-parent"));
    let error = device_error(&platform, "/virtio_mmio@a003c00");
    assert_eq!(error.property.as_str(), "interrupt-parent");
    assert_eq!(error.kind, ErrorKind::UnsupportedInterruptParent { node: Origin::node("/pl061@9030000") });
}

#[test]
fn absurd_address_cells() {
    // In /reserved-memory: the pool (and its device) become unusable.
    let platform = platform(fixture!("bad-reserved-address-cells"));
    let error = pool_error(&platform, POOL_PATH);
    assert_eq!((node_of(&error.origin), error.property.as_str()), ("/reserved-memory", "#address-cells"));
    assert_eq!(error.kind, ErrorKind::BadCells { cells: 3 });
    assert!(matches!(device_error(&platform, "/virtio_mmio@a003e00").kind, ErrorKind::PoolUnusable { .. }));
    // In the root: RAM cannot be read, so nothing can.
    let error = discover_error(fixture!("bad-root-address-cells"));
    assert_eq!((node_of(&error.origin), error.property.as_str()), ("/", "#address-cells"));
    assert_eq!(error.kind, ErrorKind::BadCells { cells: 64 });
}

#[test]
fn zero_size_pool() {
    let platform = platform(fixture!("bad-zero-size-pool"));
    let error = pool_error(&platform, POOL_PATH);
    assert_eq!(error.kind, ErrorKind::ZeroSize { base: Some(0x4800_0000) });
    assert_eq!(error.to_string(), format!("{POOL_PATH}: property \"reg\": range 0x48000000+0x0 has zero size"));
}

#[test]
fn unaligned_pool() {
    let error = pool_error(&platform(fixture!("bad-unaligned-pool")), POOL_PATH);
    assert_eq!(error.kind, ErrorKind::Misaligned { value: 0x4800_0800, alignment: PAGE_SIZE });
}

#[test]
fn pool_outside_ram() {
    let error = pool_error(&platform(fixture!("bad-pool-outside-ram")), POOL_PATH);
    assert_eq!(error.kind, ErrorKind::OutsideRam { range: range(0x6000_0000, 16 * MIB) });
}

#[test]
fn pool_alignment_not_a_power_of_two() {
    let platform = platform(fixture!("bad-pool-alignment"));
    let error = pool_error(&platform, "/reserved-memory/restricted-dma-pool-low");
    assert_eq!(
        (error.property.as_str(), error.kind),
        ("alignment", ErrorKind::AlignmentNotPowerOfTwo { alignment: 0x3000 })
    );
    // The other pool still works.
    assert!(pool(&platform, "/reserved-memory/restricted-dma-pool-any").1.placement.is_ok());
}

#[test]
fn pool_bigger_than_ram() {
    let error = pool_error(&platform(fixture!("bad-pool-too-big")), "/reserved-memory/restricted-dma-pool-low");
    assert_eq!(error.kind, ErrorKind::AbsurdSize { size: 512 * MIB, limit: 256 * MIB });
}

#[test]
fn bootargs_must_be_utf8() {
    let error = discover_error(fixture!("bad-bootargs-utf8"));
    assert_eq!(
        (node_of(&error.origin), error.property.as_str(), error.kind),
        ("/chosen", "bootargs", ErrorKind::InvalidUtf8)
    );
}

#[test]
fn dynamic_pool_avoids_refused_fixed_pools() {
    let platform = platform(fixture!("bad-pool-overlap-dynamic"));
    let (dynamic, _) = pool(&platform, "/reserved-memory/restricted-dma-pool-dynamic");
    assert_eq!(device(&platform, 0x0a00_3c00).pool, Some(dynamic));
    let layout = layout(&platform, IMAGE, DTB);
    // Both fixed pools are refused, but the host still shares their memory
    // (the top of RAM): the size-form pool goes below it.
    assert!(matches!(pool_error(&platform, POOL_PATH).kind, ErrorKind::Overlap { .. }));
    let placed = layout.pool(dynamic).unwrap().unwrap();
    assert_eq!(placed, range(0x47f0_0000, MIB));
    let declared: Vec<Range> = platform.pools().iter().filter_map(|pool| pool.declared).collect();
    assert_eq!(declared, [range(0x4800_0000, 16 * MIB), range(0x4880_0000, 4 * MIB)]);
    for declared in &declared {
        assert!(!placed.overlaps(declared), "{placed:?} placed over the declared pool {declared:?}");
        assert!(layout.free_ranges().iter().all(|free| !free.overlaps(declared)));
    }
    assert!(layout.free_ranges().iter().all(|free| !free.overlaps(&placed)));
}

#[test]
fn no_map_reservations_stay_out_of_the_map_but_pools_do_not() {
    let platform = platform(fixture!("reserved-no-map"));
    let no_map: Vec<(&str, bool)> =
        platform.reserved().iter().map(|reserved| (node_of(&reserved.origin), reserved.no_map)).collect();
    assert_eq!(
        no_map,
        [
            ("/reserved-memory/firmware@47f00000", true),
            ("/reserved-memory/log@47d00800", true),
            ("/reserved-memory/shared@47e00000", false),
        ]
    );
    let layout = layout(&platform, IMAGE, DTB);
    let pool_range = range(0x4800_0000, 16 * MIB);
    assert_eq!(layout.pool(0), Some(&Ok(pool_range)));
    // The unaligned no-map reservation takes its whole page out; the one
    // without no-map stays mapped; the pool is mapped despite its no-map.
    assert_eq!(
        layout.normal_memory(),
        [range(RAM_BASE, 0x47d0_0000 - RAM_BASE), range(0x47d0_1000, 0x47f0_0000 - 0x47d0_1000), pool_range]
    );
    // The heap has none of the reservations.
    for reserved in platform.reserved() {
        assert!(layout.free_ranges().iter().all(|free| !free.overlaps(&reserved.range)), "{reserved:?}");
    }
    // Without reservations, RAM is normal memory as a whole.
    assert_eq!(layout_of(NUMA_POOL).normal_memory(), platform.memory());
}

fn layout_of(blob: &[u8]) -> Layout {
    layout(&platform(blob), IMAGE, DTB)
}

#[test]
fn hostile_virtio_windows_leave_just_those_devices_out() {
    let platform = platform(fixture!("bad-virtio-windows"));
    let ram = range(RAM_BASE, 256 * MIB);
    let memory = Origin::node("/memory@40000000");
    let gic = range(0x0800_0000, 0x1_0000);
    let twin = range(0x0a00_0a00, 0x200);
    let cases = [
        ("/virtio_mmio@a000000", ErrorKind::DeviceInRam { range: range(0x4008_0000, 0x200), memory, ram }),
        ("/virtio_mmio@a000200", ErrorKind::WindowTooSmall { size: 0x10, min: 0x200 }),
        ("/virtio_mmio@a000400", ErrorKind::Misaligned { value: 0x0a00_0402, alignment: 4 }),
        (
            "/virtio_mmio@a000600",
            ErrorKind::Overlap {
                range: range(0x0800_0000, 0x200),
                other: Origin::node("/intc@8000000"),
                other_range: gic,
            },
        ),
        (
            "/virtio_mmio@a000800",
            ErrorKind::Overlap { range: twin, other: Origin::node("/virtio_mmio@a000a00"), other_range: twin },
        ),
        (
            "/virtio_mmio@a000a00",
            ErrorKind::Overlap { range: twin, other: Origin::node("/virtio_mmio@a000800"), other_range: twin },
        ),
        ("/virtio_mmio@a000e00", ErrorKind::DeviceInRam { range: range(0x3fff_fe00, 0x400), memory, ram }),
        (
            "/virtio_mmio@a001000",
            ErrorKind::BeyondAddressSpace { range: range(0x7f_ffff_fe00, 0x400), limit: ADDRESS_LIMIT },
        ),
    ];
    for (path, kind) in cases {
        let error = device_error(&platform, path);
        assert_eq!((error.property.as_str(), error.kind), ("reg", kind), "{path}");
    }
    assert_eq!(
        device_error(&platform, "/virtio_mmio@a000200").to_string(),
        "/virtio_mmio@a000200: property \"reg\": register window of 0x10 bytes is smaller than the 0x200 bytes its driver accesses"
    );
    // Right below RAM, its page ending where RAM starts: fine.
    assert_eq!(device(&platform, 0x3fff_fe00).reg.size, 0x200);
    assert_eq!(platform.virtio().iter().filter(|device| device.is_ok()).count(), 32 - cases.len());
    // What the runtime maps as device memory shares no page with RAM.
    for window in platform.device_windows() {
        assert!(!crate::platform::page_span(window).overlaps(&ram), "{window:?}");
    }
    // The transport needs the window the rule asks for.
    assert_eq!(crate::platform::VIRTIO_WINDOW.min_size, crate::virtio::mmio::WINDOW_SIZE as u64);
}

#[test]
fn hostile_uart_and_gic_windows_fail_discovery() {
    let ram = range(RAM_BASE, 256 * MIB);
    let memory = Origin::node("/memory@40000000");
    let cases = [
        (fixture!("bad-uart-window"), "/pl011@9000000", ErrorKind::WindowTooSmall { size: 0x10, min: 0x1000 }),
        (
            fixture!("bad-uart-in-ram"),
            "/pl011@9000000",
            ErrorKind::DeviceInRam { range: range(0x4008_0000, 0x1000), memory, ram },
        ),
        (fixture!("bad-gicv2-cpu-interface"), "/intc@8000000", ErrorKind::WindowTooSmall { size: 0x1000, min: 0x2000 }),
        (fixture!("bad-gicv3-distributor"), "/intc@8000000", ErrorKind::WindowTooSmall { size: 0x1000, min: 0x1_0000 }),
        (
            fixture!("bad-gicv3-redistributor"),
            "/intc@8000000",
            ErrorKind::DeviceInRam { range: range(0x4f00_0000, 0x2_0000), memory, ram },
        ),
    ];
    for (blob, node, kind) in cases {
        assert_eq!(discover_error(blob), node_error(node, "reg", kind));
    }
}

/// Found by the `devicetree` fuzz target (tests/data/fuzz/README.md): a
/// GICv3 redistributor region grown to 0x7f60000 bytes covers the PL011 at
/// 0x9000000. Discovery accepted it (only virtio windows were checked
/// against the UART and the GIC); the comm region source already refused
/// the same overlap.
#[test]
fn fuzz_gic_redistributors_over_the_uart_fail_discovery() {
    let blob = include_bytes!("../../tests/data/fuzz/devicetree/gicr-over-uart.dtb");
    let kind = ErrorKind::Overlap {
        range: range(0x080a_0000, 0x7f6_0000),
        other: Origin::node("/pl011@9000000"),
        other_range: range(0x0900_0000, 0x1000),
    };
    assert_eq!(discover_error(blob), node_error("/intc@8000000", "reg", kind));
}

#[test]
fn device_window_over_the_image_or_tree_is_refused() {
    // Discovery keeps windows out of RAM; where the image and the loader's
    // tree are only the boot knows, and they need not be in declared RAM.
    let platform = platform(GICV2);
    let taken = |image: Range, dtb: Range| [(image, crate::platform::IMAGE), (dtb, crate::platform::DEVICE_TREE)];
    assert_eq!(platform.check_device_windows(&taken(IMAGE, DTB)), Ok(()));
    let image = range(0x0a00_0000, 2 * MIB);
    let error = platform.check_device_windows(&taken(image, DTB)).unwrap_err();
    let kind =
        ErrorKind::Overlap { range: range(0x0a00_0000, 0x200), other: crate::platform::IMAGE, other_range: image };
    assert_eq!(error, node_error("/virtio_mmio@a000000", "reg", kind));
    // Sharing a page is enough.
    let dtb = range(0x0900_0ff0, 0x10);
    let error = platform.check_device_windows(&taken(IMAGE, dtb)).unwrap_err();
    assert_eq!((node_of(&error.origin), error.property.as_str()), ("/pl011@9000000", "reg"));
}

#[test]
fn memory_beyond_the_page_tables_fails_discovery() {
    let error = discover_error(fixture!("bad-memory-too-big"));
    let kind = ErrorKind::BeyondAddressSpace { range: range(RAM_BASE, 0x7f_c000_0001), limit: ADDRESS_LIMIT };
    assert_eq!(error, node_error("/memory@40000000", "reg", kind));
}

#[test]
fn memory_above_4_gib_is_heap_ram() {
    const GIB: u64 = 1024 * MIB;
    let platform = platform(fixture!("memory-above-4g"));
    assert_eq!(platform.memory(), [range(RAM_BASE, 5 * GIB)]);
    let layout = layout(&platform, IMAGE, DTB);
    assert_eq!(layout.free_ranges().last().map(Range::end), Some(RAM_BASE + 5 * GIB));
    assert_eq!(layout.normal_memory(), platform.memory());
}

// ---------------------------------------------------------------------------
// The blob's structure, by byte patching and by small built trees

#[test]
fn every_prefix_is_refused() {
    for blob in [GICV2, GICV2_EL2, GICV3, GICV3_EL2, NUMA, NUMA_POOL, NUMA_POOL_NOP, POOL_DYNAMIC] {
        let mut out = vec![0; blob.len()];
        for len in 0..blob.len() {
            let prefix = &blob[..len];
            assert!(normalize(prefix, &mut out).is_err(), "prefix of {len} bytes accepted");
            assert!(discover(prefix).is_err());
            // Also when the header is made to claim just the prefix.
            if len >= HEADER_SIZE {
                let mut claimed = prefix.to_vec();
                claimed[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                assert!(normalize(&claimed, &mut out).is_err(), "prefix of {len} bytes with totalsize {len} accepted");
            }
        }
    }
}

/// Header field indexes (each a big-endian u32).
const TOTALSIZE: usize = 1;
const OFF_DT_STRUCT: usize = 2;
const OFF_DT_STRINGS: usize = 3;
const OFF_MEM_RSVMAP: usize = 4;
const VERSION: usize = 5;
const SIZE_DT_STRUCT: usize = 9;

fn header_field(blob: &[u8], field: usize) -> u32 {
    u32::from_be_bytes(blob[field * 4..field * 4 + 4].try_into().unwrap())
}

fn with_header_field(blob: &[u8], field: usize, value: u32) -> Vec<u8> {
    let mut patched = blob.to_vec();
    patched[field * 4..field * 4 + 4].copy_from_slice(&value.to_be_bytes());
    patched
}

fn normalize_error(blob: &[u8]) -> PlatformError {
    let mut out = vec![0; blob.len() + 64];
    normalize(blob, &mut out).unwrap_err()
}

#[test]
fn bad_headers() {
    let blob = GICV2;
    let total = blob.len() as u32;
    let past_end = (total + 3) & !3;
    let struct_offset = header_field(blob, OFF_DT_STRUCT);
    let cases: [(usize, u32, &str, ErrorKind); 8] = [
        (0, 0xd00d_fee0, "magic", ErrorKind::BadMagic { found: 0xd00d_fee0 }),
        (VERSION, 16, "version", ErrorKind::UnsupportedVersion { version: 16, last_compatible: 16 }),
        (TOTALSIZE, 12, "totalsize", ErrorKind::Truncated { needed: 40, available: 12 }),
        (TOTALSIZE, total + 1, "totalsize", ErrorKind::Truncated { needed: total as u64 + 1, available: total as u64 }),
        (
            OFF_DT_STRUCT,
            past_end,
            "off_dt_struct",
            ErrorKind::OutOfBounds {
                offset: past_end as u64,
                size: header_field(blob, SIZE_DT_STRUCT) as u64,
                limit: total as u64,
            },
        ),
        (
            OFF_DT_STRUCT,
            struct_offset + 2,
            "off_dt_struct",
            ErrorKind::Misaligned { value: struct_offset as u64 + 2, alignment: 4 },
        ),
        (OFF_MEM_RSVMAP, 44, "off_mem_rsvmap", ErrorKind::Misaligned { value: 44, alignment: 8 }),
        (OFF_DT_STRINGS, struct_offset, "off_dt_strings", ErrorKind::BlocksOverlap),
    ];
    for (field, value, name, kind) in cases {
        let patched = with_header_field(blob, field, value);
        let expected = PlatformError::header(name, kind);
        assert_eq!(normalize_error(&patched), expected);
        if field != TOTALSIZE || value < total {
            // Header-only checks see the same problem (except a totalsize
            // larger than the slice, which needs the slice).
            assert_eq!(blob_total_size(&patched[..HEADER_SIZE]), Err(expected));
        }
    }
    assert_eq!(
        PlatformError::header("off_dt_strings", ErrorKind::BlocksOverlap).to_string(),
        "header field \"off_dt_strings\": block overlaps the header or another block"
    );
    assert_eq!(blob_total_size(&blob[..39]), Err(ErrorKind::Truncated { needed: 40, available: 39 }.into()));
}

#[test]
fn output_buffer_too_small() {
    let mut out = vec![0; 100];
    let error = normalize(GICV2, &mut out).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::OutputTooSmall { available: 100, .. }), "{error}");
}

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Writes blobs token by token, including wrong ones.
#[derive(Default)]
struct Tree {
    reservations: Vec<(u64, u64)>,
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl Tree {
    fn word(&mut self, word: u32) -> &mut Self {
        self.structs.extend_from_slice(&word.to_be_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }

    fn begin(&mut self, name: &str) -> &mut Self {
        self.word(FDT_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }

    fn end(&mut self) -> &mut Self {
        self.word(FDT_END_NODE)
    }

    fn name_offset(&mut self, name: &str) -> u32 {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        offset
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let name_offset = self.name_offset(name);
        self.word(FDT_PROP).word(value.len() as u32).word(name_offset);
        self.structs.extend_from_slice(value);
        self.pad();
        self
    }

    fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let value: Vec<u8> = cells.iter().flat_map(|cell| cell.to_be_bytes()).collect();
        self.prop(name, &value)
    }

    fn string(&mut self, name: &str, text: &str) -> &mut Self {
        let mut value = text.as_bytes().to_vec();
        value.push(0);
        self.prop(name, &value)
    }

    /// The blob as written so far, without adding FDT_END.
    fn blob(&self) -> Vec<u8> {
        let reservations_size = 16 * (self.reservations.len() + 1);
        let off_struct = 40 + reservations_size;
        let off_strings = off_struct + self.structs.len();
        let total = off_strings + self.strings.len();
        let header =
            [0xd00d_feed, total, off_struct, off_strings, 40, 17, 16, 0, self.strings.len(), self.structs.len()];
        let mut blob: Vec<u8> = header.iter().flat_map(|&field| (field as u32).to_be_bytes()).collect();
        for &(address, size) in self.reservations.iter().chain([&(0, 0)]) {
            blob.extend_from_slice(&address.to_be_bytes());
            blob.extend_from_slice(&size.to_be_bytes());
        }
        blob.extend_from_slice(&self.structs);
        blob.extend_from_slice(&self.strings);
        blob
    }

    fn finish(&mut self) -> Vec<u8> {
        self.word(FDT_END);
        self.blob()
    }

    /// A small but complete virt-like root's contents: cells, RAM at 1 GiB
    /// (256 MiB), a GICv2 with phandle 1 as interrupt parent.
    fn virt() -> Tree {
        let mut tree = Tree::default();
        tree.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]).cells("interrupt-parent", &[1]);
        tree.begin("memory@40000000")
            .string("device_type", "memory")
            .cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000])
            .end();
        tree.begin("intc@8000000")
            .string("compatible", "arm,cortex-a15-gic")
            .prop("interrupt-controller", &[])
            .cells("#interrupt-cells", &[3])
            .cells("reg", &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x0801_0000, 0, 0x1_0000])
            .cells("phandle", &[1])
            .end();
        tree
    }

    fn virtio(&mut self, name: &str, base: u32, spi: u32) -> &mut Self {
        self.virtio_with_interrupts(name, base, &[0, spi, 1])
    }

    fn virtio_with_interrupts(&mut self, name: &str, base: u32, interrupts: &[u32]) -> &mut Self {
        self.begin(name)
            .string("compatible", "virtio,mmio")
            .cells("reg", &[0, base, 0, 0x200])
            .cells("interrupts", interrupts)
    }
}

/// Struct block length of [`Tree::virt`], where the tests' own tokens go.
const VIRT_END: u32 = 0x110;

fn structure_error(blob: &[u8]) -> PlatformError {
    let error = normalize_error(blob);
    // discover() checks the same way (or stops at the NOP first).
    let again = discover(blob).unwrap_err();
    if !matches!(again.kind, ErrorKind::NotNormalized { .. }) {
        assert_eq!(again, error);
    }
    error
}

#[test]
fn built_tree_is_read() {
    let blob = Tree::virt().virtio("virtio@a000000", 0x0a00_0000, 16).end().end().finish();
    let platform = discover(&normalized(&blob)).unwrap();
    assert_eq!(platform.memory(), [range(RAM_BASE, 256 * MIB)]);
    assert_eq!(device(&platform, 0x0a00_0000).interrupt.intid(), 48);
    // No dma-coherent anywhere.
    assert!(!device(&platform, 0x0a00_0000).dma_coherent);
    assert_eq!(platform.psci(), None);
    assert_eq!(platform.uart(), None);
}

#[test]
fn structure_errors_name_the_node() {
    let cases: Vec<(Vec<u8>, &str, &str, ErrorKind)> = vec![
        (Tree::virt().word(7).end().finish(), "/", "", ErrorKind::BadToken { offset: VIRT_END, token: 7 }),
        (
            Tree::virt().begin("a").end().string("late", "x").end().finish(),
            "/",
            "late",
            ErrorKind::PropertyAfterChild { offset: VIRT_END + 12 },
        ),
        (Tree::virt().end().begin("").end().finish(), "", "", ErrorKind::MultipleRoots { offset: VIRT_END + 4 }),
        (Tree::virt().begin("a").end().finish(), "/", "", ErrorKind::UnbalancedNodes { offset: VIRT_END + 12 }),
        (Tree::virt().end().end().finish(), "", "", ErrorKind::UnbalancedNodes { offset: VIRT_END + 4 }),
        (Tree::virt().end().blob(), "", "", ErrorKind::MissingEnd),
        (Tree::default().finish(), "/", "(struct block)", ErrorKind::MissingRoot),
        (Tree::virt().begin("bad name").end().end().finish(), "/", "", ErrorKind::BadName { offset: VIRT_END }),
        (Tree::virt().begin("a/b").end().end().finish(), "/", "", ErrorKind::BadName { offset: VIRT_END }),
        (Tree::default().begin("root").end().finish(), "", "", ErrorKind::BadName { offset: 0 }),
        // A value longer than what is left of the struct block.
        (
            Tree::virt().begin("a").word(FDT_PROP).word(0x100).word(0).end().end().finish(),
            "/a",
            "#address-cells",
            ErrorKind::OutOfBounds { offset: VIRT_END as u64 + 20, size: 0x100, limit: VIRT_END as u64 + 32 },
        ),
        (
            Tree::virt().begin("a").word(FDT_PROP).word(0).word(0x1000).end().end().finish(),
            "/a",
            "",
            ErrorKind::BadStringOffset { offset: 0x1000, strings_size: 0x79 },
        ),
        (Tree::default().word(FDT_PROP).word(0).word(0).finish(), "", "", ErrorKind::PropertyOutsideNode { offset: 0 }),
    ];
    for (blob, node, property, kind) in cases {
        assert_eq!(structure_error(&blob), node_error(node, property, kind));
    }
}

#[test]
fn unterminated_names_and_strings() {
    // A node name running into the end of the struct block.
    let mut tree = Tree::virt();
    tree.word(FDT_BEGIN_NODE);
    tree.structs.extend_from_slice(b"abcd");
    assert_eq!(structure_error(&tree.blob()).kind, ErrorKind::UnterminatedName { offset: VIRT_END });
    // A property name running into the end of the strings block.
    let mut tree = Tree::virt();
    let name_offset = tree.strings.len() as u32;
    tree.strings.extend_from_slice(b"unterminated");
    tree.word(FDT_PROP).word(0).word(name_offset).end().end();
    assert_eq!(structure_error(&tree.finish()).kind, ErrorKind::UnterminatedString);
}

#[test]
fn nesting_limit() {
    let nested = |depth: usize| {
        let mut tree = Tree::default();
        tree.begin("");
        for _ in 1..depth {
            tree.begin("node");
        }
        for _ in 0..depth {
            tree.end();
        }
        tree.finish()
    };
    assert!(normalize(&nested(MAX_DEPTH), &mut vec![0; 4096]).is_ok());
    let error = structure_error(&nested(MAX_DEPTH + 1));
    assert_eq!(error.kind, ErrorKind::NestingTooDeep { limit: 32 });
    let node = error.origin.node_path().copied().unwrap_or_default();
    assert!(node.as_str().starts_with("/node/node/") && node.is_truncated(), "{node:?}");
}

#[test]
fn nops_are_removed_anywhere() {
    let plain = Tree::virt().end().finish();
    let mut with_nops = Tree::virt().end().finish();
    let struct_offset = header_field(&plain, OFF_DT_STRUCT) as usize;
    let struct_size = header_field(&plain, SIZE_DT_STRUCT) as usize;
    // Before the root, after its name, before the root's end and before
    // FDT_END (inserted back to front so that offsets stay valid).
    for offset in [struct_size - 4, struct_size - 8, 8, 0] {
        let at = struct_offset + offset;
        with_nops.splice(at..at, FDT_NOP.to_be_bytes());
    }
    let grown = |field: usize, by: u32| header_field(&plain, field) + by;
    with_nops = with_header_field(&with_nops, TOTALSIZE, grown(TOTALSIZE, 16));
    with_nops = with_header_field(&with_nops, SIZE_DT_STRUCT, grown(SIZE_DT_STRUCT, 16));
    with_nops = with_header_field(&with_nops, OFF_DT_STRINGS, grown(OFF_DT_STRINGS, 16));
    assert_eq!(count_nops(&with_nops), 4);
    assert_eq!(normalized(&with_nops), plain);
}

#[test]
fn memory_reservation_block_entries_are_reserved() {
    let mut tree = Tree::virt();
    tree.reservations.push((0x4100_0000, 0x1_0000));
    let platform = discover(&normalized(&tree.end().finish())).unwrap();
    let reservation =
        Reserved { origin: Origin::node("/memreserve/"), range: range(0x4100_0000, 0x1_0000), no_map: false };
    assert_eq!(platform.reserved(), [reservation]);
    let free = layout(&platform, IMAGE, DTB);
    assert!(free.free_ranges().iter().all(|free| !free.overlaps(&reservation.range)));

    let mut tree = Tree::virt();
    tree.reservations.push((u64::MAX, 2));
    let error = discover(&normalized(&tree.end().finish())).unwrap_err();
    assert_eq!(error, node_error("/memreserve/", "entry 0", ErrorKind::RangeOverflow { base: u64::MAX, size: 2 }));
}

#[test]
fn value_errors() {
    // Memory reg that is not a whole number of (2 + 2)-cell entries.
    let mut tree = Tree::virt();
    tree.begin("memory@50000000").string("device_type", "memory").cells("reg", &[0, 0x5000_0000, 0]).end();
    let error = discover(&normalized(&tree.end().finish())).unwrap_err();
    assert_eq!(error, node_error("/memory@50000000", "reg", ErrorKind::BadLength { len: 12, unit: 16 }));

    // Too many memory ranges.
    let mut tree = Tree::virt();
    let reg: Vec<u32> = (0..MAX_MEMORY_RANGES as u32).flat_map(|index| [1, index * 0x1000, 0, 0x1000]).collect();
    tree.begin("memory@100000000").string("device_type", "memory").cells("reg", &reg).end();
    let error = discover(&normalized(&tree.end().finish())).unwrap_err();
    assert_eq!(error.kind, ErrorKind::TooManyEntries { limit: MAX_MEMORY_RANGES as u32 });

    // An unknown PSCI conduit.
    let mut tree = Tree::virt();
    tree.begin("psci").string("compatible", "arm,psci-1.0").string("method", "svc").end();
    let error = discover(&normalized(&tree.end().finish())).unwrap_err();
    assert_eq!(error, node_error("/psci", "method", ErrorKind::UnsupportedValue { value: ShortValue::new("svc") }));

    // No RAM at all.
    let mut tree = Tree::default();
    tree.begin("").end();
    let error = discover(&normalized(&tree.finish())).unwrap_err();
    assert_eq!(error, ErrorKind::NoRam.into());
    assert_eq!(error.to_string(), "no available node with device_type \"memory\" declares RAM");
}

#[test]
fn device_problems_stay_with_the_device() {
    let mut tree = Tree::virt();
    tree.virtio("virtio@a000000", 0x0a00_0000, 16).end();
    // Disabled: not listed at all.
    tree.virtio("virtio@a000200", 0x0a00_0200, 17).string("status", "disabled").end();
    // Behind a bus that translates addresses.
    tree.begin("bus@c000000")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .cells("ranges", &[0, 0, 0x0c00_0000, 0x1000]);
    tree.begin("virtio@0")
        .string("compatible", "virtio,mmio")
        .cells("reg", &[0, 0x200])
        .cells("interrupts", &[0, 18, 1])
        .end();
    tree.end();
    // An SPI number past the GIC's range.
    tree.virtio("virtio@a000400", 0x0a00_0400, 988).end();
    // Two interrupts.
    tree.virtio_with_interrupts("virtio@a000600", 0x0a00_0600, &[0, 19, 1, 0, 20, 1]).end();
    let platform = discover(&normalized(&tree.end().finish())).unwrap();

    assert_eq!(platform.virtio().len(), 4);
    assert!(platform.virtio()[0].is_ok());
    let errors: Vec<String> =
        platform.virtio()[1..].iter().map(|device| device.as_ref().unwrap_err().to_string()).collect();
    assert_eq!(
        errors,
        [
            "/bus@c000000/virtio@0: property \"reg\": bus /bus@c000000 does not map addresses 1:1 (empty `ranges`)",
            "/virtio@a000400: property \"interrupts\": interrupt type 0 number 988 is not a GIC SPI or PPI",
            "/virtio@a000600: property \"interrupts\": length 24, expected 12 bytes",
        ]
    );
}

#[test]
fn device_windows_must_not_share_a_page_with_ram() {
    // RAM ending mid-page: a window after it shares no byte, but its page.
    let mut tree = Tree::virt();
    tree.begin("memory@50000000").string("device_type", "memory").cells("reg", &[0, 0x5000_0000, 0, 0x800]).end();
    tree.virtio("virtio@50000a00", 0x5000_0a00, 16).end();
    tree.virtio("virtio@50001000", 0x5000_1000, 17).end();
    let platform = discover(&normalized(&tree.end().finish())).unwrap();
    let error = device_error(&platform, "/virtio@50000a00");
    let kind = ErrorKind::DeviceInRam {
        range: range(0x5000_0a00, 0x200),
        memory: Origin::node("/memory@50000000"),
        ram: range(0x5000_0000, 0x800),
    };
    assert_eq!((error.property.as_str(), error.kind), ("reg", kind));
    assert_eq!(device(&platform, 0x5000_1000).reg.size, 0x200);
}

#[test]
fn gic_frames_are_page_aligned_and_mappable() {
    let gic_tree = |reg: &[u32]| {
        let mut tree = Tree::default();
        tree.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
        tree.begin("memory@40000000").string("device_type", "memory").cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000]);
        tree.end();
        tree.begin("intc@8000000")
            .string("compatible", "arm,cortex-a15-gic")
            .prop("interrupt-controller", &[])
            .cells("#interrupt-cells", &[3])
            .cells("reg", reg)
            .end();
        discover(&normalized(&tree.end().finish()))
    };
    assert!(gic_tree(&[0, 0x0800_0000, 0, 0x1000, 0, 0x0801_0000, 0, 0x2000]).is_ok());
    let error = gic_tree(&[0, 0x0800_0800, 0, 0x1000, 0, 0x0801_0000, 0, 0x2000]).unwrap_err();
    let kind = ErrorKind::Misaligned { value: 0x0800_0800, alignment: PAGE_SIZE };
    assert_eq!(error, node_error("/intc@8000000", "reg", kind));
    let error = gic_tree(&[0, 0x0800_0000, 0, 0x800, 0, 0x0801_0000, 0, 0x2000]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::WindowTooSmall { size: 0x800, min: 0x1000 });
    let error = gic_tree(&[0, 0x0800_0000, 0, 0x1000, 0x80, 0, 0, 0x2000]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::BeyondAddressSpace { range: range(1 << 39, 0x2000), limit: ADDRESS_LIMIT });
}

// ---------------------------------------------------------------------------
// Small types

#[test]
fn range_checks() {
    // The platform's range errors, in the tree's terms.
    assert_eq!(Range::new(0x1000, 0).map_err(ErrorKind::from), Err(ErrorKind::ZeroSize { base: Some(0x1000) }));
    assert_eq!(
        Range::new(u64::MAX, 1).map_err(ErrorKind::from),
        Err(ErrorKind::RangeOverflow { base: u64::MAX, size: 1 })
    );
    assert_eq!(Range::new(u64::MAX - 1, 1).map(|range| range.end()), Ok(u64::MAX));
    let outer = range(0x1000, 0x3000);
    assert!(outer.contains(0x1000) && outer.contains(0x3fff) && !outer.contains(0x4000) && !outer.contains(0xfff));
    assert!(outer.contains_range(&range(0x2000, 0x2000)) && !outer.contains_range(&range(0x2000, 0x2001)));
    assert!(
        outer.overlaps(&range(0x3fff, 1)) && !outer.overlaps(&range(0x4000, 1)) && !outer.overlaps(&range(0, 0x1000))
    );
    assert_eq!(outer.intersection(&range(0x3000, 0x5000)), Some(range(0x3000, 0x1000)));
    assert_eq!(outer.intersection(&range(0x4000, 0x5000)), None);
    // Hand-built wrapping ranges saturate instead of panicking.
    let wrapping = Range { base: u64::MAX, size: 2 };
    assert_eq!((wrapping.end(), wrapping.checked_end()), (u64::MAX, None));
}

#[test]
fn long_paths_are_cut_with_a_marker() {
    let long = "/a-rather-long-node-name@12345678/and-another-long-node-name@9abcdef0/leaf";
    let path = NodePath::new(long);
    assert!(path.is_truncated());
    assert!(path.as_str().len() <= NODE_PATH_CAPACITY);
    assert_eq!(path.as_str(), "/a-rather-long-node-name@12345678/and-another-long-node-name@…");
    let mut name = PropName::new("short");
    name.push_str("-and-then-a-lot-more-than-fits-in-the-name");
    assert_eq!(name.as_str(), "short-and-then-a-lot-more-tha…");
    assert!(!NodePath::new("/fits").is_truncated());
}

#[test]
fn platform_stays_small_enough_for_the_boot_stack() {
    // The runtime builds it on a 256 KiB stack before the heap exists.
    let size = core::mem::size_of::<Platform>();
    assert!(size < 32 * 1024, "Platform is {size} bytes");
}

// ---- PCI host bridges ----

fn bridge<'p>(platform: &'p Platform, path: &str) -> &'p PciHostBridge {
    let found =
        platform.pci_bridges().iter().filter_map(|bridge| bridge.as_ref().ok()).find(|b| node_of(&b.origin) == path);
    found.unwrap_or_else(|| panic!("no usable bridge {path}"))
}

fn bridge_error(platform: &Platform, path: &str) -> PlatformError {
    let found =
        platform.pci_bridges().iter().filter_map(|bridge| bridge.as_ref().err()).find(|e| node_of(&e.origin) == path);
    *found.unwrap_or_else(|| panic!("no error recorded for {path}"))
}

#[test]
fn qemu_pci_host_bridge() {
    let platform = platform(GICV3);
    let pcie = bridge(&platform, "/pcie@10000000");
    assert_eq!(pcie.mechanism, ConfigMechanism::Ecam);
    assert_eq!((pcie.bus_start, pcie.bus_end), (0, 255));
    assert_eq!(pcie.config, range(0x40_1000_0000, 256 * MIB));
    assert!(pcie.dma_coherent);
    assert_eq!(pcie.pool, None);
    let memory: Vec<_> = pcie.memory_windows().copied().collect();
    assert_eq!(
        memory,
        [PciWindow {
            space: SpaceCode::Memory32,
            prefetchable: false,
            cpu: range(0x1000_0000, 0x2eff_0000),
            pci_base: 0x1000_0000
        }]
    );
    assert_eq!(pcie.windows.iter().filter(|window| window.space == SpaceCode::Io).count(), 1);
    // The 64-bit window starts at 1 << 39: beyond the page tables, dropped.
    assert_eq!(pcie.refused_windows.len(), 1);
    assert_eq!(pcie.refused_windows[0].property.as_str(), "ranges");
    assert!(matches!(pcie.refused_windows[0].kind, ErrorKind::BeyondAddressSpace { .. }));
    // INTx: slot 0 INTA is SPI 3, slot 1 INTA is SPI 4 (swizzled), level.
    let interrupt = pcie.intx(0, 0, 0, 1).unwrap();
    assert_eq!((interrupt.kind, interrupt.number), (InterruptKind::Spi, 3));
    assert_eq!(pcie.intx(0, 1, 0, 1).unwrap().number, 4);
    assert_eq!(pcie.intx(0, 1, 0, 4).unwrap().number, 3);
    assert_eq!(pcie.intx(0, 5, 3, 2).unwrap().number, pcie.intx(0, 1, 0, 2).unwrap().number);
    assert!(pcie.intx(0, 0, 0, 0).is_none());
    // Mapped as device memory: the config window and the 32-bit window.
    let windows: Vec<_> = platform.device_windows().collect();
    assert!(windows.contains(&range(0x40_1000_0000, 256 * MIB)));
    assert!(windows.contains(&range(0x1000_0000, 0x2eff_0000)));
}

#[test]
fn pci_bridge_and_function_pools() {
    let platform = platform(fixture!("pci-pools"));
    let pcie = bridge(&platform, "/pcie@10000000");
    let (bridge_pool, _) = pool(&platform, "/reserved-memory/restricted-dma-pool@48000000");
    let (function_pool, _) = pool(&platform, "/reserved-memory/restricted-dma-pool@48400000");
    assert_eq!(pcie.pool, Some(bridge_pool));
    assert_eq!(pcie.pool_of(0, 1, 0), Some(bridge_pool));
    assert_eq!(pcie.pool_of(0, 2, 0), Some(function_pool));
    assert_eq!(pcie.pool_of(0, 2, 1), Some(bridge_pool));
}

#[test]
fn hostile_pci_bridges_are_left_out() {
    let platform = platform(fixture!("bad-pci-bridges"));
    // QEMU's own bridge is fine.
    bridge(&platform, "/pcie@10000000");
    let error = bridge_error(&platform, "/pci@1");
    assert_eq!(error.property.as_str(), "ranges");
    assert!(matches!(error.kind, ErrorKind::DeviceInRam { .. }), "{error}");
    let error = bridge_error(&platform, "/pci@2");
    assert_eq!(error.property.as_str(), "reg");
    assert_eq!(error.kind, ErrorKind::WindowTooSmall { size: MIB, min: 2 * MIB });
    let error = bridge_error(&platform, "/pci@3");
    assert_eq!(error.property.as_str(), "reg");
    assert!(matches!(error.kind, ErrorKind::BeyondAddressSpace { .. }), "{error}");
    let platform = super::tests::platform(fixture!("bad-pci-bridges-2"));
    bridge(&platform, "/pcie@10000000");
    let error = bridge_error(&platform, "/pci@4");
    assert_eq!(error.property.as_str(), "ranges");
    assert!(matches!(error.kind, ErrorKind::Overlap { .. }), "{error}");
    let error = bridge_error(&platform, "/pci@5");
    assert_eq!((error.property.as_str(), error.kind), ("ranges", ErrorKind::MissingProperty));
    let error = bridge_error(&platform, "/pci@6");
    assert_eq!(error.property.as_str(), "memory-region");
    assert!(matches!(error.kind, ErrorKind::NotAPool { .. }), "{error}");
    assert!(error.to_string().starts_with("/pci@6: property \"memory-region\""), "{error}");
    // None of them is mapped.
    assert!(platform.device_windows().all(|window| window.base != 0x3f00_0000 && window.base != 0x3f50_0000));
}

#[test]
fn pci_interrupt_map_must_name_the_gic() {
    // QEMU's interrupt-map names the GIC by phandle 0x8002; make the first
    // entry name the PL061 (0x8004 in this tree) instead.
    let mut blob = GICV3.to_vec();
    let needle: Vec<u8> = [0u32, 0, 0, 1, 0x8002].iter().flat_map(|cell| cell.to_be_bytes()).collect();
    let at = blob.windows(needle.len()).position(|window| window == needle.as_slice()).expect("interrupt-map");
    blob[at + 16..at + 20].copy_from_slice(&0x8004u32.to_be_bytes());
    let platform = platform(&blob);
    let error = bridge_error(&platform, "/pcie@10000000");
    assert_eq!(error.property.as_str(), "interrupt-map");
    assert!(
        matches!(error.kind, ErrorKind::UnsupportedInterruptParent { node } if node_of(&node).starts_with("/pl061")),
        "{error}"
    );
}

#[test]
fn malformed_pci_bridges_are_left_out() {
    let platform = platform(fixture!("bad-pci-cells"));
    bridge(&platform, "/pcie@10000000");
    let error = bridge_error(&platform, "/pci@7");
    assert_eq!((error.property.as_str(), error.kind), ("#address-cells", ErrorKind::BadCells { cells: 2 }));
    let error = bridge_error(&platform, "/pci@8");
    assert_eq!(error.property.as_str(), "bus-range");
    assert!(matches!(error.kind, ErrorKind::UnsupportedValue { .. }), "{error}");
    let error = bridge_error(&platform, "/pci@9");
    assert_eq!(error.property.as_str(), "ranges");
    assert!(matches!(error.kind, ErrorKind::UnsupportedValue { .. }), "{error}");
    // Only QEMU's bridge is mapped.
    let pci_windows = platform.pci_bridges().iter().flatten().flat_map(|bridge| bridge.device_windows()).count();
    assert_eq!(pci_windows, 2);
}
