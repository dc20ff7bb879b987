//! Bounded strings: names and short values kept in errors and in the
//! platform model, in fixed-capacity storage so that they can be built
//! before there is a heap. Not tied to any source: a tree's node paths and
//! property names, a comm region's field names and an ACPI table's
//! signature all fit.

use core::fmt;

use arrayvec::ArrayString;

/// Bytes kept of a node path in an error; longer paths end with "…".
pub const NODE_PATH_CAPACITY: usize = 64;
/// Bytes kept of a property (or field) name; longer names end with "…".
pub const PROP_NAME_CAPACITY: usize = 32;
/// Bytes kept of an offending property value quoted in an error.
pub const VALUE_CAPACITY: usize = 16;

const ELLIPSIS: &str = "…";

/// A string of at most `N` bytes. Text that does not fit keeps its beginning
/// and ends with "…", so an error about a deep node still says where it is.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct BoundedStr<const N: usize>(ArrayString<N>);

/// A node path such as `/reserved-memory/restricted-dma-pool@48000000`.
pub type NodePath = BoundedStr<NODE_PATH_CAPACITY>;
/// A property name such as `reg`, or a header field such as `off_dt_struct`.
pub type PropName = BoundedStr<PROP_NAME_CAPACITY>;
/// A short quoted property value, such as an unsupported PSCI `method`.
pub type ShortValue = BoundedStr<VALUE_CAPACITY>;

impl<const N: usize> BoundedStr<N> {
    /// `text`, cut with "…" if longer than `N` bytes.
    pub fn new(text: &str) -> Self {
        let mut bounded = Self::default();
        bounded.push_str(text);
        bounded
    }

    /// The text, with the "…" marker if it was cut.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// True for the empty string (an absent property name, for one).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True once text was cut; further appends are ignored.
    pub fn is_truncated(&self) -> bool {
        self.0.ends_with(ELLIPSIS)
    }

    /// Appends `text`, cutting it (on a character boundary) and adding "…"
    /// when it does not fit.
    pub fn push_str(&mut self, text: &str) {
        if self.is_truncated() || self.0.try_push_str(text).is_ok() {
            return;
        }
        let room = N.saturating_sub(self.0.len() + ELLIPSIS.len());
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = self.0.try_push_str(text.get(..cut).unwrap_or(""));
        // The existing text may itself leave no room for the marker.
        while self.0.len() + ELLIPSIS.len() > N && self.0.pop().is_some() {}
        let _ = self.0.try_push_str(ELLIPSIS);
    }

    /// Shortens to `len` bytes (a length this string had before), which
    /// also undoes a cut made after that point.
    pub(crate) fn truncate_to(&mut self, len: usize) {
        if len <= self.0.len() && self.0.is_char_boundary(len) {
            self.0.truncate(len);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl<const N: usize> fmt::Display for BoundedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Write for BoundedStr<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for BoundedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
