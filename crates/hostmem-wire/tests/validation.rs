//! Round-trip and rejection tests: short buffers, unknown codes, range edges,
//! config validation, and a no-panic sweep over arbitrary bytes.

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::zerocopy::little_endian::{U16, U32, U64};
use hostmem_wire::{
    CONFIG_MAX_ENTRIES, Config, ConfigRequest, ConfigResponse, Event, EventType, MAX_INSTANCES_LIMIT, Notification,
    Opcode, Request, Status, SubdeviceEntry, WireError, check_completion_word, check_range, check_seq, codec,
    completion_reached, echo, instance_for_queue, notify_queue, queue_count,
};

const MIB: u64 = 1 << 20;

fn sub(index: u64) -> SubdeviceEntry {
    SubdeviceEntry::new(
        echo::VENDOR_ID,
        echo::DEVICE_ID,
        echo::REVISION,
        index as u32,
        0x8000_0000 + index * 16 * MIB,
        16 * MIB,
        0,
    )
}

fn subs(n: u64) -> Vec<SubdeviceEntry> {
    (0..n).map(sub).collect()
}

// ---- ranges -------------------------------------------------------------

#[test]
fn range_edges() {
    assert_eq!(check_range(100, 0, 100), Ok(()));
    assert_eq!(check_range(100, 100, 0), Ok(()));
    assert_eq!(check_range(100, 60, 40), Ok(()));
    assert_eq!(check_range(0, 0, 0), Ok(()));
    assert_eq!(check_range(100, 0, 101), Err(WireError::OutOfRange { offset: 0, size: 101, region_len: 100 }));
    assert!(matches!(check_range(100, 101, 0), Err(WireError::OutOfRange { .. })));
    assert!(matches!(check_range(100, 61, 40), Err(WireError::OutOfRange { .. })));
    assert_eq!(check_range(u64::MAX, 0, u64::MAX), Ok(()));
    assert_eq!(check_range(u64::MAX, u64::MAX, 0), Ok(()));
    assert_eq!(check_range(u64::MAX, u64::MAX, 1), Err(WireError::RangeOverflow { offset: u64::MAX, size: 1 }));
    assert!(matches!(check_range(u64::MAX, 1, u64::MAX), Err(WireError::RangeOverflow { .. })));
    assert!(matches!(check_range(100, u64::MAX, u64::MAX), Err(WireError::RangeOverflow { .. })));
    assert_eq!(WireError::RangeOverflow { offset: 1, size: 1 }.status(), Status::BadRange);
}

#[test]
fn completion_word_edges() {
    assert_eq!(check_completion_word(4096, 0), Ok(()));
    assert_eq!(check_completion_word(4096, 4088), Ok(()));
    assert!(matches!(check_completion_word(4096, 4096), Err(WireError::OutOfRange { .. })));
    assert!(matches!(check_completion_word(4096, 4), Err(WireError::Misaligned { .. })));
    assert!(matches!(check_completion_word(u64::MAX, u64::MAX - 7), Err(WireError::RangeOverflow { .. })));
    assert!(completion_reached(5, 5));
    assert!(completion_reached(6, 5));
    assert!(!completion_reached(4, 5));
}

#[test]
fn completion_word_atomics_round_trip() {
    use core::sync::atomic::AtomicU64;
    let word = AtomicU64::new(0);
    hostmem_wire::publish_completion(&word, 0x0102_0304_0506_0708);
    assert_eq!(hostmem_wire::load_completion(&word), 0x0102_0304_0506_0708);
    // In memory it is little-endian whatever the host.
    assert_eq!(word.load(core::sync::atomic::Ordering::Relaxed).to_ne_bytes(), [8, 7, 6, 5, 4, 3, 2, 1]);
}

// ---- queues -------------------------------------------------------------

#[test]
fn queue_numbering() {
    assert_eq!(queue_count(1), Ok(3));
    assert_eq!(queue_count(4), Ok(6));
    assert_eq!(queue_count(MAX_INSTANCES_LIMIT), Ok(1024));
    assert_eq!(queue_count(0), Err(WireError::InvalidMaxInstances(0)));
    assert!(queue_count(MAX_INSTANCES_LIMIT + 1).is_err());
    assert_eq!(notify_queue(0, 4), Ok(2));
    assert_eq!(notify_queue(3, 4), Ok(5));
    assert!(notify_queue(4, 4).is_err());
    assert!(notify_queue(u32::MAX, u32::MAX).is_err());
    assert_eq!(instance_for_queue(0, 4), None);
    assert_eq!(instance_for_queue(1, 4), None);
    assert_eq!(instance_for_queue(2, 4), Some(0));
    assert_eq!(instance_for_queue(5, 4), Some(3));
    assert_eq!(instance_for_queue(6, 4), None);
}

// ---- codes --------------------------------------------------------------

#[test]
fn codes_round_trip_and_reject_unknown() {
    for s in Status::ALL {
        assert_eq!(Status::try_from(u32::from(*s)), Ok(*s));
    }
    for op in Opcode::ALL {
        assert_eq!(Opcode::try_from(u32::from(*op)), Ok(*op));
    }
    for t in EventType::ALL {
        assert_eq!(EventType::try_from(u32::from(*t)), Ok(*t));
    }
    assert_eq!(Status::try_from(11), Err(WireError::UnknownStatus(11)));
    assert_eq!(Status::try_from(u32::MAX), Err(WireError::UnknownStatus(u32::MAX)));
    assert_eq!(Opcode::try_from(0), Err(WireError::UnknownOpcode(0)));
    assert_eq!(Opcode::try_from(5), Err(WireError::UnknownOpcode(5)));
    assert_eq!(EventType::try_from(0), Err(WireError::UnknownEventType(0)));
    assert_eq!(EventType::try_from(4), Err(WireError::UnknownEventType(4)));
    assert_eq!(codec::Op::try_from(3), Err(WireError::UnknownOpcode(3)));
    assert_eq!(echo::Op::try_from(1), Ok(echo::Op::Copy));
    assert_eq!(WireError::UnknownOpcode(9).status(), Status::Unsupported);
    assert_eq!(Status::Ok.into_result(), Ok(()));
    assert_eq!(Status::NoSpace.into_result(), Err(WireError::Failed(Status::NoSpace)));
}

// ---- config -------------------------------------------------------------

#[test]
fn config_round_trip_small_and_large() {
    for n in [1u64, 5, 6, 7, 40] {
        let all = subs(n);
        let config = Config::from_subdevices(4, &all).expect("valid");
        let parsed = Config::parse(config.as_bytes()).expect("parse");
        assert_eq!(parsed, config);
        assert_eq!(parsed.num_subdevices.get() as u64, n);
        let present = n.min(CONFIG_MAX_ENTRIES as u64) as usize;
        assert_eq!(parsed.entries(), &all[..present]);
        assert_eq!(parsed.is_complete(), n <= 6);
    }
    // Longer buffers are fine (a transport may read more).
    let config = Config::from_subdevices(4, &subs(2)).expect("valid");
    let mut long = config.as_bytes().to_vec();
    long.extend_from_slice(&[0xff; 16]);
    assert_eq!(Config::parse(&long), Ok(config));
}

#[test]
fn config_short_buffer() {
    let config = Config::from_subdevices(4, &subs(2)).expect("valid");
    assert_eq!(Config::parse(&config.as_bytes()[..255]), Err(WireError::ShortBuffer { needed: 256, got: 255 }));
    assert!(matches!(Config::parse(&[]), Err(WireError::ShortBuffer { got: 0, .. })));
}

fn valid_config() -> Config {
    Config::from_subdevices(4, &subs(3)).expect("valid")
}

#[test]
fn config_header_rejections() {
    let mut c = valid_config();
    c.magic = U32::new(0x1234_5678);
    assert_eq!(c.validate(), Err(WireError::BadMagic(0x1234_5678)));

    let mut c = valid_config();
    c.version = U16::new(2);
    assert_eq!(c.validate(), Err(WireError::UnsupportedVersion(2)));

    let mut c = valid_config();
    c.entries_present = U16::new(7);
    assert!(matches!(c.validate(), Err(WireError::TooManyEntries { present: 7, .. })));
    // And the accessor never reads past the array.
    assert_eq!(c.entries().len(), 6);

    let mut c = valid_config();
    c.num_subdevices = U32::new(2);
    assert!(matches!(c.validate(), Err(WireError::SubdeviceCountBelowEntries { .. })));

    let mut c = valid_config();
    c.num_subdevices = U32::new(9);
    assert_eq!(c.validate(), Err(WireError::EntriesNotFilled { present: 3, expected: 6 }));

    let mut c = valid_config();
    c.num_subdevices = U32::new(0);
    c.entries_present = U16::new(0);
    c.entries = [SubdeviceEntry::default(); 6];
    assert_eq!(c.validate(), Err(WireError::NoSubdevices));

    let mut c = valid_config();
    c.max_instances = U32::new(0);
    assert_eq!(c.validate(), Err(WireError::InvalidMaxInstances(0)));
    c.max_instances = U32::new(MAX_INSTANCES_LIMIT + 1);
    assert!(matches!(c.validate(), Err(WireError::InvalidMaxInstances(_))));
    c.max_instances = U32::new(MAX_INSTANCES_LIMIT);
    assert_eq!(c.validate(), Ok(()));

    let mut c = valid_config();
    c.entries[4].vendor_id = U32::new(1);
    assert_eq!(c.validate(), Err(WireError::UnusedEntryNotZero { index: 4 }));
}

#[test]
fn config_region_rejections() {
    let check = |mutate: &dyn Fn(&mut SubdeviceEntry)| {
        let mut c = valid_config();
        mutate(&mut c.entries[1]);
        c.validate()
    };
    assert_eq!(check(&|e| e.region_len = U64::new(0)), Err(WireError::RegionEmpty { index: 1 }));
    assert_eq!(check(&|e| e.region_len = U64::new(4097)), Err(WireError::RegionMisaligned { index: 1 }));
    assert_eq!(check(&|e| e.region_base = U64::new(0x8000_0800)), Err(WireError::RegionMisaligned { index: 1 }));
    assert_eq!(
        check(&|e| {
            e.region_base = U64::new(u64::MAX - 4095);
            e.region_len = U64::new(8192);
        }),
        Err(WireError::RegionOverflow { index: 1 })
    );
    // Ending exactly at 2^64 - 4096 + 4096 would need 2^64: the largest
    // representable region ends at u64::MAX + 1, which overflows; one page
    // below is fine.
    assert_eq!(
        check(&|e| {
            e.region_base = U64::new(u64::MAX - 8191);
            e.region_len = U64::new(4096);
        }),
        Ok(())
    );
    assert_eq!(check(&|e| e.shmid = U32::new(256)), Err(WireError::ShmidTooLarge { index: 1, shmid: 256 }));
    assert_eq!(check(&|e| e.shmid = U32::new(0)), Err(WireError::DuplicateShmid { first: 0, second: 1, shmid: 0 }));
    assert_eq!(
        check(&|e| e.region_base = U64::new(0x8000_0000 + 15 * MIB)),
        Err(WireError::RegionsOverlap { first: 0, second: 1 })
    );
    // Touching but not overlapping is fine.
    assert_eq!(check(&|e| e.region_base = U64::new(0x8000_0000 + 16 * MIB)), Ok(()));
    assert!(matches!(check(&|e| e.flags = U32::new(2)), Err(WireError::UnknownFlags { bits: 2, .. })));
    assert_eq!(check(&|e| e.flags = U32::new(SubdeviceEntry::F_EXCLUSIVE)), Ok(()));
    assert!(matches!(check(&|e| e.reserved = U32::new(1)), Err(WireError::NonZeroField { .. })));
}

#[test]
fn from_subdevices_validates_beyond_config_space() {
    // Entry 7 is not in config space but still must not overlap entry 0.
    let mut all = subs(8);
    all[7].region_base = all[0].region_base;
    assert!(matches!(
        Config::from_subdevices(4, &all),
        Err(WireError::DuplicateShmid { .. } | WireError::RegionsOverlap { .. })
    ));
    assert_eq!(Config::from_subdevices(4, &[]), Err(WireError::NoSubdevices));
    assert!(Config::from_subdevices(0, &subs(1)).is_err());
}

// ---- config queue -------------------------------------------------------

#[test]
fn requests_round_trip() {
    let requests = [
        Request::Create { subdevice_index: 3, completion_offset: None },
        Request::Create { subdevice_index: 0, completion_offset: Some(0) },
        Request::Create { subdevice_index: 1, completion_offset: Some(0x1000) },
        Request::Destroy { instance_id: 7 },
        Request::QuerySubdevice { subdevice_index: 9 },
        Request::Ping { cookie: u64::MAX },
    ];
    for r in requests {
        let wire = r.encode();
        let read = ConfigRequest::read(wire.as_bytes()).expect("read");
        assert_eq!(read.decode(), Ok(r));
        assert_eq!(ConfigRequest::from(r), wire);
    }
}

#[test]
fn request_rejections() {
    let ping = Request::Ping { cookie: 1 }.encode();
    assert_eq!(ConfigRequest::read(&ping.as_bytes()[..31]), Err(WireError::ShortBuffer { needed: 32, got: 31 }));

    let mut r = ping;
    r.opcode = U32::new(99);
    assert_eq!(r.decode(), Err(WireError::UnknownOpcode(99)));
    assert_eq!(r.decode().unwrap_err().status(), Status::Unsupported);

    let mut r = ping;
    r.instance_id = U32::new(1);
    assert!(matches!(r.decode(), Err(WireError::NonZeroField { .. })));
    assert_eq!(r.decode().unwrap_err().status(), Status::BadRequest);

    let mut r = Request::Destroy { instance_id: 1 }.encode();
    r.cookie = U64::new(1);
    assert!(matches!(r.decode(), Err(WireError::NonZeroField { .. })));

    let mut r = Request::Create { subdevice_index: 0, completion_offset: None }.encode();
    r.flags = U32::new(0x8000_0000);
    assert!(matches!(r.decode(), Err(WireError::UnknownFlags { .. })));

    // An offset without the flag is a non-zero unused field.
    let mut r = Request::Create { subdevice_index: 0, completion_offset: None }.encode();
    r.completion_offset = U64::new(8);
    assert!(matches!(r.decode(), Err(WireError::NonZeroField { .. })));

    // A zeroed buffer is not a request.
    let zero = [0u8; 32];
    assert_eq!(ConfigRequest::read(&zero).expect("read").decode(), Err(WireError::UnknownOpcode(0)));
}

#[test]
fn create_completion_word_checked_against_region() {
    let entry = sub(0);
    let ok = Request::Create { subdevice_index: 0, completion_offset: Some(16 * MIB - 8) };
    assert_eq!(ok.check_against(&entry), Ok(()));
    let past = Request::Create { subdevice_index: 0, completion_offset: Some(16 * MIB) };
    assert_eq!(past.check_against(&entry).unwrap_err().status(), Status::BadRange);
    let odd = Request::Create { subdevice_index: 0, completion_offset: Some(12) };
    assert_eq!(odd.check_against(&entry).unwrap_err().status(), Status::BadRange);
}

#[test]
fn responses_checked_by_driver() {
    let create = Request::Create { subdevice_index: 2, completion_offset: None };
    let resp = ConfigResponse::created(2, sub(2), 3).expect("created");
    let read = ConfigResponse::read(resp.as_bytes(), 72).expect("read");
    assert_eq!(read.check(&create, 4), Ok(()));
    // Instance beyond max_instances.
    assert!(matches!(read.check(&create, 3), Err(WireError::InstanceOutOfRange { .. })));
    // notify_queue not 2 + id.
    let mut bad = resp;
    bad.notify_queue = U32::new(4);
    assert!(matches!(bad.check(&create, 4), Err(WireError::Inconsistent { .. })));
    // Used length short of a whole response.
    assert_eq!(ConfigResponse::read(resp.as_bytes(), 71), Err(WireError::ShortBuffer { needed: 72, got: 71 }));
    // Used length larger than the buffer is clamped, not trusted.
    assert!(ConfigResponse::read(&resp.as_bytes()[..40], 1000).is_err());

    let fail = ConfigResponse::failure(Opcode::Create.into(), Status::NoFreeInstance);
    assert_eq!(fail.check(&create, 4), Err(WireError::Failed(Status::NoFreeInstance)));
    let mut unknown = fail;
    unknown.status = U32::new(1234);
    assert_eq!(unknown.check(&create, 4), Err(WireError::UnknownStatus(1234)));

    let ping = Request::Ping { cookie: 42 };
    assert_eq!(ConfigResponse::pong(42).check(&ping, 4), Ok(()));
    assert!(ConfigResponse::pong(41).check(&ping, 4).is_err());
    assert!(ConfigResponse::destroyed(1).check(&ping, 4).is_err());

    let destroy = Request::Destroy { instance_id: 1 };
    assert_eq!(ConfigResponse::destroyed(1).check(&destroy, 4), Ok(()));
    assert!(ConfigResponse::destroyed(2).check(&destroy, 4).is_err());

    let query = Request::QuerySubdevice { subdevice_index: 8 };
    assert_eq!(ConfigResponse::queried(8, sub(8)).check(&query, 4), Ok(()));
    let mut bad_entry = sub(8);
    bad_entry.region_len = U64::new(0);
    assert!(ConfigResponse::queried(8, bad_entry).check(&query, 4).is_err());
}

// ---- notifications and events -------------------------------------------

#[test]
fn notification_checks() {
    let region = 16 * MIB;
    let n = Notification::new(1, 1, Notification::F_EVENT, 5, region - 16, 16, [0; 32]);
    let read = Notification::read(n.as_bytes()).expect("read");
    assert_eq!(read, n);
    assert!(read.wants_event());
    assert_eq!(read.check(1, 4, region), Ok(()));
    assert_eq!(read.check(2, 4, region), Err(WireError::InstanceMismatch { expected: 2, got: 1 }));
    assert_eq!(read.check(1, 5, region), Err(WireError::BadSequence { last: 5, got: 5 }));
    assert_eq!(read.check(1, 5, region).unwrap_err().status(), Status::BadSequence);
    assert!(matches!(read.check(1, 4, region - 1), Err(WireError::OutOfRange { .. })));

    let overflow = Notification::new(1, 1, 0, 5, u64::MAX, 1, [0; 32]);
    assert!(matches!(overflow.check(1, 0, region), Err(WireError::RangeOverflow { .. })));

    // seq is checked before flags: a bad seq is never "accepted".
    let both = Notification::new(1, 1, 0x10, 5, 0, 0, [0; 32]);
    assert!(matches!(both.check(1, 5, region), Err(WireError::BadSequence { .. })));

    let flags = Notification::new(1, 1, 0x10, 5, 0, 0, [0; 32]);
    assert!(matches!(flags.check(1, 0, region), Err(WireError::UnknownFlags { .. })));

    let mut reserved = n;
    reserved.reserved = U32::new(1);
    assert!(matches!(reserved.check(1, 0, region), Err(WireError::NonZeroField { .. })));

    assert_eq!(Notification::read(&n.as_bytes()[..71]), Err(WireError::ShortBuffer { needed: 72, got: 71 }));
    assert_eq!(check_seq(0, 0), Err(WireError::BadSequence { last: 0, got: 0 }));
    assert_eq!(check_seq(0, 1), Ok(()));
    assert_eq!(check_seq(7, 100), Ok(()));
}

#[test]
fn event_checks() {
    let region = 16 * MIB;
    let ev = Event::completion(2, 9, 0x1000, 0x20, [7; 32]);
    let read = Event::read(ev.as_bytes(), 80).expect("read");
    assert_eq!(read, ev);
    assert_eq!(read.check(4, region), Ok(EventType::Completion));
    assert!(matches!(read.check(2, region), Err(WireError::InstanceOutOfRange { .. })));
    assert!(matches!(read.check(4, 0x1010), Err(WireError::OutOfRange { .. })));
    assert!(matches!(Event::read(ev.as_bytes(), 79), Err(WireError::ShortBuffer { .. })));

    let err = Event::error(1, 3, Status::BadInput).with_dropped(2);
    assert_eq!(err.check(4, region), Ok(EventType::Error));
    assert_eq!(err.dropped.get(), 2);
    assert_eq!(err.flags.get(), Event::F_OVERFLOW);
    assert_eq!(err.with_dropped(0).flags.get(), 0);

    // ERROR with status OK, or COMPLETION with a failure, is inconsistent.
    let bad = Event::error(1, 3, Status::Ok);
    assert!(matches!(bad.check(4, region), Err(WireError::Inconsistent { .. })));
    let mut bad = ev;
    bad.status = U32::new(Status::DeviceError.into());
    assert!(matches!(bad.check(4, region), Err(WireError::Inconsistent { .. })));

    // Overflow flag without a count, and the reverse.
    let mut bad = ev;
    bad.flags = U32::new(Event::F_OVERFLOW);
    assert!(matches!(bad.check(4, region), Err(WireError::Inconsistent { .. })));
    let mut bad = ev;
    bad.dropped = U32::new(1);
    assert!(matches!(bad.check(4, region), Err(WireError::Inconsistent { .. })));

    let mut bad = ev;
    bad.event_type = U32::new(77);
    assert_eq!(bad.check(4, region), Err(WireError::UnknownEventType(77)));
    let mut bad = ev;
    bad.status = U32::new(77);
    assert_eq!(bad.check(4, region), Err(WireError::UnknownStatus(77)));

    let lost = Event::instance_lost(3, 10, Status::DeviceError);
    assert_eq!(lost.check(4, region), Ok(EventType::InstanceLost));
}

// ---- sub-devices --------------------------------------------------------

#[test]
fn codec_decode_meta() {
    let region = 16 * MIB;
    let m = codec::DecodeMeta::new(0x10_0000, 0x40_0000);
    assert_eq!(codec::DecodeMeta::from_metadata(m.to_metadata()), m);
    assert_eq!(m.check(region, 0x1000, 0x1000), Ok(()));
    // Output overlapping the input.
    assert_eq!(m.check(region, 0x10_0000, 1).unwrap_err().status(), Status::BadRange);
    // Output past the end.
    let far = codec::DecodeMeta::new(region - 0x1000, 0x2000);
    assert_eq!(far.check(region, 0, 1).unwrap_err().status(), Status::BadRange);
    let odd = codec::DecodeMeta::new(0x10_0004, 0x1000);
    assert_eq!(odd.check(region, 0, 1).unwrap_err().status(), Status::BadRange);
    let tiny = codec::DecodeMeta::new(0x10_0000, 31);
    assert_eq!(tiny.check(region, 0, 1).unwrap_err().status(), Status::NoSpace);
    let mut reserved = m;
    reserved.reserved[15] = 1;
    assert_eq!(reserved.check(region, 0, 1).unwrap_err().status(), Status::BadRequest);
}

#[test]
fn codec_frame_info() {
    let f = codec::FrameInfo::decoded(5, 640, 480, 4, 0).expect("ok");
    assert_eq!(f.pixels_size.get(), 640 * 480 * 4);
    assert_eq!(codec::FrameInfo::from_metadata(f.to_metadata()), f);
    assert_eq!(f.check(5, 32 + 640 * 480 * 4), Ok(()));
    assert!(matches!(f.check(5, 32 + 640 * 480 * 4 - 1), Err(WireError::OutOfRange { .. })));
    assert!(matches!(f.check(6, u64::MAX), Err(WireError::Inconsistent { .. })));
    assert_eq!(
        codec::FrameInfo::failed(5, Status::BadInput).check(5, u64::MAX),
        Err(WireError::Failed(Status::BadInput))
    );
    let read = codec::FrameInfo::read(f.as_bytes()).expect("read");
    assert_eq!(read, f);
    assert!(codec::FrameInfo::read(&f.as_bytes()[..31]).is_err());

    // Rejected dimensions.
    for (w, h, c, cs) in [(0, 1, 4, 0), (1, 0, 3, 0), (1, 1, 2, 0), (1, 1, 5, 0), (1, 1, 4, 2)] {
        assert_eq!(codec::FrameInfo::decoded(1, w, h, c, cs), Err(WireError::Failed(Status::BadInput)));
    }
    assert!(codec::FrameInfo::decoded(1, u32::MAX, u32::MAX, 4, 0).is_err());
    assert!(codec::FrameInfo::decoded(1, 20_000, 20_000, 4, 0).is_ok());
    assert!(codec::FrameInfo::decoded(1, 20_001, 20_000, 4, 0).is_err());
    assert_eq!(codec::required_capacity(2, 2, 3), Some(32 + 12));
    assert_eq!(codec::pixels_size(u32::MAX, u32::MAX, 4), None);

    // Tampered size fields are caught.
    let mut bad = f;
    bad.pixels_size = U64::new(1);
    assert!(matches!(bad.check(5, u64::MAX), Err(WireError::Inconsistent { .. })));
}

#[test]
fn codec_slot_layout() {
    let region = 64 * MIB;
    let l = codec::SlotLayout::new(region, 4, MIB, 4).expect("layout");
    assert_eq!(l.input_slot(0), Some((4096, MIB)));
    assert_eq!(l.input_slot(3), Some((4096 + 3 * MIB, MIB)));
    assert_eq!(l.input_slot(4), None);
    let (out0, cap) = l.output_slot(0).expect("slot");
    assert_eq!(out0, 4096 + 4 * MIB);
    assert_eq!(cap % 4096, 0);
    let (last, cap) = l.output_slot(3).expect("slot");
    assert!(last + cap <= region);
    assert_eq!(l.output_slot(4), None);
    assert_eq!(codec::SlotLayout::completion_offset(0), Some(0));
    assert_eq!(codec::SlotLayout::completion_offset(511), Some(4088));
    assert_eq!(codec::SlotLayout::completion_offset(512), None);

    assert!(codec::SlotLayout::new(region, 0, MIB, 4).is_err());
    assert!(codec::SlotLayout::new(region, 4, 1000, 4).is_err());
    assert!(codec::SlotLayout::new(region, 64, MIB, 4).is_err());
    assert!(codec::SlotLayout::new(region, u32::MAX, u64::MAX - 4095, 4).is_err());
    assert!(codec::SlotLayout::new(8192 + 4096, 1, 4096, 2).is_err());
}

#[test]
fn echo_copy_meta() {
    let region = 16 * MIB;
    let m = echo::CopyMeta::new(0x2000);
    assert_eq!(echo::CopyMeta::from_metadata(m.to_metadata()), m);
    assert_eq!(m.check(region, 0, 0x2000), Ok(()));
    assert_eq!(m.check(region, 0, 0x2001).unwrap_err().status(), Status::BadRange);
    assert!(matches!(m.check(0x3000, 0, 0x1001), Err(WireError::OutOfRange { .. })));
    assert_eq!(m.check(region, 0x1ff8, 0x10).unwrap_err(), WireError::Overlap { what: "echo source and destination" });
    assert_eq!(m.check(region, 0x1fff, 0).map_err(|e| e.status()), Ok(()));
    let far = echo::CopyMeta::new(region);
    assert_eq!(far.check(region, 0, 0), Ok(()));
    assert!(far.check(region, 0, 1).is_err());
    let mut reserved = m;
    reserved.reserved[0] = 1;
    assert_eq!(reserved.check(region, 0, 1).unwrap_err().status(), Status::BadRequest);
}

// ---- arbitrary input ----------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn arbitrary_bytes_never_panic() {
    let valid = valid_config();
    for seed in 0..2000u64 {
        let len = (seed % 300) as usize;
        let mut bytes = noise(seed, len);
        // Half the time start from a valid config and flip a few bytes, so
        // the deeper checks run too.
        if seed % 2 == 0 && len >= 256 {
            bytes[..256].copy_from_slice(valid.as_bytes());
            for k in 0..3 {
                let i = (seed as usize * 31 + k * 97) % 256;
                bytes[i] ^= (seed as u8).wrapping_add(k as u8) | 1;
            }
        }
        let _ = Config::parse(&bytes).map(|c| c.entries().len());
        if let Ok(r) = ConfigRequest::read(&bytes)
            && let Ok(req) = r.decode()
        {
            assert_eq!(req.encode(), r);
            let _ = req.check_against(&sub(0));
        }
        let _ = ConfigResponse::read(&bytes, len).map(|r| {
            r.check(&Request::Ping { cookie: seed }, 4).ok();
        });
        let _ = Notification::read(&bytes).map(|n| n.check(0, seed, 16 * MIB));
        let _ = Event::read(&bytes, len).map(|e| e.check(4, 16 * MIB));
        let _ = codec::FrameInfo::read(&bytes).map(|f| f.check(seed, seed * 1000));
        let _ = SubdeviceEntry::parse(&bytes).map(|e| e.validate(0));
        if let Ok(meta) = <[u8; 32]>::try_from(bytes.get(..32).unwrap_or(&[])) {
            let _ = codec::DecodeMeta::from_metadata(meta).check(16 * MIB, seed, seed);
            let _ = echo::CopyMeta::from_metadata(meta).check(16 * MIB, seed, seed);
        }
    }
}

#[test]
fn errors_display_something() {
    let errors = [
        WireError::ShortBuffer { needed: 1, got: 0 },
        WireError::RegionsOverlap { first: 0, second: 1 },
        WireError::Failed(Status::BadInput),
        WireError::BadMagic(0),
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
}
