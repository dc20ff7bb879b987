//! The device tree as a platform source: validation, and discovery of the
//! [`Platform`] model (`crate::platform`) from it.
//!
//! The tree comes from the loader or hypervisor and is **untrusted input**:
//! every check returns a [`PlatformError`] whose [`Origin::Node`] names the
//! node path, with the property, and
//! nothing here panics, whatever the bytes. Nothing allocates either
//! (fixed-capacity collections; too many entries is an error, never a silent
//! truncation), because the runtime reads the tree before it has a heap.
//!
//! Two steps here, and the shared layout after them:
//!
//! 1. [`normalize`] validates the whole blob in one pass (header fields,
//!    block bounds and alignment, the memory reservation block, every struct
//!    token, names terminated inside their blocks, property name offsets,
//!    balanced nesting up to [`MAX_DEPTH`], exactly one root, properties
//!    before children, FDT_END) and writes a copy without FDT_NOP tokens.
//!    [`blob_total_size`] reads only the header, so a loader knows how many
//!    bytes to copy first.
//! 2. [`discover`] reads a [`Platform`] from the normalised copy.
//! 3. [`crate::platform::layout()`] places the DMA pools and computes the
//!    free RAM, from the model alone.
//!
//! # Why the `fdt` crate only walks a validated copy
//!
//! `fdt` 0.1.5 does not skip FDT_NOP tokens everywhere. QEMU leaves them
//! when booted with `-dtb` (it deletes `/memory` and `/psci` and adds new
//! ones): on that tree (`tests/data/dtb/qemu-virt-numa-pool-nop.dtb`)
//! `find_node` stops at the NOPs between root children and finds neither
//! `/chosen`, `/intc@8000000`, `/pl011@9000000` nor any virtio node, so
//! `chosen()` panics ("/chosen is required"); `children()` likewise stops at
//! a NOP between properties. The crate also trusts the blob:
//! `unwrap`/`expect`/`assert`/slice indexing on names, property lengths,
//! name offsets and tokens, helpers that `expect` nodes to exist
//! (`chosen()`, `memory()`, `root()`, `cpus()`) or property lengths to be
//! right (`cell_sizes()`, hence `reg()`), and `bootargs()`/`stdout()` index
//! `len - 1` of a possibly empty value. `find_node` falls back to
//! `/aliases` and resolves the alias with `find_node` again, so an alias
//! naming itself recurses until the stack overflows (checked: it does),
//! which no validation of the structure can rule out. Its `FDT_END` is 5
//! (the format says 9); its iterators happen to end anyway, on the token
//! they do not know.
//!
//! So the crate is used only on blobs that passed our validation, and only
//! for what is panic-free on them: `Fdt::new`, `all_nodes().next()` for the
//! root, `FdtNode::children()`, node names and `properties()` for raw bytes.
//! The validation guarantees what those paths assume: every token known and
//! in bounds, names NUL-terminated and printable ASCII (the crate `unwrap`s
//! their UTF-8), name offsets inside the strings block, properties before
//! children (the crate's child iteration otherwise stops early), nesting
//! below its 64-entry parent stack, no NOPs. Paths, phandles, `#address-cells`
//! and `#size-cells` of the right parent, `reg`, interrupts and strings are
//! all decoded here from raw bytes. The mutation test
//! (`tests/devicetree_mutation.rs`) runs every step on mutated real blobs and
//! counts panics; there are none.
//!
//! Limits, each an error rather than a silent cut: the `MAX_*` constants;
//! 3-cell GIC interrupt specifiers only; buses between a device and the
//! root must map addresses 1:1 (empty `ranges`). Nodes whose `status` is not
//! "okay" are ignored, as Linux does, and so are `/reserved-memory` children
//! without `reg` that are not pools (an OS would allocate them for drivers
//! this runtime does not have).
//!
//! Two kinds of failure: anything that decides which memory is free, or that
//! the runtime cannot do without (structure, RAM, reservations, GIC, PSCI,
//! timer, console, bootargs) fails [`discover`] as a whole; the problems of
//! one DMA pool or one virtio device are recorded on that entry, so the
//! runtime can leave it alone and carry on.

// A PlatformError is about 200 bytes: see crate::platform.
#![allow(clippy::result_large_err)]

mod blob;
mod error;
mod node;
mod pci;
mod platform;

#[cfg(test)]
mod tests;

pub use blob::{HEADER_SIZE, MAX_DEPTH, blob_total_size, normalize};
pub use platform::{MAX_PHANDLES, discover};

#[cfg(doc)]
use crate::platform::{Origin, Platform, PlatformError};
