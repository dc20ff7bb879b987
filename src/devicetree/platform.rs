//! Discovery: the parts of the tree the runtime uses, checked, as a
//! [`Platform`] model whose entries name their nodes ([`Origin::Node`]).

use core::fmt::Write as _;

use arrayvec::{ArrayString, ArrayVec};
use fdt::Fdt;
use fdt::node::FdtNode;

use super::blob::{self, RESERVATION_SIZE, be64};
use super::error::{MEMRESERVE, at, at_path, reservation_entry};
use super::node::{self, Node, parse_string};
use super::pci::{Context as PciContext, PciScan};
use crate::platform::{
    Conduit, ErrorKind, Gic, Interrupt, MAX_ALLOC_RANGES, MAX_BOOTARGS, MAX_MEMORY_RANGES, MAX_POOLS,
    MAX_REDISTRIBUTOR_REGIONS, MAX_RESERVED, MAX_TIMER_INTERRUPTS, MAX_VIRTIO, NodePath, Origin, PL011_WINDOW,
    Placement, Platform, PlatformError, Pool, Psci, PsciVersion, Range, Reserved, ShortValue, Timer, Uart,
    VIRTIO_WINDOW, VirtioMmio, check_window, rules,
};

/// Nodes with a phandle; QEMU's virt trees have fewer than ten.
pub const MAX_PHANDLES: usize = 256;

const GICV2_COMPATIBLE: [&str; 4] = ["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a9-gic", "arm,cortex-a7-gic"];
const GICV3_COMPATIBLE: &str = "arm,gic-v3";
const TIMER_COMPATIBLE: [&str; 2] = ["arm,armv8-timer", "arm,armv7-timer"];
const POOL_COMPATIBLE: &str = "restricted-dma-pool";
const VIRTIO_COMPATIBLE: &str = "virtio,mmio";
const UART_COMPATIBLE: &str = "arm,pl011";

/// Reads the platform from a blob written by [`super::normalize`].
///
/// Fails as a whole for anything that decides which memory is free or that
/// the runtime cannot run correctly without (structure, RAM, reservations,
/// GIC, PSCI, timer, console, bootargs). Problems of one pool or one virtio
/// device are recorded on that entry instead. The blob is validated again
/// (without copying), so any input is safe, but one with FDT_NOP tokens is
/// refused.
pub fn discover(normalized: &[u8]) -> Result<Platform, PlatformError> {
    let blob = blob::validate_normalized(normalized)?;
    // The crate checks only magic and size, both just validated.
    let fdt = Fdt::new(blob.bytes).map_err(|_| {
        let available = blob.bytes.len() as u64;
        PlatformError::header("totalsize", ErrorKind::Truncated { needed: available, available })
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
    memory: ArrayVec<(Range, Origin), MAX_MEMORY_RANGES>,
    reserved: ArrayVec<Reserved, MAX_RESERVED>,
    pools: ArrayVec<Pool, MAX_POOLS>,
    virtio: ArrayVec<Result<PendingVirtio<'a>, PlatformError>, MAX_VIRTIO>,
    gic: Option<(Gic, NodePath)>,
    psci: Option<Psci>,
    timer: Option<(NodePath, RawInterrupts<'a>)>,
    chosen: Option<Chosen<'a>>,
    aliases: Option<FdtNode<'b, 'a>>,
    phandles: ArrayVec<PhandleEntry, MAX_PHANDLES>,
    pci: PciScan<'a>,
}

fn too_many(limit: usize) -> ErrorKind {
    ErrorKind::TooManyEntries { limit: limit as u32 }
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

    fn read_reservations(&mut self, entries: &[u8]) -> Result<(), PlatformError> {
        for (index, entry) in entries.chunks_exact(RESERVATION_SIZE).enumerate() {
            let (Some(base), Some(size)) = (be64(entry, 0), be64(entry, 8)) else {
                continue;
            };
            // The block has no properties: the entry's index stands in.
            let fail = |kind| at(NodePath::new(MEMRESERVE), reservation_entry(index).as_str(), kind);
            let range = Range::new(base, size).map_err(|error| fail(error.into()))?;
            let reserved = Reserved { origin: Origin::node(MEMRESERVE), range, no_map: false };
            self.reserved.try_push(reserved).map_err(|_| fail(too_many(MAX_RESERVED)))?;
        }
        Ok(())
    }

    fn visit(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), PlatformError> {
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

    fn add_memory(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), PlatformError> {
        for range in node.ranges("reg")? {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            self.memory
                .try_push((range, Origin::Node(node.path())))
                .map_err(|_| node.error("reg", too_many(MAX_MEMORY_RANGES)))?;
        }
        Ok(())
    }

    /// A reservation without `reg` asks the OS to allocate memory for some
    /// driver of its own; there is none here, so it is skipped.
    fn add_reserved(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), PlatformError> {
        if !node.has_property("reg") {
            return Ok(());
        }
        let no_map = node.has_property("no-map");
        for range in node.ranges("reg")? {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            let reserved = Reserved { origin: Origin::Node(node.path()), range, no_map };
            self.reserved.try_push(reserved).map_err(|_| node.error("reg", too_many(MAX_RESERVED)))?;
        }
        Ok(())
    }

    /// Reads the node if it is a supported GIC; returns whether it was.
    fn read_gic(&mut self, node: &Node<'_, 'b, 'a>) -> Result<bool, PlatformError> {
        let v3 = node.is_compatible(GICV3_COMPATIBLE);
        let v2 = GICV2_COMPATIBLE.iter().any(|compatible| node.is_compatible(compatible));
        if !(v2 || v3) || !node.has_property("interrupt-controller") {
            return Ok(false);
        }
        if self.gic.is_some() {
            return Err(node.error("compatible", too_many(1)));
        }
        let path = node.path();
        let cells =
            node.u32("#interrupt-cells")?.ok_or_else(|| node.error("#interrupt-cells", ErrorKind::MissingProperty))?;
        if cells != 3 {
            return Err(node.error("#interrupt-cells", ErrorKind::BadCells { cells }));
        }
        let regions = if v3 { node.u32("#redistributor-regions")?.unwrap_or(1) } else { 1 };
        if regions == 0 || regions as usize > MAX_REDISTRIBUTOR_REGIONS {
            let mut value = ShortValue::default();
            let _ = write!(value, "{regions}");
            return Err(node.error("#redistributor-regions", ErrorKind::UnsupportedValue { value }));
        }
        let mut frames: ArrayVec<Range, { 1 + MAX_REDISTRIBUTOR_REGIONS }> = ArrayVec::new();
        for range in node.ranges("reg")?.take(1 + regions as usize) {
            let range = range.map_err(|kind| node.error("reg", kind))?;
            frames.try_push(range).map_err(|_| node.error("reg", too_many(1 + MAX_REDISTRIBUTOR_REGIONS)))?;
        }
        let (Some(&distributor), Some(rest)) = (frames.first(), frames.get(1..)) else {
            return Err(node.error("reg", ErrorKind::MissingProperty));
        };
        if rest.len() != regions as usize {
            let expected = (1 + regions) * 4 * 4;
            let len = node.property("reg").map_or(0, <[u8]>::len) as u32;
            return Err(node.error("reg", ErrorKind::WrongLength { len, expected }));
        }
        let gic = match (v3, rest.first()) {
            (true, _) => {
                let mut redistributors = ArrayVec::new();
                // `regions` is at most the capacity, checked above.
                let _ = redistributors.try_extend_from_slice(rest);
                Gic::V3 { distributor, redistributors }
            }
            (false, Some(&cpu_interface)) => Gic::V2 { distributor, cpu_interface },
            (false, None) => return Err(node.error("reg", ErrorKind::MissingProperty)),
        };
        self.gic = Some((gic, path));
        Ok(true)
    }

    fn read_psci(&mut self, node: &Node<'_, 'b, 'a>) -> Result<(), PlatformError> {
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
        let method = node.string("method")?.ok_or_else(|| node.error("method", ErrorKind::MissingProperty))?;
        let conduit = match method {
            "hvc" => Conduit::Hvc,
            "smc" => Conduit::Smc,
            other => {
                return Err(node.error("method", ErrorKind::UnsupportedValue { value: ShortValue::new(other) }));
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

    fn finish(mut self) -> Result<Platform, PlatformError> {
        let memory = rules::check_memory(&mut self.memory, "reg")?;
        if memory.is_empty() {
            // No node to name (there may be no /memory at all): the kind
            // says what the tree lacks.
            return Err(ErrorKind::NoRam.into());
        }
        rules::check_pools(&mut self.pools, &memory, &self.reserved);
        // The GIC and the console are needed to run at all: a bad window
        // fails discovery. A bad virtio window leaves just that device out.
        if let Some((gic, node)) = &self.gic {
            rules::check_gic_windows(gic, &self.memory).map_err(|kind| at(*node, "reg", kind))?;
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
            check_window(uart.reg, PL011_WINDOW, &self.memory)
                .map_err(|kind| PlatformError::new(uart.origin, "reg", kind))?;
        }

        // Windows of the UART and the GIC, which no virtio window may share.
        let mut fixed: ArrayVec<(Origin, Range), { 2 + MAX_REDISTRIBUTOR_REGIONS }> = ArrayVec::new();
        if let Some(uart) = &uart {
            let _ = fixed.try_push((uart.origin, uart.reg));
        }
        if let Some((gic, node)) = &self.gic {
            for range in gic.ranges() {
                // Room for the UART and every GIC frame.
                let _ = fixed.try_push((Origin::Node(*node), range));
            }
        }
        // Nor may they share registers with each other (the comm region
        // applies the same rule): a redistributor region over the UART
        // would have the GIC driver walk the UART's registers as frames,
        // and a UART over a GIC frame would have the console write there.
        // Both are needed to run, so this fails discovery.
        rules::check_disjoint_windows(&fixed, "reg")?;
        let mut virtio = ArrayVec::new();
        // Same capacity as the pending list, so nothing is dropped.
        for pending in &self.virtio {
            let device = pending.as_ref().map_err(|error| *error).and_then(|pending| {
                check_window(pending.reg, VIRTIO_WINDOW, &self.memory).map_err(|kind| at(pending.path, "reg", kind))?;
                if let Some((other, other_range)) = fixed.iter().find(|(_, range)| range.overlaps(&pending.reg)) {
                    let kind = ErrorKind::Overlap { range: pending.reg, other: *other, other_range: *other_range };
                    return Err(at(pending.path, "reg", kind));
                }
                resolver.virtio(pending)
            });
            let _ = virtio.try_push(device);
        }
        rules::refuse_shared_windows(&mut virtio);
        let pci = {
            let mut others: ArrayVec<(Origin, Range), { 2 + MAX_REDISTRIBUTOR_REGIONS + MAX_VIRTIO }> =
                fixed.iter().copied().collect();
            for device in virtio.iter().flatten() {
                let _ = others.try_push((device.origin, device.reg));
            }
            let gic_parent = |phandle| match resolver.resolve(phandle)? {
                entry if entry.role == Role::Gic => Ok(()),
                entry => Err(ErrorKind::UnsupportedInterruptParent {
                    node: Origin::Node(node::path_of(self.fdt, entry.ordinal)),
                }),
            };
            let pool = |path: &NodePath, phandle| resolver.pool(path, phandle);
            let context =
                PciContext { memory: &self.memory, other_windows: &others, pool: &pool, gic_parent: &gic_parent };
            self.pci.finish(&context)
        };
        let chosen = self.chosen.unwrap_or_default();
        let mut bootargs = ArrayString::new();
        if let Some(value) = chosen.bootargs {
            let text = parse_string(value).map_err(|kind| at_path("/chosen", "bootargs", kind))?;
            bootargs.try_push_str(text).map_err(|_| {
                let kind = ErrorKind::TooLong { len: text.len() as u32, limit: MAX_BOOTARGS as u32 };
                at_path("/chosen", "bootargs", kind)
            })?;
        }
        let (gic, gic_origin) = match self.gic {
            Some((gic, node)) => (Some(gic), Origin::Node(node)),
            None => (None, Origin::Unnamed),
        };
        Ok(Platform {
            memory,
            reserved: self.reserved,
            pools: self.pools,
            virtio,
            pci,
            gic,
            gic_origin,
            psci: self.psci,
            timer,
            uart,
            bootargs,
        })
    }

    /// The console: `/chosen/stdout-path` (a path or an alias, options
    /// after ':' ignored) if it names an available PL011, else the first
    /// available PL011.
    fn find_uart(&self, resolver: &Resolver<'_, 'b, 'a>) -> Result<Option<Uart>, PlatformError> {
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

    fn stdout_target(&self) -> Result<Option<&'a str>, PlatformError> {
        let Some(value) = self.chosen.and_then(|chosen| chosen.stdout_path) else {
            return Ok(None);
        };
        let text = parse_string(value).map_err(|kind| at_path("/chosen", "stdout-path", kind))?;
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
        let target = parse_string(alias.value).map_err(|kind| at_path("/aliases", alias.name, kind))?;
        Ok(target.starts_with('/').then_some(target))
    }
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
    Pool { origin: Origin::Node(node.path()), phandle, placement, declared }
}

fn read_placement(node: &Node<'_, '_, '_>) -> Result<Placement, PlatformError> {
    // As in Linux, `reg` wins over `size`.
    if node.has_property("reg") {
        let range = node.single_range("reg")?;
        return Ok(Placement::Fixed(range));
    }
    let size = node.size_value("size")?.ok_or_else(|| node.error("size", ErrorKind::MissingProperty))?;
    if size == 0 {
        return Err(node.error("size", ErrorKind::ZeroSize { base: None }));
    }
    let alignment = node.size_value("alignment")?;
    if let Some(alignment) = alignment
        && !alignment.is_power_of_two()
    {
        return Err(node.error("alignment", ErrorKind::AlignmentNotPowerOfTwo { alignment }));
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

fn read_virtio<'a>(node: &Node<'_, '_, 'a>) -> Result<PendingVirtio<'a>, PlatformError> {
    Ok(PendingVirtio {
        path: node.path(),
        reg: node.single_range("reg")?,
        dma_coherent: node.dma_coherent(),
        interrupts: RawInterrupts { cells: node.property("interrupts"), parent: node.interrupt_parent()? },
        memory_region: node.phandle_reference("memory-region")?,
    })
}

fn read_uart(node: &Node<'_, '_, '_>, resolver: &Resolver<'_, '_, '_>) -> Result<Uart, PlatformError> {
    let path = node.path();
    let reg = node.single_range("reg")?;
    let interrupt = match node.property("interrupts") {
        None => None,
        Some(cells) => {
            let raw = RawInterrupts { cells: Some(cells), parent: node.interrupt_parent()? };
            resolver.interrupts::<1>(&path, raw, 1)?.first().copied()
        }
    };
    Ok(Uart { origin: Origin::Node(path), reg, interrupt })
}

/// Resolves phandles against the table the walk built.
struct Resolver<'s, 'b, 'a> {
    fdt: &'b Fdt<'a>,
    phandles: &'s [PhandleEntry],
    pools: &'s [Pool],
}

impl Resolver<'_, '_, '_> {
    fn resolve(&self, phandle: u32) -> Result<&PhandleEntry, ErrorKind> {
        let mut matches = self.phandles.iter().filter(|entry| entry.phandle == phandle);
        match (matches.next(), matches.next()) {
            (Some(entry), None) => Ok(entry),
            (None, _) => Err(ErrorKind::DanglingPhandle { phandle }),
            (Some(_), Some(_)) => Err(ErrorKind::DuplicatePhandle { phandle }),
        }
    }

    /// Decodes between `min` and `N` GIC interrupt specifiers.
    fn interrupts<const N: usize>(
        &self,
        path: &NodePath,
        raw: RawInterrupts<'_>,
        min: usize,
    ) -> Result<ArrayVec<Interrupt, N>, PlatformError> {
        const SPECIFIER: usize = 12;
        let fail = |property, kind| at(*path, property, kind);
        let cells = raw.cells.ok_or_else(|| fail("interrupts", ErrorKind::MissingProperty))?;
        let parent = raw.parent.ok_or_else(|| fail("interrupt-parent", ErrorKind::NoInterruptParent))?;
        let entry = self.resolve(parent).map_err(|kind| fail("interrupt-parent", kind))?;
        if entry.role != Role::Gic {
            let node = node::path_of(self.fdt, entry.ordinal);
            return Err(fail("interrupt-parent", ErrorKind::UnsupportedInterruptParent { node: Origin::Node(node) }));
        }
        let count = cells.len() / SPECIFIER;
        if !cells.len().is_multiple_of(SPECIFIER) || count < min || count > N {
            let expected = if count < min { min } else { N };
            let kind = ErrorKind::WrongLength { len: cells.len() as u32, expected: (expected * SPECIFIER) as u32 };
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

    fn virtio(&self, pending: &PendingVirtio<'_>) -> Result<VirtioMmio, PlatformError> {
        let interrupt = self.interrupts::<1>(&pending.path, pending.interrupts, 1)?;
        let interrupt =
            interrupt.first().copied().ok_or_else(|| at(pending.path, "interrupts", ErrorKind::MissingProperty))?;
        let pool = pending.memory_region.map(|phandle| self.pool(&pending.path, phandle)).transpose()?;
        Ok(VirtioMmio {
            origin: Origin::Node(pending.path),
            reg: pending.reg,
            interrupt,
            dma_coherent: pending.dma_coherent,
            pool,
        })
    }

    /// The index of the usable pool `phandle` names.
    fn pool(&self, path: &NodePath, phandle: u32) -> Result<usize, PlatformError> {
        let fail = |kind| at(*path, "memory-region", kind);
        let entry = self.resolve(phandle).map_err(fail)?;
        let Role::Pool(index) = entry.role else {
            return Err(fail(ErrorKind::NotAPool {
                phandle,
                node: Origin::Node(node::path_of(self.fdt, entry.ordinal)),
            }));
        };
        match self.pools.get(index) {
            Some(Pool { placement: Ok(_), .. }) => Ok(index),
            Some(pool) => Err(fail(ErrorKind::PoolUnusable { pool: pool.origin })),
            None => Err(fail(ErrorKind::DanglingPhandle { phandle })),
        }
    }
}
