//! Notifications, events and completion words (docs/hostmem.md §9).

use hostmem_wire::{EventType, Notification, Status, feature};
use vhost_user_backend::VhostUserBackend;

use super::*;

#[test]
fn echo_copy_with_event_and_completion_word() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0x40)).unwrap();
    h.post_event_buffers(2);
    let data: Vec<u8> = (0..=255u8).collect();
    h.region_write(ECHO, 0x1000, &data);
    h.notify(id, &copy(id, 7, 0x1000, 256, 0x3000, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!(event.event_type().unwrap(), EventType::Completion);
    assert_eq!((event.instance_id.get(), event.seq.get()), (id, 7));
    assert_eq!((event.offset.get(), event.size.get()), (0x3000, 256));
    assert_eq!(event.status().unwrap(), Status::Ok);
    assert_eq!(event.dropped.get(), 0);
    assert_eq!(event.metadata, [0; 32]);
    assert_eq!(h.region_read(ECHO, 0x3000, 256), data);
    assert_eq!(h.completion_word(ECHO, 0x40), 7);
    // Gaps in seq are fine; the word follows.
    h.notify(id, &copy(id, 100, 0x1000, 0, 0x3000, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!((event.seq.get(), event.size.get()), (100, 0));
    assert_eq!(h.completion_word(ECHO, 0x40), 100);
    assert_eq!(h.backend.device().instance(id).unwrap().last_seq, 100);
}

#[test]
fn event_suppress_without_flag_sends_no_completion() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(2);
    h.region_write(ECHO, 0x1000, b"hello");
    h.notify(id, &copy(id, 1, 0x1000, 5, 0x2000, 0));
    assert!(h.events().is_empty(), "no event asked for");
    assert_eq!(h.region_read(ECHO, 0x2000, 5), b"hello");
    assert_eq!(h.completion_word(ECHO, 0), 1);
    // Errors are always sent, whatever the flags.
    h.notify(id, &copy(id, 1, 0x1000, 5, 0x2000, 0));
    assert_error(&one_event(&mut h), id, 1, Status::BadSequence);
    assert_eq!(h.backend.device().pending_dropped(), 0);
}

#[test]
fn without_event_suppress_every_completion_has_an_event() {
    let guest = GuestLayout::new().unwrap();
    let features = feature::mask(feature::VERSION_1) | feature::mask(feature::COMPLETION_WORD);
    let mut h = Harness::with(&guest, Opts { features, ..Opts::default() });
    let id = h.create(ECHO, None).unwrap();
    h.post_event_buffers(1);
    h.notify(id, &copy(id, 1, 0, 8, 0x100, 0));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
}

#[test]
fn notifications_complete_in_order() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(8)).unwrap();
    h.post_event_buffers(5);
    let q = 2 + id as usize;
    let mut heads = Vec::new();
    for seq in 1..=5u64 {
        let buf = h.alloc(72);
        h.write(buf, copy(id, seq, 0, 16, 0x100 * seq, Notification::F_EVENT).as_bytes());
        heads.push(h.post(q, &[(buf, 72, false)]));
    }
    // One kick for all five (and TCG's repeated kicks find nothing more).
    h.kick(q);
    h.kick(q);
    let used: Vec<u16> = h
        .take_used(q)
        .into_iter()
        .map(|(head, len)| {
            assert_eq!(len, 0);
            head
        })
        .collect();
    assert_eq!(used, heads);
    let seqs: Vec<u64> = h.events().iter().map(|e| e.seq.get()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(h.completion_word(ECHO, 8), 5);
}

#[test]
fn instances_are_independent() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let a = h.create(ECHO, Some(0)).unwrap();
    let b = h.create(ECHO, Some(8)).unwrap();
    h.post_event_buffers(4);
    // Each instance has its own seq space.
    assert_echo_works(&mut h, a, 5);
    assert_echo_works(&mut h, b, 1);
    assert_echo_works(&mut h, b, 2);
    assert_eq!((h.completion_word(ECHO, 0), h.completion_word(ECHO, 8)), (5, 2));
}

#[test]
fn destroy_discards_pending_notifications() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(3);
    let q = 2 + id as usize;
    let mut heads = Vec::new();
    for seq in 1..=2u64 {
        let buf = h.alloc(72);
        h.write(buf, copy(id, seq, 0, 16, 0x100, Notification::F_EVENT).as_bytes());
        heads.push(h.post(q, &[(buf, 72, false)]));
    }
    // Not kicked: still pending when DESTROY arrives.
    assert_eq!(h.destroy(id), Status::Ok);
    assert_eq!(h.take_used(q), heads.iter().map(|&hd| (hd, 0)).collect::<Vec<_>>());
    assert!(h.events().is_empty(), "no events for a destroyed instance");
    assert_eq!(h.completion_word(ECHO, 0), 0);
    // A late kick changes nothing.
    h.kick(q);
    assert!(h.take_used(q).is_empty());
}

#[test]
fn events_report_drops_when_driver_posts_no_buffers() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    // No event buffers: three failures and a success are dropped, not
    // queued, and processing goes on (the copy happens, the word moves).
    for _ in 0..3 {
        h.notify(id, &copy(id, 0, 0, 8, 0x100, Notification::F_EVENT));
    }
    h.region_write(ECHO, 0, b"abcdefgh");
    h.notify(id, &copy(id, 1, 0, 8, 0x100, Notification::F_EVENT));
    assert_eq!(h.region_read(ECHO, 0x100, 8), b"abcdefgh");
    assert_eq!(h.completion_word(ECHO, 0), 1);
    assert_eq!(h.backend.device().pending_dropped(), 4);
    assert!(h.events().is_empty());
    // The next delivered event carries the count and the overflow flag.
    h.post_event_buffers(2);
    h.notify(id, &copy(id, 2, 0, 8, 0x200, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!(event.seq.get(), 2);
    assert_eq!(event.dropped.get(), 4);
    assert_eq!(event.flags.get(), hostmem_wire::Event::F_OVERFLOW);
    assert_eq!(h.backend.device().pending_dropped(), 0);
    // And the one after does not.
    h.notify(id, &copy(id, 3, 0, 8, 0x200, Notification::F_EVENT));
    let event = one_event(&mut h);
    assert_eq!((event.dropped.get(), event.flags.get()), (0, 0));
}

#[test]
fn event_buffer_split_across_descriptors() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, None).unwrap();
    let (a, b) = (h.alloc(48), h.alloc(32));
    let head = h.post(1, &[(a, 48, true), (b, 32, true)]);
    h.notify(id, &copy(id, 1, 0, 8, 0x100, Notification::F_EVENT));
    assert_eq!(h.take_used(1), vec![(head, 80)]);
    let mut bytes = h.read(a, 48);
    bytes.extend(h.read(b, 32));
    let event = hostmem_wire::Event::read(&bytes, 80).unwrap();
    assert_eq!((event.event_type().unwrap(), event.seq.get()), (EventType::Completion, 1));
}

#[test]
fn reset_drops_instances_and_stops_writes() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let a = h.create(ECHO, Some(0)).unwrap();
    let b = h.create(CODEC, None).unwrap();
    h.post_event_buffers(4);
    assert_echo_works(&mut h, a, 1);
    // QEMU stops every queue on a device reset (GET_VRING_BASE).
    for q in 0..6 {
        h.backend.stop_vring(q).unwrap();
    }
    assert!(h.live().is_empty());
    assert_eq!(h.backend.device().pending_dropped(), 0);
    // A stale notification after the reset: no event, no write.
    h.region_write(ECHO, 0x800, b"stale!!!");
    h.notify(a, &copy(a, 2, 0x800, 8, 0x500, Notification::F_EVENT));
    assert!(h.events().is_empty());
    assert_eq!(h.region_read(ECHO, 0x500, 8), [0; 8]);
    assert_eq!(h.completion_word(ECHO, 0), 1);
    let _ = b;
    // The device serves again from scratch.
    assert_eq!(h.create(ECHO, Some(0)), Ok(0));
    assert_echo_works(&mut h, 0, 1);
    // RESET_DEVICE does the same.
    h.backend.reset_device();
    assert!(h.live().is_empty());
}

#[test]
fn stopping_one_notification_queue_ends_only_its_instance() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let a = h.create(ECHO, None).unwrap();
    let b = h.create(ECHO, None).unwrap();
    h.backend.stop_vring(2 + a).unwrap();
    assert_eq!(h.live(), vec![b]);
    h.post_event_buffers(1);
    assert_echo_works(&mut h, b, 1);
}
