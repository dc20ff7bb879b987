//! Discovery: the parts of the tree the runtime uses, checked.

use core::fmt::{self, Write as _};

use arrayvec::{ArrayString, ArrayVec};
use fdt::Fdt;
use fdt::node::FdtNode;

use super::blob::{self, RESERVATION_SIZE, be64};
use super::error::{DtError, DtErrorKind, MEMRESERVE, NodePath, ShortValue, reservation_entry};
use super::node::{self, Node, parse_string};
use super::pci::{Context as PciContext, MAX_PCI_BRIDGES, PciHostBridge, PciScan};
use crate::platform::{
    self, ADDRESS_LIMIT, GICV2_CPU_INTERFACE_WINDOW, GICV2_DISTRIBUTOR_WINDOW, GICV3_DISTRIBUTOR_WINDOW,
    GICV3_REDISTRIBUTOR_WINDOW, PAGE_SIZE, PL011_WINDOW, Range, VIRTIO_WINDOW, WindowError, WindowRule, bootarg,
    page_span, ram_covers,
};

pub const MAX_MEMORY_RANGES: usize = 16;
/// Memory reservation block entries and `/reserved-memory` regions together.
pub const MAX_RESERVED: usize = 16;
/// restricted-dma-pool nodes kept: one per DMA pool slot, since boot
/// registers tree pool `n` in slot `n`.
pub use crate::dma::MAX_POOLS;
pub const MAX_ALLOC_RANGES: usize = 4;
/// QEMU's virt machine has 32 virtio-mmio slots.
pub const MAX_VIRTIO: usize = 64;
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 4;
/// Secure, non-secure, virtual, hypervisor and hypervisor-virtual timers.
pub const MAX_TIMER_INTERRUPTS: usize = 5;
/// Bytes of `/chosen/bootargs` kept (Linux on arm64 allows 2048).
pub const MAX_BOOTARGS: usize = 1024;
/// Nodes with a phandle; QEMU's virt trees have fewer than ten.
pub const MAX_PHANDLES: usize = 256;

const GICV2_COMPATIBLE: [&str; 4] = ["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a9-gic", "arm,cortex-a7-gic"];
const GICV3_COMPATIBLE: &str = "arm,gic-v3";
const TIMER_COMPATIBLE: [&str; 2] = ["arm,armv8-timer", "arm,armv7-timer"];
const POOL_COMPATIBLE: &str = "restricted-dma-pool";
const VIRTIO_COMPATIBLE: &str = "virtio,mmio";
const UART_COMPATIBLE: &str = "arm,pl011";

/// How PSCI calls reach the firmware or hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
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
    V0_1,
    V0_2,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Psci {
    pub conduit: Conduit,
    pub version: PsciVersion,
    /// Function ids, which only PSCI 0.1 needs from the tree.
    pub cpu_suspend: Option<u32>,
    pub cpu_off: Option<u32>,
    pub cpu_on: Option<u32>,
    pub migrate: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// Shared peripheral interrupt; INTID = number + 32.
    Spi,
    /// Private peripheral interrupt; INTID = number + 16.
    Ppi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    EdgeRising,
    EdgeFalling,
    LevelHigh,
    LevelLow,
}

/// One GIC interrupt specifier (3 cells: type, number, flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub kind: InterruptKind,
    pub number: u32,
    /// Trigger type in bits 0..4; for GICv2 PPIs, a CPU mask in bits 8..16.
    pub flags: u32,
}

impl Interrupt {
    pub(super) fn from_cells(kind: u32, number: u32, flags: u32) -> Result<Self, DtErrorKind> {
        let kind = match (kind, number) {
            (0, 0..988) => InterruptKind::Spi,
            (1, 0..16) => InterruptKind::Ppi,
            _ => return Err(DtErrorKind::BadInterrupt { kind, number }),
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gic {
    V2 { distributor: Range, cpu_interface: Range },
    V3 { distributor: Range, redistributors: ArrayVec<Range, MAX_REDISTRIBUTOR_REGIONS> },
}

impl Gic {
    pub fn version(&self) -> u8 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }

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
    pub interrupts: ArrayVec<Interrupt, MAX_TIMER_INTERRUPTS>,
}

impl Timer {
    pub fn secure_physical(&self) -> Option<Interrupt> {
        self.interrupts.first().copied()
    }

    pub fn physical(&self) -> Option<Interrupt> {
        self.interrupts.get(1).copied()
    }

    pub fn virtual_timer(&self) -> Option<Interrupt> {
        self.interrupts.get(2).copied()
    }

    pub fn hypervisor(&self) -> Option<Interrupt> {
        self.interrupts.get(3).copied()
    }
}

/// The PL011 to use as console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub node: NodePath,
    pub reg: Range,
    /// `None` if the node has no `interrupts` (the UART can still be polled).
    pub interrupt: Option<Interrupt>,
}

/// Memory that is not free RAM: an entry of the memory reservation block or
/// a `/reserved-memory` child with `reg` that is not a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// `/memreserve/` for memory reservation block entries.
    pub node: NodePath,
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
        size: u64,
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

    pub fn size(&self) -> u64 {
        match self {
            Placement::Fixed(range) => range.size,
            Placement::Dynamic { size, .. } => *size,
        }
    }

    /// The property an error about this placement names.
    fn property(&self) -> &'static str {
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
    pub node: NodePath,
    pub phandle: Option<u32>,
    /// `Err`: the pool is unusable, and so are the devices bound to it.
    pub placement: Result<Placement, DtError>,
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
    pub node: NodePath,
    pub reg: Range,
    pub interrupt: Interrupt,
    pub dma_coherent: bool,
    /// Index into [`Platform::pools`] of the pool named by `memory-region`.
    /// The runtime must also check [`super::Layout::pool`] for it.
    pub pool: Option<usize>,
}

/// What [`discover`] found. Built only by `discover`, so its invariants
/// hold: memory sorted and disjoint and below [`ADDRESS_LIMIT`], every
/// range non-empty and not wrapping, every `Ok` pool page-aligned, inside
/// RAM and clear of reserved regions and of other fixed pools, every
/// device's pool index valid and usable, and every device window the
/// runtime maps (UART, GIC, usable virtio) big enough for its driver,
/// aligned, below [`ADDRESS_LIMIT`] and sharing no page with RAM.
#[derive(Clone, Debug)]
pub struct Platform {
    memory: ArrayVec<Range, MAX_MEMORY_RANGES>,
    reserved: ArrayVec<Reserved, MAX_RESERVED>,
    pools: ArrayVec<Pool, MAX_POOLS>,
    virtio: ArrayVec<Result<VirtioMmio, DtError>, MAX_VIRTIO>,
    /// PCI host bridges (src/devicetree/pci.rs).
    pci: ArrayVec<Result<PciHostBridge, DtError>, MAX_PCI_BRIDGES>,
    gic: Option<Gic>,
    /// The GIC's node, for messages; empty without a GIC.
    gic_node: NodePath,
    psci: Option<Psci>,
    timer: Option<Timer>,
    uart: Option<Uart>,
    bootargs: ArrayString<MAX_BOOTARGS>,
}

impl Platform {
    /// RAM, sorted by address, without overlaps.
    pub fn memory(&self) -> &[Range] {
        &self.memory
    }

    pub fn total_ram(&self) -> u64 {
        self.memory.iter().map(|range| range.size).fold(0, u64::saturating_add)
    }

    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Every `virtio,mmio` node in tree order; `Err` for a device to leave
    /// alone.
    pub fn virtio(&self) -> &[Result<VirtioMmio, DtError>] {
        &self.virtio
    }

    /// The usable devices bound to pool `index`.
    pub fn pool_devices(&self, index: usize) -> impl Iterator<Item = &VirtioMmio> + '_ {
        self.virtio.iter().filter_map(move |device| device.as_ref().ok().filter(|device| device.pool == Some(index)))
    }

    /// Every PCI host bridge in tree order; `Err` for one to leave alone.
    pub fn pci_bridges(&self) -> &[Result<PciHostBridge, DtError>] {
        &self.pci
    }

    pub fn gic(&self) -> Option<&Gic> {
        self.gic.as_ref()
    }

    pub fn psci(&self) -> Option<&Psci> {
        self.psci.as_ref()
    }

    pub fn psci_conduit(&self) -> Option<Conduit> {
        self.psci.map(|psci| psci.conduit)
    }

    pub fn timer(&self) -> Option<&Timer> {
        self.timer.as_ref()
    }

    pub fn uart(&self) -> Option<&Uart> {
        self.uart.as_ref()
    }

    /// `/chosen/bootargs`, empty if absent.
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

    /// [`Self::device_windows`] with the node each window comes from.
    pub fn named_device_windows(&self) -> impl Iterator<Item = (NodePath, Range)> + '_ {
        let uart = self.uart.iter().map(|uart| (uart.node, uart.reg));
        let gic = self.gic.iter().flat_map(|gic| gic.ranges().into_iter().map(|range| (self.gic_node, range)));
        let virtio =
            self.virtio.iter().filter_map(|device| device.as_ref().ok().map(|device| (device.node, device.reg)));
        let pci = self
            .pci
            .iter()
            .filter_map(|bridge| bridge.as_ref().ok())
            .flat_map(|bridge| bridge.device_windows().map(|range| (bridge.node, range)));
        uart.chain(gic).chain(virtio).chain(pci)
    }

    /// Refuses a device window that shares a page with one of `taken` (the
    /// image, the loader's tree): discovery keeps windows out of RAM, but
    /// only the boot knows where those are, and the final map would make
    /// them device memory.
    pub fn check_device_windows(&self, taken: &[(Range, &str)]) -> Result<(), DtError> {
        for (node, window) in self.named_device_windows() {
            let pages = page_span(window);
            if let Some((range, name)) = taken.iter().find(|(range, _)| range.overlaps(&pages)) {
                let kind = DtErrorKind::Overlap { range: window, other: NodePath::new(name), other_range: *range };
                return Err(DtError::at(node, "reg", kind));
            }
        }
        Ok(())
    }
}

/// Reads the platform from a blob written by [`super::normalize`].
///
/// Fails as a whole for anything that decides which memory is free or that
/// the runtime cannot run correctly without (structure, RAM, reservations,
/// GIC, PSCI, timer, console, bootargs). Problems of one pool or one virtio
/// device are recorded on that entry instead. The blob is validated again
/// (without copying), so any input is safe, but one with FDT_NOP tokens is
/// refused.
pub fn discover(normalized: &[u8]) -> Result<Platform, DtError> {
    let blob = blob::validate_normalized(normalized)?;
    // The crate checks only magic and size, both just validated.
    let fdt = Fdt::new(blob.bytes).map_err(|_| {
        let available = blob.bytes.len() as u64;
        DtError::header("totalsize", DtErrorKind::Truncated { needed: available, available })
    })?;
    let mut scan = Scan::new(&fdt);
    scan.read_reservations(blob.reservations)?;
    node::walk(&fdt, &mut |node| scan.visit(node))?;
    scan.finish()
}

/// Raw interrupt cells and interrupt parent of a node, decoded once the
/// GIC is known.
#[derive(Clone, Copy)]
struct RawInterrupts<'a> {
    cells: Option<&'a [u8]>,
    parent: Option<u32>,
}

/// A virtio node as read in the walk, before phandles are resolved.
struct PendingVirtio<'a> {
    path: NodePath,
    reg: Range,
    dma_coherent: bool,
    interrupts: RawInterrupts<'a>,
    memory_region: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Gic,
    Pool(usize),
    Other,
}

/// A node with a phandle: what it is, and where (walk order) for messages.
struct PhandleEntry {
    phandle: u32,
    role: Role,
    ordinal: usize,
}

#[derive(Clone, Copy, Default)]
struct Chosen<'a> {
    stdout_path: Option<&'a [u8]>,
    bootargs: Option<&'a [u8]>,
}

/// State of one discovery: the walk fills it, `finish` checks and resolves.
struct Scan<'b, 'a> {
    fdt: &'b Fdt<'a>,
    memory: ArrayVec<(Range, NodePath), MAX_MEMORY_RANGES>,
    reserved: ArrayVec<Reserved, MAX_RESERVED>,
    pools: ArrayVec<Pool, MAX_POOLS>,
    virtio: ArrayVec<Result<PendingVirtio<'a>, DtError>, MAX_VIRTIO>,
    gic: Option<(Gic, NodePath)>,
    psci: Option<Psci>,
    timer: Option<(NodePath, RawInterrupts<'a>)>,
    chosen: Option<Chosen<'a>>,
    aliases: Option<FdtNode<'b, 'a>>,
    phandles: ArrayVec<PhandleEntry, MAX_PHANDLES>,
    pci: PciScan<'a>,
}

fn too_many(limit: usize) -> DtErrorKind {
    DtErrorKind::TooManyEntries { limit: limit as u32 }
}

impl<'b, 'a> Scan<'b, 'a> {
    fn new(fdt: &'b Fdt<'a>) -> Self {
        Self {
            fdt,
            memory: ArrayVec::new(),
            reserved: ArrayVec::new(),
            pools: ArrayVec::new(),
            virtio: ArrayVec::new(),
            gic: None,
            psci: None,
            timer: None,
            chosen: None,
            aliases: None,
            phandles: ArrayVec::new(),
            pci: PciScan::default(),
        }
    }

    fn read_reservations(&mut self, entries: &[u8]) -> Result<(), DtError> {
        for (index, entry) in entries.chunks_exact(RESERVATION_SIZE).enumerate() {
            let (Some(base), Some(size)) = (be64(entry, 0), be64(entry, 8)) else {
                continue;
            };
            // The block has no properties: the entry's index stands in.
            let fail = |kind| DtError::at(NodePath::new(MEMRESERVE), reservation_entry(index).as_str(), kind);
            let range = Range::new(base, size).map_err(|error| fail(error.into()))?;
            let reserved = Reserved { node: NodePath::new(MEMRESERVE), range, no_map: false };
            self.reserved.try_push(reserved).map_err(|_| fail(too_many(MAX_RESERVED)))?;
        }
        Ok(())
    }

    fn visit(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), DtError> {
        let available = node.is_available();
        let mut role = Role::Other;
        let in_reserved_memory =
            node.parent.is_some_and(|parent| parent.depth == 1 && parent.name() == "reserved-memory");
        if node.depth == 1 {
            match node.name() {
                "chosen" if self.chosen.is_none() => {
                    let stdout_path = node.property("stdout-path").or_else(|| node.property("linux,stdout-path"));
                    self.chosen = Some(Chosen { stdout_path, bootargs: node.property("bootargs") });
                }
                "aliases" if self.aliases.is_none() => self.aliases = Some(node.fdt_node),
                _ => {}
            }
            // Linux goes by device_type, not by the node name.
            if available && node.property("device_type") == Some(b"memory\0") {
                self.add_memory(node)?;
            }
        } else if node.depth == 2 && in_reserved_memory && available {
            if node.is_compatible(POOL_COMPATIBLE) {
                // A pool's `no-map` is not honoured: every DMA buffer is
                // bounced through the pool, so it must be mapped. (Linux
                // refuses `no-map` on a restricted-dma-pool outright, as its
                // swiotlb needs the pool in the linear map.)
                role = Role::Pool(self.pools.len());
                self.pools.try_push(read_pool(node)).map_err(|_| node.error("compatible", too_many(MAX_POOLS)))?;
            } else {
                self.add_reserved(node)?;
            }
        }
        if available {
            if self.read_gic(node)? {
                role = Role::Gic;
            }
            if node.is_compatible(VIRTIO_COMPATIBLE) {
                let device = read_virtio(node);
                self.virtio.try_push(device).map_err(|_| node.error("compatible", too_many(MAX_VIRTIO)))?;
            }
            self.read_psci(node)?;
            self.pci.visit(node)?;
            if TIMER_COMPATIBLE.iter().any(|compatible| node.is_compatible(compatible)) {
                if self.timer.is_some() {
                    return Err(node.error("compatible", too_many(1)));
                }
                let interrupts = RawInterrupts { cells: node.property("interrupts"), parent: node.interrupt_parent()? };
                self.timer = Some((node.path(), interrupts));
            }
        }
        // A malformed phandle only matters to whoever refers to it, which
        // then finds no node.
        if let Ok(Some(phandle)) = node.phandle() {
            let entry = PhandleEntry { phandle, role, ordinal: node.ordinal };
            self.phandles.try_push(entry).map_err(|_| node.error("phandle", too_many(MAX_PHANDLES)))?;
        }
        Ok(())
    }

    fn add_memory(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), DtError> {
        for range in node.ranges("reg")? {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            self.memory.try_push((range, node.path())).map_err(|_| node.error("reg", too_many(MAX_MEMORY_RANGES)))?;
        }
        Ok(())
    }

    /// A reservation without `reg` asks the OS to allocate memory for some
    /// driver of its own; there is none here, so it is skipped.
    fn add_reserved(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), DtError> {
        if !node.has_property("reg") {
            return Ok(());
        }
        let no_map = node.has_property("no-map");
        for range in node.ranges("reg")? {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            let reserved = Reserved { node: node.path(), range, no_map };
            self.reserved.try_push(reserved).map_err(|_| node.error("reg", too_many(MAX_RESERVED)))?;
        }
        Ok(())
    }

    /// Reads the node if it is a supported GIC; returns whether it was.
    fn read_gic(&mut self, node: &Node<'_, 'b, 'a>) -> Result<bool, DtError> {
        let v3 = node.is_compatible(GICV3_COMPATIBLE);
        let v2 = GICV2_COMPATIBLE.iter().any(|compatible| node.is_compatible(compatible));
        if !(v2 || v3) || !node.has_property("interrupt-controller") {
            return Ok(false);
        }
        if self.gic.is_some() {
            return Err(node.error("compatible", too_many(1)));
        }
        let path = node.path();
        let cells = node
            .u32("#interrupt-cells")?
            .ok_or_else(|| node.error("#interrupt-cells", DtErrorKind::MissingProperty))?;
        if cells != 3 {
            return Err(node.error("#interrupt-cells", DtErrorKind::BadCells { cells }));
        }
        let regions = if v3 { node.u32("#redistributor-regions")?.unwrap_or(1) } else { 1 };
        if regions == 0 || regions as usize > MAX_REDISTRIBUTOR_REGIONS {
            let mut value = ShortValue::default();
            let _ = write!(value, "{regions}");
            return Err(node.error("#redistributor-regions", DtErrorKind::UnsupportedValue { value }));
        }
        let mut frames: ArrayVec<Range, { 1 + MAX_REDISTRIBUTOR_REGIONS }> = ArrayVec::new();
        for range in node.ranges("reg")?.take(1 + regions as usize) {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            frames.try_push(range).map_err(|_| node.error("reg", too_many(1 + MAX_REDISTRIBUTOR_REGIONS)))?;
        }
        let (Some(&distributor), Some(rest)) = (frames.first(), frames.get(1..)) else {
            return Err(node.error("reg", DtErrorKind::MissingProperty));
        };
        if rest.len() != regions as usize {
            let expected = (1 + regions) * 4 * 4;
            let len = node.property("reg").map_or(0, <[u8]>::len) as u32;
            return Err(node.error("reg", DtErrorKind::WrongLength { len, expected }));
        }
        let gic = match (v3, rest.first()) {
            (true, _) => {
                let mut redistributors = ArrayVec::new();
                // `regions` is at most the capacity, checked above.
                let _ = redistributors.try_extend_from_slice(rest);
                Gic::V3 { distributor, redistributors }
            }
            (false, Some(&cpu_interface)) => Gic::V2 { distributor, cpu_interface },
            (false, None) => return Err(node.error("reg", DtErrorKind::MissingProperty)),
        };
        self.gic = Some((gic, path));
        Ok(true)
    }

    fn read_psci(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), DtError> {
        const BINDINGS: [(&str, PsciVersion); 3] =
            [("arm,psci-1.0", PsciVersion::V1_0), ("arm,psci-0.2", PsciVersion::V0_2), ("arm,psci", PsciVersion::V0_1)];
        let Some(version) =
            BINDINGS.iter().find(|(compatible, _)| node.is_compatible(compatible)).map(|binding| binding.1)
        else {
            return Ok(());
        };
        if self.psci.is_some() {
            return Err(node.error("compatible", too_many(1)));
        }
        let method = node.string("method")?.ok_or_else(|| node.error("method", DtErrorKind::MissingProperty))?;
        let conduit = match method {
            "hvc" => Conduit::Hvc,
            "smc" => Conduit::Smc,
            other => {
                return Err(node.error("method", DtErrorKind::UnsupportedValue { value: ShortValue::new(other) }));
            }
        };
        self.psci = Some(Psci {
            conduit,
            version,
            cpu_suspend: node.u32("cpu_suspend")?,
            cpu_off: node.u32("cpu_off")?,
            cpu_on: node.u32("cpu_on")?,
            migrate: node.u32("migrate")?,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<Platform, DtError> {
        let memory = self.check_memory()?;
        self.check_pools(&memory);
        // The GIC and the console are needed to run at all: a bad window
        // fails discovery. A bad virtio window leaves just that device out.
        if let Some((gic, node)) = &self.gic {
            check_gic_windows(gic, &self.memory).map_err(|kind| DtError::at(*node, "reg", kind))?;
        }
        let resolver = Resolver { fdt: self.fdt, phandles: &self.phandles, pools: &self.pools };
        let timer = match &self.timer {
            Some((path, interrupts)) => {
                let interrupts = resolver.interrupts::<MAX_TIMER_INTERRUPTS>(path, *interrupts, 4)?;
                Some(Timer { interrupts })
            }
            None => None,
        };
        let uart = self.find_uart(&resolver)?;
        if let Some(uart) = &uart {
            check_window(uart.reg, PL011_WINDOW, &self.memory).map_err(|kind| DtError::at(uart.node, "reg", kind))?;
        }

        // Windows of the UART and the GIC, which no virtio window may share.
        let mut fixed: ArrayVec<(NodePath, Range), { 2 + MAX_REDISTRIBUTOR_REGIONS }> = ArrayVec::new();
        if let Some(uart) = &uart {
            let _ = fixed.try_push((uart.node, uart.reg));
        }
        if let Some((gic, node)) = &self.gic {
            for range in gic.ranges() {
                // Room for the UART and every GIC frame.
                let _ = fixed.try_push((*node, range));
            }
        }
        let mut virtio = ArrayVec::new();
        // Same capacity as the pending list, so nothing is dropped.
        for pending in &self.virtio {
            let device = pending.as_ref().map_err(|error| *error).and_then(|pending| {
                check_window(pending.reg, VIRTIO_WINDOW, &self.memory)
                    .map_err(|kind| DtError::at(pending.path, "reg", kind))?;
                if let Some((other, other_range)) = fixed.iter().find(|(_, range)| range.overlaps(&pending.reg)) {
                    let kind = DtErrorKind::Overlap { range: pending.reg, other: *other, other_range: *other_range };
                    return Err(DtError::at(pending.path, "reg", kind));
                }
                resolver.virtio(pending)
            });
            let _ = virtio.try_push(device);
        }
        refuse_shared_windows(&mut virtio);
        let pci = {
            let mut others: ArrayVec<(NodePath, Range), { 2 + MAX_REDISTRIBUTOR_REGIONS + MAX_VIRTIO }> =
                fixed.iter().copied().collect();
            for device in virtio.iter().flatten() {
                let _ = others.try_push((device.node, device.reg));
            }
            let gic_parent = |phandle| match resolver.resolve(phandle)? {
                entry if entry.role == Role::Gic => Ok(()),
                entry => Err(DtErrorKind::UnsupportedInterruptParent { node: node::path_of(self.fdt, entry.ordinal) }),
            };
            let pool = |path: &NodePath, phandle| resolver.pool(path, phandle);
            let context =
                PciContext { memory: &self.memory, other_windows: &others, pool: &pool, gic_parent: &gic_parent };
            self.pci.finish(&context)
        };
        let chosen = self.chosen.unwrap_or_default();
        let mut bootargs = ArrayString::new();
        if let Some(value) = chosen.bootargs {
            let text = parse_string(value).map_err(|kind| DtError::new("/chosen", "bootargs", kind))?;
            bootargs.try_push_str(text).map_err(|_| {
                let kind = DtErrorKind::TooLong { len: text.len() as u32, limit: MAX_BOOTARGS as u32 };
                DtError::new("/chosen", "bootargs", kind)
            })?;
        }
        let (gic, gic_node) = match self.gic {
            Some((gic, node)) => (Some(gic), node),
            None => (None, NodePath::default()),
        };
        Ok(Platform {
            memory,
            reserved: self.reserved,
            pools: self.pools,
            virtio,
            pci,
            gic,
            gic_node,
            psci: self.psci,
            timer,
            uart,
            bootargs,
        })
    }

    /// Sorts RAM and refuses overlaps (with two claims on the same bytes,
    /// neither can be trusted) and RAM the page tables cannot map.
    fn check_memory(&mut self) -> Result<ArrayVec<Range, MAX_MEMORY_RANGES>, DtError> {
        self.memory.sort_unstable_by_key(|(range, _)| *range);
        if let Some((range, node)) = self.memory.iter().find(|(range, _)| range.end() > ADDRESS_LIMIT) {
            let kind = DtErrorKind::BeyondAddressSpace { range: *range, limit: ADDRESS_LIMIT };
            return Err(DtError::at(*node, "reg", kind));
        }
        for pair in self.memory.windows(2) {
            if let [(lower, lower_node), (upper, upper_node)] = pair
                && lower.overlaps(upper)
            {
                let kind = DtErrorKind::Overlap { range: *upper, other: *lower_node, other_range: *lower };
                return Err(DtError::at(*upper_node, "reg", kind));
            }
        }
        if self.memory.is_empty() {
            return Err(DtError::new("/memory", "reg", DtErrorKind::NoRam));
        }
        let mut memory = ArrayVec::new();
        for (range, _) in &self.memory {
            // Same capacity as the list it comes from.
            let _ = memory.try_push(*range);
        }
        Ok(memory)
    }

    /// Records on each pool what makes it unusable given RAM, reservations
    /// and the other fixed pools.
    fn check_pools(&mut self, memory: &[Range]) {
        let total_ram = memory.iter().map(|range| range.size).fold(0, u64::saturating_add);
        for pool in &mut self.pools {
            if let Ok(placement) = &pool.placement
                && let Err(kind) = check_pool(placement, memory, total_ram, &self.reserved)
            {
                pool.placement = Err(DtError::at(pool.node, placement.property(), kind));
            }
        }
        // Two fixed pools over the same bytes: both are suspect.
        let mut conflicts: ArrayVec<(usize, DtError), MAX_POOLS> = ArrayVec::new();
        for (index, pool) in self.pools.iter().enumerate() {
            let Ok(Placement::Fixed(range)) = pool.placement else {
                continue;
            };
            let other = self.pools.iter().enumerate().find_map(|(other_index, other)| match other.placement {
                Ok(Placement::Fixed(other_range)) if other_index != index && other_range.overlaps(&range) => {
                    Some((other.node, other_range))
                }
                _ => None,
            });
            if let Some((other, other_range)) = other {
                let error = DtError::at(pool.node, "reg", DtErrorKind::Overlap { range, other, other_range });
                // One entry per pool at most.
                let _ = conflicts.try_push((index, error));
            }
        }
        for (index, error) in conflicts {
            if let Some(pool) = self.pools.get_mut(index) {
                pool.placement = Err(error);
            }
        }
    }

    /// The console: `/chosen/stdout-path` (a path or an alias, options
    /// after ':' ignored) if it names an available PL011, else the first
    /// available PL011.
    fn find_uart(&self, resolver: &Resolver<'_, 'b, 'a>) -> Result<Option<Uart>, DtError> {
        let target = self.stdout_target()?;
        let mut chosen = None;
        let mut first = None;
        node::walk(self.fdt, &mut |node| {
            if node.is_compatible(UART_COMPATIBLE) && node.is_available() {
                if chosen.is_none() && target.is_some_and(|target| node::path_matches(node, target)) {
                    chosen = Some(read_uart(node, resolver));
                } else if first.is_none() {
                    first = Some(read_uart(node, resolver));
                }
            }
            Ok(())
        })?;
        chosen.or(first).transpose()
    }

    fn stdout_target(&self) -> Result<Option<&'a str>, DtError> {
        let Some(value) = self.chosen.and_then(|chosen| chosen.stdout_path) else {
            return Ok(None);
        };
        let text = parse_string(value).map_err(|kind| DtError::new("/chosen", "stdout-path", kind))?;
        let path = text.split(':').next().unwrap_or_default();
        if path.starts_with('/') {
            return Ok(Some(path));
        }
        let Some(aliases) = self.aliases else {
            return Ok(None);
        };
        let Some(alias) = aliases.properties().find(|property| property.name == path) else {
            return Ok(None);
        };
        let target = parse_string(alias.value).map_err(|kind| DtError::new("/aliases", alias.name, kind))?;
        Ok(target.starts_with('/').then_some(target))
    }
}

/// The shared window rule ([`crate::platform::check_window`]), its
/// violation named in tree terms: the memory node a window shares a page
/// with.
pub(crate) fn check_window(range: Range, rule: WindowRule, memory: &[(Range, NodePath)]) -> Result<(), DtErrorKind> {
    let ram: ArrayVec<Range, MAX_MEMORY_RANGES> =
        memory.iter().map(|(range, _)| *range).take(MAX_MEMORY_RANGES).collect();
    platform::check_window(range, rule, &ram).map_err(|error| match error {
        WindowError::BeyondAddressSpace { range, limit } => DtErrorKind::BeyondAddressSpace { range, limit },
        WindowError::Misaligned { value, alignment } => DtErrorKind::Misaligned { value, alignment },
        WindowError::TooSmall { size, min } => DtErrorKind::WindowTooSmall { size, min },
        WindowError::InRam { range, ram } => {
            let memory = memory.iter().find(|(entry, _)| *entry == ram).map(|(_, node)| *node).unwrap_or_default();
            DtErrorKind::DeviceInRam { range, memory, ram }
        }
    })
}

/// Every GIC frame against what arm-gic touches in it.
fn check_gic_windows(gic: &Gic, memory: &[(Range, NodePath)]) -> Result<(), DtErrorKind> {
    match gic {
        Gic::V2 { distributor, cpu_interface } => {
            check_window(*distributor, GICV2_DISTRIBUTOR_WINDOW, memory)?;
            check_window(*cpu_interface, GICV2_CPU_INTERFACE_WINDOW, memory)
        }
        Gic::V3 { distributor, redistributors } => {
            check_window(*distributor, GICV3_DISTRIBUTOR_WINDOW, memory)?;
            redistributors.iter().try_for_each(|range| check_window(*range, GICV3_REDISTRIBUTOR_WINDOW, memory))
        }
    }
}

/// Two virtio windows over the same registers: both drivers would drive
/// one device, so neither is used (as with two pools over the same bytes).
fn refuse_shared_windows(virtio: &mut ArrayVec<Result<VirtioMmio, DtError>, MAX_VIRTIO>) {
    let mut clashes: ArrayVec<(usize, DtError), MAX_VIRTIO> = ArrayVec::new();
    for (index, device) in virtio.iter().enumerate() {
        let Ok(device) = device else {
            continue;
        };
        let other = virtio.iter().enumerate().find_map(|(other_index, other)| match other {
            Ok(other) if other_index != index && other.reg.overlaps(&device.reg) => Some(other),
            _ => None,
        });
        if let Some(other) = other {
            let kind = DtErrorKind::Overlap { range: device.reg, other: other.node, other_range: other.reg };
            // One entry per device at most.
            let _ = clashes.try_push((index, DtError::at(device.node, "reg", kind)));
        }
    }
    for (index, error) in clashes {
        if let Some(device) = virtio.get_mut(index) {
            *device = Err(error);
        }
    }
}

/// A pool's own problems, given RAM and reservations.
fn check_pool(
    placement: &Placement,
    memory: &[Range],
    total_ram: u64,
    reserved: &[Reserved],
) -> Result<(), DtErrorKind> {
    let size = placement.size();
    if size > total_ram {
        return Err(DtErrorKind::AbsurdSize { size, limit: total_ram });
    }
    if !size.is_multiple_of(PAGE_SIZE) {
        return Err(DtErrorKind::Misaligned { value: size, alignment: PAGE_SIZE });
    }
    let Placement::Fixed(range) = *placement else {
        return Ok(());
    };
    if !range.base.is_multiple_of(PAGE_SIZE) {
        return Err(DtErrorKind::Misaligned { value: range.base, alignment: PAGE_SIZE });
    }
    if !ram_covers(memory, range) {
        return Err(DtErrorKind::OutsideRam { range });
    }
    if let Some(other) = reserved.iter().find(|reserved| reserved.range.overlaps(&range)) {
        return Err(DtErrorKind::Overlap { range, other: other.node, other_range: other.range });
    }
    Ok(())
}

fn read_pool(node: &Node<'_, '_, '_>) -> Pool {
    let placement = read_placement(node);
    let declared = match placement {
        Ok(Placement::Fixed(range)) => Some(range),
        _ => None,
    };
    let (phandle, placement) = match node.phandle() {
        Ok(phandle) => (phandle, placement),
        Err(error) => (None, Err(error)),
    };
    Pool { node: node.path(), phandle, placement, declared }
}

fn read_placement(node: &Node<'_, '_, '_>) -> Result<Placement, DtError> {
    // As in Linux, `reg` wins over `size`.
    if node.has_property("reg") {
        let range = node.single_range("reg")?;
        return Ok(Placement::Fixed(range));
    }
    let size = node.size_value("size")?.ok_or_else(|| node.error("size", DtErrorKind::MissingProperty))?;
    if size == 0 {
        return Err(node.error("size", DtErrorKind::ZeroSize { base: None }));
    }
    let alignment = node.size_value("alignment")?;
    if let Some(alignment) = alignment
        && !alignment.is_power_of_two()
    {
        return Err(node.error("alignment", DtErrorKind::AlignmentNotPowerOfTwo { alignment }));
    }
    let mut alloc_ranges = ArrayVec::new();
    if node.has_property("alloc-ranges") {
        for range in node.ranges("alloc-ranges")? {
            let range = range.map_err(|kind| node.error("alloc-ranges", kind))?;
            alloc_ranges.try_push(range).map_err(|_| node.error("alloc-ranges", too_many(MAX_ALLOC_RANGES)))?;
        }
    }
    Ok(Placement::Dynamic { size, alignment, alloc_ranges })
}

fn read_virtio<'a>(node: &Node<'_, '_, 'a>) -> Result<PendingVirtio<'a>, DtError> {
    Ok(PendingVirtio {
        path: node.path(),
        reg: node.single_range("reg")?,
        dma_coherent: node.dma_coherent(),
        interrupts: RawInterrupts { cells: node.property("interrupts"), parent: node.interrupt_parent()? },
        memory_region: node.phandle_reference("memory-region")?,
    })
}

fn read_uart(node: &Node<'_, '_, '_>, resolver: &Resolver<'_, '_, '_>) -> Result<Uart, DtError> {
    let path = node.path();
    let reg = node.single_range("reg")?;
    let interrupt = match node.property("interrupts") {
        None => None,
        Some(cells) => {
            let raw = RawInterrupts { cells: Some(cells), parent: node.interrupt_parent()? };
            resolver.interrupts::<1>(&path, raw, 1)?.first().copied()
        }
    };
    Ok(Uart { node: path, reg, interrupt })
}

/// Resolves phandles against the table the walk built.
struct Resolver<'s, 'b, 'a> {
    fdt: &'b Fdt<'a>,
    phandles: &'s [PhandleEntry],
    pools: &'s [Pool],
}

impl Resolver<'_, '_, '_> {
    fn resolve(&self, phandle: u32) -> Result<&PhandleEntry, DtErrorKind> {
        let mut matches = self.phandles.iter().filter(|entry| entry.phandle == phandle);
        match (matches.next(), matches.next()) {
            (Some(entry), None) => Ok(entry),
            (None, _) => Err(DtErrorKind::DanglingPhandle { phandle }),
            (Some(_), Some(_)) => Err(DtErrorKind::DuplicatePhandle { phandle }),
        }
    }

    /// Decodes between `min` and `N` GIC interrupt specifiers.
    fn interrupts<const N: usize>(
        &self,
        path: &NodePath,
        raw: RawInterrupts<'_>,
        min: usize,
    ) -> Result<ArrayVec<Interrupt, N>, DtError> {
        const SPECIFIER: usize = 12;
        let fail = |property, kind| DtError::at(*path, property, kind);
        let cells = raw.cells.ok_or_else(|| fail("interrupts", DtErrorKind::MissingProperty))?;
        let parent = raw.parent.ok_or_else(|| fail("interrupt-parent", DtErrorKind::NoInterruptParent))?;
        let entry = self.resolve(parent).map_err(|kind| fail("interrupt-parent", kind))?;
        if entry.role != Role::Gic {
            let node = node::path_of(self.fdt, entry.ordinal);
            return Err(fail("interrupt-parent", DtErrorKind::UnsupportedInterruptParent { node }));
        }
        let count = cells.len() / SPECIFIER;
        if !cells.len().is_multiple_of(SPECIFIER) || count < min || count > N {
            let expected = if count < min { min } else { N };
            let kind = DtErrorKind::WrongLength { len: cells.len() as u32, expected: (expected * SPECIFIER) as u32 };
            return Err(fail("interrupts", kind));
        }
        let mut interrupts = ArrayVec::new();
        for specifier in cells.chunks_exact(SPECIFIER) {
            let cell = |index: usize| blob::be32(specifier, index * 4).unwrap_or_default();
            let interrupt =
                Interrupt::from_cells(cell(0), cell(1), cell(2)).map_err(|kind| fail("interrupts", kind))?;
            interrupts.try_push(interrupt).map_err(|_| fail("interrupts", too_many(N)))?;
        }
        Ok(interrupts)
    }

    fn virtio(&self, pending: &PendingVirtio<'_>) -> Result<VirtioMmio, DtError> {
        let interrupt = self.interrupts::<1>(&pending.path, pending.interrupts, 1)?;
        let interrupt = interrupt
            .first()
            .copied()
            .ok_or_else(|| DtError::at(pending.path, "interrupts", DtErrorKind::MissingProperty))?;
        let pool = pending.memory_region.map(|phandle| self.pool(&pending.path, phandle)).transpose()?;
        Ok(VirtioMmio { node: pending.path, reg: pending.reg, interrupt, dma_coherent: pending.dma_coherent, pool })
    }

    /// The index of the usable pool `phandle` names.
    fn pool(&self, path: &NodePath, phandle: u32) -> Result<usize, DtError> {
        let fail = |kind| DtError::at(*path, "memory-region", kind);
        let entry = self.resolve(phandle).map_err(fail)?;
        let Role::Pool(index) = entry.role else {
            return Err(fail(DtErrorKind::NotAPool { phandle, node: node::path_of(self.fdt, entry.ordinal) }));
        };
        match self.pools.get(index) {
            Some(Pool { placement: Ok(_), .. }) => Ok(index),
            Some(pool) => Err(fail(DtErrorKind::PoolUnusable { pool: pool.node })),
            None => Err(fail(DtErrorKind::DanglingPhandle { phandle })),
        }
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
            writeln!(f, "reserved: {} {}{no_map}", reserved.range, reserved.node)?;
        }
        for (index, pool) in self.pools.iter().enumerate() {
            write!(f, "pool {index} {}: ", pool.node)?;
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
                write!(f, "uart: {} {}", uart.node, uart.reg)?;
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
