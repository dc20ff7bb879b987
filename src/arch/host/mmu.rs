//! No page tables on the host: the types the targets' MMU code has, so that
//! errors that carry them compile; every call fails.

use crate::platform::Range;

/// Host builds map nothing; the unit tests bound addresses as aarch64 does
/// (39 bits), so they exercise the same limits.
pub const ADDRESS_SPACE_END: u64 = 1 << 39;

pub use crate::arch::MapKind as Kind;

#[derive(Debug)]
pub enum MmuError {
    NotActive,
}

impl MmuError {
    pub fn range(&self) -> Option<Range> {
        None
    }
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("host builds have no page table")
    }
}

pub fn map(_range: Range, _kind: Kind) -> Result<(), MmuError> {
    Err(MmuError::NotActive)
}
