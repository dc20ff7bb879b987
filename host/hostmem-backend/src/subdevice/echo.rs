//! Echo sub-device (docs/hostmem.md appendix B): COPY copies `size` bytes
//! from `offset` to `dest_offset` in the same region.

use hostmem_wire::echo::{CopyMeta, Op};
use hostmem_wire::{Notification, Status};

use super::{Completion, Outcome, Subdevice};
use crate::memory::RegionAccess;

/// The echo sub-device; stateless.
pub struct Echo;

impl Subdevice for Echo {
    fn id(&self) -> (u32, u32, u32) {
        (hostmem_wire::echo::VENDOR_ID, hostmem_wire::echo::DEVICE_ID, hostmem_wire::echo::REVISION)
    }

    fn create_instance(&mut self, _instance: u32) -> Result<(), Status> {
        Ok(())
    }

    fn handle(&mut self, instance: u32, n: &Notification, region: &RegionAccess<'_>) -> Outcome {
        if let Err(e) = Op::try_from(n.opcode.get()) {
            log::debug!("echo instance {instance}: {e}");
            return failed(Status::Unsupported);
        }
        let meta = CopyMeta::from_metadata(n.metadata);
        let (src, size) = (n.offset.get(), n.size.get());
        if let Err(e) = meta.check(region.len(), src, size) {
            log::debug!("echo instance {instance}: {e}");
            return failed(e.status());
        }
        let dest = meta.dest_offset.get();
        match region.copy_within(src, dest, size) {
            Ok(()) => Outcome::Done(Completion { offset: dest, size, metadata: [0; hostmem_wire::METADATA_SIZE] }),
            // The destination covers a live instance's completion word
            // (BAD_RANGE); nothing was copied.
            Err(e) => {
                log::debug!("echo instance {instance}: {e}");
                failed(e.status())
            }
        }
    }

    fn destroy_instance(&mut self, _instance: u32) {}
}

/// A failure without region effects; echo events carry zero metadata.
fn failed(status: Status) -> Outcome {
    Outcome::Failed { status, metadata: [0; hostmem_wire::METADATA_SIZE] }
}
