//! The one error type of the crate.
//!
//! Every variant carries the values that were wrong, so a log line on either
//! side says what the peer sent without a hex dump.

use core::fmt;

use crate::Status;

/// What was wrong with a value read from (or about to be written to) the
/// wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// A buffer is shorter than the structure read from it.
    ShortBuffer {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes the buffer has.
        got: usize,
    },
    /// An opcode this revision does not define.
    UnknownOpcode(u32),
    /// A status code this revision does not define.
    UnknownStatus(u32),
    /// An event type this revision does not define.
    UnknownEventType(u32),
    /// Flag bits this revision does not define.
    UnknownFlags {
        /// The field the bits were found in.
        field: &'static str,
        /// The undefined bits.
        bits: u32,
    },
    /// A field that must be zero (reserved, or unused by this opcode) is not.
    NonZeroField {
        /// The field's name as in docs/hostmem.md.
        field: &'static str,
    },
    /// `offset + size` does not fit in 64 bits.
    RangeOverflow {
        /// Offset within the region.
        offset: u64,
        /// Size of the range.
        size: u64,
    },
    /// `offset + size` lies beyond the end of the region.
    OutOfRange {
        /// Offset within the region.
        offset: u64,
        /// Size of the range.
        size: u64,
        /// Length of the region.
        region_len: u64,
    },
    /// An offset that must be aligned is not.
    Misaligned {
        /// The field's name as in docs/hostmem.md.
        field: &'static str,
        /// The offending value.
        value: u64,
        /// The required alignment in bytes.
        align: u64,
    },
    /// Two ranges that must be disjoint overlap.
    Overlap {
        /// What overlapped what.
        what: &'static str,
    },
    /// The config space does not start with [`crate::MAGIC`]: not a hostmem
    /// device (device id 21 is also the Signal Distribution Module).
    BadMagic(u32),
    /// A config layout version this crate does not implement.
    UnsupportedVersion(u16),
    /// More entries present than the config array holds.
    TooManyEntries {
        /// `entries_present` as read.
        present: u16,
        /// [`crate::CONFIG_MAX_ENTRIES`].
        capacity: usize,
    },
    /// `num_subdevices` is smaller than the number of entries present.
    SubdeviceCountBelowEntries {
        /// `num_subdevices` as read.
        num_subdevices: u32,
        /// `entries_present` as read.
        present: u16,
    },
    /// `entries_present` is not `min(num_subdevices, CONFIG_MAX_ENTRIES)`.
    EntriesNotFilled {
        /// `entries_present` as read.
        present: u16,
        /// The value the rule requires.
        expected: u16,
    },
    /// The device offers no sub-device at all.
    NoSubdevices,
    /// More sub-devices than a `u32` index can name.
    TooManySubdevices(usize),
    /// `max_instances` is zero or above [`crate::MAX_INSTANCES_LIMIT`].
    InvalidMaxInstances(u32),
    /// A config array entry past `entries_present` is not all zero.
    UnusedEntryNotZero {
        /// Index in the config array.
        index: usize,
    },
    /// A sub-device's region has length zero.
    RegionEmpty {
        /// Sub-device index.
        index: u32,
    },
    /// A region's base or length is not a multiple of [`crate::REGION_ALIGN`].
    RegionMisaligned {
        /// Sub-device index.
        index: u32,
    },
    /// `region_base + region_len` does not fit in 64 bits.
    RegionOverflow {
        /// Sub-device index.
        index: u32,
    },
    /// Two sub-devices' regions overlap.
    RegionsOverlap {
        /// Index of the first sub-device.
        first: u32,
        /// Index of the second sub-device.
        second: u32,
    },
    /// A shmid above [`crate::SHMID_MAX`].
    ShmidTooLarge {
        /// Sub-device index.
        index: u32,
        /// The offending shmid.
        shmid: u32,
    },
    /// Two sub-devices use the same shmid.
    DuplicateShmid {
        /// Index of the first sub-device.
        first: u32,
        /// Index of the second sub-device.
        second: u32,
        /// The shared shmid.
        shmid: u32,
    },
    /// An instance id at or above `max_instances`.
    InstanceOutOfRange {
        /// The instance id.
        instance_id: u32,
        /// `max_instances` of the device.
        max_instances: u32,
    },
    /// A message names an instance other than the one it concerns (e.g. a
    /// notification on queue `2 + i` naming instance `j != i`).
    InstanceMismatch {
        /// The instance the context implies.
        expected: u32,
        /// The instance the message names.
        got: u32,
    },
    /// A field that must equal a value derived from others does not (e.g.
    /// `notify_queue != 2 + instance_id`).
    Inconsistent {
        /// The field's name as in docs/hostmem.md.
        field: &'static str,
    },
    /// A recommended sub-device layout cannot be built from the given
    /// parameters.
    InvalidLayout {
        /// What did not fit.
        what: &'static str,
    },
    /// A notification's `seq` is zero or not above the instance's previous
    /// one.
    BadSequence {
        /// `seq` of the previous accepted notification (0 if none).
        last: u64,
        /// The offending `seq`.
        got: u64,
    },
    /// A response or event carries a non-OK status.
    Failed(Status),
}

impl WireError {
    /// The status a device answers with when a request fails this check.
    ///
    /// Lets the backend turn every parse/validation failure into the status
    /// code docs/hostmem.md prescribes without a second table.
    pub const fn status(&self) -> Status {
        match self {
            Self::UnknownOpcode(_) => Status::Unsupported,
            Self::RangeOverflow { .. } | Self::OutOfRange { .. } | Self::Misaligned { .. } | Self::Overlap { .. } => {
                Status::BadRange
            }
            Self::InstanceOutOfRange { .. } | Self::InstanceMismatch { .. } => Status::BadInstance,
            Self::BadSequence { .. } => Status::BadSequence,
            Self::Failed(status) => *status,
            _ => Status::BadRequest,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ShortBuffer { needed, got } => {
                write!(f, "buffer too short: need {needed} bytes, got {got}")
            }
            Self::UnknownOpcode(v) => write!(f, "unknown opcode {v}"),
            Self::UnknownStatus(v) => write!(f, "unknown status code {v}"),
            Self::UnknownEventType(v) => write!(f, "unknown event type {v}"),
            Self::UnknownFlags { field, bits } => {
                write!(f, "undefined bits {bits:#x} set in {field}")
            }
            Self::NonZeroField { field } => write!(f, "field {field} must be zero"),
            Self::RangeOverflow { offset, size } => {
                write!(f, "range offset {offset:#x} + size {size:#x} overflows 64 bits")
            }
            Self::OutOfRange { offset, size, region_len } => {
                write!(f, "range {offset:#x}+{size:#x} exceeds region length {region_len:#x}")
            }
            Self::Misaligned { field, value, align } => {
                write!(f, "{field} {value:#x} is not a multiple of {align}")
            }
            Self::Overlap { what } => write!(f, "overlapping ranges: {what}"),
            Self::BadMagic(v) => write!(f, "bad config magic {v:#010x}"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported config layout version {v}"),
            Self::TooManyEntries { present, capacity } => {
                write!(f, "entries_present {present} exceeds config capacity {capacity}")
            }
            Self::SubdeviceCountBelowEntries { num_subdevices, present } => {
                write!(f, "num_subdevices {num_subdevices} is below entries_present {present}")
            }
            Self::EntriesNotFilled { present, expected } => {
                write!(f, "entries_present {present} should be {expected} (min of num_subdevices and capacity)")
            }
            Self::NoSubdevices => write!(f, "device offers no sub-devices"),
            Self::TooManySubdevices(n) => write!(f, "{n} sub-devices cannot be indexed by u32"),
            Self::InvalidMaxInstances(n) => write!(f, "max_instances {n} out of range"),
            Self::UnusedEntryNotZero { index } => {
                write!(f, "unused config entry {index} is not zero")
            }
            Self::RegionEmpty { index } => write!(f, "sub-device {index}: region length is zero"),
            Self::RegionMisaligned { index } => {
                write!(f, "sub-device {index}: region base or length not 4 KiB aligned")
            }
            Self::RegionOverflow { index } => {
                write!(f, "sub-device {index}: region base + length overflows")
            }
            Self::RegionsOverlap { first, second } => {
                write!(f, "regions of sub-devices {first} and {second} overlap")
            }
            Self::ShmidTooLarge { index, shmid } => {
                write!(f, "sub-device {index}: shmid {shmid} above 255")
            }
            Self::DuplicateShmid { first, second, shmid } => {
                write!(f, "sub-devices {first} and {second} share shmid {shmid}")
            }
            Self::InstanceOutOfRange { instance_id, max_instances } => {
                write!(f, "instance {instance_id} out of range (max_instances {max_instances})")
            }
            Self::InstanceMismatch { expected, got } => {
                write!(f, "message names instance {got}, expected {expected}")
            }
            Self::Inconsistent { field } => write!(f, "field {field} is inconsistent"),
            Self::InvalidLayout { what } => write!(f, "invalid layout: {what}"),
            Self::BadSequence { last, got } => {
                write!(f, "sequence number {got} not above previous {last}")
            }
            Self::Failed(status) => write!(f, "device reported {status:?}"),
        }
    }
}

impl core::error::Error for WireError {}

/// Maps zerocopy's size error to ours; the structure size is what was needed.
pub(crate) fn short<T>(got: usize) -> WireError {
    WireError::ShortBuffer { needed: core::mem::size_of::<T>(), got }
}
