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

fn rng_and_blk_through_pools(variant: Variant) {
    let dir = xtask::paths::out_dir().join("test-disks");
    fs::create_dir_all(&dir).unwrap();
    let disk = dir.join(format!("restricted-dma-{}.img", variant.label()));
    prepare_disk(&disk);
    let drive = format!("file={},if=none,format=raw,id=disk0", disk.display());
    let outcome = common::boot(
        "virtio_devices",
        variant,
        &[],
        &["-device", "virtio-rng-device", "-drive", &drive, "-device", "virtio-blk-device,drive=disk0"],
    );
    assert!(outcome.has_line("test pools_are_registered ... ok"));
    assert!(outcome.has_line("test rng_through_its_pool ... ok"));
    assert!(outcome.has_line("test blk_round_trip_with_interrupts ... ok"));
    assert!(outcome.has_line("3 passed, 0 failed"));
    assert_eq!(outcome.exit_line_status, Some(0));
    // What the guest wrote through the pool reached the disk.
    let written = fs::read(&disk).unwrap();
    let expected = b"written by the guest through its pool";
    assert_eq!(&written[8 * SECTOR..8 * SECTOR + expected.len()], expected);
    assert!(written[..16].starts_with(b"TIDEPOOL-DISK-V1"), "sector 0 must be untouched");
}

#[test]
fn virtio_rng_and_blk_work_through_their_pools_gicv3() {
    rng_and_blk_through_pools(Variant { gic_version: 3, el2: false });
}

#[test]
fn virtio_rng_and_blk_work_through_their_pools_gicv2_el2() {
    rng_and_blk_through_pools(Variant { gic_version: 2, el2: true });
}
