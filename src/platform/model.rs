//! The platform model: what a source (a device tree today) found and
//! checked — RAM, reservations, DMA pools, devices and their transports,
//! the interrupt controller, console, power interface, timer and command
//! line — with the [`Origin`] of every entry for messages.
//!
//! Sources fill the `pub(crate)` fields; everything else reads the model
//! through its accessors.

use core::fmt;

use arrayvec::{ArrayString, ArrayVec};

use super::pci::{MAX_PCI_BRIDGES, PciHostBridge};
use super::{ErrorKind, Origin, PAGE_SIZE, PlatformError, Range, bootarg, page_span};

/// RAM ranges kept (`/memory` nodes' `reg` entries together).
pub const MAX_MEMORY_RANGES: usize = 16;
/// Memory reservation block entries and `/reserved-memory` regions together.
pub const MAX_RESERVED: usize = 16;
/// restricted-dma-pool entries kept: one per DMA pool slot, since boot
/// registers pool `n` in slot `n` (`crate::dma` checks at compile time that
/// its slots are exactly this many).
pub const MAX_POOLS: usize = 8;
/// `alloc-ranges` entries kept per dynamically placed pool.
pub const MAX_ALLOC_RANGES: usize = 4;
/// QEMU's virt machine has 32 virtio-mmio slots.
pub const MAX_VIRTIO: usize = 64;
/// GICv3 redistributor regions kept.
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 4;
/// Secure, non-secure, virtual, hypervisor and hypervisor-virtual timers.
pub const MAX_TIMER_INTERRUPTS: usize = 5;
/// Bytes of `/chosen/bootargs` kept (Linux on arm64 allows 2048).
pub const MAX_BOOTARGS: usize = 1024;

/// How PSCI calls reach the firmware or hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc`: the firmware is a hypervisor at EL2 (a guest started at EL1).
    Hvc,
    /// `smc`: the firmware is at EL3 (or a hypervisor that traps SMC).
    Smc,
}

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
        })
    }
}

/// The newest PSCI binding the `/psci` node claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PsciVersion {
    /// PSCI 0.1: function ids come from the node.
    V0_1,
    /// PSCI 0.2 (`arm,psci-0.2`): standard function ids.
    V0_2,
    /// PSCI 1.0 (`arm,psci-1.0`): standard function ids.
    V1_0,
}

impl fmt::Display for PsciVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PsciVersion::V0_1 => "PSCI 0.1",
            PsciVersion::V0_2 => "PSCI 0.2",
            PsciVersion::V1_0 => "PSCI 1.0",
        })
    }
}

/// The power interface (`/psci`): how to call it and, for PSCI 0.1, with which function ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Psci {
    /// How calls reach the PSCI implementation.
    pub conduit: Conduit,
    /// The newest binding the node claims.
    pub version: PsciVersion,
    /// PSCI 0.1's `cpu_suspend` function id. Function ids are read only
    /// for PSCI 0.1; later versions have standard ones.
    pub cpu_suspend: Option<u32>,
    /// PSCI 0.1's `cpu_off` function id.
    pub cpu_off: Option<u32>,
    /// PSCI 0.1's `cpu_on` function id.
    pub cpu_on: Option<u32>,
    /// PSCI 0.1's `migrate` function id.
    pub migrate: Option<u32>,
}

/// Which GIC interrupt space a specifier's number is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// Shared peripheral interrupt; INTID = number + 32.
    Spi,
    /// Private peripheral interrupt; INTID = number + 16.
    Ppi,
}

/// An interrupt's trigger, from the specifier's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge, low to high.
    EdgeRising,
    /// Edge, high to low.
    EdgeFalling,
    /// Level, active high.
    LevelHigh,
    /// Level, active low.
    LevelLow,
}

/// One GIC interrupt specifier (3 cells: type, number, flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    /// SPI or PPI.
    pub kind: InterruptKind,
    /// The number within its kind (not the INTID: see [`Interrupt::intid`]).
    pub number: u32,
    /// Trigger type in bits 0..4; for GICv2 PPIs, a CPU mask in bits 8..16.
    pub flags: u32,
}

impl Interrupt {
    pub(crate) fn from_cells(kind: u32, number: u32, flags: u32) -> Result<Self, ErrorKind> {
        let kind = match (kind, number) {
            (0, 0..988) => InterruptKind::Spi,
            (1, 0..16) => InterruptKind::Ppi,
            _ => return Err(ErrorKind::BadInterrupt { kind, number }),
        };
        Ok(Self { kind, number, flags })
    }

    /// The GIC interrupt id.
    pub fn intid(&self) -> u32 {
        match self.kind {
            InterruptKind::Spi => self.number.saturating_add(32),
            InterruptKind::Ppi => self.number.saturating_add(16),
        }
    }

    /// `None` for a trigger value the binding does not define.
    pub fn trigger(&self) -> Option<Trigger> {
        match self.flags & 0xf {
            1 => Some(Trigger::EdgeRising),
            2 => Some(Trigger::EdgeFalling),
            4 => Some(Trigger::LevelHigh),
            8 => Some(Trigger::LevelLow),
            _ => None,
        }
    }
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            InterruptKind::Spi => "SPI",
            InterruptKind::Ppi => "PPI",
        };
        let trigger = match self.trigger() {
            Some(Trigger::EdgeRising) => "edge-rising",
            Some(Trigger::EdgeFalling) => "edge-falling",
            Some(Trigger::LevelHigh) => "level-high",
            Some(Trigger::LevelLow) => "level-low",
            None => "trigger?",
        };
        write!(f, "{kind} {} {trigger}", self.number)
    }
}

/// The interrupt controller, with its register frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv2: distributor and CPU interface frames (memory-mapped CPU interface).
    V2 {
        /// The distributor's frame.
        distributor: Range,
        /// The CPU interface's frames.
        cpu_interface: Range,
    },
    /// GICv3: distributor and redistributor regions (the CPU interface is the ICC system
    /// registers).
    V3 {
        /// The distributor's frame.
        distributor: Range,
        /// The redistributor regions; this CPU's frame is found in them by affinity.
        redistributors: ArrayVec<Range, MAX_REDISTRIBUTOR_REGIONS>,
    },
}

impl Gic {
    /// 2 or 3.
    pub fn version(&self) -> u8 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }

    /// The distributor's frame.
    pub fn distributor(&self) -> Range {
        match self {
            Gic::V2 { distributor, .. } | Gic::V3 { distributor, .. } => *distributor,
        }
    }

    /// Every register frame, distributor first.
    pub fn ranges(&self) -> ArrayVec<Range, { 1 + MAX_REDISTRIBUTOR_REGIONS }> {
        let mut ranges = ArrayVec::new();
        let others = match self {
            Gic::V2 { cpu_interface, .. } => core::slice::from_ref(cpu_interface),
            Gic::V3 { redistributors, .. } => redistributors.as_slice(),
        };
        // Capacity is one distributor plus the most redistributors.
        let _ = ranges.try_push(self.distributor());
        let _ = ranges.try_extend_from_slice(others);
        ranges
    }
}

/// The architected timer's interrupts, in the binding's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    /// The specifiers in the binding's order: secure physical, non-secure physical, virtual,
    /// hypervisor (and hypervisor virtual), as many as the source gave.
    pub interrupts: ArrayVec<Interrupt, MAX_TIMER_INTERRUPTS>,
}

impl Timer {
    /// The secure physical timer's interrupt, if given.
    pub fn secure_physical(&self) -> Option<Interrupt> {
        self.interrupts.first().copied()
    }

    /// The non-secure physical timer's interrupt (the one a guest at EL1 uses), if given.
    pub fn physical(&self) -> Option<Interrupt> {
        self.interrupts.get(1).copied()
    }

    /// The virtual timer's interrupt, if given.
    pub fn virtual_timer(&self) -> Option<Interrupt> {
        self.interrupts.get(2).copied()
    }

    /// The hypervisor (EL2 physical) timer's interrupt, if given.
    pub fn hypervisor(&self) -> Option<Interrupt> {
        self.interrupts.get(3).copied()
    }
}

/// The PL011 to use as console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Where the UART was described.
    pub origin: Origin,
    /// Its register window.
    pub reg: Range,
    /// `None` if the node has no `interrupts` (the UART can still be polled).
    pub interrupt: Option<Interrupt>,
}

/// Memory that is not free RAM: an entry of the memory reservation block or
/// a `/reserved-memory` child with `reg` that is not a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// For a tree: the `/reserved-memory` child, or `/memreserve/` for
    /// memory reservation block entries.
    pub origin: Origin,
    /// The reserved memory.
    pub range: Range,
    /// Must not be mapped (speculative accesses included): the runtime's
    /// final map leaves it out ([`super::Layout::normal_memory`]). Never set
    /// for pools, which are not `Reserved` entries.
    pub no_map: bool,
}

/// Where a pool is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `reg`: the host chose the address.
    Fixed(Range),
    /// `size` (+ `alignment`, `alloc-ranges`): [`super::layout`] chooses.
    Dynamic {
        /// The pool's size in bytes (`size`).
        size: u64,
        /// Required alignment (`alignment`), if declared; see [`Placement::alignment`].
        alignment: Option<u64>,
        /// Where the pool may go; empty means anywhere in RAM.
        alloc_ranges: ArrayVec<Range, MAX_ALLOC_RANGES>,
    },
}

impl Placement {
    /// The alignment placement honours: the declared one, at least a page.
    pub fn alignment(&self) -> u64 {
        match self {
            Placement::Fixed(_) => PAGE_SIZE,
            Placement::Dynamic { alignment, .. } => alignment.unwrap_or(PAGE_SIZE).max(PAGE_SIZE),
        }
    }

    /// The pool's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Placement::Fixed(range) => range.size,
            Placement::Dynamic { size, .. } => *size,
        }
    }

    /// The property an error about this placement names.
    pub(crate) fn property(&self) -> &'static str {
        match self {
            Placement::Fixed(_) => "reg",
            Placement::Dynamic { .. } => "size",
        }
    }
}

/// A `restricted-dma-pool` child of `/reserved-memory`: memory shared with
/// the host, through which every DMA of its devices must bounce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The pool's node.
    pub origin: Origin,
    /// The pool node's phandle, by which devices' `memory-region` names it.
    pub phandle: Option<u32>,
    /// `Err`: the pool is unusable, and so are the devices bound to it.
    pub placement: Result<Placement, PlatformError>,
    /// The range `reg` names, if it could be read, even when the pool is
    /// unusable: the host treats that memory as shared, so [`super::layout`]
    /// keeps it out of the heap either way.
    pub declared: Option<Range>,
}

/// A virtio-mmio transport that passed every check: its window is at least
/// 0x200 bytes, 4-byte aligned, clear of RAM (to the page) and of every
/// other device window the runtime drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    /// The device's node.
    pub origin: Origin,
    /// Its register window.
    pub reg: Range,
    /// Its interrupt.
    pub interrupt: Interrupt,
    /// `dma-coherent`: the device's accesses are coherent with the CPU's caches.
    pub dma_coherent: bool,
    /// Index into [`Platform::pools`] of the pool named by `memory-region`.
    /// The runtime must also check [`super::Layout::pool`] for it.
    pub pool: Option<usize>,
}

/// What a platform source found (today the device tree's `discover`).
/// Only sources build it, and each must establish these invariants:
/// memory sorted and disjoint and below [`super::ADDRESS_LIMIT`], every
/// range non-empty and not wrapping, every `Ok` pool page-aligned, inside
/// RAM and clear of reserved regions and of other fixed pools, every
/// device's pool index valid and usable, and every device window the
/// runtime maps (UART, GIC, usable virtio) big enough for its driver,
/// aligned, below [`super::ADDRESS_LIMIT`] and sharing no page with RAM.
#[derive(Clone, Debug)]
pub struct Platform {
    pub(crate) memory: ArrayVec<Range, MAX_MEMORY_RANGES>,
    pub(crate) reserved: ArrayVec<Reserved, MAX_RESERVED>,
    pub(crate) pools: ArrayVec<Pool, MAX_POOLS>,
    pub(crate) virtio: ArrayVec<Result<VirtioMmio, PlatformError>, MAX_VIRTIO>,
    /// PCI host bridges (src/platform/pci.rs; read by src/devicetree/pci.rs).
    pub(crate) pci: ArrayVec<Result<PciHostBridge, PlatformError>, MAX_PCI_BRIDGES>,
    pub(crate) gic: Option<Gic>,
    /// Where the GIC was described, for messages; `Unnamed` without a GIC.
    pub(crate) gic_origin: Origin,
    pub(crate) psci: Option<Psci>,
    pub(crate) timer: Option<Timer>,
    pub(crate) uart: Option<Uart>,
    pub(crate) bootargs: ArrayString<MAX_BOOTARGS>,
}

impl Platform {
    /// RAM, sorted by address, without overlaps.
    pub fn memory(&self) -> &[Range] {
        &self.memory
    }

    /// All RAM, in bytes.
    pub fn total_ram(&self) -> u64 {
        self.memory.iter().map(|range| range.size).fold(0, u64::saturating_add)
    }

    /// Memory that is not free RAM (reservation block entries and non-pool `/reserved-memory`
    /// children).
    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    /// Every restricted-dma-pool, in tree order; a device's pool index points into this.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Every `virtio,mmio` node in tree order; `Err` for a device to leave
    /// alone.
    pub fn virtio(&self) -> &[Result<VirtioMmio, PlatformError>] {
        &self.virtio
    }

    /// The usable devices bound to pool `index`.
    pub fn pool_devices(&self, index: usize) -> impl Iterator<Item = &VirtioMmio> + '_ {
        self.virtio.iter().filter_map(move |device| device.as_ref().ok().filter(|device| device.pool == Some(index)))
    }

    /// Every PCI host bridge in tree order; `Err` for one to leave alone.
    pub fn pci_bridges(&self) -> &[Result<PciHostBridge, PlatformError>] {
        &self.pci
    }

    /// The interrupt controller, if the source described one.
    pub fn gic(&self) -> Option<&Gic> {
        self.gic.as_ref()
    }

    /// The power interface, if the source described one.
    pub fn psci(&self) -> Option<&Psci> {
        self.psci.as_ref()
    }

    /// How PSCI calls are made, if there is a power interface.
    pub fn psci_conduit(&self) -> Option<Conduit> {
        self.psci.map(|psci| psci.conduit)
    }

    /// The architected timer's interrupts, if the source gave them.
    pub fn timer(&self) -> Option<&Timer> {
        self.timer.as_ref()
    }

    /// The UART the console uses, if one was found.
    pub fn uart(&self) -> Option<&Uart> {
        self.uart.as_ref()
    }

    /// The kernel command line (a tree's `/chosen/bootargs`), empty if absent.
    pub fn bootargs(&self) -> &str {
        &self.bootargs
    }

    /// The value of `key=value` on the command line; the last one wins, so
    /// words appended later override earlier ones.
    pub fn bootarg(&self, key: &str) -> Option<&str> {
        bootarg(&self.bootargs, key)
    }

    /// MMIO ranges of the devices the runtime drives: the UART, the GIC
    /// frames and every usable virtio device.
    pub fn device_windows(&self) -> impl Iterator<Item = Range> + '_ {
        self.named_device_windows().map(|(_, range)| range)
    }

    /// [`Self::device_windows`] with the origin of each window.
    pub fn named_device_windows(&self) -> impl Iterator<Item = (Origin, Range)> + '_ {
        let uart = self.uart.iter().map(|uart| (uart.origin, uart.reg));
        let gic = self.gic.iter().flat_map(|gic| gic.ranges().into_iter().map(|range| (self.gic_origin, range)));
        let virtio =
            self.virtio.iter().filter_map(|device| device.as_ref().ok().map(|device| (device.origin, device.reg)));
        let pci = self
            .pci
            .iter()
            .filter_map(|bridge| bridge.as_ref().ok())
            .flat_map(|bridge| bridge.device_windows().map(|range| (bridge.origin, range)));
        uart.chain(gic).chain(virtio).chain(pci)
    }

    /// Refuses a device window that shares a page with one of `taken` (the
    /// image, the loader's input, named by their origins): the source kept
    /// windows out of RAM, but only the boot knows where those are, and the
    /// final map would make them device memory.
    pub fn check_device_windows(&self, taken: &[(Range, Origin)]) -> Result<(), PlatformError> {
        for (origin, window) in self.named_device_windows() {
            let pages = page_span(window);
            if let Some((range, other)) = taken.iter().find(|(range, _)| range.overlaps(&pages)) {
                let kind = ErrorKind::Overlap { range: window, other: *other, other_range: *range };
                return Err(PlatformError::new(origin, "reg", kind));
            }
        }
        Ok(())
    }
}

const MIB: u64 = 1024 * 1024;

/// Compact multi-line summary, as printed at boot.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory:")?;
        for range in &self.memory {
            write!(f, " {range}")?;
        }
        writeln!(f, " ({} MiB)", self.total_ram() / MIB)?;
        for reserved in &self.reserved {
            let no_map = if reserved.no_map { " no-map" } else { "" };
            writeln!(f, "reserved: {} {}{no_map}", reserved.range, reserved.origin)?;
        }
        for (index, pool) in self.pools.iter().enumerate() {
            write!(f, "pool {index} {}: ", pool.origin)?;
            match &pool.placement {
                Ok(Placement::Fixed(range)) => write!(f, "fixed {range}")?,
                Ok(Placement::Dynamic { size, alignment, alloc_ranges }) => {
                    write!(f, "dynamic {size:#x} bytes")?;
                    if let Some(alignment) = alignment {
                        write!(f, " aligned {alignment:#x}")?;
                    }
                    for range in alloc_ranges {
                        write!(f, " in {range}")?;
                    }
                }
                Err(error) => write!(f, "unusable: {error}")?,
            }
            let mut devices = self.pool_devices(index).peekable();
            if devices.peek().is_some() {
                write!(f, "; devices")?;
                for device in devices {
                    write!(f, " {:#x}", device.reg.base)?;
                }
            }
            writeln!(f)?;
        }
        let usable = self.virtio.iter().filter(|device| device.is_ok()).count();
        writeln!(f, "virtio-mmio: {} nodes, {usable} usable", self.virtio.len())?;
        for device in &self.virtio {
            match device {
                Ok(device) if device.pool.is_some() => {
                    let coherent = if device.dma_coherent { " coherent" } else { "" };
                    let pool = device.pool.unwrap_or_default();
                    writeln!(f, "  {} {}{coherent} pool {pool}", device.reg, device.interrupt)?;
                }
                Ok(_) => {}
                Err(error) => writeln!(f, "  unusable: {error}")?,
            }
        }
        for bridge in &self.pci {
            match bridge {
                Ok(bridge) => writeln!(f, "{bridge}")?,
                Err(error) => writeln!(f, "pci: unusable: {error}")?,
            }
        }
        match &self.gic {
            Some(Gic::V2 { distributor, cpu_interface }) => {
                writeln!(f, "gic: v2 distributor {distributor} cpu interface {cpu_interface}")?
            }
            Some(Gic::V3 { distributor, redistributors }) => {
                write!(f, "gic: v3 distributor {distributor} redistributors")?;
                for range in redistributors {
                    write!(f, " {range}")?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "gic: none")?,
        }
        match &self.psci {
            Some(psci) => writeln!(f, "psci: {} ({})", psci.conduit, psci.version)?,
            None => writeln!(f, "psci: none")?,
        }
        match &self.timer {
            Some(timer) => {
                write!(f, "timer:")?;
                for (index, interrupt) in timer.interrupts.iter().enumerate() {
                    let separator = if index == 0 { " " } else { ", " };
                    write!(f, "{separator}{interrupt}")?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "timer: none")?,
        }
        match &self.uart {
            Some(uart) => {
                write!(f, "uart: {} {}", uart.origin, uart.reg)?;
                if let Some(interrupt) = uart.interrupt {
                    write!(f, " {interrupt}")?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "uart: none")?,
        }
        writeln!(f, "bootargs: {:?}", self.bootargs.as_str())
    }
}
