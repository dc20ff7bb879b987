//! The codec sub-device's input: a QOI file from the guest, decoded by the
//! backend (host/hostmem-backend/src/subdevice/codec.rs), both through
//! `decode` and as a DECODE_INLINE notification (`Codec::handle_buffers`,
//! whose input and output are the chain's buffers).
//!
//! Input: the output capacity (u32, at most the 16 MiB the tests' regions
//! and pools allow, as a guest's slot or chain can be no larger than its
//! region or pool), a byte of notification variations, then the QOI bytes.
//!
//! Checked: nothing panics; a decoded image is exactly width x height x
//! channels bytes and fits the capacity with its header; NO_SPACE only when
//! it would not fit; DECODE_INLINE writes a header that the driver's check
//! (`check_inline_result`) accepts for a success, at most the capacity, and
//! a failed header or nothing for a failure.

use hostmem_backend::subdevice::codec::{Codec, decode};
use hostmem_backend::subdevice::{Outcome, Subdevice};
use hostmem_wire::codec::{FRAME_HEADER_SIZE, FrameInfo, Op, check_inline_result, required_capacity};
use hostmem_wire::zerocopy::FromBytes;
use hostmem_wire::{METADATA_SIZE, Notification, Status};

use crate::input::Input;

/// The largest output the target asks for: the tests' region size.
pub const MAX_CAPACITY: u64 = 16 << 20;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let capacity = u64::from(input.u32()) % (MAX_CAPACITY + 1);
    let variation = input.u8();
    let qoi = input.rest();

    let header = qoi_header(qoi);
    match decode(qoi, capacity) {
        Ok(frame) => {
            let needed = required_capacity(frame.width, frame.height, frame.channels).expect("a decodable size");
            assert!(needed <= capacity, "{needed}-byte frame decoded for a {capacity}-byte slot");
            assert_eq!(frame.pixels.len() as u64 + FRAME_HEADER_SIZE, needed, "pixel buffer size");
            assert!(matches!(frame.channels, 3 | 4) && frame.colorspace <= 1, "{frame:?}");
            assert_eq!(header, Some((frame.width, frame.height, frame.channels)), "header and frame disagree");
        }
        Err(Status::NoSpace) => {
            let (width, height, channels) = header.expect("NO_SPACE without a header");
            let needed = required_capacity(width, height, channels).expect("NO_SPACE for an undecodable size");
            assert!(needed > capacity, "NO_SPACE for a {needed}-byte frame in {capacity} bytes");
        }
        Err(status) => assert!(matches!(status, Status::BadInput | Status::DeviceError), "decode: {status:?}"),
    }

    // DECODE_INLINE through the sub-device: the chain carries input and
    // output; offset, size and metadata must be zero.
    let seq = 1 + u64::from(variation >> 4);
    let mut notification = Notification::new(0, Op::DecodeInline.into(), 0, seq, 0, 0, [0; METADATA_SIZE]);
    match variation & 3 {
        1 => notification.offset.set(u64::from(variation)),
        2 => notification.metadata[usize::from(variation >> 3) % METADATA_SIZE] = variation,
        3 => notification.opcode.set(u32::from(variation)),
        _ => {}
    }
    let mut codec = Codec::new(None);
    let (outcome, pieces) = codec.handle_buffers(0, &notification, qoi, capacity);
    let written: Vec<u8> = pieces.concat();
    assert!(written.len() as u64 <= capacity, "{} bytes written into {capacity}", written.len());
    match outcome {
        Outcome::Done(completion) => {
            assert!(variation & 3 == 0, "DECODE_INLINE with bad fields succeeded");
            // What the driver then checks, with the output as the chain's
            // buffer of `capacity` bytes.
            let mut output = written.clone();
            output.resize(capacity as usize, 0);
            let info = check_inline_result(&output, written.len() as u64, seq).expect("driver refuses a success");
            assert_eq!(completion.metadata, FrameInfo::read(&written).unwrap().to_metadata());
            assert_eq!((completion.offset, completion.size), (0, 0));
            let _ = info;
        }
        Outcome::Failed { status, metadata } => {
            assert_ne!(status, Status::Ok);
            if !written.is_empty() {
                assert_eq!(written.len() as u64, FRAME_HEADER_SIZE, "a failure writes only a header");
                let info = FrameInfo::read_from_bytes(&written).unwrap();
                assert_eq!(info.status.get(), u32::from(status));
                assert_eq!(info.seq.get(), seq);
                assert!(matches!(status, Status::BadInput | Status::NoSpace), "{status:?} with a header");
            }
            if notification.opcode.get() == u32::from(Op::DecodeInline) {
                assert_eq!(metadata, FrameInfo::failed(seq, status).to_metadata());
            }
        }
        Outcome::Lost(status) => panic!("the codec lost an instance: {status:?}"),
    }
}

/// (width, height, channels) from a QOI header, if it is a decodable one.
fn qoi_header(bytes: &[u8]) -> Option<(u32, u32, u8)> {
    let header = qoi::decode_header(bytes).ok()?;
    let channels = header.channels.as_u8();
    required_capacity(header.width, header.height, channels)?;
    Some((header.width, header.height, channels))
}
