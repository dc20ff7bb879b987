//! A fake config space for unit tests and the fuzz targets (the `fuzzing`
//! feature; never in images): functions with BARs that size like real ones
//! and a byte-addressable capability area. Accesses that break the
//! [`ConfigSpace`] rules (unaligned, beyond the 256 bytes) panic, so the
//! fake checks the code that uses it as well as serving it.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::config::{Bdf, ConfigSpace, header};

/// One fake function: 256 bytes of config space plus BAR size masks.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    /// The function's 256 bytes of config space.
    pub bytes: [u8; 256],
    /// Writable bits of each BAR register (0 = unimplemented).
    pub bar_masks: [u32; 6],
    /// A BAR register that reads this value whatever was written (a device
    /// moving its BAR under the driver).
    pub bar_override: Option<(usize, u32)>,
    /// Slots that hold the upper half of a 64-bit BAR.
    pub upper_half: [bool; 6],
}

impl FakeFunction {
    /// A function with these vendor and device ids and nothing else.
    pub fn new(vendor: u16, device: u16) -> Self {
        let mut function = Self { bytes: [0; 256], bar_masks: [0; 6], bar_override: None, upper_half: [false; 6] };
        function.set16(header::VENDOR_ID, vendor);
        function.set16(header::DEVICE_ID, device);
        function
    }

    /// Writes a byte of config space.
    pub fn set8(&mut self, offset: u16, value: u8) {
        self.bytes[usize::from(offset)] = value;
    }

    /// Writes 16 bits of config space (little-endian).
    pub fn set16(&mut self, offset: u16, value: u16) {
        self.bytes[usize::from(offset)..usize::from(offset) + 2].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes 32 bits of config space (little-endian).
    pub fn set32(&mut self, offset: u16, value: u32) {
        self.bytes[usize::from(offset)..usize::from(offset) + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Reads 32 bits of config space.
    pub fn get32(&self, offset: u16) -> u32 {
        let at = usize::from(offset);
        u32::from_le_bytes([self.bytes[at], self.bytes[at + 1], self.bytes[at + 2], self.bytes[at + 3]])
    }

    /// Reads 16 bits of config space.
    pub fn get16(&self, offset: u16) -> u16 {
        self.get32(offset & !3).wrapping_shr(8 * u32::from(offset & 2)) as u16
    }

    /// A 32-bit memory BAR of `size` bytes in slot `index`.
    pub fn bar32(&mut self, index: usize, size: u32, prefetchable: bool) {
        self.bar_masks[index] = !(size - 1);
        self.set32(header::BAR0 + 4 * index as u16, if prefetchable { 0x8 } else { 0 });
    }

    /// A 64-bit memory BAR of `size` bytes in slots `index` and `index + 1`.
    pub fn bar64(&mut self, index: usize, size: u64, prefetchable: bool) {
        let mask = !(size - 1);
        self.bar_masks[index] = mask as u32;
        if index + 1 < 6 {
            self.bar_masks[index + 1] = (mask >> 32) as u32;
            self.upper_half[index + 1] = true;
        }
        self.set32(header::BAR0 + 4 * index as u16, 0x4 | if prefetchable { 0x8 } else { 0 });
    }

    /// Appends capability bytes at `offset` and links it after `previous`
    /// (or from the header's pointer).
    pub fn capability(&mut self, previous: Option<u8>, offset: u8, bytes: &[u8]) {
        let status = self.get16(header::STATUS) | header::STATUS_CAPABILITIES;
        self.set16(header::STATUS, status);
        match previous {
            None => self.set8(header::CAPABILITIES, offset),
            Some(previous) => self.set8(u16::from(previous) + 1, offset),
        }
        let at = usize::from(offset);
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// A virtio vendor capability's bytes.
pub fn virtio_cap(cfg_type: u8, bar: u8, offset: u32, length: u32, extra: &[u32]) -> Vec<u8> {
    let cap_len = 16 + 4 * extra.len();
    let mut bytes = vec![0x09, 0, cap_len as u8, cfg_type, bar, 0, 0, 0];
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(&length.to_le_bytes());
    for word in extra {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// Functions by address; absent ones read all ones.
#[derive(Clone, Debug, Default)]
pub struct FakeConfig {
    /// The functions present, by address.
    pub functions: BTreeMap<Bdf, FakeFunction>,
}

impl ConfigSpace for FakeConfig {
    fn function_size(&self) -> u16 {
        256
    }

    fn reaches(&self, _bdf: Bdf) -> bool {
        true
    }

    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        assert!(offset.is_multiple_of(4) && offset < 256, "unaligned or out-of-range read {offset:#x}");
        let Some(function) = self.functions.get(&bdf) else {
            return u32::MAX;
        };
        if let Some((index, value)) = function.bar_override
            && offset == header::BAR0 + 4 * index as u16
        {
            return value;
        }
        function.get32(offset)
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        assert!(offset.is_multiple_of(4) && offset < 256, "unaligned or out-of-range write {offset:#x}");
        let Some(function) = self.functions.get_mut(&bdf) else {
            return;
        };
        if (header::BAR0..header::BAR0 + 24).contains(&offset) {
            let index = usize::from((offset - header::BAR0) / 4);
            let mask = function.bar_masks[index];
            if function.upper_half[index] {
                function.set32(offset, value & mask);
            } else {
                // Only the writable bits change; the type bits stay.
                let flags = function.get32(offset) & 0xf;
                function.set32(offset, (value & mask & !0xf) | flags);
            }
            return;
        }
        function.set32(offset, value);
    }

    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16) {
        assert!(offset.is_multiple_of(2) && offset < 256, "unaligned or out-of-range write {offset:#x}");
        if let Some(function) = self.functions.get_mut(&bdf) {
            function.set16(offset, value);
        }
    }
}
