//! Mutation test of `tidepool::devicetree`: every fixture blob is mutated
//! many times (deterministically: xorshift with fixed seeds) and each mutant
//! goes through `blob_total_size`, `normalize`, `discover` (on the
//! normalised copy and on the raw mutant) and `layout`, plus the `Display`
//! output. The test fails on the first panic, naming the fixture, seed and
//! mutation index, so the failure can be replayed alone.
//!
//! Longer campaigns: `TIDEPOOL_DT_MUTATIONS=5000000 TIDEPOOL_DT_SEED=7 cargo
//! test --release --test devicetree_mutation -- --nocapture`.

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use tidepool::devicetree::{self, HEADER_SIZE};
use tidepool::platform::{self, Range};

/// Mutations over all fixtures together, unless TIDEPOOL_DT_MUTATIONS says.
const TOTAL_MUTATIONS: usize = 120_000;
/// Unless TIDEPOOL_DT_SEED says.
const BASE_SEED: u64 = 0x7469_6465_706f_6f6c; // "tidepool"

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 { 0 } else { (self.next() % bound as u64) as usize }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Words that make parsers take unusual paths: the FDT tokens (1..=9),
/// boundaries, and values near the sizes and phandles in QEMU's trees.
const INTERESTING_WORDS: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    0x10,
    0x28,
    0x38,
    0x40,
    0x1000,
    0x8000,
    0x8002,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffc,
    0xffff_ffff,
    0xd00d_feed,
];
const INTERESTING_BYTES: &[u8] = &[0, 1, 2, 3, 4, 9, 0x20, 0x2f, 0x40, 0x7f, 0x80, 0xfe, 0xff];

fn word_at(blob: &[u8], at: usize) -> u32 {
    blob.get(at..at + 4).map_or(0, |bytes| u32::from_be_bytes(bytes.try_into().unwrap()))
}

fn set_word(blob: &mut [u8], at: usize, value: u32) {
    if let Some(bytes) = blob.get_mut(at..at + 4) {
        bytes.copy_from_slice(&value.to_be_bytes());
    }
}

/// Keeps totalsize, the strings offset and the struct size in step with
/// `delta` bytes inserted or removed at `at`, when `at` is inside the
/// struct block: the mutant then gets past the header checks and tests the
/// token walk and discovery instead.
fn shift_header(blob: &mut [u8], at: usize, delta: i64) {
    let shifted = |value: u32| (value as i64 + delta).clamp(0, u32::MAX as i64) as u32;
    let off_struct = word_at(blob, 8) as usize;
    let size_struct = word_at(blob, 36) as usize;
    if (off_struct..off_struct + size_struct).contains(&at) {
        set_word(blob, 4, shifted(word_at(blob, 4)));
        set_word(blob, 12, shifted(word_at(blob, 12)));
        set_word(blob, 36, shifted(word_at(blob, 36)));
    }
}

#[derive(Clone, Copy, Debug)]
enum Mutation {
    FlipBit,
    OverwriteByte,
    OverwriteWord,
    Truncate,
    Splice,
    Duplicate,
    Delete,
    HeaderField,
}

const MUTATIONS: &[Mutation] = &[
    Mutation::FlipBit,
    Mutation::OverwriteByte,
    Mutation::OverwriteWord,
    Mutation::OverwriteWord,
    Mutation::Truncate,
    Mutation::Splice,
    Mutation::Duplicate,
    Mutation::Delete,
    Mutation::HeaderField,
];

fn mutate(blob: &mut Vec<u8>, rng: &mut Rng, mutation: Mutation) {
    let len = blob.len();
    let aligned = |rng: &mut Rng| rng.below(len / 4) * 4;
    match mutation {
        Mutation::FlipBit => {
            let at = rng.below(len);
            blob[at] ^= 1 << rng.below(8);
        }
        Mutation::OverwriteByte => {
            let at = rng.below(len);
            blob[at] = rng.pick(INTERESTING_BYTES);
        }
        Mutation::OverwriteWord => {
            let at = aligned(rng);
            let value = if rng.below(4) == 0 { rng.next() as u32 } else { rng.pick(INTERESTING_WORDS) };
            set_word(blob, at, value);
        }
        Mutation::Truncate => {
            let new_len = rng.below(len);
            blob.truncate(new_len);
            // Half the time the header agrees, to get past the size check.
            if rng.below(2) == 0 {
                set_word(blob, 4, new_len as u32);
            }
        }
        Mutation::Splice => {
            let (from, to) = (aligned(rng), aligned(rng));
            let chunk = 4 * (1 + rng.below(8));
            let source: Vec<u8> = blob[from..(from + chunk).min(len)].to_vec();
            let end = (to + source.len()).min(len);
            blob[to..end].copy_from_slice(&source[..end - to]);
        }
        Mutation::Duplicate => {
            let (from, to) = (aligned(rng), aligned(rng));
            let chunk = 4 * (1 + rng.below(16));
            let source: Vec<u8> = blob[from..(from + chunk).min(len)].to_vec();
            let inserted = source.len() as i64;
            blob.splice(to..to, source);
            if rng.below(4) != 0 {
                shift_header(blob, to, inserted);
            }
        }
        Mutation::Delete => {
            let at = aligned(rng);
            let chunk = (4 * (1 + rng.below(16))).min(len - at);
            blob.drain(at..at + chunk);
            if rng.below(4) != 0 {
                shift_header(blob, at, -(chunk as i64));
            }
        }
        Mutation::HeaderField => {
            let at = 4 * rng.below(HEADER_SIZE / 4);
            let old = word_at(blob, at);
            let value = match rng.below(3) {
                0 => rng.pick(INTERESTING_WORDS),
                1 => old.wrapping_add(4 * (rng.below(8) as u32)),
                _ => old.wrapping_sub(4 * (rng.below(8) as u32)),
            };
            set_word(blob, at, value);
        }
    }
}

#[derive(Default)]
struct Counts {
    mutants: usize,
    total_size_ok: usize,
    normalize_ok: usize,
    normalize_err: usize,
    discover_ok: usize,
    discover_err: usize,
    raw_discover_ok: usize,
    devices_with_errors: usize,
    pools_placed: usize,
}

/// Everything a boot does with a tree. Returns nothing: only panics matter,
/// and the counts.
fn run_pipeline(mutant: &[u8], out: &mut [u8], counts: &mut Counts) {
    counts.mutants += 1;
    if devicetree::blob_total_size(mutant).is_ok() {
        counts.total_size_ok += 1;
    }
    // The raw mutant straight into discovery must be safe too.
    if let Ok(platform) = devicetree::discover(mutant) {
        counts.raw_discover_ok += 1;
        let _ = platform.to_string();
    }
    let len = match devicetree::normalize(mutant, out) {
        Ok(len) => len,
        Err(error) => {
            counts.normalize_err += 1;
            let _ = error.to_string();
            return;
        }
    };
    counts.normalize_ok += 1;
    let platform = match devicetree::discover(&out[..len]) {
        Ok(platform) => platform,
        Err(error) => {
            counts.discover_err += 1;
            let _ = error.to_string();
            return;
        }
    };
    counts.discover_ok += 1;
    counts.devices_with_errors += platform.virtio().iter().filter(|device| device.is_err()).count();
    let mut text = platform.to_string();
    let _ = platform.device_windows().count();
    for (image, dtb) in [
        (Range { base: 0x4008_0000, size: 0x20_0000 }, Range { base: 0x4400_0000, size: 0x2000 }),
        (Range { base: 0x4800_0000, size: 0x10_0000 }, Range { base: 0x4000_0000, size: 0x1_0000 }),
    ] {
        let layout = platform::layout(&platform, image, dtb);
        counts.pools_placed += layout.pools().iter().filter(|pool| pool.is_ok()).count();
        let _ = write!(text, "{layout}");
        let placed: Vec<Range> = layout.pools().iter().filter_map(|pool| pool.as_ref().ok().copied()).collect();
        let declared: Vec<Range> = platform.pools().iter().filter_map(|pool| pool.declared).collect();
        for free in layout.free_ranges() {
            assert!(free.size > 0 && free.base.is_multiple_of(4096), "bad free range {free:?}");
            assert!(platform.memory().iter().any(|ram| ram.contains_range(free)), "free range {free:?} not in RAM");
            assert!(!free.overlaps(&image) && !free.overlaps(&dtb), "free range {free:?} over image or tree");
            // Nothing the host shares or the tree reserves ends up in the heap.
            for reserved in platform.reserved() {
                assert!(!free.overlaps(&reserved.range), "free range {free:?} over reservation {reserved:?}");
            }
            for pool in placed.iter().chain(&declared) {
                assert!(!free.overlaps(pool), "free range {free:?} over pool {pool:?}");
            }
        }
        // A placed pool is clear of every other placed pool and of every
        // reservation; one the runtime placed itself (no `reg`) also of
        // every range another pool declares, usable or not.
        for (index, (node, placed_pool)) in platform.pools().iter().zip(layout.pools()).enumerate() {
            let Ok(pool) = placed_pool else {
                continue;
            };
            for (other_index, other) in layout.pools().iter().enumerate() {
                if let Ok(other) = other
                    && other_index != index
                {
                    assert!(!pool.overlaps(other), "pool {pool:?} over pool {other:?}");
                }
            }
            if node.declared.is_none() {
                for other in &declared {
                    assert!(!pool.overlaps(other), "placed pool {pool:?} over declared pool {other:?}");
                }
            }
            for reserved in platform.reserved() {
                assert!(!pool.overlaps(&reserved.range), "pool {pool:?} over reservation {reserved:?}");
            }
        }
        // The final map: no-map reservations stay out unless a pool needs them.
        for normal in layout.normal_memory() {
            for reserved in platform.reserved().iter().filter(|reserved| reserved.no_map) {
                let pooled = placed.iter().any(|pool| pool.contains_range(normal));
                assert!(pooled || !normal.overlaps(&reserved.range), "{normal:?} mapped over no-map {reserved:?}");
            }
        }
    }
    // Device windows never share a page with RAM.
    for window in platform.device_windows() {
        let page =
            Range { base: window.base & !0xfff, size: (window.end() - (window.base & !0xfff)).div_ceil(4096) * 4096 };
        assert!(!platform.memory().iter().any(|ram| ram.overlaps(&page)), "device window {window:?} in RAM");
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dtb");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "dtb"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn mutated_trees_never_panic() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 8, "fixtures missing from tests/data/dtb");
    let total = setting("TIDEPOOL_DT_MUTATIONS", TOTAL_MUTATIONS as u64) as usize;
    let base_seed = setting("TIDEPOOL_DT_SEED", BASE_SEED);
    let per_fixture = total.div_ceil(fixtures.len());
    let mut counts = Counts::default();
    let started = Instant::now();
    for (index, (name, blob)) in fixtures.iter().enumerate() {
        let seed = base_seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = Rng::new(seed);
        // Room for normalising a mutant that grew.
        let mut out = vec![0; blob.len() * 2 + 4096];
        for mutation_index in 0..per_fixture {
            let mut mutant = blob.clone();
            // Mostly one mutation; sometimes a few on top of each other.
            let rounds = if rng.below(4) == 0 { 2 + rng.below(3) } else { 1 };
            for _ in 0..rounds {
                if mutant.len() < 8 {
                    break;
                }
                let mutation = rng.pick(MUTATIONS);
                mutate(&mut mutant, &mut rng, mutation);
            }
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_pipeline(&mutant, &mut out, &mut counts)));
            if outcome.is_err() {
                panic!(
                    "panic on {name} (seed {seed:#x}, mutation {mutation_index}); mutant of {} bytes: {:02x?}",
                    mutant.len(),
                    &mutant[..mutant.len().min(64)]
                );
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} mutants of {} fixtures in {:.1} s: blob_total_size ok {}; normalize ok {} / err {}; \
         discover ok {} / err {} (raw mutant ok {}); {} device errors recorded; {} pools placed; 0 panics",
        counts.mutants,
        fixtures.len(),
        elapsed.as_secs_f64(),
        counts.total_size_ok,
        counts.normalize_ok,
        counts.normalize_err,
        counts.discover_ok,
        counts.discover_err,
        counts.raw_discover_ok,
        counts.devices_with_errors,
        counts.pools_placed,
    );
    assert!(counts.mutants >= total.min(100_000));
    // The mutations must reach every stage, or the test proves little.
    assert!(counts.normalize_err > 0 && counts.discover_err > 0, "no mutant was refused");
    assert!(counts.discover_ok > counts.mutants / 10, "too few mutants reach discovery");
    assert!(counts.devices_with_errors > 0 && counts.pools_placed > 0);
}
