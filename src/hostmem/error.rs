//! The one error type of the hostmem driver.

use core::fmt;

use hostmem_wire::{Opcode, Status, WireError};

use crate::dma::{DmaError, PoolId};
use crate::interrupts::InterruptError;
use crate::platform::Range;
use crate::virtio::mmio::MmioError;

/// Memory the guest owns, which no region may overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnedKind {
    /// The image itself (code, data, .bss, boot stack).
    Image,
    /// The device tree as the loader placed it.
    DeviceTree,
    /// RAM given to the private heap.
    Heap,
    /// A restricted DMA pool, by slot.
    DmaPool(usize),
    /// A device register window (UART, GIC, virtio-mmio).
    DeviceWindow,
    /// Anything else the caller declared (see [`super::OwnedRanges::push`]).
    Other(&'static str),
}

impl fmt::Display for OwnedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnedKind::Image => f.write_str("the image"),
            OwnedKind::DeviceTree => f.write_str("the device tree"),
            OwnedKind::Heap => f.write_str("the heap"),
            OwnedKind::DmaPool(slot) => write!(f, "DMA pool {slot}"),
            OwnedKind::DeviceWindow => f.write_str("a device register window"),
            OwnedKind::Other(what) => f.write_str(what),
        }
    }
}

/// What is wrong with a published region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionReason {
    /// `region_len` is zero.
    Empty,
    /// Base or length not a multiple of 4096.
    Misaligned {
        /// `region_base` as published.
        base: u64,
        /// `region_len` as published.
        len: u64,
    },
    /// `region_base + region_len` does not fit in 64 bits.
    Wraps {
        /// `region_base` as published.
        base: u64,
        /// `region_len` as published.
        len: u64,
    },
    /// The region overlaps memory the guest owns.
    OverlapsOwned {
        /// What the guest owns there.
        owned: OwnedKind,
        /// The owned range the region overlaps.
        range: Range,
    },
    /// The region overlaps the region with this shmid.
    OverlapsRegion {
        /// The shmid of the region it overlaps.
        other_shmid: u32,
    },
    /// The transport's shared memory registers publish this shmid with a
    /// different range than config space.
    ShmMismatch {
        /// `region_base` in config space.
        base: u64,
        /// `region_len` in config space.
        len: u64,
        /// The base the transport's registers give.
        shm_base: u64,
        /// The length the transport's registers give.
        shm_len: u64,
    },
    /// The transport's shared memory registers for this shmid are invalid.
    ShmInvalid(MmioError),
    /// The region ends beyond what the runtime's page table can map.
    BeyondAddressSpace {
        /// First address after the region.
        end: u64,
        /// First address the page tables cannot map.
        limit: u64,
    },
}

impl fmt::Display for RegionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RegionReason::Empty => f.write_str("length is zero"),
            RegionReason::Misaligned { base, len } => {
                write!(f, "base {base:#x} or length {len:#x} is not a multiple of 4096")
            }
            RegionReason::Wraps { base, len } => write!(f, "base {base:#x} + length {len:#x} overflows 64 bits"),
            RegionReason::OverlapsOwned { owned, range } => write!(f, "overlaps {owned} ({range})"),
            RegionReason::OverlapsRegion { other_shmid } => write!(f, "overlaps the region of shmid {other_shmid}"),
            RegionReason::ShmMismatch { base, len, shm_base, shm_len } => write!(
                f,
                "config says {base:#x}+{len:#x} but the transport's shared memory registers say {shm_base:#x}+{shm_len:#x}"
            ),
            RegionReason::ShmInvalid(error) => write!(f, "shared memory registers: {error}"),
            RegionReason::BeyondAddressSpace { end, limit } => {
                write!(f, "ends at {end:#x}, beyond the mappable address space ({limit:#x})")
            }
        }
    }
}

/// What the device did wrong on a virtqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedReason {
    /// The used ring names a descriptor chain the driver has not made
    /// available (or already got back).
    UnknownToken(u16),
    /// virtio-drivers refused to pop the chain.
    Pop(virtio_drivers::Error),
}

impl fmt::Display for UsedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsedReason::UnknownToken(token) => write!(f, "used ring names chain {token}, which is not in flight"),
            UsedReason::Pop(error) => write!(f, "popping the used chain failed: {error}"),
        }
    }
}

/// Why a hostmem operation failed.
///
/// Every value from the device is checked; a violation is one of these,
/// never a panic. Errors while probing mean the device was refused: it was
/// reset (and marked FAILED if the driver had claimed it) and its queues
/// were freed. A region mapped before the failure stays mapped: page
/// tables only grow, and every region was checked to be clear of what the
/// guest owns before the first was mapped.
#[derive(Debug)]
pub enum HostmemError {
    /// The device id is not the one configured in [`super::Options`].
    WrongDeviceId {
        /// The id the driver was configured for.
        expected: u32,
        /// The transport's device id.
        found: u32,
    },
    /// Config space does not start with the hostmem magic: another device
    /// type with the same id (21 is also the Signal Distribution Module).
    /// The device was left untouched.
    NotHostmem {
        /// The first config word read.
        magic: u32,
    },
    /// A config layout version this driver does not implement. The device
    /// was left untouched.
    UnsupportedVersion(u16),
    /// The virtio-mmio transport failed (feature negotiation, config reads
    /// that never settle, ...).
    Transport(MmioError),
    /// Config space (or the sub-device list) breaks a rule of
    /// docs/hostmem.md §6.
    Config(WireError),
    /// Config space changed between the reads before and after FEATURES_OK.
    ConfigChanged,
    /// A region the device publishes is not acceptable.
    BadRegion {
        /// The region's shmid.
        shmid: u32,
        /// What is wrong with it.
        reason: RegionReason,
    },
    /// More sub-devices than [`super::Options::max_subdevices`].
    TooManySubdevices {
        /// `num_subdevices` from config space.
        num_subdevices: u32,
        /// The configured limit.
        limit: u32,
    },
    /// A virtqueue could not be set up.
    Queue {
        /// The queue index.
        queue: u16,
        /// What virtio-drivers reported.
        error: virtio_drivers::Error,
    },
    /// The device's used ring is inconsistent with what the driver made
    /// available.
    BadUsed {
        /// The queue index.
        queue: u16,
        /// What the device did wrong.
        reason: UsedReason,
    },
    /// The DMA pool is too small for what the driver needs.
    PoolExhausted {
        /// The device's pool.
        pool: PoolId,
        /// Pages the operation needs.
        needed_pages: usize,
        /// Pages the pool has free.
        free_pages: usize,
    },
    /// The DMA pool refused an operation.
    Pool {
        /// The device's pool.
        pool: PoolId,
        /// What the pool reported.
        error: DmaError,
    },
    /// The rings did not come from the device's pool: `H` is not that
    /// pool's Hal (`with_pool_hal!(pool, |H| ...)`), so the driver's pool
    /// reservations would not cover its buffers.
    HalNotOfPool {
        /// The device's pool.
        pool: PoolId,
    },
    /// The device's interrupt could not be bound.
    Interrupt(InterruptError),
    /// A region could not be added to the page table.
    Map {
        /// The region's shmid.
        shmid: u32,
        /// What the MMU code reported.
        error: crate::arch::mmu::MmuError,
    },
    /// Nothing happened within the timeout.
    Timeout {
        /// What was waited for, for the message ("an event", ...).
        what: &'static str,
    },
    /// The previous config-queue request is still with the device (it timed
    /// out); the queue takes one request at a time.
    ConfigQueueBusy,
    /// The device answered a config-queue request with a failure status.
    Refused {
        /// The request's opcode.
        opcode: Opcode,
        /// The status the device answered.
        status: Status,
    },
    /// The device's answer to a config-queue request is malformed.
    BadResponse {
        /// The request's opcode.
        opcode: Opcode,
        /// What is wrong with the response.
        error: WireError,
    },
    /// An event from the device is malformed or names something the driver
    /// does not know. The event buffer was given back to the device.
    BadEvent(WireError),
    /// The device wrote a completion word value it cannot have written: a
    /// `seq` that was never sent, or one below an earlier value.
    BadCompletionWord {
        /// The instance.
        instance_id: u32,
        /// The value read.
        value: u64,
        /// The last value read before.
        last_seen: u64,
        /// The last `seq` the driver sent.
        last_sent: u64,
    },
    /// The device reported an ERROR event for the notification waited on.
    NotificationFailed {
        /// The instance.
        instance_id: u32,
        /// The notification's `seq`.
        seq: u64,
        /// The status the event carries.
        status: Status,
    },
    /// The device reported INSTANCE_LOST for the instance; destroy it.
    InstanceLost {
        /// The instance.
        instance_id: u32,
        /// The status the event carries.
        status: Status,
    },
    /// No sub-device with this vendor and device id.
    NoSuchSubdevice {
        /// The vendor id asked for.
        vendor_id: u32,
        /// The device id asked for.
        device_id: u32,
    },
    /// The sub-device handle does not belong to this device.
    UnknownSubdevice(u32),
    /// The instance handle does not belong to a live instance of this
    /// driver.
    StaleInstance {
        /// The handle's instance id.
        instance_id: u32,
    },
    /// The device created an instance whose notification queue the driver
    /// did not set up (a device must not do that, docs/hostmem.md §4.1).
    NotifyQueueNotSetUp {
        /// The instance the device created.
        instance_id: u32,
        /// How many notification queues the driver set up.
        queues: u32,
    },
    /// An offset/size in a region is out of bounds (checked before any
    /// access or message).
    Range(WireError),
    /// A write would hit the completion word of a live instance, which only
    /// the device writes.
    CompletionWordWrite {
        /// Offset of the write in the region.
        offset: u64,
    },
    /// A completion word was requested but VIRTIO_HOSTMEM_F_COMPLETION_WORD
    /// was not negotiated.
    CompletionWordUnsupported,
    /// The instance has no completion word to wait on.
    NoCompletionWord {
        /// The instance.
        instance_id: u32,
    },
    /// A `seq` that was never sent on this instance.
    SeqNotSent {
        /// The instance.
        instance_id: u32,
        /// The `seq` asked about.
        seq: u64,
        /// The last `seq` sent on the instance.
        last_sent: u64,
    },
    /// The instance's notification queue has no free descriptor; wait for
    /// completions and retry.
    QueueFull {
        /// The queue index.
        queue: u16,
    },
}

impl fmt::Display for HostmemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongDeviceId { expected, found } => {
                write!(f, "virtio device id {found} is not the configured hostmem id {expected}")
            }
            Self::NotHostmem { magic } => write!(
                f,
                "config magic {magic:#010x} is not {:#010x} (\"HMEM\"): not a hostmem device; left untouched",
                hostmem_wire::MAGIC
            ),
            Self::UnsupportedVersion(version) => write!(
                f,
                "hostmem config layout version {version} is not supported (only {})",
                hostmem_wire::LAYOUT_VERSION
            ),
            Self::Transport(error) => write!(f, "hostmem transport: {error}"),
            Self::Config(error) => write!(f, "hostmem config: {error}"),
            Self::ConfigChanged => f.write_str("hostmem config space changed across feature negotiation"),
            Self::BadRegion { shmid, reason } => write!(f, "hostmem region shmid {shmid}: {reason}"),
            Self::TooManySubdevices { num_subdevices, limit } => {
                write!(f, "hostmem device offers {num_subdevices} sub-devices, more than the limit {limit}")
            }
            Self::Queue { queue, error } => write!(f, "hostmem queue {queue}: {error}"),
            Self::BadUsed { queue, reason } => write!(f, "hostmem queue {queue}: {reason}"),
            Self::PoolExhausted { pool, needed_pages, free_pages } => {
                write!(f, "DMA pool {pool}: {needed_pages} pages needed, {free_pages} free")
            }
            Self::Pool { pool, error } => write!(f, "DMA pool {pool}: {error}"),
            Self::HalNotOfPool { pool } => {
                write!(f, "hostmem: the virtqueue Hal does not allocate from DMA pool {pool} (use PoolHal<{pool}>)")
            }
            Self::Interrupt(error) => write!(f, "hostmem interrupt: {error}"),

            Self::Map { shmid, error } => write!(f, "mapping hostmem region shmid {shmid}: {error}"),
            Self::Timeout { what } => write!(f, "hostmem: timed out waiting for {what}"),
            Self::ConfigQueueBusy => {
                f.write_str("hostmem config queue busy: an earlier request timed out and is still with the device")
            }
            Self::Refused { opcode, status } => write!(f, "hostmem {opcode:?} refused by the device: {status:?}"),
            Self::BadResponse { opcode, error } => write!(f, "hostmem {opcode:?}: bad response: {error}"),
            Self::BadEvent(error) => write!(f, "hostmem: bad event: {error}"),
            Self::BadCompletionWord { instance_id, value, last_seen, last_sent } => write!(
                f,
                "hostmem instance {instance_id}: completion word {value} impossible (last seen {last_seen}, last sent {last_sent})"
            ),
            Self::NotificationFailed { instance_id, seq, status } => {
                write!(f, "hostmem instance {instance_id}: notification {seq} failed: {status:?}")
            }
            Self::InstanceLost { instance_id, status } => {
                write!(f, "hostmem instance {instance_id} lost by the device ({status:?}); destroy it")
            }
            Self::NoSuchSubdevice { vendor_id, device_id } => {
                write!(f, "hostmem: no sub-device with vendor {vendor_id:#x} device {device_id:#x}")
            }
            Self::UnknownSubdevice(index) => write!(f, "hostmem: no sub-device {index}"),
            Self::StaleInstance { instance_id } => write!(f, "hostmem: instance {instance_id} is not live"),
            Self::NotifyQueueNotSetUp { instance_id, queues } => write!(
                f,
                "hostmem: device created instance {instance_id}, but only {queues} notification queues are set up"
            ),
            Self::Range(error) => write!(f, "hostmem region access: {error}"),
            Self::CompletionWordWrite { offset } => {
                write!(f, "hostmem: write over the live completion word at offset {offset:#x}")
            }
            Self::CompletionWordUnsupported => {
                f.write_str("hostmem: completion words requested but VIRTIO_HOSTMEM_F_COMPLETION_WORD not negotiated")
            }
            Self::NoCompletionWord { instance_id } => {
                write!(f, "hostmem instance {instance_id} was created without a completion word")
            }
            Self::SeqNotSent { instance_id, seq, last_sent } => {
                write!(f, "hostmem instance {instance_id}: seq {seq} was never sent (last {last_sent})")
            }
            Self::QueueFull { queue } => write!(f, "hostmem notification queue {queue} is full"),
        }
    }
}

impl core::error::Error for HostmemError {}

impl From<MmioError> for HostmemError {
    fn from(error: MmioError) -> Self {
        Self::Transport(error)
    }
}

impl From<InterruptError> for HostmemError {
    fn from(error: InterruptError) -> Self {
        Self::Interrupt(error)
    }
}
