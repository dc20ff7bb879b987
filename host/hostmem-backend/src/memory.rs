//! The backend's own, restricted view of guest memory.
//!
//! vhost-user-backend maps every region of QEMU's memory table. The device
//! never uses those mappings: from each fd-backed region it maps again only
//! the windows it is allowed to touch, at the matching offset of the same
//! file:
//!
//! - the restricted DMA pool window (`--pool`), as a one-region
//!   [`GuestMemoryMmap`] that every ring and buffer access goes through, so
//!   an address outside the pool is unmapped in that view and cannot be
//!   reached even if a check were missed (the other pools in the same memfd
//!   are not mapped either);
//! - each sub-device's region (`--region`), as a [`RegionView`] that only
//!   accepts offsets checked against that region's length.
//!
//! Accesses are volatile copies (vm-memory's `VolatileSlice`), never Rust
//! references into memory the guest can change concurrently.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use hostmem_wire::{COMPLETION_WORD_ALIGN, WireError, check_completion_word, check_range, ranges_overlap};
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MmapRegion, VolatileMemory,
};

use crate::setup::{DeviceSetup, GuestWindow};

/// Why a window could not be mapped from QEMU's memory table.
#[derive(Debug)]
pub enum MapError {
    /// No single memory-table region contains the whole window.
    NotInMemoryTable(GuestWindow),
    /// The containing region has no file behind it (cannot be remapped).
    NoFile(GuestWindow),
    /// The window's file offset is not page aligned.
    Unaligned(GuestWindow),
    /// mmap failed.
    Mmap(GuestWindow, String),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInMemoryTable(w) => write!(f, "window {w} is not inside one region of the memory table"),
            Self::NoFile(w) => write!(f, "window {w} lies in a region without a file descriptor"),
            Self::Unaligned(w) => write!(f, "window {w} has a file offset that is not page aligned"),
            Self::Mmap(w, e) => write!(f, "cannot map window {w}: {e}"),
        }
    }
}

impl std::error::Error for MapError {}

/// Maps `window` from the file of the memory-table region containing it.
fn map_window(mem: &GuestMemoryMmap<()>, window: GuestWindow) -> Result<MmapRegion<()>, MapError> {
    let region = mem
        .iter()
        .find(|r| {
            let start = r.start_addr().0;
            start.checked_add(r.len()).is_some_and(|end| window.base() >= start && window.end() <= end)
        })
        .ok_or(MapError::NotInMemoryTable(window))?;
    let file_offset = region.file_offset().ok_or(MapError::NoFile(window))?;
    let offset = window
        .base()
        .checked_sub(region.start_addr().0)
        .and_then(|delta| delta.checked_add(file_offset.start()))
        .ok_or(MapError::NotInMemoryTable(window))?;
    if !offset.is_multiple_of(hostmem_wire::REGION_ALIGN) {
        return Err(MapError::Unaligned(window));
    }
    let len = usize::try_from(window.len()).map_err(|_| MapError::Mmap(window, "window too large".into()))?;
    MmapRegion::from_file(FileOffset::from_arc(file_offset.arc().clone(), offset), len)
        .map_err(|e| MapError::Mmap(window, e.to_string()))
}

/// The DMA pool as the device sees it: a guest memory with exactly one
/// region, the pool window.
pub struct PoolView {
    window: GuestWindow,
    mem: GuestMemoryMmap<()>,
}

impl PoolView {
    /// Maps the pool window out of QEMU's memory table.
    pub fn map(mem: &GuestMemoryMmap<()>, window: GuestWindow) -> Result<Self, MapError> {
        let mapping = map_window(mem, window)?;
        let region = GuestRegionMmap::new(mapping, GuestAddress(window.base()))
            .ok_or_else(|| MapError::Mmap(window, "region end overflows".into()))?;
        let mem = GuestMemoryMmap::from_regions(vec![region]).map_err(|e| MapError::Mmap(window, e.to_string()))?;
        Ok(Self { window, mem })
    }

    /// The pool window.
    pub fn window(&self) -> GuestWindow {
        self.window
    }

    /// The guest memory every queue access uses: nothing but the pool.
    pub fn mem(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Whether `[addr, addr + len)` lies in the pool (overflow-safe).
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        self.window.contains(addr, len)
    }

    /// Reads `buf.len()` bytes at guest-physical `addr`, refusing anything
    /// outside the pool.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), PoolAccessError> {
        if !self.contains(addr, buf.len() as u64) {
            return Err(PoolAccessError { addr, len: buf.len() as u64 });
        }
        self.mem.read_slice(buf, GuestAddress(addr)).map_err(|_| PoolAccessError { addr, len: buf.len() as u64 })
    }

    /// Writes `buf` at guest-physical `addr`, refusing anything outside the
    /// pool.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<(), PoolAccessError> {
        if !self.contains(addr, buf.len() as u64) {
            return Err(PoolAccessError { addr, len: buf.len() as u64 });
        }
        self.mem.write_slice(buf, GuestAddress(addr)).map_err(|_| PoolAccessError { addr, len: buf.len() as u64 })
    }
}

/// An access the pool view refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolAccessError {
    /// Guest-physical address asked for.
    pub addr: u64,
    /// Length asked for.
    pub len: u64,
}

impl fmt::Display for PoolAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access {:#x}+{:#x} outside the DMA pool", self.addr, self.len)
    }
}

/// One sub-device's region, as the sub-device implementation sees it. Every
/// method takes offsets relative to the region and checks them with
/// [`hostmem_wire::check_range`] before touching a byte; there is no way to
/// name memory outside the region through it.
pub struct RegionView {
    window: GuestWindow,
    map: MmapRegion<()>,
}

impl RegionView {
    /// Maps the region window out of QEMU's memory table.
    pub fn map(mem: &GuestMemoryMmap<()>, window: GuestWindow) -> Result<Self, MapError> {
        Ok(Self { window, map: map_window(mem, window)? })
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> u64 {
        self.window.len()
    }

    /// Never true: regions are non-empty.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// The region's guest-physical window (for logs only; the device never
    /// takes addresses from the driver).
    pub fn window(&self) -> GuestWindow {
        self.window
    }

    fn slice(&self, offset: u64, size: u64) -> Result<vm_memory::VolatileSlice<'_>, WireError> {
        check_range(self.len(), offset, size)?;
        // Both fit in usize: the region is mapped, so its length does.
        let (Ok(off), Ok(len)) = (usize::try_from(offset), usize::try_from(size)) else {
            return Err(WireError::OutOfRange { offset, size, region_len: self.len() });
        };
        self.map.get_slice(off, len).map_err(|_| WireError::OutOfRange { offset, size, region_len: self.len() })
    }

    /// Copies `size` bytes at `offset` out of the region. The copy is what
    /// the device then works on, so a driver changing the region meanwhile
    /// cannot make a check and a use disagree.
    pub fn read(&self, offset: u64, size: u64) -> Result<Vec<u8>, WireError> {
        let slice = self.slice(offset, size)?;
        let mut buf = vec![0u8; slice.len()];
        slice.copy_to(&mut buf[..]);
        Ok(buf)
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), WireError> {
        let slice = self.slice(offset, data.len() as u64)?;
        slice.copy_from(data);
        Ok(())
    }

    /// Copies `size` bytes from `src` to `dst` within the region.
    pub fn copy_within(&self, src: u64, dst: u64, size: u64) -> Result<(), WireError> {
        let from = self.slice(src, size)?;
        let to = self.slice(dst, size)?;
        from.copy_to_volatile_slice(to);
        Ok(())
    }

    /// Stores `seq` into the completion word at `offset` with release
    /// ordering (after every earlier region write), via hostmem_wire.
    pub fn publish_completion(&self, offset: u64, seq: u64) -> Result<(), WireError> {
        self.completion_word(offset).map(|word| hostmem_wire::publish_completion(word, seq))
    }

    /// Reads a completion word (tests, logs).
    pub fn load_completion(&self, offset: u64) -> Result<u64, WireError> {
        self.completion_word(offset).map(hostmem_wire::load_completion)
    }

    fn completion_word(&self, offset: u64) -> Result<&AtomicU64, WireError> {
        check_completion_word(self.len(), offset)?;
        let off =
            usize::try_from(offset).map_err(|_| WireError::OutOfRange { offset, size: 8, region_len: self.len() })?;
        // The mapping is page aligned and the offset 8-aligned (checked), so
        // vm-memory's alignment check cannot fail; it is kept as a guard.
        self.map.get_atomic_ref::<AtomicU64>(off).map_err(|_| WireError::Misaligned {
            field: "completion_offset",
            value: offset,
            align: 8,
        })
    }
}

/// A sub-device's access to its region while it serves one notification:
/// the [`RegionView`] minus the completion words of the sub-device's live
/// instances. Only the device core writes those, and only as
/// docs/hostmem.md §9.5 says, so every write a sub-device makes goes
/// through [`RegionAccess::check_writable`]; one instance cannot aim an
/// output at another's word, whatever the sub-device's protocol.
pub struct RegionAccess<'a> {
    region: &'a RegionView,
    /// Offsets of the completion words (8 bytes each) no write may touch.
    words: &'a [u64],
}

impl<'a> RegionAccess<'a> {
    /// `region` with the completion words at `words` protected.
    pub fn new(region: &'a RegionView, words: &'a [u64]) -> Self {
        Self { region, words }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> u64 {
        self.region.len()
    }

    /// Never true: regions are non-empty.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Checks that `[offset, offset + size)` lies in the region and touches
    /// no protected completion word; BAD_RANGE otherwise (both errors map
    /// to it). A sub-device that writes in several steps checks its whole
    /// output range with this first, so a refusal has no effect at all.
    pub fn check_writable(&self, offset: u64, size: u64) -> Result<(), WireError> {
        check_range(self.len(), offset, size)?;
        if self.words.iter().any(|&word| ranges_overlap(offset, size, word, COMPLETION_WORD_ALIGN)) {
            return Err(WireError::Overlap { what: "write range and a live instance's completion word" });
        }
        Ok(())
    }

    /// Copies `size` bytes at `offset` out of the region (reading a
    /// completion word is harmless).
    pub fn read(&self, offset: u64, size: u64) -> Result<Vec<u8>, WireError> {
        self.region.read(offset, size)
    }

    /// Writes `data` at `offset`, unless that touches a protected word.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), WireError> {
        self.check_writable(offset, data.len() as u64)?;
        self.region.write(offset, data)
    }

    /// Copies `size` bytes from `src` to `dst` within the region, unless
    /// the destination touches a protected word.
    pub fn copy_within(&self, src: u64, dst: u64, size: u64) -> Result<(), WireError> {
        self.check_writable(dst, size)?;
        self.region.copy_within(src, dst, size)
    }
}

/// Everything the device may touch, rebuilt on every SET_MEM_TABLE.
pub struct MemoryViews {
    /// The DMA pool.
    pub pool: PoolView,
    /// Sub-device regions by index; `None` where the memory table did not
    /// contain the region (that sub-device then cannot be used).
    pub regions: Vec<Option<RegionView>>,
}

impl MemoryViews {
    /// Maps the pool and every region out of QEMU's memory table. The pool
    /// is required; a missing region is logged and leaves that sub-device
    /// unusable.
    pub fn build(mem: &GuestMemoryMmap<()>, setup: &DeviceSetup) -> Result<Self, MapError> {
        let pool = PoolView::map(mem, setup.pool())?;
        let regions = setup
            .subdevices()
            .iter()
            .enumerate()
            .map(|(index, spec)| match RegionView::map(mem, spec.region) {
                Ok(view) => Some(view),
                Err(e) => {
                    log::error!("sub-device {index} ({}) unusable: {e}", spec.kind);
                    None
                }
            })
            .collect();
        Ok(Self { pool, regions })
    }

    /// The region of sub-device `index`, if mapped.
    pub fn region(&self, index: usize) -> Option<&RegionView> {
        self.regions.get(index).and_then(Option::as_ref)
    }
}

/// Reads a little-endian `u16` ring field with acquire ordering from the
/// pool (used for the avail ring's flags).
pub(crate) fn load_u16(pool: &PoolView, addr: u64) -> Option<u16> {
    if !pool.contains(addr, 2) {
        return None;
    }
    pool.mem.load::<u16>(GuestAddress(addr), Ordering::Acquire).ok().map(u16::from_le)
}
