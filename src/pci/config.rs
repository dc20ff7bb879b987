//! Config space access: the [`ConfigSpace`] trait, bus/device/function
//! addresses, header offsets, and [`EcamConfig`] over a memory-mapped ECAM
//! or CAM window.
//!
//! The trait is the seam for other mechanisms (x86's CF8/CFC ports) and for
//! the unit tests' fake config space. Every access is one naturally aligned
//! load or store of at most 32 bits: hypervisors (Jailhouse, for one) kill
//! a guest that makes wider or split config accesses.

use core::fmt;
use core::ptr::NonNull;

use crate::arch::mmio as access;
use crate::platform::ConfigMechanism;

/// Header offsets (type 0 header, PCI 3.0 §6.1).
pub mod header {
    /// Vendor id (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device id (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command register (16 bits): see the `COMMAND_*` bits.
    pub const COMMAND: u16 = 0x04;
    /// Status register (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision id (byte 0) and class code (bytes 1..4).
    pub const REVISION_CLASS: u16 = 0x08;
    /// Header type (8 bits): see [`MULTI_FUNCTION`].
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First of the six BARs, 4 bytes apart.
    pub const BAR0: u16 = 0x10;
    /// Subsystem vendor id (16 bits), then subsystem id.
    pub const SUBSYSTEM: u16 = 0x2c;
    /// Capabilities pointer (8 bits), valid when [`STATUS_CAPABILITIES`] is set.
    pub const CAPABILITIES: u16 = 0x34;
    /// Interrupt pin (8 bits): 1..=4 for INTA..INTD, 0 for none.
    pub const INTERRUPT_PIN: u16 = 0x3d;

    /// COMMAND: I/O space decoding.
    pub const COMMAND_IO: u16 = 1 << 0;
    /// COMMAND: memory space decoding.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// COMMAND: bus mastering (the function may do DMA).
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// COMMAND: INTx disabled.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// STATUS: the capability list is present.
    pub const STATUS_CAPABILITIES: u16 = 1 << 4;
    /// HEADER_TYPE: multi-function device (bit 7), layout (bits 0..7).
    pub const MULTI_FUNCTION: u8 = 0x80;
}

/// A function's address: bus, device (0..32), function (0..8).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Bdf {
    bus: u8,
    device: u8,
    function: u8,
}

impl Bdf {
    /// `None` for a device above 31 or a function above 7.
    pub fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(Self { bus, device, function })
    }

    /// The bus number.
    pub fn bus(self) -> u8 {
        self.bus
    }

    /// The device number, 0..32.
    pub fn device(self) -> u8 {
        self.device
    }

    /// The function number, 0..8.
    pub fn function(self) -> u8 {
        self.function
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Access to the config space of the functions behind one host bridge.
///
/// Offsets must be naturally aligned and inside the function's config
/// space ([`Self::function_size`]); implementations must stay sound for
/// any input and read all ones / ignore writes otherwise (what a bus does
/// for an absent function).
pub trait ConfigSpace {
    /// Bytes of config space per function (256 for CAM, 4096 for ECAM).
    fn function_size(&self) -> u16;
    /// Whether `bdf` is addressable at all (inside the bridge's bus range).
    fn reaches(&self, bdf: Bdf) -> bool;
    /// One aligned 32-bit load (all ones where nothing answers).
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// One aligned 32-bit store (ignored where nothing answers).
    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32);
    /// One 16-bit store (the command register must not be written with its
    /// status neighbour, whose bits are write-one-to-clear).
    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16);

    /// 16 bits out of the aligned dword.
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        (self.read32(bdf, offset & !3) >> (8 * (offset & 2))) as u16
    }

    /// One byte out of the aligned dword.
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read32(bdf, offset & !3) >> (8 * (offset & 3))) as u8
    }
}

/// A memory-mapped ECAM or CAM window.
#[derive(Debug)]
pub struct EcamConfig {
    base: NonNull<u8>,
    mechanism: ConfigMechanism,
    bus_start: u8,
    bus_end: u8,
}

// SAFETY: the window is MMIO valid from any CPU and this value is its only
// user (constructor contract); it is not `Sync` (no shared `&self` reads
// across CPUs are needed).
unsafe impl Send for EcamConfig {}

impl EcamConfig {
    /// Wraps the config window of a bridge.
    ///
    /// # Safety
    ///
    /// `base` must point at a config window of `mechanism`, mapped as device
    /// memory, at least `(bus_end - bus_start + 1) << bus_shift` bytes long,
    /// and nothing else may access it while the value lives.
    pub unsafe fn new(base: NonNull<u8>, mechanism: ConfigMechanism, bus_start: u8, bus_end: u8) -> Self {
        Self { base, mechanism, bus_start, bus_end }
    }

    /// The address of `offset` in `bdf`'s config space, if an access of
    /// `width` bytes there is aligned and inside the window.
    fn address(&self, bdf: Bdf, offset: u16, width: u16) -> Option<*mut u8> {
        if !self.reaches(bdf) || !offset.is_multiple_of(width) || offset >= self.function_size() {
            return None;
        }
        let shift = self.mechanism.bus_shift();
        let bus = usize::from(bdf.bus - self.bus_start);
        let within = (usize::from(bdf.device) << (shift - 5)) | (usize::from(bdf.function) << (shift - 8));
        let offset = (bus << shift) | within | usize::from(offset);
        // Inside the window: the bus is in range, device/function/offset in
        // their fields. `wrapping_add` keeps provenance.
        Some(self.base.as_ptr().wrapping_add(offset))
    }
}

impl ConfigSpace for EcamConfig {
    fn function_size(&self) -> u16 {
        self.mechanism.function_size() as u16
    }

    fn reaches(&self, bdf: Bdf) -> bool {
        (self.bus_start..=self.bus_end).contains(&bdf.bus)
    }

    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self.address(bdf, offset, 4) {
            // SAFETY: `address` checked alignment and that the access is in
            // the window, which the constructor's contract makes valid MMIO.
            Some(ptr) => unsafe { access::read32(ptr) },
            None => u32::MAX,
        }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(ptr) = self.address(bdf, offset, 4) {
            // SAFETY: as in `read32`.
            unsafe { access::write32(ptr, value) }
        }
    }

    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16) {
        if let Some(ptr) = self.address(bdf, offset, 2) {
            // SAFETY: as in `read32`.
            unsafe { access::write16(ptr, value) }
        }
    }
}
