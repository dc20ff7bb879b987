//! Images in an emulated Jailhouse cell (board jailhouse-qemu-arm64): the
//! cell shim (xtask/cell-shim) enters the image on CPU 1 at EL1 with x0 = 0,
//! answers PSCI over SMC and Jailhouse's hypercalls as Jailhouse does, and
//! reports the comm region's `cell_state` the image wrote when its CPU goes
//! off. What the emulation does not reproduce is in the board's README.

mod common;

use common::{CELL_BOARD, boot_cell, boot_cell_spec, boot_cell_with};
use xtask::cell::cell_state;

const SHUT_DOWN: u32 = 2;
const FAILED: u32 = 3;
const FAILED_COMM_REVISION: u32 = 4;

#[test]
fn hello_discovers_the_cell_from_the_comm_region_and_shuts_down() {
    let outcome = boot_cell("hello", |_| {});
    assert!(outcome.has_line("hello from tidepool"));
    assert!(outcome.has_line("board jailhouse-qemu-arm64, entered at EL1, running at EL1"));
    assert!(
        outcome.console.contains("platform from the Jailhouse comm region and the board at 0x80000000..0x80001000")
    );
    assert!(outcome.has_line("memory: 0x40000000..0x44000000 0x80000000..0x80001000 (64 MiB)"));
    assert!(outcome.has_line("gic: v3 distributor 0x8000000..0x8010000 redistributors 0x80a0000..0x80e0000"));
    assert!(outcome.has_line("psci: smc (PSCI 1.0)"));
    assert!(outcome.has_line("uart: comm region field \"console\" 0x9000000..0x9001000"));
    assert!(outcome.console.contains("pci: comm region field \"pci_mmconfig_base\" ecam 0x8e00000..0x8f00000"));
    // CPU_GET_INFO answered: the image prints what booting cost.
    assert!(outcome.console.contains("vm exits so far: total "), "no VM-exit counters");
    assert_eq!(outcome.exit_line_status, Some(0));
    // Ended by cell_state + CPU_OFF, never SYSTEM_OFF.
    assert!(outcome.console.contains("cell-shim: CPU_OFF; cell state 2 (shut down)"));
    assert_eq!(cell_state(&outcome.console), Some(SHUT_DOWN));
    assert_eq!(outcome.qemu_status, Some(SHUT_DOWN as i32));
    assert!(!outcome.console.contains("SYSTEM_OFF"));
}

#[test]
fn the_cells_interrupts_psci_and_exit_counters_work_on_cpu_1() {
    let outcome = boot_cell("cell_selftest", |_| {});
    assert!(outcome.has_line("4 passed, 0 failed"), "every case must pass");
    assert!(outcome.console.contains("SYSTEM_OFF: PSCI SYSTEM_OFF failed: NotSupported"));
    assert_eq!(cell_state(&outcome.console), Some(SHUT_DOWN));
    // The GIC was reached only through trapped, emulatable accesses, and
    // never through another CPU's redistributor frame.
    assert!(outcome.has_line("cell-shim: writes to other CPUs' redistributors ignored: 0"));
    let mmio_exits = outcome
        .console
        .lines()
        .find_map(|line| {
            line.strip_prefix("cell-shim: vm exits: ")?.split(", ").nth(1)?.strip_prefix("mmio ")?.parse().ok()
        })
        .unwrap_or(0u64);
    assert!(mmio_exits > 0, "the GIC accesses should have trapped");
}

/// The rule the runtime follows (single loads and stores on emulated
/// registers) is enforced by the emulated cell as by Jailhouse: a pair
/// load from the distributor kills the cell.
#[test]
fn an_access_jailhouse_cannot_emulate_kills_the_cell() {
    let outcome = boot_cell("gic_pair_load", |_| {});
    assert!(outcome.console.contains("cell-shim: cell killed: trapped MMIO at IPA 0x8000000"));
    assert!(outcome.console.contains("has no valid syndrome"));
    assert!(!outcome.console.contains("nothing trapped it"));
    assert_eq!(cell_state(&outcome.console), Some(FAILED));
}

#[test]
fn a_failing_test_image_ends_the_cell_failed() {
    let outcome = boot_cell("harness_selftest", |_| {});
    assert!(outcome.console.contains("test fails_on_purpose ... FAILED: 1 + 1 is not 3"));
    assert!(outcome.has_line("2 passed, 1 failed"));
    assert_eq!(outcome.exit_line_status, Some(1));
    assert!(outcome.console.contains("cell state 3 (failed)"));
    assert_eq!(cell_state(&outcome.console), Some(FAILED));
}

#[test]
fn a_data_abort_is_reported_and_ends_the_cell_failed() {
    let outcome = boot_cell("data_abort", |_| {});
    assert!(outcome.console.contains("data abort, translation fault, read"));
    assert!(outcome.console.contains("FAR  0x0000000000001000"));
    assert_eq!(outcome.exit_line_status, Some(102));
    assert_eq!(cell_state(&outcome.console), Some(FAILED));
}

#[test]
fn a_panic_ends_the_cell_failed() {
    let outcome = boot_cell("panic", |_| {});
    assert!(outcome.console.contains("*** panic at"));
    assert_eq!(outcome.exit_line_status, Some(101));
    assert_eq!(cell_state(&outcome.console), Some(FAILED));
}

#[test]
fn a_foreign_comm_region_abi_ends_the_cell_in_comm_revision_failure() {
    let outcome = boot_cell("hello", |region| region.signature = *b"XXCOMM");
    assert!(outcome.console.contains("comm region field \"signature\""), "the mismatch is printed");
    assert_eq!(cell_state(&outcome.console), Some(FAILED_COMM_REVISION));
    assert!(!outcome.has_line("hello from tidepool"));
    let outcome = boot_cell("hello", |region| region.revision = 1);
    assert!(outcome.console.contains("ABI revision 1, this runtime speaks 2"));
    assert_eq!(cell_state(&outcome.console), Some(FAILED_COMM_REVISION));
}

/// Each hostile field: a typed error naming it, boot status 103, cell
/// failed; never a hang (the test's timeout) or a fault report.
#[test]
fn hostile_comm_regions_are_refused_and_the_cell_ends_failed() {
    type Edit = fn(&mut xtask::cell::CommRegion);
    let cases: [(&str, Edit, &str); 6] = [
        ("GIC distributor in RAM", |r| r.gicd_base = 0x4000_0000, "comm region field \"gicd_base\": register window"),
        (
            "redistributors over the distributor",
            |r| r.gicr_base = 0x0800_0000,
            "overlaps comm region field \"gicd_base\"",
        ),
        (
            "unknown console type",
            |r| r.console_type = 0x77,
            "comm region field \"console.type\": unsupported value \"type 119\"",
        ),
        ("zero vPCI interrupt base", |r| r.vpci_irq_base = 0, "comm region field \"vpci_irq_base\": 0x0 is outside"),
        (
            "absurd vPCI interrupt base",
            |r| r.vpci_irq_base = 100_000,
            "comm region field \"vpci_irq_base\": 0x186a0 is outside",
        ),
        ("GIC version 7", |r| r.gic_version = 7, "comm region field \"gic_version\": 0x7 is outside 0x2..=0x3"),
    ];
    for (what, edit, message) in cases {
        let outcome = boot_cell("hello", edit);
        assert!(!outcome.timed_out, "{what}: hung");
        assert!(outcome.console.contains("tidepool: boot failed: Jailhouse cell: "), "{what}: no boot failure");
        assert!(outcome.console.contains(message), "{what}: expected `{message}`");
        assert!(!outcome.console.contains("unhandled exception"), "{what}: faulted");
        assert_eq!(outcome.exit_line_status, Some(103), "{what}");
        assert_eq!(cell_state(&outcome.console), Some(FAILED), "{what}");
    }
}

/// tests/data/trees/jailhouse-cell.dts, compiled.
fn cell_tree() -> std::path::PathBuf {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trees/jailhouse-cell.dts");
    let tree = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("jailhouse-cell.dtb");
    let status = std::process::Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&tree)
        .arg(&source)
        .status()
        .expect("dtc (device-tree-compiler) runs");
    assert!(status.success());
    tree
}

/// A tree built into the image still describes the platform (the loader
/// passes none); the comm region is read for the cell's end all the same.
#[test]
fn a_built_in_tree_describes_the_cell_and_the_comm_region_still_ends_it() {
    let tree = cell_tree();
    let mut spec = xtask::image::ImageBuild::new("hello");
    spec.board = CELL_BOARD.into();
    spec.builtin_dtb = Some(tree);
    let outcome = boot_cell_spec(spec, |_| {});
    assert!(outcome.console.contains("platform from the device tree built into the image"));
    assert!(outcome.has_line("psci: smc (PSCI 1.0)"));
    assert!(outcome.has_line("memory: 0x40000000..0x44000000 (64 MiB)"));
    assert_eq!(cell_state(&outcome.console), Some(SHUT_DOWN));
}

/// `jailhouse cell linux` puts a tree at the start of the cell's RAM and
/// the Image at the next 2 MiB boundary + text_offset, and enters it with
/// x0 = the tree. (The emulation's tree sits 1 MiB higher: QEMU keeps its
/// own in the first MiB.)
#[test]
fn linux_style_loading_with_a_tree_in_x0_works_in_a_cell() {
    let mut spec = xtask::image::ImageBuild::new("hello");
    spec.board = CELL_BOARD.into();
    let outcome = boot_cell_with(spec, Some(0x4028_0000), Some((cell_tree(), 0x4010_0000)), |_| {});
    assert!(outcome.console.contains("image 0x40280000..0x"));
    assert!(outcome.console.contains("platform from the loader's device tree at 0x40100000.."));
    assert_eq!(cell_state(&outcome.console), Some(SHUT_DOWN));
}

/// The last count the shim printed for `counter` (`cell-shim: vm exits:`).
fn shim_exit_count(console: &str, counter: &str) -> u64 {
    console
        .lines()
        .rev()
        .find_map(|line| {
            let counts = line.strip_prefix("cell-shim: vm exits: ")?;
            counts.split(", ").find_map(|part| part.strip_prefix(counter)?.strip_prefix(' ')?.parse().ok())
        })
        .expect("the shim's exit counters")
}

/// Without a UART in the comm region the image prints through Jailhouse's
/// debug-console hypercall, but only when the region's flags permit it;
/// otherwise it stays on the board's early UART.
#[test]
fn the_debug_console_hypercall_is_used_only_when_permitted() {
    let permitted = boot_cell("hello", |region| {
        region.console_type = 0;
        region.flags = 1;
    });
    assert!(permitted.has_line("hello from tidepool"));
    assert!(permitted.has_line("uart: none"));
    // One hypercall per character printed after boot.
    assert!(shim_exit_count(&permitted.console, "hypercall") > 200, "the hypercall console was not used");
    assert_eq!(cell_state(&permitted.console), Some(SHUT_DOWN));

    let refused = boot_cell("hello", |region| {
        region.console_type = 0;
        region.flags = 0;
    });
    assert!(refused.has_line("hello from tidepool"), "the early UART stays the console");
    assert!(shim_exit_count(&refused.console, "hypercall") < 20, "putc was used without permission");
}
