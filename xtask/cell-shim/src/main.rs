//! An emulated Jailhouse for CI: the smallest EL2 program that gives a cell
//! image what a Jailhouse cell gets, on QEMU virt with `virtualization=on`.
//!
//! Jailhouse itself is in no package registry and needs a Linux root cell,
//! so CI cannot run it. What this shim reproduces, from Jailhouse's sources
//! (`../shared/PLATFORM-NOTES.md`):
//! - the cell's CPU is **CPU 1** (MPIDR Aff0 = 1, the physical MPIDR): CPU 0
//!   starts it with PSCI CPU_ON and parks itself, so the image must find its
//!   GICv3 redistributor frame by affinity;
//! - entry at **EL1h** at the cell's reset address, DAIF masked, MMU and
//!   caches off, every general-purpose register zero (x0 = 0: no device
//!   tree; or, for `jailhouse cell linux`, the tree's address), VBAR_EL1
//!   and SP_EL1 zero, FP/SIMD enabled;
//! - **SMC is trapped** and PSCI answered as Jailhouse does: VERSION 1.1,
//!   FEATURES, CPU_SUSPEND, AFFINITY_INFO, CPU_ON denied (the cell has one
//!   CPU), **SYSTEM_OFF and SYSTEM_RESET refused** (NOT_SUPPORTED), CPU_OFF
//!   parks the CPU; SMCCC_VERSION; calls of other owners kill the cell;
//! - **HVC #0x4a48** hypercalls: HYPERVISOR_GET_INFO, CPU_GET_INFO (state
//!   and the VM-exit counters this shim keeps), DEBUG_CONSOLE_PUTC (only
//!   when the comm region's flags permit it); root-only codes are refused;
//!   **any other HVC kills the cell**.
//!
//! When the cell's CPU turns itself off (or is killed), the shim prints the
//! comm region's `cell_state` (`cell-shim: cell state N (name)`) and ends
//! QEMU through semihosting with `cell_state` as the exit code, so the
//! launcher reads back what the image wrote. A killed cell gets the state
//! Jailhouse gives it: failed.
//!
//! - **stage 2**: the cell sees its RAM, the comm region and the UART page
//!   and nothing else; touching any other address kills the cell;
//! - **trapped MMIO**: the GICv3 distributor and redistributors and the
//!   virtual PCI host's ECAM window are not mapped but emulated, as
//!   Jailhouse does: an access without a valid syndrome (a pair, writeback
//!   or SIMD access: ISV = 0) kills the cell, GICD_IROUTER naming a CPU
//!   outside the cell kills it, writes to another CPU's redistributor frame
//!   are ignored (and counted), ECAM reads find no device, and config
//!   accesses wider than 4 bytes kill the cell.
//!
//! Not reproduced (written down in the board's README): the per-interrupt
//! filtering of distributor writes for SPIs the cell does not own (passed
//! through here: the cell is the only guest), and hypervisor messages to
//! the cell.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// What the launcher writes at `SHIM_PARAMS` (shim.ld).
#[repr(C)]
struct Params {
    /// "TPSHIM01", little-endian.
    magic: u64,
    /// The cell's `cpu_reset_address`.
    cell_entry: u64,
    /// MPIDR of the cell's CPU (CPU_ON target), also its Jailhouse CPU id.
    cell_cpu: u64,
    /// The comm region's address (the launcher wrote its contents).
    comm_region: u64,
    /// The PL011 the shim prints on (shared with the cell).
    uart: u64,
    /// The cell's RAM (base, size).
    ram_base: u64,
    ram_size: u64,
    /// GICv3 distributor and redistributor region, trapped and emulated.
    gicd_base: u64,
    gicr_base: u64,
    gicr_size: u64,
    /// The virtual PCI host's ECAM window (size 0: none), emulated empty.
    ecam_base: u64,
    ecam_size: u64,
    /// x0 at entry: 0 as Jailhouse's own loader, or a device tree's address
    /// as `jailhouse cell linux` passes it.
    entry_x0: u64,
}

const MAGIC: u64 = u64::from_le_bytes(*b"TPSHIM01");

unsafe extern "C" {
    static SHIM_PARAMS: Params;
}

fn params() -> &'static Params {
    // SAFETY: the launcher loads the block at SHIM_PARAMS before QEMU starts;
    // nothing writes it afterwards.
    unsafe { &*core::ptr::addr_of!(SHIM_PARAMS) }
}

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
    // CPU 0 at EL2 (QEMU: virtualization=on, no EL3).
    adrp    x9, __stack_cpu0
    add     x9, x9, :lo12:__stack_cpu0
    mov     sp, x9
    bl      shim_main
1:  wfe
    b       1b

// The cell's CPU, started by CPU_ON at EL2: set EL2 up, then enter the cell.
.global cell_cpu_start
cell_cpu_start:
    adrp    x9, __stack_cell_cpu
    add     x9, x9, :lo12:__stack_cell_cpu
    mov     sp, x9
    bl      setup_stage2
    adrp    x9, shim_vectors
    add     x9, x9, :lo12:shim_vectors
    msr     vbar_el2, x9
    // HCR_EL2: RW (EL1 is AArch64), TSC (trap SMC), VM (stage 2: the
    // cell's memory map). IRQs and FIQs go to EL1 (Jailhouse passes the
    // timer and owned SPIs).
    mov     x9, #(1 << 31)
    orr     x9, x9, #(1 << 19)
    orr     x9, x9, #1
    msr     hcr_el2, x9
    mov     x9, #3                  // CNTHCTL_EL2: EL1 counter and timer access
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #0x33ff             // CPTR_EL2: no FP traps
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1           // the physical MPIDR, as Jailhouse
    msr     vmpidr_el2, x9
    mrs     x9, S3_4_C12_C9_5       // ICC_SRE_EL2: SRE, EL1 may use it
    orr     x9, x9, #0x1
    orr     x9, x9, #0x8
    msr     S3_4_C12_C9_5, x9
    isb
    ldr     x9, =0x30d00800         // SCTLR_EL1: RES1 bits, MMU and caches off
    msr     sctlr_el1, x9
    mov     x9, #(3 << 20)          // CPACR_EL1: FP enabled
    msr     cpacr_el1, x9
    msr     vbar_el1, xzr
    msr     sp_el1, xzr
    msr     sp_el0, xzr
    mov     x9, #0x3c5              // SPSR_EL2: EL1h, DAIF masked
    msr     spsr_el2, x9
    bl      cell_entry_address
    msr     elr_el2, x0
    bl      cell_entry_x0
    msr     tpidr_el2, x0
    isb
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    mov     x4, xzr
    mov     x5, xzr
    mov     x6, xzr
    mov     x7, xzr
    mov     x8, xzr
    mov     x9, xzr
    mov     x10, xzr
    mov     x11, xzr
    mov     x12, xzr
    mov     x13, xzr
    mov     x14, xzr
    mov     x15, xzr
    mov     x16, xzr
    mov     x17, xzr
    mov     x18, xzr
    mov     x19, xzr
    mov     x20, xzr
    mov     x21, xzr
    mov     x22, xzr
    mov     x23, xzr
    mov     x24, xzr
    mov     x25, xzr
    mov     x26, xzr
    mov     x27, xzr
    mov     x28, xzr
    mov     x29, xzr
    mov     x30, xzr
    mrs     x0, tpidr_el2
    eret
.ltorg

// Traps from the cell: save x0..x30, let Rust handle the trap with the
// frame, restore, return. Anything else is a bug here or in the cell.
.macro unexpected kind
    .balign 0x80
    mov     x0, #\kind
    b       unexpected_trap
.endm

.balign 0x800
shim_vectors:
    unexpected 0    // current EL, SP0: sync, IRQ, FIQ, SError
    unexpected 1
    unexpected 2
    unexpected 3
    unexpected 4    // current EL, SPx
    unexpected 5
    unexpected 6
    unexpected 7
    .balign 0x80    // lower EL, AArch64: sync
    sub     sp, sp, #256
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mov     x0, sp
    bl      handle_trap
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #256
    eret
    unexpected 9    // lower EL, AArch64: IRQ, FIQ, SError
    unexpected 10
    unexpected 11
    unexpected 12   // lower EL, AArch32
    unexpected 13
    unexpected 14
    unexpected 15
"#
);

#[unsafe(no_mangle)]
extern "C" fn cell_entry_address() -> u64 {
    params().cell_entry
}

#[unsafe(no_mangle)]
extern "C" fn cell_entry_x0() -> u64 {
    params().entry_x0
}

// ---- console and ending ----

struct Uart(u64);

impl Write for Uart {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.put(b'\r');
            }
            self.put(byte);
        }
        Ok(())
    }
}

impl Uart {
    fn put(&self, byte: u8) {
        let data = self.0 as *mut u32;
        let flags = (self.0 + 0x18) as *const u32;
        // SAFETY: the launcher names QEMU virt's PL011; DR and FR are its
        // registers, and the shim runs with the MMU off (device memory).
        unsafe {
            while flags.read_volatile() & (1 << 5) != 0 {}
            data.write_volatile(u32::from(byte));
        }
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Uart(params().uart), "cell-shim: {}", format_args!($($arg)*));
    }};
}

/// Ends QEMU with `code` (Arm semihosting SYS_EXIT, ApplicationExit).
fn semihosting_exit(code: u64) -> ! {
    let block: [u64; 2] = [0x20026, code];
    // SAFETY: SYS_EXIT with a parameter block; QEMU's semihosting (enabled
    // by the launcher) ends the machine and never returns.
    unsafe { asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack)) };
    loop {
        // SAFETY: only reached without semihosting: wait forever.
        unsafe { asm!("wfe") };
    }
}

const CELL_STATE: u64 = 0x08;
const COMM_FLAGS: u64 = 0x14;
const STATE_FAILED: u32 = 3;

fn comm_word(offset: u64) -> *mut u32 {
    (params().comm_region + offset) as *mut u32
}

fn state_name(state: u32) -> &'static str {
    match state {
        0 => "running",
        1 => "running/locked",
        2 => "shut down",
        3 => "failed",
        4 => "failed comm rev",
        _ => "invalid",
    }
}

/// The cell's CPU is off: report what the image left in `cell_state`.
fn cell_ended(how: &str) -> ! {
    // SAFETY: the comm region is RAM the launcher placed; the cell is stopped.
    let state = unsafe { comm_word(CELL_STATE).read_volatile() };
    say!("{how}; cell state {state} ({})", state_name(state));
    say!("vm exits: {}", Stats::line());
    say!("writes to other CPUs' redistributors ignored: {}", FOREIGN_REDISTRIBUTOR_WRITES.load(Ordering::Relaxed));
    semihosting_exit(u64::from(state))
}

/// What Jailhouse does to a cell that breaks the rules: failed, CPU parked.
fn kill(reason: fmt::Arguments<'_>) -> ! {
    say!("cell killed: {reason}");
    // SAFETY: as in cell_ended.
    unsafe { comm_word(CELL_STATE).write_volatile(STATE_FAILED) };
    cell_ended("CPU parked")
}

#[unsafe(no_mangle)]
extern "C" fn unexpected_trap(kind: u64) -> ! {
    let (esr, elr): (u64, u64);
    // SAFETY: reading EL2 syndrome registers has no side effects.
    unsafe { asm!("mrs {}, esr_el2", "mrs {}, elr_el2", out(reg) esr, out(reg) elr) };
    say!("unexpected exception (vector {kind}) ESR {esr:#x} ELR {elr:#x}");
    semihosting_exit(255)
}

// ---- CPU 0: start the cell ----

#[unsafe(no_mangle)]
extern "C" fn shim_main() -> ! {
    let params = params();
    if params.magic != MAGIC {
        // No UART known yet either: all we can do is stop.
        semihosting_exit(254);
    }
    say!(
        "emulated Jailhouse: cell on CPU {:#x} at {:#x}, comm region {:#x}",
        params.cell_cpu,
        params.cell_entry,
        params.comm_region
    );
    unsafe extern "C" {
        fn cell_cpu_start();
    }
    let entry = cell_cpu_start as *const () as u64;
    let result = smc(0xc400_0003, params.cell_cpu, entry, 0);
    if result != 0 {
        say!("PSCI CPU_ON of the cell's CPU failed: {}", result as i64);
        semihosting_exit(253);
    }
    // Park CPU 0 as the root cell's CPU would be busy elsewhere.
    smc(0x8400_0002, 0, 0, 0);
    loop {
        // SAFETY: waiting; CPU_OFF normally does not return.
        unsafe { asm!("wfe") };
    }
}

/// A call to QEMU's PSCI (EL2 SMCs are not trapped: there is no EL3).
fn smc(function: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut result = function;
    // SAFETY: an SMCCC call handled by QEMU's emulated firmware.
    unsafe { asm!("smc #0", inout("x0") result, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _) };
    result
}

// ---- the cell's traps ----

/// Jailhouse's per-CPU counters on arm64, in its order.
struct Stats;

static COUNTERS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
const TOTAL: usize = 0;
const MMIO: usize = 1;
const HYPERCALL: usize = 3;
const PSCI: usize = 7;
const SMCCC: usize = 8;

impl Stats {
    fn bump(index: usize) {
        COUNTERS[index].fetch_add(1, Ordering::Relaxed);
    }

    fn line() -> StatsLine {
        StatsLine
    }
}

struct StatsLine;

impl fmt::Display for StatsLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = ["total", "mmio", "management", "hypercall", "maintenance", "virq", "vsgi", "psci", "smccc"];
        for (index, (name, counter)) in names.iter().zip(&COUNTERS).enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{name} {}", counter.load(Ordering::Relaxed))?;
        }
        Ok(())
    }
}

const EPERM: i64 = -1;
const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
const PSCI_NOT_SUPPORTED: i64 = -1;
const PSCI_INVALID_PARAMETERS: i64 = -2;
const PSCI_DENIED: i64 = -3;

#[unsafe(no_mangle)]
extern "C" fn handle_trap(frame: &mut [u64; 31]) {
    let (esr, elr): (u64, u64);
    // SAFETY: reading EL2 syndrome registers has no side effects.
    unsafe { asm!("mrs {}, esr_el2", "mrs {}, elr_el2", out(reg) esr, out(reg) elr) };
    Stats::bump(TOTAL);
    match esr >> 26 {
        // HVC64: ELR is already past the instruction.
        0x16 => {
            let immediate = esr & 0xffff;
            if immediate != 0x4a48 {
                kill(format_args!("HVC #{immediate:#x} at {:#x} is not a Jailhouse hypercall", elr - 4));
            }
            Stats::bump(HYPERCALL);
            frame[0] = hypercall(frame[0], frame[1], frame[2]) as u64;
        }
        // SMC64, trapped by HCR_EL2.TSC: ELR is the SMC itself.
        0x17 => {
            // SAFETY: step over the SMC in the cell.
            unsafe { asm!("msr elr_el2, {}", in(reg) elr + 4) };
            let function = frame[0] as u32;
            match (function >> 24) & 0x3f {
                4 => {
                    Stats::bump(PSCI);
                    frame[0] = psci(function, frame[1]) as u64;
                }
                0 | 2 => {
                    Stats::bump(SMCCC);
                    // SMCCC_VERSION 1.1; everything else (features,
                    // workarounds, SiP calls) is not offered here.
                    frame[0] = if function == 0x8000_0000 { 0x1_0001 } else { PSCI_NOT_SUPPORTED as u64 };
                }
                owner => kill(format_args!("SMC {function:#x} of owner {owner} at {elr:#x}")),
            }
        }
        // Data abort from the cell: trapped MMIO, or outside its map.
        0x24 => {
            Stats::bump(MMIO);
            emulate_mmio(frame, esr, elr);
            // SAFETY: step over the emulated access (ISV implies a 32-bit
            // instruction).
            unsafe { asm!("msr elr_el2, {}", in(reg) elr + 4) };
        }
        0x20 => kill(format_args!("instruction fetch at {elr:#x}, outside the cell's memory map")),
        class => kill(format_args!("trap class {class:#x} (ESR {esr:#x}) at {elr:#x}")),
    }
}

fn psci(function: u32, target: u64) -> i64 {
    // 64-bit variants have bit 30 set.
    match function & !(1 << 30) {
        0x8400_0000 => 0x1_0001, // VERSION: 1.1
        0x8400_0001 => {
            // CPU_SUSPEND: wait for an interrupt.
            // SAFETY: wfi at EL2 returns on any interrupt or event.
            unsafe { asm!("wfi") };
            0
        }
        0x8400_0002 => cell_ended("CPU_OFF"),
        0x8400_0003 => PSCI_DENIED, // CPU_ON: the cell has one CPU
        0x8400_0004 => {
            if target == params().cell_cpu {
                0
            } else {
                PSCI_INVALID_PARAMETERS
            }
        }
        0x8400_000a => match target as u32 & !(1 << 30) {
            0x8400_0000..=0x8400_0004 | 0x8400_000a | 0x8000_0000 => 0,
            _ => PSCI_NOT_SUPPORTED,
        },
        // SYSTEM_OFF, SYSTEM_RESET and anything else: Jailhouse refuses.
        _ => PSCI_NOT_SUPPORTED,
    }
}

fn hypercall(code: u64, arg1: u64, arg2: u64) -> i64 {
    match code {
        // HYPERVISOR_GET_INFO: pool sizes are the real hypervisor's
        // business; two cells (root and this one).
        5 => match arg1 {
            0..=3 => 0,
            4 => 2,
            _ => EINVAL,
        },
        // CPU_GET_INFO: only the cell's own CPU.
        7 => {
            if arg1 != params().cell_cpu {
                return EPERM;
            }
            match arg2 {
                0 => 0, // running
                1000..=1008 => COUNTERS[(arg2 - 1000) as usize].load(Ordering::Relaxed) as i64,
                _ => EINVAL,
            }
        }
        // DEBUG_CONSOLE_PUTC, if the comm region's flags permit it.
        8 => {
            // SAFETY: the comm region is RAM the launcher placed.
            let flags = unsafe { comm_word(COMM_FLAGS).read_volatile() };
            if flags & 1 == 0 {
                return EPERM;
            }
            Uart(params().uart).put(arg1 as u8);
            0
        }
        // Root-cell management calls.
        0..=4 | 6 => EPERM,
        _ => ENOSYS,
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("panic: {}", info.message());
    semihosting_exit(252)
}

// ---- stage 2: the cell's memory map ----

#[repr(C, align(4096))]
struct Table([u64; 512]);

const MAX_TABLES: usize = 16;
static mut TABLES: [Table; MAX_TABLES] = [const { Table([0; 512]) }; MAX_TABLES];
static TABLES_USED: AtomicU64 = AtomicU64::new(0);

/// Stage-2 attributes: access flag, inner shareable, read-write, and the
/// memory type (normal write-back, or device nGnRE never executable).
const S2_NORMAL: u64 = (1 << 10) | (3 << 8) | (3 << 6) | (0b1111 << 2);
const S2_DEVICE: u64 = (1 << 10) | (3 << 6) | (0b0001 << 2) | (2 << 53);

fn new_table() -> *mut u64 {
    let index = TABLES_USED.fetch_add(1, Ordering::Relaxed) as usize;
    if index >= MAX_TABLES {
        say!("out of stage-2 tables");
        semihosting_exit(251);
    }
    // SAFETY: each table is handed out once, on the cell's CPU only.
    let table = unsafe { core::ptr::addr_of_mut!(TABLES[index]).cast::<u64>() };
    for entry in 0..512 {
        // SAFETY: inside the table just handed out.
        unsafe { table.add(entry).write_volatile(0) };
    }
    table
}

/// The next-level table of entry `index` of `table`, made if missing.
fn next_table(table: *mut u64, index: usize) -> *mut u64 {
    // SAFETY: `index` < 512, inside a table from new_table.
    let entry = unsafe { table.add(index).read_volatile() };
    if entry & 3 == 3 {
        return (entry & 0x0000_ffff_ffff_f000) as *mut u64;
    }
    let next = new_table();
    // SAFETY: as above.
    unsafe { table.add(index).write_volatile(next as u64 | 3) };
    next
}

/// Maps `base..base + size` at the same IPA with `attributes`, in 2 MiB
/// blocks where aligned and 4 KiB pages elsewhere.
fn map(root: *mut u64, base: u64, size: u64, attributes: u64) {
    let mut address = base & !0xfff;
    let end = base + size;
    while address < end {
        let level2 = next_table(root, ((address >> 30) & 511) as usize);
        let index2 = ((address >> 21) & 511) as usize;
        if address.is_multiple_of(2 << 20) && end - address >= 2 << 20 {
            // SAFETY: inside a level-2 table.
            unsafe { level2.add(index2).write_volatile(address | attributes | 1) };
            address += 2 << 20;
        } else {
            let level3 = next_table(level2, index2);
            // SAFETY: inside a level-3 table.
            unsafe { level3.add(((address >> 12) & 511) as usize).write_volatile(address | attributes | 3) };
            address += 4096;
        }
    }
}

/// Builds the cell's stage-2 map (identity: IPA = PA) and installs it;
/// the caller sets HCR_EL2.VM.
#[unsafe(no_mangle)]
extern "C" fn setup_stage2() {
    let params = params();
    let root = new_table();
    map(root, params.ram_base, params.ram_size, S2_NORMAL);
    map(root, params.comm_region, 4096, S2_NORMAL);
    map(root, params.uart, 4096, S2_DEVICE);
    let mmfr0: u64;
    // SAFETY: reading an ID register.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0) };
    // T0SZ 25 (39-bit IPA, one level-1 table), SL0 1 (start at level 1),
    // write-back inner and outer, inner shareable, 4 KiB granule, PS.
    let vtcr: u64 = 25 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | ((mmfr0 & 7).min(5) << 16) | (1 << 31);
    // SAFETY: installs the tables just built; stage 2 takes effect when the
    // caller sets HCR_EL2.VM, before the cell runs.
    unsafe {
        asm!(
            "msr vtcr_el2, {vtcr}",
            "msr vttbr_el2, {root}",
            "dsb ish",
            "isb",
            "tlbi vmalls12e1",
            "dsb ish",
            "isb",
            vtcr = in(reg) vtcr,
            root = in(reg) root as u64,
        )
    };
}

// ---- trapped MMIO ----

static FOREIGN_REDISTRIBUTOR_WRITES: AtomicU64 = AtomicU64::new(0);

const GICD_SIZE: u64 = 0x1_0000;
const GICR_FRAME: u64 = 0x2_0000;
const GICD_IROUTER: u64 = 0x6000;

fn within(address: u64, base: u64, size: u64) -> bool {
    size != 0 && address >= base && address - base < size
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trapped {
    Distributor,
    Redistributor,
    Ecam,
}

/// A data abort from the cell: the faulting IPA is trapped MMIO (emulated
/// as Jailhouse does) or outside the cell's map (fatal).
fn emulate_mmio(frame: &mut [u64; 31], esr: u64, elr: u64) {
    let (far, hpfar): (u64, u64);
    // SAFETY: reading EL2 fault registers has no side effects.
    unsafe { asm!("mrs {}, far_el2", "mrs {}, hpfar_el2", out(reg) far, out(reg) hpfar) };
    let ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
    let params = params();
    let region = if within(ipa, params.gicd_base, GICD_SIZE) {
        Trapped::Distributor
    } else if within(ipa, params.gicr_base, params.gicr_size) {
        Trapped::Redistributor
    } else if within(ipa, params.ecam_base, params.ecam_size) {
        Trapped::Ecam
    } else {
        kill(format_args!("access to IPA {ipa:#x} at {elr:#x}, outside the cell's memory map"));
    };
    if esr & (1 << 24) == 0 {
        kill(format_args!(
            "trapped MMIO at IPA {ipa:#x} (instruction at {elr:#x}) has no valid syndrome: a pair, writeback or \
             SIMD access Jailhouse cannot emulate"
        ));
    }
    let size = 1u64 << ((esr >> 22) & 3);
    let register = ((esr >> 16) & 31) as usize;
    let write = esr & (1 << 6) != 0;
    let value = if register == 31 { 0 } else { frame[register] };
    let value = if size == 8 { value } else { value & ((1 << (size * 8)) - 1) };
    match region {
        Trapped::Ecam => {
            if size > 4 {
                kill(format_args!("PCI config access of {size} bytes at IPA {ipa:#x}"));
            }
            // No device behind the virtual host bridge: reads find all ones.
            if !write && register != 31 {
                frame[register] = (1 << (size * 8)) - 1;
            }
            return;
        }
        Trapped::Distributor => {
            let offset = ipa - params.gicd_base;
            if write && (GICD_IROUTER + 32 * 8..GICD_IROUTER + 1020 * 8).contains(&(offset & !7)) {
                let affinity = |mpidr: u64| mpidr & 0xff_00ff_ffff;
                if value & (1 << 31) != 0 || affinity(value) != affinity(params.cell_cpu) {
                    let spi = (offset - GICD_IROUTER) / 8;
                    kill(format_args!("GICD_IROUTER{spi} = {value:#x} routes interrupt {spi} outside the cell"));
                }
            }
        }
        Trapped::Redistributor => {
            // Writes to another CPU's frame are ignored, as Jailhouse does
            // (that CPU belongs to another cell).
            let frame_base = params.gicr_base + (ipa - params.gicr_base) / GICR_FRAME * GICR_FRAME;
            // SAFETY: GICR_TYPER of a frame inside the redistributor region
            // (EL2 runs with the MMU off: device memory).
            let typer = unsafe { ((frame_base + 8) as *const u64).read_volatile() };
            if write && (typer >> 32) != (params.cell_cpu & 0xff_ffff) {
                FOREIGN_REDISTRIBUTOR_WRITES.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    // SAFETY: `ipa` is inside a GIC frame (identity: IPA = PA), an MMIO
    // register of the width the cell used.
    unsafe {
        if write {
            match size {
                1 => (ipa as *mut u8).write_volatile(value as u8),
                2 => (ipa as *mut u16).write_volatile(value as u16),
                4 => (ipa as *mut u32).write_volatile(value as u32),
                _ => (ipa as *mut u64).write_volatile(value),
            }
        } else if register != 31 {
            frame[register] = match size {
                1 => u64::from((ipa as *const u8).read_volatile()),
                2 => u64::from((ipa as *const u16).read_volatile()),
                4 => u64::from((ipa as *const u32).read_volatile()),
                _ => (ipa as *const u64).read_volatile(),
            };
        }
    }
}
