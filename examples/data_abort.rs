//! Reads an address the runtime's page table leaves unmapped: the image must
//! print the exception report and exit non-zero.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

/// On QEMU virt this is the flash window, which the runtime does not map.
const UNMAPPED: usize = 0x0000_1000;

fn main(_boot: &'static Boot) -> u32 {
    println!("reading {UNMAPPED:#x}, which is not mapped");
    // SAFETY: deliberately unsound access: the point is that it faults and the
    // runtime reports it instead of running on.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    println!("read {value:#x}: the access did not fault");
    tidepool::exit::SUCCESS
}
