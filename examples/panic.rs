//! Panics: the runtime must print the message and location and exit with
//! the panic status.
#![no_std]
#![no_main]

use tidepool::Boot;

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    let pools = boot.platform.pools().len();
    panic!("deliberate panic with {pools} pools");
}
