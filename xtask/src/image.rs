//! Building guest images: the example is compiled for the bare-metal
//! target, and its loadable segments are written out as a raw arm64 Image
//! (what QEMU's `-kernel` and other loaders take with the DTB in x0).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::elf::{ElfFile64, ProgramHeader, Rela, SectionHeader};
use object::{Endianness, elf};

use crate::{Result, bail, paths, run_command};

/// The packages whose examples are images, with their directories in the
/// workspace. Each has an `image` feature (the runtime's, or one that turns
/// it on).
pub const IMAGE_PACKAGES: &[(&str, &str)] = &[("tidepool", "."), ("tidepool-codec-demo", "demos/codec")];

/// The package that has `examples/<name>.rs`, if any.
pub fn package_of(name: &str) -> Option<&'static str> {
    let workspace = paths::workspace();
    IMAGE_PACKAGES
        .iter()
        .find(|(_, dir)| workspace.join(dir).join("examples").join(format!("{name}.rs")).exists())
        .map(|(package, _)| *package)
}

/// Options for one image build.
#[derive(Clone, Debug)]
pub struct ImageBuild {
    /// The example's name (`examples/<name>.rs` of one of [`IMAGE_PACKAGES`]).
    pub name: String,
    /// The board the image is built for (`TIDEPOOL_BOARD`).
    pub board: String,
    /// Build with `--release`.
    pub release: bool,
    /// Extra cargo features of the image's package.
    pub features: Vec<String>,
    /// Images for the codec clip (`TIDEPOOL_CODEC_FRAMES`, read by
    /// demos/codec/build.rs) instead of the procedural clip.
    pub codec_frames: Option<PathBuf>,
    /// A device tree to build into the image (`TIDEPOOL_BUILTIN_DTB`), for
    /// loaders that pass none.
    pub builtin_dtb: Option<PathBuf>,
}

impl ImageBuild {
    /// A release build of example `name` for qemu-virt, with nothing else set.
    pub fn new(name: &str) -> Self {
        ImageBuild {
            name: name.into(),
            board: "qemu-virt".into(),
            release: true,
            features: Vec::new(),
            codec_frames: None,
            builtin_dtb: None,
        }
    }

    /// Where the image goes; features are part of the name so that variants
    /// of one example coexist.
    pub fn output(&self) -> PathBuf {
        let mut file = format!("{}-{}", self.board, self.name);
        for feature in &self.features {
            file.push('+');
            file.push_str(feature);
        }
        if self.codec_frames.is_some() {
            file.push_str("+frames");
        }
        if self.builtin_dtb.is_some() {
            file.push_str("+builtin-dtb");
        }
        paths::out_dir().join("images").join(format!("{file}.bin"))
    }
}

/// Compiles the example and converts it. Returns the raw image's path.
pub fn build(spec: &ImageBuild) -> Result<PathBuf> {
    let workspace = paths::workspace();
    let board = crate::board::Board::find(&spec.board)?;
    let target = board.target.as_str();
    let Some(package) = package_of(&spec.name) else {
        let dirs: Vec<String> = IMAGE_PACKAGES.iter().map(|(_, dir)| format!("{dir}/examples")).collect();
        bail!("unknown image `{}`: there is no {}.rs in {}", spec.name, spec.name, dirs.join(" or "));
    };
    let mut features = vec!["image".to_string()];
    features.extend(spec.features.iter().cloned());
    // A separate target dir keeps image builds from waiting on (or
    // invalidating) the host build that may be running us.
    let target_dir = workspace.join("target").join("images");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args(["build", "--quiet", "--package", package, "--example", &spec.name, "--target", target, "--features"])
        .arg(features.join(","))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("TIDEPOOL_BOARD", &board.image_board);
    match &spec.codec_frames {
        Some(dir) => cargo.env("TIDEPOOL_CODEC_FRAMES", dir),
        None => cargo.env_remove("TIDEPOOL_CODEC_FRAMES"),
    };
    match &spec.builtin_dtb {
        Some(tree) => cargo.env("TIDEPOOL_BUILTIN_DTB", tree),
        None => cargo.env_remove("TIDEPOOL_BUILTIN_DTB"),
    };
    if spec.release {
        cargo.arg("--release");
    }
    run_command(&mut cargo)?;
    let profile = if spec.release { "release" } else { "debug" };
    let elf = target_dir.join(target).join(profile).join("examples").join(&spec.name);
    let output = spec.output();
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)?;
    }
    elf_to_raw(&elf, &output, board.load_address)?;
    // The ELF too, for loaders (and tests) that take one: QEMU passes no
    // device tree to an ELF (x0 = 0).
    fs::copy(&elf, output.with_extension("elf"))?;
    Ok(output)
}

/// Writes the PT_LOAD segments of `elf` as one flat binary starting at the
/// lowest load address (what `objcopy -O binary` does), which must be the
/// board's `load_address` (its link.ld and board.toml must agree).
pub fn elf_to_raw(elf: &Path, output: &Path, load_address: u64) -> Result<()> {
    let image = flatten(elf, load_address)?;
    if image.get(56..60) != Some(b"ARM\x64") {
        bail!("{}: no arm64 Image header at the start (is .init.head first?)", elf.display());
    }
    fs::write(output, image)?;
    Ok(())
}

/// The PT_LOAD segments of `elf` as one flat binary from `load_address`,
/// its lowest load address.
pub fn flatten(elf: &Path, load_address: u64) -> Result<Vec<u8>> {
    let data = fs::read(elf)?;
    let file = ElfFile64::<Endianness>::parse(&*data).map_err(|e| crate::Error(format!("{}: {e}", elf.display())))?;
    let endian = file.endian();
    check_relocations(&file, &data, elf)?;
    let mut segments = Vec::new();
    for header in file.elf_program_headers() {
        if header.p_type(endian) != elf::PT_LOAD || header.p_filesz(endian) == 0 {
            continue;
        }
        let bytes = header.data(endian, &*data).map_err(|_| crate::Error(format!("{}: bad segment", elf.display())))?;
        segments.push((header.p_paddr(endian), bytes));
    }
    let Some(base) = segments.iter().map(|(address, _)| *address).min() else {
        bail!("{}: no loadable segments", elf.display());
    };
    if base != load_address {
        bail!("{}: linked at {base:#x}, but the board's load-address is {load_address:#x}", elf.display());
    }
    let end = segments.iter().map(|(address, bytes)| address + bytes.len() as u64).max().unwrap_or(base);
    let mut image = vec![0u8; (end - base) as usize];
    for (address, bytes) in segments {
        let offset = (address - base) as usize;
        image[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    Ok(image)
}

/// The entry code (src/arch/aarch64/entry.rs) applies `.rela.dyn` and knows
/// only R_AARCH64_RELATIVE, so an image with any other dynamic relocation,
/// or with relocations elsewhere, fails here instead of at boot.
fn check_relocations(file: &ElfFile64<Endianness>, data: &[u8], elf: &Path) -> Result<()> {
    let endian = file.endian();
    let sections = file.elf_section_table();
    for section in sections.iter() {
        let kind = section.sh_type(endian);
        let allocated = section.sh_flags(endian) & u64::from(elf::SHF_ALLOC) != 0;
        if !allocated || !matches!(kind, elf::SHT_REL | elf::SHT_RELA | elf::SHT_RELR) {
            continue;
        }
        let name = sections.section_name(endian, section).map(String::from_utf8_lossy).unwrap_or_default();
        let Ok(Some((entries, _))) = section.rela(endian, data) else {
            bail!("{}: relocation section {name} is not RELA, which the entry code cannot apply", elf.display());
        };
        if name != ".rela.dyn" {
            bail!("{}: relocations in {name}; the entry code applies only .rela.dyn", elf.display());
        }
        for entry in entries {
            let (kind, symbol) = (entry.r_type(endian, false), entry.r_sym(endian, false));
            if kind != elf::R_AARCH64_RELATIVE || symbol != 0 {
                bail!(
                    "{}: relocation type {kind} (symbol {symbol}) at {:#x}: the entry code applies only \
                     R_AARCH64_RELATIVE ({})",
                    elf.display(),
                    entry.r_offset(endian),
                    elf::R_AARCH64_RELATIVE
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::package_of;

    #[test]
    fn images_are_found_in_their_packages() {
        assert_eq!(package_of("hello"), Some("tidepool"));
        assert_eq!(package_of("codec_demo"), Some("tidepool-codec-demo"));
        assert_eq!(package_of("codec_bench"), Some("tidepool-codec-demo"));
        assert_eq!(package_of("no_such_image"), None);
    }
}
