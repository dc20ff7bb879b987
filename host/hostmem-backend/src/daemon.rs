//! The serve loop: listen on the socket, serve one frontend at a time with
//! fresh device state, and listen again when it disconnects, until a
//! shutdown is requested.

use std::fmt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::backend::HostmemBackend;
use crate::setup::DeviceSetup;

/// Requests the serve loop to stop; clone it into signal handlers or tests.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

struct ShutdownInner {
    requested: AtomicBool,
    current: Mutex<Option<ShutdownHandle>>,
    socket: PathBuf,
}

impl Shutdown {
    /// A shutdown switch for the loop serving `socket`.
    pub fn new(socket: &Path) -> Self {
        Self {
            inner: Arc::new(ShutdownInner {
                requested: AtomicBool::new(false),
                current: Mutex::new(None),
                socket: socket.to_path_buf(),
            }),
        }
    }

    /// Stops the loop: ends the current connection, or wakes the loop from
    /// `accept` by connecting to the socket once.
    pub fn trigger(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        let current = self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match current {
            Some(handle) => handle.shutdown(),
            None => {
                // The loop may be blocked in accept(); a connection wakes it
                // and it then sees the flag. Failure means it is not
                // listening, which is fine too.
                let _ = UnixStream::connect(&self.inner.socket);
            }
        }
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    fn set_current(&self, handle: Option<ShutdownHandle>) {
        *self.inner.current.lock().unwrap_or_else(PoisonError::into_inner) = handle;
    }
}

/// Why the serve loop stopped with an error.
#[derive(Debug)]
pub enum ServeError {
    /// The socket could not be created.
    Listen(vhost::vhost_user::Error),
    /// The daemon could not be set up or accept a connection.
    Daemon(vhost_user_backend::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listen(e) => write!(f, "cannot listen: {e}"),
            Self::Daemon(e) => write!(f, "vhost-user daemon: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Serves frontends on `socket` one after the other until `shutdown` is
/// triggered. Each connection gets a new [`HostmemBackend`] (no state
/// survives a disconnect, as none survives a device reset). The socket file
/// is removed when the loop ends.
pub fn serve(setup: Arc<DeviceSetup>, socket: &Path, shutdown: &Shutdown) -> Result<(), ServeError> {
    let mut listener = Listener::new(socket, true).map_err(ServeError::Listen)?;
    log::info!("listening on {}", socket.display());
    let mut connections: u64 = 0;
    while !shutdown.is_requested() {
        let backend = HostmemBackend::new(setup.clone());
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let daemon = VhostUserDaemon::new("hostmem-backend".to_string(), backend.clone(), mem);
        let mut daemon = match daemon {
            Ok(daemon) => daemon,
            Err(e) => {
                backend.release_exit_events();
                return Err(ServeError::Daemon(e));
            }
        };
        if let Err(e) = daemon.start(&mut listener) {
            drop(daemon);
            backend.release_exit_events();
            return Err(ServeError::Daemon(e));
        }
        shutdown.set_current(daemon.shutdown_handle());
        // A trigger that raced with accept() found no connection to end.
        if shutdown.is_requested() {
            daemon.request_shutdown();
        } else {
            connections += 1;
            log::info!("frontend connected (connection {connections})");
        }
        let result = daemon.wait();
        shutdown.set_current(None);
        for handler in daemon.get_epoll_handlers() {
            handler.send_exit_event();
        }
        match result {
            // A frontend that quits (even mid-message) is not a failure.
            Ok(())
            | Err(vhost_user_backend::Error::HandleRequest(
                vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
            )) => log::info!("frontend disconnected"),
            Err(e) => log::warn!("connection ended: {e}"),
        }
        // Joins the vring worker; only then may its exit fd be closed.
        drop(daemon);
        backend.release_exit_events();
    }
    log::info!("shutting down");
    Ok(())
}
