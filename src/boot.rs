//! From the entry code to the image's `main`: discover the platform (from
//! the loader's device tree, one built into the image, or a Jailhouse
//! cell's communication region), bring up the console, plan memory, start
//! the heap and the MMU.
//!
//! Every step that depends on the platform's description can fail on a
//! hostile one; each failure is printed (on the early console if the board
//! has one) and the image ends with [`crate::exit::FAILURE_BOOT`] (in a Jailhouse
//! cell: in the "failed" state).

use core::fmt;

use crate::devicetree;
use crate::platform::{Layout, Origin, Platform, PlatformError, Range, RangeError};

/// What the runtime found and set up, handed to the image's `main`.
///
/// By the time an image sees it, everything in it has been checked: the
/// platform's description was validated as untrusted input, the heap and
/// every DMA pool are clear of the image, the loader's input and reserved
/// memory, and the MMU runs the final identity map built from it. It lives
/// for the whole image (`&'static`); its `Display` prints the summary the
/// `hello` example shows.
///
/// ```no_run
/// use tidepool::Boot;
///
/// /// What an image's `main` might report first.
/// fn report(boot: &Boot) {
///     tidepool::println!("{boot}");
///     tidepool::println!("{} MiB of RAM, {} KiB of heap", boot.platform.total_ram() >> 20, boot.heap_bytes >> 10);
///     for (index, pool) in boot.layout.pools().iter().enumerate() {
///         match pool {
///             Ok(range) => tidepool::println!("DMA pool {index}: {range}"),
///             Err(error) => tidepool::println!("DMA pool {index} unusable: {error}"),
///         }
///     }
/// }
/// ```
pub struct Boot {
    /// What the platform's source described, validated.
    pub platform: Platform,
    /// Where the DMA pools went and what RAM the heap got.
    pub layout: Layout,
    /// The exception level the image was entered at (it runs at EL1).
    pub entry_el: u8,
    /// The image itself, including .bss and the boot stack.
    pub image: Range,
    /// Where the platform's description came from.
    pub source: Source,
    /// What discovery read, where the loader or hypervisor placed it: the
    /// device tree, or a Jailhouse cell's communication region page.
    pub input: Range,
    /// Bytes given to the heap.
    pub heap_bytes: u64,
}

/// Where the platform's description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The tree the loader passed (x0).
    LoaderTree,
    /// The tree built into the image (the loader passed none).
    BuiltinTree,
    /// A Jailhouse cell's communication region, with the board's constants.
    CommRegion,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::LoaderTree => "the loader's device tree",
            Source::BuiltinTree => "the device tree built into the image",
            Source::CommRegion => "the Jailhouse comm region and the board",
        })
    }
}

impl fmt::Display for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "board {}, entered at EL{}, running at EL1", crate::board::NAME, self.entry_el)?;
        writeln!(
            f,
            "image {:#x}..{:#x}, platform from {} at {:#x}..{:#x}, heap {} KiB",
            self.image.base,
            self.image.end(),
            self.source,
            self.input.base,
            self.input.end(),
            self.heap_bytes / 1024
        )?;
        write!(f, "{}", self.platform)
    }
}

/// Where the loader's tree may be read from before the tree itself says where
/// RAM is: the normal-memory window of the architecture's boot map.
use crate::arch::BOOT_MAP_RAM;

/// The parts of `range` below, inside and above `window` (start, end).
#[cfg_attr(not(all(target_os = "none", feature = "image")), allow(dead_code))]
fn split_by_window(range: Range, window: (u64, u64)) -> [Option<Range>; 3] {
    let piece = |start: u64, end: u64| (start < end).then(|| Range { base: start, size: end - start });
    let (start, end) = (range.base, range.end());
    [piece(start, end.min(window.0)), piece(start.max(window.0), end.min(window.1)), piece(start.max(window.1), end)]
}

/// Heap RAM the boot map covers as normal memory, usable before the final
/// map is live (the final map's page tables come from the heap).
#[cfg_attr(not(all(target_os = "none", feature = "image")), allow(dead_code))]
fn early_heap(free: &[Range], boot_map_ram: (u64, u64)) -> impl Iterator<Item = Range> + '_ {
    free.iter().filter_map(move |range| split_by_window(*range, boot_map_ram)[1])
}

/// The rest of the heap RAM (below 1 GiB, where the boot map has device
/// memory, and above 4 GiB, where it has nothing): added once the final
/// map covers all RAM. Touching it earlier would fault (the allocator
/// writes its free lists into the memory it is given).
#[cfg_attr(not(all(target_os = "none", feature = "image")), allow(dead_code))]
fn late_heap(free: &[Range], boot_map_ram: (u64, u64)) -> impl Iterator<Item = Range> + '_ {
    free.iter().flat_map(move |range| {
        let [below, _, above] = split_by_window(*range, boot_map_ram);
        below.into_iter().chain(above)
    })
}

/// Upper bound on the loader's blob, free space included (QEMU pads the
/// trees it dumps to 1 MiB); only its content is copied.
const LOADER_DTB_LIMIT: usize = 16 * 1024 * 1024;

#[cfg(all(target_os = "none", feature = "image"))]
mod image {
    use super::*;
    use crate::arch::mmu;
    use crate::exit;
    use crate::platform;

    /// Upper bound on the normalised copy; QEMU's trees hold about 10 KiB.
    const DTB_CAPACITY: usize = 256 * 1024;

    /// The normalised copy of the tree that discovery reads. The loader's
    /// copy stays untouched (and out of the heap).
    static DTB_COPY: spin::Mutex<[u8; DTB_CAPACITY]> = spin::Mutex::new([0; DTB_CAPACITY]);

    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
        static __text_end: u8;
        static __rodata_end: u8;
    }

    unsafe extern "Rust" {
        /// Defined by the image through [`crate::entry!`].
        safe fn tidepool_main(boot: &'static Boot) -> u32;
    }

    fn symbol(s: &u8) -> u64 {
        s as *const u8 as u64
    }

    /// Called by the entry code with the MMU on (boot map), .bss zeroed and
    /// a stack; `dtb` is the loader's x0.
    #[unsafe(no_mangle)]
    extern "C" fn rust_start(dtb: u64, entry_el: u64) -> ! {
        install_early_console();
        // SAFETY: linker symbols; only their addresses are used.
        let (image_start, image_end, text_end, rodata_end) =
            unsafe { (symbol(&__image_start), symbol(&__image_end), symbol(&__text_end), symbol(&__rodata_end)) };
        let image = match Range::new(image_start, image_end - image_start) {
            Ok(range) => range,
            Err(_) => fail(format_args!("the linker gave an empty image range")),
        };
        let entry_el = entry_el as u8;
        let started = start(dtb, entry_el, image, text_end, rodata_end);
        // Before the final map the stack's guard page is mapped: an
        // overflow during discovery shows only here.
        let (used, size, overflowed) = crate::arch::boot_stack_used();
        if overflowed {
            fail(format_args!(
                "the boot stack ({} KiB) overflowed while booting, over whatever lies below it; build with \
                 optimisations (opt-level 1 or more) or raise BOOT_STACK_SIZE in the board's link.ld",
                size / 1024
            ));
        }
        log::debug!("boot stack: {} of {} KiB used while booting", used.div_ceil(1024), size / 1024);
        match started {
            Ok(boot) => {
                let boot: &'static Boot = alloc::boxed::Box::leak(alloc::boxed::Box::new(boot));
                log::debug!("boot complete:\n{boot}");
                let status = tidepool_main(boot);
                // exit() prints the DMA pool counters.
                exit::exit(status)
            }
            Err(error) => fail(format_args!("{error}")),
        }
    }

    fn install_early_console() {
        static EARLY: spin::Mutex<Option<crate::console::Pl011Console>> = spin::Mutex::new(None);
        if let Some(base) = crate::board::EARLY_UART {
            // A cell's UART is shared with the hypervisor until its comm
            // region says otherwise.
            let shared = crate::board::JAILHOUSE_CELL.is_some();
            // SAFETY: the board names a PL011 at this address, mapped as device
            // memory by the boot map (first GiB).
            let uart = unsafe {
                if shared {
                    crate::console::Pl011Console::new_shared(base)
                } else {
                    crate::console::Pl011Console::new(base)
                }
            };
            if let Some(uart) = uart {
                // Leaking the guard gives the console the 'static life it needs
                // before there is a heap; this runs once.
                crate::console::set_sink(spin::MutexGuard::leak(EARLY.lock()).insert(uart));
            }
        }
    }

    #[allow(clippy::result_large_err)] // see BootError
    fn start(dtb: u64, entry_el: u8, image: Range, text_end: u64, rodata_end: u64) -> Result<Boot, BootError> {
        let cell = attach_cell(entry_el)?;
        let (platform, source, dtb_range) = match cell {
            // A cell's loader passes no tree; one built in still wins.
            Some((cell, board)) if dtb == 0 && crate::board::BUILTIN_DTB.is_none() => {
                let platform = crate::jailhouse::comm_region::discover(cell.comm_region(), board)
                    .map_err(BootError::CommRegion)?;
                let page = Range::new(board.comm_region, crate::jailhouse::comm_region::COMM_REGION_PAGE)
                    .map_err(BootError::range("the board's comm region"))?;
                (platform, Source::CommRegion, page)
            }
            _ => {
                // The copy lives in .bss for the program's life; leaking the
                // guard makes it 'static. `start` runs once.
                let copy: &'static mut [u8; DTB_CAPACITY] = spin::MutexGuard::leak(DTB_COPY.lock());
                let (dtb_range, length) = copy_tree(dtb, &mut copy[..])?;
                let copy: &'static [u8; DTB_CAPACITY] = copy;
                let tree: &'static [u8] = &copy[..length];
                let platform = devicetree::discover(tree).map_err(BootError::Tree)?;
                if let Some((_, board)) = cell {
                    crate::jailhouse::check_tree_spares_comm_region(&platform, board).map_err(BootError::CommRegion)?;
                }
                let source = if dtb == 0 { Source::BuiltinTree } else { Source::LoaderTree };
                (platform, source, dtb_range)
            }
        };
        // Discovery kept device windows out of RAM; the image and the
        // loader's input need not be in RAM the platform declares.
        platform
            .check_device_windows(&[(image, platform::IMAGE), (dtb_range, platform::DEVICE_TREE)])
            .map_err(BootError::Tree)?;

        // The platform's PL011 replaces the early one now if the boot map
        // has it as device memory (first GiB), else once the final map is
        // live.
        let tree_uart = platform.uart().filter(|uart| Some(uart.reg.base as usize) != crate::board::EARLY_UART);
        let mut uart_pending = tree_uart.map(|uart| uart.reg);
        if let Some(reg) = uart_pending.filter(|reg| reg.end() <= BOOT_MAP_RAM.0) {
            use_tree_uart(reg);
            uart_pending = None;
        }
        let bootargs = platform.bootargs();
        crate::console::init_logger(
            crate::console::log_level_from_bootargs(bootargs).unwrap_or(log::LevelFilter::Info),
        );
        exit::configure(bootargs, &platform);
        if source == Source::BuiltinTree {
            log::info!("the loader passed no device tree (x0 = 0): using the one built into the image");
        }

        let layout = platform::layout(&platform, image, dtb_range);
        // Only RAM the boot map covers as normal memory for now: the final
        // map needs the heap (its page tables, the list below), and the rest
        // of RAM is mapped only by it.
        // SAFETY: the layout's free ranges are RAM that is not the image, the
        // tree, reserved memory or a pool, so nothing else uses them; these
        // parts are normal memory in the boot map and stay RAM in the final
        // map (free ranges are never in a no-map reservation).
        let early_bytes = unsafe { crate::heap::init(early_heap(layout.free_ranges(), BOOT_MAP_RAM)) };
        if early_bytes == 0 {
            return Err(BootError::NoHeap);
        }

        let map = final_map(&platform, &layout, image, text_end, rodata_end)?;
        let ranges: alloc::vec::Vec<(Range, mmu::Kind)> = map.iter().map(|(range, kind, _)| (*range, *kind)).collect();
        // SAFETY: RAM (but no-map reservations), pools, the whole image and
        // every device window the runtime drives are mapped, which is
        // everything it touches; the console is either the tree's UART (a
        // device window), the early UART (kept mapped when the tree names
        // none) or switched off first.
        unsafe { mmu::activate(&ranges) }.map_err(|error| {
            let what = error.range().and_then(|range| map.iter().find(|entry| entry.0 == range)).map(|entry| entry.2);
            BootError::Mmu { what: what.unwrap_or(Origin::Unnamed), error }
        })?;
        if let Some(reg) = uart_pending {
            use_tree_uart(reg);
        }
        // SAFETY: as for the early part; all RAM is mapped now.
        let heap_bytes = early_bytes + unsafe { crate::heap::init(late_heap(layout.free_ranges(), BOOT_MAP_RAM)) };

        // Pools the layout could place become allocators; a pool it refused
        // stays unregistered, so its devices cannot be bound.
        for (index, pool) in layout.pools().iter().enumerate() {
            match pool {
                Ok(range) => {
                    if let Err(error) = crate::dma::register(index, *range) {
                        log::error!("DMA pool {index}: {error}");
                    }
                }
                Err(error) => log::warn!("DMA pool {index} unusable: {error}"),
            }
        }
        // SAFETY: the interrupt controller's frames come from the platform
        // and are mapped as device memory (device_windows); nothing else
        // drives them.
        match unsafe { crate::interrupts::init(&platform) } {
            Ok(()) | Err(crate::interrupts::InterruptError::NoController) => {}
            Err(error) => log::error!("interrupt controller: {error}"),
        }
        if platform.uart().is_none()
            && let Some((cell, _)) = cell
            && cell.comm_region().debug_putc_permitted()
            && entry_el == 1
        {
            // No UART, but the hypervisor lends its console.
            crate::console::set_sink(alloc::boxed::Box::leak(alloc::boxed::Box::new(crate::jailhouse::DebugConsole)));
        }
        Ok(Boot { platform, layout, entry_el, image, source, input: dtb_range, heap_bytes })
    }

    /// On a Jailhouse board: reads the cell's comm region (which ends the
    /// cell at once if its ABI is not ours) and makes the image's end the
    /// cell's.
    #[allow(clippy::result_large_err)] // see BootError
    fn attach_cell(
        entry_el: u8,
    ) -> Result<Option<(&'static crate::jailhouse::Cell, &'static crate::jailhouse::CellBoard)>, BootError> {
        let Some(board) = &crate::board::JAILHOUSE_CELL else {
            return Ok(None);
        };
        let page_end = board.comm_region.checked_add(crate::jailhouse::comm_region::COMM_REGION_PAGE);
        if !(BOOT_MAP_RAM.0..BOOT_MAP_RAM.1).contains(&board.comm_region)
            || page_end.is_none_or(|end| end > BOOT_MAP_RAM.1)
            || !board.comm_region.is_multiple_of(platform::PAGE_SIZE)
        {
            return Err(BootError::CommRegionUnmapped(board.comm_region));
        }
        // SAFETY: the page is in the boot map's normal memory (checked
        // above); discovery then keeps it mapped as RAM (it is in the
        // platform's memory, reserved from the heap), and only the
        // hypervisor and the cell write it.
        let cell = unsafe { crate::jailhouse::attach(board, entry_el == 1) };
        Ok(Some((cell, board)))
    }

    /// Makes the platform's PL011 at `reg` the console (shared, in a cell
    /// whose comm region says so).
    fn use_tree_uart(reg: Range) {
        static FROM_TREE: spin::Mutex<Option<crate::console::Pl011Console>> = spin::Mutex::new(None);
        let shared = crate::jailhouse::cell().is_some_and(|cell| cell.comm_region().console_shared());
        // SAFETY: the platform names a PL011 here, discovery checked its
        // window (4 KiB, aligned, clear of RAM), and the callers make sure
        // it is mapped as device memory: by the boot map's first GiB or the
        // final map (device_windows).
        let console = unsafe {
            if shared {
                crate::console::Pl011Console::new_shared(reg.base as usize)
            } else {
                crate::console::Pl011Console::new(reg.base as usize)
            }
        };
        if let Some(console) = console {
            crate::console::set_sink(spin::MutexGuard::leak(FROM_TREE.lock()).insert(console));
        }
    }

    /// The final identity map, later entries winning where they overlap:
    /// normal RAM, pools, the image, device windows. Each entry says what
    /// it is, for errors.
    #[allow(clippy::result_large_err)] // see BootError
    fn final_map(
        platform: &Platform,
        layout: &Layout,
        image: Range,
        text_end: u64,
        rodata_end: u64,
    ) -> Result<alloc::vec::Vec<(Range, mmu::Kind, Origin)>, BootError> {
        let mut map = alloc::vec::Vec::new();
        // RAM without no-map reservations, plus every pool (see
        // Layout::normal_memory for why pools are mapped regardless).
        for range in layout.normal_memory() {
            map.push((*range, mmu::Kind::Data, Origin::Runtime("(RAM)")));
        }
        // The whole image (data, .bss, stack) even if the tree's RAM does
        // not cover it or a reservation claims it: the runtime runs there.
        let code = Range::new(image.base, text_end - image.base).map_err(BootError::range("the image's code"))?;
        let rodata = Range::new(text_end, rodata_end - text_end).map_err(BootError::range("the image's constants"))?;
        map.push((image, mmu::Kind::Data, platform::IMAGE));
        map.push((code, mmu::Kind::Code, Origin::Runtime("(image code)")));
        map.push((rodata, mmu::Kind::ReadOnly, Origin::Runtime("(image constants)")));
        for (origin, window) in platform.named_device_windows() {
            map.push((window, mmu::Kind::Device, origin));
        }
        // A cell described by a tree still ends through its comm region,
        // which the tree does not name.
        if let Some(board) = &crate::board::JAILHOUSE_CELL
            && crate::jailhouse::cell().is_some()
        {
            let page = Range::new(board.comm_region, crate::jailhouse::comm_region::COMM_REGION_PAGE)
                .map_err(BootError::range("the board's comm region"))?;
            map.push((page, mmu::Kind::Data, Origin::Board("CELL.comm_region")));
        }
        // Without a UART in the tree the early one stays the console; it
        // must stay mapped, unless the tree put RAM in its page.
        if platform.uart().is_none()
            && let Some(base) = crate::board::EARLY_UART
        {
            let window = Range::new(base as u64, 0x1000).map_err(BootError::range("the board's early UART"))?;
            let clash = platform.memory().iter().chain([&image]).any(|range| range.overlaps(&window));
            if clash {
                log::warn!("the tree names no UART and has RAM over the early one: the console goes quiet");
                crate::console::clear_sink();
            } else {
                map.push((window, mmu::Kind::Device, Origin::Runtime("(early UART)")));
            }
        }
        Ok(map)
    }

    fn fail(args: fmt::Arguments<'_>) -> ! {
        crate::console::emergency_print(format_args!("tidepool: boot failed: {args}\n"));
        exit::exit(exit::FAILURE_BOOT)
    }
}

/// Why the boot stopped. Large (a `PlatformError` carries its origin), but
/// made at most once per boot, before there is a heap to box it in.
#[derive(Debug)]
pub enum BootError {
    /// x0 was 0 and the board has no built-in tree.
    NoTree,
    /// x0 does not point at a tree we can read.
    BadTreeAddress(u64),
    /// The device tree (the loader's or the built-in one) failed a check.
    Tree(PlatformError),
    /// The Jailhouse comm region (or the board's description of the cell)
    /// failed a check.
    CommRegion(PlatformError),
    /// The board puts the comm region outside the boot map's normal memory
    /// (or off a page boundary), where it cannot be read before the final
    /// map.
    CommRegionUnmapped(u64),
    /// A range the image or the board defines (not the tree) is invalid.
    Range {
        /// What the range is.
        what: &'static str,
        /// Why it is invalid.
        error: RangeError,
    },
    /// The layout left no RAM for the heap where the boot map has it.
    NoHeap,
    /// The final map failed at the range `what` names (RAM, part of the
    /// image, a device node).
    Mmu {
        /// The range's origin.
        what: Origin,
        /// What the MMU code reported.
        error: crate::arch::mmu::MmuError,
    },
}

impl BootError {
    /// Names `what` a bad range was, for `map_err`.
    #[cfg_attr(not(all(target_os = "none", feature = "image")), allow(dead_code))]
    fn range(what: &'static str) -> impl Fn(RangeError) -> BootError {
        move |error| BootError::Range { what, error }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NoTree => {
                f.write_str("the loader passed no device tree (x0 = 0) and the board has none built in")
            }
            BootError::BadTreeAddress(address) => write!(
                f,
                "x0 = {address:#x} is not a device tree in RAM (must be 8-byte aligned, in {:#x}..{:#x}, at most {} MiB)",
                BOOT_MAP_RAM.0,
                BOOT_MAP_RAM.1,
                LOADER_DTB_LIMIT / (1024 * 1024)
            ),
            BootError::Tree(error) => write!(f, "device tree: {error}"),
            BootError::CommRegion(error) => write!(f, "Jailhouse cell: {error}"),
            BootError::CommRegionUnmapped(address) => write!(
                f,
                "the board's comm region {address:#x} is not a page in the boot map's normal memory {:#x}..{:#x}",
                BOOT_MAP_RAM.0, BOOT_MAP_RAM.1
            ),
            BootError::Range { what, error } => write!(f, "{what}: {error}"),
            BootError::NoHeap => write!(
                f,
                "no free RAM for the heap in {:#x}..{:#x}, the boot map's normal memory, where the heap starts",
                BOOT_MAP_RAM.0, BOOT_MAP_RAM.1
            ),
            BootError::Mmu { what, error } => write!(f, "page table: {what}: {error}"),
        }
    }
}

/// Finds the tree (loader's or built-in), checks where it is, and writes a
/// normalised copy into `out`. Returns where the loader's tree lies and the
/// copy's length.
#[cfg_attr(not(all(target_os = "none", feature = "image")), allow(dead_code))]
#[allow(clippy::result_large_err)] // see BootError
fn copy_tree(dtb: u64, out: &mut [u8]) -> Result<(Range, usize), BootError> {
    let source: &[u8] = if dtb == 0 {
        crate::board::BUILTIN_DTB.ok_or(BootError::NoTree)?
    } else {
        let in_window = |address: u64| (BOOT_MAP_RAM.0..BOOT_MAP_RAM.1).contains(&address);
        let header_end = dtb.checked_add(40).ok_or(BootError::BadTreeAddress(dtb))?;
        if !dtb.is_multiple_of(8) || !in_window(dtb) || !in_window(header_end) {
            return Err(BootError::BadTreeAddress(dtb));
        }
        // SAFETY: the 40 header bytes are inside the boot map's RAM window,
        // which is mapped normal memory; nothing else writes them.
        let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 40) };
        let size = devicetree::blob_total_size(header).map_err(BootError::Tree)?;
        let end = dtb.checked_add(size as u64).ok_or(BootError::BadTreeAddress(dtb))?;
        if size > LOADER_DTB_LIMIT || end > BOOT_MAP_RAM.1 {
            return Err(BootError::BadTreeAddress(dtb));
        }
        // SAFETY: as above, for the whole blob, whose end was checked.
        unsafe { core::slice::from_raw_parts(dtb as *const u8, size) }
    };
    let length = devicetree::normalize(source, out).map_err(BootError::Tree)?;
    let range =
        Range::new(source.as_ptr() as u64, source.len() as u64).map_err(BootError::range("the loader's tree"))?;
    Ok((range, length))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    const GIB: u64 = 1 << 30;
    /// A boot map with normal memory from 1 to 4 GiB (qemu-virt's).
    const BOOT_MAP: (u64, u64) = (GIB, 4 * GIB);

    fn range(base: u64, size: u64) -> Range {
        Range::new(base, size).unwrap()
    }

    #[test]
    fn heap_ram_outside_the_boot_map_waits_for_the_final_map() {
        // RAM at 1 GiB running past 4 GiB (as with -m 5G), and some below
        // 1 GiB, where the boot map has device memory.
        let free = [range(0x1000_0000, 0x1000), range(0x4000_0000, GIB), range(0xc000_0000, 3 * GIB)];
        let early: Vec<Range> = early_heap(&free, BOOT_MAP).collect();
        assert_eq!(early, [range(0x4000_0000, GIB), range(0xc000_0000, GIB)]);
        let late: Vec<Range> = late_heap(&free, BOOT_MAP).collect();
        assert_eq!(late, [range(0x1000_0000, 0x1000), range(4 * GIB, 2 * GIB)]);
        // Together, exactly the free RAM.
        let total = |ranges: &[Range]| ranges.iter().map(|range| range.size).sum::<u64>();
        assert_eq!(total(&early) + total(&late), total(&free));
        // A range over the whole window splits in three.
        assert_eq!(
            split_by_window(range(0, 8 * GIB), BOOT_MAP),
            [Some(range(0, GIB)), Some(range(GIB, 3 * GIB)), Some(range(4 * GIB, 4 * GIB))]
        );
    }
}
