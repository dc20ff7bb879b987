//! The QEMU command line for booting an image on a board.

use std::path::PathBuf;
use std::process::Command;

use crate::board::{Board, Variant};
use crate::setup::Qemu;

/// Everything needed to start one guest.
#[derive(Clone, Debug)]
pub struct Launch {
    pub qemu: Qemu,
    pub board: &'static Board,
    pub variant: Variant,
    pub image: PathBuf,
    pub dtb: PathBuf,
    /// Extra words for /chosen/bootargs.
    pub bootargs: Vec<String>,
    /// Extra QEMU arguments (devices, chardevs).
    pub extra_args: Vec<String>,
}

impl Launch {
    /// Makes sure QEMU exists (`setup`), builds `spec` and its board's tree.
    pub fn prepare(spec: &crate::image::ImageBuild, variant: Variant, bootargs: Vec<String>) -> crate::Result<Launch> {
        let board = Board::find(&spec.board)?;
        let qemu = crate::setup::setup()?;
        let image = crate::image::build(spec)?;
        let dtb = crate::dtb::board_tree(&qemu, board, variant)?;
        Ok(Launch { qemu, board, variant, image, dtb, bootargs, extra_args: Vec::new() })
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.qemu.binary);
        command.args(self.board.machine_args(self.variant));
        command.args(["-nographic", "-no-reboot"]);
        // Semihosting lets the image's exit status become QEMU's.
        command.args(["-semihosting-config", "enable=on,target=native"]);
        command.arg("-kernel").arg(&self.image);
        command.arg("-dtb").arg(&self.dtb);
        let mut bootargs = vec!["tidepool.exit=semihosting".to_string()];
        bootargs.extend(self.bootargs.iter().cloned());
        command.arg("-append").arg(bootargs.join(" "));
        command.args(&self.extra_args);
        command
    }
}
