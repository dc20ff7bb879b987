//! PCI host bridges: `pci-host-ecam-generic` (QEMU virt) and
//! `pci-host-cam-generic` (crosvm), read from the tree as hostile input.
//!
//! What the runtime takes from a bridge node: the config window (`reg`),
//! the bus range, the memory windows of `ranges` it may assign BARs from,
//! INTx routing (`interrupt-map`, GIC parents only), `dma-coherent`, and
//! the restricted DMA pool every device behind it uses (`memory-region`,
//! as Linux binds a pool to a bridge), or a per-function pool from a child
//! node whose `reg` names bus/device/function (PCI bus binding).
//!
//! A bridge with a bad config window, bus range, `ranges` that overlap RAM,
//! each other or another device, or a bad pool is left out with a
//! [`DtError`] naming node and property. A memory window beyond
//! [`ADDRESS_LIMIT`] (QEMU virt's 64-bit window starts exactly there) is
//! not usable by this runtime's page tables: it is dropped and recorded in
//! [`PciHostBridge::refused_windows`], and the bridge carries on with the
//! windows that remain (64-bit BARs can live in the 32-bit window). A
//! bridge left with no memory window at all is refused.
//!
//! This file is kept apart from `platform.rs` on purpose: the platform scan
//! calls [`PciScan::visit`] and [`PciScan::finish`] and stores the result,
//! nothing more.

use arrayvec::ArrayVec;

use super::blob::be32;
use super::error::{DtError, DtErrorKind, NodePath, ShortValue};
use super::node::{Node, read_cells};
use super::platform::Interrupt;
use crate::platform::{ADDRESS_LIMIT, PCI_WINDOW, Range};

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
/// Interrupt controllers whose cell counts are remembered for
/// `interrupt-map`.
const MAX_INTERRUPT_CONTROLLERS: usize = 8;

const ECAM_COMPATIBLE: &str = "pci-host-ecam-generic";
const CAM_COMPATIBLE: &str = "pci-host-cam-generic";

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
    Io,
    Memory32,
    Memory64,
}

/// One usable window of the bridge: CPU addresses `cpu`, seen on the PCI
/// side from `pci_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    pub space: SpaceCode,
    pub prefetchable: bool,
    pub cpu: Range,
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
    pub interrupt: Interrupt,
}

/// A function-specific pool from a child node of the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionPool {
    pub node: NodePath,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    /// Index into [`super::Platform::pools`].
    pub pool: usize,
}

/// A host bridge that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHostBridge {
    pub node: NodePath,
    pub mechanism: ConfigMechanism,
    /// The part of `reg` the bus range uses: what the runtime maps.
    pub config: Range,
    pub bus_start: u8,
    pub bus_end: u8,
    /// Usable windows (I/O windows are recorded but never mapped).
    pub windows: ArrayVec<PciWindow, MAX_PCI_WINDOWS>,
    /// Windows dropped (e.g. beyond the page tables' reach), with why; at
    /// most [`MAX_REFUSED_WINDOWS`] are kept, as they are only reported.
    pub refused_windows: ArrayVec<DtError, MAX_REFUSED_WINDOWS>,
    pub dma_coherent: bool,
    /// Pool of every device behind the bridge (`memory-region`).
    pub pool: Option<usize>,
    pub function_pools: ArrayVec<FunctionPool, MAX_PCI_FUNCTION_POOLS>,
    pub interrupt_map_mask: [u32; 4],
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
        write!(f, "pci: {} {mechanism} {} buses {}..={}", self.node, self.config, self.bus_start, self.bus_end)?;
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

/// A bridge as read in the walk, before phandles are resolved.
pub(super) struct PendingBridge<'a> {
    path: NodePath,
    mechanism: ConfigMechanism,
    reg: Range,
    bus_start: u8,
    bus_end: u8,
    windows: ArrayVec<PciWindow, MAX_PCI_WINDOWS>,
    refused_windows: ArrayVec<DtError, MAX_REFUSED_WINDOWS>,
    dma_coherent: bool,
    memory_region: Option<u32>,
    interrupt_map: Option<&'a [u8]>,
    interrupt_map_mask: [u32; 4],
    children: ArrayVec<(NodePath, u8, u8, u8, u32), MAX_PCI_FUNCTION_POOLS>,
}

/// Cell counts of an interrupt controller, for decoding `interrupt-map`.
#[derive(Clone, Copy)]
struct Controller {
    phandle: u32,
    address_cells: u32,
    interrupt_cells: u32,
}

/// What the platform scan keeps for PCI during the walk.
#[derive(Default)]
pub(super) struct PciScan<'a> {
    bridges: ArrayVec<Result<PendingBridge<'a>, DtError>, MAX_PCI_BRIDGES>,
    controllers: ArrayVec<Controller, MAX_INTERRUPT_CONTROLLERS>,
}

/// What `finish` needs from the platform scan.
pub(super) struct Context<'r> {
    /// RAM with the node declaring it.
    pub memory: &'r [(Range, NodePath)],
    /// Windows of other devices (UART, GIC, virtio-mmio) with their nodes.
    pub other_windows: &'r [(NodePath, Range)],
    /// Resolves a `memory-region` phandle to a usable pool index.
    pub pool: &'r dyn Fn(&NodePath, u32) -> Result<usize, DtError>,
    /// `Ok` if the phandle names the GIC, else why it cannot be an
    /// interrupt parent here (dangling, duplicate, or another node).
    pub gic_parent: &'r dyn Fn(u32) -> Result<(), DtErrorKind>,
}

fn too_many(limit: usize) -> DtErrorKind {
    DtErrorKind::TooManyEntries { limit: limit as u32 }
}

fn unsupported(text: &str) -> DtErrorKind {
    DtErrorKind::UnsupportedValue { value: ShortValue::new(text) }
}

impl<'a> PciScan<'a> {
    /// Looks at every available node of the walk.
    pub(super) fn visit(&mut self, node: &Node<'_, '_, 'a>) -> Result<(), DtError> {
        if node.has_property("interrupt-controller")
            && let (Ok(Some(phandle)), Ok(Some(interrupt_cells))) = (node.phandle(), node.u32("#interrupt-cells"))
        {
            // `#address-cells` of an interrupt parent defaults to 0 here.
            let address_cells = node.u32("#address-cells").ok().flatten().unwrap_or(0);
            let _ = self.controllers.try_push(Controller { phandle, address_cells, interrupt_cells });
        }
        let mechanism = if node.is_compatible(ECAM_COMPATIBLE) {
            ConfigMechanism::Ecam
        } else if node.is_compatible(CAM_COMPATIBLE) {
            ConfigMechanism::Cam
        } else {
            if let Some(parent) = node.parent
                && (parent.is_compatible(ECAM_COMPATIBLE) || parent.is_compatible(CAM_COMPATIBLE))
            {
                self.visit_child(node, parent);
            }
            return Ok(());
        };
        let bridge = read_bridge(node, mechanism);
        self.bridges.try_push(bridge).map_err(|_| node.error("compatible", too_many(MAX_PCI_BRIDGES)))
    }

    /// A child of a bridge: `reg` = phys.hi (bus/device/function) and
    /// `memory-region` give one function its own pool.
    fn visit_child(&mut self, node: &Node<'_, '_, 'a>, parent: &Node<'_, '_, 'a>) {
        let path = parent.path();
        let Some(slot) = self.bridges.iter_mut().rev().find(|bridge| match bridge {
            Ok(bridge) => bridge.path == path,
            Err(error) => error.node == path,
        }) else {
            return;
        };
        let Ok(bridge) = slot else {
            return;
        };
        let result = (|| {
            let Some(phandle) = node.phandle_reference("memory-region")? else {
                return Ok(None);
            };
            let reg = node.property("reg").ok_or_else(|| node.error("reg", DtErrorKind::MissingProperty))?;
            // 3 address cells + 2 size cells per entry; only the first counts.
            if reg.len() < 12 || !reg.len().is_multiple_of(20) {
                return Err(node.error("reg", DtErrorKind::BadLength { len: reg.len() as u32, unit: 20 }));
            }
            let hi = be32(reg, 0).unwrap_or_default();
            let bus = (hi >> 16) as u8;
            let device = ((hi >> 11) & 0x1f) as u8;
            let function = ((hi >> 8) & 7) as u8;
            Ok(Some((node.path(), bus, device, function, phandle)))
        })();
        match result {
            Ok(Some(entry)) => {
                if bridge.children.try_push(entry).is_err() {
                    log::warn!("{}", node.error("memory-region", too_many(MAX_PCI_FUNCTION_POOLS)));
                }
            }
            Ok(None) => {}
            // A bad child makes the whole bridge suspect.
            Err(error) => *slot = Err(error),
        }
    }

    /// Resolves pools and interrupts and checks every window against RAM
    /// and the other devices.
    pub(super) fn finish(&self, context: &Context<'_>) -> ArrayVec<Result<PciHostBridge, DtError>, MAX_PCI_BRIDGES> {
        let mut bridges = ArrayVec::new();
        for (index, pending) in self.bridges.iter().enumerate() {
            let bridge = pending.as_ref().map_err(|error| *error).and_then(|pending| {
                let earlier = self.bridges.iter().take(index).filter_map(|bridge| bridge.as_ref().ok());
                self.resolve(pending, context, earlier)
            });
            // Same capacity as the pending list.
            let _ = bridges.try_push(bridge);
        }
        bridges
    }

    fn resolve<'p>(
        &self,
        pending: &PendingBridge<'_>,
        context: &Context<'_>,
        earlier: impl Iterator<Item = &'p PendingBridge<'p>>,
    ) -> Result<PciHostBridge, DtError>
    where
        'a: 'p,
    {
        let path = pending.path;
        let fail = |property: &str, kind| DtError::at(path, property, kind);
        // The config window: as much as the bus range needs.
        let buses = u64::from(pending.bus_end - pending.bus_start) + 1;
        let needed = buses << pending.mechanism.bus_shift();
        if pending.reg.size < needed {
            return Err(fail("reg", DtErrorKind::WindowTooSmall { size: pending.reg.size, min: needed }));
        }
        let config = Range { base: pending.reg.base, size: needed };
        check_device_window(config, context).map_err(|kind| fail("reg", kind))?;
        let mut windows: ArrayVec<PciWindow, MAX_PCI_WINDOWS> = ArrayVec::new();
        for window in &pending.windows {
            if window.space != SpaceCode::Io {
                check_device_window(window.cpu, context).map_err(|kind| fail("ranges", kind))?;
                let clash = windows.iter().map(|other| other.cpu).chain(core::iter::once(config));
                if let Some(other) = clash.clone().find(|other| other.overlaps(&window.cpu)) {
                    return Err(fail(
                        "ranges",
                        DtErrorKind::Overlap { range: window.cpu, other: path, other_range: other },
                    ));
                }
            }
            // Same capacity.
            let _ = windows.try_push(*window);
        }
        if !windows.iter().any(|window| window.space != SpaceCode::Io) {
            return Err(fail("ranges", DtErrorKind::MissingProperty));
        }
        // Another bridge over the same addresses.
        for other in earlier {
            let theirs = core::iter::once(other.reg).chain(other.windows.iter().map(|window| window.cpu));
            let ours = core::iter::once(config).chain(windows.iter().map(|window| window.cpu));
            for mine in ours {
                if let Some(their) = theirs.clone().find(|their| their.overlaps(&mine)) {
                    let kind = DtErrorKind::Overlap { range: mine, other: other.path, other_range: their };
                    return Err(fail("ranges", kind));
                }
            }
        }
        let pool = pending.memory_region.map(|phandle| (context.pool)(&path, phandle)).transpose()?;
        let mut function_pools = ArrayVec::new();
        for (node, bus, device, function, phandle) in &pending.children {
            let pool = (context.pool)(node, *phandle)?;
            let entry = FunctionPool { node: *node, bus: *bus, device: *device, function: *function, pool };
            // Same capacity.
            let _ = function_pools.try_push(entry);
        }
        let intx = match pending.interrupt_map {
            Some(map) => self.interrupt_map(&path, map, context)?,
            None => ArrayVec::new(),
        };
        Ok(PciHostBridge {
            node: path,
            mechanism: pending.mechanism,
            config,
            bus_start: pending.bus_start,
            bus_end: pending.bus_end,
            windows,
            refused_windows: pending.refused_windows.clone(),
            dma_coherent: pending.dma_coherent,
            pool,
            function_pools,
            interrupt_map_mask: pending.interrupt_map_mask,
            intx,
        })
    }

    /// Decodes `interrupt-map`: child unit address (3 cells) and pin (1
    /// cell), parent phandle, parent unit address (the parent's
    /// `#address-cells`), parent specifier (3 GIC cells).
    fn interrupt_map(
        &self,
        path: &NodePath,
        mut map: &[u8],
        context: &Context<'_>,
    ) -> Result<ArrayVec<IntxRoute, MAX_INTX_ROUTES>, DtError> {
        let fail = |kind| DtError::at(*path, "interrupt-map", kind);
        let mut routes = ArrayVec::new();
        while !map.is_empty() {
            let cell = |index: usize| be32(map, index * 4);
            let (Some(child_hi), Some(pin), Some(phandle)) = (cell(0), cell(3), cell(4)) else {
                return Err(fail(DtErrorKind::BadLength { len: map.len() as u32, unit: 4 }));
            };
            (context.gic_parent)(phandle).map_err(fail)?;
            let controller = self
                .controllers
                .iter()
                .find(|controller| controller.phandle == phandle)
                .ok_or(fail(DtErrorKind::DanglingPhandle { phandle }))?;
            if controller.interrupt_cells != 3 || controller.address_cells > 2 {
                return Err(fail(DtErrorKind::BadCells { cells: controller.interrupt_cells }));
            }
            let specifier = 5 + controller.address_cells as usize;
            let (Some(kind), Some(number), Some(flags)) = (cell(specifier), cell(specifier + 1), cell(specifier + 2))
            else {
                return Err(fail(DtErrorKind::BadLength { len: map.len() as u32, unit: 4 }));
            };
            let interrupt = Interrupt::from_cells(kind, number, flags).map_err(fail)?;
            routes.try_push(IntxRoute { child_hi, pin, interrupt }).map_err(|_| fail(too_many(MAX_INTX_ROUTES)))?;
            map = map.get((specifier + 3) * 4..).unwrap_or_default();
        }
        Ok(routes)
    }
}

/// A window the runtime would map as device memory: page-aligned, below
/// the page tables' limit, clear of RAM (to the page) and of every other
/// device window.
fn check_device_window(range: Range, context: &Context<'_>) -> Result<(), DtErrorKind> {
    super::platform::check_window(range, PCI_WINDOW, context.memory)?;
    if let Some((node, other)) = context.other_windows.iter().find(|(_, other)| other.overlaps(&range)) {
        return Err(DtErrorKind::Overlap { range, other: *node, other_range: *other });
    }
    Ok(())
}

fn read_bridge<'a>(node: &Node<'_, '_, 'a>, mechanism: ConfigMechanism) -> Result<PendingBridge<'a>, DtError> {
    let path = node.path();
    let reg = node.single_range("reg")?;
    let (bus_start, bus_end) = match node.property("bus-range") {
        None => (0, 255),
        Some(value) => match (value.len(), be32(value, 0), be32(value, 4)) {
            (8, Some(start), Some(end)) if start <= end && end <= 255 => (start as u8, end as u8),
            (8, Some(_), Some(_)) => return Err(node.error("bus-range", unsupported("start>end/>255"))),
            (len, _, _) => {
                return Err(node.error("bus-range", DtErrorKind::WrongLength { len: len as u32, expected: 8 }));
            }
        },
    };
    // The bridge's own cells: 3 address cells (phys.hi, 64-bit address), 2
    // size cells, as the PCI bus binding fixes them.
    let address = node.u32("#address-cells")?.unwrap_or(0);
    if address != 3 {
        return Err(node.error("#address-cells", DtErrorKind::BadCells { cells: address }));
    }
    let size = node.u32("#size-cells")?.unwrap_or(0);
    if size != 2 {
        return Err(node.error("#size-cells", DtErrorKind::BadCells { cells: size }));
    }
    let parent = node.address_cells("ranges")?;
    let ranges = node.property("ranges").ok_or_else(|| node.error("ranges", DtErrorKind::MissingProperty))?;
    let unit = 4 * (3 + parent.address as usize + 2);
    if ranges.is_empty() || !ranges.len().is_multiple_of(unit) {
        return Err(node.error("ranges", DtErrorKind::BadLength { len: ranges.len() as u32, unit: unit as u32 }));
    }
    if ranges.len() / unit > MAX_PCI_WINDOWS {
        return Err(node.error("ranges", too_many(MAX_PCI_WINDOWS)));
    }
    let mut windows = ArrayVec::new();
    let mut refused_windows = ArrayVec::new();
    for entry in ranges.chunks_exact(unit) {
        let hi = be32(entry, 0).unwrap_or_default();
        let pci_base = read_cells(entry.get(4..).unwrap_or_default(), 2).unwrap_or_default();
        let cpu_base = read_cells(entry.get(12..).unwrap_or_default(), parent.address).unwrap_or_default();
        let size_at = 12 + 4 * parent.address as usize;
        let size = read_cells(entry.get(size_at..).unwrap_or_default(), 2).unwrap_or_default();
        let space = match (hi >> 24) & 3 {
            1 => SpaceCode::Io,
            2 => SpaceCode::Memory32,
            3 => SpaceCode::Memory64,
            _ => return Err(node.error("ranges", unsupported("config space"))),
        };
        let cpu = Range::new(cpu_base, size).map_err(|error| node.error("ranges", error.into()))?;
        if pci_base.checked_add(size).is_none()
            || (space == SpaceCode::Memory32 && pci_base.saturating_add(size) > 1 << 32)
        {
            let kind = DtErrorKind::RangeOverflow { base: pci_base, size };
            return Err(node.error("ranges", kind));
        }
        let window = PciWindow { space, prefetchable: hi & (1 << 30) != 0, cpu, pci_base };
        if space != SpaceCode::Io && cpu.end() > ADDRESS_LIMIT {
            // Unusable, not hostile: mapping it is beyond the page tables.
            let kind = DtErrorKind::BeyondAddressSpace { range: cpu, limit: ADDRESS_LIMIT };
            let _ = refused_windows.try_push(node.error("ranges", kind));
            continue;
        }
        // At most MAX_PCI_WINDOWS entries, checked above.
        let _ = windows.try_push(window);
    }
    let mut interrupt_map_mask = [u32::MAX; 4];
    if let Some(mask) = node.property("interrupt-map-mask") {
        if mask.len() != 16 {
            let kind = DtErrorKind::WrongLength { len: mask.len() as u32, expected: 16 };
            return Err(node.error("interrupt-map-mask", kind));
        }
        for (index, cell) in interrupt_map_mask.iter_mut().enumerate() {
            *cell = be32(mask, index * 4).unwrap_or_default();
        }
    }
    Ok(PendingBridge {
        path,
        mechanism,
        reg,
        bus_start,
        bus_end,
        windows,
        refused_windows,
        dma_coherent: node.dma_coherent(),
        memory_region: node.phandle_reference("memory-region")?,
        interrupt_map: node.property("interrupt-map"),
        interrupt_map_mask,
        children: ArrayVec::new(),
    })
}
