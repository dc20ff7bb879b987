//! Virtio devices over virtio-mmio version 2.
//!
//! [`mmio::MmioV2Transport`] implements virtio-drivers' `Transport` for any
//! device id, with shared memory regions, bounded config retries and
//! ACCESS_PLATFORM negotiation for devices bound to a restricted DMA pool;
//! virtio-drivers' `VirtQueue`, `Hal` and stock drivers run on top of it.

#[cfg(target_arch = "aarch64")]
pub mod irq;
pub mod mmio;
mod mmio_fake;
pub(crate) mod mmio_regs;
#[cfg(target_arch = "aarch64")]
pub mod probe;
