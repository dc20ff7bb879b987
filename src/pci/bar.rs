//! Base address registers: sizing, validation and assignment from the host
//! bridge's windows.
//!
//! With `-kernel` and no firmware QEMU virt leaves every BAR at 0, so the
//! runtime assigns them as Linux does: naturally aligned, 64-bit
//! prefetchable BARs from a 64-bit window if one is usable, else from the
//! 32-bit window. BARs that arrive assigned (other VMMs) are validated and
//! kept where they are.

use alloc::vec::Vec;

use super::config::{Bdf, ConfigSpace, header};
use super::{PciError, PciErrorKind};
use crate::platform::Range;
use crate::platform::{PciWindow, SpaceCode};

/// BARs of a type 0 header.
pub const BAR_COUNT: usize = 6;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space (sized, never assigned).
    Io,
    /// 32-bit memory space.
    Memory32,
    /// 64-bit memory space (takes two slots).
    Memory64,
}

/// One implemented BAR, sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// The BAR's slot, 0..=5 (the low slot of a 64-bit BAR).
    pub index: u8,
    /// What it decodes.
    pub kind: BarKind,
    /// The prefetchable bit.
    pub prefetchable: bool,
    /// Power of two.
    pub size: u64,
    /// The PCI bus address it decodes (0 until assigned).
    pub pci_address: u64,
    /// The CPU physical address of `pci_address`, once placed in a window.
    pub cpu_address: Option<u64>,
}

impl Bar {
    /// The CPU range it decodes, once placed.
    pub fn cpu_range(&self) -> Option<Range> {
        self.cpu_address.map(|base| Range { base, size: self.size })
    }
}

/// The six BAR slots of a function; `None` for unimplemented ones and the
/// upper halves of 64-bit BARs.
pub type Bars = [Option<Bar>; BAR_COUNT];

fn bar_offset(index: usize) -> u16 {
    header::BAR0 + 4 * index as u16
}

/// Sizes every BAR of `bdf` (write all ones, read back, restore), with
/// memory and I/O decoding off meanwhile, as Linux does: a BAR being sized
/// must not decode a bogus range.
pub fn size_bars(config: &mut dyn ConfigSpace, bdf: Bdf) -> Result<Bars, PciError> {
    let command = config.read16(bdf, header::COMMAND);
    config.write16(bdf, header::COMMAND, command & !(header::COMMAND_MEMORY | header::COMMAND_IO));
    let result = size_bars_decoding_off(config, bdf);
    config.write16(bdf, header::COMMAND, command);
    result
}

fn size_bars_decoding_off(config: &mut dyn ConfigSpace, bdf: Bdf) -> Result<Bars, PciError> {
    let fail = |kind| PciError { bdf, kind };
    let mut bars: Bars = [None; BAR_COUNT];
    let mut index = 0;
    while index < BAR_COUNT {
        let offset = bar_offset(index);
        let original = config.read32(bdf, offset);
        config.write32(bdf, offset, u32::MAX);
        let mask = config.read32(bdf, offset);
        config.write32(bdf, offset, original);
        let slot = index as u8;
        if original & 1 == 1 {
            // I/O: bits 2..32 (the upper 16 may read 0).
            let bits = mask & !3;
            if bits != 0 {
                let size = 1u64 << bits.trailing_zeros();
                let address = u64::from(original & !3);
                bars[index] = Some(Bar {
                    index: slot,
                    kind: BarKind::Io,
                    prefetchable: false,
                    size,
                    pci_address: address,
                    cpu_address: None,
                });
            }
            index += 1;
            continue;
        }
        let prefetchable = original & 0x8 != 0;
        let (kind, address, bits, width) = match (original >> 1) & 3 {
            // 0: 32-bit; 1: below 1 MiB (PCI 2.x), decoded as 32-bit.
            0 | 1 => (BarKind::Memory32, u64::from(original & !0xf), u64::from(mask & !0xf), 32),
            2 => {
                let Some(upper_offset) = (index + 1 < BAR_COUNT).then(|| bar_offset(index + 1)) else {
                    return Err(fail(PciErrorKind::Bar64InLastSlot { index: slot }));
                };
                let upper = config.read32(bdf, upper_offset);
                config.write32(bdf, upper_offset, u32::MAX);
                let upper_mask = config.read32(bdf, upper_offset);
                config.write32(bdf, upper_offset, upper);
                let address = u64::from(original & !0xf) | (u64::from(upper) << 32);
                let bits = u64::from(mask & !0xf) | (u64::from(upper_mask) << 32);
                (BarKind::Memory64, address, bits, 64)
            }
            _ => return Err(fail(PciErrorKind::BarReservedType { index: slot, value: original })),
        };
        let step = if kind == BarKind::Memory64 { 2 } else { 1 };
        if bits != 0 {
            let size = 1u64 << bits.trailing_zeros();
            // Every bit above the size must be writable: a BAR decodes a
            // naturally aligned power of two.
            let all = if width == 64 { u64::MAX } else { u64::from(u32::MAX) };
            if bits | (size - 1) | 0xf != all {
                return Err(fail(PciErrorKind::BarNotPowerOfTwo { index: slot, mask: bits }));
            }
            bars[index] = Some(Bar { index: slot, kind, prefetchable, size, pci_address: address, cpu_address: None });
        }
        index += step;
    }
    Ok(bars)
}

/// Where BARs go behind one bridge: the bridge's memory windows and every
/// range already decoded by some BAR.
#[derive(Debug)]
pub struct BarAllocator {
    windows: Vec<PciWindow>,
    /// CPU ranges taken by BARs (kept or assigned).
    taken: Vec<Range>,
}

impl BarAllocator {
    /// An allocator over `windows`' memory windows (I/O windows are dropped), nothing taken yet.
    pub fn new(windows: impl IntoIterator<Item = PciWindow>) -> Self {
        let windows = windows.into_iter().filter(|window| window.space != SpaceCode::Io).collect();
        Self { windows, taken: Vec::new() }
    }

    /// Windows a BAR may live in, best first: a 64-bit BAR prefers a 64-bit
    /// window; a non-prefetchable BAR never goes into a prefetchable window
    /// (reads there may be merged or repeated).
    fn candidates(&self, bar: &Bar) -> impl Iterator<Item = &PciWindow> + '_ {
        let (first, second) = match bar.kind {
            BarKind::Memory64 => (Some(SpaceCode::Memory64), Some(SpaceCode::Memory32)),
            BarKind::Memory32 => (Some(SpaceCode::Memory32), None),
            BarKind::Io => (None, None),
        };
        let prefetchable = bar.prefetchable;
        let fits = move |window: &&PciWindow| prefetchable || !window.prefetchable;
        let pass = move |space: Option<SpaceCode>| {
            self.windows.iter().filter(move |window| Some(window.space) == space).filter(fits)
        };
        pass(first).chain(pass(second))
    }

    /// Marks `range` as taken (a BAR placed by an earlier probe).
    pub fn reserve(&mut self, range: Range) {
        self.taken.push(range);
    }

    /// Validates a BAR that arrived assigned and reserves its range.
    pub fn keep(&mut self, bdf: Bdf, bar: &mut Bar) -> Result<(), PciError> {
        let fail = |kind| PciError { bdf, kind };
        let placed = self
            .candidates(bar)
            .find_map(|window| window.cpu_address(bar.pci_address, bar.size).map(|cpu| (cpu, *window)));
        let Some((cpu, _)) = placed else {
            return Err(fail(PciErrorKind::BarOutsideWindows { index: bar.index, pci_address: bar.pci_address }));
        };
        if !bar.pci_address.is_multiple_of(bar.size) {
            return Err(fail(PciErrorKind::BarMisaligned { index: bar.index, pci_address: bar.pci_address }));
        }
        let range = Range { base: cpu, size: bar.size };
        if let Some(other) = self.taken.iter().find(|other| other.overlaps(&range)) {
            return Err(fail(PciErrorKind::BarOverlap { index: bar.index, range, other: *other }));
        }
        self.taken.push(range);
        bar.cpu_address = Some(cpu);
        Ok(())
    }

    /// Picks a naturally aligned place for `bar` (first fit) and records it;
    /// the caller writes it to the device.
    pub fn assign(&mut self, bdf: Bdf, bar: &mut Bar) -> Result<(), PciError> {
        let mut found = None;
        for window in self.candidates(bar) {
            if let Some(pci) = self.first_fit(window, bar.size) {
                found = Some((pci, window.cpu_address(pci, bar.size)));
                break;
            }
        }
        let Some((pci, Some(cpu))) = found else {
            return Err(PciError { bdf, kind: PciErrorKind::BarDoesNotFit { index: bar.index, size: bar.size } });
        };
        self.taken.push(Range { base: cpu, size: bar.size });
        bar.pci_address = pci;
        bar.cpu_address = Some(cpu);
        Ok(())
    }

    /// The lowest PCI address in `window`, aligned to `size`, whose range is
    /// free. Each step moves past one taken range, so the loop is bounded.
    fn first_fit(&self, window: &PciWindow, size: u64) -> Option<u64> {
        let mut cursor = window.pci_base;
        for _ in 0..=self.taken.len() {
            let pci = cursor.checked_next_multiple_of(size)?;
            let cpu = window.cpu_address(pci, size)?;
            let range = Range { base: cpu, size };
            match self.taken.iter().find(|taken| taken.overlaps(&range)) {
                None => return Some(pci),
                Some(taken) => cursor = window.pci_address(taken.end().checked_sub(1)?)?.checked_add(1)?,
            }
        }
        None
    }
}

/// Writes an assigned BAR's address (both halves of a 64-bit one).
pub fn write_bar(config: &mut dyn ConfigSpace, bdf: Bdf, bar: &Bar) {
    let index = usize::from(bar.index);
    let flags = config.read32(bdf, bar_offset(index)) & 0xf;
    // Truncation intended: the low and high halves.
    config.write32(bdf, bar_offset(index), (bar.pci_address as u32 & !0xf) | flags);
    if bar.kind == BarKind::Memory64 {
        config.write32(bdf, bar_offset(index + 1), (bar.pci_address >> 32) as u32);
    }
}

/// The PCI address `bar` decodes now, read back from the device.
pub fn read_bar_address(config: &dyn ConfigSpace, bdf: Bdf, bar: &Bar) -> u64 {
    let index = usize::from(bar.index);
    let low = config.read32(bdf, bar_offset(index));
    match bar.kind {
        BarKind::Io => u64::from(low & !3),
        BarKind::Memory32 => u64::from(low & !0xf),
        BarKind::Memory64 => u64::from(low & !0xf) | (u64::from(config.read32(bdf, bar_offset(index + 1))) << 32),
    }
}
