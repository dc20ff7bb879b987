//! The generic timer's virtual counter, for timeouts.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// Counter ticks per second (set by firmware; QEMU: 62.5 MHz).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// The current count.
pub fn now() -> u64 {
    // SAFETY: an ISB before reading the counter keeps the read from being
    // hoisted above earlier instructions.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    CNTVCT_EL0.get()
}

/// A point in time `micros` from now.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    pub fn after_micros(micros: u64) -> Self {
        let ticks = (u128::from(micros) * u128::from(frequency()) / 1_000_000).min(u128::from(u64::MAX / 2)) as u64;
        Deadline(now().saturating_add(ticks))
    }

    pub fn passed(&self) -> bool {
        now() >= self.0
    }
}

/// Microseconds between two counts.
pub fn micros_between(start: u64, end: u64) -> u64 {
    (u128::from(end.saturating_sub(start)) * 1_000_000 / u128::from(frequency())) as u64
}
