//! MMIO accessors: every access is one `ldr`/`str` (or `h`/`b` variant) with
//! a plain base register, written in `asm!`. A hypervisor emulates an MMIO
//! access from the syndrome of the data abort, which is only valid (ISV=1)
//! for such simple instructions, while `read_volatile` leaves the choice of
//! instruction (e.g. post-indexed or pair forms) to the compiler. Like
//! Linux's `readl`/`writel`, a store is preceded by `dmb oshst` so ring
//! updates are visible to the device before a notify, and a load is
//! followed by `dmb oshld` so ring reads are not hoisted above an
//! interrupt-status read.
//!
//! Every function requires `ptr` to be valid for a device access of its
//! width and naturally aligned.

use core::arch::asm;

/// Reads 32 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 4 byte(s) and naturally aligned.
pub unsafe fn read32(ptr: *mut u8) -> u32 {
    let value: u32;
    // SAFETY: the caller guarantees `ptr` is a valid, aligned MMIO address.
    unsafe { asm!("ldr {v:w}, [{p}]", "dmb oshld", v = out(reg) value, p = in(reg) ptr, options(nostack)) };
    value
}

/// Reads 16 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 2 byte(s) and naturally aligned.
pub unsafe fn read16(ptr: *mut u8) -> u16 {
    let value: u32;
    // SAFETY: the caller guarantees `ptr` is a valid, aligned MMIO address.
    unsafe { asm!("ldrh {v:w}, [{p}]", "dmb oshld", v = out(reg) value, p = in(reg) ptr, options(nostack)) };
    // `ldrh` zero-extends, so the upper half is zero.
    value as u16
}

/// Reads 8 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 1 byte(s) and naturally aligned.
pub unsafe fn read8(ptr: *mut u8) -> u8 {
    let value: u32;
    // SAFETY: the caller guarantees `ptr` is a valid MMIO address.
    unsafe { asm!("ldrb {v:w}, [{p}]", "dmb oshld", v = out(reg) value, p = in(reg) ptr, options(nostack)) };
    // `ldrb` zero-extends, so the upper bits are zero.
    value as u8
}

/// Writes 32 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 4 byte(s) and naturally aligned.
pub unsafe fn write32(ptr: *mut u8, value: u32) {
    // SAFETY: the caller guarantees `ptr` is a valid, aligned MMIO address.
    unsafe { asm!("dmb oshst", "str {v:w}, [{p}]", v = in(reg) value, p = in(reg) ptr, options(nostack)) };
}

/// Writes 16 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 2 byte(s) and naturally aligned.
pub unsafe fn write16(ptr: *mut u8, value: u16) {
    // SAFETY: the caller guarantees `ptr` is a valid, aligned MMIO address.
    unsafe { asm!("dmb oshst", "strh {v:w}, [{p}]", v = in(reg) u32::from(value), p = in(reg) ptr, options(nostack)) };
}

/// Writes 8 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 1 byte(s) and naturally aligned.
pub unsafe fn write8(ptr: *mut u8, value: u8) {
    // SAFETY: the caller guarantees `ptr` is a valid MMIO address.
    unsafe { asm!("dmb oshst", "strb {v:w}, [{p}]", v = in(reg) u32::from(value), p = in(reg) ptr, options(nostack)) };
}
