//! `index.html` for `cargo xtask run --dump-frames DIR`: a contact sheet of
//! the frames the backend decoded, each with its number, size and the
//! guest's verdict.
//!
//! Where the verdict comes from: the guest, because only the guest knows
//! what a frame should be (the reference digests are embedded in its image;
//! the backend decodes whatever it is given). The guest already prints one
//! line per frame on its console (`frame   3: ... digest D verified`, or
//! `frame   3: <why>`), and the console reaches xtask, not the backend. So
//! the backend writes the pictures and a manifest (`frames.tsv`:
//! instance, seq, size, channels, pixel digest, file; see
//! host/hostmem-backend/src/subdevice/dump.rs), and xtask, which holds the
//! console once the run is over, joins the two here. That needs no change
//! to the guest and no channel from guest to backend.
//!
//! The join: the demo plays frame N as the (N+1)-th notification of the
//! instance its `codec: instance I` line names (the driver numbers an
//! instance's notifications 1, 2, ...), so frame N is the manifest's
//! (I, N+1). It is checked, not trusted: a verified frame whose picture has
//! another digest or size than the guest printed is shown as a mismatch,
//! and pictures no guest line claims are listed as such.
//!
//! This file uses only std: the QEMU test in tests/frame_dump.rs includes
//! it as a module, to write the sheet exactly as `cargo xtask run` does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The backend's manifest in the dump directory (`dump::MANIFEST` there).
pub const MANIFEST: &str = "frames.tsv";
/// The sheet's name in the dump directory.
pub const INDEX: &str = "index.html";

/// One manifest line: a picture the backend wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub instance: u32,
    pub seq: u64,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    /// FNV-1a of the pixels, as the guest computes it.
    pub digest: u64,
    /// File name inside the dump directory.
    pub file: String,
}

/// Reads the manifest's lines; comment lines and lines that do not parse
/// (a line cut short by a killed backend) are left out.
pub fn parse_manifest(text: &str) -> Vec<Picture> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [instance, seq, width, height, channels, digest, file] = fields.as_slice() else {
                return None;
            };
            // Our own file names only: never a path out of the directory.
            if file.is_empty() || file.contains('/') || file.starts_with('.') {
                return None;
            }
            Some(Picture {
                instance: instance.parse().ok()?,
                seq: seq.parse().ok()?,
                width: width.parse().ok()?,
                height: height.parse().ok()?,
                channels: channels.parse().ok()?,
                digest: u64::from_str_radix(digest, 16).ok()?,
                file: file.to_string(),
            })
        })
        .collect()
}

/// What the guest said of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `frame N: C -> WxHxCH (B bytes), digest D verified`.
    Verified { width: u32, height: u32, channels: u8, digest: u64 },
    /// `frame N: <why>`: the host failed it, or it did not match.
    Failed(String),
}

/// The guest's console, as far as the sheet needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// From `codec: instance I, ...`.
    pub instance: Option<u32>,
    /// Per-frame lines, in the order printed.
    pub frames: Vec<(u32, Verdict)>,
    /// The `codec: summary: ...` line, without its prefix.
    pub summary: Option<String>,
}

/// Reads the codec demo's lines out of a console (other lines are ignored).
pub fn parse_console(console: &str) -> GuestReport {
    let mut report = GuestReport::default();
    for line in console.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("codec: instance ") {
            report.instance = rest.split(',').next().and_then(|id| id.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("codec: summary: ") {
            report.summary = Some(rest.to_string());
        } else if let Some((frame, verdict)) = frame_line(line) {
            report.frames.push((frame, verdict));
        }
    }
    report
}

/// `frame %3d: ...` (codec_demo's `finish_oldest`).
fn frame_line(line: &str) -> Option<(u32, Verdict)> {
    let (number, rest) = line.strip_prefix("frame ")?.split_once(": ")?;
    let frame = number.trim().parse().ok()?;
    Some((frame, verified(rest).unwrap_or_else(|| Verdict::Failed(rest.to_string()))))
}

/// `C -> WxHxCH (B bytes), digest D verified`.
fn verified(rest: &str) -> Option<Verdict> {
    let (shape, digest) = rest.strip_suffix(" verified")?.split_once(", digest ")?;
    let (_, shape) = shape.split_once(" -> ")?;
    let dims = shape.split_whitespace().next()?;
    let mut parts = dims.split('x');
    let (width, height, channels) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Verdict::Verified {
        width: width.parse().ok()?,
        height: height.parse().ok()?,
        channels: channels.parse().ok()?,
        digest: u64::from_str_radix(digest, 16).ok()?,
    })
}

/// One entry of the sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The guest's frame number, if a guest line names this entry.
    pub frame: Option<u32>,
    pub picture: Option<Picture>,
    pub result: Outcome,
}

/// What the sheet says of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest verified the frame and the picture has the digest it
    /// verified.
    Verified,
    /// The guest reported the frame as failed, with its reason.
    Failed(String),
    /// The guest verified a frame, but the picture at its place differs.
    Mismatch(String),
    /// A picture no guest line speaks for (a run cut short, or an image
    /// that prints no per-frame lines, such as codec_bench).
    NoVerdict,
}

impl Outcome {
    fn label(&self) -> (&'static str, String) {
        match self {
            Outcome::Verified => ("ok", "verified".to_string()),
            Outcome::Failed(why) => ("bad", format!("failed: {why}")),
            Outcome::Mismatch(why) => ("bad", format!("mismatch: {why}")),
            Outcome::NoVerdict => ("none", "no result from the guest".to_string()),
        }
    }
}

/// Joins the pictures with the guest's verdicts (see the module doc):
/// one entry per guest frame line, in the guest's order, then the pictures
/// no line claims, in manifest order.
pub fn join(pictures: &[Picture], report: &GuestReport) -> Vec<Entry> {
    let mut claimed = vec![false; pictures.len()];
    let mut entries = Vec::new();
    for (frame, verdict) in &report.frames {
        let place = report.instance.and_then(|instance| {
            let seq = u64::from(*frame) + 1;
            pictures.iter().position(|p| p.instance == instance && p.seq == seq)
        });
        if let Some(index) = place {
            claimed[index] = true;
        }
        let picture = place.map(|index| pictures[index].clone());
        let result = match (verdict, &picture) {
            (Verdict::Failed(why), _) => Outcome::Failed(why.clone()),
            (Verdict::Verified { .. }, None) => {
                Outcome::Mismatch("the guest verified it, but no picture was written".into())
            }
            (Verdict::Verified { width, height, channels, digest }, Some(picture)) => {
                if (picture.width, picture.height, picture.channels) != (*width, *height, *channels) {
                    Outcome::Mismatch(format!(
                        "the guest verified {width}x{height}x{channels}, the picture is {}x{}x{}",
                        picture.width, picture.height, picture.channels
                    ))
                } else if picture.digest != *digest {
                    Outcome::Mismatch(format!(
                        "the guest verified digest {digest:016x}, the picture has {:016x}",
                        picture.digest
                    ))
                } else {
                    Outcome::Verified
                }
            }
        };
        entries.push(Entry { frame: Some(*frame), picture, result });
    }
    for (picture, _) in pictures.iter().zip(&claimed).filter(|(_, claimed)| !**claimed) {
        entries.push(Entry { frame: None, picture: Some(picture.clone()), result: Outcome::NoVerdict });
    }
    entries
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn channels_name(channels: u8) -> &'static str {
    match channels {
        3 => "RGB",
        4 => "RGBA",
        _ => "?",
    }
}

/// The sheet: a header with the guest's summary and counts, then one card
/// per entry with the picture (if any), the frame number, the size and the
/// result.
pub fn render(entries: &[Entry], summary: Option<&str>) -> String {
    let count = |class: &str| entries.iter().filter(|entry| entry.result.label().0 == class).count();
    let pictures = entries.iter().filter(|entry| entry.picture.is_some()).count();
    let mut html = String::new();
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Tidepool codec frames</title>\n<style>\n\
         body { font-family: sans-serif; margin: 1em; background: #fafafa; }\n\
         .sheet { display: flex; flex-wrap: wrap; gap: 12px; }\n\
         figure { margin: 0; padding: 6px; background: #fff; border: 3px solid #ccc; }\n\
         figure.ok { border-color: #2a2; } figure.bad { border-color: #d22; } figure.none { border-color: #999; }\n\
         figure img { display: block; max-width: 320px; height: auto; image-rendering: pixelated; }\n\
         figcaption { font-size: 13px; margin-top: 4px; max-width: 320px; }\n\
         .result { font-weight: bold; } .ok .result { color: #181; } .bad .result { color: #b11; }\n\
         .missing { width: 160px; height: 120px; display: flex; align-items: center; justify-content: center; \
         background: #eee; color: #666; }\n\
         </style>\n</head>\n<body>\n<h1>Tidepool codec frames</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>{} frames: {} verified, {} failed or mismatched, {} without a result from the guest; {} pictures.</p>",
        entries.len(),
        count("ok"),
        count("bad"),
        count("none"),
        pictures
    );
    if let Some(summary) = summary {
        let _ = writeln!(html, "<p>Guest: <code>codec: summary: {}</code></p>", escape(summary));
    }
    html.push_str("<div class=\"sheet\">\n");
    for entry in entries {
        let (class, result) = entry.result.label();
        let title = match entry.frame {
            Some(frame) => format!("frame {frame}"),
            None => "no frame line".to_string(),
        };
        let _ = writeln!(html, "<figure class=\"{class}\">");
        match &entry.picture {
            Some(picture) => {
                let _ = writeln!(
                    html,
                    "<a href=\"{file}\"><img src=\"{file}\" width=\"{}\" height=\"{}\" alt=\"{}\"></a>",
                    picture.width,
                    picture.height,
                    escape(&title),
                    file = escape(&picture.file),
                );
            }
            None => html.push_str("<div class=\"missing\">no picture</div>\n"),
        }
        let _ = write!(html, "<figcaption><b>{}</b>", escape(&title));
        if let Some(picture) = &entry.picture {
            let _ = write!(
                html,
                " &middot; {} x {}, {} channels ({}) &middot; instance {}, seq {}",
                picture.width,
                picture.height,
                picture.channels,
                channels_name(picture.channels),
                picture.instance,
                picture.seq
            );
        }
        let _ = writeln!(html, "<br><span class=\"result\">{}</span></figcaption>\n</figure>", escape(&result));
    }
    html.push_str("</div>\n</body>\n</html>\n");
    html
}

/// What [`write`] produced.
#[derive(Debug)]
pub struct Sheet {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl Sheet {
    /// Entries the guest verified against the pictures.
    pub fn verified(&self) -> usize {
        self.entries.iter().filter(|entry| entry.result == Outcome::Verified).count()
    }

    /// Entries with a picture.
    pub fn pictures(&self) -> usize {
        self.entries.iter().filter(|entry| entry.picture.is_some()).count()
    }
}

/// Writes `dir/index.html` from `dir/frames.tsv` (missing: no pictures) and
/// the guest's `console`.
pub fn write(dir: &Path, console: &str) -> std::io::Result<Sheet> {
    let manifest = match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let report = parse_console(console);
    let entries = join(&parse_manifest(&manifest), &report);
    let path = dir.join(INDEX);
    std::fs::write(&path, render(&entries, report.summary.as_deref()))?;
    Ok(Sheet { path, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
codec: clip of 3 frames 320x240x3, 120 KiB compressed; playing 3
codec: instance 2, 4 slots in flight, input slots 45056 bytes
frame   0: 41000 -> 320x240x3 (230400 bytes), digest 00000000000000aa verified
frame   1: host answered with an error event: BadInput
frame   2: 42000 -> 320x240x3 (230400 bytes), digest 00000000000000cc verified
codec: summary: 2 verified, 1 failed, of 3 frames
tidepool: exit status 1
";

    fn picture(seq: u64, digest: u64) -> Picture {
        Picture {
            instance: 2,
            seq,
            width: 320,
            height: 240,
            channels: 3,
            digest,
            file: format!("frame-i2-s{seq:06}.png"),
        }
    }

    #[test]
    fn the_manifest_parses_and_bad_lines_are_left_out() {
        let text = "# instance\tseq\twidth\theight\tchannels\tdigest\tfile\n\
                    2\t1\t320\t240\t3\t00000000000000aa\tframe-i2-s000001.png\n\
                    2\t3\t320\t240\t3\tcc\tframe-i2-s000003.png\n\
                    2\t4\t320\t240\t3\tzz\tframe-i2-s000004.png\n\
                    2\t5\t320\t240\t3\t00\t../../etc/passwd\n\
                    2\t6\t320";
        assert_eq!(parse_manifest(text), vec![picture(1, 0xaa), picture(3, 0xcc)]);
    }

    #[test]
    fn the_console_gives_instance_verdicts_and_summary() {
        let report = parse_console(CONSOLE);
        assert_eq!(report.instance, Some(2));
        assert_eq!(report.summary.as_deref(), Some("2 verified, 1 failed, of 3 frames"));
        let verified = |digest| Verdict::Verified { width: 320, height: 240, channels: 3, digest };
        assert_eq!(
            report.frames,
            vec![
                (0, verified(0xaa)),
                (1, Verdict::Failed("host answered with an error event: BadInput".into())),
                (2, verified(0xcc)),
            ]
        );
        // A mismatch line is a failure with the guest's words.
        let report = parse_console("frame  12: digest 1, expected 2: MISMATCH\n");
        assert_eq!(report.frames, vec![(12, Verdict::Failed("digest 1, expected 2: MISMATCH".into()))]);
    }

    #[test]
    fn frames_join_their_pictures_and_disagreements_show() {
        // Frame 1 failed (no picture), frame 2's picture has another digest
        // than the guest verified, seq 9 is a picture no line claims.
        let pictures = [picture(1, 0xaa), picture(3, 0xdd), picture(9, 0x11)];
        let entries = join(&pictures, &parse_console(CONSOLE));
        let results: Vec<_> = entries.iter().map(|entry| (entry.frame, entry.result.clone())).collect();
        assert_eq!(
            results,
            vec![
                (Some(0), Outcome::Verified),
                (Some(1), Outcome::Failed("host answered with an error event: BadInput".into())),
                (
                    Some(2),
                    Outcome::Mismatch(
                        "the guest verified digest 00000000000000cc, the picture has 00000000000000dd".into()
                    )
                ),
                (None, Outcome::NoVerdict),
            ]
        );
        assert_eq!(entries[0].picture, Some(pictures[0].clone()));
        assert_eq!(entries[1].picture, None);
        assert_eq!(entries[3].picture, Some(pictures[2].clone()));
        // Without the instance line nothing is claimed.
        let entries = join(&pictures, &parse_console("frame   0: 1 -> 320x240x3 (1 bytes), digest aa verified\n"));
        assert_eq!(entries.len(), 4);
        assert!(matches!(entries[0].result, Outcome::Mismatch(_)));
    }

    #[test]
    fn the_sheet_shows_numbers_sizes_and_results_escaped() {
        let console = CONSOLE.replace("BadInput", "<script>alert('x')</script> & \"more\"");
        let pictures = [picture(1, 0xaa), picture(3, 0xcc), Picture { channels: 4, ..picture(7, 0x77) }];
        let entries = join(&pictures, &parse_console(&console));
        let html = render(&entries, parse_console(&console).summary.as_deref());
        assert!(html.starts_with("<!DOCTYPE html>"));
        for needle in [
            "<b>frame 0</b>",
            "<b>frame 1</b>",
            "<b>frame 2</b>",
            "<img src=\"frame-i2-s000001.png\" width=\"320\" height=\"240\"",
            "320 x 240, 3 channels (RGB)",
            "320 x 240, 4 channels (RGBA)",
            "<span class=\"result\">verified</span>",
            "<b>no frame line</b>",
            "no result from the guest",
            "<div class=\"missing\">no picture</div>",
            "4 frames: 2 verified, 1 failed or mismatched, 1 without a result from the guest; 3 pictures.",
            "codec: summary: 2 verified, 1 failed, of 3 frames",
            "failed: host answered with an error event: \
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;",
        ] {
            assert!(html.contains(needle), "missing {needle:?} in\n{html}");
        }
        assert!(!html.contains("<script>"), "unescaped guest text");
        assert_eq!(html.matches("<figure ").count(), 4);
    }

    #[test]
    fn write_reads_the_manifest_beside_it() {
        let dir = std::env::temp_dir().join(format!("tidepool-sheet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // No manifest: the guest's lines alone.
        let sheet = write(&dir, CONSOLE).unwrap();
        assert_eq!((sheet.entries.len(), sheet.pictures(), sheet.verified()), (3, 0, 0));
        std::fs::write(
            dir.join(MANIFEST),
            "# columns\n2\t1\t320\t240\t3\taa\tframe-i2-s000001.png\n2\t3\t320\t240\t3\tcc\tframe-i2-s000003.png\n",
        )
        .unwrap();
        let sheet = write(&dir, CONSOLE).unwrap();
        assert_eq!((sheet.entries.len(), sheet.pictures(), sheet.verified()), (3, 2, 2));
        assert_eq!(sheet.path, dir.join(INDEX));
        assert!(std::fs::read_to_string(&sheet.path).unwrap().contains("frame-i2-s000003.png"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
