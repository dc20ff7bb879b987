//! The capability list, walked as hostile input, and the virtio vendor
//! capabilities (virtio 1.2 §4.1.4).

use arrayvec::ArrayVec;

use super::bar::{BarKind, Bars};
use super::config::{Bdf, ConfigSpace, header};
use super::{PciError, PciErrorKind};

/// Capability pointers live in 0x40..0x100 (the standard header ends at
/// 0x40); at most this many capabilities fit there.
const FIRST_CAPABILITY: u8 = 0x40;
const MAX_CAPABILITIES: usize = (0x100 - FIRST_CAPABILITY as usize) / 4;

/// Capability id of vendor-specific capabilities (virtio uses them).
pub const VENDOR_SPECIFIC: u8 = 0x09;

/// virtio_pci_cap.cfg_type values (virtio 1.2 §4.1.4).
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
    /// PCI configuration access (ignored by the runtime).
    pub const PCI_CFG: u8 = 5;
    /// A shared memory region.
    pub const SHARED_MEMORY: u8 = 8;
}

/// Shared memory regions remembered per device.
pub const MAX_SHARED_MEMORY: usize = 8;

/// Every capability (offset, id) of `bdf`, in list order.
///
/// Hostile-input rules: pointers must be dword-aligned and inside
/// 0x40..0x100 (a capability's header must fit), and the walk stops with an
/// error on a pointer seen before (a loop) instead of running forever.
pub fn capabilities(config: &dyn ConfigSpace, bdf: Bdf) -> Result<ArrayVec<(u8, u8), MAX_CAPABILITIES>, PciError> {
    let fail = |kind| PciError { bdf, kind };
    let mut found = ArrayVec::new();
    if config.read16(bdf, header::STATUS) & header::STATUS_CAPABILITIES == 0 {
        return Ok(found);
    }
    let mut visited = 0u64;
    let mut pointer = config.read8(bdf, header::CAPABILITIES);
    while pointer != 0 {
        if pointer < FIRST_CAPABILITY || !pointer.is_multiple_of(4) {
            return Err(fail(PciErrorKind::BadCapabilityPointer { pointer }));
        }
        let slot = (pointer - FIRST_CAPABILITY) / 4;
        if visited & (1 << slot) != 0 {
            return Err(fail(PciErrorKind::CapabilityLoop { pointer }));
        }
        visited |= 1 << slot;
        let id = config.read8(bdf, pointer.into());
        // At most 48 distinct slots, the capacity.
        let _ = found.try_push((pointer, id));
        pointer = config.read8(bdf, u16::from(pointer) + 1);
    }
    Ok(found)
}

/// A structure inside a BAR: `bar`, `offset..offset + length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarSlice {
    /// The BAR.
    pub bar: u8,
    /// Offset of the structure in the BAR.
    pub offset: u64,
    /// Length of the structure in bytes.
    pub length: u64,
}

impl BarSlice {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }

    fn overlaps(&self, other: &BarSlice) -> bool {
        self.bar == other.bar && self.offset < other.end() && other.offset < self.end()
    }
}

/// A shared memory region (cfg_type 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedMemoryCap {
    /// The region's shmid.
    pub id: u8,
    /// Where it is.
    pub slice: BarSlice,
}

/// The virtio structures of a modern virtio-pci function, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtioCaps {
    /// Common configuration (at least [`COMMON_CFG_MIN`] bytes).
    pub common: BarSlice,
    /// Notification structure.
    pub notify: BarSlice,
    /// `notify_off_multiplier`: a queue's notify address is `notify.offset + queue_notify_off *
    /// multiplier`.
    pub notify_off_multiplier: u32,
    /// ISR status byte.
    pub isr: BarSlice,
    /// Device-specific configuration, if the device has one.
    pub device: Option<BarSlice>,
    /// Shared memory regions, in capability order.
    pub shared_memory: ArrayVec<SharedMemoryCap, MAX_SHARED_MEMORY>,
}

/// Smallest common configuration structure (up to queue_device, §4.1.4.3).
pub const COMMON_CFG_MIN: u64 = 0x38;

/// Reads and validates the virtio capabilities of `bdf` against its sized
/// BARs: the first capability of each type counts (as the spec asks of
/// drivers), each must lie inside an implemented memory BAR, none may
/// overlap another, and common, notify and ISR must be present.
pub fn virtio_caps(config: &dyn ConfigSpace, bdf: Bdf, bars: &Bars) -> Result<VirtioCaps, PciError> {
    let fail = |kind| PciError { bdf, kind };
    let mut common = None;
    let mut notify = None;
    let mut isr = None;
    let mut device = None;
    let mut shared_memory: ArrayVec<SharedMemoryCap, MAX_SHARED_MEMORY> = ArrayVec::new();
    for (pointer, id) in capabilities(config, bdf)? {
        if id != VENDOR_SPECIFIC {
            continue;
        }
        let at = u16::from(pointer);
        let cap_len = config.read8(bdf, at + 2);
        let kind = config.read8(bdf, at + 3);
        if kind == cfg_type::PCI_CFG || !matches!(kind, 1..=4 | 8) {
            // PCI config access is not used; unknown types are skipped.
            continue;
        }
        let needed: u8 = match kind {
            cfg_type::NOTIFY => 20,
            cfg_type::SHARED_MEMORY => 24,
            _ => 16,
        };
        if cap_len < needed || u16::from(pointer) + u16::from(cap_len) > 0x100 {
            return Err(fail(PciErrorKind::BadCapabilityLength { pointer, cap_len }));
        }
        let bar = config.read8(bdf, at + 4);
        let region_id = config.read8(bdf, at + 5);
        let mut offset = u64::from(config.read32(bdf, at + 8));
        let mut length = u64::from(config.read32(bdf, at + 12));
        if kind == cfg_type::SHARED_MEMORY {
            offset |= u64::from(config.read32(bdf, at + 16)) << 32;
            length |= u64::from(config.read32(bdf, at + 20)) << 32;
        }
        let slice = BarSlice { bar, offset, length };
        let bar_size = bars
            .get(usize::from(bar))
            .copied()
            .flatten()
            .filter(|bar| bar.kind != BarKind::Io)
            .map(|bar| bar.size)
            .ok_or(fail(PciErrorKind::CapabilityBadBar { cfg_type: kind, bar }))?;
        if length == 0 || offset.checked_add(length).is_none_or(|end| end > bar_size) {
            return Err(fail(PciErrorKind::CapabilityOutsideBar { cfg_type: kind, bar, offset, length, bar_size }));
        }
        // BARs are naturally aligned, so the offset decides whether the
        // structure's registers can be accessed at their width.
        let alignment = match kind {
            cfg_type::COMMON | cfg_type::DEVICE => 4,
            cfg_type::NOTIFY => 2,
            _ => 1,
        };
        let used = match kind {
            cfg_type::COMMON => common.is_none(),
            cfg_type::NOTIFY => notify.is_none(),
            cfg_type::DEVICE => device.is_none(),
            _ => false,
        };
        if used && !offset.is_multiple_of(alignment) {
            return Err(fail(PciErrorKind::CapabilityMisaligned { cfg_type: kind, offset, alignment }));
        }
        match kind {
            cfg_type::COMMON if common.is_none() => {
                if length < COMMON_CFG_MIN {
                    return Err(fail(PciErrorKind::CapabilityTooSmall { cfg_type: kind, length }));
                }
                common = Some(slice);
            }
            cfg_type::NOTIFY if notify.is_none() => {
                let multiplier = config.read32(bdf, at + 16);
                if length < 2 {
                    return Err(fail(PciErrorKind::CapabilityTooSmall { cfg_type: kind, length }));
                }
                if multiplier != 0 && (multiplier == 1 || !multiplier.is_power_of_two()) {
                    return Err(fail(PciErrorKind::BadNotifyMultiplier { multiplier }));
                }
                notify = Some((slice, multiplier));
            }
            cfg_type::ISR if isr.is_none() => isr = Some(slice),
            cfg_type::DEVICE if device.is_none() => device = Some(slice),
            cfg_type::SHARED_MEMORY if !shared_memory.iter().any(|region| region.id == region_id) => {
                shared_memory
                    .try_push(SharedMemoryCap { id: region_id, slice })
                    .map_err(|_| fail(PciErrorKind::TooManySharedMemoryRegions))?;
            }
            _ => {}
        }
    }
    let common = common.ok_or(fail(PciErrorKind::MissingCapability { cfg_type: cfg_type::COMMON }))?;
    let (notify, notify_off_multiplier) =
        notify.ok_or(fail(PciErrorKind::MissingCapability { cfg_type: cfg_type::NOTIFY }))?;
    let isr = isr.ok_or(fail(PciErrorKind::MissingCapability { cfg_type: cfg_type::ISR }))?;
    let caps = VirtioCaps { common, notify, notify_off_multiplier, isr, device, shared_memory };
    // No two structures over the same bytes: a write to one would change
    // the other under the driver.
    let slices: ArrayVec<(u8, BarSlice), { 4 + MAX_SHARED_MEMORY }> = [
        (cfg_type::COMMON, Some(caps.common)),
        (cfg_type::NOTIFY, Some(caps.notify)),
        (cfg_type::ISR, Some(caps.isr)),
        (cfg_type::DEVICE, caps.device),
    ]
    .into_iter()
    .filter_map(|(kind, slice)| slice.map(|slice| (kind, slice)))
    .chain(caps.shared_memory.iter().map(|region| (cfg_type::SHARED_MEMORY, region.slice)))
    .collect();
    for (index, (kind, slice)) in slices.iter().enumerate() {
        if let Some((other, _)) = slices.iter().skip(index + 1).find(|(_, other)| other.overlaps(slice)) {
            return Err(fail(PciErrorKind::CapabilitiesOverlap { cfg_type: *kind, other: *other }));
        }
    }
    Ok(caps)
}
