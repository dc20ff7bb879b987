//! The one error type of every platform source: where a value came from
//! ([`Origin`] and the property or field), and what was wrong with it
//! ([`ErrorKind`]). Fixed-capacity, so errors can be built before there is
//! a heap.

use core::fmt;

use super::range::{Range, RangeError};
use super::text::{NodePath, PropName, ShortValue};

/// Where a value came from.
///
/// Only what some source produces today is a variant. ACPI (`Acpi { table:
/// [u8; 4] }`, the table's signature) gets its variant when that source
/// exists; no source invents a node path for what is not a tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A device tree node, by path. Entries of the tree's memory
    /// reservation block, which belong to no node, use `/memreserve/`.
    Node(NodePath),
    /// The device tree blob's header; the error's property names the field.
    TreeHeader,
    /// A field of a Jailhouse cell's communication region, by its name in
    /// Jailhouse's `struct jailhouse_comm_region` (`gicd_base`, ...).
    CommRegion(&'static str),
    /// A constant of the board the image was built for
    /// (`boards/<name>/board.rs`), by name: what a source without a tree
    /// (a comm region) does not say, such as the cell's RAM.
    Board(&'static str),
    /// Something the runtime itself accounts for rather than a platform
    /// source: the image, the loader's copy of its input, the board's early
    /// UART. The text is printed as is, such as `(image)`.
    Runtime(&'static str),
    /// Nowhere in particular: an error made from its kind alone (a
    /// [`RangeError`], a full output buffer, a blob too short for its
    /// header, a structure error outside every node).
    Unnamed,
}

impl Origin {
    /// The tree node at `path`.
    pub fn node(path: &str) -> Self {
        Origin::Node(NodePath::new(path))
    }

    /// The node path, for a tree node.
    pub fn node_path(&self) -> Option<&NodePath> {
        match self {
            Origin::Node(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Node(path) => write!(f, "{path}"),
            Origin::TreeHeader => f.write_str("the tree's header"),
            Origin::CommRegion(field) => write!(f, "comm region field \"{field}\""),
            Origin::Board(constant) => write!(f, "board constant {constant}"),
            Origin::Runtime(name) => f.write_str(name),
            Origin::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

/// A failed check: where (origin and property or field) and what.
///
/// Header errors have [`Origin::TreeHeader`] and the header field in
/// `property`; errors from [`Range::new`] and other kinds alone have
/// [`Origin::Unnamed`] and no property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformError {
    /// Where the value came from.
    pub origin: Origin,
    /// The property (tree) or field (header, comm region) that held it; empty when the origin alone
    /// says it.
    pub property: PropName,
    /// What was wrong with it.
    pub kind: ErrorKind,
}

impl PlatformError {
    /// An error about `property` of `origin`. A property name longer than [`PropName`] holds is cut
    /// short.
    pub fn new(origin: Origin, property: &str, kind: ErrorKind) -> Self {
        Self { origin, property: PropName::new(property), kind }
    }

    /// An error about a field of the tree's header.
    pub fn header(field: &str, kind: ErrorKind) -> Self {
        Self::new(Origin::TreeHeader, field, kind)
    }
}

impl From<RangeError> for ErrorKind {
    fn from(error: RangeError) -> Self {
        match error {
            RangeError::ZeroSize { base } => ErrorKind::ZeroSize { base: Some(base) },
            RangeError::Overflow { base, size } => ErrorKind::RangeOverflow { base, size },
        }
    }
}

impl From<RangeError> for PlatformError {
    fn from(error: RangeError) -> Self {
        ErrorKind::from(error).into()
    }
}

impl From<ErrorKind> for PlatformError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(Origin::Unnamed, "", kind)
    }
}

/// `/node: property "reg": ...` for a tree node, `header field "x": ...`
/// for the tree's header, the bare kind for an unnamed origin.
impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.property.is_empty()) {
            (Origin::Unnamed, true) => {}
            (Origin::Unnamed, false) => write!(f, "property \"{}\": ", self.property)?,
            (Origin::TreeHeader, false) => write!(f, "header field \"{}\": ", self.property)?,
            (origin, true) => write!(f, "{origin}: ")?,
            (origin, false) => write!(f, "{origin}: property \"{}\": ", self.property)?,
        }
        write!(f, "{}", self.kind)
    }
}

impl core::error::Error for PlatformError {}

/// What was wrong. The first group is about a device tree blob's structure
/// (offsets relative to the start of the struct block); the others apply to
/// values from any source, as read. Kinds that name another place carry
/// its [`Origin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    // ---- the blob's structure ----
    /// The blob (or the header) ends before what it announces.
    Truncated {
        /// Bytes the blob (or header) announces.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The caller's output buffer cannot hold the normalised blob.
    OutputTooSmall {
        /// Bytes the normalised blob needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
    /// The header's magic is not 0xd00dfeed.
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// Only version 17 blobs (compatible back to 16 or 17) are read.
    UnsupportedVersion {
        /// The header's `version`.
        version: u32,
        /// The header's `last_comp_version`.
        last_compatible: u32,
    },
    /// A block or value at `offset` of `size` bytes ends past `limit`.
    OutOfBounds {
        /// Offset of the block or value, in bytes.
        offset: u64,
        /// Its size in bytes.
        size: u64,
        /// Where its container ends.
        limit: u64,
    },
    /// Header blocks overlap each other or the header.
    BlocksOverlap,
    /// A token in the struct block is none of FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP and
    /// FDT_END.
    BadToken {
        /// Offset of the token in the struct block.
        offset: u32,
        /// The token found.
        token: u32,
    },
    /// A node name runs to the end of the struct block without a NUL.
    UnterminatedName {
        /// Offset of the name in the struct block.
        offset: u32,
    },
    /// A node or property name is empty (except the root's) or has bytes
    /// outside printable ASCII (or a '/' in a node name).
    BadName {
        /// Offset of the name (struct block for nodes, strings block for properties).
        offset: u32,
    },
    /// A property's name offset is outside the strings block.
    BadStringOffset {
        /// The name offset the property gives.
        offset: u32,
        /// Size of the strings block.
        strings_size: u32,
    },
    /// A string runs to the end of its block, or a string property is not
    /// one NUL-terminated string.
    UnterminatedString,
    /// Nodes are nested deeper than the parser follows.
    NestingTooDeep {
        /// The deepest nesting accepted.
        limit: u32,
    },
    /// FDT_END_NODE without an open node, or FDT_END with nodes open.
    UnbalancedNodes {
        /// Offset of the token in the struct block.
        offset: u32,
    },
    /// The struct block has no root node.
    MissingRoot,
    /// A second node at the top level of the struct block.
    MultipleRoots {
        /// Offset of its FDT_BEGIN_NODE in the struct block.
        offset: u32,
    },
    /// An FDT_PROP before the root node or after it has ended.
    PropertyOutsideNode {
        /// Offset of the FDT_PROP in the struct block.
        offset: u32,
    },
    /// Properties must precede a node's children.
    PropertyAfterChild {
        /// Offset of the FDT_PROP in the struct block.
        offset: u32,
    },
    /// The struct block ends without FDT_END.
    MissingEnd,
    /// `discover` reads only what `normalize` wrote: no FDT_NOP tokens.
    NotNormalized {
        /// Offset of the FDT_NOP in the struct block.
        offset: u32,
    },

    // ---- property values ----
    /// The value's length is not a multiple of the entry size.
    BadLength {
        /// The value's length in bytes.
        len: u32,
        /// The entry size in bytes.
        unit: u32,
    },
    /// The value must be exactly `expected` bytes.
    WrongLength {
        /// The value's length in bytes.
        len: u32,
        /// The length it must have.
        expected: u32,
    },
    /// An `#address-cells`, `#size-cells` or `#interrupt-cells` value this
    /// code cannot use (addresses and sizes: 1 or 2 cells; GIC: 3).
    BadCells {
        /// The cell count found.
        cells: u32,
    },
    /// A string value is not UTF-8.
    InvalidUtf8,
    /// A value is longer than the runtime keeps.
    TooLong {
        /// Its length in bytes.
        len: u32,
        /// The longest accepted.
        limit: u32,
    },
    /// A value (a `compatible`, a `method`, a `status`, ...) this code does not support.
    UnsupportedValue {
        /// The value, cut short where long.
        value: ShortValue,
    },
    /// A phandle value that cannot name a node (0 or 0xffffffff).
    BadPhandle {
        /// The value found.
        phandle: u32,
    },
    /// A phandle that no node in the tree has.
    DanglingPhandle {
        /// The phandle.
        phandle: u32,
    },
    /// Two nodes have the same phandle.
    DuplicatePhandle {
        /// The phandle.
        phandle: u32,
    },
    /// A `memory-region` phandle names a node that is not a `restricted-dma-pool`.
    NotAPool {
        /// The phandle.
        phandle: u32,
        /// The node it names.
        node: Origin,
    },
    /// The device's pool has an error of its own.
    PoolUnusable {
        /// The pool the device's `memory-region` names.
        pool: Origin,
    },
    /// The interrupt parent is not the GIC the runtime drives.
    UnsupportedInterruptParent {
        /// The interrupt parent.
        node: Origin,
    },
    /// A node with interrupts has no `interrupt-parent`, in itself or any ancestor.
    NoInterruptParent,
    /// Not a GIC SPI (type 0, 0..988) or PPI (type 1, 0..16).
    BadInterrupt {
        /// The specifier's type cell.
        kind: u32,
        /// The specifier's number cell.
        number: u32,
    },
    /// An ancestor bus translates addresses (non-empty or missing `ranges`);
    /// only identity-mapped buses are supported.
    UnsupportedTranslation {
        /// The bus that translates.
        node: Origin,
    },
    /// `base` is `None` for a `size` property.
    ZeroSize {
        /// The range's base, when the value was a range.
        base: Option<u64>,
    },
    /// A range runs past the end of the 64-bit address space.
    RangeOverflow {
        /// The range's base.
        base: u64,
        /// The range's size.
        size: u64,
    },
    /// Larger than all RAM together.
    AbsurdSize {
        /// The size found.
        size: u64,
        /// The size of all RAM together.
        limit: u64,
    },
    /// A value is not a multiple of its alignment.
    Misaligned {
        /// The value.
        value: u64,
        /// The alignment it must have.
        alignment: u64,
    },
    /// An alignment that is not a power of two.
    AlignmentNotPowerOfTwo {
        /// The alignment found.
        alignment: u64,
    },
    /// Two ranges that must be disjoint overlap.
    Overlap {
        /// This value's range.
        range: Range,
        /// Where the range it overlaps came from.
        other: Origin,
        /// The range it overlaps.
        other_range: Range,
    },
    /// A range that must lie inside RAM does not.
    OutsideRam {
        /// The range.
        range: Range,
    },
    /// Ends above the highest address the runtime's page tables map.
    BeyondAddressSpace {
        /// The range.
        range: Range,
        /// The first address above what the page tables map.
        limit: u64,
    },
    /// A device's register window is smaller than what its driver accesses.
    WindowTooSmall {
        /// The window's size in bytes.
        size: u64,
        /// The bytes the driver accesses.
        min: u64,
    },
    /// A device's register window lies in RAM or shares a page with it:
    /// mapping it as device memory would take that RAM (code, heap, stack)
    /// away from normal memory.
    DeviceInRam {
        /// The register window.
        range: Range,
        /// The memory node that declares the RAM.
        memory: Origin,
        /// The RAM range it touches.
        ram: Range,
    },
    /// No available node with `device_type = "memory"` declares RAM.
    NoRam,
    /// A dynamic pool found no free RAM that fits.
    NoSpace {
        /// The size asked for.
        size: u64,
        /// The alignment asked for.
        alignment: u64,
    },
    /// More entries than the runtime keeps.
    TooManyEntries {
        /// The most entries kept.
        limit: u32,
    },
    /// A number outside the range this field may take.
    OutOfRange {
        /// The value found.
        value: u64,
        /// The smallest accepted.
        min: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A node the runtime needs is not in the tree.
    MissingNode,
    /// A property (or field) the runtime needs is not there.
    MissingProperty,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
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
            OutOfRange { value, min, max } => write!(f, "{value:#x} is outside {min:#x}..={max:#x}"),
            MissingNode => f.write_str("no such node"),
            MissingProperty => f.write_str("missing"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;

    #[test]
    fn messages_name_the_origin_as_the_tree_did() {
        let kind = ErrorKind::MissingProperty;
        assert_eq!(
            PlatformError::new(Origin::node("/psci"), "method", kind).to_string(),
            "/psci: property \"method\": missing"
        );
        assert_eq!(PlatformError::new(Origin::node("/psci"), "", kind).to_string(), "/psci: missing");
        assert_eq!(PlatformError::header("magic", kind).to_string(), "header field \"magic\": missing");
        assert_eq!(PlatformError::from(kind).to_string(), "missing");
        let range = Range::new(0x1000, 0x1000).unwrap();
        let overlap = ErrorKind::Overlap { range, other: Origin::Runtime("(image)"), other_range: range };
        assert_eq!(
            PlatformError::new(Origin::node("/pool"), "reg", overlap).to_string(),
            "/pool: property \"reg\": range 0x1000..0x2000 overlaps (image) (0x1000..0x2000)"
        );
        assert_eq!(Origin::node("/a").node_path().map(NodePath::as_str), Some("/a"));
        assert_eq!(Origin::TreeHeader.node_path(), None);
        let kind = ErrorKind::OutOfRange { value: 0, min: 1, max: 984 };
        assert_eq!(
            PlatformError::new(Origin::CommRegion("vpci_irq_base"), "", kind).to_string(),
            "comm region field \"vpci_irq_base\": 0x0 is outside 0x1..=0x3d8"
        );
        assert_eq!(
            PlatformError::new(Origin::Board("CELL.ram"), "", ErrorKind::MissingProperty).to_string(),
            "board constant CELL.ram: missing"
        );
    }
}
