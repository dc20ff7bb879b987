//! Exception vectors and the report printed when the image takes an
//! exception it cannot handle.
//!
//! Every vector saves the general-purpose registers, ELR and SPSR into a
//! [`TrapFrame`] on the stack and calls [`handle_exception`]. IRQs go to the
//! interrupt dispatcher and return; everything else is fatal: a report with
//! the decoded exception class, ESR, FAR and ELR, then exit with failure.

use core::arch::global_asm;
use core::fmt;

use aarch64_cpu::registers::Readable;

use super::esr::EsrReport;

/// Registers saved on exception entry, in the order the vector code stores them.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
}

/// Which of the 16 vectors was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorKind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

global_asm!(
    r#"
.macro save_and_call index
    sub     sp, sp, #(34 * 8)
    stp     x0, x1, [sp, #(0 * 8)]
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
    stp     x30, x9, [sp, #(30 * 8)]
    str     x10, [sp, #(32 * 8)]
    mov     x0, #\index
    mov     x1, sp
    bl      tidepool_handle_exception
    b       tidepool_exception_return
.endm

.section .text.tidepool_vectors, "ax"
.balign 2048
.global tidepool_vectors
tidepool_vectors:
    .set idx, 0
    .rept 16
    .balign 0x80
    save_and_call idx
    .set idx, idx + 1
    .endr

tidepool_exception_return:
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
    add     sp, sp, #(34 * 8)
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
        1 => "current EL, SPx",
        2 => "lower EL, AArch64",
        _ => "lower EL, AArch32",
    };
    let esr = aarch64_cpu::registers::ESR_EL1.get();
    let far = aarch64_cpu::registers::FAR_EL1.get();
    crate::console::emergency_print(format_args!(
        "\n*** unhandled exception: {kind:?} from {origin}\n{}\n    FAR  {far:#018x}\n    ELR  {:#018x}\n    SPSR {:#018x}\n",
        EsrReport(esr),
        frame.elr,
        frame.spsr
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
