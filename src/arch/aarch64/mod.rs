//! aarch64: entry, exceptions, MMU, GIC, PSCI, semihosting and the generic
//! timer, behind the contract of [`crate::arch`].

pub mod esr;
pub mod gicr;

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

/// The board's boot map in GiB (`crate::board::BOOT_MAP_NORMAL_GIB`), which
/// entry.rs builds as a level-1 table of 1 GiB blocks.
const BOOT_MAP_NORMAL_GIB: (u64, u64) = crate::board::BOOT_MAP_NORMAL_GIB;
const _: () = assert!(
    BOOT_MAP_NORMAL_GIB.0 < BOOT_MAP_NORMAL_GIB.1 && BOOT_MAP_NORMAL_GIB.1 <= 512,
    "the boot map's normal range must be non-empty and fit the 512 GiB a level-1 table maps"
);

/// RAM the entry's boot page table maps as normal memory, where the image,
/// the loader's tree and the early heap must lie before the final map
/// exists. Below it the boot map has device memory, above it nothing.
pub const BOOT_MAP_RAM: (u64, u64) = (BOOT_MAP_NORMAL_GIB.0 << 30, BOOT_MAP_NORMAL_GIB.1 << 30);

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

/// A Jailhouse hypercall (`hvc #0x4a48`, code in x0, arguments in x1 and
/// x2, result in x0). Only call it under Jailhouse: any other hypervisor
/// may treat this HVC as fatal, and without EL2 it is undefined.
#[cfg(target_arch = "aarch64")]
pub fn jailhouse_hypercall(code: u32, arg1: u64, arg2: u64) -> i64 {
    let mut result = u64::from(code);
    // SAFETY: the hypercall reads x0..x2 and writes x0; Jailhouse preserves
    // every other register and touches no memory of the cell.
    unsafe { core::arch::asm!("hvc #0x4a48", inout("x0") result, in("x1") arg1, in("x2") arg2, options(nostack)) };
    result as i64
}

/// Stops this CPU for good (what is left when powering off failed).
#[cfg(target_arch = "aarch64")]
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
