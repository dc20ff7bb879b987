//! One restricted DMA pool: page allocation with bookkeeping in private
//! memory, zeroing, bounce copies and statistics.
//!
//! The host can write every byte of the pool, so nothing the allocator
//! relies on lives there: buddy_system_allocator's `FrameAllocator` keeps its
//! free lists in heap-allocated sets, and live allocations are tracked in a
//! heap map (which is also what catches double and foreign frees).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use buddy_system_allocator::FrameAllocator;

/// Pools are carved in the platform's pages.
pub use crate::platform::PAGE_SIZE;
use crate::platform::Range;

/// Why a pool operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// Not enough contiguous free pages.
    Exhausted {
        /// The pool's range.
        pool: Range,
        /// Pages asked for.
        requested_pages: usize,
        /// Pages free (perhaps not contiguous).
        free_pages: usize,
    },
    /// Zero pages or bytes were asked for.
    ZeroSize,
    /// The pool's base or size is not page aligned, or it is empty.
    BadPoolRange(Range),
    /// A free of something that is not a live allocation (double free, or an
    /// address from elsewhere).
    NotAllocated {
        /// The address given.
        address: u64,
        /// The page count given.
        pages: usize,
    },
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::Exhausted { pool, requested_pages, free_pages } => write!(
                f,
                "DMA pool {:#x}..{:#x} exhausted: {requested_pages} pages requested, {free_pages} free",
                pool.base,
                pool.end()
            ),
            DmaError::ZeroSize => f.write_str("zero-sized DMA allocation"),
            DmaError::BadPoolRange(range) => {
                write!(f, "DMA pool {:#x}+{:#x} is empty or not page aligned", range.base, range.size)
            }
            DmaError::NotAllocated { address, pages } => {
                write!(f, "{pages} pages at {address:#x} are not a live allocation of this pool")
            }
        }
    }
}

/// Counters an image can read, and the runtime logs at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of pages allocated now, as the buddy allocator takes them
    /// (each allocation rounded up to a power of two pages).
    pub bytes_in_use: u64,
    /// The most `bytes_in_use` has been.
    pub high_water_bytes: u64,
    /// Allocations that succeeded.
    pub allocations: u64,
    /// Allocations refused for want of contiguous free pages.
    pub failed_allocations: u64,
    /// Buffers bounced through the pool (share calls).
    pub bounces: u64,
    /// Payload bytes copied into and out of the pool by bounces.
    pub bytes_bounced: u64,
}

/// A bounce buffer's direction, as virtio-drivers names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device reads the buffer: copied into the pool before.
    DriverToDevice,
    /// The device writes the buffer: starts zeroed, copied out after.
    DeviceToDriver,
    /// Both: copied in before and out after.
    Both,
}

impl Direction {
    fn copies_in(self) -> bool {
        matches!(self, Direction::DriverToDevice | Direction::Both)
    }
    fn copies_out(self) -> bool {
        matches!(self, Direction::DeviceToDriver | Direction::Both)
    }
}

/// A restricted DMA pool.
pub struct Pool {
    range: Range,
    frames: FrameAllocator<32>,
    /// Live allocations: first page address -> page count.
    live: BTreeMap<u64, usize>,
    /// Allocations set aside by `reserve` for later bounces, so that
    /// virtio-drivers' infallible `share` never finds the pool empty.
    reserved: Vec<(u64, usize)>,
    free_pages: usize,
    stats: PoolStats,
}

impl Pool {
    /// Takes over `range`, which must be page-aligned RAM that nothing else
    /// uses and that the runtime maps as normal memory.
    pub fn new(range: Range) -> Result<Self, DmaError> {
        if range.size == 0 || !range.base.is_multiple_of(PAGE_SIZE) || !range.size.is_multiple_of(PAGE_SIZE) {
            return Err(DmaError::BadPoolRange(range));
        }
        let first = (range.base / PAGE_SIZE) as usize;
        let pages = (range.size / PAGE_SIZE) as usize;
        let mut frames = FrameAllocator::new();
        frames.add_frame(first, first + pages);
        Ok(Pool {
            range,
            frames,
            live: BTreeMap::new(),
            reserved: Vec::new(),
            free_pages: pages,
            stats: PoolStats::default(),
        })
    }

    /// The memory the pool hands out.
    pub fn range(&self) -> Range {
        self.range
    }

    /// The pool's counters so far.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Pages not allocated (reservations count as allocated).
    pub fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Whether `[address, address + len)` lies inside the pool.
    pub fn contains(&self, address: u64, len: u64) -> bool {
        address.checked_add(len).is_some_and(|end| address >= self.range.base && end <= self.range.end())
    }

    /// Allocates `pages` zeroed pages. Returns the first page's address
    /// (physical = virtual under the identity map).
    pub fn alloc_pages(&mut self, pages: usize) -> Result<u64, DmaError> {
        if pages == 0 {
            return Err(DmaError::ZeroSize);
        }
        let Some(frame) = self.frames.alloc(pages) else {
            self.stats.failed_allocations += 1;
            return Err(DmaError::Exhausted { pool: self.range, requested_pages: pages, free_pages: self.free_pages });
        };
        // The buddy allocator rounds up to a power of two; account for what
        // it really took so that free_pages stays honest.
        let taken = pages.next_power_of_two();
        let address = frame as u64 * PAGE_SIZE;
        self.live.insert(address, pages);
        self.free_pages -= taken;
        self.stats.allocations += 1;
        self.stats.bytes_in_use += taken as u64 * PAGE_SIZE;
        self.stats.high_water_bytes = self.stats.high_water_bytes.max(self.stats.bytes_in_use);
        // SAFETY: the pages are inside the pool (the allocator only hands out
        // frames of the range given to it), which is mapped normal memory we
        // own, and no one else holds them now.
        unsafe { core::ptr::write_bytes(address as *mut u8, 0, pages * PAGE_SIZE as usize) };
        Ok(address)
    }

    /// Frees an allocation, zeroing it first so that nothing from it reaches
    /// the next user.
    pub fn free_pages_at(&mut self, address: u64, pages: usize) -> Result<(), DmaError> {
        match self.live.get(&address) {
            Some(&live_pages) if live_pages == pages => {}
            _ => return Err(DmaError::NotAllocated { address, pages }),
        }
        self.live.remove(&address);
        // SAFETY: a live allocation of this pool, about to be returned.
        unsafe { core::ptr::write_bytes(address as *mut u8, 0, pages * PAGE_SIZE as usize) };
        self.frames.dealloc((address / PAGE_SIZE) as usize, pages);
        let taken = pages.next_power_of_two();
        self.free_pages += taken;
        self.stats.bytes_in_use -= taken as u64 * PAGE_SIZE;
        Ok(())
    }

    /// Sets aside room for a later bounce of up to `len` bytes, so that the
    /// bounce cannot fail. Call before handing a buffer to a virtqueue.
    pub fn reserve(&mut self, len: usize) -> Result<(), DmaError> {
        let pages = pages_for(len)?;
        let address = self.alloc_pages(pages)?;
        self.reserved.push((address, pages));
        Ok(())
    }

    /// Returns every unused reservation to the pool.
    pub fn release_reservations(&mut self) {
        for (address, pages) in core::mem::take(&mut self.reserved) {
            // Reservations are live allocations by construction.
            let _ = self.free_pages_at(address, pages);
        }
    }

    /// Copies `buffer` into the pool as a bounce buffer and returns its
    /// address there. DeviceToDriver buffers are not copied: the device sees
    /// zeroes, never the guest's old bytes or an earlier user's.
    ///
    /// # Safety
    ///
    /// `buffer` must be valid for reads of its length.
    pub unsafe fn bounce_in(&mut self, buffer: NonNull<[u8]>, direction: Direction) -> Result<u64, DmaError> {
        let len = buffer.len();
        let pages = pages_for(len)?;
        let address = match self.reserved.iter().position(|&(_, reserved)| reserved >= pages) {
            Some(index) => {
                let (address, reserved_pages) = self.reserved.swap_remove(index);
                if reserved_pages != pages {
                    // Give the exact size to the bookkeeping so unshare frees it.
                    self.free_pages_at(address, reserved_pages)?;
                    self.alloc_pages(pages)?
                } else {
                    address
                }
            }
            None => self.alloc_pages(pages)?,
        };
        self.stats.bounces += 1;
        if direction.copies_in() {
            // SAFETY: the caller promises `buffer` is readable; the destination
            // is a fresh pool allocation of at least `len` bytes, and the two
            // cannot overlap because guest buffers never live in the pool.
            unsafe { core::ptr::copy_nonoverlapping(buffer.as_ptr().cast::<u8>(), address as *mut u8, len) };
            self.stats.bytes_bounced += len as u64;
        }
        Ok(address)
    }

    /// Copies a bounce buffer back (for DeviceToDriver and Both) and frees it.
    ///
    /// # Safety
    ///
    /// `buffer` must be valid for writes of its length, and `address` must be
    /// what `bounce_in` returned for it.
    pub unsafe fn bounce_out(
        &mut self,
        address: u64,
        buffer: NonNull<[u8]>,
        direction: Direction,
    ) -> Result<(), DmaError> {
        let len = buffer.len();
        let pages = pages_for(len)?;
        match self.live.get(&address) {
            Some(&live_pages) if live_pages == pages => {}
            _ => return Err(DmaError::NotAllocated { address, pages }),
        }
        if direction.copies_out() {
            // SAFETY: `address` is a live allocation of `pages` pages, at least
            // `len` bytes; the caller promises `buffer` is writable.
            unsafe { core::ptr::copy_nonoverlapping(address as *const u8, buffer.as_ptr().cast::<u8>(), len) };
            self.stats.bytes_bounced += len as u64;
        }
        self.free_pages_at(address, pages)
    }
}

fn pages_for(len: usize) -> Result<usize, DmaError> {
    if len == 0 {
        return Err(DmaError::ZeroSize);
    }
    Ok(len.div_ceil(PAGE_SIZE as usize))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::alloc::{Layout, alloc_zeroed};

    /// Page-aligned host memory standing in for a pool (identity mapped, as
    /// on the target). Leaked: tests are short.
    pub(crate) fn host_pool_memory(pages: usize) -> Range {
        // Aligned to its own size, like the real pools, so that the buddy
        // allocator can hand out the whole pool as one block.
        let size = pages * PAGE_SIZE as usize;
        let layout = Layout::from_size_align(size, size.next_power_of_two()).unwrap();
        // SAFETY: non-zero size.
        let memory = unsafe { alloc_zeroed(layout) };
        assert!(!memory.is_null());
        Range::new(memory as u64, layout.size() as u64).unwrap()
    }

    fn fill(address: u64, len: usize, byte: u8) {
        // SAFETY: test memory of the pool.
        unsafe { core::ptr::write_bytes(address as *mut u8, byte, len) };
    }

    fn bytes(address: u64, len: usize) -> &'static [u8] {
        // SAFETY: test memory of the pool, read after writes are done.
        unsafe { core::slice::from_raw_parts(address as *const u8, len) }
    }

    #[test]
    fn allocations_are_page_aligned_zeroed_and_inside() {
        let mut pool = Pool::new(host_pool_memory(16)).unwrap();
        for pages in [1, 2, 3, 1] {
            let address = pool.alloc_pages(pages).unwrap();
            assert_eq!(address % PAGE_SIZE, 0);
            assert!(pool.contains(address, pages as u64 * PAGE_SIZE));
            assert!(bytes(address, pages * 4096).iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn unaligned_or_empty_pools_are_refused() {
        let memory = host_pool_memory(2);
        assert!(matches!(Pool::new(Range::new(memory.base + 8, 4096).unwrap()), Err(DmaError::BadPoolRange(_))));
        assert!(matches!(Pool::new(Range::new(memory.base, 100).unwrap()), Err(DmaError::BadPoolRange(_))));
        assert!(matches!(Pool::new(Range { base: memory.base, size: 0 }), Err(DmaError::BadPoolRange(_))));
    }

    #[test]
    fn exhaustion_is_a_typed_error() {
        let mut pool = Pool::new(host_pool_memory(4)).unwrap();
        pool.alloc_pages(4).unwrap();
        let error = pool.alloc_pages(1).unwrap_err();
        assert!(matches!(error, DmaError::Exhausted { requested_pages: 1, free_pages: 0, .. }), "{error}");
        assert_eq!(pool.stats().failed_allocations, 1);
        assert_eq!(pool.alloc_pages(0), Err(DmaError::ZeroSize));
    }

    #[test]
    fn double_and_foreign_frees_are_refused() {
        let mut pool = Pool::new(host_pool_memory(4)).unwrap();
        let address = pool.alloc_pages(1).unwrap();
        assert_eq!(pool.free_pages_at(address, 2), Err(DmaError::NotAllocated { address, pages: 2 }));
        pool.free_pages_at(address, 1).unwrap();
        assert_eq!(pool.free_pages_at(address, 1), Err(DmaError::NotAllocated { address, pages: 1 }));
        assert!(pool.free_pages_at(address + 4096, 1).is_err());
        assert_eq!(pool.free_pages(), 4);
    }

    #[test]
    fn freed_pages_come_back_zeroed() {
        let mut pool = Pool::new(host_pool_memory(1)).unwrap();
        let address = pool.alloc_pages(1).unwrap();
        fill(address, 4096, 0xa5);
        pool.free_pages_at(address, 1).unwrap();
        let again = pool.alloc_pages(1).unwrap();
        assert_eq!(again, address);
        assert!(bytes(again, 4096).iter().all(|&b| b == 0));
    }

    #[test]
    fn churn_does_not_leak_or_fragment_permanently() {
        let mut pool = Pool::new(host_pool_memory(64)).unwrap();
        let mut live = Vec::new();
        let mut seed = 0x1234_5678_u32;
        for round in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let pages = 1 + (seed % 4) as usize;
            if !seed.is_multiple_of(3) || live.is_empty() {
                match pool.alloc_pages(pages) {
                    Ok(address) => live.push((address, pages)),
                    Err(DmaError::Exhausted { .. }) => {}
                    Err(other) => panic!("round {round}: {other}"),
                }
            } else {
                let (address, pages) = live.swap_remove(seed as usize % live.len());
                pool.free_pages_at(address, pages).unwrap();
            }
            // No two live allocations overlap.
            let mut sorted = live.clone();
            sorted.sort();
            for pair in sorted.windows(2) {
                assert!(pair[0].0 + pair[0].1 as u64 * PAGE_SIZE <= pair[1].0, "overlap in round {round}");
            }
        }
        for (address, pages) in live.drain(..) {
            pool.free_pages_at(address, pages).unwrap();
        }
        assert_eq!(pool.free_pages(), 64);
        assert_eq!(pool.stats().bytes_in_use, 0);
        // Everything coalesced again: the whole pool is one allocation.
        pool.alloc_pages(64).unwrap();
        assert!(pool.stats().high_water_bytes >= 64 * PAGE_SIZE);
    }

    /// `bounce_in` of a live test buffer.
    fn bounce_in(pool: &mut Pool, data: &mut [u8], direction: Direction) -> u64 {
        // SAFETY: `data` is a live, exclusively borrowed buffer.
        unsafe { pool.bounce_in(NonNull::from(data), direction) }.unwrap()
    }

    /// `bounce_out` of a live test buffer.
    fn bounce_out(pool: &mut Pool, address: u64, data: &mut [u8], direction: Direction) {
        // SAFETY: `data` is a live, exclusively borrowed buffer, and `address`
        // is what `bounce_in` returned for it.
        unsafe { pool.bounce_out(address, NonNull::from(data), direction) }.unwrap()
    }

    #[test]
    fn bounce_directions_copy_the_right_way() {
        let mut pool = Pool::new(host_pool_memory(8)).unwrap();
        let mut source = *b"to the device";
        // DriverToDevice: copied in, not back.
        let address = bounce_in(&mut pool, &mut source, Direction::DriverToDevice);
        assert_eq!(bytes(address, source.len()), b"to the device");
        fill(address, source.len(), b'x');
        bounce_out(&mut pool, address, &mut source, Direction::DriverToDevice);
        assert_eq!(&source, b"to the device");

        // DeviceToDriver: the device sees zeroes, the driver gets what it wrote.
        let mut sink = [0xeeu8; 16];
        let address = bounce_in(&mut pool, &mut sink, Direction::DeviceToDriver);
        assert!(bytes(address, 16).iter().all(|&b| b == 0), "guest bytes leaked to the device");
        fill(address, 4, 7);
        bounce_out(&mut pool, address, &mut sink, Direction::DeviceToDriver);
        assert_eq!(sink, [7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

        // Both: in and out.
        let mut both = *b"abcd";
        let address = bounce_in(&mut pool, &mut both, Direction::Both);
        fill(address, 2, b'z');
        bounce_out(&mut pool, address, &mut both, Direction::Both);
        assert_eq!(&both, b"zzcd");
        let stats = pool.stats();
        assert_eq!(stats.bounces, 3);
        // In for DriverToDevice, out for DeviceToDriver, both ways for Both.
        assert_eq!(stats.bytes_bounced, 13 + 16 + 4 + 4);
        assert_eq!(stats.bytes_in_use, 0);
    }

    #[test]
    fn nothing_stale_reaches_a_later_buffer() {
        let mut pool = Pool::new(host_pool_memory(1)).unwrap();
        let mut secret = [0x5au8; 64];
        let address = bounce_in(&mut pool, &mut secret, Direction::DriverToDevice);
        bounce_out(&mut pool, address, &mut secret, Direction::DriverToDevice);
        // Same page again, for a device-to-driver buffer the device leaves alone.
        let mut sink = [0u8; 64];
        let again = bounce_in(&mut pool, &mut sink, Direction::DeviceToDriver);
        assert_eq!(again, address);
        bounce_out(&mut pool, again, &mut sink, Direction::DeviceToDriver);
        assert!(sink.iter().all(|&b| b == 0), "earlier bytes leaked");
    }

    #[test]
    fn reservations_guarantee_later_bounces() {
        let mut pool = Pool::new(host_pool_memory(2)).unwrap();
        pool.reserve(100).unwrap();
        pool.reserve(5000).unwrap_err(); // 2 pages do not fit beside the first
        pool.alloc_pages(1).unwrap(); // the pool is now full...
        let mut data = [1u8; 100];
        // ...but the reserved page still serves the bounce.
        let address = bounce_in(&mut pool, &mut data, Direction::DriverToDevice);
        bounce_out(&mut pool, address, &mut data, Direction::DriverToDevice);
        pool.reserve(10).unwrap();
        pool.release_reservations();
        assert_eq!(pool.free_pages(), 1);
    }
}
