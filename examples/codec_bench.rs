//! The codec benchmark image: the embedded QOI clip decoded by the host,
//! once through the hostmem region (zero-copy) and once the conventional
//! virtio way (every byte in virtqueue buffers, bounced through the DMA
//! pool), each frame verified against its build-time digest.
//!
//! - `path=hostmem` is what `codec_demo` does: each compressed frame is
//!   written once into an input slot of the shared region, one DECODE
//!   notification names it, the host decodes into an output slot of the same
//!   region, and the guest polls the instance's completion word, `depth`
//!   frames in flight; the pixels are hashed where the host left them.
//! - `path=copy` sends each frame as DECODE_INLINE (docs/hostmem.md
//!   appendix A.3): the chain is [notification | QOI bytes] device-readable
//!   and an output buffer device-writable. The restricted DMA pool's Hal
//!   bounces the input in and the output back (the transport's copies); the
//!   guest waits on the used ring, `copy_depth` chains in flight, and
//!   hashes the pixels in its own buffer.
//!
//! Both paths run over the whole clip `rounds` times after one untimed
//! warm-up pass, with the same instance setup (completion word, no events,
//! no interrupts), so what differs is where the bytes travel. Time is the
//! guest's generic timer (CNTVCT), which under QEMU TCG follows the host's
//! clock; `verify_us` is the part spent hashing pixels.
//!
//! One line per path, for `cargo xtask bench codec` to parse:
//!
//! ```text
//! bench: path=hostmem depth=4 frames=150 us=... verify_us=... bytes_in=... bytes_out=... doorbells=... interrupts=... events=... notifications=... transport_bytes=...
//! ```
//!
//! Command line: `bench.rounds=R` (default 5), `bench.depth=D` (hostmem
//! frames in flight, default 4), `bench.copy_depth=D` (copy chains in
//! flight, default 4), `bench.warmup=W` (untimed passes, default 1),
//! `bench.timeout_ms=T` (per frame, default 5000).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use codec_clip::{Clip, Digest};
use hostmem_wire::METADATA_SIZE;
use hostmem_wire::codec::{self, DecodeMeta, FrameInfo, SlotLayout};
use tidepool::arch::aarch64::timer;
use tidepool::hostmem::{Counters, Hostmem, Instance, Notification, Options, Subdevice};
use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, dma, println};
use virtio_drivers::Hal;

tidepool::entry!(main);

static CLIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/codec-clip.bin"));

/// Most frames in flight on either path: input and output slots of the
/// region, or chains (3 descriptors each, and about 129 pool pages each
/// for the 320x240 clip, of the pool's 1024).
const MAX_DEPTH: u32 = 4;

/// What the command line asked for.
#[derive(Clone, Copy)]
struct Settings {
    rounds: u32,
    warmup: u32,
    depth: u32,
    copy_depth: u32,
    timeout: Duration,
}

fn main(boot: &'static Boot) -> u32 {
    let clip = match Clip::parse(CLIP) {
        Ok(clip) => clip,
        Err(error) => {
            println!("bench: error: embedded clip unusable: {error}");
            return tidepool::exit::FAILURE;
        }
    };
    let arg =
        |name: &str, default: u32| boot.platform.bootarg(name).and_then(|value| value.parse().ok()).unwrap_or(default);
    let settings = Settings {
        rounds: arg("bench.rounds", 5).max(1),
        warmup: arg("bench.warmup", 1),
        depth: arg("bench.depth", MAX_DEPTH).clamp(1, MAX_DEPTH),
        copy_depth: arg("bench.copy_depth", MAX_DEPTH).clamp(1, MAX_DEPTH),
        timeout: Duration::from_millis(u64::from(arg("bench.timeout_ms", 5000))),
    };
    let compressed: usize = (0..clip.frames).filter_map(|i| clip.frame(i).ok()).map(|f| f.qoi.len()).sum();
    println!(
        "bench: clip frames={} width={} height={} channels={} bytes_in={compressed} rounds={} warmup={}",
        clip.frames, clip.width, clip.height, clip.channels, settings.rounds, settings.warmup
    );
    println!("bench: clock=cntvct hz={}", timer::frequency());

    let Some(device) = probe::find(boot, DmaPolicy::Strict, hostmem_wire::DEVICE_ID_DEFAULT) else {
        println!("bench: error: no hostmem device");
        return tidepool::exit::FAILURE;
    };
    let slot = device.pool_slot;
    match tidepool::with_pool_hal!(slot, |H| run::<H>(device, boot, &clip, settings, slot)) {
        Ok(Ok(())) => {
            println!("bench: done");
            tidepool::exit::SUCCESS
        }
        Ok(Err(error)) => {
            println!("bench: error: {error}");
            tidepool::exit::FAILURE
        }
        Err(error) => {
            println!("bench: error: {error}");
            tidepool::exit::FAILURE
        }
    }
}

/// What one timed run of a path measured.
#[derive(Default)]
struct Run {
    frames: u64,
    ticks: u64,
    verify_ticks: u64,
    bytes_in: u64,
    bytes_out: u64,
}

fn run<H: Hal>(
    device: tidepool::virtio::probe::Device,
    boot: &Boot,
    clip: &Clip<'_>,
    settings: Settings,
    slot: usize,
) -> Result<(), String> {
    let mut hostmem =
        Hostmem::<H>::new(device, boot, Options { interrupts: false, ..Options::default() }).map_err(text)?;
    let codec = hostmem.find_subdevice(codec::VENDOR_ID, codec::DEVICE_ID).map_err(text)?;
    // One instance per path, each with its completion word.
    let zero_copy = hostmem.create_instance(codec, SlotLayout::completion_offset(0)).map_err(text)?;
    let copying = hostmem.create_instance(codec, SlotLayout::completion_offset(1)).map_err(text)?;

    let mut zero = ZeroCopy::new(&hostmem, codec, clip, settings.depth)?;
    for _ in 0..settings.warmup {
        zero.play(&mut hostmem, &zero_copy, clip, 1, settings.timeout)?;
    }
    measure(&mut hostmem, slot, "hostmem", settings.depth, |hostmem| {
        zero.play(hostmem, &zero_copy, clip, settings.rounds, settings.timeout)
    })?;

    let mut copy = Copying::new(clip, settings.copy_depth);
    for _ in 0..settings.warmup {
        copy.play(&mut hostmem, &copying, clip, 1, settings.timeout)?;
    }
    measure(&mut hostmem, slot, "copy", settings.copy_depth, |hostmem| {
        copy.play(hostmem, &copying, clip, settings.rounds, settings.timeout)
    })?;

    hostmem.destroy_instance(zero_copy).map_err(text)?;
    hostmem.destroy_instance(copying).map_err(text)?;
    Ok(())
}

/// Runs `play` and prints its result line with the driver's counters.
fn measure<H: Hal>(
    hostmem: &mut Hostmem<H>,
    slot: usize,
    path: &str,
    depth: u32,
    play: impl FnOnce(&mut Hostmem<H>) -> Result<Run, String>,
) -> Result<(), String> {
    let pool_before = dma::with_pool(slot, |pool| pool.stats()).map_err(text)?;
    let before: Counters = hostmem.counters();
    let run = play(hostmem)?;
    let counters = hostmem.counters().since(&before);
    let pool_after = dma::with_pool(slot, |pool| pool.stats()).map_err(text)?;
    let us = |ticks: u64| timer::micros_between(0, ticks);
    println!(
        "bench: path={path} depth={depth} frames={} us={} verify_us={} bytes_in={} bytes_out={} doorbells={} interrupts={} events={} notifications={} transport_bytes={} pool_bounced={}",
        run.frames,
        us(run.ticks),
        us(run.verify_ticks),
        run.bytes_in,
        run.bytes_out,
        counters.doorbells,
        counters.interrupts,
        counters.events,
        counters.notifications,
        counters.bytes_copied_by_transport,
        pool_after.bytes_bounced.saturating_sub(pool_before.bytes_bounced)
    );
    Ok(())
}

/// Hashes `pixels` bytes handed over by `read` a page at a time and checks
/// the digest and dimensions against the clip's frame `frame`.
fn verify(
    clip: &Clip<'_>,
    frame: u32,
    info: &FrameInfo,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> Result<(), String> {
    if (info.width.get(), info.height.get(), u32::from(info.channels)) != (clip.width, clip.height, clip.channels) {
        return Err(alloc::format!(
            "frame {frame}: decoded as {}x{}x{}",
            info.width.get(),
            info.height.get(),
            info.channels
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
    if digest.finish() != expected {
        return Err(alloc::format!("frame {frame}: digest {:016x}, expected {expected:016x}", digest.finish()));
    }
    Ok(())
}

// --- path=hostmem: the region, as codec_demo uses it ---

struct ZeroCopy {
    layout: SlotLayout,
    depth: u32,
}

/// A frame on its way: which slot, which notification.
struct InFlight {
    frame: u32,
    seq: u64,
    output: (u64, u64),
}

impl ZeroCopy {
    fn new<H: Hal>(hostmem: &Hostmem<H>, codec: Subdevice, clip: &Clip<'_>, depth: u32) -> Result<Self, String> {
        let region_len = hostmem.region(codec).map_err(text)?.len();
        let largest =
            (0..clip.frames).filter_map(|i| clip.frame(i).ok()).map(|f| f.qoi.len() as u64).max().unwrap_or(0);
        let layout = SlotLayout::new(region_len, depth, largest.next_multiple_of(4096), depth).map_err(text)?;
        let needed = codec::required_capacity(clip.width, clip.height, clip.channels as u8).unwrap_or(u64::MAX);
        if layout.output_slot(0).is_none_or(|(_, capacity)| capacity < needed) {
            return Err(alloc::format!("output slots are smaller than a frame ({needed} bytes)"));
        }
        Ok(Self { layout, depth })
    }

    fn play<H: Hal>(
        &mut self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        rounds: u32,
        timeout: Duration,
    ) -> Result<Run, String> {
        let codec = instance.subdevice();
        let mut run = Run::default();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let started = timer::now();
        for index in 0..rounds * clip.frames {
            let frame = index % clip.frames;
            let slot = index % self.depth;
            if in_flight.len() == self.depth as usize
                && let Some(oldest) = in_flight.pop_front()
            {
                self.finish(hostmem, instance, clip, &oldest, timeout, &mut run)?;
            }
            let data = clip.frame(frame).map_err(text)?;
            let (input_offset, _) = self.layout.input_slot(slot).ok_or("no input slot")?;
            let output = self.layout.output_slot(slot).ok_or("no output slot")?;
            // The one copy a frame costs: into the shared region.
            hostmem.region(codec).map_err(text)?.write(input_offset, data.qoi).map_err(text)?;
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
                .map_err(text)?;
            run.bytes_in += data.qoi.len() as u64;
            in_flight.push_back(InFlight { frame, seq, output });
        }
        while let Some(pending) = in_flight.pop_front() {
            self.finish(hostmem, instance, clip, &pending, timeout, &mut run)?;
        }
        run.ticks = timer::now().saturating_sub(started);
        Ok(run)
    }

    /// Waits for `pending`'s completion word and verifies the frame in
    /// place in the region.
    fn finish<H: Hal>(
        &self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        pending: &InFlight,
        timeout: Duration,
        run: &mut Run,
    ) -> Result<(), String> {
        hostmem
            .wait_completion(instance, pending.seq, timeout)
            .map_err(|error| alloc::format!("frame {}: {error}", pending.frame))?;
        let started = timer::now();
        let region = hostmem.region(instance.subdevice()).map_err(text)?;
        let mut header = [0u8; codec::FRAME_HEADER_SIZE as usize];
        region.read(pending.output.0, &mut header).map_err(text)?;
        let info = FrameInfo::read(&header).map_err(text)?;
        info.check(pending.seq, pending.output.1)
            .map_err(|error| alloc::format!("frame {}: {error}", pending.frame))?;
        let pixels_at = pending.output.0 + codec::FRAME_HEADER_SIZE;
        verify(clip, pending.frame, &info, |offset, chunk| region.read(pixels_at + offset, chunk).map_err(text))?;
        run.frames += 1;
        run.bytes_out += info.pixels_size.get();
        run.verify_ticks += timer::now().saturating_sub(started);
        Ok(())
    }
}

// --- path=copy: DECODE_INLINE, buffers bounced through the DMA pool ---

struct Copying {
    /// Input and output buffers not in flight, reused.
    spare: Vec<(Vec<u8>, Vec<u8>)>,
    depth: u32,
}

impl Copying {
    fn new(clip: &Clip<'_>, depth: u32) -> Self {
        let largest = (0..clip.frames).filter_map(|i| clip.frame(i).ok()).map(|f| f.qoi.len()).max().unwrap_or(0);
        // Exactly header plus pixels: the pool copies the whole output
        // buffer back, so a larger one would inflate the copy path's cost.
        let output = codec::FRAME_HEADER_SIZE as usize + clip.frame_pixels_len() as usize;
        let spare = (0..depth).map(|_| (Vec::with_capacity(largest), alloc::vec![0u8; output])).collect();
        Self { spare, depth }
    }

    fn play<H: Hal>(
        &mut self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        rounds: u32,
        timeout: Duration,
    ) -> Result<Run, String> {
        let mut run = Run::default();
        let mut in_flight: VecDeque<(u32, u64)> = VecDeque::new();
        let started = timer::now();
        for index in 0..rounds * clip.frames {
            let frame = index % clip.frames;
            if in_flight.len() == self.depth as usize
                && let Some(oldest) = in_flight.pop_front()
            {
                self.finish(hostmem, instance, clip, oldest, timeout, &mut run)?;
            }
            let data = clip.frame(frame).map_err(text)?;
            let (mut input, output) = self.spare.pop().ok_or("no spare buffers")?;
            // The application's one copy, as into the region on the other
            // path; the bounce into the pool is the transport's.
            input.clear();
            input.extend_from_slice(data.qoi);
            let seq = hostmem
                .notify_with_buffers(
                    instance,
                    Notification {
                        opcode: codec::Op::DecodeInline as u32,
                        offset: 0,
                        size: 0,
                        metadata: [0; METADATA_SIZE],
                        want_event: false,
                    },
                    input,
                    output,
                )
                .map_err(|error| alloc::format!("frame {frame}: {error}"))?;
            run.bytes_in += data.qoi.len() as u64;
            in_flight.push_back((frame, seq));
        }
        while let Some(pending) = in_flight.pop_front() {
            self.finish(hostmem, instance, clip, pending, timeout, &mut run)?;
        }
        run.ticks = timer::now().saturating_sub(started);
        Ok(run)
    }

    /// Takes the oldest chain back (the pool copies the output into our
    /// buffer), checks the result and verifies the pixels there.
    fn finish<H: Hal>(
        &mut self,
        hostmem: &mut Hostmem<H>,
        instance: &Instance,
        clip: &Clip<'_>,
        (frame, expected_seq): (u32, u64),
        timeout: Duration,
        run: &mut Run,
    ) -> Result<(), String> {
        let (seq, input, output, used) = hostmem
            .complete_with_buffers(instance, timeout)
            .map_err(|error| alloc::format!("frame {frame}: {error}"))?;
        if seq != expected_seq {
            return Err(alloc::format!("frame {frame}: chain {seq} came back, expected {expected_seq}"));
        }
        let started = timer::now();
        let info = codec::check_inline_result(&output, used as u64, seq)
            .map_err(|error| alloc::format!("frame {frame}: {error}"))?;
        let pixels = output.get(codec::FRAME_HEADER_SIZE as usize..used).ok_or("used length")?;
        verify(clip, frame, &info, |offset, chunk| {
            let from = pixels.get(offset as usize..offset as usize + chunk.len()).ok_or("pixels")?;
            chunk.copy_from_slice(from);
            Ok(())
        })?;
        run.frames += 1;
        run.bytes_out += info.pixels_size.get();
        run.verify_ticks += timer::now().saturating_sub(started);
        self.spare.push((input, output));
        Ok(())
    }
}

fn text(error: impl core::fmt::Display) -> String {
    error.to_string()
}
