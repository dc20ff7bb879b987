//! Waiting: what to do while waiting for a device (deadlines are `crate::time`'s).

use core::time::Duration;

/// How long one interrupt wait lasts before the driver looks again, so a
/// lost or suppressed interrupt costs at most this much.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(2);

/// How the driver learns that the device did something.
///
/// Implemented for the device's interrupt line (`crate::virtio::irq`) on
/// the target; without one the driver spins. Every wait re-checks the rings
/// after [`Self::wait_beyond`] returns, so an implementation may return
/// early or spuriously.
pub trait Wakeup {
    /// Interrupts taken so far (wrapping).
    fn count(&self) -> u32;
    /// Waits until [`Self::count`] differs from `seen` or `timeout` passed;
    /// returns whether it changed.
    fn wait_beyond(&self, seen: u32, timeout: Duration) -> bool;
    /// What to do in a busy-wait step (polling a completion word, which
    /// raises no interrupt).
    fn idle(&self) {
        core::hint::spin_loop();
    }
}

/// A device interrupt line bound by [`crate::virtio::irq::bind`]; its
/// handler is removed when this is dropped (after the driver reset the
/// device, so no interrupt is left to acknowledge).
#[cfg(target_os = "none")]
pub struct BoundIrq(pub crate::virtio::irq::IrqLine);

#[cfg(target_os = "none")]
impl Wakeup for BoundIrq {
    fn count(&self) -> u32 {
        self.0.count()
    }

    fn wait_beyond(&self, seen: u32, timeout: Duration) -> bool {
        self.0.wait_beyond(seen, u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX))
    }

    /// Polling a completion word: IRQs are let in for the step, so an
    /// interrupt the device raises meanwhile (an error event, say) is taken
    /// and counted now rather than left pending at the GIC, and the
    /// interrupt counter says what the device really raised.
    fn idle(&self) {
        let was_enabled = crate::interrupts::irqs_enabled();
        crate::interrupts::set_irqs_enabled(true);
        core::hint::spin_loop();
        crate::interrupts::set_irqs_enabled(was_enabled);
    }
}

#[cfg(target_os = "none")]
impl Drop for BoundIrq {
    fn drop(&mut self) {
        crate::interrupts::clear_handler(self.0.intid());
    }
}
