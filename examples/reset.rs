//! Resets the system through PSCI SYSTEM_RESET. Under the launcher's
//! `-no-reboot` QEMU then ends without the image's exit line; an image that
//! is still running after the call fails.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(_boot: &'static Boot) -> u32 {
    let why = tidepool::exit::reset();
    println!("reset failed: {why}");
    tidepool::exit::FAILURE
}
