//! Links guest images (the examples) with the board's linker script.
//!
//! Only images built for the bare-metal target get a script: host builds of
//! the library (unit tests) link normally.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=TIDEPOOL_BOARD");
    println!("cargo:rerun-if-changed=linker");
    println!("cargo::rustc-check-cfg=cfg(tidepool_board, values(\"qemu-virt\"))");
    println!("cargo::rustc-check-cfg=cfg(tidepool_builtin_dtb)");
    embed_builtin_tree();
    let board = env::var("TIDEPOOL_BOARD").unwrap_or_else(|_| "qemu-virt".into());
    println!("cargo:rustc-cfg=tidepool_board=\"{board}\"");
    let target = env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-none") && !target.ends_with("-none-softfloat") {
        return;
    }
    let linker_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("linker");
    let script = linker_dir.join(format!("{board}.ld"));
    if !script.exists() {
        panic!("TIDEPOOL_BOARD={board}: no linker script {}", script.display());
    }
    write_codec_clip();
    // The board script INCLUDEs image.ld, found through the search path.
    println!("cargo:rustc-link-arg-examples=-L{}", linker_dir.display());
    println!("cargo:rustc-link-arg-examples=-T{}", script.display());
    // A static PIE: no interpreter, and .rela.dyn for the entry code to
    // apply. Our crates are built with relocation-model=pie
    // (.cargo/config.toml), but the prebuilt core and alloc of the
    // aarch64-unknown-none target are not: their constants hold absolute
    // pointers in .rodata, hence `-z notext` (the entry code relocates
    // through the writable boot map, before the final map makes them
    // read-only). No RELRO segment: the final map does that part itself.
    for arg in ["-pie", "--no-dynamic-linker", "-z", "notext", "-z", "norelro"] {
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

/// A device tree built into the image (`$TIDEPOOL_BUILTIN_DTB`), for
/// loaders that pass none (x0 = 0): the board supplies the tree.
fn embed_builtin_tree() {
    println!("cargo:rerun-if-env-changed=TIDEPOOL_BUILTIN_DTB");
    let Some(path) = env::var_os("TIDEPOOL_BUILTIN_DTB") else {
        return;
    };
    println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("builtin.dtb");
    std::fs::copy(&path, &out)
        .unwrap_or_else(|error| panic!("TIDEPOOL_BUILTIN_DTB={}: {error}", PathBuf::from(&path).display()));
    println!("cargo:rustc-cfg=tidepool_builtin_dtb");
}
