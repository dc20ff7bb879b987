//! The interrupt controller (GICv2 or GICv3, from the tree) and IRQ
//! dispatch to drivers.
//!
//! A driver registers a handler for its interrupt id. On an IRQ the
//! exception vector calls [`dispatch`]: acknowledge at the GIC, run the
//! handler (which acknowledges at its device, e.g. the virtio-mmio
//! InterruptACK register), then end the interrupt at the GIC. Acknowledging
//! at the device before the EOI is what keeps a level-triggered line from
//! firing again at once.

use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Mutex;

/// Largest interrupt id the table holds (SGIs, PPIs and SPIs; no LPIs).
pub const MAX_INTID: usize = 1020;

/// A handler gets its interrupt id. It runs with IRQs masked.
pub type Handler = fn(u32);

static HANDLERS: Mutex<[Option<Handler>; MAX_INTID]> = Mutex::new([None; MAX_INTID]);
static HANDLED: AtomicUsize = AtomicUsize::new(0);
static SPURIOUS: AtomicUsize = AtomicUsize::new(0);

/// Why an interrupt could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// The id is beyond what the table (and GIC) handle.
    BadIntId(u32),
    /// Another handler has the id.
    Busy(u32),
    /// No GIC was initialised.
    NoController,
    /// The GIC driver refused.
    Controller,
    /// The device has no interrupt line (a PCI function without INTx
    /// routing in `interrupt-map`); poll it instead.
    NoLine,
}

impl core::fmt::Display for InterruptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InterruptError::BadIntId(id) => write!(f, "interrupt id {id} is out of range (max {MAX_INTID})"),
            InterruptError::Busy(id) => write!(f, "interrupt id {id} already has a handler"),
            InterruptError::NoController => f.write_str("no interrupt controller"),
            InterruptError::Controller => f.write_str("the GIC refused the configuration"),
            InterruptError::NoLine => f.write_str("the device has no interrupt line"),
        }
    }
}

/// Records `handler` for `intid` (without touching the GIC).
pub fn set_handler(intid: u32, handler: Handler) -> Result<(), InterruptError> {
    without_irqs(|| {
        let mut handlers = HANDLERS.lock();
        let slot = handlers.get_mut(intid as usize).ok_or(InterruptError::BadIntId(intid))?;
        if slot.is_some() {
            return Err(InterruptError::Busy(intid));
        }
        *slot = Some(handler);
        Ok(())
    })
}

/// Removes the handler of `intid`.
pub fn clear_handler(intid: u32) {
    without_irqs(|| {
        if let Some(slot) = HANDLERS.lock().get_mut(intid as usize) {
            *slot = None;
        }
    })
}

#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn handler_for(intid: u32) -> Option<Handler> {
    HANDLERS.lock().get(intid as usize).copied().flatten()
}

/// Interrupts handled and spurious (no handler) so far.
pub fn counts() -> (usize, usize) {
    (HANDLED.load(Ordering::Relaxed), SPURIOUS.load(Ordering::Relaxed))
}

/// Runs the handler of one acknowledged interrupt; shared by both GICs.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn run_handler(intid: u32) {
    match handler_for(intid) {
        Some(handler) => {
            HANDLED.fetch_add(1, Ordering::Relaxed);
            handler(intid);
        }
        None => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `f` with IRQs masked, so that code the IRQ handler also runs (the
/// GIC driver, the handler table) never deadlocks against itself.
pub fn without_irqs<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "aarch64")]
    {
        let daif: u64;
        // SAFETY: reads DAIF and masks IRQs; restored below.
        unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nomem, nostack)) };
        let result = f();
        // SAFETY: restores the mask state read above.
        unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nomem, nostack)) };
        result
    }
    #[cfg(not(target_arch = "aarch64"))]
    f()
}

#[cfg(target_arch = "aarch64")]
pub use gic::{dispatch, enable, init, irqs_enabled, set_irqs_enabled, wait_for_interrupt};

#[cfg(target_arch = "aarch64")]
mod gic {
    use core::ptr::NonNull;

    use arm_gic::gicv2::GicV2;
    use arm_gic::gicv3::{GicCpuInterface, GicV3};
    use arm_gic::{IntId, InterruptGroup, Trigger, UniqueMmioPointer};
    use spin::Mutex;

    use super::{InterruptError, run_handler, without_irqs};
    use crate::devicetree::Gic as GicDescription;

    enum Gic {
        V2(GicV2<'static>),
        V3(GicV3<'static>),
    }

    // SAFETY: the GIC registers are only reached through this mutex.
    unsafe impl Send for Gic {}

    static GIC: Mutex<Option<Gic>> = Mutex::new(None);

    /// On GICv2 a non-secure guest acknowledges through GICC_IAR/EOIR,
    /// which arm-gic names group 0 (its group 1 path uses the aliased
    /// registers, which only secure software has). Without the security
    /// extensions (QEMU's default) group 0 interrupts are IRQs; with them,
    /// the group write is ignored and the secure side's choice stands.
    const GICV2_GROUP: InterruptGroup = InterruptGroup::Group0;

    /// Sets up the distributor and this CPU's interface, all interrupts
    /// disabled, IRQs still masked at the CPU.
    ///
    /// # Safety
    ///
    /// The addresses must be the GIC's register frames, mapped as device
    /// memory and used by nothing else.
    pub unsafe fn init(description: &GicDescription) -> Result<(), InterruptError> {
        let gic = match description {
            GicDescription::V2 { distributor, cpu_interface } => {
                // SAFETY: the caller promises the frames are the GICv2's.
                let mut gic = unsafe { GicV2::new(distributor.base as *mut _, cpu_interface.base as *mut _) };
                gic.setup();
                // Let every priority through; the reset mask blocks all.
                gic.set_priority_mask(0xff);
                Gic::V2(gic)
            }
            GicDescription::V3 { distributor, redistributors } => {
                let redistributor = redistributors.first().ok_or(InterruptError::NoController)?;
                let gicd = NonNull::new(distributor.base as *mut _).ok_or(InterruptError::NoController)?;
                let gicr = NonNull::new(redistributor.base as *mut _).ok_or(InterruptError::NoController)?;
                // SAFETY: the caller promises the frames are the GICv3's; one
                // CPU (we run on the boot CPU only).
                let mut gic = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, 1) }
                    .map_err(|_| InterruptError::Controller)?;
                gic.setup(0);
                GicCpuInterface::set_priority_mask(0xff);
                Gic::V3(gic)
            }
        };
        without_irqs(|| *GIC.lock() = Some(gic));
        Ok(())
    }

    /// Routes `intid` to this CPU and enables it at the GIC.
    pub fn enable(intid: u32, trigger_level: bool) -> Result<(), InterruptError> {
        let id = match intid {
            0..16 => IntId::sgi(intid),
            16..32 => IntId::ppi(intid - 16),
            32..1020 => IntId::spi(intid - 32),
            _ => return Err(InterruptError::BadIntId(intid)),
        };
        let trigger = if trigger_level { Trigger::Level } else { Trigger::Edge };
        without_irqs(|| {
            let mut guard = GIC.lock();
            match guard.as_mut().ok_or(InterruptError::NoController)? {
                Gic::V2(gic) => {
                    gic.set_interrupt_priority(id, 0x80);
                    gic.set_trigger(id, trigger);
                    gic.set_group(id, GICV2_GROUP);
                    gic.enable_interrupt(id, true).map_err(|_| InterruptError::Controller)
                }
                Gic::V3(gic) => {
                    gic.set_interrupt_priority(id, Some(0), 0x80).map_err(|_| InterruptError::Controller)?;
                    gic.set_trigger(id, Some(0), trigger).map_err(|_| InterruptError::Controller)?;
                    gic.set_group(id, Some(0), arm_gic::gicv3::Group::Group1NS)
                        .map_err(|_| InterruptError::Controller)?;
                    gic.enable_interrupt(id, Some(0), true).map_err(|_| InterruptError::Controller)
                }
            }
        })
    }

    /// Called from the IRQ vector: handles every pending interrupt.
    pub fn dispatch() {
        let mut guard = GIC.lock();
        match guard.as_mut() {
            Some(Gic::V2(gic)) => {
                while let Some(id) = gic.get_and_acknowledge_interrupt(GICV2_GROUP) {
                    run_handler(id.raw_value());
                    gic.end_interrupt(id, GICV2_GROUP);
                }
            }
            Some(Gic::V3(_)) => {
                while let Some(id) = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1) {
                    run_handler(id.raw_value());
                    GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
                }
            }
            None => {}
        }
    }

    /// Unmasks (true) or masks (false) IRQs at the CPU.
    pub fn set_irqs_enabled(enabled: bool) {
        if enabled { arm_gic::irq_enable() } else { arm_gic::irq_disable() }
    }

    pub fn irqs_enabled() -> bool {
        let daif: u64;
        // SAFETY: reading DAIF has no side effects.
        unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack)) };
        daif & (1 << 7) == 0
    }

    /// Waits for an interrupt (or an event); returns at once if one is pending.
    pub fn wait_for_interrupt() {
        arm_gic::wfi();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: u32) {}

    #[test]
    fn handlers_are_registered_once_and_checked() {
        set_handler(40, noop).unwrap();
        assert_eq!(set_handler(40, noop), Err(InterruptError::Busy(40)));
        assert_eq!(set_handler(5000, noop), Err(InterruptError::BadIntId(5000)));
        clear_handler(40);
        set_handler(40, noop).unwrap();
        clear_handler(40);
    }

    #[test]
    fn dispatching_counts_handled_and_spurious() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn counting(intid: u32) {
            assert_eq!(intid, 41);
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        set_handler(41, counting).unwrap();
        let (handled, spurious) = counts();
        run_handler(41);
        run_handler(42);
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);
        let (handled_after, spurious_after) = counts();
        assert!(handled_after > handled && spurious_after > spurious);
        clear_handler(41);
    }
}
