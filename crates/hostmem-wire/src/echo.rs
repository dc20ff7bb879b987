//! Example echo sub-device for tests: copies bytes within its region
//! (docs/hostmem.md appendix B).

use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::codes::wire_enum;
use crate::{METADATA_SIZE, WireError, check_range, ranges_overlap};

/// Vendor id of the echo sub-device ([`crate::EXAMPLE_VENDOR_ID`]).
pub const VENDOR_ID: u32 = crate::EXAMPLE_VENDOR_ID;
/// Device id of the echo sub-device within that vendor.
pub const DEVICE_ID: u32 = 2;
/// Revision described by appendix B.
pub const REVISION: u32 = 1;

wire_enum! {
    /// Notification opcodes of the echo sub-device.
    pub enum Op (unknown: UnknownOpcode) {
        /// Copy `size` bytes from `offset` to [`CopyMeta::dest_offset`].
        Copy = 1,
    }
}

/// Metadata of a COPY notification (layout: docs/hostmem.md appendix B,
/// `echo::CopyMeta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CopyMeta {
    /// Destination offset in the region.
    pub dest_offset: U64,
    /// Zero.
    pub reserved: [u8; 24],
}

const _: () = assert!(core::mem::size_of::<CopyMeta>() == METADATA_SIZE);

impl CopyMeta {
    /// Metadata copying to `dest_offset`.
    pub const fn new(dest_offset: u64) -> Self {
        Self { dest_offset: U64::new(dest_offset), reserved: [0; 24] }
    }

    /// The notification's `metadata` bytes.
    pub fn to_metadata(self) -> [u8; METADATA_SIZE] {
        // Checked at compile time: same size, both plain bytes.
        zerocopy::transmute!(self)
    }

    /// Reads the metadata of a notification.
    pub fn from_metadata(metadata: [u8; METADATA_SIZE]) -> Self {
        zerocopy::transmute!(metadata)
    }

    /// Device-side checks for a copy of (`src_offset`, `size`) in a region of
    /// `region_len` bytes: reserved zero, destination inside the region and
    /// disjoint from the source.
    pub fn check(&self, region_len: u64, src_offset: u64, size: u64) -> Result<(), WireError> {
        if self.reserved != [0; 24] {
            return Err(WireError::NonZeroField { field: "echo::CopyMeta.reserved" });
        }
        let dest = self.dest_offset.get();
        check_range(region_len, dest, size)?;
        if ranges_overlap(dest, size, src_offset, size) {
            return Err(WireError::Overlap { what: "echo source and destination" });
        }
        Ok(())
    }
}
