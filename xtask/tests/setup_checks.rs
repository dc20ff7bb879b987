//! `cargo xtask setup` checks every precondition it cannot fix itself
//! before any long step and reports them all in one error, each with its
//! fix: made-up machines for the checks, stand-in rustc binaries and
//! scratch directories for the probes that fill them in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use xtask::setup::{BuildSite, Machine, Problem, Toolchain, check, problems, qemu_build_bytes};

const GIB: u64 = 1 << 30;

/// A machine setup can finish on by itself: root, rustup, the pinned
/// toolchain with its targets, room for a QEMU build.
fn ready() -> Machine {
    Machine {
        root: true,
        missing_packages: vec!["ninja-build".into(), "libfdt-dev".into()],
        rustup: true,
        rust: Toolchain {
            version: Some("1.95.0".into()),
            pinned_channel: Some("1.95.0".into()),
            sysroot: PathBuf::from("/opt/rust"),
            missing_targets: vec!["aarch64-unknown-none".into()],
        },
        explicit_qemu: None,
        qemu_build: Some(BuildSite {
            cache_dir: PathBuf::from("/home/u/.cache/tidepool"),
            writable: true,
            free_bytes: 50 * GIB,
            reclaimable_bytes: 0,
            tarball_cached: false,
            backports_listed: false,
        }),
    }
}

fn site(machine: &mut Machine) -> &mut BuildSite {
    machine.qemu_build.as_mut().unwrap()
}

#[test]
fn what_setup_fixes_itself_is_no_problem() {
    // Root installs the packages and the backports list; rustup adds the
    // target.
    assert_eq!(problems(&ready()), vec![]);
    check(&ready()).unwrap();
    // Nothing to build: the cache is not looked at.
    let mut machine = ready();
    machine.qemu_build = None;
    machine.root = false;
    machine.missing_packages.clear();
    assert_eq!(problems(&machine), vec![]);
}

#[test]
fn every_problem_is_reported_at_once_with_its_fix() {
    let mut machine = ready();
    machine.root = false;
    machine.rustup = false;
    machine.rust.version = Some("1.85.1".into());
    machine.explicit_qemu = Some((PathBuf::from("/usr/bin/qemu-system-aarch64"), false));
    let cache = site(&mut machine);
    cache.writable = false;
    cache.free_bytes = GIB / 2;
    let found = problems(&machine);
    assert_eq!(
        found,
        vec![
            Problem::MissingPackages(vec!["ninja-build".into(), "libfdt-dev".into()]),
            Problem::NoRustup { version: Some("1.85.1".into()), pinned: "1.95.0".into() },
            Problem::MissingTargets { targets: vec!["aarch64-unknown-none".into()], sysroot: "/opt/rust".into() },
            Problem::UnusableQemu("/usr/bin/qemu-system-aarch64".into()),
            Problem::CacheNotWritable("/home/u/.cache/tidepool".into()),
            Problem::DiskSpace {
                dir: "/home/u/.cache/tidepool".into(),
                available: GIB / 2,
                needed: qemu_build_bytes(false)
            },
            Problem::BackportsNotListed,
        ]
    );
    let error = check(&machine).unwrap_err().to_string();
    println!("{error}");
    assert!(error.starts_with("setup cannot go on: 7 problem(s)"), "{error}");
    for (number, fix) in [
        (1, "fix: sudo apt-get install ninja-build libfdt-dev"),
        (2, "fix: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"),
        (2, "&& rustup toolchain install"),
        (3, "&& rustup toolchain install && rustup target add aarch64-unknown-none"),
        (4, "fix: unset TIDEPOOL_QEMU"),
        (5, "export TIDEPOOL_CACHE_DIR="),
        (6, "0.5 GiB available, 1.3 GiB needed"),
        (6, "free another 0.8 GiB on that file system"),
        (7, "| sudo tee /etc/apt/sources.list.d/tidepool-bookworm-backports.list && sudo apt-get update"),
    ] {
        let item = error.split(&format!("\n{number}. ")).nth(1).unwrap_or_else(|| panic!("no item {number}: {error}"));
        let item = item.split(&format!("\n{}. ", number + 1)).next().unwrap();
        assert!(item.contains(fix), "item {number} lacks {fix:?}:\n{item}");
    }
    // Each problem is its line and a fix line.
    assert_eq!(error.lines().filter(|line| line.starts_with("   fix: ")).count(), 7, "{error}");
}

#[test]
fn a_toolchain_without_rustup_is_fine_when_it_is_the_pinned_one() {
    let mut machine = ready();
    machine.rustup = false;
    machine.rust.missing_targets.clear();
    assert_eq!(problems(&machine), vec![]);
    // `1.95` pins any 1.95.x; a channel name cannot be checked and is trusted.
    machine.rust.pinned_channel = Some("1.95".into());
    assert_eq!(problems(&machine), vec![]);
    machine.rust.pinned_channel = Some("stable".into());
    machine.rust.version = Some("1.70.0".into());
    assert_eq!(problems(&machine), vec![]);
    // 1.9 is not 1.95.
    machine.rust.pinned_channel = Some("1.9".into());
    assert!(matches!(problems(&machine)[..], [Problem::NoRustup { .. }]));
    // No rustc at all: one problem (its targets cannot be known).
    machine.rust.version = None;
    machine.rust.missing_targets = vec!["aarch64-unknown-none".into()];
    assert_eq!(problems(&machine), vec![Problem::NoRustup { version: None, pinned: "1.9".into() }]);
}

#[test]
fn the_disk_needs_the_measured_build_plus_a_margin() {
    // The measurement (870 MiB) plus the margin, between 1.3 and 1.4 GiB.
    let needed = qemu_build_bytes(false);
    assert!((13 * GIB / 10..14 * GIB / 10).contains(&needed), "{needed}");
    assert_eq!(needed - qemu_build_bytes(true), xtask::setup::QEMU_TARBALL_MIB << 20);
    let mut machine = ready();
    site(&mut machine).free_bytes = needed;
    assert_eq!(problems(&machine), vec![]);
    site(&mut machine).free_bytes = needed - 1;
    assert!(matches!(problems(&machine)[..], [Problem::DiskSpace { .. }]));
    // A cached tarball is not fetched again.
    site(&mut machine).tarball_cached = true;
    assert_eq!(problems(&machine), vec![]);
    // What the build deletes first (an unfinished build, the venv) counts.
    site(&mut machine).tarball_cached = false;
    site(&mut machine).reclaimable_bytes = 1;
    assert_eq!(problems(&machine), vec![]);
}

#[test]
fn a_user_needs_root_only_for_what_is_not_there() {
    let mut machine = ready();
    machine.root = false;
    machine.missing_packages.clear();
    // The source list is there: apt-get source works as any user.
    site(&mut machine).backports_listed = true;
    assert_eq!(problems(&machine), vec![]);
    site(&mut machine).backports_listed = false;
    assert_eq!(problems(&machine), vec![Problem::BackportsNotListed]);
    // The tarball is cached: nothing to fetch.
    site(&mut machine).tarball_cached = true;
    assert_eq!(problems(&machine), vec![]);
}

/// Tests that start processes run one at a time: a stand-in script still
/// open for writing in one test is inherited by another test's fork until
/// that child execs, and running the script then fails with ETXTBSY.
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
    let dir = std::env::temp_dir().join(format!("tidepool-setup-checks-{}-{name}", std::process::id()));
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
fn the_toolchain_probe_reads_version_sysroot_and_targets() {
    let _serial = serial();
    let dir = scratch("probe");
    let sysroot = dir.join("sysroot");
    let body = format!(
        "case \"$1\" in --version) echo 'rustc 1.88.0 (6b00bc388 2025-06-23)';; \
         --print) echo {};; *) exit 1;; esac",
        sysroot.display()
    );
    let rustc = script(&dir, "rustc", &body);
    let toolchain = Toolchain::probe(&dir, &rustc).unwrap();
    assert_eq!(
        toolchain,
        Toolchain {
            version: Some("1.88.0".into()),
            pinned_channel: Some("1.95.0".into()),
            sysroot: sysroot.clone(),
            missing_targets: vec!["aarch64-unknown-none".into()],
        }
    );
    // Without rustup that is two problems, reported together.
    let mut machine = ready();
    machine.rustup = false;
    machine.rust = toolchain;
    let found = problems(&machine);
    assert!(matches!(found[..], [Problem::NoRustup { .. }, Problem::MissingTargets { .. }]), "{found:?}");
    // With the target's libraries there, only the version is wrong.
    fs::create_dir_all(sysroot.join("lib/rustlib/aarch64-unknown-none/lib")).unwrap();
    assert_eq!(Toolchain::probe(&dir, &rustc).unwrap().missing_targets, Vec::<String>::new());
    // A rustc that does not run.
    let broken = Toolchain::probe(&dir, &dir.join("no-such-rustc")).unwrap();
    assert_eq!((broken.version, broken.missing_targets.len()), (None, 1));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cache_probe_measures_its_file_system() {
    let _serial = serial();
    let dir = scratch("cache");
    // The cache need not exist yet: its nearest existing parent is asked.
    let cache = dir.join("not/yet/there");
    let site = BuildSite::probe(&cache);
    assert!(site.writable);
    assert!(site.free_bytes > 0);
    assert_eq!((site.reclaimable_bytes, site.tarball_cached), (0, false));
    // statvfs agrees with df's Avail (other writers may move it a little).
    let df = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(&dir).output().unwrap();
    let avail: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(site.free_bytes.abs_diff(avail) < 256 << 20, "statvfs {} vs df {avail}", site.free_bytes);
    // An old venv and a cached tarball are seen.
    fs::create_dir_all(cache.join("python-venv/bin")).unwrap();
    fs::write(cache.join("python-venv/bin/big"), vec![1u8; 100_000]).unwrap();
    fs::create_dir_all(cache.join("src")).unwrap();
    fs::write(cache.join("src/qemu_10.0.2+ds.orig.tar.xz"), b"x").unwrap();
    let site = BuildSite::probe(&cache);
    assert!(site.reclaimable_bytes >= 100_000, "{}", site.reclaimable_bytes);
    assert!(site.tarball_cached);
    assert_eq!(xtask::setup::disk_usage(&cache.join("python-venv")), site.reclaimable_bytes);
    fs::remove_dir_all(&dir).unwrap();
}
