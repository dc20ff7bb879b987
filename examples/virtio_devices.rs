//! Drives QEMU's virtio-rng and virtio-blk through their restricted DMA
//! pools and checks the data, the ring placement and the pool counters.
//!
//! Expects (as tests/restricted_dma.rs and tests/pci.rs launch it): a
//! virtio-rng device (virtio-mmio or virtio-pci) and a virtio-blk disk whose sector 0 holds
//! [`DISK_MAGIC`] followed by bytes `i * 7 mod 251`; the image writes
//! [`WRITTEN`] into sector 8, which the host test checks afterwards.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use tidepool::dma::PoolId;
use tidepool::virtio::irq;
use tidepool::virtio::probe::{self, Device, DmaPolicy};
use tidepool::{Boot, TestResult, ensure, println};
use virtio_drivers::Hal;
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;

tidepool::test_image!(
    pools_are_registered,
    rng_through_its_pool,
    blk_round_trip_with_interrupts,
    console_writes_through_its_pool
);

const DISK_MAGIC: &[u8] = b"TIDEPOOL-DISK-V1";
const WRITTEN: &[u8] = b"written by the guest through its pool";
const DEVICE_ID_BLOCK: u32 = 2;
const DEVICE_ID_RNG: u32 = 4;
const DEVICE_ID_CONSOLE: u32 = 3;
/// What the console case writes; the host test finds it in QEMU's chardev file.
const CONSOLE_TEXT: &[u8] = b"hello from the guest, through its DMA pool\n";

fn pools_are_registered(boot: &Boot) -> TestResult {
    let stats: Vec<_> = tidepool::dma::all_stats().collect();
    ensure!(
        stats.len() == boot.platform.pools().len(),
        "{} pools registered of {}",
        stats.len(),
        boot.platform.pools().len()
    );
    for (pool, range, stats) in stats {
        println!("  pool {pool}: {:#x}..{:#x}, {} bytes in use", range.base, range.end(), stats.bytes_in_use);
    }
    Ok(())
}

fn take(boot: &Boot, device_id: u32) -> Result<Device, tidepool::TestFailure> {
    probe::find(boot, DmaPolicy::Strict, device_id)
        .ok_or_else(|| tidepool::TestFailure(alloc::format!("no virtio device with id {device_id}")))
}

/// Sets pool room aside for a buffer the driver is about to share, so that
/// the share cannot find the pool empty.
fn reserve(pool: PoolId, len: usize) -> TestResult {
    pool.reserve(len).map_err(|error| tidepool::TestFailure(alloc::format!("{error}")))
}

/// Bytes `pool` has handed out right now.
fn in_use(pool: PoolId) -> u64 {
    pool.stats().bytes_in_use
}

fn rng_through_its_pool(boot: &Boot) -> TestResult {
    let device = take(boot, DEVICE_ID_RNG)?;
    let pool = device.pool;
    tidepool::with_pool_hal!(pool, |H| rng_case::<H>(device, pool, boot))
}

fn rng_case<H: Hal>(device: Device, pool: PoolId, boot: &Boot) -> TestResult {
    let window = device.reg;
    let location = device.pci;
    let before = pool.stats();
    let mut rng =
        VirtIORng::<H, _>::new(device.transport).map_err(|e| tidepool::TestFailure(alloc::format!("{e:?}")))?;
    // virtio-mmio's queue address registers are write-only, so the rings are
    // found through the pool: the Hal has no other place to take them from.
    ensure!(in_use(pool) > before.bytes_in_use, "creating the queue took nothing from pool {pool}");
    // Probing again while the driver runs must leave its device alone (a
    // second transport's drop would reset it under the driver).
    let again = probe::probe(boot, DmaPolicy::Strict);
    let seen_in_use = again.iter().any(|r| match r {
        Err(probe::ProbeError::InUse { device }) => *device == window,
        Err(probe::ProbeError::Pci { bridge, bdf, problem: probe::PciProblem::InUse }) => {
            location == Some((*bridge, *bdf))
        }
        _ => false,
    });
    ensure!(seen_in_use, "a second probe did not see the rng at {:#x} as in use", window.base);
    ensure!(probe::find(boot, DmaPolicy::Strict, DEVICE_ID_RNG).is_none(), "the rng was handed out twice");
    drop(again);
    let mut entropy = [0u8; 64];
    reserve(pool, entropy.len())?;
    let got = rng.request_entropy(&mut entropy).map_err(|e| tidepool::TestFailure(alloc::format!("{e:?}")))?;
    // The used length comes from the device: clamp it.
    let got = got.min(entropy.len());
    ensure!(got > 16, "only {got} bytes of entropy");
    let distinct = entropy[..got].iter().collect::<alloc::collections::BTreeSet<_>>().len();
    ensure!(distinct > 8, "entropy looks constant: {distinct} distinct bytes");
    let after = pool.stats();
    ensure!(after.bounces == before.bounces + 1, "expected one bounce, saw {}", after.bounces - before.bounces);
    ensure!(
        after.bytes_bounced - before.bytes_bounced == 64,
        "bounced {} bytes",
        after.bytes_bounced - before.bytes_bounced
    );
    println!("  rng: {got} bytes via pool {pool}, rings in pool, {} bounce bytes", after.bytes_bounced);
    Ok(())
}

fn blk_round_trip_with_interrupts(boot: &Boot) -> TestResult {
    let device = take(boot, DEVICE_ID_BLOCK)?;
    let pool = device.pool;
    let line = irq::bind(&device).map_err(|e| tidepool::TestFailure(alloc::format!("{e}")))?;
    tidepool::with_pool_hal!(pool, |H| blk_case::<H>(device, pool, &line))
}

fn blk_case<H: Hal>(device: Device, pool: PoolId, line: &irq::IrqLine) -> TestResult {
    let fail = |what: &str, e: &dyn core::fmt::Debug| tidepool::TestFailure(alloc::format!("{what}: {e:?}"));
    let before = in_use(pool);
    let mut blk = VirtIOBlk::<H, _>::new(device.transport).map_err(|e| fail("VirtIOBlk::new", &e))?;
    ensure!(in_use(pool) > before, "creating the queue took nothing from pool {pool}");
    ensure!(blk.capacity() >= 16, "disk of {} sectors", blk.capacity());

    // Read sector 0 with interrupt-driven completion.
    let mut sector = [0u8; SECTOR_SIZE];
    let mut request = BlkReq::default();
    let mut response = BlkResp::default();
    for len in [size_of::<BlkReq>(), SECTOR_SIZE, size_of::<BlkResp>()] {
        reserve(pool, len)?;
    }
    blk.enable_interrupts();
    let seen = line.count();
    // SAFETY: request, sector and response stay alive and untouched until
    // complete_read_blocks below.
    let token = unsafe { blk.read_blocks_nb(0, &mut request, &mut sector, &mut response) }
        .map_err(|e| fail("read_blocks_nb", &e))?;
    ensure!(line.wait_beyond(seen, 5_000_000), "no interrupt within 5 s");
    ensure!(blk.peek_used() == Some(token), "interrupt came but the request is not used");
    // SAFETY: the same buffers as above, now completed by the device.
    unsafe { blk.complete_read_blocks(token, &request, &mut sector, &mut response) }
        .map_err(|e| fail("complete", &e))?;
    ensure!(sector.starts_with(DISK_MAGIC), "sector 0 does not start with the disk magic");
    let pattern_ok = sector[DISK_MAGIC.len()..].iter().enumerate().all(|(i, &b)| b == ((i * 7) % 251) as u8);
    ensure!(pattern_ok, "sector 0 pattern differs");

    // Write sector 8 (polling) and read it back.
    let mut data = [0u8; SECTOR_SIZE];
    data[..WRITTEN.len()].copy_from_slice(WRITTEN);
    reserve(pool, SECTOR_SIZE)?;
    blk.write_blocks(8, &data).map_err(|e| fail("write_blocks", &e))?;
    let mut back = [0u8; SECTOR_SIZE];
    blk.read_blocks(8, &mut back).map_err(|e| fail("read_blocks", &e))?;
    ensure!(back == data, "sector 8 read back differs");
    pool.release_reservations();
    let stats = pool.stats();
    println!(
        "  blk: pool {pool}, {} interrupts, {} bounces, {} bytes bounced, high water {} bytes",
        line.count(),
        stats.bounces,
        stats.bytes_bounced,
        stats.high_water_bytes
    );
    Ok(())
}

fn console_writes_through_its_pool(boot: &Boot) -> TestResult {
    let device = take(boot, DEVICE_ID_CONSOLE)?;
    let pool = device.pool;
    tidepool::with_pool_hal!(pool, |H| console_case::<H>(device, pool))
}

fn console_case<H: Hal>(device: Device, pool: PoolId) -> TestResult {
    let fail = |what: &str, e: &dyn core::fmt::Debug| tidepool::TestFailure(alloc::format!("{what}: {e:?}"));
    let before = pool.stats();
    // The driver posts a one-page receive buffer as it starts.
    reserve(pool, 4096)?;
    let mut console = VirtIOConsole::<H, _>::new(device.transport).map_err(|e| fail("VirtIOConsole::new", &e))?;
    reserve(pool, CONSOLE_TEXT.len())?;
    console.send_bytes(CONSOLE_TEXT).map_err(|e| fail("send_bytes", &e))?;
    let after = pool.stats();
    let sent = after.bytes_bounced - before.bytes_bounced;
    ensure!(sent >= CONSOLE_TEXT.len() as u64, "only {sent} bytes went through pool {pool}");
    println!(
        "  console: {} bytes sent via pool {pool}, {} bounces",
        CONSOLE_TEXT.len(),
        after.bounces - before.bounces
    );
    Ok(())
}
