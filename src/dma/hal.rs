//! `virtio_drivers::Hal` over a registered pool.

use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use super::{Direction, with_slot};

/// The Hal of a device bound to pool slot `SLOT`. Name it from a
/// [`super::PoolId`] with [`crate::with_pool_hal!`].
///
/// virtio-drivers' `dma_alloc` and `share` cannot fail. Running out of pool
/// is therefore checked before the driver is asked to do anything: callers
/// check capacity before creating queues and `Pool::reserve` before handing
/// a buffer over. Reaching an empty pool here anyway is a bug in the caller,
/// and ends the image with a report rather than handing the device memory
/// outside the pool.
///
/// A stock virtio-drivers driver on a probed device (`device.pool`,
/// `device.transport`): its rings come from the pool, and every buffer it
/// hands the device is bounced through the pool, so the device never sees
/// other guest memory.
///
/// ```no_run
/// use tidepool::dma::PoolId;
/// use virtio_drivers::device::rng::VirtIORng;
/// use virtio_drivers::transport::Transport;
///
/// /// Fills `buffer` from a virtio-rng device bound to `pool`; the bytes it got.
/// fn entropy<T: Transport>(pool: PoolId, transport: T, buffer: &mut [u8]) -> Option<usize> {
///     tidepool::with_pool_hal!(pool, |H| {
///         // The queue's rings: `Hal::dma_alloc`, from the pool.
///         let mut rng = VirtIORng::<H, T>::new(transport).ok()?;
///         // Room for the bounce copy of `buffer`, so `Hal::share` cannot find the pool empty.
///         pool.reserve(buffer.len()).ok()?;
///         let got = rng.request_entropy(buffer).ok()?;
///         // The used length comes from the device: clamp it.
///         Some(got.min(buffer.len()))
///     })
/// }
/// ```
pub struct PoolHal<const SLOT: usize>;

impl From<BufferDirection> for Direction {
    fn from(direction: BufferDirection) -> Self {
        match direction {
            BufferDirection::DriverToDevice => Direction::DriverToDevice,
            BufferDirection::DeviceToDriver => Direction::DeviceToDriver,
            BufferDirection::Both => Direction::Both,
        }
    }
}

fn fatal(slot: usize, what: &str, error: &dyn core::fmt::Display) -> ! {
    crate::console::emergency_print(format_args!(
        "tidepool: DMA pool {slot}: {what} failed: {error} (capacity must be checked before the driver call)\n"
    ));
    crate::exit::exit(crate::exit::FAILURE)
}

// SAFETY: every address returned is a page-aligned allocation from the
// pool, which is identity-mapped normal memory reserved for DMA and used by
// nothing else; allocations do not alias (the pool tracks them) and are
// zeroed; `share` returns a private bounce copy that lives until `unshare`.
unsafe impl<const SLOT: usize> Hal for PoolHal<SLOT> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let address = match with_slot(SLOT, |pool| pool.alloc_pages(pages)) {
            Ok(Ok(address)) => address,
            Ok(Err(error)) => fatal(SLOT, "dma_alloc", &error),
            Err(error) => fatal(SLOT, "dma_alloc", &error),
        };
        match NonNull::new(address as *mut u8) {
            Some(pointer) => (address, pointer),
            None => fatal(SLOT, "dma_alloc", &"the pool handed out address 0"),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match with_slot(SLOT, |pool| pool.free_pages_at(paddr, pages)) {
            Ok(Ok(())) => 0,
            Ok(Err(error)) => {
                log::error!("DMA pool {SLOT}: dma_dealloc: {error}");
                -1
            }
            Err(error) => {
                log::error!("dma_dealloc: {error}");
                -1
            }
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport calls this; our MMIO transport never does.
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        // SAFETY: virtio-drivers promises the buffer is valid and unaliased
        // for the call.
        match with_slot(SLOT, |pool| unsafe { pool.bounce_in(buffer, direction.into()) }) {
            Ok(Ok(address)) => address,
            Ok(Err(error)) => fatal(SLOT, "share", &error),
            Err(error) => fatal(SLOT, "share", &error),
        }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: as for share; `paddr` is what share returned for it.
        match with_slot(SLOT, |pool| unsafe { pool.bounce_out(paddr, buffer, direction.into()) }) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => fatal(SLOT, "unshare", &error),
            Err(error) => fatal(SLOT, "unshare", &error),
        }
    }
}

/// The runtime expands `with_pool_hal!` itself, so that a slot without an
/// arm fails to compile here rather than in an image.
const _: () = {
    fn _every_slot_has_a_hal(pool: super::PoolId) -> usize {
        crate::with_pool_hal!(pool, |H| core::mem::size_of::<H>())
    }
};

#[cfg(test)]
mod tests {
    use super::super::pool::tests::host_pool_memory;
    use core::any::TypeId;

    use super::super::{MAX_POOLS, SlotError, all_stats, register, registered};
    use super::*;

    // Each test uses its own slot: the registry is global.

    #[test]
    fn dma_alloc_comes_from_the_pool_zeroed() {
        let memory = host_pool_memory(8);
        register(5, memory).unwrap();
        let (paddr, vaddr) = PoolHal::<5>::dma_alloc(2, BufferDirection::Both);
        assert!(memory.contains_range(&crate::platform::Range::new(paddr, 8192).unwrap()));
        assert_eq!(paddr % 4096, 0);
        // SAFETY: two pages just allocated.
        let bytes = unsafe { core::slice::from_raw_parts(vaddr.as_ptr(), 8192) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: the allocation above, freed once; the second call is the
        // double free the Hal must refuse without touching memory.
        assert_eq!(unsafe { PoolHal::<5>::dma_dealloc(paddr, vaddr, 2) }, 0);
        // SAFETY: see above.
        assert_eq!(unsafe { PoolHal::<5>::dma_dealloc(paddr, vaddr, 2) }, -1, "double free must be refused");
    }

    #[test]
    fn share_bounces_and_unshare_copies_back() {
        let memory = host_pool_memory(4);
        let pool = register(6, memory).unwrap();
        let mut request = *b"read sector 7";
        // SAFETY: here and in the calls below, live, exclusively borrowed
        // buffers, unshared with the address share returned for them.
        let paddr = unsafe { PoolHal::<6>::share(NonNull::from(&mut request[..]), BufferDirection::DriverToDevice) };
        assert_ne!(paddr, request.as_ptr() as u64, "the device must get a copy");
        assert!(memory.contains_range(&crate::platform::Range::new(paddr, 13).unwrap()));
        let mut response = [0u8; 8];
        // SAFETY: as above.
        let out = unsafe { PoolHal::<6>::share(NonNull::from(&mut response[..]), BufferDirection::DeviceToDriver) };
        // SAFETY: the bounce buffer of `response`, written as a device would.
        unsafe { core::ptr::copy_nonoverlapping(b"answer!!".as_ptr(), out as *mut u8, 8) };
        // SAFETY: as for share above.
        unsafe { PoolHal::<6>::unshare(out, NonNull::from(&mut response[..]), BufferDirection::DeviceToDriver) };
        // SAFETY: as for share above.
        unsafe { PoolHal::<6>::unshare(paddr, NonNull::from(&mut request[..]), BufferDirection::DriverToDevice) };
        assert_eq!(&response, b"answer!!");
        let stats = super::super::with_pool(pool, |pool| pool.stats());
        assert_eq!((stats.bounces, stats.bytes_bounced, stats.bytes_in_use), (2, 13 + 8, 0));
    }

    #[test]
    fn slots_are_checked() {
        assert_eq!(register(99, host_pool_memory(1)), Err(SlotError::NoSuchSlot(99)));
        assert_eq!(register(MAX_POOLS, host_pool_memory(1)), Err(SlotError::NoSuchSlot(MAX_POOLS)));
        let pool = register(7, host_pool_memory(1)).unwrap();
        assert_eq!(register(7, host_pool_memory(1)), Err(SlotError::Occupied(7)));
        assert_eq!(registered(7), Some(pool));
        assert_eq!(
            (pool.index(), alloc::format!("{pool}"), alloc::format!("{pool:?}")),
            (7, "7".into(), "PoolId(7)".into())
        );
        // The Hal of a handle is its slot's, and the dispatch is total: no
        // error case.
        let hal: TypeId = crate::with_pool_hal!(pool, |H| TypeId::of::<H>());
        assert_eq!(hal, TypeId::of::<PoolHal<7>>());
    }

    #[test]
    fn every_slot_dispatches_to_its_own_hal() {
        // Slots 0 to 2 are used by no other unit test.
        for index in 0..3 {
            let pool = register(index, host_pool_memory(1)).unwrap();
            let hal = crate::with_pool_hal!(pool, |H| TypeId::of::<H>());
            let expected = [TypeId::of::<PoolHal<0>>(), TypeId::of::<PoolHal<1>>(), TypeId::of::<PoolHal<2>>()];
            assert_eq!(hal, expected[index], "slot {index}");
        }
        // Whatever else is registered by now maps the same way.
        for (pool, _, _) in all_stats() {
            let hal = crate::with_pool_hal!(pool, |H| core::any::type_name::<H>());
            assert!(hal.ends_with(&alloc::format!("PoolHal<{}>", pool.index())), "{hal} for {pool:?}");
        }
    }

    #[test]
    fn the_registry_and_the_tree_agree_on_the_capacity() {
        assert_eq!(crate::platform::MAX_POOLS, MAX_POOLS);
        assert_eq!(registered(MAX_POOLS), None);
    }
}
