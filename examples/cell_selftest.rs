//! What a Jailhouse cell gives an image, checked from inside one: the
//! platform came from the comm region, the timer interrupt reaches this CPU
//! through the GICv3 redistributor frame found by affinity (the cell runs
//! on CPU 1), PSCI is SMC-only with SYSTEM_OFF refused, and the
//! hypervisor's VM-exit counters are readable and count this work.
//!
//! `cargo xtask run cell_selftest --board jailhouse-qemu-arm64`; the cell
//! ends "shut down" only if every case passed.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};

use tidepool::boot::Source;
use tidepool::{Boot, TestResult, ensure, interrupts, println};

tidepool::test_image!(
    deny_shutdown;
    platform_is_the_comm_regions,
    timer_interrupt_reaches_this_cpu,
    system_off_is_refused,
    vm_exits_count_this_work
);

fn platform_is_the_comm_regions(boot: &Boot) -> TestResult {
    ensure!(boot.source == Source::CommRegion, "platform from {}", boot.source);
    ensure!(tidepool::jailhouse::cell().is_some(), "not attached to a cell");
    ensure!(boot.platform.psci_conduit() == Some(tidepool::platform::Conduit::Smc), "PSCI must be SMC in a cell");
    Ok(())
}

static TICKS: AtomicUsize = AtomicUsize::new(0);

fn timer_interrupt_reaches_this_cpu(boot: &Boot) -> TestResult {
    let timer = boot.platform.timer().and_then(|timer| timer.virtual_timer());
    let Some(timer) = timer else {
        return Err(tidepool::TestFailure("no virtual timer interrupt".into()));
    };
    fn handler(_intid: u32) {
        TICKS.fetch_add(1, Ordering::Relaxed);
        // Level triggered: re-arm far away so the line drops.
        tidepool::arch::start_alarm(u64::from(u32::MAX));
    }
    let setup = interrupts::set_handler(timer.intid(), handler).and_then(|()| interrupts::enable(timer.intid(), true));
    ensure!(setup.is_ok(), "virtual timer interrupt: {:?}", setup);
    tidepool::arch::start_alarm(tidepool::time::frequency() / 1000);
    interrupts::set_irqs_enabled(true);
    let deadline = tidepool::time::Deadline::after_micros(2_000_000);
    while TICKS.load(Ordering::Relaxed) == 0 && !deadline.passed() {
        interrupts::wait_for_interrupt();
    }
    interrupts::set_irqs_enabled(false);
    ensure!(TICKS.load(Ordering::Relaxed) > 0, "the timer interrupt never came (redistributor frame of another CPU?)");
    Ok(())
}

fn system_off_is_refused(_boot: &Boot) -> TestResult {
    let error = tidepool::arch::power::off();
    println!("  SYSTEM_OFF: {error}");
    ensure!(error.is_not_supported(), "SYSTEM_OFF should be refused as not supported, got {error}");
    Ok(())
}

fn vm_exits_count_this_work(_boot: &Boot) -> TestResult {
    let Some(before) = tidepool::jailhouse::vm_exits() else {
        return Err(tidepool::TestFailure("CPU_GET_INFO refused or no hypervisor".into()));
    };
    let _ = tidepool::arch::power::off();
    let after = tidepool::jailhouse::vm_exits().unwrap_or_default();
    println!("  vm exits: {after}");
    // One more PSCI call in between, and the hypercalls themselves.
    ensure!(after.0[7] > before.0[7], "the PSCI counter did not move: {before} -> {after}");
    ensure!(after.0[0] > before.0[0], "the total did not move");
    Ok(())
}
