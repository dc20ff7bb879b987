//! A test image whose second case fails on purpose: the harness must print
//! `2 passed, 1 failed` and the image must exit non-zero.
#![no_std]
#![no_main]

use tidepool::{Boot, TestResult, ensure};

tidepool::test_image!(runs_at_the_runtime_level, heap_allocates, fails_on_purpose);

/// Whatever level the loader entered at (EL2 on aarch64 with
/// virtualization on), images run at the runtime's level (EL1).
fn runs_at_the_runtime_level(_boot: &Boot) -> TestResult {
    let level = tidepool::arch::privilege_level();
    ensure!(level == tidepool::arch::RUNTIME_PRIVILEGE_LEVEL, "running at privilege level {level}");
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
