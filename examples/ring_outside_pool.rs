//! Test image for `tests/hostmem.rs`: the hostmem device's first ring lies
//! outside its restricted DMA pool, and the backend must catch it.
//!
//! The sabotage is this image's own Hal, [`FirstRingOutside`], around the
//! runtime's pool Hal: its first `dma_alloc` takes the pages from the pool
//! as usual (so the driver's pool accounting sees nothing wrong) but hands
//! the device zeroed heap memory instead. The backend can map only the pool
//! and the regions, so it cannot serve that ring, and the echo below fails.
#![no_std]
#![no_main]

extern crate alloc;

use core::fmt::Display;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use hostmem_wire::echo;
use spin::Mutex;
use tidepool::hostmem::{Hostmem, Notification, Options};
use tidepool::virtio::probe::{self, Device, DmaPolicy};
use tidepool::{Boot, TestFailure, TestResult, ensure};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

tidepool::test_image!(echo_with_the_first_ring_outside_the_pool);

const TIMEOUT: Duration = Duration::from_secs(10);

fn fail(error: impl Display) -> TestFailure {
    TestFailure(alloc::format!("{error}"))
}

fn echo_with_the_first_ring_outside_the_pool(boot: &Boot) -> TestResult {
    let id = hostmem_wire::DEVICE_ID_DEFAULT;
    let device = probe::find(boot, DmaPolicy::Strict, id).ok_or_else(|| fail("no hostmem device"))?;
    let pool = device.pool;
    tidepool::with_pool_hal!(pool, |H| copy_through::<FirstRingOutside<H>>(device, boot))
}

/// One echo COPY through the region, as `hostmem_echo` does.
fn copy_through<H: Hal>(device: Device, boot: &Boot) -> TestResult {
    let mut hostmem = Hostmem::<H>::new(device, boot, Options::default()).map_err(fail)?;
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).map_err(fail)?;
    let instance = hostmem.create_instance(sub, Some(0)).map_err(fail)?;
    hostmem.region(sub).map_err(fail)?.write(4096, b"misplaced").map_err(fail)?;
    let copy = Notification {
        opcode: echo::Op::Copy.into(),
        offset: 4096,
        size: 9,
        metadata: echo::CopyMeta::new(8192).to_metadata(),
        want_event: false,
    };
    let seq = hostmem.notify(&instance, copy).map_err(fail)?;
    hostmem.wait_completion(&instance, seq, TIMEOUT).map_err(fail)?;
    let mut back = [0u8; 9];
    hostmem.region(sub).map_err(fail)?.read(8192, &mut back).map_err(fail)?;
    ensure!(&back == b"misplaced", "the echoed bytes differ");
    Ok(())
}

/// `H`, except that the first `dma_alloc` hands the device heap memory
/// instead of the pool pages it took from `H`.
struct FirstRingOutside<H>(PhantomData<H>);

/// The one misplaced ring. Statics are shared by every `H`: the image
/// misplaces one ring in all.
struct Misplaced {
    heap: PhysAddr,
    pool: PhysAddr,
    pool_pointer: usize,
    pages: usize,
}

static TAKEN: AtomicBool = AtomicBool::new(false);
static MISPLACED: Mutex<Option<Misplaced>> = Mutex::new(None);

fn ring_layout(pages: usize) -> Option<core::alloc::Layout> {
    core::alloc::Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: every call but the first `dma_alloc` is `H`'s. That one returns
// zeroed, page-aligned heap memory that nothing else uses until
// `dma_dealloc` frees it; RAM is identity-mapped, so its address is its
// physical address. It is valid memory for the driver, only not in the pool,
// which is what the test is about.
unsafe impl<H: Hal> Hal for FirstRingOutside<H> {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let (pool, pool_pointer) = H::dma_alloc(pages, direction);
        if TAKEN.swap(true, Ordering::Relaxed) {
            return (pool, pool_pointer);
        }
        let Some(layout) = ring_layout(pages) else {
            return (pool, pool_pointer);
        };
        // SAFETY: the layout has a non-zero size (virtio-drivers asks for
        // at least one page); freed in `dma_dealloc`.
        let Some(heap) = NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) }) else {
            return (pool, pool_pointer);
        };
        let address = heap.as_ptr() as PhysAddr;
        *MISPLACED.lock() =
            Some(Misplaced { heap: address, pool, pool_pointer: pool_pointer.as_ptr() as usize, pages });
        log::warn!("ring_outside_pool: ring placed at {address:#x}, outside its pool");
        (address, heap)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let misplaced = MISPLACED.lock().take_if(|misplaced| misplaced.heap == paddr && misplaced.pages == pages);
        let Some(misplaced) = misplaced else {
            // SAFETY: the caller's promise, passed on.
            return unsafe { H::dma_dealloc(paddr, vaddr, pages) };
        };
        if let Some(layout) = ring_layout(pages) {
            // SAFETY: allocated in `dma_alloc` with this layout; taken out
            // of MISPLACED, so freed once.
            unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
        }
        let Some(pool_pointer) = NonNull::new(misplaced.pool_pointer as *mut u8) else {
            return -1;
        };
        // SAFETY: what `H::dma_alloc` returned for this ring, freed once.
        unsafe { H::dma_dealloc(misplaced.pool, pool_pointer, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: the caller's promise, passed on.
        unsafe { H::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        // SAFETY: the caller's promise, passed on.
        unsafe { H::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: the caller's promise, passed on.
        unsafe { H::unshare(paddr, buffer, direction) }
    }
}
