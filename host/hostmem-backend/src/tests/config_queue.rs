//! Config space and config-queue requests (docs/hostmem.md §6, §8).

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::zerocopy::little_endian::{U32, U64};
use hostmem_wire::{CONFIG_SIZE, Config, ConfigRequest, Opcode, Request, Status, SubdeviceEntry, feature};
use vhost_user_backend::VhostUserBackend;

use super::*;

#[test]
fn config_space_is_the_published_config() {
    let guest = GuestLayout::new().unwrap();
    let h = Harness::new(&guest);
    let bytes = h.backend.get_config(0, CONFIG_SIZE as u32);
    assert_eq!(bytes.len(), 256);
    let config = Config::parse(&bytes).unwrap();
    assert_eq!(config.magic.get(), hostmem_wire::MAGIC);
    assert_eq!(config.num_subdevices.get(), 2);
    assert_eq!(config.max_instances.get(), 4);
    let codec = config.entries()[0];
    assert!(codec.matches(hostmem_wire::codec::VENDOR_ID, hostmem_wire::codec::DEVICE_ID, 1));
    assert_eq!((codec.shmid.get(), codec.region_base.get(), codec.region_len.get()), (0, CODEC_BASE, REGION_SIZE));
    let echo = config.entries()[1];
    assert!(echo.matches(hostmem_wire::echo::VENDOR_ID, hostmem_wire::echo::DEVICE_ID, 1));
    assert_eq!((echo.shmid.get(), echo.region_base.get()), (1, ECHO_BASE));
    // Partial reads honour offset and size; out-of-bounds reads get nothing.
    assert_eq!(h.backend.get_config(4, 2), 1u16.to_le_bytes());
    assert_eq!(h.backend.get_config(16, 4), bytes[16..20]);
    assert!(h.backend.get_config(250, 10).is_empty());
    assert!(h.backend.get_config(u32::MAX, 2).is_empty());
    // Writes are ignored.
    h.backend.set_config(0, &[0; 4]).unwrap();
    assert_eq!(h.backend.get_config(0, 256), bytes);
}

#[test]
fn features_and_protocol_features() {
    let guest = GuestLayout::new().unwrap();
    let h = Harness::new(&guest);
    let f = h.backend.features();
    for bit in [feature::VERSION_1, feature::COMPLETION_WORD, feature::EVENT_SUPPRESS, feature::ACCESS_PLATFORM] {
        assert_ne!(f & feature::mask(bit), 0, "bit {bit}");
    }
    // No device-specific bits beyond 0 and 1 (§5.1).
    assert_eq!(f & 0xff_ffff & !feature::DEVICE_SPECIFIC_MASK, 0);
    let p = h.backend.protocol_features();
    use vhost::vhost_user::VhostUserProtocolFeatures as P;
    assert!(p.contains(P::CONFIG | P::MQ | P::REPLY_ACK | P::BACKEND_REQ));
    assert_eq!(h.backend.num_queues(), 6);
    assert_eq!(h.backend.queues_per_thread(), vec![0b11_1111]);
}

#[test]
fn ping_echoes_cookie() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let resp = h.request(Request::Ping { cookie: 0x1234_5678_9abc_def0 });
    resp.check(&Request::Ping { cookie: 0x1234_5678_9abc_def0 }, 4).unwrap();
}

#[test]
fn query_subdevice() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let request = Request::QuerySubdevice { subdevice_index: 1 };
    let resp = h.request(request);
    resp.check(&request, 4).unwrap();
    assert_eq!(resp.subdevice, h.backend.setup().config().entries()[1]);
    let resp = h.request(Request::QuerySubdevice { subdevice_index: 2 });
    assert_eq!(resp.status().unwrap(), Status::UnknownSubdevice);
    assert_eq!(resp.subdevice, SubdeviceEntry::default());
}

/// Sub-devices past config space (index >= CONFIG_MAX_ENTRIES) are read
/// with QUERY_SUBDEVICE (§6, §8.2), with the same identity checks.
#[test]
fn query_subdevice_beyond_config_space() {
    use crate::testing::{REGION_NODE_BASE, REGION_NODE_SIZE};
    const COUNT: u64 = 8;
    let len = REGION_NODE_SIZE / COUNT;
    let kind = |k: u64| if k.is_multiple_of(2) { SubdeviceKind::Codec } else { SubdeviceKind::Echo };
    let regions = (0..COUNT).map(|k| (kind(k), GuestWindow::new(REGION_NODE_BASE + k * len, len).unwrap())).collect();
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::with(&guest, Opts { regions: Some(regions), ..Opts::default() });
    let config = Config::parse(&h.backend.get_config(0, CONFIG_SIZE as u32)).unwrap();
    assert_eq!(hostmem_wire::CONFIG_MAX_ENTRIES, 6);
    assert_eq!((config.num_subdevices.get(), config.entries_present.get()), (8, 6));
    assert!(!config.is_complete());
    let mut all = config.entries().to_vec();
    for index in [6u32, 7] {
        let request = Request::QuerySubdevice { subdevice_index: index };
        let resp = h.request(request);
        resp.check(&request, 4).unwrap();
        let entry = resp.subdevice;
        let k = u64::from(index);
        let (vendor, device, revision) = kind(k).identity();
        assert!(entry.matches(vendor, device, revision), "index {index}: {entry:?}");
        assert_eq!(entry.shmid.get(), index);
        assert_eq!((entry.region_base.get(), entry.region_len.get()), (REGION_NODE_BASE + k * len, len));
        assert_eq!((entry.flags.get(), entry.reserved.get()), (0, 0));
        all.push(entry);
    }
    // Together with config space: the driver's whole-set check passes.
    hostmem_wire::validate_entries(&all).unwrap();
    // Past the last sub-device: UNKNOWN_SUBDEVICE, every other field zero.
    for index in [8, 9, u32::MAX] {
        let (len, resp) = h.raw_request(Request::QuerySubdevice { subdevice_index: index }.encode().as_bytes());
        assert_eq!(len, 72);
        assert_eq!(resp, ConfigResponse::failure(Opcode::QuerySubdevice.into(), Status::UnknownSubdevice));
    }
    // Sub-device 7 is as usable as any other: CREATE returns its entry,
    // and an echo copy works in its region.
    let request = Request::Create { subdevice_index: 7, completion_offset: Some(0) };
    let resp = h.request(request);
    resp.check(&request, 4).unwrap();
    assert_eq!(resp.subdevice, all[7]);
    let id = resp.instance_id.get();
    h.post_event_buffers(1);
    let base7 = REGION_NODE_BASE + 7 * len;
    h.write(base7 + 0x100, b"sub-dev7");
    h.notify(id, &super::copy(id, 1, 0x100, 8, 0x200, hostmem_wire::Notification::F_EVENT));
    assert_eq!(one_event(&mut h).event_type().unwrap(), hostmem_wire::EventType::Completion);
    assert_eq!(h.read(base7 + 0x200, 8), b"sub-dev7");
    assert_eq!(h.read(base7, 8), 1u64.to_le_bytes(), "completion word in region 7");
}

#[test]
fn create_and_destroy() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let request = Request::Create { subdevice_index: CODEC, completion_offset: None };
    let resp = h.request(request);
    resp.check(&request, 4).unwrap();
    assert_eq!((resp.instance_id.get(), resp.notify_queue.get()), (0, 2));
    assert_eq!(resp.subdevice, h.backend.setup().config().entries()[0]);
    assert_eq!(h.create(ECHO, None), Ok(1));
    assert_eq!(h.live(), vec![0, 1]);
    let resp = h.request(Request::Destroy { instance_id: 0 });
    resp.check(&Request::Destroy { instance_id: 0 }, 4).unwrap();
    assert_eq!(h.live(), vec![1]);
    assert_eq!(h.destroy(0), Status::BadInstance);
    assert_eq!(h.destroy(7), Status::BadInstance);
    assert_eq!(h.destroy(u32::MAX), Status::BadInstance);
    // The freed slot is reused.
    assert_eq!(h.create(CODEC, None), Ok(0));
}

#[test]
fn create_unknown_subdevice() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    assert_eq!(h.create(2, None), Err(Status::UnknownSubdevice));
    assert_eq!(h.create(u32::MAX, None), Err(Status::UnknownSubdevice));
    assert!(h.live().is_empty());
}

#[test]
fn too_many_instances() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    for expected in 0..4 {
        assert_eq!(h.create(ECHO, Some(8 * u64::from(expected))), Ok(expected));
    }
    assert_eq!(h.create(ECHO, None), Err(Status::NoFreeInstance));
    assert_eq!(h.create(CODEC, None), Err(Status::NoFreeInstance));
    assert_eq!(h.live(), vec![0, 1, 2, 3]);
    h.post_event_buffers(4);
    for id in 0..4 {
        assert_echo_works(&mut h, id, 1);
    }
}

#[test]
fn create_uses_only_enabled_notification_queues() {
    let guest = GuestLayout::new().unwrap();
    // Only config, event and the queues of instances 0 and 1 set up.
    let mut h = Harness::with(&guest, Opts { queues: 4, ..Opts::default() });
    assert_eq!(h.create(ECHO, None), Ok(0));
    assert_eq!(h.create(ECHO, None), Ok(1));
    assert_eq!(h.create(ECHO, None), Err(Status::NoFreeInstance));
    // Disabling a free queue takes its slot out too.
    assert_eq!(h.destroy(0), Status::Ok);
    h.vrings[2].set_enabled(false);
    assert_eq!(h.create(ECHO, None), Err(Status::NoFreeInstance));
}

#[test]
fn completion_word_checks() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    assert_eq!(h.create(ECHO, Some(4)), Err(Status::BadRange), "misaligned");
    assert_eq!(h.create(ECHO, Some(REGION_SIZE - 4)), Err(Status::BadRange), "misaligned at the end");
    assert_eq!(h.create(ECHO, Some(REGION_SIZE)), Err(Status::BadRange), "past the end");
    assert_eq!(h.create(ECHO, Some(u64::MAX - 7)), Err(Status::BadRange), "offset + 8 overflows");
    assert_eq!(h.create(ECHO, Some(REGION_SIZE - 8)), Ok(0), "last word");
    assert_eq!(h.create(ECHO, Some(REGION_SIZE - 8)), Err(Status::BadRange), "clashes with instance 0");
    // Another sub-device's region is separate: the same offset is fine.
    assert_eq!(h.create(CODEC, Some(REGION_SIZE - 8)), Ok(1));
    assert!(h.live() == vec![0, 1]);
    // Freed with its instance.
    assert_eq!(h.destroy(0), Status::Ok);
    assert_eq!(h.create(ECHO, Some(REGION_SIZE - 8)), Ok(0));
}

#[test]
fn completion_word_zeroed_on_create() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    h.region_write(ECHO, 0x100, &[0xff; 8]);
    assert_eq!(h.create(ECHO, Some(0x100)), Ok(0));
    assert_eq!(h.completion_word(ECHO, 0x100), 0);
}

#[test]
fn completion_word_needs_the_feature() {
    let guest = GuestLayout::new().unwrap();
    let features = feature::mask(feature::VERSION_1);
    let mut h = Harness::with(&guest, Opts { features, ..Opts::default() });
    assert_eq!(h.create(ECHO, Some(0)), Err(Status::Unsupported));
    assert_eq!(h.create(ECHO, None), Ok(0));
}

#[test]
fn unknown_opcode_and_nonzero_fields() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let mut raw = Request::Ping { cookie: 1 }.encode();
    raw.opcode = U32::new(99);
    let (len, resp) = h.raw_request(raw.as_bytes());
    assert_eq!(len, 72);
    assert_eq!(resp, ConfigResponse::failure(99, Status::Unsupported));

    let mut raw = Request::Create { subdevice_index: ECHO, completion_offset: None }.encode();
    raw.cookie = U64::new(5);
    let (_, resp) = h.raw_request(raw.as_bytes());
    assert_eq!(resp, ConfigResponse::failure(Opcode::Create.into(), Status::BadRequest));

    let mut raw = Request::Create { subdevice_index: ECHO, completion_offset: None }.encode();
    raw.flags = U32::new(0x80);
    let (_, resp) = h.raw_request(raw.as_bytes());
    assert_eq!(resp, ConfigResponse::failure(Opcode::Create.into(), Status::BadRequest));

    let mut raw = Request::Destroy { instance_id: 0 }.encode();
    raw.subdevice_index = U32::new(1);
    let (_, resp) = h.raw_request(raw.as_bytes());
    assert_eq!(resp, ConfigResponse::failure(Opcode::Destroy.into(), Status::BadRequest));
    // None of it had an effect.
    assert!(h.live().is_empty());
}

#[test]
fn short_request_is_bad_request() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let full = Request::Create { subdevice_index: ECHO, completion_offset: None }.encode();
    let (len, resp) = h.raw_request(&full.as_bytes()[..16]);
    assert_eq!(len, 72);
    assert_eq!(resp, ConfigResponse::failure(Opcode::Create.into(), Status::BadRequest));
    // No readable part at all.
    let resp_buf = h.alloc(72);
    let (len, resp) = h.chain_request(&[(resp_buf, 72, true)], resp_buf);
    assert_eq!(len, 72);
    assert_eq!(resp, ConfigResponse::failure(0, Status::BadRequest));
    assert!(h.live().is_empty());
}

#[test]
fn long_request_reads_only_32_bytes() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let mut bytes = Request::Ping { cookie: 9 }.encode().as_bytes().to_vec();
    bytes.extend_from_slice(&[0xab; 100]);
    let (len, resp) = h.raw_request(&bytes);
    assert_eq!(len, 72);
    resp.check(&Request::Ping { cookie: 9 }, 4).unwrap();
}

#[test]
fn short_response_buffer_is_not_acted_on() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let req = h.alloc(32);
    h.write(req, Request::Create { subdevice_index: ECHO, completion_offset: None }.encode().as_bytes());
    let resp = h.alloc(72);
    h.write(resp, &[0xee; 72]);
    let (len, _) = h.chain_request(&[(req, 32, false), (resp, 71, true)], resp);
    assert_eq!(len, 0);
    assert_eq!(h.read(resp, 72), vec![0xee; 72], "nothing written");
    assert!(h.live().is_empty(), "not acted on");
    // No writable part at all.
    let head = h.post(0, &[(req, 32, false)]);
    h.kick(0);
    assert_eq!(h.take_used(0), vec![(head, 0)]);
    assert!(h.live().is_empty());
}

#[test]
fn request_split_across_descriptors() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let bytes = Request::Create { subdevice_index: ECHO, completion_offset: None }.encode();
    let (a, b) = (h.alloc(10), h.alloc(22));
    h.write(a, &bytes.as_bytes()[..10]);
    h.write(b, &bytes.as_bytes()[10..]);
    let (r1, r2) = (h.alloc(30), h.alloc(42));
    let (len, _) = h.chain_request(&[(a, 10, false), (b, 22, false), (r1, 30, true), (r2, 42, true)], r1);
    assert_eq!(len, 72);
    let mut resp = h.read(r1, 30);
    resp.extend(h.read(r2, 42));
    let resp = ConfigResponse::read(&resp, 72).unwrap();
    resp.check(&Request::Create { subdevice_index: ECHO, completion_offset: None }, 4).unwrap();
    assert_eq!(h.live(), vec![0]);
}

#[test]
fn readable_after_writable_is_bad_request() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let req = h.alloc(32);
    h.write(req, Request::Create { subdevice_index: ECHO, completion_offset: None }.encode().as_bytes());
    let resp = h.alloc(72);
    let (len, resp) = h.chain_request(&[(resp, 72, true), (req, 32, false)], resp);
    assert_eq!(len, 72);
    assert_eq!(resp, ConfigResponse::failure(Opcode::Create.into(), Status::BadRequest));
    assert!(h.live().is_empty());
}

#[test]
fn config_request_of_zero_bytes_everywhere() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let (len, resp) = h.raw_request(ConfigRequest::read(&[0; 32]).unwrap().as_bytes());
    assert_eq!(len, 72);
    assert_eq!(resp, ConfigResponse::failure(0, Status::Unsupported));
}
