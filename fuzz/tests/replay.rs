//! Replays the files named by `TIDEPOOL_FUZZ_REPLAY=TARGET:FILE[,...]`
//! through their targets (with `TIDEPOOL_FUZZ_TRACE=1` to see what they
//! do); does nothing without it.

#[test]
fn replay() {
    let Some(list) = std::env::var_os("TIDEPOOL_FUZZ_REPLAY") else { return };
    for item in list.to_string_lossy().split(',') {
        let (target, file) = item.split_once(':').expect("TARGET:FILE");
        let run = tidepool_fuzz::TARGETS.iter().find(|(name, _)| *name == target).expect("a target").1;
        eprintln!("== {target}: {file}");
        run(&std::fs::read(file).unwrap());
    }
}
