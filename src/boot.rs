//! From the entry code to the image's `main`: read and validate the device
//! tree, bring up the console, plan memory, start the heap and the MMU.
//!
//! Every step that depends on the tree can fail on a hostile tree; each
//! failure is printed (on the early console if the board has one) and the
//! image ends with [`exit::FAILURE_BOOT`].

use core::fmt;

use crate::devicetree::{self, Layout, Platform, Range};

/// What the runtime found and set up, handed to the image's `main`.
pub struct Boot {
    pub platform: Platform,
    pub layout: Layout,
    /// The exception level the image was entered at (it runs at EL1).
    pub entry_el: u8,
    /// The image itself, including .bss and the boot stack.
    pub image: Range,
    /// The device tree as the loader placed it.
    pub dtb: Range,
    /// Bytes given to the heap.
    pub heap_bytes: u64,
}

impl fmt::Display for Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "board {}, entered at EL{}, running at EL1", crate::board::NAME, self.entry_el)?;
        writeln!(
            f,
            "image {:#x}..{:#x}, dtb {:#x}..{:#x}, heap {} KiB",
            self.image.base,
            self.image.end(),
            self.dtb.base,
            self.dtb.end(),
            self.heap_bytes / 1024
        )?;
        write!(f, "{}", self.platform)
    }
}

/// Where the loader's tree may be read from before the tree itself says where
/// RAM is: the normal-memory window of the boot page table.
const BOOT_MAP_RAM: (u64, u64) = (0x4000_0000, 0x1_0000_0000);

/// Upper bound on the loader's blob, free space included (QEMU pads the
/// trees it dumps to 1 MiB); only its content is copied.
const LOADER_DTB_LIMIT: usize = 16 * 1024 * 1024;

#[cfg(all(target_arch = "aarch64", feature = "image"))]
mod image {
    use super::*;
    use crate::arch::aarch64::mmu;
    use crate::exit;

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
        match start(dtb, entry_el, image, text_end, rodata_end) {
            Ok(boot) => {
                let boot: &'static Boot = alloc::boxed::Box::leak(alloc::boxed::Box::new(boot));
                log::debug!("boot complete:\n{boot}");
                let status = tidepool_main(boot);
                exit::exit(status)
            }
            Err(error) => fail(format_args!("{error}")),
        }
    }

    fn install_early_console() {
        static EARLY: spin::Mutex<Option<crate::console::Pl011Console>> = spin::Mutex::new(None);
        if let Some(base) = crate::board::EARLY_UART {
            // SAFETY: the board names a PL011 at this address, mapped as device
            // memory by the boot map (first GiB).
            if let Some(uart) = unsafe { crate::console::Pl011Console::new(base) } {
                // Leaking the guard gives the console the 'static life it needs
                // before there is a heap; this runs once.
                crate::console::set_sink(spin::MutexGuard::leak(EARLY.lock()).insert(uart));
            }
        }
    }

    #[allow(clippy::result_large_err)] // see BootError
    fn start(dtb: u64, entry_el: u8, image: Range, text_end: u64, rodata_end: u64) -> Result<Boot, BootError> {
        // The copy lives in .bss for the program's life; leaking the guard
        // makes it 'static. `start` runs once.
        let copy: &'static mut [u8; DTB_CAPACITY] = spin::MutexGuard::leak(DTB_COPY.lock());
        let (dtb_range, length) = copy_tree(dtb, &mut copy[..])?;
        let copy: &'static [u8; DTB_CAPACITY] = copy;
        let tree: &'static [u8] = &copy[..length];
        let platform = devicetree::discover(tree).map_err(BootError::Tree)?;

        if let Some(uart) = platform.uart()
            && Some(uart.reg.base as usize) != crate::board::EARLY_UART
        {
            // SAFETY: the tree names a PL011 here; the boot map covers the
            // first GiB as device memory and the final map includes it.
            if let Some(console) = unsafe { crate::console::Pl011Console::new(uart.reg.base as usize) } {
                static FROM_TREE: spin::Mutex<Option<crate::console::Pl011Console>> = spin::Mutex::new(None);
                crate::console::set_sink(spin::MutexGuard::leak(FROM_TREE.lock()).insert(console));
            }
        }
        let bootargs = platform.bootargs();
        crate::console::init_logger(
            crate::console::log_level_from_bootargs(bootargs).unwrap_or(log::LevelFilter::Info),
        );
        exit::configure(bootargs, platform.psci_conduit());
        if dtb == 0 {
            log::info!("the loader passed no device tree (x0 = 0): using the one built into the image");
        }

        let layout = devicetree::layout(&platform, image, dtb_range);
        // SAFETY: the layout's free ranges are RAM that is not the image, the
        // tree, reserved memory or a pool, so nothing else uses them.
        let heap_bytes = unsafe { crate::heap::init(layout.free_ranges()) };
        if heap_bytes == 0 {
            return Err(BootError::NoHeap);
        }

        let mut map: alloc::vec::Vec<(Range, mmu::Kind)> = alloc::vec::Vec::new();
        for ram in platform.memory() {
            map.push((*ram, mmu::Kind::Data));
        }
        let code = Range::new(image.base, text_end - image.base).map_err(BootError::Tree)?;
        let rodata = Range::new(text_end, rodata_end - text_end).map_err(BootError::Tree)?;
        map.push((code, mmu::Kind::Code));
        map.push((rodata, mmu::Kind::ReadOnly));
        for window in platform.device_windows() {
            map.push((window, mmu::Kind::Device));
        }
        // SAFETY: RAM, the image and every device window the tree names are
        // mapped, which is everything the runtime touches.
        unsafe { mmu::activate(&map) }.map_err(BootError::Mmu)?;

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
        if let Some(gic) = platform.gic() {
            // SAFETY: the GIC frames come from the tree and are mapped as
            // device memory (device_windows); nothing else drives them.
            if let Err(error) = unsafe { crate::interrupts::init(gic) } {
                log::error!("interrupt controller: {error}");
            }
        }
        Ok(Boot { platform, layout, entry_el, image, dtb: dtb_range, heap_bytes })
    }

    fn fail(args: fmt::Arguments<'_>) -> ! {
        crate::console::emergency_print(format_args!("tidepool: boot failed: {args}\n"));
        exit::exit(exit::FAILURE_BOOT)
    }
}

/// Why the boot stopped. Large (a `DtError` carries its node path), but
/// made at most once per boot, before there is a heap to box it in.
#[derive(Debug)]
pub enum BootError {
    /// x0 was 0 and the board has no built-in tree.
    NoTree,
    /// x0 does not point at a tree we can read.
    BadTreeAddress(u64),
    Tree(devicetree::DtError),
    /// The layout left no RAM for the heap.
    NoHeap,
    #[cfg(target_arch = "aarch64")]
    Mmu(crate::arch::aarch64::mmu::MmuError),
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
            BootError::NoHeap => f.write_str("no free RAM left for the heap"),
            #[cfg(target_arch = "aarch64")]
            BootError::Mmu(error) => write!(f, "page table: {error}"),
        }
    }
}

/// Finds the tree (loader's or built-in), checks where it is, and writes a
/// normalised copy into `out`. Returns where the loader's tree lies and the
/// copy's length.
#[cfg_attr(not(all(target_arch = "aarch64", feature = "image")), allow(dead_code))]
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
    let range = Range::new(source.as_ptr() as u64, source.len() as u64).map_err(BootError::Tree)?;
    Ok((range, length))
}
