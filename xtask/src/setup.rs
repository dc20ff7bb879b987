//! `cargo xtask setup`: the host packages and a QEMU that can create the
//! generic vhost-user device.
//!
//! QEMU 10.2+ has the user-creatable `vhost-user-test-device`; a QEMU on the
//! PATH that offers it is used as is. Otherwise we build QEMU 10.0.2 from
//! Debian's bookworm-backports source tarball with the one-line upstream
//! change that makes `vhost-user-device` creatable (10.0 builds the device
//! but refuses `-device` for it: `dc->user_creatable = false`, which we
//! drop as upstream did by 10.2), into the per-user cache. Its build tools
//! (meson, pycotap) go in a Python venv in the cache: Debian's system Python
//! is externally managed (PEP 668) and has no pip. A finished build is
//! marked with a stamp naming this recipe, so a matching cache is reused
//! without any work.
//!
//! Before it changes anything or starts a long step, setup looks at the
//! machine ([`Machine`]) and reports, in one error, everything it cannot
//! fix itself, each with the command that fixes it ([`problems`]): Debian
//! packages missing when not root, no rustup when the toolchain is not the
//! pinned one or lacks the image targets, an unusable TIDEPOOL_QEMU, and,
//! when QEMU must be built, a cache that cannot be written or has too
//! little free disk ([`qemu_build_bytes`]), and a missing backports source
//! list when not root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result, bail, paths, run_command};

/// The QEMU version built from Debian's source (a newer one on the PATH is used as is).
pub const QEMU_VERSION: &str = "10.0.2";
/// Changes whenever the recipe below changes, invalidating older caches.
const RECIPE: &str = "qemu-10.0.2+ds-vhost-user-device-creatable-v2-pci";
/// Debian's interpreter (python3 package).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";
const TARBALL: &str = "qemu_10.0.2+ds.orig.tar.xz";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/tidepool-bookworm-backports.list";
const BACKPORTS_LINES: &str = "deb http://deb.debian.org/debian bookworm-backports main\n\
deb-src http://deb.debian.org/debian bookworm-backports main\n";

/// Debian packages the project needs on the host: QEMU's build dependencies,
/// dtc/fdtoverlay for board trees. README.md lists the same.
pub const APT_PACKAGES: &[&str] = &[
    // QEMU's configure needs a C compiler and libc headers (gcc only
    // recommends libc6-dev, and we install without recommends).
    "gcc",
    "libc6-dev",
    "ninja-build",
    "libglib2.0-dev",
    "libpixman-1-dev",
    "libfdt-dev",
    "pkg-config",
    "flex",
    "bison",
    "python3",
    // The venv that holds meson and pycotap (python_venv).
    "python3-venv",
    "device-tree-compiler",
    "xz-utils",
    "bzip2",
    // apt-get source
    "dpkg-dev",
];

/// A QEMU that can run our images, and the name of its generic vhost-user device.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// The `qemu-system-aarch64` binary.
    pub binary: PathBuf,
    /// The generic vhost-user device on virtio-mmio (`vhost-user-device`, or
    /// `vhost-user-test-device` from 10.2).
    pub generic_device: &'static str,
    /// The same device behind virtio-pci (`vhost-user-device-pci`, or
    /// `vhost-user-test-device-pci` from 10.2).
    pub generic_pci_device: &'static str,
}

/// Finds a usable QEMU without building anything.
pub fn find_qemu() -> Option<Qemu> {
    if let Some(path) = std::env::var_os("TIDEPOOL_QEMU") {
        let binary = PathBuf::from(path);
        return probe(&binary);
    }
    if let Some(qemu) = probe(Path::new("qemu-system-aarch64")).filter(|q| q.generic_device == "vhost-user-test-device")
    {
        return Some(qemu);
    }
    let cached = cached_binary();
    if stamp_matches() { probe(&cached) } else { None }
}

/// Finds QEMU or explains how to get one.
pub fn require_qemu() -> Result<Qemu> {
    if let Some(path) = std::env::var_os("TIDEPOOL_QEMU") {
        return probe(Path::new(&path)).ok_or_else(|| unusable_explicit_qemu(Path::new(&path)));
    }
    find_qemu().ok_or_else(|| {
        Error(format!(
            "no QEMU with a creatable generic vhost-user device: run `cargo xtask setup` \
             (builds QEMU {QEMU_VERSION} into {}) or set TIDEPOOL_QEMU",
            build_root().display()
        ))
    })
}

/// TIDEPOOL_QEMU names a binary that cannot run our images.
fn unusable_explicit_qemu(path: &Path) -> Error {
    Error(format!(
        "TIDEPOOL_QEMU={} is not a usable QEMU: it must run and create the generic vhost-user device \
         (unset TIDEPOOL_QEMU to use or build QEMU {QEMU_VERSION} with `cargo xtask setup`)",
        path.display()
    ))
}

fn probe(binary: &Path) -> Option<Qemu> {
    let output = Command::new(binary).args(["-machine", "virt", "-device", "help"]).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (generic_device, generic_pci_device) = if text.contains("\"vhost-user-test-device\"") {
        ("vhost-user-test-device", "vhost-user-test-device-pci")
    } else if text.contains("\"vhost-user-device\"") {
        ("vhost-user-device", "vhost-user-device-pci")
    } else {
        return None;
    };
    // Before 10.2 the devices are listed but refused unless patched: try
    // both (a QEMU patched for the mmio device alone cannot run the PCI
    // boards).
    for device in [generic_device, generic_pci_device] {
        let check =
            Command::new(binary).args(["-machine", "none", "-device", &format!("{device},help")]).output().ok()?;
        if !check.status.success() {
            return None;
        }
    }
    Some(Qemu { binary: binary.to_path_buf(), generic_device, generic_pci_device })
}

fn build_root() -> PathBuf {
    paths::cache_dir().join(RECIPE)
}

fn cached_binary() -> PathBuf {
    build_root().join("build").join("qemu-system-aarch64")
}

fn stamp_path() -> PathBuf {
    build_root().join("stamp")
}

fn stamp_matches() -> bool {
    fs::read_to_string(stamp_path()).is_ok_and(|stamp| stamp.trim() == RECIPE) && cached_binary().exists()
}

/// Installs missing host packages and makes sure a usable QEMU exists.
///
/// Everything setup cannot do by itself is found out first and reported in
/// one error, each problem with the command that fixes it ([`check`]), so
/// a user never waits through a package install or a QEMU build to learn
/// of the next missing thing.
pub fn setup() -> Result<Qemu> {
    let explicit = std::env::var_os("TIDEPOOL_QEMU").map(PathBuf::from);
    // An explicit choice is never silently replaced by a build.
    let found = if explicit.is_none() { find_qemu() } else { None };
    let needs_build = explicit.is_none() && found.is_none();
    check(&Machine::probe(explicit.as_deref(), needs_build)?)?;
    // Before anything slow: a toolchain without the image targets would
    // otherwise fail only after the QEMU build.
    ensure_rust_targets()?;
    install_apt_packages(APT_PACKAGES)?;
    if let Some(path) = explicit {
        return probe(&path).ok_or_else(|| unusable_explicit_qemu(&path));
    }
    if let Some(qemu) = found {
        println!("setup: using {} ({})", qemu.binary.display(), qemu.generic_device);
        return Ok(qemu);
    }
    build_qemu()?;
    require_qemu()
}

// ---------------------------------------------------------------------------
// Checks before anything is changed or waited for.
//
// `Machine` is what setup needs to know of the machine, gathered by
// `Machine::probe` without changing anything; `problems` is a pure
// function of it (unit-tested with made-up machines in
// xtask/tests/setup_checks.rs), and `check` turns the problems into one
// error. What setup can fix itself (packages as root, targets with rustup)
// is not a problem: it is fixed after the checks pass.

/// The QEMU build's footprint in the cache, measured with `du` (4 KiB
/// blocks, ext4) on the cache a finished `cargo xtask setup` of this recipe
/// left on Debian 12: the unpacked and patched source tree 409 MiB, its
/// `build/` (objects, the 99 MiB binary, configure's own venv) 388 MiB, the
/// meson/pycotap venv 35 MiB, and the source tarball 38 MiB: 870 MiB.
pub const QEMU_SOURCE_TREE_MIB: u64 = 409;
/// See [`QEMU_SOURCE_TREE_MIB`].
pub const QEMU_BUILD_DIR_MIB: u64 = 388;
/// See [`QEMU_SOURCE_TREE_MIB`].
pub const PYTHON_VENV_MIB: u64 = 35;
/// See [`QEMU_SOURCE_TREE_MIB`].
pub const QEMU_TARBALL_MIB: u64 = 38;
/// Added to what was measured: ninja's temporary files while it links,
/// pip's downloads, another file system's block accounting, and room left
/// for the rest of the machine.
pub const DISK_MARGIN_MIB: u64 = 512;

const MIB: u64 = 1 << 20;

/// Bytes a QEMU build needs free in the cache (the tarball's share only if
/// it is not cached yet).
pub fn qemu_build_bytes(tarball_cached: bool) -> u64 {
    let tarball = if tarball_cached { 0 } else { QEMU_TARBALL_MIB };
    (QEMU_SOURCE_TREE_MIB + QEMU_BUILD_DIR_MIB + PYTHON_VENV_MIB + tarball + DISK_MARGIN_MIB) * MIB
}

/// What setup needs to know of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Effective user id 0: can install packages and write /etc/apt.
    pub root: bool,
    /// [`APT_PACKAGES`] that dpkg does not list as installed.
    pub missing_packages: Vec<String>,
    /// `rustup` runs.
    pub rustup: bool,
    /// The toolchain cargo xtask runs with, as rustc reports it in the
    /// workspace (where rustup applies rust-toolchain.toml).
    pub rust: Toolchain,
    /// `TIDEPOOL_QEMU`, if set, and whether it can run our images.
    pub explicit_qemu: Option<(PathBuf, bool)>,
    /// Where a QEMU build would go; `None` when no build is needed (a
    /// usable QEMU was found, or one was named).
    pub qemu_build: Option<BuildSite>,
}

/// The active Rust toolchain against rust-toolchain.toml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// `rustc --version`'s number (`1.95.0`); `None` if rustc did not run.
    pub version: Option<String>,
    /// The channel rust-toolchain.toml pins (`1.95.0`, or a name such as
    /// `stable`).
    pub pinned_channel: Option<String>,
    /// `rustc --print sysroot`: where target libraries would be.
    pub sysroot: PathBuf,
    /// Targets rust-toolchain.toml lists that the sysroot lacks.
    pub missing_targets: Vec<String>,
}

/// The cache a QEMU build would fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSite {
    /// The cache directory ([`paths::cache_dir`]).
    pub cache_dir: PathBuf,
    /// Whether the cache directory, or the nearest existing directory above
    /// it, can be written.
    pub writable: bool,
    /// Bytes an unprivileged user may still write on its file system
    /// (statvfs `f_bavail * f_frsize`, what `df` calls Avail).
    pub free_bytes: u64,
    /// Bytes of an unfinished build of this recipe and an old venv, which
    /// the build deletes before it starts.
    pub reclaimable_bytes: u64,
    /// QEMU's source tarball is in the cache already (nothing to fetch).
    pub tarball_cached: bool,
    /// The bookworm-backports source list setup needs to fetch it exists.
    pub backports_listed: bool,
}

/// Something setup cannot fix itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Debian packages missing, and not root to install them.
    MissingPackages(Vec<String>),
    /// No rustup, and the toolchain is not the one rust-toolchain.toml
    /// pins (or rustc does not run).
    NoRustup {
        /// The active rustc's version, if it ran.
        version: Option<String>,
        /// The channel rust-toolchain.toml pins.
        pinned: String,
    },
    /// No rustup to add the image targets the toolchain lacks.
    MissingTargets {
        /// The targets missing.
        targets: Vec<String>,
        /// The sysroot that lacks them.
        sysroot: PathBuf,
    },
    /// TIDEPOOL_QEMU names a QEMU that cannot run our images.
    UnusableQemu(PathBuf),
    /// The cache cannot be written.
    CacheNotWritable(PathBuf),
    /// Too little free disk for the QEMU build.
    DiskSpace {
        /// The cache directory.
        dir: PathBuf,
        /// Bytes free there.
        available: u64,
        /// Bytes the build needs.
        needed: u64,
    },
    /// QEMU's source must be fetched with apt from bookworm-backports,
    /// whose source list only root can add.
    BackportsNotListed,
}

/// Installs rustup (<https://rustup.rs>) and, run in the workspace, the
/// toolchain rust-toolchain.toml pins with its components and targets.
const RUSTUP_INSTALL: &str = "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y \
    --default-toolchain none && . \"$HOME/.cargo/env\" && rustup toolchain install";

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

impl Problem {
    /// What is wrong.
    pub fn what(&self) -> String {
        match self {
            Problem::MissingPackages(packages) => {
                format!("missing Debian packages, and not root to install them: {}", packages.join(", "))
            }
            Problem::NoRustup { version, pinned } => format!(
                "no rustup on the PATH, and the Rust toolchain is {} where rust-toolchain.toml pins {pinned}",
                version.clone().unwrap_or_else(|| "not there (rustc does not run)".to_string())
            ),
            Problem::MissingTargets { targets, sysroot } => format!(
                "the Rust toolchain in {} lacks the image target(s) {}, and there is no rustup to add them",
                sysroot.display(),
                targets.join(" ")
            ),
            Problem::UnusableQemu(path) => format!(
                "TIDEPOOL_QEMU={} is not a usable QEMU: it must run and create the generic vhost-user device",
                path.display()
            ),
            Problem::CacheNotWritable(dir) => format!("the QEMU build cache {} cannot be written", dir.display()),
            Problem::DiskSpace { dir, available, needed } => format!(
                "too little free disk for the QEMU build in {}: {} available, {} needed \
                 (source tree, build, venv and tarball as measured, {} MiB, plus {DISK_MARGIN_MIB} MiB)",
                dir.display(),
                gib(*available),
                gib(*needed),
                QEMU_SOURCE_TREE_MIB + QEMU_BUILD_DIR_MIB + PYTHON_VENV_MIB + QEMU_TARBALL_MIB
            ),
            Problem::BackportsNotListed => format!(
                "QEMU {QEMU_VERSION}'s source is fetched with apt-get from bookworm-backports, \
                 and {BACKPORTS_LIST} (which only root can add) is missing"
            ),
        }
    }

    /// The command that fixes it.
    pub fn fix(&self) -> String {
        match self {
            Problem::MissingPackages(packages) => format!("sudo apt-get install {}", packages.join(" ")),
            Problem::NoRustup { .. } => RUSTUP_INSTALL.to_string(),
            Problem::MissingTargets { targets, .. } => {
                format!("{RUSTUP_INSTALL} && rustup target add {}", targets.join(" "))
            }
            Problem::UnusableQemu(_) => format!(
                "unset TIDEPOOL_QEMU (setup then builds QEMU {QEMU_VERSION}), or point it at a QEMU 10.2 or later"
            ),
            Problem::CacheNotWritable(dir) => format!(
                "sudo chown -R \"$(id -un)\" {}, or export TIDEPOOL_CACHE_DIR=/a/writable/directory",
                dir.display()
            ),
            Problem::DiskSpace { available, needed, .. } => format!(
                "free another {} on that file system, or export TIDEPOOL_CACHE_DIR=/a/directory/on/a/larger/disk",
                gib(needed.saturating_sub(*available).max(MIB))
            ),
            Problem::BackportsNotListed => format!(
                "printf '{}' | sudo tee {BACKPORTS_LIST} && sudo apt-get update",
                BACKPORTS_LINES.replace('\n', "\\n")
            ),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n   fix: {}", self.what(), self.fix())
    }
}

/// Whether `version` (`1.95.0`) is the toolchain `channel` pins: a version
/// pins itself (`1.95` any 1.95.x); a name (`stable`, `nightly-...`) pins
/// nothing rustc's version can be checked against.
fn version_matches(version: &str, channel: &str) -> bool {
    let is_version = channel.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if !is_version {
        return true;
    }
    let (mut have, mut want) = (version.split('.'), channel.split('.'));
    loop {
        match (have.next(), want.next()) {
            (_, None) => return true,
            (Some(h), Some(w)) if h == w => {}
            _ => return false,
        }
    }
}

/// Everything on `machine` that setup cannot fix itself, in the order a
/// user should fix them.
pub fn problems(machine: &Machine) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !machine.root && !machine.missing_packages.is_empty() {
        problems.push(Problem::MissingPackages(machine.missing_packages.clone()));
    }
    if !machine.rustup {
        let rust = &machine.rust;
        let pinned = rust.pinned_channel.clone();
        let matches = match (&rust.version, &pinned) {
            (Some(version), Some(channel)) => version_matches(version, channel),
            (None, _) => false,
            (Some(_), None) => true,
        };
        if !matches {
            problems.push(Problem::NoRustup {
                version: rust.version.clone(),
                pinned: pinned.unwrap_or_else(|| "a toolchain".into()),
            });
        }
        if rust.version.is_some() && !rust.missing_targets.is_empty() {
            problems
                .push(Problem::MissingTargets { targets: rust.missing_targets.clone(), sysroot: rust.sysroot.clone() });
        }
    }
    if let Some((path, false)) = &machine.explicit_qemu {
        problems.push(Problem::UnusableQemu(path.clone()));
    }
    if let Some(site) = &machine.qemu_build {
        if !site.writable {
            problems.push(Problem::CacheNotWritable(site.cache_dir.clone()));
        }
        let needed = qemu_build_bytes(site.tarball_cached);
        let available = site.free_bytes.saturating_add(site.reclaimable_bytes);
        if available < needed {
            problems.push(Problem::DiskSpace { dir: site.cache_dir.clone(), available, needed });
        }
        if !machine.root && !site.tarball_cached && !site.backports_listed {
            problems.push(Problem::BackportsNotListed);
        }
    }
    problems
}

/// One error listing every problem on `machine` with its fix, or `Ok` when
/// setup can go on by itself.
pub fn check(machine: &Machine) -> Result<()> {
    let problems = problems(machine);
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "setup cannot go on: {} problem(s) it cannot fix itself (nothing was installed or built yet):",
        problems.len()
    );
    for (number, problem) in problems.iter().enumerate() {
        message.push_str(&format!("\n{}. {problem}", number + 1));
    }
    Err(Error(message))
}

impl Machine {
    /// Looks at this machine without changing anything. `explicit_qemu` is
    /// TIDEPOOL_QEMU; `needs_build` whether no usable QEMU was found.
    pub fn probe(explicit_qemu: Option<&Path>, needs_build: bool) -> Result<Machine> {
        let workspace = paths::workspace();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        Ok(Machine {
            root: is_root(),
            missing_packages: missing_packages(APT_PACKAGES),
            rustup: runs(Command::new("rustup").arg("--version").current_dir(&workspace)),
            rust: Toolchain::probe(&workspace, Path::new(&rustc))?,
            explicit_qemu: explicit_qemu.map(|path| (path.to_path_buf(), probe(path).is_some())),
            qemu_build: needs_build.then(|| BuildSite::probe(&paths::cache_dir())),
        })
    }
}

fn runs(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Toolchain {
    /// `rustc` in `workspace` against the workspace's rust-toolchain.toml.
    pub fn probe(workspace: &Path, rustc: &Path) -> Result<Toolchain> {
        let file = fs::read_to_string(workspace.join("rust-toolchain.toml"))?;
        let wanted = toolchain_targets(&file)?;
        let pinned_channel = toolchain_channel(&file)?;
        let ask = |arg: &str| {
            Command::new(rustc)
                .args(arg.split(' '))
                .current_dir(workspace)
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        };
        // `rustc 1.95.0 (59807616e 2026-04-14)`
        let version = ask("--version").and_then(|line| line.split_whitespace().nth(1).map(str::to_string));
        let sysroot = PathBuf::from(ask("--print sysroot").unwrap_or_default());
        let missing_targets = missing_targets(&wanted, &sysroot);
        Ok(Toolchain { version, pinned_channel, sysroot, missing_targets })
    }
}

/// Targets of `wanted` without a library directory in `sysroot`.
fn missing_targets(wanted: &[String], sysroot: &Path) -> Vec<String> {
    wanted.iter().filter(|target| !sysroot.join("lib/rustlib").join(target).join("lib").is_dir()).cloned().collect()
}

impl BuildSite {
    /// The cache at `cache_dir` (which need not exist yet).
    pub fn probe(cache_dir: &Path) -> BuildSite {
        let existing = nearest_existing(cache_dir);
        BuildSite {
            cache_dir: cache_dir.to_path_buf(),
            writable: existing.as_deref().is_some_and(writable),
            free_bytes: existing.as_deref().and_then(free_bytes).unwrap_or(0),
            // A build of this recipe without its stamp (else no build would
            // be needed) is deleted before the new one starts, and so is
            // the venv (`venv --clear`).
            reclaimable_bytes: disk_usage(&cache_dir.join(RECIPE)) + disk_usage(&cache_dir.join("python-venv")),
            tarball_cached: cache_dir.join("src").join(TARBALL).exists(),
            backports_listed: Path::new(BACKPORTS_LIST).exists(),
        }
    }
}

/// `path` or the nearest directory above it that exists.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|dir| dir.is_dir()).map(Path::to_path_buf)
}

fn c_path(path: &Path) -> Option<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
}

/// Whether this user may create files in directory `dir`.
fn writable(dir: &Path) -> bool {
    let Some(path) = c_path(dir) else { return false };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Bytes an unprivileged user may still write on the file system holding
/// `path` (statvfs: `f_bavail` blocks of `f_frsize` bytes, `df`'s Avail).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let path = c_path(path)?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stat` points to
    // writable memory for one statvfs, which the call fills on success.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast, reason = "the field types differ between libc targets")]
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Disk blocks used under `path` in bytes (what `du` counts), without
/// following symbolic links; 0 if it does not exist.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = fs::symlink_metadata(path) else { return 0 };
    let own = metadata.blocks().saturating_mul(512);
    if !metadata.is_dir() {
        return own;
    }
    let children = fs::read_dir(path).into_iter().flatten().flatten();
    children.fold(own, |total, entry| total.saturating_add(disk_usage(&entry.path())))
}

/// The targets `rust-toolchain.toml` lists (the images' targets).
pub fn toolchain_targets(toolchain_file: &str) -> Result<Vec<String>> {
    let table: toml::Table =
        toolchain_file.parse().map_err(|error| Error(format!("rust-toolchain.toml is not valid TOML: {error}")))?;
    let targets = table.get("toolchain").and_then(|toolchain| toolchain.get("targets"));
    let Some(toml::Value::Array(targets)) = targets else {
        return Ok(Vec::new());
    };
    targets
        .iter()
        .map(|target| match target {
            toml::Value::String(name) => Ok(name.clone()),
            other => bail!("rust-toolchain.toml: target {other:?} is not a string"),
        })
        .collect()
}

/// The channel `rust-toolchain.toml` pins, if any.
pub fn toolchain_channel(toolchain_file: &str) -> Result<Option<String>> {
    let table: toml::Table =
        toolchain_file.parse().map_err(|error| Error(format!("rust-toolchain.toml is not valid TOML: {error}")))?;
    match table.get("toolchain").and_then(|toolchain| toolchain.get("channel")) {
        None => Ok(None),
        Some(toml::Value::String(channel)) => Ok(Some(channel.clone())),
        Some(other) => bail!("rust-toolchain.toml: channel {other:?} is not a string"),
    }
}

/// Makes sure the active toolchain has every target `rust-toolchain.toml`
/// lists: rustup does not add them to a toolchain that is already
/// installed (the machines' pinned toolchain is one), and a build without
/// the target stops with "can't find crate for `core`". Missing targets are
/// added with rustup; without rustup, the command to run is the error.
pub fn ensure_rust_targets() -> Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    ensure_targets_with(&paths::workspace(), Path::new(&rustc), Path::new("rustup"))
}

/// [`ensure_rust_targets`] with the compiler and rustup to use (tests put
/// stand-ins there).
pub fn ensure_targets_with(workspace: &Path, rustc: &Path, rustup: &Path) -> Result<()> {
    let wanted = toolchain_targets(&fs::read_to_string(workspace.join("rust-toolchain.toml"))?)?;
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(workspace)
        .output()
        .map_err(|error| Error(format!("cannot run {}: {error}", rustc.display())))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let missing = missing_targets(&wanted, &sysroot);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(String::as_str).collect();
    println!("setup: adding Rust target(s) {} to the toolchain in {}", names.join(" "), sysroot.display());
    let added = Command::new(rustup)
        .arg("target")
        .arg("add")
        .args(&names)
        .current_dir(workspace)
        .status()
        .is_ok_and(|status| status.success());
    if !added {
        bail!(
            "the Rust toolchain in {} lacks target(s) {} and rustup could not add them: run `rustup target add {}` \
             (rustup: https://rustup.rs)",
            sysroot.display(),
            names.join(" "),
            names.join(" ")
        );
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn missing_packages(packages: &[&str]) -> Vec<String> {
    packages
        .iter()
        .filter(|package| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output();
            !out.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        })
        .map(|package| package.to_string())
        .collect()
}

/// Installs what is missing with apt-get (as root), or says what to install.
pub fn install_apt_packages(packages: &[&str]) -> Result<()> {
    let missing = missing_packages(packages);
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; install them with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    println!("setup: installing {}", missing.join(" "));
    run_command(Command::new("apt-get").args(["update", "-q"]))?;
    run_command(Command::new("apt-get").args(["install", "-y", "-q", "--no-install-recommends"]).args(&missing))
}

fn fetch_tarball(src_dir: &Path) -> Result<PathBuf> {
    let tarball = src_dir.join(TARBALL);
    if tarball.exists() {
        return Ok(tarball);
    }
    fs::create_dir_all(src_dir)?;
    if !Path::new(BACKPORTS_LIST).exists() {
        if !is_root() {
            bail!(
                "QEMU's source comes from bookworm-backports: add `{}` to {BACKPORTS_LIST} as root",
                BACKPORTS_LINES.trim()
            );
        }
        fs::write(BACKPORTS_LIST, BACKPORTS_LINES)?;
    }
    println!("setup: fetching QEMU {QEMU_VERSION} source from bookworm-backports");
    // Only root can update apt's lists; another user ran the `sudo apt-get
    // update` that setup's checks named together with the list.
    if is_root() {
        run_command(Command::new("apt-get").args(["update", "-q"]))?;
    }
    // The mirror serves the .orig tarball but answers 404 for the .dsc and
    // the Debian patches, so apt-get exits non-zero; what counts is the tarball.
    let _ = Command::new("apt-get")
        .args(["source", "--download-only", "qemu/bookworm-backports"])
        .current_dir(src_dir)
        .status();
    if !tarball.exists() {
        bail!(
            "apt-get source did not fetch {TARBALL} into {} (are apt's lists up to date? `sudo apt-get update`)",
            src_dir.display()
        );
    }
    Ok(tarball)
}

/// Replaces `from` with `to` in `file`, insisting that `from` is there once.
fn patch(file: &Path, from: &str, to: &str) -> Result<()> {
    let text = fs::read_to_string(file)?;
    if text.matches(from).count() != 1 {
        bail!("cannot patch {}: expected exactly one `{from}`", file.display());
    }
    fs::write(file, text.replacen(from, to, 1))?;
    Ok(())
}

/// Makes a fresh venv in the cache with the meson and pycotap QEMU's build
/// needs (bookworm's meson is 1.0; QEMU 10.0 wants 1.5) and returns its
/// interpreter.
fn python_venv() -> Result<PathBuf> {
    let venv = paths::cache_dir().join("python-venv");
    // The system interpreter when there is one, as on a fresh Debian (not
    // whatever python3 a version manager puts first on the PATH).
    let base = if Path::new(SYSTEM_PYTHON).exists() { SYSTEM_PYTHON } else { "python3" };
    println!("setup: installing meson and pycotap for QEMU's build into {}", venv.display());
    // --clear: a venv left by an interrupted or older setup starts over.
    run_command(Command::new(base).args(["-m", "venv", "--clear"]).arg(&venv))?;
    let python = venv.join("bin").join("python3");
    run_command(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "meson>=1.5,<1.9",
        "pycotap",
    ]))?;
    Ok(python)
}

fn build_qemu() -> Result<()> {
    let root = build_root();
    let tarball = fetch_tarball(&paths::cache_dir().join("src"))?;
    println!("setup: building QEMU {QEMU_VERSION} in {} (about 5-10 minutes on 2 cores)", root.display());
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::create_dir_all(&root)?;
    run_command(Command::new("tar").args(["xJf"]).arg(&tarball).args(["--strip-components=1", "-C"]).arg(&root))?;

    // The one-line upstream change (10.2 made the device creatable), made
    // for the virtio-mmio device and for its PCI proxy, which in 10.0 has a
    // `user_creatable = false` of its own.
    patch(&root.join("hw/virtio/vhost-user-device.c"), "    dc->user_creatable = false;\n", "")?;
    patch(&root.join("hw/virtio/vhost-user-device-pci.c"), "    dc->user_creatable = false;\n", "")?;
    // The +ds tarball ships no firmware blobs to unpack.
    patch(&root.join("meson.build"), "unpack_edk2_blobs = bzip2.found()", "unpack_edk2_blobs = false")?;

    let python = python_venv()?;

    let build = root.join("build");
    fs::create_dir_all(&build)?;
    run_command(
        Command::new("../configure")
            // configure's own venv (build/pyvenv) is nested in ours and
            // inherits its packages (QEMU's python/scripts/mkvenv.py).
            .arg(format!("--python={}", python.display()))
            .args([
                "--target-list=aarch64-softmmu",
                "--without-default-features",
                "--enable-vhost-user",
                "--enable-fdt=system",
                "--disable-docs",
                "--disable-install-blobs",
            ])
            .current_dir(&build),
    )?;
    // ninja prints one `[n/total]` line per step: that is the progress bar.
    run_command(Command::new("ninja").arg("qemu-system-aarch64").current_dir(&build))?;
    if probe(&cached_binary()).is_none() {
        bail!("the QEMU build finished but {} cannot create the generic vhost-user device", cached_binary().display());
    }
    fs::write(stamp_path(), RECIPE)?;
    println!("setup: QEMU ready at {}", cached_binary().display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchain_file_names_the_image_targets() {
        let file = fs::read_to_string(paths::workspace().join("rust-toolchain.toml")).unwrap();
        assert!(toolchain_targets(&file).unwrap().contains(&"aarch64-unknown-none".to_string()));
        assert_eq!(toolchain_targets("[toolchain]\nchannel = \"1.95.0\"\n").unwrap(), Vec::<String>::new());
        assert!(toolchain_targets("[toolchain]\ntargets = [1]\n").is_err());
        assert!(toolchain_targets("targets = ").is_err());
        assert_eq!(toolchain_channel(&file).unwrap().as_deref(), Some("1.95.0"));
        assert_eq!(toolchain_channel("[toolchain]\n").unwrap(), None);
        assert!(toolchain_channel("[toolchain]\nchannel = 1\n").is_err());
    }

    /// README.md names the packages a fresh machine gets: keep it honest.
    #[test]
    fn readme_lists_the_apt_packages() {
        let readme = fs::read_to_string(paths::workspace().join("README.md")).unwrap();
        let marker = "installs Debian packages (`";
        let start = readme.find(marker).expect("README names the Debian packages") + marker.len();
        let end = start + readme[start..].find('`').unwrap();
        let listed: Vec<&str> = readme[start..end].split_whitespace().collect();
        assert_eq!(listed, APT_PACKAGES);
    }
}
