//! Many frontends one after the other: the daemon serves each and holds no
//! file descriptors across connections. In its own test binary (its own
//! process), so counting this process's fds is not disturbed by other tests.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hostmem_backend::setup::{DeviceSetup, Faults, GuestWindow, SetupParams, SubdeviceKind};
use hostmem_backend::testing::{ECHO_BASE, POOL_BASE, POOL_SIZE, REGION_SIZE};
use hostmem_backend::{Shutdown, serve};
use vhost::VhostBackend;
use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures};

const DEADLINE: Duration = Duration::from_secs(20);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn reconnects_do_not_leak_fds() {
    let path = std::env::temp_dir().join(format!("hostmem-reconnect-{}.sock", std::process::id()));
    let window = |base, len| GuestWindow::new(base, len).unwrap();
    let setup = Arc::new(
        DeviceSetup::new(SetupParams {
            device_id: 21,
            pool: window(POOL_BASE, POOL_SIZE),
            regions: vec![(SubdeviceKind::Echo, window(ECHO_BASE, REGION_SIZE))],
            max_instances: 2,
            faults: Faults::default(),
            dump_frames: None,
            access_platform: true,
        })
        .unwrap(),
    );
    let shutdown = Shutdown::new(&path);
    let (done_tx, done_rx) = mpsc::channel();
    let server = {
        let (path, shutdown) = (path.clone(), shutdown.clone());
        thread::spawn(move || done_tx.send(serve(setup, &path, &shutdown).map_err(|e| e.to_string())))
    };
    poll("the socket", || path.exists());

    let handshake = || {
        let mut frontend = Frontend::connect(&path, 4).unwrap();
        frontend.set_owner().unwrap();
        let features = frontend.get_features().unwrap();
        frontend.set_features(features & (VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() | (1 << 32))).unwrap();
        frontend.get_protocol_features().unwrap();
        frontend.set_protocol_features(VhostUserProtocolFeatures::CONFIG).unwrap();
        let (_, config) = frontend.get_config(0, 4, VhostUserConfigFlags::empty(), &[0; 4]).unwrap();
        assert_eq!(config, b"HMEM");
    };
    // One round to reach the steady state (lazily opened fds, logger...).
    handshake();
    // The loop is back in accept() once a bare connection is served too.
    drop(UnixStream::connect(&path).unwrap());
    let baseline = open_fds();
    // More rounds than the fds one in-flight connection holds, so a leak
    // of one fd per connection cannot hide in the baseline's noise.
    for _ in 0..20 {
        handshake();
    }
    // Each ended connection is torn down before the next accept; allow the
    // last one to finish.
    poll("fds back to the baseline", || open_fds() <= baseline);

    shutdown.trigger();
    assert_eq!(done_rx.recv_timeout(DEADLINE).expect("serve loop ended"), Ok(()));
    server.join().unwrap().unwrap();
}
