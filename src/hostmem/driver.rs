//! The driver: probe, queues, instances, notifications, events.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::time::Duration;

use hostmem_wire::zerocopy::{FromBytes, IntoBytes};
use hostmem_wire::{
    CONFIG_SIZE, Config, ConfigRequest, ConfigResponse, DEVICE_ID_DEFAULT, METADATA_SIZE,
    Notification as WireNotification, Request, Status, SubdeviceEntry, WireError, check_completion_word, check_range,
    feature, validate_entries,
};
use virtio_drivers::Hal;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::DeviceStatus;

use super::counters::Counters;
use super::error::{HostmemError, UsedReason};
use super::region::RegionMemory;
use super::validate::{
    Event, EventKind, InstanceView, OwnedRanges, check_completion_value, check_config, check_created, check_event,
    check_regions, check_response, check_shm, clamp_used, identify,
};
use super::wait::{WAIT_SLICE, Wakeup};
use crate::dma::{self, PoolId};
use crate::platform::Range;
use crate::time::Deadline;
use crate::virtio::transport::{ProbedTransport, TransportError, VirtioTransport};

/// Descriptors of the config queue: one request (two descriptors) at a time.
pub const CONFIG_QUEUE_SIZE: usize = 4;
/// Descriptors of the event queue, the most event buffers the driver posts.
pub const EVENT_QUEUE_SIZE: usize = 16;
/// Descriptors of each notification queue: notifications in flight per
/// instance.
pub const NOTIFY_QUEUE_SIZE: usize = 16;

const REQUEST_LEN: usize = size_of::<ConfigRequest>();
const RESPONSE_LEN: usize = size_of::<ConfigResponse>();
const NOTIFICATION_LEN: usize = size_of::<WireNotification>();
const EVENT_LEN: usize = size_of::<hostmem_wire::Event>();

/// Pages of one split virtqueue of these sizes: virtio-drivers allocates
/// the descriptor table with the available ring, and the used ring, as two
/// allocations of one page each.
const PAGES_PER_QUEUE: usize = 2;
const PAGE: usize = dma::PAGE_SIZE as usize;

const fn queue_fits_two_pages(size: usize) -> bool {
    let descriptors_and_avail = 16 * size + 2 * (3 + size);
    let used = 2 * 3 + 8 * size;
    descriptors_and_avail <= PAGE && used <= PAGE
}
const _: () = assert!(queue_fits_two_pages(CONFIG_QUEUE_SIZE));
const _: () = assert!(queue_fits_two_pages(EVENT_QUEUE_SIZE));
const _: () = assert!(queue_fits_two_pages(NOTIFY_QUEUE_SIZE));
// Every message bounces through exactly one pool page.
const _: () = assert!(REQUEST_LEN <= PAGE && RESPONSE_LEN <= PAGE && NOTIFICATION_LEN <= PAGE && EVENT_LEN <= PAGE);

/// Validated events kept for `wait_event` before the driver stops taking
/// more from the used ring (the device then drops and counts them).
const PENDING_LIMIT: usize = 2 * EVENT_QUEUE_SIZE;

/// What the architecture's page tables can map.
#[cfg(all(target_os = "none", not(test)))]
const MAPPABLE_END: u64 = crate::arch::mmu::ADDRESS_SPACE_END;

/// How to probe and run the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The virtio device id to accept (docs/hostmem.md §3); the config magic
    /// is checked as well.
    pub device_id: u32,
    /// Notification queues to set up, i.e. instances that can be live at
    /// once; capped at the device's `max_instances`, at least 1. Each costs
    /// two pool pages.
    pub instances: u32,
    /// Event buffers kept posted (1 ..= [`EVENT_QUEUE_SIZE`]); each holds a
    /// pool page while posted.
    pub event_buffers: usize,
    /// The most sub-devices accepted (each beyond the 6 in config space is
    /// one QUERY_SUBDEVICE at probe).
    pub max_subdevices: u32,
    /// Timeout of each config-queue request (CREATE, DESTROY, QUERY, PING).
    pub request_timeout: Duration,
    /// Wait for the device's interrupt rather than spin (bare-metal
    /// `Hostmem::new` only).
    pub interrupts: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            device_id: DEVICE_ID_DEFAULT,
            instances: 4,
            event_buffers: 8,
            max_subdevices: 64,
            request_timeout: Duration::from_secs(2),
            interrupts: true,
        }
    }
}

/// A sub-device of this device, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subdevice(u32);

impl Subdevice {
    /// The sub-device index (docs/hostmem.md §2.1).
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A sub-device as the device describes it, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubdeviceInfo {
    /// Its index (what [`Subdevice`] holds).
    pub index: u32,
    /// Who defines the sub-device's protocol.
    pub vendor_id: u32,
    /// The sub-device type, within the vendor's.
    pub device_id: u32,
    /// The protocol revision the device implements.
    pub revision: u32,
    /// The shared memory region id of its region.
    pub shmid: u32,
    /// Guest-physical range of its region.
    pub region: Range,
    /// At most one live instance (SUBDEVICE_F_EXCLUSIVE).
    pub exclusive: bool,
}

impl SubdeviceInfo {
    /// The handle to pass to [`Hostmem`] methods.
    pub fn subdevice(&self) -> Subdevice {
        Subdevice(self.index)
    }

    fn from_entry(index: u32, entry: &SubdeviceEntry) -> Self {
        Self {
            index,
            vendor_id: entry.vendor_id.get(),
            device_id: entry.device_id.get(),
            revision: entry.revision.get(),
            shmid: entry.shmid.get(),
            // Validated: non-empty and not wrapping.
            region: Range { base: entry.region_base.get(), size: entry.region_len.get() },
            exclusive: entry.flags.get() & SubdeviceEntry::F_EXCLUSIVE != 0,
        }
    }
}

/// A live instance. Not `Clone`: [`Hostmem::destroy_instance`] consumes it.
#[derive(Debug)]
pub struct Instance {
    id: u32,
    subdevice: Subdevice,
    completion_offset: Option<u64>,
    serial: u64,
}

impl Instance {
    /// The instance id the device assigned.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The sub-device it is an instance of.
    pub fn subdevice(&self) -> Subdevice {
        self.subdevice
    }

    /// Offset of its completion word in the region, if it has one.
    pub fn completion_offset(&self) -> Option<u64> {
        self.completion_offset
    }
}

/// A notification to send; the driver adds the instance and `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Sub-device-specific operation.
    pub opcode: u32,
    /// The data's range in the region (checked before sending).
    pub offset: u64,
    /// The data's length in bytes.
    pub size: u64,
    /// Sub-device-specific.
    pub metadata: [u8; METADATA_SIZE],
    /// Ask for a COMPLETION event (NOTIFY_F_EVENT). Without
    /// EVENT_SUPPRESS negotiated the device sends one anyway; failures are
    /// always reported by an ERROR event.
    pub want_event: bool,
}

/// What the driver tracks per live instance.
#[derive(Clone, Copy, Debug)]
struct InstanceState {
    subdevice: u32,
    serial: u64,
    completion_offset: Option<u64>,
    last_sent: u64,
    last_word: u64,
    lost: Option<Status>,
    /// DESTROY sent but not answered (it timed out).
    destroying: bool,
}

struct ConfigInFlight {
    token: u16,
    request: Request,
    request_bytes: Box<[u8; REQUEST_LEN]>,
    response_bytes: Box<[u8; RESPONSE_LEN]>,
}

struct EventSlot {
    buffer: Box<[u8; EVENT_LEN]>,
    /// The chain while posted.
    token: Option<u16>,
}

struct NotifyQueue<H: Hal> {
    queue: VirtQueue<H, NOTIFY_QUEUE_SIZE>,
    /// Buffers the device has not given back yet.
    in_flight: Vec<(u16, Box<[u8; NOTIFICATION_LEN]>)>,
    /// Chains that carry their data ([`Hostmem::notify_with_buffers`]), in
    /// the order they were made available.
    with_buffers: VecDeque<BufferChain>,
}

/// A notification chain with data buffers: notification and input
/// device-readable, output device-writable.
struct BufferChain {
    token: u16,
    /// The instance's serial, so a later instance on the queue never gets it.
    serial: u64,
    seq: u64,
    notification: Box<[u8; NOTIFICATION_LEN]>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The used length, clamped to the output, once the device used it.
    used: Option<usize>,
}

/// Everything the device may access in guest memory. Freed only after the
/// device was reset (or leaked if the reset did not complete).
struct Rings<H: Hal> {
    config: VirtQueue<H, CONFIG_QUEUE_SIZE>,
    config_in_flight: Option<ConfigInFlight>,
    event: VirtQueue<H, EVENT_QUEUE_SIZE>,
    event_slots: Vec<EventSlot>,
    notify: Vec<NotifyQueue<H>>,
}

/// The hostmem driver for one device.
///
/// `H` must be the Hal of the device's DMA pool (use
/// [`crate::with_pool_hal!`] to name it from `Device::pool`): every
/// ring and message buffer comes from that pool, and the driver reserves
/// pool room before each buffer it hands over, so an exhausted pool is an
/// error, never a fatal exit inside virtio-drivers.
///
/// Dropping it resets the device, then frees the rings. Pool pages that
/// bounce buffers still held at that moment (posted event buffers,
/// notifications the device had not used) stay allocated: the pool offers
/// no way to name them.
///
/// Generic over [`VirtioTransport`] so it runs on virtio-mmio and
/// virtio-pci alike, and its tests on fake register files; images get a
/// [`ProbedTransport`] from probing (see `src/virtio/transport.rs` for why
/// an enum there and a trait here).
pub struct Hostmem<H: Hal, T: VirtioTransport = ProbedTransport> {
    transport: ManuallyDrop<T>,
    rings: ManuallyDrop<Rings<H>>,
    pool: PoolId,
    features: u64,
    max_instances: u32,
    entries: Vec<SubdeviceEntry>,
    subdevices: Vec<SubdeviceInfo>,
    regions: Vec<RegionMemory>,
    /// By instance id; as long as the number of notification queues set up.
    instances: Vec<Option<InstanceState>>,
    pending: VecDeque<Event>,
    /// Instances a late CREATE answer created; destroyed before the next
    /// request.
    orphans: Vec<u32>,
    counters: Counters,
    wakeup: Option<Box<dyn Wakeup>>,
    irq_base: u32,
    next_serial: u64,
    request_timeout: Duration,
    /// Still probing, or refused: on drop, mark the device FAILED.
    refused: bool,
}

#[cfg(target_os = "none")]
impl<H: Hal> Hostmem<H, ProbedTransport> {
    /// Probes `device` (from [`crate::virtio::probe::devices`]): checks the
    /// id and config magic, negotiates, validates config space against the
    /// memory `boot` says the guest owns, sets up the queues in the device's
    /// pool, maps every region and binds the interrupt (if
    /// [`Options::interrupts`]).
    ///
    /// On error the device is refused: its queues are freed, a device that
    /// is not a hostmem device is left untouched, and one that was claimed
    /// is reset and marked FAILED. Regions already mapped stay mapped (the
    /// page tables only grow); they are outside everything the guest owns,
    /// which was checked before any was mapped.
    pub fn new(
        device: crate::virtio::probe::Device,
        boot: &crate::Boot,
        options: Options,
    ) -> Result<Self, HostmemError> {
        if device.device_id != options.device_id {
            let found = device.device_id;
            // Not ours: dropping the transport would reset it.
            core::mem::forget(device.transport);
            return Err(HostmemError::WrongDeviceId { expected: options.device_id, found });
        }
        // Identify before binding the interrupt: a foreign device keeps its
        // line to itself.
        let before = match read_config(&device.transport).map_err(HostmemError::from).and_then(|config| {
            identify(&config)?;
            Ok(config)
        }) {
            Ok(config) => config,
            Err(error) => {
                core::mem::forget(device.transport);
                return Err(error);
            }
        };
        let owned = OwnedRanges::from_boot(boot);
        let wakeup: Option<Box<dyn Wakeup>> = match (options.interrupts, device.interrupt) {
            (true, Some(_)) => match crate::virtio::irq::bind(&device) {
                Ok(line) => Some(Box::new(super::wait::BoundIrq(line))),
                Err(error) => {
                    core::mem::forget(device.transport);
                    return Err(HostmemError::Interrupt(error));
                }
            },
            (true, None) => {
                log::warn!("hostmem: the device has no interrupt line; polling");
                None
            }
            (false, _) => None,
        };
        Self::probe(device.transport, device.pool, &owned, options, wakeup, Some(before))
    }
}

impl<H: Hal, T: VirtioTransport> Hostmem<H, T> {
    /// Probes the device behind `transport` (see `Hostmem::new`, which is
    /// this plus the owned ranges from `Boot` and the interrupt line).
    /// `pool` is the DMA pool `H` allocates from; `owned` is the
    /// memory no region may overlap; `wakeup` is how to wait for the device
    /// (`None`: spin).
    ///
    /// Regions are added to the page table on the bare-metal runtime only.
    pub fn from_transport(
        transport: T,
        pool: PoolId,
        owned: &OwnedRanges,
        options: Options,
        wakeup: Option<Box<dyn Wakeup>>,
    ) -> Result<Self, HostmemError> {
        Self::probe(transport, pool, owned, options, wakeup, None)
    }

    /// [`Self::from_transport`], with the config snapshot taken to identify
    /// the device if the caller has one.
    fn probe(
        mut transport: T,
        pool: PoolId,
        owned: &OwnedRanges,
        options: Options,
        wakeup: Option<Box<dyn Wakeup>>,
        identified: Option<Config>,
    ) -> Result<Self, HostmemError> {
        transport.limit_config_size(CONFIG_SIZE);
        if transport.device_id() != options.device_id {
            let found = transport.device_id();
            core::mem::forget(transport);
            return Err(HostmemError::WrongDeviceId { expected: options.device_id, found });
        }
        // Identify before touching the status register: the id may belong
        // to another device type (docs/hostmem.md §3). Left untouched if so.
        let before = match identified.map_or_else(|| read_config(&transport).map_err(HostmemError::from), Ok) {
            Ok(config) => config,
            Err(error) => {
                core::mem::forget(transport);
                return Err(error);
            }
        };
        if let Err(error) = identify(&before) {
            core::mem::forget(transport);
            return Err(error);
        }

        // Claimed from here: failures reset the device and mark it FAILED.
        let requested = feature::mask(feature::COMPLETION_WORD)
            | feature::mask(feature::EVENT_SUPPRESS)
            | feature::mask(feature::VERSION_1)
            | feature::mask(feature::ACCESS_PLATFORM);
        let negotiated = match transport.negotiate(requested, true) {
            Ok(negotiated) => negotiated,
            Err(error) => return Err(refuse(transport, error.into())),
        };
        if negotiated.access_platform_missing() {
            log::warn!("hostmem: device does not offer VIRTIO_F_ACCESS_PLATFORM; its buffers stay in the pool anyway");
        }
        // The snapshot to use is the one after FEATURES_OK (§6.4).
        let config = match read_config(&transport) {
            Ok(config) if config.as_bytes() == before.as_bytes() => config,
            Ok(_) => return Err(refuse(transport, HostmemError::ConfigChanged)),
            Err(error) => return Err(refuse(transport, error.into())),
        };
        if let Err(error) = check_config(&config, owned, options.max_subdevices) {
            return Err(refuse(transport, error));
        }
        let max_instances = config.max_instances.get();
        let queues = options.instances.clamp(1, max_instances);
        let event_buffers = options.event_buffers.clamp(1, EVENT_QUEUE_SIZE);

        // Every allocation the probe makes, checked up front: rings, event
        // buffers and one config request (QUERY_SUBDEVICE).
        let ring_pages = PAGES_PER_QUEUE * (2 + queues as usize);
        if let Err(error) = check_pool(pool, ring_pages + event_buffers + 2) {
            return Err(refuse(transport, error));
        }
        let free_before = pool.free_pages();
        let rings = match create_rings::<H, T>(&mut transport, queues, event_buffers) {
            Ok(rings) => rings,
            Err(error) => return Err(refuse(transport, error)),
        };
        let irq_base = wakeup.as_ref().map_or(0, |wakeup| wakeup.count());
        let mut hostmem = Self {
            transport: ManuallyDrop::new(transport),
            rings: ManuallyDrop::new(rings),
            pool,
            features: negotiated.accepted,
            max_instances,
            entries: config.entries().to_vec(),
            subdevices: Vec::new(),
            regions: Vec::new(),
            instances: (0..queues).map(|_| None).collect(),
            pending: VecDeque::new(),
            orphans: Vec::new(),
            counters: Counters::default(),
            wakeup,
            irq_base,
            next_serial: 1,
            request_timeout: options.request_timeout,
            refused: true,
        };
        // From here, an error drops `hostmem`, which resets the device before
        // freeing the rings and marks it FAILED.
        if free_before.saturating_sub(pool.free_pages()) != ring_pages {
            return Err(HostmemError::HalNotOfPool { pool });
        }
        hostmem.bring_up(&config, owned)?;
        hostmem.refused = false;
        Ok(hostmem)
    }

    /// docs/hostmem.md §7 steps 6 to 9, plus posting event buffers.
    fn bring_up(&mut self, config: &Config, owned: &OwnedRanges) -> Result<(), HostmemError> {
        for notify in &mut self.rings.notify {
            // Notification buffers are reaped lazily; no interrupt needed.
            notify.queue.set_dev_notify(false);
        }
        self.transport.finish_init();
        if let Some(error) = self.transport.init_error() {
            return Err(error.into());
        }

        // Sub-devices beyond config space.
        for index in u32::from(config.entries_present.get())..config.num_subdevices.get() {
            let response = self.config_roundtrip(Request::QuerySubdevice { subdevice_index: index })?;
            self.entries.push(response.subdevice);
        }
        validate_entries(&self.entries).map_err(HostmemError::Config)?;
        check_regions(&self.entries, owned)?;
        for entry in &self.entries {
            // Validated: shmid <= 255.
            let shmid = u8::try_from(entry.shmid.get()).unwrap_or(u8::MAX);
            check_shm(entry, self.transport.shared_memory_region(shmid))?;
        }
        self.subdevices =
            (0u32..).zip(&self.entries).map(|(index, entry)| SubdeviceInfo::from_entry(index, entry)).collect();
        self.map_regions()?;

        let mut posted = false;
        for index in 0..self.rings.event_slots.len() {
            posted |= self.post_event_buffer(index)?;
        }
        if posted {
            self.doorbell_if_needed(hostmem_wire::EVENT_QUEUE);
        }
        Ok(())
    }

    /// Maps every region (normal memory, never executable) and wraps it.
    fn map_regions(&mut self) -> Result<(), HostmemError> {
        #[cfg(all(target_os = "none", not(test)))]
        {
            use crate::arch::mmu;
            // Checked for all before the first is mapped: mappings cannot be
            // taken back.
            super::validate::check_mappable(&self.entries, MAPPABLE_END)?;
            for info in &self.subdevices {
                mmu::map(info.region, mmu::Kind::Data)
                    .map_err(|error| HostmemError::Map { shmid: info.shmid, error })?;
            }
        }
        let mut regions = Vec::with_capacity(self.subdevices.len());
        for info in &self.subdevices {
            let base = usize::try_from(info.region.base).ok().and_then(|base| core::ptr::NonNull::new(base as *mut u8));
            let Some(base) = base else {
                return Err(HostmemError::BadRegion {
                    shmid: info.shmid,
                    reason: super::error::RegionReason::BeyondAddressSpace { end: info.region.end(), limit: 0 },
                });
            };
            // SAFETY: the region was checked to be clear of everything the
            // guest owns and of the other regions, is mapped as normal memory
            // (identity map), is 4 KiB aligned, and only this value (and the
            // device) accesses it while the driver lives.
            regions.push(unsafe { RegionMemory::new(base, info.region.size, info.shmid) });
        }
        self.regions = regions;
        Ok(())
    }

    // --- queries ---

    /// Every sub-device, by index.
    pub fn subdevices(&self) -> &[SubdeviceInfo] {
        &self.subdevices
    }

    /// The first sub-device with this vendor and device id (check
    /// [`SubdeviceInfo::revision`] with [`Self::subdevice_info`]).
    pub fn find_subdevice(&self, vendor_id: u32, device_id: u32) -> Result<Subdevice, HostmemError> {
        self.subdevices
            .iter()
            .find(|info| info.vendor_id == vendor_id && info.device_id == device_id)
            .map(|info| Subdevice(info.index))
            .ok_or(HostmemError::NoSuchSubdevice { vendor_id, device_id })
    }

    /// What the device said about `subdevice`; [`HostmemError::UnknownSubdevice`]
    /// for a handle of another device.
    pub fn subdevice_info(&self, subdevice: Subdevice) -> Result<&SubdeviceInfo, HostmemError> {
        self.subdevices.get(subdevice.0 as usize).ok_or(HostmemError::UnknownSubdevice(subdevice.0))
    }

    /// The sub-device's mapped region.
    pub fn region(&self, subdevice: Subdevice) -> Result<&RegionMemory, HostmemError> {
        self.regions.get(subdevice.0 as usize).ok_or(HostmemError::UnknownSubdevice(subdevice.0))
    }

    /// `max_instances` from config space.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Instances that can be live at once (notification queues set up).
    pub fn instance_slots(&self) -> u32 {
        self.instances.len() as u32
    }

    /// Whether VIRTIO_HOSTMEM_F_COMPLETION_WORD was negotiated.
    pub fn completion_words(&self) -> bool {
        self.features & feature::mask(feature::COMPLETION_WORD) != 0
    }

    /// Whether VIRTIO_HOSTMEM_F_EVENT_SUPPRESS was negotiated (otherwise
    /// every notification gets a COMPLETION event).
    pub fn event_suppression(&self) -> bool {
        self.features & feature::mask(feature::EVENT_SUPPRESS) != 0
    }

    /// The feature bits written to the device.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Changes the timeout of config-queue requests
    /// ([`Options::request_timeout`]).
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Totals so far.
    pub fn counters(&self) -> Counters {
        let mut counters = self.counters;
        counters.interrupts =
            self.wakeup.as_ref().map_or(0, |wakeup| wakeup.count().wrapping_sub(self.irq_base)).into();
        counters
    }

    // --- config queue ---

    /// Checks that the config queue is served (PING with `cookie`).
    pub fn ping(&mut self, cookie: u64) -> Result<(), HostmemError> {
        self.config_request(Request::Ping { cookie }).map(|_| ())
    }

    /// Creates an instance of `subdevice`, with its completion word at
    /// `completion_offset` in the region if given (8-byte aligned, needs
    /// [`Self::completion_words`]).
    pub fn create_instance(
        &mut self,
        subdevice: Subdevice,
        completion_offset: Option<u64>,
    ) -> Result<Instance, HostmemError> {
        let region = self.region(subdevice)?;
        if let Some(offset) = completion_offset {
            if !self.completion_words() {
                return Err(HostmemError::CompletionWordUnsupported);
            }
            check_completion_word(region.len(), offset).map_err(HostmemError::Range)?;
            if region.overlaps_guarded_word(offset) {
                return Err(HostmemError::Range(WireError::Overlap { what: "completion word of a live instance" }));
            }
        }
        let response = self.config_request(Request::Create { subdevice_index: subdevice.0, completion_offset })?;
        let id = response.instance_id.get();
        let live = self.instances.get(id as usize).is_some_and(Option::is_some);
        if let Err(error) = check_created(id, self.instance_slots(), live) {
            if !live {
                // Give the id back; its answer does not matter any more.
                self.orphans.push(id);
            }
            return Err(error);
        }
        // Buffers of an earlier instance on this queue are all used by now
        // (DESTROY waits for them, §8.4).
        if let Err(error) = self.reap_notify(id) {
            self.orphans.push(id);
            return Err(error);
        }
        if let Some(offset) = completion_offset {
            // The device zeroed the word before answering (§8.4).
            let value = self.region(subdevice)?.load_acquire_u64(offset)?;
            if let Err(error) = check_completion_value(id, value, 0, 0) {
                self.orphans.push(id);
                return Err(error);
            }
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        if let Some(slot) = self.instances.get_mut(id as usize) {
            *slot = Some(InstanceState {
                subdevice: subdevice.0,
                serial,
                completion_offset,
                last_sent: 0,
                last_word: 0,
                lost: None,
                destroying: false,
            });
        }
        if let (Some(offset), Some(region)) = (completion_offset, self.regions.get_mut(subdevice.0 as usize)) {
            region.guard(offset);
        }
        Ok(Instance { id, subdevice, completion_offset, serial })
    }

    /// Destroys `instance` (live or lost). Its pending events are dropped.
    /// If the answer times out the instance stays reserved until the late
    /// answer is read.
    pub fn destroy_instance(&mut self, instance: Instance) -> Result<(), HostmemError> {
        let state = self.state_mut(&instance)?;
        state.destroying = true;
        match self.config_request(Request::Destroy { instance_id: instance.id }) {
            Ok(_) => {
                self.forget_instance(instance.id);
                self.reap_notify(instance.id)
            }
            Err(error @ HostmemError::Refused { .. }) => {
                // The device does not hold the instance (BAD_INSTANCE), or
                // will not let it go: either way the handle is spent.
                self.forget_instance(instance.id);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    fn forget_instance(&mut self, id: u32) {
        let Some(state) = self.instances.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        if let (Some(offset), Some(region)) = (state.completion_offset, self.regions.get_mut(state.subdevice as usize))
        {
            region.unguard(offset);
        }
        self.pending.retain(|event| event.instance_id != id);
    }

    /// A request with orphan clean-up first.
    fn config_request(&mut self, request: Request) -> Result<ConfigResponse, HostmemError> {
        self.reap_config()?;
        while let Some(&id) = self.orphans.last() {
            let outcome = self.config_roundtrip(Request::Destroy { instance_id: id });
            // A busy queue sent nothing: the id stays for the next request.
            if let Err(HostmemError::ConfigQueueBusy) = outcome {
                return Err(HostmemError::ConfigQueueBusy);
            }
            self.orphans.pop();
            match outcome {
                Ok(_) | Err(HostmemError::Refused { .. }) => {}
                // Sent: a late answer is reaped like any other.
                Err(error @ HostmemError::Timeout { .. }) => return Err(error),
                Err(error) => log::warn!("hostmem: destroying orphaned instance {id}: {error}"),
            }
        }
        self.config_roundtrip(request)
    }

    /// One request and its response, within the request timeout.
    fn config_roundtrip(&mut self, request: Request) -> Result<ConfigResponse, HostmemError> {
        self.reap_config()?;
        if self.rings.config_in_flight.is_some() {
            return Err(HostmemError::ConfigQueueBusy);
        }
        let before = self.bounced();
        self.reserve(&[REQUEST_LEN, RESPONSE_LEN])?;
        let mut request_bytes = Box::new([0u8; REQUEST_LEN]);
        request_bytes.copy_from_slice(request.encode().as_bytes());
        let mut response_bytes = Box::new([0u8; RESPONSE_LEN]);
        // SAFETY: both boxes go into `config_in_flight` and are not touched
        // until `pop_config` hands them back to `pop_used`.
        let added = unsafe { self.rings.config.add(&[&request_bytes[..]], &mut [&mut response_bytes[..]]) };
        let token = match added {
            Ok(token) => token,
            Err(error) => {
                self.release_reservations();
                return Err(HostmemError::Queue { queue: hostmem_wire::CONFIG_QUEUE as u16, error });
            }
        };
        self.rings.config_in_flight = Some(ConfigInFlight { token, request, request_bytes, response_bytes });
        self.counters.config_requests += 1;
        self.doorbell_if_needed(hostmem_wire::CONFIG_QUEUE);
        self.account(before, REQUEST_LEN);

        let deadline = Deadline::after(self.request_timeout);
        loop {
            let seen = self.irq_count();
            if self.rings.config.can_pop() {
                break;
            }
            if deadline.passed() {
                return Err(HostmemError::Timeout { what: "a config-queue response" });
            }
            self.pause(seen, true);
        }
        let (request, used, response_bytes) = self.pop_config()?;
        let known = self.known_entry(&request);
        check_response(&response_bytes[..], used, &request, self.max_instances, known.as_ref())
    }

    fn known_entry(&self, request: &Request) -> Option<SubdeviceEntry> {
        match *request {
            Request::Create { subdevice_index, .. } | Request::QuerySubdevice { subdevice_index } => {
                self.entries.get(subdevice_index as usize).copied()
            }
            _ => None,
        }
    }

    /// Pops the request in flight (which must be next on the used ring).
    fn pop_config(&mut self) -> Result<(Request, u32, Box<[u8; RESPONSE_LEN]>), HostmemError> {
        let queue = hostmem_wire::CONFIG_QUEUE as u16;
        let Some(in_flight) = self.rings.config_in_flight.take() else {
            return Err(HostmemError::BadUsed { queue, reason: UsedReason::Pop(virtio_drivers::Error::NotReady) });
        };
        match self.rings.config.peek_used() {
            Some(token) if token == in_flight.token => {}
            other => {
                self.rings.config_in_flight = Some(in_flight);
                let reason = match other {
                    Some(token) => UsedReason::UnknownToken(token),
                    None => UsedReason::Pop(virtio_drivers::Error::NotReady),
                };
                return Err(HostmemError::BadUsed { queue, reason });
            }
        }
        let before = self.bounced();
        let ConfigInFlight { token, request, request_bytes, mut response_bytes } = in_flight;
        let inputs = [&request_bytes[..]];
        let mut outputs = [&mut response_bytes[..]];
        // SAFETY: the same buffers `add` got for this token.
        let popped = unsafe { self.rings.config.pop_used(token, &inputs, &mut outputs) };
        self.account(before, RESPONSE_LEN);
        match popped {
            Ok(used) => Ok((request, used, response_bytes)),
            Err(error) => Err(HostmemError::BadUsed { queue, reason: UsedReason::Pop(error) }),
        }
    }

    /// Collects the late answer to a request that timed out, if it came.
    fn reap_config(&mut self) -> Result<(), HostmemError> {
        if self.rings.config_in_flight.is_none() || !self.rings.config.can_pop() {
            return Ok(());
        }
        let (request, used, response_bytes) = self.pop_config()?;
        let known = self.known_entry(&request);
        let result = check_response(&response_bytes[..], used, &request, self.max_instances, known.as_ref());
        match (request, result) {
            (Request::Create { .. }, Ok(response)) => {
                let id = response.instance_id.get();
                let live = self.instances.get(id as usize).is_some_and(Option::is_some);
                if !live {
                    self.orphans.push(id);
                }
            }
            (Request::Destroy { instance_id }, Ok(_) | Err(HostmemError::Refused { .. }))
                if self
                    .instances
                    .get(instance_id as usize)
                    .is_some_and(|state| state.is_some_and(|s| s.destroying)) =>
            {
                self.forget_instance(instance_id);
            }
            (_, Err(error)) => log::warn!("hostmem: late config-queue answer: {error}"),
            _ => {}
        }
        Ok(())
    }

    // --- notifications ---

    /// Sends a notification on `instance`'s queue and returns its `seq`.
    /// The range is checked against the region first. Region writes made
    /// before this call are visible to the device (the ring update orders
    /// them). Does not wait: [`HostmemError::QueueFull`] when
    /// [`NOTIFY_QUEUE_SIZE`] notifications are still unread by the device.
    pub fn notify(&mut self, instance: &Instance, notification: Notification) -> Result<u64, HostmemError> {
        let state = *self.state(instance)?;
        if let Some(status) = state.lost {
            return Err(HostmemError::InstanceLost { instance_id: instance.id, status });
        }
        let region_len = self.region(instance.subdevice)?.len();
        check_range(region_len, notification.offset, notification.size).map_err(HostmemError::Range)?;
        let seq = state.last_sent.checked_add(1).ok_or(HostmemError::SeqNotSent {
            instance_id: instance.id,
            seq: u64::MAX,
            last_sent: state.last_sent,
        })?;
        self.reap_notify(instance.id)?;
        let queue_index = notify_queue_index(instance.id);
        let Some(notify) = self.rings.notify.get_mut(instance.id as usize) else {
            return Err(HostmemError::StaleInstance { instance_id: instance.id });
        };
        if notify.queue.available_desc() == 0 {
            return Err(HostmemError::QueueFull { queue: queue_index });
        }
        let flags = if notification.want_event { WireNotification::F_EVENT } else { 0 };
        let wire = WireNotification::new(
            instance.id,
            notification.opcode,
            flags,
            seq,
            notification.offset,
            notification.size,
            notification.metadata,
        );
        let mut bytes = Box::new([0u8; NOTIFICATION_LEN]);
        bytes.copy_from_slice(wire.as_bytes());

        let before = self.bounced();
        self.reserve(&[NOTIFICATION_LEN])?;
        let Some(notify) = self.rings.notify.get_mut(instance.id as usize) else {
            return Err(HostmemError::StaleInstance { instance_id: instance.id });
        };
        // SAFETY: the box goes into `in_flight` and is not touched until
        // `reap_notify` hands it back to `pop_used`.
        let added = unsafe { notify.queue.add(&[&bytes[..]], &mut []) };
        let token = match added {
            Ok(token) => token,
            Err(error) => {
                self.release_reservations();
                return Err(HostmemError::Queue { queue: queue_index, error });
            }
        };
        notify.in_flight.push((token, bytes));
        self.doorbell_if_needed(u32::from(queue_index));
        self.account(before, NOTIFICATION_LEN);
        self.counters.notifications += 1;
        if let Some(Some(state)) = self.instances.get_mut(instance.id as usize) {
            state.last_sent = seq;
        }
        Ok(seq)
    }

    /// Takes back the notification buffers the device has used.
    fn reap_notify(&mut self, id: u32) -> Result<(), HostmemError> {
        let queue = notify_queue_index(id);
        let Some(notify) = self.rings.notify.get_mut(id as usize) else {
            return Ok(());
        };
        while let Some(token) = notify.queue.peek_used() {
            let Some(position) = notify.in_flight.iter().position(|(t, _)| *t == token) else {
                let Some(chain) = notify.with_buffers.iter_mut().find(|c| c.token == token && c.used.is_none()) else {
                    return Err(HostmemError::BadUsed { queue, reason: UsedReason::UnknownToken(token) });
                };
                let before = self.pool.stats().bytes_bounced;
                // As `notify_with_buffers` added them (no empty input).
                let inputs: &[&[u8]] = if chain.input.is_empty() {
                    &[&chain.notification[..]]
                } else {
                    &[&chain.notification[..], &chain.input[..]]
                };
                let mut outputs = [&mut chain.output[..]];
                // SAFETY: the buffers `add` got for this token, untouched
                // since (owned by the chain). Unsharing copies the output
                // back from its bounce buffer.
                let popped = unsafe { notify.queue.pop_used(token, inputs, &mut outputs) };
                // Only the output is copied back, and it is payload.
                let bounced = self.pool.stats().bytes_bounced.saturating_sub(before);
                self.counters.bytes_copied_by_transport += bounced;
                self.counters.payload_bytes_copied_by_transport += bounced;
                match popped {
                    // The device's used length is not trusted.
                    Ok(used) => chain.used = Some(clamp_used(used, chain.output.len())),
                    Err(error) => return Err(HostmemError::BadUsed { queue, reason: UsedReason::Pop(error) }),
                }
                continue;
            };
            let (token, bytes) = notify.in_flight.swap_remove(position);
            let inputs = [&bytes[..]];
            // SAFETY: the buffer `add` got for this token. The used length
            // is ignored: the device writes nothing into notifications.
            let popped = unsafe { notify.queue.pop_used(token, &inputs, &mut []) };
            if let Err(error) = popped {
                notify.in_flight.push((token, bytes));
                return Err(HostmemError::BadUsed { queue, reason: UsedReason::Pop(error) });
            }
        }
        Ok(())
    }

    /// Sends a notification whose data travels in its own chain, the
    /// conventional virtio way (docs/hostmem.md appendix A.3): the chain is
    /// [notification | `input`] device-readable, then `output`
    /// device-writable. Both buffers are bounced through the DMA pool (the
    /// input copied in now, the output copied back when the chain is
    /// completed), unlike region data. `offset` and `size` of
    /// `notification` must be zero. The driver keeps both buffers until
    /// [`Self::complete_with_buffers`] returns them. Returns the `seq`; does
    /// not wait ([`HostmemError::QueueFull`] without room for 3 more
    /// descriptors, [`HostmemError::PoolExhausted`] without room in the
    /// pool for the bounces).
    pub fn notify_with_buffers(
        &mut self,
        instance: &Instance,
        notification: Notification,
        input: Vec<u8>,
        output: Vec<u8>,
    ) -> Result<u64, HostmemError> {
        let state = *self.state(instance)?;
        if let Some(status) = state.lost {
            return Err(HostmemError::InstanceLost { instance_id: instance.id, status });
        }
        if notification.offset != 0 || notification.size != 0 {
            return Err(HostmemError::Range(WireError::NonZeroField { field: "Notification.offset/size" }));
        }
        if output.is_empty() {
            return Err(HostmemError::Range(WireError::ShortBuffer { needed: 1, got: 0 }));
        }
        let seq = state.last_sent.checked_add(1).ok_or(HostmemError::SeqNotSent {
            instance_id: instance.id,
            seq: u64::MAX,
            last_sent: state.last_sent,
        })?;
        self.reap_notify(instance.id)?;
        let queue_index = notify_queue_index(instance.id);
        let Some(notify) = self.rings.notify.get_mut(instance.id as usize) else {
            return Err(HostmemError::StaleInstance { instance_id: instance.id });
        };
        if notify.queue.available_desc() < 3 {
            return Err(HostmemError::QueueFull { queue: queue_index });
        }
        let flags = if notification.want_event { WireNotification::F_EVENT } else { 0 };
        let wire = WireNotification::new(instance.id, notification.opcode, flags, seq, 0, 0, notification.metadata);
        let mut bytes = Box::new([0u8; NOTIFICATION_LEN]);
        bytes.copy_from_slice(wire.as_bytes());

        let before = self.bounced();
        // The pool hands a bounce the first reservation at least as large,
        // in order, and swaps the last one into its place: reserving
        // [notification, output, input] gives each of the bounces
        // virtio-drivers makes (notification, input, output) its own.
        let mut lens = Vec::from([NOTIFICATION_LEN, output.len()]);
        if !input.is_empty() {
            lens.push(input.len());
        }
        if let Err(error) = self.reserve(&lens) {
            self.release_reservations();
            return Err(error);
        }
        let mut chain =
            BufferChain { token: 0, serial: state.serial, seq, notification: bytes, input, output, used: None };
        let Some(notify) = self.rings.notify.get_mut(instance.id as usize) else {
            return Err(HostmemError::StaleInstance { instance_id: instance.id });
        };
        let added = {
            let inputs: &[&[u8]] = if chain.input.is_empty() {
                &[&chain.notification[..]]
            } else {
                &[&chain.notification[..], &chain.input[..]]
            };
            // SAFETY: the buffers move into `with_buffers` with the chain
            // (their heap memory does not move) and are not touched until
            // `reap_notify` hands them back to `pop_used` for this token.
            unsafe { notify.queue.add(inputs, &mut [&mut chain.output[..]]) }
        };
        chain.token = match added {
            Ok(token) => token,
            Err(error) => {
                self.release_reservations();
                return Err(HostmemError::Queue { queue: queue_index, error });
            }
        };
        notify.with_buffers.push_back(chain);
        self.doorbell_if_needed(u32::from(queue_index));
        self.account(before, NOTIFICATION_LEN);
        self.counters.notifications += 1;
        if let Some(Some(state)) = self.instances.get_mut(instance.id as usize) {
            state.last_sent = seq;
        }
        Ok(seq)
    }

    /// Waits up to `timeout` for the oldest chain sent with
    /// [`Self::notify_with_buffers`] on `instance` to be used, takes it back
    /// (which copies the output back from the pool) and returns its `seq`,
    /// the input and output buffers and the used length, clamped to the
    /// output: the bytes the device says it wrote, still to be checked
    /// (`hostmem_wire::codec::check_inline_result`). Polls the used ring
    /// (memory only). With a completion word, it then waits for the word to
    /// reach the `seq` and reports an ERROR event for it as
    /// [`HostmemError::NotificationFailed`] (the buffers are dropped).
    pub fn complete_with_buffers(
        &mut self,
        instance: &Instance,
        timeout: Duration,
    ) -> Result<(u64, Vec<u8>, Vec<u8>, usize), HostmemError> {
        let state = *self.state(instance)?;
        let deadline = Deadline::after(timeout);
        let chain = loop {
            self.reap_notify(instance.id)?;
            let Some(notify) = self.rings.notify.get_mut(instance.id as usize) else {
                return Err(HostmemError::StaleInstance { instance_id: instance.id });
            };
            // Chains of an earlier instance on this queue: all used by
            // DESTROY (§8.4), never handed to this one.
            while notify.with_buffers.front().is_some_and(|c| c.serial != state.serial && c.used.is_some()) {
                notify.with_buffers.pop_front();
            }
            match notify.with_buffers.front() {
                None => {
                    return Err(HostmemError::SeqNotSent {
                        instance_id: instance.id,
                        seq: state.last_sent.saturating_add(1),
                        last_sent: state.last_sent,
                    });
                }
                Some(chain) if chain.used.is_some() && chain.serial == state.serial => {
                    if let Some(chain) = notify.with_buffers.pop_front() {
                        break chain;
                    }
                }
                Some(_) => {}
            }
            if deadline.passed() {
                self.drain_events()?;
                if let Some(status) = self.state(instance)?.lost {
                    return Err(HostmemError::InstanceLost { instance_id: instance.id, status });
                }
                return Err(HostmemError::Timeout { what: "a used notification chain" });
            }
            self.pause(0, false);
        };
        if state.completion_offset.is_some() {
            self.wait_completion(instance, chain.seq, timeout)?;
        }
        Ok((chain.seq, chain.input, chain.output, chain.used.unwrap_or(0)))
    }

    // --- completion words ---

    /// Reads `instance`'s completion word (acquire), checked: it only grows
    /// and never exceeds the last `seq` sent.
    pub fn completion_word(&mut self, instance: &Instance) -> Result<u64, HostmemError> {
        let state = *self.state(instance)?;
        let Some(offset) = state.completion_offset else {
            return Err(HostmemError::NoCompletionWord { instance_id: instance.id });
        };
        let value = self.region(instance.subdevice)?.load_acquire_u64(offset)?;
        check_completion_value(instance.id, value, state.last_word, state.last_sent)?;
        if let Some(Some(state)) = self.instances.get_mut(instance.id as usize) {
            state.last_word = value;
        }
        Ok(value)
    }

    /// Polls `instance`'s completion word (memory only: no MMIO, no
    /// interrupt) until it reaches `seq`, then reports an ERROR event the
    /// device sent for `seq` as [`HostmemError::NotificationFailed`] (the
    /// device delivers the event before it stores the word, §9.5).
    pub fn wait_completion(&mut self, instance: &Instance, seq: u64, timeout: Duration) -> Result<(), HostmemError> {
        let state = *self.state(instance)?;
        if seq == 0 || seq > state.last_sent {
            return Err(HostmemError::SeqNotSent { instance_id: instance.id, seq, last_sent: state.last_sent });
        }
        let deadline = Deadline::after(timeout);
        loop {
            if hostmem_wire::completion_reached(self.completion_word(instance)?, seq) {
                break;
            }
            if deadline.passed() {
                // Say why if the device gave up on the instance meanwhile.
                self.drain_events()?;
                if let Some(status) = self.state(instance)?.lost {
                    return Err(HostmemError::InstanceLost { instance_id: instance.id, status });
                }
                return Err(HostmemError::Timeout { what: "a completion word" });
            }
            self.pause(0, false);
        }
        self.drain_events()?;
        let failed = self.pending.iter().position(|event| {
            event.instance_id == instance.id && event.seq == seq && matches!(event.kind, EventKind::Error(_))
        });
        if let Some(event) = failed.and_then(|index| self.pending.remove(index))
            && let EventKind::Error(status) = event.kind
        {
            return Err(HostmemError::NotificationFailed { instance_id: instance.id, seq, status });
        }
        Ok(())
    }

    // --- events ---

    /// The next event, waiting up to `timeout` (on the interrupt line if
    /// bound, else spinning on the used ring).
    pub fn wait_event(&mut self, timeout: Duration) -> Result<Event, HostmemError> {
        let deadline = Deadline::after(timeout);
        loop {
            let seen = self.irq_count();
            if let Some(event) = self.poll_event()? {
                return Ok(event);
            }
            if deadline.passed() {
                return Err(HostmemError::Timeout { what: "an event" });
            }
            self.pause(seen, true);
        }
    }

    /// The next event if one has arrived.
    pub fn poll_event(&mut self) -> Result<Option<Event>, HostmemError> {
        if self.pending.is_empty() {
            self.drain_events()?;
        }
        Ok(self.pending.pop_front())
    }

    /// Moves used event buffers into `pending` (validated) and posts them
    /// again. A malformed event is an error after its buffer was re-posted.
    fn drain_events(&mut self) -> Result<(), HostmemError> {
        let queue = hostmem_wire::EVENT_QUEUE as u16;
        let mut posted = false;
        // Buffers an earlier failure left unposted.
        for index in 0..self.rings.event_slots.len() {
            if self.rings.event_slots.get(index).is_some_and(|slot| slot.token.is_none()) {
                posted |= self.post_event_buffer(index)?;
            }
        }
        let mut result = Ok(());
        while self.pending.len() < PENDING_LIMIT {
            let Some(token) = self.rings.event.peek_used() else {
                break;
            };
            let Some(index) = self.rings.event_slots.iter().position(|slot| slot.token == Some(token)) else {
                result = Err(HostmemError::BadUsed { queue, reason: UsedReason::UnknownToken(token) });
                break;
            };
            let before = self.bounced();
            let rings = &mut *self.rings;
            let Some(slot) = rings.event_slots.get_mut(index) else {
                break;
            };
            let mut outputs = [&mut slot.buffer[..]];
            // SAFETY: the buffer `add` got for this token.
            let popped = unsafe { rings.event.pop_used(token, &[], &mut outputs) };
            let used = match popped {
                Ok(used) => used,
                Err(error) => {
                    result = Err(HostmemError::BadUsed { queue, reason: UsedReason::Pop(error) });
                    break;
                }
            };
            slot.token = None;
            let instances = &self.instances;
            let regions = &self.regions;
            let checked = check_event(&slot.buffer[..], used, self.max_instances, |id| {
                let state = instances.get(id as usize).copied().flatten()?;
                let region_len = regions.get(state.subdevice as usize)?.len();
                Some(InstanceView { region_len, last_sent: state.last_sent })
            });
            self.account(before, EVENT_LEN);
            match self.post_event_buffer(index) {
                Ok(done) => posted |= done,
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
            match checked {
                Ok(event) => {
                    self.counters.events += 1;
                    self.counters.events_dropped += u64::from(event.dropped);
                    if let EventKind::InstanceLost(status) = event.kind
                        && let Some(Some(state)) = self.instances.get_mut(event.instance_id as usize)
                    {
                        state.lost = Some(status);
                    }
                    self.pending.push_back(event);
                }
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        if posted {
            self.doorbell_if_needed(hostmem_wire::EVENT_QUEUE);
        }
        result
    }

    /// Makes event buffer `index` available (without a doorbell); returns
    /// whether it did.
    fn post_event_buffer(&mut self, index: usize) -> Result<bool, HostmemError> {
        if self.rings.event_slots.get(index).is_none_or(|slot| slot.token.is_some()) {
            return Ok(false);
        }
        self.reserve(&[EVENT_LEN])?;
        let rings = &mut *self.rings;
        let Some(slot) = rings.event_slots.get_mut(index) else {
            return Ok(false);
        };
        // SAFETY: the buffer stays in its slot, untouched, until
        // `drain_events` hands it back to `pop_used` for this token.
        let added = unsafe { rings.event.add(&[], &mut [&mut slot.buffer[..]]) };
        match added {
            Ok(token) => {
                slot.token = Some(token);
                Ok(true)
            }
            Err(error) => {
                self.release_reservations();
                Err(HostmemError::Queue { queue: hostmem_wire::EVENT_QUEUE as u16, error })
            }
        }
    }

    // --- helpers ---

    fn state(&self, instance: &Instance) -> Result<&InstanceState, HostmemError> {
        match self.instances.get(instance.id as usize) {
            Some(Some(state)) if state.serial == instance.serial && !state.destroying => Ok(state),
            _ => Err(HostmemError::StaleInstance { instance_id: instance.id }),
        }
    }

    fn state_mut(&mut self, instance: &Instance) -> Result<&mut InstanceState, HostmemError> {
        match self.instances.get_mut(instance.id as usize) {
            Some(Some(state)) if state.serial == instance.serial && !state.destroying => Ok(state),
            _ => Err(HostmemError::StaleInstance { instance_id: instance.id }),
        }
    }

    fn doorbell_if_needed(&mut self, queue: u32) {
        let needed = match queue {
            hostmem_wire::CONFIG_QUEUE => self.rings.config.should_notify(),
            hostmem_wire::EVENT_QUEUE => self.rings.event.should_notify(),
            _ => hostmem_wire::instance_for_queue(queue, self.max_instances)
                .and_then(|id| self.rings.notify.get(id as usize))
                .is_some_and(|notify| notify.queue.should_notify()),
        };
        if needed {
            // Queue numbers are below 2 + 1022.
            self.transport.notify(queue as u16);
            self.counters.doorbells += 1;
        }
    }

    fn irq_count(&self) -> u32 {
        self.wakeup.as_ref().map_or(0, |wakeup| wakeup.count())
    }

    /// One step of a wait: sleep until an interrupt (or a short slice) when
    /// `interruptible` and a line is bound, else spin.
    fn pause(&self, seen: u32, interruptible: bool) {
        match &self.wakeup {
            Some(wakeup) if interruptible => {
                wakeup.wait_beyond(seen, WAIT_SLICE);
            }
            Some(wakeup) => wakeup.idle(),
            None => core::hint::spin_loop(),
        }
    }

    fn bounced(&self) -> u64 {
        self.pool.stats().bytes_bounced
    }

    /// Adds what the pool bounced since `before` to the counters; all but
    /// `message_bytes` of it (the message structs the operation bounced) is
    /// payload.
    fn account(&mut self, before: u64, message_bytes: usize) {
        let bounced = self.bounced().saturating_sub(before);
        self.counters.bytes_copied_by_transport += bounced;
        self.counters.payload_bytes_copied_by_transport += bounced.saturating_sub(message_bytes as u64);
    }

    /// Sets pool room aside for the next bounces, all or nothing.
    fn reserve(&self, lens: &[usize]) -> Result<(), HostmemError> {
        let id = self.pool;
        dma::with_pool(id, |pool| {
            // What the pool really takes: its buddy allocator rounds every
            // request up to a power of two of pages. (Fragmentation can still
            // make a reservation fail; that is a typed error too.)
            let needed: usize = lens.iter().map(|len| len.div_ceil(PAGE).next_power_of_two()).sum();
            if pool.free_pages() < needed {
                return Err(HostmemError::PoolExhausted {
                    pool: id,
                    needed_pages: needed,
                    free_pages: pool.free_pages(),
                });
            }
            for &len in lens {
                pool.reserve(len).map_err(|error| HostmemError::Pool { pool: id, error })?;
            }
            Ok(())
        })
    }

    /// After a failed `add`: returns reservations the bounce did not use.
    /// (This releases every unused reservation of the pool; `add` only fails
    /// on a full queue, which callers check first.)
    fn release_reservations(&self) {
        self.pool.release_reservations();
    }
}

impl<H: Hal, T: VirtioTransport> Drop for Hostmem<H, T> {
    fn drop(&mut self) {
        // Reset first: the device lets go of every ring and buffer (§12).
        self.transport.set_status(DeviceStatus::empty());
        let released = !matches!(self.transport.init_error(), Some(TransportError::ResetTimeout { .. }));
        // SAFETY: `rings` is not used after this.
        let rings = unsafe { ManuallyDrop::take(&mut self.rings) };
        if released {
            drop(rings);
        } else {
            // The device may still write the rings: never give them back.
            log::error!("hostmem: the device did not reset; its rings stay allocated");
            core::mem::forget(rings);
        }
        if self.refused {
            // FAILED stays set (§3.1): do not let the transport's drop reset it.
            self.transport.set_status(DeviceStatus::FAILED);
        } else {
            // SAFETY: `transport` is not used after this.
            unsafe { ManuallyDrop::drop(&mut self.transport) };
        }
    }
}

fn notify_queue_index(id: u32) -> u16 {
    u16::try_from(hostmem_wire::FIRST_NOTIFY_QUEUE.saturating_add(id)).unwrap_or(u16::MAX)
}

/// Reads the whole config space within a generation check, 32 bits at a
/// time (each read is a round trip to a vhost-user backend).
fn read_config<T: VirtioTransport>(transport: &T) -> Result<Config, TransportError> {
    let words: [u32; CONFIG_SIZE / 4] = transport.read_config_words()?;
    // Same size by construction; read_config_words stored the device's bytes.
    Config::read_from_bytes(words.as_bytes()).map_err(|_| TransportError::ConfigOutOfBounds {
        offset: 0,
        size: CONFIG_SIZE,
        config_size: transport.config_size(),
    })
}

fn check_pool(pool: PoolId, needed_pages: usize) -> Result<(), HostmemError> {
    let free_pages = pool.free_pages();
    if free_pages < needed_pages {
        return Err(HostmemError::PoolExhausted { pool, needed_pages, free_pages });
    }
    Ok(())
}

/// Refuses a claimed device before any ring exists: reset, FAILED, and the
/// transport forgotten so its drop does not clear FAILED.
fn refuse<T: VirtioTransport>(mut transport: T, error: HostmemError) -> HostmemError {
    log::error!("hostmem: refusing the device: {error}");
    transport.set_status(DeviceStatus::empty());
    transport.set_status(DeviceStatus::FAILED);
    core::mem::forget(transport);
    error
}

/// Sets up the config, event and notification queues (in the pool: `H`).
/// On failure the device is reset before the queues made so far are freed
/// (or they are leaked if the reset does not complete).
fn create_rings<H: Hal, T: VirtioTransport>(
    transport: &mut T,
    queues: u32,
    event_buffers: usize,
) -> Result<Rings<H>, HostmemError> {
    fn abandon<T: VirtioTransport, M>(
        transport: &mut T,
        made: M,
        queue: u16,
        error: virtio_drivers::Error,
    ) -> HostmemError {
        transport.set_status(DeviceStatus::empty());
        if matches!(transport.init_error(), Some(TransportError::ResetTimeout { .. })) {
            core::mem::forget(made);
        } else {
            drop(made);
        }
        HostmemError::Queue { queue, error }
    }
    let config_index = hostmem_wire::CONFIG_QUEUE as u16;
    let event_index = hostmem_wire::EVENT_QUEUE as u16;
    // No indirect descriptors (each list would be one more bounce) and no
    // EVENT_IDX (not negotiated).
    let config = match VirtQueue::new(transport, config_index, false, false) {
        Ok(queue) => queue,
        Err(error) => return Err(abandon(transport, (), config_index, error)),
    };
    let event = match VirtQueue::new(transport, event_index, false, false) {
        Ok(queue) => queue,
        Err(error) => return Err(abandon(transport, config, event_index, error)),
    };
    let mut notify = Vec::with_capacity(queues as usize);
    for id in 0..queues {
        let index = notify_queue_index(id);
        match VirtQueue::new(transport, index, false, false) {
            Ok(queue) => notify.push(NotifyQueue { queue, in_flight: Vec::new(), with_buffers: VecDeque::new() }),
            Err(error) => return Err(abandon(transport, (config, event, notify), index, error)),
        }
    }
    let event_slots = (0..event_buffers).map(|_| EventSlot { buffer: Box::new([0; EVENT_LEN]), token: None }).collect();
    Ok(Rings { config, config_in_flight: None, event, event_slots, notify })
}
