//! Never ends: the launcher's timeout must stop it.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(_boot: &'static Boot) -> u32 {
    println!("spinning forever");
    loop {
        core::hint::spin_loop();
    }
}
