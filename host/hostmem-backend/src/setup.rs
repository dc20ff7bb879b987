//! The validated, immutable description of the device this daemon serves:
//! the guest-physical windows it may touch, its sub-devices and the config
//! space it publishes. Built once from the command line and shared by every
//! connection.
//!
//! Plain data that uses no other module of the backend, so that every
//! module can use it: sub-device kinds are named here, and `subdevice`
//! makes their implementations.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::zerocopy::little_endian::U64;
use hostmem_wire::{Config, REGION_ALIGN, SubdeviceEntry, WireError, ranges_overlap};

/// Largest `max_instances` this backend supports. The spec allows 1022, but
/// vhost-user-backend 0.24 assigns queues to worker threads with one `u64`
/// bit mask per thread, so a device served by one worker can have at most 64
/// queues: config + event + 62 notification queues.
pub const MAX_INSTANCES_SUPPORTED: u32 = 62;

/// Largest virtqueue size the backend accepts (QEMU's `vq_size`). Power of
/// two, as virtio-queue requires.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// A range of guest-physical address space, `[base, base + len)`, whose end
/// is known not to overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestWindow {
    base: u64,
    len: u64,
}

impl GuestWindow {
    /// A page-aligned, non-empty window whose end fits in 64 bits.
    pub fn new(base: u64, len: u64) -> Result<Self, SetupError> {
        if len == 0 || !base.is_multiple_of(REGION_ALIGN) || !len.is_multiple_of(REGION_ALIGN) {
            return Err(SetupError::BadWindow { base, len, why: "base and size must be non-zero multiples of 4096" });
        }
        if base.checked_add(len).is_none() {
            return Err(SetupError::BadWindow { base, len, why: "base + size overflows" });
        }
        Ok(Self { base, len })
    }

    /// First byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true (windows are non-empty); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte (cannot overflow, checked at construction).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }

    /// Whether `[addr, addr + len)` lies entirely inside the window, with
    /// overflow-safe arithmetic. An empty range is inside if `addr` is.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= self.base && end <= self.end(),
            None => false,
        }
    }

    /// Whether the two windows share a byte.
    pub fn overlaps(&self, other: &GuestWindow) -> bool {
        ranges_overlap(self.base, self.len, other.base, other.len)
    }
}

impl fmt::Display for GuestWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.base, self.end())
    }
}

/// One sub-device as configured: what it is, where its region really is,
/// and the entry the device publishes for it.
#[derive(Clone, Debug)]
pub struct SubdeviceSpec {
    /// Which implementation serves it.
    pub kind: SubdeviceKind,
    /// The region the backend maps and serves (what the command line said).
    pub region: GuestWindow,
    /// The entry published in config space and in CREATE / QUERY_SUBDEVICE
    /// responses. Equal to `region` unless the `bad-region` fault is on.
    pub entry: SubdeviceEntry,
}

/// Test-fault switches for integration tests of the guest driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Stop answering notifications after this many (counted per
    /// connection), so the driver's timeout path runs.
    pub stall_after: Option<u64>,
    /// Publish sub-device 0's region at the pool's base (overlapping the
    /// DMA pool) so the driver's config validation must refuse the device.
    /// The backend still serves the real region internally.
    pub bad_region: bool,
    /// Corrupt the input of the codec's N-th DECODE (1-based, counted per
    /// connection) before decoding it, so the driver's handling of a frame
    /// the host cannot decode runs.
    pub corrupt_frame: Option<u64>,
}

/// Everything needed to build [`DeviceSetup`]; what the CLI produces.
#[derive(Clone, Debug)]
pub struct SetupParams {
    /// Virtio device id (for logs and consistency checks; QEMU takes the id
    /// from its own command line).
    pub device_id: u32,
    /// Guest-physical window of the restricted DMA pool this device is bound
    /// to: every ring and buffer must lie inside it.
    pub pool: GuestWindow,
    /// Sub-devices in order; sub-device `k` gets shmid `k`.
    pub regions: Vec<(SubdeviceKind, GuestWindow)>,
    /// Instance slots, N (the device has 2 + N queues).
    pub max_instances: u32,
    /// Fault switches.
    pub faults: Faults,
    /// Directory the codec writes decoded frames to, if any.
    pub dump_frames: Option<PathBuf>,
    /// Offer VIRTIO_F_ACCESS_PLATFORM (with the BACKEND_REQ and REPLY_ACK
    /// protocol features QEMU requires for it).
    pub access_platform: bool,
}

/// The validated device description.
#[derive(Clone, Debug)]
pub struct DeviceSetup {
    device_id: u32,
    pool: GuestWindow,
    subdevices: Vec<SubdeviceSpec>,
    max_instances: u32,
    config: Config,
    faults: Faults,
    dump_frames: Option<PathBuf>,
    access_platform: bool,
}

impl DeviceSetup {
    /// Validates `params`: at least one region, regions pairwise disjoint
    /// and disjoint from the pool, at most 256 of them (shmid <= 255),
    /// `max_instances` in `1..=MAX_INSTANCES_SUPPORTED`.
    pub fn new(params: SetupParams) -> Result<Self, SetupError> {
        let SetupParams { device_id, pool, regions, max_instances, faults, dump_frames, access_platform } = params;
        if max_instances == 0 || max_instances > MAX_INSTANCES_SUPPORTED {
            return Err(SetupError::MaxInstances(max_instances));
        }
        if regions.is_empty() {
            return Err(SetupError::NoRegions);
        }
        let mut subdevices = Vec::with_capacity(regions.len());
        for (index, (kind, region)) in regions.into_iter().enumerate() {
            let shmid = u32::try_from(index).map_err(|_| SetupError::TooManyRegions)?;
            if region.overlaps(&pool) {
                return Err(SetupError::RegionOverlapsPool { index, region, pool });
            }
            let (vendor, device, revision) = kind.identity();
            let entry = SubdeviceEntry::new(vendor, device, revision, shmid, region.base(), region.len(), kind.flags());
            subdevices.push(SubdeviceSpec { kind, region, entry });
        }
        // The real layout must be valid on its own (disjoint regions, shmids
        // <= 255), whatever is published.
        let real: Vec<SubdeviceEntry> = subdevices.iter().map(|s| s.entry).collect();
        hostmem_wire::validate_entries(&real).map_err(SetupError::Wire)?;

        if faults.bad_region
            && let Some(first) = subdevices.first_mut()
        {
            first.entry.region_base = U64::new(pool.base());
        }
        let published: Vec<SubdeviceEntry> = subdevices.iter().map(|s| s.entry).collect();
        let config = Config::from_subdevices(max_instances, &published).map_err(SetupError::Wire)?;
        Ok(Self { device_id, pool, subdevices, max_instances, config, faults, dump_frames, access_platform })
    }

    /// Virtio device id.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The restricted DMA pool window.
    pub fn pool(&self) -> GuestWindow {
        self.pool
    }

    /// Sub-devices by index.
    pub fn subdevices(&self) -> &[SubdeviceSpec] {
        &self.subdevices
    }

    /// N, the number of instance slots.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Number of virtqueues, 2 + N (QEMU's `num_vqs`).
    pub fn queue_count(&self) -> usize {
        // max_instances is at most 62 (checked in new), so this cannot fail.
        hostmem_wire::queue_count(self.max_instances).map_or(0, |n| n as usize)
    }

    /// The config space as published.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config space bytes (hostmem_wire::CONFIG_SIZE of them).
    pub fn config_bytes(&self) -> &[u8] {
        self.config.as_bytes()
    }

    /// Fault switches.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// Frame dump directory.
    pub fn dump_frames(&self) -> Option<&std::path::Path> {
        self.dump_frames.as_deref()
    }

    /// Whether VIRTIO_F_ACCESS_PLATFORM is offered.
    pub fn access_platform(&self) -> bool {
        self.access_platform
    }
}

/// Why a setup was refused.
#[derive(Debug)]
pub enum SetupError {
    /// A window is misaligned, empty or overflows.
    BadWindow {
        /// Base given.
        base: u64,
        /// Size given.
        len: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// `max_instances` out of the supported range.
    MaxInstances(u32),
    /// No `--region` given.
    NoRegions,
    /// More regions than shmids.
    TooManyRegions,
    /// A region overlaps the DMA pool.
    RegionOverlapsPool {
        /// Sub-device index.
        index: usize,
        /// The region.
        region: GuestWindow,
        /// The pool.
        pool: GuestWindow,
    },
    /// The wire crate refused the sub-device list or config.
    Wire(WireError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadWindow { base, len, why } => write!(f, "window {base:#x}+{len:#x}: {why}"),
            Self::MaxInstances(n) => {
                write!(f, "max-instances {n} out of range 1..={MAX_INSTANCES_SUPPORTED}")
            }
            Self::NoRegions => write!(f, "at least one --region is required"),
            Self::TooManyRegions => write!(f, "too many regions"),
            Self::RegionOverlapsPool { index, region, pool } => {
                write!(f, "region {index} ({region}) overlaps the DMA pool ({pool})")
            }
            Self::Wire(e) => write!(f, "invalid sub-device list: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// The sub-device implementations this daemon has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubdeviceKind {
    /// Appendix A: QOI decoder.
    Codec,
    /// Appendix B: copy within the region (tests).
    Echo,
}

impl SubdeviceKind {
    /// (vendor_id, device_id, revision).
    pub fn identity(self) -> (u32, u32, u32) {
        match self {
            Self::Codec => {
                (hostmem_wire::codec::VENDOR_ID, hostmem_wire::codec::DEVICE_ID, hostmem_wire::codec::REVISION)
            }
            Self::Echo => (hostmem_wire::echo::VENDOR_ID, hostmem_wire::echo::DEVICE_ID, hostmem_wire::echo::REVISION),
        }
    }

    /// SubdeviceEntry flags (appendices A and B: 0, not exclusive).
    pub fn flags(self) -> u32 {
        0
    }
}

impl fmt::Display for SubdeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Codec => "codec",
            Self::Echo => "echo",
        })
    }
}

impl FromStr for SubdeviceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "codec" => Ok(Self::Codec),
            "echo" => Ok(Self::Echo),
            other => Err(format!("unknown sub-device kind {other:?} (known: codec, echo)")),
        }
    }
}
