//! QEMU integration tests of the hostmem device: the guest driver against
//! the vhost-user backend, with guest RAM split so that the backend sees
//! only the DMA pool and the regions.

mod common;

use xtask::backend::BackendSpec;
use xtask::board::Variant;
use xtask::image::ImageBuild;

#[test]
fn echo_round_trip_through_the_backend() {
    let outcome =
        common::boot_with_backend(ImageBuild::new("hostmem_echo"), Variant::default(), &[], &BackendSpec::default());
    assert!(outcome.has_line("2 passed, 0 failed"));
    assert_eq!(outcome.exit_line_status, Some(0));
    assert_eq!(outcome.backend_clean_exit, Some(true), "the backend must stop cleanly on SIGTERM");
}

#[test]
fn codec_demo_decodes_every_frame_zero_copy() {
    let outcome =
        common::boot_with_backend(ImageBuild::new("codec_demo"), Variant::default(), &[], &BackendSpec::default());
    assert!(outcome.has_line("codec: summary: 30 verified, 0 failed, of 30 frames"));
    assert_eq!(outcome.console.matches(" verified\n").count(), 30, "one line per frame");
    assert_eq!(outcome.exit_line_status, Some(0));
}
