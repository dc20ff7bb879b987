//! How the tree names where an error is: a node path (or `/memreserve/`)
//! and a property, in [`PlatformError`]s with an [`Origin::Node`].

use core::fmt;

use crate::platform::{ErrorKind, NodePath, Origin, PlatformError, PropName};

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

/// The origin of node `path`; an empty path (a structure error before the
/// root or after it closed) names no node.
pub(crate) fn origin(path: NodePath) -> Origin {
    if path.is_empty() { Origin::Unnamed } else { Origin::Node(path) }
}

/// An error about `property` of the node at `path`.
pub(crate) fn at(path: NodePath, property: &str, kind: ErrorKind) -> PlatformError {
    PlatformError::new(origin(path), property, kind)
}

/// [`at`] for a path given as text.
pub(crate) fn at_path(path: &str, property: &str, kind: ErrorKind) -> PlatformError {
    at(NodePath::new(path), property, kind)
}
