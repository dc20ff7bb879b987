//! aarch64: entry, exceptions, MMU, GIC, PSCI, semihosting and the generic
//! timer, behind the contract of [`crate::arch`].

pub mod esr;

#[cfg(all(target_arch = "aarch64", feature = "image"))]
mod entry;
#[cfg(all(target_arch = "aarch64", feature = "image"))]
pub mod exceptions;
#[cfg(target_arch = "aarch64")]
pub mod irqchip;
#[cfg(target_arch = "aarch64")]
pub mod mmio;
#[cfg(target_arch = "aarch64")]
pub mod mmu;
#[cfg(target_arch = "aarch64")]
pub mod power;
#[cfg(target_arch = "aarch64")]
mod psci;
#[cfg(target_arch = "aarch64")]
mod semihosting;
#[cfg(target_arch = "aarch64")]
mod timer;

#[cfg(target_arch = "aarch64")]
pub use timer::{counter, counter_frequency, start_alarm};

/// RAM the entry's boot page table maps as normal memory (`boot_page_table`
/// in entry.rs: GiB 1 to 4), where the loader's tree and the early heap
/// must lie before the final map exists. Below it the boot map has device
/// memory, above it nothing.
pub const BOOT_MAP_RAM: (u64, u64) = (0x4000_0000, 0x1_0000_0000);

/// The exception level the runtime runs its images at, whatever level the
/// loader entered it at (entry.rs drops EL2 to EL1).
pub const RUNTIME_PRIVILEGE_LEVEL: u8 = 1;

/// The current exception level.
#[cfg(target_arch = "aarch64")]
pub fn privilege_level() -> u8 {
    let current_el: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) current_el, options(nomem, nostack)) };
    ((current_el >> 2) & 3) as u8
}

/// Whether IRQs are unmasked at the CPU (DAIF.I clear).
#[cfg(target_arch = "aarch64")]
pub fn irqs_enabled() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack)) };
    daif & (1 << 7) == 0
}

/// Unmasks (true) or masks (false) IRQs at the CPU.
#[cfg(target_arch = "aarch64")]
pub fn set_irqs_enabled(enabled: bool) {
    if enabled { arm_gic::irq_enable() } else { arm_gic::irq_disable() }
}

/// Waits for an interrupt (or an event); returns at once if one is pending.
#[cfg(target_arch = "aarch64")]
pub fn wait_for_interrupt() {
    arm_gic::wfi();
}

/// Stops this CPU for good (what is left when powering off failed).
#[cfg(target_arch = "aarch64")]
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
