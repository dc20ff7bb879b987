//! Unit tests: the real [`HostmemBackend`] driven through its
//! `VhostUserBackend` interface, with vrings whose rings virtio-queue's
//! `MockSplitQueue` lays out in memfd-backed guest memory arranged like the
//! deployment (pool node with four pools, region node with two regions).

use std::collections::HashMap;
use std::sync::Arc;

use hostmem_wire::zerocopy::{FromBytes, IntoBytes};
use hostmem_wire::{ConfigResponse, Event, EventType, Notification, Request, Status, feature};
use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use crate::setup::{DeviceSetup, Faults, GuestWindow, SetupParams, SubdeviceKind};
use crate::testing::{CODEC_BASE, ECHO_BASE, GuestLayout, POOL_BASE, POOL_SIZE, REGION_SIZE};
use crate::{HostmemBackend, Vring};

mod codec;
mod config_queue;
mod hostile;
mod notify;
mod parsing;

/// Queue size the tests use (QEMU's vq_size=64).
const QSIZE: u16 = 64;
/// Sub-device indices in the test setup.
const CODEC: u32 = 0;
const ECHO: u32 = 1;

/// Options of a harness.
struct Opts {
    max_instances: u32,
    faults: Faults,
    features: u64,
    /// Queues configured and enabled (the rest are left unset up).
    queues: usize,
    dump_frames: Option<std::path::PathBuf>,
    /// Sub-devices and regions; `None` for the usual codec and echo.
    regions: Option<Vec<(SubdeviceKind, GuestWindow)>>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            max_instances: 4,
            faults: Faults::default(),
            features: feature::mask(feature::VERSION_1)
                | feature::mask(feature::COMPLETION_WORD)
                | feature::mask(feature::EVENT_SUPPRESS),
            queues: usize::MAX,
            dump_frames: None,
            regions: None,
        }
    }
}

fn setup(opts: &Opts) -> DeviceSetup {
    let window = |base, len| GuestWindow::new(base, len).unwrap();
    DeviceSetup::new(SetupParams {
        device_id: 21,
        pool: window(POOL_BASE, POOL_SIZE),
        regions: opts.regions.clone().unwrap_or_else(|| {
            vec![
                (SubdeviceKind::Codec, window(CODEC_BASE, REGION_SIZE)),
                (SubdeviceKind::Echo, window(ECHO_BASE, REGION_SIZE)),
            ]
        }),
        max_instances: opts.max_instances,
        faults: opts.faults,
        dump_frames: opts.dump_frames.clone(),
        access_platform: true,
    })
    .unwrap()
}

/// A segment of a chain the test builds: address, length, device-writable.
type Seg = (u64, u32, bool);

/// Drives one backend like a guest driver plus the vhost-user plumbing.
struct Harness<'a> {
    guest: &'a GuestLayout,
    backend: HostmemBackend,
    vrings: Vec<Vring>,
    mocks: Vec<MockSplitQueue<'a, GuestMemoryMmap<()>>>,
    next_desc: Vec<u16>,
    used_seen: Vec<u16>,
    chains: HashMap<(usize, u16), Vec<Seg>>,
    bump: u64,
}

impl<'a> Harness<'a> {
    fn new(guest: &'a GuestLayout) -> Self {
        Self::with(guest, Opts::default())
    }

    fn with(guest: &'a GuestLayout, opts: Opts) -> Self {
        let setup = Arc::new(setup(&opts));
        let backend = HostmemBackend::new(setup.clone());
        let count = setup.queue_count();
        let mut vrings = Vec::new();
        let mut mocks = Vec::new();
        for q in 0..count {
            let vring = Vring::new(GuestMemoryAtomic::new(guest.mem.clone()), 256).unwrap();
            let mock = MockSplitQueue::create(&guest.mem, GuestAddress(ring_base(q)), QSIZE);
            if q < opts.queues {
                vring.set_queue_size(QSIZE);
                vring.set_queue_info(mock.desc_table_addr().0, mock.avail_addr().0, mock.used_addr().0).unwrap();
                vring.set_queue_ready(true);
                vring.set_enabled(true);
            }
            vrings.push(vring);
            mocks.push(mock);
        }
        backend.update_memory(GuestMemoryAtomic::new(guest.mem.clone())).unwrap();
        backend.acked_features(opts.features);
        Self {
            guest,
            backend,
            vrings,
            mocks,
            next_desc: vec![0; count],
            used_seen: vec![0; count],
            chains: HashMap::new(),
            bump: POOL_BASE + 0x10_0000,
        }
    }

    /// Allocates `len` bytes of buffer space in the pool.
    fn alloc(&mut self, len: u32) -> u64 {
        let addr = self.bump;
        self.bump += u64::from(len).next_multiple_of(64).max(64);
        assert!(self.bump <= POOL_BASE + POOL_SIZE, "test pool exhausted");
        addr
    }

    fn write(&self, addr: u64, data: &[u8]) {
        self.guest.mem.write_slice(data, GuestAddress(addr)).unwrap();
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.guest.mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
        buf
    }

    /// Base address of sub-device `sub`'s region.
    fn region_base(sub: u32) -> u64 {
        if sub == CODEC { CODEC_BASE } else { ECHO_BASE }
    }

    fn region_write(&self, sub: u32, offset: u64, data: &[u8]) {
        self.write(Self::region_base(sub) + offset, data);
    }

    fn region_read(&self, sub: u32, offset: u64, len: usize) -> Vec<u8> {
        self.read(Self::region_base(sub) + offset, len)
    }

    fn completion_word(&self, sub: u32, offset: u64) -> u64 {
        u64::from_le_bytes(self.region_read(sub, offset, 8).try_into().unwrap())
    }

    /// Makes a chain available on queue `q` (does not kick).
    fn post(&mut self, q: usize, segs: &[Seg]) -> u16 {
        let mock = &self.mocks[q];
        let first = self.next_desc[q];
        for (i, &(addr, len, writable)) in segs.iter().enumerate() {
            let index = (first + i as u16) % QSIZE;
            let mut flags = if writable { VRING_DESC_F_WRITE as u16 } else { 0 };
            let next = (index + 1) % QSIZE;
            if i + 1 < segs.len() {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            let desc = SplitDescriptor::new(addr, len, flags, next);
            mock.desc_table().store(index, RawDescriptor::from(desc)).unwrap();
        }
        self.next_desc[q] = (first + segs.len() as u16) % QSIZE;
        let idx = mock.avail().idx().load();
        mock.avail().ring().ref_at(usize::from(idx % QSIZE)).unwrap().store(first);
        mock.avail().idx().store(idx.wrapping_add(1));
        self.chains.insert((q, first), segs.to_vec());
        first
    }

    /// Delivers a kick for queue `q` as the vring worker would.
    fn kick(&self, q: usize) {
        self.backend.handle_event(q as u16, EventSet::IN, &self.vrings, 0).unwrap();
    }

    /// Used elements (descriptor head, length) added since the last call.
    fn take_used(&mut self, q: usize) -> Vec<(u16, u32)> {
        let mock = &self.mocks[q];
        let idx = mock.used().idx().load();
        let mut out = Vec::new();
        while self.used_seen[q] != idx {
            let elem = mock.used().ring().ref_at(usize::from(self.used_seen[q] % QSIZE)).unwrap().load();
            out.push((elem.id() as u16, elem.len()));
            self.used_seen[q] = self.used_seen[q].wrapping_add(1);
        }
        out
    }

    /// Sends raw request bytes on the config queue with a 72-byte response
    /// buffer; returns (used length, response bytes).
    fn raw_request(&mut self, request: &[u8]) -> (u32, ConfigResponse) {
        let req = self.alloc(request.len() as u32);
        self.write(req, request);
        let resp = self.alloc(72);
        self.write(resp, &[0xee; 72]);
        self.chain_request(&[(req, request.len() as u32, false), (resp, 72, true)], resp)
    }

    /// Posts a built chain on the config queue, kicks, and reads the 72
    /// bytes at `resp`.
    fn chain_request(&mut self, segs: &[Seg], resp: u64) -> (u32, ConfigResponse) {
        let head = self.post(0, segs);
        self.kick(0);
        let used = self.take_used(0);
        assert_eq!(used.len(), 1, "exactly one answer per request");
        assert_eq!(used[0].0, head);
        let bytes = self.read(resp, 72);
        (used[0].1, ConfigResponse::read_from_bytes(&bytes).unwrap())
    }

    fn request(&mut self, request: Request) -> ConfigResponse {
        let (len, resp) = self.raw_request(request.encode().as_bytes());
        assert_eq!(len, 72);
        assert_eq!(resp.opcode.get(), u32::from(request.opcode()));
        resp
    }

    fn create(&mut self, sub: u32, completion: Option<u64>) -> Result<u32, Status> {
        let request = Request::Create { subdevice_index: sub, completion_offset: completion };
        let resp = self.request(request);
        match resp.status().unwrap() {
            Status::Ok => {
                resp.check(&request, self.backend.setup().max_instances()).unwrap();
                Ok(resp.instance_id.get())
            }
            other => {
                assert_eq!(resp, ConfigResponse::failure(request.opcode().into(), other), "failure fields zero");
                Err(other)
            }
        }
    }

    fn destroy(&mut self, id: u32) -> Status {
        self.request(Request::Destroy { instance_id: id }).status().unwrap()
    }

    /// Posts `n` event buffers of 80 bytes.
    fn post_event_buffers(&mut self, n: usize) {
        for _ in 0..n {
            let buf = self.alloc(80);
            self.post(1, &[(buf, 80, true)]);
        }
        self.kick(1);
    }

    /// Events delivered since the last call (buffers used with length 80).
    fn events(&mut self) -> Vec<Event> {
        let used = self.take_used(1);
        used.into_iter()
            .filter(|&(_, len)| len == 80)
            .map(|(head, len)| {
                let segs = &self.chains[&(1, head)];
                let bytes = self.read(segs[0].0, 80);
                let event = Event::read(&bytes, len as usize).unwrap();
                event.check(self.backend.setup().max_instances(), REGION_SIZE).unwrap();
                event
            })
            .collect()
    }

    /// Sends a notification for instance `id` on its queue and kicks.
    fn notify(&mut self, id: u32, n: &Notification) {
        let buf = self.alloc(72);
        self.write(buf, n.as_bytes());
        self.notify_chain(id, &[(buf, 72, false)]);
    }

    /// Posts a hand-built chain on instance `id`'s queue and kicks.
    fn notify_chain(&mut self, id: u32, segs: &[Seg]) {
        let q = 2 + id as usize;
        let head = self.post(q, segs);
        self.kick(q);
        let used = self.take_used(q);
        assert!(used.contains(&(head, 0)), "notification buffer made used with length 0: {used:?}");
    }

    fn live(&self) -> Vec<u32> {
        self.backend.device().live_instances()
    }
}

/// Ring area of queue `q`: one page each at the start of the pool.
fn ring_base(q: usize) -> u64 {
    POOL_BASE + (q as u64) * 0x1000
}

/// An echo COPY notification.
fn copy(id: u32, seq: u64, src: u64, size: u64, dest: u64, flags: u32) -> Notification {
    Notification::new(id, 1, flags, seq, src, size, hostmem_wire::echo::CopyMeta::new(dest).to_metadata())
}

/// The one event expected.
fn one_event(h: &mut Harness<'_>) -> Event {
    let events = h.events();
    assert_eq!(events.len(), 1, "expected one event, got {events:?}");
    events[0]
}

fn assert_error(event: &Event, id: u32, seq: u64, status: Status) {
    assert_eq!(event.event_type().unwrap(), EventType::Error, "{event:?}");
    assert_eq!(event.instance_id.get(), id);
    assert_eq!(event.seq.get(), seq);
    assert_eq!(event.status().unwrap(), status, "{event:?}");
    assert_eq!(event.offset.get(), 0);
    assert_eq!(event.size.get(), 0);
}

/// A working echo round trip on instance `id` with seq `seq`: proves the
/// instance is intact after something hostile happened elsewhere.
fn assert_echo_works(h: &mut Harness<'_>, id: u32, seq: u64) {
    let data: Vec<u8> = (0..64u8).map(|b| b ^ (seq as u8)).collect();
    h.region_write(ECHO, 0x10000, &data);
    h.notify(id, &copy(id, seq, 0x10000, 64, 0x20000, Notification::F_EVENT));
    let event = one_event(h);
    assert_eq!(event.event_type().unwrap(), EventType::Completion, "{event:?}");
    assert_eq!(event.seq.get(), seq);
    assert_eq!(h.region_read(ECHO, 0x20000, 64), data);
}
