//! The console: a PL011 found from the device tree, a `log` backend, and
//! the `print!`/`println!` macros.
//!
//! Before the tree is parsed the board may name an early UART, so that an
//! invalid tree can still be reported.

use core::fmt::{self, Write};

use spin::Mutex;

/// A byte sink the console writes to. The PL011 is the only real one; host
/// tests use a buffer.
pub trait ConsoleSink: Send {
    /// Writes `bytes` as they are (line endings are already CR LF); must
    /// not fail or block for long (it runs with the console lock held).
    fn write_bytes(&mut self, bytes: &[u8]);
}

static CONSOLE: Mutex<Option<&'static mut dyn ConsoleSink>> = Mutex::new(None);

/// Installs `sink` as the console, replacing any earlier one.
pub fn set_sink(sink: &'static mut dyn ConsoleSink) {
    *CONSOLE.lock() = Some(sink);
}

/// Drops the console: output goes nowhere from now on. For a UART that is
/// about to lose its mapping.
pub fn clear_sink() {
    *CONSOLE.lock() = None;
}

struct LockedWriter<'a>(&'a mut dyn ConsoleSink);

impl Write for LockedWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Terminals want CR LF; the console is read by people and by xtask alike.
        for chunk in s.split_inclusive('\n') {
            match chunk.strip_suffix('\n') {
                Some(line) => {
                    self.0.write_bytes(line.as_bytes());
                    self.0.write_bytes(b"\r\n");
                }
                None => self.0.write_bytes(chunk.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Prints to the console, if there is one. Used by the print macros.
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(sink) = CONSOLE.lock().as_deref_mut() {
        let _ = LockedWriter(sink).write_fmt(args);
    }
}

/// Prints even if the console lock is held, as it may be by the code that
/// took the exception or panicked. Output may interleave; losing the report
/// would be worse.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    if CONSOLE.is_locked() {
        // SAFETY: only reached on a fatal path (exception report, panic) that
        // never returns to the lock holder; interrupts are masked there.
        unsafe { CONSOLE.force_unlock() };
    }
    print(args);
}

/// Prints to the console, like `std`'s `print!`: nothing when there is no
/// console yet (or any more).
///
/// ```
/// tidepool::print!("{} of {} ", 1, 2); // no console on the host: prints nothing
/// ```
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::print(format_args!($($arg)*)));
}

/// Prints a line to the console, like `std`'s `println!` (see
/// [`print!`](crate::print!)); the console ends it with CR LF.
///
/// ```
/// tidepool::println!("frame {}: verified", 7); // no console on the host: prints nothing
/// ```
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::print(format_args!("{}\n", format_args!($($arg)*))));
}

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            print(format_args!("[{:<5} {}] {}\n", record.level(), record.target(), record.args()));
        }
    }

    fn flush(&self) {}
}

/// Makes the console the `log` backend. A second call changes only the level.
pub fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses `tidepool.log=<level>` out of the kernel command line.
pub fn log_level_from_bootargs(bootargs: &str) -> Option<log::LevelFilter> {
    crate::platform::bootarg(bootargs, "tidepool.log")?.parse().ok()
}

#[cfg(target_os = "none")]
pub use pl011::Pl011Console;

#[cfg(target_os = "none")]
mod pl011 {
    use core::ptr::NonNull;

    use arm_pl011_uart::{PL011Registers, Uart, UniqueMmioPointer};

    use super::ConsoleSink;

    /// A PL011 as the firmware left it: we never reprogram it (the baud
    /// rate's clock is board specific, QEMU ignores it, and a shared UART
    /// belongs to someone else).
    pub struct Pl011Console {
        uart: Uart<'static>,
        shared: bool,
    }

    /// Polls of the busy flag before writing anyway: a UART that never goes
    /// idle must not hang the image (about a millisecond of spinning).
    const IDLE_POLLS: u32 = 100_000;

    impl Pl011Console {
        /// # Safety
        ///
        /// `base` must be the physical address of a PL011's registers, mapped as
        /// device memory, and not used through any other pointer of this image.
        pub unsafe fn new(base: usize) -> Option<Self> {
            let regs = NonNull::new(base as *mut PL011Registers)?;
            // SAFETY: the caller promises a mapped PL011 used by nobody else here.
            let ptr = unsafe { UniqueMmioPointer::new(regs) };
            Some(Self { uart: Uart::new(ptr), shared: false })
        }

        /// A UART shared with a hypervisor or other guests (a Jailhouse
        /// console with divider 0): each byte waits for the transmitter to
        /// go idle, so that our output does not interleave with a line the
        /// other side is sending, as Jailhouse's own inmates do.
        ///
        /// # Safety
        ///
        /// As for [`Self::new`].
        pub unsafe fn new_shared(base: usize) -> Option<Self> {
            // SAFETY: the caller's promise, passed on.
            let mut console = unsafe { Self::new(base) }?;
            console.shared = true;
            Some(console)
        }
    }

    impl ConsoleSink for Pl011Console {
        fn write_bytes(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                if self.shared {
                    let mut polls = 0;
                    while self.uart.is_busy() && polls < IDLE_POLLS {
                        polls += 1;
                    }
                }
                while self.uart.is_tx_fifo_full() {}
                self.uart.write_word(byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_is_read_from_bootargs() {
        assert_eq!(log_level_from_bootargs("a tidepool.log=debug b"), Some(log::LevelFilter::Debug));
        assert_eq!(log_level_from_bootargs("tidepool.log=nonsense"), None);
        assert_eq!(log_level_from_bootargs(""), None);
        // The last word wins, so a launcher's default can be overridden.
        assert_eq!(log_level_from_bootargs("tidepool.log=info tidepool.log=trace"), Some(log::LevelFilter::Trace));
        // A longer key with the same prefix is another key.
        assert_eq!(log_level_from_bootargs("tidepool.logger=debug"), None);
    }

    struct Buffer(std::vec::Vec<u8>);
    impl ConsoleSink for Buffer {
        fn write_bytes(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    #[test]
    fn newlines_become_crlf() {
        let mut buffer = Buffer(std::vec::Vec::new());
        LockedWriter(&mut buffer).write_str("a\nb\n\nc").unwrap();
        assert_eq!(buffer.0, b"a\r\nb\r\n\r\nc");
    }
}
