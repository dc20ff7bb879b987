//! Points `src/board.rs` at the board's constants and hands images the
//! board's linker script.
//!
//! A board is a folder, `boards/<name>/`: `board.rs` (constants the runtime
//! needs before discovery), `link.ld` (the image's memory; it INCLUDEs the
//! shared `linker/image.ld`), and the launcher's `board.toml`. It is chosen
//! by the Cargo feature `board-<name>` (what a crate that depends on the
//! runtime uses: it is listed in the runtime's Cargo.toml, where a user
//! looks), else by `TIDEPOOL_BOARD` (what xtask sets for the images in this
//! repository), else `qemu-virt`.
//!
//! Only images built for the bare-metal target get a script; host builds
//! of the library (unit tests) link normally. The script reaches images
//! three ways: this package's examples get `-T` directly; a crate that
//! depends on the runtime passes `-Ttidepool.ld` itself (one link argument
//! in its `.cargo/config.toml`), found through the link search path this
//! script adds, as cortex-m-rt's `link.x` is; packages in this workspace
//! with images of their own (demos/) get the paths as `DEP_TIDEPOOL_*`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=TIDEPOOL_BOARD");
    println!("cargo:rerun-if-changed=linker");
    println!("cargo::rustc-check-cfg=cfg(tidepool_builtin_dtb)");
    embed_builtin_tree();
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let board = chosen_board(&manifest_dir);
    let board_dir = manifest_dir.join("boards").join(&board);
    println!("cargo:rerun-if-changed={}", board_dir.display());
    let constants = board_dir.join("board.rs");
    if !constants.exists() {
        panic!("TIDEPOOL_BOARD={board}: no {} (a board is a folder boards/<name>/)", constants.display());
    }
    println!("cargo:rustc-env=TIDEPOOL_BOARD_CONSTANTS={}", constants.display());
    let target = env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-none") && !target.ends_with("-none-softfloat") {
        return;
    }
    let script = board_dir.join("link.ld");
    if !script.exists() {
        panic!("TIDEPOOL_BOARD={board}: no linker script {}", script.display());
    }
    // The board script INCLUDEs image.ld, found through the search path.
    println!("cargo:rustc-link-arg-examples=-L{}", manifest_dir.join("linker").display());
    println!("cargo:rustc-link-arg-examples=-T{}", script.display());
    // For crates that depend on the runtime: `-Ttidepool.ld` finds the
    // board's script, and it finds image.ld, in OUT_DIR (a dependency's
    // link search paths reach the final link; its link arguments do not).
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let copy = |from: &std::path::Path, to: &str| {
        std::fs::copy(from, out_dir.join(to)).unwrap_or_else(|error| panic!("{}: {error}", from.display()));
    };
    copy(&script, "tidepool.ld");
    copy(&manifest_dir.join("linker").join("image.ld"), "image.ld");
    println!("cargo:rustc-link-search={}", out_dir.display());
    // A static PIE: no interpreter, and .rela.dyn for the entry code to
    // apply. Our crates are built with relocation-model=pie
    // (.cargo/config.toml), but the prebuilt core and alloc of the
    // aarch64-unknown-none target are not: their constants hold absolute
    // pointers in .rodata, hence `-z notext` (the entry code relocates
    // through the writable boot map, before the final map makes them
    // read-only). No RELRO segment: the final map does that part itself.
    const PIE_LINK_ARGS: [&str; 6] = ["-pie", "--no-dynamic-linker", "-z", "notext", "-z", "norelro"];
    for arg in PIE_LINK_ARGS {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    // Packages with images of their own (demos/) link them the same way:
    // their build scripts get these as DEP_TIDEPOOL_LINKER_DIR, _SCRIPT and
    // _LINK_ARGS.
    println!("cargo::metadata=linker_dir={}", manifest_dir.join("linker").display());
    println!("cargo::metadata=linker_script={}", script.display());
    println!("cargo::metadata=link_args={}", PIE_LINK_ARGS.join(" "));
}

/// The board: the one `board-<name>` feature enabled, else
/// `TIDEPOOL_BOARD`, else qemu-virt. Two board features are an error (the
/// constants of one board and the memory of another would not boot).
fn chosen_board(manifest_dir: &std::path::Path) -> String {
    println!("cargo:rerun-if-changed={}", manifest_dir.join("boards").display());
    let mut names: Vec<String> = std::fs::read_dir(manifest_dir.join("boards"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    let feature_env = |name: &str| format!("CARGO_FEATURE_BOARD_{}", name.to_uppercase().replace('-', "_"));
    let enabled: Vec<&String> = names.iter().filter(|name| env::var_os(feature_env(name)).is_some()).collect();
    match enabled.as_slice() {
        [] => env::var("TIDEPOOL_BOARD").unwrap_or_else(|_| "qemu-virt".into()),
        [one] => (*one).clone(),
        many => {
            let list: Vec<String> = many.iter().map(|name| format!("board-{name}")).collect();
            panic!("more than one board feature is enabled ({}): enable exactly one", list.join(", "))
        }
    }
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
