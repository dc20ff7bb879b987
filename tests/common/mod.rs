// Each test binary uses part of this module.
#![allow(dead_code)]

//! Booting images under QEMU from host tests, through the xtask library.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use xtask::board::{Board, Variant};
use xtask::image::ImageBuild;
use xtask::qemu::Launch;
use xtask::run::Outcome;
use xtask::setup::Qemu;

pub const TIMEOUT: Duration = Duration::from_secs(90);

fn qemu() -> Qemu {
    static QEMU: OnceLock<Qemu> = OnceLock::new();
    QEMU.get_or_init(|| xtask::setup::require_qemu().unwrap_or_else(|error| panic!("{error}"))).clone()
}

/// Builds each image variant once per test binary (builds are serialised;
/// cargo would serialise them anyway).
pub fn image(spec: ImageBuild) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(&spec.output()) {
        return path.clone();
    }
    let path = xtask::image::build(&spec).unwrap_or_else(|error| panic!("building {}: {error}", spec.name));
    built.insert(spec.output(), path.clone());
    path
}

/// The board tree for `variant` with `overlays` (names of
/// tests/data/overlays/*.dts) applied after the board's own.
pub fn tree(variant: Variant, overlays: &[&str]) -> PathBuf {
    tree_on("qemu-virt", variant, overlays)
}

/// [`tree`] for board `board`.
pub fn tree_on(board: &str, variant: Variant, overlays: &[&str]) -> PathBuf {
    static TREES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut trees = TREES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let board = Board::find(board).expect("a known board");
    let key = format!("{}-{}{}", board.name, variant.label(), overlays.join("+"));
    let sources: Vec<PathBuf> = overlays
        .iter()
        .map(|name| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/overlays").join(format!("{name}.dts")))
        .collect();
    trees
        .entry(key)
        .or_insert_with(|| {
            xtask::dtb::board_tree_with(&qemu(), board, variant, &sources).unwrap_or_else(|error| panic!("{error}"))
        })
        .clone()
}

/// Boots `name` on qemu-virt and returns what happened; the console is
/// printed so a failing test shows it.
pub fn boot(name: &str, variant: Variant, bootargs: &[&str], extra_args: &[&str]) -> Outcome {
    boot_spec(ImageBuild::new(name), variant, bootargs, extra_args)
}

pub fn boot_spec(spec: ImageBuild, variant: Variant, bootargs: &[&str], extra_args: &[&str]) -> Outcome {
    boot_with_tree(spec, variant, tree(variant, &[]), bootargs, extra_args)
}

/// QEMU's own tree, without the board overlay: no DMA pools at all.
pub fn qemu_tree(variant: Variant) -> PathBuf {
    let board = Board::find("qemu-virt").expect("qemu-virt is a known board");
    xtask::dtb::qemu_tree(&qemu(), board, variant).unwrap_or_else(|error| panic!("{error}"))
}

/// How the tests launch an image on qemu-virt.
pub fn launch(spec: ImageBuild, variant: Variant, dtb: PathBuf, bootargs: &[&str], extra_args: &[&str]) -> Launch {
    launch_on("qemu-virt", spec, variant, dtb, bootargs, extra_args)
}

/// [`launch`] on board `board` (the image is built for the board's image
/// board).
pub fn launch_on(
    board: &str,
    spec: ImageBuild,
    variant: Variant,
    dtb: PathBuf,
    bootargs: &[&str],
    extra_args: &[&str],
) -> Launch {
    Launch {
        qemu: qemu(),
        board: Board::find(board).expect("a known board"),
        variant,
        image: image(spec),
        dtb,
        bootargs: bootargs.iter().map(|s| s.to_string()).collect(),
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        load_address: None,
        comm_region: None,
        cell_tree: None,
    }
}

pub fn boot_with_tree(
    spec: ImageBuild,
    variant: Variant,
    dtb: PathBuf,
    bootargs: &[&str],
    extra_args: &[&str],
) -> Outcome {
    let launch = launch(spec, variant, dtb, bootargs, extra_args);
    run_launch(&launch)
}

/// Runs a prepared launch and prints its console.
pub fn run_launch(launch: &Launch) -> Outcome {
    let outcome = xtask::run::run(launch, TIMEOUT, false).unwrap_or_else(|error| panic!("{error}"));
    println!(
        "--- console of {} ({}, {}) ---\n{}--- end ---",
        launch.image.display(),
        launch.board.name,
        launch.variant.label(),
        outcome.console
    );
    outcome
}

/// Boots `spec` with the hostmem backend attached (NUMA split: the backend
/// sees only the pool and region nodes).
pub fn boot_with_backend(
    spec: ImageBuild,
    variant: Variant,
    bootargs: &[&str],
    backend: &xtask::backend::BackendSpec,
) -> Outcome {
    boot_with_backend_on("qemu-virt", spec, variant, bootargs, backend)
}

/// [`boot_with_backend`] on board `board`.
pub fn boot_with_backend_on(
    board: &str,
    spec: ImageBuild,
    variant: Variant,
    bootargs: &[&str],
    backend: &xtask::backend::BackendSpec,
) -> Outcome {
    let launch = launch_on(board, spec, variant, tree_on(board, variant, &[]), bootargs, &[]);
    let outcome =
        xtask::run::run_with_backend(&launch, backend, TIMEOUT, false).unwrap_or_else(|error| panic!("{error}"));
    println!(
        "--- console of {} ({}) ---\n{}--- backend ---\n{}--- end ---",
        launch.image.display(),
        variant.label(),
        outcome.console,
        outcome.backend_output
    );
    outcome
}

/// The codec demo's closing lines, on any board: every frame verified, and
/// per frame no payload byte copied by the transport (only the 72-byte
/// notification bounced, as the DMA pool measured), one doorbell and
/// nothing else (no events asked for, none sent).
pub fn assert_codec_demo_zero_copy(outcome: &Outcome) {
    assert!(outcome.has_line("codec: summary: 30 verified, 0 failed, of 30 frames"), "{}", outcome.console);
    assert_eq!(outcome.console.matches(" verified\n").count(), 30, "one line per frame");
    assert!(
        outcome.console.contains("codec: per frame: 0.0 payload bytes copied by the transport, 72 bytes of messages"),
        "{}",
        outcome.console
    );
    assert!(outcome.console.contains("1.00 doorbells, 0.00 interrupts, 0.00 events"), "{}", outcome.console);
    assert_eq!(outcome.exit_line_status, Some(0));
}

/// `ring_outside_pool` on any board: the image misplaced its first ring,
/// the backend (which sees only the pool and region memory) could not map
/// it, and the image did not pass.
pub fn assert_misplaced_ring_caught(outcome: &Outcome) {
    assert!(outcome.console.contains("ring_outside_pool: ring placed at"), "the sabotage did not happen");
    assert!(outcome.backend_output.contains("Missing memory mapping"), "the backend did not refuse the ring");
    assert!(!outcome.has_line("1 passed, 0 failed"), "a misplaced ring must not go unnoticed");
    assert_ne!(outcome.status(), 0);
}

/// The emulated Jailhouse cell board.
pub const CELL_BOARD: &str = "jailhouse-qemu-arm64";

/// Boots `name` in the emulated Jailhouse cell, with the comm region the
/// board's hypervisor writes after `edit` (a hostile hypervisor's changes).
pub fn boot_cell(name: &str, edit: impl FnOnce(&mut xtask::cell::CommRegion)) -> Outcome {
    let mut spec = ImageBuild::new(name);
    spec.board = CELL_BOARD.into();
    boot_cell_spec(spec, edit)
}

/// [`boot_cell`] for an image build of its own (a built-in tree, say).
pub fn boot_cell_spec(spec: ImageBuild, edit: impl FnOnce(&mut xtask::cell::CommRegion)) -> Outcome {
    boot_cell_with(spec, None, None, edit)
}

/// [`boot_cell_spec`] at `load_address` (the board's if None), with `tree`
/// at the given address in x0, as `jailhouse cell linux` starts an image.
pub fn boot_cell_with(
    spec: ImageBuild,
    load_address: Option<u64>,
    tree: Option<(PathBuf, u64)>,
    edit: impl FnOnce(&mut xtask::cell::CommRegion),
) -> Outcome {
    let board = Board::find(CELL_BOARD).expect("the cell board exists");
    let cell = board.cell.as_ref().expect("a [jailhouse-cell] board");
    let mut region = cell.comm_region.clone();
    edit(&mut region);
    let launch = Launch {
        qemu: qemu(),
        board,
        variant: Variant::default(),
        image: image(spec),
        dtb: PathBuf::new(),
        bootargs: Vec::new(),
        extra_args: Vec::new(),
        load_address,
        comm_region: Some(region),
        cell_tree: tree,
    };
    run_launch(&launch)
}
