//! Descriptor chains, walked and checked before any byte is touched.
//!
//! A chain is read through the pool-only guest memory (so the descriptor
//! table, indirect tables included, can only come from the pool), and every
//! descriptor's (addr, len) is checked against the pool window with
//! overflow-safe arithmetic. Nothing assumes how a message is split into
//! descriptors: requests are gathered from the device-readable part and
//! responses scattered over the device-writable part.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::GuestMemory;

use crate::memory::PoolView;

/// One buffer of a chain, already known to lie inside the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// A descriptor chain, classified.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// Head descriptor index (what goes into the used ring).
    pub head: u16,
    /// Device-readable buffers inside the pool, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers inside the pool, in order.
    pub writable: Vec<Segment>,
    /// First device-readable descriptor outside the pool, if any.
    pub readable_outside: Option<(u64, u32)>,
    /// First device-writable descriptor outside the pool, if any.
    pub writable_outside: Option<(u64, u32)>,
    /// A device-readable descriptor followed a device-writable one (virtio
    /// requires readable descriptors first).
    pub misordered: bool,
}

impl Chain {
    /// Walks `chain`, checking every descriptor against the pool. Refused
    /// descriptors are logged with their address and remembered, never
    /// accessed.
    pub fn collect<M>(chain: DescriptorChain<M>, pool: &PoolView, queue: u16) -> Self
    where
        M: Deref,
        M::Target: GuestMemory,
    {
        let mut out = Chain { head: chain.head_index(), ..Chain::default() };
        for desc in chain {
            let addr = desc.addr().0;
            let len = desc.len();
            if len == 0 {
                continue;
            }
            let inside = pool.contains(addr, u64::from(len));
            if desc.is_write_only() {
                if inside {
                    out.writable.push(Segment { addr, len });
                } else if out.writable_outside.is_none() {
                    log::warn!(
                        "queue {queue}: refused device-writable descriptor {addr:#x}+{len:#x} outside pool {}",
                        pool.window()
                    );
                    out.writable_outside = Some((addr, len));
                }
            } else {
                if !out.writable.is_empty() || out.writable_outside.is_some() {
                    out.misordered = true;
                }
                if inside {
                    out.readable.push(Segment { addr, len });
                } else if out.readable_outside.is_none() {
                    log::warn!(
                        "queue {queue}: refused device-readable descriptor {addr:#x}+{len:#x} outside pool {}",
                        pool.window()
                    );
                    out.readable_outside = Some((addr, len));
                }
            }
        }
        out
    }

    /// Total device-readable bytes inside the pool.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Total device-writable bytes inside the pool.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Whether any descriptor was refused or out of order.
    pub fn is_defective(&self) -> bool {
        self.readable_outside.is_some() || self.writable_outside.is_some() || self.misordered
    }

    /// Reads up to `max` bytes from the start of the device-readable part.
    /// Returns fewer if the part is shorter or a read fails.
    pub fn gather(&self, pool: &PoolView, max: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(max.min(4096));
        for seg in &self.readable {
            let want = max.saturating_sub(out.len()).min(seg.len as usize);
            if want == 0 {
                break;
            }
            let start = out.len();
            out.resize(start + want, 0);
            if let Err(e) = pool.read(seg.addr, &mut out[start..]) {
                log::warn!("read of request failed: {e}");
                out.truncate(start);
                break;
            }
        }
        out
    }

    /// Writes `data` over the device-writable part from its start. Fails
    /// (having possibly written a prefix) if the part is too short.
    pub fn scatter(&self, pool: &PoolView, data: &[u8]) -> Result<(), ScatterError> {
        let mut rest = data;
        for seg in &self.writable {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(seg.len as usize);
            let (now, later) = rest.split_at(n);
            pool.write(seg.addr, now).map_err(|_| ScatterError)?;
            rest = later;
        }
        if rest.is_empty() { Ok(()) } else { Err(ScatterError) }
    }
}

/// The device-writable part of a chain could not take the whole answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScatterError;
