//! The bodies of Tidepool's fuzz targets (docs/reliability.md). Each file in
//! `fuzz_targets/` is one line calling [`targets`]`::<name>::run`, so the
//! committed seeds also run as a plain test, without libFuzzer
//! (`cargo test --manifest-path fuzz/Cargo.toml`), and a reproducer can be
//! replayed under a debugger the same way.

pub mod input;

/// Whether `TIDEPOOL_FUZZ_TRACE` is set: targets then print what they do,
/// for reading a reproducer (`cargo test --manifest-path fuzz/Cargo.toml`
/// or the fuzz binary run on one file).
pub fn tracing() -> bool {
    static TRACING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACING.get_or_init(|| std::env::var_os("TIDEPOOL_FUZZ_TRACE").is_some())
}

/// `eprintln!` when [`tracing`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::tracing() {
            eprintln!($($arg)*);
        }
    };
}

pub mod platform_checks;
pub mod seeds;

pub mod targets {
    pub mod backend_codec;
    pub mod backend_device;
    pub mod comm_region;
    pub mod devicetree;
    pub mod hostmem_config;
    pub mod hostmem_messages;
    pub mod pci_config;
    pub mod virtio_transport;
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz_targets/<name>.rs` and `seeds/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("devicetree", targets::devicetree::run),
    ("comm_region", targets::comm_region::run),
    ("hostmem_config", targets::hostmem_config::run),
    ("hostmem_messages", targets::hostmem_messages::run),
    ("backend_device", targets::backend_device::run),
    ("backend_codec", targets::backend_codec::run),
    ("pci_config", targets::pci_config::run),
    ("virtio_transport", targets::virtio_transport::run),
];
