//! Running as a Jailhouse cell: the communication region as the platform
//! source, and the cell's side of the region's protocol.
//!
//! A cell's first CPU starts at the config's `cpu_reset_address` at EL1 with
//! the MMU off and x0 = 0: there is no device tree. The hypervisor fills one
//! page, the communication region, with what the cell needs (GIC, console,
//! virtual PCI); the board ([`CellBoard`], `boards/<name>/board.rs`) says
//! the rest: where that page is, the cell's RAM, the redistributor region's
//! size and the timer's interrupts. [`comm_region`] reads and validates the
//! page.
//!
//! The cell's side of the protocol ([`Cell`]):
//! - it ends by writing `cell_state` (shut down when the image's status is
//!   0, failed otherwise, including panics, exception reports and boot
//!   failures) and then calling PSCI CPU_OFF: Jailhouse refuses SYSTEM_OFF;
//! - a region with the wrong signature or revision ends the cell in "failed
//!   comm ABI", as Jailhouse's own inmates do;
//! - it answers the hypervisor's messages whenever the image waits (every
//!   [`crate::time::Deadline`] check), between test cases and when it ends:
//!   a shutdown request is approved unless the image is busy and asked for
//!   refusals ([`deny_shutdown_while_busy`], [`busy`]); a reconfiguration
//!   notice is acknowledged. Jailhouse waits for the answer, so an image that
//!   computes for long without waiting delays `jailhouse cell shutdown`;
//! - [`vm_exits`] reads the hypervisor's exit counters for this CPU, where
//!   the hypervisor allows (only when the image was entered at EL1: at EL2
//!   there is no hypervisor above it to ask).

pub mod comm_region;
mod messages;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use comm_region::{AbiMismatch, CommRegion};
pub use messages::{CellState, Message, Reply};

/// What a Jailhouse board knows that the communication region does not say.
#[derive(Clone, Copy, Debug)]
pub struct CellBoard {
    /// Where the hypervisor maps the region in the cell (guest-physical;
    /// 0x8000_0000 by Jailhouse's convention on ARM).
    pub comm_region: u64,
    /// The cell's RAM, (guest-physical base, size), as its config's memory
    /// regions give it.
    pub ram: &'static [(u64, u64)],
    /// Bytes of the GICv3 redistributor region: one frame per CPU of the
    /// system. This CPU's frame is found in it by affinity.
    pub gicr_size: u64,
    /// Buses of the virtual PCI host bridge (the root config's
    /// `pci_mmconfig_end_bus` + 1).
    pub pci_buses: u16,
    /// Jailhouse's id of the cell's CPU (its bit in the cell config's CPU
    /// set), which CPU_GET_INFO takes.
    pub cpu: u64,
    /// The architected timer's PPIs (number = INTID - 16): secure physical,
    /// non-secure physical, virtual, hypervisor. Jailhouse does not
    /// virtualise the timer, so these are the hardware's.
    pub timer_ppis: [u32; 4],
}

/// Hypercall codes (`hvc #0x4a48` on arm64).
const HC_CPU_GET_INFO: u32 = 7;
const HC_DEBUG_CONSOLE_PUTC: u32 = 8;
/// CPU_GET_INFO type of the first statistics counter.
const CPU_INFO_STAT_BASE: u64 = 1000;

/// The counters Jailhouse keeps per CPU on arm64, in its order.
pub const VM_EXIT_COUNTERS: [&str; 9] =
    ["total", "mmio", "management", "hypercall", "maintenance", "virq", "vsgi", "psci", "smccc"];

/// This CPU's VM exits as Jailhouse counts them ([`VM_EXIT_COUNTERS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmExits(pub [u64; VM_EXIT_COUNTERS.len()]);

impl core::fmt::Display for VmExits {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (index, (name, count)) in VM_EXIT_COUNTERS.iter().zip(self.0).enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{name} {count}")?;
        }
        Ok(())
    }
}

/// Images that asked for shutdown refusals while busy.
static DENY_WHILE_BUSY: AtomicBool = AtomicBool::new(false);
/// Busy sections entered and not left.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// From now on, shutdown requests that arrive while the image is [`busy`]
/// are denied (by default every request is approved).
pub fn deny_shutdown_while_busy() {
    DENY_WHILE_BUSY.store(true, Ordering::Relaxed);
}

/// Marks the image busy until the guard is dropped (the harness does so
/// around each test case).
pub fn busy() -> Busy {
    BUSY.fetch_add(1, Ordering::Relaxed);
    Busy(())
}

/// See [`busy`].
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to a shutdown request now.
fn shutdown_answer() -> Reply {
    if DENY_WHILE_BUSY.load(Ordering::Relaxed) && BUSY.load(Ordering::Relaxed) > 0 {
        Reply::Denied
    } else {
        Reply::Approved
    }
}

/// The cell this image runs in, once boot has attached to its region.
pub struct Cell {
    region: messages::Region,
    snapshot: CommRegion,
    /// Hypercalls reach a hypervisor (the image was entered at EL1).
    hypercalls: bool,
    cpu: u64,
}

static CELL: spin::Once<Cell> = spin::Once::new();

/// The cell, if the image runs in one.
pub fn cell() -> Option<&'static Cell> {
    CELL.get()
}

impl Cell {
    /// The region's platform fields as read at boot.
    pub fn comm_region(&self) -> &CommRegion {
        &self.snapshot
    }

    /// Answers a pending message, if any (and logs the answer).
    pub fn poll(&self) -> Option<(Message, Reply)> {
        let answered = self.region.poll(shutdown_answer);
        if let Some((message, reply)) = answered {
            log::info!("Jailhouse message {message:?} answered {reply:?}");
        }
        answered
    }

    /// Writes the terminal state for `status` (0: shut down, else failed).
    pub fn set_final_state(&self, status: u32) {
        let state = if status == crate::exit::SUCCESS { CellState::ShutDown } else { CellState::Failed };
        self.region.set_state(state);
    }

    /// This CPU's exit counters, where the hypervisor allows it: `None`
    /// without a hypervisor above the image or when a call is refused.
    pub fn vm_exits(&self) -> Option<VmExits> {
        if !self.hypercalls {
            return None;
        }
        let cpu = self.cpu;
        let mut exits = VmExits::default();
        for (index, count) in exits.0.iter_mut().enumerate() {
            let value = crate::arch::jailhouse_hypercall(HC_CPU_GET_INFO, cpu, CPU_INFO_STAT_BASE + index as u64);
            // Negative values are errors (-EPERM, -EINVAL).
            *count = u64::try_from(value).ok()?;
        }
        Some(exits)
    }

    /// Prints through the hypervisor's debug console, if the region
    /// permits it; `false` otherwise.
    pub fn debug_putc(&self, byte: u8) -> bool {
        if !self.hypercalls || !self.snapshot.debug_putc_permitted() {
            return false;
        }
        crate::arch::jailhouse_hypercall(HC_DEBUG_CONSOLE_PUTC, u64::from(byte), 0) == 0
    }
}

/// A cell described by a device tree: its RAM must leave the comm region's
/// page alone (the heap would take it), unless a reservation covers it.
#[allow(clippy::result_large_err)] // as in comm_region.rs
pub fn check_tree_spares_comm_region(
    platform: &crate::platform::Platform,
    board: &CellBoard,
) -> Result<(), crate::platform::PlatformError> {
    use crate::platform::{ErrorKind, Origin, PlatformError, Range};
    let page = Range::new(board.comm_region, comm_region::COMM_REGION_PAGE)
        .map_err(|error| PlatformError::new(Origin::Board("CELL.comm_region"), "", error.into()))?;
    let reserved = platform.reserved().iter().any(|reserved| reserved.range.overlaps(&page));
    match platform.memory().iter().find(|ram| ram.overlaps(&page)) {
        Some(ram) if !reserved => {
            let kind = ErrorKind::Overlap { range: *ram, other: Origin::Board("CELL.comm_region"), other_range: page };
            Err(PlatformError::new(Origin::Runtime("(RAM of the device tree)"), "", kind))
        }
        _ => Ok(()),
    }
}

/// This CPU's exit counters (see [`Cell::vm_exits`]).
pub fn vm_exits() -> Option<VmExits> {
    cell()?.vm_exits()
}

/// Answers a pending hypervisor message; cheap when not in a cell.
pub fn poll_messages() {
    if let Some(cell) = cell() {
        cell.poll();
    }
}

/// Reads the region at `board.comm_region` (which must be mapped) and
/// makes this image the cell's: from now on, the image's end is the
/// cell's. A region that is not one this runtime speaks ends the cell in
/// "failed comm ABI" right away (after printing why).
///
/// # Safety
///
/// `board.comm_region` must be the address of the cell's communication
/// region, mapped as normal memory, for the rest of the program.
#[cfg(target_os = "none")]
pub unsafe fn attach(board: &CellBoard, entered_at_el1: bool) -> &'static Cell {
    // Jailhouse offers PSCI over SMC only; the cell may have to end (CPU_OFF)
    // before its platform exists.
    crate::arch::power::set_conduit(Some(crate::platform::Conduit::Smc));
    // SAFETY: the caller promises the region's page is mapped for good.
    let region = unsafe { messages::Region::at(board.comm_region as usize) };
    let snapshot = match CommRegion::parse(&region.snapshot()) {
        Ok(snapshot) => snapshot,
        Err(mismatch) => {
            crate::console::emergency_print(format_args!("tidepool: {mismatch}\n"));
            region.set_state(CellState::FailedCommRevision);
            crate::arch::power::cpu_off();
            crate::arch::halt()
        }
    };
    let cell = CELL.call_once(|| Cell { region, snapshot, hypercalls: entered_at_el1, cpu: board.cpu });
    crate::exit::set_platform_end(end);
    cell
}

/// The hypervisor's debug console (DEBUG_CONSOLE_PUTC), for a cell whose
/// comm region names no UART but permits the hypercall.
#[cfg(target_os = "none")]
pub struct DebugConsole;

#[cfg(target_os = "none")]
impl crate::console::ConsoleSink for DebugConsole {
    fn write_bytes(&mut self, bytes: &[u8]) {
        if let Some(cell) = cell() {
            for &byte in bytes {
                cell.debug_putc(byte);
            }
        }
    }
}

/// The image's end in a cell: terminal state, then CPU_OFF. A fault while
/// writing the state comes back here (exception report, exit): the second
/// time, straight to CPU_OFF.
#[cfg(target_os = "none")]
fn end(status: u32) -> ! {
    static ENDING: AtomicBool = AtomicBool::new(false);
    if let Some(cell) = cell()
        && !ENDING.swap(true, Ordering::Relaxed)
    {
        cell.set_final_state(status);
    }
    let error = crate::arch::power::cpu_off();
    crate::console::emergency_print(format_args!("tidepool: {error}\n"));
    crate::arch::halt()
}

#[cfg(test)]
mod tests;
