//! The architecture seam.
//!
//! Every architecture provides the same surface, re-exported here; nothing
//! outside `arch/` names an architecture. Generic code tells the bare-metal
//! runtime from host builds (unit tests, tools) with `cfg(target_os =
//! "none")`, never with `target_arch`.
//!
//! | concern | what an architecture provides |
//! |---|---|
//! | entry | its own `entry` module: image header, first instructions, `rust_start` |
//! | exception reports | its own vectors; unhandled ones print a decoded report and exit 102 |
//! | MMU | [`mmu`]: the final identity map ([`mmu::Kind`], [`mmu::MmuError`]) and later additions ([`mmu::map`]) |
//! | boot map | [`BOOT_MAP_RAM`]: the RAM the entry's boot page tables map as normal memory |
//! | time | [`counter`] and [`counter_frequency`], behind [`crate::time`]; [`start_alarm`], a one-shot timer interrupt |
//! | interrupt masking | [`irqs_enabled`], [`set_irqs_enabled`], [`without_irqs`], [`wait_for_interrupt`] |
//! | interrupt controller | [`irqchip`]: `init`, `enable`, acknowledging and dispatching to [`crate::interrupts`] |
//! | MMIO | [`mmio`]: single-instruction loads and stores a hypervisor can emulate |
//! | power | [`power`]: debug exit, power off, reset, this CPU off, over what the platform names |
//! | hypervisor calls | [`jailhouse_hypercall`]: Jailhouse's own calls (`crate::jailhouse` decides when they are allowed) |
//! | idling | [`halt`] |
//! | privilege | [`privilege_level`] and the level images run at, [`RUNTIME_PRIVILEGE_LEVEL`] |
//!
//! Host builds get `arch::host`'s stand-ins, so that generic code (and its unit
//! tests) compiles and runs unchanged.

pub mod aarch64;

#[cfg(not(target_os = "none"))]
pub mod host;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use aarch64 as current;
#[cfg(not(target_os = "none"))]
use host as current;

#[cfg(all(target_os = "none", feature = "image"))]
pub use current::boot_stack_used;
pub use current::{
    BOOT_MAP_RAM, RUNTIME_PRIVILEGE_LEVEL, counter, counter_frequency, halt, irqchip, irqs_enabled,
    jailhouse_hypercall, mmio, mmu, power, privilege_level, set_irqs_enabled, start_alarm, wait_for_interrupt,
};

/// How the MMU maps a range; every architecture's `mmu` maps these to its
/// own descriptor attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Normal memory, read-write, never executable: RAM, pools, shared regions.
    Data,
    /// Normal memory, read-only and executable: the image's code.
    Code,
    /// Normal memory, read-only: the image's constants.
    ReadOnly,
    /// Device memory: MMIO windows.
    Device,
}

/// Runs `f` with IRQs masked, so that code an IRQ handler also runs (the
/// interrupt controller driver, the handler table) never deadlocks against
/// itself. The previous mask state is restored afterwards.
pub fn without_irqs<T>(f: impl FnOnce() -> T) -> T {
    let was_enabled = irqs_enabled();
    if was_enabled {
        set_irqs_enabled(false);
    }
    let result = f();
    if was_enabled {
        set_irqs_enabled(true);
    }
    result
}
