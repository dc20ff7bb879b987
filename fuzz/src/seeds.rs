//! The committed seed corpus (`fuzz/seeds/<target>/`), generated here so
//! that each seed says what it is: real device trees from
//! tests/data/dtb, a comm region as Jailhouse's QEMU target writes it, a
//! hostmem config space as the backend publishes it, a QEMU-like virtio-pci
//! function, and guest sessions with the backend. The test in
//! `tests/seeds.rs` checks the files match (and rewrites them with
//! `TIDEPOOL_FUZZ_WRITE_SEEDS=1`), and runs every seed through its target.

use std::path::Path;

use hostmem_wire::codec::{DecodeMeta, FrameInfo, Op as CodecOp};
use hostmem_wire::echo::CopyMeta;
use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::{
    Config, ConfigResponse, EXAMPLE_VENDOR_ID, Event, Notification, Request, Status, SubdeviceEntry, codec, echo,
};
use tidepool::jailhouse::comm_region::{COMM_REGION_BYTES, offset};
use tidepool::pci::caps::cfg_type;
use tidepool::pci::config::header;
use tidepool::pci::fake::{FakeFunction, virtio_cap};
use tidepool::virtio::mmio::MAGIC;
use tidepool::virtio::transport::{FEATURE_ACCESS_PLATFORM, FEATURE_VERSION_1};

use crate::input::Output;
use crate::targets::backend_device::Op;

/// (target, file name, bytes) for every seed.
pub fn all(repository: &Path) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| seeds.push((target, name.to_string(), bytes));
    for name in [
        "qemu-virt-gicv3",
        "qemu-virt-gicv2-el2",
        "qemu-virt-numa-pool-nop",
        "qemu-virt-pool-dynamic",
        "pci-pools",
        "reserved-no-map",
        "memory-above-4g",
    ] {
        let path = repository.join("tests/data/dtb").join(format!("{name}.dtb"));
        let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        add("devicetree", &format!("{name}.dtb"), bytes);
    }
    for (name, bytes) in comm_regions() {
        add("comm_region", name, bytes);
    }
    for (name, bytes) in hostmem_configs() {
        add("hostmem_config", name, bytes);
    }
    for (name, bytes) in hostmem_messages() {
        add("hostmem_messages", name, bytes);
    }
    for (name, bytes) in backend_sessions() {
        add("backend_device", name, bytes);
    }
    for (name, bytes) in codec_inputs() {
        add("backend_codec", name, bytes);
    }
    for (name, bytes) in pci_functions() {
        add("pci_config", name, bytes);
    }
    for (name, bytes) in transports() {
        add("virtio_transport", name, bytes);
    }
    seeds
}

// --- comm region ---

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// What Jailhouse writes for a cell on its QEMU arm64 target.
fn qemu_region() -> [u8; COMM_REGION_BYTES] {
    let mut bytes = [0; COMM_REGION_BYTES];
    bytes[..6].copy_from_slice(b"JHCOMM");
    put(&mut bytes, offset::REVISION, &2u16.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_ADDRESS, &0x0900_0000u64.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_TYPE, &3u16.to_le_bytes());
    put(&mut bytes, offset::CONSOLE_FLAGS, &3u16.to_le_bytes());
    put(&mut bytes, offset::PCI_MMCONFIG_BASE, &0x08e0_0000u64.to_le_bytes());
    bytes[offset::GIC_VERSION] = 3;
    put(&mut bytes, offset::GICD_BASE, &0x0800_0000u64.to_le_bytes());
    put(&mut bytes, offset::GICR_BASE, &0x080a_0000u64.to_le_bytes());
    put(&mut bytes, offset::VPCI_IRQ_BASE, &112u32.to_le_bytes());
    bytes
}

fn comm_regions() -> Vec<(&'static str, Vec<u8>)> {
    let qemu = qemu_region();
    let mut gicv2 = qemu;
    gicv2[offset::GIC_VERSION] = 2;
    put(&mut gicv2, offset::GICC_BASE, &0x0801_0000u64.to_le_bytes());
    let mut bare = qemu;
    put(&mut bare, offset::CONSOLE_TYPE, &0u16.to_le_bytes());
    put(&mut bare, offset::PCI_MMCONFIG_BASE, &0u64.to_le_bytes());
    put(&mut bare, offset::FLAGS, &1u32.to_le_bytes());
    let mut foreign = qemu;
    put(&mut foreign, offset::REVISION, &1u16.to_le_bytes());
    vec![
        ("qemu-arm64.bin", qemu.to_vec()),
        ("gicv2.bin", gicv2.to_vec()),
        ("no-console-no-vpci.bin", bare.to_vec()),
        ("revision-1.bin", foreign.to_vec()),
    ]
}

// --- hostmem config space ---

fn codec_entry(shmid: u32, base: u64, len: u64) -> SubdeviceEntry {
    SubdeviceEntry::new(EXAMPLE_VENDOR_ID, codec::DEVICE_ID, codec::REVISION, shmid, base, len, 0)
}

fn echo_entry(shmid: u32, base: u64, len: u64) -> SubdeviceEntry {
    SubdeviceEntry::new(EXAMPLE_VENDOR_ID, echo::DEVICE_ID, echo::REVISION, shmid, base, len, 0)
}

fn hostmem_configs() -> Vec<(&'static str, Vec<u8>)> {
    // The backend's deployment: codec and echo regions above the pools.
    let entries = [codec_entry(0, 0x4900_0000, 8 << 20), echo_entry(1, 0x4980_0000, 8 << 20)];
    let config = Config::from_subdevices(4, &entries).unwrap();
    let mut qemu = Output::new();
    qemu.raw(config.as_bytes()).u8(16);
    // Shared memory registers: absent, then agreeing.
    qemu.u8(0).u8(1);

    // Eight sub-devices: six in config space, two by QUERY_SUBDEVICE.
    let many: Vec<SubdeviceEntry> =
        (0..8u32).map(|index| echo_entry(index, 0x5000_0000 + u64::from(index) * 0x10_0000, 0x10_0000)).collect();
    let config = Config::from_subdevices(8, &many).unwrap();
    let mut queried = Output::new();
    queried.raw(config.as_bytes()).u8(16);
    for entry in &many[6..] {
        queried.raw(entry.as_bytes());
    }
    for _ in &many {
        queried.u8(1);
    }

    // A region over the guest's heap (refused).
    let config = Config::from_subdevices(2, &[echo_entry(0, 0x4100_0000, 0x10_0000)]).unwrap();
    let mut over_heap = Output::new();
    over_heap.raw(config.as_bytes()).u8(4);
    vec![("qemu-backend.bin", qemu.finish()), ("queried.bin", queried.finish()), ("over-heap.bin", over_heap.finish())]
}

// --- device-to-driver messages ---

fn hostmem_messages() -> Vec<(&'static str, Vec<u8>)> {
    let entry = codec_entry(0, 0x4900_0000, 8 << 20);
    let created = ConfigResponse::created(0, entry, 1).unwrap();
    let mut create = Output::new();
    // CREATE of sub-device 0 with a completion word at 0, max_instances 4,
    // the known entry, used length 72.
    create.u8(0).u8(0).u32(0).u8(1).u64(0).u32(3).u8(1).raw(entry.as_bytes()).u32(72).raw(created.as_bytes());
    let mut ping = Output::new();
    ping.u8(0).u8(3).u64(77).u32(3).u8(0).u32(72).raw(ConfigResponse::pong(77).as_bytes());
    let mut refused = Output::new();
    let failure = ConfigResponse::failure(2, Status::BadInstance);
    refused.u8(0).u8(1).u32(5).u32(3).u8(0).u32(u32::MAX).raw(failure.as_bytes());

    let completion = Event::completion(1, 5, 0x100, 0x200, FrameInfo::failed(5, Status::Ok).to_metadata());
    let mut event = Output::new();
    // max_instances 4, instance 1 live with an 8 MiB region and seq 5 sent.
    event.u8(1).u32(3).u32(1).u64(8 << 20).u64(5).u32(80).raw(completion.as_bytes());
    let lost = Event::instance_lost(1, 4, Status::DeviceError).with_dropped(2);
    let mut lost_event = Output::new();
    lost_event.u8(1).u32(3).u32(1).u64(8 << 20).u64(5).u32(80).raw(lost.as_bytes());

    let mut words = Output::new();
    words.u8(2).u32(0).u64(10);
    for step in [1u8, 0, 2, 3] {
        words.u8(1).u8(step);
    }
    words.u8(0).u64(11);

    let mut created_answer = Output::new();
    created_answer.u8(3).u32(1).u32(4).u8(0);

    let info = FrameInfo::decoded(7, 2, 2, 3, 0).unwrap();
    let mut inline = Output::new();
    inline.u8(4).u64(7).u32(32 + 12).raw(info.as_bytes()).raw(&[0x55; 12]).raw(&[0; 20]);
    let mut header = Output::new();
    header.u8(5).u64(7).u64(0x1000).raw(info.as_bytes());
    vec![
        ("response-create.bin", create.finish()),
        ("response-ping.bin", ping.finish()),
        ("response-refused.bin", refused.finish()),
        ("event-completion.bin", event.finish()),
        ("event-instance-lost.bin", lost_event.finish()),
        ("completion-words.bin", words.finish()),
        ("created.bin", created_answer.finish()),
        ("inline-result.bin", inline.finish()),
        ("slot-header.bin", header.finish()),
    ]
}

// --- the backend ---

/// A tiny QOI image: `width` x `height` RGB, one colour per row (runs keep
/// it small enough for a chunk).
fn qoi_image(width: u32, height: u32) -> Vec<u8> {
    let pixels: Vec<u8> =
        (0..width * height).flat_map(|i| [(i / width * 40) as u8, 0x80, (i / width % 3) as u8 * 100]).collect();
    qoi::encode_to_vec(&pixels, width, height).unwrap()
}

fn request(out: &mut Output, request: Request) {
    out.u8(Op::Request as u8).chunk(request.encode().as_bytes()).u8(0).u8(0);
}

fn notify(out: &mut Output, id: u8, notification: &Notification) {
    out.u8(Op::Notify as u8).u8(id).chunk(notification.as_bytes()).u16(0);
}

fn event_buffers(out: &mut Output, count: u8) {
    out.u8(Op::EventBuffers as u8).u8(count).u8(0);
}

/// A write of `bytes` at `offset` of the region node (the codec region is
/// its first 8 MiB, the echo region the next).
fn region_write(out: &mut Output, offset: u32, bytes: &[u8]) {
    out.u8(Op::Write as u8).u8(1).u32(offset).chunk(bytes);
}

fn backend_sessions() -> Vec<(&'static str, Vec<u8>)> {
    const ECHO_OFFSET: u32 = 8 << 20;
    let mut echo_session = Output::new();
    request(&mut echo_session, Request::Create { subdevice_index: 1, completion_offset: Some(0) });
    event_buffers(&mut echo_session, 4);
    region_write(&mut echo_session, ECHO_OFFSET + 0x1000, b"hello from the guest");
    let copy = Notification::new(
        0,
        echo::Op::Copy.into(),
        Notification::F_EVENT,
        1,
        0x1000,
        20,
        CopyMeta::new(0x2000).to_metadata(),
    );
    notify(&mut echo_session, 0, &copy);
    // The same seq again (refused), then DESTROY.
    notify(&mut echo_session, 0, &copy);
    request(&mut echo_session, Request::Destroy { instance_id: 0 });

    let image = qoi_image(8, 8);
    let mut decode = Output::new();
    request(&mut decode, Request::Create { subdevice_index: 0, completion_offset: Some(8) });
    event_buffers(&mut decode, 4);
    region_write(&mut decode, 0x1000, &image);
    let meta = DecodeMeta::new(0x10000, 0x1000).to_metadata();
    let decode_one =
        Notification::new(0, CodecOp::Decode.into(), Notification::F_EVENT, 1, 0x1000, image.len() as u64, meta);
    notify(&mut decode, 0, &decode_one);

    let mut inline = Output::new();
    request(&mut inline, Request::Create { subdevice_index: 0, completion_offset: None });
    event_buffers(&mut inline, 2);
    let decode_inline = Notification::new(0, CodecOp::DecodeInline.into(), Notification::F_EVENT, 1, 0, 0, [0; 32]);
    inline.u8(Op::Notify as u8).u8(0).chunk(decode_inline.as_bytes()).u16(32 + 8 * 8 * 3).chunk(&image);

    let mut config_queue = Output::new();
    request(&mut config_queue, Request::Ping { cookie: 0x1234 });
    request(&mut config_queue, Request::QuerySubdevice { subdevice_index: 1 });
    request(&mut config_queue, Request::QuerySubdevice { subdevice_index: 5 });
    let mut bad = Request::Ping { cookie: 1 }.encode();
    bad.opcode.set(99);
    config_queue.u8(Op::Request as u8).chunk(bad.as_bytes()).u8(40).u8(1);
    config_queue.u8(Op::Request as u8).chunk(&[1, 0, 0]).u8(0).u8(1);
    config_queue.u8(Op::Config as u8).u32(0).u32(8).chunk(&[1, 2, 3, 4]);
    config_queue.u8(Op::Config as u8).u32(250).u32(16).chunk(&[]);
    config_queue.u8(Op::Lifecycle as u8).u8(0);
    config_queue.u8(Op::Kick as u8).u16(99);

    let mut raw = Output::new();
    // An indirect descriptor, then a chain whose next points at itself.
    raw.u8(Op::RawChain as u8).u8(0).u8(0);
    raw.u8(0).u32(0x20_0000).u32(32).u16(4).u16(0);
    raw.u8(Op::RawChain as u8).u8(2).u8(1);
    raw.u8(0).u32(0x20_1000).u32(72).u16(1).u16(0);
    raw.u8(0).u32(0x20_2000).u32(72).u16(1).u16(1);
    // Rings moved outside the pool, then back, then a reset of queue 1.
    raw.u8(Op::Place as u8).u8(0).u8(0x86).u64(0x4000_0000).u64(0x4000_1000).u64(0x4000_2000);
    raw.u8(Op::Kick as u8).u16(0);
    raw.u8(Op::Lifecycle as u8).u8(1).u8(1);
    raw.u8(Op::Lifecycle as u8).u8(4).u8(1);
    raw.u8(Op::Kick as u8).u16(2);

    vec![
        ("echo-session.bin", echo_session.finish()),
        ("codec-decode.bin", decode.finish()),
        ("codec-decode-inline.bin", inline.finish()),
        ("config-queue.bin", config_queue.finish()),
        ("raw-rings.bin", raw.finish()),
    ]
}

fn codec_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut fits = Output::new();
    fits.u32(0x1000).u8(0).raw(&qoi_image(8, 8));
    let mut no_space = Output::new();
    no_space.u32(64).u8(0x10).raw(&qoi_image(8, 8));
    let mut rgba = Output::new();
    let pixels: Vec<u8> = (0..4 * 3 * 4).map(|i| i as u8).collect();
    rgba.u32(0x1000).u8(0x20).raw(&qoi::encode_to_vec(&pixels, 4, 3).unwrap());
    let mut truncated = Output::new();
    let image = qoi_image(8, 8);
    truncated.u32(0x1000).u8(0).raw(&image[..image.len() - 10]);
    vec![
        ("rgb-8x8.bin", fits.finish()),
        ("no-space.bin", no_space.finish()),
        ("rgba-4x3.bin", rgba.finish()),
        ("truncated.bin", truncated.finish()),
    ]
}

// --- PCI ---

/// A modern virtio device as QEMU builds it (src/pci/tests.rs).
fn virtio_function() -> FakeFunction {
    let mut function = FakeFunction::new(0x1af4, 0x1055);
    function.bar32(1, 0x1000, false);
    function.bar64(4, 0x4000, true);
    function.set8(header::INTERRUPT_PIN, 1);
    function.capability(None, 0x40, &virtio_cap(cfg_type::COMMON, 4, 0x0, 0x1000, &[]));
    function.capability(Some(0x40), 0x50, &virtio_cap(cfg_type::ISR, 4, 0x1000, 0x1000, &[]));
    function.capability(Some(0x50), 0x60, &virtio_cap(cfg_type::DEVICE, 4, 0x2000, 0x1000, &[]));
    function.capability(Some(0x60), 0x70, &virtio_cap(cfg_type::NOTIFY, 4, 0x3000, 0x1000, &[4]));
    function
}

fn function_bytes(out: &mut Output, device: u8, function_number: u8, function: &FakeFunction) {
    out.u8(device).u8(function_number);
    for mask in function.bar_masks {
        out.u32(mask);
    }
    let upper = function.upper_half.iter().enumerate().fold(0u8, |bits, (slot, half)| bits | (u8::from(*half) << slot));
    out.u8(upper);
    match function.bar_override {
        Some((slot, value)) => out.u8(0x80 | slot as u8).u32(value),
        None => out.u8(0).u32(0),
    };
    out.raw(&function.bytes);
}

fn ecam_accesses(out: &mut Output) {
    // ECAM, buses 0..=0: a read, a write, a 16-bit write, a read past the
    // function's config space.
    out.u8(0).u8(0);
    out.u8(0).u8(1).u8(0).u16(0x10).u8(0);
    out.u8(0).u8(1).u8(0).u16(0x10).u8(1);
    out.u8(0).u8(2).u8(3).u16(0x42).u8(2);
    out.u8(0).u8(1).u8(0).u16(0x1000).u8(0);
}

fn pci_functions() -> Vec<(&'static str, Vec<u8>)> {
    let mut single = Output::new();
    single.u8(13).u8(0);
    function_bytes(&mut single, 1, 0, &virtio_function());
    ecam_accesses(&mut single);

    // Two functions of a multi-function device, one with a shared memory
    // region, on a bridge with a 64-bit window.
    let mut first = virtio_function();
    first.set8(header::HEADER_TYPE, header::MULTI_FUNCTION);
    let mut shm = virtio_cap(cfg_type::SHARED_MEMORY, 4, 0x0, 0x0, &[0, 0]);
    shm[2] = 24;
    first.bar64(2, 0x10_0000, true);
    first.capability(Some(0x70), 0x84, &shm);
    first.set8(0x84 + 4, 2);
    first.set32(0x84 + 12, 0x10_0000);
    let mut multi = Output::new();
    multi.u8(0x80 | 13).u8(1);
    function_bytes(&mut multi, 3, 0, &first);
    function_bytes(&mut multi, 3, 2, &virtio_function());
    multi.u8(1).u8(1).u8(0);
    multi.u8(1).u8(2).u8(0).u16(0x100).u8(0);

    // BARs that arrive assigned, one of them moving under the driver.
    let mut assigned = virtio_function();
    assigned.set32(header::BAR0 + 16, 0x2000_000c);
    assigned.set32(header::BAR0 + 4, 0x2000_4000);
    let mut moved = virtio_function();
    moved.bar_override = Some((1, 0x3000_0000));
    let mut kept = Output::new();
    kept.u8(13).u8(1);
    function_bytes(&mut kept, 1, 0, &assigned);
    function_bytes(&mut kept, 2, 0, &moved);
    vec![("qemu-virtio.bin", single.finish()), ("multi-function.bin", multi.finish()), ("assigned.bin", kept.finish())]
}

// --- transports ---

fn driver_request(out: &mut Output, queues: u8) {
    let requested = FEATURE_VERSION_1 | 1 | 2;
    out.u64(requested).u8(1).u16(0).u8(queues).u64(0x4800_0000).u64(0x4800_1000).u64(0x4800_2000);
}

fn transports() -> Vec<(&'static str, Vec<u8>)> {
    let features = FEATURE_VERSION_1 | FEATURE_ACCESS_PLATFORM | 0b11;
    let mut mmio = Output::new();
    // virtio-mmio, a plausible header (device id 21), QueueNumMax 64, no
    // shared memory region (length all ones), 16 config bytes.
    mmio.u8(0).u8(1).u8(20).u32(0x554d_4551).u64(features).u16(64).u64(u64::MAX).u64(0);
    mmio.chunk(&[0x48, 0x4d, 0x45, 0x4d, 1, 0, 2, 0, 2, 0, 0, 0, 4, 0, 0, 0]).u16(0x100).u8(0);
    driver_request(&mut mmio, 2);

    let mut hostile = mmio.bytes.clone();
    // The same device, answering the first reads of the status and the
    // config generation with values of its own.
    hostile.extend_from_slice(&[1, 0xff, 0, 0, 0, 0, 1, 8, 0, 0, 0, 1, 1, 0, 0, 0]);

    let mut raw_header = Output::new();
    raw_header.u8(0).u8(0).u32(MAGIC).u32(1).u32(2).u32(0).u64(0).u16(0).u64(0).u64(0).chunk(&[]).u16(0).u8(1);
    driver_request(&mut raw_header, 0);

    let mut pci = Output::new();
    // virtio-pci, device id 21 (0x1055), 0x38-byte common structure, 0x1000
    // bytes of notify with multiplier 4, 2 queues of 64, notify offset 1.
    pci.u8(1).u8(21).u64(features).u8(0).u16(0xffe).u8(0).u16(0x100).u32(4).u16(2).u16(64).u16(1);
    pci.chunk(&[0x48, 0x4d, 0x45, 0x4d]).u8(0).u64(0x4900_0000).u64(0x80_0000);
    driver_request(&mut pci, 2);
    vec![
        ("mmio-hostmem.bin", mmio.finish()),
        ("mmio-hostile-status.bin", hostile),
        ("mmio-legacy.bin", raw_header.finish()),
        ("pci-hostmem.bin", pci.finish()),
    ]
}
