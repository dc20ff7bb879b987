//! End to end without QEMU: this test plays QEMU's part through vhost's
//! `Frontend` over a real Unix socket (features, protocol features, config
//! space, memory table of memfd-backed nodes, vrings in the pool, kicks and
//! calls through eventfds) and the guest driver's part by writing rings and
//! buffers into its own mapping of the same memfds.
//!
//! Waits are bounded: everything polls with a generous deadline; no
//! assertion depends on how long something took.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hostmem_backend::setup::{DeviceSetup, Faults, GuestWindow, SetupParams, SubdeviceKind};
use hostmem_backend::testing::{CODEC_BASE, ECHO_BASE, GuestLayout, POOL_BASE, POOL_SIZE, REGION_SIZE};
use hostmem_backend::{Shutdown, serve};
use hostmem_wire::codec::{DecodeMeta, FrameInfo};
use hostmem_wire::echo::CopyMeta;
use hostmem_wire::zerocopy::IntoBytes;
use hostmem_wire::{Config, ConfigResponse, Event, EventType, Notification, Opcode, Request, Status, feature};
use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

const DEADLINE: Duration = Duration::from_secs(20);
const QSIZE: u16 = 64;
/// Queues this test sets up: config, event, notification queues 0 and 1.
const QUEUES: usize = 4;
const ECHO: u32 = 1;
const CODEC: u32 = 0;

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hostmem-e2e-{}-{name}.sock", std::process::id()))
}

fn setup() -> Arc<DeviceSetup> {
    let window = |base, len| GuestWindow::new(base, len).unwrap();
    Arc::new(
        DeviceSetup::new(SetupParams {
            device_id: 21,
            pool: window(POOL_BASE, POOL_SIZE),
            regions: vec![
                (SubdeviceKind::Codec, window(CODEC_BASE, REGION_SIZE)),
                (SubdeviceKind::Echo, window(ECHO_BASE, REGION_SIZE)),
            ],
            max_instances: 4,
            faults: Faults::default(),
            dump_frames: None,
            access_platform: true,
        })
        .unwrap(),
    )
}

/// Serves `path` on a thread, as the daemon does; the receiver gets the
/// serve loop's result when it ends.
#[allow(clippy::type_complexity)]
fn start_server(
    path: &std::path::Path,
) -> (Shutdown, mpsc::Receiver<Result<(), String>>, thread::JoinHandle<Result<(), mpsc::SendError<Result<(), String>>>>)
{
    let shutdown = Shutdown::new(path);
    let (done_tx, done_rx) = mpsc::channel();
    let server = {
        let (path, shutdown) = (path.to_path_buf(), shutdown.clone());
        thread::spawn(move || done_tx.send(serve(setup(), &path, &shutdown).map_err(|e| e.to_string())))
    };
    (shutdown, done_rx, server)
}

/// The daemon binary serving `path` with the test's pool and regions.
fn spawn_daemon(path: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hostmem-backend"))
        .args(["--socket", path.to_str().unwrap(), "--pool", "0x48400000:4M"])
        .args(["--region", "codec@0x49000000:8M", "--region", "echo@0x49800000:8M", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls `f` until it returns `Some`, panicking with `what` after the
/// deadline.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The guest driver's side of one split virtqueue.
struct DriverQueue {
    index: usize,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
    kick: EventFd,
    call: EventFd,
}

impl DriverQueue {
    fn new(index: usize) -> Self {
        let base = POOL_BASE + index as u64 * 0x1000;
        Self {
            index,
            desc: base,
            avail: base + 16 * u64::from(QSIZE),
            used: base + 0x800,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
            kick: EventFd::new(0).unwrap(),
            call: EventFd::new(0).unwrap(),
        }
    }

    fn push(&mut self, guest: &GuestLayout, segs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in segs.iter().enumerate() {
            let index = (head + i as u16) % QSIZE;
            let mut flags = if writable { 2 } else { 0 };
            if i + 1 < segs.len() {
                flags |= 1;
            }
            let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, (index + 1) % QSIZE));
            guest.mem.write_obj(desc, GuestAddress(self.desc + 16 * u64::from(index))).unwrap();
        }
        self.next_desc = (head + segs.len() as u16) % QSIZE;
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % QSIZE);
        guest.mem.write_obj(head.to_le(), GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // Descriptors and buffers before the index, as a driver's barrier.
        fence(Ordering::SeqCst);
        guest.mem.store(self.avail_idx.to_le(), GuestAddress(self.avail + 2), Ordering::Release).unwrap();
        head
    }

    fn kick(&self) {
        self.kick.write(1).unwrap();
    }

    /// Waits for `n` more used elements.
    fn wait_used(&mut self, guest: &GuestLayout, n: u16) -> Vec<(u16, u32)> {
        let target = self.used_seen.wrapping_add(n);
        let what = format!("{n} used buffer(s) on queue {}", self.index);
        poll(&what, || {
            let idx: u16 = guest.mem.load(GuestAddress(self.used + 2), Ordering::Acquire).unwrap();
            (u16::from_le(idx).wrapping_sub(self.used_seen) >= n).then_some(())
        });
        let mut out = Vec::new();
        while self.used_seen != target {
            let at = self.used + 4 + 8 * u64::from(self.used_seen % QSIZE);
            let id: u32 = guest.mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = guest.mem.read_obj(GuestAddress(at + 4)).unwrap();
            out.push((u32::from_le(id) as u16, u32::from_le(len)));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}

/// A connected frontend plus the guest state behind it.
struct Session<'a> {
    guest: &'a GuestLayout,
    frontend: Frontend,
    queues: Vec<DriverQueue>,
    bump: u64,
    event_bufs: Vec<(u16, u64)>,
}

impl<'a> Session<'a> {
    /// Connects and performs QEMU's start-up sequence.
    fn start(path: &Path, guest: &'a GuestLayout) -> Self {
        poll("the backend socket", || path.exists().then_some(()));
        let mut frontend = Frontend::connect(path, 6).unwrap();
        frontend.set_owner().unwrap();
        let offered = frontend.get_features().unwrap();
        for bit in [feature::VERSION_1, feature::COMPLETION_WORD, feature::EVENT_SUPPRESS, feature::ACCESS_PLATFORM] {
            assert_ne!(offered & feature::mask(bit), 0, "feature bit {bit} offered");
        }
        let protocol = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        assert_ne!(offered & protocol, 0);
        let wanted = feature::mask(feature::VERSION_1)
            | feature::mask(feature::COMPLETION_WORD)
            | feature::mask(feature::EVENT_SUPPRESS)
            | protocol;
        frontend.set_features(wanted).unwrap();
        let pf = frontend.get_protocol_features().unwrap();
        // ACCESS_PLATFORM comes with what QEMU demands for it.
        assert!(pf.contains(VhostUserProtocolFeatures::BACKEND_REQ | VhostUserProtocolFeatures::REPLY_ACK));
        assert!(pf.contains(VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ));
        frontend
            .set_protocol_features(
                VhostUserProtocolFeatures::CONFIG
                    | VhostUserProtocolFeatures::MQ
                    | VhostUserProtocolFeatures::REPLY_ACK,
            )
            .unwrap();
        // Every later message waits for the backend's ack, as with QEMU:
        // otherwise a kick could reach the vring worker before the
        // backend's message thread has enabled the queues (a CREATE then
        // finds no usable notification queue).
        frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        assert_eq!(frontend.get_queue_num().unwrap(), 6);

        // QEMU reads the whole config space on every guest config read.
        let size = hostmem_wire::CONFIG_SIZE as u32;
        let (_, bytes) = frontend.get_config(0, size, VhostUserConfigFlags::empty(), &vec![0; size as usize]).unwrap();
        let config = Config::parse(&bytes).unwrap();
        assert_eq!(config.magic.get(), hostmem_wire::MAGIC);
        assert_eq!((config.num_subdevices.get(), config.max_instances.get()), (2, 4));
        assert_eq!(config.entries()[0].region_base.get(), CODEC_BASE);
        assert_eq!(config.entries()[1].region_base.get(), ECHO_BASE);
        // Partial reads, as QEMU never does but the protocol allows.
        let (_, magic) = frontend.get_config(0, 4, VhostUserConfigFlags::empty(), &[0; 4]).unwrap();
        assert_eq!(magic, b"HMEM");

        let regions: Vec<VhostUserMemoryRegionInfo> =
            guest.mem.iter().map(|r| VhostUserMemoryRegionInfo::from_guest_region(r).unwrap()).collect();
        frontend.set_mem_table(&regions).unwrap();

        let mut session =
            Self { guest, frontend, queues: Vec::new(), bump: POOL_BASE + 0x10_0000, event_bufs: Vec::new() };
        session.start_queues();
        session
    }

    /// Sets up every queue from scratch, as QEMU does when the driver
    /// (re)starts the device: empty rings, index 0, fresh eventfds.
    fn start_queues(&mut self) {
        let guest = self.guest;
        let va = |gpa: u64| guest.mem.get_host_address(GuestAddress(gpa)).unwrap() as u64;
        self.queues.clear();
        // The device forgot every buffer (§12); so does the driver.
        self.event_bufs.clear();
        for q in 0..QUEUES {
            let dq = DriverQueue::new(q);
            guest.mem.write_slice(&[0; 0x1000], GuestAddress(dq.desc)).unwrap();
            let frontend = &mut self.frontend;
            frontend.set_vring_num(q, QSIZE).unwrap();
            let data = VringConfigData {
                queue_max_size: QSIZE,
                queue_size: QSIZE,
                flags: 0,
                desc_table_addr: va(dq.desc),
                used_ring_addr: va(dq.used),
                avail_ring_addr: va(dq.avail),
                log_addr: None,
            };
            frontend.set_vring_addr(q, &data).unwrap();
            frontend.set_vring_base(q, 0).unwrap();
            frontend.set_vring_call(q, &dq.call).unwrap();
            frontend.set_vring_kick(q, &dq.kick).unwrap();
            frontend.set_vring_enable(q, true).unwrap();
            self.queues.push(dq);
        }
    }

    /// A device reset as QEMU performs it when the driver resets the
    /// device: GET_VRING_BASE on every queue (which stops it), then the
    /// queues set up again when the driver restarts.
    fn reset_and_restart(&mut self) {
        for q in 0..QUEUES {
            self.frontend.get_vring_base(q).unwrap();
        }
        self.start_queues();
    }

    fn alloc(&mut self, len: u64) -> u64 {
        let addr = self.bump;
        self.bump += len.next_multiple_of(64);
        assert!(self.bump <= POOL_BASE + POOL_SIZE);
        addr
    }

    fn post_event_buffers(&mut self, n: usize) {
        for _ in 0..n {
            let buf = self.alloc(80);
            let head = self.queues[1].push(self.guest, &[(buf, 80, true)]);
            self.event_bufs.push((head, buf));
        }
        self.queues[1].kick();
    }

    fn request(&mut self, request: Request) -> ConfigResponse {
        let resp = self.request_unchecked(request);
        resp.check(&request, 4).unwrap();
        resp
    }

    /// Sends `request` and returns the answer, whatever its status.
    fn request_unchecked(&mut self, request: Request) -> ConfigResponse {
        let req = self.alloc(32);
        let resp = self.alloc(72);
        self.guest.mem.write_slice(request.encode().as_bytes(), GuestAddress(req)).unwrap();
        let head = self.queues[0].push(self.guest, &[(req, 32, false), (resp, 72, true)]);
        self.queues[0].kick();
        assert_eq!(self.queues[0].wait_used(self.guest, 1), vec![(head, 72)]);
        let mut bytes = [0u8; 72];
        self.guest.mem.read_slice(&mut bytes, GuestAddress(resp)).unwrap();
        ConfigResponse::read(&bytes, 72).unwrap()
    }

    fn notify(&mut self, id: u32, n: &Notification) {
        let buf = self.alloc(72);
        self.guest.mem.write_slice(n.as_bytes(), GuestAddress(buf)).unwrap();
        let q = 2 + id as usize;
        let head = self.queues[q].push(self.guest, &[(buf, 72, false)]);
        self.queues[q].kick();
        assert_eq!(self.queues[q].wait_used(self.guest, 1), vec![(head, 0)]);
    }

    fn next_event(&mut self) -> Event {
        let used = self.queues[1].wait_used(self.guest, 1);
        let (head, len) = used[0];
        assert_eq!(len, 80);
        let buf = self.event_bufs.iter().find(|(h, _)| *h == head).unwrap().1;
        let mut bytes = [0u8; 80];
        self.guest.mem.read_slice(&mut bytes, GuestAddress(buf)).unwrap();
        let event = Event::read(&bytes, 80).unwrap();
        event.check(4, REGION_SIZE).unwrap();
        event
    }

    fn completion_word(&self, base: u64, offset: u64) -> u64 {
        let v: u64 = self.guest.mem.load(GuestAddress(base + offset), Ordering::Acquire).unwrap();
        u64::from_le(v)
    }

    /// The driver's whole life: create, use and destroy both sub-devices.
    fn exercise(&mut self) {
        self.post_event_buffers(8);
        assert_eq!(self.request(Request::Ping { cookie: 42 }).cookie.get(), 42);
        let entry = self.request(Request::QuerySubdevice { subdevice_index: ECHO }).subdevice;
        assert_eq!(entry.region_base.get(), ECHO_BASE);

        // Echo, with a completion word.
        let echo = self.request(Request::Create { subdevice_index: ECHO, completion_offset: Some(0x40) });
        let echo_id = echo.instance_id.get();
        assert_eq!((echo_id, echo.notify_queue.get()), (0, 2));
        let data: Vec<u8> = (0..200u8).collect();
        self.guest.mem.write_slice(&data, GuestAddress(ECHO_BASE + 0x1000)).unwrap();
        let meta = CopyMeta::new(0x8000).to_metadata();
        self.notify(echo_id, &Notification::new(echo_id, 1, Notification::F_EVENT, 1, 0x1000, 200, meta));
        let event = self.next_event();
        assert_eq!(event.event_type().unwrap(), EventType::Completion);
        assert_eq!((event.instance_id.get(), event.seq.get()), (echo_id, 1));
        assert_eq!((event.offset.get(), event.size.get()), (0x8000, 200));
        // The word is published after the event, so it may trail it.
        poll("the completion word", || (self.completion_word(ECHO_BASE, 0x40) == 1).then_some(()));
        let mut copied = vec![0u8; 200];
        self.guest.mem.read_slice(&mut copied, GuestAddress(ECHO_BASE + 0x8000)).unwrap();
        assert_eq!(copied, data);

        // A hostile notification on the same instance: error, still alive.
        let meta = CopyMeta::new(REGION_SIZE).to_metadata();
        self.notify(echo_id, &Notification::new(echo_id, 1, Notification::F_EVENT, 2, 0, 8, meta));
        let event = self.next_event();
        assert_eq!((event.event_type().unwrap(), event.status().unwrap()), (EventType::Error, Status::BadRange));

        // Codec: decode a real QOI frame.
        let codec = self.request(Request::Create { subdevice_index: CODEC, completion_offset: None });
        let codec_id = codec.instance_id.get();
        assert_eq!(codec_id, 1);
        let pixels: Vec<u8> = (0..24 * 10 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let qoi = qoi::encode_to_vec(&pixels, 24, 10).unwrap();
        self.guest.mem.write_slice(&qoi, GuestAddress(CODEC_BASE + 0x1000)).unwrap();
        let meta = DecodeMeta::new(0x10_0000, 0x10_0000).to_metadata();
        let n = Notification::new(codec_id, 1, Notification::F_EVENT, 1, 0x1000, qoi.len() as u64, meta);
        self.notify(codec_id, &n);
        let event = self.next_event();
        assert_eq!(event.event_type().unwrap(), EventType::Completion, "{event:?}");
        let info = FrameInfo::from_metadata(event.metadata);
        info.check(1, 0x10_0000).unwrap();
        let mut out = vec![0u8; pixels.len()];
        self.guest.mem.read_slice(&mut out, GuestAddress(CODEC_BASE + event.offset.get())).unwrap();
        assert_eq!(out, pixels);

        assert_eq!(self.request(Request::Destroy { instance_id: echo_id }).instance_id.get(), echo_id);
        assert_eq!(self.request(Request::Destroy { instance_id: codec_id }).instance_id.get(), codec_id);
    }
}

#[test]
fn frontend_session_reconnect_and_shutdown() {
    let _ = env_logger::builder().is_test(true).filter_level(log::LevelFilter::Info).try_init();
    let path = socket_path("session");
    let (shutdown, done_rx, server) = start_server(&path);

    // First connection.
    let guest = GuestLayout::new().unwrap();
    let mut session = Session::start(&path, &guest);
    session.exercise();
    drop(session);

    // QEMU reconnects (e.g. restarted): fresh device state, same ids again.
    let guest = GuestLayout::new().unwrap();
    let mut session = Session::start(&path, &guest);
    session.exercise();
    // A device reset as QEMU does it: GET_VRING_BASE on every queue, then
    // the queues set up again. Instance 0 exists before it...
    let echo = session.request(Request::Create { subdevice_index: ECHO, completion_offset: None });
    assert_eq!(echo.instance_id.get(), 0);
    session.reset_and_restart();
    // ...and is gone after it (§12: every instance destroyed): DESTROY
    // finds nothing, and the next CREATE gets id 0 again, not 1.
    let gone = session.request_unchecked(Request::Destroy { instance_id: 0 });
    assert_eq!(gone, ConfigResponse::failure(Opcode::Destroy.into(), Status::BadInstance));
    let again = session.request(Request::Create { subdevice_index: ECHO, completion_offset: Some(0x40) });
    assert_eq!(again.instance_id.get(), 0);
    // The restarted device serves the new instance through the new rings.
    session.post_event_buffers(1);
    session.guest.mem.write_slice(b"restart!", GuestAddress(ECHO_BASE + 0x3000)).unwrap();
    let meta = CopyMeta::new(0x3100).to_metadata();
    session.notify(0, &Notification::new(0, 1, Notification::F_EVENT, 1, 0x3000, 8, meta));
    assert_eq!(session.next_event().event_type().unwrap(), EventType::Completion);
    poll("the completion word", || (session.completion_word(ECHO_BASE, 0x40) == 1).then_some(()));
    drop(session);

    shutdown.trigger();
    let result = done_rx.recv_timeout(DEADLINE).expect("serve loop ended after shutdown");
    assert_eq!(result, Ok(()));
    server.join().unwrap().unwrap();
    assert!(!path.exists(), "socket removed");
}

#[test]
fn shutdown_while_waiting_for_a_frontend() {
    let _ = env_logger::builder().is_test(true).filter_level(log::LevelFilter::Info).try_init();
    let path = socket_path("idle");
    let (shutdown, done_rx, server) = start_server(&path);
    poll("the backend socket", || path.exists().then_some(()));
    shutdown.trigger();
    assert_eq!(done_rx.recv_timeout(DEADLINE).expect("serve loop ended"), Ok(()));
    server.join().unwrap().unwrap();
}

#[test]
fn binary_exits_cleanly_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let path = socket_path(&format!("bin-{signal}"));
        let mut child = spawn_daemon(&path);
        poll("the daemon's socket", || path.exists().then_some(()));
        // A frontend comes and goes first: the daemon keeps serving.
        let guest = GuestLayout::new().unwrap();
        let session = Session::start(&path, &guest);
        drop(session);
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = poll("the daemon to exit", || child.try_wait().unwrap());
        assert_eq!(status.code(), Some(0), "signal {signal}: {status:?} (signal {:?})", status.signal());
        assert!(!path.exists(), "socket removed");
    }
}

/// Shutdown while a frontend is still connected (QEMU running): the serve
/// loop ends the connection and returns, without waiting for QEMU to go.
#[test]
fn shutdown_while_a_frontend_is_connected() {
    let _ = env_logger::builder().is_test(true).filter_level(log::LevelFilter::Info).try_init();
    let path = socket_path("connected");
    let (shutdown, done_rx, server) = start_server(&path);
    let guest = GuestLayout::new().unwrap();
    let mut session = Session::start(&path, &guest);
    // Mid-use: a live instance with a completion word.
    let echo = session.request(Request::Create { subdevice_index: ECHO, completion_offset: Some(0x40) });
    assert_eq!(echo.instance_id.get(), 0);

    shutdown.trigger();
    let result = done_rx.recv_timeout(DEADLINE).expect("serve loop ended while the frontend was connected");
    assert_eq!(result, Ok(()));
    server.join().unwrap().unwrap();
    assert!(!path.exists(), "socket removed");
    // The frontend sees the connection gone, not a backend still answering.
    assert!(session.frontend.get_features().is_err(), "connection closed by the backend");
    drop(session);
}

#[test]
fn binary_exits_cleanly_on_sigterm_while_a_frontend_is_connected() {
    let path = socket_path("bin-connected");
    let mut child = spawn_daemon(&path);
    poll("the daemon's socket", || path.exists().then_some(()));
    let guest = GuestLayout::new().unwrap();
    let mut session = Session::start(&path, &guest);
    let echo = session.request(Request::Create { subdevice_index: ECHO, completion_offset: None });
    assert_eq!(echo.instance_id.get(), 0);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // Bounded: a daemon that hangs fails the test instead of blocking it.
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon still running {DEADLINE:?} after SIGTERM with a frontend connected");
        }
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(status.code(), Some(0), "{status:?} (signal {:?})", status.signal());
    assert!(!path.exists(), "socket removed");
    assert!(session.frontend.get_features().is_err(), "connection closed by the daemon");
    drop(session);
}
