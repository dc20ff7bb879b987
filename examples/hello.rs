//! The smallest Tidepool image: boots, prints the platform it found, exits 0.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    println!("hello from tidepool");
    println!("{boot}");
    // In a Jailhouse cell: what booting cost in VM exits, where allowed.
    if let Some(exits) = tidepool::jailhouse::vm_exits() {
        println!("vm exits so far: {exits}");
    }
    tidepool::exit::SUCCESS
}
