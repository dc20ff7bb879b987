//! The global allocator: a buddy allocator over the private RAM that the
//! layout left free (RAM minus the image, the DTB, reserved memory and every
//! DMA pool). Nothing a device can reach is ever handed out from here.

#[cfg(feature = "image")]
use crate::platform::Range;

#[cfg(feature = "image")]
#[global_allocator]
static HEAP: buddy_system_allocator::LockedHeap<33> = buddy_system_allocator::LockedHeap::empty();

/// Gives free ranges to the heap; may be called again with more (the boot
/// adds RAM the boot map does not cover once the final map is live).
/// Returns the bytes added.
///
/// # Safety
///
/// The ranges must be normal, mapped RAM that nothing else uses, for the
/// rest of the program's life, and disjoint from ranges given before.
#[cfg(feature = "image")]
pub unsafe fn init(free: impl IntoIterator<Item = Range>) -> u64 {
    let mut heap = HEAP.lock();
    let mut total = 0;
    for range in free {
        let (Ok(start), Ok(end)) = (usize::try_from(range.base), usize::try_from(range.end())) else {
            continue;
        };
        // SAFETY: the caller promises the range is unused RAM.
        unsafe { heap.add_to_heap(start, end) };
        total += range.size;
    }
    total
}

/// Bytes allocated and bytes managed by the heap.
#[cfg(feature = "image")]
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}
