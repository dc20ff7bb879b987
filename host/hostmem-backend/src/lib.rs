//! vhost-user backend serving the virtio-hostmem device (docs/hostmem.md).
//!
//! Layout:
//!
//! - [`setup`]: the validated device description (pool window, sub-devices,
//!   published config space, faults), built from the command line ([`cli`]).
//! - [`memory`]: the backend's own mappings of only the pool window and the
//!   regions, out of the memory table QEMU sends.
//! - [`chain`]: descriptor chains, every descriptor checked against the pool.
//! - [`device`]: config queue, notifications, events, completion words.
//! - [`subdevice`]: the [`subdevice::Subdevice`] trait, `echo` and `codec`.
//! - [`backend`]: the `VhostUserBackend` implementation and the feature
//!   decisions.
//! - [`daemon`]: the serve/reconnect loop and shutdown.
//! - `testing` (tests and the `fakes` feature only): memfd-backed guest
//!   memory laid out like the deployment.
//!
//! Modules use each other one way only: `setup` uses none, `memory` uses
//! `setup`, `chain` and `subdevice` only those two, `device` those four, and
//! `backend`, `daemon` and `cli` sit on top.

pub mod backend;
pub mod chain;
pub mod cli;
pub mod daemon;
pub mod device;
pub mod memory;
pub mod setup;
pub mod subdevice;
#[cfg(any(test, feature = "fakes"))]
pub mod testing;

pub use backend::HostmemBackend;
pub use daemon::{ServeError, Shutdown, serve};
pub use device::{Device, Vring};
pub use setup::{DeviceSetup, Faults, GuestWindow, SetupParams};

#[cfg(test)]
mod tests;
