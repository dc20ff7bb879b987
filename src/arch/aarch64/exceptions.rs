//! Exception vectors and the report printed when the image takes an
//! exception it cannot handle.
//!
//! The image runs at EL1 on SP_EL0 (the boot stack) and takes exceptions on
//! SP_EL1, a separate exception stack (see entry.rs). Exceptions from the
//! image's code therefore arrive at the "current EL with SP0" vectors, and
//! the handler has a good stack even when SP_EL0 has run into the guard page
//! below the boot stack. The "current EL with SPx" vectors are taken only
//! from a handler itself; a fatal one starts again at the top of the
//! exception stack, so even an overflow of that stack is reported.
//!
//! Every vector saves the general-purpose registers, ELR, SPSR and SP_EL0
//! into a [`TrapFrame`] on the exception stack and calls
//! `tidepool_handle_exception`. IRQs go to the interrupt dispatcher and return;
//! everything else is fatal: a report with the decoded exception class,
//! ESR, FAR and ELR (and, for a fault in a guard page, that a stack
//! overflowed), then exit with failure.

use core::arch::global_asm;
use core::fmt;

use aarch64_cpu::registers::Readable;

use super::esr::{EsrReport, StackGuard, guard_fault};

/// Registers saved on exception entry, in the order the vector code stores them.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// ELR_ELx: where the exception was taken.
    pub elr: u64,
    /// SPSR_ELx: the interrupted state.
    pub spsr: u64,
    /// The stack pointer the image's code runs on.
    pub sp_el0: u64,
}

/// Which of the 16 vectors was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorKind {
    /// A synchronous exception (an abort, a trap, SVC/HVC/SMC, a breakpoint).
    Synchronous,
    /// An IRQ.
    Irq,
    /// An FIQ.
    Fiq,
    /// An SError (asynchronous abort).
    SError,
}

/// Size of each guard page (linker/image.ld).
pub const GUARD_SIZE: u64 = 4096;

unsafe extern "C" {
    static __stack_guard: u8;
    static __exception_stack_guard: u8;
}

/// The unmapped pages below the two stacks, at their run-time addresses.
pub fn stack_guards() -> [StackGuard; 2] {
    // Addresses only; nothing is read. Taken PC-relative or through the
    // relocated GOT, so they are where the image runs.
    let guard = |symbol: &u8| symbol as *const u8 as u64;
    // SAFETY: linker symbols; only their addresses are used.
    let (boot, exception) = unsafe { (guard(&__stack_guard), guard(&__exception_stack_guard)) };
    [
        StackGuard { base: boot, size: GUARD_SIZE, stack: "the stack" },
        StackGuard { base: exception, size: GUARD_SIZE, stack: "the exception stack" },
    ]
}

global_asm!(
    r#"
// 34 slots: x0..x30, ELR, SPSR, SP_EL0 (a multiple of 16 bytes).
.equ FRAME_SIZE, 34 * 8

// A vector that saves x0 and x1 on the current stack (SP_EL1) and goes on
// in the common code with its index in x0.
.macro vector index
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x0, #\index
    b       tidepool_exception_entry
.endm

// A fatal exception taken on the exception stack itself (a handler that
// faulted, or overflowed that stack): whatever SP_EL1 holds, start again
// at its top, where the report has room. TPIDR_EL1 (unused otherwise)
// keeps x0 meanwhile.
.macro restart_vector index
    .balign 0x80
    msr     tpidr_el1, x0
    adrp    x0, __exception_stack_end
    add     x0, x0, :lo12:__exception_stack_end
    mov     sp, x0
    mrs     x0, tpidr_el1
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x0, #\index
    b       tidepool_exception_entry
.endm

.section .text.tidepool_vectors, "ax"
.balign 2048
.global tidepool_vectors
tidepool_vectors:
    // Current EL with SP0: the image's code.
    vector 0                        // synchronous
    vector 1                        // IRQ
    vector 2                        // FIQ
    vector 3                        // SError
    // Current EL with SPx: inside a handler. IRQs are masked there, but an
    // IRQ would return into the handler, so it keeps the handler's stack.
    restart_vector 4
    vector 5
    vector 6
    restart_vector 7
    // Lower EL (never used: nothing runs at EL0).
    vector 8
    vector 9
    vector 10
    vector 11
    vector 12
    vector 13
    vector 14
    vector 15

tidepool_exception_entry:
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    mrs     x9, elr_el1
    mrs     x10, spsr_el1
    mrs     x11, sp_el0
    stp     x30, x9, [sp, #(30 * 8)]
    stp     x10, x11, [sp, #(32 * 8)]
    mov     x1, sp
    bl      tidepool_handle_exception

    // Only IRQs come back here. SP_EL0 was not touched.
    ldr     x10, [sp, #(32 * 8)]
    ldp     x30, x9, [sp, #(30 * 8)]
    msr     elr_el1, x9
    msr     spsr_el1, x10
    ldp     x0, x1, [sp, #(0 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x18, x19, [sp, #(18 * 8)]
    ldp     x20, x21, [sp, #(20 * 8)]
    ldp     x22, x23, [sp, #(22 * 8)]
    ldp     x24, x25, [sp, #(24 * 8)]
    ldp     x26, x27, [sp, #(26 * 8)]
    ldp     x28, x29, [sp, #(28 * 8)]
    add     sp, sp, #FRAME_SIZE
    eret
"#
);

/// Called from the vectors with interrupts masked.
#[unsafe(no_mangle)]
extern "C" fn tidepool_handle_exception(index: u64, frame: &mut TrapFrame) {
    let kind = match index % 4 {
        0 => VectorKind::Synchronous,
        1 => VectorKind::Irq,
        2 => VectorKind::Fiq,
        _ => VectorKind::SError,
    };
    if kind == VectorKind::Irq {
        super::irqchip::dispatch();
        return;
    }
    let origin = match index / 4 {
        0 => "current EL, SP0",
        1 => "current EL, SPx (in an exception handler)",
        2 => "lower EL, AArch64",
        _ => "lower EL, AArch32",
    };
    let esr = aarch64_cpu::registers::ESR_EL1.get();
    let far = aarch64_cpu::registers::FAR_EL1.get();
    if let Some(guard) = guard_fault(esr, far, &stack_guards()) {
        crate::console::emergency_print(format_args!(
            "\n*** stack overflow: data abort at FAR {far:#x} in the guard page below {} ({:#x}..{:#x})",
            guard.stack,
            guard.base,
            guard.base + guard.size
        ));
    }
    crate::console::emergency_print(format_args!(
        "\n*** unhandled exception: {kind:?} from {origin}\n{}\n    FAR  {far:#018x}\n    ELR  {:#018x}\n    SPSR {:#018x}\n    SP0  {:#018x}\n",
        EsrReport(esr),
        frame.elr,
        frame.spsr,
        frame.sp_el0
    ));
    crate::console::emergency_print(format_args!("{}", Registers(frame)));
    crate::exit::exit(crate::exit::FAILURE_EXCEPTION);
}

struct Registers<'a>(&'a TrapFrame);

impl fmt::Display for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.x.chunks(2).enumerate() {
            match pair {
                [a, b] => writeln!(f, "    x{:<2} {a:#018x}  x{:<2} {b:#018x}", 2 * i, 2 * i + 1)?,
                [a] => writeln!(f, "    x{:<2} {a:#018x}", 2 * i)?,
                _ => {}
            }
        }
        Ok(())
    }
}
