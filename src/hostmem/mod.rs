//! Driver of the hostmem device (docs/hostmem.md): memory the host provides,
//! shared with the guest in fixed regions, with small control messages on
//! virtqueues.
//!
//! The main calls, in an image (bare metal only: `Hostmem::new` exists on
//! the target; `examples/hostmem_echo.rs` is the complete program):
//!
//! ```ignore
//! use core::time::Duration;
//! use hostmem_wire::echo;
//! use tidepool::Boot;
//! use tidepool::hostmem::{EventKind, Hostmem, HostmemError, Notification, Options};
//! use tidepool::virtio::probe::{self, Device, DmaPolicy};
//! use virtio_drivers::Hal;
//!
//! const TIMEOUT: Duration = Duration::from_secs(1);
//!
//! fn echo_once<H: Hal>(device: Device, boot: &Boot) -> Result<(), HostmemError> {
//!     // Probe: check config space, set up the queues in the pool, map the regions.
//!     let mut hostmem = Hostmem::<H>::new(device, boot, Options::default())?;
//!     let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID)?;
//!     // An instance whose completion word is at offset 0 of the region.
//!     let instance = hostmem.create_instance(sub, Some(0))?;
//!     // The payload goes into the shared region itself: the transport copies none of it.
//!     hostmem.region(sub)?.write(4096, b"hello")?;
//!     let seq = hostmem.notify(&instance, Notification {
//!         opcode: echo::Op::Copy.into(),
//!         offset: 4096,
//!         size: 5,
//!         metadata: echo::CopyMeta::new(8192).to_metadata(),
//!         want_event: true,
//!     })?;
//!     // Either poll the completion word in memory (no exit, no interrupt) ...
//!     hostmem.wait_completion(&instance, seq, TIMEOUT)?;
//!     // ... or wait for the COMPLETION event (interrupt-driven when bound).
//!     let event = hostmem.wait_event(TIMEOUT)?;
//!     assert!(event.kind == EventKind::Completion && event.seq == seq);
//!     let mut echoed = [0; 5];
//!     hostmem.region(sub)?.read(8192, &mut echoed)?;
//!     hostmem.destroy_instance(instance)?;
//!     tidepool::println!("{}", hostmem.counters());
//!     Ok(())
//! }
//!
//! fn main(boot: &'static Boot) -> u32 {
//!     let id = hostmem_wire::DEVICE_ID_DEFAULT;
//!     let Some(device) = probe::find(boot, DmaPolicy::Strict, id) else { return tidepool::exit::FAILURE };
//!     // The device's pool handle names the Hal its rings and messages come from.
//!     let pool = device.pool;
//!     match tidepool::with_pool_hal!(pool, |H| echo_once::<H>(device, boot)) {
//!         Ok(()) => tidepool::exit::SUCCESS,
//!         Err(error) => {
//!             tidepool::println!("hostmem: {error}");
//!             tidepool::exit::FAILURE
//!         }
//!     }
//! }
//! ```
//!
//! # The host is untrusted
//!
//! Config space is read within a generation check before and after
//! FEATURES_OK (the two must agree) and validated with hostmem_wire's rules
//! plus the driver's own: every region must be clear of everything the
//! guest owns (image, device tree, heap, DMA pools, device windows, see
//! [`OwnedRanges`]) and of the other regions, and must agree with the
//! transport's shared memory registers where those exist. Anything wrong
//! refuses the device before a region is mapped.
//!
//! After that, every value from the device is checked before use: used
//! lengths are clamped to the buffer and short messages rejected, used
//! tokens must be chains in flight, response statuses, echoes and instance
//! ids, event types, statuses, instances, ranges and `seq` values, and
//! completion words (only growing, never past the last `seq` sent). A
//! violation is a [`HostmemError`]; nothing panics on device data.
//!
//! # Memory
//!
//! Rings and every message buffer live in the device's restricted DMA pool
//! (`H`, a `PoolHal`); the driver checks or reserves pool room before each
//! allocation virtio-drivers makes, so a full pool is
//! [`HostmemError::PoolExhausted`]. Regions are mapped as normal memory,
//! never executable, and accessed only through [`RegionMemory`]'s checked
//! volatile copies (or its raw pointers, under documented rules).
//!
//! # Waiting
//!
//! Config-queue requests time out after [`Options::request_timeout`];
//! [`Hostmem::wait_event`] and [`Hostmem::wait_completion`] take a timeout.
//! Events wait on the device's interrupt line when one is bound
//! ([`Options::interrupts`]), otherwise they poll; completion words are
//! polled in memory, without exits or interrupts.

mod counters;
mod driver;
mod error;
mod region;
mod validate;
mod wait;

#[cfg(test)]
mod tests;

pub use counters::Counters;
pub use driver::{
    CONFIG_QUEUE_SIZE, EVENT_QUEUE_SIZE, Hostmem, Instance, NOTIFY_QUEUE_SIZE, Notification, Options, Subdevice,
    SubdeviceInfo,
};
pub use error::{HostmemError, OwnedKind, RegionReason, UsedReason};
pub use region::RegionMemory;
pub use validate::{
    Event, EventKind, InstanceView, OwnedRanges, check_completion_value, check_config, check_created, check_event,
    check_mappable, check_regions, check_response, check_shm, clamp_used, identify,
};
#[cfg(target_os = "none")]
pub use wait::BoundIrq;
pub use wait::Wakeup;
