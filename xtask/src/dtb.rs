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
    board_tree_with(qemu, board, variant, &[])
}

/// Like [`board_tree`], then applies `extra` overlays (.dts) in order: how
/// tests make hostile or unusual trees from the real one.
pub fn board_tree_with(qemu: &Qemu, board: &Board, variant: Variant, extra: &[PathBuf]) -> Result<PathBuf> {
    let base = qemu_tree(qemu, board, variant)?;
    let dir = paths::out_dir().join("dtb");
    fs::create_dir_all(&dir)?;
    let mut sources: Vec<PathBuf> = Vec::new();
    let board_overlay = board.dir().join("overlay.dts");
    if board_overlay.exists() {
        sources.push(board_overlay);
    }
    sources.extend(extra.iter().cloned());
    if sources.is_empty() {
        return Ok(base);
    }
    let mut name = format!("{}-{}", board.name, variant.label());
    let mut overlays = Vec::new();
    for source in &sources {
        let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let compiled = dir.join(format!("{}-{stem}.dtbo", board.name));
        compile_overlay(source, &compiled)?;
        if extra.contains(source) {
            name.push('+');
            name.push_str(&stem);
        }
        overlays.push(compiled);
    }
    let tree = dir.join(format!("{name}.dtb"));
    run_command(Command::new("fdtoverlay").arg("-i").arg(&base).arg("-o").arg(&tree).args(&overlays))?;
    Ok(tree)
}

/// QEMU's own tree for `board`/`variant`, with no overlay: no DMA pools, as
/// a guest on a stock VMM would see it.
pub fn qemu_tree(qemu: &Qemu, board: &Board, variant: Variant) -> Result<PathBuf> {
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
    Ok(base)
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
