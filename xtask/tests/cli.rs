//! Bad input to `cargo xtask` gets a one-line message and status 1, never a
//! backtrace or a hang.

use std::process::Command;

fn xtask(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run xtask");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!text.contains("panicked"), "xtask panicked: {text}");
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn unknown_board_is_named() {
    let (status, text) = xtask(&["run", "hello", "--board", "nope"], &[]);
    assert_eq!(status, 1);
    assert!(text.contains("unknown board `nope` (known: jailhouse-qemu-arm64, qemu-virt, qemu-virt-pci)"), "{text}");
}

#[test]
fn unknown_command_and_options_are_named() {
    let (status, text) = xtask(&["frobnicate"], &[]);
    assert_eq!(status, 1);
    assert!(text.contains("unknown command `frobnicate`"), "{text}");
    let (status, text) = xtask(&["run", "--gic", "4"], &[]);
    assert_eq!(status, 1);
    assert!(text.contains("--gic takes 2 or 3, not `4`"), "{text}");
    let (status, text) = xtask(&["run", "--timeout", "soon"], &[]);
    assert_eq!(status, 1);
    assert!(text.contains("--timeout takes seconds"), "{text}");
}

#[test]
fn an_unusable_tidepool_qemu_is_named_not_built() {
    let (status, text) = xtask(&["dtb"], &[("TIDEPOOL_QEMU", "/nonexistent/qemu-system-aarch64")]);
    assert_eq!(status, 1);
    assert!(text.contains("TIDEPOOL_QEMU=/nonexistent/qemu-system-aarch64 is not a usable QEMU"), "{text}");
    assert!(!text.contains("or set TIDEPOOL_QEMU"), "{text}");
}

#[test]
fn an_unknown_image_is_named() {
    let (status, text) = xtask(&["build", "no_such_image"], &[]);
    assert_eq!(status, 1);
    assert!(text.contains("unknown image `no_such_image`"), "{text}");
}

#[test]
fn help_lists_every_command() {
    let (status, text) = xtask(&["help"], &[]);
    assert_eq!(status, 0);
    for command in ["setup", "build", "dtb", "run", "test"] {
        assert!(text.contains(&format!("\n  {command}")), "help lacks {command}: {text}");
    }
}
