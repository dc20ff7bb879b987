//! A fake virtio-mmio version 2 device for host tests: a register file with
//! enough behaviour (feature words, status, queues, config space with a
//! generation counter, shared memory regions, interrupts) to drive
//! [`MmioV2Transport`](super::mmio::MmioV2Transport) and stock drivers'
//! initialisation through it.
//!
//! [`FakeRegisters`] is a handle: clones share one [`FakeDevice`], so a test
//! keeps a clone to inspect and poke the device while the transport owns
//! the other. Accesses that break the virtio-mmio access rules (out of the
//! window, misaligned, not 32 bits wide below the config space) panic,
//! which makes the fake check the transport as well as serve it.
//!
//! Only the runtime's unit tests use it, so it is not part of the API.
#![cfg(test)]

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};

use super::mmio_regs::{Registers, WINDOW_SIZE, reg};

/// `FEATURES_OK` in the status register.
const FEATURES_OK: u32 = 8;

/// One virtqueue of the fake device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeQueue {
    /// QueueNumMax; 0 means the queue does not exist.
    pub num_max: u32,
    /// QueueNum as written by the driver.
    pub num: u32,
    /// Descriptor area, assembled from the low/high registers.
    pub desc: u64,
    /// Driver (available) area.
    pub driver: u64,
    /// Device (used) area.
    pub device: u64,
    /// QueueReady.
    pub ready: bool,
}

/// The state of the fake device. Fields are public so tests can set up
/// hostile behaviour and check what the driver wrote.
#[derive(Debug)]
pub struct FakeDevice {
    /// MagicValue ("virt" for a real device).
    pub magic: u32,
    /// Version (2 for virtio-mmio version 2).
    pub version: u32,
    /// DeviceID.
    pub device_id: u32,
    /// VendorID.
    pub vendor_id: u32,
    /// Features the device offers.
    pub device_features: u64,
    /// DeviceFeaturesSel as written by the driver.
    pub device_features_sel: u32,
    /// Features the driver wrote, assembled from both words.
    pub driver_features: u64,
    /// DriverFeaturesSel as written by the driver.
    pub driver_features_sel: u32,
    /// Whether the device keeps FEATURES_OK when the driver sets it
    /// (false models a device refusing the feature subset).
    pub features_ok_sticks: bool,
    /// Status as the driver reads it.
    pub status: u32,
    /// Whether a reset (status 0) completes; false keeps the old status.
    pub reset_completes: bool,
    /// Every value written to the status register, in order.
    pub status_writes: Vec<u32>,
    /// QueueSel as written by the driver.
    pub queue_sel: u32,
    /// The queues by index.
    pub queues: Vec<FakeQueue>,
    /// Whether writing 0 to QueueReady takes effect.
    pub queue_ready_clears: bool,
    /// Queue indices written to QueueNotify, in order.
    pub notifications: Vec<u32>,
    /// InterruptStatus.
    pub interrupt_status: u32,
    /// Values written to InterruptACK, in order.
    pub interrupt_acks: Vec<u32>,
    /// Config space (its length is what the device implements; reads
    /// beyond it return 0 like QEMU's).
    pub config: Vec<u8>,
    /// ConfigGeneration.
    pub config_generation: u32,
    /// Changes applied one per config-space read, each right after the
    /// read and with a generation bump: models the device updating its
    /// config while the driver is in the middle of reading it.
    pub pending_config_changes: VecDeque<(usize, Vec<u8>)>,
    /// Bump the generation on every config-space read (a device whose
    /// config never settles).
    pub generation_churn: bool,
    /// Number of config-space reads so far.
    pub config_reads: usize,
    /// SHMSel as written by the driver.
    pub shm_sel: u32,
    /// Shared memory regions by id as (base, length); a missing id reads
    /// all ones, like QEMU.
    pub shm_regions: Vec<(u32, u64, u64)>,
    /// Every 32-bit write as (offset, value), in order.
    pub writes: Vec<(usize, u32)>,
}

impl FakeDevice {
    fn queue(&mut self) -> Option<&mut FakeQueue> {
        let index = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(index)
    }

    fn reset(&mut self) {
        if !self.reset_completes {
            return;
        }
        self.status = 0;
        self.driver_features = 0;
        self.interrupt_status = 0;
        for queue in &mut self.queues {
            *queue = FakeQueue { num_max: queue.num_max, ..FakeQueue::default() };
        }
    }

    fn shm(&self) -> Option<(u64, u64)> {
        self.shm_regions.iter().find(|(id, _, _)| *id == self.shm_sel).map(|&(_, base, len)| (base, len))
    }

    fn config_read(&mut self, offset: usize, width: usize) -> Vec<u8> {
        let start = offset - reg::CONFIG;
        let bytes = (start..start + width).map(|i| self.config.get(i).copied().unwrap_or(0)).collect();
        self.config_reads += 1;
        if let Some((at, change)) = self.pending_config_changes.pop_front() {
            self.config[at..at + change.len()].copy_from_slice(&change);
            self.config_generation = self.config_generation.wrapping_add(1);
        } else if self.generation_churn {
            self.config_generation = self.config_generation.wrapping_add(1);
        }
        bytes
    }

    fn config_write(&mut self, offset: usize, bytes: &[u8]) {
        let start = offset - reg::CONFIG;
        for (i, byte) in bytes.iter().enumerate() {
            if let Some(slot) = self.config.get_mut(start + i) {
                *slot = *byte;
            }
        }
    }
}

/// Handle to a [`FakeDevice`]; clones share the device.
#[derive(Clone, Debug)]
pub struct FakeRegisters(Rc<RefCell<FakeDevice>>);

impl FakeRegisters {
    /// A well-behaved version 2 device with id `device_id` offering
    /// VIRTIO_F_VERSION_1, four queues of up to 64 entries, 0x100 bytes of
    /// zeroed config space and no shared memory regions.
    pub fn new(device_id: u32) -> Self {
        Self(Rc::new(RefCell::new(FakeDevice {
            magic: 0x7472_6976,
            version: 2,
            device_id,
            vendor_id: 0x554d_4551, // "QEMU"
            device_features: 1 << 32,
            device_features_sel: 0,
            driver_features: 0,
            driver_features_sel: 0,
            features_ok_sticks: true,
            status: 0,
            reset_completes: true,
            status_writes: Vec::new(),
            queue_sel: 0,
            queues: vec![FakeQueue { num_max: 64, ..FakeQueue::default() }; 4],
            queue_ready_clears: true,
            notifications: Vec::new(),
            interrupt_status: 0,
            interrupt_acks: Vec::new(),
            config: vec![0; WINDOW_SIZE - reg::CONFIG],
            config_generation: 0,
            pending_config_changes: VecDeque::new(),
            generation_churn: false,
            config_reads: 0,
            shm_sel: 0,
            shm_regions: Vec::new(),
            writes: Vec::new(),
        })))
    }

    /// The shared device state. Do not hold the borrow across a transport
    /// call (the transport borrows it too).
    pub fn device(&self) -> RefMut<'_, FakeDevice> {
        self.0.borrow_mut()
    }

    /// Bumps the config generation, as a device does after a config change.
    pub fn bump_generation(&self) {
        let mut device = self.device();
        device.config_generation = device.config_generation.wrapping_add(1);
    }

    /// Writes `bytes` into config space at `offset` now, without a
    /// generation bump.
    pub fn set_config(&self, offset: usize, bytes: &[u8]) {
        self.device().config[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Queues a config change applied right after the next config read
    /// that has no earlier change queued, with a generation bump.
    pub fn change_config_during_read(&self, offset: usize, bytes: &[u8]) {
        self.device().pending_config_changes.push_back((offset, bytes.to_vec()));
    }
}

/// Panics unless the access follows the virtio-mmio rules.
fn check_access(offset: usize, width: usize) {
    assert!(offset.checked_add(width).is_some_and(|end| end <= WINDOW_SIZE), "access at {offset:#x} outside window");
    assert!(offset.is_multiple_of(width), "misaligned {width}-byte access at {offset:#x}");
    assert!(width == 4 || offset >= reg::CONFIG, "{width}-byte access to control register {offset:#x}");
}

impl Registers for FakeRegisters {
    fn read32(&self, offset: usize) -> u32 {
        check_access(offset, 4);
        let mut d = self.device();
        match offset {
            reg::MAGIC_VALUE => d.magic,
            reg::VERSION => d.version,
            reg::DEVICE_ID => d.device_id,
            reg::VENDOR_ID => d.vendor_id,
            reg::DEVICE_FEATURES => match d.device_features_sel {
                0 => d.device_features as u32,
                1 => (d.device_features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => d.queue().map_or(0, |q| q.num_max),
            reg::QUEUE_READY => d.queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => d.interrupt_status,
            reg::STATUS => d.status,
            reg::SHM_LEN_LOW => d.shm().map_or(u32::MAX, |(_, len)| len as u32),
            reg::SHM_LEN_HIGH => d.shm().map_or(u32::MAX, |(_, len)| (len >> 32) as u32),
            reg::SHM_BASE_LOW => d.shm().map_or(u32::MAX, |(base, _)| base as u32),
            reg::SHM_BASE_HIGH => d.shm().map_or(u32::MAX, |(base, _)| (base >> 32) as u32),
            reg::CONFIG_GENERATION => d.config_generation,
            o if o >= reg::CONFIG => {
                let bytes = d.config_read(o, 4);
                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
            }
            _ => 0,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        check_access(offset, 4);
        let mut d = self.device();
        d.writes.push((offset, value));
        let set_low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let set_high = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            reg::DEVICE_FEATURES_SEL => d.device_features_sel = value,
            reg::DRIVER_FEATURES => match d.driver_features_sel {
                0 => d.driver_features = set_low(d.driver_features),
                1 => d.driver_features = set_high(d.driver_features),
                _ => {}
            },
            reg::DRIVER_FEATURES_SEL => d.driver_features_sel = value,
            reg::QUEUE_SEL => d.queue_sel = value,
            reg::QUEUE_NUM => d.queue().into_iter().for_each(|q| q.num = value),
            reg::QUEUE_READY => {
                let clears = d.queue_ready_clears;
                if let Some(q) = d.queue() {
                    if value != 0 {
                        q.ready = true;
                    } else if clears {
                        q.ready = false;
                    }
                }
            }
            reg::QUEUE_NOTIFY => d.notifications.push(value),
            reg::INTERRUPT_ACK => {
                d.interrupt_status &= !value;
                d.interrupt_acks.push(value);
            }
            reg::STATUS => {
                d.status_writes.push(value);
                if value == 0 {
                    d.reset();
                } else if !d.features_ok_sticks {
                    d.status = value & !FEATURES_OK;
                } else {
                    d.status = value;
                }
            }
            reg::QUEUE_DESC_LOW => d.queue().into_iter().for_each(|q| q.desc = set_low(q.desc)),
            reg::QUEUE_DESC_HIGH => d.queue().into_iter().for_each(|q| q.desc = set_high(q.desc)),
            reg::QUEUE_DRIVER_LOW => d.queue().into_iter().for_each(|q| q.driver = set_low(q.driver)),
            reg::QUEUE_DRIVER_HIGH => d.queue().into_iter().for_each(|q| q.driver = set_high(q.driver)),
            reg::QUEUE_DEVICE_LOW => d.queue().into_iter().for_each(|q| q.device = set_low(q.device)),
            reg::QUEUE_DEVICE_HIGH => d.queue().into_iter().for_each(|q| q.device = set_high(q.device)),
            reg::SHM_SEL => d.shm_sel = value,
            o if o >= reg::CONFIG => d.config_write(o, &value.to_le_bytes()),
            _ => {}
        }
    }

    fn read16(&self, offset: usize) -> u16 {
        check_access(offset, 2);
        let bytes = self.device().config_read(offset, 2);
        u16::from_le_bytes([bytes[0], bytes[1]])
    }

    fn write16(&mut self, offset: usize, value: u16) {
        check_access(offset, 2);
        self.device().config_write(offset, &value.to_le_bytes());
    }

    fn read8(&self, offset: usize) -> u8 {
        check_access(offset, 1);
        self.device().config_read(offset, 1)[0]
    }

    fn write8(&mut self, offset: usize, value: u8) {
        check_access(offset, 1);
        self.device().config_write(offset, &[value]);
    }
}
