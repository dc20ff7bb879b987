//! Finding the virtio devices the tree describes (virtio-mmio nodes, and
//! modern virtio-pci functions behind PCI host bridges) and binding each to
//! its restricted DMA pool.
//!
//! A PCI function's pool is the one its own child node of the bridge names
//! (keyed by bus/device/function), else the bridge's `memory-region`, which
//! binds every device behind the bridge as Linux does; the policy below
//! applies to PCI functions exactly as to virtio-mmio nodes.
//!
//! Policy for devices without `memory-region` ([`DmaPolicy`]): when the tree
//! declares any restricted-dma-pool, a DMA device without one is refused
//! (it would need memory outside every pool, which is exactly what the pools
//! exist to prevent). When the tree declares none, the image may opt in to
//! [`DmaPolicy::Unrestricted`] and give such devices a pool of its own
//! carved out of private RAM; the default refuses them too.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use crate::Boot;
use crate::dma::PoolId;
use crate::pci::config::Bdf;
use crate::platform::{Interrupt, PlatformError, Range};
use crate::virtio::mmio::{MmioError, MmioRegisters, MmioV2Transport, WindowClaim};
use crate::virtio::transport::ProbedTransport;

pub use super::probe_pci::PciProblem;

/// What to do with a virtio device the tree binds to no pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaPolicy {
    /// Refuse it (the default).
    Strict,
    /// Use this pool for it (typically one from
    /// [`crate::dma::register_private_pool`]), but only when the tree
    /// declares no pools.
    Unrestricted {
        /// The pool such devices use.
        fallback: PoolId,
    },
}

/// A device that answered with virtio-mmio version 2 or as a modern
/// virtio-pci function, bound to a usable pool.
pub struct Device {
    /// virtio-mmio: the device's window; virtio-pci: the BAR holding its
    /// common configuration (a range no other device has).
    pub reg: Range,
    /// virtio-mmio: its `interrupts`; virtio-pci: its INTx pin through the
    /// bridge's `interrupt-map`, `None` without one (poll instead).
    pub interrupt: Option<Interrupt>,
    /// The virtio device id (4 entropy, 2 block, 21 hostmem, ...).
    pub device_id: u32,
    /// The DMA pool its rings and buffers come from; its Hal is
    /// `with_pool_hal!(device.pool, |H| ...)`.
    pub pool: PoolId,
    /// virtio-pci: the host bridge (index in `Platform::pci_bridges`) and
    /// the function's address.
    pub pci: Option<(usize, Bdf)>,
    /// virtio-pci: the ISR status byte the interrupt handler reads.
    pub isr_address: Option<u64>,
    /// The transport, with ACCESS_PLATFORM requested.
    pub transport: ProbedTransport,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("reg", &self.reg)
            .field("device_id", &self.device_id)
            .field("pool", &self.pool)
            .field("pci", &self.pci)
            .finish()
    }
}

/// Why a virtio-mmio node is not usable.
#[derive(Debug)]
pub enum ProbeError {
    /// The node itself was invalid (bad reg, interrupts, memory-region ...).
    /// (Boxed: a `PlatformError` carries its origin; probing runs with a heap.)
    Tree(Box<PlatformError>),
    /// Its pool could not be placed or is invalid.
    Pool {
        /// The device's register window.
        device: Range,
        /// What is wrong with the pool.
        error: Box<PlatformError>,
    },
    /// No `memory-region`, and the policy refuses such devices.
    NoPool {
        /// The device's register window.
        device: Range,
    },
    /// The registers did not describe a usable device.
    Transport {
        /// The device's register window.
        device: Range,
        /// What the transport refused.
        error: MmioError,
    },
    /// A transport from an earlier probe still drives it.
    InUse {
        /// The device's register window.
        device: Range,
    },
    /// The tree's pool `slot` (index in `Platform::pools`, and its slot)
    /// has no registered pool: registration failed at boot.
    PoolNotRegistered {
        /// The device's register window.
        device: Range,
        /// The pool's slot.
        slot: usize,
    },
    /// A PCI function behind bridge `bridge` (index) that is left alone.
    Pci {
        /// The host bridge's index in `Platform::pci_bridges`.
        bridge: usize,
        /// The function's address.
        bdf: Bdf,
        /// Why it is left alone.
        problem: PciProblem,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Tree(error) => write!(f, "{error}"),
            ProbeError::Pool { device, error } => {
                write!(f, "virtio-mmio {:#x}: its DMA pool is unusable: {error}", device.base)
            }
            ProbeError::NoPool { device } => write!(
                f,
                "virtio-mmio {:#x}: no memory-region, and DMA outside a restricted pool is refused",
                device.base
            ),
            ProbeError::Transport { device, error } => write!(f, "virtio-mmio {:#x}: {error}", device.base),
            ProbeError::InUse { device } => write!(f, "virtio-mmio {:#x}: already in use", device.base),
            ProbeError::PoolNotRegistered { device, slot } => {
                write!(f, "virtio-mmio {:#x}: DMA pool slot {slot} holds no pool", device.base)
            }
            ProbeError::Pci { bridge, bdf, problem } => write!(f, "virtio-pci {bdf} (bridge {bridge}): {problem}"),
        }
    }
}

/// Every virtio-mmio node and every virtio PCI function: a bound device,
/// `None` for an empty slot, or why it is left alone.
pub fn probe(boot: &Boot, policy: DmaPolicy) -> Vec<Result<Option<Device>, ProbeError>> {
    let mut found = probe_mmio(boot, policy);
    found.extend(super::probe_pci::probe(boot, policy));
    found
}

/// The pool a device bound to `pool` (index in `Platform::pools`) uses
/// under `policy`, or why none: the same rules for both transports.
pub(super) fn pool_for(boot: &Boot, policy: DmaPolicy, pool: Option<usize>) -> Result<PoolId, PoolRefusal> {
    match pool {
        Some(index) => match boot.layout.pool(index) {
            // Boot registered the tree's pool `index` in slot `index`. Every
            // ring and buffer will come from it: it must be registered now
            // (and be the pool the layout placed), not fail at the first
            // allocation.
            Some(Ok(range)) => crate::dma::registered(index)
                .filter(|registered| registered.range() == *range)
                .ok_or(PoolRefusal::NotRegistered(index)),
            Some(Err(error)) => Err(PoolRefusal::Unusable(Box::new(*error))),
            None => Err(PoolRefusal::NoPool),
        },
        None => match policy {
            DmaPolicy::Unrestricted { fallback } if boot.platform.pools().is_empty() => Ok(fallback),
            _ => Err(PoolRefusal::NoPool),
        },
    }
}

/// Why [`pool_for`] refused.
pub(super) enum PoolRefusal {
    Unusable(Box<PlatformError>),
    NoPool,
    NotRegistered(usize),
}

fn probe_mmio(boot: &Boot, policy: DmaPolicy) -> Vec<Result<Option<Device>, ProbeError>> {
    boot.platform
        .virtio()
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let node = node.as_ref().map_err(|error| ProbeError::Tree(Box::new(*error)))?;
            // One transport per window at a time: probing again must not
            // alias (or, on drop, reset) a device a driver is using.
            let claim = WindowClaim::take(index).ok_or(ProbeError::InUse { device: node.reg })?;
            let base = NonNull::new(node.reg.base as *mut u8)
                .ok_or(ProbeError::Transport { device: node.reg, error: MmioError::EmptySlot })?;
            // SAFETY: discovery checked the node's window: at least
            // WINDOW_SIZE bytes, 4-byte aligned, sharing no page with RAM and
            // no byte with another device window; the runtime maps it as
            // device memory, and `claim` makes this the node's only
            // transport.
            let registers = unsafe { MmioRegisters::virtio_mmio_window(base) };
            // Empty slots first: they are not devices, so no pool is needed.
            let transport = match MmioV2Transport::new(registers) {
                Ok(transport) => transport,
                Err(MmioError::EmptySlot) => return Ok(None),
                Err(error) => return Err(ProbeError::Transport { device: node.reg, error }),
            };
            let pool = pool_for(boot, policy, node.pool).map_err(|refusal| match refusal {
                PoolRefusal::Unusable(error) => ProbeError::Pool { device: node.reg, error },
                PoolRefusal::NoPool => ProbeError::NoPool { device: node.reg },
                PoolRefusal::NotRegistered(slot) => ProbeError::PoolNotRegistered { device: node.reg, slot },
            })?;
            Ok(Some(Device {
                reg: node.reg,
                interrupt: Some(node.interrupt),
                device_id: transport.device_id(),
                pool,
                pci: None,
                isr_address: None,
                transport: ProbedTransport::Mmio(transport.with_access_platform(true).with_claim(claim)),
            }))
        })
        .collect()
}

/// Probes and keeps only the usable devices, logging the rest.
pub fn devices(boot: &Boot, policy: DmaPolicy) -> Vec<Device> {
    probe(boot, policy)
        .into_iter()
        .filter_map(|result| match result {
            Ok(device) => device,
            // Not a problem: the image already holds it.
            Err(error @ (ProbeError::InUse { .. } | ProbeError::Pci { problem: PciProblem::InUse, .. })) => {
                log::debug!("{error}");
                None
            }
            Err(error) => {
                log::warn!("{error}");
                None
            }
        })
        .collect()
}

/// The first usable device with virtio id `device_id` that no transport
/// drives yet. (The others probed are dropped, which resets them: they were
/// not in use; devices in use are not touched.)
pub fn find(boot: &Boot, policy: DmaPolicy, device_id: u32) -> Option<Device> {
    devices(boot, policy).into_iter().find(|device| device.device_id == device_id)
}
