//! Restricted DMA: every ring and every buffer a device can touch lives in
//! the pool that the device tree binds it to (`memory-region`), like Linux's
//! swiotlb with `restricted-dma-pool`.
//!
//! Pools are registered in numbered slots, and a registered pool is named by
//! a [`PoolId`]: a handle that only [`register`], [`register_private_pool`]
//! and probing hand out, so whoever holds one holds a pool that exists
//! (pools are never unregistered). [`PoolHal<SLOT>`] is the
//! `virtio_drivers::Hal` of the device bound to slot `SLOT`. The Hal's
//! functions are static, so the slot has to be part of the type: a device
//! driver is `VirtIOBlk<PoolHal<2>, _>`, and [`with_pool_hal!`](crate::with_pool_hal!) turns a
//! [`PoolId`] into that type.
//!
//! How many slots there are is decided once, by the list given to `slots!`
//! below: [`MAX_POOLS`], the registry, the device tree's limit and the
//! slot enum `with_pool_hal!` matches on exhaustively all follow from it,
//! so a slot without a Hal does not compile.

mod hal;
mod pool;

pub use hal::PoolHal;
pub use pool::{Direction, DmaError, PAGE_SIZE, Pool, PoolStats};

use core::fmt;

use spin::{Mutex, Once};

use crate::platform::Range;

/// Declares the slots: the [`Slot`] enum and the list of all of them, from
/// one list of names.
macro_rules! slots {
    ($($slot:ident),+ $(,)?) => {
        /// A pool slot, as [`with_pool_hal!`](crate::with_pool_hal!) matches on it. Images name
        /// pools by [`PoolId`]; this is public only because the macro
        /// expands in images. Slot `Sn` is slot number `n`.
        #[doc(hidden)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Slot {
            $($slot),+
        }

        impl Slot {
            /// Every slot, in order: `ALL[n]` is slot `n`.
            const ALL: &[Slot] = &[$(Slot::$slot),+];
        }
    };
}

// Adding or removing a name here changes MAX_POOLS everywhere; the arms of
// `with_pool_hal!` must then follow, or nothing compiles.
slots!(S0, S1, S2, S3, S4, S5, S6, S7);

/// How many pools the runtime can manage at once: the registry's slots and
/// the Hal dispatch of [`with_pool_hal!`](crate::with_pool_hal!).
pub const MAX_POOLS: usize = Slot::ALL.len();

// The platform keeps one pool entry per slot (boot registers pool `n` in
// slot `n`): a mismatch must not compile.
const _: () = assert!(MAX_POOLS == crate::platform::MAX_POOLS, "dma slots and platform::MAX_POOLS differ");

impl Slot {
    /// The slot numbered `index`, if there is one.
    fn from_index(index: usize) -> Option<Slot> {
        Slot::ALL.get(index).copied()
    }

    fn index(self) -> usize {
        usize::from(self as u8)
    }
}

/// A registered pool. Pools are never unregistered, so a `PoolId` always
/// names a live pool: [`with_pool`] cannot fail, and [`with_pool_hal!`](crate::with_pool_hal!)
/// always has a Hal for it.
///
/// Only registration ([`register`], [`register_private_pool`]) and probing
/// hand these out; there is no constructor from a slot number. It prints as
/// its slot number, as messages and the exit counters name pools.
///
/// ```
/// fn hal_size(pool: tidepool::dma::PoolId) -> usize {
///     tidepool::with_pool_hal!(pool, |H| core::mem::size_of::<H>())
/// }
/// ```
///
/// A number is not a handle:
///
/// ```compile_fail,E0308
/// fn hal_size(slot: usize) -> usize {
///     tidepool::with_pool_hal!(slot, |H| core::mem::size_of::<H>())
/// }
/// ```
///
/// ```compile_fail,E0451
/// fn forge(slot: tidepool::dma::Slot) -> tidepool::dma::PoolId {
///     tidepool::dma::PoolId { slot, pool: todo!() }
/// }
/// ```
#[derive(Clone, Copy)]
pub struct PoolId {
    slot: Slot,
    pool: &'static Mutex<Pool>,
}

impl PoolId {
    /// The slot number (for boot-time pools: the index in
    /// `Platform::pools` and `Layout::pools`).
    pub fn index(self) -> usize {
        self.slot.index()
    }

    /// For [`with_pool_hal!`](crate::with_pool_hal!) only.
    #[doc(hidden)]
    pub fn __slot(self) -> Slot {
        self.slot
    }

    /// The pool's memory.
    pub fn range(self) -> Range {
        with_pool(self, |pool| pool.range())
    }

    /// The pool's counters.
    pub fn stats(self) -> PoolStats {
        with_pool(self, |pool| pool.stats())
    }

    /// Free pages right now.
    pub fn free_pages(self) -> usize {
        with_pool(self, |pool| pool.free_pages())
    }

    /// Sets aside room for a later bounce of up to `len` bytes
    /// ([`Pool::reserve`]): call before handing a buffer to a virtqueue.
    pub fn reserve(self, len: usize) -> Result<(), DmaError> {
        with_pool(self, |pool| pool.reserve(len))
    }

    /// Returns every unused reservation to the pool.
    pub fn release_reservations(self) {
        with_pool(self, |pool| pool.release_reservations())
    }
}

impl PartialEq for PoolId {
    fn eq(&self, other: &Self) -> bool {
        // One pool per slot, ever.
        self.slot == other.slot
    }
}

impl Eq for PoolId {}

impl fmt::Debug for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolId({})", self.index())
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.index())
    }
}

/// The registry: a slot is filled once and stays filled.
static POOLS: [Once<Mutex<Pool>>; MAX_POOLS] = [const { Once::new() }; MAX_POOLS];

/// Whether [`log_stats`] is registered with [`crate::exit::at_exit`].
static STATS_AT_EXIT: Once = Once::new();

/// Why a pool could not be registered or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// Slot number out of range.
    NoSuchSlot(usize),
    /// Nothing registered in the slot.
    Empty(usize),
    /// A pool is registered there already.
    Occupied(usize),
    /// The pool was refused: a range that is empty or not page aligned, a
    /// private pool of a bad size, or no heap memory for one.
    Pool(DmaError),
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::NoSuchSlot(slot) => write!(f, "DMA pool slot {slot} does not exist (max {MAX_POOLS})"),
            SlotError::Empty(slot) => write!(f, "DMA pool slot {slot} has no pool"),
            SlotError::Occupied(slot) => write!(f, "DMA pool slot {slot} is taken"),
            SlotError::Pool(error) => write!(f, "{error}"),
        }
    }
}

/// Registers a pool over `range` in slot `index` and returns its handle:
/// the checked conversion from a slot number (it fails for a slot that
/// does not exist or is taken).
pub fn register(index: usize, range: Range) -> Result<PoolId, SlotError> {
    let slot = Slot::from_index(index).ok_or(SlotError::NoSuchSlot(index))?;
    let cell = &POOLS[slot.index()];
    if cell.is_completed() {
        return Err(SlotError::Occupied(index));
    }
    let pool = Pool::new(range).map_err(SlotError::Pool)?;
    // Two registrations of one slot may race past the check above: only
    // the one whose pool went in gets a handle.
    let mut ours = false;
    let pool = cell.call_once(|| {
        ours = true;
        Mutex::new(pool)
    });
    if !ours {
        return Err(SlotError::Occupied(index));
    }
    STATS_AT_EXIT.call_once(|| {
        if let Err(error) = crate::exit::at_exit(log_stats) {
            log::warn!("DMA pool counters will not be printed at exit: {error}");
        }
    });
    Ok(PoolId { slot, pool })
}

/// Carves a pool of `bytes` (a power of two, at least a page) out of
/// private RAM and registers it in slot `index`, for
/// `virtio::probe::DmaPolicy::Unrestricted`: on a tree that declares
/// no restricted-dma-pool, devices still get memory of their own rather
/// than the general heap. The memory is never returned.
pub fn register_private_pool(index: usize, bytes: usize) -> Result<PoolId, SlotError> {
    let too_small = SlotError::Pool(DmaError::ZeroSize);
    if bytes < PAGE_SIZE as usize || !bytes.is_power_of_two() {
        return Err(too_small);
    }
    // Checked before memory is taken: a refused slot would leak it.
    let slot = Slot::from_index(index).ok_or(SlotError::NoSuchSlot(index))?;
    if POOLS[slot.index()].is_completed() {
        return Err(SlotError::Occupied(index));
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
    register(index, Range { base: memory as u64, size: bytes as u64 })
}

/// The handle of the pool registered in slot `index`, if one is: how
/// probing turns the tree's pool index (boot registers tree pool `n` in
/// slot `n`) into the handle a device carries. (Probing exists on the
/// bare-metal target only.)
#[cfg(any(target_os = "none", test))]
pub(crate) fn registered(index: usize) -> Option<PoolId> {
    let slot = Slot::from_index(index)?;
    POOLS[slot.index()].get().map(|pool| PoolId { slot, pool })
}

/// Runs `f` on the pool `pool` names.
pub fn with_pool<T>(pool: PoolId, f: impl FnOnce(&mut Pool) -> T) -> T {
    f(&mut pool.pool.lock())
}

/// Runs `f` on the pool in slot `index`: for [`PoolHal`], whose slot is a
/// number in its type rather than a handle.
fn with_slot<T>(index: usize, f: impl FnOnce(&mut Pool) -> T) -> Result<T, SlotError> {
    let cell = POOLS.get(index).ok_or(SlotError::NoSuchSlot(index))?;
    let pool = cell.get().ok_or(SlotError::Empty(index))?;
    Ok(f(&mut pool.lock()))
}

/// The statistics of every registered pool, by slot.
pub fn all_stats() -> impl Iterator<Item = (PoolId, Range, PoolStats)> {
    Slot::ALL.iter().filter_map(|&slot| {
        let pool = POOLS[slot.index()].get()?;
        let guard = pool.lock();
        Some((PoolId { slot, pool }, guard.range(), guard.stats()))
    })
}

/// Prints every used pool's counters. The runtime does this whenever the
/// image ends, failures included (those are the runs where the numbers
/// matter most; [`register`] hands it to [`crate::exit::at_exit`]), so it
/// must not wait: a pool whose lock is held (the image died inside a pool
/// operation) is reported as busy instead.
pub fn log_stats() {
    for (slot, cell) in POOLS.iter().enumerate() {
        let Some(lock) = cell.get() else { continue };
        let Some(pool) = lock.try_lock() else {
            crate::console::emergency_print(format_args!("tidepool: DMA pool {slot}: busy, no counters\n"));
            continue;
        };
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

/// Evaluates `$body` with `$hal` bound to the [`PoolHal`] of `$pool` (a
/// [`PoolId`]), and returns its value.
///
/// This is how an image names the Hal of a device's pool: the slot is in
/// the Hal's type, and `$pool` is only known at run time. `$body` is
/// expanded once per slot (each with its own `$hal`), so it must have the
/// same type in every expansion; `?` and `return` in it act on the
/// enclosing function. See [`PoolHal`] for a driver run this way.
///
/// Every slot has an arm: the match below is on [`Slot`] and has no
/// wildcard, so a slot added to `slots!` without an arm here does not
/// compile (the runtime itself expands this macro, see `hal.rs`), and each
/// arm's Hal is computed from its own slot, so no arm can name another
/// slot's Hal.
#[macro_export]
macro_rules! with_pool_hal {
    ($pool:expr, |$hal:ident| $body:expr) => {{
        macro_rules! __tidepool_arm {
            ($slot:ident) => {{
                type $hal = $crate::dma::PoolHal<{ $crate::dma::Slot::$slot as usize }>;
                $body
            }};
        }
        match $crate::dma::PoolId::__slot($pool) {
            $crate::dma::Slot::S0 => __tidepool_arm!(S0),
            $crate::dma::Slot::S1 => __tidepool_arm!(S1),
            $crate::dma::Slot::S2 => __tidepool_arm!(S2),
            $crate::dma::Slot::S3 => __tidepool_arm!(S3),
            $crate::dma::Slot::S4 => __tidepool_arm!(S4),
            $crate::dma::Slot::S5 => __tidepool_arm!(S5),
            $crate::dma::Slot::S6 => __tidepool_arm!(S6),
            $crate::dma::Slot::S7 => __tidepool_arm!(S7),
        }
    }};
}
