//! Reads the GIC distributor with one load-pair instruction: the kind of
//! access a hypervisor that traps the distributor cannot emulate (no valid
//! syndrome), which kills a Jailhouse cell. The runtime never does this
//! (every MMIO access is a single load or store); this image exists to
//! show that the emulated cell enforces the rule as Jailhouse does.
#![no_std]
#![no_main]

use tidepool::{Boot, println};

tidepool::entry!(main);

fn main(boot: &'static Boot) -> u32 {
    let Some(gic) = boot.platform.gic() else {
        println!("no GIC");
        return tidepool::exit::FAILURE;
    };
    let address = gic.distributor().base as usize;
    println!("load pair from the GIC distributor at {address:#x}");
    let (first, second): (u32, u32);
    // SAFETY: the distributor's first two registers (CTLR, TYPER), mapped
    // as device memory by the runtime; reading them has no side effects.
    unsafe {
        core::arch::asm!("ldp {0:w}, {1:w}, [{2}]", out(reg) first, out(reg) second, in(reg) address, options(nostack))
    };
    println!("the pair load returned {first:#x} {second:#x}: nothing trapped it");
    tidepool::exit::SUCCESS
}
