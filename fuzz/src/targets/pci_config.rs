//! PCI config space as a hostile device presents it: enumeration, BAR
//! sizing and assignment, the capability list and the virtio structures
//! (src/pci), as `virtio::probe_pci` runs them, over the unit tests' fake
//! config space (`tidepool::pci::fake`, exposed by the `fuzzing` feature)
//! filled from the input; then the ECAM/CAM accessor over host memory.
//!
//! Input: a byte of bridge shape (window sizes, a 64-bit window, address
//! translation), a function count, then per function its address, the six
//! BAR size masks, which slots are upper halves, a BAR that reads a fixed
//! value, and its 256 bytes of config space; then ECAM accesses.
//!
//! Checked: nothing panics (the fake also panics on any access outside the
//! `ConfigSpace` rules: unaligned, or beyond 256 bytes); enumeration finds
//! each present function once, in order; an accepted function has
//! power-of-two BARs, naturally aligned, inside a window of their type,
//! apart from every other BAR, decoding what was assigned, with memory
//! decoding and bus mastering on; a refused one has both off; accepted
//! virtio structures lie inside implemented memory BARs, are large enough
//! and do not overlap; the capability walk ends. ECAM: every access lands
//! on the byte the address names, and none outside the window.

use tidepool::pci::bar::{BarAllocator, BarKind, Bars, read_bar_address};
use tidepool::pci::caps::{COMMON_CFG_MIN, MAX_SHARED_MEMORY, capabilities, virtio_caps};
use tidepool::pci::config::{Bdf, ConfigSpace, EcamConfig, header};
use tidepool::pci::fake::{FakeConfig, FakeFunction};
use tidepool::pci::{Function, enumerate, setup_function, verify_bars};
use tidepool::platform::{ConfigMechanism, PciWindow, Range, SpaceCode};

use crate::input::Input;

/// Functions per input at most.
pub const MAX_FUNCTIONS: u8 = 4;

/// QEMU virt's 32-bit window, its size cut by the shape byte, and
/// optionally a 64-bit prefetchable one (as the unit tests use).
fn windows(shape: u8) -> Vec<PciWindow> {
    let size = 1u64 << (16 + shape % 14);
    let translated = shape & 0x40 != 0;
    let mut windows = vec![PciWindow {
        space: SpaceCode::Memory32,
        prefetchable: shape & 0x20 != 0,
        cpu: Range { base: 0x1000_0000, size },
        pci_base: if translated { 0 } else { 0x1000_0000 },
    }];
    if shape & 0x80 != 0 {
        windows.push(PciWindow {
            space: SpaceCode::Memory64,
            prefetchable: true,
            cpu: Range { base: 0x40_0000_0000, size: 0x1_0000_0000 },
            pci_base: 0x40_0000_0000,
        });
    }
    windows
}

fn read_function(input: &mut Input<'_>) -> Option<(Bdf, FakeFunction)> {
    let bdf = Bdf::new(0, input.u8() % 32, input.u8() % 8)?;
    let mut function = FakeFunction::new(0, 0);
    for mask in &mut function.bar_masks {
        *mask = input.u32();
    }
    let upper = input.u8();
    for (slot, half) in function.upper_half.iter_mut().enumerate() {
        *half = upper & (1 << slot) != 0;
    }
    let moved = input.u8();
    let value = input.u32();
    function.bar_override = (moved & 0x80 != 0).then_some((usize::from(moved) % 6, value));
    function.bytes = input.array();
    Some((bdf, function))
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let shape = input.u8();
    let count = 1 + input.u8() % MAX_FUNCTIONS;
    let mut config = FakeConfig::default();
    for _ in 0..count {
        if let Some((bdf, function)) = read_function(&mut input) {
            config.functions.insert(bdf, function);
        }
    }
    fake_config(&mut config, &windows(shape));
    ecam(&mut input);
}

fn fake_config(config: &mut FakeConfig, windows: &[PciWindow]) {
    let functions = enumerate(config, 0, 0);
    for pair in functions.windows(2) {
        assert!(pair[0].bdf < pair[1].bdf, "enumeration out of order or twice: {pair:?}");
    }
    for function in &functions {
        assert!(config.functions.contains_key(&function.bdf), "{} enumerated but absent", function.bdf);
    }
    let mut allocator = BarAllocator::new(windows.iter().copied());
    let mut taken: Vec<Range> = Vec::new();
    for function in &functions {
        let result = setup_function(config, function, &mut allocator);
        let command = config.read16(function.bdf, header::COMMAND);
        match result {
            Ok(bars) => {
                let on = header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER;
                assert_eq!(command & (on | header::COMMAND_IO), on, "{}: command {command:#x}", function.bdf);
                check_bars(config, function, &bars, windows, &mut taken);
                check_caps(config, function.bdf, &bars);
            }
            Err(error) => {
                let _ = error.to_string();
                let off = header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER | header::COMMAND_IO;
                assert_eq!(command & off, 0, "{} refused ({error}) with command {command:#x}", function.bdf);
            }
        }
    }
}

fn check_bars(config: &FakeConfig, function: &Function, bars: &Bars, windows: &[PciWindow], taken: &mut Vec<Range>) {
    let bdf = function.bdf;
    for (slot, bar) in bars.iter().enumerate() {
        let Some(bar) = bar else { continue };
        assert_eq!(usize::from(bar.index), slot, "{bdf}: BAR index");
        assert!(bar.size.is_power_of_two(), "{bdf}: BAR{slot} of {:#x} bytes", bar.size);
        if bar.kind == BarKind::Io {
            continue;
        }
        assert!(bar.pci_address.is_multiple_of(bar.size), "{bdf}: BAR{slot} at {:#x} misaligned", bar.pci_address);
        let range = bar.cpu_range().unwrap_or_else(|| panic!("{bdf}: BAR{slot} accepted without a place"));
        let fits = |window: &PciWindow| {
            let space_ok = match bar.kind {
                BarKind::Memory64 => window.space != SpaceCode::Io,
                _ => window.space == SpaceCode::Memory32,
            };
            space_ok
                && (bar.prefetchable || !window.prefetchable)
                && window.cpu_address(bar.pci_address, bar.size) == Some(range.base)
        };
        assert!(windows.iter().any(fits), "{bdf}: BAR{slot} {range:?} in no window of its type");
        assert_eq!(read_bar_address(config, bdf, bar), bar.pci_address, "{bdf}: BAR{slot} decodes elsewhere");
        for other in taken.iter() {
            assert!(!other.overlaps(&range), "{bdf}: BAR{slot} {range:?} over another BAR {other:?}");
        }
        taken.push(range);
    }
    assert_eq!(verify_bars(config, bdf, bars), Ok(()), "{bdf}: freshly placed BARs moved");
}

fn check_caps(config: &FakeConfig, bdf: Bdf, bars: &Bars) {
    if let Ok(list) = capabilities(config, bdf) {
        for (index, (pointer, _)) in list.iter().enumerate() {
            assert!(*pointer >= 0x40 && pointer.is_multiple_of(4), "{bdf}: pointer {pointer:#x}");
            assert!(!list[..index].iter().any(|(other, _)| other == pointer), "{bdf}: {pointer:#x} twice");
        }
    }
    let Ok(caps) = virtio_caps(config, bdf, bars) else { return };
    let bar_of = |slot: u8| {
        bars.get(usize::from(slot)).copied().flatten().filter(|bar| bar.kind != BarKind::Io).expect("a memory BAR")
    };
    let mut slices = vec![caps.common, caps.notify, caps.isr];
    slices.extend(caps.device);
    slices.extend(caps.shared_memory.iter().map(|region| region.slice));
    for (index, slice) in slices.iter().enumerate() {
        let bar = bar_of(slice.bar);
        let end = slice.offset.checked_add(slice.length).expect("structure end wraps");
        assert!(slice.length > 0 && end <= bar.size, "{bdf}: {slice:?} outside BAR{} of {:#x}", slice.bar, bar.size);
        let cpu = bar.cpu_address.expect("placed").checked_add(slice.offset).expect("address wraps");
        assert!(bar.cpu_range().unwrap().contains_range(&Range { base: cpu, size: slice.length }));
        for other in &slices[..index] {
            let apart = other.bar != slice.bar || end <= other.offset || other.offset + other.length <= slice.offset;
            assert!(apart, "{bdf}: {slice:?} overlaps {other:?}");
        }
    }
    assert!(caps.common.length >= COMMON_CFG_MIN && caps.notify.length >= 2, "{bdf}: {caps:?}");
    // Registers reachable at their width (BARs are naturally aligned).
    assert!(caps.common.offset.is_multiple_of(4) && caps.notify.offset.is_multiple_of(2), "{bdf}: {caps:?}");
    assert!(caps.device.is_none_or(|device| device.offset.is_multiple_of(4)), "{bdf}: {caps:?}");
    let multiplier = caps.notify_off_multiplier;
    assert!(multiplier == 0 || (multiplier.is_power_of_two() && multiplier > 1), "{bdf}: multiplier {multiplier}");
    assert!(caps.shared_memory.len() <= MAX_SHARED_MEMORY);
    for (index, region) in caps.shared_memory.iter().enumerate() {
        assert!(!caps.shared_memory[..index].iter().any(|other| other.id == region.id), "{bdf}: shm id twice");
    }
}

/// Dwords of the largest window [`ecam`] uses: one ECAM bus (1 MiB).
const WINDOW_DWORDS: usize = (1 << 20) / 4;

thread_local! {
    /// The pattern every dword holds: its own index.
    static WINDOW: std::cell::RefCell<Vec<u32>> = std::cell::RefCell::new((0..WINDOW_DWORDS as u32).collect());
}

/// The accessor over a real window: host memory holding a pattern that
/// names each dword's offset, so a read shows which offset it reached, and
/// every write puts back the pattern of the dword it names (so a write that
/// lands elsewhere shows).
fn ecam(input: &mut Input<'_>) {
    WINDOW.with(|window| ecam_on(input, &mut window.borrow_mut()));
}

fn ecam_on(input: &mut Input<'_>, window: &mut [u32]) {
    // One ECAM bus, or up to two CAM buses.
    let (mechanism, extra_bus) =
        if input.bool() { (ConfigMechanism::Cam, input.u8() % 2) } else { (ConfigMechanism::Ecam, 0) };
    let bus_start = input.u8();
    let bus_end = bus_start.saturating_add(extra_bus);
    let shift = mechanism.bus_shift();
    let buses = usize::from(bus_end - bus_start) + 1;
    assert!((buses << shift) / 4 <= window.len());
    let base = std::ptr::NonNull::new(window.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `window` is at least as long as the bus range needs,
    // 4-aligned, and only accessed through `config` until it is dropped.
    let mut config = unsafe { EcamConfig::new(base, mechanism, bus_start, bus_end) };
    let function_size = config.function_size();
    assert_eq!(u64::from(function_size), mechanism.function_size());
    let mut wrote = false;
    while !input.is_empty() {
        let (bus, device, function, offset) = (input.u8(), input.u8(), input.u8(), input.u16());
        let write = input.u8();
        let Some(bdf) = Bdf::new(bus, device % 32, function % 8) else { continue };
        let inside = (bus_start..=bus_end).contains(&bus) && offset < function_size;
        assert_eq!(config.reaches(bdf), (bus_start..=bus_end).contains(&bus));
        let expected = (usize::from(bus.wrapping_sub(bus_start)) << shift)
            | (usize::from(bdf.device()) << (shift - 5))
            | (usize::from(bdf.function()) << (shift - 8))
            | usize::from(offset);
        match write % 3 {
            0 => {
                let value = config.read32(bdf, offset);
                if inside && offset.is_multiple_of(4) {
                    assert_eq!(value as usize, expected / 4, "read32 {bdf} {offset:#x} reached the wrong dword");
                } else {
                    assert_eq!(value, u32::MAX, "read32 {bdf} {offset:#x} outside the rules");
                }
            }
            1 => {
                wrote = true;
                config.write32(bdf, offset, (expected / 4) as u32);
            }
            _ => {
                wrote = true;
                let half = ((expected / 4) as u32 >> (8 * (offset & 2))) as u16;
                config.write16(bdf, offset, half);
            }
        }
    }
    // `config` is not used past here; the window is read directly.
    let _ = config;
    if wrote {
        for (dword, value) in window.iter().enumerate() {
            assert_eq!(*value as usize, dword, "a config write changed dword {dword}");
        }
    }
}
