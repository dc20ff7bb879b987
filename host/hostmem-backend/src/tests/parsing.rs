//! Command line and setup validation.

use clap::Parser;

use crate::cli::{Cli, Fault, parse_number, parse_region, parse_size, parse_window, qemu_device_arg};
use crate::setup::{SetupError, SubdeviceKind};

#[test]
fn numbers_and_sizes() {
    assert_eq!(parse_number("0x4900_0000"), Ok(0x4900_0000));
    assert_eq!(parse_number("4096"), Ok(4096));
    assert!(parse_number("0xzz").is_err());
    assert_eq!(parse_size("8M"), Ok(8 << 20));
    assert_eq!(parse_size("8MiB"), Ok(8 << 20));
    assert_eq!(parse_size("4k"), Ok(4096));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("0x1000"), Ok(4096));
    assert!(parse_size("99999999999999999G").is_err());
    assert!(parse_window("0x49000000").is_err());
    assert!(parse_window("0x49000001:8M").is_err(), "misaligned");
    assert!(parse_window("0x49000000:0").is_err(), "empty");
    assert!(parse_window("0xfffffffffffff000:8K").is_err(), "overflow");
    let (kind, window) = parse_region("codec@0x49000000:8M").unwrap();
    assert_eq!((kind, window.base(), window.len()), (SubdeviceKind::Codec, 0x4900_0000, 8 << 20));
    assert!(parse_region("gpu@0x49000000:8M").is_err());
}

fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(["hostmem-backend", "--socket", "/tmp/s"].iter().chain(args))
}

#[test]
fn full_command_line() {
    let cli = cli(&[
        "--pool",
        "0x48400000:4M",
        "--region",
        "codec@0x49000000:8M",
        "--region",
        "echo@0x49800000:8M",
        "--max-instances",
        "2",
        "--fault",
        "stall-after=3",
        "--fault",
        "bad-region",
        "--log-level",
        "debug",
    ])
    .unwrap();
    assert_eq!(cli.faults, vec![Fault::StallAfter(3), Fault::BadRegion]);
    let setup = cli.setup().unwrap();
    assert_eq!(setup.queue_count(), 4);
    assert_eq!(setup.faults().stall_after, Some(3));
    assert!(setup.faults().bad_region);
    assert_eq!(setup.subdevices()[1].entry.shmid.get(), 1);
    assert_eq!(
        qemu_device_arg(&setup),
        "vhost-user-device,chardev=vu0,virtio-id=21,num_vqs=4,vq_size=64,config_size=256"
    );
}

#[test]
fn refused_command_lines() {
    assert!(cli(&["--pool", "0x48000000:4M"]).is_err(), "no region");
    assert!(cli(&["--pool", "0x48000000:4M", "--region", "echo@0x49000000:8M", "--max-instances", "0"]).is_err());
    assert!(cli(&["--pool", "0x48000000:4M", "--region", "echo@0x49000000:8M", "--max-instances", "63"]).is_err());
    assert!(cli(&["--pool", "0x48000000:4M", "--region", "echo@0x49000000:8M", "--fault", "explode"]).is_err());
    let overlap = cli(&["--pool", "0x48000000:4M", "--region", "echo@0x48200000:8M"]).unwrap();
    assert!(matches!(overlap.setup(), Err(SetupError::RegionOverlapsPool { .. })));
    let clash =
        cli(&["--pool", "0x48000000:4M", "--region", "echo@0x49000000:8M", "--region", "codec@0x49400000:8M"]).unwrap();
    assert!(matches!(clash.setup(), Err(SetupError::Wire(_))));
}

#[test]
fn many_regions_go_beyond_config_space() {
    let mut args = vec!["--pool".to_string(), "0x48000000:4M".to_string()];
    for i in 0..8u64 {
        args.push("--region".into());
        args.push(format!("echo@{:#x}:4K", 0x4900_0000 + i * 0x1000));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let setup = cli(&refs).unwrap().setup().unwrap();
    let config = setup.config();
    assert_eq!((config.num_subdevices.get(), config.entries_present.get()), (8, 6));
    assert_eq!(setup.subdevices()[7].entry.shmid.get(), 7);
}
