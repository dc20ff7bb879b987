//! Physical address ranges.

use core::fmt;

/// Why `base` and `size` make no [`Range`]. A platform source turns it into
/// its own error, naming where the values came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// The size is zero.
    ZeroSize {
        /// The range's base.
        base: u64,
    },
    /// The end does not fit in 64 bits.
    Overflow {
        /// The range's base.
        base: u64,
        /// The range's size.
        size: u64,
    },
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::ZeroSize { base } => write!(f, "range {base:#x}+0x0 has zero size"),
            RangeError::Overflow { base, size } => {
                write!(f, "range {base:#x}+{size:#x} runs past the end of the address space")
            }
        }
    }
}

/// A non-empty physical address range `base..base + size` that does not
/// wrap around the address space.
///
/// The fields are public for reading and pattern matching; build ranges
/// with [`Range::new`], which enforces both properties. [`Range::end`]
/// saturates for a hand-built range that breaks them instead of panicking.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// First address.
    pub base: u64,
    /// Length in bytes, never zero for a range built by [`Range::new`].
    pub size: u64,
}

impl Range {
    /// `base..base + size`; refuses a zero size and a range whose end does
    /// not fit in `u64`.
    pub fn new(base: u64, size: u64) -> Result<Self, RangeError> {
        if size == 0 {
            return Err(RangeError::ZeroSize { base });
        }
        match base.checked_add(size) {
            Some(_) => Ok(Self { base, size }),
            None => Err(RangeError::Overflow { base, size }),
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

    /// Whether `address` is in the range.
    pub fn contains(&self, address: u64) -> bool {
        self.base <= address && address < self.end()
    }

    /// Whether the two ranges share at least one address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.base < other.end() && other.base < self.end()
    }

    /// Whether all of `other` is inside this range.
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
