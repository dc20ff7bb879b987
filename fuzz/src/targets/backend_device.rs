//! The backend as a hostile guest drives it: the real `HostmemBackend`
//! (host/hostmem-backend) through its vhost-user interface, on guest memory
//! laid out as deployed (the backend's `fakes` feature: memfd-backed pool
//! and region nodes), with the codec and echo sub-devices and 4 instance
//! slots, as in the backend's unit tests.
//!
//! Input: a sequence of operations (see [`Op`]): config-queue requests,
//! notifications (with or without data in the chain), event buffers, raw
//! descriptors, raw writes into the pool and the regions, kicks of any
//! queue, ring placements, config-space accesses, resets, stopped queues,
//! feature and memory-table changes.
//!
//! Checked: nothing panics or hangs; every used element names a descriptor
//! of the ring and never claims more bytes than the chain could take; every
//! config-queue answer is one the guest driver's own check
//! (`tidepool::hostmem::check_response`) accepts or reads as a proper
//! refusal, and a request that does not decode gets a failure echoing its
//! opcode; every delivered event passes the driver's wire check
//! (`Event::check`); every DECODE_INLINE result passes the driver's check
//! or is a proper failure; `get_config` returns exactly the published
//! bytes; the pages around the pool window are never touched.

use std::collections::HashMap;
use std::sync::Arc;

use hostmem_backend::setup::{DeviceSetup, Faults, GuestWindow, SetupParams, SubdeviceKind};
use hostmem_backend::testing::{
    CODEC_BASE, ECHO_BASE, GuestLayout, POOL_BASE, POOL_NODE_BASE, POOL_NODE_SIZE, POOL_SIZE, REGION_NODE_BASE,
    REGION_NODE_SIZE, REGION_SIZE,
};
use hostmem_backend::{HostmemBackend, Vring};
use hostmem_wire::codec::check_inline_result;
use hostmem_wire::{ConfigRequest, ConfigResponse, Event, Notification, Request, Status, WireError, feature};
use tidepool::hostmem::{HostmemError, check_response};
use vhost_user_backend::{VhostUserBackend, VringT};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::epoll::EventSet;

use crate::input::Input;

/// Instance slots (queues: 2 + this).
pub const MAX_INSTANCES: u32 = 4;
/// Queue size the harness sets up (QEMU's vq_size=64).
pub const QSIZE: u16 = 64;
/// Operations per input at most.
const MAX_OPS: usize = 48;
/// Sub-devices: index 0 codec, 1 echo (the backend tests' setup).
pub const CODEC: u32 = 0;
pub const ECHO: u32 = 1;

const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;
const RESPONSE_LEN: u32 = size_of::<ConfigResponse>() as u32;
const EVENT_LEN: u32 = size_of::<Event>() as u32;
/// Where the harness allocates buffers: past the rings, inside the pool.
const BUFFERS: u64 = POOL_BASE + 0x10_0000;

/// Operation codes, in input order: the first byte of each operation.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Op {
    /// Request bytes (chunk), response length (u8; 0 means 72), split
    /// flag: posted on the config queue and kicked.
    Request = 0,
    /// Instance (u8), notification bytes (chunk), then a u16 output
    /// capacity: 0 for a plain notification, else the chain also carries
    /// the next chunk as input and that many device-writable bytes.
    Notify = 1,
    /// Count (u8, at most 8) and length (u8; 0 means 80) of event buffers.
    EventBuffers = 2,
    /// Queue (u8), count (u8, 1..=4), then per descriptor: address mode
    /// (u8: even = pool offset u32, odd = raw u64), len u32, flags u16,
    /// next u16; made available and kicked.
    RawChain = 3,
    /// Where (u8: even pool, odd regions), offset (u32), bytes (chunk).
    Write = 4,
    /// Queue index (u16): a kick.
    Kick = 5,
    /// Queue (u8), size exponent (u8), then desc/avail/used as pool
    /// offsets (u32 each) or, if the size byte's bit 7 is set, raw u64s.
    Place = 6,
    /// Offset (u32), size (u32): GET_CONFIG; then bytes (chunk): SET_CONFIG.
    Config = 7,
    /// Kind (u8): reset, stop a queue (u8), features (u64), event index,
    /// memory table (u8: all, pool only, regions only, none).
    Lifecycle = 8,
}

pub const OP_COUNT: u8 = 9;

fn setup() -> DeviceSetup {
    let window = |base, len| GuestWindow::new(base, len).unwrap();
    DeviceSetup::new(SetupParams {
        device_id: 21,
        pool: window(POOL_BASE, POOL_SIZE),
        regions: vec![
            (SubdeviceKind::Codec, window(CODEC_BASE, REGION_SIZE)),
            (SubdeviceKind::Echo, window(ECHO_BASE, REGION_SIZE)),
        ],
        max_instances: MAX_INSTANCES,
        faults: Faults::default(),
        dump_frames: None,
        access_platform: true,
    })
    .unwrap()
}

/// Features a driver negotiates by default.
pub fn default_features() -> u64 {
    feature::mask(feature::VERSION_1)
        | feature::mask(feature::COMPLETION_WORD)
        | feature::mask(feature::EVENT_SUPPRESS)
        | feature::mask(feature::ACCESS_PLATFORM)
}

/// One queue's ring, as the harness placed it.
#[derive(Clone, Copy, Debug)]
struct Ring {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    /// Next descriptor index the harness writes.
    next_desc: u16,
    /// Used index the harness has read up to.
    used_seen: u16,
    /// Placed by the fuzzer: used elements are not matched with chains.
    moved: bool,
}

/// What the harness posted as a chain, to judge the device's answer.
#[derive(Clone, Debug)]
enum Posted {
    /// A config request: the request bytes and the response buffer's
    /// segments.
    Request { request: Vec<u8>, response: Vec<(u64, u32)> },
    /// A notification; `output` is the device-writable buffer of a chain
    /// that carries data.
    Notification { bytes: Vec<u8>, output: Option<(u64, u32)> },
    /// An event buffer.
    EventBuffer { addr: u64, len: u32 },
    /// Raw descriptors: nothing known.
    Raw,
}

struct Harness {
    guest: GuestLayout,
    backend: HostmemBackend,
    vrings: Vec<Vring>,
    rings: Vec<Ring>,
    posted: HashMap<(usize, u16), Posted>,
    bump: u64,
    /// Live instances as the answers said: id -> sub-device index.
    instances: HashMap<u32, u32>,
    features: u64,
}

fn ring_base(q: usize) -> u64 {
    POOL_BASE + (q as u64) * 0x1000
}

impl Harness {
    fn new() -> Self {
        let guest = GuestLayout::new().expect("memfd-backed guest memory");
        let setup = Arc::new(setup());
        let backend = HostmemBackend::new(setup.clone());
        let mut vrings = Vec::new();
        let mut rings = Vec::new();
        for q in 0..setup.queue_count() {
            let vring = Vring::new(GuestMemoryAtomic::new(guest.mem.clone()), 256).unwrap();
            let base = ring_base(q);
            let ring = Ring {
                size: QSIZE,
                desc: base,
                avail: base + 0x400,
                used: base + 0x800,
                next_desc: 0,
                used_seen: 0,
                moved: false,
            };
            vring.set_queue_size(ring.size);
            vring.set_queue_info(ring.desc, ring.avail, ring.used).unwrap();
            vring.set_queue_ready(true);
            vring.set_enabled(true);
            vrings.push(vring);
            rings.push(ring);
        }
        backend.update_memory(GuestMemoryAtomic::new(guest.mem.clone())).unwrap();
        backend.acked_features(default_features());
        Self {
            guest,
            backend,
            vrings,
            rings,
            posted: HashMap::new(),
            bump: BUFFERS,
            instances: HashMap::new(),
            features: default_features(),
        }
    }

    fn write(&self, addr: u64, bytes: &[u8]) {
        // Outside guest memory: a guest cannot write there either.
        let _ = self.guest.mem.write_slice(bytes, GuestAddress(addr));
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        let _ = self.guest.mem.read_slice(&mut bytes, GuestAddress(addr));
        bytes
    }

    fn read_u16(&self, addr: u64) -> u16 {
        u16::from_le_bytes(self.read(addr, 2).try_into().unwrap())
    }

    fn read_u32(&self, addr: u64) -> u32 {
        u32::from_le_bytes(self.read(addr, 4).try_into().unwrap())
    }

    /// `len` bytes of buffer space in the pool (wraps around in the
    /// buffer area: old buffers may be reused, as a driver would).
    fn alloc(&mut self, len: u32) -> u64 {
        let len = u64::from(len).next_multiple_of(64).max(64);
        if self.bump + len > POOL_BASE + POOL_SIZE {
            self.bump = BUFFERS;
        }
        let addr = self.bump;
        self.bump += len;
        addr
    }

    /// Writes a descriptor chain at the ring's next free descriptors and
    /// makes it available. Returns the head.
    fn post(&mut self, q: usize, segments: &[(u64, u32, u16)], what: Posted) -> u16 {
        let ring = self.rings[q];
        let head = ring.next_desc;
        crate::trace!("  queue {q}: chain at descriptor {head}: {segments:x?}");
        for (i, &(addr, len, flags)) in segments.iter().enumerate() {
            let index = (head + i as u16) % ring.size;
            let next = (index + 1) % ring.size;
            let flags = if i + 1 < segments.len() { flags | VRING_DESC_F_NEXT } else { flags };
            let mut desc = [0u8; 16];
            desc[0..8].copy_from_slice(&addr.to_le_bytes());
            desc[8..12].copy_from_slice(&len.to_le_bytes());
            desc[12..14].copy_from_slice(&flags.to_le_bytes());
            desc[14..16].copy_from_slice(&next.to_le_bytes());
            self.write(ring.desc + 16 * u64::from(index), &desc);
        }
        self.rings[q].next_desc = (head + segments.len() as u16) % ring.size;
        self.make_available(q, head);
        self.posted.insert((q, head), what);
        head
    }

    fn make_available(&mut self, q: usize, head: u16) {
        let ring = self.rings[q];
        let idx = self.read_u16(ring.avail + 2);
        self.write(ring.avail + 4 + 2 * u64::from(idx % ring.size), &head.to_le_bytes());
        self.write(ring.avail + 2, &idx.wrapping_add(1).to_le_bytes());
    }

    /// The guest pages on either side of the pool window (other pools of
    /// the guest, in the same memfd).
    fn beside_the_pool(&self) -> Vec<u8> {
        let mut bytes = self.read(POOL_BASE - 0x1000, 0x1000);
        bytes.extend(self.read(POOL_BASE + POOL_SIZE, 0x1000));
        bytes
    }

    fn kick(&mut self, q: u16) {
        let beside = self.beside_the_pool();
        let result = self.backend.handle_event(q, EventSet::IN, &self.vrings, 0);
        assert!(result.is_ok(), "handle_event failed: {result:?}");
        // The device's view is the pool window alone.
        assert!(self.beside_the_pool() == beside, "the device wrote next to its pool window");
        for q in 0..self.rings.len() {
            self.check_used(q);
        }
    }

    /// Everything the device made used on queue `q` since the last look.
    fn check_used(&mut self, q: usize) {
        let ring = self.rings[q];
        let idx = self.read_u16(ring.used + 2);
        let mut seen = ring.used_seen;
        let mut count = 0;
        while seen != idx {
            count += 1;
            assert!(count <= u32::from(ring.size) + 1 || ring.moved, "queue {q}: used index ran {count} ahead");
            let slot = ring.used + 4 + 8 * u64::from(seen % ring.size);
            let (id, len) = (self.read_u32(slot), self.read_u32(slot + 4));
            seen = seen.wrapping_add(1);
            if ring.moved {
                continue;
            }
            assert!(id < u32::from(ring.size), "queue {q}: used id {id} beyond the ring of {}", ring.size);
            let Some(posted) = self.posted.remove(&(q, id as u16)) else { continue };
            self.judge(q, &posted, len);
        }
        self.rings[q].used_seen = seen;
    }

    /// The device's answer to a chain the harness posted.
    fn judge(&mut self, q: usize, posted: &Posted, len: u32) {
        crate::trace!("  queue {q}: used {len} bytes of {posted:?}");
        match posted {
            Posted::Raw => {}
            Posted::EventBuffer { addr, len: capacity } => {
                assert!(len == 0 || len == EVENT_LEN, "event buffer used with {len} bytes");
                assert!(len <= *capacity, "{len} bytes into a {capacity}-byte event buffer");
                if len == EVENT_LEN {
                    let bytes = self.read(*addr, EVENT_LEN as usize);
                    let event = Event::read(&bytes, len as usize).expect("a whole event");
                    let checked = event.check(MAX_INSTANCES, REGION_SIZE);
                    assert!(checked.is_ok(), "the device sent an event the driver refuses: {checked:?} {event:?}");
                }
            }
            Posted::Notification { bytes, output } => match output {
                None => assert_eq!(len, 0, "queue {q}: a notification buffer used with {len} bytes"),
                Some((addr, capacity)) => {
                    assert!(len <= *capacity, "queue {q}: {len} bytes into a {capacity}-byte output buffer");
                    if len > 0 {
                        let output = self.read(*addr, *capacity as usize);
                        let seq = Notification::peek_seq(bytes).unwrap_or(0);
                        match check_inline_result(&output, u64::from(len), seq) {
                            Ok(_) | Err(WireError::Failed(_)) => {}
                            Err(error) => panic!("the driver refuses a DECODE_INLINE result: {error}"),
                        }
                    }
                }
            },
            Posted::Request { request, response } => {
                assert!(len == 0 || len == RESPONSE_LEN, "config response of {len} bytes");
                let capacity: u32 = response.iter().map(|(_, len)| len).sum();
                assert!(len <= capacity, "{len}-byte response into {capacity} bytes");
                if len == 0 {
                    assert!(capacity < RESPONSE_LEN || response.is_empty(), "a request with room went unanswered");
                    return;
                }
                let mut bytes = Vec::new();
                for (addr, len) in response {
                    bytes.extend(self.read(*addr, *len as usize));
                }
                self.judge_response(request, &bytes, len);
            }
        }
    }

    fn judge_response(&mut self, request: &[u8], bytes: &[u8], len: u32) {
        let response = ConfigResponse::read(bytes, len as usize).expect("a whole response");
        let decoded = ConfigRequest::read(request).and_then(|raw| raw.decode());
        let Ok(request) = decoded else {
            // Refused as malformed: failure echoing the raw opcode.
            let status = response.status();
            assert!(status.is_ok_and(|status| status != Status::Ok), "malformed request answered {response:?}");
            let opcode = ConfigRequest::peek_opcode(request).unwrap_or(0);
            assert_eq!(response, ConfigResponse::failure(opcode, status.unwrap()), "failure with junk");
            return;
        };
        let known = match request {
            Request::Create { subdevice_index, .. } | Request::QuerySubdevice { subdevice_index } => {
                self.backend.setup().subdevices().get(subdevice_index as usize).map(|spec| spec.entry)
            }
            _ => None,
        };
        // What the guest driver makes of it.
        let checked = check_response(bytes, len, &request, MAX_INSTANCES, known.as_ref());
        crate::trace!("  {request:?} answered {checked:?}");
        match checked {
            Ok(response) => match request {
                Request::Create { subdevice_index, .. } => {
                    let id = response.instance_id.get();
                    let earlier = self.instances.insert(id, subdevice_index);
                    assert!(earlier.is_none(), "instance {id} created twice");
                }
                Request::Destroy { instance_id } => {
                    self.instances.remove(&instance_id);
                }
                _ => {}
            },
            Err(HostmemError::Refused { .. }) => {}
            Err(error) => panic!("the driver refuses the device's answer to {request:?}: {error} ({response:?})"),
        }
    }

    fn forget_instances(&mut self) {
        self.instances.clear();
    }

    fn memory_table(&self, which: u8) -> GuestMemoryMmap<()> {
        let region = |file: &Arc<std::fs::File>, base: u64, size: u64| {
            let mapping = MmapRegion::from_file(FileOffset::from_arc(file.clone(), 0), size as usize).unwrap();
            GuestRegionMmap::new(mapping, GuestAddress(base)).unwrap()
        };
        let pool = || region(&self.guest.pool_file, POOL_NODE_BASE, POOL_NODE_SIZE);
        let regions = || region(&self.guest.region_file, REGION_NODE_BASE, REGION_NODE_SIZE);
        let list = match which % 4 {
            0 => vec![pool(), regions()],
            1 => vec![pool()],
            2 => vec![regions()],
            _ => vec![],
        };
        GuestMemoryMmap::from_regions(list).unwrap_or_default()
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness::new();
    let queues = h.rings.len();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.u8() % OP_COUNT;
        crate::trace!("op {op} ({} bytes left)", input.len());
        match op {
            0 => {
                let request = input.chunk().to_vec();
                let response_len = match input.u8() {
                    0 => RESPONSE_LEN,
                    len => u32::from(len),
                };
                let split = input.bool() && response_len > 1;
                let req = h.alloc(request.len() as u32);
                h.write(req, &request);
                let resp = h.alloc(response_len);
                h.write(resp, &vec![0xee; response_len as usize]);
                let mut segments = vec![(req, request.len() as u32, 0)];
                let response = if split {
                    let half = response_len / 2;
                    vec![(resp, half), (resp + u64::from(half), response_len - half)]
                } else {
                    vec![(resp, response_len)]
                };
                segments.extend(response.iter().map(|&(addr, len)| (addr, len, VRING_DESC_F_WRITE)));
                h.post(0, &segments, Posted::Request { request, response });
                h.kick(0);
            }
            1 => {
                let id = u32::from(input.u8()) % (MAX_INSTANCES + 1);
                let bytes = input.chunk().to_vec();
                let capacity = u32::from(input.u16());
                let q = 2 + id as usize;
                if q >= queues {
                    continue;
                }
                let buf = h.alloc(bytes.len() as u32);
                h.write(buf, &bytes);
                let mut segments = vec![(buf, bytes.len() as u32, 0)];
                let mut output = None;
                if capacity > 0 {
                    let data = input.chunk().to_vec();
                    if !data.is_empty() {
                        let addr = h.alloc(data.len() as u32);
                        h.write(addr, &data);
                        segments.push((addr, data.len() as u32, 0));
                    }
                    let out = h.alloc(capacity);
                    segments.push((out, capacity, VRING_DESC_F_WRITE));
                    output = Some((out, capacity));
                }
                h.post(q, &segments, Posted::Notification { bytes, output });
                h.kick(q as u16);
            }
            2 => {
                let count = input.u8() % 9;
                let len = match input.u8() {
                    0 => EVENT_LEN,
                    len => u32::from(len),
                };
                for _ in 0..count {
                    let addr = h.alloc(len);
                    h.post(1, &[(addr, len, VRING_DESC_F_WRITE)], Posted::EventBuffer { addr, len });
                }
                h.kick(1);
            }
            3 => {
                let q = usize::from(input.u8()) % queues;
                let count = 1 + input.u8() % 4;
                let ring = h.rings[q];
                let head = ring.next_desc;
                for i in 0..u16::from(count) {
                    let addr = if input.u8().is_multiple_of(2) {
                        POOL_BASE + u64::from(input.u32()) % POOL_SIZE
                    } else {
                        input.u64()
                    };
                    let (len, flags, next) = (input.u32(), input.u16(), input.u16());
                    let mut desc = [0u8; 16];
                    desc[0..8].copy_from_slice(&addr.to_le_bytes());
                    desc[8..12].copy_from_slice(&len.to_le_bytes());
                    desc[12..14].copy_from_slice(&flags.to_le_bytes());
                    desc[14..16].copy_from_slice(&next.to_le_bytes());
                    h.write(ring.desc + 16 * u64::from((head + i) % ring.size), &desc);
                }
                h.rings[q].next_desc = (head + u16::from(count)) % ring.size;
                h.make_available(q, head);
                h.posted.insert((q, head), Posted::Raw);
                h.kick(q as u16);
            }
            4 => {
                let (base, size) = if input.u8().is_multiple_of(2) {
                    (POOL_BASE, POOL_SIZE)
                } else {
                    (REGION_NODE_BASE, REGION_NODE_SIZE)
                };
                let offset = u64::from(input.u32()) % size;
                let bytes = input.chunk();
                let room = (size - offset) as usize;
                h.write(base + offset, &bytes[..bytes.len().min(room)]);
            }
            5 => {
                let q = input.u16();
                h.kick(q);
            }
            6 => {
                let q = usize::from(input.u8()) % queues;
                let shape = input.u8();
                let size = 1u16 << (shape % 9);
                let mut address = |alignment: u64| {
                    if shape & 0x80 != 0 {
                        input.u64()
                    } else {
                        (POOL_BASE + u64::from(input.u32()) % POOL_SIZE) & !(alignment - 1)
                    }
                };
                let (desc, avail, used) = (address(16), address(2), address(4));
                let vring = &h.vrings[q];
                vring.set_queue_ready(false);
                vring.set_queue_size(size);
                let placed = vring.set_queue_info(desc, avail, used).is_ok();
                if placed {
                    let used_seen = h.read_u16(used + 2);
                    h.rings[q] = Ring { size, desc, avail, used, next_desc: 0, used_seen, moved: true };
                } else {
                    // Refused (as a frontend's SET_VRING_ADDR would be): the
                    // ring stays where it was, at its size.
                    let old = h.rings[q];
                    vring.set_queue_size(old.size);
                    assert!(vring.set_queue_info(old.desc, old.avail, old.used).is_ok(), "ring cannot go back");
                }
                vring.set_queue_ready(true);
            }
            7 => {
                let (offset, size) = (input.u32(), input.u32());
                let config = h.backend.get_config(offset, size);
                let published = h.backend.setup().config_bytes();
                let expected = usize::try_from(offset)
                    .ok()
                    .and_then(|offset| published.get(offset..offset.checked_add(size as usize)?))
                    .unwrap_or(&[]);
                assert_eq!(config, expected, "GET_CONFIG {offset:#x}+{size:#x}");
                let bytes = input.chunk();
                assert!(h.backend.set_config(offset, bytes).is_ok());
                assert_eq!(h.backend.setup().config_bytes(), published, "SET_CONFIG changed config space");
            }
            _ => match input.u8() % 5 {
                0 => {
                    h.backend.reset_device();
                    h.forget_instances();
                }
                1 => {
                    let q = u32::from(input.u8());
                    assert!(h.backend.stop_vring(q).is_ok());
                    // A stopped config or event queue resets the device;
                    // a notification queue ends its instance.
                    match q {
                        0 | 1 => h.forget_instances(),
                        q => {
                            h.instances.remove(&(q.wrapping_sub(2)));
                        }
                    }
                }
                2 => {
                    h.features = input.u64();
                    h.backend.acked_features(h.features);
                }
                3 => h.backend.set_event_idx(input.bool()),
                _ => {
                    let table = h.memory_table(input.u8());
                    let _ = h.backend.update_memory(GuestMemoryAtomic::new(table));
                }
            },
        }
    }
}
