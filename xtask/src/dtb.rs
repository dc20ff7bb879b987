//! Board trees: QEMU's own tree for a machine configuration, with the
//! board's overlay applied (QEMU never writes a restricted-dma-pool node).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::{Board, Variant};
use crate::setup::Qemu;
use crate::{Result, bail, paths, run_command};

/// Dumps QEMU's tree for `board`/`variant` and applies the board's overlay
/// (`boards/<board>/overlay.dts`). Returns the final tree's path.
pub fn board_tree(qemu: &Qemu, board: &Board, variant: Variant) -> Result<PathBuf> {
    let dir = paths::out_dir().join("dtb");
    fs::create_dir_all(&dir)?;
    let base = dir.join(format!("{}-{}-qemu.dtb", board.name, variant.label()));
    let output = Command::new(&qemu.binary)
        .args(board.machine_args(variant))
        .args(["-display", "none", "-machine"])
        .arg(format!("dumpdtb={}", base.display()))
        .output()
        .map_err(|error| crate::Error(format!("cannot start {}: {error}", qemu.binary.display())))?;
    if !output.status.success() || !base.exists() {
        bail!("QEMU could not dump its tree: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let overlay_source = board.dir().join("overlay.dts");
    if !overlay_source.exists() {
        return Ok(base);
    }
    let overlay = dir.join(format!("{}-overlay.dtbo", board.name));
    compile_overlay(&overlay_source, &overlay)?;
    let tree = dir.join(format!("{}-{}.dtb", board.name, variant.label()));
    run_command(Command::new("fdtoverlay").arg("-i").arg(&base).arg("-o").arg(&tree).arg(&overlay))?;
    Ok(tree)
}

fn compile_overlay(source: &Path, output: &Path) -> Result<()> {
    let result = Command::new("dtc")
        .args(["-q", "-@", "-I", "dts", "-O", "dtb", "-o"])
        .arg(output)
        .arg(source)
        .output()
        .map_err(|error| crate::Error(format!("cannot run dtc (package device-tree-compiler): {error}")))?;
    if !result.status.success() {
        bail!("dtc rejected {}: {}", source.display(), String::from_utf8_lossy(&result.stderr).trim());
    }
    Ok(())
}
