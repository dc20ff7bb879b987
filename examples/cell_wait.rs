//! Waits for up to a minute, as an idle image does, then ends with 0: in a
//! Jailhouse cell with an active comm region it answers the hypervisor's
//! messages meanwhile (every wait polls them), so `jailhouse cell shutdown`
//! is approved and ends the cell early. The first ten seconds count as
//! busy, and the image asks for shutdown refusals while busy: a request
//! then is denied.
#![no_std]
#![no_main]

use tidepool::time::Deadline;
use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(_boot: &'static Boot) -> u32 {
    tidepool::jailhouse::deny_shutdown_while_busy();
    println!("busy for 10 s (shutdown requests are denied)");
    let busy = tidepool::jailhouse::busy();
    let deadline = Deadline::after_micros(10_000_000);
    while !deadline.passed() {
        core::hint::spin_loop();
    }
    drop(busy);
    println!("idle for up to 50 s (shutdown requests are approved)");
    let deadline = Deadline::after_micros(50_000_000);
    while !deadline.passed() {
        core::hint::spin_loop();
    }
    println!("no shutdown request came");
    tidepool::exit::SUCCESS
}
