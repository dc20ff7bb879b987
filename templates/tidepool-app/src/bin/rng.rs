//! A stock virtio driver (virtio-drivers' VirtIORng) on the device the
//! board binds to a restricted DMA pool: its rings and every buffer live in
//! that pool, and the runtime refuses to hand the device anything else.
#![no_std]
#![no_main]

use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, println};
use virtio_drivers::Hal;
use virtio_drivers::device::rng::VirtIORng;

tidepool::entry!(main);

/// virtio's device id for an entropy source.
const DEVICE_ID_RNG: u32 = 4;

fn main(boot: &'static Boot) -> u32 {
    let Some(device) = probe::find(boot, DmaPolicy::Strict, DEVICE_ID_RNG) else {
        println!("no virtio-rng bound to a DMA pool on this board");
        return tidepool::exit::FAILURE;
    };
    let pool = device.pool;
    println!("virtio-rng at {:#x}, bound to DMA pool {pool:?}", device.reg.base);
    tidepool::with_pool_hal!(pool, |H| read_entropy::<H>(device.transport, pool))
}

fn read_entropy<H: Hal>(transport: tidepool::virtio::transport::ProbedTransport, pool: tidepool::dma::PoolId) -> u32 {
    let mut rng = match VirtIORng::<H, _>::new(transport) {
        Ok(rng) => rng,
        Err(error) => {
            println!("virtio-rng: {error:?}");
            return tidepool::exit::FAILURE;
        }
    };
    let mut bytes = [0u8; 16];
    match rng.request_entropy(&mut bytes) {
        Ok(count) => println!("{count} random bytes through the pool: {:02x?}", &bytes[..count]),
        Err(error) => {
            println!("virtio-rng: {error:?}");
            return tidepool::exit::FAILURE;
        }
    }
    let stats = pool.stats();
    println!("pool: {} bytes in use now, {} bytes at most", stats.bytes_in_use, stats.high_water_bytes);
    tidepool::exit::SUCCESS
}
