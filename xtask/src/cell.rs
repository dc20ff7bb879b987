//! Jailhouse cells emulated on QEMU: what a board's `[jailhouse-cell]`
//! section says, the comm region the hypervisor would write, and the shim
//! (`xtask/cell-shim`, an EL2 stand-in for Jailhouse) that starts the cell.
//!
//! The machine is QEMU virt with GICv3 and `virtualization=on` (EL2, PSCI
//! over SMC) and two CPUs; the shim starts on CPU 0, enters the image on
//! the cell's CPU at EL1 with x0 = 0, and ends QEMU with the comm region's
//! `cell_state` as exit code when the cell's CPU turns off.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, bail, paths, run_command};

/// Where shim.ld links the shim and its parameter block.
const SHIM_ADDRESS: u64 = 0x7fc0_0000;
const SHIM_PARAMS_ADDRESS: u64 = 0x7fd0_0000;
const SHIM_MAGIC: &[u8; 8] = b"TPSHIM01";

/// The comm region's fields (Jailhouse's arm64 layout, revision 2) as the
/// emulated hypervisor writes them; tests change them to play a hostile
/// hypervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommRegion {
    /// `signature` ("JHCOMM").
    pub signature: [u8; 6],
    /// `revision` (2).
    pub revision: u16,
    /// `flags` (bit 0: debug putc permitted, bit 1: active).
    pub flags: u32,
    /// `console.address`.
    pub console_address: u64,
    /// `console.type` (3: PL011).
    pub console_type: u16,
    /// `console.flags` (bit 0: MMIO).
    pub console_flags: u16,
    /// `console.divider` (0: the UART is set up and shared).
    pub console_divider: u32,
    /// `pci_mmconfig_base` (0: no virtual PCI host).
    pub pci_mmconfig_base: u64,
    /// `gic_version` (2 or 3).
    pub gic_version: u8,
    /// `gicd_base`.
    pub gicd_base: u64,
    /// `gicc_base` (GICv2 only).
    pub gicc_base: u64,
    /// `gicr_base` (GICv3 only).
    pub gicr_base: u64,
    /// `vpci_irq_base` (SPI number of the virtual PCI host's INTA).
    pub vpci_irq_base: u32,
}

impl CommRegion {
    /// The page as the hypervisor leaves it before `cell start`.
    pub fn to_page(&self) -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        let mut put = |at: usize, bytes: &[u8]| page[at..at + bytes.len()].copy_from_slice(bytes);
        put(0x00, &self.signature);
        put(0x06, &self.revision.to_le_bytes());
        put(0x14, &self.flags.to_le_bytes());
        put(0x18, &self.console_address.to_le_bytes());
        put(0x24, &self.console_type.to_le_bytes());
        put(0x26, &self.console_flags.to_le_bytes());
        put(0x28, &self.console_divider.to_le_bytes());
        put(0x38, &self.pci_mmconfig_base.to_le_bytes());
        put(0x40, &[self.gic_version]);
        put(0x48, &self.gicd_base.to_le_bytes());
        put(0x50, &self.gicc_base.to_le_bytes());
        put(0x58, &self.gicr_base.to_le_bytes());
        put(0x60, &self.vpci_irq_base.to_le_bytes());
        page
    }
}

/// A board's `[jailhouse-cell]` section.
#[derive(Clone, Debug)]
pub struct CellLaunch {
    /// MPIDR (and Jailhouse CPU id) of the cell's CPU.
    pub cpu: u64,
    /// Where the comm region's page is.
    pub comm_region_address: u64,
    /// The PL011 the cell shares with the hypervisor.
    pub uart: u64,
    /// QEMU's RAM from the board's RAM base: the cell's RAM, the comm
    /// region and the shim must all be inside.
    pub machine_ram_mib: u64,
    /// The cell's RAM (base, MiB): with the comm region and the UART page,
    /// all the shim's stage 2 maps.
    pub ram_base: u64,
    /// The cell's RAM size in MiB.
    pub ram_mib: u64,
    /// The redistributor region's size (the hardware's frames).
    pub gicr_size: u64,
    /// Buses of the virtual PCI host's ECAM window.
    pub pci_buses: u64,
    /// The comm region the shim writes before it starts the cell.
    pub comm_region: CommRegion,
}

impl CellLaunch {
    /// Reads `[jailhouse-cell]`; every key is required.
    pub fn parse(section: &toml::Table) -> Result<CellLaunch> {
        let number = |key: &str| -> Result<u64> {
            match section.get(key) {
                Some(toml::Value::Integer(value)) if *value >= 0 => Ok(*value as u64),
                _ => bail!("`jailhouse-cell.{key}` must be a non-negative integer"),
            }
        };
        let narrow = |key: &str, max: u64| -> Result<u64> {
            let value = number(key)?;
            if value > max {
                bail!("`jailhouse-cell.{key}` must be at most {max:#x}");
            }
            Ok(value)
        };
        let comm_region = CommRegion {
            signature: *b"JHCOMM",
            revision: narrow("revision", 0xffff)? as u16,
            flags: narrow("flags", 0xffff_ffff)? as u32,
            console_address: number("console-address")?,
            console_type: narrow("console-type", 0xffff)? as u16,
            console_flags: narrow("console-flags", 0xffff)? as u16,
            console_divider: narrow("console-divider", 0xffff_ffff)? as u32,
            pci_mmconfig_base: number("pci-mmconfig-base")?,
            gic_version: narrow("gic-version", 0xff)? as u8,
            gicd_base: number("gicd-base")?,
            gicc_base: number("gicc-base")?,
            gicr_base: number("gicr-base")?,
            vpci_irq_base: narrow("vpci-irq-base", 0xffff_ffff)? as u32,
        };
        let launch = CellLaunch {
            cpu: number("cpu")?,
            comm_region_address: number("comm-region")?,
            uart: comm_region.console_address,
            machine_ram_mib: number("machine-ram-mib")?,
            ram_base: number("ram-base")?,
            ram_mib: number("ram-mib")?,
            gicr_size: number("gicr-size")?,
            pci_buses: number("pci-buses")?,
            comm_region,
        };
        if launch.cpu != 1 {
            bail!("`jailhouse-cell.cpu` must be 1: the emulated machine has CPUs 0 (the shim's) and 1");
        }
        Ok(launch)
    }

    /// QEMU's machine arguments for the emulated cell.
    pub fn machine_args(&self, cpu: &str) -> Vec<String> {
        [
            "-M",
            "virt,gic-version=3,virtualization=on,its=off",
            "-cpu",
            cpu,
            "-smp",
            "2",
            "-m",
            &format!("{}M", self.machine_ram_mib),
            "-nic",
            "none",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    }

    /// The loader arguments: the raw image at `load_address` (the cell's
    /// reset address), the comm region, the shim's parameters, and the
    /// shim, where CPU 0 starts.
    pub fn loader_args(
        &self,
        image: &Path,
        load_address: u64,
        region: &CommRegion,
        tree: Option<&(PathBuf, u64)>,
    ) -> Result<Vec<String>> {
        let shim = build_shim()?;
        let dir = paths::out_dir().join("cell");
        fs::create_dir_all(&dir)?;
        let page = region.to_page();
        let mut params = Vec::new();
        params.extend_from_slice(SHIM_MAGIC);
        // What the hardware traps and maps is the board's, whatever the
        // (possibly hostile) region says.
        let board = &self.comm_region;
        let ecam_size = if board.pci_mmconfig_base == 0 { 0 } else { self.pci_buses << 20 };
        for value in [
            load_address,
            self.cpu,
            self.comm_region_address,
            self.uart,
            self.ram_base,
            self.ram_mib << 20,
            board.gicd_base,
            board.gicr_base,
            self.gicr_size,
            board.pci_mmconfig_base,
            ecam_size,
            tree.map_or(0, |(_, address)| *address),
        ] {
            params.extend_from_slice(&value.to_le_bytes());
        }
        // Named after their content, so concurrent launches never see each
        // other's files half written.
        let comm = write_by_content(&dir, "comm", &page)?;
        let params = write_by_content(&dir, "params", &params)?;
        let raw = |file: &Path, at: u64| format!("loader,file={},addr={at:#x},force-raw=on", file.display());
        let mut args = Vec::new();
        if let Some((tree, address)) = tree {
            args.extend(["-device".to_string(), raw(tree, *address)]);
        }
        args.extend([
            "-device".into(),
            raw(image, load_address),
            "-device".into(),
            raw(&comm, self.comm_region_address),
            "-device".into(),
            raw(&params, SHIM_PARAMS_ADDRESS),
            "-device".into(),
            format!("{},cpu-num=0", raw(&shim, SHIM_ADDRESS)),
        ]);
        Ok(args)
    }
}

fn write_by_content(dir: &Path, stem: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let path = dir.join(format!("{stem}-{:016x}.bin", hasher.finish()));
    if !path.exists() {
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&temporary, bytes)?;
        fs::rename(&temporary, &path)?;
    }
    Ok(path)
}

/// Builds the shim (once per xtask process) and returns its raw binary.
pub fn build_shim() -> Result<PathBuf> {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|error| error.into_inner());
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let workspace = paths::workspace();
    let target_dir = workspace.join("target").join("cell-shim");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace.join("xtask/cell-shim"))
        .args(["build", "--quiet", "--release", "--locked", "--target", "aarch64-unknown-none", "--target-dir"])
        .arg(&target_dir)
        // Linked at a fixed address (shim.ld): no PIE, whatever the
        // workspace's config asks of images.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Crelocation-model=static");
    run_command(&mut cargo)?;
    let elf = target_dir.join("aarch64-unknown-none/release/cell-shim");
    let raw = target_dir.join("cell-shim.bin");
    fs::write(&raw, crate::image::flatten(&elf, SHIM_ADDRESS)?)?;
    *built = Some(raw.clone());
    Ok(raw)
}

/// The `cell_state` the shim read back when the cell's CPU turned off (or
/// was killed): its last `cell-shim: ...; cell state N (name)` line.
pub fn cell_state(console: &str) -> Option<u32> {
    console.lines().rev().find_map(|line| {
        let rest = line.strip_prefix("cell-shim: ")?;
        let (_, state) = rest.rsplit_once("; cell state ")?;
        state.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_jailhouse_offsets_and_the_state_line_is_read_back() {
        let region = CommRegion {
            signature: *b"JHCOMM",
            revision: 2,
            flags: 0,
            console_address: 0x0900_0000,
            console_type: 3,
            console_flags: 3,
            console_divider: 0,
            pci_mmconfig_base: 0x08e0_0000,
            gic_version: 3,
            gicd_base: 0x0800_0000,
            gicc_base: 0,
            gicr_base: 0x080a_0000,
            vpci_irq_base: 112,
        };
        let page = region.to_page();
        assert_eq!(&page[..8], b"JHCOMM\x02\x00");
        assert_eq!(page[0x40], 3);
        assert_eq!(&page[0x58..0x60], &0x080a_0000u64.to_le_bytes());
        assert_eq!(&page[0x60..0x64], &112u32.to_le_bytes());
        let console = "x\ncell-shim: CPU_OFF; cell state 2 (shut down)\ncell-shim: vm exits: total 3\n";
        assert_eq!(cell_state(console), Some(2));
        assert_eq!(cell_state("tidepool: exit status 0\n"), None);
    }
}
