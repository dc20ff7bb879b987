//! Interrupt-driven completion for virtio devices.
//!
//! The handler acknowledges at the device before the GIC's
//! end-of-interrupt, then counts: virtio-mmio reads InterruptStatus and
//! writes it to InterruptACK; virtio-pci (INTx, level-triggered) reads the
//! ISR status byte, which the read clears, deasserting the line. Only the
//! handler touches those registers once a line is bound; the driver waits
//! on the count. This is the one place where the runtime addresses a device
//! beside its transport, and it is limited to those registers.
//!
//! A line serves one device: binding a second device to a shared INTx line
//! fails with `Busy` (that device can still be polled).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::interrupts::{self, InterruptError, MAX_INTID};
use crate::time::Deadline;
use crate::virtio::probe::Device;

const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;

static ACK_BASE: [AtomicUsize; MAX_INTID] = [const { AtomicUsize::new(0) }; MAX_INTID];
/// Whether `ACK_BASE` is a virtio-pci ISR byte (else a virtio-mmio window).
static ACK_IS_PCI_ISR: [AtomicBool; MAX_INTID] = [const { AtomicBool::new(false) }; MAX_INTID];
static FIRED: [AtomicU32; MAX_INTID] = [const { AtomicU32::new(0) }; MAX_INTID];

fn handler(intid: u32) {
    let Some(base) = ACK_BASE.get(intid as usize).map(|base| base.load(Ordering::Acquire)) else {
        return;
    };
    let pci_isr = ACK_IS_PCI_ISR.get(intid as usize).is_some_and(|pci| pci.load(Ordering::Acquire));
    if base != 0 && pci_isr {
        // SAFETY: `base` is the ISR status byte of a virtio-pci function
        // bound by `bind`, inside a BAR in a mapped bridge window; reading
        // it is the acknowledgement.
        unsafe { core::ptr::read_volatile(base as *const u8) };
    } else if base != 0 {
        // SAFETY: `base` is a virtio-mmio window bound by `bind`, mapped as
        // device memory; the interrupt registers belong to this handler.
        unsafe {
            let status = core::ptr::read_volatile((base + INTERRUPT_STATUS) as *const u32);
            core::ptr::write_volatile((base + INTERRUPT_ACK) as *mut u32, status);
        }
    }
    if let Some(fired) = FIRED.get(intid as usize) {
        fired.fetch_add(1, Ordering::Release);
    }
}

/// A device's interrupt, routed to the acknowledging handler.
#[derive(Debug)]
pub struct IrqLine {
    intid: u32,
}

/// Routes `device`'s interrupt to the handler and enables it at the GIC
/// (IRQs at the CPU are left as they are).
pub fn bind(device: &Device) -> Result<IrqLine, InterruptError> {
    let interrupt = device.interrupt.ok_or(InterruptError::NoLine)?;
    let intid = interrupt.intid();
    let slot = ACK_BASE.get(intid as usize).ok_or(InterruptError::BadIntId(intid))?;
    let pci_isr = ACK_IS_PCI_ISR.get(intid as usize).ok_or(InterruptError::BadIntId(intid))?;
    // The handler first, so a line another device holds is refused before
    // its acknowledgement address is overwritten.
    interrupts::set_handler(intid, handler)?;
    let (base, is_pci) = match device.isr_address {
        Some(isr) => (isr as usize, true),
        None => (device.reg.base as usize, false),
    };
    pci_isr.store(is_pci, Ordering::Release);
    slot.store(base, Ordering::Release);
    let level =
        matches!(interrupt.trigger(), Some(crate::platform::Trigger::LevelHigh | crate::platform::Trigger::LevelLow));
    interrupts::enable(intid, level)?;
    Ok(IrqLine { intid })
}

impl IrqLine {
    /// The GIC interrupt id the line is bound to.
    pub fn intid(&self) -> u32 {
        self.intid
    }

    /// Interrupts taken so far.
    pub fn count(&self) -> u32 {
        FIRED[self.intid as usize % MAX_INTID].load(Ordering::Acquire)
    }

    /// Waits, with IRQs unmasked, until more than `seen` interrupts were
    /// taken or `timeout_micros` passed. Returns whether one came.
    pub fn wait_beyond(&self, seen: u32, timeout_micros: u64) -> bool {
        let deadline = Deadline::after_micros(timeout_micros);
        let was_enabled = interrupts::irqs_enabled();
        interrupts::set_irqs_enabled(true);
        let arrived = loop {
            if self.count() != seen {
                break true;
            }
            if deadline.passed() {
                break false;
            }
            core::hint::spin_loop();
        };
        interrupts::set_irqs_enabled(was_enabled);
        arrived
    }
}
