//! The committed seeds are the generator's (`src/seeds.rs`), and every
//! seed, and every reproducer the targets found (`tests/data/fuzz/<target>/`,
//! each also fed to a unit test of the crate it concerns), runs through its
//! target without a failure. `TIDEPOOL_FUZZ_WRITE_SEEDS=1` rewrites
//! the seed files instead of comparing them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tidepool_fuzz::{TARGETS, seeds};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).filter(|path| path.is_file()).collect();
    files.sort();
    files
}

#[test]
fn committed_seeds_are_the_generated_ones() {
    let repository = fuzz_dir().parent().unwrap().to_path_buf();
    let write = std::env::var_os("TIDEPOOL_FUZZ_WRITE_SEEDS").is_some();
    let generated = seeds::all(&repository);
    for (target, _) in TARGETS {
        let directory = fuzz_dir().join("seeds").join(target);
        let expected: BTreeSet<String> =
            generated.iter().filter(|(t, _, _)| t == target).map(|(_, name, _)| name.clone()).collect();
        assert!(!expected.is_empty(), "no seeds for {target}");
        if write {
            std::fs::create_dir_all(&directory).unwrap();
            for path in files(&directory) {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (_, name, bytes) in generated.iter().filter(|(t, _, _)| t == target) {
            let path = directory.join(name);
            if write {
                std::fs::write(&path, bytes).unwrap();
            } else {
                let committed = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                assert!(
                    &committed == bytes,
                    "{} differs from src/seeds.rs (TIDEPOOL_FUZZ_WRITE_SEEDS=1)",
                    path.display()
                );
            }
        }
        let present: BTreeSet<String> =
            files(&directory).iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(present, expected, "{}: files not made by src/seeds.rs", directory.display());
    }
}

#[test]
fn seeds_and_regressions_run_clean() {
    let mut count = 0;
    for (target, run) in TARGETS {
        let regressions = fuzz_dir().parent().unwrap().join("tests/data/fuzz");
        for directory in [fuzz_dir().join("seeds"), regressions] {
            for path in files(&directory.join(target)) {
                let bytes = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&bytes));
                assert!(outcome.is_ok(), "{target}: {} fails", path.display());
                count += 1;
            }
        }
    }
    assert!(count >= 30, "only {count} inputs ran");
}
