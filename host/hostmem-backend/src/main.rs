//! hostmem-backend: the vhost-user daemon. See `--help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use hostmem_backend::cli::{Cli, qemu_device_arg};
use hostmem_backend::{Shutdown, serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::new().filter_level(cli.log_level).parse_default_env().format_timestamp_millis().init();

    let setup = match cli.setup() {
        Ok(setup) => Arc::new(setup),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_qemu_args {
        println!("-device {}", qemu_device_arg(&setup));
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = setup.dump_frames()
        && let Err(e) = hostmem_backend::subdevice::dump::start(dir)
    {
        log::error!("cannot start a frame dump in {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    log::info!(
        "device id {}, pool {}, {} sub-device(s), {} instance slot(s); QEMU needs: -device {}",
        setup.device_id(),
        setup.pool(),
        setup.subdevices().len(),
        setup.max_instances(),
        qemu_device_arg(&setup)
    );
    for (index, spec) in setup.subdevices().iter().enumerate() {
        log::info!("sub-device {index}: {} region {} (shmid {index})", spec.kind, spec.region);
    }
    if setup.faults().bad_region {
        log::warn!("fault bad-region: sub-device 0 published at the pool base");
    }

    let shutdown = Shutdown::new(&cli.socket);
    if let Err(e) = signals::spawn_handler(shutdown.clone()) {
        log::error!("cannot set up signal handling: {e}");
        return ExitCode::FAILURE;
    }
    match serve(setup, &cli.socket, &shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

mod signals {
    use std::io;
    use std::thread;

    use hostmem_backend::Shutdown;

    /// Blocks SIGINT and SIGTERM in this thread (before any other thread
    /// exists, so every thread inherits the mask) and takes them in one
    /// dedicated thread with sigwait, which then triggers `shutdown`. No
    /// async-signal-safety concerns: nothing runs in a signal handler.
    pub fn spawn_handler(shutdown: Shutdown) -> io::Result<()> {
        let set = vmm_sys_util::signal::create_sigset(&[libc::SIGINT, libc::SIGTERM])
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        // SAFETY: `set` is a valid, initialised sigset; a null old-set pointer
        // is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        thread::Builder::new().name("signals".into()).spawn(move || {
            loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: `set` is a valid sigset blocked in every thread and
                // `signal` a valid place for the result.
                let rc = unsafe { libc::sigwait(&set, &mut signal) };
                if rc == 0 {
                    log::info!("signal {signal} received");
                    shutdown.trigger();
                }
            }
        })?;
        Ok(())
    }
}
