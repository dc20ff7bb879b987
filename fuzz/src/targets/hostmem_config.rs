//! The hostmem device's config space, as the driver's probe reads it
//! (`Hostmem::probe` and `bring_up` in src/hostmem/driver.rs), against
//! the memory a QEMU-virt guest owns (the unit tests' `owned()`).
//!
//! Input: the 256-byte config space; a byte for the driver's sub-device
//! limit; up to 16 further entries (40 bytes each) as QUERY_SUBDEVICE would
//! return them; then, per entry, what the transport's shared memory
//! registers report.
//!
//! Checked: nothing panics; `identify` accepts exactly the right magic and
//! version; a config `check_config` accepts has valid, aligned, non-wrapping
//! regions, clear of everything the guest owns and of each other, unique
//! shmids, counts in range; the same holds for every entry the driver
//! accepts after the queries; `check_mappable` and `check_shm` accept
//! exactly what they promise.

use hostmem_wire::zerocopy::FromBytes;
use hostmem_wire::{
    CONFIG_MAX_ENTRIES, CONFIG_SIZE, Config, LAYOUT_VERSION, MAGIC, MAX_INSTANCES_LIMIT, REGION_ALIGN, SHMID_MAX,
    SubdeviceEntry, validate_entries,
};
use tidepool::hostmem::{
    HostmemError, OwnedKind, OwnedRanges, check_config, check_mappable, check_regions, check_shm, identify,
};
use tidepool::platform::Range;
use tidepool::virtio::mmio::MmioError;

use crate::input::Input;

/// The page tables' limit (39 bits), as the driver maps regions.
const MAPPABLE_END: u64 = 1 << 39;
/// Most sub-devices the target queries beyond config space.
const MAX_QUERIED: usize = 16;

/// A QEMU-virt-like guest: image, tree, heap, pool and a virtio window
/// (src/hostmem/tests.rs).
pub fn owned() -> OwnedRanges {
    let range = |base, size| Range::new(base, size).unwrap();
    let mut owned = OwnedRanges::new();
    owned.push(OwnedKind::DeviceTree, range(0x4000_0000, 0x2000));
    owned.push(OwnedKind::Image, range(0x4008_0000, 0x10_0000));
    owned.push(OwnedKind::Heap, range(0x4100_0000, 0x100_0000));
    owned.push(OwnedKind::DmaPool(0), range(0x4800_0000, 0x40_0000));
    owned.push(OwnedKind::DeviceWindow, range(0x0a00_3e00, 0x200));
    owned
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    // Non-empty, non-wrapping ranges only (checked before).
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// What an accepted list of entries must be, whoever accepted it.
fn assert_entries_sound(entries: &[SubdeviceEntry], owned: &OwnedRanges) {
    for (index, entry) in entries.iter().enumerate() {
        let (base, len) = (entry.region_base.get(), entry.region_len.get());
        assert!(len > 0, "entry {index}: empty region accepted");
        assert!(base.is_multiple_of(REGION_ALIGN) && len.is_multiple_of(REGION_ALIGN), "entry {index}: misaligned");
        assert!(base.checked_add(len).is_some(), "entry {index}: wrapping region accepted");
        assert!(entry.shmid.get() <= SHMID_MAX, "entry {index}: shmid {}", entry.shmid.get());
        assert_eq!(entry.reserved.get(), 0, "entry {index}: reserved bits");
        assert_eq!(entry.flags.get() & !SubdeviceEntry::FLAGS_KNOWN, 0, "entry {index}: unknown flags");
        for &(kind, range) in owned.ranges() {
            assert!(!overlap((base, len), (range.base, range.size)), "entry {index}: region over the guest's {kind:?}");
        }
        for (other_index, other) in entries[..index].iter().enumerate() {
            let other_region = (other.region_base.get(), other.region_len.get());
            assert!(!overlap((base, len), other_region), "entries {other_index} and {index}: regions overlap");
            assert_ne!(entry.shmid.get(), other.shmid.get(), "entries {other_index} and {index}: same shmid");
        }
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let bytes: [u8; CONFIG_SIZE] = input.array();
    let config = Config::read_from_bytes(&bytes).expect("CONFIG_SIZE bytes are a Config");
    let max_subdevices = u32::from(input.u8());
    let owned = owned();

    // Before the device is claimed.
    let identified = identify(&config);
    let speaks = config.magic.get() == MAGIC && config.version.get() == LAYOUT_VERSION;
    assert_eq!(identified.is_ok(), speaks, "identify: {identified:?}");
    if let Err(error) = &identified {
        let _ = error.to_string();
        return;
    }

    // After FEATURES_OK, before any queue exists.
    if let Err(error) = check_config(&config, &owned, max_subdevices) {
        let _ = error.to_string();
        return;
    }
    let present = usize::from(config.entries_present.get());
    let num_subdevices = config.num_subdevices.get();
    assert!(present <= CONFIG_MAX_ENTRIES, "entries_present {present}");
    assert_eq!(config.entries().len(), present);
    assert_eq!(present as u32, num_subdevices.min(CONFIG_MAX_ENTRIES as u32), "entries not filled");
    assert!(num_subdevices >= 1 && num_subdevices <= max_subdevices, "num_subdevices {num_subdevices}");
    let max_instances = config.max_instances.get();
    assert!((1..=MAX_INSTANCES_LIMIT).contains(&max_instances), "max_instances {max_instances}");
    assert!(config.entries[present..].iter().all(|entry| *entry == SubdeviceEntry::default()), "unused entries");
    assert_entries_sound(config.entries(), &owned);

    // The rest come from QUERY_SUBDEVICE answers (here: the input).
    let mut entries = config.entries().to_vec();
    let queried = (num_subdevices as usize - present).min(MAX_QUERIED);
    for _ in 0..queried {
        let entry: [u8; 40] = input.array();
        entries.push(SubdeviceEntry::read_from_bytes(&entry).expect("40 bytes are an entry"));
    }
    let accepted =
        validate_entries(&entries).map_err(HostmemError::Config).and_then(|()| check_regions(&entries, &owned));
    if let Err(error) = accepted {
        let _ = error.to_string();
        return;
    }
    assert_entries_sound(&entries, &owned);

    let mappable = check_mappable(&entries, MAPPABLE_END);
    let all_below = entries.iter().all(|entry| entry.region_end().is_some_and(|end| end <= MAPPABLE_END));
    assert_eq!(mappable.is_ok(), all_below, "check_mappable: {mappable:?}");

    for entry in &entries {
        let reported = match input.u8() % 4 {
            0 => Ok(None),
            1 => Ok(Some((entry.region_base.get(), entry.region_len.get()))),
            2 => Ok(Some((input.u64(), input.u64()))),
            _ => Err(MmioError::SharedMemoryOverflow { id: input.u8(), base: input.u64(), len: input.u64() }),
        };
        let result = check_shm(entry, reported);
        let agrees = match reported {
            Ok(None) => true,
            Ok(Some(shm)) => shm == (entry.region_base.get(), entry.region_len.get()),
            Err(_) => false,
        };
        assert_eq!(result.is_ok(), agrees, "check_shm({reported:?}) for {entry:?}: {result:?}");
    }
}
