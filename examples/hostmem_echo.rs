//! Drives the hostmem device's echo sub-device (docs/hostmem.md appendix B)
//! through `tidepool::hostmem`: payload bytes go through the shared region,
//! only small control messages through the virtqueues (and the DMA pool).
//!
//! Expects the hostmem vhost-user backend (host/hostmem-backend) serving an
//! echo sub-device, on the device id [`hostmem_wire::DEVICE_ID_DEFAULT`],
//! bound to a restricted DMA pool. Prints per-operation counters.
#![no_std]
#![no_main]

extern crate alloc;

use core::fmt::Display;
use core::time::Duration;

use hostmem_wire::{Status, echo};
use tidepool::hostmem::{EventKind, Hostmem, HostmemError, Notification, Options};
use tidepool::time;
use tidepool::virtio::probe::{self, Device, DmaPolicy};
use tidepool::{Boot, TestFailure, TestResult, ensure, println};
use virtio_drivers::Hal;

tidepool::test_image!(echo_round_trip, echo_polling_and_refusals);

const TIMEOUT: Duration = Duration::from_secs(10);
/// Completion word of the (only) instance: the start of the region.
const WORD: u64 = 0;
const SRC: u64 = 4096;
const DEST: u64 = 3 * 4096;
const LEN: usize = 1500;

fn fail(error: impl Display) -> TestFailure {
    TestFailure(alloc::format!("{error}"))
}

fn take(boot: &Boot) -> Result<Device, TestFailure> {
    let id = hostmem_wire::DEVICE_ID_DEFAULT;
    let device = probe::find(boot, DmaPolicy::Strict, id);
    device.ok_or_else(|| fail(alloc::format!("no virtio device with id {id}")))
}

fn echo_round_trip(boot: &Boot) -> TestResult {
    let device = take(boot)?;
    let pool = device.pool;
    tidepool::with_pool_hal!(pool, |H| round_trip::<H>(device, boot))
}

fn pattern(index: usize) -> u8 {
    (index * 13 % 251) as u8
}

fn round_trip<H: Hal>(device: Device, boot: &Boot) -> TestResult {
    let mut hostmem = Hostmem::<H>::new(device, boot, Options::default()).map_err(fail)?;
    for info in hostmem.subdevices() {
        println!(
            "  sub-device {}: vendor {:#x} device {} revision {}, shmid {}, region {}",
            info.index, info.vendor_id, info.device_id, info.revision, info.shmid, info.region
        );
    }
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).map_err(fail)?;
    let revision = hostmem.subdevice_info(sub).map_err(fail)?.revision;
    ensure!(revision == echo::REVISION, "echo revision {revision}");
    ensure!(hostmem.completion_words(), "the device does not offer completion words");
    let instance = hostmem.create_instance(sub, Some(WORD)).map_err(fail)?;

    let data: [u8; LEN] = core::array::from_fn(pattern);
    {
        let region = hostmem.region(sub).map_err(fail)?;
        region.fill(DEST, LEN, 0).map_err(fail)?;
        region.write(SRC, &data).map_err(fail)?;
    }
    let before = hostmem.counters();
    let copy = Notification {
        opcode: echo::Op::Copy.into(),
        offset: SRC,
        size: LEN as u64,
        metadata: echo::CopyMeta::new(DEST).to_metadata(),
        want_event: true,
    };
    let seq = hostmem.notify(&instance, copy).map_err(fail)?;
    hostmem.wait_completion(&instance, seq, TIMEOUT).map_err(fail)?;
    let event = hostmem.wait_event(TIMEOUT).map_err(fail)?;
    ensure!(event.kind == EventKind::Completion, "event {:?}", event.kind);
    ensure!(event.instance_id == instance.id() && event.seq == seq, "event for {}/{}", event.instance_id, event.seq);
    ensure!(event.offset == DEST && event.size == LEN as u64, "result at {:#x}+{}", event.offset, event.size);
    let mut back = [0u8; LEN];
    hostmem.region(sub).map_err(fail)?.read(DEST, &mut back).map_err(fail)?;
    ensure!(back == data, "the echoed bytes differ");
    let cost = hostmem.counters().since(&before);
    println!("  echo of {LEN} bytes: {cost}");
    ensure!(cost.notifications == 1 && cost.events == 1, "unexpected message counts: {cost}");
    ensure!(
        cost.bytes_copied_by_transport < LEN as u64,
        "{} bytes copied by the transport: the payload went through the pool",
        cost.bytes_copied_by_transport
    );

    // Interrupt-driven: wait for the event itself, not the completion word,
    // and count the interrupt that woke the wait (a dead line would leave
    // only the driver's periodic re-check, and the count at 0).
    let before = hostmem.counters();
    let seq = hostmem.notify(&instance, copy).map_err(fail)?;
    let event = hostmem.wait_event(TIMEOUT).map_err(fail)?;
    ensure!(event.kind == EventKind::Completion && event.seq == seq, "event {:?} for {}", event.kind, event.seq);
    // The device fills the used ring before it signals, and the runtime
    // keeps IRQs masked outside its waits: an event that was already there
    // leaves its interrupt pending. Let it in for a moment to count it.
    let deadline = time::Deadline::after_micros(100_000);
    let was_enabled = tidepool::interrupts::irqs_enabled();
    tidepool::interrupts::set_irqs_enabled(true);
    while hostmem.counters().interrupts == before.interrupts && !deadline.passed() {
        core::hint::spin_loop();
    }
    tidepool::interrupts::set_irqs_enabled(was_enabled);
    let cost = hostmem.counters().since(&before);
    println!("  interrupt-driven echo: {cost}");
    ensure!(cost.interrupts >= 1, "the event arrived without an interrupt: {cost}");

    hostmem.destroy_instance(instance).map_err(fail)?;
    println!("  hostmem totals: {}", hostmem.counters());
    Ok(())
}

fn echo_polling_and_refusals(boot: &Boot) -> TestResult {
    let device = take(boot)?;
    let pool = device.pool;
    tidepool::with_pool_hal!(pool, |H| polling::<H>(device, boot))
}

fn polling<H: Hal>(device: Device, boot: &Boot) -> TestResult {
    // Polling only: no interrupt line, completion through the word.
    let options = Options { interrupts: false, ..Options::default() };
    let mut hostmem = Hostmem::<H>::new(device, boot, options).map_err(fail)?;
    let sub = hostmem.find_subdevice(echo::VENDOR_ID, echo::DEVICE_ID).map_err(fail)?;
    let instance = hostmem.create_instance(sub, Some(WORD)).map_err(fail)?;
    let copy = |offset: u64, size: u64, dest: u64| Notification {
        opcode: echo::Op::Copy.into(),
        offset,
        size,
        metadata: echo::CopyMeta::new(dest).to_metadata(),
        want_event: false,
    };
    hostmem.region(sub).map_err(fail)?.write(SRC, b"polled").map_err(fail)?;
    let before = hostmem.counters();
    let seq = hostmem.notify(&instance, copy(SRC, 6, DEST)).map_err(fail)?;
    hostmem.wait_completion(&instance, seq, TIMEOUT).map_err(fail)?;
    let mut back = [0u8; 6];
    hostmem.region(sub).map_err(fail)?.read(DEST, &mut back).map_err(fail)?;
    ensure!(&back == b"polled", "polled copy differs");
    if hostmem.event_suppression() {
        ensure!(hostmem.poll_event().map_err(fail)?.is_none(), "an event came although none was asked for");
    } else {
        // Without EVENT_SUPPRESS the device always sends one.
        hostmem.wait_event(TIMEOUT).map_err(fail)?;
    }
    println!("  polled echo: {}", hostmem.counters().since(&before));

    // The device refuses an overlapping copy: ERROR event, reported at the wait.
    let seq = hostmem.notify(&instance, copy(SRC, 64, SRC + 8)).map_err(fail)?;
    match hostmem.wait_completion(&instance, seq, TIMEOUT) {
        Err(HostmemError::NotificationFailed { status: Status::BadRange, .. }) => {}
        other => return Err(fail(alloc::format!("overlapping copy: expected BAD_RANGE, got {other:?}"))),
    }
    // A range outside the region never leaves the guest.
    let len = hostmem.region(sub).map_err(fail)?.len();
    match hostmem.notify(&instance, copy(len - 4, 8, 0)) {
        Err(HostmemError::Range(_)) => {}
        other => return Err(fail(alloc::format!("out-of-region copy: expected a range error, got {other:?}"))),
    }
    hostmem.destroy_instance(instance).map_err(fail)?;
    println!("  hostmem totals: {}", hostmem.counters());
    Ok(())
}
