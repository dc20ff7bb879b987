//! QEMU integration tests of the boot foundation: the hello image on every
//! GIC version and entry EL, the test harness's verdict, and the exception
//! report.

mod common;

use xtask::board::Variant;

fn hello_boots(gic_version: u8, el2: bool) {
    let outcome = common::boot("hello", Variant { gic_version, el2 }, &[], &[]);
    assert!(!outcome.timed_out, "the guest did not finish");
    assert!(outcome.has_line("hello from tidepool"));
    let entered = format!("entered at EL{}, running at EL1", if el2 { 2 } else { 1 });
    assert!(outcome.console.contains(&entered), "missing `{entered}`");
    assert!(outcome.console.contains(&format!("gic: v{gic_version} distributor 0x8000000")), "GIC not reported");
    // QEMU's firmware conduit: HVC at EL1, SMC when EL2 is the guest's.
    let conduit = if el2 { "psci: smc" } else { "psci: hvc" };
    assert!(outcome.console.contains(conduit), "missing `{conduit}`");
    assert!(outcome.console.contains("pool 3 /reserved-memory/restricted-dma@48000000: fixed 0x48000000..0x48400000"));
    assert_eq!(outcome.exit_line_status, Some(0));
    assert_eq!(outcome.qemu_status, Some(0), "semihosting exit code");
}

#[test]
fn hello_boots_at_el1_on_gicv2() {
    hello_boots(2, false);
}

#[test]
fn hello_boots_at_el1_on_gicv3() {
    hello_boots(3, false);
}

#[test]
fn hello_boots_at_el2_on_gicv2() {
    hello_boots(2, true);
}

#[test]
fn hello_boots_at_el2_on_gicv3() {
    hello_boots(3, true);
}

#[test]
fn failing_test_case_fails_the_image() {
    let outcome = common::boot("harness_selftest", Variant::default(), &[], &[]);
    assert!(outcome.has_line("test runs_at_the_runtime_level ... ok"));
    assert!(outcome.has_line("test heap_allocates ... ok"));
    assert!(outcome.console.contains("test fails_on_purpose ... FAILED: 1 + 1 is not 3"));
    assert!(outcome.has_line("2 passed, 1 failed"));
    assert_eq!(outcome.exit_line_status, Some(1));
    assert_eq!(outcome.qemu_status, Some(1));
}

#[test]
fn data_abort_prints_a_report_and_fails() {
    let outcome = common::boot("data_abort", Variant::default(), &[], &[]);
    // The image runs on SP_EL0 (exceptions are taken on SP_EL1): the "SP0" vectors.
    assert!(outcome.console.contains("unhandled exception: Synchronous from current EL, SP0"));
    assert!(!outcome.console.contains("stack overflow"));
    assert!(outcome.console.contains("data abort, translation fault, read"));
    assert!(outcome.console.contains("FAR  0x0000000000001000"));
    assert!(!outcome.console.contains("the access did not fault"));
    assert_eq!(outcome.exit_line_status, Some(102));
    assert_ne!(outcome.qemu_status, Some(0));
}

#[test]
fn a_hostile_tree_fails_the_boot_with_a_message() {
    let variant = Variant::default();
    let tree = common::tree(variant, &["bad-gic"]);
    let outcome = common::boot_with_tree(xtask::image::ImageBuild::new("hello"), variant, tree, &[], &[]);
    assert!(!outcome.has_line("hello from tidepool"));
    let failure = outcome.console.lines().find(|line| line.starts_with("tidepool: boot failed: device tree: "));
    let failure = failure.expect("a boot failure line");
    assert!(failure.contains("/intc@8000000"), "{failure}");
    assert_eq!(outcome.exit_line_status, Some(103));
}

#[test]
fn a_guest_that_never_ends_is_stopped_by_the_timeout() {
    let spec = xtask::image::ImageBuild::new("hang");
    let variant = Variant::default();
    let launch = common::launch(spec, variant, common::tree(variant, &[]), &[], &[]);
    let started = std::time::Instant::now();
    let outcome = xtask::run::run(&launch, std::time::Duration::from_secs(3), false).unwrap();
    assert!(outcome.timed_out);
    assert!(outcome.has_line("spinning forever"));
    assert_eq!(outcome.status(), 124);
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the timeout did not stop the guest");
}

#[test]
fn without_semihosting_the_image_powers_off_through_psci() {
    for el2 in [false, true] {
        // EL1 guests reach QEMU's PSCI over HVC, EL2 guests over SMC. The
        // image fails on purpose: through PSCI, QEMU itself exits 0 and only
        // the exit line carries the status (semihosting would make it 1).
        let outcome = common::boot("harness_selftest", Variant { gic_version: 3, el2 }, &["tidepool.exit=psci"], &[]);
        assert!(outcome.has_line("2 passed, 1 failed"));
        assert_eq!(outcome.exit_line_status, Some(1));
        assert!(!outcome.console.contains("SYSTEM_OFF failed"));
        assert!(!outcome.timed_out, "SYSTEM_OFF must end QEMU");
        assert_eq!(outcome.qemu_status, Some(0), "QEMU was ended by PSCI, not semihosting");
        assert_eq!(outcome.status(), 1, "the launcher takes the status from the exit line");
    }
}

#[test]
fn a_panic_prints_message_and_location_and_fails() {
    let outcome = common::boot("panic", Variant::default(), &[], &[]);
    assert!(outcome.has_line("*** panic at examples/panic.rs:12:5: deliberate panic with 4 pools"));
    assert_eq!(outcome.exit_line_status, Some(101));
    assert_eq!(outcome.qemu_status, Some(101));
}

#[test]
fn without_a_tree_from_the_loader_the_built_in_tree_is_used() {
    // QEMU boots an ELF with x0 = 0: the board-supplied tree built into the
    // image must take the loader's place.
    for el2 in [false, true] {
        let variant = Variant { gic_version: 3, el2 };
        let mut spec = xtask::image::ImageBuild::new("hello");
        spec.builtin_dtb = Some(common::tree(variant, &[]));
        let raw = common::image(spec);
        let mut launch =
            common::launch(xtask::image::ImageBuild::new("hello"), variant, common::tree(variant, &[]), &[], &[]);
        launch.image = raw.with_extension("elf");
        let outcome = xtask::run::run(&launch, common::TIMEOUT, false).unwrap();
        println!("{}", outcome.console);
        assert!(
            outcome.console.contains("the loader passed no device tree (x0 = 0): using the one built into the image")
        );
        assert!(outcome.has_line("hello from tidepool"));
        assert!(
            outcome.console.contains("pool 3 /reserved-memory/restricted-dma@48000000: fixed 0x48000000..0x48400000")
        );
        assert_eq!(outcome.exit_line_status, Some(0));
    }
}

#[test]
fn psci_system_reset_ends_the_machine() {
    for el2 in [false, true] {
        // QEMU runs with -no-reboot, so a reset ends it with status 0; the
        // image prints no exit line unless the call returned.
        let outcome = common::boot("reset", Variant { gic_version: 3, el2 }, &[], &[]);
        assert!(outcome.has_line("tidepool: system reset"), "{}", outcome.console);
        assert!(!outcome.console.contains("reset failed"), "{}", outcome.console);
        assert!(!outcome.timed_out, "SYSTEM_RESET must end QEMU");
        assert_eq!(outcome.exit_line_status, None, "the image went on after the reset");
        assert_eq!(outcome.qemu_status, Some(0));
    }
}

#[test]
fn hello_boots_with_ram_above_4_gib() {
    // 4 GiB of private RAM from 0x4000_0000: RAM runs to 5 GiB and beyond,
    // past the boot map (which covers up to 4 GiB), so the heap can only
    // take that part once the final map is live. QEMU rewrites /memory in
    // the tree it is given (-dtb) to match the machine.
    let qemu_virt = xtask::board::Board::find("qemu-virt").unwrap();
    let board = xtask::board::Board { private_ram_mib: 4096, ..qemu_virt.clone() };
    let variant = Variant::default();
    let mut launch =
        common::launch(xtask::image::ImageBuild::new("hello"), variant, common::tree(variant, &[]), &[], &[]);
    launch.board = Box::leak(Box::new(board));
    let outcome = xtask::run::run(&launch, common::TIMEOUT, false).unwrap();
    println!("{}", outcome.console);
    assert!(outcome.has_line("hello from tidepool"));
    assert!(
        outcome.console.contains("memory: 0x40000000..0x140000000 0x140000000..0x141000000 0x141000000..0x142000000"),
        "RAM above 4 GiB not reported"
    );
    // More than 4 GiB of heap: RAM above the boot map was added.
    let heap_kib = outcome
        .console
        .split(", heap ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .expect("a heap size line");
    assert!(heap_kib > 4 * 1024 * 1024 - 64 * 1024, "heap of {heap_kib} KiB");
    assert_eq!(outcome.exit_line_status, Some(0));
}

#[test]
fn hello_boots_at_another_load_address() {
    // A booti-style loader (xtask's load_address: QEMU's generic loader and
    // a boot stub, x0 = the tree) puts the image at a 2 MiB boundary other
    // than RAM base + text_offset, and at an arbitrary page at EL2: the
    // image relocates itself and reports where it runs.
    for (el2, address) in [(false, 0x4040_0000u64), (true, 0x4123_4000)] {
        let variant = Variant { gic_version: 3, el2 };
        let mut launch =
            common::launch(xtask::image::ImageBuild::new("hello"), variant, common::tree(variant, &[]), &[], &[]);
        launch.load_address = Some(address);
        let outcome = xtask::run::run(&launch, common::TIMEOUT, false).unwrap();
        println!("--- console (loaded at {address:#x}, {}) ---\n{}--- end ---", variant.label(), outcome.console);
        assert!(outcome.has_line("hello from tidepool"));
        assert!(outcome.console.contains(&format!("image {address:#x}..")), "image not reported at {address:#x}");
        let entered = format!("entered at EL{}, running at EL1", if el2 { 2 } else { 1 });
        assert!(outcome.console.contains(&entered), "missing `{entered}`");
        assert_eq!(outcome.exit_line_status, Some(0));
        assert_eq!(outcome.qemu_status, Some(0), "semihosting exit code");
    }
}

#[test]
fn a_stack_overflow_is_reported_from_the_guard_page() {
    // Unbounded recursion runs into the unmapped page below the boot stack;
    // the handler, on its own stack, says so. Also at another load address,
    // where the guard page must be at the image's run-time place.
    for (load_address, image_base) in [(None, 0x4008_0000u64), (Some(0x4040_0000u64), 0x4040_0000)] {
        let variant = Variant::default();
        let mut launch = common::launch(
            xtask::image::ImageBuild::new("stack_overflow"),
            variant,
            common::tree(variant, &[]),
            &[],
            &[],
        );
        launch.load_address = load_address;
        let outcome = xtask::run::run(&launch, common::TIMEOUT, false).unwrap();
        println!("--- console (image at {image_base:#x}) ---\n{}--- end ---", outcome.console);
        assert!(outcome.has_line("recursing until the stack overflows"));
        let report = outcome
            .console
            .lines()
            .find(|line| line.starts_with("*** stack overflow: data abort at FAR 0x"))
            .expect("a stack overflow report");
        assert!(report.contains("in the guard page below the stack ("), "{report}");
        let far = report
            .strip_prefix("*** stack overflow: data abort at FAR 0x")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .expect("a FAR in the report");
        // The guard lies inside the image (below 2 MiB from its start).
        assert!(
            (image_base..image_base + 0x20_0000).contains(&far),
            "FAR {far:#x} not in the image at {image_base:#x}"
        );
        assert!(outcome.console.contains("data abort, translation fault, write"));
        assert!(!outcome.console.contains("the stack did not overflow"));
        assert_eq!(outcome.exit_line_status, Some(102));
        assert_eq!(outcome.qemu_status, Some(102));
    }
}

#[test]
fn an_overflow_of_the_exception_stack_is_reported_too() {
    // The recursion runs in a timer interrupt handler, on the exception
    // stack: the fault in its guard page is taken at the "SPx" vectors,
    // which restart at the top of the exception stack to report it.
    let outcome = common::boot("stack_overflow", Variant::default(), &["stack_overflow.in=irq"], &[]);
    assert!(outcome.has_line("recursing in an interrupt handler until the exception stack overflows"));
    let report = outcome.console.lines().find(|line| line.starts_with("*** stack overflow: data abort at FAR 0x"));
    let report = report.expect("a stack overflow report");
    assert!(report.contains("in the guard page below the exception stack ("), "{report}");
    assert!(
        outcome.console.contains("unhandled exception: Synchronous from current EL, SPx (in an exception handler)")
    );
    assert!(!outcome.console.contains("did not overflow"));
    assert!(!outcome.console.contains("never came"));
    assert_eq!(outcome.exit_line_status, Some(102));
    assert_eq!(outcome.qemu_status, Some(102));
}
