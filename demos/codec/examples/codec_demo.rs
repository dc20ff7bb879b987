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

#[path = "common/codec_client.rs"]
mod codec_client;

use alloc::string::String;
use core::time::Duration;

use codec_client::{ZeroCopyClient, text};
use codec_clip::Clip;
use hostmem_wire::codec::{self, SlotLayout};
use tidepool::hostmem::{Hostmem, Instance, Options};
use tidepool::time;
use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, println};
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
    let arg = |name: &str| boot.platform.bootarg(name).and_then(|value| value.parse().ok());
    let frames = arg("codec.frames").unwrap_or(clip.frames).min(clip.frames);
    let timeout = Duration::from_millis(arg("codec.timeout_ms").map_or(5000, u64::from));
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
    let pool = device.pool;
    let result = tidepool::with_pool_hal!(pool, |H| play::<H>(device, boot, &clip, frames, timeout));
    match result {
        Ok(summary) if summary.verified == frames => tidepool::exit::SUCCESS,
        Ok(_) => tidepool::exit::FAILURE,
        Err(error) => {
            println!("codec: error: {error}");
            tidepool::exit::FAILURE
        }
    }
}

struct Summary {
    verified: u32,
}

fn play<H: Hal>(
    device: tidepool::virtio::probe::Device,
    boot: &Boot,
    clip: &Clip<'_>,
    frames: u32,
    timeout: Duration,
) -> Result<Summary, String> {
    // Polling only ("few doorbells, no interrupts", docs/hostmem.md §9.3):
    // the line is not bound, so the interrupt count below stays 0 and the
    // waits are completion words. hostmem_echo covers the interrupt path.
    let options = Options { interrupts: false, ..Options::default() };
    let mut hostmem = Hostmem::<H>::new(device, boot, options).map_err(text)?;
    let codec = hostmem.find_subdevice(codec::VENDOR_ID, codec::DEVICE_ID).map_err(text)?;
    let mut client = ZeroCopyClient::new(&hostmem, codec, clip, SLOTS)?;
    let instance = hostmem.create_instance(codec, SlotLayout::completion_offset(0)).map_err(text)?;
    println!(
        "codec: instance {}, {SLOTS} slots in flight, input slots {} bytes",
        instance.id(),
        client.input_slot_size()
    );

    let counters_before = hostmem.counters();
    let started = time::now();
    let mut tally = Tally::default();
    let mut payload_bytes = 0u64;
    for frame in 0..frames {
        if client.is_full() {
            finish_oldest(&mut client, &mut hostmem, &instance, clip, timeout, &mut tally)?;
        }
        client.submit(&mut hostmem, &instance, clip, frame)?;
        payload_bytes += clip.frame(frame).map_or(0, |data| data.qoi.len() as u64);
    }
    while finish_oldest(&mut client, &mut hostmem, &instance, clip, timeout, &mut tally)? {}
    let elapsed_us = time::micros_between(started, time::now()).max(1);
    let counters = hostmem.counters().since(&counters_before);
    let per_frame = |value: u64| value as f64 / f64::from(frames.max(1));
    let Tally { verified, failed } = tally;
    println!("codec: summary: {verified} verified, {failed} failed, of {frames} frames");
    println!(
        "codec: {} us, {:.1} frames/s, {:.2} MB/s compressed in, {:.2} MB/s decoded out (guest clock, TCG)",
        elapsed_us,
        f64::from(frames) * 1e6 / elapsed_us as f64,
        payload_bytes as f64 / elapsed_us as f64,
        (u64::from(verified) * clip.frame_pixels_len()) as f64 / elapsed_us as f64
    );
    // As the DMA pool counted its bounce copies: frames travel through the
    // region, so only notification messages should show up here.
    let payload = counters.payload_bytes_copied_by_transport;
    println!(
        "codec: per frame: {:.1} payload bytes copied by the transport, {:.0} bytes of messages bounced, {:.2} doorbells, {:.2} interrupts, {:.2} events",
        per_frame(payload),
        per_frame(counters.bytes_copied_by_transport.saturating_sub(payload)),
        per_frame(counters.doorbells),
        per_frame(counters.interrupts),
        per_frame(counters.events)
    );
    hostmem.destroy_instance(instance).map_err(text)?;
    Ok(Summary { verified })
}

#[derive(Default)]
struct Tally {
    verified: u32,
    failed: u32,
}

/// Takes the oldest frame back and prints its line; `Ok(false)` when none
/// was in flight. A frame that failed is counted and playback goes on; a
/// stalled or misbehaving host is an error.
fn finish_oldest<H: Hal>(
    client: &mut ZeroCopyClient,
    hostmem: &mut Hostmem<H>,
    instance: &Instance,
    clip: &Clip<'_>,
    timeout: Duration,
    tally: &mut Tally,
) -> Result<bool, String> {
    let Some(done) = client.finish_oldest(hostmem, instance, clip, timeout)? else {
        return Ok(false);
    };
    match done.outcome {
        Ok(decoded) => {
            tally.verified += 1;
            let info = decoded.info;
            println!(
                "frame {:3}: {} -> {}x{}x{} ({} bytes), digest {:016x} verified",
                done.frame,
                done.compressed,
                info.width.get(),
                info.height.get(),
                info.channels,
                info.pixels_size.get(),
                decoded.digest,
            );
        }
        Err(why) => {
            tally.failed += 1;
            println!("frame {:3}: {why}", done.frame);
        }
    }
    Ok(true)
}
