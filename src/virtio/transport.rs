//! What every virtio transport of ours does the same way, written once:
//! feature negotiation (VERSION_1 and, for pool-bound devices,
//! ACCESS_PLATFORM added to what stock drivers ask for), the status state
//! machine with its bounded reset wait and FEATURES_OK read-back, the
//! config-generation retry loop, config field widths, the one-transport-per-
//! device claim, and the error type. [`super::mmio::MmioV2Transport`] and
//! [`super::pci::PciTransport`] only supply register access.
//!
//! # Why a trait for drivers, and an enum for probing
//!
//! Drivers of ours (the hostmem driver) are generic over [`VirtioTransport`]
//! (virtio-drivers' `Transport` plus shared memory regions, consistent
//! config reads, typed negotiation and the init error), so their unit tests
//! run over fake register files without a second code path. Probing returns
//! [`ProbedTransport`], an enum over the two real transports: which one a
//! device has is only known at run time (from the tree), images keep
//! passing `device.transport` to `VirtIORng::new` unchanged, and a generic
//! parameter would have to be threaded through every image for a choice
//! that is not the image's to make.

use alloc::boxed::Box;
use core::fmt;

use arrayvec::ArrayVec;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::mmio::{MmioRegisters, MmioV2Transport};
use super::pci::{MmioSpan, PciTransport};
use crate::pci::PciError;
use crate::pci::config::Bdf;

/// `VIRTIO_F_VERSION_1`: mandatory for a modern (non-legacy) device.
pub const FEATURE_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_F_ACCESS_PLATFORM`: the device accesses memory through the
/// platform's restrictions (here: only the DMA pool).
pub const FEATURE_ACCESS_PLATFORM: u64 = 1 << 33;
/// How often a config read is attempted while the config generation
/// changes.
pub const CONFIG_READ_ATTEMPTS: u32 = 8;
/// How many times a register is polled for the device to confirm a reset
/// or a queue being disabled.
pub const POLL_LIMIT: u32 = 10_000;

pub(crate) const STATUS_ACK_DRIVER: DeviceStatus = DeviceStatus::ACKNOWLEDGE.union(DeviceStatus::DRIVER);

/// What was wrong with a virtio device, or with a request to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// MagicValue is not 0x74726976 ("virt"): not a virtio-mmio window.
    BadMagic(u32),
    /// Version 1: a legacy device (QEMU's default unless
    /// `-global virtio-mmio.force-legacy=false`).
    LegacyUnsupported,
    /// Version neither 1 nor 2.
    UnsupportedVersion(u32),
    /// DeviceID 0: an empty slot; probing should skip it quietly.
    EmptySlot,
    /// A device id virtio-drivers has no `DeviceType` for, refused by
    /// [`MmioV2Transport::new_known`].
    UnknownDeviceType(u32),
    /// The device does not offer VIRTIO_F_VERSION_1.
    Version1NotOffered {
        /// All features the device offered.
        offered: u64,
    },
    /// FEATURES_OK did not read back after it was set: the device refused
    /// the feature subset.
    FeaturesNotAccepted {
        /// The status read back.
        status: u32,
    },
    /// The status did not read 0 after a reset.
    ResetTimeout {
        /// The last status read.
        status: u32,
    },
    /// QueueReady did not read 0 after the queue was disabled; the device
    /// was reset instead.
    QueueResetTimeout {
        /// The queue.
        queue: u16,
    },
    /// A config access outside the config space.
    ConfigOutOfBounds {
        /// Offset into config space.
        offset: usize,
        /// Size of the access.
        size: usize,
        /// Size of the config space.
        config_size: usize,
    },
    /// A config access not aligned to its type (at most 4 bytes).
    ConfigMisaligned {
        /// Offset into config space.
        offset: usize,
        /// Required alignment.
        align: usize,
    },
    /// ConfigGeneration changed during every attempt.
    ConfigUnstable {
        /// Number of attempts made.
        attempts: u32,
    },
    /// A shared memory region whose end does not fit in 64 bits.
    SharedMemoryOverflow {
        /// The region id.
        id: u8,
        /// Base read from the device.
        base: u64,
        /// Length read from the device.
        len: u64,
    },
    /// virtio-pci: a queue's notify address (queue_notify_off x
    /// notify_off_multiplier) is outside the notify structure.
    NotifyOutOfBounds {
        /// The queue index.
        queue: u16,
        /// The queue's `queue_notify_off`.
        notify_off: u16,
        /// The notify capability's `notify_off_multiplier`.
        multiplier: u32,
        /// Bytes of the notify structure.
        length: u64,
    },
    /// virtio-pci: a queue's notify offset is odd, so its 16-bit notify
    /// write would be misaligned (and refused by the register window).
    NotifyMisaligned {
        /// The queue index.
        queue: u16,
        /// The notify offset (queue_notify_off x notify_off_multiplier).
        offset: u64,
    },
    /// virtio-pci: the device offered more queues than the transport tracks.
    TooManyQueues {
        /// The first queue index past what the transport tracks.
        queue: u16,
    },
    /// virtio-pci: a problem of the PCI function (BARs, capabilities).
    Pci(PciError),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic(magic) => {
                write!(f, "bad virtio-mmio magic value {magic:#010x} (expected {:#010x})", super::mmio::MAGIC)
            }
            Self::LegacyUnsupported => {
                write!(
                    f,
                    "legacy virtio-mmio device (version 1) is not supported (QEMU: -global virtio-mmio.force-legacy=false)"
                )
            }
            Self::UnsupportedVersion(version) => write!(f, "unsupported virtio-mmio version {version}"),
            Self::EmptySlot => write!(f, "empty virtio-mmio slot (device id 0)"),
            Self::UnknownDeviceType(id) => write!(f, "virtio device id {id} has no virtio-drivers DeviceType"),
            Self::Version1NotOffered { offered } => {
                write!(f, "device does not offer VIRTIO_F_VERSION_1 (features {offered:#018x})")
            }
            Self::FeaturesNotAccepted { status } => {
                write!(
                    f,
                    "device did not accept the features: FEATURES_OK not set after writing it (status {status:#x})"
                )
            }
            Self::ResetTimeout { status } => {
                write!(f, "device reset did not complete after {POLL_LIMIT} reads (status {status:#x})")
            }
            Self::QueueResetTimeout { queue } => {
                write!(f, "queue {queue} still ready after {POLL_LIMIT} reads; device reset instead")
            }
            Self::ConfigOutOfBounds { offset, size, config_size } => {
                write!(
                    f,
                    "config access of {size} bytes at offset {offset:#x} outside config space of {config_size:#x} bytes"
                )
            }
            Self::ConfigMisaligned { offset, align } => {
                write!(f, "config access at offset {offset:#x} not aligned to {align} bytes")
            }
            Self::ConfigUnstable { attempts } => {
                write!(f, "config generation changed during each of {attempts} read attempts")
            }
            Self::SharedMemoryOverflow { id, base, len } => {
                write!(f, "shared memory region {id}: base {base:#x} + length {len:#x} overflows")
            }
            Self::NotifyOutOfBounds { queue, notify_off, multiplier, length } => write!(
                f,
                "queue {queue}: notify offset {notify_off} x {multiplier} is outside the notify structure of {length:#x} bytes"
            ),
            Self::NotifyMisaligned { queue, offset } => {
                write!(f, "queue {queue}: notify offset {offset:#x} is not 2-byte aligned")
            }
            Self::TooManyQueues { queue } => write!(f, "queue {queue} is beyond the queues the transport tracks"),
            Self::Pci(error) => write!(f, "{error}"),
        }
    }
}

/// How [`Transport`] methods, which must return virtio-drivers' error type,
/// report our errors.
impl From<TransportError> for VirtioError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::ConfigOutOfBounds { config_size: 0, .. } => VirtioError::ConfigSpaceMissing,
            TransportError::ConfigOutOfBounds { .. } => VirtioError::ConfigSpaceTooSmall,
            TransportError::ConfigMisaligned { .. } => VirtioError::InvalidParam,
            _ => VirtioError::IoError,
        }
    }
}

impl From<PciError> for TransportError {
    fn from(error: PciError) -> Self {
        Self::Pci(error)
    }
}

/// The outcome of feature negotiation, for the caller to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiatedFeatures {
    /// What the device offered.
    pub offered: u64,
    /// What the driver asked for.
    pub requested: u64,
    /// What was written to the driver features: `offered & requested`,
    /// plus VERSION_1 and (when bound to a pool) ACCESS_PLATFORM if offered.
    pub accepted: u64,
    /// Whether the device is bound to a restricted DMA pool, i.e. wanted
    /// ACCESS_PLATFORM.
    pub access_platform_wanted: bool,
}

impl NegotiatedFeatures {
    /// Whether ACCESS_PLATFORM was negotiated.
    pub fn access_platform(&self) -> bool {
        self.accepted & FEATURE_ACCESS_PLATFORM != 0
    }

    /// Bound to a pool, but the device did not offer ACCESS_PLATFORM: the
    /// device may try to reach memory outside the pool (the pool Hal still
    /// only hands it pool addresses).
    pub fn access_platform_missing(&self) -> bool {
        self.access_platform_wanted && !self.access_platform()
    }
}

/// The registers the shared status and feature logic needs; each
/// transport implements it over its own layout.
pub(crate) trait StatusRegisters {
    fn read_status(&self) -> u32;
    fn write_status(&mut self, status: u32);
    /// Writes both halves of the driver features.
    fn write_driver_features(&mut self, features: u64);
}

/// Negotiation and initialisation state, with the rules every transport
/// follows (virtio 1.2 §2.4.2, §3.1.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InitState {
    /// For messages: "virtio-mmio" or "virtio-pci".
    pub transport: &'static str,
    pub device_id: u32,
    /// Bound to a restricted DMA pool: negotiate ACCESS_PLATFORM.
    pub access_platform: bool,
    /// Device features as last read, so the driver features are checked
    /// against the same offer the driver saw.
    pub offered: Option<u64>,
    pub negotiated: Option<NegotiatedFeatures>,
    /// Why initialisation failed since the last reset, if it did.
    pub init_error: Option<TransportError>,
}

impl InitState {
    pub fn new(transport: &'static str, device_id: u32) -> Self {
        Self { transport, device_id, access_platform: false, offered: None, negotiated: None, init_error: None }
    }

    /// Resets the device and waits (bounded) for the status to read 0, as
    /// virtio 1.2 §2.4.2 requires before reinitialising.
    pub fn reset(&mut self, regs: &mut impl StatusRegisters) {
        self.offered = None;
        self.negotiated = None;
        self.init_error = None;
        regs.write_status(0);
        for _ in 0..POLL_LIMIT {
            if regs.read_status() == 0 {
                return;
            }
            core::hint::spin_loop();
        }
        let error = TransportError::ResetTimeout { status: regs.read_status() };
        log::error!("{} device {}: {error}", self.transport, self.device_id);
        self.init_error = Some(error);
    }

    /// Gives up on initialising the device: records why (the first reason
    /// wins) and sets FAILED (virtio 1.2 §3.1.1).
    pub fn fail(&mut self, regs: &mut impl StatusRegisters, error: TransportError) {
        log::error!("{} device {}: {error}; marking it FAILED", self.transport, self.device_id);
        self.init_error.get_or_insert(error);
        Self::write_failed(regs);
    }

    pub fn write_failed(regs: &mut impl StatusRegisters) {
        regs.write_status((STATUS_ACK_DRIVER | DeviceStatus::FAILED).bits());
    }

    /// Decides and writes the driver features: never what the device did
    /// not offer; VERSION_1 whenever offered (a modern driver must accept
    /// it); ACCESS_PLATFORM whenever offered to a pool-bound device, even
    /// though stock drivers do not list it (so they negotiate it unchanged).
    pub fn write_features(
        &mut self,
        regs: &mut impl StatusRegisters,
        offered: u64,
        requested: u64,
    ) -> NegotiatedFeatures {
        let mut accepted = (requested & offered) | (offered & FEATURE_VERSION_1);
        if self.access_platform {
            accepted |= offered & FEATURE_ACCESS_PLATFORM;
        }
        let negotiated =
            NegotiatedFeatures { offered, requested, accepted, access_platform_wanted: self.access_platform };
        self.negotiated = Some(negotiated);
        if offered & FEATURE_VERSION_1 == 0 {
            self.fail(regs, TransportError::Version1NotOffered { offered });
            return negotiated;
        }
        if negotiated.access_platform_missing() {
            log::warn!(
                "{} device {}: bound to a restricted DMA pool but does not offer VIRTIO_F_ACCESS_PLATFORM; \
                 negotiating without it",
                self.transport,
                self.device_id
            );
        }
        regs.write_driver_features(accepted);
        negotiated
    }

    /// Writes the status with the checks the trait's default `begin_init`
    /// leaves out: 0 resets and waits for the reset; FEATURES_OK is read
    /// back; after a failed negotiation FEATURES_OK and DRIVER_OK are never
    /// written (FAILED is instead).
    pub fn set_status(&mut self, regs: &mut impl StatusRegisters, status: DeviceStatus) {
        if status.is_empty() {
            self.reset(regs);
            return;
        }
        let advancing = status.intersects(DeviceStatus::FEATURES_OK | DeviceStatus::DRIVER_OK);
        if advancing && self.init_error.is_some() {
            // Already logged when it failed.
            Self::write_failed(regs);
            return;
        }
        regs.write_status(status.bits());
        if status.contains(DeviceStatus::FEATURES_OK) && !status.contains(DeviceStatus::DRIVER_OK) {
            let read_back = regs.read_status();
            if read_back & DeviceStatus::FEATURES_OK.bits() == 0 {
                self.fail(regs, TransportError::FeaturesNotAccepted { status: read_back });
            }
        }
    }

    /// Resets and negotiates (virtio 1.2 §3.1.1 steps 1 to 6); `offered`
    /// reads the device features after ACKNOWLEDGE | DRIVER.
    pub fn negotiate<R: StatusRegisters>(
        &mut self,
        regs: &mut R,
        requested: u64,
        access_platform: bool,
        offered: impl FnOnce(&mut R) -> u64,
    ) -> Result<NegotiatedFeatures, TransportError> {
        self.access_platform = access_platform;
        self.set_status(regs, DeviceStatus::empty());
        if let Some(error) = self.init_error {
            return Err(error);
        }
        self.set_status(regs, DeviceStatus::ACKNOWLEDGE);
        self.set_status(regs, STATUS_ACK_DRIVER);
        let offered = offered(regs);
        self.offered = Some(offered);
        let negotiated = self.write_features(regs, offered, requested);
        self.set_status(regs, STATUS_ACK_DRIVER | DeviceStatus::FEATURES_OK);
        match self.init_error {
            Some(error) => Err(error),
            None => Ok(negotiated),
        }
    }
}

/// Runs `read` until `generation` reads the same before and after it, at
/// most [`CONFIG_READ_ATTEMPTS`] times; an error from `read` is returned at
/// once. The trait's default `read_consistent` retries forever, so a
/// hostile device could hang us.
pub fn consistent<T, E: From<TransportError>>(
    generation: impl Fn() -> u32,
    mut read: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    for _ in 0..CONFIG_READ_ATTEMPTS {
        let before = generation();
        let value = read()?;
        if generation() == before {
            return Ok(value);
        }
    }
    Err(TransportError::ConfigUnstable { attempts: CONFIG_READ_ATTEMPTS }.into())
}

/// Access width for a config value of type `T`: its alignment, capped at
/// 32 bits (Rust sizes are multiples of the alignment, so it divides the
/// size too). Virtio 1.2 §4.1.3.1/§4.2.2.2: 8-bit fields bytewise, 16-bit
/// fields 16 bits at a time, 32- and 64-bit fields 32 bits at a time.
pub(crate) fn config_width<T>() -> usize {
    align_of::<T>().min(4)
}

/// Checks a config access of `size` bytes at `offset` aligned to `align`
/// against a config space of `config_size` bytes.
pub(crate) fn check_config_access(
    offset: usize,
    size: usize,
    align: usize,
    config_size: usize,
) -> Result<(), TransportError> {
    if !offset.is_multiple_of(align) {
        return Err(TransportError::ConfigMisaligned { offset, align });
    }
    match offset.checked_add(size) {
        Some(end) if end <= config_size => Ok(()),
        _ => Err(TransportError::ConfigOutOfBounds { offset, size, config_size }),
    }
}

/// Reads a `T` field by field: `read(width, offset)` returns `width` bytes
/// at config `offset`, little-endian. Bounds and alignment are checked.
pub(crate) fn read_config_fields<T: FromBytes + IntoBytes>(
    offset: usize,
    config_size: usize,
    read: impl Fn(usize, usize) -> u32,
) -> Result<T, TransportError> {
    let width = config_width::<T>();
    check_config_access(offset, size_of::<T>(), width, config_size)?;
    let mut value = T::new_zeroed();
    for (index, chunk) in value.as_mut_bytes().chunks_mut(width).enumerate() {
        // Cannot overflow: the whole range was checked above.
        store_le(chunk, read(width, offset + index * width));
    }
    Ok(value)
}

/// Writes a `T` field by field; rules as in [`read_config_fields`].
pub(crate) fn write_config_fields<T: IntoBytes + Immutable>(
    offset: usize,
    config_size: usize,
    value: T,
    mut write: impl FnMut(usize, usize, u32),
) -> Result<(), TransportError> {
    let width = config_width::<T>();
    check_config_access(offset, size_of::<T>(), width, config_size)?;
    for (index, chunk) in value.as_bytes().chunks(width).enumerate() {
        write(width, offset + index * width, load_le(chunk));
    }
    Ok(())
}

/// Stores the low `chunk.len()` (at most 4) bytes of `word`, little-endian.
fn store_le(chunk: &mut [u8], word: u32) {
    for (index, byte) in chunk.iter_mut().take(4).enumerate() {
        *byte = (word >> (8 * index)) as u8;
    }
}

/// Loads up to 4 bytes, little-endian.
fn load_le(chunk: &[u8]) -> u32 {
    chunk.iter().take(4).rev().fold(0, |word, &byte| (word << 8) | u32::from(byte))
}

/// A device a transport can drive: a virtio-mmio node (by index) or a PCI
/// function (by bridge index and address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKey {
    /// A virtio-mmio node, by its index among the platform's virtio nodes.
    MmioNode(u32),
    /// A PCI function.
    PciFunction {
        /// The host bridge's index.
        bridge: u8,
        /// The function's address.
        bdf: Bdf,
    },
}

/// Devices that have a live transport: a second transport over a device in
/// use would alias the driver's registers, and its drop would reset the
/// device under it.
static CLAIMED: spin::Mutex<ArrayVec<DeviceKey, MAX_CLAIMS>> = spin::Mutex::new(ArrayVec::new_const());
/// Devices that can be driven at once.
pub const MAX_CLAIMS: usize = 128;

/// The right to drive one device: at most one exists per device at a time,
/// and dropping it gives the device back.
#[derive(Debug)]
pub struct WindowClaim(DeviceKey);

impl WindowClaim {
    /// Claims virtio-mmio node `index` (below 64), or `None` while another
    /// claim holds it.
    pub fn take(index: usize) -> Option<Self> {
        let index = u32::try_from(index).ok().filter(|&index| index < u64::BITS)?;
        Self::take_key(DeviceKey::MmioNode(index))
    }

    /// Claims PCI function `bdf` behind bridge `bridge`.
    pub fn take_pci(bridge: u8, bdf: Bdf) -> Option<Self> {
        Self::take_key(DeviceKey::PciFunction { bridge, bdf })
    }

    fn take_key(key: DeviceKey) -> Option<Self> {
        let mut claimed = CLAIMED.lock();
        if claimed.contains(&key) {
            return None;
        }
        claimed.try_push(key).ok()?;
        Some(Self(key))
    }

    /// The device this claim holds.
    pub fn key(&self) -> DeviceKey {
        self.0
    }
}

impl Drop for WindowClaim {
    fn drop(&mut self) {
        CLAIMED.lock().retain(|key| *key != self.0);
    }
}

/// What our drivers need of a transport beyond virtio-drivers' `Transport`.
pub trait VirtioTransport: Transport {
    /// The virtio device id (source of truth; see `device_type` docs).
    fn device_id(&self) -> u32;
    /// The config space size accesses are checked against.
    fn config_size(&self) -> usize;
    /// Narrows the config space to what the device type defines.
    fn limit_config_size(&mut self, size: usize);
    /// Resets the device and negotiates features (virtio 1.2 §3.1.1 steps
    /// 1 to 6): accepts `requested` features the device offers, VERSION_1
    /// (required), and ACCESS_PLATFORM when `access_platform` and offered;
    /// FEATURES_OK is read back. On error the device is left FAILED and
    /// [`VirtioTransport::init_error`] says why.
    fn negotiate(&mut self, requested: u64, access_platform: bool) -> Result<NegotiatedFeatures, TransportError>;
    /// Why initialisation failed since the last reset, if it did.
    fn init_error(&self) -> Option<TransportError>;
    /// Shared memory region `id` as `(guest-physical base, length)`.
    fn shared_memory_region(&mut self, id: u8) -> Result<Option<(u64, u64)>, TransportError>;
    /// One 32-bit config field, without a generation check.
    fn read_config_u32(&self, offset: usize) -> Result<u32, TransportError>;

    /// `N` 32-bit config words from offset 0, consistent under the config
    /// generation (bounded retries).
    fn read_config_words<const N: usize>(&self) -> Result<[u32; N], TransportError> {
        consistent(
            || self.read_config_generation(),
            || {
                let mut words = [0; N];
                for (index, word) in words.iter_mut().enumerate() {
                    *word = self.read_config_u32(4 * index)?;
                }
                Ok(words)
            },
        )
    }
}

/// A transport as probing finds it: virtio-mmio or virtio-pci (see the
/// module docs for why an enum here).
#[derive(Debug)]
pub enum ProbedTransport {
    /// A virtio-mmio version 2 device.
    Mmio(MmioV2Transport<MmioRegisters>),
    /// A modern virtio-pci function. Boxed: its queue table makes it
    /// several times the size of the other.
    Pci(Box<PciTransport<MmioSpan>>),
}

macro_rules! each {
    ($self:expr, $transport:ident => $body:expr) => {
        match $self {
            ProbedTransport::Mmio($transport) => $body,
            ProbedTransport::Pci($transport) => $body,
        }
    };
}

impl ProbedTransport {
    /// Which transport, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbedTransport::Mmio(_) => "virtio-mmio",
            ProbedTransport::Pci(_) => "virtio-pci",
        }
    }
}

impl Transport for ProbedTransport {
    fn device_type(&self) -> DeviceType {
        each!(self, t => t.device_type())
    }
    fn read_device_features(&mut self) -> u64 {
        each!(self, t => t.read_device_features())
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        each!(self, t => t.write_driver_features(driver_features))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        each!(self, t => t.max_queue_size(queue))
    }
    fn notify(&mut self, queue: u16) {
        each!(self, t => t.notify(queue))
    }
    fn get_status(&self) -> DeviceStatus {
        each!(self, t => t.get_status())
    }
    fn set_status(&mut self, status: DeviceStatus) {
        each!(self, t => t.set_status(status))
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        each!(self, t => t.set_guest_page_size(guest_page_size))
    }
    fn requires_legacy_layout(&self) -> bool {
        each!(self, t => t.requires_legacy_layout())
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        each!(self, t => t.queue_set(queue, size, descriptors, driver_area, device_area))
    }
    fn queue_unset(&mut self, queue: u16) {
        each!(self, t => t.queue_unset(queue))
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        each!(self, t => t.queue_used(queue))
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        each!(self, t => t.ack_interrupt())
    }
    fn read_config_generation(&self) -> u32 {
        each!(self, t => t.read_config_generation())
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        each!(self, t => t.read_config_space(offset))
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        each!(self, t => t.write_config_space(offset, value))
    }
    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        each!(self, t => t.read_consistent(f))
    }
}

impl VirtioTransport for ProbedTransport {
    fn device_id(&self) -> u32 {
        each!(self, t => t.device_id())
    }
    fn config_size(&self) -> usize {
        each!(self, t => t.config_size())
    }
    fn limit_config_size(&mut self, size: usize) {
        each!(self, t => t.limit_config_size(size))
    }
    fn negotiate(&mut self, requested: u64, access_platform: bool) -> Result<NegotiatedFeatures, TransportError> {
        each!(self, t => t.negotiate(requested, access_platform))
    }
    fn init_error(&self) -> Option<TransportError> {
        each!(self, t => t.init_error())
    }
    fn shared_memory_region(&mut self, id: u8) -> Result<Option<(u64, u64)>, TransportError> {
        each!(self, t => t.shared_memory_region(id))
    }
    fn read_config_u32(&self, offset: usize) -> Result<u32, TransportError> {
        each!(self, t => t.read_config_u32(offset))
    }
}
