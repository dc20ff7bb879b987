//! No page tables on the host: the types the targets' MMU code has, so that
//! errors that carry them compile; every call fails.

use crate::platform::Range;

/// Host builds map nothing; the unit tests bound addresses as aarch64 does
/// (39 bits), so they exercise the same limits.
pub const ADDRESS_SPACE_END: u64 = 1 << 39;

pub use crate::arch::MapKind as Kind;

/// Why a mapping could not be made: on the host, always.
#[derive(Debug)]
pub enum MmuError {
    /// There is no page table on the host.
    NotActive,
}

impl MmuError {
    /// Always `None`: host errors are about no range.
    pub fn range(&self) -> Option<Range> {
        None
    }
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("host builds have no page table")
    }
}

/// Fails: host builds have no page table.
pub fn map(_range: Range, _kind: Kind) -> Result<(), MmuError> {
    Err(MmuError::NotActive)
}
