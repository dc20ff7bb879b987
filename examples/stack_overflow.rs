//! Recurses without bound: the boot stack runs into its guard page, and the
//! runtime must report a stack overflow (exit status 102) instead of
//! running on over .bss.
//!
//! With `stack_overflow.in=irq` on the command line the recursion runs in
//! an interrupt handler instead, so it overflows the exception stack: the
//! report must still come, from the top of that stack.
#![no_std]
#![no_main]

use core::hint::black_box;

use tidepool::{Boot, interrupts, println};

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    if boot.platform.bootarg("stack_overflow.in") == Some("irq") {
        return overflow_in_an_interrupt_handler(boot);
    }
    println!("recursing until the stack overflows");
    let depth = recurse(0);
    println!("recursion ended at depth {depth}: the stack did not overflow");
    tidepool::exit::SUCCESS
}

/// Each call keeps a 256-byte array live across the next call and uses the
/// callee's result, so the compiler can neither drop the frames nor turn
/// the recursion into a loop; `black_box` hides the values from it.
#[inline(never)]
#[allow(unconditional_recursion)] // the point of this image
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[(depth % 256) as usize] = depth as u8;
    let frame = black_box(frame);
    let below = recurse(black_box(depth + 1));
    below + u64::from(frame[black_box(0)])
}

/// Fires the virtual timer at once and recurses in its handler.
fn overflow_in_an_interrupt_handler(boot: &Boot) -> u32 {
    let Some(timer) = boot.platform.timer().and_then(|timer| timer.virtual_timer()) else {
        println!("the tree names no virtual timer interrupt");
        return tidepool::exit::FAILURE;
    };
    fn handler(_intid: u32) {
        println!("recursing in an interrupt handler until the exception stack overflows");
        let depth = recurse(0);
        println!("recursion ended at depth {depth}: the exception stack did not overflow");
    }
    // The generic timer's interrupts are level triggered.
    let setup = interrupts::set_handler(timer.intid(), handler).and_then(|()| interrupts::enable(timer.intid(), true));
    if let Err(error) = setup {
        println!("virtual timer interrupt: {error}");
        return tidepool::exit::FAILURE;
    }
    // A zero countdown: the timer interrupt is pending as soon as IRQs are in.
    tidepool::arch::start_alarm(0);
    interrupts::set_irqs_enabled(true);
    let deadline = tidepool::time::Deadline::after_micros(5_000_000);
    while !deadline.passed() {
        interrupts::wait_for_interrupt();
    }
    println!("the timer interrupt never came");
    tidepool::exit::FAILURE
}
