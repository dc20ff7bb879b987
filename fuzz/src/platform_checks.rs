//! What every accepted platform must satisfy, whichever source built it
//! (the invariants `Platform`'s documentation lists), and what the memory
//! layout must satisfy for it. Shared by the device-tree and comm-region
//! targets; a violation panics, which libFuzzer reports as a crash.

use std::fmt::Write as _;

use tidepool::platform::{
    self, ADDRESS_LIMIT, GICV2_CPU_INTERFACE_WINDOW, GICV2_DISTRIBUTOR_WINDOW, GICV3_DISTRIBUTOR_WINDOW,
    GICV3_REDISTRIBUTOR_WINDOW, Gic, Layout, PAGE_SIZE, PCI_WINDOW, PL011_WINDOW, Placement, Platform, Range,
    VIRTIO_WINDOW, WindowRule, page_span, ram_covers,
};

fn well_formed(range: &Range) -> bool {
    range.size > 0 && range.base.checked_add(range.size).is_some()
}

fn follows(range: &Range, rule: WindowRule) -> bool {
    range.size >= rule.min_size && range.base.is_multiple_of(rule.alignment) && range.end() <= ADDRESS_LIMIT
}

/// The platform on its own: RAM, reservations, pools, devices and windows.
pub fn check_platform(platform: &Platform) {
    let _ = platform.to_string();
    let memory = platform.memory();
    assert!(!memory.is_empty(), "a platform without RAM was accepted");
    for range in memory {
        assert!(well_formed(range) && range.end() <= ADDRESS_LIMIT, "RAM {range:?} empty, wrapping or unmappable");
    }
    for pair in memory.windows(2) {
        assert!(pair[0].end() <= pair[1].base, "RAM not sorted and disjoint: {:?}, {:?}", pair[0], pair[1]);
    }
    for reserved in platform.reserved() {
        assert!(well_formed(&reserved.range), "reservation {reserved:?} empty or wrapping");
    }

    // Usable pools: page-aligned, inside RAM, clear of reservations and of
    // the other fixed pools.
    let pools = platform.pools();
    for (index, pool) in pools.iter().enumerate() {
        if let Some(declared) = pool.declared {
            assert!(well_formed(&declared), "pool {index} declares {declared:?}");
        }
        match &pool.placement {
            Ok(Placement::Fixed(range)) => {
                assert!(well_formed(range), "pool {index} at {range:?}");
                assert!(
                    range.base.is_multiple_of(PAGE_SIZE) && range.size.is_multiple_of(PAGE_SIZE),
                    "pool {index} at {range:?} is not page-aligned"
                );
                assert!(ram_covers(memory, *range), "pool {index} at {range:?} is not inside RAM {memory:?}");
                for reserved in platform.reserved() {
                    assert!(!range.overlaps(&reserved.range), "pool {index} at {range:?} over {reserved:?}");
                }
                for (other_index, other) in pools.iter().enumerate() {
                    if let Ok(Placement::Fixed(other_range)) = &other.placement
                        && other_index != index
                    {
                        assert!(!range.overlaps(other_range), "pools {index} and {other_index} overlap");
                    }
                }
            }
            Ok(placement @ Placement::Dynamic { size, .. }) => {
                assert!(*size > 0 && size.is_multiple_of(PAGE_SIZE), "pool {index} of size {size:#x}");
                assert!(placement.alignment().is_power_of_two(), "pool {index}: alignment {}", placement.alignment());
            }
            Err(_) => {}
        }
    }

    // Devices bound to pools name usable ones.
    for device in platform.virtio().iter().flatten() {
        if let Some(pool) = device.pool {
            assert!(pools.get(pool).is_some_and(|pool| pool.placement.is_ok()), "{device:?}: pool {pool} unusable");
        }
        assert!(follows(&device.reg, VIRTIO_WINDOW), "virtio window {:?} breaks its rule", device.reg);
    }
    for bridge in platform.pci_bridges().iter().flatten() {
        let _ = bridge.to_string();
        for pool in bridge.pool.iter().copied().chain(bridge.function_pools.iter().map(|entry| entry.pool)) {
            assert!(
                pools.get(pool).is_some_and(|pool| pool.placement.is_ok()),
                "{}: pool {pool} unusable",
                bridge.origin
            );
        }
        assert!(bridge.bus_start <= bridge.bus_end, "{}: bus range", bridge.origin);
        let buses = u64::from(bridge.bus_end - bridge.bus_start) + 1;
        assert!(
            bridge.config.size >= buses << bridge.mechanism.bus_shift(),
            "{}: config window too small",
            bridge.origin
        );
        for window in bridge.device_windows() {
            assert!(follows(&window, PCI_WINDOW), "{}: window {window:?} breaks its rule", bridge.origin);
        }
    }
    if let Some(uart) = platform.uart() {
        assert!(follows(&uart.reg, PL011_WINDOW), "UART window {:?} breaks its rule", uart.reg);
    }
    match platform.gic() {
        Some(Gic::V2 { distributor, cpu_interface }) => {
            assert!(follows(distributor, GICV2_DISTRIBUTOR_WINDOW), "GICD {distributor:?}");
            assert!(follows(cpu_interface, GICV2_CPU_INTERFACE_WINDOW), "GICC {cpu_interface:?}");
        }
        Some(Gic::V3 { distributor, redistributors }) => {
            assert!(follows(distributor, GICV3_DISTRIBUTOR_WINDOW), "GICD {distributor:?}");
            for range in redistributors {
                assert!(follows(range, GICV3_REDISTRIBUTOR_WINDOW), "GICR {range:?}");
            }
        }
        None => {}
    }

    // Every window the runtime maps as device memory: below the page
    // tables' limit, sharing no page with RAM, and no two over the same
    // registers (two drivers would program one device).
    let windows: Vec<_> = platform.named_device_windows().collect();
    for (index, (origin, window)) in windows.iter().enumerate() {
        assert!(well_formed(window) && window.end() <= ADDRESS_LIMIT, "{origin}: window {window:?}");
        let pages = page_span(*window);
        assert!(!memory.iter().any(|ram| ram.overlaps(&pages)), "{origin}: window {window:?} shares a page with RAM");
        for (other_origin, other) in &windows[..index] {
            assert!(!window.overlaps(other), "{origin}: window {window:?} overlaps {other_origin}'s {other:?}");
        }
    }
}

/// The memory plan for `image` and `input` (the loader's tree, or a cell's
/// comm region page): pools placed apart, inside RAM and clear of
/// everything taken; the heap clear of all of it.
pub fn check_layout(platform: &Platform, image: Range, input: Range) -> Layout {
    let layout = platform::layout(platform, image, input);
    let mut text = String::new();
    let _ = write!(text, "{layout}");
    let memory = platform.memory();
    assert_eq!(layout.pools().len(), platform.pools().len(), "one layout entry per pool");
    let placed: Vec<Range> = layout.pools().iter().filter_map(|pool| pool.as_ref().ok().copied()).collect();
    let declared: Vec<Range> = platform.pools().iter().filter_map(|pool| pool.declared).collect();

    for (index, (pool, result)) in platform.pools().iter().zip(layout.pools()).enumerate() {
        let Ok(range) = result else { continue };
        assert!(pool.placement.is_ok(), "pool {index} refused by discovery but placed at {range:?}");
        assert!(well_formed(range) && range.base.is_multiple_of(PAGE_SIZE), "pool {index} at {range:?}");
        assert!(ram_covers(memory, *range), "pool {index} at {range:?} is not inside RAM {memory:?}");
        assert!(!range.overlaps(&image) && !range.overlaps(&input), "pool {index} at {range:?} over image or input");
        for reserved in platform.reserved() {
            assert!(!range.overlaps(&reserved.range), "pool {index} at {range:?} over {reserved:?}");
        }
        for (other_index, other) in layout.pools().iter().enumerate() {
            if let Ok(other) = other
                && other_index != index
            {
                assert!(!range.overlaps(other), "pool {index} at {range:?} over pool {other_index} at {other:?}");
            }
        }
        match &pool.placement {
            Ok(Placement::Fixed(fixed)) => assert_eq!(range, fixed, "pool {index} moved"),
            Ok(placement @ Placement::Dynamic { size, alloc_ranges, .. }) => {
                assert_eq!(range.size, *size, "pool {index} resized");
                assert!(range.base.is_multiple_of(placement.alignment()), "pool {index} at {range:?} misaligned");
                if !alloc_ranges.is_empty() {
                    assert!(
                        alloc_ranges.iter().any(|allowed| allowed.contains_range(range)),
                        "pool {index} at {range:?} outside its alloc-ranges"
                    );
                }
                // The host shares every declared range, usable or not.
                for other in &declared {
                    assert!(!range.overlaps(other), "pool {index} placed at {range:?} over a declared pool {other:?}");
                }
            }
            Err(_) => unreachable!(),
        }
    }

    let free = layout.free_ranges();
    for range in free {
        assert!(well_formed(range), "free range {range:?}");
        assert!(range.base.is_multiple_of(PAGE_SIZE) && range.size.is_multiple_of(PAGE_SIZE), "free {range:?}");
        assert!(memory.iter().any(|ram| ram.contains_range(range)), "free range {range:?} not in RAM");
        assert!(!range.overlaps(&image) && !range.overlaps(&input), "free range {range:?} over image or input");
        for reserved in platform.reserved() {
            assert!(!range.overlaps(&reserved.range), "free range {range:?} over {reserved:?}");
        }
        for pool in placed.iter().chain(&declared) {
            assert!(!range.overlaps(pool), "free range {range:?} over pool {pool:?}");
        }
    }
    for pair in free.windows(2) {
        assert!(pair[0].end() <= pair[1].base, "free ranges not sorted and disjoint: {:?}", pair);
    }
    assert_eq!(layout.free_bytes(), free.iter().map(|range| range.size).sum::<u64>());

    // The final map: RAM minus no-map reservations, plus the pools.
    let normal = layout.normal_memory();
    for pair in normal.windows(2) {
        assert!(pair[0].base <= pair[1].base, "normal memory not sorted: {pair:?}");
    }
    for range in normal {
        assert!(well_formed(range), "normal memory {range:?}");
        let pooled = placed.iter().any(|pool| pool.contains_range(range));
        for reserved in platform.reserved().iter().filter(|reserved| reserved.no_map) {
            assert!(pooled || !range.overlaps(&reserved.range), "{range:?} mapped over no-map {reserved:?}");
        }
    }
    for pool in &placed {
        assert!(ram_covers(normal, *pool), "pool {pool:?} left out of the final map");
    }
    for range in free {
        assert!(ram_covers(normal, *range), "heap {range:?} left out of the final map");
    }
    layout
}

/// The boot's check of device windows against the image and its input:
/// accepted means no window shares a page with either.
pub fn check_windows_against(platform: &Platform, image: Range, input: Range) {
    let taken = [(image, platform::IMAGE), (input, platform::DEVICE_TREE)];
    if platform.check_device_windows(&taken).is_ok() {
        for window in platform.device_windows() {
            let pages = page_span(window);
            assert!(!pages.overlaps(&image) && !pages.overlaps(&input), "window {window:?} over image or input");
        }
    }
}
