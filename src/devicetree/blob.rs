//! Validation and normalisation of a flattened device tree blob.
//!
//! One pass over the whole blob checks everything the `fdt` crate would
//! otherwise trust (and panic on), and writes a copy without FDT_NOP tokens,
//! which that crate does not skip everywhere. The same pass without an
//! output re-checks a normalised blob before discovery reads it.

use arrayvec::ArrayVec;

use super::error::{self, MEMRESERVE, ROOT_PSEUDO_PROPERTY, at, at_path, reservation_entry};
use crate::platform::{ErrorKind, NodePath, PlatformError};

/// Size of the header, which is all [`blob_total_size`] reads.
pub const HEADER_SIZE: usize = 40;
/// Deepest node nesting accepted, the root counting as 1.
pub const MAX_DEPTH: usize = 32;

const MAGIC: u32 = 0xd00d_feed;
/// Version written into normalised blobs, and the oldest one read: the
/// struct block size field appeared in version 17.
const VERSION: u32 = 17;
const LAST_COMPATIBLE: u32 = 16;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A memory reservation block entry is two big-endian u64s.
pub(crate) const RESERVATION_SIZE: usize = 16;

pub(crate) fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

pub(crate) fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(word.try_into().ok()?))
}

fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

/// Struct block offsets fit in u32 because the block's size does.
fn offset32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

#[derive(Clone, Copy, Debug)]
struct Header {
    total_size: u32,
    off_struct: u32,
    off_strings: u32,
    off_reservations: u32,
    boot_cpuid: u32,
    size_strings: u32,
    size_struct: u32,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Self, PlatformError> {
        let field = |index: usize| be32(bytes, index * 4);
        let (Some(magic), Some(total_size), Some(off_struct), Some(off_strings), Some(off_reservations)) =
            (field(0), field(1), field(2), field(3), field(4))
        else {
            return Err(truncated_header(bytes.len()));
        };
        let (Some(version), Some(last_compatible), Some(boot_cpuid), Some(size_strings), Some(size_struct)) =
            (field(5), field(6), field(7), field(8), field(9))
        else {
            return Err(truncated_header(bytes.len()));
        };
        if magic != MAGIC {
            return Err(PlatformError::header("magic", ErrorKind::BadMagic { found: magic }));
        }
        if version < VERSION || last_compatible > VERSION {
            return Err(PlatformError::header("version", ErrorKind::UnsupportedVersion { version, last_compatible }));
        }
        let header =
            Self { total_size, off_struct, off_strings, off_reservations, boot_cpuid, size_strings, size_struct };
        header.check_blocks()?;
        Ok(header)
    }

    /// Every block lies inside `totalsize`, after the header, aligned, and
    /// apart from the others. (The reservation block's end is only known
    /// once its terminator is found; see [`Blob::parse`].)
    fn check_blocks(&self) -> Result<(), PlatformError> {
        let total = u64::from(self.total_size);
        if total < HEADER_SIZE as u64 {
            return Err(PlatformError::header(
                "totalsize",
                ErrorKind::Truncated { needed: HEADER_SIZE as u64, available: total },
            ));
        }
        let blocks = [
            ("off_mem_rsvmap", self.off_reservations, RESERVATION_SIZE as u32, 8),
            ("off_dt_struct", self.off_struct, self.size_struct, 4),
            ("off_dt_strings", self.off_strings, self.size_strings, 1),
        ];
        for (name, offset, size, alignment) in blocks {
            let (offset, size) = (u64::from(offset), u64::from(size));
            if offset < HEADER_SIZE as u64 {
                return Err(PlatformError::header(name, ErrorKind::BlocksOverlap));
            }
            if !offset.is_multiple_of(alignment) {
                return Err(PlatformError::header(name, ErrorKind::Misaligned { value: offset, alignment }));
            }
            if offset + size > total {
                return Err(PlatformError::header(name, ErrorKind::OutOfBounds { offset, size, limit: total }));
            }
        }
        if !self.size_struct.is_multiple_of(4) {
            let value = u64::from(self.size_struct);
            return Err(PlatformError::header("size_dt_struct", ErrorKind::Misaligned { value, alignment: 4 }));
        }
        let structs = (self.off_struct, self.size_struct);
        let strings = (self.off_strings, self.size_strings);
        if spans_overlap(structs, strings) {
            return Err(PlatformError::header("off_dt_strings", ErrorKind::BlocksOverlap));
        }
        if spans_overlap((self.off_reservations, RESERVATION_SIZE as u32), structs)
            || spans_overlap((self.off_reservations, RESERVATION_SIZE as u32), strings)
        {
            return Err(PlatformError::header("off_mem_rsvmap", ErrorKind::BlocksOverlap));
        }
        Ok(())
    }
}

fn truncated_header(available: usize) -> PlatformError {
    ErrorKind::Truncated { needed: HEADER_SIZE as u64, available: available as u64 }.into()
}

/// Whether two (offset, size) spans share a byte; empty spans share none.
fn spans_overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    let (a_start, a_end) = (u64::from(a.0), u64::from(a.0) + u64::from(a.1));
    let (b_start, b_end) = (u64::from(b.0), u64::from(b.0) + u64::from(b.1));
    a.1 != 0 && b.1 != 0 && a_start < b_end && b_start < a_end
}

/// Reads and checks the 40-byte header only and returns `totalsize`: how
/// many bytes the whole blob occupies, so that a loader knows how much to
/// copy before calling [`normalize`].
pub fn blob_total_size(header: &[u8]) -> Result<usize, PlatformError> {
    Header::parse(header).map(|header| header.total_size as usize)
}

/// A blob whose header and memory reservation block have been checked;
/// the struct block has not been walked yet.
pub(crate) struct Blob<'b> {
    header: Header,
    /// The whole blob, `totalsize` bytes.
    pub bytes: &'b [u8],
    /// The reservation entries, without the terminating all-zero entry.
    pub reservations: &'b [u8],
    pub structs: &'b [u8],
    pub strings: &'b [u8],
}

impl<'b> Blob<'b> {
    pub fn parse(blob: &'b [u8]) -> Result<Self, PlatformError> {
        let header = Header::parse(blob)?;
        let total = header.total_size as usize;
        let bytes = blob.get(..total).ok_or_else(|| {
            PlatformError::header(
                "totalsize",
                ErrorKind::Truncated { needed: total as u64, available: blob.len() as u64 },
            )
        })?;
        let block = |offset: u32, size: u32| bytes.get(offset as usize..offset as usize + size as usize);
        // check_blocks put both inside `totalsize`.
        let (Some(structs), Some(strings)) =
            (block(header.off_struct, header.size_struct), block(header.off_strings, header.size_strings))
        else {
            return Err(PlatformError::header("totalsize", ErrorKind::BlocksOverlap));
        };

        let start = header.off_reservations as usize;
        let mut end = start;
        loop {
            let (Some(address), Some(size)) = (be64(bytes, end), be64(bytes, end + 8)) else {
                let kind = ErrorKind::OutOfBounds {
                    offset: start as u64,
                    size: (end - start + RESERVATION_SIZE) as u64,
                    limit: total as u64,
                };
                let entry = reservation_entry((end - start) / RESERVATION_SIZE);
                return Err(at(NodePath::new(MEMRESERVE), entry.as_str(), kind));
            };
            if address == 0 && size == 0 {
                break;
            }
            end += RESERVATION_SIZE;
        }
        let extent = (start as u32, offset32(end + RESERVATION_SIZE - start));
        if spans_overlap(extent, (header.off_struct, header.size_struct))
            || spans_overlap(extent, (header.off_strings, header.size_strings))
        {
            return Err(PlatformError::header("off_mem_rsvmap", ErrorKind::BlocksOverlap));
        }
        let reservations = bytes.get(start..end).unwrap_or_default();
        Ok(Self { header, bytes, reservations, structs, strings })
    }
}

/// Where normalised output goes, with the bounds checks in one place.
struct Writer<'o> {
    buffer: &'o mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        let available = self.buffer.len() as u64;
        let too_small = |needed: usize| ErrorKind::OutputTooSmall { needed: needed as u64, available };
        let end = self.len.checked_add(bytes.len()).ok_or(too_small(usize::MAX))?;
        let target = self.buffer.get_mut(self.len..end).ok_or(too_small(end))?;
        target.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put_u32(&mut self, value: u32) -> Result<(), ErrorKind> {
        self.put(&value.to_be_bytes())
    }

    /// Zero padding up to the next 4-byte boundary (the input's padding
    /// bytes are not copied, so equal trees normalise to equal bytes).
    fn pad4(&mut self) -> Result<(), ErrorKind> {
        let padding = (4 - self.len % 4) % 4;
        self.put(&[0; 3][..padding])
    }

    fn put_node_start(&mut self, name: &str) -> Result<(), ErrorKind> {
        self.put_u32(FDT_BEGIN_NODE)?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad4()
    }

    fn put_property(&mut self, name_offset: u32, value: &[u8]) -> Result<(), ErrorKind> {
        self.put_u32(FDT_PROP)?;
        self.put_u32(offset32(value.len()))?;
        self.put_u32(name_offset)?;
        self.put(value)?;
        self.pad4()
    }

    fn set_u32(&mut self, at: usize, value: u32) -> Result<(), ErrorKind> {
        let available = self.buffer.len() as u64;
        let target =
            self.buffer.get_mut(at..at + 4).ok_or(ErrorKind::OutputTooSmall { needed: at as u64 + 4, available })?;
        target.copy_from_slice(&value.to_be_bytes());
        Ok(())
    }
}

/// Writes a validated copy of `blob` into `out` with every FDT_NOP token
/// removed and returns its length. The copy has the header, the memory
/// reservation block, the struct block and the strings block in that order
/// with no gaps, version 17, and zeroed padding.
///
/// `blob` may extend past the tree's `totalsize`; the rest is ignored.
pub fn normalize(blob: &[u8], out: &mut [u8]) -> Result<usize, PlatformError> {
    let blob = Blob::parse(blob)?;
    let mut writer = Writer { buffer: out, len: 0 };
    let output_error = PlatformError::from;
    writer.put(&[0; HEADER_SIZE]).map_err(output_error)?;
    writer.put(blob.reservations).map_err(output_error)?;
    writer.put(&[0; RESERVATION_SIZE]).map_err(output_error)?;
    let off_struct = writer.len;
    walk_struct(&blob, Some(&mut writer))?;
    let off_strings = writer.len;
    writer.put(blob.strings).map_err(output_error)?;
    let total = writer.len;

    let header = [
        MAGIC,
        offset32(total),
        offset32(off_struct),
        offset32(off_strings),
        HEADER_SIZE as u32,
        VERSION,
        LAST_COMPATIBLE,
        blob.header.boot_cpuid,
        blob.header.size_strings,
        offset32(off_strings - off_struct),
    ];
    for (index, value) in header.into_iter().enumerate() {
        writer.set_u32(index * 4, value).map_err(output_error)?;
    }
    Ok(total)
}

/// Checks a blob as [`normalize`] does, refusing FDT_NOP tokens. Run before
/// discovery so that it is safe on any input, not just `normalize`'s output.
pub(crate) fn validate_normalized(blob: &[u8]) -> Result<Blob<'_>, PlatformError> {
    let parsed = Blob::parse(blob)?;
    walk_struct(&parsed, None)?;
    Ok(parsed)
}

/// The path of the node being read, for error messages.
struct PathTracker {
    path: NodePath,
    /// The path's length before each open node was appended.
    marks: ArrayVec<usize, MAX_DEPTH>,
}

impl PathTracker {
    fn push(&mut self, name: &str) -> bool {
        let mark = self.path.len();
        if self.marks.try_push(mark).is_err() {
            return false;
        }
        match self.marks.len() {
            1 => self.path.push_str("/"),
            2 => self.path.push_str(name),
            _ => {
                self.path.push_str("/");
                self.path.push_str(name);
            }
        }
        true
    }

    fn pop(&mut self) {
        if let Some(mark) = self.marks.pop() {
            self.path.truncate_to(mark);
        }
    }

    fn depth(&self) -> usize {
        self.marks.len()
    }
}

/// Printable ASCII. Node names may not contain '/', which separates path
/// components.
fn valid_name(name: &[u8], is_node: bool) -> bool {
    !name.is_empty() && name.iter().all(|&byte| (0x21..=0x7e).contains(&byte) && !(is_node && byte == b'/'))
}

/// Walks every token of the struct block, checking it; with a writer,
/// copies every token except FDT_NOP, without one, refuses FDT_NOP.
fn walk_struct(blob: &Blob<'_>, mut out: Option<&mut Writer<'_>>) -> Result<(), PlatformError> {
    let block = blob.structs;
    let mut nodes = PathTracker { path: NodePath::default(), marks: ArrayVec::new() };
    let mut root_closed = false;
    // Properties are allowed right after a node's name, not after a child.
    let mut properties_allowed = false;
    let mut at = 0;
    loop {
        let offset = offset32(at);
        let fail = |nodes: &PathTracker, property: &str, kind| error::at(nodes.path, property, kind);
        let Some(token) = be32(block, at) else {
            return Err(fail(&nodes, "", ErrorKind::MissingEnd));
        };
        let next = match token {
            FDT_BEGIN_NODE => {
                if root_closed {
                    return Err(fail(&nodes, "", ErrorKind::MultipleRoots { offset }));
                }
                let rest = block.get(at + 4..).unwrap_or_default();
                let Some(length) = rest.iter().position(|&byte| byte == 0) else {
                    return Err(fail(&nodes, "", ErrorKind::UnterminatedName { offset }));
                };
                let name = rest.get(..length).unwrap_or_default();
                let is_root = nodes.depth() == 0;
                if is_root != name.is_empty() || (!is_root && !valid_name(name, true)) {
                    return Err(fail(&nodes, "", ErrorKind::BadName { offset }));
                }
                let name = core::str::from_utf8(name).unwrap_or_default();
                if !nodes.push(name) {
                    return Err(fail(&nodes, "", ErrorKind::NestingTooDeep { limit: MAX_DEPTH as u32 }));
                }
                properties_allowed = true;
                let next = align4(at + 4 + length + 1).unwrap_or(usize::MAX);
                if let Some(out) = out.as_deref_mut() {
                    out.put_node_start(name).map_err(|kind| fail(&nodes, "", kind))?;
                }
                next
            }
            FDT_END_NODE => {
                if nodes.depth() == 0 {
                    return Err(fail(&nodes, "", ErrorKind::UnbalancedNodes { offset }));
                }
                nodes.pop();
                root_closed = nodes.depth() == 0;
                properties_allowed = false;
                if let Some(out) = out.as_deref_mut() {
                    out.put_u32(FDT_END_NODE).map_err(|kind| fail(&nodes, "", kind))?;
                }
                at + 4
            }
            FDT_PROP => {
                if nodes.depth() == 0 {
                    return Err(fail(&nodes, "", ErrorKind::PropertyOutsideNode { offset }));
                }
                let (Some(length), Some(name_offset)) = (be32(block, at + 4), be32(block, at + 8)) else {
                    return Err(fail(&nodes, "", ErrorKind::MissingEnd));
                };
                let name = property_name(blob.strings, name_offset).map_err(|kind| fail(&nodes, "", kind))?;
                if !properties_allowed {
                    return Err(fail(&nodes, name, ErrorKind::PropertyAfterChild { offset }));
                }
                let start = at + 12;
                let value = start.checked_add(length as usize).and_then(|end| block.get(start..end));
                let Some(value) = value else {
                    let kind =
                        ErrorKind::OutOfBounds { offset: start as u64, size: length.into(), limit: block.len() as u64 };
                    return Err(fail(&nodes, name, kind));
                };
                if let Some(out) = out.as_deref_mut() {
                    out.put_property(name_offset, value).map_err(|kind| fail(&nodes, name, kind))?;
                }
                align4(start + value.len()).unwrap_or(usize::MAX)
            }
            FDT_NOP => {
                if out.is_none() {
                    return Err(fail(&nodes, "", ErrorKind::NotNormalized { offset }));
                }
                at + 4
            }
            FDT_END => {
                if nodes.depth() != 0 {
                    return Err(fail(&nodes, "", ErrorKind::UnbalancedNodes { offset }));
                }
                if !root_closed {
                    return Err(at_path("/", ROOT_PSEUDO_PROPERTY, ErrorKind::MissingRoot));
                }
                if let Some(out) = out.as_deref_mut() {
                    out.put_u32(FDT_END).map_err(|kind| fail(&nodes, "", kind))?;
                }
                // Anything after FDT_END in the block is ignored (as libfdt
                // does) and not copied.
                return Ok(());
            }
            token => return Err(fail(&nodes, "", ErrorKind::BadToken { offset, token })),
        };
        // A name or value that ends in the block's last bytes may leave its
        // padding outside; the next token read then fails as MissingEnd.
        at = next;
    }
}

/// The NUL-terminated, printable name at `offset` in the strings block.
fn property_name(strings: &[u8], offset: u32) -> Result<&str, ErrorKind> {
    let strings_size = offset32(strings.len());
    let rest = strings.get(offset as usize..).filter(|rest| !rest.is_empty());
    let rest = rest.ok_or(ErrorKind::BadStringOffset { offset, strings_size })?;
    let length = rest.iter().position(|&byte| byte == 0).ok_or(ErrorKind::UnterminatedString)?;
    let name = rest.get(..length).unwrap_or_default();
    if !valid_name(name, false) {
        return Err(ErrorKind::BadName { offset });
    }
    core::str::from_utf8(name).map_err(|_| ErrorKind::BadName { offset })
}
