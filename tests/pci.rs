//! QEMU integration tests of virtio over PCI (board qemu-virt-pci): BARs
//! assigned by the guest from the host bridge's windows, stock drivers and
//! the hostmem device through the bridge's restricted DMA pool, and a
//! hostile bridge left out.

mod common;

use std::fs;

use xtask::backend::BackendSpec;
use xtask::board::{Board, Variant};
use xtask::image::ImageBuild;

const BOARD: &str = "qemu-virt-pci";
const SECTOR: usize = 512;

fn board() -> &'static Board {
    Board::find(BOARD).expect("qemu-virt-pci is a known board")
}

#[test]
fn stock_drivers_run_over_virtio_pci_through_the_bridge_pool_gicv3() {
    stock_drivers(Variant::default());
}

#[test]
fn stock_drivers_run_over_virtio_pci_through_the_bridge_pool_gicv2_el2() {
    stock_drivers(Variant { gic_version: 2, el2: true });
}

/// rng (polled), blk (interrupt-driven over INTx) and console, as
/// tests/restricted_dma.rs runs them on virtio-mmio. The console is the
/// third device, 00:03.0, which the board binds to a pool of its own.
fn stock_drivers(variant: Variant) {
    let dir = xtask::paths::out_dir().join("test-disks");
    fs::create_dir_all(&dir).unwrap();
    let disk = dir.join(format!("pci-restricted-dma-{}.img", variant.label()));
    let mut bytes = vec![0u8; 64 * SECTOR];
    bytes[..16].copy_from_slice(b"TIDEPOOL-DISK-V1");
    for (i, byte) in bytes[16..SECTOR].iter_mut().enumerate() {
        *byte = ((i * 7) % 251) as u8;
    }
    fs::write(&disk, bytes).unwrap();
    let drive = format!("file={},if=none,format=raw,id=disk0", disk.display());
    let console_file = dir.join(format!("pci-virtio-console-{}.txt", variant.label()));
    let _ = fs::remove_file(&console_file);
    let console = format!("file,id=vcon,path={}", console_file.display());
    let board = board();
    let rng = board.virtio_device("virtio-rng", "iommu_platform=on");
    let blk = board.virtio_device("virtio-blk", "drive=disk0,iommu_platform=on");
    let serial = board.virtio_device("virtio-serial", "iommu_platform=on");
    let extra = ["-device", &rng, "-drive", &drive, "-device", &blk, "-chardev", &console, "-device", &serial];
    let mut extra: Vec<&str> = extra.to_vec();
    extra.extend(["-device", "virtconsole,chardev=vcon"]);
    let launch = common::launch_on(
        BOARD,
        ImageBuild::new("virtio_devices"),
        variant,
        common::tree_on(BOARD, variant, &[]),
        &[],
        &extra,
    );
    let outcome = common::run_launch(&launch);
    assert!(outcome.has_line("test rng_through_its_pool ... ok"), "{}", outcome.console);
    assert!(outcome.has_line("test blk_round_trip_with_interrupts ... ok"));
    assert!(outcome.has_line("test console_writes_through_its_pool ... ok"));
    assert!(outcome.has_line("4 passed, 0 failed"));
    assert_eq!(outcome.exit_line_status, Some(0));
    assert!(!outcome.console.contains("does not offer VIRTIO_F_ACCESS_PLATFORM"));
    // rng and blk share the bridge's pool (0x48000000); the console at
    // 00:03.0 has its own (0x48400000).
    let pool_of = |needle: &str| {
        outcome.console.lines().find(|line| line.contains(needle)).and_then(|line| line.split("via pool ").nth(1))
    };
    assert!(outcome.console.contains("rng: "), "{}", outcome.console);
    assert_ne!(pool_of("console: "), None);
    assert_ne!(pool_of("rng: "), pool_of("console: "), "the function pool was not used");
    let written = fs::read(&disk).unwrap();
    let expected = b"written by the guest through its pool";
    assert_eq!(&written[8 * SECTOR..8 * SECTOR + expected.len()], expected);
    let console_text = fs::read_to_string(&console_file).unwrap_or_default();
    assert_eq!(console_text, "hello from the guest, through its DMA pool\n");
}

#[test]
fn hostmem_echo_over_virtio_pci() {
    let outcome = common::boot_with_backend_on(
        BOARD,
        ImageBuild::new("hostmem_echo"),
        Variant::default(),
        &[],
        &BackendSpec::default(),
    );
    assert!(outcome.has_line("2 passed, 0 failed"), "{}", outcome.console);
    // The interrupt-driven echo took its interrupt through INTx (the image
    // itself requires at least one; how many more a busy host adds varies).
    let line = outcome.console.lines().find(|line| line.contains("interrupt-driven echo:")).unwrap_or_default();
    let interrupts = line
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" interrupts")?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no interrupt count in {line:?}\n{}", outcome.console));
    assert!(interrupts >= 1, "{line}");
    assert_eq!(outcome.exit_line_status, Some(0));
    assert_eq!(outcome.backend_clean_exit, Some(true));
}

#[test]
fn codec_demo_over_virtio_pci_is_zero_copy() {
    let outcome = common::boot_with_backend_on(
        BOARD,
        ImageBuild::new("codec_demo"),
        Variant::default(),
        &[],
        &BackendSpec::default(),
    );
    common::assert_codec_demo_zero_copy(&outcome);
}

#[test]
fn a_ring_outside_the_pool_is_caught_over_virtio_pci() {
    // As in tests/hostmem.rs: the image's own Hal takes the ring's pages
    // from the pool but hands the device heap memory.
    let image = ImageBuild::new("ring_outside_pool");
    let outcome = common::boot_with_backend_on(BOARD, image, Variant::default(), &[], &BackendSpec::default());
    common::assert_misplaced_ring_caught(&outcome);
}

#[test]
fn a_bridge_whose_window_is_ram_is_left_out() {
    let variant = Variant::default();
    let rng = board().virtio_device("virtio-rng", "");
    let launch = common::launch_on(
        BOARD,
        ImageBuild::new("pool_policy"),
        variant,
        common::tree_on(BOARD, variant, &["pci-bad-ranges"]),
        &[],
        &["-device", &rng],
    );
    let outcome = common::run_launch(&launch);
    let error = "/pcie@10000000: property \"ranges\": register window 0x40000000..0x41000000 is in (or shares a page \
                 with) RAM of /memory@40000000";
    // The probe reports discovery's error: node, property and why.
    assert!(outcome.console.contains(&format!("refused: {error}")), "{}", outcome.console);
    // The rng behind the bridge was left out; nothing panicked.
    assert!(outcome.console.contains("no usable rng"), "{}", outcome.console);
    assert!(!outcome.console.contains("panic"), "{}", outcome.console);
    assert!(outcome.has_line("1 passed, 1 failed"), "{}", outcome.console);
    assert_eq!(outcome.exit_line_status, Some(1));
}
