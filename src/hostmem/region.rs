//! A sub-device's region as the image sees it: bounds-checked copies in and
//! out, never references.
//!
//! The device writes the region whenever it likes, so a `&[u8]` into it
//! would let memory change under a shared reference, which Rust's aliasing
//! rules forbid. Every access is therefore a volatile copy between the
//! region and the image's own buffers (8 bytes at a time where aligned), or
//! a raw pointer the image uses under the rules of [`RegionMemory::as_raw`].
//! Offsets are checked with `hostmem_wire::check_range` (overflow-safe)
//! before any byte is touched.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use hostmem_wire::{COMPLETION_WORD_ALIGN, WireError, check_range, ranges_overlap};

use super::error::HostmemError;

const WORD: usize = size_of::<u64>();

/// The mapped region of one sub-device.
///
/// Not `Send`/`Sync` (it holds a raw pointer): one driver, one context.
#[derive(Debug)]
pub struct RegionMemory {
    base: NonNull<u8>,
    len: u64,
    shmid: u32,
    /// Offsets of the completion words of live instances: only the device
    /// writes those (docs/hostmem.md §9.6), so writes over them are refused.
    guarded: Vec<u64>,
}

impl RegionMemory {
    /// Wraps `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be mapped normal memory, 8-byte aligned,
    /// that nothing but this value and the device accesses for as long as
    /// the value lives.
    pub(crate) unsafe fn new(base: NonNull<u8>, len: u64, shmid: u32) -> Self {
        Self { base, len, shmid, guarded: Vec::new() }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: regions are never empty (validated at probe).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region's shmid.
    pub fn shmid(&self) -> u32 {
        self.shmid
    }

    /// Guest-physical (= virtual, identity map) address of offset 0.
    pub fn base_address(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Checks that `offset..offset + size` lies in the region.
    pub fn check(&self, offset: u64, size: u64) -> Result<(), HostmemError> {
        check_range(self.len, offset, size).map_err(HostmemError::Range)
    }

    /// The address of `offset` after checking `offset..offset + size`.
    fn at(&self, offset: u64, size: usize) -> Result<*mut u8, HostmemError> {
        let size64 =
            u64::try_from(size).map_err(|_| HostmemError::Range(WireError::RangeOverflow { offset, size: 0 }))?;
        self.check(offset, size64)?;
        // In range, so offset < len, which fits the address space.
        let offset = usize::try_from(offset)
            .map_err(|_| HostmemError::Range(WireError::RangeOverflow { offset, size: size64 }))?;
        // SAFETY: offset + size <= len, so the pointer stays inside the region.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    fn check_not_guarded(&self, offset: u64, size: usize) -> Result<(), HostmemError> {
        let size = size as u64;
        match self.guarded.iter().find(|&&word| ranges_overlap(offset, size, word, COMPLETION_WORD_ALIGN)) {
            Some(&word) => Err(HostmemError::CompletionWordWrite { offset: word }),
            None => Ok(()),
        }
    }

    /// Copies `out.len()` bytes at `offset` out of the region.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), HostmemError> {
        let src = self.at(offset, out.len())?;
        // SAFETY: `src..src + out.len()` is inside the region (checked).
        unsafe { copy_from_region(src, out) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`. Refused if it would
    /// overwrite a live instance's completion word.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), HostmemError> {
        let dst = self.at(offset, data.len())?;
        self.check_not_guarded(offset, data.len())?;
        // SAFETY: `dst..dst + data.len()` is inside the region (checked).
        unsafe { copy_to_region(data, dst) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`. Refused like [`Self::write`].
    pub fn fill(&self, offset: u64, len: usize, byte: u8) -> Result<(), HostmemError> {
        let dst = self.at(offset, len)?;
        self.check_not_guarded(offset, len)?;
        let pattern = [byte; 64];
        let mut done = 0;
        while done < len {
            let chunk = (len - done).min(pattern.len());
            // SAFETY: `done + chunk <= len`, inside the checked range.
            unsafe { copy_to_region(&pattern[..chunk], dst.add(done)) };
            done += chunk;
        }
        Ok(())
    }

    /// Reads a little-endian u64 at `offset` (any alignment).
    pub fn read_u64(&self, offset: u64) -> Result<u64, HostmemError> {
        let mut bytes = [0u8; WORD];
        self.read(offset, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Writes a little-endian u64 at `offset` (any alignment).
    pub fn write_u64(&self, offset: u64, value: u64) -> Result<(), HostmemError> {
        self.write(offset, &value.to_le_bytes())
    }

    /// Reads the little-endian u64 at `offset` with acquire ordering: every
    /// later region read sees what the device wrote before storing it (the
    /// rule for completion words, docs/hostmem.md §10.2). `offset` must be
    /// a multiple of 8.
    pub fn load_acquire_u64(&self, offset: u64) -> Result<u64, HostmemError> {
        if !offset.is_multiple_of(COMPLETION_WORD_ALIGN) {
            return Err(HostmemError::Range(WireError::Misaligned {
                field: "completion_offset",
                value: offset,
                align: COMPLETION_WORD_ALIGN,
            }));
        }
        let at = self.at(offset, WORD)?;
        // SAFETY: 8 bytes inside the region, 8-aligned (the base is 4 KiB
        // aligned and the offset a multiple of 8), valid for the region's
        // life; the device stores the word atomically (release), and the
        // driver never writes it non-atomically (guarded).
        let word = unsafe { AtomicU64::from_ptr(at.cast::<u64>()) };
        Ok(u64::from_le(word.load(Ordering::Acquire)))
    }

    /// A raw pointer to `offset..offset + size`, after checking the range.
    ///
    /// For zero-copy use (decoding pixels in place, say). Rules: the device
    /// may write the memory at any time, so only use volatile or atomic
    /// accesses through it, never turn it into a reference that lives
    /// across a point where the device may write, stay inside `size` bytes,
    /// do not write a live completion word, and stop using it when the
    /// [`super::Hostmem`] is dropped.
    pub fn as_raw(&self, offset: u64, size: usize) -> Result<NonNull<u8>, HostmemError> {
        let at = self.at(offset, size)?;
        // The region base is non-null and the offset in bounds.
        NonNull::new(at).ok_or(HostmemError::Range(WireError::RangeOverflow { offset, size: size as u64 }))
    }

    /// Marks the completion word at `offset` as live (device-written).
    pub(crate) fn guard(&mut self, offset: u64) {
        self.guarded.push(offset);
    }

    /// The completion word at `offset` is no longer live.
    pub(crate) fn unguard(&mut self, offset: u64) {
        if let Some(index) = self.guarded.iter().position(|&word| word == offset) {
            self.guarded.swap_remove(index);
        }
    }

    /// Whether a live completion word overlaps `offset..offset + 8`.
    pub(crate) fn overlaps_guarded_word(&self, offset: u64) -> bool {
        self.guarded.iter().any(|&word| ranges_overlap(offset, COMPLETION_WORD_ALIGN, word, COMPLETION_WORD_ALIGN))
    }
}

/// Copies `out.len()` bytes from `src` with volatile loads, a word at a time
/// once `src` is aligned.
///
/// # Safety
///
/// `src..src + out.len()` must be readable.
unsafe fn copy_from_region(src: *const u8, out: &mut [u8]) {
    let len = out.len();
    let head = src.align_offset(WORD).min(len);
    let (head_out, rest) = out.split_at_mut(head);
    for (index, byte) in head_out.iter_mut().enumerate() {
        // SAFETY: index < head <= len.
        *byte = unsafe { src.add(index).read_volatile() };
    }
    let mut chunks = rest.chunks_exact_mut(WORD);
    let mut at = head;
    for chunk in &mut chunks {
        // SAFETY: `at` is WORD-aligned past `src` and `at + WORD <= len`.
        let word = unsafe { src.add(at).cast::<u64>().read_volatile() };
        chunk.copy_from_slice(&word.to_ne_bytes());
        at += WORD;
    }
    for (index, byte) in chunks.into_remainder().iter_mut().enumerate() {
        // SAFETY: the tail, below len.
        *byte = unsafe { src.add(at + index).read_volatile() };
    }
}

/// Copies `data` to `dst` with volatile stores, a word at a time once `dst`
/// is aligned.
///
/// # Safety
///
/// `dst..dst + data.len()` must be writable.
unsafe fn copy_to_region(data: &[u8], dst: *mut u8) {
    let len = data.len();
    let head = dst.align_offset(WORD).min(len);
    let (head_in, rest) = data.split_at(head);
    for (index, byte) in head_in.iter().enumerate() {
        // SAFETY: index < head <= len.
        unsafe { dst.add(index).write_volatile(*byte) };
    }
    let chunks = rest.chunks_exact(WORD);
    let tail = chunks.remainder();
    let mut at = head;
    for chunk in chunks {
        let mut word = [0u8; WORD];
        word.copy_from_slice(chunk);
        // SAFETY: `at` is WORD-aligned past `dst` and `at + WORD <= len`.
        unsafe { dst.add(at).cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
        at += WORD;
    }
    for (index, byte) in tail.iter().enumerate() {
        // SAFETY: the tail, below len.
        unsafe { dst.add(at + index).write_volatile(*byte) };
    }
}
