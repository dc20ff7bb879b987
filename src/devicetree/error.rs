//! Errors. Every check reports where it failed (node path and property) and
//! what was wrong, in fixed-capacity storage so that errors can be built
//! before there is a heap.

use core::fmt;

use arrayvec::ArrayString;

use crate::platform::{Range, RangeError};

/// Bytes kept of a node path in an error; longer paths end with "…".
pub const NODE_PATH_CAPACITY: usize = 64;
/// Bytes kept of a property (or header field) name; longer names end with "…".
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

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

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

/// Node path used for entries of the memory reservation block, which
/// belong to no node.
pub(crate) const MEMRESERVE: &str = "/memreserve/";

/// What an error about a missing root names as its property: the root
/// should have been the struct block's first node.
pub(crate) const ROOT_PSEUDO_PROPERTY: &str = "(struct block)";

/// The pseudo-property naming entry `index` of the memory reservation
/// block (which has no properties), as in "entry 2".
pub(crate) fn reservation_entry(index: usize) -> PropName {
    let mut name = PropName::default();
    let _ = fmt::Write::write_fmt(&mut name, format_args!("entry {index}"));
    name
}

/// A failed check: where (node path, property) and what.
///
/// Errors about the blob header have an empty `node` and the header field
/// in `property`; errors from [`crate::platform::Range::new`] have neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtError {
    pub node: NodePath,
    pub property: PropName,
    pub kind: DtErrorKind,
}

impl DtError {
    pub fn new(node: &str, property: &str, kind: DtErrorKind) -> Self {
        Self { node: NodePath::new(node), property: PropName::new(property), kind }
    }

    pub(crate) fn at(node: NodePath, property: &str, kind: DtErrorKind) -> Self {
        Self { node, property: PropName::new(property), kind }
    }

    /// An error about a header field.
    pub(crate) fn header(field: &str, kind: DtErrorKind) -> Self {
        Self::new("", field, kind)
    }
}

impl From<RangeError> for DtErrorKind {
    fn from(error: RangeError) -> Self {
        match error {
            RangeError::ZeroSize { base } => DtErrorKind::ZeroSize { base: Some(base) },
            RangeError::Overflow { base, size } => DtErrorKind::RangeOverflow { base, size },
        }
    }
}

impl From<RangeError> for DtError {
    fn from(error: RangeError) -> Self {
        DtErrorKind::from(error).into()
    }
}

impl From<DtErrorKind> for DtError {
    fn from(kind: DtErrorKind) -> Self {
        Self::new("", "", kind)
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.node.is_empty(), self.property.is_empty()) {
            (true, true) => {}
            (true, false) => write!(f, "header field \"{}\": ", self.property)?,
            (false, true) => write!(f, "{}: ", self.node)?,
            (false, false) => write!(f, "{}: property \"{}\": ", self.node, self.property)?,
        }
        write!(f, "{}", self.kind)
    }
}

impl core::error::Error for DtError {}

/// What was wrong. Offsets in structure errors are relative to the start of
/// the struct block; values are as read from the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtErrorKind {
    // ---- the blob's structure ----
    /// The blob (or the header) ends before what it announces.
    Truncated {
        needed: u64,
        available: u64,
    },
    /// The caller's output buffer cannot hold the normalised blob.
    OutputTooSmall {
        needed: u64,
        available: u64,
    },
    BadMagic {
        found: u32,
    },
    /// Only version 17 blobs (compatible back to 16 or 17) are read.
    UnsupportedVersion {
        version: u32,
        last_compatible: u32,
    },
    /// A block or value at `offset` of `size` bytes ends past `limit`.
    OutOfBounds {
        offset: u64,
        size: u64,
        limit: u64,
    },
    /// Header blocks overlap each other or the header.
    BlocksOverlap,
    BadToken {
        offset: u32,
        token: u32,
    },
    /// A node name runs to the end of the struct block without a NUL.
    UnterminatedName {
        offset: u32,
    },
    /// A node or property name is empty (except the root's) or has bytes
    /// outside printable ASCII (or a '/' in a node name).
    BadName {
        offset: u32,
    },
    /// A property's name offset is outside the strings block.
    BadStringOffset {
        offset: u32,
        strings_size: u32,
    },
    /// A string runs to the end of its block, or a string property is not
    /// one NUL-terminated string.
    UnterminatedString,
    NestingTooDeep {
        limit: u32,
    },
    /// FDT_END_NODE without an open node, or FDT_END with nodes open.
    UnbalancedNodes {
        offset: u32,
    },
    MissingRoot,
    MultipleRoots {
        offset: u32,
    },
    PropertyOutsideNode {
        offset: u32,
    },
    /// Properties must precede a node's children.
    PropertyAfterChild {
        offset: u32,
    },
    /// The struct block ends without FDT_END.
    MissingEnd,
    /// `discover` reads only what `normalize` wrote: no FDT_NOP tokens.
    NotNormalized {
        offset: u32,
    },

    // ---- property values ----
    /// The value's length is not a multiple of the entry size.
    BadLength {
        len: u32,
        unit: u32,
    },
    /// The value must be exactly `expected` bytes.
    WrongLength {
        len: u32,
        expected: u32,
    },
    /// An `#address-cells`, `#size-cells` or `#interrupt-cells` value this
    /// code cannot use (addresses and sizes: 1 or 2 cells; GIC: 3).
    BadCells {
        cells: u32,
    },
    InvalidUtf8,
    TooLong {
        len: u32,
        limit: u32,
    },
    UnsupportedValue {
        value: ShortValue,
    },
    BadPhandle {
        phandle: u32,
    },
    DanglingPhandle {
        phandle: u32,
    },
    DuplicatePhandle {
        phandle: u32,
    },
    NotAPool {
        phandle: u32,
        node: NodePath,
    },
    /// The device's pool has an error of its own.
    PoolUnusable {
        pool: NodePath,
    },
    UnsupportedInterruptParent {
        node: NodePath,
    },
    NoInterruptParent,
    /// Not a GIC SPI (type 0, 0..988) or PPI (type 1, 0..16).
    BadInterrupt {
        kind: u32,
        number: u32,
    },
    /// An ancestor bus translates addresses (non-empty or missing `ranges`);
    /// only identity-mapped buses are supported.
    UnsupportedTranslation {
        node: NodePath,
    },
    /// `base` is `None` for a `size` property.
    ZeroSize {
        base: Option<u64>,
    },
    RangeOverflow {
        base: u64,
        size: u64,
    },
    /// Larger than all RAM together.
    AbsurdSize {
        size: u64,
        limit: u64,
    },
    Misaligned {
        value: u64,
        alignment: u64,
    },
    AlignmentNotPowerOfTwo {
        alignment: u64,
    },
    Overlap {
        range: Range,
        other: NodePath,
        other_range: Range,
    },
    OutsideRam {
        range: Range,
    },
    /// Ends above the highest address the runtime's page tables map.
    BeyondAddressSpace {
        range: Range,
        limit: u64,
    },
    /// A device's register window is smaller than what its driver accesses.
    WindowTooSmall {
        size: u64,
        min: u64,
    },
    /// A device's register window lies in RAM or shares a page with it:
    /// mapping it as device memory would take that RAM (code, heap, stack)
    /// away from normal memory.
    DeviceInRam {
        range: Range,
        memory: NodePath,
        ram: Range,
    },
    /// No available node with `device_type = "memory"` declares RAM.
    NoRam,
    /// A dynamic pool found no free RAM that fits.
    NoSpace {
        size: u64,
        alignment: u64,
    },
    TooManyEntries {
        limit: u32,
    },
    MissingNode,
    MissingProperty,
}

impl fmt::Display for DtErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DtErrorKind::*;
        match self {
            Truncated { needed, available } => {
                write!(f, "blob ends early: {needed} bytes needed, {available} present")
            }
            OutputTooSmall { needed, available } => {
                write!(f, "output buffer too small: at least {needed} bytes needed, {available} available")
            }
            BadMagic { found } => write!(f, "bad magic {found:#010x}, expected 0xd00dfeed"),
            UnsupportedVersion { version, last_compatible } => write!(
                f,
                "version {version} (compatible with {last_compatible}) is not supported; need 17, compatible with 16 or 17"
            ),
            OutOfBounds { offset, size, limit } => {
                write!(f, "{offset:#x}+{size:#x} runs past the end at {limit:#x}")
            }
            BlocksOverlap => f.write_str("block overlaps the header or another block"),
            BadToken { offset, token } => write!(f, "unknown token {token:#x} at struct offset {offset:#x}"),
            UnterminatedName { offset } => {
                write!(f, "node name at struct offset {offset:#x} has no NUL in the struct block")
            }
            BadName { offset } => write!(f, "invalid name at offset {offset:#x}"),
            BadStringOffset { offset, strings_size } => {
                write!(f, "name offset {offset:#x} is outside the strings block of {strings_size:#x} bytes")
            }
            UnterminatedString => f.write_str("not a NUL-terminated string"),
            NestingTooDeep { limit } => write!(f, "nodes nested deeper than {limit}"),
            UnbalancedNodes { offset } => write!(f, "unbalanced node begin/end at struct offset {offset:#x}"),
            MissingRoot => f.write_str("no root node"),
            MultipleRoots { offset } => write!(f, "second root node at struct offset {offset:#x}"),
            PropertyOutsideNode { offset } => write!(f, "property outside any node at struct offset {offset:#x}"),
            PropertyAfterChild { offset } => {
                write!(f, "property after a child node at struct offset {offset:#x}")
            }
            MissingEnd => f.write_str("struct block ends without FDT_END"),
            NotNormalized { offset } => {
                write!(f, "FDT_NOP at struct offset {offset:#x}: discover() reads only blobs written by normalize()")
            }
            BadLength { len, unit } => write!(f, "length {len} is not a non-zero multiple of {unit} bytes"),
            WrongLength { len, expected } => write!(f, "length {len}, expected {expected} bytes"),
            BadCells { cells } => write!(f, "{cells} cells is not supported"),
            InvalidUtf8 => f.write_str("not valid UTF-8"),
            TooLong { len, limit } => write!(f, "{len} bytes is longer than the limit of {limit}"),
            UnsupportedValue { value } => write!(f, "unsupported value \"{value}\""),
            BadPhandle { phandle } => write!(f, "{phandle:#x} is not a valid phandle"),
            DanglingPhandle { phandle } => write!(f, "phandle {phandle:#x} names no node"),
            DuplicatePhandle { phandle } => write!(f, "phandle {phandle:#x} names more than one node"),
            NotAPool { phandle, node } => {
                write!(f, "phandle {phandle:#x} names {node}, which is not a restricted-dma-pool")
            }
            PoolUnusable { pool } => write!(f, "its pool {pool} is unusable"),
            UnsupportedInterruptParent { node } => write!(f, "interrupt parent {node} is not the GIC"),
            NoInterruptParent => f.write_str("no interrupt-parent in the node or its ancestors"),
            BadInterrupt { kind, number } => {
                write!(f, "interrupt type {kind} number {number} is not a GIC SPI or PPI")
            }
            UnsupportedTranslation { node } => {
                write!(f, "bus {node} does not map addresses 1:1 (empty `ranges`)")
            }
            ZeroSize { base: Some(base) } => write!(f, "range {base:#x}+0x0 has zero size"),
            ZeroSize { base: None } => f.write_str("size is zero"),
            RangeOverflow { base, size } => {
                write!(f, "range {base:#x}+{size:#x} runs past the end of the address space")
            }
            AbsurdSize { size, limit } => write!(f, "size {size:#x} is larger than all RAM ({limit:#x})"),
            Misaligned { value, alignment } => write!(f, "{value:#x} is not a multiple of {alignment:#x}"),
            AlignmentNotPowerOfTwo { alignment } => write!(f, "alignment {alignment:#x} is not a power of two"),
            Overlap { range, other, other_range } => write!(f, "range {range} overlaps {other} ({other_range})"),
            OutsideRam { range } => write!(f, "range {range} is not inside RAM"),
            BeyondAddressSpace { range, limit } => {
                write!(f, "range {range} ends above {limit:#x}, the end of what the runtime's page tables map")
            }
            WindowTooSmall { size, min } => {
                write!(f, "register window of {size:#x} bytes is smaller than the {min:#x} bytes its driver accesses")
            }
            DeviceInRam { range, memory, ram } => {
                write!(f, "register window {range} is in (or shares a page with) RAM of {memory} ({ram})")
            }
            NoRam => f.write_str("no available node with device_type \"memory\" declares RAM"),
            NoSpace { size, alignment } => {
                write!(f, "no free RAM for {size:#x} bytes aligned to {alignment:#x}")
            }
            TooManyEntries { limit } => write!(f, "more than {limit} entries"),
            MissingNode => f.write_str("no such node"),
            MissingProperty => f.write_str("missing"),
        }
    }
}
