//! Physical address ranges.

use core::fmt;

use super::{DtError, DtErrorKind};

/// A non-empty physical address range `base..base + size` that does not
/// wrap around the address space.
///
/// The fields are public for reading and pattern matching; build ranges
/// with [`Range::new`], which enforces both properties. [`Range::end`]
/// saturates for a hand-built range that breaks them instead of panicking.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    /// `base..base + size`; refuses a zero size and a range whose end does
    /// not fit in `u64`.
    pub fn new(base: u64, size: u64) -> Result<Self, DtError> {
        Self::checked(base, size).map_err(DtError::from)
    }

    pub(crate) fn checked(base: u64, size: u64) -> Result<Self, DtErrorKind> {
        if size == 0 {
            return Err(DtErrorKind::ZeroSize { base: Some(base) });
        }
        match base.checked_add(size) {
            Some(_) => Ok(Self { base, size }),
            None => Err(DtErrorKind::RangeOverflow { base, size }),
        }
    }

    /// First address after the range.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// First address after the range, `None` for a hand-built range that
    /// wraps.
    pub fn checked_end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    pub fn contains(&self, address: u64) -> bool {
        self.base <= address && address < self.end()
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.base < other.end() && other.base < self.end()
    }

    pub fn contains_range(&self, other: &Range) -> bool {
        self.base <= other.base && other.end() <= self.end()
    }

    /// The common part of two ranges, if any.
    pub fn intersection(&self, other: &Range) -> Option<Range> {
        let base = self.base.max(other.base);
        let end = self.end().min(other.end());
        (base < end).then(|| Range { base, size: end - base })
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.base, self.end())
    }
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Range({:#x}+{:#x})", self.base, self.size)
    }
}
