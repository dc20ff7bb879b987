//! The generic timer's virtual counter: this architecture's clock behind
//! [`crate::time`].

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0, Readable, Writeable};

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

/// Raises the virtual timer's interrupt (its PPI is the platform's
/// `virtual_timer()`) once `ticks` of [`counter`] have passed; 0 raises it
/// as soon as IRQs are let in. The condition holds until the next call.
pub fn start_alarm(ticks: u64) {
    // TVAL is a signed 32-bit countdown: longer waits fire early, which a
    // caller re-arming after a check tolerates.
    CNTV_TVAL_EL0.set(ticks.min(i32::MAX as u64));
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
}
