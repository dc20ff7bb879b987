//! Byte-level tests: every struct, filled with distinct values, serialises
//! to the bytes docs/hostmem.md states, at the stated offsets, little-endian.
//! Offsets here are written out by hand from the spec on purpose.

use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::zerocopy::little_endian::{U16, U32, U64};
use hostmem_wire::{
    CONFIG_SIZE, CompletionWord, Config, ConfigRequest, ConfigResponse, Event, Notification, SubdeviceEntry, codec,
    echo,
};

const _: () = assert!(CONFIG_SIZE <= 256);

fn at<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    bytes[offset..offset + N].try_into().expect("slice length")
}

fn meta(seed: u8) -> [u8; 32] {
    core::array::from_fn(|i| seed.wrapping_add(i as u8))
}

fn entry(seed: u32) -> SubdeviceEntry {
    SubdeviceEntry {
        vendor_id: U32::new(0x0101_0101 * seed),
        device_id: U32::new(0x0202_0202 + seed),
        revision: U32::new(0x0303_0303 + seed),
        shmid: U32::new(0x0404_0404 + seed),
        region_base: U64::new(0x0505_0505_0505_0505 + u64::from(seed)),
        region_len: U64::new(0x0606_0606_0606_0606 + u64::from(seed)),
        flags: U32::new(0x0707_0707 + seed),
        reserved: U32::new(0x0808_0808 + seed),
    }
}

fn check_entry(b: &[u8], base: usize, seed: u32) {
    assert_eq!(at::<4>(b, base), (0x0101_0101 * seed).to_le_bytes());
    assert_eq!(at::<4>(b, base + 4), (0x0202_0202 + seed).to_le_bytes());
    assert_eq!(at::<4>(b, base + 8), (0x0303_0303 + seed).to_le_bytes());
    assert_eq!(at::<4>(b, base + 12), (0x0404_0404 + seed).to_le_bytes());
    assert_eq!(at::<8>(b, base + 16), (0x0505_0505_0505_0505 + u64::from(seed)).to_le_bytes());
    assert_eq!(at::<8>(b, base + 24), (0x0606_0606_0606_0606 + u64::from(seed)).to_le_bytes());
    assert_eq!(at::<4>(b, base + 32), (0x0707_0707 + seed).to_le_bytes());
    assert_eq!(at::<4>(b, base + 36), (0x0808_0808 + seed).to_le_bytes());
}

#[test]
fn subdevice_entry_bytes() {
    let e = entry(1);
    let b = e.as_bytes();
    assert_eq!(b.len(), 40);
    check_entry(b, 0, 1);
}

#[test]
fn config_bytes() {
    let mut entries = [SubdeviceEntry::default(); 6];
    for (i, e) in entries.iter_mut().enumerate() {
        *e = entry(i as u32 + 1);
    }
    let c = Config {
        magic: U32::new(0x1122_3344),
        version: U16::new(0x5566),
        entries_present: U16::new(0x7788),
        num_subdevices: U32::new(0x99aa_bbcc),
        max_instances: U32::new(0xddee_ff01),
        entries,
    };
    let b = c.as_bytes();
    assert_eq!(b.len(), 256);
    assert_eq!(at::<4>(b, 0), [0x44, 0x33, 0x22, 0x11]);
    assert_eq!(at::<2>(b, 4), [0x66, 0x55]);
    assert_eq!(at::<2>(b, 6), [0x88, 0x77]);
    assert_eq!(at::<4>(b, 8), [0xcc, 0xbb, 0xaa, 0x99]);
    assert_eq!(at::<4>(b, 12), [0x01, 0xff, 0xee, 0xdd]);
    for i in 0..6 {
        check_entry(b, 16 + 40 * i, i as u32 + 1);
    }
}

#[test]
fn magic_is_hmem() {
    let c = Config::from_subdevices(1, &[SubdeviceEntry::new(1, 2, 3, 0, 0x1000_0000, 0x1000, 0)]).expect("valid");
    assert_eq!(&c.as_bytes()[0..4], b"HMEM");
    assert_eq!(at::<2>(c.as_bytes(), 4), 1u16.to_le_bytes());
}

#[test]
fn config_request_bytes() {
    let r = ConfigRequest {
        opcode: U32::new(0x0403_0201),
        instance_id: U32::new(0x0807_0605),
        subdevice_index: U32::new(0x0c0b_0a09),
        flags: U32::new(0x100f_0e0d),
        completion_offset: U64::new(0x1817_1615_1413_1211),
        cookie: U64::new(0x201f_1e1d_1c1b_1a19),
    };
    let b = r.as_bytes();
    assert_eq!(b.len(), 32);
    // Distinct, ascending values laid out back to back: the bytes are 1..=32.
    let expected: Vec<u8> = (1..=32).collect();
    assert_eq!(b, expected.as_slice());
}

#[test]
fn config_response_bytes() {
    let r = ConfigResponse {
        status: U32::new(0xa1),
        opcode: U32::new(0xa2),
        instance_id: U32::new(0xa3),
        notify_queue: U32::new(0xa4),
        subdevice_index: U32::new(0xa5),
        reserved: U32::new(0xa6),
        cookie: U64::new(0xa7a8_a9aa_abac_adae),
        subdevice: entry(9),
    };
    let b = r.as_bytes();
    assert_eq!(b.len(), 72);
    assert_eq!(at::<4>(b, 0), 0xa1u32.to_le_bytes());
    assert_eq!(at::<4>(b, 4), 0xa2u32.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 0xa3u32.to_le_bytes());
    assert_eq!(at::<4>(b, 12), 0xa4u32.to_le_bytes());
    assert_eq!(at::<4>(b, 16), 0xa5u32.to_le_bytes());
    assert_eq!(at::<4>(b, 20), 0xa6u32.to_le_bytes());
    assert_eq!(at::<8>(b, 24), 0xa7a8_a9aa_abac_adaeu64.to_le_bytes());
    check_entry(b, 32, 9);
}

#[test]
fn notification_bytes() {
    let n = Notification {
        instance_id: U32::new(0x11),
        opcode: U32::new(0x22),
        flags: U32::new(0x33),
        reserved: U32::new(0x44),
        seq: U64::new(0x5555_6666_7777_8888),
        offset: U64::new(0x0102_0304_0506_0708),
        size: U64::new(0x1112_1314_1516_1718),
        metadata: meta(0x80),
    };
    let b = n.as_bytes();
    assert_eq!(b.len(), 72);
    assert_eq!(at::<4>(b, 0), 0x11u32.to_le_bytes());
    assert_eq!(at::<4>(b, 4), 0x22u32.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 0x33u32.to_le_bytes());
    assert_eq!(at::<4>(b, 12), 0x44u32.to_le_bytes());
    assert_eq!(at::<8>(b, 16), 0x5555_6666_7777_8888u64.to_le_bytes());
    assert_eq!(at::<8>(b, 24), 0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(at::<8>(b, 32), 0x1112_1314_1516_1718u64.to_le_bytes());
    assert_eq!(at::<32>(b, 40), meta(0x80));
}

#[test]
fn event_bytes() {
    let e = Event {
        instance_id: U32::new(0x01),
        event_type: U32::new(0x02),
        status: U32::new(0x03),
        flags: U32::new(0x04),
        seq: U64::new(0x0505_0505_0505_0505),
        offset: U64::new(0x0606_0606_0606_0606),
        size: U64::new(0x0707_0707_0707_0707),
        dropped: U32::new(0x0808_0808),
        reserved: U32::new(0x0909_0909),
        metadata: meta(0x40),
    };
    let b = e.as_bytes();
    assert_eq!(b.len(), 80);
    assert_eq!(at::<4>(b, 0), 1u32.to_le_bytes());
    assert_eq!(at::<4>(b, 4), 2u32.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 3u32.to_le_bytes());
    assert_eq!(at::<4>(b, 12), 4u32.to_le_bytes());
    assert_eq!(at::<8>(b, 16), 0x0505_0505_0505_0505u64.to_le_bytes());
    assert_eq!(at::<8>(b, 24), 0x0606_0606_0606_0606u64.to_le_bytes());
    assert_eq!(at::<8>(b, 32), 0x0707_0707_0707_0707u64.to_le_bytes());
    assert_eq!(at::<4>(b, 40), 0x0808_0808u32.to_le_bytes());
    assert_eq!(at::<4>(b, 44), 0x0909_0909u32.to_le_bytes());
    assert_eq!(at::<32>(b, 48), meta(0x40));
}

#[test]
fn completion_word_bytes() {
    let w = CompletionWord { seq: U64::new(0x0102_0304_0506_0708) };
    assert_eq!(w.as_bytes(), &[8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn codec_decode_meta_bytes() {
    let mut m = codec::DecodeMeta::new(0x1111_2222_3333_4444, 0x5555_6666_7777_8888);
    m.reserved = core::array::from_fn(|i| 0xc0 + i as u8);
    let b = m.as_bytes();
    assert_eq!(b.len(), 32);
    assert_eq!(at::<8>(b, 0), 0x1111_2222_3333_4444u64.to_le_bytes());
    assert_eq!(at::<8>(b, 8), 0x5555_6666_7777_8888u64.to_le_bytes());
    assert_eq!(at::<16>(b, 16), core::array::from_fn(|i| 0xc0 + i as u8));
    // The metadata form is the same bytes.
    assert_eq!(m.to_metadata().as_slice(), b);
}

#[test]
fn codec_frame_info_bytes() {
    let f = codec::FrameInfo {
        seq: U64::new(0x0a0b_0c0d_0e0f_1011),
        status: U32::new(0x21),
        width: U32::new(0x0000_0500),
        height: U32::new(0x0000_0300),
        channels: 4,
        colorspace: 1,
        reserved: [0x77, 0x88],
        pixels_size: U64::new(0x0000_0000_00f0_0000),
    };
    let b = f.as_bytes();
    assert_eq!(b.len(), 32);
    assert_eq!(at::<8>(b, 0), 0x0a0b_0c0d_0e0f_1011u64.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 0x21u32.to_le_bytes());
    assert_eq!(at::<4>(b, 12), 0x500u32.to_le_bytes());
    assert_eq!(at::<4>(b, 16), 0x300u32.to_le_bytes());
    assert_eq!(b[20], 4);
    assert_eq!(b[21], 1);
    assert_eq!(at::<2>(b, 22), [0x77, 0x88]);
    assert_eq!(at::<8>(b, 24), 0xf0_0000u64.to_le_bytes());
}

#[test]
fn echo_copy_meta_bytes() {
    let mut m = echo::CopyMeta::new(0xfedc_ba98_7654_3210);
    m.reserved = core::array::from_fn(|i| i as u8 + 1);
    let b = m.as_bytes();
    assert_eq!(b.len(), 32);
    assert_eq!(at::<8>(b, 0), 0xfedc_ba98_7654_3210u64.to_le_bytes());
    assert_eq!(at::<24>(b, 8), core::array::from_fn(|i| i as u8 + 1));
}

#[test]
fn constructors_put_values_where_the_spec_says() {
    let n = Notification::new(3, 1, Notification::F_EVENT, 7, 0x2000, 0x300, meta(1));
    let b = n.as_bytes();
    assert_eq!(at::<4>(b, 0), 3u32.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 1u32.to_le_bytes());
    assert_eq!(at::<8>(b, 16), 7u64.to_le_bytes());

    let e = Event::error(2, 9, hostmem_wire::Status::BadRange).with_dropped(5);
    let b = e.as_bytes();
    assert_eq!(at::<4>(b, 4), 2u32.to_le_bytes()); // ERROR
    assert_eq!(at::<4>(b, 8), 4u32.to_le_bytes()); // BAD_RANGE
    assert_eq!(at::<4>(b, 12), 1u32.to_le_bytes()); // EVENT_F_OVERFLOW
    assert_eq!(at::<4>(b, 40), 5u32.to_le_bytes());

    let r = hostmem_wire::ConfigResponse::created(4, entry(1), 3).expect("ok");
    let b = r.as_bytes();
    assert_eq!(at::<4>(b, 0), 0u32.to_le_bytes());
    assert_eq!(at::<4>(b, 8), 3u32.to_le_bytes());
    assert_eq!(at::<4>(b, 12), 5u32.to_le_bytes()); // 2 + 3
    assert_eq!(at::<4>(b, 16), 4u32.to_le_bytes());
}

/// The field readers for buffers that may be cut short take the fields
/// from where the spec puts them (opcode at 4, seq at 16 in a notification;
/// opcode at 0 in a request), and only when the buffer holds all of one.
#[test]
fn peeks_read_fields_of_short_buffers() {
    let n = Notification::new(1, 0x0a0b_0c0d, 0, 0x1122_3344_5566_7788, 0, 0, [0; 32]);
    let bytes = n.as_bytes();
    assert_eq!(Notification::peek_opcode(bytes), Some(0x0a0b_0c0d));
    assert_eq!(Notification::peek_seq(bytes), Some(0x1122_3344_5566_7788));
    // Exactly long enough, one byte short.
    assert_eq!(Notification::peek_opcode(&bytes[..8]), Some(0x0a0b_0c0d));
    assert_eq!(Notification::peek_opcode(&bytes[..7]), None);
    assert_eq!(Notification::peek_seq(&bytes[..24]), Some(0x1122_3344_5566_7788));
    assert_eq!(Notification::peek_seq(&bytes[..23]), None);
    assert_eq!(Notification::peek_seq(&[]), None);
    // Hand-placed bytes, independent of the struct.
    let mut raw = [0u8; 24];
    raw[4..8].copy_from_slice(&7u32.to_le_bytes());
    raw[16..24].copy_from_slice(&9u64.to_le_bytes());
    assert_eq!((Notification::peek_opcode(&raw), Notification::peek_seq(&raw)), (Some(7), Some(9)));

    let mut raw = [0xffu8; 6];
    raw[..4].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(ConfigRequest::peek_opcode(&raw), Some(3));
    assert_eq!(ConfigRequest::peek_opcode(&raw[..3]), None);
}
