//! Helpers for tests (unit, end-to-end, and other crates' harnesses): guest
//! memory laid out like the QEMU deployment, backed by memfds as QEMU's
//! `memory-backend-memfd` NUMA nodes are.
//!
//! Built for the crate's own tests and with the `fakes` feature only, so
//! the daemon's API does not carry it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Guest-physical base of the NUMA node holding the DMA pools.
pub const POOL_NODE_BASE: u64 = 0x4800_0000;
/// Size of that node (four 4 MiB pools).
pub const POOL_NODE_SIZE: u64 = 16 << 20;
/// The pool the device is bound to in tests: the second of the four, so the
/// tests also show the neighbouring pools are out of reach.
pub const POOL_BASE: u64 = 0x4840_0000;
/// Size of one pool.
pub const POOL_SIZE: u64 = 4 << 20;
/// Guest-physical base of the NUMA node holding the hostmem regions.
pub const REGION_NODE_BASE: u64 = 0x4900_0000;
/// Size of that node.
pub const REGION_NODE_SIZE: u64 = 16 << 20;
/// Codec region in tests (sub-device 0).
pub const CODEC_BASE: u64 = 0x4900_0000;
/// Echo region in tests (sub-device 1).
pub const ECHO_BASE: u64 = 0x4980_0000;
/// Size of each test region.
pub const REGION_SIZE: u64 = 8 << 20;

/// Creates an anonymous shared-memory file of `size` bytes.
pub fn memfd(name: &str, size: u64) -> io::Result<File> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the
    // call; memfd_create has no other preconditions and returns a new fd or
    // -1.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing
    // else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)?;
    Ok(file)
}

/// The fd-backed part of the guest's memory as QEMU hands it to the
/// backend: the pool node and the region node (private RAM has no fd and
/// is never seen).
pub struct GuestLayout {
    /// The memory, mapped in this process.
    pub mem: GuestMemoryMmap<()>,
    /// The pool node's file.
    pub pool_file: Arc<File>,
    /// The region node's file.
    pub region_file: Arc<File>,
}

impl GuestLayout {
    /// Creates both nodes.
    pub fn new() -> io::Result<Self> {
        let pool_file = Arc::new(memfd("hostmem-test-pools", POOL_NODE_SIZE)?);
        let region_file = Arc::new(memfd("hostmem-test-regions", REGION_NODE_SIZE)?);
        let region = |file: &Arc<File>, base: u64, size: u64| -> io::Result<GuestRegionMmap<()>> {
            let mapping = MmapRegion::from_file(FileOffset::from_arc(file.clone(), 0), size as usize)
                .map_err(io::Error::other)?;
            GuestRegionMmap::new(mapping, GuestAddress(base)).ok_or_else(|| io::Error::other("region overflow"))
        };
        let mem = GuestMemoryMmap::from_regions(vec![
            region(&pool_file, POOL_NODE_BASE, POOL_NODE_SIZE)?,
            region(&region_file, REGION_NODE_BASE, REGION_NODE_SIZE)?,
        ])
        .map_err(io::Error::other)?;
        Ok(Self { mem, pool_file, region_file })
    }
}
