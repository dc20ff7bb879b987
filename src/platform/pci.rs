//! The description of a PCI host bridge, as a source (today the tree,
//! src/devicetree/pci.rs) produces it: config window and mechanism, bus
//! range, memory windows, INTx routing, coherence and pools.

use arrayvec::ArrayVec;

use super::model::Interrupt;
use super::{Origin, PlatformError, Range};

/// Host bridges the runtime keeps.
pub const MAX_PCI_BRIDGES: usize = 4;
/// `ranges` entries per bridge.
pub const MAX_PCI_WINDOWS: usize = 4;
/// `interrupt-map` entries per bridge (QEMU virt has 16: 4 slots x 4 pins).
pub const MAX_INTX_ROUTES: usize = 16;
/// Refused windows remembered per bridge for reporting.
pub const MAX_REFUSED_WINDOWS: usize = 2;
/// Child nodes naming one function's own pool.
pub const MAX_PCI_FUNCTION_POOLS: usize = 4;
/// How bus/device/function/register become an offset in the config window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigMechanism {
    /// PCIe ECAM: 1 MiB per bus (bus << 20 | dev << 15 | fn << 12 | reg),
    /// 4 KiB of config space per function.
    Ecam,
    /// PCI CAM: 64 KiB per bus (bus << 16 | dev << 11 | fn << 8 | reg),
    /// 256 bytes per function.
    Cam,
}

impl ConfigMechanism {
    /// log2 of the window bytes one bus takes.
    pub fn bus_shift(self) -> u32 {
        match self {
            ConfigMechanism::Ecam => 20,
            ConfigMechanism::Cam => 16,
        }
    }

    /// Config space bytes of one function.
    pub fn function_size(self) -> u64 {
        1 << (self.bus_shift() - 8)
    }
}

/// The address space a `ranges` entry maps (phys.hi bits 24..26).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceCode {
    /// I/O space (recorded, never mapped: I/O BARs are not supported).
    Io,
    /// 32-bit memory space.
    Memory32,
    /// 64-bit memory space.
    Memory64,
}

/// One usable window of the bridge: CPU addresses `cpu`, seen on the PCI
/// side from `pci_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    /// Which address space the window maps.
    pub space: SpaceCode,
    /// The `ranges` entry's prefetchable bit (phys.hi bit 30).
    pub prefetchable: bool,
    /// The CPU addresses of the window.
    pub cpu: Range,
    /// The PCI address of `cpu.base`.
    pub pci_base: u64,
}

impl PciWindow {
    /// The CPU address of PCI address `pci`, if the window holds
    /// `pci..pci + size`.
    pub fn cpu_address(&self, pci: u64, size: u64) -> Option<u64> {
        let offset = pci.checked_sub(self.pci_base)?;
        let end = offset.checked_add(size)?;
        (end <= self.cpu.size).then(|| self.cpu.base + offset)
    }

    /// The PCI address of CPU address `cpu`.
    pub fn pci_address(&self, cpu: u64) -> Option<u64> {
        let offset = cpu.checked_sub(self.cpu.base)?;
        (offset < self.cpu.size).then(|| self.pci_base.wrapping_add(offset))
    }
}

/// One `interrupt-map` entry: device `device` (bits 11..16 of phys.hi
/// after the mask), pin 1..=4 (INTA..INTD) -> a GIC interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxRoute {
    /// phys.hi of the child unit address, already masked.
    pub child_hi: u32,
    /// Interrupt pin, already masked.
    pub pin: u32,
    /// The GIC interrupt the pin is routed to.
    pub interrupt: Interrupt,
}

/// A function-specific pool from a child node of the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionPool {
    /// The child node that names the pool.
    pub origin: Origin,
    /// Bus number of the function (from the child's `reg`).
    pub bus: u8,
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
    /// Index into [`super::Platform::pools`].
    pub pool: usize,
}

/// A host bridge that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHostBridge {
    /// The bridge's node.
    pub origin: Origin,
    /// How config space is addressed (ECAM or CAM).
    pub mechanism: ConfigMechanism,
    /// The part of `reg` the bus range uses: what the runtime maps.
    pub config: Range,
    /// First bus number (`bus-range`).
    pub bus_start: u8,
    /// Last bus number (`bus-range`), inclusive.
    pub bus_end: u8,
    /// Usable windows (I/O windows are recorded but never mapped).
    pub windows: ArrayVec<PciWindow, MAX_PCI_WINDOWS>,
    /// Windows dropped (e.g. beyond the page tables' reach), with why; at
    /// most [`MAX_REFUSED_WINDOWS`] are kept, as they are only reported.
    pub refused_windows: ArrayVec<PlatformError, MAX_REFUSED_WINDOWS>,
    /// `dma-coherent`: devices behind the bridge are coherent with the CPU's caches.
    pub dma_coherent: bool,
    /// Pool of every device behind the bridge (`memory-region`).
    pub pool: Option<usize>,
    /// Pools of single functions (a child node with `memory-region`), which take precedence over
    /// the bridge's.
    pub function_pools: ArrayVec<FunctionPool, MAX_PCI_FUNCTION_POOLS>,
    /// `interrupt-map-mask`: phys.hi, phys.mid, phys.lo and pin cells, all ones when absent.
    pub interrupt_map_mask: [u32; 4],
    /// The `interrupt-map` entries for INTx, with the mask applied.
    pub intx: ArrayVec<IntxRoute, MAX_INTX_ROUTES>,
}

impl PciHostBridge {
    /// Memory windows (never I/O): what BARs are assigned from and what the
    /// runtime maps as device memory.
    pub fn memory_windows(&self) -> impl Iterator<Item = &PciWindow> + '_ {
        self.windows.iter().filter(|window| window.space != SpaceCode::Io)
    }

    /// The pool of function `bus:device.function`: its own child node's if
    /// there is one, else the bridge's.
    pub fn pool_of(&self, bus: u8, device: u8, function: u8) -> Option<usize> {
        self.function_pools
            .iter()
            .find(|entry| entry.bus == bus && entry.device == device && entry.function == function)
            .map(|entry| entry.pool)
            .or(self.pool)
    }

    /// The GIC interrupt of INTx pin `pin` (1..=4) of `bus:device.function`,
    /// through `interrupt-map`.
    pub fn intx(&self, bus: u8, device: u8, function: u8, pin: u8) -> Option<Interrupt> {
        let hi = (u32::from(bus) << 16) | (u32::from(device & 0x1f) << 11) | (u32::from(function & 7) << 8);
        let child_hi = hi & self.interrupt_map_mask[0];
        let pin = u32::from(pin) & self.interrupt_map_mask[3];
        self.intx.iter().find(|route| route.child_hi == child_hi && route.pin == pin).map(|route| route.interrupt)
    }

    /// Device windows the runtime maps: the config window and every memory
    /// window.
    pub fn device_windows(&self) -> impl Iterator<Item = Range> + '_ {
        core::iter::once(self.config).chain(self.memory_windows().map(|window| window.cpu))
    }
}

/// One line for the boot summary.
impl core::fmt::Display for PciHostBridge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mechanism = match self.mechanism {
            ConfigMechanism::Ecam => "ecam",
            ConfigMechanism::Cam => "cam",
        };
        write!(f, "pci: {} {mechanism} {} buses {}..={}", self.origin, self.config, self.bus_start, self.bus_end)?;
        for window in self.memory_windows() {
            let bits = if window.space == SpaceCode::Memory64 { 64 } else { 32 };
            write!(f, "; mem{bits} {}", window.cpu)?;
        }
        if let Some(pool) = self.pool {
            write!(f, "; pool {pool}")?;
        }
        for function in &self.function_pools {
            write!(f, "; {:02x}:{:02x}.{} pool {}", function.bus, function.device, function.function, function.pool)?;
        }
        for refused in &self.refused_windows {
            write!(f, "; not used: {}", refused.kind)?;
        }
        Ok(())
    }
}
