//! Recurses without bound: the boot stack runs into its guard page, and the
//! runtime must report a stack overflow (exit status 102) instead of
//! running on over .bss.
#![no_std]
#![no_main]

use core::hint::black_box;

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(_boot: &'static Boot) -> u32 {
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
