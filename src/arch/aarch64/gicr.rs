//! Finding this CPU's GICv3 redistributor frame.
//!
//! The redistributor regions hold one frame per CPU, each saying in
//! `GICR_TYPER[63:32]` which CPU (affinity) it serves and, in bit 4 (Last),
//! whether it is the last frame of its region. Taking the first frame is
//! right only on CPU 0: in a Jailhouse cell on CPU 1 it belongs to another
//! CPU, and walking past Last touches registers that do not exist (which
//! kills the cell). Pure logic over a register-read function, so it is
//! unit-tested on the host.

use crate::platform::Range;

/// GICR_TYPER's offset in a frame.
pub const GICR_TYPER: u64 = 0x8;
const TYPER_VLPIS: u64 = 1 << 1;
const TYPER_LAST: u64 = 1 << 4;
/// RD_base and SGI_base: two 64 KiB pages per frame.
const FRAME: u64 = 0x2_0000;
/// With virtual LPIs (GICv4) two more pages follow.
const FRAME_VLPI: u64 = 0x4_0000;
/// Frames looked at in all, whatever the regions claim.
const MAX_FRAMES: usize = 512;

/// GICR_TYPER's affinity field for the CPU whose MPIDR_EL1 is `mpidr`:
/// Aff3.Aff2.Aff1.Aff0.
pub fn affinity_of(mpidr: u64) -> u32 {
    let aff3 = (mpidr >> 32) & 0xff;
    let aff210 = mpidr & 0xff_ffff;
    ((aff3 << 24) | aff210) as u32
}

/// The base of the frame serving `affinity`, walking each region from its
/// start and stopping at its Last frame or its end; `read_typer(address)`
/// reads the 64-bit GICR_TYPER of the frame at `address`.
pub fn find_frame(regions: &[Range], affinity: u32, read_typer: impl Fn(u64) -> u64) -> Option<u64> {
    let mut looked = 0;
    for region in regions {
        let mut frame = region.base;
        while frame.checked_add(FRAME).is_some_and(|end| end <= region.end()) && looked < MAX_FRAMES {
            looked += 1;
            let typer = read_typer(frame);
            if (typer >> 32) as u32 == affinity {
                return Some(frame);
            }
            if typer & TYPER_LAST != 0 {
                break;
            }
            frame += if typer & TYPER_VLPIS != 0 { FRAME_VLPI } else { FRAME };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(base: u64, size: u64) -> Range {
        Range::new(base, size).unwrap()
    }

    /// Frames at 0x080a_0000 for CPUs with the given affinities, the last
    /// one marked Last.
    fn frames(affinities: &[u32]) -> impl Fn(u64) -> u64 {
        let affinities = affinities.to_vec();
        move |address| {
            let index = ((address - 0x080a_0000) / FRAME) as usize;
            let Some(affinity) = affinities.get(index) else {
                panic!("read past the Last frame at {address:#x}");
            };
            let last = if index + 1 == affinities.len() { TYPER_LAST } else { 0 };
            (u64::from(*affinity) << 32) | last
        }
    }

    #[test]
    fn the_frame_is_found_by_affinity_not_position() {
        let region = [range(0x080a_0000, 0xf6_0000)];
        assert_eq!(find_frame(&region, 0, frames(&[0, 1])), Some(0x080a_0000));
        assert_eq!(find_frame(&region, 1, frames(&[0, 1])), Some(0x080c_0000));
        // A cell whose only online CPU is 1: its frame is the first one.
        assert_eq!(find_frame(&region, 1, frames(&[1])), Some(0x080a_0000));
    }

    #[test]
    fn the_walk_never_passes_last_or_the_region_end() {
        let region = [range(0x080a_0000, 0xf6_0000)];
        // CPU 2 is not online: the walk stops at the Last frame (the
        // closure panics on any read beyond it).
        assert_eq!(find_frame(&region, 2, frames(&[0, 1])), None);
        // A region too small for one frame is not read at all.
        assert_eq!(find_frame(&[range(0x080a_0000, 0x1_0000)], 0, |_| panic!("read")), None);
        // A region that ends before a Last frame: only whole frames read.
        assert_eq!(find_frame(&[range(0x080a_0000, 0x4_0000)], 3, frames(&[0, 1, 2, 3])), None);
    }

    #[test]
    fn affinity_packs_aff3_above_aff2_to_aff0() {
        assert_eq!(affinity_of(0x8000_0001), 1);
        assert_eq!(affinity_of(0x0000_0002_0001_0203), 0x0201_0203);
    }
}
