//! The device tree a loader hands over: the input is the blob.
//!
//! Everything the boot does with it: `blob_total_size`, `normalize` into a
//! buffer of the boot's size, `discover` on the normalised copy (and on the
//! raw bytes, which it must refuse or read safely), then the layout for two
//! placements of the image and the tree. Checked: nothing panics; the
//! normalised copy is valid, no longer than its input, and normalising it
//! again changes nothing; an accepted platform satisfies every source rule
//! (`platform_checks`); the layout keeps pools apart, inside RAM and clear of
//! reservations, and the heap clear of all of it.

use std::cell::RefCell;

use tidepool::devicetree;
use tidepool::platform::Range;

use crate::platform_checks::{check_layout, check_platform, check_windows_against};

/// The boot's buffer for the normalised copy (`DTB_CAPACITY` in boot.rs).
const DTB_CAPACITY: usize = 256 * 1024;

/// Image and tree as `cargo xtask run` places them on qemu-virt, and as a
/// loader putting the tree first would.
const PLACEMENTS: [(Range, Range); 2] = [
    (Range { base: 0x4008_0000, size: 0x20_0000 }, Range { base: 0x4400_0000, size: 0x2000 }),
    (Range { base: 0x4800_0000, size: 0x10_0000 }, Range { base: 0x4000_0000, size: 0x1_0000 }),
];

thread_local! {
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::new((vec![0; DTB_CAPACITY], vec![0; DTB_CAPACITY]));
}

pub fn run(data: &[u8]) {
    BUFFERS.with(|buffers| {
        let (out, again) = &mut *buffers.borrow_mut();
        run_with(data, out, again);
    });
}

fn run_with(data: &[u8], out: &mut [u8], again: &mut [u8]) {
    let total = devicetree::blob_total_size(data);
    // Discovery re-validates whatever it is given.
    let raw = devicetree::discover(data);
    if let Ok(platform) = &raw {
        check_platform(platform);
    }
    let len = match devicetree::normalize(data, out) {
        Ok(len) => len,
        Err(error) => {
            let _ = error.to_string();
            // (A tree larger than the boot's buffer is refused for that alone.)
            if total.is_ok_and(|total| total <= DTB_CAPACITY) {
                assert!(raw.is_err(), "discover accepted a blob normalize refuses: {error}");
            }
            return;
        }
    };
    let total = total.expect("normalize accepted a blob whose header blob_total_size refuses");
    let normalized = &out[..len];
    assert!(len <= total, "normalised copy ({len}) longer than the tree ({total})");
    assert_eq!(devicetree::blob_total_size(normalized).ok(), Some(len), "copy's totalsize");
    // Normalising is idempotent.
    let len_again = devicetree::normalize(normalized, again).expect("a normalised copy normalises again");
    assert_eq!(&again[..len_again], normalized, "normalising twice changed the copy");

    let platform = match devicetree::discover(normalized) {
        Ok(platform) => platform,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    // A blob without NOPs reads the same raw or normalised.
    if let Ok(raw) = &raw {
        assert_eq!(format!("{raw:?}"), format!("{platform:?}"), "raw and normalised blobs read differently");
    }
    check_platform(&platform);
    for (image, tree) in PLACEMENTS {
        check_layout(&platform, image, tree);
        check_windows_against(&platform, image, tree);
    }
}
