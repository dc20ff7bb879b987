//! Register access for the virtio-mmio transport: the [`Registers`] trait,
//! the register offsets, and [`MmioRegisters`], the implementation over a
//! real register window.

use core::ptr::NonNull;

/// Size of one virtio-mmio register window: 0x100 bytes of registers
/// followed by at most 0x100 bytes of device-specific config space (QEMU's
/// `virt` slots are 0x200 apart).
pub const WINDOW_SIZE: usize = 0x200;

/// Register offsets inside the window (virtio 1.2 §4.2.2, version 2 only).
pub mod reg {
    /// MagicValue (R): 0x74726976, "virt".
    pub const MAGIC_VALUE: usize = 0x000;
    /// Version (R): 2.
    pub const VERSION: usize = 0x004;
    /// DeviceID (R): the virtio device id, 0 for an empty slot.
    pub const DEVICE_ID: usize = 0x008;
    /// VendorID (R).
    pub const VENDOR_ID: usize = 0x00c;
    /// DeviceFeatures (R): the 32 feature bits DeviceFeaturesSel selects.
    pub const DEVICE_FEATURES: usize = 0x010;
    /// DeviceFeaturesSel (W).
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    /// DriverFeatures (W): the 32 feature bits DriverFeaturesSel selects.
    pub const DRIVER_FEATURES: usize = 0x020;
    /// DriverFeaturesSel (W).
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    /// QueueSel (W): the queue the QUEUE_* registers address.
    pub const QUEUE_SEL: usize = 0x030;
    /// QueueNumMax (R): the queue's largest size, 0 if it does not exist.
    pub const QUEUE_NUM_MAX: usize = 0x034;
    /// QueueNum (W): the queue size the driver uses.
    pub const QUEUE_NUM: usize = 0x038;
    /// QueueReady (RW).
    pub const QUEUE_READY: usize = 0x044;
    /// QueueNotify (W): the index of the queue to notify.
    pub const QUEUE_NOTIFY: usize = 0x050;
    /// InterruptStatus (R).
    pub const INTERRUPT_STATUS: usize = 0x060;
    /// InterruptACK (W).
    pub const INTERRUPT_ACK: usize = 0x064;
    /// Status (RW): the device status bits; 0 resets the device.
    pub const STATUS: usize = 0x070;
    /// QueueDescLow (W): descriptor area, low half.
    pub const QUEUE_DESC_LOW: usize = 0x080;
    /// QueueDescHigh (W): descriptor area, high half.
    pub const QUEUE_DESC_HIGH: usize = 0x084;
    /// QueueDriverLow (W): driver (available) area, low half.
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    /// QueueDriverHigh (W): driver area, high half.
    pub const QUEUE_DRIVER_HIGH: usize = 0x094;
    /// QueueDeviceLow (W): device (used) area, low half.
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    /// QueueDeviceHigh (W): device area, high half.
    pub const QUEUE_DEVICE_HIGH: usize = 0x0a4;
    /// SHMSel (W): the shared memory region the SHM_* registers describe.
    pub const SHM_SEL: usize = 0x0ac;
    /// SHMLenLow (R): the region's length, low half (all ones: no such region).
    pub const SHM_LEN_LOW: usize = 0x0b0;
    /// SHMLenHigh (R): length, high half.
    pub const SHM_LEN_HIGH: usize = 0x0b4;
    /// SHMBaseLow (R): the region's base, low half.
    pub const SHM_BASE_LOW: usize = 0x0b8;
    /// SHMBaseHigh (R): base, high half.
    pub const SHM_BASE_HIGH: usize = 0x0bc;
    /// ConfigGeneration (R): changes whenever the config space changes.
    pub const CONFIG_GENERATION: usize = 0x0fc;
    /// Start of the device-specific config space.
    pub const CONFIG: usize = 0x100;
}

/// Access to one virtio-mmio register window.
///
/// The transport only ever passes offsets below [`WINDOW_SIZE`] that are
/// naturally aligned for the access width, uses 32-bit accesses below
/// [`reg::CONFIG`] and 8/16/32-bit accesses in the config space (virtio 1.2
/// §4.2.2.2). Implementations must nevertheless stay sound for any offset;
/// [`MmioRegisters`] ignores accesses outside those rules.
///
/// Reads take `&self` because `virtio_drivers::transport::Transport` reads
/// the status and config space through `&self`.
pub trait Registers {
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: usize, value: u32);
    /// Reads 16 bits at `offset` (config space only).
    fn read16(&self, offset: usize) -> u16;
    /// Writes 16 bits at `offset` (config space only).
    fn write16(&mut self, offset: usize, value: u16);
    /// Reads the byte at `offset` (config space only).
    fn read8(&self, offset: usize) -> u8;
    /// Writes the byte at `offset` (config space only).
    fn write8(&mut self, offset: usize, value: u8);
}

/// A bounded window of device registers (a virtio-mmio window, or one
/// virtio structure inside a PCI BAR), accessed with single loads and
/// stores.
///
/// Every access is one load or store of the architecture's MMIO accessors
/// ([`crate::arch::mmio`]): a hypervisor emulates an MMIO access from the
/// instruction's syndrome, which only simple loads and stores give, and the
/// accessors order it against ring updates as Linux's `readl`/`writel` do.
#[derive(Debug)]
pub struct MmioSpan {
    base: NonNull<u8>,
    len: usize,
}

/// A virtio-mmio register window: a span of [`WINDOW_SIZE`] bytes.
pub type MmioRegisters = MmioSpan;

// SAFETY: a span is the only user of its bytes (constructor contract), and
// MMIO accesses are valid from any CPU, so moving it to another thread is
// fine. It is not `Sync`: `&self` reads from two CPUs at once could
// interleave a select-then-read sequence of another user.
unsafe impl Send for MmioSpan {}

impl MmioSpan {
    /// Wraps `len` bytes of device registers at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be mapped as device memory and belong to one
    /// device (structure) that nothing else accesses for as long as the
    /// returned value (or anything built from it) is alive.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }

    /// Wraps the virtio-mmio register window at `base`.
    ///
    /// # Safety
    ///
    /// As for [`Self::new`] with [`WINDOW_SIZE`] (0x200) bytes, 4-byte
    /// aligned.
    pub unsafe fn virtio_mmio_window(base: NonNull<u8>) -> Self {
        Self { base, len: WINDOW_SIZE }
    }

    /// The base address of the window.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// The address of `offset`, if an access of `width` bytes there stays in
    /// the window and is naturally aligned; `None` otherwise.
    fn address(&self, offset: usize, width: usize) -> Option<*mut u8> {
        let end = offset.checked_add(width)?;
        let address = (self.base.as_ptr() as usize).checked_add(offset)?;
        if end > self.len || !address.is_multiple_of(width) {
            return None;
        }
        // `wrapping_add` keeps provenance; the bounds were checked above.
        Some(self.base.as_ptr().wrapping_add(offset))
    }
}

use crate::arch::mmio as access;

/// Accesses outside the window or misaligned ones read as 0 and are not
/// written: the transport never issues them, and refusing them keeps this
/// safe API sound.
impl Registers for MmioSpan {
    fn read32(&self, offset: usize) -> u32 {
        match self.address(offset, 4) {
            // SAFETY: `address` checked that the access is inside the window
            // and aligned; the constructor's contract makes the window valid.
            Some(ptr) => unsafe { access::read32(ptr) },
            None => 0,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        if let Some(ptr) = self.address(offset, 4) {
            // SAFETY: as in `read32`.
            unsafe { access::write32(ptr, value) }
        }
    }

    fn read16(&self, offset: usize) -> u16 {
        match self.address(offset, 2) {
            // SAFETY: as in `read32`.
            Some(ptr) => unsafe { access::read16(ptr) },
            None => 0,
        }
    }

    fn write16(&mut self, offset: usize, value: u16) {
        if let Some(ptr) = self.address(offset, 2) {
            // SAFETY: as in `read32`.
            unsafe { access::write16(ptr, value) }
        }
    }

    fn read8(&self, offset: usize) -> u8 {
        match self.address(offset, 1) {
            // SAFETY: as in `read32`.
            Some(ptr) => unsafe { access::read8(ptr) },
            None => 0,
        }
    }

    fn write8(&mut self, offset: usize, value: u8) {
        if let Some(ptr) = self.address(offset, 1) {
            // SAFETY: as in `read32`.
            unsafe { access::write8(ptr, value) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the host, `MmioRegisters` over ordinary memory behaves like a
    /// plain register file and refuses out-of-window or misaligned accesses.
    #[test]
    fn mmio_registers_bounds_and_alignment() {
        let mut memory = [0u32; WINDOW_SIZE / 4];
        {
            let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: `memory` is a 4-aligned, 0x200-byte buffer, only
            // accessed through `regs` until the end of this block.
            let mut regs = unsafe { MmioRegisters::virtio_mmio_window(base) };
            regs.write32(reg::QUEUE_SEL, 0x1234_5678);
            assert_eq!(regs.read32(reg::QUEUE_SEL), 0x1234_5678);
            regs.write16(reg::CONFIG + 2, 0xbeef);
            regs.write8(reg::CONFIG + 1, 0x42);
            assert_eq!(regs.read32(reg::CONFIG), 0xbeef_4200);
            assert_eq!(regs.read8(reg::CONFIG + 3), 0xbe);
            // Outside the window or misaligned: ignored, reads 0.
            regs.write32(WINDOW_SIZE, 1);
            regs.write32(WINDOW_SIZE - 2, 1);
            regs.write32(usize::MAX - 1, 1);
            regs.write16(reg::CONFIG + 1, 0xffff);
            assert_eq!(regs.read32(WINDOW_SIZE), 0);
            assert_eq!(regs.read32(reg::QUEUE_SEL + 1), 0);
            assert_eq!(regs.read16(usize::MAX), 0);
            assert_eq!(regs.read32(reg::CONFIG), 0xbeef_4200);
        }
        assert_eq!(memory[reg::QUEUE_SEL / 4], 0x1234_5678);
    }
}
