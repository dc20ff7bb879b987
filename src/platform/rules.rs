//! Validation rules that do not depend on the source: RAM bounds and
//! overlaps, pools against RAM, reservations and each other, device windows
//! against their drivers and RAM, and windows shared between devices. A
//! source reads its values with their [`Origin`]s and applies these; the
//! errors name those origins, and the fields as a tree calls them (`reg`
//! for a range, `size` for a dynamic pool), which other sources use for the
//! same fields. (The layout, `layout.rs`, is the other shared rule: pools
//! clear of the image and the loader's input.)

use arrayvec::ArrayVec;

use super::{
    ADDRESS_LIMIT, ErrorKind, GICV2_CPU_INTERFACE_WINDOW, GICV2_DISTRIBUTOR_WINDOW, GICV3_DISTRIBUTOR_WINDOW,
    GICV3_REDISTRIBUTOR_WINDOW, Gic, MAX_MEMORY_RANGES, MAX_POOLS, MAX_VIRTIO, Origin, PAGE_SIZE, Placement,
    PlatformError, Pool, Range, Reserved, VirtioMmio, check_window, ram_covers,
};

/// Sorts RAM (each range with its origin; `property` names the field
/// the ranges come from, `reg` for a tree) and refuses overlaps (with
/// two claims on the same bytes, neither can be trusted) and RAM the
/// page tables cannot map. Empty RAM is the source's to report: it
/// knows where RAM should have been.
pub(crate) fn check_memory(
    memory: &mut [(Range, Origin)],
    property: &str,
) -> Result<ArrayVec<Range, MAX_MEMORY_RANGES>, PlatformError> {
    memory.sort_unstable_by_key(|(range, _)| *range);
    if let Some((range, origin)) = memory.iter().find(|(range, _)| range.end() > ADDRESS_LIMIT) {
        let kind = ErrorKind::BeyondAddressSpace { range: *range, limit: ADDRESS_LIMIT };
        return Err(PlatformError::new(*origin, property, kind));
    }
    for pair in memory.windows(2) {
        if let [(lower, lower_origin), (upper, upper_origin)] = pair
            && lower.overlaps(upper)
        {
            let kind = ErrorKind::Overlap { range: *upper, other: *lower_origin, other_range: *lower };
            return Err(PlatformError::new(*upper_origin, property, kind));
        }
    }
    let mut ranges = ArrayVec::new();
    for (range, _) in memory.iter().take(MAX_MEMORY_RANGES) {
        // At most the capacity, taken above.
        let _ = ranges.try_push(*range);
    }
    Ok(ranges)
}

/// Records on each pool what makes it unusable given RAM, reservations
/// and the other fixed pools.
pub(crate) fn check_pools(pools: &mut [Pool], memory: &[Range], reserved: &[Reserved]) {
    let total_ram = memory.iter().map(|range| range.size).fold(0, u64::saturating_add);
    for pool in pools.iter_mut() {
        if let Ok(placement) = &pool.placement
            && let Err(kind) = check_pool(placement, memory, total_ram, reserved)
        {
            pool.placement = Err(PlatformError::new(pool.origin, placement.property(), kind));
        }
    }
    // Two fixed pools over the same bytes: both are suspect.
    let mut conflicts: ArrayVec<(usize, PlatformError), MAX_POOLS> = ArrayVec::new();
    for (index, pool) in pools.iter().enumerate() {
        let Ok(Placement::Fixed(range)) = pool.placement else {
            continue;
        };
        let other = pools.iter().enumerate().find_map(|(other_index, other)| match other.placement {
            Ok(Placement::Fixed(other_range)) if other_index != index && other_range.overlaps(&range) => {
                Some((other.origin, other_range))
            }
            _ => None,
        });
        if let Some((other, other_range)) = other {
            let error = PlatformError::new(pool.origin, "reg", ErrorKind::Overlap { range, other, other_range });
            // One entry per pool at most.
            let _ = conflicts.try_push((index, error));
        }
    }
    for (index, error) in conflicts {
        if let Some(pool) = pools.get_mut(index) {
            pool.placement = Err(error);
        }
    }
}

/// Every GIC frame against what arm-gic touches in it.
pub(crate) fn check_gic_windows(gic: &Gic, memory: &[(Range, Origin)]) -> Result<(), ErrorKind> {
    match gic {
        Gic::V2 { distributor, cpu_interface } => {
            check_window(*distributor, GICV2_DISTRIBUTOR_WINDOW, memory)?;
            check_window(*cpu_interface, GICV2_CPU_INTERFACE_WINDOW, memory)
        }
        Gic::V3 { distributor, redistributors } => {
            check_window(*distributor, GICV3_DISTRIBUTOR_WINDOW, memory)?;
            redistributors.iter().try_for_each(|range| check_window(*range, GICV3_REDISTRIBUTOR_WINDOW, memory))
        }
    }
}

/// Device windows of different drivers over the same registers: each
/// driver would program the other's device. Refuses the later of the
/// first overlapping pair, naming the earlier one; `property` names the
/// field the windows come from (`reg` for a tree, nothing for a comm
/// region, whose origins are the fields).
pub(crate) fn check_disjoint_windows(windows: &[(Origin, Range)], property: &str) -> Result<(), PlatformError> {
    for (index, (origin, range)) in windows.iter().enumerate() {
        if let Some((other, other_range)) = windows[..index].iter().find(|(_, other)| other.overlaps(range)) {
            let kind = ErrorKind::Overlap { range: *range, other: *other, other_range: *other_range };
            return Err(PlatformError::new(*origin, property, kind));
        }
    }
    Ok(())
}

/// Two virtio windows over the same registers: both drivers would drive
/// one device, so neither is used (as with two pools over the same bytes).
pub(crate) fn refuse_shared_windows(virtio: &mut ArrayVec<Result<VirtioMmio, PlatformError>, MAX_VIRTIO>) {
    // Pairs of indices first (errors are large: a list of them would cost
    // the boot stack tens of KiB), then the devices they name.
    let mut clashes: ArrayVec<(usize, VirtioMmio), MAX_VIRTIO> = ArrayVec::new();
    for (index, device) in virtio.iter().enumerate() {
        let Ok(device) = device else {
            continue;
        };
        let other = virtio.iter().enumerate().find_map(|(other_index, other)| match other {
            Ok(other) if other_index != index && other.reg.overlaps(&device.reg) => Some(*other),
            _ => None,
        });
        if let Some(other) = other {
            // One entry per device at most.
            let _ = clashes.try_push((index, other));
        }
    }
    for (index, other) in clashes {
        if let Some(entry) = virtio.get_mut(index)
            && let Ok(device) = entry
        {
            let kind = ErrorKind::Overlap { range: device.reg, other: other.origin, other_range: other.reg };
            *entry = Err(PlatformError::new(device.origin, "reg", kind));
        }
    }
}

/// A pool's own problems, given RAM and reservations.
fn check_pool(placement: &Placement, memory: &[Range], total_ram: u64, reserved: &[Reserved]) -> Result<(), ErrorKind> {
    let size = placement.size();
    if size > total_ram {
        return Err(ErrorKind::AbsurdSize { size, limit: total_ram });
    }
    if !size.is_multiple_of(PAGE_SIZE) {
        return Err(ErrorKind::Misaligned { value: size, alignment: PAGE_SIZE });
    }
    let Placement::Fixed(range) = *placement else {
        return Ok(());
    };
    if !range.base.is_multiple_of(PAGE_SIZE) {
        return Err(ErrorKind::Misaligned { value: range.base, alignment: PAGE_SIZE });
    }
    if !ram_covers(memory, range) {
        return Err(ErrorKind::OutsideRam { range });
    }
    if let Some(other) = reserved.iter().find(|reserved| reserved.range.overlaps(&range)) {
        return Err(ErrorKind::Overlap { range, other: other.origin, other_range: other.range });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(base: u64, size: u64) -> Range {
        Range::new(base, size).unwrap()
    }

    #[test]
    fn memory_rules_name_whatever_origin_the_source_gave() {
        let (low, high) = (Origin::Runtime("(low)"), Origin::Runtime("(high)"));
        let mut memory = [(range(0x4800_0000, 0x1000_0000), high), (range(0x4000_0000, 0x1000_0000), low)];
        let error = check_memory(&mut memory, "base").unwrap_err();
        let kind = ErrorKind::Overlap {
            range: range(0x4800_0000, 0x1000_0000),
            other: low,
            other_range: range(0x4000_0000, 0x1000_0000),
        };
        assert_eq!(error, PlatformError::new(high, "base", kind));
        let mut memory = [(range(0x5000_0000, 0x1000), high), (range(0x4000_0000, 0x1000), low)];
        let sorted = check_memory(&mut memory, "base").unwrap();
        assert_eq!(sorted.as_slice(), [range(0x4000_0000, 0x1000), range(0x5000_0000, 0x1000)]);
        // A window in RAM names the RAM's origin.
        let window = range(0x4000_0000, 0x200);
        assert_eq!(
            check_window(window, super::super::VIRTIO_WINDOW, &memory),
            Err(ErrorKind::DeviceInRam { range: window, memory: low, ram: range(0x4000_0000, 0x1000) })
        );
    }
}
