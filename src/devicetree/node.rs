//! Walking a validated blob with the `fdt` crate, and reading property
//! values from raw bytes.
//!
//! Only the crate's node iteration (`all_nodes`, `children`), node names and
//! raw property bytes are used; see the module documentation of
//! [`super`] for why.

use fdt::Fdt;
use fdt::node::FdtNode;

use super::blob::{be32, be64};
use super::error::{ROOT_PSEUDO_PROPERTY, at, at_path};
use crate::platform::Range;
use crate::platform::{ErrorKind, NodePath, Origin, PlatformError};

/// `#address-cells` and `#size-cells` of a bus, validated for reading
/// ranges: 1 or 2 cells each, so every value fits in a u64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cells {
    pub address: u32,
    pub size: u32,
}

impl Cells {
    fn entry_len(self) -> usize {
        4 * (self.address + self.size) as usize
    }
}

/// Reads a 1- or 2-cell big-endian number.
pub(crate) fn read_cells(bytes: &[u8], cells: u32) -> Option<u64> {
    match cells {
        1 => be32(bytes, 0).map(u64::from),
        2 => be64(bytes, 0),
        _ => None,
    }
}

/// Whether a NUL-separated string list contains `wanted`.
pub(crate) fn string_list_contains(list: &[u8], wanted: &str) -> bool {
    list.strip_suffix(&[0]).is_some_and(|list| list.split(|&byte| byte == 0).any(|item| item == wanted.as_bytes()))
}

/// A single NUL-terminated UTF-8 string.
pub(crate) fn parse_string(value: &[u8]) -> Result<&str, ErrorKind> {
    let text = value.strip_suffix(&[0]).ok_or(ErrorKind::UnterminatedString)?;
    if text.contains(&0) {
        return Err(ErrorKind::UnterminatedString);
    }
    core::str::from_utf8(text).map_err(|_| ErrorKind::InvalidUtf8)
}

/// A node during a walk: the crate's node plus what the crate does not
/// keep: the chain of ancestors (for paths, `#address-cells` and inherited
/// properties), the depth and the node's position in walk order.
pub(crate) struct Node<'c, 'b, 'a> {
    pub fdt_node: FdtNode<'b, 'a>,
    /// Properties every visit looks at, read in one pass.
    common: CommonProperties<'a>,
    pub parent: Option<&'c Node<'c, 'b, 'a>>,
    /// 0 for the root.
    pub depth: usize,
    /// Index in depth-first walk order, the root being 0. Two walks of the
    /// same blob number nodes alike.
    pub ordinal: usize,
}

/// Raw values of the properties every visit asks for. Looking them up one
/// by one would re-parse the node's properties each time.
#[derive(Clone, Copy, Default)]
struct CommonProperties<'a> {
    compatible: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    phandle: Option<&'a [u8]>,
    linux_phandle: Option<&'a [u8]>,
}

impl<'a> CommonProperties<'a> {
    fn read(node: FdtNode<'_, 'a>) -> Self {
        let mut common = Self::default();
        for property in node.properties() {
            let slot = match property.name {
                "compatible" => &mut common.compatible,
                "status" => &mut common.status,
                "phandle" => &mut common.phandle,
                "linux,phandle" => &mut common.linux_phandle,
                _ => continue,
            };
            // The first of duplicate properties counts, as in `property`.
            slot.get_or_insert(property.value);
        }
        common
    }
}

impl<'c, 'b, 'a> Node<'c, 'b, 'a> {
    fn new(fdt_node: FdtNode<'b, 'a>, parent: Option<&'c Node<'c, 'b, 'a>>, depth: usize, ordinal: usize) -> Self {
        Self { fdt_node, common: CommonProperties::read(fdt_node), parent, depth, ordinal }
    }
}

impl<'a> Node<'_, '_, 'a> {
    /// The node's name with unit address; empty for the root.
    pub fn name(&self) -> &'a str {
        if self.parent.is_none() { "" } else { self.fdt_node.name }
    }

    pub fn path(&self) -> NodePath {
        let mut path = NodePath::default();
        self.write_path(&mut path);
        path
    }

    fn write_path(&self, path: &mut NodePath) {
        match self.parent {
            None => path.push_str("/"),
            Some(parent) => {
                parent.write_path(path);
                if parent.parent.is_some() {
                    path.push_str("/");
                }
                path.push_str(self.fdt_node.name);
            }
        }
    }

    pub fn error(&self, property: &str, kind: ErrorKind) -> PlatformError {
        at(self.path(), property, kind)
    }

    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.fdt_node.properties().find(|property| property.name == name).map(|property| property.value)
    }

    pub fn has_property(&self, name: &str) -> bool {
        self.property(name).is_some()
    }

    pub fn is_compatible(&self, compatible: &str) -> bool {
        self.common.compatible.is_some_and(|list| string_list_contains(list, compatible))
    }

    /// Like Linux: no `status`, or "okay"/"ok". Anything else, malformed
    /// values included, means the node is not there.
    pub fn is_available(&self) -> bool {
        match self.common.status {
            None => true,
            Some(value) => matches!(parse_string(value), Ok("okay" | "ok")),
        }
    }

    /// A string property, if present.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, PlatformError> {
        self.property(name).map(|value| parse_string(value).map_err(|kind| self.error(name, kind))).transpose()
    }

    /// A one-cell property, if present.
    pub fn u32(&self, name: &str) -> Result<Option<u32>, PlatformError> {
        self.property(name).map(|value| self.one_cell(name, value)).transpose()
    }

    fn one_cell(&self, name: &str, value: &[u8]) -> Result<u32, PlatformError> {
        match (value.len(), be32(value, 0)) {
            (4, Some(number)) => Ok(number),
            (len, _) => Err(self.error(name, ErrorKind::WrongLength { len: len as u32, expected: 4 })),
        }
    }

    /// The node's phandle (`phandle`, else the older `linux,phandle`).
    pub fn phandle(&self) -> Result<Option<u32>, PlatformError> {
        for (name, value) in [("phandle", self.common.phandle), ("linux,phandle", self.common.linux_phandle)] {
            if let Some(value) = value {
                let phandle = self.one_cell(name, value)?;
                if phandle == 0 || phandle == u32::MAX {
                    return Err(self.error(name, ErrorKind::BadPhandle { phandle }));
                }
                return Ok(Some(phandle));
            }
        }
        Ok(None)
    }

    /// A phandle-valued property (exactly one phandle).
    pub fn phandle_reference(&self, name: &str) -> Result<Option<u32>, PlatformError> {
        self.u32(name)
    }

    /// The `#address-cells`/`#size-cells` this node gives its children
    /// (defaults 2 and 1, as the specification says).
    pub fn child_cells(&self) -> Result<Cells, PlatformError> {
        let address = self.u32("#address-cells")?.unwrap_or(2);
        if !(1..=2).contains(&address) {
            return Err(self.error("#address-cells", ErrorKind::BadCells { cells: address }));
        }
        let size = self.u32("#size-cells")?.unwrap_or(1);
        if !(1..=2).contains(&size) {
            return Err(self.error("#size-cells", ErrorKind::BadCells { cells: size }));
        }
        Ok(Cells { address, size })
    }

    /// The cells this node's addresses and sizes (in `property`) are
    /// written in: its parent's, after checking that every bus between the
    /// node and the root maps addresses 1:1, so that the values are CPU
    /// physical addresses.
    pub fn address_cells(&self, property: &str) -> Result<Cells, PlatformError> {
        let Some(parent) = self.parent else {
            return Err(self.error(property, ErrorKind::MissingNode));
        };
        let mut bus = Some(parent);
        while let Some(node) = bus.filter(|node| node.parent.is_some()) {
            if node.property("ranges") != Some(&[]) {
                return Err(self.error(property, ErrorKind::UnsupportedTranslation { node: Origin::Node(node.path()) }));
            }
            bus = node.parent;
        }
        parent.child_cells()
    }

    /// The (address, size) pairs of `name` (`reg`, `alloc-ranges`) in this
    /// node's address cells, as ranges. Fails if the property is missing,
    /// empty or not a whole number of pairs.
    pub fn ranges(&self, name: &str) -> Result<RangeEntries<'a>, PlatformError> {
        let cells = self.address_cells(name)?;
        let value = self.property(name).ok_or_else(|| self.error(name, ErrorKind::MissingProperty))?;
        let unit = cells.entry_len();
        if value.is_empty() || !value.len().is_multiple_of(unit) {
            return Err(self.error(name, ErrorKind::BadLength { len: value.len() as u32, unit: unit as u32 }));
        }
        Ok(RangeEntries { value, cells })
    }

    /// The single range of `name`; more than one entry is an error.
    pub fn single_range(&self, name: &str) -> Result<Range, PlatformError> {
        let mut entries = self.ranges(name)?;
        let (len, expected) = (entries.value.len(), entries.cells.entry_len());
        if len != expected {
            return Err(self.error(name, ErrorKind::WrongLength { len: len as u32, expected: expected as u32 }));
        }
        let range = entries.next().ok_or_else(|| self.error(name, ErrorKind::MissingProperty))?;
        range.map_err(|kind| self.error(name, kind))
    }

    /// A number written in this node's size cells (`size`, `alignment`).
    pub fn size_value(&self, name: &str) -> Result<Option<u64>, PlatformError> {
        let Some(value) = self.property(name) else {
            return Ok(None);
        };
        let cells = self.address_cells(name)?;
        let expected = 4 * cells.size;
        match read_cells(value, cells.size) {
            Some(number) if value.len() == expected as usize => Ok(Some(number)),
            _ => Err(self.error(name, ErrorKind::WrongLength { len: value.len() as u32, expected })),
        }
    }

    /// The node's `interrupt-parent`, or the nearest ancestor's.
    pub fn interrupt_parent(&self) -> Result<Option<u32>, PlatformError> {
        let mut node = Some(self);
        while let Some(current) = node {
            if let Some(phandle) = current.phandle_reference("interrupt-parent")? {
                return Ok(Some(phandle));
            }
            node = current.parent;
        }
        Ok(None)
    }

    /// `dma-coherent` on the node or the nearest ancestor that says either
    /// way, as Linux reads it.
    pub fn dma_coherent(&self) -> bool {
        let mut node = Some(self);
        while let Some(current) = node {
            if current.has_property("dma-noncoherent") {
                return false;
            }
            if current.has_property("dma-coherent") {
                return true;
            }
            node = current.parent;
        }
        false
    }
}

/// Iterator over (address, size) pairs. The length was checked to be a
/// whole number of pairs.
pub(crate) struct RangeEntries<'a> {
    value: &'a [u8],
    cells: Cells,
}

impl Iterator for RangeEntries<'_> {
    type Item = Result<Range, ErrorKind>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.value.get(..self.cells.entry_len())?;
        self.value = self.value.get(entry.len()..).unwrap_or_default();
        let size_at = 4 * self.cells.address as usize;
        let base = read_cells(entry, self.cells.address)?;
        let size = read_cells(entry.get(size_at..)?, self.cells.size)?;
        Some(Range::new(base, size).map_err(ErrorKind::from))
    }
}

/// Visits every node of the tree depth-first, root first, parents before
/// children. The blob must have passed [`super::blob::validate_normalized`]:
/// the crate's iterators are only panic-free on such blobs. Recursion is
/// bounded by the validated nesting limit.
pub(crate) fn walk<'b, 'a, F>(fdt: &'b Fdt<'a>, visit: &mut F) -> Result<(), PlatformError>
where
    F: for<'c> FnMut(&Node<'c, 'b, 'a>) -> Result<(), PlatformError>,
{
    let root = fdt.all_nodes().next().ok_or_else(|| at_path("/", ROOT_PSEUDO_PROPERTY, ErrorKind::MissingRoot))?;
    let mut ordinal = 0;
    walk_node(&Node::new(root, None, 0, 0), &mut ordinal, visit)
}

fn walk_node<'b, 'a, F>(node: &Node<'_, 'b, 'a>, ordinal: &mut usize, visit: &mut F) -> Result<(), PlatformError>
where
    F: for<'c> FnMut(&Node<'c, 'b, 'a>) -> Result<(), PlatformError>,
{
    visit(node)?;
    for child in node.fdt_node.children() {
        *ordinal += 1;
        let child = Node::new(child, Some(node), node.depth + 1, *ordinal);
        walk_node(&child, ordinal, visit)?;
    }
    Ok(())
}

/// The path of the node with walk-order index `ordinal`.
pub(crate) fn path_of(fdt: &Fdt<'_>, ordinal: usize) -> NodePath {
    let mut found = NodePath::default();
    let _ = walk(fdt, &mut |node| {
        if node.ordinal == ordinal {
            found = node.path();
        }
        Ok(())
    });
    found
}

/// Whether `path` names `node`: same components, where a wanted component
/// without a unit address matches any unit address (as paths may omit it).
pub(crate) fn path_matches(node: &Node<'_, '_, '_>, wanted: &str) -> bool {
    let path = node.path();
    if path.is_truncated() {
        return false;
    }
    let mut have = path.as_str().split('/').filter(|part| !part.is_empty());
    let mut want = wanted.split('/').filter(|part| !part.is_empty());
    loop {
        match (have.next(), want.next()) {
            (None, None) => return true,
            (Some(have), Some(want)) => {
                let same = have == want || (!want.contains('@') && have.split('@').next() == Some(want));
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}
