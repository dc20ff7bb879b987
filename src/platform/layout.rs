//! Memory plan: where each pool goes and what RAM is left for the private
//! heap. A shared rule: it reads only the model, whatever source built it,
//! and its errors name the pool's origin.

use core::fmt;

use arrayvec::ArrayVec;

use super::model::{MAX_MEMORY_RANGES, MAX_POOLS, MAX_RESERVED, Placement, Platform, Pool};
use super::{ErrorKind, Origin, PAGE_SIZE, PlatformError, Range, page_span, ram_covers};

/// Image, the loader's input, reservations and pools that are taken out of
/// RAM.
const MAX_TAKEN: usize = 2 + MAX_RESERVED + MAX_POOLS;
/// Each taken range splits at most one free range in two, so this many
/// free ranges always suffice.
pub const MAX_FREE_RANGES: usize = MAX_MEMORY_RANGES + MAX_TAKEN;
/// RAM split by every `no-map` reservation, plus a pool each.
pub const MAX_NORMAL_RANGES: usize = MAX_MEMORY_RANGES + MAX_RESERVED + MAX_POOLS;

/// How errors and the boot's map name the image, which no source
/// describes.
pub const IMAGE: Origin = Origin::Runtime("(image)");
/// How errors and the boot's map name the loader's device tree, which no
/// source describes either.
pub const DEVICE_TREE: Origin = Origin::Runtime("(device tree)");

/// Result of [`layout`].
#[derive(Clone, Debug)]
pub struct Layout {
    pools: ArrayVec<Result<Range, PlatformError>, MAX_POOLS>,
    free: ArrayVec<Range, MAX_FREE_RANGES>,
    normal: ArrayVec<Range, MAX_NORMAL_RANGES>,
}

impl Layout {
    /// Where each pool is, indexed like [`Platform::pools`]; `Err` for a
    /// pool that must not be used (nor its devices).
    pub fn pools(&self) -> &[Result<Range, PlatformError>] {
        &self.pools
    }

    /// Where pool `index` is (as [`Layout::pools`]); `None` for an index past the last pool.
    pub fn pool(&self, index: usize) -> Option<&Result<Range, PlatformError>> {
        self.pools.get(index)
    }

    /// RAM left for the private heap: page-aligned, sorted, disjoint, and
    /// clear of the image, the tree, reserved memory and every pool.
    pub fn free_ranges(&self) -> &[Range] {
        &self.free
    }

    /// Bytes of [`Layout::free_ranges`] together.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|range| range.size).fold(0, u64::saturating_add)
    }

    /// What the final map makes normal memory: RAM without the whole pages
    /// of every `no-map` reservation (`no-map` means no mapping at all, so
    /// not even speculative accesses reach it; a driver that owns such a
    /// range maps it itself later, as hostmem does its regions), plus every
    /// placed pool. Sorted.
    ///
    /// Pools are the exception to `no-map`: the runtime bounces every DMA
    /// buffer through them, so they are always mapped, whatever the source
    /// says. (They are not [`super::Reserved`] entries, and pools are
    /// whole pages clear of every reservation, so a pool is listed on its
    /// own only if that ever changes; the ranges are then not disjoint.)
    pub fn normal_memory(&self) -> &[Range] {
        &self.normal
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, pool) in self.pools.iter().enumerate() {
            match pool {
                Ok(range) => writeln!(f, "pool {index}: {range}")?,
                Err(error) => writeln!(f, "pool {index}: unusable: {error}")?,
            }
        }
        write!(f, "free:")?;
        for range in &self.free {
            write!(f, " {range}")?;
        }
        writeln!(f, " ({} KiB)", self.free_bytes() / 1024)
    }
}

/// Plans memory. Fixed pools are checked against the image, the tree,
/// reserved memory and the pools before them; dynamic pools are then
/// placed at the highest free address that fits (as Linux does), inside
/// their `alloc-ranges` if any, aligned to their alignment and at least a
/// page, and clear of every range a pool declares, usable or not. A pool
/// that conflicts or does not fit gets an error; errors from discovery
/// carry over. The heap gets the rest of RAM, whole pages only.
pub fn layout(platform: &Platform, image: Range, dtb: Range) -> Layout {
    let mut taken: ArrayVec<(Range, Origin), MAX_TAKEN> = ArrayVec::new();
    let reserved = platform.reserved().iter().map(|reserved| (reserved.range, reserved.origin));
    let fixed = [(image, IMAGE), (dtb, DEVICE_TREE)];
    for entry in fixed.into_iter().chain(reserved) {
        // MAX_TAKEN counts the image, the tree and every reservation.
        let _ = taken.try_push(entry);
    }

    let mut pools: ArrayVec<Result<Range, PlatformError>, MAX_POOLS> = ArrayVec::new();
    for pool in platform.pools() {
        let result = match &pool.placement {
            Err(error) => Err(*error),
            Ok(Placement::Fixed(range)) => claim(&mut taken, pool, *range),
            // Placed below, once every fixed pool has its place.
            Ok(Placement::Dynamic { .. }) => Err(PlatformError::new(pool.origin, "size", ErrorKind::MissingNode)),
        };
        let _ = pools.try_push(result);
    }
    // An unusable fixed pool is still memory the host considers shared: no
    // dynamic pool (nor the heap) may go there.
    for pool in platform.pools() {
        if let Some(declared) = pool.declared
            && !taken.iter().any(|(range, _)| *range == declared)
        {
            // MAX_TAKEN counts one entry per pool.
            let _ = taken.try_push((declared, pool.origin));
        }
    }
    for (pool, result) in platform.pools().iter().zip(pools.iter_mut()) {
        if let Ok(placement @ Placement::Dynamic { size, alloc_ranges, .. }) = &pool.placement {
            let alignment = placement.alignment();
            *result = match place(platform.memory(), alloc_ranges, *size, alignment, &taken) {
                Some(range) => claim(&mut taken, pool, range),
                None => Err(PlatformError::new(pool.origin, "size", ErrorKind::NoSpace { size: *size, alignment })),
            };
        }
    }

    let normal = normal_memory(platform, &pools);
    Layout { pools, free: free_ranges(platform.memory(), &mut taken), normal }
}

/// See [`Layout::normal_memory`].
fn normal_memory(platform: &Platform, pools: &[Result<Range, PlatformError>]) -> ArrayVec<Range, MAX_NORMAL_RANGES> {
    let mut holes: ArrayVec<Range, MAX_RESERVED> = ArrayVec::new();
    for reserved in platform.reserved().iter().filter(|reserved| reserved.no_map) {
        // Same capacity as the platform's list.
        let _ = holes.try_push(page_span(reserved.range));
    }
    holes.sort_unstable();
    let mut normal: ArrayVec<Range, MAX_NORMAL_RANGES> = ArrayVec::new();
    for ram in platform.memory() {
        let mut cursor = ram.base;
        for hole in holes.iter().filter(|hole| hole.overlaps(ram)) {
            if hole.base > cursor {
                // Each hole splits RAM at most once: within capacity.
                let _ = normal.try_push(Range { base: cursor, size: hole.base - cursor });
            }
            cursor = cursor.max(hole.end());
        }
        if cursor < ram.end() {
            let _ = normal.try_push(Range { base: cursor, size: ram.end() - cursor });
        }
    }
    for pool in pools.iter().filter_map(|pool| pool.as_ref().ok()) {
        if !ram_covers(&normal, *pool) {
            let _ = normal.try_push(*pool);
        }
    }
    normal.sort_unstable();
    normal
}

/// Takes `range` for `pool` unless something already has part of it.
fn claim(taken: &mut ArrayVec<(Range, Origin), MAX_TAKEN>, pool: &Pool, range: Range) -> Result<Range, PlatformError> {
    if let Some((other_range, other)) = taken.iter().find(|(other, _)| other.overlaps(&range)) {
        let kind = ErrorKind::Overlap { range, other: *other, other_range: *other_range };
        return Err(PlatformError::new(pool.origin, "reg", kind));
    }
    taken
        .try_push((range, pool.origin))
        .map_err(|_| PlatformError::new(pool.origin, "reg", ErrorKind::TooManyEntries { limit: MAX_TAKEN as u32 }))?;
    Ok(range)
}

/// The highest free, aligned place for `size` bytes in RAM, inside one of
/// `allowed` (anywhere in RAM if empty).
fn place(memory: &[Range], allowed: &[Range], size: u64, alignment: u64, taken: &[(Range, Origin)]) -> Option<Range> {
    let allowed = if allowed.is_empty() { memory } else { allowed };
    let mut best: Option<Range> = None;
    for window in allowed.iter().flat_map(|allowed| memory.iter().filter_map(|ram| allowed.intersection(ram))) {
        if let Some(candidate) = highest_fit(window, size, alignment, taken)
            && best.is_none_or(|best| candidate.base > best.base)
        {
            best = Some(candidate);
        }
    }
    best
}

/// Tries the top of `window` and moves below whatever is in the way. Each
/// step passes one taken range for good, so it ends within `taken.len() + 1`
/// steps.
fn highest_fit(window: Range, size: u64, alignment: u64, taken: &[(Range, Origin)]) -> Option<Range> {
    let mut top = window.end();
    loop {
        let base = align_down(top.checked_sub(size)?, alignment);
        if base < window.base {
            return None;
        }
        let candidate = Range::new(base, size).ok()?;
        let blocker = taken.iter().filter(|(range, _)| range.overlaps(&candidate)).map(|(range, _)| range.base).min();
        match blocker {
            None => return Some(candidate),
            Some(blocker) => top = blocker,
        }
    }
}

/// RAM minus everything taken, in whole pages.
fn free_ranges(memory: &[Range], taken: &mut [(Range, Origin)]) -> ArrayVec<Range, MAX_FREE_RANGES> {
    taken.sort_unstable_by_key(|(range, _)| *range);
    let mut free = ArrayVec::new();
    let mut add = |start: u64, end: u64| {
        let (Some(start), end) = (align_up(start, PAGE_SIZE), align_down(end, PAGE_SIZE)) else {
            return;
        };
        if start < end {
            // See MAX_FREE_RANGES: there is always room.
            let _ = free.try_push(Range { base: start, size: end - start });
        }
    };
    for ram in memory {
        let mut cursor = ram.base;
        for (range, _) in taken.iter().filter(|(range, _)| range.overlaps(ram)) {
            if range.base > cursor {
                add(cursor, range.base);
            }
            cursor = cursor.max(range.end());
        }
        if cursor < ram.end() {
            add(cursor, ram.end());
        }
    }
    free
}

/// `alignment` is a power of two.
fn align_down(value: u64, alignment: u64) -> u64 {
    value & !(alignment - 1)
}

fn align_up(value: u64, alignment: u64) -> Option<u64> {
    Some(value.checked_add(alignment - 1)? & !(alignment - 1))
}
