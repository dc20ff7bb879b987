//! Sub-devices: the use cases behind the device (docs/hostmem.md §2.1).
//!
//! The device core does everything the spec requires of every sub-device
//! (queue, instance, `seq` and `offset`/`size` checks, events, completion
//! words). A [`Subdevice`] implementation only interprets opcode and
//! metadata and works on its own region through a [`RegionAccess`]; it is
//! never given anything else, so it cannot reach another sub-device's
//! region, nor write a completion word.

use std::path::Path;

use hostmem_wire::{METADATA_SIZE, Notification, Status};

use crate::memory::RegionAccess;
use crate::setup::SubdeviceKind;

pub mod codec;
pub mod dump;
pub mod echo;

/// Result of a successful notification: what the COMPLETION event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Offset of the result in the region.
    pub offset: u64,
    /// Size of the result.
    pub size: u64,
    /// Sub-device-specific event metadata.
    pub metadata: [u8; METADATA_SIZE],
}

/// What became of a notification the device core accepted for a
/// sub-device (docs/hostmem.md §9.5: once accepted, a notification
/// completes, successfully or not, and its `seq` is recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed successfully: COMPLETION event (if due), completion word.
    Done(Completion),
    /// Completed with a failure (unknown opcode, bad metadata, corrupt
    /// input...): ERROR event carrying `metadata`, completion word.
    Failed {
        /// Why.
        status: Status,
        /// Sub-device-specific event metadata.
        metadata: [u8; METADATA_SIZE],
    },
    /// The sub-device cannot serve this instance any more: INSTANCE_LOST.
    Lost(Status),
}

/// One sub-device implementation. One object serves all instances of its
/// sub-device; per-instance state, if any, is keyed by instance id.
pub trait Subdevice: Send {
    /// (vendor_id, device_id, revision) of the protocol it speaks.
    fn id(&self) -> (u32, u32, u32);

    /// Sets up instance `instance` (CREATE). An error becomes DEVICE_ERROR
    /// and nothing is created.
    fn create_instance(&mut self, instance: u32) -> Result<(), Status>;

    /// Handles one notification of `instance`. The core has already checked
    /// the instance, flags, `seq` and that (`offset`, `size`) lies in
    /// `region`; everything else (opcode, metadata, further ranges) is the
    /// sub-device's to check, before it touches the region. `region`
    /// refuses writes over live instances' completion words (BAD_RANGE).
    fn handle(&mut self, instance: u32, notification: &Notification, region: &RegionAccess<'_>) -> Outcome;

    /// Whether notifications with `opcode` carry their data in their own
    /// chain: device-readable bytes after the notification, and a
    /// device-writable part for the result (appendix A.3, DECODE_INLINE).
    /// The core then accepts device-writable buffers in such a chain and
    /// makes it used only after [`Self::handle_buffers`], with the number
    /// of bytes written.
    fn takes_buffers(&self, _opcode: u32) -> bool {
        false
    }

    /// Handles a notification whose chain carries its data
    /// ([`Self::takes_buffers`]), after the same core checks as
    /// [`Self::handle`]: `input` is the chain's device-readable bytes after
    /// the 72-byte notification, `capacity` the length of its
    /// device-writable part. Returns the outcome and the pieces to write,
    /// one after another, from the start of the device-writable part (the
    /// core refuses pieces longer than `capacity` in total).
    fn handle_buffers(
        &mut self,
        _instance: u32,
        _notification: &Notification,
        _input: &[u8],
        _capacity: u64,
    ) -> (Outcome, Vec<Vec<u8>>) {
        (Outcome::Failed { status: Status::Unsupported, metadata: [0; METADATA_SIZE] }, Vec::new())
    }

    /// Forgets instance `instance` (DESTROY, reset, INSTANCE_LOST).
    fn destroy_instance(&mut self, instance: u32);

    /// Metadata of an ERROR event for a notification with `opcode` (if it
    /// was long enough to have one) that failed with `status`, including
    /// the generic checks the core makes. Zero unless the protocol says
    /// otherwise.
    fn error_metadata(&self, _opcode: Option<u32>, _seq: u64, _status: Status) -> [u8; METADATA_SIZE] {
        [0; METADATA_SIZE]
    }
}

// The kind is part of the device description (`setup`); making the
// implementation object is this module's job.
impl SubdeviceKind {
    /// A fresh implementation object.
    pub fn instantiate(self, dump_frames: Option<&Path>, corrupt_frame: Option<u64>) -> Box<dyn Subdevice> {
        match self {
            Self::Codec => {
                Box::new(codec::Codec::new(dump_frames.map(Path::to_path_buf)).with_corrupt_frame(corrupt_frame))
            }
            Self::Echo => Box::new(echo::Echo),
        }
    }
}
