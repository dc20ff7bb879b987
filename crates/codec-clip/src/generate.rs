//! Making clips: procedural frames, user images, QOI encoding, the blob.

use std::path::Path;

use super::{ENTRY_SIZE, HEADER_SIZE, MAGIC, digest};

/// Raw frames of one size and channel count.
#[derive(Clone, Debug)]
pub struct RawClip {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per pixel: 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    /// Each frame's pixels, row by row, `width * height * channels` bytes.
    pub frames: Vec<Vec<u8>>,
}

/// A moving procedural clip: a drifting colour field, two orbiting discs and
/// a little per-frame noise, so QOI has real work (runs, diffs and literal
/// pixels) and no two frames are alike.
pub fn procedural(count: usize, width: u32, height: u32) -> RawClip {
    let frames = (0..count).map(|index| procedural_frame(index as u32, width, height)).collect();
    RawClip { width, height, channels: 3, frames }
}

fn procedural_frame(index: u32, width: u32, height: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    let t = index as f32 * 0.15;
    let discs = [
        ((width as f32) * (0.5 + 0.35 * (t).cos()), (height as f32) * (0.5 + 0.35 * (t * 1.3).sin()), 38.0),
        ((width as f32) * (0.5 + 0.3 * (t * 0.7 + 2.0).sin()), (height as f32) * (0.5 + 0.3 * (t + 1.0).cos()), 24.0),
    ];
    let mut noise = 0x9e37_79b9_u32 ^ index.wrapping_mul(0x85eb_ca6b);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32, y as f32);
            let mut r = 128.0 + 100.0 * ((fx * 0.031 + t).sin() * (fy * 0.023 - t * 0.5).cos());
            let mut g = 128.0 + 100.0 * ((fx + fy) * 0.017 + t * 1.7).sin();
            let mut b = ((x / 16 + y / 16 + index) % 2 * 60 + 60) as f32;
            for (i, &(cx, cy, radius)) in discs.iter().enumerate() {
                if (fx - cx).powi(2) + (fy - cy).powi(2) < radius * radius {
                    (r, g, b) = if i == 0 { (240.0, 220.0, 40.0) } else { (30.0, 60.0, 230.0) };
                }
            }
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let jitter = (noise & 7) as f32 - 3.5;
            pixels.extend([r, g, b].map(|c| (c + jitter).clamp(0.0, 255.0) as u8));
        }
    }
    pixels
}

/// Loads every `.qoi`, `.png` and binary `.ppm` (P6) file of `dir`, sorted
/// by name. All must share one size; PNGs with alpha keep it.
pub fn load_dir(dir: &Path) -> Result<RawClip, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("qoi" | "png" | "ppm")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no .qoi, .png or .ppm files", dir.display()));
    }
    let mut clip: Option<RawClip> = None;
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (width, height, channels, pixels) = match path.extension().and_then(|e| e.to_str()) {
            Some("qoi") => {
                let (header, pixels) = qoi::decode_to_vec(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                (header.width, header.height, header.channels.as_u8(), pixels)
            }
            Some("png") => decode_png(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            _ => decode_ppm(&bytes).ok_or_else(|| format!("{}: not a binary (P6) 8-bit PPM", path.display()))?,
        };
        let clip = clip.get_or_insert_with(|| RawClip { width, height, channels, frames: Vec::new() });
        if (clip.width, clip.height, clip.channels) != (width, height, channels) {
            return Err(format!(
                "{}: {width}x{height}x{channels} differs from the first image's {}x{}x{}",
                path.display(),
                clip.width,
                clip.height,
                clip.channels
            ));
        }
        clip.frames.push(pixels);
    }
    clip.ok_or_else(|| "no frames".into())
}

fn decode_png(bytes: &[u8]) -> Result<(u32, u32, u8, Vec<u8>), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut pixels = vec![0; reader.output_buffer_size().ok_or("image too large")?];
    let info = reader.next_frame(&mut pixels).map_err(|e| e.to_string())?;
    pixels.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => return Err(format!("colour type {other:?} (want RGB or RGBA)")),
    };
    Ok((info.width, info.height, channels, pixels))
}

fn decode_ppm(bytes: &[u8]) -> Option<(u32, u32, u8, Vec<u8>)> {
    let text_end = bytes.len().min(64);
    let header = std::str::from_utf8(&bytes[..text_end]).ok().or_else(|| {
        // The header is ASCII; pixels may not be. Take the longest valid prefix.
        let valid = std::str::from_utf8(&bytes[..text_end]).err()?.valid_up_to();
        std::str::from_utf8(&bytes[..valid]).ok()
    })?;
    let mut fields = header.split_ascii_whitespace();
    if fields.next()? != "P6" {
        return None;
    }
    let width: u32 = fields.next()?.parse().ok()?;
    let height: u32 = fields.next()?.parse().ok()?;
    if fields.next()? != "255" {
        return None;
    }
    // Four fields and their separators, then one whitespace byte.
    let mut seen = 0;
    let mut start = 0;
    let mut in_field = false;
    for (i, &b) in bytes.iter().enumerate() {
        let space = b.is_ascii_whitespace();
        if !space && !in_field {
            in_field = true;
        } else if space && in_field {
            in_field = false;
            seen += 1;
            if seen == 4 {
                start = i + 1;
                break;
            }
        }
    }
    let len = (width as usize).checked_mul(height as usize)?.checked_mul(3)?;
    let pixels = bytes.get(start..start.checked_add(len)?)?.to_vec();
    Some((width, height, 3, pixels))
}

/// Encodes every frame with QOI and builds the clip blob.
pub fn build_blob(clip: &RawClip) -> Result<Vec<u8>, String> {
    let encoded: Vec<Vec<u8>> = clip
        .frames
        .iter()
        .map(|pixels| qoi::encode_to_vec(pixels, clip.width, clip.height).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut blob = Vec::new();
    blob.extend_from_slice(MAGIC);
    for value in [clip.frames.len() as u32, clip.width, clip.height, u32::from(clip.channels)] {
        blob.extend_from_slice(&value.to_le_bytes());
    }
    let mut offset = (HEADER_SIZE + ENTRY_SIZE * clip.frames.len()) as u64;
    for (pixels, qoi) in clip.frames.iter().zip(&encoded) {
        blob.extend_from_slice(&offset.to_le_bytes());
        blob.extend_from_slice(&(qoi.len() as u64).to_le_bytes());
        blob.extend_from_slice(&digest(pixels).to_le_bytes());
        offset += qoi.len() as u64;
    }
    for qoi in encoded {
        blob.extend_from_slice(&qoi);
    }
    Ok(blob)
}

/// Writes a binary PPM (P6) or, for RGBA, a PAM, so a person can look at it.
pub fn write_viewable(path: &Path, width: u32, height: u32, channels: u8, pixels: &[u8]) -> std::io::Result<()> {
    let mut out = if channels == 4 {
        format!("P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n").into_bytes()
    } else {
        format!("P6\n{width} {height}\n255\n").into_bytes()
    };
    out.extend_from_slice(pixels);
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::super::Clip;
    use super::*;

    #[test]
    fn a_procedural_clip_round_trips_through_the_blob() {
        let clip = procedural(4, 64, 48);
        let blob = build_blob(&clip).unwrap();
        let parsed = Clip::parse(&blob).unwrap();
        assert_eq!((parsed.frames, parsed.width, parsed.height, parsed.channels), (4, 64, 48, 3));
        for index in 0..4 {
            let frame = parsed.frame(index).unwrap();
            let (_, pixels) = qoi::decode_to_vec(frame.qoi).unwrap();
            assert_eq!(digest(&pixels), frame.digest);
            assert_eq!(pixels, clip.frames[index as usize]);
        }
        assert_ne!(clip.frames[0], clip.frames[1], "frames must move");
    }

    #[test]
    fn frames_are_not_trivially_compressible() {
        let clip = procedural(2, 320, 240);
        let qoi = qoi::encode_to_vec(&clip.frames[1], 320, 240).unwrap();
        let ratio = clip.frames[1].len() as f64 / qoi.len() as f64;
        assert!(ratio < 4.0, "QOI compresses the frame {ratio:.1}x: too easy");
        assert!(ratio > 1.05, "QOI cannot compress the frame at all ({ratio:.2}x)");
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let blob = build_blob(&procedural(2, 16, 16)).unwrap();
        assert_eq!(Clip::parse(&blob[..10]).unwrap_err(), super::super::ClipError::Truncated);
        let mut bad = blob.clone();
        bad[0] = b'X';
        assert_eq!(Clip::parse(&bad).unwrap_err(), super::super::ClipError::BadMagic);
        let mut bad = blob.clone();
        bad[HEADER_SIZE..HEADER_SIZE + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Clip::parse(&bad).unwrap_err(), super::super::ClipError::BadEntry { index: 0 });
        for len in 0..blob.len() {
            let _ = Clip::parse(&blob[..len]);
        }
    }

    #[test]
    fn ppm_and_png_directories_load() {
        let dir = std::env::temp_dir().join(format!("codec-clip-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clip = procedural(2, 8, 4);
        write_viewable(&dir.join("a.ppm"), 8, 4, 3, &clip.frames[0]).unwrap();
        std::fs::write(dir.join("b.qoi"), qoi::encode_to_vec(&clip.frames[1], 8, 4).unwrap()).unwrap();
        let loaded = load_dir(&dir).unwrap();
        assert_eq!(loaded.frames, clip.frames);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
