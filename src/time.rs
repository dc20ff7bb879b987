//! Monotonic time and deadlines, the same on every architecture.
//!
//! Built on the architecture's free-running counter
//! ([`crate::arch::counter`]): the generic timer's virtual counter on
//! aarch64. Every wait in the runtime ends at a [`Deadline`].

use core::time::Duration;

pub use crate::arch::{counter as now, counter_frequency as frequency};

/// Microseconds between two counts of [`now`] (0 if `end` is before `start`).
pub fn micros_between(start: u64, end: u64) -> u64 {
    ticks_to_micros(end.saturating_sub(start))
}

/// Microseconds in `ticks` of the counter.
pub fn ticks_to_micros(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000 / u128::from(frequency().max(1))).min(u128::from(u64::MAX)) as u64
}

/// The time elapsed since `start`, a count of [`now`].
pub fn since(start: u64) -> Duration {
    Duration::from_micros(micros_between(start, now()))
}

/// A point in time after which a wait gives up.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    /// `timeout` from now (capped far in the future, never wrapping).
    pub fn after(timeout: Duration) -> Self {
        Self::after_micros(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX))
    }

    /// `micros` microseconds from now.
    pub fn after_micros(micros: u64) -> Self {
        let ticks = (u128::from(micros) * u128::from(frequency().max(1)) / 1_000_000).min(u128::from(u64::MAX / 2));
        Deadline(now().saturating_add(ticks as u64))
    }

    /// Whether the deadline is behind us. Every wait checks this, so it is
    /// also where a Jailhouse cell answers the hypervisor's messages.
    pub fn passed(&self) -> bool {
        crate::jailhouse::poll_messages();
        now() >= self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_pass_and_conversions_do_not_overflow() {
        let deadline = Deadline::after(Duration::from_millis(1));
        let start = now();
        while !deadline.passed() {
            assert!(since(start) < Duration::from_secs(10), "a 1 ms deadline never passed");
        }
        assert!(since(start) >= Duration::from_micros(900));
        assert!(!Deadline::after(Duration::MAX).passed());
        assert_eq!(micros_between(10, 5), 0);
        assert!(ticks_to_micros(u64::MAX) > 0);
    }
}
