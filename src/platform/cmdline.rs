//! The kernel command line, whichever source supplied it.

/// The value of the last `key=value` word of a command line (so words
/// appended later override earlier ones).
pub fn bootarg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs.split_ascii_whitespace().rev().find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::bootarg;

    #[test]
    fn the_last_word_wins_and_prefixes_do_not_match() {
        let line = "tidepool.log=info console=ttyAMA0 tidepool.log=debug tidepool.logx=1";
        assert_eq!(bootarg(line, "tidepool.log"), Some("debug"));
        assert_eq!(bootarg(line, "console"), Some("ttyAMA0"));
        assert_eq!(bootarg(line, "tidepool"), None);
        assert_eq!(bootarg("", "x"), None);
    }
}
