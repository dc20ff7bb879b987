//! What the driver did, for per-frame cost accounting.

use core::fmt;

/// Running totals since the driver was created. Take two snapshots and
/// [`Counters::since`] to get the cost of what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// MMIO QueueNotify writes (VM exits), on every queue. Only made when
    /// the device has not suppressed notifications.
    pub doorbells: u64,
    /// Interrupts taken on the device's line (0 when polling).
    pub interrupts: u64,
    /// Valid events read from the event queue.
    pub events: u64,
    /// Events the device reported as dropped (EVENT_F_OVERFLOW).
    pub events_dropped: u64,
    /// Notifications sent.
    pub notifications: u64,
    /// Config-queue requests sent (CREATE, DESTROY, QUERY_SUBDEVICE, PING).
    pub config_requests: u64,
    /// Bytes the DMA pool copied for this device (bounce copies in and
    /// back), as the pool counted them.
    pub bytes_copied_by_transport: u64,
    /// The part of [`Self::bytes_copied_by_transport`] that was not message
    /// structs (requests, responses, notifications, events): data buffers of
    /// [`super::Hostmem::notify_with_buffers`]. Region data never goes
    /// through the pool, so this stays 0 on the zero-copy path.
    pub payload_bytes_copied_by_transport: u64,
}

impl Counters {
    /// What happened between `earlier` and `self` (saturating, so a
    /// snapshot from another driver gives zeros rather than garbage).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            doorbells: self.doorbells.saturating_sub(earlier.doorbells),
            interrupts: self.interrupts.saturating_sub(earlier.interrupts),
            events: self.events.saturating_sub(earlier.events),
            events_dropped: self.events_dropped.saturating_sub(earlier.events_dropped),
            notifications: self.notifications.saturating_sub(earlier.notifications),
            config_requests: self.config_requests.saturating_sub(earlier.config_requests),
            bytes_copied_by_transport: self.bytes_copied_by_transport.saturating_sub(earlier.bytes_copied_by_transport),
            payload_bytes_copied_by_transport: self
                .payload_bytes_copied_by_transport
                .saturating_sub(earlier.payload_bytes_copied_by_transport),
        }
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} doorbells, {} interrupts, {} events ({} dropped), {} notifications, {} config requests, {} bytes copied by the transport ({} of them payload)",
            self.doorbells,
            self.interrupts,
            self.events,
            self.events_dropped,
            self.notifications,
            self.config_requests,
            self.bytes_copied_by_transport,
            self.payload_bytes_copied_by_transport
        )
    }
}
