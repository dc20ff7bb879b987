//! Our own virtio-mmio **version 2** transport, [`MmioV2Transport`].
//!
//! It implements `virtio_drivers::transport::Transport`, so the crate's
//! `VirtQueue`, `Hal` and stock drivers (`VirtIORng`, `VirtIOBlk`,
//! `VirtIOConsole`) run on it unchanged. We do not use the crate's
//! `MmioTransport` because it refuses device ids it has no name for and has
//! no shared-memory-region registers.
//!
//! # The device is untrusted
//!
//! Every value read from the device may be hostile. Nothing here panics,
//! overflows or loops without bound on device data: offsets are checked,
//! waits are capped at [`POLL_LIMIT`] reads and config retries at
//! [`CONFIG_READ_ATTEMPTS`], and failures are [`MmioError`]s.
//!
//! What this layer cannot check: virtio-drivers does **not** clamp the used
//! length returned by `VirtQueue::pop_used` (and `add_notify_wait_pop`) to
//! the size of the buffers that were handed over. Every driver built on
//! this transport must clamp that length before using it.
//!
//! # Feature negotiation and `VIRTIO_F_ACCESS_PLATFORM`
//!
//! A device bound to a restricted DMA pool must negotiate
//! `VIRTIO_F_ACCESS_PLATFORM` (bit 33): the device then only uses addresses
//! the driver gave it (the pool), not arbitrary guest memory. Stock drivers
//! negotiate with the trait's default `Transport::begin_init`, which keeps
//! only the bits of the device's offer that are in the driver's own
//! `SUPPORTED_FEATURES` and writes them with `write_driver_features`; none of
//! the stock drivers lists bit 33, so it would be dropped. This transport
//! therefore adds it back **in `write_driver_features`**: when it was
//! built `with_access_platform(true)` and the device offers bit 33, bit 33
//! goes into DriverFeatures whatever the caller passed (likewise
//! `VIRTIO_F_VERSION_1`, which a driver must accept when offered). The
//! driver is not told (its returned feature set is unchanged) and needs no
//! change: the pool Hal already does what ACCESS_PLATFORM asks for.
//!
//! The other steps of virtio 1.2 §3.1.1 that the default `begin_init`
//! skips happen in this transport's `set_status`: after a reset it waits
//! (bounded) for the status to read 0, and after FEATURES_OK is written it
//! reads the status back. When negotiation fails (FEATURES_OK does not
//! stick, no VERSION_1, reset never completes) the transport logs it, writes
//! FAILED, never writes DRIVER_OK, and reports every queue as size 0, so a
//! stock driver's `new` fails with `Error::InvalidParam` in `VirtQueue::new`
//! instead of driving a device that refused it. For a typed error and the
//! [`NegotiatedFeatures`] to log, call [`MmioV2Transport::negotiate`] first
//! (a stock driver's own `begin_init` then resets and renegotiates the same
//! way).
//!
//! # `device_type()` for ids virtio-drivers does not know
//!
//! See [`MmioV2Transport::device_type`]: [`MmioV2Transport::device_id`] is the
//! source of truth.

use virtio_drivers::PhysAddr;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(test)]
pub use super::mmio_fake::{FakeDevice, FakeQueue, FakeRegisters};
pub use super::mmio_regs::{MmioRegisters, Registers, WINDOW_SIZE, reg};
/// The shared error type; the name predates the PCI transport.
pub use super::transport::TransportError as MmioError;
pub use super::transport::{
    CONFIG_READ_ATTEMPTS, FEATURE_ACCESS_PLATFORM, FEATURE_VERSION_1, NegotiatedFeatures, POLL_LIMIT, WindowClaim,
};
use super::transport::{
    InitState, StatusRegisters, VirtioTransport, consistent, read_config_fields, write_config_fields,
};

/// MagicValue: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The largest config space a window can hold (0x100..0x200).
pub const MAX_CONFIG_SIZE: usize = WINDOW_SIZE - reg::CONFIG;
/// A virtio-mmio version 2 transport over the register window `R`.
///
/// Dropping it resets the device, like virtio-drivers' `MmioTransport`.
#[derive(Debug)]
pub struct MmioV2Transport<R: Registers> {
    regs: R,
    device_id: u32,
    vendor_id: u32,
    device_type: Option<DeviceType>,
    config_size: usize,
    /// Negotiation and initialisation state (rules shared with PCI).
    state: InitState,
    /// The window this transport holds, released after the reset in `drop`.
    claim: Option<WindowClaim>,
}

/// The status and feature registers of a window, for the shared rules in
/// [`InitState`].
struct Status<'r, R>(&'r mut R);

impl<R: Registers> StatusRegisters for Status<'_, R> {
    fn read_status(&self) -> u32 {
        self.0.read32(reg::STATUS)
    }

    fn write_status(&mut self, status: u32) {
        self.0.write32(reg::STATUS, status);
    }

    fn write_driver_features(&mut self, features: u64) {
        // Truncation intended: the low and high halves.
        self.0.write32(reg::DRIVER_FEATURES_SEL, 0);
        self.0.write32(reg::DRIVER_FEATURES, features as u32);
        self.0.write32(reg::DRIVER_FEATURES_SEL, 1);
        self.0.write32(reg::DRIVER_FEATURES, (features >> 32) as u32);
    }
}

impl<R: Registers> MmioV2Transport<R> {
    /// Checks the header and wraps the device.
    ///
    /// Accepts any non-zero device id. Errors: [`MmioError::BadMagic`],
    /// [`MmioError::EmptySlot`] (checked before the version, so an empty
    /// slot on a legacy-mode QEMU is skipped quietly too),
    /// [`MmioError::LegacyUnsupported`], [`MmioError::UnsupportedVersion`].
    /// Nothing is written to the device.
    ///
    /// The config space is assumed to be [`MAX_CONFIG_SIZE`] bytes; use
    /// [`Self::with_config_size`] when the real size is known.
    pub fn new(regs: R) -> Result<Self, MmioError> {
        let (device_id, vendor_id) = check_header(&regs)?;
        Ok(Self::from_checked(regs, device_id, vendor_id))
    }

    /// Like [`Self::new`], but also refuses ids virtio-drivers has no
    /// `DeviceType` for ([`MmioError::UnknownDeviceType`]), so that
    /// `device_type()` is always the device's real type. Use it when the
    /// transport goes to code that dispatches on `Transport::device_type`.
    pub fn new_known(regs: R) -> Result<Self, MmioError> {
        let (device_id, vendor_id) = check_header(&regs)?;
        if DeviceType::try_from(device_id).is_err() {
            return Err(MmioError::UnknownDeviceType(device_id));
        }
        Ok(Self::from_checked(regs, device_id, vendor_id))
    }

    fn from_checked(regs: R, device_id: u32, vendor_id: u32) -> Self {
        Self {
            regs,
            device_id,
            vendor_id,
            device_type: DeviceType::try_from(device_id).ok(),
            config_size: MAX_CONFIG_SIZE,
            state: InitState::new("virtio-mmio", device_id),
            claim: None,
        }
    }

    /// Ties the transport to the claim on its window: the window is given
    /// back only after the transport has reset the device.
    pub fn with_claim(mut self, claim: WindowClaim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// Sets the size of the device's config space (e.g. from the device
    /// tree or the device's specification); config accesses beyond it are
    /// refused. Capped at [`MAX_CONFIG_SIZE`].
    pub fn with_config_size(mut self, size: usize) -> Self {
        self.config_size = size.min(MAX_CONFIG_SIZE);
        self
    }

    /// Marks the device as bound to a restricted DMA pool (or not): when
    /// bound, ACCESS_PLATFORM is negotiated whenever the device offers it,
    /// including by stock drivers' `begin_init` (see the module docs).
    pub fn with_access_platform(mut self, bound_to_pool: bool) -> Self {
        self.state.access_platform = bound_to_pool;
        self
    }

    /// The raw DeviceID register: the source of truth for what the device is.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The raw VendorID register.
    pub fn vendor_id(&self) -> u32 {
        self.vendor_id
    }

    /// The virtio-drivers `DeviceType` for the id, if it has one.
    pub fn known_device_type(&self) -> Option<DeviceType> {
        self.device_type
    }

    /// The config space size accesses are checked against.
    pub fn config_size(&self) -> usize {
        self.config_size
    }

    /// Whether the device is marked as bound to a restricted DMA pool.
    pub fn access_platform(&self) -> bool {
        self.state.access_platform
    }

    /// The features written by the last negotiation since the last reset.
    pub fn negotiated_features(&self) -> Option<NegotiatedFeatures> {
        self.state.negotiated
    }

    /// Why initialisation failed since the last reset, if it did.
    pub fn init_error(&self) -> Option<MmioError> {
        self.state.init_error
    }

    /// The register window.
    pub fn registers(&self) -> &R {
        &self.regs
    }

    /// Resets the device and negotiates features (virtio 1.2 §3.1.1 steps
    /// 1 to 6), for drivers of our own; stock drivers negotiate in their
    /// `new` and get the same treatment (module docs).
    ///
    /// Accepted: `requested_device_features & offered`, plus VERSION_1, plus
    /// ACCESS_PLATFORM if `access_platform` (the device is bound to a
    /// restricted DMA pool) and the device offers it. A pool-bound device
    /// that does not offer ACCESS_PLATFORM is still negotiated; check
    /// [`NegotiatedFeatures::access_platform_missing`]. `access_platform`
    /// also becomes the transport's setting (see
    /// [`Self::with_access_platform`]).
    ///
    /// On success the device is at FEATURES_OK: set up queues, then call
    /// `Transport::finish_init`. On error it has been marked FAILED.
    pub fn negotiate(
        &mut self,
        requested_device_features: u64,
        access_platform: bool,
    ) -> Result<NegotiatedFeatures, MmioError> {
        self.state.negotiate(&mut Status(&mut self.regs), requested_device_features, access_platform, |status| {
            read_device_features(status.0)
        })
    }

    /// Reads shared memory region `id` (virtio 1.2 §4.2.2: SHMSel, SHMLen,
    /// SHMBase) as `(base, length)`.
    ///
    /// `Ok(None)` when the region does not exist: length all ones (what
    /// stock QEMU devices read) or 0 (nothing usable; hypervisors without
    /// these registers read 0). The range is only checked not to wrap; the
    /// caller decides whether it is acceptable memory.
    pub fn shared_memory_region(&mut self, id: u8) -> Result<Option<(u64, u64)>, MmioError> {
        self.regs.write32(reg::SHM_SEL, id.into());
        let len = self.read_pair(reg::SHM_LEN_LOW, reg::SHM_LEN_HIGH);
        if len == u64::MAX || len == 0 {
            return Ok(None);
        }
        let base = self.read_pair(reg::SHM_BASE_LOW, reg::SHM_BASE_HIGH);
        // The end (base + len, exclusive) must be representable.
        match base.checked_add(len) {
            Some(_) => Ok(Some((base, len))),
            None => Err(MmioError::SharedMemoryOverflow { id, base, len }),
        }
    }

    /// Reads a `T` from config space at `offset`, without a generation
    /// check (see [`Self::read_config_consistent`]).
    ///
    /// `offset` must be aligned to `T` (at most 4 bytes); the access width
    /// is that alignment capped at 32 bits, as virtio 1.2 §4.2.2.2 asks
    /// (8-bit fields bytewise, 16-bit fields 16 bits at a time, 32- and
    /// 64-bit fields 32 bits at a time). Values are little-endian.
    pub fn read_config<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, MmioError> {
        read_config_fields(offset, self.config_size, |width, at| {
            let at = reg::CONFIG + at;
            match width {
                4 => self.regs.read32(at),
                2 => self.regs.read16(at).into(),
                _ => self.regs.read8(at).into(),
            }
        })
    }

    /// Writes a `T` to config space at `offset`; rules as in
    /// [`Self::read_config`].
    pub fn write_config<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> Result<(), MmioError> {
        let regs = &mut self.regs;
        write_config_fields(offset, self.config_size, value, |width, at, word| {
            let at = reg::CONFIG + at;
            // `word` holds `width` bytes, so the narrowing casts keep all of it.
            match width {
                4 => regs.write32(at, word),
                2 => regs.write16(at, word as u16),
                _ => regs.write8(at, word as u8),
            }
        })
    }

    /// Reads a `T` from config space at `offset` so that no config change
    /// tears it: retried while ConfigGeneration changes across the read,
    /// at most [`CONFIG_READ_ATTEMPTS`] times, then
    /// [`MmioError::ConfigUnstable`].
    pub fn read_config_consistent<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, MmioError> {
        self.consistent(|transport| transport.read_config(offset))
    }

    /// Runs `read` (several config reads) until ConfigGeneration is the
    /// same before and after it, at most [`CONFIG_READ_ATTEMPTS`] times.
    /// An error from `read` is returned at once.
    pub fn consistent<T>(&self, mut read: impl FnMut(&Self) -> Result<T, MmioError>) -> Result<T, MmioError> {
        consistent(|| self.read_config_generation(), || read(self))
    }

    fn read_pair(&self, low: usize, high: usize) -> u64 {
        u64::from(self.regs.read32(low)) | (u64::from(self.regs.read32(high)) << 32)
    }

    fn write_pair(&mut self, low: usize, high: usize, value: u64) {
        // Truncation intended: the low and high halves.
        self.regs.write32(low, value as u32);
        self.regs.write32(high, (value >> 32) as u32);
    }

    fn status_bits(&self) -> u32 {
        self.regs.read32(reg::STATUS)
    }
}

/// Reads both halves of DeviceFeatures.
fn read_device_features<R: Registers>(regs: &mut R) -> u64 {
    regs.write32(reg::DEVICE_FEATURES_SEL, 0);
    let low = regs.read32(reg::DEVICE_FEATURES);
    regs.write32(reg::DEVICE_FEATURES_SEL, 1);
    let high = regs.read32(reg::DEVICE_FEATURES);
    u64::from(low) | (u64::from(high) << 32)
}

/// Checks MagicValue, DeviceID and Version (in that order, so an empty
/// slot is reported as such whatever its version) and returns the device
/// and vendor ids. Reads only.
fn check_header<R: Registers>(regs: &R) -> Result<(u32, u32), MmioError> {
    let magic = regs.read32(reg::MAGIC_VALUE);
    if magic != MAGIC {
        return Err(MmioError::BadMagic(magic));
    }
    let device_id = regs.read32(reg::DEVICE_ID);
    if device_id == 0 {
        return Err(MmioError::EmptySlot);
    }
    match regs.read32(reg::VERSION) {
        2 => Ok((device_id, regs.read32(reg::VENDOR_ID))),
        1 => Err(MmioError::LegacyUnsupported),
        version => Err(MmioError::UnsupportedVersion(version)),
    }
}

impl<R: Registers> Transport for MmioV2Transport<R> {
    /// The device's type as virtio-drivers names it.
    ///
    /// For an id virtio-drivers has no name for this returns
    /// `DeviceType::MemoryBallooning`, which `DeviceType::try_from` never
    /// produces (it maps id 5 to `MemoryBalloon`) and no stock driver is
    /// chosen by, so it cannot be mistaken for a real device type. The
    /// trait gives no way to say "unknown" and must not panic; the stock
    /// drivers and `VirtQueue` never call this, and our probing uses
    /// [`MmioV2Transport::device_id`]. Code that does dispatch on
    /// `device_type()` should take transports from
    /// [`MmioV2Transport::new_known`], which refuses such ids.
    fn device_type(&self) -> DeviceType {
        self.device_type.unwrap_or(DeviceType::MemoryBallooning)
    }

    fn read_device_features(&mut self) -> u64 {
        let offered = read_device_features(&mut self.regs);
        self.state.offered = Some(offered);
        offered
    }

    /// Writes `driver_features` restricted to the offer, plus VERSION_1 and
    /// (when bound to a pool) ACCESS_PLATFORM if offered: the hook through
    /// which stock drivers negotiate ACCESS_PLATFORM (module docs).
    fn write_driver_features(&mut self, driver_features: u64) {
        let offered = match self.state.offered {
            Some(offered) => offered,
            None => self.read_device_features(),
        };
        self.state.write_features(&mut Status(&mut self.regs), offered, driver_features);
    }

    /// Selects `queue` and reads QueueNumMax; 0 (no such queue) for every
    /// queue once initialisation has failed, so stock drivers stop there.
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        if self.state.init_error.is_some() {
            return 0;
        }
        self.regs.write32(reg::QUEUE_SEL, queue.into());
        self.regs.read32(reg::QUEUE_NUM_MAX)
    }

    fn notify(&mut self, queue: u16) {
        self.regs.write32(reg::QUEUE_NOTIFY, queue.into());
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.status_bits())
    }

    /// Writes the status, adding the checks of virtio 1.2 §2.4.2 and §3.1.1
    /// that the trait's default `begin_init` leaves out: 0 resets and waits
    /// for the reset; FEATURES_OK is read back; after a failed negotiation
    /// FEATURES_OK and DRIVER_OK are never written (FAILED is instead).
    fn set_status(&mut self, status: DeviceStatus) {
        self.state.set_status(&mut Status(&mut self.regs), status);
    }

    /// Version 2 has no guest page size register.
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.regs.write32(reg::QUEUE_SEL, queue.into());
        self.regs.write32(reg::QUEUE_NUM, size);
        self.write_pair(reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, descriptors);
        self.write_pair(reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, driver_area);
        self.write_pair(reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, device_area);
        self.regs.write32(reg::QUEUE_READY, 1);
    }

    /// Disables `queue` and waits (bounded) for QueueReady to read 0 (virtio
    /// 1.2 §4.2.2.2), after which the caller frees the rings. A device that
    /// never confirms is reset, the only other way to make it let go of the
    /// rings, and [`MmioError::QueueResetTimeout`] is recorded.
    fn queue_unset(&mut self, queue: u16) {
        self.regs.write32(reg::QUEUE_SEL, queue.into());
        self.regs.write32(reg::QUEUE_READY, 0);
        for _ in 0..POLL_LIMIT {
            if self.regs.read32(reg::QUEUE_READY) == 0 {
                self.regs.write32(reg::QUEUE_NUM, 0);
                self.write_pair(reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, 0);
                self.write_pair(reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, 0);
                self.write_pair(reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, 0);
                return;
            }
            core::hint::spin_loop();
        }
        let error = MmioError::QueueResetTimeout { queue };
        log::error!("virtio-mmio device {}: {error}", self.device_id);
        self.state.reset(&mut Status(&mut self.regs));
        self.state.init_error.get_or_insert(error);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.regs.write32(reg::QUEUE_SEL, queue.into());
        self.regs.read32(reg::QUEUE_READY) != 0
    }

    /// Reads InterruptStatus and acknowledges exactly what it read.
    fn ack_interrupt(&mut self) -> InterruptStatus {
        let pending = self.regs.read32(reg::INTERRUPT_STATUS);
        if pending != 0 {
            self.regs.write32(reg::INTERRUPT_ACK, pending);
        }
        InterruptStatus::from_bits_truncate(pending)
    }

    fn read_config_generation(&self) -> u32 {
        self.regs.read32(reg::CONFIG_GENERATION)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        Ok(self.read_config(offset)?)
    }

    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        Ok(self.write_config(offset, value)?)
    }

    /// The trait's default retries forever while the generation changes; a
    /// hostile device could hang us, so this gives up after
    /// [`CONFIG_READ_ATTEMPTS`] with `Error::IoError`.
    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        consistent(|| self.read_config_generation(), f).inspect_err(|_| {
            log::error!("virtio-mmio device {}: config generation never settled", self.device_id);
        })
    }
}

impl<R: Registers> VirtioTransport for MmioV2Transport<R> {
    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn config_size(&self) -> usize {
        self.config_size
    }

    fn limit_config_size(&mut self, size: usize) {
        self.config_size = size.min(MAX_CONFIG_SIZE);
    }

    fn negotiate(&mut self, requested: u64, access_platform: bool) -> Result<NegotiatedFeatures, MmioError> {
        MmioV2Transport::negotiate(self, requested, access_platform)
    }

    fn init_error(&self) -> Option<MmioError> {
        self.state.init_error
    }

    fn shared_memory_region(&mut self, id: u8) -> Result<Option<(u64, u64)>, MmioError> {
        MmioV2Transport::shared_memory_region(self, id)
    }

    fn read_config_u32(&self, offset: usize) -> Result<u32, MmioError> {
        self.read_config(offset)
    }
}

impl<R: Registers> Drop for MmioV2Transport<R> {
    /// Resets the device so it stops using memory that is about to be
    /// freed (no wait: nothing can be done about a device that ignores it).
    fn drop(&mut self) {
        self.regs.write32(reg::STATUS, 0);
    }
}

#[cfg(test)]
mod tests {

    use virtio_drivers::Error as VirtioError;
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::device::common::Feature;
    use virtio_drivers::device::rng::VirtIORng;

    use super::super::host_hal::HostHal;
    use super::*;

    const ACK: u32 = 1;
    const DRIVER: u32 = 2;
    const DRIVER_OK: u32 = 4;
    const FEATURES_OK: u32 = 8;
    const FAILED: u32 = 128;
    const EVENT_IDX: u64 = 1 << 29;
    const INDIRECT_DESC: u64 = 1 << 28;

    fn transport(fake: &FakeRegisters) -> MmioV2Transport<FakeRegisters> {
        MmioV2Transport::new(fake.clone()).unwrap()
    }

    // --- construction ---

    #[test]
    fn new_accepts_version_2_and_reads_ids() {
        let fake = FakeRegisters::new(4);
        let t = transport(&fake);
        assert_eq!(t.device_id(), 4);
        assert_eq!(t.vendor_id(), 0x554d_4551);
        assert_eq!(t.device_type(), DeviceType::EntropySource);
        assert_eq!(t.known_device_type(), Some(DeviceType::EntropySource));
        assert_eq!(t.config_size(), MAX_CONFIG_SIZE);
        assert!(fake.device().writes.is_empty(), "construction must not write");
    }

    #[test]
    fn new_rejects_bad_magic() {
        let fake = FakeRegisters::new(4);
        fake.device().magic = 0x1234_5678;
        assert_eq!(MmioV2Transport::new(fake.clone()).unwrap_err(), MmioError::BadMagic(0x1234_5678));
        assert_eq!(MmioV2Transport::new_known(fake).unwrap_err(), MmioError::BadMagic(0x1234_5678));
    }

    #[test]
    fn new_rejects_legacy_and_other_versions() {
        let fake = FakeRegisters::new(4);
        fake.device().version = 1;
        assert_eq!(MmioV2Transport::new(fake.clone()).unwrap_err(), MmioError::LegacyUnsupported);
        for version in [0, 3, u32::MAX] {
            fake.device().version = version;
            assert_eq!(MmioV2Transport::new(fake.clone()).unwrap_err(), MmioError::UnsupportedVersion(version));
        }
        assert!(fake.device().writes.is_empty());
    }

    #[test]
    fn new_reports_empty_slot_before_version() {
        let fake = FakeRegisters::new(0);
        assert_eq!(MmioV2Transport::new(fake.clone()).unwrap_err(), MmioError::EmptySlot);
        // QEMU's legacy mode: an empty slot is version 1 with id 0.
        fake.device().version = 1;
        assert_eq!(MmioV2Transport::new(fake.clone()).unwrap_err(), MmioError::EmptySlot);
        assert_eq!(MmioV2Transport::new_known(fake.clone()).unwrap_err(), MmioError::EmptySlot);
        assert!(fake.device().writes.is_empty(), "a refused device must not be touched");
    }

    #[test]
    fn new_accepts_any_device_id() {
        for id in [21, 40, 42, u32::MAX] {
            let fake = FakeRegisters::new(id);
            let t = transport(&fake);
            assert_eq!(t.device_id(), id);
        }
        let t = transport(&FakeRegisters::new(21));
        assert_eq!(t.device_type(), DeviceType::SignalDistributionModule);
        let t = transport(&FakeRegisters::new(40));
        assert_eq!(t.known_device_type(), None);
        // The documented stand-in, which `try_from` never produces.
        assert_eq!(t.device_type(), DeviceType::MemoryBallooning);
        assert!((0..=u32::from(u8::MAX)).all(|id| DeviceType::try_from(id) != Ok(DeviceType::MemoryBallooning)));
    }

    #[test]
    fn new_known_refuses_unknown_ids_untouched() {
        let fake = FakeRegisters::new(40);
        assert_eq!(MmioV2Transport::new_known(fake.clone()).unwrap_err(), MmioError::UnknownDeviceType(40));
        assert!(fake.device().writes.is_empty());
        let t = MmioV2Transport::new_known(FakeRegisters::new(21)).unwrap();
        assert_eq!(t.device_type(), DeviceType::SignalDistributionModule);
    }

    #[test]
    fn errors_display_what_was_wrong() {
        let text = MmioError::SharedMemoryOverflow { id: 3, base: u64::MAX, len: 2 }.to_string();
        assert!(text.contains("region 3") && text.contains("overflows"), "{text}");
        assert!(MmioError::LegacyUnsupported.to_string().contains("force-legacy=false"));
        assert!(MmioError::BadMagic(7).to_string().contains("0x00000007"));
    }

    // --- feature negotiation ---

    #[test]
    fn negotiate_accepts_offered_subset_and_version_1() {
        let fake = FakeRegisters::new(21);
        fake.device().device_features = FEATURE_VERSION_1 | EVENT_IDX | 1;
        let mut t = transport(&fake);
        let n = t.negotiate(EVENT_IDX | INDIRECT_DESC, false).unwrap();
        assert_eq!(n.offered, FEATURE_VERSION_1 | EVENT_IDX | 1);
        assert_eq!(n.accepted, FEATURE_VERSION_1 | EVENT_IDX);
        assert!(!n.access_platform() && !n.access_platform_missing());
        let d = fake.device();
        assert_eq!(d.driver_features, FEATURE_VERSION_1 | EVENT_IDX);
        assert_eq!(d.status_writes, [0, ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK]);
        assert_eq!(d.status, ACK | DRIVER | FEATURES_OK);
        drop(d);
        assert_eq!(t.negotiated_features(), Some(n));
        assert_eq!(t.init_error(), None);
    }

    #[test]
    fn negotiate_access_platform_when_bound_and_offered() {
        let fake = FakeRegisters::new(21);
        fake.device().device_features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM;
        let mut t = transport(&fake);
        let n = t.negotiate(0, true).unwrap();
        assert!(n.access_platform() && !n.access_platform_missing());
        assert_eq!(fake.device().driver_features, FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM);
        assert!(t.access_platform());
    }

    #[test]
    fn negotiate_no_access_platform_when_not_bound() {
        let fake = FakeRegisters::new(21);
        fake.device().device_features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM;
        let mut t = transport(&fake);
        let n = t.negotiate(0, false).unwrap();
        assert!(!n.access_platform() && !n.access_platform_missing());
        assert_eq!(fake.device().driver_features, FEATURE_VERSION_1);
    }

    #[test]
    fn negotiate_bound_but_not_offered_is_reported_not_fatal() {
        let fake = FakeRegisters::new(21);
        fake.device().device_features = FEATURE_VERSION_1 | EVENT_IDX;
        let mut t = transport(&fake);
        let n = t.negotiate(EVENT_IDX, true).unwrap();
        assert!(n.access_platform_missing());
        assert_eq!(n.accepted, FEATURE_VERSION_1 | EVENT_IDX);
        assert_eq!(fake.device().status, ACK | DRIVER | FEATURES_OK);
    }

    #[test]
    fn negotiate_requires_version_1() {
        let fake = FakeRegisters::new(21);
        fake.device().device_features = EVENT_IDX;
        let mut t = transport(&fake);
        assert_eq!(t.negotiate(EVENT_IDX, false).unwrap_err(), MmioError::Version1NotOffered { offered: EVENT_IDX });
        let d = fake.device();
        assert!(d.status_writes.iter().all(|s| s & FEATURES_OK == 0), "{:?}", d.status_writes);
        assert_eq!(d.status, ACK | DRIVER | FAILED);
        assert!(!d.writes.iter().any(|&(o, _)| o == reg::DRIVER_FEATURES));
    }

    #[test]
    fn negotiate_detects_features_ok_not_sticking() {
        let fake = FakeRegisters::new(21);
        fake.device().features_ok_sticks = false;
        let mut t = transport(&fake);
        assert_eq!(t.negotiate(0, false).unwrap_err(), MmioError::FeaturesNotAccepted { status: ACK | DRIVER });
        assert_eq!(fake.device().status, ACK | DRIVER | FAILED);
        // No queues on a refused device; DRIVER_OK is never written.
        assert_eq!(t.max_queue_size(0), 0);
        t.finish_init();
        assert!(fake.device().status_writes.iter().all(|s| s & DRIVER_OK == 0));
        assert_eq!(t.init_error(), Some(MmioError::FeaturesNotAccepted { status: ACK | DRIVER }));
        // A reset clears the failure; a device that now cooperates is fine.
        fake.device().features_ok_sticks = true;
        t.negotiate(0, false).unwrap();
        assert_eq!(t.max_queue_size(0), 64);
    }

    #[test]
    fn negotiate_bounds_the_reset_wait() {
        let fake = FakeRegisters::new(21);
        fake.device().status = ACK;
        fake.device().reset_completes = false;
        let mut t = transport(&fake);
        assert_eq!(t.negotiate(0, false).unwrap_err(), MmioError::ResetTimeout { status: ACK });
    }

    #[test]
    fn begin_init_negotiates_access_platform_for_stock_feature_types() {
        let fake = FakeRegisters::new(4);
        fake.device().device_features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | EVENT_IDX;
        let mut t = transport(&fake).with_access_platform(true);
        // What VirtIORng passes: no ACCESS_PLATFORM in it.
        let supported = Feature::RING_INDIRECT_DESC | Feature::RING_EVENT_IDX | Feature::VERSION_1;
        let negotiated = t.begin_init(supported);
        assert_eq!(negotiated, Feature::RING_EVENT_IDX | Feature::VERSION_1);
        assert_eq!(fake.device().driver_features, FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | EVENT_IDX);
        assert_eq!(fake.device().status, ACK | DRIVER | FEATURES_OK);
        assert!(t.negotiated_features().unwrap().access_platform());
        t.finish_init();
        assert_eq!(fake.device().status, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    }

    #[test]
    fn begin_init_without_pool_leaves_access_platform_out() {
        let fake = FakeRegisters::new(4);
        fake.device().device_features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM;
        let mut t = transport(&fake);
        t.begin_init(Feature::VERSION_1);
        assert_eq!(fake.device().driver_features, FEATURE_VERSION_1);
    }

    #[test]
    fn begin_init_refused_features_never_reach_driver_ok() {
        let fake = FakeRegisters::new(4);
        fake.device().features_ok_sticks = false;
        let mut t = transport(&fake);
        t.begin_init(Feature::VERSION_1);
        t.finish_init();
        let d = fake.device();
        assert_eq!(d.status, ACK | DRIVER | FAILED);
        assert!(d.status_writes.iter().all(|s| s & DRIVER_OK == 0), "{:?}", d.status_writes);
        drop(d);
        assert!(matches!(t.init_error(), Some(MmioError::FeaturesNotAccepted { .. })));
    }

    // --- status ---

    #[test]
    fn status_round_trips_and_drop_resets() {
        let fake = FakeRegisters::new(4);
        let mut t = transport(&fake);
        t.set_status(DeviceStatus::ACKNOWLEDGE);
        assert_eq!(t.get_status(), DeviceStatus::ACKNOWLEDGE);
        fake.device().status = 0x8000_0001;
        assert_eq!(t.get_status().bits(), 0x8000_0001);
        drop(t);
        assert_eq!(fake.device().writes.last(), Some(&(reg::STATUS, 0)));
    }

    // --- config space ---

    #[test]
    fn config_reads_use_field_widths() {
        let fake = FakeRegisters::new(2);
        fake.set_config(0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let t = transport(&fake);
        assert_eq!(t.read_config::<u8>(1).unwrap(), 2);
        assert_eq!(t.read_config::<u16>(2).unwrap(), 0x0403);
        assert_eq!(t.read_config::<u32>(4).unwrap(), 0x0807_0605);
        assert_eq!(fake.device().config_reads, 3);
        assert_eq!(t.read_config::<u64>(0).unwrap(), 0x0807_0605_0403_0201);
        assert_eq!(fake.device().config_reads, 5, "u64 is two 32-bit reads");
        assert_eq!(t.read_config::<[u8; 6]>(1).unwrap(), [2, 3, 4, 5, 6, 7]);
        assert_eq!(fake.device().config_reads, 11, "bytes are read bytewise");
        assert_eq!(t.read_config_space::<u32>(4).unwrap(), 0x0807_0605);
    }

    #[test]
    fn config_writes_land_in_config_space() {
        let fake = FakeRegisters::new(2);
        let mut t = transport(&fake).with_config_size(12);
        t.write_config(4, 0xaabb_ccddu32).unwrap();
        t.write_config(9, 0x11u8).unwrap();
        t.write_config_space(10, 0x2233u16).unwrap();
        assert_eq!(fake.device().config[..12], [0, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa, 0, 0x11, 0x33, 0x22]);
        assert_eq!(
            t.write_config(12, 0u8).unwrap_err(),
            MmioError::ConfigOutOfBounds { offset: 12, size: 1, config_size: 12 }
        );
        assert_eq!(t.write_config_space(10, 0u32), Err(VirtioError::InvalidParam));
    }

    #[test]
    fn config_access_is_bounds_and_alignment_checked() {
        let fake = FakeRegisters::new(2);
        let t = transport(&fake).with_config_size(8);
        assert!(t.read_config::<u32>(4).is_ok());
        assert_eq!(
            t.read_config::<u32>(8).unwrap_err(),
            MmioError::ConfigOutOfBounds { offset: 8, size: 4, config_size: 8 }
        );
        assert_eq!(
            t.read_config::<u64>(4).unwrap_err(),
            MmioError::ConfigOutOfBounds { offset: 4, size: 8, config_size: 8 }
        );
        assert!(matches!(t.read_config::<u8>(usize::MAX), Err(MmioError::ConfigOutOfBounds { .. })));
        assert!(matches!(t.read_config::<u32>(usize::MAX - 3), Err(MmioError::ConfigOutOfBounds { .. })));
        assert_eq!(t.read_config::<u32>(2).unwrap_err(), MmioError::ConfigMisaligned { offset: 2, align: 4 });
        assert_eq!(t.read_config::<u64>(2).unwrap_err(), MmioError::ConfigMisaligned { offset: 2, align: 4 });
        assert_eq!(t.read_config_space::<u32>(8), Err(VirtioError::ConfigSpaceTooSmall));
        assert_eq!(t.read_config_space::<u16>(1), Err(VirtioError::InvalidParam));
        let t = transport(&fake).with_config_size(0);
        assert_eq!(t.read_config_space::<u8>(0), Err(VirtioError::ConfigSpaceMissing));
        let t = transport(&fake).with_config_size(0x1000);
        assert_eq!(t.config_size(), MAX_CONFIG_SIZE);
        assert!(t.read_config::<u32>(MAX_CONFIG_SIZE - 4).is_ok());
        assert!(t.read_config::<u32>(MAX_CONFIG_SIZE).is_err());
    }

    #[test]
    fn config_generation_change_is_retried() {
        let fake = FakeRegisters::new(2);
        fake.set_config(0, &0x1111_1111_2222_2222u64.to_le_bytes());
        // The device rewrites the value right after the first half was read.
        fake.change_config_during_read(0, &0x3333_3333_4444_4444u64.to_le_bytes());
        let t = transport(&fake);
        assert_eq!(t.read_config_consistent::<u64>(0).unwrap(), 0x3333_3333_4444_4444);
        assert_eq!(fake.device().config_reads, 4, "one torn attempt, one clean one");
        assert_eq!(t.read_config_generation(), 1);
    }

    #[test]
    fn config_generation_that_never_settles_is_an_error() {
        let fake = FakeRegisters::new(2);
        fake.device().generation_churn = true;
        let t = transport(&fake);
        assert_eq!(
            t.read_config_consistent::<u32>(0).unwrap_err(),
            MmioError::ConfigUnstable { attempts: CONFIG_READ_ATTEMPTS }
        );
        assert_eq!(fake.device().config_reads, CONFIG_READ_ATTEMPTS as usize);
        // The trait's read_consistent is bounded too.
        assert_eq!(t.read_consistent(|| t.read_config_space::<u32>(0)), Err(VirtioError::IoError));
        // An access error is returned at once, not retried.
        assert!(matches!(t.read_config_consistent::<u32>(0x1000), Err(MmioError::ConfigOutOfBounds { .. })));
    }

    #[test]
    fn trait_read_consistent_retries_once() {
        let fake = FakeRegisters::new(2);
        fake.set_config(0, &[1, 0, 0, 0, 2, 0, 0, 0]);
        fake.change_config_during_read(4, &[9, 0, 0, 0]);
        let t = transport(&fake);
        let pair = t.read_consistent(|| Ok((t.read_config_space::<u32>(0)?, t.read_config_space::<u32>(4)?)));
        assert_eq!(pair, Ok((1, 9)));
        fake.bump_generation();
        assert_eq!(t.read_config_generation(), 2);
    }

    // --- shared memory regions ---

    #[test]
    fn shared_memory_region_absent() {
        let fake = FakeRegisters::new(21);
        let mut t = transport(&fake);
        assert_eq!(t.shared_memory_region(0), Ok(None));
        fake.device().shm_regions.push((1, 0x5000_0000, 0));
        assert_eq!(t.shared_memory_region(1), Ok(None), "zero length is no region");
    }

    #[test]
    fn shared_memory_region_present() {
        let fake = FakeRegisters::new(21);
        fake.device().shm_regions.push((0, 0x1_0000_0000, 0x1000));
        fake.device().shm_regions.push((7, 0x48_0000_0000, 0x2_0000_0000));
        let mut t = transport(&fake);
        assert_eq!(t.shared_memory_region(7), Ok(Some((0x48_0000_0000, 0x2_0000_0000))));
        assert_eq!(fake.device().shm_sel, 7);
        assert_eq!(t.shared_memory_region(0), Ok(Some((0x1_0000_0000, 0x1000))));
        assert_eq!(t.shared_memory_region(255), Ok(None));
        assert_eq!(fake.device().shm_sel, 255);
    }

    #[test]
    fn shared_memory_region_overflow_is_refused() {
        let fake = FakeRegisters::new(21);
        fake.device().shm_regions.push((2, u64::MAX - 0xfff, 0x2000));
        // Ending exactly at 2^64 is not representable either.
        fake.device().shm_regions.push((3, u64::MAX - 0xfff, 0x1000));
        fake.device().shm_regions.push((4, u64::MAX - 0xfff, 0xfff));
        let mut t = transport(&fake);
        assert_eq!(
            t.shared_memory_region(2),
            Err(MmioError::SharedMemoryOverflow { id: 2, base: u64::MAX - 0xfff, len: 0x2000 })
        );
        assert!(matches!(t.shared_memory_region(3), Err(MmioError::SharedMemoryOverflow { id: 3, .. })));
        assert_eq!(t.shared_memory_region(4), Ok(Some((u64::MAX - 0xfff, 0xfff))));
    }

    // --- queues, notifications, interrupts ---

    #[test]
    fn queue_set_writes_split_addresses_then_ready() {
        let fake = FakeRegisters::new(4);
        let mut t = transport(&fake);
        assert_eq!(t.max_queue_size(2), 64);
        assert_eq!(t.max_queue_size(9), 0);
        assert!(!t.queue_used(2));
        fake.device().writes.clear();
        t.queue_set(2, 32, 0x1_2345_6000, 0xa_0000_1000, 0xb_0000_2040);
        assert_eq!(
            fake.device().writes,
            [
                (reg::QUEUE_SEL, 2),
                (reg::QUEUE_NUM, 32),
                (reg::QUEUE_DESC_LOW, 0x2345_6000),
                (reg::QUEUE_DESC_HIGH, 0x1),
                (reg::QUEUE_DRIVER_LOW, 0x1000),
                (reg::QUEUE_DRIVER_HIGH, 0xa),
                (reg::QUEUE_DEVICE_LOW, 0x2040),
                (reg::QUEUE_DEVICE_HIGH, 0xb),
                (reg::QUEUE_READY, 1),
            ]
        );
        assert_eq!(
            fake.device().queues[2],
            FakeQueue {
                num_max: 64,
                num: 32,
                desc: 0x1_2345_6000,
                driver: 0xa_0000_1000,
                device: 0xb_0000_2040,
                ready: true
            }
        );
        assert!(t.queue_used(2));
        assert!(!t.requires_legacy_layout());
    }

    #[test]
    fn queue_unset_waits_for_ready_to_clear() {
        let fake = FakeRegisters::new(4);
        let mut t = transport(&fake);
        t.queue_set(1, 16, 0x1000, 0x2000, 0x3000);
        t.queue_unset(1);
        assert_eq!(fake.device().queues[1], FakeQueue { num_max: 64, ..FakeQueue::default() });
        assert!(!t.queue_used(1));
        assert_eq!(t.init_error(), None);
    }

    #[test]
    fn queue_unset_resets_a_device_that_keeps_the_queue() {
        let fake = FakeRegisters::new(4);
        fake.device().queue_ready_clears = false;
        let mut t = transport(&fake);
        t.queue_set(1, 16, 0x1000, 0x2000, 0x3000);
        t.queue_unset(1);
        assert_eq!(fake.device().status_writes.last(), Some(&0));
        assert!(!fake.device().queues[1].ready, "the reset released the queue");
        assert_eq!(t.init_error(), Some(MmioError::QueueResetTimeout { queue: 1 }));
    }

    #[test]
    fn notify_writes_queue_notify() {
        let fake = FakeRegisters::new(4);
        let mut t = transport(&fake);
        t.notify(3);
        t.notify(0);
        assert_eq!(fake.device().notifications, [3, 0]);
        assert_eq!(fake.device().writes, [(reg::QUEUE_NOTIFY, 3), (reg::QUEUE_NOTIFY, 0)]);
    }

    #[test]
    fn ack_interrupt_acknowledges_what_it_read() {
        let fake = FakeRegisters::new(4);
        let mut t = transport(&fake);
        assert_eq!(t.ack_interrupt().bits(), 0);
        assert!(fake.device().interrupt_acks.is_empty(), "nothing pending, nothing written");
        fake.device().interrupt_status = 3;
        assert!(
            t.ack_interrupt() == InterruptStatus::QUEUE_INTERRUPT | InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT
        );
        assert_eq!(fake.device().interrupt_status, 0);
        // Unknown bits are acknowledged too, but not reported.
        fake.device().interrupt_status = 0x8000_0001;
        assert!(t.ack_interrupt() == InterruptStatus::QUEUE_INTERRUPT);
        assert_eq!(fake.device().interrupt_acks, [3, 0x8000_0001]);
    }

    // --- stock drivers through the transport ---

    #[test]
    fn stock_rng_driver_initialises_through_transport() {
        let fake = FakeRegisters::new(4);
        fake.device().device_features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | INDIRECT_DESC;
        let rng = VirtIORng::<HostHal, _>::new(transport(&fake).with_access_platform(true)).unwrap();
        {
            let d = fake.device();
            assert_eq!(d.status, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
            assert_eq!(d.driver_features, FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | INDIRECT_DESC);
            let queue = &d.queues[0];
            assert!(queue.ready);
            assert_eq!(queue.num, 8);
            // The descriptor table and the driver area share one
            // allocation; the device area is a second one, which the host
            // allocator may place anywhere (below the first, too).
            assert!(queue.desc != 0 && queue.driver > queue.desc && queue.device != 0);
            assert!(queue.device < queue.desc || queue.device > queue.driver);
        }
        // Dropping the driver disables the queue, then the transport resets.
        drop(rng);
        let d = fake.device();
        assert!(!d.queues[0].ready);
        assert_eq!(d.status, 0);
    }

    #[test]
    fn stock_rng_driver_fails_cleanly_when_features_are_refused() {
        let fake = FakeRegisters::new(4);
        fake.device().features_ok_sticks = false;
        let result = VirtIORng::<HostHal, _>::new(transport(&fake));
        assert_eq!(result.err(), Some(VirtioError::InvalidParam));
        let d = fake.device();
        assert!(d.status_writes.iter().all(|s| s & DRIVER_OK == 0), "{:?}", d.status_writes);
        assert!(d.queues.iter().all(|q| !q.ready && q.desc == 0));
    }

    #[test]
    fn stock_blk_driver_reads_config_through_transport() {
        let fake = FakeRegisters::new(2);
        fake.device().device_features = FEATURE_VERSION_1;
        fake.set_config(0, &0x0000_0002_0000_0800u64.to_le_bytes());
        fake.change_config_during_read(0, &0x1000u64.to_le_bytes());
        let blk = VirtIOBlk::<HostHal, _>::new(transport(&fake)).unwrap();
        assert_eq!(blk.capacity(), 0x1000, "torn capacity read retried");
        assert!(fake.device().queues[0].ready);
    }

    #[test]
    fn a_window_is_claimed_once_until_its_transport_is_gone() {
        // Indices of their own: the registry is global to the test binary.
        let first = WindowClaim::take(62).expect("a free window");
        assert!(WindowClaim::take(62).is_none(), "claimed twice");
        assert!(WindowClaim::take(64).is_none(), "beyond the registry");
        let fake = FakeRegisters::new(4);
        let transport = MmioV2Transport::new(fake.clone()).unwrap().with_claim(first);
        assert!(WindowClaim::take(62).is_none(), "the transport holds it");
        fake.device().status = 0x7;
        drop(transport);
        assert_eq!(fake.device().status, 0, "reset on drop");
        assert!(WindowClaim::take(62).is_some(), "given back after the reset");
    }
}
