//! Device configuration space (docs/hostmem.md §6).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::short;
use crate::{
    CONFIG_MAX_ENTRIES, LAYOUT_VERSION, MAGIC, MAX_INSTANCES_LIMIT, REGION_ALIGN, SHMID_MAX, WireError, ranges_overlap,
};

/// One sub-device: its identity and its region (layout: docs/hostmem.md
/// §6, `SubdeviceEntry`). Used in config space and in QUERY_SUBDEVICE and
/// CREATE responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SubdeviceEntry {
    /// Vendor of the sub-device protocol.
    pub vendor_id: U32,
    /// Sub-device protocol within the vendor.
    pub device_id: U32,
    /// Protocol revision.
    pub revision: U32,
    /// Shared memory region id of the region (<= 255).
    pub shmid: U32,
    /// Guest-physical base of the region.
    pub region_base: U64,
    /// Length of the region in bytes.
    pub region_len: U64,
    /// `SubdeviceEntry::F_*` bits.
    pub flags: U32,
    /// Zero.
    pub reserved: U32,
}

const _: () = assert!(core::mem::size_of::<SubdeviceEntry>() == 40);

impl SubdeviceEntry {
    /// The sub-device accepts at most one live instance.
    pub const F_EXCLUSIVE: u32 = 1 << 0;
    /// Flag bits this revision defines.
    pub const FLAGS_KNOWN: u32 = Self::F_EXCLUSIVE;

    /// An entry with the given fields and zero reserved bits.
    pub const fn new(
        vendor_id: u32,
        device_id: u32,
        revision: u32,
        shmid: u32,
        region_base: u64,
        region_len: u64,
        flags: u32,
    ) -> Self {
        Self {
            vendor_id: U32::new(vendor_id),
            device_id: U32::new(device_id),
            revision: U32::new(revision),
            shmid: U32::new(shmid),
            region_base: U64::new(region_base),
            region_len: U64::new(region_len),
            flags: U32::new(flags),
            reserved: U32::new(0),
        }
    }

    /// Parses an entry from the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        Self::read_from_prefix(bytes).map(|(entry, _)| entry).map_err(|_| short::<Self>(bytes.len()))
    }

    /// Whether the entry names this vendor/device/revision triple.
    pub fn matches(&self, vendor_id: u32, device_id: u32, revision: u32) -> bool {
        self.vendor_id.get() == vendor_id && self.device_id.get() == device_id && self.revision.get() == revision
    }

    /// End of the region (exclusive), `None` if it overflows.
    pub fn region_end(&self) -> Option<u64> {
        self.region_base.get().checked_add(self.region_len.get())
    }

    /// Checks one entry on its own; `index` is its sub-device index, used
    /// only in the error.
    pub fn validate(&self, index: u32) -> Result<(), WireError> {
        let base = self.region_base.get();
        let len = self.region_len.get();
        if len == 0 {
            return Err(WireError::RegionEmpty { index });
        }
        if !base.is_multiple_of(REGION_ALIGN) || !len.is_multiple_of(REGION_ALIGN) {
            return Err(WireError::RegionMisaligned { index });
        }
        if self.region_end().is_none() {
            return Err(WireError::RegionOverflow { index });
        }
        let shmid = self.shmid.get();
        if shmid > SHMID_MAX {
            return Err(WireError::ShmidTooLarge { index, shmid });
        }
        let unknown = self.flags.get() & !Self::FLAGS_KNOWN;
        if unknown != 0 {
            return Err(WireError::UnknownFlags { field: "SubdeviceEntry.flags", bits: unknown });
        }
        if self.reserved.get() != 0 {
            return Err(WireError::NonZeroField { field: "SubdeviceEntry.reserved" });
        }
        Ok(())
    }
}

/// Checks a list of sub-devices as a whole: each entry valid, regions
/// pairwise disjoint, shmids unique. `entries[k]` is sub-device `k`.
///
/// The driver runs this over the config entries plus everything it learned
/// with QUERY_SUBDEVICE, the backend over its whole list at start-up.
pub fn validate_entries(entries: &[SubdeviceEntry]) -> Result<(), WireError> {
    let Ok(count) = u32::try_from(entries.len()) else {
        return Err(WireError::TooManySubdevices(entries.len()));
    };
    for (index, entry) in (0..count).zip(entries) {
        entry.validate(index)?;
    }
    // Pairwise without indexing: split the head off and compare it with the
    // tail, so no index can be out of bounds.
    let mut rest = entries;
    let mut first: u32 = 0;
    while let Some((a, tail)) = rest.split_first() {
        for (second, b) in (first.saturating_add(1)..).zip(tail) {
            if a.shmid.get() == b.shmid.get() {
                return Err(WireError::DuplicateShmid { first, second, shmid: a.shmid.get() });
            }
            if ranges_overlap(a.region_base.get(), a.region_len.get(), b.region_base.get(), b.region_len.get()) {
                return Err(WireError::RegionsOverlap { first, second });
            }
        }
        rest = tail;
        first = first.saturating_add(1);
    }
    Ok(())
}

/// The device configuration space (layout: docs/hostmem.md §6, `Config`).
/// Its size, [`crate::CONFIG_SIZE`], is the VMM's `config_size`.
///
/// ```
/// use hostmem_wire::zerocopy::IntoBytes;
/// use hostmem_wire::{Config, SubdeviceEntry, WireError, echo};
///
/// // The device side: one echo sub-device with an 8 MiB region, shmid 1.
/// let entry = SubdeviceEntry::new(echo::VENDOR_ID, echo::DEVICE_ID, echo::REVISION, 1, 0x4980_0000, 8 << 20, 0);
/// let config = Config::from_subdevices(4, &[entry])?;
///
/// // The driver side: the bytes read from config space, checked.
/// let read = Config::parse(config.as_bytes())?;
/// assert_eq!(read.entries(), &[entry]);
/// assert!(read.is_complete());
///
/// // Regions must be 4 KiB aligned: this one is refused on both sides.
/// let misaligned = SubdeviceEntry::new(echo::VENDOR_ID, echo::DEVICE_ID, echo::REVISION, 1, 0x4980_0100, 8 << 20, 0);
/// assert!(Config::from_subdevices(4, &[misaligned]).is_err());
/// # Ok::<(), WireError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Config {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`LAYOUT_VERSION`].
    pub version: U16,
    /// Valid entries at the start of `entries`:
    /// `min(num_subdevices, CONFIG_MAX_ENTRIES)`.
    pub entries_present: U16,
    /// Sub-devices the device offers (indices `0..num_subdevices`).
    pub num_subdevices: U32,
    /// Instance slots, N; the device has `2 + N` virtqueues.
    pub max_instances: U32,
    /// Sub-devices `0..entries_present`; the rest are zero.
    pub entries: [SubdeviceEntry; CONFIG_MAX_ENTRIES],
}

const _: () = assert!(core::mem::size_of::<Config>() == 256);

impl Config {
    /// Builds the config a device with these sub-devices publishes: the
    /// first [`CONFIG_MAX_ENTRIES`] entries go into config space, the rest
    /// are reachable with QUERY_SUBDEVICE. Validates everything first.
    pub fn from_subdevices(max_instances: u32, subdevices: &[SubdeviceEntry]) -> Result<Self, WireError> {
        validate_entries(subdevices)?;
        let Ok(num_subdevices) = u32::try_from(subdevices.len()) else {
            return Err(WireError::TooManySubdevices(subdevices.len()));
        };
        let mut config = Self::new_zeroed();
        config.magic = U32::new(MAGIC);
        config.version = U16::new(LAYOUT_VERSION);
        config.num_subdevices = U32::new(num_subdevices);
        config.max_instances = U32::new(max_instances);
        let mut present: u16 = 0;
        for (slot, entry) in config.entries.iter_mut().zip(subdevices) {
            *slot = *entry;
            present = present.saturating_add(1);
        }
        config.entries_present = U16::new(present);
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a config read from the device. `bytes` may be
    /// longer than [`crate::CONFIG_SIZE`]; the rest is ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let (config, _) = Self::read_from_prefix(bytes).map_err(|_| short::<Self>(bytes.len()))?;
        config.validate()?;
        Ok(config)
    }

    /// The entries present (at most [`CONFIG_MAX_ENTRIES`], even if
    /// `entries_present` claims more).
    pub fn entries(&self) -> &[SubdeviceEntry] {
        let n = usize::from(self.entries_present.get()).min(CONFIG_MAX_ENTRIES);
        self.entries.get(..n).unwrap_or(&[])
    }

    /// Whether every sub-device is in config space, i.e. no
    /// QUERY_SUBDEVICE is needed.
    pub fn is_complete(&self) -> bool {
        u32::from(self.entries_present.get()) == self.num_subdevices.get()
    }

    /// Checks every rule of docs/hostmem.md §6.2 and §6.3 that config space alone
    /// can show: magic, version, counts, `max_instances` range, entries
    /// valid and disjoint, unused entries zero.
    pub fn validate(&self) -> Result<(), WireError> {
        let magic = self.magic.get();
        if magic != MAGIC {
            return Err(WireError::BadMagic(magic));
        }
        let version = self.version.get();
        if version != LAYOUT_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let present = self.entries_present.get();
        if usize::from(present) > CONFIG_MAX_ENTRIES {
            return Err(WireError::TooManyEntries { present, capacity: CONFIG_MAX_ENTRIES });
        }
        let num_subdevices = self.num_subdevices.get();
        if num_subdevices < u32::from(present) {
            return Err(WireError::SubdeviceCountBelowEntries { num_subdevices, present });
        }
        if num_subdevices == 0 {
            return Err(WireError::NoSubdevices);
        }
        // CONFIG_MAX_ENTRIES is tiny, so the min fits in u16.
        let expected = u16::try_from(num_subdevices.min(CONFIG_MAX_ENTRIES as u32)).unwrap_or(0);
        if present != expected {
            return Err(WireError::EntriesNotFilled { present, expected });
        }
        let max_instances = self.max_instances.get();
        if max_instances == 0 || max_instances > MAX_INSTANCES_LIMIT {
            return Err(WireError::InvalidMaxInstances(max_instances));
        }
        validate_entries(self.entries())?;
        for (index, entry) in self.entries.iter().enumerate().skip(usize::from(present)) {
            if *entry != SubdeviceEntry::default() {
                return Err(WireError::UnusedEntryNotZero { index });
            }
        }
        Ok(())
    }
}
