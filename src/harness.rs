//! The test-image harness: an image declares test cases, the runtime runs
//! them in order, prints one line per case and closes with
//! `N passed, N failed`. The image's exit status is 0 only if none failed.
//!
//! ```ignore
//! tidepool::test_image!(pool_is_bound, virtio_rng_works);
//!
//! fn pool_is_bound(boot: &Boot) -> TestResult {
//!     tidepool::ensure!(boot.platform.pools().len() == 1, "expected one pool");
//!     Ok(())
//! }
//! ```

use alloc::string::String;

use crate::boot::Boot;

/// A failed check, with the reason printed on the case's line.
#[derive(Debug)]
pub struct TestFailure(pub String);

pub type TestResult = Result<(), TestFailure>;

/// One test case of a test image.
pub struct TestCase {
    pub name: &'static str,
    pub run: fn(&Boot) -> TestResult,
}

/// Counts of a finished run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

impl Summary {
    pub fn exit_status(self) -> u32 {
        if self.failed == 0 { crate::exit::SUCCESS } else { crate::exit::FAILURE }
    }
}

/// Runs every case and prints the per-case lines and the summary line.
pub fn run(boot: &Boot, cases: &[TestCase]) -> Summary {
    let mut summary = Summary::default();
    crate::println!("running {} test cases", cases.len());
    for case in cases {
        // In a Jailhouse cell: answer messages between cases, and refuse
        // shutdown during one if the image asked (see crate::jailhouse).
        crate::jailhouse::poll_messages();
        let busy = crate::jailhouse::busy();
        let result = (case.run)(boot);
        drop(busy);
        match result {
            Ok(()) => {
                summary.passed += 1;
                crate::println!("test {} ... ok", case.name);
            }
            Err(TestFailure(reason)) => {
                summary.failed += 1;
                crate::println!("test {} ... FAILED: {reason}", case.name);
            }
        }
    }
    crate::println!("{} passed, {} failed", summary.passed, summary.failed);
    summary
}

/// Fails the current test case with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            return Err($crate::harness::TestFailure($crate::__format!($($reason)+)));
        }
    };
}

/// Declares a test image: its `main` runs the named functions as test cases.
/// `test_image!(deny_shutdown; a, b)` also has a Jailhouse cell refuse the
/// hypervisor's shutdown requests while a case runs.
#[macro_export]
macro_rules! test_image {
    (deny_shutdown; $($case:ident),+ $(,)?) => {
        fn __tidepool_test_main(boot: &'static $crate::Boot) -> u32 {
            $crate::jailhouse::deny_shutdown_while_busy();
            let cases = [$($crate::harness::TestCase { name: stringify!($case), run: $case }),+];
            $crate::harness::run(boot, &cases).exit_status()
        }
        $crate::entry!(__tidepool_test_main);
    };
    ($($case:ident),+ $(,)?) => {
        fn __tidepool_test_main(boot: &'static $crate::Boot) -> u32 {
            let cases = [$($crate::harness::TestCase { name: stringify!($case), run: $case }),+];
            $crate::harness::run(boot, &cases).exit_status()
        }
        $crate::entry!(__tidepool_test_main);
    };
}
