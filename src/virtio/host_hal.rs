//! Host memory as DMA memory for unit tests of the transports and stock
//! drivers over fake devices: physical address = virtual address.
#![cfg(test)]

extern crate std;

use core::ptr::NonNull;
use std::alloc::{Layout, alloc_zeroed, dealloc};

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

pub(crate) struct HostHal;

fn pages_layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap()
}

// SAFETY: allocations are zeroed, page-aligned, exclusively owned until
// `dma_dealloc`, and their addresses are what the (fake) device sees;
// `share` hands out the buffer's own address, valid until `unshare`.
unsafe impl Hal for HostHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size.
        let pointer = NonNull::new(unsafe { alloc_zeroed(pages_layout(pages)) }).unwrap();
        (pointer.as_ptr() as PhysAddr, pointer)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: `vaddr` came from `dma_alloc` with the same page count.
        unsafe { dealloc(vaddr.as_ptr(), pages_layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap()
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
