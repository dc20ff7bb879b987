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
    common::assert_codec_demo_zero_copy(&outcome);
}

fn backend_with(extra: &[&str]) -> BackendSpec {
    let mut spec = BackendSpec::default();
    spec.args.extend(extra.iter().map(|s| s.to_string()));
    spec
}

#[test]
fn a_frame_the_host_cannot_decode_is_reported_and_playback_goes_on() {
    let outcome = common::boot_with_backend(
        ImageBuild::new("codec_demo"),
        Variant::default(),
        &[],
        &backend_with(&["--fault", "corrupt-frame=5"]),
    );
    // The failure must arrive as the device's ERROR event for that frame,
    // not only as a failed result header.
    assert!(outcome.has_line("frame   4: host answered with an error event: BadInput"), "{}", outcome.console);
    assert!(outcome.console.contains("frame  29: "), "playback must go on after the bad frame");
    assert!(outcome.has_line("codec: summary: 29 verified, 1 failed, of 30 frames"));
    // One event in 30 frames (the demo polls: no interrupts).
    assert!(outcome.console.contains("0.00 interrupts, 0.03 events"), "{}", outcome.console);
    assert_eq!(outcome.exit_line_status, Some(1), "not every frame verified");
}

#[test]
fn a_host_that_stops_answering_times_out() {
    let outcome = common::boot_with_backend(
        ImageBuild::new("codec_demo"),
        Variant::default(),
        &["codec.timeout_ms=1000"],
        &backend_with(&["--fault", "stall-after=3"]),
    );
    let error = outcome.console.lines().find(|line| line.starts_with("codec: error: ")).expect("an error line");
    assert!(error.contains("frame 3") && error.to_lowercase().contains("time"), "{error}");
    assert!(!outcome.timed_out, "the guest must give up by itself");
    assert_eq!(outcome.exit_line_status, Some(1));
}

#[test]
fn a_region_published_over_the_pool_refuses_the_device() {
    let outcome = common::boot_with_backend(
        ImageBuild::new("codec_demo"),
        Variant::default(),
        &[],
        &backend_with(&["--fault", "bad-region"]),
    );
    let error = outcome.console.lines().find(|line| line.starts_with("codec: error: ")).expect("an error line");
    assert!(error.contains("shmid 0") && error.contains("pool"), "{error}");
    assert!(!outcome.console.contains(" verified\n"), "no frame may be played");
    assert_eq!(outcome.exit_line_status, Some(1));
}

#[test]
fn a_ring_outside_the_pool_is_caught() {
    // The image's own Hal takes the ring's pages from the pool but hands
    // the device heap memory, so the driver's pool accounting passes.
    let image = ImageBuild::new("ring_outside_pool");
    let outcome = common::boot_with_backend(image, Variant::default(), &[], &BackendSpec::default());
    // The backend refuses SET_VRING_ADDR, and QEMU gives up on the device.
    common::assert_misplaced_ring_caught(&outcome);
    assert!(outcome.console.contains("Error starting vhost-user-base"), "QEMU did not report the failed start");
}

#[test]
fn the_demo_plays_a_directory_of_the_users_images() {
    let dir = xtask::paths::out_dir().join("test-user-frames");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for index in 0..3u32 {
        let (width, height) = (64u32, 48u32);
        let mut ppm = format!("P6\n{width} {height}\n255\n").into_bytes();
        for y in 0..height {
            for x in 0..width {
                ppm.extend([(x * 4) as u8, (y * 5) as u8, (index * 80 + (x ^ y)) as u8]);
            }
        }
        std::fs::write(dir.join(format!("user-{index}.ppm")), ppm).unwrap();
    }
    let mut image = ImageBuild::new("codec_demo");
    image.codec_frames = Some(dir);
    let outcome = common::boot_with_backend(image, Variant::default(), &[], &BackendSpec::default());
    assert!(outcome.console.contains("codec: clip of 3 frames 64x48x3"));
    assert!(outcome.has_line("codec: summary: 3 verified, 0 failed, of 3 frames"));
    assert_eq!(outcome.exit_line_status, Some(0));
}

/// Reads `key=value` out of a `bench: path=...` line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn the_copy_path_bounces_every_payload_byte_and_the_hostmem_path_none() {
    let outcome = common::boot_with_backend(
        ImageBuild::new("codec_bench"),
        Variant::default(),
        &["bench.rounds=1", "bench.warmup=0"],
        &BackendSpec::default(),
    );
    assert_eq!(outcome.exit_line_status, Some(0), "every frame of both paths must verify");
    let line = |path: &str| {
        let prefix = format!("bench: path={path} ");
        outcome
            .console
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {path} line"))
            .to_string()
    };
    let (hostmem, copy) = (line("hostmem"), line("copy"));
    assert_eq!(field(&hostmem, "frames"), 30);
    assert_eq!(field(&copy, "frames"), 30);
    // Zero-copy: only the 72-byte notifications went through the pool.
    assert_eq!(field(&hostmem, "transport_bytes"), 30 * 72);
    assert_eq!(field(&hostmem, "payload_bytes"), 0);
    // The conventional path bounces each compressed frame in and each decoded
    // frame (with its 32-byte header) out, besides the notifications.
    let payload = field(&copy, "bytes_in") + field(&copy, "bytes_out") + 30 * 32;
    assert_eq!(field(&copy, "payload_bytes"), payload, "{copy}");
    assert_eq!(field(&copy, "transport_bytes"), payload + 30 * 72, "{copy}");
    assert_eq!(field(&hostmem, "doorbells"), 30);
}
