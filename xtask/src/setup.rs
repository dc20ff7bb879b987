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
pub fn setup() -> Result<Qemu> {
    // Before anything slow: a toolchain without the image targets would
    // otherwise fail only after the QEMU build.
    ensure_rust_targets()?;
    install_apt_packages(APT_PACKAGES)?;
    if let Some(path) = std::env::var_os("TIDEPOOL_QEMU") {
        // An explicit choice is never silently replaced by a build.
        return probe(Path::new(&path)).ok_or_else(|| unusable_explicit_qemu(Path::new(&path)));
    }
    if let Some(qemu) = find_qemu() {
        println!("setup: using {} ({})", qemu.binary.display(), qemu.generic_device);
        return Ok(qemu);
    }
    build_qemu()?;
    require_qemu()
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
    let missing: Vec<&String> =
        wanted.iter().filter(|target| !sysroot.join("lib/rustlib").join(target).join("lib").is_dir()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|target| target.as_str()).collect();
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
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
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
    run_command(Command::new("apt-get").args(["update", "-q"]))?;
    // The mirror serves the .orig tarball but answers 404 for the .dsc and
    // the Debian patches, so apt-get exits non-zero; what counts is the tarball.
    let _ = Command::new("apt-get")
        .args(["source", "--download-only", "qemu/bookworm-backports"])
        .current_dir(src_dir)
        .status();
    if !tarball.exists() {
        bail!("apt-get source did not fetch {TARBALL} into {}", src_dir.display());
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
