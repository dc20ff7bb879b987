//! The vhost-user side: [`HostmemBackend`] implements vhost-user-backend's
//! [`VhostUserBackend`] on top of [`Device`].
//!
//! Feature decisions (docs/hostmem.md §5, appendix C):
//!
//! - Virtio features offered: VERSION_1, COMPLETION_WORD, EVENT_SUPPRESS,
//!   and VIRTIO_F_ACCESS_PLATFORM unless `--no-access-platform`. The device
//!   can reach only the DMA pool, which is what the bit means, and §5.1 says
//!   it SHOULD then be offered. Not offered: EVENT_IDX and INDIRECT_DESC
//!   (not needed; an indirect table a hostile driver uses anyway is read
//!   through the pool-only memory).
//! - Protocol features: MQ, REPLY_ACK, CONFIG (config space), RESET_DEVICE,
//!   and BACKEND_REQ when ACCESS_PLATFORM is offered: QEMU refuses a backend
//!   offering ACCESS_PLATFORM without BACKEND_REQ and REPLY_ACK ("IOMMU
//!   support requires reply-ack and backend-req protocol features"). QEMU's
//!   virtio-mmio has no IOMMU, so it strips the bit from SET_FEATURES and
//!   sends no IOTLB traffic; the backend channel stays idle. Nothing here
//!   depends on ACCESS_PLATFORM being acked: the pool restriction is always
//!   enforced.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vhost::vhost_user::Backend;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::VhostUserBackend;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier};

use hostmem_wire::feature;

use crate::device::{Device, Vring};
use crate::setup::{DeviceSetup, MAX_QUEUE_SIZE};

/// The backend of one vhost-user connection. Cheap to clone (the daemon
/// hands clones to its worker threads); all clones share one [`Device`].
#[derive(Clone)]
pub struct HostmemBackend {
    inner: Arc<Inner>,
}

struct Inner {
    setup: Arc<DeviceSetup>,
    device: Mutex<Device>,
    /// Kept open while the frontend may use it; the device sends nothing.
    backend_req: Mutex<Option<Backend>>,
    /// Exit-event consumer fds handed to vhost-user-backend (see
    /// [`HostmemBackend::release_exit_events`]).
    exit_consumers: Mutex<Vec<RawFd>>,
}

impl HostmemBackend {
    /// A backend with fresh device state.
    pub fn new(setup: Arc<DeviceSetup>) -> Self {
        let device = Mutex::new(Device::new(setup.clone()));
        Self {
            inner: Arc::new(Inner {
                setup,
                device,
                backend_req: Mutex::new(None),
                exit_consumers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Closes the exit-event consumer fds of this backend's vring workers.
    ///
    /// vhost-user-backend 0.24.0 (pinned) registers the consumer returned by
    /// `exit_event` in the worker's epoll set with `into_raw_fd` and never
    /// closes it, which would leak one fd per served connection. Call this
    /// only after the `VhostUserDaemon` built on this backend has been
    /// dropped: its workers are then joined and their epoll sets closed, so
    /// nothing uses these fds, and since they are still open their numbers
    /// cannot have been reused.
    pub fn release_exit_events(&self) {
        let fds = std::mem::take(&mut *self.inner.exit_consumers.lock().unwrap_or_else(PoisonError::into_inner));
        for fd in fds {
            // SAFETY: `fd` is an eventfd created in `exit_event` whose
            // ownership vhost-user-backend gave up (into_raw_fd) and whose
            // only user, the worker's epoll set, is gone (see above); it is
            // open and nothing else owns it, so taking ownership to close it
            // is sound.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    /// The device description.
    pub fn setup(&self) -> &DeviceSetup {
        &self.inner.setup
    }

    /// The device state, locked (also for tests to inspect it). A poisoned
    /// lock is taken anyway: device state stays consistent between requests.
    pub fn device(&self) -> MutexGuard<'_, Device> {
        self.inner.device.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtio feature bits offered for `setup`.
    pub fn offered_features(setup: &DeviceSetup) -> u64 {
        let mut features = feature::mask(feature::VERSION_1)
            | feature::mask(feature::COMPLETION_WORD)
            | feature::mask(feature::EVENT_SUPPRESS)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        if setup.access_platform() {
            features |= feature::mask(feature::ACCESS_PLATFORM);
        }
        features
    }

    /// vhost-user protocol features offered for `setup`.
    pub fn offered_protocol_features(setup: &DeviceSetup) -> VhostUserProtocolFeatures {
        let mut features = VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::RESET_DEVICE;
        if setup.access_platform() {
            features |= VhostUserProtocolFeatures::BACKEND_REQ;
        }
        features
    }
}

impl VhostUserBackend for HostmemBackend {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.inner.setup.queue_count()
    }

    fn max_queue_size(&self) -> usize {
        usize::from(MAX_QUEUE_SIZE)
    }

    fn features(&self) -> u64 {
        Self::offered_features(&self.inner.setup)
    }

    fn acked_features(&self, features: u64) {
        self.device().set_acked_features(features);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        Self::offered_protocol_features(&self.inner.setup)
    }

    fn reset_device(&self) {
        self.device().reset("RESET_DEVICE");
    }

    fn set_event_idx(&self, enabled: bool) {
        // Not offered; the queues track it themselves if a frontend sets it.
        log::debug!("event index {}", if enabled { "enabled" } else { "disabled" });
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let bytes = self.inner.setup.config_bytes();
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(off, len)| Some(off..off.checked_add(len)?));
        match range.and_then(|r| bytes.get(r)) {
            Some(slice) => slice.to_vec(),
            None => {
                // An empty answer makes the vhost-user layer reply with an
                // error instead of bytes the device does not have.
                log::warn!("GET_CONFIG {offset:#x}+{size:#x} outside the {}-byte config space", bytes.len());
                Vec::new()
            }
        }
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        // §6.3: the driver must not write config space; the device ignores
        // writes.
        log::warn!("ignored config write of {} bytes at {offset:#x}", buf.len());
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap<()>>) -> io::Result<()> {
        let guard = mem.memory();
        self.device().set_memory(&guard).map_err(io::Error::other)
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        log::debug!("backend request channel received");
        *self.inner.backend_req.lock().unwrap_or_else(PoisonError::into_inner) = Some(backend);
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without an exit event the vring worker never ends, and dropping
        // the daemon after a disconnect (to serve the next connection)
        // would wait for it forever. The consumer is closed by
        // `release_exit_events`.
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok(pair) => {
                self.inner.exit_consumers.lock().unwrap_or_else(PoisonError::into_inner).push(pair.0.as_raw_fd());
                Some(pair)
            }
            Err(e) => {
                log::error!("cannot create the worker exit event: {e}");
                None
            }
        }
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        // One worker thread serves every queue (at most 64, see setup).
        let n = self.num_queues();
        vec![if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }]
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        self.device().queue_stopped(queue_index);
        Ok(())
    }

    fn handle_event(&self, device_event: u16, _evset: EventSet, vrings: &[Vring], _thread_id: usize) -> io::Result<()> {
        // Never an error: an error here would end the worker thread, and
        // nothing a guest does may stop the device.
        self.device().handle_queue(device_event, vrings);
        Ok(())
    }
}
