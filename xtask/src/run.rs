//! Running a guest: stream its console, stop it on a timeout, and work out
//! the status it ended with.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::qemu::Launch;
use crate::{Error, Result, signals};

/// Printed by the runtime as its last line (src/exit.rs).
pub const EXIT_LINE_PREFIX: &str = "tidepool: exit status ";

/// What a guest run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the guest printed, lines joined with '\n'.
    pub console: String,
    /// From the runtime's exit line, if it printed one.
    pub exit_line_status: Option<u32>,
    /// QEMU's own exit code (the guest's status under semihosting).
    pub qemu_status: Option<i32>,
    /// Whether the launcher stopped the guest at the timeout.
    pub timed_out: bool,
    /// What the vhost-user backend printed, if one ran.
    pub backend_output: String,
    /// Whether the backend stopped cleanly on SIGTERM, if one ran.
    pub backend_clean_exit: Option<bool>,
}

impl Outcome {
    /// The guest's status: its exit line, else QEMU's code; a timeout or a
    /// guest that ended without saying anything counts as failure.
    pub fn status(&self) -> i32 {
        if self.timed_out {
            return 124;
        }
        match (self.exit_line_status, self.qemu_status) {
            (Some(line), _) => i32::try_from(line).unwrap_or(i32::MAX),
            (None, Some(0)) | (None, None) => 125,
            (None, Some(code)) => code,
        }
    }

    /// Whether the console has a line equal to `line` (ignoring CR).
    pub fn has_line(&self, line: &str) -> bool {
        self.console.lines().any(|l| l.trim_end() == line)
    }
}

/// Kills the child when dropped, so no QEMU outlives an early return or a panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots the guest and waits for it to end or for `timeout`. With `echo`,
/// console lines are printed as they arrive. A signal (see
/// [`crate::signals`]) stops QEMU and makes this an error.
pub fn run(launch: &Launch, timeout: Duration, echo: bool) -> Result<Outcome> {
    // Declared before the child, so it is dropped after QEMU is reaped.
    let _launching = signals::Launching::start();
    let mut command = launch.command()?;
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // QEMU holds no state worth a clean shutdown.
    signals::die_with_parent(&mut command, libc::SIGKILL);
    let child =
        command.spawn().map_err(|error| Error(format!("cannot start {}: {error}", launch.qemu.binary.display())))?;
    let mut child = KillOnDrop(child);
    let (sender, receiver) = mpsc::channel::<String>();
    for stream in [
        child.0.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.0.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|line| line.ok()) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);

    let deadline = Instant::now() + timeout;
    let mut console = String::new();
    let mut timed_out = false;
    let mut qemu_status = None;
    loop {
        if signals::interrupted().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        match receiver.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                if echo {
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                }
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                qemu_status = child.0.wait()?.code();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    drop(child);
    // Also when QEMU ended first: a terminal's Ctrl-C reaches it too.
    signals::check()?;
    let exit_line_status = console
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(EXIT_LINE_PREFIX))
        .and_then(|status| status.trim().parse().ok());
    if timed_out && echo {
        println!("xtask: the guest did not finish within {} s; stopped it", timeout.as_secs());
    }
    Ok(Outcome {
        console,
        exit_line_status,
        qemu_status,
        timed_out,
        backend_output: String::new(),
        backend_clean_exit: None,
    })
}

/// Starts the hostmem backend, then the guest with the generic vhost-user
/// device attached to it; stops the backend when the guest has ended.
pub fn run_with_backend(
    launch: &Launch,
    backend: &crate::backend::BackendSpec,
    timeout: Duration,
    echo: bool,
) -> Result<Outcome> {
    let binary = crate::backend::build()?;
    // Declared before the backend, so it is dropped after the backend is
    // stopped and its socket removed (Backend's Drop).
    let _launching = signals::Launching::start();
    let mut server = crate::backend::Backend::start(&binary, backend, echo)?;
    let mut launch = launch.clone();
    let mut extra = server.qemu_args(launch.board.generic_device(&launch.qemu), backend.max_instances);
    extra.append(&mut launch.extra_args);
    launch.extra_args = extra;
    let mut outcome = run(&launch, timeout, echo)?;
    outcome.backend_clean_exit = Some(server.stop());
    outcome.backend_output = server.output();
    Ok(outcome)
}
