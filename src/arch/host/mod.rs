//! Host builds (unit tests and tools): stand-ins for the contract of
//! [`crate::arch`], so generic code compiles and its tests run. Nothing here
//! touches hardware.

pub mod irqchip;
pub mod mmio;
pub mod mmu;
pub mod power;

use core::sync::atomic::{AtomicBool, Ordering};

/// Host builds boot from no map.
pub const BOOT_MAP_RAM: (u64, u64) = (0, 0);

/// Host builds run where the host runs them.
pub const RUNTIME_PRIVILEGE_LEVEL: u8 = 0;

/// Host builds run at no exception level: 0.
pub fn privilege_level() -> u8 {
    0
}

/// Unit tests: nanoseconds of the host's monotonic clock. Other host builds
/// have no clock here, so every read advances the count by one tick of a
/// 1 MHz clock: a deadline of N microseconds still ends, after N reads.
#[cfg(test)]
pub fn counter() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Host builds other than unit tests have no clock: every read advances the
/// count by one tick of a 1 MHz clock, so a deadline of N microseconds still
/// ends, after N reads.
#[cfg(not(test))]
pub fn counter() -> u64 {
    use core::sync::atomic::AtomicU64;
    static READS: AtomicU64 = AtomicU64::new(0);
    READS.fetch_add(1, Ordering::Relaxed)
}

/// Host builds have no timer interrupt to raise.
pub fn start_alarm(_ticks: u64) {}

/// Ticks per second of [`counter`].
pub fn counter_frequency() -> u64 {
    if cfg!(test) { 1_000_000_000 } else { 1_000_000 }
}

static IRQS_ENABLED: AtomicBool = AtomicBool::new(false);

/// Host builds take no interrupts; the flag is only remembered.
pub fn irqs_enabled() -> bool {
    IRQS_ENABLED.load(Ordering::Relaxed)
}

/// Only remembers the flag (see [`irqs_enabled`]).
pub fn set_irqs_enabled(enabled: bool) {
    IRQS_ENABLED.store(enabled, Ordering::Relaxed);
}

/// Spins once: nothing raises interrupts on the host.
pub fn wait_for_interrupt() {
    core::hint::spin_loop();
}

/// No hypervisor answers on the host: -ENOSYS.
pub fn jailhouse_hypercall(_code: u32, _arg1: u64, _arg2: u64) -> i64 {
    -38
}

/// Panics: only the target can stop its CPU.
pub fn halt() -> ! {
    panic!("halt() is only meaningful on the target")
}
