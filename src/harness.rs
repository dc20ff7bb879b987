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

/// What a test case returns: `Err` fails the case (see [`crate::ensure!`]).
pub type TestResult = Result<(), TestFailure>;

/// One test case of a test image.
pub struct TestCase {
    /// The name printed on the case's line.
    pub name: &'static str,
    /// The case.
    pub run: fn(&Boot) -> TestResult,
}

/// Counts of a finished run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases that returned `Ok`.
    pub passed: usize,
    /// Cases that returned `Err`.
    pub failed: usize,
}

impl Summary {
    /// [`crate::exit::SUCCESS`] if no case failed, else
    /// [`crate::exit::FAILURE`].
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
///
/// It returns `Err(TestFailure(reason))` from the enclosing function, so it
/// belongs in a function returning [`TestResult`]; the reason is formatted
/// only when the check fails.
///
/// ```
/// use tidepool::TestResult;
///
/// fn in_range(value: u32) -> TestResult {
///     tidepool::ensure!(value < 10, "{value} is not below 10");
///     Ok(())
/// }
///
/// assert!(in_range(3).is_ok());
/// assert_eq!(in_range(12).unwrap_err().0, "12 is not below 10");
/// ```
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
///
/// Each case is a `fn(&Boot) -> TestResult`, run once, in the order given,
/// after the runtime has booted (as for [`crate::entry!`], which this macro
/// uses: an image has one or the other). The image prints `test NAME ...
/// ok` or `... FAILED: reason` per case, then `N passed, N failed`, and
/// exits with 0 only if no case failed. A case that panics ends the image
/// (status 101).
///
/// ```ignore
/// // examples/my_tests.rs, with `required-features = ["image"]`
/// #![no_std]
/// #![no_main]
///
/// use tidepool::{Boot, TestResult, ensure};
///
/// tidepool::test_image!(has_ram, has_a_console);
///
/// fn has_ram(boot: &Boot) -> TestResult {
///     ensure!(boot.platform.total_ram() > 0, "no RAM");
///     Ok(())
/// }
///
/// fn has_a_console(boot: &Boot) -> TestResult {
///     ensure!(boot.platform.uart().is_some(), "no UART");
///     Ok(())
/// }
/// ```
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
