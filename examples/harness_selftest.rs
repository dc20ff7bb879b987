//! A test image whose second case fails on purpose: the harness must print
//! `2 passed, 1 failed` and the image must exit non-zero.
#![no_std]
#![no_main]

use tidepool::{Boot, TestResult, ensure};

tidepool::test_image!(runs_at_el1, heap_allocates, fails_on_purpose);

fn runs_at_el1(_boot: &Boot) -> TestResult {
    let current_el: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) current_el, options(nomem, nostack)) };
    ensure!((current_el >> 2) & 3 == 1, "running at EL{}", (current_el >> 2) & 3);
    Ok(())
}

fn heap_allocates(boot: &Boot) -> TestResult {
    extern crate alloc;
    let values: alloc::vec::Vec<u64> = (0..1000).collect();
    ensure!(values.iter().sum::<u64>() == 499_500, "bad sum");
    ensure!(boot.heap_bytes > 1 << 20, "heap only {} bytes", boot.heap_bytes);
    Ok(())
}

fn fails_on_purpose(_boot: &Boot) -> TestResult {
    ensure!(1 + 1 == 3, "1 + 1 is not 3 (this case fails on purpose)");
    Ok(())
}
