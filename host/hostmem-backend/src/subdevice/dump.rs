//! `--dump-frames DIR`: every frame the codec decodes, written to DIR as a
//! PNG (RGB or RGBA, 8 bits a channel), and one line per frame in the
//! manifest `frames.tsv` beside them.
//!
//! The manifest is what a reader of the directory joins with the guest's
//! verdicts (`cargo xtask run --dump-frames` writes `index.html` from it and
//! the guest's console): the backend knows what it decoded and where the
//! picture went, but not what the frame should have been. Its columns are
//! [`MANIFEST_COLUMNS`]; `digest` is the clip's FNV-1a digest
//! (`codec_clip::digest`) of the pixels, the same value the codec demo
//! prints for a frame it verified, so a join can be checked, not assumed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::codec::Decoded;

/// The manifest's name in the dump directory.
pub const MANIFEST: &str = "frames.tsv";

/// The manifest's first line: its tab-separated columns.
pub const MANIFEST_COLUMNS: &str = "# instance\tseq\twidth\theight\tchannels\tdigest\tfile";

/// Starts a dump into `dir`: creates the directory and a fresh manifest,
/// so the manifest lists this backend run's frames only (pictures an
/// earlier run left in `dir` stay, but nothing lists them).
pub fn start(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MANIFEST), format!("{MANIFEST_COLUMNS}\n"))
}

/// The name of the picture of decode `seq` on `instance`.
pub fn file_name(instance: u32, seq: u64) -> String {
    format!("frame-i{instance}-s{seq:06}.png")
}

/// Encodes `frame` as a PNG: 8-bit RGB or RGBA as the QOI header said,
/// marked sRGB for QOI colorspace 0 (sRGB with linear alpha) and with gamma
/// 1.0 for colorspace 1 (all channels linear), so viewers show it as the
/// QOI file meant.
pub fn encode_png(frame: &Decoded, out: impl Write) -> Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(out, frame.width, frame.height);
    encoder.set_color(if frame.channels == 4 { png::ColorType::Rgba } else { png::ColorType::Rgb });
    encoder.set_depth(png::BitDepth::Eight);
    // The backend encodes while the guest waits for the next frame: fast
    // compression, still far smaller than raw pixels.
    encoder.set_compression(png::Compression::Fast);
    if frame.colorspace == 0 {
        encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    } else {
        encoder.set_source_gamma(png::ScaledFloat::new(1.0));
    }
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&frame.pixels)?;
    writer.finish()
}

/// Writes `frame`, decode `seq` of `instance`, into `dir` as a PNG and
/// appends its manifest line (creating the manifest if [`start`] did not).
/// Returns the picture's path.
pub fn record(dir: &Path, instance: u32, seq: u64, frame: &Decoded) -> io::Result<PathBuf> {
    let name = file_name(instance, seq);
    let path = dir.join(&name);
    let mut out = BufWriter::new(File::create(&path)?);
    encode_png(frame, &mut out).map_err(io::Error::other)?;
    out.flush()?;
    let line = format!(
        "{instance}\t{seq}\t{}\t{}\t{}\t{:016x}\t{name}\n",
        frame.width,
        frame.height,
        frame.channels,
        codec_clip::digest(&frame.pixels)
    );
    // One write of a whole line, in append mode: the line is complete even
    // if the backend is stopped right after.
    OpenOptions::new().create(true).append(true).open(dir.join(MANIFEST))?.write_all(line.as_bytes())?;
    Ok(path)
}
