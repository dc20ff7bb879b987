//! Example codec sub-device: decodes QOI images from an input slot into an
//! output slot of its region (docs/hostmem.md appendix A).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::codes::wire_enum;
use crate::{METADATA_SIZE, REGION_ALIGN, Status, WireError, check_range, ranges_overlap};

/// Vendor id of the example codec ([`crate::EXAMPLE_VENDOR_ID`]).
pub const VENDOR_ID: u32 = crate::EXAMPLE_VENDOR_ID;
/// Device id of the example codec within that vendor.
pub const DEVICE_ID: u32 = 1;
/// Revision described by appendix A.
pub const REVISION: u32 = 1;

/// Bytes of [`FrameInfo`] at the start of an output slot; pixels follow.
pub const FRAME_HEADER_SIZE: u64 = core::mem::size_of::<FrameInfo>() as u64;

/// Largest image (in pixels) the device decodes; the QOI reference decoder's
/// limit, which keeps `width * height * channels` far from overflow.
pub const MAX_PIXELS: u64 = 400_000_000;

/// Largest QOI colorspace byte (0 sRGB with linear alpha, 1 all linear).
pub const MAX_COLORSPACE: u8 = 1;

wire_enum! {
    /// Notification opcodes of the codec.
    pub enum Op (unknown: UnknownOpcode) {
        /// Decode the QOI image at (`offset`, `size`) into the output slot
        /// named by [`DecodeMeta`].
        Decode = 1,
        /// Decode the QOI image that follows the notification in the
        /// chain's device-readable part into the chain's device-writable
        /// part (appendix A.3): the conventional virtio copy path, with
        /// `offset`, `size` and `metadata` zero.
        DecodeInline = 2,
    }
}

/// Metadata of a DECODE notification (layout: docs/hostmem.md appendix A,
/// `codec::DecodeMeta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DecodeMeta {
    /// Offset of the output slot in the region; 8-byte aligned.
    pub output_offset: U64,
    /// Bytes available at `output_offset` (header plus pixels).
    pub output_capacity: U64,
    /// Zero.
    pub reserved: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<DecodeMeta>() == METADATA_SIZE);

impl DecodeMeta {
    /// Metadata for an output slot at `output_offset` of `output_capacity`
    /// bytes.
    pub const fn new(output_offset: u64, output_capacity: u64) -> Self {
        Self { output_offset: U64::new(output_offset), output_capacity: U64::new(output_capacity), reserved: [0; 16] }
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

    /// Device-side checks against a region of `region_len` bytes whose
    /// input is (`input_offset`, `input_size`): reserved zero, output
    /// aligned, inside the region, disjoint from the input, and large
    /// enough for at least the header.
    pub fn check(&self, region_len: u64, input_offset: u64, input_size: u64) -> Result<(), WireError> {
        if self.reserved != [0; 16] {
            return Err(WireError::NonZeroField { field: "codec::DecodeMeta.reserved" });
        }
        let offset = self.output_offset.get();
        let capacity = self.output_capacity.get();
        if !offset.is_multiple_of(8) {
            return Err(WireError::Misaligned { field: "codec::DecodeMeta.output_offset", value: offset, align: 8 });
        }
        check_range(region_len, offset, capacity)?;
        if ranges_overlap(offset, capacity, input_offset, input_size) {
            return Err(WireError::Overlap { what: "codec output slot and input" });
        }
        if capacity < FRAME_HEADER_SIZE {
            return Err(WireError::Failed(Status::NoSpace));
        }
        Ok(())
    }
}

/// Result of a decode (layout: docs/hostmem.md appendix A,
/// `codec::FrameInfo`): written at the start of the output slot, and sent as
/// the metadata of the COMPLETION or ERROR event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameInfo {
    /// `seq` of the DECODE notification this answers, so a polling driver
    /// can tell a fresh header from a stale one.
    pub seq: U64,
    /// A [`Status`]: OK or the failure (in the output slot only OK,
    /// BAD_INPUT or NO_SPACE).
    pub status: U32,
    /// Image width in pixels (0 on failure).
    pub width: U32,
    /// Image height in pixels (0 on failure).
    pub height: U32,
    /// 3 (RGB) or 4 (RGBA), as in the QOI header (0 on failure).
    pub channels: u8,
    /// QOI colorspace byte: 0 sRGB with linear alpha, 1 all linear.
    pub colorspace: u8,
    /// Zero.
    pub reserved: [u8; 2],
    /// Bytes of pixel data after the header: width * height * channels.
    pub pixels_size: U64,
}

const _: () = assert!(core::mem::size_of::<FrameInfo>() == METADATA_SIZE);

impl FrameInfo {
    /// A successful result; fails with BAD_INPUT if the image is empty, too
    /// large, or has a channel count other than 3 or 4 or an unknown
    /// colorspace.
    pub fn decoded(seq: u64, width: u32, height: u32, channels: u8, colorspace: u8) -> Result<Self, WireError> {
        let Some(pixels_size) = pixels_size(width, height, channels) else {
            return Err(WireError::Failed(Status::BadInput));
        };
        if colorspace > MAX_COLORSPACE {
            return Err(WireError::Failed(Status::BadInput));
        }
        let mut info = Self::new_zeroed();
        info.seq = U64::new(seq);
        info.width = U32::new(width);
        info.height = U32::new(height);
        info.channels = channels;
        info.colorspace = colorspace;
        info.pixels_size = U64::new(pixels_size);
        Ok(info)
    }

    /// A failed result.
    pub fn failed(seq: u64, status: Status) -> Self {
        let mut info = Self::new_zeroed();
        info.seq = U64::new(seq);
        info.status = U32::new(status.into());
        info
    }

    /// The event metadata bytes.
    pub fn to_metadata(self) -> [u8; METADATA_SIZE] {
        zerocopy::transmute!(self)
    }

    /// Reads an event's metadata.
    pub fn from_metadata(metadata: [u8; METADATA_SIZE]) -> Self {
        zerocopy::transmute!(metadata)
    }

    /// Reads the header at the start of an output slot.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        Self::read_from_prefix(bytes).map(|(info, _)| info).map_err(|_| crate::error::short::<Self>(bytes.len()))
    }

    /// Driver-side check of a result for notification `seq` whose output
    /// slot had `capacity` bytes: right `seq`, known OK status, consistent
    /// sizes that fit. A failure status becomes [`WireError::Failed`].
    pub fn check(&self, seq: u64, capacity: u64) -> Result<(), WireError> {
        if self.seq.get() != seq {
            return Err(WireError::Inconsistent { field: "codec::FrameInfo.seq" });
        }
        Status::try_from(self.status.get())?.into_result()?;
        if self.reserved != [0; 2] {
            return Err(WireError::NonZeroField { field: "codec::FrameInfo.reserved" });
        }
        if self.colorspace > MAX_COLORSPACE {
            return Err(WireError::Inconsistent { field: "codec::FrameInfo.colorspace" });
        }
        let expected = pixels_size(self.width.get(), self.height.get(), self.channels);
        if expected != Some(self.pixels_size.get()) {
            return Err(WireError::Inconsistent { field: "codec::FrameInfo.pixels_size" });
        }
        check_range(capacity, FRAME_HEADER_SIZE, self.pixels_size.get())
    }
}

/// Driver-side check of a DECODE_INLINE result (appendix A.3): `output` is
/// the device-writable buffer the driver gave (its length is the capacity),
/// `used` the used length the device reported. Returns the frame header of a
/// decoded image, whose pixels are `output[32..32 + pixels_size]`. A failure
/// the device reported in the header becomes [`WireError::Failed`]; a used
/// length beyond the buffer, shorter than a header, or other than
/// `32 + pixels_size` for a decoded image is an error.
pub fn check_inline_result(output: &[u8], used: u64, seq: u64) -> Result<FrameInfo, WireError> {
    let capacity = output.len() as u64;
    if used > capacity {
        return Err(WireError::Inconsistent { field: "DECODE_INLINE used length" });
    }
    // `used` is at most `output.len()`, so it fits in usize.
    let written = output.get(..used as usize).unwrap_or_default();
    let info = FrameInfo::read(written)?;
    info.check(seq, capacity)?;
    if FRAME_HEADER_SIZE.checked_add(info.pixels_size.get()) != Some(used) {
        return Err(WireError::Inconsistent { field: "DECODE_INLINE used length" });
    }
    Ok(info)
}

/// `width * height * channels` for a decodable image: non-empty, at most
/// [`MAX_PIXELS`], 3 or 4 channels; `None` otherwise.
pub fn pixels_size(width: u32, height: u32, channels: u8) -> Option<u64> {
    let pixels = u64::from(width).checked_mul(u64::from(height))?;
    if pixels == 0 || pixels > MAX_PIXELS || !matches!(channels, 3 | 4) {
        return None;
    }
    pixels.checked_mul(u64::from(channels))
}

/// Output slot capacity needed for an image: header plus pixels.
pub fn required_capacity(width: u32, height: u32, channels: u8) -> Option<u64> {
    pixels_size(width, height, channels)?.checked_add(FRAME_HEADER_SIZE)
}

/// The recommended region layout of appendix A: a control page holding
/// completion words (instance `i` at `8 * i`), then an input ring of equal
/// slots, then an output ring of equal slots using the rest. The device does
/// not depend on it; it checks only the ranges each notification names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    /// Offset of input slot 0.
    pub input_base: u64,
    /// Bytes per input slot (multiple of 4096).
    pub input_slot_size: u64,
    /// Number of input slots.
    pub input_slots: u32,
    /// Offset of output slot 0.
    pub output_base: u64,
    /// Bytes per output slot (multiple of 4096).
    pub output_slot_size: u64,
    /// Number of output slots.
    pub output_slots: u32,
}

impl SlotLayout {
    /// Size of the control page at offset 0.
    pub const CONTROL_LEN: u64 = REGION_ALIGN;

    /// Splits a region of `region_len` bytes: `input_slots` input slots of
    /// `input_slot_size` bytes, and `output_slots` output slots sharing the
    /// rest equally (rounded down to 4096).
    pub fn new(region_len: u64, input_slots: u32, input_slot_size: u64, output_slots: u32) -> Result<Self, WireError> {
        if input_slots == 0 || output_slots == 0 {
            return Err(WireError::InvalidLayout { what: "slot count is zero" });
        }
        if input_slot_size == 0 || !input_slot_size.is_multiple_of(REGION_ALIGN) {
            return Err(WireError::InvalidLayout { what: "input slot size is not a non-zero multiple of 4096" });
        }
        let input_base = Self::CONTROL_LEN;
        let input_end = u64::from(input_slots)
            .checked_mul(input_slot_size)
            .and_then(|len| len.checked_add(input_base))
            .filter(|end| *end <= region_len)
            .ok_or(WireError::InvalidLayout { what: "input ring does not fit in the region" })?;
        let per_slot = (region_len - input_end) / u64::from(output_slots);
        let output_slot_size = per_slot - per_slot % REGION_ALIGN;
        if output_slot_size < REGION_ALIGN {
            return Err(WireError::InvalidLayout { what: "output slots would be smaller than 4096 bytes" });
        }
        Ok(Self { input_base, input_slot_size, input_slots, output_base: input_end, output_slot_size, output_slots })
    }

    /// Completion word offset of instance `instance_id`, if it fits in the
    /// control page.
    pub fn completion_offset(instance_id: u32) -> Option<u64> {
        let offset = u64::from(instance_id).checked_mul(8)?;
        (offset < Self::CONTROL_LEN).then_some(offset)
    }

    /// Offset and capacity of input slot `index`.
    pub fn input_slot(&self, index: u32) -> Option<(u64, u64)> {
        slot(self.input_base, self.input_slot_size, self.input_slots, index)
    }

    /// Offset and capacity of output slot `index`.
    pub fn output_slot(&self, index: u32) -> Option<(u64, u64)> {
        slot(self.output_base, self.output_slot_size, self.output_slots, index)
    }
}

fn slot(base: u64, size: u64, count: u32, index: u32) -> Option<(u64, u64)> {
    if index >= count {
        return None;
    }
    let offset = u64::from(index).checked_mul(size)?.checked_add(base)?;
    Some((offset, size))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use zerocopy::IntoBytes;

    use super::*;

    fn reply(info: &FrameInfo, capacity: usize) -> Vec<u8> {
        let mut output = vec![0xaa; capacity];
        output[..32].copy_from_slice(info.as_bytes());
        output
    }

    #[test]
    fn inline_results_are_checked_against_the_used_length() {
        let info = FrameInfo::decoded(7, 4, 2, 3, 0).unwrap();
        let output = reply(&info, 32 + 24);
        assert_eq!(check_inline_result(&output, 56, 7), Ok(info));
        // A bigger buffer than needed is fine; the used length must match.
        let roomy = reply(&info, 4096);
        assert_eq!(check_inline_result(&roomy, 56, 7), Ok(info));
        for used in [0, 31, 32, 55, 57, 4096] {
            assert!(check_inline_result(&roomy, used, 7).is_err(), "used {used}");
        }
        assert!(check_inline_result(&output, 57, 7).is_err(), "used beyond the buffer");
        assert!(check_inline_result(&output, 56, 8).is_err(), "stale seq");
        let small = reply(&info, 40);
        assert!(check_inline_result(&small, 40, 7).is_err(), "pixels would not fit");
    }

    #[test]
    fn inline_failures_carry_the_status() {
        let failed = FrameInfo::failed(3, Status::BadInput);
        let output = reply(&failed, 64);
        assert_eq!(check_inline_result(&output, 32, 3), Err(WireError::Failed(Status::BadInput)));
        let mut lying = FrameInfo::decoded(3, 4, 2, 3, 0).unwrap();
        lying.pixels_size = U64::new(1);
        assert!(check_inline_result(&reply(&lying, 64), 33, 3).is_err());
    }

    #[test]
    fn decode_inline_is_opcode_2() {
        assert_eq!(u32::from(Op::DecodeInline), 2);
        assert_eq!(Op::try_from(2), Ok(Op::DecodeInline));
        assert_eq!(Op::try_from(3), Err(WireError::UnknownOpcode(3)));
    }
}
