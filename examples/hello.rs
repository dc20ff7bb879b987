//! The smallest Tidepool image: boots, prints the platform it found, exits 0.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    println!("hello from tidepool");
    println!("{boot}");
    tidepool::exit::SUCCESS
}
