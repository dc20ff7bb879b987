//! The zero-copy codec client that `codec_demo` and `codec_bench` share.
//!
//! The codec sub-device's region is laid out as docs/hostmem.md appendix A
//! recommends (`SlotLayout`): a control page of completion words, a ring of
//! input slots, a ring of output slots. For each frame the client writes the
//! compressed bytes into the next input slot (the one copy a frame costs),
//! rings the doorbell with a DECODE notification naming that slot and the
//! matching output slot, and later waits on the instance's completion word
//! and checks the decoded frame where the host left it. Up to `depth` frames
//! are in flight; they complete in order, so the slot of a new frame is
//! always the one the oldest finished frame gave back.
//!
//! Not part of the runtime: it is sample code for image authors, kept in
//! one place so the demo and the benchmark measure the same client.
#![allow(dead_code, reason = "each image that includes this module uses a part of it")]

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

use codec_clip::{Clip, Digest};
use hostmem_wire::WireError;
use hostmem_wire::codec::{self, DecodeMeta, FrameInfo, SlotLayout};
use tidepool::hostmem::{Hostmem, HostmemError, Instance, Notification, Subdevice};
use tidepool::time;
use virtio_drivers::Hal;

/// A frame the host has been asked to decode.
struct InFlight {
    frame: u32,
    seq: u64,
    /// Offset and capacity of its output slot.
    output: (u64, u64),
    compressed: usize,
}

/// A frame that came back.
pub struct Finished {
    pub frame: u32,
    /// Compressed bytes sent.
    pub compressed: usize,
    /// The decoded frame, or why it is not the one the clip holds: the host
    /// reported a failure, its result header was wrong, or the pixels do not
    /// match (or, which would be a driver bug, the region could not be
    /// read). Such a frame is reported and playback goes on; a host that
    /// stops answering is an error of [`ZeroCopyClient::finish_oldest`].
    pub outcome: Result<Decoded, String>,
    /// Generic-timer ticks spent reading the result and hashing pixels.
    pub verify_ticks: u64,
}

/// A frame that verified.
pub struct Decoded {
    pub info: FrameInfo,
    pub digest: u64,
}

pub struct ZeroCopyClient {
    codec: Subdevice,
    layout: SlotLayout,
    depth: u32,
    in_flight: VecDeque<InFlight>,
    submitted: u64,
}

impl ZeroCopyClient {
    /// Lays out `depth` input slots, each large enough for the clip's
    /// largest frame, and `depth` output slots, which must hold a decoded
    /// frame.
    pub fn new<H: Hal>(hostmem: &Hostmem<H>, codec: Subdevice, clip: &Clip<'_>, depth: u32) -> Result<Self, String> {
        let region_len = hostmem.region(codec).map_err(text)?.len();
        let largest = (0..clip.frames).filter_map(|i| clip.frame(i).ok()).map(|f| f.qoi.len() as u64).max();
        let input_slot = largest.unwrap_or(0).next_multiple_of(4096);
        let layout = SlotLayout::new(region_len, depth, input_slot, depth).map_err(text)?;
        let needed = codec::required_capacity(clip.width, clip.height, clip.channels as u8).unwrap_or(u64::MAX);
        if layout.output_slot(0).is_none_or(|(_, capacity)| capacity < needed) {
            return Err(format!("output slots are smaller than a frame ({needed} bytes)"));
        }
        Ok(Self { codec, layout, depth, in_flight: VecDeque::new(), submitted: 0 })
    }

    pub fn input_slot_size(&self) -> u64 {
        self.layout.input_slot(0).map_or(0, |(_, size)| size)
    }

    /// Whether every slot holds a frame in flight.
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= self.depth as usize
    }

    /// Writes `frame` of the clip into the next input slot and sends its
    /// DECODE notification. Call [`Self::finish_oldest`] first when
    /// [`Self::is_full`].
    pub fn submit<H: Hal>(
        &mut self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        frame: u32,
    ) -> Result<(), String> {
        if self.is_full() {
            return Err("every slot is in flight".to_string());
        }
        let slot = (self.submitted % u64::from(self.depth)) as u32;
        let data = clip.frame(frame).map_err(text)?;
        let (input_offset, _) = self.layout.input_slot(slot).ok_or("no input slot")?;
        let output = self.layout.output_slot(slot).ok_or("no output slot")?;
        // The one copy a frame costs: into the shared region.
        hostmem.region(self.codec).map_err(text)?.write(input_offset, data.qoi).map_err(text)?;
        let seq = hostmem
            .notify(
                instance,
                Notification {
                    opcode: codec::Op::Decode as u32,
                    offset: input_offset,
                    size: data.qoi.len() as u64,
                    metadata: DecodeMeta::new(output.0, output.1).to_metadata(),
                    want_event: false,
                },
            )
            .map_err(|error| format!("frame {frame}: {error}"))?;
        self.submitted += 1;
        self.in_flight.push_back(InFlight { frame, seq, output, compressed: data.qoi.len() });
        Ok(())
    }

    /// Waits for the oldest frame in flight (`None` when there is none) and
    /// verifies it in place in the region.
    pub fn finish_oldest<H: Hal>(
        &mut self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        timeout: Duration,
    ) -> Result<Option<Finished>, String> {
        let Some(pending) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let (outcome, verify_ticks) = match hostmem.wait_completion(instance, pending.seq, timeout) {
            Ok(()) => {
                let started = time::now();
                let outcome = self.check(hostmem, clip, &pending);
                (outcome, time::now().saturating_sub(started))
            }
            // The host answered this frame with an ERROR event.
            Err(HostmemError::NotificationFailed { status, .. }) => {
                (Err(format!("host answered with an error event: {status:?}")), 0)
            }
            Err(error) => return Err(format!("frame {}: {error}", pending.frame)),
        };
        Ok(Some(Finished { frame: pending.frame, compressed: pending.compressed, outcome, verify_ticks }))
    }

    /// Reads the result header of `pending`'s output slot and hashes the
    /// pixels after it.
    fn check<H: Hal>(&self, hostmem: &Hostmem<H>, clip: &Clip<'_>, pending: &InFlight) -> Result<Decoded, String> {
        let region = hostmem.region(self.codec).map_err(text)?;
        let mut header = [0u8; codec::FRAME_HEADER_SIZE as usize];
        region.read(pending.output.0, &mut header).map_err(text)?;
        let info = FrameInfo::read(&header).map_err(text)?;
        info.check(pending.seq, pending.output.1).map_err(|error| match error {
            WireError::Failed(status) => format!("the result header says the decode failed: {status:?}"),
            error => format!("bad result header: {error}"),
        })?;
        let pixels_at = pending.output.0 + codec::FRAME_HEADER_SIZE;
        let digest =
            verify(clip, pending.frame, &info, |offset, chunk| region.read(pixels_at + offset, chunk).map_err(text))?;
        Ok(Decoded { info, digest })
    }
}

/// Hashes the `info.pixels_size` decoded bytes that `read(offset, chunk)`
/// hands over a page at a time and checks them, and the dimensions, against
/// frame `frame` of the clip. Returns the digest.
pub fn verify(
    clip: &Clip<'_>,
    frame: u32,
    info: &FrameInfo,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> Result<u64, String> {
    let (width, height, channels) = (info.width.get(), info.height.get(), u32::from(info.channels));
    if (width, height, channels) != (clip.width, clip.height, clip.channels) {
        return Err(format!(
            "decoded as {width}x{height}x{channels}, expected {}x{}x{}",
            clip.width, clip.height, clip.channels
        ));
    }
    let expected = clip.frame(frame).map_err(text)?.digest;
    let mut digest = Digest::new();
    let mut chunk = [0u8; 4096];
    let pixels = info.pixels_size.get();
    let mut done = 0;
    while done < pixels {
        let len = (pixels - done).min(chunk.len() as u64) as usize;
        read(done, &mut chunk[..len])?;
        digest.update(&chunk[..len]);
        done += len as u64;
    }
    let digest = digest.finish();
    if digest != expected {
        return Err(format!("digest {digest:016x}, expected {expected:016x}: MISMATCH"));
    }
    Ok(digest)
}

pub fn text(error: impl core::fmt::Display) -> String {
    error.to_string()
}
