//! Boards the launcher knows: QEMU settings and the overlay that adds the
//! restricted DMA pool. Each board's files live in boards/<name>/.

use std::path::PathBuf;

use crate::{Result, bail, paths};

/// The interrupt controller and exception level to boot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
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
    pub fn label(&self) -> String {
        format!("gicv{}-el{}", self.gic_version, if self.el2 { 2 } else { 1 })
    }
}

/// How the board attaches virtio devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioTransport {
    /// virtio-mmio slots (`-device NAME-device`).
    Mmio,
    /// Modern virtio-pci behind the ECAM host bridge (`-device
    /// NAME-pci,disable-legacy=on`); BARs are assigned by the guest.
    Pci,
}

/// A board the launcher can start.
#[derive(Clone, Debug)]
pub struct Board {
    pub name: &'static str,
    /// The board images are built for (`TIDEPOOL_BOARD`): boards that differ
    /// only in what the tree describes share images.
    pub image_board: &'static str,
    pub transport: VirtioTransport,
    /// Private RAM, without an fd: a vhost-user backend never sees it.
    pub private_ram_mib: u64,
    /// The DMA pool's RAM, a shared memfd: the only guest RAM a backend sees.
    pub pool_ram_mib: u64,
    /// The hostmem regions' RAM, a shared memfd the backend serves; the
    /// board overlay reserves it (no-map) so the guest never uses it as RAM.
    pub region_ram_mib: u64,
}

pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-virt",
        image_board: "qemu-virt",
        transport: VirtioTransport::Mmio,
        private_ram_mib: 128,
        pool_ram_mib: 16,
        region_ram_mib: 16,
    },
    // The same machine and NUMA split, with every virtio device (the
    // hostmem device included) on PCI; the image is qemu-virt's.
    Board {
        name: "qemu-virt-pci",
        image_board: "qemu-virt",
        transport: VirtioTransport::Pci,
        private_ram_mib: 128,
        pool_ram_mib: 16,
        region_ram_mib: 16,
    },
];

impl Board {
    pub fn find(name: &str) -> Result<&'static Board> {
        match BOARDS.iter().find(|board| board.name == name) {
            Some(board) => Ok(board),
            None => {
                let known: Vec<_> = BOARDS.iter().map(|board| board.name).collect();
                bail!("unknown board `{name}` (known: {})", known.join(", "))
            }
        }
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

    pub fn dir(&self) -> PathBuf {
        paths::workspace().join("boards").join(self.name)
    }

    /// The machine arguments shared by dumping the tree and booting with it:
    /// the NUMA split puts the pool in its own shared memfd.
    pub fn machine_args(&self, variant: Variant) -> Vec<String> {
        let mut machine = format!("virt,gic-version={}", variant.gic_version);
        if variant.el2 {
            machine.push_str(",virtualization=on");
        }
        let total = self.private_ram_mib + self.pool_ram_mib + self.region_ram_mib;
        [
            "-M",
            &machine,
            "-cpu",
            "cortex-a57",
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
