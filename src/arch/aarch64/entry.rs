//! Image header and the first instructions of the image.
//!
//! aarch64-rt 0.4 provides an entry point too, but it does not fit here:
//! it has no arm64 Image header (so QEMU would not pass the DTB in x0 for a
//! raw binary), it cannot drop from EL2 to EL1 (its EL is a build feature),
//! and it installs its own vector table where we want a decoded report. This
//! file is therefore our own, kept as short as the job allows.
//!
//! What runs here, in order: record the entry EL, drop EL2 -> EL1 when
//! needed, enable FP/SIMD (the target uses NEON, so before any Rust code),
//! turn on the MMU with a boot identity map (Rust code makes unaligned
//! accesses, which fault on the Device memory the MMU-off state implies; and
//! atomics need normal memory), apply the image's relocations, zero .bss,
//! set the stacks and the vectors, then call `rust_start(dtb, entry_el)`.
//!
//! The image runs wherever the loader put it (Image header flag bit 3). It
//! is linked as a static PIE: code reaches everything PC-relative (`adr`,
//! `adrp`), and every absolute address stored in data has an
//! R_AARCH64_RELATIVE entry in .rela.dyn, which the loop below applies with
//! the load offset before any Rust code runs. Until then the code here uses
//! only PC-relative addresses and plain constants.

use core::arch::global_asm;

global_asm!(
    r#"
.section .init.head, "ax"
.global _head
_head:
    b       tidepool_entry          // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size
    .quad   0xa                     // flags: little endian, 4 KiB pages,
                                    // placeable anywhere in RAM (bit 3)
    .quad   0, 0, 0                 // res2..res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

.section .init.text, "ax"
tidepool_entry:
    mov     x19, x0                 // DTB address (0 when the loader gives none)
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    and     x20, x20, #3
    cmp     x20, #2
    b.eq    2f
    cmp     x20, #1
    b.eq    el1_entry
1:  wfe                             // EL3 or EL0: nothing we can run at
    b       1b

2:  // EL2 -> EL1. EL1 runs AArch64 without stage 2, timer traps or FP traps.
    mov     x9, #(1 << 31)          // HCR_EL2.RW
    msr     hcr_el2, x9
    mov     x9, #3                  // CNTHCTL_EL2.EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #0x33ff             // CPTR_EL2: RES1 bits, no traps
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    // With a GICv3 system-register interface, let EL1 use it.
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4
    cbz     x9, 3f
    mrs     x9, S3_4_C12_C9_5       // ICC_SRE_EL2
    orr     x9, x9, #0x1            // SRE
    orr     x9, x9, #0x8            // Enable: EL1 may use it too
    msr     S3_4_C12_C9_5, x9
    isb
3:  ldr     x9, =0x30d00800         // SCTLR_EL1 RES1 bits, MMU and caches off
    msr     sctlr_el1, x9
    mov     x9, #0x3c5              // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x9
    adr     x9, el1_entry
    msr     elr_el2, x9
    isb
    eret

el1_entry:
    mov     x9, #(3 << 20)          // CPACR_EL1.FPEN: no FP/SIMD traps
    msr     cpacr_el1, x9
    isb

    // The image must sit on a page boundary: the final map gives its code,
    // constants and data different permissions page by page. A loader that
    // honours text_offset from a 2 MiB-aligned base always does this.
    adr     x9, _head
    tst     x9, #0xfff
    b.ne    reloc_failed

    // Boot identity map: see boot_page_table below.
    ldr     x9, =0xff04             // MAIR: attr0 Device-nGnRE, attr1 Normal WB
    msr     mair_el1, x9
    ldr     x9, =0x803519           // TCR: T0SZ=25, WB WA, inner shareable, 4K, EPD1
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #7
    bfi     x9, x10, #32, #3        // IPS = the CPU's physical address range
    msr     tcr_el1, x9
    adrp    x9, boot_page_table
    msr     ttbr0_el1, x9
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x9, sctlr_el1
    ldr     x10, =0x1005            // M | C | I
    orr     x9, x9, x10
    bic     x9, x9, #2              // A: Rust makes unaligned accesses
    msr     sctlr_el1, x9
    isb

    // Relocate: for each Elf64_Rela (r_offset, r_info, r_addend) in
    // .rela.dyn, store r_addend + offset at r_offset + offset, where offset
    // is the runtime address of _head minus its link address. Done with the
    // MMU on, so the stores are cacheable like every later access to the
    // same data (with the MMU off they would bypass the caches) and the boot
    // map lets us write what the final map makes read-only. Nothing above
    // reads a relocated word. With offset 0 the loop still runs: the linker
    // leaves the relocated words zero.
    adr     x9, _head
    ldr     x10, =__image_link_start // absolute symbol: not itself relocated
    sub     x11, x9, x10            // load offset
    adrp    x12, __rela_start
    add     x12, x12, :lo12:__rela_start
    adrp    x13, __rela_end
    add     x13, x13, :lo12:__rela_end
7:  cmp     x12, x13
    b.hs    8f
    ldp     x14, x15, [x12], #16    // r_offset, r_info
    ldr     x16, [x12], #8          // r_addend
    cmp     x15, #1027              // R_AARCH64_RELATIVE, no symbol
    b.ne    reloc_failed            // anything else needs a symbol we lack
    add     x16, x16, x11
    str     x16, [x14, x11]
    b       7b

8:  adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
4:  cmp     x9, x10
    b.hs    9f
    stp     xzr, xzr, [x9], #16
    b       4b

    // Paint the boot stack (see boot_stack_used in mod.rs): until the final
    // map unmaps its guard page, an overflow is seen only as paint gone
    // from the stack's lowest page.
9:  adrp    x9, __stack_start
    add     x9, x9, :lo12:__stack_start
    adrp    x10, __stack_end
    add     x10, x10, :lo12:__stack_end
    ldr     x11, ={stack_paint}
10: cmp     x9, x10
    b.hs    5f
    stp     x11, x11, [x9], #16
    b       10b

    // Two stacks: SP_EL1 is the exception stack (exceptions to EL1 always
    // switch to it), SP_EL0 the stack everything else runs on (SPSel = 0).
    // An exception taken on a broken SP_EL0 (a stack overflow into its
    // guard page) therefore still has a stack to report it from.
5:  adrp    x9, __exception_stack_end
    add     x9, x9, :lo12:__exception_stack_end
    mov     sp, x9                  // SPSel is 1 here: this sets SP_EL1
    adrp    x9, __stack_end
    add     x9, x9, :lo12:__stack_end
    msr     sp_el0, x9
    msr     spsel, #0
    adrp    x9, tidepool_vectors
    add     x9, x9, :lo12:tidepool_vectors
    msr     vbar_el1, x9
    isb
    mov     x0, x19
    mov     x1, x20
    bl      rust_start
6:  wfe
    b       6b

// The image cannot run here: loaded off a page boundary, or .rela.dyn holds
// a relocation other than R_AARCH64_RELATIVE (xtask's image build refuses
// such an ELF, so only a differently built image gets here). Nothing can be
// printed before the relocations are applied, so stop; x9 holds the load
// address or x15 the offending r_info for a debugger.
reloc_failed:
    wfe
    b       reloc_failed
.ltorg

// Level 1 table, 1 GiB blocks, built at assembly time from the board's boot
// map (`BOOT_MAP_NORMAL_GIB` in boards/<name>/board.rs). The runtime
// replaces it with an exact map built from the platform. The entries are
// physical addresses, not relocated: the table is an identity map of fixed
// GiBs, so it covers the image wherever a loader puts it in the board's
// normal range (an image loaded elsewhere cannot run).
.section .rodata.boot_page_table, "a"
.balign 4096
boot_page_table:
    // One level-1 entry per GiB, from the board's boot map: device memory
    // (Device-nGnRE, execute-never) below its normal range, normal memory
    // (write-back, inner shareable) in it, nothing above.
    .set    tidepool_boot_gib, 0
    .rept   512
    .if     tidepool_boot_gib < {normal_start_gib}
    .quad   (tidepool_boot_gib << 30) | 0x0060000000000401
    .elseif tidepool_boot_gib < {normal_end_gib}
    .quad   (tidepool_boot_gib << 30) | 0x705
    .else
    .quad   0
    .endif
    .set    tidepool_boot_gib, tidepool_boot_gib + 1
    .endr
"#,
    stack_paint = const super::STACK_PAINT,
    normal_start_gib = const super::BOOT_MAP_NORMAL_GIB.0,
    normal_end_gib = const super::BOOT_MAP_NORMAL_GIB.1,
);
