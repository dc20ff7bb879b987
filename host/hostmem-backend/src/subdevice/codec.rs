//! Codec sub-device (docs/hostmem.md appendix A): DECODE turns a QOI image
//! in the region into pixels in an output slot of the same region;
//! DECODE_INLINE does the same with the image and the pixels in the
//! notification's own chain (the copy path the benchmark compares with).

use std::path::PathBuf;

use hostmem_wire::codec::{DecodeMeta, FRAME_HEADER_SIZE, FrameInfo, Op};
use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::{METADATA_SIZE, Notification, Status};

use super::{Completion, Outcome, Subdevice};
use crate::memory::RegionAccess;

/// The QOI decoder.
pub struct Codec {
    dump_dir: Option<PathBuf>,
    /// Test fault: corrupt the input of this DECODE (1-based).
    corrupt_frame: Option<u64>,
    decodes: u64,
}

/// A decoded image.
#[derive(Debug)]
pub struct Decoded {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    /// QOI colorspace byte.
    pub colorspace: u8,
    /// `width * height * channels` bytes, rows top to bottom.
    pub pixels: Vec<u8>,
}

/// Decodes a complete QOI file whose pixels must fit, with the frame
/// header, in `capacity` bytes. Errors are the statuses appendix A
/// prescribes: BAD_INPUT for anything malformed, NO_SPACE if the image does
/// not fit (checked from the header, before anything is allocated),
/// DEVICE_ERROR if memory for the pixels cannot be had.
pub fn decode(input: &[u8], capacity: u64) -> Result<Decoded, Status> {
    // qoi checks magic, channels (3/4), colorspace (0/1) and dimensions
    // (non-zero, at most 400,000,000 pixels, the same limit as appendix A).
    let header = qoi::decode_header(input).map_err(|_| Status::BadInput)?;
    let (width, height) = (header.width, header.height);
    let channels = header.channels.as_u8();
    let colorspace = header.colorspace.as_u8();
    let required = hostmem_wire::codec::required_capacity(width, height, channels).ok_or(Status::BadInput)?;
    if required > capacity {
        return Err(Status::NoSpace);
    }
    let size = usize::try_from(required - FRAME_HEADER_SIZE).map_err(|_| Status::NoSpace)?;
    let mut pixels = Vec::new();
    pixels.try_reserve_exact(size).map_err(|_| Status::DeviceError)?;
    pixels.resize(size, 0);
    // Fails on data ending before width * height pixels or a bad end
    // marker; reads nothing outside `input`.
    qoi::decode_to_buf(&mut pixels, input).map_err(|_| Status::BadInput)?;
    Ok(Decoded { width, height, channels, colorspace, pixels })
}

impl Codec {
    /// A codec that writes every decoded frame into `dump_dir` if given
    /// (as [`super::dump`] says).
    pub fn new(dump_dir: Option<PathBuf>) -> Self {
        Self { dump_dir, corrupt_frame: None, decodes: 0 }
    }

    /// Test fault `corrupt-frame=N`.
    pub fn with_corrupt_frame(mut self, corrupt_frame: Option<u64>) -> Self {
        self.corrupt_frame = corrupt_frame;
        self
    }

    /// Decodes `input` (a private copy of the driver's bytes) for
    /// notification `seq` into at most `capacity` bytes of header and
    /// pixels, with the test fault `corrupt-frame` applied.
    fn decode_frame(
        &mut self,
        instance: u32,
        seq: u64,
        input: &[u8],
        capacity: u64,
    ) -> Result<(Decoded, FrameInfo), Status> {
        self.decodes += 1;
        let input = if self.corrupt_frame == Some(self.decodes) {
            log::warn!("codec instance {instance}: fault corrupt-frame: corrupting decode {seq}");
            // Keep the header, cut the pixel stream short: a truncated frame.
            &input[..input.len().min(14 + 16)]
        } else {
            input
        };
        decode(input, capacity).and_then(|frame| {
            FrameInfo::decoded(seq, frame.width, frame.height, frame.channels, frame.colorspace)
                .map(|info| (frame, info))
                .map_err(|e| e.status())
        })
    }

    fn dump(&self, instance: u32, seq: u64, frame: &Decoded) {
        let Some(dir) = &self.dump_dir else { return };
        match super::dump::record(dir, instance, seq, frame) {
            Ok(path) => log::info!("codec instance {instance}: frame {seq} written to {}", path.display()),
            Err(e) => log::warn!("codec instance {instance}: cannot write frame {seq} into {}: {e}", dir.display()),
        }
    }
}

impl Subdevice for Codec {
    fn id(&self) -> (u32, u32, u32) {
        (hostmem_wire::codec::VENDOR_ID, hostmem_wire::codec::DEVICE_ID, hostmem_wire::codec::REVISION)
    }

    fn create_instance(&mut self, _instance: u32) -> Result<(), Status> {
        Ok(())
    }

    fn handle(&mut self, instance: u32, n: &Notification, region: &RegionAccess<'_>) -> Outcome {
        let seq = n.seq.get();
        // Every ERROR answering a DECODE carries a failed frame header,
        // whichever check failed (appendix A); other opcodes carry zeros.
        let refuse =
            |status: Status| Outcome::Failed { status, metadata: FrameInfo::failed(seq, status).to_metadata() };
        match Op::try_from(n.opcode.get()) {
            Ok(Op::Decode) => {}
            Ok(Op::DecodeInline) => {
                // Reaches here only without a device-writable part (A.3).
                log::info!("codec instance {instance}: DECODE_INLINE {seq} without an output buffer refused");
                return refuse(Status::BadRequest);
            }
            Err(e) => {
                log::debug!("codec instance {instance}: {e}");
                return Outcome::Failed { status: Status::Unsupported, metadata: [0; METADATA_SIZE] };
            }
        }
        let meta = DecodeMeta::from_metadata(n.metadata);
        let (input_offset, input_size) = (n.offset.get(), n.size.get());
        // Reserved zero, output aligned, inside the region, disjoint from
        // the input and from every live completion word, at least a
        // header: otherwise nothing is written. The whole slot is checked
        // up front because pixels and header are two writes.
        let out_offset = meta.output_offset.get();
        let capacity = meta.output_capacity.get();
        let checked = meta
            .check(region.len(), input_offset, input_size)
            .and_then(|()| region.check_writable(out_offset, capacity));
        if let Err(e) = checked {
            log::debug!("codec instance {instance}: DECODE {seq} refused: {e}");
            return refuse(e.status());
        }
        // Work on a copy so the driver cannot change the input mid-decode.
        let input = match region.read(input_offset, input_size) {
            Ok(v) => v,
            Err(e) => return refuse(e.status()),
        };
        match self.decode_frame(instance, seq, &input, capacity) {
            Ok((frame, info)) => {
                let pixels_at = out_offset.saturating_add(FRAME_HEADER_SIZE);
                // Pixels first, then the header (appendix A), both inside
                // the checked output slot.
                let written =
                    region.write(pixels_at, &frame.pixels).and_then(|()| region.write(out_offset, info.as_bytes()));
                if let Err(e) = written {
                    log::error!("codec instance {instance}: write of checked slot failed: {e}");
                    return Outcome::Failed { status: Status::DeviceError, metadata: [0; METADATA_SIZE] };
                }
                log::debug!(
                    "codec instance {instance}: DECODE {seq}: {}x{}x{} -> {out_offset:#x}",
                    frame.width,
                    frame.height,
                    frame.channels
                );
                self.dump(instance, seq, &frame);
                Outcome::Done(Completion {
                    offset: pixels_at,
                    size: info.pixels_size.get(),
                    metadata: info.to_metadata(),
                })
            }
            Err(status) => {
                log::info!("codec instance {instance}: DECODE {seq} failed: {status:?}");
                let info = FrameInfo::failed(seq, status);
                if matches!(status, Status::BadInput | Status::NoSpace)
                    && let Err(e) = region.write(out_offset, info.as_bytes())
                {
                    log::error!("codec instance {instance}: write of checked slot failed: {e}");
                }
                Outcome::Failed { status, metadata: info.to_metadata() }
            }
        }
    }

    fn takes_buffers(&self, opcode: u32) -> bool {
        opcode == u32::from(Op::DecodeInline)
    }

    fn handle_buffers(
        &mut self,
        instance: u32,
        n: &Notification,
        input: &[u8],
        capacity: u64,
    ) -> (Outcome, Vec<Vec<u8>>) {
        let seq = n.seq.get();
        let refuse = |status: Status| {
            (Outcome::Failed { status, metadata: FrameInfo::failed(seq, status).to_metadata() }, Vec::new())
        };
        if n.opcode.get() != u32::from(Op::DecodeInline) {
            return (Outcome::Failed { status: Status::Unsupported, metadata: [0; METADATA_SIZE] }, Vec::new());
        }
        // The chain locates input and output: the region fields are unused
        // and must be zero (A.3). Nothing is written on these refusals.
        if n.offset.get() != 0 || n.size.get() != 0 || n.metadata != [0; METADATA_SIZE] {
            log::info!("codec instance {instance}: DECODE_INLINE {seq} refused: non-zero offset, size or metadata");
            return refuse(Status::BadRequest);
        }
        if capacity < FRAME_HEADER_SIZE {
            log::info!("codec instance {instance}: DECODE_INLINE {seq} refused: {capacity}-byte output buffer");
            return refuse(Status::NoSpace);
        }
        match self.decode_frame(instance, seq, input, capacity) {
            Ok((frame, info)) => {
                log::debug!(
                    "codec instance {instance}: DECODE_INLINE {seq}: {}x{}x{} into the chain",
                    frame.width,
                    frame.height,
                    frame.channels
                );
                self.dump(instance, seq, &frame);
                // The result is in the chain, not the region: offset and
                // size zero, the frame header as metadata.
                let done = Outcome::Done(Completion { offset: 0, size: 0, metadata: info.to_metadata() });
                (done, vec![info.as_bytes().to_vec(), frame.pixels])
            }
            Err(status) => {
                log::info!("codec instance {instance}: DECODE_INLINE {seq} failed: {status:?}");
                let info = FrameInfo::failed(seq, status);
                let pieces = if matches!(status, Status::BadInput | Status::NoSpace) {
                    vec![info.as_bytes().to_vec()]
                } else {
                    Vec::new()
                };
                (Outcome::Failed { status, metadata: info.to_metadata() }, pieces)
            }
        }
    }

    fn destroy_instance(&mut self, _instance: u32) {}

    fn error_metadata(&self, opcode: Option<u32>, seq: u64, status: Status) -> [u8; METADATA_SIZE] {
        if opcode == Some(u32::from(Op::Decode)) || opcode == Some(u32::from(Op::DecodeInline)) {
            FrameInfo::failed(seq, status).to_metadata()
        } else {
            [0; METADATA_SIZE]
        }
    }
}
