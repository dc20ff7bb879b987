//! The generic timer's virtual counter: this architecture's clock behind
//! [`crate::time`].

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// Counter ticks per second (set by firmware; QEMU: 62.5 MHz), never 0.
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// The current count of the virtual counter.
pub fn counter() -> u64 {
    // SAFETY: an ISB before reading the counter keeps the read from being
    // hoisted above earlier instructions.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    CNTVCT_EL0.get()
}
