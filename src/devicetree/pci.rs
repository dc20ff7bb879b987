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
//! [`PlatformError`] naming node and property. A memory window beyond
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
use super::error::at;
use super::node::{Node, read_cells};
use crate::platform::{
    ADDRESS_LIMIT, ConfigMechanism, FunctionPool, Interrupt, IntxRoute, MAX_INTX_ROUTES, MAX_PCI_BRIDGES,
    MAX_PCI_FUNCTION_POOLS, MAX_PCI_WINDOWS, MAX_REFUSED_WINDOWS, PCI_WINDOW, PciHostBridge, PciWindow, Range,
    SpaceCode, check_window,
};
use crate::platform::{ErrorKind, NodePath, Origin, PlatformError, ShortValue};

/// Interrupt controllers whose cell counts are remembered for
/// `interrupt-map`.
const MAX_INTERRUPT_CONTROLLERS: usize = 8;

const ECAM_COMPATIBLE: &str = "pci-host-ecam-generic";
const CAM_COMPATIBLE: &str = "pci-host-cam-generic";

/// A bridge as read in the walk, before phandles are resolved.
pub(super) struct PendingBridge<'a> {
    path: NodePath,
    mechanism: ConfigMechanism,
    reg: Range,
    bus_start: u8,
    bus_end: u8,
    windows: ArrayVec<PciWindow, MAX_PCI_WINDOWS>,
    refused_windows: ArrayVec<PlatformError, MAX_REFUSED_WINDOWS>,
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
    bridges: ArrayVec<Result<PendingBridge<'a>, PlatformError>, MAX_PCI_BRIDGES>,
    controllers: ArrayVec<Controller, MAX_INTERRUPT_CONTROLLERS>,
}

/// What `finish` needs from the platform scan.
pub(super) struct Context<'r> {
    /// RAM with the node declaring it.
    pub memory: &'r [(Range, Origin)],
    /// Windows of other devices (UART, GIC, virtio-mmio) with their nodes.
    pub other_windows: &'r [(Origin, Range)],
    /// Resolves a `memory-region` phandle to a usable pool index.
    pub pool: &'r dyn Fn(&NodePath, u32) -> Result<usize, PlatformError>,
    /// `Ok` if the phandle names the GIC, else why it cannot be an
    /// interrupt parent here (dangling, duplicate, or another node).
    pub gic_parent: &'r dyn Fn(u32) -> Result<(), ErrorKind>,
}

fn too_many(limit: usize) -> ErrorKind {
    ErrorKind::TooManyEntries { limit: limit as u32 }
}

fn unsupported(text: &str) -> ErrorKind {
    ErrorKind::UnsupportedValue { value: ShortValue::new(text) }
}

impl<'a> PciScan<'a> {
    /// Looks at every available node of the walk.
    pub(super) fn visit(&mut self, node: &Node<'_, '_, 'a>) -> Result<(), PlatformError> {
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
            Err(error) => error.origin == Origin::Node(path),
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
            let reg = node.property("reg").ok_or_else(|| node.error("reg", ErrorKind::MissingProperty))?;
            // 3 address cells + 2 size cells per entry; only the first counts.
            if reg.len() < 12 || !reg.len().is_multiple_of(20) {
                return Err(node.error("reg", ErrorKind::BadLength { len: reg.len() as u32, unit: 20 }));
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
    pub(super) fn finish(
        &self,
        context: &Context<'_>,
    ) -> ArrayVec<Result<PciHostBridge, PlatformError>, MAX_PCI_BRIDGES> {
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
    ) -> Result<PciHostBridge, PlatformError>
    where
        'a: 'p,
    {
        let path = pending.path;
        let fail = |property: &str, kind| at(path, property, kind);
        // The config window: as much as the bus range needs.
        let buses = u64::from(pending.bus_end - pending.bus_start) + 1;
        let needed = buses << pending.mechanism.bus_shift();
        if pending.reg.size < needed {
            return Err(fail("reg", ErrorKind::WindowTooSmall { size: pending.reg.size, min: needed }));
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
                        ErrorKind::Overlap { range: window.cpu, other: Origin::Node(path), other_range: other },
                    ));
                }
            }
            // Same capacity.
            let _ = windows.try_push(*window);
        }
        if !windows.iter().any(|window| window.space != SpaceCode::Io) {
            return Err(fail("ranges", ErrorKind::MissingProperty));
        }
        // Another bridge over the same addresses.
        for other in earlier {
            let theirs = core::iter::once(other.reg).chain(other.windows.iter().map(|window| window.cpu));
            let ours = core::iter::once(config).chain(windows.iter().map(|window| window.cpu));
            for mine in ours {
                if let Some(their) = theirs.clone().find(|their| their.overlaps(&mine)) {
                    let kind = ErrorKind::Overlap { range: mine, other: Origin::Node(other.path), other_range: their };
                    return Err(fail("ranges", kind));
                }
            }
        }
        let pool = pending.memory_region.map(|phandle| (context.pool)(&path, phandle)).transpose()?;
        let mut function_pools = ArrayVec::new();
        for (node, bus, device, function, phandle) in &pending.children {
            let pool = (context.pool)(node, *phandle)?;
            let entry =
                FunctionPool { origin: Origin::Node(*node), bus: *bus, device: *device, function: *function, pool };
            // Same capacity.
            let _ = function_pools.try_push(entry);
        }
        let intx = match pending.interrupt_map {
            Some(map) => self.interrupt_map(&path, map, context)?,
            None => ArrayVec::new(),
        };
        Ok(PciHostBridge {
            origin: Origin::Node(path),
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
    ) -> Result<ArrayVec<IntxRoute, MAX_INTX_ROUTES>, PlatformError> {
        let fail = |kind| at(*path, "interrupt-map", kind);
        let mut routes = ArrayVec::new();
        while !map.is_empty() {
            let cell = |index: usize| be32(map, index * 4);
            let (Some(child_hi), Some(pin), Some(phandle)) = (cell(0), cell(3), cell(4)) else {
                return Err(fail(ErrorKind::BadLength { len: map.len() as u32, unit: 4 }));
            };
            (context.gic_parent)(phandle).map_err(fail)?;
            let controller = self
                .controllers
                .iter()
                .find(|controller| controller.phandle == phandle)
                .ok_or(fail(ErrorKind::DanglingPhandle { phandle }))?;
            if controller.interrupt_cells != 3 || controller.address_cells > 2 {
                return Err(fail(ErrorKind::BadCells { cells: controller.interrupt_cells }));
            }
            let specifier = 5 + controller.address_cells as usize;
            let (Some(kind), Some(number), Some(flags)) = (cell(specifier), cell(specifier + 1), cell(specifier + 2))
            else {
                return Err(fail(ErrorKind::BadLength { len: map.len() as u32, unit: 4 }));
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
fn check_device_window(range: Range, context: &Context<'_>) -> Result<(), ErrorKind> {
    check_window(range, PCI_WINDOW, context.memory)?;
    if let Some((node, other)) = context.other_windows.iter().find(|(_, other)| other.overlaps(&range)) {
        return Err(ErrorKind::Overlap { range, other: *node, other_range: *other });
    }
    Ok(())
}

fn read_bridge<'a>(node: &Node<'_, '_, 'a>, mechanism: ConfigMechanism) -> Result<PendingBridge<'a>, PlatformError> {
    let path = node.path();
    let reg = node.single_range("reg")?;
    let (bus_start, bus_end) = match node.property("bus-range") {
        None => (0, 255),
        Some(value) => match (value.len(), be32(value, 0), be32(value, 4)) {
            (8, Some(start), Some(end)) if start <= end && end <= 255 => (start as u8, end as u8),
            (8, Some(_), Some(_)) => return Err(node.error("bus-range", unsupported("start>end/>255"))),
            (len, _, _) => {
                return Err(node.error("bus-range", ErrorKind::WrongLength { len: len as u32, expected: 8 }));
            }
        },
    };
    // The bridge's own cells: 3 address cells (phys.hi, 64-bit address), 2
    // size cells, as the PCI bus binding fixes them.
    let address = node.u32("#address-cells")?.unwrap_or(0);
    if address != 3 {
        return Err(node.error("#address-cells", ErrorKind::BadCells { cells: address }));
    }
    let size = node.u32("#size-cells")?.unwrap_or(0);
    if size != 2 {
        return Err(node.error("#size-cells", ErrorKind::BadCells { cells: size }));
    }
    let parent = node.address_cells("ranges")?;
    let ranges = node.property("ranges").ok_or_else(|| node.error("ranges", ErrorKind::MissingProperty))?;
    let unit = 4 * (3 + parent.address as usize + 2);
    if ranges.is_empty() || !ranges.len().is_multiple_of(unit) {
        return Err(node.error("ranges", ErrorKind::BadLength { len: ranges.len() as u32, unit: unit as u32 }));
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
            let kind = ErrorKind::RangeOverflow { base: pci_base, size };
            return Err(node.error("ranges", kind));
        }
        let window = PciWindow { space, prefetchable: hi & (1 << 30) != 0, cpu, pci_base };
        if space != SpaceCode::Io && cpu.end() > ADDRESS_LIMIT {
            // Unusable, not hostile: mapping it is beyond the page tables.
            let kind = ErrorKind::BeyondAddressSpace { range: cpu, limit: ADDRESS_LIMIT };
            let _ = refused_windows.try_push(node.error("ranges", kind));
            continue;
        }
        // At most MAX_PCI_WINDOWS entries, checked above.
        let _ = windows.try_push(window);
    }
    let mut interrupt_map_mask = [u32::MAX; 4];
    if let Some(mask) = node.property("interrupt-map-mask") {
        if mask.len() != 16 {
            let kind = ErrorKind::WrongLength { len: mask.len() as u32, expected: 16 };
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
