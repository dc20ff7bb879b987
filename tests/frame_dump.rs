//! `cargo xtask run --dump-frames DIR` under QEMU: the codec demo plays
//! with the backend dumping every decoded frame, and the contact sheet is
//! written from the dump and the guest's console as xtask writes it.

mod common;

// The module `cargo xtask run` writes the sheet with (std only; the xtask
// binary declares it, the library does not).
#[allow(dead_code)]
#[path = "../xtask/src/contact_sheet.rs"]
mod contact_sheet;

use std::path::PathBuf;

use xtask::backend::BackendSpec;
use xtask::board::Variant;
use xtask::image::ImageBuild;

/// Width and height from a PNG's IHDR chunk, which must come first.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let signature: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(signature) || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

/// Runs the codec demo with the backend dumping into a fresh temp dir
/// `name` (plus `extra` backend arguments); returns the dir, the console
/// outcome and the PNGs written, sorted.
fn play_with_dump(name: &str, extra: &[&str]) -> (PathBuf, xtask::run::Outcome, Vec<PathBuf>) {
    let dir = std::env::temp_dir().join(format!("tidepool-frame-dump-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut backend = BackendSpec::default();
    backend.args.extend(["--dump-frames".to_string(), dir.display().to_string()]);
    backend.args.extend(extra.iter().map(|arg| arg.to_string()));
    let outcome = common::boot_with_backend(ImageBuild::new("codec_demo"), Variant::default(), &[], &backend);
    let mut pngs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    pngs.sort();
    (dir, outcome, pngs)
}

#[test]
fn the_codec_demo_dumps_every_frame_as_png_with_a_contact_sheet() {
    let (dir, outcome, pngs) = play_with_dump("all", &[]);
    common::assert_codec_demo_zero_copy(&outcome);
    assert_eq!(pngs.len(), 30, "one PNG per frame: {pngs:?}");
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(png_size(&bytes), Some((320, 240)), "{} is not a 320x240 PNG", png.display());
    }

    let sheet = contact_sheet::write(&dir, &outcome.console).unwrap();
    assert_eq!((sheet.entries.len(), sheet.pictures(), sheet.verified()), (30, 30, 30), "{:?}", sheet.entries);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(html.matches("<figure class=\"ok\">").count(), 30);
    for png in &pngs {
        let name = png.file_name().unwrap().to_str().unwrap();
        assert!(html.contains(&format!("<img src=\"{name}\"")), "{name} not on the sheet");
    }
    assert!(html.contains("<b>frame 29</b> &middot; 320 x 240, 3 channels (RGB)"), "{html}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_frame_the_host_failed_is_on_the_sheet_without_a_picture() {
    let (dir, outcome, pngs) = play_with_dump("fault", &["--fault", "corrupt-frame=5"]);
    assert!(outcome.has_line("codec: summary: 29 verified, 1 failed, of 30 frames"), "{}", outcome.console);
    assert_eq!(pngs.len(), 29, "no picture of the failed decode: {pngs:?}");
    let sheet = contact_sheet::write(&dir, &outcome.console).unwrap();
    assert_eq!((sheet.entries.len(), sheet.pictures(), sheet.verified()), (30, 29, 29), "{:?}", sheet.entries);
    let failed = &sheet.entries[4];
    assert_eq!(failed.frame, Some(4));
    assert_eq!(failed.picture, None);
    assert_eq!(failed.result, contact_sheet::Outcome::Failed("host answered with an error event: BadInput".into()));
    let html = std::fs::read_to_string(&sheet.path).unwrap();
    assert_eq!(html.matches("<figure class=\"bad\">").count(), 1);
    assert!(html.contains("failed: host answered with an error event: BadInput"), "{html}");
    std::fs::remove_dir_all(&dir).unwrap();
}
