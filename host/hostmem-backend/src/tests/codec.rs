//! Codec sub-device (docs/hostmem.md appendix A) with real QOI frames.

use hostmem_wire::codec::{DecodeMeta, FRAME_HEADER_SIZE, FrameInfo, SlotLayout};
use hostmem_wire::{EventType, Notification, Status};

use super::*;

const INPUT: u64 = 0x1000;
const OUTPUT: u64 = 0x10_0000;

/// A w x h test image with `channels` channels: a gradient with some noise
/// so all QOI chunk kinds appear.
fn image(w: u32, h: u32, channels: u8) -> Vec<u8> {
    let mut px = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let noise = ((x * 7 + y * 13) % 5) as u8;
            px.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, noise * 40, 200 - noise]);
            if channels == 3 {
                px.pop();
            }
        }
    }
    px
}

fn decode_request(id: u32, seq: u64, size: u64, capacity: u64) -> Notification {
    let meta = DecodeMeta::new(OUTPUT, capacity).to_metadata();
    Notification::new(id, 1, Notification::F_EVENT, seq, INPUT, size, meta)
}

fn codec_harness(guest: &GuestLayout) -> (Harness<'_>, u32) {
    let mut h = Harness::new(guest);
    let id = h.create(CODEC, SlotLayout::completion_offset(0)).unwrap();
    h.post_event_buffers(16);
    (h, id)
}

#[test]
fn decodes_a_real_qoi_frame() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    for (seq, channels) in [(1u64, 4u8), (2, 3)] {
        let pixels = image(37, 21, channels);
        let qoi = qoi::encode_to_vec(&pixels, 37, 21).unwrap();
        h.region_write(CODEC, INPUT, &qoi);
        let capacity = 0x10_0000;
        h.notify(id, &decode_request(id, seq, qoi.len() as u64, capacity));
        let event = one_event(&mut h);
        assert_eq!(event.event_type().unwrap(), EventType::Completion, "{event:?}");
        let info = FrameInfo::from_metadata(event.metadata);
        info.check(seq, capacity).unwrap();
        assert_eq!((info.width.get(), info.height.get(), info.channels), (37, 21, channels));
        assert_eq!(info.pixels_size.get(), pixels.len() as u64);
        assert_eq!((event.offset.get(), event.size.get()), (OUTPUT + FRAME_HEADER_SIZE, pixels.len() as u64));
        // Header in the slot equals the event's metadata; pixels follow.
        let header = FrameInfo::read(&h.region_read(CODEC, OUTPUT, 32)).unwrap();
        assert_eq!(header, info);
        assert_eq!(h.region_read(CODEC, OUTPUT + 32, pixels.len()), pixels);
        assert_eq!(h.completion_word(CODEC, 0), seq);
    }
}

#[test]
fn corrupt_input_is_bad_input() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let good = qoi::encode_to_vec(image(8, 8, 4), 8, 8).unwrap();
    let mut bad_magic = good.clone();
    bad_magic[0] = b'x';
    let truncated = good[..good.len() - 12].to_vec();
    let mut zero_width = good.clone();
    zero_width[4..8].copy_from_slice(&0u32.to_be_bytes());
    let mut bad_channels = good.clone();
    bad_channels[12] = 5;
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&100_000u32.to_be_bytes());
    huge[8..12].copy_from_slice(&100_000u32.to_be_bytes());
    let cases: [&[u8]; 6] = [&bad_magic, &truncated, &zero_width, &bad_channels, &huge, &good[..10]];
    for (seq, input) in (1..).zip(cases) {
        h.region_write(CODEC, OUTPUT, &[0xcc; 64]);
        h.region_write(CODEC, INPUT, input);
        h.notify(id, &decode_request(id, seq, input.len() as u64, 0x10_0000));
        let event = one_event(&mut h);
        assert_error(&event, id, seq, Status::BadInput);
        let info = FrameInfo::from_metadata(event.metadata);
        assert_eq!(info, FrameInfo::failed(seq, Status::BadInput));
        assert_eq!(FrameInfo::read(&h.region_read(CODEC, OUTPUT, 32)).unwrap(), info, "case {seq}");
        assert_eq!(h.completion_word(CODEC, 0), seq, "a failed decode still completes");
    }
    // The instance still decodes afterwards.
    h.region_write(CODEC, INPUT, &good);
    h.notify(id, &decode_request(id, 10, good.len() as u64, 0x10_0000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
}

#[test]
fn output_slot_too_small_is_no_space() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let pixels = image(16, 16, 4);
    let qoi = qoi::encode_to_vec(&pixels, 16, 16).unwrap();
    h.region_write(CODEC, INPUT, &qoi);
    h.region_write(CODEC, OUTPUT + 32, &[0xcc; 64]);
    // One byte short of header + pixels.
    let capacity = 32 + pixels.len() as u64 - 1;
    h.notify(id, &decode_request(id, 1, qoi.len() as u64, capacity));
    let event = one_event(&mut h);
    assert_error(&event, id, 1, Status::NoSpace);
    assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(1, Status::NoSpace));
    assert_eq!(FrameInfo::read(&h.region_read(CODEC, OUTPUT, 32)).unwrap(), FrameInfo::failed(1, Status::NoSpace));
    assert_eq!(h.region_read(CODEC, OUTPUT + 32, 64), [0xcc; 64], "no pixels written");
    // Exactly enough works.
    h.notify(id, &decode_request(id, 2, qoi.len() as u64, capacity + 1));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
}

#[test]
fn output_slot_checks_refuse_without_writing() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let qoi = qoi::encode_to_vec(image(4, 4, 3), 4, 4).unwrap();
    h.region_write(CODEC, INPUT, &qoi);
    let size = qoi.len() as u64;
    let n = |seq, out: u64, cap: u64| {
        Notification::new(id, 1, Notification::F_EVENT, seq, INPUT, size, DecodeMeta::new(out, cap).to_metadata())
    };
    let cases = [
        (n(1, OUTPUT + 4, 0x1000), Status::BadRange),          // misaligned
        (n(2, REGION_SIZE - 0x100, 0x1000), Status::BadRange), // past the region
        (n(3, u64::MAX - 7, 0x10), Status::BadRange),          // overflow
        (n(4, INPUT, 0x1000), Status::BadRange),               // overlaps the input
        (n(5, OUTPUT, 16), Status::NoSpace),                   // below a header
    ];
    for (notification, status) in cases {
        h.region_write(CODEC, OUTPUT, &[0xcc; 32]);
        let seq = notification.seq.get();
        h.notify(id, &notification);
        let event = one_event(&mut h);
        assert_error(&event, id, seq, status);
        assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(seq, status));
        assert_eq!(h.region_read(CODEC, OUTPUT, 32), [0xcc; 32], "case {seq}: slot untouched");
        // Accepted, so completed with the error.
        assert_eq!(h.completion_word(CODEC, 0), seq);
    }
    let mut meta = DecodeMeta::new(OUTPUT, 0x1000);
    meta.reserved[0] = 1;
    h.notify(id, &Notification::new(id, 1, Notification::F_EVENT, 6, INPUT, size, meta.to_metadata()));
    assert_error(&one_event(&mut h), id, 6, Status::BadRequest);
    h.notify(id, &n(7, OUTPUT, 0x1000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
}

#[test]
fn generic_failures_of_a_decode_carry_a_frame_header() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let qoi = qoi::encode_to_vec(image(4, 4, 3), 4, 4).unwrap();
    h.region_write(CODEC, INPUT, &qoi);
    h.notify(id, &decode_request(id, 0, qoi.len() as u64, 0x1000));
    let event = one_event(&mut h);
    assert_error(&event, id, 0, Status::BadSequence);
    assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(0, Status::BadSequence));
    h.notify(id, &decode_request(id, 3, REGION_SIZE, 0x1000));
    let event = one_event(&mut h);
    assert_error(&event, id, 3, Status::BadRange);
    assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(3, Status::BadRange));
    assert_eq!(h.completion_word(CODEC, 0), 3);
}

#[test]
fn dump_frames_writes_viewable_images() {
    let guest = GuestLayout::new().unwrap();
    let dir = std::env::temp_dir().join(format!("hostmem-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = Harness::with(&guest, Opts { dump_frames: Some(dir.clone()), ..Opts::default() });
    let id = h.create(CODEC, None).unwrap();
    h.post_event_buffers(2);
    for (seq, channels) in [(1u64, 3u8), (2, 4)] {
        let pixels = image(5, 3, channels);
        let qoi = qoi::encode_to_vec(&pixels, 5, 3).unwrap();
        h.region_write(CODEC, INPUT, &qoi);
        h.notify(id, &decode_request(id, seq, qoi.len() as u64, 0x1000));
        assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
        let ext = if channels == 4 { "pam" } else { "ppm" };
        let file = std::fs::read(dir.join(format!("frame-i{id}-s{seq:06}.{ext}"))).unwrap();
        let header: &[u8] = if channels == 4 {
            b"P7\nWIDTH 5\nHEIGHT 3\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n"
        } else {
            b"P6\n5 3\n255\n"
        };
        assert!(file.starts_with(header));
        assert_eq!(&file[header.len()..], &pixels[..]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn decode_function_limits() {
    use crate::subdevice::codec::decode;
    let qoi = qoi::encode_to_vec(image(10, 10, 4), 10, 10).unwrap();
    assert_eq!(decode(&qoi, 32 + 400).unwrap().pixels.len(), 400);
    assert_eq!(decode(&qoi, 32 + 399).unwrap_err(), Status::NoSpace);
    assert_eq!(decode(&[], 1 << 20).unwrap_err(), Status::BadInput);
    // 20000 x 20000 = 400,000,000 pixels is the limit: NO_SPACE, never an
    // allocation of 1.6 GB; one pixel more is BAD_INPUT.
    let mut big = qoi.clone();
    big[4..8].copy_from_slice(&20_000u32.to_be_bytes());
    big[8..12].copy_from_slice(&20_000u32.to_be_bytes());
    assert_eq!(decode(&big, 1 << 20).unwrap_err(), Status::NoSpace);
    big[8..12].copy_from_slice(&20_001u32.to_be_bytes());
    assert_eq!(decode(&big, u64::MAX).unwrap_err(), Status::BadInput);
}
