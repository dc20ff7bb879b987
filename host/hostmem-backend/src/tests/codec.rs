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

/// §9.5: a DECODE whose output slot covers any byte of a live instance's
/// completion word (another instance's or its own) is BAD_RANGE and
/// writes nothing, even where the image would not reach the word.
#[test]
fn decode_output_over_a_completion_word_is_refused() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    const VICTIM_WORD: u64 = 0x30_0000;
    const OWN_WORD: u64 = 0x40_0000;
    let victim = h.create(CODEC, Some(VICTIM_WORD)).unwrap();
    let id = h.create(CODEC, Some(OWN_WORD)).unwrap();
    h.post_event_buffers(16);
    let pixels = image(16, 16, 4);
    let qoi = qoi::encode_to_vec(&pixels, 16, 16).unwrap();
    let size = qoi.len() as u64;
    h.region_write(CODEC, INPUT, &qoi);
    let n = |inst, seq, out: u64, cap: u64| {
        Notification::new(inst, 1, Notification::F_EVENT, seq, INPUT, size, DecodeMeta::new(out, cap).to_metadata())
    };
    // The victim completes once, so its word holds something to keep.
    h.notify(victim, &n(victim, 5, OUTPUT, 0x1000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(h.completion_word(CODEC, VICTIM_WORD), 5);

    let cases = [
        (VICTIM_WORD, 0x1_0000),        // the header would land on it
        (VICTIM_WORD - 64, 0x1_0000),   // the pixels would
        (VICTIM_WORD - 0x8000, 0x8001), // only the unused tail covers its first byte
        (OWN_WORD - 64, 0x1_0000),      // the instance's own word
    ];
    for (seq, (out, cap)) in (1..).zip(cases) {
        let before = h.region_read(CODEC, out, 64);
        h.notify(id, &n(id, seq, out, cap));
        let event = one_event(&mut h);
        assert_error(&event, id, seq, Status::BadRange);
        assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(seq, Status::BadRange));
        assert_eq!(h.region_read(CODEC, out, 64), before, "case {seq}: slot untouched");
        assert_eq!(h.completion_word(CODEC, VICTIM_WORD), 5, "case {seq}: victim's word unchanged");
        // Accepted and completed with the error: the device, and only it,
        // stores the instance's own word.
        assert_eq!(h.completion_word(CODEC, OWN_WORD), seq, "case {seq}");
    }
    // A slot that ends right before the word, or starts right after it, is
    // fine: the check is exact.
    h.notify(id, &n(id, 10, VICTIM_WORD - 0x1000, 0x1000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    h.notify(id, &n(id, 11, VICTIM_WORD + 8, 0x1000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(h.region_read(CODEC, VICTIM_WORD + 8 + 32, pixels.len()), pixels);
    assert_eq!(h.completion_word(CODEC, VICTIM_WORD), 5);
    // Once the victim is destroyed its word is ordinary region memory.
    assert_eq!(h.destroy(victim), Status::Ok);
    h.notify(id, &n(id, 12, VICTIM_WORD, 0x1000));
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
    assert_eq!(FrameInfo::read(&h.region_read(CODEC, VICTIM_WORD, 32)).unwrap().seq.get(), 12);
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

/// A PNG's pixels, colour type and size, read back with the png crate's
/// decoder (no transformations: what the file says is what comes out).
fn read_png(bytes: &[u8]) -> (png::ColorType, u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(frame.buffer_size());
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    (frame.color_type, frame.width, frame.height, pixels)
}

#[test]
fn dump_frames_writes_pngs_and_a_manifest() {
    use crate::subdevice::dump;
    let guest = GuestLayout::new().unwrap();
    let dir = std::env::temp_dir().join(format!("hostmem-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dump::start(&dir).unwrap();
    let mut h = Harness::with(&guest, Opts { dump_frames: Some(dir.clone()), ..Opts::default() });
    let id = h.create(CODEC, None).unwrap();
    h.post_event_buffers(2);
    let cases = [(1u64, 3u8, png::ColorType::Rgb), (2, 4, png::ColorType::Rgba)];
    for (seq, channels, color) in cases {
        let pixels = image(5, 3, channels);
        let qoi = qoi::encode_to_vec(&pixels, 5, 3).unwrap();
        h.region_write(CODEC, INPUT, &qoi);
        h.notify(id, &decode_request(id, seq, qoi.len() as u64, 0x1000));
        assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
        let file = std::fs::read(dir.join(format!("frame-i{id}-s{seq:06}.png"))).unwrap();
        assert!(file.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG signature");
        assert_eq!(read_png(&file), (color, 5, 3, pixels));
    }
    // One line per frame under the column line, with the digest the guest
    // computes over the same pixels.
    let manifest = std::fs::read_to_string(dir.join(dump::MANIFEST)).unwrap();
    let expected: Vec<String> = std::iter::once(dump::MANIFEST_COLUMNS.to_string())
        .chain(cases.iter().map(|&(seq, channels, _)| {
            let digest = codec_clip::digest(&image(5, 3, channels));
            format!("{id}\t{seq}\t5\t3\t{channels}\t{digest:016x}\tframe-i{id}-s{seq:06}.png")
        }))
        .collect();
    assert_eq!(manifest.lines().collect::<Vec<_>>(), expected);
    // A new run starts a fresh manifest.
    dump::start(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join(dump::MANIFEST)).unwrap(), format!("{}\n", dump::MANIFEST_COLUMNS));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both QOI colorspaces give a PNG that decodes to the same pixels; the
/// colorspace only picks the sRGB or the gamma 1.0 marking.
#[test]
fn png_encoding_keeps_every_pixel_in_both_colorspaces() {
    use crate::subdevice::codec::Decoded;
    use crate::subdevice::dump::encode_png;
    for (channels, colorspace) in [(3u8, 0u8), (3, 1), (4, 0), (4, 1)] {
        let (width, height) = (67, 45);
        let pixels = image(width, height, channels);
        let frame = Decoded { width, height, channels, colorspace, pixels: pixels.clone() };
        let mut file = Vec::new();
        encode_png(&frame, &mut file).unwrap();
        let (color, w, h, decoded) = read_png(&file);
        assert_eq!((w, h, decoded), (width, height, pixels), "{channels} channels, colorspace {colorspace}");
        assert_eq!(color, if channels == 4 { png::ColorType::Rgba } else { png::ColorType::Rgb });
        let info = png::Decoder::new(std::io::Cursor::new(&file)).read_info().unwrap().info().clone();
        assert_eq!(info.srgb.is_some(), colorspace == 0, "colorspace {colorspace}");
        if colorspace == 1 {
            assert_eq!(info.gama_chunk.map(|gamma| gamma.into_scaled()), Some(100_000), "linear: gamma 1.0");
        }
    }
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

/// The decoder parses guest bytes: mutated real frames (bit flips, byte
/// overwrites, truncation, spliced runs, hostile header fields) must give
/// a status or a frame consistent with its header and the capacity, never a
/// panic or an oversized allocation.
#[test]
fn decode_survives_mutated_frames() {
    use crate::subdevice::codec::decode;
    let originals: Vec<Vec<u8>> = [(64, 48, 3), (33, 17, 4), (1, 1, 3)]
        .into_iter()
        .map(|(w, h, c)| qoi::encode_to_vec(image(w, h, c), w, h).unwrap())
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound.max(1) as u64) as usize
    };
    let (mut decoded, mut rejected) = (0u32, 0u32);
    for round in 0..100_000 {
        let mut bytes = originals[round % originals.len()].clone();
        for _ in 0..1 + next(4) {
            let len = bytes.len();
            match next(6) {
                0 => bytes[next(len)] ^= 1 << next(8),
                1 => bytes[next(len)] = next(256) as u8,
                2 => bytes.truncate(next(len)),
                3 => {
                    // Copy a run of the frame over another place in it.
                    let (from, to, run) = (next(len), next(len), next(64));
                    let run = run.min(len - from).min(len - to);
                    bytes.copy_within(from..from + run, to);
                }
                4 => {
                    // Width or height: zero, huge, or random.
                    let at = 4 + 4 * next(2);
                    let value = [0, 1, u32::MAX, 20_000, next(1 << 16) as u32][next(5)];
                    if let Some(field) = bytes.get_mut(at..at + 4) {
                        field.copy_from_slice(&value.to_be_bytes());
                    }
                }
                _ => {
                    let at = next(len + 1);
                    let insert: Vec<u8> = (0..next(16)).map(|_| next(256) as u8).collect();
                    bytes.splice(at..at, insert);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        // Real capacities are bounded by the region (16 MiB here).
        let capacity = [16 << 20, 32 + 64 * 48 * 3, 32 + 100, 0][next(4)];
        match decode(&bytes, capacity) {
            Ok(frame) => {
                decoded += 1;
                let size = frame.width as u64 * frame.height as u64 * u64::from(frame.channels);
                assert_eq!(frame.pixels.len() as u64, size, "round {round}");
                assert!(32 + size <= capacity, "round {round}: {size} bytes do not fit {capacity}");
            }
            Err(status) => {
                rejected += 1;
                assert!(matches!(status, Status::BadInput | Status::NoSpace), "round {round}: {status:?}");
            }
        }
    }
    println!("{decoded} decoded, {rejected} rejected");
    // Both outcomes must have happened, or the mutations missed the parser.
    assert!(decoded > 1_000 && rejected > 30_000, "{decoded} decoded, {rejected} rejected");
}

// ---- DECODE_INLINE (appendix A.3): input and output in the chain ----

const DECODE_INLINE: u32 = 2;

fn inline_request(id: u32, seq: u64, flags: u32) -> Notification {
    Notification::new(id, DECODE_INLINE, flags, seq, 0, 0, [0; 32])
}

/// Posts `segs` on instance `id`'s queue, kicks, and returns the used
/// length of that chain (it must have been made used exactly once).
fn inline_chain(h: &mut Harness<'_>, id: u32, segs: &[Seg]) -> u32 {
    let q = 2 + id as usize;
    let head = h.post(q, segs);
    h.kick(q);
    let used = h.take_used(q);
    assert_eq!(used.iter().filter(|(h, _)| *h == head).count(), 1, "chain used once: {used:?}");
    used.iter().find(|(h, _)| *h == head).map(|&(_, len)| len).unwrap()
}

/// The usual 3-part chain: notification, QOI bytes, output buffer of
/// `capacity` bytes (pre-filled with 0xcc). Returns (used length, output
/// address).
fn inline_decode(h: &mut Harness<'_>, n: &Notification, qoi: &[u8], capacity: u32) -> (u32, u64) {
    let notification = h.alloc(72);
    h.write(notification, n.as_bytes());
    let input = h.alloc(qoi.len() as u32);
    h.write(input, qoi);
    let output = h.alloc(capacity);
    h.write(output, &vec![0xcc; capacity as usize]);
    let id = n.instance_id.get();
    let used =
        inline_chain(h, id, &[(notification, 72, false), (input, qoi.len() as u32, false), (output, capacity, true)]);
    (used, output)
}

#[test]
fn decode_inline_decodes_into_the_chain() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    for (seq, channels) in [(1u64, 3u8), (2, 4)] {
        let pixels = image(37, 21, channels);
        let qoi = qoi::encode_to_vec(&pixels, 37, 21).unwrap();
        h.region_write(CODEC, INPUT, &[0x77; 64]);
        let capacity = 32 + pixels.len() as u32 + 100;
        let (used, output) = inline_decode(&mut h, &inline_request(id, seq, Notification::F_EVENT), &qoi, capacity);
        assert_eq!(used, 32 + pixels.len() as u32, "used length: header plus pixels");
        let written = h.read(output, capacity as usize);
        let info = hostmem_wire::codec::check_inline_result(&written, u64::from(used), seq).unwrap();
        assert_eq!((info.width.get(), info.height.get(), info.channels), (37, 21, channels));
        assert_eq!(&written[32..used as usize], &pixels[..]);
        assert_eq!(&written[used as usize..], &[0xcc; 100][..], "nothing past the result");
        let event = one_event(&mut h);
        assert_eq!(event.event_type().unwrap(), EventType::Completion, "{event:?}");
        assert_eq!((event.offset.get(), event.size.get()), (0, 0), "the result is not in the region");
        assert_eq!(FrameInfo::from_metadata(event.metadata), info);
        assert_eq!(h.completion_word(CODEC, 0), seq);
        assert_eq!(h.region_read(CODEC, INPUT, 64), [0x77; 64], "the region is not touched");
    }
    // Polling without events: the completion word alone.
    let pixels = image(8, 8, 3);
    let qoi = qoi::encode_to_vec(&pixels, 8, 8).unwrap();
    let (used, _) = inline_decode(&mut h, &inline_request(id, 3, 0), &qoi, 32 + 192);
    assert_eq!(used, 32 + 192);
    assert!(h.events().is_empty());
    assert_eq!(h.completion_word(CODEC, 0), 3);
}

#[test]
fn decode_inline_takes_any_division_into_descriptors() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let pixels = image(20, 10, 3);
    let qoi = qoi::encode_to_vec(&pixels, 20, 10).unwrap();
    // Notification and the first QOI bytes in one buffer, the rest in two.
    let mut readable = inline_request(id, 1, Notification::F_EVENT).as_bytes().to_vec();
    readable.extend_from_slice(&qoi);
    let (a, b, c) = (100u32, 7u32, readable.len() as u32 - 107);
    let (ra, rb, rc) = (h.alloc(a), h.alloc(b), h.alloc(c));
    h.write(ra, &readable[..100]);
    h.write(rb, &readable[100..107]);
    h.write(rc, &readable[107..]);
    // Output in three pieces that split the header and the pixels.
    let (wa, wb, wc) = (h.alloc(20), h.alloc(300), h.alloc(400));
    let segs = [(ra, a, false), (rb, b, false), (rc, c, false), (wa, 20, true), (wb, 300, true), (wc, 400, true)];
    let used = inline_chain(&mut h, id, &segs);
    assert_eq!(used, 32 + 600);
    let mut written = h.read(wa, 20);
    written.extend(h.read(wb, 300));
    written.extend(h.read(wc, 400));
    hostmem_wire::codec::check_inline_result(&written, u64::from(used), 1).unwrap();
    assert_eq!(&written[32..632], &pixels[..]);
    assert_eq!(one_event(&mut h).event_type().unwrap(), EventType::Completion);
}

#[test]
fn decode_inline_corrupt_frame_is_bad_input() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let good = qoi::encode_to_vec(image(8, 8, 4), 8, 8).unwrap();
    let truncated = &good[..good.len() - 12];
    let mut bad_magic = good.clone();
    bad_magic[0] = b'x';
    for (seq, input) in (1..).zip([truncated, &bad_magic[..], &[][..]]) {
        let (used, output) = inline_decode(&mut h, &inline_request(id, seq, 0), input, 32 + 256);
        assert_eq!(used, 32, "only the failed frame header is written");
        let written = h.read(output, 32 + 256);
        assert_eq!(FrameInfo::read(&written).unwrap(), FrameInfo::failed(seq, Status::BadInput));
        assert_eq!(
            hostmem_wire::codec::check_inline_result(&written, 32, seq),
            Err(hostmem_wire::WireError::Failed(Status::BadInput))
        );
        let event = one_event(&mut h);
        assert_error(&event, id, seq, Status::BadInput);
        assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(seq, Status::BadInput));
        assert_eq!(h.completion_word(CODEC, 0), seq, "a failed decode still completes");
    }
    let (used, _) = inline_decode(&mut h, &inline_request(id, 9, 0), &good, 32 + 256);
    assert_eq!(used, 32 + 256, "the instance still decodes");
}

#[test]
fn decode_inline_output_too_small_is_no_space() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let pixels = image(16, 16, 4);
    let qoi = qoi::encode_to_vec(&pixels, 16, 16).unwrap();
    let exact = 32 + pixels.len() as u32;
    // One byte short: a failed header, no pixels.
    let (used, output) = inline_decode(&mut h, &inline_request(id, 1, 0), &qoi, exact - 1);
    assert_eq!(used, 32);
    let written = h.read(output, exact as usize - 1);
    assert_eq!(FrameInfo::read(&written).unwrap(), FrameInfo::failed(1, Status::NoSpace));
    assert!(written[32..].iter().all(|&b| b == 0xcc), "no pixels written");
    assert_error(&one_event(&mut h), id, 1, Status::NoSpace);
    // Below a header: nothing written at all.
    let (used, output) = inline_decode(&mut h, &inline_request(id, 2, 0), &qoi, 31);
    assert_eq!(used, 0);
    assert_eq!(h.read(output, 31), [0xcc; 31]);
    assert_error(&one_event(&mut h), id, 2, Status::NoSpace);
    assert_eq!(h.completion_word(CODEC, 0), 2);
    // Exactly enough works.
    let (used, _) = inline_decode(&mut h, &inline_request(id, 3, 0), &qoi, exact);
    assert_eq!(used, exact);
}

#[test]
fn decode_inline_refuses_wrong_chain_shapes() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let qoi = qoi::encode_to_vec(image(4, 4, 3), 4, 4).unwrap();
    let capacity = 32 + 48;
    let parts = |h: &mut Harness<'_>, n: &Notification| {
        let (notification, input, output) = (h.alloc(72), h.alloc(qoi.len() as u32), h.alloc(capacity));
        h.write(notification, n.as_bytes());
        h.write(input, &qoi);
        h.write(output, &vec![0xcc; capacity as usize]);
        (notification, input, output)
    };
    let len = qoi.len() as u32;

    // No device-writable part: accepted (seq recorded), BAD_REQUEST.
    let (n, i, _) = parts(&mut h, &inline_request(id, 1, 0));
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (i, len, false)]), 0);
    let event = one_event(&mut h);
    assert_error(&event, id, 1, Status::BadRequest);
    assert_eq!(FrameInfo::from_metadata(event.metadata), FrameInfo::failed(1, Status::BadRequest));
    assert_eq!(h.completion_word(CODEC, 0), 1);

    // Writable part first (readable after writable): malformed, step one.
    let (n, i, o) = parts(&mut h, &inline_request(id, 2, 0));
    assert_eq!(inline_chain(&mut h, id, &[(o, capacity, true), (n, 72, false), (i, len, false)]), 0);
    assert_error(&one_event(&mut h), id, 2, Status::BadRequest);
    assert_eq!(h.read(o, capacity as usize), vec![0xcc; capacity as usize], "nothing written");
    assert_eq!(h.completion_word(CODEC, 0), 1, "seq not consumed");

    // Writable part in the middle.
    let (n, i, o) = parts(&mut h, &inline_request(id, 2, 0));
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (o, capacity, true), (i, len, false)]), 0);
    assert_error(&one_event(&mut h), id, 2, Status::BadRequest);
    assert_eq!(h.completion_word(CODEC, 0), 1);

    // DECODE (opcode 1) may not carry a writable part.
    let decode = decode_request(id, 2, 0, 0x1000);
    let (n, _, o) = parts(&mut h, &decode);
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (o, capacity, true)]), 0);
    assert_error(&one_event(&mut h), id, 2, Status::BadRequest);
    assert_eq!(h.read(o, capacity as usize), vec![0xcc; capacity as usize]);

    // A writable descriptor outside the pool: refused, never written.
    let (n, i, _) = parts(&mut h, &inline_request(id, 2, 0));
    let other_pool = crate::testing::POOL_NODE_BASE + 0x1000;
    h.write(other_pool, &[0x5a; 16]);
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (i, len, false), (other_pool, capacity, true)]), 0);
    assert_error(&one_event(&mut h), id, 2, Status::BadRequest);
    assert_eq!(h.read(other_pool, 16), [0x5a; 16]);

    // Non-zero offset, size or metadata: BAD_REQUEST, nothing written.
    let mut with_offset = inline_request(id, 2, 0);
    with_offset.offset.set(0x1000);
    let mut with_size = inline_request(id, 3, 0);
    with_size.size.set(16);
    let mut with_meta = inline_request(id, 4, 0);
    with_meta.metadata[31] = 1;
    for n in [with_offset, with_size, with_meta] {
        let seq = n.seq.get();
        let (used, output) = inline_decode(&mut h, &n, &qoi, capacity);
        assert_eq!(used, 0);
        assert_eq!(h.read(output, capacity as usize), vec![0xcc; capacity as usize]);
        assert_error(&one_event(&mut h), id, seq, Status::BadRequest);
        assert_eq!(h.completion_word(CODEC, 0), seq);
    }

    // A stale seq on a data-carrying chain: BAD_SEQUENCE, used length 0.
    let (used, output) = inline_decode(&mut h, &inline_request(id, 4, 0), &qoi, capacity);
    assert_eq!(used, 0);
    assert_eq!(h.read(output, capacity as usize), vec![0xcc; capacity as usize]);
    assert_error(&one_event(&mut h), id, 4, Status::BadSequence);

    // Nothing after the notification: an empty QOI file, BAD_INPUT.
    let n = h.alloc(72);
    h.write(n, inline_request(id, 5, 0).as_bytes());
    let o = h.alloc(capacity);
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (o, capacity, true)]), 32);
    assert_error(&one_event(&mut h), id, 5, Status::BadInput);

    // The instance still decodes.
    let (used, _) = inline_decode(&mut h, &inline_request(id, 6, 0), &qoi, capacity);
    assert_eq!(used, capacity);
    assert_eq!(h.completion_word(CODEC, 0), 6);
}

#[test]
fn decode_inline_is_unsupported_elsewhere() {
    let guest = GuestLayout::new().unwrap();
    let mut h = Harness::new(&guest);
    let id = h.create(ECHO, Some(0)).unwrap();
    h.post_event_buffers(2);
    // The echo sub-device has no data-carrying opcode: a writable part is
    // malformed whatever the opcode says.
    let n = h.alloc(72);
    h.write(n, inline_request(id, 1, 0).as_bytes());
    let o = h.alloc(64);
    assert_eq!(inline_chain(&mut h, id, &[(n, 72, false), (o, 64, true)]), 0);
    assert_error(&one_event(&mut h), id, 1, Status::BadRequest);
    assert_echo_works(&mut h, id, 1);
}

#[test]
fn destroy_discards_pending_decode_inline_chains() {
    let guest = GuestLayout::new().unwrap();
    let (mut h, id) = codec_harness(&guest);
    let qoi = qoi::encode_to_vec(image(4, 4, 3), 4, 4).unwrap();
    let n = h.alloc(72);
    h.write(n, inline_request(id, 1, 0).as_bytes());
    let i = h.alloc(qoi.len() as u32);
    h.write(i, &qoi);
    let o = h.alloc(80);
    // Made available, never kicked: DESTROY makes it used, length 0.
    let head = h.post(2 + id as usize, &[(n, 72, false), (i, qoi.len() as u32, false), (o, 80, true)]);
    assert_eq!(h.destroy(id), Status::Ok);
    assert_eq!(h.take_used(2 + id as usize), vec![(head, 0)]);
}
