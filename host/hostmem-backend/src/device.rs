//! The device itself: config queue, notification queues, event queue,
//! instances and completion words, as docs/hostmem.md specifies them.
//!
//! Everything here runs with the device lock held, one queue at a time, on
//! the vring worker thread (or the vhost-user thread for resets). Guest
//! input never causes a panic: every failure is an answer (status, ERROR
//! event, used length 0) plus a log line.

use std::num::Wrapping;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::{
    CONFIG_QUEUE, ConfigRequest, ConfigResponse, EVENT_QUEUE, Event, FIRST_NOTIFY_QUEUE, METADATA_SIZE, Notification,
    Request, Status, SubdeviceEntry, WireError, check_completion_word, feature, instance_for_queue, ranges_overlap,
};
use vhost_user_backend::{VringRwLock, VringT};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::chain::Chain;
use crate::memory::{MapError, MemoryViews, PoolView, RegionAccess, load_u16};
use crate::setup::DeviceSetup;
use crate::subdevice::{Outcome, Subdevice};

/// The vring type the backend uses.
pub type Vring = VringRwLock<GuestMemoryAtomic<GuestMemoryMmap<()>>>;

/// Bytes of a config request, response, notification and event.
const REQUEST_LEN: usize = size_of::<ConfigRequest>();
const RESPONSE_LEN: usize = size_of::<ConfigResponse>();
const NOTIFICATION_LEN: usize = size_of::<Notification>();
const EVENT_LEN: usize = size_of::<Event>();

/// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver asks for no used-buffer interrupt.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// A live instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Index of its sub-device.
    pub subdevice: usize,
    /// `seq` of the last accepted notification (0 before the first).
    pub last_seq: u64,
    /// `seq` of the last completed notification (for INSTANCE_LOST).
    pub last_completed: u64,
    /// Offset of its completion word in the region, if it has one.
    pub completion_offset: Option<u64>,
}

/// An instance slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not allocated.
    Free,
    /// A live instance.
    Live(Instance),
    /// Lost (INSTANCE_LOST sent): its notifications are discarded, and the
    /// id stays allocated until the driver's DESTROY (docs/hostmem.md §9.2).
    Lost,
}

/// Device state of one vhost-user connection.
pub struct Device {
    setup: Arc<DeviceSetup>,
    subdevices: Vec<Box<dyn Subdevice>>,
    views: Option<Arc<MemoryViews>>,
    acked_features: u64,
    instances: Vec<Slot>,
    /// Events dropped since the last delivered one (docs/hostmem.md §9.5).
    dropped: u32,
    /// Total events dropped (diagnostics).
    dropped_total: u64,
    /// Notifications taken off notification queues (for `stall-after`).
    notifications_seen: u64,
    /// Last ring-placement refusal logged per queue (log once, not per kick).
    ring_refusals: Vec<Option<String>>,
    stall_reported: bool,
    version_warned: bool,
}

/// What [`pop`] found.
enum Pop {
    Empty,
    Chain(Chain),
    /// The ring is unusable (not ready, rings outside the pool, index
    /// nonsense); logged.
    Unusable,
}

impl Device {
    /// A device with no instances and no memory yet.
    pub fn new(setup: Arc<DeviceSetup>) -> Self {
        let subdevices = setup
            .subdevices()
            .iter()
            .map(|s| s.kind.instantiate(setup.dump_frames(), setup.faults().corrupt_frame))
            .collect();
        let instances = vec![Slot::Free; setup.max_instances() as usize];
        let ring_refusals = vec![None; setup.queue_count()];
        Self {
            setup,
            subdevices,
            views: None,
            acked_features: 0,
            instances,
            dropped: 0,
            dropped_total: 0,
            notifications_seen: 0,
            ring_refusals,
            stall_reported: false,
            version_warned: false,
        }
    }

    /// Records the features the driver accepted (SET_FEATURES).
    pub fn set_acked_features(&mut self, features: u64) {
        log::info!("features acked: {features:#x}");
        if features & feature::mask(feature::VERSION_1) == 0 {
            log::error!("driver did not accept VIRTIO_F_VERSION_1; queues will not be served");
        }
        self.acked_features = features;
        self.version_warned = false;
    }

    fn negotiated(&self, bit: u32) -> bool {
        self.acked_features & feature::mask(bit) != 0
    }

    /// Rebuilds the device's views of guest memory (SET_MEM_TABLE).
    pub fn set_memory(&mut self, mem: &GuestMemoryMmap<()>) -> Result<(), MapError> {
        match MemoryViews::build(mem, &self.setup) {
            Ok(views) => {
                log::info!("memory table accepted: pool {} mapped", views.pool.window());
                self.views = Some(Arc::new(views));
                Ok(())
            }
            Err(e) => {
                log::error!("memory table refused: {e}");
                self.views = None;
                Err(e)
            }
        }
    }

    /// Device reset (docs/hostmem.md §12): every instance destroyed without
    /// events, the drop counter cleared. Rings, buffers and regions are not
    /// touched.
    pub fn reset(&mut self, why: &str) {
        let live = self.live_instances();
        log::info!("device reset ({why}): dropping {} live instance(s)", live.len());
        for id in 0..self.setup.max_instances() {
            self.end_instance(id);
        }
        self.dropped = 0;
    }

    /// The frontend stopped queue `queue` (GET_VRING_BASE). QEMU does that
    /// for every queue when the driver resets the device, so losing the
    /// config or event queue is a device reset; losing a notification queue
    /// ends its instance (the queue's buffers are the driver's again).
    pub fn queue_stopped(&mut self, queue: u32) {
        match queue {
            CONFIG_QUEUE | EVENT_QUEUE => {
                self.reset(if queue == CONFIG_QUEUE { "config queue stopped" } else { "event queue stopped" })
            }
            q => {
                if let Some(id) = instance_for_queue(q, self.setup.max_instances())
                    && self.slot(id) != Slot::Free
                {
                    log::info!("notification queue {q} stopped: instance {id} destroyed");
                    self.end_instance(id);
                }
            }
        }
    }

    /// Ids of the live instances.
    pub fn live_instances(&self) -> Vec<u32> {
        (0u32..).zip(&self.instances).filter(|(_, s)| matches!(s, Slot::Live(_))).map(|(id, _)| id).collect()
    }

    /// Instance `id`, if live.
    pub fn instance(&self, id: u32) -> Option<Instance> {
        match self.slot(id) {
            Slot::Live(instance) => Some(instance),
            _ => None,
        }
    }

    /// Whether instance `id` was lost and awaits the driver's DESTROY.
    pub fn is_lost(&self, id: u32) -> bool {
        self.slot(id) == Slot::Lost
    }

    fn slot(&self, id: u32) -> Slot {
        usize::try_from(id).ok().and_then(|i| self.instances.get(i)).copied().unwrap_or(Slot::Free)
    }

    fn live(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter_map(|s| match s {
            Slot::Live(instance) => Some(instance),
            _ => None,
        })
    }

    /// Offsets of the completion words of sub-device `index`'s live
    /// instances (all of them in its region).
    fn completion_words(&self, index: usize) -> Vec<u64> {
        self.live().filter(|i| i.subdevice == index).filter_map(|i| i.completion_offset).collect()
    }

    /// Events dropped since the last delivered one.
    pub fn pending_dropped(&self) -> u32 {
        self.dropped
    }

    /// Events dropped since the connection started.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Serves queue `queue` after a kick.
    pub fn handle_queue(&mut self, queue: u16, vrings: &[Vring]) {
        let Some(views) = self.views.clone() else {
            log::warn!("queue {queue} kicked before a usable memory table; ignored");
            return;
        };
        if !self.negotiated(feature::VERSION_1) {
            if !self.version_warned {
                log::error!("queue {queue} kicked but VIRTIO_F_VERSION_1 not negotiated; ignored");
                self.version_warned = true;
            }
            return;
        }
        let Some(vring) = vrings.get(usize::from(queue)) else {
            log::warn!("kick for unknown queue {queue}");
            return;
        };
        match ring_state(vring, &views.pool) {
            Ok(()) => {
                if let Some(slot) = self.ring_refusals.get_mut(usize::from(queue)) {
                    *slot = None;
                }
            }
            Err(None) => return,
            Err(Some(what)) => {
                // Logged once per placement, not once per kick.
                if let Some(slot) = self.ring_refusals.get_mut(usize::from(queue))
                    && slot.as_deref() != Some(what.as_str())
                {
                    log::error!("queue {queue} refused: {what}");
                    *slot = Some(what);
                }
                return;
            }
        }
        match u32::from(queue) {
            CONFIG_QUEUE => self.process_config_queue(vrings, &views),
            // Event buffers are only taken when an event is due; a kick on
            // the event queue needs no work (and no events are kept back).
            EVENT_QUEUE => log::trace!("event queue kicked"),
            q => match instance_for_queue(q, self.setup.max_instances()) {
                Some(id) => self.process_notifications(id, vrings, &views),
                None => log::warn!("kick for queue {q} beyond the notification queues"),
            },
        }
    }

    // ---- config queue (docs/hostmem.md §8) ----

    fn process_config_queue(&mut self, vrings: &[Vring], views: &MemoryViews) {
        let Some(vring) = vrings.get(CONFIG_QUEUE as usize) else { return };
        let pool = &views.pool;
        let mut answered = false;
        while let Pop::Chain(chain) = pop(vring, pool, CONFIG_QUEUE as u16) {
            let used = self.answer_config(&chain, vrings, views);
            complete(vring, pool, CONFIG_QUEUE as u16, chain.head, used);
            answered = true;
        }
        if answered {
            signal(vring, pool, CONFIG_QUEUE as u16);
        }
    }

    /// Answers one config-queue chain; returns the used length.
    fn answer_config(&mut self, chain: &Chain, vrings: &[Vring], views: &MemoryViews) -> u32 {
        let pool = &views.pool;
        if chain.writable_outside.is_some() || chain.writable_len() < RESPONSE_LEN as u64 {
            log::warn!(
                "config queue: chain {} has {} usable device-writable bytes, need {RESPONSE_LEN}; not acted on",
                chain.head,
                chain.writable_len()
            );
            return 0;
        }
        let bytes = if chain.readable_outside.is_none() { chain.gather(pool, REQUEST_LEN) } else { Vec::new() };
        let raw_opcode = ConfigRequest::peek_opcode(&bytes).unwrap_or(0);
        let response = if chain.misordered || chain.readable_outside.is_some() {
            log::warn!("config queue: chain {} malformed (descriptor order or outside the pool)", chain.head);
            ConfigResponse::failure(raw_opcode, Status::BadRequest)
        } else {
            match ConfigRequest::read(&bytes).and_then(|r| r.decode()) {
                Ok(request) => self.execute(request, vrings, views),
                Err(e) => {
                    log::warn!("config queue: request refused: {e}");
                    ConfigResponse::failure(raw_opcode, e.status())
                }
            }
        };
        match chain.scatter(pool, response.as_bytes()) {
            Ok(()) => RESPONSE_LEN as u32,
            Err(_) => {
                log::warn!("config queue: cannot write the response of chain {}", chain.head);
                0
            }
        }
    }

    fn execute(&mut self, request: Request, vrings: &[Vring], views: &MemoryViews) -> ConfigResponse {
        let opcode = request.opcode();
        let result = match request {
            Request::Create { subdevice_index, completion_offset } => {
                self.create(subdevice_index, completion_offset, vrings, views)
            }
            Request::Destroy { instance_id } => self.destroy(instance_id, vrings, &views.pool),
            Request::QuerySubdevice { subdevice_index } => self
                .published_entry(subdevice_index)
                .map(|entry| ConfigResponse::queried(subdevice_index, entry))
                .ok_or(Status::UnknownSubdevice),
            Request::Ping { cookie } => Ok(ConfigResponse::pong(cookie)),
        };
        result.unwrap_or_else(|status| {
            log::info!("config queue: {opcode:?} answered {status:?}");
            ConfigResponse::failure(opcode.into(), status)
        })
    }

    fn published_entry(&self, index: u32) -> Option<SubdeviceEntry> {
        self.setup.subdevices().get(usize::try_from(index).ok()?).map(|s| s.entry)
    }

    fn create(
        &mut self,
        subdevice_index: u32,
        completion_offset: Option<u64>,
        vrings: &[Vring],
        views: &MemoryViews,
    ) -> Result<ConfigResponse, Status> {
        let index = usize::try_from(subdevice_index).map_err(|_| Status::UnknownSubdevice)?;
        let spec = self.setup.subdevices().get(index).ok_or(Status::UnknownSubdevice)?;
        let (entry, region_len) = (spec.entry, spec.region.len());
        if completion_offset.is_some() && !self.negotiated(feature::COMPLETION_WORD) {
            return Err(Status::Unsupported);
        }
        if let Some(offset) = completion_offset {
            check_completion_word(region_len, offset).map_err(|e| e.status())?;
            let clash = self.live().any(|other| {
                other.subdevice == index && other.completion_offset.is_some_and(|o| ranges_overlap(o, 8, offset, 8))
            });
            if clash {
                return Err(Status::BadRange);
            }
        }
        if entry.flags.get() & SubdeviceEntry::F_EXCLUSIVE != 0 && self.live().any(|i| i.subdevice == index) {
            return Err(Status::NoFreeInstance);
        }
        // A free slot whose notification queue the driver set up.
        let id = (0u32..)
            .zip(&self.instances)
            .filter(|(_, slot)| **slot == Slot::Free)
            .map(|(id, _)| id)
            .find(|&id| {
                let queue = FIRST_NOTIFY_QUEUE + id;
                vrings.get(queue as usize).is_some_and(|v| queue_usable(v, &views.pool))
            })
            .ok_or(Status::NoFreeInstance)?;
        let Some(region) = views.region(index) else {
            log::error!("CREATE on sub-device {index}: its region is not mapped");
            return Err(Status::DeviceError);
        };
        let subdevice = self.subdevices.get_mut(index).ok_or(Status::DeviceError)?;
        subdevice.create_instance(id).map_err(|status| {
            log::error!("sub-device {index} failed to create instance {id}: {status:?}");
            Status::DeviceError
        })?;
        if let Some(offset) = completion_offset
            && let Err(e) = region.publish_completion(offset, 0)
        {
            // Checked above; kept so a bug answers instead of panicking.
            log::error!("cannot clear completion word: {e}");
            subdevice.destroy_instance(id);
            return Err(Status::DeviceError);
        }
        let response = ConfigResponse::created(subdevice_index, entry, id).map_err(|_| Status::DeviceError)?;
        if let Some(slot) = self.instances.get_mut(id as usize) {
            *slot = Slot::Live(Instance { subdevice: index, last_seq: 0, last_completed: 0, completion_offset });
        }
        log::info!(
            "instance {id} created on sub-device {index} (queue {}, completion word {completion_offset:?})",
            FIRST_NOTIFY_QUEUE + id
        );
        Ok(response)
    }

    fn destroy(&mut self, id: u32, vrings: &[Vring], pool: &PoolView) -> Result<ConfigResponse, Status> {
        // Live or lost: both are allocated and freed by DESTROY.
        if self.slot(id) == Slot::Free {
            return Err(Status::BadInstance);
        }
        let discarded = drain(id, vrings, pool);
        self.end_instance(id);
        log::info!("instance {id} destroyed ({discarded} pending notification(s) discarded)");
        Ok(ConfigResponse::destroyed(id))
    }

    /// Frees slot `id`, telling the sub-device if the instance was live.
    fn end_instance(&mut self, id: u32) {
        let Some(slot) = self.instances.get_mut(id as usize) else { return };
        if let Slot::Live(instance) = std::mem::replace(slot, Slot::Free)
            && let Some(sub) = self.subdevices.get_mut(instance.subdevice)
        {
            sub.destroy_instance(id);
        }
    }

    // ---- notification queues (docs/hostmem.md §9) ----

    fn process_notifications(&mut self, id: u32, vrings: &[Vring], views: &MemoryViews) {
        let queue = (FIRST_NOTIFY_QUEUE + id) as u16;
        let Some(vring) = vrings.get(usize::from(queue)) else { return };
        let pool = &views.pool;
        let mut taken = false;
        loop {
            if let Some(limit) = self.setup.faults().stall_after
                && self.notifications_seen >= limit
            {
                if !self.stall_reported {
                    log::warn!("fault stall-after={limit}: no longer answering notifications");
                    self.stall_reported = true;
                }
                break;
            }
            let Pop::Chain(chain) = pop(vring, pool, queue) else { break };
            self.notifications_seen = self.notifications_seen.saturating_add(1);
            let bytes =
                if chain.readable_outside.is_none() { chain.gather(pool, NOTIFICATION_LEN) } else { Vec::new() };
            // The device writes nothing into a notification buffer; it is
            // the driver's again as soon as it has been read. A chain that
            // carries its data and room for the result (appendix A.3) is
            // made used once the result is written, before its event.
            let mut deferred = (!chain.writable.is_empty() && self.takes_buffers(id, &bytes)).then_some(chain.head);
            if deferred.is_none() {
                complete(vring, pool, queue, chain.head, 0);
            }
            taken = true;
            // Region reads below must see every driver write made before the
            // notification was made available.
            fence(Ordering::Acquire);
            self.notification(id, &chain, &bytes, &mut deferred, vrings, views);
            // Discarded (instance not live) or otherwise not answered.
            release_chain(id, &mut deferred, 0, vrings, pool);
        }
        if taken {
            signal(vring, pool, queue);
        }
    }

    /// Whether the notification in `bytes` has an opcode whose chain
    /// carries its data, for instance `id`'s sub-device.
    fn takes_buffers(&self, id: u32, bytes: &[u8]) -> bool {
        match (self.instance(id), Notification::peek_opcode(bytes)) {
            (Some(instance), Some(opcode)) if bytes.len() >= NOTIFICATION_LEN => {
                self.subdevices.get(instance.subdevice).is_some_and(|s| s.takes_buffers(opcode))
            }
            _ => false,
        }
    }

    /// Answers one notification. `deferred` holds the head of a chain that
    /// carries its data and is not used yet; it is made used (with the
    /// bytes written into it) before any event or completion word answers
    /// it.
    fn notification(
        &mut self,
        id: u32,
        chain: &Chain,
        bytes: &[u8],
        deferred: &mut Option<u16>,
        vrings: &[Vring],
        views: &MemoryViews,
    ) {
        let Some(instance) = self.instance(id) else {
            // Not allocated: §8.4 forbids events after DESTROY and §9.5 lets
            // the device drop this one. Lost: discarded without events
            // (§9.2).
            let what = if self.is_lost(id) { "lost" } else { "not allocated" };
            log::info!("notification for instance {id}, which is {what}: discarded");
            return;
        };
        let index = instance.subdevice;
        // Read before the length check: an ERROR for a short chain still
        // carries what it has (0 when `seq` itself is cut off).
        let seq = Notification::peek_seq(bytes).unwrap_or(0);
        let opcode = Notification::peek_opcode(bytes);
        let pool = &views.pool;

        // §9.5 step 1: failures after which `seq` cannot be trusted get an
        // ERROR event and nothing else (no `seq` recorded, no word).
        // Device-writable buffers only in a chain that carries its data.
        let writable_allowed = deferred.is_some();
        if chain.is_defective() || (!chain.writable.is_empty() && !writable_allowed) || bytes.len() < NOTIFICATION_LEN {
            log::warn!(
                "instance {id}: malformed notification chain {} ({} readable bytes, {} writable, defective: {})",
                chain.head,
                bytes.len(),
                chain.writable_len(),
                chain.is_defective()
            );
            release_chain(id, deferred, 0, vrings, pool);
            self.refuse(id, index, opcode, seq, Status::BadRequest, vrings, pool);
            return;
        }
        let Ok(notification) = Notification::read(bytes) else { return };
        let Some(region_len) = self.setup.subdevices().get(index).map(|s| s.region.len()) else { return };
        let check = notification.check(id, instance.last_seq, region_len);
        if let Err(e @ (WireError::InstanceMismatch { .. } | WireError::BadSequence { .. })) = check {
            log::info!("instance {id}: notification {seq} refused: {e}");
            release_chain(id, deferred, 0, vrings, pool);
            self.refuse(id, index, opcode, seq, e.status(), vrings, pool);
            return;
        }
        let Some(region) = views.region(index) else {
            release_chain(id, deferred, 0, vrings, pool);
            self.lose_instance(id, Status::DeviceError, vrings, pool);
            return;
        };

        // Accepted: it completes, successfully or not.
        let outcome = match check {
            Err(e) => {
                log::info!("instance {id}: notification {seq} failed: {e}");
                let status = e.status();
                Outcome::Failed { status, metadata: self.error_metadata(index, opcode, seq, status) }
            }
            Ok(()) if writable_allowed => match self.subdevices.get_mut(index) {
                Some(subdevice) => {
                    let (outcome, written) = buffers_outcome(subdevice.as_mut(), id, &notification, chain, pool);
                    release_chain(id, deferred, written, vrings, pool);
                    outcome
                }
                None => Outcome::Lost(Status::DeviceError),
            },
            Ok(()) => {
                // §9.5: completion words are the device's to write; no
                // notification of any instance may write over one.
                let words = self.completion_words(index);
                match self.subdevices.get_mut(index) {
                    Some(subdevice) => subdevice.handle(id, &notification, &RegionAccess::new(region, &words)),
                    None => Outcome::Lost(Status::DeviceError),
                }
            }
        };
        // Failed core checks of a chain that carries data: nothing written.
        release_chain(id, deferred, 0, vrings, pool);
        let event = match outcome {
            Outcome::Lost(status) => {
                self.lose_instance(id, status, vrings, pool);
                return;
            }
            Outcome::Done(c) => {
                let wanted = !self.negotiated(feature::EVENT_SUPPRESS) || notification.wants_event();
                wanted.then(|| Event::completion(id, seq, c.offset, c.size, c.metadata))
            }
            Outcome::Failed { status, metadata } => {
                log::info!("instance {id}: notification {seq} completed with {status:?}");
                let mut event = Event::error(id, seq, status);
                event.metadata = metadata;
                Some(event)
            }
        };
        if let Some(Slot::Live(slot)) = self.instances.get_mut(id as usize) {
            slot.last_seq = seq;
            slot.last_completed = seq;
        }
        // §9.5 order: region writes, then the event, then the completion
        // word (release), so a driver seeing the word sees the rest.
        fence(Ordering::Release);
        if let Some(event) = event {
            self.send_event(event, vrings, pool);
        }
        if let Some(offset) = instance.completion_offset
            && let Err(e) = region.publish_completion(offset, seq)
        {
            log::error!("instance {id}: completion word at {offset:#x}: {e}");
        }
    }

    /// Answers a notification that failed a step-1 check: ERROR event only.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        id: u32,
        index: usize,
        opcode: Option<u32>,
        seq: u64,
        status: Status,
        vrings: &[Vring],
        pool: &PoolView,
    ) {
        let mut event = Event::error(id, seq, status);
        event.metadata = self.error_metadata(index, opcode, seq, status);
        self.send_event(event, vrings, pool);
    }

    fn error_metadata(&self, index: usize, opcode: Option<u32>, seq: u64, status: Status) -> [u8; METADATA_SIZE] {
        self.subdevices.get(index).map_or([0; METADATA_SIZE], |s| s.error_metadata(opcode, seq, status))
    }

    /// The device cannot serve instance `id` any more: the sub-device lets
    /// it go, the slot stays allocated (lost) until the driver's DESTROY,
    /// and the driver is told with INSTANCE_LOST (§9.2).
    fn lose_instance(&mut self, id: u32, status: Status, vrings: &[Vring], pool: &PoolView) {
        let last = self.instance(id).map_or(0, |i| i.last_completed);
        log::error!("instance {id} lost: {status:?}");
        self.end_instance(id);
        if let Some(slot) = self.instances.get_mut(id as usize) {
            *slot = Slot::Lost;
        }
        self.send_event(Event::instance_lost(id, last, status), vrings, pool);
    }

    // ---- event queue (docs/hostmem.md §9.2, §9.5) ----

    /// Delivers `event` into the next event buffer, or counts it as dropped.
    /// Never waits: a driver that posts no event buffers only loses events
    /// (counted, reported by EVENT_F_OVERFLOW), nothing is queued up.
    fn send_event(&mut self, event: Event, vrings: &[Vring], pool: &PoolView) -> bool {
        let queue = EVENT_QUEUE as u16;
        let Some(vring) = vrings.get(usize::from(queue)) else { return self.drop_event(&event, "no event queue") };
        if !queue_usable(vring, pool) {
            return self.drop_event(&event, "event queue not ready");
        }
        let chain = match pop(vring, pool, queue) {
            Pop::Chain(chain) => chain,
            Pop::Empty => return self.drop_event(&event, "no event buffer available"),
            Pop::Unusable => return self.drop_event(&event, "event queue unusable"),
        };
        if chain.is_defective() || !chain.readable.is_empty() || chain.writable_len() < EVENT_LEN as u64 {
            log::warn!(
                "event buffer {} unusable ({} writable bytes, {} readable, defective: {})",
                chain.head,
                chain.writable_len(),
                chain.readable_len(),
                chain.is_defective()
            );
            complete(vring, pool, queue, chain.head, 0);
            signal(vring, pool, queue);
            return self.drop_event(&event, "event buffer unusable");
        }
        let event = event.with_dropped(self.dropped);
        let delivered = chain.scatter(pool, event.as_bytes()).is_ok();
        complete(vring, pool, queue, chain.head, if delivered { EVENT_LEN as u32 } else { 0 });
        signal(vring, pool, queue);
        if delivered {
            self.dropped = 0;
            true
        } else {
            self.drop_event(&event, "event buffer write failed")
        }
    }

    fn drop_event(&mut self, event: &Event, why: &str) -> bool {
        self.dropped = self.dropped.saturating_add(1);
        self.dropped_total = self.dropped_total.saturating_add(1);
        log::info!(
            "event (instance {}, type {}, seq {}) dropped: {why} ({} pending)",
            event.instance_id.get(),
            event.event_type.get(),
            event.seq.get(),
            self.dropped
        );
        false
    }
}

// ---- chains that carry their data (appendix A.3) ----

/// Runs a notification whose chain carries its data: gathers the
/// device-readable bytes after the notification, lets the sub-device decode
/// them, and writes its result over the device-writable part. Returns the
/// outcome and the bytes written (the used length). Each part may be at
/// most as long as the pool window, which no chain of buffers inside the
/// pool can honestly exceed; a longer one is BAD_REQUEST.
fn buffers_outcome(
    subdevice: &mut dyn Subdevice,
    id: u32,
    notification: &Notification,
    chain: &Chain,
    pool: &PoolView,
) -> (Outcome, u32) {
    let seq = notification.seq.get();
    let opcode = Some(notification.opcode.get());
    let failed = |subdevice: &dyn Subdevice, status| Outcome::Failed {
        status,
        metadata: subdevice.error_metadata(opcode, seq, status),
    };
    let limit = pool.window().len();
    let (readable, capacity) = (chain.readable_len(), chain.writable_len());
    let Ok(gather_len) = usize::try_from(readable) else { return (failed(subdevice, Status::BadRequest), 0) };
    if readable > limit.saturating_add(NOTIFICATION_LEN as u64) || capacity > limit {
        log::warn!(
            "instance {id}: notification {seq}: chain of {readable} readable, {capacity} writable bytes refused"
        );
        return (failed(subdevice, Status::BadRequest), 0);
    }
    let bytes = chain.gather(pool, gather_len);
    if bytes.len() != gather_len {
        log::error!("instance {id}: notification {seq}: reading the chain's data failed");
        return (failed(subdevice, Status::DeviceError), 0);
    }
    let input = bytes.get(NOTIFICATION_LEN..).unwrap_or_default();
    let (outcome, pieces) = subdevice.handle_buffers(id, notification, input, capacity);
    let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    if total > capacity {
        log::error!("instance {id}: notification {seq}: {total}-byte result for a {capacity}-byte buffer not written");
        return (failed(subdevice, Status::DeviceError), 0);
    }
    match scatter_pieces(chain, pool, &pieces) {
        // At most the pool window, so it fits in the used length.
        Some(written) => (outcome, u32::try_from(written).unwrap_or(0)),
        None => {
            log::error!("instance {id}: notification {seq}: writing the result into the chain failed");
            (failed(subdevice, Status::DeviceError), 0)
        }
    }
}

/// Writes `pieces`, one after another, over the device-writable part of
/// `chain` from its start. Returns the bytes written, or `None` if the part
/// is too short or a write fails.
fn scatter_pieces(chain: &Chain, pool: &PoolView, pieces: &[Vec<u8>]) -> Option<u64> {
    let mut segments = chain.writable.iter();
    let mut current: Option<(u64, u32)> = None;
    let mut written = 0u64;
    for piece in pieces {
        let mut rest = &piece[..];
        while !rest.is_empty() {
            let (addr, room) = match current {
                Some((addr, room)) if room > 0 => (addr, room),
                _ => segments.next().map(|s| (s.addr, s.len))?,
            };
            let n = rest.len().min(room as usize);
            let (now, later) = rest.split_at(n);
            pool.write(addr, now).ok()?;
            // n <= room, a u32.
            current = Some((addr + n as u64, room - n as u32));
            written += n as u64;
            rest = later;
        }
    }
    Some(written)
}

/// Makes the deferred chain `deferred` of instance `id` used with `len`
/// bytes written (once; later calls do nothing).
fn release_chain(id: u32, deferred: &mut Option<u16>, len: u32, vrings: &[Vring], pool: &PoolView) {
    let Some(head) = deferred.take() else { return };
    let queue = FIRST_NOTIFY_QUEUE + id;
    if let Some(vring) = vrings.get(queue as usize) {
        complete(vring, pool, queue as u16, head, len);
    }
}

// ---- queue access through the pool-only memory ----

/// `Ok` if the queue is ready, enabled and entirely inside the pool;
/// `Err(None)` if it is not set up, `Err(Some(why))` if its rings lie
/// (partly) outside the pool.
fn ring_state(vring: &Vring, pool: &PoolView) -> Result<(), Option<String>> {
    let state = vring.get_ref();
    let q = state.get_queue();
    if !q.ready() || !state.is_enabled() {
        return Err(None);
    }
    rings_in_pool(q, pool).map_err(Some)
}

/// Whether the queue can be used now.
fn queue_usable(vring: &Vring, pool: &PoolView) -> bool {
    ring_state(vring, pool).is_ok()
}

/// Checks that descriptor table, available and used ring lie in the pool.
fn rings_in_pool(q: &Queue, pool: &PoolView) -> Result<(), String> {
    let size = u64::from(q.size());
    let parts = [
        ("descriptor table", q.desc_table(), 16 * size),
        ("available ring", q.avail_ring(), 6 + 2 * size),
        ("used ring", q.used_ring(), 6 + 8 * size),
    ];
    for (name, addr, len) in parts {
        if !pool.contains(addr, len) {
            return Err(format!("{name} at {addr:#x}+{len:#x} is outside the DMA pool {}", pool.window()));
        }
    }
    Ok(())
}

/// Takes the next available chain, read through the pool-only memory.
fn pop(vring: &Vring, pool: &PoolView, queue: u16) -> Pop {
    let mut state = vring.get_mut();
    let q = state.get_queue_mut();
    if !q.ready() {
        return Pop::Unusable;
    }
    if let Err(what) = rings_in_pool(q, pool) {
        log::error!("queue {queue}: {what}");
        return Pop::Unusable;
    }
    let avail = match q.avail_idx(pool.mem(), Ordering::Acquire) {
        Ok(idx) => idx,
        Err(e) => {
            log::error!("queue {queue}: cannot read the available index: {e}");
            return Pop::Unusable;
        }
    };
    let pending = (avail - Wrapping(q.next_avail())).0;
    if pending == 0 {
        return Pop::Empty;
    }
    if pending > q.size() {
        // A driver cannot have more chains outstanding than the queue
        // holds; do not walk a nonsense index.
        log::error!(
            "queue {queue}: available index {} is {pending} ahead of the device (queue size {}); queue ignored",
            avail.0,
            q.size()
        );
        return Pop::Unusable;
    }
    match q.pop_descriptor_chain(pool.mem()) {
        Some(chain) => Pop::Chain(Chain::collect(chain, pool, queue)),
        None => Pop::Unusable,
    }
}

/// Puts `head` into the used ring with `len` bytes written.
fn complete(vring: &Vring, pool: &PoolView, queue: u16, head: u16, len: u32) {
    let mut state = vring.get_mut();
    if let Err(e) = state.get_queue_mut().add_used(pool.mem(), head, len) {
        log::error!("queue {queue}: cannot return descriptor {head}: {e}");
    }
}

/// Interrupts the driver for used buffers on `queue` unless it suppressed
/// that (VIRTQ_AVAIL_F_NO_INTERRUPT, or the event index if negotiated).
fn signal(vring: &Vring, pool: &PoolView, queue: u16) {
    let mut state = vring.get_mut();
    let q = state.get_queue_mut();
    let wanted = if q.event_idx_enabled() {
        q.needs_notification(pool.mem()).unwrap_or(true)
    } else {
        load_u16(pool, q.avail_ring()).is_none_or(|flags| flags & AVAIL_F_NO_INTERRUPT == 0)
    };
    if wanted && let Err(e) = state.signal_used_queue() {
        log::warn!("queue {queue}: cannot signal the driver: {e}");
    }
}

/// Makes every chain pending on instance `id`'s queue used with length 0
/// (DESTROY). Returns how many.
fn drain(id: u32, vrings: &[Vring], pool: &PoolView) -> usize {
    let queue = FIRST_NOTIFY_QUEUE + id;
    let Some(vring) = vrings.get(queue as usize) else { return 0 };
    let queue = queue as u16;
    if !queue_usable(vring, pool) {
        return 0;
    }
    let mut count = 0;
    while let Pop::Chain(chain) = pop(vring, pool, queue) {
        complete(vring, pool, queue, chain.head, 0);
        count += 1;
    }
    if count > 0 {
        signal(vring, pool, queue);
    }
    count
}
