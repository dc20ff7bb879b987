//! `cargo xtask bench codec`: the same QOI frames decoded three ways, in one
//! run, with one table at the end (docs/benchmarks.md).
//!
//! - (a) `hostmem`: the guest image `codec_bench` under QEMU with the
//!   hostmem backend attached, frames through the shared region
//!   (zero-copy, what `codec_demo` does);
//! - (b) `copy`: the same image and device, frames and pixels in virtqueue
//!   buffers bounced through the restricted DMA pool (DECODE_INLINE);
//! - (c) `native`: the host decoder alone, in this process.
//!
//! (a) and (b) are timed by the guest's generic timer (CNTVCT, which under
//! QEMU's TCG follows the host's clock, so it measures real time spent by an
//! emulated guest CPU plus the backend); (c) by `std::time::Instant`. The
//! guest verifies every frame's digest and the table is only printed when
//! every frame of every path verified.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use codec_clip::{Clip, Digest};

use crate::backend::BackendSpec;
use crate::board::Variant;
use crate::image::ImageBuild;
use crate::qemu::Launch;
use crate::{Error, Result, bail};

/// The guest image that runs paths (a) and (b).
pub const IMAGE: &str = "codec_bench";

/// Rounds over the clip when the command line does not say
/// (`--bootargs bench.rounds=R`); the image's default too.
pub const DEFAULT_ROUNDS: u32 = 5;

/// How to run the benchmark (from `cargo xtask` options).
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The board to run on.
    pub board: String,
    /// GIC version and entry exception level.
    pub variant: Variant,
    /// Build the image with `--release`.
    pub release: bool,
    /// Guest run limit.
    pub timeout: Duration,
    /// Extra guest command line words (`bench.rounds=R`, `bench.depth=D`,
    /// `bench.copy_depth=D`, `bench.warmup=W`).
    pub bootargs: Vec<String>,
    /// Play the images of this directory instead of the procedural clip.
    pub frames: Option<PathBuf>,
}

/// One path's measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathResult {
    /// The path's name (`path=` in the guest's line).
    pub path: String,
    /// Frames in flight.
    pub depth: u64,
    /// Frames decoded.
    pub frames: u64,
    /// Elapsed microseconds (guest clock for the guest paths).
    pub us: u64,
    /// Part of `us` spent hashing decoded pixels (guest paths only).
    pub verify_us: u64,
    /// Compressed bytes sent to the decoder.
    pub bytes_in: u64,
    /// Decoded bytes verified.
    pub bytes_out: u64,
    /// Doorbells (notifications) sent.
    pub doorbells: u64,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Events received.
    pub events: u64,
    /// Payload and message bytes the DMA pool copied (bounces).
    pub transport_bytes: u64,
    /// The payload part of `transport_bytes` (frames, not messages).
    pub payload_bytes: u64,
}

impl PathResult {
    /// Frames per second over `us`.
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 * 1e6 / self.us.max(1) as f64
    }

    /// Megabytes (10^6 bytes) per second of `bytes`.
    pub fn mb_per_second(&self, bytes: u64) -> f64 {
        bytes as f64 / self.us.max(1) as f64
    }

    /// The result line `parse_line` reads.
    pub fn line(&self) -> String {
        format!(
            "bench: path={} depth={} frames={} us={} verify_us={} bytes_in={} bytes_out={} doorbells={} interrupts={} events={} transport_bytes={} payload_bytes={}",
            self.path,
            self.depth,
            self.frames,
            self.us,
            self.verify_us,
            self.bytes_in,
            self.bytes_out,
            self.doorbells,
            self.interrupts,
            self.events,
            self.transport_bytes,
            self.payload_bytes
        )
    }

    fn per_frame(&self, value: u64) -> f64 {
        value as f64 / self.frames.max(1) as f64
    }
}

/// Parses a guest result line: `bench: path=NAME key=value ...`.
pub fn parse_line(line: &str) -> Option<PathResult> {
    let rest = line.trim().strip_prefix("bench: ")?;
    let fields: HashMap<&str, &str> = rest.split_ascii_whitespace().filter_map(|word| word.split_once('=')).collect();
    let path = fields.get("path")?;
    let number = |key: &str| fields.get(key).and_then(|value| value.parse::<u64>().ok());
    Some(PathResult {
        path: path.to_string(),
        depth: number("depth")?,
        frames: number("frames")?,
        us: number("us")?,
        verify_us: number("verify_us")?,
        bytes_in: number("bytes_in")?,
        bytes_out: number("bytes_out")?,
        doorbells: number("doorbells")?,
        interrupts: number("interrupts")?,
        events: number("events")?,
        transport_bytes: number("transport_bytes")?,
        payload_bytes: number("payload_bytes")?,
    })
}

/// `bench.rounds=R` from the command line words, or the default.
pub fn rounds(bootargs: &[String]) -> u32 {
    bootargs
        .iter()
        .rev()
        .find_map(|word| word.strip_prefix("bench.rounds=")?.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
        .max(1)
}

/// The clip the image embeds, built the way demos/codec/build.rs builds it.
pub fn clip_blob(frames: Option<&PathBuf>) -> Result<Vec<u8>> {
    let raw = match frames {
        Some(dir) => codec_clip::load_dir(dir).map_err(Error)?,
        None => codec_clip::procedural(30, 320, 240),
    };
    codec_clip::build_blob(&raw).map_err(Error)
}

/// Timed trials of path (c); the median one is reported (the host's
/// clock sees every other process on the machine, the decoder is cheap).
pub const NATIVE_TRIALS: usize = 5;

/// Path (c): decodes every frame of `blob` `rounds` times with the `qoi`
/// crate, as the backend does (header first, a zeroed buffer of the exact
/// size, then the decode into it), timed with the host's monotonic clock
/// after one untimed pass that also checks every digest; the median of
/// [`NATIVE_TRIALS`] such runs.
pub fn native(blob: &[u8], rounds: u32) -> Result<PathResult> {
    let clip = Clip::parse(blob).map_err(|error| Error(format!("clip: {error}")))?;
    let frames: Vec<_> =
        (0..clip.frames).map(|i| clip.frame(i)).collect::<Result<_, _>>().map_err(|e| Error(e.to_string()))?;
    let decode = |qoi: &[u8]| -> Result<Vec<u8>> {
        let header = qoi::decode_header(qoi).map_err(|e| Error(format!("qoi: {e}")))?;
        let mut pixels = vec![0u8; header.n_bytes()];
        qoi::decode_to_buf(&mut pixels, qoi).map_err(|e| Error(format!("qoi: {e}")))?;
        Ok(pixels)
    };
    for (index, frame) in frames.iter().enumerate() {
        let pixels = decode(frame.qoi)?;
        let mut digest = Digest::new();
        digest.update(&pixels);
        if digest.finish() != frame.digest {
            bail!("native decode of frame {index} does not match its digest");
        }
    }
    let mut trials = Vec::with_capacity(NATIVE_TRIALS);
    for _ in 0..NATIVE_TRIALS {
        let mut result = PathResult { path: "native".into(), depth: 1, ..PathResult::default() };
        let started = Instant::now();
        for _ in 0..rounds {
            for frame in &frames {
                let pixels = std::hint::black_box(decode(std::hint::black_box(frame.qoi))?);
                result.frames += 1;
                result.bytes_in += frame.qoi.len() as u64;
                result.bytes_out += pixels.len() as u64;
            }
        }
        result.us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        trials.push(result);
    }
    trials.sort_by_key(|trial| trial.us);
    Ok(trials.swap_remove(NATIVE_TRIALS / 2))
}

/// What the guest run produced.
#[derive(Clone, Debug)]
pub struct GuestRun {
    /// Result lines, hostmem first.
    pub results: Vec<PathResult>,
    /// Compressed bytes of one pass over the clip, as the image reports.
    pub clip_bytes: u64,
    /// The image's other `bench:` lines (clip, clock).
    pub info: Vec<String>,
}

/// Paths (a) and (b): builds and boots the image with the backend, exactly
/// as `cargo xtask run` and the QEMU tests do, and returns what it
/// reported.
pub fn guest(options: &BenchOptions) -> Result<GuestRun> {
    let mut spec = ImageBuild::new(IMAGE);
    spec.board = options.board.clone();
    spec.release = options.release;
    spec.codec_frames = options.frames.clone();
    println!("bench: building {IMAGE} and the backend");
    let launch = Launch::prepare(&spec, options.variant, options.bootargs.clone())?;
    println!("bench: booting {IMAGE} under QEMU with the hostmem backend (paths a and b)");
    let outcome = crate::run::run_with_backend(&launch, &BackendSpec::default(), options.timeout, false)?;
    let results: Vec<PathResult> = outcome.console.lines().filter_map(parse_line).collect();
    let clip_bytes = outcome
        .console
        .lines()
        .filter_map(|line| line.strip_prefix("bench: clip "))
        .flat_map(|rest| rest.split_ascii_whitespace())
        .find_map(|word| word.strip_prefix("bytes_in=")?.parse().ok());
    let finished = outcome.status() == 0 && outcome.has_line("bench: done");
    let paths: Vec<&str> = results.iter().map(|r| r.path.as_str()).collect();
    if !finished || paths != ["hostmem", "copy"] {
        bail!(
            "the benchmark image did not finish (status {}, results for {paths:?}):\n--- guest ---\n{}--- backend ---\n{}",
            outcome.status(),
            outcome.console,
            outcome.backend_output
        );
    }
    let Some(clip_bytes) = clip_bytes else { bail!("the image did not say how large its clip is") };
    let info = outcome
        .console
        .lines()
        .filter(|line| line.starts_with("bench: ") && parse_line(line).is_none() && line.trim() != "bench: done")
        .map(String::from)
        .collect();
    Ok(GuestRun { results, clip_bytes, info })
}

/// The table, ratios and clock notes.
pub fn report(guest: &[PathResult], native: &PathResult) -> String {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        &mut out,
        "| path | clock | depth | frames | ms | frames/s | MB/s in | MB/s out | verify | ms/frame besides verify | doorbells/frame | interrupts/frame | events/frame | bytes copied by transport/frame | of them payload |"
            .into(),
    );
    line(&mut out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    let label = |path: &str| match path {
        "hostmem" => "(a) hostmem, zero-copy",
        "copy" => "(b) virtqueue copy",
        _ => "(c) host decoder alone",
    };
    for result in guest {
        line(
            &mut out,
            format!(
                "| {} | guest CNTVCT | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
                label(&result.path),
                result.depth,
                result.frames,
                result.us as f64 / 1000.0,
                result.frames_per_second(),
                result.mb_per_second(result.bytes_in),
                result.mb_per_second(result.bytes_out),
                result.verify_us as f64 * 100.0 / result.us.max(1) as f64,
                result.per_frame(result.us.saturating_sub(result.verify_us)) / 1000.0,
                result.per_frame(result.doorbells),
                result.per_frame(result.interrupts),
                result.per_frame(result.events),
                result.per_frame(result.transport_bytes),
                result.per_frame(result.payload_bytes),
            ),
        );
    }
    line(
        &mut out,
        format!(
            "| {} | host Instant | 1 | {} | {:.1} | {:.1} | {:.2} | {:.2} | - | {:.2} | - | - | - | 0 | 0 |",
            label("native"),
            native.frames,
            native.us as f64 / 1000.0,
            native.frames_per_second(),
            native.mb_per_second(native.bytes_in),
            native.mb_per_second(native.bytes_out),
            native.per_frame(native.us) / 1000.0,
        ),
    );
    let fps = |path: &str| guest.iter().find(|r| r.path == path).map(PathResult::frames_per_second);
    out.push('\n');
    if let (Some(a), Some(b)) = (fps("hostmem"), fps("copy")) {
        line(&mut out, format!("a/b (frames/s, zero-copy over copy): {:.2}", a / b));
    }
    if let Some(a) = fps("hostmem") {
        line(
            &mut out,
            format!("a/c (frames/s, guest zero-copy over host decoder alone): {:.3}", a / native.frames_per_second()),
        );
    }
    if let Some(b) = fps("copy") {
        line(
            &mut out,
            format!("b/c (frames/s, guest copy over host decoder alone): {:.3}", b / native.frames_per_second()),
        );
    }
    out.push('\n');
    line(
        &mut out,
        "Clocks: (a) and (b) are timed by the guest's generic timer (CNTVCT_EL0). Under QEMU TCG it follows the \
host's clock, so it is real time in which an emulated CPU runs the guest (its copies, hashing and ring \
handling, all many times slower than native) while the backend decodes natively in another process. (c) is \
the host's monotonic clock (std::time::Instant) around the decoder alone, the median of 5 runs. MB = 10^6 bytes; \"verify\" is the \
share of the guest's time spent hashing decoded pixels (the same code on both guest paths), and \"ms/frame \
besides verify\" the rest of its time per frame; transport bytes are what the DMA pool's bounces copied \
(payload and messages)."
            .into(),
    );
    out
}

/// `cargo xtask bench codec-native`: path (c) alone, printed as a result
/// line. [`codec`] runs it in a release build of xtask, so the decoder is
/// optimised as the backend's is (`cargo xtask` itself is a dev build).
pub fn codec_native(options: &BenchOptions) -> Result<()> {
    let blob = clip_blob(options.frames.as_ref())?;
    println!("{}", native(&blob, rounds(&options.bootargs))?.line());
    Ok(())
}

/// Runs [`codec_native`] in a release build of xtask.
fn native_in_release(options: &BenchOptions, rounds: u32) -> Result<PathResult> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(crate::paths::workspace())
        .args(["run", "--quiet", "--release", "-p", "xtask", "--", "bench", "codec-native", "--bootargs"])
        .arg(format!("bench.rounds={rounds}"));
    if let Some(dir) = &options.frames {
        command.arg("--frames").arg(dir);
    }
    let output = command.output().map_err(|error| Error(format!("cannot start {command:?}: {error}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{command:?} failed with {}:\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    match stdout.lines().filter_map(parse_line).find(|result| result.path == "native") {
        Some(result) => Ok(result),
        None => bail!("{command:?} printed no result line:\n{stdout}"),
    }
}

/// `cargo xtask bench codec`.
pub fn codec(options: &BenchOptions) -> Result<()> {
    let rounds = rounds(&options.bootargs);
    println!("bench: (c) decoding the clip natively (release build of xtask), {rounds} rounds after one checked pass");
    let native = native_in_release(options, rounds)?;
    let GuestRun { results: guest, clip_bytes, info } = guest(options)?;
    // The three paths must have decoded the same frames.
    let per_pass = native.bytes_in / u64::from(rounds);
    if clip_bytes != per_pass {
        bail!("the image's clip ({clip_bytes} bytes) is not the one decoded natively ({per_pass} bytes)");
    }
    for result in &guest {
        if result.frames != native.frames || result.bytes_in != native.bytes_in || result.bytes_out != native.bytes_out
        {
            bail!(
                "path {} decoded {} frames ({} bytes in, {} out), native {} ({} in, {} out): not the same work",
                result.path,
                result.frames,
                result.bytes_in,
                result.bytes_out,
                native.frames,
                native.bytes_in,
                native.bytes_out
            );
        }
    }
    println!();
    for line in &info {
        println!("{line}");
    }
    for result in guest.iter().chain([&native]) {
        println!("{}", result.line());
    }
    println!();
    print!("{}", report(&guest, &native));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse() {
        let line = "bench: path=copy depth=4 frames=150 us=2000000 verify_us=500000 bytes_in=100 bytes_out=200 \
                    doorbells=150 interrupts=0 events=0 notifications=150 transport_bytes=4000 payload_bytes=0 pool_bounced=4000";
        let result = parse_line(line).unwrap();
        assert_eq!(result.path, "copy");
        assert_eq!((result.depth, result.frames, result.us, result.verify_us), (4, 150, 2_000_000, 500_000));
        assert_eq!(result.transport_bytes, 4000);
        assert!((result.frames_per_second() - 75.0).abs() < 1e-9);
        assert_eq!(parse_line("bench: clip frames=30 width=320"), None);
        assert_eq!(parse_line("bench: path=copy frames=x"), None);
        assert_eq!(parse_line("codec: summary"), None);
        let native = PathResult { path: "native".into(), depth: 1, frames: 3, us: 7, ..Default::default() };
        assert_eq!(parse_line(&native.line()), Some(native));
    }

    #[test]
    fn rounds_come_from_the_command_line() {
        assert_eq!(rounds(&[]), DEFAULT_ROUNDS);
        assert_eq!(rounds(&["bench.rounds=9".into()]), 9);
        assert_eq!(rounds(&["bench.rounds=0".into()]), 1);
        assert_eq!(rounds(&["bench.rounds=2".into(), "bench.rounds=3".into()]), 3);
    }

    #[test]
    fn native_decoding_checks_and_counts() {
        let blob = codec_clip::build_blob(&codec_clip::procedural(3, 32, 16)).unwrap();
        let result = native(&blob, 2).unwrap();
        assert_eq!((result.frames, result.bytes_out), (6, 6 * 32 * 16 * 3));
        assert!(result.us > 0);
        let mut bad = blob.clone();
        let last = bad.len() - 20;
        bad[last] ^= 0xff;
        assert!(native(&bad, 1).is_err(), "a frame that does not match its digest");
    }

    #[test]
    fn the_table_has_every_path() {
        let a = PathResult {
            path: "hostmem".into(),
            depth: 4,
            frames: 10,
            us: 1000,
            bytes_in: 10,
            bytes_out: 20,
            doorbells: 10,
            ..Default::default()
        };
        let b = PathResult { path: "copy".into(), us: 2000, ..a.clone() };
        let c = PathResult { path: "native".into(), us: 100, ..a.clone() };
        let table = report(&[a, b], &c);
        assert!(table.contains("(a) hostmem") && table.contains("(b) virtqueue copy") && table.contains("(c) host"));
        assert!(table.contains("a/b (frames/s, zero-copy over copy): 2.00"), "{table}");
        assert!(table.contains("a/c"));
    }
}
