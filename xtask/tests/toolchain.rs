//! `cargo xtask setup` adds the image targets a toolchain lacks before it
//! builds anything, or says how to: simulated with a stand-in rustc whose
//! sysroot has no target libraries, and stand-in rustups.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One test at a time: a stand-in written by one test while another forks
/// to run its own is held open in that child until it execs, and running
/// it then fails with ETXTBSY ("Text file busy").
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|error| error.into_inner())
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidepool-toolchain-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
    fs::write(
        dir.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"aarch64-unknown-none\"]\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_missing_target_is_added_with_rustup() {
    let _serial = serial();
    let dir = scratch("add");
    let rustc = script(&dir, "rustc", &format!("echo {}", dir.join("sysroot").display()));
    let log = dir.join("rustup.log");
    let rustup = script(&dir, "rustup", &format!("echo \"$@\" > {}", log.display()));
    xtask::setup::ensure_targets_with(&dir, &rustc, &rustup).unwrap();
    assert_eq!(fs::read_to_string(&log).unwrap().trim(), "target add aarch64-unknown-none");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_target_rustup_cannot_add_is_reported_with_the_command() {
    let _serial = serial();
    let dir = scratch("fail");
    let rustc = script(&dir, "rustc", &format!("echo {}", dir.join("sysroot").display()));
    let rustup = script(&dir, "rustup", "exit 1");
    let error = xtask::setup::ensure_targets_with(&dir, &rustc, &rustup).unwrap_err().to_string();
    assert!(error.contains("rustup target add aarch64-unknown-none"), "{error}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_toolchain_with_the_target_is_left_alone() {
    let _serial = serial();
    let dir = scratch("present");
    fs::create_dir_all(dir.join("sysroot/lib/rustlib/aarch64-unknown-none/lib")).unwrap();
    let rustc = script(&dir, "rustc", &format!("echo {}", dir.join("sysroot").display()));
    let rustup = script(&dir, "rustup", "exit 1");
    xtask::setup::ensure_targets_with(&dir, &rustc, &rustup).unwrap();
    fs::remove_dir_all(&dir).unwrap();
}
