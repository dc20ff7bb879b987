//! The codec demo: plays the embedded QOI clip through the hostmem codec
//! sub-device, zero-copy.
//!
//! For each frame the guest writes the compressed bytes into an input slot
//! of the shared region (the one copy a frame costs) and rings the doorbell
//! with the slot's offset and size; the host decodes into an output slot of
//! the same region and advances this instance's completion word, which the
//! guest polls (no event, no interrupt per frame). `SLOTS` frames are in
//! flight at once. Every decoded frame is checked against the digest the
//! build computed with the reference decoder, read straight from the region.
//!
//! Command line: `codec.frames=N` plays only the first N frames;
//! `codec.timeout_ms=T` per frame (default 5000).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use codec_clip::{Clip, Digest};
use hostmem_wire::Status;
use hostmem_wire::codec::{self, DecodeMeta, FrameInfo, SlotLayout};
use tidepool::arch::aarch64::timer;
use tidepool::hostmem::{Hostmem, HostmemError, Instance, Notification, Options};
use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, dma, println};
use virtio_drivers::Hal;

tidepool::entry!(main);

static CLIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/codec-clip.bin"));

/// Frames in flight at once (input and output slots).
const SLOTS: u32 = 4;

fn main(boot: &'static Boot) -> u32 {
    let clip = match Clip::parse(CLIP) {
        Ok(clip) => clip,
        Err(error) => {
            println!("codec: embedded clip unusable: {error}");
            return tidepool::exit::FAILURE;
        }
    };
    let bootargs = boot.platform.bootargs();
    let arg =
        |name: &str| bootargs.split_ascii_whitespace().find_map(|word| word.strip_prefix(name)?.strip_prefix('='));
    let frames = arg("codec.frames").and_then(|n| n.parse().ok()).unwrap_or(clip.frames).min(clip.frames);
    let timeout = Duration::from_millis(arg("codec.timeout_ms").and_then(|n| n.parse().ok()).unwrap_or(5000));
    println!(
        "codec: clip of {} frames {}x{}x{}, {} KiB compressed; playing {frames}",
        clip.frames,
        clip.width,
        clip.height,
        clip.channels,
        CLIP.len() / 1024
    );

    let Some(device) = probe::find(boot, DmaPolicy::Strict, hostmem_wire::DEVICE_ID_DEFAULT) else {
        println!("codec: no hostmem device");
        return tidepool::exit::FAILURE;
    };
    let slot = device.pool_slot;
    let result = tidepool::with_pool_hal!(slot, |H| play::<H>(device, boot, &clip, frames, timeout, slot));
    match result {
        Ok(Ok(summary)) if summary.verified == frames => tidepool::exit::SUCCESS,
        Ok(Ok(_)) => tidepool::exit::FAILURE,
        Ok(Err(error)) => {
            println!("codec: error: {error}");
            tidepool::exit::FAILURE
        }
        Err(error) => {
            println!("codec: {error}");
            tidepool::exit::FAILURE
        }
    }
}

struct Summary {
    verified: u32,
}

/// A frame on its way: which slot, which notification.
struct InFlight {
    frame: u32,
    seq: u64,
    output: (u64, u64),
    compressed: usize,
}

fn play<H: Hal>(
    device: tidepool::virtio::probe::Device,
    boot: &Boot,
    clip: &Clip<'_>,
    frames: u32,
    timeout: Duration,
    slot: usize,
) -> Result<Summary, String> {
    let mut hostmem =
        Hostmem::<H>::new(device, boot, Options { interrupts: false, ..Options::default() }).map_err(text)?;
    let codec = hostmem.find_subdevice(codec::VENDOR_ID, codec::DEVICE_ID).map_err(text)?;
    let region_len = hostmem.region(codec).map_err(text)?.len();
    let largest = (0..clip.frames).filter_map(|i| clip.frame(i).ok()).map(|f| f.qoi.len() as u64).max().unwrap_or(0);
    let input_slot = largest.next_multiple_of(4096);
    let layout = SlotLayout::new(region_len, SLOTS, input_slot, SLOTS).map_err(text)?;
    let needed = codec::required_capacity(clip.width, clip.height, clip.channels as u8).unwrap_or(u64::MAX);
    let instance = hostmem.create_instance(codec, SlotLayout::completion_offset(0)).map_err(text)?;
    println!("codec: instance {}, {SLOTS} slots in flight, input slots {input_slot} bytes", instance.id());
    if layout.output_slot(0).is_none_or(|(_, capacity)| capacity < needed) {
        println!("codec: output slots are smaller than a frame ({needed} bytes)");
    }

    let pool_before = dma::with_pool(slot, |pool| pool.stats()).map_err(text)?;
    let counters_before = hostmem.counters();
    let started = timer::now();
    let mut verified = 0;
    let mut failed = 0;
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut payload_bytes = 0u64;
    for frame in 0..frames {
        let index = frame % SLOTS;
        if in_flight.len() == SLOTS as usize {
            let oldest = in_flight.remove(0);
            if finish(&mut hostmem, &instance, codec, clip, &oldest, timeout)? { verified += 1 } else { failed += 1 }
        }
        let data = clip.frame(frame).map_err(text)?;
        let (input_offset, _) = layout.input_slot(index).ok_or("no input slot")?;
        let output = layout.output_slot(index).ok_or("no output slot")?;
        hostmem.region(codec).map_err(text)?.write(input_offset, data.qoi).map_err(text)?;
        payload_bytes += data.qoi.len() as u64;
        let seq = hostmem
            .notify(
                &instance,
                Notification {
                    opcode: codec::Op::Decode as u32,
                    offset: input_offset,
                    size: data.qoi.len() as u64,
                    metadata: DecodeMeta::new(output.0, output.1).to_metadata(),
                    want_event: false,
                },
            )
            .map_err(text)?;
        in_flight.push(InFlight { frame, seq, output, compressed: data.qoi.len() });
    }
    for pending in core::mem::take(&mut in_flight) {
        if finish(&mut hostmem, &instance, codec, clip, &pending, timeout)? { verified += 1 } else { failed += 1 }
    }
    let elapsed_us = timer::micros_between(started, timer::now()).max(1);
    let counters = hostmem.counters().since(&counters_before);
    let pool_after = dma::with_pool(slot, |pool| pool.stats()).map_err(text)?;
    let per_frame = |value: u64| value as f64 / f64::from(frames.max(1));
    let bounced = pool_after.bytes_bounced - pool_before.bytes_bounced;
    println!("codec: summary: {verified} verified, {failed} failed, of {frames} frames");
    println!(
        "codec: {} us, {:.1} frames/s, {:.2} MB/s compressed in, {:.2} MB/s decoded out (guest clock, TCG)",
        elapsed_us,
        f64::from(frames) * 1e6 / elapsed_us as f64,
        payload_bytes as f64 / elapsed_us as f64,
        (u64::from(verified) * clip.frame_pixels_len()) as f64 / elapsed_us as f64
    );
    println!(
        "codec: per frame: {:.1} payload bytes copied by the transport, {:.0} bytes of messages bounced, {:.2} doorbells, {:.2} interrupts, {:.2} events",
        0.0,
        per_frame(bounced),
        per_frame(counters.doorbells),
        per_frame(counters.interrupts),
        per_frame(counters.events)
    );
    hostmem.destroy_instance(instance).map_err(text)?;
    Ok(Summary { verified })
}

/// Waits for `pending`'s completion and checks the decoded frame in place.
/// `Ok(false)` for a frame the host could not decode (reported, playback
/// goes on); errors for a stalled or misbehaving host.
fn finish<H: Hal>(
    hostmem: &mut Hostmem<H>,
    instance: &Instance,
    codec: tidepool::hostmem::Subdevice,
    clip: &Clip<'_>,
    pending: &InFlight,
    timeout: Duration,
) -> Result<bool, String> {
    match hostmem.wait_completion(instance, pending.seq, timeout) {
        Ok(()) => {}
        // The host answered with an error for this frame: report it, go on.
        Err(HostmemError::NotificationFailed { status, .. }) => {
            println!("frame {:3}: host could not decode it: {status:?}", pending.frame);
            return Ok(false);
        }
        Err(error) => return Err(alloc::format!("frame {}: {error}", pending.frame)),
    }
    let region = hostmem.region(codec).map_err(text)?;
    let mut header = [0u8; codec::FRAME_HEADER_SIZE as usize];
    region.read(pending.output.0, &mut header).map_err(text)?;
    let info = FrameInfo::read(&header).map_err(text)?;
    if let Err(error) = info.check(pending.seq, pending.output.1) {
        println!("frame {:3}: bad result header: {error}", pending.frame);
        return Ok(false);
    }
    if info.status.get() != Status::Ok as u32 {
        match Status::try_from(info.status.get()) {
            Ok(status) => println!("frame {:3}: host could not decode it: {status:?}", pending.frame),
            Err(error) => println!("frame {:3}: host could not decode it: {error}", pending.frame),
        }
        return Ok(false);
    }
    let expected = clip.frame(pending.frame).map(|frame| frame.digest).unwrap_or(0);
    // Hash the pixels where the host left them, a page at a time.
    let mut digest = Digest::new();
    let mut chunk = [0u8; 4096];
    let pixels = info.pixels_size.get();
    let mut done = 0;
    while done < pixels {
        let len = (pixels - done).min(chunk.len() as u64) as usize;
        region.read(pending.output.0 + codec::FRAME_HEADER_SIZE + done, &mut chunk[..len]).map_err(text)?;
        digest.update(&chunk[..len]);
        done += len as u64;
    }
    let ok = digest.finish() == expected
        && (info.width.get(), info.height.get(), u32::from(info.channels)) == (clip.width, clip.height, clip.channels);
    println!(
        "frame {:3}: {} -> {}x{}x{} ({} bytes), digest {:016x} {}",
        pending.frame,
        pending.compressed,
        info.width.get(),
        info.height.get(),
        info.channels,
        pixels,
        digest.finish(),
        if ok { "verified" } else { "MISMATCH" }
    );
    Ok(ok)
}

fn text(error: impl core::fmt::Display) -> String {
    error.to_string()
}
