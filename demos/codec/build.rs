//! Generates the clip the codec images embed, and links the images with the
//! runtime's linker script for the board, which the `tidepool` package's
//! build script publishes (`links = "tidepool"`) for bare-metal targets only.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=TIDEPOOL_BOARD");
    let (Some(linker_dir), Some(script)) =
        (env::var_os("DEP_TIDEPOOL_LINKER_DIR"), env::var_os("DEP_TIDEPOOL_LINKER_SCRIPT"))
    else {
        // A host build (tests, clippy --all-targets): no images, no clip.
        return;
    };
    write_codec_clip();
    // The board script INCLUDEs image.ld, found through the search path.
    println!("cargo:rustc-link-arg-examples=-L{}", PathBuf::from(linker_dir).display());
    println!("cargo:rustc-link-arg-examples=-T{}", PathBuf::from(script).display());
    // The rest of how the runtime links its own images (a static PIE the
    // entry code relocates).
    let link_args = env::var("DEP_TIDEPOOL_LINK_ARGS").unwrap_or_default();
    for arg in link_args.split_whitespace() {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
}

/// The codec demo's clip, embedded in images: 30 procedural 320x240 frames,
/// or the images in `$TIDEPOOL_CODEC_FRAMES` (a directory of .qoi, .png or
/// .ppm files) when set. QOI-encoded here, with the digest of each frame's
/// pixels, so the guest can verify what the host decodes.
fn write_codec_clip() {
    println!("cargo:rerun-if-env-changed=TIDEPOOL_CODEC_FRAMES");
    let clip = match env::var_os("TIDEPOOL_CODEC_FRAMES") {
        Some(dir) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&dir).display());
            codec_clip::load_dir(&PathBuf::from(dir)).unwrap_or_else(|error| panic!("TIDEPOOL_CODEC_FRAMES: {error}"))
        }
        None => codec_clip::procedural(30, 320, 240),
    };
    let blob = codec_clip::build_blob(&clip).unwrap_or_else(|error| panic!("encoding the clip: {error}"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("codec-clip.bin");
    std::fs::write(&out, blob).unwrap_or_else(|error| panic!("{}: {error}", out.display()));
}
