//! Probing virtio-pci functions behind the tree's PCI host bridges.
//!
//! For each usable bridge: enumerate its functions through the config
//! window, and for each modern virtio function (1af4:1040..107f) claim it,
//! size and assign its BARs from the bridge's windows (first probe only; a
//! later probe re-reads the BARs recorded then and refuses a function whose
//! BARs moved), read and validate its virtio capabilities, bind its pool
//! (same policy as virtio-mmio) and build a [`PciTransport`] over its
//! structures. Functions of other vendors are not touched.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use arrayvec::ArrayVec;

use super::pci::{MODERN_DEVICE_IDS, MmioSpan, PciRegions, PciTransport, VIRTIO_VENDOR_ID};
use super::probe::{Device, DmaPolicy, PoolRefusal, ProbeError, pool_for};
use super::transport::{ProbedTransport, TransportError, WindowClaim};
use crate::Boot;
use crate::pci::bar::{BarAllocator, Bars};
use crate::pci::caps::{BarSlice, virtio_caps};
use crate::pci::config::{Bdf, EcamConfig};
use crate::pci::{self, Function, PciError};
use crate::platform::{PciHostBridge, PlatformError};

/// Why a PCI function is left alone.
#[derive(Debug)]
pub enum PciProblem {
    /// A transport from an earlier probe still drives it.
    InUse,
    /// A legacy or transitional virtio device id (0x1000..0x1040): only
    /// modern virtio-pci is supported.
    Legacy {
        /// The function's PCI device id.
        pci_device_id: u16,
    },
    /// Its BARs or capabilities are unusable.
    Function(PciError),
    /// Its pool could not be placed or is invalid.
    Pool(Box<PlatformError>),
    /// No pool for it, and the policy refuses such devices.
    NoPool,
    /// The tree's pool `slot` has no registered pool.
    PoolNotRegistered {
        /// The pool's slot.
        slot: usize,
    },
    /// The transport refused it.
    Transport(TransportError),
}

impl fmt::Display for PciProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciProblem::InUse => write!(f, "already in use"),
            PciProblem::Legacy { pci_device_id } => {
                write!(f, "device id {pci_device_id:#06x} is legacy/transitional virtio; only modern is supported")
            }
            PciProblem::Function(error) => write!(f, "{error}"),
            PciProblem::Pool(error) => write!(f, "its DMA pool is unusable: {error}"),
            PciProblem::NoPool => {
                write!(f, "no memory-region (bridge or function), and DMA outside a restricted pool is refused")
            }
            PciProblem::PoolNotRegistered { slot } => write!(f, "DMA pool slot {slot} holds no pool"),
            PciProblem::Transport(error) => write!(f, "{error}"),
        }
    }
}

/// A function whose BARs the runtime placed: later probes reuse (and
/// check) the placement instead of sizing BARs under a running driver.
struct Placed {
    bridge: usize,
    bdf: Bdf,
    bars: Bars,
}

/// Every function placed so far. The lock also serialises config space
/// accesses between probes.
static PLACED: spin::Mutex<Vec<Placed>> = spin::Mutex::new(Vec::new());

/// Every virtio function behind every usable bridge.
pub fn probe(boot: &Boot, policy: DmaPolicy) -> Vec<Result<Option<Device>, ProbeError>> {
    let mut found = Vec::new();
    let mut placed = PLACED.lock();
    for (index, bridge) in boot.platform.pci_bridges().iter().enumerate() {
        match bridge {
            Ok(bridge) => probe_bridge(boot, policy, index, bridge, &mut placed, &mut found),
            Err(error) => found.push(Err(ProbeError::Tree(Box::new(*error)))),
        }
    }
    found
}

fn probe_bridge(
    boot: &Boot,
    policy: DmaPolicy,
    index: usize,
    bridge: &PciHostBridge,
    placed: &mut Vec<Placed>,
    found: &mut Vec<Result<Option<Device>, ProbeError>>,
) {
    for refused in &bridge.refused_windows {
        log::debug!("PCI window not used: {refused}");
    }
    let Some(base) = NonNull::new(bridge.config.base as *mut u8) else {
        return;
    };
    // SAFETY: discovery checked the config window (below the address limit,
    // clear of RAM and of every other device window, as long as the bus
    // range needs) and the final map has it as device memory. Config
    // accesses of all probes are serialised by the `PLACED` lock held here,
    // and running transports never touch config space.
    let mut config = unsafe { EcamConfig::new(base, bridge.mechanism, bridge.bus_start, bridge.bus_end) };
    let mut allocator = BarAllocator::new(bridge.memory_windows().copied());
    for earlier in placed.iter().filter(|placed| placed.bridge == index) {
        for range in earlier.bars.iter().flatten().filter_map(|bar| bar.cpu_range()) {
            allocator.reserve(range);
        }
    }
    let bridge_index = u8::try_from(index).unwrap_or(u8::MAX);
    for function in pci::enumerate(&config, bridge.bus_start, bridge.bus_end) {
        if function.vendor_id != VIRTIO_VENDOR_ID {
            continue;
        }
        let bdf = function.bdf;
        let fail = |problem| ProbeError::Pci { bridge: index, bdf, problem };
        if !MODERN_DEVICE_IDS.contains(&function.device_id) {
            found.push(Err(fail(PciProblem::Legacy { pci_device_id: function.device_id })));
            continue;
        }
        let Some(claim) = WindowClaim::take_pci(bridge_index, bdf) else {
            found.push(Err(fail(PciProblem::InUse)));
            continue;
        };
        let result = probe_function(boot, policy, bridge, &mut config, &mut allocator, placed, index, &function)
            .map(|device| {
                Some(Device {
                    transport: match device.transport {
                        ProbedTransport::Pci(transport) => ProbedTransport::Pci(Box::new(transport.with_claim(claim))),
                        other => other,
                    },
                    ..device
                })
            })
            .map_err(fail);
        found.push(result);
    }
}

#[allow(clippy::too_many_arguments)]
fn probe_function(
    boot: &Boot,
    policy: DmaPolicy,
    bridge: &PciHostBridge,
    config: &mut EcamConfig,
    allocator: &mut BarAllocator,
    placed: &mut Vec<Placed>,
    index: usize,
    function: &Function,
) -> Result<Device, PciProblem> {
    let bdf = function.bdf;
    let bars = match placed.iter().find(|placed| placed.bridge == index && placed.bdf == bdf) {
        // Placed by an earlier probe: the device must still decode there.
        Some(earlier) => {
            pci::verify_bars(config, bdf, &earlier.bars).map_err(PciProblem::Function)?;
            earlier.bars
        }
        None => {
            let bars = pci::setup_function(config, function, allocator).map_err(PciProblem::Function)?;
            placed.push(Placed { bridge: index, bdf, bars });
            bars
        }
    };
    let caps = virtio_caps(config, bdf, &bars).map_err(PciProblem::Function)?;
    let pool = bridge.pool_of(bdf.bus(), bdf.device(), bdf.function());
    let pool = pool_for(boot, policy, pool).map_err(|refusal| match refusal {
        PoolRefusal::Unusable(error) => PciProblem::Pool(error),
        PoolRefusal::NoPool => PciProblem::NoPool,
        PoolRefusal::NotRegistered(slot) => PciProblem::PoolNotRegistered { slot },
    })?;
    // CPU address of a validated structure: its BAR was placed inside a
    // bridge window and the structure checked to lie inside the BAR.
    let address = |slice: &BarSlice| -> Option<u64> {
        let bar = bars.get(usize::from(slice.bar)).copied().flatten()?;
        bar.cpu_address?.checked_add(slice.offset)
    };
    let span = |slice: &BarSlice| -> Result<MmioSpan, PciProblem> {
        let base = address(slice).and_then(|address| NonNull::new(address as *mut u8));
        let length = usize::try_from(slice.length).ok();
        match (base, length) {
            // SAFETY: the structure lies inside a BAR this probe placed (or
            // verified) inside a bridge memory window, which the final map
            // has as device memory; the function's claim makes this
            // transport its only user.
            (Some(base), Some(length)) => Ok(unsafe { MmioSpan::new(base, length) }),
            _ => Err(PciProblem::Transport(TransportError::ConfigOutOfBounds {
                offset: slice.offset as usize,
                size: slice.length as usize,
                config_size: 0,
            })),
        }
    };
    let mut shared_memory = ArrayVec::new();
    for region in &caps.shared_memory {
        if let Some(base) = address(&region.slice) {
            // Same capacity as the capability list.
            let _ = shared_memory.try_push((region.id, base, region.slice.length));
        }
    }
    let regions = PciRegions {
        common: span(&caps.common)?,
        notify: span(&caps.notify)?,
        notify_len: caps.notify.length,
        notify_off_multiplier: caps.notify_off_multiplier,
        isr: span(&caps.isr)?,
        device: match &caps.device {
            Some(device) => Some((span(device)?, usize::try_from(device.length).unwrap_or(usize::MAX))),
            None => None,
        },
        shared_memory,
    };
    // The BAR holding the common configuration names the device in
    // messages; virtio_caps checked that it is an implemented memory BAR,
    // and every such BAR was placed.
    let common_bar = bars.get(usize::from(caps.common.bar)).copied().flatten().and_then(|bar| bar.cpu_range()).ok_or(
        PciProblem::Function(PciError {
            bdf,
            kind: crate::pci::PciErrorKind::CapabilityBadBar { cfg_type: 1, bar: caps.common.bar },
        }),
    )?;
    let interrupt = match function.interrupt_pin {
        pin @ 1..=4 => bridge.intx(bdf.bus(), bdf.device(), bdf.function(), pin),
        _ => None,
    };
    let transport = PciTransport::new(function.device_id, regions).with_access_platform(true);
    Ok(Device {
        reg: common_bar,
        interrupt,
        device_id: u32::from(function.device_id - 0x1040),
        pool,
        pci: Some((index, bdf)),
        isr_address: address(&caps.isr),
        transport: ProbedTransport::Pci(Box::new(transport)),
    })
}
