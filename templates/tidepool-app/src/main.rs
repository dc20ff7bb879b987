//! The smallest image: boots, prints what the runtime found, exits 0.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    println!("hello from my Tidepool image");
    println!("{boot}");
    tidepool::exit::SUCCESS
}
