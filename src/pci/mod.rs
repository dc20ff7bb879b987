//! PCI: config space access, enumeration, BAR sizing and assignment, and
//! the capability list, all treating config space as hostile input.
//!
//! Host bridges come from the device tree
//! ([`crate::platform::PciHostBridge`]); [`enumerate`] finds the
//! functions behind one, [`setup_function`] sizes and places a function's
//! BARs and enables it, [`caps::virtio_caps`] reads its virtio structures.
//! Every problem is a [`PciError`] naming bus:device.function and what was
//! wrong; the function is then left out (decoding off, not a bus master).
//!
//! Limits: PCI-to-PCI bridges (header type 1) are not configured, so only
//! functions reachable without one are found; I/O BARs are sized but never
//! assigned (modern virtio needs none); MSI/MSI-X are not used (INTx or
//! polling).

use alloc::vec::Vec;
use core::fmt;

pub mod bar;
pub mod caps;
pub mod config;

// The unit tests' fake config space; the `fuzzing` feature exposes it to the
// fuzz targets (fuzz/), which fill it from their input.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fake;
#[cfg(test)]
mod tests;

use bar::{BarAllocator, BarKind, Bars};
use config::{Bdf, ConfigSpace, header};

use crate::platform::Range;

/// What was wrong with a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciErrorKind {
    /// A 64-bit BAR in slot 5: its upper half would be outside the header.
    Bar64InLastSlot {
        /// The BAR's slot, 0..=5.
        index: u8,
    },
    /// Memory BAR type 3 (reserved).
    BarReservedType {
        /// The BAR's slot.
        index: u8,
        /// The BAR's value as read.
        value: u32,
    },
    /// The writable bits of a BAR do not describe a power-of-two size.
    BarNotPowerOfTwo {
        /// The BAR's slot.
        index: u8,
        /// The size mask read back after writing all ones.
        mask: u64,
    },
    /// No usable window of the bridge has room for the BAR.
    BarDoesNotFit {
        /// The BAR's slot.
        index: u8,
        /// The BAR's size in bytes.
        size: u64,
    },
    /// A BAR that arrived assigned is outside every window of its type.
    BarOutsideWindows {
        /// The BAR's slot.
        index: u8,
        /// The PCI address it holds.
        pci_address: u64,
    },
    /// A BAR that arrived assigned is not aligned to its size.
    BarMisaligned {
        /// The BAR's slot.
        index: u8,
        /// The PCI address it holds.
        pci_address: u64,
    },
    /// A BAR that arrived assigned overlaps another BAR.
    BarOverlap {
        /// The BAR's slot.
        index: u8,
        /// Its CPU address range.
        range: Range,
        /// The CPU address range of the BAR it overlaps.
        other: Range,
    },
    /// A BAR no longer decodes the address the runtime gave it.
    BarChanged {
        /// The BAR's slot.
        index: u8,
        /// The PCI address it was given.
        expected: u64,
        /// The PCI address it decodes now.
        found: u64,
    },
    /// A capability pointer below 0x40 or not dword-aligned.
    BadCapabilityPointer {
        /// Config space offset of the pointer's target.
        pointer: u8,
    },
    /// The capability list visits the same capability twice.
    CapabilityLoop {
        /// Config space offset of the capability met again.
        pointer: u8,
    },
    /// A virtio capability too short for its type, or running past 0x100.
    BadCapabilityLength {
        /// Config space offset of the capability.
        pointer: u8,
        /// Its `cap_len`.
        cap_len: u8,
    },
    /// A virtio capability naming a BAR that is absent or I/O.
    CapabilityBadBar {
        /// The capability's `cfg_type`.
        cfg_type: u8,
        /// The BAR it names.
        bar: u8,
    },
    /// A virtio structure outside its BAR (or empty).
    CapabilityOutsideBar {
        /// The capability's `cfg_type`.
        cfg_type: u8,
        /// The BAR it names.
        bar: u8,
        /// The structure's offset in the BAR.
        offset: u64,
        /// The structure's length.
        length: u64,
        /// The BAR's size.
        bar_size: u64,
    },
    /// A virtio structure at an offset its registers cannot be accessed at
    /// (virtio 1.2 §4.1.4: common and device 4-byte, notify 2-byte
    /// aligned): every access the driver made would be refused.
    CapabilityMisaligned {
        /// The capability's cfg_type.
        cfg_type: u8,
        /// The structure's offset in its BAR.
        offset: u64,
        /// The alignment its registers need.
        alignment: u64,
    },
    /// A notify_off_multiplier that is neither 0 nor an even power of two
    /// (virtio 1.2 §4.1.4.4): queue notify addresses would be misaligned.
    BadNotifyMultiplier {
        /// The capability's notify_off_multiplier.
        multiplier: u32,
    },
    /// A virtio structure smaller than its layout.
    CapabilityTooSmall {
        /// The capability's `cfg_type`.
        cfg_type: u8,
        /// The structure's length.
        length: u64,
    },
    /// Two virtio structures over the same bytes.
    CapabilitiesOverlap {
        /// The `cfg_type` of one structure.
        cfg_type: u8,
        /// The `cfg_type` of the other.
        other: u8,
    },
    /// A required virtio structure is missing.
    MissingCapability {
        /// The `cfg_type` that is missing.
        cfg_type: u8,
    },
    /// More shared memory capabilities than the runtime keeps ([`caps::MAX_SHARED_MEMORY`]).
    TooManySharedMemoryRegions,
    /// A header type the runtime does not configure (bridges).
    UnsupportedHeaderType {
        /// The header type, without the multi-function bit.
        header_type: u8,
    },
}

/// A problem of function `bdf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciError {
    /// The function.
    pub bdf: Bdf,
    /// What was wrong.
    pub kind: PciErrorKind,
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PciErrorKind::*;
        write!(f, "pci {}: ", self.bdf)?;
        match self.kind {
            Bar64InLastSlot { index } => write!(f, "BAR{index} is 64-bit but in the last slot"),
            BarReservedType { index, value } => write!(f, "BAR{index} has the reserved type ({value:#010x})"),
            BarNotPowerOfTwo { index, mask } => write!(f, "BAR{index} size mask {mask:#x} is not a power of two"),
            BarDoesNotFit { index, size } => {
                write!(f, "BAR{index} of {size:#x} bytes fits in no usable window of the bridge")
            }
            BarOutsideWindows { index, pci_address } => {
                write!(f, "BAR{index} at PCI {pci_address:#x} is outside every window of its type")
            }
            BarMisaligned { index, pci_address } => {
                write!(f, "BAR{index} at PCI {pci_address:#x} is not aligned to its size")
            }
            BarOverlap { index, range, other } => write!(f, "BAR{index} at {range} overlaps another BAR at {other}"),
            BarChanged { index, expected, found } => {
                write!(f, "BAR{index} changed under the driver: {found:#x}, assigned {expected:#x}")
            }
            BadCapabilityPointer { pointer } => {
                write!(f, "capability pointer {pointer:#x} is not a dword in 0x40..0x100")
            }
            CapabilityLoop { pointer } => write!(f, "capability list loops back to {pointer:#x}"),
            BadCapabilityLength { pointer, cap_len } => {
                write!(f, "virtio capability at {pointer:#x} has a bad length {cap_len}")
            }
            CapabilityBadBar { cfg_type, bar } => {
                write!(f, "virtio capability type {cfg_type} names BAR{bar}, which is absent or I/O")
            }
            CapabilityOutsideBar { cfg_type, bar, offset, length, bar_size } => write!(
                f,
                "virtio capability type {cfg_type}: {offset:#x}+{length:#x} is not inside BAR{bar} of {bar_size:#x} bytes"
            ),
            CapabilityMisaligned { cfg_type, offset, alignment } => {
                write!(f, "virtio capability type {cfg_type}: offset {offset:#x} is not {alignment}-byte aligned")
            }
            BadNotifyMultiplier { multiplier } => {
                write!(f, "notify_off_multiplier {multiplier} is neither 0 nor an even power of two")
            }
            CapabilityTooSmall { cfg_type, length } => {
                write!(f, "virtio capability type {cfg_type} is only {length:#x} bytes")
            }
            CapabilitiesOverlap { cfg_type, other } => {
                write!(f, "virtio structures of types {cfg_type} and {other} overlap")
            }
            MissingCapability { cfg_type } => write!(f, "no virtio capability of type {cfg_type}"),
            TooManySharedMemoryRegions => write!(f, "more than {} shared memory regions", caps::MAX_SHARED_MEMORY),
            UnsupportedHeaderType { header_type } => {
                write!(f, "header type {header_type:#x} is not configured (PCI-to-PCI bridges are not supported)")
            }
        }
    }
}

impl core::error::Error for PciError {}

/// A present function, as its header describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Bus, device and function.
    pub bdf: Bdf,
    /// Vendor id (never 0 or 0xffff: those mean absent).
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Class code (base, sub, programming interface) and revision.
    pub class_revision: u32,
    /// Header type, multi-function bit (0x80) included.
    pub header_type: u8,
    /// INTx pin 1..=4, 0 for none.
    pub interrupt_pin: u8,
}

/// Every function reachable through `config`, in bus/device/function order.
/// Bounded: each bus of the bridge's range, 32 devices, 8 functions when
/// function 0 says it is multi-function, one read to skip an absent one.
pub fn enumerate(config: &dyn ConfigSpace, bus_start: u8, bus_end: u8) -> Vec<Function> {
    let mut found = Vec::new();
    for bus in bus_start..=bus_end {
        for device in 0..32 {
            for function in 0..8 {
                let Some(bdf) = Bdf::new(bus, device, function) else {
                    continue;
                };
                if !config.reaches(bdf) {
                    continue;
                }
                let id = config.read32(bdf, header::VENDOR_ID);
                let vendor_id = id as u16;
                if vendor_id == 0xffff || vendor_id == 0 {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let header_type = config.read8(bdf, header::HEADER_TYPE);
                found.push(Function {
                    bdf,
                    vendor_id,
                    device_id: (id >> 16) as u16,
                    class_revision: config.read32(bdf, header::REVISION_CLASS),
                    header_type,
                    interrupt_pin: config.read8(bdf, header::INTERRUPT_PIN),
                });
                if function == 0 && header_type & header::MULTI_FUNCTION == 0 {
                    break;
                }
            }
        }
    }
    found
}

/// Sizes the function's BARs, keeps the assigned ones that are valid,
/// assigns the others from `allocator`, and only then enables memory
/// decoding and bus mastering. On error the function is left with decoding
/// and bus mastering off.
pub fn setup_function(
    config: &mut dyn ConfigSpace,
    function: &Function,
    allocator: &mut BarAllocator,
) -> Result<Bars, PciError> {
    let bdf = function.bdf;
    let disable = |config: &mut dyn ConfigSpace| {
        let command = config.read16(bdf, header::COMMAND);
        let off = header::COMMAND_MEMORY | header::COMMAND_IO | header::COMMAND_BUS_MASTER;
        config.write16(bdf, header::COMMAND, command & !off);
    };
    disable(config);
    if function.header_type & !header::MULTI_FUNCTION != 0 {
        let header_type = function.header_type & !header::MULTI_FUNCTION;
        return Err(PciError { bdf, kind: PciErrorKind::UnsupportedHeaderType { header_type } });
    }
    let mut bars = bar::size_bars(config, bdf)?;
    // Kept BARs first, so assignment works around them; then the largest
    // first, which packs naturally aligned BARs without holes.
    for keep_pass in [true, false] {
        let mut order: Vec<usize> = (0..bars.len()).collect();
        order.sort_by_key(|&index| core::cmp::Reverse(bars[index].map_or(0, |bar| bar.size)));
        for index in order {
            let Some(bar) = bars.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if bar.kind == BarKind::Io || (bar.pci_address != 0) != keep_pass {
                continue;
            }
            let result = if keep_pass { allocator.keep(bdf, bar) } else { allocator.assign(bdf, bar) };
            if let Err(error) = result {
                disable(config);
                return Err(error);
            }
            if !keep_pass {
                bar::write_bar(config, bdf, bar);
            }
        }
    }
    if let Err(error) = verify_bars(config, bdf, &bars) {
        disable(config);
        return Err(error);
    }
    let command = config.read16(bdf, header::COMMAND);
    let on = header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER;
    config.write16(bdf, header::COMMAND, (command & !header::COMMAND_IO) | on);
    Ok(bars)
}

/// Checks that every memory BAR still decodes the address recorded in
/// `bars`: a device that moves a BAR would make the driver's accesses land
/// somewhere else.
pub fn verify_bars(config: &dyn ConfigSpace, bdf: Bdf, bars: &Bars) -> Result<(), PciError> {
    for bar in bars.iter().flatten().filter(|bar| bar.kind != BarKind::Io) {
        let found = bar::read_bar_address(config, bdf, bar);
        if found != bar.pci_address {
            let kind = PciErrorKind::BarChanged { index: bar.index, expected: bar.pci_address, found };
            return Err(PciError { bdf, kind });
        }
    }
    Ok(())
}
