//! The virtio transports' register parsing against a hostile device:
//! `MmioV2Transport` (virtio-mmio v2) and `PciTransport` (modern
//! virtio-pci) over register files whose every read the input may
//! override, driven as the hostmem probe and stock drivers drive them:
//! header check, negotiation, shared memory regions, consistent config
//! reads, queue setup, DRIVER_OK, interrupts, queue teardown, reset.
//!
//! Input: a transport byte; the device's initial registers (ids, features,
//! queue sizes, shared memory region, config bytes; for PCI the structure
//! lengths and notify multiplier); what the driver asks (features,
//! config size, queues); then a stream that, read by read, lets the device
//! answer with the register's value or a value of its own.
//!
//! Checked: nothing panics; no access leaves the register window or
//! breaks the width and alignment rules (the fake panics); every wait is
//! bounded (register accesses are counted); negotiation accepts only
//! offered features, VERSION_1 always, ACCESS_PLATFORM only for a
//! pool-bound device, and fails without VERSION_1; after a failure neither
//! FEATURES_OK nor DRIVER_OK is written before the next reset; shared
//! memory regions never wrap; config reads stay inside the config space.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use arrayvec::ArrayVec;
use tidepool::virtio::mmio::{MAGIC, MmioV2Transport, Registers, WINDOW_SIZE, reg};
use tidepool::virtio::pci::{PciRegions, PciTransport, common};
use tidepool::virtio::transport::{
    FEATURE_ACCESS_PLATFORM, FEATURE_VERSION_1, NegotiatedFeatures, POLL_LIMIT, TransportError, VirtioTransport,
};
use virtio_drivers::transport::DeviceStatus;

use crate::input::Input;

/// Register accesses one input may cause: a dozen bounded resets and
/// config retries, and the rest. A transport that polls without bound
/// runs into it.
const ACCESS_LIMIT: u64 = 16 * POLL_LIMIT as u64 + 100_000;
/// Queues the target sets up at most.
const MAX_QUEUES: u16 = 4;

/// How a register file behaves: where its feature word and selector are,
/// and which accesses are legal.
#[derive(Clone, Copy, Debug)]
struct Layout {
    len: usize,
    /// (selector, feature word) offsets, if the file has device features.
    features: Option<(usize, usize)>,
    /// Offsets below this are 32-bit registers (virtio-mmio); 0 for none.
    registers_below: usize,
}

/// State shared by the transport's register file and the target.
struct Device<'a> {
    stream: RefCell<Input<'a>>,
    accesses: Cell<u64>,
    /// Every status value written, in order (None: a window without one).
    status_writes: RefCell<Vec<u32>>,
}

impl Device<'_> {
    fn count(&self) {
        let accesses = self.accesses.get() + 1;
        assert!(accesses <= ACCESS_LIMIT, "more than {ACCESS_LIMIT} register accesses: a wait without bound");
        self.accesses.set(accesses);
    }

    /// The device's answer for a read of `width` bytes whose register holds
    /// `value`: the value, or (when the stream says so) one of its own.
    fn answer(&self, value: u32, width: usize) -> u32 {
        let mut stream = self.stream.borrow_mut();
        if stream.is_empty() || stream.u8() & 1 == 0 {
            return value;
        }
        let bytes = stream.bytes(width);
        let mut word = [0u8; 4];
        word[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(word)
    }
}

/// One register window: writes are stored, reads come from what is
/// stored unless the stream overrides them.
struct Window<'a> {
    device: Rc<Device<'a>>,
    layout: Layout,
    image: RefCell<Vec<u8>>,
    /// Device features, served half by half through the selector.
    device_features: u64,
    /// Offset of the status register whose writes are recorded, and its width.
    status: Option<(usize, usize)>,
}

impl<'a> Window<'a> {
    fn check(&self, offset: usize, width: usize) {
        self.device.count();
        assert!(
            offset.checked_add(width).is_some_and(|end| end <= self.layout.len),
            "{width}-byte access at {offset:#x} outside a {:#x}-byte window",
            self.layout.len
        );
        assert!(offset.is_multiple_of(width), "{width}-byte access at {offset:#x} misaligned");
        assert!(
            offset >= self.layout.registers_below || width == 4,
            "{width}-byte access to the 32-bit register at {offset:#x}"
        );
    }

    fn stored(&self, offset: usize, width: usize) -> u32 {
        if let Some((selector, word)) = self.layout.features
            && offset == word
        {
            let select = self.stored_raw(selector, 4);
            return match select {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            };
        }
        self.stored_raw(offset, width)
    }

    fn stored_raw(&self, offset: usize, width: usize) -> u32 {
        let image = self.image.borrow();
        let mut word = [0u8; 4];
        word[..width].copy_from_slice(&image[offset..offset + width]);
        u32::from_le_bytes(word)
    }

    fn read(&self, offset: usize, width: usize) -> u32 {
        self.check(offset, width);
        self.device.answer(self.stored(offset, width), width)
    }

    fn write(&self, offset: usize, width: usize, value: u32) {
        self.check(offset, width);
        if self.status == Some((offset, width)) {
            self.device.status_writes.borrow_mut().push(value);
        }
        self.image.borrow_mut()[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

impl Registers for Window<'_> {
    fn read32(&self, offset: usize) -> u32 {
        self.read(offset, 4)
    }

    fn write32(&mut self, offset: usize, value: u32) {
        self.write(offset, 4, value);
    }

    fn read16(&self, offset: usize) -> u16 {
        self.read(offset, 2) as u16
    }

    fn write16(&mut self, offset: usize, value: u16) {
        self.write(offset, 2, value.into());
    }

    fn read8(&self, offset: usize) -> u8 {
        self.read(offset, 1) as u8
    }

    fn write8(&mut self, offset: usize, value: u8) {
        self.write(offset, 1, value.into());
    }
}

fn window<'a>(device: &Rc<Device<'a>>, layout: Layout, features: u64, status: Option<(usize, usize)>) -> Window<'a> {
    Window {
        device: device.clone(),
        layout,
        image: RefCell::new(vec![0; layout.len]),
        device_features: features,
        status,
    }
}

fn put(window: &mut Window<'_>, offset: usize, bytes: &[u8]) {
    let mut image = window.image.borrow_mut();
    let end = (offset + bytes.len()).min(image.len());
    if offset < end {
        image[offset..end].copy_from_slice(&bytes[..end - offset]);
    }
}

/// What the driver asks, read before the device's stream.
struct Driver {
    requested: u64,
    access_platform: bool,
    config_offset: usize,
    queues: u16,
    addresses: [u64; 3],
}

fn driver(input: &mut Input<'_>) -> Driver {
    Driver {
        requested: input.u64(),
        access_platform: input.bool(),
        config_offset: usize::from(input.u16()),
        queues: u16::from(input.u8()) % (MAX_QUEUES + 1),
        addresses: [input.u64(), input.u64(), input.u64()],
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.u8().is_multiple_of(2) { mmio(&mut input) } else { pci(&mut input) }
}

fn mmio(input: &mut Input<'_>) {
    let (magic, version, device_id, vendor_id) = match input.u8() % 4 {
        // Mostly a device that passes the header check.
        0 => (input.u32(), input.u32(), input.u32(), input.u32()),
        _ => (MAGIC, 2, 1 + u32::from(input.u8()), input.u32()),
    };
    let features = input.u64();
    let queue_num_max = u32::from(input.u16());
    let (shm_len, shm_base) = (input.u64(), input.u64());
    let config = input.chunk();
    let config_size = usize::from(input.u16());
    let known_only = input.bool();
    let ask = driver(input);
    let device = Rc::new(Device {
        stream: RefCell::new(Input::new(input.rest())),
        accesses: Cell::new(0),
        status_writes: RefCell::new(Vec::new()),
    });
    let layout = Layout {
        len: WINDOW_SIZE,
        features: Some((reg::DEVICE_FEATURES_SEL, reg::DEVICE_FEATURES)),
        registers_below: reg::CONFIG,
    };
    let mut regs = window(&device, layout, features, Some((reg::STATUS, 4)));
    put(&mut regs, reg::MAGIC_VALUE, &magic.to_le_bytes());
    put(&mut regs, reg::VERSION, &version.to_le_bytes());
    put(&mut regs, reg::DEVICE_ID, &device_id.to_le_bytes());
    put(&mut regs, reg::VENDOR_ID, &vendor_id.to_le_bytes());
    put(&mut regs, reg::QUEUE_NUM_MAX, &queue_num_max.to_le_bytes());
    put(&mut regs, reg::SHM_LEN_LOW, &shm_len.to_le_bytes());
    put(&mut regs, reg::SHM_BASE_LOW, &shm_base.to_le_bytes());
    put(&mut regs, reg::CONFIG, config);

    let transport = if known_only { MmioV2Transport::new_known(regs) } else { MmioV2Transport::new(regs) };
    let Ok(transport) = transport else { return };
    assert_ne!(transport.device_id(), 0, "an empty slot accepted");
    let mut transport = transport.with_config_size(config_size);
    assert!(transport.config_size() <= WINDOW_SIZE - reg::CONFIG);
    drive(&mut transport, &ask, &device);
    drop(transport);
    assert!(device.accesses.get() <= ACCESS_LIMIT);
}

fn pci(input: &mut Input<'_>) {
    let pci_device_id = 0x1040 + u16::from(input.u8() % 0x40);
    let features = input.u64();
    // Lengths as `virtio_caps` accepts them (at least the layout's minimum).
    let common_len = 0x38 + usize::from(input.u8());
    let notify_len = 2 + usize::from(input.u16());
    let isr_len = 1 + usize::from(input.u8());
    let device_len = usize::from(input.u16()) % 0x1001;
    let multiplier = input.u32();
    let (num_queues, queue_size, notify_off) = (input.u16(), input.u16(), input.u16());
    let config = input.chunk();
    // As `virtio_caps` and probing give it: non-empty, its end representable.
    let shm = (input.u8(), input.u64() % (1 << 48), (input.u64() % (1 << 40)).max(1));
    let ask = driver(input);
    let device = Rc::new(Device {
        stream: RefCell::new(Input::new(input.rest())),
        accesses: Cell::new(0),
        status_writes: RefCell::new(Vec::new()),
    });
    let plain = |len| Layout { len, features: None, registers_below: 0 };
    let common_layout = Layout {
        len: common_len,
        features: Some((common::DEVICE_FEATURE_SELECT, common::DEVICE_FEATURE)),
        registers_below: 0,
    };
    let mut common_window = window(&device, common_layout, features, Some((common::DEVICE_STATUS, 1)));
    put(&mut common_window, common::NUM_QUEUES, &num_queues.to_le_bytes());
    put(&mut common_window, common::QUEUE_SIZE, &queue_size.to_le_bytes());
    put(&mut common_window, common::QUEUE_NOTIFY_OFF, &notify_off.to_le_bytes());
    let mut device_window = window(&device, plain(device_len.max(1)), 0, None);
    put(&mut device_window, 0, config);
    let mut shared_memory = ArrayVec::new();
    shared_memory.push(shm);
    let regions = PciRegions {
        common: common_window,
        notify: window(&device, plain(notify_len), 0, None),
        notify_len: notify_len as u64,
        notify_off_multiplier: multiplier,
        isr: window(&device, plain(isr_len), 0, None),
        device: (device_len > 0).then_some((device_window, device_len)),
        shared_memory,
    };
    let mut transport = PciTransport::new(pci_device_id, regions).with_access_platform(ask.access_platform);
    drive(&mut transport, &ask, &device);
    drop(transport);
    assert!(device.accesses.get() <= ACCESS_LIMIT);
}

/// Whether a status value moves initialisation forward.
fn advancing(status: u32) -> bool {
    status & (DeviceStatus::FEATURES_OK | DeviceStatus::DRIVER_OK).bits() != 0
}

/// After a failure, nothing moves initialisation forward before a reset.
fn assert_no_advance_after(device: &Device<'_>, from: usize) {
    for status in device.status_writes.borrow()[from..].iter().take_while(|&&status| status != 0) {
        assert!(!advancing(*status), "status {status:#x} written after initialisation failed");
    }
}

fn drive<T: VirtioTransport>(transport: &mut T, ask: &Driver, device: &Device<'_>) {
    let negotiated = transport.negotiate(ask.requested, ask.access_platform);
    let writes_after_negotiation = device.status_writes.borrow().len();
    match negotiated {
        Ok(NegotiatedFeatures { offered, requested, accepted, access_platform_wanted }) => {
            assert_eq!(requested, ask.requested);
            assert_eq!(access_platform_wanted, ask.access_platform);
            assert!(offered & FEATURE_VERSION_1 != 0, "negotiated without VERSION_1");
            let mut expected = (requested & offered) | FEATURE_VERSION_1;
            if ask.access_platform {
                expected |= offered & FEATURE_ACCESS_PLATFORM;
            }
            assert_eq!(accepted, expected, "accepted {accepted:#x} of {offered:#x} for {requested:#x}");
            assert_eq!(transport.init_error(), None);
        }
        Err(error) => {
            let _ = error.to_string();
            assert_eq!(transport.init_error(), Some(error), "negotiation failed without recording why");
            assert!(
                !matches!(error, TransportError::Version1NotOffered { offered } if offered & FEATURE_VERSION_1 != 0),
                "VERSION_1 offered but refused"
            );
        }
    }
    for id in 0..3 {
        match transport.shared_memory_region(id) {
            Ok(Some((base, len))) => {
                assert!(len != 0 && len != u64::MAX, "shared memory region {id} of {len:#x} bytes");
                assert!(base.checked_add(len).is_some(), "shared memory region {id} wraps");
            }
            Ok(None) => {}
            Err(error) => assert!(matches!(error, TransportError::SharedMemoryOverflow { .. }), "{error}"),
        }
    }
    let config_size = transport.config_size();
    match transport.read_config_u32(ask.config_offset) {
        Ok(_) => assert!(ask.config_offset.is_multiple_of(4) && ask.config_offset + 4 <= config_size),
        Err(error) => assert!(
            matches!(
                error,
                TransportError::ConfigOutOfBounds { .. }
                    | TransportError::ConfigMisaligned { .. }
                    | TransportError::ConfigUnstable { .. }
            ),
            "config read: {error}"
        ),
    }
    if let Ok(words) = transport.read_config_words::<8>() {
        assert!(config_size >= 32, "{} config words read from {config_size} bytes", words.len());
    }
    let mut set_up = Vec::new();
    for queue in 0..ask.queues {
        let max = transport.max_queue_size(queue);
        if max == 0 {
            continue;
        }
        let size = max.min(16);
        let [descriptors, driver_area, device_area] = ask.addresses;
        transport.queue_set(queue, size, descriptors, driver_area, device_area);
        let _ = transport.queue_used(queue);
        set_up.push(queue);
    }
    let failed = transport.init_error().is_some();
    let before_finish = device.status_writes.borrow().len();
    transport.finish_init();
    if failed || negotiated.is_err() {
        assert_no_advance_after(device, if negotiated.is_err() { writes_after_negotiation } else { before_finish });
    }
    let _ = transport.ack_interrupt();
    let _ = transport.get_status();
    transport.notify(0);
    for queue in set_up {
        transport.queue_unset(queue);
    }
}
