//! Building guest images: the example is compiled for the bare-metal
//! target, and its loadable segments are written out as a raw arm64 Image
//! (what QEMU's `-kernel` and other loaders take with the DTB in x0).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, elf};

use crate::{Result, bail, paths, run_command};

pub const TARGET: &str = "aarch64-unknown-none";

/// Options for one image build.
#[derive(Clone, Debug)]
pub struct ImageBuild {
    /// The example's name (examples/<name>.rs).
    pub name: String,
    pub board: String,
    pub release: bool,
    /// Extra cargo features of the `tidepool` crate (test-only switches).
    pub features: Vec<String>,
    /// Images for the codec clip (`TIDEPOOL_CODEC_FRAMES`, read by build.rs)
    /// instead of the procedural clip.
    pub codec_frames: Option<PathBuf>,
    /// A device tree to build into the image (`TIDEPOOL_BUILTIN_DTB`), for
    /// loaders that pass none.
    pub builtin_dtb: Option<PathBuf>,
}

impl ImageBuild {
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
    if !workspace.join("examples").join(format!("{}.rs", spec.name)).exists() {
        bail!("unknown image `{}`: there is no examples/{}.rs", spec.name, spec.name);
    }
    let mut features = vec!["image".to_string()];
    features.extend(spec.features.iter().cloned());
    // A separate target dir keeps image builds from waiting on (or
    // invalidating) the host build that may be running us.
    let target_dir = workspace.join("target").join("images");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args(["build", "--quiet", "--example", &spec.name, "--target", TARGET, "--features"])
        .arg(features.join(","))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("TIDEPOOL_BOARD", crate::board::Board::find(&spec.board).map_or(spec.board.as_str(), |b| b.image_board));
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
    let elf = target_dir.join(TARGET).join(profile).join("examples").join(&spec.name);
    let output = spec.output();
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)?;
    }
    elf_to_raw(&elf, &output)?;
    // The ELF too, for loaders (and tests) that take one: QEMU passes no
    // device tree to an ELF (x0 = 0).
    fs::copy(&elf, output.with_extension("elf"))?;
    Ok(output)
}

/// Writes the PT_LOAD segments of `elf` as one flat binary starting at the
/// lowest load address (what `objcopy -O binary` does).
pub fn elf_to_raw(elf: &Path, output: &Path) -> Result<()> {
    let data = fs::read(elf)?;
    let file = ElfFile64::<Endianness>::parse(&*data).map_err(|e| crate::Error(format!("{}: {e}", elf.display())))?;
    let endian = file.endian();
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
    let end = segments.iter().map(|(address, bytes)| address + bytes.len() as u64).max().unwrap_or(base);
    let mut image = vec![0u8; (end - base) as usize];
    for (address, bytes) in segments {
        let offset = (address - base) as usize;
        image[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    if image.get(56..60) != Some(b"ARM\x64") {
        bail!("{}: no arm64 Image header at the start (is .init.head first?)", elf.display());
    }
    fs::write(output, image)?;
    Ok(())
}
