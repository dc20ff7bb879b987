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
//! bench: path=hostmem depth=4 frames=150 us=... verify_us=... bytes_in=... bytes_out=... doorbells=... interrupts=... events=... notifications=... transport_bytes=... payload_bytes=... pool_bounced=...
//! ```
//!
//! Command line: `bench.rounds=R` (default 5), `bench.depth=D` (hostmem
//! frames in flight, default 4), `bench.copy_depth=D` (copy chains in
//! flight, default 4), `bench.warmup=W` (untimed passes, default 1),
//! `bench.timeout_ms=T` (per frame, default 5000).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "common/codec_client.rs"]
mod codec_client;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use codec_client::{ZeroCopyClient, text, verify};
use codec_clip::Clip;
use hostmem_wire::METADATA_SIZE;
use hostmem_wire::codec::{self, SlotLayout};
use tidepool::dma::PoolId;
use tidepool::hostmem::{Counters, Hostmem, Instance, Notification, Options};
use tidepool::time;
use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, println};
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
    println!("bench: clock=cntvct hz={}", time::frequency());

    let Some(device) = probe::find(boot, DmaPolicy::Strict, hostmem_wire::DEVICE_ID_DEFAULT) else {
        println!("bench: error: no hostmem device");
        return tidepool::exit::FAILURE;
    };
    let pool = device.pool;
    match tidepool::with_pool_hal!(pool, |H| run::<H>(device, boot, &clip, settings, pool)) {
        Ok(()) => {
            println!("bench: done");
            tidepool::exit::SUCCESS
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
    pool: PoolId,
) -> Result<(), String> {
    let mut hostmem =
        Hostmem::<H>::new(device, boot, Options { interrupts: false, ..Options::default() }).map_err(text)?;
    let codec = hostmem.find_subdevice(codec::VENDOR_ID, codec::DEVICE_ID).map_err(text)?;
    // One instance per path, each with its completion word.
    let zero_copy = hostmem.create_instance(codec, SlotLayout::completion_offset(0)).map_err(text)?;
    let copying = hostmem.create_instance(codec, SlotLayout::completion_offset(1)).map_err(text)?;

    let mut client = ZeroCopyClient::new(&hostmem, codec, clip, settings.depth)?;
    for _ in 0..settings.warmup {
        play_zero_copy(&mut client, &mut hostmem, &zero_copy, clip, 1, settings.timeout)?;
    }
    measure(&mut hostmem, pool, "hostmem", settings.depth, |hostmem| {
        play_zero_copy(&mut client, hostmem, &zero_copy, clip, settings.rounds, settings.timeout)
    })?;

    let mut copy = Copying::new(clip, settings.copy_depth);
    for _ in 0..settings.warmup {
        copy.play(&mut hostmem, &copying, clip, 1, settings.timeout)?;
    }
    measure(&mut hostmem, pool, "copy", settings.copy_depth, |hostmem| {
        copy.play(hostmem, &copying, clip, settings.rounds, settings.timeout)
    })?;

    hostmem.destroy_instance(zero_copy).map_err(text)?;
    hostmem.destroy_instance(copying).map_err(text)?;
    Ok(())
}

/// Runs `play` and prints its result line with the driver's counters.
fn measure<H: Hal>(
    hostmem: &mut Hostmem<H>,
    pool: PoolId,
    path: &str,
    depth: u32,
    play: impl FnOnce(&mut Hostmem<H>) -> Result<Run, String>,
) -> Result<(), String> {
    let pool_before = pool.stats();
    let before: Counters = hostmem.counters();
    let run = play(hostmem)?;
    let counters = hostmem.counters().since(&before);
    let pool_after = pool.stats();
    let us = |ticks: u64| time::micros_between(0, ticks);
    println!(
        "bench: path={path} depth={depth} frames={} us={} verify_us={} bytes_in={} bytes_out={} doorbells={} interrupts={} events={} notifications={} transport_bytes={} payload_bytes={} pool_bounced={}",
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
        counters.payload_bytes_copied_by_transport,
        pool_after.bytes_bounced.saturating_sub(pool_before.bytes_bounced)
    );
    Ok(())
}

// --- path=hostmem: the region, through the client codec_demo uses ---

/// Plays the clip `rounds` times through `client` and verifies every frame;
/// any frame that does not verify ends the benchmark.
fn play_zero_copy<H: Hal>(
    client: &mut ZeroCopyClient,
    hostmem: &mut Hostmem<H>,
    instance: &Instance,
    clip: &Clip<'_>,
    rounds: u32,
    timeout: Duration,
) -> Result<Run, String> {
    let mut run = Run::default();
    let finish = |client: &mut ZeroCopyClient, hostmem: &mut Hostmem<H>, run: &mut Run| {
        let Some(done) = client.finish_oldest(hostmem, instance, clip, timeout)? else {
            return Ok::<bool, String>(false);
        };
        let decoded = done.outcome.map_err(|why| alloc::format!("frame {}: {why}", done.frame))?;
        run.frames += 1;
        run.bytes_out += decoded.info.pixels_size.get();
        run.verify_ticks += done.verify_ticks;
        Ok(true)
    };
    let started = time::now();
    for index in 0..rounds * clip.frames {
        if client.is_full() {
            finish(client, hostmem, &mut run)?;
        }
        let frame = index % clip.frames;
        client.submit(hostmem, instance, clip, frame)?;
        run.bytes_in += clip.frame(frame).map_or(0, |data| data.qoi.len() as u64);
    }
    while finish(client, hostmem, &mut run)? {}
    run.ticks = time::now().saturating_sub(started);
    Ok(run)
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
        let started = time::now();
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
        run.ticks = time::now().saturating_sub(started);
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
        let started = time::now();
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
        run.verify_ticks += time::now().saturating_sub(started);
        self.spare.push((input, output));
        Ok(())
    }
}
