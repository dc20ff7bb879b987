//! Wire formats of the virtio-hostmem device, defined once.
//!
//! `docs/hostmem.md` is the specification; this crate is its executable form
//! and is used by both the no_std guest driver and the std vhost-user
//! backend, so the two cannot disagree about a byte. A test
//! (`tests/spec_drift.rs`) parses every `#### Layout:` table of the spec and
//! checks it against the structs here, so neither can change alone.
//!
//! All multi-byte fields are little-endian (`zerocopy::little_endian`), every
//! struct is `#[repr(C)]` with explicit reserved fields and alignment 1, so
//! there is no padding and parsing is a checked copy from bytes
//! ([`zerocopy::FromBytes`]). Nothing here panics on any input and nothing is
//! `unsafe`.
//!
//! # Example
//!
//! The driver encodes a config-queue request; the device reads it from the
//! bytes it was given and decodes it, which checks every field:
//!
//! ```
//! use hostmem_wire::zerocopy::IntoBytes;
//! use hostmem_wire::{ConfigRequest, Request, WireError};
//!
//! let request = Request::Create { subdevice_index: 0, completion_offset: Some(0) };
//! let wire = request.encode(); // a ConfigRequest: 32 bytes, little-endian
//! assert_eq!(wire.as_bytes().len(), 32);
//!
//! let received = ConfigRequest::read(wire.as_bytes())?;
//! assert_eq!(received.decode()?, request);
//!
//! // A short buffer is an error, never a panic.
//! assert!(ConfigRequest::read(&wire.as_bytes()[..8]).is_err());
//! # Ok::<(), WireError>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
mod codes;
mod config;
pub mod echo;
mod error;
mod message;
mod request;

pub use codes::{EventType, Opcode, Status};
pub use config::{Config, SubdeviceEntry, validate_entries};
pub use error::WireError;
pub use message::{CompletionWord, Event, Notification, check_completion_word, check_seq, completion_reached};
#[cfg(target_has_atomic = "64")]
pub use message::{load_completion, publish_completion};
pub use request::{ConfigRequest, ConfigResponse, Request};

// Re-exported so users name the same zerocopy the structs derive from.
pub use zerocopy;

/// Default virtio device id (docs/hostmem.md §3). The virtio spec assigns 21
/// to the Signal Distribution Module; deployments may choose another id, and
/// the driver then relies on [`MAGIC`] to recognise the device.
pub const DEVICE_ID_DEFAULT: u32 = 21;

/// First four config bytes, "HMEM" in memory order.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HMEM");

/// Config layout version implemented here.
pub const LAYOUT_VERSION: u16 = 1;

/// Vendor id of the example sub-devices in docs/hostmem.md appendices A
/// and B (codec, echo). Taken from the range 0xffff_0000..=0xffff_ffff,
/// which the spec sets aside for examples and tests; not registered.
pub const EXAMPLE_VENDOR_ID: u32 = 0xffff_0001;

/// Index of the config queue.
pub const CONFIG_QUEUE: u32 = 0;
/// Index of the event queue.
pub const EVENT_QUEUE: u32 = 1;
/// Index of the first notification queue; instance `i` uses `2 + i`.
pub const FIRST_NOTIFY_QUEUE: u32 = 2;

/// Upper bound of `max_instances`: QEMU's `VIRTIO_QUEUE_MAX` is 1024 and the
/// device needs `2 + max_instances` queues.
pub const MAX_INSTANCES_LIMIT: u32 = 1022;

/// Sub-device entries that fit in config space (docs/hostmem.md §6).
pub const CONFIG_MAX_ENTRIES: usize = 6;

/// Size of the device config space; the VMM's `config_size`.
pub const CONFIG_SIZE: usize = core::mem::size_of::<Config>();

/// Largest config space QEMU's generic vhost-user device accepts.
pub const QEMU_CONFIG_SIZE_LIMIT: usize = 256;

const _: () = assert!(CONFIG_SIZE <= QEMU_CONFIG_SIZE_LIMIT);

/// Region bases and lengths are multiples of this (the smallest aarch64
/// translation granule, so a driver can map a region with 4 KiB pages).
pub const REGION_ALIGN: u64 = 4096;

/// Largest shmid: PCI shared-memory capabilities carry it in a `u8`.
pub const SHMID_MAX: u32 = 255;

/// Size of the sub-device-specific metadata in notifications and events.
pub const METADATA_SIZE: usize = 32;

/// Alignment of a completion word within its region, so it can be accessed
/// as one naturally aligned 64-bit atomic.
pub const COMPLETION_WORD_ALIGN: u64 = 8;

/// Feature bit numbers (docs/hostmem.md §5).
pub mod feature {
    /// Device supports per-instance completion words in the region.
    pub const COMPLETION_WORD: u32 = 0;
    /// Device sends a COMPLETION event only when the notification asks for
    /// one ([`crate::Notification::F_EVENT`]).
    pub const EVENT_SUPPRESS: u32 = 1;
    /// Standard virtio 1.x feature; required.
    pub const VERSION_1: u32 = 32;
    /// Standard: the device accesses memory through the platform's DMA
    /// translation/restriction.
    pub const ACCESS_PLATFORM: u32 = 33;

    /// Device-specific bits this revision defines.
    pub const DEVICE_SPECIFIC_MASK: u64 = mask(COMPLETION_WORD) | mask(EVENT_SUPPRESS);

    /// The feature word with only `bit` set; 0 for bits above 63.
    pub const fn mask(bit: u32) -> u64 {
        match 1u64.checked_shl(bit) {
            Some(m) => m,
            None => 0,
        }
    }
}

/// Number of virtqueues of a device with `max_instances` instances:
/// config + event + one notification queue per instance (QEMU's `num_vqs`).
pub const fn queue_count(max_instances: u32) -> Result<u32, WireError> {
    if max_instances == 0 || max_instances > MAX_INSTANCES_LIMIT {
        return Err(WireError::InvalidMaxInstances(max_instances));
    }
    Ok(FIRST_NOTIFY_QUEUE + max_instances)
}

/// Notification queue of instance `instance_id`.
pub const fn notify_queue(instance_id: u32, max_instances: u32) -> Result<u32, WireError> {
    if instance_id >= max_instances || max_instances > MAX_INSTANCES_LIMIT {
        return Err(WireError::InstanceOutOfRange { instance_id, max_instances });
    }
    Ok(FIRST_NOTIFY_QUEUE + instance_id)
}

/// Instance served by virtqueue `queue`, or `None` for the config and event
/// queues and for queues past the last instance.
pub const fn instance_for_queue(queue: u32, max_instances: u32) -> Option<u32> {
    match queue.checked_sub(FIRST_NOTIFY_QUEUE) {
        Some(i) if i < max_instances => Some(i),
        _ => None,
    }
}

/// Checks that `[offset, offset + size)` lies within a region of
/// `region_len` bytes. `offset + size == region_len` is allowed; the sum is
/// computed without overflow. Both sides use this for every range named in a
/// message (docs/hostmem.md §13).
pub const fn check_range(region_len: u64, offset: u64, size: u64) -> Result<(), WireError> {
    match offset.checked_add(size) {
        None => Err(WireError::RangeOverflow { offset, size }),
        Some(end) if end > region_len => Err(WireError::OutOfRange { offset, size, region_len }),
        Some(_) => Ok(()),
    }
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte. Empty ranges
/// overlap nothing; ends are saturated so overflowing input cannot wrap.
pub const fn ranges_overlap(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}
