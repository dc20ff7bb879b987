//! Command line.

use std::path::PathBuf;

use clap::Parser;

use crate::setup::{DeviceSetup, Faults, GuestWindow, MAX_INSTANCES_SUPPORTED, SetupError, SetupParams, SubdeviceKind};

/// vhost-user backend serving the virtio-hostmem device (docs/hostmem.md).
///
/// QEMU connects to the socket through `-chardev socket,id=vu0,path=PATH`
/// and a generic vhost-user device with num_vqs = 2 + N and config_size =
/// 256; --print-qemu-args prints the exact -device argument. The guest RAM
/// holding the DMA pool and the regions must be shared memfd NUMA nodes; the
/// backend maps only the pool window and the regions out of them.
#[derive(Parser, Debug)]
#[command(name = "hostmem-backend", version, about, long_about)]
pub struct Cli {
    /// Unix socket to listen on (QEMU connects to it).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,

    /// Guest-physical window of the restricted DMA pool the device is bound
    /// to, e.g. 0x48000000:4M. Every ring and buffer must lie inside it.
    #[arg(long, value_name = "BASE:SIZE", value_parser = parse_window)]
    pub pool: GuestWindow,

    /// A sub-device and its region, KIND@BASE:SIZE with KIND codec or echo,
    /// e.g. codec@0x49000000:8M. Repeat for more; the shmid (and sub-device
    /// index) is the order given.
    #[arg(long = "region", value_name = "KIND@BASE:SIZE", required = true, value_parser = parse_region)]
    pub regions: Vec<(SubdeviceKind, GuestWindow)>,

    /// Instance slots N; the device has 2 + N virtqueues (QEMU's num_vqs).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_INSTANCES_SUPPORTED)))]
    pub max_instances: u32,

    /// Log level: off, error, warn, info, debug or trace (RUST_LOG, if set,
    /// overrides it).
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_level)]
    pub log_level: log::LevelFilter,

    /// Virtio device id configured in QEMU's `virtio-id=` (logs and
    /// --print-qemu-args only: QEMU takes the id from its own command line).
    #[arg(long, value_name = "ID", default_value_t = hostmem_wire::DEVICE_ID_DEFAULT)]
    pub device_id: u32,

    /// Write every frame the codec decodes into DIR as a PNG (RGB or RGBA),
    /// and a line per frame (instance, seq, size, channels, pixel digest,
    /// file) into DIR/frames.tsv, which starts afresh with each run.
    #[arg(long, value_name = "DIR")]
    pub dump_frames: Option<PathBuf>,

    /// Test fault: `stall-after=N` stops answering notifications after N of
    /// them; `bad-region` publishes sub-device 0's region at the pool's base
    /// so a driver's config validation must refuse the device;
    /// `corrupt-frame=N` corrupts the input of the codec's N-th DECODE so
    /// it fails with BAD_INPUT. Repeatable.
    #[arg(long = "fault", value_name = "FAULT", value_parser = parse_fault)]
    pub faults: Vec<Fault>,

    /// Do not offer VIRTIO_F_ACCESS_PLATFORM (nor the BACKEND_REQ protocol
    /// feature QEMU requires with it).
    #[arg(long)]
    pub no_access_platform: bool,

    /// Print the QEMU -device argument matching this configuration and exit.
    #[arg(long)]
    pub print_qemu_args: bool,
}

/// One `--fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `stall-after=N`.
    StallAfter(u64),
    /// `bad-region`.
    BadRegion,
    /// `corrupt-frame=N`.
    CorruptFrame(u64),
}

impl Cli {
    /// The device setup the arguments describe.
    pub fn setup(&self) -> Result<DeviceSetup, SetupError> {
        let mut faults = Faults::default();
        for fault in &self.faults {
            match *fault {
                Fault::StallAfter(n) => faults.stall_after = Some(n),
                Fault::BadRegion => faults.bad_region = true,
                Fault::CorruptFrame(n) => faults.corrupt_frame = Some(n),
            }
        }
        DeviceSetup::new(SetupParams {
            device_id: self.device_id,
            pool: self.pool,
            regions: self.regions.clone(),
            max_instances: self.max_instances,
            faults,
            dump_frames: self.dump_frames.clone(),
            access_platform: !self.no_access_platform,
        })
    }
}

/// The `-device` argument QEMU needs for `setup` (chardev id `vu0`).
pub fn qemu_device_arg(setup: &DeviceSetup) -> String {
    format!(
        "vhost-user-device,chardev=vu0,virtio-id={},num_vqs={},vq_size=64,config_size={}",
        setup.device_id(),
        setup.queue_count(),
        hostmem_wire::CONFIG_SIZE
    )
}

/// Parses a number: decimal, or hexadecimal with `0x`; `_` allowed.
pub fn parse_number(s: &str) -> Result<u64, String> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let parsed = match clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => clean.parse::<u64>(),
    };
    parsed.map_err(|e| format!("bad number {s:?}: {e}"))
}

/// Parses a size: a number with an optional binary suffix K, M or G
/// (KiB, MiB, GiB also accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches("ib").trim_end_matches('b');
    let (digits, shift) = match trimmed.char_indices().last() {
        Some((i, 'k')) => (&s[..i], 10),
        Some((i, 'm')) => (&s[..i], 20),
        Some((i, 'g')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let value = parse_number(digits)?;
    value.checked_mul(1u64 << shift).ok_or_else(|| format!("size {s:?} overflows"))
}

/// Parses `BASE:SIZE` into a validated window.
pub fn parse_window(s: &str) -> Result<GuestWindow, String> {
    let (base, size) = s.split_once(':').ok_or_else(|| format!("expected BASE:SIZE, got {s:?}"))?;
    GuestWindow::new(parse_number(base)?, parse_size(size)?).map_err(|e| e.to_string())
}

/// Parses `KIND@BASE:SIZE`.
pub fn parse_region(s: &str) -> Result<(SubdeviceKind, GuestWindow), String> {
    let (kind, window) = s.split_once('@').ok_or_else(|| format!("expected KIND@BASE:SIZE, got {s:?}"))?;
    Ok((kind.parse()?, parse_window(window)?))
}

/// Parses one `--fault`.
pub fn parse_fault(s: &str) -> Result<Fault, String> {
    match s.split_once('=') {
        Some(("stall-after", n)) => Ok(Fault::StallAfter(parse_number(n)?)),
        Some(("corrupt-frame", n)) => Ok(Fault::CorruptFrame(parse_number(n)?)),
        None if s == "bad-region" => Ok(Fault::BadRegion),
        _ => Err(format!("unknown fault {s:?} (known: stall-after=N, bad-region, corrupt-frame=N)")),
    }
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse().map_err(|_| format!("unknown log level {s:?}"))
}
