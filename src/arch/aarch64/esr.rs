//! Decoding of ESR_ELx for the exception report, and telling a stack
//! overflow from other faults. Pure, so host-tested.

use core::fmt;

/// ESR decoded into its exception class and, for aborts, the fault status.
pub struct EsrReport(pub u64);

impl fmt::Display for EsrReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esr = self.0;
        let ec = (esr >> 26) & 0x3f;
        let iss = esr & 0x1ff_ffff;
        write!(f, "    ESR  {esr:#010x}: EC {ec:#04x} {}", exception_class_name(ec))?;
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
            let fsc = iss & 0x3f;
            write!(f, ", {}", fault_status_name(fsc))?;
            if ec >= 0x24 {
                let write = iss & (1 << 6) != 0;
                write!(f, ", {}", if write { "write" } else { "read" })?;
            }
        }
        Ok(())
    }
}

/// A name for ESR_ELx.EC value `ec`, for exception reports ("reserved/other" for a class it does
/// not name).
pub fn exception_class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access trapped",
        0x20 => "instruction abort from lower EL",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from lower EL",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2c => "FP exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "reserved/other",
    }
}

/// A name for a data or instruction abort's fault status code (ESR_ELx.ISS.xFSC), for exception
/// reports.
pub fn fault_status_name(fsc: u64) -> &'static str {
    match fsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict abort",
        _ => "other fault",
    }
}

/// An unmapped page directly below a stack (linker/image.ld): a fault in it
/// means that stack overflowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackGuard {
    /// First address of the guard page.
    pub base: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Which stack it guards, for the report.
    pub stack: &'static str,
}

/// The guard page a data abort hit, if it hit one: then the stack above it
/// overflowed. FAR is only meaningful for aborts, so other classes never
/// match.
pub fn guard_fault(esr: u64, far: u64, guards: &[StackGuard]) -> Option<StackGuard> {
    let ec = (esr >> 26) & 0x3f;
    // ISS.FnV (bit 10): FAR does not hold the faulting address.
    let far_valid = esr & (1 << 10) == 0;
    if !matches!(ec, 0x24 | 0x25) || !far_valid {
        return None;
    }
    guards.iter().copied().find(|guard| far >= guard.base && far - guard.base < guard.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn data_abort_translation_fault_on_read() {
        // EC 0x25, IL, DFSC 0x06 (level 2 translation fault), WnR clear.
        let text = EsrReport(0x9600_0006).to_string();
        assert!(text.contains("data abort"), "{text}");
        assert!(text.contains("translation fault"), "{text}");
        assert!(text.contains("read"), "{text}");
    }

    #[test]
    fn write_and_permission_faults_are_named() {
        let text = EsrReport(0x9600_004f).to_string();
        assert!(text.contains("permission fault") && text.contains("write"), "{text}");
    }

    #[test]
    fn other_classes_have_names() {
        assert_eq!(exception_class_name(0x3c), "BRK instruction");
        assert_eq!(exception_class_name(0x16), "HVC");
        assert!(!EsrReport(0xf200_0000).to_string().contains("fault"));
    }

    #[test]
    fn a_data_abort_in_a_guard_page_is_a_stack_overflow() {
        let guards = [
            StackGuard { base: 0x4010_0000, size: 0x1000, stack: "the stack" },
            StackGuard { base: 0x4020_0000, size: 0x1000, stack: "the exception stack" },
        ];
        // Data abort, translation fault, write, at the top and bottom of the
        // first guard and inside the second.
        let write_fault = 0x9600_0046;
        assert_eq!(guard_fault(write_fault, 0x4010_0ff0, &guards).map(|g| g.stack), Some("the stack"));
        assert_eq!(guard_fault(write_fault, 0x4010_0000, &guards).map(|g| g.stack), Some("the stack"));
        assert_eq!(guard_fault(write_fault, 0x4020_0008, &guards).map(|g| g.stack), Some("the exception stack"));
        // Just outside, another class, or FAR not valid: not an overflow.
        assert_eq!(guard_fault(write_fault, 0x4010_1000, &guards), None);
        assert_eq!(guard_fault(write_fault, 0x400f_fff8, &guards), None);
        assert_eq!(guard_fault(0x8600_0006, 0x4010_0ff0, &guards), None, "instruction abort");
        assert_eq!(guard_fault(write_fault | (1 << 10), 0x4010_0ff0, &guards), None, "FnV set");
    }
}
