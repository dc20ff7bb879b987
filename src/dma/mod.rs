//! Restricted DMA: every ring and every buffer a device can touch lives in
//! the pool that the device tree binds it to (`memory-region`), like Linux's
//! swiotlb with `restricted-dma-pool`.
//!
//! Pools are registered in numbered slots; [`PoolHal<SLOT>`] is the
//! `virtio_drivers::Hal` of the device bound to slot `SLOT`. The Hal's
//! functions are static, so the slot has to be part of the type: a device
//! driver is `VirtIOBlk<PoolHal<2>, _>`, and [`with_pool_hal!`] turns a
//! runtime slot number into that type.

mod hal;
mod pool;

pub use hal::PoolHal;
pub use pool::{Direction, DmaError, PAGE_SIZE, Pool, PoolStats};

use spin::Mutex;

use crate::platform::Range;

/// How many pools the runtime can manage at once.
pub const MAX_POOLS: usize = 8;

static POOLS: [Mutex<Option<Pool>>; MAX_POOLS] = [const { Mutex::new(None) }; MAX_POOLS];

/// Whether [`log_stats`] is registered with [`crate::exit::at_exit`].
static STATS_AT_EXIT: spin::Once = spin::Once::new();

/// Why a pool could not be registered or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Slot number out of range.
    NoSuchSlot(usize),
    /// Nothing registered in the slot.
    Empty(usize),
    /// A pool is registered there already.
    Occupied(usize),
    Pool(DmaError),
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlotError::NoSuchSlot(slot) => write!(f, "DMA pool slot {slot} does not exist (max {MAX_POOLS})"),
            SlotError::Empty(slot) => write!(f, "DMA pool slot {slot} has no pool"),
            SlotError::Occupied(slot) => write!(f, "DMA pool slot {slot} is taken"),
            SlotError::Pool(error) => write!(f, "{error}"),
        }
    }
}

fn slot(index: usize) -> Result<&'static Mutex<Option<Pool>>, SlotError> {
    POOLS.get(index).ok_or(SlotError::NoSuchSlot(index))
}

/// Registers a pool over `range` in slot `index`.
pub fn register(index: usize, range: Range) -> Result<(), SlotError> {
    let mut slot = slot(index)?.lock();
    if slot.is_some() {
        return Err(SlotError::Occupied(index));
    }
    *slot = Some(Pool::new(range).map_err(SlotError::Pool)?);
    STATS_AT_EXIT.call_once(|| {
        if let Err(error) = crate::exit::at_exit(log_stats) {
            log::warn!("DMA pool counters will not be printed at exit: {error}");
        }
    });
    Ok(())
}

/// Carves a pool of `bytes` (a power of two, at least a page) out of
/// private RAM and registers it in slot `index`, for
/// [`crate::virtio::probe::DmaPolicy::Unrestricted`]: on a tree that declares
/// no restricted-dma-pool, devices still get memory of their own rather
/// than the general heap. The memory is never returned.
pub fn register_private_pool(index: usize, bytes: usize) -> Result<Range, SlotError> {
    let too_small = SlotError::Pool(DmaError::ZeroSize);
    if bytes < PAGE_SIZE as usize || !bytes.is_power_of_two() {
        return Err(too_small);
    }
    // Aligned to its size, so the buddy allocator can use all of it.
    let layout = core::alloc::Layout::from_size_align(bytes, bytes).map_err(|_| too_small.clone())?;
    // SAFETY: the layout has a non-zero size.
    let memory = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if memory.is_null() {
        return Err(SlotError::Pool(DmaError::Exhausted {
            pool: Range { base: 0, size: bytes as u64 },
            requested_pages: bytes / PAGE_SIZE as usize,
            free_pages: 0,
        }));
    }
    let range = Range { base: memory as u64, size: bytes as u64 };
    register(index, range)?;
    Ok(range)
}

/// Runs `f` on the pool in slot `index`.
pub fn with_pool<T>(index: usize, f: impl FnOnce(&mut Pool) -> T) -> Result<T, SlotError> {
    let mut slot = slot(index)?.lock();
    let pool = slot.as_mut().ok_or(SlotError::Empty(index))?;
    Ok(f(pool))
}

/// The statistics of every registered pool, by slot.
pub fn all_stats() -> impl Iterator<Item = (usize, Range, PoolStats)> {
    POOLS
        .iter()
        .enumerate()
        .filter_map(|(index, slot)| slot.lock().as_ref().map(|pool| (index, pool.range(), pool.stats())))
}

/// Prints every used pool's counters. The runtime does this whenever the
/// image ends, failures included (those are the runs where the numbers
/// matter most; [`register`] hands it to [`crate::exit::at_exit`]), so it
/// must not wait: a pool whose lock is held (the image died inside a pool
/// operation) is reported as busy instead.
pub fn log_stats() {
    for (slot, lock) in POOLS.iter().enumerate() {
        let Some(guard) = lock.try_lock() else {
            crate::console::emergency_print(format_args!("tidepool: DMA pool {slot}: busy, no counters\n"));
            continue;
        };
        let Some(pool) = guard.as_ref() else { continue };
        let (range, stats) = (pool.range(), pool.stats());
        if stats.allocations == 0 {
            continue;
        }
        crate::console::emergency_print(format_args!(
            "tidepool: DMA pool {slot} {:#x}..{:#x}: {} bytes in use, high water {} bytes, {} allocations ({} failed), {} bounces, {} bytes bounced\n",
            range.base,
            range.end(),
            stats.bytes_in_use,
            stats.high_water_bytes,
            stats.allocations,
            stats.failed_allocations,
            stats.bounces,
            stats.bytes_bounced
        ));
    }
}

/// Calls `$body` with `$hal` bound to `PoolHal<N>` for the runtime slot
/// number `$slot` (a `usize`). Evaluates to `Err(SlotError::NoSuchSlot)` for
/// slots beyond [`MAX_POOLS`], else `Ok($body)`.
#[macro_export]
macro_rules! with_pool_hal {
    ($slot:expr, |$hal:ident| $body:expr) => {{
        macro_rules! __tidepool_arm {
            ($n:literal) => {{
                type $hal = $crate::dma::PoolHal<$n>;
                Ok($body)
            }};
        }
        match $slot {
            0 => __tidepool_arm!(0),
            1 => __tidepool_arm!(1),
            2 => __tidepool_arm!(2),
            3 => __tidepool_arm!(3),
            4 => __tidepool_arm!(4),
            5 => __tidepool_arm!(5),
            6 => __tidepool_arm!(6),
            7 => __tidepool_arm!(7),
            other => Err($crate::dma::SlotError::NoSuchSlot(other)),
        }
    }};
}
