//! Volatile accesses for host builds (there is no device window to talk to
//! there, but the types that use them must compile).
//!
//! Every function requires `ptr` to be valid for an access of its width
//! and naturally aligned.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, fence};

/// Reads 32 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 4 byte(s) and naturally aligned.
pub unsafe fn read32(ptr: *mut u8) -> u32 {
    // SAFETY: the caller guarantees `ptr` is valid and aligned.
    let value = unsafe { read_volatile(ptr.cast::<u32>()) };
    fence(Ordering::Acquire);
    value
}

/// Reads 16 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 2 byte(s) and naturally aligned.
pub unsafe fn read16(ptr: *mut u8) -> u16 {
    // SAFETY: the caller guarantees `ptr` is valid and aligned.
    let value = unsafe { read_volatile(ptr.cast::<u16>()) };
    fence(Ordering::Acquire);
    value
}

/// Reads 8 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 1 byte(s) and naturally aligned.
pub unsafe fn read8(ptr: *mut u8) -> u8 {
    // SAFETY: the caller guarantees `ptr` is valid.
    let value = unsafe { read_volatile(ptr) };
    fence(Ordering::Acquire);
    value
}

/// Writes 32 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 4 byte(s) and naturally aligned.
pub unsafe fn write32(ptr: *mut u8, value: u32) {
    fence(Ordering::Release);
    // SAFETY: the caller guarantees `ptr` is valid and aligned.
    unsafe { write_volatile(ptr.cast::<u32>(), value) }
}

/// Writes 16 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 2 byte(s) and naturally aligned.
pub unsafe fn write16(ptr: *mut u8, value: u16) {
    fence(Ordering::Release);
    // SAFETY: the caller guarantees `ptr` is valid and aligned.
    unsafe { write_volatile(ptr.cast::<u16>(), value) }
}

/// Writes 8 bits at `ptr` with one access.
///
/// # Safety
///
/// `ptr` must be valid for a device access of 1 byte(s) and naturally aligned.
pub unsafe fn write8(ptr: *mut u8, value: u8) {
    fence(Ordering::Release);
    // SAFETY: the caller guarantees `ptr` is valid.
    unsafe { write_volatile(ptr, value) }
}
