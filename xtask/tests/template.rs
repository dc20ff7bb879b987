//! templates/tidepool-app used as a user would: copied out of the workspace,
//! its `tidepool` dependency pointed at this checkout, built, run and tested
//! with plain cargo, tidepool-runner as cargo's runner, on every board CI
//! can run (qemu-virt, qemu-virt-pci, and jailhouse-qemu-arm64 under the
//! emulated Jailhouse). Slow (a cold build of the runtime per board): a few minutes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The template copied to a fresh directory outside the workspace, with
/// its dependency on this checkout.
fn user_crate() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidepool-app-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&workspace().join("templates/tidepool-app"), &dir);
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let line = "tidepool = { path = \"../..\" }";
    assert!(text.contains(line), "the template's dependency line changed: update this test");
    let ours = format!("tidepool = {{ path = {:?} }}", workspace().display().to_string());
    std::fs::write(&manifest, text.replace(line, &ours)).unwrap();
    dir
}

/// `cargo ARGS` in `dir` with tidepool-runner on PATH, as after
/// `cargo install --path xtask --bin tidepool-runner`.
fn cargo(dir: &Path, args: &[&str]) -> (bool, String) {
    cargo_with(dir, args, None)
}

/// [`cargo`] with the runner cargo uses replaced by `runner` (what a user
/// does with `CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUNNER` to run on another
/// board).
fn cargo_with(dir: &Path, args: &[&str], runner: Option<&str>) -> (bool, String) {
    let installed = PathBuf::from(env!("CARGO_BIN_EXE_tidepool-runner"));
    let path = std::env::join_paths(
        std::iter::once(installed.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(dir).args(args).env("PATH", path);
    // Nothing of this workspace's build may leak into the user's.
    for variable in ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "TIDEPOOL_BOARD"]
    {
        command.env_remove(variable);
    }
    match runner {
        Some(runner) => command.env("CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUNNER", runner),
        None => command.env_remove("CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUNNER"),
    };
    let Output { status, stdout, stderr } = command.output().expect("cargo runs");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    println!("--- cargo {} ---\n{text}--- end ---", args.join(" "));
    (status.success(), text)
}

#[test]
fn the_template_builds_runs_and_tests_on_every_board_ci_runs() {
    let dir = user_crate();
    for (board, features) in [
        ("qemu-virt", &[][..]),
        ("jailhouse-qemu-arm64", &["--no-default-features", "--features", "jailhouse-qemu-arm64"][..]),
    ] {
        let with = |args: &[&str]| -> Vec<String> { args.iter().chain(features).map(|arg| arg.to_string()).collect() };
        let run = with(&["run"]);
        let (ok, text) = cargo(&dir, &run.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{board}: cargo run failed");
        assert!(text.contains("hello from my Tidepool image"), "{board}: no greeting");
        assert!(text.contains(&format!("board {board}, entered at EL")), "{board}: wrong board");

        let test = with(&["test"]);
        let (ok, text) = cargo(&dir, &test.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{board}: cargo test failed");
        assert!(text.contains("test result: ok. 3 passed; 0 failed;"), "{board}: no passing summary");

        if board == "qemu-virt" {
            let (ok, text) = cargo(&dir, &["run", "--bin", "rng"]);
            assert!(ok, "cargo run --bin rng failed");
            assert!(text.contains("16 random bytes through the pool"), "no entropy through the pool");
            // The same images on qemu-virt-pci, which runs qemu-virt's
            // images with every virtio device on PCI.
            let pci = Some("tidepool-runner --board qemu-virt-pci --device virtio-rng");
            let (ok, text) = cargo_with(&dir, &["run", "--bin", "rng"], pci);
            assert!(ok, "qemu-virt-pci: cargo run --bin rng failed");
            assert!(text.contains("16 random bytes through the pool"), "qemu-virt-pci: no entropy through the pool");
            let (ok, text) = cargo_with(&dir, &["test"], pci);
            assert!(ok && text.contains("test result: ok. 3 passed; 0 failed;"), "qemu-virt-pci: cargo test failed");
        } else {
            assert!(text.contains("cell state 2 (shut down)"), "the cell did not shut down");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
