//! The GIC (v2 or v3, as the platform describes it): this architecture's
//! interrupt controller behind [`crate::arch::irqchip`].
//!
//! On an IRQ the vector calls [`dispatch`]: acknowledge at the GIC, run the
//! handler [`crate::interrupts`] holds for the id (which acknowledges at its
//! device), then end the interrupt at the GIC.

use core::ptr::NonNull;

use aarch64_cpu::registers::Readable;

use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3};
use arm_gic::{IntId, InterruptGroup, Trigger, UniqueMmioPointer};
use spin::Mutex;

use crate::arch::without_irqs;
use crate::interrupts::{InterruptError, run_handler};
use crate::platform::{Gic as GicDescription, Platform};

enum Gic {
    V2(GicV2<'static>),
    V3(GicV3<'static>),
}

// SAFETY: the GIC registers are only reached through this mutex.
unsafe impl Send for Gic {}

static GIC: Mutex<Option<Gic>> = Mutex::new(None);

/// On GICv2 a non-secure guest acknowledges through GICC_IAR/EOIR,
/// which arm-gic names group 0 (its group 1 path uses the aliased
/// registers, which only secure software has). Without the security
/// extensions (QEMU's default) group 0 interrupts are IRQs; with them,
/// the group write is ignored and the secure side's choice stands.
const GICV2_GROUP: InterruptGroup = InterruptGroup::Group0;

/// Sets up the distributor and this CPU's interface of the GIC `platform`
/// describes, all interrupts disabled, IRQs still masked at the CPU.
///
/// # Safety
///
/// The platform's GIC frames must be mapped as device memory and used by
/// nothing else.
pub unsafe fn init(platform: &Platform) -> Result<(), InterruptError> {
    let description: &GicDescription = platform.gic().ok_or(InterruptError::NoController)?;
    let gic = match description {
        GicDescription::V2 { distributor, cpu_interface } => {
            // SAFETY: the caller promises the frames are the GICv2's.
            let mut gic = unsafe { GicV2::new(distributor.base as *mut _, cpu_interface.base as *mut _) };
            gic.setup();
            // Let every priority through; the reset mask blocks all.
            gic.set_priority_mask(0xff);
            Gic::V2(gic)
        }
        GicDescription::V3 { distributor, redistributors } => {
            // This CPU's frame, by affinity: the first one serves CPU 0 only.
            let mpidr = aarch64_cpu::registers::MPIDR_EL1.get();
            let affinity = super::gicr::affinity_of(mpidr);
            let read_typer = |frame: u64| {
                let typer = (frame + super::gicr::GICR_TYPER) as *mut u8;
                // SAFETY: `frame` is a whole frame inside a redistributor
                // region, which the caller promises is mapped device
                // memory; two single 32-bit loads (valid syndromes for a
                // hypervisor that traps them).
                unsafe {
                    u64::from(super::mmio::read32(typer)) | u64::from(super::mmio::read32(typer.wrapping_add(4))) << 32
                }
            };
            let frame = super::gicr::find_frame(redistributors, affinity, read_typer)
                .ok_or(InterruptError::NoFrameForThisCpu { affinity })?;
            let gicd = NonNull::new(distributor.base as *mut _).ok_or(InterruptError::NoController)?;
            let gicr = NonNull::new(frame as *mut _).ok_or(InterruptError::NoController)?;
            // SAFETY: the caller promises the frames are the GICv3's; `gicr`
            // is this CPU's frame, and arm-gic is told of that one only
            // (index 0 below), as the runtime runs on one CPU.
            let mut gic =
                unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, 1) }.map_err(|_| InterruptError::Controller)?;
            gic.setup(0);
            GicCpuInterface::set_priority_mask(0xff);
            Gic::V3(gic)
        }
    };
    without_irqs(|| *GIC.lock() = Some(gic));
    Ok(())
}

/// Routes `intid` to this CPU and enables it at the GIC.
pub fn enable(intid: u32, trigger_level: bool) -> Result<(), InterruptError> {
    let id = match intid {
        0..16 => IntId::sgi(intid),
        16..32 => IntId::ppi(intid - 16),
        32..1020 => IntId::spi(intid - 32),
        _ => return Err(InterruptError::BadIntId(intid)),
    };
    let trigger = if trigger_level { Trigger::Level } else { Trigger::Edge };
    without_irqs(|| {
        let mut guard = GIC.lock();
        match guard.as_mut().ok_or(InterruptError::NoController)? {
            Gic::V2(gic) => {
                gic.set_interrupt_priority(id, 0x80);
                gic.set_trigger(id, trigger);
                gic.set_group(id, GICV2_GROUP);
                gic.enable_interrupt(id, true).map_err(|_| InterruptError::Controller)
            }
            Gic::V3(gic) => {
                gic.set_interrupt_priority(id, Some(0), 0x80).map_err(|_| InterruptError::Controller)?;
                gic.set_trigger(id, Some(0), trigger).map_err(|_| InterruptError::Controller)?;
                gic.set_group(id, Some(0), arm_gic::gicv3::Group::Group1NS).map_err(|_| InterruptError::Controller)?;
                if id.is_spi() {
                    // To this CPU by affinity: GICD_IROUTER resets to 0 (CPU
                    // 0), which in a Jailhouse cell on another CPU names a
                    // CPU outside the cell (and kills it).
                    let mpidr = aarch64_cpu::registers::MPIDR_EL1.get();
                    gic.distributor().set_routing(id, Some(mpidr)).map_err(|_| InterruptError::Controller)?;
                }
                gic.enable_interrupt(id, Some(0), true).map_err(|_| InterruptError::Controller)
            }
        }
    })
}

/// Called from the IRQ vector: handles every pending interrupt.
pub fn dispatch() {
    let mut guard = GIC.lock();
    match guard.as_mut() {
        Some(Gic::V2(gic)) => {
            while let Some(id) = gic.get_and_acknowledge_interrupt(GICV2_GROUP) {
                run_handler(id.raw_value());
                gic.end_interrupt(id, GICV2_GROUP);
            }
        }
        Some(Gic::V3(_)) => {
            while let Some(id) = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1) {
                run_handler(id.raw_value());
                GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
            }
        }
        None => {}
    }
}
