//! Where things live: the workspace, build outputs and the per-user cache.

use std::path::PathBuf;

/// The workspace root (the parent of xtask/).
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Build outputs of xtask itself: raw images, board trees.
pub fn out_dir() -> PathBuf {
    workspace().join("target").join("xtask")
}

/// The per-user cache that holds the QEMU build (`$XDG_CACHE_HOME/tidepool`
/// or `~/.cache/tidepool`), kept across clones of the repository.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TIDEPOOL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("tidepool")
}
