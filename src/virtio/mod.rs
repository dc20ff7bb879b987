//! Virtio devices over virtio-mmio version 2 and modern virtio-pci.
//!
//! [`mmio::MmioV2Transport`] and [`pci::PciTransport`] implement
//! virtio-drivers' `Transport` for any device id, with shared memory
//! regions, bounded config retries and ACCESS_PLATFORM negotiation for
//! devices bound to a restricted DMA pool; the rules they share are written
//! once in [`transport`]. virtio-drivers' `VirtQueue`, `Hal` and stock
//! drivers run on top of either.

#[cfg(test)]
mod host_hal;
#[cfg(target_os = "none")]
pub mod irq;
pub mod mmio;
mod mmio_fake;
pub(crate) mod mmio_regs;
pub mod pci;
#[cfg(test)]
mod pci_fake;
#[cfg(target_os = "none")]
pub mod probe;
#[cfg(target_os = "none")]
mod probe_pci;
pub mod transport;
