//! The runtime's identity map, built with aarch64-paging from the memory map
//! that discovery produced. It replaces the boot map the entry code set up.
//!
//! Attribute index 0 is Device-nGnRE and index 1 Normal write-back, as the
//! MAIR programmed at entry says. Everything not mapped here faults, and so
//! do the guard pages below the image's two stacks, whatever the caller
//! maps: that is how a stack overflow is caught.

use aarch64_paging::MapError;
use aarch64_paging::descriptor::El1Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El1And0, MemoryRegion};
use spin::Mutex;

use crate::platform::Range;

const NORMAL: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_1)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::NON_GLOBAL);
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_0)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::NON_GLOBAL)
    .union(El1Attributes::PXN)
    .union(El1Attributes::UXN);

pub use crate::arch::MapKind as Kind;

/// This architecture's descriptor attributes for each kind of mapping.
fn attributes(kind: Kind) -> El1Attributes {
    match kind {
        Kind::Data => NORMAL | El1Attributes::PXN | El1Attributes::UXN,
        Kind::Code => NORMAL | El1Attributes::READ_ONLY | El1Attributes::UXN,
        Kind::ReadOnly => NORMAL | El1Attributes::READ_ONLY | El1Attributes::PXN | El1Attributes::UXN,
        Kind::Device => DEVICE,
    }
}

/// The live page table, kept so that regions found later (hostmem) can be added.
static PAGE_TABLE: Mutex<Option<IdMap<El1And0>>> = Mutex::new(None);

const ASID: usize = 1;
/// Level 1 root with 4 KiB granules covers 39 bits, matching TCR_EL1.T0SZ = 25.
const ROOT_LEVEL: usize = 1;

/// Why a mapping could not be made. Each error names the range it was
/// about, so the caller can say what that range was (RAM, a device).
#[derive(Debug)]
pub enum MmuError {
    /// The range does not fit the address space of the table.
    OutOfRange(Range),
    /// `map` was called before `activate`.
    NotActive,
    /// aarch64-paging refused to map the range.
    Map(Range, MapError),
}

impl MmuError {
    /// The range the error is about, if any.
    pub fn range(&self) -> Option<Range> {
        match self {
            MmuError::OutOfRange(range) | MmuError::Map(range, _) => Some(*range),
            MmuError::NotActive => None,
        }
    }
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmuError::OutOfRange(range) => {
                write!(f, "{range} ends above {ADDRESS_SPACE_END:#x}, outside the 39-bit address space")
            }
            MmuError::NotActive => f.write_str("the runtime page table is not active yet"),
            MmuError::Map(range, error) => write!(f, "mapping {range}: {error}"),
        }
    }
}

/// End (exclusive) of the physical addresses the runtime's map covers: a
/// level-1 root with 4 KiB granules, 39 bits (TCR_EL1.T0SZ = 25, set at
/// entry). Platform discovery refuses RAM and device windows beyond it
/// (`crate::platform::ADDRESS_LIMIT`), so the MMU never fails on them later.
pub const ADDRESS_SPACE_END: u64 = 1 << 39;

fn region(range: Range) -> Result<MemoryRegion, MmuError> {
    if range.end() > ADDRESS_SPACE_END {
        return Err(MmuError::OutOfRange(range));
    }
    // Both fit in 39 bits, so in usize on aarch64.
    Ok(MemoryRegion::new(range.base as usize, range.end() as usize))
}

/// Builds the map from `(range, kind)` pairs (later pairs win where they
/// overlap), leaves the stack guard pages unmapped, and switches to it.
///
/// # Safety
///
/// The map must cover everything the program uses from now on (image, stack,
/// heap, console), with attributes that agree with how it is used.
pub unsafe fn activate(ranges: &[(Range, Kind)]) -> Result<(), MmuError> {
    let mut table = IdMap::with_asid(ASID, ROOT_LEVEL, El1And0);
    for &(range, kind) in ranges {
        table.map_range(&region(range)?, attributes(kind)).map_err(|error| MmuError::Map(range, error))?;
    }
    #[cfg(feature = "image")]
    for guard in super::exceptions::stack_guards() {
        let range = Range { base: guard.base, size: guard.size };
        // Without VALID the entries are written invalid: the page faults.
        table.map_range(&region(range)?, El1Attributes::empty()).map_err(|error| MmuError::Map(range, error))?;
    }
    // SAFETY: the caller promises the map covers everything in use; the boot
    // map it replaces is an identity map too, so the switch keeps every
    // address meaning the same thing.
    unsafe {
        table.activate();
        core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack));
    }
    *PAGE_TABLE.lock() = Some(table);
    Ok(())
}

/// Adds a mapping to the live table, for ranges that were not mapped before
/// (a hostmem region in a `no-map` reservation, say, which the boot's map
/// leaves out). New entries over unmapped memory need no break-before-make,
/// so aarch64-paging allows them on the live table.
pub fn map(range: Range, kind: Kind) -> Result<(), MmuError> {
    let mut guard = PAGE_TABLE.lock();
    let table = guard.as_mut().ok_or(MmuError::NotActive)?;
    table.map_range(&region(range)?, attributes(kind)).map_err(|error| MmuError::Map(range, error))?;
    // SAFETY: barriers only; new entries become visible to the walker.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
    Ok(())
}
