//! SIGINT, SIGTERM and SIGHUP while QEMU or the backend runs.
//!
//! A signal's default action ends xtask at once, and the children it started
//! (QEMU, the backend) would outlive it: Drop never runs. So while a launch
//! is in progress ([`Launching`]), a signal only records itself, and the
//! launch loops ([`crate::run`], [`crate::backend`]) notice it within a
//! tick, kill and reap their children, remove the socket and return an
//! error; `main` then exits with 128 + the signal number. Outside a launch
//! the default action still applies (cargo and ninja, in the same process
//! group, get a terminal's Ctrl-C themselves).
//!
//! Handlers are installed only by [`install`] (the `cargo xtask` binary);
//! other users of the library keep the default actions, and
//! [`interrupted`] stays `None` for them.
//!
//! Children are also started with a parent-death signal ([`die_with_parent`])
//! so that they go even when xtask is SIGKILLed.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{Error, Result};

/// The signals that stop a launch.
pub const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// True while no launch is in progress: a signal then takes its default action.
static IDLE: AtomicBool = AtomicBool::new(true);
/// The first signal that arrived during a launch (0: none). Never cleared:
/// the process is on its way out, so later launches stop at once.
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// Launches in progress (nested in `run_with_backend`, parallel in tests).
static ACTIVE: Mutex<usize> = Mutex::new(0);

/// Installs the handlers (once; later calls return the first result).
pub fn install() -> Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            for signal in SIGNALS {
                // The default action must be registered first: it ends the
                // process before the flag is set when no launch runs.
                signal_hook::flag::register_conditional_default(signal, &IDLE)
                    .and_then(|_| signal_hook::flag::register_usize(signal, &PENDING, signal as usize))
                    .map_err(|error| format!("cannot handle signal {signal}: {error}"))?;
            }
            Ok(())
        })
        .clone()
        .map_err(Error)
}

/// The signal that asked xtask to stop during a launch, if any.
pub fn interrupted() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// The error a launch returns when a signal stopped it.
pub fn interrupted_error(signal: i32) -> Error {
    Error(format!("stopped by {}", name(signal)))
}

/// `Err` if a signal arrived during a launch.
pub fn check() -> Result<()> {
    match interrupted() {
        Some(signal) => Err(interrupted_error(signal)),
        None => Ok(()),
    }
}

/// SIGINT, SIGTERM, ... (or the number).
pub fn name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal).map(String::from).unwrap_or_else(|| format!("signal {signal}"))
}

/// Marks a launch in progress while it lives; create it before the first
/// child and keep it until the last one is reaped.
pub struct Launching(());

impl Launching {
    /// Counts a launch as in progress until the returned value is dropped.
    pub fn start() -> Launching {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        *active += 1;
        IDLE.store(false, Ordering::SeqCst);
        Launching(())
    }
}

impl Drop for Launching {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        *active -= 1;
        if *active == 0 {
            IDLE.store(true, Ordering::SeqCst);
        }
    }
}

/// Has `signal` sent to the child when the thread that spawns it ends (the
/// kernel ties PR_SET_PDEATHSIG to the spawning thread, not the process), so
/// the child cannot outlive a SIGKILLed xtask. Spawn and stop children on one
/// thread, as `run` and `run_with_backend` do.
pub fn die_with_parent(command: &mut Command, signal: i32) -> &mut Command {
    // SAFETY: getpid is always safe to call.
    let parent = unsafe { libc::getpid() };
    let hook = move || {
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid are plain system
        // calls: async-signal-safe, no allocation, no locks, as pre_exec
        // requires between fork and exec.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls (above).
    unsafe { command.pre_exec(hook) }
}
