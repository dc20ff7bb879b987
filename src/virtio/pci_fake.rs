//! A fake modern virtio-pci device for unit tests: the common
//! configuration, notify, ISR and device structures as [`FakeSpan`]s over
//! one shared state.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::vec::Vec;

use super::mmio_regs::Registers;
use super::pci::{PciRegions, common};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakePciQueue {
    pub size_max: u16,
    pub size: u16,
    pub enable: u16,
    pub notify_off: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

#[derive(Debug)]
pub struct FakePciDevice {
    pub device_features: u64,
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub driver_features: u64,
    pub status: u8,
    pub status_writes: Vec<u8>,
    pub reset_completes: bool,
    pub features_ok_sticks: bool,
    pub generation: u8,
    /// Every generation read returns a new value.
    pub generation_churn: bool,
    pub queue_select: u16,
    pub queues: Vec<FakePciQueue>,
    pub isr: u8,
    /// (offset in the notify structure, value) of every notify write.
    pub notifications: Vec<(usize, u16)>,
    pub config: [u8; 64],
}

impl FakePciDevice {
    fn queue(&mut self) -> Option<&mut FakePciQueue> {
        self.queues.get_mut(usize::from(self.queue_select))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Common,
    Notify,
    Isr,
    Device,
}

/// One structure of the fake device.
#[derive(Clone, Debug)]
pub struct FakeSpan(Rc<RefCell<FakePciDevice>>, Region);

/// The fake device and its regions.
#[derive(Clone, Debug)]
pub struct FakePci(Rc<RefCell<FakePciDevice>>);

pub const NOTIFY_LEN: u64 = 0x1000;
pub const MULTIPLIER: u32 = 4;

impl FakePci {
    /// A device offering VERSION_1 and ACCESS_PLATFORM with `queues`
    /// queues of 64 entries, queue `n` notified at `n * MULTIPLIER`.
    pub fn new(queues: u16) -> Self {
        let queues = (0..queues).map(|n| FakePciQueue { size_max: 64, notify_off: n, ..Default::default() }).collect();
        Self(Rc::new(RefCell::new(FakePciDevice {
            device_features: (1 << 32) | (1 << 33),
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            status_writes: Vec::new(),
            reset_completes: true,
            features_ok_sticks: true,
            generation: 0,
            generation_churn: false,
            queue_select: 0,
            queues,
            isr: 0,
            notifications: Vec::new(),
            config: [0; 64],
        })))
    }

    pub fn device(&self) -> RefMut<'_, FakePciDevice> {
        self.0.borrow_mut()
    }

    pub fn regions(&self, shared_memory: &[(u8, u64, u64)]) -> PciRegions<FakeSpan> {
        let span = |region| FakeSpan(Rc::clone(&self.0), region);
        PciRegions {
            common: span(Region::Common),
            notify: span(Region::Notify),
            notify_len: NOTIFY_LEN,
            notify_off_multiplier: MULTIPLIER,
            isr: span(Region::Isr),
            device: Some((span(Region::Device), 64)),
            shared_memory: shared_memory.iter().copied().collect(),
        }
    }
}

fn set_half(value: &mut u64, high: bool, half: u32) {
    if high {
        *value = (*value & 0xffff_ffff) | (u64::from(half) << 32);
    } else {
        *value = (*value & !0xffff_ffff) | u64::from(half);
    }
}

impl Registers for FakeSpan {
    fn read32(&self, offset: usize) -> u32 {
        let device = self.0.borrow();
        match (self.1, offset) {
            (Region::Common, common::DEVICE_FEATURE) => {
                (device.device_features >> (32 * device.device_feature_select.min(1))) as u32
            }
            (Region::Device, at) if at + 4 <= 64 => u32::from_le_bytes([
                device.config[at],
                device.config[at + 1],
                device.config[at + 2],
                device.config[at + 3],
            ]),
            _ => 0,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        let mut device = self.0.borrow_mut();
        match (self.1, offset) {
            (Region::Common, common::DEVICE_FEATURE_SELECT) => device.device_feature_select = value,
            (Region::Common, common::DRIVER_FEATURE_SELECT) => device.driver_feature_select = value,
            (Region::Common, common::DRIVER_FEATURE) => {
                let high = device.driver_feature_select == 1;
                set_half(&mut device.driver_features, high, value);
            }
            (Region::Common, at @ 0x20..0x38) => {
                if let Some(queue) = device.queue() {
                    let field = match at & !7 {
                        common::QUEUE_DESC => &mut queue.desc,
                        common::QUEUE_DRIVER => &mut queue.driver,
                        _ => &mut queue.device,
                    };
                    set_half(field, at & 4 != 0, value);
                }
            }
            _ => {}
        }
    }

    fn read16(&self, offset: usize) -> u16 {
        let mut device = self.0.borrow_mut();
        match (self.1, offset) {
            (Region::Common, common::NUM_QUEUES) => device.queues.len() as u16,
            (Region::Common, common::QUEUE_SELECT) => device.queue_select,
            (Region::Common, common::QUEUE_SIZE) => device.queue().map_or(0, |queue| queue.size_max),
            (Region::Common, common::QUEUE_ENABLE) => device.queue().map_or(0, |queue| queue.enable),
            (Region::Common, common::QUEUE_NOTIFY_OFF) => device.queue().map_or(0, |queue| queue.notify_off),
            _ => 0,
        }
    }

    fn write16(&mut self, offset: usize, value: u16) {
        let mut device = self.0.borrow_mut();
        match (self.1, offset) {
            (Region::Common, common::QUEUE_SELECT) => device.queue_select = value,
            (Region::Common, common::QUEUE_SIZE) => {
                if let Some(queue) = device.queue() {
                    queue.size = value;
                }
            }
            (Region::Common, common::QUEUE_ENABLE) => {
                if let Some(queue) = device.queue() {
                    queue.enable = value;
                }
            }
            (Region::Notify, at) => device.notifications.push((at, value)),
            _ => {}
        }
    }

    fn read8(&self, offset: usize) -> u8 {
        let mut device = self.0.borrow_mut();
        match (self.1, offset) {
            (Region::Common, common::DEVICE_STATUS) => device.status,
            (Region::Common, common::CONFIG_GENERATION) => {
                if device.generation_churn {
                    device.generation = device.generation.wrapping_add(1);
                }
                device.generation
            }
            (Region::Isr, 0) => core::mem::take(&mut device.isr),
            (Region::Device, at) if at < 64 => device.config[at],
            _ => 0,
        }
    }

    fn write8(&mut self, offset: usize, value: u8) {
        let mut device = self.0.borrow_mut();
        if (self.1, offset) == (Region::Common, common::DEVICE_STATUS) {
            device.status_writes.push(value);
            if value == 0 {
                if device.reset_completes {
                    device.status = 0;
                    for queue in &mut device.queues {
                        *queue = FakePciQueue {
                            size_max: queue.size_max,
                            notify_off: queue.notify_off,
                            ..Default::default()
                        };
                    }
                }
                return;
            }
            let features_ok = 8;
            device.status = if device.features_ok_sticks { value } else { value & !features_ok };
        }
    }
}
