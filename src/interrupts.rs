//! Interrupt handlers of drivers, independent of the interrupt controller.
//!
//! A driver registers a handler for its interrupt id and enables the id at
//! the controller ([`enable`], from [`crate::arch::irqchip`]). On an IRQ the
//! architecture's controller driver acknowledges the interrupt, runs the
//! handler (which acknowledges at its device, e.g. the virtio-mmio
//! InterruptACK register), then ends the interrupt. Acknowledging at the
//! device before the end-of-interrupt is what keeps a level-triggered line
//! from firing again at once.

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
    /// The id is beyond what the table (and controller) handle.
    BadIntId(u32),
    /// Another handler has the id.
    Busy(u32),
    /// No interrupt controller was initialised.
    NoController,
    /// The interrupt controller driver refused.
    Controller,
    /// No GICv3 redistributor frame serves this CPU (MPIDR affinity).
    NoFrameForThisCpu {
        /// This CPU's affinity (Aff3.Aff2.Aff1.Aff0, as `GICR_TYPER[63:32]` has it).
        affinity: u32,
    },
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
            InterruptError::Controller => f.write_str("the interrupt controller refused the configuration"),
            InterruptError::NoFrameForThisCpu { affinity } => {
                write!(f, "no GICv3 redistributor frame serves this CPU (affinity {affinity:#x})")
            }
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

#[cfg_attr(not(target_os = "none"), allow(dead_code))] // host builds dispatch nothing
fn handler_for(intid: u32) -> Option<Handler> {
    HANDLERS.lock().get(intid as usize).copied().flatten()
}

/// Interrupts handled and spurious (no handler) so far.
pub fn counts() -> (usize, usize) {
    (HANDLED.load(Ordering::Relaxed), SPURIOUS.load(Ordering::Relaxed))
}

/// Runs the handler of one acknowledged interrupt (called by the
/// architecture's interrupt controller driver).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn run_handler(intid: u32) {
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

pub use crate::arch::irqchip::{enable, init};
pub use crate::arch::{irqs_enabled, set_irqs_enabled, wait_for_interrupt, without_irqs};

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
