//! Boots on a tree with unusual or hostile DMA bindings (tests/restricted_dma.rs
//! picks the overlay), prints what the runtime refused, and checks that every
//! rng it did bind works through its pool.
//!
//! With `policy=unrestricted` on the command line it uses
//! `DmaPolicy::Unrestricted`, giving devices the tree binds to no pool a
//! private pool carved from RAM (only honoured when the tree declares none;
//! if the pool cannot be carved, the policy stays `Strict`).
#![no_std]
#![no_main]

extern crate alloc;

use tidepool::dma::{self, PoolId};
use tidepool::virtio::probe::{self, DmaPolicy};
use tidepool::{Boot, TestResult, ensure, println};
use virtio_drivers::device::rng::VirtIORng;

tidepool::test_image!(report_refusals, bound_devices_still_work);

const DEVICE_ID_RNG: u32 = 4;
/// The slot of the private pool under `policy=unrestricted`.
const PRIVATE_SLOT: usize = 7;

fn policy(boot: &Boot) -> DmaPolicy {
    if boot.platform.bootarg("policy") != Some("unrestricted") {
        return DmaPolicy::Strict;
    }
    static CARVED: spin::Once<Option<PoolId>> = spin::Once::new();
    let carved = CARVED.call_once(|| match dma::register_private_pool(PRIVATE_SLOT, 1 << 20) {
        Ok(pool) => {
            let range = pool.range();
            println!("  private pool {pool}: {:#x}..{:#x}", range.base, range.end());
            Some(pool)
        }
        Err(error) => {
            println!("  private pool: {error}");
            None
        }
    });
    match carved {
        Some(pool) => DmaPolicy::Unrestricted { fallback: *pool },
        None => DmaPolicy::Strict,
    }
}

/// Prints every refusal; the host test checks the lines it expects for the
/// tree it chose.
fn report_refusals(boot: &Boot) -> TestResult {
    for result in probe::probe(boot, policy(boot)) {
        if let Err(error) = result {
            println!("  refused: {error}");
        }
    }
    for (index, pool) in boot.layout.pools().iter().enumerate() {
        if let Err(error) = pool {
            println!("  pool {index} unusable: {error}");
        }
    }
    Ok(())
}

fn bound_devices_still_work(boot: &Boot) -> TestResult {
    let devices = probe::devices(boot, policy(boot));
    let rngs: alloc::vec::Vec<_> = devices.into_iter().filter(|device| device.device_id == DEVICE_ID_RNG).collect();
    ensure!(!rngs.is_empty(), "no usable rng");
    for device in rngs {
        let pool = device.pool;
        let range = pool.range();
        let transport = device.transport;
        let result = tidepool::with_pool_hal!(pool, |H| {
            match VirtIORng::<H, _>::new(transport) {
                Ok(mut rng) => {
                    let mut bytes = [0u8; 32];
                    let _ = pool.reserve(bytes.len());
                    rng.request_entropy(&mut bytes).map_err(|e| alloc::format!("{e:?}"))
                }
                Err(error) => Err(alloc::format!("{error:?}")),
            }
        });
        match result {
            Ok(got) => println!(
                "  rng at {:#x} via pool {pool} ({:#x}..{:#x}): {} bytes",
                device.reg.base,
                range.base,
                range.end(),
                got.min(32)
            ),
            Err(error) => return Err(tidepool::TestFailure(error)),
        }
    }
    Ok(())
}
