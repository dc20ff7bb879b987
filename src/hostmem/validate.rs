//! Checks of everything the device says, as pure functions so the host
//! unit tests and the fuzz targets (`fuzz/`) can feed them hostile values.
//!
//! hostmem_wire checks what the wire alone can show (docs/hostmem.md §6.3,
//! §8.5, §9.6); the checks here add what only the driver knows: which
//! memory the guest owns, what the transport publishes, which instances are
//! live and which `seq` values were sent.

use alloc::vec::Vec;

use hostmem_wire::{
    Config, ConfigResponse, Event as WireEvent, EventType, LAYOUT_VERSION, MAGIC, Opcode, REGION_ALIGN, Request,
    Status, SubdeviceEntry, WireError, ranges_overlap,
};

use super::error::{HostmemError, OwnedKind, RegionReason};
use crate::platform::Range;
use crate::virtio::mmio::MmioError;

/// Memory the guest owns: no region may overlap any of it.
#[derive(Clone, Debug, Default)]
pub struct OwnedRanges {
    ranges: Vec<(OwnedKind, Range)>,
}

impl OwnedRanges {
    /// No ranges; add them with [`Self::push`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything the runtime owns according to `boot`: the image, the
    /// loader's device tree, the heap, every DMA pool (placed, and as
    /// declared, even an unusable one, since the host shares that memory)
    /// and every device window the runtime drives.
    pub fn from_boot(boot: &crate::Boot) -> Self {
        let mut owned = Self::new();
        owned.push(OwnedKind::Image, boot.image);
        owned.push(OwnedKind::DeviceTree, boot.input);
        for range in boot.layout.free_ranges() {
            owned.push(OwnedKind::Heap, *range);
        }
        for (slot, pool) in boot.layout.pools().iter().enumerate() {
            if let Ok(range) = pool {
                owned.push(OwnedKind::DmaPool(slot), *range);
            }
        }
        for (slot, pool) in boot.platform.pools().iter().enumerate() {
            if let Some(range) = pool.declared {
                owned.push(OwnedKind::DmaPool(slot), range);
            }
        }
        for window in boot.platform.device_windows() {
            owned.push(OwnedKind::DeviceWindow, window);
        }
        owned
    }

    /// Adds a range the guest owns.
    pub fn push(&mut self, kind: OwnedKind, range: Range) {
        self.ranges.push((kind, range));
    }

    /// The ranges, in the order they were added.
    pub fn ranges(&self) -> &[(OwnedKind, Range)] {
        &self.ranges
    }
}

/// Magic and version of a config space snapshot: whether the device is a
/// hostmem device this driver speaks to, checked before it is claimed.
pub fn identify(config: &Config) -> Result<(), HostmemError> {
    let magic = config.magic.get();
    if magic != MAGIC {
        return Err(HostmemError::NotHostmem { magic });
    }
    let version = config.version.get();
    if version != LAYOUT_VERSION {
        return Err(HostmemError::UnsupportedVersion(version));
    }
    Ok(())
}

/// Everything config space must satisfy before the driver sets up a queue:
/// region rules first (so their errors name the region), then every other
/// rule of docs/hostmem.md §6.3 (hostmem_wire's `Config::validate`), then
/// the driver's sub-device limit.
pub fn check_config(config: &Config, owned: &OwnedRanges, max_subdevices: u32) -> Result<(), HostmemError> {
    check_regions(config.entries(), owned)?;
    config.validate().map_err(HostmemError::Config)?;
    let num_subdevices = config.num_subdevices.get();
    if num_subdevices > max_subdevices {
        return Err(HostmemError::TooManySubdevices { num_subdevices, limit: max_subdevices });
    }
    Ok(())
}

/// The bytes of a `len`-byte device-writable buffer that a used length of
/// `used_len` may cover: the device's number is never trusted past the
/// buffer (virtio-drivers does not clamp it).
pub fn clamp_used(used_len: u32, len: usize) -> usize {
    usize::try_from(used_len).unwrap_or(usize::MAX).min(len)
}

/// Checks every region on its own and against the others: non-empty,
/// 4 KiB aligned, not wrapping, clear of every owned range, and pairwise
/// disjoint. Errors name the region by shmid. (hostmem_wire's
/// `validate_entries` runs as well and covers shmid range and uniqueness,
/// flags and reserved fields.)
pub fn check_regions(entries: &[SubdeviceEntry], owned: &OwnedRanges) -> Result<(), HostmemError> {
    for entry in entries {
        check_region(entry, owned)?;
    }
    let mut rest = entries;
    while let Some((a, tail)) = rest.split_first() {
        for b in tail {
            if ranges_overlap(a.region_base.get(), a.region_len.get(), b.region_base.get(), b.region_len.get()) {
                return Err(HostmemError::BadRegion {
                    shmid: b.shmid.get(),
                    reason: RegionReason::OverlapsRegion { other_shmid: a.shmid.get() },
                });
            }
        }
        rest = tail;
    }
    Ok(())
}

fn check_region(entry: &SubdeviceEntry, owned: &OwnedRanges) -> Result<(), HostmemError> {
    let shmid = entry.shmid.get();
    let base = entry.region_base.get();
    let len = entry.region_len.get();
    let bad = |reason| Err(HostmemError::BadRegion { shmid, reason });
    if len == 0 {
        return bad(RegionReason::Empty);
    }
    if !base.is_multiple_of(REGION_ALIGN) || !len.is_multiple_of(REGION_ALIGN) {
        return bad(RegionReason::Misaligned { base, len });
    }
    if base.checked_add(len).is_none() {
        return bad(RegionReason::Wraps { base, len });
    }
    for &(kind, range) in owned.ranges() {
        if ranges_overlap(base, len, range.base, range.size) {
            return bad(RegionReason::OverlapsOwned { owned: kind, range });
        }
    }
    Ok(())
}

/// Cross-checks a region with what the transport's shared memory registers
/// report for its shmid (`Ok(None)`: the transport does not publish it).
pub fn check_shm(entry: &SubdeviceEntry, reported: Result<Option<(u64, u64)>, MmioError>) -> Result<(), HostmemError> {
    let shmid = entry.shmid.get();
    let base = entry.region_base.get();
    let len = entry.region_len.get();
    match reported {
        Ok(None) => Ok(()),
        Ok(Some((shm_base, shm_len))) if shm_base == base && shm_len == len => Ok(()),
        Ok(Some((shm_base, shm_len))) => {
            Err(HostmemError::BadRegion { shmid, reason: RegionReason::ShmMismatch { base, len, shm_base, shm_len } })
        }
        Err(error) => Err(HostmemError::BadRegion { shmid, reason: RegionReason::ShmInvalid(error) }),
    }
}

/// Checks that every region ends at or below `limit` (what the page table
/// can map), before any of them is mapped.
pub fn check_mappable(entries: &[SubdeviceEntry], limit: u64) -> Result<(), HostmemError> {
    for entry in entries {
        let end = entry.region_end().unwrap_or(u64::MAX);
        if end > limit {
            return Err(HostmemError::BadRegion {
                shmid: entry.shmid.get(),
                reason: RegionReason::BeyondAddressSpace { end, limit },
            });
        }
    }
    Ok(())
}

/// Reads and checks a config-queue response to `request`: whole (used
/// length clamped to the buffer, at least 72 bytes), OK status, echoes
/// consistent (hostmem_wire's `ConfigResponse::check`), and for CREATE and
/// QUERY_SUBDEVICE the entry equal to `known` when the driver knows it.
pub fn check_response(
    buffer: &[u8],
    used_len: u32,
    request: &Request,
    max_instances: u32,
    known: Option<&SubdeviceEntry>,
) -> Result<ConfigResponse, HostmemError> {
    let opcode = request.opcode();
    let bad = |error| HostmemError::BadResponse { opcode, error };
    let used = clamp_used(used_len, buffer.len());
    let response = ConfigResponse::read(buffer, used).map_err(bad)?;
    match response.check(request, max_instances) {
        Ok(()) => {}
        Err(WireError::Failed(status)) => {
            // A failure echoes the opcode and leaves everything else zero
            // (docs/hostmem.md §8.1); anything else is a malformed answer.
            if response != ConfigResponse::failure(u32::from(opcode), status) {
                return Err(bad(WireError::Inconsistent { field: "ConfigResponse (failure with non-zero fields)" }));
            }
            return Err(HostmemError::Refused { opcode, status });
        }
        Err(error) => return Err(bad(error)),
    }
    if let Some(known) = known
        && matches!(opcode, Opcode::Create | Opcode::QuerySubdevice)
        && response.subdevice != *known
    {
        return Err(bad(WireError::Inconsistent { field: "ConfigResponse.subdevice" }));
    }
    Ok(response)
}

/// Checks a CREATE answer against what the driver set up: the new instance
/// id has a notification queue (`queues` were set up) and is not live
/// already.
pub fn check_created(instance_id: u32, queues: u32, already_live: bool) -> Result<(), HostmemError> {
    if instance_id >= queues {
        return Err(HostmemError::NotifyQueueNotSetUp { instance_id, queues });
    }
    if already_live {
        return Err(HostmemError::BadResponse {
            opcode: Opcode::Create,
            error: WireError::Inconsistent { field: "ConfigResponse.instance_id (already live)" },
        });
    }
    Ok(())
}

/// What the driver knows about a live instance, for checking its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceView {
    /// Length of its sub-device's region.
    pub region_len: u64,
    /// Highest `seq` sent on it (0 if none).
    pub last_sent: u64,
}

/// What an event reports, decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The notification `seq` succeeded; the result is at
    /// (`offset`, `size`) in the region.
    Completion,
    /// The notification `seq` failed.
    Error(Status),
    /// The device can no longer serve the instance; `seq` is the last
    /// completed notification. Destroy the instance.
    InstanceLost(Status),
}

/// An event from the device, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The instance it concerns (live when the event was read).
    pub instance_id: u32,
    /// What happened.
    pub kind: EventKind,
    /// The notification it answers (INSTANCE_LOST: the last completed one,
    /// 0 if none; ERROR: 0 if the device could not read the notification).
    pub seq: u64,
    /// COMPLETION: offset of the result in the region, inside the region.
    pub offset: u64,
    /// COMPLETION: size of the result.
    pub size: u64,
    /// Events the device dropped before this one (EVENT_F_OVERFLOW). Any
    /// event may have been lost when this is non-zero.
    pub dropped: u32,
    /// Sub-device-specific.
    pub metadata: [u8; hostmem_wire::METADATA_SIZE],
}

/// Reads and checks one event buffer: used length clamped to the buffer and
/// at least 80 bytes, hostmem_wire's `Event::check` (type, status, flags,
/// dropped, reserved, result range), the instance live (`lookup`), and its
/// `seq` one the driver sent (COMPLETION: not 0).
pub fn check_event(
    buffer: &[u8],
    used_len: u32,
    max_instances: u32,
    lookup: impl Fn(u32) -> Option<InstanceView>,
) -> Result<Event, HostmemError> {
    let used = clamp_used(used_len, buffer.len());
    let event = WireEvent::read(buffer, used).map_err(HostmemError::BadEvent)?;
    let instance_id = event.instance_id.get();
    if instance_id >= max_instances {
        return Err(HostmemError::BadEvent(WireError::InstanceOutOfRange { instance_id, max_instances }));
    }
    let Some(view) = lookup(instance_id) else {
        return Err(HostmemError::BadEvent(WireError::Inconsistent { field: "Event.instance_id (not live)" }));
    };
    let event_type = event.check(max_instances, view.region_len).map_err(HostmemError::BadEvent)?;
    let status = event.status().map_err(HostmemError::BadEvent)?;
    let seq = event.seq.get();
    if seq > view.last_sent {
        return Err(HostmemError::BadEvent(WireError::Inconsistent { field: "Event.seq (never sent)" }));
    }
    let kind = match event_type {
        EventType::Completion if seq == 0 => {
            return Err(HostmemError::BadEvent(WireError::Inconsistent { field: "Event.seq (zero)" }));
        }
        EventType::Completion => EventKind::Completion,
        EventType::Error => EventKind::Error(status),
        EventType::InstanceLost => EventKind::InstanceLost(status),
    };
    Ok(Event {
        instance_id,
        kind,
        seq,
        offset: event.offset.get(),
        size: event.size.get(),
        dropped: event.dropped.get(),
        metadata: event.metadata,
    })
}

/// Checks a completion word value: it can only grow (`last_seen`) and can
/// only name a `seq` that was sent (`last_sent`).
pub fn check_completion_value(
    instance_id: u32,
    value: u64,
    last_seen: u64,
    last_sent: u64,
) -> Result<(), HostmemError> {
    if value < last_seen || value > last_sent {
        return Err(HostmemError::BadCompletionWord { instance_id, value, last_seen, last_sent });
    }
    Ok(())
}
