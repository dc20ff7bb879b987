//! A test image: `cargo test` boots it under the runner, each case prints
//! `test NAME ... ok` or `FAILED: reason`, and the run fails unless every
//! case passed.
#![no_std]
#![no_main]

extern crate alloc;

use tidepool::{Boot, TestResult, ensure};

tidepool::test_image!(the_platform_has_ram, the_heap_allocates, the_clock_moves);

fn the_platform_has_ram(boot: &Boot) -> TestResult {
    ensure!(boot.platform.total_ram() > 0, "no RAM in {}", boot.source);
    Ok(())
}

fn the_heap_allocates(_boot: &Boot) -> TestResult {
    let numbers: alloc::vec::Vec<u64> = (0..1000).collect();
    ensure!(numbers.iter().sum::<u64>() == 499_500, "the heap lost numbers");
    Ok(())
}

fn the_clock_moves(_boot: &Boot) -> TestResult {
    let start = tidepool::time::now();
    let deadline = tidepool::time::Deadline::after_micros(1000);
    while !deadline.passed() {}
    ensure!(tidepool::time::now() > start, "the counter stood still");
    Ok(())
}
