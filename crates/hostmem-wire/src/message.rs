//! Notification and event messages and the completion word
//! (docs/hostmem.md §9).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::short;
use crate::{COMPLETION_WORD_ALIGN, EventType, METADATA_SIZE, Status, WireError, check_range};

/// A notification: driver to device on the instance's notification queue
/// (layout: docs/hostmem.md §9.1, `Notification`).
///
/// A notification and the event that answers it, each read and checked by
/// the side that receives it:
///
/// ```
/// use hostmem_wire::zerocopy::IntoBytes;
/// use hostmem_wire::{Event, EventType, METADATA_SIZE, Notification, WireError, echo};
///
/// const REGION_LEN: u64 = 64 << 10;
///
/// // Driver: instance 0's first notification (seq 1), an echo copy of 5 bytes
/// // from offset 4096 to 8192, asking for a COMPLETION event.
/// let metadata = echo::CopyMeta::new(8192).to_metadata();
/// let sent = Notification::new(0, echo::Op::Copy.into(), Notification::F_EVENT, 1, 4096, 5, metadata);
///
/// // Device: the notification queue of instance 0, no seq accepted yet.
/// let received = Notification::read(sent.as_bytes())?;
/// received.check(0, 0, REGION_LEN)?;
/// assert!(received.check(0, 1, REGION_LEN).is_err(), "a seq is never accepted twice");
///
/// // Device: the answer. Driver: the used buffer (80 bytes) checked, 4 instances.
/// let answer = Event::completion(0, 1, 8192, 5, [0; METADATA_SIZE]);
/// let event = Event::read(answer.as_bytes(), answer.as_bytes().len())?;
/// assert_eq!(event.check(4, REGION_LEN)?, EventType::Completion);
/// # Ok::<(), WireError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Notification {
    /// The instance; equals the queue's instance.
    pub instance_id: U32,
    /// Sub-device-specific opcode.
    pub opcode: U32,
    /// `Notification::F_*` bits.
    pub flags: U32,
    /// Zero.
    pub reserved: U32,
    /// Per-instance sequence number, strictly increasing, never 0.
    pub seq: U64,
    /// Offset of the data within the sub-device's region.
    pub offset: U64,
    /// Size of the data.
    pub size: U64,
    /// Sub-device-specific.
    pub metadata: [u8; METADATA_SIZE],
}

const _: () = assert!(core::mem::size_of::<Notification>() == 72);

impl Notification {
    /// Ask for a COMPLETION event (only meaningful with
    /// [`crate::feature::EVENT_SUPPRESS`]; without it the device always
    /// sends one).
    pub const F_EVENT: u32 = 1 << 0;
    /// Flag bits this revision defines.
    pub const FLAGS_KNOWN: u32 = Self::F_EVENT;

    /// A notification with zero reserved bits.
    pub const fn new(
        instance_id: u32,
        opcode: u32,
        flags: u32,
        seq: u64,
        offset: u64,
        size: u64,
        metadata: [u8; METADATA_SIZE],
    ) -> Self {
        Self {
            instance_id: U32::new(instance_id),
            opcode: U32::new(opcode),
            flags: U32::new(flags),
            reserved: U32::new(0),
            seq: U64::new(seq),
            offset: U64::new(offset),
            size: U64::new(size),
            metadata,
        }
    }

    /// Reads the notification at the start of a device-readable buffer.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        Self::read_from_prefix(bytes).map(|(n, _)| n).map_err(|_| short::<Self>(bytes.len()))
    }

    /// Device-side checks that need no sub-device knowledge, in the order
    /// of docs/hostmem.md §9.5: the notification names `queue_instance`
    /// (the queue's instance) and has a `seq` above `last_seq`; then only
    /// known flags, zero reserved bits, and `offset`/`size` inside a region
    /// of `region_len` bytes. The sub-device then checks opcode and
    /// metadata.
    ///
    /// [`WireError::InstanceMismatch`] and [`WireError::BadSequence`] mean
    /// `seq` cannot be trusted (no completion word update); any later error
    /// means the notification is accepted and completes with an ERROR event.
    pub fn check(&self, queue_instance: u32, last_seq: u64, region_len: u64) -> Result<(), WireError> {
        let got = self.instance_id.get();
        if got != queue_instance {
            return Err(WireError::InstanceMismatch { expected: queue_instance, got });
        }
        check_seq(last_seq, self.seq.get())?;
        let unknown = self.flags.get() & !Self::FLAGS_KNOWN;
        if unknown != 0 {
            return Err(WireError::UnknownFlags { field: "Notification.flags", bits: unknown });
        }
        if self.reserved.get() != 0 {
            return Err(WireError::NonZeroField { field: "Notification.reserved" });
        }
        check_range(region_len, self.offset.get(), self.size.get())
    }

    /// Whether the driver asked for a COMPLETION event.
    pub fn wants_event(&self) -> bool {
        self.flags.get() & Self::F_EVENT != 0
    }

    /// `opcode` of a notification that may be cut short: the field if
    /// `bytes` holds all of it. The device needs it before it knows the
    /// whole notification arrived (to pick the chain rules, and for the
    /// ERROR event of a short chain); the offset comes from the struct.
    pub fn peek_opcode(bytes: &[u8]) -> Option<u32> {
        peek::<U32>(bytes, core::mem::offset_of!(Self, opcode)).map(U32::get)
    }

    /// `seq` of a notification that may be cut short (see
    /// [`Notification::peek_opcode`]): an ERROR event for a short chain
    /// carries it when the chain was long enough to contain it.
    pub fn peek_seq(bytes: &[u8]) -> Option<u64> {
        peek::<U64>(bytes, core::mem::offset_of!(Self, seq)).map(U64::get)
    }
}

/// The field of type `T` at `offset` in `bytes`, if `bytes` holds all of it.
pub(crate) fn peek<T: FromBytes>(bytes: &[u8], offset: usize) -> Option<T> {
    bytes.get(offset..).and_then(|rest| T::read_from_prefix(rest).ok()).map(|(value, _)| value)
}

/// Sequence rule of docs/hostmem.md §9.4: `seq` is non-zero and above the
/// previous accepted `seq` of the instance (`last`, 0 before the first).
pub const fn check_seq(last: u64, seq: u64) -> Result<(), WireError> {
    if seq == 0 || seq <= last { Err(WireError::BadSequence { last, got: seq }) } else { Ok(()) }
}

/// An event: device to driver on the event queue (layout: docs/hostmem.md
/// §9.2, `Event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Event {
    /// The instance the event concerns.
    pub instance_id: U32,
    /// An [`EventType`].
    pub event_type: U32,
    /// A [`Status`].
    pub status: U32,
    /// `Event::F_*` bits.
    pub flags: U32,
    /// `seq` of the notification this answers (INSTANCE_LOST: the last
    /// completed one, 0 if none).
    pub seq: U64,
    /// Result offset within the region (COMPLETION), else 0.
    pub offset: U64,
    /// Result size (COMPLETION), else 0.
    pub size: U64,
    /// Events dropped since the previous delivered event (saturating).
    pub dropped: U32,
    /// Zero.
    pub reserved: U32,
    /// Sub-device-specific.
    pub metadata: [u8; METADATA_SIZE],
}

const _: () = assert!(core::mem::size_of::<Event>() == 80);

impl Event {
    /// Events were dropped before this one; `dropped` says how many.
    pub const F_OVERFLOW: u32 = 1 << 0;
    /// Flag bits this revision defines.
    pub const FLAGS_KNOWN: u32 = Self::F_OVERFLOW;

    fn base(instance_id: u32, event_type: EventType, status: Status, seq: u64) -> Self {
        let mut ev = Self::new_zeroed();
        ev.instance_id = U32::new(instance_id);
        ev.event_type = U32::new(event_type.into());
        ev.status = U32::new(status.into());
        ev.seq = U64::new(seq);
        ev
    }

    /// A COMPLETION event answering notification `seq`.
    pub fn completion(instance_id: u32, seq: u64, offset: u64, size: u64, metadata: [u8; METADATA_SIZE]) -> Self {
        let mut ev = Self::base(instance_id, EventType::Completion, Status::Ok, seq);
        ev.offset = U64::new(offset);
        ev.size = U64::new(size);
        ev.metadata = metadata;
        ev
    }

    /// An ERROR event: notification `seq` failed with `status` (which should
    /// not be [`Status::Ok`]; [`Event::check`] rejects that).
    pub fn error(instance_id: u32, seq: u64, status: Status) -> Self {
        Self::base(instance_id, EventType::Error, status, seq)
    }

    /// An INSTANCE_LOST event: the device can no longer serve the instance
    /// (its id stays allocated until the driver's DESTROY); `last_seq`
    /// is the last completed notification.
    pub fn instance_lost(instance_id: u32, last_seq: u64, status: Status) -> Self {
        Self::base(instance_id, EventType::InstanceLost, status, last_seq)
    }

    /// The same event carrying a count of events dropped before it; sets
    /// [`Event::F_OVERFLOW`] exactly when `dropped != 0`.
    pub fn with_dropped(mut self, dropped: u32) -> Self {
        self.dropped = U32::new(dropped);
        let flags = self.flags.get() & !Self::F_OVERFLOW;
        let overflow = if dropped != 0 { Self::F_OVERFLOW } else { 0 };
        self.flags = U32::new(flags | overflow);
        self
    }

    /// Reads the event the device wrote; `used_len` is the length from the
    /// used ring, and anything short of a whole event is rejected.
    pub fn read(bytes: &[u8], used_len: usize) -> Result<Self, WireError> {
        let got = used_len.min(bytes.len());
        let valid = bytes.get(..got).unwrap_or(&[]);
        Self::read_from_prefix(valid).map(|(ev, _)| ev).map_err(|_| short::<Self>(got))
    }

    /// The event type, decoded.
    pub fn event_type(&self) -> Result<EventType, WireError> {
        EventType::try_from(self.event_type.get())
    }

    /// The status, decoded.
    pub fn status(&self) -> Result<Status, WireError> {
        Status::try_from(self.status.get())
    }

    /// Driver-side checks: known type, status and flags, instance below
    /// `max_instances`, overflow flag consistent with `dropped`, reserved
    /// zero, COMPLETION carries OK and the others do not, and a COMPLETION's
    /// result range lies in a region of `region_len` bytes. Returns the
    /// decoded type.
    pub fn check(&self, max_instances: u32, region_len: u64) -> Result<EventType, WireError> {
        let event_type = self.event_type()?;
        let status = self.status()?;
        let instance_id = self.instance_id.get();
        if instance_id >= max_instances {
            return Err(WireError::InstanceOutOfRange { instance_id, max_instances });
        }
        let flags = self.flags.get();
        let unknown = flags & !Self::FLAGS_KNOWN;
        if unknown != 0 {
            return Err(WireError::UnknownFlags { field: "Event.flags", bits: unknown });
        }
        if (flags & Self::F_OVERFLOW != 0) != (self.dropped.get() != 0) {
            return Err(WireError::Inconsistent { field: "Event.dropped" });
        }
        if self.reserved.get() != 0 {
            return Err(WireError::NonZeroField { field: "Event.reserved" });
        }
        let ok = status == Status::Ok;
        if (event_type == EventType::Completion) != ok {
            return Err(WireError::Inconsistent { field: "Event.status" });
        }
        if event_type == EventType::Completion {
            check_range(region_len, self.offset.get(), self.size.get())?;
        }
        Ok(event_type)
    }
}

/// The completion word in a region (layout: docs/hostmem.md §9.3,
/// `CompletionWord`): the `seq` of the instance's last completed
/// notification, 0 before the first.
///
/// ```
/// use core::sync::atomic::AtomicU64;
/// use hostmem_wire::{check_completion_word, completion_reached, load_completion, publish_completion};
///
/// // CREATE checks the word's place: 8-byte aligned, inside the region.
/// assert!(check_completion_word(4096, 0).is_ok());
/// assert!(check_completion_word(4096, 4).is_err());
///
/// let word = AtomicU64::new(0); // in the shared region, in real use
/// publish_completion(&word, 3); // device: notifications up to seq 3 are done
/// assert!(completion_reached(load_completion(&word), 2)); // driver
/// assert!(!completion_reached(load_completion(&word), 4));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CompletionWord {
    /// Last completed `seq`.
    pub seq: U64,
}

const _: () = assert!(core::mem::size_of::<CompletionWord>() == 8);

/// Checks a completion word offset: 8-byte aligned and the whole word inside
/// a region of `region_len` bytes.
pub const fn check_completion_word(region_len: u64, offset: u64) -> Result<(), WireError> {
    if !offset.is_multiple_of(COMPLETION_WORD_ALIGN) {
        return Err(WireError::Misaligned { field: "completion_offset", value: offset, align: COMPLETION_WORD_ALIGN });
    }
    check_range(region_len, offset, COMPLETION_WORD_ALIGN)
}

/// Whether a completion word value shows notification `seq` completed.
/// Sequence numbers only grow (64 bits do not wrap in practice), so this is
/// a plain comparison.
pub const fn completion_reached(word: u64, seq: u64) -> bool {
    word >= seq
}

/// Device side: publishes `seq` as completed. The release store orders
/// every earlier write to the region before the word (docs/hostmem.md
/// §10). The word is little-endian in memory on every host.
#[cfg(target_has_atomic = "64")]
pub fn publish_completion(word: &core::sync::atomic::AtomicU64, seq: u64) {
    word.store(seq.to_le(), core::sync::atomic::Ordering::Release);
}

/// Driver side: reads the completion word. The acquire load orders every
/// later read of the region after it (docs/hostmem.md §10).
#[cfg(target_has_atomic = "64")]
pub fn load_completion(word: &core::sync::atomic::AtomicU64) -> u64 {
    u64::from_le(word.load(core::sync::atomic::Ordering::Acquire))
}
