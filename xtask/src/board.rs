//! Boards the launcher knows: QEMU settings and the overlay that adds the
//! restricted DMA pool. Each board's files live in `boards/<name>/`.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::{Result, bail, paths};

fn boards_dir() -> PathBuf {
    paths::workspace().join("boards")
}

/// Every folder of boards/ with a board.toml, sorted.
pub fn known_boards() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(boards_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("board.toml").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The interrupt controller and exception level to boot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// 2 or 3.
    pub gic_version: u8,
    /// Start at EL2 (QEMU `virtualization=on`); the image drops to EL1.
    pub el2: bool,
}

impl Default for Variant {
    fn default() -> Self {
        Variant { gic_version: 3, el2: false }
    }
}

impl Variant {
    /// A short name for reports, such as `gicv3-el1`.
    pub fn label(&self) -> String {
        format!("gicv{}-el{}", self.gic_version, if self.el2 { 2 } else { 1 })
    }
}

/// How the board attaches virtio devices (`[qemu] virtio-transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioTransport {
    /// virtio-mmio slots (`-device NAME-device`).
    Mmio,
    /// Modern virtio-pci behind the ECAM host bridge (`-device
    /// NAME-pci,disable-legacy=on`); BARs are assigned by the guest.
    Pci,
}

/// A board the launcher can start, read from `boards/<name>/board.toml`:
/// adding a board is adding its folder, with no change to this code.
#[derive(Clone, Debug)]
pub struct Board {
    /// The board's folder name.
    pub name: String,
    /// The architecture seam the image is built for (`arch` key).
    pub arch: String,
    /// The Rust target of the image (`target`).
    pub target: String,
    /// What the loader takes (`image-format`): "arm64-image", a raw binary
    /// with the arm64 Image header.
    pub image_format: String,
    /// Where the image is linked to be loaded (`load-address`); checked
    /// against the built ELF.
    pub load_address: u64,
    /// QEMU's machine and CPU (`[qemu] machine`, `cpu`).
    pub machine: String,
    /// QEMU's CPU model.
    pub cpu: String,
    /// Where the machine's RAM starts (`[memory] ram-base`); the private
    /// RAM comes first.
    pub ram_base: u64,
    /// The board images are built for (`image-board`, `TIDEPOOL_BOARD`):
    /// boards that differ only in what the tree describes share images.
    pub image_board: String,
    /// How virtio devices are attached (`[qemu] virtio-transport`).
    pub transport: VirtioTransport,
    /// Private RAM, without an fd: a vhost-user backend never sees it.
    pub private_ram_mib: u64,
    /// The DMA pool's RAM, a shared memfd: the only guest RAM a backend sees.
    pub pool_ram_mib: u64,
    /// The hostmem regions' RAM, a shared memfd the backend serves; the
    /// board overlay reserves it (no-map) so the guest never uses it as RAM.
    pub region_ram_mib: u64,
    /// A Jailhouse cell, emulated (`[jailhouse-cell]`): the image boots
    /// from the comm region under the cell shim, not from a tree.
    pub cell: Option<crate::cell::CellLaunch>,
}

/// The image formats the image builder can write.
const IMAGE_FORMATS: &[&str] = &["arm64-image"];

impl Board {
    /// The board named `name` (`boards/<name>/board.toml`), read once.
    pub fn find(name: &str) -> Result<&'static Board> {
        static CACHE: OnceLock<Mutex<HashMap<String, &'static Board>>> = OnceLock::new();
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(board) = cache.get(name) {
            return Ok(board);
        }
        let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let file = boards_dir().join(name).join("board.toml");
        if !valid_name || !file.exists() {
            bail!("unknown board `{name}` (known: {})", known_boards().join(", "));
        }
        let text = fs::read_to_string(&file)?;
        let board: &'static Board = Box::leak(Box::new(
            Self::parse(name, &text).map_err(|error| crate::Error(format!("{}: {error}", file.display())))?,
        ));
        cache.insert(name.to_string(), board);
        Ok(board)
    }

    /// Reads a board.toml; every key is required and checked.
    pub fn parse(name: &str, text: &str) -> Result<Board> {
        let table: toml::Table = text.parse().map_err(|error| crate::Error(format!("not valid TOML: {error}")))?;
        let string = |table: &toml::Table, section: &str, key: &str| -> Result<String> {
            match table.get(key) {
                Some(toml::Value::String(value)) if !value.is_empty() => Ok(value.clone()),
                _ => bail!("`{section}{key}` must be a non-empty string"),
            }
        };
        let number = |table: &toml::Table, section: &str, key: &str| -> Result<u64> {
            match table.get(key) {
                Some(toml::Value::Integer(value)) if *value > 0 => Ok(*value as u64),
                _ => bail!("`{section}{key}` must be a positive integer"),
            }
        };
        let section = |key: &str| -> Result<&toml::Table> {
            match table.get(key) {
                Some(toml::Value::Table(section)) => Ok(section),
                _ => bail!("missing section [{key}]"),
            }
        };
        let (qemu, memory) = (section("qemu")?, section("memory")?);
        let board = Board {
            name: name.to_string(),
            arch: string(&table, "", "arch")?,
            target: string(&table, "", "target")?,
            image_format: string(&table, "", "image-format")?,
            load_address: number(&table, "", "load-address")?,
            machine: string(qemu, "qemu.", "machine")?,
            cpu: string(qemu, "qemu.", "cpu")?,
            ram_base: number(memory, "memory.", "ram-base")?,
            image_board: match table.get("image-board") {
                None => name.to_string(),
                Some(_) => string(&table, "", "image-board")?,
            },
            transport: match string(qemu, "qemu.", "virtio-transport")?.as_str() {
                "mmio" => VirtioTransport::Mmio,
                "pci" => VirtioTransport::Pci,
                other => bail!("`qemu.virtio-transport` is \"{other}\", not \"mmio\" or \"pci\""),
            },
            private_ram_mib: number(memory, "memory.", "private-mib")?,
            pool_ram_mib: number(memory, "memory.", "pool-mib")?,
            region_ram_mib: number(memory, "memory.", "region-mib")?,
            cell: match table.get("jailhouse-cell") {
                None => None,
                Some(toml::Value::Table(section)) => Some(crate::cell::CellLaunch::parse(section)?),
                Some(_) => bail!("`jailhouse-cell` must be a section"),
            },
        };
        if !IMAGE_FORMATS.contains(&board.image_format.as_str()) {
            bail!(
                "image-format `{}` is not one the image builder writes ({})",
                board.image_format,
                IMAGE_FORMATS.join(", ")
            );
        }
        if !board.target.starts_with(&format!("{}-", board.arch)) {
            bail!("target `{}` is not for arch `{}`", board.target, board.arch);
        }
        Ok(board)
    }

    /// The `-device` value of a stock virtio device on this board, from its
    /// QEMU base name (`virtio-rng`, `virtio-blk`, ...) and options.
    pub fn virtio_device(&self, base: &str, options: &str) -> String {
        let mut device = match self.transport {
            VirtioTransport::Mmio => format!("{base}-device"),
            // Modern only: the runtime does not drive legacy virtio-pci.
            VirtioTransport::Pci => format!("{base}-pci,disable-legacy=on"),
        };
        if !options.is_empty() {
            device.push(',');
            device.push_str(options);
        }
        device
    }

    /// The generic vhost-user device (hostmem) QEMU offers for this board.
    pub fn generic_device(&self, qemu: &crate::setup::Qemu) -> &'static str {
        match self.transport {
            VirtioTransport::Mmio => qemu.generic_device,
            VirtioTransport::Pci => qemu.generic_pci_device,
        }
    }

    /// The board's folder, `boards/<name>/`.
    pub fn dir(&self) -> PathBuf {
        boards_dir().join(&self.name)
    }

    /// The machine arguments shared by dumping the tree and booting with it:
    /// the NUMA split puts the pool in its own shared memfd.
    pub fn machine_args(&self, variant: Variant) -> Vec<String> {
        if let Some(cell) = &self.cell {
            // The cell's machine is fixed: GICv3, EL2 for the shim.
            return cell.machine_args(&self.cpu);
        }
        let mut machine = format!("{},gic-version={}", self.machine, variant.gic_version);
        if variant.el2 {
            machine.push_str(",virtualization=on");
        }
        let total = self.private_ram_mib + self.pool_ram_mib + self.region_ram_mib;
        [
            "-M",
            &machine,
            "-cpu",
            &self.cpu,
            "-m",
            &format!("{total}M"),
            "-object",
            &format!("memory-backend-ram,id=private,size={}M", self.private_ram_mib),
            "-object",
            &format!("memory-backend-memfd,id=pool,size={}M,share=on", self.pool_ram_mib),
            "-numa",
            "node,nodeid=0,memdev=private",
            "-numa",
            "node,nodeid=1,memdev=pool",
            "-object",
            &format!("memory-backend-memfd,id=region,size={}M,share=on", self.region_ram_mib),
            "-numa",
            "node,nodeid=2,memdev=region",
            "-global",
            "virtio-mmio.force-legacy=false",
            // The default NIC is a PCI device that needs an option ROM the
            // +ds build does not ship; our images have no use for it.
            "-nic",
            "none",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_folder_parses_and_qemu_virt_says_what_it_is() {
        for name in known_boards() {
            Board::find(&name).unwrap_or_else(|error| panic!("{error}"));
        }
        let board = Board::find("qemu-virt").unwrap();
        assert_eq!((board.arch.as_str(), board.target.as_str()), ("aarch64", "aarch64-unknown-none"));
        assert_eq!(board.load_address, 0x4008_0000);
        assert_eq!((board.private_ram_mib, board.pool_ram_mib, board.region_ram_mib), (128, 16, 16));
    }

    #[test]
    fn every_board_with_constants_is_a_feature_of_the_runtime() {
        // A crate that depends on the runtime picks its board this way
        // (build.rs); a board folder without its feature cannot be picked.
        let manifest = fs::read_to_string(paths::workspace().join("Cargo.toml")).unwrap();
        let table: toml::Table = manifest.parse().unwrap();
        let features = table["features"].as_table().unwrap();
        for name in known_boards() {
            let has_constants = boards_dir().join(&name).join("board.rs").exists();
            let feature = features.get(&format!("board-{name}"));
            assert_eq!(feature.is_some(), has_constants, "board {name}: feature board-{name} and board.rs go together");
            if let Some(feature) = feature {
                assert_eq!(feature.as_array().unwrap(), &[toml::Value::from("image")], "board-{name} implies image");
            }
        }
    }

    #[test]
    fn bad_board_files_are_refused_with_the_key_named() {
        let good = fs::read_to_string(boards_dir().join("qemu-virt/board.toml")).unwrap();
        let error = |text: &str| Board::parse("x", text).unwrap_err().to_string();
        assert!(error(&good.replace("cpu = ", "cpux = ")).contains("`qemu.cpu`"));
        assert!(error(&good.replace("pool-mib = 16", "pool-mib = 0")).contains("`memory.pool-mib`"));
        assert!(error(&good.replace("\"arm64-image\"", "\"bzImage\"")).contains("image-format"));
        assert!(error(&good.replace("target = \"aarch64", "target = \"x86_64")).contains("not for arch"));
        assert!(error("arch = ").contains("not valid TOML"));
        assert!(Board::find("../qemu-virt").is_err() && Board::find("no-such-board").is_err());
    }
}
