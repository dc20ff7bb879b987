//! The QEMU command line for booting an image on a board.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::{Board, Variant};
use crate::setup::Qemu;
use crate::{Result, bail, paths, run_command};

/// Everything needed to start one guest.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The QEMU to run.
    pub qemu: Qemu,
    /// The board's machine settings.
    pub board: &'static Board,
    /// GIC version and entry exception level.
    pub variant: Variant,
    /// The image to boot (the raw arm64 Image).
    pub image: PathBuf,
    /// The device tree to boot with.
    pub dtb: PathBuf,
    /// Extra words for /chosen/bootargs.
    pub bootargs: Vec<String>,
    /// Extra QEMU arguments (devices, chardevs).
    pub extra_args: Vec<String>,
    /// Load the raw image at this address instead of where `-kernel` puts
    /// it (RAM base + text_offset), as U-Boot's `booti` or Jailhouse may:
    /// see `Launch::loader_args`.
    pub load_address: Option<u64>,
    /// On a Jailhouse cell board: the comm region the emulated hypervisor
    /// writes (the board's, unless a test plays a hostile hypervisor).
    pub comm_region: Option<crate::cell::CommRegion>,
    /// On a Jailhouse cell board: a tree placed at this address and passed
    /// in x0, as `jailhouse cell linux` does (None: x0 = 0).
    pub cell_tree: Option<(PathBuf, u64)>,
}

impl Launch {
    /// Makes sure QEMU exists (`setup`), builds `spec` and its board's tree.
    pub fn prepare(spec: &crate::image::ImageBuild, variant: Variant, bootargs: Vec<String>) -> crate::Result<Launch> {
        let board = Board::find(&spec.board)?;
        let image = crate::image::build(spec)?;
        Self::new(board, image, variant, bootargs)
    }

    /// Makes sure QEMU exists (`setup`) and prepares `board`'s tree (or
    /// emulated cell) for the raw `image`.
    pub fn new(
        board: &'static Board,
        image: PathBuf,
        variant: Variant,
        bootargs: Vec<String>,
    ) -> crate::Result<Launch> {
        let qemu = crate::setup::setup()?;
        // A cell gets no tree: its platform is the comm region.
        let (dtb, comm_region) = match &board.cell {
            Some(cell) => (PathBuf::new(), Some(cell.comm_region.clone())),
            None => (crate::dtb::board_tree(&qemu, board, variant)?, None),
        };
        Ok(Launch {
            qemu,
            board,
            variant,
            image,
            dtb,
            bootargs,
            extra_args: Vec::new(),
            load_address: None,
            comm_region,
            cell_tree: None,
        })
    }

    /// The kernel command line: the launcher's default first, so the
    /// image's own words can override it.
    fn all_bootargs(&self) -> String {
        let mut bootargs = vec!["tidepool.exit=semihosting".to_string()];
        bootargs.extend(self.bootargs.iter().cloned());
        bootargs.join(" ")
    }

    /// The QEMU command. With a load address it writes the files the
    /// loader needs (see `Launch::loader_args`), which can fail.
    pub fn command(&self) -> Result<Command> {
        let mut command = Command::new(&self.qemu.binary);
        command.args(self.board.machine_args(self.variant));
        command.args(["-nographic", "-no-reboot"]);
        // Semihosting lets the image's exit status become QEMU's.
        command.args(["-semihosting-config", "enable=on,target=native"]);
        if let (Some(cell), Some(region)) = (&self.board.cell, &self.comm_region) {
            let address = self.load_address.unwrap_or(self.board.load_address);
            command.args(cell.loader_args(&self.image, address, region, self.cell_tree.as_ref())?);
            command.args(&self.extra_args);
            return Ok(command);
        }
        match self.load_address {
            None => {
                command.arg("-kernel").arg(&self.image);
                command.arg("-dtb").arg(&self.dtb);
                command.arg("-append").arg(self.all_bootargs());
            }
            Some(address) => {
                command.args(self.loader_args(address)?);
            }
        }
        command.args(&self.extra_args);
        Ok(command)
    }

    /// Boots like a `booti`-style loader that put the image at `address`:
    /// QEMU's generic loader copies the raw image, the tree (with the
    /// command line written into /chosen, since `-append` needs `-kernel`)
    /// and a boot stub into RAM, and starts CPU 0 in the stub, which enters
    /// the image with x0 = the tree and x1..x3 = 0, as booting.rst asks.
    /// The stub and the tree go right above the image's `image_size`.
    fn loader_args(&self, address: u64) -> Result<Vec<String>> {
        let image_size = image_size(&self.image)?;
        let ram = (self.board.ram_base, self.board.ram_base + (self.board.private_ram_mib << 20));
        if !address.is_multiple_of(4096) {
            bail!("load address {address:#x}: the image must start on a 4 KiB page boundary");
        }
        let image_end = address.saturating_add(image_size);
        let stub_address = image_end.checked_next_multiple_of(4096).unwrap_or(u64::MAX);
        let dtb_address = stub_address.saturating_add(4096);

        let dir = paths::out_dir().join("loader");
        fs::create_dir_all(&dir)?;
        let bootargs = self.all_bootargs();
        // Named after what they hold, so concurrent launches share or
        // differ as their content does.
        let mut hasher = std::hash::DefaultHasher::new();
        (&self.dtb, &bootargs, address, dtb_address, image_end).hash(&mut hasher);
        let key = format!("{:016x}", hasher.finish());
        let dtb = dir.join(format!("tree-{key}.dtb"));
        write_atomically(&dtb, |temporary| {
            fs::copy(&self.dtb, temporary)?;
            run_command(
                Command::new("fdtput").args(["-t", "s"]).arg(temporary).args(["/chosen", "bootargs", &bootargs]),
            )
        })?;
        let dtb_end = dtb_address.saturating_add(fs::metadata(&dtb)?.len());
        if address < ram.0 || dtb_end > ram.1 {
            bail!(
                "load address {address:#x}: the image ({image_size:#x} bytes with .bss and stacks), a boot stub and \
                 the device tree must fit in {}'s private RAM {:#x}..{:#x}",
                self.board.name,
                ram.0,
                ram.1
            );
        }
        let stub = dir.join(format!("stub-{key}.bin"));
        write_atomically(&stub, |temporary| Ok(fs::write(temporary, boot_stub(dtb_address, address))?))?;

        let raw = |file: &Path, at: u64| format!("loader,file={},addr={at:#x},force-raw=on", file.display());
        Ok(vec![
            "-device".into(),
            raw(&self.image, address),
            "-device".into(),
            raw(&dtb, dtb_address),
            // cpu-num: CPU 0 starts at the stub.
            "-device".into(),
            format!("{},cpu-num=0", raw(&stub, stub_address)),
        ])
    }
}

/// The image_size field of the arm64 Image header at the start of `image`:
/// the bytes from the load address the image uses (.bss and stacks too).
fn image_size(image: &Path) -> Result<u64> {
    let mut header = [0u8; 64];
    let mut file = fs::File::open(image).map_err(|e| crate::Error(format!("{}: {e}", image.display())))?;
    std::io::Read::read_exact(&mut file, &mut header)
        .map_err(|e| crate::Error(format!("{}: no arm64 Image header: {e}", image.display())))?;
    if &header[56..60] != b"ARM\x64" {
        bail!("{}: no arm64 Image header (a load address needs the raw image, not the ELF)", image.display());
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[16..24]);
    Ok(u64::from_le_bytes(size))
}

/// Five instructions and two literals: x0 = `dtb`, x1..x3 = 0, branch to
/// `entry` (booting.rst's register contract for an arm64 Image).
fn boot_stub(dtb: u64, entry: u64) -> Vec<u8> {
    let instructions: [u32; 6] = [
        0x5800_00c0, // ldr x0, #24   (the first literal)
        0xaa1f_03e1, // mov x1, xzr
        0xaa1f_03e2, // mov x2, xzr
        0xaa1f_03e3, // mov x3, xzr
        0x5800_0084, // ldr x4, #16   (the second literal)
        0xd61f_0080, // br  x4
    ];
    let mut stub: Vec<u8> = instructions.iter().flat_map(|word| word.to_le_bytes()).collect();
    stub.extend_from_slice(&dtb.to_le_bytes());
    stub.extend_from_slice(&entry.to_le_bytes());
    stub
}

/// Writes `path` through a temporary file in the same directory, so a
/// concurrent reader never sees it half written.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let result = write(&temporary).and_then(|()| Ok(fs::rename(&temporary, path)?));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_stub_loads_its_literals() {
        let stub = boot_stub(0x4130_0000, 0x4040_0000);
        assert_eq!(stub.len(), 40);
        // ldr x0 reads 24 bytes past itself, ldr x4 (at 16) 16 bytes past itself.
        assert_eq!(&stub[24..32], &0x4130_0000u64.to_le_bytes());
        assert_eq!(&stub[32..40], &0x4040_0000u64.to_le_bytes());
        let ldr = |offset: usize| u32::from_le_bytes(stub[offset..offset + 4].try_into().unwrap());
        assert_eq!((ldr(0) >> 5) & 0x7ffff, 24 / 4);
        assert_eq!((ldr(16) >> 5) & 0x7ffff, 16 / 4);
    }
}
