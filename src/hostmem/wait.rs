//! Waiting with a timeout: deadlines and what to do while waiting.

use core::time::Duration;

/// How long one interrupt wait lasts before the driver looks again, so a
/// lost or suppressed interrupt costs at most this much.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(2);

/// How the driver learns that the device did something.
///
/// Implemented for the device's interrupt line (`crate::virtio::irq`) on
/// aarch64; without one the driver spins. Every wait re-checks the rings
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
#[cfg(target_arch = "aarch64")]
pub struct BoundIrq(pub crate::virtio::irq::IrqLine);

#[cfg(target_arch = "aarch64")]
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

#[cfg(target_arch = "aarch64")]
impl Drop for BoundIrq {
    fn drop(&mut self) {
        crate::interrupts::clear_handler(self.0.intid());
    }
}

/// A point in time after which a wait gives up.
pub(crate) struct Deadline(Inner);

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Self {
        Self(Inner::after(timeout))
    }

    pub(crate) fn passed(&self) -> bool {
        self.0.passed()
    }
}

#[cfg(target_arch = "aarch64")]
struct Inner(crate::arch::aarch64::timer::Deadline);

#[cfg(target_arch = "aarch64")]
impl Inner {
    fn after(timeout: Duration) -> Self {
        Self(crate::arch::aarch64::timer::Deadline::after_micros(
            u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX),
        ))
    }

    fn passed(&self) -> bool {
        self.0.passed()
    }
}

/// Host unit tests: wall-clock time.
#[cfg(all(test, not(target_arch = "aarch64")))]
struct Inner(std::time::Instant);

#[cfg(all(test, not(target_arch = "aarch64")))]
impl Inner {
    fn after(timeout: Duration) -> Self {
        let now = std::time::Instant::now();
        Self(now.checked_add(timeout).unwrap_or(now + Duration::from_secs(3600)))
    }

    fn passed(&self) -> bool {
        std::time::Instant::now() >= self.0
    }
}

/// Other targets have no timer here: count checks instead (one per
/// microsecond of timeout), so waits still end.
#[cfg(all(not(test), not(target_arch = "aarch64")))]
struct Inner(core::cell::Cell<u64>);

#[cfg(all(not(test), not(target_arch = "aarch64")))]
impl Inner {
    fn after(timeout: Duration) -> Self {
        Self(core::cell::Cell::new(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX)))
    }

    fn passed(&self) -> bool {
        let left = self.0.get();
        self.0.set(left.saturating_sub(1));
        left == 0
    }
}
