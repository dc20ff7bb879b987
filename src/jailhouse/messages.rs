//! The cell's writes to its communication region: its state and its
//! answers to the hypervisor's messages. The hypervisor writes the page
//! concurrently, so every access is a single volatile 32-bit load or store.

use core::sync::atomic::{Ordering, fence};

use super::comm_region::{COMM_REGION_BYTES, offset};

/// `cell_state` values (Jailhouse's `JAILHOUSE_CELL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CellState {
    /// 0: running.
    Running = 0,
    /// 1: running, and the cell has locked the configuration (no cell can be
    /// created or destroyed meanwhile).
    RunningLocked = 1,
    /// 2: shut down (the cell ended normally).
    ShutDown = 2,
    /// 3: failed.
    Failed = 3,
    /// 4: failed, because the comm region's ABI revision is not the cell's.
    FailedCommRevision = 4,
}

/// A message from the hypervisor (`msg_to_cell`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// 1: the hypervisor asks the cell to shut down.
    ShutdownRequest,
    /// 2: a reconfiguration of the system has completed.
    ReconfigCompleted,
    /// A value the cell does not know.
    Unknown(u32),
}

/// The cell's answer (`reply_from_cell`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reply {
    /// 1: the message was not understood.
    Unknown = 1,
    /// 2: shutdown denied.
    Denied = 2,
    /// 3: shutdown approved.
    Approved = 3,
    /// 4: the message was received.
    Received = 4,
}

/// The region's page.
pub(super) struct Region {
    base: *mut u32,
}

// SAFETY: the page is shared with the hypervisor by design and only
// accessed with single volatile 32-bit loads and stores.
unsafe impl Send for Region {}
// SAFETY: as above; concurrent accesses from the image are word-sized and
// each is complete in itself.
unsafe impl Sync for Region {}

impl Region {
    /// # Safety
    ///
    /// `address` must be 4-byte aligned and the start of at least
    /// [`COMM_REGION_BYTES`] bytes of memory that stay mapped and that only
    /// the hypervisor and this `Region` write.
    #[cfg_attr(not(any(test, target_os = "none")), allow(dead_code))]
    pub(super) unsafe fn at(address: usize) -> Self {
        Self { base: address as *mut u32 }
    }

    fn read(&self, at: usize) -> u32 {
        // SAFETY: `at` is one of the region's word offsets, inside the
        // bytes `Region::at` was promised.
        unsafe { self.base.byte_add(at).read_volatile() }
    }

    fn write(&self, at: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.base.byte_add(at).write_volatile(value) }
    }

    /// The region's bytes, read word by word.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(super) fn snapshot(&self) -> [u8; COMM_REGION_BYTES] {
        let mut bytes = [0; COMM_REGION_BYTES];
        for (index, chunk) in bytes.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.read(index * 4).to_le_bytes());
        }
        bytes
    }

    pub(super) fn set_state(&self, state: CellState) {
        // Everything the image wrote before is visible before the state.
        fence(Ordering::SeqCst);
        self.write(offset::CELL_STATE, state as u32);
        fence(Ordering::SeqCst);
    }

    /// Answers the pending message, if any: `shutdown` decides on a
    /// shutdown request. Jailhouse's order: clear the message, barrier,
    /// then the reply.
    pub(super) fn poll(&self, shutdown: impl FnOnce() -> Reply) -> Option<(Message, Reply)> {
        let message = match self.read(offset::MSG_TO_CELL) {
            0 => return None,
            1 => Message::ShutdownRequest,
            2 => Message::ReconfigCompleted,
            other => Message::Unknown(other),
        };
        let reply = match message {
            Message::ShutdownRequest => shutdown(),
            Message::ReconfigCompleted => Reply::Received,
            Message::Unknown(_) => Reply::Unknown,
        };
        self.write(offset::MSG_TO_CELL, 0);
        fence(Ordering::Release);
        self.write(offset::REPLY_FROM_CELL, reply as u32);
        Some((message, reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page-sized fake region in host memory.
    fn page() -> std::boxed::Box<[u32; 1024]> {
        std::boxed::Box::new([0; 1024])
    }

    #[test]
    fn messages_are_answered_in_jailhouse_order_and_once() {
        let mut memory = page();
        // SAFETY: the box outlives the region and is written only through it.
        let region = unsafe { Region::at(memory.as_mut_ptr() as usize) };
        assert_eq!(region.poll(|| Reply::Approved), None);
        region.write(offset::MSG_TO_CELL, 1);
        assert_eq!(region.poll(|| Reply::Denied), Some((Message::ShutdownRequest, Reply::Denied)));
        assert_eq!((region.read(offset::MSG_TO_CELL), region.read(offset::REPLY_FROM_CELL)), (0, 2));
        assert_eq!(region.poll(|| Reply::Approved), None, "a message is answered once");
        region.write(offset::MSG_TO_CELL, 2);
        assert_eq!(region.poll(|| unreachable!()), Some((Message::ReconfigCompleted, Reply::Received)));
        assert_eq!(region.read(offset::REPLY_FROM_CELL), 4);
        region.write(offset::MSG_TO_CELL, 0xdead);
        assert_eq!(region.poll(|| unreachable!()), Some((Message::Unknown(0xdead), Reply::Unknown)));
        assert_eq!(region.read(offset::REPLY_FROM_CELL), 1);
        region.set_state(CellState::ShutDown);
        assert_eq!(region.read(offset::CELL_STATE), 2);
        let _ = region;
        assert_eq!(memory[offset::CELL_STATE / 4], 2);
    }
}
