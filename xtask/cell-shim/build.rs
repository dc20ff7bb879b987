//! Links the shim with its own script (at the address the launcher loads it).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    println!("cargo:rerun-if-changed=shim.ld");
    println!("cargo:rustc-link-arg=-T{dir}/shim.ld");
}
