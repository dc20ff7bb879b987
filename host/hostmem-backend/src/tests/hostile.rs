//! A hostile or broken driver: every case gets a refusal or an error event,
//! never a panic, a hang, or damage to another instance.

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::zerocopy::little_endian::U32;
use hostmem_wire::{Config, ConfigResponse, EventType, Notification, Request, Status, feature};
use vhost_user_backend::{VhostUserBackend, VringT};
use vm_memory::{GuestAddress, GuestMemoryAtomic, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::*;
use crate::testing::{POOL_NODE_BASE, POOL_NODE_SIZE};

/// An address in the neighbouring pool (same memfd, not this device's).
const OTHER_POOL: u64 = POOL_NODE_BASE + 0x1000;
/// Private guest RAM, never shared with the backend.
const PRIVATE_RAM: u64 = 0x4000_1000;

#[test]
fn request_outside_pool_is_refused_unread() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    // A valid CREATE placed in the neighbouring pool: not read, refused.
    h.write(OTHER_POOL, Request::Create { subdevice_index: ECHO, completion_offset: None }.encode().as_bytes());
    for addr in [OTHER_POOL, PRIVATE_RAM, POOL_BASE + POOL_SIZE - 16, u64::MAX - 15] {
        let resp = h.alloc(72);
        let (len, resp) = h.chain_request(&[(addr, 32, false), (resp, 72, true)], resp);
        assert_eq!(len, 72, "request at {addr:#x}");
        assert_eq!(resp, ConfigResponse::failure(0, Status::BadRequest), "request at {addr:#x}");
    }
    assert!(h.live().is_empty());
}

#[test]
fn response_outside_pool_is_not_written() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let req = h.alloc(32);
    h.write(req, Request::Create { subdevice_index: ECHO, completion_offset: None }.encode().as_bytes());
    let before = h.read(OTHER_POOL, 72);
    let head = h.post(0, &[(req, 32, false), (OTHER_POOL, 72, true)]);
    h.kick(0);
    assert_eq!(h.take_used(0), vec![(head, 0)]);
    assert_eq!(h.read(OTHER_POOL, 72), before, "neighbouring pool untouched");
    assert!(h.live().is_empty(), "not acted on");
    // Half inside, half outside the pool.
    let head = h.post(0, &[(req, 32, false), (POOL_BASE + POOL_SIZE - 36, 72, true)]);
    h.kick(0);
    assert_eq!(h.take_used(0), vec![(head, 0)]);
    assert!(h.live().is_empty());
}

#[test]
fn rings_outside_pool_are_not_served() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    // Move the config queue's used ring into the neighbouring pool: the
    // whole queue is refused, nothing is written there.
    let (desc, avail, used) = (h.mocks[0].desc_table_addr().0, h.mocks[0].avail_addr().0, h.mocks[0].used_addr().0);
    h.vrings[0].set_queue_info(desc, avail, OTHER_POOL).unwrap();
    let req = h.alloc(32);
    h.write(req, Request::Ping { cookie: 1 }.encode().as_bytes());
    let resp = h.alloc(72);
    h.post(0, &[(req, 32, false), (resp, 72, true)]);
    let before = h.read(OTHER_POOL, 64);
    h.kick(0);
    assert_eq!(h.read(OTHER_POOL, 64), before);
    assert_eq!(h.read(resp, 4), [0; 4], "no response");
    // A descriptor table in private RAM, likewise.
    h.vrings[0].set_queue_info(PRIVATE_RAM, avail, used).unwrap();
    h.kick(0);
    // Put the rings back: the pending request is answered.
    h.vrings[0].set_queue_info(desc, avail, used).unwrap();
    h.kick(0);
    assert_eq!(h.take_used(0).len(), 1);
    assert_eq!(ConfigResponse::read(&h.read(resp, 72), 72).unwrap().status().unwrap(), Status::Ok);
}

#[test]
fn nonsense_available_index_is_ignored() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    assert_eq!(h.create(ECHO, None), Ok(0));
    // Claim 1000 chains on a 64-entry queue.
    h.mocks[2].avail().idx().store(1000);
    h.kick(2);
    assert!(h.take_used(2).is_empty());
    // The config queue and the instance's record are unaffected.
    assert_eq!(h.request(Request::Ping { cookie: 3 }).status().unwrap(), Status::Ok);
    assert_eq!(h.live(), vec![0]);
}

#[test]
fn descriptor_loop_and_bad_next_terminate() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    h.post_event_buffers(3);
    // A chain whose descriptors point at each other forever.
    let buf = h.alloc(72);
    h.write(buf, copy(id, 1, 0, 8, 0x100, Notification::F_EVENT).as_bytes());
    let q = 2 + id as usize;
    let mock = &h.mocks[q];
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::desc::split::Descriptor as D;
    mock.desc_table().store(10, RawDescriptor::from(D::new(buf, 8, VRING_DESC_F_NEXT as u16, 11))).unwrap();
    mock.desc_table().store(11, RawDescriptor::from(D::new(buf, 8, VRING_DESC_F_NEXT as u16, 10))).unwrap();
    mock.avail().ring().ref_at(0).unwrap().store(10);
    mock.avail().idx().store(1);
    h.kick(q);
    let used = h.take_used(q);
    assert_eq!(used, vec![(10, 0)]);
    // The chain ends after at most queue-size descriptors: 64 * 8 bytes of
    // the same buffer, which is a readable notification of garbage layout,
    // answered and not hung on.
    assert_eq!(h.events().len(), 1);
    // A head index beyond the table.
    let mock = &h.mocks[q];
    mock.avail().ring().ref_at(1).unwrap().store(500);
    mock.avail().idx().store(2);
    h.kick(q);
    // An index the used ring cannot name is not returned (there is nothing
    // to return); the driver gets an error and the queue moves on.
    assert!(h.take_used(q).is_empty());
    assert_error(&one_event(&mut h), id, 0, Status::BadRequest);
    assert_echo_works(&mut h, id, 1u64 << 40);
}

#[test]
fn notification_buffer_outside_pool() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(1);
    h.write(OTHER_POOL, copy(id, 1, 0, 8, 0x100, Notification::F_EVENT).as_bytes());
    h.notify_chain(id, &[(OTHER_POOL, 72, false)]);
    assert_error(&one_event(&mut h), id, 0, Status::BadRequest);
    assert_eq!(h.completion_word(ECHO, 0), 0);
}

#[test]
fn short_notification() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    let other = h.create(ECHO, Some(8)).unwrap();
    h.post_event_buffers(4);
    let n = copy(id, 9, 0, 8, 0x100, Notification::F_EVENT);
    let buf = h.alloc(72);
    h.write(buf, n.as_bytes());
    // 40 bytes: seq is readable, so the error carries it.
    h.notify_chain(id, &[(buf, 40, false)]);
    assert_error(&one_event(&mut h), id, 9, Status::BadRequest);
    // 10 bytes: no seq.
    h.notify_chain(id, &[(buf, 10, false)]);
    assert_error(&one_event(&mut h), id, 0, Status::BadRequest);
    assert_eq!(h.completion_word(ECHO, 0), 0);
    // The seq was not consumed: the same notification in full works.
    h.region_write(ECHO, 0, b"12345678");
    h.notify(id, &n);
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_echo_works(&mut h, other, 1);
}

#[test]
fn long_and_split_notifications() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    h.post_event_buffers(2);
    let n = copy(id, 1, 0, 8, 0x100, Notification::F_EVENT);
    let buf = h.alloc(200);
    h.write(buf, n.as_bytes());
    h.write(buf + 72, &[0xff; 128]);
    h.notify_chain(id, &[(buf, 200, false)]);
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    let n = copy(id, 2, 0, 8, 0x100, Notification::F_EVENT);
    let (a, b) = (h.alloc(5), h.alloc(67));
    h.write(a, &n.as_bytes()[..5]);
    h.write(b, &n.as_bytes()[5..]);
    h.notify_chain(id, &[(a, 5, false), (b, 67, false)]);
    assert_eq!(one_event(&mut h).seq.get(), 2);
}

#[test]
fn notification_with_writable_buffer() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    h.post_event_buffers(1);
    let buf = h.alloc(72);
    h.write(buf, copy(id, 4, 0, 8, 0x100, Notification::F_EVENT).as_bytes());
    let out = h.alloc(16);
    h.write(out, &[0x5a; 16]);
    h.notify_chain(id, &[(buf, 72, false), (out, 16, true)]);
    assert_error(&one_event(&mut h), id, 4, Status::BadRequest);
    assert_eq!(h.read(out, 16), [0x5a; 16], "device writes nothing into notification chains");
}

#[test]
fn notification_names_another_instance() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let a = h.create(ECHO, Some(0)).unwrap();
    let b = h.create(ECHO, Some(8)).unwrap();
    h.post_event_buffers(3);
    // On a's queue, claiming to be b.
    h.notify(a, &copy(b, 1, 0, 8, 0x100, Notification::F_EVENT));
    assert_error(&one_event(&mut h), a, 1, Status::BadInstance);
    assert_eq!((h.completion_word(ECHO, 0), h.completion_word(ECHO, 8)), (0, 0));
    assert_echo_works(&mut h, a, 1);
    assert_echo_works(&mut h, b, 1);
}

#[test]
fn notification_for_unknown_instance_is_discarded() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    h.post_event_buffers(1);
    // Queue 3 (instance 1) never created: buffer returned, no event.
    h.notify(1, &copy(1, 1, 0, 8, 0x100, Notification::F_EVENT));
    assert!(h.events().is_empty());
    assert_eq!(h.region_read(ECHO, 0x100, 8), [0; 8]);
}

#[test]
fn bad_flags_and_reserved() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(4);
    h.region_write(ECHO, 0, b"original");
    // Accepted (seq recorded, word written) but failed: no copy happens.
    h.notify(id, &copy(id, 1, 0, 8, 0x100, 0x2));
    assert_error(&one_event(&mut h), id, 1, Status::BadRequest);
    assert_eq!(h.completion_word(ECHO, 0), 1);
    let mut n = copy(id, 2, 0, 8, 0x100, Notification::F_EVENT);
    n.reserved = U32::new(1);
    h.notify(id, &n);
    assert_error(&one_event(&mut h), id, 2, Status::BadRequest);
    let mut meta = hostmem_wire::echo::CopyMeta::new(0x100);
    meta.reserved[3] = 1;
    let n = Notification::new(id, 1, Notification::F_EVENT, 3, 0, 8, meta.to_metadata());
    h.notify(id, &n);
    assert_error(&one_event(&mut h), id, 3, Status::BadRequest);
    assert_eq!(h.completion_word(ECHO, 0), 3);
    assert_eq!(h.region_read(ECHO, 0x100, 8), [0; 8], "nothing copied");
    // A reused seq is a step-1 failure: not recorded, word unchanged.
    h.notify(id, &copy(id, 3, 0, 8, 0x100, Notification::F_EVENT));
    assert_error(&one_event(&mut h), id, 3, Status::BadSequence);
    assert_eq!(h.completion_word(ECHO, 0), 3);
}

#[test]
fn bad_sequence() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(4);
    h.notify(id, &copy(id, 0, 0, 8, 0x100, Notification::F_EVENT));
    assert_error(&one_event(&mut h), id, 0, Status::BadSequence);
    assert_echo_works(&mut h, id, 5);
    h.notify(id, &copy(id, 5, 0, 8, 0x100, Notification::F_EVENT));
    assert_error(&one_event(&mut h), id, 5, Status::BadSequence);
    h.notify(id, &copy(id, 4, 0, 8, 0x100, Notification::F_EVENT));
    assert_error(&one_event(&mut h), id, 4, Status::BadSequence);
    assert_eq!(h.completion_word(ECHO, 0), 5, "word not moved by refused notifications");
}

#[test]
fn bad_ranges() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(8);
    let cases = [
        (REGION_SIZE - 4, 8, 0x100), // source runs past the end
        (u64::MAX, 2, 0x100),        // source overflows
        (0, u64::MAX, 0x100),        // size overflows
        (0, 8, REGION_SIZE - 4),     // destination past the end
        (0, 8, u64::MAX - 3),        // destination overflows
        (0x100, 0x20, 0x110),        // overlapping source and destination
        (0, 8, REGION_SIZE),         // destination = other sub-device's region start
    ];
    for (seq, (src, size, dest)) in (1..).zip(cases) {
        h.notify(id, &copy(id, seq, src, size, dest, Notification::F_EVENT));
        assert_error(&one_event(&mut h), id, seq, Status::BadRange);
        // Accepted, so completed (with the error): the word follows.
        assert_eq!(h.completion_word(ECHO, 0), seq);
    }
    // Nothing leaked into the codec region behind the echo region's end.
    assert_eq!(h.region_read(CODEC, 0, 64), [0; 64]);
    assert_echo_works(&mut h, id, 100);
}

/// §9.5: an echo COPY whose destination touches any byte of a live
/// instance's completion word (another instance's or its own) is BAD_RANGE
/// and copies nothing; the word keeps what the device stored.
#[test]
fn echo_copy_onto_a_completion_word_is_refused() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    const VICTIM_WORD: u64 = 0x1000;
    const OWN_WORD: u64 = 0x2000;
    let victim = h.create(ECHO, Some(VICTIM_WORD)).unwrap();
    let id = h.create(ECHO, Some(OWN_WORD)).unwrap();
    // The codec's word at the same offset guards the codec region only.
    let codec = h.create(CODEC, Some(0x4000)).unwrap();
    h.post_event_buffers(16);
    assert_echo_works(&mut h, victim, 7);
    assert_eq!(h.completion_word(ECHO, VICTIM_WORD), 7);
    h.region_write(ECHO, 0x8000, &[0xff; 0x2000]);
    let cases = [
        (VICTIM_WORD, 8),              // exactly the word
        (VICTIM_WORD - 7, 8),          // its first byte
        (VICTIM_WORD + 7, 1),          // its last byte
        (VICTIM_WORD - 0x800, 0x1000), // a copy spanning it
        (OWN_WORD, 8),                 // the instance's own word
    ];
    for (seq, (dest, size)) in (1..).zip(cases) {
        let before = h.region_read(ECHO, dest, size as usize);
        h.notify(id, &copy(id, seq, 0x8000, size, dest, Notification::F_EVENT));
        assert_error(&one_event(&mut h), id, seq, Status::BadRange);
        assert_eq!(h.completion_word(ECHO, VICTIM_WORD), 7, "case {seq}: victim's word unchanged");
        // The own word holds `seq`, stored by the device as the failed
        // notification completed; not the 0xff bytes of the copy.
        assert_eq!(h.completion_word(ECHO, OWN_WORD), seq, "case {seq}: own word stored by the device");
        if dest != OWN_WORD {
            assert_eq!(h.region_read(ECHO, dest, size as usize), before, "case {seq}: nothing copied");
        }
    }
    // Right next to the word on either side is fine.
    h.notify(id, &copy(id, 10, 0x8000, 8, VICTIM_WORD - 8, Notification::F_EVENT));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    h.notify(id, &copy(id, 11, 0x8000, 8, VICTIM_WORD + 8, Notification::F_EVENT));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(h.completion_word(ECHO, VICTIM_WORD), 7);
    // Another sub-device's word does not guard this region.
    h.notify(id, &copy(id, 12, 0x8000, 8, 0x4000, Notification::F_EVENT));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(h.region_read(ECHO, 0x4000, 8), [0xff; 8]);
    assert_eq!(h.completion_word(CODEC, 0x4000), 0, "codec instance {codec}'s word untouched");
    // A destroyed instance's word is ordinary region memory again.
    assert_eq!(h.destroy(victim), Status::Ok);
    h.notify(id, &copy(id, 13, 0x8000, 8, VICTIM_WORD, Notification::F_EVENT));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(h.region_read(ECHO, VICTIM_WORD, 8), [0xff; 8]);
}

#[test]
fn unknown_notification_opcode() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let echo = h.create(ECHO, None).unwrap();
    let codec = h.create(CODEC, None).unwrap();
    h.post_event_buffers(3);
    for id in [echo, codec] {
        let n = Notification::new(id, 77, Notification::F_EVENT, 1, 0, 0, [0; 32]);
        h.notify(id, &n);
        let event = one_event(&mut h);
        assert_error(&event, id, 1, Status::Unsupported);
        assert_eq!(event.metadata, [0; 32], "not a DECODE: no frame header");
    }
    assert_echo_works(&mut h, echo, 2);
}

#[test]
fn short_and_readable_event_buffers_count_as_drops() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    let short = h.alloc(40);
    h.write(short, &[0x77; 40]);
    let s = h.post(1, &[(short, 40, true)]);
    let readable = h.alloc(80);
    h.write(readable, &[0x66; 80]);
    let r = h.post(1, &[(readable, 80, false)]);
    let outside = h.post(1, &[(OTHER_POOL, 80, true)]);
    let before = h.read(OTHER_POOL, 80);
    h.kick(1);
    for seq in 1..=3 {
        h.notify(id, &copy(id, seq, 0, 8, 0x100, Notification::F_EVENT));
    }
    assert_eq!(h.take_used(1), vec![(s, 0), (r, 0), (outside, 0)]);
    assert_eq!(h.read(short, 40), [0x77; 40]);
    assert_eq!(h.read(readable, 80), [0x66; 80]);
    assert_eq!(h.read(OTHER_POOL, 80), before);
    assert_eq!(h.backend.device().pending_dropped(), 3);
    h.post_event_buffers(1);
    h.notify(id, &copy(id, 4, 0, 8, 0x100, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!((event.seq.get(), event.dropped.get()), (4, 3));
}

#[test]
fn stall_after_fault() {
    let guest = GuestLayout::new().unwrap();
    let faults = Faults { stall_after: Some(1), ..Faults::default() };
    let mut h = Harness::with(&guest, Opts { faults, ..Opts::default() });
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(2);
    assert_echo_works(&mut h, id, 1);
    let buf = h.alloc(72);
    h.write(buf, copy(id, 2, 0, 8, 0x100, Notification::F_EVENT).as_bytes());
    let q = 2 + id as usize;
    h.post(q, &[(buf, 72, false)]);
    h.kick(q);
    h.kick(q);
    assert!(h.take_used(q).is_empty(), "not answered");
    assert!(h.events().is_empty());
    assert_eq!(h.completion_word(ECHO, 0), 1);
    // The config queue still answers, and DESTROY returns the buffer.
    assert_eq!(h.destroy(id), Status::Ok);
    assert_eq!(h.take_used(q).len(), 1);
}

#[test]
fn bad_region_fault_publishes_overlapping_region() {
    let guest = GuestLayout::new().unwrap();
    let faults = Faults { bad_region: true, ..Faults::default() };
    let mut h = Harness::with(&guest, Opts { faults, ..Opts::default() });
    let config = Config::parse(&h.backend.get_config(0, 256)).unwrap();
    let entry = config.entries()[0];
    assert_eq!(entry.region_base.get(), POOL_BASE);
    assert!(hostmem_wire::ranges_overlap(entry.region_base.get(), entry.region_len.get(), POOL_BASE, POOL_SIZE));
    // QUERY_SUBDEVICE agrees with config space (§6.4).
    let resp = h.request(Request::QuerySubdevice { subdevice_index: 0 });
    assert_eq!(resp.subdevice, entry);
    // The backend itself still only serves the real region.
    let ring_bytes = h.read(POOL_BASE + POOL_SIZE - 4096, 4096);
    h.region_write(CODEC, 0, &[0xff; 8]);
    let id = h.create(CODEC, Some(0)).unwrap();
    assert_eq!(h.backend.device().instance(id).unwrap().subdevice, 0);
    assert_eq!(h.completion_word(CODEC, 0), 0, "the real region's word was cleared");
    assert_eq!(h.read(POOL_BASE + POOL_SIZE - 4096, 4096), ring_bytes);
}

#[test]
fn queues_ignored_without_version_1() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::with(&guest, Opts { features: 0, ..Opts::default() });
    let req = h.alloc(32);
    h.write(req, Request::Ping { cookie: 1 }.encode().as_bytes());
    let resp = h.alloc(72);
    h.post(0, &[(req, 32, false), (resp, 72, true)]);
    h.kick(0);
    assert!(h.take_used(0).is_empty());
    h.backend.acked_features(feature::mask(feature::VERSION_1));
    h.kick(0);
    assert_eq!(h.take_used(0).len(), 1);
}

/// The regions node missing from a later memory table: CREATE on it fails
/// with DEVICE_ERROR and a live instance is lost with INSTANCE_LOST.
#[test]
fn region_missing_from_memory_table() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(2);
    assert_echo_works(&mut h, id, 1);
    let pool_only: Vec<_> = guest
        .mem
        .iter()
        .filter(|r| r.start_addr() == GuestAddress(POOL_NODE_BASE))
        .map(|r| vm_memory::GuestRegionMmap::with_arc(r.get_mmap(), r.start_addr()).unwrap())
        .collect();
    let mem = GuestMemoryMmap::from_regions(pool_only).unwrap();
    h.backend.update_memory(GuestMemoryAtomic::new(mem)).unwrap();
    h.notify(id, &copy(id, 2, 0, 8, 0x100, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!(event.event_type().unwrap(), EventType::InstanceLost);
    assert_eq!((event.instance_id.get(), event.seq.get()), (id, 1));
    assert_eq!(event.status().unwrap(), Status::DeviceError);
    assert!(h.live().is_empty());
    assert!(h.backend.device().is_lost(id));
    // Later notifications of the lost instance are discarded silently.
    h.notify(id, &copy(id, 3, 0, 8, 0x100, Notification::F_EVENT));
    assert!(h.events().is_empty());
    assert_eq!(h.create(ECHO, None), Err(Status::DeviceError));
    // The id stays allocated until the driver destroys it.
    assert_eq!(h.destroy(id), Status::Ok);
    assert!(!h.backend.device().is_lost(id));
    assert_eq!(h.destroy(id), Status::BadInstance);
}

#[test]
fn memory_table_without_pool_is_refused() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    let regions_only: Vec<_> = guest
        .mem
        .iter()
        .filter(|r| r.start_addr() != GuestAddress(POOL_NODE_BASE))
        .map(|r| vm_memory::GuestRegionMmap::with_arc(r.get_mmap(), r.start_addr()).unwrap())
        .collect();
    let mem = GuestMemoryMmap::from_regions(regions_only).unwrap();
    let err = h.backend.update_memory(GuestMemoryAtomic::new(mem)).unwrap_err();
    // Refused because of the pool, named in the error.
    let pool = GuestWindow::new(POOL_BASE, POOL_SIZE).unwrap();
    let expected = crate::memory::MapError::NotInMemoryTable(pool).to_string();
    assert_eq!(err.to_string(), expected);
    // Without a pool the device touches no queue: a request made available
    // now is neither answered nor written, and no notification is taken.
    let req = h.alloc(32);
    h.write(req, Request::Ping { cookie: 77 }.encode().as_bytes());
    let resp = h.alloc(72);
    h.write(resp, &[0xee; 72]);
    h.post(0, &[(req, 32, false), (resp, 72, true)]);
    h.kick(0);
    assert!(h.take_used(0).is_empty(), "no answer without a pool");
    assert_eq!(h.read(resp, 72), [0xee; 72], "response buffer untouched");
    let q = 2 + id as usize;
    let note = h.alloc(72);
    h.write(note, copy(id, 1, 0x100, 8, 0x200, Notification::F_EVENT).as_bytes());
    h.post(q, &[(note, 72, false)]);
    h.kick(q);
    assert!(h.take_used(q).is_empty(), "notification not taken");
    assert_eq!(h.completion_word(ECHO, 0), 0);
    // The instance is still there, and a complete table brings service
    // back: the waiting request is answered.
    assert_eq!(h.live(), vec![id]);
    h.backend.update_memory(GuestMemoryAtomic::new(guest.mem.clone())).unwrap();
    h.kick(0);
    assert_eq!(h.take_used(0).len(), 1);
    let answer = ConfigResponse::read(&h.read(resp, 72), 72).unwrap();
    answer.check(&Request::Ping { cookie: 77 }, 4).unwrap();
    let _ = POOL_NODE_SIZE;
}

/// What the device must answer to a request, by the rules of §8.2 and
/// §8.4, for a device whose live instances are `live` (the model the bulk
/// test checks every answer against; written from the spec, not from the
/// device code).
fn expected_answer(bytes: &[u8; 32], live: &mut Vec<u32>) -> ConfigResponse {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let dword = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (opcode, instance, index, flags, offset, cookie) = (word(0), word(4), word(8), word(12), dword(16), dword(24));
    let unused_zero = |fields: &[u64]| fields.iter().all(|&f| f == 0);
    let fail = |status| ConfigResponse::failure(opcode, status);
    match opcode {
        1 => {
            let unused = if flags & 1 == 0 { offset } else { 0 };
            if flags & !1 != 0 || !unused_zero(&[u64::from(instance), cookie, unused]) {
                return fail(Status::BadRequest);
            }
            // Two sub-devices; a random index and offset are almost always
            // refused, so model only what the generator produces.
            if index >= 2 {
                return fail(Status::UnknownSubdevice);
            }
            panic!("the generator produced a valid CREATE; extend the model");
        }
        2 => {
            if !unused_zero(&[u64::from(index), u64::from(flags), offset, cookie]) {
                return fail(Status::BadRequest);
            }
            match live.iter().position(|&id| id == instance) {
                Some(at) => {
                    live.remove(at);
                    ConfigResponse::destroyed(instance)
                }
                None => fail(Status::BadInstance),
            }
        }
        3 => {
            if !unused_zero(&[u64::from(instance), u64::from(flags), offset, cookie]) {
                return fail(Status::BadRequest);
            }
            assert!(index >= 2, "the generator produced a valid QUERY_SUBDEVICE; extend the model");
            fail(Status::UnknownSubdevice)
        }
        4 => {
            if !unused_zero(&[u64::from(instance), u64::from(index), u64::from(flags), offset]) {
                return fail(Status::BadRequest);
            }
            ConfigResponse::pong(cookie)
        }
        _ => fail(Status::Unsupported),
    }
}

#[test]
fn garbage_config_requests_in_bulk() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    let mut live = vec![id];
    // Deterministic pseudo-random requests: every one gets exactly the
    // 72-byte answer the spec prescribes, and has no other effect.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut statuses = std::collections::HashSet::new();
    for round in 0..200 {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        // Keep the opcode small half of the time so decoding gets further,
        // and now and then clear every field but one so requests also
        // reach the opcode-specific checks.
        if x & 1 == 0 {
            bytes[..4].copy_from_slice(&((x >> 8) as u32 % 6).to_le_bytes());
        }
        if x & 6 == 0 {
            let keep = 4 * ((x >> 16) as usize % 8);
            for (i, b) in bytes.iter_mut().enumerate().skip(4) {
                if !(keep..keep + 4).contains(&i) {
                    *b = 0;
                }
            }
        }
        let expected = expected_answer(&bytes, &mut live);
        let (len, resp) = h.raw_request(&bytes);
        assert_eq!(len, 72, "round {round}");
        assert_eq!(resp, expected, "round {round}: request {bytes:02x?}");
        statuses.insert(resp.status().unwrap());
        assert_eq!(h.live(), live, "round {round}");
    }
    // The generator reached more than the opcode check.
    assert!(statuses.contains(&Status::Unsupported) && statuses.contains(&Status::BadRequest), "{statuses:?}");
    assert!(statuses.len() >= 3, "{statuses:?}");
    // No request of this sequence is a valid DESTROY of it: the instance
    // is intact and still works.
    assert_eq!(h.live(), [id]);
    h.post_event_buffers(1);
    assert_echo_works(&mut h, id, 1);
}

#[test]
fn event_queue_not_set_up() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.vrings[1].set_enabled(false);
    h.region_write(ECHO, 0, b"ABCDEFGH");
    h.notify(id, &copy(id, 1, 0, 8, 0x100, Notification::F_EVENT));
    assert_eq!(h.region_read(ECHO, 0x100, 8), b"ABCDEFGH");
    assert_eq!(h.completion_word(ECHO, 0), 1);
    assert_eq!(h.backend.device().pending_dropped(), 1);
}
