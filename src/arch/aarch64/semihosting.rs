//! Arm semihosting, used only to end the image with an exit status when the
//! host enabled it (QEMU `-semihosting`). Without a semihosting host the HLT
//! instruction traps, so it is only issued when the command line asks for it.

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Ends the program with `status` as the host's exit code.
pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    // SAFETY: SYS_EXIT reads the two-word parameter block and never returns to
    // us when a semihosting host is attached, which the caller has checked.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT,
            in("x1") block.as_ptr(),
            options(nostack, readonly)
        );
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}
