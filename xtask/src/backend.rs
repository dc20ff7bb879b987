//! The hostmem vhost-user backend (host/hostmem-backend), started beside
//! QEMU: built once, listening on a socket in a private directory, and
//! stopped (SIGTERM, then kill) when the guest run ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result, bail, paths, run_command, signals};

/// The guest-physical layout the qemu-virt board gives the hostmem device:
/// it lands in the first virtio-mmio slot, whose pool is pool0.
pub const POOL_WINDOW: &str = "0x48000000:4M";
/// The region NUMA node (see boards/qemu-virt/overlay.dts).
pub const CODEC_REGION: &str = "codec@0x49000000:8M";
/// The echo sub-device's region (the second half of the region node).
pub const ECHO_REGION: &str = "echo@0x49800000:8M";
/// Instances the backend serves (`--max-instances`): notification queues, too.
pub const MAX_INSTANCES: u32 = 4;
/// hostmem_wire::CONFIG_SIZE (checked by the backend's own tests).
pub const CONFIG_SIZE: usize = 256;

/// How to start the backend for one run.
#[derive(Clone, Debug)]
pub struct BackendSpec {
    /// The rest of the backend's command line (after `--socket` and
    /// `--max-instances`): pool window and regions.
    pub args: Vec<String>,
    /// `--max-instances`; the QEMU device gets 2 + this many queues.
    pub max_instances: u32,
}

impl Default for BackendSpec {
    fn default() -> Self {
        BackendSpec {
            args: ["--pool", POOL_WINDOW, "--region", CODEC_REGION, "--region", ECHO_REGION]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_instances: MAX_INSTANCES,
        }
    }
}

/// Builds the backend (release) and returns its path.
pub fn build() -> Result<PathBuf> {
    let workspace = paths::workspace();
    let target_dir = workspace.join("target");
    // An explicit target dir: a CARGO_TARGET_DIR in the environment would
    // otherwise put the binary somewhere else than where we look.
    run_command(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&workspace)
            .args(["build", "--quiet", "--release", "-p", "hostmem-backend", "--target-dir"])
            .arg(&target_dir),
    )?;
    let binary = target_dir.join("release").join("hostmem-backend");
    if !binary.exists() {
        bail!("the backend build produced no {}", binary.display());
    }
    Ok(binary)
}

/// A running backend; stopped when dropped.
pub struct Backend {
    child: Child,
    /// The vhost-user socket it listens on.
    pub socket: PathBuf,
    output: Arc<Mutex<String>>,
}

impl Backend {
    /// Starts `binary` on a fresh socket and waits until it listens.
    pub fn start(binary: &Path, spec: &BackendSpec, echo: bool) -> Result<Backend> {
        let dir = paths::out_dir().join("sockets");
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join(format!("hostmem-{}.sock", std::process::id() as u64 * 1000 + next_id()));
        let _ = std::fs::remove_file(&socket);
        let mut command = Command::new(binary);
        // SIGTERM: the backend stops cleanly on it (stop() below).
        signals::die_with_parent(&mut command, libc::SIGTERM);
        let mut child = command
            .arg("--socket")
            .arg(&socket)
            .args(["--max-instances", &spec.max_instances.to_string()])
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| Error(format!("cannot start {}: {error}", binary.display())))?;
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|line| line.ok()) {
                    if echo {
                        println!("backend: {line}");
                    }
                    if let Ok(mut output) = output.lock() {
                        output.push_str(&line);
                        output.push('\n');
                    }
                }
            });
        }
        let mut backend = Backend { child, socket, output };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !backend.socket.exists() {
            // Dropping `backend` stops it and removes the socket.
            signals::check()?;
            if let Some(status) = backend.child.try_wait()? {
                bail!("the backend exited with {status} before listening:\n{}", backend.output());
            }
            if Instant::now() > deadline {
                bail!("the backend did not create {} within 20 s", backend.socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(backend)
    }

    /// What the backend printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|output| output.clone()).unwrap_or_default()
    }

    /// QEMU arguments that attach the generic vhost-user device to it.
    pub fn qemu_args(&self, generic_device: &str, max_instances: u32) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=vu0,path={}", self.socket.display()),
            "-device".into(),
            format!(
                "{generic_device},chardev=vu0,virtio-id=21,num_vqs={},vq_size=64,config_size={CONFIG_SIZE}",
                2 + max_instances
            ),
        ]
    }

    /// Asks the backend to stop (SIGTERM), waits briefly, then kills it.
    /// Returns whether it exited cleanly by itself.
    pub fn stop(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions. The pid is our
            // child's and try_wait just found it unreaped (only this struct
            // waits on it), so it cannot name another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
