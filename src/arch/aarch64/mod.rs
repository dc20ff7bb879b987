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

/// What the entry code fills the boot stack with before Rust runs.
#[cfg_attr(not(all(target_arch = "aarch64", feature = "image")), allow(dead_code))]
const STACK_PAINT: u64 = 0x5444_5053_5444_5053;

/// Bytes of the boot stack used so far (its deepest point), its size, and
/// whether it overflowed (or came within a page of it): paint gone from its
/// lowest page. Before the final map
/// unmaps the guard page below the stack, an overflow (discovery of a large
/// platform in an unoptimised build, say) writes over what lies below it
/// without a fault; this is how the boot notices.
#[cfg(all(target_arch = "aarch64", feature = "image"))]
pub fn boot_stack_used() -> (usize, usize, bool) {
    unsafe extern "C" {
        static __stack_start: u64;
        static __stack_end: u64;
    }
    // Linker symbols bounding the boot stack; only their addresses are taken.
    let (start, end) = (&raw const __stack_start as usize, &raw const __stack_end as usize);
    let words = (end - start) / 8;
    let base = start as *const u64;
    // SAFETY: the words between the stack's symbols are mapped RAM of the
    // image; volatile, since the compiler cannot know the entry code wrote
    // them.
    let read = |index: usize| unsafe { base.add(index).read_volatile() };
    let untouched = (0..words).take_while(|&index| read(index) == STACK_PAINT).count();
    let overflowed = (0..512.min(words)).any(|index| read(index) != STACK_PAINT);
    ((words - untouched) * 8, words * 8, overflowed)
}

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
