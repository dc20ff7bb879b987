//! Host unit tests: the pure checks with hostile values, region access on
//! host memory, and the whole driver against an emulated device (the
//! virtio-mmio fake register file plus a small split-ring device that
//! serves the config, event and notification queues like the backend).

use std::alloc::{Layout, alloc_zeroed};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use std::vec::Vec;

use hostmem_wire::zerocopy::{FromZeros, IntoBytes};
use hostmem_wire::{
    Config, ConfigRequest, ConfigResponse, EXAMPLE_VENDOR_ID, Event as WireEvent, Notification as WireNotification,
    Opcode, Request, Status, SubdeviceEntry, WireError, codec, echo, feature,
};

use super::*;
use crate::dma::{self, PoolHal, PoolId};
use crate::platform::Range;
use crate::virtio::mmio::{FakeQueue, FakeRegisters, MmioError, MmioV2Transport, Registers, reg};

const PAGE: u64 = 4096;

fn entry(shmid: u32, base: u64, len: u64) -> SubdeviceEntry {
    SubdeviceEntry::new(EXAMPLE_VENDOR_ID, echo::DEVICE_ID, echo::REVISION, shmid, base, len, 0)
}

fn range(base: u64, size: u64) -> Range {
    Range::new(base, size).unwrap()
}

/// A QEMU-virt-like guest: image, tree, heap, pool and a virtio window.
fn owned() -> OwnedRanges {
    let mut owned = OwnedRanges::new();
    owned.push(OwnedKind::DeviceTree, range(0x4000_0000, 0x2000));
    owned.push(OwnedKind::Image, range(0x4008_0000, 0x10_0000));
    owned.push(OwnedKind::Heap, range(0x4100_0000, 0x100_0000));
    owned.push(OwnedKind::DmaPool(0), range(0x4800_0000, 0x40_0000));
    owned.push(OwnedKind::DeviceWindow, range(0x0a00_3e00, 0x200));
    owned
}

fn region_error(result: Result<(), HostmemError>) -> (u32, RegionReason) {
    match result {
        Err(HostmemError::BadRegion { shmid, reason }) => (shmid, reason),
        other => panic!("expected BadRegion, got {other:?}"),
    }
}

// --- region validation ---

#[test]
fn regions_clear_of_owned_memory_pass() {
    let entries = [entry(0, 0x4900_0000, 0x80_0000), entry(1, 0x4980_0000, 0x80_0000)];
    check_regions(&entries, &owned()).unwrap();
    check_regions(&entries, &OwnedRanges::new()).unwrap();
}

#[test]
fn region_overlapping_each_owned_range_is_refused() {
    let cases = [
        (0x4000_1000, OwnedKind::DeviceTree),
        (0x400f_f000, OwnedKind::Image),
        (0x4100_0000, OwnedKind::Heap),
        (0x483f_f000, OwnedKind::DmaPool(0)),
        (0x0a00_3000, OwnedKind::DeviceWindow),
    ];
    for (base, kind) in cases {
        let (shmid, reason) = region_error(check_regions(&[entry(7, base, 0x2000)], &owned()));
        assert_eq!(shmid, 7);
        match reason {
            RegionReason::OverlapsOwned { owned, .. } => assert_eq!(owned, kind, "region at {base:#x}"),
            other => panic!("region at {base:#x}: {other:?}"),
        }
    }
    // Touching but not overlapping is fine: the pool ends at 0x4840_0000.
    check_regions(&[entry(7, 0x4840_0000, 0x1000)], &owned()).unwrap();
}

#[test]
fn overlapping_regions_are_refused() {
    let entries = [entry(3, 0x4900_0000, 0x2000), entry(4, 0x4900_1000, 0x2000)];
    let (shmid, reason) = region_error(check_regions(&entries, &owned()));
    assert_eq!((shmid, reason), (4, RegionReason::OverlapsRegion { other_shmid: 3 }));
}

#[test]
fn malformed_regions_are_refused() {
    let cases = [
        (entry(1, 0x4900_0000, 0), RegionReason::Empty),
        (entry(1, 0x4900_0800, 0x1000), RegionReason::Misaligned { base: 0x4900_0800, len: 0x1000 }),
        (entry(1, 0x4900_0000, 0x1800), RegionReason::Misaligned { base: 0x4900_0000, len: 0x1800 }),
        (entry(1, u64::MAX - 0xfff, 0x2000), RegionReason::Wraps { base: u64::MAX - 0xfff, len: 0x2000 }),
    ];
    for (entry, expected) in cases {
        assert_eq!(region_error(check_regions(&[entry], &owned())), (1, expected));
    }
}

#[test]
fn region_errors_name_the_region_and_the_reason() {
    let error = check_regions(&[entry(9, 0x4100_0000, 0x1000)], &owned()).unwrap_err();
    let text = std::format!("{error}");
    assert!(text.contains("shmid 9") && text.contains("the heap") && text.contains("0x41000000"), "{text}");
}

#[test]
fn shm_registers_are_cross_checked() {
    let e = entry(2, 0x4900_0000, 0x4000);
    check_shm(&e, Ok(None)).unwrap();
    check_shm(&e, Ok(Some((0x4900_0000, 0x4000)))).unwrap();
    assert_eq!(
        region_error(check_shm(&e, Ok(Some((0x4900_0000, 0x8000))))),
        (2, RegionReason::ShmMismatch { base: 0x4900_0000, len: 0x4000, shm_base: 0x4900_0000, shm_len: 0x8000 })
    );
    assert!(matches!(region_error(check_shm(&e, Ok(Some((0x4a00_0000, 0x4000))))).1, RegionReason::ShmMismatch { .. }));
    let overflow = MmioError::SharedMemoryOverflow { id: 2, base: u64::MAX, len: 2 };
    assert_eq!(region_error(check_shm(&e, Err(overflow))), (2, RegionReason::ShmInvalid(overflow)));
}

#[test]
fn regions_beyond_the_page_table_are_refused() {
    let limit = 1 << 39;
    check_mappable(&[entry(0, limit - PAGE, PAGE)], limit).unwrap();
    assert_eq!(
        region_error(check_mappable(&[entry(5, limit - PAGE, 2 * PAGE)], limit)),
        (5, RegionReason::BeyondAddressSpace { end: limit + PAGE, limit })
    );
}

// --- response and event validation ---

fn created(instance_id: u32) -> ConfigResponse {
    ConfigResponse::created(0, entry(0, 0x4900_0000, 0x10_0000), instance_id).unwrap()
}

fn create_request() -> Request {
    Request::Create { subdevice_index: 0, completion_offset: Some(0) }
}

#[test]
fn good_responses_pass() {
    let known = entry(0, 0x4900_0000, 0x10_0000);
    let response = check_response(created(1).as_bytes(), 72, &create_request(), 4, Some(&known)).unwrap();
    assert_eq!(response.instance_id.get(), 1);
    // A used length beyond the buffer is clamped, not trusted.
    check_response(created(1).as_bytes(), u32::MAX, &create_request(), 4, Some(&known)).unwrap();
    let pong = ConfigResponse::pong(77);
    check_response(pong.as_bytes(), 72, &Request::Ping { cookie: 77 }, 4, None).unwrap();
}

#[test]
fn hostile_responses_are_typed_errors() {
    let request = create_request();
    let bad = |bytes: &[u8], used: u32| check_response(bytes, used, &request, 4, None).unwrap_err();
    assert!(matches!(
        bad(created(1).as_bytes(), 71),
        HostmemError::BadResponse { opcode: Opcode::Create, error: WireError::ShortBuffer { needed: 72, got: 71 } }
    ));
    assert!(matches!(bad(created(1).as_bytes(), 0), HostmemError::BadResponse { .. }));
    // Status the driver does not know.
    let mut unknown_status = created(1);
    unknown_status.status.set(99);
    assert!(matches!(
        bad(unknown_status.as_bytes(), 72),
        HostmemError::BadResponse { error: WireError::UnknownStatus(99), .. }
    ));
    // A proper refusal.
    let refusal = ConfigResponse::failure(1, Status::NoFreeInstance);
    assert!(matches!(
        bad(refusal.as_bytes(), 72),
        HostmemError::Refused { opcode: Opcode::Create, status: Status::NoFreeInstance }
    ));
    // A refusal with junk in it.
    let mut junk = refusal;
    junk.instance_id.set(3);
    assert!(matches!(bad(junk.as_bytes(), 72), HostmemError::BadResponse { .. }));
    // Wrong opcode echoed.
    let mut wrong_opcode = created(1);
    wrong_opcode.opcode.set(2);
    assert!(matches!(bad(wrong_opcode.as_bytes(), 72), HostmemError::BadResponse { .. }));
    // Instance id out of range, and notify_queue not 2 + id.
    assert!(matches!(bad(created(4).as_bytes(), 72), HostmemError::BadResponse { .. }));
    let mut wrong_queue = created(1);
    wrong_queue.notify_queue.set(5);
    assert!(matches!(bad(wrong_queue.as_bytes(), 72), HostmemError::BadResponse { .. }));
    // An entry that differs from what config space said.
    let other = entry(0, 0x4a00_0000, 0x10_0000);
    assert!(matches!(
        check_response(created(1).as_bytes(), 72, &request, 4, Some(&other)),
        Err(HostmemError::BadResponse { error: WireError::Inconsistent { .. }, .. })
    ));
    // Ping cookie not echoed.
    assert!(matches!(
        check_response(ConfigResponse::pong(1).as_bytes(), 72, &Request::Ping { cookie: 2 }, 4, None),
        Err(HostmemError::BadResponse { .. })
    ));
}

#[test]
fn created_instances_must_have_a_queue_and_be_new() {
    check_created(1, 2, false).unwrap();
    assert!(matches!(check_created(2, 2, false), Err(HostmemError::NotifyQueueNotSetUp { instance_id: 2, queues: 2 })));
    assert!(matches!(check_created(0, 2, true), Err(HostmemError::BadResponse { .. })));
}

fn view(id: u32) -> Option<InstanceView> {
    (id == 1).then_some(InstanceView { region_len: 0x10000, last_sent: 5 })
}

#[test]
fn good_events_decode() {
    let event = WireEvent::completion(1, 5, 0x100, 0x200, [7; 32]).with_dropped(3);
    let checked = check_event(event.as_bytes(), 80, 4, view).unwrap();
    assert_eq!(checked.kind, EventKind::Completion);
    assert_eq!((checked.seq, checked.offset, checked.size, checked.dropped), (5, 0x100, 0x200, 3));
    assert_eq!(checked.metadata, [7; 32]);
    let lost = WireEvent::instance_lost(1, 0, Status::DeviceError);
    assert_eq!(
        check_event(lost.as_bytes(), u32::MAX, 4, view).unwrap().kind,
        EventKind::InstanceLost(Status::DeviceError)
    );
    let error = WireEvent::error(1, 4, Status::BadRange);
    assert_eq!(check_event(error.as_bytes(), 80, 4, view).unwrap().kind, EventKind::Error(Status::BadRange));
}

#[test]
fn hostile_events_are_typed_errors() {
    let good = WireEvent::completion(1, 5, 0, 16, [0; 32]);
    let bad = |event: WireEvent, used: u32| match check_event(event.as_bytes(), used, 4, view) {
        Err(HostmemError::BadEvent(error)) => error,
        other => panic!("expected BadEvent, got {other:?}"),
    };
    assert_eq!(bad(good, 79), WireError::ShortBuffer { needed: 80, got: 79 });
    let mut e = good;
    e.event_type.set(9);
    assert_eq!(bad(e, 80), WireError::UnknownEventType(9));
    let mut e = good;
    e.status.set(200);
    assert_eq!(bad(e, 80), WireError::UnknownStatus(200));
    let mut e = good;
    e.instance_id.set(4);
    assert!(matches!(bad(e, 80), WireError::InstanceOutOfRange { instance_id: 4, .. }));
    let mut e = good;
    e.instance_id.set(2); // in range, but not live
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
    let mut e = good;
    e.seq.set(6); // never sent
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
    let mut e = good;
    e.seq.set(0);
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
    let mut e = good;
    e.offset.set(0x10000 - 8); // result runs past the region
    assert!(matches!(bad(e, 80), WireError::OutOfRange { .. }));
    let mut e = good;
    e.offset.set(u64::MAX);
    assert!(matches!(bad(e, 80), WireError::RangeOverflow { .. }));
    let mut e = good;
    e.dropped.set(1); // without EVENT_F_OVERFLOW
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
    let mut e = good;
    e.flags.set(2);
    assert!(matches!(bad(e, 80), WireError::UnknownFlags { .. }));
    let mut e = good;
    e.status.set(Status::BadRange.into()); // COMPLETION must be OK
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
    let mut e = WireEvent::error(1, 5, Status::BadRange);
    e.status.set(0); // ERROR must not be OK
    assert!(matches!(bad(e, 80), WireError::Inconsistent { .. }));
}

#[test]
fn completion_words_only_grow_up_to_the_last_seq_sent() {
    check_completion_value(0, 3, 2, 5).unwrap();
    check_completion_value(0, 0, 0, 0).unwrap();
    assert!(matches!(check_completion_value(0, 6, 2, 5), Err(HostmemError::BadCompletionWord { value: 6, .. })));
    assert!(matches!(check_completion_value(0, 1, 2, 5), Err(HostmemError::BadCompletionWord { value: 1, .. })));
}

#[test]
fn counters_subtract_and_print() {
    let earlier = Counters { doorbells: 2, notifications: 1, bytes_copied_by_transport: 100, ..Counters::default() };
    let now = Counters {
        doorbells: 5,
        interrupts: 1,
        events: 1,
        events_dropped: 0,
        notifications: 3,
        config_requests: 1,
        bytes_copied_by_transport: 252,
        payload_bytes_copied_by_transport: 40,
    };
    let delta = now.since(&earlier);
    assert_eq!((delta.doorbells, delta.notifications, delta.bytes_copied_by_transport), (3, 2, 152));
    assert_eq!(earlier.since(&now), Counters::default(), "saturates");
    let text = std::format!("{delta}");
    assert!(text.contains("3 doorbells") && text.contains("152 bytes"), "{text}");
}

// --- region access ---

fn host_pages(pages: usize) -> u64 {
    let layout = Layout::from_size_align(pages * PAGE as usize, PAGE as usize).unwrap();
    // SAFETY: non-zero size.
    let memory = unsafe { alloc_zeroed(layout) };
    assert!(!memory.is_null());
    memory as u64
}

fn host_region(pages: usize) -> RegionMemory {
    let base = host_pages(pages);
    // SAFETY: leaked, page-aligned host memory used by nothing else.
    unsafe { RegionMemory::new(core::ptr::NonNull::new(base as *mut u8).unwrap(), pages as u64 * PAGE, 3) }
}

#[test]
fn region_copies_round_trip_at_any_alignment() {
    let region = host_region(2);
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for offset in [0u64, 1, 7, 8, 4095, 8192 - 1000] {
        region.write(offset, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        region.read(offset, &mut back).unwrap();
        assert_eq!(back, data, "offset {offset}");
    }
    region.write_u64(13, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(region.read_u64(13).unwrap(), 0x1122_3344_5566_7788);
    region.fill(100, 300, 0xab).unwrap();
    let mut back = [0u8; 302];
    region.read(99, &mut back).unwrap();
    assert!(back[1..301].iter().all(|&b| b == 0xab) && back[0] != 0xab && back[301] != 0xab);
    assert_eq!((region.len(), region.shmid(), region.is_empty()), (8192, 3, false));
}

#[test]
fn region_accesses_are_bounds_checked() {
    let region = host_region(1);
    let mut buffer = [0u8; 16];
    region.read(4096 - 16, &mut buffer).unwrap();
    region.read(4096, &mut []).unwrap();
    assert!(matches!(region.read(4096 - 15, &mut buffer), Err(HostmemError::Range(WireError::OutOfRange { .. }))));
    assert!(matches!(region.write(u64::MAX - 4, &buffer), Err(HostmemError::Range(WireError::RangeOverflow { .. }))));
    assert!(matches!(region.fill(4000, 97, 0), Err(HostmemError::Range(_))));
    assert!(matches!(region.load_acquire_u64(4), Err(HostmemError::Range(WireError::Misaligned { .. }))));
    assert!(matches!(region.load_acquire_u64(4096), Err(HostmemError::Range(_))));
    assert!(region.as_raw(4095, 1).is_ok());
    assert!(matches!(region.as_raw(4095, 2), Err(HostmemError::Range(_))));
    assert_eq!(region.as_raw(16, 1).unwrap().as_ptr() as u64, region.base_address() + 16);
}

#[test]
fn live_completion_words_cannot_be_written() {
    let mut region = host_region(1);
    region.guard(64);
    assert!(matches!(region.write(60, &[0; 8]), Err(HostmemError::CompletionWordWrite { offset: 64 })));
    assert!(matches!(region.write_u64(64, 1), Err(HostmemError::CompletionWordWrite { .. })));
    assert!(matches!(region.fill(0, 4096, 0), Err(HostmemError::CompletionWordWrite { .. })));
    region.write(56, &[1; 8]).unwrap();
    region.write(72, &[1; 8]).unwrap();
    assert!(region.overlaps_guarded_word(64) && !region.overlaps_guarded_word(72));
    // The device's value is readable with acquire.
    // SAFETY: an 8-aligned word of the test region, written as the device would.
    unsafe { AtomicU64::from_ptr((region.base_address() + 64) as *mut u64) }.store(9, Ordering::Release);
    assert_eq!(region.load_acquire_u64(64).unwrap(), 9);
    region.unguard(64);
    region.write_u64(64, 0).unwrap();
}

// --- the driver against an emulated device ---

const SLOT: usize = 4;
type TestHal = PoolHal<SLOT>;
const POOL_PAGES: usize = 1024;

/// The shared test pool in slot 4 (the registry is global), and a lock:
/// these tests count pool bytes and pages, so they run one at a time.
fn pool() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    test_pool().release_reservations();
    guard
}

/// The handle of the shared test pool, registered on first use.
fn test_pool() -> PoolId {
    static POOL: OnceLock<PoolId> = OnceLock::new();
    *POOL.get_or_init(|| dma::register(SLOT, range(host_pages(POOL_PAGES), POOL_PAGES as u64 * PAGE)).unwrap())
}

fn free_pages() -> usize {
    test_pool().free_pages()
}

fn pool_range() -> Range {
    test_pool().range()
}

/// Hostile behaviour to switch on.
#[derive(Default)]
struct Knobs {
    /// Hold config requests without answering.
    silent: bool,
    response: Option<fn(&mut ConfigResponse)>,
    config_used_len: Option<u32>,
    event: Option<fn(&mut WireEvent)>,
    /// Completion word value to store instead of the `seq`.
    word: Option<u64>,
    /// Put a chain id the driver never made available on the event queue.
    bogus_event_token: bool,
    /// Leave the notification queues alone: a device that never answers.
    hold_notifications: bool,
    /// Used length to report for a chain with a device-writable part,
    /// instead of the bytes written.
    inline_used_len: Option<u32>,
}

#[derive(Clone, Copy)]
struct EmuInstance {
    subdevice: u32,
    word: Option<u64>,
    last_seq: u64,
}

/// What the emulated device found in a chain with a device-writable part.
#[derive(Clone, Debug)]
struct InlineSeen {
    notification: WireNotification,
    /// Lengths of the device-readable descriptors, in order.
    readable: Vec<u32>,
    /// The device-readable bytes after the notification.
    input: Vec<u8>,
    /// Total length of the device-writable part.
    capacity: usize,
}

/// What the emulated device writes for a DECODE_INLINE chain (appendix
/// A.3), decoding stood in for: the input as a `len` x 1 RGB image whose
/// pixel `i` is (byte, !byte, seq). An empty input is BAD_INPUT: a failed
/// header alone.
fn inline_frame(seq: u64, input: &[u8]) -> Vec<u8> {
    let Ok(info) = codec::FrameInfo::decoded(seq, input.len() as u32, 1, 3, 0) else {
        return codec::FrameInfo::failed(seq, Status::BadInput).as_bytes().to_vec();
    };
    let mut frame = info.as_bytes().to_vec();
    for &byte in input {
        frame.extend_from_slice(&[byte, !byte, seq as u8]);
    }
    frame
}

#[derive(Clone, Copy)]
struct Buffer {
    addr: u64,
    len: u32,
    writable: bool,
}

/// The device side: serves the rings the driver set up, like the backend.
struct Emu {
    fake: FakeRegisters,
    entries: Vec<SubdeviceEntry>,
    last_avail: Vec<u16>,
    event_buffers: VecDeque<(u16, Buffer)>,
    held: Vec<(u16, Vec<Buffer>)>,
    inline_seen: Vec<InlineSeen>,
    instances: Vec<Option<EmuInstance>>,
    interrupts: u32,
    dropped: u32,
    knobs: Knobs,
}

/// Reads `len` bytes of guest (host test) memory.
fn peek(addr: u64, len: usize) -> Vec<u8> {
    // SAFETY: ring and buffer addresses of the test pool or regions.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec()
}

fn poke(addr: u64, bytes: &[u8]) {
    // SAFETY: as for `peek`, device-writable memory.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
}

fn atomic16(addr: u64) -> &'static AtomicU16 {
    // SAFETY: 2-aligned ring index fields in the test pool.
    unsafe { AtomicU16::from_ptr(addr as *mut u16) }
}

impl Emu {
    fn queue(&self, index: usize) -> FakeQueue {
        self.fake.device().queues[index].clone()
    }

    fn push_used(&mut self, index: usize, id: u32, len: u32) {
        let queue = self.queue(index);
        let idx = atomic16(queue.device + 2);
        let at = idx.load(Ordering::Relaxed);
        let slot = u64::from(at) % u64::from(queue.num);
        poke(queue.device + 4 + 8 * slot, &id.to_le_bytes());
        poke(queue.device + 8 + 8 * slot, &len.to_le_bytes());
        idx.store(at.wrapping_add(1), Ordering::Release);
        self.interrupts += 1;
    }

    fn chain(queue: &FakeQueue, head: u16) -> Vec<Buffer> {
        let mut buffers = Vec::new();
        let mut index = head;
        loop {
            let desc = peek(queue.desc + 16 * u64::from(index), 16);
            let flags = u16::from_le_bytes([desc[12], desc[13]]);
            buffers.push(Buffer {
                addr: u64::from_le_bytes(desc[0..8].try_into().unwrap()),
                len: u32::from_le_bytes(desc[8..12].try_into().unwrap()),
                writable: flags & 2 != 0,
            });
            if flags & 1 == 0 || buffers.len() > 16 {
                return buffers;
            }
            index = u16::from_le_bytes([desc[14], desc[15]]);
        }
    }

    fn step(&mut self) {
        let held = if self.knobs.silent { Vec::new() } else { std::mem::take(&mut self.held) };
        for (head, chain) in held {
            self.serve_config(head, &chain);
        }
        let count = self.fake.device().queues.len();
        self.last_avail.resize(count, 0);
        for index in 0..count {
            let queue = self.queue(index);
            if !queue.ready || queue.desc == 0 || (index >= 2 && self.knobs.hold_notifications) {
                continue;
            }
            loop {
                let avail = atomic16(queue.driver + 2).load(Ordering::Acquire);
                let next = self.last_avail[index];
                if next == avail {
                    break;
                }
                self.last_avail[index] = next.wrapping_add(1);
                let slot = u64::from(next) % u64::from(queue.num);
                let head_bytes = peek(queue.driver + 4 + 2 * slot, 2);
                let head = u16::from_le_bytes([head_bytes[0], head_bytes[1]]);
                let chain = Self::chain(&queue, head);
                match index {
                    0 if self.knobs.silent => self.held.push((head, chain)),
                    0 => self.serve_config(head, &chain),
                    1 => self.event_buffers.push_back((head, chain[0])),
                    _ => self.serve_notification(index, head, &chain),
                }
            }
        }
        if self.knobs.bogus_event_token {
            self.knobs.bogus_event_token = false;
            self.push_used(1, 15, 80);
        }
    }

    fn serve_config(&mut self, head: u16, chain: &[Buffer]) {
        let readable = chain.iter().find(|b| !b.writable).unwrap();
        let writable = chain.iter().find(|b| b.writable).unwrap();
        let request = ConfigRequest::read(&peek(readable.addr, readable.len as usize)).unwrap();
        let mut response = match request.decode().unwrap() {
            Request::Create { subdevice_index, completion_offset } => {
                let ready = |i: usize| self.fake.device().queues.get(2 + i).is_some_and(|q| q.ready);
                let free = (0..self.instances.len()).find(|&i| self.instances[i].is_none() && ready(i));
                match (self.entries.get(subdevice_index as usize), free) {
                    (Some(entry), Some(id)) => {
                        if let Some(offset) = completion_offset {
                            poke(entry.region_base.get() + offset, &0u64.to_le_bytes());
                        }
                        self.instances[id] =
                            Some(EmuInstance { subdevice: subdevice_index, word: completion_offset, last_seq: 0 });
                        ConfigResponse::created(subdevice_index, *entry, id as u32).unwrap()
                    }
                    (None, _) => ConfigResponse::failure(1, Status::UnknownSubdevice),
                    (_, None) => ConfigResponse::failure(1, Status::NoFreeInstance),
                }
            }
            Request::Destroy { instance_id } => match self.instances.get_mut(instance_id as usize) {
                Some(slot @ Some(_)) => {
                    *slot = None;
                    ConfigResponse::destroyed(instance_id)
                }
                _ => ConfigResponse::failure(2, Status::BadInstance),
            },
            Request::QuerySubdevice { subdevice_index } => match self.entries.get(subdevice_index as usize) {
                Some(entry) => ConfigResponse::queried(subdevice_index, *entry),
                None => ConfigResponse::failure(3, Status::UnknownSubdevice),
            },
            Request::Ping { cookie } => ConfigResponse::pong(cookie),
        };
        if let Some(mutate) = self.knobs.response {
            mutate(&mut response);
        }
        poke(writable.addr, response.as_bytes());
        self.push_used(0, head.into(), self.knobs.config_used_len.unwrap_or(72));
    }

    fn serve_notification(&mut self, index: usize, head: u16, chain: &[Buffer]) {
        if chain.iter().any(|buffer| buffer.writable) {
            return self.serve_inline(index, head, chain);
        }
        let id = (index - 2) as u32;
        let notification = WireNotification::read(&peek(chain[0].addr, chain[0].len as usize)).unwrap();
        self.push_used(index, head.into(), 0);
        let Some(mut instance) = self.instances[id as usize] else {
            return;
        };
        let entry = self.entries[instance.subdevice as usize];
        let (base, len) = (entry.region_base.get(), entry.region_len.get());
        let seq = notification.seq.get();
        let (offset, size) = (notification.offset.get(), notification.size.get());
        let meta = echo::CopyMeta::from_metadata(notification.metadata);
        let outcome = notification
            .check(id, instance.last_seq, len)
            .and_then(|()| echo::Op::try_from(notification.opcode.get()).map(|_| ()))
            .and_then(|()| meta.check(len, offset, size));
        instance.last_seq = seq;
        self.instances[id as usize] = Some(instance);
        let suppress = self.fake.device().driver_features & feature::mask(feature::EVENT_SUPPRESS) != 0;
        let event = match outcome {
            Ok(()) => {
                let dest = meta.dest_offset.get();
                poke(base + dest, &peek(base + offset, size as usize));
                (notification.wants_event() || !suppress).then(|| WireEvent::completion(id, seq, dest, size, [0; 32]))
            }
            Err(error) => Some(WireEvent::error(id, seq, error.status())),
        };
        if let Some(event) = event {
            self.send_event(event);
        }
        if let Some(word) = instance.word {
            let value = self.knobs.word.unwrap_or(seq);
            // SAFETY: an 8-aligned word inside the test region.
            unsafe { AtomicU64::from_ptr((base + word) as *mut u64) }.store(value.to_le(), Ordering::Release);
        }
    }

    /// A chain with a device-writable part, served as DECODE_INLINE: the
    /// input is every device-readable byte after the notification, the
    /// result ([`inline_frame`]) goes into the device-writable buffers in
    /// order, the used length is the bytes written.
    fn serve_inline(&mut self, index: usize, head: u16, chain: &[Buffer]) {
        let id = (index - 2) as u32;
        let readable: Vec<Buffer> = chain.iter().copied().filter(|buffer| !buffer.writable).collect();
        let writable: Vec<Buffer> = chain.iter().copied().filter(|buffer| buffer.writable).collect();
        let bytes: Vec<u8> = readable.iter().flat_map(|buffer| peek(buffer.addr, buffer.len as usize)).collect();
        let notification = WireNotification::read(&bytes).unwrap();
        let input = bytes[size_of::<WireNotification>()..].to_vec();
        let capacity = writable.iter().map(|buffer| buffer.len as usize).sum();
        self.inline_seen.push(InlineSeen {
            notification,
            readable: readable.iter().map(|buffer| buffer.len).collect(),
            input: input.clone(),
            capacity,
        });
        let Some(mut instance) = self.instances[id as usize] else {
            self.push_used(index, head.into(), 0);
            return;
        };
        let entry = self.entries[instance.subdevice as usize];
        let (base, len) = (entry.region_base.get(), entry.region_len.get());
        let seq = notification.seq.get();
        let checked = notification.check(id, instance.last_seq, len).map_err(|error| error.status());
        instance.last_seq = seq;
        self.instances[id as usize] = Some(instance);
        let frame = match checked {
            Ok(()) => {
                let frame = inline_frame(seq, &input);
                if frame.len() <= capacity {
                    frame
                } else if capacity >= codec::FRAME_HEADER_SIZE as usize {
                    codec::FrameInfo::failed(seq, Status::NoSpace).as_bytes().to_vec()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        let mut rest = &frame[..];
        for buffer in &writable {
            let n = rest.len().min(buffer.len as usize);
            poke(buffer.addr, &rest[..n]);
            rest = &rest[n..];
        }
        self.push_used(index, head.into(), self.knobs.inline_used_len.unwrap_or(frame.len() as u32));
        let header = codec::FrameInfo::read(&frame);
        let status = match (checked, header) {
            (Err(status), _) => status,
            (Ok(()), Ok(header)) => Status::try_from(header.status.get()).unwrap(),
            (Ok(()), Err(_)) => Status::NoSpace,
        };
        let suppress = self.fake.device().driver_features & feature::mask(feature::EVENT_SUPPRESS) != 0;
        let event = match header {
            Ok(header) if status == Status::Ok => (notification.wants_event() || !suppress)
                .then(|| WireEvent::completion(id, seq, 0, 0, header.to_metadata())),
            _ => Some(WireEvent::error(id, seq, status)),
        };
        if let Some(event) = event {
            self.send_event(event);
        }
        if let Some(word) = instance.word {
            // SAFETY: an 8-aligned word inside the test region.
            unsafe { AtomicU64::from_ptr((base + word) as *mut u64) }.store(seq.to_le(), Ordering::Release);
        }
    }

    fn send_event(&mut self, event: WireEvent) {
        let Some((head, buffer)) = self.event_buffers.pop_front() else {
            self.dropped += 1;
            return;
        };
        let mut event = event.with_dropped(std::mem::take(&mut self.dropped));
        if let Some(mutate) = self.knobs.event {
            mutate(&mut event);
        }
        poke(buffer.addr, &event.as_bytes()[..buffer.len.min(80) as usize]);
        self.push_used(1, head.into(), 80);
    }
}

/// Runs the emulated device whenever the driver waits.
struct EmuWakeup(Rc<RefCell<Emu>>);

impl Wakeup for EmuWakeup {
    fn count(&self) -> u32 {
        self.0.borrow().interrupts
    }

    fn wait_beyond(&self, seen: u32, _timeout: Duration) -> bool {
        self.0.borrow_mut().step();
        self.count() != seen
    }

    fn idle(&self) {
        self.0.borrow_mut().step();
    }
}

const FEATURES: u64 = (1 << 32)
    | (1 << 33)
    | (1 << hostmem_wire::feature::COMPLETION_WORD)
    | (1 << hostmem_wire::feature::EVENT_SUPPRESS);

struct Rig {
    fake: FakeRegisters,
    emu: Rc<RefCell<Emu>>,
}

/// A device with `entries` (regions in host memory when `base` is 0) and
/// `max_instances` instance slots.
fn rig(mut entries: Vec<SubdeviceEntry>, max_instances: u32) -> Rig {
    for entry in &mut entries {
        if entry.region_base.get() == 0 {
            let pages = (entry.region_len.get() / PAGE) as usize;
            entry.region_base.set(host_pages(pages));
        }
    }
    let fake = FakeRegisters::new(hostmem_wire::DEVICE_ID_DEFAULT);
    {
        let mut device = fake.device();
        device.device_features = FEATURES;
        device.queues = vec![FakeQueue { num_max: 64, ..FakeQueue::default() }; 2 + max_instances as usize];
    }
    let mut config = Config::from_subdevices(max_instances, &entries).unwrap_or_else(|_| {
        // Invalid on purpose: build it by hand.
        let mut config = Config::new_zeroed();
        config.magic.set(hostmem_wire::MAGIC);
        config.version.set(hostmem_wire::LAYOUT_VERSION);
        config.max_instances.set(max_instances);
        config.num_subdevices.set(entries.len() as u32);
        config.entries_present.set(entries.len().min(6) as u16);
        for (slot, entry) in config.entries.iter_mut().zip(&entries) {
            *slot = *entry;
        }
        config
    });
    config.max_instances.set(max_instances);
    fake.set_config(0, config.as_bytes());
    let emu = Emu {
        fake: fake.clone(),
        entries,
        last_avail: Vec::new(),
        event_buffers: VecDeque::new(),
        held: Vec::new(),
        inline_seen: Vec::new(),
        instances: vec![None; max_instances as usize],
        interrupts: 0,
        dropped: 0,
        knobs: Knobs::default(),
    };
    Rig { fake, emu: Rc::new(RefCell::new(emu)) }
}

fn echo_rig() -> Rig {
    rig(vec![entry(0, 0, 4 * PAGE), SubdeviceEntry::new(0xffff_0001, 1, 1, 1, 0, 2 * PAGE, 0)], 4)
}

fn options() -> Options {
    Options { instances: 2, request_timeout: Duration::from_secs(2), ..Options::default() }
}

fn probe_with<R: Registers>(
    rig: &Rig,
    regs: R,
    owned: &OwnedRanges,
) -> Result<Hostmem<TestHal, MmioV2Transport<R>>, HostmemError> {
    let transport = MmioV2Transport::new(regs).unwrap();
    let wakeup: Box<dyn Wakeup> = Box::new(EmuWakeup(rig.emu.clone()));
    Hostmem::from_transport(transport, test_pool(), owned, options(), Some(wakeup))
}

fn probe(rig: &Rig) -> Result<Hostmem<TestHal, MmioV2Transport<FakeRegisters>>, HostmemError> {
    let mut owned = OwnedRanges::new();
    owned.push(OwnedKind::DmaPool(SLOT), pool_range());
    probe_with(rig, rig.fake.clone(), &owned)
}

fn echo(offset: u64, size: u64, dest: u64, want_event: bool) -> Notification {
    Notification { opcode: 1, offset, size, metadata: echo::CopyMeta::new(dest).to_metadata(), want_event }
}

const FAILED: u32 = 128;
const DRIVER_OK: u32 = 4;

#[test]
fn echo_round_trip_through_the_emulated_device() {
    let _pool = pool();
    let free = free_pages();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    assert_eq!(rig.fake.device().status & DRIVER_OK, DRIVER_OK);
    assert_eq!(rig.fake.device().driver_features, FEATURES, "every feature the driver uses, negotiated");
    assert!(hostmem.completion_words() && hostmem.event_suppression());
    assert_eq!((hostmem.max_instances(), hostmem.instance_slots()), (4, 2));
    assert!(free_pages() < free, "rings and event buffers come from the pool");
    // Two notification queues set up, the other two left alone.
    assert_eq!(rig.fake.device().queues.iter().filter(|q| q.ready).count(), 4);

    hostmem.ping(0x5eed).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    assert_eq!(hostmem.subdevice_info(sub).unwrap().revision, echo::REVISION);
    assert!(matches!(hostmem.find_subdevice(1, 2), Err(HostmemError::NoSuchSubdevice { .. })));
    let instance = hostmem.create_instance(sub, Some(8)).unwrap();
    assert!(matches!(hostmem.region(sub).unwrap().write_u64(8, 1), Err(HostmemError::CompletionWordWrite { .. })));

    let before = hostmem.counters();
    let payload = b"echo through hostmem";
    hostmem.region(sub).unwrap().write(PAGE, payload).unwrap();
    let seq = hostmem.notify(&instance, echo(PAGE, payload.len() as u64, 2 * PAGE, true)).unwrap();
    assert_eq!(seq, 1);
    hostmem.wait_completion(&instance, seq, Duration::from_secs(2)).unwrap();
    assert_eq!(hostmem.completion_word(&instance).unwrap(), 1);
    let event = hostmem.wait_event(Duration::from_secs(2)).unwrap();
    assert_eq!(
        (event.instance_id, event.kind, event.seq, event.offset, event.size),
        (instance.id(), EventKind::Completion, 1, 2 * PAGE, payload.len() as u64)
    );
    let mut back = [0u8; 20];
    hostmem.region(sub).unwrap().read(2 * PAGE, &mut back).unwrap();
    assert_eq!(&back, payload);

    let cost = hostmem.counters().since(&before);
    assert_eq!((cost.notifications, cost.events, cost.config_requests), (1, 1, 0));
    // One notify for the notification, one for the re-posted event buffer.
    assert_eq!(cost.doorbells, 2);
    // 72 bytes of notification in, 80 bytes of event out; the payload never.
    assert_eq!(cost.bytes_copied_by_transport, 72 + 80);
    assert_eq!(cost.payload_bytes_copied_by_transport, 0);
    assert!(cost.interrupts >= 1);

    // Without an event: completion only through the word.
    let seq = hostmem.notify(&instance, echo(PAGE, 4, 3 * PAGE, false)).unwrap();
    hostmem.wait_completion(&instance, seq, Duration::from_secs(2)).unwrap();
    assert!(hostmem.poll_event().unwrap().is_none());

    // A range the device refuses (overlapping copy) is reported at the wait.
    let seq = hostmem.notify(&instance, echo(PAGE, 16, PAGE + 8, false)).unwrap();
    assert!(matches!(
        hostmem.wait_completion(&instance, seq, Duration::from_secs(2)),
        Err(HostmemError::NotificationFailed { seq: 3, status: Status::BadRange, .. })
    ));
    // A range outside the region never leaves the guest.
    assert!(matches!(hostmem.notify(&instance, echo(4 * PAGE - 4, 8, 0, true)), Err(HostmemError::Range(_))));
    assert!(matches!(hostmem.wait_completion(&instance, 9, Duration::ZERO), Err(HostmemError::SeqNotSent { .. })));

    hostmem.destroy_instance(instance).unwrap();
    assert!(rig.emu.borrow().instances.iter().all(Option::is_none));
    hostmem.region(sub).unwrap().write_u64(8, 0).unwrap();
    let stats = hostmem.counters();
    assert_eq!((stats.notifications, stats.config_requests), (3, 3));
    drop(hostmem);
    assert_eq!(rig.fake.device().status, 0, "dropping resets the device");
}

#[test]
fn instances_are_checked_and_recycled() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let a = hostmem.create_instance(sub, Some(0)).unwrap();
    // Completion word checks before the request leaves the guest.
    assert!(matches!(hostmem.create_instance(sub, Some(0)), Err(HostmemError::Range(WireError::Overlap { .. }))));
    assert!(matches!(hostmem.create_instance(sub, Some(4)), Err(HostmemError::Range(WireError::Misaligned { .. }))));
    assert!(matches!(hostmem.create_instance(sub, Some(4 * PAGE)), Err(HostmemError::Range(_))));
    let b = hostmem.create_instance(sub, None).unwrap();
    // Both slots taken: the device refuses.
    assert!(matches!(
        hostmem.create_instance(sub, None),
        Err(HostmemError::Refused { opcode: Opcode::Create, status: Status::NoFreeInstance })
    ));
    assert!(matches!(hostmem.wait_completion(&b, 1, Duration::ZERO), Err(HostmemError::SeqNotSent { .. })));
    hostmem.notify(&b, echo(0, 0, 64, false)).unwrap();
    assert!(matches!(
        hostmem.wait_completion(&b, 1, Duration::ZERO),
        Err(HostmemError::NoCompletionWord { instance_id: 1 })
    ));
    let a_id = a.id();
    hostmem.destroy_instance(a).unwrap();
    let c = hostmem.create_instance(sub, Some(0)).unwrap();
    assert_eq!(c.id(), a_id, "the id comes back");
    // Sequence numbers start afresh.
    assert_eq!(hostmem.notify(&c, echo(0, 0, 64, false)).unwrap(), 1);
    hostmem.destroy_instance(b).unwrap();
    hostmem.destroy_instance(c).unwrap();
}

#[test]
fn more_than_six_subdevices_are_queried() {
    let _pool = pool();
    let entries = (0..8).map(|i| entry(i, 0, PAGE)).collect();
    let rig = rig(entries, 2);
    let hostmem = probe(&rig).unwrap();
    assert_eq!(hostmem.subdevices().len(), 8);
    assert_eq!(hostmem.subdevices()[7].shmid, 7);
    assert_eq!(hostmem.counters().config_requests, 2);
    assert_eq!(hostmem.region(hostmem.subdevices()[7].subdevice()).unwrap().len(), PAGE);
}

#[test]
fn a_foreign_device_is_left_untouched() {
    let _pool = pool();
    let rig = echo_rig();
    rig.fake.set_config(0, &0x1234_5678u32.to_le_bytes());
    let error = probe(&rig).err().unwrap();
    assert!(matches!(error, HostmemError::NotHostmem { magic: 0x1234_5678 }), "{error}");
    assert!(rig.fake.device().status_writes.is_empty(), "the status register was not touched");
    let rig = echo_rig();
    rig.fake.set_config(4, &2u16.to_le_bytes());
    assert!(matches!(probe(&rig), Err(HostmemError::UnsupportedVersion(2))));
    let rig = echo_rig();
    let transport = MmioV2Transport::new(rig.fake.clone()).unwrap();
    let options = Options { device_id: 22, ..options() };
    let result = Hostmem::<TestHal, _>::from_transport(transport, test_pool(), &OwnedRanges::new(), options, None);
    assert!(matches!(result, Err(HostmemError::WrongDeviceId { expected: 22, found: 21 })));
    assert!(rig.fake.device().status_writes.is_empty());
}

/// A bad region refuses the device: FAILED, nothing allocated.
fn assert_refused<T>(rig: &Rig, result: Result<T, HostmemError>, free: usize) -> HostmemError {
    let error = result.err().expect("the device must be refused");
    let device = rig.fake.device();
    assert_eq!(device.status, FAILED, "{error}: status {:#x}", device.status);
    assert!(device.status_writes.iter().all(|s| s & DRIVER_OK == 0) || error_after_driver_ok(&error));
    drop(device);
    assert_eq!(free_pages(), free, "{error}: pool pages leaked");
    error
}

fn error_after_driver_ok(error: &HostmemError) -> bool {
    matches!(
        error,
        HostmemError::BadRegion { reason: RegionReason::ShmMismatch { .. }, .. } | HostmemError::Timeout { .. }
    )
}

#[test]
fn a_region_in_the_pool_refuses_the_device() {
    let _pool = pool();
    let free = free_pages();
    let pool = pool_range();
    let rig = rig(vec![entry(0, pool.base + 4 * PAGE, PAGE)], 2);
    let error = assert_refused(&rig, probe(&rig), free);
    assert!(matches!(
        error,
        HostmemError::BadRegion {
            shmid: 0,
            reason: RegionReason::OverlapsOwned { owned: OwnedKind::DmaPool(SLOT), .. }
        }
    ));
}

#[test]
fn malformed_config_refuses_the_device() {
    let _pool = pool();
    let free = free_pages();
    let duplicate = rig(vec![entry(0, 0, PAGE), entry(0, 0, PAGE)], 2);
    let error = assert_refused(&duplicate, probe(&duplicate), free);
    assert!(matches!(error, HostmemError::Config(WireError::DuplicateShmid { .. })), "{error}");
    let no_instances = rig(vec![entry(0, 0, PAGE)], 0);
    assert!(matches!(
        assert_refused(&no_instances, probe(&no_instances), free),
        HostmemError::Config(WireError::InvalidMaxInstances(0))
    ));
    let empty = rig(vec![entry(0, 0x10_0000, 0)], 2);
    assert!(matches!(
        assert_refused(&empty, probe(&empty), free),
        HostmemError::BadRegion { reason: RegionReason::Empty, .. }
    ));
}

#[test]
fn shm_mismatch_refuses_the_device_after_queues_exist() {
    let _pool = pool();
    let free = free_pages();
    let rig = echo_rig();
    let base = rig.emu.borrow().entries[0].region_base.get();
    rig.fake.device().shm_regions.push((0, base, 8 * PAGE));
    let error = assert_refused(&rig, probe(&rig), free);
    assert!(matches!(error, HostmemError::BadRegion { shmid: 0, reason: RegionReason::ShmMismatch { .. } }));
    // Matching registers are fine.
    let rig = echo_rig();
    let base = rig.emu.borrow().entries[0].region_base.get();
    rig.fake.device().shm_regions.push((0, base, 4 * PAGE));
    probe(&rig).unwrap();
}

#[test]
fn too_small_a_pool_is_an_error_not_an_exit() {
    let _pool = pool();
    let free = free_pages();
    // Take all but a few pages.
    let hog = dma::with_pool(test_pool(), |pool| {
        let mut taken = Vec::new();
        while pool.free_pages() > 5 {
            taken.push(pool.alloc_pages(1).unwrap());
        }
        taken
    });
    let rig = echo_rig();
    let result = probe(&rig);
    dma::with_pool(test_pool(), |pool| hog.iter().for_each(|&page| pool.free_pages_at(page, 1).unwrap()));
    let error = assert_refused(&rig, result, free);
    assert!(matches!(error, HostmemError::PoolExhausted { pool, free_pages: 5, .. } if pool == test_pool()), "{error}");
}

#[test]
fn a_hal_of_another_pool_is_refused() {
    let _pool = pool();
    let free = free_pages();
    // Slot 3 is free in the unit tests: register a small pool there.
    static OTHER: OnceLock<PoolId> = OnceLock::new();
    let other = *OTHER.get_or_init(|| dma::register(3, range(host_pages(64), 64 * PAGE)).unwrap());
    let rig = echo_rig();
    let transport = MmioV2Transport::new(rig.fake.clone()).unwrap();
    let wakeup: Box<dyn Wakeup> = Box::new(EmuWakeup(rig.emu.clone()));
    let result =
        Hostmem::<PoolHal<3>, _>::from_transport(transport, test_pool(), &OwnedRanges::new(), options(), Some(wakeup));
    let error = assert_refused(&rig, result, free);
    assert!(matches!(error, HostmemError::HalNotOfPool { pool } if pool == test_pool()), "{error}");
    assert_eq!(other.free_pages(), 64, "the other pool got its rings back");
}

/// Register access that rewrites config space after the first full read,
/// without a generation change: the device changed its mind across
/// feature negotiation.
struct ChangingConfig {
    inner: FakeRegisters,
    reads: Cell<usize>,
}

impl Registers for ChangingConfig {
    fn read32(&self, offset: usize) -> u32 {
        if offset >= reg::CONFIG {
            self.reads.set(self.reads.get() + 1);
            if self.reads.get() == 65 {
                self.inner.set_config(12, &3u32.to_le_bytes());
            }
        }
        self.inner.read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        self.inner.write32(offset, value)
    }
    fn read16(&self, offset: usize) -> u16 {
        self.inner.read16(offset)
    }
    fn write16(&mut self, offset: usize, value: u16) {
        self.inner.write16(offset, value)
    }
    fn read8(&self, offset: usize) -> u8 {
        self.inner.read8(offset)
    }
    fn write8(&mut self, offset: usize, value: u8) {
        self.inner.write8(offset, value)
    }
}

#[test]
fn config_that_changes_across_negotiation_refuses_the_device() {
    let _pool = pool();
    let rig = echo_rig();
    let regs = ChangingConfig { inner: rig.fake.clone(), reads: Cell::new(0) };
    let error = probe_with(&rig, regs, &OwnedRanges::new()).err().unwrap();
    assert!(matches!(error, HostmemError::ConfigChanged), "{error}");
    assert_eq!(rig.fake.device().status, FAILED);
}

#[test]
fn a_silent_device_times_out_and_late_answers_are_cleaned_up() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    hostmem.set_request_timeout(Duration::from_millis(50));
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    rig.emu.borrow_mut().knobs.silent = true;
    assert!(matches!(hostmem.create_instance(sub, None), Err(HostmemError::Timeout { .. })));
    // The queue takes one request at a time.
    assert!(matches!(hostmem.ping(1), Err(HostmemError::ConfigQueueBusy)));
    // The device wakes up: the late CREATE made an instance nobody holds,
    // which is destroyed before the next request.
    rig.emu.borrow_mut().knobs.silent = false;
    rig.emu.borrow_mut().step();
    assert!(rig.emu.borrow().instances.iter().any(Option::is_some));
    hostmem.ping(2).unwrap();
    assert!(rig.emu.borrow().instances.iter().all(Option::is_none), "the orphan was destroyed");
    hostmem.create_instance(sub, None).unwrap();
}

#[test]
fn hostile_config_answers_are_typed_errors() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    // An instance on a queue the driver did not set up (only 2 of 4).
    rig.emu.borrow_mut().knobs.response = Some(|response| {
        if response.opcode.get() == u32::from(Opcode::Create) {
            response.instance_id.set(3);
            response.notify_queue.set(5);
        }
    });
    assert!(matches!(
        hostmem.create_instance(sub, None),
        Err(HostmemError::NotifyQueueNotSetUp { instance_id: 3, queues: 2 })
    ));
    rig.emu.borrow_mut().knobs.response = None;
    // A used length the buffers cannot hold is clamped; a short one fails.
    rig.emu.borrow_mut().knobs.config_used_len = Some(u32::MAX);
    hostmem.ping(3).unwrap();
    rig.emu.borrow_mut().knobs.config_used_len = Some(8);
    assert!(matches!(hostmem.ping(4), Err(HostmemError::BadResponse { error: WireError::ShortBuffer { .. }, .. })));
    rig.emu.borrow_mut().knobs.config_used_len = None;
    rig.emu.borrow_mut().knobs.response = Some(|response| response.status.set(1234));
    assert!(matches!(hostmem.ping(5), Err(HostmemError::BadResponse { error: WireError::UnknownStatus(1234), .. })));
    rig.emu.borrow_mut().knobs.response = None;
    hostmem.ping(6).unwrap();
}

#[test]
fn hostile_events_and_words_are_typed_errors() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();

    rig.emu.borrow_mut().knobs.event = Some(|event| event.event_type.set(77));
    hostmem.notify(&instance, echo(0, 0, 64, true)).unwrap();
    assert!(matches!(
        hostmem.wait_event(Duration::from_secs(1)),
        Err(HostmemError::BadEvent(WireError::UnknownEventType(77)))
    ));
    rig.emu.borrow_mut().knobs.event = Some(|event| event.seq.set(1000));
    hostmem.notify(&instance, echo(0, 0, 64, true)).unwrap();
    assert!(matches!(hostmem.wait_event(Duration::from_secs(1)), Err(HostmemError::BadEvent(_))));
    rig.emu.borrow_mut().knobs.event = None;
    // The buffers went back to the device: events still flow.
    let seq = hostmem.notify(&instance, echo(0, 0, 64, true)).unwrap();
    assert_eq!(hostmem.wait_event(Duration::from_secs(1)).unwrap().seq, seq);

    // A completion word naming a seq never sent.
    rig.emu.borrow_mut().knobs.word = Some(99);
    let seq = hostmem.notify(&instance, echo(0, 0, 64, false)).unwrap();
    assert!(matches!(
        hostmem.wait_completion(&instance, seq, Duration::from_secs(1)),
        Err(HostmemError::BadCompletionWord { value: 99, last_sent: 4, .. })
    ));
    rig.emu.borrow_mut().knobs.word = None;

    // A used chain the driver never made available.
    rig.emu.borrow_mut().knobs.bogus_event_token = true;
    assert!(matches!(
        hostmem.wait_event(Duration::from_millis(50)),
        Err(HostmemError::BadUsed { queue: 1, reason: UsedReason::UnknownToken(15) })
    ));
}

#[test]
fn lost_instances_are_reported_and_destroyable() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    rig.emu.borrow_mut().step();
    rig.emu.borrow_mut().send_event(WireEvent::instance_lost(instance.id(), 0, Status::DeviceError));
    let event = hostmem.wait_event(Duration::from_secs(1)).unwrap();
    assert_eq!(event.kind, EventKind::InstanceLost(Status::DeviceError));
    assert!(matches!(
        hostmem.notify(&instance, echo(0, 0, 64, true)),
        Err(HostmemError::InstanceLost { status: Status::DeviceError, .. })
    ));
    hostmem.destroy_instance(instance).unwrap();
}

#[test]
fn waits_time_out() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    assert!(matches!(hostmem.wait_event(Duration::from_millis(20)), Err(HostmemError::Timeout { what: "an event" })));
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let seq = hostmem.notify(&instance, echo(0, 0, 64, false)).unwrap();
    // Stop the device from seeing the notification queue.
    rig.fake.device().queues[2].ready = false;
    assert!(matches!(
        hostmem.wait_completion(&instance, seq, Duration::from_millis(20)),
        Err(HostmemError::Timeout { what: "a completion word" })
    ));
}

// --- notifications with their own buffers (DECODE_INLINE, appendix A.3) ---

fn inline(want_event: bool) -> Notification {
    Notification { opcode: codec::Op::DecodeInline.into(), offset: 0, size: 0, metadata: [0; 32], want_event }
}

fn pool_stats() -> dma::PoolStats {
    test_pool().stats()
}

/// Pool pages taken one at a time until `left` are free; given back on
/// drop, so that a failing test does not starve the others.
struct Hog(Vec<u64>);

impl Hog {
    fn leaving(left: usize) -> Self {
        let taken = dma::with_pool(test_pool(), |pool| {
            let mut taken = Vec::new();
            while pool.free_pages() > left {
                taken.push(pool.alloc_pages(1).unwrap());
            }
            taken
        });
        assert_eq!(free_pages(), left);
        Self(taken)
    }

    fn give_back(&mut self, pages: usize) {
        for _ in 0..pages {
            let page = self.0.pop().unwrap();
            dma::with_pool(test_pool(), |pool| pool.free_pages_at(page, 1)).unwrap();
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let pages = self.0.len();
        self.give_back(pages);
    }
}

#[test]
fn a_buffer_chain_round_trips_through_the_pool() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let (stats, free, counters) = (pool_stats(), free_pages(), hostmem.counters());

    let input = b"an image, more or less".to_vec();
    assert_eq!(input.len(), 22);
    let seq = hostmem.notify_with_buffers(&instance, inline(false), input.clone(), vec![0xee; 300]).unwrap();
    assert_eq!(seq, 1);
    // In flight: notification, input and output hold a pool page each, and
    // only the device-readable part has been copied so far.
    assert_eq!(free_pages(), free - 3);
    let sent = pool_stats();
    assert_eq!((sent.bounces - stats.bounces, sent.bytes_bounced - stats.bytes_bounced), (3, 72 + 22));

    let (seq_back, input_back, output, used) =
        hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    let frame = inline_frame(1, &input);
    assert_eq!(frame.len(), 32 + 3 * 22);
    assert_eq!((seq_back, used, output.len()), (1, 32 + 3 * 22, 300));
    assert_eq!(input_back, input);
    assert_eq!(&output[..used], &frame[..]);
    // Past the used length: the bounce buffer's zeroes, not the caller's 0xee.
    assert!(output[used..].iter().all(|&byte| byte == 0));
    let info = codec::check_inline_result(&output, used as u64, seq).unwrap();
    assert_eq!((info.seq.get(), info.width.get(), info.height.get(), info.channels), (1, 22, 1, 3));
    assert_eq!(info.pixels_size.get(), 66);
    assert_eq!(&output[32..38], &[b'a', !b'a', 1, b'n', !b'n', 1]);

    // The device saw [notification | input] readable, then the output.
    let seen = rig.emu.borrow().inline_seen.clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((&seen[0].readable[..], &seen[0].input[..], seen[0].capacity), (&[72, 22][..], &input[..], 300));
    let wire = seen[0].notification;
    assert_eq!((wire.instance_id.get(), wire.opcode.get(), wire.seq.get()), (instance.id(), 2, 1));
    assert_eq!((wire.offset.get(), wire.size.get(), wire.flags.get()), (0, 0, 0));

    // Input copied in, the whole output copied back; every page returned.
    let after = pool_stats();
    assert_eq!(after.bytes_bounced - stats.bytes_bounced, 72 + 22 + 300);
    assert_eq!(after.bounces - stats.bounces, 3);
    assert_eq!(after.bytes_in_use, stats.bytes_in_use);
    assert_eq!(free_pages(), free);
    let cost = hostmem.counters().since(&counters);
    assert_eq!((cost.notifications, cost.events, cost.bytes_copied_by_transport), (1, 0, 72 + 22 + 300));
    assert_eq!(cost.payload_bytes_copied_by_transport, 22 + 300, "the notification is a message, not payload");
    assert_eq!(hostmem.completion_word(&instance).unwrap(), 1);

    // Nothing else in flight; plain notifications continue the seqs.
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::ZERO),
        Err(HostmemError::SeqNotSent { seq: 2, last_sent: 1, .. })
    ));
    assert_eq!(hostmem.notify(&instance, echo(PAGE, 4, 2 * PAGE, false)).unwrap(), 2);
    hostmem.wait_completion(&instance, 2, Duration::from_secs(2)).unwrap();
    hostmem.destroy_instance(instance).unwrap();
}

#[test]
fn a_used_length_beyond_the_output_is_clamped_to_it() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let (stats, free) = (pool_stats(), free_pages());
    let input = vec![7u8; 10];
    let inconsistent = Err(WireError::Inconsistent { field: "DECODE_INLINE used length" });

    // Beyond the output: the whole chain, one byte more, u32::MAX.
    for hostile in [72 + 10 + 128, 129, u32::MAX] {
        rig.emu.borrow_mut().knobs.inline_used_len = Some(hostile);
        let seq = hostmem.notify_with_buffers(&instance, inline(false), input.clone(), vec![0; 128]).unwrap();
        let (seq_back, input_back, output, used) =
            hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
        assert_eq!((seq_back, used, output.len()), (seq, 128, 128), "used length {hostile}");
        assert_eq!(input_back, input);
        assert_eq!(&output[..62], &inline_frame(seq, &input)[..]);
        // Neither the clamped nor the raw length matches the header.
        assert_eq!(codec::check_inline_result(&output, used as u64, seq), inconsistent);
        assert_eq!(codec::check_inline_result(&output, hostile.into(), seq), inconsistent);
    }
    // Shorter than written is within the output, so passed on as it is;
    // the codec check refuses it.
    rig.emu.borrow_mut().knobs.inline_used_len = Some(8);
    let seq = hostmem.notify_with_buffers(&instance, inline(false), input.clone(), vec![0; 128]).unwrap();
    let (_, _, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!(used, 8);
    assert_eq!(
        codec::check_inline_result(&output, used as u64, seq),
        Err(WireError::ShortBuffer { needed: 32, got: 8 })
    );
    // An honest device again.
    rig.emu.borrow_mut().knobs.inline_used_len = None;
    let seq = hostmem.notify_with_buffers(&instance, inline(false), input.clone(), vec![0; 128]).unwrap();
    assert_eq!(seq, 5);
    let (_, _, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!(used, 62);
    assert_eq!(codec::check_inline_result(&output, used as u64, seq).unwrap().width.get(), 10);

    assert_eq!(free_pages(), free);
    let after = pool_stats();
    assert_eq!(after.bytes_in_use, stats.bytes_in_use);
    assert_eq!(after.bytes_bounced - stats.bytes_bounced, 5 * (72 + 10 + 128));
}

#[test]
fn chains_in_flight_complete_in_order_with_their_own_buffers() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let (stats, free) = (pool_stats(), free_pages());

    let inputs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![0x10 * (i + 1); 5 + usize::from(i)]).collect();
    let output_len = |i: usize| 100 + 20 * i;
    for (i, input) in inputs.iter().enumerate() {
        let seq = hostmem.notify_with_buffers(&instance, inline(false), input.clone(), vec![0xee; output_len(i)]);
        assert_eq!(seq.unwrap(), i as u64 + 1);
    }
    // 15 of 16 descriptors taken: a plain notification still fits, a chain
    // does not (and costs nothing).
    assert_eq!(hostmem.notify(&instance, echo(PAGE, 4, 2 * PAGE, false)).unwrap(), 6);
    let queue = 2 + instance.id() as u16;
    let full = hostmem.notify_with_buffers(&instance, inline(false), vec![1], vec![0; 64]);
    assert!(matches!(full, Err(HostmemError::QueueFull { queue: q }) if q == queue), "{full:?}");
    assert_eq!(free_pages(), free - 5 * 3 - 1);

    for (i, input) in inputs.iter().enumerate() {
        let (seq, input_back, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
        let frame = inline_frame(i as u64 + 1, input);
        assert_eq!((seq, used, output.len()), (i as u64 + 1, frame.len(), output_len(i)));
        assert_eq!(&input_back, input);
        assert_eq!(&output[..used], &frame[..]);
        assert!(output[used..].iter().all(|&byte| byte == 0));
        let info = codec::check_inline_result(&output, used as u64, seq).unwrap();
        assert_eq!(info.width.get() as usize, input.len());
    }
    hostmem.wait_completion(&instance, 6, Duration::from_secs(2)).unwrap();
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::ZERO),
        Err(HostmemError::SeqNotSent { seq: 7, last_sent: 6, .. })
    ));
    let seen = rig.emu.borrow().inline_seen.clone();
    assert_eq!(seen.iter().map(|s| s.notification.seq.get()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(seen.iter().map(|s| s.input.clone()).collect::<Vec<_>>(), inputs);
    assert_eq!(seen.iter().map(|s| s.capacity).collect::<Vec<_>>(), [100, 120, 140, 160, 180]);
    assert_eq!(free_pages(), free);

    // A second round on the descriptors (tokens) of the first.
    assert_eq!(hostmem.notify_with_buffers(&instance, inline(false), vec![0xaa; 3], vec![0; 64]).unwrap(), 7);
    assert_eq!(hostmem.notify_with_buffers(&instance, inline(false), vec![0xbb; 4], vec![0; 80]).unwrap(), 8);
    let (seq, input, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!((seq, &input[..], output.len(), used), (7, &[0xaa; 3][..], 64, 32 + 9));
    assert_eq!(&output[..used], &inline_frame(7, &[0xaa; 3])[..]);
    let (seq, input, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!((seq, &input[..], output.len(), used), (8, &[0xbb; 4][..], 80, 32 + 12));
    assert_eq!(&output[..used], &inline_frame(8, &[0xbb; 4])[..]);

    let after = pool_stats();
    assert_eq!(free_pages(), free);
    assert_eq!(after.bytes_in_use, stats.bytes_in_use);
    // 5 chains (72 + 35 + 700), the echo notification, then 2 chains.
    assert_eq!(after.bytes_bounced - stats.bytes_bounced, (5 * 72 + 35 + 700) + 72 + (72 + 3 + 64) + (72 + 4 + 80));
}

#[test]
fn a_pool_too_small_for_the_bounces_is_an_error_not_an_exit() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let (stats, free) = (pool_stats(), free_pages());
    let big = 2 * PAGE as usize + 1;

    let mut hog = Hog::leaving(3);
    // 1 (notification) + 1 (input) + 4 (output: 3 pages, which the buddy
    // allocator rounds up to 4) pages.
    let error = hostmem.notify_with_buffers(&instance, inline(false), vec![1; 10], vec![0; big]).unwrap_err();
    assert!(
        matches!(error, HostmemError::PoolExhausted { pool, needed_pages: 6, free_pages: 3 } if pool == test_pool()),
        "{error}"
    );
    assert_eq!(free_pages(), 3, "nothing reserved");
    // Enough pages by count (1 + 3), but not by what the pool takes (1 + 4):
    // refused up front, nothing reserved.
    hog.give_back(1);
    let error =
        hostmem.notify_with_buffers(&instance, inline(false), Vec::new(), vec![0; 3 * PAGE as usize]).unwrap_err();
    assert!(
        matches!(error, HostmemError::PoolExhausted { pool, needed_pages: 5, free_pages: 4 } if pool == test_pool()),
        "{error}"
    );
    assert_eq!(free_pages(), 4, "nothing reserved");
    assert_eq!(pool_stats().bounces, stats.bounces, "nothing bounced");
    // Nothing went out, and no seq was used.
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::ZERO),
        Err(HostmemError::SeqNotSent { seq: 1, last_sent: 0, .. })
    ));
    drop(hog);
    assert_eq!(free_pages(), free);

    // With room again, the same chain goes through.
    let seq = hostmem.notify_with_buffers(&instance, inline(false), vec![1; 10], vec![0; big]).unwrap();
    assert_eq!(seq, 1);
    let (seq, input, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!((seq, input, output.len(), used), (1, vec![1; 10], big, 62));
    assert!(rig.emu.borrow().inline_seen.iter().map(|s| s.notification.seq.get()).eq([1]));
    assert_eq!(free_pages(), free);
    assert_eq!(pool_stats().bytes_in_use, stats.bytes_in_use);
}

#[test]
fn completing_without_a_chain_or_an_answer_ends() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let free = free_pages();

    // Nothing in flight: an error at once, not a wait.
    let start = std::time::Instant::now();
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::from_secs(30)),
        Err(HostmemError::SeqNotSent { seq: 1, last_sent: 0, .. })
    ));
    // Only a plain notification in flight: still none to complete.
    assert_eq!(hostmem.notify(&instance, echo(PAGE, 4, 2 * PAGE, false)).unwrap(), 1);
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::from_secs(30)),
        Err(HostmemError::SeqNotSent { seq: 2, last_sent: 1, .. })
    ));
    assert!(start.elapsed() < Duration::from_secs(10), "returned without waiting");
    hostmem.wait_completion(&instance, 1, Duration::from_secs(2)).unwrap();

    // A device that never answers. (Sending reaps the echo notification's
    // buffer first.)
    rig.emu.borrow_mut().knobs.hold_notifications = true;
    let seq = hostmem.notify_with_buffers(&instance, inline(false), b"late".to_vec(), vec![0; 64]).unwrap();
    assert_eq!(seq, 2);
    let start = std::time::Instant::now();
    assert!(matches!(
        hostmem.complete_with_buffers(&instance, Duration::from_millis(50)),
        Err(HostmemError::Timeout { what: "a used notification chain" })
    ));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(10), "{waited:?}");
    // Still in flight: its pages stay with the chain.
    assert_eq!(free_pages(), free - 3);
    assert!(rig.emu.borrow().inline_seen.is_empty());
    // The device wakes up: the same chain completes.
    rig.emu.borrow_mut().knobs.hold_notifications = false;
    let (seq, input, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!((seq, &input[..], used), (2, &b"late"[..], 32 + 12));
    assert_eq!(&output[..used], &inline_frame(2, b"late")[..]);
    assert_eq!(free_pages(), free);
}

#[test]
fn an_empty_input_sends_the_notification_alone() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    // No completion word: the failed result comes back with the chain.
    let instance = hostmem.create_instance(sub, None).unwrap();
    let (stats, free) = (pool_stats(), free_pages());

    let seq = hostmem.notify_with_buffers(&instance, inline(true), Vec::new(), vec![0xee; 64]).unwrap();
    assert_eq!(seq, 1);
    assert_eq!(free_pages(), free - 2, "notification and output only");
    let sent = pool_stats();
    assert_eq!((sent.bounces - stats.bounces, sent.bytes_bounced - stats.bytes_bounced), (2, 72));
    let (seq, input, output, used) = hostmem.complete_with_buffers(&instance, Duration::from_secs(2)).unwrap();
    assert_eq!((seq, input.len(), output.len(), used), (1, 0, 64, 32));
    assert_eq!(&output[..32], codec::FrameInfo::failed(1, Status::BadInput).as_bytes());
    assert!(output[32..].iter().all(|&byte| byte == 0));
    assert_eq!(codec::check_inline_result(&output, 32, 1), Err(WireError::Failed(Status::BadInput)));
    let seen = rig.emu.borrow().inline_seen.clone();
    assert_eq!((&seen[0].readable[..], seen[0].input.len(), seen[0].capacity), (&[72][..], 0, 64));
    assert_eq!(seen[0].notification.flags.get(), WireNotification::F_EVENT);
    assert_eq!(free_pages(), free);
    assert_eq!(pool_stats().bytes_bounced - stats.bytes_bounced, 72 + 64);
    // The failure also came as an ERROR event.
    let event = hostmem.wait_event(Duration::from_secs(2)).unwrap();
    assert_eq!((event.instance_id, event.kind, event.seq), (instance.id(), EventKind::Error(Status::BadInput), 1));

    // With a completion word the ERROR is the answer; the pages still come
    // back.
    let worded = hostmem.create_instance(sub, Some(0)).unwrap();
    let free = free_pages();
    assert_eq!(hostmem.notify_with_buffers(&worded, inline(false), Vec::new(), vec![0; 64]).unwrap(), 1);
    assert!(matches!(
        hostmem.complete_with_buffers(&worded, Duration::from_secs(2)),
        Err(HostmemError::NotificationFailed { seq: 1, status: Status::BadInput, .. })
    ));
    assert_eq!(free_pages(), free);
    assert_eq!(pool_stats().bytes_in_use, stats.bytes_in_use);
    hostmem.destroy_instance(instance).unwrap();
    hostmem.destroy_instance(worded).unwrap();
}

#[test]
fn buffer_chains_are_checked_before_sending() {
    let _pool = pool();
    let rig = echo_rig();
    let mut hostmem = probe(&rig).unwrap();
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).unwrap();
    let instance = hostmem.create_instance(sub, Some(0)).unwrap();
    let (stats, free) = (pool_stats(), free_pages());
    assert!(matches!(
        hostmem.notify_with_buffers(&instance, inline(false), vec![1], Vec::new()),
        Err(HostmemError::Range(WireError::ShortBuffer { needed: 1, got: 0 }))
    ));
    let in_region = Notification { offset: PAGE, size: 16, ..inline(false) };
    assert!(matches!(
        hostmem.notify_with_buffers(&instance, in_region, vec![1], vec![0; 64]),
        Err(HostmemError::Range(WireError::NonZeroField { .. }))
    ));
    assert_eq!((free_pages(), pool_stats()), (free, stats), "nothing reserved or bounced");
    assert_eq!(hostmem.notify_with_buffers(&instance, inline(false), vec![1], vec![0; 64]).unwrap(), 1);
}
