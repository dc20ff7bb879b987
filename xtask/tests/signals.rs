//! A signal sent to `cargo xtask run` alone (not to its process group, so
//! QEMU and the backend do not get it too) must still leave neither QEMU nor
//! the backend running, nor the backend's socket behind, and xtask must say
//! so with 128 + the signal number.
//!
//! Boots the `hang` image (it never ends) with `--backend`, so that both
//! kinds of child run. Needs a QEMU, like the tests in the workspace's
//! tests/ (`cargo xtask setup`).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Building the image and the backend on a cold target dir takes minutes.
const STARTUP: Duration = Duration::from_secs(900);
/// xtask gives the backend up to 5 s to stop by itself before killing it.
const SHUTDOWN: Duration = Duration::from_secs(20);

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Proc {
    pid: i32,
    start: u64,
}

/// (state, ppid, start time) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).filter(|arg| !arg.is_empty()).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect()
}

/// Running (a zombie has ended: it only waits for a reaper).
fn alive(process: Proc) -> bool {
    stat(process.pid).is_some_and(|(state, _, start)| start == process.start && state != 'Z')
}

fn children(parent: i32) -> Vec<(Proc, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if let Some((state, ppid, start)) = stat(pid)
            && ppid == parent
            && state != 'Z'
        {
            found.push((Proc { pid, start }, cmdline(pid)));
        }
    }
    found
}

fn program_is(args: &[String], name: &str) -> bool {
    args.first().is_some_and(|arg0| arg0.rsplit('/').next() == Some(name))
}

/// Kills whatever is still running when the test ends, pass or fail, so a
/// failing test leaves no QEMU spinning.
struct Reaper {
    xtask: Child,
    children: Vec<Proc>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for &child in &self.children {
            if alive(child) {
                // SAFETY: kill has no memory-safety preconditions; `alive`
                // just matched pid and start time, so it is the same process.
                unsafe { libc::kill(child.pid, libc::SIGKILL) };
            }
        }
        let _ = self.xtask.kill();
        let _ = self.xtask.wait();
    }
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn a_signal_stops_qemu_and_the_backend(signal: i32, name: &str) {
    assert!(
        xtask::setup::find_qemu().is_some(),
        "no usable QEMU: run `cargo xtask setup` (or set TIDEPOOL_QEMU) first"
    );
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", "hang", "--backend", "--timeout", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xtask");
    let pid = i32::try_from(xtask.id()).expect("pid fits");
    let (lines, received) = mpsc::channel();
    let stdout = xtask.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|line| line.ok()) {
            let _ = lines.send(line);
        }
    });
    let mut stderr = xtask.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut reaper = Reaper { xtask, children: Vec::new() };

    // The guest's first line: QEMU runs, and so does the backend it connected to.
    let end = Instant::now() + STARTUP;
    let mut console = String::new();
    while !console.contains("spinning forever") {
        let left = end.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                console.push_str(&line);
                console.push('\n');
            }
            Err(_) => panic!("the guest did not start within {STARTUP:?}:\n{console}"),
        }
    }
    let children = children(pid);
    reaper.children = children.iter().map(|(process, _)| *process).collect();
    let qemu = children.iter().find(|(_, args)| program_is(args, "qemu-system-aarch64"));
    let backend = children.iter().find(|(_, args)| program_is(args, "hostmem-backend"));
    let (Some((qemu, _)), Some((backend, backend_args))) = (qemu, backend) else {
        panic!("xtask should run QEMU and the backend; its children: {children:?}");
    };
    let socket = backend_args
        .iter()
        .position(|arg| arg == "--socket")
        .and_then(|at| backend_args.get(at + 1))
        .map(PathBuf::from)
        .expect("the backend's --socket");
    assert!(socket.exists(), "{} should exist while the backend runs", socket.display());

    // To xtask alone, as `kill PID` from another terminal would.
    // SAFETY: kill has no memory-safety preconditions; `pid` is our child,
    // not yet reaped, so it names xtask.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill xtask");

    let mut status = None;
    wait_until(SHUTDOWN, || {
        status = reaper.xtask.try_wait().expect("wait for xtask");
        status.is_some()
    });
    // The point of it all: neither child survives (checked first, so that
    // a failure says which one is left).
    for (what, process) in [("QEMU", *qemu), ("the backend", *backend)] {
        assert!(wait_until(SHUTDOWN, || !alive(process)), "{what} (pid {}) still runs after {name}", process.pid);
    }
    let status = status.unwrap_or_else(|| panic!("xtask still runs {SHUTDOWN:?} after {name}"));
    let errors = errors.join().unwrap_or_default();
    assert_eq!(status.code(), Some(128 + signal), "xtask should exit with 128 + {name}: {status}; stderr:\n{errors}");
    assert!(errors.contains(&format!("stopped by {name}")), "{errors}");
    assert!(!socket.exists(), "{} should be removed", socket.display());
}

/// One test, one run at a time: parallel runs would rewrite the image file
/// while the other QEMU loads it.
#[test]
fn sigterm_and_sigint_stop_qemu_and_the_backend() {
    a_signal_stops_qemu_and_the_backend(libc::SIGTERM, "SIGTERM");
    a_signal_stops_qemu_and_the_backend(libc::SIGINT, "SIGINT");
}
