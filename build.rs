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
    // The board script INCLUDEs image.ld, found through the search path.
    println!("cargo:rustc-link-arg-examples=-L{}", linker_dir.display());
    println!("cargo:rustc-link-arg-examples=-T{}", script.display());
}
