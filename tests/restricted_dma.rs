//! QEMU integration tests of restricted DMA: stock virtio devices driven
//! through their pools.

mod common;

use std::fs;

use xtask::board::Variant;

const SECTOR: usize = 512;

/// A 64 KiB raw disk: sector 0 holds the magic and a byte pattern the guest
/// checks; the rest is zero.
fn prepare_disk(path: &std::path::Path) {
    let mut disk = vec![0u8; 128 * SECTOR];
    let magic = b"TIDEPOOL-DISK-V1";
    disk[..magic.len()].copy_from_slice(magic);
    for (i, byte) in disk[magic.len()..SECTOR].iter_mut().enumerate() {
        *byte = ((i * 7) % 251) as u8;
    }
    fs::write(path, disk).expect("write the disk image");
}

fn stock_drivers_through_pools(variant: Variant) {
    let dir = xtask::paths::out_dir().join("test-disks");
    fs::create_dir_all(&dir).unwrap();
    let disk = dir.join(format!("restricted-dma-{}.img", variant.label()));
    prepare_disk(&disk);
    let drive = format!("file={},if=none,format=raw,id=disk0", disk.display());
    let console_file = dir.join(format!("virtio-console-{}.txt", variant.label()));
    let _ = fs::remove_file(&console_file);
    let console = format!("file,id=vcon,path={}", console_file.display());
    let outcome = common::boot(
        "virtio_devices",
        variant,
        &[],
        &[
            "-device",
            "virtio-rng-device,iommu_platform=on",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=disk0,iommu_platform=on",
            "-chardev",
            &console,
            "-device",
            "virtio-serial-device,iommu_platform=on",
            "-device",
            "virtconsole,chardev=vcon",
        ],
    );
    assert!(outcome.has_line("test pools_are_registered ... ok"));
    assert!(outcome.has_line("test rng_through_its_pool ... ok"));
    assert!(outcome.has_line("test blk_round_trip_with_interrupts ... ok"));
    assert!(outcome.has_line("test console_writes_through_its_pool ... ok"));
    assert!(outcome.has_line("4 passed, 0 failed"));
    let console_text = fs::read_to_string(&console_file).unwrap_or_default();
    assert_eq!(console_text, "hello from the guest, through its DMA pool\n", "the virtio console's output");
    assert_eq!(outcome.exit_line_status, Some(0));
    // Both devices offer ACCESS_PLATFORM (iommu_platform=on) and the guest,
    // being pool-bound, must have accepted it.
    assert!(!outcome.console.contains("does not offer VIRTIO_F_ACCESS_PLATFORM"));
    // What the guest wrote through the pool reached the disk.
    let written = fs::read(&disk).unwrap();
    let expected = b"written by the guest through its pool";
    assert_eq!(&written[8 * SECTOR..8 * SECTOR + expected.len()], expected);
    assert!(written[..16].starts_with(b"TIDEPOOL-DISK-V1"), "sector 0 must be untouched");
}

#[test]
fn stock_rng_blk_and_console_drivers_work_through_their_pools_gicv3() {
    stock_drivers_through_pools(Variant { gic_version: 3, el2: false });
}

#[test]
fn stock_rng_blk_and_console_drivers_work_through_their_pools_gicv2_el2() {
    stock_drivers_through_pools(Variant { gic_version: 2, el2: true });
}

#[test]
fn hostile_pool_bindings_leave_only_the_affected_devices_unconfigured() {
    let variant = Variant::default();
    let tree = common::tree(variant, &["hostile-pools"]);
    let outcome = common::boot_with_tree(
        xtask::image::ImageBuild::new("pool_policy"),
        variant,
        tree,
        &[],
        &["-device", "virtio-rng-device", "-device", "virtio-rng-device", "-device", "virtio-rng-device"],
    );
    assert!(outcome.has_line("2 passed, 0 failed"), "the image must keep running");
    assert!(outcome.has_line(
        "  refused: /virtio_mmio@a003c00: property \"memory-region\": phandle 0x8009 names /not-a-pool, which is not a restricted-dma-pool"
    ));
    assert!(outcome.has_line(
        "  refused: /virtio_mmio@a003a00: property \"memory-region\": its pool /reserved-memory/restricted-dma@48800000 is unusable"
    ));
    assert!(outcome.console.contains(
        "/reserved-memory/restricted-dma@48800000: property \"reg\": range 0x80000000..0x80400000 is not inside RAM"
    ));
    // The device with a good pool keeps working, through that pool.
    assert!(outcome.has_line("  rng at 0xa003e00 via pool 3 (0x48000000..0x48400000): 32 bytes"));
    assert_eq!(outcome.console.matches("  rng at ").count(), 1, "only one rng may be bound");
}

#[test]
fn size_and_alignment_pool_is_placed_by_the_runtime() {
    let variant = Variant::default();
    let tree = common::tree(variant, &["dynamic-pool"]);
    let outcome = common::boot_with_tree(
        xtask::image::ImageBuild::new("pool_policy"),
        variant,
        tree,
        &[],
        &["-device", "virtio-rng-device"],
    );
    assert!(outcome.has_line("2 passed, 0 failed"));
    // Highest 2 MiB-aligned 2 MiB inside alloc-ranges 0x4400_0000..0x4600_0000,
    // clear of the DTB that QEMU put at 0x4480_0000.
    assert!(outcome.has_line("  rng at 0xa003e00 via pool 0 (0x45e00000..0x46000000): 32 bytes"), "placement changed");
}

#[test]
fn without_pools_the_policy_decides_and_strict_is_the_default() {
    let variant = Variant::default();
    let rng = ["-device", "virtio-rng-device"];
    // Strict (the default): a device the tree binds to no pool is refused.
    let strict = common::boot_with_tree(
        xtask::image::ImageBuild::new("pool_policy"),
        variant,
        common::qemu_tree(variant),
        &[],
        &rng,
    );
    assert!(
        strict.has_line(
            "  refused: virtio-mmio 0xa003e00: no memory-region, and DMA outside a restricted pool is refused"
        )
    );
    assert!(strict.console.contains("test bound_devices_still_work ... FAILED: no usable rng"));
    // Unrestricted, allowed because the tree declares no pool: the device
    // gets a private pool of its own, never the general heap.
    let unrestricted = common::boot_with_tree(
        xtask::image::ImageBuild::new("pool_policy"),
        variant,
        common::qemu_tree(variant),
        &["policy=unrestricted"],
        &rng,
    );
    assert!(unrestricted.console.contains("  private pool 7: "));
    assert!(unrestricted.console.contains("  rng at 0xa003e00 via pool 7 "));
    assert!(unrestricted.has_line("2 passed, 0 failed"));
}

#[test]
fn the_unrestricted_policy_is_ignored_when_the_tree_declares_pools() {
    let variant = Variant::default();
    let outcome = common::boot_with_tree(
        xtask::image::ImageBuild::new("pool_policy"),
        variant,
        common::tree(variant, &[]),
        &["policy=unrestricted"],
        &["-device", "virtio-rng-device"],
    );
    // Slot 0x0a003c00 has no device, so nothing is refused; the rng keeps its
    // declared pool (3), not the private one.
    assert!(outcome.console.contains("  rng at 0xa003e00 via pool 3 (0x48000000..0x48400000)"));
    assert!(outcome.has_line("2 passed, 0 failed"));
}
